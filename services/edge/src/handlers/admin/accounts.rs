//! `/admin/v1/accounts`: provider accounts. The secret is write-only: reads
//! show quota's `secret_mask`, and the secret is never logged or echoed.
//!
//! Only the JSON is checked here (field names and types, and `null` where
//! nothing can be cleared); what makes an account valid (known provider,
//! secret when the provider needs one, `base_url`, names, limits, the keys
//! of `settings` for the provider) is decided by quota, whose errors name
//! the same fields as this API (`settings.<key>` for a setting).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::GatewayError;
use tollgate_proto::v1::{
    AccountRecord, AccountSpec, AccountUpdate, IdRequest, ListRequest, ResetAccountRequest,
    StringList,
};

use tollgate_admin_api::{Account, AccountPatch, NewAccount};

use super::fields::{self, Clears};
use super::prices;
use super::{Actor, ObjectId};
use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

/// The spec quota is asked to create from a `POST` body. Absent strings
/// are sent empty, which quota reads as unset (an empty `profile` is the
/// default profile).
pub fn spec(input: NewAccount) -> Result<AccountSpec, GatewayError> {
    Ok(AccountSpec {
        provider: input.provider,
        name: input.name,
        email: input.email,
        secret: input.secret,
        base_url: input.base_url,
        profile: input.profile.unwrap_or_default(),
        models: input.models,
        daily_token_limit: input.daily_token_limit,
        rpm: input.rpm,
        tpm: input.tpm,
        priority: input.priority,
        weight: input.weight,
        enabled: input.enabled,
        strict_cap: input.strict_cap,
        health_probe: input.health_probe,
        settings: input
            .settings
            .map(|settings| Value::Object(settings).to_string())
            .unwrap_or_default(),
        prices: input.prices.map(prices::to_wire).transpose()?,
    })
}

/// The update quota is asked to make from a PATCH body: `null` clears a
/// limit, the secret or the settings, or empties `email` and `base_url`,
/// and is refused in the other fields.
pub fn update_of(patch: AccountPatch, id: String) -> Result<AccountUpdate, GatewayError> {
    let mut clears = Clears::default();
    let update = AccountUpdate {
        id,
        name: fields::not_null(patch.name, "name")?,
        email: patch.email.map(Option::unwrap_or_default),
        secret: clears.take(patch.secret, "secret"),
        base_url: patch.base_url.map(Option::unwrap_or_default),
        profile: fields::not_null(patch.profile, "profile")?,
        models: fields::not_null(patch.models, "models")?.map(|values| StringList { values }),
        daily_token_limit: clears.take(patch.daily_token_limit, "daily_token_limit"),
        rpm: clears.take(patch.rpm, "rpm"),
        tpm: clears.take(patch.tpm, "tpm"),
        priority: fields::not_null(patch.priority, "priority")?,
        weight: fields::not_null(patch.weight, "weight")?,
        enabled: fields::not_null(patch.enabled, "enabled")?,
        strict_cap: fields::not_null(patch.strict_cap, "strict_cap")?,
        health_probe: fields::not_null(patch.health_probe, "health_probe")?,
        settings: clears
            .take(patch.settings, "settings")
            .map(|settings| Value::Object(settings).to_string()),
        prices: clears
            .take(patch.prices, "prices")
            .map(prices::to_wire)
            .transpose()?,
        clear: Vec::new(),
    };
    Ok(AccountUpdate {
        clear: clears.0,
        ..update
    })
}

/// An account as the admin API shows it: the secret only as its mask.
pub fn account(record: &AccountRecord) -> Account {
    let text = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    #[allow(clippy::cast_precision_loss)]
    let latency_ms = |us: u64| us as f64 / 1_000.0;
    Account {
        id: record.id.clone(),
        provider: record.provider.clone(),
        name: record.name.clone(),
        email: record.email.clone(),
        secret_mask: record.secret_mask.clone(),
        base_url: record.base_url.clone(),
        profile: record.profile.clone(),
        models: record.models.clone(),
        daily_token_limit: record.daily_token_limit,
        rpm: record.rpm,
        tpm: record.tpm,
        priority: record.priority,
        weight: record.weight,
        strict_cap: record.strict_cap,
        health_probe: record.health_probe,
        settings: serde_json::from_str(&record.settings).unwrap_or_default(),
        prices: record.prices.map(prices::from_wire),
        enabled: record.enabled,
        disabled_reason: text(&record.disabled_reason),
        state: super::profiles::state_name(record.state()).to_owned(),
        cooling_down_until: record.cooling_until_ms.map(rfc3339::format_ms),
        circuit_open_until: record.circuit_open_until_ms.map(rfc3339::format_ms),
        created_at: rfc3339::format_secs(record.created_at),
        tokens_used_today: record.tokens_used_today,
        tokens_reserved: record.tokens_reserved,
        last_used_at: record.last_used_at_ms.map(rfc3339::format_ms),
        last_error_at: record.last_error_at_ms.map(rfc3339::format_ms),
        last_error: text(&record.last_error),
        successes_today: record.successes_today,
        errors_today: record.errors_today,
        latency_ewma_ms: record.latency_ewma_us.map(latency_ms),
    }
}

