//! A deterministic simulation of the hub with its peers: visitor tabs running the real
//! SDK client (`covisit::core::client::VisitorClient`), agent stand-ins that speak the
//! agent protocol, and a network with latency, jitter and dropped connections. Every
//! party is stepped to the earliest deadline of any of them ([`Sim::step`]): no
//! runtime, no clock, no sleeping, and every loop is bounded. Models: quinn-proto's
//! `tests/util.rs` (`drive_bounded`), str0m's `tests/common.rs`.
//!
//! What the I/O shell does between the hub and the sockets (hello → `VisitorHello`,
//! error frames for undecodable frames, `heard` for frames the hub does not take) is
//! restated here in a few lines; the store is a map the hub's `Persist` writes fill.

use std::collections::{BTreeMap, HashMap};

use covisit::core::client::{ClientEvent, MirrorCommand, Output as ClientOutput};
use covisit::core::client::{PageInfo, StoredIds, VisitorClient};
use covisit::core::model::{Agent, Session, Visitor};
use covisit::core::protocol::{
    decode, encode, AgentMessage, ErrorFrame, ProtocolError, RemoteAction, ServerToVisitor,
    VisitorMessage,
};
use covisit::core::Millis;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{AgentIdentity, ConnId, Hub, HubConfig, Ids, Output, VisitorHello};
use crate::store::Write;

mod tests;

/// The simulation's start: an ordinary moment in 2026.
pub const T0: Millis = Millis(1_795_255_445_000);
/// More steps than any scenario needs: a loop that reaches it is a livelock (a bug).
const MAX_STEPS: usize = 200_000;
/// How often agent stand-ins send a heartbeat (the console sends one every 20 s).
const AGENT_HEARTBEAT_MS: u64 = 20_000;
/// The account every party belongs to (unless a test says otherwise).
pub const ACCOUNT: i64 = 1;

/// The network between the parties.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    /// One-way delay of every frame.
    pub latency_ms: u64,
    /// Up to this much more, drawn per frame (order on one socket is kept, as TCP does).
    pub jitter_ms: u64,
}

impl Default for Net {
    fn default() -> Net {
        Net {
            latency_ms: 20,
            jitter_ms: 10,
        }
    }
}

/// The hub's settings in the simulation (short enough to reach in a few steps).
pub fn config() -> HubConfig {
    HubConfig {
        public_url: "http://127.0.0.1:8080".into(),
        grace_period_seconds: 30,
        visitor_silence_ms: 60_000,
        agent_silence_ms: 180_000,
        ice: Default::default(),
    }
}

/// Which way a frame travels, and what it is.
#[derive(Debug)]
enum Packet {
    /// A tab's socket opened (the tab may now say hello).
    Open {
        tab: usize,
        conn: ConnId,
    },
    ToTab {
        tab: usize,
        conn: ConnId,
        text: String,
    },
    /// The server closed the tab's socket.
    TabClosed {
        tab: usize,
        conn: ConnId,
    },
    /// A frame from a tab to the server.
    FromTab {
        conn: ConnId,
        text: String,
    },
    /// The tab's socket is gone, as the server notices it.
    TabGone {
        conn: ConnId,
    },
    ToAgent {
        agent: usize,
        text: String,
    },
    AgentClosed {
        agent: usize,
    },
    FromAgent {
        conn: ConnId,
        msg: AgentMessage,
    },
}

/// One browser tab with the SDK.
pub struct Tab {
    pub client: VisitorClient,
    /// The socket the client has open (or is opening).
    pub conn: Option<ConnId>,
    /// What the SDK stored (localStorage and sessionStorage).
    pub stored: StoredIds,
    /// Every event the SDK told the page, oldest first.
    pub events: Vec<ClientEvent>,
    /// Every frame the server sent to this tab, decoded as JSON.
    pub frames: Vec<Value>,
    /// Remote actions the page applied.
    pub applied: Vec<RemoteAction>,
    /// Agents' laser and ink the page drew (the SDK's drawing layer gets these).
    pub inks: Vec<covisit::core::client::DrawCommand>,
    /// Whether the page's capture runs (between the client's Start and Stop).
    pub capturing: bool,
    /// The page answers remote actions by itself (a real page always does).
    pub answers_remote: bool,
    /// The network swallows what the tab sends (a half-open connection).
    pub muted: bool,
    /// The tab is gone (browser killed): its client no longer runs.
    pub dead: bool,
    /// Asset requests the client passed to the page (id, url).
    pub asset_asks: Vec<(u32, String)>,
}

