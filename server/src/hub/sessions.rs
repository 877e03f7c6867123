//! Sessions: an agent's (or REST's) request, joins, ends, notes, personal-link
//! requests; the session's records (the seed Session and one Cobrowsesession per
//! participant) kept in step with the visitor's machine after every change.

use std::collections::{BTreeMap, VecDeque};

use covisit::core::derive;
use covisit::core::machine::call::CallMachine;
use covisit::core::machine::{ControlState, SessionRequest, SessionStatus, VisitorMachine};
use covisit::core::model::{
    Address, Agent, AgentNote, CobrowseRole, Cobrowsesession, CommunicationState, Connection,
    ConnectionStatus, DisconnectType, Session, SessionSource,
};
use covisit::core::protocol::{encode, ControlPhase, RemoteKind, ServerToAgent, SessionControl};
use covisit::core::Millis;
use serde_json::Map;

use super::visitors::text_ok;
use super::{Hub, HubError};
use crate::store::Write;

/// One agent's part in a session: its viewer communication.
#[derive(Debug, Clone)]
pub(super) struct AgentPart {
    pub agent: Agent,
    pub comm_id: String,
    pub initial_state: CommunicationState,
    pub joined_at: String,
    pub left: Option<(String, DisconnectType)>,
}

/// Co-browsing state of a session: remote actions sent to the page and not yet
/// acknowledged (their acks count into `features_used`), and the last resync asked for.
#[derive(Debug, Clone, Default)]
pub(super) struct RemoteActions {
    pub next_id: u32,
    pub pending: VecDeque<(u32, String, RemoteKind)>,
    pub last_resync: Millis,
}

/// The agents' workspace in a session: which tab each agent chose to watch
/// (`set_active_connection`), and the visitor's open tabs as `session_update.connections`
/// shows them.
#[derive(Debug, Clone, Default)]
pub(super) struct SessionWorkspace {
    /// Agent id → the `uniqueConnectionId` it watches; absent: it follows the visitor.
    pub watching: BTreeMap<String, String>,
    /// The visitor's open tabs, refreshed with every change of the visitor.
    pub tabs: Vec<Connection>,
}

/// A session's record, kept in memory while its visitor is.
#[derive(Debug, Clone)]
pub(super) struct SessionEntry {
    pub account_id: i64,
    pub session: Session,
    pub status: SessionStatus,
    pub started: Millis,
    pub parts: Vec<AgentPart>,
    pub visitor_comm: Option<Cobrowsesession>,
    pub controlling: Option<String>,
    /// Where remote control stands, with the last end reason (`session_update.control`).
    pub control: SessionControl,
    pub viewer_url: String,
    /// What was last written (the record without its running length, status, comms):
    /// a change that only moves the length is not written again.
    pub persisted: Option<(Session, SessionStatus, Vec<Cobrowsesession>)>,
    pub remote: RemoteActions,
    /// The visitor's page's `agentPrompt` (config), for the agents in the session.
    pub agent_prompt: Option<String>,
    pub workspace: SessionWorkspace,
    /// The session's call and share (issue 17), and the consoles that have them.
    pub call: CallMachine,
    pub call_conn: Option<super::ConnId>,
    pub share_conn: Option<super::ConnId>,
    /// Recorded sessions only: the records not yet handed to the writer
    /// (`hub::recording`); `None` once the recording's end went out.
    pub recording: Option<super::recording::Recording>,
}

impl SessionEntry {
    /// Whether `agent_id` takes part now (joined and has not left).
    pub fn has_agent(&self, agent_id: &str) -> bool {
        self.parts
            .iter()
            .any(|p| p.agent.id == agent_id && p.left.is_none())
    }

