//! Routes end to end: `tollgate all` with the built-in mock provider, a
//! route alias created through the admin API, the CLI or the config file,
//! and chat requests that name the alias.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::*;

/// Runs `tollgate admin <args>` against `gateway`; asserts it succeeded and
/// returns its stdout.
fn admin_cli(gateway: &Gateway, args: &[&str]) -> String {
    let output = Command::new(binary())
        .arg("admin")
        .args(["--url", &gateway.admin, "--token", ADMIN_TOKEN])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "admin {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn admin_call(
    method: reqwest::Method,
    gateway: &Gateway,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", gateway.admin))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn chat_status(gateway: &Gateway, key: &str, model: &str) -> (u16, reqwest::Response) {
    let response = gateway.chat(key, user(model, "routed")).await;
    (response.status().as_u16(), response)
}

async fn model_ids(gateway: &Gateway, key: &str) -> Vec<String> {
    let models: Value = reqwest::Client::new()
        .get(format!("{}/v1/models", gateway.public))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_alias_serves_through_its_deployment_until_the_route_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;
    let key = gateway.key(json!({"name": "routes"})).await;

    let (status, _) = chat_status(&gateway, &key, "smart").await;
    assert_eq!(status, 404);

    // Bad routes are refused with the field at fault.
    let (status, refused) = admin_call(
        reqwest::Method::POST,
        &gateway,
        "/admin/v1/routes",
        Some(json!({"alias": "smart", "deployments": [{"provider": "nope", "model": "x"}]})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "deployments", "{refused}");
    let (status, refused) = admin_call(
        reqwest::Method::POST,
        &gateway,
        "/admin/v1/routes",
        Some(json!({"alias": "smart", "deployments": [], "region": "eu"})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");

    let created = gateway
        .admin_post(
            "/admin/v1/routes",
            json!({"alias": "smart", "deployments": [{"provider": "mock", "model": "mock-echo"}]}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("route_"), "{created}");
    assert_eq!(created["strategy"], Value::Null);

    let (status, response) = chat_status(&gateway, &key, "smart").await;
    assert_eq!(status, 200);
    assert_eq!(response.headers()["x-tollgate-model"], "mock-echo");
    assert_eq!(response.headers()["x-tollgate-provider"], "mock");
    let body: Value = response.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("routed"), "{body}");
    assert!(
        model_ids(&gateway, &key)
            .await
            .contains(&"smart".to_owned())
    );

    let (status, patched) = admin_call(
        reqwest::Method::PATCH,
        &gateway,
        &format!("/admin/v1/routes/{id}"),
        Some(json!({"strategy": "round_robin"})),
    )
    .await;
    assert_eq!((status, &patched["strategy"]), (200, &json!("round_robin")));
    let listed = gateway.admin_get("/admin/v1/routes").await;
    assert_eq!(listed["data"][0]["id"], id.as_str());

    let (status, deleted) = admin_call(
        reqwest::Method::DELETE,
        &gateway,
        &format!("/admin/v1/routes/{id}"),
        None,
    )
    .await;
    assert_eq!((status, &deleted["deleted"]), (200, &json!(true)));
    let (status, response) = chat_status(&gateway, &key, "smart").await;
    assert_eq!(status, 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    let (status, _) = admin_call(
        reqwest::Method::GET,
        &gateway,
        &format!("/admin/v1/routes/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let audit = gateway.admin_get("/admin/v1/audit").await;
    let route_actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["object"] == "route")
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(route_actions, ["delete", "update", "create"], "{audit}");
}

#[tokio::test]
async fn routes_come_from_the_cli_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(
        &config,
        "routes:\n  - alias: declared\n    deployments:\n      - { provider: mock, model: mock-echo }\n    strategy: priority\n",
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let gateway = Gateway::all_with(dir.path(), &["--config", &config]).await;
    let key = gateway.key(json!({"name": "routes"})).await;

    let (status, response) = chat_status(&gateway, &key, "declared").await;
    assert_eq!(status, 200);
    assert_eq!(response.headers()["x-tollgate-model"], "mock-echo");

    let created = admin_cli(
        &gateway,
        &[
            "routes",
            "create",
            "--alias",
            "cli-alias",
            "--deployment",
            "mock:mock-echo:2",
            "--fallbacks",
            "declared",
        ],
    );
    assert!(created.starts_with("created route route_"), "{created}");
    let (status, response) = chat_status(&gateway, &key, "cli-alias").await;
    assert_eq!(status, 200);
    assert_eq!(response.headers()["x-tollgate-model"], "mock-echo");

    let listed = admin_cli(&gateway, &["routes", "list"]);
    let line = listed
        .lines()
        .find(|line| line.contains("cli-alias"))
        .unwrap_or_else(|| panic!("cli-alias not listed:\n{listed}"));
    assert!(
        line.contains("mock:mock-echo*2") && line.contains("declared"),
        "{line}"
    );
    let declared: Value =
        serde_json::from_str(&admin_cli(&gateway, &["routes", "list", "--json"])).unwrap();
    let id = declared["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|route| route["alias"] == "cli-alias")
        .map(|route| route["id"].as_str().unwrap().to_owned())
        .unwrap();
    admin_cli(&gateway, &["routes", "delete", &id]);
    let (status, _) = chat_status(&gateway, &key, "cli-alias").await;
    assert_eq!(status, 404);
}
