//! Turns an upstream's streamed body into [`StreamEvent`]s, the same way
//! for every provider: the body is cut into events by its [`Framing`]
//! (Server-Sent Events, or newline-delimited JSON), a [`StreamDecoder`] of
//! the provider's format says what each event means for the client, and
//! this driver does the rest (reading the body, the wait for each next
//! piece, a cut body, and draining the connection after the end so it can
//! be reused).
//!
//! A decoder hands out at most one event per upstream event; a
//! [`StreamEvent::Usage`] is the last one, so a stream that breaks before
//! the provider's end of stream ends with an error and never with usage.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use tollgate_core::GatewayError;

use crate::call::{EventStream, StreamEvent};
use crate::errors;
use crate::exchange::ByteStream;
use crate::ndjson::LineParser;
use crate::sse::SseParser;

/// How long to wait for the upstream to close the body after the end of
/// the stream, so its connection can go back to the pool.
const DRAIN_WAIT: Duration = Duration::from_millis(250);

/// How a streamed body is cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Server-Sent Events: each event's data.
    Sse,
    /// Newline-delimited JSON (Ollama): each line.
    Lines,
}

/// One provider's stream format, read event by event.
pub(crate) trait StreamDecoder: Send + 'static {
    /// What one upstream event (its data) means for the client: nothing
    /// (yet), one more piece of the answer, or (a usage event) its end.
    fn decode(&mut self, data: Bytes) -> Result<Option<StreamEvent>, GatewayError>;

    /// The body ended. For formats with an end marker that is a cut
    /// stream; formats that end with the body say here how it ended.
    fn body_ended(&mut self) -> Result<StreamEvent, GatewayError> {
        Err(errors::stream_cut())
    }
}

/// The events of one upstream response body. `idle_timeout` bounds the
/// wait for each next piece of the body.
pub(crate) fn decode_events<D: StreamDecoder>(
    body: ByteStream,
    idle_timeout: Duration,
    framing: Framing,
    decoder: D,
) -> EventStream {
    let framer = match framing {
        Framing::Sse => Framer::Sse(SseParser::new()),
        Framing::Lines => Framer::Lines(LineParser::new()),
    };
    let reader = Reader {
        body,
        framer,
        idle_timeout,
        decoder,
    };
    Box::pin(stream::unfold(
        Phase::Reading(Box::new(reader)),
        |phase| async move {
            match phase {
                Phase::Reading(mut reader) => match reader.next_event().await {
                    Ok((event @ StreamEvent::Data(_), _)) => {
                        Some((Ok(event), Phase::Reading(reader)))
                    }
                    Ok((event @ StreamEvent::Usage { .. }, body_open)) => {
                        let next = if body_open {
                            Phase::Draining(reader)
                        } else {
                            Phase::Done
                        };
                        Some((Ok(event), next))
                    }
                    Err(error) => Some((Err(error), Phase::Done)),
                },
                Phase::Draining(mut reader) => {
                    // The caller has everything: end its stream now and let
                    // the connection finish in the background.
                    tokio::spawn(async move { reader.drain().await });
                    None
                }
                Phase::Done => None,
            }
        },
    ))
}

enum Phase<D> {
    Reading(Box<Reader<D>>),
    Draining(Box<Reader<D>>),
    Done,
}

struct Reader<D> {
    body: ByteStream,
    framer: Framer,
    idle_timeout: Duration,
    decoder: D,
}

enum Framer {
    Sse(SseParser),
    Lines(LineParser),
}

impl Framer {
    fn push(&mut self, piece: &[u8]) {
        match self {
            Framer::Sse(parser) => parser.push(piece),
            Framer::Lines(parser) => parser.push(piece),
        }
    }

    fn next_event(&mut self) -> Result<Option<Bytes>, GatewayError> {
        let next = match self {
            Framer::Sse(parser) => parser
                .next_event()
                .map(|event| event.map(|event| event.data)),
            Framer::Lines(parser) => parser.next_line(),
        };
        next.map_err(|_| errors::unreadable())
    }

    /// The body ended: the last event, if one was complete without its
    /// terminator (a last NDJSON line); an error if the bytes left are an
    /// unfinished event.
    fn finish(&mut self) -> Result<Option<Bytes>, GatewayError> {
        match self {
            Framer::Sse(parser) if parser.has_partial_event() => Err(errors::stream_cut()),
            Framer::Sse(_) => Ok(None),
            Framer::Lines(parser) => Ok(parser.finish()),
        }
    }
}

impl<D: StreamDecoder> Reader<D> {
    /// The next event for the client, and whether the body may still
    /// hold bytes to drain.
    async fn next_event(&mut self) -> Result<(StreamEvent, bool), GatewayError> {
        loop {
            while let Some(data) = self.framer.next_event()? {
                if let Some(event) = self.decoder.decode(data)? {
                    return Ok((event, true));
                }
            }
            match tokio::time::timeout(self.idle_timeout, self.body.next()).await {
                Err(_elapsed) => return Err(errors::timeout()),
                Ok(Some(Ok(piece))) => self.framer.push(&piece),
                Ok(Some(Err(_))) => return Err(errors::stream_cut()),
                Ok(None) => {
                    if let Some(data) = self.framer.finish()?
                        && let Some(event) = self.decoder.decode(data)?
                    {
                        return Ok((event, false));
                    }
                    return self.decoder.body_ended().map(|event| (event, false));
                }
            }
        }
    }

    /// Reads to the end of the body (briefly), so the connection is reused.
    async fn drain(&mut self) {
        let _ = tokio::time::timeout(DRAIN_WAIT, async {
            while let Some(Ok(_)) = self.body.next().await {}
        })
        .await;
    }
}
