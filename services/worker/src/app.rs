//! Building the worker: [`build`] turns its [`WorkerSettings`] into an
//! [`App`] that callers in this process reach through [`App::handle`] and
//! other processes through [`App::grpc_service`]. The worker runs nothing
//! in the background, so it has no `run_until`: it lives as long as
//! whoever holds it.

use std::sync::Arc;

use tollgate_proto::WorkerHandle;
use tollgate_proto::v1::worker_server::WorkerServer;
use tollgate_telemetry::Metrics;

use crate::service::{WorkerError, WorkerService, WorkerSettings};

/// A built worker.
pub struct App {
    service: WorkerService,
}

/// Builds the worker: its HTTP client to the providers, with `settings`,
/// recording into `metrics`.
pub fn build(settings: WorkerSettings, metrics: Arc<Metrics>) -> Result<App, WorkerError> {
    Ok(App {
        service: WorkerService::new(settings, metrics)?,
    })
}

impl App {
    /// The worker behind the `Worker` trait, for the router in this
    /// process.
    pub fn handle(&self) -> WorkerHandle {
        self.service.clone().into_handle()
    }

    /// The tonic service to add to a gRPC server.
    pub fn grpc_service(&self) -> WorkerServer<WorkerService> {
        self.service.clone().grpc_service()
    }
}
