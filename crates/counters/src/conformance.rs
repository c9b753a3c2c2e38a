//! The behaviour every [`QuotaCounters`] must show, as checks that take a
//! fresh store. `counters_conformance_tests!(fresh)` turns them into one test
//! each, where `fresh().await` returns `(guard, Arc<impl QuotaCounters>)`.
//! Time is driven by a [`ManualClock`], never the wall clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tollgate_core::clock::{Clock, MS_PER_DAY, ManualClock};

mod activity;
mod circuit;
mod completion;
mod key_report;
mod keys;
mod probes;
mod reconcile;
mod strategies;

pub(crate) use self::activity::{
    activity_day_counts_reset_at_utc_midnight,
    lowest_latency_strategy_measures_then_prefers_the_fastest,
    served_settles_and_errors_make_the_activity,
};
pub(crate) use self::circuit::{
    a_served_settle_closes_a_half_open_circuit,
    an_operator_reset_ends_cooldowns_and_closes_circuits,
    an_unreported_probe_frees_the_circuit_when_it_ends, circuit_opens_at_the_threshold,
    failed_probes_double_the_backoff_up_to_the_cap, half_open_circuit_admits_one_probe,
};
pub(crate) use self::completion::{
    a_client_cap_is_never_lowered, a_strict_account_reserves_the_worst_case_prompt,
    accounts_below_the_minimum_room_are_skipped, an_uncapped_lease_takes_the_room_left,
    choices_share_the_completion_room, the_key_room_bounds_an_uncapped_lease,
};
pub(crate) use self::key_report::{
    key_window_report_counts_down, key_window_report_follows_the_limits,
};
pub(crate) use self::keys::{
    key_daily_budget_resets_at_utc_midnight, key_denial_reserves_nothing,
    key_limits_combine_to_the_latest_retry,
    key_monthly_budget_counts_settled_spend_until_next_month,
    key_monthly_budget_rolls_over_from_december_to_january,
    key_monthly_spend_counts_late_and_unknown_settles, key_rpm_window_slides,
    key_tpm_counts_reservations_then_settles,
};
pub(crate) use self::probes::{
    a_claim_has_one_taker_per_hold, a_health_probe_passes_cooldowns_and_circuits,
};
pub(crate) use self::reconcile::{
    raise_key_spend_only_raises, raise_key_used_today_only_raises, raise_used_today_only_raises,
};
pub(crate) use self::strategies::{
    least_inflight_strategy_counts_open_leases, priority_strategy_prefers_priority_over_remaining,
    round_robin_strategy_rotates_per_pool, weighted_strategy_follows_the_draw,
};

use super::{
    Candidate, CountersError, DenialReason, IN_FLIGHT_RETRY_MS, LeaseDecision, LeaseDenied,
    LeaseGranted, LeaseInput, QuotaCounters, Reservation, Selection, SettleInput, Settlement,
};