/// [`account`] as JSON.
pub fn account_json(record: &AccountRecord) -> Value {
    serde_json::to_value(account(record)).unwrap_or_default()
}

pub async fn create(
    State(state): State<EdgeState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let input: NewAccount = super::read_json(&state, &headers, body).await?;
    let spec = spec(input)?;
    let record = state
        .quota
        .create_account(actor.request(spec))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::CREATED, &account_json(&record)))
}

pub async fn list(State(state): State<EdgeState>) -> Result<Response, ApiError> {
    let accounts = state
        .quota
        .list_accounts(tonic::Request::new(ListRequest {}))
        .await?
        .into_inner()
        .accounts;
    let data: Vec<Value> = accounts.iter().map(account_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "data": data })))
}

pub async fn get(
    State(state): State<EdgeState>,
    ObjectId(id): ObjectId,
) -> Result<Response, ApiError> {
    let record = state
        .quota
        .get_account(tonic::Request::new(IdRequest { id }))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &account_json(&record)))
}

pub async fn update(
    State(state): State<EdgeState>,
    actor: Actor,
    ObjectId(id): ObjectId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let patch: AccountPatch = super::read_json(&state, &headers, body).await?;
    let update = update_of(patch, id)?;
    let record = state
        .quota
        .update_account(actor.request(update))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &account_json(&record)))
}

/// The body of `POST /admin/v1/accounts/{id}/reset`: what to reset, each
/// `true` when absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountReset {
    #[serde(default = "yes")]
    cooldown: bool,
    #[serde(default = "yes")]
    circuit: bool,
    #[serde(default = "yes")]
    enable: bool,
}

fn yes() -> bool {
    true
}

impl Default for AccountReset {
    fn default() -> Self {
        Self {
            cooldown: true,
            circuit: true,
            enable: true,
        }
    }
}

/// An operator's reset of an account's health: its cooldown ended, its
/// circuit closed, and enabled again (each unless the body says `false`;
/// an empty body resets all three).
pub async fn reset(
    State(state): State<EdgeState>,
    actor: Actor,
    ObjectId(id): ObjectId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let reset: AccountReset = super::read_optional_json(&state, &headers, body)
        .await?
        .unwrap_or_default();
    let request = ResetAccountRequest {
        id,
        clear_cooldown: reset.cooldown,
        close_circuit: reset.circuit,
        enable: reset.enable,
    };
    let record = state
        .quota
        .reset_account(actor.request(request))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &account_json(&record)))
}

