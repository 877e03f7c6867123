//! A node's membership, all in PostgreSQL (its clock is the cluster's only clock):
//! registration (a new number and generation per start), a heartbeat every second
//! (refused once the generation moved: the node is fenced), the slot table read twice
//! a second (and at once when told), what changes in it mean for this node (slots
//! gained: recover their sessions from the store; slots of a dead node: its visitors
//! go offline here and bridged tabs reconnect), handovers of idle slots, and leaving.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;

use super::{Cluster, NodeState, Table};
use crate::bus::{home_of, BusMsg, NodeIdx, To};
use crate::hub::{ConnId, Slots};
use crate::store::{StoredSession, SLOTS};

/// How often the node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is dead to the coordinator (PostgreSQL's clock).
pub const DEAD_AFTER_SECONDS: i64 = 8;
/// A node that could not heartbeat for this long fences itself (before the others
/// take its slots: it must not serve what another node may own soon).
pub const SELF_FENCE_AFTER: Duration = Duration::from_secs(5);
/// How often the slot table is read.
const TABLE_EVERY: Duration = Duration::from_millis(500);

/// Registers a new node: its number (the high bits of its socket ids) and generation.
pub async fn register(pool: &Pool, address: &str) -> Result<(NodeIdx, i64), String> {
    let c = pool
        .get()
        .await
        .map_err(|e| format!("cannot reach PostgreSQL: {e}"))?;
    // A number no live node holds (the sequence cycles; dead rows are reused).
    for _ in 0..100 {
        let row = c
            .query_one("SELECT nextval('cluster_node_seq')", &[])
            .await
            .map_err(|e| format!("cannot register the node: {e}"))?;
        let n: i64 = row.get(0);
        let id = n.to_string();
        let taken = c
            .execute(
                "INSERT INTO cluster_nodes (node_id, generation, address, heartbeat_at, state)
                 VALUES ($1, 1, $2, now(), 'up')
                 ON CONFLICT (node_id) DO UPDATE SET generation = cluster_nodes.generation + 1,
                   address = excluded.address, heartbeat_at = now(), state = 'up'
                 WHERE cluster_nodes.state = 'dead'
                   OR cluster_nodes.heartbeat_at < now() - interval '1 hour'",
                &[&id, &address],
            )
            .await
            .map_err(|e| format!("cannot register the node: {e}"))?;
        if taken == 1 {
            let row = c
                .query_one(
                    "SELECT generation FROM cluster_nodes WHERE node_id = $1",
                    &[&id],
                )
                .await
                .map_err(|e| format!("cannot register the node: {e}"))?;
            let node = NodeIdx::try_from(n).map_err(|_| "node number out of range".to_string())?;
            return Ok((node, row.get(0)));
        }
    }
    Err("cannot register the node: no free node number".into())
}

/// Asks the membership loop to read the table now.
pub fn refresh_soon(c: &Cluster) {
    c.0.drained.notify_waiters();
    REFRESH.notify_one();
}

static REFRESH: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// The node's loop: heartbeat, table, handovers; until it is fenced or leaves.
pub async fn run(c: Cluster) {
    let mut last_beat = Instant::now();
    let mut next_beat = tokio::time::Instant::now();
    loop {
        if c.state() == NodeState::Fenced {
            return;
        }
        if tokio::time::Instant::now() >= next_beat {
            next_beat = tokio::time::Instant::now() + HEARTBEAT;
            match heartbeat(&c).await {
                Ok(true) => last_beat = Instant::now(),
                Ok(false) => {
                    c.fence("its generation moved (declared dead)").await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    if last_beat.elapsed() >= SELF_FENCE_AFTER {
                        c.fence("no heartbeat reached PostgreSQL").await;
                        return;
                    }
                }
            }
        }
        if let Err(e) = read_table(&c).await {
            tracing::warn!(error = %e, "cannot read the slot table");
        }
        if c.state() == NodeState::Up {
            release_handovers(&c, false).await;
        }
        tokio::select! {
            _ = REFRESH.notified() => {}
            _ = tokio::time::sleep(TABLE_EVERY) => {}
        }
    }
}

