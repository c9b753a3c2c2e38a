//! The analytics side of the stream: a member of a consumer group that
//! reads entries, writes them to the usage store in batches and
//! acknowledges them only once the store has them.
//!
//! On start (and after any Redis error) it first re-reads its own pending
//! entries (`XREADGROUP … 0`), which a crash between write and acknowledge
//! left behind; then it reads new ones (`>`). Every `claim_every` it takes
//! over entries that other consumers left pending longer than `claim_idle`
//! (`XAUTOCLAIM`), and removes from the group the consumers idle longer
//! than `dead_consumer_idle` that hold nothing pending (replicas that died
//! or were replaced), so the group does not grow with every restart. A
//! failed store write is retried with backoff and never acknowledged; an
//! entry that does not decode is logged, counted and acknowledged, so it
//! cannot hold the group up, and so is an entry trimmed from the stream
//! while it was pending.
//!
//! Every `lag_every` it measures the group's backlog (entries, and the age
//! of the oldest one not yet stored) for the lag gauges.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate_backoff::Retries;
use tollgate_core::clock::now_ms;
use tollgate_proto::v1::UsageEvent;
use tollgate_telemetry::{Metrics, ReasonLabels};
use tollgate_usage_store::{UsageRecord, UsageStore};

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
    /// Other consumers of the group idle this long, with nothing pending,
    /// are removed from it (checked after each claim pass).
    pub dead_consumer_idle: Duration,
    /// How often the group's backlog is measured for the lag gauge.
    pub lag_every: Duration,
    /// Wait before retrying after a failure; doubles each time. Each wait
    /// is jittered up to twice its base, so replicas that lost Redis or
    /// the store together do not retry in step.
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
            dead_consumer_idle: Duration::from_secs(300),
            lag_every: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
        }
    }
}

impl ConsumerSettings {
    /// The defaults, with entries pending `claim_idle` taken over: looked
    /// for at least that often (and every `claim_every` at most apart);
    /// members of the group idle for ten times that, with nothing pending,
    /// are removed.
    pub fn with_claim_idle(claim_idle: Duration) -> Self {
        let defaults = Self::default();
        Self {
            claim_idle,
            claim_every: defaults.claim_every.min(claim_idle),
            dead_consumer_idle: claim_idle.saturating_mul(DEAD_CONSUMER_IDLE_FACTOR),
            ..defaults
        }
    }
}

/// A group member idle this many claim thresholds, holding nothing, is
/// taken for dead: a live replica reads at least every second.
const DEAD_CONSUMER_IDLE_FACTOR: u32 = 10;

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
    /// stored), and entries trimmed from the stream while pending (their
    /// events lost).
    pub undecodable: AtomicU64,
    /// Entries acknowledged.
    pub acknowledged: AtomicU64,
    /// Entries claimed from other consumers.
    pub claimed: AtomicU64,
    /// Dead consumers removed from the group.
    pub consumers_removed: AtomicU64,
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
            scripts: Scripts::new(),
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
    scripts: Scripts,
}

/// The consumer's server-side scripts, hashed once; sent by SHA (and
/// loaded again when the server answers `NOSCRIPT`).
struct Scripts {
    remove_dead: redis::Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            remove_dead: redis::Script::new(include_str!("remove_dead.lua")),
        }
    }
}

