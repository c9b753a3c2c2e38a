//! The edge in front of the real quota and analytics services (SQLite in a
//! temporary directory, called in process); the router is down. What quota
//! and analytics decide (which keys exist, what makes an account or a usage
//! query valid) reaches the admin and the client through the edge intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tollgate_analytics::AnalyticsService;
use tollgate_core::clock::SystemClock;
use tollgate_edge::{EdgeSettings, EdgeState, admin_router, public_router};
use tollgate_proto::remote::{RemoteRouter, channel};
use tollgate_quota::{QuotaService, QuotaSettings};
use tollgate_store::control::SqliteControlStore;
use tollgate_store::counters::MemoryCounters;
use tollgate_store::crypto::{MasterKey, SecretBox};
use tollgate_store::usage::SqliteUsageStore;
use tollgate_telemetry::Metrics;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "admin-token-with-services";
const BODY_LIMIT: usize = 1024;
const CHAT: &str = r#"{"model":"mock-echo","messages":[{"role":"user","content":"hi"}]}"#;

struct TestApp {
    state: EdgeState,
    _dir: TempDir,
}

struct Answer {
    status: StatusCode,
    json: Value,
}

impl Answer {
    fn param(&self) -> &str {
        self.json["error"]["param"].as_str().unwrap_or_default()
    }
}

async fn spawn_app() -> TestApp {
    let dir = TempDir::new().unwrap();
    let metrics = Arc::new(Metrics::new());
    let control = SqliteControlStore::open(&dir.path().join("control.db"))
        .await
        .unwrap();
    let quota = QuotaService::new(
        Arc::new(control),
        Arc::new(MemoryCounters::new()),
        SecretBox::new(&MasterKey::generate().unwrap()),
        Arc::new(SystemClock),
        Arc::clone(&metrics),
        QuotaSettings::default(),
    )
    .await
    .unwrap();
    let usage = SqliteUsageStore::open(&dir.path().join("usage.db"))
        .await
        .unwrap();
    let analytics = AnalyticsService::new(Arc::new(usage), Arc::clone(&metrics));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let router = RemoteRouter::new(channel(&closed.local_addr().unwrap().to_string()).unwrap());
    drop(closed);
    let mut settings = EdgeSettings::new(SecretString::from(ADMIN_TOKEN));
    settings.max_body_bytes = BODY_LIMIT;
    let state = EdgeState::new(
        Arc::new(router),
        Arc::new(quota),
        Arc::new(analytics),
        metrics,
        settings,
    );
    TestApp { state, _dir: dir }
}

async fn send(router: axum::Router, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, json }
}

impl TestApp {
    async fn admin(&self, method: &str, uri: &str, body: Value) -> Answer {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(body)
            .unwrap();
        send(admin_router(self.state.clone()), request).await
    }

    async fn chat(&self, key: &str, body: Body) -> Answer {
        let request = Request::builder()
            .method("POST")
            .uri("/v1/chat/completions")
            .header("authorization", format!("Bearer {key}"))
            .body(body)
            .unwrap();
        send(public_router(self.state.clone()), request).await
    }

    /// A new client key, through the admin API.
    async fn new_key(&self) -> (String, String) {
        let created = self.admin("POST", "/admin/v1/keys", json!({})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
        let key = created.json["key"].as_str().unwrap().to_owned();
        let id = created.json["id"].as_str().unwrap().to_owned();
        (key, id)
    }
}

/// A body larger than the limit that counts how often it is polled.
fn counted_body(polls: &Arc<AtomicUsize>) -> Body {
    let polls = Arc::clone(polls);
    let chunks = futures_util::stream::repeat_with(move || {
        polls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![b' '; 256])
    })
    .take(2 * BODY_LIMIT / 256);
    Body::from_stream(chunks)
}

