//! The SDK's side of a visitor connection, sans-IO: what the page's tab says to the
//! server and what it makes of the answers. The server's [`crate::core::machine`] is the
//! authority on the session; this client mirrors it for one tab, queues what the page
//! says while offline, reconnects with jittered backoff, sends heartbeats, and turns
//! server frames into the SDK's JS events.
//!
//! Contract (as [`crate::core::machine::VisitorMachine`]): `handle_*` inputs take `now`;
//! outputs are drained with [`VisitorClient::poll_output`] until `None`;
//! [`VisitorClient::poll_timeout`] gives the earliest deadline for
//! [`VisitorClient::handle_timeout`] (early or twice is harmless); getters take `&self`.

use std::collections::VecDeque;

use crate::core::json::{Json, Object};
use serde::Serialize;

use crate::core::codes::ErrorCode;
use crate::core::config::{self, Config, ConfigError, IdentityUpdate, Patch};
use crate::core::derive;
use crate::core::ids::valid_id;
use crate::core::journey::{self, TrackError};
use crate::core::machine::{PromptKind, SessionStatus, MAX_RETURN_TIME_SECONDS};
use crate::core::model::{Agent, DisconnectType};
use crate::core::protocol::{
    self, ConnectionHello, ServerToVisitor, VisitorMessage, VisitorState, PROTOCOL_VERSION,
};
use crate::core::Millis;

mod console;
mod draw;
mod mirror;
pub use console::ConsoleCommand;
pub use draw::{DrawCommand, MAX_INK_NAME};
pub use mirror::MirrorCommand;

/// Seconds between heartbeats while connected (the server drops sockets silent for 45).
pub const HEARTBEAT_SECONDS: u64 = 20;
/// First reconnect delay; doubles per failed attempt up to [`RECONNECT_MAX_MS`].
pub const RECONNECT_BASE_MS: u64 = 500;
/// Longest reconnect delay.
pub const RECONNECT_MAX_MS: u64 = 30_000;
/// Most messages kept while offline; beyond it the oldest are dropped (never answers).
pub const OUTBOX_LIMIT: usize = 256;
/// Tracked events wait this long to go out together as one `track` frame.
pub const TRACK_BATCH_MS: u64 = 1000;
/// Most tracked events kept unsent (offline; online, a full batch goes out at once);
/// beyond it the oldest are dropped.
pub const TRACK_QUEUE_LIMIT: usize = 500;
/// Largest `track` frame or beacon body the client writes (the limit is 64 KiB).
pub const TRACK_FRAME_BYTES: usize = 48 * 1024;
/// What closes a `track` frame or beacon body after its events.
const BATCH_TAIL: &str = "]}";
/// Where `navigator.sendBeacon` posts the events still queued on `pagehide`.
pub const BEACON_PATH: &str = "/api/v1/journey/beacon";

/// What the page knows about its tab when the SDK starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PageInfo {
    pub url: Option<String>,
    pub screen_width: u32,
    pub screen_height: u32,
    pub has_focus: bool,
    pub user_agent: Option<String>,
    /// The one-time token of an agent's personal link (`#covisit_call=…`), taken out
    /// of the URL by the facade.
    pub call_token: Option<String>,
    /// The browser can make calls: `getUserMedia` and `RTCPeerConnection` are there
    /// (detected by the facade, never claimed by the page).
    pub audio_supported: bool,
    /// The live-chat widget found on the page (`protocol::INTEGRATIONS`), if any.
    pub integration: Option<String>,
    /// The capabilities co-browsing needs that the browser lacks (`protocol::CAPABILITIES`).
    pub missing: Vec<String>,
}

/// What an earlier page of this visitor (and tab) stored: who the visitor is and the
/// secret that proves it (localStorage), and the tab's id (sessionStorage).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredIds {
    pub short_id: Option<String>,
    pub visitor_secret: Option<String>,
    pub connection_id: Option<String>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a WebSocket to this URL (closing any previous one).
    Connect { url: String },
    /// Send this text frame on the open socket.
    Transmit(String),
    /// Close the socket for good (after `stop`, or a refused hello).
    Close,
    /// Store the visitor's id and secret (localStorage) and the tab's id
    /// (sessionStorage).
    Persist {
        short_id: String,
        visitor_secret: Option<String>,
        unique_connection_id: String,
    },
    /// Tell the page.
    Event(ClientEvent),
    /// Co-browsing: tell the page's mirror capture (see [`mirror`]).
    Mirror(MirrorCommand),
    /// Agents' laser and ink: tell the page's drawing layer (see [`draw`]).
    Draw(DrawCommand),
    /// Calls and sharing (issue 17): hand this `call` frame's JSON (a protocol
    /// `CallToVisitor`) to the on-demand call file; `None`: the session is over here,
    /// stop every call and share at once.
    Call(Option<String>),
    /// The remote console: install or remove the page's console hooks (see [`console`]).
    Console(ConsoleCommand),
}

/// The SDK's events (SPEC.md section 3), with their payloads in camelCase.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", content = "detail", rename_all = "camelCase")]
pub enum ClientEvent {
    #[serde(rename_all = "camelCase")]
    Ready {
        short_id: String,
        unique_connection_id: String,
    },
    #[serde(rename_all = "camelCase")]
    SessionRequest {
        session_id: String,
        agent: Agent,
        /// The session will be recorded (the account's setting).
        recorded: bool,
    },
    #[serde(rename_all = "camelCase")]
    SessionStart {
        session_id: String,
    },
    #[serde(rename_all = "camelCase")]
    SessionContinue {
        session_id: String,
    },
    #[serde(rename_all = "camelCase")]
    SessionEnd {
        session_id: String,
        disconnect_type: DisconnectType,
    },
    ControlRequest {
        agent: Agent,
    },
    #[serde(rename_all = "camelCase")]
    ControlStart {
        agent_id: String,
    },
    #[serde(rename_all = "camelCase")]
    ControlEnd {
        agent_id: String,
    },
    /// The prompt of that kind moved to another tab of the visitor: hide it here.
    PromptWithdrawn {
        prompt: PromptKind,
    },
    ConnectionChange {
        online: bool,
    },
    StateChange,
    Error {
        code: String,
        message: String,
    },
}

