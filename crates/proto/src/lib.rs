//! The `tollgate.v1` contracts between services.
//!
//! Every service is reached through its tonic-generated server trait
//! (`quota_server::Quota`, `router_server::Router`, ...). In `tollgate all` a
//! caller holds the service itself behind that trait (no socket, no encoding);
//! in split mode it holds the matching `Remote*` client from [`remote`], which
//! implements the same trait over gRPC, balanced over every replica that
//! [`discovery`] finds. Callers cannot tell the difference.

pub mod balance;
pub mod discovery;
mod prices;
mod redact;
pub mod remote;
pub mod status;

/// Generated messages, clients and server traits of package `tollgate.v1`.
#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod v1 {
    tonic::include_proto!("tollgate.v1");
}

pub use status::GatewayErrorExt;
pub use v1::analytics_server::Analytics;
pub use v1::quota_server::Quota;
pub use v1::router_server::Router;
pub use v1::worker_server::Worker;

use std::pin::Pin;
use std::sync::Arc;

/// The metadata of a Quota admin request naming who made it, for the audit
/// log (the edge sets it; quota records it).
pub const ACTOR_METADATA: &str = "x-tollgate-actor";

/// Largest gRPC message a service or client accepts: a request body at the
/// edge's limit plus framing (image prompts are big).
pub const MAX_GRPC_MESSAGE: usize = 64 << 20;

/// A boxed stream of messages or gRPC statuses, the stream type of every
/// server-streaming method, so local and remote implementations agree.
pub type BoxStream<T> =
    Pin<Box<dyn futures_util::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// A handle on the quota service, local or remote.
pub type QuotaHandle = Arc<dyn Quota<WatchInvalidationsStream = BoxStream<v1::Invalidation>>>;
/// A handle on the router, local or remote.
pub type RouterHandle = Arc<dyn Router<ChatStreamStream = BoxStream<v1::ChatChunk>>>;
/// A handle on a worker, local or remote.
pub type WorkerHandle = Arc<dyn Worker<CallStreamStream = BoxStream<v1::ProviderChunk>>>;
/// A handle on the analytics service, local or remote.
pub type AnalyticsHandle = Arc<dyn Analytics>;
