//! `--cluster N`: a throwaway PostgreSQL (fsync on) and Redis on loopback, N nodes of
//! `covisit-server` sharing them, visitors spread over the nodes, and sessions of
//! three kinds, named by where things are (the owner is the node that runs the
//! visitor: the owner of its slot in PostgreSQL's `cluster_slots`):
//! - same-node: the visitor's tab and the agent on the owner;
//! - cross-node: the tab on the owner, the agent on another node (the owner's frames
//!   reach the agent's node over Redis);
//! - bridged: the tab on a node that is not the owner (its frames go to the owner over
//!   Redis), the agent on a third node (and over Redis again).
//!
//! A third of the other visitors keep a bridged tab too. A new visitor's id is drawn
//! in the slots of the node it connects to, so a bridged tab is made as a returning
//! visitor is: a first socket on the owner-to-be gets the id, the kept one goes
//! elsewhere. Every classification is checked against PostgreSQL's table, not assumed.
//!
//! `--kill`: after `--kill-after` seconds of relaying, kill -9 the last node; measure
//! how long until PostgreSQL's table gives its slots to live nodes, how long the
//! visitors that lost their socket take to be welcomed again (reconnecting as the SDK
//! does, to a live node), and whether any visitor is owned twice; sessions that did
//! not involve the killed node keep relaying and are counted.
//!
//! Nothing here reaches beyond loopback; every wait is bounded; the nodes, PostgreSQL
//! and Redis are stopped and their folders deleted however the run ends.

#[path = "../../../tests/common/pg.rs"]
mod pg;
#[path = "../../../tests/common/redis.rs"]
mod redis;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::sleep;

use crate::client::{AgentReport, Counters, Ctx, Node, Plan, Relayed, Tab, NO_NODE};
use crate::phases::{self, Relay};
use crate::process::{self, cpu_percent, mb, memory_kb, ServerSpec, Spawned};
use crate::Args;

/// Slots of visitors (`store::slot_of`: the first byte of SHA-256 of the id).
const SLOTS: usize = 256;
/// The re-owning time the issue asks for.
const REOWN_TARGET: Duration = Duration::from_secs(15);
/// How long after a kill reconnections are waited for.
const RECOVERY_WAIT: Duration = Duration::from_secs(60);

fn slot_of(short_id: &str) -> usize {
    use sha2::{Digest, Sha256};
    usize::from(Sha256::digest(short_id.as_bytes())[0])
}

/// Starts PostgreSQL and Redis (their start blocks, so before the runtime's work), runs
/// the cluster benchmark, and stops everything. Ok(true) when every target was met.
pub fn main(runtime: &tokio::runtime::Runtime, args: Args, nodes: usize) -> Result<bool, String> {
    if nodes < 2 {
        return Err("--cluster needs 2 nodes or more".into());
    }
    // The engines' helpers panic with their log when they cannot start.
    let pg = std::panic::catch_unwind(pg::PgServer::start_durable)
        .map_err(|_| "PostgreSQL did not start (see above)".to_string())?;
    let redis = std::panic::catch_unwind(redis::RedisServer::start)
        .map_err(|_| "Redis did not start (see above)".to_string())?;
    let engines = Engines {
        pg_url: pg.url(),
        redis_url: redis.url(),
        pg_pid: pg.pid(),
        redis_pid: redis.pid(),
    };
    // Ctrl-C drops the run (its nodes are killed), then the engines here.
    runtime.block_on(async {
        tokio::select! {
            r = run(args, nodes, engines) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    })
}

struct Engines {
    pg_url: String,
    redis_url: String,
    pg_pid: Option<u32>,
    redis_pid: Option<u32>,
}

/// The kinds of session (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Same,
    Cross,
    Bridged,
}

const CLASSES: [(Class, &str); 3] = [
    (Class::Same, "same-node"),
    (Class::Cross, "cross-node"),
    (Class::Bridged, "bridged"),
];

