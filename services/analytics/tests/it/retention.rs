//! Retention on a schedule, driven by a manual clock: usage older than the
//! kept days disappears at start and at each later run as days pass, also
//! in a built app until its shutdown.

use std::sync::Arc;
use std::time::Duration;

use tollgate_analytics::{AnalyticsSettings, RetentionSettings, apply_retention, run_retention};
use tollgate_core::clock::{MS_PER_DAY, ManualClock};
use tollgate_shutdown::Shutdown;
use tollgate_usage_store::{RetentionOutcome, UsageStore};

use crate::helpers::{T0, event, spawn_app};
use tollgate_analytics::record_from_event;

/// Requests per day since `T0 - 5 days`, one a day.
async fn fill(store: &dyn UsageStore) {
    let records: Vec<_> = (0..6)
        .map(|n| {
            let mut event = event(n);
            event.started_at_ms = T0 - 5 * MS_PER_DAY + i64::try_from(n).unwrap() * MS_PER_DAY;
            record_from_event(event).unwrap()
        })
        .collect();
    store.insert_batch(&records).await.unwrap();
}

async fn days_left(store: &dyn UsageStore) -> u64 {
    store
        .tokens_by_account_since(0)
        .await
        .unwrap()
        .iter()
        .map(|(_, tokens)| *tokens)
        .sum::<u64>()
        / tokens_per_event()
}

fn tokens_per_event() -> u64 {
    let event = event(0);
    u64::from(event.prompt_tokens + event.completion_tokens)
}

#[tokio::test]
async fn retention_runs_at_start_and_again_as_days_pass() {
    let app = spawn_app().await;
    fill(app.store.as_ref()).await;
    assert_eq!(days_left(app.store.as_ref()).await, 6);
    let clock = ManualClock::at(T0 + MS_PER_DAY / 2);
    let settings = RetentionSettings {
        days: 2,
        every: Duration::from_millis(20),
    };
    let store: Arc<dyn UsageStore> = app.store.clone();
    let task = tokio::spawn(run_retention(store, settings, Arc::new(clock.clone())));

    // Today and the two days before it are kept.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while days_left(app.store.as_ref()).await != 3 {
        assert!(tokio::time::Instant::now() < deadline, "never trimmed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    clock.advance(MS_PER_DAY);
    while days_left(app.store.as_ref()).await != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the next day never trimmed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
}

#[tokio::test]
async fn zero_days_keeps_everything() {
    let app = spawn_app().await;
    fill(app.store.as_ref()).await;
    let far_future = T0 + 1_000 * MS_PER_DAY;
    assert_eq!(
        apply_retention(app.store.as_ref(), 0, far_future)
            .await
            .unwrap(),
        None
    );
    let off = RetentionSettings {
        days: 0,
        ..RetentionSettings::default()
    };
    // Returns at once instead of running for ever.
    run_retention(
        app.store.clone(),
        off,
        Arc::new(ManualClock::at(far_future)),
    )
    .await;
    assert_eq!(days_left(app.store.as_ref()).await, 6);
    let outcome = apply_retention(app.store.as_ref(), 1, far_future)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (outcome.rows_deleted, outcome.partitions_dropped),
        (6, 0),
        "{outcome:?}"
    );
    assert_ne!(outcome, RetentionOutcome::default());
    assert_eq!(days_left(app.store.as_ref()).await, 0);
}

#[tokio::test]
async fn a_built_app_trims_until_shutdown_and_then_returns() {
    let app = spawn_app().await;
    fill(app.store.as_ref()).await;
    let settings = AnalyticsSettings {
        retention: RetentionSettings {
            days: 2,
            every: Duration::from_millis(20),
        },
        ..AnalyticsSettings::default()
    };
    let deps = tollgate_analytics::Deps {
        store: app.store.clone(),
        metrics: app.metrics.clone(),
        clock: Arc::new(ManualClock::at(T0 + MS_PER_DAY / 2)),
        stream: None,
    };
    let built = tollgate_analytics::build(settings, deps).unwrap();
    let shutdown = Shutdown::new(Duration::ZERO);
    let running = tokio::spawn(built.run_until(shutdown.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while days_left(app.store.as_ref()).await != 3 {
        assert!(tokio::time::Instant::now() < deadline, "never trimmed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("retention did not stop at shutdown")
        .unwrap()
        .unwrap();
}
