//! The wasm-bindgen facade: the only Rust that touches the browser. Each export
//! converts its arguments, makes one core call and converts back; no protocol logic
//! lives here. `session` (feature `session-client`) is the session client: clock,
//! timer, WebSocket, DOM listeners and default UI around [`crate::core::client`].

mod error;
#[cfg(feature = "session-client")]
mod glue;
#[cfg(feature = "session-client")]
mod mirror;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::core::json::{Json, Object};
use crate::core::Millis;

pub use error::CovisitError;

/// talc instead of Rust's default dlmalloc: the same job in about half the bytes.
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Debug builds print Rust panics to the console. The release bundle is built with
/// immediate-abort panics (scripts/build), where no hook could run, so it has none.
#[wasm_bindgen(start)]
fn start_module() {
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
}

#[cfg_attr(not(feature = "session-client"), allow(dead_code))] // used by the session client
fn now() -> Millis {
    Millis(js_sys::Date::now() as u64)
}

// Values cross the JS boundary as JSON text (JSON.parse / JSON.stringify) rather than
// through serde-wasm-bindgen: serde_json is needed for the wire anyway, and one
// serializer per type instead of two keeps the bundle inside its size budget.
#[cfg_attr(not(feature = "session-client"), allow(dead_code))] // used by the session client
fn to_js<T: Serialize>(value: &T) -> JsValue {
    serde_json::to_string(value)
        .ok()
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .unwrap_or(JsValue::NULL)
}

/// An argument from the page as the SDK's Json. Plain data only: anything
/// `JSON.stringify` would not write as data (functions, symbols, cycles) is an error.
#[cfg_attr(not(feature = "session-client"), allow(dead_code))] // used by the session client
fn from_js(value: &JsValue) -> Result<Json, CovisitError> {
    json_from_js(value, 0).ok_or_else(|| {
        CovisitError::new(
            crate::core::codes::ErrorCode::INVALID_ARGUMENT,
            "argument must be plain JSON data",
        )
    })
}

/// Reads a JS value that holds JSON data (the page's argument, or `JSON.parse`'s
/// output for a server frame) into the SDK's Json by walking it: the browser's own
/// parser does the parsing, so serde_json's stays out of the bundle. `None` for a value
/// that is not JSON data, or nested deeper than 64.
#[cfg_attr(not(feature = "session-client"), allow(dead_code))] // used by the session client
fn json_from_js(value: &JsValue, depth: u32) -> Option<Json> {
    if depth > 64 {
        return None;
    }
    if value.is_null() || value.is_undefined() {
        return Some(Json::Null);
    }
    if let Some(b) = value.as_bool() {
        return Some(Json::Bool(b));
    }
    if let Some(n) = value.as_f64() {
        // Whole numbers stay integers (written without `.0`); NaN and infinities are
        // null, as in JSON.stringify.
        let exact = n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0;
        return Some(match (exact, n < 0.0) {
            (true, false) => Json::Number((n as u64).into()),
            (true, true) => Json::Number((n as i64).into()),
            _ => serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number),
        });
    }
    if let Some(s) = value.as_string() {
        return Some(Json::String(s));
    }
    if js_sys::Array::is_array(value) {
        let items: &js_sys::Array = value.unchecked_ref();
        return items
            .iter()
            .map(|item| json_from_js(&item, depth + 1))
            .collect::<Option<Vec<_>>>()
            .map(Json::Array);
    }
    if !value.is_object() {
        return None; // a function, symbol or bigint
    }
    let mut object = Object::new();
    for entry in js_sys::Object::entries(value.unchecked_ref()).iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let (key, item) = (entry.get(0).as_string()?, entry.get(1));
        // JSON.stringify leaves out members that are undefined.
        if !item.is_undefined() {
            object.insert(key, json_from_js(&item, depth + 1)?);
        }
    }
    Some(Json::Object(object))
}

