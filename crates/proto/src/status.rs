//! How a [`GatewayError`] crosses a gRPC boundary: each kind's gRPC code, and
//! a `tonic::Status` whose metadata carries the kind, the offending parameter,
//! the retry delay and the key's rate limits, so the edge answers the client
//! exactly as the service that failed decided.
//!
//! The HTTP side of each kind (status, OpenAI `type` and `code`, metric label)
//! stays in `tollgate_core::error`; this module only adds the gRPC one.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use tollgate_core::error::{RateLimits, RateWindow};
use tollgate_core::{ErrorKind, GatewayError};

const KIND_HEADER: &str = "tg-error-kind";
const PARAM_HEADER: &str = "tg-error-param";
const RETRY_HEADER: &str = "tg-retry-after";
const LIMIT_REQUESTS_HEADER: &str = "tg-ratelimit-requests";
const LIMIT_TOKENS_HEADER: &str = "tg-ratelimit-tokens";

/// The gRPC code that carries each kind.
pub const fn grpc_code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidRequest => Code::InvalidArgument,
        ErrorKind::ContextLengthExceeded => Code::InvalidArgument,
        ErrorKind::ContentPolicy => Code::InvalidArgument,
        ErrorKind::InvalidApiKey => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::ModelNotFound => Code::NotFound,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::PayloadTooLarge => Code::OutOfRange,
        ErrorKind::RateLimited => Code::ResourceExhausted,
        ErrorKind::QuotaExhausted => Code::ResourceExhausted,
        ErrorKind::UpstreamRateLimited => Code::ResourceExhausted,
        ErrorKind::UpstreamError => Code::Unknown,
        ErrorKind::Overloaded => Code::Unavailable,
        ErrorKind::UpstreamAuth => Code::Unknown,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::UpstreamTimeout => Code::DeadlineExceeded,
        ErrorKind::ClientClosed => Code::Cancelled,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The kind a gRPC status without Tollgate metadata stands for (a peer that
/// is down, a transport failure).
fn kind_of_code(code: Code) -> ErrorKind {
    match code {
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => {
            ErrorKind::InvalidRequest
        }
        Code::Unauthenticated => ErrorKind::InvalidApiKey,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        Code::NotFound => ErrorKind::NotFound,
        Code::OutOfRange => ErrorKind::PayloadTooLarge,
        Code::ResourceExhausted => ErrorKind::QuotaExhausted,
        Code::Unavailable | Code::Cancelled | Code::Aborted => ErrorKind::Unavailable,
        Code::DeadlineExceeded => ErrorKind::UpstreamTimeout,
        Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
            ErrorKind::Internal
        }
    }
}

/// `limit remaining reset_ms`, as carried in gRPC metadata.
fn encode_window(window: &RateWindow) -> String {
    format!("{} {} {}", window.limit, window.remaining, window.reset_ms)
}

fn decode_window(text: &str) -> Option<RateWindow> {
    let mut parts = text.split(' ').map(str::parse::<u64>);
    let window = RateWindow {
        limit: parts.next()?.ok()?,
        remaining: parts.next()?.ok()?,
        reset_ms: parts.next()?.ok()?,
    };
    parts.next().is_none().then_some(window)
}

/// A [`GatewayError`] to and from a gRPC status. Bring it into scope to write
/// `error.to_status()` and `GatewayError::from_status(&status)`.
pub trait GatewayErrorExt {
    /// The gRPC status that carries this error to another service.
    fn to_status(&self) -> Status;

    /// Reads back an error sent with [`GatewayErrorExt::to_status`]. A status
    /// from elsewhere (transport failure, peer down) maps by its code, and
    /// its message is replaced unless it is a plain client-side problem.
    fn from_status(status: &Status) -> Self;

    /// Whether `status` carries an error sent with
    /// [`GatewayErrorExt::to_status`], rather than coming from the transport
    /// (the peer service down, unreachable, or too slow to answer).
    fn is_in_status(status: &Status) -> bool;
}

