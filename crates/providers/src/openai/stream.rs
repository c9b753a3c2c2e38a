//! Relays an upstream's SSE stream as [`StreamEvent`]s, one per data
//! payload as it arrives.
//!
//! The usage chunk (`choices: []`) is held back and becomes the final
//! [`StreamEvent::Usage`] once `[DONE]` arrives, so a stream that breaks
//! before `[DONE]` ends with an error and never with usage. An upstream that
//! puts usage on a content chunk, or sends none, still gets a usage event
//! (its usage, or the gateway's estimate) with a chunk made to carry it.

use std::time::Duration;

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tollgate_core::GatewayError;

use super::chunk::ChunkProbe;
use crate::call::{EventStream, StreamEvent};
use crate::chat::UsageJson;
use crate::errors;
use crate::event_stream::{Framing, StreamDecoder, decode_events};
use crate::exchange::ByteStream;
use crate::usage::Usage;

/// The stream of events of one upstream response body. `idle_timeout`
/// bounds the wait for each next piece; `request_body` feeds the usage
/// estimate when the upstream reports none.
pub(crate) fn events(body: ByteStream, idle_timeout: Duration, request_body: Bytes) -> EventStream {
    decode_events(
        body,
        idle_timeout,
        Framing::Sse,
        Chunks {
            request_body,
            first_chunk: None,
            usage: None,
            completion_bytes: 0,
        },
    )
}

/// Chat Completions chunks, relayed as they are.
struct Chunks {
    request_body: Bytes,
    /// Kept to describe the stream (id, model) in a made-up usage chunk.
    first_chunk: Option<Bytes>,
    /// The usage seen so far, with its usage-only chunk when there was one.
    usage: Option<(Usage, Option<Bytes>)>,
    completion_bytes: usize,
}

impl StreamDecoder for Chunks {
    fn decode(&mut self, data: Bytes) -> Result<Option<StreamEvent>, GatewayError> {
        self.handle(data)
    }
}

impl Chunks {
    fn handle(&mut self, data: Bytes) -> Result<Option<StreamEvent>, GatewayError> {
        if data.trim_ascii() == b"[DONE]" {
            return Ok(Some(self.final_usage()));
        }
        let Ok(chunk) = serde_json::from_slice::<ChunkProbe>(&data) else {
            // Valid JSON of an unexpected shape is relayed as it is.
            serde_json::from_slice::<IgnoredAny>(&data).map_err(|_| errors::unreadable())?;
            return Ok(Some(StreamEvent::Data(data)));
        };
        if chunk.error.is_some() {
            return Err(errors::stream_error_event());
        }
        let choices = chunk.choices.unwrap_or_default();
        self.completion_bytes += choices
            .iter()
            .filter_map(|choice| choice.delta.as_ref())
            .map(|delta| delta.content + delta.reasoning_content)
            .sum::<usize>();
        if self.first_chunk.is_none() {
            self.first_chunk = Some(data.clone());
        }
        match chunk.usage {
            Some(usage) if choices.is_empty() => {
                self.usage = Some((usage.into(), Some(data)));
                Ok(None)
            }
            Some(usage) => {
                self.usage = Some((usage.into(), None));
                Ok(Some(StreamEvent::Data(data)))
            }
            None => Ok(Some(StreamEvent::Data(data))),
        }
    }

    fn final_usage(&mut self) -> StreamEvent {
        match self.usage.take() {
            Some((usage, Some(data))) => StreamEvent::Usage { usage, data },
            Some((usage, None)) => StreamEvent::Usage {
                usage,
                data: self.usage_chunk(usage),
            },
            None => {
                let usage = Usage::estimate(&self.request_body, self.completion_bytes);
                StreamEvent::Usage {
                    usage,
                    data: self.usage_chunk(usage),
                }
            }
        }
    }

