//! Building the one usage event each request produces.

use std::time::Duration;

use tollgate_core::catalog::{Catalog, Cost, Prices, Rates, UsageTokens};
use tollgate_core::self_hosted::is_self_hosted_named;
use tollgate_core::{GatewayError, clock};
use tollgate_proto::v1::{ChatRequest, LeaseGrant, Usage, UsageEvent};

/// Where usage events go (analytics, through a batching sink). Emitting
/// never blocks the request.
pub trait UsageEmitter: Send + Sync + 'static {
    fn emit(&self, event: UsageEvent);
}

/// What `usage` costs on the account `lease` granted: at the account's own
/// prices when it has them; else nothing (0, priced) on a self-hosted
/// upstream (Ollama, an `openai_compatible` account of a local preset);
/// else what the provider said it cost, where it says (OpenRouter); else
/// at the model catalog's for the upstream model (0, not priced, for a
/// model the catalog has no price for). The cost in the usage event and
/// the one a settle charges to the key's monthly budget.
pub(crate) fn cost_of(lease: Option<&LeaseGrant>, usage: &Usage) -> Cost {
    let tokens = tokens(usage);
    let reported = usage.provider_cost_micro_usd.filter(|cost| *cost >= 0);
    match (lease, reported) {
        (
            Some(LeaseGrant {
                prices: Some(prices),
                ..
            }),
            _,
        ) => Prices::flat(Rates::from(*prices)).cost(&tokens),
        (Some(lease), _) if is_self_hosted_named(&lease.provider, &lease.settings) => Cost::FREE,
        (Some(_), Some(micro_usd)) => Cost {
            micro_usd,
            priced: true,
        },
        (Some(lease), None) => Catalog::builtin().cost(&lease.upstream_model, &tokens),
        (None, _) => Catalog::builtin().cost("", &tokens),
    }
}

/// The usage message as the catalog's token counts.
fn tokens(usage: &Usage) -> UsageTokens {
    UsageTokens {
        prompt: usage.prompt_tokens,
        completion: usage.completion_tokens,
        cached: usage.cached_tokens,
        cache_write_5m: usage.cache_write_5m_tokens,
        cache_write_1h: usage.cache_write_1h_tokens,
        reasoning: usage.reasoning_tokens,
    }
}

/// What a finished request did, for its usage event.
pub(crate) struct Finished<'a> {
    pub request: &'a ChatRequest,
    pub usage: Usage,
    pub attempts: u32,
    pub first_token_at_ms: Option<i64>,
    pub error: Option<&'a GatewayError>,
    /// How long the serving upstream call took (see `Served::latency`).
    pub upstream_latency: Option<Duration>,
}

