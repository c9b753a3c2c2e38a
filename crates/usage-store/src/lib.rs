//! Usage events: one row per request, written idempotently, queried by group.
//!
//! [`UsageStore`] is what analytics writes to and reads from. Every
//! implementation stores each request id at most once (a redelivered event is
//! counted as a duplicate, not written again) and answers the same grouped
//! queries; the conformance suite in this crate holds each one to that.
//!
//! Both stores keep an hourly rollup beside the raw events, added to in the
//! transaction of each insert from the rows it actually wrote. A query reads
//! the whole hours of its range from the rollup and only the partial hours at
//! its edges from the raw events (see `rollup`).

#[cfg(test)]
pub(crate) mod conformance;
pub mod postgres;
mod rollup;
mod sqlite;

pub use postgres::PgUsageStore;
pub use sqlite::{MIGRATOR, SqliteUsageStore};

use std::collections::HashSet;

use async_trait::async_trait;
use tollgate_core::clock::{MS_PER_DAY, utc_day};

/// One request's usage, as stored. The fields of the `UsageEvent` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageRecord {
    pub request_id: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub key_id: String,
    pub profile: String,
    /// Empty when no account was leased (e.g. quota exhausted).
    pub account_id: String,
    pub provider: String,
    /// The model the client asked for.
    pub requested_model: String,
    /// The model the upstream served.
    pub upstream_model: String,
    /// Every input token, cache reads and writes included.
    pub prompt_tokens: u32,
    /// Every output token, reasoning included.
    pub completion_tokens: u32,
    /// Prompt tokens read from the prompt cache.
    pub cached_tokens: u32,
    /// Prompt tokens written to a prompt cache that lives 5 minutes.
    pub cache_write_5m_tokens: u32,
    /// Prompt tokens written to a prompt cache that lives 1 hour.
    pub cache_write_1h_tokens: u32,
    /// Completion tokens spent on reasoning.
    pub reasoning_tokens: u32,
    pub cost_micro_usd: i64,
    /// Whether the model catalog priced the request; `false`: the cost is
    /// unknown and recorded as 0.
    pub priced: bool,
    pub latency_ms: u32,
    /// Time to first token for streams; 0 otherwise.
    pub ttft_ms: u32,
    /// HTTP status the client received.
    pub status: u32,
    /// Error kind label when the status is not 2xx.
    pub error_code: String,
    pub attempts: u32,
    pub streamed: bool,
}

/// What one [`UsageStore::insert_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// Records newly stored.
    pub written: u64,
    /// Records skipped because their request id was already stored (or
    /// appeared earlier in the same batch).
    pub duplicates: u64,
}

/// The dimension usage rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    Key,
    Account,
    /// The model the client requested (not the upstream model).
    Model,
    Profile,
    Provider,
}

impl GroupBy {
    pub const ALL: [GroupBy; 5] = [
        GroupBy::Key,
        GroupBy::Account,
        GroupBy::Model,
        GroupBy::Profile,
        GroupBy::Provider,
    ];

    /// The name used by the API (`key`, `account`, `model`, `profile`,
    /// `provider`).
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupBy::Key => "key",
            GroupBy::Account => "account",
            GroupBy::Model => "model",
            GroupBy::Profile => "profile",
            GroupBy::Provider => "provider",
        }
    }

    /// The grouping named `name`, if any.
    pub fn parse(name: &str) -> Option<GroupBy> {
        GroupBy::ALL
            .into_iter()
            .find(|group| group.as_str() == name)
    }
}

/// A time bucket: rows are split by the UTC hour or day their requests started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub const ALL: [Bucket; 2] = [Bucket::Hour, Bucket::Day];

    /// The name used by the API (`hour`, `day`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    /// The bucket named `name`, if any.
    pub fn parse(name: &str) -> Option<Bucket> {
        Bucket::ALL
            .into_iter()
            .find(|bucket| bucket.as_str() == name)
    }

    /// The bucket's length in milliseconds.
    pub const fn width_ms(self) -> i64 {
        match self {
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `at_ms`.
    pub const fn start_of(self, at_ms: i64) -> i64 {
        at_ms - at_ms.rem_euclid(self.width_ms())
    }
}

/// Which usage to report and how to group it. Requests are selected by their
/// start time: `from_ms` inclusive, `to_ms` exclusive, `None` unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    pub group_by: GroupBy,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub bucket: Option<Bucket>,
    pub account_id: Option<String>,
}

