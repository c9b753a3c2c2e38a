//! Wiring: builds the services a role needs, connects them through their
//! handles (in-process for `all`, gRPC clients in split mode), serves them,
//! and drains them on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;

use tollgate_analytics::{
    AnalyticsService, ConsumerSettings, EventSink, SinkSettings, StreamConsumer, StreamSink,
    StreamSinkSettings, UsageSink,
};
use tollgate_core::clock::SystemClock;
use tollgate_edge::{EdgeSettings, EdgeState};
use tollgate_proto::remote::{self, RemoteAnalytics, RemoteQuota, RemoteRouter, RemoteWorker};
use tollgate_proto::v1::UsageEvent;
use tollgate_proto::v1::analytics_server::AnalyticsServer;
use tollgate_proto::v1::quota_server::QuotaServer;
use tollgate_proto::v1::router_server::RouterServer;
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle, WorkerHandle};
use tollgate_quota::{QuotaService, QuotaSettings};
use tollgate_router::{RouterService, RouterSettings, UsageEmitter, WorkerPool};
use tollgate_store::control::{ControlStore, PgControlStore, SqliteControlStore};
use tollgate_store::counters::{MemoryCounters, QuotaCounters, RedisCounters};
use tollgate_store::crypto::{MasterKey, SecretBox};
use tollgate_store::usage::{PgUsageStore, SqliteUsageStore, UsageStore};
use tollgate_telemetry::Metrics;
use tollgate_worker::{WorkerService, WorkerSettings};

use crate::bootstrap;
use crate::config::{Config, Role};
use crate::secrets;
use crate::serve;
use crate::shutdown::Shutdown;

/// Largest gRPC message a service accepts: a request body at the edge's
/// limit plus framing.
const MAX_GRPC_MESSAGE: usize = 64 << 20;

/// Runs the configured role until SIGINT/SIGTERM or a server failure.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let metrics = Arc::new(Metrics::new());
    let mut tasks = JoinSet::new();
    if let Some(address) = config.admin_listen
        && !matches!(config.role, Role::All | Role::Edge)
    {
        let listener = serve::bind("metrics endpoint", address).await?;
        serve::http(
            &mut tasks,
            listener,
            serve::ops_router(metrics.clone()),
            &shutdown,
        );
    }
    let sink = match config.role {
        Role::All => all(&config, &metrics, &mut tasks, &shutdown).await?,
        Role::Edge => {
            edge(&config, &metrics, &mut tasks, &shutdown).await?;
            None
        }
        Role::Router => Some(router(&config, &metrics, &mut tasks, &shutdown).await?),
        Role::Quota => {
            quota(&config, &metrics, &mut tasks, &shutdown).await?;
            None
        }
        Role::Worker => {
            let worker = worker_service(&config, &metrics)?;
            let listener = serve::bind("worker gRPC", config.grpc_listen).await?;
            let routes = tonic::service::Routes::new(worker.grpc_service());
            serve::grpc(&mut tasks, listener, routes, &shutdown);
            tracing::info!(grpc = %config.grpc_listen, "worker ready");
            None
        }
        Role::Analytics => {
            let analytics = analytics_service(&config, &metrics, &mut tasks, &shutdown).await?;
            let listener = serve::bind("analytics gRPC", config.grpc_listen).await?;
            let routes = tonic::service::Routes::new(AnalyticsServer::from_arc(analytics));
            serve::grpc(&mut tasks, listener, routes, &shutdown);
            tracing::info!(grpc = %config.grpc_listen, "analytics ready");
            None
        }
    };
    let outcome = serve::until_done(tasks, shutdown).await;
    if let Some(sink) = sink {
        // Requests have drained; deliver the usage events they produced.
        sink.close().await;
    }
    outcome
}