/// An agent's console, reduced to what it sends and receives.
pub struct AgentSim {
    pub conn: ConnId,
    pub agent: Agent,
    /// Every frame received, decoded as JSON.
    pub frames: Vec<Value>,
    pub open: bool,
    /// Whether the stand-in keeps its socket alive with heartbeats.
    pub heartbeats: bool,
    next_heartbeat: Millis,
}

/// What the hub asked the store to keep, by record.
#[derive(Default)]
pub struct SimStore {
    pub visitors: HashMap<String, Visitor>,
    pub secret_hashes: HashMap<String, String>,
    /// uniqueConnectionId → the visitor it belongs to.
    pub connections: HashMap<String, String>,
    pub sessions: HashMap<String, (Session, String)>,
    pub audit: Vec<(String, String, String)>,
    pub writes: usize,
}

impl SimStore {
    fn apply(&mut self, write: Write) {
        self.writes += 1;
        match write {
            Write::Visitor(_, v) => {
                self.visitors.insert(v.short_id.clone(), *v);
            }
            Write::VisitorSecret(short_id, hash) => {
                self.secret_hashes.insert(short_id, hash);
            }
            Write::Connection(visitor, c) => {
                self.connections
                    .insert(c.unique_connection_id.clone(), visitor);
            }
            Write::Session(_, s, status) => {
                self.sessions.insert(s.id.clone(), (*s, status));
            }
            Write::Audit(a) => self.audit.push((a.actor, a.action, a.result)),
            Write::SessionAgent(..)
            | Write::Note(..)
            | Write::Communication(..)
            | Write::JourneySession(..)
            | Write::JourneyEvent(..)
            | Write::ReleaseLookupCode(..)
            | Write::RecordingStart(..)
            | Write::RecordingChunk(..)
            | Write::RecordingEnd(..) => {}
        }
    }
}

/// Which party a socket of the hub belongs to, as the shell knows it.
enum Peer {
    /// A tab's socket, before (`false`) and after (`true`) its hello was taken.
    Tab {
        tab: usize,
        welcomed: bool,
    },
    Agent {
        agent: usize,
    },
}

pub struct Sim {
    pub now: Millis,
    pub hub: Hub,
    pub net: Net,
    pub tabs: Vec<Tab>,
    pub agents: Vec<AgentSim>,
    pub store: SimStore,
    in_flight: BTreeMap<(Millis, u64), Packet>,
    /// The latest delivery time per (socket, direction): frames on one socket keep order.
    last_delivery: HashMap<(ConnId, bool), Millis>,
    peers: HashMap<ConnId, Peer>,
    seq: u64,
    next_conn: ConnId,
    rng: StdRng,
    /// Steps taken, for the bound.
    pub steps: usize,
    /// The pages' answers to asset requests, as the hub handed them out.
    pub asset_replies: Vec<(u32, covisit::core::protocol::AssetReply)>,
}

impl Sim {
    /// A hub seeded with `seed` (ids, jitter and the clients' reconnect jitter too).
    pub fn new(seed: u64, net: Net) -> Sim {
        Sim {
            now: T0,
            hub: Hub::new(config(), Ids::seeded(seed)),
            net,
            tabs: Vec::new(),
            agents: Vec::new(),
            store: SimStore::default(),
            in_flight: BTreeMap::new(),
            last_delivery: HashMap::new(),
            peers: HashMap::new(),
            seq: 0,
            next_conn: 1,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            steps: 0,
            asset_replies: Vec::new(),
        }
    }