/// True while this node's generation is current.
async fn heartbeat(c: &Cluster) -> Result<bool, String> {
    let client = c.0.pool.get().await.map_err(|e| e.to_string())?;
    let id = c.0.node.to_string();
    let n = tokio::time::timeout(
        Duration::from_secs(2),
        client.execute(
            "UPDATE cluster_nodes SET heartbeat_at = now()
             WHERE node_id = $1 AND generation = $2 AND state <> 'dead'",
            &[&id, &c.0.generation],
        ),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(n == 1)
}

/// One row of `cluster_slots` as read.
struct SlotRow {
    owner: Option<NodeIdx>,
}

/// Reads the table and acts on what changed.
async fn read_table(c: &Cluster) -> Result<(), String> {
    let client = c.0.pool.get().await.map_err(|e| e.to_string())?;
    let nodes = client
        .query(
            "SELECT node_id FROM cluster_nodes
             WHERE state IN ('up', 'draining')
               AND heartbeat_at > now() - make_interval(secs => $1::float8)",
            &[&(DEAD_AFTER_SECONDS as f64)],
        )
        .await
        .map_err(|e| e.to_string())?;
    let alive: Vec<NodeIdx> = nodes
        .iter()
        .filter_map(|r| r.get::<_, String>(0).parse().ok())
        .collect();
    let rows = client
        .query("SELECT slot, node_id FROM cluster_slots ORDER BY slot", &[])
        .await
        .map_err(|e| e.to_string())?;
    let mut owners: Vec<Option<NodeIdx>> = vec![None; usize::from(SLOTS)];
    for r in &rows {
        let slot: i16 = r.get(0);
        let node: Option<String> = r.get(1);
        let row = SlotRow {
            owner: node
                .and_then(|n| n.parse::<NodeIdx>().ok())
                .filter(|n| alive.contains(n)),
        };
        if let Some(o) = owners.get_mut(slot as usize) {
            *o = row.owner;
        }
    }
    let old = {
        let mut t = c.0.table.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(
            &mut *t,
            Table {
                owners: owners.clone(),
                alive: alive.clone(),
            },
        )
    };
    apply_changes(c, &old, &Table { owners, alive }).await;
    Ok(())
}

/// What a new table means for this node.
async fn apply_changes(c: &Cluster, old: &Table, new: &Table) {
    let Some(hub) = c.hub() else { return };
    let me = c.0.node;
    let mine = |t: &Table| -> HashSet<u16> {
        (0..SLOTS)
            .filter(|s| t.owners.get(usize::from(*s)).copied().flatten() == Some(me))
            .collect()
    };
    let (was, now) = (mine(old), mine(new));
    if was != now || old.owners.is_empty() {
        hub.set_owned_slots(Some(now.iter().copied().collect()));
    }
    // Slots gained: whatever their old owner left live in the store ends (it failed,
    // or it handed over an idle slot: nothing live then).
    let gained: Vec<u16> = now.difference(&was).copied().collect();
    if !gained.is_empty() && !old.owners.iter().all(Option::is_none) {
        recover(c, &gained).await;
    } else if !gained.is_empty() {
        // The first table this node reads: recover only slots nobody had.
        recover(c, &gained).await;
    }
    // Slots lost without a handover of ours: let go (fenced already, or a coordinator
    // with a newer view); the new owner recovers.
    let lost: Slots = was.difference(&now).copied().collect();
    if !lost.is_empty() {
        hub.slots_lost(lost).await;
    }
    // Nodes that died: their visitors are offline here until their new owner hears
    // from them, tabs bridged to them reconnect, their consoles are forgotten.
    let dead: Vec<NodeIdx> = old
        .alive
        .iter()
        .filter(|n| !new.alive.contains(n))
        .copied()
        .collect();
    if !dead.is_empty() {
        tracing::warn!(?dead, "nodes left the cluster");
        let orphaned: Slots = (0..SLOTS)
            .filter(|s| {
                old.owners
                    .get(usize::from(*s))
                    .copied()
                    .flatten()
                    .is_some_and(|o| dead.contains(&o))
            })
            .collect();
        hub.shadows_lost(orphaned);
        let bridges: Vec<ConnId> = c
            .lock_bridges()
            .iter()
            .filter(|(_, owner)| dead.contains(owner))
            .map(|(conn, _)| *conn)
            .collect();
        for conn in bridges {
            hub.push(
                conn,
                crate::hub_task::Out::Close(crate::hub::CloseReason::Moved),
                crate::hub::Delivery::Now,
                me,
            );
        }
        let virtuals: Vec<ConnId> = c
            .lock_virtuals()
            .keys()
            .filter(|conn| dead.contains(&home_of(**conn)))
            .copied()
            .collect();
        for conn in virtuals {
            if let Some(tx) = c.lock_virtuals().remove(&conn) {
                let _ = tx.send(None);
            }
        }
        let agents: Vec<ConnId> = c
            .lock_remote_agents()
            .keys()
            .filter(|conn| dead.contains(&home_of(**conn)))
            .copied()
            .collect();
        for conn in agents {
            c.lock_remote_agents().remove(&conn);
            hub.agent_gone(conn);
        }
    }
    // Nodes that joined learn this node's consoles (they also ask with a Hello).
    for node in new
        .alive
        .iter()
        .filter(|n| !old.alive.contains(n) && **n != me)
    {
        let agents: Vec<_> = c
            .lock_local_agents()
            .iter()
            .map(|(conn, who)| (*conn, who.clone()))
            .collect();
        for (conn, who) in agents {
            c.0.bus
                .send(To::Node(*node), &BusMsg::AgentOnline { conn, who }, "");
        }
    }
}

/// Ends, in the store, the live sessions of `slots` (their owner is gone) with
/// `transport.failure`, and tells their agents wherever they are.
async fn recover(c: &Cluster, slots: &[u16]) {
    let (Some(hub), Some(store)) = (c.hub(), c.0.store.get()) else {
        return;
    };
    let live = match live_sessions(c, slots).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the live sessions of gained slots");
            return;
        }
    };
    let now = crate::clock::now();
    match store
        .recover_slots(
            &now.to_iso8601(),
            slots,
            covisit::core::model::DisconnectType::TransportFailure,
        )
        .await
    {
        Ok(0) => return,
        Ok(n) => tracing::warn!(sessions = n, "ended the live sessions a failed node left"),
        Err(e) => {
            tracing::error!(error = %e, "cannot recover the sessions of gained slots");
            return;
        }
    }
    let mut by_account: std::collections::BTreeMap<i64, Vec<_>> = Default::default();
    for (account_id, session_id) in live {
        let Ok(Some(StoredSession { session, .. })) =
            store.get_session(account_id, &session_id).await
        else {
            continue;
        };
        let comms = store
            .list_communications(&session_id)
            .await
            .unwrap_or_default();
        by_account
            .entry(account_id)
            .or_default()
            .push((session, comms));
    }
    for (account_id, ended) in by_account {
        hub.sessions_ended_elsewhere(account_id, ended);
    }
}

