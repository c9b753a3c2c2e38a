//! The analytics side of the stream: a member of a consumer group that
//! reads entries, writes them to the usage store in batches and
//! acknowledges them only once the store has them.
//!
//! On start (and after any Redis error) it first re-reads its own pending
//! entries (`XREADGROUP … 0`), which a crash between write and acknowledge
//! left behind; then it reads new ones (`>`). Every `claim_every` it takes
//! over entries that other consumers left pending longer than `claim_idle`
//! (`XAUTOCLAIM`). A failed store write is retried with backoff and never
//! acknowledged; an entry that does not decode is logged, counted and
//! acknowledged, so it cannot hold the group up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate_proto::v1::UsageEvent;
use tollgate_store::usage::{UsageRecord, UsageStore};
use tollgate_telemetry::Metrics;

use super::wire::{self, Entry};
use super::{StreamError, client, connect, millis, stream_key};
use crate::convert::record_from_event;

/// How a consumer reads, claims and retries.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Entries per read (and per store write) at most.
    pub batch: usize,
    /// How long a read waits for new entries.
    pub block: Duration,
    /// Entries pending this long with another consumer are taken over.
    pub claim_idle: Duration,
    /// How often to look for such entries.
    pub claim_every: Duration,
    /// How often the group's backlog is measured for the lag gauge.
    pub lag_every: Duration,
    /// Wait before retrying after a failure; doubles each time.
    pub retry_backoff: Duration,
    /// Longest wait between retries.
    pub retry_backoff_max: Duration,
    /// Longest wait for a connection to Redis.
    pub connect_timeout: Duration,
    /// Longest wait for a reply, on top of `block`.
    pub call_timeout: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch: 512,
            block: Duration::from_secs(1),
            claim_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(10),
            lag_every: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// What one consumer has done since it started.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Entries read (new, own pending and claimed).
    pub received: AtomicU64,
    /// Events newly stored.
    pub written: AtomicU64,
    /// Events the store already had.
    pub duplicates: AtomicU64,
    /// Entries that did not decode into a valid event (acknowledged, not
    /// stored).
    pub undecodable: AtomicU64,
    /// Entries acknowledged.
    pub acknowledged: AtomicU64,
    /// Entries claimed from other consumers.
    pub claimed: AtomicU64,
    /// The group's backlog (undelivered plus pending) when last measured.
    pub backlog: AtomicU64,
}

impl ConsumerStats {
    fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }
}

/// Handle of a running consumer.
pub struct StreamConsumer {
    close: mpsc::Sender<oneshot::Sender<()>>,
    stats: Arc<ConsumerStats>,
}

/// Where the consumer reads from.
struct Identity {
    key: String,
    group: String,
    consumer: String,
}

impl StreamConsumer {
    /// Starts consumer `consumer_name` of `group` on `<prefix>usage`,
    /// writing to `store`. The group is created (with the stream, from its
    /// first entry) if missing. Connecting happens in the task and is
    /// retried, so an unreachable Redis does not fail this. The task ends
    /// after [`StreamConsumer::shutdown`] or when the handle is dropped.
    pub fn spawn(
        redis_url: &str,
        prefix: &str,
        group: &str,
        consumer_name: &str,
        store: Arc<dyn UsageStore>,
        metrics: Arc<Metrics>,
        settings: ConsumerSettings,
    ) -> Result<(StreamConsumer, JoinHandle<()>), StreamError> {
        let client = client(redis_url)?;
        let (close_tx, close_rx) = mpsc::channel(1);
        let stats = Arc::new(ConsumerStats::default());
        let now = Instant::now();
        let reader = Reader {
            client,
            identity: Identity {
                key: stream_key(prefix),
                group: group.to_owned(),
                consumer: consumer_name.to_owned(),
            },
            store,
            metrics,
            settings,
            stats: Arc::clone(&stats),
            connection: None,
            own_pending_from: Some("0".to_owned()),
            claim_cursor: None,
            next_claim: now,
            next_lag: now,
        };
        let task = tokio::spawn(reader.run(close_rx));
        Ok((
            StreamConsumer {
                close: close_tx,
                stats,
            },
            task,
        ))
    }

    /// Counters of this consumer.
    pub fn stats(&self) -> &ConsumerStats {
        &self.stats
    }

    /// Stops the consumer once its current batch is stored and
    /// acknowledged (a batch whose write is still failing stays pending,
    /// for this consumer's next start or another one's claim).
    pub async fn shutdown(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.close.send(done_tx).await.is_ok() {
            let _stopped = done_rx.await;
        }
    }
}

