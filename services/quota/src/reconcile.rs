//! `SyncAccountUsage`: reconciliation of the day counters with the usage
//! store. The caller (the edge's admin API) reads from analytics how many
//! tokens each account and each client key used today; each account's
//! counter, and the day counter of each key with usage (the one its daily
//! token budget reads), is raised to that total when it is below it, as
//! after a Redis flush or failover lost settled writes. Every key with
//! usage is repaired, not only those with a budget: a key without usage
//! has nothing to raise, and the control store need not be read for keys.
//!
//! A counter above the store's total is left alone: it is expected while
//! usage events are still on their way to the store (and for requests
//! settled after midnight that started before it), and lowering it could
//! let an account pass its daily limit.

use std::collections::HashMap;

use serde_json::json;
use tollgate_control_store::NewAuditEntry;
use tollgate_core::GatewayError;
use tollgate_proto::v1;

use tollgate_counters::QuotaCounters;

use crate::QuotaService;
use crate::errors::{from_control, from_counters};

/// One kind of client-key counter a sync raises: the tokens of a UTC day
/// (what a daily budget reads) or the spend of a UTC month (`YYYYMM`, what
/// a monthly budget reads).
#[derive(Debug, Clone, Copy)]
enum KeyCounter {
    Day(i64),
    Month(i64),
}

impl KeyCounter {
    /// Raises the key's counter to `total`: the count before, or `None`
    /// when the counters' period is another.
    async fn raise(
        self,
        counters: &dyn QuotaCounters,
        key_id: &str,
        total: u64,
        now_ms: i64,
    ) -> Result<Option<u64>, GatewayError> {
        match self {
            KeyCounter::Day(day) => counters.raise_key_used_today(key_id, total, day, now_ms),
            KeyCounter::Month(month) => counters.raise_key_spend(key_id, total, month, now_ms),
        }
        .await
        .map_err(from_counters)
    }

    fn period(self) -> (&'static str, i64) {
        match self {
            KeyCounter::Day(day) => ("utc_day", day),
            KeyCounter::Month(month) => ("utc_month", month),
        }
    }

    fn action(self) -> &'static str {
        match self {
            KeyCounter::Day(_) => "sync_usage",
            KeyCounter::Month(_) => "sync_spend",
        }
    }

    fn other_period(self) -> GatewayError {
        match self {
            KeyCounter::Day(_) => day_turned(),
            KeyCounter::Month(_) => GatewayError::invalid(
                "utc_month",
                "the spend is not for this month (UTC); recompute it and retry",
            ),
        }
    }
}

impl QuotaService {
    /// Raises the counters below their totals; each raise is audited as
    /// `sync_usage` on the account or key, by `actor`.
    pub(crate) async fn sync_account_usage(
        &self,
        actor: &str,
        totals: v1::AccountUsageTotals,
    ) -> Result<v1::AccountSyncReport, GatewayError> {
        // Whether the totals are for today is the counters' to say (by the
        // Redis server's clock when they are in Redis), per counter raised.
        let now_ms = self.clock.now_ms();
        let recomputed: HashMap<String, u64> = totals
            .accounts
            .into_iter()
            .map(|entry| (entry.account_id, entry.tokens))
            .collect();
        let mut accounts = self.control.list_accounts().await.map_err(from_control)?;
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        let mut report = Vec::with_capacity(accounts.len());
        for account in accounts {
            let tokens = recomputed.get(&account.id).copied().unwrap_or(0);
            let before = self
                .counters
                .raise_used_today(&account.id, tokens, totals.utc_day, now_ms)
                .await
                .map_err(from_counters)?
                .ok_or_else(day_turned)?;
            let raise = Raise::new(before, tokens);
            if raise.changed() {
                tracing::warn!(
                    account = %account.id,
                    counter_before = before,
                    recomputed = tokens,
                    "raised an account's day counter to the usage store's total"
                );
                self.record_audit(audit_entry(
                    actor,
                    ("utc_day", totals.utc_day),
                    "account",
                    &account.id,
                    raise,
                ))
                .await;
            }
            report.push(raise.for_account(account.id));
        }
        let tokens = totals
            .keys
            .into_iter()
            .map(|key| (key.key_id, key.tokens))
            .collect();
        let day = KeyCounter::Day(totals.utc_day);
        let keys = self.sync_key_counters(actor, day, tokens, now_ms).await?;
        let spend = totals
            .key_spend
            .into_iter()
            .map(|key| (key.key_id, key.cost_micro_usd))
            .collect();
        let month = KeyCounter::Month(totals.utc_month);
        let key_spend = self.sync_key_counters(actor, month, spend, now_ms).await?;
        Ok(v1::AccountSyncReport {
            utc_day: totals.utc_day,
            accounts: report,
            keys,
            key_spend,
        })
    }