impl GatewayErrorExt for GatewayError {
    fn to_status(&self) -> Status {
        let mut status = Status::new(grpc_code(self.kind), self.message.clone());
        let metadata = status.metadata_mut();
        metadata.insert(KIND_HEADER, MetadataValue::from_static(self.kind.label()));
        if let Some(param) = &self.param
            && let Ok(value) = MetadataValue::try_from(param.as_str())
        {
            metadata.insert(PARAM_HEADER, value);
        }
        if let Some(secs) = self.retry_after_secs {
            metadata.insert(RETRY_HEADER, MetadataValue::from(secs));
        }
        let limits = self.rate_limits.as_deref().copied().unwrap_or_default();
        for (name, window) in [
            (LIMIT_REQUESTS_HEADER, limits.requests),
            (LIMIT_TOKENS_HEADER, limits.tokens),
        ] {
            if let Some(window) = window
                && let Ok(value) = MetadataValue::try_from(encode_window(&window))
            {
                metadata.insert(name, value);
            }
        }
        status
    }

    fn from_status(status: &Status) -> Self {
        let metadata = status.metadata();
        let text = |name: &str| {
            metadata
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        match text(KIND_HEADER).as_deref().and_then(ErrorKind::from_label) {
            Some(kind) => {
                let window = |name: &str| text(name).as_deref().and_then(decode_window);
                let limits = RateLimits {
                    requests: window(LIMIT_REQUESTS_HEADER),
                    tokens: window(LIMIT_TOKENS_HEADER),
                };
                Self {
                    kind,
                    message: status.message().to_owned(),
                    param: text(PARAM_HEADER),
                    retry_after_secs: text(RETRY_HEADER).and_then(|value| value.parse().ok()),
                    rate_limits: (!limits.is_empty()).then(|| Box::new(limits)),
                }
            }
            None => {
                let kind = kind_of_code(status.code());
                let message = match kind {
                    ErrorKind::Unavailable | ErrorKind::UpstreamTimeout => {
                        "a gateway service is unavailable; try again"
                    }
                    _ => "internal gateway error",
                };
                Self::new(kind, message)
            }
        }
    }

    fn is_in_status(status: &Status) -> bool {
        status.metadata().contains_key(KIND_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_keeps_kind_param_and_retry() {
        let error = GatewayError::invalid("messages", "messages must not be empty");
        assert_eq!(GatewayError::from_status(&error.to_status()), error);

        let error = GatewayError::new(ErrorKind::QuotaExhausted, "no account").with_retry_after(42);
        let back = GatewayError::from_status(&error.to_status());
        assert_eq!(back.kind, ErrorKind::QuotaExhausted);
        assert_eq!(back.retry_after_secs, Some(42));
    }

    #[test]
    fn status_round_trip_keeps_rate_limits() {
        let limits = RateLimits {
            requests: Some(RateWindow {
                limit: 3,
                remaining: 0,
                reset_ms: 59_000,
            }),
            tokens: None,
        };
        let error = GatewayError::new(ErrorKind::RateLimited, "key limit")
            .with_retry_after(59)
            .with_rate_limits(limits);
        assert_eq!(GatewayError::from_status(&error.to_status()), error);
        let none =
            GatewayError::new(ErrorKind::RateLimited, "x").with_rate_limits(RateLimits::default());
        assert_eq!(none.rate_limits, None);
        assert_eq!(decode_window("1 2"), None);
        assert_eq!(decode_window("1 2 3 4"), None);
    }

    #[test]
    fn foreign_status_hides_its_message() {
        let status = Status::internal("db password is hunter2");
        let error = GatewayError::from_status(&status);
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(!error.message.contains("hunter2"));

        let error = GatewayError::from_status(&Status::unavailable("connect refused"));
        assert_eq!(error.kind.http_status(), 503);
    }
}
