//! The per-provider settings of an account: one JSON object, typed here
//! per provider, with every key checked and unknown keys refused.
//!
//! - `azure_openai`: `api_version` (classic deployment URLs with
//!   `?api-version=`; absent: the `/openai/v1/` path) and `deployments`
//!   (model name → deployment name; a model not listed is its own
//!   deployment name);
//! - `openai_compatible`: `preset` (a [`Preset`] name);
//! - `openrouter`: `http_referer` and `x_title`, OpenRouter's attribution
//!   headers;
//! - `rovodev`: `wire_format`, what the account's endpoint speaks:
//!   `openai_chat` (the default) or `anthropic_messages`;
//! - every other provider takes no settings.
//!
//! Settings travel and are stored as their canonical JSON text
//! ([`ProviderSettings::to_json`]); every reader parses them with
//! [`ProviderSettings::from_json`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::presets::Preset;
use crate::provider::Provider;

/// The longest Azure deployment name (Azure allows 64 characters).
const MAX_DEPLOYMENT_NAME: usize = 64;
/// The longest `api_version` accepted (`2024-10-21`, `2025-04-01-preview`).
const MAX_API_VERSION: usize = 40;
/// The longest attribution header value accepted.
const MAX_HEADER_VALUE: usize = 512;

/// An account's settings, by provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProviderSettings {
    /// A provider that takes no settings.
    #[default]
    None,
    AzureOpenAi(AzureSettings),
    OpenAiCompatible(CompatibleSettings),
    OpenRouter(OpenRouterSettings),
    RovoDev(RovoDevSettings),
}

/// What a Rovo Dev account's endpoint speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WireFormat {
    /// OpenAI Chat Completions (`{base_url}/chat/completions`).
    #[default]
    OpenAiChat,
    /// Anthropic Messages (`{base_url}/v1/messages`).
    AnthropicMessages,
}

impl WireFormat {
    const ALL: [WireFormat; 2] = [WireFormat::OpenAiChat, WireFormat::AnthropicMessages];

    pub const fn as_str(self) -> &'static str {
        match self {
            WireFormat::OpenAiChat => "openai_chat",
            WireFormat::AnthropicMessages => "anthropic_messages",
        }
    }
}

/// How a `rovodev` account's endpoint is spoken to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RovoDevSettings {
    pub wire_format: WireFormat,
}

/// How an `azure_openai` account is called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureSettings {
    /// Set: `{base_url}/openai/deployments/{deployment}/chat/completions
    /// ?api-version={api_version}`. Absent: `{base_url}/openai/v1/chat/
    /// completions`, with the deployment name as the body's `model`.
    pub api_version: Option<String>,
    /// Model name → deployment name.
    pub deployments: BTreeMap<String, String>,
}

impl AzureSettings {
    /// The deployment that serves `model`: the one listed for it, else a
    /// deployment named after the model.
    pub fn deployment<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployments.get(model).map_or(model, String::as_str)
    }
}

/// Which known server an `openai_compatible` account is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompatibleSettings {
    pub preset: Option<Preset>,
}

/// OpenRouter's app attribution, sent as `HTTP-Referer` and `X-Title`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenRouterSettings {
    pub http_referer: Option<String>,
    pub x_title: Option<String>,
}

/// A setting that is not valid for the account's provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    /// The offending key (`deployments.gpt-4o` for a nested one); empty
    /// when the settings as a whole are wrong.
    pub key: String,
    pub message: String,
}

impl SettingsError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The request parameter to name in a 400: `settings.<key>`.
    pub fn param(&self) -> String {
        if self.key.is_empty() {
            "settings".to_owned()
        } else {
            format!("settings.{}", self.key)
        }
    }
}

impl ProviderSettings {
    /// Reads stored or transmitted settings: empty text is no settings.
    pub fn from_json(provider: Provider, text: &str) -> Result<Self, SettingsError> {
        if text.trim().is_empty() {
            return Self::parse(provider, &Map::new());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Self::parse(provider, &object),
            _ => Err(SettingsError::new("", "settings must be a JSON object")),
        }
    }

    /// Checks `settings` against what `provider` takes.
    pub fn parse(provider: Provider, settings: &Map<String, Value>) -> Result<Self, SettingsError> {
        match provider {
            Provider::AzureOpenAi => parse_azure(settings).map(Self::AzureOpenAi),
            Provider::OpenAiCompatible => parse_compatible(settings).map(Self::OpenAiCompatible),
            Provider::OpenRouter => parse_openrouter(settings).map(Self::OpenRouter),
            Provider::RovoDev => parse_rovodev(settings).map(Self::RovoDev),
            Provider::OpenAi
            | Provider::Anthropic
            | Provider::Gemini
            | Provider::Ollama
            | Provider::Mock => match settings.keys().next() {
                Some(key) => Err(SettingsError::new(
                    key.as_str(),
                    format!("provider {provider} takes no settings (got `{key}`)"),
                )),
                None => Ok(Self::None),
            },
        }
    }

