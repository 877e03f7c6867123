//! Journey tracking as the server takes it in: a beacon body (`TrackBeacon`, read with
//! `serde_json::from_slice` as `server/src/rest_journey.rs` does) or a `track` frame
//! (`decode::<VisitorMessage>`), then `validate_batch`, then every valid event through
//! the URL facts (`without_credentials`, as the server applies it) and a
//! `JourneyTracker`, as `server/src/journey.rs` does. Nothing may panic, and the
//! session the tracker builds must serialize.
#![no_main]

use covisit::core::journey::{
    url_facts, validate_batch, JourneyOptions, JourneyTracker, NewSession, TrackEvent,
    VisitorContext,
};
use covisit::core::protocol::{decode, TrackBeacon, VisitorMessage, MAX_FRAME_BYTES};
use covisit::core::Millis;
use libfuzzer_sys::fuzz_target;

/// The server's clock when the batch arrives (2026-11-21T10:04:05Z).
const NOW: Millis = Millis(1_795_255_445_000);
/// How far back the server places an event at most (`server/src/journey.rs`).
const MAX_EVENT_AGE_MS: u64 = 24 * 3600 * 1000;

fn apply(sent_at: u64, events: Vec<TrackEvent>) {
    if validate_batch(&events).is_err() {
        return;
    }
    let ctx = VisitorContext {
        customer_id: "v1".into(),
        ..VisitorContext::default()
    };
    let mut tracker = JourneyTracker::new(JourneyOptions::default(), None);
    let mut sessions = 0;
    for mut event in events {
        if let TrackEvent::PageView(p) = &mut event {
            p.url = url_facts::without_credentials(&p.url);
            p.referrer = p.referrer.as_deref().map(url_facts::without_credentials);
        }
        let age = sent_at.saturating_sub(event.at()).min(MAX_EVENT_AGE_MS);
        let at = Millis(NOW.0 - age);
        tracker.handle_event(at, "e1".into(), &event, &ctx, || {
            sessions += 1;
            NewSession {
                id: format!("j{sessions}"),
                short_id: "123456".into(),
            }
        });
    }
    if let Some(session) = tracker.current() {
        assert!(serde_json::to_string(session).is_ok());
    }
    tracker.handle_timeout(Millis(NOW.0 + 3_600_000));
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_FRAME_BYTES {
        return;
    }
    if let Ok(beacon) = serde_json::from_slice::<TrackBeacon>(data) {
        apply(beacon.sent_at, beacon.events);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(VisitorMessage::Track { sent_at, events }) = decode::<VisitorMessage>(text) {
            apply(sent_at, events);
        }
    }
});
