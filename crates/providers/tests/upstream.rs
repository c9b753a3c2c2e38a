//! The OpenAI-compatible adapter against a real mock upstream on a socket.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs, spawn};
use tollgate_providers::{
    EventStream, ProviderRequest, Providers, ProvidersConfig, StreamEvent, Usage,
};

const KEY: &str = "sk-upstream-secret-0123456789";

async fn upstream(args: MockUpstreamArgs) -> MockUpstream {
    spawn(args).await.expect("mock upstream starts")
}

fn providers() -> Providers {
    Providers::new(ProvidersConfig::default()).unwrap()
}

fn request(mock: &MockUpstream, content: &str) -> ProviderRequest {
    ProviderRequest {
        provider: "openai".into(),
        base_url: mock.base_url(),
        credential: KEY.into(),
        email: String::new(),
        upstream_model: "gpt-upstream".into(),
        body: Bytes::from(
            json!({"model": "alias", "messages": [{"role": "user", "content": content}]})
                .to_string(),
        ),
        timeout: Duration::from_secs(5),
        completion_cap: None,
        settings: String::new(),
    }
}

async fn collect(stream: EventStream) -> Vec<Result<StreamEvent, GatewayError>> {
    stream.collect().await
}

fn data_json(event: &Result<StreamEvent, GatewayError>) -> Value {
    match event {
        Ok(StreamEvent::Data(data)) => serde_json::from_slice(data).unwrap(),
        other => panic!("expected data, got {other:?}"),
    }
}

