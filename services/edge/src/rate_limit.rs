//! The `x-ratelimit-*` headers of a key with an RPM or TPM: its limits,
//! what is left of them and when its sliding window next frees some, on
//! every chat answer and on the 429s of the quota counters
//! (`rate_limit_exceeded` and `quota_exhausted`). Durations use OpenAI's
//! format (`20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tollgate_core::error::{RateLimits, RateWindow};
use tollgate_proto::v1::{RateLimitInfo, RateLimitWindow};

pub const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
pub const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
pub const REMAINING_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
pub const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
pub const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
pub const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// The limits as the route carries them.
pub fn of_route(info: &RateLimitInfo) -> RateLimits {
    let window = |window: &RateLimitWindow| RateWindow {
        limit: window.limit,
        remaining: window.remaining,
        reset_ms: window.reset_ms,
    };
    RateLimits {
        requests: info.requests.as_ref().map(window),
        tokens: info.tokens.as_ref().map(window),
    }
}

/// Writes the three headers of each limit the key has.
pub fn set_headers(headers: &mut HeaderMap, limits: &RateLimits) {
    let groups = [
        (
            limits.requests,
            [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS],
        ),
        (
            limits.tokens,
            [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS],
        ),
    ];
    for (window, [limit, remaining, reset]) in groups {
        let Some(window) = window else { continue };
        headers.insert(limit, HeaderValue::from(window.limit));
        headers.insert(remaining, HeaderValue::from(window.remaining));
        if let Ok(value) = HeaderValue::from_str(&duration(window.reset_ms)) {
            headers.insert(reset, value);
        }
    }
}

/// A duration in OpenAI's (Go's) format: milliseconds below a second, then
/// hours, minutes and seconds with the fraction of a second trimmed.
pub fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (hours, minutes) = (ms / 3_600_000, ms / 60_000 % 60);
    let (seconds, millis) = (ms / 1_000 % 60, ms % 1_000);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    text.push_str(&seconds.to_string());
    if millis > 0 {
        let fraction = format!("{millis:03}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('s');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai_s() {
        let cases = [
            (0, "0s"),
            (20, "20ms"),
            (999, "999ms"),
            (1_000, "1s"),
            (1_500, "1.5s"),
            (2_384, "2.384s"),
            (59_050, "59.05s"),
            (60_000, "1m0s"),
            (360_000, "6m0s"),
            (61_200, "1m1.2s"),
            (3_723_000, "1h2m3s"),
            (7_200_000, "2h0m0s"),
        ];
        for (ms, text) in cases {
            assert_eq!(duration(ms), text, "{ms} ms");
        }
    }

    #[test]
    fn headers_cover_the_limits_the_key_has() {
        let mut headers = HeaderMap::new();
        set_headers(&mut headers, &RateLimits::default());
        assert!(headers.is_empty());

        let info = RateLimitInfo {
            requests: Some(RateLimitWindow {
                limit: 3,
                remaining: 2,
                reset_ms: 60_000,
            }),
            tokens: None,
        };
        set_headers(&mut headers, &of_route(&info));
        assert_eq!(headers[&LIMIT_REQUESTS], "3");
        assert_eq!(headers[&REMAINING_REQUESTS], "2");
        assert_eq!(headers[&RESET_REQUESTS], "1m0s");
        assert_eq!(headers.len(), 3);

        let limits = RateLimits {
            requests: None,
            tokens: Some(RateWindow {
                limit: 10_000,
                remaining: 9_000,
                reset_ms: 20,
            }),
        };
        set_headers(&mut headers, &limits);
        assert_eq!(headers[&LIMIT_TOKENS], "10000");
        assert_eq!(headers[&REMAINING_TOKENS], "9000");
        assert_eq!(headers[&RESET_TOKENS], "20ms");
        assert_eq!(headers.len(), 6);
    }
}
