//! How long an upstream asks us to wait after a 429: `Retry-After` in
//! seconds or as an HTTP date, `retry-after-ms`, or OpenAI's
//! `x-ratelimit-reset-*` durations.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// Seconds to wait before the next request, from `Retry-After` (seconds or
/// an HTTP date), `retry-after-ms`, or else the longest of OpenAI's
/// `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` durations
/// (`1s`, `6m0s`, `20ms`). Fractions round up.
pub fn retry_after_secs(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(value) = header("retry-after") {
        if let Some(secs) = parse_seconds(value) {
            return Some(secs);
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            let wait = at.duration_since(now).unwrap_or(Duration::ZERO);
            return Some(ceil_secs(wait.as_secs_f64()));
        }
    }
    if let Some(ms) = header("retry-after-ms").and_then(|value| value.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(ceil_secs(ms / 1000.0));
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .into_iter()
        .filter_map(|name| header(name).and_then(parse_duration_secs))
        .max_by(f64::total_cmp)
        .map(ceil_secs)
}

fn parse_seconds(value: &str) -> Option<u64> {
    let secs = value.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| ceil_secs(secs))
}

fn ceil_secs(secs: f64) -> u64 {
    // Saturating float-to-int conversion; the input is finite and >= 0.
    secs.ceil() as u64
}

/// A Go-style duration (`1h2m3.5s`, `20ms`, `0.5s`) or bare seconds.
fn parse_duration_secs(text: &str) -> Option<f64> {
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some(secs);
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "\u{b5}s" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    (total.is_finite() && !text.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn rate_limit_reads_retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_717);
        let date = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(retry_after_secs(&date, now), Some(60));
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_800);
        assert_eq!(retry_after_secs(&date, past), Some(0));
        assert_eq!(
            retry_after_secs(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(
            retry_after_secs(&headers(&[("retry-after", "7")]), now),
            Some(7)
        );
        assert_eq!(retry_after_secs(&HeaderMap::new(), now), None);
    }

    #[test]
    fn rate_limit_falls_back_to_ms_and_reset_headers() {
        let now = SystemTime::now();
        let secs = |pairs: &[(&'static str, &str)]| retry_after_secs(&headers(pairs), now);
        assert_eq!(secs(&[("retry-after-ms", "1500")]), Some(2));
        assert_eq!(
            secs(&[
                ("x-ratelimit-reset-requests", "20ms"),
                ("x-ratelimit-reset-tokens", "6m0s")
            ]),
            Some(360)
        );
        assert_eq!(
            secs(&[("x-ratelimit-reset-tokens", "1h2m3.5s")]),
            Some(3724)
        );
        assert_eq!(secs(&[("x-ratelimit-reset-requests", "12")]), Some(12));
        assert_eq!(secs(&[("x-ratelimit-reset-requests", "3 parsecs")]), None);
        assert_eq!(
            secs(&[("retry-after", "4"), ("x-ratelimit-reset-requests", "1m")]),
            Some(4)
        );
    }
}