/// The SDK's version.
///
/// ```js
/// import { load, version } from 'covisit';
/// await load();
/// console.log(version()); // "0.1.0"
/// ```
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[cfg(feature = "session-client")]
mod session;
#[cfg(feature = "session-client")]
pub use session::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** The SDK's configuration (README, "Configuration"). */
export interface CovisitConfig {
  apiKey: string;
  server: string;
  requireAuthorizationForSession?: boolean;
  requireControlRequest?: boolean;
  allowRemoteClick?: boolean;
  allowRemoteScroll?: boolean;
  allowRemoteType?: boolean;
  allowRemoteConsole?: boolean;
  allowAgentRedirect?: boolean;
  allowFullScreen?: boolean;
  allowRequestFullTab?: boolean;
  cobrowsingVideoEnabled?: 'two_way' | 'visitor_to_agent' | 'agent_to_visitor' | 'disabled';
  cobrowsingVideoAudioRelationship?: 'independent' | 'video_requires_audio' | 'automatic';
  enableSessionRating?: boolean;
  agentPrompt?: string | null;
  assetsProxyConfigured?: boolean;
  authorizationTimeoutSeconds?: number;
  authorizationPromptTitle?: string | null;
  authorizationPromptMessage?: string | null;
  maskedElements?: string[];
  /** Journey page views on load and SPA navigation (default true); false: call trackPageView(). */
  trackPageViews?: boolean;
  /** Agents may point (laser) and draw on the page during a session, without control (default true); false: none of it is shown, and the server refuses it. */
  allowAgentDrawing?: boolean;
  uniqueId?: string | null;
  identities?: string[] | null;
  tags?: string[] | null;
  callName?: string | null;
  email?: string | null;
  metadata?: Record<string, unknown> | null;
}
/** `track(eventName, attributes)`: at most 50, each a scalar or a list of one kind. */
export type TrackAttributes = Record<string, string | number | boolean | string[] | number[] | boolean[]>;

