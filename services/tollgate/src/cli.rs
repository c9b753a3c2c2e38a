//! The command line: one target per service, `all`, and the mock upstream.
//!
//! Every flag can also come from a `TOLLGATE_…` environment variable, and
//! the serving flags from a YAML file (`--config`); see `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tollgate: an LLM gateway. Runs any of its services, or all of them in
/// one process.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every service in one process (embedded defaults: no servers needed).
    All(ServeArgs),
    /// The public and admin HTTP API.
    Edge(ServeArgs),
    /// Routing, retries and usage events (gRPC).
    Router(ServeArgs),
    /// Keys, accounts, leases (gRPC).
    Quota(ServeArgs),
    /// Provider adapters (gRPC).
    Worker(ServeArgs),
    /// Usage storage and queries (gRPC).
    Analytics(ServeArgs),
    /// A fake OpenAI-compatible upstream for tests, demos and benchmarks.
    MockUpstream(tollgate_mock_upstream::MockUpstreamArgs),
    /// Operator tasks against a running gateway's admin API: keys, accounts, usage.
    Admin(crate::admin::AdminArgs),
}

/// Flags shared by the serving targets. Unset flags fall back to the YAML
/// file, then to the defaults shown; "the edge's" (or another service's)
/// is that service's own default, in its `Settings`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// YAML configuration file.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for embedded data (SQLite files, generated secrets) [default: ./data].
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Public API address (edge, all) [default: 127.0.0.1:8080].
    #[arg(long, env = "TOLLGATE_LISTEN")]
    pub listen: Option<String>,
    /// Admin API, /metrics and /healthz address [default: 127.0.0.1:8081 for edge and all].
    #[arg(long, env = "TOLLGATE_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// gRPC address of this service [default: router :9001, quota :9002, worker :9003,
    /// analytics :9004 on 127.0.0.1].
    #[arg(long, env = "TOLLGATE_GRPC_LISTEN")]
    pub grpc_listen: Option<String>,
    /// Router addresses (host:port, comma-separated; a DNS name stands for
    /// every address it resolves to), for the edge [default: 127.0.0.1:9001].
    #[arg(long, env = "TOLLGATE_ROUTER_ADDR", value_delimiter = ',')]
    pub router_addr: Option<Vec<String>>,
    /// Quota addresses, like --router-addr, for the edge and the router
    /// [default: 127.0.0.1:9002].
    #[arg(long, env = "TOLLGATE_QUOTA_ADDR", value_delimiter = ',')]
    pub quota_addr: Option<Vec<String>>,
    /// Analytics addresses, like --router-addr, for the edge and the router
    /// [default: 127.0.0.1:9004].
    #[arg(long, env = "TOLLGATE_ANALYTICS_ADDR", value_delimiter = ',')]
    pub analytics_addr: Option<Vec<String>>,
    /// Worker addresses, like --router-addr, for the router [default: 127.0.0.1:9003].
    #[arg(long, env = "TOLLGATE_WORKER_ADDRS", value_delimiter = ',')]
    pub worker_addrs: Option<Vec<String>>,
    /// Redis URL for quota counters and usage events (cluster mode).
    #[arg(long, env = "TOLLGATE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (one Redis may serve several gateways) [default: tollgate:].
    #[arg(long, env = "TOLLGATE_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Postgres URL for control data and analytics (cluster mode).
    #[arg(long, env = "TOLLGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Largest accepted request body in bytes [default: the edge's].
    #[arg(long, env = "TOLLGATE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "TOLLGATE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Full UTC days of usage analytics keeps before today; 0 keeps it
    /// forever [default: analytics'].
    #[arg(long, env = "TOLLGATE_USAGE_RETENTION_DAYS")]
    pub usage_retention_days: Option<u32>,
}
