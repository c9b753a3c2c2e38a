//! `/admin/v1/routes`: a profile's model aliases, each mapped to ordered
//! deployments (`provider`, `model`, `weight`, `priority`) with a routing
//! `strategy`, `fallbacks`, `context_window_fallbacks`,
//! `content_policy_fallbacks`, and its own `first_byte_timeout_ms` and
//! `deadline_ms`.
//!
//! Only the JSON is checked here (field names and types); what makes a
//! route valid (known providers, at least one deployment, a known strategy,
//! fallbacks without a cycle, an alias free in its profile) is decided by
//! quota, whose errors name the same fields as this API.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tollgate_admin_api::{Deployment, NewRoute, Route, RoutePatch};
use tollgate_core::GatewayError;
use tollgate_proto::v1::{
    self as proto, DeploymentList, IdRequest, ListRequest, RouteRecord, RouteSpec, RouteUpdate,
    StringList,
};

use super::fields::{self, Clears};
use super::{Actor, ObjectId};
use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

fn deployments(values: Vec<Deployment>) -> Vec<proto::Deployment> {
    values
        .into_iter()
        .map(|deployment| proto::Deployment {
            provider: deployment.provider,
            model: deployment.model,
            weight: deployment.weight,
            priority: deployment.priority,
        })
        .collect()
}

/// The spec quota is asked to create from a `POST` body. Absent strings
/// are sent empty, which quota reads as unset (the default profile, the
/// profile's strategy).
pub fn spec(input: NewRoute) -> RouteSpec {
    RouteSpec {
        alias: input.alias,
        profile: input.profile.unwrap_or_default(),
        deployments: deployments(input.deployments),
        strategy: input.strategy.unwrap_or_default(),
        fallbacks: input.fallbacks,
        enabled: input.enabled,
        context_window_fallbacks: input.context_window_fallbacks,
        content_policy_fallbacks: input.content_policy_fallbacks,
        first_byte_timeout_ms: input.first_byte_timeout_ms,
        deadline_ms: input.deadline_ms,
    }
}

/// The update quota is asked to make from a PATCH body: `null` clears the
/// strategy (back to the profile's) or a timeout (back to the router's),
/// and is refused in the other fields.
pub fn update_of(patch: RoutePatch, id: String) -> Result<RouteUpdate, GatewayError> {
    let mut clears = Clears::default();
    let update = RouteUpdate {
        id,
        alias: fields::not_null(patch.alias, "alias")?,
        profile: fields::not_null(patch.profile, "profile")?,
        deployments: fields::not_null(patch.deployments, "deployments")?.map(|values| {
            DeploymentList {
                values: deployments(values),
            }
        }),
        strategy: clears.take(patch.strategy, "strategy"),
        fallbacks: fields::not_null(patch.fallbacks, "fallbacks")?
            .map(|values| StringList { values }),
        context_window_fallbacks: fields::not_null(
            patch.context_window_fallbacks,
            "context_window_fallbacks",
        )?
        .map(|values| StringList { values }),
        content_policy_fallbacks: fields::not_null(
            patch.content_policy_fallbacks,
            "content_policy_fallbacks",
        )?
        .map(|values| StringList { values }),
        first_byte_timeout_ms: clears.take(patch.first_byte_timeout_ms, "first_byte_timeout_ms"),
        deadline_ms: clears.take(patch.deadline_ms, "deadline_ms"),
        enabled: fields::not_null(patch.enabled, "enabled")?,
        clear: Vec::new(),
    };
    Ok(RouteUpdate {
        clear: clears.0,
        ..update
    })
}

/// A route as the admin API shows it; `strategy` is `null` when the route
/// uses its profile's, a timeout `null` when it uses the router's, and
/// each deployment has its weight and priority.
pub fn route(record: &RouteRecord) -> Route {
    Route {
        id: record.id.clone(),
        alias: record.alias.clone(),
        profile: record.profile.clone(),
        deployments: record
            .deployments
            .iter()
            .map(|deployment| Deployment {
                provider: deployment.provider.clone(),
                model: deployment.model.clone(),
                weight: Some(deployment.weight.unwrap_or(1)),
                priority: Some(deployment.priority.unwrap_or(0)),
            })
            .collect(),
        strategy: (!record.strategy.is_empty()).then(|| record.strategy.clone()),
        fallbacks: record.fallbacks.clone(),
        context_window_fallbacks: record.context_window_fallbacks.clone(),
        content_policy_fallbacks: record.content_policy_fallbacks.clone(),
        first_byte_timeout_ms: record.first_byte_timeout_ms,
        deadline_ms: record.deadline_ms,
        enabled: record.enabled,
        created_at: rfc3339::format_secs(record.created_at),
        updated_at: rfc3339::format_secs(record.updated_at),
    }
}

/// [`route`] as JSON.
pub fn route_json(record: &RouteRecord) -> Value {
    serde_json::to_value(route(record)).unwrap_or_default()
}

pub async fn create(
    State(state): State<EdgeState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let input: NewRoute = super::read_json(&state, &headers, body).await?;
    let record = state
        .quota
        .create_route(actor.request(spec(input)))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::CREATED, &route_json(&record)))
}

pub async fn list(State(state): State<EdgeState>) -> Result<Response, ApiError> {
    let routes = state
        .quota
        .list_routes(tonic::Request::new(ListRequest {}))
        .await?
        .into_inner()
        .routes;
    let data: Vec<Value> = routes.iter().map(route_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "data": data })))
}

pub async fn get(
    State(state): State<EdgeState>,
    ObjectId(id): ObjectId,
) -> Result<Response, ApiError> {
    let record = state
        .quota
        .get_route(tonic::Request::new(IdRequest { id }))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &route_json(&record)))
}

