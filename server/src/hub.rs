//! The in-memory world: one [`VisitorMachine`] per online visitor (or visitor with a
//! live session), the agent sockets, and the sessions' records. Everything sits behind
//! one mutex that is never held across an `.await`. Persistence jobs *and* outbound
//! frames go, while the lock is held, into one ordered queue drained by the writer
//! task: it commits the queued writes in one transaction (group commit) and only then
//! hands the frames queued with them to the sockets. So whatever a client is told
//! (a session went live, a note was added) is already durable when it hears of it,
//! and frames keep the order of the changes. Frames that carry no state (heartbeat
//! acks, error frames) go straight to the socket.
//!
//! The machine decides; the hub only routes its events (SPEC.md section 2) and keeps
//! the seed records (Visitor, Session, Cobrowsesession) in step with it. Each visitor's
//! timers are driven by one tokio task sleeping until `poll_timeout`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use covisit::core::config::{self, Permissions};
use covisit::core::derive;
use covisit::core::journey::url_facts;
use covisit::core::json::Json;
use covisit::core::machine::{
    ConnectionInfo, ControlState, Event, MachineOptions, SessionRequest, SessionStatus,
    VisitorMachine,
};
use covisit::core::model::{
    Address, Agent, AgentNote, CobrowseRole, Cobrowsesession, CommunicationState, Connection,
    ConnectionStatus, DisconnectType, JourneyGeolocation, QualityFeedback, Session, SessionSource,
    Visitor,
};
use covisit::core::protocol::{
    encode, AgentMessage, ConnectionHello, ControlPhase, FoundBy, Ink, RemoteAction, RemoteKind,
    ServerToAgent, ServerToVisitor, SessionControl, VisitorMessage, VisitorState, INK_COLORS,
    MAX_REMOTE_VALUE_LEN, PROTOCOL_VERSION,
};
use covisit::core::Millis;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::auth::{hash_secret, random_secret, same_hash};
use crate::directory::AuditEntry;
use crate::http::Metrics;
use crate::keys::random_hex;
use crate::store::{Store, Write};

