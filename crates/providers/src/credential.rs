//! How an upstream takes the account's credential: one request header,
//! marked sensitive so it is never printed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use tollgate_core::GatewayError;

use crate::call::ProviderRequest;
use crate::exchange;

/// The header an upstream reads the credential from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <credential>` (none when it is empty).
    Bearer,
    /// `Authorization: Basic base64(<email>:<credential>)`: an Atlassian
    /// account email with its API token, as Rovo Dev takes them.
    Basic,
    /// `api-key: <credential>`, as Azure OpenAI takes an API key.
    ApiKey,
    /// `x-api-key: <credential>`, as Anthropic takes one.
    XApiKey,
    /// `x-goog-api-key: <credential>`, as Gemini takes one.
    GoogApiKey,
}

impl Auth {
    /// The header carrying `request`'s credential; none for a key or token
    /// that is empty.
    pub(crate) fn header(
        self,
        request: &ProviderRequest,
    ) -> Result<Option<(HeaderName, HeaderValue)>, GatewayError> {
        let (name, value) = match self {
            Auth::Basic => (
                AUTHORIZATION,
                format!(
                    "Basic {}",
                    BASE64.encode(format!("{}:{}", request.email, request.credential))
                ),
            ),
            _ if request.credential.is_empty() => return Ok(None),
            Auth::Bearer => (AUTHORIZATION, format!("Bearer {}", request.credential)),
            Auth::ApiKey => (
                HeaderName::from_static("api-key"),
                request.credential.clone(),
            ),
            Auth::XApiKey => (
                HeaderName::from_static("x-api-key"),
                request.credential.clone(),
            ),
            Auth::GoogApiKey => (
                HeaderName::from_static("x-goog-api-key"),
                request.credential.clone(),
            ),
        };
        Ok(Some((name, exchange::secret_header(value)?)))
    }
}
