//! The analytics service through its trait (in process and over gRPC), on
//! SQLite in a tempdir, and the usage sink that feeds it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod service;
mod sink;
