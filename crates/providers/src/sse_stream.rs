//! Turns an upstream's Server-Sent Events body into [`StreamEvent`]s, the
//! same way for every provider: a [`SseDecoder`] of the provider's format
//! says what each upstream event means for the client, and this driver
//! does the rest (reading the body, the wait for each next piece, a cut
//! body, and draining the connection after the end so it can be reused).
//!
//! A decoder hands out at most one event per upstream event; a
//! [`StreamEvent::Usage`] is the last one, so a stream that breaks before
//! the provider's end of stream ends with an error and never with usage.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use tollgate_core::GatewayError;

use crate::call::{EventStream, StreamEvent};
use crate::errors;
use crate::exchange::ByteStream;
use crate::sse::{SseEvent, SseParser};

/// How long to wait for the upstream to close the body after the end of
/// the stream, so its connection can go back to the pool.
const DRAIN_WAIT: Duration = Duration::from_millis(250);

/// One provider's stream format, read event by event.
pub(crate) trait SseDecoder: Send + 'static {
    /// What one upstream event means for the client: nothing (yet), one
    /// more piece of the answer, or (a usage event) its end.
    fn decode(&mut self, event: SseEvent) -> Result<Option<StreamEvent>, GatewayError>;

    /// The body ended. For formats with an end marker that is a cut
    /// stream; formats that end with the body say here how it ended.
    fn body_ended(&mut self) -> Result<StreamEvent, GatewayError> {
        Err(errors::stream_cut())
    }
}

/// The events of one upstream response body. `idle_timeout` bounds the
/// wait for each next piece of the body.
pub(crate) fn decode_sse<D: SseDecoder>(
    body: ByteStream,
    idle_timeout: Duration,
    decoder: D,
) -> EventStream {
    let reader = Reader {
        body,
        parser: SseParser::new(),
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
    parser: SseParser,
    idle_timeout: Duration,
    decoder: D,
}

impl<D: SseDecoder> Reader<D> {
    /// The next event for the client, and whether the body may still
    /// hold bytes to drain.
    async fn next_event(&mut self) -> Result<(StreamEvent, bool), GatewayError> {
        loop {
            while let Some(event) = self.parser.next_event().map_err(|_| errors::unreadable())? {
                if let Some(event) = self.decoder.decode(event)? {
                    return Ok((event, true));
                }
            }
            match tokio::time::timeout(self.idle_timeout, self.body.next()).await {
                Err(_elapsed) => return Err(errors::timeout()),
                Ok(Some(Ok(piece))) => self.parser.push(&piece),
                Ok(Some(Err(_))) => return Err(errors::stream_cut()),
                Ok(None) => {
                    if self.parser.has_partial_event() {
                        return Err(errors::stream_cut());
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
