//! The client against local servers: plain HTTP/1.1, and TLS (a test CA
//! in `testdata/`) offering HTTP/2 or HTTP/1.1 only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use super::*;

const CA: &[u8] = include_bytes!("testdata/ca.pem");
const CERT: &[u8] = include_bytes!("testdata/localhost.pem");
const KEY: &[u8] = include_bytes!("testdata/localhost.key");

/// What a test server saw: connections accepted, and per request its
/// HTTP version, `Host` header and request target.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: Mutex<Vec<(Version, Option<String>, String)>>,
}

impl Seen {
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<(Version, Option<String>, String)> {
        self.requests.lock().unwrap().clone()
    }
}

/// Answers every request with its own body, prefixed with `echo:`; a
/// request to `/close` is answered with `Connection: close`.
async fn echo(
    seen: Arc<Seen>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let target = request.uri().to_string();
    seen.requests
        .lock()
        .unwrap()
        .push((request.version(), host, target));
    let close = request.uri().path() == "/close";
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let mut response = Response::new(Full::new(Bytes::from(
        [b"echo:".as_slice(), &body].concat(),
    )));
    if close {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// A server on 127.0.0.1; with `tls`, offering `alpn`.
async fn server(tls: Option<Vec<Vec<u8>>>) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let acceptor = tls.map(|alpn| {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(CERT).unwrap()],
            PrivateKeyDer::from_pem_slice(KEY).unwrap(),
        )
        .unwrap();
        config.alpn_protocols = alpn;
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let counted = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counted.connections.fetch_add(1, Ordering::SeqCst);
            let seen = counted.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| echo(seen.clone(), request));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    (address, seen)
}

fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
        max_idle_per_origin: 8,
        user_agent: HeaderValue::from_static("tollgate-test"),
    }
}

fn client_trusting_the_test_ca() -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA).unwrap())
        .unwrap();
    HttpClient::with_roots(settings(), roots).unwrap()
}

async fn post(client: &HttpClient, url: &str, body: &'static str) -> (StatusCode, Bytes) {
    let request = Request::post(url)
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut whole = Vec::new();
    while let Some(piece) = body.chunk().await.unwrap() {
        whole.extend_from_slice(&piece);
    }
    (status, Bytes::from(whole))
}

#[tokio::test]
async fn http1_connections_are_reused_one_request_at_a_time() {
    let (address, seen) = server(None).await;
    let client = HttpClient::new(settings()).unwrap();
    let url = format!("http://{address}/v1/chat?x=1");
    for body in ["one", "two", "three"] {
        let (status, answer) = post(&client, &url, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, format!("echo:{body}"));
    }
    assert_eq!(seen.connections(), 1);
    for (version, host, target) in seen.requests() {
        assert_eq!(version, Version::HTTP_11);
        assert_eq!(host.as_deref(), Some(address.to_string().as_str()));
        // The request line carries the path, not the whole URL.
        assert_eq!(target, "/v1/chat?x=1");
    }
    // Two at once need two connections; both are kept afterwards.
    let (a, b) = tokio::join!(post(&client, &url, "a"), post(&client, &url, "b"));
    assert_eq!((a.1, b.1), (Bytes::from("echo:a"), Bytes::from("echo:b")));
    assert_eq!(seen.connections(), 2);
    post(&client, &url, "c").await;
    post(&client, &url, "d").await;
    assert_eq!(seen.connections(), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_not_used_again() {
    let (address, seen) = server(None).await;
    let client = HttpClient::new(settings()).unwrap();
    let (_, answer) = post(&client, &format!("http://{address}/close"), "bye").await;
    assert_eq!(answer, "echo:bye");
    // Let the close reach the client's side of the socket.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, answer) = post(&client, &format!("http://{address}/next"), "hi").await;
    assert_eq!((status, answer), (StatusCode::OK, Bytes::from("echo:hi")));
    assert_eq!(seen.connections(), 2);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
    let (address, seen) = server(None).await;
    let client = HttpClient::new(settings()).unwrap();
    let url = format!("http://{address}/");
    let response = client
        .send(
            Request::post(url.as_str())
                .body(Bytes::from_static(b"x"))
                .unwrap(),
        )
        .await
        .unwrap();
    drop(response);
    post(&client, &url, "y").await;
    assert_eq!(seen.connections(), 2);
}

#[tokio::test]
async fn tls_with_http2_shares_one_connection() {
    let (address, seen) = server(Some(vec![b"h2".to_vec(), b"http/1.1".to_vec()])).await;
    let client = client_trusting_the_test_ca();
    let url = format!("https://localhost:{}/v1/chat", address.port());
    let (a, b, c) = tokio::join!(
        post(&client, &url, "a"),
        post(&client, &url, "b"),
        post(&client, &url, "c")
    );
    assert_eq!(
        [a.1, b.1, c.1],
        [
            Bytes::from("echo:a"),
            Bytes::from("echo:b"),
            Bytes::from("echo:c")
        ]
    );
    post(&client, &url, "d").await;
    assert!(
        seen.connections() <= 3,
        "{} connections",
        seen.connections()
    );
    let requests = seen.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests
            .iter()
            .all(|(version, _, target)| *version == Version::HTTP_2 && target.ends_with("/v1/chat"))
    );
    // Once one connection is up, later requests share it.
    let before = seen.connections();
    post(&client, &url, "e").await;
    post(&client, &url, "f").await;
    assert_eq!(seen.connections(), before);
}

#[tokio::test]
async fn tls_with_http1_only_pools_like_plain_http1() {
    let (address, seen) = server(Some(vec![b"http/1.1".to_vec()])).await;
    let client = client_trusting_the_test_ca();
    let url = format!("https://localhost:{}/v1/chat", address.port());
    post(&client, &url, "a").await;
    let (_, answer) = post(&client, &url, "b").await;
    assert_eq!(answer, "echo:b");
    assert_eq!(seen.connections(), 1);
    // Known to speak HTTP/1.1, the origin gets a second connection for a
    // second call at once.
    let (c, d) = tokio::join!(post(&client, &url, "c"), post(&client, &url, "d"));
    assert_eq!((c.1, d.1), (Bytes::from("echo:c"), Bytes::from("echo:d")));
    assert_eq!(seen.connections(), 2);
    assert!(
        seen.requests()
            .iter()
            .all(|(version, host, _)| *version == Version::HTTP_11
                && host.as_deref() == Some(format!("localhost:{}", address.port()).as_str()))
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let (address, seen) = server(Some(vec![b"http/1.1".to_vec()])).await;
    // The Mozilla roots do not include the test CA.
    let client = HttpClient::new(settings()).unwrap();
    let url = format!("https://localhost:{}/", address.port());
    let error = client
        .send(Request::post(url.as_str()).body(Bytes::new()).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Tls(_)), "{error:?}");
    assert!(seen.requests().is_empty());
}

#[tokio::test]
async fn unreachable_and_malformed_urls_fail_as_such() {
    let client = HttpClient::new(settings()).unwrap();
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let refused = client
        .send(
            Request::post(format!("http://127.0.0.1:{port}/"))
                .body(Bytes::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, HttpError::Connect(_)), "{refused:?}");
    for url in ["ftp://example.com/", "/relative/only"] {
        let error = client
            .send(Request::post(url).body(Bytes::new()).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(error, HttpError::InvalidUrl), "{url}: {error:?}");
    }
}
