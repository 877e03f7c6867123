//! Unit tests of every transition and timer of the visitor machine.
//!
//! Each test drives one [`VisitorMachine`] with realistic times and asserts on what a
//! driver sees: the events drained with `poll_event`, the getters and the visitor's
//! Cobrowsesession. Helpers build the usual starting points (online, authorizing,
//! active) and drain their events so each test sees only its own.

use super::*;
use crate::core::config::Permissions;

/// 2026-11-21T10:04:05.000Z.
const T0: Millis = Millis(1_795_255_445_000);

fn at(seconds: u64) -> Millis {
    T0.plus_seconds(seconds)
}

fn iso(seconds: u64) -> String {
    at(seconds).to_iso8601()
}

fn ada() -> Agent {
    Agent::new("ea_ada", "Ada Agent", None)
}

fn bob() -> Agent {
    Agent::new("ea_bob", "Bob Agent", Some("crm-2".into()))
}

fn perms(require_authorization: bool, require_control_request: bool) -> Permissions {
    Permissions {
        require_authorization_for_session: require_authorization,
        require_control_request,
        ..Permissions::default()
    }
}

fn tab_with(id: &str, focus: bool, permissions: Permissions) -> ConnectionInfo {
    ConnectionInfo {
        unique_connection_id: id.into(),
        current_url: Some("https://shop.example.com/cart".into()),
        screen_width: 1440,
        screen_height: 900,
        audio_supported: false,
        has_focus: focus,
        permissions,
    }
}

fn tab(id: &str, focus: bool) -> ConnectionInfo {
    tab_with(id, focus, Permissions::default())
}

fn request(n: u32) -> SessionRequest {
    SessionRequest {
        session_id: format!("s_{n}"),
        communication_id: format!("c_{n}"),
        peer_communication_id: Some(format!("c_agent_{n}")),
        viewer_url: Some(format!("http://127.0.0.1:8080/agent/#/sessions/s_{n}")),
        agent: ada(),
    }
}

