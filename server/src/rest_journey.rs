//! The journey and analytics REST API, and the tracking beacon:
//!
//! - `POST /api/v1/journey/beacon`: the SDK's `navigator.sendBeacon` on `pagehide`
//!   (`text/plain` JSON carrying the public key; no `Authorization`).
//! - `GET /api/v1/journey/sessions?visitor_id=ID`, `GET /api/v1/journey/sessions/{id}`:
//!   seed 003 journey sessions, linked to the co-browse session that happened in them.
//! - `GET /api/v1/analytics/conversations/{session_id}/details` and
//!   `POST /api/v1/analytics/conversations/details/query`: the seed 004 export.
//!
//! Reads flush the hub's writer first, then prefer in-memory copies (fresher).

use covisit::core::codes::ErrorCode;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use covisit::core::analytics::{self, ConversationFacts};
use covisit::core::ids::valid_id;
use covisit::core::model::{
    AddressableEntityRef, AnalyticsConversation, CobrowseRole, Cobrowsesession,
    ConversationChannel, JourneySession, Session,
};
use covisit::core::protocol::{TrackBeacon, MAX_FRAME_BYTES};
use covisit::core::Millis;
use serde_json::{json, Map, Value};

use crate::access::{audit, principal, reader_account, require, run};
use crate::auth::Act;
use crate::bus::Call;
use crate::errors::ApiError;
use crate::errors::{parse_body, ApiResult};
use crate::journey::TrackInput;
use crate::owner_calls::on_owner;
use crate::state::Shared;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/v1/journey/beacon", post(beacon))
        .route("/v1/journey/sessions", get(list_journeys))
        .route("/v1/journey/sessions/{id}", get(get_journey))
        .route(
            "/v1/analytics/conversations/{session_id}/details",
            get(conversation_details),
        )
        .route(
            "/v1/analytics/conversations/details/query",
            post(query_conversations),
        )
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::INVALID_ARGUMENT,
        message,
    )
}

// ----- the beacon ---------------------------------------------------------------------

async fn beacon(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let result = run(&state, async {
        if body.len() > MAX_FRAME_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PAYLOAD_TOO_LARGE,
                format!("a beacon holds at most {MAX_FRAME_BYTES} bytes"),
            ));
        }
        let beacon: TrackBeacon = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BAD_JSON,
                format!("body is not a track beacon: {e}"),
            )
        })?;
        let key = match state.directory.key(&beacon.api_key).await {
            Ok(Some(k)) if beacon.api_key.starts_with("pk_") && k.revoked_at.is_none() => k,
            Ok(_) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::INVALID_API_KEY,
                    "api_key is not a public key of any account",
                ))
            }
            Err(e) => return Err(ApiError::internal(e)),
        };
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        if !crate::auth::origin_allowed(key.origins.as_deref(), key.allow_loopback, origin) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ORIGIN_NOT_ALLOWED,
                "pages of this origin may not use this public key",
            ));
        }
        let account_id = key.account_id;
        let short_id = beacon.short_id;
        let unknown = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UNKNOWN_VISITOR,
                "no such visitor",
            )
        };
        if !valid_id(&short_id) {
            return Err(unknown());
        }
        let live = state.hub.visitor(account_id, &short_id).await;
        let stored = match &live {
            Some(_) => None,
            None => state
                .store
                .get_visitor(account_id, &short_id)
                .await
                .map_err(ApiError::internal)?,
        };
        let Some(visitor) = live.or(stored) else {
            return Err(unknown());
        };
        // Only the visitor itself (who holds its secret) adds to its journey.
        // (No stored row: erased meanwhile; its welcome stored the row with the hash.)
        let hash = state
            .store
            .visitor_secret_hash(account_id, &short_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(unknown)?;
        let proven = match (&hash, &beacon.visitor_secret) {
            (Some(h), Some(s)) => crate::auth::same_hash(&crate::auth::hash_secret(s), h),
            _ => false,
        };
        if !proven {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::INVALID_VISITOR_SECRET,
                "the beacon does not carry this visitor's secret",
            ));
        }
        if let Some(c) = &beacon.unique_connection_id {
            let owner = match valid_id(c) {
                false => None,
                true => state
                    .store
                    .connection_visitor(c)
                    .await
                    .map_err(ApiError::internal)?,
            };
            if owner.as_deref() != Some(short_id.as_str()) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::UNKNOWN_CONNECTION,
                    "uniqueConnectionId is not a connection of this visitor",
                ));
            }
        }
        let input = TrackInput {
            account_id,
            short_id,
            ip: state.client_ip(peer, &headers),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|h| h.to_str().ok())
                .map(|s| s.chars().take(1024).collect()),
            authenticated: visitor.unique_id.is_some(),
            sent_at: beacon.sent_at,
            events: beacon.events,
        };
        // On the visitor's owner, after what it did before (an erasure, say).
        let slot = crate::store::slot_of(&input.short_id);
        on_owner(&state, slot, Call::Track(Box::new(input))).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await;
    // `sendBeacon` never reads the answer, but a page's own `fetch` may: allow it.
    let mut response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(response)
}

