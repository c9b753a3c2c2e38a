//! An account's own prices between the admin API (US dollars per million
//! tokens) and quota's messages (micro-dollars per million tokens). A price
//! that is not an amount of dollars with at most six decimals is a 400
//! naming the field.

use tollgate_admin_api::Prices;
use tollgate_core::GatewayError;
use tollgate_core::catalog::Rates;
use tollgate_proto::v1::ModelPrices;

/// The prices as quota's message; the first one that is not a price is
/// refused, named (`prices.input`).
pub fn to_wire(prices: Prices) -> Result<ModelPrices, GatewayError> {
    prices.to_rates().map(ModelPrices::from).map_err(|error| {
        GatewayError::invalid(
            format!("prices.{}", error.field),
            format!(
                "prices.{} must be US dollars per million tokens, not negative, with at most \
                 six decimals",
                error.field
            ),
        )
    })
}

/// Quota's prices as the admin API shows them.
pub fn from_wire(prices: ModelPrices) -> Prices {
    Prices::from_rates(Rates::from(prices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_travel_as_micro_dollars_and_back() {
        let prices = Prices {
            input: 2.25,
            output: 9.0,
            cached_input: Some(0.225),
            ..Prices::default()
        };
        let wire = to_wire(prices).unwrap();
        assert_eq!(
            (wire.input, wire.output, wire.cached_input),
            (2_250_000, 9_000_000, Some(225_000))
        );
        assert_eq!(from_wire(wire), prices);
    }

    #[test]
    fn a_price_that_is_none_is_a_400_naming_it() {
        let error = to_wire(Prices {
            input: 1.0,
            output: -2.0,
            ..Prices::default()
        })
        .unwrap_err();
        assert_eq!(error.kind, tollgate_core::ErrorKind::InvalidRequest);
        assert_eq!(error.param.as_deref(), Some("prices.output"));
    }
}