fn drain(m: &mut VisitorMachine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// A visitor with one focused tab `tab-1`, connected at T0.
fn online_with(permissions: Permissions) -> VisitorMachine {
    let mut m = VisitorMachine::new("v_7Kq2", MachineOptions::default());
    m.handle_connect(at(0), tab_with("tab-1", true, permissions))
        .unwrap();
    drain(&mut m);
    m
}

fn online() -> VisitorMachine {
    online_with(Permissions::default())
}

/// Session `s_1` requested by Ada at T0+1 s, waiting for the visitor.
fn authorizing() -> VisitorMachine {
    let mut m = online();
    m.handle_session_request(at(1), request(1)).unwrap();
    drain(&mut m);
    m
}

/// Session `s_1` requested at T0+1 s and authorized at T0+2 s.
fn active() -> VisitorMachine {
    let mut m = authorizing();
    m.handle_authorize(at(2)).unwrap();
    drain(&mut m);
    m
}

fn comm(m: &VisitorMachine) -> &Cobrowsesession {
    m.communication()
        .expect("a session was requested, so there is a communication")
}

fn seg(
    kind: SegmentType,
    start: u64,
    end: Option<u64>,
    how_ended: Option<&str>,
    disconnect_type: Option<DisconnectType>,
) -> Segment {
    Segment {
        start_time: iso(start),
        end_time: end.map(iso),
        segment_type: kind,
        how_ended: how_ended.map(str::to_string),
        disconnect_type,
    }
}

fn ended(n: u32, disconnect_type: DisconnectType) -> Event {
    Event::SessionEnded {
        session_id: format!("s_{n}"),
        disconnect_type,
    }
}

fn control_ended(agent_id: &str, reason: ControlEndReason) -> Event {
    Event::ControlEnded {
        agent_id: agent_id.into(),
        reason,
    }
}

fn focused(m: &VisitorMachine) -> Vec<&str> {
    m.connections()
        .iter()
        .filter(|c| c.has_focus)
        .map(|c| c.unique_connection_id.as_str())
        .collect()
}

/// Asserts the session ended with `dt` everywhere it shows: status, getter, the
/// communication and its last segment, and that no timer is left.
fn assert_ended(m: &VisitorMachine, dt: DisconnectType, when: u64) {
    assert_eq!(m.status(), SessionStatus::Ended);
    assert_eq!(m.disconnect_type(), Some(dt));
    assert_eq!(m.control(), ControlState::None);
    assert!(!m.session_authorized());
    assert!(m.agents().is_empty());
    let c = comm(m);
    assert_eq!(c.state, CommunicationState::Disconnected);
    assert_eq!(c.disconnect_type, Some(dt));
    assert_eq!(c.disconnected_time.as_deref(), Some(iso(when).as_str()));
    assert_eq!(c.provider_event_time, iso(when));
    let last = c.segments.last().expect("a segment");
    assert_eq!(last.end_time.as_deref(), Some(iso(when).as_str()));
    assert_eq!(last.how_ended.as_deref(), Some("disconnect"));
    assert_eq!(last.disconnect_type, Some(dt));
    // Only the last segment carries the disconnect type.
    assert!(c.segments[..c.segments.len() - 1]
        .iter()
        .all(|s| s.disconnect_type.is_none()));
    assert_eq!(m.poll_timeout(), None);
}

// ----- connections -----------------------------------------------------------------

#[test]
fn a_tab_connects_with_its_seed_fields() {
    let mut m = VisitorMachine::new("v_7Kq2", MachineOptions::default());
    assert!(!m.is_online());
    m.handle_connect(at(0), tab("tab-1", true)).unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert!(m.is_online());
    let c = m.connection("tab-1").unwrap();
    assert_eq!(c.status, ConnectionStatus::Active);
    assert_eq!(c.active_since, iso(0));
    assert!(c.has_focus);
    assert_eq!(c.last_focus_at.as_deref(), Some(iso(0).as_str()));
    assert_eq!(
        c.current_url.as_deref(),
        Some("https://shop.example.com/cart")
    );
    assert_eq!(
        (c.screen_width, c.screen_height, c.audio_supported),
        (1440, 900, false)
    );
    assert_eq!(c.full_tab_status, FullTabStatus::Off);
    assert_eq!(c.expected_disconnect, None);
    assert_eq!(m.status(), SessionStatus::None);
    assert_eq!(m.session_id(), None);
    assert_eq!(m.communication(), None);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn url_changes_update_the_connection() {
    let mut m = active();
    m.handle_url(at(5), "tab-1", "https://shop.example.com/checkout".into())
        .unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert_eq!(
        m.connection("tab-1").unwrap().current_url.as_deref(),
        Some("https://shop.example.com/checkout")
    );
    assert_eq!(comm(&m).provider_event_time, iso(5));
}

#[test]
fn a_tab_that_closes_outside_a_session_just_goes_offline() {
    let mut m = online();
    m.handle_disconnect(at(5), "tab-1").unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert!(!m.is_online());
    let c = m.connection("tab-1").unwrap();
    assert_eq!(c.status, ConnectionStatus::Disconnected);
    assert!(!c.has_focus);
    assert_eq!(m.poll_timeout(), None);
    // The closed tab is dropped once another one connects.
    m.handle_connect(at(6), tab("tab-2", false)).unwrap();
    assert_eq!(m.connections().len(), 1);
    assert!(m.connection("tab-1").is_none());
}

#[test]
fn a_closed_tab_may_reconnect_with_the_same_id() {
    let mut m = active();
    m.handle_disconnect(at(5), "tab-1").unwrap();
    m.handle_connect(at(6), tab("tab-1", true)).unwrap();
    assert_eq!(m.connections().len(), 1);
    assert_eq!(
        m.connection("tab-1").unwrap().status,
        ConnectionStatus::Active
    );
    assert_eq!(m.connection("tab-1").unwrap().active_since, iso(6));
}

// ----- session request -------------------------------------------------------------

#[test]
fn request_with_authorization_asks_the_visitor() {
    let mut m = online();
    m.handle_session_request(at(1), request(1)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionRequested {
                session_id: "s_1".into(),
                agent: ada(),
                connection_id: "tab-1".into()
            },
            Event::StateChanged,
        ]
    );
    assert_eq!(m.status(), SessionStatus::Authorizing);
    assert_eq!(m.session_id(), Some("s_1"));
    assert!(!m.session_authorized());
    assert_eq!(m.agents(), &[ada()]);
    assert_eq!(m.disconnect_type(), None);
    assert_eq!(m.timer_deadline(Timer::Authorization), Some(at(61)));
    assert_eq!(m.poll_timeout(), Some(at(61)));
    let c = comm(&m);
    assert_eq!(c.state, CommunicationState::Alerting);
    assert_eq!(c.initial_state, CommunicationState::Alerting);
    assert_eq!(c.id, "c_1");
    assert_eq!(c.cobrowse_session_id, "s_1");
    assert_eq!(c.cobrowse_role, CobrowseRole::Sharer);
    assert_eq!(c.peer_id.as_deref(), Some("c_agent_1"));
    assert_eq!(
        c.viewer_url.as_deref(),
        Some("http://127.0.0.1:8080/agent/#/sessions/s_1")
    );
    assert_eq!(c.provider, "covisit");
    assert_eq!(c.self_address.name.as_deref(), Some("v_7Kq2"));
    assert!(c.controlling.is_empty());
    assert_eq!(c.disconnect_type, None);
    assert_eq!(c.start_alerting_time.as_deref(), Some(iso(1).as_str()));
    assert_eq!(c.connected_time, None);
    assert_eq!(c.disconnected_time, None);
    assert_eq!(c.provider_event_time, iso(1));
    assert_eq!(
        c.segments,
        vec![seg(SegmentType::Alert, 1, None, None, None)]
    );
    assert_eq!(
        (
            c.wrapup.clone(),
            c.after_call_work.clone(),
            c.after_call_work_required
        ),
        (None, None, false)
    );
}

#[test]
fn request_without_authorization_goes_live_at_once() {
    let mut m = online_with(perms(false, true));
    m.handle_session_request(at(1), request(1)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionStarted {
                session_id: "s_1".into()
            },
            Event::StateChanged
        ]
    );
    assert_eq!(m.status(), SessionStatus::Active);
    assert!(m.session_authorized());
    assert_eq!(m.poll_timeout(), None);
    let c = comm(&m);
    assert_eq!(c.state, CommunicationState::Connected);
    assert_eq!(c.initial_state, CommunicationState::Connected);
    assert_eq!(c.start_alerting_time, None);
    assert_eq!(c.connected_time.as_deref(), Some(iso(1).as_str()));
    assert_eq!(
        c.segments,
        vec![seg(SegmentType::Interact, 1, None, None, None)]
    );
}

#[test]
fn the_authorization_timeout_comes_from_the_options() {
    let options = MachineOptions {
        authorization_timeout_seconds: 15,
        ..MachineOptions::default()
    };
    let mut m = VisitorMachine::new("v_7Kq2", options);
    m.handle_connect(at(0), tab("tab-1", true)).unwrap();
    m.handle_session_request(at(1), request(1)).unwrap();
    assert_eq!(m.poll_timeout(), Some(at(16)));
}

// ----- authorizing ends --------------------------------------------------------------

