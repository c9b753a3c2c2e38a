//! The usage sink: batching, flushing on close, surviving an analytics
//! outage, and counting every event it has to drop.

use std::sync::Arc;
use std::time::Duration;

use tollgate_analytics::{SinkSettings, UsageSink};
use tollgate_proto::remote::{RemoteAnalytics, peer};

use crate::helpers::{
    assert_stored_once, event, eventually, query, rows, serve, spawn_app, unused_addr,
};

/// Quick retries, so outages in tests last milliseconds.
fn settings() -> SinkSettings {
    SinkSettings {
        capacity: 10_000,
        max_batch: 64,
        max_delay: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(10),
        retry_backoff_max: Duration::from_millis(50),
        retry_for: Duration::from_secs(10),
        call_timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn every_emitted_event_is_stored_exactly_once() {
    let app = spawn_app().await;
    let (sink, task) = UsageSink::spawn(app.handle(), settings(), app.metrics.clone());
    for n in 0..1_000 {
        sink.emit(event(n));
    }
    sink.close().await;
    task.await.unwrap();

    assert_stored_once(&*app.analytics, 1_000).await;
    assert_eq!(app.metrics.analytics.events_written.get(), 1_000);
    assert_eq!(app.metrics.router.usage_events_dropped.get(), 0);
    // Batched: 1,000 events in at least 16 and far fewer than 1,000 calls.
    let calls = app.store.insert_calls();
    assert!((16..1_000).contains(&calls), "{calls} inserts");
}

#[tokio::test]
async fn a_lone_event_is_delivered_after_the_batch_delay() {
    let app = spawn_app().await;
    let (sink, _task) = UsageSink::spawn(app.handle(), settings(), app.metrics.clone());
    sink.emit(event(7));
    let store = app.store.clone();
    eventually(|| store.insert_calls() == 1).await;
    let stored = rows(&*app.analytics, query("key")).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].group, "key-7");
}

#[tokio::test]
async fn events_survive_a_failing_store() {
    let app = spawn_app().await;
    app.store.fail_next(3);
    let (sink, task) = UsageSink::spawn(app.handle(), settings(), app.metrics.clone());
    for n in 0..200 {
        sink.emit(event(n));
    }
    sink.close().await;
    task.await.unwrap();

    assert_stored_once(&*app.analytics, 200).await;
    assert_eq!(app.metrics.analytics.write_errors.get(), 3);
    assert_eq!(app.metrics.router.usage_events_dropped.get(), 0);
}

#[tokio::test]
async fn events_survive_until_a_remote_analytics_starts_listening() {
    let app = spawn_app().await;
    let addr = unused_addr();
    let remote = Arc::new(RemoteAnalytics::new(peer(&addr.to_string()).unwrap()));
    let (sink, task) = UsageSink::spawn(remote, settings(), app.metrics.clone());
    for n in 0..300 {
        sink.emit(event(n));
    }
    // Let a few deliveries fail against the closed port.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(app.store.insert_calls(), 0);

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = serve(listener, app.grpc.clone());
    sink.close().await;
    task.await.unwrap();

    assert_stored_once(&*app.analytics, 300).await;
    assert_eq!(app.metrics.router.usage_events_dropped.get(), 0);
    server.abort();
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_new_events() {
    let app = spawn_app().await;
    app.store.fail_next(u64::MAX);
    let tight = SinkSettings {
        capacity: 10,
        max_batch: 1,
        ..settings()
    };
    let (sink, task) = UsageSink::spawn(app.handle(), tight, app.metrics.clone());
    // The first event is taken off the queue and retried while the store is down...
    sink.emit(event(0));
    let store = app.store.clone();
    eventually(|| store.insert_calls() >= 1).await;
    // ...so ten more fill the queue and the next five are dropped.
    for n in 1..16 {
        sink.emit(event(n));
    }
    assert_eq!(app.metrics.router.usage_events_dropped.get(), 5);

    app.store.fail_next(0);
    sink.close().await;
    task.await.unwrap();
    assert_stored_once(&*app.analytics, 11).await;
    assert_eq!(app.metrics.router.usage_events_dropped.get(), 5);
}

#[tokio::test]
async fn batches_are_dropped_and_counted_when_retries_run_out() {
    let app = spawn_app().await;
    app.store.fail_next(u64::MAX);
    let impatient = SinkSettings {
        max_batch: 1,
        retry_for: Duration::from_millis(300),
        ..settings()
    };
    let (sink, task) = UsageSink::spawn(app.handle(), impatient, app.metrics.clone());
    for n in 0..20 {
        sink.emit(event(n));
    }
    // Twenty failing batches, each alone retried for 300 ms, would take 6 s;
    // after close they share one budget.
    let started = std::time::Instant::now();
    sink.close().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "close took {took:?}");
    task.await.unwrap();

    assert_eq!(app.metrics.router.usage_events_dropped.get(), 20);
    assert!(
        app.store.insert_calls() >= 21,
        "the first batch was retried"
    );
    app.store.fail_next(0);
    assert!(rows(&*app.analytics, query("key")).await.is_empty());
}

#[tokio::test]
async fn invalid_and_late_events_are_counted_as_dropped() {
    let app = spawn_app().await;
    let (sink, task) = UsageSink::spawn(app.handle(), settings(), app.metrics.clone());
    let mut nameless = event(1);
    nameless.request_id.clear();
    sink.emit(event(0));
    sink.emit(nameless);
    sink.close().await;
    sink.emit(event(2));
    // Closing twice is harmless.
    sink.close().await;
    task.await.unwrap();

    assert_stored_once(&*app.analytics, 1).await;
    assert_eq!(app.metrics.router.usage_events_dropped.get(), 2);
}
