//! Calls and sharing (issue 17): the agent's and the visitor's `call` frames, checked
//! against the session's [`CallMachine`] (core) and relayed between the console that
//! has the call and the visitor's tab that has it. The media go peer to peer; only
//! signalling passes here. Each side gets the ICE servers (TURN with time-limited
//! credentials, `crate::ice`) only once the visitor has accepted.
//!
//! Consent: nothing of a call reaches the agent before the visitor's `accept`, nothing
//! of a share before its `share_accept`; the core refuses signals until then.

use covisit::core::json::Json;
use covisit::core::machine::call::{End, Ended};
use covisit::core::machine::SessionStatus;
use covisit::core::model::{Agent, Connection, ConnectionStatus};
use covisit::core::protocol::{
    encode, CallEndReason, CallFromAgent, CallFromVisitor, CallRules, CallToAgent, CallToVisitor,
    IceServer, MediaState, ServerToAgent, ServerToVisitor, VisitorCallEnd,
};
use covisit::core::Millis;

use super::{ConnId, Delivery, Frame, Hub, HubError, VisitorEntry};

impl Hub {
    /// The ICE servers for one side of a call, with credentials valid from `now`.
    fn ice_servers(&self, now: Millis, user: &str) -> Vec<IceServer> {
        crate::ice::servers(&self.config.ice, now, user)
    }

    fn call_to_visitor(&mut self, conn: ConnId, call: &CallToVisitor) {
        let value = serde_json::to_value(call)
            .map(Json::from)
            .unwrap_or(Json::Null);
        let frame = encode(&ServerToVisitor::Call { call: value });
        self.send(conn, Frame::from(frame), Delivery::Now);
    }

    fn call_to_agent(&mut self, conn: Option<ConnId>, session_id: &str, call: CallToAgent) {
        if let Some(conn) = conn {
            let frame = encode(&ServerToAgent::Call {
                session_id: session_id.to_string(),
                call,
            });
            self.send(conn, Frame::from(frame), Delivery::Now);
        }
    }

    /// The socket of the visitor's tab `tab`, if open.
    fn tab_conn(&self, visitor_id: &str, tab: &str) -> Option<ConnId> {
        self.visitors.get(visitor_id)?.sockets.get(tab).copied()
    }

