//! What a first start sets up: the built-in mock account, accounts for
//! provider keys found in the environment or declared in the config file,
//! the profiles and routes declared there, and a dev key when no key exists yet. Runs through the `Quota` trait, so
//! it works the same in-process and against a remote quota service.

use tonic::Request;
use tracing::{info, warn};

use tollgate_control_store::{DEFAULT_PROFILE, strategy_name};
use tollgate_proto::QuotaHandle;
use tollgate_proto::v1::{
    AccountSpec, Deployment, KeySpec, ListRequest, ModelPrices, ProfileSpec, RouteSpec,
};

use crate::config::{AccountDecl, RouteDecl};

/// The model the built-in mock account serves.
pub const MOCK_MODEL: &str = "mock-echo";

/// An account to create unless one with its name exists.
pub struct Wanted(pub AccountSpec);

/// The built-in mock provider account.
pub fn mock_account() -> Wanted {
    Wanted(AccountSpec {
        provider: "mock".into(),
        name: "mock".into(),
        models: vec![MOCK_MODEL.into()],
        daily_token_limit: Some(100_000_000),
        ..AccountSpec::default()
    })
}

/// Accounts for provider credentials present in the environment, read by
/// the caller (`lookup` is `std::env::var` in the binary).
pub fn environment_accounts(lookup: impl Fn(&str) -> Option<String>) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    let mut add = |provider: &str, secret: String, base_url: String, models: &[&str]| {
        wanted.push(Wanted(AccountSpec {
            provider: provider.into(),
            name: format!("env-{provider}"),
            secret,
            base_url,
            models: models.iter().map(|model| (*model).to_owned()).collect(),
            ..AccountSpec::default()
        }));
    };
    if let Some(secret) = lookup("OPENAI_API_KEY") {
        add(
            "openai",
            secret,
            String::new(),
            &[
                "gpt-4o-mini",
                "gpt-4o",
                "gpt-4.1",
                "gpt-4.1-mini",
                "gpt-4.1-nano",
                "o4-mini",
            ],
        );
    }
    if let Some(secret) = lookup("ANTHROPIC_API_KEY") {
        add(
            "anthropic",
            secret,
            String::new(),
            &["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"],
        );
    }
    if let Some(secret) = lookup("GEMINI_API_KEY") {
        add(
            "gemini",
            secret,
            String::new(),
            &["gemini-2.5-flash", "gemini-2.5-pro"],
        );
    }
    if let Some(secret) = lookup("OPENROUTER_API_KEY") {
        add("openrouter", secret, String::new(), &[]);
    }
    if let Some(base_url) = lookup("OLLAMA_BASE_URL") {
        add("ollama", String::new(), base_url, &[]);
    }
    wanted
}

/// Accounts declared in the config file; a missing secret variable skips
/// the account with a warning.
pub fn declared_accounts(
    declared: &[AccountDecl],
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<Wanted> {
    declared
        .iter()
        .filter_map(|decl| {
            let secret = match &decl.secret_env {
                Some(name) => match lookup(name) {
                    Some(secret) => secret,
                    None => {
                        warn!(account = %decl.name, variable = %name, "secret variable is not set; account skipped");
                        return None;
                    }
                },
                None => String::new(),
            };
            Some(Wanted(AccountSpec {
                provider: decl.provider.clone(),
                name: decl.name.clone(),
                email: decl.email.clone(),
                secret,
                base_url: decl.base_url.clone(),
                profile: decl.profile.clone(),
                models: decl.models.clone(),
                daily_token_limit: decl.daily_token_limit,
                priority: decl.priority,
                weight: decl.weight,
                strict_cap: decl.strict_cap,
                health_probe: decl.health_probe,
                settings: decl
                    .settings
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                // Checked when the file was read.
                prices: decl
                    .prices
                    .and_then(|prices| prices.to_rates().ok())
                    .map(ModelPrices::from),
                ..AccountSpec::default()
            }))
        })
        .collect()
}

/// The audit log's actor of what the process creates for itself.
const BOOTSTRAP_ACTOR: &str = "system (bootstrap)";

/// A quota request made by the process itself, named so in the audit log.
fn as_system<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        tollgate_proto::ACTOR_METADATA,
        tonic::metadata::MetadataValue::from_static(BOOTSTRAP_ACTOR),
    );
    request
}

/// Creates each wanted account whose name is not taken yet.
pub async fn ensure_accounts(quota: &QuotaHandle, wanted: Vec<Wanted>) -> anyhow::Result<()> {
    let existing = quota
        .list_accounts(Request::new(ListRequest {}))
        .await?
        .into_inner()
        .accounts;
    for Wanted(spec) in wanted {
        if existing.iter().any(|account| account.name == spec.name) {
            continue;
        }
        let name = spec.name.clone();
        match quota.create_account(as_system(spec)).await {
            Ok(created) => info!(account = %name, id = %created.get_ref().id, "account created"),
            Err(status) => warn!(account = %name, error = %status.message(), "account not created"),
        }
    }
    Ok(())
}

/// The profiles declared in the config file (`profiles:`), as quota takes
/// them. They are stored without a strategy: the file's strategy reaches
/// leases through the quota settings, so editing the file keeps working,
/// while one set through the admin API wins over it.
pub fn declared_profiles<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<ProfileSpec> {
    names
        .into_iter()
        .map(|name| ProfileSpec {
            name: name.clone(),
            ..ProfileSpec::default()
        })
        .collect()
}

