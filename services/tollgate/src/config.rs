//! Configuration in layers: defaults, then the YAML file, then environment
//! variables and flags (clap merges those two, flag over variable). The
//! result is validated once into [`Config`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use tollgate_admin_api::{InvalidPrices, Prices};
use tollgate_analytics::{ConsumerSettings, RetentionSettings};
use tollgate_core::provider_settings::{OpenRouterSettings, header_value};
use tollgate_counters::Strategy;
use tollgate_edge::EdgeSettings;
use tollgate_proto::discovery::HostPort;
use tollgate_quota::QuotaSettings;
use tollgate_router::RouterSettings;
use tollgate_worker::WorkerSettings;

use crate::cli::ServeArgs;

/// Which service a process runs; decides default addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Edge,
    Router,
    Quota,
    Worker,
    Analytics,
}

impl Role {
    fn default_grpc_port(self) -> u16 {
        match self {
            Role::Router | Role::All | Role::Edge => 9001,
            Role::Quota => 9002,
            Role::Worker => 9003,
            Role::Analytics => 9004,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("{field}: {value:?} is not an IP address with a port (e.g. 127.0.0.1:8080)")]
    Address { field: &'static str, value: String },
    #[error("{field}: {value:?} is not host:port (an IP address or a DNS name, e.g. quota:9002)")]
    Peer { field: &'static str, value: String },
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("profiles: {name:?} is not a profile name (1-64 letters, digits, '-', '_' or '.')")]
    Profile { name: String },
    #[error("accounts: {account:?}: {source}")]
    AccountPrices {
        account: String,
        source: InvalidPrices,
    },
}

/// The YAML file: the serving flags plus tuning and declared accounts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    admin_listen: Option<String>,
    grpc_listen: Option<String>,
    router_addr: Option<AddressList>,
    quota_addr: Option<AddressList>,
    analytics_addr: Option<AddressList>,
    worker_addrs: Option<AddressList>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    database_url: Option<String>,
    max_body_bytes: Option<usize>,
    log_format: Option<String>,
    /// Completion tokens per choice reserved (and sent upstream) when a
    /// request sets no `max_tokens`, lowered to an account's room left.
    default_completion_cap: Option<u32>,
    /// The least completion cap worth granting a request without its own:
    /// accounts with less room are skipped for it.
    min_completion_cap: Option<u32>,
    /// Upstream attempts per request, the first included.
    max_attempts: Option<u32>,
    upstream_timeout_secs: Option<u64>,
    /// The longest a request may take to get an answer started, all its
    /// attempts and the waits between them included.
    request_deadline_secs: Option<u64>,
    /// The longest an upstream 429's Retry-After cools an account down;
    /// unset: until the next 00:00 UTC.
    max_rate_limit_cooldown_secs: Option<u64>,
    key_cache_ttl_secs: Option<u64>,
    lease_ttl_secs: Option<u64>,
    /// Seconds a usage stream entry stays pending with one analytics
    /// consumer before another one takes it over.
    usage_claim_idle_secs: Option<u64>,
    /// Full UTC days of usage kept before today; 0 keeps it forever.
    usage_retention_days: Option<u32>,
    /// Server errors or timeouts in a row that open an account's circuit.
    failure_threshold: Option<u32>,
    /// The first time an account's circuit stays open.
    failure_cooldown_secs: Option<u64>,
    /// The longest an account's circuit stays open (it doubles up to this).
    failure_backoff_max_secs: Option<u64>,
    /// Seconds between health probes of an account that opted in.
    health_probe_interval_secs: Option<u64>,
    /// Seconds the process keeps serving, not ready, after SIGTERM before
    /// its listeners close (for load balancers to notice first).
    shutdown_drain_delay_secs: Option<u64>,
    /// Seconds open requests get to finish once the listeners closed.
    shutdown_grace_secs: Option<u64>,
    #[serde(default)]
    accounts: Vec<AccountDecl>,
    /// Routes (model aliases) created at start when their alias is free.
    #[serde(default)]
    routes: Vec<RouteDecl>,
    /// Per-profile settings, by profile name.
    #[serde(default)]
    profiles: BTreeMap<String, ProfileDecl>,
    /// OpenRouter attribution sent for accounts whose settings give none.
    openrouter: Option<OpenRouterDecl>,
}

/// The gateway-wide OpenRouter attribution (`HTTP-Referer`, `X-Title`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRouterDecl {
    /// The app's URL, sent as `HTTP-Referer`.
    pub http_referer: Option<String>,
    /// The app's name, sent as `X-Title`.
    pub x_title: Option<String>,
}

