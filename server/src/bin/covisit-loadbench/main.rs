//! `covisit-loadbench`: holds thousands of visitor sockets on a covisit server, runs
//! live sessions in a few of them, relays messages in those sessions at a fixed rate
//! and prints what it measured.
//!
//! Without `--url` it starts the real `covisit-server` found next to its own
//! executable (`target/<profile>/`) in `--dev` mode on 127.0.0.1 with a temporary
//! database, and stops it at the end. With `--cluster N` it starts a throwaway
//! PostgreSQL (fsync on) and Redis and N nodes instead (`cluster`). Loopback only.
//!
//! The relayed message (`client`): a session's visitor sends numbered `url`s (SPA
//! navigation; or `mirror` records with `--relay mirror`); the server pushes each to
//! agents as a `visitor_update` whose `last_url` carries its number and send time, so
//! the latency is visitor-send → agent-receive of the session's own agent, and the
//! numbers show loss and order.
//!
//! Phases (`phases`): connect `--visitors` (hello, welcome, heartbeats every
//! `--heartbeat-seconds`), then `--sessions` agents each ask one visitor for a session
//! that the visitor authorizes, then `--duration` seconds of `--rate` urls per second
//! per session. Every loop is bounded by a count and a deadline.
#![forbid(unsafe_code)]

mod client;
mod cluster;
mod phases;
mod process;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::watch;
use tokio::time::sleep;

use client::{Counters, Ctx, Node, Plan};
use phases::Relay;
use process::{cpu_percent, cpu_seconds, mb, memory_kb, metric, ServerSpec};

