//! Error responses: JSON `{"error": CODE, "message": TEXT}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::TokenError;

/// A JSON error response.
pub fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.to_string() })),
    )
        .into_response()
}

/// The status of a refused room token: 401, or 503 when the schedule could not be checked
/// (the link may be fine; retrying helps).
pub fn token_status(e: &TokenError) -> StatusCode {
    match e {
        TokenError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// 401 (or 503) for a refused room token (protocol §1).
pub fn token_error(e: &TokenError) -> Response {
    let mut body = json!({ "error": e.code(), "message": e.to_string() });
    if let TokenError::NotYetValid { valid_from } = e {
        body["validFrom"] = json!(valid_from);
    }
    (token_status(e), Json(body)).into_response()
}

pub fn shutting_down() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "shuttingDown",
        "the server is shutting down",
    )
}
