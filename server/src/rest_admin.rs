//! Accounts, people and the audit log over REST: sign-in and sign-out (the console's
//! cookie session), invites and password resets (one-time links), users and roles,
//! keys and their allowed origins, account settings, and the audit log. Also
//! [`principal`]: who a REST request is (a signed-in user, with CSRF checked on
//! writes, or an integration with the secret key), used by every REST module.
//!
//! Every privileged act and every failed sign-in writes an audit entry ([`audit`]).

use covisit::core::codes::ErrorCode;
use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::access::{audit, cookie_user, principal, require, run, user_agent};
use crate::auth::{self, Act, Principal, Role};
use crate::directory::{AuditQuery, CreateUserError, TokenKind, UserRecord};
use crate::errors::ApiError;
use crate::errors::{parse_body, ApiResult};
use crate::state::Shared;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/v1/auth/sign_in", post(sign_in))
        .route("/v1/auth/sign_out", post(sign_out))
        .route("/v1/auth/accept", post(accept_link))
        .route("/v1/me", get(me))
        .route("/v1/auth/session", get(session_state))
        .route("/v1/users", get(list_users).post(invite_user))
        .route("/v1/users/{id}", axum::routing::patch(update_user))
        .route("/v1/users/{id}/password_reset", post(reset_link))
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{public_key}", axum::routing::patch(update_key))
        .route("/v1/keys/{public_key}/revoke", post(revoke_key))
        .route("/v1/account", get(get_account).patch(update_account))
        .route("/v1/audit", get(read_audit))
}

fn now() -> covisit::core::Millis {
    crate::clock::now()
}

fn unauthorized(m: &str) -> ApiError {
    ApiError::unauthorized(m)
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::invalid(m)
}

fn ip(state: &Shared, peer: SocketAddr, headers: &HeaderMap) -> String {
    state.client_ip(peer, headers)
}

/// A user as the API shows it: never a password hash.
fn user_json(state: &Shared, u: &UserRecord) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "username": u.username,
        "name": u.name,
        "nickname": u.nickname,
        "role": u.role,
        "disabled": u.disabled,
        "status": if u.password_hash.is_some() { "active" } else { "invited" },
        "created_at": u.created_at,
        "personal_link": format!("{}/call/{}", state.public_url, u.username),
    })
}

/// Whether cookies must be `Secure`: the server is reached over https.
fn secure(state: &Shared, headers: &HeaderMap) -> bool {
    state.public_url.starts_with("https://")
        || (state.trust_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                .is_some_and(|p| p.eq_ignore_ascii_case("https")))
}

fn text_field<'a>(body: &'a Value, key: &str, max: usize) -> Result<&'a str, ApiError> {
    match body.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= max => Ok(s.trim()),
        _ => Err(invalid(format!(
            "`{key}` must be a string of 1 to {max} bytes"
        ))),
    }
}

