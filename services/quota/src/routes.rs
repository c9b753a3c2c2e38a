//! Routes: admin reads and writes of a profile's model aliases (see
//! [`crate::routing`] for how leases use them).
//!
//! Every route stored has an alias, at least one deployment of a known
//! provider with a positive weight, positive timeouts when it sets any,
//! and three lists of fallbacks (general, context window, content policy),
//! none naming the route itself and none leading back to it through the
//! same list of the profile's other routes.

use std::collections::{HashMap, HashSet};

use tollgate_control_store::{
    Deployment, NewAuditEntry, NewRoute, RoutePatch, RouteRecord, strategy_name,
};
use tollgate_core::{ErrorKind, GatewayError, Provider};
use tollgate_proto::v1;

use crate::QuotaService;
use crate::errors::from_control;
use crate::validate;

/// Optional route fields a `RouteUpdate.clear` may name.
const CLEARABLE: [&str; 3] = ["strategy", "first_byte_timeout_ms", "deadline_ms"];

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
        context_window_fallbacks: route.context_window_fallbacks,
        content_policy_fallbacks: route.content_policy_fallbacks,
        first_byte_timeout_ms: route.first_byte_timeout_ms,
        deadline_ms: route.deadline_ms,
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
    Ok(NewRoute {
        profile: validate::profile("profile", &route.profile)?,
        deployments,
        fallbacks: fallback_list("fallbacks", &route.fallbacks, &alias)?,
        context_window_fallbacks: fallback_list(
            "context_window_fallbacks",
            &route.context_window_fallbacks,
            &alias,
        )?,
        content_policy_fallbacks: fallback_list(
            "content_policy_fallbacks",
            &route.content_policy_fallbacks,
            &alias,
        )?,
        first_byte_timeout_ms: timeout("first_byte_timeout_ms", route.first_byte_timeout_ms)?,
        deadline_ms: timeout("deadline_ms", route.deadline_ms)?,
        alias,
        ..route
    })
}

/// One list of fallbacks (field `param`) of the route `alias`: model names
/// a client could ask for, never the route itself.
fn fallback_list(param: &str, values: &[String], alias: &str) -> Result<Vec<String>, GatewayError> {
    let fallbacks = validate::models(param, values)?;
    if fallbacks.iter().any(|fallback| fallback == alias) {
        return Err(GatewayError::invalid(
            param,
            "a route cannot fall back to itself",
        ));
    }
    Ok(fallbacks)
}

/// A route's timeout in milliseconds: positive when set.
fn timeout(param: &str, value: Option<u32>) -> Result<Option<u32>, GatewayError> {
    match value {
        Some(0) => Err(GatewayError::invalid(
            param,
            format!("{param} must be positive; omit it for the router's own"),
        )),
        other => Ok(other),
    }
}

/// Each list of fallbacks of a route, with its field name; a cycle is
/// looked for within one kind of list at a time.
fn fallback_lists(route: &NewRoute) -> [(&'static str, &[String]); 3] {
    [
        ("fallbacks", &route.fallbacks),
        ("context_window_fallbacks", &route.context_window_fallbacks),
        ("content_policy_fallbacks", &route.content_policy_fallbacks),
    ]
}

fn stored_fallback_list<'a>(route: &'a RouteRecord, param: &str) -> &'a [String] {
    match param {
        "context_window_fallbacks" => &route.context_window_fallbacks,
        "content_policy_fallbacks" => &route.content_policy_fallbacks,
        _ => &route.fallbacks,
    }
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

fn new_route(spec: v1::RouteSpec) -> Result<NewRoute, GatewayError> {
    checked(NewRoute {
        alias: spec.alias,
        profile: spec.profile,
        deployments: deployments(&spec.deployments)?,
        strategy: validate::strategy(&spec.strategy)?,
        fallbacks: spec.fallbacks,
        context_window_fallbacks: spec.context_window_fallbacks,
        content_policy_fallbacks: spec.content_policy_fallbacks,
        first_byte_timeout_ms: spec.first_byte_timeout_ms,
        deadline_ms: spec.deadline_ms,
        enabled: spec.enabled.unwrap_or(true),
    })
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
        context_window_fallbacks: update
            .context_window_fallbacks
            .as_ref()
            .map(|list| list.values.clone()),
        content_policy_fallbacks: update
            .content_policy_fallbacks
            .as_ref()
            .map(|list| list.values.clone()),
        first_byte_timeout_ms: validate::set_or_clear(
            "first_byte_timeout_ms",
            update.first_byte_timeout_ms,
            &cleared,
        )?,
        deadline_ms: validate::set_or_clear("deadline_ms", update.deadline_ms, &cleared)?,
        enabled: update.enabled,
    })
}

