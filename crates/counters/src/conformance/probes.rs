//! Conformance checks for health probes: a claim has one taker per hold,
//! and a probe lease is not kept out by a cooldown or a circuit (a daily
//! limit still keeps it out).

use std::sync::Arc;

use super::{NOON, TTL, lease_id, limited};
use crate::{
    CircuitPolicy, CountersError, DenialReason, LeaseDecision, LeaseInput, QuotaCounters,
    Reservation, Selection,
};

pub(crate) async fn a_claim_has_one_taker_per_hold(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    assert!(c.claim("probe:a", 30_000, NOON).await.unwrap());
    assert!(!c.claim("probe:a", 30_000, NOON).await.unwrap());
    assert!(!c.claim("probe:a", 5_000, NOON + 29_999).await.unwrap());
    // Other names are apart.
    assert!(c.claim("probe:b", 30_000, NOON + 1).await.unwrap());
    // Once the hold is over, the next claim takes it (for its own hold).
    assert!(c.claim("probe:a", 1_000, NOON + 30_000).await.unwrap());
    assert!(!c.claim("probe:a", 1_000, NOON + 30_999).await.unwrap());
    assert!(c.claim("probe:a", 1_000, NOON + 31_000).await.unwrap());
    assert!(matches!(
        c.claim("probe:a", 0, NOON).await,
        Err(CountersError::InvalidInput(_))
    ));
}

async fn probe(c: &dyn QuotaCounters, account: &str, limit: u64, tokens: u64) -> LeaseDecision {
    c.lease(LeaseInput {
        lease_id: lease_id(),
        candidates: vec![limited(account, limit)],
        reservation: Reservation::exact(tokens),
        now_ms: NOON,
        ttl_ms: TTL,
        key: None,
        selection: Selection::default(),
        health_probe: true,
    })
    .await
    .unwrap()
}

pub(crate) async fn a_health_probe_passes_cooldowns_and_circuits(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    c.cooldown("cool", 600_000, NOON).await.unwrap();
    let policy = CircuitPolicy {
        failure_threshold: 1,
        base_backoff_ms: 600_000,
        max_backoff_ms: 600_000,
    };
    assert!(
        c.record_failure("open", policy, NOON)
            .await
            .unwrap()
            .is_some()
    );
    for account in ["cool", "open"] {
        // An ordinary lease is kept out.
        let alone = [limited(account, 1_000)];
        let ordinary = super::lease(c, &alone, 10, NOON).await;
        assert!(matches!(ordinary, LeaseDecision::Denied(_)), "{ordinary:?}");
        // A probe is not, and reserves like any lease.
        match probe(c, account, 1_000, 10).await {
            LeaseDecision::Granted(grant) => assert_eq!(grant.account_id, account),
            LeaseDecision::Denied(denial) => panic!("{account}: {denial:?}"),
        }
        assert_eq!(c.usage(account, NOON).await.unwrap().reserved, 10);
    }
    // The circuit and the cooldown are still there for everyone else.
    let open = c.usage("open", NOON).await.unwrap();
    assert_eq!(open.circuit_open_until_ms, Some(NOON + 600_000));
    let cool = c.usage("cool", NOON).await.unwrap();
    assert_eq!(cool.cooling_until_ms, Some(NOON + 600_000));
    // A day's limit still holds.
    match probe(c, "cool", 15, 10).await {
        LeaseDecision::Denied(denial) => assert_eq!(denial.reason, DenialReason::InFlight),
        LeaseDecision::Granted(grant) => panic!("{grant:?}"),
    }
}
