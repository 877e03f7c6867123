//! Misuse of the core's public API. Each test names what a caller (the facade, the
//! server, a page's config) got wrong and what it must see: a typed error with a stable
//! code, and a machine whose state did not change at all.
// Native only: these use proptest or the file system, which wasm32 lacks.
#![cfg(not(target_arch = "wasm32"))]

use covisit::core::config::{parse_config, parse_identity_update, ConfigError};
use covisit::core::machine::{
    ConnectionInfo, ControlState, Event, MachineError, MachineOptions, SessionRequest,
    SessionStatus, Timer, VisitorMachine,
};
use covisit::core::model::{Agent, Cobrowsesession, Connection, DisconnectType};
use covisit::core::Millis;
use serde_json::json;

/// `serde_json::json!`, as the SDK's `Json`.
macro_rules! jv {
    ($($t:tt)+) => {
        covisit::core::json::Json::from(serde_json::json!($($t)+))
    };
}

/// 2026-11-21T10:04:05.000Z.
const T0: Millis = Millis(1_795_255_445_000);

fn at(seconds: u64) -> Millis {
    T0.plus_seconds(seconds)
}

fn ada() -> Agent {
    Agent::new("ea_ada", "Ada Agent", None)
}

fn tab(id: &str) -> ConnectionInfo {
    ConnectionInfo {
        unique_connection_id: id.into(),
        current_url: Some("https://shop.example.com/".into()),
        screen_width: 1280,
        screen_height: 800,
        audio_supported: true,
        has_focus: true,
        permissions: Default::default(),
    }
}

fn request(n: u32) -> SessionRequest {
    SessionRequest {
        session_id: format!("s_{n}"),
        communication_id: format!("c_{n}"),
        peer_communication_id: None,
        viewer_url: None,
        agent: ada(),
    }
}

fn offline() -> VisitorMachine {
    VisitorMachine::new("v_7Kq2", MachineOptions::default())
}

fn online() -> VisitorMachine {
    let mut m = offline();
    m.handle_connect(at(0), tab("tab-1")).unwrap();
    m
}

fn authorizing() -> VisitorMachine {
    let mut m = online();
    m.handle_session_request(at(1), request(1)).unwrap();
    m
}

fn active() -> VisitorMachine {
    let mut m = authorizing();
    m.handle_authorize(at(2)).unwrap();
    m
}

fn ended() -> VisitorMachine {
    let mut m = active();
    m.handle_visitor_end(at(3)).unwrap();
    m
}