pub async fn update(
    State(state): State<EdgeState>,
    actor: Actor,
    ObjectId(id): ObjectId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let patch: RoutePatch = super::read_json(&state, &headers, body).await?;
    let update = update_of(patch, id)?;
    let record = state
        .quota
        .update_route(actor.request(update))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &route_json(&record)))
}

pub async fn delete(
    State(state): State<EdgeState>,
    actor: Actor,
    ObjectId(id): ObjectId,
) -> Result<Response, ApiError> {
    let deleted = state
        .quota
        .delete_route(actor.request(IdRequest { id: id.clone() }))
        .await?
        .into_inner();
    Ok(super::deleted_response("id", id, &deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_route(body: Value) -> RouteSpec {
        serde_json::from_value::<NewRoute>(body)
            .map_err(|e| e.to_string())
            .map(spec)
            .unwrap()
    }

    fn patch(body: Value) -> Result<RouteUpdate, GatewayError> {
        serde_json::from_value::<RoutePatch>(body)
            .map_err(|e| e.to_string())
            .map(|patch| update_of(patch, "route_1".into()))
            .unwrap()
    }

    #[test]
    fn create_converts_the_json_and_leaves_judging_it_to_quota() {
        let spec = new_route(json!({
            "alias": "smart",
            "deployments": [
                {"provider": "openai", "model": "gpt-4o", "weight": 3},
                {"provider": "nope", "model": "x", "priority": -1}
            ],
            "strategy": "weighted",
            "fallbacks": ["cheap"],
            "context_window_fallbacks": ["long"],
            "content_policy_fallbacks": ["lenient", "kind"],
            "first_byte_timeout_ms": 1500,
            "deadline_ms": 30000
        }));
        assert_eq!(spec.context_window_fallbacks, ["long"]);
        assert_eq!(spec.content_policy_fallbacks, ["lenient", "kind"]);
        assert_eq!(
            (spec.first_byte_timeout_ms, spec.deadline_ms),
            (Some(1_500), Some(30_000))
        );
        assert_eq!(spec.alias, "smart");
        assert_eq!(spec.profile, "");
        assert_eq!(spec.deployments[0].weight, Some(3));
        assert_eq!(spec.deployments[0].priority, None);
        assert_eq!(spec.deployments[1].provider, "nope");
        assert_eq!(spec.strategy, "weighted");
        assert_eq!(spec.fallbacks, ["cheap"]);
        assert_eq!(spec.enabled, None);

        let shape = |body| serde_json::from_value::<NewRoute>(body).is_err();
        assert!(shape(json!({"alias": "a", "model": "x"})));
        assert!(shape(
            json!({"deployments": [{"provider": "mock", "region": "eu"}]})
        ));
        assert!(shape(json!({"deployments": [{"weight": -1}]})));
        assert!(shape(json!({"fallbacks": "cheap"})));
        assert!(shape(json!({"deadline_ms": -1})));
        assert!(shape(json!({"first_byte_timeout_ms": "1s"})));
    }

    #[test]
    fn patch_clears_only_the_strategy_and_the_timeouts() {
        let update = patch(json!({"strategy": null, "enabled": false})).unwrap();
        assert_eq!(update.clear, ["strategy"]);
        assert_eq!(update.strategy, None);
        assert_eq!(update.enabled, Some(false));

        let update = patch(json!({"first_byte_timeout_ms": null, "deadline_ms": 9000})).unwrap();
        assert_eq!(update.clear, ["first_byte_timeout_ms"]);
        assert_eq!(
            (update.first_byte_timeout_ms, update.deadline_ms),
            (None, Some(9_000))
        );
        let update =
            patch(json!({"deadline_ms": null, "context_window_fallbacks": ["long"]})).unwrap();
        assert_eq!(update.clear, ["deadline_ms"]);
        assert_eq!(update.context_window_fallbacks.unwrap().values, ["long"]);

        let update = patch(json!({
            "deployments": [{"provider": "mock", "model": "mock-echo"}],
            "fallbacks": []
        }))
        .unwrap();
        assert_eq!(update.deployments.unwrap().values[0].model, "mock-echo");
        assert!(update.fallbacks.unwrap().values.is_empty());
        assert!(update.clear.is_empty());

        for field in [
            "alias",
            "profile",
            "deployments",
            "fallbacks",
            "context_window_fallbacks",
            "content_policy_fallbacks",
            "enabled",
        ] {
            let error = patch(json!({ field: null })).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(field));
        }
    }

    #[test]
    fn reads_show_every_field() {
        let record = RouteRecord {
            id: "route_1".into(),
            alias: "smart".into(),
            profile: "default".into(),
            deployments: vec![proto::Deployment {
                provider: "mock".into(),
                model: "mock-echo".into(),
                weight: Some(2),
                priority: Some(1),
            }],
            ..RouteRecord::default()
        };
        let json = route_json(&record);
        assert_eq!(
            json["deployments"],
            json!([{"provider": "mock", "model": "mock-echo", "weight": 2, "priority": 1}])
        );
        assert_eq!(json["strategy"], Value::Null);
        assert_eq!(json["first_byte_timeout_ms"], Value::Null);
        assert_eq!(json["context_window_fallbacks"], json!([]));
        assert_eq!(json["updated_at"], "1970-01-01T00:00:00Z");
        let timed = route_json(&RouteRecord {
            deadline_ms: Some(20_000),
            content_policy_fallbacks: vec!["lenient".into()],
            ..record
        });
        assert_eq!(timed["deadline_ms"], 20_000);
        assert_eq!(timed["content_policy_fallbacks"], json!(["lenient"]));
    }
}
