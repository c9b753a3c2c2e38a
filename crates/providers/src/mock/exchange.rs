//! One mock request: what was asked, what the mock answers, and how.
//!
//! The answer is deterministic:
//! - **Reply text**: the text of the last `user` message (string content, or
//!   its `text` parts joined with `\n`), with `[[mock:…]]` directives
//!   removed; empty when there is no user message. When the conversation
//!   ends with `tool` messages, their content instead.
//! - **Tool calls**: when `tool_choice` names a function or says
//!   `required`, or the `tool_call=true` directive asks, the answer is a
//!   call of that (or the first) function instead, its arguments the reply
//!   when that is a JSON object, else `{"text": reply}`; it finishes with
//!   `tool_calls`. An assistant message's tool calls must each be answered
//!   by a `tool` message, as OpenAI requires.
//! - **Prompt tokens**: the gateway's own estimate of the request,
//!   [`tollgate_core::tokens::estimate_chat_prompt`]: 3 + for each message
//!   4 + ceil(text bytes / 4) (images 765 each).
//! - **Completion tokens**: max(1, ceil(reply bytes / 4)), unless a
//!   `completion_tokens` directive or setting fixes the number; never more
//!   than the request's `max_completion_tokens` (or `max_tokens`): an answer
//!   held to it is cut to that many tokens (four bytes each) and finishes
//!   with `length`, as OpenAI's does.
//! - **Cached tokens**: 0, unless a `cached_tokens` directive says otherwise.
//! - **Cache writes and reasoning tokens**: 0, unless the
//!   `cache_write_5m_tokens`, `cache_write_1h_tokens` or `reasoning_tokens`
//!   directives say otherwise; parts of the prompt (after cached reads) and
//!   of the completion, never more than they hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tollgate_core::tokens::{estimate_chat_prompt, estimate_text};

use super::directives::Directives;
use super::wire;
use super::{MockBehavior, MockFailure};
use crate::usage::Usage;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A parsed request and the mock's planned answer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockExchange {
    pub id: String,
    pub created: u64,
    /// The model named by the request, echoed in the answer.
    pub model: String,
    /// The request asked for `stream: true`.
    pub stream: bool,
    /// The request asked for `stream_options.include_usage: true`.
    pub include_usage: bool,
    pub reply: String,
    pub usage: Usage,
    pub directives: Directives,
    pub latency: Duration,
    pub chunk_delay: Duration,
    /// Content chunks of a stream (at least 1).
    pub chunks: u32,
    /// End the stream abruptly after this many events.
    pub cut_after: Option<u32>,
    /// The request's own completion cap, if it set one.
    pub cap: Option<u32>,
    /// `stop`, `length` when the cap cut the answer, or `tool_calls`.
    pub finish_reason: &'static str,
    /// The function call the answer is, instead of text.
    pub tool_call: Option<MockToolCall>,
}

/// A function call the mock answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
}

impl MockExchange {
    /// Reads an OpenAI Chat Completions request body; a body OpenAI would
    /// reject gets the 400 OpenAI would send.
    pub fn parse(body: &[u8], behavior: &MockBehavior) -> Result<Self, MockFailure> {
        Self::parse_with(body, behavior, Directives::default())
    }

    /// As [`MockExchange::parse`], with `defaults` for every directive the
    /// message does not set (the directives of the caller's API key).
    pub fn parse_with(
        body: &[u8],
        behavior: &MockBehavior,
        defaults: Directives,
    ) -> Result<Self, MockFailure> {
        let request: Value = serde_json::from_slice(body).map_err(|_| {
            MockFailure::invalid(
                None,
                "We could not parse the JSON body of your request: it is not valid JSON.",
            )
        })?;
        let Some(model) = request.get("model").and_then(Value::as_str) else {
            return Err(MockFailure::invalid(
                Some("model"),
                "you must provide a model parameter",
            ));
        };
        let messages = match request.get("messages").and_then(Value::as_array) {
            Some(messages) if !messages.is_empty() => messages,
            _ => {
                return Err(MockFailure::invalid(
                    Some("messages"),
                    "messages must be a non-empty array",
                ));
            }
        };
        check_tool_answers(messages)?;
        let user_text = reply_source(messages);
        let (directives, reply) = Directives::extract(&user_text);
        let directives = directives.or(defaults);
        let mut reply = reply.into_owned();
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let tool_call = called_function(&request, directives.tool_call == Some(true)).map(|name| {
            let arguments = match serde_json::from_str::<Value>(&reply) {
                Ok(object @ Value::Object(_)) => object.to_string(),
                _ => serde_json::json!({ "text": reply }).to_string(),
            };
            MockToolCall {
                id: format!("call_mock{sequence:016x}"),
                name,
                arguments,
            }
        });
        if let Some(call) = &tool_call {
            reply = call.arguments.clone();
        }

        let prompt = estimate_chat_prompt(&request);
        let completion = directives
            .completion_tokens
            .or(behavior.completion_tokens)
            .unwrap_or_else(|| estimate_text(&reply).max(1));
        let cached = directives.cached_tokens.unwrap_or(0).min(prompt);
        let cache_write_5m = directives
            .cache_write_5m_tokens
            .unwrap_or(0)
            .min(prompt - cached);
        let cache_write_1h = directives
            .cache_write_1h_tokens
            .unwrap_or(0)
            .min(prompt - cached - cache_write_5m);
        let reasoning = directives.reasoning_tokens.unwrap_or(0).min(completion);
        let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let millis = |ms: Option<u64>, default: Duration| ms.map_or(default, Duration::from_millis);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());

