//! Connections kept for reuse, per origin: idle HTTP/1.1 connections, each
//! lent to one request at a time, and one shared HTTP/2 connection.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;

use super::HttpError;
use super::body::ResponseBody;
use super::connect::Stream;

/// Where connections go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Origin {
    https: bool,
    host: String,
    port: u16,
    /// `host[:port]` as the URL gave it, for the `Host` header.
    authority: String,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URI.
    pub(super) fn of(uri: &Uri) -> Option<Self> {
        let https = match uri.scheme_str()? {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let authority = uri.authority()?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        let without_userinfo = authority.as_str().rsplit('@').next().unwrap_or_default();
        Some(Self {
            https,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: without_userinfo.to_owned(),
        })
    }

    pub(super) fn is_https(&self) -> bool {
        self.https
    }

    pub(super) fn host(&self) -> &str {
        &self.host
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    pub(super) fn authority(&self) -> &str {
        &self.authority
    }
}

/// The connections kept for reuse. Cheap to clone: clones share them.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    idle_timeout: Duration,
    max_idle_per_origin: usize,
    idle: Mutex<Idle>,
    multiplexed: Mutex<HashMap<Origin, Multiplexed>>,
    /// HTTPS origins whose first connection chose HTTP/1.1.
    http1_origins: Mutex<HashSet<Origin>>,
    /// Held while the first connection to an HTTPS origin is made.
    first_connections: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Default)]
struct Idle {
    by_origin: HashMap<Origin, Vec<(Http1Connection, Instant)>>,
    swept_at: Option<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration, max_idle_per_origin: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                idle_timeout,
                max_idle_per_origin,
                idle: Mutex::default(),
                multiplexed: Mutex::default(),
                http1_origins: Mutex::default(),
                first_connections: Mutex::default(),
            }),
        }
    }

    /// The most recently used idle connection to `origin` that is still
    /// open; older and closed ones met on the way are dropped.
    pub(super) fn take_idle(&self, origin: &Origin) -> Option<Http1Connection> {
        let mut idle = lock(&self.inner.idle);
        let connections = idle.by_origin.get_mut(origin)?;
        while let Some((mut connection, since)) = connections.pop() {
            if since.elapsed() < self.inner.idle_timeout && connection.is_open() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps a connection whose exchange ended cleanly, unless the origin
    /// has its fill of idle ones. Now and then, drops every connection
    /// idle for longer than the idle timeout, whatever its origin.
    pub(super) fn put(&self, mut connection: Http1Connection) {
        if !connection.is_open() {
            return;
        }
        let now = Instant::now();
        let timeout = self.inner.idle_timeout;
        let mut idle = lock(&self.inner.idle);
        if idle
            .swept_at
            .is_none_or(|swept| now.duration_since(swept) >= timeout)
        {
            idle.swept_at = Some(now);
            idle.by_origin.retain(|_, connections| {
                connections.retain(|(_, since)| now.duration_since(*since) < timeout);
                !connections.is_empty()
            });
        }
        let connections = idle.by_origin.entry(connection.origin.clone()).or_default();
        if connections.len() < self.inner.max_idle_per_origin {
            connections.push((connection, now));
        }
    }

    /// The shared HTTP/2 connection to `origin`, while it is open.
    pub(super) fn multiplexed(&self, origin: &Origin) -> Option<Multiplexed> {
        let mut shared = lock(&self.inner.multiplexed);
        match shared.get(origin) {
            Some(connection) if !connection.sender.is_closed() => Some(connection.clone()),
            Some(_) => {
                shared.remove(origin);
                None
            }
            None => None,
        }
    }

    pub(super) fn share(&self, origin: Origin, connection: Multiplexed) {
        lock(&self.inner.first_connections).remove(&origin);
        lock(&self.inner.multiplexed).insert(origin, connection);
    }

    /// For an HTTPS origin not yet known to speak HTTP/1.1 only, the lock
    /// a new connection to it is made under (it may turn out to be HTTP/2,
    /// which is shared); `None` when connections may be made at once.
    pub(super) fn protocol_unknown(&self, origin: &Origin) -> Option<Arc<tokio::sync::Mutex<()>>> {
        if !origin.is_https() || lock(&self.inner.http1_origins).contains(origin) {
            return None;
        }
        Some(Arc::clone(
            lock(&self.inner.first_connections)
                .entry(origin.clone())
                .or_default(),
        ))
    }

    /// Remembers that `origin` chose HTTP/1.1: its connections are made
    /// without waiting for each other from now on.
    pub(super) fn speaks_http1(&self, origin: &Origin) {
        if origin.is_https() {
            lock(&self.inner.http1_origins).insert(origin.clone());
            lock(&self.inner.first_connections).remove(origin);
        }
    }
}

type Connection = http1::Connection<TokioIo<Stream>, Full<Bytes>>;

/// Why a request on an HTTP/1.1 connection got no answer.
pub(super) enum SendError {
    /// The connection was closed before it took the request, given back.
    Unsent(Box<Request<Full<Bytes>>>),
    Failed(HttpError),
}

/// An HTTP/1.1 connection and the future that runs it, polled by
/// whichever task is using the connection.
pub(super) struct Http1Connection {
    origin: Origin,
    sender: http1::SendRequest<Full<Bytes>>,
    connection: Option<Pin<Box<Connection>>>,
}

impl Http1Connection {
    pub(super) fn new(
        origin: Origin,
        sender: http1::SendRequest<Full<Bytes>>,
        connection: Connection,
    ) -> Self {
        Self {
            origin,
            sender,
            connection: Some(Box::pin(connection)),
        }
    }

    /// Runs the connection (writes, reads, keep-alive); false once it has
    /// ended, cleanly or not.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(connection) = &mut self.connection
            && let Poll::Ready(result) = connection.as_mut().poll(cx)
        {
            if let Err(error) = result {
                tracing::debug!(%error, "upstream connection ended");
            }
            self.connection = None;
        }
        self.connection.is_some()
    }

    /// Whether the connection is still open (the upstream may have closed
    /// it while it was idle).
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.drive(&mut cx) && !self.sender.is_closed()
    }

    /// Sends `request` and waits for the answer's head, running the
    /// connection meanwhile; the connection then goes with the body, which
    /// runs it to the body's end and returns it to `pool`.
    pub(super) async fn send(
        mut self,
        request: Request<Full<Bytes>>,
        pool: &Pool,
    ) -> Result<Response<ResponseBody>, SendError> {
        let ready = poll_fn(|cx| {
            let open = self.drive(cx);
            match self.sender.poll_ready(cx) {
                Poll::Ready(result) => Poll::Ready(result.is_ok()),
                Poll::Pending if open => Poll::Pending,
                Poll::Pending => Poll::Ready(false),
            }
        })
        .await;
        if !ready {
            return Err(SendError::Unsent(Box::new(request)));
        }
        let (request, absolute) = self.in_origin_form(request);
        let mut sending = pin!(self.sender.try_send_request(request));
        let answered = poll_fn(|cx| {
            self.drive(cx);
            sending.as_mut().poll(cx)
        })
        .await;
        match answered {
            Ok(response) => {
                Ok(response.map(|incoming| ResponseBody::http1(incoming, self, pool.clone())))
            }
            Err(mut refused) => match refused.take_message() {
                Some(request) => Err(SendError::Unsent(Box::new(absolute.restore(request)))),
                None => Err(SendError::Failed(HttpError::Exchange(refused.into_error()))),
            },
        }
    }
}

