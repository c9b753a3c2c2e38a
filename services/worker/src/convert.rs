//! Between the `tollgate.v1` worker messages and the provider adapters'
//! types.

use std::time::Duration;

use tollgate_proto::v1::{self, ProviderChunk, UsageChunk, provider_chunk};
use tollgate_providers::{StreamEvent, Usage};

/// The adapter request for a worker request; `timeout_ms` 0 means
/// `default_timeout`. The body is moved, not copied.
pub(crate) fn provider_request(
    request: v1::ProviderRequest,
    default_timeout: Duration,
) -> tollgate_providers::ProviderRequest {
    let timeout = match request.timeout_ms {
        0 => default_timeout,
        ms => Duration::from_millis(u64::from(ms)),
    };
    tollgate_providers::ProviderRequest {
        provider: request.provider,
        base_url: request.base_url,
        credential: request.credential,
        email: request.email,
        upstream_model: request.upstream_model,
        body: request.body,
        timeout,
        completion_cap: (request.completion_cap > 0).then_some(request.completion_cap),
        settings: request.settings,
    }
}

pub(crate) fn usage(usage: Usage) -> v1::Usage {
    v1::Usage {
        prompt_tokens: usage.prompt,
        completion_tokens: usage.completion,
        cached_tokens: usage.cached,
        cache_write_5m_tokens: usage.cache_write_5m,
        cache_write_1h_tokens: usage.cache_write_1h,
        reasoning_tokens: usage.reasoning,
        provider_cost_micro_usd: usage.provider_cost_micro_usd,
    }
}

pub(crate) fn chunk(event: StreamEvent) -> ProviderChunk {
    let event = match event {
        StreamEvent::Data(data) => provider_chunk::Event::Data(data),
        StreamEvent::Usage { usage: used, data } => provider_chunk::Event::Usage(UsageChunk {
            usage: Some(usage(used)),
            data,
        }),
    };
    ProviderChunk { event: Some(event) }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn zero_timeout_means_the_default() {
        let request = v1::ProviderRequest {
            provider: "mock".into(),
            body: Bytes::from_static(b"{}"),
            ..v1::ProviderRequest::default()
        };
        let default = Duration::from_secs(9);
        assert_eq!(provider_request(request.clone(), default).timeout, default);
        let request = v1::ProviderRequest {
            timeout_ms: 250,
            ..request
        };
        let converted = provider_request(request, default);
        assert_eq!(converted.timeout, Duration::from_millis(250));
        assert_eq!(&converted.body[..], b"{}");
    }

    #[test]
    fn account_settings_reach_the_adapter() {
        let settings = r#"{"api_version":"2024-10-21"}"#;
        let request = v1::ProviderRequest {
            provider: "azure_openai".into(),
            settings: settings.into(),
            ..v1::ProviderRequest::default()
        };
        let converted = provider_request(request, Duration::from_secs(1));
        assert_eq!(converted.settings, settings);
    }

    #[test]
    fn usage_events_carry_the_counts_and_the_chunk() {
        let chunk = chunk(StreamEvent::Usage {
            usage: Usage {
                prompt: 20,
                completion: 9,
                cached: 3,
                cache_write_5m: 4,
                cache_write_1h: 5,
                reasoning: 6,
                provider_cost_micro_usd: Some(70),
            },
            data: Bytes::from_static(b"{}"),
        });
        let Some(provider_chunk::Event::Usage(usage_chunk)) = chunk.event else {
            panic!("not a usage chunk");
        };
        assert_eq!(
            usage_chunk.usage,
            Some(v1::Usage {
                prompt_tokens: 20,
                completion_tokens: 9,
                cached_tokens: 3,
                cache_write_5m_tokens: 4,
                cache_write_1h_tokens: 5,
                reasoning_tokens: 6,
                provider_cost_micro_usd: Some(70),
            })
        );
        assert_eq!(usage_chunk.data, &b"{}"[..]);
    }
}
