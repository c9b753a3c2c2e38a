//! One keep-alive HTTP/1.1 connection that reconnects after a failure.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::Target;

/// A connection to the target; opened lazily, reopened after any error.
pub struct Connection {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    /// Opens the socket now, so that connecting is not part of a measurement.
    pub async fn open(&mut self) -> anyhow::Result<()> {
        if self.sender.is_none() {
            self.sender = Some(self.connect().await?);
        }
        Ok(())
    }

    /// Forgets the current socket (after a timeout its state is unknown).
    pub fn reset(&mut self) {
        self.sender = None;
    }

    /// Sends the request and reads the whole answer; returns its status
    /// and when the first piece of its body arrived (for a stream, its
    /// first event).
    pub async fn send(&mut self) -> anyhow::Result<(StatusCode, Option<Instant>)> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        let answer = exchange(&mut sender, &self.target).await?;
        self.sender = Some(sender);
        Ok(answer)
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let addr = self.target.addr;
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the peer
            // closes; the next send notices and reconnects.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
) -> anyhow::Result<(StatusCode, Option<Instant>)> {
    sender.ready().await?;
    let response = sender.send_request(target.request()).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut first_piece = None;
    while let Some(frame) = body.frame().await {
        if frame?.data_ref().is_some_and(|data| !data.is_empty()) {
            first_piece.get_or_insert_with(Instant::now);
        }
    }
    Ok((status, first_piece))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use http::{Method, Response};
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn the_first_piece_of_a_streamed_answer_is_timed_apart_from_its_end() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(|_request| async {
                // One event now, the rest after a pause.
                let (pieces, body) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
                tokio::spawn(async move {
                    let _ = pieces
                        .send(Ok(Frame::data(Bytes::from("data: a\n\n"))))
                        .await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let _ = pieces
                        .send(Ok(Frame::data(Bytes::from("data: b\n\n"))))
                        .await;
                });
                let body = StreamBody::new(tokio_stream_of(body));
                Ok::<_, Infallible>(Response::new(body))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let url = format!("http://{addr}/");
        let target = Target::resolve(&url, Method::POST, &[], Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let mut connection = Connection::new(Arc::new(target));
        let sent = Instant::now();
        let (status, first_piece) = connection.send().await.unwrap();
        let ended = Instant::now();
        assert!(status.is_success());
        let first_piece = first_piece.unwrap();
        assert!(ended.duration_since(sent) >= Duration::from_millis(300));
        // The first piece came before the pause, not at the end.
        assert!(ended.duration_since(first_piece) >= Duration::from_millis(250));
    }

    /// The receiver as a stream of frames.
    fn tokio_stream_of<T: Send + 'static>(
        mut receiver: mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
