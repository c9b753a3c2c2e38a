//! Which accounts serve a model name, and which names clients can ask for.
//!
//! `provider/model` selects that provider's accounts: one whose `models`
//! list is empty serves any model of its provider asked for this way,
//! otherwise the list must contain the model. A bare name selects the
//! accounts whose `models` list contains it, whatever their provider.

use std::collections::BTreeMap;

use tollgate_control_store::AccountRecord;
use tollgate_core::{ModelRef, Provider};

/// Whether `account` serves `model` (enabled or not).
pub(crate) fn serves(account: &AccountRecord, model: &ModelRef) -> bool {
    let listed = || account.models.contains(&model.model);
    match model.provider {
        Some(provider) => account.provider == provider && (account.models.is_empty() || listed()),
        None => listed(),
    }
}

/// Every name the given accounts can be asked for, sorted, each once with
/// the provider that serves it: `provider/model` for each listed model, and
/// the bare model when it reads as bare (an OpenRouter model such as
/// `openai/gpt-4o` is only reachable as `openrouter/openai/gpt-4o`). A bare
/// name several providers serve is listed with the first in name order.
pub(crate) fn servable_models<'a>(
    accounts: impl IntoIterator<Item = &'a AccountRecord>,
) -> Vec<(String, Provider)> {
    let mut names: BTreeMap<String, Provider> = BTreeMap::new();
    let mut add = |name: String, provider: Provider| {
        names
            .entry(name)
            .and_modify(|known| {
                if provider.as_str() < known.as_str() {
                    *known = provider;
                }
            })
            .or_insert(provider);
    };
    for account in accounts {
        for model in &account.models {
            add(format!("{}/{model}", account.provider), account.provider);
            if ModelRef::parse(model).is_some_and(|parsed| parsed.provider.is_none()) {
                add(model.clone(), account.provider);
            }
        }
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {

    use super::*;
    use tollgate_control_store::NewAccount;

    fn account(provider: Provider, models: &[&str]) -> AccountRecord {
        let new = NewAccount::new(provider, "a");
        AccountRecord {
            id: "acct_1".into(),
            provider: new.provider,
            name: new.name,
            email: None,
            sealed_secret: None,
            base_url: None,
            profile: new.profile,
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            daily_token_limit: None,
            rpm: None,
            tpm: None,
            priority: 0,
            weight: 1,
            strict_cap: false,
            health_probe: false,
            settings: None,
            prices: None,
            enabled: true,
            disabled_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn model(name: &str) -> ModelRef {
        ModelRef::parse(name).unwrap()
    }

    #[test]
    fn bare_names_need_the_list() {
        let openai = account(Provider::OpenAi, &["gpt-4o-mini"]);
        assert!(serves(&openai, &model("gpt-4o-mini")));
        assert!(!serves(&openai, &model("gpt-4o")));
        let any = account(Provider::OpenRouter, &[]);
        assert!(!serves(&any, &model("gpt-4o-mini")));
    }

    #[test]
    fn qualified_names_select_the_provider() {
        let openai = account(Provider::OpenAi, &["gpt-4o-mini"]);
        assert!(serves(&openai, &model("openai/gpt-4o-mini")));
        assert!(!serves(&openai, &model("openai/gpt-4o")));
        assert!(!serves(&openai, &model("gemini/gpt-4o-mini")));
        let any = account(Provider::OpenRouter, &[]);
        assert!(serves(&any, &model("openrouter/meta-llama/llama-3-70b")));
        assert!(!serves(&any, &model("openai/gpt-4o")));
    }

    #[test]
    fn servable_models_lists_both_forms_once() {
        let accounts = [
            account(Provider::OpenAi, &["gpt-4o-mini", "gpt-4o"]),
            account(Provider::OpenRouter, &["openai/gpt-4o", "gpt-4o-mini"]),
            account(Provider::OpenRouter, &[]),
        ];
        let listed = servable_models(&accounts);
        let names: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gpt-4o",
                "gpt-4o-mini",
                "openai/gpt-4o",
                "openai/gpt-4o-mini",
                "openrouter/gpt-4o-mini",
                "openrouter/openai/gpt-4o",
            ]
        );
        let bare = listed
            .iter()
            .find(|(name, _)| name == "gpt-4o-mini")
            .unwrap();
        assert_eq!(bare.1, Provider::OpenAi);
    }
}