/// Where each visitor's sockets go, and each session's agent. Session k (visitor k)
/// is of class k mod 3, its owner node (k / 3) mod n, so each class spreads over the
/// nodes; the other visitors go round the nodes, a third of them bridged to the next.
fn plan(visitors: usize, sessions: usize, n: usize) -> (Vec<Plan>, Vec<usize>) {
    let mut plans = Vec::with_capacity(visitors);
    let mut agents = Vec::with_capacity(sessions);
    for i in 0..visitors {
        if i < sessions {
            let owner = (i / 3) % n;
            let (node, agent) = match CLASSES[i % 3].0 {
                Class::Same => (owner, owner),
                Class::Cross => (owner, (owner + 1) % n),
                Class::Bridged => ((owner + 1) % n, (owner + 2) % n),
            };
            plans.push(Plan { first: owner, node });
            agents.push(agent);
        } else {
            let owner = i % n;
            let bridged = (i / n) % 3 == 2;
            let node = if bridged { (owner + 1) % n } else { owner };
            plans.push(Plan { first: owner, node });
        }
    }
    (plans, agents)
}

/// The benchmark's view of PostgreSQL.
struct Db {
    client: tokio_postgres::Client,
    /// Node number in PostgreSQL → index of our nodes.
    ids: Vec<String>,
}

/// `cluster_slots` and `cluster_nodes` as read at one moment.
#[derive(Clone, PartialEq, Eq)]
struct Table {
    /// Slot → the index of its owner among our nodes, when it has one that is up.
    owner: Vec<Option<usize>>,
    /// Slots asked to move (handover pending).
    handovers: usize,
    /// Our nodes' states (`up`, `draining`, `dead`).
    states: Vec<String>,
}

impl Table {
    fn slots_of(&self, node: usize) -> usize {
        self.owner.iter().filter(|o| **o == Some(node)).count()
    }

    fn owner_of(&self, short_id: &str) -> Option<usize> {
        self.owner[slot_of(short_id)]
    }
}

impl Db {
    async fn connect(url: &str, ids: Vec<String>) -> Result<Db, String> {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Db { client, ids })
    }

    async fn table(&self) -> Result<Table, String> {
        let err = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
        let nodes = self
            .client
            .query("SELECT node_id, state FROM cluster_nodes", &[])
            .await
            .map_err(err)?;
        let states: Vec<String> = self
            .ids
            .iter()
            .map(|id| {
                nodes
                    .iter()
                    .find(|r| r.get::<_, String>(0) == *id)
                    .map_or("absent".to_string(), |r| r.get(1))
            })
            .collect();
        let rows = self
            .client
            .query(
                "SELECT slot, node_id, handover_to IS NOT NULL FROM cluster_slots",
                &[],
            )
            .await
            .map_err(err)?;
        let mut t = Table {
            owner: vec![None; SLOTS],
            handovers: 0,
            states,
        };
        for r in rows {
            let slot = r.get::<_, i16>(0) as usize;
            let node: Option<String> = r.get(1);
            let owner = node
                .and_then(|n| self.ids.iter().position(|id| *id == n))
                .filter(|i| t.states[*i] == "up");
            if let Some(o) = t.owner.get_mut(slot) {
                *o = owner;
            }
            if r.get::<_, bool>(2) {
                t.handovers += 1;
            }
        }
        Ok(t)
    }
}

