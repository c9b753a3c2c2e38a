//! Routes: admin reads and writes of a profile's model aliases (see
//! [`crate::routing`] for how leases use them).
//!
//! Every route stored has an alias, at least one deployment of a known
//! provider with a positive weight, and fallbacks that never lead back to
//! it through the profile's other routes.

use std::collections::{HashMap, HashSet};

use tollgate_core::{ErrorKind, GatewayError, Provider};
use tollgate_proto::v1;
use tollgate_store::control::{
    Deployment, NewAuditEntry, NewRoute, RoutePatch, RouteRecord, strategy_name,
};

use crate::errors::from_control;
use crate::validate;
use crate::{QuotaService, audit};

/// Optional route fields a `RouteUpdate.clear` may name.
const CLEARABLE: [&str; 1] = ["strategy"];

/// The most deployments one route lists.
const MAX_DEPLOYMENTS: usize = 100;

fn deployment_to_proto(deployment: &Deployment) -> v1::Deployment {
    v1::Deployment {
        provider: deployment.provider.as_str().to_owned(),
        model: deployment.model.clone(),
        weight: Some(deployment.weight),
        priority: Some(deployment.priority),
    }
}

pub(crate) fn to_proto(route: RouteRecord) -> v1::RouteRecord {
    v1::RouteRecord {
        deployments: route.deployments.iter().map(deployment_to_proto).collect(),
        id: route.id,
        alias: route.alias,
        profile: route.profile,
        strategy: route
            .strategy
            .map(strategy_name)
            .unwrap_or_default()
            .to_owned(),
        fallbacks: route.fallbacks,
        enabled: route.enabled,
        created_at: route.created_at,
        updated_at: route.updated_at,
    }
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, format!("route {id:?} not found"))
}

/// A model name fit to be asked for: one entry of [`validate::models`].
fn alias(value: &str) -> Result<String, GatewayError> {
    if value.trim().is_empty() {
        return Err(GatewayError::invalid("alias", "alias is required"));
    }
    let mut names = validate::models("alias", &[value.to_owned()])?;
    names
        .pop()
        .ok_or_else(|| GatewayError::invalid("alias", "alias is required"))
}

fn deployments(values: &[v1::Deployment]) -> Result<Vec<Deployment>, GatewayError> {
    values
        .iter()
        .map(|value| {
            let provider: Provider = value.provider.trim().parse().map_err(|_| {
                let known: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                GatewayError::invalid(
                    "deployments",
                    format!(
                        "unknown provider {:?}; deployments name one of: {}",
                        value.provider.trim(),
                        known.join(", ")
                    ),
                )
            })?;
            Ok(Deployment {
                provider,
                model: value.model.clone(),
                weight: value.weight.unwrap_or(1),
                priority: value.priority.unwrap_or(0),
            })
        })
        .collect()
}

/// Checks and normalises the fields of a route about to be stored (all but
/// its fallbacks' reach, which needs the profile's other routes).
fn checked(route: NewRoute) -> Result<NewRoute, GatewayError> {
    let alias = alias(&route.alias)?;
    if route.deployments.is_empty() {
        return Err(GatewayError::invalid(
            "deployments",
            "a route needs at least one deployment",
        ));
    }
    if route.deployments.len() > MAX_DEPLOYMENTS {
        return Err(GatewayError::invalid(
            "deployments",
            format!("a route lists at most {MAX_DEPLOYMENTS} deployments"),
        ));
    }
    let mut deployments = Vec::with_capacity(route.deployments.len());
    for deployment in route.deployments {
        let model = validate::models("deployments", &[deployment.model])?
            .pop()
            .ok_or_else(|| GatewayError::invalid("deployments", "a deployment needs a model"))?;
        if deployment.weight == 0 {
            return Err(GatewayError::invalid(
                "deployments",
                "a deployment's weight must be positive",
            ));
        }
        deployments.push(Deployment {
            model,
            ..deployment
        });
    }
    let fallbacks = validate::models("fallbacks", &route.fallbacks)?;
    if fallbacks.contains(&alias) {
        return Err(GatewayError::invalid(
            "fallbacks",
            "a route cannot fall back to itself",
        ));
    }
    Ok(NewRoute {
        alias,
        profile: validate::profile("profile", &route.profile)?,
        deployments,
        fallbacks,
        ..route
    })
}