/// Creates each profile not stored yet; a profile quota refuses is skipped
/// with a warning.
pub async fn ensure_profiles(quota: &QuotaHandle, wanted: Vec<ProfileSpec>) -> anyhow::Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let existing = quota
        .list_profiles(Request::new(ListRequest {}))
        .await?
        .into_inner()
        .profiles;
    for spec in wanted {
        let name = spec.name.trim().to_owned();
        if existing.iter().any(|profile| profile.name == name) {
            continue;
        }
        match quota.create_profile(as_system(spec)).await {
            Ok(_) => info!(profile = %name, "profile created"),
            Err(status) => {
                warn!(profile = %name, error = %status.message(), "profile not created");
            }
        }
    }
    Ok(())
}

/// The routes declared in the config file, as quota takes them.
pub fn declared_routes(declared: &[RouteDecl]) -> Vec<RouteSpec> {
    declared
        .iter()
        .map(|decl| RouteSpec {
            alias: decl.alias.clone(),
            profile: decl.profile.clone(),
            deployments: decl
                .deployments
                .iter()
                .map(|deployment| Deployment {
                    provider: deployment.provider.clone(),
                    model: deployment.model.clone(),
                    weight: deployment.weight,
                    priority: deployment.priority,
                })
                .collect(),
            strategy: decl
                .strategy
                .map(strategy_name)
                .unwrap_or_default()
                .to_owned(),
            fallbacks: decl.fallbacks.clone(),
            enabled: None,
            context_window_fallbacks: decl.context_window_fallbacks.clone(),
            content_policy_fallbacks: decl.content_policy_fallbacks.clone(),
            first_byte_timeout_ms: decl.first_byte_timeout_ms,
            deadline_ms: decl.deadline_ms,
        })
        .collect()
}

/// Creates each route whose alias its profile does not have yet; a route
/// quota refuses is skipped with a warning.
pub async fn ensure_routes(quota: &QuotaHandle, wanted: Vec<RouteSpec>) -> anyhow::Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let existing = quota
        .list_routes(Request::new(ListRequest {}))
        .await?
        .into_inner()
        .routes;
    let profile_of = |profile: &str| match profile.trim() {
        "" => DEFAULT_PROFILE.to_owned(),
        profile => profile.to_owned(),
    };
    for spec in wanted {
        let profile = profile_of(&spec.profile);
        let alias = spec.alias.trim().to_owned();
        if existing
            .iter()
            .any(|route| route.profile == profile && route.alias == alias)
        {
            continue;
        }
        match quota.create_route(as_system(spec)).await {
            Ok(created) => {
                info!(route = %alias, %profile, id = %created.get_ref().id, "route created");
            }
            Err(status) => {
                warn!(route = %alias, %profile, error = %status.message(), "route not created");
            }
        }
    }
    Ok(())
}

/// Creates a dev key when there is no key at all, returning its plaintext
/// (shown once).
pub async fn dev_key_if_none(quota: &QuotaHandle) -> anyhow::Result<Option<String>> {
    let keys = quota
        .list_keys(Request::new(ListRequest {}))
        .await?
        .into_inner()
        .keys;
    if !keys.is_empty() {
        return Ok(None);
    }
    let created = quota
        .create_key(as_system(KeySpec {
            name: "dev".into(),
            ..KeySpec::default()
        }))
        .await?
        .into_inner();
    Ok(Some(created.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_accounts_follow_the_variables() {
        let env = |name: &str| match name {
            "OPENAI_API_KEY" => Some("sk-test".to_owned()),
            "OLLAMA_BASE_URL" => Some("http://127.0.0.1:11434/v1".to_owned()),
            _ => None,
        };
        let wanted = environment_accounts(env);
        let names: Vec<_> = wanted.iter().map(|w| w.0.name.as_str()).collect();
        assert_eq!(names, ["env-openai", "env-ollama"]);
        assert!(wanted[0].0.models.iter().any(|m| m == "gpt-4o-mini"));
        assert!(environment_accounts(|_| None).is_empty());
    }

    #[test]
    fn declared_accounts_need_their_secret() {
        let decl = |secret_env: Option<&str>| AccountDecl {
            name: "a".into(),
            provider: "openai".into(),
            secret_env: secret_env.map(str::to_owned),
            email: String::new(),
            base_url: String::new(),
            profile: String::new(),
            models: vec![],
            daily_token_limit: None,
            priority: None,
            weight: None,
            strict_cap: None,
            health_probe: None,
            settings: None,
            prices: None,
        };
        let env = |name: &str| (name == "SET").then(|| "sk-x".to_owned());
        assert_eq!(declared_accounts(&[decl(Some("SET"))], env).len(), 1);
        assert_eq!(declared_accounts(&[decl(Some("UNSET"))], env).len(), 0);
        assert_eq!(declared_accounts(&[decl(None)], env).len(), 1);
        let probed = AccountDecl {
            health_probe: Some(true),
            prices: Some(tollgate_admin_api::Prices {
                input: 0.5,
                output: 1.5,
                ..tollgate_admin_api::Prices::default()
            }),
            ..decl(None)
        };
        let specs = declared_accounts(&[decl(None), probed], env);
        assert_eq!(specs[0].0.health_probe, None);
        assert_eq!(specs[1].0.health_probe, Some(true));
        assert_eq!(specs[0].0.prices, None);
        assert_eq!(
            specs[1].0.prices,
            Some(ModelPrices {
                input: 500_000,
                output: 1_500_000,
                ..ModelPrices::default()
            })
        );

        // Settings travel as the JSON object quota checks.
        let azure = AccountDecl {
            provider: "azure_openai".into(),
            settings: Some(serde_json::json!({"api_version": "2024-10-21"})),
            ..decl(None)
        };
        let specs = declared_accounts(&[azure], env);
        assert_eq!(specs[0].0.settings, r#"{"api_version":"2024-10-21"}"#);
        assert_eq!(declared_accounts(&[decl(None)], env)[0].0.settings, "");
    }
}