impl OpenRouterDecl {
    /// Checked like an account's `openrouter` settings.
    fn attribution(self) -> Result<OpenRouterSettings, ConfigError> {
        for value in [&self.http_referer, &self.x_title].into_iter().flatten() {
            header_value("openrouter", value).map_err(|_| ConfigError::Invalid {
                field: "openrouter",
                reason: "http_referer and x_title must be printable ASCII of 1 to 512 characters",
            })?;
        }
        Ok(OpenRouterSettings {
            http_referer: self.http_referer,
            x_title: self.x_title,
        })
    }
}

/// Peer addresses in the file: a list, or one string of comma-separated
/// addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum AddressList {
    Many(Vec<String>),
    One(String),
}

impl AddressList {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::Many(addresses) => addresses,
            Self::One(addresses) => addresses.split(',').map(str::to_owned).collect(),
        }
    }
}

/// What one profile changes from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDecl {
    /// How its leases pick among the eligible accounts.
    #[serde(default)]
    pub strategy: Strategy,
}

/// A provider account declared in the file; created at start if no account
/// of that name exists. Its secret comes from an environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDecl {
    pub name: String,
    pub provider: String,
    /// Name of the environment variable holding the secret.
    pub secret_env: Option<String>,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub models: Vec<String>,
    pub daily_token_limit: Option<u64>,
    pub priority: Option<i32>,
    pub weight: Option<u32>,
    /// Reserve prompts at their worst case; unset: on for Rovo Dev only.
    pub strict_cap: Option<bool>,
    /// Probe it while it cools down or its circuit is open; unset: off.
    pub health_probe: Option<bool>,
    /// Per-provider settings (a mapping), checked by quota like the admin
    /// API's `settings`.
    pub settings: Option<serde_json::Value>,
    /// Its own prices in US dollars per million tokens, replacing the model
    /// catalog's (as the admin API's `prices`); unset: the catalog's.
    pub prices: Option<Prices>,
}

/// A route declared in the file; created at start if its profile has no
/// route of that alias yet (an existing one is left as it is). Checked by
/// quota like one created through the admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDecl {
    /// The model name clients send.
    pub alias: String,
    /// Empty: the default profile.
    #[serde(default)]
    pub profile: String,
    pub deployments: Vec<DeploymentDecl>,
    /// `None`: the profile's strategy.
    pub strategy: Option<Strategy>,
    /// Aliases (or models) tried in order when no deployment can serve.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Aliases tried in order when an attempt fails because the prompt is
    /// longer than the model's context window.
    #[serde(default)]
    pub context_window_fallbacks: Vec<String>,
    /// Aliases tried in order when the provider's content policy refuses
    /// an attempt.
    #[serde(default)]
    pub content_policy_fallbacks: Vec<String>,
    /// How long an attempt waits for the first byte of its answer (a
    /// stream's first event); `None`: `upstream_timeout_secs`.
    pub first_byte_timeout_ms: Option<u32>,
    /// The request's whole time, every attempt and pause included; `None`:
    /// `request_deadline_secs`.
    pub deadline_ms: Option<u32>,
}

/// One deployment of a declared route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentDecl {
    pub provider: String,
    /// The model name sent upstream.
    pub model: String,
    /// Default 1.
    pub weight: Option<u32>,
    /// Default 0.
    pub priority: Option<i32>,
}

/// Log output format.
pub use tollgate_telemetry::LogFormat;

