//! Conformance check for reconciliation: raising an account's day counter
//! to the usage store's total.

use std::sync::Arc;

use super::{NEXT_MIDNIGHT, NOON, granted, limited, settle, used_and_reserved};
use crate::counters::QuotaCounters;

/// A counter below the total is raised to it (and limits leases from
/// then on), one above it is left alone, and each call reports the count
/// it found; another day's counter is untouched.
pub(crate) async fn raise_used_today_only_raises(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000)];
    let grant = granted(c, &pool, 100, NOON).await;
    settle(c, &grant, 100, NOON).await;

    assert_eq!(c.raise_used_today("a", 700, NOON).await.unwrap(), 100);
    assert_eq!(used_and_reserved(c, "a", NOON).await, (700, 0));
    assert_eq!(granted(c, &pool, 300, NOON).await.remaining_tokens, Some(0));

    // Below the counter: nothing changes.
    assert_eq!(c.raise_used_today("a", 500, NOON).await.unwrap(), 700);
    assert_eq!(used_and_reserved(c, "a", NOON).await, (700, 300));

    // An account never seen starts from zero.
    assert_eq!(c.raise_used_today("fresh", 42, NOON).await.unwrap(), 0);
    assert_eq!(used_and_reserved(c, "fresh", NOON).await, (42, 0));
    assert_eq!(c.raise_used_today("fresh", 42, NOON).await.unwrap(), 42);

    // The next day starts at zero and is raised on its own.
    let tomorrow = NEXT_MIDNIGHT + 1;
    assert_eq!(used_and_reserved(c, "fresh", tomorrow).await, (0, 0));
    assert_eq!(c.raise_used_today("fresh", 5, tomorrow).await.unwrap(), 0);
    assert_eq!(used_and_reserved(c, "fresh", tomorrow).await, (5, 0));
}
