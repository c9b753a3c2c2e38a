//! Profiles as stored objects: admin writes with their checks, the
//! strategy a stored profile gives its leases, and deletes refused while
//! the profile is in use.

use std::collections::BTreeMap;

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_counters::Strategy;
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    AccountSpec, AuditQuery, Deployment, IdRequest, LeaseRequest, ListRequest, ProfileRecord,
    ProfileSpec, ProfileStatsRequest, ProfileUpdate, RouteSpec,
};
use tollgate_quota::{ProfileSettings, QuotaSettings};
use tonic::Request;

use crate::{TestApp, gateway_error, mock_spec, spawn_app, spawn_app_with};

const TEAM: &str = "team-a";

fn spec(name: &str, strategy: &str) -> ProfileSpec {
    ProfileSpec {
        name: name.into(),
        description: "The search team".into(),
        strategy: strategy.into(),
    }
}

impl TestApp {
    async fn try_create_profile(&self, spec: ProfileSpec) -> Result<ProfileRecord, GatewayError> {
        self.quota
            .create_profile(Request::new(spec))
            .await
            .map(tonic::Response::into_inner)
            .map_err(gateway_error)
    }

    async fn update_profile(&self, update: ProfileUpdate) -> ProfileRecord {
        self.quota
            .update_profile(Request::new(update))
            .await
            .unwrap()
            .into_inner()
    }

    async fn try_delete_profile(&self, name: &str) -> Result<(), GatewayError> {
        self.quota
            .delete_profile(Request::new(IdRequest { id: name.into() }))
            .await
            .map(|_| ())
            .map_err(gateway_error)
    }

    /// Two team accounts serving `mock-echo`: most remaining would pick
    /// `large` every time.
    async fn small_and_large(&self) -> (String, String) {
        let account = |name: &str, limit: u64| AccountSpec {
            profile: TEAM.into(),
            ..mock_spec(name, &["mock-echo"], Some(limit))
        };
        let small = self.create_account(account("small", 1_000)).await;
        let large = self.create_account(account("large", 9_000)).await;
        (small.id, large.id)
    }

    /// The accounts `count` team leases of `model` get, in order.
    async fn team_leases(&self, model: &str, count: usize) -> Vec<String> {
        let mut order = Vec::with_capacity(count);
        for _ in 0..count {
            let grant = self
                .quota
                .lease(Request::new(LeaseRequest {
                    request_id: "req_test".into(),
                    key_id: "key_test".into(),
                    profile: TEAM.into(),
                    model: model.into(),
                    // Exactly this many tokens.
                    prompt_tokens: 10,
                    max_completion_tokens: Some(0),
                    choices: 1,
                    worst_prompt_tokens: 0,
                    exclude_account_ids: Vec::new(),
                    account_id: String::new(),
                    ..LeaseRequest::default()
                }))
                .await
                .unwrap()
                .into_inner();
            order.push(grant.account_id);
        }
        order
    }
}

fn invalid(result: Result<ProfileRecord, GatewayError>) -> (ErrorKind, Option<String>) {
    let err = result.unwrap_err();
    (err.kind, err.param)
}

#[tokio::test]
async fn a_stored_strategy_wins_over_the_configured_one() {
    let app = spawn_app_with(QuotaSettings {
        profiles: BTreeMap::from([(
            TEAM.to_owned(),
            ProfileSettings {
                strategy: Strategy::MostRemaining,
            },
        )]),
        ..QuotaSettings::default()
    })
    .await;
    let (small, large) = app.small_and_large().await;
    assert_eq!(
        app.team_leases("mock-echo", 2).await,
        [large.clone(), large.clone()]
    );

    let created = app
        .try_create_profile(spec(TEAM, "round_robin"))
        .await
        .unwrap();
    assert_eq!(
        (created.name.as_str(), created.strategy.as_str()),
        (TEAM, "round_robin")
    );
    let order = app.team_leases("mock-echo", 4).await;
    assert_eq!(order, [&small, &large, &small, &large].map(String::clone));

    // Cleared, the configured strategy applies again.
    let cleared = app
        .update_profile(ProfileUpdate {
            name: TEAM.into(),
            clear: vec!["strategy".into()],
            ..ProfileUpdate::default()
        })
        .await;
    assert_eq!(cleared.strategy, "");
    assert_eq!(cleared.description, "The search team");
    assert_eq!(
        app.team_leases("mock-echo", 2).await,
        [large.clone(), large.clone()]
    );
}

