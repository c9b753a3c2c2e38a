//! `tollgate admin` end to end: the CLI as a process against a running
//! `tollgate all`, checked through the public API and its own output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Runs `tollgate admin <args>` with a clean environment plus `env`.
fn admin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    command
        .arg("admin")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// Runs an admin command against `gateway` with the right token; asserts
/// it succeeded and returns its stdout.
fn admin_ok(gateway: &Gateway, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut full = vec!["--url", &gateway.admin, "--token", ADMIN_TOKEN];
    full.extend_from_slice(args);
    let output = admin(&full, env);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "admin {args:?} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert!(
        stderr.is_empty(),
        "admin {args:?} wrote to stderr: {stderr}"
    );
    stdout
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn keys_are_created_listed_used_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;

    let created = admin_ok(&gateway, &["keys", "create", "--name", "cli-key"], &[]);
    assert!(created.contains("shown only now"), "{created}");
    let key = created
        .split_whitespace()
        .find(|word| word.starts_with("tg-") && word.len() > 20)
        .unwrap_or_else(|| panic!("no key printed: {created}"))
        .to_owned();
    let id = created
        .split_whitespace()
        .find(|word| word.starts_with("key_"))
        .unwrap_or_else(|| panic!("no id printed: {created}"))
        .to_owned();

    let listed = admin_ok(&gateway, &["keys", "list"], &[]);
    let line = listed
        .lines()
        .find(|line| line.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    assert!(line.contains("cli-key") && line.ends_with("yes"), "{line}");
    assert!(
        line.contains(&format!("…{}", &key[key.len() - 4..])),
        "{line}"
    );
    assert!(!listed.contains(&key), "the list shows a whole key");
    let listed = json(&admin_ok(&gateway, &["keys", "list", "--json"], &[]));
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str())
    );

    let response = gateway.chat(&key, user("mock-echo", "via the cli")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("via the cli")
    );

    let usage = wait_for_usage(&gateway, "mock-echo").await;
    let line = usage
        .lines()
        .find(|line| line.starts_with("mock-echo"))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("1"), "{usage}");
    let by_key = json(&admin_ok(
        &gateway,
        &["usage", "--group-by", "key", "--json"],
        &[],
    ));
    assert!(
        by_key["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["group"] == id.as_str() && row["requests"] == 1),
        "{by_key}"
    );

    let revoked = admin_ok(&gateway, &["keys", "revoke", &id], &[]);
    assert!(revoked.contains(&id), "{revoked}");
    let response = gateway.chat(&key, user("mock-echo", "again")).await;
    assert_eq!(response.status(), 401);
    let listed = admin_ok(&gateway, &["keys", "list"], &[]);
    assert!(!listed.contains(&id), "{listed}");

    // An unknown id is the API's error, on stderr, with a non-zero exit.
    let output = admin(
        &[
            "--url",
            &gateway.admin,
            "--token",
            ADMIN_TOKEN,
            "keys",
            "disable",
            &id,
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"));
}

/// Polls `usage` (grouped by model) until a row for `group` appears.
async fn wait_for_usage(gateway: &Gateway, group: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let usage = admin_ok(gateway, &["usage", "--group-by", "model"], &[]);
        if usage.lines().any(|line| line.starts_with(group)) {
            assert!(usage.starts_with("GROUP "), "{usage}");
            return usage;
        }
        assert!(
            Instant::now() < deadline,
            "no usage row for {group}: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn accounts_take_secrets_from_the_environment_and_show_only_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;
    let secret = "sk-cli-secret-value-9876";

    let added = admin_ok(
        &gateway,
        &[
            "accounts",
            "add",
            "--provider",
            "openai_compatible",
            "--name",
            "cli-account",
            "--secret-env",
            "CLI_UPSTREAM_SECRET",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--models",
            "cli-model-a,cli-model-b",
            "--daily-token-limit",
            "5000",
            "--json",
        ],
        &[("CLI_UPSTREAM_SECRET", secret)],
    );
    assert!(!added.contains(secret), "{added}");
    let account = json(&added);
    let id = account["id"].as_str().unwrap().to_owned();
    let mask = account["secret_mask"].as_str().unwrap().to_owned();
    assert!(!mask.is_empty() && mask.ends_with("9876"), "{account}");
    assert_eq!(account["daily_token_limit"], 5000);

    let listed = admin_ok(&gateway, &["accounts", "list"], &[]);
    assert!(!listed.contains(secret), "{listed}");
    let line = listed
        .lines()
        .find(|line| line.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    assert!(
        line.contains("cli-account") && line.contains(&mask),
        "{line}"
    );
    assert!(line.contains("0 / 5000") && line.ends_with("ok"), "{line}");

    admin_ok(&gateway, &["accounts", "disable", &id], &[]);
    let stored = gateway.admin_get(&format!("/admin/v1/accounts/{id}")).await;
    assert_eq!(stored["enabled"], false);
    let listed = admin_ok(&gateway, &["accounts", "list"], &[]);
    let line = listed.lines().find(|line| line.contains(&id)).unwrap();
    assert!(line.ends_with("disabled"), "{line}");
    admin_ok(&gateway, &["accounts", "enable", &id], &[]);
    let stored = gateway.admin_get(&format!("/admin/v1/accounts/{id}")).await;
    assert_eq!(stored["enabled"], true);

    // A variable that is not set stops the command before any request.
    let output = admin(
        &[
            "--url",
            &gateway.admin,
            "--token",
            ADMIN_TOKEN,
            "accounts",
            "add",
            "--provider",
            "openai",
            "--name",
            "x",
            "--secret-env",
            "CLI_UNSET_SECRET",
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("CLI_UNSET_SECRET"));
}

#[tokio::test]
async fn bad_tokens_and_unreachable_urls_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;

    let output = admin(
        &[
            "--url",
            &gateway.admin,
            "--token",
            "wrong-token",
            "keys",
            "list",
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid admin token"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("wrong-token"), "{stderr}");

    // The token from <data-dir>/admin.token, the URL from the environment.
    let token_dir = dir.path().join("operator");
    std::fs::create_dir_all(&token_dir).unwrap();
    std::fs::write(token_dir.join("admin.token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    let output = admin(
        &["keys", "list", "--json"],
        &[
            ("TOLLGATE_ADMIN_URL", gateway.admin.as_str()),
            ("TOLLGATE_DATA_DIR", &token_dir.to_string_lossy()),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(json(&String::from_utf8_lossy(&output.stdout))["data"].is_array());

    let missing = admin(
        &[
            "--data-dir",
            &dir.path().join("none").to_string_lossy(),
            "keys",
            "list",
        ],
        &[],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("admin.token"));

    let url = format!("http://127.0.0.1:{}", free_port());
    let output = admin(&["--url", &url, "--token", "t", "usage"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&url) && stderr.contains("cannot reach"),
        "{stderr}"
    );
}
