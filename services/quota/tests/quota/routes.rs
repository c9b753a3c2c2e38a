//! Routes: admin writes with their checks, and leases for an alias served
//! by the route's deployments, its strategy and its fallbacks.

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    AccountSpec, AuditQuery, Deployment, FallbackClass, IdRequest, LeaseRequest, ListModelsRequest,
    ListRequest, RouteRecord, RouteSpec, RouteUpdate, StringList,
};
use tonic::Request;

use crate::{TestApp, gateway_error, lease_request, mock_spec, spawn_app};

fn mock(model: &str, weight: u32, priority: i32) -> Deployment {
    Deployment {
        provider: "mock".into(),
        model: model.into(),
        weight: Some(weight),
        priority: Some(priority),
    }
}

fn route(alias: &str, deployments: Vec<Deployment>, fallbacks: &[&str]) -> RouteSpec {
    RouteSpec {
        alias: alias.into(),
        deployments,
        fallbacks: fallbacks.iter().map(|f| (*f).to_owned()).collect(),
        ..RouteSpec::default()
    }
}

impl TestApp {
    async fn try_create_route(&self, spec: RouteSpec) -> Result<RouteRecord, GatewayError> {
        self.quota
            .create_route(Request::new(spec))
            .await
            .map(tonic::Response::into_inner)
            .map_err(gateway_error)
    }

    async fn create_route(&self, spec: RouteSpec) -> RouteRecord {
        self.try_create_route(spec).await.unwrap()
    }

    async fn try_update_route(&self, update: RouteUpdate) -> Result<RouteRecord, GatewayError> {
        self.quota
            .update_route(Request::new(update))
            .await
            .map(tonic::Response::into_inner)
            .map_err(gateway_error)
    }
}

fn param(result: Result<RouteRecord, GatewayError>) -> (ErrorKind, Option<String>) {
    let err = result.unwrap_err();
    (err.kind, err.param)
}

fn invalid(param: &str) -> (ErrorKind, Option<String>) {
    (ErrorKind::InvalidRequest, Some(param.to_owned()))
}

