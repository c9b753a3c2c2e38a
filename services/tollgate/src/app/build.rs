//! Building each service from the configuration: stores, counters,
//! sinks and clients chosen by what is configured (embedded or Redis and
//! Postgres).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;

use tollgate_analytics::{
    AnalyticsService, ConsumerSettings, EventSink, RetentionSettings, SinkSettings, StreamConsumer,
    StreamSink, StreamSinkSettings, UsageSink, run_retention,
};
use tollgate_control_store::crypto::{MasterKey, SecretBox};
use tollgate_control_store::{ControlStore, PgControlStore, SqliteControlStore};
use tollgate_core::clock::{Clock, SkewedClock, SystemClock};
use tollgate_counters::{MemoryCounters, QuotaCounters, RedisCounters};
use tollgate_edge::{EdgeSettings, EdgeState};
use tollgate_proto::v1::UsageEvent;
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle, WorkerHandle};
use tollgate_quota::{ProfileSettings, QuotaService, QuotaSettings};
use tollgate_router::{RouterService, RouterSettings, UsageEmitter, WorkerPool};
use tollgate_telemetry::Metrics;
use tollgate_usage_store::{PgUsageStore, SqliteUsageStore, UsageStore};
use tollgate_worker::{WorkerService, WorkerSettings};

use crate::config::Config;
use crate::secrets;
use crate::shutdown::Shutdown;

use super::startup::{ensure_data_dir, env};

/// Seals under `master` and also opens what the earlier master keys in
/// `previous` (comma-separated base64, as in `TOLLGATE_MASTER_KEY`) sealed,
/// for the time between a key rotation and the reseal of every secret.
fn secret_box(master: &MasterKey, previous: Option<String>) -> anyhow::Result<SecretBox> {
    let mut secrets = SecretBox::new(master);
    for (index, text) in previous
        .iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .enumerate()
    {
        let retired = MasterKey::from_base64(text)
            .with_context(|| format!("TOLLGATE_MASTER_KEY_PREVIOUS, key {}", index + 1))?;
        secrets = secrets.with_retired_key(&retired);
    }
    Ok(secrets)
}

pub(super) async fn quota_service(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<QuotaService>> {
    ensure_data_dir(config)?;
    let master = secrets::master_key(&config.data_dir, env("TOLLGATE_MASTER_KEY"))?;
    let master_created = master.created;
    let master = MasterKey::from_base64(&master.value).context("TOLLGATE_MASTER_KEY")?;
    let secrets = secret_box(&master, env("TOLLGATE_MASTER_KEY_PREVIOUS"))?;
    let control: Arc<dyn ControlStore> = match &config.database_url {
        Some(url) => {
            if master_created {
                // Secrets already in the shared database were sealed under
                // another key and will not open with this one.
                tracing::warn!(
                    "generated a new master key while control data is in Postgres: \
                     set TOLLGATE_MASTER_KEY to the same key on every quota process"
                );
            }
            Arc::new(
                PgControlStore::connect(url.expose_secret())
                    .await
                    .context("cannot open the control store in Postgres")?,
            )
        }
        None => Arc::new(
            SqliteControlStore::open(&config.data_dir.join("control.db"))
                .await
                .context("cannot open control.db")?,
        ),
    };
    let settings = QuotaSettings {
        lease_ttl: config.lease_ttl,
        failure_threshold: config.failure_threshold,
        failure_cooldown: config.failure_cooldown,
        failure_backoff_max: config.failure_backoff_max,
        max_cooldown: config.max_rate_limit_cooldown,
        default_completion_cap: config.default_completion_cap,
        min_completion_cap: config.min_completion_cap,
        profiles: config
            .profiles
            .iter()
            .map(|(name, profile)| {
                let settings = ProfileSettings {
                    strategy: profile.strategy,
                };
                (name.clone(), settings)
            })
            .collect(),
        ..QuotaSettings::default()
    };
    let counters: Arc<dyn QuotaCounters> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisCounters::connect(url.expose_secret(), config.redis_prefix.clone())
                .await
                .map_err(|error| anyhow::anyhow!("cannot use Redis for quota counters: {error}"))?,
        ),
        None => Arc::new(MemoryCounters::new()),
    };
    let service = QuotaService::new(
        control,
        counters,
        secrets,
        quota_clock()?,
        metrics.clone(),
        settings,
    )
    .await
    .map_err(|error| anyhow::anyhow!("quota service: {error}"))?;
    Ok(Arc::new(service))
}

