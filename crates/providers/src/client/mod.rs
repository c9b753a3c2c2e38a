//! The HTTP client every adapter calls its upstream with, on hyper's
//! connection API.
//!
//! HTTP/1.1 connections are pooled per origin and used one request at a
//! time. The task that sends a request drives its connection itself, from
//! the request's head to the end of the answer's body, and then puts it
//! back in the pool: no connection task to hand the request to and the
//! answer back from, so a call costs no wake-up of another task. An HTTPS
//! origin that offers HTTP/2 (ALPN) gets one multiplexed connection,
//! shared by every request to it and driven by a task of its own.
//!
//! Connections go straight to the upstream (no proxy), over TCP with
//! `TCP_NODELAY`, and TLS (rustls, the Mozilla roots) for `https`. No
//! redirect is followed. A pooled connection the upstream closed while it
//! was idle is noticed before use; a request it refused unsent is sent
//! again on a new connection.

mod body;
mod connect;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, USER_AGENT};
use http::{Request, Response};
use http_body_util::Full;

pub use body::ResponseBody;
use connect::{Connector, Fresh};
use pool::{Origin, Pool};

/// Why a call got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("not an http or https URL with a host")]
    InvalidUrl,
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the connection was not made in time")]
    ConnectTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("the connection closed before the request was sent")]
    Closed,
    #[error("HTTP exchange failed: {0}")]
    Exchange(#[from] hyper::Error),
}

/// How the client connects and how long idle connections are kept.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Idle HTTP/1.1 connections kept per origin.
    pub max_idle_per_origin: usize,
    pub user_agent: HeaderValue,
}

/// A pooled client. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Connector,
    pool: Pool,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client that trusts the Mozilla root certificates.
    pub fn new(settings: ClientSettings) -> Result<Self, rustls::Error> {
        Self::with_roots(settings, connect::mozilla_roots())
    }

    /// A client that trusts `roots` only.
    pub fn with_roots(
        settings: ClientSettings,
        roots: rustls::RootCertStore,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            shared: Arc::new(Shared {
                connector: Connector::new(roots, settings.connect_timeout)?,
                pool: Pool::new(settings.idle_timeout, settings.max_idle_per_origin),
                user_agent: settings.user_agent,
            }),
        })
    }

    /// Sends `request` (its URI absolute) and returns the answer's head
    /// once it arrives; its body is read from the [`ResponseBody`].
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<ResponseBody>, HttpError> {
        let (mut head, body) = request.into_parts();
        let origin = Origin::of(&head.uri).ok_or(HttpError::InvalidUrl)?;
        head.headers
            .entry(USER_AGENT)
            .or_insert_with(|| self.shared.user_agent.clone());
        let request = Request::from_parts(head, Full::new(body));
        if let Some(multiplexed) = self.shared.pool.multiplexed(&origin) {
            return multiplexed.send(request).await;
        }
        let mut request = request;
        while let Some(pooled) = self.shared.pool.take_idle(&origin) {
            match pooled.send(request, &self.shared.pool).await {
                Ok(response) => return Ok(response),
                // Refused unsent: the upstream had closed it meanwhile.
                Err(pool::SendError::Unsent(unsent)) => request = *unsent,
                Err(pool::SendError::Failed(error)) => return Err(error),
            }
        }
        // The first connection to an HTTPS origin decides whether it speaks
        // HTTP/2; calls that arrive meanwhile wait for it rather than each
        // opening a connection only one of which would be kept. If it turns
        // out HTTP/1.1, or fails, they go on to connect at once, together.
        let mut first = None;
        if let Some(lock) = self.shared.pool.protocol_unknown(&origin) {
            match lock.clone().try_lock_owned() {
                Ok(guard) => first = Some(guard),
                Err(_connecting) => {
                    drop(lock.lock().await);
                    if let Some(multiplexed) = self.shared.pool.multiplexed(&origin) {
                        return multiplexed.send(request).await;
                    }
                }
            }
        }
        let fresh = self.shared.connector.connect(&origin).await;
        if let Ok(Fresh::Http1(_)) = &fresh {
            self.shared.pool.speaks_http1(&origin);
        }
        if let Ok(Fresh::Http2(multiplexed)) = &fresh {
            self.shared.pool.share(origin, multiplexed.clone());
        }
        drop(first);
        match fresh? {
            Fresh::Http1(connection) => match connection.send(request, &self.shared.pool).await {
                Ok(response) => Ok(response),
                Err(pool::SendError::Unsent(_)) => Err(HttpError::Closed),
                Err(pool::SendError::Failed(error)) => Err(error),
            },
            Fresh::Http2(multiplexed) => multiplexed.send(request).await,
        }
    }
}

#[cfg(test)]
mod tests;
