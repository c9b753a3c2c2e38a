//! Reading the usage ledger (Postgres) the way an operator would: one
//! request's row, once analytics has stored it.

use std::time::{Duration, Instant};

use sqlx::Connection;

/// One request's row of the usage ledger: its counts, cost and whether the
/// catalog (or the account) priced it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerRow {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micro_usd: i64,
    pub priced: bool,
}

/// The ledger row of `request_id`, waiting up to 20 s for analytics to
/// store it.
pub async fn ledger_row(database_url: &str, request_id: &str) -> LedgerRow {
    let mut connection = sqlx::PgConnection::connect(database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row: Option<LedgerRow> = sqlx::query_as(
            "SELECT prompt_tokens, completion_tokens, cached_tokens, cache_write_5m_tokens, \
             cache_write_1h_tokens, reasoning_tokens, cost_micro_usd, priced \
             FROM usage_events WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&mut connection)
        .await
        .unwrap_or(None);
        if let Some(row) = row {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "{request_id} never reached the ledger"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
