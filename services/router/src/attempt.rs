//! The attempt loop shared by unary and streamed requests: lease, call,
//! and on a retryable failure release the lease, report the account, and
//! try another account at once. A failure of the worker process itself (its
//! gRPC call failing with no gateway error in it: the worker down,
//! unreachable or too slow) says nothing about the account: it is not
//! reported, and the next attempt may lease the same account through
//! another worker.
//!
//! Once every account was tried, those whose failure may pass (a server
//! error, a timeout, an unreachable upstream) are tried again after a
//! backoff, while attempts and the request's deadline last. An account
//! refused for its credential is disabled, one rate limited cools down:
//! neither is asked again.
//!
//! A prompt too long for the model's context window, or a content-policy
//! refusal, is not retried on another account: it moves on to the route's
//! fallbacks of that class when it has some ([`FailureFallbacks`]), and is
//! the answer otherwise.
//!
//! The route asked for may set its own timeouts, which its first grant
//! carries: its deadline replaces the router's from then on (still
//! measured from the request's start), and an attempt whose grant carries
//! a first-byte timeout gives up when its answer (a stream's first event)
//! has not come within it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use tonic::{Request, Status};
use tracing::debug;

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{ChatRequest, FallbackClass, LeaseGrant, LeaseRequest, ProviderRequest};
use tollgate_proto::{QuotaHandle, WorkerHandle};

use crate::failure_fallback::FailureFallbacks;
use crate::lease::LeaseHandle;
use crate::renewal::while_renewing;
use crate::shared::Shared;

/// A call that succeeded on some attempt.
pub(crate) struct Served<T> {
    pub value: T,
    pub lease: LeaseHandle,
    pub attempts: u32,
    /// How long the serving call took: to the whole answer for a unary
    /// call, to the first event for a stream.
    pub latency: Duration,
}

/// A request that no attempt could serve.
pub(crate) struct Unserved {
    pub error: GatewayError,
    /// The lease of the last attempt, when one was granted (released).
    pub lease: Option<LeaseGrant>,
    pub attempts: u32,
}

/// Runs `call` against leased accounts until one succeeds, the failure is
/// not retryable, the attempts run out, or quota has no account left.
pub(crate) async fn serve<T, F, Fut>(
    shared: &Shared,
    request: &ChatRequest,
    mut call: F,
) -> Result<Served<T>, Unserved>
where
    F: FnMut(WorkerHandle, ProviderRequest) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let settings = &shared.settings;
    let started = Instant::now();
    let mut deadline = started + settings.request_deadline;
    // What the route asked for sets, learned from the first grant.
    let mut route_known = false;
    let mut fallbacks = FailureFallbacks::default();
    // A request pinned to one account (the admin account test) asks it once.
    let max_attempts = if request.account_id.is_empty() {
        settings.max_attempts
    } else {
        1
    };
    let mut excluded: Vec<String> = Vec::new();
    // Accounts whose failure may pass, to ask again after a backoff.
    let mut to_retry: Vec<String> = Vec::new();
    let mut pauses = 0;
    let mut last: Option<(GatewayError, LeaseGrant)> = None;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let asked = lease(
            &shared.quota,
            request,
            &excluded,
            fallbacks.class(),
            fallbacks.tried(),
        );
        let lease = match asked.await {
            Ok(grant) => {
                if !route_known {
                    route_known = true;
                    fallbacks.learn(&grant);
                    if let Some(ms) = grant.deadline_ms {
                        deadline = started + Duration::from_millis(u64::from(ms));
                    }
                }
                LeaseHandle::new(&shared.quota, grant)
            }
            Err(denied) => {
                if !to_retry.is_empty() && attempts <= max_attempts {
                    let pause = backoff(pauses);
                    if Instant::now() + pause < deadline {
                        pauses += 1;
                        tokio::time::sleep(pause).await;
                        excluded.retain(|account| !to_retry.contains(account));
                        to_retry.clear();
                        attempts -= 1;
                        continue;
                    }
                }
                // After upstream failures, the upstream's error says more than
                // "no account left".
                let (error, lease) = match last {
                    Some((error, lease)) => (error, Some(lease)),
                    None => (denied, None),
                };
                return Err(Unserved {
                    error,
                    lease,
                    attempts: attempts - 1,
                });
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let worker = match shared.workers.pick() {
            Ok(worker) => worker.clone(),
            Err(error) => {
                let (grant, releasing) = lease.release(None);
                shared.spawn(releasing);
                return Err(Unserved {
                    error,
                    lease: Some(grant),
                    attempts,
                });
            }
        };
        let grant = lease.grant();
        let provider_request = ProviderRequest {
            request_id: request.request_id.clone(),
            provider: grant.provider.clone(),
            base_url: grant.base_url.clone(),
            credential: grant.credential.clone(),
            email: grant.email.clone(),
            upstream_model: grant.upstream_model.clone(),
            body: request.body.clone(),
            timeout_ms: attempt_timeout_ms(settings.upstream_timeout_ms, left),
            model_label: grant.model_label.clone(),
            completion_cap: grant.completion_cap,
            settings: grant.settings.clone(),
        };
        // The lease is renewed while the upstream works on the answer (a
        // stream's relay renews it from its first event on).
        let called_at = Instant::now();
        let calling = call(worker, provider_request);
        let called = match grant.first_byte_timeout_ms {
            Some(ms) => {
                let first_byte = attempt_timeout_ms(ms, left);
                let calling = within_first_byte(first_byte, calling);
                while_renewing(&shared.quota, grant, calling).await
            }
            None => while_renewing(&shared.quota, grant, calling).await,
        };
        let latency = called_at.elapsed();
        match called {
            Ok(value) => {
                return Ok(Served {
                    value,
                    lease,
                    attempts,
                    latency,
                });
            }
            Err(status) => {
                let error = GatewayError::from_status(&status);
                let worker_failed = !GatewayError::is_in_status(&status);
                // A failure of the worker itself says nothing of the account.
                let (lease, releasing) = lease.release((!worker_failed).then_some(&error));
                shared.spawn(releasing);
                let to_fallback = !worker_failed && fallbacks.advance(error.kind, &lease);
                let retry = (error.kind.is_retryable() || to_fallback)
                    && attempts < max_attempts
                    && Instant::now() < deadline;
                debug!(
                    request_id = %request.request_id,
                    account = %lease.account_id,
                    kind = %error.kind,
                    retry,
                    to_fallback,
                    worker_failed,
                    "upstream attempt failed"
                );
                if !retry {
                    return Err(Unserved {
                        error,
                        lease: Some(lease),
                        attempts,
                    });
                }
                // The account of a failure the request caused may serve a
                // fallback's model.
                if !worker_failed && !to_fallback {
                    excluded.push(lease.account_id.clone());
                    if may_pass(error.kind) {
                        to_retry.push(lease.account_id.clone());
                    }
                }
                last = Some((error, lease));
            }
        }
    }
}

