//! Bindings to `capture.js`, which stands in for `mirror.js` (the co-browsing capture:
//! DOM snapshot, changes, masking, and the page side of remote actions) and loads it on
//! demand, since only a session needs it. Rust tells it when to start and stop
//! ([`crate::core::client::MirrorCommand`]); it hands every batch back to the client's
//! consent gate ([`crate::core::client::VisitorClient::mirror`]).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/capture.js")]
extern "C" {
    #[derive(Clone, Debug)]
    pub type Capture;

    /// `on_batch(batch: string) -> bool` gets each batch of records (a JSON array);
    /// false stops the capture. `masked` is the config's `maskedElements` as JSON;
    /// `url` is where the capture module is (none: capture is off).
    #[wasm_bindgen(constructor)]
    pub fn new(on_batch: &js_sys::Function, masked: &str, url: Option<String>) -> Capture;
    /// Starts fetching the capture module (a session was requested).
    #[wasm_bindgen(method)]
    pub fn preload(this: &Capture);
    #[wasm_bindgen(method)]
    pub fn start(this: &Capture);
    #[wasm_bindgen(method)]
    pub fn stop(this: &Capture);
    /// Stops and removes everything the capture added to the page (`stop()` of the SDK).
    #[wasm_bindgen(method)]
    pub fn destroy(this: &Capture);
    /// Applies a remote action (JSON); returns "" when done, else the reason it was not.
    #[wasm_bindgen(method)]
    pub fn apply(this: &Capture, action: &str) -> String;
    #[wasm_bindgen(method)]
    pub fn control(this: &Capture, granted: bool);
    /// Sends the page's asset `url` for request `id` (or a refusal) as `a` records.
    #[wasm_bindgen(method)]
    pub fn asset(this: &Capture, id: u32, url: &str);
}
