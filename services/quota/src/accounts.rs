//! Provider accounts: admin reads and writes. Secrets are sealed before
//! they reach the store and never read back: reads show a mask, plus
//! today's token counters.

use secrecy::ExposeSecret;
use tollgate_control_store::crypto::mask;
use tollgate_control_store::{AccountPatch, AccountRecord, NewAccount, NewAuditEntry};
use tollgate_core::catalog::Rates;
use tollgate_core::presets::Preset;
use tollgate_core::provider_settings::CompatibleSettings;
use tollgate_core::{ErrorKind, GatewayError, Provider, ProviderSettings};
use tollgate_proto::v1;
use tracing::warn;

use crate::errors::{from_control, from_counters, from_crypto};
use crate::validate;
use crate::{EnsuredAccount, QuotaService, audit};

/// The daily token limit a Rovo Dev account gets when none is given.
pub const ROVODEV_DEFAULT_DAILY_TOKENS: u64 = 20_000_000;

/// Optional account fields an `AccountUpdate.clear` may name.
const CLEARABLE: [&str; 8] = [
    "email",
    "secret",
    "base_url",
    "daily_token_limit",
    "rpm",
    "tpm",
    "settings",
    "prices",
];

/// The rules that span fields, checked on every account about to be
/// stored: a secret when the provider (or the account's preset) needs
/// one, a base URL when neither the provider nor the preset has a default.
fn check_complete(
    provider: Provider,
    name: &str,
    has_secret: bool,
    base_url: Option<&str>,
    email: Option<&str>,
    settings: Option<&str>,
) -> Result<(), GatewayError> {
    if name.is_empty() {
        return Err(GatewayError::invalid("name", "name must not be empty"));
    }
    if provider == Provider::RovoDev && email.is_none() {
        return Err(GatewayError::invalid(
            "email",
            "a rovodev account needs the email its API token belongs to",
        ));
    }
    let preset = preset_of(provider, settings).map(Preset::quirks);
    if needs_secret(provider, settings) && !has_secret {
        return Err(GatewayError::invalid(
            "secret",
            format!("a {provider} account needs a secret"),
        ));
    }
    if base_url.is_none() && provider.default_base_url().is_none() && preset.is_none() {
        return Err(GatewayError::invalid(
            "base_url",
            format!("a {provider} account needs a base_url"),
        ));
    }
    Ok(())
}

fn provider(name: &str) -> Result<Provider, GatewayError> {
    name.trim().parse().map_err(|_| {
        let known: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        GatewayError::invalid(
            "provider",
            format!("provider must be one of: {}", known.join(", ")),
        )
    })
}

fn optional_text(
    param: &str,
    value: &str,
    normalize: fn(&str, &str) -> Result<String, GatewayError>,
) -> Result<Option<String>, GatewayError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        normalize(param, value).map(Some)
    }
}

/// Checks an account built in code (not from the admin API) the same way.
pub(crate) fn check_new(account: &NewAccount) -> Result<(), GatewayError> {
    validate::name("name", &account.name)?;
    validate::profile("profile", &account.profile)?;
    validate::models("models", &account.models)?;
    if let Some(url) = &account.base_url {
        validate::base_url("base_url", url)?;
    }
    validate::positive("daily_token_limit", account.daily_token_limit)?;
    if let Some(settings) = &account.settings {
        validate::settings(account.provider, settings)?;
    }
    check_complete(
        account.provider,
        account.name.trim(),
        account.sealed_secret.is_some(),
        account.base_url.as_deref(),
        account.email.as_deref(),
        account.settings.as_deref(),
    )
}

/// The preset an `openai_compatible` account's settings name, if any.
/// Whether an account of `provider` with `settings` needs a secret to be
/// usable: a local preset's server runs without a key, as Ollama does.
pub(crate) fn needs_secret(provider: Provider, settings: Option<&str>) -> bool {
    preset_of(provider, settings).map_or(provider.needs_secret(), |preset| {
        preset.quirks().needs_secret
    })
}

