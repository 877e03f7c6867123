//! The asset proxy (issue 15 item 5; docs/MIRROR.md, "Assets through covisit"): the
//! server fetches a session's public style sheets, fonts and images for the agent's
//! mirror, so that the agent's browser contacts no host but covisit's.
//!
//! The rules, each enforced here whatever the caller checked:
//!
//! - only `http(s)` URLs without credentials, of an origin the caller allows (the REST
//!   handler: the session's pages, the account's keys' origins, `--asset-origins`),
//!   checked again at every redirect (followed by our own loop, at most 5);
//! - never to a loopback, private, link-local or reserved address unless the operator
//!   allowed private ones (`--asset-proxy-allow-private`): an IP literal is checked as
//!   it is, a name when it is resolved, and the connection is made only to addresses
//!   the resolver hook allowed (`net::GuardedResolver`), so DNS rebinding cannot slip
//!   a private address in between the check and the connection; no HTTP proxy from the
//!   environment is used (it would connect on our behalf);
//! - only CSS, fonts and images ([`asset_type`]), at most `max_bytes`, within `timeout`;
//! - no cookies, no credentials, no referrer: what the server fetches is public.
//!
//! What was fetched is cached (bounded, weighed in bytes): public assets by URL for
//! [`PUBLIC_TTL`]; assets the visitor's page sent by session and URL (they may be
//! private to that visitor: never served to another session). A URL the server could
//! not fetch is remembered for [`FAILED_TTL`], so the next request goes to the
//! visitor's page at once.

mod css;
mod net;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use covisit::core::codes::ErrorCode;
use quick_cache::sync::Cache;
use url::Url;

pub use css::rewrite_css;
pub use net::address_allowed;

/// How long a fetched public asset is served from the cache.
pub const PUBLIC_TTL: Duration = Duration::from_secs(600);
/// How long a URL the server could not fetch goes straight to the visitor's page.
pub const FAILED_TTL: Duration = Duration::from_secs(60);
/// Redirects followed, each checked like the first URL.
const MAX_REDIRECTS: usize = 5;
/// The longest URL the proxy takes.
pub const MAX_URL_BYTES: usize = 4096;

/// The operator's settings (`--asset-*` flags).
#[derive(Debug, Clone)]
pub struct AssetSettings {
    /// Loopback, private and link-local addresses may be fetched (a site on the
    /// operator's own network; tests).
    pub allow_private: bool,
    /// Origins every account's sessions may fetch from besides their pages' and keys'
    /// (CDNs): `https://cdn.example` or `https://*.cdn.example`.
    pub origins: Vec<crate::auth::OriginPattern>,
    /// The largest asset, in bytes.
    pub max_bytes: usize,
    /// The whole fetch (redirects included), and the wait for the visitor's page.
    pub timeout: Duration,
    /// The cache's size, in bytes.
    pub cache_bytes: u64,
}