    /// The canonical JSON object, or `None` when nothing is set.
    pub fn to_json(&self) -> Option<String> {
        let mut object = Map::new();
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                object.insert(key.to_owned(), Value::from(value));
            }
        };
        match self {
            Self::None => {}
            Self::AzureOpenAi(azure) => {
                put("api_version", azure.api_version.as_deref());
                if !azure.deployments.is_empty() {
                    let deployments = azure
                        .deployments
                        .iter()
                        .map(|(model, name)| (model.clone(), Value::from(name.as_str())))
                        .collect();
                    object.insert("deployments".to_owned(), Value::Object(deployments));
                }
            }
            Self::OpenAiCompatible(compatible) => {
                put("preset", compatible.preset.map(Preset::as_str));
            }
            Self::OpenRouter(openrouter) => {
                put("http_referer", openrouter.http_referer.as_deref());
                put("x_title", openrouter.x_title.as_deref());
            }
            Self::RovoDev(rovodev) => {
                let format = rovodev.wire_format;
                put(
                    "wire_format",
                    (format != WireFormat::default()).then_some(format.as_str()),
                );
            }
        }
        (!object.is_empty()).then(|| Value::Object(object).to_string())
    }
}

fn unknown(provider: Provider, key: &str, known: &[&str]) -> SettingsError {
    SettingsError::new(
        key,
        format!(
            "unknown setting `{key}` for provider {provider} (known: {})",
            known.join(", ")
        ),
    )
}

fn text<'a>(key: &str, value: &'a Value) -> Result<&'a str, SettingsError> {
    value
        .as_str()
        .ok_or_else(|| SettingsError::new(key, format!("setting `{key}` must be a string")))
}