/// (account, session id) of the live sessions of `slots`.
async fn live_sessions(c: &Cluster, slots: &[u16]) -> Result<Vec<(i64, String)>, String> {
    let client = c.0.pool.get().await.map_err(|e| e.to_string())?;
    let slots: Vec<i16> = slots.iter().map(|s| *s as i16).collect();
    let rows = client
        .query(
            "SELECT account_id, id FROM sessions
             WHERE slot = ANY($1) AND status IN ('authorizing', 'active')",
            &[&slots],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Hands over the slots the coordinator asked this node to give up, each once no
/// visitor of it is in a live session (or at once with `force`: the drain's deadline
/// passed; their live sessions end first). The visitors' sockets close (`Moved`), the
/// writer is flushed, then the table names the new owner.
pub async fn release_handovers(c: &Cluster, force: bool) {
    let Some(hub) = c.hub() else { return };
    let rows = match pending_handovers(c).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read handovers");
            return;
        }
    };
    if rows.is_empty() {
        return;
    }
    let mut released = Vec::new();
    for (slot, to) in rows {
        let one: Slots = std::iter::once(slot).collect();
        if hub.has_live_sessions_in(one.clone()).await {
            if !force {
                continue;
            }
            hub.end_live_sessions_in(one.clone()).await;
        }
        hub.slots_lost(one).await;
        released.push((slot, to));
    }
    if released.is_empty() || !hub.flush().await {
        return;
    }
    let Ok(client) = c.0.pool.get().await else {
        return;
    };
    let me = c.0.node.to_string();
    let mut moved = 0;
    for (slot, to) in &released {
        let slot = *slot as i16;
        let params: [&(dyn ToSql + Sync); 3] = [&to, &slot, &me];
        if let Ok(n) = client
            .execute(
                "UPDATE cluster_slots SET node_id = $1, handover_to = NULL, generation = generation + 1
                 WHERE slot = $2 AND node_id = $3",
                &params,
            )
            .await
        {
            moved += n;
        }
    }
    if moved > 0 {
        tracing::info!(slots = moved, "handed slots over");
        c.0.bus.send(To::All, &BusMsg::SlotsChanged, "");
    }
}

