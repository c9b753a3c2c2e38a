//! Usage events through a real Redis Stream (127.0.0.1:6379): the stream
//! sink appends, stream consumers store into SQLite exactly once, through
//! redelivery, dead consumers, undecodable entries and Redis outages. Each
//! test uses its own key prefix and deletes its keys at the end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use prost::Message;
use redis::aio::MultiplexedConnection;
use tokio::net::TcpListener;
use tollgate_analytics::stream::{PAYLOAD_FIELD, stream_key};
use tollgate_analytics::{
    ConsumerSettings, StreamConsumer, StreamSink, StreamSinkSettings, record_from_event,
};
use tollgate_telemetry::ReasonLabels;
use tollgate_usage_store::UsageStore;

use crate::helpers::{TestApp, assert_stored_once, event, spawn_app, unused_addr};

const REDIS: &str = "redis://127.0.0.1:6379";
const GROUP: &str = "analytics";

/// A fresh key prefix whose keys are deleted when the test ends.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        Prefix(format!("tgtest:stream:{}:", uuid::Uuid::now_v7().simple()))
    }

    fn key(&self) -> String {
        stream_key(&self.0)
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(REDIS) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(self.key()).query(&mut connection);
    }
}

async fn redis() -> MultiplexedConnection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn sink_settings() -> StreamSinkSettings {
    StreamSinkSettings {
        max_batch: 64,
        max_delay: Duration::from_millis(5),
        retry_backoff: Duration::from_millis(10),
        retry_backoff_max: Duration::from_millis(100),
        close_retry_for: Duration::from_secs(5),
        connect_timeout: Duration::from_millis(500),
        ..StreamSinkSettings::default()
    }
}

fn consumer_settings() -> ConsumerSettings {
    ConsumerSettings {
        batch: 50,
        block: Duration::from_millis(100),
        retry_backoff: Duration::from_millis(10),
        retry_backoff_max: Duration::from_millis(100),
        lag_every: Duration::from_millis(50),
        ..ConsumerSettings::default()
    }
}

fn spawn_consumer(
    prefix: &Prefix,
    name: &str,
    app: &TestApp,
    settings: ConsumerSettings,
) -> StreamConsumer {
    let (consumer, _task) = StreamConsumer::spawn(
        REDIS,
        &prefix.0,
        GROUP,
        name,
        app.store.clone(),
        app.metrics.clone(),
        settings,
    )
    .unwrap();
    consumer
}

/// Waits until `condition` holds (at most 10 s).
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Entries of the group delivered and not acknowledged.
async fn pending(prefix: &Prefix) -> u64 {
    let reply: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(prefix.key())
        .arg(GROUP)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    match reply.first() {
        Some(redis::Value::Int(count)) => u64::try_from(*count).unwrap(),
        other => panic!("XPENDING answered {other:?}"),
    }
}

/// Appends events `0..n` directly, as the sink would.
async fn append(prefix: &Prefix, n: usize) {
    let mut connection = redis().await;
    for i in 0..n {
        let _: String = redis::cmd("XADD")
            .arg(prefix.key())
            .arg("*")
            .arg(PAYLOAD_FIELD)
            .arg(event(i).encode_to_vec())
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

/// Creates the group and reads every entry as `consumer` without
/// acknowledging: what a consumer that died mid-batch leaves behind.
async fn read_without_ack(prefix: &Prefix, consumer: &str) -> Vec<Vec<u8>> {
    let mut connection = redis().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(prefix.key())
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut connection)
        .await
        .unwrap();
    type Reply = Vec<(String, Vec<(String, Vec<(String, Vec<u8>)>)>)>;
    let reply: Reply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("STREAMS")
        .arg(prefix.key())
        .arg(">")
        .query_async(&mut connection)
        .await
        .unwrap();
    reply
        .into_iter()
        .flat_map(|(_key, entries)| entries)
        .map(|(_id, mut fields)| fields.pop().unwrap().1)
        .collect()
}

#[tokio::test]
async fn every_event_goes_through_the_stream_into_the_store_once() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let (sink, task) =
        StreamSink::spawn(REDIS, &prefix.0, sink_settings(), app.metrics.clone()).unwrap();
    for n in 0..500 {
        sink.emit(event(n));
    }
    sink.close().await;
    task.await.unwrap();
    let stats = consumer.stats();
    until("all written", || {
        stats.written.load(Ordering::SeqCst) == 500
    })
    .await;
    until("all acknowledged", || {
        stats.acknowledged.load(Ordering::SeqCst) == 500
    })
    .await;
    consumer.shutdown().await;

    assert_stored_once(&*app.analytics, 500).await;
    assert_eq!(stats.duplicates.load(Ordering::SeqCst), 0);
    assert_eq!(app.metrics.router.usage_events_dropped.get(), 0);
    assert_eq!(app.metrics.analytics.events_written.get(), 500);
    assert_eq!(pending(&prefix).await, 0);
}

