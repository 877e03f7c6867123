//! `covisit-loadbench`: holds thousands of visitor sockets on a covisit server, runs
//! live sessions in a few of them, relays messages in those sessions at a fixed rate
//! and prints what it measured.
//!
//! Without `--url` it starts the real `covisit-server` found next to its own
//! executable (`target/<profile>/`) in `--dev` mode on 127.0.0.1 with a temporary
//! database, and stops it at the end. Loopback only.
//!
//! The relayed message: a session's visitor sends `url` (SPA navigation); the server
//! pushes it to agents as a `visitor_update` whose `last_url` carries the send time, so
//! the latency is visitor-send → agent-receive of the session's own agent.
//!
//! Phases: connect `--visitors` (hello, welcome, heartbeats every
//! `--heartbeat-seconds`), then `--sessions` agents each ask one visitor for a session
//! that the visitor authorizes, then `--duration` seconds of `--rate` urls per second
//! per session. Every loop is bounded by a count and a deadline.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::time::{interval_at, sleep, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(
    name = "covisit-loadbench",
    about = "Load benchmark for covisit-server (loopback only)"
)]
struct Args {
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
    /// Relayed messages per second per session.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds of relaying measured.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds between a visitor's heartbeats (the SDK's interval by default).
    #[arg(long, default_value_t = covisit::core::client::HEARTBEAT_SECONDS)]
    heartbeat_seconds: u64,
    /// Visitor sockets being opened at the same time.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Worker threads of this client's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Marks relayed urls: `http://bench.invalid/r/<session>/<seq>/<send µs>`.
const URL_PREFIX: &str = "http://bench.invalid/r/";
const LAST_URL_KEY: &str = "\"last_url\":\"http://bench.invalid/r/";

#[derive(Default)]
struct Counters {
    welcomed: AtomicUsize,
    open: AtomicUsize,
    failed: AtomicUsize,
    dropped_by_server: AtomicUsize,
    live_sessions: AtomicUsize,
    sent: AtomicU64,
    received: AtomicU64,
    agent_frames: AtomicU64,
    agent_bytes: AtomicU64,
    /// Relaying is on while set.
    relaying: AtomicBool,
    /// The measured window, in µs since `start` (sends inside it are measured).
    window_from: AtomicU64,
    window_to: AtomicU64,
}

struct Ctx {
    ws: String,
    args: Args,
    start: Instant,
    c: Counters,
    stop: watch::Receiver<bool>,
}

impl Ctx {
    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str, origin: &str, hello: Value) -> Result<(Socket, Value), String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    // Small read buffers (the default 128 KiB each is 1.3 GB for 10,000 sockets) and
    // no Nagle delay, like the server.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "origin",
        origin.parse().map_err(|_| "a bad --origin".to_string())?,
    );
    let (mut ws, _) = timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect: {e}"))?;
    ws.send(Message::text(hello.to_string()))
        .await
        .map_err(|e| format!("send hello: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                match v["type"].as_str() {
                    Some("welcome") => return Ok((ws, v)),
                    Some("error") => return Err(format!("refused: {v}")),
                    _ => continue,
                }
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(None) => return Err("closed before welcome".into()),
            Err(_) => return Err("no welcome in 30 s".into()),
        }
    }
}

