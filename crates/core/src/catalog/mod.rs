//! The model catalog: every upstream model Tollgate knows, with its
//! provider, context window, output limit, capabilities and prices.
//!
//! The catalog is a data file versioned with the code
//! (`catalog/models.yaml` at the repository's root), compiled into the
//! binary and parsed once, at first use ([`Catalog::builtin`]). A model
//! name resolves to its entry by id or alias, or as a dated snapshot of one
//! (see `names`). The cost of a request is computed here, from the
//! normalised usage, in integer micro-dollars ([`Catalog::cost`]); a model
//! without prices is never guessed at: its cost is 0 and not priced.

mod entry;
mod names;
mod price;

use std::collections::HashMap;
use std::sync::LazyLock;

pub use entry::{Capability, ModelInfo};
pub use price::{
    Cost, InvalidPrice, LongContext, MicroUsdPerMtok, Prices, Rates, UsageTokens, from_dollars,
    to_dollars,
};

/// The catalog file, as compiled in.
pub const BUILTIN_YAML: &str = include_str!("../../../../catalog/models.yaml");

/// A catalog file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("the model catalog is not valid YAML of the expected shape: {0}")]
    Syntax(String),
    #[error("model {model:?} in the catalog: {reason}")]
    Invalid { model: String, reason: String },
    #[error("the name {name:?} is given to more than one model in the catalog")]
    DuplicateName { name: String },
}

/// The models of a catalog file, found by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: Vec<ModelInfo>,
    /// Every id and alias, to its model's index.
    by_name: HashMap<String, usize>,
}

static BUILTIN: LazyLock<Catalog> = LazyLock::new(|| {
    // The file is compiled in and a test parses it, so this cannot fail in a
    // tested build; an empty catalog (nothing priced) is the safe fallback.
    Catalog::parse(BUILTIN_YAML).unwrap_or_default()
});

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> &'static Catalog {
        &BUILTIN
    }

    /// Reads a catalog file; every entry is checked, and no id or alias may
    /// name two models.
    pub fn parse(yaml: &str) -> Result<Self, CatalogError> {
        let file: entry::File = serde_norway::from_str(yaml)
            .map_err(|error| CatalogError::Syntax(error.to_string()))?;
        let mut catalog = Catalog::default();
        for written in file.models {
            let model = written.into_model()?;
            let index = catalog.models.len();
            for name in std::iter::once(&model.id).chain(&model.aliases) {
                if catalog.by_name.insert(name.clone(), index).is_some() {
                    return Err(CatalogError::DuplicateName { name: name.clone() });
                }
            }
            catalog.models.push(model);
        }
        Ok(catalog)
    }

    /// Every model, in file order.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// The entry of `model`: the one whose id or alias it is, else the one
    /// it is a dated snapshot of (the longest such id or alias).
    pub fn find(&self, model: &str) -> Option<&ModelInfo> {
        let index = self.by_name.get(model).copied().or_else(|| {
            names::snapshot_family(model).find_map(|family| self.by_name.get(family).copied())
        })?;
        self.models.get(index)
    }

    /// What `usage` of `model` cost. A request that used no tokens costs 0
    /// and counts as priced (there was nothing to price); otherwise a model
    /// the catalog has no prices for is [`Cost::UNPRICED`].
    pub fn cost(&self, model: &str, usage: &UsageTokens) -> Cost {
        if usage.total() == 0 {
            return Cost::FREE;
        }
        match self.find(model).and_then(|info| info.prices.as_ref()) {
            Some(prices) => prices.cost(usage),
            None => Cost::UNPRICED,
        }
    }
}

#[cfg(test)]
mod tests;
