//! The conformance suite and the Postgres-only behaviour (day partitions,
//! retention, large batches, concurrent replicas), each test on a fresh
//! database of the real server.

use sqlx::{PgPool, Row};
use tollgate_core::clock::MS_PER_DAY;
use tollgate_store_support::test_postgres::TestDatabase;

use super::*;
use crate::conformance::usage_conformance_tests;

const DAY: i64 = MS_PER_DAY;
/// A UTC midnight (2024-10-04).
const T0: i64 = 20_000 * DAY;

async fn fresh_store() -> (TestDatabase, PgUsageStore) {
    let database = TestDatabase::create().await;
    let store = store_on(&database).await;
    (database, store)
}

/// A usage store on `database` with a small pool of its own.
async fn store_on(database: &TestDatabase) -> PgUsageStore {
    PgUsageStore::from_pool(database.pool().await)
        .await
        .expect("migrate the test database")
}

usage_conformance_tests!(fresh_store);

fn event(request_id: &str, started_at_ms: i64) -> UsageRecord {
    UsageRecord {
        request_id: request_id.to_owned(),
        started_at_ms,
        finished_at_ms: started_at_ms + 100,
        key_id: "key-a".into(),
        profile: "default".into(),
        account_id: "acct-1".into(),
        provider: "openai".into(),
        requested_model: "gpt-4o".into(),
        upstream_model: "gpt-4o".into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cost_micro_usd: 100,
        status: 200,
        attempts: 1,
        ..UsageRecord::default()
    }
}

/// The partitions of `usage_events`, by name.
async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT child.relname::text FROM pg_inherits \
         JOIN pg_class child ON child.oid = pg_inherits.inhrelid \
         WHERE pg_inherits.inhparent = 'usage_events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `(table, rows)` for each partition holding rows, by name.
async fn rows_per_partition(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query(
        "SELECT tableoid::regclass::text AS part, COUNT(*) AS n \
         FROM usage_events GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get("part"), row.get("n")))
    .collect()
}

async fn total_requests(store: &PgUsageStore) -> u64 {
    let rows = store.query(&UsageFilter::new(GroupBy::Key)).await.unwrap();
    rows.iter().map(|row| row.requests).sum()
}

/// Raw rows in `usage_events`, all partitions.
async fn raw_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM usage_events")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[tokio::test]
async fn events_on_several_days_land_in_their_day_partitions() {
    let (_database, store) = fresh_store().await;
    let batch = [
        event("req-1", T0),
        event("req-2", T0 + 5),
        event("req-3", T0 + DAY - 1),
        event("req-4", T0 + DAY),
        event("req-5", T0 + 3 * DAY + 5),
    ];
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (5, 0));

    assert_eq!(
        partitions(&store.pool).await,
        owned(&[
            "usage_events_default",
            "usage_events_p20241004",
            "usage_events_p20241005",
            "usage_events_p20241007",
        ])
    );
    assert_eq!(
        rows_per_partition(&store.pool).await,
        [
            ("usage_events_p20241004".to_owned(), 3),
            ("usage_events_p20241005".to_owned(), 1),
            ("usage_events_p20241007".to_owned(), 1),
        ]
    );
    let bounds: String = sqlx::query_scalar(
        "SELECT pg_get_expr(relpartbound, oid) FROM pg_class \
         WHERE relname = 'usage_events_p20241004'",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        bounds,
        "FOR VALUES FROM ('1728000000000') TO ('1728086400000')"
    );
}

