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

use crate::core::config;
use crate::core::Millis;

pub use error::CovisitError;

#[wasm_bindgen(start)]
fn start_module() {
    console_error_panic_hook::set_once();
}

#[cfg_attr(not(feature = "session-client"), allow(dead_code))] // used by the session client
fn now() -> Millis {
    Millis(js_sys::Date::now() as u64)
}

// Values cross the JS boundary as JSON text (JSON.parse / JSON.stringify) rather than
// through serde-wasm-bindgen: serde_json is needed for the wire anyway, and one
// serializer per type instead of two keeps the bundle inside its size budget.
fn to_js<T: Serialize>(value: &T) -> JsValue {
    serde_json::to_string(value)
        .ok()
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .unwrap_or(JsValue::NULL)
}

fn from_js(value: &JsValue) -> Result<serde_json::Value, CovisitError> {
    if value.is_undefined() || value.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let bad = || CovisitError::new("invalid_argument", "argument must be a plain JSON object");
    let text = js_sys::JSON::stringify(value).map_err(|_| bad())?;
    serde_json::from_str(&String::from(text)).map_err(|_| bad())
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

/// Checks a config object the way `start(config)` does and returns the permissions it
/// would use (defaults filled in). Throws an `Error` whose `code` says what is wrong.
///
/// ```js
/// try { validateConfig({ apiKey: 'pk_demo', server: 'http://127.0.0.1:8080', allowRemoteType: 'yes' }); }
/// catch (e) { console.log(e.code); } // "config_wrong_type"
/// ```
#[wasm_bindgen(js_name = validateConfig)]
pub fn validate_config(
    #[wasm_bindgen(unchecked_param_type = "CovisitConfig")] value: JsValue,
) -> Result<JsValue, CovisitError> {
    let parsed = config::parse_config(&from_js(&value)?)?;
    let mut out = serde_json::Map::new();
    out.insert("apiKey".into(), parsed.api_key.into());
    out.insert("server".into(), parsed.server.into());
    out.insert(
        "authorizationTimeoutSeconds".into(),
        parsed.authorization_timeout_seconds.into(),
    );
    if let Ok(serde_json::Value::Object(permissions)) = serde_json::to_value(&parsed.permissions) {
        out.extend(permissions);
    }
    Ok(to_js(&serde_json::Value::Object(out)))
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
  uniqueId?: string | null;
  identities?: string[] | null;
  tags?: string[] | null;
  callName?: string | null;
  email?: string | null;
  metadata?: Record<string, unknown> | null;
}
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
  sessionRequest: { sessionId: string; agent: CovisitAgent };
  sessionStart: { sessionId: string };
  sessionContinue: { sessionId: string };
  sessionEnd: { sessionId: string; disconnectType: DisconnectType };
  controlRequest: { agent: CovisitAgent };
  controlStart: { agentId: string };
  controlEnd: { agentId: string };
  connectionChange: { online: boolean };
  stateChange: CovisitState;
  error: { code: string; message: string };
}
"#;
