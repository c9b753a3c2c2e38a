//! The fake's answers in the Gemini API's wire format: the
//! `GenerateContentResponse`, its SSE stream (one response per event, the
//! last with the finish reason), and Google's error envelope.

use serde_json::{Value, json};
use tollgate_providers::mock::split_piece;

use super::exchange::{Answer, GeminiExchange, Refused, SIGNATURE};

/// Google's canonical status name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

pub(crate) fn error_body(refused: &Refused) -> Vec<u8> {
    let mut details = Vec::new();
    if let Some(reason) = refused.reason {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason, "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"}}));
    }
    if let Some(delay) = refused.retry_delay {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{delay}s")}));
    }
    let mut error = json!({"code": refused.status, "message": refused.message,
        "status": status_name(refused.status)});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json!({ "error": error }).to_string().into_bytes()
}

fn usage(exchange: &GeminiExchange, candidate_tokens: u32) -> Value {
    let mut usage = json!({
        "promptTokenCount": exchange.prompt_tokens,
        "candidatesTokenCount": candidate_tokens,
        "totalTokenCount": exchange.prompt_tokens + candidate_tokens + exchange.thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": exchange.prompt_tokens}],
    });
    if exchange.cached_tokens > 0 {
        usage["cachedContentTokenCount"] = json!(exchange.cached_tokens);
    }
    if exchange.thoughts_tokens > 0 {
        usage["thoughtsTokenCount"] = json!(exchange.thoughts_tokens);
    }
    usage
}

fn response(
    exchange: &GeminiExchange,
    parts: &Value,
    finish: Option<&str>,
    candidate_tokens: u32,
) -> Value {
    if exchange.blocked {
        return json!({
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]},
            "usageMetadata": usage(exchange, 0),
            "modelVersion": exchange.model,
            "responseId": exchange.id,
        });
    }
    let candidates: Vec<Value> = (0..exchange.candidates)
        .map(|index| {
            let mut candidate =
                json!({"content": {"parts": parts, "role": "model"}, "index": index});
            if let Some(finish) = finish {
                candidate["finishReason"] = json!(finish);
            }
            candidate
        })
        .collect();
    json!({
        "candidates": candidates,
        "usageMetadata": usage(exchange, candidate_tokens),
        "modelVersion": exchange.model,
        "responseId": exchange.id,
    })
}

fn call_part(name: &str, args: &Value) -> Value {
    json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": SIGNATURE})
}

/// The whole answer of `generateContent`.
pub(crate) fn whole(exchange: &GeminiExchange) -> Vec<u8> {
    let parts = match &exchange.answer {
        Answer::Text(text) => json!([{ "text": text }]),
        Answer::Call { name, args } => json!([call_part(name, args)]),
    };
    response(
        exchange,
        &parts,
        Some(exchange.finish_reason),
        exchange.candidate_tokens,
    )
    .to_string()
    .into_bytes()
}

/// The events of `streamGenerateContent?alt=sse`: the text in `chunks`
/// pieces (a function call in one), the last with the finish reason and
/// the whole usage.
pub(crate) fn stream_frames(exchange: &GeminiExchange) -> Vec<Vec<u8>> {
    let frame = |value: Value| format!("data: {value}\r\n\r\n").into_bytes();
    if exchange.blocked {
        return vec![frame(response(exchange, &json!([]), None, 0))];
    }
    match &exchange.answer {
        Answer::Call { name, args } => vec![frame(response(
            exchange,
            &json!([call_part(name, args)]),
            Some(exchange.finish_reason),
            exchange.candidate_tokens,
        ))],
        Answer::Text(text) => {
            let chunks = exchange.chunks as usize;
            (0..chunks)
                .map(|piece| {
                    let last = piece + 1 == chunks;
                    let parts = json!([{ "text": split_piece(text, chunks, piece) }]);
                    let (finish, tokens) = if last {
                        (Some(exchange.finish_reason), exchange.candidate_tokens)
                    } else {
                        (None, 0)
                    };
                    frame(response(exchange, &parts, finish, tokens))
                })
                .collect()
        }
    }
}