    /// The session's communications: the visitor's (sharer) first, then one per agent.
    pub fn communications(&self) -> Vec<Cobrowsesession> {
        let Some(vc) = &self.visitor_comm else {
            return Vec::new();
        };
        let mut out = vec![vc.clone()];
        for p in &self.parts {
            let (state, disconnect_type, disconnected_time) = match &p.left {
                Some((at, dt)) => (
                    CommunicationState::Disconnected,
                    Some(*dt),
                    Some(at.clone()),
                ),
                None => (vc.state, None, None),
            };
            let connected_time = vc
                .connected_time
                .as_ref()
                .map(|c| c.max(&p.joined_at).clone());
            out.push(Cobrowsesession {
                state,
                initial_state: p.initial_state,
                id: p.comm_id.clone(),
                disconnect_type,
                self_address: Address {
                    name: Some(p.agent.name.clone()),
                    name_raw: Some(p.agent.name.clone()),
                    address_normalized: None,
                    address_raw: Some(format!("covisit:agent/{}", p.agent.id)),
                    address_displayable: None,
                },
                cobrowse_session_id: self.session.id.clone(),
                cobrowse_role: CobrowseRole::Viewer,
                controlling: if self.controlling.as_deref() == Some(p.agent.id.as_str())
                    && p.left.is_none()
                {
                    vec![vc.id.clone()]
                } else {
                    Vec::new()
                },
                viewer_url: Some(self.viewer_url.clone()),
                provider_event_time: disconnected_time
                    .clone()
                    .unwrap_or_else(|| vc.provider_event_time.clone()),
                start_alerting_time: (p.initial_state == CommunicationState::Alerting)
                    .then(|| p.joined_at.clone()),
                connected_time,
                disconnected_time,
                provider: vc.provider.clone(),
                peer_id: Some(vc.id.clone()),
                segments: vc
                    .segments
                    .iter()
                    .filter(|seg| seg.end_time.as_ref().is_none_or(|e| *e >= p.joined_at))
                    .cloned()
                    .collect(),
                wrapup: None,
                after_call_work: None,
                after_call_work_required: false,
            });
        }
        out
    }

    pub fn update_frame(&self) -> String {
        encode(&ServerToAgent::SessionUpdate {
            session: self.session.clone(),
            status: self.status,
            controlling_agent_id: self.controlling.clone(),
            communications: self.communications(),
            control: self.control.clone(),
            agent_prompt: self.agent_prompt.clone(),
            connections: if matches!(
                self.status,
                SessionStatus::Authorizing | SessionStatus::Active
            ) {
                self.workspace.tabs.clone()
            } else {
                Vec::new()
            },
            watching: self.workspace.watching.clone(),
            call: Box::new(self.call.view()),
        })
    }

    /// Follows the visitor's machine after a change: status, control, went_live,
    /// length, who joined and left. True when the stored record must change.
    pub fn follow(&mut self, machine: &VisitorMachine, now: Millis) -> bool {
        let status = machine.status();
        if machine.session_id() == Some(self.session.id.as_str()) {
            self.workspace.tabs = machine
                .connections()
                .iter()
                .filter(|c| c.status == ConnectionStatus::Active)
                .cloned()
                .collect();
            self.status = status;
            self.visitor_comm = machine.communication().cloned();
            self.controlling = machine.controlling_agent().map(str::to_string);
            self.control.tab = None;
            match machine.control() {
                ControlState::None => self.control.state = ControlPhase::None,
                ControlState::Requested { agent_id, .. } => {
                    self.control.state = ControlPhase::Requested;
                    self.control.agent_id = Some(agent_id);
                }
                ControlState::Granted {
                    agent_id,
                    connection_id,
                } => {
                    self.control.state = ControlPhase::Granted;
                    self.control.agent_id = Some(agent_id);
                    self.control.tab = Some(connection_id);
                }
            }
            if status == SessionStatus::Active {
                self.session.went_live = true;
                self.session.session_authorized = machine.session_authorized();
            }
            let ended_at = self
                .visitor_comm
                .as_ref()
                .and_then(|c| c.disconnected_time.clone());
            if status == SessionStatus::Ended {
                if let Some(rec) = self.recording.as_mut().filter(|r| !r.ending) {
                    rec.ending = true;
                    // Nothing was shown (denied, cancelled, timed out): nothing to keep.
                    self.session.video_status = Some(
                        if rec.started {
                            "pending"
                        } else {
                            "not_available"
                        }
                        .into(),
                    );
                }
                let end = ended_at
                    .as_deref()
                    .and_then(Millis::parse_iso8601)
                    .unwrap_or(now);
                if self.session.ended_at.is_none() {
                    self.session.ended_at = Some(end.to_iso8601());
                }
                let dt = machine.disconnect_type().unwrap_or(DisconnectType::System);
                for p in self.parts.iter_mut().filter(|p| p.left.is_none()) {
                    p.left = Some((end.to_iso8601(), dt));
                }
                set_length(&mut self.session, end.seconds_since(self.started));
            } else {
                set_length(&mut self.session, now.seconds_since(self.started));
            }
            // Calls: their connected time and the features they earned.
            let call_seconds = self.call.call_length_seconds(now);
            self.session.call_length_seconds = call_seconds;
            self.session.formatted_call_length = derive::formatted_length(call_seconds);
            for f in self.call.features() {
                if !self.session.features_used.iter().any(|x| x == f) {
                    self.session.features_used.push(f.to_string());
                }
            }
            // Keep the seed's "agents that joined": everyone who ever joined.
            for a in machine.agents() {
                if !self.session.agents.iter().any(|x| x.id == a.id) {
                    self.session.agents.push(a.clone());
                }
            }
        }
        let record = (
            Session {
                length_seconds: 0,
                formatted_length: String::new(),
                ..self.session.clone()
            },
            self.status,
            self.communications(),
        );
        if self.persisted.as_ref() == Some(&record) {
            return false;
        }
        self.persisted = Some(record);
        true
    }
}

