//! Serving the edge, and what a start does once: accounts, the dev key,
//! the admin token, and the banner that shows them.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use tollgate_edge::Listeners;
use tollgate_proto::QuotaHandle;
use tollgate_shutdown::Shutdown;

use crate::bootstrap;
use crate::config::Config;
use crate::secrets;
use crate::serve;

/// Where the edge ended up listening (a port of 0 in the configuration
/// means any free port).
pub(super) struct EdgeAddresses {
    pub public: SocketAddr,
    pub admin: Option<SocketAddr>,
}

/// Binds the edge's listeners and serves it until shutdown.
pub(super) async fn serve_edge(
    config: &Config,
    edge: tollgate_edge::App,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<EdgeAddresses> {
    let public = serve::bind("public API", config.listen).await?;
    let admin = match config.admin_listen {
        Some(address) => Some(serve::bind("admin API", address).await?),
        None => None,
    };
    let addresses = EdgeAddresses {
        public: public.local_addr()?,
        admin: admin.as_ref().map(TcpListener::local_addr).transpose()?,
    };
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        edge.run_until(Listeners { public, admin }, shutdown)
            .await
            .context("HTTP server failed")
    });
    let admin_text = addresses
        .admin
        .map_or_else(|| "off".to_owned(), |address| address.to_string());
    tracing::info!(public = %addresses.public, admin = %admin_text, "edge ready");
    Ok(addresses)
}

/// The config file's profiles, accounts from the built-in mock, the
/// environment and the config file, the config file's routes, and a dev key
/// if there is none.
pub(super) async fn first_start(
    config: &Config,
    quota: &QuotaHandle,
) -> anyhow::Result<Option<String>> {
    bootstrap::ensure_profiles(quota, bootstrap::declared_profiles(config.profiles.keys())).await?;
    let mut wanted = vec![bootstrap::mock_account()];
    wanted.extend(bootstrap::environment_accounts(env));
    wanted.extend(bootstrap::declared_accounts(&config.accounts, env));
    bootstrap::ensure_accounts(quota, wanted).await?;
    bootstrap::ensure_routes(quota, bootstrap::declared_routes(&config.routes)).await?;
    bootstrap::dev_key_if_none(quota).await
}

pub(super) fn admin_token(config: &Config) -> anyhow::Result<secrets::Loaded> {
    ensure_data_dir(config)?;
    Ok(secrets::admin_token(
        &config.data_dir,
        env("TOLLGATE_ADMIN_TOKEN"),
    )?)
}

pub(super) fn ensure_data_dir(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))
}

pub(super) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

pub(super) fn banner(
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

pub(super) fn dev_key_lines(public: &str, key: &str) -> String {
    format!(
        "  Dev API key (shown once; only its hash is stored): {key}\n\n  Try it:\n    curl {public}/v1/chat/completions \\\n      -H \"Authorization: Bearer {key}\" \\\n      -H \"Content-Type: application/json\" \\\n      -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello, Tollgate!\"}}]}}'\n",
        model = bootstrap::MOCK_MODEL
    )
}
