//! The `Router` service: unary and streamed chat through the attempt loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use tollgate_core::{ErrorKind, GatewayError};

use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{
    ChatChunk, ChatReply, ChatRequest, LeaseGrant, PingReply, PingRequest, ProviderChunk,
    RouteInfo, Usage,
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
    /// Attempts per request, the first included (another account each
    /// time while there is one not tried yet).
    pub max_attempts: u32,
    /// Time an upstream may take to answer (to its first byte for streams).
    pub upstream_timeout_ms: u32,
    /// The longest a request may take to get an answer started, every
    /// attempt and pause included.
    pub request_deadline: Duration,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            upstream_timeout_ms: 300_000,
            request_deadline: Duration::from_secs(600),
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
    /// Every task a request spawns, so shutdown can wait for them.
    tasks: TaskTracker,
}

impl Shared {
    /// The one way the router spawns work for a request (the request
    /// itself, lease releases and reports, lease renewals): on a task that
    /// [`RouterService::drain`] waits for.
    pub(crate) fn spawn<F>(&self, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work)
    }

    /// Settles the lease, records metrics, and emits the usage event of a
    /// finished request. A request that failed after its call started (a
    /// cut stream) is settled with its usage but as failed, and its failure
    /// is reported for the account.
    pub(crate) async fn finish(&self, finished: Finished<'_>) {
        if let Some(lease) = finished.lease
            && finished
                .error
                .is_none_or(|_| finished.usage != Usage::default())
        {
            if let Some(error) = finished.error {
                attempt::report(&self.quota, lease, error).await;
            }
            attempt::settle(
                &self.quota,
                lease,
                finished.usage,
                finished.error.is_some(),
                finished.upstream_latency,
            )
            .await;
        }
        let model_label = finished.lease.map(|lease| lease.model_label.as_str());
        let event = finished.into_event();
        if let Some(model_label) = model_label {
            self.record_metrics(&event, model_label);
        }
        self.usage.emit(event);
    }

    fn record_metrics(&self, event: &tollgate_proto::v1::UsageEvent, model_label: &str) {
        let router = &self.metrics.router;
        let tokens = |direction: &str| TokenLabels {
            direction: direction.to_owned(),
            model: model_label.to_owned(),
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
            model: model_label.to_owned(),
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

    /// Records a request no attempt could serve.
    async fn fail(&self, request: &ChatRequest, unserved: &Unserved) {
        self.finish(Finished {
            request,
            lease: unserved.lease.as_ref(),
            usage: Usage::default(),
            attempts: unserved.attempts,
            first_token_at_ms: None,
            error: Some(&unserved.error),
            upstream_latency: None,
        })
        .await;
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
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Waits until every task its requests spawned has finished: leases
    /// settled, usage events emitted. For shutdown, once the servers no
    /// longer take requests; a request that arrives while this waits is
    /// still served, and waited for too.
    pub fn drain(&self) -> impl Future<Output = ()> + Send + 'static {
        let tasks = self.shared.tasks.clone();
        tasks.close();
        async move { tasks.wait().await }
    }

    /// Tasks the router's requests still run (their work, lease releases
    /// and reports, lease renewals).
    pub fn in_flight(&self) -> usize {
        self.shared.tasks.len()
    }
}

pub(crate) fn route_info(lease: &LeaseGrant, attempts: u32) -> RouteInfo {
    RouteInfo {
        provider: lease.provider.clone(),
        upstream_model: lease.upstream_model.clone(),
        account_id: lease.account_id.clone(),
        attempts,
        model_label: lease.model_label.clone(),
        rate_limit: lease.rate_limit,
        fallback: lease.fallback.clone(),
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
        let shared = self.shared.clone();
        detached(&self.shared, |answer| {
            chat(shared, request.into_inner(), answer)
        })
        .await
    }

    async fn chat_stream(
        &self,
        request: Request<ChatRequest>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let shared = self.shared.clone();
        detached(&self.shared, |answer| {
            chat_stream(shared, request.into_inner(), answer)
        })
        .await
    }
}

/// Runs a request's work on its own task. The work answers through the
/// [`Answer`] as soon as it has a reply, then goes on to settle the lease and
/// emit the usage event off the caller's path; if the caller goes away
/// (client disconnect, timeout), the work still finishes, and shutdown
/// waits for it.
async fn detached<T, F>(shared: &Shared, work: impl FnOnce(Answer<T>) -> F) -> Result<T, Status>
where
    T: Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (answer, reply) = oneshot::channel();
    shared.spawn(work(Answer(answer)));
    reply.await.unwrap_or_else(|_| {
        Err(
            GatewayError::new(ErrorKind::Internal, "the request failed inside the router")
                .to_status(),
        )
    })
}

/// Where a detached request sends its reply.
struct Answer<T>(oneshot::Sender<Result<T, Status>>);

impl<T> Answer<T> {
    fn send(self, reply: Result<T, Status>) {
        // The caller may be gone; the work goes on regardless.
        let _ = self.0.send(reply);
    }
}

async fn chat(shared: Arc<Shared>, request: ChatRequest, answer: Answer<Response<ChatReply>>) {
    let served = attempt::serve(&shared, &request, |worker, call| async move {
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
        latency,
    } = match served {
        Ok(served) => served,
        Err(unserved) => {
            answer.send(Err(unserved.error.to_status()));
            return shared.fail(&request, &unserved).await;
        }
    };
    let usage = reply.usage.unwrap_or_default();
    answer.send(Ok(Response::new(ChatReply {
        body: reply.body,
        usage: Some(usage),
        route: Some(route_info(&lease, attempts)),
    })));
    shared
        .finish(Finished {
            request: &request,
            lease: Some(&lease),
            usage,
            attempts,
            first_token_at_ms: None,
            error: None,
            upstream_latency: Some(latency),
        })
        .await;
}

/// A stream counts as served once its first event arrived: a failure
/// before that (an error, or an empty stream) is retried on another
/// account like any failed call, and the client has seen nothing yet.
async fn chat_stream(
    shared: Arc<Shared>,
    request: ChatRequest,
    answer: Answer<Response<BoxStream<ChatChunk>>>,
) {
    let served = attempt::serve(&shared, &request, |worker, call| async move {
        let mut stream = worker.call_stream(Request::new(call)).await?.into_inner();
        match stream.next().await {
            Some(Ok(first)) => {
                let whole: BoxStream<ProviderChunk> =
                    Box::pin(futures_util::stream::iter([Ok(first)]).chain(stream));
                Ok(whole)
            }
            Some(Err(status)) => Err(status),
            None => Err(GatewayError::new(
                ErrorKind::UpstreamError,
                "the upstream ended the stream before sending anything",
            )
            .to_status()),
        }
    })
    .await;
    match served {
        Ok(served) => {
            let (stream, relaying) = relay::start(shared, request, served);
            answer.send(Ok(Response::new(stream)));
            relaying.await;
        }
        Err(unserved) => {
            answer.send(Err(unserved.error.to_status()));
            shared.fail(&request, &unserved).await;
        }
    }
}
