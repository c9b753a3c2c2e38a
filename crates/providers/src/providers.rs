//! The entry point the worker uses: one pooled HTTP client shared by every
//! adapter, and the choice of adapter by provider name.

use std::borrow::Cow;
use std::time::Duration;

use tollgate_core::provider_settings::{OpenRouterSettings, WireFormat};
use tollgate_core::{ErrorKind, GatewayError, Provider, ProviderSettings};

use http::HeaderValue;

use crate::anthropic::AnthropicAdapter;
use crate::azure;
use crate::call::{EventStream, ProviderRequest, Reply};
use crate::client::{ClientSettings, HttpClient};
use crate::credential::Auth;
use crate::gemini::GeminiAdapter;
use crate::mock::{MockBehavior, MockProvider};
use crate::ollama::OllamaAdapter;
use crate::openai::{CapField, OpenAiAdapter, Upstream};
use crate::openrouter;

/// Settings of the shared HTTP client and of the built-in mock.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    /// Limit on opening a TCP (and TLS) connection to an upstream.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// The largest non-streamed answer accepted.
    pub max_body_bytes: usize,
    /// How the in-process `mock` provider behaves.
    pub mock: MockBehavior,
    /// OpenRouter attribution sent for accounts whose settings give none.
    pub openrouter_attribution: OpenRouterSettings,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            max_body_bytes: 32 << 20,
            mock: MockBehavior::default(),
            openrouter_attribution: OpenRouterSettings::default(),
        }
    }
}

/// The HTTP client could not be set up (TLS backend, system settings).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the upstream HTTP client: {0}")]
pub struct ClientBuildError(#[source] rustls::Error);

/// Idle connections kept per upstream origin: enough for the concurrency
/// one worker sees; more are closed when their call ends.
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// Every adapter, ready to call. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Providers {
    openai: OpenAiAdapter,
    anthropic: AnthropicAdapter,
    gemini: GeminiAdapter,
    ollama: OllamaAdapter,
    mock: MockProvider,
    openrouter_attribution: OpenRouterSettings,
}

