//! A route's answers to failures that another of its deployments would
//! share, and its own timeouts, end to end: `tollgate all` with routes
//! declared in its config file, and one mock upstream playing every
//! account (each account's key tells the mock how to answer).
//!
//! A prompt too long for a route's model is served by the route's
//! context-window fallback, a content-policy refusal by its content-policy
//! fallback, each answer saying which fallback served; a route without
//! such a fallback answers the upstream's 400. A route's first-byte
//! timeout gives up on a slow account and moves on, and its deadline ends
//! the request long before the router's own would.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// How long the slow accounts take to answer.
const SLOW_MS: u64 = 2_000;

const CONFIG: &str = "\
routes:
  - alias: small
    deployments: [{ provider: openai_compatible, model: m-small }]
    context_window_fallbacks: [long]
  - alias: long
    deployments: [{ provider: openai_compatible, model: m-long }]
  - alias: strict
    deployments: [{ provider: openai_compatible, model: m-strict }]
    content_policy_fallbacks: [lenient]
  - alias: lenient
    deployments: [{ provider: openai_compatible, model: m-lenient }]
  - alias: bare-small
    deployments: [{ provider: openai_compatible, model: m-small }]
  - alias: bare-strict
    deployments: [{ provider: openai_compatible, model: m-strict }]
  - alias: quick
    strategy: priority
    first_byte_timeout_ms: 400
    deployments:
      - { provider: openai_compatible, model: m-slow, priority: 10 }
      - { provider: openai_compatible, model: m-fast }
  - alias: hurried
    deadline_ms: 700
    deployments: [{ provider: openai_compatible, model: m-slower }]
";

/// One account: its name, key (the mock's directives are per key) and
/// models.
const ACCOUNTS: &[(&str, &str, &[&str])] = &[
    ("window", "sk-window", &["m-small"]),
    ("policy", "sk-policy", &["m-strict"]),
    ("roomy", "sk-roomy", &["m-long", "m-lenient", "m-fast"]),
    ("slow", "sk-slow", &["m-slow"]),
    ("slower", "sk-slower", &["m-slower"]),
];

async fn start(dir: &std::path::Path) -> (Process, Gateway, String) {
    let latency = format!("--key-directives=sk-slow:latency_ms={SLOW_MS}");
    let later = format!("--key-directives=sk-slower:latency_ms={SLOW_MS}");
    let (upstream, base_url) = mock_upstream(
        dir,
        &[
            "--key-directives=sk-window:error=context_length_exceeded",
            "--key-directives=sk-policy:error=content_policy_violation",
            &latency,
            &later,
        ],
    )
    .await;
    let config = dir.join("tollgate.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let gateway = Gateway::all_with(dir, &["--config", &config_arg]).await;
    for (name, secret, models) in ACCOUNTS {
        gateway
            .account(json!({
                "provider": "openai_compatible",
                "name": name,
                "secret": secret,
                "base_url": base_url,
                "models": models,
            }))
            .await;
    }
    let key = gateway.key(json!({"name": "route-failures"})).await;
    (upstream, gateway, key)
}

/// The answer's status, gateway headers and body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    took: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }
}

async fn ask(gateway: &Gateway, key: &str, model: &str, stream: bool) -> Answer {
    let mut body = user(model, &format!("asking {model}"));
    if stream {
        body["stream"] = json!(true);
    }
    let started = Instant::now();
    let response = gateway.chat(key, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer {
        status,
        headers,
        text,
        took: started.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_a_route_foresees_are_served_by_its_fallbacks_of_that_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, gateway, key) = start(dir.path()).await;

    for stream in [false, true] {
        // The prompt is too long for m-small: the context-window fallback
        // serves it, with its own model.
        let answer = ask(&gateway, &key, "small", stream).await;
        assert_eq!(answer.status, 200, "stream {stream}: {}", answer.text);
        assert_eq!(answer.header("x-tollgate-fallback"), Some("long"));
        assert_eq!(answer.header("x-tollgate-model"), Some("m-long"));
        assert_eq!(answer.header("x-tollgate-attempts"), Some("2"));
        if stream {
            assert!(answer.text.contains("data: [DONE]"), "{}", answer.text);
        } else {
            let content = &answer.json()["choices"][0]["message"]["content"];
            assert_eq!(content, "asking small");
        }

        // Refused by the content policy: the content-policy fallback.
        let answer = ask(&gateway, &key, "strict", stream).await;
        assert_eq!(answer.status, 200, "stream {stream}: {}", answer.text);
        assert_eq!(answer.header("x-tollgate-fallback"), Some("lenient"));
        assert_eq!(answer.header("x-tollgate-model"), Some("m-lenient"));
        assert_eq!(answer.header("x-tollgate-attempts"), Some("2"));
    }

    // The same failures on routes without such fallbacks are the
    // client's 400, with the provider's reason.
    let answer = ask(&gateway, &key, "bare-small", false).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let error = &answer.json()["error"];
    assert_eq!(error["code"], "context_length_exceeded", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length"),
        "{error}"
    );
    assert_eq!(answer.header("x-tollgate-fallback"), None);
    let answer = ask(&gateway, &key, "bare-strict", true).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let error = &answer.json()["error"];
    assert_eq!(error["code"], "content_policy_violation", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("safety system"),
        "{error}"
    );

    // Neither failure is the account's: both stay in service.
    let accounts = gateway.admin_get("/admin/v1/accounts").await;
    for account in accounts["data"].as_array().unwrap() {
        if ["window", "policy"].contains(&account["name"].as_str().unwrap()) {
            assert_eq!(account["state"], "ok", "{account}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_own_timeouts_cut_a_slow_upstream_short() {
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, gateway, key) = start(dir.path()).await;
    let slow = Duration::from_millis(SLOW_MS);

    for stream in [false, true] {
        // The slow account comes first, and gets 400 ms for its first
        // byte; the next account answers.
        let answer = ask(&gateway, &key, "quick", stream).await;
        assert_eq!(answer.status, 200, "stream {stream}: {}", answer.text);
        assert_eq!(answer.header("x-tollgate-model"), Some("m-fast"));
        assert_eq!(answer.header("x-tollgate-attempts"), Some("2"));
        assert_eq!(answer.header("x-tollgate-fallback"), None);
        assert!(answer.took < slow, "took {:?}", answer.took);
    }

    // The route's deadline (700 ms) ends the request well before the slow
    // upstream answers, and long before the router's 600 s.
    let answer = ask(&gateway, &key, "hurried", false).await;
    assert_eq!(answer.status, 504, "{}", answer.text);
    assert_eq!(answer.json()["error"]["code"], "upstream_timeout");
    assert!(
        answer.took >= Duration::from_millis(600) && answer.took < slow,
        "took {:?}",
        answer.took
    );

    // The route as read back through the admin API carries both.
    let routes = gateway.admin_get("/admin/v1/routes").await;
    let quick = routes["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|route| route["alias"] == "quick")
        .unwrap();
    assert_eq!(quick["first_byte_timeout_ms"], 400);
    assert_eq!(quick["deadline_ms"], Value::Null);
}
