//! Reading request bodies under a size limit, and parsing them as JSON with
//! errors a client can act on.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use tollgate_core::{ErrorKind, GatewayError};

fn too_large(limit: usize) -> GatewayError {
    GatewayError::new(
        ErrorKind::PayloadTooLarge,
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// The whole body, refused with 413 when it (or its declared
/// `Content-Length`) passes `limit` bytes.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(_) => Err(GatewayError::invalid(
            "body",
            "the request body could not be read",
        )),
    }
}

/// `bytes` parsed as JSON, or a 400 that says where the JSON went wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let message = if bytes.iter().all(u8::is_ascii_whitespace) {
            "the request body is empty; expected a JSON object".to_owned()
        } else {
            format!("the request body is not valid: {error}")
        };
        let error = GatewayError::new(ErrorKind::InvalidRequest, message);
        match unknown_field(&error.message) {
            Some(name) => error.with_param(name),
            None => error,
        }
    })
}

/// The field named by serde's "unknown field `name`" message.
fn unknown_field(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("unknown field `")?;
    let (name, _) = rest.split_once('`')?;
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn accepts_bodies_up_to_the_limit() {
        let bytes = read_limited(&HeaderMap::new(), Body::from("12345"), 5)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"12345");
    }

    #[tokio::test]
    async fn refuses_long_bodies_and_long_declared_lengths() {
        let error = read_limited(&HeaderMap::new(), Body::from("123456"), 5)
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::PayloadTooLarge);

        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        let error = read_limited(&headers, Body::empty(), 5).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::PayloadTooLarge);
    }

    #[test]
    fn json_errors_say_what_went_wrong() {
        let error = parse_json::<serde_json::Value>(b"").unwrap_err();
        assert!(error.message.contains("empty"), "{}", error.message);
        let error = parse_json::<serde_json::Value>(b"{\"model\": ").unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert!(error.message.contains("line 1"), "{}", error.message);
    }

    #[test]
    fn unknown_fields_are_named_in_param() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Known {
            name: Option<String>,
        }
        let error = parse_json::<Known>(br#"{"nmae": "x"}"#).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("nmae"));
        assert!(error.message.contains("unknown field"), "{}", error.message);
    }
}