    // ----- parties -----------------------------------------------------------------------

    /// A new tab with the SDK started with `config` (its `apiKey` and `server` are
    /// filled in), of a visitor seen before when `stored` says so.
    pub fn open_tab(&mut self, config: Value, stored: StoredIds) -> usize {
        let mut config = config;
        config["apiKey"] = json!("pk_demo");
        config["server"] = json!("http://127.0.0.1:8080");
        let page = PageInfo {
            url: Some("http://127.0.0.1:8080/shop".into()),
            screen_width: 1280,
            screen_height: 800,
            has_focus: true,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0".into()),
            call_token: None,
            audio_supported: true,
            integration: None,
            missing: Vec::new(),
        };
        let seed = self.rng.gen();
        let client = VisitorClient::new(&config.into(), page, stored.clone(), seed)
            .expect("the simulation's configs are valid");
        self.tabs.push(Tab {
            client,
            conn: None,
            stored,
            events: Vec::new(),
            frames: Vec::new(),
            applied: Vec::new(),
            inks: Vec::new(),
            capturing: false,
            answers_remote: true,
            muted: false,
            dead: false,
            asset_asks: Vec::new(),
        });
        let tab = self.tabs.len() - 1;
        self.pump();
        tab
    }

    /// An agent console of the account signs in (the shell proved who it is).
    pub fn connect_agent(&mut self, name: &str) -> usize {
        self.connect_agent_as(name, false)
    }

    /// An agent that may join any session (a supervisor) when `may_join_any`.
    pub fn connect_agent_as(&mut self, name: &str, may_join_any: bool) -> usize {
        let conn = self.conn_id();
        let index = self.agents.len();
        let agent = Agent {
            agent_nickname: name.into(),
            email: Some(format!("{}@example.test", name.to_lowercase())),
            external_id: None,
            id: format!("u_{}", name.to_lowercase()),
            name: name.into(),
            on_premise: true,
        };
        self.agents.push(AgentSim {
            conn,
            agent: agent.clone(),
            frames: Vec::new(),
            open: true,
            heartbeats: true,
            next_heartbeat: Millis(self.now.0 + AGENT_HEARTBEAT_MS),
        });
        self.peers.insert(conn, Peer::Agent { agent: index });
        self.hub.handle_agent_connect(
            self.now,
            conn,
            AgentIdentity {
                account_id: ACCOUNT,
                agent,
                ip: "10.0.0.7".into(),
                user_id: Some(format!("u_{}", name.to_lowercase())),
                auth_session: Some(format!("as_{index}")),
                api_key: None,
                may_join_any,
            },
        );
        self.pump();
        index
    }

    /// The agent sends `msg` (it arrives after the network's delay).
    pub fn agent_send(&mut self, agent: usize, msg: AgentMessage) {
        let conn = self.agents[agent].conn;
        if !self.agents[agent].open {
            return;
        }
        self.post(conn, true, Packet::FromAgent { conn, msg });
    }

    /// The network drops the tab's socket: the page notices at once, the server after
    /// the network's delay (as a TCP reset reaches it).
    pub fn drop_socket(&mut self, tab: usize) {
        if let Some(conn) = self.tabs[tab].conn.take() {
            self.tabs[tab].client.handle_socket_close(self.now);
            self.post(conn, true, Packet::TabGone { conn });
            self.pump();
        }
    }

    /// The browser is killed: the socket drops and nothing of the tab runs any more
    /// (no goodbye reaches the server).
    pub fn kill_tab(&mut self, tab: usize) {
        self.drop_socket(tab);
        self.tabs[tab].dead = true;
    }

    /// From now on (until unmuted) the network swallows everything the tab sends, while
    /// the tab still hears the server: a half-open connection.
    pub fn mute(&mut self, tab: usize, muted: bool) {
        self.tabs[tab].muted = muted;
    }

    /// A hostile or broken page sends `text` on the tab's socket, bypassing the SDK.
    pub fn inject(&mut self, tab: usize, text: &str) {
        if let Some(conn) = self.tabs[tab].conn {
            let text = text.to_string();
            self.post(conn, true, Packet::FromTab { conn, text });
        }
    }

