//! The catalog file's shape (`catalog/models.yaml`) and its checks: what
//! one model entry says, read into [`ModelInfo`].

use std::collections::BTreeSet;

use jiff::civil::Date;
use serde::Deserialize;

use super::CatalogError;
use super::price::{LongContext, MicroUsdPerMtok, Prices, Rates, from_dollars};
use crate::Provider;

/// What a model can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Tools,
    Vision,
    JsonSchema,
    Streaming,
    Embeddings,
    Reasoning,
}

/// One model as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The provider's name of the model (of its family, for snapshots).
    pub id: String,
    pub provider: Provider,
    /// Other names of the same model.
    pub aliases: Vec<String>,
    /// Prompt plus completion tokens the model accepts.
    pub context_window: Option<u32>,
    /// The most completion tokens one answer may have.
    pub max_output_tokens: Option<u32>,
    pub capabilities: BTreeSet<Capability>,
    /// `None`: the model is not priced.
    pub prices: Option<Prices>,
    /// When the prices were read from the provider's page.
    pub prices_read: Option<Date>,
}

impl ModelInfo {
    /// Whether the model can do `capability`.
    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub models: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    id: String,
    provider: String,
    #[serde(default)]
    aliases: Vec<String>,
    context_window: Option<u32>,
    max_output_tokens: Option<u32>,
    #[serde(default)]
    capabilities: Vec<Capability>,
    prices: Option<WrittenPrices>,
    prices_read: Option<String>,
}

/// Prices in US dollars per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenPrices {
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
    long_context: Option<WrittenLongContext>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenLongContext {
    above_prompt_tokens: u32,
    input: Option<f64>,
    output: Option<f64>,
    cached_input: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
}

impl Entry {
    /// The checked entry.
    pub(crate) fn into_model(self) -> Result<ModelInfo, CatalogError> {
        let invalid = |reason: String| CatalogError::Invalid {
            model: self.id.clone(),
            reason,
        };
        if self.id.trim().is_empty() || self.id.trim() != self.id {
            return Err(invalid("the id must be a non-empty name".into()));
        }
        let provider = self
            .provider
            .parse::<Provider>()
            .map_err(|error| invalid(error.to_string()))?;
        if let (Some(context), Some(output)) = (self.context_window, self.max_output_tokens)
            && output > context
        {
            return Err(invalid(
                "max_output_tokens is larger than the context window".into(),
            ));
        }
        let prices = self
            .prices
            .as_ref()
            .map(|written| written.read().map_err(&invalid))
            .transpose()?;
        let prices_read = match (&prices, &self.prices_read) {
            (Some(_), None) => return Err(invalid("prices need prices_read".into())),
            (None, Some(_)) => return Err(invalid("prices_read without prices".into())),
            (_, Some(date)) => Some(
                date.parse::<Date>()
                    .map_err(|_| invalid(format!("prices_read {date:?} is not YYYY-MM-DD")))?,
            ),
            (None, None) => None,
        };
        Ok(ModelInfo {
            id: self.id,
            provider,
            aliases: self.aliases,
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            capabilities: self.capabilities.into_iter().collect(),
            prices,
            prices_read,
        })
    }
}

/// Dollars per million tokens as micro-dollars per million tokens.
fn rate(dollars: f64) -> Result<MicroUsdPerMtok, String> {
    from_dollars(dollars).map_err(|error| error.to_string())
}

fn optional(dollars: Option<f64>) -> Result<Option<MicroUsdPerMtok>, String> {
    dollars.map(rate).transpose()
}

impl WrittenPrices {
    fn read(&self) -> Result<Prices, String> {
        let long_context = match &self.long_context {
            None => None,
            Some(tier) => Some(LongContext {
                above_prompt_tokens: tier.above_prompt_tokens,
                input: optional(tier.input)?,
                output: optional(tier.output)?,
                cached_input: optional(tier.cached_input)?,
                cache_write_5m: optional(tier.cache_write_5m)?,
                cache_write_1h: optional(tier.cache_write_1h)?,
                reasoning: optional(tier.reasoning)?,
            }),
        };
        Ok(Prices {
            base: Rates {
                input: rate(self.input)?,
                output: rate(self.output)?,
                cached_input: optional(self.cached_input)?,
                cache_write_5m: optional(self.cache_write_5m)?,
                cache_write_1h: optional(self.cache_write_1h)?,
                reasoning: optional(self.reasoning)?,
            },
            long_context,
        })
    }
}
