//! `GET /v1/models`: the models this key may use, with what the model
//! catalog knows of each. In OpenAI's list shape (`context_length`,
//! `max_output_tokens`, and `owned_by`: the model's provider, or the
//! serving provider for a model the catalog does not know); in
//! Anthropic's, paged, when the request carries `anthropic-version`
//! ([`anthropic_shape`]), with errors in Anthropic's shape too.
//! `GET /v1/models/{id}` answers one of them the same way.

mod anthropic_shape;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tollgate_core::ModelRef;
use tollgate_core::catalog::{Catalog, ModelInfo};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{KeyRecord, ListModelsRequest, ModelEntry};

pub use anthropic_shape::Page;

use crate::error::{AnthropicError, ApiError, json_response};
use crate::observe::Measure;
use crate::state::EdgeState;
use crate::{access, auth};

/// The header that marks a request from an Anthropic client.
const ANTHROPIC_VERSION: &str = "anthropic-version";

pub async fn list(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    page: Result<Query<Page>, QueryRejection>,
) -> Response {
    let measure = Measure::start(Arc::clone(&state.metrics), "models");
    let anthropic = headers.contains_key(ANTHROPIC_VERSION);
    let answer = async {
        let listed = serve(&state, &headers).await?;
        if !anthropic {
            return Ok(model_list(&listed));
        }
        let Query(page) = page.map_err(|rejection| {
            GatewayError::new(ErrorKind::InvalidRequest, rejection.body_text())
        })?;
        anthropic_shape::model_list(&listed, &page)
    };
    respond(measure, anthropic, answer.await)
}

/// `GET /v1/models/{id}`: one model this key may use, in the list's shape.
pub async fn retrieve(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let measure = Measure::start(Arc::clone(&state.metrics), "models");
    let anthropic = headers.contains_key(ANTHROPIC_VERSION);
    let answer = async {
        let listed = serve(&state, &headers).await?;
        let model = listed.iter().find(|model| model.id == id).ok_or_else(|| {
            let shown: String = id.chars().take(MAX_ECHOED_ID).collect();
            GatewayError::new(
                ErrorKind::ModelNotFound,
                format!("model `{shown}` does not exist or this key may not use it"),
            )
        })?;
        Ok(if anthropic {
            anthropic_shape::model(model)
        } else {
            openai_model(model)
        })
    };
    respond(measure, anthropic, answer.await)
}

/// Longest part of a model name echoed back in an error message.
const MAX_ECHOED_ID: usize = 200;

/// The answer, or the error in the client's API's shape.
fn respond(measure: Measure, anthropic: bool, answer: Result<Value, GatewayError>) -> Response {
    match answer {
        Ok(body) => {
            measure.finish(None, 200);
            json_response(StatusCode::OK, &body)
        }
        Err(error) => {
            measure.finish(None, error.kind.http_status());
            if anthropic {
                AnthropicError(error).into_response()
            } else {
                ApiError(error).into_response()
            }
        }
    }
}

async fn serve(state: &EdgeState, headers: &HeaderMap) -> Result<Vec<Listed>, GatewayError> {
    let key_hash = auth::credential(headers)?;
    let key = auth::resolve(state, &key_hash).await?;
    visible(state, &key).await
}

/// The models `key` may use.
pub async fn visible(state: &EdgeState, key: &KeyRecord) -> Result<Vec<Listed>, GatewayError> {
    let models = state
        .quota
        .list_models(tonic::Request::new(ListModelsRequest {}))
        .await
        .map_err(|status| GatewayError::from_status(&status))?
        .into_inner()
        .models;
    Ok(listed(&key.models, &models))
}

/// One model a key may use.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The name a client asks for.
    pub id: String,
    /// The model's provider, or the serving provider's where the catalog
    /// does not know the model.
    pub owner: String,
    /// What the catalog knows of it.
    pub info: Option<&'static ModelInfo>,
}

/// The models of `models` that `allow_list` permits, each name once, in
/// name order.
pub fn listed(allow_list: &[String], models: &[ModelEntry]) -> Vec<Listed> {
    let mut seen = BTreeSet::new();
    let mut listed: Vec<Listed> = Vec::new();
    for entry in models {
        if let Some(id) = access::listed_name(allow_list, entry)
            && seen.insert(id.clone())
        {
            let info = catalogued(entry);
            let owner = info.map_or(entry.provider.as_str(), |model| model.provider.as_str());
            listed.push(Listed {
                owner: owner.to_owned(),
                id,
                info,
            });
        }
    }
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    listed
}

/// The OpenAI model list of `listed`.
pub fn model_list(listed: &[Listed]) -> Value {
    let data = listed.iter().map(openai_model).collect::<Vec<_>>();
    json!({"object": "list", "data": data})
}

/// One model in OpenAI's shape.
fn openai_model(model: &Listed) -> Value {
    let mut item = json!({
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": model.owner,
    });
    if let Some(info) = model.info {
        if let Some(window) = info.context_window {
            item["context_length"] = Value::from(window);
        }
        if let Some(output) = info.max_output_tokens {
            item["max_output_tokens"] = Value::from(output);
        }
    }
    item
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
        let list = model_list(&listed(&allow, &models));
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
            model_list(&listed(&[], &models))["data"]
                .as_array()
                .map(Vec::len),
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
        let list = model_list(&listed(&[], &models));
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
