//! The analytics export (seed 004): a co-browse session's records turned into the
//! Genesys conversation-details shape, one [`AnalyticsConversation`] per session with
//! the visitor as the `customer` participant and each agent as an `agent`, each with
//! one `cobrowse` [`AnalyticsSession`] carrying its segments and metrics.
//!
//! Pure: built from the seed records the server already keeps (Session, the
//! Cobrowsesession per participant) plus what it knows of the visitor and the journey.

use serde_json::{Map, Value};

use crate::core::model::{
    AnalyticsConversation, AnalyticsConversationSegment, AnalyticsParticipant, AnalyticsSession,
    AnalyticsSessionMetric, CobrowseRole, Cobrowsesession, DisconnectType, Segment, SegmentType,
    Session, SessionSource,
};
use crate::core::Millis;

/// What the server adds to the session's own records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversationFacts {
    /// The visitor's display name (`nickname`).
    pub visitor_name: Option<String>,
    /// The page identified the visitor with `uniqueId`.
    pub authenticated: bool,
    /// The journey session the conversation happened in, if tracking saw one.
    pub journey_session_id: Option<String>,
}

/// The analytics spelling of a disconnect type (`transport.failure` → `transportFailure`).
pub fn analytics_disconnect_type(d: DisconnectType) -> &'static str {
    match d {
        DisconnectType::Client => "client",
        DisconnectType::Peer => "peer",
        DisconnectType::System => "system",
        DisconnectType::TransportFailure => "transportFailure",
        DisconnectType::Timeout => "timeout",
    }
}

/// `inbound` when the visitor asked for help (`agent request`), else `outbound` (an
/// agent or an integration reached out to the visitor).
pub fn direction(session: &Session) -> &'static str {
    if session.source == Some(SessionSource::AgentRequest) {
        "inbound"
    } else {
        "outbound"
    }
}

/// Genesys routing type of how the agent came to the visitor.
fn routing(session: &Session) -> &'static str {
    match session.source {
        Some(SessionSource::AgentRequest) => "Standard",
        Some(SessionSource::Api | SessionSource::Integration) => "Direct",
        _ => "Manual",
    }
}

fn segment_type(t: SegmentType) -> &'static str {
    match t {
        SegmentType::Alert => "alert",
        SegmentType::Interact => "interact",
        SegmentType::Hold => "hold",
    }
}

fn ms(from: &str, to: &str) -> Option<u64> {
    let (a, b) = (Millis::parse_iso8601(from)?, Millis::parse_iso8601(to)?);
    Some(b.0.saturating_sub(a.0))
}

fn segments(segs: &[Segment], agent_id: Option<&str>) -> Vec<AnalyticsConversationSegment> {
    segs.iter()
        .map(|s| AnalyticsConversationSegment {
            conference: Some(false),
            disconnect_type: s
                .disconnect_type
                .map(|d| analytics_disconnect_type(d).to_string()),
            requested_routing_user_ids: agent_id
                .filter(|_| s.segment_type == SegmentType::Alert)
                .map(|a| vec![a.to_string()]),
            segment_end: s.end_time.clone(),
            segment_start: s.start_time.clone(),
            segment_type: segment_type(s.segment_type).to_string(),
            ..AnalyticsConversationSegment::default()
        })
        .collect()
}

