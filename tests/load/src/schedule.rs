//! When each request of an open-loop run is due.
//!
//! The rate is spread evenly: with rate R over C connections, connection i
//! sends its n-th request at `start + (i + n·C) / R`, so the connections
//! interleave and the whole run sends one request every 1/R seconds.

use std::time::{Duration, Instant};

/// The send times of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    offset_secs: f64,
    interval_secs: f64,
}

impl Schedule {
    /// The schedule of connection `index` of `connections` sharing `rate`
    /// requests per second. `rate` must be positive and finite.
    pub fn for_connection(start: Instant, rate: f64, connections: usize, index: usize) -> Self {
        Self {
            start,
            offset_secs: index as f64 / rate,
            interval_secs: connections as f64 / rate,
        }
    }

    /// When request `n` (from 0) is due; `None` past any representable time.
    pub fn due(&self, n: u64) -> Option<Instant> {
        let secs = self.offset_secs + self.interval_secs * n as f64;
        let delay = Duration::try_from_secs_f64(secs).ok()?;
        self.start.checked_add(delay)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn connections_interleave_at_the_total_rate() {
        let start = Instant::now();
        let schedules: Vec<Schedule> = (0..4)
            .map(|index| Schedule::for_connection(start, 1000.0, 4, index))
            .collect();
        let mut times: Vec<Duration> = schedules
            .iter()
            .flat_map(|schedule| (0..250).map(|n| schedule.due(n).unwrap() - start))
            .collect();
        times.sort();
        assert_eq!(times.len(), 1000);
        for (k, time) in times.iter().enumerate() {
            let expected = Duration::from_secs_f64(k as f64 / 1000.0);
            let gap = time.abs_diff(expected);
            assert!(gap < Duration::from_micros(1), "request {k} at {time:?}");
        }
    }

    #[test]
    fn a_slow_rate_on_many_connections_still_spaces_each_connection() {
        let start = Instant::now();
        let schedule = Schedule::for_connection(start, 2.0, 8, 3);
        assert_eq!(
            schedule.due(0).unwrap() - start,
            Duration::from_millis(1500)
        );
        assert_eq!(
            schedule.due(1).unwrap() - start,
            Duration::from_millis(5500)
        );
    }
}
