//! An account's own prices, in US dollars per million tokens as providers
//! publish them; they replace the model catalog's for every request the
//! account serves. Converted here to and from the catalog's rates
//! (micro-dollars per million tokens), which is where a price that is not
//! one is refused, named by its field.

use serde::{Deserialize, Serialize};
use tollgate_core::catalog::{InvalidPrice, Rates, from_dollars, to_dollars};
use utoipa::ToSchema;

/// Prices in US dollars per million tokens (at most six decimals), which
/// replace the model catalog's for every request the account serves. A
/// part without a price of its own costs the input price (cache reads and
/// writes) or the output price (reasoning).
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Uncached prompt tokens.
    #[schema(minimum = 0)]
    pub input: f64,
    /// Completion tokens (reasoning included, unless `reasoning` is set).
    #[schema(minimum = 0)]
    pub output: f64,
    /// Prompt tokens read from a prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub cached_input: Option<f64>,
    /// Prompt tokens written to a prompt cache that lives 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub cache_write_5m: Option<f64>,
    /// Prompt tokens written to a prompt cache that lives 1 hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub cache_write_1h: Option<f64>,
    /// Reasoning tokens, when priced apart from output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub reasoning: Option<f64>,
}

/// A price of [`Prices`] that is not one, by the field's name (`input`,
/// `cache_write_1h`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prices.{field}: {source}")]
pub struct InvalidPrices {
    pub field: &'static str,
    pub source: InvalidPrice,
}

impl Prices {
    /// The catalog's rates for these prices; the first that is not a price
    /// (negative, not finite, more than six decimals) is refused.
    pub fn to_rates(&self) -> Result<Rates, InvalidPrices> {
        let rate = |dollars: f64, field: &'static str| {
            from_dollars(dollars).map_err(|source| InvalidPrices { field, source })
        };
        let optional = |dollars: Option<f64>, field: &'static str| {
            dollars.map(|dollars| rate(dollars, field)).transpose()
        };
        Ok(Rates {
            input: rate(self.input, "input")?,
            output: rate(self.output, "output")?,
            cached_input: optional(self.cached_input, "cached_input")?,
            cache_write_5m: optional(self.cache_write_5m, "cache_write_5m")?,
            cache_write_1h: optional(self.cache_write_1h, "cache_write_1h")?,
            reasoning: optional(self.reasoning, "reasoning")?,
        })
    }

    /// The prices of the catalog's `rates`, in dollars.
    pub fn from_rates(rates: Rates) -> Self {
        Self {
            input: to_dollars(rates.input),
            output: to_dollars(rates.output),
            cached_input: rates.cached_input.map(to_dollars),
            cache_write_5m: rates.cache_write_5m.map(to_dollars),
            cache_write_1h: rates.cache_write_1h.map(to_dollars),
            reasoning: rates.reasoning.map(to_dollars),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_become_rates_and_back() {
        let prices = Prices {
            input: 2.25,
            output: 9.0,
            cached_input: Some(0.225),
            reasoning: Some(0.000_001),
            ..Prices::default()
        };
        let rates = prices.to_rates().unwrap();
        assert_eq!(
            rates,
            Rates {
                input: 2_250_000,
                output: 9_000_000,
                cached_input: Some(225_000),
                reasoning: Some(1),
                ..Rates::default()
            }
        );
        assert_eq!(Prices::from_rates(rates), prices);
    }

    #[test]
    fn a_price_that_is_none_is_named() {
        let base = Prices {
            input: 1.0,
            output: 2.0,
            ..Prices::default()
        };
        let field = |prices: Prices| prices.to_rates().unwrap_err().field;
        assert_eq!(
            field(Prices {
                input: -1.0,
                ..base
            }),
            "input"
        );
        assert_eq!(
            field(Prices {
                cache_write_1h: Some(0.000_000_1),
                ..base
            }),
            "cache_write_1h"
        );
        assert_eq!(
            field(Prices {
                output: f64::NAN,
                ..base
            }),
            "output"
        );
    }
}
