//! Which accounts a lease may choose from, and what each sends upstream.
//!
//! A model name that is the alias of an enabled route of the request's
//! profile is served by the route's deployments: the profile's accounts of
//! a deployment's provider that serve its model, with the deployment's
//! priority and weight (not the account's), sending the deployment's model
//! upstream. An account that serves several deployments takes the first
//! one listed. When none of them can serve, the route's fallbacks are
//! tried in order, each a route alias of the profile (followed through its
//! own fallbacks) or else a plain model name. Any other name is matched
//! against the accounts' model lists ([`serves`]) as one target.
//!
//! A lease asked for a class of failure ([`FallbackClass`]: the prompt
//! outgrew the context window, the content policy refused it) is served by
//! the route's fallbacks of that class instead, in order, each followed
//! through its own fallbacks like above; the route itself and the
//! fallbacks that already failed this way for the request are left out.

use std::collections::HashSet;
use std::sync::Arc;

use tollgate_control_store::RouteRecord;
use tollgate_core::ModelRef;
use tollgate_counters::Strategy;
use tollgate_proto::v1::FallbackClass;

use crate::resolve::serves;
use crate::snapshot::{AccountEntry, Snapshot};

/// One account a target may lease, and how.
pub(crate) struct Member<'a> {
    pub entry: &'a Arc<AccountEntry>,
    /// The model name sent upstream.
    pub upstream_model: String,
    pub priority: i32,
    pub weight: u32,
}

/// One set of accounts tried together: a route's deployments or a plain
/// model's serving accounts.
pub(crate) struct Target<'a> {
    /// The name clients use for it (the alias or the qualified model), which
    /// also names its `round_robin` rotation.
    pub name: String,
    /// The route's strategy; `None` means the profile's.
    pub strategy: Option<Strategy>,
    /// The route's first-byte timeout; `None` for a plain model or a route
    /// that sets none.
    pub first_byte_timeout_ms: Option<u32>,
    /// Every account of the profile that serves it, leasable or not.
    pub members: Vec<Member<'a>>,
}

/// The targets a lease for `model` in `profile` tries, in order: one for a
/// plain model, the route's and then its fallbacks' for an alias. Each
/// route is tried at most once. For a failure `class`, the route's
/// fallbacks of that class but those in `excluded`, and none for a plain
/// model or a route without such fallbacks.
pub(crate) fn plan<'a>(
    snapshot: &'a Snapshot,
    profile: &str,
    model: &ModelRef,
    class: FallbackClass,
    excluded: &[String],
) -> Vec<Target<'a>> {
    let mut targets = Vec::new();
    let mut visited = HashSet::new();
    if class == FallbackClass::Unspecified {
        add_targets(snapshot, profile, model, &mut visited, &mut targets);
        return targets;
    }
    let Some(route) = snapshot.route(profile, &model.qualified()) else {
        return targets;
    };
    visited.insert(route.alias.clone());
    visited.extend(excluded.iter().cloned());
    for fallback in class_fallbacks(route, class) {
        if let Some(fallback) = ModelRef::parse(fallback) {
            add_targets(snapshot, profile, &fallback, &mut visited, &mut targets);
        }
    }
    targets
}

/// The route's fallbacks for failures of `class` (none for the
/// unspecified class, whose fallbacks are the route's general ones).
pub(crate) fn class_fallbacks(route: &RouteRecord, class: FallbackClass) -> &[String] {
    match class {
        FallbackClass::Unspecified => &[],
        FallbackClass::ContextWindow => &route.context_window_fallbacks,
        FallbackClass::ContentPolicy => &route.content_policy_fallbacks,
    }
}

/// The failure classes `route` has fallbacks for.
pub(crate) fn fallback_classes(route: &RouteRecord) -> Vec<FallbackClass> {
    [FallbackClass::ContextWindow, FallbackClass::ContentPolicy]
        .into_iter()
        .filter(|class| !class_fallbacks(route, *class).is_empty())
        .collect()
}

