//! The router's usage sink, whichever transport the process uses: the
//! in-process or gRPC batching sink, or the Redis Stream.

use tollgate_proto::v1::UsageEvent;

use crate::sink::UsageSink;
use crate::stream::StreamSink;

/// Either usage sink, behind one `emit` and one `close`.
#[derive(Clone)]
pub enum EventSink {
    /// Batches to `Analytics.Ingest` (in process or over gRPC).
    Direct(UsageSink),
    /// Appends to the usage Redis Stream.
    Stream(StreamSink),
}

impl EventSink {
    /// Queues `event` without waiting (see each sink for what it drops).
    pub fn emit(&self, event: UsageEvent) {
        match self {
            EventSink::Direct(sink) => sink.emit(event),
            EventSink::Stream(sink) => sink.emit(event),
        }
    }

    /// Delivers what is queued, then stops the sink's task.
    pub async fn close(&self) {
        match self {
            EventSink::Direct(sink) => sink.close().await,
            EventSink::Stream(sink) => sink.close().await,
        }
    }
}

impl From<UsageSink> for EventSink {
    fn from(sink: UsageSink) -> Self {
        EventSink::Direct(sink)
    }
}

impl From<StreamSink> for EventSink {
    fn from(sink: StreamSink) -> Self {
        EventSink::Stream(sink)
    }
}
