//! The analytics service: stores usage events and answers usage queries.
//!
//! [`AnalyticsService`] implements the `tollgate.v1.Analytics` trait over a
//! [`tollgate_usage_store::UsageStore`]. [`UsageSink`] is how the router
//! hands it events: non-blocking, batched, retried, flushed on close. The
//! sink calls analytics through an `AnalyticsHandle`, so the same code serves
//! `tollgate all` (the service in process) and split mode (gRPC). With
//! Redis, [`stream`] carries the events instead: [`StreamSink`] appends them
//! to a Redis Stream and [`StreamConsumer`] stores them from a consumer
//! group. [`EventSink`] is either sink, for the router. [`run_retention`]
//! deletes usage older than the configured days, on a schedule.
//! [`build`] makes the service from its [`AnalyticsSettings`] and [`Deps`];
//! [`App::run_until`] runs retention and the stream consumer until
//! shutdown.

mod app;
mod convert;
mod event_sink;
mod retention;
mod service;
mod sink;
pub mod stream;

pub use app::{AnalyticsSettings, App, Deps, StreamSource, USAGE_GROUP, build};
pub use convert::{MAX_REQUEST_ID_LEN, filter_from_query, record_from_event, validate_event};
pub use event_sink::EventSink;
pub use retention::{RetentionSettings, apply_retention, run_retention};
pub use service::AnalyticsService;
pub use sink::{SinkSettings, UsageSink};
pub use stream::{
    ConsumerSettings, ConsumerStats, StreamConsumer, StreamError, StreamSink, StreamSinkSettings,
};
