//! Wiring: builds the services a role needs, connects them through their
//! handles (in-process for `all`, gRPC clients in split mode), serves them,
//! and drains them on shutdown: readiness goes false, the listeners close
//! after the drain delay, open requests finish and the router's work
//! settles within the grace period, then the usage sink delivers what it
//! holds.
//!
//! `build` maps the configuration onto each service's settings and calls
//! the service's own `build`; `startup` serves the edge and does what a
//! first start does; this module runs the roles: each service's
//! `App::run_until` (and its gRPC service, in split mode) in a task tied to
//! the shutdown signal.

mod build;
mod startup;

use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::Instant;

use tollgate_analytics::EventSink;
use tollgate_proto::remote::{Peer, RemoteAnalytics, RemoteQuota, RemoteRouter, RemoteWorker};
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle, WorkerHandle};
use tollgate_shutdown::Shutdown;
use tollgate_telemetry::Metrics;

use crate::config::{Config, Role};
use crate::serve;

use build::*;
use startup::*;

/// Runs the configured role until SIGINT/SIGTERM or a server failure.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = Shutdown::new(config.shutdown_drain_delay);
    shutdown.on_signals();
    let metrics = Arc::new(Metrics::new());
    let mut tasks = JoinSet::new();
    if let Some(address) = config.admin_listen
        && !matches!(config.role, Role::All | Role::Edge)
    {
        let listener = serve::bind("metrics endpoint", address).await?;
        serve::http(
            &mut tasks,
            listener,
            serve::ops_router(metrics.clone()),
            &shutdown,
        );
    }
    let routing = match config.role {
        Role::All => Some(all(&config, &metrics, &mut tasks, &shutdown).await?),
        Role::Edge => {
            edge(&config, &metrics, &mut tasks, &shutdown).await?;
            None
        }
        Role::Router => Some(router(&config, &metrics, &mut tasks, &shutdown).await?),
        Role::Quota => {
            quota(&config, &metrics, &mut tasks, &shutdown).await?;
            None
        }
        Role::Worker => {
            let worker = worker_app(&config, &metrics)?;
            let listener = serve::bind("worker gRPC", config.grpc_listen).await?;
            let routes = tonic::service::Routes::new(worker.grpc_service());
            serve::grpc(&mut tasks, listener, routes, &shutdown);
            tracing::info!(grpc = %config.grpc_listen, "worker ready");
            None
        }
        Role::Analytics => {
            let analytics = analytics_app(&config, &metrics).await?;
            let routes = tonic::service::Routes::new(analytics.grpc_service());
            run_analytics(analytics, &mut tasks, &shutdown);
            let listener = serve::bind("analytics gRPC", config.grpc_listen).await?;
            serve::grpc(&mut tasks, listener, routes, &shutdown);
            tracing::info!(grpc = %config.grpc_listen, "analytics ready");
            None
        }
    };
    let outcome = serve::until_done(tasks, &shutdown, config.shutdown_grace).await;
    if let Some(routing) = routing {
        let deadline = serve::grace_over(&shutdown, config.shutdown_grace);
        routing.finish(deadline).await;
    }
    outcome
}

/// What outlives the servers of a process that routes requests: the
/// router's work behind them (leases to settle, usage events to emit, also
/// for clients already gone) and the sink that delivers those events.
struct Routing {
    router: tollgate_router::App,
    sink: EventSink,
}

impl Routing {
    /// Once the servers have drained: waits for the router's work until
    /// `deadline`, then delivers the usage events it emitted.
    async fn finish(self, deadline: Instant) {
        self.router.finish(deadline).await;
        self.sink.close().await;
        tracing::info!("usage sink closed; stopping");
    }
}

/// Every service in this process, calling each other through their traits.
async fn all(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<Routing> {
    let quota_app = quota_app(config, metrics).await?;
    let quota = quota_app.handle();
    run_quota(quota_app, tasks, shutdown);
    let analytics_app = analytics_app(config, metrics).await?;
    let analytics = analytics_app.handle();
    run_analytics(analytics_app, tasks, shutdown);
    let worker = worker_app(config, metrics)?.handle();
    let (router, sink) = router_app(
        config,
        metrics,
        quota.clone(),
        vec![worker],
        analytics.clone(),
    )?;
    let dev_key = first_start(config, &quota).await?;
    let admin = admin_token(config)?;
    let edge = edge_app(
        config,
        metrics,
        router.handle(),
        quota,
        analytics,
        &admin.value,
    );
    let addresses = serve_edge(config, edge, tasks, shutdown).await?;
    banner(config, &addresses, dev_key.as_deref(), &admin);
    Ok(Routing { router, sink })
}

async fn edge(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let peers = &config.peers;
    let router: RouterHandle = Arc::new(RemoteRouter::new(Peer::dns(&peers.router)?));
    let quota: QuotaHandle = Arc::new(RemoteQuota::new(Peer::dns(&peers.quota)?));
    let analytics: AnalyticsHandle = Arc::new(RemoteAnalytics::new(Peer::dns(&peers.analytics)?));
    let admin = admin_token(config)?;
    let edge = edge_app(config, metrics, router, quota, analytics, &admin.value);
    let addresses = serve_edge(config, edge, tasks, shutdown).await?;
    if admin.created {
        banner(config, &addresses, None, &admin);
    }
    Ok(())
}

async fn router(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<Routing> {
    let peers = &config.peers;
    let quota: QuotaHandle = Arc::new(RemoteQuota::new(Peer::dns(&peers.quota)?));
    let analytics: AnalyticsHandle = Arc::new(RemoteAnalytics::new(Peer::dns(&peers.analytics)?));
    // One balanced client over every worker replica: a call that fails on
    // one worker is asked again (attempt.rs) and the balancer, having
    // ejected that worker, sends it to another.
    let workers: Vec<WorkerHandle> = vec![Arc::new(RemoteWorker::new(Peer::dns(&peers.workers)?))];
    let (router, sink) = router_app(config, metrics, quota, workers, analytics)?;
    let listener = serve::bind("router gRPC", config.grpc_listen).await?;
    serve::grpc(
        tasks,
        listener,
        tonic::service::Routes::new(router.grpc_service()),
        shutdown,
    );
    tracing::info!(grpc = %config.grpc_listen, "router ready");
    Ok(Routing { router, sink })
}

async fn quota(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let quota = quota_app(config, metrics).await?;
    let handle = quota.handle();
    let server = quota.grpc_service();
    run_quota(quota, tasks, shutdown);
    if let Some(key) = first_start(config, &handle).await? {
        println!(
            "{}",
            dev_key_lines(&format!("http://{}", config.listen), &key)
        );
    }
    let listener = serve::bind("quota gRPC", config.grpc_listen).await?;
    serve::grpc(
        tasks,
        listener,
        tonic::service::Routes::new(server),
        shutdown,
    );
    tracing::info!(grpc = %config.grpc_listen, "quota ready");
    Ok(())
}

/// Runs the quota service's own work (its invalidation broadcast) until
/// shutdown.
fn run_quota(
    quota: tollgate_quota::App,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) {
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        quota.run_until(shutdown).await;
        Ok(())
    });
}

/// Runs the analytics service's own work (retention, the usage stream
/// consumer) until shutdown.
fn run_analytics(
    analytics: tollgate_analytics::App,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) {
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        analytics
            .run_until(shutdown)
            .await
            .context("usage stream consumer panicked")
    });
}