/// Generates one `#[tokio::test]` per conformance check.
macro_rules! counters_conformance_tests {
    ($fresh:path) => {
        $crate::conformance::counters_conformance_tests!(@each $fresh:
            picks_the_account_with_most_remaining,
            ties_go_to_priority_then_weight_then_order,
            reservations_count_until_settled,
            daily_limit_resets_at_utc_midnight,
            a_counter_never_goes_back_to_an_earlier_day,
            expired_leases_release_their_reservation,
            renewed_leases_keep_their_reservation,
            sweep_releases_expired_leases,
            settle_replaces_the_reservation_up_and_down,
            late_or_unknown_settle_still_counts,
            cooldown_skips_the_account_until_it_ends,
            a_repeated_settle_charges_once,
            denial_names_the_soonest_candidate,
            impossible_requests_are_denied,
            invalid_input_is_rejected,
            concurrent_leases_never_pass_the_cap,
            key_rpm_window_slides,
            key_tpm_counts_reservations_then_settles,
            key_daily_budget_resets_at_utc_midnight,
            key_denial_reserves_nothing,
            key_limits_combine_to_the_latest_retry,
            key_monthly_budget_counts_settled_spend_until_next_month,
            key_monthly_spend_counts_late_and_unknown_settles,
            key_monthly_budget_rolls_over_from_december_to_january,
            key_window_report_counts_down,
            key_window_report_follows_the_limits,
            priority_strategy_prefers_priority_over_remaining,
            weighted_strategy_follows_the_draw,
            round_robin_strategy_rotates_per_pool,
            least_inflight_strategy_counts_open_leases,
            circuit_opens_at_the_threshold,
            half_open_circuit_admits_one_probe,
            failed_probes_double_the_backoff_up_to_the_cap,
            an_unreported_probe_frees_the_circuit_when_it_ends,
            a_served_settle_closes_a_half_open_circuit,
            an_operator_reset_ends_cooldowns_and_closes_circuits,
            raise_used_today_only_raises,
            raise_key_used_today_only_raises,
            raise_key_spend_only_raises,
            an_uncapped_lease_takes_the_room_left,
            accounts_below_the_minimum_room_are_skipped,
            a_client_cap_is_never_lowered,
            choices_share_the_completion_room,
            the_key_room_bounds_an_uncapped_lease,
            a_strict_account_reserves_the_worst_case_prompt,
            served_settles_and_errors_make_the_activity,
            activity_day_counts_reset_at_utc_midnight,
            lowest_latency_strategy_measures_then_prefers_the_fastest,
            a_claim_has_one_taker_per_hold,
            a_health_probe_passes_cooldowns_and_circuits,
        );
    };
    (@each $fresh:path: $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_guard, counters) = $fresh().await;
                $crate::conformance::$check(counters).await;
            }
        )*
    };
}
pub(crate) use counters_conformance_tests;

/// A UTC midnight (2024-10-04) and the noon after it.
const T0: i64 = 20_000 * MS_PER_DAY;
const NOON: i64 = T0 + MS_PER_DAY / 2;
const NEXT_MIDNIGHT: i64 = T0 + MS_PER_DAY;
const TTL: i64 = 60_000;

fn candidate(id: &str, daily_limit: Option<u64>, priority: i32, weight: u32) -> Candidate {
    Candidate {
        account_id: id.into(),
        daily_limit,
        priority,
        weight,
        strict: false,
    }
}

fn limited(id: &str, limit: u64) -> Candidate {
    candidate(id, Some(limit), 0, 1)
}

static LEASE_SEQ: AtomicU64 = AtomicU64::new(0);

fn lease_id() -> String {
    format!("lease-{}", LEASE_SEQ.fetch_add(1, Ordering::Relaxed))
}

async fn lease(
    counters: &dyn QuotaCounters,
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
            key: None,
            selection: Selection::default(),
            health_probe: false,
        })
        .await
        .unwrap()
}

async fn granted(
    counters: &dyn QuotaCounters,
    candidates: &[Candidate],
    tokens: u64,
    now_ms: i64,
) -> LeaseGranted {
    match lease(counters, candidates, tokens, now_ms).await {
        LeaseDecision::Granted(grant) => grant,
        LeaseDecision::Denied(denial) => panic!("expected a grant, got {denial:?}"),
    }
}

async fn denied(
    counters: &dyn QuotaCounters,
    candidates: &[Candidate],
    tokens: u64,
    now_ms: i64,
) -> LeaseDenied {
    match lease(counters, candidates, tokens, now_ms).await {
        LeaseDecision::Denied(denial) => without_time(denial, now_ms),
        LeaseDecision::Granted(grant) => panic!("expected a denial, got {grant:?}"),
    }
}

/// A denial made at `now_ms`, with its time set to 0 for comparing.
fn without_time(denial: LeaseDenied, now_ms: i64) -> LeaseDenied {
    assert_eq!(denial.decided_at_ms, now_ms, "{denial:?}");
    LeaseDenied {
        decided_at_ms: 0,
        ..denial
    }
}

/// The settle of `grant` with `actual` tokens, not marked served.
fn settle_input(grant: &LeaseGranted, actual: u64, now_ms: i64) -> SettleInput {
    SettleInput {
        lease_id: grant.lease_id.clone(),
        account_id: grant.account_id.clone(),
        key_id: None,
        actual_tokens: actual,
        cost_micro_usd: 0,
        served: false,
        latency_us: None,
        now_ms,
        remember_ms: 60_000,
    }
}

async fn settle(
    counters: &dyn QuotaCounters,
    grant: &LeaseGranted,
    actual: u64,
    now_ms: i64,
) -> Settlement {
    counters
        .settle(settle_input(grant, actual, now_ms))
        .await
        .unwrap()
}

