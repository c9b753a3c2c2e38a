//! The analytics service: stores usage events and answers usage queries.
//!
//! [`AnalyticsService`] implements the `tollgate.v1.Analytics` trait over a
//! [`tollgate_store::usage::UsageStore`]. [`UsageSink`] is how the router
//! hands it events: non-blocking, batched, retried, flushed on close. The
//! sink calls analytics through an `AnalyticsHandle`, so the same code serves
//! `tollgate all` (the service in process) and split mode (gRPC).

mod convert;
mod service;
mod sink;

pub use convert::{MAX_REQUEST_ID_LEN, filter_from_query, record_from_event, validate_event};
pub use service::AnalyticsService;
pub use sink::{SinkSettings, UsageSink};
