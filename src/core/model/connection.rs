//! The seed 002 `Connection`: one open tab of a visitor, with its permission options.
//! camelCase, and it lives in the SDK's embedded state.

use serde::{Deserialize, Serialize};

use crate::core::config::Permissions;

/// Whether a connection is currently open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    Active,
    Disconnected,
}

/// Full-tab sharing state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum FullTabStatus {
    #[default]
    Off,
    Authorizing,
    Active,
}

/// An announced temporary disconnect (navigation, a page without the SDK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ExpectedDisconnect {
    /// Seconds until the visitor is back; null when unknown (the default then applies).
    pub return_time_seconds: Option<u64>,
    pub message: Option<String>,
    pub title: Option<String>,
    /// When the announcement was made, in milliseconds since the epoch.
    pub ts: u64,
}

/// A visitor's connection (seed 002, camelCase, every field). The permission fields are
/// flattened from [`Permissions`] so there is one definition of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub unique_connection_id: String,
    pub current_url: Option<String>,
    pub active_since: String,
    pub status: ConnectionStatus,
    pub expected_disconnect: Option<ExpectedDisconnect>,
    pub has_focus: bool,
    pub last_focus_at: Option<String>,
    pub screen_width: u32,
    pub screen_height: u32,
    pub audio_supported: bool,
    pub full_tab_status: FullTabStatus,
    #[serde(flatten)]
    pub permissions: Permissions,
}
