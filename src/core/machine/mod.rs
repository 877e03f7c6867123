//! The visitor's session state machine (SPEC.md section 2), sans-IO.
//!
//! One [`VisitorMachine`] holds one visitor: its connections (tabs) with focus, the
//! session lifecycle `none → authorizing → active → ended`, the remote-control
//! sub-machine, the visitor's Cobrowsesession communication with its segments, and
//! the timers. It never reads a clock and never does I/O.
//!
//! The contract, as in quinn-proto and str0m:
//! - inputs are `handle_*` methods, each taking `now`; an input that is wrong for the
//!   current state returns a [`MachineError`] and changes nothing;
//! - outputs are drained with [`VisitorMachine::poll_event`] until it returns `None`;
//! - [`VisitorMachine::poll_timeout`] gives the earliest deadline; call
//!   [`VisitorMachine::handle_timeout`] at or after it (early or twice is harmless);
//! - getters take `&self`.
//!
//! `now` values that go backwards are clamped to the latest seen, so every timestamp
//! the machine writes is monotonic.

pub mod call;
mod timer;

use std::collections::VecDeque;

use crate::core::codes::ErrorCode;
use crate::core::config::Permissions;
use crate::core::model::{
    Address, Agent, CobrowseRole, Cobrowsesession, CommunicationState, Connection,
    ConnectionStatus, DisconnectType, ExpectedDisconnect, FullTabStatus, Segment, SegmentType,
};
use crate::core::Millis;

pub use timer::{Timer, TimerTable};

/// Session status as the SDK reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    None,
    Authorizing,
    Active,
    Ended,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::None => "none",
            SessionStatus::Authorizing => "authorizing",
            SessionStatus::Active => "active",
            SessionStatus::Ended => "ended",
        }
    }
}

/// Settings of a machine, fixed per visitor (the server fills them from the account
/// and the SDK's config).
#[derive(Debug, Clone, PartialEq)]
pub struct MachineOptions {
    pub permissions: Permissions,
    /// How long the visitor has to answer the authorization prompt.
    pub authorization_timeout_seconds: u64,
    /// Return time of an expected disconnect that does not name one.
    pub default_return_time_seconds: u64,
    /// How long a live session survives with every connection dropped unannounced.
    pub grace_period_seconds: u64,
    /// The `provider` written into communications.
    pub provider: String,
}

impl Default for MachineOptions {
    fn default() -> Self {
        MachineOptions {
            permissions: Permissions::default(),
            authorization_timeout_seconds:
                crate::core::config::DEFAULT_AUTHORIZATION_TIMEOUT_SECONDS,
            default_return_time_seconds: DEFAULT_RETURN_TIME_SECONDS,
            grace_period_seconds: DEFAULT_GRACE_PERIOD_SECONDS,
            provider: "covisit".to_string(),
        }
    }
}

/// Default return time of an expected disconnect (SPEC.md section 2).
pub const DEFAULT_RETURN_TIME_SECONDS: u64 = 10;
/// Default grace period for connections that vanish without notice.
pub const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 30;
/// The longest return time a page may announce: one hour.
pub const MAX_RETURN_TIME_SECONDS: u64 = 3600;

/// What a tab tells about itself when it connects.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInfo {
    pub unique_connection_id: String,
    pub current_url: Option<String>,
    pub screen_width: u32,
    pub screen_height: u32,
    pub audio_supported: bool,
    pub has_focus: bool,
    pub permissions: Permissions,
}

/// An agent's request for a session. Ids come from outside: the core makes none.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRequest {
    pub session_id: String,
    /// Id of the visitor's Cobrowsesession communication for this session.
    pub communication_id: String,
    /// Id of the requesting agent's communication (`peerId`).
    pub peer_communication_id: Option<String>,
    pub viewer_url: Option<String>,
    pub agent: Agent,
}

/// Which prompt a tab shows: the session's authorization or the control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    Session,
    Control,
}

/// Why granted (or requested) control ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ControlEndReason {
    /// The visitor said no to the request.
    Denied,
    /// The visitor took control back.
    RevokedByVisitor,
    /// The agent gave control back, or left.
    RevokedByAgent,
    /// The controlled tab lost focus or closed.
    FocusLost,
    /// The session ended.
    SessionEnded,
}

/// State of remote control inside an active session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlState {
    None,
    /// An agent asked; the visitor is being asked in `connection_id`.
    Requested {
        agent_id: String,
        connection_id: String,
    },
    /// `agent_id` controls the tab `connection_id`.
    Granted {
        agent_id: String,
        connection_id: String,
    },
}

