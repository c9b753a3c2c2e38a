//! The worker through its service trait, in-process and over gRPC, against
//! the real mock upstream and the built-in mock provider.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_stream::wrappers::TcpListenerStream;
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs, spawn};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::WorkerHandle;
use tollgate_proto::remote::{RemoteWorker, peer};
use tollgate_proto::v1::{PingRequest, ProviderChunk, ProviderRequest, Usage, provider_chunk};
use tollgate_telemetry::Metrics;
use tollgate_worker::WorkerSettings;
use tonic::Request;

const KEY: &str = "sk-account-key-0123456789";

struct Harness {
    worker: WorkerHandle,
    metrics: Arc<Metrics>,
    upstream: MockUpstream,
}

async fn harness(args: MockUpstreamArgs) -> Harness {
    let upstream = spawn(MockUpstreamArgs {
        api_key: Some(KEY.into()),
        ..args
    })
    .await
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let settings = WorkerSettings {
        default_timeout: Duration::from_secs(5),
        ..WorkerSettings::default()
    };
    let worker = tollgate_worker::build(settings, Arc::clone(&metrics))
        .unwrap()
        .handle();
    Harness {
        worker,
        metrics,
        upstream,
    }
}

fn provider_request(upstream: &MockUpstream, content: &str) -> ProviderRequest {
    ProviderRequest {
        request_id: "req_test".into(),
        provider: "openai_compatible".into(),
        base_url: upstream.base_url(),
        credential: KEY.into(),
        email: String::new(),
        upstream_model: "gpt-upstream".into(),
        body: json!({"model": "alias", "messages": [{"role": "user", "content": content}]})
            .to_string()
            .into_bytes()
            .into(),
        timeout_ms: 0,
        model_label: "gpt-upstream".into(),
        completion_cap: 0,
        settings: String::new(),
    }
}

async fn stream_items(
    worker: &WorkerHandle,
    request: ProviderRequest,
) -> Vec<Result<ProviderChunk, tonic::Status>> {
    let stream = worker
        .call_stream(Request::new(request))
        .await
        .unwrap()
        .into_inner();
    stream.collect().await
}

fn usage_of(chunk: &ProviderChunk) -> Option<&Usage> {
    match &chunk.event {
        Some(provider_chunk::Event::Usage(usage)) => usage.usage.as_ref(),
        _ => None,
    }
}

#[tokio::test]
async fn ping_names_the_service() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let reply = harness
        .worker
        .ping(Request::new(PingRequest {}))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().service, "worker");
}

