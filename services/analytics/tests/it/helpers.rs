//! A fresh analytics service on SQLite, a store that fails on demand, and
//! small builders for events and queries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tollgate_analytics::{AnalyticsService, AnalyticsSettings, RetentionSettings};
use tollgate_core::clock::SystemClock;
use tollgate_proto::v1::analytics_server::AnalyticsServer;
use tollgate_proto::v1::{UsageEvent, UsageQuery, UsageRow};
use tollgate_proto::{Analytics, AnalyticsHandle};
use tollgate_telemetry::Metrics;
use tollgate_usage_store::{
    InsertOutcome, RetentionOutcome, SqliteUsageStore, UsageError, UsageFilter, UsageRecord,
    UsageRow as StoreRow, UsageStore,
};

/// A UTC midnight.
pub const T0: i64 = 1_728_000_000_000;

pub struct TestApp {
    pub analytics: AnalyticsHandle,
    /// The same service as a tonic service, for [`serve`].
    pub grpc: AnalyticsServer<AnalyticsService>,
    pub store: Arc<FlakyStore>,
    pub metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn handle(&self) -> AnalyticsHandle {
        self.analytics.clone()
    }
}

/// An analytics service over a fresh SQLite usage store (healthy until told
/// otherwise), built by the crate's `build`. Retention is off (the events
/// are dated in the past) and there is no usage stream, so the app has no
/// work of its own to run; the tests of retention and of the stream
/// consumer drive those themselves.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteUsageStore::open(&dir.path().join("usage.db"))
        .await
        .unwrap();
    let store = Arc::new(FlakyStore {
        inner: sqlite,
        failures_left: AtomicU64::new(0),
        insert_calls: AtomicU64::new(0),
    });
    let metrics = Arc::new(Metrics::new());
    let settings = AnalyticsSettings {
        retention: RetentionSettings {
            days: 0,
            ..RetentionSettings::default()
        },
        ..AnalyticsSettings::default()
    };
    let deps = tollgate_analytics::Deps {
        store: store.clone(),
        metrics: metrics.clone(),
        clock: Arc::new(SystemClock),
        stream: None,
    };
    let app = tollgate_analytics::build(settings, deps).unwrap();
    TestApp {
        analytics: app.handle(),
        grpc: app.grpc_service(),
        store,
        metrics,
        _dir: dir,
    }
}

/// The real SQLite store, except that the next `failures_left` batch
/// inserts fail as if the database were unreachable.
pub struct FlakyStore {
    inner: SqliteUsageStore,
    failures_left: AtomicU64,
    insert_calls: AtomicU64,
}

impl FlakyStore {
    pub fn fail_next(&self, inserts: u64) {
        self.failures_left.store(inserts, Ordering::SeqCst);
    }

    /// Insert calls finished (failed or committed).
    pub fn insert_calls(&self) -> u64 {
        self.insert_calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl UsageStore for FlakyStore {
    async fn insert_batch(&self, records: &[UsageRecord]) -> Result<InsertOutcome, UsageError> {
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        let result = if failing {
            Err(UsageError::Database(sqlx::Error::PoolTimedOut))
        } else {
            self.inner.insert_batch(records).await
        };
        // Counted once the call is over, so a caller that sees the count
        // also sees what it committed.
        self.insert_calls.fetch_add(1, Ordering::SeqCst);
        result
    }

    async fn query(&self, filter: &UsageFilter) -> Result<Vec<StoreRow>, UsageError> {
        self.inner.query(filter).await
    }

    async fn tokens_by_account_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, u64)>, UsageError> {
        self.inner.tokens_by_account_since(since_ms).await
    }

    async fn delete_before(&self, cutoff_ms: i64) -> Result<RetentionOutcome, UsageError> {
        self.inner.delete_before(cutoff_ms).await
    }
}

/// A successful request's event, with its own key so each shows as a group.
pub fn event(n: usize) -> UsageEvent {
    UsageEvent {
        request_id: format!("req-{n}"),
        started_at_ms: T0 + i64::try_from(n).unwrap(),
        finished_at_ms: T0 + i64::try_from(n).unwrap() + 40,
        key_id: format!("key-{n}"),
        profile: "default".into(),
        account_id: "acct-1".into(),
        provider: "mock".into(),
        requested_model: "mock-echo".into(),
        upstream_model: "mock-echo".into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cost_micro_usd: 3,
        latency_ms: 40,
        status: 200,
        attempts: 1,
        ..UsageEvent::default()
    }
}

pub fn query(group_by: &str) -> UsageQuery {
    UsageQuery {
        group_by: group_by.into(),
        ..UsageQuery::default()
    }
}

/// The rows `query` returns through the trait.
pub async fn rows(analytics: &dyn Analytics, query: UsageQuery) -> Vec<UsageRow> {
    analytics
        .query_usage(tonic::Request::new(query))
        .await
        .unwrap()
        .into_inner()
        .rows
}

/// Asserts that each of `0..n` was stored exactly once (one row per key,
/// one request each) and nothing else was.
pub async fn assert_stored_once(analytics: &dyn Analytics, n: usize) {
    let mut by_key = rows(analytics, query("key")).await;
    by_key.sort_by_key(|row| row.group[4..].parse::<usize>().unwrap());
    let groups: Vec<_> = by_key.iter().map(|row| row.group.clone()).collect();
    let expected: Vec<_> = (0..n).map(|i| format!("key-{i}")).collect();
    assert_eq!(groups, expected);
    assert!(
        by_key.iter().all(|row| row.requests == 1),
        "a request counted twice"
    );
}

/// Waits until `condition` holds (at most 5 s).
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Serves `analytics` over gRPC on `listener`.
pub fn serve(
    listener: TcpListener,
    analytics: AnalyticsServer<AnalyticsService>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(analytics)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    })
}

/// A local address nothing listens on (yet).
pub fn unused_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}
