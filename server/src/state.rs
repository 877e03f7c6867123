//! What every handler shares: the hub's handle, the store and directory, the limiters,
//! the metrics and the server's settings; and who a request comes from (its address).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::assets::AssetProxy;
use crate::auth::{LookupLimiter, SignInLimiter};
use crate::cluster::Cluster;
use crate::directory::Directory;
use crate::hub_task::HubHandle;
use crate::journey::Journeys;
use crate::metrics::Metrics;
use crate::store::Store;

/// Everything a handler needs.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Accounts, keys, users, sign-ins, one-time links, the audit log.
    pub directory: Arc<dyn Directory>,
    /// This server's public base URL (links it hands out; https decides Secure cookies).
    pub public_url: String,
    pub sign_in: SignInLimiter,
    pub hub: HubHandle,
    pub metrics: Arc<Metrics>,
    pub trust_proxy: bool,
    pub lookups: LookupLimiter,
    pub journeys: Journeys,
    /// This node's place among several (`--bus`); `None` on a single node.
    pub cluster: Option<Cluster>,
    /// The asset proxy (`--asset-*`): a live session's page assets for its agents.
    pub assets: Arc<AssetProxy>,
    /// Whether accounts that did not choose record their sessions (`--record-sessions`).
    pub record_sessions: bool,
    /// How long recordings are kept after their session ended (`--recording-retention-days`).
    pub recording_retention: std::time::Duration,
    /// The folder of the console (`--www`/agent): the downloaded player is built from
    /// its renderer.
    pub www: std::path::PathBuf,
    /// The server's key for signed links (read from the store once).
    pub signing_key: tokio::sync::OnceCell<Vec<u8>>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// Whether the account records sessions: its own setting, else the server's.
    pub async fn account_records(&self, account_id: i64) -> bool {
        match self.directory.record_sessions(account_id).await {
            Ok(Some(on)) => on,
            Ok(None) => self.record_sessions,
            Err(e) => {
                // Fail closed: a session is not recorded when we cannot tell.
                tracing::error!(error = %e, "cannot read the account's recording setting");
                false
            }
        }
    }

    /// The signing key of links (made and stored on first use).
    pub async fn signing_key(&self) -> Result<&[u8], crate::store::StoreError> {
        self.signing_key
            .get_or_try_init(|| self.store.signing_key())
            .await
            .map(Vec::as_slice)
    }

    /// The address of whoever sent a request: the socket's peer, or with
    /// `--trust-proxy` the first address of `X-Forwarded-For`.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> String {
        if self.trust_proxy {
            let forwarded = headers
                .get("x-forwarded-for")
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.split(',').next())
                .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
            if let Some(ip) = forwarded {
                return ip.to_string();
            }
        }
        peer.ip().to_string()
    }
}