// ----- journey sessions ---------------------------------------------------------------

/// The visitor's co-browse sessions, live copies over stored ones.
async fn visitor_sessions(
    state: &Shared,
    account: i64,
    visitor_id: &str,
) -> Result<Vec<Session>, ApiError> {
    let stored = state
        .store
        .list_sessions(account, Some(visitor_id))
        .await
        .map_err(ApiError::internal)?;
    let live = state.hub.sessions_of(account, Some(visitor_id)).await;
    let mut out: Vec<Session> = stored
        .into_iter()
        .map(|s| {
            live.iter()
                .find(|l| l.id == s.session.id)
                .cloned()
                .unwrap_or(s.session)
        })
        .collect();
    for l in live {
        if !out.iter().any(|s| s.id == l.id) {
            out.push(l);
        }
    }
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    Ok(out)
}

async fn communications_of(
    state: &Shared,
    account: i64,
    session_id: &str,
) -> Result<Vec<Cobrowsesession>, ApiError> {
    if let Some((_, _, comms)) = state.hub.session(account, session_id).await {
        return Ok(comms);
    }
    state
        .store
        .list_communications(session_id)
        .await
        .map_err(ApiError::internal)
}

/// Whether `started_at` falls inside the journey session.
fn within(j: &JourneySession, started_at: &str) -> bool {
    started_at >= j.created_date.as_str()
        && j.ended_date.as_deref().is_none_or(|end| started_at < end)
}

/// Fills the conversation fields from the last co-browse session that started during
/// the journey session.
async fn link(
    state: &Shared,
    account: i64,
    j: &mut JourneySession,
    sessions: &[Session],
) -> Result<(), ApiError> {
    let Some(s) = sessions.iter().rev().find(|s| within(j, &s.started_at)) else {
        return Ok(());
    };
    j.conversation = Some(AddressableEntityRef {
        id: s.id.clone(),
        self_uri: format!("/api/v1/analytics/conversations/{}/details", s.id),
    });
    j.conversation_channels = vec![ConversationChannel {
        channel_type: "cobrowse".into(),
        message_type: None,
        platform: Some("covisit".into()),
    }];
    j.originating_direction = Some(analytics::direction(s).to_string());
    let comms = communications_of(state, account, &s.id).await?;
    if let Some(agent) = comms
        .iter()
        .rev()
        .find(|c| c.cobrowse_role == CobrowseRole::Viewer)
    {
        let id = agent
            .self_address
            .address_raw
            .as_deref()
            .and_then(|a| a.strip_prefix("covisit:agent/"))
            .unwrap_or_default();
        j.last_connected_user = Some(AddressableEntityRef {
            id: id.to_string(),
            self_uri: format!("/api/v1/sessions/{}", s.id),
        });
        j.last_user_disconnect_type = agent
            .disconnect_type
            .and_then(|d| serde_json::to_value(d).ok())
            .and_then(|v| v.as_str().map(str::to_string));
    }
    Ok(())
}

async fn identified(state: &Shared, account: i64, visitor_id: &str) -> bool {
    match state.hub.visitor(account, visitor_id).await {
        Some(v) => v.unique_id.is_some(),
        None => state
            .store
            .get_visitor(account, visitor_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|v| v.unique_id.is_some()),
    }
}

/// Stored sessions with the in-memory copy of the visitor's current one laid over.
fn with_cached(state: &Shared, account: i64, list: Vec<JourneySession>) -> Vec<JourneySession> {
    list.into_iter()
        .map(|j| {
            let visitor = j.customer_id.clone().unwrap_or_default();
            match state.journeys.cached(account, &visitor) {
                Some(c) if c.id == j.id => c,
                _ => j,
            }
        })
        .collect()
}

async fn present(
    state: &Shared,
    account: i64,
    list: Vec<JourneySession>,
) -> Result<Vec<JourneySession>, ApiError> {
    let now = crate::clock::now();
    let mut out = Vec::with_capacity(list.len());
    let mut visitor: Option<(String, Vec<Session>, bool)> = None;
    for j in with_cached(state, account, list) {
        let vid = j.customer_id.clone().unwrap_or_default();
        if visitor.as_ref().is_none_or(|(v, ..)| *v != vid) {
            let sessions = visitor_sessions(state, account, &vid).await?;
            let auth = identified(state, account, &vid).await;
            visitor = Some((vid.clone(), sessions, auth));
        }
        let Some((_, sessions, auth)) = &visitor else {
            continue; // set just above
        };
        let mut j = state.journeys.present(j, now, *auth);
        link(state, account, &mut j, sessions).await?;
        out.push(j);
    }
    Ok(out)
}

