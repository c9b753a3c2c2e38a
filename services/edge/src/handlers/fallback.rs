//! Answers for unknown routes (404) and wrong methods (405), in the same
//! OpenAI error shape as every other failure.

use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;
use tollgate_core::{ErrorKind, GatewayError};

use crate::error::{ApiError, json_response};

/// Longest part of a path echoed back in an error message.
const MAX_ECHOED_PATH: usize = 200;

fn shown(uri: &Uri) -> String {
    uri.path().chars().take(MAX_ECHOED_PATH).collect()
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError(GatewayError::new(
        ErrorKind::NotFound,
        format!("unknown route: {method} {}", shown(&uri)),
    ))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({
            "error": {
                "message": format!("method {method} is not allowed on {}", shown(&uri)),
                "type": ErrorKind::InvalidRequest.openai_type(),
                "param": null,
                "code": "method_not_allowed",
            }
        }),
    )
}
