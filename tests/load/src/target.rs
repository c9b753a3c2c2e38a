//! The one request a run sends, prepared once and cloned per send.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

/// Where to connect and what to send there.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub url: String,
    method: Method,
    path: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Target {
    /// Checks the URL, resolves its host and prepares the request headers
    /// (`Host`, and `Content-Type: application/json` when a body is sent and
    /// no content type was given).
    pub async fn resolve(
        url: &str,
        method: Method,
        extra_headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> anyhow::Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("only http:// URLs are supported, not {other}://"),
            None => bail!("URL {url:?} needs a scheme, e.g. http://127.0.0.1:8080/"),
        }
        let authority = uri
            .authority()
            .with_context(|| format!("URL {url:?} has no host"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host().trim_matches(['[', ']']), port))
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .parse()
            .with_context(|| format!("invalid path in {url:?}"))?;

        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        for (name, value) in extra_headers {
            headers.append(name.clone(), value.clone());
        }
        if !body.is_empty() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(Target {
            addr,
            url: url.to_owned(),
            method,
            path,
            headers,
            body,
        })
    }

    /// A fresh copy of the request (the body is shared, not copied).
    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[tokio::test]
    async fn prepares_host_path_and_content_type() {
        let extra = [(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer k"),
        )];
        let target = Target::resolve(
            "http://127.0.0.1:9/v1/chat/completions?x=1",
            Method::POST,
            &extra,
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
        assert_eq!(target.addr, "127.0.0.1:9".parse().unwrap());
        let request = target.request();
        assert_eq!(request.uri(), "/v1/chat/completions?x=1");
        assert_eq!(request.headers()[HOST], "127.0.0.1:9");
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(request.headers()["authorization"], "Bearer k");
    }

    #[tokio::test]
    async fn rejects_other_schemes_and_keeps_a_given_content_type() {
        assert!(
            Target::resolve("https://127.0.0.1/", Method::GET, &[], Bytes::new())
                .await
                .is_err()
        );
        let extra = [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))];
        let target = Target::resolve("http://[::1]/", Method::POST, &extra, Bytes::from("x"))
            .await
            .unwrap();
        assert_eq!(target.addr.port(), 80);
        assert_eq!(target.request().headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(target.request().uri(), "/");
    }
}
