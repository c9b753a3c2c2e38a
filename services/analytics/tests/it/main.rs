//! The analytics service through its trait (in process and over gRPC), on
//! SQLite in a tempdir, the usage sink that feeds it, and the Redis Stream
//! transport (sink and consumer group) against a real Redis.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod retention;
mod service;
mod sink;
mod stream;