/// Signs `user` in: a new session (a new token and CSRF token every time, so a cookie
/// set before sign-in is never the signed-in one), ending the one the request carried.
async fn start_session(state: &Shared, headers: &HeaderMap, user: &UserRecord) -> ApiResult {
    if let Some(old) = headers
        .get(header::COOKIE)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::session_token)
    {
        let _ = state
            .directory
            .delete_auth_session(&auth::hash_secret(&old))
            .await;
    }
    let token = auth::random_secret(32);
    let csrf = auth::random_secret(32);
    let now = now().to_iso8601();
    state
        .directory
        .create_auth_session(&crate::directory::AuthSession {
            token_hash: auth::hash_secret(&token),
            user_id: user.id.clone(),
            csrf_token: csrf.clone(),
            created_at: now.clone(),
            last_seen_at: now,
        })
        .await
        .map_err(ApiError::internal)?;
    let mut response =
        Json(json!({ "user": user_json(state, user), "csrf_token": csrf })).into_response();
    let cookie = auth::session_cookie(&token, secure(state, headers));
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn sign_in(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        crate::access::sign_in_request_ok(&state, &headers)?;
        let body = parse_body(&body)?;
        let typed = text_field(&body, "email", 254)?.to_lowercase();
        let password = match body.get("password") {
            Some(Value::String(p)) if !p.is_empty() && p.len() <= auth::MAX_PASSWORD_BYTES => {
                p.clone()
            }
            _ => return Err(invalid("`password` must be a string")),
        };
        let ip = ip(&state, peer, &headers);
        let user = state
            .directory
            .user_by_email(&typed)
            .await
            .map_err(ApiError::internal)?;
        // Failures are audited in the user's account; an unknown email in every account
        // would leak nothing useful and has no account: it goes to the log only.
        let fail = |result: &str, user: Option<&UserRecord>| {
            if let Some(u) = user {
                audit(
                    &state,
                    u.account_id,
                    &u.id,
                    "auth.sign_in",
                    Some(&u.id),
                    Some(&ip),
                    result,
                );
            } else {
                tracing::info!(result, "sign-in with an unknown email");
            }
        };
        let refused = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::INVALID_CREDENTIALS,
                "wrong email or password",
            )
        };
        if crate::limits::sign_in_locked(&state, &typed, &ip).await {
            fail("locked", user.as_ref());
            state.hub.flush().await;
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TOO_MANY_ATTEMPTS,
                "too many failed sign-ins; try again in a few minutes",
            ));
        }
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        // Verify even without a user, so that timing does not tell which emails exist.
        let ok = {
            let (p, h) = (
                password.clone(),
                hash.clone()
                    .unwrap_or_else(|| auth::decoy_hash().to_string()),
            );
            tokio::task::spawn_blocking(move || auth::verify_password(&p, &h))
                .await
                .unwrap_or(false)
        };
        let Some(user) = user.filter(|_| ok && hash.is_some()) else {
            let locked = crate::limits::sign_in_failed(&state, &typed, &ip).await;
            let known = state
                .directory
                .user_by_email(&typed)
                .await
                .map_err(ApiError::internal)?;
            fail(
                if locked {
                    "wrong_password_locked"
                } else {
                    "wrong_password"
                },
                known.as_ref(),
            );
            state.hub.flush().await;
            return Err(refused());
        };
        if user.disabled {
            crate::limits::sign_in_failed(&state, &typed, &ip).await;
            fail("disabled", Some(&user));
            state.hub.flush().await;
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::USER_DISABLED,
                "this user is disabled",
            ));
        }
        audit(
            &state,
            user.account_id,
            &user.id,
            "auth.sign_in",
            Some(&user.id),
            Some(&ip),
            "ok",
        );
        start_session(&state, &headers, &user).await
    })
    .await
}

async fn sign_out(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, true).await?;
        let Principal::User {
            session,
            user_id,
            account_id,
            ..
        } = &p
        else {
            return Err(invalid("only a console sign-in can sign out"));
        };
        state
            .directory
            .delete_auth_session(session)
            .await
            .map_err(ApiError::internal)?;
        close_auth_session_everywhere(&state, session).await;
        audit(
            &state,
            *account_id,
            user_id,
            "auth.sign_out",
            Some(user_id),
            Some(&ip(&state, peer, &headers)),
            "ok",
        );
        let mut response = StatusCode::NO_CONTENT.into_response();
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&auth::cleared_cookie(secure(&state, &headers)))
                .map_err(ApiError::internal)?,
        );
        Ok(response)
    })
    .await
}

