//! Browser tests of the wasm build, run in headless Chromium by `wasm-pack test`.
#![cfg(target_arch = "wasm32")]

use covisit::core::machine::{
    ConnectionInfo, Event, MachineOptions, SessionRequest, SessionStatus, VisitorMachine,
};
use covisit::core::model::{Agent, DisconnectType};
use covisit::core::Millis;
use wasm_bindgen::JsCast;
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

/// A bad config from JS is rejected, before anything connects, with a real `Error`
/// carrying a stable `code`.
#[wasm_bindgen_test]
async fn bad_config_rejects_with_an_error_and_a_code() {
    for (config, expected) in [
        (
            r#"{"apiKey":"pk_demo","server":"http://127.0.0.1:8080","allowRemoteType":"yes"}"#,
            "config_wrong_type",
        ),
        (
            r#"{"apiKey":"pk_demo","server":"http://127.0.0.1:8080","allowRemoteTyping":true}"#,
            "config_unknown_key",
        ),
        (
            r#"{"server":"http://127.0.0.1:8080"}"#,
            "config_missing_key",
        ),
        (r#"[1,2]"#, "config_not_object"),
    ] {
        let config = js_sys::JSON::parse(config).unwrap();
        let err = wasm_bindgen_futures::JsFuture::from(covisit::start_covisit(
            config, None, None, None, None,
        ))
        .await
        .expect_err("a bad config must reject");
        assert!(err.is_instance_of::<js_sys::Error>());
        let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
        assert_eq!(code.as_string().as_deref(), Some(expected));
    }
}