/// Waits, at most 60 s, until every node's /healthz is ok and PostgreSQL's table has
/// given every slot to a node that is up, each node some, none being handed over, and
/// the same for 2 s; then the nodes' next reading of it (twice a second).
async fn settle(db: &Db, hosts: &[String]) -> Result<Table, String> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60);
    let mut stable: Option<(Table, Instant)> = None;
    loop {
        let mut healthy = true;
        for host in hosts {
            healthy &= matches!(process::http_get(host, "/healthz").await, Some((200, b)) if b.contains("\"ok\""));
        }
        let t = db.table().await?;
        let complete = t.owner.iter().all(Option::is_some)
            && t.handovers == 0
            && (0..hosts.len()).all(|n| t.slots_of(n) > 0);
        if healthy && complete {
            match &stable {
                Some((same, since)) if *same == t => {
                    if since.elapsed() >= Duration::from_secs(2) {
                        sleep(Duration::from_millis(1200)).await;
                        println!(
                            "cluster settled in {:.1} s: slots {}",
                            t0.elapsed().as_secs_f64(),
                            (0..hosts.len())
                                .map(|n| format!("node {} {}", n + 1, t.slots_of(n)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        return Ok(t);
                    }
                }
                _ => stable = Some((t, Instant::now())),
            }
        } else {
            stable = None;
        }
        if Instant::now() > deadline {
            return Err(
                "the cluster did not settle in 60 s (healthz, or slots without a live owner)"
                    .into(),
            );
        }
        sleep(Duration::from_millis(250)).await;
    }
}

/// CPU readings at one moment: per node, this benchmark, PostgreSQL (all its
/// processes), Redis, the machine.
struct Cpu {
    nodes: Vec<Option<f64>>,
    bench: Option<f64>,
    pg: Option<f64>,
    redis: Option<f64>,
    machine: Option<(u64, u64)>,
    at: Instant,
}

impl Cpu {
    fn read(procs: &[Spawned], engines: &Engines) -> Cpu {
        Cpu {
            nodes: procs
                .iter()
                .map(|p| process::cpu_seconds(p.pid()))
                .collect(),
            bench: process::cpu_seconds(std::process::id()),
            pg: engines.pg_pid.and_then(process::tree_cpu_seconds),
            redis: engines.redis_pid.and_then(process::cpu_seconds),
            machine: process::machine_ticks(),
            at: Instant::now(),
        }
    }
}

/// One node's figures as its /metrics and /proc give them.
struct NodeRow {
    owned: Option<f64>,
    bridged: Option<f64>,
    bus_out: Option<f64>,
    bus_in: Option<f64>,
    rss_kb: Option<u64>,
    peak_kb: Option<u64>,
    /// Its batch writer's transactions (group commits) on PostgreSQL.
    commits: process::Histogram,
}

async fn node_rows(hosts: &[String], procs: &[Spawned], alive: &[bool]) -> Vec<Option<NodeRow>> {
    let mut rows = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        if !alive[i] {
            rows.push(None);
            continue;
        }
        let m = process::scrape(host).await.unwrap_or_default();
        let v = |name: &str| process::value(&m, name);
        let (peak_kb, rss_kb) = memory_kb(procs[i].pid());
        rows.push(Some(NodeRow {
            owned: v("covisit_owned_visitors"),
            bridged: v("covisit_bridged_sockets"),
            bus_out: v("covisit_bus_published_total"),
            bus_in: v("covisit_bus_received_total"),
            rss_kb,
            peak_kb,
            commits: process::Histogram::read(&m, "covisit_store_commit_seconds"),
        }));
    }
    rows
}

/// Whether any visitor is owned by two nodes, at a quiet moment: for each live node,
/// the visitors its /metrics says it owns (online, in its hub) against those of the
/// benchmark's open tabs whose slot PostgreSQL gives to it. A visitor held by a node
/// that is not its owner makes that node's count exceed (a duplicate owner); one its
/// owner does not hold makes it fall short (unowned). Read again until PostgreSQL's
/// table and the tabs did not change across the reading.
struct OwnerCheck {
    /// Per node: (owned by /metrics, owned by the table and our tabs, bridged by
    /// /metrics, bridged by our tabs).
    per_node: Vec<Option<(u64, u64, u64, u64)>>,
    duplicates: u64,
    unowned: u64,
}

async fn owner_check(db: &Db, ctx: &Ctx, tabs: &[Arc<Tab>]) -> Result<OwnerCheck, String> {
    let snapshot = || -> Vec<(usize, Option<String>)> {
        tabs.iter()
            .map(|t| (t.node.load(Ordering::Relaxed), t.short_id.get().cloned()))
            .collect()
    };
    for _ in 0..10 {
        let (t1, s1) = (db.table().await?, snapshot());
        let mut metrics = Vec::new();
        for node in &ctx.nodes {
            let host = node.ws.trim_start_matches("ws://");
            metrics.push(if node.alive.load(Ordering::Relaxed) {
                process::scrape(host).await
            } else {
                None
            });
        }
        let (t2, s2) = (db.table().await?, snapshot());
        if t1 != t2 || s1 != s2 {
            sleep(Duration::from_millis(300)).await;
            continue;
        }
        let n = ctx.nodes.len();
        let (mut owned, mut bridged) = (vec![0u64; n], vec![0u64; n]);
        for (node, id) in &s1 {
            let (Some(id), true) = (id, *node != NO_NODE) else {
                continue;
            };
            if let Some(o) = t1.owner_of(id) {
                owned[o] += 1;
                if o != *node {
                    bridged[*node] += 1;
                }
            }
        }
        let mut check = OwnerCheck {
            per_node: Vec::new(),
            duplicates: 0,
            unowned: 0,
        };
        for (i, m) in metrics.iter().enumerate() {
            let Some(m) = m else {
                check.per_node.push(None);
                continue;
            };
            let said = |name| process::value(m, name).unwrap_or(0.0) as u64;
            let (o, b) = (
                said("covisit_owned_visitors"),
                said("covisit_bridged_sockets"),
            );
            check.duplicates += o.saturating_sub(owned[i]);
            check.unowned += owned[i].saturating_sub(o);
            check.per_node.push(Some((o, owned[i], b, bridged[i])));
        }
        return Ok(check);
    }
    Err("the slot table or the tabs kept changing; no owner check".into())
}

/// What a kill measured.
struct Kill {
    node: usize,
    /// Since the kill: declared dead, and its slots all owned by live nodes again.
    dead_after: Option<Duration>,
    reowned_after: Option<Duration>,
    /// Per [`TAB_GROUPS`]: reconnect times (µs since the kill) and how many tabs are
    /// not back.
    groups: [(Vec<u32>, usize); 4],
    /// Per [`Involved`] (but `No`): sessions; of them, those whose agent was on a
    /// live node; of those, how many their agent saw end, and end with
    /// `transport.failure`.
    sessions: [(usize, usize, usize, usize); 3],
}

/// The tabs a kill closes, by where they were and who owned them just before.
const TAB_GROUPS: [&str; 4] = [
    "owned by it, tab on it",
    "owned by it, tab on a live node",
    "tab on it, owned by a live node",
    "others (neither)",
];

/// How a session involved the killed node, just before the kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Involved {
    /// It owned the visitor (the session ends: transport.failure).
    Owner,
    /// It held the agent's socket.
    Agent,
    /// It held the visitor's tab only (the owner and the agent live on).
    Tab,
    No,
}

