//! `covisit-server`: the WebSocket relay between visitors (the SDK) and agents (the
//! console), the REST API, the store (SQLite, or PostgreSQL with `--database
//! postgres://…`), and the static files (SDK, demo site, agent console). See SPEC.md
//! section 4.
//!
//! This file is the composition root: the only module that names every other one. It
//! parses the flags, opens the store, builds the shared state and serves. The module
//! graph has no cycle (`scripts/check-modules.mjs`, run by `npm test`):
//!
//! - leaves, naming no other module: `clock` (the wall clock), `metrics` (`/metrics`),
//!   `errors` (the REST error type), `auth` (roles, passwords, origins, cookies,
//!   limiters: the trust model's rules), `store` (persistence behind a trait: the writes
//!   the hub asks for and the records REST reads);
//! - `directory` (accounts, keys, users, sign-ins, one-time links, the audit log);
//! - `hub` (the sans-IO domain: online visitors and their machines, agent sockets, live
//!   sessions, the relay) and `hub_task` (its I/O shell: one task, one timer, the
//!   writer, the sockets' bounded queues);
//! - `journey` (journey tracking), `geoip`, `ua`, `keys`, `assets` (the asset proxy:
//!   what the server fetches for a session's mirror, and how safely);
//! - `state` (what handlers share), `access` (who a request or socket is, role checks,
//!   audit entries);
//! - the edges: `ws` (the two WebSockets), `rest`, `rest_admin`, `rest_journey`,
//!   `rest_assets` (a live session's assets for its agents),
//!   `recordings` (replay, download, the recordings' sweep),
//!   `call` (personal links), `http` (the router), `setup` (dev account, CLI tools),
//!   `cli` (flags).
#![forbid(unsafe_code)]

mod access;
mod asset_fetch;
mod assets;
mod auth;
mod bus;
mod call;
mod cli;
mod clock;
mod cluster;
mod directory;
mod errors;
mod geoip;
mod http;
mod hub;
mod hub_task;
mod ice;
mod journey;
mod keys;
mod limits;
mod metrics;
mod owner_calls;
mod recordings;
mod rest;
mod rest_admin;
mod rest_assets;
mod rest_journey;
mod setup;
mod state;
mod store;
mod ua;
mod ws;

// The throwaway PostgreSQL servers of the store tests, shared with the integration
// tests (which also start the binary on one).
#[cfg(test)]
#[path = "../tests/common/pg.rs"]
mod pg_test_server;
#[cfg(test)]
mod store_suite;

use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, KeysCommand, UsersCommand};
use crate::directory::Directory;
use crate::store::{is_postgres_url, redact_url, PgStore, SqliteStore, Store};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("covisit-server: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("covisit-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // Every socket is a file descriptor: raise the soft limit to the hard one (often
    // 1024 vs. far more), so thousands of visitors fit. Harmless where it is already.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // A node of several needs both engines; one without the other is a mistake that
    // would let two servers think they each own everything.
    let serving = cli.command.is_none();
    match (postgres_url(&cli), cli.bus.as_deref()) {
        (None, Some(_)) => {
            return Err("--bus runs covisit as one node of several, which needs a PostgreSQL --database (postgres://…) shared by the nodes".into())
        }
        (Some(_), None) if serving => {
            return Err("a PostgreSQL --database is for running covisit on several nodes: give the nodes' Redis bus too (--bus redis://…); one node runs on the SQLite default".into())
        }
        (Some(db), Some(bus)) if serving => return serve_clustered(cli.clone(), db.to_string(), bus.to_string()).await,
        _ => {}
    }
    let (store, directory) = open_database(&cli).await?;
    match &cli.command {
        Some(Command::Keys {
            command: KeysCommand::Create { name, origins },
        }) => setup::create_keys(directory.as_ref(), name, origins).await,
        Some(Command::Users {
            command:
                UsersCommand::Create {
                    email,
                    role,
                    name,
                    account,
                    password_stdin,
                },
        }) => {
            setup::create_user(
                directory.as_ref(),
                &cli.public_url(cli.listen),
                account.as_deref(),
                email,
                role,
                name.as_deref(),
                *password_stdin,
            )
            .await
        }
        None => {
            let now = crate::clock::now();
            store
                .recover_after_restart(&now.to_iso8601())
                .await
                .map_err(|e| e.to_string())?;
            serve(cli, store, directory, None).await
        }
    }
}

/// A node of several: joins the cluster (PostgreSQL and the Redis bus), then serves.
/// Unlike a single server it never ends every live session at start-up: the other
/// nodes' sessions are theirs (it recovers only the slots it takes over).
async fn serve_clustered(cli: Cli, database: String, bus: String) -> Result<(), String> {
    let address = cli.listen.to_string();
    let (cluster, store) = crate::cluster::Cluster::join(&database, &bus, &address).await?;
    tracing::info!(database = %redact_url(&database), node = cluster.node(), "store: PostgreSQL, one node of several");
    let s: Arc<dyn Store> = store.clone();
    let d: Arc<dyn Directory> = store;
    serve(cli, s, d, Some(cluster)).await
}

/// The `postgres://` URL of `--database`, if it is one.
fn postgres_url(cli: &Cli) -> Option<&str> {
    cli.database.to_str().filter(|d| is_postgres_url(d))
}

