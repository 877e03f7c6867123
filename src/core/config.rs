//! SDK configuration: the seed Connection's permission options with secure defaults,
//! the prompt and masking options, and the identity fields, plus their validation.
//!
//! Validation works on a JSON value so that the facade (from JS) and the server (from a
//! hello frame) reject exactly the same inputs with the same stable error codes.

use crate::core::codes::ErrorCode;
use crate::core::json::{Json, Object};
use serde::{Deserialize, Serialize};

/// `cobrowsingVideoEnabled` values of the seed Connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum VideoEnabled {
    TwoWay,
    VisitorToAgent,
    AgentToVisitor,
    #[default]
    Disabled,
}

/// `cobrowsingVideoAudioRelationship` values of the seed Connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum VideoAudioRelationship {
    #[default]
    Independent,
    VideoRequiresAudio,
    Automatic,
}

/// The permission and option fields of the seed Connection (camelCase). `Default` is
/// the secure default: authorization and control requests on; console, redirect, full
/// screen and full tab off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    pub require_authorization_for_session: bool,
    pub require_control_request: bool,
    pub allow_remote_console: bool,
    pub allow_agent_redirect: bool,
    pub allow_remote_click: bool,
    pub allow_remote_scroll: bool,
    pub allow_remote_type: bool,
    pub allow_full_screen: bool,
    pub allow_request_full_tab: bool,
    pub cobrowsing_video_enabled: VideoEnabled,
    pub cobrowsing_video_audio_relationship: VideoAudioRelationship,
    pub enable_session_rating: bool,
    pub agent_prompt: Option<String>,
    pub assets_proxy_configured: bool,
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions {
            require_authorization_for_session: true,
            require_control_request: true,
            allow_remote_console: false,
            allow_agent_redirect: false,
            allow_remote_click: true,
            allow_remote_scroll: true,
            allow_remote_type: true,
            allow_full_screen: false,
            allow_request_full_tab: false,
            cobrowsing_video_enabled: VideoEnabled::Disabled,
            cobrowsing_video_audio_relationship: VideoAudioRelationship::Independent,
            enable_session_rating: false,
            agent_prompt: None,
            assets_proxy_configured: false,
        }
    }
}

/// A change to one identity field: absent leaves it, `null` clears it, a value sets it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Unchanged,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// The same change to a value converted by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Unchanged => Patch::Unchanged,
            Patch::Clear => Patch::Clear,
            Patch::Set(v) => Patch::Set(f(v)),
        }
    }

    /// Applies the patch to a stored optional value.
    pub fn apply_to(self, slot: &mut Option<T>) {
        match self {
            Patch::Unchanged => {}
            Patch::Clear => *slot = None,
            Patch::Set(v) => *slot = Some(v),
        }
    }
}

/// The identity fields of `updateVisitor` (and of the config).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdentityUpdate {
    pub unique_id: Patch<String>,
    pub identities: Patch<Vec<String>>,
    pub tags: Patch<Vec<String>>,
    pub call_name: Patch<String>,
    pub email: Patch<String>,
    pub metadata: Patch<Object>,
}

/// The whole SDK configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub api_key: String,
    pub server: String,
    pub permissions: Permissions,
    pub authorization_timeout_seconds: u64,
    pub authorization_prompt_title: Option<String>,
    pub authorization_prompt_message: Option<String>,
    pub masked_elements: Vec<String>,
    /// `trackPageViews`: journey page views on load and SPA navigation (default true).
    /// Off, the page records them itself with `trackPageView()`.
    pub track_page_views: bool,
    /// `allowAgentDrawing`: agents may point (laser) and draw on the page during a
    /// session, without control (default true). Off, the SDK shows none of it, whatever
    /// a frame asks, and the server refuses the agents' `draw` for this tab.
    pub allow_agent_drawing: bool,
    pub identity: IdentityUpdate,
}

