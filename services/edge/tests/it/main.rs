//! The edge's integration tests, in one binary: its routers answered with
//! no socket in front of services that are all down (`handlers`) or real
//! ones in process (`with_services`), and the edge served on sockets
//! through shutdown. Every edge is made by [`support::spawn_app`].

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod handlers;
mod support;
mod with_services;
