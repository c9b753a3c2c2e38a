//! Exact usage and cost per provider, end to end: one account per
//! provider on the mock upstream, each spoken to in its own wire format
//! (OpenAI's Chat Completions, Azure OpenAI's deployment URL, Anthropic's
//! Messages, Gemini's `generateContent`, Ollama's `/api/chat`, and a vLLM
//! server through the `openai_compatible` preset), serving a catalog model.
//! A plain and a streamed request each report cache reads, cache writes and
//! reasoning tokens as that provider's format can carry them; the ledger
//! rows and the admin usage report show exactly those counts in the
//! gateway's one convention, and the cost the catalog's published rates
//! give (worked out here from the rates, not by the product's function).
//! Self-hosted upstreams (Ollama, vLLM) cost nothing, and say so: priced.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::*;

/// A catalog model's published rates in micro-dollars per million tokens
/// (US dollars per million tokens times a million),
/// as `catalog/models.yaml` has them from the providers' pricing pages.
#[derive(Clone, Copy)]
struct Rates {
    input: u64,
    cached_input: u64,
    cache_write_5m: u64,
    cache_write_1h: u64,
    output: u64,
}

/// OpenAI GPT-5 mini: $0.25 input, $0.025 cached input, $2.00 output.
const GPT_5_MINI: Rates = Rates {
    input: 250_000,
    cached_input: 25_000,
    cache_write_5m: 250_000,
    cache_write_1h: 250_000,
    output: 2_000_000,
};
/// OpenAI GPT-4o mini (on Azure at OpenAI's list price): $0.15 input,
/// $0.075 cached input, $0.60 output.
const GPT_4O_MINI: Rates = Rates {
    input: 150_000,
    cached_input: 75_000,
    cache_write_5m: 150_000,
    cache_write_1h: 150_000,
    output: 600_000,
};
/// Claude Haiku 4.5: $1 input, $0.10 cache read, $1.25 5-minute write, $2
/// 1-hour write, $5 output.
const CLAUDE_HAIKU_4_5: Rates = Rates {
    input: 1_000_000,
    cached_input: 100_000,
    cache_write_5m: 1_250_000,
    cache_write_1h: 2_000_000,
    output: 5_000_000,
};
/// Gemini 2.5 Flash: $0.30 input, $0.03 cached input, $2.50 output
/// (thinking included).
const GEMINI_2_5_FLASH: Rates = Rates {
    input: 300_000,
    cached_input: 30_000,
    cache_write_5m: 300_000,
    cache_write_1h: 300_000,
    output: 2_500_000,
};

/// What the directives ask every fake to report.
const CACHED: i64 = 40;
const WRITE_5M: i64 = 30;
const WRITE_1H: i64 = 20;
const COMPLETION: i64 = 50;
const REASONING: i64 = 35;

/// The prompt every request sends: the directives, and enough text to
/// hold the cache counts they ask for.
fn prompt() -> String {
    format!(
        "[[mock:cached_tokens={CACHED},cache_write_5m_tokens={WRITE_5M},\
         cache_write_1h_tokens={WRITE_1H},completion_tokens={COMPLETION},\
         reasoning_tokens={REASONING}]] {}",
        "What did this request cost, to the micro-dollar? ".repeat(8)
    )
}

/// The prompt tokens every fake counts for one user message of `text`
/// (each fake's documented count: 3, plus 4 per message, plus a token per
/// four bytes of text).
fn prompt_tokens(text: &str) -> i64 {
    3 + 4 + i64::try_from(text.len().div_ceil(4)).unwrap()
}

/// One provider's account and what its format reports.
struct Case {
    provider: &'static str,
    model: &'static str,
    /// The account's fields besides provider, name and models.
    account: Value,
    /// What the provider's usage carries: cache reads, 5-minute and
    /// 1-hour cache writes, reasoning tokens.
    reports: (bool, bool, bool),
    /// The catalog's rates, or `None` for a self-hosted upstream.
    rates: Option<Rates>,
}

impl Case {
    /// The ledger row a request with `prompt` tokens must have.
    fn expected(&self, prompt: i64) -> LedgerRow {
        let (reads, writes, reasoning) = self.reports;
        let cached = if reads { CACHED } else { 0 };
        let (write_5m, write_1h) = if writes { (WRITE_5M, WRITE_1H) } else { (0, 0) };
        let cost = self.rates.map_or(0, |rates| {
            let tokens = |n: i64| u64::try_from(n).unwrap();
            let uncached = prompt - cached - write_5m - write_1h;
            let total = tokens(uncached) * rates.input
                + tokens(cached) * rates.cached_input
                + tokens(write_5m) * rates.cache_write_5m
                + tokens(write_1h) * rates.cache_write_1h
                + tokens(COMPLETION) * rates.output;
            // Rounded once, to the nearest micro-dollar.
            i64::try_from((total + 500_000) / 1_000_000).unwrap()
        });
        LedgerRow {
            prompt_tokens: prompt,
            completion_tokens: COMPLETION,
            cached_tokens: cached,
            cache_write_5m_tokens: write_5m,
            cache_write_1h_tokens: write_1h,
            reasoning_tokens: if reasoning { REASONING } else { 0 },
            cost_micro_usd: cost,
            priced: true,
        }
    }
}