impl UsageFilter {
    /// All usage ever recorded, one row per group.
    pub fn new(group_by: GroupBy) -> Self {
        Self {
            group_by,
            from_ms: None,
            to_ms: None,
            bucket: None,
            account_id: None,
        }
    }
}

/// Totals for one group (and bucket). Rows come ordered by bucket start, then
/// group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageRow {
    pub group: String,
    /// Start of the bucket (unix ms) when bucketed; 0 otherwise.
    pub bucket_start_ms: i64,
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Parts of `prompt_tokens`: cache reads, cache writes (5 minutes, 1
    /// hour).
    pub cached_tokens: u64,
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    /// Part of `completion_tokens`.
    pub reasoning_tokens: u64,
    pub cost_micro_usd: i64,
    /// Requests whose cost is unknown (not priced by the catalog, counted
    /// as 0 in `cost_micro_usd`).
    pub unpriced_requests: u64,
}

/// What [`UsageStore::delete_before`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Day partitions of raw events dropped whole (Postgres).
    pub partitions_dropped: u64,
    /// Raw event rows deleted one by one (SQLite; in Postgres, rows of the
    /// default partition, which holds those without a day partition).
    pub rows_deleted: u64,
    /// Hourly rollup rows deleted.
    pub rollup_rows_deleted: u64,
}

/// The retention cutoff (unix ms) for keeping `days` full UTC days before
/// today (and today) at `now_ms`: the start of the oldest day kept. `None`
/// for 0 days, which keeps everything.
pub fn retention_cutoff_ms(days: u32, now_ms: i64) -> Option<i64> {
    (days > 0).then(|| {
        utc_day(now_ms)
            .saturating_sub(i64::from(days))
            .saturating_mul(MS_PER_DAY)
    })
}

/// The start of the last rollup hour that ends at or before `cutoff_ms`
/// (the hours retention deletes are those starting at or before it).
pub(crate) fn last_expired_hour(cutoff_ms: i64) -> i64 {
    Bucket::Hour
        .start_of(cutoff_ms)
        .saturating_sub(Bucket::Hour.width_ms())
}

/// A usage store failure. Its text may name internals: log it, never send it
/// to a client.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Open(#[from] tollgate_store_support::sqlite::OpenError),
    #[error("usage database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("usage schema migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// Where usage events are kept.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Stores `records` in one transaction; a request id already stored is
    /// skipped and counted as a duplicate. All or nothing: on error no record
    /// of the batch is stored, so the caller may retry the whole batch.
    async fn insert_batch(&self, records: &[UsageRecord]) -> Result<InsertOutcome, UsageError>;

    /// Totals per group (and bucket) for the requests the filter selects.
    async fn query(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, UsageError>;

    /// Prompt plus completion tokens per account for requests started at or
    /// after `since_ms`, ordered by account id; requests without an account
    /// are left out.
    async fn tokens_by_account_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, u64)>, UsageError>;

    /// Prompt plus completion tokens per client key for requests started at
    /// or after `since_ms`, ordered by key id; requests without a key are
    /// left out.
    async fn tokens_by_key_since(&self, since_ms: i64) -> Result<Vec<(String, u64)>, UsageError> {
        let rows = self.by_key_since(since_ms).await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.group, row.total_tokens))
            .collect())
    }

    /// Micro-dollars per client key for requests started at or after
    /// `since_ms`, ordered by key id, as [`UsageStore::tokens_by_key_since`].
    async fn cost_by_key_since(&self, since_ms: i64) -> Result<Vec<(String, u64)>, UsageError> {
        let rows = self.by_key_since(since_ms).await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.group, u64::try_from(row.cost_micro_usd).unwrap_or(0)))
            .collect())
    }

    /// One row per client key (ordered by key id) for requests started at
    /// or after `since_ms`, leaving out requests without a key. Read through
    /// [`UsageStore::query`], so whole hours come from the rollup and only a
    /// partial first hour from the raw events.
    async fn by_key_since(&self, since_ms: i64) -> Result<Vec<UsageRow>, UsageError> {
        let filter = UsageFilter {
            from_ms: Some(since_ms),
            ..UsageFilter::new(GroupBy::Key)
        };
        // Unbucketed rows come one per group, ordered by it.
        let mut rows = self.query(&filter).await?;
        rows.retain(|row| !row.group.is_empty());
        Ok(rows)
    }

    /// Retention: deletes the usage of requests started before `cutoff_ms`
    /// and the rollup hours that end at or before it, so queries see
    /// neither. Postgres drops raw events by whole day partitions, so a day
    /// the cutoff falls inside stays; a day-aligned cutoff
    /// ([`retention_cutoff_ms`]) deletes the same on both backends.
    async fn delete_before(&self, cutoff_ms: i64) -> Result<RetentionOutcome, UsageError>;
}

