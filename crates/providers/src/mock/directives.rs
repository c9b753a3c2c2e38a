//! Per-request instructions to the mock, written inside the last user
//! message so a test can steer one request through the whole gateway.
//!
//! Syntax: `[[mock:key=value]]`, several pairs separated by commas or spaces
//! (`[[mock:status=429, retry_after=7]]`), as many blocks as wanted. Keys:
//!
//! | key | effect |
//! |---|---|
//! | `status=CODE` | answer with this HTTP error status (4xx/5xx) and an OpenAI error body |
//! | `error=CODE` | refuse with OpenAI's 400 of that `code`: `context_length_exceeded` or `content_policy_violation` |
//! | `retry_after=SECS` | send `Retry-After: SECS` with a 429 |
//! | `cut_after=N` | end a stream abruptly after N events, without `[DONE]` |
//! | `latency_ms=MS` | wait before the answer (or first chunk) |
//! | `chunk_delay_ms=MS` | wait between stream events |
//! | `chunks=N` | split the reply into N content chunks |
//! | `completion_tokens=N` | report N completion tokens |
//! | `cached_tokens=N` | report N cached prompt tokens (at most the prompt) |
//! | `cache_write_5m_tokens=N` | report N prompt tokens written to a 5-minute cache (at most the prompt left after cached reads) |
//! | `cache_write_1h_tokens=N` | report N prompt tokens written to a 1-hour cache (at most the prompt left after reads and 5-minute writes) |
//! | `reasoning_tokens=N` | report N of the completion tokens as reasoning (at most the completion) |
//! | `tool_call=true` | answer with a call of the request's first tool |
//! | `overloaded_after=N` | (Anthropic's fake) end a stream after N events with Anthropic's `error` event of type `overloaded_error` |
//! | `overloaded=true` | answer with the provider's own "overloaded" error: OpenAI's 503 "The engine is currently overloaded", Anthropic's 529 `overloaded_error`, Gemini's 503 `UNAVAILABLE`, Ollama's 503 "server busy" |
//!
//! OpenAI's wire format has no field for cache writes: the in-process mock
//! reports them in its usage, while the JSON it answers (and the mock
//! upstream server's) carries the reads and reasoning only. The fakes of
//! other providers report each count in their own fields (Anthropic's
//! cache writes by lifetime, Gemini's thinking tokens apart from the
//! answer's).
//!
//! Unknown keys and unparsable values are ignored. The blocks are removed
//! from the echoed reply.

use std::borrow::Cow;
use std::str::FromStr;

const OPEN: &str = "[[mock:";
const CLOSE: &str = "]]";

/// A refusal of the request itself that OpenAI answers with a 400 and a
/// `code` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The prompt is longer than the model's context window.
    ContextLengthExceeded,
    /// The request was refused by the content policy.
    ContentPolicyViolation,
}

impl Refusal {
    /// OpenAI's error `code`.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::ContextLengthExceeded => "context_length_exceeded",
            Refusal::ContentPolicyViolation => "content_policy_violation",
        }
    }
}

impl FromStr for Refusal {
    type Err = ();