/// Whether a failure of an account may be gone a moment later.
fn may_pass(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UpstreamError
            | ErrorKind::Overloaded
            | ErrorKind::UpstreamTimeout
            | ErrorKind::Unavailable
    )
}

/// The first pause before the same accounts are asked again, and the most.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// The pause before asking failed accounts again the `pauses + 1`th time:
/// exponential (0.1 s doubling up to 2 s) with full jitter, so the retries
/// of many requests do not arrive together.
fn backoff(pauses: u32) -> Duration {
    let ceiling = FIRST_PAUSE
        .saturating_mul(1 << pauses.min(16))
        .min(LONGEST_PAUSE);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ceiling_ms))
}

/// The call (which ends with a plain answer, or with a stream's first
/// event), or an upstream timeout when it takes longer than `ms`: the
/// route's first-byte timeout, which the account is blamed for like any
/// upstream timeout.
async fn within_first_byte<T>(
    ms: u32,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(Duration::from_millis(u64::from(ms)), call)
        .await
        .unwrap_or_else(|_elapsed| {
            Err(GatewayError::new(
                ErrorKind::UpstreamTimeout,
                format!(
                    "the upstream sent nothing within the route's first-byte timeout ({ms} ms)"
                ),
            )
            .to_status())
        })
}

/// An attempt's upstream time limit: the configured one, cut to what is
/// left of the request's deadline (at least a millisecond).
fn attempt_timeout_ms(configured_ms: u32, left: Duration) -> u32 {
    let left_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1);
    configured_ms.min(left_ms)
}

async fn lease(
    quota: &QuotaHandle,
    request: &ChatRequest,
    excluded: &[String],
    fallback_class: FallbackClass,
    tried_fallbacks: &[String],
) -> Result<LeaseGrant, GatewayError> {
    let lease_request = LeaseRequest {
        request_id: request.request_id.clone(),
        key_id: request.key_id.clone(),
        profile: request.profile.clone(),
        model: request.model.clone(),
        prompt_tokens: request.prompt_tokens,
        max_completion_tokens: request.max_completion_tokens,
        choices: request.choices,
        worst_prompt_tokens: request.worst_prompt_tokens,
        exclude_account_ids: excluded.to_vec(),
        account_id: request.account_id.clone(),
        fallback_class: fallback_class.into(),
        exclude_fallbacks: tried_fallbacks.to_vec(),
        health_probe: request.health_probe,
    };
    quota
        .lease(Request::new(lease_request))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| GatewayError::from_status(&status))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        for pauses in 0..8 {
            let ceiling = FIRST_PAUSE.saturating_mul(1 << pauses).min(LONGEST_PAUSE);
            for _ in 0..50 {
                assert!(backoff(pauses) <= ceiling);
            }
        }
        assert!(backoff(40) <= LONGEST_PAUSE);
        // Full jitter: the draws spread over the range, short ones included.
        let draws: Vec<Duration> = (0..200).map(|_| backoff(5)).collect();
        assert!(draws.iter().any(|pause| *pause < LONGEST_PAUSE / 4));
        assert!(draws.iter().any(|pause| *pause > LONGEST_PAUSE / 2));
    }

    #[test]
    fn attempts_are_cut_to_the_deadline() {
        assert_eq!(
            attempt_timeout_ms(300_000, Duration::from_secs(600)),
            300_000
        );
        assert_eq!(
            attempt_timeout_ms(300_000, Duration::from_millis(1_500)),
            1_500
        );
        assert_eq!(attempt_timeout_ms(300_000, Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn a_first_byte_too_late_is_an_upstream_timeout() {
        let late = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, Status>("answer")
        };
        let status = within_first_byte(20, late).await.unwrap_err();
        assert!(GatewayError::is_in_status(&status));
        assert_eq!(
            GatewayError::from_status(&status).kind,
            ErrorKind::UpstreamTimeout
        );
        let early = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, Status>("answer")
        };
        assert_eq!(within_first_byte(2_000, early).await.unwrap(), "answer");
    }

    #[test]
    fn only_passing_failures_are_asked_again() {
        assert!(may_pass(ErrorKind::UpstreamError));
        assert!(may_pass(ErrorKind::Overloaded));
        assert!(may_pass(ErrorKind::UpstreamTimeout));
        assert!(!may_pass(ErrorKind::UpstreamAuth));
        assert!(!may_pass(ErrorKind::UpstreamRateLimited));
    }
}
