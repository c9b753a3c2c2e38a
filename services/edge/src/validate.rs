//! Validation of an OpenAI Chat Completions request before it is routed.
//!
//! Only what the gateway relies on, or what every upstream would refuse
//! anyway, is checked; every other field passes through untouched. Each
//! failure names the offending field in `param` (`messages[1].role`).

use serde_json::{Map, Value};
use tollgate_core::{GatewayError, ModelRef};

/// Roles a chat message may have.
pub const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Longest model name accepted.
const MAX_MODEL_LEN: usize = 256;
/// Largest `n` accepted.
const MAX_CHOICES: u64 = 128;

/// What the edge needs from a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatParams {
    /// The model exactly as the client named it.
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

/// A field's value, with JSON `null` read as absent (as OpenAI does).
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|value| !value.is_null())
}

/// Checks `body` and returns what routing needs.
pub fn chat_request(body: &Value) -> Result<ChatParams, GatewayError> {
    let Some(object) = body.as_object() else {
        return Err(GatewayError::new(
            tollgate_core::ErrorKind::InvalidRequest,
            "the request body must be a JSON object",
        ));
    };
    let model = model(object)?;
    messages(object)?;
    let stream = match field(object, "stream") {
        None => false,
        Some(value) => value
            .as_bool()
            .ok_or_else(|| GatewayError::invalid("stream", "`stream` must be a boolean"))?,
    };
    let include_usage = stream_options(object, stream)?;
    for name in ["max_tokens", "max_completion_tokens"] {
        if field(object, name).is_some_and(|value| value.as_u64().is_none_or(|cap| cap == 0)) {
            return Err(GatewayError::invalid(
                name,
                format!("`{name}` must be a positive integer"),
            ));
        }
    }
    let choices_ok = |value: &Value| {
        value
            .as_u64()
            .is_some_and(|n| (1..=MAX_CHOICES).contains(&n))
    };
    if field(object, "n").is_some_and(|value| !choices_ok(value)) {
        return Err(GatewayError::invalid(
            "n",
            format!("`n` must be an integer from 1 to {MAX_CHOICES}"),
        ));
    }
    number_in(object, "temperature", 0.0, 2.0)?;
    number_in(object, "top_p", 0.0, 1.0)?;
    Ok(ChatParams {
        model,
        stream,
        include_usage,
    })
}

fn model(object: &Map<String, Value>) -> Result<String, GatewayError> {
    let Some(value) = field(object, "model") else {
        return Err(GatewayError::invalid("model", "`model` is required"));
    };
    let Some(name) = value.as_str() else {
        return Err(GatewayError::invalid("model", "`model` must be a string"));
    };
    if name.len() > MAX_MODEL_LEN {
        return Err(GatewayError::invalid(
            "model",
            format!("`model` must be at most {MAX_MODEL_LEN} bytes"),
        ));
    }
    if ModelRef::parse(name).is_none() {
        return Err(GatewayError::invalid("model", "`model` must name a model"));
    }
    Ok(name.to_owned())
}