/// The wall clock, as the core's [`Millis`].
pub fn now() -> Millis {
    Millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// A frame for one socket's writer task.
#[derive(Debug)]
pub enum Out {
    /// Shared bytes: a frame fanned out to many sockets is encoded once, not copied.
    Text(Utf8Bytes),
    /// Close the socket (the visitor's data was erased).
    Close,
}

pub type Tx = mpsc::UnboundedSender<Out>;

/// An error for the caller's socket or REST response.
#[derive(Debug, Clone)]
pub struct HubError {
    pub code: &'static str,
    pub message: String,
}

impl HubError {
    fn new(code: &'static str, message: impl Into<String>) -> HubError {
        HubError {
            code,
            message: message.into(),
        }
    }
}

impl From<covisit::core::machine::MachineError> for HubError {
    fn from(e: covisit::core::machine::MachineError) -> HubError {
        HubError::new(e.code(), e.to_string())
    }
}

impl From<config::ConfigError> for HubError {
    fn from(e: config::ConfigError) -> HubError {
        HubError::new(e.code(), e.to_string())
    }
}

/// A visitor's changes reach the agents of its account at most this often (the
/// agents in its session get every change at once). Without it every url change of
/// every visitor went to every agent: with 200 consoles open, 200 frames per change.
/// Changes of `is_online`, `is_in_session` and `is_waiting_for_call` go out at once.
const BROADCAST_INTERVAL_MS: u64 = 1000;
/// An agent's hello gets at most this many online visitors (the most recently seen);
/// the others appear as they change, and search finds them. Each socket keeps a write
/// buffer as large as the largest frame it sent: 10,000 visitors are ~9 MB per console.
const MAX_HELLO_VISITORS: usize = 500;
/// How often deferred visitor updates are looked at.
const BROADCAST_TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// An entry of the writer task's ordered queue.
enum Job {
    /// A store write.
    Write(Write),
    /// A frame for a socket, handed over once every write queued before it committed.
    Deliver(Tx, Out),
    /// Answered (true when every write queued before it committed) once every write
    /// queued before it committed.
    Flush(oneshot::Sender<bool>),
}

/// One agent's part in a session: its viewer communication.
#[derive(Debug, Clone)]
struct AgentPart {
    agent: Agent,
    comm_id: String,
    initial_state: CommunicationState,
    joined_at: String,
    left: Option<(String, DisconnectType)>,
}

/// A session's record, kept in memory while its visitor is.
#[derive(Debug, Clone)]
struct SessionEntry {
    account_id: i64,
    session: Session,
    status: SessionStatus,
    started: Millis,
    parts: Vec<AgentPart>,
    visitor_comm: Option<Cobrowsesession>,
    controlling: Option<String>,
    /// Where remote control stands, with the last end reason (`session_update.control`).
    control: SessionControl,
    viewer_url: String,
    /// What was last written to the store (the record without its running length):
    /// a change that only moves the length is not written again.
    persisted: String,
    /// Co-browsing: remote actions relayed to the visitor and not yet answered.
    remote: RemoteActions,
    /// The visitor's page's `agentPrompt` (config), for the agents in the session.
    agent_prompt: Option<String>,
    /// Drawing and the visitor's tabs (issue 16): see [`SessionWorkspace`].
    workspace: SessionWorkspace,
}

/// Issue 16's per-session state, kept in one place so that it ports by hand to the
/// sans-IO hub: which tab each agent chose to watch (`set_active_connection`), and the
/// visitor's open tabs as `session_update.connections` shows them.
#[derive(Debug, Clone, Default)]
struct SessionWorkspace {
    /// Agent id → the `uniqueConnectionId` it watches; absent: it follows the visitor.
    watching: BTreeMap<String, String>,
    /// The visitor's open tabs, refreshed with every change of the visitor (`after_change`).
    tabs: Vec<Connection>,
}

/// Co-browsing state of a session: the remote actions sent to the visitor's page that
/// it has not acknowledged yet (their acks count into `features_used`), and when a
/// fresh snapshot was last asked for.
#[derive(Debug, Clone, Default)]
struct RemoteActions {
    next_id: u32,
    pending: std::collections::VecDeque<(u32, String, RemoteKind)>,
    last_resync: Millis,
}

/// At most this many remote actions wait for the page's answer; older ones are forgotten.
const MAX_PENDING_ACTIONS: usize = 256;
/// An agent's `mirror_resync` reaches the visitor at most this often per session.
const RESYNC_INTERVAL_MS: u64 = 1000;
/// The most records one `mirror` frame may carry.
const MAX_MIRROR_RECORDS: usize = 20_000;

/// Checks the shape of a `mirror` frame's `data` (docs/MIRROR.md): an array of records,
/// each an array whose first element is a one-letter kind. The content is not
/// interpreted here; the console re-sanitises everything it renders.
fn check_mirror_data(data: &Json) -> Result<(), HubError> {
    let bad = |why: &str| HubError::new("invalid_mirror_frame", format!("mirror data {why}"));
    let records = data
        .as_array()
        .ok_or_else(|| bad("must be an array of records"))?;
    if records.len() > MAX_MIRROR_RECORDS {
        return Err(bad("has too many records"));
    }
    for r in records {
        match r.as_array().and_then(|r| r.first()).and_then(Json::as_str) {
            Some(k) if k.len() == 1 && k.as_bytes()[0].is_ascii_alphabetic() => {}
            _ => {
                return Err(bad(
                    "records must be arrays starting with a one-letter kind",
                ))
            }
        }
    }
    Ok(())
}

struct VisitorEntry {
    account_id: i64,
    visitor: Visitor,
    /// The hash of the visitor's secret: a hello must prove it to be this visitor.
    secret_hash: Option<String>,
    machine: VisitorMachine,
    sockets: HashMap<String, Tx>,
    explicit_email: Option<String>,
    metadata: Map<String, Value>,
    lookup_expires: Millis,
    timer: Option<(Millis, JoinHandle<()>)>,
    last_broadcast: String,
    /// When the account's agents last got a `visitor_update`, and its flags then.
    broadcast_at: Millis,
    broadcast_flags: (bool, bool, bool),
    /// Whether the last change-detected view showed a lookup code: its expiry is then
    /// a change worth a full pass (a heartbeat takes the short path otherwise).
    broadcast_code: bool,
    /// Issue 16: the tabs (`uniqueConnectionId`) whose page set `allowAgentDrawing: false`;
    /// agents' `draw` for them is refused.
    no_drawing: HashSet<String>,
}

struct AgentConn {
    account_id: i64,
    agent: Agent,
    tx: Tx,
    /// Where the person is (audit entries), who they are, and what they may do.
    ip: String,
    user_id: Option<String>,
    /// The sign-in session the socket was opened with (sign-out closes it).
    auth_session: Option<String>,
    /// Supervisors, admins and integrations join any live session of the account.
    may_join_any: bool,
}

/// Who an agent socket is, proven by the socket layer.
pub struct AgentIdentity {
    pub account_id: i64,
    pub agent: Agent,
    pub ip: String,
    /// A console user (`u_…`); None for an integration (`ea_…`, secret key).
    pub user_id: Option<String>,
    pub auth_session: Option<String>,
    pub may_join_any: bool,
}

#[derive(Default)]
struct Inner {
    visitors: HashMap<String, VisitorEntry>,
    agents: HashMap<u64, AgentConn>,
    sessions: HashMap<String, SessionEntry>,
    next_agent: u64,
    /// Visitors whose latest change the account's agents have not been sent yet.
    pending_broadcasts: HashSet<String>,
    /// Visitors whose `last_url` / connection urls changed by a url-only update and
    /// are not written yet (coalesced: written at the next broadcast tick).
    dirty_urls: HashSet<String>,
    /// Who was given each lookup code, per account: (account, code) → short id. An
    /// entry can be stale (the visitor left, the code expired or was replaced); it
    /// counts as taken only while that visitor still holds the code (`code_taken`).
    /// Keeps a connect O(1) instead of a scan of every visitor.
    lookup_codes: HashMap<(i64, String), String>,
}

/// Whether `code` is held by an online visitor of the account other than `short_id`,
/// with an unexpired code.
fn code_taken(inner: &Inner, account_id: i64, short_id: &str, code: &str, now: Millis) -> bool {
    inner
        .lookup_codes
        .get(&(account_id, code.to_string()))
        .filter(|holder| holder.as_str() != short_id)
        .and_then(|holder| inner.visitors.get(holder))
        .is_some_and(|v| {
            v.account_id == account_id
                && v.machine.is_online()
                && v.lookup_expires > now
                && v.visitor.lookup_code.as_deref() == Some(code)
        })
}

pub struct Hub {
    inner: Mutex<Inner>,
    jobs: mpsc::UnboundedSender<Job>,
    public_url: String,
    grace_period_seconds: u64,
    me: Weak<Hub>,
}

/// What a visitor's hello produced.
pub struct Welcome {
    pub short_id: String,
    pub connection_id: String,
    pub frame: String,
}

/// Everything a visitor's hello carries, checked by the socket layer.
pub struct VisitorHello {
    pub account_id: i64,
    pub api_key: String,
    pub short_id: Option<String>,
    /// The secret that proves the hello is from that visitor.
    pub visitor_secret: Option<String>,
    /// The stored visitor named by `short_id` and the hash of its secret (`None`: a
    /// visitor from before secrets, who gets one now).
    pub stored: Option<(Visitor, Option<String>)>,
    /// Which visitor the store says the hello's `uniqueConnectionId` belongs to.
    pub connection_owner: Option<String>,
    pub connection: ConnectionHello,
    pub config: Value,
    pub ip: String,
    /// Where `ip` is, from `--geoip` (None without it, or when the address is unknown).
    pub location: Option<JourneyGeolocation>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn text_ok(field: &'static str, s: &str) -> Result<(), HubError> {
    if s.len() > config::MAX_TEXT_LEN {
        Err(HubError::new(
            "invalid_argument",
            format!("`{field}` is too long (at most 2048 bytes)"),
        ))
    } else {
        Ok(())
    }
}

impl Hub {
    /// `grace_period_seconds`: how long a live session survives when every tab of the
    /// visitor vanished without announcing it.
    pub fn new(
        store: Arc<dyn Store>,
        public_url: String,
        metrics: Arc<Metrics>,
        grace_period_seconds: u64,
    ) -> Arc<Hub> {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, rx, metrics));
        let hub = Arc::new_cyclic(|me| Hub {
            inner: Mutex::new(Inner::default()),
            jobs,
            public_url,
            grace_period_seconds,
            me: me.clone(),
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(BROADCAST_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(hub) = weak.upgrade() else { break };
                hub.send_deferred_broadcasts();
            }
        });
        hub
    }

    /// Sends the visitor updates held back by [`BROADCAST_INTERVAL_MS`] that are due.
    fn send_deferred_broadcasts(&self) {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        // The coalesced url writes (see `url_changed`).
        for id in std::mem::take(&mut inner.dirty_urls) {
            let Some(entry) = inner.visitors.get(&id) else {
                continue;
            };
            self.write(Write::Visitor(
                entry.account_id,
                Box::new(visitor_view(entry)),
            ));
            for c in entry.machine.connections() {
                self.write(Write::Connection(id.clone(), Box::new(c.clone())));
            }
        }
        if inner.pending_broadcasts.is_empty() {
            return;
        }
        for id in std::mem::take(&mut inner.pending_broadcasts) {
            let Some(entry) = inner.visitors.get_mut(&id) else {
                continue;
            };
            if now.0 < entry.broadcast_at.0 + BROADCAST_INTERVAL_MS {
                inner.pending_broadcasts.insert(id);
                continue;
            }
            let view = visitor_view(entry);
            entry.broadcast_at = now;
            entry.broadcast_flags = (view.is_online, view.is_in_session, view.is_waiting_for_call);
            let account_id = entry.account_id;
            // The session's agents had it already.
            let skip: Vec<&str> = entry
                .machine
                .session_id()
                .and_then(|s| inner.sessions.get(s))
                .map(|s| s.parts.iter().map(|p| p.agent.id.as_str()).collect())
                .unwrap_or_default();
            let frame = Utf8Bytes::from(encode(&ServerToAgent::VisitorUpdate { visitor: view }));
            for a in inner
                .agents
                .values()
                .filter(|a| a.account_id == account_id && !skip.contains(&a.agent.id.as_str()))
            {
                self.send(&a.tx, frame.clone());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug; the data is still the best we have.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn job(&self, job: Job) {
        // The writer lives as long as the runtime; a failed send means shutdown.
        let _ = self.jobs.send(job);
    }

    fn write(&self, write: Write) {
        self.job(Job::Write(write));
    }

    /// Queues a write on the ordered writer, for other modules (journey tracking).
    pub fn persist(&self, write: Write) {
        self.write(write);
    }

    /// Waits until every write queued so far is committed; false when one of them
    /// failed (the caller must not report success then).
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        self.job(Job::Flush(tx));
        rx.await.unwrap_or(false)
    }

    /// Queues a frame behind the writes queued so far (see the module comment).
    fn send(&self, tx: &Tx, text: impl Into<Utf8Bytes>) {
        self.job(Job::Deliver(tx.clone(), Out::Text(text.into())));
    }

    /// (online visitors, live sessions) for `/metrics`.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        let online = inner
            .visitors
            .values()
            .filter(|v| v.machine.is_online())
            .count();
        let live = inner
            .sessions
            .values()
            .filter(|s| matches!(s.status, SessionStatus::Authorizing | SessionStatus::Active))
            .count();
        (online, live)
    }

    // ----- visitors ----------------------------------------------------------------

    /// Whether `short_id` is in memory for another account (then it must not be reused).
    pub fn is_known_visitor(&self, account_id: i64, short_id: &str) -> bool {
        self.lock()
            .visitors
            .get(short_id)
            .is_some_and(|v| v.account_id == account_id)
    }

    pub fn visitor_connect(&self, mut hello: VisitorHello, tx: Tx) -> Result<Welcome, HubError> {
        let now = now();
        // A URL's user:password@ is a secret, not where the visitor is.
        hello.connection.current_url = hello
            .connection
            .current_url
            .as_deref()
            .map(url_facts::without_credentials);
        let mut config_obj = match hello.config {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            _ => {
                return Err(HubError::new(
                    "config_not_object",
                    "config must be an object",
                ))
            }
        };
        config_obj.insert("apiKey".into(), Value::String(hello.api_key.clone()));
        config_obj.insert("server".into(), Value::String(self.public_url.clone()));
        let config = config::parse_config(&Value::Object(config_obj).into())?;
        if let Some(url) = &hello.connection.current_url {
            text_ok("currentUrl", url)?;
        }
        let ua = crate::ua::parse(hello.connection.user_agent.as_deref());
        let mut guard = self.lock();
        let inner = &mut *guard;
        let account_id = hello.account_id;
        // The SDK's id is kept only when the hello proves it with the visitor's secret
        // (or names a visitor from before secrets, who gets one now). Anyone else who
        // names it (it is shown to agents and in links: not a secret) is a new visitor,
        // with nothing of the other one's tabs, session, prompts or lookup code.
        let proves = |hash: Option<&str>| match hash {
            Some(h) => hello
                .visitor_secret
                .as_deref()
                .is_some_and(|s| same_hash(&hash_secret(s), h)),
            None => true,
        };
        let claimed = hello.short_id.clone().filter(|s| valid_id(s));
        let in_memory = claimed.as_ref().and_then(|s| inner.visitors.get(s));
        let short_id = match (claimed, in_memory, hello.stored.as_ref()) {
            (Some(s), Some(e), _)
                if e.account_id == account_id && proves(e.secret_hash.as_deref()) =>
            {
                s
            }
            (Some(s), None, Some((v, hash))) if v.short_id == s && proves(hash.as_deref()) => s,
            _ => random_hex(6),
        };
        let stored = hello.stored.take().filter(|(v, _)| v.short_id == short_id);
        let is_new = !inner.visitors.contains_key(&short_id) && stored.is_none();
        let options = MachineOptions {
            permissions: config.permissions.clone(),
            authorization_timeout_seconds: config.authorization_timeout_seconds,
            grace_period_seconds: self.grace_period_seconds,
            ..MachineOptions::default()
        };
        if !inner.visitors.contains_key(&short_id) {
            let (visitor, secret_hash) = match stored {
                Some((v, hash)) => (v, hash),
                None => (
                    Visitor {
                        added_at: now.to_iso8601(),
                        api_key: hello.api_key.clone(),
                        browser_name: None,
                        call_name: None,
                        device_name: None,
                        device_type: None,
                        email: None,
                        identities: Vec::new(),
                        integration: None,
                        ip_address: String::new(),
                        is_in_session: false,
                        is_online: false,
                        is_supported: true,
                        is_waiting_for_call: false,
                        js_configuration: false,
                        last_seen_at: now.to_iso8601(),
                        last_url: None,
                        location_city: None,
                        location_country_name: None,
                        location_country: None,
                        lookup_code: None,
                        name: None,
                        nickname: short_id.clone(),
                        short_id: short_id.clone(),
                        tags: Vec::new(),
                        unique_id: None,
                        watch_link: derive::watch_link(&self.public_url, &short_id),
                        sdk: "web".into(),
                    },
                    None,
                ),
            };
            inner.visitors.insert(
                short_id.clone(),
                VisitorEntry {
                    account_id,
                    secret_hash,
                    explicit_email: visitor.email.clone(),
                    visitor,
                    machine: VisitorMachine::new(short_id.clone(), options.clone()),
                    sockets: HashMap::new(),
                    metadata: Map::new(),
                    lookup_expires: Millis(0),
                    timer: None,
                    last_broadcast: String::new(),
                    broadcast_at: Millis(0),
                    broadcast_flags: (false, false, false),
                    broadcast_code: false,
                    no_drawing: HashSet::new(),
                },
            );
        }
        // Lookup codes are unique among the account's online visitors.
        let needs_code = inner
            .visitors
            .get(&short_id)
            .is_none_or(|e| e.lookup_expires <= now || e.visitor.lookup_code.is_none());
        let new_code = if needs_code {
            let mut rng = rand::thread_rng();
            let code = derive::lookup_code(
                || rand::Rng::gen(&mut rng),
                |c| code_taken(inner, account_id, &short_id, c, now),
            );
            if let Some(c) = &code {
                inner
                    .lookup_codes
                    .insert((account_id, c.clone()), short_id.clone());
            }
            Some(code)
        } else {
            None
        };
        let Some(entry) = inner.visitors.get_mut(&short_id) else {
            return Err(HubError::new("internal", "visitor vanished")); // inserted just above
        };
        // A visitor with no tab and no live session starts afresh with this page's options.
        let live = matches!(
            entry.machine.status(),
            SessionStatus::Authorizing | SessionStatus::Active
        );
        if !entry.machine.is_online() && !live {
            entry.machine = VisitorMachine::new(short_id.clone(), options);
        }
        // A tab's id is kept only when it is this visitor's (a tab that reconnects); an
        // id another visitor's tab holds is never taken over.
        let connection_id = match hello
            .connection
            .unique_connection_id
            .filter(|c| valid_id(c))
        {
            Some(c) => match entry.machine.connection(&c) {
                Some(conn)
                    if conn.status == covisit::core::model::ConnectionStatus::Disconnected =>
                {
                    c
                }
                None if !is_new && hello.connection_owner.as_deref() == Some(short_id.as_str()) => {
                    c
                }
                _ => format!("c_{}", random_hex(8)),
            },
            None => format!("c_{}", random_hex(8)),
        };
        let was_online = entry.machine.is_online();
        entry.machine.handle_connect(
            now,
            ConnectionInfo {
                unique_connection_id: connection_id.clone(),
                current_url: hello.connection.current_url.clone(),
                screen_width: hello.connection.screen_width,
                screen_height: hello.connection.screen_height,
                audio_supported: hello.connection.audio_supported,
                has_focus: hello.connection.has_focus,
                permissions: config.permissions.clone(),
            },
        )?;
        // The machine resumes a session only when the visitor was gone; a new tab that
        // joins a live session still needs to know it is in one (its indicator).
        if was_online && entry.machine.status() == SessionStatus::Active {
            if let Some(session_id) = entry.machine.session_id() {
                let frame = ServerToVisitor::SessionContinue {
                    session_id: session_id.to_string(),
                };
                self.send(&tx, encode(&frame));
            }
        }
        entry.sockets.insert(connection_id.clone(), tx);
        // Issue 16: this tab's page decides whether agents may draw on it.
        if config.allow_agent_drawing {
            entry.no_drawing.remove(&connection_id);
        } else {
            entry.no_drawing.insert(connection_id.clone());
        }
        if let Some(code) = new_code {
            entry.visitor.lookup_code = code;
            entry.lookup_expires = now.plus_seconds(derive::LOOKUP_CODE_TTL_SECONDS);
        }
        let v = &mut entry.visitor;
        v.api_key = hello.api_key;
        v.ip_address = hello.ip;
        // "According to their IP address": the address they connected from last.
        let location = hello.location.unwrap_or_default();
        v.location_city = location.locality;
        v.location_country_name = location.country_name;
        v.location_country = location.country;
        v.browser_name = ua.browser_name;
        v.device_name = ua.device_name;
        v.device_type = ua.device_type;
        if hello.connection.current_url.is_some() {
            v.last_url = hello.connection.current_url;
        }
        v.last_seen_at = now.to_iso8601();
        v.js_configuration = config.permissions != Permissions::default()
            || config.authorization_timeout_seconds
                != config::DEFAULT_AUTHORIZATION_TIMEOUT_SECONDS
            || !config.track_page_views
            || !config.allow_agent_drawing;
        apply_identity(entry, config.identity);
        // A new visitor, or one from before secrets, gets its secret now: only its hash
        // is kept, and it is written (after the visitor's record) before the welcome.
        let issued = entry.secret_hash.is_none().then(|| random_secret(32));
        if let Some(secret) = &issued {
            entry.secret_hash = Some(hash_secret(secret));
        }
        let frame = encode(&ServerToVisitor::Welcome {
            protocol_version: PROTOCOL_VERSION,
            short_id: short_id.clone(),
            unique_connection_id: connection_id.clone(),
            lookup_code: entry.visitor.lookup_code.clone(),
            visitor_secret: issued.clone(),
        });
        self.after_change(inner, &short_id, now);
        if let (Some(hash), Some(entry)) = (
            issued.as_ref().map(|s| hash_secret(s)),
            inner.visitors.get(&short_id),
        ) {
            self.write(Write::Visitor(account_id, Box::new(visitor_view(entry))));
            self.write(Write::VisitorSecret(short_id.clone(), hash));
        }
        Ok(Welcome {
            short_id,
            connection_id,
            frame,
        })
    }

    pub fn visitor_disconnect(&self, short_id: &str, connection_id: &str) {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(entry) = inner.visitors.get_mut(short_id) else {
            return;
        };
        entry.sockets.remove(connection_id);
        // Already closed (e.g. erased) is fine: nothing to do.
        let _ = entry.machine.handle_disconnect(now, connection_id);
        self.after_change(inner, short_id, now);
    }

    pub fn visitor_message(
        &self,
        short_id: &str,
        connection_id: &str,
        msg: VisitorMessage,
    ) -> Result<(), HubError> {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(entry) = inner.visitors.get_mut(short_id) else {
            return Err(HubError::new(
                "unknown_visitor",
                "this visitor is no longer known; reconnect",
            ));
        };
        entry.visitor.last_seen_at = now.to_iso8601();
        let m = &mut entry.machine;
        let result: Result<(), HubError> = match msg {
            VisitorMessage::Hello { .. } => Err(HubError::new(
                "unexpected_hello",
                "hello was already received on this socket",
            )),
            VisitorMessage::Heartbeat => {
                if let Some(tx) = entry.sockets.get(connection_id) {
                    let _ = tx.send(Out::Text(HEARTBEAT_ACK.clone()));
                }
                // Only `last_seen_at` moved (not worth a broadcast nor a write), unless
                // the lookup code the agents were shown has expired meanwhile.
                if !(entry.broadcast_code && entry.lookup_expires <= now) {
                    return Ok(());
                }
                Ok(())
            }
            VisitorMessage::Focus { has_focus } => m
                .handle_focus(now, connection_id, has_focus)
                .map_err(Into::into),
            VisitorMessage::Url { current_url } => {
                text_ok("currentUrl", &current_url)?;
                let current_url = url_facts::without_credentials(&current_url);
                m.handle_url(now, connection_id, current_url.clone())?;
                entry.visitor.last_url = Some(current_url);
                self.url_changed(inner, short_id, now);
                return Ok(());
            }
            VisitorMessage::ExpectDisconnect {
                return_time_seconds,
                message,
                title,
            } => {
                for t in [&message, &title].into_iter().flatten() {
                    text_ok("message", t)?;
                }
                m.handle_expect_disconnect(now, connection_id, return_time_seconds, message, title)
                    .map_err(Into::into)
            }
            VisitorMessage::UpdateVisitor { identity } => {
                let update = config::parse_identity_update(&identity)?;
                apply_identity(entry, update);
                Ok(())
            }
            VisitorMessage::Authorize => m.handle_authorize(now).map_err(Into::into),
            VisitorMessage::Deny => m.handle_deny(now).map_err(Into::into),
            VisitorMessage::End => m.handle_visitor_end(now).map_err(Into::into),
            VisitorMessage::ControlGrant => m.handle_control_grant(now).map_err(Into::into),
            VisitorMessage::ControlDeny => m.handle_control_deny(now).map_err(Into::into),
            VisitorMessage::ControlRevoke => m.handle_control_revoke(now).map_err(Into::into),
            VisitorMessage::RequestAgent => {
                entry.visitor.is_waiting_for_call = true;
                Ok(())
            }
            VisitorMessage::CancelRequestAgent => {
                entry.visitor.is_waiting_for_call = false;
                Ok(())
            }
            VisitorMessage::Rate {
                session_id,
                rating,
                feedback,
            } => {
                if !(1..=5).contains(&rating) {
                    return Err(HubError::new("invalid_argument", "rating must be 1 to 5"));
                }
                if let Some(f) = &feedback {
                    text_ok("feedback", f)?;
                }
                let account_id = entry.account_id;
                let by = short_id.to_string();
                match inner.sessions.get_mut(&session_id) {
                    Some(s)
                        if s.session.visitor_id == short_id && s.status == SessionStatus::Ended =>
                    {
                        s.session.quality_feedback.push(QualityFeedback {
                            rating: f64::from(rating),
                            feedback: feedback.clone(),
                            by,
                        });
                        if s.parts.len() == 1 {
                            s.session.visitor_agent_rating = Some(f64::from(rating));
                            s.session.visitor_agent_feedback = feedback;
                        }
                        self.write(Write::Session(
                            account_id,
                            Box::new(s.session.clone()),
                            "ended".into(),
                        ));
                        return Ok(());
                    }
                    Some(s) if s.session.visitor_id == short_id => Err(HubError::new(
                        "wrong_session_state",
                        "only an ended session can be rated",
                    )),
                    _ => Err(HubError::new(
                        "unknown_session",
                        "no such session of this visitor",
                    )),
                }
            }
            // The socket layer hands `track` to the journey module (`journey.rs`) and
            // `call_link` to the directory (`ws.rs`): both need the store first.
            VisitorMessage::Track { .. } | VisitorMessage::CallLink { .. } => return Ok(()),
            VisitorMessage::Mirror { data } => {
                check_mirror_data(&data)?;
                // Consent: page content reaches agents only while the session is active.
                // A frame that races the session's end is dropped without an error (the
                // page would only hear of it after it stopped capturing anyway).
                if m.status() != SessionStatus::Active {
                    return Ok(());
                }
                let Some(s) = m.session_id().and_then(|sid| inner.sessions.get(sid)) else {
                    return Ok(());
                };
                let frame = Utf8Bytes::from(encode(&ServerToAgent::Mirror {
                    session_id: s.session.id.clone(),
                    tab: connection_id.to_string(),
                    data,
                }));
                let account_id = entry.account_id;
                for a in inner.agents.values().filter(|a| {
                    a.account_id == account_id
                        && s.parts
                            .iter()
                            .any(|p| p.left.is_none() && p.agent.id == a.agent.id)
                }) {
                    self.send(&a.tx, frame.clone());
                }
                return Ok(());
            }
            VisitorMessage::RemoteApplied { id, ok, reason } => {
                if let Some(r) = &reason {
                    text_ok("reason", r)?;
                }
                let account_id = entry.account_id;
                let unknown = || {
                    HubError::new(
                        "unknown_action",
                        "no remote action with this id is waiting for an answer",
                    )
                };
                let s = m
                    .session_id()
                    .and_then(|sid| inner.sessions.get_mut(sid))
                    .ok_or_else(unknown)?;
                let i = s
                    .remote
                    .pending
                    .iter()
                    .position(|p| p.0 == id)
                    .ok_or_else(unknown)?;
                let (_, agent_id, kind) = s.remote.pending.remove(i).ok_or_else(unknown)?;
                let feature = kind.feature().filter(|_| ok);
                let new_feature = feature
                    .filter(|f| !s.session.features_used.iter().any(|x| x == f))
                    .map(|f| s.session.features_used.push(f.to_string()))
                    .is_some();
                let frame = Utf8Bytes::from(encode(&ServerToAgent::RemoteResult {
                    session_id: s.session.id.clone(),
                    id,
                    kind,
                    ok,
                    reason,
                }));
                for a in inner
                    .agents
                    .values()
                    .filter(|a| a.account_id == account_id && a.agent.id == agent_id)
                {
                    self.send(&a.tx, frame.clone());
                }
                if !new_feature {
                    return Ok(());
                }
                // features_used changed: persisted and announced by after_change.
                Ok(())
            }
            VisitorMessage::Unknown => Err(HubError::new(
                "unknown_message_type",
                "unknown message type",
            )),
        };
        self.after_change(inner, short_id, now);
        result
    }

    // ----- agents -------------------------------------------------------------------

    /// Registers an agent socket; sends it the online visitors and its live sessions.
    pub fn agent_connect(&self, who: AgentIdentity, tx: Tx) -> u64 {
        let AgentIdentity {
            account_id,
            agent,
            ip,
            user_id,
            auth_session,
            may_join_any,
        } = who;
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.next_agent += 1;
        let id = inner.next_agent;
        self.send(
            &tx,
            encode(&ServerToAgent::Welcome {
                protocol_version: PROTOCOL_VERSION,
                agent: agent.clone(),
            }),
        );
        let mut visitors = online_visitors(inner, account_id);
        visitors.truncate(MAX_HELLO_VISITORS);
        self.send(&tx, encode(&ServerToAgent::Visitors { visitors }));
        for s in inner.sessions.values() {
            if s.account_id == account_id && s.parts.iter().any(|p| p.agent.id == agent.id) {
                self.send(&tx, session_update(s));
            }
        }
        inner.agents.insert(
            id,
            AgentConn {
                account_id,
                agent,
                tx,
                ip,
                user_id,
                auth_session,
                may_join_any,
            },
        );
        id
    }

    pub fn agent_disconnect(&self, conn: u64) {
        self.lock().agents.remove(&conn);
    }

    /// Closes every socket of a user at once (disabled, role or password changed).
    pub fn close_user(&self, user_id: &str) {
        let inner = self.lock();
        for a in inner
            .agents
            .values()
            .filter(|a| a.user_id.as_deref() == Some(user_id))
        {
            let _ = a.tx.send(Out::Close);
        }
    }

    /// Closes the sockets opened with a sign-in session (signed out).
    pub fn close_auth_session(&self, session: &str) {
        let inner = self.lock();
        for a in inner
            .agents
            .values()
            .filter(|a| a.auth_session.as_deref() == Some(session))
        {
            let _ = a.tx.send(Out::Close);
        }
    }

    /// Appends an audit entry in the writer's order (after what is queued before it).
    pub fn audit(
        &self,
        account_id: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        ip: Option<&str>,
        result: &str,
    ) {
        self.write(Write::Audit(Box::new(AuditEntry {
            id: 0,
            account_id,
            at: now().to_iso8601(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            ip: ip.map(str::to_string),
            result: result.to_string(),
        })));
    }

    pub fn agent_message(&self, conn: u64, msg: AgentMessage) -> Result<(), HubError> {
        let (account_id, agent, ip, may_join_any) = {
            let inner = self.lock();
            let Some(a) = inner.agents.get(&conn) else {
                return Err(HubError::new("unknown_agent", "not connected"));
            };
            (a.account_id, a.agent.clone(), a.ip.clone(), a.may_join_any)
        };
        // Every privileged act is attributable: the audit entry names the agent, its
        // address, what it acted on and how it went.
        let audited = |action: &str, target: &str, r: &Result<(), HubError>| {
            let result = r.as_ref().map_or_else(|e| e.code, |_| "ok");
            self.audit(
                account_id,
                &agent.id,
                action,
                Some(target),
                Some(&ip),
                result,
            );
        };
        match msg {
            AgentMessage::Hello { .. } => Err(HubError::new(
                "unexpected_hello",
                "hello was already received on this socket",
            )),
            AgentMessage::Heartbeat => {
                let inner = self.lock();
                if let Some(a) = inner.agents.get(&conn) {
                    let _ =
                        a.tx.send(Out::Text(encode(&ServerToAgent::HeartbeatAck).into()));
                }
                Ok(())
            }
            AgentMessage::RequestSession { short_id, found_by } => {
                let source = match found_by {
                    FoundBy::LookupCode => SessionSource::LookupCode,
                    FoundBy::Search => SessionSource::Search,
                };
                let r = self
                    .request_session(account_id, &short_id, agent.clone(), source)
                    .map(|(session_id, _)| session_id);
                let target = r.as_deref().unwrap_or(short_id.as_str()).to_string();
                let r = r.map(|_| ());
                audited("session.requested", &target, &r);
                r
            }
            AgentMessage::JoinSession { session_id } => {
                let r = self.join_session(account_id, &session_id, agent.clone(), may_join_any);
                audited("session.joined", &session_id, &r);
                r
            }
            AgentMessage::EndSession { session_id } => {
                let r = self.with_session(account_id, &session_id, Some(&agent.id), |m, now| {
                    m.handle_agent_end(now)
                });
                audited("session.ended", &session_id, &r);
                r
            }
            AgentMessage::LeaveSession { session_id } => {
                let id = agent.id.clone();
                self.with_session(account_id, &session_id, Some(&agent.id), move |m, now| {
                    m.handle_agent_leave(now, &id)
                })
            }
            AgentMessage::Note { session_id, text } => {
                let r = self.add_note(account_id, &session_id, &agent.id, text, true);
                audited("note.added", &session_id, &r);
                r
            }
            AgentMessage::RequestControl { session_id } => {
                let id = agent.id.clone();
                let r =
                    self.with_session(account_id, &session_id, Some(&agent.id), move |m, now| {
                        m.handle_control_request(now, &id)
                    });
                audited("control.requested", &session_id, &r);
                r
            }
            AgentMessage::ReleaseControl { session_id } => {
                let id = agent.id.clone();
                let r =
                    self.with_session(account_id, &session_id, Some(&agent.id), move |m, now| {
                        m.handle_agent_control_release(now, &id)
                    });
                audited("control.released", &session_id, &r);
                r
            }
            AgentMessage::RemoteAction {
                session_id,
                tab,
                action,
            } => {
                let redirect = matches!(action, RemoteAction::Redirect { .. });
                let r = self.remote_action(account_id, &agent, &session_id, tab, action);
                // Clicks and keys are not audited one by one (their kinds are counted in
                // features_used); a redirect sends the visitor somewhere: it is.
                if redirect {
                    audited("redirect", &session_id, &r);
                }
                r
            }
            AgentMessage::MirrorResync { session_id } => {
                self.mirror_resync(account_id, &agent, &session_id)
            }
            AgentMessage::Draw {
                session_id,
                tab,
                ink,
            } => self.draw(account_id, &agent, &session_id, &tab, ink),
            AgentMessage::SetActiveConnection {
                session_id,
                unique_connection_id,
            } => self.set_active_connection(account_id, &agent, &session_id, unique_connection_id),
            AgentMessage::Unknown => Err(HubError::new(
                "unknown_message_type",
                "unknown message type",
            )),
        }
    }

    /// Co-browsing: relays an agent's remote action to the controlled tab, only while
    /// the session is active, control is granted to this agent, and the visitor's
    /// config allows the action (SPEC.md section 2). The page checks all of it again.
    fn remote_action(
        &self,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
        tab: Option<String>,
        action: RemoteAction,
    ) -> Result<(), HubError> {
        match &action {
            RemoteAction::Type { value, .. } if value.len() > MAX_REMOTE_VALUE_LEN => {
                return Err(HubError::new(
                    "invalid_argument",
                    "`value` is too long (at most 16 KiB)",
                ))
            }
            RemoteAction::Redirect { url } if url.is_empty() || url.len() > 4096 => {
                return Err(HubError::new(
                    "invalid_argument",
                    "`url` must be 1 to 4096 bytes",
                ))
            }
            _ => {}
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        let s = self.agent_session(inner, account_id, &agent.id, session_id)?;
        let entry = inner
            .visitors
            .get(&s.session.visitor_id)
            .filter(|e| {
                e.machine.session_id() == Some(session_id)
                    && e.machine.status() == SessionStatus::Active
            })
            .ok_or_else(|| HubError::new("wrong_session_state", "the session is not active"))?;
        let connection_id = match entry.machine.control() {
            ControlState::Granted {
                agent_id,
                connection_id,
            } if agent_id == agent.id => connection_id,
            _ => {
                return Err(HubError::new(
                    "control_not_granted",
                    "the visitor has not granted control of the page to this agent",
                ))
            }
        };
        if tab.as_ref().is_some_and(|t| *t != connection_id) {
            return Err(HubError::new(
                "wrong_tab",
                "control is granted in another tab of the visitor",
            ));
        }
        let p = &entry.machine.options().permissions;
        let kind = action.kind();
        let (allowed, key) = match kind {
            RemoteKind::Click => (p.allow_remote_click, "allowRemoteClick"),
            RemoteKind::Scroll => (p.allow_remote_scroll, "allowRemoteScroll"),
            RemoteKind::Type => (p.allow_remote_type, "allowRemoteType"),
            RemoteKind::Redirect => (p.allow_agent_redirect, "allowAgentRedirect"),
            RemoteKind::Pointer => (true, ""),
        };
        if !allowed {
            return Err(HubError::new(
                "permission_denied",
                format!("the site's covisit config does not allow this (`{key}` is false)"),
            ));
        }
        let tx = entry.sockets.get(&connection_id).cloned().ok_or_else(|| {
            HubError::new("visitor_offline", "the controlled tab is not connected")
        })?;
        let remote = &mut inner
            .sessions
            .get_mut(session_id)
            .ok_or_else(|| HubError::new("unknown_session", "no such session"))?
            .remote;
        remote.next_id = remote.next_id.wrapping_add(1);
        let id = remote.next_id;
        if kind != RemoteKind::Pointer {
            if remote.pending.len() >= MAX_PENDING_ACTIONS {
                remote.pending.pop_front();
            }
            remote.pending.push_back((id, agent.id.clone(), kind));
        }
        self.send(
            &tx,
            encode(&ServerToVisitor::RemoteAction {
                id,
                agent_id: agent.id.clone(),
                action,
            }),
        );
        Ok(())
    }

    /// Co-browsing: asks the visitor's tabs for a fresh snapshot (an agent joined or
    /// reloaded its console), at most once a second per session.
    fn mirror_resync(
        &self,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
    ) -> Result<(), HubError> {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let visitor_id = self
            .agent_session(inner, account_id, &agent.id, session_id)?
            .session
            .visitor_id
            .clone();
        let entry = inner
            .visitors
            .get(&visitor_id)
            .filter(|e| {
                e.machine.session_id() == Some(session_id)
                    && e.machine.status() == SessionStatus::Active
            })
            .ok_or_else(|| HubError::new("wrong_session_state", "the session is not active"))?;
        let Some(s) = inner.sessions.get_mut(session_id) else {
            return Err(HubError::new("unknown_session", "no such session"));
        };
        if now.0 < s.remote.last_resync.0 + RESYNC_INTERVAL_MS {
            return Ok(()); // the snapshot asked for a moment ago is on its way
        }
        s.remote.last_resync = now;
        let frame = Utf8Bytes::from(encode(&ServerToVisitor::MirrorResync));
        for tx in entry.sockets.values() {
            self.send(tx, frame.clone());
        }
        Ok(())
    }

    // ----- issue 16: the agents' laser and ink, and the tab each agent watches --------
    // Self-contained on purpose (the hub is being rewritten as a sans-IO core): `draw`
    // and `set_active_connection` below, `SessionWorkspace`, `VisitorEntry::no_drawing`
    // (set in `visitor_connect`), and the `connections`/`watching` of `session_update`.

    /// Relays an agent's laser or ink to the visitor's tab `tab` and to the session's
    /// other agents: only for an agent in the active session, an open tab of its visitor
    /// whose page allows drawing, and an ink within the protocol's limits. The first ink
    /// of each kind is counted in the Session's `features_used` (`laser`, `drawing`).
    /// The page checks all of it again (`src/core/client/draw.rs`).
    fn draw(
        &self,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
        tab: &str,
        ink: Ink,
    ) -> Result<(), HubError> {
        ink.check()
            .map_err(|why| HubError::new("invalid_argument", why))?;
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let visitor_id = self
            .agent_session(inner, account_id, &agent.id, session_id)?
            .session
            .visitor_id
            .clone();
        let entry = inner
            .visitors
            .get(&visitor_id)
            .filter(|e| {
                e.machine.session_id() == Some(session_id)
                    && e.machine.status() == SessionStatus::Active
            })
            .ok_or_else(|| HubError::new("wrong_session_state", "the session is not active"))?;
        if entry
            .machine
            .connection(tab)
            .is_none_or(|c| c.status != ConnectionStatus::Active)
        {
            return Err(HubError::new(
                "unknown_connection",
                "`tab` is not an open tab of the session's visitor",
            ));
        }
        if entry.no_drawing.contains(tab) {
            return Err(HubError::new(
                "permission_denied",
                "the site's covisit config does not allow this (`allowAgentDrawing` is false)",
            ));
        }
        let tx = entry
            .sockets
            .get(tab)
            .cloned()
            .ok_or_else(|| HubError::new("visitor_offline", "that tab is not connected"))?;
        let Some(s) = inner.sessions.get_mut(session_id) else {
            return Err(HubError::new("unknown_session", "no such session"));
        };
        // The agent's colour: its place among the session's agents, as the console
        // works it out from the same list.
        let color = s
            .session
            .agents
            .iter()
            .position(|a| a.id == agent.id)
            .unwrap_or(0) as u32
            % INK_COLORS;
        let new_feature = ink
            .feature()
            .filter(|f| !s.session.features_used.iter().any(|x| x == f))
            .map(|f| s.session.features_used.push(f.to_string()))
            .is_some();
        self.send(
            &tx,
            encode(&ServerToVisitor::Draw {
                agent_id: agent.id.clone(),
                name: agent.name.clone(),
                color,
                ink: Json::from(&ink),
            }),
        );
        let to_agents = Utf8Bytes::from(encode(&ServerToAgent::Draw {
            session_id: session_id.to_string(),
            tab: tab.to_string(),
            agent_id: agent.id.clone(),
            name: agent.name.clone(),
            color,
            ink,
        }));
        for a in inner.agents.values().filter(|a| {
            a.account_id == account_id
                && a.agent.id != agent.id
                && s.parts
                    .iter()
                    .any(|p| p.left.is_none() && p.agent.id == a.agent.id)
        }) {
            self.send(&a.tx, to_agents.clone());
        }
        if new_feature {
            // features_used changed: persisted and announced like any session change.
            self.after_change(inner, &visitor_id, now);
        }
        Ok(())
    }

    /// The seed's `setActiveConnection`: the agent watches the visitor's tab
    /// `connection` (a `uniqueConnectionId`; None: it follows the tab the visitor is
    /// in). Recorded for `session_update.watching`, announced to the session's agents,
    /// and the tab is asked for a fresh snapshot (within the session's one-a-second
    /// resync limit). Control is not moved: it stays in the tab it was granted in.
    fn set_active_connection(
        &self,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
        connection: Option<String>,
    ) -> Result<(), HubError> {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let visitor_id = self
            .agent_session(inner, account_id, &agent.id, session_id)?
            .session
            .visitor_id
            .clone();
        let entry = inner
            .visitors
            .get(&visitor_id)
            .filter(|e| {
                e.machine.session_id() == Some(session_id)
                    && e.machine.status() == SessionStatus::Active
            })
            .ok_or_else(|| HubError::new("wrong_session_state", "the session is not active"))?;
        let tx = match &connection {
            Some(c) => Some(
                entry
                    .machine
                    .connection(c)
                    .filter(|c| c.status == ConnectionStatus::Active)
                    .and_then(|_| entry.sockets.get(c))
                    .cloned()
                    .ok_or_else(|| {
                        HubError::new(
                            "unknown_connection",
                            "`uniqueConnectionId` is not an open tab of the session's visitor",
                        )
                    })?,
            ),
            None => None,
        };
        let Some(s) = inner.sessions.get_mut(session_id) else {
            return Err(HubError::new("unknown_session", "no such session"));
        };
        match connection {
            Some(c) => s.workspace.watching.insert(agent.id.clone(), c),
            None => s.workspace.watching.remove(&agent.id),
        };
        if let Some(tx) = tx {
            if now.0 >= s.remote.last_resync.0 + RESYNC_INTERVAL_MS {
                s.remote.last_resync = now;
                self.send(&tx, encode(&ServerToVisitor::MirrorResync));
            }
        }
        let frame = Utf8Bytes::from(session_update(s));
        for a in inner.agents.values().filter(|a| {
            a.account_id == account_id && s.parts.iter().any(|p| p.agent.id == a.agent.id)
        }) {
            self.send(&a.tx, frame.clone());
        }
        Ok(())
    }

    /// The active session `session_id` of the account, if `agent_id` takes part in it.
    fn agent_session<'a>(
        &self,
        inner: &'a Inner,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
    ) -> Result<&'a SessionEntry, HubError> {
        let s = inner
            .sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
            .ok_or_else(|| HubError::new("unknown_session", "no such session"))?;
        if s.status != SessionStatus::Active {
            return Err(HubError::new(
                "wrong_session_state",
                "the session is not active",
            ));
        }
        if !s
            .parts
            .iter()
            .any(|p| p.agent.id == agent_id && p.left.is_none())
        {
            return Err(HubError::new(
                "not_in_session",
                "this agent is not in the session",
            ));
        }
        Ok(s)
    }

    /// A visitor arrived through an agent's personal link (and confirmed it): the
    /// visitor's `call_name` becomes the agent's username, and that agent asks for a
    /// session (`source: personal link`). The visitor still authorizes as usual.
    pub fn personal_link_session(
        &self,
        account_id: i64,
        short_id: &str,
        agent: Agent,
        username: &str,
    ) -> Result<String, HubError> {
        {
            let mut inner = self.lock();
            let Some(entry) = inner
                .visitors
                .get_mut(short_id)
                .filter(|v| v.account_id == account_id)
            else {
                return Err(HubError::new("unknown_visitor", "no such visitor"));
            };
            entry.visitor.call_name = Some(username.to_string());
        }
        let agent_id = agent.id.clone();
        let (session_id, _) =
            self.request_session(account_id, short_id, agent, SessionSource::PersonalLink)?;
        self.audit(
            account_id,
            &format!("visitor:{short_id}"),
            "session.requested_by_personal_link",
            Some(&session_id),
            None,
            &agent_id,
        );
        Ok(session_id)
    }

    /// An agent (console or REST) asks a visitor for a session.
    pub fn request_session(
        &self,
        account_id: i64,
        short_id: &str,
        agent: Agent,
        source: SessionSource,
    ) -> Result<(String, String), HubError> {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(entry) = inner
            .visitors
            .get_mut(short_id)
            .filter(|v| v.account_id == account_id)
        else {
            return Err(HubError::new(
                "visitor_offline",
                "no online visitor with this id",
            ));
        };
        let source = if entry.visitor.is_waiting_for_call
            && !matches!(source, SessionSource::Api | SessionSource::PersonalLink)
        {
            SessionSource::AgentRequest
        } else {
            source
        };
        let session_id = format!("s_{}", random_hex(10));
        let visitor_comm = format!("cm_{}", random_hex(10));
        let agent_comm = format!("cm_{}", random_hex(10));
        let viewer_url = derive::viewer_url(&self.public_url, &session_id);
        let permissions = &entry.machine.options().permissions;
        let alerting = permissions.require_authorization_for_session;
        let agent_prompt = permissions.agent_prompt.clone();
        entry.machine.handle_session_request(
            now,
            SessionRequest {
                session_id: session_id.clone(),
                communication_id: visitor_comm,
                peer_communication_id: Some(agent_comm.clone()),
                viewer_url: Some(viewer_url.clone()),
                agent: agent.clone(),
            },
        )?;
        entry.visitor.is_waiting_for_call = false;
        let v = &entry.visitor;
        let mut metadata = Map::new();
        for (k, val) in &entry.metadata {
            metadata.insert(format!("visitor_{k}"), val.clone());
        }
        let session = Session {
            agents: vec![agent.clone()],
            agent_notes: Vec::new(),
            call_length_seconds: 0,
            call_name: v.call_name.clone(),
            ended_at: None,
            features_used: Vec::new(),
            formatted_call_length: derive::formatted_length(0),
            formatted_length: derive::formatted_length(0),
            metadata,
            quality_feedback: Vec::new(),
            visitor_agent_feedback: None,
            visitor_agent_rating: None,
            visitor_email: v.email.clone(),
            visitor_ip_address: Some(v.ip_address.clone()).filter(|ip| !ip.is_empty()),
            visitor_unique_id: v.unique_id.clone(),
            id: session_id.clone(),
            length_seconds: 0,
            on_premise: true,
            public_video_url: None,
            secret_video_url: None,
            session_authorized: false,
            source: Some(source),
            start_url: v.last_url.clone(),
            started_at: now.to_iso8601(),
            video_status: None,
            visitor_id: short_id.to_string(),
            went_live: false,
        };
        let agent_job = Write::SessionAgent(session_id.clone(), Box::new(agent.clone()));
        inner.sessions.insert(
            session_id.clone(),
            SessionEntry {
                account_id,
                session,
                status: SessionStatus::None,
                started: now,
                parts: vec![AgentPart {
                    agent,
                    comm_id: agent_comm,
                    initial_state: if alerting {
                        CommunicationState::Alerting
                    } else {
                        CommunicationState::Connected
                    },
                    joined_at: now.to_iso8601(),
                    left: None,
                }],
                visitor_comm: None,
                controlling: None,
                control: SessionControl::default(),
                viewer_url: viewer_url.clone(),
                persisted: String::new(),
                remote: RemoteActions::default(),
                agent_prompt,
                workspace: SessionWorkspace::default(),
            },
        );
        self.after_change(inner, short_id, now);
        // After the session row exists (session_agents references it).
        self.write(agent_job);
        Ok((session_id, viewer_url))
    }

    /// `may_join_any`: a supervisor, an admin or an integration; an agent only comes
    /// back to a session it was part of.
    fn join_session(
        &self,
        account_id: i64,
        session_id: &str,
        agent: Agent,
        may_join_any: bool,
    ) -> Result<(), HubError> {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(s) = inner
            .sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
        else {
            return Err(HubError::new("unknown_session", "no such session"));
        };
        if !may_join_any && !s.parts.iter().any(|p| p.agent.id == agent.id) {
            return Err(HubError::new(
                "forbidden",
                "only a supervisor or an admin joins another agent's session",
            ));
        }
        let short_id = s.session.visitor_id.clone();
        let Some(entry) = inner.visitors.get_mut(&short_id) else {
            return Err(HubError::new("wrong_session_state", "the session is over"));
        };
        if entry.machine.session_id() != Some(session_id) {
            return Err(HubError::new("wrong_session_state", "the session is over"));
        }
        let initial = if entry.machine.status() == SessionStatus::Active {
            CommunicationState::Connected
        } else {
            CommunicationState::Alerting
        };
        entry.machine.handle_agent_join(now, agent.clone())?;
        self.write(Write::SessionAgent(
            session_id.to_string(),
            Box::new(agent.clone()),
        ));
        if let Some(s) = inner.sessions.get_mut(session_id) {
            if let Some(p) = s.parts.iter_mut().find(|p| p.agent.id == agent.id) {
                p.left = None;
            } else {
                s.parts.push(AgentPart {
                    agent,
                    comm_id: format!("cm_{}", random_hex(10)),
                    initial_state: initial,
                    joined_at: now.to_iso8601(),
                    left: None,
                });
            }
        }
        self.after_change(inner, &short_id, now);
        Ok(())
    }

    /// Runs a machine input for a live session of the account; with `agent_id`, only
    /// an agent of that session may.
    fn with_session(
        &self,
        account_id: i64,
        session_id: &str,
        agent_id: Option<&str>,
        f: impl FnOnce(&mut VisitorMachine, Millis) -> Result<(), covisit::core::machine::MachineError>,
    ) -> Result<(), HubError> {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(s) = inner
            .sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
        else {
            return Err(HubError::new("unknown_session", "no such session"));
        };
        if let Some(a) = agent_id {
            if !s.parts.iter().any(|p| p.agent.id == a && p.left.is_none()) {
                return Err(HubError::new(
                    "not_in_session",
                    "this agent is not in the session",
                ));
            }
        }
        let short_id = s.session.visitor_id.clone();
        let ended = || HubError::new("wrong_session_state", "the session is over");
        let Some(entry) = inner.visitors.get_mut(&short_id) else {
            return Err(ended());
        };
        if entry.machine.session_id() != Some(session_id) {
            return Err(ended());
        }
        let result = f(&mut entry.machine, now).map_err(HubError::from);
        if result.is_ok() {
            if let (Some(a), Some(s)) = (agent_id, inner.sessions.get_mut(session_id)) {
                // Who left: recorded here because the machine only knows who stays.
                if !s.parts.is_empty()
                    && !inner
                        .visitors
                        .get(&short_id)
                        .is_some_and(|e| e.machine.agents().iter().any(|x| x.id == a))
                {
                    if let Some(p) = s
                        .parts
                        .iter_mut()
                        .find(|p| p.agent.id == a && p.left.is_none())
                    {
                        p.left = Some((now.to_iso8601(), DisconnectType::Client));
                    }
                }
            }
        }
        self.after_change(inner, &short_id, now);
        result
    }

    /// Ends a session from the server side (REST): `system`.
    pub fn end_session(&self, account_id: i64, session_id: &str) -> Result<bool, HubError> {
        let live = self
            .lock()
            .sessions
            .get(session_id)
            .is_some_and(|s| s.account_id == account_id);
        if !live {
            return Ok(false);
        }
        self.with_session(account_id, session_id, None, |m, now| {
            m.handle_server_end(now)
        })?;
        Ok(true)
    }

    /// Adds a note to a session in memory. `Ok(false)` when it is not in memory.
    pub fn add_note(
        &self,
        account_id: i64,
        session_id: &str,
        by: &str,
        text: String,
        must_be_agent: bool,
    ) -> Result<(), HubError> {
        if text.trim().is_empty() {
            return Err(HubError::new(
                "invalid_argument",
                "`text` must not be empty",
            ));
        }
        text_ok("text", &text)?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(s) = inner
            .sessions
            .get_mut(session_id)
            .filter(|s| s.account_id == account_id)
        else {
            return Err(HubError::new("unknown_session", "no such session"));
        };
        if must_be_agent && !s.parts.iter().any(|p| p.agent.id == by) {
            return Err(HubError::new(
                "not_in_session",
                "this agent is not in the session",
            ));
        }
        s.session.agent_notes.push(AgentNote {
            text: text.clone(),
            by: by.to_string(),
        });
        self.write(Write::Note(session_id.to_string(), by.to_string(), text));
        self.write(Write::Session(
            account_id,
            Box::new(s.session.clone()),
            s.status.as_str().into(),
        ));
        let frame = Utf8Bytes::from(session_update(s));
        let ids: Vec<String> = s.parts.iter().map(|p| p.agent.id.clone()).collect();
        for a in inner
            .agents
            .values()
            .filter(|a| a.account_id == account_id && ids.contains(&a.agent.id))
        {
            self.send(&a.tx, frame.clone());
        }
        Ok(())
    }

    // ----- reads for REST -------------------------------------------------------------

    pub fn online_visitors(&self, account_id: i64) -> Vec<Visitor> {
        online_visitors(&self.lock(), account_id)
    }

    /// The in-memory visitor, when it is online or in a session.
    pub fn visitor(&self, account_id: i64, short_id: &str) -> Option<Visitor> {
        let inner = self.lock();
        inner
            .visitors
            .get(short_id)
            .filter(|v| v.account_id == account_id)
            .map(visitor_view)
    }

    /// The in-memory session (with status), if the hub still holds it.
    pub fn session(
        &self,
        account_id: i64,
        session_id: &str,
    ) -> Option<(Session, SessionStatus, Vec<Cobrowsesession>)> {
        let inner = self.lock();
        inner
            .sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
            .map(|s| (s.session.clone(), s.status, communications(s)))
    }

    pub fn sessions_of(&self, account_id: i64, visitor_id: Option<&str>) -> Vec<Session> {
        let inner = self.lock();
        inner
            .sessions
            .values()
            .filter(|s| {
                s.account_id == account_id && visitor_id.is_none_or(|v| s.session.visitor_id == v)
            })
            .map(|s| s.session.clone())
            .collect()
    }

    /// Forgets the visitor's personal data in memory: ends its live session (`system`),
    /// closes its sockets, drops it and nulls the personal fields of its sessions.
    pub fn erase_visitor(&self, account_id: i64, short_id: &str) -> bool {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let known = inner
            .visitors
            .get(short_id)
            .is_some_and(|v| v.account_id == account_id);
        if known {
            if let Some(entry) = inner.visitors.get_mut(short_id) {
                let _ = entry.machine.handle_server_end(now);
            }
            self.after_change(inner, short_id, now);
            if let Some(entry) = inner.visitors.remove(short_id) {
                for tx in entry.sockets.values() {
                    // Behind the session_end frame queued above.
                    self.job(Job::Deliver(tx.clone(), Out::Close));
                }
                if let Some((_, h)) = entry.timer {
                    h.abort();
                }
            }
        }
        for s in inner
            .sessions
            .values_mut()
            .filter(|s| s.account_id == account_id && s.session.visitor_id == short_id)
        {
            s.session.visitor_ip_address = None;
            s.session.visitor_email = None;
            s.session.visitor_unique_id = None;
            s.session.metadata.retain(|k, _| !k.starts_with("visitor_"));
        }
        // The store holds the (erased) records from here on.
        inner
            .sessions
            .retain(|_, s| !(s.account_id == account_id && s.session.visitor_id == short_id));
        known
    }

    // ----- internals ------------------------------------------------------------------

    /// Routes the machine's events, refreshes the records, persists, notifies agents,
    /// re-arms the timer, and drops the visitor from memory once nothing is left of it.
    fn after_change(&self, inner: &mut Inner, short_id: &str, now: Millis) {
        self.after_change_as(inner, short_id, now, false);
    }

    /// After a url-only change (SPA navigation): the short path when the machine
    /// reported nothing but a state change. The tab patched its own connection, so it
    /// gets no `state`; the session's agents get the `visitor_update` at once (the
    /// others at most once a second); no `session_update` (nothing in the session
    /// record changed but timestamps); `last_url` and the connection's url are written
    /// at the next broadcast tick (coalesced). The frames still queue behind every
    /// write queued before them, so all they announce besides the url is committed.
    fn url_changed(&self, inner: &mut Inner, short_id: &str, now: Millis) {
        self.after_change_as(inner, short_id, now, true);
    }

    fn after_change_as(&self, inner: &mut Inner, short_id: &str, now: Millis, url_only: bool) {
        let Some(entry) = inner.visitors.get_mut(short_id) else {
            return;
        };
        let account_id = entry.account_id;
        let mut touched_session: Option<String> = entry.machine.session_id().map(str::to_string);
        let mut state_changed = false;
        let mut other_events = false;
        let visitor_actor = format!("visitor:{short_id}");
        // The visitor's decisions and the server's, for the audit log (agents' acts are
        // audited where they come in). No visitor IP or email goes into an entry.
        let mut audits: Vec<(&'static str, &str, String, String)> = Vec::new();
        while let Some(event) = entry.machine.poll_event() {
            if event != Event::StateChanged {
                other_events = true;
            }
            let session = touched_session.clone().unwrap_or_default();
            match &event {
                Event::SessionStarted { session_id } => {
                    audits.push(if entry.machine.session_authorized() {
                        (
                            "session.authorized",
                            visitor_actor.as_str(),
                            session_id.clone(),
                            "ok".into(),
                        )
                    } else {
                        (
                            "session.started",
                            "system",
                            session_id.clone(),
                            "no_authorization_required".into(),
                        )
                    })
                }
                Event::SessionEnded {
                    session_id,
                    disconnect_type,
                } => {
                    let went_live = inner
                        .sessions
                        .get(session_id)
                        .is_some_and(|s| s.session.went_live);
                    match disconnect_type {
                        DisconnectType::Client if !went_live => audits.push((
                            "session.denied",
                            visitor_actor.as_str(),
                            session_id.clone(),
                            "ok".into(),
                        )),
                        DisconnectType::Client => audits.push((
                            "session.ended",
                            visitor_actor.as_str(),
                            session_id.clone(),
                            "client".into(),
                        )),
                        // An agent's end and the server's (REST, erasure) are audited
                        // with whoever did it.
                        DisconnectType::Peer | DisconnectType::System => {}
                        other => audits.push((
                            "session.ended",
                            "system",
                            session_id.clone(),
                            serde_json::to_value(other)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default(),
                        )),
                    }
                }
                Event::ControlStarted { .. } => audits.push((
                    "control.granted",
                    visitor_actor.as_str(),
                    session.clone(),
                    "ok".into(),
                )),
                Event::ControlEnded { reason, .. } => match reason {
                    covisit::core::machine::ControlEndReason::Denied => audits.push((
                        "control.denied",
                        visitor_actor.as_str(),
                        session.clone(),
                        "ok".into(),
                    )),
                    covisit::core::machine::ControlEndReason::RevokedByVisitor => audits.push((
                        "control.revoked",
                        visitor_actor.as_str(),
                        session.clone(),
                        "ok".into(),
                    )),
                    covisit::core::machine::ControlEndReason::FocusLost => audits.push((
                        "control.ended",
                        "system",
                        session.clone(),
                        "focus_lost".into(),
                    )),
                    _ => {}
                },
                _ => {}
            }
            let (target, frame) = match event {
                Event::SessionRequested {
                    session_id,
                    agent,
                    connection_id,
                } => (
                    Some(connection_id),
                    ServerToVisitor::SessionRequest { session_id, agent },
                ),
                Event::SessionStarted { session_id } => {
                    touched_session = Some(session_id.clone());
                    (None, ServerToVisitor::SessionStart { session_id })
                }
                Event::SessionContinued {
                    session_id,
                    connection_id,
                } => (
                    Some(connection_id),
                    ServerToVisitor::SessionContinue { session_id },
                ),
                Event::SessionEnded {
                    session_id,
                    disconnect_type,
                } => {
                    touched_session = Some(session_id.clone());
                    (
                        None,
                        ServerToVisitor::SessionEnd {
                            session_id,
                            disconnect_type,
                        },
                    )
                }
                Event::ControlRequested {
                    agent,
                    connection_id,
                } => (
                    Some(connection_id),
                    ServerToVisitor::ControlRequest { agent },
                ),
                Event::PromptWithdrawn {
                    prompt,
                    connection_id,
                } => (
                    Some(connection_id),
                    ServerToVisitor::PromptWithdrawn { prompt },
                ),
                Event::ControlStarted {
                    agent_id,
                    connection_id,
                } => {
                    if let Some(s) = touched_session
                        .as_ref()
                        .and_then(|id| inner.sessions.get_mut(id))
                    {
                        if !s
                            .session
                            .features_used
                            .iter()
                            .any(|f| f == "remote_control")
                        {
                            s.session.features_used.push("remote_control".into());
                        }
                    }
                    (
                        Some(connection_id),
                        ServerToVisitor::ControlStart { agent_id },
                    )
                }
                Event::ControlEnded { agent_id, reason } => {
                    if let Some(s) = touched_session
                        .as_ref()
                        .and_then(|id| inner.sessions.get_mut(id))
                    {
                        s.control = SessionControl {
                            state: ControlPhase::None,
                            agent_id: Some(agent_id.clone()),
                            reason: Some(reason),
                            tab: None,
                        };
                    }
                    (None, ServerToVisitor::ControlEnd { agent_id, reason })
                }
                Event::StateChanged => {
                    state_changed = true;
                    continue;
                }
            };
            let text = encode(&frame);
            match target {
                Some(c) => {
                    if let Some(tx) = entry.sockets.get(&c) {
                        self.send(tx, text);
                    }
                }
                None => {
                    for tx in entry.sockets.values() {
                        self.send(tx, text.clone());
                    }
                }
            }
        }
        for (action, actor, target, result) in &audits {
            self.audit(account_id, actor, action, Some(target), None, result);
        }
        if url_only && !other_events {
            let view = visitor_view(entry);
            entry.last_broadcast.clear(); // the next full pass compares afresh
            entry.broadcast_code = view.lookup_code.is_some();
            let broadcast_now = now.0 >= entry.broadcast_at.0 + BROADCAST_INTERVAL_MS;
            if broadcast_now {
                entry.broadcast_at = now;
            }
            let session = entry
                .machine
                .session_id()
                .and_then(|sid| inner.sessions.get(sid));
            let frame = Utf8Bytes::from(encode(&ServerToAgent::VisitorUpdate { visitor: view }));
            for a in inner.agents.values().filter(|a| a.account_id == account_id) {
                if broadcast_now
                    || session.is_some_and(|s| s.parts.iter().any(|p| p.agent.id == a.agent.id))
                {
                    self.send(&a.tx, frame.clone());
                }
            }
            if broadcast_now {
                inner.pending_broadcasts.remove(short_id);
            } else {
                inner.pending_broadcasts.insert(short_id.to_string());
            }
            inner.dirty_urls.insert(short_id.to_string());
            self.schedule(inner, short_id);
            return;
        }
        if state_changed {
            let status = entry.machine.status();
            let communication = entry.machine.communication().cloned();
            for (cid, tx) in &entry.sockets {
                let state = VisitorState::new(
                    status,
                    entry.machine.connection(cid),
                    communication.as_ref(),
                );
                self.send(
                    tx,
                    encode(&ServerToVisitor::State {
                        state: Box::new(state),
                    }),
                );
            }
            for c in entry.machine.connections() {
                self.write(Write::Connection(short_id.to_string(), Box::new(c.clone())));
            }
        }
        // The visitor record.
        let status = entry.machine.status();
        entry.visitor.is_online = entry.machine.is_online();
        entry.visitor.is_in_session = status == SessionStatus::Active;
        if entry.machine.is_online() {
            entry.visitor.last_seen_at = now.to_iso8601();
        }
        let view = visitor_view(entry);
        // last_seen_at moves with every heartbeat; it alone is not worth a broadcast.
        let json = serde_json::to_string(&Visitor {
            last_seen_at: String::new(),
            ..view.clone()
        })
        .unwrap_or_default();
        let visitor_changed = json != entry.last_broadcast;
        if visitor_changed {
            entry.last_broadcast = json;
            entry.broadcast_code = view.lookup_code.is_some();
        }
        let flags = (view.is_online, view.is_in_session, view.is_waiting_for_call);
        let broadcast_now = visitor_changed
            && (flags != entry.broadcast_flags
                || now.0 >= entry.broadcast_at.0 + BROADCAST_INTERVAL_MS);
        if broadcast_now {
            entry.broadcast_at = now;
            entry.broadcast_flags = flags;
        }
        // The session record.
        let session_frame = touched_session.as_ref().and_then(|sid| {
            let s = inner.sessions.get_mut(sid)?;
            if entry.machine.session_id() == Some(sid.as_str()) {
                // Issue 16: the visitor's open tabs, for session_update.connections.
                s.workspace.tabs = entry
                    .machine
                    .connections()
                    .iter()
                    .filter(|c| c.status == ConnectionStatus::Active)
                    .cloned()
                    .collect();
                s.status = status;
                s.visitor_comm = entry.machine.communication().cloned();
                s.controlling = entry.machine.controlling_agent().map(str::to_string);
                s.control.tab = None;
                match entry.machine.control() {
                    ControlState::None => s.control.state = ControlPhase::None,
                    ControlState::Requested { agent_id, .. } => {
                        s.control.state = ControlPhase::Requested;
                        s.control.agent_id = Some(agent_id);
                    }
                    ControlState::Granted {
                        agent_id,
                        connection_id,
                    } => {
                        s.control.state = ControlPhase::Granted;
                        s.control.agent_id = Some(agent_id);
                        s.control.tab = Some(connection_id);
                    }
                }
                if status == SessionStatus::Active {
                    s.session.went_live = true;
                    s.session.session_authorized = entry.machine.session_authorized();
                }
                let ended_at = s
                    .visitor_comm
                    .as_ref()
                    .and_then(|c| c.disconnected_time.clone());
                if status == SessionStatus::Ended {
                    let end = ended_at
                        .as_deref()
                        .and_then(Millis::parse_iso8601)
                        .unwrap_or(now);
                    if s.session.ended_at.is_none() {
                        s.session.ended_at = Some(end.to_iso8601());
                    }
                    let dt = entry
                        .machine
                        .disconnect_type()
                        .unwrap_or(DisconnectType::System);
                    for p in s.parts.iter_mut().filter(|p| p.left.is_none()) {
                        p.left = Some((end.to_iso8601(), dt));
                    }
                    set_length(&mut s.session, end.seconds_since(s.started));
                } else {
                    set_length(&mut s.session, now.seconds_since(s.started));
                }
                // Keep the seed's "agents that joined": everyone who ever joined.
                for a in entry.machine.agents() {
                    if !s.session.agents.iter().any(|x| x.id == a.id) {
                        s.session.agents.push(a.clone());
                    }
                }
            }
            let comms = communications(s);
            let fingerprint = serde_json::to_string(&(
                Session {
                    length_seconds: 0,
                    formatted_length: String::new(),
                    ..s.session.clone()
                },
                s.status.as_str(),
                &comms,
            ))
            .unwrap_or_default();
            if fingerprint != s.persisted {
                s.persisted = fingerprint;
                self.write(Write::Session(
                    account_id,
                    Box::new(s.session.clone()),
                    s.status.as_str().into(),
                ));
                for c in comms {
                    self.write(Write::Communication(sid.clone(), Box::new(c)));
                }
            }
            let ids: Vec<String> = s.parts.iter().map(|p| p.agent.id.clone()).collect();
            Some((Utf8Bytes::from(session_update(s)), ids))
        });
        if visitor_changed || state_changed {
            self.write(Write::Visitor(account_id, Box::new(view.clone())));
        }
        let update = visitor_changed
            .then(|| Utf8Bytes::from(encode(&ServerToAgent::VisitorUpdate { visitor: view })));
        for a in inner.agents.values().filter(|a| a.account_id == account_id) {
            let in_session = session_frame
                .as_ref()
                .is_some_and(|(_, ids)| ids.contains(&a.agent.id));
            if let Some(u) = &update {
                if broadcast_now || in_session {
                    self.send(&a.tx, u.clone());
                }
            }
            if let Some((frame, _)) = &session_frame {
                if in_session {
                    self.send(&a.tx, frame.clone());
                }
            }
        }
        if broadcast_now {
            inner.pending_broadcasts.remove(short_id);
        } else if visitor_changed {
            inner.pending_broadcasts.insert(short_id.to_string());
        }
        self.schedule(inner, short_id);
        // Nothing left to keep in memory: no tab, no live session.
        let Some(entry) = inner.visitors.get(short_id) else {
            return;
        };
        let live = matches!(
            entry.machine.status(),
            SessionStatus::Authorizing | SessionStatus::Active
        );
        if !entry.machine.is_online() && !live && entry.sockets.is_empty() {
            if let Some(e) = inner.visitors.remove(short_id) {
                if let Some((_, h)) = e.timer {
                    h.abort();
                }
            }
            inner
                .sessions
                .retain(|_, s| s.session.visitor_id != short_id);
        }
    }

    /// Arms the visitor's timer task for the machine's earliest deadline.
    fn schedule(&self, inner: &mut Inner, short_id: &str) {
        let Some(entry) = inner.visitors.get_mut(short_id) else {
            return;
        };
        let deadline = entry.machine.poll_timeout();
        if entry.timer.as_ref().map(|(d, _)| *d) == deadline {
            return;
        }
        if let Some((_, h)) = entry.timer.take() {
            h.abort();
        }
        let (Some(deadline), Some(hub)) = (deadline, self.me.upgrade()) else {
            return;
        };
        let id = short_id.to_string();
        let wait = std::time::Duration::from_millis(deadline.0.saturating_sub(now().0));
        let handle = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            hub.on_timer(&id);
        });
        entry.timer = Some((deadline, handle));
    }

    fn on_timer(&self, short_id: &str) {
        let now = now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(entry) = inner.visitors.get_mut(short_id) else {
            return;
        };
        entry.timer = None;
        entry.machine.handle_timeout(now);
        self.after_change(inner, short_id, now);
    }
}