async fn used_and_reserved(counters: &dyn QuotaCounters, account: &str, now_ms: i64) -> (u64, u64) {
    let usage = counters.usage(account, now_ms).await.unwrap();
    (usage.used_today, usage.reserved)
}

pub(crate) async fn picks_the_account_with_most_remaining(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [
        limited("a", 1_000),
        limited("b", 5_000),
        limited("c", 3_000),
    ];
    let first = granted(c, &pool, 100, NOON).await;
    assert_eq!(first.account_id, "b");
    assert_eq!(first.remaining_tokens, Some(4_900));
    assert_eq!(first.expires_at_ms, NOON + TTL);
    settle(c, &first, 4_500, NOON).await;
    // b has 500 left, c 3,000, a 1,000.
    assert_eq!(granted(c, &pool, 100, NOON).await.account_id, "c");
}

pub(crate) async fn ties_go_to_priority_then_weight_then_order(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let by_priority = [
        candidate("low", Some(1_000), 0, 9),
        candidate("high", Some(1_000), 5, 1),
    ];
    assert_eq!(granted(c, &by_priority, 1, NOON).await.account_id, "high");

    let by_weight = [
        candidate("w1", Some(1_000), 1, 1),
        candidate("w5", Some(1_000), 1, 5),
    ];
    assert_eq!(granted(c, &by_weight, 1, NOON).await.account_id, "w5");

    let by_order = [
        candidate("first", Some(1_000), 0, 1),
        candidate("second", Some(1_000), 0, 1),
    ];
    assert_eq!(granted(c, &by_order, 1, NOON).await.account_id, "first");

    // Remaining tokens beat priority; no limit beats any limit.
    let mixed = [
        candidate("rich", Some(10_000), 0, 1),
        candidate("preferred", Some(100), 9, 9),
    ];
    assert_eq!(granted(c, &mixed, 1, NOON).await.account_id, "rich");
    let unlimited = [
        candidate("big", Some(u64::MAX / 2), 9, 9),
        candidate("unlimited", None, 0, 1),
    ];
    let grant = granted(c, &unlimited, 1, NOON).await;
    assert_eq!(grant.account_id, "unlimited");
    assert_eq!(grant.remaining_tokens, None);
}

pub(crate) async fn reservations_count_until_settled(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let grant = granted(c, &pool, 400, NOON).await;
    assert_eq!(grant.remaining_tokens, Some(600));
    assert_eq!(used_and_reserved(c, "a", NOON).await, (0, 400));

    let denial = denied(c, &pool, 700, NOON).await;
    assert_eq!(denial.reason, DenialReason::InFlight);
    assert_eq!(denial.retry_at_ms, NOON + IN_FLIGHT_RETRY_MS);

    assert_eq!(settle(c, &grant, 250, NOON).await, Settlement::Settled);
    assert_eq!(used_and_reserved(c, "a", NOON).await, (250, 0));
    assert_eq!(
        granted(c, &pool, 700, NOON).await.remaining_tokens,
        Some(50)
    );
}

pub(crate) async fn daily_limit_resets_at_utc_midnight(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let clock = ManualClock::at(NOON);
    let pool = [limited("a", 1_000)];
    let grant = granted(c, &pool, 900, clock.now_ms()).await;
    settle(c, &grant, 900, clock.now_ms()).await;

    let denial = denied(c, &pool, 200, clock.now_ms()).await;
    assert_eq!(denial.reason, DenialReason::DailyLimit);
    assert_eq!(denial.retry_at_ms, NEXT_MIDNIGHT);
    // What still fits today is still admitted.
    let small = granted(c, &pool, 100, clock.now_ms()).await;
    settle(c, &small, 100, clock.now_ms()).await;

    clock.set(NEXT_MIDNIGHT - 1);
    assert_eq!(used_and_reserved(c, "a", clock.now_ms()).await, (1_000, 0));
    assert!(matches!(
        lease(c, &pool, 1, clock.now_ms()).await,
        LeaseDecision::Denied(_)
    ));

    clock.set(NEXT_MIDNIGHT);
    assert_eq!(used_and_reserved(c, "a", clock.now_ms()).await, (0, 0));
    let fresh = granted(c, &pool, 1_000, clock.now_ms()).await;
    assert_eq!(fresh.remaining_tokens, Some(0));
}

