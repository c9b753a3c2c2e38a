//! What every request of a router shares: its peers, its settings, its
//! metrics and usage sink, and the tracker of the tasks its requests
//! spawn; and how a request ends (its lease settled, its metrics recorded,
//! its usage event emitted).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use tollgate_proto::QuotaHandle;
use tollgate_proto::v1::{LeaseGrant, ServedBy};
use tollgate_telemetry::{Metrics, ModelLabels, TokenDetailLabels, TokenLabels};

use crate::lease::LeaseHandle;
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
    /// Every request's work and every task a request spawns, so shutdown
    /// can wait for them.
    tasks: TaskTracker,
}

impl Shared {
    pub(crate) fn new(
        quota: QuotaHandle,
        workers: WorkerPool,
        usage: Arc<dyn UsageEmitter>,
        metrics: Arc<Metrics>,
        settings: RouterSettings,
    ) -> Self {
        Self {
            quota,
            workers,
            usage,
            metrics,
            settings,
            tasks: TaskTracker::new(),
        }
    }

    /// The tasks the router's requests spawned.
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// The one way the router spawns work for a request (lease releases
    /// and reports; a request's own work is tracked by `detach::run`): on
    /// a task that [`RouterService::drain`] waits for.
    pub(crate) fn spawn<F>(&self, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work)
    }

    /// Ends the lease of a request that was served (settled with its
    /// usage; as failed, its failure reported for the account, when the
    /// call failed after it started: a cut stream), records metrics, and
    /// emits the request's usage event.
    pub(crate) async fn finish(&self, lease: LeaseHandle, finished: Finished<'_>) {
        let event = finished.event(Some(lease.grant()));
        self.record_metrics(&event, &lease.grant().model_label);
        match finished.error {
            None => {
                lease
                    .settle(finished.usage, finished.upstream_latency)
                    .await
            }
            Some(error) => lease.settle_failed(error, finished.usage).await,
        }
        self.usage.emit(event);
    }

    pub(crate) fn record_metrics(&self, event: &tollgate_proto::v1::UsageEvent, model_label: &str) {
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
        for (kind, count) in [
            ("cached_input", event.cached_tokens),
            ("cache_write_5m", event.cache_write_5m_tokens),
            ("cache_write_1h", event.cache_write_1h_tokens),
            ("reasoning", event.reasoning_tokens),
        ] {
            if count > 0 {
                router
                    .token_details
                    .get_or_create(&TokenDetailLabels {
                        kind: kind.to_owned(),
                        model: model_label.to_owned(),
                        provider: event.provider.clone(),
                        profile: event.profile.clone(),
                    })
                    .inc_by(u64::from(count));
            }
        }
        let model = ModelLabels {
            model: model_label.to_owned(),
            provider: event.provider.clone(),
        };
        if !event.priced {
            router.unpriced_requests.get_or_create(&model).inc();
        }
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
}

pub(crate) fn served_by(lease: &LeaseGrant, attempts: u32) -> ServedBy {
    ServedBy {
        provider: lease.provider.clone(),
        upstream_model: lease.upstream_model.clone(),
        account_id: lease.account_id.clone(),
        attempts,
        model_label: lease.model_label.clone(),
        rate_limit: lease.rate_limit,
        fallback: lease.fallback.clone(),
    }
}
