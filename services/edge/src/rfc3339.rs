//! RFC 3339 timestamps (`2025-01-31T12:00:00Z`) for the admin API: written in
//! UTC, read with any offset. Dates use the proleptic Gregorian calendar.

use jiff::Timestamp;

/// `secs` (unix seconds) as `YYYY-MM-DDTHH:MM:SSZ` (clamped to the years
/// -9999..=9999).
pub fn format_secs(secs: i64) -> String {
    format!("{:.0}", timestamp(secs.saturating_mul(1000)))
}

/// `ms` (unix milliseconds) in RFC 3339, with milliseconds only when not 0.
pub fn format_ms(ms: i64) -> String {
    let at = timestamp(ms);
    if ms.rem_euclid(1000) == 0 {
        format!("{at:.0}")
    } else {
        format!("{at:.3}")
    }
}

fn timestamp(ms: i64) -> Timestamp {
    let ms = ms.clamp(
        Timestamp::MIN.as_millisecond(),
        Timestamp::MAX.as_millisecond(),
    );
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Unix milliseconds of an RFC 3339 timestamp (`T`, `t` or a space between
/// date and time; `Z`, `z` or `±HH:MM`; any fraction, kept to the
/// millisecond). `None` if it is not one.
pub fn parse_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    // The shape RFC 3339 fixes (jiff reads ISO 8601 more widely: no seconds,
    // bracketed time zones): a full date and time with seconds, then the
    // offset.
    let bytes = text.as_bytes();
    let shaped = bytes.len() >= 20
        && bytes.get(10).is_some_and(|b| b"Tt ".contains(b))
        && bytes.get(16) == Some(&b':')
        && !text.contains('[');
    if !shaped {
        return None;
    }
    let at: Timestamp = text.parse().ok()?;
    Some(at.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_secs(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(format_secs(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_ms(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_ms(3_600_000), "1970-01-01T01:00:00Z");
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_ms("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_ms("2000-02-29t02:00:00+02:00"), Some(951_782_400_000));
        assert_eq!(parse_ms("2000-02-28 22:30:00-01:30"), Some(951_782_400_000));
        assert_eq!(parse_ms("1970-01-01T00:00:01.5z"), Some(1_500));
        assert_eq!(parse_ms("1970-01-01T00:00:01.123456Z"), Some(1_123));
    }

    #[test]
    fn round_trips_every_day_for_centuries() {
        for day in (-100_000..100_000).step_by(97) {
            let secs = day * 86_400 + 45_296;
            assert_eq!(parse_ms(&format_secs(secs)), Some(secs * 1000), "{secs}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+2:00",
            "2024-01-01T00:00:00Zjunk",
            "24-01-01T00:00:00Z",
            "1700000000",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