/// One visitor socket; with `session` it answers a session request and relays urls.
async fn visitor(
    ctx: Arc<Ctx>,
    index: usize,
    gate: Arc<Semaphore>,
    session: Option<(usize, oneshot::Sender<String>)>,
) {
    let hello = json!({
        "type": "hello", "protocol_version": 1, "api_key": ctx.args.public_key, "short_id": null,
        "connection": {"uniqueConnectionId": null, "currentUrl": format!("http://bench.invalid/page/{index}"),
            "screenWidth": 1280, "screenHeight": 800, "audioSupported": false, "hasFocus": true,
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
        "config": {},
    });
    let opened = {
        let Ok(_permit) = gate.acquire().await else {
            return;
        };
        open(&format!("{}/ws/visitor", ctx.ws), &ctx.args.origin, hello).await
    };
    let (ws, welcome) = match opened {
        Ok(x) => x,
        Err(e) => {
            if ctx.c.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("visitor {index}: {e}");
            }
            return;
        }
    };
    ctx.c.welcomed.fetch_add(1, Ordering::Relaxed);
    ctx.c.open.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let session = session.map(|(n, tx)| {
        let _ = tx.send(welcome["short_id"].as_str().unwrap_or_default().to_string());
        n
    });
    let hb_period = Duration::from_secs(ctx.args.heartbeat_seconds.max(1));
    // Spread the heartbeats over the period.
    let offset = Duration::from_millis(rand::random::<u64>() % hb_period.as_millis() as u64);
    let mut heartbeat = interval_at(tokio::time::Instant::now() + offset, hb_period);
    let relay_period = Duration::from_secs_f64(1.0 / ctx.args.rate.max(0.001));
    let mut relay = interval_at(tokio::time::Instant::now() + relay_period, relay_period);
    relay.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stop = ctx.stop.clone();
    let mut active = false;
    let mut seq: u64 = 0;
    // Bounded by count as well as by the stop signal.
    let max_relays = (ctx.args.rate * (ctx.args.duration as f64 + 5.0)) as u64 + 10;
    let mut closed_by_server = false;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                if sink.send(Message::text(r#"{"type":"heartbeat"}"#)).await.is_err() { closed_by_server = true; break }
            }
            _ = relay.tick(), if session.is_some() && active => {
                if !ctx.c.relaying.load(Ordering::Relaxed) || seq >= max_relays { continue }
                seq += 1;
                let url = format!("{URL_PREFIX}{}/{seq}/{}", session.unwrap_or(0), ctx.micros());
                let frame = json!({"type": "url", "currentUrl": url}).to_string();
                if sink.send(Message::text(frame)).await.is_err() { closed_by_server = true; break }
                ctx.c.sent.fetch_add(1, Ordering::Relaxed);
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if session.is_some() {
                        if t.starts_with(r#"{"type":"session_request""#) {
                            if sink.send(Message::text(r#"{"type":"authorize"}"#)).await.is_err() { closed_by_server = true; break }
                        } else if t.starts_with(r#"{"type":"session_start""#) {
                            active = true;
                        } else if t.starts_with(r#"{"type":"session_end""#) {
                            active = false;
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => { closed_by_server = true; break }
            }
        }
    }
    if closed_by_server && !*ctx.stop.borrow() {
        ctx.c.dropped_by_server.fetch_add(1, Ordering::Relaxed);
    }
    ctx.c.open.fetch_sub(1, Ordering::Relaxed);
}

/// One agent socket: asks its visitor for a session and records relay latencies (µs).
async fn agent(
    ctx: Arc<Ctx>,
    n: usize,
    gate: Arc<Semaphore>,
    short_id: oneshot::Receiver<String>,
) -> Vec<u32> {
    let mut latencies = Vec::new();
    let Ok(Ok(short_id)) = timeout(Duration::from_secs(300), short_id).await else {
        eprintln!("agent {n}: its visitor never connected");
        return latencies;
    };
    let hello = json!({"type": "hello", "protocol_version": 1, "secret_key": ctx.args.secret_key,
        "name": format!("Bench agent {n}"), "external_id": format!("bench-{n}")});
    let opened = {
        let Ok(_permit) = gate.acquire().await else {
            return latencies;
        };
        open(&format!("{}/ws/agent", ctx.ws), &ctx.args.origin, hello).await
    };
    let mut ws = match opened {
        Ok((ws, _)) => ws,
        Err(e) => {
            eprintln!("agent {n}: {e}");
            return latencies;
        }
    };
    let request = json!({"type": "request_session", "short_id": short_id, "found_by": "search"});
    if ws.send(Message::text(request.to_string())).await.is_err() {
        return latencies;
    }
    let mut stop = ctx.stop.clone();
    let mut live = false;
    let mine = format!("{n}/");
    let max = (ctx.args.rate * (ctx.args.duration as f64 + 5.0)) as usize + 10;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = ws.next() => {
                let t = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                let now = ctx.micros();
                ctx.c.agent_frames.fetch_add(1, Ordering::Relaxed);
                ctx.c.agent_bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                if t.starts_with(r#"{"type":"visitor_update""#) {
                    let Some(at) = t.find(LAST_URL_KEY) else { continue };
                    let rest = &t[at + LAST_URL_KEY.len()..];
                    let Some(rest) = rest.strip_prefix(mine.as_str()) else { continue };
                    // <seq>/<send µs>"
                    let sent: Option<u64> = rest
                        .split('"')
                        .next()
                        .and_then(|r| r.split('/').nth(1))
                        .and_then(|s| s.parse().ok());
                    if let Some(sent) = sent {
                        let from = ctx.c.window_from.load(Ordering::Relaxed);
                        let to = ctx.c.window_to.load(Ordering::Relaxed);
                        if sent >= from && sent < to && latencies.len() < max {
                            latencies.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                            ctx.c.received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                } else if !live && t.starts_with(r#"{"type":"session_update""#) {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["session"]["visitor_id"] == short_id.as_str() && v["status"] == "active" {
                        live = true;
                        ctx.c.live_sessions.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    latencies
}

/// Peak and current resident set size (kB) of a process, from /proc.
fn memory_kb(pid: u32) -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user + system) a process used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A value of the server's /metrics (plain HTTP/1.0 over loopback).
async fn metric(host: &str, name: &str) -> Option<f64> {
    let mut s = timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(host))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .ok()?
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

struct Spawned {
    child: Child,
    dir: PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_server(bin: Option<PathBuf>) -> Result<(Spawned, String), String> {
    let bin = match bin {
        Some(b) => b,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("covisit-server"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p covisit-server) or pass --server-bin / --url",
            bin.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("covisit-loadbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("COVISIT_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("warn,covisit_server=info".into()),
        )
        .env("NO_COLOR", "1")
        .args([
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--www",
            "/nonexistent-www",
            "--sdk-dir",
            "/nonexistent-dist",
            "--database",
        ])
        .arg(dir.join("covisit.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let spawned = Spawned { child, dir };
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains the server's log for as long as it runs (a full pipe would stall it);
    // shows warnings and errors.
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut sent = false;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if !sent {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split(':').take(2).collect::<Vec<_>>().join(":");
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
            let notable = line.contains("WARN") || line.contains("ERROR");
            if notable && !line.contains("dev mode") && !line.contains("demo") {
                eprintln!("[server] {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the server did not log its address".to_string())?;
    Ok((spawned, addr))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
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
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("covisit-loadbench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; Ok(true) when every target was met.
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
            let (s, addr) = spawn_server(args.server_bin.clone())?;
            let pid = s.child.id();
            (Some(s), addr, Some(pid))
        }
    };
    if !(host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")) {
        return Err(format!("{host} is not a loopback address"));
    }
    let sessions = args.sessions.min(args.visitors);
    println!(
        "covisit-loadbench: server {host}{}; {} visitors, {} sessions at {}/s for {} s, heartbeat every {} s",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        args.visitors,
        sessions,
        args.rate,
        args.duration,
        args.heartbeat_seconds
    );
    let (stop_tx, stop) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        ws: format!("ws://{host}"),
        start: Instant::now(),
        c: Counters::default(),
        stop,
        args,
    });
    let cpu0 = (pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));

    // 1. Visitors.
    let t = Instant::now();
    let gate = Arc::new(Semaphore::new(ctx.args.connect_concurrency.max(1)));
    let mut visitor_tasks = Vec::with_capacity(ctx.args.visitors);
    let mut short_ids = Vec::with_capacity(sessions);
    for i in 0..ctx.args.visitors {
        let session = (i < sessions).then(|| {
            let (tx, rx) = oneshot::channel();
            short_ids.push(rx);
            (i, tx)
        });
        visitor_tasks.push(tokio::spawn(visitor(ctx.clone(), i, gate.clone(), session)));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while ctx.c.welcomed.load(Ordering::Relaxed) + ctx.c.failed.load(Ordering::Relaxed)
        < ctx.args.visitors
        && Instant::now() < deadline
    {
        sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = t.elapsed().as_secs_f64();
    let welcomed = ctx.c.welcomed.load(Ordering::Relaxed);
    println!(
        "visitors connected: {welcomed} of {} in {connect_secs:.1} s ({:.0}/s), {} failed",
        ctx.args.visitors,
        welcomed as f64 / connect_secs,
        ctx.c.failed.load(Ordering::Relaxed)
    );

    // 2. Sessions: agents connect a few at a time (each gets the visitor list).
    let t = Instant::now();
    let agent_gate = Arc::new(Semaphore::new(8));
    let agent_tasks: Vec<_> = short_ids
        .into_iter()
        .enumerate()
        .map(|(n, rx)| tokio::spawn(agent(ctx.clone(), n, agent_gate.clone(), rx)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ctx.c.live_sessions.load(Ordering::Relaxed) < sessions && Instant::now() < deadline {
        sleep(Duration::from_millis(100)).await;
    }
    let live = ctx.c.live_sessions.load(Ordering::Relaxed);
    println!(
        "sessions live: {live} of {sessions} in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // 3. Relaying, measured over a fixed window; late arrivals get 2 s more.
    let frames0 = ctx.c.agent_frames.load(Ordering::Relaxed);
    let bytes0 = ctx.c.agent_bytes.load(Ordering::Relaxed);
    let relayed0 = metric(&host, "covisit_messages_relayed_total").await;
    let cpu1 = (pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));
    let from = ctx.micros();
    ctx.c.window_from.store(from, Ordering::Relaxed);
    ctx.c.window_to.store(u64::MAX, Ordering::Relaxed);
    ctx.c.relaying.store(true, Ordering::Relaxed);
    sleep(Duration::from_secs(ctx.args.duration)).await;
    ctx.c.relaying.store(false, Ordering::Relaxed);
    let to = ctx.micros();
    ctx.c.window_to.store(to, Ordering::Relaxed);
    let window = (to - from) as f64 / 1e6;
    let cpu2 = (pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));
    let frames = ctx.c.agent_frames.load(Ordering::Relaxed) - frames0;
    let bytes = ctx.c.agent_bytes.load(Ordering::Relaxed) - bytes0;
    let relayed = metric(&host, "covisit_messages_relayed_total").await;
    sleep(Duration::from_secs(2)).await;
    let sent = ctx.c.sent.load(Ordering::Relaxed);
    let held = ctx.c.open.load(Ordering::Relaxed);
    let online = metric(&host, "covisit_online_visitors").await;
    let live_now = metric(&host, "covisit_live_sessions").await;
    let (peak_kb, rss_kb) = pid.map(memory_kb).unwrap_or((None, None));

    // 4. Stop everything (bounded wait).
    let _ = stop_tx.send(true);
    let mut latencies: Vec<u32> = Vec::new();
    for h in agent_tasks {
        if let Ok(Ok(l)) = timeout(Duration::from_secs(10), h).await {
            latencies.extend(l);
        }
    }
    for h in visitor_tasks {
        let _ = timeout(Duration::from_secs(10), h).await;
    }
    latencies.sort_unstable();
    let received = latencies.len() as u64;
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let max = percentile(&latencies, 1.0);

    let cpu = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.0}%", (b - a) / window * 100.0),
        _ => "?".into(),
    };
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "?".into());
    println!("---");
    println!(
        "connections held: {held} visitor sockets (server reports {} online visitors), {} dropped by the server, {} live sessions",
        fmt(online),
        ctx.c.dropped_by_server.load(Ordering::Relaxed),
        fmt(live_now)
    );
    println!(
        "relayed: {sent} sent in {window:.1} s = {:.0} msg/s ({:.1}/s per session); {received} received by their session's agent ({:.1}% lost/late)",
        sent as f64 / window,
        sent as f64 / window / sessions.max(1) as f64,
        if sent > 0 { 100.0 * (sent.saturating_sub(received)) as f64 / sent as f64 } else { 0.0 }
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
    println!("relay latency (visitor send -> agent receive): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    println!(
        "server memory: peak RSS (VmHWM) {} MB, RSS now {} MB",
        peak_kb
            .map(|k| format!("{:.0}", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into()),
        rss_kb
            .map(|k| format!("{:.0}", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    );
    println!(
        "cpu during relaying (100% = one core): server {}, loadbench {}; during set-up: server {}",
        cpu(cpu1.0, cpu2.0),
        cpu(cpu1.1, cpu2.1),
        match (cpu0.0, cpu1.0) {
            (Some(a), Some(b)) => format!("{:.1} s", b - a),
            _ => "?".into(),
        }
    );
    let met = held >= ctx.args.visitors
        && live >= sessions
        && p99 < 20.0
        && peak_kb.is_some_and(|k| k < 500 * 1024)
        && sent as f64 / window >= 0.95 * ctx.args.rate * sessions as f64
        && received as f64 >= 0.99 * sent as f64;
    println!(
        "targets ({} visitors held, {sessions} sessions at {}/s, p99 < 20 ms, peak RSS < 500 MB): {}",
        ctx.args.visitors,
        ctx.args.rate,
        if met { "MET" } else { "NOT MET" }
    );
    Ok(met)
}
