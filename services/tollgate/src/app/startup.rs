//! Serving the edge, and what a start does once: accounts, the dev key,
//! the admin token, and the banner that shows them.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::task::JoinSet;

use tollgate_edge::EdgeState;
use tollgate_proto::QuotaHandle;

use crate::bootstrap;
use crate::config::Config;
use crate::secrets;
use crate::serve;
use crate::shutdown::Shutdown;

/// Where the edge ended up listening (a port of 0 in the configuration
/// means any free port).
pub(super) struct EdgeAddresses {
    pub public: SocketAddr,
    pub admin: Option<SocketAddr>,
}

pub(super) async fn serve_edge(
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
    let (watcher, stop) = (state.clone(), shutdown.clone());
    tasks.spawn(async move {
        tollgate_edge::watch_invalidations(watcher, stop.wait()).await;
        Ok(())
    });
    let (prober, stop, interval) = (
        state.clone(),
        shutdown.clone(),
        config.health_probe_interval,
    );
    tasks.spawn(async move {
        tollgate_edge::probe_health(prober, interval, stop.wait()).await;
        Ok(())
    });
    // Not ready as soon as shutdown starts, while still serving.
    let (readiness, started) = (state.clone(), shutdown.clone());
    tasks.spawn(async move {
        started.started().await;
        readiness.begin_shutdown();
        Ok(())
    });
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