#[tokio::test]
async fn an_alias_leases_a_deployment_and_sends_its_model_upstream() {
    let app = spawn_app().await;
    let account = app
        .create_account(mock_spec("mock", &["mock-echo", "mock-other"], None))
        .await;
    let created = app
        .create_route(route("smart", vec![mock("mock-other", 1, 0)], &[]))
        .await;
    assert!(created.id.starts_with("route_"), "{}", created.id);
    assert_eq!(created.profile, "default");
    assert_eq!(created.strategy, "");

    let grant = app.lease("smart", 10).await;
    assert_eq!(grant.account_id, account.id);
    assert_eq!(grant.provider, "mock");
    assert_eq!(grant.upstream_model, "mock-other");
    assert_eq!(grant.model_label, "mock-other");
    // The models themselves still work as before.
    assert_eq!(app.lease("mock-echo", 10).await.upstream_model, "mock-echo");

    let models = app
        .quota
        .list_models(Request::new(ListModelsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .models;
    let smart = models.iter().find(|entry| entry.id == "smart");
    assert_eq!(smart.map(|entry| entry.provider.as_str()), Some("mock"));

    // A route belongs to its profile.
    app.create_route(RouteSpec {
        profile: "team-a".into(),
        ..route("team-only", vec![mock("mock-echo", 1, 0)], &[])
    })
    .await;
    let err = app.try_lease("team-only", 10, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ModelNotFound);
}

#[tokio::test]
async fn deployments_set_priority_and_weight_and_the_route_its_strategy() {
    let app = spawn_app().await;
    // The accounts' own priorities point the other way.
    let first = app
        .create_account(AccountSpec {
            priority: Some(10),
            ..mock_spec("first", &["mock-a"], Some(1_000))
        })
        .await;
    let second = app
        .create_account(mock_spec("second", &["mock-b"], Some(1_000)))
        .await;
    app.create_route(RouteSpec {
        strategy: "priority".into(),
        ..route(
            "ranked",
            vec![mock("mock-a", 1, 0), mock("mock-b", 1, 5)],
            &[],
        )
    })
    .await;
    let grant = app.lease("ranked", 10).await;
    assert_eq!(
        (grant.account_id.as_str(), grant.upstream_model.as_str()),
        (second.id.as_str(), "mock-b")
    );

    // A route's round robin rotates where the profile's default (most
    // remaining) would keep picking the account with more left.
    app.create_route(RouteSpec {
        strategy: "round_robin".into(),
        ..route(
            "rotating",
            vec![mock("mock-a", 1, 0), mock("mock-b", 1, 0)],
            &[],
        )
    })
    .await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(app.lease("rotating", 10).await.account_id);
    }
    assert_eq!(
        order,
        [&first.id, &second.id, &first.id, &second.id].map(String::clone)
    );
}

#[tokio::test]
async fn fallbacks_serve_when_the_route_cannot() {
    let app = spawn_app().await;
    let primary = app
        .create_account(mock_spec("primary", &["mock-a"], Some(100)))
        .await;
    let spare = app
        .create_account(mock_spec("spare", &["mock-b"], Some(1_000)))
        .await;
    app.create_route(route("cheap", vec![mock("mock-b", 1, 0)], &[]))
        .await;
    app.create_route(route("smart", vec![mock("mock-a", 1, 0)], &["cheap"]))
        .await;

    let grant = app.lease("smart", 60).await;
    assert_eq!(grant.account_id, primary.id);
    assert_eq!(grant.fallback, "");
    // The primary's day is nearly spent: the fallback takes over, with its
    // own upstream model, and says so.
    let grant = app.lease("smart", 60).await;
    assert_eq!(
        (grant.account_id.as_str(), grant.upstream_model.as_str()),
        (spare.id.as_str(), "mock-b")
    );
    assert_eq!(grant.fallback, "cheap");
    // A retry that already tried an account moves on the same way.
    let retry = app.try_lease("smart", 10, &[&primary.id]).await.unwrap();
    assert_eq!(retry.account_id, spare.id);
    // When the fallback is spent too, the lease is refused with a wait.
    let err = app.try_lease("smart", 2_000, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::QuotaExhausted);
    assert!(err.retry_after_secs.is_some());
    let err = app
        .try_lease("smart", 10, &[&primary.id, &spare.id])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::QuotaExhausted);
}

/// A lease after an attempt failed with `class`, past the `tried`
/// fallbacks.
fn class_lease(model: &str, class: FallbackClass, tried: &[&str]) -> LeaseRequest {
    LeaseRequest {
        fallback_class: class.into(),
        exclude_fallbacks: tried.iter().map(|name| (*name).to_owned()).collect(),
        ..lease_request(model, 10, &[])
    }
}