/// Polls PostgreSQL every 50 ms (at most [`RECOVERY_WAIT`]) for the killed node's
/// death and the re-owning of its slots.
async fn watch_reowning(
    db: Arc<Db>,
    killed: usize,
    at: Instant,
) -> (Option<Duration>, Option<Duration>) {
    let mut dead = None;
    while at.elapsed() < RECOVERY_WAIT {
        if let Ok(t) = db.table().await {
            if dead.is_none() && t.states[killed] == "dead" {
                dead = Some(at.elapsed());
            }
            let orphans = t.owner.iter().filter(|o| o.is_none()).count();
            if dead.is_some() && orphans == 0 && t.slots_of(killed) == 0 && t.handovers == 0 {
                return (dead, Some(at.elapsed()));
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    (dead, None)
}

async fn run(args: Args, n: usize, engines: Engines) -> Result<bool, String> {
    // The nodes, one after the other (the first creates the demo account).
    let mut procs: Vec<Spawned> = Vec::with_capacity(n);
    let mut hosts = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let s = process::spawn_server(ServerSpec {
            bin: args.server_bin.clone(),
            database: Some(engines.pg_url.clone()),
            args: vec!["--bus".into(), engines.redis_url.clone()],
            // A node asked to stop (Ctrl-C) hands over for 3 s at most.
            env: vec![("COVISIT_DRAIN_SECONDS".into(), "3".into())],
            label: format!("[node {}]", i + 1),
        })?;
        ids.push(
            s.node_id
                .ok_or("a node did not log its number (RUST_LOG must keep covisit_server=info)")?,
        );
        hosts.push(s.addr);
        procs.push(s.process);
    }
    let sessions = args.sessions.min(args.visitors);
    println!(
        "covisit-loadbench --cluster {n}: PostgreSQL {} (fsync on), Redis {}; {} visitors, {sessions} sessions relaying {:?} at {}/s for {} s{}",
        engines.pg_url.rsplit('@').next().unwrap_or_default(),
        engines.redis_url.trim_start_matches("redis://"),
        args.visitors,
        args.relay,
        args.rate,
        args.duration,
        if args.kill { format!(", kill -9 of node {n} after {} s", args.kill_after) } else { String::new() }
    );
    for i in 0..n {
        println!(
            "  node {}: {} (pid {}, cluster node id {})",
            i + 1,
            hosts[i],
            procs[i].pid(),
            ids[i]
        );
    }
    let db = Arc::new(Db::connect(&engines.pg_url, ids.clone()).await?);
    settle(&db, &hosts).await?;

    let (stop_tx, stop) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        nodes: hosts.iter().map(|h| Node::new(h)).collect(),
        start: Instant::now(),
        c: Counters::default(),
        stop,
        reconnect: true,
        args,
    });
    let (plans, agent_nodes) = plan(ctx.args.visitors, sessions, n);
    let mut visitors = phases::connect_visitors(&ctx, &plans, sessions).await;

    // Who owns whom, by PostgreSQL's table.
    let table = db.table().await?;
    let owner_of = |tab: &Tab| tab.short_id.get().and_then(|id| table.owner_of(id));
    let misplaced = visitors
        .tabs
        .iter()
        .zip(&plans)
        .filter(|(t, p)| t.short_id.get().is_some() && owner_of(t) != Some(p.first))
        .count();
    let bridged_tabs = visitors
        .tabs
        .iter()
        .filter(|t| {
            let node = t.node.load(Ordering::Relaxed);
            node != NO_NODE && owner_of(t).is_some_and(|o| o != node)
        })
        .count();
    println!(
        "  {bridged_tabs} of them bridged tabs (socket on a node that is not the owner){}",
        if misplaced > 0 {
            format!("; {misplaced} not owned by the node that minted their id (moved slots?)")
        } else {
            String::new()
        }
    );
    let classes: Vec<Option<Class>> = (0..sessions)
        .map(|k| {
            let tab = &visitors.tabs[k];
            let node = tab.node.load(Ordering::Relaxed);
            let owner = owner_of(tab)?;
            (node != NO_NODE).then_some(if node != owner {
                Class::Bridged
            } else if agent_nodes[k] == owner {
                Class::Same
            } else {
                Class::Cross
            })
        })
        .collect();
    let (agents, live) = phases::start_sessions(&ctx, &mut visitors, &agent_nodes).await;
    println!(
        "  {} (bridged: tab on another node than the owner, agent on a third node)",
        CLASSES
            .iter()
            .map(|(c, name)| format!(
                "{} {name}",
                classes.iter().filter(|k| **k == Some(*c)).count()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Relaying, measured over a fixed window; late arrivals get 2 s more.
    let rows0 = node_rows(&hosts, &procs, &vec![true; n]).await;
    let cpu0 = Cpu::read(&procs, &engines);
    ctx.c.relaying.store(true, Ordering::Relaxed);
    let mut kill = None;
    if ctx.args.kill {
        let after = Duration::from_secs(ctx.args.kill_after.min(ctx.args.duration));
        sleep(after).await;
        let k = n - 1;
        // Where each tab was, and who owned it, just before.
        let table = db.table().await?;
        let before: Vec<(usize, Option<usize>)> = visitors
            .tabs
            .iter()
            .map(|t| {
                (
                    t.node.load(Ordering::Relaxed),
                    t.short_id.get().and_then(|id| table.owner_of(id)),
                )
            })
            .collect();
        let involved: Vec<Involved> = (0..sessions)
            .map(|s| match before[s] {
                (_, owner) if owner.is_none_or(|o| o == k) => Involved::Owner,
                _ if agent_nodes[s] == k => Involved::Agent,
                (node, _) if node == k => Involved::Tab,
                _ => Involved::No,
            })
            .collect();
        println!(
            "--- kill -9 node {} (pid {}) after {} s of relaying",
            k + 1,
            procs[k].pid(),
            after.as_secs()
        );
        ctx.nodes[k].alive.store(false, Ordering::Relaxed);
        let at = Instant::now();
        let kill_micros = ctx.micros();
        procs[k].kill();
        let watcher = tokio::spawn(watch_reowning(db.clone(), k, at));
        kill = Some((k, at, kill_micros, before, involved, watcher));
        sleep(Duration::from_secs(ctx.args.duration).saturating_sub(after)).await;
    } else {
        sleep(Duration::from_secs(ctx.args.duration)).await;
    }
    ctx.c.relaying.store(false, Ordering::Relaxed);
    let cpu1 = Cpu::read(&procs, &engines);
    let window = cpu1.at.duration_since(cpu0.at).as_secs_f64();
    let alive: Vec<bool> = ctx
        .nodes
        .iter()
        .map(|x| x.alive.load(Ordering::Relaxed))
        .collect();
    let rows1 = node_rows(&hosts, &procs, &alive).await;
    sleep(Duration::from_secs(2)).await;

    // After a kill: the re-owning, then every tab that lost its socket back (bounded).
    let mut kill_report = None;
    if let Some((k, at, kill_micros, before, involved, watcher)) = kill {
        let (dead_after, reowned_after) = watcher.await.unwrap_or((None, None));
        let lost_since_kill = |t: &Tab| t.lost_at.load(Ordering::Relaxed) >= kill_micros;
        while at.elapsed() < RECOVERY_WAIT
            && visitors
                .tabs
                .iter()
                .any(|t| lost_since_kill(t) && t.node.load(Ordering::Relaxed) == NO_NODE)
        {
            sleep(Duration::from_millis(100)).await;
        }
        sleep(Duration::from_secs(1)).await;
        let mut groups: [(Vec<u32>, usize); 4] = Default::default();
        for (t, (node, owner)) in visitors.tabs.iter().zip(&before) {
            let g = match (*owner == Some(k), *node == k) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) if lost_since_kill(t) => 3,
                (false, false) => continue,
            };
            let back = t.node.load(Ordering::Relaxed) != NO_NODE
                && t.welcomed_at.load(Ordering::Relaxed) > kill_micros
                && lost_since_kill(t);
            if back {
                let took = t.welcomed_at.load(Ordering::Relaxed) - kill_micros;
                groups[g].0.push(took.min(u64::from(u32::MAX)) as u32);
            } else {
                groups[g].1 += 1;
            }
        }
        for g in &mut groups {
            g.0.sort_unstable();
        }
        kill_report = Some((
            Kill {
                node: k,
                dead_after,
                reowned_after,
                groups,
                sessions: Default::default(),
            },
            involved,
        ));
    }
    let check = owner_check(&db, &ctx, &visitors.tabs).await;
    let held = ctx.c.open.load(Ordering::Relaxed);
    let dropped = ctx.c.dropped_by_server.load(Ordering::Relaxed);
    let sockets: Vec<usize> = ctx
        .nodes
        .iter()
        .map(|x| x.sockets.load(Ordering::Relaxed))
        .collect();
    let final_table = db.table().await?;

    // Stop every client (bounded), then sum up.
    let tracks = visitors.tracks.clone();
    let reports = phases::stop_all(stop_tx, agents, visitors).await;
    if let Some((k, involved)) = &mut kill_report {
        for (i, how) in [Involved::Owner, Involved::Agent, Involved::Tab]
            .iter()
            .enumerate()
        {
            let these: Vec<usize> = (0..sessions).filter(|s| involved[*s] == *how).collect();
            let watched: Vec<&AgentReport> = these
                .iter()
                .filter(|s| agent_nodes[**s] != k.node)
                .map(|s| &reports[*s])
                .collect();
            k.sessions[i] = (
                these.len(),
                watched.len(),
                watched.iter().filter(|r| r.ended).count(),
                watched.iter().filter(|r| r.transport_failure).count(),
            );
        }
    }
    let counted = |s: usize| match &kill_report {
        Some((_, involved)) => involved[s] == Involved::No,
        None => true,
    };
    let relay_of = |class: Option<Class>| {
        Relay::of(
            (0..sessions)
                .filter(|s| counted(*s) && (class.is_none() || classes[*s] == class))
                .map(|s| (&*tracks[s], &reports[s])),
        )
    };

    let mut out = String::new();
    let _ = writeln!(out, "---");
    let _ = writeln!(
        out,
        "per node, at the end of the relaying (sockets: the benchmark's visitor sockets on it now; owned, bridged: its /metrics; RSS: /proc; CPU and bus: during the {window:.1} s of relaying, 100% = one core)"
    );
    let _ = writeln!(
        out,
        "  {:<6} {:>7} {:>7} {:>7} {:>5} {:>7} {:>8} {:>5} {:>8} {:>8}",
        "node",
        "sockets",
        "owned",
        "bridged",
        "slots",
        "RSS MB",
        "peak MB",
        "CPU",
        "bus out/s",
        "bus in/s"
    );
    let fmt = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.0}"));
    for i in 0..n {
        let Some(r) = &rows1[i] else {
            let _ = writeln!(out, "  {:<6} killed", format!("{}", i + 1));
            continue;
        };
        let rate = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0}", (b - a) / window),
            _ => "?".into(),
        };
        let r0 = rows0[i].as_ref();
        let _ = writeln!(
            out,
            "  {:<6} {:>7} {:>7} {:>7} {:>5} {:>7} {:>8} {:>5} {:>8} {:>8}",
            i + 1,
            sockets[i],
            fmt(r.owned),
            fmt(r.bridged),
            final_table.slots_of(i),
            mb(r.rss_kb),
            mb(r.peak_kb),
            cpu_percent(cpu0.nodes[i], cpu1.nodes[i], window),
            rate(r0.and_then(|r| r.bus_out), r.bus_out),
            rate(r0.and_then(|r| r.bus_in), r.bus_in),
        );
    }
    let commits: Vec<String> = (0..n)
        .filter_map(|i| {
            let (r0, r1) = (rows0[i].as_ref()?, rows1[i].as_ref()?);
            let (count, mean, p99) = r1.commits.since(&r0.commits, 0.99);
            Some(format!(
                "node {} {:.0}/s, mean {:.1} ms, p99 <= {:.0} ms",
                i + 1,
                count / window,
                mean * 1000.0,
                p99 * 1000.0
            ))
        })
        .collect();
    let _ = writeln!(
        out,
        "  store commits (a node's batch writer on PostgreSQL; its news for other nodes waits for the batch before it, except navigations): {}",
        commits.join("; ")
    );
    let machine = match (cpu0.machine, cpu1.machine) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            format!(
                "{:.0}% of {cores} cores busy (all processes, other work on the machine too)",
                (b1 - b0) as f64 / (t1 - t0) as f64 * 100.0
            )
        }
        _ => "?".into(),
    };
    let _ = writeln!(
        out,
        "  cpu: loadbench {}, PostgreSQL {}, Redis {}; machine {machine}",
        cpu_percent(cpu0.bench, cpu1.bench, window),
        cpu_percent(cpu0.pg, cpu1.pg, window),
        cpu_percent(cpu0.redis, cpu1.redis, window),
    );
    let _ = writeln!(
        out,
        "  visitor sockets held: {held} of {}, {dropped} closed by a server",
        ctx.args.visitors
    );
    let _ = writeln!(
        out,
        "relay of {} (visitor send -> its session's agent receive; lost: sent but never received, 2 s after the relaying){}",
        match ctx.args.relay {
            Relayed::Url => "url (navigation; to agents on other nodes in the owner's news)",
            Relayed::Mirror => "mirror (page content; to agents on other nodes as it is)",
        },
        if kill_report.is_some() { ", sessions that did not involve the killed node" } else { "" }
    );
    let _ = writeln!(
        out,
        "  {:<11} {:>8} {:>7} {:>8} {:>5} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "sessions",
        "count",
        "sent",
        "received",
        "lost",
        "reordered",
        "duplicated",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    let mut all = None;
    let mut p99 = [f64::NAN; 3];
    for (i, (class, name)) in CLASSES
        .iter()
        .map(|(c, n)| (Some(*c), *n))
        .chain([(None, "all")])
        .enumerate()
    {
        let r = relay_of(class);
        if i < 3 {
            p99[i] = r.p99();
        }
        let _ = writeln!(
            out,
            "  {:<11} {:>8} {:>7} {:>8} {:>5} {:>9} {:>10} {:>8.2} {:>8.2} {:>8.2}",
            name,
            r.sessions,
            r.sent,
            r.received,
            r.lost,
            r.reordered,
            r.duplicated,
            r.p50(),
            r.p99(),
            r.max()
        );
        if class.is_none() {
            all = Some(r);
        }
    }
    let all = all.unwrap_or_default();
    let mut targets: Vec<(String, bool)> = vec![
        (
            format!("0 lost ({})", all.lost),
            all.lost == 0 && all.sent > 0,
        ),
        (
            format!("0 reordered ({})", all.reordered),
            all.reordered == 0,
        ),
    ];
    match &check {
        Ok(c) => {
            let _ = writeln!(
                out,
                "owners (each live node's /metrics against PostgreSQL's slot table and the benchmark's open tabs, at a quiet moment): duplicate owners {}, unowned visitors {}",
                c.duplicates, c.unowned
            );
            for (i, row) in c.per_node.iter().enumerate() {
                if let Some((o, eo, b, eb)) = row {
                    let _ = writeln!(
                        out,
                        "  node {}: owns {o} (table: {eo}), holds {b} bridged tabs (tabs: {eb})",
                        i + 1
                    );
                }
            }
            targets.push((
                format!("0 duplicate owners ({})", c.duplicates),
                c.duplicates == 0,
            ));
        }
        Err(e) => {
            let _ = writeln!(out, "owners: {e}");
            targets.push(("0 duplicate owners (not checked)".into(), false));
        }
    }
    match &kill_report {
        None => {
            let [same, cross, _] = p99;
            targets.push((
                format!("cross-node p99 {cross:.2} ms within 2x same-node p99 {same:.2} ms"),
                cross <= 2.0 * same,
            ));
            targets.push((
                format!(
                    "{held} of {} visitors held, {live} of {sessions} sessions live",
                    ctx.args.visitors
                ),
                held >= ctx.args.visitors && live >= sessions && dropped == 0,
            ));
        }
        Some((k, _)) => {
            let secs = |d: Option<Duration>| {
                d.map_or("never (60 s)".to_string(), |d| {
                    format!("{:.1} s", d.as_secs_f64())
                })
            };
            let _ = writeln!(
                out,
                "failover of node {} (times since the kill; PostgreSQL polled every 50 ms): declared dead after {}, its slots owned by live nodes after {}",
                k.node + 1,
                secs(k.dead_after),
                secs(k.reowned_after)
            );
            let _ = writeln!(
                out,
                "reconnects (tab lost -> welcomed again on a live node, SDK backoff; time since the kill):"
            );
            let mut everyone: Vec<u32> = Vec::new();
            let mut not_back = 0;
            for ((times, missing), name) in k.groups.iter().zip(TAB_GROUPS) {
                let p = |q| process::percentile(times, q) / 1000.0;
                let _ = writeln!(
                    out,
                    "  {name:<32} {:>5} back, {missing} not; p50 {:.2} s, p99 {:.2} s, max {:.2} s",
                    times.len(),
                    p(0.5),
                    p(0.99),
                    p(1.0)
                );
                everyone.extend(times);
                not_back += missing;
            }
            everyone.sort_unstable();
            let p99 = process::percentile(&everyone, 0.99) / 1000.0;
            let _ = writeln!(out, "  reconnect p99, all: {p99:.2} s");
            let [owner, agent, tab] = k.sessions;
            let _ = writeln!(
                out,
                "sessions that involved the killed node (not counted above): {} owned by it (of the {} whose agent was on a live node, {} ended, {} with transport.failure); {} with the agent on it; {} with only the tab on it ({} ended)",
                owner.0, owner.1, owner.2, owner.3, agent.0, tab.0, tab.2
            );
            targets.push((
                format!(
                    "re-owned within {} s ({})",
                    REOWN_TARGET.as_secs(),
                    secs(k.reowned_after)
                ),
                k.reowned_after.is_some_and(|d| d <= REOWN_TARGET),
            ));
            targets.push((
                format!("every lost tab back ({not_back} not)"),
                not_back == 0,
            ));
        }
    }
    let met = targets.iter().all(|(_, ok)| *ok);
    let _ = writeln!(out, "targets:");
    for (what, ok) in &targets {
        let _ = writeln!(out, "  {what}: {}", if *ok { "MET" } else { "NOT MET" });
    }
    let _ = writeln!(out, "all targets: {}", if met { "MET" } else { "NOT MET" });
    print!("{out}");
    Ok(met)
}
