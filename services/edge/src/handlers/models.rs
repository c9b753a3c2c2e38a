//! `GET /v1/models`: the models this key may use, in OpenAI's list shape,
//! with what the model catalog knows of each: `context_length`,
//! `max_output_tokens`, and `owned_by` (the model's provider; the serving
//! provider for a model the catalog does not know).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tollgate_core::GatewayError;
use tollgate_core::ModelRef;
use tollgate_core::catalog::{Catalog, ModelInfo};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{ListModelsRequest, ModelEntry};

use crate::error::{ApiError, json_response};
use crate::observe::Measure;
use crate::state::EdgeState;
use crate::{access, auth};

pub async fn list(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    let measure = Measure::start(Arc::clone(&state.metrics), "models");
    match serve(&state, &headers).await {
        Ok(body) => {
            measure.finish(None, 200);
            json_response(StatusCode::OK, &body)
        }
        Err(error) => {
            measure.finish(None, error.kind.http_status());
            ApiError(error).into_response()
        }
    }
}

async fn serve(state: &EdgeState, headers: &HeaderMap) -> Result<Value, GatewayError> {
    let key_hash = auth::credential(headers)?;
    let key = auth::resolve(state, &key_hash).await?;
    let models = state
        .quota
        .list_models(tonic::Request::new(ListModelsRequest {}))
        .await
        .map_err(|status| GatewayError::from_status(&status))?
        .into_inner()
        .models;
    Ok(model_list(&key.models, &models))
}

/// The OpenAI model list of `models` that `allow_list` permits, each name
/// once, in name order.
pub fn model_list(allow_list: &[String], models: &[ModelEntry]) -> Value {
    let mut seen = BTreeSet::new();
    let mut data: Vec<(String, Value)> = Vec::new();
    for entry in models {
        if let Some(id) = access::listed_name(allow_list, entry)
            && seen.insert(id.clone())
        {
            let known = catalogued(entry);
            let mut item = json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": known.map_or(entry.provider.as_str(), |model| model.provider.as_str()),
            });
            if let Some(model) = known {
                if let Some(window) = model.context_window {
                    item["context_length"] = Value::from(window);
                }
                if let Some(output) = model.max_output_tokens {
                    item["max_output_tokens"] = Value::from(output);
                }
            }
            data.push((id, item));
        }
    }
    data.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "object": "list",
        "data": data.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
    })
}

/// The catalog's entry for a listed model: by the model a route alias
/// sends upstream, else by the name (without a `provider/` prefix).
fn catalogued(entry: &ModelEntry) -> Option<&'static ModelInfo> {
    let name = if entry.upstream_model.is_empty() {
        ModelRef::parse(&entry.id).map_or_else(|| entry.id.clone(), |model| model.model)
    } else {
        entry.upstream_model.clone()
    };
    Catalog::builtin().find(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, provider: &str) -> ModelEntry {
        ModelEntry {
            id: id.into(),
            provider: provider.into(),
            ..ModelEntry::default()
        }
    }

    #[test]
    fn lists_allowed_models_once_in_openai_shape() {
        let models = [
            entry("mock-echo", "mock"),
            entry("gpt-4o", "openai"),
            entry("gpt-4o", "openai"),
            entry("claude", "anthropic"),
        ];
        let allow = vec!["mock-echo".to_owned(), "openai/gpt-4o".to_owned()];
        let list = model_list(&allow, &models);
        assert_eq!(list["object"], "list");
        assert_eq!(
            list["data"],
            json!([
                {"id": "mock-echo", "object": "model", "created": 0, "owned_by": "mock",
                 "context_length": 128_000, "max_output_tokens": 16_384},
                {"id": "openai/gpt-4o", "object": "model", "created": 0, "owned_by": "openai",
                 "context_length": 128_000, "max_output_tokens": 16_384},
            ])
        );
        assert_eq!(
            model_list(&[], &models)["data"].as_array().map(Vec::len),
            Some(3)
        );
    }

    #[test]
    fn catalog_fields_come_from_the_served_model_where_known() {
        let models = [
            ModelEntry {
                id: "smart".into(),
                provider: "mock".into(),
                upstream_model: "claude-sonnet-4-5-20250929".into(),
            },
            entry("gemini-2.5-pro", "openai_compatible"),
            entry("house-model", "ollama"),
        ];
        let list = model_list(&[], &models);
        assert_eq!(
            list["data"],
            json!([
                {"id": "gemini-2.5-pro", "object": "model", "created": 0, "owned_by": "gemini",
                 "context_length": 1_048_576, "max_output_tokens": 65_536},
                {"id": "house-model", "object": "model", "created": 0, "owned_by": "ollama"},
                {"id": "smart", "object": "model", "created": 0, "owned_by": "anthropic",
                 "context_length": 200_000, "max_output_tokens": 64_000},
            ])
        );
    }
}
