//! Journey tracking on the server: one core [`JourneyTracker`] per visitor that tracked
//! something recently, fed the SDK's `track` batches (socket) and beacons (HTTP), with
//! the server's enrichment (user agent, IP, GeoIP). Every change is queued on the hub's
//! ordered writer (sessions before their events), so a batch's writes commit together
//! and a reader that flushes the hub sees them.
//!
//! The tracker map is a cache: a visitor not in it resumes from its latest stored
//! session. Entries idle past the session timeout are dropped when the map grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use covisit::core::journey::tracker::last_activity;
use covisit::core::journey::url_facts;
use covisit::core::journey::{
    validate_batch, Applied, JourneyOptions, JourneyTracker, NewSession, TrackError, TrackEvent,
    VisitorContext,
};
use covisit::core::model::JourneySession;
use covisit::core::Millis;
use rand::Rng;

use crate::geoip::{GeoFacts, GeoIp};
use crate::hub_task::HubHandle as Hub;
use crate::keys::random_hex;
use crate::store::{JourneyEventRow, Store, StoreError, Write};

/// Trackers kept in memory before idle ones are dropped.
const CACHE_SOFT_LIMIT: usize = 10_000;
/// How far back an event's time may be placed (a page's clock can be anything).
const MAX_EVENT_AGE_MS: u64 = 24 * 3600 * 1000;

pub use covisit::core::journey::TrackInput;

/// Why a batch was not applied.
#[derive(Debug)]
pub enum JourneyError {
    Invalid(TrackError),
    /// The visitor does not exist (any more): it was erased while the batch was on
    /// its way.
    UnknownVisitor,
    Store(StoreError),
}

impl From<JourneyError> for crate::errors::ApiError {
    fn from(e: JourneyError) -> crate::errors::ApiError {
        use crate::errors::ApiError;
        use axum::http::StatusCode;
        use covisit::core::codes::ErrorCode;
        match e {
            JourneyError::Invalid(e) => {
                ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
            }
            JourneyError::UnknownVisitor => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UNKNOWN_VISITOR,
                "no such visitor",
            ),
            JourneyError::Store(e) => ApiError::internal(e),
        }
    }
}

pub struct Journeys {
    trackers: Mutex<HashMap<(i64, String), JourneyTracker>>,
    /// Tracking holds it shared, erasure exclusively: a batch is applied and its writes
    /// queued either wholly before an erasure starts (so the erasure's flush and store
    /// update see them) or after it finished (and then finds no visitor).
    erasure: tokio::sync::RwLock<()>,
    options: JourneyOptions,
    geo: Option<GeoIp>,
    store: Arc<dyn Store>,
}

/// A UUID-shaped random id (Genesys journey ids are UUIDs).
fn uuid_like() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The event as it is applied and stored: its page and referrer URLs without
/// credentials (`https://user:pw@host/`), which are secrets, not journey facts.
fn without_credentials(mut event: TrackEvent) -> TrackEvent {
    if let TrackEvent::PageView(p) = &mut event {
        p.url = url_facts::without_credentials(&p.url);
        p.referrer = p.referrer.as_deref().map(url_facts::without_credentials);
    }
    event
}

/// An event's time on the server's clock: `now − (sent_at − at)`, never later than
/// `now` nor more than a day before it.
pub fn place(now: Millis, sent_at: u64, at: u64) -> Millis {
    let age = sent_at.saturating_sub(at).min(MAX_EVENT_AGE_MS);
    Millis(now.0.saturating_sub(age))
}

impl Journeys {
    pub fn new(store: Arc<dyn Store>, options: JourneyOptions, geo: Option<GeoIp>) -> Journeys {
        Journeys {
            trackers: Mutex::new(HashMap::new()),
            erasure: tokio::sync::RwLock::new(()),
            options,
            geo,
            store,
        }
    }

    /// `--journey-timeout-seconds`.
    pub fn session_timeout_seconds(&self) -> u64 {
        self.options.session_timeout_seconds
    }