fn add_targets<'a>(
    snapshot: &'a Snapshot,
    profile: &str,
    model: &ModelRef,
    visited: &mut HashSet<String>,
    targets: &mut Vec<Target<'a>>,
) {
    let name = model.qualified();
    if !visited.insert(name.clone()) {
        return;
    }
    let Some(route) = snapshot.route(profile, &name) else {
        targets.push(plain_target(snapshot, profile, model));
        return;
    };
    targets.push(route_target(snapshot, route));
    for fallback in &route.fallbacks {
        if let Some(fallback) = ModelRef::parse(fallback) {
            add_targets(snapshot, profile, &fallback, visited, targets);
        }
    }
}

fn plain_target<'a>(snapshot: &'a Snapshot, profile: &str, model: &ModelRef) -> Target<'a> {
    Target {
        name: model.qualified(),
        strategy: None,
        first_byte_timeout_ms: None,
        members: snapshot
            .accounts
            .iter()
            .filter(|entry| entry.record.profile == profile && serves(&entry.record, model))
            .map(|entry| Member {
                entry,
                upstream_model: model.model.clone(),
                priority: entry.record.priority,
                weight: entry.record.weight,
            })
            .collect(),
    }
}

/// The accounts of `route`'s profile that serve one of its deployments.
pub(crate) fn route_target<'a>(snapshot: &'a Snapshot, route: &RouteRecord) -> Target<'a> {
    let deployments: Vec<(ModelRef, i32, u32)> = route
        .deployments
        .iter()
        .map(|deployment| {
            (
                ModelRef {
                    provider: Some(deployment.provider),
                    model: deployment.model.clone(),
                },
                deployment.priority,
                deployment.weight,
            )
        })
        .collect();
    let members = snapshot
        .accounts
        .iter()
        .filter(|entry| entry.record.profile == route.profile)
        .filter_map(|entry| {
            let (model, priority, weight) = deployments
                .iter()
                .find(|(model, _, _)| serves(&entry.record, model))?;
            Some(Member {
                entry,
                upstream_model: model.model.clone(),
                priority: *priority,
                weight: *weight,
            })
        })
        .collect();
    Target {
        name: route.alias.clone(),
        strategy: route.strategy,
        first_byte_timeout_ms: route.first_byte_timeout_ms,
        members,
    }
}

#[cfg(test)]
mod tests {

    use std::collections::HashMap;

    use tollgate_control_store::{AccountRecord, Deployment};
    use tollgate_core::Provider;

    use super::*;

    fn account(id: &str, provider: Provider, models: &[&str]) -> Arc<AccountEntry> {
        Arc::new(AccountEntry {
            record: AccountRecord {
                id: id.into(),
                provider,
                name: id.into(),
                email: None,
                sealed_secret: None,
                base_url: None,
                profile: "default".into(),
                models: models.iter().map(|m| (*m).to_owned()).collect(),
                daily_token_limit: None,
                rpm: None,
                tpm: None,
                priority: 7,
                weight: 9,
                strict_cap: false,
                health_probe: false,
                settings: None,
                prices: None,
                enabled: true,
                disabled_reason: None,
                created_at: 0,
                updated_at: 0,
            },
            credential: None,
            leasable: true,
        })
    }

