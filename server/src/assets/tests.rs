//! The proxy's rules against real HTTP servers on loopback. Loopback is refused by
//! default, so the tests that need the proxy to reach one of these servers say so
//! explicitly (`allow_private: true`, the operator's `--asset-proxy-allow-private`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::*;

/// A server on 127.0.0.1 that counts the requests it gets.
struct Site {
    origin: String,
    hits: Arc<AtomicUsize>,
}

async fn site(routes: Router) -> Site {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = routes.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(req).await
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Site {
        origin: format!("http://{addr}"),
        hits,
    }
}

fn png() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/png")],
        vec![0x89, b'P', b'N', b'G'],
    )
}

fn assets_site() -> Router {
    Router::new()
        .route("/a.png", get(|| async { png() }))
        .route(
            "/font.woff2",
            get(|| async { ([(header::CONTENT_TYPE, "application/octet-stream")], "wOF2") }),
        )
        .route(
            "/site.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css")],
                    "a{background:url(a.png)}",
                )
            }),
        )
        .route(
            "/page.html",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<p>hi</p>") }),
        )
        .route(
            "/big.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 4096]) }),
        )
        .route("/never", get(std::future::pending::<String>))
}

fn proxy(allow_private: bool) -> AssetProxy {
    AssetProxy::new(AssetSettings {
        allow_private,
        max_bytes: 1024,
        timeout: Duration::from_secs(2),
        ..AssetSettings::default()
    })
    .unwrap()
}

fn any(_: &Url) -> bool {
    true
}

#[tokio::test]
async fn loopback_is_refused_by_default_and_nothing_is_requested() {
    let s = site(assets_site()).await;
    let p = proxy(false);
    let url = Url::parse(&format!("{}/a.png", s.origin)).unwrap();
    let e = p.fetch(&url, &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_ADDRESS_REFUSED, "{e}");
    // A name that resolves to loopback is refused the same way.
    let by_name = Url::parse(&format!("http://localhost:{}/a.png", url.port().unwrap())).unwrap();
    let e = p.fetch(&by_name, &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_ADDRESS_REFUSED, "{e}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn private_and_link_local_literals_are_refused_without_a_connection() {
    let p = proxy(false);
    for u in [
        "http://10.0.0.1/a.png",
        "http://192.168.0.1/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/a.png",
        "http://[fe80::1]/a.png",
        "http://0.0.0.0/a.png",
    ] {
        let e = p.fetch(&Url::parse(u).unwrap(), &any).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::ASSET_ADDRESS_REFUSED, "{u}: {e}");
    }
}

