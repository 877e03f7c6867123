//! The REST API (SPEC.md section 4): `Authorization: Bearer <secret key>`, JSON,
//! snake_case seed objects. Every failure is a JSON `{"error": {"code", "message"}}`.
//!
//! Reads consult the hub first (live state is freshest) and the store otherwise,
//! after flushing queued writes so a read never misses a change it follows.
//! Writes answer success only once their store write committed ([`durable`](crate::owner_calls::durable)): an
//! acknowledged change survives a crash of the process.

use covisit::core::codes::ErrorCode;
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use covisit::core::ids::valid_id;
use covisit::core::model::{Agent, Session, SessionSource, Visitor};
use covisit::core::protocol::INTEGRATIONS;
use serde_json::{json, Value};

use crate::access::{audit, principal, reader_account, require, run};
use crate::auth::{Act, Principal};
use crate::bus::Call;
use crate::errors::ApiError;
use crate::errors::{parse_body, ApiResult};
use crate::keys;
use crate::owner_calls::{durable, on_owner};
use crate::state::Shared;
use crate::store::slot_of;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/v1/visitors", get(list_visitors))
        .route(
            "/v1/visitors/{short_id}",
            get(get_visitor).delete(delete_visitor),
        )
        .route(
            "/v1/visitors/{short_id}/session_requests",
            post(request_session),
        )
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/sessions/{id}/end", post(end_session))
        .route("/v1/sessions/{id}/notes", post(add_note))
        .route("/v1/sessions/{id}/ratings", post(rate_session))
        .route("/v1/sessions/{id}/communications", get(communications))
}

/// The REST form of a session: the seed fields plus `status` (an extra, documented).
fn session_json(session: &Session, status: &str) -> Value {
    let mut v = serde_json::to_value(session).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("status".into(), Value::String(status.to_string()));
    }
    v
}

async fn list_visitors(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    run(&state, async {
        let account = reader_account(&state, &headers).await?;
        let online_only = match q.get("online").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::INVALID_ARGUMENT,
                    "`online` must be true or false",
                ))
            }
        };
        let text = q
            .get("q")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if let Some(t) = &text {
            if t.len() > covisit::core::derive::MAX_SEARCH_QUERY {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::INVALID_ARGUMENT,
                    "`q` is too long",
                ));
            }
            if crate::auth::is_lookup_code(t)
                && !crate::limits::lookup_allowed(&state, account).await
            {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RATE_LIMITED,
                    "too many lookup-code searches; retry in a minute",
                ));
            }
        }
        let mut list = state.hub.online_visitors(account).await;
        if !online_only {
            state.hub.flush().await;
            let stored = state
                .store
                .list_visitors(account)
                .await
                .map_err(ApiError::internal)?;
            for v in stored {
                if !list.iter().any(|x| x.short_id == v.short_id) {
                    list.push(v);
                }
            }
        }
        if let Some(t) = &text {
            list.retain(|v| covisit::core::derive::visitor_matches(v, t));
        }
        Ok(Json(json!({ "visitors": list })).into_response())
    })
    .await
}

async fn find_visitor(state: &Shared, account: i64, short_id: &str) -> Result<Visitor, ApiError> {
    if !valid_id(short_id) {
        return Err(ApiError::not_found("visitor"));
    }
    if let Some(v) = state.hub.visitor(account, short_id).await {
        return Ok(v);
    }
    state.hub.flush().await;
    state
        .store
        .get_visitor(account, short_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("visitor"))
}

async fn get_visitor(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(short_id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let account = reader_account(&state, &headers).await?;
        Ok(Json(find_visitor(&state, account, &short_id).await?).into_response())
    })
    .await
}

async fn delete_visitor(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(short_id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, true).await?;
        require(&p, Act::EraseVisitor)?;
        let account = p.account_id();
        if !valid_id(&short_id) {
            return Err(ApiError::not_found("visitor"));
        }
        let call = Call::EraseVisitor {
            account_id: account,
            short_id: short_id.clone(),
        };
        on_owner(&state, slot_of(&short_id), call).await?;
        tracing::info!(visitor = %short_id, "visitor personal data erased");
        // The trail stays: entries name the visitor by id only, never by what was erased.
        let ip = state.client_ip(peer, &headers);
        audit(
            &state,
            account,
            &p.actor(),
            "visitor.erased",
            Some(&format!("visitor:{short_id}")),
            Some(&ip),
            "ok",
        );
        durable(&state).await?;
        Ok(Json(json!({ "short_id": short_id, "erased": true })).into_response())
    })
    .await
}

