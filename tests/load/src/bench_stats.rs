//! Latency histograms for the storage benchmarks and the one-line summaries
//! they print (milliseconds, three decimals).

use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;

/// Highest latency recorded: one minute, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A histogram of latencies in nanoseconds, three significant digits.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).context("creating a latency histogram")
}

/// Records `latency`, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(nanos.clamp(1, MAX_LATENCY_NS));
}

fn ms_at(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1e6
}

/// `name: n=… p50=… p99=… p99.9=… max=… ms`.
pub fn latency_line(name: &str, histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return format!("{name:<8} n=0");
    }
    format!(
        "{name:<8} n={} p50={:.3} p99={:.3} p99.9={:.3} max={:.3} ms",
        histogram.len(),
        ms_at(histogram, 0.5),
        ms_at(histogram, 0.99),
        ms_at(histogram, 0.999),
        histogram.max() as f64 / 1e6,
    )
}

/// Milliseconds of `elapsed`, three decimals.
pub fn ms(elapsed: Duration) -> String {
    format!("{:.3}", elapsed.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn summary_reports_percentiles_in_milliseconds() {
        let mut histogram = latency_histogram().unwrap();
        for micros in 1..=1000 {
            record(&mut histogram, Duration::from_micros(micros));
        }
        let line = latency_line("lease", &histogram);
        assert!(line.starts_with("lease    n=1000 p50=0.500"), "{line}");
        assert!(line.contains("p99=0.990"), "{line}");
    }

    #[test]
    fn empty_histograms_say_so() {
        let histogram = latency_histogram().unwrap();
        assert_eq!(latency_line("settle", &histogram), "settle   n=0");
    }
}