fn drain(m: &mut VisitorMachine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Everything a driver can observe, plus the whole internal state through `Debug`
/// (clock and event queue included).
#[derive(Debug, PartialEq)]
struct Observed {
    status: SessionStatus,
    session_id: Option<String>,
    authorized: bool,
    disconnect_type: Option<DisconnectType>,
    agents: Vec<Agent>,
    control: ControlState,
    controlling_agent: Option<String>,
    connections: Vec<Connection>,
    communication: Option<Cobrowsesession>,
    online: bool,
    prompt_target: Option<String>,
    poll_timeout: Option<Millis>,
    deadlines: Vec<Option<Millis>>,
    debug: String,
}

fn observe(m: &VisitorMachine) -> Observed {
    Observed {
        status: m.status(),
        session_id: m.session_id().map(str::to_string),
        authorized: m.session_authorized(),
        disconnect_type: m.disconnect_type(),
        agents: m.agents().to_vec(),
        control: m.control(),
        controlling_agent: m.controlling_agent().map(str::to_string),
        connections: m.connections().to_vec(),
        communication: m.communication().cloned(),
        online: m.is_online(),
        prompt_target: m.prompt_target().map(str::to_string),
        poll_timeout: m.poll_timeout(),
        deadlines: Timer::ALL.iter().map(|t| m.timer_deadline(*t)).collect(),
        debug: format!("{m:?}"),
    }
}

/// Runs one misuse: it must fail, and leave the machine exactly as it was (events that
/// were already queued stay queued, no new ones).
fn rejected(
    m: &mut VisitorMachine,
    misuse: impl FnOnce(&mut VisitorMachine) -> Result<(), MachineError>,
) -> MachineError {
    let mut before = m.clone();
    let err = misuse(m).expect_err("the misuse must be rejected");
    assert_eq!(observe(m), observe(&before), "`{err}` changed the machine");
    assert_eq!(
        drain(&mut m.clone()),
        drain(&mut before),
        "`{err}` queued events"
    );
    err
}

fn wrong_state(input: &'static str, expected: &'static str, got: &'static str) -> MachineError {
    MachineError::InappropriateInput {
        input,
        expected,
        got,
    }
}

fn wrong_control(input: &'static str, expected: &'static str, got: &'static str) -> MachineError {
    MachineError::InappropriateControl {
        input,
        expected,
        got,
    }
}

// ----- answering a session request --------------------------------------------------

/// Authorizing when no agent asked: the caller gets `wrong_session_state` saying the session is `none`.
#[test]
fn authorize_with_no_session() {
    let mut m = online();
    let e = rejected(&mut m, |m| m.handle_authorize(at(1)));
    assert_eq!(e, wrong_state("authorize", "authorizing", "none"));
    assert_eq!(e.code(), "wrong_session_state");
    assert_eq!(
        e.to_string(),
        "`authorize` is not valid now: expected authorizing, but the session is none"
    );
}

/// Authorizing a second time (a double click): `wrong_session_state`, `active`, and no second start.
#[test]
fn authorize_twice() {
    let mut m = authorizing();
    m.handle_authorize(at(2)).unwrap();
    // The first answer's events are still queued: the misuse must neither drop nor add.
    let e = rejected(&mut m, |m| m.handle_authorize(at(3)));
    assert_eq!(e, wrong_state("authorize", "authorizing", "active"));
    let events = drain(&mut m);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::SessionStarted { .. }))
            .count(),
        1
    );
}

/// Denying a session that is already live: `wrong_session_state`; the session goes on (use end).
#[test]
fn deny_when_active() {
    let mut m = active();
    let e = rejected(&mut m, |m| m.handle_deny(at(5)));
    assert_eq!(e, wrong_state("deny", "authorizing", "active"));
    assert_eq!(m.status(), SessionStatus::Active);
}

/// Answering after the session ended: `wrong_session_state` naming `ended`; it stays ended.
#[test]
fn authorize_or_deny_after_the_end() {
    let mut m = ended();
    assert_eq!(
        rejected(&mut m, |m| m.handle_authorize(at(9))),
        wrong_state("authorize", "authorizing", "ended")
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_deny(at(9))),
        wrong_state("deny", "authorizing", "ended")
    );
}

/// Ending when nothing is live: `wrong_session_state`, and the last session keeps its disconnect type.
#[test]
fn ending_with_no_live_session() {
    for mut m in [online(), ended()] {
        let got = m.status().as_str();
        let expected = "authorizing or active";
        assert_eq!(
            rejected(&mut m, |m| m.handle_visitor_end(at(9))),
            wrong_state("end", expected, got)
        );
        assert_eq!(
            rejected(&mut m, |m| m.handle_agent_end(at(9))),
            wrong_state("agent_end", expected, got)
        );
        assert_eq!(
            rejected(&mut m, |m| m.handle_server_end(at(9))),
            wrong_state("server_end", expected, got)
        );
        assert_eq!(
            rejected(&mut m, |m| m.handle_agent_join(at(9), ada())),
            wrong_state("agent_join", expected, got)
        );
        assert_eq!(
            rejected(&mut m, |m| m.handle_agent_leave(at(9), "ea_ada")),
            wrong_state("agent_leave", expected, got)
        );
    }
    assert_eq!(ended().disconnect_type(), Some(DisconnectType::Client));
}

// ----- asking for a session -------------------------------------------------------------

/// Requesting a session from a visitor with no open tab: `visitor_offline`, nothing is created.
#[test]
fn request_for_an_offline_visitor() {
    let mut m = offline();
    let e = rejected(&mut m, |m| m.handle_session_request(at(1), request(1)));
    assert_eq!(e, MachineError::VisitorOffline);
    assert_eq!(e.code(), "visitor_offline");
    assert_eq!(m.communication(), None);

    // A visitor whose tabs all closed is offline too.
    let mut m = online();
    m.handle_disconnect(at(1), "tab-1").unwrap();
    assert_eq!(
        rejected(&mut m, |m| m.handle_session_request(at(2), request(1))),
        MachineError::VisitorOffline
    );
}

