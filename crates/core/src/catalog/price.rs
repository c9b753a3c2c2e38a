//! A model's prices and the cost of one request's usage at them.
//!
//! Prices are kept as integer micro-dollars per million tokens, so a cost
//! is exact integer arithmetic rounded once, to the nearest micro-dollar.

use serde::{Deserialize, Serialize};

/// Micro-dollars per million tokens (US dollars per million tokens, times
/// a million).
pub type MicroUsdPerMtok = u64;

/// What one request used, in the gateway's one convention (OpenAI's):
/// `prompt` counts every input token, cache reads and writes included;
/// `completion` counts every output token, reasoning included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTokens {
    pub prompt: u32,
    pub completion: u32,
    /// Prompt tokens read from the prompt cache.
    pub cached: u32,
    /// Prompt tokens written to a cache that lives 5 minutes.
    pub cache_write_5m: u32,
    /// Prompt tokens written to a cache that lives 1 hour.
    pub cache_write_1h: u32,
    /// Completion tokens spent on reasoning.
    pub reasoning: u32,
}

impl UsageTokens {
    /// Prompt plus completion.
    pub fn total(&self) -> u64 {
        u64::from(self.prompt) + u64::from(self.completion)
    }
}

/// What a request cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Integer micro-dollars; 0 when not priced.
    pub micro_usd: i64,
    /// Whether the catalog priced the model (or there was nothing to
    /// price). `false` means the cost is unknown, not free.
    pub priced: bool,
}

impl Cost {
    /// The cost of a model the catalog has no price for.
    pub const UNPRICED: Cost = Cost {
        micro_usd: 0,
        priced: false,
    };

    /// The cost of what costs nothing: priced, at 0.
    pub const FREE: Cost = Cost {
        micro_usd: 0,
        priced: true,
    };
}

/// One set of rates. Cache reads and writes without a rate of their own
/// cost the input rate; reasoning without one costs the output rate. (Its
/// JSON, in micro-dollars per million tokens, is how the control store
/// keeps an account's own prices.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rates {
    pub input: MicroUsdPerMtok,
    pub output: MicroUsdPerMtok,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<MicroUsdPerMtok>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<MicroUsdPerMtok>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<MicroUsdPerMtok>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<MicroUsdPerMtok>,
}

/// A price that cannot be one: negative, not finite, too large, or with
/// more than six decimals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("price {0} is not an amount of US dollars with at most six decimals")]
pub struct InvalidPrice(pub String);

/// US dollars per million tokens as micro-dollars per million tokens.
pub fn from_dollars(dollars: f64) -> Result<MicroUsdPerMtok, InvalidPrice> {
    let micro = dollars * 1_000_000.0;
    let rounded = micro.round();
    let exact = (micro - rounded).abs() <= 1e-6 * micro.abs().max(1.0);
    if !dollars.is_finite() || dollars < 0.0 || rounded > u64::MAX as f64 || !exact {
        return Err(InvalidPrice(dollars.to_string()));
    }
    Ok(rounded as u64)
}

/// Micro-dollars per million tokens as US dollars per million tokens.
pub fn to_dollars(micro: MicroUsdPerMtok) -> f64 {
    micro as f64 / 1_000_000.0
}

/// The rates of a request whose prompt is longer than a threshold; each
/// rate given replaces the base one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LongContext {
    /// The tier applies to prompts of more than this many tokens.
    pub above_prompt_tokens: u32,
    pub input: Option<MicroUsdPerMtok>,
    pub output: Option<MicroUsdPerMtok>,
    pub cached_input: Option<MicroUsdPerMtok>,
    pub cache_write_5m: Option<MicroUsdPerMtok>,
    pub cache_write_1h: Option<MicroUsdPerMtok>,
    pub reasoning: Option<MicroUsdPerMtok>,
}

/// A model's prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prices {
    pub base: Rates,
    pub long_context: Option<LongContext>,
}

