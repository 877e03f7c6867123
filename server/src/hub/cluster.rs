//! The hub on one node of several: visitors it does not own (shadows of other nodes'
//! visitors, kept from their owners' news so its agents' lists, searches and watches
//! work), agent sockets held by other nodes (registered so that session frames reach
//! them), the news it publishes about its own visitors, and what happens to either when
//! slots change hands. Which node holds a socket is the shell's business: a `ConnId`
//! names it cluster-wide. On a single node none of this is used.

use std::collections::HashSet;

use covisit::core::machine::SessionStatus;
use covisit::core::model::{Cobrowsesession, Session, Visitor};
use covisit::core::protocol::{encode, ServerToAgent, SessionControl};
use covisit::core::Millis;
use serde::{Deserialize, Serialize};

use super::agents::AgentConn;
use super::{AgentIdentity, CloseReason, ConnId, Delivery, Frame, Hub, Output};
use crate::store::slot_of;

/// How a visitor's change reaches the agents that look at it (the same rules on the
/// owner, for its agents, and on every other node, for theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewsKind {
    /// A change: the session's agents at once, watchers when `now` (else a later
    /// `Deferred` brings it), everybody when it came online.
    Change { now: bool, came_online: bool },
    /// A change held back by the once-a-second rule, due now: watchers outside the
    /// session (its agents had it).
    Deferred,
    /// The visitor's personal data was erased: forget it (no agent is told, as on
    /// the owner).
    Erased,
}

/// What the owner of a visitor tells the other nodes when the visitor changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitorNews {
    pub account_id: i64,
    pub visitor: Visitor,
    /// The agents of its live session (they get every change).
    pub session_agents: Vec<String>,
    pub kind: NewsKind,
}

/// A visitor another node owns, as its owner last described it.
#[derive(Debug, Clone)]
pub(super) struct Shadow {
    pub account_id: i64,
    pub visitor: Visitor,
}

/// A set of slots (0..256).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Slots(HashSet<u16>);