#[tokio::test]
async fn event_redelivered_in_a_later_batch_is_a_duplicate() {
    let (database, store) = fresh_store().await;
    let a = event("req-a", T0 + 10);
    let b = event("req-b", T0 + DAY + 10);
    let first = store.insert_batch(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!((first.written, first.duplicates), (2, 0));

    let later = store
        .insert_batch(&[event("req-c", T0 + 2 * DAY), a.clone()])
        .await
        .unwrap();
    assert_eq!((later.written, later.duplicates), (1, 1));

    // Another replica, which has not seen these days yet, gets the same
    // redelivery.
    let replica = store_on(&database).await;
    let again = replica.insert_batch(&[b, a]).await.unwrap();
    assert_eq!((again.written, again.duplicates), (0, 2));
    assert_eq!(total_requests(&store).await, 3);
}

#[tokio::test]
async fn a_batch_of_ten_thousand_events_is_written_whole() {
    let (_database, store) = fresh_store().await;
    let batch: Vec<_> = (0..10_000)
        .map(|i| event(&format!("req-{i:05}"), T0 + i * (DAY / 2_500)))
        .collect();
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (10_000, 0));
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (0, 10_000));

    let per_partition = rows_per_partition(&store.pool).await;
    assert_eq!(
        per_partition,
        [
            ("usage_events_p20241004".to_owned(), 2_500),
            ("usage_events_p20241005".to_owned(), 2_500),
            ("usage_events_p20241006".to_owned(), 2_500),
            ("usage_events_p20241007".to_owned(), 2_500),
        ]
    );
    let rows = store
        .query(&UsageFilter::new(GroupBy::Account))
        .await
        .unwrap();
    assert_eq!(rows[0].requests, 10_000);
    assert_eq!(rows[0].cost_micro_usd, 1_000_000);
}

#[tokio::test]
async fn retention_drops_old_partitions_and_keeps_recent_ones() {
    let (_database, store) = fresh_store().await;
    let batch = [
        event("req-old", T0 - 10 * DAY),
        event("req-older", T0 - 3 * DAY),
        event("req-recent", T0 - DAY + 1),
        event("req-today", T0 + 1),
        event("req-1969", -DAY),
    ];
    store.insert_batch(&batch).await.unwrap();
    assert_eq!(partitions(&store.pool).await.len(), 5);

    let outcome = store.drop_partitions_before(T0 - 2 * DAY).await.unwrap();
    assert_eq!(
        outcome,
        RetentionOutcome {
            partitions_dropped: 2,
            rows_deleted: 1,
            rollup_rows_deleted: 0,
        }
    );
    assert_eq!(
        partitions(&store.pool).await,
        owned(&[
            "usage_events_default",
            "usage_events_p20241003",
            "usage_events_p20241004",
        ])
    );
    assert_eq!(raw_rows(&store.pool).await, 2);
    // The hourly rollup outlives the raw rows: whole-hour queries still see
    // every request.
    assert_eq!(total_requests(&store).await, 5);

    // Nothing more to drop; a partition is dropped only once its whole day
    // lies before the cutoff.
    let again = store.drop_partitions_before(T0 - DAY + 1).await.unwrap();
    assert_eq!(again, RetentionOutcome::default());

    // A late event for a dropped day gets its partition back.
    store
        .insert_batch(&[event("req-late", T0 - 3 * DAY + 7)])
        .await
        .unwrap();
    assert_eq!(
        rows_per_partition(&store.pool).await,
        [
            ("usage_events_p20241001".to_owned(), 1),
            ("usage_events_p20241003".to_owned(), 1),
            ("usage_events_p20241004".to_owned(), 1),
        ]
    );
}

#[tokio::test]
async fn retention_by_age_counts_whole_days_back_from_today() {
    let (_database, store) = fresh_store().await;
    let now = tollgate_core::clock::now_ms();
    let batch = [
        event("req-now", now),
        event("req-yesterday", now - DAY),
        event("req-30-days", now - 30 * DAY),
        event("req-31-days", now - 31 * DAY),
    ];
    store.insert_batch(&batch).await.unwrap();
    let cutoff = crate::retention_cutoff_ms(30, now).unwrap();
    let outcome = store.delete_before(cutoff).await.unwrap();
    assert_eq!(outcome.partitions_dropped, 1);
    assert_eq!(outcome.rollup_rows_deleted, 1);
    let mut expected: Vec<_> = [now - 30 * DAY, now - DAY, now]
        .into_iter()
        .map(|at| DayPartition::containing(at).unwrap().table_name())
        .collect();
    expected.insert(0, "usage_events_default".to_owned());
    assert_eq!(partitions(&store.pool).await, expected);
    assert_eq!(raw_rows(&store.pool).await, 3);
    assert_eq!(total_requests(&store).await, 3);
}

