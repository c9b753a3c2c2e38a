//! Where a peer service runs: the set of addresses that serve it now,
//! followed as replicas come and go.
//!
//! [`Discover`] is the seam: the balanced clients of [`crate::remote`] only
//! read the addresses it publishes, so a source that watches Kubernetes
//! EndpointSlices can stand beside [`Dns`] without changing them.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::watch;
use tracing::warn;

/// The addresses that serve one peer service.
pub type Addresses = BTreeSet<SocketAddr>;

/// A source of the addresses that serve one peer service.
pub trait Discover: Send + Sync + 'static {
    /// Starts following the service. The receiver always holds the latest
    /// addresses; it holds `None` until the first lookup has finished. The
    /// source may stop once every receiver is dropped.
    fn watch(&self) -> watch::Receiver<Option<Addresses>>;
}

/// A peer address that is not `host:port` (or `http://host:port`).
#[derive(Debug, thiserror::Error)]
#[error("invalid peer address {address:?}: {reason}")]
pub struct InvalidAddress {
    address: String,
    reason: &'static str,
}

/// One configured `host:port`, where the host is an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    authority: String,
}

impl HostPort {
    /// Reads `host:port`, also written `http://host:port`.
    pub fn parse(address: &str) -> Result<Self, InvalidAddress> {
        let invalid = |reason| InvalidAddress {
            address: address.to_owned(),
            reason,
        };
        let text = address.trim();
        let text = text.strip_prefix("http://").unwrap_or(text);
        let text = text.strip_suffix('/').unwrap_or(text);
        if text.contains("://") {
            return Err(invalid("only plain http:// peers are supported"));
        }
        let authority: http::uri::Authority =
            text.parse().map_err(|_| invalid("not a host:port"))?;
        if authority.port_u16().is_none() {
            return Err(invalid("the port is missing"));
        }
        if authority.host().is_empty() || text.contains('@') {
            return Err(invalid("not a host:port"));
        }
        Ok(Self {
            authority: authority.as_str().to_owned(),
        })
    }

    /// The address itself when the host is an IP address: no lookup needed.
    fn literal(&self) -> Option<SocketAddr> {
        self.authority.parse().ok()
    }

    async fn lookup(&self) -> io::Result<Addresses> {
        Ok(tokio::net::lookup_host(self.authority.as_str())
            .await?
            .collect())
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.authority)
    }
}

/// How often [`Dns`] looks its names up again by default: often enough to
/// follow a Kubernetes headless Service as pods come and go.
pub const DEFAULT_RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// Addresses from the system resolver: every target is looked up, and
/// looked up again every `every`, so a name that gains or loses addresses
/// (a headless Service) is followed. A lookup that fails keeps what that
/// name had before, so a resolver hiccup does not empty the set.
#[derive(Debug, Clone)]
pub struct Dns {
    host_ports: Vec<HostPort>,
    every: Duration,
}

impl Dns {
    pub fn new(host_ports: Vec<HostPort>, every: Duration) -> Self {
        Self { host_ports, every }
    }
}

impl Discover for Dns {
    fn watch(&self) -> watch::Receiver<Option<Addresses>> {
        let literals: Option<Addresses> = self.host_ports.iter().map(HostPort::literal).collect();
        if let Some(addresses) = literals {
            // Nothing to look up, nothing that can change.
            return watch::channel(Some(addresses)).1;
        }
        let (sender, receiver) = watch::channel(None);
        tokio::spawn(follow(self.host_ports.clone(), self.every, sender));
        receiver
    }
}

/// Looks every target up each `every` until no one listens.
async fn follow(
    host_ports: Vec<HostPort>,
    every: Duration,
    sender: watch::Sender<Option<Addresses>>,
) {
    let mut known = vec![Addresses::new(); host_ports.len()];
    loop {
        let lookups = host_ports.iter().map(|target| async move {
            let result = match tokio::time::timeout(every, target.lookup()).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "lookup timed out")),
            };
            if let Err(error) = &result {
                warn!(%target, %error, "peer address lookup failed; keeping its last addresses");
            }
            result
        });
        let found = merge(&mut known, join_all(lookups).await);
        sender.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&found);
            if changed {
                *current = Some(found);
            }
            changed
        });
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Records each target's new lookup in `known` (a failed lookup keeps the
/// target's previous addresses) and returns every target's addresses.
fn merge(known: &mut [Addresses], lookups: Vec<io::Result<Addresses>>) -> Addresses {
    for (addresses, lookup) in known.iter_mut().zip(lookups) {
        if let Ok(found) = lookup {
            *addresses = found;
        }
    }
    known.iter().flatten().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addresses: &[&str]) -> Addresses {
        addresses.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn targets_are_host_and_port() {
        for good in [
            "10.0.0.1:9002",
            "quota:9002",
            "http://quota.ns.svc:9002/",
            "[::1]:9",
        ] {
            assert!(HostPort::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "quota",
            "https://quota:9002",
            "",
            ":9002",
            "user@quota:1",
            "a b:1",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(HostPort::parse(" http://q:1 ").unwrap().to_string(), "q:1");
    }

    #[test]
    fn a_lookup_replaces_what_its_target_had() {
        let mut known = vec![set(&["10.0.0.1:1", "10.0.0.2:1"]), set(&["10.0.1.1:1"])];
        let found = merge(
            &mut known,
            vec![
                Ok(set(&["10.0.0.2:1", "10.0.0.3:1"])),
                Ok(set(&["10.0.1.1:1"])),
            ],
        );
        assert_eq!(found, set(&["10.0.0.2:1", "10.0.0.3:1", "10.0.1.1:1"]));
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_addresses() {
        let mut known = vec![set(&["10.0.0.1:1"]), set(&["10.0.1.1:1"])];
        let failed = Err(io::Error::other("resolver down"));
        let found = merge(&mut known, vec![failed, Ok(Addresses::new())]);
        assert_eq!(found, set(&["10.0.0.1:1"]));
        assert_eq!(known[0], set(&["10.0.0.1:1"]));
    }

    #[tokio::test]
    async fn ip_literals_need_no_lookup() {
        let host_ports = vec![HostPort::parse("127.0.0.1:1").unwrap()];
        let receiver = Dns::new(host_ports, DEFAULT_RESOLVE_EVERY).watch();
        assert_eq!(*receiver.borrow(), Some(set(&["127.0.0.1:1"])));
    }

    #[tokio::test]
    async fn names_are_looked_up() {
        let host_ports = vec![
            HostPort::parse("localhost:7").unwrap(),
            HostPort::parse("127.0.0.2:7").unwrap(),
        ];
        let mut receiver = Dns::new(host_ports, DEFAULT_RESOLVE_EVERY).watch();
        let found = receiver.wait_for(Option::is_some).await.unwrap().clone();
        let found = found.unwrap();
        assert!(found.contains(&"127.0.0.1:7".parse().unwrap()), "{found:?}");
        assert!(found.contains(&"127.0.0.2:7".parse().unwrap()), "{found:?}");
    }
}
