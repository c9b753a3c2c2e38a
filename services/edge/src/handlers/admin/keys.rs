//! `/admin/v1/keys`: client keys. The plaintext key is returned once, by
//! create; every write that may revoke a key drops it from this edge's key
//! cache at once.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tollgate_admin_api::{CreatedKey, Key, KeyPatch, NewKey};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::v1::{IdRequest, KeyRecord, KeySpec, KeyUpdate, ListRequest, StringList};

use super::fields::{self, Clears};
use super::{Actor, ObjectId};
use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

/// The spec quota is asked to create from a `POST` body.
pub fn spec(input: NewKey) -> Result<KeySpec, GatewayError> {
    fields::check_names(&input.profiles, "profiles")?;
    fields::check_models(&input.models, "models")?;
    let profile = match input.profile {
        Some(profile) if profile.trim().is_empty() => {
            return Err(GatewayError::invalid(
                "profile",
                "`profile` must not be empty",
            ));
        }
        Some(profile) => profile,
        None => "default".to_owned(),
    };
    Ok(KeySpec {
        name: input.name,
        profile,
        profiles: input.profiles,
        models: input.models,
        rpm: input.rpm,
        tpm: input.tpm,
        daily_token_budget: input.daily_token_budget,
        monthly_budget_micro_usd: input
            .monthly_budget_usd
            .map(|usd| fields::usd_to_micro(usd, "monthly_budget_usd"))
            .transpose()?,
        expires_at: input
            .expires_at
            .map(|value| fields::timestamp_secs(&value, "expires_at"))
            .transpose()?,
        enabled: input.enabled,
    })
}

/// The update quota is asked to make from a PATCH body: `null` clears a
/// limit or the expiry, and is refused in the other fields.
pub fn update_of(patch: KeyPatch, id: String) -> Result<KeyUpdate, GatewayError> {
    let profiles = fields::not_null(patch.profiles, "profiles")?;
    if let Some(profiles) = &profiles {
        fields::check_names(profiles, "profiles")?;
    }
    let models = fields::not_null(patch.models, "models")?;
    if let Some(models) = &models {
        fields::check_models(models, "models")?;
    }
    let profile = fields::not_null(patch.profile, "profile")?;
    if profile
        .as_ref()
        .is_some_and(|profile| profile.trim().is_empty())
    {
        return Err(GatewayError::invalid(
            "profile",
            "`profile` must not be empty",
        ));
    }
    let mut clears = Clears::default();
    let update = KeyUpdate {
        id,
        name: fields::not_null(patch.name, "name")?,
        profile,
        profiles: profiles.map(|values| StringList { values }),
        models: models.map(|values| StringList { values }),
        rpm: clears.take(patch.rpm, "rpm"),
        tpm: clears.take(patch.tpm, "tpm"),
        daily_token_budget: clears.take(patch.daily_token_budget, "daily_token_budget"),
        monthly_budget_micro_usd: clears
            .take(patch.monthly_budget_usd, "monthly_budget_micro_usd")
            .map(|usd| fields::usd_to_micro(usd, "monthly_budget_usd"))
            .transpose()?,
        expires_at: clears
            .take(patch.expires_at, "expires_at")
            .map(|value| fields::timestamp_secs(&value, "expires_at"))
            .transpose()?,
        enabled: fields::not_null(patch.enabled, "enabled")?,
        clear: Vec::new(),
    };
    Ok(KeyUpdate {
        clear: clears.0,
        ..update
    })
}

/// A key record as the admin API shows it (never the key itself).
pub fn key(record: &KeyRecord) -> Key {
    Key {
        id: record.id.clone(),
        name: record.name.clone(),
        profile: record.profile.clone(),
        profiles: record.profiles.clone(),
        models: record.models.clone(),
        rpm: record.rpm,
        tpm: record.tpm,
        daily_token_budget: record.daily_token_budget,
        monthly_budget_usd: record.monthly_budget_micro_usd.map(fields::micro_to_usd),
        expires_at: record.expires_at.map(rfc3339::format_secs),
        enabled: record.enabled,
        created_at: rfc3339::format_secs(record.created_at),
        prefix: record.prefix.clone(),
        last4: record.last4.clone(),
    }
}

/// [`key`] as JSON.
pub fn key_json(record: &KeyRecord) -> Value {
    serde_json::to_value(key(record)).unwrap_or_default()
}

pub async fn create(
    State(state): State<EdgeState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let input: NewKey = super::read_json(&state, &headers, body).await?;
    let spec = spec(input)?;
    let created = state
        .quota
        .create_key(actor.request(spec))
        .await?
        .into_inner();
    let Some(record) = created.key else {
        return Err(GatewayError::new(ErrorKind::Internal, "quota returned no key record").into());
    };
    let body = CreatedKey {
        record: key(&record),
        key: created.secret,
    };
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::to_value(body).unwrap_or_default(),
    ))
}

pub async fn list(State(state): State<EdgeState>) -> Result<Response, ApiError> {
    let keys = state
        .quota
        .list_keys(tonic::Request::new(ListRequest {}))
        .await?
        .into_inner()
        .keys;
    let data: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "data": data })))
}

pub async fn get(
    State(state): State<EdgeState>,
    ObjectId(id): ObjectId,
) -> Result<Response, ApiError> {
    let record = state
        .quota
        .get_key(tonic::Request::new(IdRequest { id }))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &key_json(&record)))
}

pub async fn update(
    State(state): State<EdgeState>,
    actor: Actor,
    ObjectId(id): ObjectId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let patch: KeyPatch = super::read_json(&state, &headers, body).await?;
    let update = update_of(patch, id.clone())?;
    let result = state.quota.update_key(actor.request(update)).await;
    state.invalidate_key(&id);
    Ok(json_response(
        StatusCode::OK,
        &key_json(&result?.into_inner()),
    ))
}

