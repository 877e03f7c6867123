//! Co-browsing relay: a tab's mirror data to the session's agents (passed through as
//! the text it came in, checked for shape only: never built into a JSON tree here), an
//! agent's remote actions to the controlled tab and the page's answers back, snapshot
//! resyncs, agents' laser and ink, and the tab each agent watches.

use covisit::core::json::Json;
use covisit::core::machine::{ControlState, SessionStatus};
use covisit::core::model::{Agent, ConnectionStatus};
use covisit::core::protocol::{
    encode, ConsoleEntry, ConsoleKind, Ink, MirrorData, RemoteAction, RemoteKind, RemoteRefusal,
    ServerToAgent, ServerToVisitor, INK_COLORS, MAX_CONSOLE_ENTRIES, MAX_REMOTE_VALUE_LEN,
};
use covisit::core::Millis;

use super::{Delivery, Frame, Hub, HubError};

/// A number naming a visitor tab in `Delivery::Relay` (the same for the same tab).
fn tab_number(connection_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    connection_id.hash(&mut h);
    h.finish()
}

/// At most this many remote actions wait for the page's answer; older ones are forgotten.
const MAX_PENDING_ACTIONS: usize = 256;
/// An agent's `mirror_resync` reaches the visitor at most this often per session.
const RESYNC_INTERVAL_MS: u64 = 1000;
/// The remote console's rate limit per tab: at most this many entries per window...
pub const CONSOLE_RATE_ENTRIES: usize = 100;
/// ...of this many milliseconds; the rest are dropped, and counted in one line.
pub const CONSOLE_RATE_WINDOW_MS: u64 = 10_000;

impl Hub {
    /// A tab's mirror records go to the session's agents (those who have not left),
    /// only while the session is active; a frame that races the end is dropped quietly.
    pub(super) fn relay_mirror(
        &mut self,
        now: Millis,
        short_id: &str,
        connection_id: &str,
        data: MirrorData,
    ) -> Result<(), HubError> {
        // An asset the page sends (a frame of its own, one `a` record): for the
        // request that asked, never relayed as mirror data.
        if let Some(reply) = data.asset_reply() {
            let reply = reply.map_err(HubError::InvalidMirrorFrame)?;
            let conn = self
                .visitors
                .get(short_id)
                .and_then(|e| e.sockets.get(connection_id))
                .copied();
            if let Some(conn) = conn {
                self.asset_reply(conn, reply, data.text().len());
            }
            return Ok(());
        }
        data.check().map_err(HubError::InvalidMirrorFrame)?;
        let Some(entry) = self.visitors.get(short_id) else {
            return Ok(());
        };
        // Consent: page content reaches agents only while the session is active.
        if entry.machine.status() != SessionStatus::Active {
            return Ok(());
        }
        let Some(s) = entry
            .machine
            .session_id()
            .and_then(|sid| self.sessions.get(sid))
        else {
            return Ok(());
        };
        let session_id = s.session.id.clone();
        let delivery = Delivery::Relay {
            tab: tab_number(connection_id),
            snapshot: data.starts_snapshot(),
        };
        let size = data.text().len();
        if s.recording.is_some() {
            self.record_mirror(now, &session_id, connection_id, &data);
        }
        let Some(entry) = self.visitors.get(short_id) else {
            return Ok(());
        };
        let Some(s) = self.sessions.get(&session_id) else {
            return Ok(());
        };
        let frame = Frame::from(encode(&ServerToAgent::Mirror {
            session_id: session_id.clone(),
            tab: connection_id.to_string(),
            data,
        }));
        let agents: Vec<String> = s
            .parts
            .iter()
            .filter(|p| p.left.is_none())
            .map(|p| p.agent.id.clone())
            .collect();
        for conn in self.sockets_of(entry.account_id, &agents) {
            self.send(conn, frame.clone(), delivery);
        }
        self.count_mirror_bytes(&session_id, size);
        Ok(())
    }

