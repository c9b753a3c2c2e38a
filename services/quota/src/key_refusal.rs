//! What a client sees when its key's own limit refuses a lease: 429
//! `rate_limit_exceeded` ([`ErrorKind::RateLimited`]) with a message naming
//! the limit, so it can tell a per-minute pace from a spent budget.

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_counters::{DenialReason, KeyLimits};

/// The error for a key-limit refusal (`reason.is_key_limit()`); `limits`
/// are the key's, for the amounts the message names.
pub(crate) fn error(
    reason: DenialReason,
    limits: Option<&KeyLimits>,
    retry_after_secs: u64,
) -> GatewayError {
    let message = match reason {
        DenialReason::KeyRpm => limit_reached("requests per minute"),
        DenialReason::KeyTpm => limit_reached("tokens per minute"),
        DenialReason::KeyMonthlyBudget => {
            match limits.and_then(|limits| limits.monthly_budget_micro_usd) {
                Some(budget) => format!(
                    "this API key's monthly budget of {} is spent; retry next month",
                    dollars(budget)
                ),
                None => "this API key's monthly budget is spent; retry next month".to_owned(),
            }
        }
        // The others are the accounts' refusals, never passed here.
        DenialReason::KeyDailyBudget
        | DenialReason::NoCandidates
        | DenialReason::CoolingDown
        | DenialReason::DailyLimit
        | DenialReason::InFlight
        | DenialReason::CircuitOpen => limit_reached("daily token budget"),
    };
    GatewayError::new(ErrorKind::RateLimited, message).with_retry_after(retry_after_secs)
}

fn limit_reached(limit: &str) -> String {
    format!("this API key's {limit} limit is reached; retry later")
}

/// Micro-dollars as US dollars with at least cents and no trailing zeros
/// beyond them: `$25.50`, `$5.00`, `$0.000001`.
fn dollars(micro_usd: u64) -> String {
    let fraction = format!("{:06}", micro_usd % 1_000_000);
    let significant = fraction.trim_end_matches('0');
    let shown = if significant.len() < 2 {
        &fraction[..2]
    } else {
        significant
    };
    format!("${}.{shown}", micro_usd / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_show_cents_and_every_significant_digit() {
        assert_eq!(dollars(25_500_000), "$25.50");
        assert_eq!(dollars(5_000_000), "$5.00");
        assert_eq!(dollars(1), "$0.000001");
        assert_eq!(dollars(1_234_567), "$1.234567");
        assert_eq!(dollars(0), "$0.00");
    }

    #[test]
    fn each_key_limit_names_itself() {
        let limits = KeyLimits {
            key_id: "key_1".into(),
            rpm: Some(2),
            tpm: None,
            daily_token_budget: None,
            monthly_budget_micro_usd: Some(12_500_000),
        };
        let monthly = error(DenialReason::KeyMonthlyBudget, Some(&limits), 60);
        assert_eq!(monthly.kind, ErrorKind::RateLimited);
        assert_eq!(monthly.retry_after_secs, Some(60));
        assert_eq!(
            monthly.message,
            "this API key's monthly budget of $12.50 is spent; retry next month"
        );
        let rpm = error(DenialReason::KeyRpm, Some(&limits), 1);
        assert!(rpm.message.contains("requests per minute"), "{rpm:?}");
        let daily = error(DenialReason::KeyDailyBudget, None, 1);
        assert!(daily.message.contains("daily token budget"), "{daily:?}");
    }
}
