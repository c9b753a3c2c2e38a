//! The audit log and the master-key reseal:
//!
//! - `GET /admin/v1/audit?limit=N`: the newest admin writes (default 100,
//!   at most 1,000), newest first; summaries never hold secrets.
//! - `POST /admin/v1/master-key/reseal`: after every quota process runs with
//!   a new `TOLLGATE_MASTER_KEY` and the old one in
//!   `TOLLGATE_MASTER_KEY_PREVIOUS`, seals every account secret again under
//!   the new key and reports what it did.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::GatewayError;
use tollgate_proto::v1::{AuditEntry, AuditQuery, ResealReport, ResealRequest};

use super::Actor;
use crate::error::{ApiError, json_response};
use crate::rfc3339;
use crate::state::EdgeState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<EdgeState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|rejection| GatewayError::invalid("limit", rejection.body_text()))?;
    let entries = state
        .quota
        .list_audit(tonic::Request::new(AuditQuery {
            limit: params.limit.unwrap_or(0),
        }))
        .await?
        .into_inner()
        .entries;
    let data: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "data": data })))
}

fn entry_json(entry: &AuditEntry) -> Value {
    json!({
        "id": entry.id,
        "at": rfc3339::format_secs(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "object": entry.object_kind,
        "object_id": entry.object_id,
        "summary": serde_json::from_str::<Value>(&entry.summary_json).unwrap_or(Value::Null),
    })
}

pub async fn reseal(State(state): State<EdgeState>, actor: Actor) -> Result<Response, ApiError> {
    let report = state
        .quota
        .reseal_secrets(actor.request(ResealRequest {}))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, &reseal_json(&report)))
}

pub fn reseal_json(report: &ResealReport) -> Value {
    json!({
        "key_id": report.key_id,
        "resealed": report.resealed,
        "already_current": report.current,
        "unreadable_account_ids": report.unreadable_account_ids,
    })
}
