//! Relaying a worker's stream to the caller chunk by chunk, then settling
//! and recording the request once the stream ends, however it ends.

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use tollgate_core::{ErrorKind, GatewayError, clock, tokens};
use tollgate_proto::BoxStream;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{
    ChatChunk, ChatRequest, ProviderChunk, Usage, chat_chunk, provider_chunk,
};

use crate::attempt::Served;
use crate::renewal::while_renewing;
use crate::shared::{Shared, served_by};
use crate::usage::Finished;

/// Chunks buffered between the worker and a slow client.
const BUFFER: usize = 64;

/// The caller's stream (what serves it first, then the worker's chunks in
/// order) and the relaying work that feeds it, to be run to its end.
pub(crate) fn start(
    shared: Arc<Shared>,
    request: ChatRequest,
    served: Served<BoxStream<ProviderChunk>>,
) -> (BoxStream<ChatChunk>, impl Future<Output = ()> + Send) {
    let (sender, receiver) = mpsc::channel(BUFFER);
    let relaying = run(shared, request, served, sender);
    (Box::pin(ReceiverStream::new(receiver)), relaying)
}

type Sender = mpsc::Sender<Result<ChatChunk, tonic::Status>>;

async fn run(
    shared: Arc<Shared>,
    request: ChatRequest,
    served: Served<BoxStream<ProviderChunk>>,
    sender: Sender,
) {
    let Served {
        value: mut upstream,
        lease,
        attempts,
        latency,
    } = served;
    let served = chat_chunk::Event::ServedBy(served_by(lease.grant(), attempts));
    let relaying = relay_all(&mut upstream, &sender, served);
    let Relayed {
        usage,
        first_token_at_ms,
        data_chunks,
        error,
    } = while_renewing(&shared.quota, lease.grant(), relaying).await;
    // Hang up on the upstream before settling.
    drop(upstream);
    let usage = usage.unwrap_or_else(|| estimate(&request, data_chunks));
    shared
        .finish(
            lease,
            Finished {
                request: &request,
                usage,
                attempts,
                first_token_at_ms,
                error: error.as_ref(),
                upstream_latency: Some(latency),
            },
        )
        .await;
}

/// What relaying a stream saw, for settling it.
struct Relayed {
    usage: Option<Usage>,
    first_token_at_ms: Option<i64>,
    data_chunks: u32,
    error: Option<GatewayError>,
}

/// Sends what serves the stream, then the upstream's chunks in order, until the
/// upstream ends or fails or the client leaves.
async fn relay_all(
    upstream: &mut BoxStream<ProviderChunk>,
    sender: &Sender,
    served: chat_chunk::Event,
) -> Relayed {
    let mut usage: Option<Usage> = None;
    let mut first_token_at_ms = None;
    let mut data_chunks: u32 = 0;
    let mut error = None;
    let mut client_here = send(sender, served).await;
    while client_here {
        // A client that leaves while the upstream is quiet (a model thinking)
        // is noticed at once, not at the upstream's next event; an event
        // already there is still taken first.
        let next = tokio::select! {
            biased;
            next = upstream.next() => next,
            () = sender.closed() => {
                client_here = false;
                break;
            }
        };
        let Some(item) = next else {
            break;
        };
        let event = match item {
            Ok(ProviderChunk {
                event: Some(provider_chunk::Event::Data(data)),
            }) => {
                first_token_at_ms.get_or_insert_with(clock::now_ms);
                data_chunks = data_chunks.saturating_add(1);
                chat_chunk::Event::Data(data)
            }
            Ok(ProviderChunk {
                event: Some(provider_chunk::Event::Usage(chunk)),
            }) => {
                usage = chunk.usage;
                chat_chunk::Event::Usage(chunk)
            }
            Ok(ProviderChunk { event: None }) => continue,
            Err(status) => {
                let failure = GatewayError::from_status(&status);
                // Best effort: the client may already be gone.
                let _ = sender.send(Err(failure.to_status())).await;
                error = Some(failure);
                break;
            }
        };
        client_here = send(sender, event).await;
    }
    if !client_here && error.is_none() && usage.is_none() {
        error = Some(GatewayError::new(
            ErrorKind::ClientClosed,
            "client closed the stream",
        ));
    }
    Relayed {
        usage,
        first_token_at_ms,
        data_chunks,
        error,
    }
}

async fn send(sender: &Sender, event: chat_chunk::Event) -> bool {
    sender
        .send(Ok(ChatChunk { event: Some(event) }))
        .await
        .is_ok()
}

/// Usage of a stream that ended before the upstream reported it: the prompt
/// estimate and one token per relayed chunk (upstreams send about one token
/// per content chunk). Counting something keeps a cut stream from being free.
fn estimate(request: &ChatRequest, data_chunks: u32) -> Usage {
    let prompt_tokens = serde_json::from_slice(&request.body)
        .map(|body| tokens::estimate_chat_prompt(&body))
        .unwrap_or(0);
    Usage {
        prompt_tokens,
        completion_tokens: data_chunks,
        ..Usage::default()
    }
}