/// Requesting a session while one is live: `wrong_session_state`; the live one keeps its id.
#[test]
fn session_request_while_one_is_live() {
    for (mut m, got) in [(authorizing(), "authorizing"), (active(), "active")] {
        let e = rejected(&mut m, |m| m.handle_session_request(at(5), request(2)));
        assert_eq!(e, wrong_state("session_request", "none or ended", got));
        assert_eq!(m.session_id(), Some("s_1"));
    }
}

/// A session request without ids: `invalid_argument` for `session_id`; the core makes no ids itself.
#[test]
fn session_request_with_empty_ids() {
    let mut m = online();
    let no_session = SessionRequest {
        session_id: String::new(),
        ..request(1)
    };
    let e = rejected(&mut m, |m| m.handle_session_request(at(1), no_session));
    assert_eq!(
        e,
        MachineError::InvalidArgument {
            field: "session_id",
            reason: "must not be empty"
        }
    );
    assert_eq!(e.code(), "invalid_argument");
    let no_communication = SessionRequest {
        communication_id: String::new(),
        ..request(1)
    };
    assert_eq!(
        rejected(&mut m, |m| m
            .handle_session_request(at(1), no_communication))
        .code(),
        "invalid_argument"
    );
}

// ----- agents -----------------------------------------------------------------------

/// The same agent joining twice: `duplicate_agent`, and the agent list is unchanged.
#[test]
fn duplicate_agent_join() {
    for mut m in [authorizing(), active()] {
        let e = rejected(&mut m, |m| m.handle_agent_join(at(5), ada()));
        assert_eq!(
            e,
            MachineError::DuplicateAgent {
                id: "ea_ada".into()
            }
        );
        assert_eq!(e.code(), "duplicate_agent");
        assert_eq!(m.agents(), &[ada()]);
    }
}

/// An agent that never joined leaving: `unknown_agent`, and the session does not end.
#[test]
fn unknown_agent_leaving() {
    let mut m = active();
    let e = rejected(&mut m, |m| m.handle_agent_leave(at(5), "ea_mallory"));
    assert_eq!(
        e,
        MachineError::UnknownAgent {
            id: "ea_mallory".into()
        }
    );
    assert_eq!(m.status(), SessionStatus::Active);
}

// ----- remote control ----------------------------------------------------------------

/// Granting control nobody asked for: `wrong_control_state` saying control is `none`.
#[test]
fn control_grant_with_no_request() {
    let mut m = active();
    let e = rejected(&mut m, |m| m.handle_control_grant(at(5)));
    assert_eq!(e, wrong_control("control_grant", "requested", "none"));
    assert_eq!(e.code(), "wrong_control_state");
    assert_eq!(
        e.to_string(),
        "`control_grant` is not valid now: expected requested, but control is none"
    );
    assert_eq!(m.controlling_agent(), None);
}

/// Denying, revoking or granting control in the wrong control state: `wrong_control_state` naming it.
#[test]
fn control_answers_in_the_wrong_control_state() {
    let mut m = active();
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_deny(at(5))),
        wrong_control("control_deny", "requested", "none")
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_revoke(at(5))),
        wrong_control("control_revoke", "granted", "none")
    );
    m.handle_control_request(at(5), "ea_ada").unwrap();
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_revoke(at(6))),
        wrong_control("control_revoke", "granted", "requested")
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_request(at(6), "ea_ada")),
        wrong_control("control_request", "none", "requested")
    );
    m.handle_control_grant(at(6)).unwrap();
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_grant(at(7))),
        wrong_control("control_grant", "requested", "granted")
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_deny(at(7))),
        wrong_control("control_deny", "requested", "granted")
    );
    assert_eq!(m.controlling_agent(), Some("ea_ada"));
}

/// Control asked by an agent that is not in the session: `unknown_agent`, nobody is asked.
#[test]
fn control_request_from_an_agent_not_in_the_session() {
    let mut m = active();
    let e = rejected(&mut m, |m| m.handle_control_request(at(5), "ea_mallory"));
    assert_eq!(
        e,
        MachineError::UnknownAgent {
            id: "ea_mallory".into()
        }
    );
    assert_eq!(m.control(), ControlState::None);
}