/// Callers whose clocks differ around midnight agree: once one has charged
/// the new day, a caller still before midnight reads and charges that day.
pub(crate) async fn a_counter_never_goes_back_to_an_earlier_day(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let (behind, ahead) = (NEXT_MIDNIGHT - 10, NEXT_MIDNIGHT + 10);
    let today = granted(c, &pool, 300, NOON).await;
    settle(c, &today, 300, NOON).await;
    let tomorrow = granted(c, &pool, 100, ahead).await;
    settle(c, &tomorrow, 100, ahead).await;

    assert_eq!(used_and_reserved(c, "a", behind).await, (100, 0));
    let late = granted(c, &pool, 50, behind).await;
    assert_eq!(late.remaining_tokens, Some(850));
    settle(c, &late, 50, behind).await;
    assert_eq!(used_and_reserved(c, "a", ahead).await, (150, 0));
}

pub(crate) async fn expired_leases_release_their_reservation(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let clock = ManualClock::at(NOON);
    let pool = [limited("a", 1_000)];
    granted(c, &pool, 800, clock.now_ms()).await;

    clock.advance(TTL - 1);
    assert_eq!(
        denied(c, &pool, 300, clock.now_ms()).await.reason,
        DenialReason::InFlight
    );

    clock.advance(1);
    granted(c, &pool, 300, clock.now_ms()).await;
    assert_eq!(used_and_reserved(c, "a", clock.now_ms()).await, (0, 300));
}

pub(crate) async fn renewed_leases_keep_their_reservation(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let lease = granted(c, &pool, 800, NOON).await;
    assert_eq!(lease.expires_at_ms, NOON + TTL);

    // Renewed before it expires: still held after its first TTL.
    let at = NOON + TTL / 2;
    assert!(c.renew(&lease.lease_id, 5 * TTL / 2, at).await.unwrap());
    // A shorter renewal does not shorten it.
    assert!(c.renew(&lease.lease_id, TTL / 2, at).await.unwrap());
    assert_eq!(c.sweep(NOON + 2 * TTL).await.unwrap(), 0);
    assert_eq!(used_and_reserved(c, "a", NOON + 2 * TTL).await, (0, 800));

    // It expires at the renewed time, and cannot be renewed after that.
    assert_eq!(used_and_reserved(c, "a", NOON + 3 * TTL).await, (0, 0));
    assert!(
        !c.renew(&lease.lease_id, 2 * TTL, NOON + 3 * TTL)
            .await
            .unwrap()
    );
    assert_eq!(used_and_reserved(c, "a", NOON + 3 * TTL).await, (0, 0));
    assert!(!c.renew("never-granted", TTL, NOON).await.unwrap());

    // A settled lease is not open any more either.
    let settled = granted(c, &pool, 100, NOON + 4 * TTL).await;
    settle(c, &settled, 50, NOON + 4 * TTL + 1).await;
    assert!(
        !c.renew(&settled.lease_id, 2 * TTL, NOON + 4 * TTL + 2)
            .await
            .unwrap()
    );
    assert_eq!(used_and_reserved(c, "a", NOON + 4 * TTL + 2).await, (50, 0));
}

pub(crate) async fn sweep_releases_expired_leases(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000), limited("b", 1_000)];
    granted(c, &pool, 10, NOON).await;
    granted(c, &pool, 10, NOON).await;
    granted(c, &pool, 10, NOON + 5).await;
    assert_eq!(c.sweep(NOON + TTL - 1).await.unwrap(), 0);
    assert_eq!(c.sweep(NOON + TTL).await.unwrap(), 2);
    assert_eq!(c.sweep(NOON + TTL).await.unwrap(), 0);
    let reserved = used_and_reserved(c, "a", NOON + TTL).await.1
        + used_and_reserved(c, "b", NOON + TTL).await.1;
    assert_eq!(reserved, 10);
    assert_eq!(c.sweep(NOON + TTL + 5).await.unwrap(), 1);
}

