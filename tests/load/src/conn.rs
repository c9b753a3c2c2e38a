//! One keep-alive HTTP/1.1 connection that reconnects after a failure.

use std::sync::Arc;

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

    /// Sends the request and reads the whole answer; returns its status.
    pub async fn send(&mut self) -> anyhow::Result<StatusCode> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        let status = exchange(&mut sender, &self.target).await?;
        self.sender = Some(sender);
        Ok(status)
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
) -> anyhow::Result<StatusCode> {
    sender.ready().await?;
    let response = sender.send_request(target.request()).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}