/// An agent releasing control it does not hold: `wrong_control_state`, the holder keeps it.
#[test]
fn control_release_by_an_agent_without_control() {
    let mut m = active();
    m.handle_agent_join(at(3), Agent::new("ea_bob", "Bob", None))
        .unwrap();
    m.handle_control_request(at(4), "ea_ada").unwrap();
    m.handle_control_grant(at(5)).unwrap();
    let e = rejected(&mut m, |m| m.handle_agent_control_release(at(6), "ea_bob"));
    assert_eq!(
        e,
        wrong_control(
            "agent_control_release",
            "granted to or requested by this agent",
            "granted"
        )
    );
    assert_eq!(m.controlling_agent(), Some("ea_ada"));
}

/// Control asked outside a live session: `wrong_session_state`, since the page must not be driven before `active`.
#[test]
fn control_request_when_not_active() {
    for (mut m, got) in [
        (online(), "none"),
        (authorizing(), "authorizing"),
        (ended(), "ended"),
    ] {
        let e = rejected(&mut m, |m| m.handle_control_request(at(5), "ea_ada"));
        assert_eq!(e, wrong_state("control_request", "active", got));
        assert_eq!(
            rejected(&mut m, |m| m.handle_control_grant(at(5))),
            wrong_state("control_grant", "active", got)
        );
        assert_eq!(
            rejected(&mut m, |m| m.handle_control_revoke(at(5))),
            wrong_state("control_revoke", "active", got)
        );
        assert_eq!(
            rejected(&mut m, |m| m.handle_agent_control_release(at(5), "ea_ada")),
            wrong_state("agent_control_release", "active", got)
        );
        assert_eq!(m.control(), ControlState::None);
    }
}

/// Control asked while the visitor has no open tab: `visitor_offline`, the request is not queued.
#[test]
fn control_request_while_on_hold() {
    let mut m = active();
    m.handle_disconnect(at(5), "tab-1").unwrap();
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_request(at(6), "ea_ada")),
        MachineError::VisitorOffline
    );
}

/// Granting control after every tab closed (a late answer): `visitor_offline`; the request waits for the next tab.
#[test]
fn control_grant_while_no_tab_is_open() {
    let mut m = active();
    m.handle_control_request(at(4), "ea_ada").unwrap();
    m.handle_expect_disconnect(at(5), "tab-1", None, None, None)
        .unwrap();
    m.handle_disconnect(at(5), "tab-1").unwrap();
    assert_eq!(
        rejected(&mut m, |m| m.handle_control_grant(at(6))),
        MachineError::VisitorOffline
    );
    assert_eq!(m.controlling_agent(), None);
    // The next page asks again and may grant it.
    drain(&mut m);
    m.handle_connect(at(7), tab("tab-2")).unwrap();
    assert!(drain(&mut m).contains(&Event::ControlRequested {
        agent: ada(),
        connection_id: "tab-2".into()
    }));
    m.handle_control_grant(at(8)).unwrap();
    assert_eq!(m.controlling_agent(), Some("ea_ada"));
}

// ----- connections --------------------------------------------------------------------

/// Focus, URL, expected-disconnect and disconnect for a tab id the machine never saw: `unknown_connection`.
#[test]
fn unknown_connection_ids() {
    let mut m = active();
    let unknown = || MachineError::UnknownConnection { id: "tab-x".into() };
    assert_eq!(
        rejected(&mut m, |m| m.handle_focus(at(5), "tab-x", true)),
        unknown()
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_url(
            at(5),
            "tab-x",
            "https://evil.example/".into()
        )),
        unknown()
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_disconnect(at(5), "tab-x")),
        unknown()
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_expect_disconnect(
            at(5),
            "tab-x",
            None,
            None,
            None
        )),
        unknown()
    );
    assert_eq!(unknown().code(), "unknown_connection");
}