impl ClientEvent {
    /// The JS event name.
    pub fn name(&self) -> &'static str {
        match self {
            ClientEvent::Ready { .. } => "ready",
            ClientEvent::SessionRequest { .. } => "sessionRequest",
            ClientEvent::SessionStart { .. } => "sessionStart",
            ClientEvent::SessionContinue { .. } => "sessionContinue",
            ClientEvent::SessionEnd { .. } => "sessionEnd",
            ClientEvent::ControlRequest { .. } => "controlRequest",
            ClientEvent::ControlStart { .. } => "controlStart",
            ClientEvent::ControlEnd { .. } => "controlEnd",
            ClientEvent::PromptWithdrawn { .. } => "promptWithdrawn",
            ClientEvent::ConnectionChange { .. } => "connectionChange",
            ClientEvent::StateChange => "stateChange",
            ClientEvent::Error { .. } => "error",
        }
    }
}

impl ClientEvent {
    /// The event's `detail` (what a page's handler gets) as JSON text; `null` for
    /// `stateChange`, whose detail is the whole state. Written by hand rather than
    /// through the derived `Serialize` (adjacently tagged, whose code is large in the
    /// wasm); a test holds the two to the same JSON.
    pub fn detail_text(&self) -> String {
        let s = |v: &str| json_text(v);
        let (a, b): ((&str, String), Option<(&str, String)>) = match self {
            ClientEvent::Ready {
                short_id,
                unique_connection_id,
            } => (
                ("shortId", s(short_id)),
                Some(("uniqueConnectionId", s(unique_connection_id))),
            ),
            ClientEvent::SessionRequest {
                session_id,
                agent,
                recorded,
            } => (
                ("sessionId", s(session_id)),
                // `recorded`, the third member, follows the second's value.
                Some((
                    "agent",
                    [&json_text(agent), ",\"recorded\":", &json_text(recorded)].concat(),
                )),
            ),
            ClientEvent::SessionStart { session_id }
            | ClientEvent::SessionContinue { session_id } => (("sessionId", s(session_id)), None),
            ClientEvent::SessionEnd {
                session_id,
                disconnect_type,
            } => (
                ("sessionId", s(session_id)),
                Some(("disconnectType", json_text(disconnect_type))),
            ),
            ClientEvent::ControlRequest { agent } => (("agent", json_text(agent)), None),
            ClientEvent::ControlStart { agent_id } | ClientEvent::ControlEnd { agent_id } => {
                (("agentId", s(agent_id)), None)
            }
            ClientEvent::PromptWithdrawn { prompt } => (("prompt", json_text(prompt)), None),
            ClientEvent::ConnectionChange { online } => (("online", json_text(online)), None),
            ClientEvent::StateChange => return "null".into(),
            ClientEvent::Error { code, message } => {
                (("code", s(code)), Some(("message", s(message))))
            }
        };
        let mut out = ["{\"", a.0, "\":", &a.1].concat();
        if let Some((key, value)) = b {
            out.push_str(&[",\"", key, "\":", &value].concat());
        }
        out.push('}');
        out
    }
}

/// The event names a page may subscribe to.
pub const EVENT_NAMES: [&str; 15] = [
    "ready",
    "sessionRequest",
    "sessionStart",
    "sessionContinue",
    "sessionEnd",
    "controlRequest",
    "controlStart",
    "controlEnd",
    "promptWithdrawn",
    "connectionChange",
    "stateChange",
    "error",
    // Calls (issue 17): fired by the on-demand call file through the facade.
    "callRequest",
    "callStart",
    "callEnd",
];

/// A call from the page that cannot be made now or with these arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    WrongState {
        call: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    WrongControlState {
        call: &'static str,
        expected: &'static str,
    },
    InvalidArgument {
        field: &'static str,
        reason: &'static str,
    },
    UnknownEvent {
        name: String,
    },
    Stopped,
    Config(ConfigError),
    Track(TrackError),
}

impl From<ConfigError> for ClientError {
    fn from(e: ConfigError) -> ClientError {
        ClientError::Config(e)
    }
}

impl From<TrackError> for ClientError {
    fn from(e: TrackError) -> ClientError {
        ClientError::Track(e)
    }
}

crate::core::text::message_display!(ClientError);

impl ClientError {
    /// The message for people (no `core::fmt`: see [`crate::core::text`]).
    pub fn message(&self) -> String {
        match self {
            ClientError::WrongState {
                call,
                expected,
                got,
            } => [
                "`",
                call,
                "` is not valid now: expected ",
                expected,
                ", but the session is ",
                got,
            ]
            .concat(),
            ClientError::WrongControlState { call, expected } => {
                ["`", call, "` is not valid now: expected ", expected].concat()
            }
            ClientError::InvalidArgument { field, reason } => {
                ["`", field, "` is invalid: ", reason].concat()
            }
            ClientError::UnknownEvent { name } => ["unknown event `", name, "`"].concat(),
            ClientError::Stopped => "the SDK was stopped".into(),
            ClientError::Config(e) => e.message(),
            ClientError::Track(e) => e.message(),
        }
    }

    /// Stable code for JS.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::WrongState { .. } => ErrorCode::WRONG_SESSION_STATE,
            ClientError::WrongControlState { .. } => ErrorCode::WRONG_CONTROL_STATE,
            ClientError::InvalidArgument { .. } => ErrorCode::INVALID_ARGUMENT,
            ClientError::UnknownEvent { .. } => ErrorCode::UNKNOWN_EVENT,
            ClientError::Stopped => ErrorCode::STOPPED,
            ClientError::Config(e) => e.code(),
            ClientError::Track(e) => e.code(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Connecting,
    AwaitingWelcome,
    Ready,
    Backoff,
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
enum Control {
    None,
    Requested(Agent),
    Granted(String),
}

#[derive(Debug, Clone, Copy)]
enum ClientTimer {
    Reconnect = 0,
    Heartbeat = 1,
    Authorization = 2,
}

/// The visitor as the SDK knows it (seed Visitor names, snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct VisitorView {
    pub short_id: Option<String>,
    pub lookup_code: Option<String>,
    pub unique_id: Option<String>,
    pub identities: Vec<String>,
    pub tags: Vec<String>,
    pub call_name: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub metadata: Object,
    pub is_waiting_for_call: bool,
    pub is_in_session: bool,
}

/// The session as the SDK knows it (seed Session names, plus `status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    pub id: Option<String>,
    pub status: SessionStatus,
    pub agents: Vec<Agent>,
    pub session_authorized: bool,
    pub went_live: bool,
}