/// The quota service's own clock: the system's, or shifted by
/// `TOLLGATE_CLOCK_SKEW_MS` (a test aid: with Redis, decisions read the
/// Redis server's clock, so a skewed replica must change nothing).
fn quota_clock() -> anyhow::Result<Arc<dyn Clock>> {
    match env("TOLLGATE_CLOCK_SKEW_MS") {
        None => Ok(Arc::new(SystemClock)),
        Some(text) => {
            let offset_ms = text
                .trim()
                .parse()
                .context("TOLLGATE_CLOCK_SKEW_MS must be a whole number of milliseconds")?;
            tracing::warn!(offset_ms, "this process's quota clock is skewed on purpose");
            Ok(Arc::new(SkewedClock { offset_ms }))
        }
    }
}

/// Ends the service's invalidation streams at shutdown (an open stream
/// would hold the gRPC server's drain) and, with Redis, relays its key
/// invalidations to and from the other quota replicas.
pub(super) fn invalidations(
    config: &Config,
    service: &Arc<QuotaService>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    if let Some(url) = &config.redis_url {
        let relay = service
            .relay_invalidations(url.expose_secret(), &config.redis_prefix)
            .map_err(|error| anyhow::anyhow!("cannot relay key invalidations: {error}"))?;
        tasks.spawn(async move {
            relay.run().await;
            Ok(())
        });
    }
    let (service, shutdown) = (service.clone(), shutdown.clone());
    tasks.spawn(async move {
        shutdown.wait().await;
        service.stop_invalidations();
        Ok(())
    });
    Ok(())
}

/// The analytics service over the usage store, which it trims to the
/// configured retention at start and hourly; with Redis, also a member of
/// the `analytics` consumer group of the usage stream writing to that store
/// (stopped at shutdown, after its current batch).
pub(super) async fn analytics_service(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<Arc<AnalyticsService>> {
    let store: Arc<dyn UsageStore> = match &config.database_url {
        Some(url) => Arc::new(
            PgUsageStore::connect(url.expose_secret())
                .await
                .context("cannot open the usage store in Postgres")?,
        ),
        None => {
            ensure_data_dir(config)?;
            Arc::new(
                SqliteUsageStore::open(&config.data_dir.join("usage.db"))
                    .await
                    .context("cannot open usage.db")?,
            )
        }
    };
    let retention = run_retention(
        store.clone(),
        RetentionSettings {
            days: config.usage_retention_days,
            ..RetentionSettings::default()
        },
        Arc::new(SystemClock),
    );
    let until_shutdown = shutdown.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = until_shutdown.wait() => {}
            () = retention => {}
        }
        Ok(())
    });
    if let Some(url) = &config.redis_url {
        let name = stream_consumer_name();
        let (consumer, task) = StreamConsumer::spawn(
            url.expose_secret(),
            &config.redis_prefix,
            USAGE_GROUP,
            &name,
            store.clone(),
            metrics.clone(),
            consumer_settings(config),
        )
        .map_err(|error| anyhow::anyhow!("cannot read usage events from Redis: {error}"))?;
        tracing::info!(consumer = %name, group = USAGE_GROUP, "reading usage events from Redis");
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            shutdown.wait().await;
            consumer.shutdown().await;
            task.await.context("usage stream consumer panicked")
        });
    }
    Ok(Arc::new(AnalyticsService::new(store, metrics.clone())))
}

