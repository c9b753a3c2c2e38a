//! A Gemini `GenerateContentResponse` as a Chat Completions answer: each
//! candidate a choice; text parts joined as the content, `thought` parts as
//! `reasoning_content`, `functionCall` parts as tool calls (their ids made
//! by [`super::tool_call_id`], carrying any thought signature); the finish
//! reason mapped ([`finish_reason`]). A prompt blocked by safety filters
//! (no candidates, a `promptFeedback.blockReason`) is the content-policy
//! error.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};

use super::tool_call_id;
use super::usage::WireUsage;
use crate::chat::{AssistantMessage, Choice, Completion, ToolCall};
use crate::errors;
use crate::usage::Usage;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub usage_metadata: Option<WireUsage>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub response_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    pub content: Option<CandidateContent>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CandidateContent {
    #[serde(default)]
    pub parts: Vec<ResponsePart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponsePart {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(default)]
    pub function_call: Option<FunctionCall>,
    #[serde(default)]
    pub thought_signature: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub args: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    #[serde(default)]
    pub block_reason: Option<String>,
}

impl GenerateContentResponse {
    /// The content-policy error when safety filters blocked the prompt.
    pub fn blocked(&self) -> Option<GatewayError> {
        let reason = self.prompt_feedback.as_ref()?.block_reason.as_ref()?;
        self.candidates.is_empty().then(|| {
            GatewayError::new(
                ErrorKind::ContentPolicy,
                format!("the provider refused this request under its content policy ({reason})"),
            )
        })
    }
}

/// The parts of one candidate, sorted into what a Chat message holds.
#[derive(Debug, Default)]
pub(super) struct Sorted {
    pub text: String,
    pub reasoning: String,
    pub calls: Vec<(String, String, Option<String>)>,
}

pub(super) fn sort_parts(parts: Vec<ResponsePart>) -> Sorted {
    let mut sorted = Sorted::default();
    for part in parts {
        if let Some(call) = part.function_call {
            let arguments = if call.args.is_null() {
                "{}".to_owned()
            } else {
                call.args.to_string()
            };
            sorted
                .calls
                .push((call.name, arguments, part.thought_signature));
        } else if let Some(text) = part.text {
            if part.thought == Some(true) {
                sorted.reasoning.push_str(&text);
            } else {
                sorted.text.push_str(&text);
            }
        }
    }
    sorted
}

/// Gemini's finish reason as OpenAI's; a stop with function calls is
/// `tool_calls`.
pub(super) fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// The Chat Completions body and usage of a Gemini answer.
pub(crate) fn to_chat(body: &[u8], created: u64) -> Result<(Bytes, Usage), GatewayError> {
    let response: GenerateContentResponse =
        serde_json::from_slice(body).map_err(|_| errors::unreadable())?;
    if let Some(blocked) = response.blocked() {
        return Err(blocked);
    }
    if response.candidates.is_empty() {
        return Err(errors::unreadable());
    }
    let id = response
        .response_id
        .clone()
        .unwrap_or_else(|| format!("gemini-{created:x}"));
    let usage = response.usage_metadata.unwrap_or_default().usage();
    let mut choices = Vec::with_capacity(response.candidates.len());
    for (position, candidate) in response.candidates.into_iter().enumerate() {
        let index = candidate
            .index
            .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
        let sorted = sort_parts(
            candidate
                .content
                .map(|content| content.parts)
                .unwrap_or_default(),
        );
        let tool_calls: Vec<ToolCall> = sorted
            .calls
            .into_iter()
            .enumerate()
            .map(|(call, (name, arguments, signature))| {
                ToolCall::function(
                    tool_call_id(&format!("{id}_{index}"), call, signature.as_deref()),
                    name,
                    arguments,
                )
            })
            .collect();
        let finish = finish_reason(
            candidate.finish_reason.as_deref().unwrap_or("STOP"),
            !tool_calls.is_empty(),
        );
        choices.push(Choice {
            index,
            message: AssistantMessage {
                role: "assistant",
                content: (!sorted.text.is_empty() || tool_calls.is_empty()).then_some(sorted.text),
                reasoning_content: (!sorted.reasoning.is_empty()).then_some(sorted.reasoning),
                tool_calls,
                refusal: None,
            },
            finish_reason: Some(finish),
            logprobs: None,
        });
    }
    let completion = Completion::new(
        id,
        created,
        response.model_version.unwrap_or_default(),
        choices,
        usage,
    );
    let body = serde_json::to_vec(&completion).map_err(|_| errors::unreadable())?;
    Ok((Bytes::from(body), usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::split_tool_call_id;
    use serde_json::json;

    fn chat(response: Value) -> Result<(Value, Usage), GatewayError> {
        let (body, usage) = to_chat(response.to_string().as_bytes(), 7)?;
        Ok((serde_json::from_slice(&body).unwrap(), usage))
    }

    #[test]
    fn candidates_become_choices_with_tool_calls_and_thoughts() {
        let (body, usage) = chat(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Thinking it over.", "thought": true},
                    {"text": "Checking."},
                    {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": "c2ln"}
                ]},
                "finishReason": "STOP", "index": 0,
                "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
            }],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "totalTokenCount": 18},
            "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"
        }))
        .unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "resp-1");
        assert_eq!(body["model"], "gemini-2.5-flash");
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Checking.");
        assert_eq!(choice["message"]["reasoning_content"], "Thinking it over.");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(
            call["function"],
            json!({"name": "weather", "arguments": "{\"city\":\"Oslo\"}"})
        );
        let (_, signature) = split_tool_call_id(call["id"].as_str().unwrap());
        assert_eq!(signature, Some("c2ln"));
        assert_eq!(
            (usage.prompt, usage.completion, usage.reasoning),
            (10, 8, 3)
        );
        assert_eq!(
            body["usage"]["completion_tokens_details"]["reasoning_tokens"],
            3
        );
    }

    #[test]
    fn finish_reasons_and_blocked_prompts() {
        assert_eq!(finish_reason("MAX_TOKENS", false), "length");
        assert_eq!(finish_reason("SAFETY", false), "content_filter");
        assert_eq!(finish_reason("STOP", false), "stop");
        let error = chat(json!({"promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 4}}))
        .unwrap_err();
        assert_eq!(error.kind, ErrorKind::ContentPolicy);
        assert!(to_chat(b"<html>", 0).is_err());
        assert_eq!(chat(json!({})).unwrap_err().kind, ErrorKind::UpstreamError);
    }
}
