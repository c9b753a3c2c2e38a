//! Prices of upstream models, for the cost of each request.
//!
//! Costs are integer micro-dollars so sums are exact. Prices are US dollars
//! per million tokens as published by each provider; a model not in the
//! table costs zero (and is still counted in tokens).

/// Micro-dollars per million tokens, input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input_micro_usd_per_mtok: u64,
    pub output_micro_usd_per_mtok: u64,
}

const fn usd(input: f64, output: f64) -> Price {
    Price {
        input_micro_usd_per_mtok: (input * 1_000_000.0) as u64,
        output_micro_usd_per_mtok: (output * 1_000_000.0) as u64,
    }
}

/// Model-name prefixes and their prices; the longest matching prefix wins,
/// so dated snapshots (`gpt-4o-mini-2024-07-18`) take their family's price.
const TABLE: &[(&str, Price)] = &[
    ("gpt-4o-mini", usd(0.15, 0.60)),
    ("gpt-4o", usd(2.50, 10.00)),
    ("gpt-4.1-nano", usd(0.10, 0.40)),
    ("gpt-4.1-mini", usd(0.40, 1.60)),
    ("gpt-4.1", usd(2.00, 8.00)),
    ("gpt-5-nano", usd(0.05, 0.40)),
    ("gpt-5-mini", usd(0.25, 2.00)),
    ("gpt-5", usd(1.25, 10.00)),
    ("o3-mini", usd(1.10, 4.40)),
    ("o4-mini", usd(1.10, 4.40)),
    ("o3", usd(2.00, 8.00)),
    ("claude-3-5-haiku", usd(0.80, 4.00)),
    ("claude-haiku-4-5", usd(1.00, 5.00)),
    ("claude-sonnet-4", usd(3.00, 15.00)),
    ("claude-3-7-sonnet", usd(3.00, 15.00)),
    ("claude-opus-4", usd(15.00, 75.00)),
    ("gemini-2.5-flash", usd(0.30, 2.50)),
    ("gemini-2.5-pro", usd(1.25, 10.00)),
    ("text-embedding-3-small", usd(0.02, 0.0)),
    ("text-embedding-3-large", usd(0.13, 0.0)),
];

/// The price of `model`, if the table knows it.
pub fn price_of(model: &str) -> Option<Price> {
    TABLE
        .iter()
        .filter(|(prefix, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, price)| *price)
}

/// Cost in micro-dollars, rounded to the nearest micro-dollar.
pub fn cost_micro_usd(model: &str, prompt_tokens: u32, completion_tokens: u32) -> i64 {
    let Some(price) = price_of(model) else {
        return 0;
    };
    let total = u128::from(prompt_tokens) * u128::from(price.input_micro_usd_per_mtok)
        + u128::from(completion_tokens) * u128::from(price.output_micro_usd_per_mtok);
    i64::try_from((total + 500_000) / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(price_of("gpt-4o-mini-2024-07-18"), Some(usd(0.15, 0.60)));
        assert_eq!(price_of("gpt-4o-2024-08-06"), Some(usd(2.50, 10.00)));
        assert_eq!(price_of("mock-echo"), None);
    }

    #[test]
    fn cost_is_exact_micro_dollars() {
        // 1M input tokens of gpt-4o-mini cost $0.15; 1M output cost $0.60.
        assert_eq!(cost_micro_usd("gpt-4o-mini", 1_000_000, 0), 150_000);
        assert_eq!(cost_micro_usd("gpt-4o-mini", 0, 1_000_000), 600_000);
        assert_eq!(cost_micro_usd("gpt-4o-mini", 1000, 500), 450);
        assert_eq!(cost_micro_usd("unknown", 1000, 500), 0);
    }
}
