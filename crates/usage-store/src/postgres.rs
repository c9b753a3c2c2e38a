//! The cluster usage store: `usage_events` in Postgres, partitioned by the
//! UTC day each request started, so retention drops whole days, and its
//! hourly rollup `usage_hourly`, which retention trims to the same days.

mod insert;
mod partition;
mod partition_ddl;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};

use super::rollup::{Span, plan_range};
use super::{
    Bucket, GroupBy, InsertOutcome, RetentionOutcome, UsageError, UsageFilter, UsageRecord,
    UsageRow, UsageStore, first_of_each_request,
};
use partition::DayPartition;

/// The Postgres usage schema's migrations (`migrations/usage_postgres`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/usage_postgres");

/// Connections [`PgUsageStore::connect`] opens at most.
const MAX_CONNECTIONS: u32 = 8;
/// How long a statement waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// [`UsageStore`] on Postgres.
///
/// Before a batch is inserted, the partitions of the days it touches are
/// created if this store has not seen them yet. Cloning shares the pool and
/// that memory.
#[derive(Debug, Clone)]
pub struct PgUsageStore {
    pool: PgPool,
    /// UTC days whose partition this store created or found.
    known_days: Arc<Mutex<HashSet<i64>>>,
}

impl PgUsageStore {
    /// Connects to the database at `url` (`postgres://…`) and brings its
    /// usage schema up to date.
    pub async fn connect(url: &str) -> Result<Self, UsageError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        Self::from_pool(pool).await
    }

    /// Uses an open pool (configured by the caller, possibly shared), bringing
    /// its usage schema up to date.
    pub async fn from_pool(pool: PgPool) -> Result<Self, UsageError> {
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            known_days: Arc::default(),
        })
    }

    /// Drops every day partition whose whole day lies before `cutoff_ms`
    /// (unix ms), and deletes the rows without a day partition that started
    /// before it. The hourly rollup is kept (see
    /// [`UsageStore::delete_before`] for retention of both).
    pub async fn drop_partitions_before(
        &self,
        cutoff_ms: i64,
    ) -> Result<RetentionOutcome, UsageError> {
        let outcome = partition_ddl::drop_partitions_before(&self.pool, cutoff_ms).await?;
        self.known()
            .retain(|&day| DayPartition::for_day(day).is_some_and(|p| p.end_ms() > cutoff_ms));
        Ok(outcome)
    }

    /// Closes the pool, waiting for running statements.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        // The set is only a cache of what exists; a panic elsewhere cannot
        // leave it wrong, only incomplete.
        self.known_days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the partitions of the days `records` touch that this store has
    /// not seen yet.
    async fn ensure_partitions(&self, records: &[&UsageRecord]) -> Result<(), sqlx::Error> {
        let needed: BTreeSet<DayPartition> = records
            .iter()
            .filter_map(|record| DayPartition::containing(record.started_at_ms))
            .collect();
        let missing: Vec<DayPartition> = {
            let known = self.known();
            needed
                .into_iter()
                .filter(|partition| !known.contains(&partition.day()))
                .collect()
        };
        for partition in missing {
            partition_ddl::create_partition(&self.pool, partition).await?;
            self.known().insert(partition.day());
        }
        Ok(())
    }
}

/// The column a grouping reads. Only these fixed strings reach the SQL text.
const fn group_column(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Key => "key_id",
        GroupBy::Account => "account_id",
        GroupBy::Model => "requested_model",
        GroupBy::Profile => "profile",
        GroupBy::Provider => "provider",
    }
}

/// The expression for a part's bucket start from its time `at_ms` (floored,
/// also before 1970).
const fn bucket_expression(bucket: Option<Bucket>) -> &'static str {
    match bucket {
        None => "0::BIGINT",
        Some(Bucket::Hour) => "at_ms - ((at_ms % 3600000) + 3600000) % 3600000",
        Some(Bucket::Day) => "at_ms - ((at_ms % 86400000) + 86400000) % 86400000",
    }
}

