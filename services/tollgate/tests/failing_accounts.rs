//! A pool that survives its failing accounts, end to end: `tollgate all`
//! on Redis and Postgres, one mock upstream playing every account. For each
//! way an upstream fails, one model is served by an account that fails that
//! way and by a healthy account with only 1,000 tokens left today. The
//! client sees only answers, the healthy account gets a completion cap it
//! has room for, and the failing account ends in the state its failure
//! calls for (circuit open, cooling down, or disabled). Each account's
//! read shows its activity: the failing one's last error and its class,
//! the healthy one's successes and latency average.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// The healthy account's whole day.
const ROOM: u64 = 1_000;
/// Requests per failure class, streamed and not in turn.
const REQUESTS: usize = 4;

/// How one account fails, and the state it should end in.
struct Class {
    name: &'static str,
    /// The mock's directives for the failing account's key; `None` for an
    /// account whose upstream does not listen at all.
    directives: Option<&'static str>,
    /// Only streams fail this way.
    streams_only: bool,
    state: &'static str,
    /// The error class the failing account's activity records.
    error: &'static str,
}

const CLASSES: &[Class] = &[
    Class {
        name: "internal-error",
        directives: Some("status=500"),
        streams_only: false,
        state: "circuit_open",
        error: "server_error",
    },
    Class {
        name: "bad-gateway",
        directives: Some("status=502"),
        streams_only: false,
        state: "circuit_open",
        error: "server_error",
    },
    Class {
        name: "unavailable",
        directives: Some("status=503"),
        streams_only: false,
        state: "circuit_open",
        error: "server_error",
    },
    Class {
        name: "gateway-timeout",
        directives: Some("status=504"),
        streams_only: false,
        state: "circuit_open",
        error: "server_error",
    },
    Class {
        name: "overloaded",
        directives: Some("status=529"),
        streams_only: false,
        state: "circuit_open",
        error: "server_error",
    },
    Class {
        name: "rate-limited",
        directives: Some("status=429,retry_after=120"),
        streams_only: false,
        state: "cooling_down",
        error: "rate_limited",
    },
    Class {
        name: "bad-credential",
        directives: Some("status=401"),
        streams_only: false,
        state: "disabled",
        error: "auth_failed",
    },
    Class {
        name: "forbidden",
        directives: Some("status=403"),
        streams_only: false,
        state: "disabled",
        error: "auth_failed",
    },
    Class {
        name: "hangs",
        directives: Some("latency_ms=30000"),
        streams_only: false,
        state: "circuit_open",
        error: "timeout",
    },
    Class {
        name: "stream-cut-before-first-event",
        directives: Some("cut_after=0"),
        streams_only: true,
        state: "circuit_open",
        error: "server_error",
    },
    Class {
        name: "connection-refused",
        directives: None,
        streams_only: false,
        state: "circuit_open",
        error: "server_error",
    },
    // OpenAI's 503 that says the engine is overloaded: its own class,
    // routed like any 5xx.
    Class {
        name: "engine-overloaded",
        directives: Some("overloaded=true"),
        streams_only: false,
        state: "circuit_open",
        error: "server_error",
    },
];

fn healthy_key(class: &Class) -> String {
    format!("sk-ok-{}", class.name)
}

fn failing_key(class: &Class) -> String {
    format!("sk-bad-{}", class.name)
}

fn model(class: &Class) -> String {
    format!("m-{}", class.name)
}

