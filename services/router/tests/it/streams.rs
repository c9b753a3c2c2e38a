//! Streamed chat: the order of events, and failover for a stream that
//! fails before it sends anything.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::Router;
use tollgate_proto::v1::{ChatChunk, ServedBy, Usage, UsageChunk, chat_chunk};
use tollgate_quota::QuotaSettings;
use tonic::Request;

use crate::harness::{
    ESTIMATE, Gateway, chat_request, gateway, gateway_with, healthy_upstream, upstream,
};

/// A whole streamed answer, split by kind, in the order it arrived.
struct Streamed {
    route: ServedBy,
    data: Vec<Value>,
    usage: UsageChunk,
}

/// Collects a stream that must be: the route, data events, the usage event.
async fn streamed(gateway: &Gateway, content: &str) -> (String, Streamed) {
    let request = chat_request(content, true);
    let stream = gateway
        .router
        .chat_stream(Request::new(request.clone()))
        .await
        .unwrap()
        .into_inner();
    let chunks: Vec<ChatChunk> = stream.map(Result::unwrap).collect().await;
    let mut events = chunks.into_iter().map(|chunk| chunk.event.unwrap());
    let Some(chat_chunk::Event::ServedBy(route)) = events.next() else {
        panic!("a stream starts with its route");
    };
    let mut data = Vec::new();
    let mut usage = None;
    for event in events {
        assert!(usage.is_none(), "nothing follows the usage event");
        match event {
            chat_chunk::Event::Data(bytes) => data.push(serde_json::from_slice(&bytes).unwrap()),
            chat_chunk::Event::Usage(chunk) => usage = Some(chunk),
            chat_chunk::Event::ServedBy(_) => panic!("a second route"),
        }
    }
    let usage = usage.expect("a usage event ends the stream");
    (request.request_id, Streamed { route, data, usage })
}

