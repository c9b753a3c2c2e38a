//! `tollgate admin` end to end: the CLI as a process against a running
//! `tollgate all`, checked through the public API and its own output.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
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
    assert!(line.contains("0 / 5000") && line.contains(" ok "), "{line}");
    // Nothing served or failed yet: no activity.
    assert!(
        line.trim_end().ends_with("0 / 0         -        -"),
        "{line}"
    );
    let shown = admin_ok(&gateway, &["accounts", "get", &id], &[]);
    assert!(!shown.contains(secret), "{shown}");
    assert!(
        shown.contains(&format!("secret        {mask}\n")),
        "{shown}"
    );
    assert!(shown.contains("ok/err today  0 / 0\n"), "{shown}");
    assert!(shown.contains("latency ewma  -\n"), "{shown}");
    assert!(shown.contains("last error    -\n"), "{shown}");

    admin_ok(&gateway, &["accounts", "disable", &id], &[]);
    let stored = gateway.admin_get(&format!("/admin/v1/accounts/{id}")).await;
    assert_eq!(stored["enabled"], false);
    let listed = admin_ok(&gateway, &["accounts", "list"], &[]);
    let line = listed.lines().find(|line| line.contains(&id)).unwrap();
    assert!(line.contains(" disabled "), "{line}");
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

#[tokio::test]
async fn accounts_are_tested_with_a_real_call_and_profiles_report_their_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let (_failing, failing_url) = mock_upstream(dir.path(), &["--fail-status", "500"]).await;
    let gateway = Gateway::all(dir.path()).await;
    let secret = "sk-cli-test-secret-5555";
    let failing = admin_ok(
        &gateway,
        &[
            "accounts",
            "add",
            "--provider",
            "openai_compatible",
            "--name",
            "failing-upstream",
            "--secret-env",
            "CLI_FAILING_SECRET",
            "--base-url",
            &failing_url,
            "--models",
            "broken-model",
            "--profile",
            "team-t",
            "--json",
        ],
        &[("CLI_FAILING_SECRET", secret)],
    );
    let failing_id = json(&failing)["id"].as_str().unwrap().to_owned();
    let accounts = gateway.admin_get("/admin/v1/accounts").await;
    let mock_id = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["provider"] == "mock")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The built-in mock answers: ok, and its tokens count on the account.
    let passed = json(&admin_ok(
        &gateway,
        &["accounts", "test", &mock_id, "--json"],
        &[],
    ));
    assert_eq!(passed["ok"], true, "{passed}");
    assert_eq!(passed["status"], 200);
    assert_eq!(passed["model"], "mock-echo");
    assert!(passed["latency_ms"].is_u64(), "{passed}");
    let line = admin_ok(&gateway, &["accounts", "test", &mock_id], &[]);
    assert!(line.contains(&format!("account {mock_id}: ok")), "{line}");
    let stats = json(&admin_ok(
        &gateway,
        &["profiles", "stats", "default", "--json"],
        &[],
    ));
    let mock = stats["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["id"] == mock_id.as_str())
        .unwrap_or_else(|| panic!("mock account not in {stats}"))
        .clone();
    assert!(mock["tokens_used_today"].as_u64().unwrap() > 0, "{mock}");
    assert_eq!(mock["state"], "ok");

    // An upstream that fails: the test ran (200), and says what went wrong
    // without the credential.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/admin/v1/accounts/{failing_id}/test",
            gateway.admin
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(!body.contains(secret) && !body.contains("5555"), "{body}");
    let failed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["model"], "broken-model");
    assert!(failed["status"].as_u64().unwrap() >= 500, "{failed}");
    assert!(failed["error"]["message"].is_string(), "{failed}");
    let line = admin_ok(&gateway, &["accounts", "test", &failing_id], &[]);
    assert!(line.contains("failed with status 5"), "{line}");
    assert!(!line.contains(secret), "{line}");

    let table = admin_ok(&gateway, &["profiles", "stats", "team-t"], &[]);
    let row = table
        .lines()
        .find(|row| row.contains(&failing_id))
        .unwrap_or_else(|| panic!("{failing_id} not in {table}"));
    assert!(
        row.contains("failing-upstream") && row.contains("unlimited"),
        "{row}"
    );

    // Unknown account and unknown profile: the API's 404, exit 1.
    for args in [
        vec!["accounts", "test", "acct_missing"],
        vec!["profiles", "stats", "no-such-team"],
    ] {
        let mut full = vec!["--url", gateway.admin.as_str(), "--token", ADMIN_TOKEN];
        full.extend_from_slice(&args);
        let output = admin(&full, &[]);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("404") && stderr.contains("not found"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn account_settings_are_set_shown_replaced_and_cleared_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;
    let added = admin_ok(
        &gateway,
        &[
            "accounts",
            "add",
            "--provider",
            "azure_openai",
            "--name",
            "cli-azure",
            "--secret-env",
            "CLI_AZURE_KEY",
            "--base-url",
            "https://cli-resource.openai.azure.com",
            "--setting",
            "api_version=2024-10-21",
            "--setting",
            "deployments.gpt-4.1=prod-gpt41",
            "--json",
        ],
        &[("CLI_AZURE_KEY", "azure-cli-key-0123456789")],
    );
    let account = json(&added);
    let id = account["id"].as_str().unwrap().to_owned();
    assert_eq!(
        account["settings"],
        serde_json::json!({"api_version": "2024-10-21", "deployments": {"gpt-4.1": "prod-gpt41"}})
    );
    let shown = admin_ok(&gateway, &["accounts", "get", &id], &[]);
    assert!(
        shown.contains(
            r#"settings      {"api_version":"2024-10-21","deployments":{"gpt-4.1":"prod-gpt41"}}"#
        ),
        "{shown}"
    );

    // A key Azure accounts do not take: the API's 400, naming it.
    let output = admin(
        &[
            "--url",
            &gateway.admin,
            "--token",
            ADMIN_TOKEN,
            "accounts",
            "settings",
            &id,
            "--setting",
            "preset=vllm",
        ],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("400") && stderr.contains("preset"),
        "{stderr}"
    );

    let replaced = admin_ok(
        &gateway,
        &[
            "accounts",
            "settings",
            &id,
            "--setting",
            "deployments.gpt-4o=eu-4o",
        ],
        &[],
    );
    assert_eq!(
        replaced,
        format!("settings of account {id}: {{\"deployments\":{{\"gpt-4o\":\"eu-4o\"}}}}\n")
    );
    let cleared = admin_ok(&gateway, &["accounts", "settings", &id, "--clear"], &[]);
    assert_eq!(cleared, format!("settings of account {id}: -\n"));
    let stored = gateway.admin_get(&format!("/admin/v1/accounts/{id}")).await;
    assert_eq!(stored["settings"], serde_json::json!({}));
    assert_eq!(stored["secret_mask"], account["secret_mask"]);
}