fn set_length(session: &mut Session, seconds: u64) {
    session.length_seconds = seconds;
    session.formatted_length = derive::formatted_length(seconds);
}

fn apply_identity(entry: &mut VisitorEntry, update: config::IdentityUpdate) {
    let v = &mut entry.visitor;
    update.unique_id.apply_to(&mut v.unique_id);
    let mut identities = Some(std::mem::take(&mut v.identities));
    update.identities.apply_to(&mut identities);
    v.identities = identities.unwrap_or_default();
    let mut tags = Some(std::mem::take(&mut v.tags));
    update.tags.apply_to(&mut tags);
    v.tags = tags.unwrap_or_default();
    update.call_name.apply_to(&mut v.call_name);
    update.email.apply_to(&mut entry.explicit_email);
    let mut metadata = Some(std::mem::take(&mut entry.metadata));
    update.metadata.map(Map::from).apply_to(&mut metadata);
    entry.metadata = metadata.unwrap_or_default();
    v.name = derive::name_from_identities(&v.identities);
    v.email = derive::email_from(entry.explicit_email.as_deref(), &v.identities);
    v.nickname = derive::nickname(v.name.as_deref(), v.email.as_deref(), &v.short_id);
}

/// The REST/agent view of a visitor: an expired lookup code is not shown.
fn visitor_view(entry: &VisitorEntry) -> Visitor {
    let mut v = entry.visitor.clone();
    if entry.lookup_expires <= now() || !entry.machine.is_online() {
        v.lookup_code = None;
    }
    v
}

