//! Token usage as the gateway counts it, normalised from each upstream's
//! wire format, with an estimate for upstreams that report none.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tollgate_core::tokens::estimate_chat_prompt;

/// Tokens one request used, in one convention for every provider: OpenAI's.
/// `prompt` counts every input token, those read from or written to a
/// prompt cache included; `completion` counts every output token, reasoning
/// included. Providers that count otherwise (Anthropic's `input_tokens`
/// leaves out cache reads and writes) are converted when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u32,
    pub completion: u32,
    /// Prompt tokens read from the upstream's prompt cache (part of `prompt`).
    pub cached: u32,
    /// Prompt tokens written to a prompt cache that lives 5 minutes (part
    /// of `prompt`).
    pub cache_write_5m: u32,
    /// Prompt tokens written to a prompt cache that lives 1 hour (part of
    /// `prompt`).
    pub cache_write_1h: u32,
    /// Completion tokens spent on reasoning (part of `completion`).
    pub reasoning: u32,
    /// What the upstream itself says the request cost, in micro-USD, when
    /// it says (OpenRouter's `usage.cost`). Not the gateway's own price:
    /// the router prices tokens with its table; this is for comparing.
    pub provider_cost_micro_usd: Option<i64>,
}

impl Usage {
    pub fn total(&self) -> u32 {
        self.prompt.saturating_add(self.completion)
    }

    /// An estimate for an upstream that reported no usage: the prompt as the
    /// gateway estimates it from the request body, the completion from the
    /// bytes of generated text.
    pub fn estimate(request_body: &[u8], completion_text_bytes: usize) -> Self {
        let prompt = serde_json::from_slice::<Value>(request_body)
            .map(|body| estimate_chat_prompt(&body))
            .unwrap_or(0);
        Self {
            prompt,
            completion: text_bytes_to_tokens(completion_text_bytes),
            ..Self::default()
        }
    }
}

/// Tokens for `bytes` of text, by the same rule as
/// [`tollgate_core::tokens::estimate_text`].
pub(crate) fn text_bytes_to_tokens(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(4)).unwrap_or(u32::MAX)
}

/// The OpenAI `usage` object, tolerant of the variants OpenAI-compatible
/// upstreams send (missing details, `null` counts, DeepSeek's
/// `prompt_cache_hit_tokens`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default, deserialize_with = "count")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "details")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, deserialize_with = "count")]
    prompt_cache_hit_tokens: Option<u64>,
    #[serde(default, deserialize_with = "details")]
    completion_tokens_details: Option<CompletionDetails>,
    /// OpenRouter's cost of the request in USD (its credits).
    #[serde(default, deserialize_with = "usd")]
    cost: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default, deserialize_with = "count")]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default, deserialize_with = "count")]
    reasoning_tokens: Option<u64>,
}

/// A token count as any JSON value: an integer, a float (truncated), a
/// numeric string; anything else counts as absent.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|n| *n >= 0.0).map(|n| n as u64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    })
}

/// An amount in USD as a JSON number; anything else counts as absent.
fn usd<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_f64().filter(|usd| usd.is_finite() && *usd >= 0.0),
        _ => None,
    })
}

/// USD to whole micro-dollars, rounded to the nearest.
fn micro_usd(usd: f64) -> i64 {
    // Saturating float-to-int conversion; the input is finite and >= 0.
    (usd * 1_000_000.0).round() as i64
}

/// A `*_tokens_details` object; absent when it is anything else.
fn details<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match Value::deserialize(deserializer)? {
        value @ Value::Object(_) => serde_json::from_value(value).ok(),
        _ => None,
    })
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let clamp = |value: Option<u64>| u32::try_from(value.unwrap_or(0)).unwrap_or(u32::MAX);
        let cached = wire
            .prompt_tokens_details
            .and_then(|details| details.cached_tokens)
            .or(wire.prompt_cache_hit_tokens);
        Self {
            prompt: clamp(wire.prompt_tokens),
            completion: clamp(wire.completion_tokens),
            cached: clamp(cached),
            reasoning: clamp(
                wire.completion_tokens_details
                    .and_then(|details| details.reasoning_tokens),
            ),
            provider_cost_micro_usd: wire.cost.map(micro_usd),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Usage {
        serde_json::from_str::<WireUsage>(json).unwrap().into()
    }

    #[test]
    fn reads_openai_usage_with_cached_details() {
        let usage = parse(
            r#"{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,
                "prompt_tokens_details":{"cached_tokens":8,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":4}}"#,
        );
        assert_eq!(
            usage,
            Usage {
                prompt: 19,
                completion: 10,
                cached: 8,
                reasoning: 4,
                ..Usage::default()
            }
        );
        assert_eq!(usage.total(), 29);
    }

    #[test]
    fn reads_openrouter_cost_in_micro_usd() {
        let usage = parse(
            r#"{"prompt_tokens":194,"completion_tokens":2,"total_tokens":196,
                "cost":0.000095,"is_byok":false,
                "prompt_tokens_details":{"cached_tokens":0},
                "cost_details":{"upstream_inference_cost":null},
                "completion_tokens_details":{"reasoning_tokens":0}}"#,
        );
        assert_eq!(usage.provider_cost_micro_usd, Some(95));
        assert_eq!(usage.prompt, 194);
        assert_eq!(parse(r#"{"cost":"0.1"}"#).provider_cost_micro_usd, None);
        assert_eq!(parse(r#"{"cost":-1}"#).provider_cost_micro_usd, None);
        assert_eq!(parse("{}").provider_cost_micro_usd, None);
    }

    #[test]
    fn tolerates_missing_and_null_fields() {
        assert_eq!(parse("{}"), Usage::default());
        let usage =
            parse(r#"{"prompt_tokens":5,"completion_tokens":null,"prompt_tokens_details":null}"#);
        assert_eq!(usage.prompt, 5);
        assert_eq!(usage.completion, 0);
        let usage =
            parse(r#"{"prompt_tokens":5,"completion_tokens":1,"prompt_cache_hit_tokens":3}"#);
        assert_eq!(usage.cached, 3);
    }

    #[test]
    fn estimate_uses_the_gateway_prompt_rule() {
        let body = br#"{"messages":[{"role":"user","content":"abcdefgh"}]}"#;
        // 3 reply priming + 4 framing + 2 text; 9 bytes of completion -> 3.
        assert_eq!(
            Usage::estimate(body, 9),
            Usage {
                prompt: 9,
                completion: 3,
                ..Usage::default()
            }
        );
        assert_eq!(Usage::estimate(b"not json", 0), Usage::default());
    }
}
