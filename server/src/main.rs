//! `covisit-server`: the WebSocket relay between visitors (the SDK) and agents (the
//! console), the REST API, the SQLite store, and the static files (SDK, demo site,
//! agent console). See SPEC.md section 4.
//!
//! Layout: `cli` (flags), `store` (persistence behind a trait), `hub` (the in-memory
//! world: one `VisitorMachine` per online visitor, agent sockets, live sessions),
//! `ws` (the two WebSocket endpoints), `rest` (the REST API), `http` (router, static
//! files, health and metrics), `keys` (key generation and hashing), `ua` (user agents),
//! `journey` (journey tracking), `rest_journey` (journey, beacon and analytics REST),
//! `geoip` (the optional MaxMind database).
#![forbid(unsafe_code)]

mod cli;
mod geoip;
mod http;
mod hub;
mod journey;
mod keys;
mod rest;
mod rest_journey;
mod store;
mod ua;
mod ws;

use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, KeysCommand};
use crate::store::{SqliteStore, Store};

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
    let store = SqliteStore::open(&cli.database)
        .map_err(|e| format!("cannot open {}: {e}", cli.database.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);
    match cli.command {
        Some(Command::Keys {
            command: KeysCommand::Create { name },
        }) => {
            let pair = keys::KeyPair::generate();
            store
                .create_account(
                    &name,
                    &pair.public_key,
                    &keys::hash_secret(&pair.secret_key),
                )
                .await
                .map_err(|e| e.to_string())?;
            println!("public key: {}", pair.public_key);
            println!("secret key: {}", pair.secret_key);
            println!("The secret key is stored hashed and cannot be shown again; keep it safe.");
            Ok(())
        }
        None => http::serve(cli, store).await,
    }
}