    /// An agent's `call` frame for its active session.
    pub(super) fn agent_call(
        &mut self,
        now: Millis,
        conn: ConnId,
        account_id: i64,
        agent: &Agent,
        session_id: &str,
        call: CallFromAgent,
    ) -> Result<(), HubError> {
        let (visitor_id, entry) = self.agent_visitor(account_id, &agent.id, session_id)?;
        match call {
            CallFromAgent::Start { video } => {
                // The tab the visitor looks at gets the call.
                let (tab, c) = focused_tab(entry)?;
                if !c.audio_supported {
                    return Err(HubError::CallUnsupported);
                }
                let rules = CallRules::of(&c.permissions);
                let tab_conn = *entry.sockets.get(&tab).ok_or(HubError::TabOffline)?;
                let s = self.session_mut(session_id)?;
                s.call.start(&agent.id, &tab, video, rules)?;
                s.call_conn = Some(conn);
                self.call_to_visitor(
                    tab_conn,
                    &CallToVisitor::Request {
                        agent: agent.clone(),
                        video,
                        rules,
                    },
                );
            }
            CallFromAgent::Signal { signal } => {
                let s = self.session_mut(session_id)?;
                let (_, tab) = s.call.signal(End::Agent, &agent.id, &signal)?;
                let tab_conn = self
                    .tab_conn(&visitor_id, &tab)
                    .ok_or(HubError::TabOffline)?;
                self.call_to_visitor(tab_conn, &CallToVisitor::Signal { signal });
                return Ok(()); // nothing the agents' view shows changed
            }
            CallFromAgent::Media { audio, video } => {
                let s = self.session_mut(session_id)?;
                let tab = s
                    .call
                    .media(now, End::Agent, &agent.id, MediaState { audio, video })?;
                if let Some(c) = self.tab_conn(&visitor_id, &tab) {
                    self.call_to_visitor(c, &CallToVisitor::Media { audio, video });
                }
            }
            CallFromAgent::End { reason } => {
                let s = self.session_mut(session_id)?;
                if s.call.parties().is_none_or(|(a, _)| a != agent.id) {
                    return Err(HubError::Machine {
                        code: covisit::core::codes::ErrorCode::WRONG_CALL_STATE,
                        message: "`end` is not valid now: expected a call of this agent".into(),
                    });
                }
                let reason = match reason {
                    None | Some(VisitorCallEnd::Declined) => CallEndReason::HungUpByAgent,
                    Some(VisitorCallEnd::MediaDenied) => CallEndReason::MediaDenied,
                    Some(VisitorCallEnd::Failed) => CallEndReason::Failed,
                };
                self.end_call(now, session_id, reason);
            }
            CallFromAgent::ShareRequest { screen } => {
                let (tab, c) = focused_tab(entry)?;
                let (allowed, key) = if screen {
                    (c.permissions.allow_full_screen, "allowFullScreen")
                } else {
                    (c.permissions.allow_request_full_tab, "allowRequestFullTab")
                };
                if !allowed {
                    return Err(HubError::PermissionDenied(key));
                }
                if !c.audio_supported {
                    return Err(HubError::CallUnsupported);
                }
                let tab_conn = *entry.sockets.get(&tab).ok_or(HubError::TabOffline)?;
                let s = self.session_mut(session_id)?;
                s.call.share_request(&agent.id, &tab, screen)?;
                s.share_conn = Some(conn);
                self.call_to_visitor(
                    tab_conn,
                    &CallToVisitor::ShareRequest {
                        agent: agent.clone(),
                        screen,
                    },
                );
            }
            CallFromAgent::ShareStop => {
                let s = self.session_mut(session_id)?;
                if s.call.share_parties().is_none_or(|(a, _)| a != agent.id) {
                    return Err(HubError::Machine {
                        code: covisit::core::codes::ErrorCode::WRONG_CALL_STATE,
                        message: "`share_stop` is not valid now: expected a share of this agent"
                            .into(),
                    });
                }
                self.end_share(now, session_id, CallEndReason::HungUpByAgent);
            }
        }
        self.after_change(&visitor_id, now);
        Ok(())
    }