    /// The remote console: a tab's console lines go to the session's agents (those who
    /// have not left), only while the session is active and that tab's page allows it
    /// (`allowRemoteConsole`), each entry within the protocol's limits, at most
    /// [`CONSOLE_RATE_ENTRIES`] per [`CONSOLE_RATE_WINDOW_MS`] per tab (what is dropped
    /// is announced in one `warn` line once the window is over). The first relayed line
    /// counts `remote_console` into the Session's `features_used`. Like mirror frames,
    /// a batch that races the session's end is dropped quietly.
    pub(super) fn relay_console(
        &mut self,
        now: Millis,
        short_id: &str,
        connection_id: &str,
        mut entries: Vec<ConsoleEntry>,
    ) -> Result<(), HubError> {
        if entries.len() > MAX_CONSOLE_ENTRIES {
            return Err(HubError::InvalidArgument(format!(
                "a console frame holds at most {MAX_CONSOLE_ENTRIES} entries"
            )));
        }
        for e in &entries {
            e.check()
                .map_err(|why| HubError::InvalidArgument(why.to_string()))?;
        }
        let Some(entry) = self.visitors.get_mut(short_id) else {
            return Ok(());
        };
        let Some(window) = entry.console.get_mut(connection_id) else {
            return Err(HubError::PermissionDenied("allowRemoteConsole"));
        };
        // Consent: page content reaches agents only while the session is active.
        if entry.machine.status() != SessionStatus::Active {
            return Ok(());
        }
        if now.0.saturating_sub(window.0 .0) >= CONSOLE_RATE_WINDOW_MS {
            if window.2 > 0 {
                entries.insert(
                    0,
                    ConsoleEntry {
                        kind: ConsoleKind::Warn,
                        at: now.0,
                        text: format!(
                            "covisit: {} console lines were dropped (more than {CONSOLE_RATE_ENTRIES} in {} s)",
                            window.2,
                            CONSOLE_RATE_WINDOW_MS / 1000
                        ),
                        method: None,
                        url: None,
                        status: None,
                    },
                );
            }
            *window = (now, 0, 0);
        }
        let room = CONSOLE_RATE_ENTRIES.saturating_sub(window.1);
        if entries.len() > room {
            window.2 += entries.len() - room;
            entries.truncate(room);
        }
        window.1 += entries.len();
        if entries.is_empty() {
            return Ok(());
        }
        let account_id = entry.account_id;
        let Some(s) = entry
            .machine
            .session_id()
            .and_then(|sid| self.sessions.get_mut(sid))
        else {
            return Ok(());
        };
        let new_feature = !s
            .session
            .features_used
            .iter()
            .any(|f| f == "remote_console");
        if new_feature {
            s.session.features_used.push("remote_console".into());
        }
        let frame = Frame::from(encode(&ServerToAgent::Console {
            session_id: s.session.id.clone(),
            tab: connection_id.to_string(),
            entries,
        }));
        let agents: Vec<String> = s
            .parts
            .iter()
            .filter(|p| p.left.is_none())
            .map(|p| p.agent.id.clone())
            .collect();
        for conn in self.sockets_of(account_id, &agents) {
            self.send(conn, frame.clone(), Delivery::Now);
        }
        if new_feature {
            // features_used changed: persisted and announced like any session change.
            self.after_change(short_id, now);
        }
        Ok(())
    }

    /// The page applied (or refused) remote action `id`: the agent who sent it hears
    /// it, and an applied one counts into `features_used`.
    pub(super) fn remote_applied(
        &mut self,
        short_id: &str,
        id: u32,
        ok: bool,
        reason: Option<RemoteRefusal>,
    ) -> Result<(), HubError> {
        let entry = self
            .visitors
            .get(short_id)
            .ok_or(HubError::UnknownVisitor)?;
        let account_id = entry.account_id;
        let s = entry
            .machine
            .session_id()
            .and_then(|sid| self.sessions.get_mut(sid))
            .ok_or(HubError::UnknownAction)?;
        let i = s
            .remote
            .pending
            .iter()
            .position(|p| p.0 == id)
            .ok_or(HubError::UnknownAction)?;
        let (_, agent_id, kind) = s.remote.pending.remove(i).ok_or(HubError::UnknownAction)?;
        if let Some(f) = kind.feature().filter(|_| ok) {
            if !s.session.features_used.iter().any(|x| x == f) {
                // Persisted and announced by after_change.
                s.session.features_used.push(f.to_string());
            }
        }
        let frame = Frame::from(encode(&ServerToAgent::RemoteResult {
            session_id: s.session.id.clone(),
            id,
            kind,
            ok,
            reason,
        }));
        for conn in self.sockets_of(account_id, std::slice::from_ref(&agent_id)) {
            self.send(conn, frame.clone(), Delivery::Now);
        }
        Ok(())
    }