impl QuotaService {
    /// Refuses `route` (stored as `id`, or new) when one of its lists of
    /// fallbacks would lead back, through the same list of the profile's other
    /// routes, to a route already passed through.
    async fn check_route_fallbacks(
        &self,
        id: Option<&str>,
        route: &NewRoute,
    ) -> Result<(), GatewayError> {
        let lists = fallback_lists(route);
        if lists.iter().all(|(_, list)| list.is_empty()) {
            return Ok(());
        }
        let stored = self.control.list_routes().await.map_err(from_control)?;
        let others: Vec<&RouteRecord> = stored
            .iter()
            .filter(|other| other.profile == route.profile && Some(other.id.as_str()) != id)
            .collect();
        for (param, list) in lists {
            if list.is_empty() {
                continue;
            }
            let mut fallbacks: HashMap<&str, &[String]> = others
                .iter()
                .map(|other| (other.alias.as_str(), stored_fallback_list(other, param)))
                .collect();
            fallbacks.insert(route.alias.as_str(), list);
            if let Some(alias) = cycle_from(&route.alias, &fallbacks) {
                return Err(GatewayError::invalid(
                    param,
                    format!("{param} must not form a cycle (through {alias:?})"),
                ));
            }
        }
        Ok(())
    }

    async fn insert_route(
        &self,
        actor: &str,
        route: NewRoute,
    ) -> Result<RouteRecord, GatewayError> {
        self.check_route_fallbacks(None, &route).await?;
        let route = self
            .control
            .insert_route(route)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_route(actor, "create", &route))
            .await;
        self.control_changed().await?;
        Ok(route)
    }

    pub(crate) async fn create_route(
        &self,
        actor: &str,
        spec: v1::RouteSpec,
    ) -> Result<v1::RouteRecord, GatewayError> {
        let route = new_route(spec)?;
        self.insert_route(actor, route).await.map(to_proto)
    }

    pub(crate) async fn list_routes(&self) -> Result<v1::RouteList, GatewayError> {
        let routes = self.control.list_routes().await.map_err(from_control)?;
        Ok(v1::RouteList {
            routes: routes.into_iter().map(to_proto).collect(),
        })
    }

    pub(crate) async fn get_route(&self, id: &str) -> Result<v1::RouteRecord, GatewayError> {
        self.control
            .get_route(id)
            .await
            .map_err(from_control)?
            .map(to_proto)
            .ok_or_else(|| not_found(id))
    }

    pub(crate) async fn update_route(
        &self,
        actor: &str,
        update: v1::RouteUpdate,
    ) -> Result<v1::RouteRecord, GatewayError> {
        let patch = patch_from(&update)?;
        let existing = self
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
            context_window_fallbacks: next.context_window_fallbacks,
            content_policy_fallbacks: next.content_policy_fallbacks,
            first_byte_timeout_ms: next.first_byte_timeout_ms,
            deadline_ms: next.deadline_ms,
            enabled: next.enabled,
        })?;
        self.check_route_fallbacks(Some(&existing.id), &next)
            .await?;
        // Write the normalised values of every field the update names.
        let patch = RoutePatch {
            alias: patch.alias.map(|_| next.alias),
            profile: patch.profile.map(|_| next.profile),
            deployments: patch.deployments.map(|_| next.deployments),
            strategy: patch.strategy,
            fallbacks: patch.fallbacks.map(|_| next.fallbacks),
            context_window_fallbacks: patch
                .context_window_fallbacks
                .map(|_| next.context_window_fallbacks),
            content_policy_fallbacks: patch
                .content_policy_fallbacks
                .map(|_| next.content_policy_fallbacks),
            first_byte_timeout_ms: patch.first_byte_timeout_ms,
            deadline_ms: patch.deadline_ms,
            enabled: patch.enabled,
        };
        let route = self
            .control
            .update_route(&existing.id, patch)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_route(actor, "update", &route))
            .await;
        self.control_changed().await?;
        Ok(to_proto(route))
    }

    pub(crate) async fn delete_route(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<v1::Deleted, GatewayError> {
        let existing = self.control.get_route(id).await.map_err(from_control)?;
        self.control.delete_route(id).await.map_err(from_control)?;
        if let Some(route) = existing {
            self.record_audit(NewAuditEntry::for_route(actor, "delete", &route))
                .await;
        }
        self.control_changed().await?;
        Ok(v1::Deleted { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use tollgate_counters::Strategy;

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
                ..v1::RouteSpec::default()
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

    #[test]
    fn failure_fallbacks_and_timeouts_are_checked_like_the_rest() {
        let spec = || v1::RouteSpec {
            alias: "smart".into(),
            deployments: vec![v1::Deployment {
                provider: "mock".into(),
                model: "mock-echo".into(),
                weight: None,
                priority: None,
            }],
            context_window_fallbacks: list(&["long", " longer "]),
            content_policy_fallbacks: list(&["lenient"]),
            first_byte_timeout_ms: Some(1_500),
            deadline_ms: Some(30_000),
            ..v1::RouteSpec::default()
        };
        let route = new_route(spec()).unwrap();
        assert_eq!(route.context_window_fallbacks, ["long", "longer"]);
        assert_eq!(route.content_policy_fallbacks, ["lenient"]);
        assert_eq!(
            (route.first_byte_timeout_ms, route.deadline_ms),
            (Some(1_500), Some(30_000))
        );
        let param = |spec: v1::RouteSpec| new_route(spec).unwrap_err().param;
        let to_itself = v1::RouteSpec {
            context_window_fallbacks: list(&["long", "smart"]),
            ..spec()
        };
        assert_eq!(
            param(to_itself).as_deref(),
            Some("context_window_fallbacks")
        );
        let empty_name = v1::RouteSpec {
            content_policy_fallbacks: list(&[""]),
            ..spec()
        };
        assert!(
            param(empty_name)
                .unwrap()
                .starts_with("content_policy_fallbacks")
        );
        let no_time = v1::RouteSpec {
            first_byte_timeout_ms: Some(0),
            ..spec()
        };
        assert_eq!(param(no_time).as_deref(), Some("first_byte_timeout_ms"));
        let no_deadline = v1::RouteSpec {
            deadline_ms: Some(0),
            ..spec()
        };
        assert_eq!(param(no_deadline).as_deref(), Some("deadline_ms"));
    }

    #[test]
    fn each_kind_of_fallback_list_is_its_own_graph() {
        let route = new_route(v1::RouteSpec {
            alias: "a".into(),
            deployments: vec![v1::Deployment {
                provider: "mock".into(),
                model: "mock-echo".into(),
                weight: None,
                priority: None,
            }],
            fallbacks: list(&["b"]),
            context_window_fallbacks: list(&["c"]),
            ..v1::RouteSpec::default()
        })
        .unwrap();
        let lists = fallback_lists(&route);
        assert_eq!(lists[0], ("fallbacks", &list(&["b"])[..]));
        assert_eq!(lists[1], ("context_window_fallbacks", &list(&["c"])[..]));
        assert!(lists[2].1.is_empty());
        let stored = RouteRecord {
            id: "route_b".into(),
            alias: "b".into(),
            profile: "default".into(),
            deployments: Vec::new(),
            strategy: None,
            fallbacks: list(&["x"]),
            context_window_fallbacks: list(&["a"]),
            content_policy_fallbacks: list(&["y"]),
            first_byte_timeout_ms: None,
            deadline_ms: None,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(stored_fallback_list(&stored, "fallbacks"), ["x"]);
        assert_eq!(
            stored_fallback_list(&stored, "context_window_fallbacks"),
            ["a"]
        );
        assert_eq!(
            stored_fallback_list(&stored, "content_policy_fallbacks"),
            ["y"]
        );
    }
}
