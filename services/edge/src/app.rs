//! Building the edge: [`build`] turns its [`EdgeSettings`] and [`Deps`]
//! into an [`App`] whose routers tests call directly, and
//! [`App::run_until`] serves them on their listeners, with the edge's
//! background work (key invalidations, health probes, readiness), until
//! shutdown.

use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle};
use tollgate_shutdown::Shutdown;
use tollgate_telemetry::Metrics;

use crate::{
    EdgeSettings, EdgeState, admin_router, probe_health, public_router, watch_invalidations,
};

/// The services behind the edge, local or remote.
pub struct Deps {
    /// Chat requests go to the router.
    pub router: RouterHandle,
    /// Key lookups, models, and the admin API's keys, accounts and routes.
    pub quota: QuotaHandle,
    /// The admin API's usage queries.
    pub analytics: AnalyticsHandle,
    /// Where the edge records its metrics (and what `/metrics` shows).
    pub metrics: Arc<Metrics>,
}

/// Where the edge serves: the public API, and the admin API if any.
pub struct Listeners {
    /// The public API's.
    pub public: TcpListener,
    /// The admin API's (with `/metrics` and the health probes), if served.
    pub admin: Option<TcpListener>,
}

/// A built edge.
pub struct App {
    state: EdgeState,
}

/// Builds the edge with `settings` in front of `deps`.
pub fn build(settings: EdgeSettings, deps: Deps) -> App {
    App {
        state: EdgeState::new(
            deps.router,
            deps.quota,
            deps.analytics,
            deps.metrics,
            settings,
        ),
    }
}

impl App {
    /// What every handler shares.
    pub fn state(&self) -> &EdgeState {
        &self.state
    }

    /// The public API (see [`public_router`]).
    pub fn public_router(&self) -> axum::Router {
        public_router(self.state.clone())
    }

    /// The admin API (see [`admin_router`]).
    pub fn admin_router(&self) -> axum::Router {
        admin_router(self.state.clone())
    }

    /// Serves both APIs on `listeners` until `shutdown` tells the servers
    /// to stop, then drains open requests. Meanwhile it keeps the key cache
    /// in step with quota's invalidations, probes the accounts that opted
    /// in, and turns `/readyz` false as soon as shutdown starts. Each runs
    /// as a task of its own, all of them stopped if this future is dropped.
    /// A server that fails stops the others (through `shutdown`) and its
    /// error is returned.
    pub async fn run_until(self, listeners: Listeners, shutdown: Shutdown) -> std::io::Result<()> {
        let state = self.state;
        let mut tasks = JoinSet::new();
        tasks.spawn(serve(
            listeners.public,
            public_router(state.clone()),
            shutdown.clone(),
        ));
        if let Some(listener) = listeners.admin {
            tasks.spawn(serve(
                listener,
                admin_router(state.clone()),
                shutdown.clone(),
            ));
        }
        let (watcher, stop) = (state.clone(), shutdown.clone());
        tasks.spawn(async move {
            watch_invalidations(watcher, stop.wait()).await;
            Ok(())
        });
        let (prober, stop) = (state.clone(), shutdown.clone());
        tasks.spawn(async move {
            let interval = prober.settings.health_probe_interval;
            probe_health(prober, interval, stop.wait()).await;
            Ok(())
        });
        // Not ready as soon as shutdown starts, while still serving.
        let started = shutdown.clone();
        tasks.spawn(async move {
            started.started().await;
            state.begin_shutdown();
            Ok(())
        });
        let mut outcome = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let result = joined.unwrap_or_else(|panicked| {
                shutdown.stop();
                Err(std::io::Error::other(panicked))
            });
            if let Err(error) = result
                && outcome.is_ok()
            {
                outcome = Err(error);
            }
        }
        outcome
    }
}

/// Serves `router` until the servers are to stop, draining open requests;
/// a failure stops the process's other servers too. Every connection has
/// `TCP_NODELAY`: a stream's last event or its end, written on its own
/// after the previous write, would otherwise wait for the client's delayed
/// ACK (40 ms on Linux).
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a client connection");
        }
    });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().wait())
        .await;
    if served.is_err() {
        shutdown.stop();
    }
    served
}
