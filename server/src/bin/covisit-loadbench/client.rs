//! The benchmark's clients: visitor sockets (that answer a session request, relay
//! numbered urls, and reconnect as the SDK does when asked to) and agent sockets (that
//! request a session and time, count and order what their visitor relays).
//!
//! The relayed message carries `http://bench.invalid/r/<session>/<seq>/<send µs>`, as
//! [`Relayed::Url`] (an SPA navigation: the server pushes it to the session's agents as a
//! `visitor_update` whose `last_url` carries it; on a node of several, agents on other
//! nodes get it from the owner's news about the visitor) or [`Relayed::Mirror`] (a text
//! record of page content, relayed as it is to the session's agents wherever they
//! are). `seq` counts from 1 per session, so the agent sees what was lost (never
//! arrived), reordered (arrived after a later one) and duplicated.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::time::{interval_at, sleep, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::Args;

/// Marks relayed messages: `http://bench.invalid/r/<session>/<seq>/<send µs>`.
const URL_PREFIX: &str = "http://bench.invalid/r/";

/// The message a session's visitor relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Relayed {
    /// `url` (SPA navigation), received as a `visitor_update`.
    Url,
    /// `mirror` (page content), received as `mirror`.
    Mirror,
}

impl Relayed {
    /// The visitor's frame for message `marked`.
    fn frame(self, marked: &str) -> String {
        match self {
            Relayed::Url => json!({"type": "url", "currentUrl": marked}),
            Relayed::Mirror => json!({"type": "mirror", "data": [["T", 1, marked]]}),
        }
        .to_string()
    }

    /// How the agent's frame starts, and what stands right before the marked text.
    fn received(self) -> (&'static str, &'static str) {
        match self {
            Relayed::Url => (
                r#"{"type":"visitor_update""#,
                r#""last_url":"http://bench.invalid/r/"#,
            ),
            Relayed::Mirror => (r#"{"type":"mirror""#, r#""http://bench.invalid/r/"#),
        }
    }
}
/// Says "no node" in [`Tab::node`].
pub const NO_NODE: usize = usize::MAX;

#[derive(Default)]
pub struct Counters {
    pub welcomed: AtomicUsize,
    pub open: AtomicUsize,
    pub failed: AtomicUsize,
    pub dropped_by_server: AtomicUsize,
    pub live_sessions: AtomicUsize,
    pub sent: AtomicU64,
    pub agent_frames: AtomicU64,
    pub agent_bytes: AtomicU64,
    /// Relaying is on while set (every numbered url is sent while it is).
    pub relaying: AtomicBool,
}

/// A server, or one node of a cluster, as the clients see it.
pub struct Node {
    pub ws: String,
    /// Cleared before the benchmark kills it: reconnects go elsewhere.
    pub alive: AtomicBool,
    /// Visitor sockets open on it now.
    pub sockets: AtomicUsize,
}

impl Node {
    pub fn new(host: &str) -> Node {
        Node {
            ws: format!("ws://{host}"),
            alive: AtomicBool::new(true),
            sockets: AtomicUsize::new(0),
        }
    }
}

pub struct Ctx {
    pub nodes: Vec<Node>,
    pub args: Args,
    pub start: Instant,
    pub c: Counters,
    pub stop: watch::Receiver<bool>,
    /// Visitors whose socket the server closed connect again (with the SDK's backoff).
    pub reconnect: bool,
}

impl Ctx {
    pub fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// `wanted` if it is alive, else the next node that is (as a load balancer would).
    fn pick(&self, wanted: usize) -> usize {
        let n = self.nodes.len();
        (0..n)
            .map(|i| (wanted + i) % n)
            .find(|i| self.nodes[*i].alive.load(Ordering::Relaxed))
            .unwrap_or(wanted)
    }

    /// Most urls one session sends (bounds every loop and buffer by count).
    pub fn max_relays(&self) -> u64 {
        (self.args.rate * (self.args.duration as f64 + 5.0)) as u64 + 10
    }
}

/// Where a visitor's socket goes: `first` mints its id (so owns it: a new visitor's
/// id is drawn in the slots of the node it connects to); when `node` differs, that
/// socket closes and the visitor's tab is held by `node`, bridged to its owner.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub first: usize,
    pub node: usize,
}

