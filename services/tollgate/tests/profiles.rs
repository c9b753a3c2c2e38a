//! Profiles end to end: `tollgate all` with the built-in mock provider, a
//! profile created through the admin API, the CLI or the config file, and
//! chat requests of a key in that profile spread by its strategy.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const TEAM: &str = "team-a";

/// Runs `tollgate admin <args>` against `gateway`: its exit status and
/// stdout (stderr appended, for failures).
fn admin_cli(gateway: &Gateway, args: &[&str]) -> (bool, String) {
    let output = Command::new(binary())
        .arg("admin")
        .args(["--url", &gateway.admin, "--token", ADMIN_TOKEN])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
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

/// Tokens used today by each account of the profile, by account name.
async fn tokens_by_account(gateway: &Gateway) -> Vec<(String, u64)> {
    let stats = gateway
        .admin_get(&format!("/admin/v1/profiles/{TEAM}/stats"))
        .await;
    stats["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| {
            (
                account["name"].as_str().unwrap().to_owned(),
                account["tokens_used_today"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_stored_round_robin_profile_alternates_its_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;

    let (status, refused) = admin_call(
        reqwest::Method::POST,
        &gateway,
        "/admin/v1/profiles",
        Some(json!({"name": TEAM, "strategy": "fastest"})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "strategy", "{refused}");

    let created = gateway
        .admin_post(
            "/admin/v1/profiles",
            json!({"name": TEAM, "description": "Search", "strategy": "round_robin"}),
        )
        .await;
    assert_eq!(created["strategy"], "round_robin", "{created}");
    let fetched = gateway
        .admin_get(&format!("/admin/v1/profiles/{TEAM}"))
        .await;
    assert_eq!(fetched["description"], "Search", "{fetched}");

    // Most remaining would send every request to `big`.
    for (name, limit) in [("small", 1_000_000), ("big", 9_000_000)] {
        gateway
            .account(json!({
                "provider": "mock",
                "name": name,
                "profile": TEAM,
                "models": ["mock-echo"],
                "daily_token_limit": limit,
            }))
            .await;
    }
    let key = gateway.key(json!({"name": "team", "profile": TEAM})).await;
    for _ in 0..4 {
        let response = gateway.chat(&key, user("mock-echo", "alternate")).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["x-tollgate-provider"], "mock");
    }

    // Settles land just after the answers: wait until both show up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let tokens = loop {
        let tokens = tokens_by_account(&gateway).await;
        let settled = tokens.len() == 2 && tokens.iter().all(|(_, used)| *used > 0);
        if (settled && tokens[0].1 == tokens[1].1) || Instant::now() > deadline {
            break tokens;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens[0].1 > 0, "{tokens:?}");
    assert_eq!(tokens[0].1, tokens[1].1, "two requests each: {tokens:?}");
    let stats = gateway
        .admin_get(&format!("/admin/v1/profiles/{TEAM}/stats"))
        .await;
    assert_eq!(
        (&stats["strategy"], &stats["description"]),
        (&json!("round_robin"), &json!("Search"))
    );

    // In use by the key and the accounts: not deleted.
    let (status, refused) = admin_call(
        reqwest::Method::DELETE,
        &gateway,
        &format!("/admin/v1/profiles/{TEAM}"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still used by 1 key"),
        "{refused}"
    );

    let (status, patched) = admin_call(
        reqwest::Method::PATCH,
        &gateway,
        &format!("/admin/v1/profiles/{TEAM}"),
        Some(json!({"strategy": null})),
    )
    .await;
    assert_eq!((status, &patched["strategy"]), (200, &Value::Null));

    let audit = gateway.admin_get("/admin/v1/audit").await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["object"] == "profile")
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["update", "create"], "{audit}");
}

#[tokio::test]
async fn profiles_come_from_the_cli_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, "profiles:\n  declared: { strategy: priority }\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let gateway = Gateway::all_with(dir.path(), &["--config", &config]).await;

    // The declared profile is stored; its strategy stays the file's.
    let declared = gateway.admin_get("/admin/v1/profiles/declared").await;
    assert_eq!(declared["strategy"], Value::Null, "{declared}");
    let stats = gateway.admin_get("/admin/v1/profiles/declared/stats").await;
    assert_eq!(stats["strategy"], "priority", "{stats}");

    let (ok, created) = admin_cli(
        &gateway,
        &[
            "profiles",
            "create",
            "cli-team",
            "--strategy",
            "least_inflight",
            "--description",
            "From the CLI",
        ],
    );
    assert!(ok, "{created}");
    assert_eq!(
        created,
        "created profile cli-team (strategy least_inflight)\n"
    );
    let (ok, listed) = admin_cli(&gateway, &["profiles", "list"]);
    assert!(ok, "{listed}");
    let rows: Vec<&str> = listed.lines().collect();
    assert!(rows[0].starts_with("NAME"), "{listed}");
    assert!(
        rows.iter()
            .any(|row| row.starts_with("cli-team") && row.contains("From the CLI")),
        "{listed}"
    );
    assert!(
        rows.iter()
            .any(|row| row.starts_with("declared") && row.contains("configured")),
        "{listed}"
    );

    let (ok, refused) = admin_cli(&gateway, &["profiles", "create", "cli-team"]);
    assert!(!ok, "{refused}");
    assert!(refused.contains("already exists"), "{refused}");

    let (ok, deleted) = admin_cli(&gateway, &["profiles", "delete", "cli-team"]);
    assert!(ok, "{deleted}");
    assert_eq!(deleted, "deleted profile cli-team\n");
    let (ok, listed) = admin_cli(&gateway, &["--json", "profiles", "list"]);
    assert!(ok, "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|profile| profile["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["declared"]);
}
