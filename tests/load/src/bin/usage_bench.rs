//! `usage_bench`: usage ingest into Postgres through `PgUsageStore` (as
//! analytics writes it) and the time of day-long usage queries over many
//! rows.
//!
//! ```text
//! usage_bench                                  # everything, fresh database
//! usage_bench --keep --db-name tollgate_bench  # keep it for a cold query run
//! usage_bench --db-name tollgate_bench --skip-ingest --skip-generate
//! ```
//!
//! Ingest: `--events` records spread in time order over one UTC day, with
//! 200 keys, 20 accounts, 10 models and 5 profiles, inserted in batches of
//! `--batch` by one writer and then by two concurrent writers (each its own
//! `PgUsageStore`, as separate analytics processes are).
//!
//! Query data: `--rows` rows of one UTC day are made by the server in one
//! `INSERT … SELECT … FROM generate_series` into `usage_events`, then
//! `usage_hourly` is filled from them with the same `GROUP BY` the rollup
//! migration's backfill uses (both tables are emptied first).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinSet;
use tollgate_core::clock::{MS_PER_DAY, now_ms, utc_day};
use tollgate_core::ids::request_id;
use tollgate_load::bench_stats::{latency_histogram, latency_line, ms, record};
use tollgate_usage_store::{Bucket, GroupBy, PgUsageStore, UsageFilter, UsageRecord, UsageStore};

#[derive(Debug, Parser)]
struct Args {
    /// Server URL without a database name.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server_url: String,
    /// Database to use; created when missing (default: a fresh name).
    #[arg(long)]
    db_name: Option<String>,
    /// Keep the database at the end instead of dropping it.
    #[arg(long)]
    keep: bool,
    /// Events per ingest run.
    #[arg(long, default_value_t = 300_000)]
    events: u64,
    #[arg(long, default_value_t = 512)]
    batch: usize,
    #[arg(long)]
    skip_ingest: bool,
    /// Rows made server-side for the queries.
    #[arg(long, default_value_t = 10_000_000)]
    rows: i64,
    /// Query the rows already there instead of making them.
    #[arg(long)]
    skip_generate: bool,
    /// Runs of each query.
    #[arg(long, default_value_t = 5)]
    query_runs: usize,
}

const KEYS: u64 = 200;
const ACCOUNTS: u64 = 20;
const MODELS: u64 = 10;
const PROFILES: u64 = 5;
const HOUR_MS: i64 = 3_600_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = args
        .db_name
        .clone()
        .unwrap_or_else(|| format!("tollgate_bench_{}", now_ms()));
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        bail!("--db-name must be lowercase letters, digits and underscores");
    }
    let mut admin = PgConnection::connect(&format!("{}/postgres", args.server_url)).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // The name was checked above: only [a-z0-9_] reaches the DDL.
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
    }
    let url = format!("{}/{name}", args.server_url);
    let result = run(&args, &url).await;
    if !args.keep {
        sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        eprintln!("dropped database {name}");
    }
    result
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let yesterday = (utc_day(now_ms()) - 1) * MS_PER_DAY;
    if !args.skip_ingest {
        ingest(args, url, 1, yesterday - 2 * MS_PER_DAY).await?;
        ingest(args, url, 2, yesterday - MS_PER_DAY).await?;
    }
    let store = PgUsageStore::connect(url).await?;
    if !args.skip_generate {
        generate(&store, url, yesterday, args.rows).await?;
    }
    let day = |group_by, bucket, from_ms, to_ms| UsageFilter {
        group_by,
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
        bucket,
        account_id: None,
    };
    let end = yesterday + MS_PER_DAY;
    let queries = [
        (
            "day, group_by=model",
            day(GroupBy::Model, None, yesterday, end),
        ),
        (
            "day, group_by=model, bucket=hour",
            day(GroupBy::Model, Some(Bucket::Hour), yesterday, end),
        ),
        (
            "day, group_by=key, bucket=hour",
            day(GroupBy::Key, Some(Bucket::Hour), yesterday, end),
        ),
        (
            "00:30 to 23:30, group_by=model (two half hours from raw rows)",
            day(
                GroupBy::Model,
                None,
                yesterday + HOUR_MS / 2,
                end - HOUR_MS / 2,
            ),
        ),
    ];
    for (label, filter) in &queries {
        let mut times = Vec::with_capacity(args.query_runs);
        let mut rows = 0;
        for _ in 0..args.query_runs {
            let started = Instant::now();
            rows = store.query(filter).await?.len();
            times.push(ms(started.elapsed()));
        }
        println!(
            "query {label}: {rows} rows; runs (ms): {}",
            times.join(", ")
        );
    }
    store.close().await;
    Ok(())
}

