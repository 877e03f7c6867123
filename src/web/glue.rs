//! Bindings to `glue.js`: the default UI and the history patch.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    /// The SDK's own UI, drawn in a shadow root; reports clicks as `(action, arg)`.
    #[derive(Clone, Debug)]
    pub type Ui;

    #[wasm_bindgen(constructor)]
    pub fn new(on_action: &js_sys::Function, call_url: Option<String>) -> Ui;
    /// `console`: the page allows the remote console, which the prompt then mentions.
    #[wasm_bindgen(method, js_name = showSessionPrompt)]
    pub fn show_session_prompt(
        this: &Ui,
        title: &str,
        message: &str,
        agent_name: &str,
        console: bool,
    );
    #[wasm_bindgen(method, js_name = showControlPrompt)]
    pub fn show_control_prompt(this: &Ui, agent_name: &str);
    #[wasm_bindgen(method, js_name = showLookupCode)]
    pub fn show_lookup_code(this: &Ui, code: &str);
    #[wasm_bindgen(method, js_name = showRating)]
    pub fn show_rating(this: &Ui, agent_name: &str);
    /// Hides the session or control question (shown or waiting behind another), not
    /// a call's or share's, which the call file withdraws itself.
    #[wasm_bindgen(method, js_name = hideAsked)]
    pub fn hide_asked(this: &Ui);
    /// Hides the session or control prompt, not a rating the visitor may still give.
    #[wasm_bindgen(method, js_name = hideConsent)]
    pub fn hide_consent(this: &Ui);
    #[wasm_bindgen(method, js_name = showIndicator)]
    pub fn show_indicator(this: &Ui, agent_name: &str, control_granted: bool);
    #[wasm_bindgen(method, js_name = hideIndicator)]
    pub fn hide_indicator(this: &Ui);
    #[wasm_bindgen(method)]
    pub fn destroy(this: &Ui);
    /// A session is active on a page that allows drawing: fetch the drawing layer
    /// (`url`: covisit-draw.js; none: drawing is off); `capture` finds inks' anchors.
    #[wasm_bindgen(method, js_name = drawStart)]
    pub fn draw_start(this: &Ui, url: Option<String>, capture: &JsValue);
    /// Shows an agent's ink (`ink`: the protocol's `Ink` as JSON) in palette colour `color`.
    #[wasm_bindgen(method)]
    pub fn draw(this: &Ui, agent_id: &str, name: &str, color: u32, ink: &str);
    /// Takes every ink and the layer away.
    #[wasm_bindgen(method, js_name = drawStop)]
    pub fn draw_stop(this: &Ui);
    /// Calls and sharing: hands a server `call` frame (JSON text) to the call file,
    /// fetching it first (the constructor's `call_url`, covisit-call.js; none: calls
    /// are declined).
    #[wasm_bindgen(method, js_name = callFrame)]
    pub fn call_frame(this: &Ui, call: &str);
    /// The session is over here: every call and share stops at once.
    #[wasm_bindgen(method, js_name = callStop)]
    pub fn call_stop(this: &Ui);
    /// `acceptCall`, `declineCall`, `endCall`, `setMicrophone`, `setCamera`: answered
    /// by the call file (a rejected promise with `wrong_call_state` without a call).
    #[wasm_bindgen(method, js_name = callApi)]
    pub fn call_api(this: &Ui, name: &str, arg: JsValue) -> js_sys::Promise;
    /// The remote console: fetch `url` (covisit-console.js) and install its hooks, which
    /// hand batches of entries (JSON text) to `on_batch` until it returns false.
    #[wasm_bindgen(method, js_name = consoleStart)]
    pub fn console_start(this: &Ui, url: Option<String>, on_batch: &js_sys::Function);
    /// Removes the console hooks (the page's console is as it was).
    #[wasm_bindgen(method, js_name = consoleStop)]
    pub fn console_stop(this: &Ui);

    /// Journey tracking's facts about the page viewed, as the JSON text of `PageFacts`
    /// without `at`; empty when the URL did not change since the last page view.
    #[wasm_bindgen(js_name = pageView)]
    pub fn page_view(page_load: bool) -> String;

    /// `navigator.sendBeacon(url, body)` as text/plain; false when the browser refused.
    #[wasm_bindgen(js_name = sendBeacon)]
    pub fn send_beacon(url: &str, body: &str) -> bool;

    /// `JSON.parse` of a text frame of at most `limit` characters; `undefined` otherwise.
    #[wasm_bindgen(js_name = parseFrame)]
    pub fn parse_frame(data: &JsValue, limit: usize) -> JsValue;

    /// The token of an agent's personal link (`#covisit_call=…` in the URL), taken out
    /// of the URL (history.replaceState) so it is neither reused nor shared.
    #[wasm_bindgen(js_name = takeCallToken)]
    pub fn take_call_token() -> Option<String>;

    /// The live-chat widget on the page (a name of `protocol::INTEGRATIONS`), if any.
    #[wasm_bindgen(js_name = integration)]
    pub fn integration() -> Option<String>;

    /// The capabilities co-browsing needs that this browser lacks, comma-separated
    /// (names of `protocol::CAPABILITIES`); empty when it has them all.
    #[wasm_bindgen(js_name = missing)]
    pub fn missing() -> String;

    /// Calls: whether this browser can make them (`getUserMedia` and `RTCPeerConnection`
    /// are there): detected, never claimed (Connection `audioSupported`).
    /// (A static method: a free function of this signature would be imported from
    /// glue.js directly, a second import module, which scripts/minify-wasm-names.mjs
    /// does not take.)
    #[wasm_bindgen(static_method_of = Ui, js_name = audioSupported)]
    pub fn audio_supported() -> bool;

    /// Calls `on_change` after pushState/replaceState; returns the function that undoes it.
    #[wasm_bindgen(js_name = patchHistory)]
    pub fn patch_history(on_change: &js_sys::Function) -> js_sys::Function;
}
