//! The HTTP handlers, by concern: the public API, the health probes, and the
//! admin API.

pub mod admin;
pub mod chat;
pub mod count_tokens;
pub mod fallback;
pub mod health;
pub mod messages;
pub mod models;
pub mod responses;
