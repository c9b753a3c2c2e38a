//! A client key's RPM/TPM standing as the counters report it, turned into
//! what the edge writes as `x-ratelimit-*` headers: on a grant it travels in
//! the `LeaseGrant`, on a key's refusal in the error.

use tollgate_core::error::{RateLimits, RateWindow};
use tollgate_counters::{KeyLimits, KeyWindowReport};
use tollgate_proto::v1;

/// The key's limits with what is left of them at `now_ms`; only the limits
/// the key has.
pub(crate) fn of_report(limits: &KeyLimits, report: &KeyWindowReport, now_ms: i64) -> RateLimits {
    let until = |at_ms: i64| u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
    let window = |limit: Option<u32>, remaining: Option<u64>, reset_at_ms: i64| {
        Some(RateWindow {
            limit: u64::from(limit?),
            remaining: remaining?,
            reset_ms: until(reset_at_ms),
        })
    };
    RateLimits {
        requests: window(
            limits.rpm,
            report.remaining_requests,
            report.requests_reset_at_ms,
        ),
        tokens: window(
            limits.tpm,
            report.remaining_tokens,
            report.tokens_reset_at_ms,
        ),
    }
}

/// The wire form of [`RateLimits`]; `None` when the key has no RPM or TPM.
pub(crate) fn to_proto(limits: &RateLimits) -> Option<v1::RateLimitInfo> {
    let window = |window: &RateWindow| v1::RateLimitWindow {
        limit: window.limit,
        remaining: window.remaining,
        reset_ms: window.reset_ms,
    };
    (!limits.is_empty()).then(|| v1::RateLimitInfo {
        requests: limits.requests.as_ref().map(window),
        tokens: limits.tokens.as_ref().map(window),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_limits_a_key_has_are_reported() {
        let limits = KeyLimits {
            key_id: "key_1".into(),
            rpm: Some(3),
            tpm: None,
            daily_token_budget: Some(10),
            monthly_budget_micro_usd: None,
        };
        let report = KeyWindowReport {
            remaining_requests: Some(1),
            remaining_tokens: None,
            requests_reset_at_ms: 61_000,
            tokens_reset_at_ms: 1_000,
        };
        let built = of_report(&limits, &report, 1_000);
        assert_eq!(
            built.requests,
            Some(RateWindow {
                limit: 3,
                remaining: 1,
                reset_ms: 60_000
            })
        );
        assert_eq!(built.tokens, None);
        let wire = to_proto(&built).unwrap();
        assert_eq!(wire.requests.unwrap().reset_ms, 60_000);
        assert!(wire.tokens.is_none());

        let budget_only = KeyLimits {
            rpm: None,
            ..limits
        };
        let built = of_report(&budget_only, &report, 1_000);
        assert!(built.is_empty());
        assert_eq!(to_proto(&built), None);
    }
}