fn preset_of(provider: Provider, settings: Option<&str>) -> Option<Preset> {
    match ProviderSettings::from_json(provider, settings.unwrap_or_default()) {
        Ok(ProviderSettings::OpenAiCompatible(CompatibleSettings { preset })) => preset,
        _ => None,
    }
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, format!("account {id:?} not found"))
}

/// An optional text field of an update: set, cleared (by `clear` or by an
/// empty value), or untouched.
fn text_update(
    param: &str,
    value: Option<&str>,
    cleared: &[&str],
    normalize: fn(&str, &str) -> Result<String, GatewayError>,
) -> Result<Option<Option<String>>, GatewayError> {
    Ok(match validate::set_or_clear(param, value, cleared)? {
        Some(Some(value)) => Some(optional_text(param, value, normalize)?),
        other => other.map(|_| None),
    })
}

impl QuotaService {
    /// Checks a spec and turns it into an account to insert, sealing its secret.
    fn account_from_spec(&self, spec: v1::AccountSpec) -> Result<NewAccount, GatewayError> {
        let provider = provider(&spec.provider)?;
        let name = validate::name("name", &spec.name)?;
        let secret = spec.secret.trim();
        let account = NewAccount {
            provider,
            name: if name.is_empty() {
                provider.as_str().to_owned()
            } else {
                name
            },
            email: optional_text("email", &spec.email, validate::name)?,
            sealed_secret: None,
            base_url: optional_text("base_url", &spec.base_url, validate::base_url)?,
            profile: validate::profile("profile", &spec.profile)?,
            models: validate::models("models", &spec.models)?,
            daily_token_limit: validate::positive("daily_token_limit", spec.daily_token_limit)?
                .or((provider == Provider::RovoDev).then_some(ROVODEV_DEFAULT_DAILY_TOKENS)),
            rpm: validate::positive("rpm", spec.rpm)?,
            tpm: validate::positive("tpm", spec.tpm)?,
            priority: spec.priority.unwrap_or(0),
            weight: spec.weight.unwrap_or(1),
            strict_cap: spec
                .strict_cap
                .unwrap_or_else(|| provider.strict_cap_by_default()),
            health_probe: spec.health_probe.unwrap_or(false),
            settings: validate::settings(provider, &spec.settings)?,
            prices: spec.prices.map(Rates::from),
            enabled: spec.enabled.unwrap_or(true),
        };
        check_complete(
            provider,
            &account.name,
            !secret.is_empty(),
            account.base_url.as_deref(),
            account.email.as_deref(),
            account.settings.as_deref(),
        )?;
        let sealed_secret = if secret.is_empty() {
            None
        } else {
            Some(self.secrets.seal(secret).map_err(from_crypto)?)
        };
        Ok(NewAccount {
            sealed_secret,
            ..account
        })
    }

    /// The admin view of an account: masked secret and today's counters.
    pub(crate) async fn describe_account(
        &self,
        account: AccountRecord,
    ) -> Result<v1::AccountRecord, GatewayError> {
        let usage = self
            .counters
            .usage(&account.id, self.clock.now_ms())
            .await
            .map_err(from_counters)?;
        let secret_mask = match account.sealed_secret.as_deref() {
            None => String::new(),
            Some(sealed) => match self.secrets.open(sealed) {
                Ok(secret) => mask(secret.expose_secret()),
                Err(err) => {
                    warn!(account = %account.id, error = %err, "account secret cannot be opened");
                    String::new()
                }
            },
        };
        Ok(v1::AccountRecord {
            id: account.id,
            provider: account.provider.as_str().to_owned(),
            name: account.name,
            email: account.email.unwrap_or_default(),
            secret_mask,
            base_url: account.base_url.unwrap_or_default(),
            profile: account.profile,
            models: account.models,
            daily_token_limit: account.daily_token_limit,
            rpm: account.rpm,
            tpm: account.tpm,
            priority: account.priority,
            weight: account.weight,
            enabled: account.enabled,
            disabled_reason: account.disabled_reason.unwrap_or_default(),
            created_at: account.created_at,
            tokens_used_today: usage.used_today,
            tokens_reserved: usage.reserved,
            strict_cap: account.strict_cap,
            health_probe: account.health_probe,
            settings: account.settings.unwrap_or_default(),
            prices: account.prices.map(v1::ModelPrices::from),
            state: crate::profiles::state_of(account.enabled, &usage).into(),
            cooling_until_ms: usage.cooling_until_ms,
            circuit_open_until_ms: usage.circuit_open_until_ms,
            last_used_at_ms: usage.activity.last_used_at_ms,
            last_error_at_ms: usage.activity.last_error_at_ms,
            last_error: usage
                .activity
                .last_error
                .map(|class| class.as_str().to_owned())
                .unwrap_or_default(),
            successes_today: usage.activity.successes_today,
            errors_today: usage.activity.errors_today,
            latency_ewma_us: usage.activity.latency_ewma_us,
        })
    }