    fn route(alias: &str, deployments: &[(Provider, &str)], fallbacks: &[&str]) -> RouteRecord {
        RouteRecord {
            id: format!("route_{alias}"),
            alias: alias.into(),
            profile: "default".into(),
            deployments: deployments
                .iter()
                .enumerate()
                .map(|(at, (provider, model))| Deployment {
                    provider: *provider,
                    model: (*model).into(),
                    weight: u32::try_from(at).unwrap() + 1,
                    priority: -1,
                })
                .collect(),
            strategy: Some(Strategy::Priority),
            fallbacks: fallbacks.iter().map(|f| (*f).to_owned()).collect(),
            context_window_fallbacks: Vec::new(),
            content_policy_fallbacks: Vec::new(),
            first_byte_timeout_ms: None,
            deadline_ms: None,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn snapshot(routes: Vec<RouteRecord>) -> Snapshot {
        let mut by_alias = HashMap::new();
        for route in routes {
            by_alias.insert(route.alias.clone(), route);
        }
        Snapshot {
            accounts: vec![
                account("acct_openai", Provider::OpenAi, &["gpt-4o", "gpt-4o-mini"]),
                account("acct_any", Provider::OpenAi, &[]),
                account("acct_mock", Provider::Mock, &["mock-echo"]),
            ],
            routes: HashMap::from([("default".to_owned(), by_alias)]),
            key_limits: HashMap::new(),
            ..Snapshot::default()
        }
    }

    fn ids(target: &Target<'_>) -> Vec<(String, String, i32, u32)> {
        target
            .members
            .iter()
            .map(|member| {
                (
                    member.entry.record.id.clone(),
                    member.upstream_model.clone(),
                    member.priority,
                    member.weight,
                )
            })
            .collect()
    }

    fn model(name: &str) -> ModelRef {
        ModelRef::parse(name).unwrap()
    }

    /// The plan of a first lease (no failure class).
    fn plan_for<'a>(snapshot: &'a Snapshot, profile: &str, model: &ModelRef) -> Vec<Target<'a>> {
        plan(snapshot, profile, model, FallbackClass::Unspecified, &[])
    }

    fn names(targets: Vec<Target<'_>>) -> Vec<String> {
        targets.into_iter().map(|target| target.name).collect()
    }