/// (slot, new owner) of this node's slots that the coordinator asked it to give up.
async fn pending_handovers(c: &Cluster) -> Result<Vec<(u16, String)>, String> {
    let client = c.0.pool.get().await.map_err(|e| e.to_string())?;
    let me = c.0.node.to_string();
    let rows = client
        .query(
            "SELECT slot, handover_to FROM cluster_slots
             WHERE node_id = $1 AND handover_to IS NOT NULL ORDER BY slot",
            &[&me],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i16>(0) as u16, r.get(1)))
        .collect())
}

/// Whether another node is up (not draining, heard from in time) to take slots. On
/// an error, true: the caller keeps trying to hand over.
pub async fn others_up(c: &Cluster) -> bool {
    let Ok(client) = c.0.pool.get().await else {
        return true;
    };
    let me = c.0.node.to_string();
    client
        .query_one(
            "SELECT count(*) FROM cluster_nodes WHERE state = 'up' AND node_id <> $1
               AND heartbeat_at > now() - make_interval(secs => $2::float8)",
            &[&me, &(DEAD_AFTER_SECONDS as f64)],
        )
        .await
        .map(|r| r.get::<_, i64>(0) > 0)
        .unwrap_or(true)
}

/// Marks this node draining: the coordinator moves its slots away.
pub async fn set_draining(c: &Cluster) -> Result<(), String> {
    let client = c.0.pool.get().await.map_err(|e| e.to_string())?;
    let id = c.0.node.to_string();
    client
        .execute(
            "UPDATE cluster_nodes SET state = 'draining' WHERE node_id = $1 AND generation = $2",
            &[&id, &c.0.generation],
        )
        .await
        .map_err(|e| e.to_string())?;
    refresh_soon(c);
    Ok(())
}

/// Leaves the cluster for good (after draining): the row says so, and nothing of this
/// node's generation may write again.
pub async fn leave(c: &Cluster) {
    c.0.state.store(NodeState::Fenced as u8, Ordering::Release);
    if let Ok(client) = c.0.pool.get().await {
        let id = c.0.node.to_string();
        let _ = client
            .execute(
                "UPDATE cluster_nodes SET state = 'dead', generation = generation + 1
                 WHERE node_id = $1 AND generation = $2",
                &[&id, &c.0.generation],
            )
            .await;
    }
    c.0.bus.send(To::All, &BusMsg::SlotsChanged, "");
}