#[tokio::test]
async fn the_reserved_cap_goes_upstream_only_where_the_client_set_none() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let call = |provider: &str, cap: u32, content: &str| {
        let mut request = provider_request(&harness.upstream, content);
        request.provider = provider.into();
        request.completion_cap = cap;
        harness.worker.call(Request::new(request))
    };
    let reply = call("openai_compatible", 3, "a reply longer than three tokens")
        .await
        .unwrap()
        .into_inner();
    let sent = harness.upstream.stats().last_body.unwrap();
    assert_eq!(sent["max_tokens"], 3);
    assert!(sent.get("max_completion_tokens").is_none());
    assert_eq!(reply.usage.unwrap().completion_tokens, 3);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");

    // OpenAI's own field for OpenAI accounts.
    let mut request = provider_request(&harness.upstream, "hi");
    request.provider = "openai".into();
    request.completion_cap = 7;
    harness.worker.call(Request::new(request)).await.unwrap();
    let sent = harness.upstream.stats().last_body.unwrap();
    assert_eq!(sent["max_completion_tokens"], 7);
    assert!(sent.get("max_tokens").is_none());

    // A client's own cap is left as it is.
    let mut request = provider_request(&harness.upstream, "hi");
    request.body = json!({"model": "alias", "max_tokens": 40,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string()
    .into_bytes()
    .into();
    request.completion_cap = 7;
    harness.worker.call(Request::new(request)).await.unwrap();
    let sent = harness.upstream.stats().last_body.unwrap();
    assert_eq!(sent["max_tokens"], 40);
    assert!(sent.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn call_returns_the_body_and_usage() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let reply = harness
        .worker
        .call(Request::new(provider_request(&harness.upstream, "hello")))
        .await
        .unwrap()
        .into_inner();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    assert_eq!(body["model"], "gpt-upstream");
    assert_eq!(
        reply.usage,
        Some(Usage {
            prompt_tokens: 3 + 4 + 2,
            completion_tokens: 2,
            ..Usage::default()
        })
    );
    let metrics = harness.metrics.encode();
    assert!(
        metrics.contains("tollgate_upstream_duration_seconds_count{model=\"gpt-upstream\",provider=\"openai_compatible\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn call_stream_relays_data_then_one_usage_chunk() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let items = stream_items(
        &harness.worker,
        provider_request(&harness.upstream, "abcdef"),
    )
    .await;
    let (last, data) = items.split_last().unwrap();
    assert_eq!(
        usage_of(last.as_ref().unwrap()).unwrap().completion_tokens,
        2
    );
    assert_eq!(data.len(), 5);
    for item in data {
        let Some(provider_chunk::Event::Data(bytes)) = &item.as_ref().unwrap().event else {
            panic!("expected data: {item:?}");
        };
        let chunk: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
}

#[tokio::test]
async fn failures_before_the_stream_are_the_rpc_error() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let request = provider_request(&harness.upstream, "[[mock:status=429,retry_after=4]]");
    let status = harness
        .worker
        .call_stream(Request::new(request.clone()))
        .await
        .err()
        .unwrap();
    let error = GatewayError::from_status(&status);
    assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
    assert_eq!(error.retry_after_secs, Some(4));

    let status = harness
        .worker
        .call(Request::new(request))
        .await
        .unwrap_err();
    assert_eq!(
        GatewayError::from_status(&status).kind,
        ErrorKind::UpstreamRateLimited
    );

    let wrong_key = ProviderRequest {
        credential: "sk-wrong-credential-000".into(),
        ..provider_request(&harness.upstream, "hi")
    };
    let status = harness
        .worker
        .call(Request::new(wrong_key))
        .await
        .unwrap_err();
    let error = GatewayError::from_status(&status);
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    assert!(!status.message().contains("sk-w"), "{}", status.message());

    let forbidden = provider_request(&harness.upstream, "hi [[mock:status=403]]");
    let status = harness
        .worker
        .call(Request::new(forbidden))
        .await
        .unwrap_err();
    let error = GatewayError::from_status(&status);
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    assert!(!error.message.contains("sample"), "{}", error.message);

    // An overloaded upstream crosses gRPC as its own class, 503.
    let overloaded = provider_request(&harness.upstream, "hi [[mock:overloaded=true]]");
    let status = harness
        .worker
        .call(Request::new(overloaded))
        .await
        .unwrap_err();
    let error = GatewayError::from_status(&status);
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert_eq!(error.kind.http_status(), 503);

    let metrics = harness.metrics.encode();
    assert!(
        metrics.contains("tollgate_upstream_errors_total{provider=\"openai_compatible\",kind=\"upstream_rate_limited\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kind=\"upstream_overloaded\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("kind=\"upstream_error\""), "{metrics}");
    assert!(
        metrics.contains("kind=\"upstream_auth_failed\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn failures_mid_stream_are_the_last_item() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let items = stream_items(
        &harness.worker,
        provider_request(&harness.upstream, "abcdef [[mock:cut_after=2]]"),
    )
    .await;
    let (last, data) = items.split_last().unwrap();
    let error = GatewayError::from_status(last.as_ref().unwrap_err());
    assert_eq!(error.kind, ErrorKind::UpstreamError);
    assert!(
        data.iter()
            .all(|item| item.is_ok() && usage_of(item.as_ref().unwrap()).is_none())
    );
    assert!(
        harness
            .metrics
            .encode()
            .contains("kind=\"upstream_error\"} 1")
    );
}

#[tokio::test]
async fn request_timeouts_apply() {
    let harness = harness(MockUpstreamArgs {
        latency_ms: 400,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let request = ProviderRequest {
        timeout_ms: 50,
        ..provider_request(&harness.upstream, "hi")
    };
    let status = harness
        .worker
        .call(Request::new(request))
        .await
        .unwrap_err();
    assert_eq!(
        GatewayError::from_status(&status).kind,
        ErrorKind::UpstreamTimeout
    );
}

#[tokio::test]
async fn the_mock_provider_answers_in_process() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let request = ProviderRequest {
        provider: "mock".into(),
        base_url: String::new(),
        credential: String::new(),
        upstream_model: "mock-echo".into(),
        ..provider_request(&harness.upstream, "local echo")
    };
    let reply = harness
        .worker
        .call(Request::new(request.clone()))
        .await
        .unwrap()
        .into_inner();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "local echo");
    assert_eq!(body["model"], "mock-echo");
    assert_eq!(harness.upstream.stats().requests, 0);

    let items = stream_items(&harness.worker, request).await;
    assert!(usage_of(items.last().unwrap().as_ref().unwrap()).is_some());
}

#[tokio::test]
async fn unknown_providers_are_unavailable() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let request = ProviderRequest {
        provider: "no_such_provider".into(),
        ..provider_request(&harness.upstream, "hi")
    };
    let status = harness
        .worker
        .call(Request::new(request))
        .await
        .unwrap_err();
    assert_eq!(
        GatewayError::from_status(&status).kind,
        ErrorKind::Unavailable
    );
}

#[tokio::test]
async fn works_the_same_over_grpc() {
    let harness = harness(MockUpstreamArgs::any_port()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = tollgate_worker::build(WorkerSettings::default(), Arc::new(Metrics::new()))
        .unwrap()
        .grpc_service();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let remote: WorkerHandle = Arc::new(RemoteWorker::new(peer(&addr.to_string()).unwrap()));

    let reply = remote
        .call(Request::new(provider_request(
            &harness.upstream,
            "over the wire",
        )))
        .await
        .unwrap()
        .into_inner();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "over the wire");

    let items = stream_items(&remote, provider_request(&harness.upstream, "abc")).await;
    assert!(usage_of(items.last().unwrap().as_ref().unwrap()).is_some());

    let items = stream_items(
        &remote,
        provider_request(&harness.upstream, "abc [[mock:cut_after=1]]"),
    )
    .await;
    let error = GatewayError::from_status(items.last().unwrap().as_ref().unwrap_err());
    assert_eq!(error.kind, ErrorKind::UpstreamError);

    let status = remote
        .call_stream(Request::new(provider_request(
            &harness.upstream,
            "[[mock:status=429,retry_after=6]]",
        )))
        .await
        .err()
        .unwrap();
    let error = GatewayError::from_status(&status);
    assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
    assert_eq!(error.retry_after_secs, Some(6));
    server.abort();
}