#[tokio::test]
async fn a_route_strategy_wins_over_the_profile_one() {
    let app = spawn_app().await;
    let (_small, large) = app.small_and_large().await;
    app.try_create_profile(spec(TEAM, "round_robin"))
        .await
        .unwrap();
    app.quota
        .create_route(Request::new(RouteSpec {
            alias: "steady".into(),
            profile: TEAM.into(),
            deployments: vec![Deployment {
                provider: "mock".into(),
                model: "mock-echo".into(),
                weight: None,
                priority: None,
            }],
            strategy: "most_remaining".into(),
            ..RouteSpec::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        app.team_leases("steady", 3).await,
        [large.clone(), large.clone(), large.clone()]
    );
    // The model itself, through no route, rotates.
    let plain = app.team_leases("mock-echo", 2).await;
    assert_ne!(plain[0], plain[1]);
}

#[tokio::test]
async fn writes_are_checked() {
    let app = spawn_app().await;
    let bad = |name: &str, strategy: &str| spec(name, strategy);
    let invalid_param = |param: &str| (ErrorKind::InvalidRequest, Some(param.to_owned()));
    assert_eq!(
        invalid(app.try_create_profile(bad("", "")).await),
        invalid_param("name")
    );
    assert_eq!(
        invalid(app.try_create_profile(bad("team a", "")).await),
        invalid_param("name")
    );
    assert_eq!(
        invalid(app.try_create_profile(bad(TEAM, "fastest")).await),
        invalid_param("strategy")
    );
    app.try_create_profile(bad(TEAM, "")).await.unwrap();
    assert_eq!(
        invalid(app.try_create_profile(bad(TEAM, "priority")).await),
        invalid_param("name")
    );

    let update = app
        .quota
        .update_profile(Request::new(ProfileUpdate {
            name: TEAM.into(),
            strategy: Some("fastest".into()),
            ..ProfileUpdate::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(update).param.as_deref(), Some("strategy"));
    let missing = app
        .quota
        .update_profile(Request::new(ProfileUpdate {
            name: "team-z".into(),
            description: Some("nobody".into()),
            ..ProfileUpdate::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(missing).kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn a_profile_in_use_is_not_deleted_and_writes_are_audited() {
    let app = spawn_app().await;
    app.try_create_profile(spec(TEAM, "")).await.unwrap();
    let account = app
        .create_account(AccountSpec {
            profile: TEAM.into(),
            ..mock_spec("team-mock", &["mock-echo"], None)
        })
        .await;

    let refused = app.try_delete_profile(TEAM).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::InvalidRequest);
    assert_eq!(refused.param.as_deref(), Some("name"));
    assert!(refused.message.contains(&account.id), "{}", refused.message);
    let listed = app
        .quota
        .list_profiles(Request::new(ListRequest {}))
        .await
        .unwrap()
        .into_inner()
        .profiles;
    assert_eq!(listed.len(), 1);

    app.update_profile(ProfileUpdate {
        name: TEAM.into(),
        strategy: Some("priority".into()),
        ..ProfileUpdate::default()
    })
    .await;
    app.quota
        .delete_account(Request::new(IdRequest {
            id: account.id.clone(),
        }))
        .await
        .unwrap();
    app.try_delete_profile(TEAM).await.unwrap();
    let gone = app
        .quota
        .get_profile(Request::new(IdRequest { id: TEAM.into() }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(gone).kind, ErrorKind::NotFound);
    let again = app.try_delete_profile(TEAM).await.unwrap_err();
    assert_eq!(again.kind, ErrorKind::NotFound);

    let entries = app
        .quota
        .list_audit(Request::new(AuditQuery { limit: 20 }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .filter(|entry| entry.object_kind == "profile")
        .map(|entry| (entry.action.as_str(), entry.object_id.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("delete", TEAM), ("update", TEAM), ("create", TEAM)]
    );
}

#[tokio::test]
async fn a_stored_profile_has_stats_without_accounts() {
    let app = spawn_app().await;
    let stats = |profile: &str| {
        app.quota.profile_stats(Request::new(ProfileStatsRequest {
            profile: profile.into(),
        }))
    };
    let unknown = stats(TEAM).await.unwrap_err();
    assert_eq!(gateway_error(unknown).kind, ErrorKind::NotFound);

    app.try_create_profile(spec(TEAM, "least_inflight"))
        .await
        .unwrap();
    let reply = stats(TEAM).await.unwrap().into_inner();
    assert!(reply.accounts.is_empty());
    assert_eq!(reply.description, "The search team");
    assert_eq!(reply.strategy, "least_inflight");
    // A profile only an account names reports the configured strategy.
    app.create_account(AccountSpec {
        profile: "team-b".into(),
        ..mock_spec("team-b-mock", &["mock-echo"], None)
    })
    .await;
    let implicit = stats("team-b").await.unwrap().into_inner();
    assert_eq!(implicit.accounts.len(), 1);
    assert_eq!(
        (implicit.description.as_str(), implicit.strategy.as_str()),
        ("", "most_remaining")
    );
}
