//! What an upstream's answer means for the account that sent it.
//!
//! - `RATE_LIMITED` (429): the account cools down until now + the
//!   upstream's Retry-After, or `default_cooldown` when it gave none.
//! - `AUTH_FAILED` (401/403): the account is disabled in the store with the
//!   reason recorded; an operator re-enables it after fixing the secret.
//! - `SERVER_ERROR` / `TIMEOUT`: after `failure_threshold` consecutive ones
//!   the account cools down for `failure_cooldown` and the count restarts.
//!   `OK` resets the count. The count is per quota process; a circuit
//!   breaker shared by every replica, with a growing backoff, replaces it
//!   later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tollgate_core::GatewayError;
use tollgate_proto::v1::{self, Outcome};
use tracing::{info, warn};

use crate::QuotaService;
use crate::errors::{from_control, from_counters};

/// Longest upstream detail kept in a disabled account's reason.
const MAX_DETAIL_CHARS: usize = 200;

/// Consecutive server failures per account.
#[derive(Debug, Default)]
pub(crate) struct FailureStreaks(Mutex<HashMap<String, u32>>);

impl FailureStreaks {
    /// Counts one more failure; true when it reaches `threshold` (and the
    /// count restarts).
    fn failed(&self, account_id: &str, threshold: u32) -> bool {
        let mut streaks = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = streaks.entry(account_id.to_owned()).or_default();
        *count += 1;
        if *count >= threshold.max(1) {
            streaks.remove(account_id);
            true
        } else {
            false
        }
    }

    pub(crate) fn succeeded(&self, account_id: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(account_id);
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

async fn cool_down(
    service: &QuotaService,
    account_id: &str,
    duration: Duration,
) -> Result<(), GatewayError> {
    let until_ms = service.clock.now_ms().saturating_add(millis(duration));
    service
        .counters
        .cooldown(account_id, until_ms)
        .await
        .map_err(from_counters)
}

pub(crate) async fn report(
    service: &QuotaService,
    report: v1::OutcomeReport,
) -> Result<v1::OutcomeAck, GatewayError> {
    let account_id = report.account_id.as_str();
    if account_id.is_empty() {
        return Err(GatewayError::invalid(
            "account_id",
            "account_id is required",
        ));
    }
    match report.outcome() {
        Outcome::Unspecified => {
            return Err(GatewayError::invalid("outcome", "outcome is required"));
        }
        Outcome::Ok => service.failures.succeeded(account_id),
        Outcome::RateLimited => {
            let duration = match report.retry_after_secs {
                0 => service.settings.default_cooldown,
                secs => Duration::from_secs(u64::from(secs)),
            };
            info!(account = %account_id, secs = duration.as_secs(), "account rate limited upstream; cooling down");
            cool_down(service, account_id, duration).await?;
        }
        Outcome::ServerError | Outcome::Timeout => {
            if service
                .failures
                .failed(account_id, service.settings.failure_threshold)
            {
                warn!(account = %account_id, "repeated upstream failures; cooling account down");
                cool_down(service, account_id, service.settings.failure_cooldown).await?;
            }
        }
        Outcome::AuthFailed => {
            let detail: String = report
                .detail
                .trim()
                .chars()
                .take(MAX_DETAIL_CHARS)
                .collect();
            let reason = if detail.is_empty() {
                "the upstream rejected the account's credential".to_owned()
            } else {
                format!("the upstream rejected the account's credential: {detail}")
            };
            warn!(account = %account_id, "upstream rejected the credential; disabling account");
            service
                .control
                .set_account_disabled(account_id, &reason)
                .await
                .map_err(from_control)?;
            service.reload_accounts().await?;
        }
    }
    Ok(v1::OutcomeAck {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaks_trip_at_the_threshold_and_restart() {
        let streaks = FailureStreaks::default();
        assert!(!streaks.failed("a", 3));
        assert!(!streaks.failed("a", 3));
        assert!(!streaks.failed("b", 3));
        assert!(streaks.failed("a", 3));
        assert!(!streaks.failed("a", 3));
        streaks.succeeded("b");
        assert!(!streaks.failed("b", 3));
    }
}
