//! `covisit-server`: the WebSocket relay between visitors (the SDK) and agents (the
//! console), the REST API, the SQLite store, and the static files (SDK, demo site,
//! agent console). See SPEC.md section 4.
//!
//! Layout: `cli` (flags), `store` (persistence behind a trait), `directory` (accounts,
//! keys, users, sign-ins, one-time links, the audit log, behind a trait), `auth` (roles,
//! passwords, origins, cookies: the trust model's rules), `hub` (the in-memory world:
//! one `VisitorMachine` per online visitor, agent sockets, live sessions), `ws` (the
//! two WebSocket endpoints), `rest` (the REST API), `rest_admin` (sign-in, users,
//! keys, audit), `call` (personal links), `setup` (dev account, CLI tools), `http`
//! (router, static files, health and metrics), `keys` (key generation), `ua` (user
//! agents), `journey` (journey tracking), `rest_journey` (journey, beacon and analytics
//! REST), `geoip` (the optional MaxMind database).
#![forbid(unsafe_code)]

mod auth;
mod call;
mod cli;
mod directory;
mod geoip;
mod http;
mod hub;
mod hub_task;
mod journey;
mod keys;
mod rest;
mod rest_admin;
mod rest_journey;
mod setup;
mod store;
mod ua;
mod ws;

use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, KeysCommand, UsersCommand};
use crate::directory::Directory;
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
    let sqlite = Arc::new(
        SqliteStore::open(&cli.database)
            .map_err(|e| format!("cannot open {}: {e}", cli.database.display()))?,
    );
    let store: Arc<dyn Store> = sqlite.clone();
    let directory: Arc<dyn Directory> = sqlite;
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
        None => http::serve(cli, store, directory).await,
    }
}