#[derive(Debug, Parser)]
#[command(
    name = "covisit-loadbench",
    about = "Load benchmark for covisit-server (loopback only)"
)]
pub struct Args {
    /// Server to load, e.g. http://127.0.0.1:8080 (must run with --dev or take
    /// --public-key/--secret-key). Default: start covisit-server next to this binary.
    #[arg(long)]
    url: Option<String>,
    /// The server's pid, to report its peak RSS when --url is given.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The covisit-server binary to start (default: next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    #[arg(long, default_value = "pk_demo")]
    public_key: String,
    #[arg(long, default_value = "sk_demo")]
    secret_key: String,
    /// The page origin visitors say they come from (the public key must allow it; the
    /// demo key of `--dev` allows any loopback origin).
    #[arg(long, default_value = "http://127.0.0.1")]
    origin: String,
    /// Visitor sockets to open and hold.
    #[arg(long, default_value_t = 10_000)]
    visitors: usize,
    /// Live sessions (one agent socket and one of the visitors each).
    #[arg(long, default_value_t = 200)]
    sessions: usize,
    /// The message relayed: `url` (navigation, pushed to agents as a visitor update)
    /// or `mirror` (page content, relayed as it is).
    #[arg(long, value_enum, default_value_t = client::Relayed::Url)]
    relay: client::Relayed,
    /// Relayed messages per second per session.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds of relaying measured.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds between a visitor's heartbeats (the SDK's interval by default).
    #[arg(long, default_value_t = covisit::core::client::HEARTBEAT_SECONDS)]
    heartbeat_seconds: u64,
    /// Visitor sockets being opened at the same time during the set-up (reconnects after
    /// a kill are not held back: each SDK retries on its own).
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Worker threads of this client's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Start PostgreSQL (fsync on), Redis and this many nodes on loopback instead of
    /// one server (issue 14 measures 3 nodes, 3,000 visitors, 60 sessions).
    #[arg(long, conflicts_with_all = ["url", "server_pid"])]
    cluster: Option<usize>,
    /// With --cluster: kill -9 the last node after --kill-after seconds of relaying,
    /// and measure the failover.
    #[arg(long, requires = "cluster")]
    kill: bool,
    /// Seconds into the relaying at which --kill kills.
    #[arg(long, default_value_t = 5, requires = "kill")]
    kill_after: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The client holds one descriptor per socket too.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open-file limit: {e}");
    }
    let (nofile, _) = rlimit::Resource::NOFILE.get().unwrap_or((0, 0));
    if (nofile as usize) < args.visitors + args.sessions + 64 {
        eprintln!(
            "warning: open-file limit {nofile} is below {} sockets; raise the hard limit (ulimit -Hn)",
            args.visitors + args.sessions
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("covisit-loadbench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match args.cluster {
        Some(nodes) => cluster::main(&runtime, args, nodes),
        None => runtime.block_on(run(args)),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("covisit-loadbench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The single-server run; Ok(true) when every target was met.
async fn run(args: Args) -> Result<bool, String> {
    let (_server, host, pid) = match &args.url {
        Some(url) => {
            let host = url
                .trim_start_matches("http://")
                .trim_start_matches("ws://")
                .trim_end_matches('/')
                .to_string();
            (None, host, args.server_pid)
        }
        None => {
            let s = process::spawn_server(ServerSpec {
                bin: args.server_bin.clone(),
                database: None,
                args: Vec::new(),
                env: Vec::new(),
                label: "[server]".into(),
            })?;
            let pid = s.process.pid();
            (Some(s.process), s.addr, Some(pid))
        }
    };
    if !process::is_loopback(&host) {
        return Err(format!("{host} is not a loopback address"));
    }
    let sessions = args.sessions.min(args.visitors);
    println!(
        "covisit-loadbench: server {host}{}; {} visitors, {} sessions relaying {:?} at {}/s for {} s, heartbeat every {} s",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        args.visitors,
        sessions,
        args.relay,
        args.rate,
        args.duration,
        args.heartbeat_seconds
    );
    let (stop_tx, stop) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        nodes: vec![Node::new(&host)],
        start: Instant::now(),
        c: Counters::default(),
        stop,
        args,
        reconnect: false,
    });
    let cpu0 = (pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));

    // 1. Visitors, 2. sessions.
    let plans = vec![Plan { first: 0, node: 0 }; ctx.args.visitors];
    let mut visitors = phases::connect_visitors(&ctx, &plans, sessions).await;
    let (agents, live) = phases::start_sessions(&ctx, &mut visitors, &[]).await;

    // 3. Relaying, measured over a fixed window; late arrivals get 2 s more.
    let frames0 = ctx.c.agent_frames.load(Ordering::Relaxed);
    let bytes0 = ctx.c.agent_bytes.load(Ordering::Relaxed);
    let relayed0 = metric(&host, "covisit_messages_relayed_total").await;
    let cpu1 = (pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));
    let from = Instant::now();
    ctx.c.relaying.store(true, Ordering::Relaxed);
    sleep(Duration::from_secs(ctx.args.duration)).await;
    ctx.c.relaying.store(false, Ordering::Relaxed);
    let window = from.elapsed().as_secs_f64();
    let cpu2 = (pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));
    let frames = ctx.c.agent_frames.load(Ordering::Relaxed) - frames0;
    let bytes = ctx.c.agent_bytes.load(Ordering::Relaxed) - bytes0;
    let relayed = metric(&host, "covisit_messages_relayed_total").await;
    sleep(Duration::from_secs(2)).await;
    let held = ctx.c.open.load(Ordering::Relaxed);
    let online = metric(&host, "covisit_online_visitors").await;
    let live_now = metric(&host, "covisit_live_sessions").await;
    let (peak_kb, rss_kb) = pid.map(memory_kb).unwrap_or((None, None));

    // 4. Stop everything (bounded wait).
    let tracks = visitors.tracks.clone();
    let reports = phases::stop_all(stop_tx, agents, visitors).await;
    let r = Relay::of(tracks.iter().map(|t| &**t).zip(&reports));

    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "?".into());
    println!("---");
    println!(
        "connections held: {held} visitor sockets (server reports {} online visitors), {} dropped by the server, {} live sessions",
        fmt(online),
        ctx.c.dropped_by_server.load(Ordering::Relaxed),
        fmt(live_now)
    );
    println!(
        "relayed: {} sent in {window:.1} s = {:.0} msg/s ({:.1}/s per session); {} received by their session's agent ({:.1}% lost/late), {} reordered, {} duplicated",
        r.sent,
        r.sent as f64 / window,
        r.sent as f64 / window / sessions.max(1) as f64,
        r.received,
        if r.sent > 0 { 100.0 * r.lost as f64 / r.sent as f64 } else { 0.0 },
        r.reordered,
        r.duplicated
    );
    println!(
        "agent sockets received {:.0} frames/s ({:.1} MB/s) in total; server frames out {}/s",
        frames as f64 / window,
        bytes as f64 / window / 1e6,
        match (relayed0, relayed) {
            (Some(a), Some(b)) => format!("{:.0}", (b - a) / window),
            _ => "?".into(),
        }
    );
    println!(
        "relay latency (visitor send -> agent receive): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        r.p50(),
        r.p99(),
        r.max()
    );
    println!(
        "server memory: peak RSS (VmHWM) {} MB, RSS now {} MB",
        mb(peak_kb),
        mb(rss_kb)
    );
    println!(
        "cpu during relaying (100% = one core): server {}, loadbench {}; during set-up: server {}",
        cpu_percent(cpu1.0, cpu2.0, window),
        cpu_percent(cpu1.1, cpu2.1, window),
        match (cpu0.0, cpu1.0) {
            (Some(a), Some(b)) => format!("{:.1} s", b - a),
            _ => "?".into(),
        }
    );
    let met = held >= ctx.args.visitors
        && live >= sessions
        && r.p99() < 20.0
        && peak_kb.is_some_and(|k| k < 500 * 1024)
        && r.sent as f64 / window >= 0.95 * ctx.args.rate * sessions as f64
        && r.received as f64 >= 0.99 * r.sent as f64;
    println!(
        "targets ({} visitors held, {sessions} sessions at {}/s, p99 < 20 ms, peak RSS < 500 MB): {}",
        ctx.args.visitors,
        ctx.args.rate,
        if met { "MET" } else { "NOT MET" }
    );
    Ok(met)
}
