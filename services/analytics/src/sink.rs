//! How the router delivers usage events without waiting for analytics.
//!
//! [`UsageSink::emit`] puts an event on a bounded queue and returns at once.
//! One background task takes events off the queue in batches (by size or
//! age) and calls `Analytics::ingest`; a batch that fails is resent with a
//! growing backoff, which is safe because analytics stores each request id
//! once. When the queue is full, or a batch keeps failing past its retry
//! budget, events are dropped: counted in
//! `tollgate_usage_events_dropped_total` and logged, never silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate_backoff::Retries;
use tollgate_core::{ErrorKind, GatewayError, clock};
use tollgate_proto::AnalyticsHandle;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{UsageBatch, UsageEvent};
use tollgate_telemetry::Metrics;

use crate::convert::validate_event;

/// How the sink queues, batches and retries.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Events the queue holds before new ones are dropped.
    pub capacity: usize,
    /// Events per `ingest` call at most.
    pub max_batch: usize,
    /// How long the first event of a batch waits for more.
    pub max_delay: Duration,
    /// Wait before the first resend of a failed batch; doubles each time.
    /// Each wait is jittered up to twice its base, so routers that lost
    /// analytics together do not resend in step.
    pub retry_backoff: Duration,
    /// Longest wait between resends.
    pub retry_backoff_max: Duration,
    /// How long a failing batch is retried before it is dropped. After
    /// close, all the batches still queued share one such budget, so a
    /// close during an outage returns within about twice this.
    pub retry_for: Duration,
    /// Longest wait for one `ingest` call.
    pub call_timeout: Duration,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            max_batch: 512,
            max_delay: Duration::from_millis(50),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            retry_for: Duration::from_secs(60),
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// The router's side of the usage pipeline. Cheap to clone; every clone
/// feeds the same queue and background task.
#[derive(Clone)]
pub struct UsageSink {
    events: mpsc::Sender<UsageEvent>,
    close: mpsc::Sender<oneshot::Sender<()>>,
    drops: Arc<Drops>,
}

impl UsageSink {
    /// Starts the background task that delivers events to `analytics`. It
    /// ends after [`UsageSink::close`] (or when every sink is dropped) once
    /// the queue is flushed.
    pub fn spawn(
        analytics: AnalyticsHandle,
        settings: SinkSettings,
        metrics: Arc<Metrics>,
    ) -> (UsageSink, JoinHandle<()>) {
        let (events_tx, events_rx) = mpsc::channel(settings.capacity.max(1));
        let (close_tx, close_rx) = mpsc::channel(1);
        let drops = Arc::new(Drops::new(metrics));
        let batcher = Batcher {
            analytics,
            settings,
            drops: Arc::clone(&drops),
        };
        let task = tokio::spawn(batcher.run(events_rx, close_rx));
        let sink = UsageSink {
            events: events_tx,
            close: close_tx,
            drops,
        };
        (sink, task)
    }

    /// Queues `event` for delivery without waiting. An invalid event, or one
    /// that finds the queue full or closed, is dropped and counted.
    pub fn emit(&self, event: UsageEvent) {
        if let Err(error) = validate_event(&event) {
            self.drops.dropped(1, "invalid event", &error.message);
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.drops.dropped(1, "queue full", "analytics is behind");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.drops.dropped(1, "sink closed", "emitted after close");
            }
        }
    }

    /// Delivers every queued event (retrying as configured), then stops the
    /// background task. Events emitted afterwards are dropped. Calling it
    /// again returns once the task has stopped.
    pub async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.close.send(done_tx).await.is_ok() {
            // An error means the task ended without answering: nothing to wait for.
            let _stopped = done_rx.await;
        }
    }
}

/// Counts dropped events and logs them at most once a second (with the
/// running total), so a flood of drops cannot flood the log.
pub(crate) struct Drops {
    metrics: Arc<Metrics>,
    last_warned_ms: AtomicI64,
}

