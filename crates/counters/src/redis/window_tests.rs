//! A key whose one-minute window holds thousands of requests: the lease
//! script reads only what leaves the window and a few sorted-set positions,
//! and must still decide and report exactly as the in-process store does.

use tollgate_core::clock::MS_PER_DAY;

use super::tests::fresh;
use crate::{
    Candidate, KeyLimits, LeaseDecision, LeaseInput, MemoryCounters, QuotaCounters, Reservation,
    Selection, SettleInput,
};

const NOON: i64 = 20_000 * MS_PER_DAY + MS_PER_DAY / 2;
const ENTRIES: i64 = 5_000;
/// Requests of the window are this far apart: all 5,000 within 50 s.
const STEP_MS: i64 = 10;

fn limits() -> KeyLimits {
    KeyLimits {
        key_id: "hot".into(),
        rpm: Some(5_001),
        tpm: Some(2_500_000),
        daily_token_budget: None,
        monthly_budget_micro_usd: None,
    }
}

fn lease(lease_id: String, tokens: u64, now_ms: i64) -> LeaseInput {
    LeaseInput {
        lease_id,
        candidates: vec![Candidate {
            account_id: "a".into(),
            daily_limit: None,
            priority: 0,
            weight: 1,
            strict: false,
        }],
        reservation: Reservation::exact(tokens),
        now_ms,
        ttl_ms: 10 * 60_000,
        key: Some(limits()),
        selection: Selection::default(),
        health_probe: false,
    }
}

/// Leases on both stores and checks they decide and report the same.
async fn both_lease(
    redis: &dyn QuotaCounters,
    memory: &dyn QuotaCounters,
    input: LeaseInput,
) -> LeaseDecision {
    let expected = memory.lease(input.clone()).await.unwrap();
    let got = redis.lease(input).await.unwrap();
    assert_eq!(got, expected);
    got
}

async fn both_settle(
    redis: &dyn QuotaCounters,
    memory: &dyn QuotaCounters,
    lease_id: String,
    actual_tokens: u64,
    now_ms: i64,
) {
    let input = SettleInput {
        lease_id,
        account_id: "a".into(),
        key_id: Some("hot".into()),
        actual_tokens,
        cost_micro_usd: 0,
        served: false,
        latency_us: None,
        now_ms,
        remember_ms: 60_000,
    };
    let expected = memory.settle(input.clone()).await.unwrap();
    assert_eq!(redis.settle(input).await.unwrap(), expected);
}

fn tokens_left(decision: &LeaseDecision) -> u64 {
    let report = match decision {
        LeaseDecision::Granted(grant) => grant.key_window,
        LeaseDecision::Denied(denial) => denial.key_window,
    };
    report.and_then(|report| report.remaining_tokens).unwrap()
}

// Each lease below costs Redis a handful of O(log n) commands whatever the
// window's size. Loosely, from `quota_bench` (docs/benchmarks.md): with
// 6,000 requests per key's window a lease and its settle take about 100 µs
// of script time together, where reading the whole window took 760 µs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_thousands_decides_and_reports_as_in_memory() {
    let (_keys, redis) = fresh().await;
    let memory = MemoryCounters::new();
    let (redis, memory): (&dyn QuotaCounters, &dyn QuotaCounters) = (redis.as_ref(), &memory);

    // Requests of 0 to 800 tokens; every third settles at another count,
    // some at 0 (they then hold no tokens).
    let mut last = None;
    for i in 0..ENTRIES {
        let now = NOON + i * STEP_MS;
        let id = format!("w{i}");
        let reserved = u64::try_from(i % 5).unwrap() * 200;
        let granted = both_lease(redis, memory, lease(id.clone(), reserved, now)).await;
        assert!(matches!(granted, LeaseDecision::Granted(_)), "{granted:?}");
        if i % 3 == 0 {
            let actual = u64::try_from(i % 4).unwrap() * 150;
            both_settle(redis, memory, id, actual, now).await;
        }
        last = Some(granted);
    }
    let end = NOON + ENTRIES * STEP_MS;
    let left = tokens_left(&last.unwrap());

    // TPM refusals whose retry time lies ever deeper in the window.
    for excess in [1, 10_000, 600_000] {
        let refused = both_lease(
            redis,
            memory,
            lease(format!("t{excess}"), left + excess, end),
        )
        .await;
        assert!(matches!(refused, LeaseDecision::Denied(_)), "{refused:?}");
    }

    // The 5,001st request fits; the next waits for the oldest to leave.
    both_lease(redis, memory, lease("fits".into(), 1, end)).await;
    let refused = both_lease(redis, memory, lease("rpm".into(), 1, end)).await;
    assert!(matches!(refused, LeaseDecision::Denied(_)), "{refused:?}");

    // Half the window leaves at once, then settles adjust what stays.
    let later = NOON + 35_000 + 60_000;
    both_lease(redis, memory, lease("half".into(), 300, later)).await;
    for i in [3_600, 4_200, 4_999] {
        both_settle(redis, memory, format!("w{i}"), 0, later).await;
    }
    both_settle(redis, memory, "fits".into(), 900, later).await;
    both_lease(redis, memory, lease("after".into(), 2, later + 1)).await;

    // All of it leaves: the window starts empty again.
    let empty = later + 2 * 60_000;
    both_lease(redis, memory, lease("fresh".into(), 5, empty)).await;
}
