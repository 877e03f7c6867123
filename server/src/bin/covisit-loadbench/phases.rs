//! The phases every run goes through, one server or a cluster: the visitors connect,
//! the agents start their sessions, everything stops, and what the agents saw sums up
//! into relay figures. Every wait is bounded.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

use crate::client::{self, AgentReport, Ctx, Plan, SessionTrack, Tab};
use crate::process::percentile;

/// The visitors' tasks and what the runner sees of them.
pub struct Visitors {
    pub tasks: Vec<JoinHandle<()>>,
    pub tabs: Vec<Arc<Tab>>,
    /// Session n's track (its visitor is visitor n).
    pub tracks: Vec<Arc<SessionTrack>>,
    /// Session n's visitor id, once its visitor is welcomed.
    ids: Vec<oneshot::Receiver<String>>,
}

/// Connects a visitor per plan (the first `sessions` of them in a session each) and
/// waits, at most 300 s, until each is welcomed or failed.
pub async fn connect_visitors(ctx: &Arc<Ctx>, plans: &[Plan], sessions: usize) -> Visitors {
    let t = Instant::now();
    let gate = Arc::new(Semaphore::new(ctx.args.connect_concurrency.max(1)));
    let mut v = Visitors {
        tasks: Vec::with_capacity(plans.len()),
        tabs: Vec::with_capacity(plans.len()),
        tracks: Vec::with_capacity(sessions),
        ids: Vec::with_capacity(sessions),
    };
    for (i, plan) in plans.iter().enumerate() {
        let session = (i < sessions).then(|| {
            let (tx, rx) = oneshot::channel();
            let track = Arc::new(SessionTrack {
                n: i,
                sent: Default::default(),
            });
            v.tracks.push(track.clone());
            v.ids.push(rx);
            (track, tx)
        });
        let tab = Arc::new(Tab::default());
        v.tabs.push(tab.clone());
        v.tasks.push(tokio::spawn(client::visitor(
            ctx.clone(),
            i,
            *plan,
            tab,
            gate.clone(),
            session,
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while ctx.c.welcomed.load(Ordering::Relaxed) + ctx.c.failed.load(Ordering::Relaxed)
        < plans.len()
        && Instant::now() < deadline
    {
        sleep(Duration::from_millis(100)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let welcomed = ctx.c.welcomed.load(Ordering::Relaxed);
    println!(
        "visitors connected: {welcomed} of {} in {secs:.1} s ({:.0}/s), {} failed",
        plans.len(),
        welcomed as f64 / secs,
        ctx.c.failed.load(Ordering::Relaxed)
    );
    v
}

/// Starts session n's agent on node `agent_nodes[n]` (a few at a time: each gets the
/// visitor list) and waits, at most 120 s, until the sessions are live.
pub async fn start_sessions(
    ctx: &Arc<Ctx>,
    visitors: &mut Visitors,
    agent_nodes: &[usize],
) -> (Vec<JoinHandle<AgentReport>>, usize) {
    let t = Instant::now();
    let gate = Arc::new(Semaphore::new(8));
    let ids = std::mem::take(&mut visitors.ids);
    let sessions = ids.len();
    let agents = ids
        .into_iter()
        .enumerate()
        .map(|(n, rx)| {
            let node = agent_nodes.get(n).copied().unwrap_or(0);
            tokio::spawn(client::agent(ctx.clone(), n, node, gate.clone(), rx))
        })
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
    (agents, live)
}

/// Stops every client and collects the agents' reports (session n's at n; waits of
/// 10 s at most per task).
pub async fn stop_all(
    stop: watch::Sender<bool>,
    agents: Vec<JoinHandle<AgentReport>>,
    visitors: Visitors,
) -> Vec<AgentReport> {
    let _ = stop.send(true);
    let mut reports = Vec::with_capacity(agents.len());
    for h in agents {
        reports.push(match timeout(Duration::from_secs(10), h).await {
            Ok(Ok(r)) => r,
            _ => AgentReport::default(),
        });
    }
    for h in visitors.tasks {
        let _ = timeout(Duration::from_secs(10), h).await;
    }
    reports
}

/// What a set of sessions relayed.
#[derive(Default)]
pub struct Relay {
    pub sessions: usize,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicated: u64,
    /// µs, sorted.
    pub latencies: Vec<u32>,
}

impl Relay {
    /// The sum over sessions (each its visitor's track and its agent's report).
    pub fn of<'a>(parts: impl IntoIterator<Item = (&'a SessionTrack, &'a AgentReport)>) -> Relay {
        let mut r = Relay::default();
        for (track, report) in parts {
            let sent = track.sent.load(Ordering::Relaxed);
            r.sessions += 1;
            r.sent += sent;
            r.received += report.received;
            r.lost += sent.saturating_sub(report.received);
            r.reordered += report.reordered;
            r.duplicated += report.duplicated;
            r.latencies.extend_from_slice(&report.latencies);
        }
        r.latencies.sort_unstable();
        r
    }

    pub fn p50(&self) -> f64 {
        percentile(&self.latencies, 0.50)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.latencies, 0.99)
    }

    pub fn max(&self) -> f64 {
        percentile(&self.latencies, 1.0)
    }
}
