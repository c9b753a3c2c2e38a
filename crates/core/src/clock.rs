//! Time as the quota rules see it: unix milliseconds and UTC days.
//!
//! Quota logic takes the time from a [`Clock`] so tests can move it (a day
//! rollover at 00:00 UTC) without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const MS_PER_DAY: i64 = 86_400_000;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> i64;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// The current wall-clock time in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The UTC day number (days since 1970-01-01) of a unix-ms instant.
pub fn utc_day(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// Milliseconds from `ms` to the next 00:00:00 UTC.
pub fn ms_until_next_utc_midnight(ms: i64) -> i64 {
    MS_PER_DAY - ms.rem_euclid(MS_PER_DAY)
}

/// Whole seconds, rounded up, from `ms` to the next 00:00:00 UTC.
pub fn secs_until_next_utc_midnight(ms: i64) -> u64 {
    u64::try_from(ms_until_next_utc_midnight(ms).div_euclid(1000) + 1).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_boundaries_are_utc_midnight() {
        let midnight = 20_000 * MS_PER_DAY;
        assert_eq!(utc_day(midnight - 1), 19_999);
        assert_eq!(utc_day(midnight), 20_000);
        assert_eq!(ms_until_next_utc_midnight(midnight - 1), 1);
        assert_eq!(ms_until_next_utc_midnight(midnight), MS_PER_DAY);
        assert_eq!(secs_until_next_utc_midnight(midnight - 1500), 2);
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::at(5);
        clock.advance(10);
        assert_eq!(clock.now_ms(), 15);
        clock.set(1);
        assert_eq!(clock.now_ms(), 1);
    }
}