#[tokio::test]
async fn a_consumer_rereads_its_own_unacknowledged_entries_and_counts_them_once() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    append(&prefix, 20).await;
    // The first life of "c1": it read and stored everything, then died
    // before acknowledging.
    let payloads = read_without_ack(&prefix, "c1").await;
    assert_eq!(payloads.len(), 20);
    let records: Vec<_> = payloads
        .iter()
        .map(|bytes| {
            record_from_event(tollgate_proto::v1::UsageEvent::decode(&bytes[..]).unwrap()).unwrap()
        })
        .collect();
    app.store.insert_batch(&records).await.unwrap();
    assert_eq!(pending(&prefix).await, 20);

    // Its second life, under the same name, starts from its pending entries.
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let stats = consumer.stats();
    until("redelivered entries acknowledged", || {
        stats.acknowledged.load(Ordering::SeqCst) == 20
    })
    .await;
    consumer.shutdown().await;

    assert_eq!(stats.duplicates.load(Ordering::SeqCst), 20);
    assert_eq!(stats.written.load(Ordering::SeqCst), 0);
    assert_eq!(pending(&prefix).await, 0);
    assert_stored_once(&*app.analytics, 20).await;
}

#[tokio::test]
async fn a_live_consumer_claims_what_a_dead_one_left_pending() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    append(&prefix, 30).await;
    assert_eq!(read_without_ack(&prefix, "dead").await.len(), 30);

    let settings = ConsumerSettings {
        claim_idle: Duration::from_millis(300),
        claim_every: Duration::from_millis(100),
        ..consumer_settings()
    };
    let consumer = spawn_consumer(&prefix, "alive", &app, settings);
    let stats = consumer.stats();
    until("claimed entries written", || {
        stats.written.load(Ordering::SeqCst) == 30
    })
    .await;
    until("claimed entries acknowledged", || {
        stats.acknowledged.load(Ordering::SeqCst) == 30
    })
    .await;
    consumer.shutdown().await;

    assert_eq!(stats.claimed.load(Ordering::SeqCst), 30);
    assert_eq!(pending(&prefix).await, 0);
    assert_stored_once(&*app.analytics, 30).await;
}

#[tokio::test]
async fn a_failing_store_is_retried_and_nothing_is_acknowledged_before_it_succeeds() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    app.store.fail_next(3);
    append(&prefix, 10).await;
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let stats = consumer.stats();
    until("written after failures", || {
        stats.written.load(Ordering::SeqCst) == 10
    })
    .await;
    until("acknowledged", || {
        stats.acknowledged.load(Ordering::SeqCst) == 10
    })
    .await;
    consumer.shutdown().await;

    assert!(app.store.insert_calls() >= 4);
    assert_eq!(app.metrics.analytics.write_errors.get(), 3);
    assert_eq!(pending(&prefix).await, 0);
    assert_stored_once(&*app.analytics, 10).await;
}

#[tokio::test]
async fn undecodable_entries_are_acknowledged_and_counted() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    let mut connection = redis().await;
    for (field, value) in [
        (PAYLOAD_FIELD, vec![0xff, 0xff, 0xff]),
        ("other", b"x".to_vec()),
        (PAYLOAD_FIELD, event(0).encode_to_vec()),
    ] {
        let _: String = redis::cmd("XADD")
            .arg(prefix.key())
            .arg("*")
            .arg(field)
            .arg(value)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let stats = consumer.stats();
    until("all acknowledged", || {
        stats.acknowledged.load(Ordering::SeqCst) == 3
    })
    .await;
    consumer.shutdown().await;

    assert_eq!(stats.undecodable.load(Ordering::SeqCst), 2);
    assert_eq!(stats.written.load(Ordering::SeqCst), 1);
    assert_eq!(undecodable(&app, "malformed"), 1);
    assert_eq!(undecodable(&app, "missing"), 1);
    assert_eq!(pending(&prefix).await, 0);
    assert_stored_once(&*app.analytics, 1).await;
}