    /// A `chat.completion.chunk` with empty `choices` carrying `usage`.
    fn usage_chunk(&self, usage: Usage) -> Bytes {
        let first: Value = self
            .first_chunk
            .as_ref()
            .and_then(|chunk| serde_json::from_slice(chunk).ok())
            .unwrap_or(Value::Null);
        let chunk = json!({
            "id": first.get("id").cloned().unwrap_or(Value::Null),
            "object": "chat.completion.chunk",
            "created": first.get("created").cloned().unwrap_or(Value::Null),
            "model": first.get("model").cloned().unwrap_or(Value::Null),
            "choices": [],
            "usage": UsageJson::from(usage),
        });
        Bytes::from(chunk.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::HttpError;
    use futures_util::{StreamExt, stream};
    use tollgate_core::ErrorKind;

    fn body_of(pieces: &[&'static str]) -> ByteStream {
        let items: Vec<Result<Bytes, HttpError>> = pieces
            .iter()
            .map(|piece| Ok(Bytes::from_static(piece.as_bytes())))
            .collect();
        Box::pin(stream::iter(items))
    }

    async fn relay(pieces: &[&'static str]) -> Vec<Result<StreamEvent, GatewayError>> {
        let request = Bytes::from_static(br#"{"messages":[{"role":"user","content":"abcd"}]}"#);
        events(body_of(pieces), Duration::from_secs(5), request)
            .collect()
            .await
    }

    const CONTENT: &str = r#"{"id":"c1","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"abcdefgh"}}]}"#;

    #[tokio::test]
    async fn relays_data_and_holds_usage_until_done() {
        let events = relay(&[
            "data: ",
            CONTENT,
            "\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n",
            "data: [DONE]\n\n",
        ])
        .await;
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].as_ref().unwrap(),
            &StreamEvent::Data(Bytes::from_static(CONTENT.as_bytes()))
        );
        let StreamEvent::Usage { usage, data } = events[1].as_ref().unwrap() else {
            panic!("{events:?}");
        };
        assert_eq!(
            *usage,
            Usage {
                prompt: 4,
                completion: 2,
                cached: 1,
                ..Usage::default()
            }
        );
        assert!(data.starts_with(b"{\"choices\":[]"));
    }

    #[tokio::test]
    async fn a_cut_before_done_is_an_error_even_after_usage() {
        let events = relay(&[
            "data: ",
            CONTENT,
            "\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n",
        ])
        .await;
        assert_eq!(events.len(), 2);
        assert!(matches!(events[0], Ok(StreamEvent::Data(_))));
        assert_eq!(
            events[1].as_ref().unwrap_err().kind,
            ErrorKind::UpstreamError
        );
    }

    #[tokio::test]
    async fn estimates_usage_when_the_upstream_sends_none() {
        let events = relay(&["data: ", CONTENT, "\n\ndata: [DONE]\n\n"]).await;
        let StreamEvent::Usage { usage, data } = events[1].as_ref().unwrap() else {
            panic!("{events:?}");
        };
        assert_eq!(
            *usage,
            Usage {
                prompt: 3 + 4 + 1,
                completion: 2,
                cached: 0,
                ..Usage::default()
            }
        );
        let chunk: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(chunk["id"], "c1");
        assert_eq!(chunk["model"], "m");
        assert_eq!(chunk["choices"], json!([]));
        assert_eq!(chunk["usage"]["total_tokens"], 10);
    }

    #[tokio::test]
    async fn usage_on_a_content_chunk_is_relayed_and_reported() {
        let with_usage = r#"{"id":"c1","choices":[{"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1}}"#;
        let events = relay(&["data: ", with_usage, "\n\ndata: [DONE]\n\n"]).await;
        assert!(matches!(&events[0], Ok(StreamEvent::Data(data)) if data == with_usage.as_bytes()));
        let StreamEvent::Usage { usage, data } = events[1].as_ref().unwrap() else {
            panic!("{events:?}");
        };
        assert_eq!(usage.prompt, 9);
        let chunk: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(chunk["usage"]["completion_tokens"], 1);
    }

    #[tokio::test]
    async fn error_events_and_garbage_end_the_stream() {
        let events = relay(&["data: {\"error\":{\"message\":\"boom sk-secret\"}}\n\n"]).await;
        assert_eq!(events.len(), 1);
        let error = events[0].as_ref().unwrap_err();
        assert_eq!(error.kind, ErrorKind::UpstreamError);
        assert!(!error.message.contains("sk-secret"));

        let events = relay(&["data: not json\n\n", "data: [DONE]\n\n"]).await;
        assert_eq!(events.len(), 1);
        assert!(events[0].is_err());

        let events = relay(&["data: {\"choices\":{}}\n\n", "data: [DONE]\n\n"]).await;
        assert!(matches!(events[0], Ok(StreamEvent::Data(_))));
        assert!(matches!(events[1], Ok(StreamEvent::Usage { .. })));
    }

    #[tokio::test]
    async fn lenient_about_odd_content_types() {
        let odd = r#"{"choices":[{"delta":{"content":[{"type":"text"}],"reasoning_content":null,"role":"assistant"}}],"usage":null}"#;
        let events = relay(&["data: ", odd, "\n\ndata: [DONE]\n\n"]).await;
        assert!(matches!(events[0], Ok(StreamEvent::Data(_))));
        assert!(matches!(events[1], Ok(StreamEvent::Usage { .. })));
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out() {
        let body: ByteStream = Box::pin(stream::pending());
        let events: Vec<_> = events(body, Duration::from_millis(20), Bytes::new())
            .collect()
            .await;
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].as_ref().unwrap_err().kind,
            ErrorKind::UpstreamTimeout
        );
    }
}
