//! `GET /admin/v1/profiles/{profile}/stats`: each account of a profile with
//! today's (UTC) tokens used, reserved and left, and its state, from quota;
//! plus today's requests and errors per account from analytics; and the
//! profile's description and the strategy its leases use.
//!
//! The request and error counts are a convenience: when analytics cannot
//! answer they are `null` and the token figures, which come from quota's
//! counters, are still returned.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Value, json};
use tollgate_core::GatewayError;
use tollgate_core::clock::{now_ms, utc_day};
use tollgate_proto::v1::{AccountState, AccountStats, ProfileStatsRequest, UsageQuery, UsageRow};
use tracing::warn;

use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

const DAY_MS: i64 = 86_400_000;

/// The `{profile}` of the path (a profile's name).
pub struct ProfileName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ProfileName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(profile)) => Ok(Self(profile)),
            Err(rejection) => Err(ApiError(GatewayError::invalid(
                "profile",
                rejection.body_text(),
            ))),
        }
    }
}

pub async fn stats(
    State(state): State<EdgeState>,
    ProfileName(profile): ProfileName,
) -> Result<Response, ApiError> {
    let reply = state
        .quota
        .profile_stats(tonic::Request::new(ProfileStatsRequest { profile }))
        .await?
        .into_inner();
    let today = requests_today(&state).await;
    let accounts: Vec<Value> = reply
        .accounts
        .iter()
        .map(|account| account_json(account, today.as_ref()))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "profile": reply.profile,
            "description": reply.description,
            "strategy": reply.strategy,
            "accounts": accounts,
        }),
    ))
}

/// Today's usage rows by account id, or `None` when analytics cannot say.
async fn requests_today(state: &EdgeState) -> Option<HashMap<String, UsageRow>> {
    let query = UsageQuery {
        group_by: "account".to_owned(),
        from_ms: utc_day(now_ms()) * DAY_MS,
        ..UsageQuery::default()
    };
    match state
        .analytics
        .query_usage(tonic::Request::new(query))
        .await
    {
        Ok(report) => Some(
            report
                .into_inner()
                .rows
                .into_iter()
                .map(|row| (row.group.clone(), row))
                .collect(),
        ),
        Err(status) => {
            warn!(code = ?status.code(), "profile stats without request counts: analytics did not answer");
            None
        }
    }
}

/// The state's name in the API. New states (an open circuit) get their
/// own name here.
pub(super) fn state_name(state: AccountState) -> &'static str {
    match state {
        AccountState::Ok | AccountState::Unspecified => "ok",
        AccountState::CoolingDown => "cooling_down",
        AccountState::Disabled => "disabled",
        AccountState::CircuitOpen => "circuit_open",
        AccountState::HalfOpen => "half_open",
    }
}

/// One account as the API shows it; `requests_today` and `errors_today`
/// are `null` when analytics did not answer, 0 when it has no row.
pub fn account_json(account: &AccountStats, today: Option<&HashMap<String, UsageRow>>) -> Value {
    let row = today.map(|rows| rows.get(&account.id));
    json!({
        "id": account.id,
        "name": account.name,
        "provider": account.provider,
        "tokens_used_today": account.tokens_used_today,
        "tokens_reserved": account.tokens_reserved,
        "tokens_remaining": account.tokens_remaining,
        "daily_token_limit": account.daily_token_limit,
        "state": state_name(account.state()),
        "cooling_down_until": account.cooling_until_ms.map(rfc3339::format_ms),
        "circuit_open_until": account.circuit_open_until_ms.map(rfc3339::format_ms),
        "disabled_reason": (!account.disabled_reason.is_empty()).then_some(&account.disabled_reason),
        "requests_today": row.map(|row| row.map_or(0, |row| row.requests)),
        "errors_today": row.map(|row| row.map_or(0, |row| row.errors)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(state: AccountState) -> AccountStats {
        AccountStats {
            id: "acct_1".into(),
            name: "main".into(),
            provider: "openai".into(),
            tokens_used_today: 30,
            tokens_reserved: 20,
            daily_token_limit: Some(100),
            tokens_remaining: Some(50),
            state: state.into(),
            ..AccountStats::default()
        }
    }

    #[test]
    fn accounts_show_tokens_state_and_requests() {
        let rows = HashMap::from([(
            "acct_1".to_owned(),
            UsageRow {
                requests: 7,
                errors: 2,
                ..UsageRow::default()
            },
        )]);
        let json = account_json(&stats(AccountState::Ok), Some(&rows));
        assert_eq!(json["state"], "ok");
        assert_eq!(json["tokens_remaining"], 50);
        assert_eq!(json["requests_today"], 7);
        assert_eq!(json["errors_today"], 2);
        assert_eq!(json["cooling_down_until"], Value::Null);

        let none = HashMap::new();
        let json = account_json(&stats(AccountState::Ok), Some(&none));
        assert_eq!(json["requests_today"], 0);
        let json = account_json(&stats(AccountState::Ok), None);
        assert_eq!(json["requests_today"], Value::Null);
    }

    #[test]
    fn cooling_down_has_an_end_and_disabled_a_reason() {
        let mut cooling = stats(AccountState::CoolingDown);
        cooling.cooling_until_ms = Some(1_000);
        let json = account_json(&cooling, None);
        assert_eq!(json["state"], "cooling_down");
        assert_eq!(json["cooling_down_until"], "1970-01-01T00:00:01Z");

        let mut disabled = stats(AccountState::Disabled);
        disabled.disabled_reason = "upstream refused the credential".into();
        let json = account_json(&disabled, None);
        assert_eq!(json["state"], "disabled");
        assert_eq!(json["disabled_reason"], "upstream refused the credential");
    }
}
