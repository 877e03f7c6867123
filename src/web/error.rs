//! Errors thrown to JS: real `Error` objects carrying a stable `code` string.

use wasm_bindgen::prelude::*;

use crate::core::client::ClientError;
use crate::core::codes::ErrorCode;
use crate::core::config::ConfigError;

/// An error for JS: becomes an `Error` with `message` and a stable `code`.
#[derive(Debug, Clone)]
pub struct CovisitError {
    code: String,
    message: String,
}

impl CovisitError {
    pub fn new(code: ErrorCode, message: &str) -> CovisitError {
        CovisitError {
            code: code.as_str().to_string(),
            message: message.to_string(),
        }
    }

    /// An error the server sent (its code may be newer than this SDK's registry).
    pub fn owned(code: String, message: String) -> CovisitError {
        CovisitError { code, message }
    }
}

impl From<ClientError> for CovisitError {
    fn from(e: ClientError) -> CovisitError {
        CovisitError::new(e.code(), &e.message())
    }
}

impl From<ConfigError> for CovisitError {
    fn from(e: ConfigError) -> CovisitError {
        CovisitError::new(e.code(), &e.message())
    }
}

impl From<CovisitError> for JsValue {
    fn from(e: CovisitError) -> JsValue {
        let error = js_sys::Error::new(&e.message);
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(
            &error,
            &JsValue::from_str("code"),
            &JsValue::from_str(&e.code),
        );
        error.into()
    }
}