    pub(crate) async fn create_account(
        &self,
        actor: &str,
        spec: v1::AccountSpec,
    ) -> Result<v1::AccountRecord, GatewayError> {
        let account = self.account_from_spec(spec)?;
        let stored = self
            .control
            .insert_account(account)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_account(actor, "create", &stored))
            .await;
        self.control_changed().await?;
        self.describe_account(stored).await
    }

    /// Creates `account` unless an account with the same name exists (then
    /// returns that one untouched). For the built-in mock account and
    /// accounts registered from the environment at startup. The secret, if
    /// any, must already be sealed with this service's
    /// [`SecretBox`](tollgate_control_store::crypto::SecretBox); the account is
    /// checked like one created through the admin API.
    pub async fn ensure_account(
        &self,
        account: NewAccount,
    ) -> Result<EnsuredAccount, GatewayError> {
        let existing = self
            .control
            .list_accounts()
            .await
            .map_err(from_control)?
            .into_iter()
            .find(|known| known.name == account.name);
        if let Some(account) = existing {
            return Ok(EnsuredAccount {
                account,
                created: false,
            });
        }
        check_new(&account)?;
        let account = self
            .control
            .insert_account(account)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_account(
            audit::SYSTEM,
            "create",
            &account,
        ))
        .await;
        self.control_changed().await?;
        Ok(EnsuredAccount {
            account,
            created: true,
        })
    }

    pub(crate) async fn list_accounts(&self) -> Result<v1::AccountList, GatewayError> {
        let stored = self.control.list_accounts().await.map_err(from_control)?;
        let mut accounts = Vec::with_capacity(stored.len());
        for account in stored {
            accounts.push(self.describe_account(account).await?);
        }
        Ok(v1::AccountList { accounts })
    }

    pub(crate) async fn get_account(&self, id: &str) -> Result<v1::AccountRecord, GatewayError> {
        let account = self
            .control
            .get_account(id)
            .await
            .map_err(from_control)?
            .ok_or_else(|| not_found(id))?;
        self.describe_account(account).await
    }

    fn account_patch(
        &self,
        update: &v1::AccountUpdate,
        provider: Provider,
    ) -> Result<AccountPatch, GatewayError> {
        let cleared = validate::clear_list(&update.clear, &CLEARABLE)?;
        let settings =
            match validate::set_or_clear("settings", update.settings.as_deref(), &cleared)? {
                Some(Some(text)) => Some(validate::settings(provider, text)?),
                other => other.map(|_| None),
            };
        let sealed_secret =
            match validate::set_or_clear("secret", update.secret.as_deref(), &cleared)? {
                Some(Some(secret)) if secret.trim().is_empty() => {
                    return Err(GatewayError::invalid(
                        "secret",
                        "secret must not be empty; send null to remove it",
                    ));
                }
                Some(Some(secret)) => {
                    Some(Some(self.secrets.seal(secret.trim()).map_err(from_crypto)?))
                }
                other => other.map(|_| None),
            };
        Ok(AccountPatch {
            name: update
                .name
                .as_deref()
                .map(|name| validate::name("name", name))
                .transpose()?,
            email: text_update("email", update.email.as_deref(), &cleared, validate::name)?,
            sealed_secret,
            base_url: text_update(
                "base_url",
                update.base_url.as_deref(),
                &cleared,
                validate::base_url,
            )?,
            profile: update
                .profile
                .as_deref()
                .map(|profile| validate::profile("profile", profile))
                .transpose()?,
            models: update
                .models
                .as_ref()
                .map(|list| validate::models("models", &list.values))
                .transpose()?,
            daily_token_limit: validate::set_or_clear(
                "daily_token_limit",
                validate::positive("daily_token_limit", update.daily_token_limit)?,
                &cleared,
            )?,
            rpm: validate::set_or_clear("rpm", validate::positive("rpm", update.rpm)?, &cleared)?,
            tpm: validate::set_or_clear("tpm", validate::positive("tpm", update.tpm)?, &cleared)?,
            priority: update.priority,
            weight: update.weight,
            strict_cap: update.strict_cap,
            health_probe: update.health_probe,
            settings,
            prices: validate::set_or_clear("prices", update.prices.map(Rates::from), &cleared)?,
            enabled: update.enabled,
        })
    }

    pub(crate) async fn update_account(
        &self,
        actor: &str,
        update: v1::AccountUpdate,
    ) -> Result<v1::AccountRecord, GatewayError> {
        let current = self
            .control
            .get_account(&update.id)
            .await
            .map_err(from_control)?
            .ok_or_else(|| not_found(&update.id))?;
        let patch = self.account_patch(&update, current.provider)?;
        let next = patch.applied_to(&current);
        check_complete(
            next.provider,
            &next.name,
            next.sealed_secret.is_some(),
            next.base_url.as_deref(),
            next.email.as_deref(),
            next.settings.as_deref(),
        )?;
        let stored = self
            .control
            .update_account(&update.id, patch)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_account(actor, "update", &stored))
            .await;
        self.control_changed().await?;
        self.describe_account(stored).await
    }

    /// An operator's reset of an account's health: its cooldown ended, its
    /// circuit closed, and (when asked) enabled again; audited as `reset`.
    pub(crate) async fn reset_account(
        &self,
        actor: &str,
        request: v1::ResetAccountRequest,
    ) -> Result<v1::AccountRecord, GatewayError> {
        let mut account = self
            .control
            .get_account(&request.id)
            .await
            .map_err(from_control)?
            .ok_or_else(|| not_found(&request.id))?;
        self.counters
            .reset_health(&account.id, request.clear_cooldown, request.close_circuit)
            .await
            .map_err(from_counters)?;
        if request.enable && !account.enabled {
            let patch = AccountPatch {
                enabled: Some(true),
                ..AccountPatch::default()
            };
            account = self
                .control
                .update_account(&account.id, patch)
                .await
                .map_err(from_control)?;
            self.control_changed().await?;
        }
        let mut entry = NewAuditEntry::for_account(actor, "reset", &account);
        entry.summary["cleared_cooldown"] = request.clear_cooldown.into();
        entry.summary["closed_circuit"] = request.close_circuit.into();
        entry.summary["enabled"] = request.enable.into();
        self.record_audit(entry).await;
        self.describe_account(account).await
    }

    pub(crate) async fn delete_account(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<v1::Deleted, GatewayError> {
        let existing = self.control.get_account(id).await.map_err(from_control)?;
        self.control
            .delete_account(id)
            .await
            .map_err(from_control)?;
        if let Some(account) = existing {
            self.record_audit(NewAuditEntry::for_account(actor, "delete", &account))
                .await;
        }
        self.control_changed().await?;
        Ok(v1::Deleted { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_servers_need_no_secret_and_hosted_apis_do() {
        assert!(!needs_secret(Provider::Ollama, None));
        for preset in ["vllm", "llama_cpp", "lm_studio"] {
            let settings = format!(r#"{{"preset":"{preset}"}}"#);
            assert!(
                !needs_secret(Provider::OpenAiCompatible, Some(&settings)),
                "{preset}"
            );
        }
        let groq = r#"{"preset":"groq"}"#;
        assert!(needs_secret(Provider::OpenAiCompatible, Some(groq)));
        assert!(needs_secret(Provider::OpenAiCompatible, None));
        assert!(needs_secret(Provider::OpenAi, None));
    }
}
