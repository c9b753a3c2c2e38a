//! The Messages options that ask how to answer rather than what: thinking
//! and effort (Chat's `reasoning_effort`), a structured output format
//! (Chat's `response_format`) and context editing (checked, never sent).
//!
//! - `thinking` `enabled` → the effort nearest its budget; `adaptive` →
//!   `output_config.effort` (Anthropic's default, `high`, when absent;
//!   `xhigh` and `max` become `high`, Chat's strongest); `disabled` →
//!   nothing. Without thinking, `output_config.effort` asks nothing Chat
//!   can carry (its `reasoning_effort` only steers reasoning), so it is
//!   accepted and left out.
//! - `output_config.format` (`json_schema`) → a `json_schema` response
//!   format.
//! - `context_management` edits that clear thinking ask nothing here:
//!   thinking blocks never reach another provider. Any other edit (such as
//!   clearing old tool results) cannot be done and is refused by name.

use serde_json::{Map, Value, json};
use tollgate_core::GatewayError;

/// Writes into `chat` the Chat fields that `request`'s `thinking`,
/// `output_config` and `context_management` ask for.
pub(super) fn apply(
    request: &Map<String, Value>,
    chat: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    check_context_management(request.get("context_management"))?;
    let output = output_config(request.get("output_config"))?;
    if let Some(effort) = reasoning_effort(request.get("thinking"), output.effort)? {
        chat.insert("reasoning_effort".to_owned(), json!(effort));
    }
    if let Some(format) = output.format {
        chat.insert("response_format".to_owned(), format);
    }
    Ok(())
}

/// What `output_config` asks for.
#[derive(Debug, Default)]
struct OutputConfig {
    effort: Option<&'static str>,
    format: Option<Value>,
}

fn output_config(config: Option<&Value>) -> Result<OutputConfig, GatewayError> {
    let Some(config) = config.filter(|config| !config.is_null()) else {
        return Ok(OutputConfig::default());
    };
    let fields = config.as_object().ok_or_else(|| {
        GatewayError::invalid("output_config", "`output_config` must be an object")
    })?;
    let mut output = OutputConfig::default();
    for (name, value) in fields {
        match name.as_str() {
            "effort" => output.effort = effort_of(value)?,
            "format" => output.format = format_of(value)?,
            other => {
                return Err(GatewayError::invalid(
                    format!("output_config.{other}"),
                    format!("`output_config.{other}` cannot be carried to this account's provider"),
                ));
            }
        }
    }
    Ok(output)
}

/// An effort level as Chat's `reasoning_effort`.
fn effort_of(value: &Value) -> Result<Option<&'static str>, GatewayError> {
    match value {
        Value::Null => Ok(None),
        Value::String(effort) => match effort.as_str() {
            "low" => Ok(Some("low")),
            "medium" => Ok(Some("medium")),
            "high" | "xhigh" | "max" => Ok(Some("high")),
            other => Err(GatewayError::invalid(
                "output_config.effort",
                format!("unknown effort `{other}`"),
            )),
        },
        _ => Err(GatewayError::invalid(
            "output_config.effort",
            "`output_config.effort` must be a string",
        )),
    }
}

/// A `json_schema` output format as a Chat response format.
fn format_of(value: &Value) -> Result<Option<Value>, GatewayError> {
    if value.is_null() {
        return Ok(None);
    }
    match (value["type"].as_str(), value.get("schema")) {
        (Some("json_schema"), Some(schema)) => Ok(Some(json!({
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }))),
        _ => Err(GatewayError::invalid(
            "output_config.format",
            "an output format is `json_schema` with a `schema`",
        )),
    }
}

/// The reasoning effort `thinking` asks for, with `effort` from
/// `output_config`.
fn reasoning_effort(
    thinking: Option<&Value>,
    effort: Option<&'static str>,
) -> Result<Option<&'static str>, GatewayError> {
    let Some(thinking) = thinking.filter(|thinking| !thinking.is_null()) else {
        return Ok(None);
    };
    match thinking["type"].as_str() {
        Some("enabled") => {
            Ok(Some(effort.unwrap_or_else(
                || match thinking["budget_tokens"].as_u64().unwrap_or(0) {
                    0..=2_048 => "low",
                    2_049..=8_192 => "medium",
                    _ => "high",
                },
            )))
        }
        Some("adaptive") => Ok(Some(effort.unwrap_or("high"))),
        Some("disabled") => Ok(None),
        _ => Err(GatewayError::invalid(
            "thinking.type",
            "`thinking.type` is `enabled`, `adaptive` or `disabled`",
        )),
    }
}