/// Inserts `args.events` records of the day starting at `day_start_ms` with
/// `writers` concurrent stores, and prints the rate.
async fn ingest(args: &Args, url: &str, writers: usize, day_start_ms: i64) -> anyhow::Result<()> {
    let batches: Vec<Vec<UsageRecord>> = make_records(args.events, day_start_ms)
        .chunks(args.batch.max(1))
        .map(<[UsageRecord]>::to_vec)
        .collect();
    let batches = Arc::new(batches);
    let mut stores = Vec::with_capacity(writers);
    for _ in 0..writers {
        stores.push(PgUsageStore::connect(url).await?);
    }
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (writer, store) in stores.into_iter().enumerate() {
        let batches = batches.clone();
        tasks.spawn(async move {
            let mut histogram = latency_histogram()?;
            let mut written = 0;
            for batch in batches.iter().skip(writer).step_by(writers) {
                let before = Instant::now();
                written += store.insert_batch(batch).await?.written;
                record(&mut histogram, before.elapsed());
            }
            store.close().await;
            anyhow::Ok((written, histogram))
        });
    }
    let mut written = 0;
    let mut histogram = latency_histogram()?;
    while let Some(done) = tasks.join_next().await {
        let (count, batch_times) = done??;
        written += count;
        histogram.add(&batch_times).context("merging histograms")?;
    }
    let elapsed = started.elapsed();
    println!(
        "ingest, {writers} writer(s), batches of {}: {written} events in {:.2} s = {:.0} events/s",
        args.batch,
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64()
    );
    println!("{}", latency_line("batch", &histogram));
    Ok(())
}

/// A small xorshift generator: the bench needs spread, not quality.
struct Spread(u64);

