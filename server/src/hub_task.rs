//! The hub's I/O shell: one task owns the [`Hub`] (no lock), fed by the sockets and
//! REST through a channel, with one sleep re-armed on `poll_timeout`. It carries out
//! the hub's outputs: writes go to the ordered writer (group commit); a frame that
//! announces state waits until every write queued before it committed; a frame that
//! carries none (mirror data, pointer, acks, errors) goes at once unless frames queued
//! before it for the same socket still wait, so that a socket's frames keep the hub's
//! order. A frame whose writes the store refused is not sent: its socket is closed
//! (`CloseReason::NotStored`) and reconnects to what is stored.
//!
//! Each socket has a bounded queue. When a console falls behind: its relayed mirror
//! data is dropped (per visitor tab, until that tab starts a new snapshot, which the
//! hub asks for); when a frame that carries state finds a queue full, the socket is
//! closed (the console or the SDK reconnects and gets fresh state).
//!
//! On a node of several, a `ConnId` may name a socket another node holds (an agent's
//! console there): its frames go to that node over the bus, in the same order and after
//! the same commits; the hub's news about its visitors goes to the other nodes after
//! the writes before it, except news of a navigation (`Output::PublishNow`), which
//! goes at once unless earlier news about the same visitor still waits. A batch the
//! store refuses because this node was fenced is dropped with every frame waiting on
//! it, and the node is told (it stops serving).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use covisit::core::protocol::{AgentMessage, AssetReply, VisitorMessage};
use covisit::core::Millis;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::bus::{home_of, Bus, BusMsg, NodeIdx, To};
use crate::clock::now;
use crate::hub::{
    AgentIdentity, CloseReason, ConnId, Delivery, Frame, Hub, HubConfig, HubError, Ids, Output,
    VisitorHello, VisitorNews, Welcome,
};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, Write};

/// A frame (or a close) for one socket's writer.
#[derive(Debug)]
pub enum Out {
    Text(Frame),
    Close(CloseReason),
    /// Close with this WebSocket code and reason (a bridged tab's owner closed it).
    CloseWith(u16, String),
}

/// How many frames a visitor's / an agent's socket may have queued.
const VISITOR_QUEUE: usize = 512;
const AGENT_QUEUE: usize = 2048;

/// Where a socket's frames go.
#[derive(Clone)]
enum SinkTo {
    /// A socket of this node: its task's bounded queue.
    Local(mpsc::Sender<Out>),
    /// A socket another node holds: over the bus to that node (which applies the same
    /// queue policy), from this node.
    Remote { bus: Bus, me: NodeIdx },
}

/// A socket as the shell holds it.
#[derive(Clone)]
struct Sink {
    to: SinkTo,
    /// Frames of this socket queued in the writer (behind commits), not yet handed over.
    pending: Arc<AtomicUsize>,
    /// Wakes the socket's task to close at once (its queue overflowed).
    kill: Arc<Notify>,
    /// Visitor tabs (`Delivery::Relay`'s numbers) whose mirror data this console lost:
    /// dropped until the tab starts a new snapshot.
    lagging: Arc<std::sync::Mutex<HashSet<u64>>>,
}

/// What a socket task gets back when it registers.
pub struct SocketRx {
    pub rx: mpsc::Receiver<Out>,
    pub kill: Arc<Notify>,
}

type Call = Box<dyn FnOnce(&mut Hub, Millis) + Send>;

enum Command {
    Register(ConnId, Sink),
    VisitorConnect(
        ConnId,
        Box<VisitorHello>,
        oneshot::Sender<Result<Welcome, HubError>>,
    ),
    VisitorFrame(ConnId, VisitorMessage),
    VisitorGone(ConnId),
    AgentConnect(ConnId, Box<AgentIdentity>),
    AgentFrame(ConnId, AgentMessage),
    AgentGone(ConnId),
    Lagged(ConnId),
    Heard(ConnId),
    /// A socket another node holds (an agent's console there): frames for it go there.
    RegisterRemote(ConnId, Sink),
    /// A frame (or close) that another node's hub (`from`) sent to a socket of this node.
    Push(ConnId, Out, Delivery, NodeIdx),
    Call(Call),
}

