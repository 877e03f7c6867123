//! Agents: a console's (or integration's) socket, its messages, what it watches, and
//! the acts that close it (disabled, signed out). Every privileged act is audited here
//! with the agent's id and address.

use std::collections::{BTreeSet, HashSet, VecDeque};

use covisit::core::model::{Agent, SessionSource, Visitor};
use covisit::core::protocol::{
    encode, AgentMessage, CallFromAgent, FoundBy, RemoteAction, ServerToAgent, PROTOCOL_VERSION,
};
use covisit::core::Millis;

use super::{CloseReason, Conn, ConnId, Delivery, Frame, Hub, HubError, Output};

/// At most this many visitors an agent's hello lists (the most recently seen); the
/// others reach its list when they come online or through search.
pub(super) const MAX_HELLO_VISITORS: usize = 500;
/// Visitors per `visitors` frame of a hello: 500 visitors are ~350 KB of JSON, a buffer
/// a socket's writer would keep for the socket's life; 50 are ~35 KB.
const HELLO_PAGE: usize = 50;
/// At most this many visitors an agent watches (gets `visitor_update` for); the oldest
/// go first.
const MAX_WATCHED: usize = 2000;
/// At most this many visitors a search answers with.
const MAX_SEARCH_RESULTS: usize = 50;

/// Who an agent socket is, proven by the socket layer (and sent along with a socket
/// another node holds: `bus::BusMsg::AgentOnline`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AgentIdentity {
    pub account_id: i64,
    pub agent: Agent,
    pub ip: String,
    /// A console user (`u_…`); None for an integration (`ea_…`, secret key).
    pub user_id: Option<String>,
    /// The sign-in session the socket was opened with (sign-out closes it).
    pub auth_session: Option<String>,
    /// The public key whose secret key an integration's socket was opened with
    /// (revoking the key closes it).
    pub api_key: Option<String>,
    /// Supervisors, admins and integrations join any live session of the account.
    pub may_join_any: bool,
}

#[derive(Debug)]
pub(super) struct AgentConn {
    pub who: AgentIdentity,
    /// The visitors this agent's list shows (its hello's, those that came online since,
    /// those it searched for or opened): only these get its `visitor_update`s.
    pub watching: HashSet<String>,
    order: VecDeque<String>,
    /// Watched visitors whose held-back change this console has not been sent yet: their
    /// latest state goes out together in one `visitor_updates` at the next broadcast tick.
    pub queued: BTreeSet<String>,
    /// Whether this node holds the socket. Another node's agent is registered only so
    /// that this node's session frames reach it; its lists and watches live there.
    pub local: bool,
}

impl AgentConn {
    /// An agent socket this node holds (`local`) or another node does.
    pub fn new(who: AgentIdentity, local: bool) -> AgentConn {
        AgentConn {
            who,
            watching: HashSet::new(),
            order: VecDeque::new(),
            queued: BTreeSet::new(),
            local,
        }
    }

    pub fn account_id(&self) -> i64 {
        self.who.account_id
    }

    pub fn agent(&self) -> &Agent {
        &self.who.agent
    }

    pub fn watch(&mut self, short_id: &str) {
        if self.watching.insert(short_id.to_string()) {
            self.order.push_back(short_id.to_string());
            while self.order.len() > MAX_WATCHED {
                if let Some(old) = self.order.pop_front() {
                    self.watching.remove(&old);
                    self.queued.remove(&old);
                }
            }
        }
    }

    pub fn unwatch(&mut self, short_id: &str) {
        if self.watching.remove(short_id) {
            self.order.retain(|x| x != short_id);
        }
        self.queued.remove(short_id);
    }
}

