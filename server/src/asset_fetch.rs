//! An asset of a live session, fetched where the session lives (its visitor's owner
//! node): the hub's scope check (the agent takes part, the session is active, the tab
//! is open and sends its assets through covisit), the origin rules, the server's own
//! fetch, and the tab's page as the fallback. `rest_assets` runs it when the session is
//! on the node the request reached; otherwise the owner runs it for that node
//! (`owner_calls::carry_out`, `bus::Call::Asset`) and the answer crosses the bus as
//! [`Fetched::to_json`].

use base64::Engine as _;
use covisit::core::protocol::AssetReply;
use serde_json::{json, Value};
use url::Url;

use crate::access::hub_error;
use crate::assets::{asset_type, parse_asset_url, Asset, AssetError};
use crate::auth::{Origin, OriginPattern};
use crate::errors::ApiError;
use crate::state::Shared;

/// An asset, and whether the visitor's page sent it (then no browser keeps a copy).
pub struct Fetched {
    pub asset: Asset,
    pub from_visitor: bool,
}

impl Fetched {
    /// How the owner answers another node (the body in base64: the bus carries JSON).
    pub fn to_json(&self) -> Value {
        json!({
            "content_type": self.asset.content_type,
            "url": self.asset.url.as_str(),
            "body": base64::engine::general_purpose::STANDARD.encode(&self.asset.body),
            "from_visitor": self.from_visitor,
        })
    }

    /// The owner's answer, read back; anything else is an internal error.
    pub fn from_json(v: &Value) -> Result<Fetched, ApiError> {
        let bad = || ApiError::internal("the owner node's asset answer is malformed");
        let url = v["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(bad)?;
        let content_type = asset_type(v["content_type"].as_str(), url.path()).ok_or_else(bad)?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(v["body"].as_str().ok_or_else(bad)?)
            .map_err(|_| bad())?;
        Ok(Fetched {
            asset: Asset {
                content_type,
                body: body.into(),
                url,
            },
            from_visitor: v["from_visitor"].as_bool().unwrap_or(true),
        })
    }
}

pub fn asset_error(e: AssetError) -> ApiError {
    ApiError::new(e.status(), e.code(), e.to_string())
}

/// The asset `url_text` of session `session_id`'s tab `tab` for the signed-in user
/// `user_id`, on the node that owns the session.
pub async fn fetch_here(
    state: &Shared,
    account_id: i64,
    user_id: &str,
    session_id: &str,
    tab: &str,
    url_text: &str,
) -> Result<Fetched, ApiError> {
    let scope = state
        .hub
        .asset_scope(account_id, user_id, session_id, tab)
        .await
        .map_err(hub_error)?;
    let url = parse_asset_url(url_text).map_err(asset_error)?;
    let page_origins: Vec<Origin> = scope
        .page_urls
        .iter()
        .filter_map(|u| Url::parse(u).ok())
        .filter_map(|u| Origin::parse(&u.origin().ascii_serialization()))
        .collect();
    let key_origins: Vec<OriginPattern> = state
        .directory
        .keys(account_id)
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
            match state.assets.visitor_sent(session_id, &url) {
                Some(a) => a,
                None => {
                    let a = from_page(state, account_id, user_id, session_id, tab, url).await?;
                    state.assets.keep_visitor_sent(session_id, &a);
                    a
                }
            }
        }
        Err(e) => return Err(asset_error(e)),
    };
    Ok(Fetched {
        asset: fetched,
        from_visitor,
    })
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
