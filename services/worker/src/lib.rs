//! The worker service: calls providers for the router.
//!
//! [`WorkerService`] implements `tollgate_proto::Worker` on top of
//! [`tollgate_providers::Providers`]: in `tollgate all` the router holds it
//! directly as a `WorkerHandle`; in split mode [`App::grpc_service`]
//! serves it over gRPC. [`build`] makes it from its [`WorkerSettings`].

mod app;
mod convert;
mod service;

pub use app::{App, build};
pub use service::{WorkerError, WorkerService, WorkerSettings};