    /// Raises `counter` of each key in `totals` (key id, total), in key order;
    /// each raise is logged and audited.
    async fn sync_key_counters(
        &self,
        actor: &str,
        counter: KeyCounter,
        mut totals: Vec<(String, u64)>,
        now_ms: i64,
    ) -> Result<Vec<v1::KeySync>, GatewayError> {
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        totals.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut report = Vec::with_capacity(totals.len());
        for (key_id, total) in totals {
            let before = counter
                .raise(self.counters.as_ref(), &key_id, total, now_ms)
                .await?
                .ok_or_else(|| counter.other_period())?;
            let raised = Raise::new(before, total);
            if raised.changed() {
                tracing::warn!(
                    key = %key_id,
                    counter_before = before,
                    recomputed = total,
                    counter = counter.action(),
                    "raised a client key's counter to the usage store's total"
                );
                let mut entry = audit_entry(actor, counter.period(), "key", &key_id, raised);
                entry.action = counter.action().to_owned();
                self.record_audit(entry).await;
            }
            report.push(raised.for_key(key_id));
        }
        Ok(report)
    }
}

/// Totals for another UTC day than the counters' today (the day turned
/// while they were computed, or this process's clock is off the counters').
fn day_turned() -> GatewayError {
    GatewayError::invalid(
        "utc_day",
        "the totals are not for today (UTC); recompute them and retry",
    )
}

fn audit_entry(
    actor: &str,
    (period_name, period): (&str, i64),
    object_kind: &str,
    object_id: &str,
    raise: Raise,
) -> NewAuditEntry {
    let mut summary = json!({
        "counter_before": raise.before,
        "recomputed": raise.recomputed,
        "counter_after": raise.after(),
    });
    summary[period_name] = period.into();
    NewAuditEntry {
        actor: actor.to_owned(),
        action: "sync_usage".to_owned(),
        object_kind: object_kind.to_owned(),
        object_id: object_id.to_owned(),
        summary,
    }
}

/// What raising a counter that stood at `before` to `recomputed` did.
#[derive(Debug, Clone, Copy)]
struct Raise {
    before: u64,
    recomputed: u64,
}

impl Raise {
    fn new(before: u64, recomputed: u64) -> Self {
        Self { before, recomputed }
    }

    fn after(self) -> u64 {
        self.before.max(self.recomputed)
    }

    fn changed(self) -> bool {
        self.recomputed > self.before
    }

    fn for_account(self, account_id: String) -> v1::AccountSync {
        v1::AccountSync {
            account_id,
            counter_before: self.before,
            recomputed: self.recomputed,
            counter_after: self.after(),
            changed: self.changed(),
        }
    }

    fn for_key(self, key_id: String) -> v1::KeySync {
        v1::KeySync {
            key_id,
            counter_before: self.before,
            recomputed: self.recomputed,
            counter_after: self.after(),
            changed: self.changed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Raise;

    #[test]
    fn only_a_counter_below_the_store_changes() {
        let raised = Raise::new(10, 25).for_account("a".into());
        assert_eq!((raised.counter_after, raised.changed), (25, true));
        let ahead = Raise::new(30, 25).for_key("k".into());
        assert_eq!((ahead.counter_after, ahead.changed), (30, false));
        let equal = Raise::new(25, 25).for_account("a".into());
        assert_eq!((equal.counter_after, equal.changed), (25, false));
    }
}