    /// The page calls an API method of the SDK (`f` gets the client).
    pub fn page<R>(&mut self, tab: usize, f: impl FnOnce(&mut VisitorClient) -> R) -> R {
        let r = f(&mut self.tabs[tab].client);
        self.pump();
        r
    }

    /// The page's capture sends a batch of mirror records (if the client lets it).
    pub fn capture(&mut self, tab: usize, records: Value) -> bool {
        let batch = records.to_string();
        self.page(tab, |c| c.mirror(&batch))
    }

    // ----- reading what happened ------------------------------------------------------

    pub fn short_id(&self, tab: usize) -> String {
        self.tabs[tab]
            .stored
            .short_id
            .clone()
            .expect("the tab was welcomed")
    }

    pub fn connection_id(&self, tab: usize) -> String {
        self.tabs[tab]
            .stored
            .connection_id
            .clone()
            .expect("the tab was welcomed")
    }

    /// How many frames of `kind` the agent received so far.
    pub fn agent_count(&self, agent: usize, kind: &str) -> usize {
        self.agents[agent]
            .frames
            .iter()
            .filter(|f| f["type"] == kind)
            .count()
    }

    /// The agent's frames of `kind` received since it had `from` frames.
    pub fn agent_frames_since(&self, agent: usize, from: usize, kind: &str) -> Vec<Value> {
        self.agents[agent].frames[from..]
            .iter()
            .filter(|f| f["type"] == kind)
            .cloned()
            .collect()
    }

    /// The visitor records the agent received since it had `from` frames: each
    /// `visitor_update`'s and every one of each `visitor_updates`, in arrival order.
    pub fn visitor_views_since(&self, agent: usize, from: usize) -> Vec<Value> {
        let mut views = Vec::new();
        for f in &self.agents[agent].frames[from..] {
            if f["type"] == "visitor_update" {
                views.push(f["visitor"].clone());
            } else if f["type"] == "visitor_updates" {
                views.extend(f["visitors"].as_array().into_iter().flatten().cloned());
            }
        }
        views
    }

    /// The session id of the latest `session_update` the agent got for the tab's visitor.
    pub fn session_of(&self, agent: usize, tab: usize) -> Option<String> {
        let short_id = self.short_id(tab);
        self.agents[agent]
            .frames
            .iter()
            .rev()
            .find(|f| f["type"] == "session_update" && f["session"]["visitor_id"] == short_id)
            .and_then(|f| f["session"]["id"].as_str().map(str::to_string))
    }

    // ----- driving -------------------------------------------------------------------

    /// The earliest moment anything is due: a frame arriving, a hub timer, a client
    /// timer, an agent's heartbeat.
    fn next_deadline(&self) -> Option<Millis> {
        let flights = self.in_flight.keys().next().map(|(at, _)| *at);
        let clients = self
            .tabs
            .iter()
            .filter(|t| !t.dead)
            .filter_map(|t| t.client.poll_timeout());
        let agents = self
            .agents
            .iter()
            .filter(|a| a.open && a.heartbeats)
            .map(|a| a.next_heartbeat);
        flights
            .into_iter()
            .chain(self.hub.poll_timeout())
            .chain(clients)
            .chain(agents)
            .min()
    }