#[tokio::test]
async fn json_call_rewrites_the_model_and_reads_usage() {
    let mock = upstream(MockUpstreamArgs {
        api_key: Some(KEY.into()),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let reply = providers()
        .call(&request(&mock, "hello [[mock:cached_tokens=4]]"))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    assert_eq!(body["model"], "gpt-upstream");
    // The prompt counts the directive's text too: 3 + 4 + ceil(30 / 4).
    assert_eq!(
        reply.usage,
        Usage {
            prompt: 3 + 4 + 8,
            completion: 2,
            cached: 4,
            ..Usage::default()
        }
    );
    let stats = mock.stats();
    assert_eq!(stats.last_body.unwrap()["model"], "gpt-upstream");
    assert_eq!(stats.last_authorization.unwrap(), format!("Bearer {KEY}"));
}

#[tokio::test]
async fn streams_each_event_then_usage() {
    let mock = upstream(MockUpstreamArgs {
        chunks: 4,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let stream = providers()
        .call_stream(&request(&mock, "abcdefgh"))
        .await
        .unwrap();
    let events = collect(stream).await;
    // role, 4 content, finish, then usage; [DONE] is not relayed.
    assert_eq!(events.len(), 7, "{events:?}");
    let content: String = events[..6]
        .iter()
        .map(data_json)
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "abcdefgh");
    let Ok(StreamEvent::Usage { usage, data }) = &events[6] else {
        panic!("{events:?}");
    };
    assert_eq!(usage.completion, 2);
    assert_eq!(usage.prompt, 3 + 4 + 2);
    let chunk: Value = serde_json::from_slice(data).unwrap();
    assert_eq!(chunk["choices"], json!([]));
    assert_eq!(chunk["model"], "gpt-upstream");

    // The adapter asked for the stream and its usage.
    let sent = mock.stats().last_body.unwrap();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn slow_streams_are_relayed_as_they_arrive() {
    let mock = upstream(MockUpstreamArgs {
        chunk_delay_ms: 100,
        chunks: 2,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let started = Instant::now();
    let mut stream = providers()
        .call_stream(&request(&mock, "abcd"))
        .await
        .unwrap();
    let first = stream.next().await.unwrap();
    assert!(first.is_ok());
    // Five events and [DONE] take over 500 ms; the first must not wait for them.
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let rest = collect(stream).await;
    assert!(matches!(rest.last(), Some(Ok(StreamEvent::Usage { .. }))));
}

#[tokio::test]
async fn wrong_credential_is_upstream_auth_without_upstream_text() {
    let mock = upstream(MockUpstreamArgs {
        api_key: Some("sk-the-right-key-999".into()),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let providers = providers();
    let error = providers.call(&request(&mock, "hi")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    assert!(!error.message.contains("sk-u"), "{}", error.message);
    assert!(!error.message.contains("Incorrect"), "{}", error.message);
    let error = providers
        .call_stream(&request(&mock, "hi"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
}

#[tokio::test]
async fn forbidden_blames_the_account() {
    let mock = upstream(MockUpstreamArgs {
        api_key: Some(KEY.into()),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let providers = providers();
    let forbidden = request(&mock, "hi [[mock:status=403]]");
    let error = providers.call(&forbidden).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    assert!(!error.message.contains("sample"), "{}", error.message);
    let error = providers.call_stream(&forbidden).await.err().unwrap();
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    assert!(error.kind.is_retryable());
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let mock = upstream(MockUpstreamArgs {
        fail_status: Some(429),
        fail_count: 1,
        retry_after: Some(11),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let providers = providers();
    let error = providers.call(&request(&mock, "hi")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
    assert_eq!(error.retry_after_secs, Some(11));
    assert!(providers.call(&request(&mock, "hi")).await.is_ok());

    let error = providers
        .call_stream(&request(&mock, "[[mock:status=429,retry_after=3]]"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
    assert_eq!(error.retry_after_secs, Some(3));
}

#[tokio::test]
async fn server_errors_and_bad_requests_map_by_status() {
    let mock = upstream(MockUpstreamArgs::any_port()).await;
    let providers = providers();
    for status in [500, 502, 503] {
        let error = providers
            .call(&request(&mock, &format!("[[mock:status={status}]]")))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::UpstreamError, "{status}");
        assert!(error.message.contains(&status.to_string()));
    }
    // OpenAI's 503 that says the engine is overloaded is a class of its
    // own, in a stream too (it fails before the first event).
    let error = providers
        .call(&request(&mock, "[[mock:overloaded=true]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert_eq!(error.message, "the upstream is overloaded");
    let mut streamed = request(&mock, "[[mock:overloaded=true]]");
    streamed.body = Bytes::from(
        json!({"model": "alias", "stream": true,
            "messages": [{"role": "user", "content": "[[mock:overloaded=true]]"}]})
        .to_string(),
    );
    let error = providers.call_stream(&streamed).await.err().unwrap();
    assert_eq!(error.kind, ErrorKind::Overloaded);
    let error = providers
        .call(&request(&mock, "[[mock:status=404]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ModelNotFound);

    let mut bad = request(&mock, "x");
    bad.body = Bytes::from(json!({"model": "m", "messages": []}).to_string());
    let error = providers.call(&bad).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(error.param.as_deref(), Some("messages"));
    assert_eq!(error.message, "messages must be a non-empty array");
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_upstream_error() {
    let mock = upstream(MockUpstreamArgs {
        cut_after: Some(3),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let stream = providers()
        .call_stream(&request(&mock, "abcdef"))
        .await
        .unwrap();
    let events = collect(stream).await;
    let (last, data) = events.split_last().unwrap();
    assert_eq!(last.as_ref().unwrap_err().kind, ErrorKind::UpstreamError);
    assert!(data.len() <= 3, "{events:?}");
    assert!(
        data.iter()
            .all(|event| matches!(event, Ok(StreamEvent::Data(_))))
    );
}

#[tokio::test]
async fn a_cut_after_every_event_still_fails_without_done() {
    let mock = upstream(MockUpstreamArgs::any_port()).await;
    let stream = providers()
        .call_stream(&request(&mock, "ab [[mock:cut_after=99]]"))
        .await
        .unwrap();
    let events = collect(stream).await;
    assert!(events.last().unwrap().is_err());
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Ok(StreamEvent::Usage { .. })))
    );
}

#[tokio::test]
async fn slow_upstreams_time_out() {
    let mock = upstream(MockUpstreamArgs {
        latency_ms: 500,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let providers = providers();
    let mut slow = request(&mock, "hi");
    slow.timeout = Duration::from_millis(100);
    let started = Instant::now();
    let error = providers.call(&slow).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);
    assert!(started.elapsed() < Duration::from_millis(450));
    let error = providers.call_stream(&slow).await.err().unwrap();
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);

    // A stream that stalls between events times out mid-stream.
    let mut stalled = request(&mock, "abcd [[mock:latency_ms=0,chunk_delay_ms=400]]");
    stalled.timeout = Duration::from_millis(100);
    let events = collect(providers.call_stream(&stalled).await.unwrap()).await;
    assert_eq!(
        events.last().unwrap().as_ref().unwrap_err().kind,
        ErrorKind::UpstreamTimeout
    );
}

#[tokio::test]
async fn unreachable_upstreams_are_unavailable() {
    let mock = upstream(MockUpstreamArgs::any_port()).await;
    let closed = request(&mock, "hi");
    mock.shutdown().await.unwrap();
    let providers = providers();
    let error = providers.call(&closed).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unavailable);
    let error = providers.call_stream(&closed).await.err().unwrap();
    assert_eq!(error.kind, ErrorKind::Unavailable);
}

#[tokio::test]
async fn accounts_without_a_credential_send_no_authorization() {
    let mock = upstream(MockUpstreamArgs::any_port()).await;
    let mut keyless = request(&mock, "hi");
    keyless.provider = "ollama".into();
    keyless.credential = String::new();
    providers().call(&keyless).await.unwrap();
    assert_eq!(mock.stats().last_authorization, None);
}

#[tokio::test]
async fn rovo_dev_accounts_send_their_email_and_token_as_basic_auth() {
    let mock = upstream(MockUpstreamArgs::any_port()).await;
    let mut rovo = request(&mock, "hi");
    rovo.provider = "rovodev".into();
    rovo.email = "dev@example.com".into();
    rovo.credential = "atlassian-token".into();
    let reply = providers().call(&rovo).await.unwrap();
    assert!(reply.usage.prompt > 0);
    // base64("dev@example.com:atlassian-token")
    assert_eq!(
        mock.stats().last_authorization.as_deref(),
        Some("Basic ZGV2QGV4YW1wbGUuY29tOmF0bGFzc2lhbi10b2tlbg==")
    );
    let events = collect(providers().call_stream(&rovo).await.unwrap()).await;
    assert!(matches!(events.last(), Some(Ok(StreamEvent::Usage { .. }))));
}

#[tokio::test]
async fn the_in_process_mock_matches_the_mock_upstream() {
    let mock = upstream(MockUpstreamArgs::any_port()).await;
    let providers = providers();
    let over_http = request(&mock, "same answer");
    let in_process = ProviderRequest {
        provider: "mock".into(),
        base_url: String::new(),
        ..over_http.clone()
    };
    let http = providers.call(&over_http).await.unwrap();
    let local = providers.call(&in_process).await.unwrap();
    assert_eq!(http.usage, local.usage);
    let content = |body: &Bytes| {
        serde_json::from_slice::<Value>(body).unwrap()["choices"][0]["message"]["content"].clone()
    };
    assert_eq!(content(&http.body), content(&local.body));

    let http = collect(providers.call_stream(&over_http).await.unwrap()).await;
    let local = collect(providers.call_stream(&in_process).await.unwrap()).await;
    assert_eq!(http.len(), local.len());
    let usage = |events: &[Result<StreamEvent, GatewayError>]| match events.last() {
        Some(Ok(StreamEvent::Usage { usage, .. })) => *usage,
        other => panic!("{other:?}"),
    };
    assert_eq!(usage(&http), usage(&local));
}
