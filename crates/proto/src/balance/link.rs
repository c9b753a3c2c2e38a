//! One replica's HTTP/2 connection, what every gRPC call to that replica
//! goes over: made on the first call, made again on the first call after
//! it broke, and otherwise shared by every call at once.
//!
//! A call goes straight to hyper's HTTP/2 sender (a clone of it per call),
//! with none of tonic's `Channel` machinery in between: no buffer task to
//! hand the request to, so a call costs one wake-up fewer. A connection
//! that cannot be made fails the call with tonic's `ConnectError` (which
//! tonic reports as `Unavailable`, and the balancer as never sent).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::codegen::Service;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How connections are made and kept alive.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// A lazily connected HTTP/2 connection to one address. Cheap to clone:
/// clones share the connection.
#[derive(Clone)]
pub(crate) struct Link {
    inner: Arc<Inner>,
}

struct Inner {
    address: SocketAddr,
    /// The `http://address` origin gRPC requests are sent to.
    origin: Uri,
    current: Mutex<Option<SendRequest<Body>>>,
    /// Held while connecting, so concurrent calls wait for one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl Link {
    pub(crate) fn new(address: SocketAddr) -> Self {
        let origin = Uri::builder()
            .scheme("http")
            .authority(address.to_string())
            .path_and_query("/")
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                address,
                origin,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The origin generated clients are to send their requests to.
    pub(crate) fn origin(&self) -> Uri {
        self.inner.origin.clone()
    }

    fn current(&self) -> MutexGuard<'_, Option<SendRequest<Body>>> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn open_sender(&self) -> Option<SendRequest<Body>> {
        let current = self.current();
        current
            .as_ref()
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    /// Drops the connection kept, so the next call makes a new one.
    fn forget(&self) {
        *self.current() = None;
    }

    /// The connection's sender, connecting first when there is none open.
    async fn sender(&self) -> Result<SendRequest<Body>, Error> {
        if let Some(sender) = self.open_sender() {
            return Ok(sender);
        }
        let _connecting = self.inner.connecting.lock().await;
        // Another call may have connected while this one waited.
        if let Some(sender) = self.open_sender() {
            return Ok(sender);
        }
        let sender = connect(self.inner.address)
            .await
            .map_err(|error| Box::new(tonic::ConnectError(error)) as Error)?;
        *self.current() = Some(sender.clone());
        Ok(sender)
    }
}

async fn connect(address: SocketAddr) -> Result<SendRequest<Body>, Error> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_elapsed| format!("no connection to {address} within {CONNECT_TIMEOUT:?}"))??;
    tcp.set_nodelay(true)?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%address, %error, "gRPC connection ended");
        }
    });
    Ok(sender)
}

impl Service<Request<Body>> for Link {
    type Response = Response<Incoming>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// A call the connection refused unsent (it was closing: a graceful
    /// stop's GOAWAY) goes once more, on a new connection.
    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let link = self.clone();
        Box::pin(async move {
            let mut request = request;
            let mut tries = 0;
            loop {
                tries += 1;
                let mut sender = link.sender().await?;
                if let Err(error) = sender.ready().await {
                    link.forget();
                    if tries < 2 {
                        continue;
                    }
                    return Err(error.into());
                }
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok(response),
                    Err(mut refused) => match refused.take_message() {
                        Some(unsent) if tries < 2 => {
                            link.forget();
                            request = unsent;
                        }
                        _ => return Err(refused.into_error().into()),
                    },
                }
            }
        })
    }
}
