//! The router: static files (SDK, demo site, agent console), health, metrics, the two
//! WebSockets and the REST API; and start-up (dev keys, recovery, listening).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::cli::Cli;
use crate::directory::Directory;
use crate::hub_task::HubHandle;
use crate::store::Store;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub messages_relayed: AtomicU64,
    pub errors: AtomicU64,
}

impl Metrics {
    pub fn relayed(&self) {
        self.messages_relayed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything a handler needs.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Accounts, keys, users, sign-ins, one-time links, the audit log.
    pub directory: Arc<dyn Directory>,
    /// This server's public base URL (links it hands out; https decides Secure cookies).
    pub public_url: String,
    pub sign_in: crate::auth::SignInLimiter,
    pub hub: HubHandle,
    pub metrics: Arc<Metrics>,
    pub trust_proxy: bool,
    pub heartbeat_timeout: std::time::Duration,
    pub rate: crate::rest::RateLimiter,
    pub journeys: crate::journey::Journeys,
}

pub type Shared = Arc<AppState>;

/// A JSON error `{"error": {"code", "message"}}` with a 4xx/5xx status.
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(state): State<Shared>) -> Response {
    let (online, live) = state.hub.counts().await;
    let body = format!(
        "# HELP covisit_online_visitors Visitors with at least one open connection.\n\
         # TYPE covisit_online_visitors gauge\ncovisit_online_visitors {online}\n\
         # HELP covisit_live_sessions Sessions authorizing or active.\n\
         # TYPE covisit_live_sessions gauge\ncovisit_live_sessions {live}\n\
         # HELP covisit_messages_relayed_total Frames sent to visitors and agents.\n\
         # TYPE covisit_messages_relayed_total counter\ncovisit_messages_relayed_total {}\n\
         # HELP covisit_errors_total Error frames and error responses sent.\n\
         # TYPE covisit_errors_total counter\ncovisit_errors_total {}\n",
        state.metrics.messages_relayed.load(Ordering::Relaxed),
        state.metrics.errors.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// axum answers some requests before any handler runs: a body over its 2 MB limit
/// (413), a path segment that is not UTF-8 (400), a method the route does not take
/// (405), in plain text or with no body. Under `/api` those become typed errors too.
async fn typed_rejection(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() || json {
        return response;
    }
    let (code, fallback) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this route does not take this method")
        }
        _ => ("invalid_argument", "the request is malformed"),
    };
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        fallback.to_string()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let typed = ApiError::new(status, code, message).into_response();
    let (typed_parts, typed_body) = typed.into_parts();
    parts.headers.extend(typed_parts.headers);
    Response::from_parts(parts, typed_body)
}

async fn api_not_found(State(state): State<Shared>) -> ApiError {
    state.metrics.error();
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// The console's Content-Security-Policy: scripts, styles, images, fonts, media,
/// frames and connections from this origin only (plus data:/blob: images and fonts,
/// and inline styles, which the mirror of a visitor's page needs).
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data: blob:; \
    media-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; worker-src 'none'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

pub fn router(state: Shared, cli: &Cli) -> Router {
    let agent_dir = cli.www.join("agent");
    let agent = ServeDir::new(&agent_dir).fallback(ServeFile::new(agent_dir.join("index.html")));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // Requests browsers make on their own, answered so that they log no 404 in the
        // visitor's console: the icon of pages without one, and what Chrome asks for
        // whenever DevTools is open (no workspace to offer: an empty answer).
        .route(
            "/favicon.ico",
            get(|| async { axum::response::Redirect::permanent("/favicon.svg") }),
        )
        .route(
            "/.well-known/appspecific/com.chrome.devtools.json",
            get(|| async { Json(json!({})) }),
        )
        .route("/ws/visitor", get(crate::ws::visitor_ws))
        .route("/ws/agent", get(crate::ws::agent_ws))
        .route(
            "/call/{username}",
            get(crate::call::show).post(crate::call::confirm),
        )
        .nest(
            "/api",
            crate::rest::router()
                .merge(crate::rest_journey::router())
                .merge(crate::rest_admin::router())
                .fallback(api_not_found)
                .layer(axum::middleware::map_response(typed_rejection)),
        )
        // Pages on other origins import the SDK as an ES module and fetch its wasm:
        // both need CORS. The SDK is public, so any origin may read it. scripts/build
        // writes .br and .gz next to each file; browsers get those (a third of the bytes).
        // File names carry no hash, so caches keep them five minutes, then revalidate.
        .nest_service(
            "/sdk",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                ))
                .service(
                    ServeDir::new(&cli.sdk_dir)
                        .precompressed_br()
                        .precompressed_gzip(),
                ),
        )
        // The console (and the mirror document inside it) talks to this server only:
        // the policy is the browser's wall behind the console's own URL rewriting, so a
        // visitor's page can never make an agent's browser contact another host.
        .nest_service(
            "/agent",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONSOLE_CSP),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_DNS_PREFETCH_CONTROL,
                    HeaderValue::from_static("off"),
                ))
                .service(agent),
        )
        .fallback_service(ServeDir::new(&cli.www))
        .with_state(state)
}