impl Prices {
    /// Prices of one set of rates, whatever the prompt's length.
    pub fn flat(rates: Rates) -> Self {
        Self {
            base: rates,
            long_context: None,
        }
    }

    /// The rates for a request with `prompt` tokens.
    pub fn rates_for(&self, prompt: u32) -> Rates {
        let base = self.base;
        match self.long_context {
            Some(tier) if prompt > tier.above_prompt_tokens => Rates {
                input: tier.input.unwrap_or(base.input),
                output: tier.output.unwrap_or(base.output),
                cached_input: tier.cached_input.or(base.cached_input),
                cache_write_5m: tier.cache_write_5m.or(base.cache_write_5m),
                cache_write_1h: tier.cache_write_1h.or(base.cache_write_1h),
                reasoning: tier.reasoning.or(base.reasoning),
            },
            _ => base,
        }
    }

    /// The cost of `usage`: uncached input at the input rate, cache reads
    /// and writes at theirs, output at the output rate (reasoning at its
    /// own rate when there is one), rounded once to the nearest micro-dollar.
    pub fn cost(&self, usage: &UsageTokens) -> Cost {
        let rates = self.rates_for(usage.prompt);
        let tokens = |n: u32| u128::from(n);
        // Counts inconsistent with the prompt (more cached than prompt) are
        // capped so no part is priced twice.
        let cached = usage.cached.min(usage.prompt);
        let write_5m = usage.cache_write_5m.min(usage.prompt - cached);
        let write_1h = usage.cache_write_1h.min(usage.prompt - cached - write_5m);
        let uncached = usage.prompt - cached - write_5m - write_1h;
        let reasoning = usage.reasoning.min(usage.completion);
        let (answer, reasoning_rate) = match rates.reasoning {
            Some(rate) => (usage.completion - reasoning, Some(rate)),
            None => (usage.completion, None),
        };
        let mut total = tokens(uncached) * u128::from(rates.input)
            + tokens(cached) * u128::from(rates.cached_input.unwrap_or(rates.input))
            + tokens(write_5m) * u128::from(rates.cache_write_5m.unwrap_or(rates.input))
            + tokens(write_1h) * u128::from(rates.cache_write_1h.unwrap_or(rates.input))
            + tokens(answer) * u128::from(rates.output);
        if let Some(rate) = reasoning_rate {
            total += tokens(reasoning) * u128::from(rate);
        }
        Cost {
            micro_usd: i64::try_from((total + 500_000) / 1_000_000).unwrap_or(i64::MAX),
            priced: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dollars per million tokens as micro-dollars per million tokens.
    fn usd(dollars: f64) -> u64 {
        (dollars * 1_000_000.0).round() as u64
    }

    fn anthropic_like() -> Prices {
        Prices {
            base: Rates {
                input: usd(3.0),
                output: usd(15.0),
                cached_input: Some(usd(0.30)),
                cache_write_5m: Some(usd(3.75)),
                cache_write_1h: Some(usd(6.0)),
                reasoning: None,
            },
            long_context: None,
        }
    }

    #[test]
    fn dollars_convert_exactly_or_not_at_all() {
        assert_eq!(from_dollars(0.075), Ok(75_000));
        assert_eq!(from_dollars(2.5), Ok(2_500_000));
        assert_eq!(from_dollars(0.0), Ok(0));
        assert!(from_dollars(-1.0).is_err());
        assert!(from_dollars(f64::NAN).is_err());
        assert!(from_dollars(f64::INFINITY).is_err());
        assert!(from_dollars(0.000_000_1).is_err());
        assert_eq!(to_dollars(75_000), 0.075);
        let rates = Rates {
            input: 1,
            output: 2,
            reasoning: Some(3),
            ..Rates::default()
        };
        let json = serde_json::to_string(&rates).unwrap();
        assert_eq!(json, r#"{"input":1,"output":2,"reasoning":3}"#);
        assert_eq!(serde_json::from_str::<Rates>(&json).unwrap(), rates);
    }

    #[test]
    fn each_part_of_the_prompt_at_its_rate() {
        let usage = UsageTokens {
            prompt: 10_000,
            completion: 1_000,
            cached: 4_000,
            cache_write_5m: 2_000,
            cache_write_1h: 1_000,
            reasoning: 0,
        };
        // 3000 x 3 + 4000 x 0.30 + 2000 x 3.75 + 1000 x 6 + 1000 x 15 (dollars
        // per million) = 9000 + 1200 + 7500 + 6000 + 15000 micro-dollars.
        assert_eq!(anthropic_like().cost(&usage).micro_usd, 38_700);
    }

    #[test]
    fn reasoning_costs_output_unless_priced_apart() {
        let usage = UsageTokens {
            prompt: 1_000,
            completion: 3_000,
            reasoning: 2_000,
            ..UsageTokens::default()
        };
        let mut prices = anthropic_like();
        // 1000 x 3 + 3000 x 15.
        assert_eq!(prices.cost(&usage).micro_usd, 48_000);
        prices.base.reasoning = Some(usd(3.5));
        // 1000 x 3 + 1000 x 15 + 2000 x 3.5.
        assert_eq!(prices.cost(&usage).micro_usd, 25_000);
    }

    #[test]
    fn missing_cache_rates_cost_the_input_rate() {
        let prices = Prices {
            base: Rates {
                input: usd(2.0),
                output: usd(8.0),
                ..Rates::default()
            },
            long_context: None,
        };
        let usage = UsageTokens {
            prompt: 1_000,
            cached: 600,
            cache_write_5m: 100,
            ..UsageTokens::default()
        };
        assert_eq!(prices.cost(&usage).micro_usd, 2_000);
    }

    #[test]
    fn rounds_once_to_the_nearest_micro_dollar() {
        let prices = Prices {
            base: Rates {
                input: usd(0.15),
                output: usd(0.60),
                cached_input: Some(usd(0.075)),
                ..Rates::default()
            },
            long_context: None,
        };
        // 3 uncached x 0.15 + 4 cached x 0.075 + 1 x 0.60 = 1.35 micro-dollars.
        let usage = UsageTokens {
            prompt: 7,
            completion: 1,
            cached: 4,
            ..UsageTokens::default()
        };
        assert_eq!(prices.cost(&usage).micro_usd, 1);
        // 10 of them: 13.5, rounded half up.
        let usage = UsageTokens {
            prompt: 70,
            completion: 10,
            cached: 40,
            ..UsageTokens::default()
        };
        assert_eq!(prices.cost(&usage).micro_usd, 14);
    }

    #[test]
    fn impossible_counts_never_price_a_token_twice() {
        let usage = UsageTokens {
            prompt: 100,
            completion: 10,
            cached: 80,
            cache_write_5m: 80,
            cache_write_1h: 80,
            reasoning: 50,
        };
        // 80 cached x 0.30 + 20 written (5 m) x 3.75 + 10 x 15.
        assert_eq!(anthropic_like().cost(&usage).micro_usd, 249);
    }

    #[test]
    fn long_prompts_take_the_long_context_rates() {
        let prices = Prices {
            base: Rates {
                input: usd(1.25),
                output: usd(10.0),
                cached_input: Some(usd(0.125)),
                ..Rates::default()
            },
            long_context: Some(LongContext {
                above_prompt_tokens: 200_000,
                input: Some(usd(2.5)),
                output: Some(usd(15.0)),
                cached_input: Some(usd(0.25)),
                ..LongContext::default()
            }),
        };
        let at = |prompt: u32| UsageTokens {
            prompt,
            completion: 1_000,
            cached: 100_000,
            ..UsageTokens::default()
        };
        // 100000 x 1.25 + 100000 x 0.125 + 1000 x 10.
        assert_eq!(prices.cost(&at(200_000)).micro_usd, 147_500);
        // 100001 x 2.5 + 100000 x 0.25 + 1000 x 15.
        assert_eq!(prices.cost(&at(200_001)).micro_usd, 290_003);
    }
}