/// How this replica reads the usage stream: the configured claim threshold,
/// looked for at least that often (and every 10 s at most apart); members
/// of the group idle for ten times that, with nothing pending, are removed.
fn consumer_settings(config: &Config) -> ConsumerSettings {
    let defaults = ConsumerSettings::default();
    ConsumerSettings {
        claim_idle: config.usage_claim_idle,
        claim_every: defaults.claim_every.min(config.usage_claim_idle),
        dead_consumer_idle: config
            .usage_claim_idle
            .saturating_mul(DEAD_CONSUMER_IDLE_FACTOR),
        ..defaults
    }
}

/// A group member idle this many claim thresholds, holding nothing, is
/// taken for dead: a live replica reads at least every second.
const DEAD_CONSUMER_IDLE_FACTOR: u32 = 10;

/// The consumer group every analytics replica reads the usage stream in.
const USAGE_GROUP: &str = "analytics";

/// This process's name in the usage consumer group: host and pid, so a
/// restarted pod with a stable name re-reads its own pending entries, and
/// two processes on one host never share a name.
fn stream_consumer_name() -> String {
    let host = env("HOSTNAME")
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "analytics".to_owned());
    format!("{host}-{}", std::process::id())
}

pub(super) fn worker_service(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<WorkerService> {
    let settings = WorkerSettings {
        default_timeout: config.upstream_timeout,
        ..WorkerSettings::default()
    };
    WorkerService::new(settings, metrics.clone()).context("cannot build the upstream client")
}

/// The usage sink as the router's emitter.
struct SinkEmitter(EventSink);

impl UsageEmitter for SinkEmitter {
    fn emit(&self, event: UsageEvent) {
        self.0.emit(event);
    }
}

pub(super) fn router_service(
    config: &Config,
    metrics: &Arc<Metrics>,
    quota: QuotaHandle,
    workers: Vec<WorkerHandle>,
    analytics: AnalyticsHandle,
) -> anyhow::Result<(RouterService, EventSink)> {
    // With Redis, usage events go through the stream (read by analytics'
    // consumer group); without it, straight to analytics in batches.
    let sink = match &config.redis_url {
        Some(url) => {
            let (sink, _appender) = StreamSink::spawn(
                url.expose_secret(),
                &config.redis_prefix,
                StreamSinkSettings::default(),
                metrics.clone(),
            )
            .map_err(|error| anyhow::anyhow!("cannot send usage events to Redis: {error}"))?;
            EventSink::from(sink)
        }
        None => {
            let (sink, _flusher) =
                UsageSink::spawn(analytics, SinkSettings::default(), metrics.clone());
            EventSink::from(sink)
        }
    };
    let settings = RouterSettings {
        max_attempts: config.max_attempts,
        upstream_timeout_ms: u32::try_from(config.upstream_timeout.as_millis()).unwrap_or(u32::MAX),
        request_deadline: config.request_deadline,
    };
    let router = RouterService::new(
        quota,
        WorkerPool::new(workers),
        Arc::new(SinkEmitter(sink.clone())),
        metrics.clone(),
        settings,
    );
    Ok((router, sink))
}

pub(super) fn edge_state(
    config: &Config,
    metrics: &Arc<Metrics>,
    router: RouterHandle,
    quota: QuotaHandle,
    analytics: AnalyticsHandle,
    admin_token: &str,
) -> EdgeState {
    let settings = EdgeSettings {
        max_body_bytes: config.max_body_bytes,
        key_cache_ttl: config.key_cache_ttl,
        // Long enough for every attempt the router may make.
        request_timeout: config.request_deadline.max(config.upstream_timeout)
            + Duration::from_secs(10),
        ..EdgeSettings::new(SecretString::from(admin_token.to_owned()))
    };
    EdgeState::new(router, quota, analytics, metrics.clone(), settings)
}