/// `state()`: `{visitor, connection, session, communication}` (SPEC.md section 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientState {
    pub visitor: VisitorView,
    /// The seed Connection of this tab, as the server last sent it.
    pub connection: Option<Json>,
    pub session: SessionView,
    /// The visitor's seed Cobrowsesession, as the server last sent it.
    pub communication: Option<Json>,
}

/// One tab's SDK client. See the module docs for the contract.
#[derive(Debug, Clone)]
pub struct VisitorClient {
    config: Config,
    hello_config: Json,
    page: PageInfo,
    link: Link,
    attempt: u32,
    outbox: VecDeque<VisitorMessage>,
    outputs: VecDeque<Output>,
    timers: [Option<Millis>; 3],
    rng: u64,
    visitor: VisitorView,
    /// The `email` the page set; `visitor.email` is derived from it and the identities.
    explicit_email: Option<String>,
    /// Proves this SDK is the visitor `visitor.short_id` (never shown to the page's
    /// events or state).
    visitor_secret: Option<String>,
    unique_connection_id: Option<String>,
    status: SessionStatus,
    session_id: Option<String>,
    agents: Vec<Agent>,
    authorized: bool,
    went_live: bool,
    control: Control,
    connection: Option<Json>,
    communication: Option<Json>,
    expected: Option<(Option<u64>, Option<String>, Option<String>)>,
    announced_leave: bool,
    ready_once: bool,
    /// Tracked events, encoded, oldest first, and when they are due to go out.
    track_queue: VecDeque<String>,
    track_due: Option<Millis>,
}

impl VisitorClient {
    /// Validates `config` (SPEC.md section 3) and starts connecting: the first output
    /// is [`Output::Connect`]. `stored_*` come from a previous page of this visitor and
    /// tab; `seed` feeds the reconnect jitter.
    pub fn new(
        config_json: &Json,
        page: PageInfo,
        stored: StoredIds,
        seed: u64,
    ) -> Result<VisitorClient, ClientError> {
        let config = config::parse_config(config_json)?;
        let hello_config = match config_json {
            Json::Object(m) => Json::Object(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "apiKey" && k.as_str() != "server")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => Json::Null,
        };
        let mut client = VisitorClient {
            config,
            hello_config,
            page,
            link: Link::Connecting,
            attempt: 0,
            outbox: VecDeque::new(),
            outputs: VecDeque::new(),
            timers: [None; 3],
            rng: seed | 1,
            visitor: VisitorView {
                short_id: stored.short_id.filter(|s| valid_id(s)),
                ..Default::default()
            },
            explicit_email: None,
            visitor_secret: stored.visitor_secret.filter(|s| valid_id(s)),
            unique_connection_id: stored.connection_id.filter(|s| valid_id(s)),
            status: SessionStatus::None,
            session_id: None,
            agents: Vec::new(),
            authorized: false,
            went_live: false,
            control: Control::None,
            connection: None,
            communication: None,
            expected: None,
            announced_leave: false,
            ready_once: false,
            track_queue: VecDeque::new(),
            track_due: None,
        };
        let identity = std::mem::take(&mut client.config.identity);
        client.apply_identity(identity);
        client.outputs.push_back(Output::Connect {
            url: client.socket_url(),
        });
        Ok(client)
    }