pub(super) fn set_length(session: &mut Session, seconds: u64) {
    session.length_seconds = seconds;
    session.formatted_length = derive::formatted_length(seconds);
}

impl Hub {
    /// An agent (console or REST) asks a visitor for a session. The new session's id
    /// and viewer URL.
    pub fn handle_rest_request_session(
        &mut self,
        now: Millis,
        account_id: i64,
        short_id: &str,
        agent: Agent,
        source: SessionSource,
    ) -> Result<(String, String), HubError> {
        let session_id = self.ids.session_id(short_id);
        let visitor_comm = format!("cm_{}", self.ids.hex(10));
        let agent_comm = format!("cm_{}", self.ids.hex(10));
        let Some(entry) = self
            .visitors
            .get_mut(short_id)
            .filter(|v| v.account_id == account_id)
        else {
            return Err(HubError::VisitorOffline);
        };
        // Refused before the visitor is asked: their browser could not share the page.
        if !entry.visitor.is_supported {
            return Err(HubError::VisitorUnsupported(
                entry.visitor.missing_capabilities.join(", "),
            ));
        }
        let source = if entry.visitor.is_waiting_for_call
            && !matches!(
                source,
                SessionSource::Api | SessionSource::PersonalLink | SessionSource::Integration
            ) {
            SessionSource::AgentRequest
        } else {
            source
        };
        let viewer_url = derive::viewer_url(&self.config.public_url, &session_id);
        let permissions = &entry.machine.options().permissions;
        let alerting = permissions.require_authorization_for_session;
        let agent_prompt = permissions.agent_prompt.clone();
        let recorded = self
            .recording_accounts
            .get(&account_id)
            .copied()
            .unwrap_or(false);
        entry.machine.handle_session_request(
            now,
            SessionRequest {
                session_id: session_id.clone(),
                communication_id: visitor_comm,
                peer_communication_id: Some(agent_comm.clone()),
                viewer_url: Some(viewer_url.clone()),
                agent: agent.clone(),
            },
        )?;
        entry.visitor.is_waiting_for_call = false;
        let v = &entry.visitor;
        let mut metadata = Map::new();
        for (k, val) in &entry.metadata {
            metadata.insert(format!("visitor_{k}"), val.clone());
        }
        let session = Session {
            agents: vec![agent.clone()],
            agent_notes: Vec::new(),
            call_length_seconds: 0,
            call_name: v.call_name.clone(),
            ended_at: None,
            features_used: Vec::new(),
            formatted_call_length: derive::formatted_length(0),
            formatted_length: derive::formatted_length(0),
            metadata,
            quality_feedback: Vec::new(),
            visitor_agent_feedback: None,
            visitor_agent_rating: None,
            visitor_email: v.email.clone(),
            visitor_ip_address: Some(v.ip_address.clone()).filter(|ip| !ip.is_empty()),
            visitor_unique_id: v.unique_id.clone(),
            id: session_id.clone(),
            length_seconds: 0,
            on_premise: true,
            public_video_url: None,
            secret_video_url: None,
            session_authorized: false,
            source: Some(source),
            start_url: v.last_url.clone(),
            started_at: now.to_iso8601(),
            video_status: Some(
                if recorded {
                    "recording"
                } else {
                    "not_available"
                }
                .into(),
            ),
            visitor_id: short_id.to_string(),
            went_live: false,
        };
        let agent_write = Write::SessionAgent(session_id.clone(), Box::new(agent.clone()));
        self.sessions.insert(
            session_id.clone(),
            SessionEntry {
                account_id,
                session,
                status: SessionStatus::None,
                started: now,
                parts: vec![AgentPart {
                    agent,
                    comm_id: agent_comm,
                    initial_state: if alerting {
                        CommunicationState::Alerting
                    } else {
                        CommunicationState::Connected
                    },
                    joined_at: now.to_iso8601(),
                    left: None,
                }],
                visitor_comm: None,
                controlling: None,
                control: SessionControl::default(),
                viewer_url: viewer_url.clone(),
                persisted: None,
                remote: RemoteActions::default(),
                agent_prompt,
                workspace: SessionWorkspace::default(),
                call: CallMachine::new(),
                call_conn: None,
                share_conn: None,
                recording: recorded.then(super::recording::Recording::default),
            },
        );
        self.after_change(short_id, now);
        // After the session row exists (session_agents references it).
        self.persist(agent_write);
        Ok((session_id, viewer_url))
    }