/// Inputs for a tab that already closed: `unknown_connection`; a closed tab cannot take focus or close twice.
#[test]
fn closed_connection_ids() {
    let mut m = active();
    m.handle_connect(at(3), tab("tab-2")).unwrap();
    m.handle_disconnect(at(4), "tab-1").unwrap();
    let unknown = || MachineError::UnknownConnection { id: "tab-1".into() };
    assert_eq!(
        rejected(&mut m, |m| m.handle_disconnect(at(5), "tab-1")),
        unknown()
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_focus(at(5), "tab-1", true)),
        unknown()
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_url(
            at(5),
            "tab-1",
            "https://x.example/".into()
        )),
        unknown()
    );
}

/// Connecting a tab id that is already open: `duplicate_connection`; the open tab is kept as it was.
#[test]
fn duplicate_connection() {
    let mut m = active();
    let mut again = tab("tab-1");
    again.current_url = Some("https://elsewhere.example/".into());
    let e = rejected(&mut m, |m| m.handle_connect(at(5), again));
    assert_eq!(e, MachineError::DuplicateConnection { id: "tab-1".into() });
    assert_eq!(e.code(), "duplicate_connection");
    assert_eq!(m.connections().len(), 1);
}

/// An empty, over-long (200-char) or odd (`a b`) connection id: `invalid_argument` for
/// `uniqueConnectionId` (the one id rule, `core::ids`).
#[test]
fn empty_oversized_or_odd_connection_id() {
    let mut m = online();
    let invalid = MachineError::InvalidArgument {
        field: "uniqueConnectionId",
        reason: "must be 1 to 64 letters, digits, `_` or `-`",
    };
    assert_eq!(
        rejected(&mut m, |m| m.handle_connect(at(1), tab("a b"))),
        invalid
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_connect(at(1), tab(""))),
        invalid
    );
    assert_eq!(
        rejected(&mut m, |m| m.handle_connect(at(1), tab(&"x".repeat(200)))),
        invalid
    );
    assert_eq!(invalid.code(), "invalid_argument");
    // The limit itself is fine.
    m.handle_connect(at(1), tab(&"x".repeat(covisit::core::ids::MAX_ID_LEN)))
        .unwrap();
}

/// An expected disconnect longer than an hour (3601 s): `invalid_argument` for `returnTimeSeconds`.
#[test]
fn return_time_over_an_hour() {
    let mut m = active();
    let invalid = MachineError::InvalidArgument {
        field: "returnTimeSeconds",
        reason: "must be at most 3600",
    };
    for seconds in [3601, 86_400, u64::MAX] {
        assert_eq!(
            rejected(&mut m, |m| m.handle_expect_disconnect(
                at(5),
                "tab-1",
                Some(seconds),
                None,
                None
            )),
            invalid
        );
    }
    assert_eq!(m.connection("tab-1").unwrap().expected_disconnect, None);
    m.handle_expect_disconnect(at(5), "tab-1", Some(3600), None, None)
        .unwrap();
}

/// A rejected input carrying a later `now`: the machine's clock must not move, later timestamps stay true.
#[test]
fn a_rejected_input_does_not_move_the_clock() {
    let mut m = active();
    rejected(&mut m, |m| m.handle_focus(at(900), "tab-x", true));
    rejected(&mut m, |m| {
        m.handle_url(at(900), "tab-x", "https://x.example/".into())
    });
    rejected(&mut m, |m| m.handle_disconnect(at(900), "tab-x"));
    rejected(&mut m, |m| {
        m.handle_expect_disconnect(at(900), "tab-x", None, None, None)
    });
    rejected(&mut m, |m| m.handle_authorize(at(900)));
    rejected(&mut m, |m| m.handle_control_grant(at(900)));
    m.handle_visitor_end(at(10)).unwrap();
    let c = m.communication().unwrap();
    assert_eq!(
        c.disconnected_time.as_deref(),
        Some(at(10).to_iso8601().as_str())
    );
}

// ----- configuration -------------------------------------------------------------------

