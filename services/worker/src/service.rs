//! `WorkerService`: the `tollgate.v1.Worker` service over the provider
//! adapters, with upstream latency and error metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tollgate_core::GatewayError;
use tollgate_proto::v1::worker_server::WorkerServer;
use tollgate_proto::v1::{PingReply, PingRequest, ProviderChunk, ProviderReply, ProviderRequest};
use tollgate_proto::{BoxStream, Worker, WorkerHandle};
use tollgate_proto::{GatewayErrorExt, MAX_GRPC_MESSAGE};
use tollgate_providers::{ClientBuildError, Providers, ProvidersConfig};
use tollgate_telemetry::{Metrics, ModelLabels, UpstreamErrorLabels};
use tonic::{Request, Response, Status};

use crate::convert;

/// The worker's settings; [`Default`] holds every default value.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Upstream timeout when a request names none: the whole call, or for a
    /// stream the wait for its head and then for each next piece.
    pub default_timeout: Duration,
    /// The shared HTTP client and the built-in mock provider.
    pub providers: ProvidersConfig,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(300),
            providers: ProvidersConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// Calls providers for the router. Cheap to clone.
#[derive(Clone)]
pub struct WorkerService {
    providers: Providers,
    metrics: Arc<Metrics>,
    default_timeout: Duration,
}

impl WorkerService {
    pub(crate) fn new(
        settings: WorkerSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WorkerError> {
        Ok(Self {
            providers: Providers::new(settings.providers)?,
            metrics,
            default_timeout: settings.default_timeout,
        })
    }

    /// The service behind the `Worker` trait, for in-process callers.
    pub fn into_handle(self) -> WorkerHandle {
        Arc::new(self)
    }

    /// The tonic service to add to a gRPC server.
    pub fn grpc_service(self) -> WorkerServer<WorkerService> {
        WorkerServer::new(self).max_decoding_message_size(MAX_GRPC_MESSAGE)
    }
}

/// Records one upstream call's duration and failures.
#[derive(Clone)]
struct CallMetrics {
    metrics: Arc<Metrics>,
    provider: String,
    model: String,
}

impl CallMetrics {
    fn new(metrics: &Arc<Metrics>, request: &ProviderRequest) -> Self {
        Self {
            metrics: Arc::clone(metrics),
            provider: request.provider.clone(),
            model: request.model_label.clone(),
        }
    }

    fn observe_duration(&self, started: Instant) {
        self.metrics
            .worker
            .upstream_duration
            .get_or_create(&ModelLabels {
                model: self.model.clone(),
                provider: self.provider.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    fn failed(&self, request_id: &str, error: &GatewayError) -> Status {
        self.metrics
            .worker
            .upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                provider: self.provider.clone(),
                kind: error.kind.label().to_owned(),
            })
            .inc();
        tracing::debug!(
            request_id,
            provider = %self.provider,
            kind = %error.kind,
            "upstream call failed"
        );
        error.to_status()
    }
}

#[tonic::async_trait]
impl Worker for WorkerService {
    type CallStreamStream = BoxStream<ProviderChunk>;

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Ok(Response::new(PingReply {
            service: "worker".to_owned(),
        }))
    }

    async fn call(
        &self,
        request: Request<ProviderRequest>,
    ) -> Result<Response<ProviderReply>, Status> {
        let request = request.into_inner();
        let metrics = CallMetrics::new(&self.metrics, &request);
        let request_id = request.request_id.clone();
        let upstream = convert::provider_request(request, self.default_timeout);
        let started = Instant::now();
        let result = self.providers.call(&upstream).await;
        metrics.observe_duration(started);
        match result {
            Ok(reply) => Ok(Response::new(ProviderReply {
                body: reply.body,
                usage: Some(convert::usage(reply.usage)),
            })),
            Err(error) => Err(metrics.failed(&request_id, &error)),
        }
    }

    async fn call_stream(
        &self,
        request: Request<ProviderRequest>,
    ) -> Result<Response<Self::CallStreamStream>, Status> {
        let request = request.into_inner();
        let metrics = CallMetrics::new(&self.metrics, &request);
        let request_id = request.request_id.clone();
        let upstream = convert::provider_request(request, self.default_timeout);
        let started = Instant::now();
        let result = self.providers.call_stream(&upstream).await;
        metrics.observe_duration(started);
        let events = result.map_err(|error| metrics.failed(&request_id, &error))?;
        let chunks = events.map(move |event| match event {
            Ok(event) => Ok(convert::chunk(event)),
            Err(error) => Err(metrics.failed(&request_id, &error)),
        });
        Ok(Response::new(Box::pin(chunks)))
    }
}
