//! The router's side of the stream: [`StreamSink::emit`] queues an event
//! and returns at once; one background task appends queued events to the
//! stream in pipelined batches (`XADD … MAXLEN ~ cap`).
//!
//! While Redis is unreachable the task keeps the batch in hand and retries
//! with a growing backoff, and new events wait in the bounded queue. What
//! cannot be kept (queue full, or still undelivered when the retry budget
//! after close runs out) is counted in `tollgate_usage_events_dropped_total`
//! and logged.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate_backoff::Retries;
use tollgate_proto::v1::UsageEvent;
use tollgate_telemetry::Metrics;

use super::{PAYLOAD_FIELD, StreamError, client, connect, millis, stream_key};
use crate::convert::validate_event;
use crate::sink::{Drops, after};

/// How the stream sink queues, batches, trims and retries.
#[derive(Debug, Clone)]
pub struct StreamSinkSettings {
    /// Events the queue holds before new ones are dropped.
    pub capacity: usize,
    /// Events per pipelined append at most.
    pub max_batch: usize,
    /// How long the first event of a batch waits for more.
    pub max_delay: Duration,
    /// Approximate length the stream is trimmed to on append; consumers
    /// further behind than this lose the oldest entries.
    pub max_len: u64,
    /// Wait before the first retry of a failed append; doubles each time.
    /// Each wait is jittered up to twice its base, so routers that lost
    /// Redis together do not retry in step.
    pub retry_backoff: Duration,
    /// Longest wait between retries.
    pub retry_backoff_max: Duration,
    /// After close, how long the events still queued are retried before
    /// they are dropped (while running, a failing append is retried until
    /// Redis is back; the queue bound is what limits memory then).
    pub close_retry_for: Duration,
    /// Longest wait for a connection to Redis.
    pub connect_timeout: Duration,
    /// Longest wait for one pipelined append.
    pub call_timeout: Duration,
}

impl Default for StreamSinkSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            max_batch: 512,
            max_delay: Duration::from_millis(10),
            max_len: 10_000_000,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            close_retry_for: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// Appends usage events to the Redis Stream. Cheap to clone; every clone
/// feeds the same queue and background task.
#[derive(Clone)]
pub struct StreamSink {
    events: mpsc::Sender<UsageEvent>,
    close: mpsc::Sender<oneshot::Sender<()>>,
    drops: Arc<Drops>,
}

impl StreamSink {
    /// Starts the task that appends events to `<prefix>usage` on the Redis
    /// server at `redis_url`. Connecting happens in the task (and again
    /// after every failure), so an unreachable Redis does not fail this.
    pub fn spawn(
        redis_url: &str,
        prefix: &str,
        settings: StreamSinkSettings,
        metrics: Arc<Metrics>,
    ) -> Result<(StreamSink, JoinHandle<()>), StreamError> {
        let client = client(redis_url)?;
        let (events_tx, events_rx) = mpsc::channel(settings.capacity.max(1));
        let (close_tx, close_rx) = mpsc::channel(1);
        let drops = Arc::new(Drops::new(metrics));
        let appender = Appender {
            client,
            key: stream_key(prefix),
            settings,
            drops: Arc::clone(&drops),
            connection: None,
        };
        let task = tokio::spawn(appender.run(events_rx, close_rx));
        let sink = StreamSink {
            events: events_tx,
            close: close_tx,
            drops,
        };
        Ok((sink, task))
    }

    /// Queues `event` without waiting. An invalid event, or one that finds
    /// the queue full or closed, is dropped and counted.
    pub fn emit(&self, event: UsageEvent) {
        if let Err(error) = validate_event(&event) {
            self.drops.dropped(1, "invalid event", &error.message);
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.drops
                    .dropped(1, "queue full", "usage stream unreachable or behind");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.drops.dropped(1, "sink closed", "emitted after close");
            }
        }
    }

    /// Appends every queued event (within `close_retry_for` if Redis is
    /// failing), then stops the task. Later events are dropped. Calling it
    /// again returns once the task has stopped.
    pub async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.close.send(done_tx).await.is_ok() {
            // An error means the task ended without answering.
            let _stopped = done_rx.await;
        }
    }
}

