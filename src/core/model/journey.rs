//! The Genesys journey `Session` (seed 003, camelCase), named [`JourneySession`] here so
//! it is never confused with the co-browse `Session` of seed 002, and the parts it
//! references (`Browser`, `Device`, `JourneyPage`, `Referrer`, …). Every seed field is
//! present on the wire; parts covisit cannot know (app, network, queue, disposition)
//! are null, lists it has nothing for are empty.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Genesys `AddressableEntityRef`: an id and the URI of the object it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressableEntityRef {
    pub id: String,
    pub self_uri: String,
}

/// Genesys `ConnectedUser` (`lastConnectedUser`): the agent, by id.
pub type ConnectedUser = AddressableEntityRef;

/// Genesys `ConnectedQueue` (`lastConnectedQueue`); covisit has no queues, so null.
pub type ConnectedQueue = AddressableEntityRef;

/// Genesys `OutcomeAchievement`; covisit defines no outcomes, so the list is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeAchievement {
    pub outcome: AddressableEntityRef,
    pub achieved_date: String,
}

/// Genesys `SessionSegmentAssignment`; covisit assigns no segments, so the list is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSegmentAssignment {
    pub segment: AddressableEntityRef,
    pub assigned_date: String,
}

/// Genesys `Browser`: from the user agent (server side) and the page's own facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Browser {
    pub family: Option<String>,
    pub version: Option<String>,
    pub lang: Option<String>,
    pub fingerprint: Option<String>,
    pub is_mobile: Option<bool>,
    pub view_height: Option<u32>,
    pub view_width: Option<u32>,
    pub features_flash: Option<bool>,
    pub features_java: Option<bool>,
    pub features_pdf: Option<bool>,
    pub features_webrtc: Option<bool>,
}

/// Genesys `Device`: category and OS from the user agent, screen from the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub category: Option<String>,
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub is_mobile: Option<bool>,
    pub screen_height: Option<u32>,
    pub screen_width: Option<u32>,
    pub screen_density: Option<u32>,
    pub fingerprint: Option<String>,
    pub os_family: Option<String>,
    pub os_version: Option<String>,
    pub manufacturer: Option<String>,
}

/// Genesys `JourneyGeolocation`: only with a GeoIP database (`--geoip`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JourneyGeolocation {
    pub country: Option<String>,
    pub country_name: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub locality: Option<String>,
    pub postal_code: Option<String>,
    pub region: Option<String>,
    pub region_name: Option<String>,
    pub source: Option<String>,
    pub timezone: Option<String>,
}

/// Genesys `JourneyPage`: a page and the parts of its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JourneyPage {
    pub url: String,
    pub title: Option<String>,
    pub domain: Option<String>,
    pub fragment: Option<String>,
    pub hostname: Option<String>,
    pub keywords: Option<String>,
    pub lang: Option<String>,
    pub pathname: Option<String>,
    pub query_string: Option<String>,
    pub breadcrumb: Vec<String>,
}

/// Genesys `JourneyCampaign`: `utm_*` parameters and click ids of the landing page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JourneyCampaign {
    pub content: Option<String>,
    pub medium: Option<String>,
    pub name: Option<String>,
    pub source: Option<String>,
    pub term: Option<String>,
    pub click_id: Option<String>,
    pub network: Option<String>,
}

impl JourneyCampaign {
    /// True when no field is known.
    pub fn is_empty(&self) -> bool {
        *self == JourneyCampaign::default()
    }
}

/// Genesys `Referrer`. `medium` is one of `search`, `social`, `email`, `internal`,
/// `referral` (another site) or `direct` (no referrer: then the URL parts are null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    pub url: Option<String>,
    pub domain: Option<String>,
    pub hostname: Option<String>,
    pub keywords: Option<String>,
    pub pathname: Option<String>,
    pub query_string: Option<String>,
    pub fragment: Option<String>,
    pub name: Option<String>,
    pub medium: String,
}

/// Genesys `SdkLibrary`: the SDK that produced the events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SdkLibrary {
    pub name: String,
    pub version: String,
}

/// Genesys `SessionLastEvent`: the most recent event of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionLastEvent {
    pub id: String,
    pub event_name: String,
    pub created_date: String,
}

/// Genesys `ConversationChannel`: a channel used in the linked conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationChannel {
    #[serde(rename = "type")]
    pub channel_type: String,
    pub message_type: Option<String>,
    pub platform: Option<String>,
}

/// Genesys `CustomEventAttribute`: one projected attribute (`attributes` values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomEventAttribute {
    pub data_type: String,
    pub value: String,
}

/// Genesys `CustomEventAttributeList`: one projected list (`attributeLists` values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomEventAttributeList {
    pub data_type: String,
    pub values: Vec<String>,
}

/// The journey `Session` (seed 003, camelCase, every field): one web visit of a
/// visitor, its pages, events and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneySession {
    pub id: String,
    pub external_contact: Option<AddressableEntityRef>,
    pub customer_id: Option<String>,
    pub customer_id_type: Option<String>,
    #[serde(rename = "type")]
    pub session_type: String,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    /// 4–6 digits.
    pub short_id: String,
    pub outcome_achievements: Vec<OutcomeAchievement>,
    pub segment_assignments: Vec<SessionSegmentAssignment>,
    /// name → [`CustomEventAttribute`] (as JSON, so the map stays ordered by name).
    pub attributes: Map<String, Value>,
    /// name → [`CustomEventAttributeList`].
    pub attribute_lists: Map<String, Value>,
    pub browser: Browser,
    pub device: Device,
    pub geolocation: Option<JourneyGeolocation>,
    pub ip_address: Option<String>,
    pub ip_organization: Option<String>,
    pub last_page: Option<JourneyPage>,
    pub mkt_campaign: Option<JourneyCampaign>,
    pub referrer: Option<Referrer>,
    /// For app sessions only: always null on the web.
    pub app: Option<Value>,
    pub sdk_library: SdkLibrary,
    /// For app sessions only: always null on the web.
    pub network_connectivity: Option<Value>,
    pub search_terms: Vec<String>,
    pub user_agent_string: Option<String>,
    /// From `createdDate` to the last event.
    pub duration_in_seconds: u64,
    pub event_count: u64,
    pub pageview_count: u64,
    pub screenview_count: u64,
    pub last_event: SessionLastEvent,
    pub conversation: Option<AddressableEntityRef>,
    pub last_connected_queue: Option<ConnectedQueue>,
    pub last_connected_user: Option<ConnectedUser>,
    /// Genesys `ConversationUserDisposition` (wrap-up codes): covisit records none.
    pub last_user_disposition: Option<Value>,
    pub conversation_channels: Vec<ConversationChannel>,
    pub originating_direction: Option<String>,
    pub conversation_subject: Option<String>,
    pub last_user_disconnect_type: Option<String>,
    pub last_acd_outcome: Option<String>,
    pub authenticated: bool,
    pub division_ids: Vec<String>,
    pub last_screen: Option<String>,
    pub self_uri: String,
    pub created_date: String,
    /// Set once the session is over: inactivity past the timeout (then the moment it
    /// timed out) or the visitor's erasure.
    pub ended_date: Option<String>,
    /// The last event plus the away threshold (default 30 minutes).
    pub away_date: String,
    /// The last event plus the idle threshold (default 5 minutes).
    pub idle_date: String,
}
