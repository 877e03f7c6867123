//! The REST API's error type: a JSON `{"error": {"code", "message"}}` with a 4xx/5xx
//! status and a stable `code`, and reading a JSON body into it. Leaf module: names no
//! other module.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use covisit::core::codes::ErrorCode;
use serde_json::{json, Value};

/// A REST failure, answered as `{"error": {"code", "message"}}`.
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

/// What a REST handler returns.
pub type ApiResult = Result<Response, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NOT_FOUND,
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: &str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::FORBIDDEN, message)
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_ARGUMENT,
            message,
        )
    }

    /// A failure of ours: logged (the error's text never holds personal data), answered
    /// without detail.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::INTERNAL,
            "internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

/// A request body as JSON, or `bad_json`.
pub fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BAD_JSON,
            format!("request body is not valid JSON: {e}"),
        )
    })
}
