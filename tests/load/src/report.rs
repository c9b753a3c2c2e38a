//! Turns a run's statistics into the printed summary and its JSON line.

use std::time::Duration;

use serde_json::{Value, json};

use crate::run::{Mode, Plan};
use crate::stats::Stats;

/// The numbers a run reports. Latencies are in milliseconds and absent when
/// no request was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub label: Option<String>,
    pub url: String,
    pub mode: Mode,
    pub connections: usize,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub non_2xx: u64,
    pub errors: u64,
    pub rps: f64,
    pub latency_ms: Option<Latency>,
    pub first_error: Option<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    /// `elapsed` is the measured window: from the end of the warmup to the
    /// last measured answer, and at least the planned duration.
    pub fn new(
        label: Option<String>,
        url: &str,
        plan: &Plan,
        stats: &Stats,
        elapsed: Duration,
    ) -> Self {
        let elapsed = elapsed.max(plan.duration).as_secs_f64();
        let histogram = &stats.latency_ns;
        let ms = |nanos: u64| nanos as f64 / 1e6;
        let latency_ms = (!histogram.is_empty()).then(|| Latency {
            mean: histogram.mean() / 1e6,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        });
        Self {
            label,
            url: url.to_owned(),
            mode: plan.mode,
            connections: plan.connections,
            duration_s: elapsed,
            requests: stats.answered() + stats.errors,
            ok: stats.ok,
            non_2xx: stats.non_2xx,
            errors: stats.errors,
            rps: stats.answered() as f64 / elapsed,
            latency_ms,
            first_error: stats.first_error.clone(),
        }
    }

    /// One JSON object; keys are stable for scripts.
    pub fn json(&self) -> Value {
        let (mode, target_rps) = match self.mode {
            Mode::Rate(rate) => ("rate", Some(rate)),
            Mode::Max => ("max", None),
        };
        let field = |pick: fn(&Latency) -> f64| self.latency_ms.as_ref().map(pick).map(round3);
        json!({
            "label": self.label,
            "url": self.url,
            "mode": mode,
            "target_rps": target_rps,
            "connections": self.connections,
            "duration_s": round3(self.duration_s),
            "requests": self.requests,
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "rps": round3(self.rps),
            "mean_ms": field(|l| l.mean),
            "p50_ms": field(|l| l.p50),
            "p90_ms": field(|l| l.p90),
            "p99_ms": field(|l| l.p99),
            "p999_ms": field(|l| l.p999),
            "max_ms": field(|l| l.max),
            "first_error": self.first_error,
        })
    }

    /// A few readable lines.
    pub fn human(&self) -> String {
        let mode = match self.mode {
            Mode::Rate(rate) => format!("open loop at {rate} req/s"),
            Mode::Max => "closed loop (max)".to_owned(),
        };
        let mut text = format!(
            "{}{} over {} connection(s), {:.1}s measured\n",
            self.label
                .as_deref()
                .map(|label| format!("[{label}] "))
                .unwrap_or_default(),
            mode,
            self.connections,
            self.duration_s,
        );
        text += &format!(
            "  {} requests, {:.1} answered/s, {} non-2xx, {} errors\n",
            self.requests, self.rps, self.non_2xx, self.errors
        );
        match &self.latency_ms {
            Some(l) => {
                text += &format!(
                    "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}\n",
                    l.p50, l.p90, l.p99, l.p999, l.max, l.mean
                );
            }
            None => text += "  latency: no answers\n",
        }
        if let Some(error) = &self.first_error {
            text += &format!("  first problem: {error}\n");
        }
        text
    }
}

/// Three decimals are plenty for milliseconds and rates, and keep the JSON
/// readable.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {

    use std::time::Instant;

    use http::StatusCode;

    use super::*;
    use crate::stats::Outcome;

    fn plan(mode: Mode) -> Plan {
        Plan {
            mode,
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            first_byte: false,
        }
    }

    #[test]
    fn percentiles_and_rate_come_from_the_histogram() {
        let mut stats = Stats::new().unwrap();
        let now = Instant::now();
        for micros in 1..=1000 {
            stats.record(
                Outcome::Answered(StatusCode::OK),
                Duration::from_micros(micros),
                now,
            );
        }
        stats.record(Outcome::Failed("timed out".into()), Duration::ZERO, now);
        let summary = Summary::new(
            Some("direct".into()),
            "http://h/",
            &plan(Mode::Rate(500.0)),
            &stats,
            Duration::from_secs(1),
        );
        assert_eq!(summary.duration_s, 2.0, "never shorter than planned");
        assert_eq!(summary.requests, 1001);
        assert_eq!(summary.rps, 500.0);
        let json = summary.json();
        assert_eq!(json["mode"], "rate");
        assert_eq!(json["target_rps"], 500.0);
        assert_eq!(json["errors"], 1);
        let p50 = json["p50_ms"].as_f64().unwrap();
        assert!((0.499..=0.501).contains(&p50), "p50 {p50}");
        let p99 = json["p99_ms"].as_f64().unwrap();
        assert!((0.989..=0.991).contains(&p99), "p99 {p99}");
        assert!(summary.human().contains("[direct] open loop at 500 req/s"));
    }

    #[test]
    fn no_answers_means_no_latency() {
        let stats = Stats::new().unwrap();
        let summary = Summary::new(None, "http://h/", &plan(Mode::Max), &stats, Duration::ZERO);
        let json = summary.json();
        assert_eq!(json["mode"], "max");
        assert!(json["target_rps"].is_null());
        assert!(json["p50_ms"].is_null());
        assert!(summary.human().contains("no answers"));
    }
}
