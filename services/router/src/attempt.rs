//! The attempt loop shared by unary and streamed requests: lease, call,
//! and on a retryable failure release the lease, report the account, and
//! try another account.

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
                release(&shared.quota, &lease);
                report(&shared.quota, &lease, &error);
                let retry = error.kind.is_retryable() && attempts < shared.settings.max_attempts;
                debug!(
                    request_id = %request.request_id,
                    account = %lease.account_id,
                    kind = %error.kind,
                    retry,
                    "upstream attempt failed"
                );
                if !retry {
                    return Err(Unserved {
                        error,
                        lease: Some(lease),
                        attempts,
                    });
                }
                excluded.push(lease.account_id.clone());
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
        estimated_tokens: request.estimated_tokens,
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
pub(crate) async fn settle(quota: &QuotaHandle, lease: &LeaseGrant, usage: Usage) {
    let request = SettleRequest {
        lease_id: lease.lease_id.clone(),
        cost_micro_usd: cost_of(&lease.upstream_model, &usage),
        usage: Some(usage),
    };
    if let Err(status) = quota.settle(Request::new(request)).await {
        warn!(code = ?status.code(), "settle failed; the lease will expire");
    }
}

/// Releases the reservation of a lease whose call failed, off the path of
/// the next attempt.
fn release(quota: &QuotaHandle, lease: &LeaseGrant) {
    let quota = quota.clone();
    let lease = lease.clone();
    tokio::spawn(async move { settle(&quota, &lease, Usage::default()).await });
}

/// Tells quota what a failure says about the account (cooldown, disable).
fn report(quota: &QuotaHandle, lease: &LeaseGrant, error: &GatewayError) {
    let Some(outcome) = outcome::of_failure(error) else {
        return;
    };
    let quota = quota.clone();
    let report = OutcomeReport {
        account_id: lease.account_id.clone(),
        outcome: outcome.into(),
        retry_after_secs: error
            .retry_after_secs
            .map_or(0, |secs| u32::try_from(secs).unwrap_or(u32::MAX)),
        detail: error.kind.label().to_owned(),
    };
    tokio::spawn(async move {
        if let Err(status) = quota.report_outcome(Request::new(report)).await {
            warn!(code = ?status.code(), "outcome report failed");
        }
    });
}
