//! `/admin/v1/profiles`: stored profiles (teams), by name, each with a
//! `description` and the `strategy` its leases use when their route names
//! none.
//!
//! Only the JSON is checked here (field names and types); what makes a
//! profile valid (a plain name not taken yet, a known strategy) and whether
//! it may be deleted (nothing names it any more) is decided by quota, whose
//! errors name the same fields as this API.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tollgate_admin_api::{NewProfile, Profile, ProfilePatch};
use tollgate_core::GatewayError;
use tollgate_proto::v1::{IdRequest, ListRequest, ProfileRecord, ProfileSpec, ProfileUpdate};

use super::Actor;
use super::fields::{self, Clears};
use super::profiles::ProfileName;
use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

/// The spec quota is asked to create from a `POST` body. Absent strings
/// are sent empty, which quota reads as unset (no description, the
/// configured strategy).
pub fn spec(input: NewProfile) -> ProfileSpec {
    ProfileSpec {
        name: input.name,
        description: input.description.unwrap_or_default(),
        strategy: input.strategy.unwrap_or_default(),
    }
}

/// The update quota is asked to make from a PATCH body: `null` clears the
/// strategy (back to the configured one) and is refused for the
/// description; the name cannot change.
pub fn update_of(patch: ProfilePatch, name: String) -> Result<ProfileUpdate, GatewayError> {
    let mut clears = Clears::default();
    let update = ProfileUpdate {
        name,
        description: fields::not_null(patch.description, "description")?,
        strategy: clears.take(patch.strategy, "strategy"),
        clear: Vec::new(),
    };
    Ok(ProfileUpdate {
        clear: clears.0,
        ..update
    })
}

/// A profile as the admin API shows it; `strategy` is `null` when the
/// profile uses the configured one.
pub fn profile(record: &ProfileRecord) -> Profile {
    Profile {
        name: record.name.clone(),
        description: record.description.clone(),
        strategy: (!record.strategy.is_empty()).then(|| record.strategy.clone()),
        created_at: rfc3339::format_secs(record.created_at),
        updated_at: rfc3339::format_secs(record.updated_at),
    }
}

/// [`profile`] as JSON.
pub fn profile_json(record: &ProfileRecord) -> Value {
    serde_json::to_value(profile(record)).unwrap_or_default()
}

pub async fn create(
    State(state): State<EdgeState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let input: NewProfile = super::read_json(&state, &headers, body).await?;
    let record = state
        .quota
        .create_profile(actor.request(spec(input)))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::CREATED, &profile_json(&record)))
}

pub async fn list(State(state): State<EdgeState>) -> Result<Response, ApiError> {
    let profiles = state
        .quota
        .list_profiles(tonic::Request::new(ListRequest {}))
        .await?
        .into_inner()
        .profiles;
    let data: Vec<Value> = profiles.iter().map(profile_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "data": data })))
}

pub async fn get(
    State(state): State<EdgeState>,
    ProfileName(name): ProfileName,
) -> Result<Response, ApiError> {
    let record = state
        .quota
        .get_profile(tonic::Request::new(IdRequest { id: name }))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &profile_json(&record)))
}

pub async fn update(
    State(state): State<EdgeState>,
    actor: Actor,
    ProfileName(name): ProfileName,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let patch: ProfilePatch = super::read_json(&state, &headers, body).await?;
    let update = update_of(patch, name)?;
    let record = state
        .quota
        .update_profile(actor.request(update))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &profile_json(&record)))
}

pub async fn delete(
    State(state): State<EdgeState>,
    actor: Actor,
    ProfileName(name): ProfileName,
) -> Result<Response, ApiError> {
    let deleted = state
        .quota
        .delete_profile(actor.request(IdRequest { id: name.clone() }))
        .await?
        .into_inner();
    Ok(super::deleted_response("name", name, &deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(body: Value) -> Result<ProfileUpdate, GatewayError> {
        serde_json::from_value::<ProfilePatch>(body)
            .map_err(|e| e.to_string())
            .map(|patch| update_of(patch, "team-a".into()))
            .unwrap()
    }

    #[test]
    fn create_converts_the_json_and_leaves_judging_it_to_quota() {
        let spec = serde_json::from_value::<NewProfile>(json!({
            "name": "team-a",
            "strategy": "fastest"
        }))
        .map(spec)
        .unwrap();
        assert_eq!(
            (
                spec.name.as_str(),
                spec.description.as_str(),
                spec.strategy.as_str()
            ),
            ("team-a", "", "fastest")
        );
        let shape = |body| serde_json::from_value::<NewProfile>(body).is_err();
        assert!(shape(json!({"name": "team-a", "models": []})));
        assert!(shape(json!({"name": 7})));
    }

    #[test]
    fn patch_clears_only_the_strategy() {
        let update = patch(json!({"strategy": null, "description": "Billing"})).unwrap();
        assert_eq!(update.clear, ["strategy"]);
        assert_eq!(update.strategy, None);
        assert_eq!(update.description.as_deref(), Some("Billing"));

        let update = patch(json!({"strategy": "priority"})).unwrap();
        assert_eq!(update.strategy.as_deref(), Some("priority"));
        assert!(update.clear.is_empty());

        let error = patch(json!({"description": null})).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("description"));
        assert!(serde_json::from_value::<ProfilePatch>(json!({"name": "team-b"})).is_err());
    }

    #[test]
    fn reads_show_every_field() {
        let record = ProfileRecord {
            name: "team-a".into(),
            description: "Search".into(),
            ..ProfileRecord::default()
        };
        let json = profile_json(&record);
        assert_eq!(json["name"], "team-a");
        assert_eq!(json["description"], "Search");
        assert_eq!(json["strategy"], Value::Null);
        assert_eq!(json["created_at"], "1970-01-01T00:00:00Z");
    }
}