fn text_of(data: &[Value]) -> String {
    data.iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn total(usage: &Usage) -> u64 {
    u64::from(usage.prompt_tokens + usage.completion_tokens)
}

#[tokio::test]
async fn a_stream_relays_route_data_and_usage_in_order() {
    let gateway = gateway().await;
    let upstream = upstream(MockUpstreamArgs {
        chunks: 4,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("only", &upstream, 0, None).await;

    let (request_id, stream) = streamed(&gateway, "one two three four five six").await;

    assert_eq!(stream.route.account_id, account.id);
    assert_eq!(stream.route.provider, "openai_compatible");
    assert_eq!(stream.route.attempts, 1);
    // The role chunk, 4 content chunks, the finish_reason chunk.
    assert_eq!(stream.data.len(), 6, "{:?}", stream.data);
    assert_eq!(text_of(&stream.data), "one two three four five six");
    let usage = stream.usage.usage.unwrap();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    let raw: Value = serde_json::from_slice(&stream.usage.data).unwrap();
    assert_eq!(raw["usage"]["completion_tokens"], usage.completion_tokens);

    let event = gateway.usage.only(&request_id).await;
    assert!(event.streamed);
    assert_eq!(event.status, 200);
    assert_eq!(event.error_code, "");
    assert_eq!(event.attempts, 1);
    assert_eq!(event.account_id, account.id);
    assert_eq!(
        (event.prompt_tokens, event.completion_tokens),
        (usage.prompt_tokens, usage.completion_tokens)
    );
    let after = gateway.settled_account(&account.id).await;
    assert_eq!(after.tokens_used_today, total(&usage));
}

/// A stream whose first account's upstream (built from `failing`) fails
/// before its first event reaches the caller from the second account, as a
/// normal stream.
async fn assert_stream_fails_over(failing: MockUpstreamArgs) -> MockUpstream {
    let gateway = gateway().await;
    let broken = upstream(failing).await;
    let healthy = healthy_upstream().await;
    let primary = gateway.account("primary", &broken, 10, None).await;
    let backup = gateway.account("backup", &healthy, 0, None).await;

    let (request_id, stream) = streamed(&gateway, "retry this stream").await;

    assert_eq!(stream.route.account_id, backup.id);
    assert_eq!(stream.route.attempts, 2);
    assert_eq!(text_of(&stream.data), "retry this stream");
    let usage = stream.usage.usage.unwrap();
    assert_eq!((broken.stats().requests, healthy.stats().requests), (1, 1));

    let event = gateway.usage.only(&request_id).await;
    assert!(event.streamed);
    assert_eq!(event.status, 200);
    assert_eq!(event.attempts, 2);
    assert_eq!(event.account_id, backup.id);
    assert_eq!(event.completion_tokens, usage.completion_tokens);

    let primary_after = gateway.settled_account(&primary.id).await;
    assert_eq!(primary_after.tokens_used_today, 0);
    let backup_after = gateway.settled_account(&backup.id).await;
    assert_eq!(backup_after.tokens_used_today, total(&usage));
    broken
}

#[tokio::test]
async fn a_stream_refused_with_503_is_retried_on_another_account() {
    assert_stream_fails_over(MockUpstreamArgs {
        fail_status: Some(503),
        ..MockUpstreamArgs::any_port()
    })
    .await;
}

#[tokio::test]
async fn a_stream_cut_before_its_first_event_is_retried_on_another_account() {
    let broken = assert_stream_fails_over(MockUpstreamArgs {
        cut_after: Some(0),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    // The upstream did start a stream (status 200) before cutting it.
    assert_eq!(broken.stats().cut_streams, 1);
    assert_eq!(broken.stats().failures, 0);
}

#[tokio::test]
async fn a_stream_cut_mid_way_counts_against_the_account() {
    let gateway = gateway_with(QuotaSettings {
        failure_threshold: 1,
        failure_cooldown: Duration::from_secs(60),
        ..QuotaSettings::default()
    })
    .await;
    let cutting = upstream(MockUpstreamArgs {
        chunks: 4,
        cut_after: Some(2),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("cutting", &cutting, 0, None).await;
    let request = chat_request("an answer the upstream drops", true);
    let chunks: Vec<_> = gateway
        .router
        .chat_stream(Request::new(request.clone()))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(
        chunks.last().unwrap().is_err(),
        "the stream ends in its error"
    );
    let event = gateway.usage.only(&request.request_id).await;
    assert_ne!(event.status, 200);
    // Charged (the prompt and the relayed chunks), and the failure opened
    // the account's circuit: the next request finds no account.
    let after = gateway.settled_account(&account.id).await;
    assert!(after.tokens_used_today > 0);
    let next = gateway
        .router
        .chat_stream(Request::new(chat_request("again", true)))
        .await
        .err()
        .expect("no account can serve");
    assert_eq!(
        tollgate_core::GatewayError::from_status(&next).kind,
        tollgate_core::ErrorKind::QuotaExhausted
    );
}

#[tokio::test]
async fn a_stream_longer_than_the_lease_ttl_keeps_its_reservation() {
    let gateway = gateway_with(QuotaSettings {
        lease_ttl: Duration::from_secs(1),
        ..QuotaSettings::default()
    })
    .await;
    let slow = upstream(MockUpstreamArgs {
        chunks: 8,
        chunk_delay_ms: 400,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("slow", &slow, 0, None).await;
    let request = chat_request("an answer that takes three lease TTLs", true);
    let mut stream = gateway
        .router
        .chat_stream(Request::new(request.clone()))
        .await
        .unwrap()
        .into_inner();
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2_500) {
        let chunk = stream.next().await.expect("the stream ended early");
        chunk.unwrap();
        // Without renewals the reservation would be gone after 1 s.
        assert_eq!(
            gateway.get_account(&account.id).await.tokens_reserved,
            u64::from(ESTIMATE),
            "at {:?}",
            started.elapsed()
        );
    }
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
    }
    let event = gateway.usage.only(&request.request_id).await;
    assert_eq!(event.status, 200);
    let after = gateway.settled_account(&account.id).await;
    assert_eq!(
        after.tokens_used_today,
        u64::from(event.prompt_tokens + event.completion_tokens)
    );
}
