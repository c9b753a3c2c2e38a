//! The `Router` service: unary and streamed chat through the attempt loop.

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use tonic::{Request, Response, Status};

use tollgate_core::{ErrorKind, GatewayError};

use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{
    ChatChunk, ChatReply, ChatRequest, PingReply, PingRequest, ProviderChunk, Usage,
};
use tollgate_proto::{BoxStream, QuotaHandle};
use tollgate_telemetry::Metrics;

use crate::attempt::{self, Served, Unserved};
use crate::detach;
use crate::relay;
use crate::shared::{RouterSettings, Shared, served_by};
use crate::usage::{Finished, UsageEmitter};
use crate::workers::WorkerPool;

/// The router service, local or behind gRPC.
#[derive(Clone)]
pub struct RouterService {
    shared: Arc<Shared>,
}

impl RouterService {
    pub(crate) fn new(
        quota: QuotaHandle,
        workers: WorkerPool,
        usage: Arc<dyn UsageEmitter>,
        metrics: Arc<Metrics>,
        settings: RouterSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared::new(quota, workers, usage, metrics, settings)),
        }
    }

    /// Waits until the work of every request has finished: leases
    /// settled, usage events emitted. For shutdown, once the servers no
    /// longer take requests; a request that arrives while this waits is
    /// still served, and waited for too.
    pub fn drain(&self) -> impl Future<Output = ()> + Send + 'static {
        let tasks = self.shared.tasks().clone();
        tasks.close();
        async move { tasks.wait().await }
    }

    /// Tasks the router's requests still run (their work, lease releases
    /// and reports, lease renewals).
    pub fn in_flight(&self) -> usize {
        self.shared.tasks().len()
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
        detached(&self.shared, |reply_to| {
            chat(shared, request.into_inner(), reply_to)
        })
        .await
    }

    async fn chat_stream(
        &self,
        request: Request<ChatRequest>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let shared = self.shared.clone();
        detached(&self.shared, |reply_to| {
            chat_stream(shared, request.into_inner(), reply_to)
        })
        .await
    }
}

/// Runs a request's work on the caller's task until it answers; what is
/// left then (settling the lease, emitting the usage event, relaying a
/// stream), or all of it when the caller goes away first (client
/// disconnect, timeout), finishes on a task that shutdown waits for.
async fn detached<T, F>(shared: &Shared, work: impl FnOnce(ReplyTo<T>) -> F) -> Result<T, Status>
where
    T: Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    detach::run(shared.tasks(), work).await.unwrap_or_else(|| {
        Err(
            GatewayError::new(ErrorKind::Internal, "the request failed inside the router")
                .to_status(),
        )
    })
}

/// Where a request's work sends its reply.
type ReplyTo<T> = detach::ReplyTo<Result<T, Status>>;

async fn chat(shared: Arc<Shared>, request: ChatRequest, reply_to: ReplyTo<Response<ChatReply>>) {
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
            reply_to.send(Err(unserved.error.to_status()));
            return record_unserved(&shared, &request, &unserved);
        }
    };
    let usage = reply.usage.unwrap_or_default();
    reply_to.send(Ok(Response::new(ChatReply {
        body: reply.body,
        usage: Some(usage),
        served_by: Some(served_by(lease.grant(), attempts)),
    })));
    shared
        .finish(
            lease,
            Finished {
                request: &request,
                usage,
                attempts,
                first_token_at_ms: None,
                error: None,
                upstream_latency: Some(latency),
            },
        )
        .await;
}

/// A stream counts as served once its first event arrived: a failure
/// before that (an error, or an empty stream) is retried on another
/// account like any failed call, and the client has seen nothing yet.
async fn chat_stream(
    shared: Arc<Shared>,
    request: ChatRequest,
    reply_to: ReplyTo<Response<BoxStream<ChatChunk>>>,
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
            reply_to.send(Ok(Response::new(stream)));
            relaying.await;
        }
        Err(unserved) => {
            reply_to.send(Err(unserved.error.to_status()));
            record_unserved(&shared, &request, &unserved);
        }
    }
}

/// Records a request no attempt could serve (its last lease, if any, was
/// released when its attempt failed).
fn record_unserved(shared: &Shared, request: &ChatRequest, unserved: &Unserved) {
    let finished = Finished {
        request,
        usage: Usage::default(),
        attempts: unserved.attempts,
        first_token_at_ms: None,
        error: Some(&unserved.error),
        upstream_latency: None,
    };
    let event = finished.event(unserved.lease.as_ref());
    if let Some(lease) = &unserved.lease {
        shared.record_metrics(&event, &lease.model_label);
    }
    shared.usage.emit(event);
}