#[test]
fn authorize_makes_the_session_active() {
    let mut m = authorizing();
    m.handle_authorize(at(4)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionStarted {
                session_id: "s_1".into()
            },
            Event::StateChanged
        ]
    );
    assert_eq!(m.status(), SessionStatus::Active);
    assert!(m.session_authorized());
    assert_eq!(m.agents(), &[ada()]);
    assert_eq!(m.poll_timeout(), None, "the authorization timer stopped");
    let c = comm(&m);
    assert_eq!(c.state, CommunicationState::Connected);
    assert_eq!(c.initial_state, CommunicationState::Alerting);
    assert_eq!(c.start_alerting_time.as_deref(), Some(iso(1).as_str()));
    assert_eq!(c.connected_time.as_deref(), Some(iso(4).as_str()));
    assert_eq!(c.provider_event_time, iso(4));
    assert_eq!(
        c.segments,
        vec![
            seg(SegmentType::Alert, 1, Some(4), Some("connect"), None),
            seg(SegmentType::Interact, 4, None, None, None),
        ]
    );
    // The old deadline passing does nothing now.
    m.handle_timeout(at(61));
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.status(), SessionStatus::Active);
}

#[test]
fn deny_ends_the_request_as_client() {
    let mut m = authorizing();
    m.handle_deny(at(7)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Client), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Client, 7);
    assert_eq!(comm(&m).connected_time, None);
    assert_eq!(
        comm(&m).segments,
        vec![seg(
            SegmentType::Alert,
            1,
            Some(7),
            Some("disconnect"),
            Some(DisconnectType::Client)
        )]
    );
    assert_eq!(m.session_id(), Some("s_1"));
}

#[test]
fn no_answer_in_time_ends_the_request_as_timeout() {
    let mut m = authorizing();
    let deadline = m.poll_timeout().unwrap();
    assert_eq!(deadline, at(61));
    // Early: nothing happens.
    m.handle_timeout(Millis(deadline.0 - 1));
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.status(), SessionStatus::Authorizing);
    assert_eq!(m.poll_timeout(), Some(deadline));
    // On time: ended.
    m.handle_timeout(deadline);
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Timeout), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Timeout, 61);
    // Twice: harmless.
    m.handle_timeout(deadline);
    m.handle_timeout(at(120));
    assert_eq!(drain(&mut m), vec![]);
    assert_ended(&m, DisconnectType::Timeout, 61);
}

#[test]
fn a_late_timeout_call_ends_at_the_call_time() {
    let mut m = authorizing();
    m.handle_timeout(at(90));
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Timeout), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Timeout, 90);
}

#[test]
fn the_agent_cancelling_its_request_ends_it_as_peer() {
    let mut m = authorizing();
    m.handle_agent_end(at(9)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Peer), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Peer, 9);

    // Leaving as the only agent is a cancel too.
    let mut m = authorizing();
    m.handle_agent_leave(at(9), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Peer), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Peer, 9);
}

#[test]
fn the_visitor_dismissing_a_request_ends_it_as_client() {
    let mut m = authorizing();
    m.handle_visitor_end(at(3)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Client), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Client, 3);
}

#[test]
fn the_server_ending_a_request_ends_it_as_system() {
    let mut m = authorizing();
    m.handle_server_end(at(3)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::System), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::System, 3);
}

// ----- active ends -------------------------------------------------------------------

#[test]
fn the_visitor_ending_ends_as_client() {
    let mut m = active();
    m.handle_visitor_end(at(30)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Client), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Client, 30);
}

#[test]
fn the_agent_ending_ends_as_peer() {
    let mut m = active();
    m.handle_agent_end(at(30)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Peer), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Peer, 30);
}

#[test]
fn the_last_agent_leaving_ends_as_peer() {
    let mut m = active();
    m.handle_agent_leave(at(30), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Peer), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Peer, 30);
}

#[test]
fn one_of_two_agents_leaving_keeps_the_session() {
    let mut m = active();
    m.handle_agent_join(at(10), bob()).unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert_eq!(m.agents(), &[ada(), bob()]);
    m.handle_agent_leave(at(20), "ea_ada").unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert_eq!(m.status(), SessionStatus::Active);
    assert_eq!(m.agents(), &[bob()]);
    assert_eq!(comm(&m).provider_event_time, iso(20));
    // Bob leaving too ends it.
    m.handle_agent_leave(at(25), "ea_bob").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Peer), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Peer, 25);
}

#[test]
fn an_agent_may_join_a_pending_request() {
    let mut m = authorizing();
    m.handle_agent_join(at(3), bob()).unwrap();
    assert_eq!(m.agents(), &[ada(), bob()]);
    m.handle_agent_leave(at(4), "ea_ada").unwrap();
    assert_eq!(
        m.status(),
        SessionStatus::Authorizing,
        "Bob still waits for the answer"
    );
    m.handle_authorize(at(5)).unwrap();
    assert_eq!(m.agents(), &[bob()]);
}

#[test]
fn the_server_ending_ends_as_system() {
    let mut m = active();
    m.handle_server_end(at(30)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::System), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::System, 30);
}

// ----- connections gone: grace and hold -----------------------------------------------

#[test]
fn every_tab_dropping_unannounced_holds_then_fails_after_the_grace_period() {
    let mut m = active();
    m.handle_disconnect(at(10), "tab-1").unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert_eq!(m.status(), SessionStatus::Active);
    assert_eq!(m.timer_deadline(Timer::Grace), Some(at(40)));
    assert_eq!(m.timer_deadline(Timer::ExpectedReturn), None);
    assert_eq!(m.poll_timeout(), Some(at(40)));
    assert_eq!(
        comm(&m).segments,
        vec![
            seg(SegmentType::Alert, 1, Some(2), Some("connect"), None),
            seg(SegmentType::Interact, 2, Some(10), Some("hold"), None),
            seg(SegmentType::Hold, 10, None, None, None),
        ]
    );
    m.handle_timeout(at(39));
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.status(), SessionStatus::Active);
    m.handle_timeout(at(40));
    assert_eq!(
        drain(&mut m),
        vec![
            ended(1, DisconnectType::TransportFailure),
            Event::StateChanged
        ]
    );
    assert_ended(&m, DisconnectType::TransportFailure, 40);
    assert_eq!(
        comm(&m).segments[2],
        seg(
            SegmentType::Hold,
            10,
            Some(40),
            Some("disconnect"),
            Some(DisconnectType::TransportFailure)
        )
    );
    m.handle_timeout(at(41));
    assert_eq!(drain(&mut m), vec![]);
}

