//! An account's activity in its reads: served settles (with their latency)
//! and reported failures, counted per UTC day; and the `lowest_latency`
//! strategy that follows the latency average.

use tollgate_proto::Quota;
use tollgate_proto::v1::{Outcome, OutcomeReport, ProfileSpec, SettleRequest, Usage};
use tonic::Request;

use crate::{NEXT_MIDNIGHT, NOON, TestApp, mock_spec, spawn_app};

async fn settle_served(app: &TestApp, lease_id: &str, latency_us: Option<u64>, failed: bool) {
    app.quota
        .settle(Request::new(SettleRequest {
            lease_id: lease_id.into(),
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                ..Usage::default()
            }),
            cost_micro_usd: 0,
            failed,
            upstream_latency_us: latency_us,
        }))
        .await
        .unwrap();
}

async fn report(app: &TestApp, account_id: &str, outcome: Outcome) {
    app.quota
        .report_outcome(Request::new(OutcomeReport {
            account_id: account_id.into(),
            outcome: outcome.into(),
            retry_after_secs: 1,
            detail: String::new(),
        }))
        .await
        .unwrap();
}

#[tokio::test]
async fn account_reads_show_successes_errors_and_latency() {
    let app = spawn_app().await;
    let account = app
        .create_account(mock_spec("busy", &["mock-echo"], None))
        .await;
    let fresh = app.get_account(&account.id).await;
    assert_eq!(fresh.last_used_at_ms, None);
    assert_eq!(fresh.last_error, "");
    assert_eq!(fresh.latency_ewma_us, None);

    let grant = app.lease("mock-echo", 1).await;
    settle_served(&app, &grant.lease_id, Some(40_000), false).await;
    app.clock.advance(1_000);
    let grant = app.lease("mock-echo", 1).await;
    settle_served(&app, &grant.lease_id, Some(90_000), false).await;
    // A cut stream is charged but is no success, and its latency is not
    // counted.
    let grant = app.lease("mock-echo", 1).await;
    settle_served(&app, &grant.lease_id, Some(1), true).await;
    app.clock.advance(1_000);
    report(&app, &account.id, Outcome::Timeout).await;
    app.clock.advance(1_000);
    report(&app, &account.id, Outcome::ServerError).await;

    let read = app.get_account(&account.id).await;
    assert_eq!(read.last_used_at_ms, Some(NOON + 1_000));
    assert_eq!(read.last_error_at_ms, Some(NOON + 3_000));
    assert_eq!(read.last_error, "server_error");
    assert_eq!((read.successes_today, read.errors_today), (2, 2));
    assert_eq!(read.latency_ewma_us, Some(50_000));
    // A success report touches no activity count.
    report(&app, &account.id, Outcome::Ok).await;
    assert_eq!(app.get_account(&account.id).await.errors_today, 2);

    // The day counts start again at 00:00 UTC; the rest stays.
    app.clock.set(NEXT_MIDNIGHT);
    let next_day = app.get_account(&account.id).await;
    assert_eq!((next_day.successes_today, next_day.errors_today), (0, 0));
    assert_eq!(next_day.last_error, "server_error");
    assert_eq!(next_day.latency_ewma_us, Some(50_000));
}

#[tokio::test]
async fn lowest_latency_profiles_pick_the_fastest_measured_account() {
    let app = spawn_app().await;
    app.quota
        .create_profile(Request::new(ProfileSpec {
            name: "fast".into(),
            description: String::new(),
            strategy: "lowest_latency".into(),
        }))
        .await
        .unwrap();
    let in_fast = |name: &str| {
        let mut spec = mock_spec(name, &["mock-echo"], Some(10_000));
        spec.profile = "fast".into();
        spec
    };
    let slow = app.create_account(in_fast("slow")).await;
    let quick = app.create_account(in_fast("quick")).await;
    let lease = |app: &TestApp| {
        let request = tollgate_proto::v1::LeaseRequest {
            request_id: "req_fast".into(),
            key_id: String::new(),
            profile: "fast".into(),
            model: "mock-echo".into(),
            prompt_tokens: 1,
            max_completion_tokens: Some(0),
            choices: 1,
            worst_prompt_tokens: 0,
            ..tollgate_proto::v1::LeaseRequest::default()
        };
        let quota = app.quota.clone();
        async move {
            quota
                .lease(Request::new(request))
                .await
                .unwrap()
                .into_inner()
        }
    };
    // Each account is measured first (equal room: the older one first).
    let first = lease(&app).await;
    assert_eq!(first.account_id, slow.id);
    settle_served(&app, &first.lease_id, Some(80_000), false).await;
    let second = lease(&app).await;
    assert_eq!(second.account_id, quick.id);
    settle_served(&app, &second.lease_id, Some(20_000), false).await;
    // Then the lower average wins, while it stays lower.
    for _ in 0..3 {
        let grant = lease(&app).await;
        assert_eq!(grant.account_id, quick.id);
        settle_served(&app, &grant.lease_id, Some(20_000), false).await;
    }
}
