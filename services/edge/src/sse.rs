//! Server-sent events for streamed answers: the framing of one event, and
//! [`Relay`], which turns the router's chunk stream into SSE bytes as each
//! chunk arrives, written by the [`StreamFormat`] of the API the client
//! speaks.
//!
//! In Chat Completions ([`ChatFormat`]), data chunks become `data:
//! <json>\n\n`; the usage chunk is written only when the client asked for
//! it; a clean end writes `data: [DONE]\n\n`; a failure mid-stream writes
//! one `data: {"error":{...}}` event and ends without `[DONE]`, so clients
//! see that the answer is incomplete.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::BoxStream;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::ChatChunk;
use tollgate_proto::v1::chat_chunk::Event;
use tollgate_providers::StreamTranslator;

/// The event that ends a complete stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// One `data:` event carrying `payload`. A payload with line breaks is split
/// over several `data:` lines, which SSE readers join back with `\n`.
pub fn frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    let mut rest = payload;
    loop {
        let end = rest.iter().position(|b| matches!(b, b'\n' | b'\r'));
        out.put_slice(b"data: ");
        out.put_slice(&rest[..end.unwrap_or(rest.len())]);
        out.put_u8(b'\n');
        let Some(end) = end else { break };
        let skip = if rest[end..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// The event that reports a failure mid-stream.
pub fn error_event(error: &GatewayError) -> Bytes {
    frame(error.openai_body().to_string().as_bytes())
}

/// How a relayed stream is written for the API the client speaks.
pub trait StreamFormat: Send + Unpin + 'static {
    /// The bytes for one data chunk (a `chat.completion.chunk`), if any.
    fn data(&mut self, data: &[u8]) -> Option<Bytes>;
    /// The bytes for the usage chunk, if any.
    fn usage(&mut self, data: &[u8]) -> Option<Bytes>;
    /// The bytes that end a complete stream.
    fn done(&mut self) -> Bytes;
    /// The bytes that end a failed stream.
    fn error(&mut self, error: &GatewayError) -> Bytes;
}

/// Chat Completions' stream, relayed as it is.
#[derive(Debug, Clone, Copy)]
pub struct ChatFormat {
    /// The client asked for the usage chunk.
    pub include_usage: bool,
}

impl StreamFormat for ChatFormat {
    fn data(&mut self, data: &[u8]) -> Option<Bytes> {
        Some(frame(data))
    }

    fn usage(&mut self, data: &[u8]) -> Option<Bytes> {
        (self.include_usage && !data.is_empty()).then(|| frame(data))
    }

    fn done(&mut self) -> Bytes {
        Bytes::from_static(DONE)
    }

    fn error(&mut self, error: &GatewayError) -> Bytes {
        error_event(error)
    }
}

/// Another API's stream (Anthropic Messages, OpenAI Responses), written
/// from the Chat chunks by its [`StreamTranslator`].
#[derive(Debug)]
pub struct TranslatedFormat<T>(pub T);

impl<T: StreamTranslator + Unpin> StreamFormat for TranslatedFormat<T> {
    fn data(&mut self, data: &[u8]) -> Option<Bytes> {
        // A chunk that cannot be read is left out; the stream goes on.
        self.0.chunk(data).ok().filter(|bytes| !bytes.is_empty())
    }

    fn usage(&mut self, data: &[u8]) -> Option<Bytes> {
        self.0.usage(data);
        None
    }

    fn done(&mut self) -> Bytes {
        self.0.finish()
    }

    fn error(&mut self, error: &GatewayError) -> Bytes {
        self.0.error_event(error)
    }
}

/// How a relayed stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The router's stream ended; `[DONE]` was written.
    Completed,
    /// An error event was written.
    Failed(ErrorKind),
    /// The client went away before the end.
    Abandoned,
}

/// Told what a relay does, for metrics.
pub trait RelayObserver: Send + Unpin + 'static {
    /// The first `data` chunk is being written.
    fn first_data(&mut self);
    /// The relay ended (called exactly once).
    fn ended(&mut self, ending: Ending);
}

impl RelayObserver for () {
    fn first_data(&mut self) {}
    fn ended(&mut self, _ending: Ending) {}
}