impl Slots {
    pub fn contains(&self, slot: u16) -> bool {
        self.0.contains(&slot)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<u16> for Slots {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Slots {
        Slots(iter.into_iter().collect())
    }
}

/// Whether a new visitor's id lands in a slot of `owned` (`None`: a single node; an
/// empty set: this node owns nothing yet, and any id will do).
pub(super) fn fits(owned: Option<&Slots>, id: &str) -> bool {
    owned.is_none_or(|s| s.is_empty() || s.contains(slot_of(id)))
}

impl Hub {
    /// Whether this hub tells other nodes about its visitors.
    pub(super) fn clustered(&self) -> bool {
        self.owned.is_some()
    }

    /// Which slots this node owns now (the shell follows the cluster's table): new
    /// visitors it mints fall in them. `None`: every slot (a single node).
    pub fn set_owned_slots(&mut self, slots: Option<Slots>) {
        self.owned = slots;
    }

    /// Publishes a visitor's change for the other nodes (clustered only), after the
    /// writes before it.
    pub(super) fn publish(&mut self, news: VisitorNews) {
        if self.clustered() {
            self.outputs.push_back(Output::Publish(Box::new(news)));
        }
    }

    /// Publishes a navigation that announces no write (see `Output::PublishNow`).
    pub(super) fn publish_now(&mut self, news: VisitorNews) {
        if self.clustered() {
            self.outputs.push_back(Output::PublishNow(Box::new(news)));
        }
    }

    // ----- agents on other nodes ---------------------------------------------------

    /// An agent socket another node holds: registered so that frames of this node's
    /// sessions reach it; it gets the sessions it is part of now. Its list, searches
    /// and watches live on its own node.
    pub fn handle_remote_agent_connect(&mut self, conn: ConnId, who: AgentIdentity) {
        let account_id = who.account_id;
        let agent_id = who.agent.id.clone();
        let mut updates: Vec<(String, String)> = self
            .sessions
            .values()
            .filter(|s| {
                s.account_id == account_id && s.parts.iter().any(|p| p.agent.id == agent_id)
            })
            .map(|s| (s.session.id.clone(), s.update_frame()))
            .collect();
        updates.sort();
        for (_, u) in updates {
            self.send_durable(conn, u);
        }
        self.add_agent(conn, AgentConn::new(who, false));
    }

    // ----- visitors of other nodes -----------------------------------------------------

    /// The owner of a visitor says it changed: this node's agents that look at it are
    /// told, by the same rules as the owner's own.
    pub fn handle_visitor_news(&mut self, now: Millis, news: VisitorNews) {
        if self.visitors.contains_key(&news.visitor.short_id) {
            return; // ours: our agents had it from us
        }
        let short_id = news.visitor.short_id.clone();
        let account_id = news.account_id;
        if news.kind == NewsKind::Erased {
            self.shadows.remove(&short_id);
            self.forget_watch(&short_id);
            return;
        }
        let flags = |v: &Visitor| (v.is_online, v.is_in_session, v.is_waiting_for_call);
        let before = self.shadows.get(&short_id).map(|s| flags(&s.visitor));
        let was_online = before.is_some_and(|(online, _, _)| online);
        let flags_changed = before != Some(flags(&news.visitor));
        let came_online = match news.kind {
            NewsKind::Change { came_online, .. } => {
                came_online || (!was_online && news.visitor.is_online)
            }
            NewsKind::Deferred | NewsKind::Erased => false,
        };
        let keep = news.visitor.is_online || news.visitor.is_in_session;
        if keep {
            self.shadows.insert(
                short_id.clone(),
                Shadow {
                    account_id,
                    visitor: news.visitor.clone(),
                },
            );
        } else {
            self.shadows.remove(&short_id);
        }
        let frame = Frame::from(encode(&ServerToAgent::VisitorUpdate {
            visitor: news.visitor,
        }));
        let mut sends = Vec::new();
        let mut queue = Vec::new();
        let agents = self
            .agents
            .get_mut(&account_id)
            .into_iter()
            .flat_map(|m| m.iter_mut())
            .filter(|(_, a)| a.local);
        for (conn, a) in agents {
            let in_session = news.session_agents.contains(&a.agent().id);
            if came_online {
                a.watch(&short_id);
            }
            // As on the owner: the session's agents, a visitor come online and changed
            // flags at once; other changes for watchers with the next `visitor_updates`.
            let watching = match news.kind {
                NewsKind::Change { now, .. } => now && a.watching.contains(&short_id),
                NewsKind::Deferred => a.watching.contains(&short_id) && !in_session,
                NewsKind::Erased => false,
            };
            if in_session || came_online || (watching && flags_changed) {
                sends.push(*conn);
            } else if watching {
                queue.push(*conn);
            }
        }
        for conn in sends {
            self.send(conn, frame.clone(), Delivery::Now);
        }
        self.queue_update(queue, &short_id, now);
    }

    /// The visitors of these slots are no longer owned where they were (their node
    /// failed): until their new owner hears from them, they are offline here.
    pub fn handle_shadows_lost(&mut self, now: Millis, slots: &Slots) {
        let mut lost: Vec<(String, Shadow)> = self
            .shadows
            .iter()
            .filter(|(id, _)| slots.contains(slot_of(id)))
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        lost.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, shadow) in lost {
            let mut visitor = shadow.visitor;
            visitor.is_online = false;
            visitor.is_in_session = false;
            visitor.last_seen_at = now.to_iso8601();
            self.handle_visitor_news(
                now,
                VisitorNews {
                    account_id: shadow.account_id,
                    visitor,
                    session_agents: Vec::new(),
                    kind: NewsKind::Change {
                        now: true,
                        came_online: false,
                    },
                },
            );
        }
    }

    // ----- slots changing hands ----------------------------------------------------

    /// This node no longer owns these slots (it was fenced, or handed them over): its
    /// visitors there are let go without a word to the store (their new owner recovers
    /// them) and their sockets closed (the SDK reconnects and reaches the new owner).
    pub fn handle_slots_lost(&mut self, now: Millis, slots: &Slots) {
        let mut gone: Vec<String> = self
            .visitors
            .keys()
            .filter(|id| slots.contains(slot_of(id)))
            .cloned()
            .collect();
        gone.sort();
        for short_id in gone {
            let Some(entry) = self.visitors.remove(&short_id) else {
                continue;
            };
            let mut conns: Vec<ConnId> = entry.sockets.values().copied().collect();
            conns.sort_unstable();
            for conn in conns {
                self.conns.remove(&conn);
                self.heard.remove(&conn);
                self.outputs.push_back(Output::Close {
                    conn,
                    reason: CloseReason::Moved,
                });
            }
            if let Some(code) = &entry.visitor.lookup_code {
                self.lookup_codes.remove(&(entry.account_id, code.clone()));
            }
            self.sessions
                .retain(|_, s| s.session.visitor_id != short_id);
            self.pending_broadcasts.remove(&short_id);
            self.dirty_urls.remove(&short_id);
            self.schedule(&short_id, now);
        }
    }

    /// Whether any visitor of these slots is in a live session here (a slot is handed
    /// over only when none is).
    pub fn has_live_sessions_in(&self, slots: &Slots) -> bool {
        self.visitors.iter().any(|(id, e)| {
            slots.contains(slot_of(id))
                && matches!(
                    e.machine.status(),
                    SessionStatus::Authorizing | SessionStatus::Active
                )
        })
    }

    /// Ends the live sessions of this node's visitors in `slots` (a drain whose time ran
    /// out: the server ends them, as `system`).
    pub fn handle_end_live_sessions_in(&mut self, now: Millis, slots: &Slots) {
        let mut live: Vec<(i64, String)> = self
            .sessions
            .values()
            .filter(|s| {
                slots.contains(slot_of(&s.session.visitor_id))
                    && matches!(s.status, SessionStatus::Authorizing | SessionStatus::Active)
            })
            .map(|s| (s.account_id, s.session.id.clone()))
            .collect();
        live.sort();
        for (account_id, session_id) in live {
            let _ = self.handle_rest_end_session(now, account_id, &session_id);
        }
    }

    /// The bus was down a while: what went over it may be lost. The other nodes get
    /// news of every visitor of this node again, the agents of its sessions their
    /// state again, and the visitors in active sessions are asked for new snapshots.
    pub fn handle_bus_restored(&mut self, now: Millis) {
        let mut ids: Vec<String> = self.visitors.keys().cloned().collect();
        ids.sort();
        for id in &ids {
            let Some(entry) = self.visitors.get(id) else {
                continue;
            };
            let view = entry.view(now);
            let account_id = entry.account_id;
            let session_agents: Vec<String> = entry
                .machine
                .session_id()
                .and_then(|s| self.sessions.get(s))
                .map(|s| s.parts.iter().map(|p| p.agent.id.clone()).collect())
                .unwrap_or_default();
            self.publish(VisitorNews {
                account_id,
                visitor: view,
                session_agents,
                kind: NewsKind::Change {
                    now: true,
                    came_online: false,
                },
            });
        }
        let mut sessions: Vec<(i64, String, String, Vec<String>, bool)> = self
            .sessions
            .values()
            .filter(|s| matches!(s.status, SessionStatus::Authorizing | SessionStatus::Active))
            .map(|s| {
                (
                    s.account_id,
                    s.session.id.clone(),
                    s.session.visitor_id.clone(),
                    s.parts.iter().map(|p| p.agent.id.clone()).collect(),
                    s.status == SessionStatus::Active,
                )
            })
            .collect();
        sessions.sort();
        for (account_id, session_id, visitor_id, agents, active) in sessions {
            if let Some(s) = self.sessions.get(&session_id) {
                let frame = Frame::from(s.update_frame());
                for conn in self.sockets_of(account_id, &agents) {
                    self.send(conn, frame.clone(), Delivery::Durable);
                }
            }
            if active {
                let _ = self.resync(now, &visitor_id, &session_id);
            }
        }
    }

    /// Sessions another node's failure ended (their new owner recovered them from the
    /// store): the agents in them are told, wherever their sockets are.
    pub fn handle_sessions_ended_elsewhere(
        &mut self,
        account_id: i64,
        ended: Vec<(Session, Vec<Cobrowsesession>)>,
    ) {
        for (session, communications) in ended {
            let agents: Vec<String> = session.agents.iter().map(|a| a.id.clone()).collect();
            let frame = Frame::from(encode(&ServerToAgent::SessionUpdate {
                session,
                status: SessionStatus::Ended,
                controlling_agent_id: None,
                communications,
                control: SessionControl::default(),
                agent_prompt: None,
                connections: Vec::new(),
                watching: Default::default(),
                call: Default::default(),
            }));
            for conn in self.sockets_of(account_id, &agents) {
                self.send(conn, frame.clone(), Delivery::Now);
            }
        }
    }
}