/// The metrics of one participant's timeline, emitted for finished segments only:
/// `nOffered`, `tAlert`, `tAnswered` / `tNotResponding` (how alerting ended),
/// `nConnected`, `tConnected` (time interacting), `tHeld`/`tHeldComplete` (time on
/// hold, the visitor between pages), and `tHandle` (connected + held) once it ended.
fn metrics(c: &Cobrowsesession, agent: bool) -> Vec<AnalyticsSessionMetric> {
    let mut out = Vec::new();
    let mut push = |name: &str, value: u64, at: &str| {
        out.push(AnalyticsSessionMetric {
            emit_date: at.to_string(),
            name: name.to_string(),
            value,
        })
    };
    let first_start = c.segments.first().map(|s| s.start_time.clone());
    if agent {
        if let Some(start) = &first_start {
            push("nOffered", 1, start);
        }
    }
    let (mut connected, mut held, mut last_end) = (0u64, 0u64, None::<String>);
    let mut answered = false;
    for (i, s) in c.segments.iter().enumerate() {
        let Some(end) = &s.end_time else { continue };
        let d = ms(&s.start_time, end).unwrap_or(0);
        match s.segment_type {
            SegmentType::Alert => {
                push("tAlert", d, end);
                let next_interacts = c
                    .segments
                    .get(i + 1)
                    .is_some_and(|n| n.segment_type != SegmentType::Alert);
                if next_interacts {
                    answered = true;
                    push("tAnswered", d, end);
                } else if s.disconnect_type == Some(DisconnectType::Timeout) {
                    push("tNotResponding", d, end);
                }
            }
            SegmentType::Interact => connected += d,
            SegmentType::Hold => {
                held += d;
                push("tHeldComplete", d, end);
            }
        }
        last_end = Some(end.clone());
    }
    let went_live = answered
        || c.segments
            .iter()
            .any(|s| s.segment_type == SegmentType::Interact);
    if went_live {
        if let Some(at) = c.connected_time.as_ref().or(first_start.as_ref()) {
            push("nConnected", 1, at);
        }
    }
    if let (Some(end), true) = (&c.disconnected_time, went_live) {
        push("tConnected", connected, end);
        if held > 0 {
            push("tHeld", held, end);
        }
        if agent {
            push("tHandle", connected + held, end);
        }
    } else if let (Some(end), true) = (last_end, connected > 0) {
        push("tConnected", connected, &end);
    }
    out
}

/// The conversation-details object of one co-browse session. `communications` are the
/// session's Cobrowsesession records: the visitor's (sharer) first, then one per agent
/// in the order they joined (`session.agents` gives their names).
pub fn conversation_details(
    session: &Session,
    communications: &[Cobrowsesession],
    facts: &ConversationFacts,
) -> AnalyticsConversation {
    let dir = direction(session);
    let sharer = communications
        .iter()
        .find(|c| c.cobrowse_role == CobrowseRole::Sharer);
    let viewers: Vec<&Cobrowsesession> = communications
        .iter()
        .filter(|c| c.cobrowse_role == CobrowseRole::Viewer)
        .collect();
    let agent_of = |c: &Cobrowsesession| -> Option<String> {
        c.self_address
            .address_raw
            .as_deref()
            .and_then(|a| a.strip_prefix("covisit:agent/"))
            .map(str::to_string)
    };
    let first_agent = viewers.first().and_then(|c| agent_of(c));
    let base = |c: &Cobrowsesession| AnalyticsSession {
        cobrowse_role: Some(if c.cobrowse_role == CobrowseRole::Sharer {
            "sharer".into()
        } else {
            "viewer".into()
        }),
        cobrowse_room_id: Some(session.id.clone()),
        direction: Some(dir.into()),
        media_type: Some("cobrowse".into()),
        peer_id: c.peer_id.clone(),
        provider: Some(c.provider.clone()),
        remote: facts.visitor_name.clone(),
        remote_name_displayable: facts.visitor_name.clone(),
        session_id: Some(c.id.clone()),
        ..AnalyticsSession::default()
    };
    let mut participants = Vec::new();
    let customer_name = facts
        .visitor_name
        .clone()
        .unwrap_or_else(|| session.visitor_id.clone());
    let mut customer = AnalyticsParticipant {
        participant_id: format!("pt_{}", session.visitor_id),
        participant_name: Some(customer_name),
        purpose: "customer".into(),
        screen_recording: Some(false),
        attributes: session
            .metadata
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), Value::String(text))
            })
            .collect::<Map<String, Value>>(),
        ..AnalyticsParticipant::default()
    };
    if let Some(c) = sharer {
        customer.sessions.push(AnalyticsSession {
            authenticated: Some(facts.authenticated),
            journey_customer_id: Some(session.visitor_id.clone()),
            journey_customer_id_type: Some("cookie".into()),
            journey_customer_session_id: facts.journey_session_id.clone(),
            journey_customer_session_id_type: facts
                .journey_session_id
                .as_ref()
                .map(|_| "web".to_string()),
            sharing_screen: Some(session.went_live),
            selected_agent_id: first_agent.clone(),
            metrics: metrics(c, false),
            segments: segments(&c.segments, None),
            ..base(c)
        });
    }
    participants.push(customer);
    for c in viewers {
        let agent_id = agent_of(c);
        let name = agent_id
            .as_ref()
            .and_then(|id| session.agents.iter().find(|a| &a.id == id))
            .map(|a| a.name.clone())
            .or_else(|| c.self_address.name.clone());
        participants.push(AnalyticsParticipant {
            participant_id: format!("pt_{}", c.id),
            participant_name: name,
            purpose: "agent".into(),
            screen_recording: Some(false),
            user_id: agent_id.clone(),
            sessions: vec![AnalyticsSession {
                requested_routings: Some(vec![routing(session).into()]),
                used_routing: Some(routing(session).into()),
                selected_agent_id: agent_id.clone(),
                sharing_screen: Some(false),
                metrics: metrics(c, true),
                segments: segments(&c.segments, agent_id.as_deref()),
                ..base(c)
            }],
            ..AnalyticsParticipant::default()
        });
    }
    AnalyticsConversation {
        conversation_end: session.ended_at.clone(),
        conversation_id: session.id.clone(),
        conversation_initiator: Some(
            if dir == "inbound" {
                "customer"
            } else {
                "agent"
            }
            .into(),
        ),
        conversation_start: session.started_at.clone(),
        division_ids: Vec::new(),
        originating_direction: Some(dir.into()),
        self_served: Some(false),
        participants,
        ..AnalyticsConversation::default()
    }
}

