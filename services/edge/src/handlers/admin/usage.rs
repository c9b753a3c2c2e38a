//! `GET /admin/v1/usage` and `GET /admin/v1/accounts/{id}/usage`: usage
//! totals from analytics, grouped and optionally bucketed by hour or day.
//!
//! The edge reads `from` and `to` (RFC 3339 or unix seconds) into unix
//! milliseconds; `group_by` and `bucket` pass through, and analytics judges
//! the query, naming the offending parameter in its errors.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use tollgate_admin_api as admin_api;
use tollgate_core::GatewayError;
use tollgate_proto::v1::{UsageQuery, UsageReport};

use super::{ObjectId, fields};
use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

/// Grouping when the query names none.
pub const DEFAULT_GROUP: &str = "model";

/// The query string: `group_by`, `from` and `to` (RFC 3339 or unix
/// seconds), `bucket`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

/// A bound of the time range as unix milliseconds; absent or empty is 0,
/// which analytics reads as unbounded.
fn bound_ms(text: Option<&str>, param: &str) -> Result<i64, GatewayError> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(0);
    };
    let ms = match text.parse::<i64>() {
        Ok(secs) => secs.checked_mul(1000),
        Err(_) => rfc3339::parse_ms(text),
    };
    ms.ok_or_else(|| {
        GatewayError::invalid(
            param,
            format!("`{param}` must be an RFC 3339 timestamp or unix seconds"),
        )
    })
}

impl UsageParams {
    pub fn into_query(self, account_id: String) -> Result<UsageQuery, GatewayError> {
        Ok(UsageQuery {
            group_by: self.group_by.unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            from_ms: bound_ms(self.from.as_deref(), "from")?,
            to_ms: bound_ms(self.to.as_deref(), "to")?,
            bucket: self.bucket.unwrap_or_default(),
            account_id,
        })
    }
}

/// The report as the admin API's object; `bucket_start` only when
/// bucketed.
pub fn report(report: &UsageReport, bucketed: bool) -> admin_api::UsageReport {
    let rows = report
        .rows
        .iter()
        .map(|row| admin_api::UsageRow {
            group: row.group.clone(),
            bucket_start: bucketed.then(|| rfc3339::format_ms(row.bucket_start_ms)),
            requests: row.requests,
            errors: row.errors,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            total_tokens: row.total_tokens,
            cached_tokens: row.cached_tokens,
            cache_write_5m_tokens: row.cache_write_5m_tokens,
            cache_write_1h_tokens: row.cache_write_1h_tokens,
            reasoning_tokens: row.reasoning_tokens,
            cost_usd: fields::micro_to_usd(row.cost_micro_usd),
            unpriced_requests: row.unpriced_requests,
        })
        .collect();
    admin_api::UsageReport { rows }
}

/// The report as JSON.
pub fn report_json(report: &UsageReport, bucketed: bool) -> Value {
    serde_json::to_value(self::report(report, bucketed)).unwrap_or_default()
}

async fn answer(
    state: &EdgeState,
    params: Result<Query<UsageParams>, QueryRejection>,
    account_id: String,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        GatewayError::new(
            tollgate_core::ErrorKind::InvalidRequest,
            rejection.body_text(),
        )
    })?;
    let query = params.into_query(account_id)?;
    let bucketed = !query.bucket.is_empty();
    let report = state
        .analytics
        .query_usage(tonic::Request::new(query))
        .await?
        .into_inner();
    Ok(json_response(
        StatusCode::OK,
        &report_json(&report, bucketed),
    ))
}

pub async fn query(
    State(state): State<EdgeState>,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    answer(&state, params, String::new()).await
}

pub async fn for_account(
    State(state): State<EdgeState>,
    ObjectId(id): ObjectId,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    answer(&state, params, id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tollgate_proto::v1::UsageRow;

    fn params(
        group_by: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        bucket: Option<&str>,
    ) -> UsageParams {
        UsageParams {
            group_by: group_by.map(str::to_owned),
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            bucket: bucket.map(str::to_owned),
        }
    }

    #[test]
    fn query_reads_groups_buckets_and_bounds() {
        let query = params(
            Some("account"),
            Some("2024-01-01T00:00:00Z"),
            Some("1704153600"),
            Some("day"),
        )
        .into_query("acct_1".into())
        .unwrap();
        assert_eq!(query.group_by, "account");
        assert_eq!(query.from_ms, 1_704_067_200_000);
        assert_eq!(query.to_ms, 1_704_153_600_000);
        assert_eq!(query.bucket, "day");
        assert_eq!(query.account_id, "acct_1");

        let defaults = UsageParams::default().into_query(String::new()).unwrap();
        assert_eq!(
            (defaults.group_by.as_str(), defaults.from_ms, defaults.to_ms),
            ("model", 0, 0)
        );
        assert_eq!(defaults.bucket, "");
    }

    #[test]
    fn query_passes_names_through_and_refuses_only_unreadable_times() {
        let query = params(Some("user"), Some("200"), Some("100"), Some("week"))
            .into_query(String::new())
            .unwrap();
        assert_eq!(query.group_by, "user");
        assert_eq!(query.bucket, "week");
        assert_eq!((query.from_ms, query.to_ms), (200_000, 100_000));

        let param = |p: UsageParams| {
            p.into_query(String::new())
                .unwrap_err()
                .param
                .unwrap_or_default()
        };
        assert_eq!(param(params(None, Some("yesterday"), None, None)), "from");
        assert_eq!(param(params(None, None, Some("2024-13-01"), None)), "to");
        assert_eq!(
            param(params(None, Some("9223372036854775807"), None, None)),
            "from"
        );
    }

    #[test]
    fn report_rows_in_dollars_with_optional_bucket() {
        let report = UsageReport {
            rows: vec![UsageRow {
                group: "mock-echo".into(),
                bucket_start_ms: 1_704_067_200_000,
                requests: 3,
                errors: 1,
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                cost_micro_usd: 2_500,
                cached_tokens: 4,
                cache_write_5m_tokens: 3,
                cache_write_1h_tokens: 2,
                reasoning_tokens: 1,
                unpriced_requests: 1,
            }],
        };
        let json = report_json(&report, true);
        let row = &json["rows"][0];
        assert_eq!(row["bucket_start"], "2024-01-01T00:00:00Z");
        assert_eq!(row["cost_usd"], json!(0.0025));
        assert_eq!(row["total_tokens"], 15);
        assert_eq!(
            [
                &row["cached_tokens"],
                &row["cache_write_5m_tokens"],
                &row["cache_write_1h_tokens"],
                &row["reasoning_tokens"],
                &row["unpriced_requests"]
            ],
            [&json!(4), &json!(3), &json!(2), &json!(1), &json!(1)]
        );
        assert!(
            report_json(&report, false)["rows"][0]
                .get("bucket_start")
                .is_none()
        );
    }
}