    /// An agent's remote action goes to the controlled tab, only while the session is
    /// active, control is granted to this agent, and the visitor's config allows that
    /// kind (SPEC.md section 2). The page checks all of it again.
    pub(super) fn remote_action(
        &mut self,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
        tab: Option<String>,
        action: RemoteAction,
    ) -> Result<(), HubError> {
        match &action {
            RemoteAction::Type { value, .. } if value.len() > MAX_REMOTE_VALUE_LEN => {
                return Err(HubError::InvalidArgument(
                    "`value` is too long (at most 16 KiB)".into(),
                ))
            }
            RemoteAction::Redirect { url } if url.is_empty() || url.len() > 4096 => {
                return Err(HubError::InvalidArgument(
                    "`url` must be 1 to 4096 bytes".into(),
                ))
            }
            _ => {}
        }
        let (_, entry) = self.agent_visitor(account_id, &agent.id, session_id)?;
        let connection_id = match entry.machine.control() {
            ControlState::Granted {
                agent_id,
                connection_id,
            } if agent_id == agent.id => connection_id,
            _ => return Err(HubError::ControlNotGranted),
        };
        if tab.as_ref().is_some_and(|t| *t != connection_id) {
            return Err(HubError::WrongTab);
        }
        let kind = action.kind();
        if !kind.allowed_by(&entry.machine.options().permissions) {
            return Err(HubError::PermissionDenied(
                kind.permission().unwrap_or_default(),
            ));
        }
        let conn = *entry
            .sockets
            .get(&connection_id)
            .ok_or(HubError::TabOffline)?;
        let remote = &mut self
            .sessions
            .get_mut(session_id)
            .ok_or(HubError::UnknownSession)?
            .remote;
        remote.next_id = remote.next_id.wrapping_add(1);
        let id = remote.next_id;
        if kind != RemoteKind::Pointer {
            if remote.pending.len() >= MAX_PENDING_ACTIONS {
                remote.pending.pop_front();
            }
            remote.pending.push_back((id, agent.id.clone(), kind));
        }
        let frame = encode(&ServerToVisitor::RemoteAction {
            id,
            agent_id: agent.id.clone(),
            action,
        });
        self.send(conn, Frame::from(frame), Delivery::Now);
        Ok(())
    }

    /// Asks the visitor's tabs for a fresh snapshot (an agent joined, reloaded its
    /// console, or fell behind), at most once a second per session.
    pub(super) fn mirror_resync(
        &mut self,
        now: Millis,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
    ) -> Result<(), HubError> {
        let visitor_id = self
            .agent_session(account_id, &agent.id, session_id)?
            .session
            .visitor_id
            .clone();
        self.resync(now, &visitor_id, session_id)
    }

    /// The session's visitor sends a new snapshot (throttled).
    pub(super) fn resync(
        &mut self,
        now: Millis,
        visitor_id: &str,
        session_id: &str,
    ) -> Result<(), HubError> {
        let entry = self.active_visitor(visitor_id, session_id)?;
        let conns: Vec<_> = entry.sockets.values().copied().collect();
        let s = self
            .sessions
            .get_mut(session_id)
            .ok_or(HubError::UnknownSession)?;
        if now.0 < s.remote.last_resync.0 + RESYNC_INTERVAL_MS {
            return Ok(()); // the snapshot asked for a moment ago is on its way
        }
        s.remote.last_resync = now;
        let frame = Frame::from(encode(&ServerToVisitor::MirrorResync));
        for conn in conns {
            self.send(conn, frame.clone(), Delivery::Now);
        }
        Ok(())
    }

    /// An agent's console fell behind and lost mirror data (the shell dropped it): its
    /// sessions' visitors send a new snapshot.
    pub fn handle_agent_lagged(&mut self, now: Millis, conn: super::ConnId) {
        let Some(a) = self.agent_at(conn) else {
            return;
        };
        let (account_id, agent_id) = (a.account_id(), a.agent().id.clone());
        let live: Vec<(String, String)> = self
            .sessions
            .values()
            .filter(|s| {
                s.account_id == account_id
                    && s.status == SessionStatus::Active
                    && s.has_agent(&agent_id)
            })
            .map(|s| (s.session.visitor_id.clone(), s.session.id.clone()))
            .collect();
        for (visitor, session) in live {
            let _ = self.resync(now, &visitor, &session);
        }
    }