impl Finished<'_> {
    /// The usage event, with what `lease` (the last attempt's, if any) says
    /// of the account that answered.
    pub fn event(&self, lease: Option<&LeaseGrant>) -> UsageEvent {
        let finished_at_ms = clock::now_ms();
        let started = self.request.received_at_ms;
        let elapsed = |until: i64| u32::try_from((until - started).max(0)).unwrap_or(u32::MAX);
        let upstream_model = lease
            .map(|lease| lease.upstream_model.clone())
            .unwrap_or_default();
        let cost = cost_of(lease, &self.usage);
        UsageEvent {
            request_id: self.request.request_id.clone(),
            started_at_ms: started,
            finished_at_ms,
            key_id: self.request.key_id.clone(),
            profile: self.request.profile.clone(),
            account_id: lease
                .map(|lease| lease.account_id.clone())
                .unwrap_or_default(),
            provider: lease
                .map(|lease| lease.provider.clone())
                .unwrap_or_default(),
            requested_model: self.request.model.clone(),
            cost_micro_usd: cost.micro_usd,
            priced: cost.priced,
            upstream_model,
            prompt_tokens: self.usage.prompt_tokens,
            completion_tokens: self.usage.completion_tokens,
            cached_tokens: self.usage.cached_tokens,
            cache_write_5m_tokens: self.usage.cache_write_5m_tokens,
            cache_write_1h_tokens: self.usage.cache_write_1h_tokens,
            reasoning_tokens: self.usage.reasoning_tokens,
            latency_ms: elapsed(finished_at_ms),
            ttft_ms: self.first_token_at_ms.map_or(0, elapsed),
            status: self
                .error
                .map_or(200, |error| u32::from(error.kind.http_status())),
            error_code: self
                .error
                .map(|error| error.kind.label().to_owned())
                .unwrap_or_default(),
            attempts: self.attempts,
            streamed: self.request.stream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_reads_every_usage_part_from_the_catalog() {
        // Claude Haiku 4.5: $1 input, $0.10 cache read, $1.25 5 m write, $2
        // 1 h write, $5 output per million.
        let usage = Usage {
            prompt_tokens: 10_000,
            completion_tokens: 2_000,
            cached_tokens: 5_000,
            cache_write_5m_tokens: 2_000,
            cache_write_1h_tokens: 1_000,
            reasoning_tokens: 500,
            provider_cost_micro_usd: None,
        };
        let lease = |model: &str| LeaseGrant {
            upstream_model: model.into(),
            ..LeaseGrant::default()
        };
        assert_eq!(
            cost_of(Some(&lease("claude-haiku-4-5-20251001")), &usage),
            Cost {
                // 2000 x 1 + 5000 x 0.10 + 2000 x 1.25 + 1000 x 2 + 2000 x 5.
                micro_usd: 2_000 + 500 + 2_500 + 2_000 + 10_000,
                priced: true,
            }
        );
        assert_eq!(
            cost_of(Some(&lease("no-such-model")), &usage),
            Cost::UNPRICED
        );
        // Nothing leased, nothing used: nothing to price.
        assert_eq!(cost_of(None, &Usage::default()).micro_usd, 0);
    }

    #[test]
    fn self_hosted_upstreams_cost_nothing_and_are_priced() {
        let usage = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            ..Usage::default()
        };
        let lease = |provider: &str, settings: &str| LeaseGrant {
            provider: provider.into(),
            settings: settings.into(),
            // A model the catalog prices, and one it does not know.
            upstream_model: "gpt-4o".into(),
            ..LeaseGrant::default()
        };
        for (provider, settings) in [
            ("ollama", ""),
            ("openai_compatible", r#"{"preset":"vllm"}"#),
            ("openai_compatible", r#"{"preset":"llama_cpp"}"#),
            ("openai_compatible", r#"{"preset":"lm_studio"}"#),
        ] {
            assert_eq!(
                cost_of(Some(&lease(provider, settings)), &usage),
                Cost::FREE,
                "{provider} {settings}"
            );
        }
        // A hosted preset, or one named by nothing, is priced from the
        // catalog: 1000 x 2.50 + 100 x 10 dollars per million for gpt-4o.
        for (provider, settings) in [
            ("openai_compatible", r#"{"preset":"groq"}"#),
            ("openai_compatible", ""),
            ("openai", ""),
        ] {
            assert_eq!(
                cost_of(Some(&lease(provider, settings)), &usage),
                Cost {
                    micro_usd: 2_500 + 1_000,
                    priced: true
                },
                "{provider} {settings}"
            );
        }
        // An account's own prices still win on a self-hosted upstream.
        let mut priced = lease("ollama", "");
        priced.prices = Some(tollgate_proto::v1::ModelPrices {
            input: 1_000_000,
            output: 2_000_000,
            ..Default::default()
        });
        assert_eq!(cost_of(Some(&priced), &usage).micro_usd, 1_000 + 200);
    }

    #[test]
    fn a_cost_the_provider_reports_is_the_cost() {
        let lease = LeaseGrant {
            provider: "openrouter".into(),
            upstream_model: "gpt-4o".into(),
            ..LeaseGrant::default()
        };
        let reported = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            provider_cost_micro_usd: Some(4_321),
            ..Usage::default()
        };
        assert_eq!(
            cost_of(Some(&lease), &reported),
            Cost {
                micro_usd: 4_321,
                priced: true
            }
        );
        // Without a report (or with a nonsensical one) the catalog prices it.
        for cost in [None, Some(-5)] {
            let usage = Usage {
                provider_cost_micro_usd: cost,
                ..reported
            };
            assert_eq!(cost_of(Some(&lease), &usage).micro_usd, 2_500 + 1_000);
        }
        // An account's own prices still win over the report.
        let mut priced = lease.clone();
        priced.prices = Some(tollgate_proto::v1::ModelPrices {
            input: 1_000_000,
            output: 2_000_000,
            ..Default::default()
        });
        assert_eq!(cost_of(Some(&priced), &reported).micro_usd, 1_000 + 200);
    }

    #[test]
    fn an_accounts_own_prices_replace_the_catalogs() {
        let usage = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            cached_tokens: 400,
            ..Usage::default()
        };
        let lease = |model: &str| LeaseGrant {
            upstream_model: model.into(),
            // $2 input, $0.50 cached, $8 output per million.
            prices: Some(tollgate_proto::v1::ModelPrices {
                input: 2_000_000,
                output: 8_000_000,
                cached_input: Some(500_000),
                ..Default::default()
            }),
            ..LeaseGrant::default()
        };
        // 600 x 2 + 400 x 0.50 + 100 x 8, for a known model and for one
        // the catalog does not price.
        for model in ["gpt-4o", "house-model"] {
            assert_eq!(
                cost_of(Some(&lease(model)), &usage),
                Cost {
                    micro_usd: 1_200 + 200 + 800,
                    priced: true
                }
            );
        }
    }
}
