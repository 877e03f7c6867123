//! Property tests that [`parse_config`], which reads the permission options field by
//! field (serde's derived decoders would double the SDK's wasm), reads them as the
//! serde definition of [`Permissions`] (camelCase, the seed Connection's names) does.
//!
//! One difference is intended: `agentPrompt` is at most [`MAX_TEXT_LEN`] bytes, a
//! limit `Permissions`' serde definition does not know.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::core::strategies::{json_value, text};

const VIDEO: &[&str] = &[
    "two_way",
    "visitor_to_agent",
    "agent_to_visitor",
    "disabled",
];
const AUDIO: &[&str] = &["independent", "video_requires_audio", "automatic"];

fn permissions() -> impl Strategy<Value = Permissions> {
    (
        prop::collection::vec(any::<bool>(), 11),
        prop::sample::select(VIDEO),
        prop::sample::select(AUDIO),
        proptest::option::of(prop_oneof![text(), "[a-z ]{2040,2048}",]),
    )
        .prop_map(|(b, video, audio, agent_prompt)| Permissions {
            require_authorization_for_session: b[0],
            require_control_request: b[1],
            allow_remote_console: b[2],
            allow_agent_redirect: b[3],
            allow_remote_click: b[4],
            allow_remote_scroll: b[5],
            allow_remote_type: b[6],
            allow_full_screen: b[7],
            allow_request_full_tab: b[8],
            cobrowsing_video_enabled: serde_json::from_value(json!(video)).expect("a value"),
            cobrowsing_video_audio_relationship: serde_json::from_value(json!(audio))
                .expect("a value"),
            enable_session_rating: b[9],
            agent_prompt,
            assets_proxy_configured: b[10],
        })
        .prop_filter("within the text limit", |p| {
            p.agent_prompt
                .as_ref()
                .is_none_or(|t| t.len() <= MAX_TEXT_LEN)
        })
}

fn config_with(permissions: Map<String, Value>) -> Json {
    let mut object = permissions;
    object.insert("apiKey".into(), json!("pk_demo"));
    object.insert("server".into(), json!("https://covisit.test"));
    Json::from(Value::Object(object))
}

/// What serde makes of these permission keys over the defaults, less the intended
/// difference.
fn reference(given: &Map<String, Value>) -> Option<Permissions> {
    let Ok(Value::Object(mut all)) = serde_json::to_value(Permissions::default()) else {
        unreachable!("Permissions serializes to an object");
    };
    all.extend(given.clone());
    let p: Permissions = serde_json::from_value(Value::Object(all)).ok()?;
    p.agent_prompt
        .as_ref()
        .is_none_or(|t| t.len() <= MAX_TEXT_LEN)
        .then_some(p)
}

/// A value for a permission key: mostly of the right type, sometimes not.
fn permission_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => any::<bool>().prop_map(Value::Bool),
        2 => prop::sample::select([VIDEO, AUDIO].concat()).prop_map(|s| json!(s)),
        1 => Just(Value::Null),
        1 => text().prop_map(Value::String),
        1 => json_value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every permission set, written as serde writes it, is read back as itself.
    #[test]
    fn permissions_round_trip_through_the_config(p in permissions()) {
        let Ok(Value::Object(fields)) = serde_json::to_value(&p) else {
            unreachable!("Permissions serializes to an object");
        };
        prop_assert_eq!(parse_config(&config_with(fields)).map(|c| c.permissions), Ok(p));
    }

    /// Any values for any of the permission keys: accepted exactly when serde accepts
    /// them (over the defaults), and read as serde reads them.
    #[test]
    fn permission_keys_are_read_as_serde_reads_them(
        given in prop::collection::vec(
            (prop::sample::select(PERMISSION_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>()), permission_value()),
            0..6,
        ),
    ) {
        let given: Map<String, Value> =
            given.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let ours = parse_config(&config_with(given.clone())).ok().map(|c| c.permissions);
        prop_assert_eq!(ours, reference(&given), "{:?}", given);
    }
}
