//! Client-side load balancing over every replica of a peer service.
//!
//! gRPC keeps one HTTP/2 connection per channel, so a single address (a
//! Kubernetes ClusterIP Service) would pin a client to one replica. A
//! [`Balancer`] holds one lazily connected channel per address that its
//! [`Discover`] source publishes and sends each call to the less busy of two
//! endpoints in service. An endpoint whose call fails at the transport
//! level is ejected and probed with the service's `Ping` until it answers;
//! a call refused before it was sent goes to another endpoint. Endpoints
//! that leave the set keep their connection for the calls still on them.

mod endpoint;
mod health;
mod link;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::{Request, Status};
use tracing::{debug, info, warn};

use tollgate_core::GatewayError;

use crate::GatewayErrorExt;
use crate::discovery::{Addresses, DEFAULT_RESOLVE_EVERY, Discover, Dns, HostPort, InvalidAddress};

pub(crate) use endpoint::InFlight;
use endpoint::{Endpoint, connect};
pub use health::Settings;
use health::{Verdict, View, choose};
pub(crate) use link::Link;

/// Where a peer service runs and how calls to it are balanced: what a
/// `Remote*` client is built from. Cheap to clone; nothing runs until the
/// first call.
#[derive(Clone)]
pub struct Peer {
    name: Arc<str>,
    discover: Arc<dyn Discover>,
    settings: Settings,
}

