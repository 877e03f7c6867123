//! Who is calling and may they: the principal of a REST request (a signed-in user, with
//! CSRF checked on writes, or an integration with the secret key) or of an agent socket
//! (the same cookie), role checks, and the audit entries every privileged act writes.
//! Used by every REST module and the sockets.

use axum::http::{header, HeaderMap, StatusCode};
use covisit::core::codes::ErrorCode;
use covisit::core::model::Agent;

use crate::auth::{self, Act, Principal};
use crate::directory::UserRecord;
use crate::errors::{ApiError, ApiResult};
use crate::hub::HubError;
use crate::state::Shared;
use crate::store::{AuditEntry, Write};

fn now() -> covisit::core::Millis {
    crate::clock::now()
}

fn unauthorized(m: &str) -> ApiError {
    ApiError::unauthorized(m)
}

fn forbidden(m: &str) -> ApiError {
    ApiError::forbidden(m)
}

/// Appends an audit entry (through the hub's ordered writer, after the writes queued
/// before it). `ip` is the address of the person acting (never a visitor's).
pub fn audit(
    state: &Shared,
    account_id: i64,
    actor: &str,
    action: &str,
    target: Option<&str>,
    ip: Option<&str>,
    result: &str,
) {
    state.hub.persist(Write::Audit(Box::new(AuditEntry {
        id: 0,
        account_id,
        at: now().to_iso8601(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.map(str::to_string),
        ip: ip.map(str::to_string),
        result: result.to_string(),
    })));
}

/// Who a REST request is. A `Bearer` secret key is the account's integration; without
/// one, the console's session cookie names a signed-in user (idle sessions expire; a
/// disabled user is refused). A cookie-authenticated write (`write`) must carry the
/// session's CSRF token in `X-CSRF-Token`.
pub async fn principal(
    state: &Shared,
    headers: &HeaderMap,
    write: bool,
) -> Result<Principal, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(token) = bearer {
        if token.starts_with("pk_") {
            return match state.directory.key(token).await {
                Ok(Some(_)) => Err(forbidden(
                    "a public key cannot use the REST API; use the account's secret key",
                )),
                Ok(None) => Err(unauthorized("unknown key")),
                Err(e) => Err(ApiError::internal(e)),
            };
        }
        return match state
            .directory
            .account_by_secret(&auth::hash_secret(token))
            .await
        {
            Ok(Some((account_id, _))) => Ok(Principal::Integration { account_id }),
            Ok(None) => Err(unauthorized("unknown key")),
            Err(e) => Err(ApiError::internal(e)),
        };
    }
    let token = headers
        .get(header::COOKIE)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::session_token)
        .ok_or_else(|| unauthorized("sign in, or send `Authorization: Bearer <secret key>`"))?;
    let (principal, _) = cookie_user(state, &token).await?;
    if write {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let Principal::User { csrf_token, .. } = &principal else {
            return Err(ApiError::internal("a cookie names a user"));
        };
        if !auth::same_hash(sent, csrf_token) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CSRF_TOKEN_INVALID,
                "a change made with the console's sign-in needs its X-CSRF-Token header",
            ));
        }
    }
    Ok(principal)
}

/// The user a session token (the cookie's value) signs in, refreshed; the agent
/// socket authenticates with it too.
pub async fn cookie_user(state: &Shared, token: &str) -> Result<(Principal, UserRecord), ApiError> {
    let hash = auth::hash_secret(token);
    let session = state
        .directory
        .auth_session(&hash)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| unauthorized("the sign-in session is unknown or ended; sign in again"))?;
    let now = now();
    let idle = covisit::core::Millis::parse_iso8601(&session.last_seen_at)
        .map(|seen| now.seconds_since(seen))
        .unwrap_or(u64::MAX);
    if idle >= auth::SESSION_IDLE_SECONDS {
        let _ = state.directory.delete_auth_session(&hash).await;
        return Err(unauthorized("the sign-in session expired; sign in again"));
    }
    let user = state
        .directory
        .user(&session.user_id)
        .await
        .map_err(ApiError::internal)?
        .filter(|u| !u.disabled)
        .ok_or_else(|| unauthorized("this user cannot sign in"))?;
    // Refreshing at most once a minute keeps reads from writing on every request.
    if idle >= 60 {
        let _ = state
            .directory
            .touch_auth_session(&hash, &now.to_iso8601())
            .await;
    }
    Ok((
        Principal::User {
            account_id: user.account_id,
            user_id: user.id.clone(),
            role: user.role,
            session: hash,
            csrf_token: session.csrf_token,
        },
        user,
    ))
}

