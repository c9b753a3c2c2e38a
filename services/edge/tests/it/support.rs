//! The one way these tests make an edge (the crate's own `build`), and the
//! two sets of services they put behind it.

use std::path::Path;
use std::sync::Arc;

use tollgate_analytics::AnalyticsSettings;
use tollgate_control_store::SqliteControlStore;
use tollgate_control_store::crypto::{MasterKey, SecretBox};
use tollgate_core::clock::SystemClock;
use tollgate_counters::MemoryCounters;
use tollgate_edge::{Deps, EdgeSettings, EdgeState};
use tollgate_proto::remote::{RemoteAnalytics, RemoteQuota, RemoteRouter, peer};
use tollgate_quota::QuotaSettings;
use tollgate_telemetry::Metrics;
use tollgate_usage_store::SqliteUsageStore;

/// An edge with `settings` in front of `services`, built as the binary
/// builds it.
pub fn spawn_app(settings: EdgeSettings, services: Deps) -> tollgate_edge::App {
    tollgate_edge::build(settings, services)
}

/// An address where a connection is refused.
pub fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Real gRPC clients of router, quota and analytics, pointed at a port
/// nothing listens on.
pub fn services_down() -> Deps {
    let peer = peer(&closed_address()).unwrap();
    Deps {
        router: Arc::new(RemoteRouter::new(peer.clone())),
        quota: Arc::new(RemoteQuota::new(peer.clone())),
        analytics: Arc::new(RemoteAnalytics::new(peer)),
        metrics: Arc::new(Metrics::new()),
    }
}

/// The real quota and analytics services, each made by its crate's own
/// `build`, over SQLite files in `dir`, called in process; the router is
/// down.
pub async fn services_in_process(dir: &Path) -> Deps {
    let metrics = Arc::new(Metrics::new());
    let control = SqliteControlStore::open(&dir.join("control.db"))
        .await
        .unwrap();
    let quota = tollgate_quota::build(
        QuotaSettings::default(),
        tollgate_quota::Deps {
            control: Arc::new(control),
            counters: Arc::new(MemoryCounters::new()),
            secrets: SecretBox::new(&MasterKey::generate().unwrap()),
            clock: Arc::new(SystemClock),
            metrics: Arc::clone(&metrics),
            broadcast: None,
        },
    )
    .await
    .unwrap();
    let usage = SqliteUsageStore::open(&dir.join("usage.db")).await.unwrap();
    let analytics = tollgate_analytics::build(
        AnalyticsSettings::default(),
        tollgate_analytics::Deps {
            store: Arc::new(usage),
            metrics: Arc::clone(&metrics),
            clock: Arc::new(SystemClock),
            stream: None,
        },
    )
    .unwrap();
    Deps {
        router: Arc::new(RemoteRouter::new(peer(&closed_address()).unwrap())),
        quota: quota.handle(),
        analytics: analytics.handle(),
        metrics,
    }
}

/// The services behind `state`, for another edge in front of them, with
/// its own metrics.
pub fn same_services(state: &EdgeState) -> Deps {
    Deps {
        router: state.router.clone(),
        quota: state.quota.clone(),
        analytics: state.analytics.clone(),
        metrics: Arc::new(Metrics::new()),
    }
}
