//! The pure core of covisit: seed data models, configuration, derivations, the visitor
//! session state machine, journey tracking and the analytics export, and the wire
//! protocol.
//!
//! Nothing in here does I/O, reads a clock or touches the DOM: time comes in as a
//! [`Millis`] argument, outputs are drained with `poll_*`. That keeps the same code
//! usable natively (server, tests) and in wasm (the SDK facade).

pub mod analytics;
pub mod client;
pub mod codes;
pub mod config;
pub mod derive;
pub mod ids;
pub mod journey;
pub mod json;
pub mod machine;
pub mod model;
pub mod pii;
pub mod protocol;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod strategies;
pub mod text;
pub mod time;
#[cfg(test)]
mod wire_ts;

pub use time::Millis;
