//! The body of an upstream's answer, read piece by piece. Over HTTP/1.1 it
//! holds the connection and runs it while it is read, and gives the
//! connection back to the pool once the body has ended; a body dropped
//! before its end closes the connection with it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use http_body::Body;
use hyper::body::Incoming;

use super::HttpError;
use super::pool::{Http1Connection, Pool};

pub struct ResponseBody {
    incoming: Incoming,
    /// The HTTP/1.1 connection the body arrives on, and where it goes back.
    lent: Option<(Http1Connection, Pool)>,
}

impl ResponseBody {
    pub(super) fn http1(incoming: Incoming, connection: Http1Connection, pool: Pool) -> Self {
        Self {
            incoming,
            lent: Some((connection, pool)),
        }
    }

    pub(super) fn multiplexed(incoming: Incoming) -> Self {
        Self {
            incoming,
            lent: None,
        }
    }

    /// The body's length, when the upstream announced it.
    pub fn announced_length(&self) -> Option<u64> {
        self.incoming.size_hint().exact()
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        std::future::poll_fn(|cx| self.poll_chunk(cx))
            .await
            .transpose()
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, HttpError>>> {
        if let Some((connection, _)) = &mut self.lent {
            connection.drive(cx);
        }
        loop {
            match ready!(Pin::new(&mut self.incoming).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                    // Trailers, or an empty piece.
                    _ => {}
                },
                Some(Err(error)) => {
                    self.lent = None;
                    return Poll::Ready(Some(Err(HttpError::Exchange(error))));
                }
                None => {
                    if let Some((connection, pool)) = self.lent.take() {
                        pool.put(connection);
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("pooled", &self.lent.is_some())
            .finish_non_exhaustive()
    }
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, HttpError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }
}
