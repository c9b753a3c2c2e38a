//! Conformance checks for an account's activity: successes from served
//! settles with their latency average, errors as reported, day counts per
//! UTC day, and the `lowest_latency` strategy that reads the average.

use std::sync::Arc;

use super::strategies::granted_by;
use super::{NEXT_MIDNIGHT, NOON, granted, limited, settle, settle_input};
use crate::{
    AccountActivity, Candidate, ErrorClass, LeaseGranted, QuotaCounters, Selection, SettleInput,
    Settlement, Strategy,
};

/// Settles `grant` as served in full, with the call's latency when given.
async fn serve(
    counters: &dyn QuotaCounters,
    grant: &LeaseGranted,
    latency_us: Option<u64>,
    now_ms: i64,
) -> Settlement {
    counters
        .settle(SettleInput {
            served: true,
            latency_us,
            ..settle_input(grant, 10, now_ms)
        })
        .await
        .unwrap()
}

async fn activity(counters: &dyn QuotaCounters, account: &str, now_ms: i64) -> AccountActivity {
    counters.usage(account, now_ms).await.unwrap().activity
}

async fn error(counters: &dyn QuotaCounters, account: &str, class: ErrorClass, now_ms: i64) {
    counters.record_error(account, class, now_ms).await.unwrap();
}

pub(crate) async fn served_settles_and_errors_make_the_activity(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let alone = [limited("a", 10_000)];
    assert_eq!(activity(c, "a", NOON).await, AccountActivity::default());

    let first = granted(c, &alone, 10, NOON).await;
    assert_eq!(
        serve(c, &first, Some(10_000), NOON + 1).await,
        Settlement::Settled
    );
    // The same settle again counts nothing.
    assert_eq!(
        serve(c, &first, Some(90_000), NOON + 2).await,
        Settlement::Repeated
    );
    let second = granted(c, &alone, 10, NOON + 3).await;
    serve(c, &second, Some(20_000), NOON + 4).await;
    assert_eq!(
        activity(c, "a", NOON + 5).await,
        AccountActivity {
            last_used_at_ms: Some(NOON + 4),
            successes_today: 2,
            // 10 ms, then a fifth of the way to 20 ms.
            latency_ewma_us: Some(12_000),
            ..AccountActivity::default()
        }
    );

    // A settle that was not served (a released or cut call) is no success.
    let failed = granted(c, &alone, 10, NOON + 6).await;
    settle(c, &failed, 3, NOON + 7).await;
    // A served call with no measure counts, and leaves the average.
    let unmeasured = granted(c, &alone, 10, NOON + 8).await;
    serve(c, &unmeasured, None, NOON + 9).await;
    error(c, "a", ErrorClass::Timeout, NOON + 10).await;
    error(c, "a", ErrorClass::RateLimited, NOON + 11).await;
    assert_eq!(
        activity(c, "a", NOON + 12).await,
        AccountActivity {
            last_used_at_ms: Some(NOON + 9),
            last_error_at_ms: Some(NOON + 11),
            last_error: Some(ErrorClass::RateLimited),
            successes_today: 3,
            errors_today: 2,
            latency_ewma_us: Some(12_000),
        }
    );
    // A late settle (its lease expired) still names the account served.
    let late = granted(c, &alone, 10, NOON + 13).await;
    c.sweep(NOON + 13 + super::TTL).await.unwrap();
    assert_eq!(
        serve(c, &late, Some(2_000), NOON + 14 + super::TTL).await,
        Settlement::Late
    );
    let after = activity(c, "a", NOON + 15 + super::TTL).await;
    assert_eq!(after.successes_today, 4);
    assert_eq!(after.latency_ewma_us, Some(10_000));
    // Other accounts are untouched.
    assert_eq!(
        activity(c, "b", NOON + 16).await,
        AccountActivity::default()
    );
}

pub(crate) async fn activity_day_counts_reset_at_utc_midnight(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let alone = [limited("a", 10_000)];
    let grant = granted(c, &alone, 10, NOON).await;
    serve(c, &grant, Some(5_000), NOON + 1).await;
    error(c, "a", ErrorClass::ServerError, NOON + 2).await;

    let midnight = activity(c, "a", NEXT_MIDNIGHT).await;
    assert_eq!(
        midnight,
        AccountActivity {
            last_used_at_ms: Some(NOON + 1),
            last_error_at_ms: Some(NOON + 2),
            last_error: Some(ErrorClass::ServerError),
            successes_today: 0,
            errors_today: 0,
            latency_ewma_us: Some(5_000),
        }
    );
    error(c, "a", ErrorClass::AuthFailed, NEXT_MIDNIGHT + 1).await;
    let grant = granted(c, &alone, 10, NEXT_MIDNIGHT + 2).await;
    serve(c, &grant, Some(10_000), NEXT_MIDNIGHT + 3).await;
    let next_day = activity(c, "a", NEXT_MIDNIGHT + 4).await;
    assert_eq!((next_day.successes_today, next_day.errors_today), (1, 1));
    assert_eq!(next_day.last_error, Some(ErrorClass::AuthFailed));
    assert_eq!(next_day.latency_ewma_us, Some(6_000));
}

fn by_latency() -> Selection {
    Selection {
        strategy: Strategy::LowestLatency,
        ..Selection::default()
    }
}

/// Leases on `pool` by `lowest_latency` and settles the grant as served in
/// `latency_us`; returns the account chosen.
async fn measure(counters: &dyn QuotaCounters, pool: &[Candidate], latency_us: u64) -> String {
    let grant = granted_by(counters, pool, by_latency(), NOON).await;
    serve(counters, &grant, Some(latency_us), NOON).await;
    grant.account_id
}

pub(crate) async fn lowest_latency_strategy_measures_then_prefers_the_fastest(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    let pool = [
        limited("a", 1_000),
        limited("b", 3_000),
        limited("c", 2_000),
    ];
    // Unmeasured accounts first, by most remaining among them.
    assert_eq!(measure(c, &pool, 50_000).await, "b");
    assert_eq!(measure(c, &pool, 10_000).await, "c");
    assert_eq!(measure(c, &pool, 30_000).await, "a");
    // Then the lowest average: c, until its average passes a's.
    assert_eq!(measure(c, &pool, 90_000).await, "c");
    // c: 10 ms then 90 ms is 26 ms, still below a's 30.
    assert_eq!(measure(c, &pool, 90_000).await, "c");
    // c: 38.8 ms now; a (30 ms) is the fastest.
    assert_eq!(measure(c, &pool, 30_000).await, "a");

    // Equal averages go to the most remaining, then the earlier candidate.
    let even = [limited("d", 1_000), limited("e", 2_000)];
    for account in ["d", "e"] {
        let alone = [limited(account, 1_000)];
        let grant = granted(c, &alone, 1, NOON).await;
        serve(c, &grant, Some(7_000), NOON).await;
    }
    let chosen = granted_by(c, &even, by_latency(), NOON).await;
    assert_eq!(chosen.account_id, "e");
    let same = [limited("d", 5_000), limited("e", 5_000)];
    // Both measured alike; d has 4,990 left, e 4,989 (the lease just taken
    // holds one).
    assert_eq!(
        granted_by(c, &same, by_latency(), NOON).await.account_id,
        "d"
    );
}