/// An entry of the writer's ordered queue.
enum Job {
    Write(Write),
    /// The last field: how many batches the writer had finished when the hub step
    /// that queued it began (`Batches`): a frame queued before a failed batch finished
    /// may announce its writes, one queued after it cannot.
    Deliver(ConnId, Sink, Out, Delivery, u64),
    /// News for the other nodes, after the writes it tells of (counted in
    /// `NewsPending` until it is sent).
    Publish(Box<VisitorNews>),
    /// A recording's last writes committed: finalise it (`pending` → `ready`).
    FinishRecording(String),
    Flush(oneshot::Sender<bool>),
}

/// What the shell of a node of several needs: the bus, this node's number, and the
/// flag its writer raises when the store refused a batch because the node was fenced.
#[derive(Clone)]
pub struct ClusterLink {
    pub bus: Bus,
    pub node: NodeIdx,
    pub fenced: Arc<AtomicBool>,
    pub on_fenced: Arc<Notify>,
}

/// Per visitor (short id), how much of its news waits in the writer's queue: news
/// that announces no write goes at once only when none does, so that the other nodes
/// get a visitor's news in the hub's order. Like `Sink::pending` for a socket's frames.
type NewsPending = Arc<std::sync::Mutex<HashMap<String, usize>>>;

/// How many batches the writer has finished (committed or not).
type Batches = Arc<AtomicU64>;

/// Who waits for each asset request sent to a visitor's page (`Output::Asset`).
type AssetWaiters = Arc<std::sync::Mutex<HashMap<u32, mpsc::UnboundedSender<AssetReply>>>>;

/// The handle sockets and REST use. Cheap to clone.
#[derive(Clone)]
pub struct HubHandle {
    cmd: mpsc::UnboundedSender<Command>,
    jobs: mpsc::UnboundedSender<Job>,
    next_conn: Arc<AtomicU64>,
    link: Option<ClusterLink>,
    asset_waiters: AssetWaiters,
}

impl HubHandle {
    /// Starts the hub's task and the writer's. On a node of several (`link`), socket
    /// ids carry the node's number in their high bits (`bus::home_of`).
    pub fn start(
        store: Arc<dyn Store>,
        config: HubConfig,
        ids: Ids,
        metrics: Arc<Metrics>,
        link: Option<ClusterLink>,
    ) -> HubHandle {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let news_pending = NewsPending::default();
        let batches = Batches::default();
        let base = link
            .as_ref()
            .map_or(0, |l| u64::from(l.node) << crate::bus::CONN_BITS);
        let handle = HubHandle {
            cmd,
            jobs: jobs.clone(),
            next_conn: Arc::new(AtomicU64::new(base + 1)),
            link: link.clone(),
            asset_waiters: AssetWaiters::default(),
        };
        tokio::spawn(writer(
            store,
            jobs_rx,
            metrics.clone(),
            handle.cmd.clone(),
            link.clone(),
            news_pending.clone(),
            batches.clone(),
        ));
        tokio::spawn(run(
            Hub::new(config, ids),
            cmd_rx,
            jobs,
            metrics,
            handle.cmd.clone(),
            link,
            handle.asset_waiters.clone(),
            news_pending,
            batches,
        ));
        handle
    }

    fn command(&self, c: Command) {
        // The hub's task lives as long as the runtime; a failed send means shutdown.
        let _ = self.cmd.send(c);
    }