/// Every disconnect type in the conversation's segments (analytics spelling).
pub fn disconnect_types(c: &AnalyticsConversation) -> Vec<&str> {
    c.participants
        .iter()
        .flat_map(|p| &p.sessions)
        .flat_map(|s| &s.segments)
        .filter_map(|s| s.disconnect_type.as_deref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Address, Agent, CommunicationState};

    const T0: Millis = Millis(1_795_255_445_000);

    fn at(s: u64) -> String {
        T0.plus_seconds(s).to_iso8601()
    }

    fn seg(t: SegmentType, from: u64, to: Option<u64>, d: Option<DisconnectType>) -> Segment {
        Segment {
            start_time: at(from),
            end_time: to.map(at),
            segment_type: t,
            how_ended: None,
            disconnect_type: d,
        }
    }

    fn comm(
        id: &str,
        role: CobrowseRole,
        segments: Vec<Segment>,
        end: Option<u64>,
    ) -> Cobrowsesession {
        Cobrowsesession {
            state: CommunicationState::Disconnected,
            initial_state: CommunicationState::Alerting,
            id: id.into(),
            disconnect_type: Some(DisconnectType::Client),
            self_address: Address {
                address_raw: (role == CobrowseRole::Viewer).then(|| "covisit:agent/ea_ada".into()),
                ..Address::default()
            },
            cobrowse_session_id: "s_1".into(),
            cobrowse_role: role,
            controlling: vec![],
            viewer_url: None,
            provider_event_time: at(0),
            start_alerting_time: Some(at(0)),
            connected_time: Some(at(5)),
            disconnected_time: end.map(at),
            provider: "covisit".into(),
            peer_id: Some(
                if role == CobrowseRole::Sharer {
                    "cm_a"
                } else {
                    "cm_v"
                }
                .into(),
            ),
            segments,
            wrapup: None,
            after_call_work: None,
            after_call_work_required: false,
        }
    }

    fn session(source: SessionSource) -> Session {
        Session {
            agents: vec![Agent::new("ea_ada", "Ada", None)],
            agent_notes: vec![],
            call_length_seconds: 0,
            call_name: None,
            ended_at: Some(at(65)),
            features_used: vec![],
            formatted_call_length: "00:00".into(),
            formatted_length: "01:05".into(),
            metadata: Map::new(),
            quality_feedback: vec![],
            visitor_agent_feedback: None,
            visitor_agent_rating: None,
            visitor_email: None,
            visitor_ip_address: None,
            visitor_unique_id: None,
            id: "s_1".into(),
            length_seconds: 65,
            on_premise: true,
            public_video_url: None,
            secret_video_url: None,
            session_authorized: true,
            source: Some(source),
            start_url: None,
            started_at: at(0),
            video_status: None,
            visitor_id: "v_1".into(),
            went_live: true,
        }
    }

    fn metric(s: &AnalyticsSession, name: &str) -> Option<u64> {
        s.metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }

    #[test]
    fn an_answered_session_with_a_hold_has_its_segments_and_metrics() {
        let timeline = vec![
            seg(SegmentType::Alert, 0, Some(5), None),
            seg(SegmentType::Interact, 5, Some(30), None),
            seg(SegmentType::Hold, 30, Some(34), None),
            seg(
                SegmentType::Interact,
                34,
                Some(65),
                Some(DisconnectType::Client),
            ),
        ];
        let comms = vec![
            comm("cm_v", CobrowseRole::Sharer, timeline.clone(), Some(65)),
            comm("cm_a", CobrowseRole::Viewer, timeline, Some(65)),
        ];
        let facts = ConversationFacts {
            visitor_name: Some("Ada L".into()),
            authenticated: true,
            journey_session_id: Some("js_1".into()),
        };
        let c = conversation_details(&session(SessionSource::Search), &comms, &facts);
        assert_eq!(c.originating_direction.as_deref(), Some("outbound"));
        assert_eq!(c.conversation_initiator.as_deref(), Some("agent"));
        assert_eq!(c.participants.len(), 2);
        let customer = &c.participants[0];
        assert_eq!(customer.purpose, "customer");
        let cs = &customer.sessions[0];
        assert_eq!(cs.media_type.as_deref(), Some("cobrowse"));
        assert_eq!(cs.cobrowse_role.as_deref(), Some("sharer"));
        assert_eq!(cs.cobrowse_room_id.as_deref(), Some("s_1"));
        assert_eq!(cs.journey_customer_session_id.as_deref(), Some("js_1"));
        assert_eq!(cs.journey_customer_session_id_type.as_deref(), Some("web"));
        assert_eq!(
            (cs.authenticated, cs.sharing_screen),
            (Some(true), Some(true))
        );
        assert_eq!(cs.selected_agent_id.as_deref(), Some("ea_ada"));
        assert_eq!(cs.segments.len(), 4);
        assert_eq!(cs.segments[2].segment_type, "hold");
        assert_eq!(cs.segments[3].disconnect_type.as_deref(), Some("client"));
        assert_eq!(metric(cs, "tConnected"), Some(56_000));
        assert_eq!(metric(cs, "tHeld"), Some(4_000));
        assert_eq!(metric(cs, "nOffered"), None, "the customer is not offered");
        let agent = &c.participants[1];
        assert_eq!(
            (agent.purpose.as_str(), agent.user_id.as_deref()),
            ("agent", Some("ea_ada"))
        );
        assert_eq!(agent.participant_name.as_deref(), Some("Ada"));
        let s = &agent.sessions[0];
        assert_eq!(s.requested_routings, Some(vec!["Manual".to_string()]));
        assert_eq!(s.used_routing.as_deref(), Some("Manual"));
        assert_eq!(s.peer_id.as_deref(), Some("cm_v"));
        assert_eq!(metric(s, "nOffered"), Some(1));
        assert_eq!(metric(s, "tAlert"), Some(5_000));
        assert_eq!(metric(s, "tAnswered"), Some(5_000));
        assert_eq!(metric(s, "nConnected"), Some(1));
        assert_eq!(metric(s, "tHandle"), Some(60_000));
        assert_eq!(
            s.segments[0].requested_routing_user_ids,
            Some(vec!["ea_ada".to_string()])
        );
        assert_eq!(disconnect_types(&c), ["client", "client"]);
    }

    #[test]
    fn an_unanswered_request_times_out_and_a_visitor_request_is_inbound() {
        let timeline = vec![seg(
            SegmentType::Alert,
            0,
            Some(60),
            Some(DisconnectType::Timeout),
        )];
        let comms = vec![
            comm("cm_v", CobrowseRole::Sharer, timeline.clone(), Some(60)),
            comm("cm_a", CobrowseRole::Viewer, timeline, Some(60)),
        ];
        let mut s = session(SessionSource::AgentRequest);
        s.went_live = false;
        let c = conversation_details(&s, &comms, &ConversationFacts::default());
        assert_eq!(c.originating_direction.as_deref(), Some("inbound"));
        assert_eq!(c.conversation_initiator.as_deref(), Some("customer"));
        let a = &c.participants[1].sessions[0];
        assert_eq!(metric(a, "tNotResponding"), Some(60_000));
        assert_eq!(metric(a, "nConnected"), None);
        assert_eq!(metric(a, "tHandle"), None);
        assert_eq!(a.used_routing.as_deref(), Some("Standard"));
        assert_eq!(c.participants[0].sessions[0].sharing_screen, Some(false));
        assert_eq!(
            c.participants[0].sessions[0].journey_customer_session_id,
            None
        );
        assert_eq!(disconnect_types(&c), ["timeout", "timeout"]);
    }

    #[test]
    fn transport_failures_use_the_analytics_spelling() {
        assert_eq!(
            analytics_disconnect_type(DisconnectType::TransportFailure),
            "transportFailure"
        );
    }
}
