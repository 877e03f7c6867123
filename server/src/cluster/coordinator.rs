//! The coordinator: one look at a time (any node, under a transaction-scoped
//! PostgreSQL advisory lock) declares nodes
//! not heard from for `DEAD_AFTER_SECONDS` dead, bumping their generation so that
//! PostgreSQL refuses their writes from then on, gives their slots (and slots nobody
//! has) to the live nodes with the fewest, and asks nodes with more than their share
//! (or draining ones) to hand slots over to those with fewer. Every decision is one
//! transaction on PostgreSQL's clock; the nodes read the result from the table.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::Client;

use super::membership::DEAD_AFTER_SECONDS;
use super::{Cluster, NodeState};
use crate::bus::{BusMsg, To};
use crate::store::SLOTS;

/// The advisory lock a node takes for one look at the cluster ("covisit-coord").
const COORDINATOR_LOCK: i64 = 0x0063_6f76_636f_6f72;
/// How often a node looks.
const TICK: Duration = Duration::from_millis(500);
/// At most this many handovers asked for at once (moving slots is gentle).
const MAX_PENDING_HANDOVERS: usize = 32;

/// Coordinates, a look at a time, until the node is fenced or leaves. Every node
/// runs this; a transaction-scoped advisory lock lets one look at a time through. A
/// session-scoped lock would let a paused coordinator (alive to PostgreSQL, its
/// connection open) keep the role and stop the cluster from replacing anyone; a
/// transaction's lock and rows go when the transaction does, and the server ends a
/// transaction left idle (`idle_in_transaction_session_timeout`, `store::pg`).
pub async fn run(c: Cluster) {
    loop {
        if c.state() == NodeState::Fenced {
            return;
        }
        match look(&c).await {
            Ok(true) => {
                c.0.bus.send(To::All, &BusMsg::SlotsChanged, "");
                super::membership::refresh_soon(&c);
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "coordinator: no look this time"),
        }
        tokio::time::sleep(TICK).await;
    }
}

/// One look, if no other node is looking. True when the table changed.
async fn look(c: &Cluster) -> Result<bool, String> {
    let mut client = c.0.pool.get().await.map_err(|e| e.to_string())?;
    tick(&mut client).await
}

/// One look at the cluster. True when the table changed.
async fn tick(client: &mut Client) -> Result<bool, String> {
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.batch_execute("SET LOCAL lock_timeout = '2s'")
        .await
        .map_err(|e| e.to_string())?;
    let ours: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&COORDINATOR_LOCK])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if !ours {
        return Ok(false); // another node is looking
    }
    // Dead: not heard from in time. Their generation moves, so their writes fail.
    let dead = tx
        .query(
            "UPDATE cluster_nodes SET state = 'dead', generation = generation + 1
             WHERE state IN ('up', 'draining')
               AND heartbeat_at < now() - make_interval(secs => $1::float8)
             RETURNING node_id",
            &[&(DEAD_AFTER_SECONDS as f64)],
        )
        .await
        .map_err(|e| e.to_string())?;
    for r in &dead {
        let id: String = r.get(0);
        tracing::warn!(node = %id, "coordinator: node declared dead (fenced)");
    }
    let nodes = tx
        .query(
            "SELECT node_id, state FROM cluster_nodes
             WHERE state IN ('up', 'draining')
               AND heartbeat_at > now() - make_interval(secs => $1::float8)",
            &[&(DEAD_AFTER_SECONDS as f64)],
        )
        .await
        .map_err(|e| e.to_string())?;
    let up: Vec<String> = nodes
        .iter()
        .filter(|r| r.get::<_, String>(1) == "up")
        .map(|r| r.get(0))
        .collect();
    let alive: Vec<String> = nodes.iter().map(|r| r.get(0)).collect();
    if up.is_empty() {
        tx.commit().await.map_err(|e| e.to_string())?;
        return Ok(!dead.is_empty());
    }
    let slots = tx
        .query(
            "SELECT slot, node_id, handover_to FROM cluster_slots ORDER BY slot FOR UPDATE",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut owners: Vec<(i16, Option<String>, Option<String>)> = slots
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut changed = !dead.is_empty();
    // Counts of the nodes that take slots.
    let mut count: BTreeMap<String, usize> = up.iter().map(|n| (n.clone(), 0)).collect();
    for (_, owner, _) in &owners {
        if let Some(n) = owner.as_ref().and_then(|o| count.get_mut(o)) {
            *n += 1;
        }
    }
    // Orphans (no owner, or a dead one): to the live node with the fewest.
    for (slot, owner, handover) in owners.iter_mut() {
        if owner.as_ref().is_some_and(|o| alive.contains(o)) {
            continue;
        }
        let Some(to) = fewest(&count) else { break };
        *count.entry(to.clone()).or_default() += 1;
        tx.execute(
            "UPDATE cluster_slots SET node_id = $1, handover_to = NULL, generation = generation + 1
             WHERE slot = $2",
            &[&to, slot],
        )
        .await
        .map_err(|e| e.to_string())?;
        *owner = Some(to);
        *handover = None;
        changed = true;
    }
    // Handovers: draining nodes give all, others what is above their share.
    let share = usize::from(SLOTS).div_ceil(up.len());
    let pending = owners.iter().filter(|(_, _, h)| h.is_some()).count();
    let mut budget = MAX_PENDING_HANDOVERS.saturating_sub(pending);
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    for (_, owner, handover) in &owners {
        if let (Some(o), None) = (owner, handover) {
            *held.entry(o.clone()).or_default() += 1;
        }
    }
    for (slot, owner, handover) in owners.iter_mut() {
        if budget == 0 {
            break;
        }
        let (Some(o), None) = (owner.as_ref(), handover.as_ref()) else {
            continue;
        };
        let draining = !up.contains(o);
        let over = held.get(o).copied().unwrap_or(0) > share;
        if !(draining || over) {
            continue;
        }
        let Some(to) = fewest(&count).filter(|to| to != o) else {
            continue;
        };
        if !draining && count.get(&to).copied().unwrap_or(0) + 1 >= share {
            continue; // it would only move the imbalance
        }
        tx.execute(
            "UPDATE cluster_slots SET handover_to = $1 WHERE slot = $2",
            &[&to, slot],
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some(h) = held.get_mut(o) {
            *h -= 1;
        }
        *count.entry(to.clone()).or_default() += 1;
        if let Some(n) = count.get_mut(o) {
            *n = n.saturating_sub(1);
        }
        *handover = Some(to);
        budget -= 1;
        changed = true;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(changed)
}

/// The node with the fewest slots (ties: the lowest id).
fn fewest(count: &BTreeMap<String, usize>) -> Option<String> {
    count
        .iter()
        .min_by_key(|(id, n)| (**n, id.parse::<u64>().unwrap_or(u64::MAX)))
        .map(|(id, _)| id.clone())
}
