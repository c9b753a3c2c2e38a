//! One HTTP exchange with an upstream, the same for every adapter: send
//! the request, turn a failure status into its error, and read the answer
//! whole (bounded in size) or hand out its body as a stream, all within the
//! call's timeout.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tollgate_core::{ErrorKind, GatewayError};

use crate::call::ProviderRequest;
use crate::client::{HttpClient, HttpError, ResponseBody};
use crate::credential::Auth;
use crate::errors;

/// The most of an error body read to find its message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// How an adapter reads a failure status: [`errors::from_response`], or a
/// provider's own reading that falls back on it.
pub(crate) type ErrorReader = fn(StatusCode, &HeaderMap, &[u8]) -> GatewayError;

/// An upstream response body, piece by piece.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, HttpError>> + Send>>;

/// What a call asks the upstream to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    Json,
    EventStream,
    Ndjson,
}

impl Accept {
    /// A streamed call's `Accept` by its framing, else JSON.
    pub fn streamed(stream: bool, framing: Accept) -> Accept {
        if stream { framing } else { Accept::Json }
    }

    fn media_type(self) -> &'static str {
        match self {
            Accept::Json => "application/json",
            Accept::EventStream => "text/event-stream",
            Accept::Ndjson => "application/x-ndjson",
        }
    }
}

/// The head of a JSON `POST` to `url` answered as `accept`, with the
/// header `auth` makes of `request`'s credential; callers add their own
/// headers and then the body ([`with_body`]).
pub(crate) fn json_post(
    url: &str,
    accept: Accept,
    auth: Auth,
    request: &ProviderRequest,
) -> Result<http::request::Builder, GatewayError> {
    let mut post = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, accept.media_type());
    if let Some((name, value)) = auth.header(request)? {
        post = post.header(name, value);
    }
    Ok(post)
}

/// The request with its body; a URL that made none blames the account's
/// base URL.
pub(crate) fn with_body(
    post: http::request::Builder,
    body: Bytes,
) -> Result<Request<Bytes>, GatewayError> {
    post.body(body)
        .map_err(|_invalid| errors::unusable_base_url())
}

/// Sends `post` and reads the whole answer, at most `max_body` bytes, all
/// within `timeout`; a failure status is read by `read_error`.
pub(crate) async fn fetch(
    client: &HttpClient,
    post: Request<Bytes>,
    timeout: Duration,
    max_body: usize,
    read_error: ErrorReader,
) -> Result<Bytes, GatewayError> {
    let exchange = async {
        let response = client
            .send(post)
            .await
            .map_err(|error| errors::from_transport(&error))?;
        let response = check_status(response, read_error).await?;
        read_body(response, max_body).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_elapsed| errors::timeout())?
}

/// Sends `post` and waits (at most `timeout`) for a success head; the body
/// is then the caller's to read as it arrives.
pub(crate) async fn open_stream(
    client: &HttpClient,
    post: Request<Bytes>,
    timeout: Duration,
    read_error: ErrorReader,
) -> Result<ByteStream, GatewayError> {
    let response = tokio::time::timeout(timeout, client.send(post))
        .await
        .map_err(|_elapsed| errors::timeout())?
        .map_err(|error| errors::from_transport(&error))?;
    let response = tokio::time::timeout(timeout, check_status(response, read_error))
        .await
        .map_err(|_elapsed| errors::timeout())??;
    Ok(Box::pin(response.into_body()))
}

/// A header value that holds an account's secret: marked sensitive so it
/// is never printed; a secret that cannot be a header value blames the
/// account.
pub(crate) fn secret_header(value: String) -> Result<HeaderValue, GatewayError> {
    let mut value = HeaderValue::try_from(value).map_err(|_invalid| {
        GatewayError::new(
            ErrorKind::UpstreamAuth,
            "the account's credential cannot be sent in an HTTP header",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Passes a success through; turns any other status into its error.
async fn check_status(
    response: Response<ResponseBody>,
    read_error: ErrorReader,
) -> Result<Response<ResponseBody>, GatewayError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = read_body(response, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    tracing::debug!(status = status.as_u16(), "upstream refused the request");
    Err(read_error(status, &headers, &body))
}

/// The whole body, refusing more than `limit` bytes; a body that arrives
/// in one piece is not copied.
async fn read_body(response: Response<ResponseBody>, limit: usize) -> Result<Bytes, GatewayError> {
    let too_large = || errors::unreadable();
    let mut body = response.into_body();
    if body
        .announced_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(piece) = body
        .chunk()
        .await
        .map_err(|error| errors::from_transport(&error))?
    {
        if let Some(joined) = &mut joined {
            if joined.len() + piece.len() > limit {
                return Err(too_large());
            }
            joined.extend_from_slice(&piece);
        } else if let Some(head) = first.take() {
            if head.len() + piece.len() > limit {
                return Err(too_large());
            }
            let mut buffer = BytesMut::with_capacity(head.len() + piece.len());
            buffer.extend_from_slice(&head);
            buffer.extend_from_slice(&piece);
            joined = Some(buffer);
        } else {
            if piece.len() > limit {
                return Err(too_large());
            }
            first = Some(piece);
        }
    }
    Ok(joined.map(BytesMut::freeze).or(first).unwrap_or_default())
}