/// `{token, password}`: an invite's or reset link's token sets the user's password
/// (checked against the policy) and signs them in.
async fn accept_link(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        crate::access::sign_in_request_ok(&state, &headers)?;
        let body = parse_body(&body)?;
        let token = text_field(&body, "token", 128)?.to_string();
        let password = match body.get("password") {
            Some(Value::String(p)) => p.clone(),
            _ => return Err(invalid("`password` must be a string")),
        };
        let hash = auth::hash_secret(&token);
        let now = now().to_iso8601();
        let gone = || {
            ApiError::new(
                StatusCode::GONE,
                ErrorCode::LINK_INVALID,
                "this link is unknown, used or expired; ask an admin for a new one",
            )
        };
        // Looked at first, taken only once the password passed: a refused password
        // leaves the link usable.
        let mut found = None;
        for kind in [TokenKind::Invite, TokenKind::Reset] {
            if let Some(id) = state
                .directory
                .peek_token(&hash, kind, &now)
                .await
                .map_err(ApiError::internal)?
            {
                found = Some((kind, id));
                break;
            }
        }
        let (kind, user_id) = found.ok_or_else(gone)?;
        let user = state
            .directory
            .user(&user_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("user"))?;
        if user.disabled {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::USER_DISABLED,
                "this user is disabled",
            ));
        }
        if let Some(problem) = auth::password_problem(&password, &user.email) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::WEAK_PASSWORD,
                problem,
            ));
        }
        if state
            .directory
            .take_token(&hash, kind, &now)
            .await
            .map_err(ApiError::internal)?
            .as_deref()
            != Some(user.id.as_str())
        {
            return Err(gone());
        }
        let phc = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        state
            .directory
            .set_user_password(&user.id, &phc)
            .await
            .map_err(ApiError::internal)?;
        // A new password ends every other sign-in of the person.
        state
            .directory
            .delete_user_sessions(&user.id)
            .await
            .map_err(ApiError::internal)?;
        close_user_everywhere(&state, &user.id).await;
        let user = state
            .directory
            .user(&user.id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("user"))?;
        let action = if kind == TokenKind::Invite {
            "user.invite_accepted"
        } else {
            "user.password_reset"
        };
        audit(
            &state,
            user.account_id,
            &user.id,
            action,
            Some(&user.id),
            Some(&ip(&state, peer, &headers)),
            "ok",
        );
        start_session(&state, &headers, &user).await
    })
    .await
}

fn now_plus(seconds: u64) -> String {
    now().plus_seconds(seconds).to_iso8601()
}

/// The console's first question: `{signed_in: false}`, or what `/me` says with
/// `signed_in: true` (always 200, so that a page load that is not signed in logs no
/// failed request).
async fn session_state(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    run(&state, async {
        match me_json(&state, &headers).await {
            Ok(mut v) => {
                v["signed_in"] = json!(true);
                Ok(no_store(Json(v).into_response()))
            }
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Ok(no_store(
                Json(json!({ "signed_in": false })).into_response(),
            )),
            Err(e) => Err(e),
        }
    })
    .await
}

fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn me(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    run(&state, async {
        Ok(no_store(
            Json(me_json(&state, &headers).await?).into_response(),
        ))
    })
    .await
}

/// The signed-in user, its seed Agent, its CSRF token and what its role allows.
async fn me_json(state: &Shared, headers: &HeaderMap) -> Result<Value, ApiError> {
    let token = headers
        .get(header::COOKIE)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::session_token)
        .ok_or_else(|| unauthorized("not signed in"))?;
    let (p, user) = cookie_user(state, &token).await?;
    let Principal::User {
        csrf_token,
        account_id,
        ..
    } = &p
    else {
        return Err(ApiError::internal("a cookie names a user"));
    };
    let account = state
        .directory
        .account_name(*account_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({
        "user": user_json(state, &user),
        "agent": user_agent(&user),
        "csrf_token": csrf_token,
        "account": { "name": account },
        "permissions": {
            "join_any_session": p.may(Act::JoinAnySession),
            "read_audit": p.may(Act::ReadAudit),
            "administer": p.may(Act::Administer),
            "erase_visitor": p.may(Act::EraseVisitor),
        },
    }))
}

// ----- users ---------------------------------------------------------------------------------

async fn admin(state: &Shared, headers: &HeaderMap, write: bool) -> Result<Principal, ApiError> {
    let p = principal(state, headers, write).await?;
    require(&p, Act::Administer)?;
    Ok(p)
}

async fn list_users(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, false).await?;
        let users = state
            .directory
            .users(p.account_id())
            .await
            .map_err(ApiError::internal)?;
        let list: Vec<Value> = users.iter().map(|u| user_json(&state, u)).collect();
        Ok(Json(json!({ "users": list })).into_response())
    })
    .await
}