fn undecodable(app: &TestApp, reason: &str) -> u64 {
    app.metrics
        .analytics
        .undecodable
        .get_or_create(&ReasonLabels {
            reason: reason.to_owned(),
        })
        .get()
}

#[tokio::test]
async fn entries_trimmed_while_pending_are_counted_as_lost() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    append(&prefix, 3).await;
    assert_eq!(read_without_ack(&prefix, "dead").await.len(), 3);
    let _: u64 = redis::cmd("XTRIM")
        .arg(prefix.key())
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    let settings = ConsumerSettings {
        claim_idle: Duration::from_millis(50),
        claim_every: Duration::from_millis(50),
        ..consumer_settings()
    };
    let consumer = spawn_consumer(&prefix, "c1", &app, settings);
    until("the trimmed entries counted", || {
        undecodable(&app, "trimmed") == 3
    })
    .await;
    consumer.shutdown().await;
    assert_eq!(consumer.stats().undecodable.load(Ordering::SeqCst), 3);
    assert_eq!(pending(&prefix).await, 0);
}

#[tokio::test]
async fn the_sink_keeps_events_until_redis_becomes_reachable() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    // Nothing listens here yet: every append fails and is retried.
    let address = unused_addr();
    let url = format!("redis://{address}");
    let (sink, task) =
        StreamSink::spawn(&url, &prefix.0, sink_settings(), app.metrics.clone()).unwrap();
    for n in 0..100 {
        sink.emit(event(n));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Redis "comes back": a proxy to the real server on that address.
    let listener = TcpListener::bind(address).await.unwrap();
    let proxy = tokio::spawn(async move {
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect("127.0.0.1:6379")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let stats = consumer.stats();
    until("all written", || {
        stats.written.load(Ordering::SeqCst) == 100
    })
    .await;
    sink.close().await;
    task.await.unwrap();
    consumer.shutdown().await;
    proxy.abort();

    assert_eq!(app.metrics.router.usage_events_dropped.get(), 0);
    assert_stored_once(&*app.analytics, 100).await;
}

#[tokio::test]
async fn the_sink_counts_what_it_cannot_keep_while_redis_is_unreachable() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    let url = format!("redis://{}", unused_addr());
    let settings = StreamSinkSettings {
        capacity: 10,
        max_batch: 5,
        close_retry_for: Duration::from_millis(200),
        ..sink_settings()
    };
    let (sink, task) = StreamSink::spawn(&url, &prefix.0, settings, app.metrics.clone()).unwrap();
    for n in 0..50 {
        sink.emit(event(n));
    }
    let dropped = &app.metrics.router.usage_events_dropped;
    // At most one batch in hand plus a full queue is kept.
    assert!(dropped.get() >= 35, "only {} dropped", dropped.get());
    sink.close().await;
    task.await.unwrap();
    // Nothing was delivered, and every event is accounted for as dropped.
    assert_eq!(dropped.get(), 50);
    sink.emit(event(99));
    assert_eq!(dropped.get(), 51);
    let length: u64 = redis::cmd("XLEN")
        .arg(prefix.key())
        .query_async(&mut redis().await)
        .await
        .unwrap();
    assert_eq!(length, 0);
}

#[tokio::test]
async fn the_lag_gauge_shows_the_backlog_of_the_group() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    append(&prefix, 7).await;
    assert_eq!(read_without_ack(&prefix, "dead").await.len(), 7);
    append(&prefix, 3).await;
    // "dead" keeps 7 pending (the idle threshold is far off, so nobody
    // claims them); c1 reads and stores the 3 new ones.
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let stats = consumer.stats();
    until("backlog measured after the new entries", || {
        stats.acknowledged.load(Ordering::SeqCst) == 3 && stats.backlog.load(Ordering::SeqCst) == 7
    })
    .await;
    consumer.shutdown().await;
    assert_eq!(app.metrics.analytics.lag.get(), 7);
}

