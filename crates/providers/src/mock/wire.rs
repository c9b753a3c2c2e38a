//! The OpenAI Chat Completions wire objects the mock sends:
//! `chat.completion`, `chat.completion.chunk`, the error body and the model
//! list, serialised straight from borrowed data.

use serde::Serialize;

use super::exchange::MockExchange;
use crate::usage::Usage;

const FINGERPRINT: &str = "fp_tollgate_mock";

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: WireUsage,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[WireToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Present only when the request set `stream_options.include_usage`:
    /// `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<WireUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<()>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[WireToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u32,
    audio_tokens: u32,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u32,
    audio_tokens: u32,
    accepted_prediction_tokens: u32,
    rejected_prediction_tokens: u32,
}

impl From<Usage> for WireUsage {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt,
            completion_tokens: usage.completion,
            total_tokens: usage.total(),
            prompt_tokens_details: PromptDetails {
                cached_tokens: usage.cached,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: usage.reasoning,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }
}

fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    // Serialising these plain structs into a Vec cannot fail.
    let _infallible = serde_json::to_writer(out, value);
}

pub(super) fn completion(exchange: &MockExchange) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + exchange.reply.len());
    write_json(
        &mut out,
        &Completion {
            id: &exchange.id,
            object: "chat.completion",
            created: exchange.created,
            model: &exchange.model,
            choices: [CompletionChoice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content: exchange
                        .tool_call
                        .is_none()
                        .then_some(exchange.reply.as_str()),
                    refusal: None,
                    annotations: [],
                    tool_calls: exchange.tool_call.as_ref().map(|call| {
                        [WireToolCall {
                            index: None,
                            id: Some(&call.id),
                            kind: Some("function"),
                            function: WireFunction {
                                name: Some(&call.name),
                                arguments: &call.arguments,
                            },
                        }]
                    }),
                },
                logprobs: None,
                finish_reason: exchange.finish_reason,
            }],
            usage: exchange.usage.into(),
            system_fingerprint: FINGERPRINT,
        },
    );
    out
}

pub(super) fn write_chunk(exchange: &MockExchange, index: usize, out: &mut Vec<u8>) {
    let last_content = exchange.chunks as usize;
    let choice = |delta, finish_reason| ChunkChoice {
        index: 0,
        delta,
        logprobs: None,
        finish_reason,
    };
    let choices: &[ChunkChoice<'_>] = &match index {
        0 => [choice(
            Delta {
                role: Some("assistant"),
                content: exchange.tool_call.is_none().then_some(""),
                refusal: Some(None),
                tool_calls: None,
            },
            None,
        )],
        piece if piece <= last_content => match &exchange.tool_call {
            // A call streams as OpenAI's do: the id and name first, then
            // the arguments in pieces.
            Some(call) => [choice(
                Delta {
                    tool_calls: Some([WireToolCall {
                        index: Some(0),
                        id: (piece == 1).then_some(call.id.as_str()),
                        kind: (piece == 1).then_some("function"),
                        function: WireFunction {
                            name: (piece == 1).then_some(call.name.as_str()),
                            arguments: exchange.reply_piece(piece - 1),
                        },
                    }]),
                    ..Delta::default()
                },
                None,
            )],
            None => [choice(
                Delta {
                    content: Some(exchange.reply_piece(piece - 1)),
                    ..Delta::default()
                },
                None,
            )],
        },
        piece if piece == last_content + 1 => {
            [choice(Delta::default(), Some(exchange.finish_reason))]
        }
        _ => return write_usage_chunk(exchange, out),
    };
    write_json(
        out,
        &Chunk {
            id: &exchange.id,
            object: "chat.completion.chunk",
            created: exchange.created,
            model: &exchange.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage: exchange.include_usage.then_some(None),
        },
    );
}

