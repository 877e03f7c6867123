//! Personal links (the seed's `call_name`, source `personal link`): `GET /call/{username}`
//! is a small page where a visitor an agent sent the link to confirms; the confirmation
//! (`POST`, so that link previews and scanners never start anything) redirects to the
//! account's site with a one-time token in the fragment (`#covisit_call=…`, never sent
//! to any server's logs). The SDK there redeems it: that agent asks the visitor for a
//! session, and the visitor authorizes as usual.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::auth;
use crate::directory::{TokenKind, UserRecord};
use crate::state::Shared;

/// The page's policy: its own inline style only; no script at all.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{t}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:10vh auto;padding:0 1em;color:#14181f}}\
         button{{font:inherit;padding:.5em 1.2em;border-radius:6px;border:1px solid #0b5cff;background:#0b5cff;color:#fff;cursor:pointer}}\
         button:focus-visible{{outline:3px solid #ffb020;outline-offset:2px}}.muted{{color:#475467}}</style></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title),
    );
    let mut r = (status, Html(html)).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The agent behind a personal link, if it can take calls.
async fn agent(state: &Shared, username: &str) -> Option<UserRecord> {
    if !auth::valid_username(&username.to_lowercase()) {
        return None;
    }
    state
        .directory
        .user_by_username(username)
        .await
        .ok()
        .flatten()
        .filter(|u| !u.disabled && u.password_hash.is_some())
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "<p>This link does not lead to anyone. Check it with the person who sent it.</p>",
    )
}

async fn page_for(state: &Shared, username: &str) -> Response {
    let Some(user) = agent(state, username).await else {
        return not_found();
    };
    let account = state
        .directory
        .account_name(user.account_id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let who = escape(&user.name);
    page(
        StatusCode::OK,
        &format!("Get help from {}", user.name),
        &format!(
            "<p>{who}{from} sent you this link to help you on the website.</p>\
             <p class=\"muted\">If you continue, you go to the website and {who} asks to see the \
             page you are on. Nothing is shared until you allow it there, and you can stop at \
             any time.</p>\
             <form method=\"post\"><button type=\"submit\">Continue to the website</button></form>",
            from = if account.is_empty() {
                String::new()
            } else {
                format!(" from {}", escape(&account))
            },
        ),
    )
}

pub async fn show(State(state): State<Shared>, Path(username): Path<String>) -> Response {
    page_for(&state, &username).await
}

/// The visitor confirmed: a one-time token (10 minutes), then off to the account's site.
pub async fn confirm(State(state): State<Shared>, Path(username): Path<String>) -> Response {
    let Some(user) = agent(&state, &username).await else {
        return not_found();
    };
    let site = state
        .directory
        .site_url(user.account_id)
        .await
        .ok()
        .flatten();
    let Some(site) = site.and_then(|s| url::Url::parse(&s).ok()) else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not set up yet",
            "<p>Personal links of this account do not lead anywhere yet: an admin sets the \
             website's address in the console (Settings).</p>",
        );
    };
    let token = auth::random_secret(24);
    let expires = crate::clock::now()
        .plus_seconds(auth::CALL_TOKEN_SECONDS)
        .to_iso8601();
    if state
        .directory
        .create_token(
            &auth::hash_secret(&token),
            &user.id,
            TokenKind::Call,
            &expires,
        )
        .await
        .is_err()
    {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "<p>Try the link again in a moment.</p>",
        );
    }
    let mut target = site;
    let fragment = match target.fragment() {
        Some(f) if !f.is_empty() => format!("{f}&covisit_call={token}"),
        _ => format!("covisit_call={token}"),
    };
    target.set_fragment(Some(&fragment));
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(target.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}