/// A username from an email's local part, made unique with a number when taken.
async fn free_username(state: &Shared, email: &str) -> Result<String, ApiError> {
    let base: String = email
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-').then_some(c)
        })
        .take(24)
        .collect();
    let base = if base.len() < 2 {
        "agent".to_string()
    } else {
        base
    };
    for n in 0..1000 {
        let candidate = if n == 0 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        if state
            .directory
            .user_by_username(&candidate)
            .await
            .map_err(ApiError::internal)?
            .is_none()
        {
            return Ok(candidate);
        }
    }
    Ok(format!("{base}-{}", auth::random_secret(3)))
}

/// Creates a user with a one-time link: an invite (first password) or a reset.
pub async fn issue_link(
    state: &Shared,
    user_id: &str,
    kind: TokenKind,
) -> Result<(String, String), ApiError> {
    let token = auth::random_secret(32);
    let seconds = if kind == TokenKind::Invite {
        auth::INVITE_SECONDS
    } else {
        auth::RESET_SECONDS
    };
    let expires = now_plus(seconds);
    let now = now().to_iso8601();
    state
        .directory
        .void_tokens(user_id, kind, &now)
        .await
        .map_err(ApiError::internal)?;
    state
        .directory
        .create_token(&auth::hash_secret(&token), user_id, kind, &expires)
        .await
        .map_err(ApiError::internal)?;
    let route = if kind == TokenKind::Invite {
        "invite"
    } else {
        "reset"
    };
    Ok((
        format!("{}/agent/#/{route}/{token}", state.public_url),
        expires,
    ))
}

/// `{email, name, role, username?}` → the user (status `invited`) and its invite link,
/// shown once to the admin (valid 7 days).
async fn invite_user(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, true).await?;
        let body = parse_body(&body)?;
        let email = auth::normalize_email(text_field(&body, "email", 254)?)
            .ok_or_else(|| invalid("`email` is not an email address"))?;
        let name = text_field(&body, "name", 200)?.to_string();
        let role = body
            .get("role")
            .and_then(Value::as_str)
            .and_then(Role::parse)
            .ok_or_else(|| invalid("`role` must be admin, supervisor or agent"))?;
        let username = match body.get("username") {
            None | Some(Value::Null) => free_username(&state, &email).await?,
            Some(Value::String(u)) if auth::valid_username(&u.to_lowercase()) => u.to_lowercase(),
            _ => return Err(invalid("`username` must be 2 to 32 of a-z, 0-9, `.`, `_`, `-`")),
        };
        let user = UserRecord {
            id: format!("u_{}", auth::random_secret(8)),
            account_id: p.account_id(),
            email,
            username,
            nickname: name.split_whitespace().next().unwrap_or(&name).to_string(),
            name,
            role,
            password_hash: None,
            disabled: false,
            created_at: now().to_iso8601(),
        };
        match state.directory.create_user(&user).await {
            Ok(()) => {}
            Err(CreateUserError::EmailTaken) => {
                return Err(ApiError::new(StatusCode::CONFLICT, ErrorCode::EMAIL_TAKEN, "a user with this email exists"))
            }
            Err(CreateUserError::UsernameTaken) => {
                return Err(ApiError::new(StatusCode::CONFLICT, ErrorCode::USERNAME_TAKEN, "this username is taken"))
            }
            Err(CreateUserError::Store(e)) => return Err(ApiError::internal(e)),
        }
        let (link, expires) = issue_link(&state, &user.id, TokenKind::Invite).await?;
        let ip = ip(&state, peer, &headers);
        audit(&state, p.account_id(), &p.actor(), "user.invited", Some(&user.id), Some(&ip), "ok");
        state.hub.flush().await;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "user": user_json(&state, &user), "invite_url": link, "expires_at": expires })),
        )
            .into_response())
    })
    .await
}

async fn account_user(state: &Shared, p: &Principal, id: &str) -> Result<UserRecord, ApiError> {
    state
        .directory
        .user(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|u| u.account_id == p.account_id())
        .ok_or_else(|| ApiError::not_found("user"))
}