/// The accounts, on the mock upstream at `root` (`root/v1` for the APIs
/// whose base URL carries their version).
fn cases(root: &str) -> Vec<Case> {
    let v1 = format!("{root}/v1");
    vec![
        Case {
            provider: "openai",
            model: "gpt-5-mini",
            account: json!({"secret": "sk-openai-upstream-0123456789", "base_url": v1}),
            // OpenAI's usage has cache reads and reasoning, no cache writes.
            reports: (true, false, true),
            rates: Some(GPT_5_MINI),
        },
        Case {
            provider: "azure_openai",
            model: "gpt-4o-mini",
            account: json!({"secret": "azure-upstream-0123456789abcdef", "base_url": root,
                "settings": {"api_version": "2024-10-21",
                    "deployments": {"gpt-4o-mini": "prod-4o-mini"}}}),
            reports: (true, false, true),
            rates: Some(GPT_4O_MINI),
        },
        Case {
            provider: "anthropic",
            // A dated snapshot, priced as its family.
            model: "claude-haiku-4-5-20251001",
            account: json!({"secret": "sk-ant-upstream-0123456789", "base_url": v1}),
            // Anthropic's usage has cache reads and writes by lifetime;
            // thinking is in output_tokens, not counted apart.
            reports: (true, true, false),
            rates: Some(CLAUDE_HAIKU_4_5),
        },
        Case {
            provider: "gemini",
            model: "gemini-2.5-flash",
            account: json!({"secret": "AIza-upstream-0123456789", "base_url": v1}),
            // Gemini's usageMetadata has cached content and thoughts.
            reports: (true, false, true),
            rates: Some(GEMINI_2_5_FLASH),
        },
        Case {
            provider: "ollama",
            // A model the catalog does not price: self-hosted, it is free.
            model: "llama3.2",
            account: json!({"base_url": root}),
            // Ollama reports prompt_eval_count and eval_count only.
            reports: (false, false, false),
            rates: None,
        },
        Case {
            provider: "openai_compatible",
            model: "qwen3-8b",
            account: json!({"base_url": v1, "settings": {"preset": "vllm"}}),
            // vLLM speaks OpenAI's format: reads and reasoning.
            reports: (true, false, true),
            rates: None,
        },
    ]
}

/// Sends `body` with `key`: the request id, after checking the provider
/// that served it.
async fn ask(gateway: &Gateway, key: &str, provider: &str, body: Value) -> String {
    let response = gateway.chat(key, body).await;
    if response.status() != 200 {
        let status = response.status();
        panic!("{provider}: {status} {}", response.text().await.unwrap());
    }
    assert_eq!(response.headers()["x-tollgate-provider"], provider);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Read it all: a stream's usage comes at its end.
    let _ = response.text().await.unwrap();
    request_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_providers_usage_reaches_the_ledger_exactly_and_at_the_catalogs_price() {
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, v1) = mock_upstream(dir.path(), &[]).await;
    let root = v1.strip_suffix("/v1").unwrap().to_owned();
    let prefix = RedisPrefix::new("per-provider");
    let database = Database::create("per_provider").await;
    let url = database.url();
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &url, &[]).await;
    let cases = cases(&root);
    for case in &cases {
        let mut account = case.account.clone();
        account["provider"] = json!(case.provider);
        account["name"] = json!(format!("{}-account", case.provider));
        account["models"] = json!([case.model]);
        gateway.account(account).await;
    }
    let key = gateway.key(json!({"name": "per-provider"})).await;

    let text = prompt();
    let prompt = prompt_tokens(&text);
    let mut served = Vec::new();
    for case in &cases {
        let plain = ask(&gateway, &key, case.provider, user(case.model, &text)).await;
        let mut streamed = user(case.model, &text);
        streamed["stream"] = json!(true);
        let streamed = ask(&gateway, &key, case.provider, streamed).await;
        served.push((case, plain, streamed));
    }

    for (case, plain, streamed) in &served {
        let expected = case.expected(prompt);
        assert_eq!(
            ledger_row(&url, plain).await,
            expected,
            "{} plain",
            case.provider
        );
        assert_eq!(
            ledger_row(&url, streamed).await,
            expected,
            "{} streamed",
            case.provider
        );
    }

    // The admin usage report, per provider: both requests' parts and cost,
    // and none of them unpriced.
    let report = gateway.admin_get("/admin/v1/usage?group_by=provider").await;
    let rows = report["rows"].as_array().unwrap();
    for case in &cases {
        let row = rows
            .iter()
            .find(|row| row["group"] == case.provider)
            .unwrap_or_else(|| panic!("{} not in {report}", case.provider));
        let expected = case.expected(prompt);
        assert_eq!(row["requests"], 2, "{row}");
        assert_eq!(row["prompt_tokens"], 2 * expected.prompt_tokens, "{row}");
        assert_eq!(
            row["completion_tokens"],
            2 * expected.completion_tokens,
            "{row}"
        );
        assert_eq!(row["cached_tokens"], 2 * expected.cached_tokens, "{row}");
        assert_eq!(
            row["cache_write_5m_tokens"],
            2 * expected.cache_write_5m_tokens,
            "{row}"
        );
        assert_eq!(
            row["cache_write_1h_tokens"],
            2 * expected.cache_write_1h_tokens,
            "{row}"
        );
        assert_eq!(
            row["reasoning_tokens"],
            2 * expected.reasoning_tokens,
            "{row}"
        );
        assert_eq!(row["unpriced_requests"], 0, "{row}");
        let cost = (row["cost_usd"].as_f64().unwrap() * 1e6).round() as i64;
        assert_eq!(cost, 2 * expected.cost_micro_usd, "{row}");
    }
}
