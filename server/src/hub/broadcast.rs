//! After every input: route the visitor machine's events to its tabs, follow them in
//! the session's records, store what changed, and tell the agents who look at this
//! visitor. Change detection compares the records with what was last written and sent
//! (not serialized text). Agents get a visitor's `visitor_update` when they watch it
//! (their list shows it: `agents::AgentConn::watching`), at most once a second unless
//! its online / in-session / waiting flags changed; the agents of its session get
//! every change at once; a visitor that comes online is announced to the whole account.

use std::collections::{BTreeSet, HashMap};

use covisit::core::machine::{ControlEndReason, Event, SessionStatus};
use covisit::core::model::{DisconnectType, Visitor};
use covisit::core::protocol::{
    encode, ControlPhase, ServerToAgent, ServerToVisitor, SessionControl, VisitorState,
};
use covisit::core::Millis;

use super::agents::AgentConn;
use super::timers::Timer;
use super::{
    ConnId, Delivery, Frame, Hub, NewsKind, VisitorNews, BROADCAST_INTERVAL_MS, BROADCAST_TICK_MS,
    URL_BROADCAST_INTERVAL_MS,
};
use crate::store::Write;

/// An audit entry the visitor's machine caused: (action, actor, target, result).
type Audit = (&'static str, String, String, String);

impl Hub {
    pub(super) fn after_change(&mut self, short_id: &str, now: Millis) {
        self.after_change_as(short_id, now, false);
    }

    /// After a url-only change (SPA navigation): the short path when the machine
    /// reported nothing but a state change. The tab patched its own connection, so it
    /// gets no `state`; the session's agents get the `visitor_update` at once (it
    /// carries no new durable state: `last_url` is written at the next tick, coalesced),
    /// watching agents at most once a second; no `session_update`.
    pub(super) fn url_changed(&mut self, short_id: &str, now: Millis) {
        self.after_change_as(short_id, now, true);
    }

    fn after_change_as(&mut self, short_id: &str, now: Millis, url_only: bool) {
        // Calls and shares first: a session's end (or a tab's) ends them, and the tab's
        // `fullTabStatus` follows the share in the state sent below.
        if let Some(sid) = self
            .visitors
            .get(short_id)
            .and_then(|e| e.machine.session_id())
            .map(str::to_string)
        {
            self.reconcile_calls(short_id, &sid, now);
        }
        let Some(entry) = self.visitors.get_mut(short_id) else {
            return;
        };
        let account_id = entry.account_id;
        let mut touched_session: Option<String> = entry.machine.session_id().map(str::to_string);
        let mut state_changed = false;
        let mut other_events = false;
        let visitor_actor = format!("visitor:{short_id}");
        let mut audits: Vec<Audit> = Vec::new();
        let mut frames: Vec<(Option<String>, String)> = Vec::new();
        while let Some(event) = entry.machine.poll_event() {
            if event != Event::StateChanged {
                other_events = true;
            }
            let session = touched_session.clone().unwrap_or_default();
            let (target, frame) = match event {
                Event::SessionRequested {
                    session_id,
                    agent,
                    connection_id,
                } => {
                    // The prompt says so when the session will be recorded.
                    let recorded = self
                        .sessions
                        .get(&session_id)
                        .is_some_and(|s| s.recording.is_some());
                    (
                        Some(connection_id),
                        ServerToVisitor::SessionRequest {
                            session_id,
                            agent,
                            recorded,
                        },
                    )
                }
                Event::SessionStarted { session_id } => {
                    audits.push(if entry.machine.session_authorized() {
                        (
                            "session.authorized",
                            visitor_actor.clone(),
                            session_id.clone(),
                            "ok".into(),
                        )
                    } else {
                        (
                            "session.started",
                            "system".into(),
                            session_id.clone(),
                            "no_authorization_required".into(),
                        )
                    });
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
                    let went_live = self
                        .sessions
                        .get(&session_id)
                        .is_some_and(|s| s.session.went_live);
                    match disconnect_type {
                        DisconnectType::Client if !went_live => audits.push((
                            "session.denied",
                            visitor_actor.clone(),
                            session_id.clone(),
                            "ok".into(),
                        )),
                        DisconnectType::Client => audits.push((
                            "session.ended",
                            visitor_actor.clone(),
                            session_id.clone(),
                            "client".into(),
                        )),
                        // An agent's end and the server's (REST, erasure) are audited
                        // with whoever did it.
                        DisconnectType::Peer | DisconnectType::System => {}
                        DisconnectType::Timeout => audits.push((
                            "session.ended",
                            "system".into(),
                            session_id.clone(),
                            "timeout".into(),
                        )),
                        DisconnectType::TransportFailure => audits.push((
                            "session.ended",
                            "system".into(),
                            session_id.clone(),
                            "transport.failure".into(),
                        )),
                    }
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
                    audits.push((
                        "control.granted",
                        visitor_actor.clone(),
                        session.clone(),
                        "ok".into(),
                    ));
                    if let Some(s) = touched_session
                        .as_ref()
                        .and_then(|id| self.sessions.get_mut(id))
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
                    match reason {
                        ControlEndReason::Denied => audits.push((
                            "control.denied",
                            visitor_actor.clone(),
                            session.clone(),
                            "ok".into(),
                        )),
                        ControlEndReason::RevokedByVisitor => audits.push((
                            "control.revoked",
                            visitor_actor.clone(),
                            session.clone(),
                            "ok".into(),
                        )),
                        ControlEndReason::FocusLost => audits.push((
                            "control.ended",
                            "system".into(),
                            session.clone(),
                            "focus_lost".into(),
                        )),
                        // The agent's release is audited where it came in; a session's
                        // end covers the control that ended with it.
                        ControlEndReason::RevokedByAgent | ControlEndReason::SessionEnded => {}
                    }
                    if let Some(s) = touched_session
                        .as_ref()
                        .and_then(|id| self.sessions.get_mut(id))
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
            frames.push((target, encode(&frame)));
        }
        for (target, text) in frames {
            let conns: Vec<ConnId> = match &target {
                Some(c) => entry.sockets.get(c).copied().into_iter().collect(),
                None => sorted(entry.sockets.values().copied()),
            };
            let frame = Frame::from(text);
            for conn in conns {
                self.outputs.push_back(super::Output::Send {
                    conn,
                    frame: frame.clone(),
                    delivery: Delivery::Durable,
                });
            }
        }
        for (action, actor, target, result) in audits {
            self.audit(
                now,
                account_id,
                &actor,
                action,
                Some(&target),
                None,
                &result,
            );
        }
        if url_only && !other_events {
            self.url_only_update(short_id, now);
            return;
        }
        let Some(entry) = self.visitors.get_mut(short_id) else {
            return;
        };
        if state_changed {
            let status = entry.machine.status();
            let communication = entry.machine.communication().cloned();
            let mut states = Vec::new();
            for (cid, conn) in &entry.sockets {
                let state = VisitorState::new(
                    status,
                    entry.machine.connection(cid),
                    communication.as_ref(),
                );
                states.push((
                    *conn,
                    encode(&ServerToVisitor::State {
                        state: Box::new(state),
                    }),
                ));
            }
            states.sort();
            let writes: Vec<Write> = entry
                .machine
                .connections()
                .iter()
                .map(|c| Write::Connection(short_id.to_string(), Box::new(c.clone())))
                .collect();
            for (conn, text) in states {
                self.send_durable(conn, text);
            }
            for w in writes {
                self.persist(w);
            }
        }
        let Some(entry) = self.visitors.get_mut(short_id) else {
            return;
        };
        // The visitor record.
        let status = entry.machine.status();
        let came_online = entry.machine.is_online() && !entry.visitor.is_online;
        entry.visitor.is_online = entry.machine.is_online();
        entry.visitor.is_in_session = status == SessionStatus::Active;
        if entry.machine.is_online() {
            entry.visitor.last_seen_at = now.to_iso8601();
        }
        let mut view = entry.view(now);
        let print = fingerprint(&mut view);
        let visitor_changed = entry.last_broadcast != Some(print);
        if visitor_changed {
            entry.last_broadcast = Some(print);
        }
        let flags = (view.is_online, view.is_in_session, view.is_waiting_for_call);
        let flags_changed = flags != entry.broadcast_flags;
        let broadcast_now = visitor_changed
            && (flags_changed || now.0 >= entry.broadcast_at.0 + BROADCAST_INTERVAL_MS);
        if broadcast_now {
            entry.broadcast_at = now;
            entry.broadcast_flags = flags;
        }
        if visitor_changed {
            entry.pending_url_only = false;
        }
        // The session record.
        let mut session_frame: Option<(Frame, Vec<String>)> = None;
        if let Some(sid) = &touched_session {
            if let Some(s) = self.sessions.get_mut(sid) {
                let entry = &self.visitors[short_id];
                let changed = s.follow(&entry.machine, now);
                if s.recording.as_ref().is_some_and(|r| r.ending) {
                    self.end_recording_soon(now, sid);
                }
                let Some(s) = self.sessions.get_mut(sid) else {
                    return;
                };
                if changed {
                    let (session, status, comms) =
                        (s.session.clone(), s.status, s.communications());
                    self.outputs
                        .push_back(super::Output::Persist(Write::Session(
                            account_id,
                            Box::new(session),
                            status.as_str().into(),
                        )));
                    for c in comms {
                        self.outputs
                            .push_back(super::Output::Persist(Write::Communication(
                                sid.clone(),
                                Box::new(c),
                            )));
                    }
                }
                let s = &self.sessions[sid];
                let ids: Vec<String> = s.parts.iter().map(|p| p.agent.id.clone()).collect();
                session_frame = Some((Frame::from(s.update_frame()), ids));
            }
        }
        // Written when it changed (last_seen_at goes along with the next change).
        if visitor_changed || state_changed {
            self.persist(Write::Visitor(account_id, Box::new(view.clone())));
        }
        // A visitor that came online is news to every agent of the account (it joins
        // their lists); other changes go to those who watch it. Agents whose sockets
        // other nodes hold hear of it from their own node (the news published below),
        // except for the session's frames, which go to them from here.
        let news = (visitor_changed && self.owned.is_some()).then(|| VisitorNews {
            account_id,
            visitor: view.clone(),
            session_agents: session_frame
                .as_ref()
                .map(|(_, ids)| ids.clone())
                .unwrap_or_default(),
            kind: NewsKind::Change {
                now: broadcast_now,
                came_online,
            },
        });
        let update = visitor_changed
            .then(|| Frame::from(encode(&ServerToAgent::VisitorUpdate { visitor: view })));
        let mut sends: Vec<(ConnId, Frame)> = Vec::new();
        let mut queue: Vec<ConnId> = Vec::new();
        let agents = self.agents.get_mut(&account_id).into_iter().flatten();
        for (conn, a) in agents {
            let in_session = session_frame
                .as_ref()
                .is_some_and(|(_, ids)| ids.contains(&a.agent().id));
            if came_online && a.local {
                a.watch(short_id);
            }
            if let Some(u) = update.as_ref().filter(|_| a.local) {
                let watching = broadcast_now && a.watching.contains(short_id);
                if in_session || came_online || (watching && flags_changed) {
                    sends.push((*conn, u.clone()));
                } else if watching {
                    queue.push(*conn);
                }
            }
            if let Some((frame, _)) = &session_frame {
                if in_session {
                    sends.push((*conn, frame.clone()));
                }
            }
        }
        for (conn, frame) in sends {
            self.send(conn, frame, Delivery::Durable);
        }
        self.queue_update(queue, short_id, now);
        if let Some(news) = news {
            self.publish(news);
        }
        if broadcast_now {
            self.pending_broadcasts.remove(short_id);
        } else if visitor_changed {
            self.pending_broadcasts.insert(short_id.to_string());
            self.timers
                .set_earliest(Timer::Broadcast, Millis(now.0 + BROADCAST_TICK_MS));
        }
        self.schedule(short_id, now);
        self.drop_if_gone(short_id, now);
    }

    /// A url-only change: see `url_changed`.
    fn url_only_update(&mut self, short_id: &str, now: Millis) {
        let Some(entry) = self.visitors.get_mut(short_id) else {
            return;
        };
        let account_id = entry.account_id;
        let mut view = entry.view(now);
        // What the session's agents are sent now: a later pass that finds nothing else
        // changed (a heartbeat) sends them nothing (with `None` it sent the same again).
        entry.last_broadcast = Some(fingerprint(&mut view));
        let broadcast_now = now.0 >= entry.broadcast_at.0 + URL_BROADCAST_INTERVAL_MS;
        if broadcast_now {
            entry.broadcast_at = now;
        } else if !self.pending_broadcasts.contains(short_id) {
            // Only a navigation waits: the longer interval applies.
            entry.pending_url_only = true;
        }
        let session_agents: Vec<String> = entry
            .machine
            .session_id()
            .and_then(|sid| self.sessions.get(sid))
            .map(|s| s.parts.iter().map(|p| p.agent.id.clone()).collect())
            .unwrap_or_default();
        let frame = Frame::from(encode(&ServerToAgent::VisitorUpdate {
            visitor: view.clone(),
        }));
        for conn in self.sockets_of(account_id, &session_agents) {
            if self.agent_at(conn).is_some_and(|a| a.local) {
                // It announces nothing durable (the url is written coalesced, best-effort).
                self.send(conn, frame.clone(), Delivery::Now);
            }
        }
        if broadcast_now {
            let in_session = |a: &AgentConn| session_agents.contains(&a.agent().id);
            let watchers = self.agent_conns(account_id, |a| {
                a.local && !in_session(a) && a.watching.contains(short_id)
            });
            self.queue_update(watchers, short_id, now);
        }
        // Nor does the news: only `last_url` (and `last_seen_at`) differ from the news
        // before it, whose writes it waits for in the shell if they are not committed.
        self.publish_now(VisitorNews {
            account_id,
            visitor: view,
            session_agents,
            kind: NewsKind::Change {
                now: broadcast_now,
                came_online: false,
            },
        });
        if broadcast_now {
            self.pending_broadcasts.remove(short_id);
        } else {
            self.pending_broadcasts.insert(short_id.to_string());
        }
        self.dirty_urls.insert(short_id.to_string());
        self.timers
            .set_earliest(Timer::Broadcast, Millis(now.0 + BROADCAST_TICK_MS));
        self.schedule(short_id, now);
    }

    /// The broadcast tick: coalesced url writes, and visitor updates held back by
    /// [`BROADCAST_INTERVAL_MS`] that are due now.
    pub(super) fn send_deferred(&mut self, now: Millis) {
        let mut next_due: Option<Millis> = None;
        // A navigation arms the timer one tick ahead, so its url is written within a
        // tick either way; held-back updates fire it too, at their own times (with
        // many visitors, many times a tick), and each time used to write every url.
        let urls_due = Millis(self.urls_written_at.0 + BROADCAST_TICK_MS);
        let mut dirty: Vec<String> = if now >= urls_due {
            self.urls_written_at = now;
            std::mem::take(&mut self.dirty_urls).into_iter().collect()
        } else {
            if !self.dirty_urls.is_empty() {
                next_due = Some(urls_due);
            }
            Vec::new()
        };
        dirty.sort();
        for id in dirty {
            let Some(entry) = self.visitors.get_mut(&id) else {
                continue;
            };
            let view = entry.view(now);
            let account_id = entry.account_id;
            let writes: Vec<Write> = entry
                .machine
                .connections()
                .iter()
                .map(|c| Write::Connection(id.clone(), Box::new(c.clone())))
                .collect();
            self.persist(Write::Visitor(account_id, Box::new(view)));
            for w in writes {
                self.persist(w);
            }
        }
        let mut pending: Vec<String> = std::mem::take(&mut self.pending_broadcasts)
            .into_iter()
            .collect();
        pending.sort();
        for id in pending {
            let Some(entry) = self.visitors.get_mut(&id) else {
                continue;
            };
            let interval = if entry.pending_url_only {
                URL_BROADCAST_INTERVAL_MS
            } else {
                BROADCAST_INTERVAL_MS
            };
            let due = Millis(entry.broadcast_at.0 + interval);
            if now < due {
                self.pending_broadcasts.insert(id);
                next_due = Some(next_due.map_or(due, |d| d.min(due)));
                continue;
            }
            let view = entry.view(now);
            entry.broadcast_at = now;
            entry.pending_url_only = false;
            entry.broadcast_flags = (view.is_online, view.is_in_session, view.is_waiting_for_call);
            let account_id = entry.account_id;
            // The session's agents had it already.
            let skip: Vec<String> = entry
                .machine
                .session_id()
                .and_then(|s| self.sessions.get(s))
                .map(|s| s.parts.iter().map(|p| p.agent.id.clone()).collect())
                .unwrap_or_default();
            let watchers = self.agent_conns(account_id, |a| {
                a.local && a.watching.contains(&id) && !skip.contains(&a.agent().id)
            });
            self.queue_update(watchers, &id, now);
            self.publish(VisitorNews {
                account_id,
                visitor: view,
                session_agents: skip,
                kind: NewsKind::Deferred,
            });
        }
        if let Some(due) = self.send_queued_updates(now) {
            next_due = Some(next_due.map_or(due, |d| d.min(due)));
        }
        if let Some(due) = next_due {
            self.timers.set_earliest(Timer::Broadcast, due);
        }
    }

    /// Queues `short_id`'s latest state for these agent sockets' next `visitor_updates`
    /// (at once when none went out for a tick, else at the next tick).
    pub(super) fn queue_update(&mut self, conns: Vec<ConnId>, short_id: &str, now: Millis) {
        if conns.is_empty() {
            return;
        }
        for conn in conns {
            if let Some(a) = self.agent_at_mut(conn) {
                a.queued.insert(short_id.to_string());
                self.queued_updates.insert(conn);
            }
        }
        let due = Millis(self.updates_sent_at.0 + BROADCAST_TICK_MS).max(now);
        self.timers.set_earliest(Timer::Broadcast, due);
    }

    /// Whether `agent_id` takes part in the live session of this node's visitor.
    fn in_session_with(&self, short_id: &str, agent_id: &str) -> bool {
        self.visitors
            .get(short_id)
            .and_then(|e| e.machine.session_id())
            .and_then(|sid| self.sessions.get(sid))
            .is_some_and(|s| s.parts.iter().any(|p| p.agent.id == agent_id))
    }

    /// Sends each agent socket with queued visitors one `visitor_updates` frame with
    /// their latest state (a visitor since forgotten is left out), at most once a
    /// [`BROADCAST_TICK_MS`]; otherwise returns when it may.
    fn send_queued_updates(&mut self, now: Millis) -> Option<Millis> {
        if self.queued_updates.is_empty() {
            return None;
        }
        let due = Millis(self.updates_sent_at.0 + BROADCAST_TICK_MS);
        if now < due {
            return Some(due);
        }
        self.updates_sent_at = now;
        let mut batches: Vec<(ConnId, i64, BTreeSet<String>)> = Vec::new();
        for conn in std::mem::take(&mut self.queued_updates) {
            if let Some(a) = self.agent_at_mut(conn) {
                let (account_id, agent_id) = (a.account_id(), a.agent().id.clone());
                let mut ids = std::mem::take(&mut a.queued);
                // Queued before the agent joined the visitor's session, which since
                // sends it every change at once: nothing to add.
                ids.retain(|id| !self.in_session_with(id, &agent_id));
                batches.push((conn, account_id, ids));
            }
        }
        // Each visitor's JSON once, however many consoles it goes to.
        let mut json: HashMap<(i64, &str), Option<String>> = HashMap::new();
        for (_, account_id, ids) in &batches {
            for id in ids {
                json.entry((*account_id, id.as_str()))
                    .or_insert_with(|| self.visitor(now, *account_id, id).map(|v| encode(&v)));
            }
        }
        let mut frames: Vec<(ConnId, String)> = Vec::new();
        for (conn, account_id, ids) in &batches {
            let parts: Vec<&str> = ids
                .iter()
                .filter_map(|id| json.get(&(*account_id, id.as_str()))?.as_deref())
                .collect();
            if !parts.is_empty() {
                frames.push((*conn, visitor_updates_frame(&parts)));
            }
        }
        for (conn, text) in frames {
            self.send_durable(conn, text);
        }
        None
    }

    /// Nothing left to keep in memory: no tab, no live session.
    fn drop_if_gone(&mut self, short_id: &str, now: Millis) {
        let Some(entry) = self.visitors.get(short_id) else {
            return;
        };
        let live = matches!(
            entry.machine.status(),
            SessionStatus::Authorizing | SessionStatus::Active
        );
        if entry.machine.is_online() || live || !entry.sockets.is_empty() {
            return;
        }
        if let Some(entry) = self.visitors.remove(short_id) {
            // A reservation across the cluster ends with the visitor's last tab.
            if let (Some(code), true) = (entry.visitor.lookup_code, self.clustered()) {
                self.persist(Write::ReleaseLookupCode(
                    entry.account_id,
                    code,
                    short_id.to_string(),
                ));
            }
        }
        self.sessions
            .retain(|_, s| s.session.visitor_id != short_id);
        self.pending_broadcasts.remove(short_id);
        self.schedule(short_id, now);
    }
}

/// `ServerToAgent::VisitorUpdates` of visitors already written as JSON: the same text
/// `encode` gives (a hub test compares them), without encoding each visitor per console.
fn visitor_updates_frame(visitors: &[&str]) -> String {
    let len: usize = visitors.iter().map(|v| v.len() + 1).sum();
    let mut text = String::with_capacity(len + 40);
    text.push_str(r#"{"type":"visitor_updates","visitors":["#);
    for (i, v) in visitors.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(v);
    }
    text.push_str("]}");
    text
}

/// What change detection compares: a 64-bit hash of the visitor as agents see it,
/// without `last_seen_at` (it moves with every heartbeat: it alone is not a change).
/// A hash, not a copy: a copy of every online visitor's record costs ~0.8 KB each. Two
/// different views hash alike with a chance of 2^-64, which would only hold that update
/// back until the visitor's next change. `DefaultHasher::new()` has fixed keys: the hub
/// draws no randomness.
fn fingerprint(view: &mut Visitor) -> u64 {
    use std::hash::{Hash, Hasher};
    let seen = std::mem::take(&mut view.last_seen_at);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    view.hash(&mut h);
    view.last_seen_at = seen;
    h.finish()
}

fn sorted(ids: impl Iterator<Item = ConnId>) -> Vec<ConnId> {
    let mut v: Vec<ConnId> = ids.collect();
    v.sort_unstable();
    v
}
