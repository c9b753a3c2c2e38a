//! Building the quota service: [`build`] turns its [`QuotaSettings`] and
//! [`Deps`] into an [`App`]; callers in this process use [`App::handle`],
//! other processes [`App::grpc_service`], and [`App::run_until`] broadcasts
//! key invalidations between replicas and ends the invalidation streams
//! at shutdown.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tollgate_control_store::ControlStore;
use tollgate_control_store::crypto::SecretBox;
use tollgate_core::GatewayError;
use tollgate_core::clock::Clock;
use tollgate_counters::QuotaCounters;
use tollgate_proto::v1::quota_server::QuotaServer;
use tollgate_proto::{MAX_GRPC_MESSAGE, QuotaHandle};
use tollgate_shutdown::Shutdown;
use tollgate_telemetry::Metrics;

use crate::{BroadcastError, QuotaService, QuotaSettings, RedisBroadcast};

/// What the quota service is built on.
pub struct Deps {
    /// Keys, accounts, profiles, routes and the audit log.
    pub control: Arc<dyn ControlStore>,
    /// Where every admission decision is counted.
    pub counters: Arc<dyn QuotaCounters>,
    /// Opens (and seals) account secrets.
    pub secrets: SecretBox,
    /// The service's clock.
    pub clock: Arc<dyn Clock>,
    /// Where the service records its metrics.
    pub metrics: Arc<Metrics>,
    /// Redis to broadcast key invalidations through, to and from the other
    /// replicas; `None` for a single replica.
    pub broadcast: Option<BroadcastRedis>,
}

/// The Redis a replica broadcasts its invalidations through.
pub struct BroadcastRedis {
    /// The Redis server, `redis://…`.
    pub redis_url: SecretString,
    /// Prefix of the Redis channel (`<prefix>invalidations`).
    pub prefix: String,
}

/// Why the quota service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("quota service: {0}")]
    Load(GatewayError),
    #[error("cannot broadcast key invalidations: {0}")]
    Broadcast(BroadcastError),
}

/// A built quota service.
pub struct App {
    service: Arc<QuotaService>,
    broadcast: Option<RedisBroadcast>,
}

/// Builds the service and loads its first account snapshot. Fails when
/// the store cannot be read or the Redis URL is not one.
pub async fn build(settings: QuotaSettings, deps: Deps) -> Result<App, BuildError> {
    let service = QuotaService::new(
        deps.control,
        deps.counters,
        deps.secrets,
        deps.clock,
        deps.metrics,
        settings,
    )
    .await
    .map_err(BuildError::Load)?;
    let broadcast = deps
        .broadcast
        .map(|target| {
            service.broadcast_invalidations(target.redis_url.expose_secret(), &target.prefix)
        })
        .transpose()
        .map_err(BuildError::Broadcast)?;
    Ok(App {
        service: Arc::new(service),
        broadcast,
    })
}

impl App {
    /// The service itself, for what its trait does not cover (bootstrap,
    /// tests).
    pub fn service(&self) -> &Arc<QuotaService> {
        &self.service
    }

    /// The service behind the `Quota` trait, for callers in this process.
    pub fn handle(&self) -> QuotaHandle {
        self.service.clone()
    }

    /// The tonic service to add to a gRPC server.
    pub fn grpc_service(&self) -> QuotaServer<QuotaService> {
        QuotaServer::from_arc(self.service.clone()).max_decoding_message_size(MAX_GRPC_MESSAGE)
    }

    /// Broadcasts invalidations (with Redis) until the service's invalidations
    /// stop, and stops them once `shutdown` tells the servers to stop: an
    /// open `WatchInvalidations` stream would hold a gRPC server's drain.
    pub async fn run_until(self, shutdown: Shutdown) {
        let stop = async {
            shutdown.wait().await;
            self.service.stop_invalidations();
        };
        match self.broadcast {
            Some(broadcast) => {
                tokio::join!(broadcast.run(), stop);
            }
            None => stop.await,
        }
    }
}
