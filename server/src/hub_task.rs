//! The hub's I/O shell: one task owns the [`Hub`] (no lock), fed by the sockets and
//! REST through a channel, with one sleep re-armed on `poll_timeout`. It carries out
//! the hub's outputs: writes go to the ordered writer (group commit); a frame that
//! announces state waits until every write queued before it committed; a frame that
//! carries none (mirror data, pointer, acks, errors) goes at once unless frames queued
//! before it for the same socket still wait, so that a socket's frames keep the hub's
//! order.
//!
//! Each socket has a bounded queue. When a console falls behind: its relayed mirror
//! data is dropped (per visitor tab, until that tab starts a new snapshot, which the
//! hub asks for); when a frame that carries state finds a queue full, the socket is
//! closed (the console or the SDK reconnects and gets fresh state).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use covisit::core::protocol::{AgentMessage, VisitorMessage};
use covisit::core::Millis;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::hub::{
    AgentIdentity, CloseReason, ConnId, Delivery, Frame, Hub, HubConfig, HubError, Ids, Output,
    VisitorHello, Welcome,
};
use crate::metrics::Metrics;
use crate::store::{Store, Write};

/// The wall clock, as the core's [`Millis`]: the only place the hub's time comes from.
pub fn now() -> Millis {
    Millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// A frame (or a close) for one socket's writer.
#[derive(Debug)]
pub enum Out {
    Text(Frame),
    Close(CloseReason),
}

/// How many frames a visitor's / an agent's socket may have queued.
const VISITOR_QUEUE: usize = 512;
const AGENT_QUEUE: usize = 2048;

/// A socket as the shell holds it.
#[derive(Clone)]
struct Sink {
    tx: mpsc::Sender<Out>,
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
    Call(Call),
}

/// An entry of the writer's ordered queue.
enum Job {
    Write(Write),
    Deliver(ConnId, Sink, Out, Delivery),
    Flush(oneshot::Sender<bool>),
}

/// The handle sockets and REST use. Cheap to clone.
#[derive(Clone)]
pub struct HubHandle {
    cmd: mpsc::UnboundedSender<Command>,
    jobs: mpsc::UnboundedSender<Job>,
    next_conn: Arc<AtomicU64>,
}

impl HubHandle {
    /// Starts the hub's task and the writer's.
    pub fn start(
        store: Arc<dyn Store>,
        config: HubConfig,
        ids: Ids,
        metrics: Arc<Metrics>,
    ) -> HubHandle {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let handle = HubHandle {
            cmd,
            jobs: jobs.clone(),
            next_conn: Arc::new(AtomicU64::new(1)),
        };
        tokio::spawn(writer(store, jobs_rx, metrics.clone(), handle.cmd.clone()));
        tokio::spawn(run(
            Hub::new(config, ids),
            cmd_rx,
            jobs,
            metrics,
            handle.cmd.clone(),
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
        let (tx, rx) = mpsc::channel(if agent { AGENT_QUEUE } else { VISITOR_QUEUE });
        let kill = Arc::new(Notify::new());
        self.command(Command::Register(
            conn,
            Sink {
                tx,
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
        self.call(move |h, _| h.handle_rest_add_note(account_id, &id, &by, text, must_be_agent))
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

    pub async fn close_user(&self, user_id: &str) {
        let id = user_id.to_string();
        let _ = self.call(move |h, _| h.handle_rest_close_user(&id)).await;
    }

    pub async fn close_auth_session(&self, session: &str) {
        let s = session.to_string();
        let _ = self
            .call(move |h, _| h.handle_rest_close_auth_session(&s))
            .await;
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
async fn run(
    mut hub: Hub,
    mut rx: mpsc::UnboundedReceiver<Command>,
    jobs: mpsc::UnboundedSender<Job>,
    metrics: Arc<Metrics>,
    cmd: mpsc::UnboundedSender<Command>,
) {
    let mut sinks: HashMap<ConnId, Sink> = HashMap::new();
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
                        hub.handle_agent_disconnect(conn);
                        sinks.remove(&conn);
                    }
                    Command::Lagged(conn) => hub.handle_agent_lagged(t, conn),
                    Command::Heard(conn) => hub.handle_heard(t, conn),
                    Command::Call(f) => f(&mut hub, t),
                }
            }
            _ = sleep => hub.handle_timeout(now()),
        }
        while let Some(o) = hub.poll_output() {
            match o {
                // Only a clustered hub publishes (its slots were set): a single node has
                // nobody to tell.
                Output::Publish(_) => {}
                Output::Persist(w) => {
                    let _ = jobs.send(Job::Write(w));
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
                        let _ = jobs.send(Job::Deliver(conn, sink.clone(), out, delivery));
                    } else if deliver(sink, out, delivery, &metrics) {
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
fn deliver(sink: &Sink, out: Out, delivery: Delivery, metrics: &Metrics) -> bool {
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
    match sink.tx.try_send(out) {
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
/// running on its in-memory state; flushes then answer false.
async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    metrics: Arc<Metrics>,
    cmd: mpsc::UnboundedSender<Command>,
) {
    let mut batch: Vec<Job> = Vec::new();
    let mut failed = false;
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
                Job::Deliver(conn, sink, out, delivery) => {
                    if deliver(&sink, out, delivery, &metrics) {
                        let _ = cmd.send(Command::Lagged(conn));
                    }
                    sink.pending.fetch_sub(1, Ordering::AcqRel);
                }
                Job::Flush(done) => {
                    let _ = done.send(ok);
                }
                Job::Write(_) => {}
            }
        }
    }
}