pub async fn delete(
    State(state): State<EdgeState>,
    actor: Actor,
    ObjectId(id): ObjectId,
) -> Result<Response, ApiError> {
    let result = state
        .quota
        .delete_key(actor.request(IdRequest { id: id.clone() }))
        .await;
    state.invalidate_key(&id);
    let deleted = result?.into_inner();
    Ok(super::deleted_response("id", id, &deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_key(body: Value) -> Result<KeySpec, GatewayError> {
        spec(serde_json::from_value::<NewKey>(body).unwrap())
    }

    fn patch(body: Value) -> Result<KeyUpdate, GatewayError> {
        update_of(
            serde_json::from_value::<KeyPatch>(body).unwrap(),
            "key_1".into(),
        )
    }

    #[test]
    fn create_converts_dollars_times_and_defaults() {
        let spec = new_key(json!({
            "name": "ci", "profiles": ["team-a"], "models": ["mock-echo"],
            "rpm": 60, "daily_token_budget": 1000000,
            "monthly_budget_usd": 25.5, "expires_at": "2030-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(spec.profile, "default");
        assert_eq!(spec.monthly_budget_micro_usd, Some(25_500_000));
        assert_eq!(spec.expires_at, Some(1_893_456_000));
        assert_eq!(spec.rpm, Some(60));
        assert_eq!(spec.tpm, None);
        assert_eq!(spec.enabled, None);
        let spec = new_key(json!({"expires_at": 1_893_456_000})).unwrap();
        assert_eq!(spec.expires_at, Some(1_893_456_000));
    }

    #[test]
    fn create_refuses_bad_values_naming_the_field() {
        let param = |body| new_key(body).unwrap_err().param.unwrap_or_default();
        assert_eq!(
            param(json!({"monthly_budget_usd": -1})),
            "monthly_budget_usd"
        );
        assert_eq!(param(json!({"expires_at": "soon"})), "expires_at");
        assert_eq!(param(json!({"profile": ""})), "profile");
        assert_eq!(param(json!({"models": [""]})), "models[0]");
        assert!(serde_json::from_value::<NewKey>(json!({"secret": "x"})).is_err());
        assert!(serde_json::from_value::<NewKey>(json!({"rpm": -1})).is_err());
    }

    #[test]
    fn patch_sends_only_present_fields_and_clears_nulls() {
        let update = patch(json!({
            "name": "renamed", "rpm": null, "monthly_budget_usd": null,
            "expires_at": null, "tpm": 10, "enabled": false, "models": []
        }))
        .unwrap();
        assert_eq!(update.id, "key_1");
        assert_eq!(update.name.as_deref(), Some("renamed"));
        assert_eq!(update.rpm, None);
        assert_eq!(update.tpm, Some(10));
        assert_eq!(update.enabled, Some(false));
        assert_eq!(update.models, Some(StringList { values: vec![] }));
        assert_eq!(update.profiles, None);
        assert_eq!(update.profile, None);
        assert_eq!(
            update.clear,
            ["rpm", "monthly_budget_micro_usd", "expires_at"]
        );

        let empty = patch(json!({})).unwrap();
        assert_eq!(
            empty,
            KeyUpdate {
                id: "key_1".into(),
                ..KeyUpdate::default()
            }
        );
    }

    #[test]
    fn patch_refuses_null_where_nothing_can_be_cleared() {
        for field in ["name", "profile", "profiles", "models", "enabled"] {
            let error = patch(json!({ field: null })).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(field));
        }
        assert!(serde_json::from_value::<KeyPatch>(json!({"id": "other"})).is_err());
    }

    #[test]
    fn record_shows_dollars_and_rfc3339_times() {
        let record = KeyRecord {
            id: "key_1".into(),
            profile: "default".into(),
            monthly_budget_micro_usd: Some(1_500_000),
            expires_at: Some(1_893_456_000),
            created_at: 1_700_000_000,
            prefix: "tg-abcd".into(),
            last4: "wxyz".into(),
            enabled: true,
            ..KeyRecord::default()
        };
        let json = key_json(&record);
        assert_eq!(json["monthly_budget_usd"], json!(1.5));
        assert_eq!(json["expires_at"], "2030-01-01T00:00:00Z");
        assert_eq!(json["created_at"], "2023-11-14T22:13:20Z");
        assert_eq!(json["rpm"], Value::Null);
        assert_eq!(json["prefix"], "tg-abcd");
        assert!(json.get("key").is_none());
    }
}

/// Admin writes drop the key from the edge's cache even when quota fails.
#[cfg(test)]
mod cache_tests {
    use tollgate_core::apikey::KeyHash;
    use tollgate_proto::v1::KeyRecord;

    use crate::state::send::{request, send};
    use crate::state::testing::{ADMIN_TOKEN, seed_key, services_down};

    #[tokio::test]
    async fn patch_and_delete_invalidate_the_cached_key() {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        for (method, body) in [("PATCH", r#"{"enabled": false}"#), ("DELETE", "")] {
            let state = services_down();
            let record = KeyRecord {
                id: "key_1".into(),
                enabled: true,
                ..KeyRecord::default()
            };
            seed_key(&state, "tg-presented", record);
            let hash = KeyHash::of("tg-presented");
            assert!(state.keys.get(&hash).is_some());
            let router = crate::admin_router(state.clone());
            let answer = send(
                router,
                request(
                    method,
                    "/admin/v1/keys/key_1",
                    &[("authorization", &auth)],
                    body,
                ),
            )
            .await;
            assert_eq!(answer.status.as_u16(), 503, "{method}");
            assert!(state.keys.get(&hash).is_none(), "{method}");
        }
    }
}
