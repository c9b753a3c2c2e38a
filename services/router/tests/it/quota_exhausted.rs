//! An account whose daily tokens are spent: the caller gets quota's 429 and
//! the request is still recorded.

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_mock_upstream::MockUpstreamArgs;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::Router;
use tonic::{Code, Request};

use crate::harness::{chat_request, gateway, upstream};

#[tokio::test]
async fn a_spent_account_answers_quota_exhausted_with_a_retry_delay() {
    let gateway = gateway().await;
    let upstream = upstream(MockUpstreamArgs {
        completion_tokens: Some(80),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("tiny", &upstream, 0, Some(100)).await;

    // The first request fits (nothing used yet) and spends the day.
    gateway
        .router
        .chat(Request::new(chat_request("use it up", false)))
        .await
        .unwrap();
    let spent = gateway.settled_account(&account.id).await;
    assert!(spent.tokens_used_today > 80, "{spent:?}");

    let request = chat_request("one more", false);
    let status = gateway
        .router
        .chat(Request::new(request.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.metadata().get("tg-error-kind").unwrap(),
        "quota_exhausted"
    );
    let error = GatewayError::from_status(&status);
    assert_eq!(error.kind, ErrorKind::QuotaExhausted);
    let retry_after = error.retry_after_secs.unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert_eq!(
        upstream.stats().requests,
        1,
        "no upstream call without a lease"
    );

    let event = gateway.usage.only(&request.request_id).await;
    assert_eq!(event.status, 429);
    assert_eq!(event.error_code, "quota_exhausted");
    assert_eq!(event.account_id, "");
    assert_eq!(event.provider, "");
    assert_eq!((event.prompt_tokens, event.completion_tokens), (0, 0));

    // A stream is refused the same way, before any event.
    let streamed = chat_request("a stream, then", true);
    let status = gateway
        .router
        .chat_stream(Request::new(streamed.clone()))
        .await
        .err()
        .unwrap();
    assert_eq!(
        GatewayError::from_status(&status).kind,
        ErrorKind::QuotaExhausted
    );
    let event = gateway.usage.only(&streamed.request_id).await;
    assert_eq!((event.status, event.streamed), (429, true));
    assert_eq!(
        gateway.settled_account(&account.id).await.tokens_used_today,
        spent.tokens_used_today
    );
}
