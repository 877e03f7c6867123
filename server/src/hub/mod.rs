//! The server's domain, sans-IO: one [`Hub`] owns every online visitor (its
//! `VisitorMachine`, tabs, lookup code), every agent socket, every live session and its
//! seed records, and decides what is sent, stored and closed. It never reads a clock,
//! draws randomness or does I/O; shaped like quinn-proto's `Endpoint`:
//!
//! - inputs are `handle_*` methods that take `now` (the visitor's and agent's sockets,
//!   REST, timers): `handle_visitor_connect/frame/disconnect`, `handle_agent_…`,
//!   `handle_rest_…`, `handle_timeout`;
//! - outputs are drained with [`Hub::poll_output`] until it returns `None`: store these
//!   writes, send that frame to that socket (after the writes before it, when it
//!   announces state), close that socket; in the order they must happen;
//! - [`Hub::poll_timeout`] is the earliest deadline of its one timer queue; getters
//!   take `&self` (and `now` where time decides what they show).
//!
//! Ids and secrets come from [`Ids`], handed in (seeded in tests). The I/O shell that
//! feeds it lives in `crate::hub_task`; nothing here may depend on it.
//!
//! Where things live: `visitors` (hellos, tabs, secrets, lookup codes, a visitor's
//! frames), `agents` (agent sockets, their messages, sign-outs), `sessions` (requests,
//! joins, ends, notes, the seed Session and Cobrowsesession projections), `relay`
//! (mirror data, remote actions, resyncs), `broadcast` (who sees which visitor, and the
//! change detection after every input), `timers`, `ids`, `error`, `output`.

mod agents;
mod assets;
mod broadcast;
mod calls;
mod cluster;
mod error;
mod ids;
mod output;
mod recording;
mod relay;
mod sessions;
#[cfg(test)]
mod sim;
mod timers;
mod visitors;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use covisit::core::machine::SessionStatus;
use covisit::core::model::{Cobrowsesession, Session, Visitor};
use covisit::core::protocol::{encode, ErrorFrame, ServerToVisitor};
use covisit::core::Millis;

pub use agents::AgentIdentity;
pub use assets::{AssetScope, SessionBytes};
pub use cluster::{NewsKind, Slots, VisitorNews};
pub use error::HubError;
pub use ids::Ids;
pub use output::{CloseReason, ConnId, Delivery, Frame, Output};
pub use visitors::{secret_proves, VisitorHello, Welcome};

use crate::directory::AuditEntry;
use crate::store::Write;
use agents::AgentConn;
use sessions::SessionEntry;
use timers::{Timer, Timers};
use visitors::VisitorEntry;

/// What the hub is configured with at start-up.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The server's public URL (watch links, viewer URLs).
    pub public_url: String,
    /// How long a live session survives when every tab vanished unannounced.
    pub grace_period_seconds: u64,
    /// How long a visitor's socket may stay silent (no frame) before it is closed.
    pub visitor_silence_ms: u64,
    /// How long an agent's socket may stay silent (no frame, no pong) before it is
    /// closed; the shell pings agents well within it.
    pub agent_silence_ms: u64,
    /// The ICE servers handed to both ends of a call (`--ice-server`, `--turn-secret`).
    pub ice: crate::ice::IceConfig,
}

/// A socket the hub knows: a visitor's tab or an agent's console.
#[derive(Debug)]
enum Conn {
    Visitor {
        short_id: String,
        connection_id: String,
    },
    /// An agent's console of this account; the socket's state is in `Hub::agents`.
    Agent(i64),
}

