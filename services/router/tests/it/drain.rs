//! Shutdown: `drain` returns only once every request the router took is
//! settled and recorded, the callers of which may be long gone.

use std::time::Duration;

use tollgate_mock_upstream::MockUpstreamArgs;
use tollgate_proto::Router;
use tonic::Request;

use crate::harness::{chat_request, gateway, upstream};

#[tokio::test]
async fn drain_waits_for_requests_whose_caller_left() {
    let gateway = gateway().await;
    let slow = upstream(MockUpstreamArgs {
        latency_ms: 400,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let account = gateway.account("slow", &slow, 0, None).await;
    let request = chat_request("answer me after shutdown started", false);

    let call = gateway.router.chat(Request::new(request.clone()));
    let outcome = tokio::time::timeout(Duration::from_millis(100), call).await;
    assert!(outcome.is_err(), "the caller leaves before the answer");
    // The request's work (which renews its lease while it waits).
    assert!(gateway.router.in_flight() >= 1);

    tokio::time::timeout(Duration::from_secs(5), gateway.router.drain())
        .await
        .expect("drain ends once the request is done");
    // No waiting: by the time drain returns, the work is done.
    let events = gateway.usage.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].request_id, request.request_id);
    assert_eq!(events[0].status, 200);
    let after = gateway.get_account(&account.id).await;
    assert_eq!(after.tokens_reserved, 0, "the lease is settled");
    assert!(after.tokens_used_today > 0);
    assert_eq!(gateway.router.in_flight(), 0);
}