#[test]
fn the_grace_period_comes_from_the_options() {
    let options = MachineOptions {
        grace_period_seconds: 5,
        ..MachineOptions::default()
    };
    let mut m = VisitorMachine::new("v_7Kq2", options);
    m.handle_connect(at(0), tab_with("tab-1", true, perms(false, true)))
        .unwrap();
    m.handle_session_request(at(1), request(1)).unwrap();
    m.handle_disconnect(at(10), "tab-1").unwrap();
    assert_eq!(m.poll_timeout(), Some(at(15)));
}

#[test]
fn reconnecting_within_the_grace_period_continues_the_session() {
    let mut m = active();
    m.handle_disconnect(at(10), "tab-1").unwrap();
    drain(&mut m);
    m.handle_connect(at(25), tab("tab-2", true)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionContinued {
                session_id: "s_1".into(),
                connection_id: "tab-2".into()
            },
            Event::StateChanged,
        ]
    );
    assert_eq!(m.status(), SessionStatus::Active);
    assert!(m.session_authorized());
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(
        comm(&m).segments[2..],
        [
            seg(SegmentType::Hold, 10, Some(25), Some("resume"), None),
            seg(SegmentType::Interact, 25, None, None, None)
        ]
    );
    // The old grace deadline passing does nothing.
    m.handle_timeout(at(40));
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.status(), SessionStatus::Active);
}

#[test]
fn one_of_two_tabs_closing_is_no_hold() {
    let mut m = active();
    m.handle_connect(at(3), tab("tab-2", false)).unwrap();
    drain(&mut m);
    m.handle_disconnect(at(10), "tab-1").unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert!(m.is_online());
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(
        comm(&m).segments.last().unwrap().segment_type,
        SegmentType::Interact
    );
    // A second tab connecting while another is open is not a "continue".
    m.handle_connect(at(11), tab("tab-3", false)).unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
}

#[test]
fn every_tab_dropping_during_authorizing_fails_after_the_grace_period() {
    // Not one of SPEC's four ways out of `authorizing`, but the visitor is gone: the
    // grace timer (30 s) ends the request before the 60 s prompt would.
    let mut m = authorizing();
    m.handle_disconnect(at(5), "tab-1").unwrap();
    assert_eq!(m.poll_timeout(), Some(at(35)));
    assert_eq!(
        comm(&m).segments,
        vec![seg(SegmentType::Alert, 1, None, None, None)],
        "no Hold while alerting"
    );
    m.handle_timeout(at(35));
    assert_eq!(
        drain(&mut m),
        vec![
            Event::StateChanged,
            ended(1, DisconnectType::TransportFailure),
            Event::StateChanged
        ]
    );
    assert_ended(&m, DisconnectType::TransportFailure, 35);
}

// ----- expected disconnects (navigation) ----------------------------------------------

#[test]
fn expected_disconnect_defaults_to_ten_seconds_and_returning_in_time_continues() {
    let mut m = active();
    m.handle_expect_disconnect(at(10), "tab-1", None, None, None)
        .unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert_eq!(
        m.connection("tab-1").unwrap().expected_disconnect,
        Some(ExpectedDisconnect {
            return_time_seconds: None,
            message: None,
            title: None,
            ts: at(10).0
        })
    );
    assert_eq!(m.poll_timeout(), None, "announcing alone starts no timer");
    m.handle_disconnect(at(10), "tab-1").unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert_eq!(m.timer_deadline(Timer::ExpectedReturn), Some(at(20)));
    assert_eq!(m.timer_deadline(Timer::Grace), None);
    assert_eq!(
        comm(&m).segments.last().unwrap(),
        &seg(SegmentType::Hold, 10, None, None, None)
    );
    m.handle_timeout(at(19));
    assert_eq!(drain(&mut m), vec![]);
    // The next page of the same visitor resumes without asking again.
    m.handle_connect(Millis(at(20).0 - 1), tab("tab-next", true))
        .unwrap();
    let events = drain(&mut m);
    assert_eq!(
        events,
        vec![
            Event::SessionContinued {
                session_id: "s_1".into(),
                connection_id: "tab-next".into()
            },
            Event::StateChanged,
        ]
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::SessionRequested { .. })));
    assert_eq!(m.status(), SessionStatus::Active);
    assert_eq!(
        comm(&m).segments.last().unwrap().segment_type,
        SegmentType::Interact
    );
    m.handle_timeout(at(20));
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.status(), SessionStatus::Active);
}

#[test]
fn expected_disconnect_not_returning_in_time_ends_as_timeout() {
    let mut m = active();
    m.handle_expect_disconnect(at(10), "tab-1", None, None, None)
        .unwrap();
    m.handle_disconnect(at(10), "tab-1").unwrap();
    drain(&mut m);
    m.handle_timeout(at(20));
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Timeout), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Timeout, 20);
    assert_eq!(
        comm(&m).segments.last().unwrap(),
        &seg(
            SegmentType::Hold,
            10,
            Some(20),
            Some("disconnect"),
            Some(DisconnectType::Timeout)
        )
    );
}

