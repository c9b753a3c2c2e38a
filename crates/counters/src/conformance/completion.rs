//! Conformance checks for the completion room a lease reserves: a client's
//! cap whole or not at all, an uncapped request lowered to the room the
//! account and the key have left, and accounts below the minimum skipped.

use std::sync::Arc;

use super::keys::key;
use super::{NEXT_MIDNIGHT, NOON, TTL, candidate, lease_id, limited, settle, used_and_reserved};
use crate::{
    Candidate, DenialReason, KeyLimits, LeaseDecision, LeaseDenied, LeaseGranted, LeaseInput,
    QuotaCounters, Reservation, Selection, Strategy,
};

const MAX_OUTPUT: u64 = 4_096;
const MIN_OUTPUT: u64 = 256;

fn uncapped(prompt: u64) -> Reservation {
    Reservation::for_request(prompt, None, 1, MAX_OUTPUT, MIN_OUTPUT)
}

async fn ask(
    counters: &dyn QuotaCounters,
    candidates: &[Candidate],
    reservation: Reservation,
    key: Option<&KeyLimits>,
    strategy: Strategy,
) -> LeaseDecision {
    counters
        .lease(LeaseInput {
            lease_id: lease_id(),
            candidates: candidates.to_vec(),
            reservation,
            now_ms: NOON,
            ttl_ms: TTL,
            key: key.cloned(),
            selection: Selection {
                strategy,
                ..Selection::default()
            },
            health_probe: false,
        })
        .await
        .unwrap()
}

fn grant(decision: LeaseDecision) -> LeaseGranted {
    match decision {
        LeaseDecision::Granted(grant) => grant,
        LeaseDecision::Denied(denial) => panic!("expected a grant, got {denial:?}"),
    }
}

fn denial(decision: LeaseDecision) -> LeaseDenied {
    match decision {
        LeaseDecision::Denied(denial) => denial,
        LeaseDecision::Granted(grant) => panic!("expected a denial, got {grant:?}"),
    }
}

pub(crate) async fn an_uncapped_lease_takes_the_room_left(counters: Arc<dyn QuotaCounters>) {
    let small = [limited("small", 1_000)];
    let first = grant(ask(&*counters, &small, uncapped(100), None, Strategy::default()).await);
    assert_eq!(first.reserved_tokens, 1_000);
    assert_eq!(first.completion_cap, Some(900));
    assert_eq!(first.remaining_tokens, Some(0));
    // Nothing left until the first settles.
    let refused = denial(ask(&*counters, &small, uncapped(100), None, Strategy::default()).await);
    assert_eq!(refused.reason, DenialReason::InFlight);
    settle(&*counters, &first, 150, NOON).await;
    let second = grant(ask(&*counters, &small, uncapped(100), None, Strategy::default()).await);
    assert_eq!(second.completion_cap, Some(750));
    assert_eq!(second.reserved_tokens, 850);
    assert_eq!(
        used_and_reserved(&*counters, "small", NOON).await,
        (150, 850)
    );
    // An unlimited account gets the whole maximum.
    let unlimited = [candidate("unlimited", None, 0, 1)];
    let whole = grant(
        ask(
            &*counters,
            &unlimited,
            uncapped(100),
            None,
            Strategy::default(),
        )
        .await,
    );
    assert_eq!(whole.completion_cap, Some(MAX_OUTPUT));
    assert_eq!(whole.reserved_tokens, 100 + MAX_OUTPUT);
}

pub(crate) async fn accounts_below_the_minimum_room_are_skipped(counters: Arc<dyn QuotaCounters>) {
    // The preferred account has room for the prompt but not for a useful
    // answer: the other one serves.
    let pool = [
        candidate("nearly-spent", Some(290), 10, 1),
        candidate("roomy", Some(5_000), 0, 1),
    ];
    let served = grant(ask(&*counters, &pool, uncapped(40), None, Strategy::Priority).await);
    assert_eq!(served.account_id, "roomy");
    assert_eq!(served.completion_cap, Some(MAX_OUTPUT));
    // With room for exactly the minimum, it serves.
    let pool = [candidate("just-enough", Some(296), 10, 1)];
    let served = grant(ask(&*counters, &pool, uncapped(40), None, Strategy::Priority).await);
    assert_eq!(served.completion_cap, Some(MIN_OUTPUT));
    assert_eq!(served.reserved_tokens, 296);
    // Below it, never today.
    let pool = [candidate("too-small", Some(295), 10, 1)];
    let refused = denial(ask(&*counters, &pool, uncapped(40), None, Strategy::Priority).await);
    assert_eq!(refused.reason, DenialReason::DailyLimit);
    assert_eq!(refused.retry_at_ms, NEXT_MIDNIGHT);
}