/// Which adapter serves a request, and how it reaches its upstream.
enum Adapter<'a> {
    OpenAi(Upstream<'a>),
    /// OpenAI's wire format at Azure's URLs (see [`crate::azure`]).
    Azure(Upstream<'a>),
    /// Anthropic's Messages API (Anthropic, or a Rovo Dev endpoint that
    /// speaks it), and the header the credential goes in.
    Anthropic {
        base_url: Cow<'a, str>,
        auth: Auth,
    },
    Gemini {
        base_url: Cow<'a, str>,
    },
    Ollama {
        base_url: Cow<'a, str>,
    },
    Mock,
}

impl Providers {
    pub fn new(config: ProvidersConfig) -> Result<Self, ClientBuildError> {
        let client = HttpClient::new(ClientSettings {
            connect_timeout: config.connect_timeout,
            idle_timeout: config.pool_idle_timeout,
            max_idle_per_origin: MAX_IDLE_PER_ORIGIN,
            user_agent: HeaderValue::from_static(concat!("tollgate/", env!("CARGO_PKG_VERSION"))),
        })
        .map_err(ClientBuildError)?;
        Ok(Self {
            openai: OpenAiAdapter::new(client.clone(), config.max_body_bytes),
            anthropic: AnthropicAdapter::new(client.clone(), config.max_body_bytes),
            gemini: GeminiAdapter::new(client.clone(), config.max_body_bytes),
            ollama: OllamaAdapter::new(client, config.max_body_bytes),
            mock: MockProvider::new(config.mock),
            openrouter_attribution: config.openrouter_attribution,
        })
    }

    /// One complete answer.
    pub async fn call(&self, request: &ProviderRequest) -> Result<Reply, GatewayError> {
        match adapter(request, &self.openrouter_attribution)? {
            Adapter::OpenAi(upstream) => self.openai.call(&upstream, request).await,
            Adapter::Azure(upstream) => {
                azure::check_reply(self.openai.call(&upstream, request).await?)
            }
            Adapter::Anthropic { base_url, auth } => {
                self.anthropic.call(&base_url, auth, request).await
            }
            Adapter::Gemini { base_url } => self.gemini.call(&base_url, request).await,
            Adapter::Ollama { base_url } => self.ollama.call(&base_url, request).await,
            Adapter::Mock => self.mock.call(request).await,
        }
    }

    /// A streamed answer. An error before the stream starts is returned
    /// here; one after it is the stream's last item.
    pub async fn call_stream(
        &self,
        request: &ProviderRequest,
    ) -> Result<EventStream, GatewayError> {
        match adapter(request, &self.openrouter_attribution)? {
            Adapter::OpenAi(upstream) | Adapter::Azure(upstream) => {
                self.openai.call_stream(&upstream, request).await
            }
            Adapter::Anthropic { base_url, auth } => {
                self.anthropic.call_stream(&base_url, auth, request).await
            }
            Adapter::Gemini { base_url } => self.gemini.call_stream(&base_url, request).await,
            Adapter::Ollama { base_url } => self.ollama.call_stream(&base_url, request).await,
            Adapter::Mock => self.mock.call_stream(request).await,
        }
    }
}

fn adapter<'a>(
    request: &'a ProviderRequest,
    openrouter_attribution: &OpenRouterSettings,
) -> Result<Adapter<'a>, GatewayError> {
    let provider: Provider = request.provider.parse().map_err(|_| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "the account names an unknown provider",
        )
    })?;
    let settings = ProviderSettings::from_json(provider, &request.settings).map_err(|_| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "the account's settings are not valid",
        )
    })?;
    let base_url = |default: Option<&'static str>| {
        if request.base_url.is_empty() {
            default.map(Cow::Borrowed).ok_or_else(|| {
                GatewayError::new(ErrorKind::Unavailable, "the account has no base URL")
            })
        } else {
            Ok(Cow::Borrowed(request.base_url.as_str()))
        }
    };
    let default_base_url = || base_url(provider.default_base_url());
    let model = request.upstream_model.as_str();
    let at = |auth, cap_field| -> Result<Upstream<'a>, GatewayError> {
        Ok(Upstream::at(&default_base_url()?, auth, cap_field, model))
    };
    match (provider, settings) {
        (Provider::OpenAi, _) => Ok(Adapter::OpenAi(at(
            Auth::Bearer,
            CapField::MaxCompletionTokens,
        )?)),
        // A Gemini account whose base URL is Google's OpenAI-compatible
        // endpoint keeps using it; any other speaks Gemini's own API.
        (Provider::Gemini, _) if !request.base_url.trim_end_matches('/').ends_with("/openai") => {
            Ok(Adapter::Gemini {
                base_url: default_base_url()?,
            })
        }
        // An Ollama account whose base URL ends in `/v1` (Ollama's
        // OpenAI-compatible endpoint) keeps using it; any other speaks
        // Ollama's own API.
        (Provider::Ollama, _) if !request.base_url.trim_end_matches('/').ends_with("/v1") => {
            Ok(Adapter::Ollama {
                base_url: default_base_url()?,
            })
        }
        (Provider::Ollama | Provider::Gemini, _) => {
            Ok(Adapter::OpenAi(at(Auth::Bearer, CapField::MaxTokens)?))
        }
        (Provider::OpenAiCompatible, ProviderSettings::OpenAiCompatible(compatible)) => {
            let quirks = compatible.preset.map(|preset| preset.quirks());
            let base_url = base_url(quirks.map(|quirks| quirks.base_url))?;
            let cap_field = quirks.map_or(CapField::MaxTokens, |quirks| quirks.cap_field);
            let mut upstream = Upstream::at(&base_url, Auth::Bearer, cap_field, model);
            upstream.stream_usage_option = quirks.is_none_or(|quirks| quirks.stream_usage_option);
            Ok(Adapter::OpenAi(upstream))
        }
        (Provider::OpenRouter, ProviderSettings::OpenRouter(attribution)) => {
            let mut upstream = at(Auth::Bearer, CapField::MaxTokens)?;
            upstream.headers =
                openrouter::attribution_headers(&attribution, openrouter_attribution);
            Ok(Adapter::OpenAi(upstream))
        }
        (Provider::AzureOpenAi, ProviderSettings::AzureOpenAi(azure)) => {
            let base_url = base_url(None)?;
            Ok(Adapter::Azure(azure::upstream(&base_url, &azure, model)?))
        }
        // Rovo Dev accounts are an Atlassian email with an API token; the
        // endpoint (the account's base URL) takes OpenAI Chat Completions,
        // or Anthropic Messages when its settings say so.
        (Provider::RovoDev, ProviderSettings::RovoDev(rovodev)) => {
            if request.email.is_empty() || request.credential.is_empty() {
                return Err(GatewayError::new(
                    ErrorKind::Unavailable,
                    "the Rovo Dev account needs an email and an API token",
                ));
            }
            match rovodev.wire_format {
                WireFormat::OpenAiChat => {
                    Ok(Adapter::OpenAi(at(Auth::Basic, CapField::MaxTokens)?))
                }
                WireFormat::AnthropicMessages => Ok(Adapter::Anthropic {
                    base_url: default_base_url()?,
                    auth: Auth::Basic,
                }),
            }
        }
        (Provider::Anthropic, _) => Ok(Adapter::Anthropic {
            base_url: default_base_url()?,
            auth: Auth::XApiKey,
        }),
        (Provider::Mock, _) => Ok(Adapter::Mock),
        (
            Provider::OpenAiCompatible
            | Provider::OpenRouter
            | Provider::AzureOpenAi
            | Provider::RovoDev,
            _,
        ) => Err(GatewayError::new(
            ErrorKind::Unavailable,
            "the account's settings are not valid",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn request(provider: &str, base_url: &str) -> ProviderRequest {
        ProviderRequest {
            provider: provider.into(),
            base_url: base_url.into(),
            credential: String::new(),
            email: String::new(),
            upstream_model: "m".into(),
            body: Bytes::new(),
            timeout: Duration::from_secs(1),
            completion_cap: None,
            settings: String::new(),
        }
    }

    fn no_default() -> OpenRouterSettings {
        OpenRouterSettings::default()
    }

    /// The URL a request goes to, "mock", or the error's kind.
    fn url_of(request: &ProviderRequest) -> Result<String, ErrorKind> {
        match adapter(request, &no_default()) {
            Ok(Adapter::OpenAi(upstream) | Adapter::Azure(upstream)) => Ok(upstream.url),
            Ok(
                Adapter::Anthropic { base_url, .. }
                | Adapter::Gemini { base_url }
                | Adapter::Ollama { base_url },
            ) => Ok(base_url.into_owned()),
            Ok(Adapter::Mock) => Ok("mock".to_owned()),
            Err(error) => Err(error.kind),
        }
    }

    #[test]
    fn routes_by_provider_with_default_base_urls() {
        let adapter_of = |provider, base| match adapter(&request(provider, base), &no_default()) {
            Ok(Adapter::OpenAi(upstream) | Adapter::Azure(upstream)) => Ok(upstream.url),
            Ok(
                Adapter::Anthropic { base_url, .. }
                | Adapter::Gemini { base_url }
                | Adapter::Ollama { base_url },
            ) => Ok(base_url.into_owned()),
            Ok(Adapter::Mock) => Ok("mock".to_owned()),
            Err(error) => Err(error.kind),
        };
        assert_eq!(
            adapter_of("openai", "").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            adapter_of("gemini", "").unwrap(),
            "https://generativelanguage.googleapis.com"
        );
        let shim = "https://generativelanguage.googleapis.com/v1beta/openai";
        assert!(matches!(
            adapter(&request("gemini", shim), &no_default()),
            Ok(Adapter::OpenAi(_))
        ));
        assert_eq!(
            adapter_of("ollama", "http://h:1/v1").unwrap(),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(adapter_of("mock", "").unwrap(), "mock");
        assert_eq!(
            adapter_of("openai_compatible", ""),
            Err(ErrorKind::Unavailable)
        );
        assert_eq!(
            adapter_of("anthropic", "").unwrap(),
            "https://api.anthropic.com"
        );
        assert_eq!(adapter_of("azure_openai", ""), Err(ErrorKind::Unavailable));
        assert_eq!(
            adapter_of("rovodev", "http://h:1/v1"),
            Err(ErrorKind::Unavailable)
        );
        assert_eq!(adapter_of("nope", ""), Err(ErrorKind::Unavailable));
    }

    #[test]
    fn presets_give_base_url_cap_field_and_stream_usage() {
        let mut vllm = request("openai_compatible", "");
        vllm.settings = r#"{"preset":"vllm"}"#.into();
        let Ok(Adapter::OpenAi(upstream)) = adapter(&vllm, &no_default()) else {
            panic!("vllm");
        };
        assert_eq!(upstream.url, "http://127.0.0.1:8000/v1/chat/completions");
        assert_eq!(upstream.cap_field, CapField::MaxTokens);
        assert!(upstream.stream_usage_option);

        let mut mistral = request("openai_compatible", "https://eu.example/v1");
        mistral.settings = r#"{"preset":"mistral"}"#.into();
        let Ok(Adapter::OpenAi(upstream)) = adapter(&mistral, &no_default()) else {
            panic!("mistral");
        };
        // The account's own base URL wins over the preset's.
        assert_eq!(upstream.url, "https://eu.example/v1/chat/completions");
        assert!(!upstream.stream_usage_option);

        let mut groq = request("openai_compatible", "");
        groq.settings = r#"{"preset":"groq"}"#.into();
        let Ok(Adapter::OpenAi(upstream)) = adapter(&groq, &no_default()) else {
            panic!("groq");
        };
        assert_eq!(upstream.cap_field, CapField::MaxCompletionTokens);

        // No preset: the account's base URL, max_tokens, usage asked for.
        let generic = request("openai_compatible", "http://h:2/v1");
        let Ok(Adapter::OpenAi(upstream)) = adapter(&generic, &no_default()) else {
            panic!("generic");
        };
        assert_eq!(upstream.cap_field, CapField::MaxTokens);
        assert!(upstream.stream_usage_option);
    }

    #[test]
    fn azure_accounts_use_their_settings() {
        let mut azure = request("azure_openai", "https://res.openai.azure.com");
        azure.settings = r#"{"api_version":"2024-10-21","deployments":{"m":"dep-m"}}"#.into();
        assert_eq!(
            url_of(&azure).unwrap(),
            "https://res.openai.azure.com/openai/deployments/dep-m/chat/completions?api-version=2024-10-21"
        );
        azure.settings.clear();
        assert_eq!(
            url_of(&azure).unwrap(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        // Settings of another provider's shape are not usable.
        azure.settings = r#"{"preset":"vllm"}"#.into();
        assert_eq!(url_of(&azure), Err(ErrorKind::Unavailable));
    }

    #[test]
    fn openrouter_sends_attribution_from_settings_or_the_default() {
        let mut openrouter = request("openrouter", "");
        openrouter.settings = r#"{"x_title":"Team App"}"#.into();
        let default = OpenRouterSettings {
            http_referer: Some("https://gateway.example".into()),
            x_title: Some("Gateway".into()),
        };
        let Ok(Adapter::OpenAi(upstream)) = adapter(&openrouter, &default) else {
            panic!("openrouter");
        };
        let headers: Vec<_> = upstream
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("http-referer", "https://gateway.example"),
                ("x-title", "Team App")
            ]
        );
    }

    #[test]
    fn rovo_dev_takes_basic_auth_and_needs_a_base_url() {
        let mut rovo = request("rovodev", "http://h:1/v1");
        rovo.email = "dev@example.com".into();
        rovo.credential = "token".into();
        assert!(matches!(
            adapter(&rovo, &no_default()),
            Ok(Adapter::OpenAi(Upstream {
                auth: Auth::Basic,
                ..
            }))
        ));
        rovo.settings = r#"{"wire_format":"anthropic_messages"}"#.into();
        assert!(matches!(
            adapter(&rovo, &no_default()),
            Ok(Adapter::Anthropic {
                auth: Auth::Basic,
                ..
            })
        ));
        rovo.base_url.clear();
        assert_eq!(url_of(&rovo), Err(ErrorKind::Unavailable));
        assert!(matches!(
            adapter(&request("openai", ""), &no_default()),
            Ok(Adapter::OpenAi(Upstream {
                auth: Auth::Bearer,
                ..
            }))
        ));
    }

    #[test]
    fn builds_the_shared_client() {
        assert!(Providers::new(ProvidersConfig::default()).is_ok());
    }
}
