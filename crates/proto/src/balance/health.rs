//! What a balanced client knows about each endpoint, and the choices it
//! makes from that: which failures eject an endpoint, for how long, and
//! which endpoint takes the next call. No I/O here.

use std::error::Error as _;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Status};

use tollgate_core::GatewayError;

use crate::GatewayErrorExt;

/// How a balanced client ejects and probes endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long an endpoint stays out after its first failure before it is
    /// probed; each failed probe doubles it.
    pub ejection: Duration,
    /// The longest an endpoint stays out between two probes.
    pub max_ejection: Duration,
    /// How long a probe (the service's `Ping`) may take.
    pub probe_timeout: Duration,
    /// How long a call waits for the first lookup of the peer's addresses.
    pub first_lookup: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(1),
            first_lookup: Duration::from_secs(5),
        }
    }
}

/// What a failed call says about the endpoint it went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The service answered (an error of its own): the endpoint is fine.
    Answered,
    /// The endpoint could not be reached or dropped the call. `sent` is
    /// false when the request provably never left this process (the
    /// connection was refused or closed first), so it may go elsewhere.
    Unreachable { sent: bool },
}

impl Verdict {
    pub(crate) fn of(status: &Status) -> Self {
        if GatewayError::is_in_status(status) {
            return Self::Answered;
        }
        if never_sent(status) {
            return Self::Unreachable { sent: false };
        }
        if status.code() == Code::Unavailable {
            return Self::Unreachable { sent: true };
        }
        Self::Answered
    }
}

/// Whether the status comes from a call the endpoint provably never
/// handled: no connection could be made, the one there was closed before
/// it took the request, or the server refused its HTTP/2 stream unprocessed.
fn never_sent(status: &Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        if let Some(error) = error.downcast_ref::<hyper::Error>()
            && error.is_canceled()
        {
            return true;
        }
        if let Some(error) = error.downcast_ref::<h2::Error>()
            && refused_unprocessed(error)
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// An HTTP/2 stream the server did not process (RFC 9113, 6.8 and 8.7):
/// one its GOAWAY left out (a stream above the last one it took, or one
/// opened after the GOAWAY arrived), or one it reset with REFUSED_STREAM.
/// A server stopping gracefully sends GOAWAY, so a call that races with
/// it fails this way and may go to another replica: tonic reports it as
/// `Internal` (the GOAWAY's reason is NO_ERROR), not `Unavailable`.
fn refused_unprocessed(error: &h2::Error) -> bool {
    error.is_remote() && (error.is_go_away() || error.reason() == Some(h2::Reason::REFUSED_STREAM))
}

/// One endpoint's record of failures.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Failures since the endpoint last answered; drives the ejection time.
    failures: u32,
    /// While set, the endpoint takes new calls only when every other one is
    /// ejected too; a probe after this moment may bring it back.
    ejected_until: Option<Instant>,
    last_failure: Option<Instant>,
    probing: bool,
}

impl Health {
    pub(crate) fn available(&self) -> bool {
        self.ejected_until.is_none()
    }

    pub(crate) fn last_failure(&self) -> Option<Instant> {
        self.last_failure
    }

    /// Records an answer; returns whether this brings the endpoint back.
    pub(crate) fn answered(&mut self) -> bool {
        let was_ejected = self.ejected_until.is_some();
        self.failures = 0;
        self.ejected_until = None;
        was_ejected
    }

    /// Records a failure; returns whether this ejects the endpoint. Calls
    /// that fail together (all those on a connection that broke) count as
    /// one: only failures of an endpoint in service or of its probe make
    /// the next ejection longer.
    pub(crate) fn failed(&mut self, now: Instant, settings: &Settings) -> bool {
        self.last_failure = Some(now);
        if self.ejected_until.is_some() {
            return false;
        }
        self.eject(now, settings);
        true
    }

    /// Whether the endpoint's ejection is over and no probe is under way;
    /// if so the caller probes it (and reports with [`Health::probed`]).
    pub(crate) fn probe_due(&mut self, now: Instant) -> bool {
        let due = !self.probing && self.ejected_until.is_some_and(|until| until <= now);
        self.probing |= due;
        due
    }

    /// Records a probe's result; returns whether the endpoint is back.
    pub(crate) fn probed(&mut self, ok: bool, now: Instant, settings: &Settings) -> bool {
        self.probing = false;
        if ok {
            return self.answered();
        }
        self.last_failure = Some(now);
        self.eject(now, settings);
        false
    }

    fn eject(&mut self, now: Instant, settings: &Settings) {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let pause = settings
            .ejection
            .saturating_mul(1 << doublings)
            .min(settings.max_ejection);
        self.ejected_until = Some(now + pause);
    }
}

/// What [`choose`] looks at in an endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// Already tried by this call.
    pub tried: bool,
    pub available: bool,
    pub in_flight: usize,
    pub last_failure: Option<Instant>,
}