#[test]
fn expected_disconnect_with_a_custom_return_time() {
    let announce = |m: &mut VisitorMachine| {
        m.handle_expect_disconnect(
            at(10),
            "tab-1",
            Some(120),
            Some("Paying with your bank".into()),
            Some("Back soon".into()),
        )
        .unwrap();
        m.handle_disconnect(at(10), "tab-1").unwrap();
        drain(m);
    };
    let mut m = active();
    announce(&mut m);
    let expected = m
        .connection("tab-1")
        .unwrap()
        .expected_disconnect
        .clone()
        .unwrap();
    assert_eq!(expected.return_time_seconds, Some(120));
    assert_eq!(expected.message.as_deref(), Some("Paying with your bank"));
    assert_eq!(expected.title.as_deref(), Some("Back soon"));
    assert_eq!(m.poll_timeout(), Some(at(130)));
    // Past the default 10 s, still fine.
    m.handle_timeout(at(60));
    assert_eq!(m.status(), SessionStatus::Active);
    m.handle_connect(at(129), tab("tab-back", true)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionContinued {
                session_id: "s_1".into(),
                connection_id: "tab-back".into()
            },
            Event::StateChanged,
        ]
    );

    let mut m = active();
    announce(&mut m);
    m.handle_timeout(at(130));
    assert_eq!(
        drain(&mut m),
        vec![ended(1, DisconnectType::Timeout), Event::StateChanged]
    );
    assert_ended(&m, DisconnectType::Timeout, 130);
}

#[test]
fn the_return_time_counts_from_the_disconnect() {
    // A page may announce well before it actually leaves; the visitor gets the whole
    // return time from the moment the tab is gone.
    let mut m = active();
    m.handle_expect_disconnect(at(10), "tab-1", Some(30), None, None)
        .unwrap();
    m.handle_disconnect(at(25), "tab-1").unwrap();
    assert_eq!(m.poll_timeout(), Some(at(55)));
}

#[test]
fn navigation_during_authorizing_re_sends_the_prompt_to_the_new_page() {
    let mut m = authorizing();
    m.handle_expect_disconnect(at(5), "tab-1", None, None, None)
        .unwrap();
    m.handle_disconnect(at(5), "tab-1").unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert_eq!(m.status(), SessionStatus::Authorizing);
    assert_eq!(
        m.poll_timeout(),
        Some(at(15)),
        "the return timer is earlier than the prompt's"
    );
    m.handle_connect(at(6), tab("tab-2", true)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionRequested {
                session_id: "s_1".into(),
                agent: ada(),
                connection_id: "tab-2".into()
            },
            Event::StateChanged,
        ]
    );
    assert_eq!(m.status(), SessionStatus::Authorizing);
    assert_eq!(
        m.poll_timeout(),
        Some(at(61)),
        "the prompt's own deadline still runs"
    );
    m.handle_authorize(at(8)).unwrap();
    assert_eq!(m.status(), SessionStatus::Active);
}

#[test]
fn authorizing_while_no_tab_is_open_starts_on_hold() {
    let mut m = authorizing();
    m.handle_expect_disconnect(at(5), "tab-1", None, None, None)
        .unwrap();
    m.handle_disconnect(at(5), "tab-1").unwrap();
    m.handle_authorize(at(6)).unwrap();
    assert_eq!(m.status(), SessionStatus::Active);
    assert_eq!(
        comm(&m).segments,
        vec![
            seg(SegmentType::Alert, 1, Some(6), Some("connect"), None),
            seg(SegmentType::Hold, 6, None, None, None)
        ]
    );
    assert_eq!(
        m.poll_timeout(),
        Some(at(15)),
        "the return timer keeps running"
    );
    m.handle_timeout(at(15));
    assert_ended(&m, DisconnectType::Timeout, 15);
}

// ----- focus and prompt targets ---------------------------------------------------------

#[test]
fn the_prompt_targets_the_focused_tab_and_follows_focus() {
    let mut m = online();
    m.handle_connect(at(1), tab("tab-2", false)).unwrap();
    drain(&mut m);
    assert_eq!(focused(&m), ["tab-1"]);
    m.handle_session_request(at(2), request(1)).unwrap();
    assert_eq!(
        drain(&mut m)[..1],
        [Event::SessionRequested {
            session_id: "s_1".into(),
            agent: ada(),
            connection_id: "tab-1".into()
        }]
    );
    m.handle_focus(at(3), "tab-2", true).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionRequested {
                session_id: "s_1".into(),
                agent: ada(),
                connection_id: "tab-2".into()
            },
            Event::PromptWithdrawn {
                prompt: PromptKind::Session,
                connection_id: "tab-1".into()
            },
            Event::StateChanged,
        ]
    );
    assert_eq!(focused(&m), ["tab-2"], "at most one tab has focus");
    assert_eq!(m.prompt_target(), Some("tab-2"));
    // Focusing the same tab again re-sends nothing.
    m.handle_focus(at(4), "tab-2", true).unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    // Blurring keeps the prompt in the tab looked at last.
    m.handle_focus(at(5), "tab-2", false).unwrap();
    assert_eq!(drain(&mut m), vec![Event::StateChanged]);
    assert!(focused(&m).is_empty());
    assert_eq!(m.prompt_target(), Some("tab-2"));
    m.handle_focus(at(6), "tab-1", true).unwrap();
    assert_eq!(
        drain(&mut m)[..1],
        [Event::SessionRequested {
            session_id: "s_1".into(),
            agent: ada(),
            connection_id: "tab-1".into()
        }]
    );
}

#[test]
fn a_new_focused_tab_takes_focus_and_the_prompt() {
    let mut m = authorizing();
    m.handle_connect(at(3), tab("tab-2", true)).unwrap();
    assert_eq!(focused(&m), ["tab-2"]);
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionRequested {
                session_id: "s_1".into(),
                agent: ada(),
                connection_id: "tab-2".into()
            },
            Event::PromptWithdrawn {
                prompt: PromptKind::Session,
                connection_id: "tab-1".into()
            },
            Event::StateChanged,
        ]
    );
    // The focused tab closing moves the prompt back to the other one; the closed tab
    // has nothing to withdraw.
    m.handle_disconnect(at(4), "tab-2").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionRequested {
                session_id: "s_1".into(),
                agent: ada(),
                connection_id: "tab-1".into()
            },
            Event::StateChanged,
        ]
    );
}