/// Whether `id` is the only enabled admin left: that one cannot be demoted or disabled
/// (nobody could manage the account any more).
async fn last_admin(state: &Shared, account_id: i64, id: &str) -> Result<bool, ApiError> {
    let users = state
        .directory
        .users(account_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(!users
        .iter()
        .any(|u| u.id != id && u.role == Role::Admin && !u.disabled))
}

/// `{role?, disabled?}`: a disabled user's sockets close and sign-ins end at once.
async fn update_user(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, true).await?;
        let body = parse_body(&body)?;
        let user = account_user(&state, &p, &id).await?;
        let role = match body.get("role") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(Role::parse)
                    .ok_or_else(|| invalid("`role` must be admin, supervisor or agent"))?,
            ),
        };
        let disabled = match body.get("disabled") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(invalid("`disabled` must be true or false")),
        };
        if role.is_none() && disabled.is_none() {
            return Err(invalid("give `role` or `disabled`"));
        }
        let demotes = role.is_some_and(|r| r != Role::Admin) || disabled == Some(true);
        if user.role == Role::Admin
            && demotes
            && last_admin(&state, p.account_id(), &user.id).await?
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::LAST_ADMIN,
                "this is the account's only admin; make someone else admin first",
            ));
        }
        let ip = ip(&state, peer, &headers);
        if let Some(r) = role.filter(|r| *r != user.role) {
            state
                .directory
                .set_user_role(&user.id, r)
                .await
                .map_err(ApiError::internal)?;
            // Sockets carry the role they signed in with: reconnect with the new one.
            close_user_everywhere(&state, &user.id).await;
            audit(
                &state,
                p.account_id(),
                &p.actor(),
                "user.role_changed",
                Some(&user.id),
                Some(&ip),
                r.as_str(),
            );
        }
        if let Some(d) = disabled.filter(|d| *d != user.disabled) {
            state
                .directory
                .set_user_disabled(&user.id, d)
                .await
                .map_err(ApiError::internal)?;
            if d {
                state
                    .directory
                    .delete_user_sessions(&user.id)
                    .await
                    .map_err(ApiError::internal)?;
                close_user_everywhere(&state, &user.id).await;
            }
            audit(
                &state,
                p.account_id(),
                &p.actor(),
                if d { "user.disabled" } else { "user.enabled" },
                Some(&user.id),
                Some(&ip),
                "ok",
            );
        }
        state.hub.flush().await;
        let user = account_user(&state, &p, &id).await?;
        Ok(Json(json!({ "user": user_json(&state, &user) })).into_response())
    })
    .await
}

/// A password-reset link for the user, shown once to the admin (valid 24 h).
async fn reset_link(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, true).await?;
        let user = account_user(&state, &p, &id).await?;
        let kind = if user.password_hash.is_some() { TokenKind::Reset } else { TokenKind::Invite };
        let (link, expires) = issue_link(&state, &user.id, kind).await?;
        let action = if kind == TokenKind::Reset { "user.reset_link_issued" } else { "user.invited" };
        audit(&state, p.account_id(), &p.actor(), action, Some(&user.id), Some(&ip(&state, peer, &headers)), "ok");
        state.hub.flush().await;
        Ok((StatusCode::CREATED, Json(json!({ "url": link, "kind": if kind == TokenKind::Reset { "reset" } else { "invite" }, "expires_at": expires }))).into_response())
    })
    .await
}

// ----- keys ----------------------------------------------------------------------------------

/// Checks and normalises a list of allowed origins.
pub fn parse_origins(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let list = v.and_then(Value::as_array).ok_or_else(|| {
        invalid("`origins` must be a list of origins, e.g. [\"https://shop.example\"]")
    })?;
    if list.len() > 100 {
        return Err(invalid("at most 100 origins per key"));
    }
    let mut out = Vec::new();
    for o in list {
        let text = o
            .as_str()
            .ok_or_else(|| invalid("each origin must be a string"))?;
        let pattern = auth::OriginPattern::parse(text).map_err(invalid)?;
        let canonical = pattern.canonical();
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

async fn list_keys(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, false).await?;
        let keys = state
            .directory
            .keys(p.account_id())
            .await
            .map_err(ApiError::internal)?;
        Ok(Json(json!({ "keys": keys })).into_response())
    })
    .await
}