pub(crate) async fn settle_replaces_the_reservation_up_and_down(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let up = granted(c, &pool, 100, NOON).await;
    assert_eq!(settle(c, &up, 250, NOON + 10).await, Settlement::Settled);
    assert_eq!(used_and_reserved(c, "a", NOON + 10).await, (250, 0));

    let down = granted(c, &pool, 300, NOON + 20).await;
    assert_eq!(settle(c, &down, 20, NOON + 30).await, Settlement::Settled);
    assert_eq!(used_and_reserved(c, "a", NOON + 30).await, (270, 0));

    // A settle past the limit is recorded in full (the upstream did the work).
    let over = granted(c, &pool, 700, NOON + 40).await;
    settle(c, &over, 900, NOON + 50).await;
    assert_eq!(used_and_reserved(c, "a", NOON + 50).await, (1_170, 0));
    assert_eq!(
        denied(c, &pool, 1, NOON + 60).await.reason,
        DenialReason::DailyLimit
    );
}

pub(crate) async fn late_or_unknown_settle_still_counts(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let grant = granted(c, &pool, 100, NOON).await;
    let late = NOON + TTL + 1;
    assert_eq!(settle(c, &grant, 40, late).await, Settlement::Late);
    assert_eq!(used_and_reserved(c, "a", late).await, (40, 0));

    let unknown = c
        .settle(SettleInput {
            lease_id: "never-leased".into(),
            account_id: "b".into(),
            key_id: None,
            actual_tokens: 55,
            cost_micro_usd: 0,
            served: false,
            latency_us: None,
            now_ms: late,
            remember_ms: 60_000,
        })
        .await
        .unwrap();
    assert_eq!(unknown, Settlement::Late);
    assert_eq!(used_and_reserved(c, "b", late).await, (55, 0));
}

pub(crate) async fn a_repeated_settle_charges_once(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let open = granted(c, &pool, 100, NOON).await;
    assert_eq!(settle(c, &open, 40, NOON).await, Settlement::Settled);
    // Its answer was lost, so the caller settles again: nothing more.
    assert_eq!(settle(c, &open, 40, NOON + 10).await, Settlement::Repeated);
    // A late settle is remembered the same way.
    let late = LeaseGranted {
        lease_id: "expired-long-ago".into(),
        ..open.clone()
    };
    assert_eq!(settle(c, &late, 5, NOON).await, Settlement::Late);
    assert_eq!(settle(c, &late, 5, NOON + 10).await, Settlement::Repeated);
    assert_eq!(used_and_reserved(c, "a", NOON + 10).await, (45, 0));
    // Remembered for the time asked (a minute here), then forgotten: a
    // settle after that counts as late again.
    assert_eq!(c.sweep(NOON + 60_001).await.unwrap(), 0);
    assert_eq!(settle(c, &late, 5, NOON + 60_002).await, Settlement::Late);
    assert_eq!(used_and_reserved(c, "a", NOON + 60_002).await, (50, 0));
}

pub(crate) async fn cooldown_skips_the_account_until_it_ends(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let clock = ManualClock::at(NOON);
    let pool = [
        candidate("a", Some(1_000), 5, 1),
        candidate("b", Some(1_000), 0, 1),
    ];
    assert_eq!(granted(c, &pool, 1, clock.now_ms()).await.account_id, "a");

    c.cooldown("a", 30_000, clock.now_ms()).await.unwrap();
    // An earlier end never shortens a cooldown.
    c.cooldown("a", 1_000, clock.now_ms()).await.unwrap();
    let usage = c.usage("a", clock.now_ms()).await.unwrap();
    assert_eq!(usage.cooling_until_ms, Some(NOON + 30_000));
    for _ in 0..3 {
        assert_eq!(granted(c, &pool, 1, clock.now_ms()).await.account_id, "b");
    }

    clock.advance(30_000);
    assert_eq!(
        c.usage("a", clock.now_ms()).await.unwrap().cooling_until_ms,
        None
    );
    assert_eq!(granted(c, &pool, 1, clock.now_ms()).await.account_id, "a");
}

