//! Time as the quota rules see it: unix milliseconds, UTC days and UTC
//! calendar months.
//!
//! Quota logic takes the time from a [`Clock`] so tests can move it (a day
//! rollover at 00:00 UTC) without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::civil::Date;
use jiff::{Span, Unit};

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

/// The wall clock shifted by a fixed offset: a process whose clock is
/// off, to show that nothing shared depends on it (quota decisions with
/// Redis read the server's clock).
#[derive(Debug, Clone, Copy, Default)]
pub struct SkewedClock {
    pub offset_ms: i64,
}

impl Clock for SkewedClock {
    fn now_ms(&self) -> i64 {
        now_ms().saturating_add(self.offset_ms)
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

/// The UTC calendar month of a unix-ms instant as the number `YYYYMM`
/// (`202612` for December 2026): readable in counter names, and a later
/// month is always a larger number.
pub fn utc_month(ms: i64) -> i64 {
    let date = utc_date(utc_day(ms));
    i64::from(date.year()) * 100 + i64::from(date.month())
}

/// The first instant (00:00:00 UTC on the 1st) of the calendar month `ms`
/// falls in, in unix ms.
pub fn utc_month_start_ms(ms: i64) -> i64 {
    let first = utc_date(utc_day(ms)).first_of_month();
    day_of(first).saturating_mul(MS_PER_DAY)
}

/// The first instant (00:00:00 UTC on the 1st) of the calendar month after
/// the one `ms` falls in, in unix ms.
pub fn next_utc_month_start_ms(ms: i64) -> i64 {
    let last = utc_date(utc_day(ms)).last_of_month();
    let next = last.tomorrow().unwrap_or(last);
    day_of(next).saturating_mul(MS_PER_DAY)
}

/// The proleptic Gregorian date of a UTC day number (days since
/// 1970-01-01), clamped to the years -9999..=9999.
pub fn utc_date(day: i64) -> Date {
    let epoch = Date::constant(1970, 1, 1);
    let days = day.clamp(
        day_of(Date::MIN) - day_of(epoch),
        day_of(Date::MAX) - day_of(epoch),
    );
    // In range by the clamp; the epoch is the fallback all the same.
    Span::new()
        .try_days(days)
        .and_then(|span| epoch.checked_add(span))
        .unwrap_or(epoch)
}

/// The UTC day number (days since 1970-01-01) of a date.
pub fn day_of(date: Date) -> i64 {
    let epoch = Date::constant(1970, 1, 1);
    date.since((Unit::Day, epoch))
        .map_or(0, |span| i64::from(span.get_days()))
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

    /// Unix ms of 00:00:00 UTC on a date.
    fn midnight(year: i16, month: i8, day: i8) -> i64 {
        day_of(Date::constant(year, month, day)) * MS_PER_DAY
    }

    #[test]
    fn day_numbers_and_dates_round_trip() {
        assert_eq!(day_of(Date::constant(1970, 1, 1)), 0);
        assert_eq!(day_of(Date::constant(2024, 10, 4)), 20_000);
        assert_eq!(utc_date(20_000), Date::constant(2024, 10, 4));
        assert_eq!(utc_date(-1), Date::constant(1969, 12, 31));
        for day in (-800_000..800_000).step_by(997) {
            assert_eq!(day_of(utc_date(day)), day);
        }
        // Out of the calendar's range: its ends.
        assert_eq!(utc_date(i64::MAX), Date::MAX);
        assert_eq!(utc_date(i64::MIN), Date::MIN);
    }

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(utc_month(midnight(2026, 11, 1)), 202_611);
        assert_eq!(utc_month(midnight(2026, 11, 1) - 1), 202_610);
        assert_eq!(utc_month(midnight(2026, 12, 31) + MS_PER_DAY - 1), 202_612);
        assert_eq!(
            next_utc_month_start_ms(midnight(2026, 11, 22) + 3_600_000),
            midnight(2026, 12, 1)
        );
        // The first instant of a month belongs to it: the next one is a
        // whole month later.
        assert_eq!(
            next_utc_month_start_ms(midnight(2026, 11, 1)),
            midnight(2026, 12, 1)
        );
        assert_eq!(
            next_utc_month_start_ms(midnight(2026, 12, 1) - 1),
            midnight(2026, 12, 1)
        );
    }

    #[test]
    fn a_month_starts_on_its_first() {
        assert_eq!(
            utc_month_start_ms(midnight(2026, 12, 3) + 3_600_000),
            midnight(2026, 12, 1)
        );
        assert_eq!(
            utc_month_start_ms(midnight(2026, 12, 1)),
            midnight(2026, 12, 1)
        );
        assert_eq!(
            utc_month_start_ms(midnight(2026, 12, 1) - 1),
            midnight(2026, 11, 1)
        );
    }

    #[test]
    fn december_rolls_over_into_january() {
        let new_year = midnight(2027, 1, 1);
        assert_eq!(next_utc_month_start_ms(midnight(2026, 12, 1)), new_year);
        assert_eq!(next_utc_month_start_ms(new_year - 1), new_year);
        assert_eq!(utc_month(new_year - 1), 202_612);
        assert_eq!(utc_month(new_year), 202_701);
        assert!(utc_month(new_year) > utc_month(new_year - 1));
        // February of a leap year and of a common year.
        assert_eq!(
            next_utc_month_start_ms(midnight(2028, 2, 29)),
            midnight(2028, 3, 1)
        );
        assert_eq!(
            next_utc_month_start_ms(midnight(2027, 2, 28)),
            midnight(2027, 3, 1)
        );
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
