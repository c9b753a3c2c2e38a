//! Upstreams that run on the operator's own machines: Ollama, and the
//! OpenAI-compatible servers of the local presets (vLLM, llama.cpp's
//! server, LM Studio). Their tokens cost nothing per request, so their
//! requests are priced at 0 (`priced = true`: the cost is known, and it is
//! nothing), whatever model they serve; an account's own prices still
//! replace that (a GPU's hourly cost spread over its tokens, say).
//!
//! This is a property of the account, not of the model (the same model
//! name may be served by a hosted API at a price), which is why it is
//! decided here from the account's provider and settings rather than in
//! the model catalog.

use crate::presets::Preset;
use crate::provider::Provider;
use crate::provider_settings::ProviderSettings;

/// Whether an account of `provider` with `settings` runs on the operator's
/// own machines.
pub fn is_self_hosted(provider: Provider, settings: &ProviderSettings) -> bool {
    match (provider, settings) {
        (Provider::Ollama, _) => true,
        (Provider::OpenAiCompatible, ProviderSettings::OpenAiCompatible(compatible)) => {
            compatible.preset.is_some_and(Preset::is_local)
        }
        _ => false,
    }
}

/// [`is_self_hosted`] for a provider and settings as they travel (the
/// provider's name and the settings' JSON text); an unknown provider or
/// unreadable settings are not self-hosted (so they are priced from the
/// catalog, never given away).
pub fn is_self_hosted_named(provider: &str, settings: &str) -> bool {
    let Ok(provider) = provider.parse::<Provider>() else {
        return false;
    };
    // Only these two can be; the others' settings need no reading.
    matches!(provider, Provider::Ollama | Provider::OpenAiCompatible)
        && ProviderSettings::from_json(provider, settings)
            .is_ok_and(|settings| is_self_hosted(provider, &settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_and_the_local_presets_are_self_hosted() {
        assert!(is_self_hosted_named("ollama", ""));
        for preset in ["vllm", "llama_cpp", "lm_studio"] {
            let settings = format!(r#"{{"preset":"{preset}"}}"#);
            assert!(
                is_self_hosted_named("openai_compatible", &settings),
                "{preset}"
            );
        }
    }

    #[test]
    fn hosted_apis_and_unknown_servers_are_not() {
        for preset in [
            "groq",
            "mistral",
            "deepseek",
            "xai",
            "together",
            "fireworks",
        ] {
            let settings = format!(r#"{{"preset":"{preset}"}}"#);
            assert!(
                !is_self_hosted_named("openai_compatible", &settings),
                "{preset}"
            );
        }
        // Without a preset nothing says where the server runs.
        assert!(!is_self_hosted_named("openai_compatible", ""));
        assert!(!is_self_hosted_named("openai_compatible", "not json"));
        for provider in [
            "openai",
            "anthropic",
            "gemini",
            "openrouter",
            "azure_openai",
            "rovodev",
            "mock",
            "nobody",
        ] {
            assert!(!is_self_hosted_named(provider, ""), "{provider}");
        }
    }
}
