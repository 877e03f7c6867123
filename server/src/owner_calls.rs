//! Writes about one visitor, carried out on the node that owns it: [`on_owner`] runs a
//! [`Call`] here (a single node, or this node owns the visitor's slot) or sends it to
//! the owner over the bus, whose [`carry_out`] acts and answers once its writes are
//! committed ([`durable`]). REST's writes and the journey beacon go through here, so the
//! owner's order (erasure before a late beacon, say) holds cluster-wide; so does the
//! asset proxy's fetch (`crate::asset_fetch`), which needs the session's live tab.

use axum::http::StatusCode;
use covisit::core::codes::ErrorCode;
use covisit::core::model::{AgentNote, QualityFeedback};
use serde_json::{json, Value};

use crate::access::hub_error;
use crate::asset_fetch::fetch_here;
use crate::bus::Call;
use crate::cluster::CallResult;
use crate::errors::ApiError;
use crate::state::Shared;

/// Waits until the hub's queued writes (the caller's among them) are committed.
pub async fn durable(state: &Shared) -> Result<(), ApiError> {
    if state.hub.flush().await {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::INTERNAL,
            "the change could not be stored",
        ))
    }
}

/// Whether what lives in `slot` lives here: a single node, or this node owns the slot.
pub fn owned_here(state: &Shared, slot: u16) -> bool {
    state
        .cluster
        .as_ref()
        .is_none_or(|c| c.owner_of(slot) == Some(c.node()))
}

/// Runs `call` where the visitor or session it is about lives: here on a single node
/// or when this node owns `slot`, else on its owner (over the bus).
pub async fn on_owner(state: &Shared, slot: u16, call: Call) -> Result<Value, ApiError> {
    let owner = state
        .cluster
        .as_ref()
        .map(|c| (c, c.owner_of(slot)))
        .filter(|(c, owner)| *owner != Some(c.node()));
    let result = match owner {
        None => carry_out(state.clone(), call).await,
        Some((cluster, Some(_))) if !cluster.bus_up() => Err((
            503,
            ErrorCode::UNAVAILABLE.as_str().to_string(),
            "the node that owns this visitor cannot be reached right now; nothing was done: retry"
                .to_string(),
        )),
        Some((cluster, Some(owner))) => cluster.call(owner, call).await,
        Some((_, None)) => Err((
            503,
            ErrorCode::UNAVAILABLE.as_str().to_string(),
            "no node owns this visitor right now (the cluster is moving it); retry".to_string(),
        )),
    };
    result.map_err(|(status, code, message)| {
        ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ErrorCode::parse(&code).unwrap_or(ErrorCode::INTERNAL),
            message,
        )
    })
}

/// A session's stored record (one the hub no longer holds), or 404.
async fn stored_session(
    state: &Shared,
    account_id: i64,
    session_id: &str,
) -> Result<crate::store::StoredSession, ApiError> {
    state
        .store
        .get_session(account_id, session_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("session"))
}

/// Carries out a REST write on the node that owns what it is about (this one): the
/// hub acts, and the answer comes once its writes are committed. Another node's REST
/// call arrives here over the bus.
pub async fn carry_out(state: Shared, call: Call) -> CallResult {
    let fail = |e: ApiError| (e.status.as_u16(), e.code.to_string(), e.message);
    let result: Result<Value, ApiError> = async {
        match call {
            Call::RequestSession {
                account_id,
                short_id,
                agent,
                source,
            } => {
                let (session_id, viewer_url) = state
                    .hub
                    .request_session(account_id, &short_id, agent, source)
                    .await
                    .map_err(hub_error)?;
                durable(&state).await?;
                Ok(json!({ "session_id": session_id, "viewer_url": viewer_url }))
            }
            Call::EndSession {
                account_id,
                session_id,
            } => {
                state
                    .hub
                    .end_session(account_id, &session_id)
                    .await
                    .map_err(hub_error)?;
                durable(&state).await?;
                Ok(Value::Null)
            }
            Call::AddNote {
                account_id,
                session_id,
                by,
                text,
            } => {
                match state
                    .hub
                    .add_note(account_id, &session_id, &by, text.clone(), false)
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.code() == "unknown_session" => {
                        // Not in memory any more: amend the stored record.
                        let mut s = stored_session(&state, account_id, &session_id).await?;
                        s.session.agent_notes.push(AgentNote {
                            text: text.clone(),
                            by: by.clone(),
                        });
                        state
                            .store
                            .add_note(&session_id, &by, &text)
                            .await
                            .map_err(ApiError::internal)?;
                        state
                            .store
                            .upsert_session(account_id, &s.session, &s.status)
                            .await
                            .map_err(ApiError::internal)?;
                    }
                    Err(e) => return Err(hub_error(e)),
                }
                durable(&state).await?;
                Ok(Value::Null)
            }
            Call::RateSession {
                account_id,
                session_id,
                agent_id,
                rating,
                feedback,
            } => {
                match state
                    .hub
                    .rate_session(account_id, &agent_id, &session_id, rating, feedback.clone())
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.code() == "unknown_session" => {
                        // Not in memory any more (over, and its visitor left): the
                        // stored record, by the same rules (the hub checked the input).
                        let mut s = stored_session(&state, account_id, &session_id).await?;
                        if !s.session.agents.iter().any(|a| a.id == agent_id) {
                            return Err(hub_error(crate::hub::HubError::NotInSession));
                        }
                        if s.status != "ended" {
                            return Err(hub_error(crate::hub::HubError::RateLiveSession));
                        }
                        let mine = QualityFeedback {
                            rating: f64::from(rating),
                            feedback: feedback.filter(|f| !f.trim().is_empty()),
                            by: agent_id.clone(),
                        };
                        let feedback = &mut s.session.quality_feedback;
                        match feedback.iter_mut().find(|q| q.by == agent_id) {
                            Some(q) => *q = mine,
                            None => feedback.push(mine),
                        }
                        state
                            .store
                            .upsert_session(account_id, &s.session, &s.status)
                            .await
                            .map_err(ApiError::internal)?;
                    }
                    Err(e) => return Err(hub_error(e)),
                }
                durable(&state).await?;
                Ok(Value::Null)
            }
            Call::Track(input) => {
                state
                    .journeys
                    .track(&state.hub, *input)
                    .await
                    .map_err(ApiError::from)?;
                durable(&state).await?;
                Ok(Value::Null)
            }
            Call::Asset {
                account_id,
                user_id,
                session_id,
                tab,
                url,
            } => fetch_here(&state, account_id, &user_id, &session_id, &tab, &url)
                .await
                .map(|f| f.to_json()),
            Call::EraseVisitor {
                account_id,
                short_id,
            } => {
                // No journey batch is applied from here until the store erased the
                // visitor (one that raced the erasure would write the data back).
                let erasing = state.journeys.erasing().await;
                let in_memory = state.hub.erase_visitor(account_id, &short_id).await;
                state.journeys.forget(account_id, &short_id);
                durable(&state).await?;
                let stored = state
                    .store
                    .erase_visitor(
                        crate::clock::now(),
                        account_id,
                        &short_id,
                        state.journeys.session_timeout_seconds(),
                    )
                    .await
                    .map_err(ApiError::internal)?;
                drop(erasing);
                if !in_memory && !stored {
                    return Err(ApiError::not_found("visitor"));
                }
                Ok(Value::Null)
            }
        }
    }
    .await;
    result.map_err(fail)
}
