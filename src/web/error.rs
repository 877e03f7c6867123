//! Errors thrown to JS: real `Error` objects carrying a stable `code` string.

use wasm_bindgen::prelude::*;

/// An error for JS: becomes an `Error` with `message` and a stable `code`.
#[derive(Debug, Clone)]
pub struct CovisitError {
    code: &'static str,
    message: String,
}

impl CovisitError {
    pub fn new(code: &'static str, message: &str) -> CovisitError {
        CovisitError {
            code,
            message: message.to_string(),
        }
    }
}

impl From<CovisitError> for JsValue {
    fn from(e: CovisitError) -> JsValue {
        let error = js_sys::Error::new(&e.message);
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(
            &error,
            &JsValue::from_str("code"),
            &JsValue::from_str(e.code),
        );
        error.into()
    }
}