    // ----- getters ---------------------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn status(&self) -> SessionStatus {
        self.status
    }

    pub fn is_online(&self) -> bool {
        self.link == Link::Ready
    }

    pub fn is_stopped(&self) -> bool {
        self.link == Link::Stopped
    }

    pub fn lookup_code(&self) -> Option<&str> {
        self.visitor.lookup_code.as_deref()
    }

    /// Whether control is granted to an agent now.
    pub fn control_granted(&self) -> bool {
        matches!(self.control, Control::Granted(_))
    }

    /// The agent asking for (or holding) the session, for prompts.
    pub fn session_agent(&self) -> Option<&Agent> {
        self.agents.first()
    }

    /// The whole state the page sees with `state()`.
    pub fn state(&self) -> ClientState {
        ClientState {
            visitor: self.visitor.clone(),
            connection: self.connection.clone(),
            session: SessionView {
                id: self.session_id.clone(),
                status: self.status,
                agents: self.agents.clone(),
                session_authorized: self.authorized,
                went_live: self.went_live,
            },
            communication: self.communication.clone(),
        }
    }

    /// The `ws://…/ws/visitor` URL derived from the config's `server`.
    pub fn socket_url(&self) -> String {
        let server = &self.config.server;
        // The config only accepts http:// and https:// servers.
        let (scheme, rest) = match server.strip_prefix("https://") {
            Some(rest) => ("wss://", rest),
            None => ("ws://", server.strip_prefix("http://").unwrap_or(server)),
        };
        [scheme, rest, "/ws/visitor"].concat()
    }

    // ----- outputs ---------------------------------------------------------------

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers
            .iter()
            .chain([&self.track_due])
            .flatten()
            .min()
            .copied()
    }

    // ----- inputs: transport -----------------------------------------------------

    /// The socket opened: say hello. Queued messages wait for the welcome.
    pub fn handle_socket_open(&mut self, _now: Millis) {
        if self.link != Link::Connecting {
            return;
        }
        self.link = Link::AwaitingWelcome;
        let hello = VisitorMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            api_key: self.config.api_key.clone(),
            short_id: self.visitor.short_id.clone(),
            visitor_secret: self.visitor_secret.clone(),
            connection: ConnectionHello {
                unique_connection_id: self.unique_connection_id.clone(),
                current_url: self.page.url.clone(),
                screen_width: self.page.screen_width,
                screen_height: self.page.screen_height,
                audio_supported: self.page.audio_supported,
                has_focus: self.page.has_focus,
                user_agent: self.page.user_agent.clone(),
                integration: self.page.integration.clone(),
                missing: self.page.missing.clone(),
            },
            config: self.hello_config.clone(),
        };
        self.outputs
            .push_back(Output::Transmit(protocol::encode(&hello)));
    }

    /// The socket closed or failed: retry after a jittered, growing delay.
    pub fn handle_socket_close(&mut self, now: Millis) {
        if matches!(self.link, Link::Stopped | Link::Backoff) {
            return;
        }
        let was_ready = self.link == Link::Ready;
        self.link = Link::Backoff;
        self.timers[ClientTimer::Heartbeat as usize] = None;
        let ceiling = RECONNECT_BASE_MS
            .saturating_mul(1 << self.attempt.min(16))
            .min(RECONNECT_MAX_MS);
        // Full jitter between half and all of the ceiling spreads a server's reconnect storm.
        let delay = ceiling / 2 + self.next_random() % (ceiling / 2 + 1);
        self.attempt = self.attempt.saturating_add(1);
        self.timers[ClientTimer::Reconnect as usize] = Some(Millis(now.0.saturating_add(delay)));
        self.patch_connection("status", Json::from("disconnected"));
        if was_ready {
            self.event(ClientEvent::ConnectionChange { online: false });
            self.event(ClientEvent::StateChange);
        }
    }

    /// A text frame arrived from the server.
    pub fn handle_frame(&mut self, now: Millis, text: &str) {
        match protocol::decode::<ServerToVisitor>(text) {
            Ok(message) => self.handle_message(now, message),
            Err(e) => self.handle_frame_error(&e),
        }
    }

    /// A server frame the browser already parsed (the facade's path: no JSON parser in
    /// the bundle). `frame` is `None` when it was not JSON or over the size limit.
    pub fn handle_frame_json(&mut self, now: Millis, frame: Option<Json>) {
        let decoded = frame
            .ok_or_else(|| protocol::ProtocolError::Malformed {
                detail: "not JSON, or over the size limit".into(),
            })
            .and_then(protocol::decode_server_to_visitor);
        match decoded {
            Ok(message) => self.handle_message(now, message),
            Err(e) => self.handle_frame_error(&e),
        }
    }

    fn handle_frame_error(&mut self, e: &protocol::ProtocolError) {
        // A newer server's message types are not errors for the page.
        if !matches!(e, protocol::ProtocolError::UnknownType { .. }) {
            self.event(ClientEvent::Error {
                code: e.code().as_str().into(),
                message: e.message(),
            });
        }
    }

    fn handle_message(&mut self, now: Millis, message: ServerToVisitor) {
        match message {
            ServerToVisitor::Welcome {
                short_id,
                unique_connection_id,
                lookup_code,
                visitor_secret,
                ..
            } => {
                self.link = Link::Ready;
                self.attempt = 0;
                // A new id (ours was not proven) comes with its own secret; the same id
                // keeps the secret we hold unless the server gave one.
                if visitor_secret.is_some()
                    || self.visitor.short_id.as_deref() != Some(short_id.as_str())
                {
                    self.visitor_secret = visitor_secret;
                }
                self.visitor.short_id = Some(short_id.clone());
                self.visitor.lookup_code = lookup_code;
                self.unique_connection_id = Some(unique_connection_id.clone());
                self.refresh_names();
                self.timers[ClientTimer::Heartbeat as usize] =
                    Some(now.plus_seconds(HEARTBEAT_SECONDS));
                self.outputs.push_back(Output::Persist {
                    short_id: short_id.clone(),
                    visitor_secret: self.visitor_secret.clone(),
                    unique_connection_id: unique_connection_id.clone(),
                });
                // An agent's personal link brought the visitor here: redeemed once.
                if let Some(token) = self.page.call_token.take() {
                    self.outputs.push_back(Output::Transmit(protocol::encode(
                        &VisitorMessage::CallLink { token },
                    )));
                }
                while let Some(m) = self.outbox.pop_front() {
                    self.outputs
                        .push_back(Output::Transmit(protocol::encode(&m)));
                }
                #[cfg(feature = "journey-tracking")]
                self.flush_tracking(now);
                if !self.ready_once {
                    self.ready_once = true;
                    self.event(ClientEvent::Ready {
                        short_id,
                        unique_connection_id,
                    });
                } else {
                    self.event(ClientEvent::ConnectionChange { online: true });
                }
                self.event(ClientEvent::StateChange);
                // Frames were lost while offline: the agents need a fresh snapshot.
                self.mirror_start();
            }
            ServerToVisitor::SessionRequest {
                session_id,
                agent,
                recorded,
            } => {
                // The prompt may come back to this tab (focus moved away and back): the
                // visitor's time to answer keeps running from the first request.
                let again = self.status == SessionStatus::Authorizing
                    && self.session_id.as_deref() == Some(session_id.as_str());
                self.begin_session(&session_id, SessionStatus::Authorizing);
                self.agents = vec![agent.clone()];
                if !again {
                    self.timers[ClientTimer::Authorization as usize] =
                        Some(now.plus_seconds(self.config.authorization_timeout_seconds));
                }
                self.event(ClientEvent::SessionRequest {
                    session_id,
                    agent,
                    recorded,
                });
                self.event(ClientEvent::StateChange);
            }
            ServerToVisitor::SessionStart { session_id } => {
                self.begin_session(&session_id, SessionStatus::Active);
                self.authorized = true;
                self.went_live = true;
                self.visitor.is_in_session = true;
                self.visitor.is_waiting_for_call = false;
                self.timers[ClientTimer::Authorization as usize] = None;
                self.event(ClientEvent::SessionStart { session_id });
                self.event(ClientEvent::StateChange);
                self.mirror_start();
            }
            ServerToVisitor::SessionContinue { session_id } => {
                self.begin_session(&session_id, SessionStatus::Active);
                self.authorized = true;
                self.went_live = true;
                self.visitor.is_in_session = true;
                self.announced_leave = false;
                self.event(ClientEvent::SessionContinue { session_id });
                self.event(ClientEvent::StateChange);
                self.mirror_start();
            }
            ServerToVisitor::SessionEnd {
                session_id,
                disconnect_type,
            } => {
                if self.session_id.as_deref() == Some(session_id.as_str())
                    && self.status != SessionStatus::Ended
                {
                    self.end_locally(session_id, disconnect_type);
                }
            }
            ServerToVisitor::ControlRequest { agent } => {
                self.control = Control::Requested(agent.clone());
                self.event(ClientEvent::ControlRequest { agent });
                self.event(ClientEvent::StateChange);
            }
            ServerToVisitor::PromptWithdrawn { prompt } => {
                self.event(ClientEvent::PromptWithdrawn { prompt });
            }
            ServerToVisitor::ControlStart { agent_id } => {
                self.control = Control::Granted(agent_id.clone());
                self.event(ClientEvent::ControlStart { agent_id });
                self.event(ClientEvent::StateChange);
                self.mirror_command(MirrorCommand::Control { granted: true });
            }
            ServerToVisitor::ControlEnd { agent_id, .. } => {
                if self.control != Control::None {
                    self.control = Control::None;
                    self.event(ClientEvent::ControlEnd { agent_id });
                    self.event(ClientEvent::StateChange);
                    self.mirror_command(MirrorCommand::Control { granted: false });
                }
            }
            ServerToVisitor::RemoteAction {
                id,
                agent_id,
                action,
            } => self.handle_remote_action(id, agent_id, action),
            ServerToVisitor::MirrorResync => self.mirror_start(),
            ServerToVisitor::AssetRequest { id, url } => self.handle_asset_request(id, url),
            ServerToVisitor::Draw {
                agent_id,
                name,
                color,
                ink,
            } => self.handle_draw(agent_id, name, color, ink),
            ServerToVisitor::Call { call } => {
                // Consent and scope: calls exist only inside an active session.
                if self.status == SessionStatus::Active && self.link != Link::Stopped {
                    self.outputs.push_back(Output::Call(Some(call.to_text())));
                }
            }
            ServerToVisitor::State { state } => self.apply_state(*state),
            ServerToVisitor::Error(e) => {
                if self.link == Link::AwaitingWelcome {
                    // A refused hello (bad key, bad config) will be refused again: stop.
                    self.stop_link();
                }
                self.event(ClientEvent::Error {
                    code: e.code,
                    message: e.message,
                });
            }
            ServerToVisitor::HeartbeatAck | ServerToVisitor::Unknown => {}
        }
    }

    /// Fires due timers: reconnect, heartbeat, the local authorization timeout.
    pub fn handle_timeout(&mut self, now: Millis) {
        let due = |t: Option<Millis>| t.is_some_and(|d| d <= now);
        if due(self.timers[ClientTimer::Reconnect as usize]) {
            self.timers[ClientTimer::Reconnect as usize] = None;
            if self.link == Link::Backoff {
                self.link = Link::Connecting;
                self.outputs.push_back(Output::Connect {
                    url: self.socket_url(),
                });
            }
        }
        if due(self.timers[ClientTimer::Heartbeat as usize]) {
            self.timers[ClientTimer::Heartbeat as usize] = None;
            if self.link == Link::Ready {
                self.outputs.push_back(Output::Transmit(protocol::encode(
                    &VisitorMessage::Heartbeat,
                )));
                self.timers[ClientTimer::Heartbeat as usize] =
                    Some(now.plus_seconds(HEARTBEAT_SECONDS));
            }
        }
        #[cfg(feature = "journey-tracking")]
        if due(self.track_due) {
            self.flush_tracking(now);
        }
        if due(self.timers[ClientTimer::Authorization as usize]) {
            self.timers[ClientTimer::Authorization as usize] = None;
            // The server decides too; ending here hides the prompt even when offline.
            if self.status == SessionStatus::Authorizing {
                if let Some(id) = self.session_id.clone() {
                    self.end_locally(id, DisconnectType::Timeout);
                }
            }
        }
    }

    // ----- inputs: the page ------------------------------------------------------

    /// The tab gained or lost focus (focus/blur/visibilitychange).
    pub fn handle_focus(&mut self, now: Millis, has_focus: bool) {
        if self.page.has_focus == has_focus {
            return;
        }
        self.page.has_focus = has_focus;
        self.patch_connection("hasFocus", Json::Bool(has_focus));
        self.patch_connection("lastFocusAt", Json::from(now.to_iso8601()));
        self.send(VisitorMessage::Focus { has_focus });
        self.event(ClientEvent::StateChange);
    }

    /// The URL changed without a reload (pushState, replaceState, popstate, hashchange).
    pub fn handle_url(&mut self, _now: Millis, url: &str) {
        if self.page.url.as_deref() == Some(url) || url.len() > 4096 {
            return;
        }
        self.page.url = Some(url.to_string());
        self.patch_connection("currentUrl", Json::from(url));
        self.send(VisitorMessage::Url {
            current_url: url.to_string(),
        });
        self.event(ClientEvent::StateChange);
    }

    /// The page is going away (`pagehide`): announce the expected disconnect with the
    /// return time `expectDisconnect` set, else the default.
    pub fn handle_page_hide(&mut self, _now: Millis) {
        if self.announced_leave || self.link == Link::Stopped {
            return;
        }
        self.announced_leave = true;
        let (return_time_seconds, message, title) =
            self.expected.clone().unwrap_or((None, None, None));
        self.send(VisitorMessage::ExpectDisconnect {
            return_time_seconds,
            message,
            title,
        });
    }

    /// The page came back from the back/forward cache (`pageshow` persisted).
    pub fn handle_page_show(&mut self, _now: Millis) {
        self.announced_leave = false;
    }

    // ----- inputs: the JS API ----------------------------------------------------

    pub fn authorize(&mut self) -> Result<(), ClientError> {
        self.expect_status("authorize", "authorizing", &[SessionStatus::Authorizing])?;
        self.timers[ClientTimer::Authorization as usize] = None;
        self.send(VisitorMessage::Authorize);
        Ok(())
    }

    pub fn deny(&mut self) -> Result<(), ClientError> {
        self.expect_status("deny", "authorizing", &[SessionStatus::Authorizing])?;
        self.send(VisitorMessage::Deny);
        if let Some(id) = self.session_id.clone() {
            self.end_locally(id, DisconnectType::Client);
        }
        Ok(())
    }

    pub fn end(&mut self) -> Result<(), ClientError> {
        self.expect_status(
            "end",
            "authorizing or active",
            &[SessionStatus::Authorizing, SessionStatus::Active],
        )?;
        self.send(VisitorMessage::End);
        if let Some(id) = self.session_id.clone() {
            self.end_locally(id, DisconnectType::Client);
        }
        Ok(())
    }

    pub fn grant_control(&mut self) -> Result<(), ClientError> {
        self.expect_control("grantControl", "a pending control request", |c| {
            matches!(c, Control::Requested(_))
        })?;
        self.send(VisitorMessage::ControlGrant);
        Ok(())
    }

    pub fn deny_control(&mut self) -> Result<(), ClientError> {
        self.expect_control("denyControl", "a pending control request", |c| {
            matches!(c, Control::Requested(_))
        })?;
        self.control = Control::None;
        self.send(VisitorMessage::ControlDeny);
        self.event(ClientEvent::StateChange);
        Ok(())
    }

    pub fn revoke_control(&mut self) -> Result<(), ClientError> {
        self.expect_control("revokeControl", "control granted to an agent", |c| {
            matches!(c, Control::Granted(_))
        })?;
        if let Control::Granted(agent_id) = std::mem::replace(&mut self.control, Control::None) {
            self.event(ClientEvent::ControlEnd { agent_id });
        }
        self.mirror_command(MirrorCommand::Control { granted: false });
        self.send(VisitorMessage::ControlRevoke);
        self.event(ClientEvent::StateChange);
        Ok(())
    }

    /// `expectDisconnect({returnTimeSeconds, message, title})`: announce leaving to a
    /// page without the SDK. Unknown keys and wrong types are rejected.
    pub fn expect_disconnect(&mut self, options: &Json) -> Result<(), ClientError> {
        let map = match options {
            Json::Null => Object::new(),
            Json::Object(m) => m.clone(),
            _ => {
                return Err(ClientError::InvalidArgument {
                    field: "options",
                    reason: "must be an object",
                })
            }
        };
        let mut return_time_seconds = None;
        let (mut message, mut title) = (None, None);
        for (key, value) in &map {
            match (key.as_str(), value) {
                ("returnTimeSeconds", Json::Null)
                | ("message", Json::Null)
                | ("title", Json::Null) => {}
                ("returnTimeSeconds", Json::Number(n)) => match n.as_u64() {
                    Some(s) if s <= MAX_RETURN_TIME_SECONDS => return_time_seconds = Some(s),
                    _ => {
                        return Err(ClientError::InvalidArgument {
                            field: "returnTimeSeconds",
                            reason: "must be a whole number of seconds from 0 to 3600",
                        })
                    }
                },
                ("message", Json::String(s)) if s.len() <= config::MAX_TEXT_LEN => {
                    message = Some(s.clone())
                }
                ("title", Json::String(s)) if s.len() <= config::MAX_TEXT_LEN => {
                    title = Some(s.clone())
                }
                ("returnTimeSeconds", _) => {
                    return Err(ClientError::InvalidArgument {
                        field: "returnTimeSeconds",
                        reason: "must be a number",
                    })
                }
                ("message" | "title", _) => {
                    return Err(ClientError::InvalidArgument {
                        field: "message",
                        reason: "must be a short string",
                    })
                }
                _ => return Err(ConfigError::UnknownKey { key: key.clone() }.into()),
            }
        }
        self.expected = Some((return_time_seconds, message.clone(), title.clone()));
        self.announced_leave = true;
        self.send(VisitorMessage::ExpectDisconnect {
            return_time_seconds,
            message,
            title,
        });
        Ok(())
    }

    /// `updateVisitor({...})`: identity fields; `null` clears one.
    pub fn update_visitor(&mut self, identity: &Json) -> Result<(), ClientError> {
        let update = config::parse_identity_update(identity)?;
        self.apply_identity(update);
        self.send(VisitorMessage::UpdateVisitor {
            identity: identity.clone(),
        });
        self.event(ClientEvent::StateChange);
        Ok(())
    }

    pub fn request_agent(&mut self) -> Result<(), ClientError> {
        self.visitor.is_waiting_for_call = true;
        self.send(VisitorMessage::RequestAgent);
        self.event(ClientEvent::StateChange);
        Ok(())
    }

    pub fn cancel_request_agent(&mut self) -> Result<(), ClientError> {
        self.visitor.is_waiting_for_call = false;
        self.send(VisitorMessage::CancelRequestAgent);
        self.event(ClientEvent::StateChange);
        Ok(())
    }

    /// `rate({rating, feedback})` of the session that just ended.
    pub fn rate(&mut self, rating: &Json) -> Result<(), ClientError> {
        self.expect_status("rate", "ended", &[SessionStatus::Ended])?;
        let map = rating.as_object().ok_or(ClientError::InvalidArgument {
            field: "rating",
            reason: "must be an object {rating, feedback}",
        })?;
        if let Some(key) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "rating" | "feedback"))
        {
            return Err(ConfigError::UnknownKey { key: key.clone() }.into());
        }
        let stars = map
            .get("rating")
            .and_then(Json::as_u64)
            .filter(|r| (1..=5).contains(r))
            .ok_or(ClientError::InvalidArgument {
                field: "rating",
                reason: "must be a whole number from 1 to 5",
            })?;
        let feedback = match map.get("feedback") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if s.len() <= config::MAX_TEXT_LEN => Some(s.clone()),
            Some(_) => {
                return Err(ClientError::InvalidArgument {
                    field: "feedback",
                    reason: "must be a short string or null",
                })
            }
        };
        let session_id = self.session_id.clone().unwrap_or_default();
        // `stars` is 1..=5, so the cast cannot truncate.
        self.send(VisitorMessage::Rate {
            session_id,
            rating: stars as u8,
            feedback,
        });
        Ok(())
    }

    /// Calls and sharing: the on-demand call file's frame (`call`: the JSON text of a
    /// protocol `CallFromVisitor`, which the server checks). Only while the session is
    /// active and the tab online: a call does not outlive either, so nothing is queued.
    pub fn call_send(&mut self, call: &str) -> Result<(), ClientError> {
        self.expect_status("call", "active", &[SessionStatus::Active])?;
        if !call.starts_with('{') || call.len() > protocol::MAX_FRAME_BYTES - 32 {
            return Err(ClientError::InvalidArgument {
                field: "call",
                reason: "must be a JSON object within the frame limit",
            });
        }
        if self.link == Link::Ready {
            self.outputs.push_back(Output::Transmit(
                [r#"{"type":"call","call":"#, call, "}"].concat(),
            ));
        }
        Ok(())
    }

    // ----- inputs: journey tracking ------------------------------------------------

    /// A page was viewed (load or SPA navigation): queue it, stamped `now`. `facts` is
    /// the JSON object of [`PageFacts`] without `at`, as the SDK's own collector
    /// (`glue.js` `pageView()`) writes it, referrer included (the previous URL after
    /// an SPA navigation). It is queued as text: the server validates every field of
    /// every event, and the SDK saves parsing and re-encoding it.
    pub fn track_page_view(&mut self, now: Millis, facts: &str) -> Result<(), ClientError> {
        let fields = facts
            .strip_prefix('{')
            .filter(|f| {
                f.len() > 1 && f.ends_with('}') && f.len() <= journey::event::MAX_PAGE_FACTS_BYTES
            })
            .ok_or(TrackError::InvalidPageView {
                field: "facts",
                reason: "must be a JSON object of at most 16 KiB",
            })?;
        let at = json_text(&now.0);
        self.queue_encoded(
            now,
            [r#"{"kind":"page_view","at":"#, &at, ",", fields].concat(),
        )
    }

    /// `track(eventName, attributes)`: queue a custom event. `attributes` is an object
    /// (or null/undefined for none).
    pub fn track_event(
        &mut self,
        now: Millis,
        event_name: &str,
        attributes: &Json,
    ) -> Result<(), ClientError> {
        let empty = Object::new();
        let attributes = match attributes {
            Json::Null => &empty,
            Json::Object(m) => m,
            _ => {
                return Err(TrackError::InvalidAttributes {
                    reason: "must be an object",
                }
                .into())
            }
        };
        journey::validate_custom(event_name, attributes)?;
        // TrackEvent::Custom's JSON, written out: the derived serializer would bring the
        // page view's along into the bundle (the SDK queues page views as text).
        let encoded = [
            r#"{"kind":"custom","at":"#,
            &json_text(&now.0),
            r#","eventName":"#,
            &json_text(event_name),
            r#","attributes":"#,
            &json_text(attributes),
            "}",
        ]
        .concat();
        self.queue_encoded(now, encoded)
    }

    /// Sends every queued event now, as `track` frames, when online (else they wait
    /// for the welcome). The facade calls it on `pagehide` when the beacon failed.
    pub fn flush_tracking(&mut self, now: Millis) {
        self.track_due = None;
        while self.link == Link::Ready {
            let head = [
                r#"{"type":"track","sent_at":"#,
                &json_text(&now.0),
                r#","events":["#,
            ]
            .concat();
            let Some(events) = self.take_track_batch(head.len() + BATCH_TAIL.len()) else {
                break;
            };
            self.outputs
                .push_back(Output::Transmit([&head, &events, BATCH_TAIL].concat()));
        }
    }

    /// On `pagehide`: the queued events as the body of a `navigator.sendBeacon` to
    /// `{server}/api/v1/journey/beacon` (`text/plain`), taken off the queue. `None` when
    /// nothing is queued or the visitor has no id yet (nothing could claim the events).
    /// At most [`TRACK_FRAME_BYTES`]: call again while it returns bodies (or
    /// [`Self::flush_tracking`] for the rest). Events already sent are not in it.
    pub fn take_beacon(&mut self, now: Millis) -> Option<String> {
        let short_id = json_text(self.visitor.short_id.as_ref()?);
        let head = [
            r#"{"api_key":"#,
            &json_text(&self.config.api_key),
            r#","short_id":"#,
            &short_id,
            r#","uniqueConnectionId":"#,
            &json_text(&self.unique_connection_id),
            r#","visitor_secret":"#,
            &json_text(&self.visitor_secret),
            r#","sent_at":"#,
            &json_text(&now.0),
            r#","events":["#,
        ]
        .concat();
        let events = self.take_track_batch(head.len() + BATCH_TAIL.len())?;
        if self.track_queue.is_empty() {
            self.track_due = None;
        }
        Some([&head, &events, BATCH_TAIL].concat())
    }

    /// The URL [`Self::take_beacon`]'s body goes to.
    pub fn beacon_url(&self) -> String {
        [self.config.server.trim_end_matches('/'), BEACON_PATH].concat()
    }

    /// How many tracked events wait to be sent.
    pub fn pending_tracking(&self) -> usize {
        self.track_queue.len()
    }

    /// `stop()`: close for good; nothing is sent or retried afterwards. A session that
    /// is live or asking ends first (`end`, disconnect type `client`), so the agent sees
    /// it end now instead of after the reconnect grace period.
    pub fn stop(&mut self) {
        if self.link == Link::Stopped {
            return;
        }
        if matches!(
            self.status,
            SessionStatus::Authorizing | SessionStatus::Active
        ) {
            let _ = self.end();
        }
        self.stop_link();
    }

    // ----- internals -------------------------------------------------------------

    fn stop_link(&mut self) {
        self.link = Link::Stopped;
        self.timers = [None; 3];
        self.outbox.clear();
        // Capture runs only while the session is active (stop() ends it first, which
        // already stopped capture).
        if self.status == SessionStatus::Active {
            self.mirror_command(MirrorCommand::Stop);
            self.draw_stop();
            self.outputs.push_back(Output::Call(None));
            self.console_stop();
        }
        self.outputs.push_back(Output::Close);
    }

    fn queue_encoded(&mut self, now: Millis, encoded: String) -> Result<(), ClientError> {
        if self.link == Link::Stopped {
            return Err(ClientError::Stopped);
        }
        if self.track_queue.len() >= TRACK_QUEUE_LIMIT {
            self.track_queue.pop_front();
        }
        self.track_queue.push_back(encoded);
        if self.track_due.is_none() {
            self.track_due = Some(Millis(now.0.saturating_add(TRACK_BATCH_MS)));
        }
        // A full batch goes out at once rather than waiting: a page tracking hundreds of
        // events a second would otherwise reach the queue limit and lose the oldest.
        if self.link == Link::Ready && self.track_queue.len() >= journey::MAX_EVENTS_PER_BATCH {
            self.flush_tracking(now);
        }
        Ok(())
    }

    /// The oldest queued events that fit one frame of at most [`TRACK_FRAME_BYTES`]
    /// with `envelope` bytes of its own around them, joined with commas. The oldest
    /// event goes even when it alone does not fit (it could never go otherwise); an
    /// event is at most ~16 KiB and an envelope a few KiB (the API key is at most
    /// 2 KiB), so that does not happen.
    fn take_track_batch(&mut self, envelope: usize) -> Option<String> {
        let budget = TRACK_FRAME_BYTES.saturating_sub(envelope);
        let mut out = String::new();
        let mut count = 0;
        while let Some(next) = self.track_queue.front() {
            if count == journey::MAX_EVENTS_PER_BATCH
                || (count > 0 && out.len() + next.len() + 1 > budget)
            {
                break;
            }
            if count > 0 {
                out.push(',');
            }
            out.push_str(next);
            count += 1;
            self.track_queue.pop_front();
        }
        (count > 0).then_some(out)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: plenty for jitter, and deterministic for tests.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn event(&mut self, event: ClientEvent) {
        if matches!(event, ClientEvent::StateChange)
            && matches!(
                self.outputs.back(),
                Some(Output::Event(ClientEvent::StateChange))
            )
        {
            return;
        }
        self.outputs.push_back(Output::Event(event));
    }

    fn send(&mut self, message: VisitorMessage) {
        match self.link {
            Link::Ready => self
                .outputs
                .push_back(Output::Transmit(protocol::encode(&message))),
            Link::Stopped => {}
            _ => {
                // Only the latest focus/url matters; answers and identity are kept.
                if matches!(
                    message,
                    VisitorMessage::Focus { .. } | VisitorMessage::Url { .. }
                ) {
                    let same = std::mem::discriminant(&message);
                    self.outbox.retain(|m| std::mem::discriminant(m) != same);
                }
                if self.outbox.len() >= OUTBOX_LIMIT {
                    self.outbox.pop_front();
                }
                self.outbox.push_back(message);
            }
        }
    }

    fn begin_session(&mut self, session_id: &str, status: SessionStatus) {
        if self.session_id.as_deref() != Some(session_id) {
            self.session_id = Some(session_id.to_string());
            self.authorized = false;
            self.went_live = false;
            self.control = Control::None;
        }
        self.status = status;
    }

    fn end_locally(&mut self, session_id: String, disconnect_type: DisconnectType) {
        if self.status == SessionStatus::Ended {
            return;
        }
        if let Control::Granted(agent_id) = std::mem::replace(&mut self.control, Control::None) {
            self.event(ClientEvent::ControlEnd { agent_id });
        }
        self.mirror_command(MirrorCommand::Stop);
        self.draw_stop();
        self.outputs.push_back(Output::Call(None));
        self.console_stop();
        self.status = SessionStatus::Ended;
        self.visitor.is_in_session = false;
        self.timers[ClientTimer::Authorization as usize] = None;
        self.event(ClientEvent::SessionEnd {
            session_id,
            disconnect_type,
        });
        self.event(ClientEvent::StateChange);
    }

    fn apply_state(&mut self, state: VisitorState) {
        self.connection = state.connection;
        // The tab knows its own focus best; the server's copy may be a frame behind.
        self.patch_connection("hasFocus", Json::Bool(self.page.has_focus));
        let for_session = state
            .communication
            .as_ref()
            .and_then(|c| c.get("cobrowseSessionId"))
            .and_then(Json::as_str);
        if self.session_id.is_none() || for_session == self.session_id.as_deref() {
            self.communication = state.communication;
        }
        self.event(ClientEvent::StateChange);
    }

    fn patch_connection(&mut self, key: &str, value: Json) {
        if let Some(Json::Object(c)) = self.connection.as_mut() {
            c.insert(key.to_string(), value);
        }
    }

    fn apply_identity(&mut self, update: IdentityUpdate) {
        let v = &mut self.visitor;
        update.unique_id.apply_to(&mut v.unique_id);
        update.call_name.apply_to(&mut v.call_name);
        update.email.apply_to(&mut self.explicit_email);
        for (patch, slot) in [
            (update.identities, &mut v.identities),
            (update.tags, &mut v.tags),
        ] {
            match patch {
                Patch::Unchanged => {}
                Patch::Clear => slot.clear(),
                Patch::Set(list) => *slot = list,
            }
        }
        match update.metadata {
            Patch::Unchanged => {}
            Patch::Clear => v.metadata.clear(),
            Patch::Set(m) => v.metadata = m,
        }
        self.refresh_names();
    }

    /// `name`, `email` and `nickname` by the server's rule (`derive::Names`).
    fn refresh_names(&mut self) {
        let v = &mut self.visitor;
        let names = derive::Names::of(self.explicit_email.as_deref(), &v.identities);
        v.nickname = v.short_id.as_deref().map(|id| names.nickname(id));
        v.name = names.name;
        v.email = names.email;
    }

    fn expect_status(
        &self,
        call: &'static str,
        expected: &'static str,
        allowed: &[SessionStatus],
    ) -> Result<(), ClientError> {
        if self.link == Link::Stopped {
            return Err(ClientError::Stopped);
        }
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(ClientError::WrongState {
                call,
                expected,
                got: self.status.as_str(),
            })
        }
    }

    fn expect_control(
        &self,
        call: &'static str,
        expected: &'static str,
        ok: impl Fn(&Control) -> bool,
    ) -> Result<(), ClientError> {
        self.expect_status(call, "active", &[SessionStatus::Active])?;
        if ok(&self.control) {
            Ok(())
        } else {
            Err(ClientError::WrongControlState { call, expected })
        }
    }
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod track_tests;

// proptest needs OS randomness, so these run natively only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod codec_props;

/// A value as JSON text (for frames the SDK assembles from parts).
fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
