//! Building the one usage event each request produces.

use std::time::Duration;

use tollgate_core::{GatewayError, clock, pricing};
use tollgate_proto::v1::{ChatRequest, LeaseGrant, Usage, UsageEvent};

/// Where usage events go (analytics, through a batching sink). Emitting
/// never blocks the request.
pub trait UsageEmitter: Send + Sync + 'static {
    fn emit(&self, event: UsageEvent);
}

/// What `usage` of `upstream_model` costs in micro-dollars, by the price
/// table: the cost in the usage event and the one a settle charges to the
/// key's monthly budget.
pub(crate) fn cost_of(upstream_model: &str, usage: &Usage) -> i64 {
    pricing::cost_micro_usd(upstream_model, usage.prompt_tokens, usage.completion_tokens)
}

/// What a finished request did, for its usage event.
pub(crate) struct Finished<'a> {
    pub request: &'a ChatRequest,
    pub usage: Usage,
    pub attempts: u32,
    pub first_token_at_ms: Option<i64>,
    pub error: Option<&'a GatewayError>,
    /// How long the serving upstream call took (see `Served::latency`).
    pub upstream_latency: Option<Duration>,
}

impl Finished<'_> {
    /// The usage event, with what `lease` (the last attempt's, if any) says
    /// of the account that answered.
    pub fn event(&self, lease: Option<&LeaseGrant>) -> UsageEvent {
        let finished_at_ms = clock::now_ms();
        let started = self.request.received_at_ms;
        let elapsed = |until: i64| u32::try_from((until - started).max(0)).unwrap_or(u32::MAX);
        let upstream_model = lease
            .map(|lease| lease.upstream_model.clone())
            .unwrap_or_default();
        UsageEvent {
            request_id: self.request.request_id.clone(),
            started_at_ms: started,
            finished_at_ms,
            key_id: self.request.key_id.clone(),
            profile: self.request.profile.clone(),
            account_id: lease
                .map(|lease| lease.account_id.clone())
                .unwrap_or_default(),
            provider: lease
                .map(|lease| lease.provider.clone())
                .unwrap_or_default(),
            requested_model: self.request.model.clone(),
            cost_micro_usd: cost_of(&upstream_model, &self.usage),
            upstream_model,
            prompt_tokens: self.usage.prompt_tokens,
            completion_tokens: self.usage.completion_tokens,
            cached_tokens: self.usage.cached_tokens,
            latency_ms: elapsed(finished_at_ms),
            ttft_ms: self.first_token_at_ms.map_or(0, elapsed),
            status: self
                .error
                .map_or(200, |error| u32::from(error.kind.http_status())),
            error_code: self
                .error
                .map(|error| error.kind.label().to_owned())
                .unwrap_or_default(),
            attempts: self.attempts,
            streamed: self.request.stream,
        }
    }
}
