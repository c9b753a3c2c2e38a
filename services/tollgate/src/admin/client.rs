//! The admin API over HTTP: one authenticated request per call, answers
//! as JSON, and errors that say what failed (the API's own OpenAI error
//! message, or which URL could not be reached) without echoing the token.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why an admin API call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Nothing answered at the URL (refused, DNS, timeout, TLS).
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The API answered with an error status.
    #[error("the admin API refused the request ({status}): {message}")]
    Api { status: StatusCode, message: String },
    /// The API answered 2xx with a body that is not JSON.
    #[error("the admin API at {url} answered with something other than JSON: {reason}")]
    NotJson { url: String, reason: String },
}

/// A client for one admin API base URL and token.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
    actor: Option<String>,
}

/// The header naming who makes a request, for the audit log.
const ACTOR_HEADER: &str = "x-tollgate-actor";

impl AdminClient {
    /// `base` is the admin listener, e.g. `http://127.0.0.1:8081`; a
    /// trailing slash is dropped.
    pub fn new(base: &str, token: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
            actor: None,
        }
    }

    /// Names the operator in every request, for the audit log; a name that
    /// cannot be a header value (not visible ASCII) is not sent.
    pub fn with_actor(mut self, actor: Option<String>) -> Self {
        self.actor = actor.filter(|actor| {
            !actor.trim().is_empty() && reqwest::header::HeaderValue::from_str(actor).is_ok()
        });
        self
    }

    /// The full URL of an `/admin/v1/...` path.
    pub fn url(&self, path: &str) -> String {
        format!("{}/admin/v1{path}", self.base)
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, AdminError> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AdminError> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, AdminError> {
        self.call(Method::PATCH, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, AdminError> {
        self.call(Method::DELETE, path, &[], None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, AdminError> {
        let url = self.url(path);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .query(query);
        if let Some(actor) = &self.actor {
            request = request.header(ACTOR_HEADER, actor);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| AdminError::Unreachable {
                url: url.clone(),
                reason: error_chain(&error),
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| AdminError::Unreachable {
                url: url.clone(),
                reason: error_chain(&error),
            })?;
        if !status.is_success() {
            return Err(AdminError::Api {
                status,
                message: error_message(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|error| AdminError::NotJson {
            url,
            reason: error.to_string(),
        })
    }
}

/// The `error.message` of an OpenAI error body, else the body as text (cut
/// short), else a placeholder.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(message) = value["error"]["message"].as_str()
    {
        return message.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no error message".to_owned()
    } else {
        text.chars().take(300).collect()
    }
}

/// An error and its sources on one line (reqwest's own message alone is
/// often just "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_the_base_and_the_admin_prefix() {
        let client = AdminClient::new("http://127.0.0.1:8081/", "t".into());
        assert_eq!(
            client.url("/keys/key_1"),
            "http://127.0.0.1:8081/admin/v1/keys/key_1"
        );
    }

    #[test]
    fn error_messages_come_from_the_openai_body() {
        let body = br#"{"error":{"message":"missing or invalid admin token","type":"x"}}"#;
        assert_eq!(error_message(body), "missing or invalid admin token");
        assert_eq!(error_message(b"  bad gateway \n"), "bad gateway");
        assert_eq!(error_message(b""), "no error message");
        assert_eq!(error_message(&[b'x'; 1000]).len(), 300);
    }

    #[tokio::test]
    async fn an_unreachable_url_is_named_in_the_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = AdminClient::new(&format!("http://127.0.0.1:{port}"), "t".into());
        let error = client.get("/keys", &[]).await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, AdminError::Unreachable { .. }), "{text}");
        assert!(
            text.contains(&format!("http://127.0.0.1:{port}/admin/v1/keys")),
            "{text}"
        );
    }
}
