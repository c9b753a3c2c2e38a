//! The entry point the worker uses: one pooled HTTP client shared by every
//! adapter, and the choice of adapter by provider name.

use std::borrow::Cow;
use std::time::Duration;

use tollgate_core::{ErrorKind, GatewayError, Provider};

use http::HeaderValue;

use crate::anthropic::AnthropicAdapter;
use crate::call::{EventStream, ProviderRequest, Reply};
use crate::client::{ClientSettings, HttpClient};
use crate::gemini::GeminiAdapter;
use crate::mock::{MockBehavior, MockProvider};
use crate::ollama::OllamaAdapter;
use crate::openai::{Auth, CapField, OpenAiAdapter, Upstream};

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
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            max_body_bytes: 32 << 20,
            mock: MockBehavior::default(),
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
}

/// Which adapter serves a request, and how it reaches its upstream.
enum Adapter<'a> {
    OpenAi {
        base_url: Cow<'a, str>,
        auth: Auth,
        cap_field: CapField,
    },
    Anthropic {
        base_url: Cow<'a, str>,
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
        })
    }

    /// One complete answer.
    pub async fn call(&self, request: &ProviderRequest) -> Result<Reply, GatewayError> {
        match adapter(request)? {
            Adapter::OpenAi {
                base_url,
                auth,
                cap_field,
            } => {
                let upstream = Upstream {
                    base_url: &base_url,
                    auth,
                    cap_field,
                };
                self.openai.call(upstream, request).await
            }
            Adapter::Anthropic { base_url } => self.anthropic.call(&base_url, request).await,
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
        match adapter(request)? {
            Adapter::OpenAi {
                base_url,
                auth,
                cap_field,
            } => {
                let upstream = Upstream {
                    base_url: &base_url,
                    auth,
                    cap_field,
                };
                self.openai.call_stream(upstream, request).await
            }
            Adapter::Anthropic { base_url } => self.anthropic.call_stream(&base_url, request).await,
            Adapter::Gemini { base_url } => self.gemini.call_stream(&base_url, request).await,
            Adapter::Ollama { base_url } => self.ollama.call_stream(&base_url, request).await,
            Adapter::Mock => self.mock.call_stream(request).await,
        }
    }
}

fn adapter(request: &ProviderRequest) -> Result<Adapter<'_>, GatewayError> {
    let provider: Provider = request.provider.parse().map_err(|_| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "the account names an unknown provider",
        )
    })?;
    let base_url = || {
        if request.base_url.is_empty() {
            provider
                .default_base_url()
                .map(Cow::Borrowed)
                .ok_or_else(|| {
                    GatewayError::new(ErrorKind::Unavailable, "the account has no base URL")
                })
        } else {
            Ok(Cow::Borrowed(request.base_url.as_str()))
        }
    };
    match provider {
        Provider::OpenAi => Ok(Adapter::OpenAi {
            base_url: base_url()?,
            auth: Auth::Bearer,
            cap_field: CapField::MaxCompletionTokens,
        }),
        // A Gemini account whose base URL is Google's OpenAI-compatible
        // endpoint keeps using it; any other speaks Gemini's own API.
        Provider::Gemini if !request.base_url.trim_end_matches('/').ends_with("/openai") => {
            Ok(Adapter::Gemini {
                base_url: base_url()?,
            })
        }
        // An Ollama account whose base URL ends in `/v1` (Ollama's
        // OpenAI-compatible endpoint) keeps using it; any other speaks
        // Ollama's own API.
        Provider::Ollama if !request.base_url.trim_end_matches('/').ends_with("/v1") => {
            Ok(Adapter::Ollama {
                base_url: base_url()?,
            })
        }
        Provider::OpenAiCompatible | Provider::OpenRouter | Provider::Ollama | Provider::Gemini => {
            Ok(Adapter::OpenAi {
                base_url: base_url()?,
                auth: Auth::Bearer,
                cap_field: CapField::MaxTokens,
            })
        }
        // Rovo Dev accounts are an Atlassian email with an API token; the
        // endpoint (the account's base URL) takes OpenAI Chat Completions.
        Provider::RovoDev => {
            if request.email.is_empty() || request.credential.is_empty() {
                return Err(GatewayError::new(
                    ErrorKind::Unavailable,
                    "the Rovo Dev account needs an email and an API token",
                ));
            }
            Ok(Adapter::OpenAi {
                base_url: base_url()?,
                auth: Auth::Basic,
                cap_field: CapField::MaxTokens,
            })
        }
        Provider::Anthropic => Ok(Adapter::Anthropic {
            base_url: base_url()?,
        }),
        Provider::Mock => Ok(Adapter::Mock),
        Provider::AzureOpenAi => Err(GatewayError::new(
            ErrorKind::Unavailable,
            format!("provider {provider} is not supported by this worker yet"),
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
        }
    }

    #[test]
    fn routes_by_provider_with_default_base_urls() {
        let adapter_of = |provider, base| match adapter(&request(provider, base)) {
            Ok(Adapter::OpenAi { base_url, .. }) => Ok(base_url.into_owned()),
            Ok(
                Adapter::Anthropic { base_url }
                | Adapter::Gemini { base_url }
                | Adapter::Ollama { base_url },
            ) => Ok(base_url.into_owned()),
            Ok(Adapter::Mock) => Ok("mock".to_owned()),
            Err(error) => Err(error.kind),
        };
        assert_eq!(
            adapter_of("openai", "").unwrap(),
            "https://api.openai.com/v1"
        );
        assert_eq!(
            adapter_of("gemini", "").unwrap(),
            "https://generativelanguage.googleapis.com"
        );
        let shim = "https://generativelanguage.googleapis.com/v1beta/openai";
        assert!(matches!(
            adapter(&request("gemini", shim)),
            Ok(Adapter::OpenAi { .. })
        ));
        assert_eq!(
            adapter_of("ollama", "http://h:1/v1").unwrap(),
            "http://h:1/v1"
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
    fn rovo_dev_takes_basic_auth_and_needs_a_base_url() {
        let mut rovo = request("rovodev", "http://h:1/v1");
        rovo.email = "dev@example.com".into();
        rovo.credential = "token".into();
        assert!(matches!(
            adapter(&rovo),
            Ok(Adapter::OpenAi {
                auth: Auth::Basic,
                ..
            })
        ));
        rovo.base_url.clear();
        assert_eq!(
            adapter(&rovo).err().map(|error| error.kind),
            Some(ErrorKind::Unavailable)
        );
        let openai = request("openai", "");
        assert!(matches!(
            adapter(&openai),
            Ok(Adapter::OpenAi {
                auth: Auth::Bearer,
                ..
            })
        ));
    }

    #[test]
    fn builds_the_shared_client() {
        assert!(Providers::new(ProvidersConfig::default()).is_ok());
    }
}