/// Letters, digits, `.`, `_` and `-`: safe in a URL path or query.
fn is_url_token(value: &str) -> bool {
    value
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

fn parse_azure(settings: &Map<String, Value>) -> Result<AzureSettings, SettingsError> {
    const KNOWN: &[&str] = &["api_version", "deployments"];
    let mut azure = AzureSettings::default();
    for (key, value) in settings {
        match key.as_str() {
            "api_version" => {
                let version = text(key, value)?;
                if version.is_empty() || version.len() > MAX_API_VERSION || !is_url_token(version) {
                    return Err(SettingsError::new(
                        key.as_str(),
                        "`api_version` must be an Azure API version such as 2024-10-21",
                    ));
                }
                azure.api_version = Some(version.to_owned());
            }
            "deployments" => {
                let Value::Object(deployments) = value else {
                    return Err(SettingsError::new(
                        key.as_str(),
                        "`deployments` must be an object of model name to deployment name",
                    ));
                };
                for (model, name) in deployments {
                    let entry = format!("deployments.{model}");
                    let name = text(&entry, name)?;
                    if model.is_empty()
                        || name.is_empty()
                        || name.len() > MAX_DEPLOYMENT_NAME
                        || !is_url_token(name)
                    {
                        return Err(SettingsError::new(
                            entry,
                            "a deployment name is 1 to 64 letters, digits, `.`, `_` or `-`",
                        ));
                    }
                    azure.deployments.insert(model.clone(), name.to_owned());
                }
            }
            _ => return Err(unknown(Provider::AzureOpenAi, key, KNOWN)),
        }
    }
    Ok(azure)
}

fn parse_compatible(settings: &Map<String, Value>) -> Result<CompatibleSettings, SettingsError> {
    let mut compatible = CompatibleSettings::default();
    for (key, value) in settings {
        match key.as_str() {
            "preset" => {
                let name = text(key, value)?;
                let preset = name.parse().map_err(|_| {
                    SettingsError::new(
                        key.as_str(),
                        format!("unknown preset `{name}` (known: {})", Preset::names()),
                    )
                })?;
                compatible.preset = Some(preset);
            }
            _ => return Err(unknown(Provider::OpenAiCompatible, key, &["preset"])),
        }
    }
    Ok(compatible)
}

fn parse_openrouter(settings: &Map<String, Value>) -> Result<OpenRouterSettings, SettingsError> {
    const KNOWN: &[&str] = &["http_referer", "x_title"];
    let mut openrouter = OpenRouterSettings::default();
    for (key, value) in settings {
        let slot = match key.as_str() {
            "http_referer" => &mut openrouter.http_referer,
            "x_title" => &mut openrouter.x_title,
            _ => return Err(unknown(Provider::OpenRouter, key, KNOWN)),
        };
        let value = text(key, value)?;
        *slot = Some(header_value(key, value)?.to_owned());
    }
    Ok(openrouter)
}

fn parse_rovodev(settings: &Map<String, Value>) -> Result<RovoDevSettings, SettingsError> {
    let mut rovodev = RovoDevSettings::default();
    for (key, value) in settings {
        if key != "wire_format" {
            return Err(unknown(Provider::RovoDev, key, &["wire_format"]));
        }
        let name = text(key, value)?;
        rovodev.wire_format = WireFormat::ALL
            .into_iter()
            .find(|format| format.as_str() == name)
            .ok_or_else(|| {
                SettingsError::new(
                    key.as_str(),
                    format!(
                        "unknown wire_format `{name}` (known: openai_chat, anthropic_messages)"
                    ),
                )
            })?;
    }
    Ok(rovodev)
}

/// A value sent as an HTTP header: printable ASCII, not empty, bounded.
pub fn header_value<'a>(key: &str, value: &'a str) -> Result<&'a str, SettingsError> {
    let printable = value.bytes().all(|byte| (b' '..=b'~').contains(&byte));
    if value.trim().is_empty() || value.len() > MAX_HEADER_VALUE || !printable {
        return Err(SettingsError::new(
            key,
            format!(
                "setting `{key}` must be printable ASCII of 1 to {MAX_HEADER_VALUE} characters"
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(provider: Provider, settings: Value) -> Result<ProviderSettings, SettingsError> {
        let Value::Object(object) = settings else {
            panic!("not an object");
        };
        ProviderSettings::parse(provider, &object)
    }

    #[test]
    fn azure_settings_round_trip() {
        let settings = parse(
            Provider::AzureOpenAi,
            json!({"api_version": "2024-10-21", "deployments": {"gpt-4.1": "prod-gpt41"}}),
        )
        .unwrap();
        let ProviderSettings::AzureOpenAi(azure) = &settings else {
            panic!("{settings:?}");
        };
        assert_eq!(azure.deployment("gpt-4.1"), "prod-gpt41");
        assert_eq!(azure.deployment("gpt-4o"), "gpt-4o");
        let text = settings.to_json().unwrap();
        assert_eq!(
            ProviderSettings::from_json(Provider::AzureOpenAi, &text).unwrap(),
            settings
        );
    }

    #[test]
    fn rovo_dev_names_its_wire_format() {
        let settings = parse(
            Provider::RovoDev,
            json!({"wire_format": "anthropic_messages"}),
        )
        .unwrap();
        assert_eq!(
            settings,
            ProviderSettings::RovoDev(RovoDevSettings {
                wire_format: WireFormat::AnthropicMessages
            })
        );
        assert_eq!(
            settings.to_json().unwrap(),
            r#"{"wire_format":"anthropic_messages"}"#
        );
        let default = parse(Provider::RovoDev, json!({"wire_format": "openai_chat"})).unwrap();
        assert_eq!(default.to_json(), None);
        let error = parse(Provider::RovoDev, json!({"wire_format": "grpc"})).unwrap_err();
        assert_eq!(error.param(), "settings.wire_format");
    }

    #[test]
    fn unknown_and_malformed_keys_are_named() {
        let error = parse(Provider::AzureOpenAi, json!({"api_verison": "x"})).unwrap_err();
        assert_eq!(error.param(), "settings.api_verison");
        assert!(error.message.contains("api_version, deployments"));

        let error = parse(
            Provider::AzureOpenAi,
            json!({"deployments": {"gpt-4o": "a/b"}}),
        )
        .unwrap_err();
        assert_eq!(error.param(), "settings.deployments.gpt-4o");

        let error = parse(Provider::AzureOpenAi, json!({"api_version": 2024})).unwrap_err();
        assert_eq!(error.param(), "settings.api_version");

        let error = parse(Provider::OpenAiCompatible, json!({"preset": "vLLM"})).unwrap_err();
        assert_eq!(error.param(), "settings.preset");
        assert!(error.message.contains("vllm"));

        let error = parse(Provider::OpenRouter, json!({"x_title": "a\nb"})).unwrap_err();
        assert_eq!(error.param(), "settings.x_title");

        let error = parse(Provider::OpenAi, json!({"preset": "vllm"})).unwrap_err();
        assert_eq!(error.param(), "settings.preset");

        let error = ProviderSettings::from_json(Provider::OpenRouter, "[1]").unwrap_err();
        assert_eq!(error.param(), "settings");
    }

    #[test]
    fn empty_settings_are_none_and_stored_as_nothing() {
        for provider in Provider::ALL {
            let settings = ProviderSettings::from_json(provider, "").unwrap();
            assert_eq!(settings.to_json(), None, "{provider}");
        }
        assert_eq!(
            ProviderSettings::from_json(Provider::OpenAiCompatible, "{}").unwrap(),
            ProviderSettings::OpenAiCompatible(CompatibleSettings::default())
        );
    }

    #[test]
    fn presets_and_attribution_parse() {
        assert_eq!(
            parse(Provider::OpenAiCompatible, json!({"preset": "groq"})).unwrap(),
            ProviderSettings::OpenAiCompatible(CompatibleSettings {
                preset: Some(Preset::Groq)
            })
        );
        let settings = parse(
            Provider::OpenRouter,
            json!({"http_referer": "https://app.example", "x_title": "Example App"}),
        )
        .unwrap();
        assert_eq!(
            settings.to_json().unwrap(),
            r#"{"http_referer":"https://app.example","x_title":"Example App"}"#
        );
    }
}
