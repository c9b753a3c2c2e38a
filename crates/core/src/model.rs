//! How a client names a model: bare (`gpt-4o-mini`) or provider-qualified
//! (`openai/gpt-4o-mini`, `openrouter/meta-llama/llama-3-70b`).

use crate::Provider;

/// A parsed model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// Set when the name starts with a known provider and a slash.
    pub provider: Option<Provider>,
    /// The model with the provider prefix removed.
    pub model: String,
}

impl ModelRef {
    /// Splits at the first `/` when what precedes it names a provider;
    /// otherwise the whole name is a bare model (which may itself contain
    /// slashes, as OpenRouter's do). Returns `None` for an empty name.
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        if let Some((prefix, rest)) = name.split_once('/')
            && let Ok(provider) = prefix.parse::<Provider>()
        {
            if rest.is_empty() {
                return None;
            }
            return Some(Self {
                provider: Some(provider),
                model: rest.to_owned(),
            });
        }
        Some(Self {
            provider: None,
            model: name.to_owned(),
        })
    }

    /// The name as a client would write it.
    pub fn qualified(&self) -> String {
        match self.provider {
            Some(provider) => format!("{provider}/{}", self.model),
            None => self.model.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_and_qualified_names() {
        assert_eq!(
            ModelRef::parse("gpt-4o-mini"),
            Some(ModelRef {
                provider: None,
                model: "gpt-4o-mini".into()
            })
        );
        assert_eq!(
            ModelRef::parse("openai/gpt-4o"),
            Some(ModelRef {
                provider: Some(Provider::OpenAi),
                model: "gpt-4o".into()
            })
        );
        let nested = ModelRef::parse("openrouter/meta-llama/llama-3-70b");
        assert_eq!(
            nested.map(|m| (m.provider, m.model)),
            Some((
                Some(Provider::OpenRouter),
                "meta-llama/llama-3-70b".to_owned()
            ))
        );
        let unknown_prefix = ModelRef::parse("meta-llama/llama-3-70b");
        assert_eq!(unknown_prefix.map(|m| m.provider), Some(None));
    }

    #[test]
    fn rejects_empty_names() {
        assert_eq!(ModelRef::parse(""), None);
        assert_eq!(ModelRef::parse("  "), None);
        assert_eq!(ModelRef::parse("openai/"), None);
    }
}
