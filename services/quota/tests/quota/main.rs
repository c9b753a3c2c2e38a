//! The quota service through its `Quota` trait, on a real SQLite file in a
//! temporary directory, in-process counters and a manual clock.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod activity;
mod invalidations;
mod key_limits;
mod keys;
mod leases;
mod outcomes;
mod pinned;
mod probes;
mod profiles;
mod routes;
mod selection;

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tollgate_control_store::SqliteControlStore;
use tollgate_control_store::crypto::{MasterKey, SecretBox};
use tollgate_core::GatewayError;
use tollgate_core::clock::{MS_PER_DAY, ManualClock};
use tollgate_counters::MemoryCounters;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    AccountRecord, AccountSpec, LeaseGrant, LeaseRequest, SettleRequest, Usage,
};
use tollgate_quota::{BroadcastRedis, QuotaService, QuotaSettings};
use tollgate_shutdown::Shutdown;
use tollgate_telemetry::Metrics;
use tonic::Request;

/// Noon UTC on 2024-10-04.
pub const NOON: i64 = 20_000 * MS_PER_DAY + MS_PER_DAY / 2;
pub const NEXT_MIDNIGHT: i64 = 20_001 * MS_PER_DAY;

pub struct TestApp {
    pub quota: Arc<QuotaService>,
    pub clock: ManualClock,
    /// The same database the service writes, for reading raw rows.
    pub store: SqliteControlStore,
    pub secrets: SecretBox,
    pub metrics: Arc<Metrics>,
    pub dir: TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(QuotaSettings::default()).await
}

pub async fn spawn_app_with(settings: QuotaSettings) -> TestApp {
    spawn_app_on(settings, None).await
}

/// A quota service with `settings`, broadcasting its invalidations through
/// `broadcast` if given.
pub async fn spawn_app_on(settings: QuotaSettings, broadcast: Option<BroadcastRedis>) -> TestApp {
    let dir = TempDir::new().unwrap();
    let store = SqliteControlStore::open(&dir.path().join("control.db"))
        .await
        .unwrap();
    let secrets = SecretBox::new(&MasterKey::generate().unwrap());
    let clock = ManualClock::at(NOON);
    let metrics = Arc::new(Metrics::new());
    let deps = deps(&store, &secrets, &clock, &metrics, broadcast);
    TestApp {
        quota: start(settings, deps).await,
        clock,
        store,
        secrets,
        metrics,
        dir,
    }
}

/// What a quota replica over `store`, `secrets` and `clock` is built on
/// (its own in-process counters).
fn deps(
    store: &SqliteControlStore,
    secrets: &SecretBox,
    clock: &ManualClock,
    metrics: &Arc<Metrics>,
    broadcast: Option<BroadcastRedis>,
) -> tollgate_quota::Deps {
    tollgate_quota::Deps {
        control: Arc::new(store.clone()),
        counters: Arc::new(MemoryCounters::new()),
        secrets: secrets.clone(),
        clock: Arc::new(clock.clone()),
        metrics: Arc::clone(metrics),
        broadcast,
    }
}

/// Builds the service the way the binary does and runs it (its broadcast,
/// if any) until the test ends.
async fn start(settings: QuotaSettings, deps: tollgate_quota::Deps) -> Arc<QuotaService> {
    let app = tollgate_quota::build(settings, deps).await.unwrap();
    let quota = Arc::clone(app.service());
    tokio::spawn(app.run_until(Shutdown::new(Duration::ZERO)));
    quota
}

impl TestApp {
    /// Another quota replica over this app's store, clock and secrets.
    pub async fn replica(
        &self,
        settings: QuotaSettings,
        broadcast: Option<BroadcastRedis>,
    ) -> Arc<QuotaService> {
        let deps = deps(
            &self.store,
            &self.secrets,
            &self.clock,
            &self.metrics,
            broadcast,
        );
        start(settings, deps).await
    }
}

/// The gateway error a failed call carries.
pub fn gateway_error(status: tonic::Status) -> GatewayError {
    GatewayError::from_status(&status)
}

/// A mock-provider account (no secret needed) serving `models`.
pub fn mock_spec(name: &str, models: &[&str], daily_token_limit: Option<u64>) -> AccountSpec {
    AccountSpec {
        provider: "mock".into(),
        name: name.into(),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        daily_token_limit,
        ..AccountSpec::default()
    }
}

impl TestApp {
    pub async fn create_account(&self, spec: AccountSpec) -> AccountRecord {
        self.quota
            .create_account(Request::new(spec))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn get_account(&self, id: &str) -> AccountRecord {
        self.quota
            .get_account(Request::new(tollgate_proto::v1::IdRequest {
                id: id.into(),
            }))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn try_lease(
        &self,
        model: &str,
        tokens: u32,
        exclude: &[&str],
    ) -> Result<LeaseGrant, GatewayError> {
        self.try_lease_for(lease_request(model, tokens, exclude))
            .await
    }

    pub async fn try_lease_for(&self, request: LeaseRequest) -> Result<LeaseGrant, GatewayError> {
        self.quota
            .lease(Request::new(request))
            .await
            .map(tonic::Response::into_inner)
            .map_err(gateway_error)
    }

    pub async fn lease(&self, model: &str, tokens: u32) -> LeaseGrant {
        self.try_lease(model, tokens, &[]).await.unwrap()
    }

    pub async fn settle(&self, grant: &LeaseGrant, prompt: u32, completion: u32) {
        self.settle_costing(grant, prompt, completion, 0).await;
    }

    /// Settles with a cost (micro-dollars) for the key's monthly budget.
    pub async fn settle_costing(
        &self,
        grant: &LeaseGrant,
        prompt: u32,
        completion: u32,
        cost_micro_usd: i64,
    ) {
        self.quota
            .settle(Request::new(SettleRequest {
                lease_id: grant.lease_id.clone(),
                usage: Some(Usage {
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    ..Usage::default()
                }),
                cost_micro_usd,
                failed: false,
                upstream_latency_us: None,
            }))
            .await
            .unwrap();
    }
}

/// A lease of `model` for exactly `tokens` tokens, not on the `exclude`d
/// accounts.
pub fn lease_request(model: &str, tokens: u32, exclude: &[&str]) -> LeaseRequest {
    LeaseRequest {
        request_id: "req_test".into(),
        key_id: "key_test".into(),
        model: model.into(),
        prompt_tokens: tokens,
        max_completion_tokens: Some(0),
        choices: 1,
        exclude_account_ids: exclude.iter().map(|id| (*id).to_owned()).collect(),
        ..LeaseRequest::default()
    }
}
