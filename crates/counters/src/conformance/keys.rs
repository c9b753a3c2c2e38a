//! Conformance checks for a client key's limits: the RPM and TPM sliding
//! windows, the daily token budget, the monthly USD budget, and that a
//! key's refusal and an account's refusal leave nothing behind on the
//! other.

use std::sync::Arc;

use tollgate_core::clock::next_utc_month_start_ms;

use super::{NEXT_MIDNIGHT, NOON, TTL, lease_id, limited, used_and_reserved};
use crate::{
    Candidate, DenialReason, IN_FLIGHT_RETRY_MS, KEY_WINDOW_MS, KeyLimits, LeaseDecision,
    LeaseDenied, LeaseGranted, LeaseInput, QuotaCounters, Reservation, Selection, SettleInput,
    Settlement,
};

pub(super) fn key(id: &str, rpm: Option<u32>, tpm: Option<u32>, budget: Option<u64>) -> KeyLimits {
    KeyLimits {
        key_id: id.into(),
        rpm,
        tpm,
        daily_token_budget: budget,
        monthly_budget_micro_usd: None,
    }
}

pub(super) fn monthly(id: &str, budget_micro_usd: u64) -> KeyLimits {
    KeyLimits {
        monthly_budget_micro_usd: Some(budget_micro_usd),
        ..key(id, None, None, None)
    }
}

pub(super) async fn lease_for(
    counters: &dyn QuotaCounters,
    limits: &KeyLimits,
    candidates: &[Candidate],
    tokens: u64,
    now_ms: i64,
) -> LeaseDecision {
    counters
        .lease(LeaseInput {
            lease_id: lease_id(),
            candidates: candidates.to_vec(),
            reservation: Reservation::exact(tokens),
            now_ms,
            ttl_ms: TTL,
            key: Some(limits.clone()),
            selection: Selection::default(),
            health_probe: false,
        })
        .await
        .unwrap()
}

pub(super) async fn granted_for(
    counters: &dyn QuotaCounters,
    limits: &KeyLimits,
    candidates: &[Candidate],
    tokens: u64,
    now_ms: i64,
) -> LeaseGranted {
    match lease_for(counters, limits, candidates, tokens, now_ms).await {
        LeaseDecision::Granted(grant) => grant,
        LeaseDecision::Denied(denial) => panic!("expected a grant, got {denial:?}"),
    }
}

/// The denial's time and reason (its window report is checked in
/// `key_report`).
pub(super) async fn denied_for(
    counters: &dyn QuotaCounters,
    limits: &KeyLimits,
    candidates: &[Candidate],
    tokens: u64,
    now_ms: i64,
) -> LeaseDenied {
    LeaseDenied {
        key_window: None,
        ..denied_with_report(counters, limits, candidates, tokens, now_ms).await
    }
}

pub(super) async fn denied_with_report(
    counters: &dyn QuotaCounters,
    limits: &KeyLimits,
    candidates: &[Candidate],
    tokens: u64,
    now_ms: i64,
) -> LeaseDenied {
    match lease_for(counters, limits, candidates, tokens, now_ms).await {
        LeaseDecision::Denied(denial) => super::without_time(denial, now_ms),
        LeaseDecision::Granted(grant) => panic!("expected a denial, got {grant:?}"),
    }
}

pub(super) async fn settle_for(
    counters: &dyn QuotaCounters,
    limits: &KeyLimits,
    grant: &LeaseGranted,
    actual: u64,
    now_ms: i64,
) -> Settlement {
    settle_costing(counters, limits, grant, actual, 0, now_ms).await
}

pub(super) async fn settle_costing(
    counters: &dyn QuotaCounters,
    limits: &KeyLimits,
    grant: &LeaseGranted,
    actual: u64,
    cost_micro_usd: u64,
    now_ms: i64,
) -> Settlement {
    counters
        .settle(SettleInput {
            lease_id: grant.lease_id.clone(),
            account_id: grant.account_id.clone(),
            key_id: Some(limits.key_id.clone()),
            actual_tokens: actual,
            cost_micro_usd,
            served: false,
            latency_us: None,
            now_ms,
            remember_ms: 60_000,
        })
        .await
        .unwrap()
}