/// Peer addresses for split mode: each service's `host:port` list, where a
/// DNS name stands for every address it resolves to.
#[derive(Debug, Clone)]
pub struct Peers {
    pub router: Vec<String>,
    pub quota: Vec<String>,
    pub analytics: Vec<String>,
    pub workers: Vec<String>,
}

/// Validated configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    pub role: Role,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub grpc_listen: SocketAddr,
    pub peers: Peers,
    pub redis_url: Option<SecretString>,
    pub redis_prefix: String,
    pub database_url: Option<SecretString>,
    pub max_body_bytes: usize,
    pub default_completion_cap: u32,
    pub min_completion_cap: u32,
    pub max_attempts: u32,
    pub upstream_timeout: Duration,
    pub request_deadline: Duration,
    pub max_rate_limit_cooldown: Option<Duration>,
    pub key_cache_ttl: Duration,
    pub lease_ttl: Duration,
    /// Pending usage entries idle this long are claimed from their consumer.
    pub usage_claim_idle: Duration,
    /// Full UTC days of usage analytics keeps before today (0: forever).
    pub usage_retention_days: u32,
    pub failure_threshold: u32,
    pub failure_cooldown: Duration,
    pub failure_backoff_max: Duration,
    /// Time between the start of shutdown (readiness false) and the
    /// listeners closing.
    pub shutdown_drain_delay: Duration,
    /// How often an account with `health_probe` is probed while out for
    /// its health (at most once per interval across every edge).
    pub health_probe_interval: Duration,
    /// Time open requests, streams and the router's work after them get
    /// once the listeners closed.
    pub shutdown_grace: Duration,
    pub profiles: BTreeMap<String, ProfileDecl>,
    pub log_format: LogFormat,
    pub accounts: Vec<AccountDecl>,
    pub routes: Vec<RouteDecl>,
    /// OpenRouter attribution for accounts whose settings give none.
    pub openrouter_attribution: OpenRouterSettings,
}

impl Config {
    /// Reads the file named by `--config` (if any) and merges it under the
    /// flags and environment.
    pub fn load(role: Role, args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(role, args, file)
    }

