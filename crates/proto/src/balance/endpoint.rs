//! One endpoint of a balanced peer: its channel, health and load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};
use tracing::{info, warn};

use super::Peer;
use super::health::{Health, Verdict, View};

pub(super) struct Endpoint {
    pub(super) address: SocketAddr,
    pub(super) channel: Channel,
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

pub(super) fn connect(peer: &Peer, address: SocketAddr) -> Option<Arc<Endpoint>> {
    let endpoint = match TonicEndpoint::from_shared(format!("http://{address}")) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            warn!(peer = %peer.name, %address, %error, "endpoint skipped");
            return None;
        }
    };
    let channel = endpoint
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Some(Arc::new(Endpoint {
        address,
        channel,
        health: Mutex::new(Health::default()),
        in_flight: AtomicUsize::new(0),
    }))
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