#[tokio::test]
async fn rows_written_while_their_day_had_no_partition_move_into_it() {
    let (database, store) = fresh_store().await;
    let replica = store_on(&database).await;
    replica.insert_batch(&[event("req-x", T0)]).await.unwrap();
    // Retention elsewhere drops the day; the replica still believes it exists.
    store.drop_partitions_before(T0 + DAY).await.unwrap();
    replica
        .insert_batch(&[event("req-y", T0 + 1)])
        .await
        .unwrap();
    assert_eq!(
        rows_per_partition(&store.pool).await,
        [("usage_events_default".to_owned(), 1)]
    );

    store.insert_batch(&[event("req-z", T0 + 2)]).await.unwrap();
    assert_eq!(
        rows_per_partition(&store.pool).await,
        [("usage_events_p20241004".to_owned(), 2)]
    );
    let again = replica
        .insert_batch(&[event("req-y", T0 + 1)])
        .await
        .unwrap();
    assert_eq!((again.written, again.duplicates), (0, 1));
    // Moving rows between partitions does not add them to the rollup again;
    // req-x's day was dropped, its hourly totals were not.
    assert_eq!(total_requests(&store).await, 3);
}

#[tokio::test]
async fn start_times_outside_the_partitioned_years_stay_in_the_default_partition() {
    let (_database, store) = fresh_store().await;
    // 10000-01-01, past the last day a partition name can carry.
    let year_10000 = 253_402_300_800_000;
    let batch = [event("req-1969", -1), event("req-10000", year_10000)];
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (2, 0));
    assert_eq!(
        rows_per_partition(&store.pool).await,
        [("usage_events_default".to_owned(), 2)]
    );
    let daily = store
        .query(&UsageFilter {
            bucket: Some(Bucket::Day),
            ..UsageFilter::new(GroupBy::Key)
        })
        .await
        .unwrap();
    let starts: Vec<_> = daily.iter().map(|row| row.bucket_start_ms).collect();
    assert_eq!(starts, [-DAY, year_10000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_creating_the_same_new_days_at_once_both_succeed() {
    let (database, store) = fresh_store().await;
    let replica = store_on(&database).await;
    let batch = |prefix: &str| -> Vec<UsageRecord> {
        (0..20)
            .map(|day| event(&format!("{prefix}-{day}"), T0 + day * DAY))
            .collect()
    };
    let (mine, theirs) = (batch("mine"), batch("theirs"));
    let (first, second) = tokio::join!(store.insert_batch(&mine), replica.insert_batch(&theirs));
    assert_eq!(first.unwrap().written, 20);
    assert_eq!(second.unwrap().written, 20);
    assert_eq!(partitions(&store.pool).await.len(), 21);
    assert_eq!(total_requests(&store).await, 40);
}

#[tokio::test]
async fn groups_sort_by_byte_value_whatever_the_database_collation() {
    let (_database, store) = fresh_store().await;
    // The test database sorts text naturally: `alpha` before `Zed`.
    let natural: bool = sqlx::query_scalar("SELECT 'alpha' < 'Zed'")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(natural, "the test database must not use byte order");

    let batch: Vec<_> = ["alpha", "Zed", "_x"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut record = event(&format!("req-{i}"), T0);
            record.key_id = (*name).to_owned();
            record.account_id = (*name).to_owned();
            record
        })
        .collect();
    store.insert_batch(&batch).await.unwrap();
    let rows = store.query(&UsageFilter::new(GroupBy::Key)).await.unwrap();
    let groups: Vec<_> = rows.iter().map(|row| row.group.as_str()).collect();
    assert_eq!(groups, ["Zed", "_x", "alpha"]);
    let accounts: Vec<_> = store
        .tokens_by_account_since(T0)
        .await
        .unwrap()
        .into_iter()
        .map(|(account, _)| account)
        .collect();
    assert_eq!(accounts, ["Zed", "_x", "alpha"]);
}

#[tokio::test]
async fn connect_migrates_once_and_reconnecting_keeps_the_rows() {
    let database = TestDatabase::create().await;
    let store = PgUsageStore::connect(&database.url()).await.unwrap();
    store.insert_batch(&[event("req-1", T0)]).await.unwrap();
    store.close().await;

    let store = PgUsageStore::connect(&database.url()).await.unwrap();
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        migrations,
        i64::try_from(MIGRATOR.migrations.len()).unwrap()
    );
    let outcome = store.insert_batch(&[event("req-1", T0)]).await.unwrap();
    assert_eq!(outcome.duplicates, 1);
    store.close().await;
}

