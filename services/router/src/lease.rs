//! A lease quota granted for one attempt, and the ways it ends: settled
//! with the usage of a call that was served, settled as failed with what a
//! call that failed after it started used (a cut stream), or released (a
//! settle of nothing, marked failed) when the call never got an answer.
//! Each of them takes the [`LeaseHandle`] by value, so a lease ends once.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tonic::Request;
use tracing::{debug, warn};

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::QuotaHandle;
use tollgate_proto::v1::{LeaseGrant, OutcomeReport, SettleRequest, Usage};

use crate::outcome;
use crate::usage::cost_of;

/// A granted lease, to be ended once.
pub(crate) struct LeaseHandle {
    grant: LeaseGrant,
    quota: QuotaHandle,
}

impl LeaseHandle {
    pub(crate) fn new(quota: &QuotaHandle, grant: LeaseGrant) -> Self {
        Self {
            grant,
            quota: quota.clone(),
        }
    }

    /// What quota granted: the account, its credential, the caps.
    pub(crate) fn grant(&self) -> &LeaseGrant {
        &self.grant
    }

    /// Ends the lease of a call served in full with its real usage; the
    /// call's `latency` goes to the account's average.
    pub(crate) async fn settle(self, usage: Usage, latency: Option<Duration>) {
        settle(&self.quota, &self.grant, usage, false, latency).await;
    }

    /// Ends the lease of a call that failed after it started (a stream cut
    /// by the upstream or the client): what the failure says about the
    /// account is reported first, then the usage is settled as failed.
    pub(crate) async fn settle_failed(self, error: &GatewayError, usage: Usage) {
        if let Some(report) = outcome_report(&self.grant, error) {
            send_report(&self.quota, report).await;
        }
        settle(&self.quota, &self.grant, usage, true, None).await;
    }

    /// Ends the lease of a call that got no answer, off the request's path:
    /// returns the grant (for the request's record) and the work to spawn,
    /// which reports `failure` for the account when it says something about
    /// it, then releases the reservation. In that order: a half-open
    /// account's probe lease is released only once its failure has opened
    /// the circuit again, so no second probe slips in.
    pub(crate) fn release(
        self,
        failure: Option<&GatewayError>,
    ) -> (LeaseGrant, impl Future<Output = ()> + Send + 'static) {
        let report = failure.and_then(|error| outcome_report(&self.grant, error));
        let grant = self.grant.clone();
        let releasing = async move {
            if let Some(report) = report {
                send_report(&self.quota, report).await;
            }
            settle(&self.quota, &self.grant, Usage::default(), true, None).await;
        };
        (grant, releasing)
    }
}

/// Replaces the lease's reservation with the real usage, and charges its
/// cost to the key's month; a served call's `latency` goes to the
/// account's average. A settle that fails is sent again (with a
/// jittered exponential backoff, 50 ms up to 2 s) until quota takes it or
/// the lease's TTL has passed: settling is idempotent, so one whose answer
/// was lost is charged once, and after the TTL the reservation is gone.
async fn settle(
    quota: &QuotaHandle,
    lease: &LeaseGrant,
    usage: Usage,
    failed: bool,
    latency: Option<Duration>,
) {
    let request = SettleRequest {
        lease_id: lease.lease_id.clone(),
        cost_micro_usd: cost_of(Some(lease), &usage).micro_usd,
        usage: Some(usage),
        failed,
        upstream_latency_us: latency
            .map(|latency| u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
    };
    let within = Duration::from_millis(u64::try_from(lease.ttl_ms).unwrap_or(0));
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .with_total_delay(Some(within));
    let send = || quota.settle(Request::new(request.clone()));
    let settled = send
        .retry(backoff)
        .sleep(tokio::time::sleep)
        // A settle quota refuses as malformed will not get better.
        .when(|status| GatewayError::from_status(status).kind != ErrorKind::InvalidRequest)
        .notify(|status, pause| {
            debug!(code = ?status.code(), ?pause, "settle failed; sending it again");
        })
        .await;
    if let Err(status) = settled {
        warn!(code = ?status.code(), "settle failed until its lease expired");
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
