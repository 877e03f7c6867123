//! covisit on several nodes (docs/CLUSTER.md): who this node is, which node owns each
//! slot of visitors, and what crosses between nodes. Every visitor has one owner at a
//! time (`store::slot_of` of its id, and the slot table in PostgreSQL); any node takes
//! any socket or REST call and bridges it to the owner over the bus (`bus`); the owner
//! commits before anything announces the commit; a node that lost its membership is
//! fenced (its generation moved: PostgreSQL refuses its writes) and stops serving.
//!
//! This module is the shell around the hub for that: `membership` (registration,
//! heartbeats, the slot table, handovers, fencing, draining), `coordinator` (one look at a
//! time, by any node: declares nodes dead and assigns slots), `codes` (lookup codes reserved
//! across nodes), and here the routing of sockets, frames and calls.

mod codes;
mod coordinator;
mod membership;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use covisit::core::protocol::{decode, AgentMessage};
use deadpool_postgres::Pool;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::bus::{home_of, Bus, BusEvent, BusMsg, Call, NodeIdx, Received, To};
use crate::hub::{AgentIdentity, CloseReason, ConnId, Delivery, Slots};
use crate::hub_task::{ClusterLink, HubHandle, Out};
use crate::store::{slot_of, Fence, PgStore, Store, SLOTS};

pub use codes::LookupCodes;

/// The answer to a [`Call`]: a JSON value, or an error's (status, code, message).
pub type CallResult = Result<serde_json::Value, (u16, String, String)>;

/// How long a call to another node waits for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where this node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeState {
    Up = 0,
    /// Shutting down: handing its visitors over, taking no new ones.
    Draining = 1,
    /// Its membership was lost: it writes nothing and serves no visitor.
    Fenced = 2,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "ok",
            NodeState::Draining => "draining",
            NodeState::Fenced => "fenced",
        }
    }
}

/// A visitor's tab that another node holds, as the owner's session loop gets it: its
/// socket id (naming that node), what that node checked, its hello, and the frames that
/// follow (`None`: the socket closed).
pub struct BridgedVisitor {
    pub conn: ConnId,
    pub account_id: i64,
    pub ip: String,
    pub origin: Option<String>,
    pub hello: String,
    pub inbox: mpsc::UnboundedReceiver<Option<String>>,
}

/// What the composition root hands the cluster: how to run a bridged visitor's session
/// (the socket layer does) and how to carry out a call (REST does).
pub struct Handlers {
    pub bridged_visitor: Box<dyn Fn(BridgedVisitor) + Send + Sync>,
    pub call: Box<dyn Fn(Call) -> BoxFuture<'static, CallResult> + Send + Sync>,
}

