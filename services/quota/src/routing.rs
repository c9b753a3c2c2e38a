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

use std::collections::HashSet;
use std::sync::Arc;

use tollgate_core::ModelRef;
use tollgate_store::control::RouteRecord;
use tollgate_store::counters::Strategy;

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
    /// Every account of the profile that serves it, leasable or not.
    pub members: Vec<Member<'a>>,
}

/// The targets a lease for `model` in `profile` tries, in order: one for a
/// plain model, the route's and then its fallbacks' for an alias. Each
/// route is tried at most once.
pub(crate) fn plan<'a>(snapshot: &'a Snapshot, profile: &str, model: &ModelRef) -> Vec<Target<'a>> {
    let mut targets = Vec::new();
    let mut visited = HashSet::new();
    add_targets(snapshot, profile, model, &mut visited, &mut targets);
    targets
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
        members,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use tollgate_core::Provider;
    use tollgate_store::control::{AccountRecord, Deployment};

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

    #[test]
    fn plain_models_use_the_accounts_own_settings() {
        let snapshot = snapshot(Vec::new());
        let targets = plan(&snapshot, "default", &model("gpt-4o"));
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].strategy, None);
        assert_eq!(
            ids(&targets[0]),
            [("acct_openai".into(), "gpt-4o".into(), 7, 9)]
        );
        assert!(
            plan(&snapshot, "team-a", &model("gpt-4o"))[0]
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
        let targets = plan(&snapshot, "default", &model("smart"));
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
            plan(&snapshot, "team-a", &model("smart"))[0]
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
        let targets = plan(&snapshot, "default", &model("fast"));
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
        let names: Vec<String> = plan(&snapshot, "default", &model("smart"))
            .into_iter()
            .map(|target| target.name)
            .collect();
        assert_eq!(names, ["smart", "cheap", "local", "mock-echo"]);
    }
}
