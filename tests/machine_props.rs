//! Property tests of the visitor machine: random sequences of up to 60 inputs (tabs
//! coming and going across three connection ids, focus, navigation, session requests
//! with or without authorization, answers, two agents joining and leaving, remote
//! control, time passing and sometimes going backwards) with SPEC.md section 2's
//! invariants checked after every step.
// Native only: these use proptest or the file system, which wasm32 lacks.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{HashMap, HashSet};

use covisit::core::config::Permissions;
use covisit::core::machine::{
    ConnectionInfo, ControlState, Event, MachineError, MachineOptions, PromptKind, SessionRequest,
    SessionStatus, Timer, VisitorMachine,
};
use covisit::core::model::{
    Agent, Cobrowsesession, CommunicationState, ConnectionStatus, SegmentType,
};
use covisit::core::Millis;
use proptest::prelude::*;

/// 2026-11-21T10:04:05.000Z.
const T0: Millis = Millis(1_795_255_445_000);
const TABS: [&str; 3] = ["tab-0", "tab-1", "tab-2"];
const AGENTS: [&str; 2] = ["ea_0", "ea_1"];

#[derive(Debug, Clone)]
enum Op {
    /// A tab connects; the page's config decides whether sessions and control need the
    /// visitor's consent (the machine takes both from the latest connection).
    Connect {
        tab: usize,
        focus: bool,
        require_authorization: bool,
        require_control_request: bool,
    },
    Disconnect {
        tab: usize,
    },
    ExpectDisconnect {
        tab: usize,
        seconds: Option<u64>,
    },
    Focus {
        tab: usize,
        focused: bool,
    },
    Url {
        tab: usize,
    },
    Request {
        agent: usize,
    },
    Authorize,
    Deny,
    VisitorEnd,
    AgentEnd,
    ServerEnd,
    AgentJoin {
        agent: usize,
    },
    AgentLeave {
        agent: usize,
    },
    ControlRequest {
        agent: usize,
    },
    ControlGrant,
    ControlDeny,
    ControlRevoke,
    ControlRelease {
        agent: usize,
    },
    /// Time passes, then the driver calls `handle_timeout`.
    Advance {
        millis: u64,
    },
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    /// How far the driver's clock is behind for this one input (usually 0).
    behind_millis: u64,
}

fn op() -> impl Strategy<Value = Op> {
    let tab = 0..TABS.len();
    let agent = 0..AGENTS.len();
    prop_oneof![
        4 => (tab.clone(), any::<bool>(), prop::bool::weighted(0.7), any::<bool>()).prop_map(
            |(tab, focus, require_authorization, require_control_request)| Op::Connect {
                tab,
                focus,
                require_authorization,
                require_control_request,
            }
        ),
        3 => tab.clone().prop_map(|tab| Op::Disconnect { tab }),
        2 => (
            tab.clone(),
            prop_oneof![Just(None), (0u64..200).prop_map(Some), (3590u64..3700).prop_map(Some)]
        )
            .prop_map(|(tab, seconds)| Op::ExpectDisconnect { tab, seconds }),
        3 => (tab.clone(), any::<bool>()).prop_map(|(tab, focused)| Op::Focus { tab, focused }),
        1 => tab.prop_map(|tab| Op::Url { tab }),
        3 => agent.clone().prop_map(|agent| Op::Request { agent }),
        3 => Just(Op::Authorize),
        1 => Just(Op::Deny),
        1 => Just(Op::VisitorEnd),
        1 => Just(Op::AgentEnd),
        1 => Just(Op::ServerEnd),
        2 => agent.clone().prop_map(|agent| Op::AgentJoin { agent }),
        2 => agent.clone().prop_map(|agent| Op::AgentLeave { agent }),
        3 => agent.clone().prop_map(|agent| Op::ControlRequest { agent }),
        3 => Just(Op::ControlGrant),
        1 => Just(Op::ControlDeny),
        1 => Just(Op::ControlRevoke),
        1 => agent.prop_map(|agent| Op::ControlRelease { agent }),
        // Mostly short waits so sessions live long enough to get interesting; sometimes
        // long ones that fire the 10 s, 30 s and 60 s timers.
        5 => prop_oneof![3 => 0u64..5_000, 2 => 5_000u64..20_000, 1 => 20_000u64..=120_000]
            .prop_map(|millis| Op::Advance { millis }),
    ]
}