    #[test]
    fn plain_models_use_the_accounts_own_settings() {
        let snapshot = snapshot(Vec::new());
        let targets = plan_for(&snapshot, "default", &model("gpt-4o"));
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].strategy, None);
        assert_eq!(
            ids(&targets[0]),
            [("acct_openai".into(), "gpt-4o".into(), 7, 9)]
        );
        assert!(
            plan_for(&snapshot, "team-a", &model("gpt-4o"))[0]
                .members
                .is_empty()
        );
    }

    #[test]
    fn aliases_map_to_deployments_with_their_weights() {
        let snapshot = snapshot(vec![route(
            "smart",
            &[(Provider::Mock, "mock-echo"), (Provider::OpenAi, "gpt-4o")],
            &[],
        )]);
        let targets = plan_for(&snapshot, "default", &model("smart"));
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].strategy, Some(Strategy::Priority));
        assert_eq!(
            ids(&targets[0]),
            [
                ("acct_openai".into(), "gpt-4o".into(), -1, 2),
                ("acct_any".into(), "gpt-4o".into(), -1, 2),
                ("acct_mock".into(), "mock-echo".into(), -1, 1),
            ]
        );
        // Another profile has no such route.
        assert!(
            plan_for(&snapshot, "team-a", &model("smart"))[0]
                .members
                .is_empty()
        );
    }

    #[test]
    fn an_account_takes_the_first_deployment_it_serves() {
        let snapshot = snapshot(vec![route(
            "fast",
            &[(Provider::OpenAi, "o3"), (Provider::OpenAi, "gpt-4o-mini")],
            &[],
        )]);
        let targets = plan_for(&snapshot, "default", &model("fast"));
        assert_eq!(
            ids(&targets[0]),
            [
                ("acct_openai".into(), "gpt-4o-mini".into(), -1, 2),
                ("acct_any".into(), "o3".into(), -1, 1),
            ]
        );
    }

    #[test]
    fn fallbacks_follow_in_order_once_each() {
        let snapshot = snapshot(vec![
            route(
                "smart",
                &[(Provider::Anthropic, "claude")],
                &["cheap", "mock-echo"],
            ),
            route(
                "cheap",
                &[(Provider::OpenAi, "gpt-4o-mini")],
                &["smart", "local"],
            ),
        ]);
        let names: Vec<String> = plan_for(&snapshot, "default", &model("smart"))
            .into_iter()
            .map(|target| target.name)
            .collect();
        assert_eq!(names, ["smart", "cheap", "local", "mock-echo"]);
    }

    fn with_class_fallbacks(
        route: RouteRecord,
        context_window: &[&str],
        content_policy: &[&str],
    ) -> RouteRecord {
        RouteRecord {
            context_window_fallbacks: context_window.iter().map(|f| (*f).to_owned()).collect(),
            content_policy_fallbacks: content_policy.iter().map(|f| (*f).to_owned()).collect(),
            first_byte_timeout_ms: Some(1_500),
            ..route
        }
    }

    #[test]
    fn a_failure_class_plans_the_routes_fallbacks_of_that_class() {
        let snapshot = snapshot(vec![
            with_class_fallbacks(
                route("smart", &[(Provider::OpenAi, "gpt-4o-mini")], &["cheap"]),
                &["long", "smart", "mock-echo"],
                &["lenient"],
            ),
            route("long", &[(Provider::OpenAi, "gpt-4o")], &["longer"]),
            route("longer", &[(Provider::Mock, "mock-echo")], &[]),
            route("lenient", &[(Provider::Mock, "mock-echo")], &[]),
            route("cheap", &[(Provider::OpenAi, "gpt-4o-mini")], &[]),
        ]);
        let smart = model("smart");
        let window = |excluded: &[String]| {
            names(plan(
                &snapshot,
                "default",
                &smart,
                FallbackClass::ContextWindow,
                excluded,
            ))
        };
        // Each followed through its own fallbacks; never back to the route
        // itself, and never to its general fallbacks.
        assert_eq!(window(&[]), ["long", "longer", "mock-echo"]);
        assert_eq!(window(&["long".to_owned()]), ["mock-echo"]);
        let policy = plan(
            &snapshot,
            "default",
            &smart,
            FallbackClass::ContentPolicy,
            &[],
        );
        assert_eq!(names(policy), ["lenient"]);
        // A route without such fallbacks, and a plain model, have none.
        let cheap = model("cheap");
        assert!(
            plan(
                &snapshot,
                "default",
                &cheap,
                FallbackClass::ContentPolicy,
                &[]
            )
            .is_empty()
        );
        let plain = model("gpt-4o");
        assert!(
            plan(
                &snapshot,
                "default",
                &plain,
                FallbackClass::ContextWindow,
                &[]
            )
            .is_empty()
        );
    }

    #[test]
    fn targets_carry_their_routes_first_byte_timeout() {
        let snapshot = snapshot(vec![with_class_fallbacks(
            route("smart", &[(Provider::OpenAi, "gpt-4o")], &["mock-echo"]),
            &[],
            &[],
        )]);
        let targets = plan_for(&snapshot, "default", &model("smart"));
        let timeouts: Vec<Option<u32>> = targets
            .iter()
            .map(|target| target.first_byte_timeout_ms)
            .collect();
        assert_eq!(timeouts, [Some(1_500), None]);
    }

    #[test]
    fn a_route_names_the_classes_it_has_fallbacks_for() {
        let plain = route("plain", &[(Provider::Mock, "mock-echo")], &["other"]);
        assert!(fallback_classes(&plain).is_empty());
        let policy = with_class_fallbacks(plain.clone(), &[], &["lenient"]);
        assert_eq!(fallback_classes(&policy), [FallbackClass::ContentPolicy]);
        let both = with_class_fallbacks(plain, &["long"], &["lenient"]);
        assert_eq!(
            fallback_classes(&both),
            [FallbackClass::ContextWindow, FallbackClass::ContentPolicy]
        );
    }
}
