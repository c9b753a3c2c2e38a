//! The edge's routers answered with no socket (`oneshot`), in front of real
//! gRPC clients of router, quota and analytics pointed at a port nothing
//! listens on: everything the edge decides before calling them, and how it
//! reports them being down; and the edge served on sockets through
//! shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tollgate_edge::{EdgeSettings, EdgeState, Listeners, admin_router, public_router};
use tollgate_shutdown::Shutdown;
use tower::ServiceExt;

use crate::support::{services_down, spawn_app};

const ADMIN_TOKEN: &str = "s3cret-admin-token";
/// Well-formed but unknown to any quota.
const KEY: &str = "tg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const BODY: &str = r#"{"model":"mock-echo","messages":[{"role":"user","content":"hi"}]}"#;
const BODY_LIMIT: usize = 1024;

/// An edge in front of services that are all down.
fn app_with(admin_token: &str) -> tollgate_edge::App {
    let settings = EdgeSettings {
        max_body_bytes: BODY_LIMIT,
        ..EdgeSettings::new(SecretString::from(admin_token))
    };
    spawn_app(settings, services_down())
}

fn state_with(admin_token: &str) -> EdgeState {
    app_with(admin_token).state().clone()
}

fn state() -> EdgeState {
    state_with(ADMIN_TOKEN)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Answer {
    fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }

    fn error_param(&self) -> &str {
        self.json["error"]["param"].as_str().unwrap_or_default()
    }
}

async fn send(router: Router, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
    }
}

fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn chat(state: &EdgeState, headers: &[(&str, &str)], body: impl Into<Body>) -> Answer {
    send(
        public_router(state.clone()),
        request("POST", "/v1/chat/completions", headers, body),
    )
    .await
}

