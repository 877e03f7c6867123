//! The Genesys Cloud `Cobrowsesession` communication (seeds 000/001) and its parts
//! `Address`, `Segment`, `Wrapup`, `AfterCallWork`: one per participant of a session.

use serde::{Deserialize, Serialize};

/// `state` / `initialState` of a communication, mapped from the SDK's session status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum CommunicationState {
    Alerting,
    Connected,
    Disconnected,
}

/// What ended a communication (SPEC.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum DisconnectType {
    /// The visitor ended or denied.
    #[serde(rename = "client")]
    Client,
    /// The agent side ended, cancelled or left.
    #[serde(rename = "peer")]
    Peer,
    /// The server ended it.
    #[serde(rename = "system")]
    System,
    /// The visitor's connections were gone past the grace period.
    #[serde(rename = "transport.failure")]
    TransportFailure,
    /// Nobody answered in time, or an expected return did not happen.
    #[serde(rename = "timeout")]
    Timeout,
}

/// A participant's role: the visitor shares, agents view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum CobrowseRole {
    Sharer,
    Viewer,
}

/// The activity of a segment of the participant's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum SegmentType {
    Alert,
    Interact,
    Hold,
}

/// Address and name data for an endpoint (Genesys `Address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub name: Option<String>,
    pub name_raw: Option<String>,
    pub address_normalized: Option<String>,
    pub address_raw: Option<String>,
    pub address_displayable: Option<String>,
}

/// One activity segment of a participant's timeline (Genesys `Segment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub start_time: String,
    pub end_time: Option<String>,
    #[serde(rename = "type")]
    pub segment_type: SegmentType,
    pub how_ended: Option<String>,
    pub disconnect_type: Option<DisconnectType>,
}

/// Wrap-up data (Genesys `Wrapup`); covisit records none yet, so it stays null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Wrapup {
    pub code: Option<String>,
    pub name: Option<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub duration_seconds: Option<u64>,
    pub end_time: Option<String>,
    pub provisional: Option<bool>,
}

/// After-call work (Genesys `AfterCallWork`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AfterCallWork {
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub state: Option<String>,
}

/// A participant's co-browse communication (seed 000, camelCase, every field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Cobrowsesession {
    pub state: CommunicationState,
    pub initial_state: CommunicationState,
    pub id: String,
    pub disconnect_type: Option<DisconnectType>,
    #[serde(rename = "self")]
    pub self_address: Address,
    pub cobrowse_session_id: String,
    pub cobrowse_role: CobrowseRole,
    /// Participants this client may control: empty for the sharer.
    pub controlling: Vec<String>,
    pub viewer_url: Option<String>,
    pub provider_event_time: String,
    pub start_alerting_time: Option<String>,
    pub connected_time: Option<String>,
    pub disconnected_time: Option<String>,
    pub provider: String,
    pub peer_id: Option<String>,
    pub segments: Vec<Segment>,
    pub wrapup: Option<Wrapup>,
    pub after_call_work: Option<AfterCallWork>,
    pub after_call_work_required: bool,
}
