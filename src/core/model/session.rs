//! The seed 002 `Session`: a co-browsing interaction between agents and a visitor.

use serde::{Deserialize, Serialize};

use super::Agent;

/// How a session came to be (seed 002 `source`). Serialized with the seed's spelling,
/// spaces included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum SessionSource {
    #[serde(rename = "api")]
    Api,
    #[serde(rename = "search")]
    Search,
    #[serde(rename = "lookup code")]
    LookupCode,
    #[serde(rename = "personal link")]
    PersonalLink,
    #[serde(rename = "agent request")]
    AgentRequest,
    #[serde(rename = "integration")]
    Integration,
}

/// One entry of `agent_notes`; `by` is the agent's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AgentNote {
    pub text: String,
    pub by: String,
}

/// One entry of `quality_feedback`; `by` is the agent's id, or the visitor's short id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct QualityFeedback {
    pub rating: f64,
    pub feedback: Option<String>,
    pub by: String,
}

/// A session (seed 002, snake_case). `ended_at` is null while the session is live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Session {
    pub agents: Vec<Agent>,
    pub agent_notes: Vec<AgentNote>,
    pub call_length_seconds: u64,
    pub call_name: Option<String>,
    pub ended_at: Option<String>,
    pub features_used: Vec<String>,
    pub formatted_call_length: String,
    pub formatted_length: String,
    #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub quality_feedback: Vec<QualityFeedback>,
    pub visitor_agent_feedback: Option<String>,
    pub visitor_agent_rating: Option<f64>,
    pub visitor_email: Option<String>,
    pub visitor_ip_address: Option<String>,
    pub visitor_unique_id: Option<String>,
    pub id: String,
    pub length_seconds: u64,
    pub on_premise: bool,
    pub public_video_url: Option<String>,
    pub secret_video_url: Option<String>,
    pub session_authorized: bool,
    pub source: Option<SessionSource>,
    pub start_url: Option<String>,
    pub started_at: String,
    pub video_status: Option<String>,
    pub visitor_id: String,
    pub went_live: bool,
}
