//! An account's own prices between the admin API (US dollars per million
//! tokens) and quota's messages (micro-dollars per million tokens). A price
//! that is not an amount of dollars with at most six decimals is a 400
//! naming the field.

use tollgate_admin_api::Prices;
use tollgate_core::GatewayError;
use tollgate_core::catalog::{from_dollars, to_dollars};
use tollgate_proto::v1::ModelPrices;

/// The prices as quota's message; the first one that is not a price is
/// refused, named (`prices.input`).
pub fn to_wire(prices: Prices) -> Result<ModelPrices, GatewayError> {
    let rate = |dollars: f64, field: &str| {
        from_dollars(dollars).map_err(|_| {
            GatewayError::invalid(
                format!("prices.{field}"),
                format!(
                    "prices.{field} must be US dollars per million tokens, not negative, with at \
                     most six decimals"
                ),
            )
        })
    };
    let optional =
        |dollars: Option<f64>, field: &str| dollars.map(|dollars| rate(dollars, field)).transpose();
    Ok(ModelPrices {
        input: rate(prices.input, "input")?,
        output: rate(prices.output, "output")?,
        cached_input: optional(prices.cached_input, "cached_input")?,
        cache_write_5m: optional(prices.cache_write_5m, "cache_write_5m")?,
        cache_write_1h: optional(prices.cache_write_1h, "cache_write_1h")?,
        reasoning: optional(prices.reasoning, "reasoning")?,
    })
}

/// Quota's prices as the admin API shows them.
pub fn from_wire(prices: ModelPrices) -> Prices {
    Prices {
        input: to_dollars(prices.input),
        output: to_dollars(prices.output),
        cached_input: prices.cached_input.map(to_dollars),
        cache_write_5m: prices.cache_write_5m.map(to_dollars),
        cache_write_1h: prices.cache_write_1h.map(to_dollars),
        reasoning: prices.reasoning.map(to_dollars),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_become_micro_dollars_and_back() {
        let prices = Prices {
            input: 2.25,
            output: 9.0,
            cached_input: Some(0.225),
            reasoning: Some(0.000_001),
            ..Prices::default()
        };
        let wire = to_wire(prices).unwrap();
        assert_eq!(
            wire,
            ModelPrices {
                input: 2_250_000,
                output: 9_000_000,
                cached_input: Some(225_000),
                reasoning: Some(1),
                ..ModelPrices::default()
            }
        );
        assert_eq!(from_wire(wire), prices);
    }

    #[test]
    fn a_price_that_is_none_is_refused_by_name() {
        let refused = |prices: Prices| to_wire(prices).unwrap_err().param.unwrap_or_default();
        let base = Prices {
            input: 1.0,
            output: 2.0,
            ..Prices::default()
        };
        assert_eq!(
            refused(Prices {
                input: -1.0,
                ..base
            }),
            "prices.input"
        );
        assert_eq!(
            refused(Prices {
                cache_write_1h: Some(0.000_000_1),
                ..base
            }),
            "prices.cache_write_1h"
        );
    }
}