    /// GeoIP facts of an address (empty without `--geoip`).
    pub fn geo(&self, ip: &str) -> GeoFacts {
        self.geo.as_ref().map(|g| g.lookup(ip)).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), JourneyTracker>> {
        // A panic while holding it is a bug; the trackers are still the best we have.
        self.trackers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Held by an erasure from before the hub forgets the visitor until the store has
    /// erased it: no batch of any visitor is applied meanwhile.
    pub async fn erasing(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.erasure.write().await
    }

    /// Validates and applies a batch; its writes are queued on the hub (call
    /// `hub.flush()` to wait for them). Returns how many events were applied.
    /// `UnknownVisitor` when the visitor is gone (erased): nothing is applied then.
    pub async fn track(&self, hub: &Hub, input: TrackInput) -> Result<usize, JourneyError> {
        validate_batch(&input.events).map_err(JourneyError::Invalid)?;
        if input.events.is_empty() {
            return Ok(0);
        }
        let _no_erasure = self.erasure.read().await;
        // Checked under the guard: a batch that raced an erasure must not bring the
        // visitor's data back (its tracker, or rows written after the erasure).
        let (account, id) = (input.account_id, input.short_id.clone());
        let exists = hub
            .call(move |h, _| h.is_known_visitor(account, &id))
            .await
            .unwrap_or(false)
            || self
                .store
                .get_visitor(input.account_id, &input.short_id)
                .await
                .map_err(JourneyError::Store)?
                .is_some();
        if !exists {
            return Err(JourneyError::UnknownVisitor);
        }
        let key = (input.account_id, input.short_id.clone());
        if !self.lock().contains_key(&key) {
            let latest = self
                .store
                .latest_journey_session(input.account_id, &input.short_id)
                .await
                .map_err(JourneyError::Store)?;
            self.lock()
                .entry(key.clone())
                .or_insert_with(|| JourneyTracker::new(self.options.clone(), latest));
        }
        let now = crate::clock::now();
        let (browser, device) = crate::ua::journey_parts(input.user_agent.as_deref());
        let geo = self.geo(&input.ip);
        let ctx = VisitorContext {
            customer_id: input.short_id.clone(),
            authenticated: input.authenticated,
            user_agent: input.user_agent.clone(),
            ip_address: Some(input.ip.clone()).filter(|ip| !ip.is_empty()),
            ip_organization: geo.organization,
            geolocation: geo.geolocation,
            browser,
            device,
            sdk_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut guard = self.lock();
        if guard.len() > CACHE_SOFT_LIMIT {
            let timeout = self.options.session_timeout_seconds;
            guard.retain(|k, t| {
                *k == key
                    || t.last_activity()
                        .is_some_and(|a| a.plus_seconds(timeout) > now)
            });
        }
        let Some(tracker) = guard.get_mut(&key) else {
            return Ok(0); // inserted above; only a concurrent erase removes it
        };
        let count = input.events.len();
        for event in input.events.into_iter().map(without_credentials) {
            let event = &event;
            let at = place(now, input.sent_at, event.at());
            let event_id = uuid_like();
            let applied = tracker.handle_event(at, event_id.clone(), event, &ctx, || NewSession {
                id: uuid_like(),
                short_id: rand::thread_rng().gen_range(100_000..1_000_000).to_string(),
            });
            let Some(current) = tracker.current() else {
                continue;
            };
            if let Applied::Started { ended } = applied {
                if let Some(old) = ended {
                    hub.persist(Write::JourneySession(input.account_id, old));
                }
                // The new row before its events (they refer to it).
                hub.persist(Write::JourneySession(
                    input.account_id,
                    Box::new(current.clone()),
                ));
            }
            let (kind, name) = match event {
                TrackEvent::PageView(_) => ("page_view", current.last_event.event_name.clone()),
                TrackEvent::Custom { event_name, .. } => ("custom", event_name.clone()),
            };
            hub.persist(Write::JourneyEvent(Box::new(JourneyEventRow {
                id: event_id,
                journey_session_id: current.id.clone(),
                account_id: input.account_id,
                visitor_id: input.short_id.clone(),
                kind,
                event_name: name,
                created_at: at.to_iso8601(),
                data: serde_json::to_string(event).unwrap_or_default(),
            })));
        }
        if let Some(current) = tracker.current() {
            hub.persist(Write::JourneySession(
                input.account_id,
                Box::new(current.clone()),
            ));
        }
        Ok(count)
    }

    /// The in-memory copy of the visitor's current session (fresher than the store's
    /// until the hub's writer caught up).
    pub fn cached(&self, account_id: i64, short_id: &str) -> Option<JourneySession> {
        self.lock()
            .get(&(account_id, short_id.to_string()))
            .and_then(|t| t.current().cloned())
    }

    /// The visitor was erased: forget its tracker (the store ends its sessions).
    pub fn forget(&self, account_id: i64, short_id: &str) {
        self.lock().remove(&(account_id, short_id.to_string()));
    }

    /// A stored or cached session as REST shows it at `now`: ended once its timeout
    /// passed without activity, authenticated if the visitor is identified now.
    pub fn present(
        &self,
        mut j: JourneySession,
        now: Millis,
        authenticated: bool,
    ) -> JourneySession {
        if j.ended_date.is_none() {
            let expiry = last_activity(&j).plus_seconds(self.options.session_timeout_seconds);
            if expiry <= now {
                j.ended_date = Some(expiry.to_iso8601());
            } else if authenticated {
                j.authenticated = true;
            }
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_are_placed_on_the_server_clock() {
        let now = Millis(1_000_000_000);
        // The page's clock is an hour off; only the age since sending counts.
        assert_eq!(place(now, 5_000_000, 4_999_000), Millis(now.0 - 1000));
        // An event "from the future" of its batch is placed at now.
        assert_eq!(place(now, 5_000_000, 6_000_000), now);
        // Absurd ages are capped at a day.
        assert_eq!(place(now, u64::MAX, 0), Millis(now.0 - MAX_EVENT_AGE_MS));
        assert!(uuid_like().len() == 36);
    }
}
