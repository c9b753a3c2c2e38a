//! The Redis leg of key invalidations, so an edge subscribed to one quota
//! replica hears of a key revoked through another: each replica publishes
//! its own events on the pub/sub channel `<prefix>invalidations` and
//! delivers the other replicas' events to its subscribers.
//!
//! Pub/sub keeps nothing for a subscriber that is away, so each time the
//! subscription is established (the first time too: events may have been
//! missed before it), subscribers are told to drop everything (an `all`
//! event). A subscription can also die silently (a half-open connection):
//! each replica publishes a heartbeat every [`HEARTBEAT`], and a
//! subscription that hears nothing, not even its own heartbeat, for
//! [`SILENCE_LIMIT`] is dropped and made again. Publishing is best effort:
//! an event Redis did not take is logged, and other replicas' edges then
//! rely on their cache TTL for that key.

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;
use tollgate_core::ids;
use tollgate_proto::v1::Invalidation;
use tracing::{info, warn};

use crate::invalidations::Invalidations;

/// Events of this replica waiting to be published.
const OUTBOUND_CAPACITY: usize = 1024;
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// How often each replica publishes a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A subscription silent this long is taken for dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(35);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Why the relay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
    #[error("this quota service already relays its invalidations")]
    AlreadyRelayed,
}

/// One replica's relay; [`RedisRelay::run`] drives it until the service's
/// invalidations are stopped.
pub struct RedisRelay {
    client: redis::Client,
    channel: String,
    origin: String,
    hub: Invalidations,
    outbound: mpsc::Receiver<Invalidation>,
}

impl RedisRelay {
    pub(crate) fn new(hub: &Invalidations, url: &str, prefix: &str) -> Result<Self, RelayError> {
        // The URL may hold a password: only the kind of problem is shown.
        let client =
            redis::Client::open(url).map_err(|err| RelayError::Url(format!("{:?}", err.kind())))?;
        let (sender, outbound) = mpsc::channel(OUTBOUND_CAPACITY);
        if !hub.attach_relay(sender) {
            return Err(RelayError::AlreadyRelayed);
        }
        Ok(Self {
            client,
            channel: format!("{prefix}invalidations"),
            origin: ids::prefixed("quota"),
            hub: hub.clone(),
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
            outbound,
        } = self;
        let publish = publish(client.clone(), channel.clone(), origin.clone(), outbound);
        let subscribe = subscribe(client, channel, origin, hub.clone());
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
    mut outbound: mpsc::Receiver<Invalidation>,
) {
    let mut connection = None;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = outbound.recv() => match event {
                Some(event) => event,
                None => return,
            },
            _ = heartbeat.tick() => Invalidation::default(),
        };
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.ok();
        }
        let is_heartbeat = is_heartbeat(&event);
        let Some(conn) = connection.as_mut() else {
            if !is_heartbeat {
                warn!(key = %event.key_id, "Redis unreachable; invalidation not relayed to other quota replicas");
            }
            continue;
        };
        let payload = encode(&origin, &event);
        if let Err(err) = conn.publish::<_, _, ()>(&channel, payload).await {
            if !is_heartbeat {
                warn!(key = %event.key_id, error = ?err.kind(), "invalidation not relayed to other quota replicas");
            }
            connection = None;
        }
    }
}

async fn subscribe(client: redis::Client, channel: String, origin: String, hub: Invalidations) {
    let mut retry = FIRST_RETRY;
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
                        info!(channel = %channel, "relaying key invalidations through Redis");
                    }
                    hub.deliver(Invalidation {
                        all: true,
                        ..Invalidation::default()
                    });
                    subscribed_before = true;
                    retry = FIRST_RETRY;
                    let mut messages = pubsub.into_on_message();
                    while let Ok(Some(message)) =
                        tokio::time::timeout(SILENCE_LIMIT, messages.next()).await
                    {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match decode(&payload) {
                            Some((from, event)) if from != origin && !is_heartbeat(&event) => {
                                hub.deliver(event);
                            }
                            Some(_) => {}
                            None => warn!("ignoring a malformed invalidation from Redis"),
                        }
                    }
                    warn!("invalidation subscription lost or silent; resubscribing");
                }
                Err(err) => warn!(error = ?err.kind(), "cannot subscribe to invalidations"),
            },
            Err(err) => warn!(error = ?err.kind(), "cannot reach Redis for invalidations"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// A heartbeat names no key and is not a reset.
fn is_heartbeat(event: &Invalidation) -> bool {
    event.key_id.is_empty() && event.key_hash.is_empty() && !event.all
}

/// `origin \n key_id \n key_hash \n 0|1`: ids and hashes never hold a
/// newline.
fn encode(origin: &str, event: &Invalidation) -> String {
    format!(
        "{origin}\n{}\n{}\n{}",
        event.key_id,
        event.key_hash,
        u8::from(event.all)
    )
}

fn decode(payload: &str) -> Option<(&str, Invalidation)> {
    let mut parts = payload.split('\n');
    let (origin, key_id, key_hash, all) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let all = match all {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    Some((
        origin,
        Invalidation {
            key_id: key_id.to_owned(),
            key_hash: key_hash.to_owned(),
            all,
        },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_junk_is_refused() {
        let event = Invalidation {
            key_id: "key_1".into(),
            key_hash: "ab12".into(),
            all: false,
        };
        let payload = encode("quota_a", &event);
        assert!(!is_heartbeat(&event));
        assert_eq!(decode(&payload), Some(("quota_a", event)));
        let heartbeat = encode("quota_a", &Invalidation::default());
        assert!(is_heartbeat(&decode(&heartbeat).unwrap().1));
        let reset = Invalidation {
            all: true,
            ..Invalidation::default()
        };
        assert_eq!(decode(&encode("q", &reset)), Some(("q", reset)));
        assert_eq!(decode("q\nkey\nhash"), None);
        assert_eq!(decode("q\nkey\nhash\n2"), None);
        assert_eq!(decode("q\nkey\nhash\n0\nmore"), None);
    }
}