fn denial(retry_at_ms: i64, reason: DenialReason) -> LeaseDenied {
    LeaseDenied {
        decided_at_ms: 0,
        retry_at_ms,
        reason,
        key_window: None,
    }
}

pub(crate) async fn key_rpm_window_slides(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let limits = key("k-rpm", Some(2), None, None);
    let pool = [limited("a", 1_000_000)];
    granted_for(c, &limits, &pool, 1, NOON).await;
    granted_for(c, &limits, &pool, 1, NOON + 10_000).await;
    let expected = denial(NOON + KEY_WINDOW_MS, DenialReason::KeyRpm);
    assert_eq!(
        denied_for(c, &limits, &pool, 1, NOON + 20_000).await,
        expected
    );
    assert_eq!(
        denied_for(c, &limits, &pool, 1, NOON + KEY_WINDOW_MS - 1).await,
        expected
    );
    // The first request slides out: one more fits, then the second's turn.
    granted_for(c, &limits, &pool, 1, NOON + KEY_WINDOW_MS).await;
    assert_eq!(
        denied_for(c, &limits, &pool, 1, NOON + KEY_WINDOW_MS + 1).await,
        denial(NOON + 10_000 + KEY_WINDOW_MS, DenialReason::KeyRpm)
    );
    // Another key is not affected.
    let other = key("k-rpm-other", Some(2), None, None);
    granted_for(c, &other, &pool, 1, NOON + 20_000).await;
}

pub(crate) async fn key_tpm_counts_reservations_then_settles(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let limits = key("k-tpm", None, Some(1_000), None);
    let pool = [limited("a", 1_000_000)];
    let first = granted_for(c, &limits, &pool, 600, NOON).await;
    // The open reservation counts.
    assert_eq!(
        denied_for(c, &limits, &pool, 500, NOON + 1_000).await,
        denial(NOON + KEY_WINDOW_MS, DenialReason::KeyTpm)
    );
    // Settled at 100: the window now holds 100.
    assert_eq!(
        settle_for(c, &limits, &first, 100, NOON + 1_500).await,
        Settlement::Settled
    );
    let second = granted_for(c, &limits, &pool, 500, NOON + 2_000).await;
    settle_for(c, &limits, &second, 500, NOON + 2_500).await;
    granted_for(c, &limits, &pool, 400, NOON + 3_000).await;
    // 1,000 in the window; 50 more fit once the first (100) slides out.
    assert_eq!(
        denied_for(c, &limits, &pool, 50, NOON + 4_000).await,
        denial(NOON + KEY_WINDOW_MS, DenialReason::KeyTpm)
    );
    // 150 more need the second (500) gone too.
    assert_eq!(
        denied_for(c, &limits, &pool, 150, NOON + KEY_WINDOW_MS).await,
        denial(NOON + 2_000 + KEY_WINDOW_MS, DenialReason::KeyTpm)
    );
    granted_for(c, &limits, &pool, 100, NOON + KEY_WINDOW_MS).await;
    // Larger than the whole limit: refused, a window from now.
    assert_eq!(
        denied_for(c, &limits, &pool, 1_001, NOON + 5 * KEY_WINDOW_MS).await,
        denial(NOON + 6 * KEY_WINDOW_MS, DenialReason::KeyTpm)
    );
    granted_for(c, &limits, &pool, 1_000, NOON + 5 * KEY_WINDOW_MS).await;
}