/// The endpoint for the next call: of two endpoints in service taken at
/// random, the one with fewer calls in flight; when every untried endpoint
/// is ejected, the one that failed longest ago (a call goes somewhere
/// rather than failing untried). `random(n)` returns a number below `n`.
pub(crate) fn choose(views: &[View], mut random: impl FnMut(usize) -> usize) -> Option<usize> {
    let available = |view: &View| !view.tried && view.available;
    let count = views.iter().filter(|view| available(view)).count();
    let nth = |n: usize| {
        views
            .iter()
            .enumerate()
            .filter(|(_, view)| available(view))
            .nth(n)
            .map(|(index, _)| index)
    };
    match count {
        0 => views
            .iter()
            .enumerate()
            .filter(|(_, view)| !view.tried)
            .min_by_key(|(_, view)| view.last_failure)
            .map(|(index, _)| index),
        1 => nth(0),
        _ => {
            let first = random(count);
            let second = (first + 1 + random(count - 1)) % count;
            let (a, b) = (nth(first)?, nth(second)?);
            Some(if views[b].in_flight < views[a].in_flight {
                b
            } else {
                a
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::ErrorKind;

    fn settings() -> Settings {
        Settings {
            ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(5),
            ..Settings::default()
        }
    }

    fn connect_refused() -> Status {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))))
    }

    #[test]
    fn a_refused_connection_never_sent_the_request() {
        assert_eq!(
            Verdict::of(&connect_refused()),
            Verdict::Unreachable { sent: false }
        );
    }

    #[test]
    fn unavailable_without_a_gateway_error_is_the_endpoint_failing() {
        assert_eq!(
            Verdict::of(&Status::unavailable("connection reset")),
            Verdict::Unreachable { sent: true }
        );
    }

    #[test]
    fn errors_of_the_service_say_the_endpoint_is_fine() {
        let gateway = GatewayError::new(ErrorKind::Unavailable, "no account").to_status();
        assert_eq!(Verdict::of(&gateway), Verdict::Answered);
        assert_eq!(Verdict::of(&Status::not_found("no")), Verdict::Answered);
        assert_eq!(
            Verdict::of(&Status::deadline_exceeded("slow")),
            Verdict::Answered
        );
    }

    #[test]
    fn a_failure_ejects_until_a_probe_brings_the_endpoint_back() {
        let settings = settings();
        let start = Instant::now();
        let mut health = Health::default();
        assert!(health.failed(start, &settings));
        assert!(!health.available());
        // Calls failing together on a broken connection count once.
        assert!(!health.failed(start, &settings));
        assert!(!health.probe_due(start + Duration::from_millis(999)));
        assert!(health.probe_due(start + Duration::from_secs(1)));
        // One probe at a time.
        assert!(!health.probe_due(start + Duration::from_secs(1)));
        assert!(health.probed(true, start + Duration::from_secs(1), &settings));
        assert!(health.available());
    }

    #[test]
    fn failed_probes_double_the_ejection_up_to_the_most() {
        let settings = settings();
        let mut now = Instant::now();
        let mut health = Health::default();
        health.failed(now, &settings);
        let mut pauses = Vec::new();
        for _ in 0..5 {
            let mut waited = Duration::ZERO;
            while !health.probe_due(now + waited) {
                waited += Duration::from_millis(500);
            }
            pauses.push(waited.as_secs_f32());
            now += waited;
            assert!(!health.probed(false, now, &settings));
        }
        assert_eq!(pauses, [1.0, 2.0, 4.0, 5.0, 5.0]);
        assert!(health.answered());
        health.failed(now, &settings);
        assert!(!health.probe_due(now + Duration::from_millis(999)));
        assert!(health.probe_due(now + Duration::from_secs(1)));
    }

    fn view(available: bool, in_flight: usize, failed_secs_ago: Option<u64>) -> View {
        let now = Instant::now() + Duration::from_secs(100);
        View {
            tried: false,
            available,
            in_flight,
            last_failure: failed_secs_ago.map(|secs| now - Duration::from_secs(secs)),
        }
    }

    #[test]
    fn the_less_busy_of_two_available_endpoints_is_chosen() {
        let views = [
            view(true, 3, None),
            view(false, 0, Some(1)),
            view(true, 1, None),
        ];
        for seed in 0..10 {
            let mut rng = fastrand::Rng::with_seed(seed);
            assert_eq!(choose(&views, |n| rng.usize(..n)), Some(2));
        }
    }

    #[test]
    fn every_available_endpoint_gets_calls() {
        let views = [
            view(true, 0, None),
            view(true, 0, None),
            view(true, 0, None),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[choose(&views, |n| rng.usize(..n)).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&count| count > 50), "{seen:?}");
    }

    #[test]
    fn ejected_endpoints_take_calls_only_when_all_are() {
        let mut views = [view(false, 0, Some(1)), view(true, 9, None)];
        assert_eq!(choose(&views, |_| 0), Some(1));
        views[1].tried = true;
        // Fail open: the untried ejected endpoint still gets the call.
        assert_eq!(choose(&views, |_| 0), Some(0));
        let all_ejected = [
            view(false, 0, Some(1)),
            view(false, 0, Some(30)),
            view(false, 0, Some(5)),
        ];
        assert_eq!(choose(&all_ejected, |_| 0), Some(1));
        let all_tried = [View {
            tried: true,
            ..view(true, 0, None)
        }];
        assert_eq!(choose(&all_tried, |_| 0), None);
    }
}
