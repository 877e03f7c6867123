//! Bindings to `mirror.js`: the co-browsing capture (DOM snapshot, changes, masking)
//! and the page side of remote actions. Rust tells it when to start and stop
//! ([`crate::core::client::MirrorCommand`]); it hands every batch back to the client's
//! consent gate ([`crate::core::client::VisitorClient::mirror`]).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/mirror.js")]
extern "C" {
    #[derive(Clone, Debug)]
    pub type Mirror;

    /// `on_batch(batch: string) -> bool` gets each batch of records (a JSON array);
    /// false stops the capture. `masked` is the config's `maskedElements` as JSON.
    #[wasm_bindgen(constructor)]
    pub fn new(on_batch: &js_sys::Function, masked: &str) -> Mirror;
    #[wasm_bindgen(method)]
    pub fn start(this: &Mirror);
    #[wasm_bindgen(method)]
    pub fn stop(this: &Mirror);
    /// Stops and removes everything the capture added to the page (`stop()` of the SDK).
    #[wasm_bindgen(method)]
    pub fn destroy(this: &Mirror);
    /// Applies a remote action (JSON); returns "" when done, else the reason it was not.
    #[wasm_bindgen(method)]
    pub fn apply(this: &Mirror, action: &str) -> String;
    #[wasm_bindgen(method)]
    pub fn control(this: &Mirror, granted: bool);
}
