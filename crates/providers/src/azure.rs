//! Azure OpenAI: OpenAI's wire format at Azure's URLs, with the key in the
//! `api-key` header.
//!
//! An account whose settings name an `api_version` is called at its
//! deployment's classic URL, `{base_url}/openai/deployments/{deployment}/
//! chat/completions?api-version={api_version}`; one without is called at
//! the v1 path, `{base_url}/openai/v1/chat/completions`, with the
//! deployment as the body's `model`. The deployment serving a model is the
//! one the settings map it to, else the model's own name. The base URL is
//! the resource's endpoint (`https://{resource}.openai.azure.com`).
//!
//! Azure's errors are OpenAI's envelope (`{"error":{"code","message",
//! "status","innererror"}}`), read by [`crate::errors`]: a 400 with code
//! `content_filter` is a content-policy refusal, and a 429's
//! `retry-after-ms` / `retry-after` set the cooldown. An answer whose every
//! choice ended with `finish_reason: content_filter` (the filter withheld
//! the completion) is a content-policy refusal too.

use std::borrow::Cow;

use serde::Deserialize;
use tollgate_core::provider_settings::AzureSettings;
use tollgate_core::{ErrorKind, GatewayError};

use crate::call::Reply;
use crate::credential::Auth;
use crate::openai::{CapField, Upstream};

/// Where and how to call the deployment that serves `model`.
pub(crate) fn upstream<'a>(
    base_url: &str,
    settings: &AzureSettings,
    model: &'a str,
) -> Result<Upstream<'a>, GatewayError> {
    let endpoint = endpoint(base_url);
    let deployment = settings.deployment(model);
    let (url, body_model) = match &settings.api_version {
        Some(api_version) => (
            format!(
                "{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={api_version}"
            ),
            Cow::Borrowed(model),
        ),
        None => (
            format!("{endpoint}/openai/v1/chat/completions"),
            Cow::Owned(deployment.to_owned()),
        ),
    };
    if !is_path_segment(deployment) {
        return Err(GatewayError::new(
            ErrorKind::Unavailable,
            "the model's Azure deployment name is not usable in a URL",
        ));
    }
    Ok(Upstream {
        url,
        auth: Auth::ApiKey,
        cap_field: CapField::MaxCompletionTokens,
        stream_usage_option: true,
        model: body_model,
        headers: Vec::new(),
    })
}

/// The resource endpoint, also when the account's base URL was given with
/// the `/openai` or `/openai/v1` path.
fn endpoint(base_url: &str) -> &str {
    let base = base_url.trim_end_matches('/');
    let base = base.strip_suffix("/openai/v1").unwrap_or(base);
    base.strip_suffix("/openai").unwrap_or(base)
}

/// A model name used as its own deployment must stay one path segment.
fn is_path_segment(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

#[derive(Deserialize)]
struct ReplyProbe {
    #[serde(default)]
    choices: Vec<ChoiceProbe>,
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[serde(default)]
    finish_reason: Option<String>,
}

/// A reply whose every choice the content filter stopped is a refusal.
pub(crate) fn check_reply(reply: Reply) -> Result<Reply, GatewayError> {
    let filtered = serde_json::from_slice::<ReplyProbe>(&reply.body).is_ok_and(|probe| {
        !probe.choices.is_empty()
            && probe
                .choices
                .iter()
                .all(|choice| choice.finish_reason.as_deref() == Some("content_filter"))
    });
    if filtered {
        return Err(GatewayError::new(
            ErrorKind::ContentPolicy,
            "the provider's content filter withheld the answer",
        ));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::BTreeMap;

    use crate::usage::Usage;

    fn settings(api_version: Option<&str>) -> AzureSettings {
        AzureSettings {
            api_version: api_version.map(str::to_owned),
            deployments: BTreeMap::from([("gpt-4o".to_owned(), "prod-4o".to_owned())]),
        }
    }

    #[test]
    fn classic_urls_name_the_deployment_and_version() {
        let settings = settings(Some("2024-10-21"));
        let call = upstream("https://res.openai.azure.com/", &settings, "gpt-4o").unwrap();
        assert_eq!(
            call.url,
            "https://res.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(call.model, "gpt-4o");
        assert_eq!(call.auth, Auth::ApiKey);
        let call = upstream("https://res.openai.azure.com", &settings, "gpt-4.1").unwrap();
        assert!(call.url.contains("/deployments/gpt-4.1/"));
    }

    #[test]
    fn the_v1_path_puts_the_deployment_in_the_body() {
        let settings = settings(None);
        for base in [
            "https://res.openai.azure.com",
            "https://res.openai.azure.com/openai",
            "https://res.openai.azure.com/openai/v1/",
        ] {
            let call = upstream(base, &settings, "gpt-4o").unwrap();
            assert_eq!(
                call.url,
                "https://res.openai.azure.com/openai/v1/chat/completions"
            );
            assert_eq!(call.model, "prod-4o");
        }
    }

    #[test]
    fn a_model_that_cannot_be_a_deployment_name_is_refused() {
        let settings = settings(Some("2024-10-21"));
        let error = upstream("https://r", &settings, "a/b").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unavailable);
    }

    #[test]
    fn a_filtered_answer_is_a_content_policy_refusal() {
        let reply = |body: &'static str| Reply {
            body: Bytes::from_static(body.as_bytes()),
            usage: Usage::default(),
        };
        let error = check_reply(reply(
            r#"{"choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":null}}]}"#,
        ))
        .unwrap_err();
        assert_eq!(error.kind, ErrorKind::ContentPolicy);
        assert!(check_reply(reply(r#"{"choices":[{"finish_reason":"stop"}]}"#)).is_ok());
        assert!(check_reply(reply(r#"{"choices":[]}"#)).is_ok());
    }
}
