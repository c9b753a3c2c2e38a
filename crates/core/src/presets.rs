//! Named presets for `openai_compatible` accounts: servers whose base URL
//! and quirks are known, so an account names the server instead of
//! spelling them out.
//!
//! A preset gives the base URL used when the account sets none, the field
//! an upstream reads a completion cap from, and whether it takes
//! `stream_options.include_usage` (an upstream that refuses unknown fields,
//! like Mistral, must not be sent it; one that reports usage in its last
//! chunk unasked needs no asking).

use std::fmt;
use std::str::FromStr;

/// Where an OpenAI-compatible upstream reads the completion cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapField {
    /// `max_completion_tokens`: OpenAI's current field (its reasoning
    /// models refuse `max_tokens`).
    MaxCompletionTokens,
    /// `max_tokens`: what most other OpenAI-compatible servers read.
    MaxTokens,
}

impl CapField {
    /// The JSON field name.
    pub const fn name(self) -> &'static str {
        match self {
            CapField::MaxCompletionTokens => "max_completion_tokens",
            CapField::MaxTokens => "max_tokens",
        }
    }
}

/// A known OpenAI-compatible server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    Vllm,
    LlamaCpp,
    LmStudio,
    Groq,
    Mistral,
    DeepSeek,
    Xai,
    Together,
    Fireworks,
}

/// What a preset knows about its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetQuirks {
    /// The base URL (up to and including `/v1`) when the account has none.
    pub base_url: &'static str,
    /// Where it reads a completion cap.
    pub cap_field: CapField,
    /// Whether it takes `stream_options.include_usage` (when not, the
    /// stream's usage is read if the server sends it anyway, else
    /// estimated).
    pub stream_usage_option: bool,
    /// Whether an account needs a secret: hosted APIs do, local servers
    /// run without a key unless told to check one.
    pub needs_secret: bool,
}

/// A preset name Tollgate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset {0:?}")]
pub struct UnknownPreset(pub String);

impl Preset {
    pub const ALL: [Preset; 9] = [
        Preset::Vllm,
        Preset::LlamaCpp,
        Preset::LmStudio,
        Preset::Groq,
        Preset::Mistral,
        Preset::DeepSeek,
        Preset::Xai,
        Preset::Together,
        Preset::Fireworks,
    ];

    /// The name an account's `preset` setting uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Vllm => "vllm",
            Preset::LlamaCpp => "llama_cpp",
            Preset::LmStudio => "lm_studio",
            Preset::Groq => "groq",
            Preset::Mistral => "mistral",
            Preset::DeepSeek => "deepseek",
            Preset::Xai => "xai",
            Preset::Together => "together",
            Preset::Fireworks => "fireworks",
        }
    }

    /// Whether the preset's server runs on the operator's own machines
    /// (vLLM, llama.cpp's server, LM Studio) rather than as a hosted API.
    pub const fn is_local(self) -> bool {
        matches!(self, Preset::Vllm | Preset::LlamaCpp | Preset::LmStudio)
    }

    /// The preset's table row.
    pub const fn quirks(self) -> PresetQuirks {
        use CapField::{MaxCompletionTokens, MaxTokens};
        let local = self.is_local();
        let (base_url, cap_field, stream_usage_option) = match self {
            // Local servers, at their documented default ports.
            Preset::Vllm => ("http://127.0.0.1:8000/v1", MaxTokens, true),
            Preset::LlamaCpp => ("http://127.0.0.1:8080/v1", MaxTokens, false),
            Preset::LmStudio => ("http://127.0.0.1:1234/v1", MaxTokens, false),
            // Hosted APIs.
            Preset::Groq => ("https://api.groq.com/openai/v1", MaxCompletionTokens, true),
            Preset::Mistral => ("https://api.mistral.ai/v1", MaxTokens, false),
            Preset::DeepSeek => ("https://api.deepseek.com/v1", MaxTokens, true),
            Preset::Xai => ("https://api.x.ai/v1", MaxCompletionTokens, true),
            Preset::Together => ("https://api.together.xyz/v1", MaxTokens, false),
            Preset::Fireworks => ("https://api.fireworks.ai/inference/v1", MaxTokens, false),
        };
        PresetQuirks {
            base_url,
            cap_field,
            stream_usage_option,
            needs_secret: !local,
        }
    }

    /// Every preset name, for messages.
    pub fn names() -> String {
        Preset::ALL
            .iter()
            .map(|preset| preset.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|preset| preset.as_str() == name)
            .ok_or_else(|| UnknownPreset(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for preset in Preset::ALL {
            assert_eq!(preset.as_str().parse::<Preset>(), Ok(preset));
        }
        assert_eq!(
            "vLLM".parse::<Preset>(),
            Err(UnknownPreset("vLLM".to_owned()))
        );
    }

    #[test]
    fn local_servers_default_to_loopback_and_hosted_ones_to_https() {
        for preset in [Preset::Vllm, Preset::LlamaCpp, Preset::LmStudio] {
            assert!(preset.quirks().base_url.starts_with("http://127.0.0.1:"));
            assert!(!preset.quirks().needs_secret, "{preset}");
        }
        for preset in [
            Preset::Groq,
            Preset::Mistral,
            Preset::DeepSeek,
            Preset::Xai,
            Preset::Together,
            Preset::Fireworks,
        ] {
            assert!(preset.quirks().base_url.starts_with("https://"), "{preset}");
            assert!(preset.quirks().needs_secret, "{preset}");
        }
        for preset in Preset::ALL {
            assert!(preset.quirks().base_url.ends_with("/v1"), "{preset}");
        }
    }

    #[test]
    fn quirks_of_note() {
        assert_eq!(Preset::Vllm.quirks().base_url, "http://127.0.0.1:8000/v1");
        // Groq and xAI read max_completion_tokens (max_tokens is
        // deprecated there).
        for preset in [Preset::Groq, Preset::Xai] {
            assert_eq!(
                preset.quirks().cap_field,
                CapField::MaxCompletionTokens,
                "{preset}"
            );
        }
        // Mistral refuses fields it does not know, stream_options included.
        assert!(!Preset::Mistral.quirks().stream_usage_option);
        assert!(Preset::Vllm.quirks().stream_usage_option);
        assert_eq!(CapField::MaxTokens.name(), "max_tokens");
    }
}
