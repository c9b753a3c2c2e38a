//! Leases: model resolution, account selection, daily caps and retries.

use std::time::Duration;

use tollgate_control_store::{ControlStore, NewAccount};
use tollgate_core::{ErrorKind, Provider, clock::secs_until_next_utc_midnight};
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    AccountSpec, AccountUpdate, ListModelsRequest, RenewLeaseRequest, SettleRequest,
};
use tollgate_quota::QuotaSettings;
use tonic::Request;

use crate::{NEXT_MIDNIGHT, NOON, gateway_error, mock_spec, spawn_app, spawn_app_with};

#[tokio::test]
async fn models_resolve_bare_qualified_and_unknown() {
    let app = spawn_app().await;
    let openai = app
        .create_account(AccountSpec {
            provider: "openai".into(),
            secret: "sk-openai-secret-value-1234".into(),
            models: vec!["gpt-4o-mini".into()],
            ..mock_spec("openai", &[], None)
        })
        .await;
    let openrouter = app
        .create_account(AccountSpec {
            provider: "openrouter".into(),
            secret: "sk-or-secret-value-5678".into(),
            ..mock_spec("openrouter", &[], None)
        })
        .await;

    let bare = app.lease("gpt-4o-mini", 10).await;
    assert_eq!(bare.account_id, openai.id);
    assert_eq!(bare.provider, "openai");
    assert_eq!(bare.upstream_model, "gpt-4o-mini");
    assert_eq!(bare.base_url, "https://api.openai.com/v1");
    assert_eq!(bare.credential, "sk-openai-secret-value-1234");
    assert_eq!(bare.reserved_tokens, 10);

    let qualified = app.lease("openai/gpt-4o-mini", 10).await;
    assert_eq!(qualified.account_id, openai.id);
    assert_eq!(qualified.upstream_model, "gpt-4o-mini");

    let any_model = app.lease("openrouter/meta-llama/llama-3-70b", 10).await;
    assert_eq!(any_model.account_id, openrouter.id);
    assert_eq!(any_model.upstream_model, "meta-llama/llama-3-70b");
    assert_eq!(any_model.credential, "sk-or-secret-value-5678");

    for unknown in [
        "gpt-5",
        "openai/gpt-4o",
        "gemini/gpt-4o-mini",
        "meta-llama/llama-3-70b",
    ] {
        let err = app.try_lease(unknown, 10, &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ModelNotFound, "{unknown}");
        assert_eq!(err.kind.http_status(), 404);
    }
    let err = app.try_lease("", 10, &[]).await.unwrap_err();
    assert_eq!(err.param.as_deref(), Some("model"));

    // Accounts serve their own profile only.
    let other_profile = app
        .quota
        .lease(Request::new(tollgate_proto::v1::LeaseRequest {
            profile: "team-b".into(),
            model: "gpt-4o-mini".into(),
            // Exactly this many tokens.
            prompt_tokens: 1,
            max_completion_tokens: Some(0),
            choices: 1,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(other_profile).kind, ErrorKind::ModelNotFound);
}

#[tokio::test]
async fn list_models_shows_what_enabled_accounts_serve() {
    let app = spawn_app().await;
    app.create_account(mock_spec("mock", &["mock-echo"], None))
        .await;
    let off = app
        .create_account(mock_spec("off", &["hidden-model"], None))
        .await;
    app.quota
        .update_account(Request::new(AccountUpdate {
            id: off.id,
            enabled: Some(false),
            ..AccountUpdate::default()
        }))
        .await
        .unwrap();
    let listed = app
        .quota
        .list_models(Request::new(ListModelsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<(&str, &str)> = listed
        .models
        .iter()
        .map(|entry| (entry.id.as_str(), entry.provider.as_str()))
        .collect();
    assert_eq!(ids, [("mock-echo", "mock"), ("mock/mock-echo", "mock")]);

    // A disabled account's model exists but cannot be served now.
    let err = app.try_lease("hidden-model", 1, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::QuotaExhausted);
}

#[tokio::test]
async fn the_account_with_most_tokens_left_is_chosen() {
    let app = spawn_app().await;
    let small = app
        .create_account(mock_spec("small", &["mock-echo"], Some(1_000)))
        .await;
    let large = app
        .create_account(mock_spec("large", &["mock-echo"], Some(2_000)))
        .await;

    let first = app.lease("mock-echo", 100).await;
    assert_eq!(first.account_id, large.id);
    assert_eq!(first.base_url, "mock://local");
    app.settle(&first, 1_000, 400).await;
    assert_eq!(app.get_account(&large.id).await.tokens_used_today, 1_400);

    // large has 600 left, small 1,000.
    assert_eq!(app.lease("mock-echo", 100).await.account_id, small.id);
    assert_eq!(app.get_account(&small.id).await.tokens_reserved, 100);
}

#[tokio::test]
async fn the_daily_cap_holds_until_utc_midnight() {
    let app = spawn_app().await;
    let account = app
        .create_account(mock_spec("capped", &["mock-echo"], Some(1_000)))
        .await;
    let grant = app.lease("mock-echo", 600).await;
    app.settle(&grant, 500, 100).await;

    let denied = app.try_lease("mock-echo", 600, &[]).await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::QuotaExhausted);
    assert_eq!(denied.kind.http_status(), 429);
    assert_eq!(
        denied.retry_after_secs,
        Some(secs_until_next_utc_midnight(NOON) - 1)
    );
    assert!(
        app.metrics
            .encode()
            .contains("tollgate_lease_denied_total{reason=\"daily_limit\"} 1")
    );

    let small = app.lease("mock-echo", 400).await;
    app.settle(&small, 400, 0).await;
    assert_eq!(app.get_account(&account.id).await.tokens_used_today, 1_000);

    app.clock.set(NEXT_MIDNIGHT);
    assert_eq!(app.get_account(&account.id).await.tokens_used_today, 0);
    assert_eq!(app.lease("mock-echo", 1_000).await.account_id, account.id);
}

#[tokio::test]
async fn a_retry_excludes_the_accounts_already_tried() {
    let app = spawn_app().await;
    let a = app
        .create_account(mock_spec("a", &["mock-echo"], Some(5_000)))
        .await;
    let b = app
        .create_account(mock_spec("b", &["mock-echo"], Some(1_000)))
        .await;
    assert_eq!(app.lease("mock-echo", 10).await.account_id, a.id);
    let retry = app.try_lease("mock-echo", 10, &[&a.id]).await.unwrap();
    assert_eq!(retry.account_id, b.id);
    let none_left = app
        .try_lease("mock-echo", 10, &[&a.id, &b.id])
        .await
        .unwrap_err();
    assert_eq!(none_left.kind, ErrorKind::QuotaExhausted);
    assert!(none_left.retry_after_secs.is_some());
}

#[tokio::test]
async fn renewed_leases_outlive_their_first_ttl() {
    let app = spawn_app_with(QuotaSettings {
        lease_ttl: Duration::from_secs(30),
        ..QuotaSettings::default()
    })
    .await;
    let account = app
        .create_account(mock_spec("a", &["mock-echo"], Some(1_000)))
        .await;
    let grant = app.lease("mock-echo", 900).await;
    assert_eq!(grant.ttl_ms, 30_000);
    let renew = |lease_id: String| {
        let quota = app.quota.clone();
        async move {
            quota
                .renew_lease(Request::new(RenewLeaseRequest { lease_id }))
                .await
                .map(tonic::Response::into_inner)
        }
    };

    app.clock.advance(20_000);
    let renewed = renew(grant.lease_id.clone()).await.unwrap();
    assert!(renewed.renewed);
    assert_eq!(renewed.ttl_ms, 30_000);
    app.clock.advance(20_000);
    assert_eq!(app.get_account(&account.id).await.tokens_reserved, 900);

    app.clock.advance(10_000);
    assert_eq!(app.get_account(&account.id).await.tokens_reserved, 0);
    let late = renew(grant.lease_id.clone()).await.unwrap();
    assert!(!late.renewed);
    assert_eq!(app.get_account(&account.id).await.tokens_reserved, 0);

    let bad = renew("made-up".into()).await.unwrap_err();
    assert_eq!(gateway_error(bad).param.as_deref(), Some("lease_id"));
}

#[tokio::test]
async fn unsettled_leases_expire_and_late_settles_still_count() {
    let app = spawn_app_with(QuotaSettings {
        lease_ttl: Duration::from_secs(30),
        ..QuotaSettings::default()
    })
    .await;
    let account = app
        .create_account(mock_spec("a", &["mock-echo"], Some(1_000)))
        .await;
    let grant = app.lease("mock-echo", 900).await;
    assert_eq!(
        app.try_lease("mock-echo", 200, &[]).await.unwrap_err().kind,
        ErrorKind::QuotaExhausted
    );

    app.clock.advance(30_000);
    assert_eq!(app.get_account(&account.id).await.tokens_reserved, 0);
    app.settle(&grant, 300, 50).await;
    assert_eq!(app.get_account(&account.id).await.tokens_used_today, 350);

    let bad = app
        .quota
        .settle(Request::new(SettleRequest {
            lease_id: "made-up".into(),
            usage: None,
            cost_micro_usd: 0,
            failed: false,
            upstream_latency_us: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(bad).param.as_deref(), Some("lease_id"));
    let negative = app
        .quota
        .settle(Request::new(SettleRequest {
            lease_id: grant.lease_id.clone(),
            usage: None,
            cost_micro_usd: -1,
            failed: false,
            upstream_latency_us: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(
        gateway_error(negative).param.as_deref(),
        Some("cost_micro_usd")
    );
}

#[tokio::test]
async fn accounts_written_elsewhere_appear_after_the_refresh_interval() {
    let app = spawn_app_with(QuotaSettings {
        refresh_interval: Duration::from_millis(50),
        ..QuotaSettings::default()
    })
    .await;
    assert_eq!(
        app.try_lease("mock-echo", 1, &[]).await.unwrap_err().kind,
        ErrorKind::ModelNotFound
    );

    // Another replica writes the store directly.
    let written = app
        .store
        .insert_account(NewAccount {
            models: vec!["mock-echo".into()],
            ..NewAccount::new(Provider::Mock, "elsewhere")
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match app.try_lease("mock-echo", 1, &[]).await {
            Ok(grant) => {
                assert_eq!(grant.account_id, written.id);
                break;
            }
            Err(err) => {
                assert_eq!(err.kind, ErrorKind::ModelNotFound);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "snapshot never refreshed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