impl Spread {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// `count` records in time order over the day at `day_start_ms`. A key has
/// one profile; a model is served by two accounts of one of three providers.
fn make_records(count: u64, day_start_ms: i64) -> Vec<UsageRecord> {
    let mut spread = Spread(0x9e37_79b9_7f4a_7c15);
    let step = MS_PER_DAY as f64 / count.max(1) as f64;
    (0..count)
        .map(|i| {
            let key = spread.below(KEYS);
            let model = spread.below(MODELS);
            let account = (model * 2 + spread.below(2)) % ACCOUNTS;
            let failed = spread.below(50) == 0;
            let started_at_ms = day_start_ms + (i as f64 * step) as i64;
            let latency_ms = 100 + spread.below(2_900) as u32;
            UsageRecord {
                request_id: request_id(),
                started_at_ms,
                finished_at_ms: started_at_ms + i64::from(latency_ms),
                key_id: format!("key_{key:032}"),
                profile: format!("profile{}", key % PROFILES),
                account_id: format!("acct_{account:02}"),
                provider: format!("provider{}", model % 3),
                requested_model: format!("model{model}"),
                upstream_model: format!("model{model}"),
                prompt_tokens: 200 + spread.below(1_800) as u32,
                completion_tokens: 50 + spread.below(450) as u32,
                cached_tokens: 0,
                cache_write_5m_tokens: 0,
                cache_write_1h_tokens: 0,
                reasoning_tokens: 0,
                cost_micro_usd: 1_000 + spread.below(9_000) as i64,
                priced: true,
                latency_ms,
                ttft_ms: 0,
                status: if failed { 429 } else { 200 },
                error_code: if failed {
                    "rate_limited".into()
                } else {
                    String::new()
                },
                attempts: 1,
                streamed: spread.below(2) == 0,
            }
        })
        .collect()
}

/// Rows of the day at `day_start_ms`, named like [`make_records`]'s.
const GENERATE_EVENTS: &str = "INSERT INTO usage_events (request_id, started_at_ms, \
     finished_at_ms, key_id, profile, account_id, provider, requested_model, upstream_model, \
     prompt_tokens, completion_tokens, cached_tokens, cost_micro_usd, latency_ms, ttft_ms, \
     status, error_code, attempts, streamed) \
     SELECT 'req_' || lpad(to_hex(g), 32, '0'), t, t + 800, 'key_' || lpad(k::TEXT, 32, '0'), \
     'profile' || (k % 5), 'acct_' || lpad(((m * 2 + g % 2) % 20)::TEXT, 2, '0'), \
     'provider' || (m % 3), 'model' || m, 'model' || m, 200 + g % 1800, 50 + g % 450, 0, \
     1000 + g % 9000, 800, 0, CASE WHEN g % 50 = 0 THEN 429 ELSE 200 END, \
     CASE WHEN g % 50 = 0 THEN 'rate_limited' ELSE '' END, 1, g % 2 = 0 \
     FROM (SELECT g, $1 + g * 86400000 / $2 AS t, (g * 2654435761) % 200 AS k, \
     ((g * 40503) / 7) % 10 AS m FROM generate_series(0::BIGINT, $2 - 1) AS g) AS s";

/// The rollup of whatever `usage_events` holds (the migration's backfill).
const GENERATE_ROLLUP: &str = "INSERT INTO usage_hourly (hour_start_ms, key_id, account_id, \
     profile, provider, requested_model, requests, errors, prompt_tokens, completion_tokens, \
     cached_tokens, cost_micro_usd) \
     SELECT started_at_ms - ((started_at_ms % 3600000) + 3600000) % 3600000, key_id, \
     account_id, profile, provider, requested_model, COUNT(*), \
     COUNT(*) FILTER (WHERE status >= 400), SUM(prompt_tokens)::BIGINT, \
     SUM(completion_tokens)::BIGINT, SUM(cached_tokens)::BIGINT, SUM(cost_micro_usd)::BIGINT \
     FROM usage_events GROUP BY 1, key_id, account_id, profile, provider, requested_model";

/// Empties both tables and fills them with `rows` events of the day at
/// `day_start_ms` (its partition made by the store) and their rollup.
async fn generate(
    store: &PgUsageStore,
    url: &str,
    day_start_ms: i64,
    rows: i64,
) -> anyhow::Result<()> {
    store.insert_batch(&make_records(1, day_start_ms)).await?;
    let mut connection = PgConnection::connect(url).await?;
    sqlx::raw_sql("TRUNCATE usage_events, usage_hourly")
        .execute(&mut connection)
        .await?;
    let started = Instant::now();
    let events = sqlx::query(GENERATE_EVENTS)
        .bind(day_start_ms)
        .bind(rows)
        .execute(&mut connection)
        .await?
        .rows_affected();
    let events_time = started.elapsed();
    let started = Instant::now();
    let rollup = sqlx::query(GENERATE_ROLLUP)
        .execute(&mut connection)
        .await?
        .rows_affected();
    let rollup_time = started.elapsed();
    // One statement per call: several in one string run as a transaction,
    // which VACUUM refuses.
    for table in ["usage_events", "usage_hourly"] {
        sqlx::raw_sql(&format!("VACUUM ANALYZE {table}"))
            .execute(&mut connection)
            .await?;
    }
    println!(
        "generated {events} events in {:.1} s and {rollup} rollup rows in {:.1} s",
        events_time.as_secs_f64(),
        rollup_time.as_secs_f64()
    );
    print_sizes(&mut connection).await?;
    Ok(())
}

async fn print_sizes(connection: &mut PgConnection) -> anyhow::Result<()> {
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT relname::TEXT, pg_total_relation_size(oid) FROM pg_class \
         WHERE relkind = 'r' AND (relname = 'usage_hourly' OR relname LIKE 'usage_events_p%') \
         ORDER BY relname",
    )
    .fetch_all(connection)
    .await?;
    for (table, bytes) in sizes {
        println!("  {table}: {:.0} MB with indexes", bytes as f64 / 1e6);
    }
    Ok(())
}
