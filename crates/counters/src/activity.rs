//! What an account has been doing: when it last served, its last error and
//! the class of it, its successes and errors on the current UTC day, and a
//! moving average of its upstream latency. Kept by the counters next to the
//! account's circuit, so every quota replica sees the same.
//!
//! - A served settle ([`super::SettleInput::served`]) is a success: it sets
//!   `last_used_at`, counts one more success today, and folds the call's
//!   latency, when the settle carries it, into the average.
//! - [`super::QuotaCounters::record_error`] sets `last_error_at` and
//!   `last_error`, and counts one more error today.
//! - The day counts are per UTC day, like the token counters: a new day
//!   starts at zero at 00:00 UTC with no job to reset them.
//! - The latency average is exponentially weighted: each new sample weighs
//!   [`LATENCY_EWMA_ALPHA`] (one fifth), the average before it four
//!   fifths, so it follows a change within a few requests while one slow
//!   call moves it by a fifth only. The first sample is the average. It is
//!   kept in whole microseconds and rounded half up at every step, in
//!   integer arithmetic, so both stores compute the same value.

use std::str::FromStr;

/// The weight of a new latency sample in the moving average (see the
/// module doc): `ALPHA_NUMERATOR / ALPHA_DENOMINATOR`.
pub const LATENCY_EWMA_ALPHA: f64 = ALPHA_NUMERATOR as f64 / ALPHA_DENOMINATOR as f64;
const ALPHA_NUMERATOR: u64 = 1;
const ALPHA_DENOMINATOR: u64 = 5;

/// The longest latency sample counted (a day); longer ones count as this.
pub const MAX_LATENCY_SAMPLE_US: u64 = 86_400_000_000;

/// The moving average after `sample_us`, from `average_us` (none before the
/// first sample).
pub fn next_latency_ewma_us(average_us: Option<u64>, sample_us: u64) -> u64 {
    let sample_us = sample_us.min(MAX_LATENCY_SAMPLE_US);
    match average_us {
        None => sample_us,
        Some(average_us) => {
            let weighted = sample_us
                .saturating_mul(ALPHA_NUMERATOR)
                .saturating_add(average_us.saturating_mul(ALPHA_DENOMINATOR - ALPHA_NUMERATOR))
                .saturating_add(ALPHA_DENOMINATOR / 2);
            weighted / ALPHA_DENOMINATOR
        }
    }
}

/// The class of a failure an account's upstream answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Upstream 429.
    RateLimited,
    /// Upstream 5xx, or an unreachable or reset upstream.
    ServerError,
    Timeout,
    /// Upstream 401/403 on the credential.
    AuthFailed,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 4] = [
        ErrorClass::RateLimited,
        ErrorClass::ServerError,
        ErrorClass::Timeout,
        ErrorClass::AuthFailed,
    ];

    /// Its label: in account reads, and as the stores keep it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::ServerError => "server_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::AuthFailed => "auth_failed",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error class {0:?}")]
pub struct UnknownErrorClass(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownErrorClass;

    fn from_str(label: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .into_iter()
            .find(|class| class.as_str() == label)
            .ok_or_else(|| UnknownErrorClass(label.to_owned()))
    }
}

/// An account's activity as the counters hold it (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountActivity {
    /// When it last served a request (unix ms).
    pub last_used_at_ms: Option<i64>,
    /// When an upstream call on it last failed (unix ms).
    pub last_error_at_ms: Option<i64>,
    /// The class of that failure.
    pub last_error: Option<ErrorClass>,
    /// Requests it served on the current UTC day.
    pub successes_today: u64,
    /// Failures recorded on it on the current UTC day.
    pub errors_today: u64,
    /// The moving average of its served calls' upstream latency, in
    /// microseconds; `None` before the first measured call.
    pub latency_ewma_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sample_is_the_average() {
        assert_eq!(next_latency_ewma_us(None, 1_234), 1_234);
    }

    #[test]
    fn each_sample_weighs_a_fifth() {
        assert_eq!(next_latency_ewma_us(Some(1_000), 2_000), 1_200);
        assert_eq!(next_latency_ewma_us(Some(1_000), 0), 800);
        // Rounded half up: (3 + 4 * 1) / 5 = 1.4 -> 1; (4 + 4) / 5 = 1.6 -> 2.
        assert_eq!(next_latency_ewma_us(Some(1), 3), 1);
        assert_eq!(next_latency_ewma_us(Some(1), 4), 2);
        assert!((LATENCY_EWMA_ALPHA - 0.2).abs() < f64::EPSILON);
    }

    #[test]
    fn the_average_follows_a_lasting_change() {
        let mut average = Some(100_000);
        for _ in 0..20 {
            average = Some(next_latency_ewma_us(average, 10_000));
        }
        assert!(average.is_some_and(|us| us < 11_500), "{average:?}");
    }

    #[test]
    fn huge_samples_count_as_a_day() {
        assert_eq!(next_latency_ewma_us(None, u64::MAX), MAX_LATENCY_SAMPLE_US);
        assert_eq!(
            next_latency_ewma_us(Some(MAX_LATENCY_SAMPLE_US), u64::MAX),
            MAX_LATENCY_SAMPLE_US
        );
    }

    #[test]
    fn labels_round_trip() {
        for class in ErrorClass::ALL {
            assert_eq!(class.as_str().parse::<ErrorClass>(), Ok(class));
        }
        assert!("teapot".parse::<ErrorClass>().is_err());
    }
}
