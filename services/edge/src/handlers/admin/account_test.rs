//! `POST /admin/v1/accounts/{id}/test`: a minimal real call with one
//! account's credential (a one-token chat completion on its first model, or
//! on the `model` the body names), through the router and a worker like any
//! request, but pinned to that account and charged to no client key. The
//! account's tokens are still counted (lease and settle) and the call gets
//! its usage event.
//!
//! The health probes (`crate::health_probes`) send the same call, marked
//! as a probe so the account's cooldown and circuit do not keep it out.
//!
//! A failed call is still a 200 with `ok: false`: the test ran, and its
//! answer is the upstream's failure (as a client would see it, so never the
//! credential). An unknown account is a 404.

use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tollgate_core::{GatewayError, clock, tokens};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{AccountRecord, ChatRequest, IdRequest};

use super::ObjectId;
use crate::error::{ApiError, json_response};
use crate::request_id::RequestId;
use crate::state::EdgeState;

/// The completion tokens the test asks for.
const TEST_MAX_TOKENS: u32 = 1;

/// The optional body: which of the account's models to call.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestParams {
    model: Option<String>,
}

pub async fn test(
    State(state): State<EdgeState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ObjectId(id): ObjectId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params: TestParams = super::read_optional_json(&state, &headers, body)
        .await?
        .unwrap_or_default();
    let account = state
        .quota
        .get_account(tonic::Request::new(IdRequest { id: id.clone() }))
        .await?
        .into_inner();
    let model = test_model(&account, params.model)?;
    let request = chat_request(&account, &model, request_id, false);
    let started = Instant::now();
    let outcome = state.router.chat(tonic::Request::new(request)).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let result = match outcome {
        Ok(reply) => {
            let reply = reply.into_inner();
            let served_model = reply
                .served_by
                .map(|served| served.upstream_model)
                .filter(|upstream_model| !upstream_model.is_empty())
                .unwrap_or(model);
            json!({
                "ok": true,
                "status": 200,
                "latency_ms": latency_ms,
                "model": served_model,
            })
        }
        Err(status) => {
            let error = GatewayError::from_status(&status);
            json!({
                "ok": false,
                "status": error.kind.http_status(),
                "latency_ms": latency_ms,
                "model": model,
                "error": error.openai_body()["error"],
            })
        }
    };
    Ok(json_response(StatusCode::OK, &result))
}

/// The model to call: the one asked for, else the account's first.
fn test_model(account: &AccountRecord, asked: Option<String>) -> Result<String, GatewayError> {
    match asked.map(|model| model.trim().to_owned()) {
        Some(model) if !model.is_empty() => Ok(model),
        Some(_) => Err(GatewayError::invalid("model", "model must not be empty")),
        None => account.models.first().cloned().ok_or_else(|| {
            GatewayError::invalid(
                "model",
                "this account lists no models; name one to call with `model`",
            )
        }),
    }
}

/// A one-token completion for `account`, named with its provider so the
/// model resolves to that provider whatever else is configured; a
/// `health_probe` passes the account's cooldown and circuit.
pub(crate) fn chat_request(
    account: &AccountRecord,
    model: &str,
    request_id: String,
    health_probe: bool,
) -> ChatRequest {
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Reply with OK."}],
        "max_tokens": TEST_MAX_TOKENS,
    });
    ChatRequest {
        request_id,
        key_id: String::new(),
        profile: account.profile.clone(),
        model: format!("{}/{model}", account.provider),
        prompt_tokens: tokens::estimate_chat_prompt(&body),
        max_completion_tokens: Some(TEST_MAX_TOKENS),
        choices: 1,
        worst_prompt_tokens: tokens::worst_case_chat_prompt(&body, body.to_string().len()),
        body: body.to_string().into_bytes().into(),
        stream: false,
        include_usage: false,
        received_at_ms: clock::now_ms(),
        account_id: account.id.clone(),
        health_probe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn account(models: &[&str]) -> AccountRecord {
        AccountRecord {
            id: "acct_1".into(),
            provider: "openai_compatible".into(),
            profile: "team-a".into(),
            models: models.iter().map(|model| (*model).to_owned()).collect(),
            ..AccountRecord::default()
        }
    }

    #[test]
    fn the_test_calls_the_first_model_unless_told_otherwise() {
        assert_eq!(test_model(&account(&["a", "b"]), None).unwrap(), "a");
        assert_eq!(
            test_model(&account(&["a", "b"]), Some(" b ".into())).unwrap(),
            "b"
        );
        let error = test_model(&account(&[]), None).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("model"));
        assert!(test_model(&account(&["a"]), Some(" ".into())).is_err());
    }

    #[test]
    fn the_request_is_pinned_to_the_account_and_charges_no_key() {
        let request = chat_request(&account(&["m"]), "m", "req_1".into(), false);
        assert_eq!(request.account_id, "acct_1");
        assert!(request.key_id.is_empty());
        assert_eq!(request.profile, "team-a");
        assert_eq!(request.model, "openai_compatible/m");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["max_tokens"], 1);
        assert_eq!(body["model"], "m");
    }
}
