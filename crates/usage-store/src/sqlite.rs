//! The embedded usage store: one SQLite file (`usage.db`) holding the raw
//! events and their hourly rollup.

use std::path::Path;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rollup::{HourlyRollup, Span, plan_range};
use super::{
    Bucket, GroupBy, InsertOutcome, RetentionOutcome, UsageError, UsageFilter, UsageRecord,
    UsageRow, UsageStore, first_of_each_request,
};

/// The usage schema's migrations (`migrations/usage`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/usage");

/// Rows per INSERT statement: 23 bound parameters each keeps a statement far
/// below SQLite's (and Postgres') parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

const INSERT_HEAD: &str = "INSERT INTO usage_events (request_id, started_at_ms, finished_at_ms, \
     key_id, profile, account_id, provider, requested_model, upstream_model, prompt_tokens, \
     completion_tokens, cached_tokens, cache_write_5m_tokens, cache_write_1h_tokens, \
     reasoning_tokens, cost_micro_usd, priced, latency_ms, ttft_ms, status, error_code, attempts, \
     streamed) ";

const ROLLUP_HEAD: &str = "INSERT INTO usage_hourly (hour_start_ms, key_id, account_id, \
     profile, provider, requested_model, requests, errors, prompt_tokens, completion_tokens, \
     cached_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, \
     cost_micro_usd, unpriced_requests) ";

const ROLLUP_TAIL: &str = " ON CONFLICT (hour_start_ms, key_id, account_id, profile, provider, \
     requested_model) DO UPDATE SET requests = requests + excluded.requests, \
     errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
     completion_tokens = completion_tokens + excluded.completion_tokens, \
     cached_tokens = cached_tokens + excluded.cached_tokens, \
     cache_write_5m_tokens = cache_write_5m_tokens + excluded.cache_write_5m_tokens, \
     cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens, \
     reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, \
     cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd, \
     unpriced_requests = unpriced_requests + excluded.unpriced_requests";

/// [`super::UsageStore`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteUsageStore {
    pool: SqlitePool,
}

impl SqliteUsageStore {
    /// Opens (creating if needed) the SQLite file at `path` with the shared
    /// settings of [`tollgate_store_support::sqlite::open`] and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self, UsageError> {
        let pool = tollgate_store_support::sqlite::open(path, &MIGRATOR).await?;
        Ok(Self { pool })
    }

    /// Uses an open pool, bringing its schema up to date.
    pub async fn new(pool: SqlitePool) -> Result<Self, UsageError> {
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool, waiting for running statements.
    pub async fn close(&self) {
        self.pool.close().await;
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
        None => "0",
        Some(Bucket::Hour) => "at_ms - ((at_ms % 3600000) + 3600000) % 3600000",
        Some(Bucket::Day) => "at_ms - ((at_ms % 86400000) + 86400000) % 86400000",
    }
}

