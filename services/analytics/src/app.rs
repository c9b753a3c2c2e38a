//! Building the analytics service: [`build`] turns its
//! [`AnalyticsSettings`] and [`Deps`] into an [`App`]; callers in this
//! process use [`App::handle`], other processes [`App::grpc_service`], and
//! [`App::run_until`] trims the usage store to its retention and, with
//! Redis, reads the usage stream, both until shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tokio::task::{JoinError, JoinHandle};
use tollgate_core::clock::Clock;
use tollgate_proto::AnalyticsHandle;
use tollgate_proto::v1::analytics_server::AnalyticsServer;
use tollgate_shutdown::Shutdown;
use tollgate_telemetry::Metrics;
use tollgate_usage_store::UsageStore;

use crate::{
    AnalyticsService, ConsumerSettings, RetentionSettings, StreamConsumer, StreamError,
    run_retention,
};

/// The consumer group every analytics replica reads the usage stream in.
pub const USAGE_GROUP: &str = "analytics";

/// How analytics keeps usage and reads the usage stream; [`Default`] holds
/// every default value.
#[derive(Debug, Clone, Default)]
pub struct AnalyticsSettings {
    /// How long usage is kept, and how often that is enforced.
    pub retention: RetentionSettings,
    /// How this replica reads, claims and retries the usage stream (with
    /// Redis only).
    pub consumer: ConsumerSettings,
}

/// What the analytics service is built on.
pub struct Deps {
    /// Where usage is stored and queried.
    pub store: Arc<dyn UsageStore>,
    /// Where the service records its metrics.
    pub metrics: Arc<Metrics>,
    /// The clock retention reads the day from.
    pub clock: Arc<dyn Clock>,
    /// The usage stream to read, when usage events go through Redis;
    /// `None`: they arrive by `Ingest` calls only.
    pub stream: Option<StreamSource>,
}

/// The Redis usage stream a replica reads, in group [`USAGE_GROUP`].
pub struct StreamSource {
    /// The Redis server, `redis://…`.
    pub redis_url: SecretString,
    /// Prefix of the stream's key (`<prefix>usage`).
    pub prefix: String,
    /// This replica's name in the group; a restarted replica with the same
    /// name re-reads its own pending entries.
    pub consumer_name: String,
}

/// A built analytics service.
pub struct App {
    service: Arc<AnalyticsService>,
    retention: Pin<Box<dyn Future<Output = ()> + Send>>,
    consumer: Option<(StreamConsumer, JoinHandle<()>)>,
}

/// Builds the service over `deps.store` and, with a stream, starts its
/// consumer (which connects, and reconnects, on its own). Fails only when
/// the Redis URL is not one.
pub fn build(settings: AnalyticsSettings, deps: Deps) -> Result<App, StreamError> {
    let retention = Box::pin(run_retention(
        deps.store.clone(),
        settings.retention,
        deps.clock,
    ));
    let consumer = match deps.stream {
        Some(source) => {
            let started = StreamConsumer::spawn(
                source.redis_url.expose_secret(),
                &source.prefix,
                USAGE_GROUP,
                &source.consumer_name,
                deps.store.clone(),
                deps.metrics.clone(),
                settings.consumer,
            )?;
            tracing::info!(
                consumer = %source.consumer_name,
                group = USAGE_GROUP,
                "reading usage events from Redis"
            );
            Some(started)
        }
        None => None,
    };
    Ok(App {
        service: Arc::new(AnalyticsService::new(deps.store, deps.metrics)),
        retention,
        consumer,
    })
}

impl App {
    /// The service behind the `Analytics` trait, for callers in this
    /// process.
    pub fn handle(&self) -> AnalyticsHandle {
        self.service.clone()
    }

    /// The tonic service to add to a gRPC server.
    pub fn grpc_service(&self) -> AnalyticsServer<AnalyticsService> {
        AnalyticsServer::from_arc(self.service.clone())
    }

    /// Applies retention until `shutdown` tells the servers to stop, and
    /// then stops the stream consumer once its current batch is stored.
    /// Fails only if the consumer's task panicked.
    pub async fn run_until(self, shutdown: Shutdown) -> Result<(), JoinError> {
        let retention = self.retention;
        let until_stopped = shutdown.clone();
        let retention = async move {
            tokio::select! {
                () = until_stopped.wait() => {}
                () = retention => {}
            }
        };
        let consumer = async move {
            match self.consumer {
                Some((consumer, task)) => {
                    shutdown.wait().await;
                    consumer.shutdown().await;
                    task.await
                }
                None => Ok(()),
            }
        };
        let ((), consumed) = tokio::join!(retention, consumer);
        consumed
    }
}
