//! covisit: a co-browsing SDK. `core` is the pure, sans-IO heart shared by the SDK, the
//! server and the tests; `web` is the wasm-bindgen facade and exists only on wasm32.
#![forbid(unsafe_code)]

pub mod core;

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::*;
