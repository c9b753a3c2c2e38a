//! Non-streamed chat: the answer, failover to another account, and
//! failures that are the request's own fault.

use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_mock_upstream::MockUpstreamArgs;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::Router;
use tonic::{Code, Request};

use crate::harness::{
    MODEL, chat_request, gateway, gateway_with_workers, healthy_upstream, upstream,
};

#[tokio::test]
async fn a_chat_is_answered_settled_and_recorded_once() {
    let gateway = gateway().await;
    let upstream = healthy_upstream().await;
    let account = gateway.account("only", &upstream, 0, None).await;
    let request = chat_request("hello from the router tests", false);

    let reply = gateway
        .router
        .chat(Request::new(request.clone()))
        .await
        .unwrap()
        .into_inner();

    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "hello from the router tests"
    );
    let usage = reply.usage.unwrap();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(body["usage"]["prompt_tokens"], usage.prompt_tokens);
    assert_eq!(body["usage"]["completion_tokens"], usage.completion_tokens);
    let served = reply.served_by.unwrap();
    assert_eq!(served.provider, "openai_compatible");
    assert_eq!(served.account_id, account.id);
    assert_eq!(served.upstream_model, MODEL);
    assert_eq!(served.attempts, 1);

    let event = gateway.usage.only(&request.request_id).await;
    assert_eq!(event.status, 200);
    assert_eq!(event.error_code, "");
    assert_eq!(event.account_id, account.id);
    assert_eq!(event.provider, "openai_compatible");
    assert_eq!(event.key_id, "key_test");
    assert_eq!(event.requested_model, MODEL);
    assert_eq!(event.prompt_tokens, usage.prompt_tokens);
    assert_eq!(event.completion_tokens, usage.completion_tokens);
    assert_eq!(event.attempts, 1);
    assert!(!event.streamed);
    // The model catalog knows no price for the test model: cost unknown,
    // recorded as 0, never guessed.
    assert_eq!((event.cost_micro_usd, event.priced), (0, false));

    let after = gateway.settled_account(&account.id).await;
    assert_eq!(
        after.tokens_used_today,
        u64::from(usage.prompt_tokens + usage.completion_tokens)
    );
    assert_eq!(upstream.stats().requests, 1);
}

#[tokio::test]
async fn a_rate_limited_account_fails_over_and_then_cools_down() {
    let gateway = gateway().await;
    let limited = upstream(MockUpstreamArgs {
        fail_status: Some(429),
        retry_after: Some(30),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let healthy = healthy_upstream().await;
    let primary = gateway.account("primary", &limited, 10, None).await;
    let backup = gateway.account("backup", &healthy, 0, None).await;

    let first = chat_request("fail over, please", false);
    let reply = gateway
        .router
        .chat(Request::new(first.clone()))
        .await
        .unwrap()
        .into_inner();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "fail over, please"
    );
    let served = reply.served_by.unwrap();
    assert_eq!(served.account_id, backup.id);
    assert_eq!(served.attempts, 2);
    assert_eq!((limited.stats().requests, healthy.stats().requests), (1, 1));

    let event = gateway.usage.only(&first.request_id).await;
    assert_eq!(event.status, 200);
    assert_eq!(event.attempts, 2);
    assert_eq!(event.account_id, backup.id);
    let usage = reply.usage.unwrap();
    assert_eq!(event.completion_tokens, usage.completion_tokens);

    let primary_after = gateway.settled_account(&primary.id).await;
    assert_eq!(primary_after.tokens_used_today, 0);
    let backup_after = gateway.settled_account(&backup.id).await;
    assert_eq!(
        backup_after.tokens_used_today,
        u64::from(usage.prompt_tokens + usage.completion_tokens)
    );

    // The primary cools down for its Retry-After: the next request goes
    // straight to the backup.
    let second = chat_request("and again", false);
    let reply = gateway
        .router
        .chat(Request::new(second.clone()))
        .await
        .unwrap()
        .into_inner();
    let served = reply.served_by.unwrap();
    assert_eq!(served.account_id, backup.id);
    assert_eq!(served.attempts, 1);
    assert_eq!((limited.stats().requests, healthy.stats().requests), (1, 2));
    assert_eq!(gateway.usage.only(&second.request_id).await.attempts, 1);
}

#[tokio::test]
async fn an_invalid_request_is_not_retried() {
    let gateway = gateway().await;
    let refusing = upstream(MockUpstreamArgs {
        fail_status: Some(400),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let healthy = healthy_upstream().await;
    let primary = gateway.account("primary", &refusing, 10, None).await;
    gateway.account("backup", &healthy, 0, None).await;
    let request = chat_request("the upstream will not like this", false);

    let status = gateway
        .router
        .chat(Request::new(request.clone()))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    let error = GatewayError::from_status(&status);
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(
        status.metadata().get("tg-error-kind").unwrap(),
        "invalid_request"
    );
    assert_eq!(
        (refusing.stats().requests, healthy.stats().requests),
        (1, 0)
    );

    let event = gateway.usage.only(&request.request_id).await;
    assert_eq!(event.status, 400);
    assert_eq!(event.error_code, "invalid_request");
    assert_eq!(event.account_id, primary.id);
    assert_eq!(event.attempts, 1);
    assert_eq!((event.prompt_tokens, event.completion_tokens), (0, 0));

    let after = gateway.settled_account(&primary.id).await;
    assert_eq!(after.tokens_used_today, 0);
}

#[tokio::test]
async fn a_worker_that_is_down_is_not_blamed_on_the_account() {
    // The first worker in turn listens nowhere; one failure would open the
    // account's circuit if it were counted against the account.
    let nowhere = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let dead: tollgate_proto::WorkerHandle = std::sync::Arc::new(
        tollgate_proto::remote::RemoteWorker::new(tollgate_proto::remote::peer(&nowhere).unwrap()),
    );
    let gateway = gateway_with_workers(
        tollgate_quota::QuotaSettings {
            failure_threshold: 1,
            failure_cooldown: std::time::Duration::from_secs(60),
            ..tollgate_quota::QuotaSettings::default()
        },
        vec![dead],
    )
    .await;
    let upstream = healthy_upstream().await;
    let account = gateway.account("only", &upstream, 0, None).await;

    for n in 0..4 {
        let reply = gateway
            .router
            .chat(Request::new(chat_request(&format!("request {n}"), false)))
            .await
            .unwrap()
            .into_inner();
        let served = reply.served_by.unwrap();
        // Each request meets the dead worker first (the pool takes the two
        // in turn, two picks a request), then the same account answers
        // through the live one.
        assert_eq!(served.account_id, account.id);
        assert_eq!(served.attempts, 2, "request {n}");
    }
    assert_eq!(upstream.stats().requests, 4);
}
