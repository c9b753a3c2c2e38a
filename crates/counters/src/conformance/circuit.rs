//! Conformance checks for the circuit breaker: closed, open for a backoff
//! that doubles while probes fail, half-open with one probe at a time, and
//! closed again by a success.

use std::sync::Arc;

use tollgate_core::clock::{Clock, ManualClock};

use super::{NOON, TTL, denied, granted, lease, limited, settle};
use crate::{
    AccountUsage, CircuitPolicy, CountersError, DenialReason, IN_FLIGHT_RETRY_MS, LeaseDecision,
    QuotaCounters, SettleInput,
};

const BASE: i64 = 5_000;
const CAP: i64 = 20_000;
const POLICY: CircuitPolicy = CircuitPolicy {
    failure_threshold: 3,
    base_backoff_ms: BASE,
    max_backoff_ms: CAP,
};

async fn fail(counters: &dyn QuotaCounters, account: &str, now_ms: i64) -> Option<i64> {
    counters
        .record_failure(account, POLICY, now_ms)
        .await
        .unwrap()
}

async fn usage(counters: &dyn QuotaCounters, account: &str, now_ms: i64) -> AccountUsage {
    counters.usage(account, now_ms).await.unwrap()
}

/// Fails the account until its circuit opens at `now_ms`.
async fn trip(counters: &dyn QuotaCounters, account: &str, now_ms: i64) -> i64 {
    assert_eq!(fail(counters, account, now_ms).await, None);
    assert_eq!(fail(counters, account, now_ms).await, None);
    fail(counters, account, now_ms)
        .await
        .expect("the third failure opens the circuit")
}

pub(crate) async fn circuit_opens_at_the_threshold(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    assert_eq!(fail(c, "a", NOON).await, None);
    assert_eq!(fail(c, "a", NOON).await, None);
    assert_eq!(usage(c, "a", NOON).await.consecutive_failures, 2);
    // A success restarts the count.
    assert!(!c.record_success("a", NOON).await.unwrap());
    assert_eq!(usage(c, "a", NOON).await.consecutive_failures, 0);

    assert_eq!(trip(c, "a", NOON).await, NOON + BASE);
    let open = usage(c, "a", NOON).await;
    assert_eq!(open.circuit_open_until_ms, Some(NOON + BASE));
    assert!(!open.half_open);
    assert_eq!(open.consecutive_failures, 0);

    let alone = [limited("a", 1_000)];
    let denial = denied(c, &alone, 1, NOON).await;
    assert_eq!(denial.reason, DenialReason::CircuitOpen);
    assert_eq!(denial.reason.as_str(), "circuit_open");
    assert_eq!(denial.retry_at_ms, NOON + BASE);
    let pool = [limited("a", 5_000), limited("b", 1_000)];
    assert_eq!(granted(c, &pool, 1, NOON).await.account_id, "b");

    // While open, reports (of requests made before it opened) change nothing.
    assert_eq!(fail(c, "a", NOON + 1).await, None);
    assert!(!c.record_success("a", NOON + 1).await.unwrap());
    assert_eq!(
        usage(c, "a", NOON + 1).await.circuit_open_until_ms,
        Some(NOON + BASE)
    );

    // With a cooldown too, the later of the two is the retry.
    c.cooldown("a", 1_000, NOON).await.unwrap();
    assert_eq!(
        denied(c, &alone, 1, NOON).await.reason,
        DenialReason::CircuitOpen
    );
    c.cooldown("a", 30_000, NOON).await.unwrap();
    let denial = denied(c, &alone, 1, NOON).await;
    assert_eq!(denial.reason, DenialReason::CoolingDown);
    assert_eq!(denial.retry_at_ms, NOON + 30_000);

    let bad = CircuitPolicy {
        base_backoff_ms: 0,
        ..POLICY
    };
    assert!(matches!(
        c.record_failure("a", bad, NOON).await,
        Err(CountersError::InvalidInput(_))
    ));
}

pub(crate) async fn half_open_circuit_admits_one_probe(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let clock = ManualClock::at(NOON);
    let alone = [limited("a", 1_000)];
    let pool = [limited("a", 5_000), limited("b", 1_000)];
    let open_until = trip(c, "a", clock.now_ms()).await;

    clock.set(open_until);
    let half_open = usage(c, "a", clock.now_ms()).await;
    assert!(half_open.half_open);
    assert_eq!(half_open.circuit_open_until_ms, None);
    let probe = granted(c, &alone, 1, clock.now_ms()).await;
    assert_eq!(probe.account_id, "a");
    // One probe at a time: the others see it as in flight.
    let denial = denied(c, &alone, 1, clock.now_ms()).await;
    assert_eq!(denial.reason, DenialReason::CircuitOpen);
    assert_eq!(denial.retry_at_ms, clock.now_ms() + IN_FLIGHT_RETRY_MS);
    assert_eq!(granted(c, &pool, 1, clock.now_ms()).await.account_id, "b");

    // The probe served: closed, and every lease may use it again.
    clock.advance(100);
    assert!(c.record_success("a", clock.now_ms()).await.unwrap());
    let closed = usage(c, "a", clock.now_ms()).await;
    assert!(!closed.half_open);
    assert_eq!(closed.circuit_open_until_ms, None);
    settle(c, &probe, 10, clock.now_ms()).await;
    for _ in 0..3 {
        assert_eq!(granted(c, &pool, 1, clock.now_ms()).await.account_id, "a");
    }
    // And the count starts over.
    assert_eq!(fail(c, "a", clock.now_ms()).await, None);
    assert_eq!(fail(c, "a", clock.now_ms()).await, None);
}