    /// What neither the flags nor the file set is the owning service's
    /// default (its `Settings::default()`), or this process's own.
    pub fn merge(role: Role, args: ServeArgs, file: FileConfig) -> Result<Self, ConfigError> {
        let edge = EdgeSettings::default();
        let router = RouterSettings::default();
        let quota = QuotaSettings::default();
        let worker = WorkerSettings::default();
        let consumer = ConsumerSettings::default();
        let peer = |field: &'static str,
                    flag: Option<Vec<String>>,
                    from_file: Option<AddressList>,
                    port: u16| {
            let addresses: Vec<String> = flag
                .or(from_file.map(AddressList::into_vec))
                .unwrap_or_else(|| vec![format!("127.0.0.1:{port}")])
                .iter()
                .map(|address| address.trim().to_owned())
                .filter(|address| !address.is_empty())
                .collect();
            if addresses.is_empty() {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "needs at least one address",
                });
            }
            if let Some(value) = addresses.iter().find(|a| HostPort::parse(a).is_err()) {
                return Err(ConfigError::Peer {
                    field,
                    value: value.clone(),
                });
            }
            Ok(addresses)
        };
        let admin_default = matches!(role, Role::All | Role::Edge).then(|| "127.0.0.1:8081".into());
        let admin_listen = args.admin_listen.or(file.admin_listen).or(admin_default);
        let grpc_default = format!("127.0.0.1:{}", role.default_grpc_port());
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    field: "log_format",
                    reason: "must be text or json",
                });
            }
        };
        let peers = Peers {
            router: peer("router_addr", args.router_addr, file.router_addr, 9001)?,
            quota: peer("quota_addr", args.quota_addr, file.quota_addr, 9002)?,
            analytics: peer(
                "analytics_addr",
                args.analytics_addr,
                file.analytics_addr,
                9004,
            )?,
            workers: peer("worker_addrs", args.worker_addrs, file.worker_addrs, 9003)?,
        };
        let max_attempts = file.max_attempts.unwrap_or(router.max_attempts);
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError::Invalid {
                field: "max_attempts",
                reason: "must be between 1 and 10",
            });
        }
        let lease_ttl_secs = file.lease_ttl_secs.unwrap_or(quota.lease_ttl.as_secs());
        if lease_ttl_secs < 10 {
            return Err(ConfigError::Invalid {
                field: "lease_ttl_secs",
                reason: "must be at least 10",
            });
        }
        let usage_claim_idle_secs = file
            .usage_claim_idle_secs
            .unwrap_or(consumer.claim_idle.as_secs());
        if usage_claim_idle_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "usage_claim_idle_secs",
                reason: "must be at least 1",
            });
        }
        let upstream_timeout_secs = file
            .upstream_timeout_secs
            .unwrap_or(worker.default_timeout.as_secs());
        if upstream_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "upstream_timeout_secs",
                reason: "must be at least 1",
            });
        }
        let request_deadline_secs = file
            .request_deadline_secs
            .unwrap_or(router.request_deadline.as_secs());
        if request_deadline_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "request_deadline_secs",
                reason: "must be at least 1",
            });
        }
        if file.max_rate_limit_cooldown_secs == Some(0) {
            return Err(ConfigError::Invalid {
                field: "max_rate_limit_cooldown_secs",
                reason: "must be at least 1",
            });
        }
        let failure_threshold = file.failure_threshold.unwrap_or(quota.failure_threshold);
        if failure_threshold == 0 {
            return Err(ConfigError::Invalid {
                field: "failure_threshold",
                reason: "must be at least 1",
            });
        }
        let failure_cooldown_secs = file
            .failure_cooldown_secs
            .unwrap_or(quota.failure_cooldown.as_secs());
        if failure_cooldown_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "failure_cooldown_secs",
                reason: "must be at least 1",
            });
        }
        let failure_backoff_max_secs = file
            .failure_backoff_max_secs
            .unwrap_or(quota.failure_backoff_max.as_secs());
        if failure_backoff_max_secs < failure_cooldown_secs {
            return Err(ConfigError::Invalid {
                field: "failure_backoff_max_secs",
                reason: "must be at least failure_cooldown_secs",
            });
        }
        let shutdown_grace_secs = file.shutdown_grace_secs.unwrap_or(30);
        if shutdown_grace_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "shutdown_grace_secs",
                reason: "must be at least 1",
            });
        }
        let shutdown_drain_delay_secs = file.shutdown_drain_delay_secs.unwrap_or(0);
        if shutdown_drain_delay_secs > MAX_SHUTDOWN_DRAIN_DELAY_SECS {
            return Err(ConfigError::Invalid {
                field: "shutdown_drain_delay_secs",
                reason: "must be at most 300",
            });
        }
        for account in &file.accounts {
            if let Some(Err(source)) = account.prices.as_ref().map(Prices::to_rates) {
                return Err(ConfigError::AccountPrices {
                    account: account.name.clone(),
                    source,
                });
            }
        }
        let health_probe_interval_secs = file
            .health_probe_interval_secs
            .unwrap_or(edge.health_probe_interval.as_secs());
        if health_probe_interval_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "health_probe_interval_secs",
                reason: "must be at least 1",
            });
        }
        let default_completion_cap = file
            .default_completion_cap
            .unwrap_or(quota.default_completion_cap);
        let min_completion_cap = file.min_completion_cap.unwrap_or(quota.min_completion_cap);
        if default_completion_cap == 0 {
            return Err(ConfigError::Invalid {
                field: "default_completion_cap",
                reason: "must be at least 1",
            });
        }
        if min_completion_cap == 0 || min_completion_cap > default_completion_cap {
            return Err(ConfigError::Invalid {
                field: "min_completion_cap",
                reason: "must be between 1 and default_completion_cap",
            });
        }
        if let Some(name) = file.profiles.keys().find(|name| !plain_profile_name(name)) {
            return Err(ConfigError::Profile { name: name.clone() });
        }
        let max_body_bytes = args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(edge.max_body_bytes);
        if max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                field: "max_body_bytes",
                reason: "must be at least 1024",
            });
        }
        Ok(Self {
            role,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            listen: address(
                "listen",
                args.listen.or(file.listen).as_deref(),
                "127.0.0.1:8080",
            )?,
            admin_listen: admin_listen
                .map(|value| address("admin_listen", Some(&value), ""))
                .transpose()?,
            grpc_listen: address(
                "grpc_listen",
                args.grpc_listen.or(file.grpc_listen).as_deref(),
                &grpc_default,
            )?,
            peers,
            redis_url: args.redis_url.or(file.redis_url).map(SecretString::from),
            redis_prefix: args
                .redis_prefix
                .or(file.redis_prefix)
                .unwrap_or_else(|| "tollgate:".to_owned()),
            database_url: args
                .database_url
                .or(file.database_url)
                .map(SecretString::from),
            max_body_bytes,
            default_completion_cap,
            min_completion_cap,
            max_attempts,
            upstream_timeout: Duration::from_secs(upstream_timeout_secs),
            request_deadline: Duration::from_secs(request_deadline_secs),
            max_rate_limit_cooldown: file.max_rate_limit_cooldown_secs.map(Duration::from_secs),
            key_cache_ttl: file
                .key_cache_ttl_secs
                .map_or(edge.key_cache_ttl, Duration::from_secs),
            lease_ttl: Duration::from_secs(lease_ttl_secs),
            usage_claim_idle: Duration::from_secs(usage_claim_idle_secs),
            usage_retention_days: args
                .usage_retention_days
                .or(file.usage_retention_days)
                .unwrap_or_else(|| RetentionSettings::default().days),
            failure_threshold,
            failure_cooldown: Duration::from_secs(failure_cooldown_secs),
            failure_backoff_max: Duration::from_secs(failure_backoff_max_secs),
            shutdown_drain_delay: Duration::from_secs(shutdown_drain_delay_secs),
            health_probe_interval: Duration::from_secs(health_probe_interval_secs),
            shutdown_grace: Duration::from_secs(shutdown_grace_secs),
            profiles: file.profiles,
            log_format,
            accounts: file.accounts,
            routes: file.routes,
            openrouter_attribution: file.openrouter.unwrap_or_default().attribution()?,
        })
    }
}