/// One part of a usage query: the rollup's whole hours or raw events, in the
/// same columns (`at_ms` is the hour start or the request start).
fn push_part(
    select: &mut QueryBuilder<'_, Sqlite>,
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
            " AS at_ms, 1 AS requests, CASE WHEN status >= 400 THEN 1 ELSE 0 END AS errors, \
             CASE WHEN priced THEN 0 ELSE 1 END AS unpriced_requests, cost_micro_usd",
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
        " FROM usage_hourly WHERE 1 = 1"
    } else {
        " FROM usage_events WHERE 1 = 1"
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

/// Adds the rollup increments of one batch (inside its transaction).
async fn upsert_rollup(
    conn: &mut SqliteConnection,
    rollup: &HourlyRollup<'_>,
) -> Result<(), sqlx::Error> {
    for chunk in rollup.rows().chunks(ROWS_PER_STATEMENT) {
        let mut upsert = QueryBuilder::<Sqlite>::new(ROLLUP_HEAD);
        upsert.push_values(chunk, |mut row, (key, totals)| {
            row.push_bind(key.hour_start_ms)
                .push_bind(key.key_id)
                .push_bind(key.account_id)
                .push_bind(key.profile)
                .push_bind(key.provider)
                .push_bind(key.requested_model)
                .push_bind(totals.requests)
                .push_bind(totals.errors)
                .push_bind(totals.prompt_tokens)
                .push_bind(totals.completion_tokens)
                .push_bind(totals.cached_tokens)
                .push_bind(totals.cache_write_5m_tokens)
                .push_bind(totals.cache_write_1h_tokens)
                .push_bind(totals.reasoning_tokens)
                .push_bind(totals.cost_micro_usd)
                .push_bind(totals.unpriced_requests);
        });
        upsert.push(ROLLUP_TAIL);
        upsert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl UsageStore for SqliteUsageStore {
    async fn insert_batch(&self, records: &[UsageRecord]) -> Result<InsertOutcome, UsageError> {
        if records.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let unique = first_of_each_request(records);
        let mut tx = self.pool.begin().await?;
        let mut written_ids: Vec<String> = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(INSERT_HEAD);
            insert.push_values(chunk, |mut row, record| {
                row.push_bind(&record.request_id)
                    .push_bind(record.started_at_ms)
                    .push_bind(record.finished_at_ms)
                    .push_bind(&record.key_id)
                    .push_bind(&record.profile)
                    .push_bind(&record.account_id)
                    .push_bind(&record.provider)
                    .push_bind(&record.requested_model)
                    .push_bind(&record.upstream_model)
                    .push_bind(record.prompt_tokens)
                    .push_bind(record.completion_tokens)
                    .push_bind(record.cached_tokens)
                    .push_bind(record.cache_write_5m_tokens)
                    .push_bind(record.cache_write_1h_tokens)
                    .push_bind(record.reasoning_tokens)
                    .push_bind(record.cost_micro_usd)
                    .push_bind(record.priced)
                    .push_bind(record.latency_ms)
                    .push_bind(record.ttft_ms)
                    .push_bind(record.status)
                    .push_bind(&record.error_code)
                    .push_bind(record.attempts)
                    .push_bind(record.streamed);
            });
            // RETURNING lists only the rows this statement inserted, not the
            // ones the conflict clause skipped.
            insert.push(" ON CONFLICT(request_id) DO NOTHING RETURNING request_id");
            written_ids.extend(
                insert
                    .build_query_scalar::<String>()
                    .fetch_all(&mut *tx)
                    .await?,
            );
        }
        let rollup = HourlyRollup::of_written(&unique, written_ids.iter().map(String::as_str));
        upsert_rollup(&mut tx, &rollup).await?;
        tx.commit().await?;
        let written = u64::try_from(written_ids.len()).unwrap_or(u64::MAX);
        let total = u64::try_from(records.len()).unwrap_or(u64::MAX);
        Ok(InsertOutcome {
            written,
            duplicates: total.saturating_sub(written),
        })
    }

    async fn query(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, UsageError> {
        let plan = plan_range(filter.from_ms, filter.to_ms);
        let mut select = QueryBuilder::<Sqlite>::new("SELECT grp, ");
        select.push(bucket_expression(filter.bucket)).push(
            " AS bucket_start_ms, SUM(requests) AS requests, SUM(errors) AS errors, \
                 SUM(unpriced_requests) AS unpriced_requests, \
                 SUM(cost_micro_usd) AS cost_micro_usd",
        );
        for column in super::TOKEN_COLUMNS {
            select
                .push(", SUM(")
                .push(column)
                .push(") AS ")
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
        select.push(") GROUP BY grp, bucket_start_ms ORDER BY bucket_start_ms, grp");
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
            "SELECT account_id, SUM(prompt_tokens + completion_tokens) AS tokens \
             FROM usage_events WHERE account_id <> '' AND started_at_ms >= ? \
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
        let mut tx = self.pool.begin().await?;
        let rows_deleted = sqlx::query("DELETE FROM usage_events WHERE started_at_ms < ?")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let rollup_rows_deleted = sqlx::query("DELETE FROM usage_hourly WHERE hour_start_ms <= ?")
            .bind(super::last_expired_hour(cutoff_ms))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(RetentionOutcome {
            partitions_dropped: 0,
            rows_deleted,
            rollup_rows_deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance::usage_conformance_tests;
    use super::*;

    async fn fresh_store() -> (tempfile::TempDir, SqliteUsageStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteUsageStore::open(&dir.path().join("usage.db"))
            .await
            .unwrap();
        (dir, store)
    }

    usage_conformance_tests!(fresh_store);

    #[tokio::test]
    async fn reopening_keeps_rows_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let store = SqliteUsageStore::open(&path).await.unwrap();
        let record = UsageRecord {
            request_id: "req-1".into(),
            ..UsageRecord::default()
        };
        store
            .insert_batch(std::slice::from_ref(&record))
            .await
            .unwrap();
        store.close().await;

        let store = SqliteUsageStore::open(&path).await.unwrap();
        let outcome = store.insert_batch(&[record]).await.unwrap();
        assert_eq!(outcome.duplicates, 1);
    }

    #[tokio::test]
    async fn migrating_an_existing_database_backfills_the_rollup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        // The schema before the rollup, with events already stored.
        let before_rollup = Migrator {
            migrations: MIGRATOR.migrations[..1].to_vec().into(),
            ..Migrator::DEFAULT
        };
        let pool = tollgate_store_support::sqlite::open(&path, &before_rollup)
            .await
            .unwrap();
        let events: Vec<UsageRecord> = [(0, 200), (3_599_999, 500), (3_600_000, 200), (-1, 429)]
            .into_iter()
            .enumerate()
            .map(|(i, (at, status))| UsageRecord {
                request_id: format!("req-{i}"),
                started_at_ms: at,
                key_id: "key-a".into(),
                prompt_tokens: 10 + u32::try_from(i).unwrap(),
                cost_micro_usd: 5,
                status,
                ..UsageRecord::default()
            })
            .collect();
        for record in &events {
            sqlx::query(
                "INSERT INTO usage_events VALUES \
                 (?, ?, 0, ?, '', '', '', '', '', ?, 0, 0, ?, 0, 0, ?, '', 1, 0)",
            )
            .bind(&record.request_id)
            .bind(record.started_at_ms)
            .bind(&record.key_id)
            .bind(record.prompt_tokens)
            .bind(record.cost_micro_usd)
            .bind(record.status)
            .execute(&pool)
            .await
            .unwrap();
        }

        let store = SqliteUsageStore::new(pool).await.unwrap();
        let hourly = store
            .query(&UsageFilter {
                bucket: Some(Bucket::Hour),
                ..UsageFilter::new(GroupBy::Key)
            })
            .await
            .unwrap();
        let cells: Vec<_> = hourly
            .iter()
            .map(|row| {
                (
                    row.bucket_start_ms,
                    row.requests,
                    row.errors,
                    row.prompt_tokens,
                )
            })
            .collect();
        assert_eq!(
            cells,
            [(-3_600_000, 1, 1, 13), (0, 2, 1, 21), (3_600_000, 1, 0, 12)]
        );
        let rollup_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_hourly")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(rollup_rows, 3);
        // Backfilled rows are not counted again when redelivered.
        let again = store.insert_batch(&events).await.unwrap();
        assert_eq!((again.written, again.duplicates), (0, 4));
        let all = store.query(&UsageFilter::new(GroupBy::Key)).await.unwrap();
        assert_eq!((all[0].requests, all[0].cost_micro_usd), (4, 20));
    }

    #[tokio::test]
    async fn migrating_marks_earlier_requests_without_a_cost_unpriced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        // The schema before the token details, with events already stored:
        // one priced, one with tokens and no cost, one with neither.
        let before_details = Migrator {
            migrations: MIGRATOR.migrations[..2].to_vec().into(),
            ..Migrator::DEFAULT
        };
        let pool = tollgate_store_support::sqlite::open(&path, &before_details)
            .await
            .unwrap();
        let before = SqliteUsageStore { pool: pool.clone() };
        let rows = [("priced", 10, 7), ("unpriced", 10, 0), ("empty", 0, 0)];
        for (id, tokens, cost) in rows {
            sqlx::query(
                "INSERT INTO usage_events VALUES \
                 (?, 0, 0, 'key-a', '', '', '', '', '', ?, 0, 0, ?, 0, 0, 200, '', 1, 0)",
            )
            .bind(id)
            .bind(tokens)
            .bind(cost)
            .execute(&before.pool)
            .await
            .unwrap();
        }
        // The rollup of those rows, as the store before the details kept it.
        sqlx::query(
            "INSERT INTO usage_hourly (hour_start_ms, key_id, account_id, profile, provider, \
             requested_model, requests, errors, prompt_tokens, completion_tokens, \
             cached_tokens, cost_micro_usd) VALUES (0, 'key-a', '', '', '', '', 3, 0, 20, 0, 0, 7)",
        )
        .execute(&before.pool)
        .await
        .unwrap();

        let store = SqliteUsageStore::new(pool).await.unwrap();
        let priced: Vec<(String, bool)> =
            sqlx::query_as("SELECT request_id, priced FROM usage_events ORDER BY request_id")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            priced,
            [
                ("empty".to_owned(), true),
                ("priced".to_owned(), true),
                ("unpriced".to_owned(), false)
            ]
        );
        let all = store.query(&UsageFilter::new(GroupBy::Key)).await.unwrap();
        assert_eq!((all[0].requests, all[0].unpriced_requests), (3, 1));
    }
}
