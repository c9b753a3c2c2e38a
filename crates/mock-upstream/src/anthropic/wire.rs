//! The fake's answers in Anthropic's exact wire format: the `message`
//! object, the named SSE events of a stream, and the error object.

use serde_json::{Value, json};
use tollgate_providers::mock::split_piece;

use super::exchange::{Answer, MessagesExchange};

/// Anthropic's error `type` for an HTTP status.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

pub(crate) fn error_body(status: u16, message: &str) -> Vec<u8> {
    json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": "req_mock",
    })
    .to_string()
    .into_bytes()
}

fn usage(exchange: &MessagesExchange, output_tokens: u32) -> Value {
    json!({
        "input_tokens": exchange.input_tokens,
        "cache_creation_input_tokens": exchange.cache_write_5m + exchange.cache_write_1h,
        "cache_read_input_tokens": exchange.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": exchange.cache_write_5m,
            "ephemeral_1h_input_tokens": exchange.cache_write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    })
}

fn block(answer: &Answer) -> Value {
    match answer {
        Answer::Text(text) => json!({"type": "text", "text": text}),
        Answer::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

/// The `message` object of a plain answer.
pub(crate) fn message(exchange: &MessagesExchange) -> Vec<u8> {
    let content = match &exchange.answer {
        Answer::Text(text) if text.is_empty() => Vec::new(),
        answer => vec![block(answer)],
    };
    json!({
        "id": exchange.id,
        "type": "message",
        "role": "assistant",
        "model": exchange.model,
        "content": content,
        "stop_reason": exchange.stop_reason,
        "stop_sequence": null,
        "usage": usage(exchange, exchange.output_tokens),
    })
    .to_string()
    .into_bytes()
}

fn frame(out: &mut Vec<Vec<u8>>, data: Value) {
    let kind = data["type"].as_str().unwrap_or_default().to_owned();
    out.push(format!("event: {kind}\ndata: {data}\n\n").into_bytes());
}

/// Anthropic's `error` event, as a stream sends it when the API becomes
/// overloaded after the answer started.
pub(crate) fn overloaded_event() -> Vec<u8> {
    let mut out = Vec::new();
    frame(
        &mut out,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    out.remove(0)
}

/// Every event of a streamed answer, in order: `message_start`, `ping`,
/// the content block (start, `chunks` deltas, stop), `message_delta` with
/// the stop reason and output tokens, `message_stop`.
pub(crate) fn stream_frames(exchange: &MessagesExchange) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    frame(
        &mut out,
        json!({"type": "message_start", "message": {
            "id": exchange.id, "type": "message", "role": "assistant", "model": exchange.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage(exchange, 1),
        }}),
    );
    frame(&mut out, json!({"type": "ping"}));
    let chunks = exchange.chunks as usize;
    match &exchange.answer {
        Answer::Text(text) if text.is_empty() => {}
        Answer::Text(text) => {
            frame(
                &mut out,
                json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            );
            for piece in 0..chunks {
                frame(
                    &mut out,
                    json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": split_piece(text, chunks, piece)}}),
                );
            }
            frame(&mut out, json!({"type": "content_block_stop", "index": 0}));
        }
        Answer::ToolUse { id, name, input } => {
            frame(
                &mut out,
                json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
            );
            let json = input.to_string();
            for piece in 0..chunks {
                frame(
                    &mut out,
                    json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": split_piece(&json, chunks, piece)}}),
                );
            }
            frame(&mut out, json!({"type": "content_block_stop", "index": 0}));
        }
    }
    frame(
        &mut out,
        json!({"type": "message_delta",
            "delta": {"stop_reason": exchange.stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": exchange.output_tokens}}),
    );
    frame(&mut out, json!({"type": "message_stop"}));
    if let Some(after) = exchange.directives.overloaded_after {
        out.truncate(after as usize);
        out.push(overloaded_event());
    }
    out
}
