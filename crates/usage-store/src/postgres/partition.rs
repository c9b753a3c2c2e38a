//! Day partitions of `usage_events`: which UTC day a partition holds, its
//! table name and its range bounds.
//!
//! Partition DDL cannot take bound parameters, so its identifiers and bounds
//! are text; they are built here only from a day number (digits of a date
//! and of integer milliseconds), never from event contents or catalog text.

use tollgate_core::clock::{MS_PER_DAY, day_of, utc_date, utc_day};

/// Table name prefix of every day partition (`usage_events_p20241004`).
const NAME_PREFIX: &str = "usage_events_p";
/// 1970-01-01: the first day with a partition.
const FIRST_DAY: i64 = 0;
/// 9999-12-31: the last day with a partition (the name keeps four year digits).
const LAST_DAY: i64 = 2_932_896;

/// One UTC day's partition of `usage_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct DayPartition {
    day: i64,
}

impl DayPartition {
    /// The partition for UTC day number `day`, or `None` for a day outside
    /// 1970-01-01..=9999-12-31 (rows of such days stay in the default
    /// partition).
    pub(crate) fn for_day(day: i64) -> Option<Self> {
        (FIRST_DAY..=LAST_DAY)
            .contains(&day)
            .then_some(Self { day })
    }

    /// The partition holding a request that started at `started_at_ms`.
    pub(crate) fn containing(started_at_ms: i64) -> Option<Self> {
        Self::for_day(utc_day(started_at_ms))
    }

    /// The partition a table name denotes, if it is one of ours.
    pub(crate) fn from_table_name(name: &str) -> Option<Self> {
        let digits = name.strip_prefix(NAME_PREFIX)?;
        if digits.len() != 8 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let number = |range: std::ops::Range<usize>| digits.get(range)?.parse::<i8>().ok();
        let year = digits.get(0..4)?.parse::<i16>().ok()?;
        // A date that does not exist (20240231) is refused here.
        let date = jiff::civil::Date::new(year, number(4..6)?, number(6..8)?).ok()?;
        Self::for_day(day_of(date))
    }

    /// The UTC day number (days since 1970-01-01).
    pub(crate) const fn day(self) -> i64 {
        self.day
    }

    /// The table name: `usage_events_p` and the date as `YYYYMMDD`.
    pub(crate) fn table_name(self) -> String {
        let date = utc_date(self.day);
        format!("{NAME_PREFIX}{}", date.strftime("%Y%m%d"))
    }

    /// First millisecond of the day (inclusive lower bound).
    pub(crate) const fn start_ms(self) -> i64 {
        self.day * MS_PER_DAY
    }

    /// First millisecond of the next day (exclusive upper bound).
    pub(crate) const fn end_ms(self) -> i64 {
        (self.day + 1) * MS_PER_DAY
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn names_are_the_utc_date() {
        let cases = [
            (0, "usage_events_p19700101"),
            (20_000, "usage_events_p20241004"),
            (19_782, "usage_events_p20240229"),
            (19_783, "usage_events_p20240301"),
            (LAST_DAY, "usage_events_p99991231"),
        ];
        for (day, name) in cases {
            let partition = DayPartition::for_day(day).unwrap();
            assert_eq!(partition.table_name(), name);
            assert_eq!(DayPartition::from_table_name(name), Some(partition));
        }
    }

    #[test]
    fn every_day_round_trips_through_its_name() {
        for day in (FIRST_DAY..=LAST_DAY).step_by(37).chain([LAST_DAY]) {
            let partition = DayPartition::for_day(day).unwrap();
            assert_eq!(
                DayPartition::from_table_name(&partition.table_name()),
                Some(partition)
            );
        }
    }

    #[test]
    fn bounds_cover_the_day_and_nothing_else() {
        let partition = DayPartition::containing(20_000 * MS_PER_DAY + 5).unwrap();
        assert_eq!(partition.day(), 20_000);
        assert_eq!(partition.start_ms(), 20_000 * MS_PER_DAY);
        assert_eq!(partition.end_ms(), 20_001 * MS_PER_DAY);
        let last_ms = partition.end_ms() - 1;
        assert_eq!(DayPartition::containing(last_ms), Some(partition));
        assert_ne!(
            DayPartition::containing(partition.end_ms()),
            Some(partition)
        );
    }

    #[test]
    fn days_outside_1970_to_9999_have_no_partition() {
        assert_eq!(DayPartition::containing(-1), None);
        assert_eq!(DayPartition::for_day(LAST_DAY + 1), None);
        assert_eq!(DayPartition::containing(i64::MAX), None);
        assert_eq!(DayPartition::containing(i64::MIN), None);
    }

    #[test]
    fn foreign_and_impossible_names_are_not_partitions() {
        for name in [
            "usage_events_default",
            "usage_events_p2024100",
            "usage_events_p202410045",
            "usage_events_p2024-10-",
            "usage_events_p20240231",
            "usage_events_p20241301",
            "usage_events_p20241000",
            "usage_events_p19691231",
            "other_p20241004",
            "usage_events_p+2024104",
        ] {
            assert_eq!(DayPartition::from_table_name(name), None, "{name}");
        }
    }
}
