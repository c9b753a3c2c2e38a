//! The delays between retries of a loop that must keep its own shape:
//! reconnecting a stream until shutdown, resending a batch until it is
//! stored or its budget runs out. Such a loop sleeps (selecting on its own
//! shutdown signal), so it asks [`Retries`] only for the next delay, and
//! calls [`Retries::reset`] after a success. A call retried as a whole
//! with no such structure uses `backon`'s `Retryable` directly.
//!
//! The schedule is `backon`'s exponential one, endless: `first`, then
//! doubling up to `last`. Jittered, each delay is drawn between its base
//! and twice that, never beyond `last`, so replicas that lost the same
//! peer at the same moment do not all come back to it in step.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The delays before each retry of one loop.
#[derive(Debug)]
pub struct Retries {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    last: Duration,
}

impl Retries {
    /// `first`, doubling up to `last` (raised to `first` when below it),
    /// for as long as it is asked.
    pub fn new(first: Duration, last: Duration) -> Self {
        let last = last.max(first);
        let builder = ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay(last)
            .without_max_times();
        Self {
            builder,
            delays: builder.build(),
            last,
        }
    }

    /// The same schedule with each delay spread between its base and twice
    /// that, never beyond `last`.
    #[must_use]
    pub fn jittered(mut self) -> Self {
        self.builder = self.builder.with_jitter();
        self.delays = self.builder.build();
        self
    }

    /// How long to wait before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.last).min(self.last)
    }

    /// Starts again from `first`, after a success.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(100);
    const LAST: Duration = Duration::from_secs(5);

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_millis(1)
    }

    #[test]
    fn delays_double_from_the_first_to_the_last_and_stay_there() {
        let mut retries = Retries::new(FIRST, LAST);
        let delays: Vec<Duration> = (0..12).map(|_| retries.next_delay()).collect();
        assert_eq!(delays[0], FIRST);
        for (delay, millis) in delays.iter().zip([100, 200, 400, 800, 1600, 3200]) {
            assert!(close(*delay, Duration::from_millis(millis)), "{delays:?}");
        }
        assert!(delays[6..].iter().all(|delay| *delay == LAST), "{delays:?}");
    }

    #[test]
    fn a_reset_starts_again_from_the_first() {
        let mut retries = Retries::new(FIRST, LAST);
        for _ in 0..10 {
            retries.next_delay();
        }
        retries.reset();
        assert_eq!(retries.next_delay(), FIRST);
    }

    #[test]
    fn a_last_below_the_first_is_raised_to_it() {
        let mut retries = Retries::new(FIRST, Duration::from_millis(10));
        assert_eq!(retries.next_delay(), FIRST);
        assert_eq!(retries.next_delay(), FIRST);
    }

    #[test]
    fn jittered_delays_stay_between_their_base_and_twice_it_within_the_last() {
        for _ in 0..50 {
            let mut retries = Retries::new(FIRST, LAST).jittered();
            let mut base = FIRST;
            for _ in 0..12 {
                let delay = retries.next_delay();
                assert!(
                    delay + Duration::from_millis(1) >= base,
                    "{delay:?} < {base:?}"
                );
                assert!(
                    delay <= (base * 2).min(LAST) + Duration::from_millis(1),
                    "{delay:?} > 2 × {base:?}"
                );
                base = (base * 2).min(LAST);
            }
            retries.reset();
            let first = retries.next_delay();
            assert!(first >= FIRST && first < FIRST * 2, "{first:?}");
        }
        let draws: Vec<Duration> = {
            let mut retries = Retries::new(FIRST, LAST).jittered();
            (0..20)
                .map(|_| {
                    retries.reset();
                    retries.next_delay()
                })
                .collect()
        };
        assert!(
            draws.iter().any(|draw| *draw != draws[0]),
            "no spread: {draws:?}"
        );
    }
}