pub async fn serve(
    cli: Cli,
    store: Arc<dyn Store>,
    directory: Arc<dyn Directory>,
) -> Result<(), String> {
    // Before anything listens: a GeoIP file that was asked for must be readable.
    let geo = if cli.geoip.is_empty() {
        None
    } else {
        let g = crate::geoip::GeoIp::open(&cli.geoip)?;
        for (file, database) in g.loaded() {
            tracing::info!(file = %file.display(), database, "GeoIP database loaded");
        }
        Some(g)
    };
    let journey_options = covisit::core::journey::JourneyOptions {
        idle_after_seconds: cli.journey_idle_seconds.clamp(1, 86_400),
        away_after_seconds: cli.journey_away_seconds.clamp(1, 86_400),
        session_timeout_seconds: cli.journey_timeout_seconds.clamp(1, 86_400),
        site_search_params: cli
            .site_search_params
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
    };
    let now = crate::hub_task::now();
    store
        .recover_after_restart(&now.to_iso8601())
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    // Frames are small and latency matters: no Nagle delay (with the peer's delayed
    // ACK it holds a frame back ~40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let public_url = cli.public_url(bound);
    if cli.dev {
        crate::setup::dev_account(directory.as_ref(), &public_url).await?;
    }
    crate::setup::warn_unbound_keys(directory.as_ref()).await?;
    let metrics = Arc::new(Metrics::default());
    let grace = cli.grace_period_seconds.clamp(1, 86_400);
    let hub = HubHandle::start(
        store.clone(),
        crate::hub::HubConfig {
            public_url: public_url.clone(),
            grace_period_seconds: grace,
        },
        crate::hub::Ids::from_entropy(),
        metrics.clone(),
    );
    let journeys = crate::journey::Journeys::new(store.clone(), journey_options, geo);
    let state = Arc::new(AppState {
        store,
        directory,
        public_url: public_url.clone(),
        sign_in: crate::auth::SignInLimiter::default(),
        hub: hub.clone(),
        metrics,
        trust_proxy: cli.trust_proxy,
        // Clamped so that deadline arithmetic (`Instant + 3 × timeout`) cannot overflow.
        heartbeat_timeout: std::time::Duration::from_secs(
            cli.heartbeat_timeout_seconds.clamp(1, 86_400),
        ),
        rate: crate::rest::RateLimiter::new(cli.lookup_rate_per_minute),
        journeys,
    });
    let app = router(state, &cli);
    tracing::info!("covisit-server listening on {bound}: demo site {public_url}/ , agent console {public_url}/agent/");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| e.to_string())?;
    // Whatever the sockets changed may still be queued for the store: write it first.
    hub.flush().await;
    tracing::info!("covisit-server stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM (what service managers and containers send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
