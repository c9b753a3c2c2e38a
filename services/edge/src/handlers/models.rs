//! `GET /v1/models`: the models this key may use, in OpenAI's list shape.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tollgate_core::GatewayError;
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
            let item = json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": entry.provider,
            });
            data.push((id, item));
        }
    }
    data.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "object": "list",
        "data": data.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, provider: &str) -> ModelEntry {
        ModelEntry {
            id: id.into(),
            provider: provider.into(),
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
                {"id": "mock-echo", "object": "model", "created": 0, "owned_by": "mock"},
                {"id": "openai/gpt-4o", "object": "model", "created": 0, "owned_by": "openai"},
            ])
        );
        assert_eq!(
            model_list(&[], &models)["data"].as_array().map(Vec::len),
            Some(3)
        );
    }
}