/// Set once close was asked for (or every sink dropped).
struct Closing {
    done: Option<oneshot::Sender<()>>,
    give_up_at: Instant,
}

/// The background task.
struct Appender {
    client: redis::Client,
    key: String,
    settings: StreamSinkSettings,
    drops: Arc<Drops>,
    connection: Option<MultiplexedConnection>,
}

impl Appender {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<UsageEvent>,
        mut close: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let max_batch = self.settings.max_batch.max(1);
        let mut batch = Vec::with_capacity(max_batch);
        let mut closing = None;
        while closing.is_none() {
            // Wake for the first event of a batch, then let more queue up.
            tokio::select! {
                biased;
                done = close.recv() => closing = Some(self.closing(done)),
                event = events.recv() => match event {
                    Some(event) => batch.push(event),
                    None => closing = Some(self.closing(None)),
                },
            }
            if closing.is_none() {
                tokio::select! {
                    biased;
                    done = close.recv() => closing = Some(self.closing(done)),
                    () = tokio::time::sleep_until(after(self.settings.max_delay)) => {}
                }
            }
            while closing.is_none() {
                while batch.len() < max_batch {
                    match events.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    break;
                }
                self.deliver(&batch, &mut close, &mut closing).await;
                batch.clear();
            }
        }
        // Refuse new events; append what is queued within the close budget.
        events.close();
        let mut closing = closing;
        while let Some(event) = events.recv().await {
            batch.push(event);
            if batch.len() >= max_batch {
                self.deliver(&batch, &mut close, &mut closing).await;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.deliver(&batch, &mut close, &mut closing).await;
        }
        if let Some(Closing {
            done: Some(done), ..
        }) = closing
        {
            let _closer_gone = done.send(());
        }
    }

    fn closing(&self, done: Option<oneshot::Sender<()>>) -> Closing {
        Closing {
            done,
            give_up_at: after(self.settings.close_retry_for),
        }
    }

    /// Appends one batch, retrying with backoff: until it succeeds while
    /// running, within the close budget once closing (then the batch is
    /// dropped and counted). A close request is noticed between retries.
    async fn deliver(
        &mut self,
        batch: &[UsageEvent],
        close: &mut mpsc::Receiver<oneshot::Sender<()>>,
        closing: &mut Option<Closing>,
    ) {
        let events = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let mut retries =
            Retries::new(self.settings.retry_backoff, self.settings.retry_backoff_max).jittered();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let error = match self.append(batch).await {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::info!(events, attempt, "usage events appended after retries");
                    }
                    return;
                }
                Err(error) => error,
            };
            let backoff = retries.next_delay();
            if let Some(closing) = closing
                && after(backoff) > closing.give_up_at
            {
                tracing::error!(events, attempt, %error, "usage events given up at close");
                self.drops
                    .dropped(events, "stream unreachable", "Redis append failed");
                return;
            }
            if attempt == 1 || attempt.is_power_of_two() {
                tracing::warn!(
                    events,
                    attempt,
                    retry_in_ms = millis(backoff),
                    %error,
                    "usage events not appended to the stream; retrying"
                );
            }
            if closing.is_some() {
                tokio::time::sleep(backoff).await;
            } else {
                tokio::select! {
                    biased;
                    done = close.recv() => *closing = Some(self.closing(done)),
                    () = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }

    /// One pipelined `XADD` per event. Any failure drops the connection so
    /// the next attempt opens a fresh one; an append that half-succeeded is
    /// sent again whole, which the store's request-id key absorbs.
    async fn append(&mut self, batch: &[UsageEvent]) -> redis::RedisResult<()> {
        let settings = &self.settings;
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let fresh = connect(
                    &self.client,
                    settings.connect_timeout,
                    settings.call_timeout,
                )
                .await?;
                self.connection.insert(fresh)
            }
        };
        let mut pipe = redis::pipe();
        for event in batch {
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(settings.max_len)
                .arg("*")
                .arg(PAYLOAD_FIELD)
                .arg(event.encode_to_vec())
                .ignore();
        }
        let result = pipe.query_async::<()>(connection).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}