/// Tabs coming and going (reloads, navigation, closed tabs, network blips) around a
/// live session, with control and time: the paths to Hold, resume and the timers.
fn churn_op() -> impl Strategy<Value = Op> {
    let tab = 0..TABS.len();
    prop_oneof![
        4 => (tab.clone(), any::<bool>()).prop_map(|(tab, focus)| Op::Connect {
            tab,
            focus,
            require_authorization: true,
            require_control_request: true,
        }),
        5 => tab.clone().prop_map(|tab| Op::Disconnect { tab }),
        3 => (tab.clone(), prop_oneof![Just(None), (0u64..60).prop_map(Some)])
            .prop_map(|(tab, seconds)| Op::ExpectDisconnect { tab, seconds }),
        2 => (tab, any::<bool>()).prop_map(|(tab, focused)| Op::Focus { tab, focused }),
        2 => (0..AGENTS.len()).prop_map(|agent| Op::ControlRequest { agent }),
        2 => Just(Op::ControlGrant),
        1 => Just(Op::ControlRevoke),
        1 => Just(Op::Authorize),
        1 => (0..AGENTS.len()).prop_map(|agent| Op::Request { agent }),
        4 => prop_oneof![3 => 0u64..8_000, 1 => 8_000u64..40_000].prop_map(|millis| Op::Advance { millis }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let behind = prop_oneof![9 => Just(0u64), 1 => 1u64..90_000];
    (op(), behind).prop_map(|(op, behind_millis)| Step { op, behind_millis })
}

fn agent(i: usize) -> Agent {
    Agent::new(AGENTS[i], format!("Agent {i}"), None)
}

fn parse(ts: &str) -> Millis {
    Millis::parse_iso8601(ts).unwrap_or_else(|| panic!("`{ts}` is not ISO-8601 with milliseconds"))
}

fn parse_opt(ts: &Option<String>) -> Option<Millis> {
    ts.as_deref().map(parse)
}

/// The whole machine as a driver could ever see it, and its internals via `Debug`.
fn snapshot(m: &VisitorMachine) -> String {
    format!(
        "{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{m:?}",
        m.status(),
        m.session_id(),
        m.session_authorized(),
        m.disconnect_type(),
        m.agents(),
        m.control(),
        m.connections(),
        m.communication(),
        m.poll_timeout(),
        m.prompt_target(),
    )
}

/// The test's own bookkeeping of what happened, to judge the machine by.
struct Harness {
    m: VisitorMachine,
    /// The driver's clock.
    now: Millis,
    /// The latest `now` the machine accepted (it clamps to this).
    latest: Millis,
    next_session: u32,
    /// The id of the last request the machine accepted.
    current: Option<String>,
    ended: HashSet<String>,
    required_authorization: HashMap<String, bool>,
    authorized: HashSet<String>,
    session_ended_events: HashMap<String, usize>,
    last_provider_event_time: Option<Millis>,
    previous_communication: Option<Cobrowsesession>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            m: VisitorMachine::new("v_7Kq2", MachineOptions::default()),
            now: T0,
            latest: Millis(0),
            next_session: 1,
            current: None,
            ended: HashSet::new(),
            required_authorization: HashMap::new(),
            authorized: HashSet::new(),
            session_ended_events: HashMap::new(),
            last_provider_event_time: None,
            previous_communication: None,
        }
    }

    fn apply(&mut self, step: &Step) {
        if let Op::Advance { millis } = step.op {
            self.now = Millis(self.now.0 + millis);
        }
        let t = Millis(self.now.0.saturating_sub(step.behind_millis));
        let before = snapshot(&self.m);
        let control_before = self.m.control();
        let status_before = self.m.status();
        let mut new_session = None;
        let m = &mut self.m;
        let result: Result<(), MachineError> = match &step.op {
            Op::Connect {
                tab,
                focus,
                require_authorization,
                require_control_request,
            } => m.handle_connect(
                t,
                ConnectionInfo {
                    unique_connection_id: TABS[*tab].into(),
                    current_url: Some(format!("https://shop.example.com/{tab}")),
                    screen_width: 1280,
                    screen_height: 720,
                    audio_supported: false,
                    has_focus: *focus,
                    permissions: Permissions {
                        require_authorization_for_session: *require_authorization,
                        require_control_request: *require_control_request,
                        ..Permissions::default()
                    },
                },
            ),
            Op::Disconnect { tab } => m.handle_disconnect(t, TABS[*tab]),
            Op::ExpectDisconnect { tab, seconds } => {
                m.handle_expect_disconnect(t, TABS[*tab], *seconds, Some("Back soon".into()), None)
            }
            Op::Focus { tab, focused } => m.handle_focus(t, TABS[*tab], *focused),
            Op::Url { tab } => {
                m.handle_url(t, TABS[*tab], format!("https://shop.example.com/p/{}", t.0))
            }
            Op::Request { agent: a } => {
                // A fresh id per request, as the server makes them.
                let id = format!("s_{}", self.next_session);
                self.next_session += 1;
                let required = m.options().permissions.require_authorization_for_session;
                new_session = Some((id.clone(), required));
                m.handle_session_request(
                    t,
                    SessionRequest {
                        session_id: id.clone(),
                        communication_id: format!("c_{id}"),
                        peer_communication_id: Some(format!("c_agent_{id}")),
                        viewer_url: None,
                        agent: agent(*a),
                    },
                )
            }
            Op::Authorize => m.handle_authorize(t),
            Op::Deny => m.handle_deny(t),
            Op::VisitorEnd => m.handle_visitor_end(t),
            Op::AgentEnd => m.handle_agent_end(t),
            Op::ServerEnd => m.handle_server_end(t),
            Op::AgentJoin { agent: a } => m.handle_agent_join(t, agent(*a)),
            Op::AgentLeave { agent: a } => m.handle_agent_leave(t, AGENTS[*a]),
            Op::ControlRequest { agent: a } => m.handle_control_request(t, AGENTS[*a]),
            Op::ControlGrant => m.handle_control_grant(t),
            Op::ControlDeny => m.handle_control_deny(t),
            Op::ControlRevoke => m.handle_control_revoke(t),
            Op::ControlRelease { agent: a } => m.handle_agent_control_release(t, AGENTS[*a]),
            Op::Advance { .. } => {
                m.handle_timeout(t);
                Ok(())
            }
        };
        let events: Vec<Event> = std::iter::from_fn(|| self.m.poll_event()).collect();

        if let Err(e) = &result {
            // Errors never change observable state, nor queue anything.
            assert_eq!(
                snapshot(&self.m),
                before,
                "{:?} failed with `{e}` but changed the machine",
                step.op
            );
            assert!(
                events.is_empty(),
                "{:?} failed with `{e}` but queued {events:?}",
                step.op
            );
            assert!(covisit::core::codes::ErrorCode::ALL.contains(&e.code()));
            self.check();
            return;
        }
        self.latest = self.latest.max(t);
        if let Some((id, required)) = new_session {
            assert!(!self.ended.contains(&id), "session ids are fresh");
            self.required_authorization.insert(id.clone(), required);
            self.current = Some(id);
        }
        if matches!(step.op, Op::Authorize) {
            let id = self
                .current
                .clone()
                .expect("authorize succeeded, so a session exists");
            self.authorized.insert(id);
        }
        self.check_events(&events, status_before, &control_before);
        if matches!(step.op, Op::Advance { .. }) {
            // Every timer due was handled; what is left lies in the future.
            if let Some(deadline) = self.m.poll_timeout() {
                assert!(
                    deadline > self.latest,
                    "timer at {deadline:?} left behind at {:?}",
                    self.latest
                );
            }
        }
        self.check();
    }

    fn check_events(
        &mut self,
        events: &[Event],
        status_before: SessionStatus,
        control_before: &ControlState,
    ) {
        let m = &self.m;
        for event in events {
            match event {
                Event::SessionRequested {
                    session_id,
                    connection_id,
                    ..
                } => {
                    assert_eq!(m.status(), SessionStatus::Authorizing);
                    assert_eq!(Some(session_id.as_str()), m.session_id());
                    assert!(
                        m.connection(connection_id)
                            .is_some_and(|c| c.status == ConnectionStatus::Active),
                        "the prompt goes to an open tab, not {connection_id}"
                    );
                }
                Event::PromptWithdrawn {
                    prompt,
                    connection_id,
                } => {
                    assert!(
                        m.connection(connection_id)
                            .is_some_and(|c| c.status != ConnectionStatus::Disconnected),
                        "only an open tab is told to withdraw, not {connection_id}"
                    );
                    assert_ne!(
                        m.prompt_target(),
                        Some(connection_id.as_str()),
                        "the tab the prompt moved to keeps it"
                    );
                    match prompt {
                        PromptKind::Session => assert_eq!(m.status(), SessionStatus::Authorizing),
                        PromptKind::Control => {
                            assert!(matches!(m.control(), ControlState::Requested { .. }))
                        }
                    }
                }
                Event::SessionStarted { session_id } => {
                    assert_eq!(m.status(), SessionStatus::Active);
                    if self.required_authorization[session_id] {
                        assert!(
                            self.authorized.contains(session_id),
                            "{session_id} started unauthorized"
                        );
                    }
                }
                Event::SessionContinued {
                    session_id,
                    connection_id,
                } => {
                    assert_eq!(status_before, SessionStatus::Active);
                    assert_eq!(Some(session_id.as_str()), m.session_id());
                    assert!(m.connection(connection_id).is_some());
                }
                Event::SessionEnded {
                    session_id,
                    disconnect_type,
                } => {
                    *self
                        .session_ended_events
                        .entry(session_id.clone())
                        .or_default() += 1;
                    assert_eq!(
                        self.session_ended_events[session_id], 1,
                        "{session_id} ended twice"
                    );
                    assert_eq!(m.disconnect_type(), Some(*disconnect_type));
                }
                Event::ControlRequested {
                    agent,
                    connection_id,
                } => {
                    assert_eq!(m.status(), SessionStatus::Active);
                    assert!(m.agents().iter().any(|a| a.id == agent.id));
                    assert!(
                        m.connection(connection_id)
                            .is_some_and(|c| c.status == ConnectionStatus::Active),
                        "the control prompt goes to an open tab, not {connection_id}"
                    );
                }
                Event::ControlStarted { agent_id, .. } => {
                    assert_eq!(
                        m.status(),
                        SessionStatus::Active,
                        "control granted outside active"
                    );
                    assert_eq!(m.controlling_agent(), Some(agent_id.as_str()));
                }
                Event::ControlEnded { .. } | Event::StateChanged => {}
            }
        }
        // Control changes are always told.
        let control = m.control();
        if let ControlState::Requested { agent_id, .. } | ControlState::Granted { agent_id, .. } =
            control_before
        {
            if control == ControlState::None {
                assert!(
                    events.iter().any(
                        |e| matches!(e, Event::ControlEnded { agent_id: a, .. } if a == agent_id)
                    ),
                    "control of {agent_id} ended silently: {events:?}"
                );
            }
        }
        if let ControlState::Granted {
            agent_id,
            connection_id,
        } = &control
        {
            if &control != control_before {
                assert!(events.contains(&Event::ControlStarted {
                    agent_id: agent_id.clone(),
                    connection_id: connection_id.clone()
                }));
            }
        }
        if let ControlState::Requested {
            agent_id,
            connection_id,
        } = &control
        {
            if &control != control_before {
                assert!(
                    events.iter().any(|e| matches!(e,
                        Event::ControlRequested { agent, connection_id: c } if &agent.id == agent_id && c == connection_id)),
                    "control request moved silently: {events:?}"
                );
            }
        }
        if m.status() == SessionStatus::Ended && status_before != SessionStatus::Ended {
            assert!(events
                .iter()
                .any(|e| matches!(e, Event::SessionEnded { .. })));
        }
    }

    fn check(&mut self) {
        let m = &self.m;
        let status = m.status();
        let session_id = m.session_id().map(str::to_string);
        assert_eq!(
            session_id, self.current,
            "the machine's session is the last one requested"
        );

        // `ended` is terminal: an ended session id never comes back to life.
        if let Some(id) = &session_id {
            if self.ended.contains(id) {
                assert_eq!(
                    status,
                    SessionStatus::Ended,
                    "{id} ended, yet is {status:?} again"
                );
            }
            if status == SessionStatus::Ended {
                self.ended.insert(id.clone());
            }
        }

        // No `active` without authorization when the session required it.
        match status {
            SessionStatus::Active => {
                let id = session_id.as_deref().unwrap_or_default();
                assert!(m.session_authorized());
                if self.required_authorization[id] {
                    assert!(
                        self.authorized.contains(id),
                        "{id} is active but the visitor never allowed it"
                    );
                }
            }
            SessionStatus::Authorizing => {
                let id = session_id.as_deref().unwrap_or_default();
                assert!(
                    self.required_authorization[id],
                    "{id} waits for consent it did not need"
                );
                assert!(!m.session_authorized());
                assert!(m.timer_deadline(Timer::Authorization).is_some());
            }
            SessionStatus::None | SessionStatus::Ended => {
                assert!(!m.session_authorized());
                assert_eq!(m.poll_timeout(), None, "no timer outside a live session");
                assert!(m.agents().is_empty());
            }
        }

        // Control only inside `active`, held by an agent of the session, in an open tab.
        match m.control() {
            ControlState::None => assert_eq!(m.controlling_agent(), None),
            ControlState::Requested {
                agent_id,
                connection_id,
            } => {
                assert_eq!(
                    status,
                    SessionStatus::Active,
                    "control requested outside active"
                );
                assert!(m.agents().iter().any(|a| a.id == agent_id));
                assert!(
                    !m.is_online()
                        || m.connection(&connection_id)
                            .is_some_and(|c| c.status == ConnectionStatus::Active),
                    "control is asked in closed tab {connection_id}"
                );
            }
            ControlState::Granted {
                agent_id,
                connection_id,
            } => {
                assert_eq!(
                    status,
                    SessionStatus::Active,
                    "control granted outside active"
                );
                assert_eq!(m.controlling_agent(), Some(agent_id.as_str()));
                assert!(m.agents().iter().any(|a| a.id == agent_id));
                assert!(
                    m.connection(&connection_id)
                        .is_some_and(|c| c.status == ConnectionStatus::Active),
                    "control is granted in closed tab {connection_id}"
                );
            }
        }

        // At most one tab has focus, and only an open one; ids are unique.
        let focused: Vec<_> = m.connections().iter().filter(|c| c.has_focus).collect();
        assert!(focused.len() <= 1, "{} tabs have focus", focused.len());
        assert!(focused.iter().all(|c| c.status == ConnectionStatus::Active));
        let ids: HashSet<_> = m
            .connections()
            .iter()
            .map(|c| &c.unique_connection_id)
            .collect();
        assert_eq!(ids.len(), m.connections().len());
        for c in m.connections() {
            assert!(parse(&c.active_since) <= self.latest);
            if let Some(focus) = parse_opt(&c.last_focus_at) {
                assert!(focus >= parse(&c.active_since) && focus <= self.latest);
            }
        }

        // Live and offline: a timer is counting the visitor's absence.
        if matches!(status, SessionStatus::Authorizing | SessionStatus::Active) && !m.is_online() {
            assert!(
                m.timer_deadline(Timer::Grace).is_some()
                    || m.timer_deadline(Timer::ExpectedReturn).is_some(),
                "the visitor is gone and nothing will notice"
            );
        }

        // Every ended session has a disconnect type, and the communication says the same.
        match (status, m.communication()) {
            (SessionStatus::None, c) => assert!(c.is_none()),
            (_, None) => panic!("a {status:?} session has no communication"),
            (_, Some(c)) => {
                assert_eq!(
                    c.cobrowse_session_id,
                    session_id.clone().unwrap_or_default()
                );
                let expected_state = match status {
                    SessionStatus::Authorizing => CommunicationState::Alerting,
                    SessionStatus::Active => CommunicationState::Connected,
                    _ => CommunicationState::Disconnected,
                };
                assert_eq!(c.state, expected_state);
                if status == SessionStatus::Ended {
                    let dt = m
                        .disconnect_type()
                        .expect("an ended session has a disconnect type");
                    assert_eq!(c.disconnect_type, Some(dt));
                    assert!(c.disconnected_time.is_some());
                    let last = c.segments.last().expect("segments");
                    assert_eq!(last.disconnect_type, Some(dt));
                    assert!(last.end_time.is_some());
                } else {
                    assert_eq!(m.disconnect_type(), None);
                    assert_eq!(c.disconnect_type, None);
                    assert_eq!(c.disconnected_time, None);
                    let last = c.segments.last().expect("segments");
                    assert!(
                        last.end_time.is_none(),
                        "a live session has an open segment"
                    );
                    if status == SessionStatus::Active {
                        // While no connection is present the communication shows Hold.
                        let want = if m.is_online() {
                            SegmentType::Interact
                        } else {
                            SegmentType::Hold
                        };
                        assert_eq!(last.segment_type, want);
                    }
                }
            }
        }
        if let Some(c) = m.communication().cloned() {
            self.check_timeline(&c);
        }
    }

    /// Timestamps never go backwards: providerEventTime is monotonic, segments are
    /// contiguous and ordered, each ends after it starts, history is never rewritten.
    fn check_timeline(&mut self, c: &Cobrowsesession) {
        let pet = parse(&c.provider_event_time);
        if let Some(last) = self.last_provider_event_time {
            assert!(
                pet >= last,
                "providerEventTime went back from {last:?} to {pet:?}"
            );
        }
        assert!(pet <= self.latest, "providerEventTime is in the future");
        self.last_provider_event_time = Some(pet);

        let alerting = parse_opt(&c.start_alerting_time);
        let connected = parse_opt(&c.connected_time);
        let disconnected = parse_opt(&c.disconnected_time);
        let first = alerting
            .or(connected)
            .expect("alerting or connected has a time");
        for (a, b) in [
            (alerting, connected),
            (connected, disconnected),
            (alerting, disconnected),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                assert!(a <= b, "{a:?} after {b:?}");
            }
        }
        for t in [alerting, connected, disconnected].into_iter().flatten() {
            assert!(t <= pet);
        }

        assert!(!c.segments.is_empty());
        assert_eq!(parse(&c.segments[0].start_time), first);
        for (i, s) in c.segments.iter().enumerate() {
            let start = parse(&s.start_time);
            if let Some(end) = parse_opt(&s.end_time) {
                assert!(end >= start, "segment {i} ends before it starts");
                assert!(end <= pet);
                assert!(s.how_ended.is_some());
            } else {
                assert_eq!(i, c.segments.len() - 1, "only the last segment may be open");
            }
            if i + 1 < c.segments.len() {
                assert!(
                    s.disconnect_type.is_none(),
                    "only the last segment has a disconnect type"
                );
                let next = &c.segments[i + 1];
                assert_eq!(
                    s.end_time.as_deref(),
                    Some(next.start_time.as_str()),
                    "segments are contiguous"
                );
                assert_ne!(s.segment_type, next.segment_type, "no empty switch");
                assert_ne!(
                    next.segment_type,
                    SegmentType::Alert,
                    "Alert only comes first"
                );
            }
        }

        if let Some(prev) = self
            .previous_communication
            .as_ref()
            .filter(|p| p.id == c.id)
        {
            assert_eq!(prev.initial_state, c.initial_state);
            assert_eq!(prev.start_alerting_time, c.start_alerting_time);
            if prev.connected_time.is_some() {
                assert_eq!(prev.connected_time, c.connected_time);
            }
            assert!(c.segments.len() >= prev.segments.len());
            let closed = prev.segments.len() - 1;
            assert_eq!(
                prev.segments[..closed],
                c.segments[..closed],
                "closed segments were rewritten"
            );
            assert_eq!(
                prev.segments[closed].start_time,
                c.segments[closed].start_time
            );
            if prev.state == CommunicationState::Disconnected {
                assert_eq!(prev, c, "an ended communication changed");
            }
        }
        self.previous_communication = Some(c.clone());
    }
}

