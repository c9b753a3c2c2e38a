//! A Chat Completions request as adapters for other formats read it.
//!
//! Every field a translation carries has its own place here; the rest land
//! in `other`, where [`ChatRequest::uncarried_field`] finds one a target
//! cannot carry, so that they are refused by name rather than dropped.

use serde::Deserialize;
use serde_json::{Map, Value};
use tollgate_core::{ErrorKind, GatewayError};

/// Fields the call itself settles, whatever the target: the upstream model
/// replaces `model`, the call decides `stream`, and the gateway always
/// reads usage, so `stream_options` asks nothing more.
const CALL_FIELDS: &[&str] = &["model", "stream", "stream_options"];

/// OpenAI-only fields that ask nothing of the answer: stored-completion
/// tags and the processing tier. Dropped on purpose when translating.
const NO_OP_FIELDS: &[&str] = &["store", "metadata", "service_tier"];

/// Message fields dropped on purpose when translating: a participant's
/// `name`, and an earlier answer's `refusal` and `reasoning_content`
/// echoed back in the history.
const NO_OP_MESSAGE_FIELDS: &[&str] = &["name", "refusal", "reasoning_content"];

#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ChatRequest {
    /// Reads a request body; one that does not parse is the client's 400.
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        serde_json::from_slice(body).map_err(|error| {
            GatewayError::new(
                ErrorKind::InvalidRequest,
                format!("the request is not a valid chat completion request: {error}"),
            )
        })
    }

    /// The completion cap the client set, in either field.
    pub fn completion_cap(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The first field, of the request or of a message, among those
    /// without a place of their own, that asks for something: not a call
    /// field, not a deliberate no-op, and set to more than null, `false` or
    /// zero (`logprobs: false` and `presence_penalty: 0` ask for nothing).
    pub fn uncarried_field(&self) -> Option<String> {
        let request_field = first_asking(&self.other, &[CALL_FIELDS, NO_OP_FIELDS]);
        request_field.map(str::to_owned).or_else(|| {
            self.messages
                .iter()
                .enumerate()
                .find_map(|(index, message)| {
                    first_asking(&message.other, &[NO_OP_MESSAGE_FIELDS])
                        .map(|field| format!("messages[{index}].{field}"))
                })
        })
    }
}

/// The first field of `fields` outside `skipped` that asks for something.
fn first_asking<'a>(fields: &'a Map<String, Value>, skipped: &[&[&str]]) -> Option<&'a str> {
    fields
        .iter()
        .filter(|(name, _)| !skipped.iter().any(|list| list.contains(&name.as_str())))
        .find(|(_, value)| asks_something(value))
        .map(|(name, _)| name.as_str())
}

/// Whether a value asks for something: not null, `false` or zero.
fn asks_something(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Number(number) => number.as_f64() != Some(0.0),
        _ => true,
    }
}

/// The 400 for a field the chosen provider has no way to carry.
pub(crate) fn uncarried(field: &str, provider: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        format!("`{field}` cannot be carried to a {provider} account"),
    )
    .with_param(field.to_owned())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tool_calls: Option<Vec<super::ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// `name`, `refusal` and anything newer.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A message's content: plain text or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

/// One content part. Kept loose (the type as a string) so an unknown part
/// type is refused by name.
#[derive(Debug, Deserialize)]
pub(crate) struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub image_url: Option<ImageUrl>,
    /// Anthropic's prompt-caching mark, which some clients put on Chat
    /// parts for Anthropic upstreams.
    #[serde(default)]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ImageUrl {
    /// `detail` is not read: no other provider has the setting.
    pub url: String,
}

/// Where an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageSource<'a> {
    /// A base64 data URL's type and data.
    Inline { media_type: &'a str, data: &'a str },
    /// An `http(s)` URL.
    Web(&'a str),
}

impl ImageUrl {
    /// The image's source; a URL that is neither a base64 data URL nor an
    /// `http(s)` URL is the client's 400, naming `at`.
    pub fn source(&self, at: &str) -> Result<ImageSource<'_>, GatewayError> {
        let url = self.url.as_str();
        if let Some(data_url) = url.strip_prefix("data:") {
            return data_url
                .split_once(";base64,")
                .map(|(media_type, data)| ImageSource::Inline { media_type, data })
                .ok_or_else(|| {
                    GatewayError::invalid(
                        at,
                        "an image data URL must be base64 (`data:<type>;base64,…`)",
                    )
                });
        }
        if url.starts_with("https://") || url.starts_with("http://") {
            return Ok(ImageSource::Web(url));
        }
        Err(GatewayError::invalid(
            at,
            "an image URL must be an http(s) URL or a base64 data URL",
        ))
    }
}

/// `stop`: one sequence or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(one) => vec![one],
            Stop::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub function: Option<FunctionDefinition>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `tool_choice`: a mode (`none`, `auto`, `required`) or one function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ToolChoice {
    Mode(String),
    Function { function: NamedFunction },
}

#[derive(Debug, Deserialize)]
pub(crate) struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub json_schema: Option<JsonSchema>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct JsonSchema {
    #[serde(default)]
    pub schema: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_without_a_place_are_found_unless_they_ask_nothing() {
        let parse = |value: Value| ChatRequest::parse(value.to_string().as_bytes()).unwrap();
        let quiet = parse(json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "store": true, "metadata": {"a": "b"}, "logprobs": false,
            "presence_penalty": 0, "seed": null, "messages": []
        }));
        assert_eq!(quiet.uncarried_field(), None);
        let loud = parse(json!({"messages": [], "logprobs": true}));
        assert_eq!(loud.uncarried_field().as_deref(), Some("logprobs"));
        let loud = parse(json!({"messages": [], "frequency_penalty": 0.5}));
        assert_eq!(loud.uncarried_field().as_deref(), Some("frequency_penalty"));
        let loud = parse(json!({"messages": [
            {"role": "user", "content": "a", "name": "ann"},
            {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]}));
        assert_eq!(
            loud.uncarried_field().as_deref(),
            Some("messages[1].function_call")
        );
    }

    #[test]
    fn reads_content_stop_and_tool_choice_variants() {
        let request = ChatRequest::parse(
            json!({
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "user", "content": [{"type": "text", "text": "a"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]}
                ],
                "stop": "END",
                "tool_choice": {"type": "function", "function": {"name": "f"}}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            request.messages[0].content,
            Some(Content::Text(_))
        ));
        assert!(
            matches!(&request.messages[1].content, Some(Content::Parts(parts)) if parts.len() == 2)
        );
        assert_eq!(request.stop.unwrap().into_vec(), vec!["END"]);
        assert!(matches!(
            request.tool_choice,
            Some(ToolChoice::Function { .. })
        ));
        let error = ChatRequest::parse(br#"{"messages": 5}"#).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
    }
}
