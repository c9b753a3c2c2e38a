//! Token estimation for reservations.
//!
//! Before the upstream answers, a lease must reserve what the request may
//! use: an estimate of the prompt plus the completion cap (the client's,
//! from [`requested_completion_cap`], for each of [`choices`]). The estimate is a
//! heuristic (about four characters of English text per token, plus the
//! per-message framing that chat formats add); settle replaces it with the
//! upstream's real count, so it only has to be close and never zero.

use serde_json::Value;

/// Tokens each chat message costs beyond its text (role and framing).
const PER_MESSAGE: u32 = 4;
/// Tokens that prime every reply.
const PER_REPLY: u32 = 3;
/// Tokens an image part is assumed to take before the upstream counts it.
const PER_IMAGE: u32 = 765;

/// Tokens of plain text: one per four bytes, rounded up.
pub fn estimate_text(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// Estimated prompt tokens of an OpenAI Chat Completions request body.
pub fn estimate_chat_prompt(body: &Value) -> u32 {
    let mut total = PER_REPLY;
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for message in messages {
            total = total.saturating_add(PER_MESSAGE);
            if let Some(content) = message.get("content") {
                total = total.saturating_add(estimate_content(content));
            }
            if let Some(calls) = message.get("tool_calls") {
                total = total.saturating_add(estimate_text(&calls.to_string()));
            }
        }
    }
    if let Some(tools) = body.get("tools") {
        total = total.saturating_add(estimate_text(&tools.to_string()));
    }
    total
}

fn estimate_content(content: &Value) -> u32 {
    match content {
        Value::String(text) => estimate_text(text),
        Value::Array(parts) => parts.iter().fold(0u32, |sum, part| {
            let part_tokens = match part.get("type").and_then(Value::as_str) {
                Some("text") => part
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, estimate_text),
                Some("image_url") => PER_IMAGE,
                _ => estimate_text(&part.to_string()),
            };
            sum.saturating_add(part_tokens)
        }),
        Value::Null => 0,
        other => estimate_text(&other.to_string()),
    }
}

/// The completion cap a request declares (`max_completion_tokens`, or the
/// older `max_tokens`), if any.
pub fn requested_completion_cap(body: &Value) -> Option<u32> {
    ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find_map(|field| body.get(field).and_then(Value::as_u64))
        .map(|cap| u32::try_from(cap).unwrap_or(u32::MAX))
}

/// What an image an upstream fetches by URL may cost at the most: the
/// largest images the major providers accept, tiled at their finest
/// detail, stay below it.
const WORST_REMOTE_IMAGE: u32 = 6_000;

/// The most tokens the prompt of a Chat Completions body of `body_len`
/// bytes can be: byte-level tokenizers never make more tokens than bytes,
/// and the body's JSON framing outweighs the chat template's own tokens;
/// an image the upstream fetches by URL is not in the body, so each adds
/// [`WORST_REMOTE_IMAGE`] (an inline `data:` image is in the body's bytes).
pub fn worst_case_chat_prompt(body: &Value, body_len: usize) -> u32 {
    let remote_images = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|message| message.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|part| {
            part.pointer("/image_url/url")
                .and_then(Value::as_str)
                .is_some_and(|url| !url.starts_with("data:"))
        })
        .count();
    let images = u32::try_from(remote_images)
        .unwrap_or(u32::MAX)
        .saturating_mul(WORST_REMOTE_IMAGE);
    u32::try_from(body_len)
        .unwrap_or(u32::MAX)
        .saturating_add(images)
        .max(estimate_chat_prompt(body))
}

/// The answers a request asks for (`n`, at least 1).
pub fn choices(body: &Value) -> u32 {
    body.get("n")
        .and_then(Value::as_u64)
        .map_or(1, |n| u32::try_from(n.max(1)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_about_four_bytes_a_token() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("abcd"), 1);
        assert_eq!(estimate_text("abcde"), 2);
    }

    #[test]
    fn chat_prompt_counts_framing_text_and_images() {
        let body = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}
        ]});
        // 3 reply + 2 * 4 framing + 2 ("be brief") + 4 ("what is this?") + 765 image
        assert_eq!(estimate_chat_prompt(&body), 3 + 8 + 2 + 4 + 765);
    }

    #[test]
    fn the_worst_case_is_a_token_a_byte_plus_remote_images() {
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what are these?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        ]}]});
        let len = body.to_string().len();
        assert_eq!(
            worst_case_chat_prompt(&body, len),
            u32::try_from(len).unwrap_or(u32::MAX) + 6_000
        );
        // Never below the estimate.
        let body = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert!(worst_case_chat_prompt(&body, 1) >= estimate_chat_prompt(&body));
    }

    #[test]
    fn caps_and_choices() {
        let body = json!({"messages": [], "max_tokens": 100, "n": 2});
        assert_eq!(requested_completion_cap(&body), Some(100));
        assert_eq!(choices(&body), 2);
        let body = json!({"messages": [], "max_completion_tokens": 7, "max_tokens": 100, "n": 0});
        assert_eq!(requested_completion_cap(&body), Some(7));
        assert_eq!(choices(&body), 1);
        let body = json!({"messages": []});
        assert_eq!(requested_completion_cap(&body), None);
        assert_eq!(choices(&body), 1);
    }
}
