//! Random Chat Completions requests for property tests of translations:
//! the shapes every target format carries (system text, user text and
//! image parts, tool calls answered by tool messages, function tools,
//! `tool_choice`, cap, temperature, stop), plus what only some carry, by
//! [`Carried`]. Tool call ids are `call_<position>_<n>`, the assistant
//! message's position in the conversation and the call's place in it.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// What a target format carries beyond the common shapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carried {
    /// `cache_control` on parts.
    pub cache_control: bool,
    /// `user`.
    pub user: bool,
    /// `parallel_tool_calls: false`.
    pub serial_tools: bool,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.?]{1,24}".prop_filter("not blank", |text| !text.trim().is_empty())
}

fn image_part() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[A-Za-z0-9+/]{4,16}".prop_map(|data| json!({"type": "image_url",
            "image_url": {"url": format!("data:image/png;base64,{data}")}})),
        "[a-z]{1,8}".prop_map(|name| json!({"type": "image_url",
            "image_url": {"url": format!("https://example.com/{name}.jpg")}})),
    ]
}

fn text_part(carried: Carried) -> impl Strategy<Value = Value> {
    (text(), any::<bool>()).prop_map(move |(text, cached)| {
        let mut part = json!({"type": "text", "text": text});
        if cached && carried.cache_control {
            part["cache_control"] = json!({"type": "ephemeral"});
        }
        part
    })
}

/// User content: a string, or two or more parts.
fn user_content(carried: Carried) -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::String),
        prop::collection::vec(prop_oneof![text_part(carried), image_part()], 2..4)
            .prop_map(Value::Array),
    ]
}

fn arguments() -> impl Strategy<Value = String> {
    prop::collection::btree_map(
        "[a-z]{1,6}",
        prop_oneof![
            text().prop_map(Value::String),
            (0u32..1000).prop_map(|n| json!(n)),
            any::<bool>().prop_map(Value::Bool),
        ],
        0..3,
    )
    .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>()).to_string())
}

/// One exchange: a user turn, then an assistant answer that is text, or
/// tool calls (maybe with text) followed by one tool message for each.
fn exchange(tools: Vec<String>, carried: Carried) -> impl Strategy<Value = Vec<Value>> {
    let calls = if tools.is_empty() {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::vec((prop::sample::select(tools), arguments(), text()), 0..3).boxed()
    };
    (user_content(carried), prop::option::of(text()), calls).prop_map(|(user, answer, calls)| {
        let mut messages = vec![json!({"role": "user", "content": user})];
        if calls.is_empty() {
            messages.push(json!({"role": "assistant", "content": answer.unwrap_or_else(|| "ok".to_owned())}));
            return messages;
        }
        let ids: Vec<String> = (0..calls.len()).map(|index| format!("call_{}_{index}", messages.len())).collect();
        let tool_calls: Vec<Value> = calls
            .iter()
            .zip(&ids)
            .map(|((name, arguments, _), id)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
            })
            .collect();
        messages.push(json!({"role": "assistant", "content": answer, "tool_calls": tool_calls}));
        for ((_, _, result), id) in calls.iter().zip(&ids) {
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": result}));
        }
        messages
    })
}

/// Gives each tool call the id `call_<position>_<n>` and each tool message
/// the id of the call it answers (they follow their calls in order).
fn number_tool_calls(messages: &mut [Value]) {
    let mut answering: Vec<String> = Vec::new();
    for (position, message) in messages.iter_mut().enumerate() {
        if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
            answering = (0..calls.len())
                .map(|n| format!("call_{position}_{n}"))
                .collect();
            for (call, id) in calls.iter_mut().zip(&answering) {
                call["id"] = json!(id);
            }
            answering.reverse();
        } else if message["role"] == "tool" {
            message["tool_call_id"] = json!(answering.pop());
        }
    }
}

/// A request `model: alias` of the shapes `carried` allows.
pub(crate) fn chat_request(carried: Carried) -> impl Strategy<Value = Value> {
    let tool_names = prop::collection::btree_set("[a-z]{3,8}", 0..3)
        .prop_map(|names| names.into_iter().collect::<Vec<_>>());
    tool_names.prop_flat_map(move |tools| {
        let choice = if tools.is_empty() {
            Just(None).boxed()
        } else {
            prop_oneof![
                Just(None),
                Just(Some(json!("auto"))),
                Just(Some(json!("required"))),
                Just(Some(json!("none"))),
                prop::sample::select(tools.clone())
                    .prop_map(|name| Some(json!({"type": "function", "function": {"name": name}}))),
            ]
            .boxed()
        };
        (
            Just(tools.clone()),
            prop::option::of(text()),
            prop::collection::vec(exchange(tools, carried), 1..4),
            1u32..100_000,
            prop::option::of((0u32..=10).prop_map(|tenths| f64::from(tenths) / 10.0)),
            prop::option::of(prop::collection::vec(text(), 1..3)),
            prop::option::of(text()),
            choice,
            any::<bool>(),
        )
    })
    .prop_map(move |(tools, system, exchanges, max_tokens, temperature, stop, user, choice, serial)| {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(exchanges.into_iter().flatten());
        number_tool_calls(&mut messages);
        let mut request = json!({"model": "alias", "messages": messages, "max_tokens": max_tokens});
        if let Some(temperature) = temperature {
            request["temperature"] = json!(temperature);
        }
        if let Some(stop) = stop {
            request["stop"] = json!(stop);
        }
        if let Some(user) = user.filter(|_| carried.user) {
            request["user"] = json!(user);
        }
        if !tools.is_empty() {
            request["tools"] = Value::Array(
                tools
                    .iter()
                    .map(|name| json!({"type": "function", "function": {"name": name, "description": format!("{name} tool"),
                        "parameters": {"type": "object", "properties": {}}}}))
                    .collect(),
            );
        }
        let choice_allows_serial = choice.as_ref().is_some_and(|choice| choice != "none");
        if let Some(choice) = choice {
            request["tool_choice"] = choice;
        }
        if serial && choice_allows_serial && carried.serial_tools {
            request["parallel_tool_calls"] = json!(false);
        }
        request
    })
}