/// The first record of each request id, in batch order. A request id that
/// appears twice in one batch is stored once, as in any other store, even if
/// its copies disagree on the start time (and so on the partition).
pub(crate) fn first_of_each_request(records: &[UsageRecord]) -> Vec<&UsageRecord> {
    let mut seen = HashSet::with_capacity(records.len());
    records
        .iter()
        .filter(|record| seen.insert(record.request_id.as_str()))
        .collect()
}

/// A non-negative count column (a negative value reads as 0).
pub(crate) fn count<R>(row: &R, column: &str) -> Result<u64, sqlx::Error>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database> + for<'d> sqlx::Decode<'d, R::Database>,
{
    let value: i64 = row.try_get(column)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// A row of a usage query (columns `grp`, `bucket_start_ms`, `requests`,
/// `errors`, the token columns of [`TOKEN_COLUMNS`], `cost_micro_usd`,
/// `unpriced_requests`), from either backend.
pub(crate) fn usage_row<R>(row: &R) -> Result<UsageRow, sqlx::Error>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database> + for<'d> sqlx::Decode<'d, R::Database>,
    String: sqlx::Type<R::Database> + for<'d> sqlx::Decode<'d, R::Database>,
{
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
        cached_tokens: count(row, "cached_tokens")?,
        cache_write_5m_tokens: count(row, "cache_write_5m_tokens")?,
        cache_write_1h_tokens: count(row, "cache_write_1h_tokens")?,
        reasoning_tokens: count(row, "reasoning_tokens")?,
        cost_micro_usd: row.try_get("cost_micro_usd")?,
        unpriced_requests: count(row, "unpriced_requests")?,
    })
}

/// The token columns both tables have and a usage query sums, in order.
/// Only these fixed names reach the SQL text.
pub(crate) const TOKEN_COLUMNS: [&str; 6] = [
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for group in GroupBy::ALL {
            assert_eq!(GroupBy::parse(group.as_str()), Some(group));
        }
        for bucket in Bucket::ALL {
            assert_eq!(Bucket::parse(bucket.as_str()), Some(bucket));
        }
        assert_eq!(GroupBy::parse("Key"), None);
        assert_eq!(GroupBy::parse(""), None);
        assert_eq!(Bucket::parse("week"), None);
    }

    #[test]
    fn retention_keeps_today_and_whole_days_before_it() {
        let day = MS_PER_DAY;
        let noon = 20_000 * day + day / 2;
        assert_eq!(retention_cutoff_ms(0, noon), None);
        assert_eq!(retention_cutoff_ms(1, noon), Some(19_999 * day));
        assert_eq!(retention_cutoff_ms(90, 20_000 * day), Some(19_910 * day));
        assert_eq!(last_expired_hour(20_000 * day), 20_000 * day - 3_600_000);
        assert_eq!(
            last_expired_hour(20_000 * day + 1),
            20_000 * day - 3_600_000
        );
        assert_eq!(last_expired_hour(20_000 * day + 3_600_000), 20_000 * day);
    }

    #[test]
    fn bucket_start_rounds_down_to_utc_boundaries() {
        let day = Bucket::Day.width_ms();
        assert_eq!(Bucket::Day.start_of(3 * day + 5), 3 * day);
        assert_eq!(Bucket::Day.start_of(3 * day), 3 * day);
        assert_eq!(Bucket::Hour.start_of(7_200_001), 7_200_000);
        assert_eq!(Bucket::Hour.start_of(-1), -3_600_000);
    }
}
