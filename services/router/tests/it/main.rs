//! The router through its `Router` trait, wired in-process to the real
//! quota service, the real worker and real mock upstreams: answers, retries,
//! streams, settlement and usage events as a deployment sees them.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod caller_gone;
mod drain;
mod harness;
mod quota_exhausted;
mod streams;
mod unary;
