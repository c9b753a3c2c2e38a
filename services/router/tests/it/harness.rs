//! A router in front of the real quota service (SQLite in a temporary
//! directory, in-process counters), the real worker and real mock upstreams
//! on 127.0.0.1 port 0, with a collector for its usage events; each service
//! made by its crate's own `build`, as the binary makes them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use tollgate_control_store::SqliteControlStore;
use tollgate_control_store::crypto::{MasterKey, SecretBox};
use tollgate_core::clock::{self, SystemClock};
use tollgate_core::ids;
use tollgate_counters::MemoryCounters;
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs};
use tollgate_proto::v1::{AccountRecord, AccountSpec, ChatRequest, IdRequest, UsageEvent};
use tollgate_proto::{Quota, WorkerHandle};
use tollgate_quota::{QuotaService, QuotaSettings};
use tollgate_router::{RouterService, RouterSettings, UsageEmitter};
use tollgate_telemetry::Metrics;
use tollgate_worker::WorkerSettings;
use tonic::Request;

/// The model every test account serves.
pub const MODEL: &str = "gpt-test";
/// The secret every test account holds and every mock upstream demands.
pub const SECRET: &str = "sk-upstream-secret-0123456789";
/// What the edge would reserve for a short request.
pub const ESTIMATE: u32 = 50;
/// How long a test waits for work that finishes off the caller's path.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// Keeps every usage event the router emits, in order.
#[derive(Default)]
pub struct UsageLog {
    events: Mutex<Vec<UsageEvent>>,
}

impl UsageEmitter for UsageLog {
    fn emit(&self, event: UsageEvent) {
        self.events.lock().unwrap().push(event);
    }
}

impl UsageLog {
    pub fn events(&self) -> Vec<UsageEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The events of request `request_id`, once at least one arrived, after
    /// a short grace period in which a duplicate would show up.
    pub async fn of(&self, request_id: &str) -> Vec<UsageEvent> {
        let matching = || -> Vec<UsageEvent> {
            self.events()
                .into_iter()
                .filter(|event| event.request_id == request_id)
                .collect()
        };
        eventually("a usage event", || {
            let found = !matching().is_empty();
            async move { found }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        matching()
    }

    /// The one event of `request_id` (fails on none or several).
    pub async fn only(&self, request_id: &str) -> UsageEvent {
        let events = self.of(request_id).await;
        assert_eq!(events.len(), 1, "usage events of {request_id}: {events:?}");
        events.into_iter().next().unwrap()
    }
}

pub struct Gateway {
    pub router: RouterService,
    pub quota: Arc<QuotaService>,
    pub usage: Arc<UsageLog>,
    _dir: TempDir,
}

pub async fn gateway() -> Gateway {
    gateway_with(QuotaSettings::default()).await
}

/// A gateway whose quota runs with `settings`.
pub async fn gateway_with(settings: QuotaSettings) -> Gateway {
    gateway_with_workers(settings, Vec::new()).await
}

/// A gateway whose worker pool takes `before` (in turn) ahead of its one
/// working in-process worker.
pub async fn gateway_with_workers(settings: QuotaSettings, before: Vec<WorkerHandle>) -> Gateway {
    let dir = TempDir::new().unwrap();
    let store = SqliteControlStore::open(&dir.path().join("control.db"))
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::new());
    let quota = tollgate_quota::build(
        settings,
        tollgate_quota::Deps {
            control: Arc::new(store),
            counters: Arc::new(MemoryCounters::new()),
            secrets: SecretBox::new(&MasterKey::generate().unwrap()),
            clock: Arc::new(SystemClock),
            metrics: Arc::clone(&metrics),
            broadcast: None,
        },
    )
    .await
    .unwrap();
    let quota = Arc::clone(quota.service());
    let worker = tollgate_worker::build(WorkerSettings::default(), Arc::clone(&metrics))
        .unwrap()
        .handle();
    let usage = Arc::new(UsageLog::default());
    let mut workers = before;
    workers.push(worker);
    let router = tollgate_router::build(
        RouterSettings {
            max_attempts: 3,
            upstream_timeout_ms: 10_000,
            ..RouterSettings::default()
        },
        tollgate_router::Deps {
            quota: quota.clone(),
            workers,
            usage: usage.clone(),
            metrics,
        },
    );
    let router = router.service().clone();
    Gateway {
        router,
        quota,
        usage,
        _dir: dir,
    }
}

/// A mock upstream that demands [`SECRET`].
pub async fn upstream(args: MockUpstreamArgs) -> MockUpstream {
    tollgate_mock_upstream::spawn(MockUpstreamArgs {
        api_key: Some(SECRET.to_owned()),
        ..args
    })
    .await
    .unwrap()
}

pub async fn healthy_upstream() -> MockUpstream {
    upstream(MockUpstreamArgs::any_port()).await
}

impl Gateway {
    /// An OpenAI-compatible account on `upstream` serving [`MODEL`].
    pub async fn account(
        &self,
        name: &str,
        upstream: &MockUpstream,
        priority: i32,
        daily_token_limit: Option<u64>,
    ) -> AccountRecord {
        self.quota
            .create_account(Request::new(AccountSpec {
                provider: "openai_compatible".into(),
                name: name.into(),
                secret: SECRET.into(),
                base_url: upstream.base_url(),
                models: vec![MODEL.into()],
                priority: Some(priority),
                daily_token_limit,
                ..AccountSpec::default()
            }))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn get_account(&self, id: &str) -> AccountRecord {
        self.quota
            .get_account(Request::new(IdRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
    }

    /// The account once its reservations are all released or settled.
    pub async fn settled_account(&self, id: &str) -> AccountRecord {
        eventually("the account's reservations to be settled", || async {
            self.get_account(id).await.tokens_reserved == 0
        })
        .await;
        self.get_account(id).await
    }
}

/// A chat request as the edge sends it, asking for `content`.
pub fn chat_request(content: &str, stream: bool) -> ChatRequest {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
    });
    if stream {
        body["stream"] = json!(true);
    }
    ChatRequest {
        request_id: ids::request_id(),
        key_id: "key_test".into(),
        profile: String::new(),
        model: MODEL.into(),
        body: body.to_string().into_bytes().into(),
        stream,
        include_usage: stream,
        // A reservation of exactly ESTIMATE tokens.
        prompt_tokens: ESTIMATE,
        max_completion_tokens: Some(0),
        choices: 1,
        worst_prompt_tokens: ESTIMATE,
        received_at_ms: clock::now_ms(),
        account_id: String::new(),
        health_probe: false,
    }
}

/// Polls `check` until it holds, failing the test after a few seconds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
