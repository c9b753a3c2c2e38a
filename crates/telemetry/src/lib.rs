//! Logging and metrics, set up once per process.
//!
//! [`init_logging`] installs the tracing subscriber. [`Metrics`] holds one
//! Prometheus registry and the typed metric families of every service; a
//! process creates it once and hands an `Arc` to each service it runs, so
//! `tollgate all` exports every family from one `/metrics` and a split-mode
//! process exports those of the services it runs. Label values are bounded:
//! models, providers, profiles, status classes and error kinds, never request
//! ids or raw client strings.

mod families;

pub use families::*;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global tracing subscriber, filtered by `RUST_LOG` (default
/// `info`). Calling it twice is harmless.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Every metric family of the process, registered once.
pub struct Metrics {
    registry: Registry,
    pub edge: EdgeMetrics,
    pub router: RouterMetrics,
    pub quota: QuotaMetrics,
    pub worker: WorkerMetrics,
    pub analytics: AnalyticsMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let edge = EdgeMetrics::register(&mut registry);
        let router = RouterMetrics::register(&mut registry);
        let quota = QuotaMetrics::register(&mut registry);
        let worker = WorkerMetrics::register(&mut registry);
        let analytics = AnalyticsMetrics::register(&mut registry);
        Self {
            registry,
            edge,
            router,
            quota,
            worker,
            analytics,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_export_with_the_tollgate_prefix() {
        let metrics = Metrics::new();
        metrics
            .edge
            .requests
            .get_or_create(&RequestLabels {
                route: "chat".into(),
                model: "mock-echo".into(),
                provider: "mock".into(),
                status: "2xx".into(),
            })
            .inc();
        let text = metrics.encode();
        assert!(text.contains("tollgate_requests_total{"), "{text}");
        assert!(text.contains("tollgate_request_duration_seconds"), "{text}");
        assert!(
            text.contains("# TYPE tollgate_lease_denied counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE tollgate_cost_usd counter"), "{text}");
    }
}
