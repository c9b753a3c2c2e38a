//! Building the edge: [`build`] turns its [`EdgeSettings`] and [`Deps`]
//! into an [`App`] whose routers tests call directly, and
//! [`App::run_until`] serves them on their listeners, with the edge's
//! background work (key invalidations, health probes, readiness), until
//! shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle};
use tollgate_shutdown::Shutdown;
use tollgate_telemetry::Metrics;

use crate::{
    EdgeSettings, EdgeState, admin_router, probe_health, public_router, watch_invalidations,
};

/// The services behind the edge, local or remote.
pub struct Deps {
    pub router: RouterHandle,
    pub quota: QuotaHandle,
    pub analytics: AnalyticsHandle,
    /// Where the edge records its metrics (and what `/metrics` shows).
    pub metrics: Arc<Metrics>,
}

/// Where the edge serves: the public API, and the admin API if any.
pub struct Listeners {
    pub public: TcpListener,
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
    /// in, and turns `/readyz` false as soon as shutdown starts. A server
    /// that fails stops the others (through `shutdown`) and its error is
    /// returned.
    pub async fn run_until(self, listeners: Listeners, shutdown: Shutdown) -> std::io::Result<()> {
        let state = self.state;
        let public = serve(listeners.public, public_router(state.clone()), &shutdown);
        let admin = async {
            match listeners.admin {
                Some(listener) => serve(listener, admin_router(state.clone()), &shutdown).await,
                None => Ok(()),
            }
        };
        let watcher = watch_invalidations(state.clone(), shutdown.clone().wait());
        let prober = probe_health(
            state.clone(),
            state.settings.health_probe_interval,
            shutdown.clone().wait(),
        );
        // Not ready as soon as shutdown starts, while still serving.
        let readiness = async {
            shutdown.clone().started().await;
            state.begin_shutdown();
        };
        let (public, admin, (), (), ()) = tokio::join!(public, admin, watcher, prober, readiness);
        public.and(admin)
    }
}

/// Serves `router` until the servers are to stop, draining open requests;
/// a failure stops the process's other servers too.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().wait())
        .await;
    if served.is_err() {
        shutdown.stop();
    }
    served
}