/// `{name, origins}` → the new key pair; the secret key is shown this once.
async fn create_key(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, true).await?;
        let body = parse_body(&body)?;
        let name = text_field(&body, "name", 200)?.to_string();
        let origins = parse_origins(body.get("origins"))?;
        if origins.is_empty() {
            return Err(invalid("a key needs at least one allowed origin"));
        }
        let pair = crate::keys::KeyPair::generate();
        let now = now().to_iso8601();
        state
            .directory
            .create_key(p.account_id(), Some(&name), &pair.public_key, &auth::hash_secret(&pair.secret_key), Some(&origins), false, &now)
            .await
            .map_err(ApiError::internal)?;
        audit(&state, p.account_id(), &p.actor(), "key.created", Some(&pair.public_key), Some(&ip(&state, peer, &headers)), "ok");
        state.hub.flush().await;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "public_key": pair.public_key, "secret_key": pair.secret_key, "name": name, "origins": origins, "created_at": now })),
        )
            .into_response())
    })
    .await
}

async fn account_key(
    state: &Shared,
    p: &Principal,
    pk: &str,
) -> Result<crate::directory::KeyRecord, ApiError> {
    state
        .directory
        .key(pk)
        .await
        .map_err(ApiError::internal)?
        .filter(|k| k.account_id == p.account_id())
        .ok_or_else(|| ApiError::not_found("key"))
}

/// `{origins}`: replaces the key's allowed origins.
async fn update_key(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(pk): Path<String>,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, true).await?;
        let body = parse_body(&body)?;
        account_key(&state, &p, &pk).await?;
        let origins = parse_origins(body.get("origins"))?;
        state
            .directory
            .set_key_origins(p.account_id(), &pk, &origins)
            .await
            .map_err(ApiError::internal)?;
        audit(
            &state,
            p.account_id(),
            &p.actor(),
            "key.origins_changed",
            Some(&pk),
            Some(&ip(&state, peer, &headers)),
            "ok",
        );
        state.hub.flush().await;
        Ok(Json(json!({ "key": account_key(&state, &p, &pk).await? })).into_response())
    })
    .await
}

async fn revoke_key(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(pk): Path<String>,
) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, true).await?;
        account_key(&state, &p, &pk).await?;
        let now = now().to_iso8601();
        if !state
            .directory
            .revoke_key(p.account_id(), &pk, &now)
            .await
            .map_err(ApiError::internal)?
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::ALREADY_REVOKED,
                "this key is already revoked",
            ));
        }
        audit(
            &state,
            p.account_id(),
            &p.actor(),
            "key.revoked",
            Some(&pk),
            Some(&ip(&state, peer, &headers)),
            "ok",
        );
        // Sockets already open with the key go too, not only new ones.
        state.hub.close_key(p.account_id(), &pk).await;
        if let Some(cluster) = &state.cluster {
            cluster.close_key(p.account_id(), &pk);
        }
        state.hub.flush().await;
        Ok(Json(json!({ "key": account_key(&state, &p, &pk).await? })).into_response())
    })
    .await
}

// ----- account settings --------------------------------------------------------------------------

async fn get_account(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, false).await?;
        let name = state
            .directory
            .account_name(p.account_id())
            .await
            .map_err(ApiError::internal)?;
        let site_url = state
            .directory
            .site_url(p.account_id())
            .await
            .map_err(ApiError::internal)?;
        Ok(Json(json!({
            "name": name,
            "site_url": site_url,
            "record_sessions": state.account_records(p.account_id()).await,
            "recording_retention_days": state.recording_retention.as_secs_f64() / 86_400.0,
        }))
        .into_response())
    })
    .await
}