async fn list_journeys(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    run(&state, async {
        let account = reader_account(&state, &headers).await?;
        if let Some(key) = q.keys().find(|k| k.as_str() != "visitor_id") {
            return Err(invalid(format!("unknown query parameter `{key}`")));
        }
        let visitor_id = q.get("visitor_id").map(String::as_str);
        if visitor_id.is_some_and(|v| !valid_id(v)) {
            return Err(invalid(
                "`visitor_id` must be 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        state.hub.flush().await;
        let list = state
            .store
            .list_journey_sessions(account, visitor_id)
            .await
            .map_err(ApiError::internal)?;
        let sessions = present(&state, account, list).await?;
        Ok(Json(json!({ "sessions": sessions })).into_response())
    })
    .await
}

async fn get_journey(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let account = reader_account(&state, &headers).await?;
        if !valid_id(&id) {
            return Err(ApiError::not_found("journey session"));
        }
        state.hub.flush().await;
        let j = state
            .store
            .get_journey_session(account, &id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("journey session"))?;
        let j = present(&state, account, vec![j]).await?.pop();
        Ok(Json(j).into_response())
    })
    .await
}

// ----- analytics ----------------------------------------------------------------------

/// The conversation of one co-browse session (live copy first).
async fn conversation(
    state: &Shared,
    account: i64,
    session: Session,
) -> Result<AnalyticsConversation, ApiError> {
    let comms = communications_of(state, account, &session.id).await?;
    let visitor_name = match state.hub.visitor(account, &session.visitor_id).await {
        Some(v) => Some(v.nickname),
        None => state
            .store
            .get_visitor(account, &session.visitor_id)
            .await
            .map_err(ApiError::internal)?
            .map(|v| v.nickname),
    };
    let journeys = with_cached(
        state,
        account,
        state
            .store
            .list_journey_sessions(account, Some(&session.visitor_id))
            .await
            .map_err(ApiError::internal)?,
    );
    let journey_session_id = journeys
        .iter()
        .find(|j| within(j, &session.started_at))
        .map(|j| j.id.clone());
    let facts = ConversationFacts {
        visitor_name,
        authenticated: session.visitor_unique_id.is_some(),
        journey_session_id,
    };
    Ok(analytics::conversation_details(&session, &comms, &facts))
}

async fn find_session(state: &Shared, account: i64, id: &str) -> Result<Session, ApiError> {
    if !valid_id(id) {
        return Err(ApiError::not_found("conversation"));
    }
    if let Some((s, ..)) = state.hub.session(account, id).await {
        return Ok(s);
    }
    state.hub.flush().await;
    state
        .store
        .get_session(account, id)
        .await
        .map_err(ApiError::internal)?
        .map(|s| s.session)
        .ok_or_else(|| ApiError::not_found("conversation"))
}

/// The analytics export is read by supervisors, admins and integrations, and every
/// read is audited.
async fn export_reader(
    state: &Shared,
    peer: SocketAddr,
    headers: &HeaderMap,
    write: bool,
    target: &str,
) -> Result<i64, ApiError> {
    let p = principal(state, headers, write).await?;
    require(&p, Act::ReadExport)?;
    let ip = state.client_ip(peer, headers);
    audit(
        state,
        p.account_id(),
        &p.actor(),
        "export.read",
        Some(target),
        Some(&ip),
        "ok",
    );
    Ok(p.account_id())
}

async fn conversation_details(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let account = export_reader(&state, peer, &headers, false, &session_id).await?;
        let session = find_session(&state, account, &session_id).await?;
        Ok(Json(conversation(&state, account, session).await?).into_response())
    })
    .await
}

/// Sessions scanned by one query at most.
const MAX_QUERY_SCAN: usize = 10_000;
const DISCONNECT_TYPES: [&str; 5] = ["client", "peer", "system", "transportFailure", "timeout"];

/// A validated query body.
struct DetailsQuery {
    from: Millis,
    to: Millis,
    visitor_id: Option<String>,
    agent_id: Option<String>,
    disconnect_type: Option<String>,
    page_size: usize,
    page_number: usize,
    descending: bool,
}

fn only_keys(map: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), ApiError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!("unknown field `{at}{k}`"))),
        None => Ok(()),
    }
}