/// The alias of the first route reached twice when following fallbacks
/// from `start` through `fallbacks` (by alias, within one profile); names
/// that are no route's alias end a path.
fn cycle_from<'a>(start: &'a str, fallbacks: &HashMap<&'a str, &'a [String]>) -> Option<&'a str> {
    fn walk<'a>(
        alias: &'a str,
        fallbacks: &HashMap<&'a str, &'a [String]>,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<&'a str> {
        if path.contains(&alias) {
            return Some(alias);
        }
        if done.contains(alias) {
            return None;
        }
        let next = fallbacks.get(alias)?;
        path.push(alias);
        for fallback in next.iter() {
            if let Some(cycle) = walk(fallback, fallbacks, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(alias);
        None
    }
    walk(start, fallbacks, &mut Vec::new(), &mut HashSet::new())
}

/// Refuses `route` (stored as `id`, or new) when its fallbacks would lead
/// back to a route already passed through in its profile.
async fn check_fallbacks(
    service: &QuotaService,
    id: Option<&str>,
    route: &NewRoute,
) -> Result<(), GatewayError> {
    if route.fallbacks.is_empty() {
        return Ok(());
    }
    let stored = service.control.list_routes().await.map_err(from_control)?;
    let mut fallbacks: HashMap<&str, &[String]> = stored
        .iter()
        .filter(|other| other.profile == route.profile && Some(other.id.as_str()) != id)
        .map(|other| (other.alias.as_str(), other.fallbacks.as_slice()))
        .collect();
    fallbacks.insert(route.alias.as_str(), route.fallbacks.as_slice());
    match cycle_from(&route.alias, &fallbacks) {
        Some(alias) => Err(GatewayError::invalid(
            "fallbacks",
            format!("fallbacks must not form a cycle (through {alias:?})"),
        )),
        None => Ok(()),
    }
}

fn new_route(spec: v1::RouteSpec) -> Result<NewRoute, GatewayError> {
    checked(NewRoute {
        alias: spec.alias,
        profile: spec.profile,
        deployments: deployments(&spec.deployments)?,
        strategy: validate::strategy(&spec.strategy)?,
        fallbacks: spec.fallbacks,
        enabled: spec.enabled.unwrap_or(true),
    })
}

async fn insert(
    service: &QuotaService,
    actor: &str,
    route: NewRoute,
) -> Result<RouteRecord, GatewayError> {
    check_fallbacks(service, None, &route).await?;
    let route = service
        .control
        .insert_route(route)
        .await
        .map_err(from_control)?;
    audit::record(service, NewAuditEntry::for_route(actor, "create", &route)).await;
    service.control_changed().await?;
    Ok(route)
}

pub(crate) async fn create(
    service: &QuotaService,
    actor: &str,
    spec: v1::RouteSpec,
) -> Result<v1::RouteRecord, GatewayError> {
    let route = new_route(spec)?;
    insert(service, actor, route).await.map(to_proto)
}

pub(crate) async fn list(service: &QuotaService) -> Result<v1::RouteList, GatewayError> {
    let routes = service.control.list_routes().await.map_err(from_control)?;
    Ok(v1::RouteList {
        routes: routes.into_iter().map(to_proto).collect(),
    })
}

pub(crate) async fn get(service: &QuotaService, id: &str) -> Result<v1::RouteRecord, GatewayError> {
    service
        .control
        .get_route(id)
        .await
        .map_err(from_control)?
        .map(to_proto)
        .ok_or_else(|| not_found(id))
}

fn patch_from(update: &v1::RouteUpdate) -> Result<RoutePatch, GatewayError> {
    let cleared = validate::clear_list(&update.clear, &CLEARABLE)?;
    let strategy = update
        .strategy
        .as_deref()
        .map(validate::strategy_update)
        .transpose()?;
    Ok(RoutePatch {
        alias: update.alias.clone(),
        profile: update.profile.clone(),
        deployments: update
            .deployments
            .as_ref()
            .map(|list| deployments(&list.values))
            .transpose()?,
        strategy: validate::set_or_clear("strategy", strategy, &cleared)?,
        fallbacks: update.fallbacks.as_ref().map(|list| list.values.clone()),
        enabled: update.enabled,
    })
}