/// Refuses the context edits another provider cannot make.
fn check_context_management(management: Option<&Value>) -> Result<(), GatewayError> {
    let Some(management) = management.filter(|management| !management.is_null()) else {
        return Ok(());
    };
    let edits = match management.get("edits") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(edits)) => edits,
        Some(_) => {
            return Err(GatewayError::invalid(
                "context_management.edits",
                "`context_management.edits` must be a list",
            ));
        }
    };
    for (index, edit) in edits.iter().enumerate() {
        let clears_thinking = edit["type"]
            .as_str()
            .is_some_and(|kind| kind.starts_with("clear_thinking_"));
        if !clears_thinking {
            return Err(GatewayError::invalid(
                format!("context_management.edits[{index}].type"),
                "only thinking can be cleared from the context on this account's provider",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(request: Value) -> Result<Value, GatewayError> {
        let request: Map<String, Value> = serde_json::from_value(request).unwrap();
        let mut chat = Map::new();
        apply(&request, &mut chat)?;
        Ok(Value::Object(chat))
    }

    #[test]
    fn adaptive_thinking_takes_its_effort_from_output_config() {
        let chat = applied(json!({
            "thinking": {"type": "adaptive", "display": "omitted"},
            "output_config": {"effort": "medium"},
        }))
        .unwrap();
        assert_eq!(chat, json!({"reasoning_effort": "medium"}));
        let chat = applied(json!({"thinking": {"type": "adaptive"}})).unwrap();
        assert_eq!(chat["reasoning_effort"], "high");
        let chat =
            applied(json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}))
                .unwrap();
        assert_eq!(chat["reasoning_effort"], "high");
    }

    #[test]
    fn a_thinking_budget_becomes_the_nearest_effort() {
        for (budget, effort) in [(1_024, "low"), (4_096, "medium"), (10_000, "high")] {
            let chat =
                applied(json!({"thinking": {"type": "enabled", "budget_tokens": budget}})).unwrap();
            assert_eq!(chat["reasoning_effort"], effort, "budget {budget}");
        }
    }

    #[test]
    fn effort_without_thinking_asks_nothing() {
        for thinking in [json!(null), json!({"type": "disabled"})] {
            let chat =
                applied(json!({"thinking": thinking, "output_config": {"effort": "low"}})).unwrap();
            assert_eq!(chat, json!({}));
        }
    }

    #[test]
    fn a_json_schema_format_becomes_a_response_format() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let chat = applied(
            json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        )
        .unwrap();
        assert_eq!(
            chat["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
        );
    }

    #[test]
    fn clearing_thinking_is_accepted_and_other_edits_refused_by_name() {
        let thinking = json!({"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}});
        assert_eq!(applied(thinking).unwrap(), json!({}));
        let tools = json!({"context_management": {"edits": [
            {"type": "clear_thinking_20251015"},
            {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 30_000}},
        ]}});
        assert_eq!(
            applied(tools).unwrap_err().param.as_deref(),
            Some("context_management.edits[1].type")
        );
    }

    #[test]
    fn unknown_options_are_refused_by_name() {
        let cases = [
            (json!({"thinking": {"type": "sometimes"}}), "thinking.type"),
            (
                json!({"output_config": {"effort": "extreme"}}),
                "output_config.effort",
            ),
            (
                json!({"output_config": {"verbosity": "low"}}),
                "output_config.verbosity",
            ),
            (
                json!({"output_config": {"format": {"type": "xml"}}}),
                "output_config.format",
            ),
        ];
        for (request, param) in cases {
            assert_eq!(applied(request).unwrap_err().param.as_deref(), Some(param));
        }
    }
}
