//! Web journey tracking (seed 003): what the SDK tracks and how a visit becomes a
//! [`JourneySession`](crate::core::model::JourneySession).
//!
//! The split keeps the SDK small: the SDK links only [`event`] (the raw page facts and
//! custom events it sends, and their validation). Everything that interprets them —
//! URL parts, referrer kinds, search terms, campaigns ([`url_facts`]) and the session
//! bookkeeping ([`tracker`]) — runs on the server, and is not compiled for wasm32.

pub mod event;
#[cfg(not(target_arch = "wasm32"))]
pub mod tracker;
#[cfg(not(target_arch = "wasm32"))]
pub mod url_facts;

pub use event::{
    validate_batch, validate_custom, validate_event, validate_page, PageFacts, TrackError,
    TrackEvent, MAX_EVENTS_PER_BATCH,
};
#[cfg(not(target_arch = "wasm32"))]
pub use tracker::{
    Applied, JourneyOptions, JourneyTracker, NewSession, TrackInput, VisitorContext,
};