/// The SSE body of a streamed answer.
pub struct Relay<F: StreamFormat, O: RelayObserver> {
    chunks: BoxStream<ChatChunk>,
    /// A chunk read ahead by the caller, written first.
    pending: Option<ChatChunk>,
    format: F,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    seen_data: bool,
    finished: bool,
    observer: O,
}

impl<F: StreamFormat, O: RelayObserver> Relay<F, O> {
    /// Relays `chunks` (after `pending`) in `format`, failing with a
    /// timeout when no chunk arrives for `idle_timeout`.
    pub fn new(
        chunks: BoxStream<ChatChunk>,
        pending: Option<ChatChunk>,
        format: F,
        idle_timeout: Duration,
        observer: O,
    ) -> Self {
        Self {
            chunks,
            pending,
            format,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            seen_data: false,
            finished: false,
            observer,
        }
    }

    fn finish(&mut self, ending: Ending) {
        self.finished = true;
        self.observer.ended(ending);
    }

    /// The bytes to write for `chunk`, if any.
    fn bytes_of(&mut self, chunk: ChatChunk) -> Option<Bytes> {
        match chunk.event? {
            Event::Data(data) => {
                if !self.seen_data {
                    self.seen_data = true;
                    self.observer.first_data();
                }
                self.format.data(&data)
            }
            Event::Usage(usage) => self.format.usage(&usage.data),
            Event::ServedBy(_) => None,
        }
    }
}

impl<F: StreamFormat, O: RelayObserver> Stream for Relay<F, O> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(chunk) = this.pending.take()
            && let Some(bytes) = this.bytes_of(chunk)
        {
            return Poll::Ready(Some(Ok(bytes)));
        }
        loop {
            match this.chunks.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let deadline = Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    if let Some(bytes) = this.bytes_of(chunk) {
                        return Poll::Ready(Some(Ok(bytes)));
                    }
                }
                Poll::Ready(Some(Err(status))) => {
                    let error = GatewayError::from_status(&status);
                    this.finish(Ending::Failed(error.kind));
                    return Poll::Ready(Some(Ok(this.format.error(&error))));
                }
                Poll::Ready(None) => {
                    this.finish(Ending::Completed);
                    return Poll::Ready(Some(Ok(this.format.done())));
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let error = GatewayError::new(
                        ErrorKind::UpstreamTimeout,
                        "the upstream stopped sending the answer",
                    );
                    this.finish(Ending::Failed(error.kind));
                    return Poll::Ready(Some(Ok(this.format.error(&error))));
                }
            }
        }
    }
}

impl<F: StreamFormat, O: RelayObserver> Drop for Relay<F, O> {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(Ending::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tollgate_proto::v1::{ServedBy, Usage, UsageChunk};

    #[test]
    fn frames_single_and_multi_line_payloads() {
        assert_eq!(&frame(b"{\"a\":1}")[..], b"data: {\"a\":1}\n\n");
        assert_eq!(
            &frame(b"{\n\"a\":1\r\n}")[..],
            b"data: {\ndata: \"a\":1\ndata: }\n\n"
        );
        assert_eq!(&frame(b"a\rb")[..], b"data: a\ndata: b\n\n");
        assert_eq!(&frame(b"")[..], b"data: \n\n");
    }

    #[test]
    fn error_event_carries_the_openai_error() {
        let event = error_event(&GatewayError::new(ErrorKind::UpstreamError, "boom"));
        let text = std::str::from_utf8(&event).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(json["error"]["code"], "upstream_error");
        assert!(text.ends_with("\n\n"));
    }

    fn data(payload: &str) -> Result<ChatChunk, tonic::Status> {
        Ok(ChatChunk {
            event: Some(Event::Data(Bytes::copy_from_slice(payload.as_bytes()))),
        })
    }

    fn usage(payload: &str) -> Result<ChatChunk, tonic::Status> {
        Ok(ChatChunk {
            event: Some(Event::Usage(UsageChunk {
                usage: Some(Usage::default()),
                data: Bytes::copy_from_slice(payload.as_bytes()),
            })),
        })
    }

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<String>>>);

