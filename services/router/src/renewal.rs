//! Keeping a long stream's lease open: quota releases an unsettled lease's
//! reservation when its TTL ends (so a crashed router leaks nothing), so a
//! stream that outlives the TTL renews its lease while it runs.
//!
//! A renewal is due once half of the lease's remaining life has passed,
//! which leaves the other half to retry a renewal that failed.

use std::time::Duration;

use tokio::time::Instant;
use tollgate_core::clock;
use tollgate_proto::QuotaHandle;
use tollgate_proto::v1::{LeaseGrant, RenewLeaseRequest};
use tonic::Request;
use tracing::{debug, warn};

/// Never renew more often than this, whatever the TTL.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The longest wait for quota's answer to a renewal.
const RENEW_TIMEOUT: Duration = Duration::from_secs(5);

/// How long from `now_ms` until a lease expiring at `expires_at_ms` is due
/// for renewal; `None` when it has no expiry to keep (or it has passed).
pub(crate) fn delay_until_due(expires_at_ms: i64, now_ms: i64) -> Option<Duration> {
    let left = expires_at_ms.checked_sub(now_ms).filter(|left| *left > 0)?;
    let half = u64::try_from(left / 2).ok()?;
    Some(Duration::from_millis(half).max(MIN_INTERVAL))
}

/// The renewals of one lease.
pub(crate) struct Renewal {
    lease_id: String,
    due: Option<Instant>,
}

impl Renewal {
    pub(crate) fn of(lease: &LeaseGrant) -> Self {
        Self {
            lease_id: lease.lease_id.clone(),
            due: delay_until_due(lease.expires_at_ms, clock::now_ms())
                .map(|delay| Instant::now() + delay),
        }
    }

    /// Waits until the next renewal is due; forever when none is.
    pub(crate) async fn due(&self) {
        match self.due {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Renews the lease and schedules the next renewal. A lease quota no
    /// longer holds is not renewed again (its usage still counts when it is
    /// settled); a failed call is retried after a short wait.
    pub(crate) async fn renew(&mut self, quota: &QuotaHandle) {
        let request = Request::new(RenewLeaseRequest {
            lease_id: self.lease_id.clone(),
        });
        self.due = match tokio::time::timeout(RENEW_TIMEOUT, quota.renew_lease(request)).await {
            Ok(Ok(reply)) if reply.get_ref().renewed => {
                let expires_at_ms = reply.get_ref().expires_at_ms;
                debug!(expires_at_ms, "lease renewed");
                delay_until_due(expires_at_ms, clock::now_ms()).map(|delay| Instant::now() + delay)
            }
            Ok(Ok(_)) => {
                warn!("the stream outlived its lease; its usage still counts when it ends");
                None
            }
            Ok(Err(status)) => {
                warn!(code = ?status.code(), "lease renewal failed; retrying");
                Some(Instant::now() + MIN_INTERVAL)
            }
            Err(_elapsed) => {
                warn!("lease renewal timed out; retrying");
                Some(Instant::now() + MIN_INTERVAL)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_are_due_at_half_the_remaining_life() {
        assert_eq!(delay_until_due(600_000, 0), Some(Duration::from_secs(300)));
        assert_eq!(delay_until_due(10_000, 4_000), Some(Duration::from_secs(3)));
        assert_eq!(delay_until_due(1_000, 950), Some(MIN_INTERVAL));
        assert_eq!(delay_until_due(1_000, 1_000), None);
        assert_eq!(delay_until_due(0, 5), None);
    }
}
