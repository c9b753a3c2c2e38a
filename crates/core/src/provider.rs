//! The upstream providers Tollgate knows how to call.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    OpenRouter,
    Ollama,
    AzureOpenAi,
    RovoDev,
    OpenAiCompatible,
    Mock,
}

/// A provider name Tollgate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}")]
pub struct UnknownProvider(pub String);

impl Provider {
    pub const ALL: [Provider; 9] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::OpenRouter,
        Provider::Ollama,
        Provider::AzureOpenAi,
        Provider::RovoDev,
        Provider::OpenAiCompatible,
        Provider::Mock,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::OpenRouter => "openrouter",
            Provider::Ollama => "ollama",
            Provider::AzureOpenAi => "azure_openai",
            Provider::RovoDev => "rovodev",
            Provider::OpenAiCompatible => "openai_compatible",
            Provider::Mock => "mock",
        }
    }

    /// Whether its accounts are strict about their daily cap unless told
    /// otherwise: Rovo Dev locks an account that passes its limit.
    pub const fn strict_cap_by_default(self) -> bool {
        matches!(self, Provider::RovoDev)
    }

    /// The public API base URL used when an account names none.
    pub const fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::Gemini => Some("https://generativelanguage.googleapis.com"),
            Provider::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Provider::Ollama => Some("http://127.0.0.1:11434"),
            Provider::AzureOpenAi | Provider::RovoDev | Provider::OpenAiCompatible => None,
            Provider::Mock => Some("mock://local"),
        }
    }

    /// Whether an account of this provider needs a secret to be usable.
    pub const fn needs_secret(self) -> bool {
        !matches!(self, Provider::Ollama | Provider::Mock)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|provider| provider.as_str() == name)
            .ok_or_else(|| UnknownProvider(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(provider.as_str().parse::<Provider>(), Ok(provider));
        }
        assert!("OpenAI".parse::<Provider>().is_err());
    }
}
