//! The batch INSERT: records turned into one array per column and inserted
//! with `UNNEST`, so a statement has 23 bound parameters whatever its size
//! (no bind-parameter limit to stay under) and is prepared once per
//! connection. The rows it wrote are then added to the hourly rollup, in the
//! same transaction and the same way.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};

use super::super::UsageRecord;
#[cfg(test)]
use super::super::first_of_each_request;
use super::super::rollup::HourlyRollup;
use super::super::rollup::{HourKey, HourTotals};

/// Rows per statement: bounds the size of one message (about 2 MB of
/// arrays), not the parameter count.
const ROWS_PER_STATEMENT: usize = 5_000;

const INSERT: &str = "INSERT INTO usage_events (request_id, started_at_ms, finished_at_ms, \
     key_id, profile, account_id, provider, requested_model, upstream_model, prompt_tokens, \
     completion_tokens, cached_tokens, cache_write_5m_tokens, cache_write_1h_tokens, \
     reasoning_tokens, cost_micro_usd, priced, latency_ms, ttft_ms, status, error_code, attempts, \
     streamed) \
     SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[], $11::BIGINT[], \
     $12::BIGINT[], $13::BIGINT[], $14::BIGINT[], $15::BIGINT[], $16::BIGINT[], \
     $17::BOOLEAN[], $18::INTEGER[], $19::INTEGER[], $20::INTEGER[], $21::TEXT[], \
     $22::INTEGER[], $23::BOOLEAN[]) \
     ON CONFLICT (started_at_ms, request_id) DO NOTHING RETURNING request_id";

const ROLLUP_UPSERT: &str = "INSERT INTO usage_hourly (hour_start_ms, key_id, account_id, \
     profile, provider, requested_model, requests, errors, prompt_tokens, completion_tokens, \
     cached_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, \
     cost_micro_usd, unpriced_requests) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], \
     $12::BIGINT[], $13::BIGINT[], $14::BIGINT[], $15::BIGINT[], $16::BIGINT[]) \
     ON CONFLICT (hour_start_ms, key_id, account_id, profile, provider, requested_model) \
     DO UPDATE SET requests = usage_hourly.requests + EXCLUDED.requests, \
     errors = usage_hourly.errors + EXCLUDED.errors, \
     prompt_tokens = usage_hourly.prompt_tokens + EXCLUDED.prompt_tokens, \
     completion_tokens = usage_hourly.completion_tokens + EXCLUDED.completion_tokens, \
     cached_tokens = usage_hourly.cached_tokens + EXCLUDED.cached_tokens, \
     cache_write_5m_tokens = usage_hourly.cache_write_5m_tokens + EXCLUDED.cache_write_5m_tokens, \
     cache_write_1h_tokens = usage_hourly.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens, \
     reasoning_tokens = usage_hourly.reasoning_tokens + EXCLUDED.reasoning_tokens, \
     cost_micro_usd = usage_hourly.cost_micro_usd + EXCLUDED.cost_micro_usd, \
     unpriced_requests = usage_hourly.unpriced_requests + EXCLUDED.unpriced_requests";

/// Inserts `records` on `conn` (inside the caller's transaction), skipping
/// stored ones, and adds the rows it wrote to the hourly rollup; returns how
/// many rows were written. `records` must hold each request id once.
pub(crate) async fn insert_new(
    conn: &mut PgConnection,
    records: &[&UsageRecord],
) -> Result<u64, sqlx::Error> {
    let mut written_ids: Vec<String> = Vec::with_capacity(records.len());
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        // RETURNING lists only the rows inserted, not the skipped duplicates.
        written_ids.extend(
            insert_statement(chunk)
                .try_map(|row: sqlx::postgres::PgRow| sqlx::Row::try_get::<String, _>(&row, 0))
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    let rollup = HourlyRollup::of_written(records, written_ids.iter().map(String::as_str));
    // In key order, chunk after chunk: concurrent replicas lock rollup rows
    // in the same order and cannot deadlock on them.
    for chunk in rollup.rows().chunks(ROWS_PER_STATEMENT) {
        rollup_statement(chunk).execute(&mut *conn).await?;
    }
    Ok(u64::try_from(written_ids.len()).unwrap_or(u64::MAX))
}

fn rollup_statement<'a>(rows: &[(&HourKey<'a>, &HourTotals)]) -> Query<'a, Postgres, PgArguments> {
    let text = |field: fn(&HourKey<'a>) -> &'a str| -> Vec<&'a str> {
        rows.iter().map(|(key, _)| field(key)).collect()
    };
    let total = |field: fn(&HourTotals) -> i64| -> Vec<i64> {
        rows.iter().map(|(_, totals)| field(totals)).collect()
    };
    sqlx::query(ROLLUP_UPSERT)
        .bind(
            rows.iter()
                .map(|(key, _)| key.hour_start_ms)
                .collect::<Vec<i64>>(),
        )
        .bind(text(|k| k.key_id))
        .bind(text(|k| k.account_id))
        .bind(text(|k| k.profile))
        .bind(text(|k| k.provider))
        .bind(text(|k| k.requested_model))
        .bind(total(|t| t.requests))
        .bind(total(|t| t.errors))
        .bind(total(|t| t.prompt_tokens))
        .bind(total(|t| t.completion_tokens))
        .bind(total(|t| t.cached_tokens))
        .bind(total(|t| t.cache_write_5m_tokens))
        .bind(total(|t| t.cache_write_1h_tokens))
        .bind(total(|t| t.reasoning_tokens))
        .bind(total(|t| t.cost_micro_usd))
        .bind(total(|t| t.unpriced_requests))
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
        .bind(bigint(|r| i64::from(r.cache_write_5m_tokens)))
        .bind(bigint(|r| i64::from(r.cache_write_1h_tokens)))
        .bind(bigint(|r| i64::from(r.reasoning_tokens)))
        .bind(bigint(|r| r.cost_micro_usd))
        .bind(records.iter().map(|r| r.priced).collect::<Vec<bool>>())
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
