//! `GET /api/v1/sessions/{id}/assets?tab=…&url=…`: a style sheet, font or image of a
//! live session's page, for the agent's mirror (docs/MIRROR.md, "Assets through
//! covisit"). The console rewrites every such URL of the mirror to this endpoint, so
//! the agent's browser contacts no host but covisit's.
//!
//! Who and what:
//!
//! - only a signed-in user (the console's cookie) who takes part in that session, while
//!   it is active, for an open tab of its visitor whose page set `assetsProxyConfigured`
//!   (the hub decides: [`crate::hub::Hub::asset_scope`]);
//! - the URL is bound to the session by its origin: a page origin of the session's
//!   visitor's open tabs, an origin of one of the account's keys, or one the operator
//!   listed (`--asset-origins`); anything else is `asset_origin_not_allowed`;
//! - the server fetches it itself first (`crate::assets`: public, cached, private
//!   addresses refused); when it cannot and the URL is of the tab's own page origin
//!   (behind the visitor's login, on the visitor's machine), it asks the tab's page,
//!   which sends it only if it sent that URL in the session's mirror records itself
//!   (`crate::asset_fetch`, on the node that owns the session: another node's request
//!   goes there over the bus);
//! - a style sheet's own references are rewritten to this endpoint too.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use covisit::core::ids::valid_id;
use serde::Deserialize;
use url::Url;

use crate::access::{principal, run};
use crate::asset_fetch::{fetch_here, Fetched};
use crate::assets::{rewrite_css, Asset};
use crate::auth::Principal;
use crate::bus::Call;
use crate::errors::{ApiError, ApiResult};
use crate::owner_calls::{on_owner, owned_here};
use crate::state::Shared;
use crate::store::slot_of;

pub fn router() -> Router<Shared> {
    Router::new().route("/v1/sessions/{id}/assets", get(asset))
}

#[derive(Deserialize)]
struct AssetQuery {
    tab: String,
    url: String,
}

/// The path the mirror loads `url` (an asset of session `session_id`'s tab `tab`) from.
pub fn asset_path(session_id: &str, tab: &str, url: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "/api/v1/sessions/{}/assets?tab={}&url={}",
        enc(session_id),
        enc(tab),
        enc(url)
    )
}

async fn asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
    Query(q): Query<AssetQuery>,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, false).await?;
        let Principal::User {
            account_id,
            user_id,
            ..
        } = &p
        else {
            return Err(ApiError::forbidden(
                "a session's assets are for the signed-in agents in it",
            ));
        };
        if !valid_id(&session_id) || !valid_id(&q.tab) {
            return Err(ApiError::not_found("session"));
        }
        let slot = slot_of(&session_id);
        let fetched = if owned_here(&state, slot) {
            fetch_here(&state, *account_id, user_id, &session_id, &q.tab, &q.url).await?
        } else {
            // The session lives on another node: its owner fetches (it has the tab's
            // socket for the page's fallback, and the session's cache).
            let call = Call::Asset {
                account_id: *account_id,
                user_id: user_id.clone(),
                session_id: session_id.clone(),
                tab: q.tab.clone(),
                url: q.url.clone(),
            };
            Fetched::from_json(&on_owner(&state, slot, call).await?)?
        };
        Ok(respond(
            &session_id,
            &q.tab,
            fetched.asset,
            fetched.from_visitor,
        ))
    })
    .await
}

/// The answer: the body with its type, a style sheet's references rewritten to this
/// endpoint; headers that keep it an inert resource of this origin (a document opened
/// from it, e.g. an SVG, runs nothing and loads nothing) and, for what the visitor's
/// page sent (`from_visitor`), out of the agent's browser cache.
fn respond(session_id: &str, tab: &str, asset: Asset, from_visitor: bool) -> Response {
    let body = if asset.content_type == "text/css" {
        let text = String::from_utf8_lossy(&asset.body);
        let base = asset.url.clone();
        axum::body::Body::from(rewrite_css(&text, &mut |u| {
            css_reference(session_id, tab, &base, u)
        }))
    } else {
        axum::body::Body::from(asset.body)
    };
    let content_type = if asset.content_type == "text/css" {
        "text/css; charset=utf-8"
    } else {
        asset.content_type
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_TYPE, content_type);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
    );
    // What the visitor's page sent may be private to the visitor: the agent's browser
    // keeps no copy of it after the session (the server keeps it for the session only).
    set(
        h,
        header::CACHE_CONTROL,
        if from_visitor {
            "private, no-store"
        } else {
            "private, max-age=600"
        },
    );
    set(h, header::REFERRER_POLICY, "no-referrer");
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// What a proxied style sheet's reference `raw` becomes: this endpoint for an
/// `http(s)` URL (resolved against the sheet's own URL), itself for a fragment or a
/// `data:` URL, and a URL that loads nothing for anything else.
fn css_reference(session_id: &str, tab: &str, base: &Url, raw: &str) -> String {
    let raw = raw.trim();
    if raw.starts_with('#') {
        return raw.to_string();
    }
    if raw.is_empty() {
        return "data:,".into();
    }
    match base.join(raw) {
        Ok(u) if u.scheme() == "data" => u.to_string(),
        Ok(u) if matches!(u.scheme(), "http" | "https") => asset_path(session_id, tab, u.as_str()),
        _ => "data:,".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_style_sheets_references_point_at_the_proxy() {
        let base = Url::parse("https://shop.example/css/site.css").unwrap();
        assert_eq!(
            css_reference("s1", "t1", &base, "../img/a b.png"),
            "/api/v1/sessions/s1/assets?tab=t1&url=https%3A%2F%2Fshop.example%2Fimg%2Fa%2520b.png"
        );
        assert_eq!(css_reference("s1", "t1", &base, "#clip"), "#clip");
        assert_eq!(
            css_reference("s1", "t1", &base, "data:image/png;base64,AA=="),
            "data:image/png;base64,AA=="
        );
        assert_eq!(
            css_reference("s1", "t1", &base, "javascript:alert(1)"),
            "data:,"
        );
        assert_eq!(css_reference("s1", "t1", &base, ""), "data:,");
    }
}