proptest! {
    // More cases than the default 256: the interesting corners (control asked, then
    // every tab closing, then an answer) need several inputs in a row.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn machine_invariants_hold_after_every_step(steps in prop::collection::vec(step(), 1..=60)) {
        let mut h = Harness::new();
        h.check();
        for step in &steps {
            h.apply(step);
        }
    }

    /// A live session while tabs come and go: Hold, resume, expected returns, grace.
    #[test]
    fn machine_invariants_hold_while_tabs_come_and_go(
        steps in prop::collection::vec(
            (churn_op(), prop_oneof![9 => Just(0u64), 1 => 1u64..20_000])
                .prop_map(|(op, behind_millis)| Step { op, behind_millis }),
            1..=60,
        )
    ) {
        let mut h = Harness::new();
        for op in [
            Op::Connect { tab: 0, focus: true, require_authorization: true, require_control_request: true },
            Op::Request { agent: 0 },
            Op::Authorize,
        ] {
            h.apply(&Step { op, behind_millis: 0 });
        }
        assert_eq!(h.m.status(), SessionStatus::Active);
        for step in &steps {
            h.apply(step);
        }
    }

    /// The same with the visitor always online and focused on one tab, so that
    /// sessions and control get deep (the generic sequences often lose the visitor).
    #[test]
    fn machine_invariants_hold_in_long_sessions(steps in prop::collection::vec(step(), 1..=60)) {
        let mut h = Harness::new();
        h.apply(&Step {
            op: Op::Connect { tab: 0, focus: true, require_authorization: true, require_control_request: true },
            behind_millis: 0,
        });
        for step in &steps {
            let step = match step.op {
                Op::Disconnect { .. } | Op::Connect { .. } => Step { op: Op::Request { agent: 0 }, ..step.clone() },
                _ => step.clone(),
            };
            h.apply(&step);
        }
    }
}