    /// A visitor arrived through an agent's personal link (and confirmed it): its
    /// `call_name` becomes the agent's username, and that agent asks for a session
    /// (`source: personal link`). The visitor still authorizes as usual.
    pub fn handle_rest_personal_link(
        &mut self,
        now: Millis,
        account_id: i64,
        short_id: &str,
        agent: Agent,
        username: &str,
    ) -> Result<String, HubError> {
        let Some(entry) = self
            .visitors
            .get_mut(short_id)
            .filter(|v| v.account_id == account_id)
        else {
            return Err(HubError::UnknownVisitor);
        };
        entry.visitor.call_name = Some(username.to_string());
        let agent_id = agent.id.clone();
        let (session_id, _) = self.handle_rest_request_session(
            now,
            account_id,
            short_id,
            agent,
            SessionSource::PersonalLink,
        )?;
        self.audit(
            now,
            account_id,
            &format!("visitor:{short_id}"),
            "session.requested_by_personal_link",
            Some(&session_id),
            None,
            &agent_id,
        );
        Ok(session_id)
    }

    /// `may_join_any`: a supervisor, an admin or an integration; an agent only comes
    /// back to a session it was part of.
    pub(super) fn join_session(
        &mut self,
        now: Millis,
        account_id: i64,
        session_id: &str,
        agent: Agent,
        may_join_any: bool,
    ) -> Result<(), HubError> {
        let Some(s) = self
            .sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
        else {
            return Err(HubError::UnknownSession);
        };
        if !may_join_any && !s.parts.iter().any(|p| p.agent.id == agent.id) {
            return Err(HubError::Forbidden);
        }
        let short_id = s.session.visitor_id.clone();
        let comm_id = format!("cm_{}", self.ids.hex(10));
        let Some(entry) = self.visitors.get_mut(&short_id) else {
            return Err(HubError::SessionOver);
        };
        if entry.machine.session_id() != Some(session_id) {
            return Err(HubError::SessionOver);
        }
        let initial = if entry.machine.status() == SessionStatus::Active {
            CommunicationState::Connected
        } else {
            CommunicationState::Alerting
        };
        entry.machine.handle_agent_join(now, agent.clone())?;
        self.persist(Write::SessionAgent(
            session_id.to_string(),
            Box::new(agent.clone()),
        ));
        if let Some(s) = self.sessions.get_mut(session_id) {
            if let Some(p) = s.parts.iter_mut().find(|p| p.agent.id == agent.id) {
                p.left = None;
            } else {
                s.parts.push(AgentPart {
                    agent,
                    comm_id,
                    initial_state: initial,
                    joined_at: now.to_iso8601(),
                    left: None,
                });
            }
        }
        self.after_change(&short_id, now);
        Ok(())
    }

