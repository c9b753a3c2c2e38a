//! What the worker hands an adapter, and what it gets back.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tollgate_core::GatewayError;

use crate::usage::Usage;

/// One call to an upstream on behalf of a client request.
#[derive(Clone)]
pub struct ProviderRequest {
    /// Provider name (`openai`, `openai_compatible`, `mock`, ...).
    pub provider: String,
    /// Base URL of the account (`https://api.openai.com/v1`); empty means
    /// the provider's default.
    pub base_url: String,
    /// The account's API key or token; empty for none. Never logged.
    pub credential: String,
    /// The account's login, for providers that authenticate with it and
    /// the credential together (Rovo Dev: HTTP Basic); empty for others.
    pub email: String,
    /// The model the upstream knows; replaces the body's `model`.
    pub upstream_model: String,
    /// The OpenAI Chat Completions request body (JSON).
    pub body: Bytes,
    /// For plain calls, the whole exchange; for streams, the wait for the
    /// response head and then for each next piece of the stream.
    pub timeout: Duration,
    /// A completion cap per choice to send in the provider's own field when
    /// the body sets none: the one the lease reserved room for.
    pub completion_cap: Option<u32>,
    /// The account's provider settings as canonical JSON
    /// ([`tollgate_core::ProviderSettings::to_json`]); empty for none.
    pub settings: String,
}

impl fmt::Debug for ProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRequest")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("credential", &"<redacted>")
            .field("email_set", &!self.email.is_empty())
            .field("upstream_model", &self.upstream_model)
            .field("body_len", &self.body.len())
            .field("timeout", &self.timeout)
            .field("completion_cap", &self.completion_cap)
            .field("settings", &self.settings)
            .finish()
    }
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The OpenAI `chat.completion` JSON body, as the upstream sent it.
    pub body: Bytes,
    pub usage: Usage,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// One SSE data payload (a `chat.completion.chunk` JSON object).
    Data(Bytes),
    /// The last event of a successful stream: the usage, and the
    /// `chat.completion.chunk` with empty `choices` that carries it.
    Usage { usage: Usage, data: Bytes },
}

/// A streamed answer: data events, then one usage event; a failure after
/// the stream started is its last item.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, GatewayError>> + Send>>;