/// What the machine tells its driver. Drain with [`VisitorMachine::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Ask the visitor to allow a session, in this tab (again when the target moves).
    SessionRequested {
        session_id: String,
        agent: Agent,
        connection_id: String,
    },
    SessionStarted {
        session_id: String,
    },
    /// A tab of the visitor came back during a live session: resume without asking.
    SessionContinued {
        session_id: String,
        connection_id: String,
    },
    SessionEnded {
        session_id: String,
        disconnect_type: DisconnectType,
    },
    /// The prompt moved to another tab (focus changed, or this tab closed): this tab
    /// stops showing it.
    PromptWithdrawn {
        prompt: PromptKind,
        connection_id: String,
    },
    /// Ask the visitor to allow control, in this tab.
    ControlRequested {
        agent: Agent,
        connection_id: String,
    },
    ControlStarted {
        agent_id: String,
        connection_id: String,
    },
    ControlEnded {
        agent_id: String,
        reason: ControlEndReason,
    },
    /// Something visible in the state changed (connections, status, communication).
    StateChanged,
}

/// An input that does not fit the machine's state. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("`{input}` is not valid now: expected {expected}, but the session is {got}")]
    InappropriateInput {
        input: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("`{input}` is not valid now: expected {expected}, but control is {got}")]
    InappropriateControl {
        input: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("no connection with id `{id}`")]
    UnknownConnection { id: String },
    #[error("connection `{id}` is already connected")]
    DuplicateConnection { id: String },
    #[error("no agent with id `{id}` in this session")]
    UnknownAgent { id: String },
    #[error("agent `{id}` is already in this session")]
    DuplicateAgent { id: String },
    #[error("the visitor has no open connection")]
    VisitorOffline,
    #[error("`{field}` is invalid: {reason}")]
    InvalidArgument {
        field: &'static str,
        reason: &'static str,
    },
}

impl MachineError {
    /// Stable code for the wire and for JS.
    pub fn code(&self) -> ErrorCode {
        match self {
            MachineError::InappropriateInput { .. } => ErrorCode::WRONG_SESSION_STATE,
            MachineError::InappropriateControl { .. } => ErrorCode::WRONG_CONTROL_STATE,
            MachineError::UnknownConnection { .. } => ErrorCode::UNKNOWN_CONNECTION,
            MachineError::DuplicateConnection { .. } => ErrorCode::DUPLICATE_CONNECTION,
            MachineError::UnknownAgent { .. } => ErrorCode::UNKNOWN_AGENT,
            MachineError::DuplicateAgent { .. } => ErrorCode::DUPLICATE_AGENT,
            MachineError::VisitorOffline => ErrorCode::VISITOR_OFFLINE,
            MachineError::InvalidArgument { .. } => ErrorCode::INVALID_ARGUMENT,
        }
    }
}

/// Data of a session waiting for the visitor's answer.
#[derive(Debug, Clone, PartialEq)]
struct Authorizing {
    session_id: String,
    agents: Vec<Agent>,
    prompt_target: Option<String>,
}

/// Data of a live session.
#[derive(Debug, Clone, PartialEq)]
struct Active {
    session_id: String,
    agents: Vec<Agent>,
    authorized: bool,
    control: ControlState,
}

/// Data of a session that is over.
#[derive(Debug, Clone, PartialEq)]
struct Ended {
    session_id: String,
    disconnect_type: DisconnectType,
}

/// The session lifecycle; each state carries only what is valid in it.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    None,
    Authorizing(Authorizing),
    Active(Active),
    Ended(Ended),
}

/// One visitor's connections, session, control and timers. See the module docs.
#[derive(Debug, Clone)]
pub struct VisitorMachine {
    short_id: String,
    options: MachineOptions,
    connections: Vec<Connection>,
    phase: Phase,
    communication: Option<Cobrowsesession>,
    timers: TimerTable,
    events: VecDeque<Event>,
    latest: Millis,
}

fn connection_closed(c: &Connection) -> bool {
    c.status == ConnectionStatus::Disconnected
}

impl VisitorMachine {
    pub fn new(short_id: impl Into<String>, options: MachineOptions) -> VisitorMachine {
        VisitorMachine {
            short_id: short_id.into(),
            options,
            connections: Vec::new(),
            phase: Phase::None,
            communication: None,
            timers: TimerTable::default(),
            events: VecDeque::new(),
            latest: Millis(0),
        }
    }

    // ----- getters ---------------------------------------------------------------

    pub fn short_id(&self) -> &str {
        &self.short_id
    }

    pub fn options(&self) -> &MachineOptions {
        &self.options
    }

    pub fn status(&self) -> SessionStatus {
        match self.phase {
            Phase::None => SessionStatus::None,
            Phase::Authorizing(_) => SessionStatus::Authorizing,
            Phase::Active(_) => SessionStatus::Active,
            Phase::Ended(_) => SessionStatus::Ended,
        }
    }

