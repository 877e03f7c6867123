//! The wasm-bindgen facade: the only code that touches JS. It converts arguments, makes
//! one core call and converts back; no protocol logic lives here.
//!
//! This is the foundation's facade: it proves the core loads and runs in a browser and
//! gives JS the core's config validation with typed errors. The session client (clock,
//! timer, WebSocket, DOM listeners, UI) builds on it.

mod error;

use wasm_bindgen::prelude::*;

use crate::core::config;

pub use error::CovisitError;

#[wasm_bindgen(start)]
fn start_module() {
    console_error_panic_hook::set_once();
}

/// The SDK's version.
///
/// ```js
/// import { version } from 'covisit';
/// console.log(version()); // "0.1.0"
/// ```
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Checks a config object the way `start(config)` will, and returns it normalized
/// (defaults filled in). Throws an `Error` whose `code` says what is wrong:
/// `config_unknown_key`, `config_wrong_type`, `config_missing_key`,
/// `config_invalid_value` or `config_not_object`.
///
/// ```js
/// try { validateConfig({ apiKey: 'pk_demo', server: 'http://127.0.0.1:8080', allowRemoteType: 'yes' }); }
/// catch (e) { console.log(e.code); } // "config_wrong_type"
/// ```
#[wasm_bindgen(js_name = validateConfig)]
pub fn validate_config(
    #[wasm_bindgen(unchecked_param_type = "CovisitConfig")] value: JsValue,
) -> Result<JsValue, CovisitError> {
    let json: serde_json::Value = serde_wasm_bindgen::from_value(value)
        .map_err(|_| CovisitError::new("config_not_object", "config must be a plain object"))?;
    let parsed =
        config::parse_config(&json).map_err(|e| CovisitError::new(e.code(), &e.to_string()))?;
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
    serde_json::Value::Object(out)
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| CovisitError::new("internal", &e.to_string()))
}

use serde::Serialize as _;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** The SDK's configuration (SPEC.md section 3). */
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
"#;
