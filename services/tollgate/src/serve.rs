//! Serving: HTTP (axum) and gRPC (tonic) listeners tied to shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::server::TcpIncoming;

use tollgate_telemetry::Metrics;

use tollgate_shutdown::Shutdown;

/// Binds `address`, with a message naming what failed to bind.
pub async fn bind(what: &str, address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the {what}"))
}

/// Serves `router` until shutdown, draining open requests.
pub fn http(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    router: axum::Router,
    shutdown: &Shutdown,
) {
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.wait())
            .await
            .context("HTTP server failed")
    });
}

/// Serves a tonic router until shutdown.
pub fn grpc(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    routes: tonic::service::Routes,
    shutdown: &Shutdown,
) {
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        // Small request/response messages: without TCP_NODELAY on each
        // accepted socket, Nagle and delayed ACKs add tens of milliseconds.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown.wait())
            .await
            .context("gRPC server failed")
    });
}

/// `/metrics` and `/healthz` for services without the edge's admin API.
pub fn ops_router(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// Waits for every server; the first failure stops the others. Once the
/// servers stop accepting, they get `grace` to drain (long streams
/// included); then they are stopped regardless.
pub async fn until_done(
    mut tasks: JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut outcome = Ok(());
    let deadline = async {
        shutdown.clone().wait().await;
        tokio::time::sleep_until(grace_over(shutdown, grace)).await;
    };
    tokio::pin!(deadline);
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            () = &mut deadline => {
                tracing::warn!("shutdown grace period over; closing open connections");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        };
        let Some(joined) = joined else { break };
        let result = joined.context("server task panicked").and_then(|r| r);
        if let Err(error) = result {
            shutdown.stop();
            if outcome.is_ok() {
                outcome = Err(error);
            }
        }
    }
    outcome
}

/// When the grace period that began as the servers stopped accepting ends
/// (counted from now if they were not told to stop).
pub fn grace_over(shutdown: &Shutdown, grace: Duration) -> Instant {
    shutdown.stopped_at().unwrap_or_else(Instant::now) + grace
}
