//! Routes: admin writes with their checks, and leases for an alias served
//! by the route's deployments, its strategy and its fallbacks.

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    AccountSpec, AuditQuery, Deployment, IdRequest, ListModelsRequest, ListRequest, RouteRecord,
    RouteSpec, RouteUpdate, StringList,
};
use tonic::Request;

use crate::{TestApp, gateway_error, mock_spec, spawn_app};

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