fn online_visitors(inner: &Inner, account_id: i64) -> Vec<Visitor> {
    let mut list: Vec<Visitor> = inner
        .visitors
        .values()
        .filter(|v| v.account_id == account_id && v.machine.is_online())
        .map(visitor_view)
        .collect();
    list.sort_by(|a, b| b.last_seen_at.cmp(&a.last_seen_at));
    list
}

/// The session's communications: the visitor's (sharer) first, then one per agent.
fn communications(s: &SessionEntry) -> Vec<Cobrowsesession> {
    let Some(vc) = &s.visitor_comm else {
        return Vec::new();
    };
    let mut out = vec![vc.clone()];
    for p in &s.parts {
        let (state, disconnect_type, disconnected_time) = match &p.left {
            Some((at, dt)) => (
                CommunicationState::Disconnected,
                Some(*dt),
                Some(at.clone()),
            ),
            None => (vc.state, None, None),
        };
        let connected_time = vc
            .connected_time
            .as_ref()
            .map(|c| c.max(&p.joined_at).clone());
        out.push(Cobrowsesession {
            state,
            initial_state: p.initial_state,
            id: p.comm_id.clone(),
            disconnect_type,
            self_address: Address {
                name: Some(p.agent.name.clone()),
                name_raw: Some(p.agent.name.clone()),
                address_normalized: None,
                address_raw: Some(format!("covisit:agent/{}", p.agent.id)),
                address_displayable: None,
            },
            cobrowse_session_id: s.session.id.clone(),
            cobrowse_role: CobrowseRole::Viewer,
            controlling: if s.controlling.as_deref() == Some(p.agent.id.as_str())
                && p.left.is_none()
            {
                vec![vc.id.clone()]
            } else {
                Vec::new()
            },
            viewer_url: Some(s.viewer_url.clone()),
            provider_event_time: disconnected_time
                .clone()
                .unwrap_or_else(|| vc.provider_event_time.clone()),
            start_alerting_time: (p.initial_state == CommunicationState::Alerting)
                .then(|| p.joined_at.clone()),
            connected_time,
            disconnected_time,
            provider: vc.provider.clone(),
            peer_id: Some(vc.id.clone()),
            segments: vc
                .segments
                .iter()
                .filter(|seg| seg.end_time.as_ref().is_none_or(|e| *e >= p.joined_at))
                .cloned()
                .collect(),
            wrapup: None,
            after_call_work: None,
            after_call_work_required: false,
        });
    }
    out
}

