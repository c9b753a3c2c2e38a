//! The request body an OpenAI-compatible upstream gets: the canonical body
//! with `model` set to the upstream model, the stream flags the call needs,
//! and the completion cap the lease reserved room for when the client set
//! none. A body that already fits is sent as is, without re-encoding.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};
use tollgate_core::GatewayError;

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<Value>,
    #[serde(default)]
    max_completion_tokens: Option<Value>,
}

impl Probe<'_> {
    fn has_cap(&self) -> bool {
        [&self.max_tokens, &self.max_completion_tokens]
            .into_iter()
            .any(|field| field.as_ref().is_some_and(|value| !value.is_null()))
    }
}

pub use tollgate_core::presets::CapField;

/// A completion cap to add to a body that sets none, in `field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cap {
    pub tokens: u32,
    pub field: CapField,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// How a call is made: plain, or streamed with or without asking for
/// usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Plain,
    /// `stream_options.include_usage` is asked for.
    StreamWithUsage,
    /// The upstream does not take `stream_options`: none is sent.
    Stream,
}

/// The body to send. For a stream, `stream: true` and, where the upstream
/// takes it, `stream_options.include_usage: true` (else no
/// `stream_options`); otherwise neither `stream` nor `stream_options`
/// (OpenAI refuses `stream_options` without a stream). `cap` is added when
/// the body has no cap of its own (a client's cap is never changed).
pub(crate) fn prepare(
    body: &Bytes,
    upstream_model: &str,
    mode: Mode,
    cap: Option<Cap>,
) -> Result<Bytes, GatewayError> {
    let mut cap = cap;
    if let Ok(probe) = serde_json::from_slice::<Probe<'_>>(body) {
        if probe.has_cap() {
            cap = None;
        }
        if cap.is_none() && fits(&probe, upstream_model, mode) {
            return Ok(body.clone());
        }
    }
    let mut object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| GatewayError::invalid("body", "the request body is not a JSON object"))?;
    if !upstream_model.is_empty() {
        object.insert("model".to_owned(), Value::from(upstream_model));
    }
    if mode == Mode::StreamWithUsage {
        object.insert("stream".to_owned(), Value::Bool(true));
        let options = object
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if !options.is_object() {
            *options = Value::Object(Map::new());
        }
        if let Value::Object(options) = options {
            options.insert("include_usage".to_owned(), Value::Bool(true));
        }
    } else if mode == Mode::Stream {
        object.insert("stream".to_owned(), Value::Bool(true));
        object.remove("stream_options");
    } else {
        object.remove("stream");
        object.remove("stream_options");
    }
    if let Some(cap) = cap
        && ["max_tokens", "max_completion_tokens"]
            .iter()
            .all(|field| object.get(*field).is_none_or(Value::is_null))
    {
        object.insert(cap.field.name().to_owned(), Value::from(cap.tokens));
    }
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(|_| GatewayError::invalid("body", "the request body is not a JSON object"))
}

fn fits(probe: &Probe<'_>, upstream_model: &str, mode: Mode) -> bool {
    let model_fits = upstream_model.is_empty() || probe.model.as_deref() == Some(upstream_model);
    let stream_fits = match mode {
        Mode::StreamWithUsage => {
            probe.stream == Some(true)
                && probe
                    .stream_options
                    .as_ref()
                    .and_then(|options| options.include_usage)
                    == Some(true)
        }
        Mode::Stream => probe.stream == Some(true) && probe.stream_options.is_none(),
        Mode::Plain => probe.stream != Some(true) && probe.stream_options.is_none(),
    };
    model_fits && stream_fits
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(body: Value, model: &str, stream: bool) -> (Bytes, Value) {
        let body = Bytes::from(body.to_string());
        let mode = if stream {
            Mode::StreamWithUsage
        } else {
            Mode::Plain
        };
        let out = prepare(&body, model, mode, None).unwrap();
        let value = serde_json::from_slice(&out).unwrap();
        (out, value)
    }

    #[test]
    fn a_fitting_body_is_sent_without_copying() {
        let body = Bytes::from(r#"{"model":"gpt-x","messages":[]}"#);
        let out = prepare(&body, "gpt-x", Mode::Plain, None).unwrap();
        assert_eq!(out.as_ptr(), body.as_ptr());
        let body = Bytes::from(
            r#"{"model":"gpt-x","stream":true,"stream_options":{"include_usage":true}}"#,
        );
        assert_eq!(
            prepare(&body, "gpt-x", Mode::StreamWithUsage, None)
                .unwrap()
                .as_ptr(),
            body.as_ptr()
        );
    }

    #[test]
    fn rewrites_the_model() {
        let (_, value) = prepared(
            json!({"model": "alias", "messages": [], "temperature": 0.5}),
            "gpt-x",
            false,
        );
        assert_eq!(
            value,
            json!({"model": "gpt-x", "messages": [], "temperature": 0.5})
        );
    }

    #[test]
    fn streams_always_ask_for_usage() {
        let (_, value) = prepared(json!({"model": "m", "stream": true}), "m", true);
        assert_eq!(value["stream_options"], json!({"include_usage": true}));
        let (_, value) = prepared(
            json!({"model": "m", "stream_options": {"include_usage": false, "other": 1}}),
            "m",
            true,
        );
        assert_eq!(value["stream"], true);
        assert_eq!(
            value["stream_options"],
            json!({"include_usage": true, "other": 1})
        );
        let (_, value) = prepared(json!({"model": "m", "stream_options": null}), "m", true);
        assert_eq!(value["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn plain_calls_drop_stream_flags() {
        let (_, value) = prepared(
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}}),
            "m",
            false,
        );
        assert_eq!(value, json!({"model": "m"}));
    }

    #[test]
    fn streams_to_upstreams_without_the_option_send_none() {
        let body =
            Bytes::from(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#);
        let out = prepare(&body, "m", Mode::Stream, None).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value, json!({"model": "m", "stream": true}));
        let body = Bytes::from(r#"{"model":"m","stream":true}"#);
        let out = prepare(&body, "m", Mode::Stream, None).unwrap();
        assert_eq!(out.as_ptr(), body.as_ptr());
    }

    #[test]
    fn rejects_a_body_that_is_not_an_object() {
        let error = prepare(&Bytes::from_static(b"[1]"), "m", Mode::Plain, None).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("body"));
    }

    #[test]
    fn a_reserved_cap_is_added_only_where_the_client_set_none() {
        let cap = |field| Some(Cap { tokens: 300, field });
        let body = Bytes::from(r#"{"model":"m","messages":[]}"#);
        let out = prepare(&body, "m", Mode::Plain, cap(CapField::MaxCompletionTokens)).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["max_completion_tokens"], 300);
        assert!(value.get("max_tokens").is_none());
        let out = prepare(&body, "m", Mode::StreamWithUsage, cap(CapField::MaxTokens)).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["max_tokens"], 300);

        // A client's own cap, in either field, is sent as it is, uncopied.
        for own in [
            r#"{"model":"m","max_tokens":50}"#,
            r#"{"model":"m","max_completion_tokens":50}"#,
        ] {
            let body = Bytes::from(own);
            let out = prepare(&body, "m", Mode::Plain, cap(CapField::MaxTokens)).unwrap();
            assert_eq!(out.as_ptr(), body.as_ptr());
        }
        // A null cap is no cap.
        let body = Bytes::from(r#"{"model":"m","max_tokens":null}"#);
        let out = prepare(&body, "m", Mode::Plain, cap(CapField::MaxTokens)).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["max_tokens"], 300);
    }
}
