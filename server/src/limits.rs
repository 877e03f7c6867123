//! Rate limits shared by every node of a cluster: lookup-code searches per account and
//! failed sign-ins per email and per address are counted in Redis (the bus's server) on
//! top of each node's own limiter (`auth`), so that N nodes do not give an attacker N
//! budgets. On a single node, or when Redis does not answer in time, the node's own
//! limiter decides alone (it is bounded too). Keys hold hashes, never emails or
//! addresses.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::auth::{EMAIL_BURST, EMAIL_PERIOD, IP_BURST, IP_PERIOD};
use crate::state::Shared;

/// A key part that names `what` without saying it.
fn hashed(what: &str) -> String {
    Sha256::digest(what.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_secs() -> u64 {
    crate::clock::now().0 / 1000
}

/// Takes one lookup-code search from the account's budget; false when it is spent
/// (here, or across the cluster).
pub async fn lookup_allowed(state: &Shared, account_id: i64) -> bool {
    if !state.lookups.allow(account_id) {
        return false;
    }
    let Some(cluster) = &state.cluster else {
        return true;
    };
    let name = format!("lookup:{account_id}");
    match cluster
        .bus()
        .count(&name, Duration::from_secs(60), now_secs())
        .await
    {
        Ok(n) => n <= u64::from(state.lookups.per_minute),
        Err(e) => {
            tracing::warn!(error = %e, "shared lookup limit unavailable; this node's decides");
            true
        }
    }
}

fn email_flag(email: &str) -> String {
    format!("signin:e:{}", hashed(email))
}

fn ip_flag(ip: &str) -> String {
    format!("signin:i:{}", hashed(ip))
}

/// Whether sign-ins for this email or from this address are refused right now.
pub async fn sign_in_locked(state: &Shared, email: &str, ip: &str) -> bool {
    if state.sign_in.is_locked(email, ip) {
        return true;
    }
    let Some(cluster) = &state.cluster else {
        return false;
    };
    cluster
        .bus()
        .any_flag(&[email_flag(email), ip_flag(ip)])
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "shared sign-in limit unavailable; this node's decides");
            false
        })
}

/// Counts a failed sign-in; true when it locked the email or the address. Across a
/// cluster: more than the burst of failures within burst × period locks for a period.
pub async fn sign_in_failed(state: &Shared, email: &str, ip: &str) -> bool {
    let mut locked = state.sign_in.failed(email, ip);
    let Some(cluster) = &state.cluster else {
        return locked;
    };
    let bus = cluster.bus();
    let now = now_secs();
    for (flag, burst, period) in [
        (email_flag(email), EMAIL_BURST, EMAIL_PERIOD),
        (ip_flag(ip), IP_BURST, IP_PERIOD),
    ] {
        match bus.count(&flag, period * burst, now).await {
            Ok(n) if n > u64::from(burst) => {
                locked = true;
                if let Err(e) = bus.set_flag(&flag, period).await {
                    tracing::warn!(error = %e, "cannot share a sign-in lock");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "shared sign-in limit unavailable; this node's decides");
            }
        }
    }
    locked
}