fn session_update(s: &SessionEntry) -> String {
    encode(&ServerToAgent::SessionUpdate {
        session: s.session.clone(),
        status: s.status,
        controlling_agent_id: s.controlling.clone(),
        communications: communications(s),
        control: s.control.clone(),
        agent_prompt: s.agent_prompt.clone(),
        connections: if matches!(s.status, SessionStatus::Authorizing | SessionStatus::Active) {
            s.workspace.tabs.clone()
        } else {
            Vec::new()
        },
        watching: s.workspace.watching.clone(),
    })
}

/// Every heartbeat ack is the same frame.
static HEARTBEAT_ACK: std::sync::LazyLock<Utf8Bytes> =
    std::sync::LazyLock::new(|| Utf8Bytes::from(encode(&ServerToVisitor::HeartbeatAck)));

/// Most jobs taken from the queue for one transaction.
const MAX_BATCH: usize = 4096;

/// Drains the queue: every job waiting is taken at once, its writes are committed in
/// one transaction (group commit; a later write of the same record replaces an earlier
/// one in the batch), and only then are its frames delivered and its flushes answered,
/// in queue order. Errors are logged (without personal data) and the server keeps
/// running on its in-memory state; flushes then answer false.
async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Job> = Vec::new();
    let mut failed = false;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut writes: Vec<Write> = Vec::new();
        let mut slots: HashMap<(u8, String), usize> = HashMap::new();
        let mut after: Vec<Job> = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            match job {
                Job::Write(w) => {
                    // Keep the first position (rows that later writes refer to exist by
                    // then) with the last content.
                    match w.key().map(|(k, id)| (k, id.to_string())) {
                        Some(key) => match slots.get(&key) {
                            Some(&i) => writes[i] = w,
                            None => {
                                slots.insert(key, writes.len());
                                writes.push(w);
                            }
                        },
                        None => writes.push(w),
                    }
                }
                other => after.push(other),
            }
        }
        // A failure answers the flushes of this batch and the next one with false
        // (a write may sit in the batch before its flush's).
        let previous_failed = failed;
        failed = if writes.is_empty() {
            false
        } else {
            match store.write_batch(writes).await {
                Ok(results) => {
                    let mut failed = false;
                    for e in results.into_iter().filter_map(Result::err) {
                        tracing::error!(error = %e, "store write failed");
                        failed = true;
                    }
                    failed
                }
                Err(e) => {
                    tracing::error!(error = %e, "store transaction failed");
                    true
                }
            }
        };
        let ok = !failed && !previous_failed;
        for job in after {
            match job {
                Job::Deliver(tx, out) => {
                    let text = matches!(out, Out::Text(_));
                    if tx.send(out).is_ok() && text {
                        metrics.relayed();
                    }
                }
                Job::Flush(done) => {
                    let _ = done.send(ok);
                }
                Job::Write(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn hello(account_id: i64) -> VisitorHello {
        VisitorHello {
            account_id,
            api_key: format!("pk_{account_id}"),
            short_id: None,
            visitor_secret: None,
            stored: None,
            connection_owner: None,
            connection: ConnectionHello {
                has_focus: true,
                ..ConnectionHello::default()
            },
            config: Value::Null,
            ip: "127.0.0.1".into(),
            location: None,
        }
    }

    fn code_of(welcome: &Welcome) -> Option<String> {
        let frame: Value = serde_json::from_str(&welcome.frame).expect("welcome is JSON");
        frame["lookup_code"].as_str().map(str::to_string)
    }

    /// Lookup codes stay unique among an account's online visitors up to all 10,000 of
    /// them; a code frees up when its visitor leaves; other accounts have their own.
    #[tokio::test]
    async fn lookup_codes_are_unique_per_account_until_every_code_is_taken() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("covisit.db")).expect("store"));
        let hub = Hub::new(store, "http://127.0.0.1".into(), Arc::default(), 30);
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut holders = HashMap::new();
        for _ in 0..10_000 {
            let w = hub.visitor_connect(hello(1), tx.clone()).expect("connects");
            let code = code_of(&w).expect("a code while any is free");
            let earlier = holders.insert(code.clone(), (w.short_id, w.connection_id));
            assert!(earlier.is_none(), "{code} given twice");
        }
        let full = hub.visitor_connect(hello(1), tx.clone()).expect("connects");
        assert_eq!(code_of(&full), None, "all 10,000 codes are taken");
        let other = hub.visitor_connect(hello(2), tx.clone()).expect("connects");
        assert!(
            code_of(&other).is_some(),
            "another account has its own codes"
        );

        let (short_id, connection_id) = holders.get("0042").cloned().expect("0042 is held");
        hub.visitor_disconnect(&short_id, &connection_id);
        let next = hub.visitor_connect(hello(1), tx.clone()).expect("connects");
        assert_eq!(
            code_of(&next).as_deref(),
            Some("0042"),
            "the one code left free"
        );
    }
}
