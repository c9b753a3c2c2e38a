//! Keeping a long stream's lease open. Quota releases an unsettled lease's
//! reservation when its TTL ends (so a crashed router leaks nothing); a
//! stream that outlives the TTL renews its lease while it runs.
//!
//! The renewals run beside the work that holds the lease, in the same task
//! ([`while_renewing`]): no task is spawned per call, and since the task is
//! woken by the renewal's timer as by the work's own events, neither a slow
//! client nor a busy upstream delays them. They stop when the work ends. A
//! renewal is due once half of the lease's time is left, which leaves the
//! other half to retry one that failed. Times are durations from quota's
//! answers, so the router's clock does not matter.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tollgate_proto::QuotaHandle;
use tollgate_proto::v1::{LeaseGrant, RenewLeaseRequest};
use tonic::Request;
use tracing::{debug, warn};

/// Never renew more often than this, whatever the TTL.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The longest wait for quota's answer to a renewal.
const RENEW_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after an answer giving the lease `ttl_ms` more its next renewal
/// is due; `None` when quota gave no TTL.
pub(crate) fn interval(ttl_ms: i64) -> Option<Duration> {
    let half = u64::try_from(ttl_ms / 2).ok().filter(|half| *half > 0)?;
    Some(Duration::from_millis(half).max(MIN_INTERVAL))
}

/// Runs `work` while renewing `lease` (granted just now) beside it, and
/// returns what `work` returns.
pub(crate) async fn while_renewing<F: Future>(
    quota: &QuotaHandle,
    lease: &LeaseGrant,
    work: F,
) -> F::Output {
    let Some(first) = interval(lease.ttl_ms) else {
        return work.await;
    };
    let renewing = renew_until_gone(quota.clone(), lease.lease_id.clone(), first);
    tokio::pin!(work, renewing);
    tokio::select! {
        biased;
        output = &mut work => output,
        // Renewing ended (the lease is gone): the work goes on regardless.
        () = &mut renewing => work.await,
    }
}

async fn renew_until_gone(quota: QuotaHandle, lease_id: String, first: Duration) {
    let mut due = Instant::now() + first;
    loop {
        tokio::time::sleep_until(due).await;
        let request = Request::new(RenewLeaseRequest {
            lease_id: lease_id.clone(),
        });
        due = match tokio::time::timeout(RENEW_TIMEOUT, quota.renew_lease(request)).await {
            Ok(Ok(reply)) if reply.get_ref().renewed => {
                let ttl_ms = reply.get_ref().ttl_ms;
                debug!(ttl_ms, "lease renewed");
                match interval(ttl_ms) {
                    Some(next) => Instant::now() + next,
                    None => return,
                }
            }
            Ok(Ok(_)) => {
                warn!("the stream outlived its lease; its usage still counts when it ends");
                return;
            }
            Ok(Err(status)) => {
                warn!(code = ?status.code(), "lease renewal failed; retrying");
                Instant::now() + MIN_INTERVAL
            }
            Err(_elapsed) => {
                warn!("lease renewal timed out; retrying");
                Instant::now() + MIN_INTERVAL
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_are_due_at_half_the_ttl() {
        assert_eq!(interval(600_000), Some(Duration::from_secs(300)));
        assert_eq!(interval(1_000), Some(Duration::from_millis(500)));
        assert_eq!(interval(50), Some(MIN_INTERVAL));
        assert_eq!(interval(1), None);
        assert_eq!(interval(0), None);
        assert_eq!(interval(-5), None);
    }
}