/// The store `--database` names: a `postgres://` (or `postgresql://`) URL opens
/// PostgreSQL, anything else is a SQLite file (the default).
async fn open_database(cli: &Cli) -> Result<(Arc<dyn Store>, Arc<dyn Directory>), String> {
    if let Some(url) = postgres_url(cli) {
        let pg = Arc::new(PgStore::open(url, None).await.map_err(|e| {
            format!(
                "cannot open the PostgreSQL database {}: {e}",
                redact_url(url)
            )
        })?);
        tracing::info!(database = %redact_url(url), "store: PostgreSQL");
        return Ok((pg.clone(), pg));
    }
    let sqlite = Arc::new(
        SqliteStore::open(&cli.database)
            .map_err(|e| format!("cannot open {}: {e}", cli.database.display()))?,
    );
    Ok((sqlite.clone(), sqlite))
}

/// Runs the server: opens the GeoIP file, recovers what a crash left live, binds,
/// creates the dev account with `--dev`, starts the hub and serves until a signal.
async fn serve(
    cli: Cli,
    store: Arc<dyn Store>,
    directory: Arc<dyn Directory>,
    cluster: Option<crate::cluster::Cluster>,
) -> Result<(), String> {
    for warning in cli.folder_warnings() {
        tracing::warn!("{warning}");
    }
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
    let metrics = Arc::new(match &cluster {
        Some(c) => {
            let stats = &c.bus().stats;
            crate::metrics::Metrics::clustered(
                stats.publish_seconds.clone(),
                stats.receive_seconds.clone(),
            )
        }
        None => crate::metrics::Metrics::default(),
    });
    let grace = cli.grace_period_seconds.clamp(1, 86_400);
    let heartbeat_timeout =
        std::time::Duration::from_secs(cli.heartbeat_timeout_seconds.clamp(1, 86_400));
    let hub = crate::hub_task::HubHandle::start(
        store.clone(),
        crate::hub::HubConfig {
            public_url: public_url.clone(),
            grace_period_seconds: grace,
            visitor_silence_ms: heartbeat_timeout.as_millis() as u64,
            // Consoles in a background tab may be throttled: three times as long.
            agent_silence_ms: 3 * heartbeat_timeout.as_millis() as u64,
            ice: crate::ice::IceConfig {
                urls: cli.ice_server.clone(),
                turn_secret: cli.turn_secret.clone(),
                ttl_seconds: 0,
            },
        },
        crate::hub::Ids::from_entropy(),
        metrics.clone(),
        cluster.as_ref().map(|c| c.link()),
    );
    if cluster.is_some() {
        // Clustered from the first frame: no slots until the table says which.
        hub.set_owned_slots(Some(crate::hub::Slots::default()));
    }
    let journeys = crate::journey::Journeys::new(store.clone(), journey_options, geo);
    let state = Arc::new(crate::state::AppState {
        store,
        directory,
        public_url: public_url.clone(),
        sign_in: crate::auth::SignInLimiter::default(),
        hub: hub.clone(),
        metrics,
        trust_proxy: cli.trust_proxy,
        lookups: crate::auth::LookupLimiter::new(cli.lookup_rate_per_minute),
        journeys,
        cluster: cluster.clone(),
        assets: Arc::new(crate::assets::AssetProxy::new(cli.asset_settings()?)?),
        record_sessions: cli.record_sessions,
        recording_retention: retention_of(cli.recording_retention_days)?,
        www: cli.www.clone(),
        signing_key: tokio::sync::OnceCell::new(),
    });
    crate::recordings::spawn_sweep(state.clone());
    if let Some(cluster) = &cluster {
        let (on_visitor, on_call) = (state.clone(), state.clone());
        cluster.start(
            hub.clone(),
            state.store.clone(),
            crate::cluster::Handlers {
                bridged_visitor: Box::new(move |bridged| {
                    tokio::spawn(crate::ws::serve_bridged_visitor(
                        on_visitor.clone(),
                        bridged,
                    ));
                }),
                call: Box::new(move |call| {
                    Box::pin(crate::owner_calls::carry_out(on_call.clone(), call))
                }),
            },
        );
    }
    if let Some(cluster) = &cluster {
        cluster.settle(std::time::Duration::from_secs(15)).await;
    }
    let app = crate::http::router(state, &cli);
    tracing::info!("covisit-server listening on {bound}: demo site {public_url}/ , agent console {public_url}/agent/");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        // A node of several hands its visitors over before it stops taking sockets.
        if let Some(cluster) = &cluster {
            cluster
                .drain(std::time::Duration::from_secs(
                    cli.drain_seconds.clamp(0, 3600),
                ))
                .await;
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    // Whatever the sockets changed may still be queued for the store: write it first.
    hub.flush().await;
    tracing::info!("covisit-server stopped");
    Ok(())
}

/// `--recording-retention-days` as a duration: more than nothing, at most 100 years.
fn retention_of(days: f64) -> Result<std::time::Duration, String> {
    if !(days.is_finite() && days > 0.0 && days <= 36_500.0) {
        return Err(format!(
            "--recording-retention-days must be more than 0 and at most 36500 (got {days})"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(days * 86_400.0))
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
