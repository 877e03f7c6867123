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
//!   which sends it only if it sent that URL in the session's mirror records itself;
//! - a style sheet's own references are rewritten to this endpoint too.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use covisit::core::ids::valid_id;
use covisit::core::protocol::AssetReply;
use serde::Deserialize;
use url::Url;

use crate::access::{principal, run};
use crate::assets::{asset_type, parse_asset_url, rewrite_css, Asset, AssetError};
use crate::auth::{Origin, OriginPattern, Principal};
use crate::errors::{ApiError, ApiResult};
use crate::owner_calls::hub_error;
use crate::state::Shared;

pub fn router() -> Router<Shared> {
    Router::new().route("/v1/sessions/{id}/assets", get(asset))
}

#[derive(Deserialize)]
struct AssetQuery {
    tab: String,
    url: String,
}

fn asset_error(e: AssetError) -> ApiError {
    ApiError::new(e.status(), e.code(), e.to_string())
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
        let scope = state
            .hub
            .asset_scope(*account_id, user_id, &session_id, &q.tab)
            .await
            .map_err(hub_error)?;
        let url = parse_asset_url(&q.url).map_err(asset_error)?;
        let page_origins: Vec<Origin> = scope
            .page_urls
            .iter()
            .filter_map(|u| Url::parse(u).ok())
            .filter_map(|u| Origin::parse(&u.origin().ascii_serialization()))
            .collect();
        let key_origins: Vec<OriginPattern> = state
            .directory
            .keys(*account_id)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|k| k.revoked_at.is_none())
            .flat_map(|k| k.origins.unwrap_or_default())
            .filter_map(|o| OriginPattern::parse(&o).ok())
            .collect();
        let proxy = state.assets.clone();
        let allowed = move |u: &Url| {
            let Some(o) = Origin::parse(&u.origin().ascii_serialization()) else {
                return false;
            };
            page_origins.contains(&o)
                || key_origins.iter().any(|p| p.matches(&o))
                || proxy.operator_allows(u)
        };
        if !allowed(&url) {
            return Err(asset_error(AssetError::Origin(format!(
                "{} is neither the page's origin, one of the account's nor one the operator allows",
                url.origin().ascii_serialization()
            ))));
        }
        let same_origin_as_tab = scope
            .page_url
            .as_deref()
            .and_then(|p| Url::parse(p).ok())
            .is_some_and(|p| p.origin() == url.origin());
        let mut from_visitor = false;
        let fetched = match state.assets.fetch(&url, &allowed).await {
            Ok(a) => a,
            // The server cannot have it (private, behind the visitor's login, on the
            // visitor's machine): the page may, for its own origin.
            Err(e) if same_origin_as_tab => {
                tracing::debug!(error = %e, "asset not fetched by the server; asking the page");
                from_visitor = true;
                match state.assets.visitor_sent(&session_id, &url) {
                    Some(a) => a,
                    None => {
                        let a = from_page(&state, *account_id, user_id, &session_id, &q.tab, url)
                            .await?;
                        state.assets.keep_visitor_sent(&session_id, &a);
                        a
                    }
                }
            }
            Err(e) => return Err(asset_error(e)),
        };
        Ok(respond(&session_id, &q.tab, fetched, from_visitor))
    })
    .await
}

/// Stops waiting for an asset request however the handler ends (answered, timed out,
/// or the agent's browser went away).
struct Forget(crate::hub_task::HubHandle, u32);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.forget_asset(self.1);
    }
}

/// The asset, from the visitor's page (its `a` records), within the proxy's time limit.
async fn from_page(
    state: &Shared,
    account_id: i64,
    agent_id: &str,
    session_id: &str,
    tab: &str,
    url: Url,
) -> Result<Asset, ApiError> {
    let (id, mut rx) = state
        .hub
        .ask_asset(account_id, agent_id, session_id, tab, url.as_str())
        .await
        .map_err(hub_error)?;
    let _forget = Forget(state.hub.clone(), id);
    let settings = state.assets.settings();
    // Base64: four characters for three bytes.
    let max_text = settings.max_bytes / 3 * 4 + 4;
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let unavailable = |why: &str| asset_error(AssetError::Unavailable(why.to_string()));
    let mut content_type: Option<&'static str> = None;
    let mut text = String::new();
    loop {
        let reply = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| unavailable("neither the server nor the visitor's page sent it in time"))?
            .ok_or_else(|| unavailable("the request was dropped"))?;
        match reply {
            AssetReply::Refused { reason, .. } => {
                return Err(match reason.as_str() {
                    "type" => asset_error(AssetError::Type(
                        "the page's resource is not a style sheet, a font or an image".into(),
                    )),
                    "too_large" => asset_error(AssetError::TooLarge),
                    r => unavailable(&format!("the visitor's page did not send it ({r})")),
                });
            }
            AssetReply::Piece {
                content_type: t,
                data,
                last,
                ..
            } => {
                if content_type.is_none() {
                    content_type = Some(asset_type(Some(&t), url.path()).ok_or_else(|| {
                        asset_error(AssetError::Type(format!(
                            "`{t}` is not a style sheet, a font or an image"
                        )))
                    })?);
                }
                if text.len() + data.len() > max_text {
                    return Err(asset_error(AssetError::TooLarge));
                }
                text.push_str(&data);
                if last {
                    break;
                }
            }
        }
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|_| unavailable("the page's pieces are not base64"))?;
    if body.len() > settings.max_bytes {
        return Err(asset_error(AssetError::TooLarge));
    }
    Ok(Asset {
        content_type: content_type.unwrap_or("application/octet-stream"),
        body: body.into(),
        url,
    })
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
