//! Building each service from the configuration: the configuration mapped
//! onto the service's settings (whatever it does not set keeps the
//! service's default), and the stores, counters, sinks and clients chosen
//! by what is configured (embedded or Redis and Postgres), handed to the
//! service's `build`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use tollgate_analytics::{
    AnalyticsSettings, ConsumerSettings, EventSink, RetentionSettings, SinkSettings, StreamSink,
    StreamSinkSettings, StreamSource, UsageSink,
};
use tollgate_control_store::crypto::{MasterKey, SecretBox};
use tollgate_control_store::{ControlStore, PgControlStore, SqliteControlStore};
use tollgate_core::clock::{Clock, SkewedClock, SystemClock};
use tollgate_counters::{MemoryCounters, QuotaCounters, RedisCounters};
use tollgate_edge::EdgeSettings;
use tollgate_proto::v1::UsageEvent;
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle, WorkerHandle};
use tollgate_quota::{BroadcastRedis, ProfileSettings, QuotaSettings};
use tollgate_router::{RouterSettings, UsageEmitter};
use tollgate_telemetry::Metrics;
use tollgate_usage_store::{PgUsageStore, SqliteUsageStore, UsageStore};
use tollgate_worker::WorkerSettings;

use crate::config::Config;
use crate::secrets;

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

/// The quota service over the control store and the counters; with Redis,
/// it broadcasts key invalidations to and from the other quota replicas.
pub(super) async fn quota_app(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<tollgate_quota::App> {
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
    let deps = tollgate_quota::Deps {
        control,
        counters,
        secrets,
        clock: quota_clock()?,
        metrics: metrics.clone(),
        broadcast: config.redis_url.clone().map(|redis_url| BroadcastRedis {
            redis_url,
            prefix: config.redis_prefix.clone(),
        }),
    };
    Ok(tollgate_quota::build(settings, deps).await?)
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

/// The analytics service over the usage store, which it trims to the
/// configured retention at start and hourly; with Redis, also a member of
/// the `analytics` consumer group of the usage stream writing to that store
/// (stopped at shutdown, after its current batch).
pub(super) async fn analytics_app(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<tollgate_analytics::App> {
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
    let settings = AnalyticsSettings {
        retention: RetentionSettings {
            days: config.usage_retention_days,
            ..RetentionSettings::default()
        },
        consumer: ConsumerSettings::with_claim_idle(config.usage_claim_idle),
    };
    let deps = tollgate_analytics::Deps {
        store,
        metrics: metrics.clone(),
        clock: Arc::new(SystemClock),
        stream: config.redis_url.clone().map(|redis_url| StreamSource {
            redis_url,
            prefix: config.redis_prefix.clone(),
            consumer_name: stream_consumer_name(),
        }),
    };
    tollgate_analytics::build(settings, deps)
        .map_err(|error| anyhow::anyhow!("cannot read usage events from Redis: {error}"))
}

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

pub(super) fn worker_app(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<tollgate_worker::App> {
    let mut settings = WorkerSettings {
        default_timeout: config.upstream_timeout,
        ..WorkerSettings::default()
    };
    settings.providers.openrouter_attribution = config.openrouter_attribution.clone();
    tollgate_worker::build(settings, metrics.clone()).context("cannot build the upstream client")
}

/// The usage sink as the router's emitter.
struct SinkEmitter(EventSink);

impl UsageEmitter for SinkEmitter {
    fn emit(&self, event: UsageEvent) {
        self.0.emit(event);
    }
}

/// The router, and the sink its usage events go through.
pub(super) fn router_app(
    config: &Config,
    metrics: &Arc<Metrics>,
    quota: QuotaHandle,
    workers: Vec<WorkerHandle>,
    analytics: AnalyticsHandle,
) -> anyhow::Result<(tollgate_router::App, EventSink)> {
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
    let deps = tollgate_router::Deps {
        quota,
        workers,
        usage: Arc::new(SinkEmitter(sink.clone())),
        metrics: metrics.clone(),
    };
    Ok((tollgate_router::build(settings, deps), sink))
}

pub(super) fn edge_app(
    config: &Config,
    metrics: &Arc<Metrics>,
    router: RouterHandle,
    quota: QuotaHandle,
    analytics: AnalyticsHandle,
    admin_token: &str,
) -> tollgate_edge::App {
    let settings = EdgeSettings {
        max_body_bytes: config.max_body_bytes,
        key_cache_ttl: config.key_cache_ttl,
        // Long enough for every attempt the router may make.
        request_timeout: config.request_deadline.max(config.upstream_timeout)
            + Duration::from_secs(10),
        health_probe_interval: config.health_probe_interval,
        admin_token: SecretString::from(admin_token.to_owned()),
        ..EdgeSettings::default()
    };
    let deps = tollgate_edge::Deps {
        router,
        quota,
        analytics,
        metrics: metrics.clone(),
    };
    tollgate_edge::build(settings, deps)
}