    /// A new socket: its id and the queue its task sends from.
    pub fn register(&self, agent: bool) -> (ConnId, SocketRx) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.register_as(conn, agent)
    }

    /// Registers socket `conn`, an id another node gave (a visitor's tab it holds for
    /// this node, the owner): the hub's frames for it come out of the queue returned.
    pub fn register_as(&self, conn: ConnId, agent: bool) -> (ConnId, SocketRx) {
        let (tx, rx) = mpsc::channel(if agent { AGENT_QUEUE } else { VISITOR_QUEUE });
        let kill = Arc::new(Notify::new());
        self.command(Command::Register(
            conn,
            Sink {
                to: SinkTo::Local(tx),
                pending: Arc::default(),
                kill: kill.clone(),
                lagging: Arc::default(),
            },
        ));
        (conn, SocketRx { rx, kill })
    }

    pub async fn visitor_connect(
        &self,
        conn: ConnId,
        hello: VisitorHello,
    ) -> Result<Welcome, HubError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::VisitorConnect(conn, Box::new(hello), tx));
        rx.await.unwrap_or(Err(HubError::UnknownConnection))
    }

    pub fn visitor_frame(&self, conn: ConnId, msg: VisitorMessage) {
        self.command(Command::VisitorFrame(conn, msg));
    }

    pub fn visitor_gone(&self, conn: ConnId) {
        self.command(Command::VisitorGone(conn));
    }

    pub fn agent_connect(&self, conn: ConnId, who: AgentIdentity) {
        self.command(Command::AgentConnect(conn, Box::new(who)));
    }

    pub fn agent_frame(&self, conn: ConnId, msg: AgentMessage) {
        self.command(Command::AgentFrame(conn, msg));
    }

    pub fn agent_gone(&self, conn: ConnId) {
        self.command(Command::AgentGone(conn));
    }

    /// A socket another node holds (`conn` names that node): the hub's frames for it go
    /// there over the bus.
    pub fn register_remote(&self, conn: ConnId) {
        let Some(link) = &self.link else { return };
        self.command(Command::RegisterRemote(
            conn,
            Sink {
                to: SinkTo::Remote {
                    bus: link.bus.clone(),
                    me: link.node,
                },
                pending: Arc::default(),
                kill: Arc::new(Notify::new()),
                lagging: Arc::default(),
            },
        ));
    }

    /// An agent console another node holds said hello: this hub sends it the frames of
    /// the sessions it owns.
    pub fn remote_agent_connect(&self, conn: ConnId, who: AgentIdentity) {
        self.call_detached(move |h, _| h.handle_remote_agent_connect(conn, who));
    }

    /// A console of another node lost mirror data this node sent it.
    pub fn lagged(&self, conn: ConnId) {
        self.command(Command::Lagged(conn));
    }

    /// News about a visitor another node owns.
    pub fn visitor_news(&self, news: VisitorNews) {
        self.call_detached(move |h, now| h.handle_visitor_news(now, news));
    }

    /// The slots this node owns now (`None`: all; a single node).
    pub fn set_owned_slots(&self, slots: Option<crate::hub::Slots>) {
        self.call_detached(move |h, _| h.set_owned_slots(slots));
    }

    /// This node no longer owns `slots`: their visitors are let go (sockets closed).
    pub async fn slots_lost(&self, slots: crate::hub::Slots) {
        let _ = self
            .call(move |h, now| h.handle_slots_lost(now, &slots))
            .await;
    }

    /// The nodes that owned `slots` failed: their visitors are offline here.
    pub fn shadows_lost(&self, slots: crate::hub::Slots) {
        self.call_detached(move |h, now| h.handle_shadows_lost(now, &slots));
    }

    pub async fn has_live_sessions_in(&self, slots: crate::hub::Slots) -> bool {
        self.call(move |h, _| h.has_live_sessions_in(&slots))
            .await
            .unwrap_or(true)
    }

    pub async fn end_live_sessions_in(&self, slots: crate::hub::Slots) {
        let _ = self
            .call(move |h, now| h.handle_end_live_sessions_in(now, &slots))
            .await;
    }

    /// Sessions ended in the store for a failed node: their agents are told.
    pub fn sessions_ended_elsewhere(
        &self,
        account_id: i64,
        ended: Vec<(
            covisit::core::model::Session,
            Vec<covisit::core::model::Cobrowsesession>,
        )>,
    ) {
        self.call_detached(move |h, _| h.handle_sessions_ended_elsewhere(account_id, ended));
    }

    /// The bus is back after a loss: resend what may have been lost.
    pub fn resend_after_bus_loss(&self) {
        self.call_detached(move |h, now| h.handle_bus_restored(now));
    }

    /// Runs `f` on the hub's task without waiting for it.
    fn call_detached(&self, f: impl FnOnce(&mut Hub, Millis) + Send + 'static) {
        self.command(Command::Call(Box::new(f)));
    }

    /// A frame another node's hub sent to socket `conn` of this node, in order with
    /// this node's own frames for it and under the same queue policy.
    pub fn push(&self, conn: ConnId, out: Out, delivery: Delivery, from: NodeIdx) {
        self.command(Command::Push(conn, out, delivery, from));
    }

    /// The socket showed it is alive in a way the hub does not see (a pong, a journey
    /// batch): its silence allowance starts again.
    pub fn heard(&self, conn: ConnId) {
        self.command(Command::Heard(conn));
    }

    /// Runs `f` on the hub's task (REST: reads and acts) and returns what it returns.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hub, Millis) -> R + Send + 'static,
    ) -> Result<R, HubError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Call(Box::new(move |hub, now| {
            let _ = tx.send(f(hub, now));
        })));
        rx.await.map_err(|_| HubError::UnknownConnection)
    }

    // ----- REST's reads and acts, run on the hub's task ----------------------------

    pub async fn counts(&self) -> (usize, usize) {
        self.call(|h, _| h.counts()).await.unwrap_or_default()
    }

    pub async fn online_visitors(&self, account_id: i64) -> Vec<covisit::core::model::Visitor> {
        self.call(move |h, now| h.online_visitors(now, account_id))
            .await
            .unwrap_or_default()
    }

    pub async fn visitor(
        &self,
        account_id: i64,
        short_id: &str,
    ) -> Option<covisit::core::model::Visitor> {
        let id = short_id.to_string();
        self.call(move |h, now| h.visitor(now, account_id, &id))
            .await
            .ok()
            .flatten()
    }

    #[allow(clippy::type_complexity)] // the hub's own read, passed through
    pub async fn session(
        &self,
        account_id: i64,
        session_id: &str,
    ) -> Option<(
        covisit::core::model::Session,
        covisit::core::machine::SessionStatus,
        Vec<covisit::core::model::Cobrowsesession>,
    )> {
        let id = session_id.to_string();
        self.call(move |h, _| h.session(account_id, &id))
            .await
            .ok()
            .flatten()
    }

    pub async fn sessions_of(
        &self,
        account_id: i64,
        visitor_id: Option<&str>,
    ) -> Vec<covisit::core::model::Session> {
        let v = visitor_id.map(str::to_string);
        self.call(move |h, _| h.sessions_of(account_id, v.as_deref()))
            .await
            .unwrap_or_default()
    }

    pub async fn erase_visitor(&self, account_id: i64, short_id: &str) -> bool {
        let id = short_id.to_string();
        self.call(move |h, now| h.handle_rest_erase_visitor(now, account_id, &id))
            .await
            .unwrap_or(false)
    }

    pub async fn end_session(&self, account_id: i64, session_id: &str) -> Result<bool, HubError> {
        let id = session_id.to_string();
        self.call(move |h, now| h.handle_rest_end_session(now, account_id, &id))
            .await?
    }

    pub async fn add_note(
        &self,
        account_id: i64,
        session_id: &str,
        by: &str,
        text: String,
        must_be_agent: bool,
    ) -> Result<(), HubError> {
        let (id, by) = (session_id.to_string(), by.to_string());
        self.call(move |h, now| {
            h.handle_rest_add_note(now, account_id, &id, &by, text, must_be_agent)
        })
        .await?
    }

    /// An agent's rating of a session in memory (`unknown_session` when it is not).
    pub async fn rate_session(
        &self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
        rating: u8,
        feedback: Option<String>,
    ) -> Result<(), HubError> {
        let (agent, id) = (agent_id.to_string(), session_id.to_string());
        self.call(move |h, _| h.rate_session_by_agent(account_id, &agent, &id, rating, feedback))
            .await?
    }

    pub async fn request_session(
        &self,
        account_id: i64,
        short_id: &str,
        agent: covisit::core::model::Agent,
        source: covisit::core::model::SessionSource,
    ) -> Result<(String, String), HubError> {
        let id = short_id.to_string();
        self.call(move |h, now| h.handle_rest_request_session(now, account_id, &id, agent, source))
            .await?
    }

    /// Whether the account records sessions from now on (an admin changed it).
    pub fn set_account_recording(&self, account_id: i64, on: bool) {
        self.call_detached(move |h, _| h.set_account_recording(account_id, on));
    }

    pub async fn close_user(&self, user_id: &str) {
        let id = user_id.to_string();
        let _ = self.call(move |h, _| h.handle_rest_close_user(&id)).await;
    }

    /// Closes the sockets opened with this key (revoked), on this node.
    pub async fn close_key(&self, account_id: i64, public_key: &str) {
        let pk = public_key.to_string();
        let _ = self
            .call(move |h, _| h.handle_rest_close_key(account_id, &pk))
            .await;
    }

    pub async fn close_auth_session(&self, session: &str) {
        let s = session.to_string();
        let _ = self
            .call(move |h, _| h.handle_rest_close_auth_session(&s))
            .await;
    }

    /// Whether this agent may have assets of the session's tab fetched (and its pages).
    pub async fn asset_scope(
        &self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
        tab: &str,
    ) -> Result<crate::hub::AssetScope, HubError> {
        let (a, s, t) = (
            agent_id.to_string(),
            session_id.to_string(),
            tab.to_string(),
        );
        self.call(move |h, _| h.asset_scope(account_id, &a, &s, &t))
            .await?
    }

    /// Asks the tab's page for the asset `url`; its pieces (or refusal) come out of the
    /// receiver. The caller must `forget_asset` the id when it stops waiting.
    pub async fn ask_asset(
        &self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
        tab: &str,
        url: &str,
    ) -> Result<(u32, mpsc::UnboundedReceiver<AssetReply>), HubError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiters = self.asset_waiters.clone();
        let (a, s, t, u) = (
            agent_id.to_string(),
            session_id.to_string(),
            tab.to_string(),
            url.to_string(),
        );
        // The waiter is in place before the hub's request frame leaves (its outputs
        // are carried out after this call returns).
        let id = self
            .call(move |h, _| {
                let id = h.handle_asset_ask(account_id, &a, &s, &t, &u)?;
                waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, tx);
                Ok::<u32, HubError>(id)
            })
            .await??;
        Ok((id, rx))
    }

    /// The bytes a session's pages sent so far (mirror records, assets among them).
    pub async fn session_bytes(&self, session_id: &str) -> crate::hub::SessionBytes {
        let s = session_id.to_string();
        self.call(move |h, _| h.session_bytes(&s))
            .await
            .unwrap_or_default()
    }

    /// Stops waiting for asset request `id`.
    pub fn forget_asset(&self, id: u32) {
        self.asset_waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.call_detached(move |h, _| h.forget_asset_ask(id));
    }

    /// Queues a write on the ordered writer (journey tracking's writes).
    pub fn persist(&self, write: Write) {
        let _ = self.jobs.send(Job::Write(write));
    }

    /// Waits until every write queued so far (by the hub, too: the hub's queue is
    /// drained first) is committed; false when one of them failed.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs.clone();
        // Through the hub's task, so that what it queued before this call is included.
        let queued = self
            .call(move |_, _| {
                let _ = jobs.send(Job::Flush(tx));
            })
            .await;
        queued.is_ok() && rx.await.unwrap_or(false)
    }
}

