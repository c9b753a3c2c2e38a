//! The worker service: calls providers for the router.
//!
//! [`WorkerService`] implements `tollgate_proto::Worker` on top of
//! [`tollgate_providers::Providers`]: in `tollgate all` the router holds it
//! directly as a `WorkerHandle`; in split mode [`WorkerService::grpc_service`]
//! serves it over gRPC.

mod convert;
mod service;

pub use service::{WorkerError, WorkerService, WorkerSettings};
