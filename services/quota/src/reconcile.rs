//! `SyncAccountUsage`: reconciliation of the day counters with the usage
//! store. The caller (the edge's admin API) reads from analytics how many
//! tokens each account used today; each account's counter is raised to
//! that total when it is below it, as after a Redis flush or failover lost
//! settled writes.
//!
//! A counter above the store's total is left alone: it is expected while
//! usage events are still on their way to the store (and for requests
//! settled after midnight that started before it), and lowering it could
//! let an account pass its daily limit.

use std::collections::HashMap;

use serde_json::json;
use tollgate_core::GatewayError;
use tollgate_core::clock::utc_day;
use tollgate_proto::v1;
use tollgate_store::control::NewAuditEntry;

use crate::errors::{from_control, from_counters};
use crate::{QuotaService, audit};

/// Raises the counters below their totals; each raise is audited as
/// `sync_usage` on the account, by `actor`.
pub(crate) async fn sync(
    service: &QuotaService,
    actor: &str,
    totals: v1::AccountUsageTotals,
) -> Result<v1::AccountSyncReport, GatewayError> {
    let now_ms = service.clock.now_ms();
    if totals.utc_day != utc_day(now_ms) {
        return Err(GatewayError::invalid(
            "utc_day",
            "the totals are not for today (UTC); recompute them and retry",
        ));
    }
    let recomputed: HashMap<String, u64> = totals
        .accounts
        .into_iter()
        .map(|entry| (entry.account_id, entry.tokens))
        .collect();
    let mut accounts = service
        .control
        .list_accounts()
        .await
        .map_err(from_control)?;
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    let mut report = Vec::with_capacity(accounts.len());
    for account in accounts {
        let tokens = recomputed.get(&account.id).copied().unwrap_or(0);
        let before = service
            .counters
            .raise_used_today(&account.id, tokens, now_ms)
            .await
            .map_err(from_counters)?;
        let entry = outcome(account.id, before, tokens);
        if entry.changed {
            tracing::warn!(
                account = %entry.account_id,
                counter_before = entry.counter_before,
                recomputed = entry.recomputed,
                "raised an account's day counter to the usage store's total"
            );
            audit::record(service, audit_entry(actor, totals.utc_day, &entry)).await;
        }
        report.push(entry);
    }
    Ok(v1::AccountSyncReport {
        utc_day: totals.utc_day,
        accounts: report,
    })
}

fn audit_entry(actor: &str, utc_day: i64, entry: &v1::AccountSync) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.to_owned(),
        action: "sync_usage".to_owned(),
        object_kind: "account".to_owned(),
        object_id: entry.account_id.clone(),
        summary: json!({
            "utc_day": utc_day,
            "counter_before": entry.counter_before,
            "recomputed": entry.recomputed,
            "counter_after": entry.counter_after,
        }),
    }
}

/// What raising a counter that stood at `before` to `recomputed` did.
fn outcome(account_id: String, before: u64, recomputed: u64) -> v1::AccountSync {
    v1::AccountSync {
        account_id,
        counter_before: before,
        recomputed,
        counter_after: before.max(recomputed),
        changed: recomputed > before,
    }
}

#[cfg(test)]
mod tests {
    use super::outcome;

    #[test]
    fn only_a_counter_below_the_store_changes() {
        let raised = outcome("a".into(), 10, 25);
        assert_eq!((raised.counter_after, raised.changed), (25, true));
        let ahead = outcome("a".into(), 30, 25);
        assert_eq!((ahead.counter_after, ahead.changed), (30, false));
        let equal = outcome("a".into(), 25, 25);
        assert_eq!((equal.counter_after, equal.changed), (25, false));
    }
}