pub(crate) async fn key_daily_budget_resets_at_utc_midnight(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let limits = key("k-day", None, None, Some(1_000));
    let pool = [limited("a", 1_000_000)];
    let spent = granted_for(c, &limits, &pool, 900, NOON).await;
    settle_for(c, &limits, &spent, 900, NOON).await;
    assert_eq!(
        denied_for(c, &limits, &pool, 200, NOON).await,
        denial(NEXT_MIDNIGHT, DenialReason::KeyDailyBudget)
    );
    // Held by an open lease only: soon.
    let open = granted_for(c, &limits, &pool, 100, NOON).await;
    assert_eq!(
        denied_for(c, &limits, &pool, 1, NOON).await,
        denial(NOON + IN_FLIGHT_RETRY_MS, DenialReason::KeyDailyBudget)
    );
    settle_for(c, &limits, &open, 100, NOON).await;
    assert_eq!(
        denied_for(c, &limits, &pool, 1, NEXT_MIDNIGHT - 1).await,
        denial(NEXT_MIDNIGHT, DenialReason::KeyDailyBudget)
    );

    // A new UTC day: the whole budget again. An expired lease gives its
    // reservation back; its late settle still counts on the key.
    let unsettled = granted_for(c, &limits, &pool, 800, NEXT_MIDNIGHT).await;
    granted_for(c, &limits, &pool, 200, NEXT_MIDNIGHT).await;
    let later = NEXT_MIDNIGHT + TTL;
    assert_eq!(
        settle_for(c, &limits, &unsettled, 700, later).await,
        Settlement::Late
    );
    assert_eq!(
        denied_for(c, &limits, &pool, 301, later).await.reason,
        DenialReason::KeyDailyBudget
    );
    granted_for(c, &limits, &pool, 300, later).await;
}

pub(crate) async fn key_denial_reserves_nothing(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 10_000), limited("b", 10_000)];
    let limits = key("k-none", Some(1), Some(5_000), Some(5_000));
    let grant = granted_for(c, &limits, &pool, 100, NOON).await;
    assert_eq!(
        denied_for(c, &limits, &pool, 100, NOON + 1).await.reason,
        DenialReason::KeyRpm
    );
    let total =
        used_and_reserved(c, "a", NOON + 1).await.1 + used_and_reserved(c, "b", NOON + 1).await.1;
    assert_eq!(total, 100);
    settle_for(c, &limits, &grant, 100, NOON + 2).await;
    assert_eq!(
        used_and_reserved(c, &grant.account_id, NOON + 2).await,
        (100, 0)
    );

    // The accounts' refusal records nothing on the key: the one request a
    // minute and the whole budget are still there.
    let fresh = key("k-none-2", Some(1), Some(5_000), Some(5_000));
    let small = [limited("small", 1_000)];
    assert_eq!(
        denied_for(c, &fresh, &small, 2_000, NOON).await.reason,
        DenialReason::DailyLimit
    );
    granted_for(c, &fresh, &small, 1_000, NOON).await;
}

pub(crate) async fn key_limits_combine_to_the_latest_retry(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000_000)];
    let limits = key("k-both", Some(1), None, Some(500));
    let grant = granted_for(c, &limits, &pool, 500, NOON).await;
    settle_for(c, &limits, &grant, 500, NOON).await;
    // Both the window and the day refuse: the day's end is when both pass.
    assert_eq!(
        denied_for(c, &limits, &pool, 1, NOON + 1).await,
        denial(NEXT_MIDNIGHT, DenialReason::KeyDailyBudget)
    );
}