    /// Advances to the next deadline (never past `limit`) and handles everything due.
    /// False when nothing is due before `limit` (time then stands at `limit`).
    pub fn step(&mut self, limit: Millis) -> bool {
        self.steps += 1;
        assert!(self.steps < MAX_STEPS, "the simulation does not settle");
        let Some(at) = self.next_deadline().filter(|at| *at <= limit) else {
            self.now = self.now.max(limit);
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let packet = entry.remove();
            self.deliver(packet);
            self.pump();
        }
        if self.hub.poll_timeout().is_some_and(|t| t <= now) {
            self.hub.handle_timeout(now);
        }
        for tab in 0..self.tabs.len() {
            if self.tabs[tab].dead {
                continue;
            }
            if self.tabs[tab]
                .client
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.tabs[tab].client.handle_timeout(now);
            }
        }
        for agent in 0..self.agents.len() {
            let a = &mut self.agents[agent];
            if a.open && a.heartbeats && a.next_heartbeat <= now {
                a.next_heartbeat = Millis(now.0 + AGENT_HEARTBEAT_MS);
                self.agent_send(agent, AgentMessage::Heartbeat);
            }
        }
        self.pump();
        true
    }

    /// Runs until `done` holds (checked after every step), at most `ms` of simulated
    /// time. True when it held.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let limit = Millis(self.now.0 + ms);
        loop {
            if done(self) {
                return true;
            }
            if !self.step(limit) {
                return done(self);
            }
        }
    }

    /// Runs for `ms` of simulated time: everything due in it happens.
    pub fn run_for(&mut self, ms: u64) {
        let limit = Millis(self.now.0 + ms);
        while self.step(limit) {}
    }

    /// Runs until no frame is in flight and nothing is due within `ms`: the world is
    /// quiet, so whatever was going to be sent has been.
    pub fn settle(&mut self) {
        self.run_for(2 * (self.net.latency_ms + self.net.jitter_ms) + 1);
    }

    // ----- the plumbing ----------------------------------------------------------------

    fn conn_id(&mut self) -> ConnId {
        self.next_conn += 1;
        self.next_conn
    }

    /// Puts a packet on the wire of socket `conn` in one direction (`up`: to the
    /// server), arriving after latency and jitter, never before an earlier one.
    fn post(&mut self, conn: ConnId, up: bool, packet: Packet) {
        let jitter = if self.net.jitter_ms > 0 {
            self.rng.gen_range(0..=self.net.jitter_ms)
        } else {
            0
        };
        let mut at = Millis(self.now.0 + self.net.latency_ms + jitter);
        let last = self.last_delivery.entry((conn, up)).or_insert(at);
        at = at.max(*last);
        *last = at;
        self.seq += 1;
        self.in_flight.insert((at, self.seq), packet);
    }

    fn deliver(&mut self, packet: Packet) {
        let now = self.now;
        match packet {
            Packet::Open { tab, conn } => {
                if self.tabs[tab].conn == Some(conn) {
                    self.tabs[tab].client.handle_socket_open(now);
                }
            }
            Packet::ToTab { tab, conn, text } => {
                if self.tabs[tab].conn == Some(conn) {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        self.tabs[tab].frames.push(v);
                    }
                    self.tabs[tab].client.handle_frame(now, &text);
                }
            }
            Packet::TabClosed { tab, conn } => {
                if self.tabs[tab].conn == Some(conn) {
                    self.tabs[tab].conn = None;
                    self.tabs[tab].client.handle_socket_close(now);
                }
            }
            Packet::FromTab { conn, text } => self.shell_visitor_frame(conn, &text),
            Packet::TabGone { conn } => {
                if self.peers.remove(&conn).is_some() {
                    self.hub.handle_visitor_disconnect(now, conn);
                }
            }
            Packet::ToAgent { agent, text } => {
                if self.agents[agent].open {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        self.agents[agent].frames.push(v);
                    }
                }
            }
            Packet::AgentClosed { agent } => self.agents[agent].open = false,
            Packet::FromAgent { conn, msg } => {
                if self.peers.contains_key(&conn) {
                    self.hub.handle_agent_frame(now, conn, msg);
                }
            }
        }
    }

    /// What `ws.rs` does with a tab's frame: the hello first, then messages.
    fn shell_visitor_frame(&mut self, conn: ConnId, text: &str) {
        let now = self.now;
        let Some(Peer::Tab { tab, welcomed }) = self.peers.get(&conn) else {
            return;
        };
        let (tab, welcomed) = (*tab, *welcomed);
        if self.tabs[tab].muted {
            return;
        }
        if !welcomed {
            let refused = match decode::<VisitorMessage>(text) {
                Ok(VisitorMessage::Hello {
                    api_key,
                    short_id,
                    visitor_secret,
                    connection,
                    config,
                    ..
                }) => {
                    let hello = self.visitor_hello(api_key, short_id, visitor_secret, connection);
                    let hello = VisitorHello {
                        config: config.into(),
                        ..hello
                    };
                    match self.hub.handle_visitor_connect(now, conn, hello) {
                        Ok(_) => None,
                        Err(e) => Some((e.code().to_string(), e.message())),
                    }
                }
                Ok(_) => Some((
                    "hello_required".into(),
                    "the first frame must be a hello".into(),
                )),
                Err(e) => Some((e.code().to_string(), e.to_string())),
            };
            match refused {
                None => {
                    self.peers.insert(
                        conn,
                        Peer::Tab {
                            tab,
                            welcomed: true,
                        },
                    );
                }
                Some((code, message)) => {
                    self.hub.handle_visitor_disconnect(now, conn);
                    self.peers.remove(&conn);
                    let frame = encode(&ServerToVisitor::Error(ErrorFrame { code, message }));
                    self.post(
                        conn,
                        false,
                        Packet::ToTab {
                            tab,
                            conn,
                            text: frame,
                        },
                    );
                    self.post(conn, false, Packet::TabClosed { tab, conn });
                }
            }
            return;
        }
        match decode::<VisitorMessage>(text) {
            // Journey tracking and personal links are the shell's (and the store's).
            Ok(VisitorMessage::Track { .. } | VisitorMessage::CallLink { .. }) => {
                self.hub.handle_heard(now, conn);
            }
            Ok(msg) => self.hub.handle_visitor_frame(now, conn, msg),
            Err(e) => {
                self.hub.handle_heard(now, conn);
                let frame = protocol_error_frame(&e);
                self.post(
                    conn,
                    false,
                    Packet::ToTab {
                        tab,
                        conn,
                        text: frame,
                    },
                );
            }
        }
    }

    /// The hello as the shell completes it from the store (what `ws.rs` looks up).
    fn visitor_hello(
        &self,
        api_key: String,
        short_id: Option<String>,
        visitor_secret: Option<String>,
        connection: covisit::core::protocol::ConnectionHello,
    ) -> VisitorHello {
        let in_memory = short_id
            .as_deref()
            .is_some_and(|s| self.hub.is_known_visitor(ACCOUNT, s));
        let stored = match short_id.as_deref() {
            Some(s) if !in_memory => self
                .store
                .visitors
                .get(s)
                .map(|v| (v.clone(), self.store.secret_hashes.get(s).cloned())),
            _ => None,
        };
        let connection_owner = connection
            .unique_connection_id
            .as_deref()
            .and_then(|c| self.store.connections.get(c).cloned());
        VisitorHello {
            account_id: ACCOUNT,
            api_key,
            short_id,
            visitor_secret,
            stored,
            connection_owner,
            connection,
            config: Value::Null,
            ip: "203.0.113.9".into(),
            location: None,
            lookup_code: None,
            lookup_code_for: None,
            record_sessions: false,
        }
    }

    /// Drains the hub's and the clients' outputs until both are quiet (bounded: each
    /// round handles what the previous one produced).
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut busy = false;
            while let Some(o) = self.hub.poll_output() {
                busy = true;
                self.hub_output(o);
            }
            for tab in 0..self.tabs.len() {
                if self.tabs[tab].dead {
                    continue;
                }
                while let Some(o) = self.tabs[tab].client.poll_output() {
                    busy = true;
                    self.client_output(tab, o);
                }
            }
            if !busy {
                return;
            }
        }
        panic!("outputs keep coming: a feedback loop between the parties");
    }

    fn hub_output(&mut self, o: Output) {
        match o {
            // The simulated store commits at once: durable frames need not wait.
            Output::Persist(w) => self.store.apply(w),
            // One node: nobody to tell. Recordings are the store's to finalise.
            Output::Publish(_) | Output::PublishNow(_) | Output::RecordingEnded(_) => {}
            Output::Asset { id, reply } => self.asset_replies.push((id, reply)),
            Output::Send { conn, frame, .. } => match self.peers.get(&conn) {
                Some(Peer::Tab { tab, .. }) => {
                    let tab = *tab;
                    let text = frame.as_str().to_string();
                    self.post(conn, false, Packet::ToTab { tab, conn, text });
                }
                Some(Peer::Agent { agent }) => {
                    let agent = *agent;
                    let text = frame.as_str().to_string();
                    self.post(conn, false, Packet::ToAgent { agent, text });
                }
                None => {}
            },
            Output::Close { conn, .. } => match self.peers.remove(&conn) {
                Some(Peer::Tab { tab, .. }) => {
                    self.post(conn, false, Packet::TabClosed { tab, conn });
                    self.hub.handle_visitor_disconnect(self.now, conn);
                }
                Some(Peer::Agent { agent }) => {
                    self.post(conn, false, Packet::AgentClosed { agent });
                    self.hub.handle_agent_disconnect(self.now, conn);
                }
                None => {}
            },
        }
    }

    fn client_output(&mut self, tab: usize, o: ClientOutput) {
        match o {
            ClientOutput::Connect { .. } => {
                if let Some(old) = self.tabs[tab].conn.take() {
                    self.post(old, true, Packet::TabGone { conn: old });
                }
                let conn = self.conn_id();
                self.tabs[tab].conn = Some(conn);
                self.peers.insert(
                    conn,
                    Peer::Tab {
                        tab,
                        welcomed: false,
                    },
                );
                self.post(conn, false, Packet::Open { tab, conn });
            }
            ClientOutput::Transmit(text) => {
                if let Some(conn) = self.tabs[tab].conn {
                    self.post(conn, true, Packet::FromTab { conn, text });
                }
            }
            ClientOutput::Close => {
                if let Some(conn) = self.tabs[tab].conn.take() {
                    self.post(conn, true, Packet::TabGone { conn });
                }
            }
            ClientOutput::Persist {
                short_id,
                visitor_secret,
                unique_connection_id,
            } => {
                let stored = &mut self.tabs[tab].stored;
                stored.short_id = Some(short_id);
                if visitor_secret.is_some() {
                    stored.visitor_secret = visitor_secret;
                }
                stored.connection_id = Some(unique_connection_id);
            }
            ClientOutput::Event(e) => self.tabs[tab].events.push(e),
            ClientOutput::Draw(ink) => self.tabs[tab].inks.push(ink),
            // The simulated pages share no console (allowRemoteConsole is off).
            ClientOutput::Console(_) => {}
            ClientOutput::Mirror(command) => self.page_mirror(tab, command),
            // The simulated pages make no calls.
            ClientOutput::Call(_) => {}
        }
    }

    /// The page's side of co-browsing: a snapshot when capture starts, remote actions
    /// applied and answered.
    fn page_mirror(&mut self, tab: usize, command: MirrorCommand) {
        match command {
            MirrorCommand::Start => {
                self.tabs[tab].capturing = true;
                let snapshot = json!([
                    ["S", 1, "http://127.0.0.1:8080/shop", 1280, 800, 1],
                    ["N", 1, 0, [0, "html"], [1, 0, "a page"]]
                ]);
                self.tabs[tab].client.mirror(&snapshot.to_string());
            }
            MirrorCommand::Stop => self.tabs[tab].capturing = false,
            MirrorCommand::Apply { id, action } => {
                let pointer = matches!(action, RemoteAction::Pointer { .. });
                self.tabs[tab].applied.push(action);
                if !pointer && self.tabs[tab].answers_remote {
                    self.tabs[tab].client.remote_applied(id, true, None);
                }
            }
            MirrorCommand::Control { .. } => {}
            MirrorCommand::Asset { id, url } => self.tabs[tab].asset_asks.push((id, url)),
        }
    }
}

fn protocol_error_frame(e: &ProtocolError) -> String {
    encode(&ServerToVisitor::Error(e.to_frame()))
}