/// Default for `authorizationTimeoutSeconds` (SPEC.md section 2).
pub const DEFAULT_AUTHORIZATION_TIMEOUT_SECONDS: u64 = 60;
/// The longest authorization wait a page may configure: one hour.
pub const MAX_AUTHORIZATION_TIMEOUT_SECONDS: u64 = 3600;
/// Longest string accepted in any config or identity field.
pub const MAX_TEXT_LEN: usize = 2048;
/// Most entries accepted in a list field (identities, tags, maskedElements).
pub const MAX_LIST_LEN: usize = 100;

/// Why a config or identity object was rejected. `code()` is stable for JS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    NotAnObject {
        got: &'static str,
    },
    UnknownKey {
        key: String,
    },
    WrongType {
        key: String,
        expected: &'static str,
        got: &'static str,
    },
    Missing {
        key: &'static str,
    },
    Invalid {
        key: String,
        reason: &'static str,
    },
}

impl ConfigError {
    /// The message for people (no `core::fmt`: see [`crate::core::text`]).
    pub fn message(&self) -> String {
        match self {
            ConfigError::NotAnObject { got } => ["config must be an object, got ", got].concat(),
            ConfigError::UnknownKey { key } => ["unknown config key `", key, "`"].concat(),
            ConfigError::WrongType { key, expected, got } => {
                ["config key `", key, "` must be ", expected, ", got ", got].concat()
            }
            ConfigError::Missing { key } => ["config key `", key, "` is required"].concat(),
            ConfigError::Invalid { key, reason } => {
                ["config key `", key, "` is invalid: ", reason].concat()
            }
        }
    }
}

crate::core::text::message_display!(ConfigError);

impl ConfigError {
    /// The stable code thrown to JS as `error.code`.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConfigError::NotAnObject { .. } => ErrorCode::CONFIG_NOT_OBJECT,
            ConfigError::UnknownKey { .. } => ErrorCode::CONFIG_UNKNOWN_KEY,
            ConfigError::WrongType { .. } => ErrorCode::CONFIG_WRONG_TYPE,
            ConfigError::Missing { .. } => ErrorCode::CONFIG_MISSING_KEY,
            ConfigError::Invalid { .. } => ErrorCode::CONFIG_INVALID_VALUE,
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Text,
    NullableText,
    Seconds,
    TextList,
    NullableTextList,
    NullableObject,
    OneOf(&'static [&'static str]),
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Text => "a string",
            Kind::NullableText => "a string or null",
            Kind::Seconds => "a positive whole number of seconds",
            Kind::TextList => "an array of strings",
            Kind::NullableTextList => "an array of strings or null",
            Kind::NullableObject => "an object or null",
            Kind::OneOf(_) => "one of the documented strings",
        }
    }
}

const PERMISSION_KEYS: &[(&str, Kind)] = &[
    ("requireAuthorizationForSession", Kind::Bool),
    ("requireControlRequest", Kind::Bool),
    ("allowRemoteConsole", Kind::Bool),
    ("allowAgentRedirect", Kind::Bool),
    ("allowRemoteClick", Kind::Bool),
    ("allowRemoteScroll", Kind::Bool),
    ("allowRemoteType", Kind::Bool),
    ("allowFullScreen", Kind::Bool),
    ("allowRequestFullTab", Kind::Bool),
    (
        "cobrowsingVideoEnabled",
        Kind::OneOf(&[
            "two_way",
            "visitor_to_agent",
            "agent_to_visitor",
            "disabled",
        ]),
    ),
    (
        "cobrowsingVideoAudioRelationship",
        Kind::OneOf(&["independent", "video_requires_audio", "automatic"]),
    ),
    ("enableSessionRating", Kind::Bool),
    ("agentPrompt", Kind::NullableText),
    ("assetsProxyConfigured", Kind::Bool),
];

const IDENTITY_KEYS: &[(&str, Kind)] = &[
    ("uniqueId", Kind::NullableText),
    ("identities", Kind::NullableTextList),
    ("tags", Kind::NullableTextList),
    ("callName", Kind::NullableText),
    ("email", Kind::NullableText),
    ("metadata", Kind::NullableObject),
];

