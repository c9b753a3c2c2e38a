//! One shutdown signal for every server and background task of a process,
//! in two moments: shutdown *starts* (readiness turns false while the
//! process keeps serving), then, after the drain delay, the servers *stop*
//! accepting and drain.
//!
//! Its own crate so that every service can take it (`App::run_until`)
//! without depending on the binary. A plain cancellation token (such as
//! tokio-util's `CancellationToken`) has one moment only; this one has two,
//! and remembers when the servers were told to stop, which the binary's
//! grace period counts from.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Cloneable. [`Shutdown::trigger`] (SIGINT, SIGTERM) starts shutdown and
/// stops the servers after the drain delay; [`Shutdown::stop`] (a server
/// failed) does both at once.
#[derive(Clone)]
pub struct Shutdown {
    started: watch::Sender<bool>,
    /// When the servers were told to stop accepting.
    stopped: watch::Sender<Option<Instant>>,
    drain_delay: Duration,
}

impl Shutdown {
    /// A shutdown whose servers keep accepting for `drain_delay` after it
    /// starts, so load balancers see the readiness change first.
    pub fn new(drain_delay: Duration) -> Self {
        Self {
            started: watch::channel(false).0,
            stopped: watch::channel(None).0,
            drain_delay,
        }
    }

    /// Starts shutdown; the servers stop accepting after the drain delay.
    /// Must run inside the runtime.
    pub fn trigger(&self) {
        if !self.start() {
            return;
        }
        if self.drain_delay.is_zero() {
            self.stop();
            return;
        }
        tracing::info!(
            delay_secs = self.drain_delay.as_secs(),
            "not ready; still serving until the drain delay is over"
        );
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.drain_delay).await;
            this.stop();
        });
    }

    /// Starts shutdown if it has not started, and stops the servers now.
    pub fn stop(&self) {
        self.start();
        self.stopped.send_if_modified(|stopped| {
            let first = stopped.is_none();
            if first {
                *stopped = Some(Instant::now());
            }
            first
        });
    }

    /// Marks shutdown as started; whether this call did.
    fn start(&self) -> bool {
        !self.started.send_replace(true)
    }

    /// Resolves once shutdown started: the process is no longer ready.
    pub async fn started(self) {
        let mut started = self.started.subscribe();
        // An error means every sender is gone, which is also an end.
        let _ = started.wait_for(|started| *started).await;
    }

    /// Resolves once the servers are to stop accepting and drain.
    pub async fn wait(self) {
        let mut stopped = self.stopped.subscribe();
        let _ = stopped.wait_for(Option::is_some).await;
    }

    /// When the servers were told to stop, if they were.
    pub fn stopped_at(&self) -> Option<Instant> {
        *self.stopped.borrow()
    }

    /// Triggers shutdown on SIGINT or SIGTERM.
    pub fn on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let interrupt = tokio::signal::ctrl_c();
            #[cfg(unix)]
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                _ = interrupt => {}
                _ = terminate => {}
            }
            tracing::info!("shutting down");
            this.trigger();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn servers_stop_after_the_drain_delay() {
        let shutdown = Shutdown::new(Duration::from_secs(5));
        let began = Instant::now();
        shutdown.trigger();
        shutdown.clone().started().await;
        assert_eq!(shutdown.stopped_at(), None, "still serving");
        shutdown.clone().wait().await;
        assert_eq!(began.elapsed(), Duration::from_secs(5));
        assert_eq!(shutdown.stopped_at(), Some(began + Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_stops_at_once_and_a_second_stop_changes_nothing() {
        let shutdown = Shutdown::new(Duration::from_secs(5));
        let began = Instant::now();
        shutdown.stop();
        shutdown.clone().started().await;
        shutdown.clone().wait().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.trigger();
        shutdown.stop();
        assert_eq!(shutdown.stopped_at(), Some(began));
    }
}