    /// A visitor tab's `call` frame.
    pub(super) fn visitor_call(
        &mut self,
        now: Millis,
        short_id: &str,
        tab: &str,
        call: CallFromVisitor,
    ) -> Result<(), HubError> {
        let entry = self
            .visitors
            .get(short_id)
            .ok_or(HubError::UnknownVisitor)?;
        if entry.machine.status() != SessionStatus::Active {
            return Err(HubError::SessionNotActive);
        }
        let session_id = entry
            .machine
            .session_id()
            .map(str::to_string)
            .ok_or(HubError::SessionNotActive)?;
        let visitor_conn = entry.sockets.get(tab).copied();
        match call {
            CallFromVisitor::Accept { audio, video } => {
                let agent_ice = self.ice_servers(now, "agent");
                let visitor_ice = self.ice_servers(now, short_id);
                let s = self.session_mut(&session_id)?;
                let media = MediaState { audio, video };
                s.call.accept(tab, media)?;
                let rules = s.call.view().rules;
                let agent_conn = s.call_conn;
                if let Some(c) = visitor_conn {
                    self.call_to_visitor(
                        c,
                        &CallToVisitor::Start {
                            ice_servers: visitor_ice,
                        },
                    );
                }
                if let Some(rules) = rules {
                    self.call_to_agent(
                        agent_conn,
                        &session_id,
                        CallToAgent::Start {
                            ice_servers: agent_ice,
                            rules,
                            visitor: media,
                        },
                    );
                }
            }
            CallFromVisitor::Signal { signal } => {
                let s = self.session_mut(&session_id)?;
                s.call.signal(End::Visitor, tab, &signal)?;
                let conn = match signal.channel {
                    covisit::core::protocol::MediaChannel::Call => s.call_conn,
                    covisit::core::protocol::MediaChannel::Share => s.share_conn,
                };
                self.call_to_agent(conn, &session_id, CallToAgent::Signal { signal });
                return Ok(());
            }
            CallFromVisitor::Media { audio, video } => {
                let s = self.session_mut(&session_id)?;
                s.call
                    .media(now, End::Visitor, tab, MediaState { audio, video })?;
            }
            CallFromVisitor::Connected => {
                self.session_mut(&session_id)?.call.connected(now, tab)?;
            }
            CallFromVisitor::End { reason } => {
                let s = self.session_mut(&session_id)?;
                if s.call.parties().is_none_or(|(_, t)| t != tab) {
                    return Err(HubError::Machine {
                        code: covisit::core::codes::ErrorCode::WRONG_CALL_STATE,
                        message: "`end` is not valid now: expected a call in this tab".into(),
                    });
                }
                let ringing = s.call.phase() == covisit::core::protocol::CallPhase::Ringing;
                let reason = match reason {
                    VisitorCallEnd::Declined if ringing => CallEndReason::Declined,
                    VisitorCallEnd::Declined => CallEndReason::HungUpByVisitor,
                    VisitorCallEnd::MediaDenied => CallEndReason::MediaDenied,
                    VisitorCallEnd::Failed => CallEndReason::Failed,
                };
                self.end_call(now, &session_id, reason);
            }
            CallFromVisitor::ShareAccept => {
                let agent_ice = self.ice_servers(now, "agent");
                let visitor_ice = self.ice_servers(now, short_id);
                let s = self.session_mut(&session_id)?;
                s.call.share_accept(tab)?;
                let conn = s.share_conn;
                if let Some(c) = visitor_conn {
                    self.call_to_visitor(
                        c,
                        &CallToVisitor::ShareStart {
                            ice_servers: visitor_ice,
                        },
                    );
                }
                self.call_to_agent(
                    conn,
                    &session_id,
                    CallToAgent::ShareStart {
                        ice_servers: agent_ice,
                    },
                );
            }
            CallFromVisitor::ShareStarted => {
                self.session_mut(&session_id)?.call.share_started(tab)?;
            }
            CallFromVisitor::ShareEnd { reason } => {
                let s = self.session_mut(&session_id)?;
                if s.call.share_parties().is_none_or(|(_, t)| t != tab) {
                    return Err(HubError::Machine {
                        code: covisit::core::codes::ErrorCode::WRONG_CALL_STATE,
                        message: "`share_end` is not valid now: expected a share in this tab"
                            .into(),
                    });
                }
                // Allowed, then stopped (even before its stream ran): a hang-up.
                let accepted = s.call.share_accepted();
                let reason = match reason {
                    VisitorCallEnd::Declined if !accepted => CallEndReason::Declined,
                    VisitorCallEnd::Declined => CallEndReason::HungUpByVisitor,
                    VisitorCallEnd::MediaDenied => CallEndReason::MediaDenied,
                    VisitorCallEnd::Failed => CallEndReason::Failed,
                };
                self.end_share(now, &session_id, reason);
            }
        }
        Ok(())
    }

    fn session_mut(
        &mut self,
        session_id: &str,
    ) -> Result<&mut super::sessions::SessionEntry, HubError> {
        self.sessions
            .get_mut(session_id)
            .ok_or(HubError::UnknownSession)
    }

    /// Ends the session's call, telling both ends (the session's agents hear it in
    /// the next `session_update`).
    fn end_call(&mut self, now: Millis, session_id: &str, reason: CallEndReason) {
        let Some(s) = self.sessions.get_mut(session_id) else {
            return;
        };
        let Some(Ended { tab, reason, .. }) = s.call.end(now, reason) else {
            return;
        };
        s.call_conn = None;
        // The length changed: written with the next change (after_change follows).
        s.persisted = None;
        let visitor_id = s.session.visitor_id.clone();
        if let Some(c) = self.tab_conn(&visitor_id, &tab) {
            self.call_to_visitor(c, &CallToVisitor::End { reason });
        }
    }