pub(crate) async fn update(
    service: &QuotaService,
    actor: &str,
    update: v1::RouteUpdate,
) -> Result<v1::RouteRecord, GatewayError> {
    let patch = patch_from(&update)?;
    let existing = service
        .control
        .get_route(&update.id)
        .await
        .map_err(from_control)?
        .ok_or_else(|| not_found(&update.id))?;
    let next = patch.applied_to(&existing);
    let next = checked(NewRoute {
        alias: next.alias,
        profile: next.profile,
        deployments: next.deployments,
        strategy: next.strategy,
        fallbacks: next.fallbacks,
        enabled: next.enabled,
    })?;
    check_fallbacks(service, Some(&existing.id), &next).await?;
    // Write the normalised values of every field the update names.
    let patch = RoutePatch {
        alias: patch.alias.map(|_| next.alias),
        profile: patch.profile.map(|_| next.profile),
        deployments: patch.deployments.map(|_| next.deployments),
        strategy: patch.strategy,
        fallbacks: patch.fallbacks.map(|_| next.fallbacks),
        enabled: patch.enabled,
    };
    let route = service
        .control
        .update_route(&existing.id, patch)
        .await
        .map_err(from_control)?;
    audit::record(service, NewAuditEntry::for_route(actor, "update", &route)).await;
    service.control_changed().await?;
    Ok(to_proto(route))
}

pub(crate) async fn delete(
    service: &QuotaService,
    actor: &str,
    id: &str,
) -> Result<v1::Deleted, GatewayError> {
    let existing = service.control.get_route(id).await.map_err(from_control)?;
    service
        .control
        .delete_route(id)
        .await
        .map_err(from_control)?;
    if let Some(route) = existing {
        audit::record(service, NewAuditEntry::for_route(actor, "delete", &route)).await;
    }
    service.control_changed().await?;
    Ok(v1::Deleted { id: id.to_owned() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tollgate_store::counters::Strategy;

    fn graph<'a>(edges: &'a [(&'a str, Vec<String>)]) -> HashMap<&'a str, &'a [String]> {
        edges
            .iter()
            .map(|(alias, fallbacks)| (*alias, fallbacks.as_slice()))
            .collect()
    }

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn cycles_are_found_through_other_routes() {
        let edges = [
            ("a", list(&["b", "plain-model"])),
            ("b", list(&["c"])),
            ("c", list(&["a"])),
        ];
        assert!(cycle_from("a", &graph(&edges)).is_some());

        let edges = [
            ("a", list(&["b", "c"])),
            ("b", list(&["c"])),
            ("c", list(&["gpt-4o"])),
        ];
        // Reaching `c` twice along different paths is no cycle.
        assert_eq!(cycle_from("a", &graph(&edges)), None);
    }

    #[test]
    fn specs_are_checked_field_by_field() {
        let spec =
            |deployments: Vec<v1::Deployment>, strategy: &str, fallbacks: &[&str]| v1::RouteSpec {
                alias: "smart".into(),
                profile: String::new(),
                deployments,
                strategy: strategy.into(),
                fallbacks: list(fallbacks),
                enabled: None,
            };
        let mock = || v1::Deployment {
            provider: "mock".into(),
            model: "mock-echo".into(),
            weight: None,
            priority: None,
        };
        let route = new_route(spec(vec![mock()], "round_robin", &["cheap"])).unwrap();
        assert_eq!(route.profile, "default");
        assert_eq!(route.strategy, Some(Strategy::RoundRobin));
        assert_eq!(
            (route.deployments[0].weight, route.deployments[0].priority),
            (1, 0)
        );
        let param = |spec: v1::RouteSpec| new_route(spec).unwrap_err().param;
        let bad_provider = v1::Deployment {
            provider: "nope".into(),
            ..mock()
        };
        assert_eq!(
            param(spec(vec![bad_provider], "", &[])).as_deref(),
            Some("deployments")
        );
        assert_eq!(param(spec(vec![], "", &[])).as_deref(), Some("deployments"));
        let unweighted = v1::Deployment {
            weight: Some(0),
            ..mock()
        };
        assert_eq!(
            param(spec(vec![unweighted], "", &[])).as_deref(),
            Some("deployments")
        );
        assert_eq!(
            param(spec(vec![mock()], "fastest", &[])).as_deref(),
            Some("strategy")
        );
        assert_eq!(
            param(spec(vec![mock()], "", &["smart"])).as_deref(),
            Some("fallbacks")
        );
        let unnamed = v1::RouteSpec {
            alias: " ".into(),
            ..spec(vec![mock()], "", &[])
        };
        assert_eq!(param(unnamed).as_deref(), Some("alias"));
    }
}
