//! The edge in front of the real quota and analytics services (SQLite in a
//! temporary directory, called in process); the router is down. What quota
//! and analytics decide (which keys exist, what makes an account or a usage
//! query valid) reaches the admin and the client through the edge intact.
//! Each service is made by its crate's own `build`, as the binary makes
//! them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tollgate_edge::{EdgeSettings, EdgeState, admin_router, public_router, watch_invalidations};
use tower::ServiceExt;

use crate::support::{self, same_services, services_in_process};

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
    let settings = EdgeSettings {
        max_body_bytes: BODY_LIMIT,
        ..EdgeSettings::new(SecretString::from(ADMIN_TOKEN))
    };
    let edge = support::spawn_app(settings, services_in_process(dir.path()).await);
    TestApp {
        state: edge.state().clone(),
        _dir: dir,
    }
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

/// Another edge in front of the same services, with its own key cache that
/// trusts a record for `ttl` whether or not it watches invalidations.
fn another_edge(state: &EdgeState, ttl: Duration) -> EdgeState {
    let settings = EdgeSettings {
        key_cache_ttl: ttl,
        key_cache_unwatched_ttl: ttl,
        ..EdgeSettings::new(SecretString::from(ADMIN_TOKEN))
    };
    support::spawn_app(settings, same_services(state))
        .state()
        .clone()
}

/// The status of a chat through `state`: 503 means the key passed (the
/// router is down), 401 that it was refused.
async fn chat_status(state: &EdgeState, key: &str) -> StatusCode {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(CHAT))
        .unwrap();
    send(public_router(state.clone()), request).await.status
}

/// Polls every 50 ms, for up to a second, until `key` is refused.
async fn refused_within_a_second(state: &EdgeState, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let status = chat_status(state, key).await;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert!(Instant::now() < deadline, "still {status} after 1 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_revoked_through_one_edge_is_dropped_by_another_that_watches() {
    let app = spawn_app().await;
    let other = another_edge(&app.state, Duration::from_secs(300));

    // Not watching: the other edge answers from its cache, revoked or not.
    let (first, first_id) = app.new_key().await;
    assert_eq!(
        chat_status(&other, &first).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let answer = app
        .admin("DELETE", &format!("/admin/v1/keys/{first_id}"), Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        chat_status(&other, &first).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Subscribing empties the cache, since events may have been missed.
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::clone(&stop);
    let watcher = tokio::spawn(watch_invalidations(other.clone(), async move {
        stopped.notified().await;
    }));
    refused_within_a_second(&other, &first).await;

    // From then on, a write through the first edge reaches the other's cache.
    let (second, second_id) = app.new_key().await;
    let (third, _) = app.new_key().await;
    assert_eq!(
        chat_status(&other, &second).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        chat_status(&other, &third).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let answer = app
        .admin(
            "PATCH",
            &format!("/admin/v1/keys/{second_id}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    refused_within_a_second(&other, &second).await;
    assert_eq!(
        chat_status(&other, &third).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    stop.notify_one();
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn profile_stats_show_each_account_and_unknown_profiles_are_404() {
    let app = spawn_app().await;
    let answer = app
        .admin("GET", "/admin/v1/profiles/nobody/stats", Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], "not_found");
    assert_eq!(answer.json["error"]["type"], "invalid_request_error");
    let answer = app
        .admin("GET", "/admin/v1/profiles/team%20a/stats", Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(answer.param(), "profile");

    for body in [
        json!({"provider": "mock", "name": "a-mock", "profile": "team-a",
               "models": ["mock-echo"], "daily_token_limit": 1000}),
        json!({"provider": "openai", "name": "a-off", "profile": "team-a",
               "secret": "sk-test-secret-9876", "enabled": false}),
        json!({"provider": "mock", "name": "elsewhere"}),
    ] {
        let created = app.admin("POST", "/admin/v1/accounts", body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    }
    let answer = app
        .admin("GET", "/admin/v1/profiles/team-a/stats", Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["profile"], "team-a");
    let accounts = answer.json["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{}", answer.json);
    let by_name = |name: &str| {
        accounts
            .iter()
            .find(|account| account["name"] == name)
            .unwrap()
            .clone()
    };
    let mock = by_name("a-mock");
    assert_eq!(mock["state"], "ok");
    assert_eq!(mock["provider"], "mock");
    assert_eq!(mock["tokens_used_today"], 0);
    assert_eq!(mock["tokens_remaining"], 1000);
    assert_eq!(mock["daily_token_limit"], 1000);
    assert_eq!(mock["requests_today"], 0);
    let off = by_name("a-off");
    assert_eq!(off["state"], "disabled");
    assert_eq!(off["tokens_remaining"], Value::Null);
    assert!(!answer.json.to_string().contains("sk-test"));

    // A profile only a key names exists too, with no accounts.
    let key = app
        .admin("POST", "/admin/v1/keys", json!({"profile": "team-b"}))
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.json);
    let answer = app
        .admin("GET", "/admin/v1/profiles/team-b/stats", Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["accounts"], json!([]));
}

#[tokio::test]
async fn an_account_test_needs_a_known_account_with_a_model_and_reports_failures_as_200() {
    let app = spawn_app().await;
    let answer = app
        .admin("POST", "/admin/v1/accounts/acct_missing/test", Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], "not_found");

    let bare = app
        .admin(
            "POST",
            "/admin/v1/accounts",
            json!({"provider": "openai", "name": "bare", "secret": "sk-test-secret-4321"}),
        )
        .await;
    let uri = format!(
        "/admin/v1/accounts/{}/test",
        bare.json["id"].as_str().unwrap()
    );
    let answer = app.admin("POST", &uri, Value::Null).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(answer.param(), "model");
    let answer = app.admin("POST", &uri, json!({"mode": "x"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);

    // The router is down: the test ran and failed, which is a 200.
    let answer = app
        .admin("POST", &uri, json!({"model": "gpt-4o-mini"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["ok"], false);
    assert_eq!(answer.json["status"], 503);
    assert_eq!(answer.json["model"], "gpt-4o-mini");
    assert!(
        answer.json["error"]["message"].is_string(),
        "{}",
        answer.json
    );
    assert!(!answer.json.to_string().contains("sk-test"));
}

#[tokio::test]
async fn count_tokens_is_the_marked_estimate_and_needs_no_router() {
    let app = spawn_app().await;
    let account = json!({"provider": "mock", "name": "counted", "models": ["mock-echo"]});
    let created = app.admin("POST", "/admin/v1/accounts", account).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let (key, _) = app.new_key().await;
    let count = |body: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/v1/messages/count_tokens")
            .header("x-api-key", key.as_str())
            .header("anthropic-version", "2023-06-01")
            .body(Body::from(body))
            .unwrap()
    };
    let response = public_router(app.state.clone())
        .oneshot(count(
            r#"{"model":"mock-echo","messages":[{"role":"user","content":"count these words"}]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-tollgate-token-count"], "estimate");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    // 3 for the reply, 4 for the message, ceil(17 bytes / 4) for its text.
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"input_tokens": 12})
    );

    let unknown = send(
        public_router(app.state.clone()),
        count(r#"{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}"#),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json["type"], "error");
    assert_eq!(unknown.json["error"]["type"], "not_found_error");
    let refused = send(
        public_router(app.state.clone()),
        count(r#"{"model":"mock-echo","top_k":3,"messages":[{"role":"user","content":"hi"}]}"#),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json["error"]["type"], "invalid_request_error");
}