/// Refuses unless the principal may do `act`.
pub fn require(p: &Principal, act: Act) -> Result<(), ApiError> {
    if p.may(act) {
        Ok(())
    } else {
        Err(forbidden("your role does not allow this"))
    }
}

/// The seed Agent of a console user: `u_…`, with email, without external_id.
pub fn user_agent(u: &UserRecord) -> Agent {
    Agent {
        agent_nickname: u.nickname.clone(),
        email: Some(u.email.clone()),
        external_id: None,
        id: u.id.clone(),
        name: u.name.clone(),
        on_premise: true,
    }
}

/// The account of a read: any signed-in user or the secret key may read.
pub async fn reader_account(state: &Shared, headers: &HeaderMap) -> Result<i64, ApiError> {
    let p = principal(state, headers, false).await?;
    require(&p, Act::CoBrowse)?;
    Ok(p.account_id())
}

/// Runs a handler's body, counting an error answer for `/metrics`.
pub async fn run(state: &Shared, f: impl std::future::Future<Output = ApiResult>) -> ApiResult {
    f.await.inspect_err(|_| state.metrics.error())
}

/// A hub refusal as a REST answer: its code, with the status that code means.
pub fn hub_error(e: HubError) -> ApiError {
    let status = match e.code() {
        ErrorCode::UNKNOWN_SESSION | ErrorCode::UNKNOWN_VISITOR | ErrorCode::NOT_FOUND => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::VISITOR_OFFLINE
        | ErrorCode::VISITOR_UNSUPPORTED
        | ErrorCode::WRONG_SESSION_STATE
        | ErrorCode::WRONG_CONTROL_STATE
        | ErrorCode::DUPLICATE_AGENT
        | ErrorCode::DUPLICATE_CONNECTION => StatusCode::CONFLICT,
        ErrorCode::NOT_IN_SESSION | ErrorCode::ASSETS_NOT_ENABLED | ErrorCode::FORBIDDEN => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::ASSET_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::INTERNAL => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.message())
}

/// Whether the request's `Origin` is this server: its public URL's origin
/// (`--public-url`: what a browser behind a proxy sees), or the `Host` the request named
/// (a direct connection). A page of the console, not another site. None without an
/// `Origin` (not a browser's cross-site request: browsers send it on every cross-origin
/// POST and WebSocket).
pub fn origin_is_this_server(public_url: &str, headers: &HeaderMap) -> Option<bool> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let Ok(u) = url::Url::parse(origin) else {
        return Some(false);
    };
    let public = url::Url::parse(public_url).ok().map(|p| p.origin());
    if public.is_some_and(|p| p == u.origin()) {
        return Some(true);
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    Some(host.is_some_and(|host| {
        u.host_str().is_some_and(|h| {
            let authority = match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            };
            authority.eq_ignore_ascii_case(host)
        })
    }))
}

/// A request that signs someone in (no cookie or key yet, so no CSRF token to check)
/// must come from this site's own page, with a JSON body: a form on another site (an
/// HTML form can post `text/plain` that parses as JSON) cannot sign the browser in to
/// the attacker's account.
pub fn sign_in_request_ok(state: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    if origin_is_this_server(&state.public_url, headers) == Some(false) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::ORIGIN_NOT_ALLOWED,
            "signing in is allowed only from this server's own pages",
        ));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::INVALID_ARGUMENT,
            "send the body as `Content-Type: application/json`",
        ));
    }
    Ok(())
}