pub struct Hub {
    config: HubConfig,
    ids: Ids,
    /// Boxed: an entry is over 2 KB, and a map of them inline would keep that much for
    /// every empty bucket too (up to half its table) and copy them all when it grows.
    visitors: HashMap<String, Box<VisitorEntry>>,
    conns: HashMap<ConnId, Conn>,
    /// The agent sockets of each account, in a stable order: an update fans out over
    /// the account's agents only, not over every socket the hub holds.
    agents: HashMap<i64, BTreeMap<ConnId, AgentConn>>,
    /// The same sockets by agent id, per account: a session's frames go to its agents'
    /// sockets at a cost that does not grow with the account's other agents.
    agent_sockets: HashMap<i64, HashMap<String, BTreeSet<ConnId>>>,
    sessions: HashMap<String, SessionEntry>,
    /// Who was given each lookup code, per account: (account, code) → short id. An
    /// entry can be stale; it counts as taken only while that visitor holds the code.
    lookup_codes: HashMap<(i64, String), String>,
    /// Visitors whose latest change the watching agents have not been sent yet.
    pending_broadcasts: HashSet<String>,
    /// Visitors whose `last_url`/connection urls changed by a url-only update and are
    /// not written yet (coalesced: written at the next broadcast tick).
    dirty_urls: HashSet<String>,
    /// When `dirty_urls` were last written: they are written at most once a
    /// [`BROADCAST_TICK_MS`], however often the broadcast timer fires for held-back
    /// updates (it does at each visitor's own due time).
    urls_written_at: Millis,
    /// Agent sockets with visitors queued for their next `visitor_updates`
    /// (`AgentConn::queued`), and when those were last sent: at most once a
    /// [`BROADCAST_TICK_MS`], all of them together.
    queued_updates: BTreeSet<ConnId>,
    updates_sent_at: Millis,
    timers: Timers,
    outputs: VecDeque<Output>,
    /// Visitors other nodes own, as their owners last described them (clustered).
    shadows: HashMap<String, cluster::Shadow>,
    /// The slots this node owns; `None` on a single node (all of them).
    owned: Option<Slots>,
    /// When each socket was last heard from (its silence timer re-checks this).
    heard: HashMap<ConnId, Millis>,
    /// Asset requests waiting on visitors' pages, and each session's bytes.
    assets: assets::Assets,
    /// Which accounts record their sessions, as the shell last said (`recording`).
    recording_accounts: HashMap<i64, bool>,
}

/// An agent's update of a visitor it does not take part with goes out at most this
/// often (changes of `is_online`, `is_in_session`, `is_waiting_for_call` at once).
const BROADCAST_INTERVAL_MS: u64 = 1000;
/// A visitor's navigation alone (its `last_url`) reaches agents outside its session at
/// most this often: a list row's address may lag a few seconds, the session's agents
/// get every change at once.
const URL_BROADCAST_INTERVAL_MS: u64 = 5000;
/// How often deferred updates and coalesced url writes are looked at.
const BROADCAST_TICK_MS: u64 = 200;

impl Hub {
    pub fn new(config: HubConfig, ids: Ids) -> Hub {
        Hub {
            config,
            ids,
            visitors: HashMap::new(),
            conns: HashMap::new(),
            agents: HashMap::new(),
            agent_sockets: HashMap::new(),
            sessions: HashMap::new(),
            lookup_codes: HashMap::new(),
            pending_broadcasts: HashSet::new(),
            dirty_urls: HashSet::new(),
            urls_written_at: Millis(0),
            queued_updates: BTreeSet::new(),
            updates_sent_at: Millis(0),
            timers: Timers::default(),
            outputs: VecDeque::new(),
            shadows: HashMap::new(),
            owned: None,
            heard: HashMap::new(),
            assets: assets::Assets::default(),
            recording_accounts: HashMap::new(),
        }
    }

    // ----- outputs and timers ----------------------------------------------------------

