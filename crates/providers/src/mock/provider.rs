//! The `mock` provider in-process: no HTTP, the same answers as the mock
//! upstream server gives through the OpenAI adapter.

use bytes::Bytes;
use futures_util::stream;
use tollgate_core::GatewayError;

use super::{MockBehavior, MockExchange};
use crate::call::{EventStream, ProviderRequest, Reply, StreamEvent};
use crate::errors;

#[derive(Debug, Clone, Default)]
pub struct MockProvider {
    behavior: MockBehavior,
}

impl MockProvider {
    pub fn new(behavior: MockBehavior) -> Self {
        Self { behavior }
    }

    pub async fn call(&self, request: &ProviderRequest) -> Result<Reply, GatewayError> {
        let exchange = self.prepare(request).await?;
        Ok(Reply {
            body: Bytes::from(exchange.completion_body()),
            usage: exchange.usage,
        })
    }

    /// A stream that always ends with the usage event (the OpenAI adapter
    /// always asks upstreams for it), or with the failure a cut asks for.
    pub async fn call_stream(
        &self,
        request: &ProviderRequest,
    ) -> Result<EventStream, GatewayError> {
        let mut exchange = self.prepare(request).await?;
        exchange.include_usage = true;
        let count = exchange.event_count();
        // The adapter holds the usage event until `[DONE]`, so a cut stream
        // never yields it: at most `count - 1` events come before the error.
        let cut = exchange
            .cut_after
            .map(|after| (after as usize).min(count - 1));
        let events = stream::unfold((exchange, 0usize), move |(exchange, index)| async move {
            if index > count || (index == count && cut.is_none()) {
                return None;
            }
            if cut == Some(index) {
                return Some((Err(errors::stream_cut()), (exchange, count + 1)));
            }
            if index > 0 && !exchange.chunk_delay.is_zero() {
                tokio::time::sleep(exchange.chunk_delay).await;
            }
            let mut data = Vec::new();
            exchange.write_event(index, &mut data);
            let event = if exchange.is_usage_event(index) {
                StreamEvent::Usage {
                    usage: exchange.usage,
                    data: Bytes::from(data),
                }
            } else {
                StreamEvent::Data(Bytes::from(data))
            };
            Some((Ok(event), (exchange, index + 1)))
        });
        Ok(Box::pin(events))
    }

    async fn prepare(&self, request: &ProviderRequest) -> Result<MockExchange, GatewayError> {
        let mut exchange = MockExchange::parse(&request.body, &self.behavior)
            .map_err(|failure| failure.to_gateway_error())?;
        if !exchange.latency.is_zero() {
            tokio::time::sleep(exchange.latency).await;
        }
        if let Some(failure) = exchange.requested_failure() {
            return Err(failure.to_gateway_error());
        }
        if !request.upstream_model.is_empty() {
            exchange.model.clone_from(&request.upstream_model);
        }
        // The cap the gateway would have sent upstream, for a body that
        // sets none.
        if let (None, Some(cap)) = (exchange.cap, request.completion_cap) {
            exchange.hold_to(cap);
        }
        Ok(exchange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::{Value, json};
    use std::time::Duration;
    use tollgate_core::ErrorKind;

    fn request(content: &str) -> ProviderRequest {
        ProviderRequest {
            provider: "mock".into(),
            base_url: String::new(),
            credential: String::new(),
            email: String::new(),
            upstream_model: "mock-echo".into(),
            body: Bytes::from(
                json!({"model": "alias", "messages": [{"role": "user", "content": content}]})
                    .to_string(),
            ),
            timeout: Duration::from_secs(5),
            completion_cap: None,
            settings: String::new(),
        }
    }

    async fn collect(stream: EventStream) -> Vec<Result<StreamEvent, GatewayError>> {
        stream.collect().await
    }

    #[tokio::test]
    async fn call_echoes_with_the_upstream_model() {
        let reply = MockProvider::default()
            .call(&request("ping"))
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "ping");
        assert_eq!(body["model"], "mock-echo");
        assert_eq!(reply.usage.completion, 1);
        assert_eq!(reply.usage.prompt, 3 + 4 + 1);
    }

    #[tokio::test]
    async fn stream_ends_with_usage() {
        let provider = MockProvider::new(MockBehavior {
            chunks: 2,
            ..MockBehavior::default()
        });
        let events = collect(provider.call_stream(&request("abcd")).await.unwrap()).await;
        assert_eq!(events.len(), 5);
        let Ok(StreamEvent::Usage { usage, data }) = &events[4] else {
            panic!("last event is not usage: {events:?}");
        };
        assert_eq!(usage.completion, 1);
        let chunk: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(chunk["choices"], json!([]));
        assert!(
            events[..4]
                .iter()
                .all(|event| matches!(event, Ok(StreamEvent::Data(_))))
        );
    }

    #[tokio::test]
    async fn directives_fail_and_cut() {
        let error = MockProvider::default()
            .call(&request("[[mock:status=429,retry_after=3]]"))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
        assert_eq!(error.retry_after_secs, Some(3));

        let stream = MockProvider::default()
            .call_stream(&request("x [[mock:cut_after=2]]"))
            .await
            .unwrap();
        let events = collect(stream).await;
        assert_eq!(events.len(), 3);
        assert!(events[..2].iter().all(Result::is_ok));
        assert_eq!(
            events[2].as_ref().unwrap_err().kind,
            ErrorKind::UpstreamError
        );

        let stream = MockProvider::default()
            .call_stream(&request("x [[mock:cut_after=99]]"))
            .await
            .unwrap();
        let events = collect(stream).await;
        assert!(events.last().unwrap().is_err());
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, Ok(StreamEvent::Usage { .. })))
        );
    }
}