#[test]
fn last_focus_at_records_gaining_and_losing_focus() {
    let mut m = online();
    m.handle_connect(at(1), tab("tab-2", false)).unwrap();
    assert_eq!(
        m.connection("tab-1").unwrap().last_focus_at.as_deref(),
        Some(iso(0).as_str())
    );
    assert_eq!(m.connection("tab-2").unwrap().last_focus_at, None);
    m.handle_focus(at(5), "tab-2", true).unwrap();
    assert_eq!(
        m.connection("tab-1").unwrap().last_focus_at.as_deref(),
        Some(iso(5).as_str())
    );
    assert_eq!(
        m.connection("tab-2").unwrap().last_focus_at.as_deref(),
        Some(iso(5).as_str())
    );
    assert!(!m.connection("tab-1").unwrap().has_focus);
    m.handle_focus(at(9), "tab-2", false).unwrap();
    assert_eq!(
        m.connection("tab-2").unwrap().last_focus_at.as_deref(),
        Some(iso(9).as_str())
    );
    assert_eq!(
        m.connection("tab-1").unwrap().last_focus_at.as_deref(),
        Some(iso(5).as_str())
    );
    // Blurring a tab that had no focus changes nothing.
    m.handle_focus(at(12), "tab-1", false).unwrap();
    assert_eq!(
        m.connection("tab-1").unwrap().last_focus_at.as_deref(),
        Some(iso(5).as_str())
    );
}

// ----- remote control -------------------------------------------------------------------

fn active_with(permissions: Permissions) -> VisitorMachine {
    let mut m = online_with(permissions);
    m.handle_session_request(at(1), request(1)).unwrap();
    if m.status() == SessionStatus::Authorizing {
        m.handle_authorize(at(2)).unwrap();
    }
    drain(&mut m);
    m
}

/// Active, Ada asked for control at T0+3 s and the visitor granted it at T0+4 s.
fn controlled() -> VisitorMachine {
    let mut m = active();
    m.handle_control_request(at(3), "ea_ada").unwrap();
    m.handle_control_grant(at(4)).unwrap();
    drain(&mut m);
    m
}

#[test]
fn control_request_asks_the_visitor_then_grant_starts_control() {
    let mut m = active();
    m.handle_control_request(at(3), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::ControlRequested {
                agent: ada(),
                connection_id: "tab-1".into()
            },
            Event::StateChanged
        ]
    );
    assert_eq!(
        m.control(),
        ControlState::Requested {
            agent_id: "ea_ada".into(),
            connection_id: "tab-1".into()
        }
    );
    assert_eq!(m.controlling_agent(), None);
    m.handle_control_grant(at(4)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::ControlStarted {
                agent_id: "ea_ada".into(),
                connection_id: "tab-1".into()
            },
            Event::StateChanged,
        ]
    );
    assert_eq!(
        m.control(),
        ControlState::Granted {
            agent_id: "ea_ada".into(),
            connection_id: "tab-1".into()
        }
    );
    assert_eq!(m.controlling_agent(), Some("ea_ada"));
    assert_eq!(comm(&m).provider_event_time, iso(4));
    assert!(
        comm(&m).controlling.is_empty(),
        "the sharer controls nobody"
    );
}

#[test]
fn control_without_require_control_request_is_granted_at_once() {
    let mut m = active_with(perms(true, false));
    m.handle_control_request(at(3), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::ControlStarted {
                agent_id: "ea_ada".into(),
                connection_id: "tab-1".into()
            },
            Event::StateChanged,
        ]
    );
    assert_eq!(m.controlling_agent(), Some("ea_ada"));
}

#[test]
fn control_deny_ends_the_request() {
    let mut m = active();
    m.handle_control_request(at(3), "ea_ada").unwrap();
    drain(&mut m);
    m.handle_control_deny(at(4)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::Denied),
            Event::StateChanged
        ]
    );
    assert_eq!(m.control(), ControlState::None);
    // The agent may ask again.
    m.handle_control_request(at(5), "ea_ada").unwrap();
    assert!(matches!(m.control(), ControlState::Requested { .. }));
}

#[test]
fn the_visitor_revokes_control() {
    let mut m = controlled();
    m.handle_control_revoke(at(9)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::RevokedByVisitor),
            Event::StateChanged
        ]
    );
    assert_eq!(m.control(), ControlState::None);
    assert_eq!(m.status(), SessionStatus::Active);
}

#[test]
fn the_agent_releases_control_or_withdraws_its_request() {
    let mut m = controlled();
    m.handle_agent_control_release(at(9), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::RevokedByAgent),
            Event::StateChanged
        ]
    );
    assert_eq!(m.control(), ControlState::None);

    let mut m = active();
    m.handle_control_request(at(3), "ea_ada").unwrap();
    drain(&mut m);
    m.handle_agent_control_release(at(4), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::RevokedByAgent),
            Event::StateChanged
        ]
    );
    assert_eq!(m.control(), ControlState::None);
}

#[test]
fn control_is_revoked_when_the_session_ends() {
    let mut m = controlled();
    m.handle_visitor_end(at(9)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::SessionEnded),
            ended(1, DisconnectType::Client),
            Event::StateChanged,
        ]
    );
    assert_eq!(m.control(), ControlState::None);
    assert_eq!(m.controlling_agent(), None);

    // A pending request goes too.
    let mut m = active();
    m.handle_control_request(at(3), "ea_ada").unwrap();
    drain(&mut m);
    m.handle_server_end(at(4)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::SessionEnded),
            ended(1, DisconnectType::System),
            Event::StateChanged
        ]
    );

    // And when the tabs are gone for good.
    let mut m = controlled();
    m.handle_connect(at(5), tab("tab-2", false)).unwrap();
    m.handle_disconnect(at(6), "tab-2").unwrap();
    m.handle_expect_disconnect(at(7), "tab-1", Some(5), None, None)
        .unwrap();
    m.handle_disconnect(at(7), "tab-1").unwrap();
    assert_eq!(
        m.control(),
        ControlState::None,
        "the controlled tab closing revoked control"
    );
    m.handle_timeout(at(12));
    assert_ended(&m, DisconnectType::Timeout, 12);
}