    /// The current (or last) session's id.
    pub fn session_id(&self) -> Option<&str> {
        match &self.phase {
            Phase::None => None,
            Phase::Authorizing(a) => Some(&a.session_id),
            Phase::Active(a) => Some(&a.session_id),
            Phase::Ended(e) => Some(&e.session_id),
        }
    }

    /// Whether the visitor allowed the live session (true too when none was required).
    pub fn session_authorized(&self) -> bool {
        matches!(&self.phase, Phase::Active(a) if a.authorized)
    }

    pub fn disconnect_type(&self) -> Option<DisconnectType> {
        match &self.phase {
            Phase::Ended(e) => Some(e.disconnect_type),
            _ => None,
        }
    }

    pub fn agents(&self) -> &[Agent] {
        match &self.phase {
            Phase::Authorizing(a) => &a.agents,
            Phase::Active(a) => &a.agents,
            _ => &[],
        }
    }

    pub fn control(&self) -> ControlState {
        match &self.phase {
            Phase::Active(a) => a.control.clone(),
            _ => ControlState::None,
        }
    }

    /// The agent that controls the page now, if any.
    pub fn controlling_agent(&self) -> Option<&str> {
        match &self.phase {
            Phase::Active(Active {
                control: ControlState::Granted { agent_id, .. },
                ..
            }) => Some(agent_id),
            _ => None,
        }
    }

    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.connections
            .iter()
            .find(|c| c.unique_connection_id == id)
    }

    /// True when any connection is open.
    pub fn is_online(&self) -> bool {
        self.connections.iter().any(|c| !connection_closed(c))
    }

    /// The visitor's Cobrowsesession for the current or last session.
    pub fn communication(&self) -> Option<&Cobrowsesession> {
        self.communication.as_ref()
    }

    /// The open tab the visitor is looking at: the focused one, else the one focused
    /// most recently, else the one that connected last.
    pub fn prompt_target(&self) -> Option<&str> {
        let open = || self.connections.iter().filter(|c| !connection_closed(c));
        open()
            .find(|c| c.has_focus)
            .or_else(|| {
                open()
                    .filter(|c| c.last_focus_at.is_some())
                    .max_by(|a, b| a.last_focus_at.cmp(&b.last_focus_at))
            })
            .or_else(|| open().next_back())
            .map(|c| c.unique_connection_id.as_str())
    }

    // ----- outputs ---------------------------------------------------------------

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline at which [`VisitorMachine::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// The deadline of one timer, for drivers and tests that show countdowns.
    pub fn timer_deadline(&self, timer: Timer) -> Option<Millis> {
        self.timers.get(timer)
    }

    // ----- inputs: time ----------------------------------------------------------

    /// Fires every timer due at `now`. Harmless when early or repeated.
    pub fn handle_timeout(&mut self, now: Millis) {
        let now = self.clamp(now);
        while let Some(timer) = self.timers.take_expired(now) {
            match timer {
                Timer::Authorization => {
                    if matches!(self.phase, Phase::Authorizing(_)) {
                        self.end(now, DisconnectType::Timeout);
                    }
                }
                Timer::ExpectedReturn => {
                    if self.is_live() && !self.is_online() {
                        self.end(now, DisconnectType::Timeout);
                    }
                }
                Timer::Grace => {
                    if self.is_live() && !self.is_online() {
                        self.end(now, DisconnectType::TransportFailure);
                    }
                }
            }
        }
    }

    // ----- inputs: connections ---------------------------------------------------

    /// A tab connected (first time, after a reload, or after a network blip).
    pub fn handle_connect(
        &mut self,
        now: Millis,
        info: ConnectionInfo,
    ) -> Result<(), MachineError> {
        if !crate::core::ids::valid_id(&info.unique_connection_id) {
            return Err(MachineError::InvalidArgument {
                field: "uniqueConnectionId",
                reason: "must be 1 to 64 letters, digits, `_` or `-`",
            });
        }
        if self
            .connection(&info.unique_connection_id)
            .is_some_and(|c| !connection_closed(c))
        {
            return Err(MachineError::DuplicateConnection {
                id: info.unique_connection_id,
            });
        }
        let now = self.clamp(now);
        let was_online = self.is_online();
        // Closed tabs are no longer needed once another one is here.
        self.connections.retain(|c| !connection_closed(c));
        let id = info.unique_connection_id.clone();
        self.options.permissions = info.permissions.clone();
        self.connections.push(Connection {
            unique_connection_id: info.unique_connection_id,
            current_url: info.current_url,
            active_since: now.to_iso8601(),
            status: ConnectionStatus::Active,
            expected_disconnect: None,
            has_focus: false,
            last_focus_at: None,
            screen_width: info.screen_width,
            screen_height: info.screen_height,
            audio_supported: info.audio_supported,
            full_tab_status: FullTabStatus::Off,
            permissions: info.permissions,
        });
        if info.has_focus {
            self.set_focus(now, &id, true);
        }
        if !was_online && self.is_live() {
            self.timers.stop(Timer::ExpectedReturn);
            self.timers.stop(Timer::Grace);
            if let Phase::Active(a) = &self.phase {
                let session_id = a.session_id.clone();
                self.switch_segment(now, SegmentType::Interact, "resume");
                self.events.push_back(Event::SessionContinued {
                    session_id,
                    connection_id: id,
                });
            }
        }
        // A pending prompt, of a session or of control, follows the tab the visitor looks
        // at now (a no-op when that did not change).
        self.retarget_prompts();
        self.changed(now);
        Ok(())
    }

    /// The page announced it is leaving (navigation, `expectDisconnect`). The return
    /// time counts from the moment the tab actually disconnects, so a page may announce
    /// early; `None` takes the default.
    pub fn handle_expect_disconnect(
        &mut self,
        now: Millis,
        connection_id: &str,
        return_time_seconds: Option<u64>,
        message: Option<String>,
        title: Option<String>,
    ) -> Result<(), MachineError> {
        if return_time_seconds.is_some_and(|s| s > MAX_RETURN_TIME_SECONDS) {
            return Err(MachineError::InvalidArgument {
                field: "returnTimeSeconds",
                reason: "must be at most 3600",
            });
        }
        // Validate before `clamp`: a rejected input must not move the clock.
        self.open_connection_mut(connection_id)?;
        let now = self.clamp(now);
        let conn = self.open_connection_mut(connection_id)?;
        conn.expected_disconnect = Some(ExpectedDisconnect {
            return_time_seconds,
            message,
            title,
            ts: now.0,
        });
        self.changed(now);
        Ok(())
    }

    /// A tab's transport closed (announced or not).
    pub fn handle_disconnect(
        &mut self,
        now: Millis,
        connection_id: &str,
    ) -> Result<(), MachineError> {
        // Validate before `clamp`: a rejected input must not move the clock.
        self.open_connection_mut(connection_id)?;
        let now = self.clamp(now);
        let conn = self.open_connection_mut(connection_id)?;
        conn.status = ConnectionStatus::Disconnected;
        conn.has_focus = false;
        let expected = conn.expected_disconnect.clone();
        self.release_control_of(now, connection_id, ControlEndReason::FocusLost);
        if self.is_live() && !self.is_online() {
            match expected {
                Some(e) => {
                    let seconds = e
                        .return_time_seconds
                        .unwrap_or(self.options.default_return_time_seconds);
                    self.timers.set(
                        Timer::ExpectedReturn,
                        Millis(e.ts.max(now.0)).plus_seconds(seconds),
                    );
                }
                None => self.timers.set(
                    Timer::Grace,
                    now.plus_seconds(self.options.grace_period_seconds),
                ),
            }
            if matches!(self.phase, Phase::Active(_)) {
                self.switch_segment(now, SegmentType::Hold, "hold");
            }
        }
        // A prompt (session or control) shown in the closed tab moves to an open one;
        // with none open it waits for the next tab (handle_connect).
        self.retarget_prompts();
        self.changed(now);
        Ok(())
    }

    /// A tab gained or lost focus (focus/blur, visibility).
    pub fn handle_focus(
        &mut self,
        now: Millis,
        connection_id: &str,
        focused: bool,
    ) -> Result<(), MachineError> {
        self.open_connection_mut(connection_id)?;
        let now = self.clamp(now);
        self.set_focus(now, connection_id, focused);
        self.retarget_prompts();
        self.changed(now);
        Ok(())
    }

    /// A tab's URL changed without a reload (SPA navigation).
    pub fn handle_url(
        &mut self,
        now: Millis,
        connection_id: &str,
        url: String,
    ) -> Result<(), MachineError> {
        self.open_connection_mut(connection_id)?;
        let now = self.clamp(now);
        self.open_connection_mut(connection_id)?.current_url = Some(url);
        self.changed(now);
        Ok(())
    }

    /// A tab's full-tab share changed (issue 17): the session's call machine decides,
    /// the tab's seed Connection (`fullTabStatus`) shows it. Unknown tabs are ignored.
    pub fn handle_full_tab_status(
        &mut self,
        now: Millis,
        connection_id: &str,
        status: FullTabStatus,
    ) {
        let now = self.clamp(now);
        let mut changed = false;
        for c in &mut self.connections {
            let value = if c.unique_connection_id == connection_id {
                status
            } else {
                FullTabStatus::Off
            };
            if c.full_tab_status != value {
                c.full_tab_status = value;
                changed = true;
            }
        }
        if changed {
            self.changed(now);
        }
    }

    // ----- inputs: session -------------------------------------------------------

    /// An agent asks for a session. Valid when no session is live.
    pub fn handle_session_request(
        &mut self,
        now: Millis,
        request: SessionRequest,
    ) -> Result<(), MachineError> {
        self.expect_phase("session_request", "none or ended", |p| {
            matches!(p, Phase::None | Phase::Ended(_))
        })?;
        if request.session_id.is_empty() || request.communication_id.is_empty() {
            return Err(MachineError::InvalidArgument {
                field: "session_id",
                reason: "must not be empty",
            });
        }
        let target = self
            .prompt_target()
            .map(str::to_string)
            .ok_or(MachineError::VisitorOffline)?;
        let now = self.clamp(now);
        self.timers.stop_all();
        let alerting = self.options.permissions.require_authorization_for_session;
        let state = if alerting {
            CommunicationState::Alerting
        } else {
            CommunicationState::Connected
        };
        self.communication = Some(Cobrowsesession {
            state,
            initial_state: state,
            id: request.communication_id,
            disconnect_type: None,
            self_address: Address {
                name: Some(self.short_id.clone()),
                name_raw: Some(self.short_id.clone()),
                address_normalized: None,
                address_raw: Some(format!("covisit:visitor/{}", self.short_id)),
                address_displayable: None,
            },
            cobrowse_session_id: request.session_id.clone(),
            cobrowse_role: CobrowseRole::Sharer,
            controlling: Vec::new(),
            viewer_url: request.viewer_url,
            provider_event_time: now.to_iso8601(),
            start_alerting_time: alerting.then(|| now.to_iso8601()),
            connected_time: (!alerting).then(|| now.to_iso8601()),
            disconnected_time: None,
            provider: self.options.provider.clone(),
            peer_id: request.peer_communication_id,
            segments: vec![Segment {
                start_time: now.to_iso8601(),
                end_time: None,
                segment_type: if alerting {
                    SegmentType::Alert
                } else {
                    SegmentType::Interact
                },
                how_ended: None,
                disconnect_type: None,
            }],
            wrapup: None,
            after_call_work: None,
            after_call_work_required: false,
        });
        let session_id = request.session_id;
        if alerting {
            self.timers.set(
                Timer::Authorization,
                now.plus_seconds(self.options.authorization_timeout_seconds),
            );
            self.events.push_back(Event::SessionRequested {
                session_id: session_id.clone(),
                agent: request.agent.clone(),
                connection_id: target.clone(),
            });
            self.phase = Phase::Authorizing(Authorizing {
                session_id,
                agents: vec![request.agent],
                prompt_target: Some(target),
            });
        } else {
            self.events.push_back(Event::SessionStarted {
                session_id: session_id.clone(),
            });
            self.phase = Phase::Active(Active {
                session_id,
                agents: vec![request.agent],
                authorized: true,
                control: ControlState::None,
            });
        }
        self.changed(now);
        Ok(())
    }

    /// The visitor allowed the session.
    pub fn handle_authorize(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("authorize", "authorizing", |p| {
            matches!(p, Phase::Authorizing(_))
        })?;
        let now = self.clamp(now);
        let Phase::Authorizing(a) = std::mem::replace(&mut self.phase, Phase::None) else {
            return Ok(()); // checked by expect_phase just above
        };
        self.timers.stop(Timer::Authorization);
        let segment = if self.is_online() {
            SegmentType::Interact
        } else {
            SegmentType::Hold
        };
        self.switch_segment(now, segment, "connect");
        if let Some(c) = self.communication.as_mut() {
            c.state = CommunicationState::Connected;
            c.connected_time = Some(now.to_iso8601());
        }
        self.events.push_back(Event::SessionStarted {
            session_id: a.session_id.clone(),
        });
        self.phase = Phase::Active(Active {
            session_id: a.session_id,
            agents: a.agents,
            authorized: true,
            control: ControlState::None,
        });
        self.changed(now);
        Ok(())
    }

    /// The visitor said no to the session request.
    pub fn handle_deny(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("deny", "authorizing", |p| {
            matches!(p, Phase::Authorizing(_))
        })?;
        let now = self.clamp(now);
        self.end(now, DisconnectType::Client);
        Ok(())
    }

    /// The visitor ends the session (or dismisses a pending request).
    pub fn handle_visitor_end(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("end", "authorizing or active", |p| {
            matches!(p, Phase::Authorizing(_) | Phase::Active(_))
        })?;
        let now = self.clamp(now);
        self.end(now, DisconnectType::Client);
        Ok(())
    }

    /// The agent side ends the session for everyone (or cancels its request).
    pub fn handle_agent_end(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("agent_end", "authorizing or active", |p| {
            matches!(p, Phase::Authorizing(_) | Phase::Active(_))
        })?;
        let now = self.clamp(now);
        self.end(now, DisconnectType::Peer);
        Ok(())
    }

    /// The server ends the session (shutdown, erasure, an admin).
    pub fn handle_server_end(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("server_end", "authorizing or active", |p| {
            matches!(p, Phase::Authorizing(_) | Phase::Active(_))
        })?;
        let now = self.clamp(now);
        self.end(now, DisconnectType::System);
        Ok(())
    }

    /// Another agent joins a live or pending session.
    pub fn handle_agent_join(&mut self, now: Millis, agent: Agent) -> Result<(), MachineError> {
        self.expect_phase("agent_join", "authorizing or active", |p| {
            matches!(p, Phase::Authorizing(_) | Phase::Active(_))
        })?;
        if self.agents().iter().any(|a| a.id == agent.id) {
            return Err(MachineError::DuplicateAgent { id: agent.id });
        }
        let now = self.clamp(now);
        if let Some(agents) = self.agents_mut() {
            agents.push(agent);
        }
        self.changed(now);
        Ok(())
    }

    /// An agent leaves; when it was the last one, the session ends (`peer`).
    pub fn handle_agent_leave(&mut self, now: Millis, agent_id: &str) -> Result<(), MachineError> {
        self.expect_phase("agent_leave", "authorizing or active", |p| {
            matches!(p, Phase::Authorizing(_) | Phase::Active(_))
        })?;
        if !self.agents().iter().any(|a| a.id == agent_id) {
            return Err(MachineError::UnknownAgent {
                id: agent_id.to_string(),
            });
        }
        let now = self.clamp(now);
        if self.controlling_agent() == Some(agent_id) || self.requesting_agent() == Some(agent_id) {
            self.set_control(
                now,
                ControlState::None,
                Some(ControlEndReason::RevokedByAgent),
            );
        }
        if let Some(agents) = self.agents_mut() {
            agents.retain(|a| a.id != agent_id);
        }
        if self.agents().is_empty() {
            self.end(now, DisconnectType::Peer);
        } else {
            self.changed(now);
        }
        Ok(())
    }

    // ----- inputs: remote control ------------------------------------------------

    /// An agent of the active session asks for control.
    pub fn handle_control_request(
        &mut self,
        now: Millis,
        agent_id: &str,
    ) -> Result<(), MachineError> {
        self.expect_phase("control_request", "active", |p| {
            matches!(p, Phase::Active(_))
        })?;
        let agent = self
            .agents()
            .iter()
            .find(|a| a.id == agent_id)
            .cloned()
            .ok_or_else(|| MachineError::UnknownAgent {
                id: agent_id.to_string(),
            })?;
        self.expect_control("control_request", "none", |c| {
            matches!(c, ControlState::None)
        })?;
        let target = self
            .prompt_target()
            .map(str::to_string)
            .ok_or(MachineError::VisitorOffline)?;
        let now = self.clamp(now);
        if self.options.permissions.require_control_request {
            self.events.push_back(Event::ControlRequested {
                agent,
                connection_id: target.clone(),
            });
            self.set_control(
                now,
                ControlState::Requested {
                    agent_id: agent_id.to_string(),
                    connection_id: target,
                },
                None,
            );
        } else {
            self.set_control(
                now,
                ControlState::Granted {
                    agent_id: agent_id.to_string(),
                    connection_id: target,
                },
                None,
            );
        }
        self.changed(now);
        Ok(())
    }

    /// The visitor allows the pending control request.
    pub fn handle_control_grant(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("control_grant", "active", |p| matches!(p, Phase::Active(_)))?;
        let ControlState::Requested {
            agent_id,
            connection_id,
        } = self.control()
        else {
            return Err(self.control_error("control_grant", "requested"));
        };
        // The tab that asked is gone (every tab closed): control must not be granted to
        // a tab that can never lose focus; the request is asked again in the next tab.
        if self
            .connection(&connection_id)
            .is_none_or(connection_closed)
        {
            return Err(MachineError::VisitorOffline);
        }
        let now = self.clamp(now);
        self.set_control(
            now,
            ControlState::Granted {
                agent_id,
                connection_id,
            },
            None,
        );
        self.changed(now);
        Ok(())
    }

    /// The visitor refuses the pending control request.
    pub fn handle_control_deny(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("control_deny", "active", |p| matches!(p, Phase::Active(_)))?;
        self.expect_control("control_deny", "requested", |c| {
            matches!(c, ControlState::Requested { .. })
        })?;
        let now = self.clamp(now);
        self.set_control(now, ControlState::None, Some(ControlEndReason::Denied));
        self.changed(now);
        Ok(())
    }

    /// The visitor takes control back.
    pub fn handle_control_revoke(&mut self, now: Millis) -> Result<(), MachineError> {
        self.expect_phase("control_revoke", "active", |p| {
            matches!(p, Phase::Active(_))
        })?;
        self.expect_control("control_revoke", "granted", |c| {
            matches!(c, ControlState::Granted { .. })
        })?;
        let now = self.clamp(now);
        self.set_control(
            now,
            ControlState::None,
            Some(ControlEndReason::RevokedByVisitor),
        );
        self.changed(now);
        Ok(())
    }

    /// The agent gives control back (or withdraws its request).
    pub fn handle_agent_control_release(
        &mut self,
        now: Millis,
        agent_id: &str,
    ) -> Result<(), MachineError> {
        self.expect_phase("agent_control_release", "active", |p| {
            matches!(p, Phase::Active(_))
        })?;
        if self.controlling_agent() != Some(agent_id) && self.requesting_agent() != Some(agent_id) {
            return Err(self.control_error(
                "agent_control_release",
                "granted to or requested by this agent",
            ));
        }
        let now = self.clamp(now);
        self.set_control(
            now,
            ControlState::None,
            Some(ControlEndReason::RevokedByAgent),
        );
        self.changed(now);
        Ok(())
    }

    // ----- internals -------------------------------------------------------------

    fn clamp(&mut self, now: Millis) -> Millis {
        self.latest = self.latest.max(now);
        self.latest
    }

    fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Authorizing(_) | Phase::Active(_))
    }

    fn requesting_agent(&self) -> Option<&str> {
        match &self.phase {
            Phase::Active(Active {
                control: ControlState::Requested { agent_id, .. },
                ..
            }) => Some(agent_id),
            _ => None,
        }
    }

    fn agents_mut(&mut self) -> Option<&mut Vec<Agent>> {
        match &mut self.phase {
            Phase::Authorizing(a) => Some(&mut a.agents),
            Phase::Active(a) => Some(&mut a.agents),
            _ => None,
        }
    }

    fn expect_phase(
        &self,
        input: &'static str,
        expected: &'static str,
        ok: impl Fn(&Phase) -> bool,
    ) -> Result<(), MachineError> {
        if ok(&self.phase) {
            Ok(())
        } else {
            Err(MachineError::InappropriateInput {
                input,
                expected,
                got: self.status().as_str(),
            })
        }
    }

    fn control_error(&self, input: &'static str, expected: &'static str) -> MachineError {
        let got = match self.control() {
            ControlState::None => "none",
            ControlState::Requested { .. } => "requested",
            ControlState::Granted { .. } => "granted",
        };
        MachineError::InappropriateControl {
            input,
            expected,
            got,
        }
    }

    fn expect_control(
        &self,
        input: &'static str,
        expected: &'static str,
        ok: impl Fn(&ControlState) -> bool,
    ) -> Result<(), MachineError> {
        if ok(&self.control()) {
            Ok(())
        } else {
            Err(self.control_error(input, expected))
        }
    }

    fn open_connection_mut(&mut self, id: &str) -> Result<&mut Connection, MachineError> {
        self.connections
            .iter_mut()
            .find(|c| c.unique_connection_id == id && !connection_closed(c))
            .ok_or_else(|| MachineError::UnknownConnection { id: id.to_string() })
    }

    /// At most one connection holds focus; losing focus revokes control of that tab.
    fn set_focus(&mut self, now: Millis, id: &str, focused: bool) {
        let stamp = now.to_iso8601();
        let mut lost = Vec::new();
        for c in &mut self.connections {
            let is_target = c.unique_connection_id == id;
            let had = c.has_focus;
            c.has_focus = if is_target {
                focused
            } else {
                c.has_focus && !focused
            };
            if had || c.has_focus {
                c.last_focus_at = Some(stamp.clone());
            }
            if had && !c.has_focus {
                lost.push(c.unique_connection_id.clone());
            }
        }
        for id in lost {
            self.release_control_of(now, &id, ControlEndReason::FocusLost);
        }
    }

    fn release_control_of(&mut self, now: Millis, connection_id: &str, reason: ControlEndReason) {
        if let Phase::Active(Active {
            control: ControlState::Granted {
                connection_id: c, ..
            },
            ..
        }) = &self.phase
        {
            if c == connection_id {
                self.set_control(now, ControlState::None, Some(reason));
            }
        }
    }

    /// Moves pending prompts to the tab the visitor looks at, when that changed.
    /// The tab it leaves, if still open, is told to withdraw it.
    fn retarget_prompts(&mut self) {
        let target = self.prompt_target().map(str::to_string);
        let mut left = None;
        match &mut self.phase {
            Phase::Authorizing(a) if target.is_some() && a.prompt_target != target => {
                left = std::mem::replace(&mut a.prompt_target, target.clone())
                    .map(|previous| (PromptKind::Session, previous));
                if let (Some(agent), Some(connection_id)) = (a.agents.first().cloned(), target) {
                    self.events.push_back(Event::SessionRequested {
                        session_id: a.session_id.clone(),
                        agent,
                        connection_id,
                    });
                }
            }
            Phase::Active(Active {
                control:
                    ControlState::Requested {
                        agent_id,
                        connection_id,
                    },
                agents,
                ..
            }) => {
                if let Some(t) = target.filter(|t| t != connection_id) {
                    let previous = std::mem::replace(connection_id, t.clone());
                    left = Some((PromptKind::Control, previous));
                    if let Some(agent) = agents.iter().find(|a| &a.id == agent_id).cloned() {
                        self.events.push_back(Event::ControlRequested {
                            agent,
                            connection_id: t,
                        });
                    }
                }
            }
            _ => {}
        }
        if let Some((prompt, connection_id)) = left {
            if self
                .connection(&connection_id)
                .is_some_and(|c| c.status != ConnectionStatus::Disconnected)
            {
                self.events.push_back(Event::PromptWithdrawn {
                    prompt,
                    connection_id,
                });
            }
        }
    }

    fn set_control(
        &mut self,
        now: Millis,
        next: ControlState,
        end_reason: Option<ControlEndReason>,
    ) {
        let Phase::Active(a) = &mut self.phase else {
            return;
        };
        let previous = std::mem::replace(&mut a.control, next.clone());
        if let (
            Some(reason),
            ControlState::Requested { agent_id, .. } | ControlState::Granted { agent_id, .. },
        ) = (end_reason, &previous)
        {
            self.events.push_back(Event::ControlEnded {
                agent_id: agent_id.clone(),
                reason,
            });
        }
        if let ControlState::Granted {
            agent_id,
            connection_id,
        } = next
        {
            self.events.push_back(Event::ControlStarted {
                agent_id,
                connection_id,
            });
        }
        if let Some(c) = self.communication.as_mut() {
            c.provider_event_time = now.to_iso8601();
        }
    }

    /// Closes the open segment and opens one of `kind` (no-op when already in it).
    fn switch_segment(&mut self, now: Millis, kind: SegmentType, how_ended: &str) {
        let Some(c) = self.communication.as_mut() else {
            return;
        };
        if let Some(open) = c.segments.last_mut().filter(|s| s.end_time.is_none()) {
            if open.segment_type == kind {
                return;
            }
            open.end_time = Some(now.to_iso8601());
            open.how_ended = Some(how_ended.to_string());
        }
        c.segments.push(Segment {
            start_time: now.to_iso8601(),
            end_time: None,
            segment_type: kind,
            how_ended: None,
            disconnect_type: None,
        });
    }

    fn end(&mut self, now: Millis, disconnect_type: DisconnectType) {
        if matches!(self.phase, Phase::Active(_)) {
            self.set_control(
                now,
                ControlState::None,
                Some(ControlEndReason::SessionEnded),
            );
        }
        let session_id = match &self.phase {
            Phase::Authorizing(a) => a.session_id.clone(),
            Phase::Active(a) => a.session_id.clone(),
            Phase::None | Phase::Ended(_) => return,
        };
        self.timers.stop_all();
        if let Some(c) = self.communication.as_mut() {
            let stamp = now.to_iso8601();
            if let Some(open) = c.segments.last_mut().filter(|s| s.end_time.is_none()) {
                open.end_time = Some(stamp.clone());
                open.how_ended = Some("disconnect".to_string());
                open.disconnect_type = Some(disconnect_type);
            }
            c.state = CommunicationState::Disconnected;
            c.disconnect_type = Some(disconnect_type);
            c.disconnected_time = Some(stamp.clone());
            c.provider_event_time = stamp;
            c.controlling.clear();
        }
        self.events.push_back(Event::SessionEnded {
            session_id: session_id.clone(),
            disconnect_type,
        });
        self.phase = Phase::Ended(Ended {
            session_id,
            disconnect_type,
        });
        self.changed(now);
    }

    fn changed(&mut self, now: Millis) {
        if let Some(c) = self.communication.as_mut() {
            if c.state != CommunicationState::Disconnected {
                c.provider_event_time = now.to_iso8601();
            }
        }
        if self.events.back() != Some(&Event::StateChanged) {
            self.events.push_back(Event::StateChanged);
        }
    }
}

#[cfg(test)]
mod tests;