export interface VisitorIdentity {
  uniqueId?: string | null;
  identities?: string[] | null;
  tags?: string[] | null;
  callName?: string | null;
  email?: string | null;
  metadata?: Record<string, unknown> | null;
}
export interface ExpectDisconnectOptions { returnTimeSeconds?: number | null; message?: string | null; title?: string | null; }
export interface CovisitAgent { agent_nickname: string; email: string | null; external_id: string | null; id: string; name: string; on_premise: boolean; }
export type SessionStatus = 'none' | 'authorizing' | 'active' | 'ended';
export type DisconnectType = 'client' | 'peer' | 'system' | 'transport.failure' | 'timeout';
export interface CovisitConnection {
  uniqueConnectionId: string; currentUrl: string | null; activeSince: string; status: 'active' | 'disconnected';
  expectedDisconnect: { returnTimeSeconds: number | null; message: string | null; title: string | null; ts: number } | null;
  hasFocus: boolean; lastFocusAt: string | null; screenWidth: number; screenHeight: number; audioSupported: boolean;
  fullTabStatus: 'off' | 'authorizing' | 'active';
  requireAuthorizationForSession: boolean; requireControlRequest: boolean; allowRemoteConsole: boolean; allowAgentRedirect: boolean;
  allowRemoteClick: boolean; allowRemoteScroll: boolean; allowRemoteType: boolean; allowFullScreen: boolean; allowRequestFullTab: boolean;
  cobrowsingVideoEnabled: 'two_way' | 'visitor_to_agent' | 'agent_to_visitor' | 'disabled';
  cobrowsingVideoAudioRelationship: 'independent' | 'video_requires_audio' | 'automatic';
  enableSessionRating: boolean; agentPrompt: string | null; assetsProxyConfigured: boolean;
}
export interface CovisitSegment { startTime: string; endTime: string | null; type: 'Alert' | 'Interact' | 'Hold'; howEnded: string | null; disconnectType: DisconnectType | null; }
export interface CovisitCommunication {
  state: 'alerting' | 'connected' | 'disconnected'; initialState: 'alerting' | 'connected' | 'disconnected'; id: string;
  disconnectType: DisconnectType | null;
  self: { name: string | null; nameRaw: string | null; addressNormalized: string | null; addressRaw: string | null; addressDisplayable: string | null };
  cobrowseSessionId: string; cobrowseRole: 'sharer' | 'viewer'; controlling: string[]; viewerUrl: string | null;
  providerEventTime: string; startAlertingTime: string | null; connectedTime: string | null; disconnectedTime: string | null;
  provider: string; peerId: string | null; segments: CovisitSegment[];
  wrapup: object | null; afterCallWork: object | null; afterCallWorkRequired: boolean;
}
export interface CovisitState {
  visitor: { short_id: string | null; lookup_code: string | null; unique_id: string | null; identities: string[]; tags: string[];
    call_name: string | null; email: string | null; name: string | null; nickname: string | null; metadata: Record<string, unknown>;
    is_waiting_for_call: boolean; is_in_session: boolean };
  connection: CovisitConnection | null;
  session: { id: string | null; status: SessionStatus; agents: CovisitAgent[]; session_authorized: boolean; went_live: boolean };
  communication: CovisitCommunication | null;
}
export interface CovisitEvents {
  ready: { shortId: string; uniqueConnectionId: string };
  sessionRequest: { sessionId: string; agent: CovisitAgent; recorded: boolean };
  sessionStart: { sessionId: string };
  sessionContinue: { sessionId: string };
  sessionEnd: { sessionId: string; disconnectType: DisconnectType };
  controlRequest: { agent: CovisitAgent };
  controlStart: { agentId: string };
  controlEnd: { agentId: string };
  /** The prompt of this kind moved to another tab of the visitor (focus changed): hide yours. */
  promptWithdrawn: { prompt: 'session' | 'control' };
  connectionChange: { online: boolean };
  stateChange: CovisitState;
  error: { code: string; message: string };
  /** An agent calls (issue 17). With a handler, answer with `acceptCall()` / `declineCall()`; without one the SDK asks. `video`: a video call; `camera`: the visitor's camera will be asked for too (`cobrowsingVideoEnabled`). */
  callRequest: { agent: CovisitAgent; video: boolean; camera: boolean };
  /** The call is connected: audio (and video) flow. */
  callStart: { agent: CovisitAgent; video: boolean };
  /** The call is over (also after a decline). */
  callEnd: { reason: CallEndReason };
}
/** Calls (issue 17): these methods are answered by the on-demand call file. */
export interface Covisit {
  /**
   * Accept the call an agent offers (`callRequest`): the browser then asks for the
   * microphone (and the camera for a video call the page's config lets through). Needed
   * only with a `callRequest` handler (otherwise the SDK asks the visitor).
   * ```js
   * cv.on('callRequest', ({ agent, video }) => askMyWay(agent, video) ? cv.acceptCall() : cv.declineCall());
   * ```
   */
  acceptCall(): Promise<void>;
  /** Decline the call an agent offers (`callEnd` with `reason: 'declined'`). */
  declineCall(): Promise<void>;
  /** Hang up the call (`callEnd` with `reason: 'hung_up_by_visitor'`). */
  endCall(): Promise<void>;
  /**
   * Turn the visitor's microphone on or off during a call. Under
   * `cobrowsingVideoAudioRelationship: 'video_requires_audio'` turning it off turns the
   * camera off too.
   */
  setMicrophone(on: boolean): Promise<void>;
  /**
   * Turn the visitor's camera on or off during a call. Rejects with `media_not_allowed`
   * where `cobrowsingVideoEnabled` keeps the visitor's video from the agent, or
   * (`video_requires_audio`) while the microphone is off; with `automatic`, turning the
   * camera on turns the microphone on too.
   */
  setCamera(on: boolean): Promise<void>;
}
/** Why a call ended (`callEnd`). */
export type CallEndReason = 'hung_up_by_agent' | 'hung_up_by_visitor' | 'declined' | 'media_denied' | 'session_ended' | 'tab_closed' | 'agent_left' | 'failed';
"#;
