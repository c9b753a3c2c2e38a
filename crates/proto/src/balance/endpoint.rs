//! One endpoint of a balanced peer: its channel, health and load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::Status;
use tracing::{info, warn};

use super::Peer;
use super::health::{Health, Verdict, View};
use super::link::Link;

pub(super) struct Endpoint {
    pub(super) address: SocketAddr,
    pub(super) link: Link,
    health: Mutex<Health>,
    in_flight: AtomicUsize,
}

impl Endpoint {
    pub(super) fn health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn view(&self, tried: &[SocketAddr]) -> View {
        let health = self.health();
        View {
            tried: tried.contains(&self.address),
            available: health.available(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            last_failure: health.last_failure(),
        }
    }

    pub(super) fn observe(&self, status: Option<&Status>, peer: &Peer) {
        let verdict = status.map_or(Verdict::Answered, Verdict::of);
        let address = self.address;
        match verdict {
            Verdict::Answered => {
                if self.health().answered() {
                    info!(peer = %peer.name, %address, "endpoint answers again");
                }
            }
            Verdict::Unreachable { .. } => {
                if self.health().failed(Instant::now(), &peer.settings) {
                    let error = status.map(Status::message).unwrap_or_default();
                    warn!(peer = %peer.name, %address, error, "endpoint ejected");
                }
            }
        }
    }
}

pub(super) fn connect(address: SocketAddr) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        address,
        link: Link::new(address),
        health: Mutex::new(Health::default()),
        in_flight: AtomicUsize::new(0),
    })
}

/// A call on an endpoint, counted in its load until dropped.
pub(crate) struct InFlight {
    endpoint: Arc<Endpoint>,
    peer: Peer,
}

impl InFlight {
    pub(super) fn new(endpoint: Arc<Endpoint>, peer: Peer) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self { endpoint, peer }
    }

    /// Keeps the call counted while `stream` lasts, and ejects the endpoint
    /// if the stream breaks at the transport level.
    pub(crate) fn hold<S, T>(self, stream: S) -> impl Stream<Item = Result<T, Status>> + use<S, T>
    where
        S: Stream<Item = Result<T, Status>>,
    {
        stream.inspect(move |item| {
            if let Err(status) = item
                && Verdict::of(status) != Verdict::Answered
            {
                self.endpoint.observe(Some(status), &self.peer);
            }
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
