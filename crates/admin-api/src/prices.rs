//! An account's own prices, in US dollars per million tokens as providers
//! publish them; they replace the model catalog's for every request the
//! account serves.

use serde::{Deserialize, Serialize};
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
