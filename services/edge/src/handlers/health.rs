//! `GET /healthz` (the process answers) and `GET /readyz` (the process is
//! not shutting down, and the services the edge depends on answer their
//! pings in time).

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::v1::PingRequest;

use crate::error::json_response;
use crate::state::EdgeState;

pub async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `ok`, `timeout` or `unreachable`.
async fn check<F, T>(limit: Duration, ping: F) -> &'static str
where
    F: Future<Output = Result<T, tonic::Status>>,
{
    match tokio::time::timeout(limit, ping).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(_)) => "unreachable",
        Err(_) => "timeout",
    }
}

pub async fn readyz(State(state): State<EdgeState>) -> Response {
    if state.is_shutting_down() {
        return shutting_down();
    }
    let limit = state.settings.readiness_timeout;
    let ping = || tonic::Request::new(PingRequest {});
    let (router, quota, analytics) = tokio::join!(
        check(limit, state.router.ping(ping())),
        check(limit, state.quota.ping(ping())),
        check(limit, state.analytics.ping(ping())),
    );
    readiness([
        ("router", router),
        ("quota", quota),
        ("analytics", analytics),
    ])
}

/// 503 in the OpenAI error shape, with `status` like every `/readyz` answer:
/// this process takes no new work, whatever its peers say.
fn shutting_down() -> Response {
    let error = GatewayError::new(
        ErrorKind::Unavailable,
        "Tollgate is shutting down: requests in flight are finishing, send new ones elsewhere",
    );
    let mut body = error.openai_body();
    body["status"] = json!("shutting_down");
    json_response(StatusCode::SERVICE_UNAVAILABLE, &body)
}

/// 200 when every check is `ok`, else 503 naming the failed ones.
fn readiness(checks: [(&str, &str); 3]) -> Response {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, result)| *result != "ok")
        .map(|(name, _)| *name)
        .collect();
    let details: Map<String, Value> = checks
        .iter()
        .map(|(name, result)| ((*name).to_owned(), Value::from(*result)))
        .collect();
    if failed.is_empty() {
        json_response(StatusCode::OK, &json!({"status": "ok", "checks": details}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "failed": failed, "checks": details}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let ok = readiness([("router", "ok"), ("quota", "ok"), ("analytics", "ok")]);
        assert_eq!(ok.status(), StatusCode::OK);
        let down = readiness([("router", "ok"), ("quota", "timeout"), ("analytics", "ok")]);
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn not_ready_once_shutting_down_while_still_alive() {
        use crate::state::send::{request, send};
        let state = crate::state::testing::services_down();
        state.begin_shutdown();
        let router = crate::public_router(state);
        let ready = send(router.clone(), request("GET", "/readyz", &[], "")).await;
        assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready.json["status"], "shutting_down");
        assert_eq!(ready.json["error"]["code"], "service_unavailable");
        assert_eq!(ready.json["error"]["type"], "api_error");
        assert!(ready.json["error"]["message"].is_string());
        let alive = send(router, request("GET", "/healthz", &[], "")).await;
        assert_eq!(alive.status, StatusCode::OK);
    }
}
