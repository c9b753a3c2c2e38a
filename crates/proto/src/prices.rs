//! An account's own prices between the wire (`ModelPrices`) and the model
//! catalog's rates (`tollgate_core::catalog::Rates`): the same numbers,
//! micro-dollars per million tokens.

use tollgate_core::catalog::Rates;

use crate::v1::ModelPrices;

impl From<Rates> for ModelPrices {
    fn from(rates: Rates) -> Self {
        ModelPrices {
            input: rates.input,
            output: rates.output,
            cached_input: rates.cached_input,
            cache_write_5m: rates.cache_write_5m,
            cache_write_1h: rates.cache_write_1h,
            reasoning: rates.reasoning,
        }
    }
}

impl From<ModelPrices> for Rates {
    fn from(prices: ModelPrices) -> Self {
        Rates {
            input: prices.input,
            output: prices.output,
            cached_input: prices.cached_input,
            cache_write_5m: prices.cache_write_5m,
            cache_write_1h: prices.cache_write_1h,
            reasoning: prices.reasoning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rate_survives_the_round_trip() {
        let rates = Rates {
            input: 1,
            output: 2,
            cached_input: Some(3),
            cache_write_5m: Some(4),
            cache_write_1h: None,
            reasoning: Some(6),
        };
        assert_eq!(Rates::from(ModelPrices::from(rates)), rates);
    }
}