#[tokio::test]
async fn an_unknown_key_is_401_before_its_body_is_read() {
    let app = spawn_app().await;
    let bogus = "tg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for _ in 0..2 {
        let polls = Arc::new(AtomicUsize::new(0));
        let answer = app.chat(bogus, counted_body(&polls)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
        assert_eq!(answer.json["error"]["code"], "invalid_api_key");
        assert_eq!(polls.load(Ordering::SeqCst), 0);
    }
    let answer = app.chat(bogus, Body::from("{\"model\": ")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_known_key_gets_body_errors_then_reaches_the_router() {
    let app = spawn_app().await;
    let (key, _) = app.new_key().await;
    let polls = Arc::new(AtomicUsize::new(0));
    let answer = app.chat(&key, counted_body(&polls)).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.json
    );
    assert!(polls.load(Ordering::SeqCst) > 0);

    let answer = app.chat(&key, Body::from("{\"model\": ")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = app
        .chat(&key, Body::from(r#"{"model":"m","messages":[]}"#))
        .await;
    assert_eq!(answer.param(), "messages");

    let answer = app.chat(&key, Body::from(CHAT)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.json
    );
}

#[tokio::test]
async fn a_disabled_key_works_again_as_soon_as_it_is_enabled() {
    let app = spawn_app().await;
    let (key, id) = app.new_key().await;
    let uri = format!("/admin/v1/keys/{id}");
    let answer = app.admin("PATCH", &uri, json!({"enabled": false})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    // Quota refuses the key, and the edge remembers the refusal ...
    let answer = app.chat(&key, Body::from(CHAT)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // ... until an admin write through this edge drops it.
    let answer = app.admin("PATCH", &uri, json!({"enabled": true})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let answer = app.chat(&key, Body::from(CHAT)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.json
    );
}

#[tokio::test]
async fn quota_judges_accounts_and_names_the_field() {
    let app = spawn_app().await;
    let refused = [
        (json!({}), "provider"),
        (json!({"provider": "acme"}), "provider"),
        (json!({"provider": "openai"}), "secret"),
        (
            json!({"provider": "openai", "secret": "sk-x", "base_url": "ftp://x"}),
            "base_url",
        ),
        (
            json!({"provider": "openai_compatible", "secret": "sk-x"}),
            "base_url",
        ),
        (json!({"provider": "mock", "models": ["a b"]}), "models"),
        (json!({"provider": "mock", "profile": "team a"}), "profile"),
        (json!({"provider": "mock", "rpm": 0}), "rpm"),
    ];
    for (body, param) in refused {
        let answer = app.admin("POST", "/admin/v1/accounts", body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.json
        );
        assert_eq!(answer.json["error"]["code"], "invalid_request");
        assert_eq!(answer.param(), param, "{body}: {}", answer.json);
    }

    let created = app
        .admin(
            "POST",
            "/admin/v1/accounts",
            json!({"provider": "openai", "name": "main", "secret": "sk-test-1234"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.json["profile"], "default");
    let uri = format!(
        "/admin/v1/accounts/{}",
        created.json["id"].as_str().unwrap()
    );
    for (body, param) in [
        (json!({"secret": ""}), "secret"),
        (json!({"secret": null}), "secret"),
        (json!({"base_url": "not a url"}), "base_url"),
        (json!({"name": ""}), "name"),
    ] {
        let answer = app.admin("PATCH", &uri, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.json
        );
        assert_eq!(answer.param(), param, "{body}: {}", answer.json);
    }
    let answer = app
        .admin(
            "PATCH",
            &uri,
            json!({"base_url": "https://api.example.com/v1/"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["base_url"], "https://api.example.com/v1");

    // A provider that needs no secret may have its secret cleared.
    let mock = app
        .admin(
            "POST",
            "/admin/v1/accounts",
            json!({"provider": "mock", "secret": "anything"}),
        )
        .await;
    assert_eq!(mock.status, StatusCode::CREATED, "{}", mock.json);
    let uri = format!("/admin/v1/accounts/{}", mock.json["id"].as_str().unwrap());
    let answer = app.admin("PATCH", &uri, json!({"secret": null})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["secret_mask"], "");
}

#[tokio::test]
async fn analytics_judges_usage_queries_and_names_the_parameter() {
    let app = spawn_app().await;
    for (query, param) in [
        ("group_by=user", "group_by"),
        ("group_by=", "group_by"),
        ("bucket=week", "bucket"),
        ("from=200&to=100", "from"),
        ("from=yesterday", "from"),
    ] {
        let answer = app
            .admin("GET", &format!("/admin/v1/usage?{query}"), Value::Null)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.json
        );
        assert_eq!(answer.param(), param, "{query}: {}", answer.json);
    }
    let answer = app
        .admin(
            "GET",
            "/admin/v1/usage?group_by=provider&bucket=hour&from=2024-01-01T00:00:00Z",
            Value::Null,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json, json!({"rows": []}));
}
