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
use tollgate_core::GatewayError;
use tollgate_proto::v1;
use tollgate_store::control::NewAuditEntry;

use crate::errors::{from_control, from_counters};
use crate::{QuotaService, audit};

/// Raises the counters below their totals; each raise is audited as
/// `sync_usage` on the account or key, by `actor`.
pub(crate) async fn sync(
    service: &QuotaService,
    actor: &str,
    totals: v1::AccountUsageTotals,
) -> Result<v1::AccountSyncReport, GatewayError> {
    // Whether the totals are for today is the counters' to say (by the
    // Redis server's clock when they are in Redis), per counter raised.
    let now_ms = service.clock.now_ms();
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
            audit::record(
                service,
                audit_entry(actor, totals.utc_day, "account", &account.id, raise),
            )
            .await;
        }
        report.push(raise.for_account(account.id));
    }
    let keys = sync_keys(service, actor, totals.utc_day, totals.keys, now_ms).await?;
    let key_spend = if totals.key_spend.is_empty() {
        Vec::new()
    } else {
        sync_spend(service, actor, totals.utc_month, totals.key_spend, now_ms).await?
    };
    Ok(v1::AccountSyncReport {
        utc_day: totals.utc_day,
        accounts: report,
        keys,
        key_spend,
    })
}

/// Raises each key's spend this month (what its monthly budget reads) to
/// its total in `totals`, in key order; audited as `sync_spend`.
async fn sync_spend(
    service: &QuotaService,
    actor: &str,
    utc_month: i64,
    mut totals: Vec<v1::KeySpend>,
    now_ms: i64,
) -> Result<Vec<v1::KeySync>, GatewayError> {
    totals.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    totals.dedup_by(|later, earlier| later.key_id == earlier.key_id);
    let mut report = Vec::with_capacity(totals.len());
    for key in totals {
        let before = service
            .counters
            .raise_key_spend(&key.key_id, key.cost_micro_usd, utc_month, now_ms)
            .await
            .map_err(from_counters)?
            .ok_or_else(|| {
                GatewayError::invalid(
                    "utc_month",
                    "the spend is not for this month (UTC); recompute it and retry",
                )
            })?;
        let raise = Raise::new(before, key.cost_micro_usd);
        if raise.changed() {
            tracing::warn!(
                key = %key.key_id,
                spend_before = before,
                recomputed = key.cost_micro_usd,
                "raised a client key's monthly spend to the usage store's total"
            );
            let mut entry = audit_entry(actor, 0, "key", &key.key_id, raise);
            entry.action = "sync_spend".to_owned();
            entry.summary = json!({
                "utc_month": utc_month,
                "spend_before_micro_usd": raise.before,
                "recomputed_micro_usd": raise.recomputed,
                "spend_after_micro_usd": raise.after(),
            });
            audit::record(service, entry).await;
        }
        report.push(raise.for_key(key.key_id));
    }
    Ok(report)
}

/// Raises the day counter of each key in `totals`, in key order.
async fn sync_keys(
    service: &QuotaService,
    actor: &str,
    utc_day: i64,
    mut totals: Vec<v1::KeyTokens>,
    now_ms: i64,
) -> Result<Vec<v1::KeySync>, GatewayError> {
    totals.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    totals.dedup_by(|later, earlier| later.key_id == earlier.key_id);
    let mut report = Vec::with_capacity(totals.len());
    for key in totals {
        let before = service
            .counters
            .raise_key_used_today(&key.key_id, key.tokens, utc_day, now_ms)
            .await
            .map_err(from_counters)?
            .ok_or_else(day_turned)?;
        let raise = Raise::new(before, key.tokens);
        if raise.changed() {
            tracing::warn!(
                key = %key.key_id,
                counter_before = before,
                recomputed = key.tokens,
                "raised a client key's day counter to the usage store's total"
            );
            audit::record(
                service,
                audit_entry(actor, utc_day, "key", &key.key_id, raise),
            )
            .await;
        }
        report.push(raise.for_key(key.key_id));
    }
    Ok(report)
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
    utc_day: i64,
    object_kind: &str,
    object_id: &str,
    raise: Raise,
) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.to_owned(),
        action: "sync_usage".to_owned(),
        object_kind: object_kind.to_owned(),
        object_id: object_id.to_owned(),
        summary: json!({
            "utc_day": utc_day,
            "counter_before": raise.before,
            "recomputed": raise.recomputed,
            "counter_after": raise.after(),
        }),
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