pub(crate) async fn denial_names_the_soonest_candidate(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let spent = limited("spent", 100);
    let grant = granted(c, std::slice::from_ref(&spent), 100, NOON).await;
    settle(c, &grant, 100, NOON).await;

    c.cooldown("cooling", 60_000, NOON).await.unwrap();
    let pool = [spent.clone(), limited("cooling", 1_000)];
    let denial = denied(c, &pool, 10, NOON).await;
    assert_eq!(
        denial,
        LeaseDenied {
            decided_at_ms: 0,
            retry_at_ms: NOON + 60_000,
            reason: DenialReason::CoolingDown,
            key_window: None,
        }
    );

    // A cooldown past midnight loses to the daily reset of another account.
    c.cooldown("long", 5_000, NEXT_MIDNIGHT).await.unwrap();
    let pool = [limited("long", 1_000), spent.clone()];
    let denial = denied(c, &pool, 10, NOON).await;
    assert_eq!(
        denial,
        LeaseDenied {
            decided_at_ms: 0,
            retry_at_ms: NEXT_MIDNIGHT,
            reason: DenialReason::DailyLimit,
            key_window: None,
        }
    );

    // Spent for today and cooling until later today: midnight, not the
    // cooldown end.
    c.cooldown("spent", 60_000, NOON).await.unwrap();
    let denial = denied(c, std::slice::from_ref(&spent), 10, NOON).await;
    assert_eq!(denial.retry_at_ms, NEXT_MIDNIGHT);
    assert_eq!(denial.reason, DenialReason::DailyLimit);
}

pub(crate) async fn impossible_requests_are_denied(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let denial = denied(c, &[limited("small", 100)], 101, NOON).await;
    assert_eq!(denial.reason, DenialReason::DailyLimit);
    assert_eq!(denial.retry_at_ms, NEXT_MIDNIGHT);

    let denial = denied(c, &[], 1, NOON).await;
    assert_eq!(denial.reason, DenialReason::NoCandidates);
    assert_eq!(c.usage("small", NOON).await.unwrap().reserved, 0);
}

pub(crate) async fn invalid_input_is_rejected(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let input = LeaseInput {
        lease_id: "dup".into(),
        candidates: vec![limited("a", 1_000)],
        reservation: Reservation::exact(10),
        now_ms: NOON,
        ttl_ms: TTL,
        key: None,
        selection: Selection::default(),
        health_probe: false,
    };
    c.lease(input.clone()).await.unwrap();
    assert!(matches!(
        c.lease(input.clone()).await,
        Err(CountersError::DuplicateLease(_))
    ));
    assert!(matches!(
        c.lease(LeaseInput {
            lease_id: "zero-ttl".into(),
            ttl_ms: 0,
            key: None,
            ..input
        })
        .await,
        Err(CountersError::InvalidInput(_))
    ));
    assert_eq!(used_and_reserved(c, "a", NOON).await, (0, 10));
}

pub(crate) async fn concurrent_leases_never_pass_the_cap(counters: Arc<dyn QuotaCounters>) {
    const CAP: u64 = 1_000;
    const TOKENS: u64 = 7;
    let pool: Arc<[Candidate]> = Arc::from(vec![
        limited("x", CAP),
        limited("y", CAP),
        limited("z", CAP),
    ]);
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let counters = Arc::clone(&counters);
        let pool = Arc::clone(&pool);
        tasks.push(tokio::spawn(async move {
            let mut admitted = Vec::new();
            loop {
                match lease(counters.as_ref(), &pool, TOKENS, NOON).await {
                    LeaseDecision::Granted(grant) => {
                        // Settle every other lease with its exact size; keep
                        // the rest open.
                        if (task + admitted.len() as u64).is_multiple_of(2) {
                            settle(counters.as_ref(), &grant, TOKENS, NOON).await;
                        }
                        admitted.push(grant.account_id);
                    }
                    LeaseDecision::Denied(_) => return admitted,
                }
            }
        }));
    }
    let mut per_account = std::collections::HashMap::<String, u64>::new();
    for task in tasks {
        for account in task.await.unwrap() {
            *per_account.entry(account).or_default() += TOKENS;
        }
    }
    for account in ["x", "y", "z"] {
        let admitted = per_account.get(account).copied().unwrap_or(0);
        assert!(admitted <= CAP, "{account} admitted {admitted} > {CAP}");
        // Every admission fits whole: the cap is filled to the last lease.
        assert_eq!(admitted, CAP / TOKENS * TOKENS, "{account}");
        let (used, reserved) = used_and_reserved(counters.as_ref(), account, NOON).await;
        assert_eq!(used + reserved, admitted);
    }
}