impl Default for AssetSettings {
    fn default() -> Self {
        AssetSettings {
            allow_private: false,
            origins: Vec::new(),
            max_bytes: 5 * 1024 * 1024,
            timeout: Duration::from_secs(15),
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A fetched asset: its type (one of [`asset_type`]'s) and body, and the URL it came
/// from after redirects (a style sheet's own references are relative to it).
#[derive(Debug, Clone)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: Bytes,
    pub url: Url,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssetError {
    #[error("{0}")]
    Origin(String),
    #[error("{0}")]
    Address(String),
    #[error("{0}")]
    Type(String),
    #[error("the asset is larger than the proxy takes")]
    TooLarge,
    #[error("{0}")]
    Unavailable(String),
}

impl AssetError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AssetError::Origin(_) => ErrorCode::ASSET_ORIGIN_NOT_ALLOWED,
            AssetError::Address(_) => ErrorCode::ASSET_ADDRESS_REFUSED,
            AssetError::Type(_) => ErrorCode::ASSET_TYPE_NOT_ALLOWED,
            AssetError::TooLarge => ErrorCode::ASSET_TOO_LARGE,
            AssetError::Unavailable(_) => ErrorCode::ASSET_UNAVAILABLE,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AssetError::Origin(_) | AssetError::Address(_) => StatusCode::FORBIDDEN,
            AssetError::Type(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AssetError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AssetError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The canonical type of an asset the proxy serves, from its `Content-Type` (and, for
/// a missing or generic one, the URL path's extension); `None` for anything that is not
/// a style sheet, a font or an image.
pub fn asset_type(content_type: Option<&str>, path: &str) -> Option<&'static str> {
    let mime = content_type
        .and_then(|t| t.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match mime.as_str() {
        "text/css" => "text/css",
        "font/woff2" | "application/font-woff2" => "font/woff2",
        "font/woff" | "application/font-woff" | "application/x-font-woff" => "font/woff",
        "font/ttf" | "application/x-font-ttf" | "application/x-font-truetype" => "font/ttf",
        "font/otf" | "application/x-font-otf" | "application/x-font-opentype" => "font/otf",
        "font/sfnt" | "application/font-sfnt" => "font/sfnt",
        "font/collection" => "font/collection",
        "application/vnd.ms-fontobject" => "application/vnd.ms-fontobject",
        "image/png" => "image/png",
        "image/apng" => "image/apng",
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "image/jpeg",
        "image/gif" => "image/gif",
        "image/webp" => "image/webp",
        "image/avif" => "image/avif",
        "image/svg+xml" => "image/svg+xml",
        "image/bmp" => "image/bmp",
        "image/x-icon" | "image/vnd.microsoft.icon" => "image/x-icon",
        "" | "application/octet-stream" | "binary/octet-stream" => {
            let ext = path.rsplit('/').next().unwrap_or("");
            let ext = ext.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
            match ext.as_str() {
                "css" => "text/css",
                "woff2" => "font/woff2",
                "woff" => "font/woff",
                "ttf" => "font/ttf",
                "otf" => "font/otf",
                "eot" => "application/vnd.ms-fontobject",
                "png" => "image/png",
                "jpg" | "jpeg" => "image/jpeg",
                "gif" => "image/gif",
                "webp" => "image/webp",
                "avif" => "image/avif",
                "ico" => "image/x-icon",
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// A URL the proxy may be asked for at all: `http(s)`, no credentials, not too long.
pub fn parse_asset_url(text: &str) -> Result<Url, AssetError> {
    if text.len() > MAX_URL_BYTES {
        return Err(AssetError::Origin("the URL is too long".into()));
    }
    let url = Url::parse(text).map_err(|e| AssetError::Origin(format!("not a URL: {e}")))?;
    check_shape(&url)?;
    Ok(url)
}

fn check_shape(url: &Url) -> Result<(), AssetError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AssetError::Origin("only http(s) URLs are fetched".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AssetError::Origin(
            "a URL with credentials is not fetched".into(),
        ));
    }
    if url.host().is_none() {
        return Err(AssetError::Origin("the URL has no host".into()));
    }
    Ok(())
}

#[derive(Clone)]
enum Cached {
    Fetched(Asset, Instant),
    Failed(Instant),
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<String, Cached> for Weigh {
    fn weight(&self, key: &String, value: &Cached) -> u64 {
        let body = match value {
            Cached::Fetched(a, _) => a.body.len() + a.url.as_str().len(),
            Cached::Failed(_) => 0,
        };
        (key.len() + body + 64) as u64
    }
}

pub struct AssetProxy {
    settings: AssetSettings,
    client: reqwest::Client,
    cache: Cache<String, Cached, Weigh>,
}

impl AssetProxy {
    pub fn new(settings: AssetSettings) -> Result<AssetProxy, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(net::GuardedResolver {
                allow_private: settings.allow_private,
            }))
            .connect_timeout(Duration::from_secs(5).min(settings.timeout))
            .timeout(settings.timeout)
            .user_agent(concat!("covisit-asset-proxy/", env!("CARGO_PKG_VERSION")))
            .referer(false)
            .build()
            .map_err(|e| format!("cannot build the asset proxy's HTTP client: {e}"))?;
        let cache = Cache::with_weighter(
            (settings.cache_bytes / 16_384).max(16) as usize,
            settings.cache_bytes.max(1),
            Weigh,
        );
        Ok(AssetProxy {
            settings,
            client,
            cache,
        })
    }

    pub fn settings(&self) -> &AssetSettings {
        &self.settings
    }

    /// Whether `url`'s origin is one the operator listed for every account.
    pub fn operator_allows(&self, url: &Url) -> bool {
        crate::auth::Origin::parse(&url.origin().ascii_serialization())
            .is_some_and(|o| self.settings.origins.iter().any(|p| p.matches(&o)))
    }

    /// The public asset at `url` (from the cache, or fetched): `allowed` decides, for
    /// the URL and every redirect, whether its origin may be fetched.
    pub async fn fetch(
        &self,
        url: &Url,
        allowed: &(dyn Fn(&Url) -> bool + Sync),
    ) -> Result<Asset, AssetError> {
        let key = format!("public {url}");
        match self.cache.get(&key) {
            Some(Cached::Fetched(a, at)) if at.elapsed() < PUBLIC_TTL => return Ok(a),
            Some(Cached::Failed(at)) if at.elapsed() < FAILED_TTL => {
                return Err(AssetError::Unavailable(
                    "the server could not fetch it a moment ago".into(),
                ))
            }
            _ => {}
        }
        let result = tokio::time::timeout(self.settings.timeout, self.fetch_now(url, allowed))
            .await
            .unwrap_or_else(|_| Err(AssetError::Unavailable("the fetch timed out".into())));
        match &result {
            Ok(a) => self
                .cache
                .insert(key, Cached::Fetched(a.clone(), Instant::now())),
            // Refusals by rule are decided again each time (they cost nothing).
            Err(AssetError::Origin(_)) => {}
            Err(_) => self.cache.insert(key, Cached::Failed(Instant::now())),
        }
        result
    }

    async fn fetch_now(
        &self,
        url: &Url,
        allowed: &(dyn Fn(&Url) -> bool + Sync),
    ) -> Result<Asset, AssetError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            check_shape(&url)?;
            if !allowed(&url) {
                return Err(AssetError::Origin(format!(
                    "{} is not an origin this account's assets come from",
                    url.origin().ascii_serialization()
                )));
            }
            self.check_host(&url).await?;
            let response = self
                .client
                .get(url.clone())
                .header(reqwest::header::ACCEPT, "text/css,image/*,font/*,*/*;q=0.1")
                .send()
                .await
                .map_err(|e| connect_error(&e))?;
            let status = response.status();
            if status.is_redirection() {
                let next = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| {
                        AssetError::Unavailable("a redirect without a usable Location".into())
                    })?;
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(AssetError::Unavailable(format!(
                    "the host answered {status}"
                )));
            }
            let header = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|t| t.to_str().ok())
                .map(str::to_string);
            let content_type = asset_type(header.as_deref(), url.path()).ok_or_else(|| {
                AssetError::Type(format!(
                    "`{}` is not a style sheet, a font or an image",
                    header.as_deref().unwrap_or("(no type)")
                ))
            })?;
            let max = self.settings.max_bytes;
            if response.content_length().is_some_and(|n| n > max as u64) {
                return Err(AssetError::TooLarge);
            }
            let mut body = Vec::new();
            let mut response = response;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| AssetError::Unavailable(format!("the body broke off: {e}")))?
            {
                if body.len() + chunk.len() > max {
                    return Err(AssetError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Asset {
                content_type,
                body: Bytes::from(body),
                url,
            });
        }
        Err(AssetError::Unavailable("too many redirects".into()))
    }

    /// An IP literal must be an allowed address; a name must resolve to one (the
    /// resolver hook checks again when connecting).
    async fn check_host(&self, url: &Url) -> Result<(), AssetError> {
        let allow = self.settings.allow_private;
        let refused = || {
            AssetError::Address(format!(
                "{} is a loopback, private, link-local or reserved address",
                url.host_str().unwrap_or_default()
            ))
        };
        match url.host() {
            Some(url::Host::Ipv4(ip)) => address_allowed(ip.into(), allow)
                .then_some(())
                .ok_or_else(refused),
            Some(url::Host::Ipv6(ip)) => address_allowed(ip.into(), allow)
                .then_some(())
                .ok_or_else(refused),
            Some(url::Host::Domain(name)) => match net::resolve_allowed(name, allow).await {
                Ok(_) => Ok(()),
                Err(net::ResolveError::Refused) => Err(refused()),
                Err(e) => Err(AssetError::Unavailable(e.to_string())),
            },
            None => Err(AssetError::Origin("the URL has no host".into())),
        }
    }

    /// What session `session_id`'s visitor's page sent for `url`, while cached.
    pub fn visitor_sent(&self, session_id: &str, url: &Url) -> Option<Asset> {
        match self.cache.get(&format!("visitor {session_id} {url}")) {
            Some(Cached::Fetched(a, _)) => Some(a),
            _ => None,
        }
    }

    /// Keeps what the visitor's page of session `session_id` sent (for that session only).
    pub fn keep_visitor_sent(&self, session_id: &str, asset: &Asset) {
        self.cache.insert(
            format!("visitor {session_id} {}", asset.url),
            Cached::Fetched(asset.clone(), Instant::now()),
        );
    }
}

/// A connection failure, told apart when our resolver hook refused the address.
fn connect_error(e: &reqwest::Error) -> AssetError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(net::ResolveError::Refused) = s.downcast_ref::<net::ResolveError>() {
            return AssetError::Address(
                "the host resolves only to addresses the asset proxy may not reach".into(),
            );
        }
        source = s.source();
    }
    AssetError::Unavailable(if e.is_timeout() {
        "the fetch timed out".into()
    } else {
        "the host could not be reached".into()
    })
}

#[cfg(test)]
mod tests;