impl Reader {
    async fn run(mut self, mut close: mpsc::Receiver<oneshot::Sender<()>>) {
        let mut retries = self.retries();
        let done = loop {
            match close.try_recv() {
                Ok(done) => break Some(done),
                Err(mpsc::error::TryRecvError::Disconnected) => break None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let error = match self.step(&mut close).await {
                Ok(()) => {
                    retries.reset();
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
            let backoff = retries.next_delay();
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
            let wire::Claimed {
                cursor: next,
                entries,
                deleted,
            } = wire::autoclaim_reply(self.query(&claim).await?)?;
            self.count_trimmed(&deleted);
            if next == "0-0" {
                self.claim_cursor = None;
                self.next_claim = Instant::now() + self.settings.claim_every;
                self.remove_dead_consumers().await?;
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
                    self.count_undecodable(reason, 1);
                    tracing::warn!(
                        stream = %self.identity.key,
                        entry = %entry.id,
                        reason = reason.as_str(),
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
    /// shutdown during the retries stops without acknowledging. The lag
    /// gauges keep being measured between retries: a store outage is when
    /// they matter most.
    async fn write(
        &mut self,
        records: &[UsageRecord],
        close: &mut mpsc::Receiver<oneshot::Sender<()>>,
    ) -> Result<(), Halt> {
        let metrics = Arc::clone(&self.metrics);
        let analytics = &metrics.analytics;
        let mut retries = self.retries();
        loop {
            let started = Instant::now();
            let result = self.store.insert_batch(records).await;
            analytics
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
            analytics.batch_size.observe(records.len() as f64);
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
            let backoff = retries.next_delay();
            tracing::warn!(
                events = records.len(),
                retry_in_ms = millis(backoff),
                %error,
                "usage batch write failed; retrying"
            );
            if Instant::now() >= self.next_lag {
                self.next_lag = Instant::now() + self.settings.lag_every;
                if self.measure_lag().await.is_err() {
                    // The batch is still in hand; Redis is retried with the
                    // next read or measurement.
                    tracing::debug!("usage stream lag not measured: Redis failed");
                }
            }
            tokio::select! {
                biased;
                done = close.recv() => return Err(Halt::Stop(done)),
                () = tokio::time::sleep(backoff) => {}
            }
        }
    }

    /// The delays between retries of a failed read or write.
    fn retries(&self) -> Retries {
        Retries::new(self.settings.retry_backoff, self.settings.retry_backoff_max).jittered()
    }

    fn count_undecodable(&self, reason: Undecodable, count: u64) {
        self.metrics
            .analytics
            .undecodable
            .get_or_create(&ReasonLabels {
                reason: reason.as_str().to_owned(),
            })
            .inc_by(count);
    }

    /// Counts and logs the entries `XAUTOCLAIM` found deleted from the
    /// stream while pending (trimmed before anyone stored them): Redis has
    /// dropped them from the pending list, so they are gone.
    fn count_trimmed(&self, deleted: &[String]) {
        if deleted.is_empty() {
            return;
        }
        let count = u64::try_from(deleted.len()).unwrap_or(u64::MAX);
        ConsumerStats::add(&self.stats.undecodable, count);
        self.count_undecodable(Undecodable::Trimmed, count);
        tracing::warn!(
            stream = %self.identity.key,
            entries = count,
            first = %deleted[0],
            "usage stream entries were trimmed away while pending; their events are lost"
        );
    }

    /// Removes the group's consumers idle past `dead_consumer_idle` that
    /// hold nothing pending (never this one).
    async fn remove_dead_consumers(&mut self) -> Result<(), Halt> {
        let mut invocation = self.scripts.remove_dead.prepare_invoke();
        invocation
            .key(&self.identity.key)
            .arg(&self.identity.group)
            .arg(millis(self.settings.dead_consumer_idle))
            .arg(&self.identity.consumer);
        let removed: Vec<String> = match &mut self.connection {
            Some(connection) => {
                let result = invocation.invoke_async(connection).await;
                if result.is_err() {
                    self.connection = None;
                }
                result?
            }
            None => return Ok(()),
        };
        if !removed.is_empty() {
            let count = u64::try_from(removed.len()).unwrap_or(u64::MAX);
            ConsumerStats::add(&self.stats.consumers_removed, count);
            tracing::info!(
                consumers = ?removed,
                "removed idle consumers without pending entries from the usage group"
            );
        }
        Ok(())
    }

    /// Sets the lag gauges: the group's backlog in entries, and the age of
    /// its oldest entry not yet stored, which is the oldest pending one or
    /// the first one not delivered yet.
    async fn measure_lag(&mut self) -> Result<(), Halt> {
        let mut info = redis::cmd("XINFO");
        info.arg("GROUPS").arg(&self.identity.key);
        let reply = self.query(&info).await?;
        let Some(group) = wire::group_state(reply, &self.identity.group) else {
            return Ok(());
        };
        self.stats.backlog.store(group.backlog, Ordering::Relaxed);
        self.metrics.analytics.lag.set(group.backlog);
        let mut pending = redis::cmd("XPENDING");
        pending.arg(&self.identity.key).arg(&self.identity.group);
        let oldest_pending = wire::oldest_pending(self.query(&pending).await?)?;
        let mut next = redis::cmd("XRANGE");
        next.arg(&self.identity.key)
            .arg(format!("({}", group.last_delivered_id))
            .arg("+")
            .arg("COUNT")
            .arg(1);
        let undelivered = wire::first_id(self.query(&next).await?)?;
        let oldest_ms = [oldest_pending, undelivered]
            .iter()
            .flatten()
            .filter_map(|id| wire::id_time_ms(id))
            .min();
        self.metrics
            .analytics
            .lag_seconds
            .set(lag_seconds(oldest_ms, now_ms()));
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

/// Why an entry was acknowledged without being stored (the `reason` label
/// of `tollgate_usage_events_undecodable_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undecodable {
    /// No payload field: a foreign entry, or one trimmed while pending.
    Missing,
    /// The payload is not a usage event.
    Malformed,
    /// A usage event that fails validation.
    Invalid,
    /// Deleted from the stream while pending (reported by `XAUTOCLAIM`).
    Trimmed,
}

impl Undecodable {
    const fn as_str(self) -> &'static str {
        match self {
            Undecodable::Missing => "missing",
            Undecodable::Malformed => "malformed",
            Undecodable::Invalid => "invalid",
            Undecodable::Trimmed => "trimmed",
        }
    }
}

/// The record in an entry's payload, or why there is none.
fn decode(payload: Option<&[u8]>) -> Result<UsageRecord, Undecodable> {
    let payload = payload.ok_or(Undecodable::Missing)?;
    let event = UsageEvent::decode(payload).map_err(|_| Undecodable::Malformed)?;
    record_from_event(event).map_err(|_| Undecodable::Invalid)
}

/// Seconds from the oldest waiting entry (unix ms) to `now_ms`; 0 when
/// none waits (or its id is from the future).
fn lag_seconds(oldest_ms: Option<i64>, now_ms: i64) -> f64 {
    oldest_ms.map_or(0.0, |oldest| {
        let lag_ms = now_ms.saturating_sub(oldest).max(0);
        // Exact for any lag below 2^53 ms.
        #[allow(clippy::cast_precision_loss)]
        let seconds = lag_ms as f64 / 1000.0;
        seconds
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_waiting_entry() {
        assert!((lag_seconds(Some(1_000), 3_500) - 2.5).abs() < f64::EPSILON);
        assert!(lag_seconds(None, 3_500).abs() < f64::EPSILON);
        assert!(lag_seconds(Some(4_000), 3_500).abs() < f64::EPSILON);
    }

    #[test]
    fn undecodable_payloads_say_why() {
        assert_eq!(decode(None).unwrap_err(), Undecodable::Missing);
        assert_eq!(
            decode(Some(&[0xff, 0xff])).unwrap_err(),
            Undecodable::Malformed
        );
        let no_id = UsageEvent::default().encode_to_vec();
        assert_eq!(decode(Some(&no_id)).unwrap_err(), Undecodable::Invalid);
    }
}