/// A config key the SDK does not know (a typo): `config_unknown_key` naming the key.
#[test]
fn config_with_an_unknown_key() {
    let e = parse_config(&jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080", "requireAuthorisationForSession": false}))
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::UnknownKey {
            key: "requireAuthorisationForSession".into()
        }
    );
    assert_eq!(e.code(), "config_unknown_key");
    assert!(e.to_string().contains("requireAuthorisationForSession"));
    // Config-only keys are unknown to updateVisitor.
    assert_eq!(
        parse_identity_update(&jv!({"apiKey": "pk"}))
            .unwrap_err()
            .code(),
        "config_unknown_key"
    );
}

/// A config value of the wrong type (`"false"` for a boolean): `config_wrong_type` naming the key and both types.
#[test]
fn config_with_a_wrong_type() {
    let e = parse_config(
        &jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080", "allowRemoteType": "false"}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ConfigError::WrongType {
            key: "allowRemoteType".into(),
            expected: "a boolean",
            got: "a string"
        }
    );
    assert_eq!(e.code(), "config_wrong_type");
    assert_eq!(
        e.to_string(),
        "config key `allowRemoteType` must be a boolean, got a string"
    );
    for (key, value) in [
        ("authorizationTimeoutSeconds", json!("60")),
        ("authorizationTimeoutSeconds", json!(1.5)),
        ("maskedElements", json!([".ok", 3])),
        ("identities", json!("ada@example.com")),
        ("metadata", json!([1])),
        ("apiKey", json!(42)),
    ] {
        let mut config = json!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080"});
        config[key] = value;
        assert_eq!(
            parse_config(&config.clone().into()).unwrap_err().code(),
            "config_wrong_type",
            "{key}"
        );
    }
}

/// A config without `apiKey` (or a blank one): `config_missing_key` naming `apiKey`.
#[test]
fn config_without_api_key() {
    let e = parse_config(&jv!({"server": "http://127.0.0.1:8080"})).unwrap_err();
    assert_eq!(e, ConfigError::Missing { key: "apiKey" });
    assert_eq!(e.code(), "config_missing_key");
    assert_eq!(e.to_string(), "config key `apiKey` is required");
    let blank =
        parse_config(&jv!({"apiKey": "  ", "server": "http://127.0.0.1:8080"})).unwrap_err();
    assert_eq!(blank, ConfigError::Missing { key: "apiKey" });
    assert_eq!(
        parse_config(&jv!({"apiKey": "pk"})).unwrap_err(),
        ConfigError::Missing { key: "server" }
    );
}

/// A server that is not an http(s) URL: `config_invalid_value` for `server`.
#[test]
fn config_with_a_bad_server_url() {
    for server in [
        "127.0.0.1:8080",
        "ws://127.0.0.1:8080",
        "javascript:alert(1)",
        "ftp://x.example",
    ] {
        let e = parse_config(&jv!({"apiKey": "pk_demo", "server": server})).unwrap_err();
        assert_eq!(e.code(), "config_invalid_value", "{server}");
        assert!(
            matches!(&e, ConfigError::Invalid { key, .. } if key == "server"),
            "{server}: {e}"
        );
    }
}

/// Values of the right type but out of range: `config_invalid_value` naming the key.
#[test]
fn config_with_out_of_range_values() {
    for (key, value) in [
        ("authorizationTimeoutSeconds", json!(0)),
        ("authorizationTimeoutSeconds", json!(3601)),
        ("cobrowsingVideoEnabled", json!("always")),
        ("agentPrompt", json!("x".repeat(3000))),
        ("tags", json!(vec!["t"; 101])),
    ] {
        let mut config = json!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080"});
        config[key] = value;
        let e = parse_config(&config.clone().into()).unwrap_err();
        assert_eq!(e.code(), "config_invalid_value", "{key}");
        assert!(e.to_string().contains(key), "{e}");
    }
}

/// A config that is not an object (an array, a string, null): `config_not_object` saying what it got.
#[test]
fn config_that_is_not_an_object() {
    for (value, got) in [
        (json!([]), "an array"),
        (json!("pk_demo"), "a string"),
        (json!(null), "null"),
        (json!(1), "a number"),
    ] {
        let e = parse_config(&value.clone().into()).unwrap_err();
        assert_eq!(e, ConfigError::NotAnObject { got });
        assert_eq!(e.code(), "config_not_object");
        assert_eq!(
            parse_identity_update(&value.into()).unwrap_err().code(),
            "config_not_object"
        );
    }
}
