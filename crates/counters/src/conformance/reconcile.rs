//! Conformance checks for reconciliation: raising an account's or a client
//! key's day counter to the usage store's total.

use std::sync::Arc;

use tollgate_core::clock::{utc_day, utc_month};

use super::keys::{denied_for, granted_for, key, monthly, settle_costing, settle_for};
use super::{NEXT_MIDNIGHT, NOON, granted, limited, settle, used_and_reserved};
use crate::{DenialReason, QuotaCounters};

/// A counter below the total is raised to it (and limits leases from
/// then on), one above it is left alone, and each call reports the count
/// it found; another day's counter is untouched.
pub(crate) async fn raise_used_today_only_raises(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let grant = granted(c, &pool, 100, NOON).await;
    settle(c, &grant, 100, NOON).await;

    assert_eq!(
        c.raise_used_today("a", 700, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        100
    );
    assert_eq!(used_and_reserved(c, "a", NOON).await, (700, 0));
    assert_eq!(granted(c, &pool, 300, NOON).await.remaining_tokens, Some(0));

    // Below the counter: nothing changes.
    assert_eq!(
        c.raise_used_today("a", 500, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        700
    );
    assert_eq!(used_and_reserved(c, "a", NOON).await, (700, 300));

    // An account never seen starts from zero.
    assert_eq!(
        c.raise_used_today("fresh", 42, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(used_and_reserved(c, "fresh", NOON).await, (42, 0));
    assert_eq!(
        c.raise_used_today("fresh", 42, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        42
    );

    // Totals for another day than today's change nothing.
    assert_eq!(
        c.raise_used_today("fresh", 99, utc_day(NOON) - 1, NOON)
            .await
            .unwrap(),
        None
    );
    assert_eq!(used_and_reserved(c, "fresh", NOON).await, (42, 0));

    // The next day starts at zero and is raised on its own.
    let tomorrow = NEXT_MIDNIGHT + 1;
    assert_eq!(used_and_reserved(c, "fresh", tomorrow).await, (0, 0));
    assert_eq!(
        c.raise_used_today("fresh", 5, utc_day(tomorrow), tomorrow)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(used_and_reserved(c, "fresh", tomorrow).await, (5, 0));
}

/// As for an account, on a client key's day counter: the raised count
/// limits the key's daily budget from then on, a lower total changes
/// nothing, and neither the account's counter nor another day's moves.
pub(crate) async fn raise_key_used_today_only_raises(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let limits = key("k", None, None, Some(1_000));
    let pool = [limited("a", 1_000_000)];
    let grant = granted_for(c, &limits, &pool, 100, NOON).await;
    settle_for(c, &limits, &grant, 100, NOON).await;

    assert_eq!(
        c.raise_key_used_today("k", 700, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        100
    );
    assert_eq!(
        denied_for(c, &limits, &pool, 301, NOON).await.reason,
        DenialReason::KeyDailyBudget
    );
    granted_for(c, &limits, &pool, 300, NOON).await;
    assert_eq!(used_and_reserved(c, "a", NOON).await, (100, 300));

    // Below the counter: nothing changes.
    assert_eq!(
        c.raise_key_used_today("k", 500, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        700
    );

    // A key never seen starts from zero.
    let fresh = key("fresh", None, None, Some(50));
    assert_eq!(
        c.raise_key_used_today("fresh", 42, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(
        c.raise_key_used_today("fresh", 42, utc_day(NOON), NOON)
            .await
            .unwrap()
            .unwrap(),
        42
    );
    assert_eq!(
        denied_for(c, &fresh, &pool, 9, NOON).await.reason,
        DenialReason::KeyDailyBudget
    );
    granted_for(c, &fresh, &pool, 8, NOON).await;

    // Totals for another day than today's change nothing.
    assert_eq!(
        c.raise_key_used_today("k", 999, utc_day(NOON) + 1, NOON)
            .await
            .unwrap(),
        None
    );

    // The next day starts at zero and is raised on its own.
    let tomorrow = NEXT_MIDNIGHT + 1;
    granted_for(c, &fresh, &pool, 50, tomorrow).await;
    assert_eq!(
        c.raise_key_used_today("k", 5, utc_day(tomorrow), tomorrow)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(
        c.raise_key_used_today("k", 5, utc_day(tomorrow), tomorrow)
            .await
            .unwrap()
            .unwrap(),
        5
    );
}

/// As for a day counter, on a client key's spend this month: the raised
/// amount counts against its monthly budget, a lower total changes
/// nothing, and another month's total is refused.
pub(crate) async fn raise_key_spend_only_raises(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let limits = monthly("spender", 1_000);
    let pool = [limited("a", 1_000_000)];
    let grant = granted_for(c, &limits, &pool, 10, NOON).await;
    settle_costing(c, &limits, &grant, 10, 100, NOON).await;
    let month = utc_month(NOON);

    assert_eq!(
        c.raise_key_spend("spender", 700, month, NOON)
            .await
            .unwrap(),
        Some(100)
    );
    assert_eq!(
        c.raise_key_spend("spender", 500, month, NOON)
            .await
            .unwrap(),
        Some(700)
    );
    granted_for(c, &limits, &pool, 10, NOON).await;
    assert_eq!(
        c.raise_key_spend("spender", 1_000, month, NOON)
            .await
            .unwrap(),
        Some(700)
    );
    assert_eq!(
        denied_for(c, &limits, &pool, 10, NOON).await.reason,
        DenialReason::KeyMonthlyBudget
    );
    // Another month's total changes nothing.
    assert_eq!(
        c.raise_key_spend("spender", 5, month - 1, NOON)
            .await
            .unwrap(),
        None
    );
}