impl Hub {
    /// The sockets of the account's agents that `pick` chooses.
    pub(super) fn agent_conns(
        &self,
        account_id: i64,
        pick: impl Fn(&AgentConn) -> bool,
    ) -> Vec<ConnId> {
        // A stable order (the map's): frames fan out the same way every run.
        self.agents
            .get(&account_id)
            .map(|m| {
                m.iter()
                    .filter(|(_, a)| pick(a))
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sockets of these agents of the account (local and other nodes'), in socket
    /// order like [`Hub::agent_conns`], found by id.
    pub(super) fn sockets_of(&self, account_id: i64, agent_ids: &[String]) -> Vec<ConnId> {
        let Some(by_id) = self.agent_sockets.get(&account_id) else {
            return Vec::new();
        };
        let mut conns: Vec<ConnId> = agent_ids
            .iter()
            .filter_map(|id| by_id.get(id.as_str()))
            .flatten()
            .copied()
            .collect();
        conns.sort_unstable();
        conns.dedup();
        conns
    }

    /// Registers an agent socket (this node's or another node's).
    pub(super) fn add_agent(&mut self, conn: ConnId, a: AgentConn) {
        let account_id = a.account_id();
        self.conns.insert(conn, Conn::Agent(account_id));
        self.agent_sockets
            .entry(account_id)
            .or_default()
            .entry(a.agent().id.clone())
            .or_default()
            .insert(conn);
        self.agents.entry(account_id).or_default().insert(conn, a);
    }

    /// The agent on socket `conn`.
    pub(super) fn agent_at(&self, conn: ConnId) -> Option<&AgentConn> {
        let Some(Conn::Agent(account_id)) = self.conns.get(&conn) else {
            return None;
        };
        self.agents.get(account_id)?.get(&conn)
    }

    pub(super) fn agent_at_mut(&mut self, conn: ConnId) -> Option<&mut AgentConn> {
        let Some(Conn::Agent(account_id)) = self.conns.get(&conn) else {
            return None;
        };
        self.agents.get_mut(account_id)?.get_mut(&conn)
    }

    /// Forgets the agent socket `conn`.
    fn remove_agent(&mut self, conn: ConnId) -> Option<AgentConn> {
        let Some(&Conn::Agent(account_id)) = self.conns.get(&conn) else {
            return None;
        };
        self.conns.remove(&conn);
        let m = self.agents.get_mut(&account_id)?;
        let a = m.remove(&conn);
        if m.is_empty() {
            self.agents.remove(&account_id);
        }
        if let (Some(a), Some(by_id)) = (&a, self.agent_sockets.get_mut(&account_id)) {
            let id = &a.agent().id;
            if let Some(set) = by_id.get_mut(id) {
                set.remove(&conn);
                if set.is_empty() {
                    by_id.remove(id);
                }
            }
            if by_id.is_empty() {
                self.agent_sockets.remove(&account_id);
            }
        }
        a
    }

    /// An agent socket said hello: its welcome, the online visitors (which it then
    /// watches) and its live sessions.
    pub fn handle_agent_connect(&mut self, now: Millis, conn: ConnId, who: AgentIdentity) {
        let account_id = who.account_id;
        self.send_durable(
            conn,
            encode(&ServerToAgent::Welcome {
                protocol_version: PROTOCOL_VERSION,
                agent: who.agent.clone(),
            }),
        );
        let visitors = self.newest_online_visitors(now, account_id, MAX_HELLO_VISITORS);
        let mut a = AgentConn::new(who, true);
        for v in visitors.iter().rev() {
            a.watch(&v.short_id);
        }
        let pages = visitors.len().div_ceil(HELLO_PAGE).max(1);
        let mut rest = visitors.into_iter();
        for page in 1..=pages {
            let visitors: Vec<Visitor> = rest.by_ref().take(HELLO_PAGE).collect();
            let more = page < pages;
            self.send_durable(conn, encode(&ServerToAgent::Visitors { visitors, more }));
        }
        let agent_id = a.agent().id.clone();
        let mut updates: Vec<(String, String)> = self
            .sessions
            .values()
            .filter(|s| {
                s.account_id == account_id && s.parts.iter().any(|p| p.agent.id == agent_id)
            })
            .map(|s| (s.session.visitor_id.clone(), s.update_frame()))
            .collect();
        updates.sort();
        for (visitor, _) in &updates {
            a.watch(visitor);
        }
        let updates = updates.into_iter().map(|(_, u)| u);
        for u in updates {
            self.send_durable(conn, u);
        }
        self.add_agent(conn, a);
        self.listen(now, conn, true);
    }

    pub fn handle_agent_disconnect(&mut self, now: Millis, conn: ConnId) {
        self.heard.remove(&conn);
        self.remove_agent(conn);
        // A call or share this console had cannot go on without it.
        self.calls_of_closed_console(now, conn);
    }

    /// Closes every socket of a user at once (disabled, role or password changed).
    pub fn handle_rest_close_user(&mut self, user_id: &str) {
        self.close_agents(
            |a| a.who.user_id.as_deref() == Some(user_id),
            CloseReason::SignedOut,
        );
    }

    /// Closes every socket opened with the key `public_key` (revoked): integrations'
    /// agent sockets opened with its secret key, and the tabs of visitors whose page
    /// said hello with it.
    pub fn handle_rest_close_key(&mut self, account_id: i64, public_key: &str) {
        self.close_agents(
            |a| a.who.account_id == account_id && a.who.api_key.as_deref() == Some(public_key),
            CloseReason::KeyRevoked,
        );
        let mut doomed: Vec<ConnId> = self
            .visitors
            .values()
            .filter(|e| e.account_id == account_id && e.visitor.api_key == public_key)
            .flat_map(|e| e.sockets.values().copied())
            .collect();
        doomed.sort_unstable();
        for conn in doomed {
            self.outputs.push_back(Output::Close {
                conn,
                reason: CloseReason::KeyRevoked,
            });
        }
    }

    /// Closes the sockets opened with a sign-in session (signed out).
    pub fn handle_rest_close_auth_session(&mut self, session: &str) {
        self.close_agents(
            |a| a.who.auth_session.as_deref() == Some(session),
            CloseReason::SignedOut,
        );
    }

    fn close_agents(&mut self, pick: impl Fn(&AgentConn) -> bool, reason: CloseReason) {
        let mut doomed: Vec<ConnId> = self
            .agents
            .values()
            .flat_map(|m| m.iter())
            .filter(|(_, a)| pick(a))
            .map(|(id, _)| *id)
            .collect();
        doomed.sort_unstable();
        for conn in doomed {
            // Another node's socket: that node closes it (every node hears of it).
            if self.remove_agent(conn).is_some_and(|a| a.local) {
                self.outputs.push_back(Output::Close { conn, reason });
            }
        }
    }

    /// A frame from an agent's socket; a refused one is answered with an error frame.
    pub fn handle_agent_frame(&mut self, now: Millis, conn: ConnId, msg: AgentMessage) {
        self.handle_heard(now, conn);
        if let Err(e) = self.agent_frame(now, conn, msg) {
            self.send_error(conn, &e);
        }
    }

    fn agent_frame(
        &mut self,
        now: Millis,
        conn: ConnId,
        msg: AgentMessage,
    ) -> Result<(), HubError> {
        let Some(a) = self.agent_at(conn) else {
            return Err(HubError::UnknownConnection);
        };
        let (account_id, agent, ip, may_join_any) = (
            a.account_id(),
            a.agent().clone(),
            a.who.ip.clone(),
            a.who.may_join_any,
        );
        // Every privileged act is attributable: the entry names the agent, its address,
        // what it acted on and how it went.
        let audited = |hub: &mut Hub, action: &str, target: &str, r: &Result<(), HubError>| {
            let result = r.as_ref().map_or_else(|e| e.code().as_str(), |_| "ok");
            hub.audit(
                now,
                account_id,
                &agent.id,
                action,
                Some(target),
                Some(&ip),
                result,
            );
        };
        match msg {
            AgentMessage::Hello { .. } => Err(HubError::UnexpectedHello),
            AgentMessage::Heartbeat => {
                self.send(conn, heartbeat_ack(), Delivery::Now);
                Ok(())
            }
            AgentMessage::RequestSession { short_id, found_by } => {
                let source = match found_by {
                    FoundBy::LookupCode => SessionSource::LookupCode,
                    FoundBy::Search => SessionSource::Search,
                };
                self.watch(conn, &short_id);
                let r = self
                    .handle_rest_request_session(now, account_id, &short_id, agent.clone(), source)
                    .map(|(session_id, _)| session_id);
                let target = r.as_deref().unwrap_or(short_id.as_str()).to_string();
                let r = r.map(|_| ());
                audited(self, "session.requested", &target, &r);
                r
            }
            AgentMessage::JoinSession { session_id } => {
                let r =
                    self.join_session(now, account_id, &session_id, agent.clone(), may_join_any);
                if r.is_ok() {
                    if let Some(v) = self
                        .sessions
                        .get(&session_id)
                        .map(|s| s.session.visitor_id.clone())
                    {
                        self.watch(conn, &v);
                    }
                }
                audited(self, "session.joined", &session_id, &r);
                r
            }
            AgentMessage::EndSession { session_id } => {
                let r =
                    self.with_session(now, account_id, &session_id, Some(&agent.id), |m, now| {
                        m.handle_agent_end(now)
                    });
                audited(self, "session.ended", &session_id, &r);
                r
            }
            AgentMessage::LeaveSession { session_id } => {
                let id = agent.id.clone();
                self.with_session(
                    now,
                    account_id,
                    &session_id,
                    Some(&agent.id),
                    move |m, now| m.handle_agent_leave(now, &id),
                )
            }
            AgentMessage::RateSession {
                session_id,
                rating,
                feedback,
            } => {
                let r = self.rate_session_by_agent(
                    account_id,
                    &agent.id,
                    &session_id,
                    rating,
                    feedback,
                );
                audited(self, "session.rated", &session_id, &r);
                r
            }
            AgentMessage::Note { session_id, text } => {
                let r =
                    self.handle_rest_add_note(now, account_id, &session_id, &agent.id, text, true);
                audited(self, "note.added", &session_id, &r);
                r
            }
            AgentMessage::RequestControl { session_id } => {
                let id = agent.id.clone();
                let r = self.with_session(
                    now,
                    account_id,
                    &session_id,
                    Some(&agent.id),
                    move |m, now| m.handle_control_request(now, &id),
                );
                audited(self, "control.requested", &session_id, &r);
                r
            }
            AgentMessage::ReleaseControl { session_id } => {
                let id = agent.id.clone();
                let r = self.with_session(
                    now,
                    account_id,
                    &session_id,
                    Some(&agent.id),
                    move |m, now| m.handle_agent_control_release(now, &id),
                );
                audited(self, "control.released", &session_id, &r);
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
                    audited(self, "redirect", &session_id, &r);
                }
                r
            }
            AgentMessage::MirrorResync { session_id } => {
                self.mirror_resync(now, account_id, &agent, &session_id)
            }
            AgentMessage::Draw {
                session_id,
                tab,
                ink,
            } => self.draw(now, account_id, &agent, &session_id, &tab, ink),
            AgentMessage::SetActiveConnection {
                session_id,
                unique_connection_id,
            } => self.set_active_connection(
                now,
                account_id,
                &agent,
                &session_id,
                unique_connection_id,
            ),
            AgentMessage::Search { q }
                if q.trim().len() > covisit::core::derive::MAX_SEARCH_QUERY =>
            {
                Err(HubError::InvalidArgument(
                    "`q` is too long (at most 256 bytes)".into(),
                ))
            }
            AgentMessage::Search { q } => {
                self.search(now, conn, account_id, &q);
                Ok(())
            }
            // An offline visitor (not in memory) is watched all the same: its updates
            // come when it is back. Its id follows the one rule of every id (core::ids).
            AgentMessage::Watch { short_id } if !covisit::core::ids::valid_id(&short_id) => {
                Err(HubError::UnknownVisitor)
            }
            AgentMessage::Watch { short_id } => {
                self.watch(conn, &short_id);
                if let Some(visitor) = self.visitor(now, account_id, &short_id) {
                    self.send_durable(conn, encode(&ServerToAgent::VisitorUpdate { visitor }));
                }
                Ok(())
            }
            AgentMessage::Call { session_id, call } => {
                let kind = match &call {
                    CallFromAgent::Start { .. } => Some("call.started"),
                    CallFromAgent::ShareRequest { .. } => Some("share.requested"),
                    _ => None,
                };
                let r = self.agent_call(now, conn, account_id, &agent, &session_id, call);
                if let Some(action) = kind {
                    audited(self, action, &session_id, &r);
                }
                r
            }
            AgentMessage::Unknown => Err(HubError::UnknownMessageType),
        }
    }

    /// Adds `short_id` to what the agent on `conn` watches.
    pub(super) fn watch(&mut self, conn: ConnId, short_id: &str) {
        if let Some(a) = self.agent_at_mut(conn) {
            a.watch(short_id);
        }
    }

    /// A visitor the hub forgot (erased): no agent watches it any more.
    pub(super) fn forget_watch(&mut self, short_id: &str) {
        for a in self.agents.values_mut().flat_map(|m| m.values_mut()) {
            a.unwatch(short_id);
        }
    }

    /// The account's online visitors that match `q` (the same rule as REST search:
    /// `covisit::core::derive::visitor_matches`), which the agent then watches.
    fn search(&mut self, now: Millis, conn: ConnId, account_id: i64, q: &str) {
        let q = q.trim();
        let mut found: Vec<_> = if q.is_empty() {
            Vec::new()
        } else {
            self.online_visitors(now, account_id)
                .into_iter()
                .filter(|v| covisit::core::derive::visitor_matches(v, q))
                .take(MAX_SEARCH_RESULTS)
                .collect()
        };
        for v in &found {
            self.watch(conn, &v.short_id);
        }
        found.truncate(MAX_SEARCH_RESULTS);
        self.send_durable(
            conn,
            encode(&ServerToAgent::SearchResult {
                q: q.to_string(),
                visitors: found,
            }),
        );
    }
}

fn heartbeat_ack() -> Frame {
    static ACK: std::sync::LazyLock<Frame> =
        std::sync::LazyLock::new(|| Frame::from(encode(&ServerToAgent::HeartbeatAck)));
    ACK.clone()
}
