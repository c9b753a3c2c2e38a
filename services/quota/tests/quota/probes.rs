//! Health probes through quota: the claim one caller takes per hold, and a
//! probe lease pinned to an account its cooldown and circuit do not keep
//! out.

use tollgate_core::ErrorKind;
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    ClaimHealthProbeRequest, LeaseGrant, LeaseRequest, Outcome, OutcomeReport,
};
use tonic::Request;

use crate::*;

async fn claim(app: &TestApp, account_id: &str, hold_ms: i64) -> Result<bool, GatewayError> {
    app.quota
        .claim_health_probe(Request::new(ClaimHealthProbeRequest {
            account_id: account_id.into(),
            hold_ms,
        }))
        .await
        .map(|reply| reply.into_inner().claimed)
        .map_err(gateway_error)
}

async fn probe_lease(
    app: &TestApp,
    account_id: &str,
    health_probe: bool,
) -> Result<LeaseGrant, GatewayError> {
    app.quota
        .lease(Request::new(LeaseRequest {
            request_id: "req_probe".into(),
            model: "mock/mock-echo".into(),
            prompt_tokens: 5,
            max_completion_tokens: Some(1),
            choices: 1,
            account_id: account_id.into(),
            health_probe,
            ..LeaseRequest::default()
        }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(gateway_error)
}

#[tokio::test]
async fn one_caller_claims_a_probe_per_hold() {
    let app = spawn_app().await;
    assert!(claim(&app, "acct_a", 30_000).await.unwrap());
    assert!(!claim(&app, "acct_a", 30_000).await.unwrap());
    assert!(claim(&app, "acct_b", 30_000).await.unwrap());
    app.clock.advance(30_000);
    assert!(claim(&app, "acct_a", 30_000).await.unwrap());

    let missing = claim(&app, "", 30_000).await.unwrap_err();
    assert_eq!(missing.param.as_deref(), Some("account_id"));
    let no_hold = claim(&app, "acct_a", 0).await.unwrap_err();
    assert_eq!(no_hold.kind, ErrorKind::InvalidRequest);
    assert_eq!(no_hold.param.as_deref(), Some("hold_ms"));
}

#[tokio::test]
async fn a_probe_lease_passes_an_open_circuit_of_its_account_only() {
    let app = spawn_app().await;
    let account = app
        .create_account(mock_spec("broken", &["mock-echo"], None))
        .await;
    for _ in 0..3 {
        app.quota
            .report_outcome(Request::new(OutcomeReport {
                account_id: account.id.clone(),
                outcome: Outcome::ServerError.into(),
                retry_after_secs: 0,
                detail: String::new(),
            }))
            .await
            .unwrap();
    }
    let refused = probe_lease(&app, &account.id, false).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::QuotaExhausted);
    let grant = probe_lease(&app, &account.id, true).await.unwrap();
    assert_eq!(grant.account_id, account.id);

    // A probe names its account.
    let unpinned = probe_lease(&app, "", true).await.unwrap_err();
    assert_eq!(unpinned.param.as_deref(), Some("health_probe"));
}
