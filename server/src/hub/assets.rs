//! Assets through covisit, the hub's part (issue 15 item 5; docs/MIRROR.md, "Assets
//! through covisit"): who may have a session's assets fetched (an agent in the active
//! session, for an open tab of its visitor whose page set `assetsProxyConfigured`), and
//! the fallback through the visitor's page: an `asset_request` to that tab, and the
//! page's `a` records back (which never reach the agents' mirrors as records), counted
//! into the session's bytes and bounded per session.
//!
//! The fetching itself (the server's own, the cache, the CSS rewriting) is the asset
//! proxy's (`crate::assets`), outside the hub: the hub does no I/O.

use std::collections::HashMap;

use covisit::core::machine::SessionStatus;
use covisit::core::model::ConnectionStatus;
use covisit::core::protocol::{encode, AssetReply, ServerToVisitor};

use super::{ConnId, Delivery, Frame, Hub, HubError, Output};

/// The most bytes (base64, as they arrive) a session's pages may send as assets.
pub const SESSION_ASSET_BUDGET: u64 = 64 * 1024 * 1024;
/// The most asset requests a session may have waiting on its pages at once.
const MAX_WAITING_PER_SESSION: usize = 32;

/// What an agent's asset request may use: the session's pages' origins (the tab's
/// first) and the tab's socket.
#[derive(Debug, Clone)]
pub struct AssetScope {
    /// The tab's page URL (`currentUrl`), when it said one.
    pub page_url: Option<String>,
    /// The page URLs of every open tab of the session's visitor (their origins are
    /// allowed asset origins: each passed the key's origin check).
    pub page_urls: Vec<String>,
}

/// An asset request waiting on a visitor's tab.
#[derive(Debug)]
pub(super) struct Waiting {
    session_id: String,
    conn: ConnId,
    bytes: u64,
}

/// Per session: the bytes its pages sent (mirror records and assets) and the asset
/// bytes alone (bounded by [`SESSION_ASSET_BUDGET`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionBytes {
    pub mirror: u64,
    pub assets: u64,
}

#[derive(Debug, Default)]
pub(super) struct Assets {
    next_id: u32,
    waiting: HashMap<u32, Waiting>,
    pub bytes: HashMap<String, SessionBytes>,
}

impl Hub {
    /// Whether `agent_id` may have assets of `session_id`'s tab `tab` fetched now, and
    /// what the tab's page is. The rules of [`Hub::agent_session`] (an active session of
    /// the account that the agent takes part in), an open tab of the session's visitor,
    /// and its page's `assetsProxyConfigured`.
    pub fn asset_scope(
        &self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
        tab: &str,
    ) -> Result<AssetScope, HubError> {
        self.asset_tab(account_id, agent_id, session_id, tab)
            .map(|(scope, _)| scope)
    }

    fn asset_tab(
        &self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
        tab: &str,
    ) -> Result<(AssetScope, ConnId), HubError> {
        let (_, entry) = self.agent_visitor(account_id, agent_id, session_id)?;
        let connection = entry
            .machine
            .connection(tab)
            .filter(|c| c.status == ConnectionStatus::Active)
            .ok_or(HubError::UnknownConnection)?;
        if !connection.permissions.assets_proxy_configured {
            return Err(HubError::AssetsNotEnabled);
        }
        let conn = *entry.sockets.get(tab).ok_or(HubError::TabOffline)?;
        let page_urls = entry
            .machine
            .connections()
            .iter()
            .filter(|c| c.status == ConnectionStatus::Active)
            .filter_map(|c| c.current_url.clone())
            .collect();
        Ok((
            AssetScope {
                page_url: connection.current_url.clone(),
                page_urls,
            },
            conn,
        ))
    }

    /// Asks the tab's page for the asset `url` (the server could not fetch it): the
    /// same checks as [`Hub::asset_scope`], then an `asset_request` to the tab. Returns
    /// the request's id; the page's answer comes out as [`Output::Asset`].
    pub fn handle_asset_ask(
        &mut self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
        tab: &str,
        url: &str,
    ) -> Result<u32, HubError> {
        let (_, conn) = self.asset_tab(account_id, agent_id, session_id, tab)?;
        let spent = self.assets.bytes.get(session_id).map_or(0, |b| b.assets);
        if spent >= SESSION_ASSET_BUDGET {
            return Err(HubError::AssetBudgetSpent);
        }
        let waiting = self
            .assets
            .waiting
            .values()
            .filter(|w| w.session_id == session_id)
            .count();
        if waiting >= MAX_WAITING_PER_SESSION {
            return Err(HubError::AssetBudgetSpent);
        }
        self.assets.next_id = self.assets.next_id.wrapping_add(1);
        let id = self.assets.next_id;
        self.assets.waiting.insert(
            id,
            Waiting {
                session_id: session_id.to_string(),
                conn,
                bytes: 0,
            },
        );
        let frame = encode(&ServerToVisitor::AssetRequest {
            id,
            url: url.to_string(),
        });
        self.send(conn, Frame::from(frame), Delivery::Now);
        Ok(id)
    }

    /// The asset request `id` is no longer waited for (answered, or timed out).
    pub fn forget_asset_ask(&mut self, id: u32) {
        self.assets.waiting.remove(&id);
    }

    /// The bytes session `session_id`'s pages sent so far (0 for an unknown one).
    pub fn session_bytes(&self, session_id: &str) -> SessionBytes {
        self.assets
            .bytes
            .get(session_id)
            .copied()
            .unwrap_or_default()
    }

    /// Counts a relayed mirror frame's bytes into its session.
    pub(super) fn count_mirror_bytes(&mut self, session_id: &str, n: usize) {
        let b = self.assets.bytes.entry(session_id.to_string()).or_default();
        b.mirror = b.mirror.saturating_add(n as u64);
    }

    /// A tab's answer to an asset request (its `a` record): taken only from the tab
    /// that was asked, for a request still waited for, within the session's budget;
    /// anything else is dropped without an error (it races a timeout or the session's
    /// end). Counted into the session's bytes.
    pub(super) fn asset_reply(&mut self, conn: ConnId, reply: AssetReply, size: usize) {
        let id = reply.id();
        let Some(w) = self.assets.waiting.get_mut(&id) else {
            return;
        };
        if w.conn != conn {
            return;
        }
        let live = self
            .sessions
            .get(&w.session_id)
            .is_some_and(|s| s.status == SessionStatus::Active);
        let bytes = self.assets.bytes.entry(w.session_id.clone()).or_default();
        bytes.assets = bytes.assets.saturating_add(size as u64);
        bytes.mirror = bytes.mirror.saturating_add(size as u64);
        w.bytes = w.bytes.saturating_add(size as u64);
        let over = bytes.assets > SESSION_ASSET_BUDGET;
        let reply = match reply {
            _ if !live => AssetReply::Refused {
                id,
                reason: "session_not_active".into(),
            },
            _ if over => AssetReply::Refused {
                id,
                reason: "too_large".into(),
            },
            r => r,
        };
        if reply.is_last() {
            self.assets.waiting.remove(&id);
        }
        self.outputs.push_back(Output::Asset { id, reply });
    }
}