#[tokio::test]
async fn a_failure_class_leases_the_routes_fallbacks_of_that_class() {
    let app = spawn_app().await;
    let account = app
        .create_account(mock_spec(
            "mock",
            &["mock-small", "mock-long", "mock-longer", "mock-kind"],
            None,
        ))
        .await;
    for alias in ["long", "longer", "lenient"] {
        let model = match alias {
            "long" => "mock-long",
            "longer" => "mock-longer",
            _ => "mock-kind",
        };
        app.create_route(route(alias, vec![mock(model, 1, 0)], &[]))
            .await;
    }
    app.create_route(RouteSpec {
        context_window_fallbacks: vec!["long".into(), "longer".into()],
        content_policy_fallbacks: vec!["lenient".into()],
        first_byte_timeout_ms: Some(1_500),
        deadline_ms: Some(20_000),
        ..route("small", vec![mock("mock-small", 1, 0)], &[])
    })
    .await;

    // The first lease serves the route itself, and tells the router what
    // the route sets.
    let grant = app.lease("small", 10).await;
    assert_eq!(
        (grant.upstream_model.as_str(), grant.fallback.as_str()),
        ("mock-small", "")
    );
    assert_eq!(
        (grant.first_byte_timeout_ms, grant.deadline_ms),
        (Some(1_500), Some(20_000))
    );
    assert_eq!(
        grant.fallback_classes().collect::<Vec<_>>(),
        [FallbackClass::ContextWindow, FallbackClass::ContentPolicy]
    );
    // The same account serves the fallback's larger model: it is not the
    // account that failed, but its model.
    let window = app
        .try_lease_for(class_lease("small", FallbackClass::ContextWindow, &[]))
        .await
        .unwrap();
    assert_eq!(window.account_id, account.id);
    assert_eq!(
        (window.upstream_model.as_str(), window.fallback.as_str()),
        ("mock-long", "long")
    );
    // The fallback's own route sets no timeout: the route asked for's
    // holds, and so does its deadline.
    assert_eq!(
        (window.first_byte_timeout_ms, window.deadline_ms),
        (Some(1_500), Some(20_000))
    );
    let next = app
        .try_lease_for(class_lease(
            "small",
            FallbackClass::ContextWindow,
            &["long"],
        ))
        .await
        .unwrap();
    assert_eq!(next.fallback, "longer");
    let policy = app
        .try_lease_for(class_lease("small", FallbackClass::ContentPolicy, &[]))
        .await
        .unwrap();
    assert_eq!(
        (policy.upstream_model.as_str(), policy.fallback.as_str()),
        ("mock-kind", "lenient")
    );
    // Every one tried, or a route without such fallbacks: nothing to lease.
    let spent = app
        .try_lease_for(class_lease(
            "small",
            FallbackClass::ContextWindow,
            &["long", "longer"],
        ))
        .await
        .unwrap_err();
    assert_eq!(spent.kind, ErrorKind::ModelNotFound);
    let none = app
        .try_lease_for(class_lease("long", FallbackClass::ContentPolicy, &[]))
        .await
        .unwrap_err();
    assert_eq!(none.kind, ErrorKind::ModelNotFound);
    let plain = app.lease("long", 10).await;
    assert!(plain.fallback_classes.is_empty());
    assert_eq!(
        (plain.first_byte_timeout_ms, plain.deadline_ms),
        (None, None)
    );
}

