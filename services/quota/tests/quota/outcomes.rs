//! Upstream outcomes: 429 cools an account down, 401/403 disables it,
//! repeated server errors open its circuit for a while (more in
//! `selection.rs`).

use std::time::Duration;

use tollgate_core::ErrorKind;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::Quota;
use tollgate_proto::v1::{AccountUpdate, Outcome, OutcomeReport};
use tollgate_quota::QuotaSettings;
use tonic::Request;

use crate::{TestApp, mock_spec, spawn_app, spawn_app_with};

async fn report(
    app: &TestApp,
    account_id: &str,
    outcome: Outcome,
    retry_after_secs: u32,
    detail: &str,
) {
    app.quota
        .report_outcome(Request::new(OutcomeReport {
            account_id: account_id.into(),
            outcome: outcome.into(),
            retry_after_secs,
            detail: detail.into(),
        }))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_429_cools_the_account_down_for_its_retry_after() {
    let app = spawn_app().await;
    let preferred = app
        .create_account(mock_spec("preferred", &["mock-echo"], Some(5_000)))
        .await;
    let backup = app
        .create_account(mock_spec("backup", &["mock-echo"], Some(1_000)))
        .await;

    report(&app, &preferred.id, Outcome::RateLimited, 30, "").await;
    assert_eq!(app.lease("mock-echo", 1).await.account_id, backup.id);
    app.clock.advance(29_999);
    assert_eq!(app.lease("mock-echo", 1).await.account_id, backup.id);
    app.clock.advance(1);
    assert_eq!(app.lease("mock-echo", 1).await.account_id, preferred.id);

    // Without a Retry-After the default cooldown applies; with both cooling
    // the denial says when the first one is back.
    report(&app, &preferred.id, Outcome::RateLimited, 0, "").await;
    report(&app, &backup.id, Outcome::RateLimited, 90, "").await;
    let denied = app.try_lease("mock-echo", 1, &[]).await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::QuotaExhausted);
    assert_eq!(denied.retry_after_secs, Some(60));
    assert!(
        app.metrics
            .encode()
            .contains("tollgate_lease_denied_total{reason=\"cooldown\"} 1")
    );
}

#[tokio::test]
async fn auth_failure_disables_the_account_with_the_reason() {
    let app = spawn_app().await;
    let bad = app
        .create_account(mock_spec("bad", &["mock-echo"], Some(5_000)))
        .await;
    let good = app
        .create_account(mock_spec("good", &["mock-echo"], Some(1_000)))
        .await;

    report(
        &app,
        &bad.id,
        Outcome::AuthFailed,
        0,
        "upstream answered 401",
    )
    .await;
    let record = app.get_account(&bad.id).await;
    assert!(!record.enabled);
    assert!(record.disabled_reason.contains("upstream answered 401"));
    for _ in 0..3 {
        assert_eq!(app.lease("mock-echo", 1).await.account_id, good.id);
    }

    report(&app, &good.id, Outcome::AuthFailed, 0, "").await;
    let err = app.try_lease("mock-echo", 1, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::QuotaExhausted);

    // Re-enabling clears the reason and serves again.
    let enabled = app
        .quota
        .update_account(Request::new(AccountUpdate {
            id: bad.id.clone(),
            enabled: Some(true),
            ..AccountUpdate::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled.disabled_reason, "");
    assert_eq!(app.lease("mock-echo", 1).await.account_id, bad.id);
}

#[tokio::test]
async fn repeated_server_errors_cool_the_account_down_briefly() {
    let app = spawn_app_with(QuotaSettings {
        failure_threshold: 3,
        failure_cooldown: Duration::from_secs(5),
        ..QuotaSettings::default()
    })
    .await;
    let flaky = app
        .create_account(mock_spec("flaky", &["mock-echo"], Some(5_000)))
        .await;
    let steady = app
        .create_account(mock_spec("steady", &["mock-echo"], Some(1_000)))
        .await;

    report(&app, &flaky.id, Outcome::ServerError, 0, "").await;
    report(&app, &flaky.id, Outcome::Timeout, 0, "").await;
    report(&app, &flaky.id, Outcome::Ok, 0, "").await;
    report(&app, &flaky.id, Outcome::ServerError, 0, "").await;
    report(&app, &flaky.id, Outcome::ServerError, 0, "").await;
    assert_eq!(app.lease("mock-echo", 1).await.account_id, flaky.id);

    report(&app, &flaky.id, Outcome::Timeout, 0, "").await;
    assert_eq!(app.lease("mock-echo", 1).await.account_id, steady.id);
    app.clock.advance(5_000);
    assert_eq!(app.lease("mock-echo", 1).await.account_id, flaky.id);

    let unspecified = app
        .quota
        .report_outcome(Request::new(OutcomeReport {
            account_id: flaky.id,
            ..OutcomeReport::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        tollgate_core::GatewayError::from_status(&unspecified)
            .param
            .as_deref(),
        Some("outcome")
    );
}