/// The slot table as this node last read it.
#[derive(Debug, Clone, Default)]
struct Table {
    /// Slot → its owner, when that node is alive.
    owners: Vec<Option<NodeIdx>>,
    /// The nodes alive now.
    alive: Vec<NodeIdx>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ClusterStats {
    pub bridged_visitors: AtomicU64,
}

struct Inner {
    node: NodeIdx,
    generation: i64,
    pool: Pool,
    bus: Bus,
    state: AtomicU8,
    fenced: Arc<AtomicBool>,
    on_fenced: Arc<Notify>,
    /// The bus's connection to Redis dropped and is not back yet: nothing sent to
    /// another node now arrives.
    bus_down: AtomicBool,
    table: RwLock<Table>,
    hub: OnceLock<HubHandle>,
    store: OnceLock<Arc<dyn Store>>,
    handlers: OnceLock<Handlers>,
    /// Sockets this node holds for visitors another node owns: socket → owner.
    bridges: Mutex<HashMap<ConnId, NodeIdx>>,
    /// Bridged visitors this node owns: socket (on another node) → its session loop.
    virtuals: Mutex<HashMap<ConnId, mpsc::UnboundedSender<Option<String>>>>,
    /// Agent consoles this node holds: socket → who (told to every other node).
    local_agents: Mutex<HashMap<ConnId, AgentIdentity>>,
    /// Agent consoles other nodes hold that this node's hub knows.
    remote_agents: Mutex<HashMap<ConnId, AgentIdentity>>,
    calls: Mutex<HashMap<u64, oneshot::Sender<CallResult>>>,
    next_call: AtomicU64,
    drained: Notify,
    pub stats: ClusterStats,
}

/// A handle to this node's place in the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

impl Cluster {
    /// Joins the cluster: registers this node in PostgreSQL (a new number and
    /// generation), connects to the bus, and opens the store fenced by that generation.
    pub async fn join(
        database: &str,
        bus_url: &str,
        address: &str,
    ) -> Result<(Cluster, Arc<PgStore>), String> {
        let cannot = |e: crate::store::StoreError| {
            format!(
                "cannot open the PostgreSQL database {}: {e}",
                crate::store::redact_url(database)
            )
        };
        let bootstrap = PgStore::open(database, None).await.map_err(cannot)?;
        let (node, generation) = membership::register(bootstrap.pool(), address).await?;
        drop(bootstrap);
        let store = PgStore::open(
            database,
            Some(Fence {
                node_id: node.to_string(),
                generation,
            }),
        )
        .await
        .map_err(cannot)?;
        let store = Arc::new(store);
        let (bus, events) = Bus::connect(bus_url, "covisit", node).await?;
        let cluster = Cluster(Arc::new(Inner {
            node,
            generation,
            pool: store.pool().clone(),
            bus,
            state: AtomicU8::new(NodeState::Up as u8),
            fenced: Arc::new(AtomicBool::new(false)),
            on_fenced: Arc::new(Notify::new()),
            bus_down: AtomicBool::new(false),
            table: RwLock::new(Table {
                owners: vec![None; usize::from(SLOTS)],
                alive: Vec::new(),
            }),
            hub: OnceLock::new(),
            store: OnceLock::new(),
            handlers: OnceLock::new(),
            bridges: Mutex::default(),
            virtuals: Mutex::default(),
            local_agents: Mutex::default(),
            remote_agents: Mutex::default(),
            calls: Mutex::default(),
            next_call: AtomicU64::new(1),
            drained: Notify::new(),
            stats: ClusterStats::default(),
        }));
        tracing::info!(node, generation, "joined the cluster");
        cluster.spawn_dispatcher(events);
        Ok((cluster, store))
    }