#[tokio::test]
async fn with_the_operators_flag_a_loopback_cdn_serves_css_fonts_and_images() {
    let s = site(assets_site()).await;
    let p = proxy(true);
    let get = |path: &str| Url::parse(&format!("{}{path}", s.origin)).unwrap();
    let a = p.fetch(&get("/a.png"), &any).await.unwrap();
    assert_eq!(a.content_type, "image/png");
    assert_eq!(&a.body[..], &[0x89, b'P', b'N', b'G']);
    let f = p.fetch(&get("/font.woff2"), &any).await.unwrap();
    assert_eq!(
        f.content_type, "font/woff2",
        "a generic type is known by its extension"
    );
    let c = p.fetch(&get("/site.css"), &any).await.unwrap();
    assert_eq!(c.content_type, "text/css");
    // A second fetch is the cache's.
    let before = s.hits.load(Ordering::SeqCst);
    p.fetch(&get("/a.png"), &any).await.unwrap();
    assert_eq!(s.hits.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn other_types_large_bodies_and_slow_hosts_are_refused() {
    let s = site(assets_site()).await;
    let p = proxy(true);
    let get = |path: &str| Url::parse(&format!("{}{path}", s.origin)).unwrap();
    let e = p.fetch(&get("/page.html"), &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_TYPE_NOT_ALLOWED, "{e}");
    let e = p.fetch(&get("/big.png"), &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_TOO_LARGE, "{e}");
    let e = p.fetch(&get("/never"), &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_UNAVAILABLE, "{e}");
}

#[tokio::test]
async fn origins_the_caller_does_not_allow_are_refused_before_any_request() {
    let s = site(assets_site()).await;
    let p = proxy(true);
    let url = Url::parse(&format!("{}/a.png", s.origin)).unwrap();
    let e = p.fetch(&url, &|_| false).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_ORIGIN_NOT_ALLOWED, "{e}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
    for bad in [
        "ftp://x.test/a.png",
        "http://u:p@x.test/a.png",
        "data:image/png,x",
    ] {
        assert_eq!(
            parse_asset_url(bad).unwrap_err().code(),
            ErrorCode::ASSET_ORIGIN_NOT_ALLOWED,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn every_redirect_is_checked_again() {
    let target = site(assets_site()).await;
    let to_other_origin = format!("{}/a.png", target.origin);
    let port = target.origin.rsplit(':').next().unwrap().to_string();
    let to_unspecified = format!("http://0.0.0.0:{port}/a.png");
    let to_same = "/a.png".to_string();
    let hop = site(
        assets_site()
            .route(
                "/r/other",
                get(move || async move { axum::response::Redirect::temporary(&to_other_origin) }),
            )
            .route(
                "/r/unspecified",
                get(move || async move { axum::response::Redirect::temporary(&to_unspecified) }),
            )
            .route(
                "/r/same",
                get(move || async move { axum::response::Redirect::permanent(&to_same) }),
            )
            .route(
                "/r/loop",
                get(|| async { axum::response::Redirect::temporary("/r/loop") }),
            ),
    )
    .await;
    let p = proxy(true);
    let hop_origin = Url::parse(&hop.origin).unwrap().origin();
    let only_hop = move |u: &Url| u.origin() == hop_origin;
    let get = |path: &str| Url::parse(&format!("{}{path}", hop.origin)).unwrap();
    // Within the allowed origin: followed.
    let a = p.fetch(&get("/r/same"), &only_hop).await.unwrap();
    assert_eq!(a.url.path(), "/a.png");
    // To an origin the caller does not allow: refused, never requested.
    let e = p.fetch(&get("/r/other"), &only_hop).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_ORIGIN_NOT_ALLOWED, "{e}");
    assert_eq!(target.hits.load(Ordering::SeqCst), 0);
    // To an address that is never allowed (even with private ones allowed): refused.
    let e = p.fetch(&get("/r/unspecified"), &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_ADDRESS_REFUSED, "{e}");
    assert_eq!(target.hits.load(Ordering::SeqCst), 0);
    let e = p.fetch(&get("/r/loop"), &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_UNAVAILABLE, "{e}");
}

#[tokio::test]
async fn a_failed_url_goes_to_the_visitor_at_once_for_a_while() {
    let s = site(assets_site()).await;
    let p = proxy(true);
    let url = Url::parse(&format!("{}/page.html", s.origin)).unwrap();
    assert!(p.fetch(&url, &any).await.is_err());
    let hits = s.hits.load(Ordering::SeqCst);
    let e = p.fetch(&url, &any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ASSET_UNAVAILABLE);
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        hits,
        "remembered, not fetched again"
    );
}

#[test]
fn only_css_fonts_and_images_have_a_type() {
    assert_eq!(
        asset_type(Some("text/css; charset=utf-8"), "/x"),
        Some("text/css")
    );
    assert_eq!(asset_type(Some("IMAGE/PNG"), "/x"), Some("image/png"));
    assert_eq!(asset_type(None, "/f/a.woff2"), Some("font/woff2"));
    assert_eq!(
        asset_type(Some("application/octet-stream"), "/a.ttf"),
        Some("font/ttf")
    );
    assert_eq!(asset_type(Some("text/html"), "/a.png"), None);
    assert_eq!(asset_type(Some("application/javascript"), "/a.css"), None);
    assert_eq!(asset_type(None, "/a.js"), None);
    assert_eq!(asset_type(None, "/svg"), None);
}