    /// Runs a machine input for a live session of the account; with `agent_id`, only
    /// an agent of that session may.
    pub(super) fn with_session(
        &mut self,
        now: Millis,
        account_id: i64,
        session_id: &str,
        agent_id: Option<&str>,
        f: impl FnOnce(&mut VisitorMachine, Millis) -> Result<(), covisit::core::machine::MachineError>,
    ) -> Result<(), HubError> {
        let Some(s) = self
            .sessions
            .get(session_id)
            .filter(|s| s.account_id == account_id)
        else {
            return Err(HubError::UnknownSession);
        };
        if agent_id.is_some_and(|a| !s.has_agent(a)) {
            return Err(HubError::NotInSession);
        }
        let short_id = s.session.visitor_id.clone();
        let Some(entry) = self.visitors.get_mut(&short_id) else {
            return Err(HubError::SessionOver);
        };
        if entry.machine.session_id() != Some(session_id) {
            return Err(HubError::SessionOver);
        }
        let result = f(&mut entry.machine, now).map_err(HubError::from);
        if result.is_ok() {
            if let Some(a) = agent_id {
                // Who left: recorded here because the machine only knows who stays.
                let stays = entry.machine.agents().iter().any(|x| x.id == a);
                if let Some(p) = self.sessions.get_mut(session_id).and_then(|s| {
                    s.parts
                        .iter_mut()
                        .find(|p| p.agent.id == a && p.left.is_none())
                }) {
                    if !stays {
                        p.left = Some((now.to_iso8601(), DisconnectType::Client));
                    }
                }
            }
        }
        self.after_change(&short_id, now);
        result
    }

    /// Ends a session from the server side (REST): `system`. False when the hub does
    /// not hold it (it ended before, or is not the account's).
    pub fn handle_rest_end_session(
        &mut self,
        now: Millis,
        account_id: i64,
        session_id: &str,
    ) -> Result<bool, HubError> {
        let live = self
            .sessions
            .get(session_id)
            .is_some_and(|s| s.account_id == account_id);
        if !live {
            return Ok(false);
        }
        self.with_session(now, account_id, session_id, None, |m, now| {
            m.handle_server_end(now)
        })?;
        Ok(true)
    }

    /// Notes (session, by, text) whose writes the store refused: forgotten here too, so
    /// that what a reconnecting console is sent is what is stored (the consoles that
    /// were to be told of them were not, and were closed: `CloseReason::NotStored`).
    pub fn handle_notes_not_stored(&mut self, notes: Vec<(String, String, String)>) {
        for (session_id, by, text) in notes {
            let Some(s) = self.sessions.get_mut(&session_id) else {
                continue;
            };
            let notes = &mut s.session.agent_notes;
            if let Some(i) = notes.iter().rposition(|n| n.by == by && n.text == text) {
                notes.remove(i);
            }
        }
    }

    /// Adds a note to a session held in memory (`UnknownSession` when it is not).
    /// `must_be_agent`: only an agent of the session may (the socket's rule).
    pub fn handle_rest_add_note(
        &mut self,
        now: Millis,
        account_id: i64,
        session_id: &str,
        by: &str,
        text: String,
        must_be_agent: bool,
    ) -> Result<(), HubError> {
        if text.trim().is_empty() {
            return Err(HubError::InvalidArgument("`text` must not be empty".into()));
        }
        text_ok("text", &text)?;
        let Some(s) = self
            .sessions
            .get_mut(session_id)
            .filter(|s| s.account_id == account_id)
        else {
            return Err(HubError::UnknownSession);
        };
        if must_be_agent && !s.parts.iter().any(|p| p.agent.id == by) {
            return Err(HubError::NotInSession);
        }
        s.session.agent_notes.push(AgentNote {
            text: text.clone(),
            by: by.to_string(),
        });
        let session = s.session.clone();
        let status = s.status;
        let frame = super::Frame::from(s.update_frame());
        let ids: Vec<String> = s.parts.iter().map(|p| p.agent.id.clone()).collect();
        // A recorded session has its notes on the timeline, with their text (the
        // agent's own words, never the visitor's).
        self.record_note(now, session_id, by, &text);
        self.persist(Write::Note(session_id.to_string(), by.to_string(), text));
        self.persist(Write::Session(
            account_id,
            Box::new(session),
            status.as_str().into(),
        ));
        for conn in self.sockets_of(account_id, &ids) {
            self.send(conn, frame.clone(), super::Delivery::Durable);
        }
        Ok(())
    }
}