fn write_usage_chunk(exchange: &MockExchange, out: &mut Vec<u8>) {
    write_json(
        out,
        &Chunk {
            id: &exchange.id,
            object: "chat.completion.chunk",
            created: exchange.created,
            model: &exchange.model,
            system_fingerprint: FINGERPRINT,
            choices: &[],
            usage: Some(Some(exchange.usage.into())),
        },
    );
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The OpenAI error `type` and `code` for an HTTP status.
fn error_labels(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("invalid_request_error", Some("permission_denied")),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500.. => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

/// `{"error":{"message","type","param","code"}}`; `code` replaces the
/// usual one of the status.
pub fn error_body(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    let (kind, usual_code) = error_labels(status);
    let code = code.or(usual_code);
    let mut out = Vec::with_capacity(128 + message.len());
    write_json(
        &mut out,
        &ErrorBody {
            error: ErrorFields {
                message,
                kind,
                param,
                code,
            },
        },
    );
    out
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// The `GET /v1/models` list body.
pub fn model_list<'a>(models: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let data = models
        .into_iter()
        .map(|id| ModelEntry {
            id,
            object: "model",
            created: 0,
            owned_by: "tollgate",
        })
        .collect();
    let mut out = Vec::new();
    write_json(
        &mut out,
        &ModelList {
            object: "list",
            data,
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockBehavior;
    use serde_json::{Value, json};

    fn exchange(include_usage: bool) -> MockExchange {
        let body = json!({"model": "gpt-test", "stream": true,
            "stream_options": {"include_usage": include_usage},
            "messages": [{"role": "user", "content": "abcdef"}]});
        MockExchange::parse(
            body.to_string().as_bytes(),
            &MockBehavior {
                chunks: 3,
                ..MockBehavior::default()
            },
        )
        .unwrap()
    }

    fn events(exchange: &MockExchange) -> Vec<Value> {
        (0..exchange.event_count())
            .map(|index| {
                let mut out = Vec::new();
                exchange.write_event(index, &mut out);
                serde_json::from_slice(&out).unwrap()
            })
            .collect()
    }

    #[test]
    fn completion_has_the_openai_shape() {
        let exchange = exchange(false);
        let body: Value = serde_json::from_slice(&exchange.completion_body()).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gpt-test");
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        let choice = &body["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "abcdef");
        assert_eq!(choice["message"]["refusal"], Value::Null);
        assert_eq!(choice["message"]["annotations"], json!([]));
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["logprobs"], Value::Null);
        let usage = &body["usage"];
        assert_eq!(usage["prompt_tokens"], 3 + 4 + 2);
        assert_eq!(usage["completion_tokens"], 2);
        assert_eq!(usage["total_tokens"], 3 + 4 + 2 + 2);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
    }

    #[test]
    fn stream_chunks_follow_openai_with_usage() {
        let events = events(&exchange(true));
        assert_eq!(events.len(), 6);
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        let text: String = events[1..4]
            .iter()
            .map(|event| event["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, "abcdef");
        assert_eq!(events[4]["choices"][0]["delta"], json!({}));
        assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");
        for event in &events[..5] {
            assert_eq!(event["object"], "chat.completion.chunk");
            assert_eq!(event["usage"], Value::Null);
            assert!(event.as_object().unwrap().contains_key("usage"));
            assert_eq!(event["choices"][0]["index"], 0);
        }
        assert_eq!(events[5]["choices"], json!([]));
        assert_eq!(events[5]["usage"]["completion_tokens"], 2);
        assert_eq!(events[5]["id"], events[0]["id"]);
    }

    #[test]
    fn stream_chunks_without_usage_omit_the_field() {
        let events = events(&exchange(false));
        assert_eq!(events.len(), 5);
        assert!(events.iter().all(|event| event.get("usage").is_none()));
    }

    #[test]
    fn error_bodies_carry_type_and_code() {
        let body: Value =
            serde_json::from_slice(&error_body(429, "slow down", None, None)).unwrap();
        assert_eq!(
            body,
            json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        );
        let body: Value =
            serde_json::from_slice(&error_body(400, "bad", Some("model"), None)).unwrap();
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["code"], Value::Null);
        let body: Value = serde_json::from_slice(&error_body(503, "busy", None, None)).unwrap();
        assert_eq!(body["error"]["type"], "server_error");
    }

    #[test]
    fn model_list_shape() {
        let body: Value = serde_json::from_slice(&model_list(["a", "b"])).unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][1]["id"], "b");
        assert_eq!(body["data"][0]["object"], "model");
    }
}
