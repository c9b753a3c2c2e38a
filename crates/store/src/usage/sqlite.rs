//! The embedded usage store: one SQLite file (`usage.db`).

use std::path::Path;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    Bucket, GroupBy, InsertOutcome, UsageError, UsageFilter, UsageRecord, UsageRow, UsageStore,
};

/// The usage schema's migrations (`migrations/usage`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/usage");

/// Rows per INSERT statement: 19 bound parameters each keeps a statement far
/// below SQLite's (and Postgres') parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

const INSERT_HEAD: &str = "INSERT INTO usage_events (request_id, started_at_ms, finished_at_ms, \
     key_id, profile, account_id, provider, requested_model, upstream_model, prompt_tokens, \
     completion_tokens, cached_tokens, cost_micro_usd, latency_ms, ttft_ms, status, error_code, \
     attempts, streamed) ";

/// [`super::UsageStore`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteUsageStore {
    pool: SqlitePool,
}

impl SqliteUsageStore {
    /// Opens (creating if needed) the SQLite file at `path` with the shared
    /// settings of [`crate::sqlite::open`] and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, UsageError> {
        let pool = crate::sqlite::open(path, &MIGRATOR).await?;
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

/// The expression for a row's bucket start (floored, also before 1970).
const fn bucket_expression(bucket: Option<Bucket>) -> &'static str {
    match bucket {
        None => "0",
        Some(Bucket::Hour) => "started_at_ms - ((started_at_ms % 3600000) + 3600000) % 3600000",
        Some(Bucket::Day) => "started_at_ms - ((started_at_ms % 86400000) + 86400000) % 86400000",
    }
}

fn count(row: &SqliteRow, column: &str) -> Result<u64, sqlx::Error> {
    let value: i64 = row.try_get(column)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

fn usage_row(row: &SqliteRow) -> Result<UsageRow, sqlx::Error> {
    let prompt_tokens = count(row, "prompt_tokens")?;
    let completion_tokens = count(row, "completion_tokens")?;
    Ok(UsageRow {
        group: row.try_get("grp")?,
        bucket_start_ms: row.try_get("bucket_start_ms")?,
        requests: count(row, "requests")?,
        errors: count(row, "errors")?,
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
        cost_micro_usd: row.try_get("cost_micro_usd")?,
    })
}

#[async_trait]
impl UsageStore for SqliteUsageStore {
    async fn insert_batch(&self, records: &[UsageRecord]) -> Result<InsertOutcome, UsageError> {
        if records.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let mut tx = self.pool.begin().await?;
        let mut written = 0;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
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
                    .push_bind(record.cost_micro_usd)
                    .push_bind(record.latency_ms)
                    .push_bind(record.ttft_ms)
                    .push_bind(record.status)
                    .push_bind(&record.error_code)
                    .push_bind(record.attempts)
                    .push_bind(record.streamed);
            });
            insert.push(" ON CONFLICT(request_id) DO NOTHING");
            written += insert.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        let total = u64::try_from(records.len()).unwrap_or(u64::MAX);
        Ok(InsertOutcome {
            written,
            duplicates: total.saturating_sub(written),
        })
    }

    async fn query(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, UsageError> {
        let mut select = QueryBuilder::<Sqlite>::new("SELECT ");
        select
            .push(group_column(filter.group_by))
            .push(" AS grp, ")
            .push(bucket_expression(filter.bucket))
            .push(
                " AS bucket_start_ms, COUNT(*) AS requests, \
                 SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors, \
                 SUM(prompt_tokens) AS prompt_tokens, \
                 SUM(completion_tokens) AS completion_tokens, \
                 SUM(cost_micro_usd) AS cost_micro_usd \
                 FROM usage_events WHERE 1 = 1",
            );
        if let Some(from_ms) = filter.from_ms {
            select.push(" AND started_at_ms >= ").push_bind(from_ms);
        }
        if let Some(to_ms) = filter.to_ms {
            select.push(" AND started_at_ms < ").push_bind(to_ms);
        }
        if let Some(account_id) = &filter.account_id {
            select.push(" AND account_id = ").push_bind(account_id);
        }
        select.push(" GROUP BY grp, bucket_start_ms ORDER BY bucket_start_ms, grp");
        let rows = select.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(usage_row).collect::<Result<_, _>>()?)
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
            .map(|row| Ok((row.try_get("account_id")?, count(row, "tokens")?)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
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
}