/// Why a step ended early.
enum Halt {
    /// Shutdown was asked for (with whom to tell), or every handle dropped.
    Stop(Option<oneshot::Sender<()>>),
    /// Redis failed; reconnect and re-read own pending entries.
    Redis(RedisError),
    /// Redis answered something unexpected.
    Reply(wire::UnexpectedReply),
}

impl From<RedisError> for Halt {
    fn from(error: RedisError) -> Self {
        Halt::Redis(error)
    }
}

impl From<wire::UnexpectedReply> for Halt {
    fn from(error: wire::UnexpectedReply) -> Self {
        Halt::Reply(error)
    }
}

/// The background task.
struct Reader {
    client: redis::Client,
    identity: Identity,
    store: Arc<dyn UsageStore>,
    metrics: Arc<Metrics>,
    settings: ConsumerSettings,
    stats: Arc<ConsumerStats>,
    connection: Option<MultiplexedConnection>,
    /// While re-reading own pending entries: the id to read after.
    own_pending_from: Option<String>,
    /// While claiming: the cursor of the next `XAUTOCLAIM`.
    claim_cursor: Option<String>,
    next_claim: Instant,
    next_lag: Instant,
}

impl Reader {
    async fn run(mut self, mut close: mpsc::Receiver<oneshot::Sender<()>>) {
        let mut backoff = self.settings.retry_backoff;
        let done = loop {
            match close.try_recv() {
                Ok(done) => break Some(done),
                Err(mpsc::error::TryRecvError::Disconnected) => break None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let error = match self.step(&mut close).await {
                Ok(()) => {
                    backoff = self.settings.retry_backoff;
                    continue;
                }
                Err(Halt::Stop(done)) => break done,
                Err(Halt::Redis(error)) => error.to_string(),
                Err(Halt::Reply(error)) => error.to_string(),
            };
            // Start over on a fresh connection, from this consumer's own
            // pending entries (an acknowledgement may have been lost).
            self.connection = None;
            self.own_pending_from = Some("0".to_owned());
            tracing::warn!(
                stream = %self.identity.key,
                retry_in_ms = millis(backoff),
                %error,
                "usage stream read failed; retrying"
            );
            tokio::select! {
                biased;
                done = close.recv() => break done,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = backoff
                .saturating_mul(2)
                .min(self.settings.retry_backoff_max);
        };
        if let Some(done) = done {
            let _closer_gone = done.send(());
        }
    }

    /// One read (own pending, a claim page, or new entries) and its batch.
    async fn step(&mut self, close: &mut mpsc::Receiver<oneshot::Sender<()>>) -> Result<(), Halt> {
        let now = Instant::now();
        if now >= self.next_lag {
            self.next_lag = now + self.settings.lag_every;
            self.measure_lag().await?;
        }
        if self.claim_cursor.is_none() && now >= self.next_claim {
            self.claim_cursor = Some("0-0".to_owned());
        }
        let batch = self.settings.batch.max(1);
        let id = &self.identity;
        let entries = if let Some(after_id) = self.own_pending_from.clone() {
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP").arg(&id.group).arg(&id.consumer);
            read.arg("COUNT").arg(batch).arg("STREAMS").arg(&id.key);
            read.arg(&after_id);
            let entries = wire::read_reply(self.query(&read).await?)?;
            self.own_pending_from = entries.last().map(|entry| entry.id.clone());
            entries
        } else if let Some(cursor) = self.claim_cursor.clone() {
            let mut claim = redis::cmd("XAUTOCLAIM");
            claim.arg(&id.key).arg(&id.group).arg(&id.consumer);
            claim.arg(millis(self.settings.claim_idle)).arg(&cursor);
            claim.arg("COUNT").arg(batch);
            let (next, entries) = wire::autoclaim_reply(self.query(&claim).await?)?;
            if next == "0-0" {
                self.claim_cursor = None;
                self.next_claim = Instant::now() + self.settings.claim_every;
            } else {
                self.claim_cursor = Some(next);
            }
            if !entries.is_empty() {
                let count = u64::try_from(entries.len()).unwrap_or(u64::MAX);
                ConsumerStats::add(&self.stats.claimed, count);
                tracing::info!(
                    entries = count,
                    "claimed pending usage entries of another consumer"
                );
            }
            entries
        } else {
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP").arg(&id.group).arg(&id.consumer);
            read.arg("COUNT").arg(batch);
            read.arg("BLOCK").arg(millis(self.settings.block));
            read.arg("STREAMS").arg(&id.key).arg(">");
            wire::read_reply(self.query(&read).await?)?
        };
        self.process(entries, close).await
    }

    /// Stores the decodable entries (retrying until the store takes them),
    /// then acknowledges all of them.
    async fn process(
        &mut self,
        entries: Vec<Entry>,
        close: &mut mpsc::Receiver<oneshot::Sender<()>>,
    ) -> Result<(), Halt> {
        if entries.is_empty() {
            return Ok(());
        }
        let received = u64::try_from(entries.len()).unwrap_or(u64::MAX);
        ConsumerStats::add(&self.stats.received, received);
        self.metrics.analytics.events_received.inc_by(received);
        let mut ids = Vec::with_capacity(entries.len());
        let mut records = Vec::with_capacity(entries.len());
        for entry in entries {
            match decode(entry.payload.as_deref()) {
                Ok(record) => records.push(record),
                Err(reason) => {
                    ConsumerStats::add(&self.stats.undecodable, 1);
                    tracing::warn!(
                        stream = %self.identity.key,
                        entry = %entry.id,
                        reason,
                        "usage stream entry skipped"
                    );
                }
            }
            ids.push(entry.id);
        }
        if !records.is_empty() {
            self.write(&records, close).await?;
        }
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.identity.key)
            .arg(&self.identity.group)
            .arg(&ids);
        let acknowledged = match self.query(&ack).await? {
            Value::Int(count) => u64::try_from(count).unwrap_or(0),
            _ => return Err(Halt::Reply(wire::UnexpectedReply("XACK"))),
        };
        ConsumerStats::add(&self.stats.acknowledged, acknowledged);
        Ok(())
    }

    /// Writes one batch, retrying with backoff until it is stored; a
    /// shutdown during the retries stops without acknowledging.
    async fn write(
        &self,
        records: &[UsageRecord],
        close: &mut mpsc::Receiver<oneshot::Sender<()>>,
    ) -> Result<(), Halt> {
        let analytics = &self.metrics.analytics;
        let mut backoff = self.settings.retry_backoff;
        loop {
            let started = Instant::now();
            let result = self.store.insert_batch(records).await;
            analytics
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(outcome) => {
                    analytics.events_written.inc_by(outcome.written);
                    analytics.duplicates_skipped.inc_by(outcome.duplicates);
                    ConsumerStats::add(&self.stats.written, outcome.written);
                    ConsumerStats::add(&self.stats.duplicates, outcome.duplicates);
                    return Ok(());
                }
                Err(error) => error,
            };
            analytics.write_errors.inc();
            tracing::warn!(
                events = records.len(),
                retry_in_ms = millis(backoff),
                %error,
                "usage batch write failed; retrying"
            );
            tokio::select! {
                biased;
                done = close.recv() => return Err(Halt::Stop(done)),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = backoff
                .saturating_mul(2)
                .min(self.settings.retry_backoff_max);
        }
    }

    /// Sets the lag gauge from the group's backlog.
    async fn measure_lag(&mut self) -> Result<(), Halt> {
        let mut info = redis::cmd("XINFO");
        info.arg("GROUPS").arg(&self.identity.key);
        let reply = self.query(&info).await?;
        if let Some(backlog) = wire::group_backlog(reply, &self.identity.group) {
            self.stats.backlog.store(backlog, Ordering::Relaxed);
            self.metrics.analytics.lag.set(backlog);
        }
        Ok(())
    }

    /// Runs `command` on the connection, opening one (and creating the
    /// group) first if needed; any error drops the connection.
    async fn query(&mut self, command: &redis::Cmd) -> Result<Value, RedisError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let settings = &self.settings;
                let response_timeout = settings.block.saturating_add(settings.call_timeout);
                let mut fresh =
                    connect(&self.client, settings.connect_timeout, response_timeout).await?;
                create_group(&mut fresh, &self.identity).await?;
                self.connection.insert(fresh)
            }
        };
        let result = command.query_async::<Value>(connection).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

/// Creates the group (and the stream) unless it exists. A new group starts
/// at the stream's first entry, so events appended before any consumer
/// existed are read too.
async fn create_group(
    connection: &mut MultiplexedConnection,
    identity: &Identity,
) -> Result<(), RedisError> {
    let mut create = redis::cmd("XGROUP");
    create
        .arg("CREATE")
        .arg(&identity.key)
        .arg(&identity.group)
        .arg("0")
        .arg("MKSTREAM");
    match create.query_async::<()>(connection).await {
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// The record in an entry's payload, or why there is none.
fn decode(payload: Option<&[u8]>) -> Result<UsageRecord, &'static str> {
    let payload = payload.ok_or("no payload (trimmed or foreign entry)")?;
    let event = UsageEvent::decode(payload).map_err(|_| "payload is not a usage event")?;
    record_from_event(event).map_err(|_| "invalid usage event")
}
