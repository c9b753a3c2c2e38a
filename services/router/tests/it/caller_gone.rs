//! A caller that goes away mid-request: the router still settles the lease
//! and records the request once.

use std::time::Duration;

use futures_util::StreamExt;
use tollgate_mock_upstream::MockUpstreamArgs;
use tollgate_proto::Router;
use tollgate_proto::v1::chat_chunk;
use tonic::Request;

use crate::harness::{ESTIMATE, chat_request, gateway, upstream};

#[tokio::test]
async fn a_dropped_stream_is_settled_and_recorded_as_client_closed() {
    let gateway = gateway().await;
    let slow = upstream(MockUpstreamArgs {
        chunks: 20,
        chunk_delay_ms: 100,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("slow", &slow, 0, None).await;
    let request = chat_request("a long answer that trickles in slowly", true);

    let mut stream = gateway
        .router
        .chat_stream(Request::new(request.clone()))
        .await
        .unwrap()
        .into_inner();
    let route = stream.next().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(route, chat_chunk::Event::ServedBy(_)), "{route:?}");
    let first = stream.next().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(first, chat_chunk::Event::Data(_)), "{first:?}");
    drop(stream);

    let event = gateway.usage.only(&request.request_id).await;
    assert_eq!(event.status, 499);
    assert_eq!(event.error_code, "client_closed_request");
    assert!(event.streamed);
    assert_eq!(event.account_id, account.id);
    // Charged an estimate: the prompt and one token per relayed chunk.
    assert!(event.prompt_tokens > 0);
    assert!(event.completion_tokens >= 1 && event.completion_tokens < 22);

    let after = gateway.settled_account(&account.id).await;
    assert!(after.tokens_used_today > 0);
    assert_eq!(
        after.tokens_used_today,
        u64::from(event.prompt_tokens + event.completion_tokens)
    );
}

#[tokio::test]
async fn a_stream_dropped_while_the_upstream_pauses_is_settled_at_once() {
    let gateway = gateway().await;
    // After its first event the upstream goes quiet for seconds (a model
    // thinking), as long as the test would wait for the usage event.
    let pausing = upstream(MockUpstreamArgs {
        chunks: 2,
        chunk_delay_ms: 10_000,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("pausing", &pausing, 0, None).await;
    let request = chat_request("think long before answering", true);

    let mut stream = gateway
        .router
        .chat_stream(Request::new(request.clone()))
        .await
        .unwrap()
        .into_inner();
    let route = stream.next().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(route, chat_chunk::Event::ServedBy(_)), "{route:?}");
    let first = stream.next().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(first, chat_chunk::Event::Data(_)), "{first:?}");
    drop(stream);

    // Nobody reads the rest: the router stops relaying, settles and records
    // without waiting for the upstream's next event.
    let event = gateway.usage.only(&request.request_id).await;
    assert_eq!(event.status, 499);
    assert_eq!(event.error_code, "client_closed_request");
    assert_eq!(
        event.completion_tokens, 1,
        "only the role chunk was relayed"
    );
    let after = gateway.settled_account(&account.id).await;
    assert_eq!(
        after.tokens_used_today,
        u64::from(event.prompt_tokens + event.completion_tokens)
    );
}

#[tokio::test]
async fn a_dropped_chat_call_is_still_settled_and_recorded() {
    let gateway = gateway().await;
    let slow = upstream(MockUpstreamArgs {
        latency_ms: 600,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("slow", &slow, 0, None).await;
    let request = chat_request("answer me eventually", false);

    let call = gateway.router.chat(Request::new(request.clone()));
    let outcome = tokio::time::timeout(Duration::from_millis(100), call).await;
    assert!(
        outcome.is_err(),
        "the upstream takes longer than the caller waits"
    );
    // The request is still in flight, holding its reservation.
    assert_eq!(
        gateway.get_account(&account.id).await.tokens_reserved,
        u64::from(ESTIMATE)
    );

    let event = gateway.usage.only(&request.request_id).await;
    assert_eq!(event.status, 200, "the upstream answered");
    assert_eq!(event.error_code, "");
    assert!(!event.streamed);
    assert_eq!(event.account_id, account.id);
    assert!(event.prompt_tokens > 0 && event.completion_tokens > 0);

    let after = gateway.settled_account(&account.id).await;
    assert_eq!(
        after.tokens_used_today,
        u64::from(event.prompt_tokens + event.completion_tokens)
    );
    assert_eq!(slow.stats().requests, 1);
}
