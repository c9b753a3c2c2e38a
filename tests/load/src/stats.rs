//! What one connection (and then the whole run) observed.

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use http::StatusCode;

/// Latency is kept in nanoseconds, from 1 ns up to one hour, to three
/// significant digits.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// How one measured request ended.
pub enum Outcome {
    Answered(StatusCode),
    Failed(String),
}

/// Counts and the latency histogram of the measured requests.
pub struct Stats {
    pub latency_ns: Histogram<u64>,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with any other status (their latency is recorded too).
    pub non_2xx: u64,
    /// Requests with no answer: connection failures, timeouts.
    pub errors: u64,
    /// What went wrong first, to tell the operator.
    pub first_error: Option<String>,
    /// When the last measured request finished.
    pub last_done: Option<Instant>,
}

impl Stats {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .context("creating the latency histogram")?,
            ok: 0,
            non_2xx: 0,
            errors: 0,
            first_error: None,
            last_done: None,
        })
    }

    pub fn record(&mut self, outcome: Outcome, latency: Duration, done: Instant) {
        match outcome {
            Outcome::Answered(status) => {
                let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                self.latency_ns.saturating_record(nanos.max(1));
                if status.is_success() {
                    self.ok += 1;
                } else {
                    self.non_2xx += 1;
                    self.first_error
                        .get_or_insert_with(|| format!("HTTP status {status}"));
                }
            }
            Outcome::Failed(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
            }
        }
        self.last_done = self.last_done.max(Some(done));
    }

    /// Adds another connection's observations to these.
    pub fn merge(&mut self, other: Stats) -> anyhow::Result<()> {
        self.latency_ns
            .add(&other.latency_ns)
            .context("merging latency histograms")?;
        self.ok += other.ok;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.last_done = self.last_done.max(other.last_done);
        Ok(())
    }

    /// Requests that got an answer, whatever its status.
    pub fn answered(&self) -> u64 {
        self.ok + self.non_2xx
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn merging_adds_counts_and_keeps_the_first_error() {
        let now = Instant::now();
        let mut a = Stats::new().unwrap();
        a.record(
            Outcome::Answered(StatusCode::OK),
            Duration::from_micros(100),
            now,
        );
        a.record(
            Outcome::Answered(StatusCode::TOO_MANY_REQUESTS),
            Duration::from_micros(50),
            now,
        );
        let mut b = Stats::new().unwrap();
        let later = now + Duration::from_millis(1);
        b.record(Outcome::Failed("refused".into()), Duration::ZERO, later);
        b.record(
            Outcome::Answered(StatusCode::OK),
            Duration::from_millis(2),
            later,
        );

        a.merge(b).unwrap();
        assert_eq!((a.ok, a.non_2xx, a.errors), (2, 1, 1));
        assert_eq!(a.answered(), 3);
        assert_eq!(a.latency_ns.len(), 3);
        assert_eq!(
            a.first_error.as_deref(),
            Some("HTTP status 429 Too Many Requests")
        );
        assert_eq!(a.last_done, Some(later));
        assert!(a.latency_ns.max() >= 1_999_000);
    }
}
