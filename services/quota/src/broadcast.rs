//! The Redis leg of key invalidations and control changes, so an edge
//! subscribed to one quota replica hears of a key revoked through another,
//! and an account, route, profile or key written through one replica is
//! leased by the others at once rather than at their next snapshot
//! refresh: each replica publishes its own changes on the pub/sub channel
//! `<prefix>invalidations`, delivers the other replicas' key events to its
//! subscribers and reloads its snapshot on their control changes.
//!
//! Pub/sub keeps nothing for a subscriber that is away, so each time the
//! subscription is established (the first time too: events may have been
//! missed before it), subscribers are told to drop everything (an `all`
//! event) and the snapshot is reloaded. A subscription can also die
//! silently (a half-open connection): each replica publishes a heartbeat
//! every [`HEARTBEAT`], and a subscription that hears nothing, not even its
//! own heartbeat, for [`SILENCE_LIMIT`] is dropped and made again.
//! Publishing is best effort: a change Redis did not take is logged, and
//! other replicas then rely on their edges' cache TTL for a key, on their
//! snapshot refresh for a control change.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;
use tollgate_backoff::Retries;
use tollgate_core::ids;
use tollgate_proto::v1::Invalidation;
use tracing::{info, warn};

use crate::invalidations::{Change, Invalidations};
use crate::snapshot::AccountCache;

/// Events of this replica waiting to be published.
const OUTBOUND_CAPACITY: usize = 1024;
/// The resubscription delays: the first, doubling up to [`LAST_RETRY`],
/// each jittered so the replicas do not all come back to Redis at once.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// How often each replica publishes a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A subscription silent this long is taken for dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(35);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Why the broadcast could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
    #[error("this quota service already broadcasts its invalidations")]
    AlreadyBroadcasting,
}

/// One replica's broadcast; [`RedisBroadcast::run`] drives it until the service's
/// invalidations are stopped.
pub struct RedisBroadcast {
    client: redis::Client,
    channel: String,
    origin: String,
    hub: Invalidations,
    cache: Arc<AccountCache>,
    outbound: mpsc::Receiver<Change>,
}

impl RedisBroadcast {
    pub(crate) fn new(
        hub: &Invalidations,
        cache: Arc<AccountCache>,
        url: &str,
        prefix: &str,
    ) -> Result<Self, BroadcastError> {
        // The URL may hold a password: only the kind of problem is shown.
        let client = redis::Client::open(url)
            .map_err(|err| BroadcastError::Url(format!("{:?}", err.kind())))?;
        let (sender, outbound) = mpsc::channel(OUTBOUND_CAPACITY);
        if !hub.attach_broadcast(sender) {
            return Err(BroadcastError::AlreadyBroadcasting);
        }
        Ok(Self {
            client,
            channel: format!("{prefix}invalidations"),
            origin: ids::prefixed("quota"),
            hub: hub.clone(),
            cache,
            outbound,
        })
    }

    /// Publishes this replica's events and delivers the others', until the
    /// invalidations are stopped (at shutdown). Redis being away is waited
    /// out with backoff.
    pub async fn run(self) {
        let Self {
            client,
            channel,
            origin,
            hub,
            cache,
            outbound,
        } = self;
        let publish = publish(client.clone(), channel.clone(), origin.clone(), outbound);
        let subscribe = subscribe(client, channel, origin, hub.clone(), cache);
        tokio::select! {
            () = hub.stopped() => {}
            () = publish => {}
            () = subscribe => {}
        }
    }
}

async fn publish(
    client: redis::Client,
    channel: String,
    origin: String,
    mut outbound: mpsc::Receiver<Change>,
) {
    let mut connection = None;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let change = tokio::select! {
            change = outbound.recv() => match change {
                Some(change) => change,
                None => return,
            },
            _ = heartbeat.tick() => Change::Key(Invalidation::default()),
        };
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.ok();
        }
        let is_heartbeat = is_heartbeat(&change);
        let Some(conn) = connection.as_mut() else {
            if !is_heartbeat {
                warn!(change = %describe(&change), "Redis unreachable; change not broadcast to other quota replicas");
            }
            continue;
        };
        let payload = encode(&origin, &change);
        if let Err(err) = conn.publish::<_, _, ()>(&channel, payload).await {
            if !is_heartbeat {
                warn!(change = %describe(&change), error = ?err.kind(), "change not broadcast to other quota replicas");
            }
            connection = None;
        }
    }
}