pub(crate) async fn key_monthly_budget_counts_settled_spend_until_next_month(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    let next_month = next_utc_month_start_ms(NOON);
    let limits = monthly("k-month", 1_000);
    let pool = [limited("a", 1_000_000)];
    let first = granted_for(c, &limits, &pool, 10, NOON).await;
    settle_costing(c, &limits, &first, 10, 600, NOON).await;
    // Only settled spend counts: an open lease holds no money, so two may
    // be open at once whatever they will cost.
    let second = granted_for(c, &limits, &pool, 10, NOON).await;
    let third = granted_for(c, &limits, &pool, 10, NOON).await;
    settle_costing(c, &limits, &second, 10, 399, NOON).await;
    granted_for(c, &limits, &pool, 10, NOON).await;
    // Spend reaches the budget: refused until the month ends, reserving
    // nothing on the account.
    settle_costing(c, &limits, &third, 10, 1, NOON + 1).await;
    let reserved_before = used_and_reserved(c, "a", NOON + 2).await.1;
    assert_eq!(
        denied_for(c, &limits, &pool, 1, NOON + 2).await,
        denial(next_month, DenialReason::KeyMonthlyBudget)
    );
    assert_eq!(used_and_reserved(c, "a", NOON + 2).await.1, reserved_before);
    assert_eq!(
        denied_for(c, &limits, &pool, 1, next_month - 1).await,
        denial(next_month, DenialReason::KeyMonthlyBudget)
    );
    // Another key, and the same key without a budget, are not affected.
    granted_for(c, &monthly("k-month-other", 1_000), &pool, 1, NOON + 2).await;
    granted_for(c, &key("k-month", None, None, None), &pool, 1, NOON + 2).await;
    // A new month starts with the whole budget.
    granted_for(c, &limits, &pool, 1, next_month).await;

    // Where a daily budget refuses too, the month's end is when both pass.
    let both = KeyLimits {
        daily_token_budget: Some(5),
        ..monthly("k-month-both", 100)
    };
    let spent = granted_for(c, &both, &pool, 5, NOON).await;
    settle_costing(c, &both, &spent, 5, 100, NOON).await;
    assert_eq!(
        denied_for(c, &both, &pool, 1, NOON).await,
        denial(next_month, DenialReason::KeyMonthlyBudget)
    );
}

pub(crate) async fn key_monthly_spend_counts_late_and_unknown_settles(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000_000)];
    // An expired lease's late settle charges the key it names.
    let late = monthly("k-month-late", 500);
    let expired = granted_for(c, &late, &pool, 10, NOON).await;
    assert_eq!(
        settle_costing(c, &late, &expired, 10, 500, NOON + TTL).await,
        Settlement::Late
    );
    assert_eq!(
        denied_for(c, &late, &pool, 1, NOON + TTL).await.reason,
        DenialReason::KeyMonthlyBudget
    );
    // So does a settle of a lease the store never saw.
    let unknown = monthly("k-month-unknown", 500);
    let settled = c
        .settle(SettleInput {
            lease_id: "never-leased".into(),
            account_id: "a".into(),
            key_id: Some(unknown.key_id.clone()),
            actual_tokens: 10,
            cost_micro_usd: 700,
            served: false,
            latency_us: None,
            now_ms: NOON,
            remember_ms: 60_000,
        })
        .await
        .unwrap();
    assert_eq!(settled, Settlement::Late);
    assert_eq!(
        denied_for(c, &unknown, &pool, 1, NOON).await.reason,
        DenialReason::KeyMonthlyBudget
    );
}

pub(crate) async fn key_monthly_budget_rolls_over_from_december_to_january(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    // NOON is in October 2024: two month starts later is 2024-12-01, and
    // the one after that 2025-01-01.
    let december = next_utc_month_start_ms(next_utc_month_start_ms(NOON));
    let january = next_utc_month_start_ms(december);
    assert_eq!(january - december, 31 * 86_400_000);
    let limits = monthly("k-december", 50);
    let pool = [limited("a", 1_000_000)];
    let last_minute = january - 60_000;
    let grant = granted_for(c, &limits, &pool, 10, last_minute).await;
    settle_costing(c, &limits, &grant, 10, 50, last_minute).await;
    assert_eq!(
        denied_for(c, &limits, &pool, 1, january - 1).await,
        denial(january, DenialReason::KeyMonthlyBudget)
    );
    let grant = granted_for(c, &limits, &pool, 10, january).await;
    // Spend settled in January counts for January only.
    settle_costing(c, &limits, &grant, 10, 49, january).await;
    granted_for(c, &limits, &pool, 10, january + 1).await;
}