impl Drops {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            last_warned_ms: AtomicI64::new(i64::MIN),
        }
    }

    pub(crate) fn dropped(&self, events: u64, reason: &'static str, detail: &str) {
        let counter = &self.metrics.router.usage_events_dropped;
        counter.inc_by(events);
        let now_ms = clock::now_ms();
        let last = self.last_warned_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(last) >= 1_000;
        if due
            && self
                .last_warned_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                events,
                reason,
                detail,
                dropped_total = counter.get(),
                "usage events dropped"
            );
        }
    }
}

/// The moment `delay` from now (a year at most, so absurd settings cannot
/// overflow the clock).
pub(crate) fn after(delay: Duration) -> Instant {
    Instant::now() + delay.min(Duration::from_secs(365 * 24 * 3600))
}

/// The background task: batches queued events and delivers them.
struct Batcher {
    analytics: AnalyticsHandle,
    settings: SinkSettings,
    drops: Arc<Drops>,
}

impl Batcher {
    async fn run(
        self,
        mut events: mpsc::Receiver<UsageEvent>,
        mut close: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let max_batch = self.settings.max_batch.max(1);
        let mut batch = Vec::with_capacity(max_batch);
        // Wake once for the first event of a batch, then let events queue up
        // for `max_delay` and take them all at once: the request path never
        // wakes this task per event.
        let done = loop {
            tokio::select! {
                biased;
                done = close.recv() => break done,
                event = events.recv() => {
                    let Some(event) = event else { break None };
                    batch.push(event);
                }
            }
            tokio::select! {
                biased;
                done = close.recv() => break done,
                () = tokio::time::sleep_until(after(self.settings.max_delay)) => {}
            }
            while let Ok(event) = events.try_recv() {
                batch.push(event);
                if batch.len() >= max_batch {
                    self.deliver(std::mem::take(&mut batch), self.give_up_at())
                        .await;
                }
            }
            if !batch.is_empty() {
                self.deliver(std::mem::take(&mut batch), self.give_up_at())
                    .await;
            }
        };
        // Refuse new events, then deliver what is already queued, every
        // batch within one shared retry budget.
        events.close();
        let give_up_at = self.give_up_at();
        while let Some(event) = events.recv().await {
            batch.push(event);
            if batch.len() >= max_batch {
                self.deliver(std::mem::take(&mut batch), give_up_at).await;
            }
        }
        if !batch.is_empty() {
            self.deliver(batch, give_up_at).await;
        }
        if let Some(done) = done {
            let _closer_gone = done.send(());
        }
    }

    /// When a batch whose delivery starts now stops being retried.
    fn give_up_at(&self) -> Instant {
        after(self.settings.retry_for)
    }

    /// Sends one batch, resending it with backoff until it is stored, it is
    /// refused as invalid, or no retry fits before `give_up_at` (the first
    /// attempt is always made).
    async fn deliver(&self, batch: Vec<UsageEvent>, give_up_at: Instant) {
        let settings = &self.settings;
        let events = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let mut retries =
            Retries::new(settings.retry_backoff, settings.retry_backoff_max).jittered();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let request = tonic::Request::new(UsageBatch {
                events: batch.clone(),
            });
            let call = tokio::time::timeout(settings.call_timeout, self.analytics.ingest(request));
            let error = match call.await {
                Ok(Ok(_reply)) => return,
                Ok(Err(status)) => GatewayError::from_status(&status),
                Err(_elapsed) => {
                    GatewayError::new(ErrorKind::Unavailable, "analytics did not answer in time")
                }
            };
            let refused = matches!(
                error.kind,
                ErrorKind::InvalidRequest | ErrorKind::PayloadTooLarge
            );
            let backoff = retries.next_delay();
            if refused || after(backoff) > give_up_at {
                tracing::error!(events, attempt, %error, "usage batch given up");
                self.drops
                    .dropped(events, "delivery failed", &error.message);
                return;
            }
            tracing::warn!(
                events,
                attempt,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                %error,
                "usage batch not delivered; retrying"
            );
            tokio::time::sleep(backoff).await;
        }
    }
}
