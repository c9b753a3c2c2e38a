//! The typed metric families, one struct per service.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Buckets for request and upstream latencies, in seconds.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Buckets for the number of usage events written in one batch.
const BATCH_SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram_family<L>() -> HistogramFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(latency_histogram)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `chat`, `models`, ...
    pub route: String,
    pub model: String,
    pub provider: String,
    /// Status class (`2xx`, `4xx`, `5xx`) or exact code for 429.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `input` or `output`.
    pub direction: String,
    pub model: String,
    pub provider: String,
    pub profile: String,
}

/// The parts of input and output tokens that are priced apart.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenDetailLabels {
    /// `cached_input` and `cache_write_5m`, `cache_write_1h` (parts of the
    /// input), or `reasoning` (part of the output).
    pub kind: String,
    pub model: String,
    pub provider: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub provider: String,
    /// Error kind label (`upstream_rate_limited`, `upstream_timeout`, ...).
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    /// Account id (bounded: accounts are configured objects).
    pub account: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabels {
    /// Account id.
    pub account: String,
}

/// The public API: what clients asked and received.
pub struct EdgeMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<RouteLabels>,
    pub time_to_first_token: HistogramFamily<ModelLabels>,
}

impl EdgeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            request_duration: histogram_family(),
            time_to_first_token: histogram_family(),
        };
        registry.register(
            "requests",
            "Client requests by route, model, provider and status class",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from receiving a client request to its last byte",
            metrics.request_duration.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from receiving a streamed request to its first chunk",
            metrics.time_to_first_token.clone(),
        );
        metrics
    }
}

/// Routing: tokens, cost, attempts.
pub struct RouterMetrics {
    pub tokens: Family<TokenLabels, Counter>,
    /// Parts of `tokens`: cache reads and writes, reasoning.
    pub token_details: Family<TokenDetailLabels, Counter>,
    /// Cost in US dollars.
    pub cost_usd: Family<ModelLabels, Counter<f64, AtomicU64>>,
    /// Requests with tokens whose model the catalog has no price for
    /// (recorded at cost 0).
    pub unpriced_requests: Family<ModelLabels, Counter>,
    pub retries: Family<ModelLabels, Counter>,
    pub usage_events_dropped: Counter,
}

impl RouterMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            tokens: Family::default(),
            token_details: Family::default(),
            cost_usd: Family::default(),
            unpriced_requests: Family::default(),
            retries: Family::default(),
            usage_events_dropped: Counter::default(),
        };
        registry.register(
            "tokens",
            "Tokens by direction (input, output), model, provider and profile",
            metrics.tokens.clone(),
        );
        registry.register(
            "token_details",
            "Parts of the tokens priced apart, by kind (cached_input, cache_write_5m, \
             cache_write_1h: parts of input; reasoning: part of output), model, provider \
             and profile",
            metrics.token_details.clone(),
        );
        registry.register(
            "cost_usd",
            "Cost of upstream calls in US dollars, from the model catalog",
            metrics.cost_usd.clone(),
        );
        registry.register(
            "unpriced_requests",
            "Requests whose model the model catalog has no price for (recorded at cost 0)",
            metrics.unpriced_requests.clone(),
        );
        registry.register(
            "retries",
            "Upstream attempts beyond the first",
            metrics.retries.clone(),
        );
        registry.register(
            "usage_events_dropped",
            "Usage events that could not be delivered to analytics",
            metrics.usage_events_dropped.clone(),
        );
        metrics
    }
}

/// Admission decisions.
pub struct QuotaMetrics {
    pub leases: Counter,
    pub lease_denied: Family<ReasonLabels, Counter>,
    pub account_tokens_remaining: Family<AccountLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    /// 1 from when this process opened an account's circuit until it next
    /// sees the account serve (a lease granted on it, or a probe's
    /// success); take the max across quota processes.
    pub circuit_open: Family<CircuitLabels, Gauge>,
}

impl QuotaMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            leases: Counter::default(),
            lease_denied: Family::default(),
            account_tokens_remaining: Family::default(),
            circuit_open: Family::default(),
        };
        registry.register("leases", "Leases granted", metrics.leases.clone());
        registry.register(
            "lease_denied",
            "Leases refused, by reason",
            metrics.lease_denied.clone(),
        );
        registry.register(
            "account_tokens_remaining",
            "Tokens an account may still use today (UTC)",
            metrics.account_tokens_remaining.clone(),
        );
        registry.register(
            "circuit_open",
            "1 while an account's circuit is open after repeated upstream failures",
            metrics.circuit_open.clone(),
        );
        metrics
    }
}

/// Upstream calls.
pub struct WorkerMetrics {
    pub upstream_duration: HistogramFamily<ModelLabels>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
}

impl WorkerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            upstream_duration: histogram_family(),
            upstream_errors: Family::default(),
        };
        registry.register(
            "upstream_duration_seconds",
            "Time an upstream took to answer (to the first byte for streams)",
            metrics.upstream_duration.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failed upstream calls by provider and error kind",
            metrics.upstream_errors.clone(),
        );
        metrics
    }
}

/// The usage pipeline.
pub struct AnalyticsMetrics {
    pub events_received: Counter,
    pub events_written: Counter,
    pub duplicates_skipped: Counter,
    pub write_errors: Counter,
    pub batch_duration: Histogram,
    /// Events per batch written (each write attempt of a batch once).
    pub batch_size: Histogram,
    pub lag: Gauge<u64, AtomicU64>,
    /// Age of the oldest stream entry not yet stored (pending with a
    /// consumer or not delivered yet); 0 when none waits.
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// Stream entries acknowledged without being stored, by reason:
    /// `missing` (no payload: a foreign entry, or trimmed while pending),
    /// `malformed` (not a usage event), `invalid` (an event that fails
    /// validation), `trimmed` (deleted from the stream while pending).
    pub undecodable: Family<ReasonLabels, Counter>,
}

impl AnalyticsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            events_received: Counter::default(),
            events_written: Counter::default(),
            duplicates_skipped: Counter::default(),
            write_errors: Counter::default(),
            batch_duration: latency_histogram(),
            batch_size: Histogram::new(BATCH_SIZE_BUCKETS),
            lag: Gauge::default(),
            lag_seconds: Gauge::default(),
            undecodable: Family::default(),
        };
        registry.register(
            "usage_events_received",
            "Usage events received by analytics",
            metrics.events_received.clone(),
        );
        registry.register(
            "usage_events_written",
            "Usage events written to the usage store",
            metrics.events_written.clone(),
        );
        registry.register(
            "usage_events_duplicates",
            "Usage events skipped because their request id was already stored",
            metrics.duplicates_skipped.clone(),
        );
        registry.register(
            "usage_write_errors",
            "Failed usage batch writes (retried)",
            metrics.write_errors.clone(),
        );
        registry.register(
            "usage_batch_duration_seconds",
            "Time to write one batch of usage events",
            metrics.batch_duration.clone(),
        );
        registry.register(
            "usage_batch_size",
            "Usage events in one batch written to the usage store",
            metrics.batch_size.clone(),
        );
        registry.register(
            "usage_events_lag",
            "Usage events received but not yet written",
            metrics.lag.clone(),
        );
        registry.register(
            "usage_events_lag_seconds",
            "Age of the oldest usage stream entry not yet written",
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "usage_events_undecodable",
            "Usage stream entries acknowledged without being written, by reason",
            metrics.undecodable.clone(),
        );
        metrics
    }
}