/// `{site_url, record_sessions}`, either or both: where personal links send the visitor
/// (`https://…`, or null), and whether the account's sessions are recorded (null: as
/// the server's `--record-sessions` says).
async fn update_account(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    run(&state, async {
        let p = admin(&state, &headers, true).await?;
        let body = parse_body(&body)?;
        if body.get("site_url").is_none() && body.get("record_sessions").is_none() {
            return Err(invalid("give `site_url`, `record_sessions` or both"));
        }
        let mut changed = serde_json::Map::new();
        if let Some(record) = body.get("record_sessions") {
            let on = match record {
                Value::Null => None,
                Value::Bool(b) => Some(*b),
                _ => return Err(invalid("`record_sessions` must be true, false or null")),
            };
            state
                .directory
                .set_record_sessions(p.account_id(), on)
                .await
                .map_err(ApiError::internal)?;
            let effective = state.account_records(p.account_id()).await;
            state.hub.set_account_recording(p.account_id(), effective);
            audit(
                &state,
                p.account_id(),
                &p.actor(),
                "account.settings_changed",
                Some("record_sessions"),
                Some(&ip(&state, peer, &headers)),
                "ok",
            );
            changed.insert("record_sessions".into(), Value::Bool(effective));
        }
        if body.get("site_url").is_none() {
            state.hub.flush().await;
            return Ok(Json(Value::Object(changed)).into_response());
        }
        let site_url = match body.get("site_url") {
            Some(Value::Null) => None,
            Some(Value::String(u)) => {
                let url = url::Url::parse(u.trim())
                    .map_err(|_| invalid("`site_url` must be an http(s) URL"))?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || u.len() > 2048
                {
                    return Err(invalid("`site_url` must be an http(s) URL"));
                }
                Some(url.to_string())
            }
            _ => return Err(invalid("`site_url` must be a URL or null")),
        };
        state
            .directory
            .set_site_url(p.account_id(), site_url.as_deref())
            .await
            .map_err(ApiError::internal)?;
        audit(
            &state,
            p.account_id(),
            &p.actor(),
            "account.settings_changed",
            Some("site_url"),
            Some(&ip(&state, peer, &headers)),
            "ok",
        );
        state.hub.flush().await;
        changed.insert("site_url".into(), json!(site_url));
        Ok(Json(Value::Object(changed)).into_response())
    })
    .await
}

// ----- the audit log ---------------------------------------------------------------------------------

/// `?since=&until=&actor=&action=&before=&limit=` (newest first; `before`: the
/// previous page's `next_before`). Admins, supervisors and the secret key.
async fn read_audit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, false).await?;
        require(&p, Act::ReadAudit)?;
        for key in q.keys() {
            if !["since", "until", "actor", "action", "before", "limit"].contains(&key.as_str()) {
                return Err(invalid(format!("unknown parameter `{key}`")));
            }
        }
        let time = |k: &str| -> Result<Option<String>, ApiError> {
            q.get(k)
                .map(|v| {
                    covisit::core::Millis::parse_iso8601(v)
                        .map(|m| m.to_iso8601())
                        .ok_or_else(|| invalid(format!("`{k}` must be an ISO-8601 time")))
                })
                .transpose()
        };
        let limit = match q.get("limit") {
            None => 100,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| invalid("`limit` must be 1 to 1000"))?,
        };
        let before_id = match q.get("before") {
            None => None,
            Some(b) => Some(
                b.parse::<i64>()
                    .map_err(|_| invalid("`before` must be a number"))?,
            ),
        };
        state.hub.flush().await;
        let entries = state
            .directory
            .audit(
                p.account_id(),
                &AuditQuery {
                    since: time("since")?,
                    until: time("until")?,
                    actor: q.get("actor").cloned(),
                    action: q.get("action").cloned(),
                    before_id,
                    limit,
                },
            )
            .await
            .map_err(ApiError::internal)?;
        let next = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.id))
            .flatten();
        Ok(Json(json!({ "entries": entries, "next_before": next })).into_response())
    })
    .await
}

/// Closes the user's agent sockets on this node and, clustered, on every other.
async fn close_user_everywhere(state: &Shared, user_id: &str) {
    state.hub.close_user(user_id).await;
    if let Some(cluster) = &state.cluster {
        cluster.close_user(user_id);
    }
}

/// Closes the sign-in session's agent sockets on this node and, clustered, on every
/// other.
async fn close_auth_session_everywhere(state: &Shared, session: &str) {
    state.hub.close_auth_session(session).await;
    if let Some(cluster) = &state.cluster {
        cluster.close_auth_session(session);
    }
}