async fn admin(
    state: &EdgeState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> Answer {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    send(
        admin_router(state.clone()),
        request(method, uri, &headers, body.to_owned()),
    )
    .await
}

fn assert_openai_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.error_code(), code, "{}", answer.text);
    assert!(
        answer.json["error"]["message"].is_string(),
        "{}",
        answer.text
    );
    assert!(answer.json["error"]["type"].is_string(), "{}", answer.text);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert!(answer.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn chat_without_a_key_is_401_with_a_request_id() {
    let answer = chat(&state(), &[], BODY).await;
    assert_openai_error(&answer, StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_eq!(answer.json["error"]["type"], "authentication_error");
    let id = answer.headers["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_"), "{id}");
}

#[tokio::test]
async fn malformed_keys_are_401_through_either_header() {
    let state = state();
    for header in ["authorization", "x-api-key"] {
        let value = if header == "authorization" {
            bearer("sk-foreign")
        } else {
            "sk-foreign".into()
        };
        let answer = chat(&state, &[(header, &value)], BODY).await;
        assert_openai_error(&answer, StatusCode::UNAUTHORIZED, "invalid_api_key");
    }
}

#[tokio::test]
async fn a_client_sent_request_id_is_not_taken_as_ours() {
    let state = state();
    for client_id in ["client-42", "req_0190b1a2c3d4e5f60718293a4b5c6d7e"] {
        let answer = chat(&state, &[("x-request-id", client_id)], BODY).await;
        let id = answer.headers["x-request-id"].to_str().unwrap();
        assert_ne!(id, client_id);
        assert!(id.starts_with("req_"), "{id}");
    }
}

#[tokio::test]
async fn the_key_is_resolved_before_the_body_is_judged() {
    // Quota is down, so a well-formed key cannot be resolved: whatever the
    // body, the answer is 503, not a verdict on a body nobody may send.
    let auth = bearer(KEY);
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(BODY_LIMIT)
    );
    for body in ["{\"model\": ", "", r#"{"model":"m","messages":[]}"#, &big] {
        let answer = chat(&state(), &[("authorization", &auth)], body.to_owned()).await;
        assert_openai_error(
            &answer,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
        );
    }
    let declared = [
        ("authorization", auth.as_str()),
        ("content-length", "999999999"),
    ];
    let answer = send(
        public_router(state()),
        request("POST", "/v1/chat/completions", &declared, Body::empty()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    // Without a usable key the body is never looked at either.
    let answer = chat(&state(), &[("x-api-key", "sk-foreign")], big).await;
    assert_openai_error(&answer, StatusCode::UNAUTHORIZED, "invalid_api_key");
}

#[tokio::test]
async fn valid_request_with_quota_down_is_503_and_counted() {
    let state = state();
    let auth = bearer(KEY);
    let answer = chat(&state, &[("authorization", &auth)], BODY).await;
    assert_openai_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(!answer.text.contains("127.0.0.1"), "{}", answer.text);

    chat(&state, &[], BODY).await;
    let metrics = admin(&state, "GET", "/metrics", None, "").await;
    for status in ["5xx", "4xx"] {
        let line = format!(
            r#"tollgate_requests_total{{route="chat",model="unknown",provider="unknown",status="{status}"}} 1"#
        );
        assert!(metrics.text.contains(&line), "{}", metrics.text);
    }
}

#[tokio::test]
async fn models_needs_a_key_and_then_quota() {
    let state = state();
    let answer = send(
        public_router(state.clone()),
        request("GET", "/v1/models", &[], ""),
    )
    .await;
    assert_openai_error(&answer, StatusCode::UNAUTHORIZED, "invalid_api_key");
    let answer = send(
        public_router(state),
        request("GET", "/v1/models", &[("x-api-key", KEY)], ""),
    )
    .await;
    assert_openai_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
}

#[tokio::test]
async fn healthz_is_ok_and_readyz_names_every_service_down() {
    for router in [public_router(state()), admin_router(state())] {
        let answer = send(router.clone(), request("GET", "/healthz", &[], "")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json, serde_json::json!({"status": "ok"}));

        let answer = send(router, request("GET", "/readyz", &[], "")).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.text
        );
        assert_eq!(
            answer.json["failed"],
            serde_json::json!(["router", "quota", "analytics"])
        );
        assert_eq!(answer.json["checks"]["quota"], "unreachable");
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let answer = send(
        public_router(state()),
        request("GET", "/v1/nothing", &[("x-request-id", "r-1")], ""),
    )
    .await;
    assert_openai_error(&answer, StatusCode::NOT_FOUND, "not_found");
    assert_ne!(answer.headers["x-request-id"], "r-1");

    let answer = send(
        public_router(state()),
        request("GET", "/v1/chat/completions", &[], ""),
    )
    .await;
    assert_openai_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(answer.headers["allow"], "POST");

    let answer = admin(&state(), "POST", "/metrics", None, "").await;
    assert_openai_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn admin_requires_the_admin_token() {
    let state = state();
    for token in [None, Some("wrong"), Some(KEY)] {
        let answer = admin(&state, "GET", "/admin/v1/keys", token, "").await;
        assert_openai_error(&answer, StatusCode::UNAUTHORIZED, "invalid_api_key");
    }
    // Unknown admin paths do not reveal themselves before the token check.
    let answer = admin(&state, "GET", "/admin/v1/nothing", None, "").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = admin(&state, "GET", "/admin/v1/nothing", Some(ADMIN_TOKEN), "").await;
    assert_openai_error(&answer, StatusCode::NOT_FOUND, "not_found");
    let answer = admin(&state, "PUT", "/admin/v1/keys", Some(ADMIN_TOKEN), "").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn an_empty_admin_token_refuses_everyone() {
    let state = state_with("");
    let answer = admin(&state, "GET", "/admin/v1/keys", Some(""), "").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = send(
        admin_router(state),
        request("GET", "/admin/v1/keys", &[("authorization", "Bearer ")], ""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_with_quota_and_analytics_down_is_503() {
    let state = state();
    for (method, uri, body) in [
        ("GET", "/admin/v1/keys", ""),
        (
            "POST",
            "/admin/v1/keys",
            r#"{"name":"ci","monthly_budget_usd":5}"#,
        ),
        ("GET", "/admin/v1/keys/key_1", ""),
        ("GET", "/admin/v1/accounts", ""),
        (
            "POST",
            "/admin/v1/accounts",
            r#"{"provider":"mock","name":"m"}"#,
        ),
        // Judged by quota and analytics, not here.
        ("POST", "/admin/v1/accounts", r#"{"provider":"acme"}"#),
        (
            "PATCH",
            "/admin/v1/accounts/acct_1",
            r#"{"base_url":"ftp://x","secret":null}"#,
        ),
        ("GET", "/admin/v1/usage?group_by=user&bucket=week", ""),
        ("DELETE", "/admin/v1/accounts/acct_1", ""),
        (
            "GET",
            "/admin/v1/usage?group_by=key&bucket=day&from=2024-01-01T00:00:00Z",
            "",
        ),
        ("GET", "/admin/v1/accounts/acct_1/usage", ""),
    ] {
        let answer = admin(&state, method, uri, Some(ADMIN_TOKEN), body).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {}",
            answer.text
        );
        assert_eq!(answer.error_code(), "service_unavailable");
    }
}

#[tokio::test]
async fn admin_input_errors_are_400_naming_the_field() {
    let state = state();
    for (method, uri, body, param) in [
        (
            "POST",
            "/admin/v1/keys",
            r#"{"name":"x","colour":"red"}"#,
            "colour",
        ),
        (
            "POST",
            "/admin/v1/keys",
            r#"{"expires_at":"next week"}"#,
            "expires_at",
        ),
        (
            "POST",
            "/admin/v1/keys",
            r#"{"monthly_budget_usd":-5}"#,
            "monthly_budget_usd",
        ),
        ("PATCH", "/admin/v1/keys/key_1", r#"{"name":null}"#, "name"),
        (
            "PATCH",
            "/admin/v1/accounts/acct_1",
            r#"{"secret_mask":"x"}"#,
            "secret_mask",
        ),
        ("GET", "/admin/v1/usage?from=yesterday", "", "from"),
        ("GET", "/admin/v1/usage?to=2024-02-30T00:00:00Z", "", "to"),
        ("GET", "/admin/v1/keys/%FF", "", "id"),
    ] {
        let answer = admin(&state, method, uri, Some(ADMIN_TOKEN), body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{method} {uri}: {}",
            answer.text
        );
        assert_eq!(
            answer.error_param(),
            param,
            "{method} {uri}: {}",
            answer.text
        );
    }
    let answer = admin(
        &state,
        "GET",
        "/admin/v1/usage?colour=red",
        Some(ADMIN_TOKEN),
        "",
    )
    .await;
    assert_openai_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    let answer = admin(
        &state,
        "POST",
        "/admin/v1/keys",
        Some(ADMIN_TOKEN),
        "not json",
    )
    .await;
    assert_openai_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn metrics_are_public_and_prometheus_text() {
    let state = state();
    let answer = admin(&state, "GET", "/metrics", None, "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/plain; version=0.0.4");
    assert!(
        answer.text.contains("# TYPE tollgate_requests counter"),
        "{}",
        answer.text
    );

    let openmetrics = send(
        admin_router(state),
        request(
            "GET",
            "/metrics",
            &[("accept", "application/openmetrics-text;version=1.0.0")],
            "",
        ),
    )
    .await;
    let content_type = openmetrics.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
}

/// `GET path` on a connection of its own; the whole reply.
async fn get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
}

#[tokio::test]
async fn run_until_serves_both_apis_turns_unready_then_closes_at_shutdown() {
    let app = app_with(ADMIN_TOKEN);
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (public_at, admin_at) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    let shutdown = Shutdown::new(Duration::from_secs(1));
    let listeners = Listeners {
        public,
        admin: Some(admin),
    };
    let running = tokio::spawn(app.run_until(listeners, shutdown.clone()));
    assert!(get(public_at, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get(admin_at, "/healthz").await.starts_with("HTTP/1.1 200"));

    // Shutdown starts: not ready, but still serving until the drain delay
    // is over.
    shutdown.trigger();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while !get(admin_at, "/readyz").await.contains("shutting_down") {
        assert!(tokio::time::Instant::now() < deadline, "still ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(get(public_at, "/healthz").await.starts_with("HTTP/1.1 200"));

    // Then the listeners close and the edge returns.
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the edge did not stop")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(public_at).await.is_err());
    assert!(TcpStream::connect(admin_at).await.is_err());
}
