//! Opening a connection to an origin: TCP, then TLS for `https` with ALPN
//! offering HTTP/2 and HTTP/1.1, then the HTTP handshake of the protocol
//! the upstream chose.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::HttpError;
use super::pool::{Http1Connection, Multiplexed, Origin};

/// The Mozilla root certificates (webpki-roots).
pub(super) fn mozilla_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A new connection, in the protocol the upstream chose.
pub(super) enum Fresh {
    Http1(Http1Connection),
    Http2(Multiplexed),
}

pub(super) struct Connector {
    tls: TlsConnector,
    timeout: Duration,
}

impl Connector {
    pub(super) fn new(
        roots: rustls::RootCertStore,
        timeout: Duration,
    ) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    /// Connects to `origin` within the connect timeout (TCP and TLS
    /// together), then shakes hands in HTTP/2 when TLS negotiated it and
    /// HTTP/1.1 otherwise.
    pub(super) async fn connect(&self, origin: &Origin) -> Result<Fresh, HttpError> {
        let stream = tokio::time::timeout(self.timeout, self.open(origin))
            .await
            .map_err(|_elapsed| HttpError::ConnectTimeout)??;
        if stream.negotiated_http2() {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(stream))
                .await?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "upstream HTTP/2 connection ended");
                }
            });
            return Ok(Fresh::Http2(Multiplexed::new(sender)));
        }
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Fresh::Http1(Http1Connection::new(
            origin.clone(),
            sender,
            connection,
        )))
    }

    async fn open(&self, origin: &Origin) -> Result<Stream, HttpError> {
        let tcp = TcpStream::connect((origin.host(), origin.port()))
            .await
            .map_err(HttpError::Connect)?;
        tcp.set_nodelay(true).map_err(HttpError::Connect)?;
        if !origin.is_https() {
            return Ok(Stream::Plain(tcp));
        }
        let name = ServerName::try_from(origin.host().to_owned())
            .map_err(|_invalid| HttpError::InvalidUrl)?;
        let tls = self.tls.connect(name, tcp).await.map_err(HttpError::Tls)?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// A TCP connection, with TLS or without.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn negotiated_http2(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