    /// Relays an agent's laser or ink to the visitor's tab `tab` and to the session's
    /// other agents: only for an agent in the active session, an open tab of its visitor
    /// whose page allows drawing, and an ink within the protocol's limits. The first ink
    /// of each kind is counted in the Session's `features_used` (`laser`, `drawing`).
    /// The page checks all of it again (`src/core/client/draw.rs`).
    pub(super) fn draw(
        &mut self,
        now: Millis,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
        tab: &str,
        ink: Ink,
    ) -> Result<(), HubError> {
        ink.check()
            .map_err(|why| HubError::InvalidArgument(why.to_string()))?;
        let (visitor_id, entry) = self.agent_visitor(account_id, &agent.id, session_id)?;
        if entry
            .machine
            .connection(tab)
            .is_none_or(|c| c.status != ConnectionStatus::Active)
        {
            return Err(HubError::UnknownConnection);
        }
        if entry.no_drawing.contains(tab) {
            return Err(HubError::PermissionDenied("allowAgentDrawing"));
        }
        let conn = *entry.sockets.get(tab).ok_or(HubError::TabOffline)?;
        let Some(s) = self.sessions.get_mut(session_id) else {
            return Err(HubError::UnknownSession);
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
        let others: Vec<String> = s
            .parts
            .iter()
            .filter(|p| p.left.is_none() && p.agent.id != agent.id)
            .map(|p| p.agent.id.clone())
            .collect();
        let to_page = encode(&ServerToVisitor::Draw {
            agent_id: agent.id.clone(),
            name: agent.name.clone(),
            color,
            ink: Json::from(&ink),
        });
        self.send(conn, Frame::from(to_page), Delivery::Now);
        let to_agents = Frame::from(encode(&ServerToAgent::Draw {
            session_id: session_id.to_string(),
            tab: tab.to_string(),
            agent_id: agent.id.clone(),
            name: agent.name.clone(),
            color,
            ink,
        }));
        for c in self.sockets_of(account_id, &others) {
            self.send(c, to_agents.clone(), Delivery::Now);
        }
        if new_feature {
            // features_used changed: persisted and announced like any session change.
            self.after_change(&visitor_id, now);
        }
        Ok(())
    }

    /// The seed's `setActiveConnection`: the agent watches the visitor's tab
    /// `connection` (a `uniqueConnectionId`; None: it follows the tab the visitor is
    /// in). Recorded for `session_update.watching`, announced to the session's agents,
    /// and the tab is asked for a fresh snapshot (within the session's one-a-second
    /// resync limit). Control is not moved: it stays in the tab it was granted in.
    pub(super) fn set_active_connection(
        &mut self,
        now: Millis,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
        connection: Option<String>,
    ) -> Result<(), HubError> {
        let (_, entry) = self.agent_visitor(account_id, &agent.id, session_id)?;
        let tab_conn = match &connection {
            Some(c) => Some(
                entry
                    .machine
                    .connection(c)
                    .filter(|c| c.status == ConnectionStatus::Active)
                    .and_then(|_| entry.sockets.get(c))
                    .copied()
                    .ok_or(HubError::UnknownConnection)?,
            ),
            None => None,
        };
        let Some(s) = self.sessions.get_mut(session_id) else {
            return Err(HubError::UnknownSession);
        };
        match connection {
            Some(c) => s.workspace.watching.insert(agent.id.clone(), c),
            None => s.workspace.watching.remove(&agent.id),
        };
        let resync = tab_conn.filter(|_| now.0 >= s.remote.last_resync.0 + RESYNC_INTERVAL_MS);
        if resync.is_some() {
            s.remote.last_resync = now;
        }
        let frame = Frame::from(s.update_frame());
        let ids: Vec<String> = s.parts.iter().map(|p| p.agent.id.clone()).collect();
        if let Some(c) = resync {
            self.send(
                c,
                Frame::from(encode(&ServerToVisitor::MirrorResync)),
                Delivery::Now,
            );
        }
        for c in self.sockets_of(account_id, &ids) {
            self.send(c, frame.clone(), Delivery::Durable);
        }
        Ok(())
    }

    /// The active session `session_id` of the account, if `agent_id` takes part in it.
    /// The agent's active session's visitor: its id and entry (see [`Hub::agent_session`]
    /// and [`Hub::active_visitor`]).
    pub(super) fn agent_visitor(
        &self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
    ) -> Result<(String, &super::VisitorEntry), HubError> {
        let visitor_id = &self
            .agent_session(account_id, agent_id, session_id)?
            .session
            .visitor_id;
        Ok((
            visitor_id.clone(),
            self.active_visitor(visitor_id, session_id)?,
        ))
    }

    /// The visitor of session `session_id`, while that session is active on it.
    pub(super) fn active_visitor(
        &self,
        visitor_id: &str,
        session_id: &str,
    ) -> Result<&super::VisitorEntry, HubError> {
        self.visitors
            .get(visitor_id)
            .map(|e| &**e)
            .filter(|e| {
                e.machine.session_id() == Some(session_id)
                    && e.machine.status() == SessionStatus::Active
            })
            .ok_or(HubError::SessionNotActive)
    }

    pub(super) fn agent_session(
        &self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
    ) -> Result<&super::sessions::SessionEntry, HubError> {
        let s = self
            .sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
            .ok_or(HubError::UnknownSession)?;
        if s.status != SessionStatus::Active {
            return Err(HubError::SessionNotActive);
        }
        if !s.has_agent(agent_id) {
            return Err(HubError::NotInSession);
        }
        Ok(s)
    }
}