const OTHER_KEYS: &[(&str, Kind)] = &[
    ("apiKey", Kind::Text),
    ("server", Kind::Text),
    ("authorizationTimeoutSeconds", Kind::Seconds),
    ("authorizationPromptTitle", Kind::NullableText),
    ("authorizationPromptMessage", Kind::NullableText),
    ("maskedElements", Kind::TextList),
    ("trackPageViews", Kind::Bool),
    ("allowAgentDrawing", Kind::Bool),
];

/// Every key `start(config)` takes (the SDK's TypeScript `CovisitConfig` and README's
/// configuration table list the same ones; `tests/facts.rs` checks).
pub fn config_keys() -> impl Iterator<Item = &'static str> {
    [PERMISSION_KEYS, IDENTITY_KEYS, OTHER_KEYS]
        .into_iter()
        .flatten()
        .map(|(key, _)| *key)
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn check(key: &str, kind: Kind, value: &Json) -> Result<(), ConfigError> {
    let wrong = || ConfigError::WrongType {
        key: key.to_string(),
        expected: kind.expected(),
        got: type_name(value),
    };
    let text_ok = |s: &str| s.len() <= MAX_TEXT_LEN;
    let list_ok = |items: &Vec<Json>| -> Result<(), ConfigError> {
        if items.len() > MAX_LIST_LEN {
            return Err(ConfigError::Invalid {
                key: key.to_string(),
                reason: "too many entries (at most 100)",
            });
        }
        for item in items {
            match item {
                Json::String(s) if text_ok(s) => {}
                Json::String(_) => {
                    return Err(ConfigError::Invalid {
                        key: key.to_string(),
                        reason: "an entry is too long",
                    })
                }
                _ => return Err(wrong()),
            }
        }
        Ok(())
    };
    match (kind, value) {
        (Kind::Bool, Json::Bool(_)) => Ok(()),
        (Kind::Text | Kind::NullableText, Json::String(s)) => {
            if text_ok(s) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key: key.to_string(),
                    reason: "too long (at most 2048 bytes)",
                })
            }
        }
        (Kind::NullableText | Kind::NullableTextList | Kind::NullableObject, Json::Null) => Ok(()),
        (Kind::Seconds, Json::Number(n)) => match n.as_u64() {
            Some(s) if (1..=MAX_AUTHORIZATION_TIMEOUT_SECONDS).contains(&s) => Ok(()),
            Some(_) => Err(ConfigError::Invalid {
                key: key.to_string(),
                reason: "must be between 1 and 3600",
            }),
            None => Err(wrong()),
        },
        (Kind::TextList | Kind::NullableTextList, Json::Array(items)) => list_ok(items),
        (Kind::NullableObject, Json::Object(m)) => {
            if serde_json::to_string(m)
                .map(|s| s.len())
                .unwrap_or(usize::MAX)
                <= 8 * MAX_TEXT_LEN
            {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key: key.to_string(),
                    reason: "too large (at most 16 KiB)",
                })
            }
        }
        (Kind::OneOf(allowed), Json::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        (Kind::OneOf(_), Json::String(_)) => Err(ConfigError::Invalid {
            key: key.to_string(),
            reason: "not one of the documented values",
        }),
        _ => Err(wrong()),
    }
}