/// Waits until the account holds no reservation: the last request settled.
async fn settled(gateway: &Gateway, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = gateway.account_stats(id).await;
        if stats["tokens_reserved"] == 0 {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The mock's record of the last request made with `key`.
async fn last_body(upstream_base: &str, key: &str) -> Value {
    let stats: Value = reqwest::get(format!("{upstream_base}/_mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["by_key"][key]["last_body"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_served_while_one_account_of_each_pool_fails() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = RedisPrefix::new("failing");
    let database = Database::create("failing").await;
    let directives: Vec<String> = CLASSES
        .iter()
        .filter_map(|class| {
            let directives = class.directives?;
            Some(format!(
                "--key-directives={}:{directives}",
                failing_key(class)
            ))
        })
        .collect();
    let directive_args: Vec<&str> = directives.iter().map(String::as_str).collect();
    let (_upstream, base_url) = mock_upstream(dir.path(), &directive_args).await;
    let upstream_base = base_url.trim_end_matches("/v1").to_owned();
    let refused_url = format!("http://127.0.0.1:{}/v1", free_port());
    // A hanging upstream is given up on after a second.
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, "upstream_timeout_secs: 1\nfailure_threshold: 3\n").unwrap();
    let database_url = database.url();
    let config_arg = config.to_string_lossy().into_owned();
    let config_flags = ["--config", &config_arg];
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &database_url, &config_flags).await;

    let mut accounts = Vec::new();
    for class in CLASSES {
        // The failing account is preferred: more room, higher priority.
        let failing = gateway
            .account(json!({
                "provider": "openai_compatible",
                "name": format!("bad-{}", class.name),
                "secret": failing_key(class),
                "base_url": if class.directives.is_some() { &base_url } else { &refused_url },
                "models": [model(class)],
                "priority": 10,
            }))
            .await;
        let healthy = gateway
            .account(json!({
                "provider": "openai_compatible",
                "name": format!("ok-{}", class.name),
                "secret": healthy_key(class),
                "base_url": base_url,
                "models": [model(class)],
                "daily_token_limit": ROOM,
            }))
            .await;
        let id = |account: &Value| account["id"].as_str().unwrap().to_owned();
        accounts.push((id(&failing), id(&healthy)));
    }
    let key = gateway.key(json!({"name": "pool-user"})).await;

    for (class, (failing_id, healthy_id)) in CLASSES.iter().zip(&accounts) {
        for n in 0..REQUESTS {
            let before = settled(&gateway, healthy_id).await;
            let used = before["tokens_used_today"].as_u64().unwrap();
            let stream = class.streams_only || n % 2 == 1;
            let mut body = user(&model(class), &format!("request {n} of {}", class.name));
            if stream {
                body["stream"] = json!(true);
            }
            let response = gateway.chat(&key, body.clone()).await;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            assert_eq!(status, 200, "{}: request {n}: {text}", class.name);
            assert_eq!(headers["x-tollgate-provider"], "openai_compatible");
            if stream {
                assert!(text.contains("data: [DONE]"), "{}: {text}", class.name);
            } else {
                let answer: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    answer["choices"][0]["message"]["content"],
                    format!("request {n} of {}", class.name)
                );
            }
            // What reached the healthy account: the cap its room allows.
            let sent = last_body(&upstream_base, &healthy_key(class)).await;
            let prompt = u64::from(tollgate_core::tokens::estimate_chat_prompt(&body));
            assert_eq!(
                sent["max_tokens"],
                json!(ROOM - used - prompt),
                "{}: request {n}",
                class.name
            );
        }
        let failing = gateway.account_stats(failing_id).await;
        assert_eq!(failing["state"], class.state, "{}: {failing}", class.name);
        let healthy = settled(&gateway, healthy_id).await;
        assert_eq!(healthy["state"], "ok", "{}: {healthy}", class.name);
        assert!(healthy["tokens_used_today"].as_u64().unwrap() <= ROOM);

        let failing = gateway
            .admin_get(&format!("/admin/v1/accounts/{failing_id}"))
            .await;
        assert_eq!(
            failing["last_error"], class.error,
            "{}: {failing}",
            class.name
        );
        assert!(failing["last_error_at"].is_string(), "{failing}");
        assert!(failing["errors_today"].as_u64().unwrap() >= 1, "{failing}");
        assert_eq!(failing["successes_today"], 0, "{failing}");
        assert_eq!(failing["latency_ewma_ms"], Value::Null, "{failing}");
        let healthy = gateway
            .admin_get(&format!("/admin/v1/accounts/{healthy_id}"))
            .await;
        assert_eq!(healthy["successes_today"], REQUESTS, "{healthy}");
        assert_eq!(healthy["errors_today"], 0, "{healthy}");
        assert_eq!(healthy["last_error"], Value::Null, "{healthy}");
        assert!(healthy["last_used_at"].is_string(), "{healthy}");
        assert!(
            healthy["latency_ewma_ms"].as_f64().unwrap() > 0.0,
            "{healthy}"
        );
    }

    // The account list shows each failing account's state too; an
    // operator's reset puts every one back in service at once.
    let listed = gateway.admin_get("/admin/v1/accounts").await;
    for (class, (failing_id, _)) in CLASSES.iter().zip(&accounts) {
        let account = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|account| account["id"] == failing_id.as_str())
            .unwrap();
        // A circuit opened early in the test may be half-open by now.
        let state = account["state"].as_str().unwrap();
        let expected: &[&str] = match class.state {
            "circuit_open" => &["circuit_open", "half_open"],
            other => &[other][..],
        };
        assert!(expected.contains(&state), "{}: {account}", class.name);
        if class.state == "cooling_down" {
            assert!(account["cooling_down_until"].is_string(), "{account}");
        }
    }
    for (class, (failing_id, _)) in CLASSES.iter().zip(&accounts).skip(7) {
        let reset = gateway
            .admin_post(&format!("/admin/v1/accounts/{failing_id}/reset"), json!({}))
            .await;
        assert_eq!(reset["state"], "ok", "{}: {reset}", class.name);
        assert_eq!(reset["enabled"], true);
    }

    // A client's own cap goes upstream as it is when there is room for it
    // (the failing account of this pool is disabled still).
    let class = &CLASSES[6];
    assert_eq!(class.state, "disabled");
    let mut body = user(&model(class), "capped");
    body["max_tokens"] = json!(5);
    let response = gateway.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    let sent = last_body(&upstream_base, &healthy_key(class)).await;
    assert_eq!(sent["max_tokens"], 5);
    // And one that no account has room for is refused, not lowered.
    let mut body = user(&model(class), "too large");
    body["max_tokens"] = json!(ROOM);
    let response = gateway.chat(&key, body).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

/// A Rovo Dev account is strict about its cap: a request is reserved at
/// its worst case (a token a byte of the body), so one whose estimate
/// would fit the room left, but whose worst case would not, goes to a
/// lenient account or is refused; the strict account's day never passes
/// its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_account_is_reserved_at_the_prompts_worst_case() {
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let gateway = Gateway::all(dir.path()).await;
    let strict = gateway
        .account(json!({
            "provider": "rovodev",
            "name": "rovo",
            "email": "dev@example.com",
            "secret": "rovo-token",
            "base_url": base_url,
            "models": ["strict-model"],
            "daily_token_limit": 600,
        }))
        .await;
    assert_eq!(strict["strict_cap"], true, "{strict}");
    let key = gateway.key(json!({"name": "strict"})).await;
    // About 380 bytes of body, an estimate of about 80 tokens.
    let text = "word ".repeat(60);
    let mut body = user("strict-model", &text);
    body["max_tokens"] = json!(250);
    let bytes = body.to_string().len();
    assert!((360..=400).contains(&bytes), "{bytes}");
    // Worst case + 250 > 600: refused, although the estimate would fit.
    let refused = gateway.chat(&key, body.clone()).await;
    assert_eq!(refused.status(), 429);
    // Lenient, the same account serves it.
    let id = strict["id"].as_str().unwrap();
    let response = reqwest::Client::new()
        .patch(format!("{}/admin/v1/accounts/{id}", gateway.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"strict_cap": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["strict_cap"], false);
    let served = gateway.chat(&key, body).await;
    assert_eq!(served.status(), 200, "{}", served.text().await.unwrap());
}