/// The hub's task: commands in, outputs out, one timer.
#[allow(clippy::too_many_arguments)] // the task's channels and shared tables
async fn run(
    mut hub: Hub,
    mut rx: mpsc::UnboundedReceiver<Command>,
    jobs: mpsc::UnboundedSender<Job>,
    metrics: Arc<Metrics>,
    cmd: mpsc::UnboundedSender<Command>,
    link: Option<ClusterLink>,
    asset_waiters: AssetWaiters,
    news_pending: NewsPending,
    batches: Batches,
) {
    let mut sinks: HashMap<ConnId, Sink> = HashMap::new();
    // Read before each step's outputs are queued (`Job::Deliver`'s last field).
    let mut seen;
    loop {
        let deadline = hub.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => {
                    let wait = d.0.saturating_sub(now().0);
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            c = rx.recv() => {
                let Some(c) = c else { break };
                let t = now();
                seen = batches.load(Ordering::Acquire);
                match c {
                    Command::Register(conn, sink) => { sinks.insert(conn, sink); }
                    Command::VisitorConnect(conn, hello, reply) => {
                        let r = hub.handle_visitor_connect(t, conn, *hello);
                        let _ = reply.send(r);
                    }
                    Command::VisitorFrame(conn, msg) => hub.handle_visitor_frame(t, conn, msg),
                    Command::VisitorGone(conn) => {
                        hub.handle_visitor_disconnect(t, conn);
                        sinks.remove(&conn);
                    }
                    Command::AgentConnect(conn, who) => hub.handle_agent_connect(t, conn, *who),
                    Command::AgentFrame(conn, msg) => hub.handle_agent_frame(t, conn, msg),
                    Command::AgentGone(conn) => {
                        hub.handle_agent_disconnect(t, conn);
                        sinks.remove(&conn);
                    }
                    Command::Lagged(conn) => hub.handle_agent_lagged(t, conn),
                    Command::Heard(conn) => hub.handle_heard(t, conn),
                    Command::RegisterRemote(conn, sink) => { sinks.insert(conn, sink); }
                    Command::Push(conn, out, delivery, from) => {
                        if let Some(sink) = sinks.get(&conn) {
                            if sink.pending.load(Ordering::Acquire) > 0 {
                                sink.pending.fetch_add(1, Ordering::AcqRel);
                                let _ = jobs.send(Job::Deliver(conn, sink.clone(), out, delivery, seen));
                            } else if deliver(conn, sink, out, delivery, &metrics) {
                                // Mirror data of another node's session was lost: that
                                // node's hub asks for the snapshot.
                                if let Some(l) = &link {
                                    l.bus.send(To::Node(from), &BusMsg::Lagged { conn }, "");
                                }
                            }
                        }
                    }
                    Command::Call(f) => f(&mut hub, t),
                }
            }
            _ = sleep => {
                seen = batches.load(Ordering::Acquire);
                hub.handle_timeout(now())
            }
        }
        while let Some(o) = hub.poll_output() {
            match o {
                // Only a clustered hub publishes (its slots were set), after the writes
                // before it.
                Output::Publish(news) => {
                    let mut waiting = news_pending.lock().unwrap_or_else(|p| p.into_inner());
                    *waiting.entry(news.visitor.short_id.clone()).or_default() += 1;
                    let _ = jobs.send(Job::Publish(news));
                }
                // At once, unless earlier news about the visitor still waits.
                Output::PublishNow(news) => {
                    let Some(l) = &link else { continue };
                    let mut waiting = news_pending.lock().unwrap_or_else(|p| p.into_inner());
                    match waiting.get_mut(&news.visitor.short_id) {
                        Some(n) => {
                            *n += 1;
                            let _ = jobs.send(Job::Publish(news));
                        }
                        None if l.fenced.load(Ordering::Acquire) => {}
                        None => {
                            let to = To::Account(news.account_id);
                            l.bus.send(to, &BusMsg::News(news), "");
                        }
                    }
                }
                Output::Persist(w) => {
                    let _ = jobs.send(Job::Write(w));
                }
                Output::Asset { id, reply } => {
                    let waiters = asset_waiters.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(tx) = waiters.get(&id) {
                        let _ = tx.send(reply);
                    }
                }
                Output::RecordingEnded(session_id) => {
                    let _ = jobs.send(Job::FinishRecording(session_id));
                }
                Output::Send {
                    conn,
                    frame,
                    delivery,
                } => {
                    let Some(sink) = sinks.get(&conn) else {
                        continue;
                    };
                    let out = Out::Text(frame);
                    if delivery == Delivery::Durable || sink.pending.load(Ordering::Acquire) > 0 {
                        sink.pending.fetch_add(1, Ordering::AcqRel);
                        let _ = jobs.send(Job::Deliver(conn, sink.clone(), out, delivery, seen));
                    } else if deliver(conn, sink, out, delivery, &metrics) {
                        let _ = cmd.send(Command::Lagged(conn));
                    }
                }
                Output::Close { conn, reason } => {
                    if let Some(sink) = sinks.get(&conn) {
                        sink.pending.fetch_add(1, Ordering::AcqRel);
                        let _ = jobs.send(Job::Deliver(
                            conn,
                            sink.clone(),
                            Out::Close(reason),
                            Delivery::Durable,
                            seen,
                        ));
                    }
                }
            }
        }
    }
}

