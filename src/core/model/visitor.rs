//! The seed 002 `Visitor`: a person connected through the SDK, available to co-browse.

use serde::{Deserialize, Serialize};

/// The categories of device the seed allows in `device_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    Desktop,
    Console,
    Mobile,
    Tablet,
    Smarttv,
    Wearable,
    Embedded,
}

/// A visitor (seed 002, snake_case). Timestamps are ISO-8601 UTC strings as on the wire.
// `Hash`: the server keeps a fingerprint of what its agents were last sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Visitor {
    pub added_at: String,
    pub api_key: String,
    pub browser_name: Option<String>,
    pub call_name: Option<String>,
    pub device_name: Option<String>,
    pub device_type: Option<DeviceType>,
    pub email: Option<String>,
    pub identities: Vec<String>,
    pub integration: Option<String>,
    pub ip_address: String,
    pub is_in_session: bool,
    pub is_online: bool,
    pub is_supported: bool,
    /// Extra (not in the seed): why `is_supported` is false, the capabilities this
    /// browser lacks (`protocol::CAPABILITIES`); absent when it is supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_capabilities: Vec<String>,
    pub is_waiting_for_call: bool,
    pub js_configuration: bool,
    pub last_seen_at: String,
    pub last_url: Option<String>,
    pub location_city: Option<String>,
    pub location_country_name: Option<String>,
    pub location_country: Option<String>,
    pub lookup_code: Option<String>,
    pub name: Option<String>,
    pub nickname: String,
    pub short_id: String,
    pub tags: Vec<String>,
    pub unique_id: Option<String>,
    pub watch_link: String,
    pub sdk: String,
}
