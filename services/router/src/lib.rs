//! The router turns a validated client request into an upstream answer.
//!
//! For each attempt it leases an account from quota, calls a worker with the
//! lease's credential, and on a retryable failure (upstream 429, 5xx,
//! timeout, refused credential) reports the outcome to quota and tries again
//! with another account; a prompt too long for the model's context window
//! or a content-policy refusal moves on to the route's fallbacks of that
//! class, when it has some. It settles every lease with the real usage (a
//! stream renews its lease while it runs) and emits exactly one usage event
//! per request, success or failure.
//!
//! [`build`] makes the router from its [`RouterSettings`] and [`Deps`].

mod app;
mod attempt;
mod detach;
mod failure_fallback;
mod lease;
mod outcome;
mod relay;
mod renewal;
mod service;
mod shared;
mod usage;
mod workers;

pub use app::{App, Deps, build};
pub use service::RouterService;
pub use shared::RouterSettings;
pub use usage::UsageEmitter;
pub use workers::WorkerPool;
