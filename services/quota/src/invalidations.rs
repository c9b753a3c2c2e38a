//! Key invalidations: every key write made through this service is
//! announced on a broadcast channel, which each `WatchInvalidations`
//! stream (one per edge) reads, so an edge drops a revoked key from its
//! cache at once instead of when its entry expires. With Redis the same
//! events, and a word that the control store changed (so the other
//! replicas reload their snapshot), are broadcast to and from the other
//! quota replicas ([`crate::broadcast`]).

use std::sync::{Arc, OnceLock};

use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tollgate_proto::BoxStream;
use tollgate_proto::v1::Invalidation;
use tonic::Status;
use tracing::warn;

/// Events a slow subscriber may fall behind by before its stream ends
/// (it then reconnects and clears its cache).
const CHANNEL_CAPACITY: usize = 1024;

/// What one replica tells the others through the broadcast.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// A key changed: the other replicas hand it to their edges.
    Key(Invalidation),
    /// Accounts, routes, profiles or keys were written: the other
    /// replicas reload their snapshot.
    Control,
}

/// The broadcast hub of one quota process. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Invalidations {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Invalidation>,
    stopped: watch::Sender<bool>,
    /// Changes made here, for the Redis broadcast to publish, once one runs.
    outbound: OnceLock<mpsc::Sender<Change>>,
}

impl Invalidations {
    pub(crate) fn new() -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                sender,
                stopped: watch::channel(false).0,
                outbound: OnceLock::new(),
            }),
        }
    }

    /// Announces that key `key_id` (whose hash is `key_hash`) changed, to
    /// this process's subscribers and, through the broadcast, to every other
    /// replica's.
    pub(crate) fn key_changed(&self, key_id: &str, key_hash: &str) {
        let event = Invalidation {
            key_id: key_id.to_owned(),
            key_hash: key_hash.to_owned(),
            all: false,
        };
        if !self.broadcast(Change::Key(event.clone())) {
            warn!(key = %key_id, "invalidation broadcast is behind; other replicas' edges will rely on their cache TTL");
        }
        self.deliver(event);
    }

    /// Announces to the other replicas that the control store changed.
    pub(crate) fn control_changed(&self) {
        if !self.broadcast(Change::Control) {
            warn!(
                "invalidation broadcast is behind; other replicas will see this change at their next snapshot refresh"
            );
        }
    }

    /// Hands `change` to the broadcast, if one runs; false when it is behind.
    fn broadcast(&self, change: Change) -> bool {
        self.inner
            .outbound
            .get()
            .is_none_or(|outbound| outbound.try_send(change).is_ok())
    }

    /// Hands `event` to this process's subscribers only (events received
    /// from other replicas, and resets).
    pub(crate) fn deliver(&self, event: Invalidation) {
        // No subscriber is not an error: nobody has anything to drop.
        let _ = self.inner.sender.send(event);
    }

    /// Routes this process's own events to a broadcast; false when one is
    /// already attached.
    pub(crate) fn attach_broadcast(&self, outbound: mpsc::Sender<Change>) -> bool {
        self.inner.outbound.set(outbound).is_ok()
    }

    /// A subscriber's stream: every event from now on. It ends when
    /// [`Invalidations::stop`] is called, and with an error when the
    /// subscriber fell too far behind (it has then missed events).
    pub(crate) fn subscribe(&self) -> BoxStream<Invalidation> {
        let state = (
            self.inner.sender.subscribe(),
            self.inner.stopped.subscribe(),
            false,
        );
        Box::pin(stream::unfold(
            state,
            |(mut events, mut stopped, ended)| async move {
                if ended {
                    return None;
                }
                let next = tokio::select! {
                    _ = stopped.wait_for(|stopped| *stopped) => return None,
                    next = events.recv() => next,
                };
                match next {
                    Ok(event) => Some((Ok(event), (events, stopped, false))),
                    Err(RecvError::Lagged(missed)) => Some((
                        Err(Status::aborted(format!(
                            "subscriber missed {missed} invalidations; reconnect"
                        ))),
                        (events, stopped, true),
                    )),
                    Err(RecvError::Closed) => None,
                }
            },
        ))
    }

    /// Ends every subscriber's stream and the broadcast.
    pub(crate) fn stop(&self) {
        self.inner.stopped.send_replace(true);
    }

    /// Resolves once [`Invalidations::stop`] was called.
    pub(crate) async fn stopped(&self) {
        let mut stopped = self.inner.stopped.subscribe();
        // An error means the sender is gone, which is also a stop.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn every_subscriber_hears_each_change_until_stopped() {
        let hub = Invalidations::new();
        let (mut first, mut second) = (hub.subscribe(), hub.subscribe());
        hub.key_changed("key_1", "abc");
        for stream in [&mut first, &mut second] {
            let event = stream.next().await.unwrap().unwrap();
            assert_eq!(
                (event.key_id.as_str(), event.key_hash.as_str()),
                ("key_1", "abc")
            );
            assert!(!event.all);
        }
        hub.stop();
        assert!(first.next().await.is_none());
        assert!(hub.subscribe().next().await.is_none());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_an_error_then_the_end() {
        let hub = Invalidations::new();
        let mut slow = hub.subscribe();
        for n in 0..=CHANNEL_CAPACITY {
            hub.key_changed(&format!("key_{n}"), "");
        }
        assert_eq!(
            slow.next().await.unwrap().unwrap_err().code(),
            tonic::Code::Aborted
        );
        assert!(slow.next().await.is_none());
    }

    #[tokio::test]
    async fn own_changes_go_to_the_broadcast_and_received_ones_do_not() {
        let hub = Invalidations::new();
        let (outbound, mut broadcast) = mpsc::channel(4);
        assert!(hub.attach_broadcast(outbound.clone()));
        assert!(!hub.attach_broadcast(outbound));
        let mut events = hub.subscribe();
        hub.key_changed("key_1", "abc");
        hub.deliver(Invalidation {
            key_id: "key_2".into(),
            ..Invalidation::default()
        });
        hub.control_changed();
        let Change::Key(own) = broadcast.recv().await.unwrap() else {
            panic!("a key change is broadcast as one");
        };
        assert_eq!(own.key_id, "key_1");
        assert_eq!(broadcast.recv().await.unwrap(), Change::Control);
        assert!(broadcast.try_recv().is_err());
        assert_eq!(events.next().await.unwrap().unwrap().key_id, "key_1");
        assert_eq!(events.next().await.unwrap().unwrap().key_id, "key_2");
    }
}