async fn request_session(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(short_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, true).await?;
        require(&p, Act::CoBrowse)?;
        let account = p.account_id();
        let body = parse_body(&body)?;
        let agent = body
            .get("agent")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::INVALID_ARGUMENT,
                    "body must be {\"agent\": {\"name\", \"external_id\"}}",
                )
            })?;
        let name = match agent.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 200 => {
                n.trim().to_string()
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::INVALID_ARGUMENT,
                    "`agent.name` must be a string of 1 to 200 characters",
                ))
            }
        };
        let external_id = optional_text(agent.get("external_id"), "agent.external_id", 200)?;
        // An integration's flow (a chat widget's "share screen" button, say) names the
        // integration: the Session's `source` is then `integration`.
        let source = match body.get("integration") {
            None | Some(Value::Null) => SessionSource::Api,
            Some(Value::String(i)) if INTEGRATIONS.contains(&i.as_str()) => {
                SessionSource::Integration
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::INVALID_ARGUMENT,
                    format!(
                        "`integration` must be null or one of: {}",
                        INTEGRATIONS.join(", ")
                    ),
                ))
            }
        };
        find_visitor(&state, account, &short_id).await?;
        let agent = match &p {
            // A signed-in user asks as themself, whatever the body names.
            Principal::User { user_id, .. } => {
                let user = state
                    .directory
                    .user(user_id)
                    .await
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| ApiError::not_found("user"))?;
                crate::access::user_agent(&user)
            }
            // An integration's agent is identified by its external id; without one, this
            // request's agent gets an id of its own (never one derived from a name).
            Principal::Integration { .. } => {
                let external_id =
                    external_id.unwrap_or_else(|| format!("req_{}", keys::random_hex(8)));
                Agent::new(
                    keys::agent_id(account, &external_id),
                    name,
                    Some(external_id),
                )
            }
        };
        let agent_id = agent.id.clone();
        let call = Call::RequestSession {
            account_id: account,
            short_id: short_id.clone(),
            agent,
            source,
        };
        let answer = on_owner(&state, slot_of(&short_id), call).await?;
        let field = |k: &str| {
            answer
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (session_id, viewer_url) = (field("session_id"), field("viewer_url"));
        let ip = state.client_ip(peer, &headers);
        audit(
            &state,
            account,
            &p.actor(),
            "session.requested",
            Some(&session_id),
            Some(&ip),
            &format!("agent {agent_id}"),
        );
        durable(&state).await?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "session_id": session_id, "viewer_url": viewer_url })),
        )
            .into_response())
    })
    .await
}

async fn list_sessions(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    run(&state, async {
        let account = reader_account(&state, &headers).await?;
        let visitor_id = q.get("visitor_id").map(String::as_str);
        state.hub.flush().await;
        let stored = state
            .store
            .list_sessions(account, visitor_id)
            .await
            .map_err(ApiError::internal)?;
        let live = state.hub.sessions_of(account, visitor_id).await;
        let mut sessions: Vec<Value> = stored
            .into_iter()
            .map(|s| match live.iter().find(|l| l.id == s.session.id) {
                Some(l) => session_json(l, &s.status),
                None => session_json(&s.session, &s.status),
            })
            .collect();
        crate::recordings::overlay(&state, account, &mut sessions).await?;
        Ok(Json(json!({ "sessions": sessions })).into_response())
    })
    .await
}

/// The REST Session (with its recording's fields: `recordings::overlay`).
async fn find_session(state: &Shared, account: i64, id: &str) -> Result<Value, ApiError> {
    let mut one = [find_session_record(state, account, id).await?];
    crate::recordings::overlay(state, account, &mut one).await?;
    let [session] = one;
    Ok(session)
}

async fn find_session_record(state: &Shared, account: i64, id: &str) -> Result<Value, ApiError> {
    if !valid_id(id) {
        return Err(ApiError::not_found("session"));
    }
    if let Some((s, status, _)) = state.hub.session(account, id).await {
        let mut v = session_json(&s, status.as_str());
        // While live: what the visitor's pages sent in it (mirror records, assets among
        // them), an extra field (docs/MIRROR.md, "Assets through covisit").
        let bytes = state.hub.session_bytes(id).await;
        if let Value::Object(m) = &mut v {
            m.insert(
                "visitor_bytes".into(),
                json!({"mirror": bytes.mirror, "assets": bytes.assets}),
            );
        }
        return Ok(v);
    }
    state.hub.flush().await;
    let s = state
        .store
        .get_session(account, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("session"))?;
    Ok(session_json(&s.session, &s.status))
}

async fn get_session(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let account = reader_account(&state, &headers).await?;
        Ok(Json(find_session(&state, account, &id).await?).into_response())
    })
    .await
}