/// One part of a usage query: the rollup's whole hours or raw events, in the
/// same columns (`at_ms` is the hour start or the request start).
fn push_part(
    select: &mut QueryBuilder<'_, Postgres>,
    filter: &UsageFilter,
    from_rollup: bool,
    span: Span,
) {
    let (time, source) = if from_rollup {
        (
            "hour_start_ms",
            " AS at_ms, requests, errors, unpriced_requests, cost_micro_usd",
        )
    } else {
        (
            "started_at_ms",
            " AS at_ms, 1::BIGINT AS requests, \
             (CASE WHEN status >= 400 THEN 1 ELSE 0 END)::BIGINT AS errors, \
             (CASE WHEN priced THEN 0 ELSE 1 END)::BIGINT AS unpriced_requests, cost_micro_usd",
        )
    };
    select
        .push("SELECT ")
        .push(group_column(filter.group_by))
        .push(" AS grp, ")
        .push(time)
        .push(source);
    for column in super::TOKEN_COLUMNS {
        select.push(", ").push(column);
    }
    select.push(if from_rollup {
        " FROM usage_hourly WHERE TRUE"
    } else {
        " FROM usage_events WHERE TRUE"
    });
    if let Some(from_ms) = span.from_ms {
        select
            .push(" AND ")
            .push(time)
            .push(" >= ")
            .push_bind(from_ms);
    }
    if let Some(to_ms) = span.to_ms {
        select.push(" AND ").push(time).push(" < ").push_bind(to_ms);
    }
    if let Some(account_id) = &filter.account_id {
        select
            .push(" AND account_id = ")
            .push_bind(account_id.clone());
    }
}

#[async_trait]
impl UsageStore for PgUsageStore {
    async fn insert_batch(&self, records: &[UsageRecord]) -> Result<InsertOutcome, UsageError> {
        if records.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let unique = first_of_each_request(records);
        self.ensure_partitions(&unique).await?;
        let mut tx = self.pool.begin().await?;
        let written = insert::insert_new(&mut tx, &unique).await?;
        tx.commit().await?;
        let total = u64::try_from(records.len()).unwrap_or(u64::MAX);
        Ok(InsertOutcome {
            written,
            duplicates: total.saturating_sub(written),
        })
    }

    async fn query(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, UsageError> {
        // Whole hours from the rollup, partial ones from the raw events. SUM
        // over BIGINT is NUMERIC in Postgres: cast back.
        let plan = plan_range(filter.from_ms, filter.to_ms);
        let mut select = QueryBuilder::<Postgres>::new("SELECT grp, ");
        select.push(bucket_expression(filter.bucket)).push(
            " AS bucket_start_ms, SUM(requests)::BIGINT AS requests, \
                 SUM(errors)::BIGINT AS errors, \
                 SUM(unpriced_requests)::BIGINT AS unpriced_requests, \
                 SUM(cost_micro_usd)::BIGINT AS cost_micro_usd",
        );
        for column in super::TOKEN_COLUMNS {
            select
                .push(", SUM(")
                .push(column)
                .push(")::BIGINT AS ")
                .push(column);
        }
        select.push(" FROM (");
        let parts = plan
            .rollup
            .map(|span| (true, span))
            .into_iter()
            .chain(plan.raw.into_iter().map(|span| (false, span)));
        for (index, (from_rollup, span)) in parts.enumerate() {
            if index > 0 {
                select.push(" UNION ALL ");
            }
            push_part(&mut select, filter, from_rollup, span);
        }
        select.push(") AS parts GROUP BY grp, bucket_start_ms ORDER BY bucket_start_ms, grp");
        let rows = select.build().fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(super::usage_row)
            .collect::<Result<_, _>>()?)
    }

    async fn tokens_by_account_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, u64)>, UsageError> {
        let rows = sqlx::query(
            "SELECT account_id, SUM(prompt_tokens + completion_tokens)::BIGINT AS tokens \
             FROM usage_events WHERE account_id <> '' AND started_at_ms >= $1 \
             GROUP BY account_id ORDER BY account_id",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("account_id")?, super::count(row, "tokens")?)))
            .collect()
    }

    async fn delete_before(&self, cutoff_ms: i64) -> Result<RetentionOutcome, UsageError> {
        let mut outcome = self.drop_partitions_before(cutoff_ms).await?;
        outcome.rollup_rows_deleted =
            sqlx::query("DELETE FROM usage_hourly WHERE hour_start_ms <= $1")
                .bind(super::last_expired_hour(cutoff_ms))
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(outcome)
    }
}
