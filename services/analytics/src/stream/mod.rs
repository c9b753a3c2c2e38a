//! Usage events through a Redis Stream, for deployments with more than one
//! process: routers append ([`StreamSink`]), analytics replicas read with a
//! consumer group ([`StreamConsumer`]) and acknowledge only what is stored.
//!
//! One stream, `<prefix>usage`; each entry has one field, [`PAYLOAD_FIELD`],
//! holding the protobuf encoding of a `UsageEvent`. Delivery is at least
//! once; the usage store writes each request id once, so a redelivered
//! entry is counted as a duplicate and nothing else.

mod consumer;
mod producer;
mod wire;

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

pub use consumer::{ConsumerSettings, ConsumerStats, StreamConsumer};
pub use producer::{StreamSink, StreamSinkSettings};

/// The entry field that carries the encoded event.
pub const PAYLOAD_FIELD: &str = "e";

/// The stream key for a key prefix.
pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}usage")
}

/// Why a stream endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The Redis URL does not parse. The URL itself is not repeated: it may
    /// hold a password.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
}

/// Opens the Redis client for `url` without connecting.
fn client(url: &str) -> Result<redis::Client, StreamError> {
    redis::Client::open(url).map_err(|error| StreamError::InvalidUrl(format!("{:?}", error.kind())))
}

/// One new connection, bounded in time. Callers drop it after any error and
/// open another: a failed multiplexed connection does not heal itself.
async fn connect(
    client: &redis::Client,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// A duration in whole milliseconds, as Redis takes it.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