fn kind_of(key: &str, tables: &[&[(&'static str, Kind)]]) -> Option<Kind> {
    tables
        .iter()
        .flat_map(|t| t.iter())
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
}

fn as_object(value: &Json) -> Result<&Object, ConfigError> {
    value.as_object().ok_or(ConfigError::NotAnObject {
        got: type_name(value),
    })
}

fn patch_text(map: &Object, key: &str) -> Patch<String> {
    match map.get(key) {
        None => Patch::Unchanged,
        Some(Json::String(s)) => Patch::Set(s.clone()),
        Some(_) => Patch::Clear,
    }
}

fn patch_list(map: &Object, key: &str) -> Patch<Vec<String>> {
    match map.get(key) {
        None => Patch::Unchanged,
        Some(Json::Array(items)) => Patch::Set(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        Some(_) => Patch::Clear,
    }
}

fn identity_from(map: &Object) -> IdentityUpdate {
    IdentityUpdate {
        unique_id: patch_text(map, "uniqueId"),
        identities: patch_list(map, "identities"),
        tags: patch_list(map, "tags"),
        call_name: patch_text(map, "callName"),
        email: patch_text(map, "email"),
        metadata: match map.get("metadata") {
            None => Patch::Unchanged,
            Some(Json::Object(m)) => Patch::Set(m.clone()),
            Some(_) => Patch::Clear,
        },
    }
}

/// Validates an `updateVisitor` argument: only identity keys, each of its type.
pub fn parse_identity_update(value: &Json) -> Result<IdentityUpdate, ConfigError> {
    let map = as_object(value)?;
    for (key, v) in map {
        let kind = kind_of(key, &[IDENTITY_KEYS])
            .ok_or_else(|| ConfigError::UnknownKey { key: key.clone() })?;
        check(key, kind, v)?;
    }
    Ok(identity_from(map))
}

/// Validates a whole SDK config: known keys only, each of its type, `apiKey` and
/// `server` present. Unset permissions take the secure defaults.
pub fn parse_config(value: &Json) -> Result<Config, ConfigError> {
    let map = as_object(value)?;
    for (key, v) in map {
        let kind = kind_of(key, &[PERMISSION_KEYS, IDENTITY_KEYS, OTHER_KEYS])
            .ok_or_else(|| ConfigError::UnknownKey { key: key.clone() })?;
        check(key, kind, v)?;
    }
    let text = |key: &'static str| -> Result<String, ConfigError> {
        match map.get(key) {
            Some(Json::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            _ => Err(ConfigError::Missing { key }),
        }
    };
    let api_key = text("apiKey")?;
    let server = text("server")?;
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            key: "server".into(),
            reason: "must be an http:// or https:// URL",
        });
    }
    // Read field by field rather than through serde: this runs in the SDK, and serde's
    // derived deserializers would more than double the wasm bundle.
    let mut permissions = Permissions::default();
    let flag = |key: &str, slot: &mut bool| {
        if let Some(Json::Bool(b)) = map.get(key) {
            *slot = *b;
        }
    };
    let p = &mut permissions;
    flag(
        "requireAuthorizationForSession",
        &mut p.require_authorization_for_session,
    );
    flag("requireControlRequest", &mut p.require_control_request);
    flag("allowRemoteConsole", &mut p.allow_remote_console);
    flag("allowAgentRedirect", &mut p.allow_agent_redirect);
    flag("allowRemoteClick", &mut p.allow_remote_click);
    flag("allowRemoteScroll", &mut p.allow_remote_scroll);
    flag("allowRemoteType", &mut p.allow_remote_type);
    flag("allowFullScreen", &mut p.allow_full_screen);
    flag("allowRequestFullTab", &mut p.allow_request_full_tab);
    flag("enableSessionRating", &mut p.enable_session_rating);
    flag("assetsProxyConfigured", &mut p.assets_proxy_configured);
    p.cobrowsing_video_enabled = match map.get("cobrowsingVideoEnabled").and_then(Json::as_str) {
        Some("two_way") => VideoEnabled::TwoWay,
        Some("visitor_to_agent") => VideoEnabled::VisitorToAgent,
        Some("agent_to_visitor") => VideoEnabled::AgentToVisitor,
        _ => VideoEnabled::Disabled,
    };
    p.cobrowsing_video_audio_relationship = match map
        .get("cobrowsingVideoAudioRelationship")
        .and_then(Json::as_str)
    {
        Some("video_requires_audio") => VideoAudioRelationship::VideoRequiresAudio,
        Some("automatic") => VideoAudioRelationship::Automatic,
        _ => VideoAudioRelationship::Independent,
    };
    p.agent_prompt = map
        .get("agentPrompt")
        .and_then(Json::as_str)
        .map(str::to_string);
    let opt_text = |key: &str| map.get(key).and_then(Json::as_str).map(str::to_string);
    Ok(Config {
        api_key,
        server: server.trim_end_matches('/').to_string(),
        permissions,
        authorization_timeout_seconds: map
            .get("authorizationTimeoutSeconds")
            .and_then(Json::as_u64)
            .unwrap_or(DEFAULT_AUTHORIZATION_TIMEOUT_SECONDS),
        authorization_prompt_title: opt_text("authorizationPromptTitle"),
        authorization_prompt_message: opt_text("authorizationPromptMessage"),
        masked_elements: map
            .get("maskedElements")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        track_page_views: !matches!(map.get("trackPageViews"), Some(Json::Bool(false))),
        allow_agent_drawing: !matches!(map.get("allowAgentDrawing"), Some(Json::Bool(false))),
        identity: identity_from(map),
    })
}

// proptest needs OS randomness, so these run natively only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    /// `serde_json::json!`, as the SDK's [`Json`].
    macro_rules! jv {
    ($($t:tt)+) => {
        Json::from(serde_json::json!($($t)+))
    };
}

    #[test]
    fn defaults_are_secure() {
        let c =
            parse_config(&jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080/"})).unwrap();
        assert_eq!(c.permissions, Permissions::default());
        assert!(
            c.permissions.require_authorization_for_session
                && c.permissions.require_control_request
        );
        assert!(!c.permissions.allow_remote_console && !c.permissions.allow_agent_redirect);
        assert!(!c.permissions.allow_full_screen && !c.permissions.allow_request_full_tab);
        assert_eq!(c.server, "http://127.0.0.1:8080");
        assert_eq!(c.authorization_timeout_seconds, 60);
        assert!(
            c.track_page_views,
            "page views are tracked unless the page says not"
        );
        assert!(
            c.allow_agent_drawing,
            "agents may draw unless the page says not"
        );
    }

    #[test]
    fn allow_agent_drawing_is_a_boolean_that_turns_drawing_off() {
        let base = |v: Json| {
            let mut m = Object::new();
            m.insert("apiKey".into(), Json::from("pk"));
            m.insert("server".into(), Json::from("https://x.test"));
            m.insert("allowAgentDrawing".into(), v);
            parse_config(&Json::Object(m))
        };
        assert!(!base(Json::Bool(false)).unwrap().allow_agent_drawing);
        assert!(base(Json::Bool(true)).unwrap().allow_agent_drawing);
        assert_eq!(
            base(Json::from("no")).unwrap_err().code(),
            "config_wrong_type"
        );
        // Not a seed Connection field: it never shows up among the permissions.
        assert_eq!(
            base(Json::Bool(false)).unwrap().permissions,
            Permissions::default()
        );
    }

    #[test]
    fn overrides_apply_and_identity_is_patched() {
        let c = parse_config(&jv!({
            "apiKey": "pk", "server": "https://x.test", "allowRemoteType": false,
            "cobrowsingVideoEnabled": "two_way", "uniqueId": "u1", "email": null,
            "authorizationTimeoutSeconds": 30, "maskedElements": [".secret"],
            "trackPageViews": false
        }))
        .unwrap();
        assert!(!c.track_page_views);
        assert!(matches!(
            parse_config(
                &jv!({"apiKey": "pk", "server": "https://x.test", "trackPageViews": "no"})
            ),
            Err(ConfigError::WrongType { .. })
        ));
        assert!(!c.permissions.allow_remote_type);
        assert_eq!(c.permissions.cobrowsing_video_enabled, VideoEnabled::TwoWay);
        assert_eq!(c.identity.unique_id, Patch::Set("u1".into()));
        assert_eq!(c.identity.email, Patch::Clear);
        assert_eq!(c.identity.tags, Patch::Unchanged);
        assert_eq!(c.authorization_timeout_seconds, 30);
        assert_eq!(c.masked_elements, vec![".secret".to_string()]);
    }
}