pub(crate) async fn failed_probes_double_the_backoff_up_to_the_cap(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    let clock = ManualClock::at(NOON);
    let alone = [limited("a", 1_000)];
    let mut open_until = trip(c, "a", clock.now_ms()).await;
    let mut backoffs = Vec::new();
    for _ in 0..4 {
        clock.set(open_until);
        let probe = granted(c, &alone, 1, clock.now_ms()).await;
        let reopened = fail(c, "a", clock.now_ms())
            .await
            .expect("a failed probe opens the circuit again");
        backoffs.push(reopened - clock.now_ms());
        settle(c, &probe, 0, clock.now_ms()).await;
        assert_eq!(
            denied(c, &alone, 1, clock.now_ms()).await.retry_at_ms,
            reopened
        );
        open_until = reopened;
    }
    assert_eq!(backoffs, [2 * BASE, 4 * BASE, CAP, CAP]);

    // A success closes it and forgets the backoff.
    clock.set(open_until);
    assert!(c.record_success("a", clock.now_ms()).await.unwrap());
    assert_eq!(trip(c, "a", clock.now_ms()).await, clock.now_ms() + BASE);
}

pub(crate) async fn an_unreported_probe_frees_the_circuit_when_it_ends(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    let clock = ManualClock::at(NOON);
    let alone = [limited("a", 1_000)];
    clock.set(trip(c, "a", clock.now_ms()).await);

    // Expired without a report: the next lease probes.
    granted(c, &alone, 1, clock.now_ms()).await;
    clock.advance(TTL - 1);
    assert!(matches!(
        lease(c, &alone, 1, clock.now_ms()).await,
        LeaseDecision::Denied(_)
    ));
    clock.advance(1);
    let second = granted(c, &alone, 1, clock.now_ms()).await;
    assert_eq!(
        denied(c, &alone, 1, clock.now_ms()).await.reason,
        DenialReason::CircuitOpen
    );

    // Settled without a report: the same.
    settle(c, &second, 0, clock.now_ms()).await;
    granted(c, &alone, 1, clock.now_ms()).await;
    assert!(usage(c, "a", clock.now_ms()).await.half_open);
}

pub(crate) async fn a_served_settle_closes_a_half_open_circuit(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let alone = [limited("a", 1_000)];
    let open_until = trip(c, "a", NOON).await;
    let probe = granted(c, &alone, 10, open_until).await;
    // A settle of a failed call charges the tokens and leaves it half-open.
    let settle_probe = |grant: &crate::LeaseGranted, served: bool, now_ms: i64| {
        c.settle(SettleInput {
            lease_id: grant.lease_id.clone(),
            account_id: grant.account_id.clone(),
            key_id: None,
            actual_tokens: 7,
            cost_micro_usd: 0,
            served,
            latency_us: None,
            now_ms,
            remember_ms: 60_000,
        })
    };
    settle_probe(&probe, false, open_until + 1).await.unwrap();
    assert!(usage(c, "a", open_until + 1).await.half_open);
    let probe = granted(c, &alone, 10, open_until + 2).await;
    // A served one closes it in the same step.
    settle_probe(&probe, true, open_until + 3).await.unwrap();
    let closed = usage(c, "a", open_until + 3).await;
    assert!(!closed.half_open);
    assert_eq!(closed.consecutive_failures, 0);
    assert_eq!(closed.used_today, 14);
    for _ in 0..2 {
        assert_eq!(granted(c, &alone, 1, open_until + 4).await.account_id, "a");
    }
    // A served settle while the circuit is open leaves it open.
    let open_again = trip(c, "a", open_until + 5).await;
    let late = granted(c, &[limited("b", 1_000)], 1, open_until + 6).await;
    c.settle(SettleInput {
        lease_id: late.lease_id.clone(),
        account_id: "a".into(),
        key_id: None,
        actual_tokens: 1,
        cost_micro_usd: 0,
        served: true,
        latency_us: None,
        now_ms: open_until + 7,
        remember_ms: 60_000,
    })
    .await
    .unwrap();
    assert_eq!(
        usage(c, "a", open_until + 7).await.circuit_open_until_ms,
        Some(open_again)
    );
}

/// An operator's reset: the cooldown ends and the circuit closes, each on
/// its own, and the account serves again at once.
pub(crate) async fn an_operator_reset_ends_cooldowns_and_closes_circuits(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    let alone = [limited("a", 1_000)];
    trip(c, "a", NOON).await;
    c.cooldown("a", 60_000, NOON).await.unwrap();
    assert_eq!(
        denied(c, &alone, 1, NOON).await.reason,
        DenialReason::CoolingDown
    );
    c.reset_health("a", true, false).await.unwrap();
    assert_eq!(
        denied(c, &alone, 1, NOON).await.reason,
        DenialReason::CircuitOpen
    );
    c.reset_health("a", false, true).await.unwrap();
    let after = usage(c, "a", NOON).await;
    assert_eq!(after.cooling_until_ms, None);
    assert_eq!(after.circuit_open_until_ms, None);
    assert!(!after.half_open);
    assert_eq!(after.consecutive_failures, 0);
    granted(c, &alone, 1, NOON).await;
    // An account never seen is fine to reset.
    c.reset_health("never-seen", true, true).await.unwrap();
}
