//! Retention on a schedule: usage older than the configured number of days
//! is deleted (raw events and rollup hours alike) at start and then every
//! `every`, by each analytics process. Replicas may run it at the same
//! time: dropping a partition is serialised by the store and deleting what
//! is already gone does nothing.

use std::sync::Arc;
use std::time::Duration;

use tollgate_core::clock::Clock;
use tollgate_usage_store::{RetentionOutcome, UsageError, UsageStore, retention_cutoff_ms};

/// How long usage is kept and how often that is enforced.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Full UTC days kept before today (today is always kept); 0 keeps
    /// everything.
    pub days: u32,
    /// Time between two runs.
    pub every: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            days: 90,
            every: Duration::from_secs(3_600),
        }
    }
}

/// One retention pass at `now_ms`: deletes the usage of the days before
/// the `days` kept. `None` when retention is off (`days == 0`).
pub async fn apply_retention(
    store: &dyn UsageStore,
    days: u32,
    now_ms: i64,
) -> Result<Option<RetentionOutcome>, UsageError> {
    let Some(cutoff_ms) = retention_cutoff_ms(days, now_ms) else {
        return Ok(None);
    };
    store.delete_before(cutoff_ms).await.map(Some)
}

/// Runs [`apply_retention`] now and then every `settings.every`, reading
/// the time from `clock`, until the future is dropped. A failed pass is
/// logged and retried at the next one. Returns at once when retention is
/// off.
pub async fn run_retention(
    store: Arc<dyn UsageStore>,
    settings: RetentionSettings,
    clock: Arc<dyn Clock>,
) {
    if settings.days == 0 {
        tracing::info!("usage retention is off: usage is kept forever");
        return;
    }
    let mut ticks = tokio::time::interval(settings.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match apply_retention(store.as_ref(), settings.days, clock.now_ms()).await {
            Ok(Some(outcome)) if outcome != RetentionOutcome::default() => tracing::info!(
                days = settings.days,
                partitions_dropped = outcome.partitions_dropped,
                rows_deleted = outcome.rows_deleted,
                rollup_rows_deleted = outcome.rollup_rows_deleted,
                "deleted usage past retention"
            ),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "usage retention failed; retrying at the next run")
            }
        }
    }
}
