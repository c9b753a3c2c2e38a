//! Usage reports (`GET /admin/v1/usage`, `GET /admin/v1/accounts/{id}/usage`):
//! totals per group, and per hour or day when the query is bucketed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Usage totals, one row per group (and bucket), ordered by bucket, then
/// group.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct UsageReport {
    pub rows: Vec<UsageRow>,
}

/// The totals of one group (and bucket). Token counts follow one convention
/// for every provider: `prompt_tokens` counts every input token, cache
/// reads and writes included; `completion_tokens` every output token,
/// reasoning included.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct UsageRow {
    /// The key, account, model, profile or provider of the row.
    pub group: String,
    /// The start of the hour or day; only when the query is bucketed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub bucket_start: Option<String>,
    #[schema(minimum = 0)]
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    #[schema(minimum = 0)]
    pub errors: u64,
    #[schema(minimum = 0)]
    pub prompt_tokens: u64,
    #[schema(minimum = 0)]
    pub completion_tokens: u64,
    #[schema(minimum = 0)]
    pub total_tokens: u64,
    /// Prompt tokens read from a prompt cache (part of `prompt_tokens`).
    #[schema(minimum = 0)]
    pub cached_tokens: u64,
    /// Prompt tokens written to a prompt cache that lives 5 minutes (part
    /// of `prompt_tokens`).
    #[schema(minimum = 0)]
    pub cache_write_5m_tokens: u64,
    /// Prompt tokens written to a prompt cache that lives 1 hour (part of
    /// `prompt_tokens`).
    #[schema(minimum = 0)]
    pub cache_write_1h_tokens: u64,
    /// Completion tokens spent on reasoning (part of `completion_tokens`).
    #[schema(minimum = 0)]
    pub reasoning_tokens: u64,
    /// The cost in US dollars, from the model catalog's prices.
    pub cost_usd: f64,
    /// Requests whose model the catalog has no price for: their cost is
    /// unknown and counted as 0 in `cost_usd`.
    #[schema(minimum = 0)]
    pub unpriced_requests: u64,
}
