//! `Debug` for the messages that carry secrets: every field but the secret,
//! which shows only whether it is set.

use std::fmt;

use crate::v1::{AccountSpec, AccountUpdate, CreatedKey, LeaseGrant, ProviderRequest};

fn presence(secret: &str) -> &'static str {
    if secret.is_empty() {
        "<empty>"
    } else {
        "<redacted>"
    }
}

impl fmt::Debug for LeaseGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseGrant")
            .field("lease_id", &self.lease_id)
            .field("account_id", &self.account_id)
            .field("provider", &self.provider)
            .field("upstream_model", &self.upstream_model)
            .field("base_url", &self.base_url)
            .field("credential", &presence(&self.credential))
            .field("email", &self.email)
            .field("reserved_tokens", &self.reserved_tokens)
            .field("model_label", &self.model_label)
            .field("rate_limit", &self.rate_limit)
            .field("ttl_ms", &self.ttl_ms)
            .field("completion_cap", &self.completion_cap)
            .field("fallback", &self.fallback)
            .field("first_byte_timeout_ms", &self.first_byte_timeout_ms)
            .field("deadline_ms", &self.deadline_ms)
            .field("fallback_classes", &self.fallback_classes)
            .field("settings", &self.settings)
            .finish()
    }
}

impl fmt::Debug for ProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRequest")
            .field("request_id", &self.request_id)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("credential", &presence(&self.credential))
            .field("email", &self.email)
            .field("upstream_model", &self.upstream_model)
            .field("body_bytes", &self.body.len())
            .field("timeout_ms", &self.timeout_ms)
            .field("model_label", &self.model_label)
            .field("completion_cap", &self.completion_cap)
            .field("settings", &self.settings)
            .finish()
    }
}

impl fmt::Debug for AccountSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountSpec")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("email", &self.email)
            .field("secret", &presence(&self.secret))
            .field("base_url", &self.base_url)
            .field("profile", &self.profile)
            .field("models", &self.models)
            .field("daily_token_limit", &self.daily_token_limit)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("priority", &self.priority)
            .field("weight", &self.weight)
            .field("enabled", &self.enabled)
            .field("settings", &self.settings)
            .finish()
    }
}

impl fmt::Debug for AccountUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountUpdate")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("email", &self.email)
            .field("secret", &self.secret.as_deref().map(presence))
            .field("base_url", &self.base_url)
            .field("profile", &self.profile)
            .field("models", &self.models)
            .field("daily_token_limit", &self.daily_token_limit)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("priority", &self.priority)
            .field("weight", &self.weight)
            .field("enabled", &self.enabled)
            .field("settings", &self.settings)
            .field("clear", &self.clear)
            .finish()
    }
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .field("secret", &presence(&self.secret))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_debug_output() {
        let grant = LeaseGrant {
            credential: "sk-live-very-secret".into(),
            ..LeaseGrant::default()
        };
        let request = ProviderRequest {
            credential: "sk-live-very-secret".into(),
            ..ProviderRequest::default()
        };
        let spec = AccountSpec {
            secret: "sk-live-very-secret".into(),
            ..AccountSpec::default()
        };
        let update = AccountUpdate {
            secret: Some("sk-live-very-secret".into()),
            ..AccountUpdate::default()
        };
        let created = CreatedKey {
            secret: "tg-live-very-secret".into(),
            ..CreatedKey::default()
        };
        for text in [
            format!("{grant:?}"),
            format!("{request:?}"),
            format!("{spec:?}"),
            format!("{update:?}"),
            format!("{created:?}"),
        ] {
            assert!(!text.contains("very-secret"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }
}