    fn end_share(&mut self, _now: Millis, session_id: &str, reason: CallEndReason) {
        let Some(s) = self.sessions.get_mut(session_id) else {
            return;
        };
        let Some(Ended { tab, reason, .. }) = s.call.share_end(reason) else {
            return;
        };
        s.share_conn = None;
        let visitor_id = s.session.visitor_id.clone();
        if let Some(c) = self.tab_conn(&visitor_id, &tab) {
            self.call_to_visitor(c, &CallToVisitor::ShareEnd { reason });
        }
    }

    /// After any change of the visitor: a call or share whose session ended, whose tab
    /// closed, or whose agent left ends too; the tab's `fullTabStatus` follows the
    /// share. Called before the session's records are followed.
    pub(super) fn reconcile_calls(&mut self, short_id: &str, session_id: &str, now: Millis) {
        let Some(entry) = self.visitors.get(short_id) else {
            return;
        };
        let Some(s) = self.sessions.get(session_id) else {
            return;
        };
        let ended = entry.machine.session_id() != Some(session_id)
            || entry.machine.status() != SessionStatus::Active;
        let tab_open = |tab: &str| {
            entry
                .machine
                .connection(tab)
                .is_some_and(|c| c.status == ConnectionStatus::Active)
                && entry.sockets.contains_key(tab)
        };
        let agent_here = |agent: &str, conn: Option<ConnId>| {
            s.has_agent(agent) && conn.is_some_and(|c| self.conns.contains_key(&c))
        };
        let call_end = s.call.parties().and_then(|(agent, tab)| {
            if ended {
                Some(CallEndReason::SessionEnded)
            } else if !tab_open(tab) {
                Some(CallEndReason::TabClosed)
            } else if !agent_here(agent, s.call_conn) {
                Some(CallEndReason::AgentLeft)
            } else {
                None
            }
        });
        let share_end = s.call.share_parties().and_then(|(agent, tab)| {
            if ended {
                Some(CallEndReason::SessionEnded)
            } else if !tab_open(tab) {
                Some(CallEndReason::TabClosed)
            } else if !agent_here(agent, s.share_conn) {
                Some(CallEndReason::AgentLeft)
            } else {
                None
            }
        });
        if let Some(reason) = call_end {
            self.end_call(now, session_id, reason);
        }
        if let Some(reason) = share_end {
            self.end_share(now, session_id, reason);
        }
        // The tab's seed Connection shows the share (`fullTabStatus`).
        let (status, tab) = match self.sessions.get(session_id) {
            Some(s) => (
                s.call.share_status(),
                s.call.share_parties().map(|(_, t)| t.to_string()),
            ),
            None => return,
        };
        if let Some(entry) = self.visitors.get_mut(short_id) {
            if entry.machine.session_id() == Some(session_id) {
                entry.machine.handle_full_tab_status(
                    now,
                    tab.as_deref().unwrap_or_default(),
                    status,
                );
            }
        }
    }

    /// An agent's console closed: calls and shares it had end (`agent_left`).
    pub(super) fn calls_of_closed_console(&mut self, now: Millis, conn: ConnId) {
        let hit: Vec<(String, String)> = self
            .sessions
            .values()
            .filter(|s| s.call_conn == Some(conn) || s.share_conn == Some(conn))
            .map(|s| (s.session.visitor_id.clone(), s.session.id.clone()))
            .collect();
        for (visitor, session) in hit {
            if let Some(s) = self.sessions.get(&session) {
                if s.call_conn == Some(conn) {
                    self.end_call(now, &session, CallEndReason::AgentLeft);
                }
            }
            if let Some(s) = self.sessions.get(&session) {
                if s.share_conn == Some(conn) {
                    self.end_share(now, &session, CallEndReason::AgentLeft);
                }
            }
            self.after_change(&visitor, now);
        }
    }
}

/// The tab a call or a share request goes to: the one the visitor looks at (where its
/// prompts go), with its seed Connection.
fn focused_tab(entry: &VisitorEntry) -> Result<(String, &Connection), HubError> {
    let tab = entry
        .machine
        .prompt_target()
        .map(str::to_string)
        .ok_or(HubError::VisitorOffline)?;
    let c = entry
        .machine
        .connection(&tab)
        .ok_or(HubError::VisitorOffline)?;
    Ok((tab, c))
}
