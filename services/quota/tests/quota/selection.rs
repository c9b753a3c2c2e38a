//! How a profile picks its accounts (its configured strategy) and the
//! circuit breaker that keeps a failing account out, through the service.

use std::collections::BTreeMap;
use std::time::Duration;

use tollgate_core::ErrorKind;
use tollgate_counters::Strategy;
use tollgate_proto::Quota;
use tollgate_proto::v1::{Outcome, OutcomeReport, SettleRequest, Usage};
use tollgate_quota::{ProfileSettings, QuotaSettings};
use tonic::Request;

use crate::{TestApp, mock_spec, spawn_app_with};

async fn report(app: &TestApp, account_id: &str, outcome: Outcome) {
    app.quota
        .report_outcome(Request::new(OutcomeReport {
            account_id: account_id.into(),
            outcome: outcome.into(),
            retry_after_secs: 0,
            detail: String::new(),
        }))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_profile_strategy_picks_the_account() {
    let app = spawn_app_with(QuotaSettings {
        profiles: BTreeMap::from([(
            "default".to_owned(),
            ProfileSettings {
                strategy: Strategy::RoundRobin,
            },
        )]),
        ..QuotaSettings::default()
    })
    .await;
    let small = app
        .create_account(mock_spec(
            "small",
            &["mock-echo", "mock-other"],
            Some(1_000),
        ))
        .await;
    let large = app
        .create_account(mock_spec(
            "large",
            &["mock-echo", "mock-other"],
            Some(9_000),
        ))
        .await;

    // Most remaining would pick `large` every time.
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(app.lease("mock-echo", 10).await.account_id);
    }
    assert_eq!(
        order,
        [&small.id, &large.id, &small.id, &large.id].map(String::clone)
    );
    // Each model rotates on its own.
    assert_eq!(app.lease("mock-other", 10).await.account_id, small.id);
}

#[tokio::test]
async fn a_failing_account_is_kept_out_then_probed() {
    let app = spawn_app_with(QuotaSettings {
        failure_threshold: 2,
        failure_cooldown: Duration::from_secs(5),
        failure_backoff_max: Duration::from_secs(60),
        ..QuotaSettings::default()
    })
    .await;
    let flaky = app
        .create_account(mock_spec("flaky", &["mock-echo"], Some(5_000)))
        .await;
    let steady = app
        .create_account(mock_spec("steady", &["mock-echo"], Some(1_000)))
        .await;

    report(&app, &flaky.id, Outcome::ServerError).await;
    report(&app, &flaky.id, Outcome::Timeout).await;
    assert_eq!(app.lease("mock-echo", 1).await.account_id, steady.id);
    let denied = app
        .try_lease("mock-echo", 1, &[&steady.id])
        .await
        .unwrap_err();
    assert_eq!(denied.kind, ErrorKind::QuotaExhausted);
    assert_eq!(denied.retry_after_secs, Some(5));
    assert!(
        app.metrics
            .encode()
            .contains("tollgate_lease_denied_total{reason=\"circuit_open\"} 1")
    );
    let open_gauge =
        |value: u8| format!("tollgate_circuit_open{{account=\"{}\"}} {value}", flaky.id);
    assert!(app.metrics.encode().contains(&open_gauge(1)));

    // Half-open: one probe, the next request goes elsewhere.
    app.clock.advance(5_000);
    let probe = app.lease("mock-echo", 1).await;
    assert_eq!(probe.account_id, flaky.id);
    assert_eq!(app.lease("mock-echo", 1).await.account_id, steady.id);

    // The probe failed: open again for twice as long.
    report(&app, &flaky.id, Outcome::ServerError).await;
    app.settle(&probe, 0, 0).await;
    app.clock.advance(9_999);
    assert_eq!(app.lease("mock-echo", 1).await.account_id, steady.id);
    app.clock.advance(1);
    let probe = app.lease("mock-echo", 1).await;
    assert_eq!(probe.account_id, flaky.id);

    // A stream cut mid-way is charged but proves nothing: still half-open,
    // and the freed probe slot goes to the next request.
    app.quota
        .settle(Request::new(SettleRequest {
            lease_id: probe.lease_id.clone(),
            usage: Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 1,
                ..Usage::default()
            }),
            cost_micro_usd: 0,
            failed: true,
            upstream_latency_us: None,
        }))
        .await
        .unwrap();
    let probe = app.lease("mock-echo", 1).await;
    assert_eq!(probe.account_id, flaky.id);
    assert_eq!(app.lease("mock-echo", 1).await.account_id, steady.id);

    // It served (a settle with real usage): closed for everyone.
    app.settle(&probe, 5, 5).await;
    assert!(app.metrics.encode().contains(&open_gauge(0)));
    for _ in 0..3 {
        assert_eq!(app.lease("mock-echo", 1).await.account_id, flaky.id);
    }
}
