//! What an upstream's answer means for the account that sent it.
//!
//! - `RATE_LIMITED` (429): the account cools down until now + the
//!   upstream's Retry-After, or `default_cooldown` when it gave none; never
//!   longer than `max_cooldown`, or past the next 00:00 UTC when that is
//!   unset (a Retry-After of days, or a date far ahead, is not believed).
//! - `AUTH_FAILED` (401/403): the account is disabled in the store with the
//!   reason recorded; an operator re-enables it after fixing the secret.
//! - `SERVER_ERROR` / `TIMEOUT`: counted by the account's circuit breaker
//!   in the counters, so every replica shares it: `failure_threshold` in a
//!   row open the circuit for `failure_cooldown`, doubled each time its
//!   probe fails, up to `failure_backoff_max`.
//! - `OK` (and a settle of a request served in full, in the settle's own
//!   counters step): a success, which restarts the count or closes a
//!   half-open circuit.
//!
//! Every failure is also recorded in the account's activity (its last
//! error and class, its errors today) before what it does to the account.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tollgate_control_store::NewAuditEntry;
use tollgate_core::{GatewayError, clock};
use tollgate_counters::ErrorClass;
use tollgate_proto::v1::{self, Outcome};
use tollgate_telemetry::CircuitLabels;
use tracing::{info, warn};

use crate::errors::{from_control, from_counters};
use crate::{QuotaService, audit};

/// Longest upstream detail kept in a disabled account's reason.
const MAX_DETAIL_CHARS: usize = 200;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The class a failure outcome is recorded under; `None` for a success.
fn error_class(outcome: Outcome) -> Option<ErrorClass> {
    match outcome {
        Outcome::Unspecified | Outcome::Ok => None,
        Outcome::RateLimited => Some(ErrorClass::RateLimited),
        Outcome::ServerError => Some(ErrorClass::ServerError),
        Outcome::Timeout => Some(ErrorClass::Timeout),
        Outcome::AuthFailed => Some(ErrorClass::AuthFailed),
    }
}

impl QuotaService {
    /// `tollgate_circuit_open{account}` as this process last saw the account.
    fn set_circuit_gauge(&self, account_id: &str, open: bool) {
        if open {
            self.opened_circuits.store(true, Ordering::Relaxed);
        }
        self.metrics
            .quota
            .circuit_open
            .get_or_create(&CircuitLabels {
                account: account_id.to_owned(),
            })
            .set(i64::from(open));
    }

    /// A lease was granted on the account: if this process saw its circuit
    /// open, it is serving again. (No series is made for other accounts, and
    /// nothing is looked up before this process has opened any circuit.)
    pub(crate) fn note_lease_granted(&self, account_id: &str) {
        if !self.opened_circuits.load(Ordering::Relaxed) {
            return;
        }
        let labels = CircuitLabels {
            account: account_id.to_owned(),
        };
        if let Some(gauge) = self.metrics.quota.circuit_open.get(&labels) {
            gauge.set(0);
        }
    }

    async fn cool_down(&self, account_id: &str, duration: Duration) -> Result<(), GatewayError> {
        self.counters
            .cooldown(account_id, millis(duration), self.clock.now_ms())
            .await
            .map(drop)
            .map_err(from_counters)
    }

    pub(crate) async fn report_outcome(
        &self,
        report: v1::OutcomeReport,
    ) -> Result<v1::OutcomeAck, GatewayError> {
        let account_id = report.account_id.as_str();
        if account_id.is_empty() {
            return Err(GatewayError::invalid(
                "account_id",
                "account_id is required",
            ));
        }
        if let Some(class) = error_class(report.outcome()) {
            self.counters
                .record_error(account_id, class, self.clock.now_ms())
                .await
                .map_err(from_counters)?;
        }
        match report.outcome() {
            Outcome::Unspecified => {
                return Err(GatewayError::invalid("outcome", "outcome is required"));
            }
            Outcome::Ok => {
                let closed = self
                    .counters
                    .record_success(account_id, self.clock.now_ms())
                    .await
                    .map_err(from_counters)?;
                if closed {
                    self.set_circuit_gauge(account_id, false);
                }
            }
            Outcome::RateLimited => {
                let asked = match report.retry_after_secs {
                    0 => self.settings.default_cooldown,
                    secs => Duration::from_secs(u64::from(secs)),
                };
                let longest = self.settings.max_cooldown.unwrap_or_else(|| {
                    let now_ms = self.clock.now_ms();
                    Duration::from_millis(
                        clock::ms_until_next_utc_midnight(now_ms)
                            .max(0)
                            .unsigned_abs(),
                    )
                });
                let duration = asked.min(longest);
                info!(account = %account_id, secs = duration.as_secs(), "account rate limited upstream; cooling down");
                self.cool_down(account_id, duration).await?;
            }
            Outcome::ServerError | Outcome::Timeout => {
                let now_ms = self.clock.now_ms();
                let opened = self
                    .counters
                    .record_failure(account_id, self.settings.circuit_policy(), now_ms)
                    .await
                    .map_err(from_counters)?;
                if let Some(until_ms) = opened {
                    let secs = u64::try_from(until_ms.saturating_sub(now_ms)).unwrap_or(0) / 1000;
                    warn!(account = %account_id, secs, "repeated upstream failures; account circuit open");
                    self.set_circuit_gauge(account_id, true);
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
                let disabled = self
                    .control
                    .set_account_disabled(account_id, &reason)
                    .await
                    .map_err(from_control)?;
                let mut entry = NewAuditEntry::for_account(audit::SYSTEM, "disable", &disabled);
                entry.summary["reason"] = reason.into();
                self.record_audit(entry).await;
                self.control_changed().await?;
            }
        }
        Ok(v1::OutcomeAck {})
    }
}
