//! Ingest and query through the `Analytics` trait.

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::Analytics;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::remote::{RemoteAnalytics, peer};
use tollgate_proto::v1::{
    AccountTokens, AccountTokensQuery, PingRequest, UsageBatch, UsageEvent, UsageQuery,
};
use tonic::Request;

use crate::helpers::{T0, assert_stored_once, event, query, rows, serve, spawn_app};

async fn ingest(analytics: &dyn Analytics, events: Vec<UsageEvent>) -> Result<u32, GatewayError> {
    analytics
        .ingest(Request::new(UsageBatch { events }))
        .await
        .map(|reply| reply.into_inner().accepted)
        .map_err(|status| GatewayError::from_status(&status))
}

async fn query_error(analytics: &dyn Analytics, query: UsageQuery) -> GatewayError {
    let status = analytics
        .query_usage(Request::new(query))
        .await
        .unwrap_err();
    GatewayError::from_status(&status)
}

#[tokio::test]
async fn ping_names_the_service() {
    let app = spawn_app().await;
    let reply = app
        .analytics
        .ping(Request::new(PingRequest {}))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().service, "analytics");
}

#[tokio::test]
async fn ingested_events_are_stored_once_and_counted() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..5).map(event).collect();
    assert_eq!(ingest(&*app.analytics, batch.clone()).await.unwrap(), 5);
    // A resent batch (the caller saw a timeout, say) is accepted again but
    // stored once.
    assert_eq!(ingest(&*app.analytics, batch).await.unwrap(), 5);
    assert_stored_once(&*app.analytics, 5).await;

    let analytics = &app.metrics.analytics;
    assert_eq!(analytics.events_received.get(), 10);
    assert_eq!(analytics.events_written.get(), 5);
    assert_eq!(analytics.duplicates_skipped.get(), 5);
    assert_eq!(analytics.write_errors.get(), 0);
    assert_eq!(analytics.lag.get(), 0);
    let exposition = app.metrics.encode();
    assert!(exposition.contains("tollgate_usage_batch_duration_seconds_count 2"));
    assert!(exposition.contains("tollgate_usage_batch_size_count 2"));
    assert!(exposition.contains("tollgate_usage_batch_size_sum 10.0"));
}

#[tokio::test]
async fn token_details_and_unpriced_requests_reach_the_report() {
    let app = spawn_app().await;
    let priced = UsageEvent {
        key_id: "key-x".into(),
        prompt_tokens: 1_000,
        completion_tokens: 200,
        cached_tokens: 300,
        cache_write_5m_tokens: 100,
        cache_write_1h_tokens: 50,
        reasoning_tokens: 80,
        cost_micro_usd: 1_234,
        priced: true,
        ..event(1)
    };
    let unpriced = UsageEvent {
        key_id: "key-x".into(),
        upstream_model: "house-model".into(),
        cost_micro_usd: 0,
        priced: false,
        ..event(2)
    };
    ingest(&*app.analytics, vec![priced, unpriced])
        .await
        .unwrap();
    let report = rows(&*app.analytics, query("key")).await;
    assert_eq!(report.len(), 1);
    let row = &report[0];
    assert_eq!(
        (
            row.requests,
            row.prompt_tokens,
            row.cached_tokens,
            row.cache_write_5m_tokens,
            row.cache_write_1h_tokens,
            row.reasoning_tokens,
            row.cost_micro_usd,
            row.unpriced_requests,
        ),
        (2, 1_010, 300, 100, 50, 80, 1_234, 1)
    );
}

#[tokio::test]
async fn an_event_without_request_id_rejects_the_batch() {
    let app = spawn_app().await;
    let mut nameless = event(1);
    nameless.request_id.clear();
    let error = ingest(&*app.analytics, vec![event(0), nameless])
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(error.param.as_deref(), Some("events.request_id"));
    assert!(rows(&*app.analytics, query("key")).await.is_empty());
    assert_eq!(app.store.insert_calls(), 0);
}

