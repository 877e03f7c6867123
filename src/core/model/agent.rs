//! The seed 002 `Agent`: someone who started or joined a session as an observer.

use serde::{Deserialize, Serialize};

/// An agent of a session (seed 002, snake_case). `id` is `ea_…` for covisit agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Agent {
    pub agent_nickname: String,
    /// Always null for covisit's own agents, per the seed.
    pub email: Option<String>,
    /// The integrator's id for an agent created through the REST API.
    pub external_id: Option<String>,
    pub id: String,
    pub name: String,
    pub on_premise: bool,
}

impl Agent {
    /// A covisit agent (`ea_` id) with its nickname defaulting to its name.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        external_id: Option<String>,
    ) -> Agent {
        let name = name.into();
        Agent {
            agent_nickname: name.clone(),
            email: None,
            external_id,
            id: id.into(),
            name,
            on_premise: true,
        }
    }
}