/// Every service in this process, calling each other through their traits.
async fn all(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<EventSink>> {
    let quota: QuotaHandle = quota_service(config, metrics).await?;
    let analytics: AnalyticsHandle = analytics_service(config, metrics, tasks, shutdown).await?;
    let worker = worker_service(config, metrics)?.into_handle();
    let (router, sink) = router_service(
        config,
        metrics,
        quota.clone(),
        vec![worker],
        analytics.clone(),
    )?;
    let dev_key = first_start(config, &quota).await?;
    let admin = admin_token(config)?;
    let state = edge_state(
        config,
        metrics,
        Arc::new(router),
        quota,
        analytics,
        &admin.value,
    );
    let addresses = serve_edge(config, state, tasks, shutdown).await?;
    banner(config, &addresses, dev_key.as_deref(), &admin);
    Ok(Some(sink))
}

async fn edge(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let peers = &config.peers;
    let router: RouterHandle = Arc::new(RemoteRouter::new(remote::channel(&peers.router)?));
    let quota: QuotaHandle = Arc::new(RemoteQuota::new(remote::channel(&peers.quota)?));
    let analytics: AnalyticsHandle =
        Arc::new(RemoteAnalytics::new(remote::channel(&peers.analytics)?));
    let admin = admin_token(config)?;
    let state = edge_state(config, metrics, router, quota, analytics, &admin.value);
    let addresses = serve_edge(config, state, tasks, shutdown).await?;
    if admin.created {
        banner(config, &addresses, None, &admin);
    }
    Ok(())
}

async fn router(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<EventSink> {
    let peers = &config.peers;
    let quota: QuotaHandle = Arc::new(RemoteQuota::new(remote::channel(&peers.quota)?));
    let analytics: AnalyticsHandle =
        Arc::new(RemoteAnalytics::new(remote::channel(&peers.analytics)?));
    let workers = peers
        .workers
        .iter()
        .map(|address| Ok(Arc::new(RemoteWorker::new(remote::channel(address)?)) as WorkerHandle))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (router, sink) = router_service(config, metrics, quota, workers, analytics)?;
    let listener = serve::bind("router gRPC", config.grpc_listen).await?;
    let server = RouterServer::new(router).max_decoding_message_size(MAX_GRPC_MESSAGE);
    serve::grpc(
        tasks,
        listener,
        tonic::service::Routes::new(server),
        shutdown,
    );
    tracing::info!(grpc = %config.grpc_listen, "router ready");
    Ok(sink)
}

async fn quota(
    config: &Config,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let service = quota_service(config, metrics).await?;
    let handle: QuotaHandle = service.clone();
    if let Some(key) = first_start(config, &handle).await? {
        println!(
            "{}",
            dev_key_lines(&format!("http://{}", config.listen), &key)
        );
    }
    let listener = serve::bind("quota gRPC", config.grpc_listen).await?;
    let server = QuotaServer::from_arc(service).max_decoding_message_size(MAX_GRPC_MESSAGE);
    serve::grpc(
        tasks,
        listener,
        tonic::service::Routes::new(server),
        shutdown,
    );
    tracing::info!(grpc = %config.grpc_listen, "quota ready");
    Ok(())
}

async fn quota_service(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<QuotaService>> {
    ensure_data_dir(config)?;
    let master = secrets::master_key(&config.data_dir, env("TOLLGATE_MASTER_KEY"))?;
    let master_created = master.created;
    let master = MasterKey::from_base64(&master.value).context("TOLLGATE_MASTER_KEY")?;
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
        SecretBox::new(&master),
        Arc::new(SystemClock),
        metrics.clone(),
        settings,
    )
    .await
    .map_err(|error| anyhow::anyhow!("quota service: {error}"))?;
    Ok(Arc::new(service))
}

/// The analytics service over the usage store; with Redis, also a member
/// of the `analytics` consumer group of the usage stream writing to that
/// store (stopped at shutdown, after its current batch).
async fn analytics_service(
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
/// looked for at least that often (and every 10 s at most apart).
fn consumer_settings(config: &Config) -> ConsumerSettings {
    let defaults = ConsumerSettings::default();
    ConsumerSettings {
        claim_idle: config.usage_claim_idle,
        claim_every: defaults.claim_every.min(config.usage_claim_idle),
        ..defaults
    }
}

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

fn worker_service(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<WorkerService> {
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

fn router_service(
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

fn edge_state(
    config: &Config,
    metrics: &Arc<Metrics>,
    router: RouterHandle,
    quota: QuotaHandle,
    analytics: AnalyticsHandle,
    admin_token: &str,
) -> EdgeState {
    let settings = EdgeSettings {
        max_body_bytes: config.max_body_bytes,
        default_completion_cap: config.default_completion_cap,
        key_cache_ttl: config.key_cache_ttl,
        // Long enough for every attempt the router may make.
        request_timeout: config.upstream_timeout * config.max_attempts + Duration::from_secs(10),
        ..EdgeSettings::new(SecretString::from(admin_token.to_owned()))
    };
    EdgeState::new(router, quota, analytics, metrics.clone(), settings)
}

/// Where the edge ended up listening (a port of 0 in the configuration
/// means any free port).
struct EdgeAddresses {
    public: SocketAddr,
    admin: Option<SocketAddr>,
}

async fn serve_edge(
    config: &Config,
    state: EdgeState,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<EdgeAddresses> {
    let public = serve::bind("public API", config.listen).await?;
    let addresses = EdgeAddresses {
        public: public.local_addr()?,
        admin: None,
    };
    serve::http(
        tasks,
        public,
        tollgate_edge::public_router(state.clone()),
        shutdown,
    );
    let admin = match config.admin_listen {
        Some(address) => {
            let admin = serve::bind("admin API", address).await?;
            let bound = admin.local_addr()?;
            serve::http(tasks, admin, tollgate_edge::admin_router(state), shutdown);
            Some(bound)
        }
        None => None,
    };
    let admin_text = admin.map_or_else(|| "off".to_owned(), |address| address.to_string());
    tracing::info!(public = %addresses.public, admin = %admin_text, "edge ready");
    Ok(EdgeAddresses { admin, ..addresses })
}

/// Accounts from the built-in mock, the environment and the config file,
/// and a dev key if there is none.
async fn first_start(config: &Config, quota: &QuotaHandle) -> anyhow::Result<Option<String>> {
    let mut wanted = vec![bootstrap::mock_account()];
    wanted.extend(bootstrap::environment_accounts(env));
    wanted.extend(bootstrap::declared_accounts(&config.accounts, env));
    bootstrap::ensure_accounts(quota, wanted).await?;
    bootstrap::dev_key_if_none(quota).await
}

fn admin_token(config: &Config) -> anyhow::Result<secrets::Loaded> {
    ensure_data_dir(config)?;
    Ok(secrets::admin_token(
        &config.data_dir,
        env("TOLLGATE_ADMIN_TOKEN"),
    )?)
}

fn ensure_data_dir(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn banner(
    config: &Config,
    addresses: &EdgeAddresses,
    dev_key: Option<&str>,
    admin: &secrets::Loaded,
) {
    let public = format!("http://{}", addresses.public);
    let mut text = format!("\nTollgate is running.\n  Public API: {public}/v1\n");
    if let Some(address) = addresses.admin {
        text.push_str(&format!("  Admin API:  http://{address}/admin/v1\n"));
    }
    if admin.created {
        text.push_str(&format!(
            "  Admin token (saved in {}): {}\n",
            config.data_dir.join(secrets::ADMIN_TOKEN_FILE).display(),
            admin.value
        ));
    }
    if let Some(key) = dev_key {
        text.push_str(&dev_key_lines(&public, key));
    }
    println!("{text}");
}

fn dev_key_lines(public: &str, key: &str) -> String {
    format!(
        "  Dev API key (shown once; only its hash is stored): {key}\n\n  Try it:\n    curl {public}/v1/chat/completions \\\n      -H \"Authorization: Bearer {key}\" \\\n      -H \"Content-Type: application/json\" \\\n      -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello, Tollgate!\"}}]}}'\n",
        model = bootstrap::MOCK_MODEL
    )
}
