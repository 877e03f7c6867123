//! The router: static files (SDK, demo site, agent console), health, metrics, the two
//! WebSockets and the REST API, with the console's security headers and typed errors
//! for what axum refuses before a handler runs.

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use covisit::core::codes::ErrorCode;
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::cli::Cli;
use crate::errors::ApiError;
use crate::state::Shared;

/// `{"status": "ok"}`; a node of several says `draining` or `fenced` (with 503, so a
/// load balancer sends it nothing new).
async fn healthz(State(state): State<Shared>) -> Response {
    let status = state.cluster.as_ref().map_or("ok", |c| c.state().as_str());
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "status": status }))).into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    let (online, live) = state.hub.counts().await;
    // A node's hub holds the visitors it owns: its online count is theirs.
    let node = state.cluster.as_ref().map(|c| c.figures(online as u64));
    let body = state.metrics.render(online, live, node);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
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
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::METHOD_NOT_ALLOWED,
            "this route does not take this method",
        ),
        StatusCode::NOT_FOUND => (ErrorCode::NOT_FOUND, "no such route"),
        _ => (ErrorCode::INVALID_ARGUMENT, "the request is malformed"),
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

/// The same for the server's other machine-facing routes (`/api/` itself, the sockets'
/// upgrade paths, `/healthz`, `/metrics`): a client error there is typed JSON too, not
/// plain text or nothing. Pages (the demo site, the console, the SDK) keep theirs.
async fn typed_errors_off_the_pages(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let machine = path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/ws/")
        || path == "/healthz"
        || path == "/metrics";
    let response = next.run(request).await;
    if machine {
        typed_rejection(response).await
    } else {
        response
    }
}

/// A fenced node (its membership was lost: another node may own what it would write)
/// answers every state-changing request with 503 `unavailable`, whatever the route:
/// REST, admin and sign-in writes alike, not only those about a visitor (which go to
/// its owner), because directory writes are not fenced in the store. Reads and
/// WebSocket upgrades (which the sockets refuse themselves) pass.
async fn refuse_writes_when_fenced(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let fenced = state
        .cluster
        .as_ref()
        .is_some_and(|c| c.state() == crate::cluster::NodeState::Fenced);
    let m = request.method();
    let writes = !(m == Method::GET || m == Method::HEAD || m == Method::OPTIONS);
    if fenced && writes {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UNAVAILABLE,
            "this node lost its cluster membership; retry on another node",
        )
        .into_response();
    }
    next.run(request).await
}

async fn api_not_found(State(state): State<Shared>) -> ApiError {
    state.metrics.error();
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NOT_FOUND,
        "no such API route",
    )
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
                .merge(crate::rest_assets::router())
                .merge(crate::rest_admin::router())
                .merge(crate::recordings::router())
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
        .layer(axum::middleware::from_fn(typed_errors_off_the_pages))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_writes_when_fenced,
        ))
        .with_state(state)
}