/// What the runner sees of a visitor's tab.
pub struct Tab {
    pub short_id: OnceLock<String>,
    /// The node its socket is on ([`NO_NODE`]: none now).
    pub node: AtomicUsize,
    /// µs since the start: its last welcome, and the last time the server closed it.
    pub welcomed_at: AtomicU64,
    pub lost_at: AtomicU64,
}

impl Default for Tab {
    fn default() -> Tab {
        Tab {
            short_id: OnceLock::new(),
            node: AtomicUsize::new(NO_NODE),
            welcomed_at: AtomicU64::new(0),
            lost_at: AtomicU64::new(0),
        }
    }
}

/// One session's link between its visitor and its agent.
pub struct SessionTrack {
    pub n: usize,
    /// Numbered urls its visitor sent (seq 1..=sent).
    pub sent: AtomicU64,
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

/// A visitor's id and the secret that proves it (from its first welcome).
type Ids = (String, String);

/// Opens a visitor's socket on `node` and waits for its welcome; with `gate`, as one of
/// at most that many doing so (the set-up; a reconnecting SDK waits for nobody).
async fn open_visitor(
    ctx: &Ctx,
    index: usize,
    node: usize,
    ids: Option<&Ids>,
    gate: Option<&Semaphore>,
) -> Result<(Socket, Value), String> {
    let hello = json!({
        "type": "hello", "protocol_version": 1, "api_key": ctx.args.public_key,
        "short_id": ids.map(|i| &i.0), "visitor_secret": ids.map(|i| &i.1),
        "connection": {"uniqueConnectionId": null, "currentUrl": format!("http://bench.invalid/page/{index}"),
            "screenWidth": 1280, "screenHeight": 800, "audioSupported": false, "hasFocus": true,
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
        "config": {},
    });
    let _permit = match gate {
        Some(gate) => Some(gate.acquire().await.map_err(|_| "stopped".to_string())?),
        None => None,
    };
    open(
        &format!("{}/ws/visitor", ctx.nodes[node].ws),
        &ctx.args.origin,
        hello,
    )
    .await
}

/// The SDK's reconnect delay after `attempt` failed attempts: a ceiling doubling from
/// its base up to its maximum, then full jitter between half and all of it.
fn backoff(attempt: u32) -> Duration {
    use covisit::core::client::{RECONNECT_BASE_MS, RECONNECT_MAX_MS};
    let ceiling = RECONNECT_BASE_MS
        .saturating_mul(1 << attempt.min(16))
        .min(RECONNECT_MAX_MS);
    Duration::from_millis(ceiling / 2 + rand::random::<u64>() % (ceiling / 2 + 1))
}

/// A session's visitor: its number's track, and where its id goes once it is welcomed.
pub type SessionPart = (Arc<SessionTrack>, oneshot::Sender<String>);

/// One visitor: connects as planned and holds its socket until stopped; with a
/// session it answers the request and relays numbered urls.
pub async fn visitor(
    ctx: Arc<Ctx>,
    index: usize,
    plan: Plan,
    tab: Arc<Tab>,
    gate: Arc<Semaphore>,
    session: Option<SessionPart>,
) {
    let fail = |e: String| {
        if ctx.c.failed.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("visitor {index}: {e}");
        }
    };
    let mut ids: Option<Ids> = None;
    if plan.first != plan.node {
        match open_visitor(&ctx, index, plan.first, None, Some(&gate)).await {
            Ok((mut ws, welcome)) => {
                ids = ids_of(&welcome);
                let _ = ws.close(None).await;
            }
            Err(e) => return fail(e),
        }
    }
    let (track, mut tell) = match session {
        Some((t, tx)) => (Some(t), Some(tx)),
        None => (None, None),
    };
    let mut stop = ctx.stop.clone();
    let mut attempt: u32 = 0;
    let mut seq: u64 = 0;
    let mut welcomed = false;
    loop {
        let node = ctx.pick(plan.node);
        let gate = (!welcomed).then_some(&*gate);
        match open_visitor(&ctx, index, node, ids.as_ref(), gate).await {
            Ok((ws, welcome)) => {
                attempt = 0;
                if ids.is_none() {
                    ids = ids_of(&welcome);
                }
                if let Some((short_id, _)) = &ids {
                    let _ = tab.short_id.set(short_id.clone());
                }
                tab.node.store(node, Ordering::Relaxed);
                tab.welcomed_at.store(ctx.micros(), Ordering::Relaxed);
                if !welcomed {
                    welcomed = true;
                    ctx.c.welcomed.fetch_add(1, Ordering::Relaxed);
                }
                if let (Some(tx), Some((short_id, _))) = (tell.take(), &ids) {
                    let _ = tx.send(short_id.clone());
                }
                ctx.c.open.fetch_add(1, Ordering::Relaxed);
                ctx.nodes[node].sockets.fetch_add(1, Ordering::Relaxed);
                let closed_by_server = hold(&ctx, ws, track.as_deref(), &mut seq).await;
                ctx.nodes[node].sockets.fetch_sub(1, Ordering::Relaxed);
                ctx.c.open.fetch_sub(1, Ordering::Relaxed);
                tab.node.store(NO_NODE, Ordering::Relaxed);
                if !closed_by_server || *ctx.stop.borrow() {
                    return;
                }
                tab.lost_at.store(ctx.micros(), Ordering::Relaxed);
                ctx.c.dropped_by_server.fetch_add(1, Ordering::Relaxed);
            }
            // A visitor that was never welcomed gives up (bounded set-up).
            Err(e) if !welcomed => return fail(e),
            Err(_) => {}
        }
        if !ctx.reconnect {
            return;
        }
        let delay = backoff(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = stop.changed() => return,
            _ = sleep(delay) => {}
        }
    }
}

fn ids_of(welcome: &Value) -> Option<Ids> {
    Some((
        welcome["short_id"].as_str()?.to_string(),
        welcome["visitor_secret"].as_str()?.to_string(),
    ))
}

/// Holds a welcomed socket: heartbeats; with a session, answers it and relays. True
/// when the server closed it (not the benchmark).
async fn hold(ctx: &Ctx, ws: Socket, track: Option<&SessionTrack>, seq: &mut u64) -> bool {
    let (mut sink, mut stream) = ws.split();
    let hb_period = Duration::from_secs(ctx.args.heartbeat_seconds.max(1));
    // Spread the heartbeats over the period.
    let offset = Duration::from_millis(rand::random::<u64>() % hb_period.as_millis() as u64);
    let mut heartbeat = interval_at(tokio::time::Instant::now() + offset, hb_period);
    let relay_period = Duration::from_secs_f64(1.0 / ctx.args.rate.max(0.001));
    let mut relay = interval_at(tokio::time::Instant::now() + relay_period, relay_period);
    relay.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stop = ctx.stop.clone();
    let mut active = false;
    let max_relays = ctx.max_relays();
    loop {
        tokio::select! {
            _ = stop.changed() => return false,
            _ = heartbeat.tick() => {
                if sink.send(Message::text(r#"{"type":"heartbeat"}"#)).await.is_err() { return true }
            }
            _ = relay.tick(), if track.is_some() && active => {
                let Some(track) = track else { continue };
                if !ctx.c.relaying.load(Ordering::Relaxed) || *seq >= max_relays { continue }
                *seq += 1;
                let marked = format!("{URL_PREFIX}{}/{}/{}", track.n, *seq, ctx.micros());
                let frame = ctx.args.relay.frame(&marked);
                if sink.send(Message::text(frame)).await.is_err() { return true }
                track.sent.store(*seq, Ordering::Relaxed);
                ctx.c.sent.fetch_add(1, Ordering::Relaxed);
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if track.is_some() {
                        if t.starts_with(r#"{"type":"session_request""#) {
                            if sink.send(Message::text(r#"{"type":"authorize"}"#)).await.is_err() { return true }
                        } else if t.starts_with(r#"{"type":"session_start""#)
                            || t.starts_with(r#"{"type":"session_continue""#) {
                            active = true;
                        } else if t.starts_with(r#"{"type":"session_end""#) {
                            active = false;
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return true,
            }
        }
    }
}

/// What one agent saw of its session.
#[derive(Default)]
pub struct AgentReport {
    /// Visitor send → agent receive of each numbered url's first arrival (µs).
    pub latencies: Vec<u32>,
    /// Distinct numbered urls received.
    pub received: u64,
    /// Urls that arrived after a later one.
    pub reordered: u64,
    /// Urls that arrived again.
    pub duplicated: u64,
    /// The session went live, and later ended (with a communication disconnected
    /// as `transport.failure`: its owner failed).
    pub live: bool,
    pub ended: bool,
    pub transport_failure: bool,
    /// The server closed this agent's socket.
    pub closed: bool,
}

/// One agent socket on `node`: asks its visitor for a session and checks what it
/// relays.
pub async fn agent(
    ctx: Arc<Ctx>,
    n: usize,
    node: usize,
    gate: Arc<Semaphore>,
    short_id: oneshot::Receiver<String>,
) -> AgentReport {
    let mut report = AgentReport::default();
    let Ok(Ok(short_id)) = timeout(Duration::from_secs(300), short_id).await else {
        eprintln!("agent {n}: its visitor never connected");
        return report;
    };
    let hello = json!({"type": "hello", "protocol_version": 1, "secret_key": ctx.args.secret_key,
        "name": format!("Bench agent {n}"), "external_id": format!("bench-{n}")});
    let opened = {
        let Ok(_permit) = gate.acquire().await else {
            return report;
        };
        open(
            &format!("{}/ws/agent", ctx.nodes[node].ws),
            &ctx.args.origin,
            hello,
        )
        .await
    };
    let mut ws = match opened {
        Ok((ws, _)) => ws,
        Err(e) => {
            eprintln!("agent {n}: {e}");
            return report;
        }
    };
    let request = json!({"type": "request_session", "short_id": short_id, "found_by": "search"});
    if ws.send(Message::text(request.to_string())).await.is_err() {
        return report;
    }
    let mut stop = ctx.stop.clone();
    let mine = format!("{n}/");
    let (kind, key) = ctx.args.relay.received();
    let max = ctx.max_relays();
    // seen[seq] for seq in 1..=max.
    let mut seen = vec![false; max as usize + 1];
    let mut highest = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = ws.next() => {
                let t = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => { report.closed = true; break }
                };
                let now = ctx.micros();
                ctx.c.agent_frames.fetch_add(1, Ordering::Relaxed);
                ctx.c.agent_bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                if t.starts_with(kind) {
                    let Some(at) = t.find(key) else { continue };
                    let rest = &t[at + key.len()..];
                    let Some(rest) = rest.strip_prefix(mine.as_str()) else { continue };
                    // <seq>/<send µs>"
                    let mut parts = rest.split('"').next().unwrap_or_default().split('/');
                    let seq: Option<u64> = parts.next().and_then(|s| s.parse().ok());
                    let sent: Option<u64> = parts.next().and_then(|s| s.parse().ok());
                    let (Some(seq), Some(sent)) = (seq, sent) else { continue };
                    let Some(slot) = seen.get_mut(seq as usize) else { continue };
                    if *slot {
                        report.duplicated += 1;
                        continue;
                    }
                    *slot = true;
                    if seq < highest {
                        report.reordered += 1;
                    }
                    highest = highest.max(seq);
                    report.received += 1;
                    report.latencies.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                } else if t.starts_with(r#"{"type":"session_update""#) {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["session"]["visitor_id"] != short_id.as_str() {
                        continue;
                    }
                    if !report.live && v["status"] == "active" {
                        report.live = true;
                        ctx.c.live_sessions.fetch_add(1, Ordering::Relaxed);
                    } else if report.live && v["status"] == "ended" {
                        report.ended = true;
                        report.transport_failure = v["communications"]
                            .as_array()
                            .is_some_and(|c| c.iter().any(|c| c["disconnectType"] == "transport.failure"));
                    }
                }
            }
        }
    }
    report
}