    fn from_str(code: &str) -> Result<Self, ()> {
        [
            Refusal::ContextLengthExceeded,
            Refusal::ContentPolicyViolation,
        ]
        .into_iter()
        .find(|refusal| refusal.code() == code)
        .ok_or(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub status: Option<u16>,
    pub error: Option<Refusal>,
    pub retry_after: Option<u64>,
    pub cut_after: Option<u32>,
    pub latency_ms: Option<u64>,
    pub chunk_delay_ms: Option<u64>,
    pub chunks: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub cached_tokens: Option<u32>,
    pub cache_write_5m_tokens: Option<u32>,
    pub cache_write_1h_tokens: Option<u32>,
    pub tool_call: Option<bool>,
    pub reasoning_tokens: Option<u32>,
    pub overloaded: Option<bool>,
    pub overloaded_after: Option<u32>,
}

impl Directives {
    /// The directives of `body`, the inside of one block without its
    /// brackets (`status=503, retry_after=7`).
    pub fn parse(body: &str) -> Directives {
        let mut directives = Directives::default();
        directives.apply_all(body);
        directives
    }

    /// These directives, each unset one taken from `fallback`.
    pub fn or(self, fallback: Directives) -> Directives {
        Directives {
            status: self.status.or(fallback.status),
            error: self.error.or(fallback.error),
            retry_after: self.retry_after.or(fallback.retry_after),
            cut_after: self.cut_after.or(fallback.cut_after),
            latency_ms: self.latency_ms.or(fallback.latency_ms),
            chunk_delay_ms: self.chunk_delay_ms.or(fallback.chunk_delay_ms),
            chunks: self.chunks.or(fallback.chunks),
            completion_tokens: self.completion_tokens.or(fallback.completion_tokens),
            cached_tokens: self.cached_tokens.or(fallback.cached_tokens),
            cache_write_5m_tokens: self
                .cache_write_5m_tokens
                .or(fallback.cache_write_5m_tokens),
            cache_write_1h_tokens: self
                .cache_write_1h_tokens
                .or(fallback.cache_write_1h_tokens),
            tool_call: self.tool_call.or(fallback.tool_call),
            reasoning_tokens: self.reasoning_tokens.or(fallback.reasoning_tokens),
            overloaded: self.overloaded.or(fallback.overloaded),
            overloaded_after: self.overloaded_after.or(fallback.overloaded_after),
        }
    }

    /// The directives in `text`, and `text` without them (trimmed when any
    /// were removed).
    pub fn extract(text: &str) -> (Directives, Cow<'_, str>) {
        let mut directives = Directives::default();
        if !text.contains(OPEN) {
            return (directives, Cow::Borrowed(text));
        }
        let mut rest = text;
        let mut kept = String::with_capacity(text.len());
        while let Some(start) = rest.find(OPEN) {
            let body_start = start + OPEN.len();
            let Some(body_len) = rest[body_start..].find(CLOSE) else {
                break;
            };
            kept.push_str(&rest[..start]);
            directives.apply_all(&rest[body_start..body_start + body_len]);
            rest = &rest[body_start + body_len + CLOSE.len()..];
        }
        kept.push_str(rest);
        (directives, Cow::Owned(kept.trim().to_owned()))
    }

    fn apply_all(&mut self, body: &str) {
        let pairs = body
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|pair| !pair.is_empty());
        for pair in pairs {
            if let Some((key, value)) = pair.split_once('=') {
                self.apply(key.trim(), value.trim());
            }
        }
    }

    fn apply(&mut self, key: &str, value: &str) {
        fn set<T: std::str::FromStr>(slot: &mut Option<T>, value: &str) {
            if let Ok(parsed) = value.parse() {
                *slot = Some(parsed);
            }
        }
        match key {
            "status" => set(&mut self.status, value),
            "error" => set(&mut self.error, value),
            "retry_after" => set(&mut self.retry_after, value),
            "cut_after" => set(&mut self.cut_after, value),
            "latency_ms" => set(&mut self.latency_ms, value),
            "chunk_delay_ms" => set(&mut self.chunk_delay_ms, value),
            "chunks" => set(&mut self.chunks, value),
            "completion_tokens" => set(&mut self.completion_tokens, value),
            "cached_tokens" => set(&mut self.cached_tokens, value),
            "cache_write_5m_tokens" => set(&mut self.cache_write_5m_tokens, value),
            "cache_write_1h_tokens" => set(&mut self.cache_write_1h_tokens, value),
            "tool_call" => set(&mut self.tool_call, value),
            "reasoning_tokens" => set(&mut self.reasoning_tokens, value),
            "overloaded" => set(&mut self.overloaded, value),
            "overloaded_after" => set(&mut self.overloaded_after, value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_an_openai_refusal_code() {
        let directives = Directives::parse("error=context_length_exceeded");
        assert_eq!(directives.error, Some(Refusal::ContextLengthExceeded));
        let directives = Directives::parse("error=content_policy_violation, latency_ms=5");
        assert_eq!(directives.error, Some(Refusal::ContentPolicyViolation));
        assert_eq!(Directives::parse("error=teapot").error, None);
    }

    #[test]
    fn plain_text_is_borrowed_untouched() {
        let (directives, text) = Directives::extract("  hello  ");
        assert_eq!(directives, Directives::default());
        assert!(matches!(text, Cow::Borrowed("  hello  ")));
    }

    #[test]
    fn reads_blocks_and_removes_them() {
        let (directives, text) = Directives::extract(
            "fail please [[mock:status=429, retry_after=7]] now [[mock:cut_after=2 latency_ms=50]]",
        );
        assert_eq!(text, "fail please  now");
        assert_eq!(directives.status, Some(429));
        assert_eq!(directives.retry_after, Some(7));
        assert_eq!(directives.cut_after, Some(2));
        assert_eq!(directives.latency_ms, Some(50));
        assert_eq!(directives.chunks, None);
    }

    #[test]
    fn a_block_body_parses_and_message_directives_win() {
        let per_key = Directives::parse("status=503, latency_ms=20");
        assert_eq!(per_key.status, Some(503));
        let (in_message, _) = Directives::extract("[[mock:status=429]] hi");
        let merged = in_message.or(per_key);
        assert_eq!(merged.status, Some(429));
        assert_eq!(merged.latency_ms, Some(20));
    }

    #[test]
    fn ignores_unknown_keys_bad_values_and_unclosed_blocks() {
        let (directives, text) =
            Directives::extract("[[mock:colour=red,status=abc,chunks=5,cached_tokens]]x");
        assert_eq!(
            directives,
            Directives {
                chunks: Some(5),
                ..Directives::default()
            }
        );
        assert_eq!(text, "x");
        let (directives, text) = Directives::extract("hi [[mock:status=500");
        assert_eq!(directives.status, None);
        assert_eq!(text, "hi [[mock:status=500");
    }
}
