//! What an upstream failure says about the account that served it.

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::v1::Outcome;

/// The outcome to report to quota for a failed call, or `None` when the
/// failure is the request's fault, not the account's.
pub(crate) fn of_failure(error: &GatewayError) -> Option<Outcome> {
    match error.kind {
        ErrorKind::UpstreamRateLimited => Some(Outcome::RateLimited),
        ErrorKind::UpstreamAuth => Some(Outcome::AuthFailed),
        ErrorKind::UpstreamError | ErrorKind::Overloaded | ErrorKind::Unavailable => {
            Some(Outcome::ServerError)
        }
        ErrorKind::UpstreamTimeout => Some(Outcome::Timeout),
        ErrorKind::InvalidRequest
        | ErrorKind::ContextLengthExceeded
        | ErrorKind::ContentPolicy
        | ErrorKind::InvalidApiKey
        | ErrorKind::PermissionDenied
        | ErrorKind::ModelNotFound
        | ErrorKind::NotFound
        | ErrorKind::PayloadTooLarge
        | ErrorKind::RateLimited
        | ErrorKind::QuotaExhausted
        | ErrorKind::ClientClosed
        | ErrorKind::Internal => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_upstream_failures_blame_the_account() {
        for kind in ErrorKind::ALL {
            let blamed = of_failure(&GatewayError::new(kind, "x")).is_some();
            assert_eq!(blamed, kind.is_retryable(), "{kind}");
        }
        assert_eq!(
            of_failure(&GatewayError::new(ErrorKind::UpstreamAuth, "x")),
            Some(Outcome::AuthFailed)
        );
    }
}
