//! `POST /admin/v1/accounts/sync`: reconciles the quota counters with the
//! usage store. The edge asks analytics for each account's and each client
//! key's tokens since today's 00:00 UTC and hands the totals to quota, which
//! raises every day counter that is below its total (after a Redis flush,
//! say) and reports each account and each key with usage today: the counter
//! before, the store's total, the counter after, and whether it changed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tollgate_core::clock::{MS_PER_DAY, now_ms, utc_day, utc_month, utc_month_start_ms};
use tollgate_proto::v1::{AccountSyncReport, AccountTokensQuery, AccountUsageTotals, KeySync};

use super::Actor;
use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

pub async fn accounts(State(state): State<EdgeState>, actor: Actor) -> Result<Response, ApiError> {
    let now = now_ms();
    let day = utc_day(now);
    let totals = state
        .analytics
        .account_tokens_since(tonic::Request::new(AccountTokensQuery {
            since_ms: day.saturating_mul(MS_PER_DAY),
            spend_since_ms: utc_month_start_ms(now),
        }))
        .await?
        .into_inner();
    let report = state
        .quota
        .sync_account_usage(actor.request(AccountUsageTotals {
            utc_day: day,
            accounts: totals.accounts,
            keys: totals.keys,
            utc_month: utc_month(now),
            key_spend: totals.key_spend,
        }))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &report_json(&report)))
}

/// The report as JSON: the UTC date, how many account counters changed and
/// one entry per account (`data`), and the same for the client keys
/// (`keys_changed`, `keys`).
pub fn report_json(report: &AccountSyncReport) -> Value {
    let data: Vec<Value> = report
        .accounts
        .iter()
        .map(|account| {
            json!({
                "account_id": account.account_id,
                "counter_before": account.counter_before,
                "recomputed": account.recomputed,
                "counter_after": account.counter_after,
                "changed": account.changed,
            })
        })
        .collect();
    let key_json = |key: &KeySync| {
        json!({
            "key_id": key.key_id,
            "counter_before": key.counter_before,
            "recomputed": key.recomputed,
            "counter_after": key.counter_after,
            "changed": key.changed,
        })
    };
    let keys: Vec<Value> = report.keys.iter().map(key_json).collect();
    let key_spend: Vec<Value> = report.key_spend.iter().map(key_json).collect();
    let date = rfc3339::format_ms(report.utc_day.saturating_mul(MS_PER_DAY));
    json!({
        "day": date.get(..10).unwrap_or(&date),
        "changed": report.accounts.iter().filter(|account| account.changed).count(),
        "data": data,
        "keys_changed": report.keys.iter().filter(|key| key.changed).count(),
        "keys": keys,
        "key_spend_changed": report.key_spend.iter().filter(|key| key.changed).count(),
        "key_spend": key_spend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_proto::v1::AccountSync;

    #[test]
    fn the_report_names_the_day_and_counts_changes() {
        let report = AccountSyncReport {
            utc_day: 19_723,
            accounts: vec![
                AccountSync {
                    account_id: "acct_a".into(),
                    counter_before: 0,
                    recomputed: 120,
                    counter_after: 120,
                    changed: true,
                },
                AccountSync {
                    account_id: "acct_b".into(),
                    counter_before: 50,
                    recomputed: 40,
                    counter_after: 50,
                    changed: false,
                },
            ],
            keys: vec![KeySync {
                key_id: "key_a".into(),
                counter_before: 0,
                recomputed: 70,
                counter_after: 70,
                changed: true,
            }],
            key_spend: vec![KeySync {
                key_id: "key_a".into(),
                counter_before: 10,
                recomputed: 2_500,
                counter_after: 2_500,
                changed: true,
            }],
        };
        let json = report_json(&report);
        assert_eq!(json["day"], "2024-01-01");
        assert_eq!(json["changed"], 1);
        assert_eq!(json["data"][0]["counter_after"], 120);
        assert_eq!(json["data"][1]["changed"], false);
        assert_eq!(json["keys_changed"], 1);
        assert_eq!(json["keys"][0]["key_id"], "key_a");
        assert_eq!(json["keys"][0]["counter_after"], 70);
        assert_eq!(json["key_spend_changed"], 1);
        assert_eq!(json["key_spend"][0]["counter_after"], 2_500);
    }
}
