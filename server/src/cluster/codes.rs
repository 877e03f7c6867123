//! Lookup codes reserved across the cluster. A code is 4 digits an agent types to find
//! a visitor: two visitors of an account sharing one would put an agent in front of
//! the wrong person, so codes are reserved in PostgreSQL (one row per account and code,
//! valid for the code's hour) before a node hands one out. A row whose hour is over is
//! free for the taking; the owner deletes a visitor's row when the visitor leaves.

use deadpool_postgres::Pool;
use rand::Rng;

use crate::bus::NodeIdx;

/// How many codes are tried before giving up (the visitor then has none).
const TRIES: usize = 24;

#[derive(Clone)]
pub struct LookupCodes {
    pool: Pool,
    node: NodeIdx,
}

impl LookupCodes {
    pub fn new(pool: Pool, node: NodeIdx) -> LookupCodes {
        LookupCodes { pool, node }
    }

    /// A code reserved for `holder`: a visitor whose hello proved it by its secret
    /// (never one a hello merely names: that would hand its code to anyone who knows
    /// its short_id), or a socket (`conn:…`), renamed with [`LookupCodes::confirm`] once
    /// the hub named its visitor. The one it holds already if still valid, else a free
    /// one. `None` when none is free or
    /// PostgreSQL could not be asked.
    pub async fn reserve(&self, account_id: i64, holder: &str) -> Option<String> {
        let client = self.pool.get().await.ok()?;
        if let Ok(Some(row)) = client
            .query_opt(
                "SELECT code FROM lookup_codes
                 WHERE account_id = $1 AND short_id = $2 AND expires_at > now()",
                &[&account_id, &holder],
            )
            .await
        {
            return Some(row.get(0));
        }
        let node = self.node.to_string();
        let ttl = covisit::core::derive::LOOKUP_CODE_TTL_SECONDS as f64;
        for _ in 0..TRIES {
            let code = format!("{:04}", rand::thread_rng().gen_range(0..10_000u32));
            let taken = client
                .query_opt(
                    "INSERT INTO lookup_codes (account_id, code, short_id, node_id, expires_at)
                     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::float8))
                     ON CONFLICT (account_id, code) DO UPDATE
                       SET short_id = excluded.short_id, node_id = excluded.node_id,
                           expires_at = excluded.expires_at
                       WHERE lookup_codes.expires_at <= now()
                     RETURNING code",
                    &[&account_id, &code, &holder, &node, &ttl],
                )
                .await;
            match taken {
                Ok(Some(_)) => return Some(code),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reserve a lookup code");
                    return None;
                }
            }
        }
        None
    }

    /// The reservation made for `holder` belongs to `short_id` (a new visitor's id is
    /// known once the hub welcomed it); or, when the visitor kept its own code, the
    /// spare reservation goes.
    pub async fn confirm(&self, account_id: i64, code: &str, holder: &str, used_by: Option<&str>) {
        let Ok(client) = self.pool.get().await else {
            return;
        };
        let r = match used_by {
            Some(short_id) if short_id != holder => {
                client
                    .execute(
                        "UPDATE lookup_codes SET short_id = $1
                         WHERE account_id = $2 AND code = $3 AND short_id = $4",
                        &[&short_id, &account_id, &code, &holder],
                    )
                    .await
            }
            Some(_) => return,
            None => {
                client
                    .execute(
                        "DELETE FROM lookup_codes WHERE account_id = $1 AND code = $2 AND short_id = $3",
                        &[&account_id, &code, &holder],
                    )
                    .await
            }
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot settle a lookup-code reservation");
        }
    }
}
