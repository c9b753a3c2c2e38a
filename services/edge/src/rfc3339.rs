//! RFC 3339 timestamps (`2025-01-31T12:00:00Z`) for the admin API: written in
//! UTC, read with any offset. Dates use the proleptic Gregorian calendar.

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date (year, month, day) of a day number.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `secs` (unix seconds) as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_secs(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let in_day = secs.rem_euclid(SECS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// `ms` (unix milliseconds) in RFC 3339, with milliseconds only when not 0.
pub fn format_ms(ms: i64) -> String {
    let text = format_secs(ms.div_euclid(1000));
    match ms.rem_euclid(1000) {
        0 => text,
        millis => format!("{}.{millis:03}Z", text.trim_end_matches('Z')),
    }
}

/// Reads `digits` ASCII digits at the front of `text`.
fn number(text: &mut &[u8], digits: usize) -> Option<i64> {
    let (head, tail) = text.split_at_checked(digits)?;
    if !head.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *text = tail;
    head.iter()
        .try_fold(0i64, |sum, digit| Some(sum * 10 + i64::from(digit - b'0')))
}

fn expect(text: &mut &[u8], allowed: &[u8]) -> Option<u8> {
    let (&first, rest) = text.split_first()?;
    allowed.contains(&first).then(|| {
        *text = rest;
        first
    })
}

/// Unix milliseconds of an RFC 3339 timestamp (`T`, `t` or a space between
/// date and time; `Z`, `z` or `±HH:MM`; any fraction, kept to the
/// millisecond). `None` if it is not one.
pub fn parse_ms(text: &str) -> Option<i64> {
    let mut rest = text.trim().as_bytes();
    let year = number(&mut rest, 4)?;
    expect(&mut rest, b"-")?;
    let month = number(&mut rest, 2)?;
    expect(&mut rest, b"-")?;
    let day = number(&mut rest, 2)?;
    expect(&mut rest, b"Tt ")?;
    let hour = number(&mut rest, 2)?;
    expect(&mut rest, b":")?;
    let minute = number(&mut rest, 2)?;
    expect(&mut rest, b":")?;
    let second = number(&mut rest, 2)?;
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    if !valid {
        return None;
    }
    let mut millis = 0;
    if expect(&mut rest, b".").is_some() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let mut fraction = &rest[..digits.min(3)];
        let kept = fraction.len();
        millis = number(&mut fraction, kept)? * 10i64.pow(3 - u32::try_from(kept).ok()?);
        rest = &rest[digits..];
    }
    let offset_secs = match expect(&mut rest, b"Zz+-")? {
        b'Z' | b'z' => 0,
        sign => {
            let hours = number(&mut rest, 2)?;
            expect(&mut rest, b":")?;
            let minutes = number(&mut rest, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3600 + minutes * 60;
            if sign == b'-' { -secs } else { secs }
        }
    };
    if !rest.is_empty() {
        return None;
    }
    // A leap second reads as the last second of its minute.
    let second = second.min(59);
    let local =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    Some((local - offset_secs) * 1000 + millis)
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
            let secs = day * SECS_PER_DAY + 45_296;
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