fn messages(object: &Map<String, Value>) -> Result<(), GatewayError> {
    let Some(value) = field(object, "messages") else {
        return Err(GatewayError::invalid("messages", "`messages` is required"));
    };
    let Some(list) = value.as_array() else {
        return Err(GatewayError::invalid(
            "messages",
            "`messages` must be an array",
        ));
    };
    if list.is_empty() {
        return Err(GatewayError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    list.iter()
        .enumerate()
        .try_for_each(|(index, message)| self::message(index, message))
}

fn message(index: usize, message: &Value) -> Result<(), GatewayError> {
    let at = format!("messages[{index}]");
    let Some(object) = message.as_object() else {
        return Err(GatewayError::invalid(
            &at,
            format!("`{at}` must be an object"),
        ));
    };
    let role_param = format!("{at}.role");
    let role = match field(object, "role") {
        None => {
            return Err(GatewayError::invalid(
                &role_param,
                format!("`{role_param}` is required"),
            ));
        }
        Some(role) => role
            .as_str()
            .filter(|role| ROLES.contains(role))
            .ok_or_else(|| {
                GatewayError::invalid(
                    &role_param,
                    format!("`{role_param}` must be one of {}", ROLES.join(", ")),
                )
            })?,
    };
    let content_param = format!("{at}.content");
    let content_required = matches!(role, "system" | "developer" | "user" | "tool");
    match field(object, "content") {
        None if content_required => {
            return Err(GatewayError::invalid(
                &content_param,
                format!("`{content_param}` is required for role `{role}`"),
            ));
        }
        None => {}
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) if role != "function" => content_parts(&content_param, parts)?,
        Some(_) => {
            let allowed = if role == "function" {
                "a string or null"
            } else if content_required {
                "a string or an array of content parts"
            } else {
                "a string, an array of content parts, or null"
            };
            return Err(GatewayError::invalid(
                &content_param,
                format!("`{content_param}` must be {allowed}"),
            ));
        }
    }
    let required_name = match role {
        "tool" => Some("tool_call_id"),
        "function" => Some("name"),
        _ => None,
    };
    if let Some(name) = required_name
        && field(object, name).and_then(Value::as_str).is_none()
    {
        let param = format!("{at}.{name}");
        return Err(GatewayError::invalid(
            &param,
            format!("`{param}` is required (a string) for role `{role}`"),
        ));
    }
    Ok(())
}

fn content_parts(param: &str, parts: &[Value]) -> Result<(), GatewayError> {
    if parts.is_empty() {
        return Err(GatewayError::invalid(
            param,
            format!("`{param}` must not be an empty array"),
        ));
    }
    for (index, part) in parts.iter().enumerate() {
        let has_type = part
            .as_object()
            .and_then(|object| field(object, "type"))
            .is_some_and(Value::is_string);
        if !has_type {
            let part_param = format!("{param}[{index}].type");
            return Err(GatewayError::invalid(
                &part_param,
                format!("`{param}[{index}]` must be an object with a string `type`"),
            ));
        }
    }
    Ok(())
}

fn stream_options(object: &Map<String, Value>, stream: bool) -> Result<bool, GatewayError> {
    let Some(value) = field(object, "stream_options") else {
        return Ok(false);
    };
    let Some(options) = value.as_object() else {
        return Err(GatewayError::invalid(
            "stream_options",
            "`stream_options` must be an object",
        ));
    };
    if !stream {
        return Err(GatewayError::invalid(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    match field(options, "include_usage") {
        None => Ok(false),
        Some(flag) => flag.as_bool().ok_or_else(|| {
            GatewayError::invalid(
                "stream_options.include_usage",
                "`stream_options.include_usage` must be a boolean",
            )
        }),
    }
}

fn number_in(
    object: &Map<String, Value>,
    name: &str,
    min: f64,
    max: f64,
) -> Result<(), GatewayError> {
    match field(object, name) {
        None => Ok(()),
        Some(value) if value.as_f64().is_some_and(|x| (min..=max).contains(&x)) => Ok(()),
        Some(_) => Err(GatewayError::invalid(
            name,
            format!("`{name}` must be a number from {min} to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param_of(body: Value) -> String {
        let error = chat_request(&body).unwrap_err();
        assert_eq!(error.kind, tollgate_core::ErrorKind::InvalidRequest);
        error.param.unwrap_or_default()
    }

    fn base() -> Value {
        json!({"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = base();
        body[field] = value;
        body
    }

    #[test]
    fn accepts_a_minimal_and_a_rich_request() {
        let params = chat_request(&base()).unwrap();
        assert_eq!(params.model, "mock-echo");
        assert!(!params.stream && !params.include_usage);

        let rich = json!({
            "model": "openai/gpt-4o",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": []},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "function", "name": "f", "content": null}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 10, "max_completion_tokens": 10, "n": 128,
            "temperature": 2, "top_p": 0.5, "seed": 1, "user": "u", "stop": ["\n"],
            "response_format": {"type": "json_object"}, "tools": []
        });
        let params = chat_request(&rich).unwrap();
        assert_eq!(params.model, "openai/gpt-4o");
        assert!(params.stream && params.include_usage);
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        let mut body = base();
        for name in [
            "stream",
            "stream_options",
            "max_tokens",
            "n",
            "temperature",
            "top_p",
        ] {
            body[name] = Value::Null;
        }
        assert!(chat_request(&body).is_ok());
    }

    #[test]
    fn body_must_be_an_object() {
        let error = chat_request(&json!([1])).unwrap_err();
        assert_eq!(error.param, None);
    }

    #[test]
    fn model_is_a_required_non_empty_string() {
        let mut body = base();
        body.as_object_mut().unwrap().remove("model");
        assert_eq!(param_of(body), "model");
        assert_eq!(param_of(with("model", json!(5))), "model");
        assert_eq!(param_of(with("model", json!(" "))), "model");
        assert_eq!(param_of(with("model", json!("openai/"))), "model");
        assert_eq!(param_of(with("model", json!("m".repeat(300)))), "model");
    }

    #[test]
    fn messages_must_be_a_non_empty_array_of_objects() {
        let mut body = base();
        body.as_object_mut().unwrap().remove("messages");
        assert_eq!(param_of(body), "messages");
        assert_eq!(param_of(with("messages", json!({}))), "messages");
        assert_eq!(param_of(with("messages", json!([]))), "messages");
        assert_eq!(param_of(with("messages", json!(["hi"]))), "messages[0]");
    }

    #[test]
    fn roles_are_checked_by_position() {
        let messages = json!([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]);
        assert_eq!(param_of(with("messages", messages)), "messages[1].role");
        let messages = json!([{"content": "a"}]);
        assert_eq!(param_of(with("messages", messages)), "messages[0].role");
        let messages = json!([{"role": 1, "content": "a"}]);
        assert_eq!(param_of(with("messages", messages)), "messages[0].role");
    }

    #[test]
    fn content_rules_follow_the_role() {
        let cases = [
            (json!({"role": "user"}), "messages[0].content"),
            (
                json!({"role": "system", "content": null}),
                "messages[0].content",
            ),
            (json!({"role": "user", "content": 3}), "messages[0].content"),
            (
                json!({"role": "user", "content": []}),
                "messages[0].content",
            ),
            (
                json!({"role": "user", "content": [{"text": "x"}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"role": "user", "content": ["x"]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"role": "assistant", "content": {}}),
                "messages[0].content",
            ),
            (
                json!({"role": "tool", "content": "x"}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"role": "function", "content": "x"}),
                "messages[0].name",
            ),
            (
                json!({"role": "function", "name": "f", "content": []}),
                "messages[0].content",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(
                param_of(with("messages", json!([message]))),
                expected,
                "{message}"
            );
        }
        let assistant = json!([{"role": "assistant"}]);
        assert!(chat_request(&with("messages", assistant)).is_ok());
    }

    #[test]
    fn numeric_limits() {
        for (name, bad) in [
            ("max_tokens", json!(0)),
            ("max_tokens", json!(-1)),
            ("max_tokens", json!(1.5)),
            ("max_tokens", json!("10")),
            ("max_completion_tokens", json!(0)),
            ("n", json!(0)),
            ("n", json!(129)),
            ("temperature", json!(2.01)),
            ("temperature", json!(-0.1)),
            ("top_p", json!(1.1)),
            ("top_p", json!("1")),
        ] {
            assert_eq!(param_of(with(name, bad.clone())), name, "{name}={bad}");
        }
        assert!(chat_request(&with("temperature", json!(0))).is_ok());
        assert!(chat_request(&with("n", json!(1))).is_ok());
    }

    #[test]
    fn stream_flags() {
        assert_eq!(param_of(with("stream", json!("yes"))), "stream");
        let options = with("stream_options", json!({"include_usage": true}));
        assert_eq!(param_of(options), "stream_options");
        let mut body = with("stream", json!(true));
        body["stream_options"] = json!({"include_usage": "yes"});
        assert_eq!(param_of(body.clone()), "stream_options.include_usage");
        body["stream_options"] = json!([]);
        assert_eq!(param_of(body.clone()), "stream_options");
        body["stream_options"] = json!({});
        let params = chat_request(&body).unwrap();
        assert!(params.stream && !params.include_usage);
    }
}
