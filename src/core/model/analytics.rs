//! The analytics export (seed 004 `AnalyticsSession`, camelCase) and the Genesys
//! conversation-details wrapper around it: one [`AnalyticsConversation`] per co-browse
//! session, one [`AnalyticsParticipant`] per person (the visitor as `customer`, each
//! agent as `agent`), each with its [`AnalyticsSession`]s. Every seed field is present;
//! the ones that belong to voice, email, messaging, callbacks, the dialer or routing
//! flows are null for co-browsing (docs/ANALYTICS.md lists them).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Genesys `AnalyticsSessionMetric`: `value` is milliseconds for `t*` metrics, a count
/// for `n*` metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSessionMetric {
    pub emit_date: String,
    pub name: String,
    pub value: u64,
}

/// Genesys `AnalyticsConversationSegment`: one stretch of a session's timeline
/// (`alert`, `interact`, `hold`). Fields of conferences, voice and routing are null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversationSegment {
    pub audio_muted: Option<bool>,
    pub conference: Option<bool>,
    pub destination_conversation_id: Option<String>,
    pub destination_session_id: Option<String>,
    pub disconnect_type: Option<String>,
    pub error_code: Option<String>,
    pub group_id: Option<String>,
    pub q850_response_codes: Option<Vec<i64>>,
    pub queue_id: Option<String>,
    pub requested_language_id: Option<String>,
    pub requested_routing_skill_ids: Option<Vec<String>>,
    pub requested_routing_user_ids: Option<Vec<String>>,
    pub segment_end: Option<String>,
    pub segment_start: String,
    pub segment_type: String,
    pub sip_response_codes: Option<Vec<i64>>,
    pub source_conversation_id: Option<String>,
    pub source_session_id: Option<String>,
    pub subject: Option<String>,
    pub video_muted: Option<bool>,
    pub wrap_up_code: Option<String>,
    pub wrap_up_note: Option<String>,
    pub wrap_up_tags: Option<Vec<String>>,
    pub scored_agents: Option<Vec<Value>>,
    pub properties: Option<Vec<Value>>,
}

/// Seed 004 `AnalyticsSession` (camelCase, every field): one participant's media
/// session in a conversation. For co-browsing `mediaType` is `cobrowse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSession {
    pub active_skill_ids: Option<Vec<String>>,
    pub acw_skipped: Option<bool>,
    pub address_from: Option<String>,
    pub address_other: Option<String>,
    pub address_self: Option<String>,
    pub address_to: Option<String>,
    pub agent_assistant_id: Option<String>,
    pub agent_bullseye_ring: Option<i64>,
    pub agent_owned: Option<bool>,
    pub ani: Option<String>,
    pub assigner_id: Option<String>,
    pub authenticated: Option<bool>,
    pub barged_participant_id: Option<String>,
    pub bcc: Option<Vec<String>>,
    pub callback_numbers: Option<Vec<String>>,
    pub callback_scheduled_time: Option<String>,
    pub callback_user_name: Option<String>,
    pub cc: Option<Vec<String>>,
    pub cleared: Option<bool>,
    pub coached_participant_id: Option<String>,
    pub cobrowse_role: Option<String>,
    pub cobrowse_room_id: Option<String>,
    pub delivery_pushed: Option<bool>,
    pub delivery_status: Option<String>,
    pub delivery_status_change_date: Option<String>,
    pub destination_addresses: Option<Vec<String>>,
    pub detected_speech_end: Option<String>,
    pub detected_speech_start: Option<String>,
    pub direction: Option<String>,
    pub disposition_analyzer: Option<String>,
    pub disposition_name: Option<String>,
    pub dnis: Option<String>,
    pub edge_id: Option<String>,
    pub eligible_agent_counts: Option<Vec<i64>>,
    pub engagement_source: Option<String>,
    pub extended_delivery_status: Option<String>,
    pub flow_in_type: Option<String>,
    pub flow_out_type: Option<String>,
    pub journey_action_id: Option<String>,
    pub journey_action_map_id: Option<String>,
    pub journey_action_map_version: Option<i64>,
    pub journey_customer_id: Option<String>,
    pub journey_customer_id_type: Option<String>,
    pub journey_customer_session_id: Option<String>,
    pub journey_customer_session_id_type: Option<String>,
    pub media_bridge_id: Option<String>,
    pub media_count: Option<i64>,
    pub media_type: Option<String>,
    pub message_type: Option<String>,
    pub monitored_participant_id: Option<String>,
    pub outbound_campaign_id: Option<String>,
    pub outbound_contact_id: Option<String>,
    pub outbound_contact_list_id: Option<String>,
    pub peer_id: Option<String>,
    pub protocol_call_id: Option<String>,
    pub provider: Option<String>,
    pub recording: Option<bool>,
    pub remote: Option<String>,
    pub remote_name_displayable: Option<String>,
    pub removed_skill_ids: Option<Vec<String>>,
    pub requested_routings: Option<Vec<String>>,
    pub room_id: Option<String>,
    pub routing_ring: Option<i64>,
    pub routing_rule: Option<String>,
    pub routing_rule_type: Option<String>,
    pub screen_share_address_self: Option<String>,
    pub screen_share_room_id: Option<String>,
    pub script_id: Option<String>,
    pub selected_agent_id: Option<String>,
    pub selected_agent_rank: Option<i64>,
    pub session_dnis: Option<String>,
    pub session_id: Option<String>,
    pub sharing_screen: Option<bool>,
    pub skip_enabled: Option<bool>,
    pub timeout_seconds: Option<i64>,
    pub used_routing: Option<String>,
    pub video_address_self: Option<String>,
    pub video_room_id: Option<String>,
    pub waiting_interaction_counts: Option<Vec<i64>>,
    pub agent_groups: Option<Vec<Value>>,
    pub proposed_agents: Option<Vec<Value>>,
    pub media_endpoint_stats: Option<Vec<Value>>,
    pub flow: Option<Value>,
    pub metrics: Vec<AnalyticsSessionMetric>,
    pub segments: Vec<AnalyticsConversationSegment>,
}

/// Genesys `AnalyticsParticipant` (conversation details): a person in the
/// conversation with their sessions. `purpose` is `customer` or `agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsParticipant {
    pub external_contact_id: Option<String>,
    pub external_organization_id: Option<String>,
    pub flagged_reason: Option<String>,
    pub participant_id: String,
    pub participant_name: Option<String>,
    pub purpose: String,
    pub screen_recording: Option<bool>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub sessions: Vec<AnalyticsSession>,
}

/// Genesys `AnalyticsConversation` (conversation details): one co-browse session.
/// Evaluations, surveys, resolutions and media-quality figures do not apply (null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversation {
    pub conference_start: Option<String>,
    pub conversation_end: Option<String>,
    pub conversation_id: String,
    pub conversation_initiator: Option<String>,
    pub conversation_start: String,
    pub customer_participation: Option<bool>,
    pub division_ids: Vec<String>,
    pub external_tag: Option<String>,
    pub inactivity_timeout: Option<String>,
    pub knowledge_base_ids: Option<Vec<String>>,
    pub media_stats_min_conversation_mos: Option<f64>,
    pub media_stats_min_conversation_r_factor: Option<f64>,
    pub originating_direction: Option<String>,
    pub originating_social_media_public: Option<bool>,
    pub self_served: Option<bool>,
    pub evaluations: Option<Vec<Value>>,
    pub surveys: Option<Vec<Value>>,
    pub resolutions: Option<Vec<Value>>,
    pub participants: Vec<AnalyticsParticipant>,
}
