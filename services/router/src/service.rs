//! The `Router` service: unary and streamed chat through the attempt loop.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use tollgate_proto::v1::{
    ChatChunk, ChatReply, ChatRequest, LeaseGrant, PingReply, PingRequest, RouteInfo, Usage,
};
use tollgate_proto::{BoxStream, QuotaHandle};
use tollgate_telemetry::{Metrics, ModelLabels, TokenLabels};

use crate::attempt::{self, Served, Unserved};
use crate::relay;
use crate::usage::{Finished, UsageEmitter};
use crate::workers::WorkerPool;

/// Retry and timeout policy.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Attempts per request, the first included (another account each time).
    pub max_attempts: u32,
    /// Time an upstream may take to answer (to its first byte for streams).
    pub upstream_timeout_ms: u32,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            upstream_timeout_ms: 300_000,
        }
    }
}

/// What every request of a router shares.
pub(crate) struct Shared {
    pub quota: QuotaHandle,
    pub workers: WorkerPool,
    pub usage: Arc<dyn UsageEmitter>,
    pub metrics: Arc<Metrics>,
    pub settings: RouterSettings,
}

impl Shared {
    /// Settles the lease, records metrics, and emits the usage event of a
    /// finished request.
    pub(crate) fn finish(&self, finished: Finished<'_>) {
        if let Some(lease) = finished.lease
            && finished
                .error
                .is_none_or(|_| finished.usage != Usage::default())
        {
            attempt::settle(&self.quota, lease, finished.usage);
        }
        let event = finished.into_event();
        if !event.provider.is_empty() {
            self.record_metrics(&event);
        }
        self.usage.emit(event);
    }

    fn record_metrics(&self, event: &tollgate_proto::v1::UsageEvent) {
        let router = &self.metrics.router;
        let tokens = |direction: &str| TokenLabels {
            direction: direction.to_owned(),
            model: event.upstream_model.clone(),
            provider: event.provider.clone(),
            profile: event.profile.clone(),
        };
        router
            .tokens
            .get_or_create(&tokens("input"))
            .inc_by(u64::from(event.prompt_tokens));
        router
            .tokens
            .get_or_create(&tokens("output"))
            .inc_by(u64::from(event.completion_tokens));
        let model = ModelLabels {
            model: event.upstream_model.clone(),
            provider: event.provider.clone(),
        };
        if event.cost_micro_usd > 0 {
            router
                .cost_usd
                .get_or_create(&model)
                .inc_by(event.cost_micro_usd as f64 / 1_000_000.0);
        }
        if event.attempts > 1 {
            router
                .retries
                .get_or_create(&model)
                .inc_by(u64::from(event.attempts - 1));
        }
    }

    fn fail(&self, request: &ChatRequest, unserved: Unserved) -> Status {
        self.finish(Finished {
            request,
            lease: unserved.lease.as_ref(),
            usage: Usage::default(),
            attempts: unserved.attempts,
            first_token_at_ms: None,
            error: Some(&unserved.error),
        });
        unserved.error.to_status()
    }
}

/// The router service, local or behind gRPC.
#[derive(Clone)]
pub struct RouterService {
    shared: Arc<Shared>,
}

impl RouterService {
    pub fn new(
        quota: QuotaHandle,
        workers: WorkerPool,
        usage: Arc<dyn UsageEmitter>,
        metrics: Arc<Metrics>,
        settings: RouterSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                quota,
                workers,
                usage,
                metrics,
                settings,
            }),
        }
    }
}

pub(crate) fn route_info(lease: &LeaseGrant, attempts: u32) -> RouteInfo {
    RouteInfo {
        provider: lease.provider.clone(),
        upstream_model: lease.upstream_model.clone(),
        account_id: lease.account_id.clone(),
        attempts,
    }
}

#[tonic::async_trait]
impl tollgate_proto::Router for RouterService {
    type ChatStreamStream = BoxStream<ChatChunk>;

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Ok(Response::new(PingReply {
            service: "router".into(),
        }))
    }

    async fn chat(&self, request: Request<ChatRequest>) -> Result<Response<ChatReply>, Status> {
        let request = request.into_inner();
        let served = attempt::serve(&self.shared, &request, |worker, call| async move {
            worker
                .call(Request::new(call))
                .await
                .map(Response::into_inner)
        })
        .await;
        let Served {
            value: reply,
            lease,
            attempts,
        } = served.map_err(|unserved| self.shared.fail(&request, unserved))?;
        let usage = reply.usage.unwrap_or_default();
        self.shared.finish(Finished {
            request: &request,
            lease: Some(&lease),
            usage,
            attempts,
            first_token_at_ms: None,
            error: None,
        });
        Ok(Response::new(ChatReply {
            body: reply.body,
            usage: Some(usage),
            route: Some(route_info(&lease, attempts)),
        }))
    }

    async fn chat_stream(
        &self,
        request: Request<ChatRequest>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let request = request.into_inner();
        let served = attempt::serve(&self.shared, &request, |worker, call| async move {
            worker
                .call_stream(Request::new(call))
                .await
                .map(Response::into_inner)
        })
        .await
        .map_err(|unserved| self.shared.fail(&request, unserved))?;
        Ok(Response::new(relay::spawn(
            self.shared.clone(),
            request,
            served,
        )))
    }
}