    /// Waits (at most `within`) until the slot table this node read gives every slot a
    /// live owner, so that the first sockets it takes can be routed: a first node
    /// takes every slot on the coordinator's first look, a later one finds them owned.
    pub async fn settle(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let complete = {
                let t = self.0.table.read().unwrap_or_else(|p| p.into_inner());
                t.owners.iter().all(Option::is_some) && t.alive.contains(&self.0.node)
            };
            if complete {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("the slot table is not complete yet; serving anyway (visitors of unowned slots are asked to retry)");
                return;
            }
            membership::refresh_soon(self);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the hub's shell needs to run on this node.
    pub fn link(&self) -> ClusterLink {
        ClusterLink {
            bus: self.0.bus.clone(),
            node: self.0.node,
            fenced: self.0.fenced.clone(),
            on_fenced: self.0.on_fenced.clone(),
        }
    }

    /// Starts serving: the membership loop (heartbeats, the slot table, handovers), the
    /// coordinator's election, and tells the other nodes this one is here.
    pub fn start(&self, hub: HubHandle, store: Arc<dyn Store>, handlers: Handlers) {
        let _ = self.0.hub.set(hub);
        let _ = self.0.store.set(store);
        let _ = self.0.handlers.set(handlers);
        let hello = BusMsg::Hello {
            from: self.0.node,
            restored: false,
        };
        self.0.bus.send(To::All, &hello, "");
        tokio::spawn(membership::run(self.clone()));
        tokio::spawn(coordinator::run(self.clone()));
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.0.on_fenced.notified().await;
                me.fence("the store refused our writes").await;
            }
        });
    }

    pub fn node(&self) -> NodeIdx {
        self.0.node
    }

    pub fn state(&self) -> NodeState {
        match self.0.state.load(Ordering::Acquire) {
            0 => NodeState::Up,
            1 => NodeState::Draining,
            _ => NodeState::Fenced,
        }
    }

    fn hub(&self) -> Option<&HubHandle> {
        self.0.hub.get()
    }

    /// The bus (its shared counters, for `limits`).
    pub fn bus(&self) -> &Bus {
        &self.0.bus
    }

    /// This node's figures for `/metrics`.
    pub fn figures(&self, owned_visitors: u64) -> crate::metrics::NodeFigures {
        let b = &self.0.bus.stats;
        crate::metrics::NodeFigures {
            owned_visitors,
            bridged_sockets: self.0.stats.bridged_visitors.load(Ordering::Relaxed),
            fenced: self.state() == NodeState::Fenced,
            draining: self.state() == NodeState::Draining,
            bus_published: b.published.load(Ordering::Relaxed),
            bus_received: b.received.load(Ordering::Relaxed),
            bus_publish_failures: b.publish_failures.load(Ordering::Relaxed),
            bus_publish_micros: b.publish_micros.load(Ordering::Relaxed),
            bus_publish_batches: b.publish_batches.load(Ordering::Relaxed),
        }
    }

    /// Lookup codes reserved across the cluster.
    pub fn codes(&self) -> LookupCodes {
        LookupCodes::new(self.0.pool.clone(), self.0.node)
    }

    // ----- routing ---------------------------------------------------------------------

    /// The slots this node owns, as it last read the table.
    fn owned_slots(&self) -> Slots {
        let t = self.0.table.read().unwrap_or_else(|p| p.into_inner());
        (0..SLOTS)
            .filter(|s| t.owners.get(usize::from(*s)).copied().flatten() == Some(self.0.node))
            .collect()
    }

    /// The live node that owns `slot`, if any.
    pub fn owner_of(&self, slot: u16) -> Option<NodeIdx> {
        if self.state() == NodeState::Fenced {
            return None; // its table is stale, and it serves no more
        }
        let t = self.0.table.read().unwrap_or_else(|p| p.into_inner());
        t.owners.get(usize::from(slot)).copied().flatten()
    }

    /// Where a visitor's hello goes: the owner of the visitor it names, or, for a new
    /// visitor, this node if it owns slots (it mints an id in them), else the owner of
    /// some slot. `None`: nobody can take it now (the table is being rebuilt).
    pub fn visitor_owner(&self, claimed: Option<&str>) -> Option<NodeIdx> {
        if self.state() == NodeState::Fenced {
            return None;
        }
        if let Some(id) = claimed.filter(|id| covisit::core::ids::valid_id(id)) {
            return self.owner_of(slot_of(id));
        }
        let t = self.0.table.read().unwrap_or_else(|p| p.into_inner());
        let mine = t.owners.iter().any(|o| *o == Some(self.0.node));
        if mine && self.state() == NodeState::Up {
            return Some(self.0.node);
        }
        // Spread new visitors: the owner of a slot drawn from the clock's low bits.
        let start = (crate::clock::now().0 % u64::from(SLOTS)) as usize;
        (0..t.owners.len())
            .map(|i| t.owners[(start + i) % t.owners.len()])
            .find_map(|o| o)
    }

    /// Where an agent's frame goes: the owner of the visitor or session it is about
    /// (None: this node handles it: heartbeats, searches, watches, the hello).
    pub fn agent_frame_owner(&self, msg: &AgentMessage) -> Option<NodeIdx> {
        let slot = match msg {
            AgentMessage::RequestSession { short_id, .. } => slot_of(short_id),
            AgentMessage::JoinSession { session_id }
            | AgentMessage::EndSession { session_id }
            | AgentMessage::LeaveSession { session_id }
            | AgentMessage::Note { session_id, .. }
            | AgentMessage::RequestControl { session_id }
            | AgentMessage::ReleaseControl { session_id }
            | AgentMessage::RemoteAction { session_id, .. }
            | AgentMessage::MirrorResync { session_id }
            | AgentMessage::Draw { session_id, .. }
            | AgentMessage::SetActiveConnection { session_id, .. }
            | AgentMessage::Call { session_id, .. } => slot_of(session_id),
            _ => return None,
        };
        self.owner_of(slot).filter(|o| *o != self.0.node)
    }

    /// Sends an agent's frame (its text) to the node that owns what it is about.
    pub fn forward_agent_frame(&self, owner: NodeIdx, conn: ConnId, text: &str) {
        self.0
            .bus
            .send(To::Node(owner), &BusMsg::AgentText { conn }, text);
    }

    // ----- bridged visitor tabs (on the node holding the socket) ------------------------

    /// A visitor tab connected here but belongs to `owner`: its hello goes there and
    /// its socket `conn` is bridged until it closes ([`Cluster::bridge_closed`]).
    pub fn open_bridge(
        &self,
        owner: NodeIdx,
        conn: ConnId,
        account_id: i64,
        ip: String,
        origin: Option<String>,
        hello: &str,
    ) {
        self.lock_bridges().insert(conn, owner);
        self.0
            .stats
            .bridged_visitors
            .fetch_add(1, Ordering::Relaxed);
        self.0.bus.send(
            To::Node(owner),
            &BusMsg::VisitorOpen {
                conn,
                account_id,
                ip,
                origin,
            },
            hello,
        );
    }

    /// A frame of a bridged tab, for its owner.
    pub fn bridge_text(&self, owner: NodeIdx, conn: ConnId, text: &str) {
        self.0
            .bus
            .send(To::Node(owner), &BusMsg::VisitorText { conn }, text);
    }

    /// A bridged tab's socket closed.
    pub fn bridge_closed(&self, conn: ConnId) {
        if let Some(owner) = self.lock_bridges().remove(&conn) {
            self.0
                .stats
                .bridged_visitors
                .fetch_sub(1, Ordering::Relaxed);
            self.0
                .bus
                .send(To::Node(owner), &BusMsg::VisitorGone { conn }, "");
        }
    }

    fn lock_bridges(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, NodeIdx>> {
        self.0.bridges.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ----- bridged visitor tabs (on the owner) -------------------------------------------

    /// The owner's side of a bridged tab: frames for it go to the node holding it.
    pub fn send_to_bridged(&self, conn: ConnId, text: &str) {
        self.0.bus.send(
            To::Node(home_of(conn)),
            &BusMsg::Deliver {
                conn,
                from: self.0.node,
                relay: None,
            },
            text,
        );
    }

    /// Closes a bridged tab's socket (where it is held).
    pub fn close_bridged(&self, conn: ConnId, code: u16, reason: &str) {
        self.0.bus.send(
            To::Node(home_of(conn)),
            &BusMsg::CloseWith {
                conn,
                code,
                reason: reason.to_string(),
            },
            "",
        );
    }

    /// The owner's session loop of a bridged tab ended.
    pub fn bridged_done(&self, conn: ConnId) {
        self.lock_virtuals().remove(&conn);
    }

    fn lock_virtuals(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ConnId, mpsc::UnboundedSender<Option<String>>>> {
        self.0.virtuals.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ----- agents --------------------------------------------------------------------

    /// An agent console said hello here: every other node's hub learns of it (so that
    /// the sessions they own reach it).
    pub fn agent_online(&self, conn: ConnId, who: &AgentIdentity) {
        self.lock_local_agents().insert(conn, who.clone());
        let alive = self.alive_nodes();
        for node in alive.into_iter().filter(|n| *n != self.0.node) {
            self.0.bus.send(
                To::Node(node),
                &BusMsg::AgentOnline {
                    conn,
                    who: who.clone(),
                },
                "",
            );
        }
    }

    /// That console's socket closed.
    pub fn agent_offline(&self, conn: ConnId) {
        if self.lock_local_agents().remove(&conn).is_some() {
            for node in self.alive_nodes().into_iter().filter(|n| *n != self.0.node) {
                self.0
                    .bus
                    .send(To::Node(node), &BusMsg::AgentGone { conn }, "");
            }
        }
    }

    fn lock_local_agents(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, AgentIdentity>> {
        self.0
            .local_agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_remote_agents(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, AgentIdentity>> {
        self.0
            .remote_agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Every node's sockets of this user close (disabled, role changed).
    pub fn close_user(&self, user_id: &str) {
        self.0.bus.send(
            To::All,
            &BusMsg::CloseUser {
                user_id: user_id.to_string(),
            },
            "",
        );
    }

    /// Every node's sockets opened with this key close (revoked).
    pub fn close_key(&self, account_id: i64, public_key: &str) {
        self.0.bus.send(
            To::All,
            &BusMsg::CloseKey {
                account_id,
                public_key: public_key.to_string(),
            },
            "",
        );
    }

    /// Every node's sockets of this sign-in session close (signed out).
    pub fn close_auth_session(&self, session: &str) {
        self.0.bus.send(
            To::All,
            &BusMsg::CloseAuthSession {
                session: session.to_string(),
            },
            "",
        );
    }

    fn alive_nodes(&self) -> Vec<NodeIdx> {
        let t = self.0.table.read().unwrap_or_else(|p| p.into_inner());
        t.alive.clone()
    }

    // ----- calls ---------------------------------------------------------------------

    /// Runs `call` on `owner` (a REST write about a visitor or session another node
    /// owns) and waits for its answer, at most [`CALL_TIMEOUT`].
    pub async fn call(&self, owner: NodeIdx, call: Call) -> CallResult {
        let id = self.0.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.0
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.0.bus.send(
            To::Node(owner),
            &BusMsg::Call {
                id,
                from: self.0.node,
                call,
            },
            "",
        );
        let unavailable = || {
            (
                503,
                covisit::core::codes::ErrorCode::UNAVAILABLE
                    .as_str()
                    .to_string(),
                "the node that owns this visitor did not answer; retry".to_string(),
            )
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, rx).await;
        self.0
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match answer {
            Ok(Ok(r)) => r,
            _ => Err(unavailable()),
        }
    }

    // ----- what comes over the bus ---------------------------------------------------

    fn spawn_dispatcher(&self, mut events: mpsc::UnboundedReceiver<BusEvent>) {
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    BusEvent::Message(r) => {
                        me.0.bus
                            .stats
                            .receive_seconds
                            .observe(r.arrived.elapsed().as_secs_f64());
                        me.dispatch(*r)
                    }
                    BusEvent::Lost => me.bus_lost(),
                    BusEvent::Restored => me.bus_restored(),
                }
            }
        });
    }

    fn dispatch(&self, Received { msg, body, .. }: Received) {
        if self.state() == NodeState::Fenced {
            return;
        }
        let Some(hub) = self.hub() else { return };
        match msg {
            BusMsg::VisitorOpen {
                conn,
                account_id,
                ip,
                origin,
            } => {
                let (tx, inbox) = mpsc::unbounded_channel();
                self.lock_virtuals().insert(conn, tx);
                if let Some(h) = self.0.handlers.get() {
                    (h.bridged_visitor)(BridgedVisitor {
                        conn,
                        account_id,
                        ip,
                        origin,
                        hello: body,
                        inbox,
                    });
                }
            }
            BusMsg::VisitorText { conn } => {
                if let Some(tx) = self.lock_virtuals().get(&conn) {
                    let _ = tx.send(Some(body));
                }
            }
            BusMsg::VisitorGone { conn } => {
                if let Some(tx) = self.lock_virtuals().remove(&conn) {
                    let _ = tx.send(None);
                }
            }
            BusMsg::AgentText { conn } => match decode::<AgentMessage>(&body) {
                Ok(msg) => hub.agent_frame(conn, msg),
                Err(e) => tracing::debug!(error = %e, "bus: an agent frame that does not decode"),
            },
            BusMsg::Call { id, from, call } => {
                let Some(h) = self.0.handlers.get() else {
                    return;
                };
                let fut = (h.call)(call);
                let bus = self.0.bus.clone();
                tokio::spawn(async move {
                    let result = fut.await;
                    bus.send(To::Node(from), &BusMsg::Reply { id, result }, "");
                });
            }
            BusMsg::Deliver { conn, from, relay } => {
                let delivery = match relay {
                    Some((tab, snapshot)) => Delivery::Relay { tab, snapshot },
                    None => Delivery::Now,
                };
                hub.push(conn, Out::Text(body.into()), delivery, from);
            }
            BusMsg::Close { conn, reason } => {
                hub.push(conn, Out::Close(reason), Delivery::Now, home_of(conn));
            }
            BusMsg::CloseWith { conn, code, reason } => {
                hub.push(
                    conn,
                    Out::CloseWith(code, reason),
                    Delivery::Now,
                    home_of(conn),
                );
            }
            BusMsg::Lagged { conn } => hub.lagged(conn),
            BusMsg::Reply { id, result } => {
                if let Some(tx) = self
                    .0
                    .calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
                {
                    let _ = tx.send(result);
                }
            }
            BusMsg::AgentOnline { conn, who } => {
                if home_of(conn) != self.0.node {
                    self.lock_remote_agents().insert(conn, who.clone());
                    hub.register_remote(conn);
                    hub.remote_agent_connect(conn, who);
                }
            }
            BusMsg::AgentGone { conn } => {
                if self.lock_remote_agents().remove(&conn).is_some() {
                    hub.agent_gone(conn);
                }
            }
            BusMsg::Hello { from, restored } => {
                if from != self.0.node {
                    // What this node sent while `from` was cut off from Redis is lost
                    // (pub/sub keeps nothing): send it again now that it listens.
                    if restored {
                        hub.resend_after_bus_loss();
                    }
                    let agents: Vec<(ConnId, AgentIdentity)> = self
                        .lock_local_agents()
                        .iter()
                        .map(|(c, w)| (*c, w.clone()))
                        .collect();
                    for (conn, who) in agents {
                        self.0
                            .bus
                            .send(To::Node(from), &BusMsg::AgentOnline { conn, who }, "");
                    }
                }
            }
            BusMsg::CloseUser { user_id } => {
                let hub = hub.clone();
                tokio::spawn(async move { hub.close_user(&user_id).await });
            }
            BusMsg::CloseKey {
                account_id,
                public_key,
            } => {
                let hub = hub.clone();
                tokio::spawn(async move { hub.close_key(account_id, &public_key).await });
            }
            BusMsg::CloseAuthSession { session } => {
                let hub = hub.clone();
                tokio::spawn(async move { hub.close_auth_session(&session).await });
            }
            BusMsg::SlotsChanged => membership::refresh_soon(self),
            BusMsg::News(news) => hub.visitor_news(*news),
        }
    }

    /// Redis came back: what went over the bus meanwhile may be lost. Every node tells
    /// the others its agents again, republishes its visitors, sends its sessions'
    /// state to their agents again and asks for fresh snapshots; and asks the others to
    /// do the same, since what they sent before this node had subscribed again is lost
    /// too (the nodes do not reconnect at the same moment).
    /// Whether what this node sends another node arrives (false while the connection
    /// to Redis is down): a tab that needs a bridge, or an agent frame for another
    /// node's visitor, is refused meanwhile rather than silently lost.
    pub fn bus_up(&self) -> bool {
        !self.0.bus_down.load(Ordering::Acquire)
    }

    /// The connection to Redis dropped: what is sent now is lost. The tabs this node
    /// bridges to other owners close (1012; the SDK reconnects, and is taken again once
    /// the bus is back), so none of them types into a void.
    fn bus_lost(&self) {
        tracing::warn!("bus: connection to Redis lost; closing bridged tabs until it is back");
        self.0.bus_down.store(true, Ordering::Release);
        let bridged: Vec<ConnId> = self.lock_bridges().keys().copied().collect();
        self.close_to_reconnect(bridged);
    }

    /// Closes sockets this node holds with 1012 (`Moved`): their clients reconnect, to
    /// another node or here once it can serve them again.
    fn close_to_reconnect(&self, conns: Vec<ConnId>) {
        let Some(hub) = self.hub() else { return };
        for conn in conns {
            hub.push(
                conn,
                Out::Close(CloseReason::Moved),
                Delivery::Now,
                self.0.node,
            );
        }
    }

    fn bus_restored(&self) {
        tracing::info!("bus: connection to Redis restored; resending state");
        self.0.bus_down.store(false, Ordering::Release);
        let hello = BusMsg::Hello {
            from: self.0.node,
            restored: true,
        };
        self.0.bus.send(To::All, &hello, "");
        if let Some(hub) = self.hub() {
            hub.resend_after_bus_loss();
        }
    }

    // ----- fencing and draining --------------------------------------------------------

    /// This node lost its membership: it stops writing (the store refuses already),
    /// lets go of every visitor (their sockets close: the SDK reconnects elsewhere) and
    /// closes its agent consoles (they reconnect through the load balancer).
    pub async fn fence(&self, why: &str) {
        if self.0.state.swap(NodeState::Fenced as u8, Ordering::AcqRel) == NodeState::Fenced as u8 {
            return;
        }
        self.0.fenced.store(true, Ordering::Release);
        tracing::error!(
            why,
            "this node is fenced: it closes its sockets and serves no more"
        );
        if let Some(hub) = self.hub() {
            let all: Slots = (0..SLOTS).collect();
            hub.slots_lost(all).await;
            // Its agent consoles and the tabs it bridged reconnect elsewhere.
            let mut held: Vec<ConnId> = self.lock_local_agents().keys().copied().collect();
            held.extend(self.lock_bridges().keys().copied());
            self.close_to_reconnect(held);
        }
    }

    /// A planned shutdown: hand every slot over (idle visitors at once, those in live
    /// sessions when their session ends, the rest ended after `deadline`), then return.
    pub async fn drain(&self, deadline: Duration) {
        if self
            .0
            .state
            .compare_exchange(
                NodeState::Up as u8,
                NodeState::Draining as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return;
        }
        tracing::info!(
            ?deadline,
            "draining: handing visitors over to the other nodes"
        );
        if let Err(e) = membership::set_draining(self).await {
            tracing::warn!(error = %e, "cannot mark this node draining");
            return;
        }
        let started = tokio::time::Instant::now();
        let all_gone = async {
            loop {
                let owned = {
                    let t = self.0.table.read().unwrap_or_else(|p| p.into_inner());
                    t.owners.iter().any(|o| *o == Some(self.0.node))
                };
                if !owned {
                    return;
                }
                let late = started.elapsed() >= deadline;
                // Nobody to hand over to (the whole cluster is stopping): wait for the
                // live sessions up to the deadline, end what is left, and go.
                if !membership::others_up(self).await {
                    if let Some(hub) = self.hub() {
                        let mine = self.owned_slots();
                        if late || !hub.has_live_sessions_in(mine.clone()).await {
                            hub.end_live_sessions_in(mine).await;
                            hub.flush().await;
                            return;
                        }
                    }
                }
                membership::release_handovers(self, late).await;
                tokio::select! {
                    _ = self.0.drained.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        };
        // Bounded: after twice the deadline the node goes anyway (its slots move as a
        // failed node's would).
        let _ = tokio::time::timeout(deadline * 2 + Duration::from_secs(5), all_gone).await;
        membership::leave(self).await;
    }
}
