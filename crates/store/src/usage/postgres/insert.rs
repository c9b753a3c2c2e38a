//! The batch INSERT: records turned into one array per column and inserted
//! with `UNNEST`, so a statement has 19 bound parameters whatever its size
//! (no bind-parameter limit to stay under) and is prepared once per
//! connection.

use std::collections::HashSet;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};

use super::super::UsageRecord;

/// Rows per statement: bounds the size of one message (about 2 MB of
/// arrays), not the parameter count.
const ROWS_PER_STATEMENT: usize = 5_000;

const INSERT: &str = "INSERT INTO usage_events (request_id, started_at_ms, finished_at_ms, \
     key_id, profile, account_id, provider, requested_model, upstream_model, prompt_tokens, \
     completion_tokens, cached_tokens, cost_micro_usd, latency_ms, ttft_ms, status, error_code, \
     attempts, streamed) \
     SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[], $11::BIGINT[], \
     $12::BIGINT[], $13::BIGINT[], $14::INTEGER[], $15::INTEGER[], $16::INTEGER[], \
     $17::TEXT[], $18::INTEGER[], $19::BOOLEAN[]) \
     ON CONFLICT (started_at_ms, request_id) DO NOTHING";

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

/// Inserts `records` on `conn` (inside the caller's transaction), skipping
/// stored ones; returns how many rows were written.
pub(crate) async fn insert_new(
    conn: &mut PgConnection,
    records: &[&UsageRecord],
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        written += insert_statement(chunk)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(written)
}

/// A stored INTEGER column: saturated at `i32::MAX` (latencies past 24 days,
/// absurd statuses and attempt counts).
fn integer(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn insert_statement<'a>(records: &[&'a UsageRecord]) -> Query<'a, Postgres, PgArguments> {
    let text = |field: fn(&'a UsageRecord) -> &'a str| -> Vec<&'a str> {
        records.iter().map(|record| field(record)).collect()
    };
    let bigint = |field: fn(&UsageRecord) -> i64| -> Vec<i64> {
        records.iter().map(|record| field(record)).collect()
    };
    let int = |field: fn(&UsageRecord) -> u32| -> Vec<i32> {
        records
            .iter()
            .map(|record| integer(field(record)))
            .collect()
    };
    sqlx::query(INSERT)
        .bind(text(|r| &r.request_id))
        .bind(bigint(|r| r.started_at_ms))
        .bind(bigint(|r| r.finished_at_ms))
        .bind(text(|r| &r.key_id))
        .bind(text(|r| &r.profile))
        .bind(text(|r| &r.account_id))
        .bind(text(|r| &r.provider))
        .bind(text(|r| &r.requested_model))
        .bind(text(|r| &r.upstream_model))
        .bind(bigint(|r| i64::from(r.prompt_tokens)))
        .bind(bigint(|r| i64::from(r.completion_tokens)))
        .bind(bigint(|r| i64::from(r.cached_tokens)))
        .bind(bigint(|r| r.cost_micro_usd))
        .bind(int(|r| r.latency_ms))
        .bind(int(|r| r.ttft_ms))
        .bind(int(|r| r.status))
        .bind(text(|r| &r.error_code))
        .bind(int(|r| r.attempts))
        .bind(records.iter().map(|r| r.streamed).collect::<Vec<bool>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(request_id: &str, started_at_ms: i64) -> UsageRecord {
        UsageRecord {
            request_id: request_id.to_owned(),
            started_at_ms,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn keeps_the_first_copy_of_each_request_in_order() {
        let batch = [
            record("b", 1),
            record("a", 2),
            record("b", 3),
            record("c", 4),
            record("a", 5),
        ];
        let kept: Vec<_> = first_of_each_request(&batch)
            .iter()
            .map(|r| (r.request_id.as_str(), r.started_at_ms))
            .collect();
        assert_eq!(kept, [("b", 1), ("a", 2), ("c", 4)]);
    }

    #[test]
    fn integers_saturate_instead_of_wrapping() {
        assert_eq!(integer(0), 0);
        assert_eq!(integer(429), 429);
        assert_eq!(integer(u32::MAX), i32::MAX);
    }
}