        let cap = ["max_completion_tokens", "max_tokens"]
            .into_iter()
            .find_map(|field| request.get(field).and_then(Value::as_u64))
            .map(|cap| u32::try_from(cap).unwrap_or(u32::MAX));
        let mut exchange = Self {
            id: format!("chatcmpl-mock{created:x}{sequence:08x}"),
            created,
            model: model.to_owned(),
            stream,
            include_usage,
            reply,
            usage: Usage {
                prompt,
                completion,
                cached,
                cache_write_5m,
                cache_write_1h,
                reasoning,
                provider_cost_micro_usd: None,
            },
            latency: millis(directives.latency_ms, behavior.latency),
            chunk_delay: millis(directives.chunk_delay_ms, behavior.chunk_delay),
            chunks: directives.chunks.unwrap_or(behavior.chunks).max(1),
            cut_after: directives.cut_after.or(behavior.cut_after),
            directives,
            cap: None,
            finish_reason: if tool_call.is_some() {
                "tool_calls"
            } else {
                "stop"
            },
            tool_call,
        };
        if let Some(cap) = cap {
            exchange.hold_to(cap);
        }
        Ok(exchange)
    }

    /// Holds the answer to `cap` completion tokens, as an upstream does
    /// with `max_tokens`: a longer one is cut and finishes with `length`.
    pub fn hold_to(&mut self, cap: u32) {
        self.cap = Some(cap);
        if self.usage.completion <= cap {
            return;
        }
        self.usage.completion = cap;
        self.usage.reasoning = self.usage.reasoning.min(cap);
        self.finish_reason = "length";
        let mut end = (cap as usize).saturating_mul(4).min(self.reply.len());
        while !self.reply.is_char_boundary(end) {
            end -= 1;
        }
        self.reply.truncate(end);
    }

    /// The failure an `error` directive asks for, else an `overloaded`
    /// one, else a `status` one (error statuses only).
    pub fn requested_failure(&self) -> Option<MockFailure> {
        if let Some(refusal) = self.directives.error {
            return Some(MockFailure::refused(refusal));
        }
        if self.directives.overloaded == Some(true) {
            return Some(MockFailure::overloaded());
        }
        let status = self.directives.status.filter(|status| *status >= 400)?;
        Some(MockFailure::status(status, self.directives.retry_after))
    }

    /// The `chat.completion` JSON body.
    pub fn completion_body(&self) -> Vec<u8> {
        wire::completion(self)
    }

    /// Events of a stream: the role chunk, the content chunks, the chunk
    /// with `finish_reason`, and the usage chunk when asked for.
    pub fn event_count(&self) -> usize {
        self.chunks as usize + 2 + usize::from(self.include_usage)
    }

    /// Whether event `index` is the usage chunk.
    pub fn is_usage_event(&self, index: usize) -> bool {
        self.include_usage && index + 1 == self.event_count()
    }

    /// Appends the JSON of stream event `index` (< [`Self::event_count`]).
    pub fn write_event(&self, index: usize, out: &mut Vec<u8>) {
        wire::write_chunk(self, index, out);
    }

    /// The piece of the reply carried by content chunk `piece`.
    pub(crate) fn reply_piece(&self, piece: usize) -> &str {
        split_piece(&self.reply, self.chunks as usize, piece)
    }
}