/// Whether the principal may end or annotate session `current`: a supervisor, an admin,
/// the secret key, or an agent who took part in it.
fn may_manage(p: &Principal, current: &Value) -> Result<(), ApiError> {
    if p.may(Act::ManageAnySession) {
        return Ok(());
    }
    let Principal::User { user_id, .. } = p else {
        return Ok(());
    };
    let took_part = current
        .get("agents")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|x| x.get("id").and_then(Value::as_str) == Some(user_id))
        });
    if took_part {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::FORBIDDEN,
            "only the session's agents, supervisors and admins may do this",
        ))
    }
}

async fn end_session(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, true).await?;
        let account = p.account_id();
        let current = find_session(&state, account, &id).await?;
        may_manage(&p, &current)?;
        if current.get("status").and_then(Value::as_str) == Some("ended") {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::WRONG_SESSION_STATE,
                "the session has already ended",
            ));
        }
        let call = Call::EndSession {
            account_id: account,
            session_id: id.clone(),
        };
        on_owner(&state, slot_of(&id), call).await?;
        let ip = state.client_ip(peer, &headers);
        audit(
            &state,
            account,
            &p.actor(),
            "session.ended",
            Some(&id),
            Some(&ip),
            "system",
        );
        durable(&state).await?;
        Ok(Json(find_session(&state, account, &id).await?).into_response())
    })
    .await
}

async fn add_note(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, true).await?;
        let account = p.account_id();
        let body = parse_body(&body)?;
        let text = match body.get("text") {
            Some(Value::String(t)) if !t.trim().is_empty() && t.len() <= 2048 => t.clone(),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::INVALID_ARGUMENT,
                    "`text` must be a string of 1 to 2048 bytes",
                ))
            }
        };
        let current = find_session(&state, account, &id).await?;
        may_manage(&p, &current)?;
        // `by` is the agent's id: the user's own, or `api` for the secret key.
        let by = p.actor();
        let call = Call::AddNote {
            account_id: account,
            session_id: id.clone(),
            by: by.clone(),
            text,
        };
        on_owner(&state, slot_of(&id), call).await?;
        let ip = state.client_ip(peer, &headers);
        audit(
            &state,
            account,
            &by,
            "note.added",
            Some(&id),
            Some(&ip),
            "ok",
        );
        durable(&state).await?;
        let session = find_session(&state, account, &id).await?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "agent_notes": session.get("agent_notes") })),
        )
            .into_response())
    })
    .await
}

/// A body field that may be absent or null, else a string of at most `max` bytes.
fn optional_text(v: Option<&Value>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_ARGUMENT,
            format!("`{field}` must be a string of at most {max} bytes, or null"),
        )),
    }
}

/// `{rating, feedback}`: the signed-in agent rates a session it was part of, once it
/// ended (a second rating replaces its first), also after the server let the session go
/// from memory, where the console's socket cannot reach it any more.
async fn rate_session(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, true).await?;
        let Principal::User { user_id, .. } = &p else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::FORBIDDEN,
                "a rating is an agent's: sign in as the agent who was in the session",
            ));
        };
        let account = p.account_id();
        let body = parse_body(&body)?;
        let rating = match body.get("rating").and_then(Value::as_u64) {
            Some(r @ 1..=5) => r as u8,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::INVALID_ARGUMENT,
                    "`rating` must be a whole number from 1 to 5",
                ))
            }
        };
        let feedback = optional_text(body.get("feedback"), "feedback", 2048)?;
        find_session(&state, account, &id).await?;
        let call = Call::RateSession {
            account_id: account,
            session_id: id.clone(),
            agent_id: user_id.clone(),
            rating,
            feedback,
        };
        let result = on_owner(&state, slot_of(&id), call).await;
        let ip = state.client_ip(peer, &headers);
        audit(
            &state,
            account,
            user_id,
            "session.rated",
            Some(&id),
            Some(&ip),
            if result.is_ok() { "ok" } else { "refused" },
        );
        result?;
        durable(&state).await?;
        let session = find_session(&state, account, &id).await?;
        Ok(Json(json!({ "quality_feedback": session.get("quality_feedback") })).into_response())
    })
    .await
}

async fn communications(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let account = reader_account(&state, &headers).await?;
        if let Some((_, _, comms)) = state.hub.session(account, &id).await {
            return Ok(Json(comms).into_response());
        }
        find_session(&state, account, &id).await?;
        let comms = state
            .store
            .list_communications(&id)
            .await
            .map_err(ApiError::internal)?;
        Ok(Json(comms).into_response())
    })
    .await
}