/// The names accounts and keys can carry as their profile.
fn plain_profile_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The longest drain delay accepted: longer is a typo, not a rollout.
const MAX_SHUTDOWN_DRAIN_DELAY_SECS: u64 = 300;

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_norway::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn address(
    field: &'static str,
    value: Option<&str>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or(default);
    value.parse().map_err(|_| ConfigError::Address {
        field,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> FileConfig {
        serde_norway::from_str(yaml).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn defaults_per_role() -> Result<(), ConfigError> {
        let all = Config::merge(Role::All, ServeArgs::default(), FileConfig::default())?;
        assert_eq!(all.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            all.admin_listen.map(|a| a.to_string()),
            Some("127.0.0.1:8081".into())
        );
        assert_eq!(all.data_dir, PathBuf::from("data"));
        assert_eq!(all.max_body_bytes, 32 << 20);
        let quota = Config::merge(Role::Quota, ServeArgs::default(), FileConfig::default())?;
        assert_eq!(quota.grpc_listen.to_string(), "127.0.0.1:9002");
        assert_eq!(quota.admin_listen, None);
        Ok(())
    }

    #[test]
    fn usage_retention_comes_from_the_flag_the_file_or_the_default() -> Result<(), ConfigError> {
        let default = Config::merge(Role::Analytics, ServeArgs::default(), FileConfig::default())?;
        assert_eq!(
            default.usage_retention_days,
            RetentionSettings::default().days
        );
        let forever = Config::merge(
            Role::Analytics,
            ServeArgs::default(),
            file("usage_retention_days: 0\n"),
        )?;
        assert_eq!(forever.usage_retention_days, 0);
        let args = ServeArgs {
            usage_retention_days: Some(7),
            ..ServeArgs::default()
        };
        let flagged = Config::merge(Role::All, args, file("usage_retention_days: 30\n"))?;
        assert_eq!(flagged.usage_retention_days, 7);
        Ok(())
    }

    #[test]
    fn peers_are_lists_of_addresses_or_names() -> Result<(), ConfigError> {
        let default = Config::merge(Role::Edge, ServeArgs::default(), FileConfig::default())?;
        assert_eq!(default.peers.quota, ["127.0.0.1:9002"]);
        assert_eq!(default.peers.workers, ["127.0.0.1:9003"]);
        let args = ServeArgs {
            router_addr: Some(vec!["router-0.router:9001".into(), "10.0.0.7:9001".into()]),
            ..ServeArgs::default()
        };
        let yaml = "router_addr: r:1\nquota_addr: quota-a:9002, quota-b:9002\n\
                    analytics_addr: [analytics:9004]\nworker_addrs: workers.ns.svc:9003\n";
        let config = Config::merge(Role::Edge, args, file(yaml))?;
        assert_eq!(
            config.peers.router,
            ["router-0.router:9001", "10.0.0.7:9001"]
        );
        assert_eq!(config.peers.quota, ["quota-a:9002", "quota-b:9002"]);
        assert_eq!(config.peers.analytics, ["analytics:9004"]);
        assert_eq!(config.peers.workers, ["workers.ns.svc:9003"]);
        for yaml in ["quota_addr: ''", "quota_addr: quota", "worker_addrs: []"] {
            assert!(
                Config::merge(Role::Edge, ServeArgs::default(), file(yaml)).is_err(),
                "{yaml}"
            );
        }
        Ok(())
    }

    #[test]
    fn flags_override_the_file() -> Result<(), ConfigError> {
        let args = ServeArgs {
            listen: Some("127.0.0.1:7000".into()),
            ..ServeArgs::default()
        };
        let config = Config::merge(
            Role::Edge,
            args,
            file("listen: 127.0.0.1:6000\nadmin_listen: 127.0.0.1:6001\nmax_attempts: 2\n"),
        )?;
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(
            config.admin_listen.map(|a| a.to_string()),
            Some("127.0.0.1:6001".into())
        );
        assert_eq!(config.max_attempts, 2);
        Ok(())
    }

    #[test]
    fn rejects_bad_values_and_unknown_fields() {
        let bad = ServeArgs {
            listen: Some("localhost".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Config::merge(Role::All, bad, FileConfig::default()),
            Err(ConfigError::Address {
                field: "listen",
                ..
            })
        ));
        assert!(serde_norway::from_str::<FileConfig>("lisen: 1").is_err());
        assert!(Config::merge(Role::All, ServeArgs::default(), file("max_attempts: 0")).is_err());
        assert!(Config::merge(Role::All, ServeArgs::default(), file("lease_ttl_secs: 0")).is_err());
        assert!(
            Config::merge(
                Role::All,
                ServeArgs::default(),
                file("usage_claim_idle_secs: 0")
            )
            .is_err()
        );
        assert!(
            Config::merge(
                Role::All,
                ServeArgs::default(),
                file("upstream_timeout_secs: 0")
            )
            .is_err()
        );
    }

    #[test]
    fn the_shipped_example_is_valid() -> Result<(), ConfigError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/tollgate.example.yaml");
        let config = Config::merge(Role::All, ServeArgs::default(), read_file(&path)?)?;
        assert_eq!(config.accounts.len(), 3);
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.profiles["team-a"].strategy, Strategy::RoundRobin);
        assert_eq!(config.max_attempts, 5);
        assert_eq!(config.request_deadline, Duration::from_secs(600));
        assert_eq!(config.max_rate_limit_cooldown, None);
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        Ok(())
    }

    #[test]
    fn profiles_choose_their_strategy() -> Result<(), ConfigError> {
        let config = Config::merge(
            Role::Quota,
            ServeArgs::default(),
            file(
                "profiles:\n  team-a: { strategy: round_robin }\n  team-b: {}\n  team-c: { strategy: lowest_latency }\n",
            ),
        )?;
        assert_eq!(config.profiles["team-a"].strategy, Strategy::RoundRobin);
        assert_eq!(config.profiles["team-c"].strategy, Strategy::LowestLatency);
        assert_eq!(config.profiles["team-b"].strategy, Strategy::MostRemaining);
        for bad in [
            "profiles: { team-a: { strategy: fastest } }",
            "profiles: { team-a: { stratgy: priority } }",
        ] {
            assert!(serde_norway::from_str::<FileConfig>(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Config::merge(
                Role::Quota,
                ServeArgs::default(),
                file("profiles: { \"team a\": { strategy: priority } }")
            ),
            Err(ConfigError::Profile { .. })
        ));
        Ok(())
    }

    #[test]
    fn the_circuit_backoff_is_bounded() -> Result<(), ConfigError> {
        let defaults = Config::merge(Role::Quota, ServeArgs::default(), FileConfig::default())?;
        assert_eq!(defaults.failure_threshold, 3);
        assert_eq!(defaults.failure_cooldown, Duration::from_secs(5));
        assert_eq!(defaults.failure_backoff_max, Duration::from_secs(600));
        for bad in [
            "failure_threshold: 0",
            "failure_cooldown_secs: 0",
            "failure_cooldown_secs: 30\nfailure_backoff_max_secs: 10",
        ] {
            assert!(
                Config::merge(Role::Quota, ServeArgs::default(), file(bad)).is_err(),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn shutdown_timing_has_defaults_and_bounds() -> Result<(), ConfigError> {
        let defaults = Config::merge(Role::All, ServeArgs::default(), FileConfig::default())?;
        assert_eq!(defaults.shutdown_drain_delay, Duration::ZERO);
        assert_eq!(defaults.shutdown_grace, Duration::from_secs(30));
        let set = Config::merge(
            Role::Edge,
            ServeArgs::default(),
            file("shutdown_drain_delay_secs: 5\nshutdown_grace_secs: 120\n"),
        )?;
        assert_eq!(set.shutdown_drain_delay, Duration::from_secs(5));
        assert_eq!(set.shutdown_grace, Duration::from_secs(120));
        assert_eq!(defaults.health_probe_interval, Duration::from_secs(30));
        let probing = Config::merge(
            Role::All,
            ServeArgs::default(),
            file("health_probe_interval_secs: 5\n"),
        )?;
        assert_eq!(probing.health_probe_interval, Duration::from_secs(5));
        for bad in [
            "shutdown_grace_secs: 0",
            "shutdown_drain_delay_secs: 301",
            "health_probe_interval_secs: 0",
        ] {
            assert!(
                Config::merge(Role::All, ServeArgs::default(), file(bad)).is_err(),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn openrouter_attribution_is_checked() -> Result<(), ConfigError> {
        let defaults = Config::merge(Role::All, ServeArgs::default(), FileConfig::default())?;
        assert_eq!(
            defaults.openrouter_attribution,
            OpenRouterSettings::default()
        );
        let set = Config::merge(
            Role::Worker,
            ServeArgs::default(),
            file("openrouter:\n  http_referer: https://gateway.example\n  x_title: Gateway\n"),
        )?;
        assert_eq!(
            set.openrouter_attribution,
            OpenRouterSettings {
                http_referer: Some("https://gateway.example".into()),
                x_title: Some("Gateway".into()),
            }
        );
        let bad = file("openrouter: {x_title: \"caf\\u00e9\"}\n");
        assert!(Config::merge(Role::All, ServeArgs::default(), bad).is_err());
        assert!(serde_norway::from_str::<FileConfig>("openrouter: {title: x}\n").is_err());
        let account = file(
            "accounts:\n  - name: az\n    provider: azure_openai\n    settings:\n      api_version: \"2024-10-21\"\n      deployments: {gpt-4o: prod}\n",
        );
        assert_eq!(
            account.accounts[0].settings,
            Some(
                serde_json::json!({"api_version": "2024-10-21", "deployments": {"gpt-4o": "prod"}})
            )
        );
        Ok(())
    }

    #[test]
    fn declared_accounts_parse() {
        let config = file(
            "accounts:\n  - name: team-openai\n    provider: openai\n    secret_env: TEAM_OPENAI_KEY\n    models: [gpt-4o-mini]\n    health_probe: true\n",
        );
        assert_eq!(config.accounts.len(), 1);
        assert_eq!(config.accounts[0].health_probe, Some(true));
        assert_eq!(
            config.accounts[0].secret_env.as_deref(),
            Some("TEAM_OPENAI_KEY")
        );
    }

    #[test]
    fn declared_prices_are_checked_when_the_file_is_read() {
        let priced = |prices: &str| {
            file(&format!(
                "accounts:\n  - name: local\n    provider: ollama\n    prices: {prices}\n"
            ))
        };
        let config = Config::merge(
            Role::All,
            ServeArgs::default(),
            priced("{input: 0.25, output: 1, cached_input: 0.025}"),
        )
        .unwrap();
        let prices = config.accounts[0].prices.unwrap();
        assert_eq!(prices.cached_input, Some(0.025));
        let refused = Config::merge(
            Role::All,
            ServeArgs::default(),
            priced("{input: 0.25, output: -1}"),
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains("\"local\": prices.output"),
            "{refused}"
        );
        // The admin API's shape: unknown fields and a missing output fail.
        for bad in ["{input: 1}", "{input: 1, output: 1, colour: 2}"] {
            let yaml =
                format!("accounts:\n  - name: local\n    provider: ollama\n    prices: {bad}\n");
            assert!(
                serde_norway::from_str::<FileConfig>(&yaml).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn declared_routes_parse() {
        let config = file(
            "routes:\n  - alias: smart\n    deployments:\n      - { provider: openai, model: gpt-4o, weight: 3 }\n      - { provider: mock, model: mock-echo }\n    strategy: weighted\n    fallbacks: [cheap]\n",
        );
        assert_eq!(config.routes.len(), 1);
        let route = &config.routes[0];
        assert_eq!(
            (route.alias.as_str(), route.profile.as_str()),
            ("smart", "")
        );
        assert_eq!(route.deployments[0].weight, Some(3));
        assert_eq!(route.deployments[1].priority, None);
        assert_eq!(route.strategy, Some(Strategy::Weighted));
        assert_eq!(route.fallbacks, ["cheap"]);
        assert!(route.context_window_fallbacks.is_empty());
        assert_eq!(
            (route.first_byte_timeout_ms, route.deadline_ms),
            (None, None)
        );

        let config = file(
            "routes:\n  - alias: small\n    deployments: [{ provider: mock, model: mock-echo }]\n    context_window_fallbacks: [long, longer]\n    content_policy_fallbacks: [lenient]\n    first_byte_timeout_ms: 1500\n    deadline_ms: 30000\n",
        );
        let route = &config.routes[0];
        assert_eq!(route.context_window_fallbacks, ["long", "longer"]);
        assert_eq!(route.content_policy_fallbacks, ["lenient"]);
        assert_eq!(
            (route.first_byte_timeout_ms, route.deadline_ms),
            (Some(1_500), Some(30_000))
        );
        for bad in [
            "routes: [{ alias: a, deployments: [], strategy: fastest }]",
            "routes: [{ alias: a, deployments: [], deadline_ms: -1 }]",
            "routes: [{ alias: a, deployments: [], first_byte_timeout: 5 }]",
            "routes: [{ alias: a, deployments: [{ provider: mock }] }]",
            "routes: [{ alias: a, deployment: [] }]",
        ] {
            assert!(serde_norway::from_str::<FileConfig>(bad).is_err(), "{bad}");
        }
    }
}