    impl RelayObserver for Record {
        fn first_data(&mut self) {
            self.0.lock().unwrap().push("first".into());
        }
        fn ended(&mut self, ending: Ending) {
            self.0.lock().unwrap().push(format!("{ending:?}"));
        }
    }

    async fn relay(
        items: Vec<Result<ChatChunk, tonic::Status>>,
        include_usage: bool,
    ) -> (String, Vec<String>) {
        let record = Record::default();
        let chunks: BoxStream<ChatChunk> = Box::pin(futures_util::stream::iter(items));
        let relay = Relay::new(
            chunks,
            None,
            ChatFormat { include_usage },
            Duration::from_secs(5),
            record.clone(),
        );
        let parts: Vec<_> = relay.collect().await;
        let bytes: Vec<u8> = parts
            .into_iter()
            .flat_map(|part| part.unwrap().to_vec())
            .collect();
        let events = record.0.lock().unwrap().clone();
        (String::from_utf8(bytes).unwrap(), events)
    }

    #[tokio::test]
    async fn relays_data_then_done_and_usage_only_when_asked() {
        let items = || vec![data("{\"n\":1}"), data("{\"n\":2}"), usage("{\"u\":1}")];
        let (text, events) = relay(items(), true).await;
        assert_eq!(
            text,
            "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"u\":1}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(events, ["first", "Completed"]);
        let (text, _) = relay(items(), false).await;
        assert_eq!(
            text,
            "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: [DONE]\n\n"
        );
    }

    #[tokio::test]
    async fn mid_stream_error_ends_without_done() {
        let error = GatewayError::new(ErrorKind::UpstreamError, "upstream broke");
        let items = vec![data("{}"), Err(error.to_status()), data("{\"late\":1}")];
        let (text, events) = relay(items, false).await;
        assert!(text.starts_with("data: {}\n\ndata: {\"error\":"), "{text}");
        assert!(text.contains("upstream_error"), "{text}");
        assert!(!text.contains("[DONE]") && !text.contains("late"), "{text}");
        assert_eq!(events, ["first", "Failed(UpstreamError)"]);
    }

    #[tokio::test]
    async fn pending_chunk_goes_first_and_route_chunks_are_skipped() {
        let route = Ok(ChatChunk {
            event: Some(Event::ServedBy(ServedBy::default())),
        });
        let chunks: BoxStream<ChatChunk> =
            Box::pin(futures_util::stream::iter(vec![route, data("b")]));
        let first = data("a").unwrap();
        let relay = Relay::new(
            chunks,
            Some(first),
            ChatFormat {
                include_usage: false,
            },
            Duration::from_secs(5),
            (),
        );
        let parts: Vec<_> = relay.map(|part| part.unwrap()).collect().await;
        assert_eq!(parts.concat(), b"data: a\n\ndata: b\n\ndata: [DONE]\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_past_the_idle_timeout_is_an_error() {
        let record = Record::default();
        let chunks: BoxStream<ChatChunk> = Box::pin(
            futures_util::stream::iter(vec![data("a")]).chain(futures_util::stream::pending()),
        );
        let relay = Relay::new(
            chunks,
            None,
            ChatFormat {
                include_usage: false,
            },
            Duration::from_secs(30),
            record.clone(),
        );
        let parts: Vec<_> = relay.map(|part| part.unwrap()).collect().await;
        let text = String::from_utf8(parts.concat()).unwrap();
        assert!(text.contains("upstream_timeout"), "{text}");
        assert_eq!(
            *record.0.lock().unwrap(),
            ["first", "Failed(UpstreamTimeout)"]
        );
    }

    #[tokio::test]
    async fn dropping_early_reports_abandoned() {
        let record = Record::default();
        let chunks: BoxStream<ChatChunk> =
            Box::pin(futures_util::stream::iter(vec![data("a"), data("b")]));
        let mut relay = Relay::new(
            chunks,
            None,
            ChatFormat {
                include_usage: false,
            },
            Duration::from_secs(5),
            record.clone(),
        );
        assert!(relay.next().await.is_some());
        drop(relay);
        assert_eq!(*record.0.lock().unwrap(), ["first", "Abandoned"]);
    }
}