/// Hands `out` to the socket's queue. A full queue drops relayed mirror data (that
/// tab's data is then dropped until it starts a new snapshot) and closes the socket
/// for anything else. True when the hub must ask for new snapshots (a drop began).
/// A socket of another node gets it over the bus (that node applies the policy).
fn deliver(conn: ConnId, sink: &Sink, out: Out, delivery: Delivery, metrics: &Metrics) -> bool {
    let tx = match &sink.to {
        SinkTo::Local(tx) => tx,
        SinkTo::Remote { bus, me } => {
            let to = To::Node(home_of(conn));
            match out {
                Out::Text(frame) => {
                    metrics.relayed();
                    bus.send(
                        to,
                        &BusMsg::Deliver {
                            conn,
                            from: *me,
                            relay: match delivery {
                                Delivery::Relay { tab, snapshot } => Some((tab, snapshot)),
                                _ => None,
                            },
                        },
                        frame.as_str(),
                    );
                }
                Out::Close(reason) => bus.send(to, &BusMsg::Close { conn, reason }, ""),
                Out::CloseWith(code, reason) => {
                    bus.send(to, &BusMsg::CloseWith { conn, code, reason }, "")
                }
            }
            return false;
        }
    };
    let lagging = || sink.lagging.lock().unwrap_or_else(|p| p.into_inner());
    if let Delivery::Relay { tab, snapshot } = delivery {
        let mut tabs = lagging();
        if tabs.contains(&tab) {
            if !snapshot {
                return false; // mid-epoch data of a tab that lost some: useless
            }
            tabs.remove(&tab);
        }
    }
    let text = matches!(out, Out::Text(_));
    match tx.try_send(out) {
        Ok(()) => {
            if text {
                metrics.relayed();
            }
            false
        }
        Err(mpsc::error::TrySendError::Full(_)) => match delivery {
            Delivery::Relay { tab, .. } => {
                let mut tabs = lagging();
                let first = tabs.is_empty();
                tabs.insert(tab);
                first
            }
            _ => {
                sink.kill.notify_one();
                false
            }
        },
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Most jobs taken from the queue for one transaction.
const MAX_BATCH: usize = 4096;

/// Drains the queue: every job waiting is taken at once, its writes are committed in
/// one transaction (group commit; a later write of the same record replaces an earlier
/// one in the batch), and only then are its frames delivered and its flushes answered,
/// in queue order. Errors are logged (without personal data) and the server keeps
/// running on its in-memory state (less the notes not stored); flushes then answer
/// false, and the frames that would have announced the batch are not sent: their
/// sockets are closed (`CloseReason::NotStored`) and reconnect to what is stored.
async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    metrics: Arc<Metrics>,
    cmd: mpsc::UnboundedSender<Command>,
    link: Option<ClusterLink>,
    news_pending: NewsPending,
    batches: Batches,
) {
    let mut batch: Vec<Job> = Vec::new();
    let mut failed = false;
    // The number of the last batch that failed: frames queued before it finished are
    // not sent, even when they came in a later batch.
    let mut last_failed: Option<u64> = None;
    let fenced = || {
        link.as_ref()
            .is_some_and(|l| l.fenced.load(Ordering::Acquire))
    };
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut writes: Vec<Write> = Vec::new();
        let mut slots: HashMap<(u8, String), usize> = HashMap::new();
        let mut after: Vec<Job> = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            match job {
                Job::Write(w) => match w.key().map(|(k, id)| (k, id.to_string())) {
                    // Keep the first position (rows that later writes refer to exist by
                    // then) with the last content.
                    Some(key) => match slots.get(&key) {
                        Some(&i) => writes[i] = w,
                        None => {
                            slots.insert(key, writes.len());
                            writes.push(w);
                        }
                    },
                    None => writes.push(w),
                },
                other => after.push(other),
            }
        }
        // Notes are appends the hub also keeps: one not stored is forgotten there too.
        let notes: Vec<(usize, (String, String, String))> = writes
            .iter()
            .enumerate()
            .filter_map(|(i, w)| match w {
                Write::Note(s, by, text) => Some((i, (s.clone(), by.clone(), text.clone()))),
                _ => None,
            })
            .collect();
        let mut unstored: Vec<usize> = Vec::new();
        // A failure answers the flushes of this batch and the next one with false
        // (a write may sit in the batch before its flush's).
        let previous_failed = failed;
        failed = if writes.is_empty() {
            false
        } else {
            let started = std::time::Instant::now();
            let count = writes.len();
            let result = store.write_batch(writes).await;
            metrics.committed(started.elapsed().as_secs_f64());
            match result {
                Ok(results) => {
                    for (i, _) in results.iter().enumerate().filter(|(_, r)| r.is_err()) {
                        unstored.push(i);
                    }
                    for e in results.into_iter().filter_map(Result::err) {
                        tracing::error!(error = %e, "store write failed");
                    }
                    !unstored.is_empty()
                }
                Err(StoreError::Fenced) => {
                    // Another node owns our slots now: nothing we do may be announced.
                    if let Some(l) = &link {
                        if !l.fenced.swap(true, Ordering::AcqRel) {
                            tracing::error!("the store refused our writes: this node was fenced");
                            l.on_fenced.notify_waiters();
                        }
                    }
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "store transaction failed");
                    unstored.extend(0..count);
                    true
                }
            }
        };
        let lost: Vec<(String, String, String)> = notes
            .into_iter()
            .filter(|(i, _)| unstored.contains(i))
            .map(|(_, n)| n)
            .collect();
        if !lost.is_empty() {
            // Before any socket is closed below: a console that reconnects is sent the
            // session without them.
            let _ = cmd.send(Command::Call(Box::new(move |h, _| {
                h.handle_notes_not_stored(lost)
            })));
        }
        let ok = !failed && !previous_failed;
        let silenced = fenced();
        let number = batches.load(Ordering::Acquire);
        if failed {
            last_failed = Some(number);
        }
        batches.store(number + 1, Ordering::Release);
        // Not stored: the frames that would announce this batch's writes are not sent
        // (nor those of an earlier failed batch's, queued before it finished: they may
        // have come in this batch); their sockets are closed instead (once each), so
        // that the SDK and the console reconnect and get what is stored. Nor does news
        // of this batch reach the other nodes.
        let refused = |seen: u64| !silenced && (failed || last_failed.is_some_and(|f| seen <= f));
        let mut closed: HashSet<ConnId> = HashSet::new();
        for job in after {
            match job {
                // Fenced: nothing written may be announced, but sockets still close
                // (the SDK and the console reconnect to a node that owns them).
                Job::Deliver(_, sink, Out::Text(_), _, _) if silenced => {
                    sink.pending.fetch_sub(1, Ordering::AcqRel);
                }
                Job::Deliver(conn, sink, out, delivery, seen) if refused(seen) => {
                    if closed.insert(conn) {
                        let close = Out::Close(CloseReason::NotStored);
                        deliver(conn, &sink, close, Delivery::Durable, &metrics);
                    }
                    // A close the hub asked for goes too (after ours, the socket is
                    // closing anyway).
                    if let Out::Close(_) | Out::CloseWith(..) = out {
                        deliver(conn, &sink, out, delivery, &metrics);
                    }
                    sink.pending.fetch_sub(1, Ordering::AcqRel);
                }
                Job::Deliver(conn, sink, out, delivery, _) => {
                    if deliver(conn, &sink, out, delivery, &metrics) {
                        let _ = cmd.send(Command::Lagged(conn));
                    }
                    sink.pending.fetch_sub(1, Ordering::AcqRel);
                }
                Job::Publish(news) => {
                    // Sent before the count drops: news that goes at once once it is
                    // zero comes after this one.
                    let mut waiting = news_pending.lock().unwrap_or_else(|p| p.into_inner());
                    let id = news.visitor.short_id.clone();
                    if let (Some(l), false, false) = (&link, silenced, failed) {
                        let to = To::Account(news.account_id);
                        l.bus.send(to, &BusMsg::News(news), "");
                    }
                    if let Some(n) = waiting.get_mut(&id) {
                        *n -= 1;
                        if *n == 0 {
                            waiting.remove(&id);
                        }
                    }
                }
                Job::Flush(done) => {
                    let _ = done.send(ok && !silenced);
                }
                // Finalising is one small update; a failure leaves it `pending` for the
                // sweep (`recordings::sweep`) to finish.
                Job::FinishRecording(session_id) if !silenced => {
                    if let Err(e) = store.finish_recording(&session_id).await {
                        tracing::error!(error = %e, "finalising a recording failed");
                    }
                }
                Job::FinishRecording(_) | Job::Write(_) => {}
            }
        }
    }
}