#[tokio::test]
async fn the_lag_in_seconds_is_the_age_of_the_oldest_waiting_entry() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    // An entry added ten minutes ago (its id says when), left pending by a
    // consumer that died, and a fresh one.
    let ten_minutes_ago = tollgate_core::clock::now_ms() - 600_000;
    let _: String = redis::cmd("XADD")
        .arg(prefix.key())
        .arg(format!("{ten_minutes_ago}-0"))
        .arg(PAYLOAD_FIELD)
        .arg(event(0).encode_to_vec())
        .query_async(&mut redis().await)
        .await
        .unwrap();
    assert_eq!(read_without_ack(&prefix, "dead").await.len(), 1);
    append(&prefix, 1).await;
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let stats = consumer.stats();
    let lag = &app.metrics.analytics.lag_seconds;
    until("lag measured after the fresh entry was stored", || {
        stats.acknowledged.load(Ordering::SeqCst) == 1
            && app.metrics.analytics.lag.get() == 1
            && lag.get() >= 600.0
    })
    .await;
    consumer.shutdown().await;
    assert!(lag.get() < 660.0, "lag {} s", lag.get());
}

#[tokio::test]
async fn the_lag_gauges_are_measured_while_the_store_is_down() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    app.store.fail_next(u64::MAX);
    let ten_minutes_ago = tollgate_core::clock::now_ms() - 600_000;
    let _: String = redis::cmd("XADD")
        .arg(prefix.key())
        .arg(format!("{ten_minutes_ago}-0"))
        .arg(PAYLOAD_FIELD)
        .arg(event(0).encode_to_vec())
        .query_async(&mut redis().await)
        .await
        .unwrap();
    let consumer = spawn_consumer(&prefix, "c1", &app, consumer_settings());
    let stats = consumer.stats();
    let analytics = &app.metrics.analytics;
    // The entry is in hand (pending) while every write fails.
    until("lag measured during the outage", || {
        analytics.write_errors.get() >= 3
            && analytics.lag.get() == 1
            && analytics.lag_seconds.get() >= 600.0
    })
    .await;
    assert_eq!(stats.written.load(Ordering::SeqCst), 0);
    app.store.fail_next(0);
    until("drained", || {
        stats.acknowledged.load(Ordering::SeqCst) == 1
            && analytics.lag.get() == 0
            && analytics.lag_seconds.get() == 0.0
    })
    .await;
    consumer.shutdown().await;
    assert_stored_once(&*app.analytics, 1).await;
}

/// Names of the group's consumers.
async fn consumers(prefix: &Prefix) -> Vec<String> {
    let reply: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(prefix.key())
        .arg(GROUP)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    let mut names: Vec<String> = reply
        .into_iter()
        .map(|fields| match &fields[..] {
            [
                redis::Value::BulkString(key),
                redis::Value::BulkString(name),
                ..,
            ] if key == b"name" => String::from_utf8(name.clone()).unwrap(),
            other => panic!("XINFO CONSUMERS answered {other:?}"),
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn idle_consumers_without_pending_entries_are_removed() {
    let prefix = Prefix::new();
    let app = spawn_app().await;
    append(&prefix, 2).await;
    assert_eq!(read_without_ack(&prefix, "gone-holding").await.len(), 2);
    let _: u64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(prefix.key())
        .arg(GROUP)
        .arg("gone-empty")
        .query_async(&mut redis().await)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settings = ConsumerSettings {
        // Nobody's entries are old enough to claim: "gone-holding" keeps
        // its two, and with them its place in the group.
        claim_idle: Duration::from_secs(3_600),
        claim_every: Duration::from_millis(50),
        dead_consumer_idle: Duration::from_millis(200),
        ..consumer_settings()
    };
    let consumer = spawn_consumer(&prefix, "c1", &app, settings);
    let stats = consumer.stats();
    until("the idle consumer removed", || {
        stats.consumers_removed.load(Ordering::SeqCst) == 1
    })
    .await;
    // c1 itself reads every 100 ms, so it never looks dead to itself or
    // to anyone else.
    tokio::time::sleep(Duration::from_millis(400)).await;
    consumer.shutdown().await;
    assert_eq!(stats.consumers_removed.load(Ordering::SeqCst), 1);
    assert_eq!(consumers(&prefix).await, ["c1", "gone-holding"]);
    assert_eq!(pending(&prefix).await, 2);
}