#[tokio::test]
async fn failure_fallback_cycles_are_refused_within_one_kind_of_list() {
    let app = spawn_app().await;
    let spec = |alias: &str, window: &[&str], general: &[&str]| RouteSpec {
        context_window_fallbacks: window.iter().map(|f| (*f).to_owned()).collect(),
        ..route(alias, vec![mock("mock-echo", 1, 0)], general)
    };
    app.create_route(spec("a", &["b"], &[])).await;
    let b = app.create_route(spec("b", &[], &["a"])).await;
    // b -> a in the general list and a -> b in the context-window list are
    // two graphs, neither with a cycle.
    assert_eq!(b.fallbacks, ["a"]);
    // A chain is no cycle.
    app.create_route(spec("c", &["a"], &[])).await;
    let b_to_a = app
        .try_update_route(RouteUpdate {
            id: b.id.clone(),
            context_window_fallbacks: Some(StringList {
                values: vec!["a".into()],
            }),
            ..RouteUpdate::default()
        })
        .await;
    assert_eq!(param(b_to_a), invalid("context_window_fallbacks"));
    let timed = app
        .try_update_route(RouteUpdate {
            id: b.id.clone(),
            deadline_ms: Some(0),
            ..RouteUpdate::default()
        })
        .await;
    assert_eq!(param(timed), invalid("deadline_ms"));
    let timed = app
        .try_update_route(RouteUpdate {
            id: b.id.clone(),
            first_byte_timeout_ms: Some(900),
            deadline_ms: Some(9_000),
            ..RouteUpdate::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (timed.first_byte_timeout_ms, timed.deadline_ms),
        (Some(900), Some(9_000))
    );
    let cleared = app
        .try_update_route(RouteUpdate {
            id: b.id.clone(),
            clear: vec!["first_byte_timeout_ms".into()],
            ..RouteUpdate::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (cleared.first_byte_timeout_ms, cleared.deadline_ms),
        (None, Some(9_000))
    );
}

#[tokio::test]
async fn bad_routes_are_refused_with_the_field_at_fault() {
    let app = spawn_app().await;
    let unknown = Deployment {
        provider: "nope".into(),
        ..mock("mock-echo", 1, 0)
    };
    assert_eq!(
        param(app.try_create_route(route("a", vec![unknown], &[])).await),
        invalid("deployments")
    );
    assert_eq!(
        param(app.try_create_route(route("a", vec![], &[])).await),
        invalid("deployments")
    );
    let bad_strategy = RouteSpec {
        strategy: "fastest".into(),
        ..route("a", vec![mock("mock-echo", 1, 0)], &[])
    };
    assert_eq!(
        param(app.try_create_route(bad_strategy).await),
        invalid("strategy")
    );

    let a = app
        .create_route(route("a", vec![mock("mock-echo", 1, 0)], &["b"]))
        .await;
    let b = app
        .create_route(route("b", vec![mock("mock-echo", 1, 0)], &["c"]))
        .await;
    assert_eq!(
        param(
            app.try_create_route(route("c", vec![mock("mock-echo", 1, 0)], &["a"]))
                .await
        ),
        invalid("fallbacks")
    );
    assert_eq!(
        param(
            app.try_update_route(RouteUpdate {
                id: b.id.clone(),
                fallbacks: Some(StringList {
                    values: vec!["a".into()],
                }),
                ..RouteUpdate::default()
            })
            .await
        ),
        invalid("fallbacks")
    );
    assert_eq!(
        param(
            app.try_create_route(route("a", vec![mock("mock-echo", 1, 0)], &[]))
                .await
        ),
        invalid("alias")
    );
    let missing = app
        .try_update_route(RouteUpdate {
            id: "route_missing".into(),
            ..RouteUpdate::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);

    let listed = app
        .quota
        .list_routes(Request::new(ListRequest {}))
        .await
        .unwrap()
        .into_inner()
        .routes;
    assert_eq!(listed, vec![a, b]);
}

#[tokio::test]
async fn updates_and_deletes_take_effect_and_are_audited() {
    let app = spawn_app().await;
    app.create_account(mock_spec("mock", &["mock-echo", "mock-other"], None))
        .await;
    let route = app
        .create_route(RouteSpec {
            strategy: "weighted".into(),
            ..route("smart", vec![mock("mock-echo", 1, 0)], &[])
        })
        .await;

    let updated = app
        .try_update_route(RouteUpdate {
            id: route.id.clone(),
            deployments: Some(tollgate_proto::v1::DeploymentList {
                values: vec![mock("mock-other", 2, 1)],
            }),
            clear: vec!["strategy".into()],
            ..RouteUpdate::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.strategy, "");
    assert_eq!(updated.deployments, vec![mock("mock-other", 2, 1)]);
    assert_eq!(app.lease("smart", 10).await.upstream_model, "mock-other");

    let disabled = app
        .try_update_route(RouteUpdate {
            id: route.id.clone(),
            enabled: Some(false),
            ..RouteUpdate::default()
        })
        .await
        .unwrap();
    assert!(!disabled.enabled);
    let err = app.try_lease("smart", 10, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ModelNotFound);

    app.quota
        .delete_route(Request::new(IdRequest {
            id: route.id.clone(),
        }))
        .await
        .unwrap();
    let gone = app
        .quota
        .get_route(Request::new(IdRequest {
            id: route.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(gone).kind, ErrorKind::NotFound);

    let entries = app
        .quota
        .list_audit(Request::new(AuditQuery { limit: 10 }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .filter(|entry| entry.object_kind == "route")
        .map(|entry| (entry.action.as_str(), entry.object_id.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("delete", route.id.as_str()),
            ("update", route.id.as_str()),
            ("update", route.id.as_str()),
            ("create", route.id.as_str()),
        ]
    );
}
