//! Creating and dropping the day partitions of `usage_events`.
//!
//! Every change runs in its own short transaction under one advisory lock, so
//! analytics replicas that need the same new day at once create it once, and
//! retention never races a creation. Identifiers and bounds in the DDL come
//! from [`DayPartition`] (digits of a date), never from input.

use sqlx::{Executor, PgConnection, PgPool};

use super::partition::DayPartition;
use crate::RetentionOutcome;

/// The advisory lock every partition change holds ("tollusag" in ASCII).
const PARTITION_LOCK: i64 = 0x746f_6c6c_7573_6167;

/// Creates `partition` unless it exists. Rows of its day that the default
/// partition holds (written while the day had no partition) are moved into
/// it: Postgres refuses to create a partition whose range the default
/// partition still has rows for.
pub(crate) async fn create_partition(
    pool: &PgPool,
    partition: DayPartition,
) -> Result<(), sqlx::Error> {
    let name = partition.table_name();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PARTITION_LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?;
    if exists {
        tx.commit().await?;
        return Ok(());
    }
    run(
        &mut tx,
        "CREATE TEMPORARY TABLE usage_events_moving (LIKE usage_events) ON COMMIT DROP",
    )
    .await?;
    let parked = sqlx::query(
        "WITH moved AS (DELETE FROM usage_events_default \
         WHERE started_at_ms >= $1 AND started_at_ms < $2 RETURNING *) \
         INSERT INTO usage_events_moving SELECT * FROM moved",
    )
    .bind(partition.start_ms())
    .bind(partition.end_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // Only digits reach this text: the date in the name and two integers.
    let create = format!(
        "CREATE TABLE {name} PARTITION OF usage_events FOR VALUES FROM ({}) TO ({})",
        partition.start_ms(),
        partition.end_ms()
    );
    run(&mut tx, &create).await?;
    if parked > 0 {
        run(
            &mut tx,
            "INSERT INTO usage_events SELECT * FROM usage_events_moving",
        )
        .await?;
    }
    tx.commit().await?;
    if parked > 0 {
        tracing::warn!(
            partition = %name,
            rows = parked,
            "moved usage rows from the default partition into their new day partition"
        );
    } else {
        tracing::info!(partition = %name, "created usage partition");
    }
    Ok(())
}

/// Drops every day partition whose whole day lies before `cutoff_ms`, and
/// deletes the default partition's rows that started before it (counted in
/// `rows_deleted`). Each drop is its own transaction, so queries wait for
/// at most one at a time. The rollup is not touched.
pub(crate) async fn drop_partitions_before(
    pool: &PgPool,
    cutoff_ms: i64,
) -> Result<RetentionOutcome, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT child.relname::text FROM pg_inherits \
         JOIN pg_class child ON child.oid = pg_inherits.inhrelid \
         WHERE pg_inherits.inhparent = 'usage_events'::regclass",
    )
    .fetch_all(pool)
    .await?;
    let mut expired: Vec<DayPartition> = names
        .iter()
        .filter_map(|name| DayPartition::from_table_name(name))
        .filter(|partition| partition.end_ms() <= cutoff_ms)
        .collect();
    expired.sort();

    let mut outcome = RetentionOutcome::default();
    for partition in expired {
        let name = partition.table_name();
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PARTITION_LOCK)
            .execute(&mut *tx)
            .await?;
        run(&mut tx, &format!("DROP TABLE IF EXISTS {name}")).await?;
        tx.commit().await?;
        tracing::info!(partition = %name, "dropped usage partition past retention");
        outcome.partitions_dropped += 1;
    }
    outcome.rows_deleted = sqlx::query("DELETE FROM usage_events_default WHERE started_at_ms < $1")
        .bind(cutoff_ms)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(outcome)
}

/// Runs one statement without parameters (DDL cannot take any) as a simple
/// query.
async fn run(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sql).await?;
    Ok(())
}