pub async fn delete(
    State(state): State<EdgeState>,
    actor: Actor,
    ObjectId(id): ObjectId,
) -> Result<Response, ApiError> {
    let deleted = state
        .quota
        .delete_account(actor.request(IdRequest { id: id.clone() }))
        .await?
        .into_inner();
    Ok(super::deleted_response("id", id, &deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_account(body: Value) -> AccountSpec {
        serde_json::from_value::<NewAccount>(body)
            .map_err(|e| e.to_string())
            .map(spec)
            .unwrap()
            .unwrap()
    }

    fn spec_param(input: NewAccount) -> String {
        spec(input).unwrap_err().param.unwrap_or_default()
    }

    fn patch(body: Value) -> Result<AccountUpdate, GatewayError> {
        serde_json::from_value::<AccountPatch>(body)
            .map_err(|e| e.to_string())
            .map(|patch| update_of(patch, "acct_1".into()))
            .unwrap()
    }

    #[test]
    fn create_converts_the_json_and_leaves_judging_it_to_quota() {
        let spec = new_account(json!({
            "provider": "openai", "name": "main", "secret": "sk-test",
            "models": ["gpt-4o"], "daily_token_limit": 20000000, "priority": -1, "weight": 3
        }));
        assert_eq!(spec.provider, "openai");
        assert_eq!(spec.profile, "");
        assert_eq!(spec.secret, "sk-test");
        assert_eq!(spec.models, ["gpt-4o"]);
        assert_eq!(spec.priority, Some(-1));
        assert_eq!(spec.daily_token_limit, Some(20_000_000));
        assert_eq!(spec.rpm, None);

        // Unknown providers, missing secrets and odd URLs are quota's to refuse.
        let spec = new_account(json!({"provider": "nope", "base_url": "ftp://x", "profile": null}));
        assert_eq!(spec.provider, "nope");
        assert_eq!(spec.base_url, "ftp://x");
        assert_eq!(spec.secret, "");
        assert_eq!(new_account(json!({})).provider, "");

        // Prices in dollars travel as micro-dollars; a bad one is the
        // edge's 400.
        let spec = new_account(json!({"provider": "mock",
            "prices": {"input": 0.8, "output": 4, "cache_write_1h": 1.6}}));
        let prices = spec.prices.unwrap();
        assert_eq!((prices.input, prices.output), (800_000, 4_000_000));
        assert_eq!(prices.cache_write_1h, Some(1_600_000));
        assert_eq!(prices.cached_input, None);
        let bad = serde_json::from_value::<NewAccount>(
            json!({"provider": "mock", "prices": {"input": -0.5, "output": 1}}),
        )
        .unwrap();
        assert_eq!(spec_param(bad), "prices.input");

        let shape = |body| serde_json::from_value::<NewAccount>(body).is_err();
        assert!(shape(json!({"provider": "mock", "prices": {"input": 1}})));
        assert!(shape(
            json!({"provider": "mock", "prices": {"input": 1, "output": 1, "x": 1}})
        ));
        assert!(shape(json!({"provider": "mock", "secret_mask": "x"})));
        assert!(shape(json!({"provider": 5})));
        assert!(shape(json!({"rpm": -1})));
        assert!(shape(json!({"models": "gpt-4o"})));
    }

    #[test]
    fn patch_clears_limits_and_the_secret_and_empties_strings() {
        let update = patch(json!({
            "daily_token_limit": null, "tpm": null, "rpm": 5,
            "email": null, "base_url": null, "secret": null, "weight": 2
        }))
        .unwrap();
        assert_eq!(update.clear, ["secret", "daily_token_limit", "tpm"]);
        assert_eq!(update.rpm, Some(5));
        assert_eq!(update.email.as_deref(), Some(""));
        assert_eq!(update.base_url.as_deref(), Some(""));
        assert_eq!(update.secret, None);
        assert_eq!(update.weight, Some(2));
        assert_eq!(update.name, None);

        let update = patch(json!({"secret": "", "base_url": "nope", "models": [" "]})).unwrap();
        assert_eq!(update.secret.as_deref(), Some(""));
        assert_eq!(update.base_url.as_deref(), Some("nope"));
        assert_eq!(update.models.unwrap().values, [" "]);
        assert!(update.clear.is_empty());

        // `null` prices go back to the catalog's; new ones are checked.
        assert_eq!(patch(json!({"prices": null})).unwrap().clear, ["prices"]);
        let update = patch(json!({"prices": {"input": 1.5, "output": 6}})).unwrap();
        assert_eq!(
            update.prices.map(|p| (p.input, p.output)),
            Some((1_500_000, 6_000_000))
        );
        let error = patch(json!({"prices": {"input": 1, "output": -6}})).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("prices.output"));

        for field in ["name", "priority", "weight", "enabled", "models", "profile"] {
            let error = patch(json!({ field: null })).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(field));
        }
        assert!(serde_json::from_value::<AccountPatch>(json!({"provider": "openai"})).is_err());
    }

    #[test]
    fn reads_show_the_mask_never_a_secret() {
        let record = AccountRecord {
            id: "acct_1".into(),
            provider: "openai".into(),
            secret_mask: "sk-…abcd".into(),
            daily_token_limit: Some(100),
            created_at: 0,
            ..AccountRecord::default()
        };
        let json = account_json(&record);
        assert_eq!(json["secret_mask"], "sk-…abcd");
        assert!(json.get("secret").is_none());
        assert_eq!(json["daily_token_limit"], 100);
        assert_eq!(json["disabled_reason"], Value::Null);
        assert_eq!(json["created_at"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn reads_show_the_activity() {
        let idle = account_json(&AccountRecord::default());
        for field in [
            "last_used_at",
            "last_error_at",
            "last_error",
            "latency_ewma_ms",
        ] {
            assert_eq!(idle[field], Value::Null, "{field}");
        }
        let busy = account_json(&AccountRecord {
            last_used_at_ms: Some(1_500),
            last_error_at_ms: Some(2_000),
            last_error: "timeout".into(),
            successes_today: 7,
            errors_today: 2,
            latency_ewma_us: Some(12_345),
            ..AccountRecord::default()
        });
        assert_eq!(busy["last_used_at"], "1970-01-01T00:00:01.500Z");
        assert_eq!(busy["last_error_at"], "1970-01-01T00:00:02Z");
        assert_eq!(busy["last_error"], "timeout");
        assert_eq!(busy["successes_today"], 7);
        assert_eq!(busy["errors_today"], 2);
        assert_eq!(busy["latency_ewma_ms"], 12.345);
    }
}