fn parse_query(body: &Value) -> Result<DetailsQuery, ApiError> {
    let body = body
        .as_object()
        .ok_or_else(|| invalid("body must be an object {interval, filters, paging, order}"))?;
    only_keys(body, &["interval", "filters", "paging", "order"], "")?;
    let interval = body
        .get("interval")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("`interval` is required: \"<start>/<end>\" in ISO-8601 UTC"))?;
    let (from, to) = interval
        .split_once('/')
        .and_then(|(a, b)| Some((Millis::parse_iso8601(a)?, Millis::parse_iso8601(b)?)))
        .ok_or_else(|| {
            invalid("`interval` must be \"<start>/<end>\", e.g. 2026-11-21T00:00:00.000Z/2026-11-22T00:00:00.000Z")
        })?;
    if from >= to {
        return Err(invalid("`interval` must start before it ends"));
    }
    let text = |map: &Map<String, Value>, key: &str| -> Result<Option<String>, ApiError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!(
                "`filters.{key}` must be a string of 1 to 64 characters"
            ))),
        }
    };
    let empty = Map::new();
    let filters = match body.get("filters") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("`filters` must be an object")),
    };
    only_keys(
        filters,
        &["visitorId", "agentId", "disconnectType"],
        "filters.",
    )?;
    let disconnect_type = text(filters, "disconnectType")?;
    if let Some(d) = &disconnect_type {
        if !DISCONNECT_TYPES.contains(&d.as_str()) {
            return Err(invalid(format!(
                "`filters.disconnectType` must be one of {}",
                DISCONNECT_TYPES.join(", ")
            )));
        }
    }
    let paging = match body.get("paging") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("`paging` must be an object")),
    };
    only_keys(paging, &["pageSize", "pageNumber"], "paging.")?;
    let number = |key: &str, default: u64, max: u64| -> Result<usize, ApiError> {
        match paging.get(key) {
            None | Some(Value::Null) => Ok(default as usize),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=max).contains(n))
                .map(|n| n as usize)
                .ok_or_else(|| {
                    invalid(format!(
                        "`paging.{key}` must be a whole number from 1 to {max}"
                    ))
                }),
        }
    };
    let descending = match body.get("order") {
        None | Some(Value::Null) => false,
        Some(Value::String(o)) if o == "asc" => false,
        Some(Value::String(o)) if o == "desc" => true,
        Some(_) => return Err(invalid("`order` must be \"asc\" or \"desc\"")),
    };
    Ok(DetailsQuery {
        from,
        to,
        visitor_id: text(filters, "visitorId")?,
        agent_id: text(filters, "agentId")?,
        disconnect_type,
        page_size: number("pageSize", 25, 100)?,
        page_number: number("pageNumber", 1, 10_000)?,
        descending,
    })
}

async fn query_conversations(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let q = parse_query(&parse_body(&body)?)?;
        let target = format!("{}/{}", q.from.to_iso8601(), q.to.to_iso8601());
        let account = export_reader(&state, peer, &headers, true, &target).await?;
        state.hub.flush().await;
        let stored = state
            .store
            .sessions_started_between(
                account,
                &q.from.to_iso8601(),
                &q.to.to_iso8601(),
                MAX_QUERY_SCAN,
            )
            .await
            .map_err(ApiError::internal)?;
        let mut stored: Vec<Session> = stored
            .into_iter()
            .map(|s| s.session)
            .filter(|s| q.visitor_id.as_ref().is_none_or(|v| *v == s.visitor_id))
            .collect();
        if q.descending {
            stored.reverse();
        }
        let skip = (q.page_number - 1).saturating_mul(q.page_size);
        // Filters that need the conversation built; without them, only the page's
        // conversations are (each is a few store reads).
        let built_filters = q.agent_id.is_some() || q.disconnect_type.is_some();
        let total_unfiltered = stored.len();
        if !built_filters {
            stored = stored.into_iter().skip(skip).take(q.page_size).collect();
        }
        let mut matches = Vec::new();
        for s in stored {
            let session = match state.hub.session(account, &s.id).await {
                Some((live, ..)) => live,
                None => s,
            };
            let c = conversation(&state, account, session).await?;
            if let Some(a) = &q.agent_id {
                if !c.participants.iter().any(|p| p.user_id.as_ref() == Some(a)) {
                    continue;
                }
            }
            if let Some(d) = &q.disconnect_type {
                if !analytics::disconnect_types(&c).contains(&d.as_str()) {
                    continue;
                }
            }
            matches.push(c);
        }
        let (total, page): (usize, Vec<AnalyticsConversation>) = if built_filters {
            let total = matches.len();
            (
                total,
                matches.into_iter().skip(skip).take(q.page_size).collect(),
            )
        } else {
            (total_unfiltered, matches)
        };
        Ok(Json(json!({ "conversations": page, "totalHits": total })).into_response())
    })
    .await
}