#[tokio::test]
async fn migrating_an_existing_database_backfills_the_rollup() {
    let database = TestDatabase::create().await;
    let pool = database.pool().await;
    // The schema before the rollup, with events already stored (in the
    // default partition: no day partitions yet).
    let before_rollup = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations[..1].to_vec().into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before_rollup.run(&pool).await.unwrap();
    let mut events = Vec::new();
    for (i, (at, status)) in [
        (T0, 200),
        (T0 + 59 * 60_000, 500),
        (T0 + 3_600_000, 200),
        (-1, 429),
    ]
    .into_iter()
    .enumerate()
    {
        let mut record = event(&format!("req-{i}"), at);
        record.status = status;
        record.prompt_tokens = 10 + u32::try_from(i).unwrap();
        events.push(record);
    }
    for record in &events {
        sqlx::query(
            "INSERT INTO usage_events VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, 0, 0, $13, '', 1, FALSE)",
        )
        .bind(&record.request_id)
        .bind(record.started_at_ms)
        .bind(record.finished_at_ms)
        .bind(&record.key_id)
        .bind(&record.profile)
        .bind(&record.account_id)
        .bind(&record.provider)
        .bind(&record.requested_model)
        .bind(&record.upstream_model)
        .bind(i64::from(record.prompt_tokens))
        .bind(i64::from(record.completion_tokens))
        .bind(record.cost_micro_usd)
        .bind(i32::try_from(record.status).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    }

    let store = PgUsageStore::from_pool(pool).await.unwrap();
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
        [
            (-3_600_000, 1, 1, 13),
            (T0, 2, 1, 21),
            (T0 + 3_600_000, 1, 0, 12),
        ]
    );
    // Backfilled rows are not counted again when redelivered.
    let again = store.insert_batch(&events).await.unwrap();
    assert_eq!((again.written, again.duplicates), (0, 4));
    assert_eq!(total_requests(&store).await, 4);
}

#[tokio::test]
async fn migrating_marks_earlier_requests_without_a_cost_unpriced() {
    let database = TestDatabase::create().await;
    let pool = database.pool().await;
    // The schema before the token details, with events already stored in a
    // day partition and in the default one, and their rollup.
    let before_details = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations[..2].to_vec().into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before_details.run(&pool).await.unwrap();
    let old = PgUsageStore {
        pool: pool.clone(),
        known_days: Arc::default(),
    };
    partition_ddl::create_partition(&pool, DayPartition::containing(T0).unwrap())
        .await
        .unwrap();
    let rows = [
        ("priced", T0, 10, 7),
        ("unpriced", T0 + 1, 10, 0),
        ("empty", T0 + 2, 0, 0),
        ("unpriced-early", -1, 5, 0),
    ];
    for (id, at, tokens, cost) in rows {
        sqlx::query(
            "INSERT INTO usage_events VALUES \
             ($1, $2, $2, 'key-a', '', '', '', '', '', $3, 0, 0, $4, 0, 0, 200, '', 1, FALSE)",
        )
        .bind(id)
        .bind(at)
        .bind(i64::from(tokens))
        .bind(i64::from(cost))
        .execute(&old.pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO usage_hourly (hour_start_ms, key_id, account_id, profile, provider, \
         requested_model, requests, errors, prompt_tokens, completion_tokens, cached_tokens, \
         cost_micro_usd) VALUES ($1, 'key-a', '', '', '', '', 3, 0, 20, 0, 0, 7), \
         (-3600000, 'key-a', '', '', '', '', 1, 0, 5, 0, 0, 0)",
    )
    .bind(T0)
    .execute(&old.pool)
    .await
    .unwrap();

    let store = PgUsageStore::from_pool(pool).await.unwrap();
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
            ("unpriced".to_owned(), false),
            ("unpriced-early".to_owned(), false),
        ]
    );
    let hourly = store
        .query(&UsageFilter {
            bucket: Some(Bucket::Hour),
            ..UsageFilter::new(GroupBy::Key)
        })
        .await
        .unwrap();
    let cells: Vec<_> = hourly
        .iter()
        .map(|row| (row.bucket_start_ms, row.requests, row.unpriced_requests))
        .collect();
    assert_eq!(cells, [(-3_600_000, 1, 1), (T0, 3, 1)]);
}
