//! Per-provider account settings end to end: the admin API refuses a
//! setting the provider does not take with a 400 naming it, keeps and
//! shows the ones it takes (the secret untouched and never shown), and a
//! chat through an `azure_openai` account reaches a fake Azure resource at
//! the deployment URL its settings name, with the key in `api-key`. Run on
//! the embedded stores and on Redis and Postgres.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::*;

const AZURE_KEY: &str = "azure-key-0123456789abcdef0123456789";

async fn admin_call(
    method: reqwest::Method,
    gateway: &Gateway,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", gateway.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// What the fake Azure resource saw: path and query, and the `api-key`.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A fake Azure OpenAI resource with one deployment, `prod-4o`, at API
/// version 2024-10-21 (and on the v1 path): anything else is Azure's 404.
async fn fake_azure() -> (String, Seen) {
    async fn answer(State(seen): State<Seen>, headers: HeaderMap, request: Request) -> Response {
        let target = request
            .uri()
            .path_and_query()
            .map(|target| target.as_str().to_owned())
            .unwrap_or_default();
        let key = headers
            .get("api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        seen.lock().unwrap().push((target.clone(), key.clone()));
        if key.as_deref() != Some(AZURE_KEY) {
            let body = json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}});
            return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
        if target != "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21" {
            let body = json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}});
            return (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response();
        }
        axum::Json(json!({
            "choices": [{
                "content_filter_results": {},
                "finish_reason": "stop",
                "index": 0,
                "logprobs": null,
                "message": {"content": "Hello from Azure.", "refusal": null, "role": "assistant"}
            }],
            "created": 1733400000,
            "id": "chatcmpl-AzureFake",
            "model": "gpt-4o-2024-11-20",
            "object": "chat.completion",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "system_fingerprint": "fp_b705f0c291",
            "usage": {"completion_tokens": 4, "prompt_tokens": 9, "total_tokens": 13}
        }))
        .into_response()
    }
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(answer).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

async fn settings_are_checked_kept_and_used(gateway: &Gateway) {
    let (azure_url, seen) = fake_azure().await;
    let accounts = "/admin/v1/accounts";

    // A key the provider does not take is a 400 that names it.
    let (status, refused) = admin_call(
        reqwest::Method::POST,
        gateway,
        accounts,
        json!({
            "provider": "azure_openai", "name": "azure", "secret": AZURE_KEY,
            "base_url": azure_url, "settings": {"api_verison": "2024-10-21"}
        }),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["error"]["param"], "settings.api_verison",
        "{refused}"
    );
    assert_eq!(refused["error"]["type"], "invalid_request_error");
    let (status, refused) = admin_call(
        reqwest::Method::POST,
        gateway,
        accounts,
        json!({"provider": "openai", "name": "o", "secret": "sk-x", "settings": {"preset": "vllm"}}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "settings.preset");
    let (status, refused) = admin_call(
        reqwest::Method::POST,
        gateway,
        accounts,
        json!({"provider": "openai_compatible", "name": "c", "secret": "token-x", "settings": {"preset": "vLLM"}}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vllm"),
        "{refused}"
    );

    // A preset gives an openai_compatible account its base URL, and a
    // local server's needs no secret; a hosted one's does.
    let local = gateway
        .account(json!({"provider": "openai_compatible", "name": "local-vllm", "settings": {"preset": "vllm"}}))
        .await;
    assert_eq!(local["settings"], json!({"preset": "vllm"}));
    assert_eq!(local["secret_mask"], "");
    let (status, refused) = admin_call(
        reqwest::Method::POST,
        gateway,
        accounts,
        json!({"provider": "openai_compatible", "name": "groq", "settings": {"preset": "groq"}}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "secret");
    let (status, refused) = admin_call(
        reqwest::Method::POST,
        gateway,
        accounts,
        json!({"provider": "openai_compatible", "name": "nowhere", "secret": "token-x"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "base_url");

    let azure = gateway
        .account(json!({
            "provider": "azure_openai", "name": "azure", "secret": AZURE_KEY,
            "base_url": azure_url, "models": ["gpt-4o"],
            "settings": {"api_version": "2024-10-21", "deployments": {"gpt-4o": "prod-4o"}}
        }))
        .await;
    let id = azure["id"].as_str().unwrap().to_owned();
    assert_eq!(
        azure["settings"],
        json!({"api_version": "2024-10-21", "deployments": {"gpt-4o": "prod-4o"}})
    );
    let mask = azure["secret_mask"].clone();
    assert!(!azure.to_string().contains(AZURE_KEY));

    // A chat for the model goes to its deployment, with the key in api-key.
    let key = gateway.key(json!({"name": "azure-user"})).await;
    let response = gateway.chat(&key, user("gpt-4o", "hello")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-provider"], "azure_openai");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from Azure."
    );
    assert_eq!(answer["usage"]["total_tokens"], 13);
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        &(
            "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21".to_owned(),
            Some(AZURE_KEY.to_owned())
        )
    );

    // A PATCH replaces the settings whole; a bad one changes nothing.
    let path = format!("/admin/v1/accounts/{id}");
    let (status, refused) = admin_call(
        reqwest::Method::PATCH,
        gateway,
        &path,
        json!({"settings": {"deployments": {"gpt-4o": "a/b"}}}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "settings.deployments.gpt-4o");
    let patched = gateway
        .admin_patch(
            &path,
            json!({"settings": {"deployments": {"gpt-4o": "eu-4o"}}}),
        )
        .await;
    assert_eq!(
        patched["settings"],
        json!({"deployments": {"gpt-4o": "eu-4o"}})
    );
    assert_eq!(patched["secret_mask"], mask);
    let read = gateway.admin_get(&path).await;
    assert_eq!(read["settings"], patched["settings"]);
    let cleared = gateway.admin_patch(&path, json!({"settings": null})).await;
    assert_eq!(cleared["settings"], json!({}));
    assert_eq!(cleared["secret_mask"], mask);

    // The audit log names the settings, never the secret.
    let audit = gateway.admin_get("/admin/v1/audit").await;
    let text = audit.to_string();
    assert!(text.contains("eu-4o"), "{text}");
    assert!(!text.contains(AZURE_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_stores() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;
    settings_are_checked_kept_and_used(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = RedisPrefix::new("settings");
    let database = Database::create("settings").await;
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &database.url(), &[]).await;
    settings_are_checked_kept_and_used(&gateway).await;
}