impl Peer {
    /// Every replica behind `addresses` (each `host:port`, the host an IP
    /// address or a DNS name looked up again every few seconds).
    pub fn dns<S: AsRef<str>>(addresses: &[S]) -> Result<Self, InvalidAddress> {
        let host_ports = addresses
            .iter()
            .map(|address| HostPort::parse(address.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let name = host_ports
            .iter()
            .map(HostPort::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self::new(
            name,
            Arc::new(Dns::new(host_ports, DEFAULT_RESOLVE_EVERY)),
        ))
    }

    /// The replicas `discover` publishes; `name` labels them in logs.
    pub fn new(name: impl Into<Arc<str>>, discover: Arc<dyn Discover>) -> Self {
        Self {
            name: name.into(),
            discover,
            settings: Settings::default(),
        }
    }

    /// Replaces the ejection and probing settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }
}

/// Checks that an endpoint serves: the service's `Ping`.
pub(crate) type Probe = fn(Link) -> BoxFuture<'static, Result<(), Status>>;

/// Balances the calls of one `Remote*` client (and its clones).
pub(crate) struct Balancer {
    peer: Peer,
    probe: Probe,
    endpoints: OnceLock<watch::Receiver<Option<Endpoints>>>,
}

type Endpoints = Arc<[Arc<Endpoint>]>;

impl Balancer {
    pub(crate) fn new(peer: Peer, probe: Probe) -> Self {
        Self {
            peer,
            probe,
            endpoints: OnceLock::new(),
        }
    }

    /// Sends `request` through `send` to an endpoint, and to another one
    /// when it provably never reached the first. Returns the answer with the
    /// call's place in its endpoint's load, to hold while a stream lasts.
    pub(crate) async fn call<M, T, F, Fut>(
        &self,
        request: Request<M>,
        mut send: F,
    ) -> Result<(T, InFlight), Status>
    where
        M: Clone,
        F: FnMut(Link, Request<M>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let endpoints = self.current().await?;
        let mut parts = Some(request.into_parts());
        let mut tried: Vec<SocketAddr> = Vec::new();
        loop {
            let views: Vec<View> = endpoints.iter().map(|e| e.view(&tried)).collect();
            let Some(index) = choose(&views, |n| fastrand::usize(..n)) else {
                return Err(Status::unavailable(format!(
                    "no endpoint of {} is known",
                    self.peer.name
                )));
            };
            let endpoint = &endpoints[index];
            // A copy for another endpoint, while there is one to try.
            let last_chance = tried.len() + 1 >= endpoints.len();
            let (metadata, extensions, message) = match (last_chance, parts.take()) {
                (false, Some((metadata, extensions, message))) => {
                    let copy = (metadata.clone(), extensions.clone(), message.clone());
                    parts = Some((metadata, extensions, message));
                    copy
                }
                (_, Some(own)) => own,
                (_, None) => return Err(Status::internal("balanced call lost its request")),
            };
            let in_flight = InFlight::new(endpoint.clone(), self.peer.clone());
            let request = Request::from_parts(metadata, extensions, message);
            match send(endpoint.link.clone(), request).await {
                Ok(answer) => {
                    endpoint.observe(None, &self.peer);
                    return Ok((answer, in_flight));
                }
                Err(status) => {
                    endpoint.observe(Some(&status), &self.peer);
                    let verdict = Verdict::of(&status);
                    let unsent = verdict == (Verdict::Unreachable { sent: false });
                    if !unsent || last_chance {
                        if transport_failure(&status, verdict) {
                            // The caller shows a generic failure: say here what it was.
                            warn!(peer = %self.peer.name, address = %endpoint.address, code = ?status.code(), error = status.message(), cause = ?std::error::Error::source(&status), "call failed in transport");
                        }
                        return Err(status);
                    }
                    debug!(peer = %self.peer.name, address = %endpoint.address, "call not sent; trying another endpoint");
                    tried.push(endpoint.address);
                }
            }
        }
    }

    /// The endpoints now, waiting for the first lookup if need be.
    async fn current(&self) -> Result<Endpoints, Status> {
        let mut receiver = self.endpoints.get_or_init(|| self.start()).clone();
        if let Some(endpoints) = receiver.borrow().as_ref() {
            return Ok(endpoints.clone());
        }
        let first = tokio::time::timeout(
            self.peer.settings.first_lookup,
            receiver.wait_for(Option::is_some),
        )
        .await;
        match first {
            Ok(Ok(endpoints)) => Ok(endpoints.as_ref().map(Arc::clone).unwrap_or_default()),
            _ => Err(Status::unavailable(format!(
                "no address of {} is known yet",
                self.peer.name
            ))),
        }
    }

    fn start(&self) -> watch::Receiver<Option<Endpoints>> {
        let (sender, receiver) = watch::channel(None);
        let found = self.peer.discover.watch();
        tokio::spawn(maintain(self.peer.clone(), self.probe, found, sender));
        receiver
    }
}

/// Whether a failed call's status comes from the connection rather than
/// from the service: unreachable, or an HTTP/2 failure tonic reports as
/// `Internal` or `Unknown`, with no gateway error in it.
fn transport_failure(status: &Status, verdict: Verdict) -> bool {
    !GatewayError::is_in_status(status)
        && (verdict != Verdict::Answered
            || matches!(status.code(), tonic::Code::Internal | tonic::Code::Unknown))
}

/// Follows the discovered addresses and probes ejected endpoints, until
/// the balancer is gone.
async fn maintain(
    peer: Peer,
    probe: Probe,
    mut found: watch::Receiver<Option<Addresses>>,
    sender: watch::Sender<Option<Endpoints>>,
) {
    let mut discovering = true;
    found.mark_changed();
    let every =
        (peer.settings.ejection / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = sender.closed() => return,
            changed = found.changed(), if discovering => {
                if changed.is_err() {
                    // The source will publish nothing more: keep what it gave.
                    discovering = false;
                    continue;
                }
                let Some(addresses) = found.borrow_and_update().clone() else { continue };
                sender.send_modify(|current| {
                    let old = current.as_deref().unwrap_or_default();
                    let next = reconcile(old, &addresses, |address| Some(connect(address)));
                    info!(peer = %peer.name, endpoints = next.len(), "peer endpoints updated");
                    *current = Some(next.into());
                });
            }
            _ = ticks.tick() => {
                let endpoints = sender.borrow().clone().unwrap_or_default();
                for endpoint in endpoints.iter() {
                    if endpoint.health().probe_due(Instant::now()) {
                        tokio::spawn(probe_once(peer.clone(), probe, endpoint.clone()));
                    }
                }
            }
        }
    }
}

async fn probe_once(peer: Peer, probe: Probe, endpoint: Arc<Endpoint>) {
    let answer =
        tokio::time::timeout(peer.settings.probe_timeout, probe(endpoint.link.clone())).await;
    let ok = matches!(answer, Ok(Ok(())));
    if endpoint.health().probed(ok, Instant::now(), &peer.settings) {
        info!(peer = %peer.name, address = %endpoint.address, "endpoint back in service");
    }
}

/// The endpoints for `addresses`: those already known keep their
/// connection and health, new ones are made with `make`.
fn reconcile<E: HasAddress + Clone>(
    old: &[E],
    addresses: &Addresses,
    mut make: impl FnMut(SocketAddr) -> Option<E>,
) -> Vec<E> {
    let known: BTreeMap<SocketAddr, &E> = old.iter().map(|e| (e.address(), e)).collect();
    addresses
        .iter()
        .filter_map(|address| match known.get(address) {
            Some(endpoint) => Some((*endpoint).clone()),
            None => make(*address),
        })
        .collect()
}

trait HasAddress {
    fn address(&self) -> SocketAddr;
}

impl HasAddress for Arc<Endpoint> {
    fn address(&self) -> SocketAddr {
        self.address
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Fake(SocketAddr, u32);

    impl HasAddress for Fake {
        fn address(&self) -> SocketAddr {
            self.0
        }
    }

    fn addresses(list: &[&str]) -> Addresses {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn reconciling_keeps_known_endpoints_and_adds_new_ones() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let c: SocketAddr = "10.0.0.3:1".parse().unwrap();
        let old = [Fake(a, 1), Fake(b, 1)];
        let next = reconcile(&old, &addresses(&["10.0.0.2:1", "10.0.0.3:1"]), |address| {
            Some(Fake(address, 2))
        });
        // b keeps its state (generation 1); a is gone; c is new.
        assert_eq!(next, [Fake(b, 1), Fake(c, 2)]);
        assert!(reconcile(&next, &Addresses::new(), |_| None).is_empty());
    }
}
