//! A key's own limits through `Lease`: refused with `rate_limit_exceeded`
//! and Retry-After, while the accounts' refusals stay `quota_exhausted`.

use tollgate_core::ErrorKind;
use tollgate_proto::Quota;
use tollgate_proto::v1::{KeySpec, KeyUpdate, LeaseGrant, LeaseRequest};
use tonic::Request;

use crate::{NEXT_MIDNIGHT, NOON, TestApp, gateway_error, mock_spec, spawn_app};

async fn create_key(app: &TestApp, spec: KeySpec) -> String {
    app.quota
        .create_key(Request::new(spec))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap()
        .id
}

async fn lease_as(
    app: &TestApp,
    key_id: &str,
    tokens: u32,
) -> Result<LeaseGrant, tollgate_core::GatewayError> {
    app.quota
        .lease(Request::new(LeaseRequest {
            request_id: "req_test".into(),
            key_id: key_id.into(),
            profile: String::new(),
            model: "mock-echo".into(),
            // Exactly this many tokens.
            prompt_tokens: tokens,
            max_completion_tokens: Some(0),
            choices: 1,
            worst_prompt_tokens: 0,
            exclude_account_ids: Vec::new(),
            account_id: String::new(),
            health_probe: false,
        }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(gateway_error)
}

#[tokio::test]
async fn a_key_with_rpm_2_gets_two_leases_then_rate_limited() {
    let app = spawn_app().await;
    app.create_account(mock_spec("mock", &["mock-echo"], None))
        .await;
    let key = create_key(
        &app,
        KeySpec {
            name: "two-a-minute".into(),
            rpm: Some(2),
            ..KeySpec::default()
        },
    )
    .await;

    lease_as(&app, &key, 10).await.unwrap();
    app.clock.advance(15_000);
    lease_as(&app, &key, 10).await.unwrap();
    let denied = lease_as(&app, &key, 10).await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::RateLimited);
    assert_eq!(denied.kind.http_status(), 429);
    assert_eq!(denied.kind.label(), "rate_limit_exceeded");
    assert_eq!(denied.retry_after_secs, Some(45));
    assert!(
        app.metrics
            .encode()
            .contains("tollgate_lease_denied_total{reason=\"key_rpm\"} 1")
    );
    // Other keys (and requests without a limited key) are not affected.
    lease_as(&app, "key_unlimited", 10).await.unwrap();

    app.clock.advance(45_000);
    lease_as(&app, &key, 10).await.unwrap();

    // Raising the limit through the service applies to the next lease.
    app.quota
        .update_key(Request::new(KeyUpdate {
            id: key.clone(),
            rpm: Some(10),
            ..KeyUpdate::default()
        }))
        .await
        .unwrap();
    lease_as(&app, &key, 10).await.unwrap();
}

#[tokio::test]
async fn a_key_budget_counts_settled_tokens_until_utc_midnight() {
    let app = spawn_app().await;
    app.create_account(mock_spec("mock", &["mock-echo"], Some(100_000)))
        .await;
    let key = create_key(
        &app,
        KeySpec {
            name: "budgeted".into(),
            daily_token_budget: Some(1_000),
            ..KeySpec::default()
        },
    )
    .await;

    let grant = lease_as(&app, &key, 200).await.unwrap();
    app.settle(&grant, 600, 300).await;
    let denied = lease_as(&app, &key, 200).await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::RateLimited);
    assert_eq!(
        denied.retry_after_secs,
        Some(((NEXT_MIDNIGHT - NOON) / 1_000).unsigned_abs())
    );
    lease_as(&app, &key, 100).await.unwrap();

    // A key whose limits pass still gets quota_exhausted from a spent
    // account.
    let paced = create_key(
        &app,
        KeySpec {
            name: "paced".into(),
            rpm: Some(5),
            ..KeySpec::default()
        },
    )
    .await;
    let too_big = lease_as(&app, &paced, 100_000).await.unwrap_err();
    assert_eq!(too_big.kind, ErrorKind::QuotaExhausted);
    // It carries the key's standing too (nothing was recorded on the key).
    assert_eq!(
        too_big.rate_limits.as_deref().copied(),
        Some(tollgate_core::error::RateLimits {
            requests: Some(tollgate_core::error::RateWindow {
                limit: 5,
                remaining: 5,
                reset_ms: 0,
            }),
            tokens: None,
        })
    );

    app.clock.set(NEXT_MIDNIGHT);
    lease_as(&app, &key, 1_000).await.unwrap();
}