#[tokio::test]
async fn a_failed_write_is_unavailable_and_can_be_resent() {
    let app = spawn_app().await;
    app.store.fail_next(1);
    let batch: Vec<_> = (0..3).map(event).collect();
    let error = ingest(&*app.analytics, batch.clone()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(!error.message.contains("pool"), "{}", error.message);
    assert_eq!(app.metrics.analytics.write_errors.get(), 1);
    assert!(rows(&*app.analytics, query("key")).await.is_empty());

    assert_eq!(ingest(&*app.analytics, batch).await.unwrap(), 3);
    assert_stored_once(&*app.analytics, 3).await;
}

#[tokio::test]
async fn queries_group_bucket_and_filter() {
    let app = spawn_app().await;
    let mut failed = event(1);
    failed.started_at_ms = T0 + 3_600_000;
    failed.account_id = "acct-2".into();
    failed.status = 429;
    failed.error_code = "quota_exhausted".into();
    ingest(&*app.analytics, vec![event(0), failed, event(2)])
        .await
        .unwrap();

    let all = rows(&*app.analytics, query("model")).await;
    assert_eq!(all.len(), 1);
    let row = &all[0];
    assert_eq!((row.group.as_str(), row.bucket_start_ms), ("mock-echo", 0));
    assert_eq!((row.requests, row.errors), (3, 1));
    assert_eq!(
        (row.prompt_tokens, row.completion_tokens, row.total_tokens),
        (30, 15, 45)
    );
    assert_eq!(row.cost_micro_usd, 9);

    let hourly = rows(
        &*app.analytics,
        UsageQuery {
            bucket: "hour".into(),
            ..query("account")
        },
    )
    .await;
    let cells: Vec<_> = hourly
        .iter()
        .map(|row| (row.bucket_start_ms, row.group.as_str(), row.requests))
        .collect();
    assert_eq!(cells, [(T0, "acct-1", 2), (T0 + 3_600_000, "acct-2", 1)]);

    let windowed = rows(
        &*app.analytics,
        UsageQuery {
            from_ms: T0 + 1,
            to_ms: T0 + 3_600_000,
            ..query("key")
        },
    )
    .await;
    assert_eq!(windowed.len(), 1);
    assert_eq!(windowed[0].group, "key-2");

    let one_account = rows(
        &*app.analytics,
        UsageQuery {
            account_id: "acct-2".into(),
            ..query("provider")
        },
    )
    .await;
    assert_eq!(one_account.len(), 1);
    assert_eq!((one_account[0].requests, one_account[0].errors), (1, 1));
}

#[tokio::test]
async fn bad_queries_are_invalid_requests_naming_the_parameter() {
    let app = spawn_app().await;
    let cases = [
        (query("tenant"), "group_by"),
        (query(""), "group_by"),
        (
            UsageQuery {
                bucket: "minute".into(),
                ..query("key")
            },
            "bucket",
        ),
        (
            UsageQuery {
                from_ms: 20,
                to_ms: 10,
                ..query("key")
            },
            "from",
        ),
        (
            UsageQuery {
                to_ms: -1,
                ..query("key")
            },
            "to",
        ),
    ];
    for (bad, param) in cases {
        let error = query_error(&*app.analytics, bad).await;
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert_eq!(error.param.as_deref(), Some(param));
    }
}

#[tokio::test]
async fn the_same_calls_work_over_grpc() {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(listener, app.grpc.clone());
    let remote = RemoteAnalytics::new(peer(&addr.to_string()).unwrap());

    assert_eq!(
        ingest(&remote, (0..4).map(event).collect()).await.unwrap(),
        4
    );
    assert_stored_once(&remote, 4).await;
    let error = query_error(
        &remote,
        UsageQuery {
            bucket: "week".into(),
            ..query("key")
        },
    )
    .await;
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(error.param.as_deref(), Some("bucket"));
    server.abort();
}

#[tokio::test]
async fn account_tokens_since_sums_each_account_and_key_in_process_and_over_grpc() {
    let app = spawn_app().await;
    let events: Vec<UsageEvent> = (0..4)
        .map(|n| UsageEvent {
            account_id: ["acct-a", "acct-b", "acct-a", ""][n].to_owned(),
            started_at_ms: T0 + i64::try_from(n).unwrap() * 1_000,
            ..event(n)
        })
        .collect();
    let per_event = u64::from(events[0].prompt_tokens + events[0].completion_tokens);
    let events_cost = events[0].cost_micro_usd;
    ingest(&*app.analytics, events).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(listener, app.grpc.clone());
    let remote = RemoteAnalytics::new(peer(&addr.to_string()).unwrap());

    let totals = |since_ms| AccountTokensQuery {
        since_ms,
        spend_since_ms: 0,
    };
    for analytics in [&*app.analytics as &dyn Analytics, &remote] {
        let all = analytics
            .account_tokens_since(Request::new(totals(T0)))
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<(&str, u64)> = all
            .keys
            .iter()
            .map(|key| (key.key_id.as_str(), key.tokens))
            .collect();
        assert_eq!(
            keys,
            ["key-0", "key-1", "key-2", "key-3"].map(|key| (key, per_event))
        );
        assert_eq!(
            all.accounts,
            [
                AccountTokens {
                    account_id: "acct-a".into(),
                    tokens: 2 * per_event
                },
                AccountTokens {
                    account_id: "acct-b".into(),
                    tokens: per_event
                },
            ]
        );
        let later = analytics
            .account_tokens_since(Request::new(totals(T0 + 1_500)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(later.accounts.len(), 1);
        assert_eq!(later.accounts[0].account_id, "acct-a");
        assert_eq!(later.keys.len(), 2);
        assert_eq!(later.keys[0].key_id, "key-2");
        assert!(later.key_spend.is_empty(), "spend only when asked");
        let spend = analytics
            .account_tokens_since(Request::new(AccountTokensQuery {
                since_ms: T0,
                spend_since_ms: T0 + 1_500,
            }))
            .await
            .unwrap()
            .into_inner();
        let spent: Vec<(&str, u64)> = spend
            .key_spend
            .iter()
            .map(|key| (key.key_id.as_str(), key.cost_micro_usd))
            .collect();
        let per_event_cost = u64::try_from(events_cost).unwrap();
        assert_eq!(
            spent,
            [("key-2", per_event_cost), ("key-3", per_event_cost)]
        );
    }
    server.abort();
}