/// The function the answer calls: the one `tool_choice` names, the first
/// when it says `required` or `call_first` asks; none when it says `none`.
fn called_function(request: &Value, call_first: bool) -> Option<String> {
    let first = || {
        request
            .pointer("/tools/0/function/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match request.get("tool_choice") {
        Some(Value::String(mode)) if mode == "none" => None,
        Some(Value::String(mode)) if mode == "required" => first(),
        Some(choice @ Value::Object(_)) => choice
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ if call_first => first(),
        _ => None,
    }
}

/// OpenAI's 400 for an assistant's tool call without a `tool` message
/// answering it.
fn check_tool_answers(messages: &[Value]) -> Result<(), MockFailure> {
    for (index, message) in messages.iter().enumerate() {
        let Some(calls) = message.get("tool_calls").and_then(Value::as_array) else {
            continue;
        };
        let answered: Vec<&str> = messages[index + 1..]
            .iter()
            .take_while(|next| next["role"] == "tool")
            .filter_map(|next| next["tool_call_id"].as_str())
            .collect();
        if let Some(missing) = calls
            .iter()
            .filter_map(|call| call["id"].as_str())
            .find(|id| !answered.contains(id))
        {
            return Err(MockFailure::invalid(
                Some("messages"),
                &format!(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {missing}"
                ),
            ));
        }
    }
    Ok(())
}

/// What the answer echoes: the trailing `tool` messages' content, else the
/// last user message's text.
fn reply_source(messages: &[Value]) -> String {
    let results: Vec<&Value> = messages
        .iter()
        .rev()
        .take_while(|message| message["role"] == "tool")
        .collect();
    if results.is_empty() {
        return last_user_text(messages);
    }
    results
        .iter()
        .rev()
        .map(|message| content_text(&message["content"]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn last_user_text(messages: &[Value]) -> String {
    let Some(message) = messages
        .iter()
        .rev()
        .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    content_text(&message["content"])
}

/// String content, or its `text` parts joined with `\n`.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Piece `index` of `count` nearly equal pieces of `text`, cut on character
/// boundaries; the pieces joined give `text` back.
pub fn split_piece(text: &str, count: usize, index: usize) -> &str {
    let boundary = |piece: usize| {
        let mut at = text.len() * piece / count.max(1);
        while !text.is_char_boundary(at) {
            at += 1;
        }
        at
    };
    &text[boundary(index)..boundary(index + 1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_are_called_when_asked_and_their_results_echoed() {
        let tools = json!([{"type": "function", "function": {"name": "weather"}}]);
        let exchange = parse(json!({"model": "m", "tools": tools,
            "messages": [{"role": "user", "content": "{\"city\":\"Oslo\"} [[mock:tool_call=true]]"}]}))
        .unwrap();
        let call = exchange.tool_call.clone().unwrap();
        assert_eq!(
            (call.name.as_str(), call.arguments.as_str()),
            ("weather", "{\"city\":\"Oslo\"}")
        );
        assert_eq!(exchange.finish_reason, "tool_calls");
        let body: Value = serde_json::from_slice(&exchange.completion_body()).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["id"],
            call.id.as_str()
        );

        let forced = parse(
            json!({"model": "m", "tools": tools, "tool_choice": "required",
            "messages": [{"role": "user", "content": "plain"}]}),
        )
        .unwrap();
        assert_eq!(forced.tool_call.unwrap().arguments, "{\"text\":\"plain\"}");

        let answered = parse(json!({"model": "m", "tools": tools, "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]}))
        .unwrap();
        assert_eq!(answered.reply, "sunny");
        assert!(answered.tool_call.is_none());

        let unanswered = parse(json!({"model": "m", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c9", "type": "function",
                "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "user", "content": "q"}]}))
        .unwrap_err();
        assert_eq!(unanswered.status, 400);
        assert!(unanswered.message.contains("c9"));
    }

    fn parse(body: Value) -> Result<MockExchange, MockFailure> {
        MockExchange::parse(body.to_string().as_bytes(), &MockBehavior::default())
    }

    #[test]
    fn echoes_the_last_user_message_with_the_documented_counts() {
        let exchange = parse(json!({
            "model": "mock-echo",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [
                    {"type": "text", "text": "hello"},
                    {"type": "text", "text": "world!"}
                ]}
            ]
        }))
        .unwrap();
        assert_eq!(exchange.reply, "hello\nworld!");
        assert_eq!(exchange.model, "mock-echo");
        assert!(!exchange.stream);
        // 3 + 4 messages * 4 + (2 + 2 + 1 + (2 + 2))
        assert_eq!(exchange.usage.prompt, 3 + 16 + 9);
        // "hello\nworld!" is 12 bytes.
        assert_eq!(exchange.usage.completion, 3);
        assert_eq!(exchange.usage.cached, 0);
    }

    #[test]
    fn cache_writes_and_reasoning_are_parts_of_what_they_belong_to() {
        let exchange = parse(
            json!({"model": "m", "messages": [{"role": "user", "content":
            "[[mock:cached_tokens=5,cache_write_5m_tokens=3,cache_write_1h_tokens=2,\
             completion_tokens=40,reasoning_tokens=30]] hello"}]}),
        )
        .unwrap();
        assert_eq!(exchange.reply, "hello");
        let usage = exchange.usage;
        assert_eq!(
            (usage.cached, usage.cache_write_5m, usage.cache_write_1h),
            (5, 3, 2)
        );
        assert_eq!((usage.completion, usage.reasoning), (40, 30));
        let body: Value = serde_json::from_slice(&exchange.completion_body()).unwrap();
        assert_eq!(
            body["usage"]["completion_tokens_details"]["reasoning_tokens"],
            30
        );
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 5);

        // Never more than the prompt (after reads) or the completion holds.
        let mut exchange = parse(
            json!({"model": "m", "messages": [{"role": "user", "content":
            "[[mock:cached_tokens=4,cache_write_5m_tokens=99999,cache_write_1h_tokens=9,\
             completion_tokens=40,reasoning_tokens=99]] hi"}]}),
        )
        .unwrap();
        let usage = exchange.usage;
        assert_eq!(usage.cache_write_5m, usage.prompt - 4);
        assert_eq!((usage.cache_write_1h, usage.reasoning), (0, 40));
        exchange.hold_to(10);
        assert_eq!(exchange.usage.reasoning, 10);
    }

    #[test]
    fn directives_and_settings_steer_the_answer() {
        let behavior = MockBehavior {
            completion_tokens: Some(50),
            chunks: 2,
            ..MockBehavior::default()
        };
        let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi [[mock:cached_tokens=999,chunks=4,latency_ms=5]]"}]});
        let exchange = MockExchange::parse(body.to_string().as_bytes(), &behavior).unwrap();
        assert_eq!(exchange.reply, "hi");
        assert_eq!(exchange.usage.completion, 50);
        assert_eq!(exchange.usage.cached, exchange.usage.prompt);
        assert_eq!(exchange.chunks, 4);
        assert_eq!(exchange.latency, Duration::from_millis(5));
        assert!(exchange.stream && exchange.include_usage);
        assert_eq!(exchange.event_count(), 7);
        assert!(exchange.is_usage_event(6));
        assert!(exchange.requested_failure().is_none());
    }

    #[test]
    fn status_directive_asks_for_a_failure() {
        let exchange = parse(json!({"model": "m", "messages": [
            {"role": "user", "content": "[[mock:status=429,retry_after=7]]"}]}))
        .unwrap();
        let failure = exchange.requested_failure().unwrap();
        assert_eq!(failure.status, 429);
        assert_eq!(failure.retry_after_secs, Some(7));
        assert_eq!(exchange.reply, "");
        assert_eq!(exchange.usage.completion, 1);
    }

    #[test]
    fn error_directive_asks_for_a_refusal() {
        let exchange = parse(json!({"model": "m", "messages": [
            {"role": "user", "content": "[[mock:error=content_policy_violation,status=503]]"}]}))
        .unwrap();
        let failure = exchange.requested_failure().unwrap();
        assert_eq!(
            (failure.status, failure.code),
            (400, Some("content_policy_violation"))
        );
    }

    #[test]
    fn rejects_what_openai_rejects() {
        let failure = MockExchange::parse(b"{nope", &MockBehavior::default()).unwrap_err();
        assert_eq!(failure.status, 400);
        let failure = parse(json!({"messages": [{"role": "user", "content": "x"}]})).unwrap_err();
        assert_eq!(failure.param, Some("model"));
        let failure = parse(json!({"model": "m", "messages": []})).unwrap_err();
        assert_eq!(failure.param, Some("messages"));
    }

    #[test]
    fn a_cap_holds_the_answer_and_finishes_with_length() {
        let exchange = parse(json!({"model": "m", "max_tokens": 2, "messages": [
            {"role": "user", "content": "a reply far longer than two tokens"}]}))
        .unwrap();
        assert_eq!(exchange.usage.completion, 2);
        assert_eq!(exchange.reply, "a reply ");
        assert_eq!(exchange.finish_reason, "length");
        assert_eq!(exchange.cap, Some(2));
        let exchange = parse(
            json!({"model": "m", "max_completion_tokens": 50, "max_tokens": 1,
            "messages": [{"role": "user", "content": "short"}]}),
        )
        .unwrap();
        assert_eq!(exchange.usage.completion, 2);
        assert_eq!(exchange.finish_reason, "stop");
        assert_eq!(exchange.cap, Some(50));
    }

    #[test]
    fn pieces_rejoin_to_the_text_on_char_boundaries() {
        for text in ["", "a", "hello world", "h\u{e9}llo \u{1f600} w\u{f6}rld"] {
            for count in 1..8 {
                let joined: String = (0..count).map(|i| split_piece(text, count, i)).collect();
                assert_eq!(joined, text, "{count} pieces");
            }
        }
        assert_eq!(split_piece("abcdef", 3, 1), "cd");
    }
}