pub(crate) async fn a_client_cap_is_never_lowered(counters: Arc<dyn QuotaCounters>) {
    let pool = [limited("a", 1_000), limited("b", 3_000)];
    // Only "b" has room for 100 + 2 × 1,000.
    let capped = Reservation::for_request(100, Some(1_000), 2, MAX_OUTPUT, MIN_OUTPUT);
    let served = grant(ask(&*counters, &pool, capped, None, Strategy::default()).await);
    assert_eq!(served.account_id, "b");
    assert_eq!(served.reserved_tokens, 2_100);
    assert_eq!(served.completion_cap, None);
    // Now neither has room for it: refused, not lowered.
    let refused = denial(ask(&*counters, &pool, capped, None, Strategy::default()).await);
    assert_eq!(refused.reason, DenialReason::InFlight);
    let larger = Reservation::for_request(100, Some(5_000), 1, MAX_OUTPUT, MIN_OUTPUT);
    let refused = denial(ask(&*counters, &pool, larger, None, Strategy::default()).await);
    assert_eq!(refused.retry_at_ms, NEXT_MIDNIGHT);
}

pub(crate) async fn choices_share_the_completion_room(counters: Arc<dyn QuotaCounters>) {
    let pool = [limited("a", 1_000)];
    let three = Reservation::for_request(100, None, 3, MAX_OUTPUT, 10);
    let served = grant(ask(&*counters, &pool, three, None, Strategy::default()).await);
    assert_eq!(served.completion_cap, Some(300));
    assert_eq!(served.reserved_tokens, 1_000);
}

pub(crate) async fn the_key_room_bounds_an_uncapped_lease(counters: Arc<dyn QuotaCounters>) {
    let unlimited = [candidate("unlimited", None, 0, 1)];
    let tpm = key("tpm-key", None, Some(700), None);
    let served = grant(
        ask(
            &*counters,
            &unlimited,
            uncapped(100),
            Some(&tpm),
            Strategy::default(),
        )
        .await,
    );
    assert_eq!(served.completion_cap, Some(600));
    assert_eq!(served.reserved_tokens, 700);
    // The window is full now: the key refuses, not the account.
    let refused = denial(
        ask(
            &*counters,
            &unlimited,
            uncapped(100),
            Some(&tpm),
            Strategy::default(),
        )
        .await,
    );
    assert_eq!(refused.reason, DenialReason::KeyTpm);

    // The daily budget and the account's room: the smaller wins.
    let budget = key("budget-key", None, None, Some(2_000));
    let pool = [limited("a", 1_500)];
    let served = grant(
        ask(
            &*counters,
            &pool,
            uncapped(100),
            Some(&budget),
            Strategy::default(),
        )
        .await,
    );
    assert_eq!(served.completion_cap, Some(1_400));
    let pool = [limited("b", 5_000)];
    let served = grant(
        ask(
            &*counters,
            &pool,
            uncapped(100),
            Some(&budget),
            Strategy::default(),
        )
        .await,
    );
    assert_eq!(served.reserved_tokens, 500);
    assert_eq!(served.completion_cap, Some(400));
}

pub(crate) async fn a_strict_account_reserves_the_worst_case_prompt(
    counters: Arc<dyn QuotaCounters>,
) {
    let strict = |id: &str, limit: u64| Candidate {
        strict: true,
        ..limited(id, limit)
    };
    let worst = |reservation: Reservation| reservation.with_worst_prompt(400);
    let pool = [strict("strict", 1_000)];
    let served = grant(
        ask(
            &*counters,
            &pool,
            worst(uncapped(100)),
            None,
            Strategy::default(),
        )
        .await,
    );
    assert_eq!(served.completion_cap, Some(600));
    assert_eq!(served.reserved_tokens, 1_000);
    // A strict account with room for the estimate but not the worst case
    // is skipped; a lenient one takes the estimate.
    let pool = [strict("strict-small", 600), limited("lenient", 600)];
    let served = grant(
        ask(
            &*counters,
            &pool,
            worst(uncapped(100)),
            None,
            Strategy::Priority,
        )
        .await,
    );
    assert_eq!(served.account_id, "lenient");
    assert_eq!(served.completion_cap, Some(500));
    // A client's cap is reserved on top of the worst case.
    let capped = worst(Reservation::for_request(
        100,
        Some(50),
        1,
        MAX_OUTPUT,
        MIN_OUTPUT,
    ));
    let pool = [strict("strict-capped", 10_000)];
    let served = grant(ask(&*counters, &pool, capped, None, Strategy::default()).await);
    assert_eq!(served.reserved_tokens, 450);
    assert_eq!(served.completion_cap, None);
}
