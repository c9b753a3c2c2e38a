//! A fake provider HTTP server speaking the OpenAI, Anthropic, Gemini and
//! Ollama wire formats, for tests, demos and benchmarks.
//!
//! Routes: `POST /v1/chat/completions` (also `/chat/completions`; at
//! Azure OpenAI's paths, `/openai/v1/chat/completions` and
//! `/openai/deployments/{deployment}/chat/completions?api-version=…`, with
//! the key in `api-key`, see the `azure` module), `POST
//! /v1/messages` (Anthropic's Messages API, key in `x-api-key`; see the
//! `anthropic` module for how it checks and answers), `POST
//! /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` (the Gemini API, key in
//! `x-goog-api-key`; see the `gemini` module), `POST /api/chat` and `GET
//! /api/tags` (Ollama's native API, NDJSON streams; see the `ollama`
//! module),
//! `GET /v1/models` (also `/models`), `GET /_mock/stats` (the counters as
//! JSON, with each bearer key's requests and last body), `POST
//! /_mock/reset`, `PUT /_mock/key-directives`. Anything else is OpenAI's
//! 404 error.
//!
//! Answers are deterministic and are the in-process `mock` provider's
//! ([`tollgate_providers::mock`]): the reply echoes the last user message;
//! prompt tokens are the gateway's own estimate (3 + per message 4 +
//! ceil(text bytes / 4)), completion tokens max(1, ceil(reply bytes / 4))
//! unless `--completion-tokens` fixes them. Streams send a role chunk,
//! `--chunks` content chunks, a `finish_reason` chunk, the usage chunk
//! (`choices: []`) when `stream_options.include_usage` is true (the others
//! then carry `"usage": null`), and `data: [DONE]`.
//!
//! Failures are injected by flags (`--fail-status`/`--fail-count`,
//! `--retry-after`, `--cut-after`, `--latency-ms`) or per request by
//! directives in the last user message, such as `[[mock:status=503]]`,
//! `[[mock:status=429,retry_after=7]]`, `[[mock:cut_after=2]]`,
//! `[[mock:latency_ms=50]]`, `[[mock:error=context_length_exceeded]]`
//! (OpenAI's 400 of that code; also `content_policy_violation`) (all keys:
//! [`tollgate_providers::mock::Directives`]),
//! or per API key: `--key-directives sk-bad:status=503` at start, or
//! `PUT /_mock/key-directives` with `{"key": "sk-bad", "directives":
//! "status=503"}` while running (empty directives forget the key), so one
//! mock plays a pool of accounts that fail each in its own way. A directive
//! in the message wins over its key's, and either wins over a flag.

mod anthropic;
mod args;
mod azure;
mod gemini;
mod ollama;
mod server;
mod stats;

pub use args::MockUpstreamArgs;
pub use server::{MockState, router};
pub use stats::{KeyStats, MockStats};

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mock upstream cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("mock upstream server failed: {0}")]
    Serve(#[source] io::Error),
}

/// A running mock upstream. Dropping it stops the server (connections in
/// flight finish first).
pub struct MockUpstream {
    addr: SocketAddr,
    state: MockState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), io::Error>>>,
}

impl MockUpstream {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL an account uses: `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// Zeroes the counters (and restarts `--fail-count`).
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// Stops accepting, lets connections in flight finish, and waits.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(Error::Serve),
                Err(join) => Err(Error::Serve(io::Error::other(join))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a mock upstream on `args.listen` (port 0 picks a free port) in
/// the background.
pub async fn spawn(args: MockUpstreamArgs) -> Result<MockUpstream, Error> {
    let listener = bind(args.listen).await?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let state = MockState::new(&args);
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(MockUpstream {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Runs a mock upstream until `shutdown` completes (for the binary).
pub async fn serve(
    args: MockUpstreamArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = bind(args.listen).await?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(%addr, "mock upstream listening");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(MockState::new(&args)))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
