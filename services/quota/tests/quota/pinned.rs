//! Leases pinned to one account (the admin account test): that account or
//! a clear refusal, whatever the profile, and no client key involved.

use tollgate_core::ErrorKind;
use tollgate_proto::Quota;
use tollgate_proto::v1::{AccountSpec, AccountUpdate, LeaseGrant, LeaseRequest};
use tonic::Request;

use crate::*;

async fn pinned(app: &TestApp, account_id: &str, model: &str) -> Result<LeaseGrant, GatewayError> {
    app.quota
        .lease(Request::new(LeaseRequest {
            request_id: "req_test".into(),
            model: model.into(),
            // Exactly this many tokens.
            prompt_tokens: 10,
            max_completion_tokens: Some(0),
            choices: 1,
            account_id: account_id.into(),
            ..LeaseRequest::default()
        }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(gateway_error)
}

#[tokio::test]
async fn a_pinned_lease_uses_that_account_in_any_profile() {
    let app = spawn_app().await;
    let busy = app
        .create_account(mock_spec("first", &["mock-echo"], None))
        .await;
    let target = app
        .create_account(AccountSpec {
            profile: "team-t".into(),
            ..mock_spec("second", &["mock-echo"], Some(1_000))
        })
        .await;
    let grant = pinned(&app, &target.id, "mock/mock-echo").await.unwrap();
    assert_eq!(grant.account_id, target.id);
    assert_eq!(grant.upstream_model, "mock-echo");
    assert_eq!(app.get_account(&target.id).await.tokens_reserved, 10);
    assert_eq!(app.get_account(&busy.id).await.tokens_reserved, 0);
    app.settle(&grant, 3, 1).await;
    assert_eq!(app.get_account(&target.id).await.tokens_used_today, 4);

    let missing = pinned(&app, "acct_missing", "mock-echo").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    let other_model = pinned(&app, &target.id, "gpt-4o").await.unwrap_err();
    assert_eq!(other_model.param.as_deref(), Some("model"));

    app.quota
        .update_account(Request::new(AccountUpdate {
            id: target.id.clone(),
            enabled: Some(false),
            ..AccountUpdate::default()
        }))
        .await
        .unwrap();
    let disabled = pinned(&app, &target.id, "mock-echo").await.unwrap_err();
    assert_eq!(disabled.kind, ErrorKind::QuotaExhausted);
    assert!(
        disabled.message.contains("disabled"),
        "{}",
        disabled.message
    );
}
