//! What the mock upstream has served, for tests to assert on: counters, and
//! the last chat request's body and `Authorization` header.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MockStats {
    /// Chat completion requests received, whatever the outcome.
    pub requests: u64,
    /// Chat requests answered with a stream.
    pub streams: u64,
    /// Chat requests answered with an error status (401, 400, injected).
    pub failures: u64,
    /// Streams cut before `[DONE]`.
    pub cut_streams: u64,
    /// `GET /v1/models` requests.
    pub model_list_requests: u64,
    /// The last chat request's body (JSON; a string if it was not JSON).
    pub last_body: Option<Value>,
    /// The last chat request's `Authorization` header.
    pub last_authorization: Option<String>,
    /// Chat requests by the bearer API key they presented.
    pub by_key: BTreeMap<String, KeyStats>,
}

/// What the mock saw of one API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyStats {
    /// Chat requests that presented it.
    pub requests: u64,
    /// The last such request's body (JSON; a string if it was not JSON).
    pub last_body: Option<Value>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) streams: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) cut_streams: AtomicU64,
    pub(crate) model_list_requests: AtomicU64,
    last: Mutex<LastRequest>,
}

#[derive(Debug, Default)]
struct LastRequest {
    body: Option<Bytes>,
    authorization: Option<HeaderValue>,
    by_key: BTreeMap<String, (u64, Bytes)>,
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

impl Stats {
    /// Counts a chat request (under `key`, the bearer key it presented)
    /// and returns its 0-based index.
    pub(crate) fn record_chat(
        &self,
        body: &Bytes,
        authorization: Option<&HeaderValue>,
        key: Option<&str>,
    ) -> u64 {
        let index = self.requests.fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        last.body = Some(body.clone());
        last.authorization = authorization.cloned();
        if let Some(key) = key {
            let entry = last
                .by_key
                .entry(key.to_owned())
                .or_insert_with(|| (0, Bytes::new()));
            entry.0 += 1;
            entry.1 = body.clone();
        }
        index
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MockStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        MockStats {
            requests: load(&self.requests),
            streams: load(&self.streams),
            failures: load(&self.failures),
            cut_streams: load(&self.cut_streams),
            model_list_requests: load(&self.model_list_requests),
            last_body: last.body.as_ref().map(json_or_text),
            last_authorization: last
                .authorization
                .as_ref()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
            by_key: last
                .by_key
                .iter()
                .map(|(key, (requests, body))| {
                    let stats = KeyStats {
                        requests: *requests,
                        last_body: Some(json_or_text(body)),
                    };
                    (key.clone(), stats)
                })
                .collect(),
        }
    }

    pub(crate) fn reset(&self) {
        for counter in [
            &self.requests,
            &self.streams,
            &self.failures,
            &self.cut_streams,
            &self.model_list_requests,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = LastRequest::default();
    }
}
