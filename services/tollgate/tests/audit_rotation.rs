//! The audit log of admin writes and the master-key rotation, end to end:
//! real `tollgate all` processes, the admin API and the `tollgate admin`
//! CLI, and an upstream that refuses any credential but the account's.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::*;

const OLD_MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NEW_MASTER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const UPSTREAM_SECRET: &str = "sk-upstream-rotated-secret-5b1e";

/// Runs `tollgate admin --json <args>` against `gateway`; returns its JSON.
fn admin_json(gateway: &Gateway, args: &[&str]) -> Value {
    let output = Command::new(binary())
        .args(["admin", "--url", &gateway.admin, "--token", ADMIN_TOKEN])
        .args(["--json", "--actor", "cli:alice"])
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "admin {args:?}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn every_admin_write_is_in_the_audit_log_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::all(dir.path()).await;
    let created = admin_json(&gateway, &["keys", "create", "--name", "audited"]);
    let key_id = created["id"].as_str().unwrap().to_owned();
    let plaintext = created["key"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let patched = http
        .patch(format!("{}/admin/v1/keys/{key_id}", gateway.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"rpm": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let account = gateway
        .account(json!({
            "provider": "openai_compatible",
            "name": "audited-upstream",
            "secret": UPSTREAM_SECRET,
            "base_url": "http://127.0.0.1:9/v1",
            "models": ["m"],
        }))
        .await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    admin_json(&gateway, &["keys", "revoke", &key_id]);

    let log = admin_json(&gateway, &["audit", "--limit", "10"]);
    let entries = log["data"].as_array().unwrap();
    let seen: Vec<(String, String, String, String)> = entries
        .iter()
        .map(|entry| {
            let text = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
            (
                text("actor"),
                text("action"),
                text("object"),
                text("object_id"),
            )
        })
        .collect();
    assert!(seen.len() >= 6, "{log}");
    let alice = "admin (cli:alice)".to_owned();
    let expected_newest_first = [
        (alice.clone(), "delete", "key", key_id.as_str()),
        ("admin".to_owned(), "create", "account", account_id.as_str()),
        ("admin".to_owned(), "update", "key", key_id.as_str()),
        (alice, "create", "key", key_id.as_str()),
    ];
    for (entry, (actor, action, object, id)) in seen.iter().zip(expected_newest_first) {
        assert_eq!(
            (
                entry.0.as_str(),
                entry.1.as_str(),
                entry.2.as_str(),
                entry.3.as_str()
            ),
            (actor.as_str(), action, object, id),
            "{log}"
        );
    }
    // The built-in mock account and the dev key were made by the process.
    for kind in ["account", "key"] {
        assert!(
            seen.iter()
                .any(|(actor, action, object, _)| actor == "system (bootstrap)"
                    && action == "create"
                    && object == kind),
            "{log}"
        );
    }
    assert_eq!(entries[1]["summary"]["has_secret"], json!(true), "{log}");
    assert_eq!(entries[2]["summary"]["name"], json!("audited"), "{log}");
    let text = log.to_string();
    assert!(!text.contains(UPSTREAM_SECRET), "{text}");
    assert!(!text.contains(&plaintext), "{text}");
}

/// `tollgate all` on `dir`'s data dir with the given master keys.
async fn gateway_with_keys(dir: &std::path::Path, current: &str, previous: &str) -> Gateway {
    let mut env = vec![("TOLLGATE_MASTER_KEY", current)];
    if !previous.is_empty() {
        env.push(("TOLLGATE_MASTER_KEY_PREVIOUS", previous));
    }
    Gateway::all_with_env(dir, &[], &env).await
}

#[tokio::test]
async fn a_master_key_rotation_reseals_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    // The upstream refuses any other credential, so a served request proves
    // the sealed secret opened.
    let mut upstream = Process::start(
        "mock-upstream-keyed",
        dir.path(),
        &[
            "mock-upstream",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            UPSTREAM_SECRET,
        ],
        &[],
    );
    let line = wait_for_log(&mut upstream, "mock upstream listening").await;
    let base_url = format!("http://{}/v1", log_field(&line, "addr"));

    let mut first = gateway_with_keys(dir.path(), OLD_MASTER_KEY, "").await;
    first
        .account(json!({
            "provider": "openai_compatible",
            "name": "keyed-upstream",
            "secret": UPSTREAM_SECRET,
            "base_url": base_url,
            "models": ["keyed-model"],
        }))
        .await;
    let key = first.key(json!({"name": "rotation"})).await;
    let served = first.chat(&key, user("keyed-model", "old key")).await;
    assert_eq!(served.status(), 200);
    first.processes[0].terminate();

    // The new key alone cannot open what the old one sealed.
    let mut without_old = gateway_with_keys(dir.path(), NEW_MASTER_KEY, "").await;
    let refused = without_old
        .chat(&key, user("keyed-model", "no old key"))
        .await;
    assert_ne!(refused.status(), 200);
    let body = refused.text().await.unwrap();
    assert!(!body.contains(UPSTREAM_SECRET), "{body}");
    without_old.processes[0].terminate();

    // Both keys: the old secret opens, and the reseal moves it to the new.
    let mut both = gateway_with_keys(dir.path(), NEW_MASTER_KEY, OLD_MASTER_KEY).await;
    let served = both.chat(&key, user("keyed-model", "both keys")).await;
    assert_eq!(served.status(), 200);
    let report = admin_json(&both, &["rotate-master-key"]);
    assert_eq!(report["resealed"], json!(1), "{report}");
    assert_eq!(report["unreadable_account_ids"], json!([]), "{report}");
    let again = admin_json(&both, &["rotate-master-key"]);
    assert_eq!(
        (&again["resealed"], &again["already_current"]),
        (&json!(0), &json!(1)),
        "{again}"
    );
    let log = admin_json(&both, &["audit", "--limit", "5"]);
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["action"] == "reseal" && entry["actor"] == "admin (cli:alice)"),
        "{log}"
    );
    both.processes[0].terminate();

    // The old key is no longer needed.
    let new_only = gateway_with_keys(dir.path(), NEW_MASTER_KEY, "").await;
    let served = new_only.chat(&key, user("keyed-model", "new key")).await;
    assert_eq!(served.status(), 200);
}
