//! Browser tests of the wasm build, run in headless Chromium by `wasm-pack test`.
#![cfg(target_arch = "wasm32")]

use covisit::core::machine::{
    ConnectionInfo, Event, MachineOptions, SessionRequest, SessionStatus, VisitorMachine,
};
use covisit::core::model::{Agent, DisconnectType};
use covisit::core::Millis;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn now() -> Millis {
    Millis(js_sys::Date::now() as u64)
}

/// The core's state machine runs in the browser with the browser's clock: a session is
/// requested, authorized and ended, and the communication records it.
#[wasm_bindgen_test]
fn machine_runs_a_session_in_chromium() {
    let mut m = VisitorMachine::new("v1", MachineOptions::default());
    let t = now();
    m.handle_connect(
        t,
        ConnectionInfo {
            unique_connection_id: "c1".into(),
            current_url: Some(web_sys::window().unwrap().location().href().unwrap()),
            screen_width: 1280,
            screen_height: 800,
            audio_supported: false,
            has_focus: true,
            permissions: Default::default(),
        },
    )
    .unwrap();
    m.handle_session_request(
        t,
        SessionRequest {
            session_id: "s1".into(),
            communication_id: "k1".into(),
            peer_communication_id: None,
            viewer_url: None,
            agent: Agent::new("ea_1", "Sam", None),
        },
    )
    .unwrap();
    assert_eq!(m.status(), SessionStatus::Authorizing);
    m.handle_authorize(now()).unwrap();
    m.handle_visitor_end(now()).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
    assert!(events.contains(&Event::SessionEnded {
        session_id: "s1".into(),
        disconnect_type: DisconnectType::Client
    }));
    let c = m.communication().unwrap();
    assert!(c.connected_time.is_some() && c.disconnected_time.is_some());
    assert!(c.disconnected_time.as_deref().unwrap().ends_with('Z'));
}

/// A bad config from JS is rejected with a real `Error` carrying a stable `code`.
#[wasm_bindgen_test]
fn bad_config_throws_an_error_with_a_code() {
    let config = js_sys::JSON::parse(
        r#"{"apiKey":"pk_demo","server":"http://127.0.0.1:8080","allowRemoteType":"yes"}"#,
    )
    .unwrap();
    let err = covisit::validate_config(config).unwrap_err();
    let err: JsValue = err.into();
    assert!(err.is_instance_of::<js_sys::Error>());
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("config_wrong_type"));
}

/// A good config comes back with the secure defaults filled in.
#[wasm_bindgen_test]
fn good_config_gets_secure_defaults() {
    let config =
        js_sys::JSON::parse(r#"{"apiKey":"pk_demo","server":"http://127.0.0.1:8080"}"#).unwrap();
    let out = covisit::validate_config(config).unwrap_or_else(|_| panic!("valid config rejected"));
    let get = |k: &str| js_sys::Reflect::get(&out, &k.into()).unwrap();
    assert_eq!(get("requireAuthorizationForSession").as_bool(), Some(true));
    assert_eq!(get("allowAgentRedirect").as_bool(), Some(false));
    assert_eq!(get("authorizationTimeoutSeconds").as_f64(), Some(60.0));
}
