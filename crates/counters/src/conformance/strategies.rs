//! Conformance checks for the selection strategies and the count of leases
//! in flight that `least_inflight` reads.

use std::sync::Arc;

use super::{NOON, TTL, candidate, lease_id, limited, settle};
use crate::{
    Candidate, LeaseDecision, LeaseGranted, LeaseInput, QuotaCounters, Reservation, Selection,
    Strategy,
};

fn by(strategy: Strategy) -> Selection {
    Selection {
        strategy,
        ..Selection::default()
    }
}

fn weighted(draw: u64) -> Selection {
    Selection {
        strategy: Strategy::Weighted,
        draw,
        pool: String::new(),
    }
}

fn rotating(pool: &str) -> Selection {
    Selection {
        strategy: Strategy::RoundRobin,
        draw: 0,
        pool: pool.into(),
    }
}

pub(super) async fn granted_by(
    counters: &dyn QuotaCounters,
    candidates: &[Candidate],
    selection: Selection,
    now_ms: i64,
) -> LeaseGranted {
    let decision = counters
        .lease(LeaseInput {
            lease_id: lease_id(),
            candidates: candidates.to_vec(),
            reservation: Reservation::exact(1),
            now_ms,
            ttl_ms: TTL,
            key: None,
            selection,
            health_probe: false,
        })
        .await
        .unwrap();
    match decision {
        LeaseDecision::Granted(grant) => grant,
        LeaseDecision::Denied(denial) => panic!("expected a grant, got {denial:?}"),
    }
}

async fn chosen(
    counters: &dyn QuotaCounters,
    candidates: &[Candidate],
    selection: Selection,
) -> String {
    granted_by(counters, candidates, selection, NOON)
        .await
        .account_id
}

pub(crate) async fn priority_strategy_prefers_priority_over_remaining(
    counters: Arc<dyn QuotaCounters>,
) {
    let c = counters.as_ref();
    let pool = [
        candidate("rich", Some(10_000), 0, 9),
        candidate("first", Some(1_000), 5, 1),
        candidate("second", Some(2_000), 5, 1),
    ];
    let priority = || by(Strategy::Priority);
    // Ties on priority go to the most remaining.
    assert_eq!(chosen(c, &pool, priority()).await, "second");
    c.cooldown("second", 1_000, NOON).await.unwrap();
    assert_eq!(chosen(c, &pool, priority()).await, "first");
    // Then to the list order.
    let even = [
        candidate("one", Some(1_000), 1, 1),
        candidate("two", Some(1_000), 1, 9),
    ];
    assert_eq!(chosen(c, &even, priority()).await, "one");
}

pub(crate) async fn weighted_strategy_follows_the_draw(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [
        candidate("light", Some(1_000), 0, 1),
        candidate("zero", Some(1_000), 9, 0),
        candidate("heavy", Some(1_000), 0, 3),
    ];
    // Shares of 4: light holds 0, heavy 1 to 3; zero holds none.
    for (draw, expected) in [
        (0, "light"),
        (1, "heavy"),
        (3, "heavy"),
        (4, "light"),
        (6, "heavy"),
        // Only the low 53 bits count.
        ((1 << 60) + 4, "light"),
        (u64::MAX, "heavy"),
    ] {
        assert_eq!(chosen(c, &pool, weighted(draw)).await, expected, "{draw}");
    }
    // Only eligible candidates share.
    c.cooldown("heavy", 1_000, NOON).await.unwrap();
    for draw in 0..4 {
        assert_eq!(chosen(c, &pool, weighted(draw)).await, "light");
    }
    // All weights 0: each counts as 1.
    let zeros = [
        candidate("z1", Some(1_000), 0, 0),
        candidate("z2", Some(1_000), 0, 0),
    ];
    assert_eq!(chosen(c, &zeros, weighted(0)).await, "z1");
    assert_eq!(chosen(c, &zeros, weighted(1)).await, "z2");
    assert_eq!(chosen(c, &zeros, weighted(2)).await, "z1");
}

pub(crate) async fn round_robin_strategy_rotates_per_pool(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [
        limited("a", 1_000),
        candidate("b", Some(500), 9, 9),
        limited("c", 1_000),
    ];
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(chosen(c, &pool, rotating("team/model")).await);
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);
    // Another pool has its own cursor.
    assert_eq!(chosen(c, &pool, rotating("other/model")).await, "a");
    assert_eq!(chosen(c, &pool, rotating("other/model")).await, "b");

    // Only eligible candidates take turns (six grants so far: turn 6).
    c.cooldown("b", 1_000, NOON).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(chosen(c, &pool, rotating("team/model")).await);
    }
    assert_eq!(order, ["a", "c", "a", "c"]);

    // A denial does not move the cursor.
    let spent = [limited("small", 1)];
    let grant = granted_by(c, &spent, rotating("fresh"), NOON).await;
    settle(c, &grant, 1, NOON).await;
    let denial = c
        .lease(LeaseInput {
            lease_id: lease_id(),
            candidates: spent.to_vec(),
            reservation: Reservation::exact(1),
            now_ms: NOON,
            ttl_ms: TTL,
            key: None,
            selection: rotating("fresh"),
            health_probe: false,
        })
        .await
        .unwrap();
    assert!(matches!(denial, LeaseDecision::Denied(_)));
    let pair = [limited("x", 1_000), limited("y", 1_000)];
    // One grant made in "fresh": turn 1.
    assert_eq!(chosen(c, &pair, rotating("fresh")).await, "y");
}

pub(crate) async fn least_inflight_strategy_counts_open_leases(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000), limited("b", 2_000)];
    let least = || by(Strategy::LeastInflight);
    let in_flight = |account: &'static str, now_ms: i64| {
        let counters = Arc::clone(&counters);
        async move { counters.usage(account, now_ms).await.unwrap().in_flight }
    };

    // 0 and 0: most remaining; then the one with fewer open.
    let first = granted_by(c, &pool, least(), NOON).await;
    assert_eq!(first.account_id, "b");
    assert_eq!(chosen(c, &pool, least()).await, "a");
    let third = granted_by(c, &pool, least(), NOON).await;
    assert_eq!(third.account_id, "b");
    assert_eq!(in_flight("a", NOON).await, 1);
    assert_eq!(in_flight("b", NOON).await, 2);

    // Settling releases one.
    settle(c, &first, 1, NOON + 10).await;
    assert_eq!(in_flight("b", NOON + 10).await, 1);
    settle(c, &third, 1, NOON + 10).await;
    assert_eq!(in_flight("b", NOON + 10).await, 0);
    assert_eq!(chosen(c, &pool, least()).await, "b");
    // A late settle releases nothing more.
    settle(c, &third, 1, NOON + 20).await;
    assert_eq!(in_flight("b", NOON + 20).await, 1);

    // Expiry releases the rest, and never below zero.
    let after = NOON + TTL;
    assert_eq!(in_flight("a", after).await, 0);
    assert_eq!(in_flight("b", after).await, 0);
    assert_eq!(c.sweep(after).await.unwrap(), 0);
}
