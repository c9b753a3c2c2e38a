//! Wiring: builds the services a role needs, connects them through their
//! handles (in-process for `all`, gRPC clients in split mode), serves them,
//! and drains them on shutdown: readiness goes false, the listeners close
//! after the drain delay, open requests finish and the router's work
//! settles within the grace period, then the usage sink delivers what it
//! holds.
//!
//! `build` makes each service from the configuration; `startup` serves the
//! edge and does what a first start does; this module runs the roles.

mod build;
mod startup;

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::Instant;

use tollgate_analytics::EventSink;
use tollgate_proto::remote::{Peer, RemoteAnalytics, RemoteQuota, RemoteRouter, RemoteWorker};
use tollgate_proto::v1::analytics_server::AnalyticsServer;
use tollgate_proto::v1::quota_server::QuotaServer;
use tollgate_proto::v1::router_server::RouterServer;
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle, WorkerHandle};
use tollgate_router::RouterService;
use tollgate_telemetry::Metrics;

use crate::config::{Config, Role};
use crate::serve;
use crate::shutdown::Shutdown;

use build::*;
use startup::*;

/// Largest gRPC message a service accepts: a request body at the edge's
/// limit plus framing.
const MAX_GRPC_MESSAGE: usize = 64 << 20;

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
            let worker = worker_service(&config, &metrics)?;
            let listener = serve::bind("worker gRPC", config.grpc_listen).await?;
            let routes = tonic::service::Routes::new(worker.grpc_service());
            serve::grpc(&mut tasks, listener, routes, &shutdown);
            tracing::info!(grpc = %config.grpc_listen, "worker ready");
            None
        }
        Role::Analytics => {
            let analytics = analytics_service(&config, &metrics, &mut tasks, &shutdown).await?;
            let listener = serve::bind("analytics gRPC", config.grpc_listen).await?;
            let routes = tonic::service::Routes::new(AnalyticsServer::from_arc(analytics));
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
    router: RouterService,
    sink: EventSink,
}

impl Routing {
    /// Once the servers have drained: waits for the router's work until
    /// `deadline`, then delivers the usage events it emitted.
    async fn finish(self, deadline: Instant) {
        let in_flight = self.router.in_flight();
        if in_flight > 0 {
            tracing::info!(in_flight, "waiting for requests to settle");
        }
        if tokio::time::timeout_at(deadline, self.router.drain())
            .await
            .is_err()
        {
            tracing::warn!(
                unfinished = self.router.in_flight(),
                "shutdown grace period over; unsettled leases will expire"
            );
        }
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
    let service = quota_service(config, metrics).await?;
    invalidations(config, &service, tasks, shutdown)?;
    let quota: QuotaHandle = service;
    let analytics: AnalyticsHandle = analytics_service(config, metrics, tasks, shutdown).await?;
    let worker = worker_service(config, metrics)?.into_handle();
    let (router, sink) = router_service(
        config,
        metrics,
        quota.clone(),
        vec![worker],
        analytics.clone(),
    )?;
    let dev_key = first_start(config, &quota).await?;
    let admin = admin_token(config)?;
    let state = edge_state(
        config,
        metrics,
        Arc::new(router.clone()),
        quota,
        analytics,
        &admin.value,
    );
    let addresses = serve_edge(config, state, tasks, shutdown).await?;
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
    let state = edge_state(config, metrics, router, quota, analytics, &admin.value);
    let addresses = serve_edge(config, state, tasks, shutdown).await?;
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
    let (router, sink) = router_service(config, metrics, quota, workers, analytics)?;
    let listener = serve::bind("router gRPC", config.grpc_listen).await?;
    let server = RouterServer::new(router.clone()).max_decoding_message_size(MAX_GRPC_MESSAGE);
    serve::grpc(
        tasks,
        listener,
        tonic::service::Routes::new(server),
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
    let service = quota_service(config, metrics).await?;
    invalidations(config, &service, tasks, shutdown)?;
    let handle: QuotaHandle = service.clone();
    if let Some(key) = first_start(config, &handle).await? {
        println!(
            "{}",
            dev_key_lines(&format!("http://{}", config.listen), &key)
        );
    }
    let listener = serve::bind("quota gRPC", config.grpc_listen).await?;
    let server = QuotaServer::from_arc(service).max_decoding_message_size(MAX_GRPC_MESSAGE);
    serve::grpc(
        tasks,
        listener,
        tonic::service::Routes::new(server),
        shutdown,
    );
    tracing::info!(grpc = %config.grpc_listen, "quota ready");
    Ok(())
}
