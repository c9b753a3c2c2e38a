//! Conformance checks for the window report every decision on a key gives
//! back: requests and tokens left in the sliding window and when it next
//! frees some of each, on grants (after the request) and on denials.

use std::sync::Arc;

use super::keys::{denied_with_report, granted_for, key, settle_for};
use super::{NOON, lease, limited};
use crate::{DenialReason, KEY_WINDOW_MS, KeyWindowReport, LeaseDecision, QuotaCounters};

fn report(
    requests: Option<u64>,
    tokens: Option<u64>,
    requests_reset_at_ms: i64,
    tokens_reset_at_ms: i64,
) -> Option<KeyWindowReport> {
    Some(KeyWindowReport {
        remaining_requests: requests,
        remaining_tokens: tokens,
        requests_reset_at_ms,
        tokens_reset_at_ms,
    })
}

pub(crate) async fn key_window_report_counts_down(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let limits = key("k-report", Some(3), Some(1_000), None);
    let pool = [limited("a", 1_000_000)];
    let first = granted_for(c, &limits, &pool, 100, NOON).await;
    let window_end = NOON + KEY_WINDOW_MS;
    assert_eq!(
        first.key_window,
        report(Some(2), Some(900), window_end, window_end)
    );
    let second = granted_for(c, &limits, &pool, 200, NOON + 1_000).await;
    assert_eq!(
        second.key_window,
        report(Some(1), Some(700), window_end, window_end)
    );
    // The first settles at zero: its request still counts, its tokens do
    // not, so tokens free up when the second leaves.
    settle_for(c, &limits, &first, 0, NOON + 1_500).await;
    let third = granted_for(c, &limits, &pool, 50, NOON + 2_000).await;
    assert_eq!(
        third.key_window,
        report(Some(0), Some(750), window_end, NOON + 1_000 + KEY_WINDOW_MS)
    );
    // Refused by the RPM: the report is the window as it stands.
    let denial = denied_with_report(c, &limits, &pool, 10, NOON + 3_000).await;
    assert_eq!(denial.reason, DenialReason::KeyRpm);
    assert_eq!(denial.retry_at_ms, window_end);
    assert_eq!(
        denial.key_window,
        report(Some(0), Some(750), window_end, NOON + 1_000 + KEY_WINDOW_MS)
    );
    // Once the window slid past everything it is whole again.
    let later = NOON + 10 * KEY_WINDOW_MS;
    let fresh = granted_for(c, &limits, &pool, 0, later).await;
    assert_eq!(
        fresh.key_window,
        report(Some(2), Some(1_000), later + KEY_WINDOW_MS, later)
    );
}

pub(crate) async fn key_window_report_follows_the_limits(counters: Arc<dyn QuotaCounters>) {
    let c = counters.as_ref();
    let pool = [limited("a", 1_000_000)];
    // Only an RPM: no tokens left to report.
    let rpm_only = key("k-report-rpm", Some(5), None, None);
    let grant = granted_for(c, &rpm_only, &pool, 10, NOON).await;
    assert_eq!(
        grant.key_window,
        report(Some(4), None, NOON + KEY_WINDOW_MS, NOON + KEY_WINDOW_MS)
    );
    // Only a budget: the window is still reported, without limits.
    let budget_only = key("k-report-budget", None, None, Some(100));
    let grant = granted_for(c, &budget_only, &pool, 10, NOON).await;
    assert_eq!(
        grant.key_window,
        report(None, None, NOON + KEY_WINDOW_MS, NOON + KEY_WINDOW_MS)
    );
    // Refused by the accounts: the key's window is reported untouched.
    let tpm_only = key("k-report-tpm", None, Some(500), None);
    granted_for(c, &tpm_only, &[limited("small", 100)], 100, NOON).await;
    let denial = denied_with_report(c, &tpm_only, &[limited("small", 100)], 50, NOON + 1_000).await;
    assert_eq!(denial.reason, DenialReason::InFlight);
    assert_eq!(
        denial.key_window,
        report(None, Some(400), NOON + KEY_WINDOW_MS, NOON + KEY_WINDOW_MS)
    );
    // No key: no report.
    match lease(c, &pool, 1, NOON).await {
        LeaseDecision::Granted(grant) => assert_eq!(grant.key_window, None),
        LeaseDecision::Denied(denial) => panic!("expected a grant, got {denial:?}"),
    }
}
