//! The attempt loop shared by unary and streamed requests: lease, call,
//! and on a retryable failure release the lease, report the account, and
//! try another account. A failure of the worker process itself (its gRPC
//! call failing with no gateway error in it: the worker down, unreachable
//! or too slow) says nothing about the account: it is not reported, and the
//! next attempt may lease the same account through another worker.

use std::future::Future;

use tonic::{Request, Status};
use tracing::{debug, warn};

use tollgate_core::GatewayError;
use tollgate_proto::v1::{
    ChatRequest, LeaseGrant, LeaseRequest, OutcomeReport, ProviderRequest, SettleRequest, Usage,
};
use tollgate_proto::{QuotaHandle, WorkerHandle};

use crate::outcome;
use crate::service::Shared;
use crate::usage::cost_of;

/// A call that succeeded on some attempt.
pub(crate) struct Served<T> {
    pub value: T,
    pub lease: LeaseGrant,
    pub attempts: u32,
}

/// A request that no attempt could serve.
pub(crate) struct Unserved {
    pub error: GatewayError,
    /// The lease of the last attempt, when one was granted.
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
    let mut excluded: Vec<String> = Vec::new();
    let mut last: Option<(GatewayError, LeaseGrant)> = None;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let lease = match lease(&shared.quota, request, &excluded).await {
            Ok(lease) => lease,
            Err(denied) => {
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
        let worker = match shared.workers.pick() {
            Ok(worker) => worker.clone(),
            Err(error) => {
                release(&shared.quota, &lease);
                return Err(Unserved {
                    error,
                    lease: Some(lease),
                    attempts,
                });
            }
        };
        let provider_request = ProviderRequest {
            request_id: request.request_id.clone(),
            provider: lease.provider.clone(),
            base_url: lease.base_url.clone(),
            credential: lease.credential.clone(),
            email: lease.email.clone(),
            upstream_model: lease.upstream_model.clone(),
            body: request.body.clone(),
            timeout_ms: shared.settings.upstream_timeout_ms,
            model_label: lease.model_label.clone(),
            completion_cap: lease.completion_cap,
        };
        match call(worker, provider_request).await {
            Ok(value) => {
                return Ok(Served {
                    value,
                    lease,
                    attempts,
                });
            }
            Err(status) => {
                let error = GatewayError::from_status(&status);
                let worker_failed = !GatewayError::is_in_status(&status);
                if worker_failed {
                    release(&shared.quota, &lease);
                } else {
                    report_and_release(&shared.quota, &lease, &error);
                }
                let retry = error.kind.is_retryable() && attempts < shared.settings.max_attempts;
                debug!(
                    request_id = %request.request_id,
                    account = %lease.account_id,
                    kind = %error.kind,
                    retry,
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
                if !worker_failed {
                    excluded.push(lease.account_id.clone());
                }
                last = Some((error, lease));
            }
        }
    }
}

async fn lease(
    quota: &QuotaHandle,
    request: &ChatRequest,
    excluded: &[String],
) -> Result<LeaseGrant, GatewayError> {
    let lease_request = LeaseRequest {
        request_id: request.request_id.clone(),
        key_id: request.key_id.clone(),
        profile: request.profile.clone(),
        model: request.model.clone(),
        prompt_tokens: request.prompt_tokens,
        max_completion_tokens: request.max_completion_tokens,
        choices: request.choices,
        exclude_account_ids: excluded.to_vec(),
        account_id: request.account_id.clone(),
    };
    quota
        .lease(Request::new(lease_request))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| GatewayError::from_status(&status))
}

/// Replaces the lease's reservation with the real usage, and charges its
/// cost to the key's month. A failed settle is logged; the lease then
/// expires on its own.
pub(crate) async fn settle(quota: &QuotaHandle, lease: &LeaseGrant, usage: Usage, failed: bool) {
    let request = SettleRequest {
        lease_id: lease.lease_id.clone(),
        cost_micro_usd: cost_of(&lease.upstream_model, &usage),
        usage: Some(usage),
        failed,
    };
    if let Err(status) = quota.settle(Request::new(request)).await {
        warn!(code = ?status.code(), "settle failed; the lease will expire");
    }
}

/// Releases the reservation of a lease whose call never reached the
/// upstream (no worker, or the worker itself failed), off the path of the
/// request.
fn release(quota: &QuotaHandle, lease: &LeaseGrant) {
    let quota = quota.clone();
    let lease = lease.clone();
    tokio::spawn(async move { settle(&quota, &lease, Usage::default(), true).await });
}

/// Tells quota what the failure of a lease's call says about its account,
/// then releases the lease's reservation, off the path of the next attempt.
/// In that order: a half-open account's probe lease is released only once
/// its failure has opened the circuit again, so no second probe slips in.
fn report_and_release(quota: &QuotaHandle, lease: &LeaseGrant, error: &GatewayError) {
    let quota = quota.clone();
    let lease = lease.clone();
    let report = outcome_report(&lease, error);
    tokio::spawn(async move {
        if let Some(report) = report {
            send_report(&quota, report).await;
        }
        settle(&quota, &lease, Usage::default(), true).await;
    });
}

/// Tells quota what a failure after the call started (a stream cut by the
/// upstream) says about the account.
pub(crate) async fn report(quota: &QuotaHandle, lease: &LeaseGrant, error: &GatewayError) {
    if let Some(report) = outcome_report(lease, error) {
        send_report(quota, report).await;
    }
}

/// The outcome report of a failure that says something about the account
/// (cooldown, circuit, disable); `None` for one that does not.
fn outcome_report(lease: &LeaseGrant, error: &GatewayError) -> Option<OutcomeReport> {
    let outcome = outcome::of_failure(error)?;
    Some(OutcomeReport {
        account_id: lease.account_id.clone(),
        outcome: outcome.into(),
        retry_after_secs: error
            .retry_after_secs
            .map_or(0, |secs| u32::try_from(secs).unwrap_or(u32::MAX)),
        detail: error.kind.label().to_owned(),
    })
}

async fn send_report(quota: &QuotaHandle, report: OutcomeReport) {
    if let Err(status) = quota.report_outcome(Request::new(report)).await {
        warn!(code = ?status.code(), "outcome report failed");
    }
}
