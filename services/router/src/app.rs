//! Building the router: [`build`] turns its [`RouterSettings`] and
//! [`Deps`] into an [`App`]; callers in this process (the edge of
//! `tollgate all`) use [`App::handle`], other processes
//! [`App::grpc_service`]. The router's background work is its requests'
//! own (settling leases, emitting usage events); once the servers in front
//! of it have drained, [`App::finish`] waits for that work.

use std::sync::Arc;

use tokio::time::Instant;
use tollgate_proto::v1::router_server::RouterServer;
use tollgate_proto::{MAX_GRPC_MESSAGE, QuotaHandle, RouterHandle, WorkerHandle};
use tollgate_telemetry::Metrics;

use crate::{RouterService, RouterSettings, UsageEmitter, WorkerPool};

/// What the router is built on.
pub struct Deps {
    /// Leases, settles and reports outcomes.
    pub quota: QuotaHandle,
    /// The workers it calls, in turn (one balanced client in split mode).
    pub workers: Vec<WorkerHandle>,
    /// Where each request's usage event goes.
    pub usage: Arc<dyn UsageEmitter>,
    /// Where the router records its metrics.
    pub metrics: Arc<Metrics>,
}

/// A built router.
pub struct App {
    service: RouterService,
}

/// Builds the router with `settings` over `deps`.
pub fn build(settings: RouterSettings, deps: Deps) -> App {
    App {
        service: RouterService::new(
            deps.quota,
            WorkerPool::new(deps.workers),
            deps.usage,
            deps.metrics,
            settings,
        ),
    }
}

impl App {
    /// The service itself (cheap to clone).
    pub fn service(&self) -> &RouterService {
        &self.service
    }

    /// The router behind the `Router` trait, for callers in this process.
    pub fn handle(&self) -> RouterHandle {
        Arc::new(self.service.clone())
    }

    /// The tonic service to add to a gRPC server.
    pub fn grpc_service(&self) -> RouterServer<RouterService> {
        RouterServer::new(self.service.clone()).max_decoding_message_size(MAX_GRPC_MESSAGE)
    }

    /// For shutdown, once the servers in front of it no longer take
    /// requests: waits until `deadline` for the work of every request
    /// (leases settled, usage events emitted). What is left then is
    /// abandoned: its leases expire.
    pub async fn finish(self, deadline: Instant) {
        let in_flight = self.service.in_flight();
        if in_flight > 0 {
            tracing::info!(in_flight, "waiting for requests to settle");
        }
        if tokio::time::timeout_at(deadline, self.service.drain())
            .await
            .is_err()
        {
            tracing::warn!(
                unfinished = self.service.in_flight(),
                "shutdown grace period over; unsettled leases will expire"
            );
        }
    }
}