/// A change as logs name it: the key's id, or `control`.
fn describe(change: &Change) -> &str {
    match change {
        Change::Key(event) => &event.key_id,
        Change::Control => "control",
    }
}

async fn subscribe(
    client: redis::Client,
    channel: String,
    origin: String,
    hub: Invalidations,
    cache: Arc<AccountCache>,
) {
    let mut retries = Retries::new(FIRST_RETRY, LAST_RETRY).jittered();
    let mut subscribed_before = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if subscribed_before {
                        info!(
                            "invalidation subscription re-established; edges drop their key caches"
                        );
                    } else {
                        info!(channel = %channel, "broadcasting key invalidations through Redis");
                    }
                    hub.deliver(Invalidation {
                        all: true,
                        ..Invalidation::default()
                    });
                    cache.reload_in_background();
                    subscribed_before = true;
                    retries.reset();
                    let mut messages = pubsub.into_on_message();
                    while let Ok(Some(message)) =
                        tokio::time::timeout(SILENCE_LIMIT, messages.next()).await
                    {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match decode(&payload) {
                            Some((from, _)) if from == origin => {}
                            Some((_, change)) if is_heartbeat(&change) => {}
                            Some((_, Change::Key(event))) => hub.deliver(event),
                            Some((_, Change::Control)) => cache.reload_in_background(),
                            None => warn!("ignoring a malformed invalidation from Redis"),
                        }
                    }
                    warn!("invalidation subscription lost or silent; resubscribing");
                }
                Err(err) => warn!(error = ?err.kind(), "cannot subscribe to invalidations"),
            },
            Err(err) => warn!(error = ?err.kind(), "cannot reach Redis for invalidations"),
        }
        tokio::time::sleep(retries.next_delay()).await;
    }
}

/// A heartbeat is a key event that names no key and is not a reset.
fn is_heartbeat(change: &Change) -> bool {
    matches!(change, Change::Key(event)
        if event.key_id.is_empty() && event.key_hash.is_empty() && !event.all)
}

/// What a control change reads as on the channel, after the origin.
const CONTROL: &str = "control";

/// `origin \n key_id \n key_hash \n 0|1` for a key event, `origin \n
/// control` for a control change: ids and hashes never hold a newline.
fn encode(origin: &str, change: &Change) -> String {
    match change {
        Change::Key(event) => format!(
            "{origin}\n{}\n{}\n{}",
            event.key_id,
            event.key_hash,
            u8::from(event.all)
        ),
        Change::Control => format!("{origin}\n{CONTROL}"),
    }
}

fn decode(payload: &str) -> Option<(&str, Change)> {
    let parts: Vec<&str> = payload.split('\n').collect();
    match parts[..] {
        [origin, CONTROL] => Some((origin, Change::Control)),
        [origin, key_id, key_hash, all] => {
            let all = match all {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            let event = Invalidation {
                key_id: key_id.to_owned(),
                key_hash: key_hash.to_owned(),
                all,
            };
            Some((origin, Change::Key(event)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_junk_is_refused() {
        let event = Invalidation {
            key_id: "key_1".into(),
            key_hash: "ab12".into(),
            all: false,
        };
        let event = Change::Key(event);
        let payload = encode("quota_a", &event);
        assert!(!is_heartbeat(&event));
        assert_eq!(decode(&payload), Some(("quota_a", event)));
        let heartbeat = encode("quota_a", &Change::Key(Invalidation::default()));
        assert!(is_heartbeat(&decode(&heartbeat).unwrap().1));
        let reset = Change::Key(Invalidation {
            all: true,
            ..Invalidation::default()
        });
        assert_eq!(decode(&encode("q", &reset)), Some(("q", reset)));
        let control = encode("q", &Change::Control);
        assert_eq!(decode(&control), Some(("q", Change::Control)));
        assert!(!is_heartbeat(&Change::Control));
        assert_eq!(decode("q\nkey\nhash"), None);
        assert_eq!(decode("q\nkey"), None);
        assert_eq!(decode("q\nkey\nhash\n2"), None);
        assert_eq!(decode("q\nkey\nhash\n0\nmore"), None);
    }
}