    /// The next thing the shell must do, in order; call until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest deadline; call [`Hub::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.next()
    }

    /// Fires whatever is due (harmless early or twice).
    pub fn handle_timeout(&mut self, now: Millis) {
        for timer in self.timers.take_due(now) {
            match timer {
                Timer::Machine(short_id) => {
                    if let Some(entry) = self.visitors.get_mut(&short_id) {
                        entry.machine.handle_timeout(now);
                        self.after_change(&short_id, now);
                    }
                }
                Timer::LookupExpiry(short_id) => {
                    if self.visitors.contains_key(&short_id) {
                        self.after_change(&short_id, now);
                    }
                }
                Timer::Broadcast => self.send_deferred(now),
                Timer::Silence(conn) => self.check_silence(now, conn),
                Timer::Recording(session_id) => self.recording_due(now, &session_id),
            }
        }
    }

    /// A socket was heard from: a frame (the handlers call this) or, for what the hub
    /// does not see itself, the shell (a pong, a journey batch, a binary frame).
    pub fn handle_heard(&mut self, now: Millis, conn: ConnId) {
        if let Some(at) = self.heard.get_mut(&conn) {
            *at = now;
        }
    }

    /// Starts the silence timer of a socket that just said hello.
    fn listen(&mut self, now: Millis, conn: ConnId, agent: bool) {
        let silence = if agent {
            self.config.agent_silence_ms
        } else {
            self.config.visitor_silence_ms
        };
        self.heard.insert(conn, now);
        self.timers.set(
            Timer::Silence(conn),
            Some(Millis(now.0.saturating_add(silence.max(1)))),
        );
    }

    /// Closes a socket silent for its whole allowance; otherwise looks again when the
    /// allowance since it was last heard runs out.
    fn check_silence(&mut self, now: Millis, conn: ConnId) {
        let Some(heard) = self.heard.get(&conn).copied() else {
            return;
        };
        let silence = match self.conns.get(&conn) {
            Some(Conn::Visitor { .. }) => self.config.visitor_silence_ms,
            Some(Conn::Agent(_)) => self.config.agent_silence_ms,
            None => {
                self.heard.remove(&conn);
                return;
            }
        };
        let due = Millis(heard.0.saturating_add(silence.max(1)));
        if now >= due {
            self.heard.remove(&conn);
            self.outputs.push_back(Output::Close {
                conn,
                reason: CloseReason::Silent,
            });
        } else {
            self.timers.set(Timer::Silence(conn), Some(due));
        }
    }

    fn persist(&mut self, write: Write) {
        self.outputs.push_back(Output::Persist(write));
    }

    fn send(&mut self, conn: ConnId, frame: Frame, delivery: Delivery) {
        self.outputs.push_back(Output::Send {
            conn,
            frame,
            delivery,
        });
    }

    fn send_durable(&mut self, conn: ConnId, text: String) {
        self.send(conn, Frame::from(text), Delivery::Durable);
    }

    /// An error frame for a socket (it carries no state).
    pub fn send_error(&mut self, conn: ConnId, e: &HubError) {
        let frame = encode(&ServerToVisitor::Error(ErrorFrame::new(
            e.code(),
            e.message(),
        )));
        self.send(conn, Frame::from(frame), Delivery::Now);
    }

    /// An audit entry, in the writer's order (after what is queued before it). `ip` is
    /// the address of a person acting; never a visitor's.
    #[allow(clippy::too_many_arguments)] // one entry's fields
    pub fn audit(
        &mut self,
        now: Millis,
        account_id: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        ip: Option<&str>,
        result: &str,
    ) {
        // A recorded session's events are on its recording's timeline too.
        if let Some(t) = target.filter(|t| self.sessions.contains_key(*t)) {
            self.record_event(now, t, action, actor, result);
        }
        self.persist(Write::Audit(Box::new(AuditEntry {
            id: 0,
            account_id,
            at: now.to_iso8601(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            ip: ip.map(str::to_string),
            result: result.to_string(),
        })));
    }

    /// Re-arms the visitor's machine and lookup-code timers.
    fn schedule(&mut self, short_id: &str, now: Millis) {
        let Some(entry) = self.visitors.get(short_id) else {
            self.timers.set(Timer::Machine(short_id.to_string()), None);
            self.timers
                .set(Timer::LookupExpiry(short_id.to_string()), None);
            return;
        };
        let machine = entry.machine.poll_timeout();
        let expiry = (entry.visitor.lookup_code.is_some() && entry.lookup_expires > now)
            .then_some(entry.lookup_expires);
        self.timers
            .set(Timer::Machine(short_id.to_string()), machine);
        self.timers
            .set(Timer::LookupExpiry(short_id.to_string()), expiry);
    }

    // ----- reads (REST, metrics) ----------------------------------------------------------

    /// (online visitors, live sessions) for `/metrics`.
    pub fn counts(&self) -> (usize, usize) {
        let online = self
            .visitors
            .values()
            .filter(|v| v.machine.is_online())
            .count();
        let live = self
            .sessions
            .values()
            .filter(|s| matches!(s.status, SessionStatus::Authorizing | SessionStatus::Active))
            .count();
        (online, live)
    }

    /// Sockets, sessions and timers: the simulation's bounds.
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.conns.len(), self.sessions.len(), self.timers.len())
    }

    /// The account's online visitors, most recently seen first (on a node of several,
    /// those of the other nodes too, as their owners last described them).
    pub fn online_visitors(&self, now: Millis, account_id: i64) -> Vec<Visitor> {
        self.newest_online_visitors(now, account_id, usize::MAX)
    }

    /// The `limit` most recently seen of them: only those are copied (an agent's
    /// hello lists 500 of what may be 10,000; copying and sorting them all held the
    /// hub's task for 25-35 ms per agent).
    pub(crate) fn newest_online_visitors(
        &self,
        now: Millis,
        account_id: i64,
        limit: usize,
    ) -> Vec<Visitor> {
        // Ok: a visitor of this node (shown through its view); Err: another node's. The
        // index breaks ties as a stable sort of the whole list would (visitors seen in
        // the same millisecond keep their order), so the limit picks the same ones.
        type Record<'a> = (&'a str, usize, Result<&'a VisitorEntry, &'a Visitor>);
        let mut records: Vec<Record> = self
            .visitors
            .values()
            .filter(|v| v.account_id == account_id && v.machine.is_online())
            .map(|v| (v.visitor.last_seen_at.as_str(), Ok(&**v)))
            .chain(
                self.shadows
                    .values()
                    .filter(|s| s.account_id == account_id && s.visitor.is_online)
                    .map(|s| (s.visitor.last_seen_at.as_str(), Err(&s.visitor))),
            )
            .enumerate()
            .map(|(i, (seen, r))| (seen, i, r))
            .collect();
        let newest_first = |a: &Record, b: &Record| b.0.cmp(a.0).then(a.1.cmp(&b.1));
        if records.len() > limit {
            records.select_nth_unstable_by(limit, newest_first);
            records.truncate(limit);
        }
        records.sort_unstable_by(newest_first);
        records
            .into_iter()
            .map(|(_, _, r)| match r {
                Ok(entry) => entry.view(now),
                Err(visitor) => visitor.clone(),
            })
            .collect()
    }

    /// The in-memory visitor, when it is online or in a session (here, or on another
    /// node as its owner last described it).
    pub fn visitor(&self, now: Millis, account_id: i64, short_id: &str) -> Option<Visitor> {
        self.visitors
            .get(short_id)
            .filter(|v| v.account_id == account_id)
            .map(|v| v.view(now))
            .or_else(|| {
                self.shadows
                    .get(short_id)
                    .filter(|s| s.account_id == account_id)
                    .map(|s| s.visitor.clone())
            })
    }

    /// Whether `short_id` is in memory for the account.
    pub fn is_known_visitor(&self, account_id: i64, short_id: &str) -> bool {
        self.visitors
            .get(short_id)
            .is_some_and(|v| v.account_id == account_id)
    }

    /// For a visitor in memory for the account: the hash of its secret (`Some(None)`: a
    /// visitor from before secrets). `None`: not in memory here.
    pub fn visitor_secret_hash(&self, account_id: i64, short_id: &str) -> Option<Option<String>> {
        self.visitors
            .get(short_id)
            .filter(|v| v.account_id == account_id)
            .map(|v| v.secret_hash.clone())
    }

    /// The in-memory session (with status and communications).
    pub fn session(
        &self,
        account_id: i64,
        session_id: &str,
    ) -> Option<(Session, SessionStatus, Vec<Cobrowsesession>)> {
        self.sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
            .map(|s| (s.session.clone(), s.status, s.communications()))
    }

    pub fn sessions_of(&self, account_id: i64, visitor_id: Option<&str>) -> Vec<Session> {
        self.sessions
            .values()
            .filter(|s| {
                s.account_id == account_id && visitor_id.is_none_or(|v| s.session.visitor_id == v)
            })
            .map(|s| s.session.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