#[test]
fn control_is_revoked_when_the_controlled_tab_loses_focus() {
    let mut m = controlled();
    m.handle_connect(at(5), tab("tab-2", false)).unwrap();
    drain(&mut m);
    assert_eq!(
        m.controlling_agent(),
        Some("ea_ada"),
        "another tab connecting unfocused changes nothing"
    );
    m.handle_focus(at(6), "tab-2", true).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::FocusLost),
            Event::StateChanged
        ]
    );
    assert_eq!(m.control(), ControlState::None);
    assert_eq!(m.status(), SessionStatus::Active);

    // Blur alone is losing focus too.
    let mut m = controlled();
    m.handle_focus(at(6), "tab-1", false).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::FocusLost),
            Event::StateChanged
        ]
    );

    // Focus changes in another tab leave it alone.
    let mut m = controlled();
    m.handle_connect(at(5), tab("tab-2", false)).unwrap();
    m.handle_focus(at(6), "tab-2", false).unwrap();
    assert_eq!(m.controlling_agent(), Some("ea_ada"));
}

#[test]
fn control_is_revoked_when_the_controlled_tab_disconnects() {
    let mut m = controlled();
    m.handle_connect(at(5), tab("tab-2", false)).unwrap();
    drain(&mut m);
    m.handle_disconnect(at(6), "tab-1").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::FocusLost),
            Event::StateChanged
        ]
    );
    assert_eq!(m.control(), ControlState::None);
    assert_eq!(m.status(), SessionStatus::Active);
}

#[test]
fn a_pending_control_request_follows_the_visitor() {
    let mut m = active();
    m.handle_connect(at(3), tab("tab-2", false)).unwrap();
    m.handle_control_request(at(4), "ea_ada").unwrap();
    drain(&mut m);
    m.handle_focus(at(5), "tab-2", true).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::ControlRequested {
                agent: ada(),
                connection_id: "tab-2".into()
            },
            Event::PromptWithdrawn {
                prompt: PromptKind::Control,
                connection_id: "tab-1".into()
            },
            Event::StateChanged
        ]
    );
    m.handle_control_grant(at(6)).unwrap();
    assert_eq!(
        m.control(),
        ControlState::Granted {
            agent_id: "ea_ada".into(),
            connection_id: "tab-2".into()
        }
    );
}

#[test]
fn a_pending_control_request_moves_when_its_tab_closes() {
    let mut m = active();
    m.handle_connect(at(3), tab("tab-2", false)).unwrap();
    m.handle_control_request(at(4), "ea_ada").unwrap();
    drain(&mut m);
    m.handle_disconnect(at(5), "tab-1").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::ControlRequested {
                agent: ada(),
                connection_id: "tab-2".into()
            },
            Event::StateChanged
        ]
    );
    assert_eq!(
        m.control(),
        ControlState::Requested {
            agent_id: "ea_ada".into(),
            connection_id: "tab-2".into()
        }
    );
}

#[test]
fn a_pending_control_request_is_asked_again_on_the_next_page() {
    let mut m = active();
    m.handle_control_request(at(3), "ea_ada").unwrap();
    m.handle_expect_disconnect(at(4), "tab-1", None, None, None)
        .unwrap();
    m.handle_disconnect(at(4), "tab-1").unwrap();
    drain(&mut m);
    m.handle_connect(at(5), tab("tab-next", true)).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionContinued {
                session_id: "s_1".into(),
                connection_id: "tab-next".into()
            },
            Event::ControlRequested {
                agent: ada(),
                connection_id: "tab-next".into()
            },
            Event::StateChanged,
        ]
    );
    m.handle_control_grant(at(6)).unwrap();
    assert_eq!(
        m.control(),
        ControlState::Granted {
            agent_id: "ea_ada".into(),
            connection_id: "tab-next".into()
        }
    );
}

#[test]
fn an_agent_leaving_with_control_gives_it_back() {
    let mut m = controlled();
    m.handle_agent_join(at(5), bob()).unwrap();
    drain(&mut m);
    m.handle_agent_leave(at(6), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::RevokedByAgent),
            Event::StateChanged
        ]
    );
    assert_eq!(m.status(), SessionStatus::Active);
    assert_eq!(m.control(), ControlState::None);
    m.handle_control_request(at(7), "ea_bob").unwrap();
    assert!(
        matches!(m.control(), ControlState::Requested { agent_id, .. } if agent_id == "ea_bob")
    );

    // Another agent leaving leaves control alone.
    let mut m = controlled();
    m.handle_agent_join(at(5), bob()).unwrap();
    m.handle_agent_leave(at(6), "ea_bob").unwrap();
    assert_eq!(m.controlling_agent(), Some("ea_ada"));

    // The last agent leaving with control: control ends, then the session.
    let mut m = controlled();
    m.handle_agent_leave(at(6), "ea_ada").unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            control_ended("ea_ada", ControlEndReason::RevokedByAgent),
            ended(1, DisconnectType::Peer),
            Event::StateChanged,
        ]
    );
    assert_ended(&m, DisconnectType::Peer, 6);
}

// ----- the communication over a whole session ------------------------------------------

