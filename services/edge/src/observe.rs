//! The edge's metrics: requests by route, model, provider and status class,
//! their duration, and the time to the first streamed token.
//!
//! Label values stay bounded: the model and provider are those that served
//! the request (from the router's `ServedBy`), or `unknown` when the request
//! was refused before that; never a raw client string.

use std::sync::Arc;
use std::time::Instant;

use tollgate_proto::v1::ServedBy;
use tollgate_telemetry::{Metrics, ModelLabels, RequestLabels, RouteLabels};

use crate::sse::{Ending, RelayObserver};

/// Label for a model or provider that is not known (request refused early).
pub const UNKNOWN: &str = "unknown";
/// Longest label value taken from a `ServedBy`; longer ones become `unknown`.
const MAX_LABEL_LEN: usize = 128;

/// The status label: the class (`2xx`, `4xx`, `5xx`), or `429` exactly.
pub fn status_label(status: u16) -> &'static str {
    match status {
        429 => "429",
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The label for a value reported by the router.
fn bounded(value: &str) -> &str {
    if value.is_empty() || value.len() > MAX_LABEL_LEN {
        UNKNOWN
    } else {
        value
    }
}

/// One request being measured from the moment the edge received it.
#[derive(Clone)]
pub struct Measure {
    metrics: Arc<Metrics>,
    route: &'static str,
    started: Instant,
}

impl Measure {
    pub fn start(metrics: Arc<Metrics>, route: &'static str) -> Self {
        Self {
            metrics,
            route,
            started: Instant::now(),
        }
    }

    /// Counts the request and records its duration.
    pub fn finish(&self, served: Option<&ServedBy>, status: u16) {
        let (model, provider) = match served {
            Some(served) => (bounded(&served.model_label), bounded(&served.provider)),
            None => (UNKNOWN, UNKNOWN),
        };
        let edge = &self.metrics.edge;
        edge.requests
            .get_or_create(&RequestLabels {
                route: self.route.to_owned(),
                model: model.to_owned(),
                provider: provider.to_owned(),
                status: status_label(status).to_owned(),
            })
            .inc();
        edge.request_duration
            .get_or_create(&RouteLabels {
                route: self.route.to_owned(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }

    /// Records the time to the first streamed token of what `served`.
    pub fn first_token(&self, served: &ServedBy) {
        self.metrics
            .edge
            .time_to_first_token
            .get_or_create(&ModelLabels {
                model: bounded(&served.model_label).to_owned(),
                provider: bounded(&served.provider).to_owned(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Measures a streamed answer until its relay ends.
pub struct StreamMeasure {
    pub measure: Measure,
    pub served: ServedBy,
}

impl RelayObserver for StreamMeasure {
    fn first_data(&mut self) {
        self.measure.first_token(&self.served);
    }

    /// A failure mid-stream counts with the failure's status; a client that
    /// hangs up counts as `4xx` (nginx would log 499).
    fn ended(&mut self, ending: Ending) {
        let status = match ending {
            Ending::Completed => 200,
            Ending::Failed(kind) => kind.http_status(),
            Ending::Abandoned => 499,
        };
        self.measure.finish(Some(&self.served), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_keep_429_apart() {
        assert_eq!(status_label(200), "2xx");
        assert_eq!(status_label(404), "4xx");
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(499), "4xx");
        assert_eq!(status_label(503), "5xx");
    }

    #[test]
    fn labels_come_from_what_served_or_are_unknown() {
        let metrics = Arc::new(Metrics::new());
        let measure = Measure::start(Arc::clone(&metrics), "chat");
        measure.finish(None, 401);
        let served = ServedBy {
            provider: "mock".into(),
            upstream_model: "a-client-chosen-model".into(),
            model_label: "x".repeat(200),
            ..ServedBy::default()
        };
        measure.finish(Some(&served), 200);
        let text = metrics.encode();
        assert!(
            text.contains(r#"route="chat",model="unknown",provider="unknown",status="4xx""#),
            "{text}"
        );
        assert!(
            text.contains(r#"route="chat",model="unknown",provider="mock",status="2xx""#),
            "{text}"
        );
    }
}