#[tokio::test]
async fn grants_and_key_refusals_carry_the_keys_rate_limits() {
    use tollgate_core::error::{RateLimits, RateWindow};
    use tollgate_proto::v1::{RateLimitInfo, RateLimitWindow};

    let app = spawn_app().await;
    app.create_account(mock_spec("mock", &["mock-echo"], None))
        .await;
    let key = create_key(
        &app,
        KeySpec {
            name: "windowed".into(),
            rpm: Some(2),
            tpm: Some(1_000),
            ..KeySpec::default()
        },
    )
    .await;
    let info = |requests: (u64, u64), tokens: (u64, u64)| RateLimitInfo {
        requests: Some(RateLimitWindow {
            limit: 2,
            remaining: requests.0,
            reset_ms: requests.1,
        }),
        tokens: Some(RateLimitWindow {
            limit: 1_000,
            remaining: tokens.0,
            reset_ms: tokens.1,
        }),
    };

    let first = lease_as(&app, &key, 100).await.unwrap();
    assert_eq!(first.rate_limit, Some(info((1, 60_000), (900, 60_000))));
    app.clock.advance(15_000);
    let second = lease_as(&app, &key, 200).await.unwrap();
    assert_eq!(second.rate_limit, Some(info((0, 45_000), (700, 45_000))));

    let denied = lease_as(&app, &key, 10).await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::RateLimited);
    assert_eq!(denied.retry_after_secs, Some(45));
    let window = |limit, remaining| {
        Some(RateWindow {
            limit,
            remaining,
            reset_ms: 45_000,
        })
    };
    assert_eq!(
        denied.rate_limits.as_deref().copied(),
        Some(RateLimits {
            requests: window(2, 0),
            tokens: window(1_000, 700),
        })
    );

    // A key with only a daily budget, and a key without limits: no
    // rate limits to report.
    let budget = create_key(
        &app,
        KeySpec {
            name: "budget-only".into(),
            daily_token_budget: Some(10_000),
            ..KeySpec::default()
        },
    )
    .await;
    assert_eq!(lease_as(&app, &budget, 10).await.unwrap().rate_limit, None);
    assert_eq!(
        lease_as(&app, "key_unlimited", 10)
            .await
            .unwrap()
            .rate_limit,
        None
    );
}

#[tokio::test]
async fn a_key_monthly_budget_refuses_once_settled_spend_reaches_it() {
    use tollgate_core::clock::next_utc_month_start_ms;

    let app = spawn_app().await;
    app.create_account(mock_spec("mock", &["mock-echo"], None))
        .await;
    let key = create_key(
        &app,
        KeySpec {
            name: "monthly".into(),
            monthly_budget_micro_usd: Some(1_000),
            ..KeySpec::default()
        },
    )
    .await;

    let first = lease_as(&app, &key, 10).await.unwrap();
    // The cost is only known when settled: a second lease may open first.
    let second = lease_as(&app, &key, 10).await.unwrap();
    app.settle_costing(&first, 5, 5, 600).await;
    app.settle_costing(&second, 5, 5, 400).await;

    let denied = lease_as(&app, &key, 10).await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::RateLimited);
    assert_eq!(denied.kind.label(), "rate_limit_exceeded");
    assert_eq!(
        denied.message,
        "this API key's monthly budget of $0.001 is spent; retry next month"
    );
    let next_month = next_utc_month_start_ms(NOON);
    assert_eq!(
        denied.retry_after_secs,
        Some(((next_month - NOON) / 1_000).unsigned_abs())
    );
    // No RPM or TPM: no x-ratelimit-* standing to report.
    assert_eq!(denied.rate_limits, None);
    assert!(
        app.metrics
            .encode()
            .contains("tollgate_lease_denied_total{reason=\"key_monthly_budget\"} 1")
    );

    // Clearing the budget lifts the refusal at once; a new month does too.
    app.quota
        .update_key(Request::new(KeyUpdate {
            id: key.clone(),
            clear: vec!["monthly_budget_micro_usd".into()],
            ..KeyUpdate::default()
        }))
        .await
        .unwrap();
    lease_as(&app, &key, 10).await.unwrap();
    app.quota
        .update_key(Request::new(KeyUpdate {
            id: key.clone(),
            monthly_budget_micro_usd: Some(1_000),
            ..KeyUpdate::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        lease_as(&app, &key, 10).await.unwrap_err().kind,
        ErrorKind::RateLimited
    );
    app.clock.set(next_month);
    lease_as(&app, &key, 10).await.unwrap();
}

#[tokio::test]
async fn every_account_disabled_still_reports_the_keys_standing() {
    let app = spawn_app().await;
    let account = app
        .create_account(mock_spec("mock", &["mock-echo"], None))
        .await;
    let key = create_key(
        &app,
        KeySpec {
            name: "paced".into(),
            rpm: Some(2),
            ..KeySpec::default()
        },
    )
    .await;
    lease_as(&app, &key, 10).await.unwrap();
    app.quota
        .update_account(Request::new(tollgate_proto::v1::AccountUpdate {
            id: account.id.clone(),
            enabled: Some(false),
            ..Default::default()
        }))
        .await
        .unwrap();

    let disabled = lease_as(&app, &key, 10).await.unwrap_err();
    assert_eq!(disabled.kind, ErrorKind::QuotaExhausted);
    // One request in the window, none recorded by the refused one.
    assert_eq!(
        disabled.rate_limits.as_deref().copied(),
        Some(tollgate_core::error::RateLimits {
            requests: Some(tollgate_core::error::RateWindow {
                limit: 2,
                remaining: 1,
                reset_ms: 60_000,
            }),
            tokens: None,
        })
    );
    // A key over its own limit hears that first.
    app.quota
        .update_account(Request::new(tollgate_proto::v1::AccountUpdate {
            id: account.id.clone(),
            enabled: Some(true),
            ..Default::default()
        }))
        .await
        .unwrap();
    lease_as(&app, &key, 10).await.unwrap();
    app.quota
        .update_account(Request::new(tollgate_proto::v1::AccountUpdate {
            id: account.id,
            enabled: Some(false),
            ..Default::default()
        }))
        .await
        .unwrap();
    let over = lease_as(&app, &key, 10).await.unwrap_err();
    assert_eq!(over.kind, ErrorKind::RateLimited);
    assert_eq!(
        over.rate_limits
            .as_deref()
            .unwrap()
            .requests
            .unwrap()
            .remaining,
        0
    );
}