#[test]
fn the_communication_records_the_whole_timeline() {
    let mut m = authorizing();
    m.handle_authorize(at(2)).unwrap();
    assert_eq!(comm(&m).provider_event_time, iso(2));
    m.handle_disconnect(at(10), "tab-1").unwrap();
    assert_eq!(comm(&m).provider_event_time, iso(10));
    m.handle_connect(at(20), tab("tab-2", true)).unwrap();
    m.handle_visitor_end(at(30)).unwrap();
    let c = comm(&m).clone();
    assert_eq!(c.state, CommunicationState::Disconnected);
    assert_eq!(c.initial_state, CommunicationState::Alerting);
    assert_eq!(c.start_alerting_time.as_deref(), Some(iso(1).as_str()));
    assert_eq!(c.connected_time.as_deref(), Some(iso(2).as_str()));
    assert_eq!(c.disconnected_time.as_deref(), Some(iso(30).as_str()));
    assert_eq!(c.provider_event_time, iso(30));
    assert_eq!(c.disconnect_type, Some(DisconnectType::Client));
    assert_eq!(
        c.segments,
        vec![
            seg(SegmentType::Alert, 1, Some(2), Some("connect"), None),
            seg(SegmentType::Interact, 2, Some(10), Some("hold"), None),
            seg(SegmentType::Hold, 10, Some(20), Some("resume"), None),
            seg(
                SegmentType::Interact,
                20,
                Some(30),
                Some("disconnect"),
                Some(DisconnectType::Client)
            ),
        ]
    );
    // Nothing after the end touches it.
    m.handle_url(at(40), "tab-2", "https://shop.example.com/".into())
        .unwrap();
    m.handle_disconnect(at(41), "tab-2").unwrap();
    m.handle_timeout(at(500));
    assert_eq!(comm(&m), &c);
}

#[test]
fn a_new_request_after_the_end_is_a_new_session() {
    let mut m = active();
    m.handle_visitor_end(at(30)).unwrap();
    drain(&mut m);
    m.handle_session_request(
        at(40),
        SessionRequest {
            agent: bob(),
            ..request(2)
        },
    )
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            Event::SessionRequested {
                session_id: "s_2".into(),
                agent: bob(),
                connection_id: "tab-1".into()
            },
            Event::StateChanged,
        ]
    );
    assert_eq!(m.status(), SessionStatus::Authorizing);
    assert_eq!(m.session_id(), Some("s_2"));
    assert_eq!(m.disconnect_type(), None);
    assert_eq!(m.agents(), &[bob()]);
    assert_eq!(m.poll_timeout(), Some(at(100)));
    let c = comm(&m);
    assert_eq!(
        (c.id.as_str(), c.cobrowse_session_id.as_str()),
        ("c_2", "s_2")
    );
    assert_eq!(c.state, CommunicationState::Alerting);
    assert_eq!(c.disconnect_type, None);
    assert_eq!(
        (c.connected_time.clone(), c.disconnected_time.clone()),
        (None, None)
    );
    assert_eq!(
        c.segments,
        vec![seg(SegmentType::Alert, 40, None, None, None)]
    );
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut m = active();
    // The driver's clock stepped back 2 s: nothing is written before what was seen.
    m.handle_disconnect(at(0), "tab-1").unwrap();
    assert_eq!(comm(&m).segments.last().unwrap().start_time, iso(2));
    assert_eq!(comm(&m).provider_event_time, iso(2));
    assert_eq!(m.poll_timeout(), Some(at(32)));
    m.handle_visitor_end(at(1)).unwrap();
    assert_ended(&m, DisconnectType::Client, 2);
}

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let mut m = authorizing();
    assert_eq!(m.poll_timeout(), Some(at(61)));
    m.handle_disconnect(at(5), "tab-1").unwrap();
    assert_eq!(m.timer_deadline(Timer::Authorization), Some(at(61)));
    assert_eq!(m.timer_deadline(Timer::Grace), Some(at(35)));
    assert_eq!(m.poll_timeout(), Some(at(35)));
    m.handle_connect(at(6), tab("tab-2", true)).unwrap();
    assert_eq!(m.timer_deadline(Timer::Grace), None);
    assert_eq!(m.poll_timeout(), Some(at(61)));
}

#[test]
fn the_timer_table_is_harmless_early_and_twice() {
    let mut t = TimerTable::default();
    assert_eq!(t.next_deadline(), None);
    t.set(Timer::Grace, at(30));
    t.set(Timer::Authorization, at(60));
    assert_eq!(t.next_deadline(), Some(at(30)));
    assert_eq!(t.take_expired(at(29)), None);
    assert_eq!(t.take_expired(at(61)), Some(Timer::Authorization));
    assert_eq!(t.take_expired(at(61)), Some(Timer::Grace));
    assert_eq!(t.take_expired(at(61)), None);
    t.set(Timer::ExpectedReturn, at(5));
    t.stop_all();
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn errors_have_stable_codes() {
    let mut m = online();
    let e = m.handle_authorize(at(1)).unwrap_err();
    assert_eq!(
        e,
        MachineError::InappropriateInput {
            input: "authorize",
            expected: "authorizing",
            got: "none"
        }
    );
    assert_eq!(e.code(), "wrong_session_state");
    assert_eq!(
        e.to_string(),
        "`authorize` is not valid now: expected authorizing, but the session is none"
    );
    let mut m = active();
    let e = m.handle_control_grant(at(3)).unwrap_err();
    assert_eq!(e.code(), "wrong_control_state");
    assert_eq!(
        m.handle_focus(at(3), "nope", true).unwrap_err().code(),
        "unknown_connection"
    );
    assert_eq!(
        m.handle_connect(at(3), tab("tab-1", true))
            .unwrap_err()
            .code(),
        "duplicate_connection"
    );
    assert_eq!(
        m.handle_control_request(at(3), "ea_x").unwrap_err().code(),
        "unknown_agent"
    );
    assert_eq!(
        m.handle_agent_join(at(3), ada()).unwrap_err().code(),
        "duplicate_agent"
    );
    let e = m
        .handle_expect_disconnect(at(3), "tab-1", Some(3601), None, None)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    let mut offline = VisitorMachine::new("v_1", MachineOptions::default());
    assert_eq!(
        offline
            .handle_session_request(at(1), request(1))
            .unwrap_err()
            .code(),
        "visitor_offline"
    );
}