impl Http1Connection {
    /// HTTP/1.1 puts the path in the request line and the authority in
    /// `Host`; what it changed, to give an unsent request back as it was.
    fn in_origin_form(
        &self,
        request: Request<Full<Bytes>>,
    ) -> (Request<Full<Bytes>>, AbsoluteForm) {
        let (mut head, body) = request.into_parts();
        let mut added_host = false;
        if !head.headers.contains_key(HOST)
            && let Ok(host) = HeaderValue::from_str(self.origin.authority())
        {
            head.headers.insert(HOST, host);
            added_host = true;
        }
        let path = head
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = std::mem::replace(&mut head.uri, Uri::from(path));
        (
            Request::from_parts(head, body),
            AbsoluteForm { uri, added_host },
        )
    }
}

/// A request's absolute form, from before it was shaped for HTTP/1.1.
struct AbsoluteForm {
    uri: Uri,
    added_host: bool,
}

impl AbsoluteForm {
    fn restore(self, request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
        let (mut head, body) = request.into_parts();
        head.uri = self.uri;
        if self.added_host {
            head.headers.remove(HOST);
        }
        Request::from_parts(head, body)
    }
}

/// A shared HTTP/2 connection (run by a task of its own).
#[derive(Clone)]
pub(super) struct Multiplexed {
    sender: http2::SendRequest<Full<Bytes>>,
}

impl Multiplexed {
    pub(super) fn new(sender: http2::SendRequest<Full<Bytes>>) -> Self {
        Self { sender }
    }

    pub(super) async fn send(
        mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<ResponseBody>, HttpError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        Ok(response.map(ResponseBody::multiplexed))
    }
}
