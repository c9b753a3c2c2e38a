//! The behaviour every [`ControlStore`] must show, as checks that take a
//! fresh, empty store. `control_conformance_tests!(fresh)` turns them into
//! one test each for an implementation, where `fresh().await` returns
//! `(guard, store)` and the guard keeps the store's resources alive.

use serde_json::json;
use tollgate_core::catalog::Rates;
use tollgate_core::{Provider, Strategy};

use super::{
    AccountPatch, ControlError, ControlStore, Deployment, KeyPatch, NewAccount, NewAuditEntry,
    NewKey, NewProfile, NewRoute, ProfilePatch, RoutePatch,
};
use crate::crypto::{MasterKey, SecretBox};

const AUDITED_SECRET: &str = "sk-live-very-secret-0123456789";

/// Generates one `#[tokio::test]` per conformance check.
macro_rules! control_conformance_tests {
    ($fresh:path) => {
        $crate::conformance::control_conformance_tests!(@each $fresh:
            key_round_trips_by_id_and_hash,
            key_hash_is_unique,
            keys_list_oldest_first,
            key_patch_changes_only_given_fields,
            key_delete_removes_it,
            unknown_ids_are_not_found,
            account_round_trips,
            account_patch_changes_only_given_fields,
            account_settings_are_kept_replaced_and_removed,
            account_prices_are_set_replaced_and_cleared,
            disabling_records_the_reason_and_enabling_clears_it,
            account_delete_removes_it,
            large_limits_round_trip,
            audit_entries_are_listed_newest_first_without_secrets,
            route_round_trips,
            route_alias_is_unique_per_profile,
            route_patch_changes_only_given_fields,
            route_delete_removes_it,
            route_audit_entries_describe_the_route,
            profile_round_trips,
            profile_name_is_unique,
            profile_patch_changes_only_given_fields,
            profile_delete_removes_it,
            profile_audit_entries_describe_the_profile,
        );
    };
    (@each $fresh:path: $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (_guard, store) = $fresh().await;
                $crate::conformance::$check(&store).await;
            }
        )*
    };
}
pub(crate) use control_conformance_tests;

fn new_key(hash: &str) -> NewKey {
    NewKey {
        name: "ci".into(),
        key_hash: hash.into(),
        prefix: "tg-abcd".into(),
        last4: "wxyz".into(),
        profile: "default".into(),
        profiles: vec!["team-a".into()],
        models: vec!["gpt-4o-mini".into()],
        rpm: Some(60),
        tpm: None,
        daily_token_budget: Some(1_000_000),
        monthly_budget_micro_usd: Some(5_000_000),
        expires_at: None,
        enabled: true,
    }
}

fn new_account(name: &str) -> NewAccount {
    NewAccount {
        email: Some("ops@example.com".into()),
        sealed_secret: Some("v1:0123abcd:c2VhbGVk".into()),
        base_url: Some("https://llm.example.com/v1".into()),
        models: vec!["gpt-4o".into(), "gpt-4o-mini".into()],
        daily_token_limit: Some(20_000_000),
        rpm: Some(500),
        priority: 2,
        weight: 3,
        ..NewAccount::new(Provider::OpenAiCompatible, name)
    }
}

pub(crate) async fn key_round_trips_by_id_and_hash(store: &dyn ControlStore) {
    let spec = new_key("aa11");
    let stored = store.insert_key(spec.clone()).await.unwrap();
    assert!(stored.id.starts_with("key_"), "{}", stored.id);
    assert!(stored.created_at > 0);
    assert_eq!(
        (
            stored.name.as_str(),
            stored.key_hash.as_str(),
            stored.prefix.as_str()
        ),
        ("ci", "aa11", "tg-abcd")
    );
    assert_eq!(stored.last4, "wxyz");
    assert_eq!(stored.profiles, spec.profiles);
    assert_eq!(stored.models, spec.models);
    assert_eq!(
        (stored.rpm, stored.tpm, stored.daily_token_budget),
        (Some(60), None, Some(1_000_000))
    );
    assert_eq!(stored.monthly_budget_micro_usd, Some(5_000_000));
    assert!(stored.enabled);

    assert_eq!(
        store.get_key(&stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_key_by_hash("aa11").await.unwrap(), Some(stored));
    assert_eq!(store.get_key_by_hash("bb22").await.unwrap(), None);
    assert_eq!(store.get_key("key_missing").await.unwrap(), None);
}

pub(crate) async fn key_hash_is_unique(store: &dyn ControlStore) {
    store.insert_key(new_key("same")).await.unwrap();
    let again = store.insert_key(new_key("same")).await;
    assert!(
        matches!(again, Err(ControlError::DuplicateKey)),
        "{again:?}"
    );
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
}

pub(crate) async fn keys_list_oldest_first(store: &dyn ControlStore) {
    let mut ids = Vec::new();
    for hash in ["h1", "h2", "h3"] {
        ids.push(store.insert_key(new_key(hash)).await.unwrap().id);
    }
    let listed: Vec<String> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.id)
        .collect();
    assert_eq!(listed, ids);
}

pub(crate) async fn key_patch_changes_only_given_fields(store: &dyn ControlStore) {
    let stored = store.insert_key(new_key("p1")).await.unwrap();
    let patch = KeyPatch {
        name: Some("renamed".into()),
        models: Some(Vec::new()),
        tpm: Some(Some(10_000)),
        rpm: Some(None),
        expires_at: Some(Some(1_900_000_000)),
        enabled: Some(false),
        ..KeyPatch::default()
    };
    let updated = store.update_key(&stored.id, patch.clone()).await.unwrap();
    let expected = patch.applied_to(&stored);
    assert_eq!(updated.name, "renamed");
    assert!(updated.models.is_empty());
    assert_eq!((updated.rpm, updated.tpm), (None, Some(10_000)));
    assert_eq!(updated.expires_at, Some(1_900_000_000));
    assert!(!updated.enabled);
    assert_eq!(
        updated,
        crate::KeyRecord {
            updated_at: updated.updated_at,
            ..expected
        }
    );
    assert_eq!(updated.profiles, stored.profiles);
    assert_eq!(updated.daily_token_budget, stored.daily_token_budget);
    assert_eq!(
        store.get_key(&stored.id).await.unwrap(),
        Some(updated.clone())
    );

    let unchanged = store
        .update_key(&stored.id, KeyPatch::default())
        .await
        .unwrap();
    assert_eq!(
        crate::KeyRecord {
            updated_at: 0,
            ..unchanged
        },
        crate::KeyRecord {
            updated_at: 0,
            ..updated
        }
    );
}

pub(crate) async fn key_delete_removes_it(store: &dyn ControlStore) {
    let kept = store.insert_key(new_key("keep")).await.unwrap();
    let gone = store.insert_key(new_key("gone")).await.unwrap();
    store.delete_key(&gone.id).await.unwrap();
    assert_eq!(store.get_key(&gone.id).await.unwrap(), None);
    assert_eq!(store.get_key_by_hash("gone").await.unwrap(), None);
    assert_eq!(store.list_keys().await.unwrap(), vec![kept]);
    assert!(matches!(
        store.delete_key(&gone.id).await,
        Err(ControlError::NotFound { what: "key", .. })
    ));
}

pub(crate) async fn unknown_ids_are_not_found(store: &dyn ControlStore) {
    let missing = "nope";
    assert!(matches!(
        store.update_key(missing, KeyPatch::default()).await,
        Err(ControlError::NotFound { what: "key", .. })
    ));
    assert!(matches!(
        store.update_account(missing, AccountPatch::default()).await,
        Err(ControlError::NotFound {
            what: "account",
            ..
        })
    ));
    assert!(matches!(
        store.delete_account(missing).await,
        Err(ControlError::NotFound {
            what: "account",
            ..
        })
    ));
    assert!(matches!(
        store.set_account_disabled(missing, "why").await,
        Err(ControlError::NotFound {
            what: "account",
            ..
        })
    ));
    assert_eq!(store.get_account(missing).await.unwrap(), None);
}

pub(crate) async fn account_round_trips(store: &dyn ControlStore) {
    let spec = new_account("primary");
    let stored = store.insert_account(spec.clone()).await.unwrap();
    assert!(stored.id.starts_with("acct_"), "{}", stored.id);
    assert_eq!(stored.provider, Provider::OpenAiCompatible);
    assert_eq!(stored.name, "primary");
    assert_eq!(stored.email, spec.email);
    assert_eq!(stored.sealed_secret, spec.sealed_secret);
    assert_eq!(stored.base_url, spec.base_url);
    assert_eq!(stored.profile, "default");
    assert_eq!(stored.models, spec.models);
    assert_eq!(stored.daily_token_limit, Some(20_000_000));
    assert_eq!((stored.rpm, stored.tpm), (Some(500), None));
    assert_eq!((stored.priority, stored.weight), (2, 3));
    assert!(stored.enabled);
    assert!(!stored.strict_cap);
    assert!(!stored.health_probe);
    assert_eq!(stored.prices, None);
    assert_eq!(stored.disabled_reason, None);

    let bare = store
        .insert_account(NewAccount::new(Provider::Mock, "mock"))
        .await
        .unwrap();
    // Rovo Dev accounts are strict about their cap unless told otherwise.
    let rovo = store
        .insert_account(NewAccount::new(Provider::RovoDev, "rovo"))
        .await
        .unwrap();
    assert!(rovo.strict_cap);
    store.delete_account(&rovo.id).await.unwrap();
    assert_eq!(
        (bare.sealed_secret.as_ref(), bare.base_url.as_ref()),
        (None, None)
    );

    assert_eq!(
        store.get_account(&stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.list_accounts().await.unwrap(), vec![stored, bare]);
}

/// An account's own prices are kept exactly, replaced, and cleared.
pub(crate) async fn account_prices_are_set_replaced_and_cleared(store: &dyn ControlStore) {
    let negotiated = Rates {
        input: 2_250_000,
        output: 9_000_000,
        cached_input: Some(225_000),
        cache_write_1h: Some(4_500_000),
        ..Rates::default()
    };
    let stored = store
        .insert_account(NewAccount {
            prices: Some(negotiated),
            ..new_account("negotiated")
        })
        .await
        .unwrap();
    assert_eq!(stored.prices, Some(negotiated));
    assert_eq!(
        store.get_account(&stored.id).await.unwrap().unwrap().prices,
        Some(negotiated)
    );

    let cheaper = Rates {
        input: 1,
        output: 2,
        reasoning: Some(3),
        ..Rates::default()
    };
    let patch = |prices| AccountPatch {
        prices,
        ..AccountPatch::default()
    };
    let updated = store
        .update_account(&stored.id, patch(Some(Some(cheaper))))
        .await
        .unwrap();
    assert_eq!(updated.prices, Some(cheaper));
    // A patch without prices leaves them.
    let untouched = store.update_account(&stored.id, patch(None)).await.unwrap();
    assert_eq!(untouched.prices, Some(cheaper));
    let cleared = store
        .update_account(&stored.id, patch(Some(None)))
        .await
        .unwrap();
    assert_eq!(cleared.prices, None);
    assert_eq!(store.get_account(&stored.id).await.unwrap(), Some(cleared));
}

pub(crate) async fn account_patch_changes_only_given_fields(store: &dyn ControlStore) {
    let stored = store.insert_account(new_account("a")).await.unwrap();
    let patch = AccountPatch {
        sealed_secret: Some(Some("v1:0123abcd:bmV3".into())),
        email: Some(None),
        profile: Some("team-a".into()),
        models: Some(vec!["o3".into()]),
        daily_token_limit: Some(None),
        tpm: Some(Some(90_000)),
        priority: Some(-1),
        strict_cap: Some(true),
        health_probe: Some(true),
        ..AccountPatch::default()
    };
    let updated = store
        .update_account(&stored.id, patch.clone())
        .await
        .unwrap();
    let expected = patch.applied_to(&stored);
    assert_eq!(
        updated,
        crate::AccountRecord {
            updated_at: updated.updated_at,
            ..expected
        }
    );
    assert_eq!(updated.sealed_secret.as_deref(), Some("v1:0123abcd:bmV3"));
    assert_eq!(updated.email, None);
    assert_eq!(updated.daily_token_limit, None);
    assert_eq!(updated.priority, -1);
    assert!(updated.strict_cap);
    assert!(updated.health_probe);
    assert_eq!(updated.base_url, stored.base_url);
    assert_eq!(updated.weight, stored.weight);
    assert_eq!(updated.rpm, stored.rpm);
    assert_eq!(store.get_account(&stored.id).await.unwrap(), Some(updated));
}

pub(crate) async fn account_settings_are_kept_replaced_and_removed(store: &dyn ControlStore) {
    let azure = r#"{"api_version":"2024-10-21","deployments":{"gpt-4.1":"prod-gpt41"}}"#;
    let stored = store
        .insert_account(NewAccount {
            settings: Some(azure.to_owned()),
            base_url: Some("https://res.openai.azure.com".into()),
            ..NewAccount::new(Provider::AzureOpenAi, "azure")
        })
        .await
        .unwrap();
    assert_eq!(stored.settings.as_deref(), Some(azure));
    assert_eq!(
        store.get_account(&stored.id).await.unwrap(),
        Some(stored.clone())
    );

    // A patch without settings keeps them, byte for byte.
    let renamed = store
        .update_account(
            &stored.id,
            AccountPatch {
                name: Some("azure-eu".into()),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.settings.as_deref(), Some(azure));

    let v1 = r#"{"deployments":{"gpt-4o":"eu-gpt4o"}}"#;
    let replaced = store
        .update_account(
            &stored.id,
            AccountPatch {
                settings: Some(Some(v1.to_owned())),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(replaced.settings.as_deref(), Some(v1));

    let removed = store
        .update_account(
            &stored.id,
            AccountPatch {
                settings: Some(None),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(removed.settings, None);
    assert_eq!(store.get_account(&stored.id).await.unwrap(), Some(removed));
    let bare = store
        .insert_account(NewAccount::new(Provider::Mock, "mock"))
        .await
        .unwrap();
    assert_eq!(bare.settings, None);
}

pub(crate) async fn disabling_records_the_reason_and_enabling_clears_it(store: &dyn ControlStore) {
    let stored = store.insert_account(new_account("a")).await.unwrap();
    let disabled = store
        .set_account_disabled(&stored.id, "upstream answered 401")
        .await
        .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("upstream answered 401")
    );
    assert_eq!(store.get_account(&stored.id).await.unwrap(), Some(disabled));

    // An unrelated patch keeps the reason.
    let renamed = store
        .update_account(
            &stored.id,
            AccountPatch {
                name: Some("b".into()),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        renamed.disabled_reason.as_deref(),
        Some("upstream answered 401")
    );

    let enabled = store
        .update_account(
            &stored.id,
            AccountPatch {
                enabled: Some(true),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(enabled.enabled);
    assert_eq!(enabled.disabled_reason, None);
}

pub(crate) async fn account_delete_removes_it(store: &dyn ControlStore) {
    let kept = store.insert_account(new_account("kept")).await.unwrap();
    let gone = store.insert_account(new_account("gone")).await.unwrap();
    store.delete_account(&gone.id).await.unwrap();
    assert_eq!(store.get_account(&gone.id).await.unwrap(), None);
    assert_eq!(store.list_accounts().await.unwrap(), vec![kept]);
    assert!(matches!(
        store.delete_account(&gone.id).await,
        Err(ControlError::NotFound { .. })
    ));
}

pub(crate) async fn large_limits_round_trip(store: &dyn ControlStore) {
    let account = store
        .insert_account(NewAccount {
            daily_token_limit: Some(u64::from(u32::MAX) * 1000),
            rpm: Some(u32::MAX),
            weight: u32::MAX,
            priority: i32::MIN,
            ..new_account("big")
        })
        .await
        .unwrap();
    assert_eq!(account.daily_token_limit, Some(u64::from(u32::MAX) * 1000));
    assert_eq!((account.rpm, account.weight), (Some(u32::MAX), u32::MAX));
    assert_eq!(account.priority, i32::MIN);

    let key = store
        .insert_key(NewKey {
            daily_token_budget: Some(u64::from(u32::MAX) * 7),
            monthly_budget_micro_usd: Some(i64::MAX),
            expires_at: Some(-1),
            ..new_key("big")
        })
        .await
        .unwrap();
    assert_eq!(key.daily_token_budget, Some(u64::from(u32::MAX) * 7));
    assert_eq!(key.monthly_budget_micro_usd, Some(i64::MAX));
    assert!(key.is_expired(0));
}

pub(crate) async fn audit_entries_are_listed_newest_first_without_secrets(
    store: &dyn ControlStore,
) {
    let secrets = SecretBox::new(&MasterKey::generate().unwrap());
    let account = store
        .insert_account(NewAccount {
            sealed_secret: Some(secrets.seal(AUDITED_SECRET).unwrap()),
            ..NewAccount::new(Provider::OpenAi, "audited")
        })
        .await
        .unwrap();
    let created = store
        .record_audit(NewAuditEntry::for_account("admin", "create", &account))
        .await
        .unwrap();
    assert_eq!(created.summary["has_secret"], json!(true));
    assert_eq!(created.object_id, account.id);

    let careless = NewAuditEntry {
        actor: "admin".into(),
        action: "update".into(),
        object_kind: "account".into(),
        object_id: account.id.clone(),
        summary: json!({
            "secret": AUDITED_SECRET,
            "name": "renamed",
            "changes": [{"sealed_secret": account.sealed_secret, "note": account.sealed_secret}],
            "nested": {"api_key": AUDITED_SECRET, "daily_token_limit": 5},
        }),
    };
    let updated = store.record_audit(careless).await.unwrap();
    assert_eq!(
        updated.summary,
        json!({
            "name": "renamed",
            "changes": [{"note": "[redacted]"}],
            "nested": {"daily_token_limit": 5},
        })
    );

    let listed = store.list_audit(10).await.unwrap();
    assert_eq!(listed, vec![updated.clone(), created]);
    assert_eq!(store.list_audit(1).await.unwrap(), vec![updated]);

    let sealed = account.sealed_secret.unwrap();
    for entry in store.list_audit(10).await.unwrap() {
        let text = entry.summary.to_string();
        assert!(
            !text.contains("very-secret") && !text.contains(&sealed),
            "{text}"
        );
    }
}

fn new_route(alias: &str, profile: &str) -> NewRoute {
    NewRoute {
        alias: alias.into(),
        profile: profile.into(),
        deployments: vec![
            Deployment {
                provider: Provider::OpenAi,
                model: "gpt-4o".into(),
                weight: 3,
                priority: 1,
            },
            Deployment {
                provider: Provider::Anthropic,
                model: "claude-sonnet-4".into(),
                weight: u32::MAX,
                priority: i32::MIN,
            },
        ],
        strategy: Some(Strategy::Weighted),
        fallbacks: vec!["cheap".into(), "local".into()],
        context_window_fallbacks: vec!["long".into(), "longer".into()],
        content_policy_fallbacks: vec!["lenient".into()],
        first_byte_timeout_ms: Some(2_500),
        deadline_ms: Some(u32::MAX),
        enabled: true,
    }
}

pub(crate) async fn route_round_trips(store: &dyn ControlStore) {
    let spec = new_route("smart", "default");
    let stored = store.insert_route(spec.clone()).await.unwrap();
    assert!(stored.id.starts_with("route_"), "{}", stored.id);
    assert!(stored.created_at > 0 && stored.updated_at == stored.created_at);
    assert_eq!(
        (stored.alias.as_str(), stored.profile.as_str()),
        ("smart", "default")
    );
    // Deployments keep their order: it is the order they are listed in.
    assert_eq!(stored.deployments, spec.deployments);
    assert_eq!(stored.strategy, Some(Strategy::Weighted));
    assert_eq!(stored.fallbacks, spec.fallbacks);
    assert_eq!(
        stored.context_window_fallbacks,
        spec.context_window_fallbacks
    );
    assert_eq!(
        stored.content_policy_fallbacks,
        spec.content_policy_fallbacks
    );
    assert_eq!(
        (stored.first_byte_timeout_ms, stored.deadline_ms),
        (Some(2_500), Some(u32::MAX))
    );
    assert!(stored.enabled);

    let plain = store
        .insert_route(NewRoute {
            strategy: None,
            fallbacks: Vec::new(),
            context_window_fallbacks: Vec::new(),
            content_policy_fallbacks: Vec::new(),
            first_byte_timeout_ms: None,
            deadline_ms: None,
            enabled: false,
            ..new_route("plain", "default")
        })
        .await
        .unwrap();
    assert_eq!((plain.strategy, plain.enabled), (None, false));
    assert!(plain.context_window_fallbacks.is_empty() && plain.content_policy_fallbacks.is_empty());
    assert_eq!(
        (plain.first_byte_timeout_ms, plain.deadline_ms),
        (None, None)
    );

    assert_eq!(
        store.get_route(&stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_route("route_missing").await.unwrap(), None);
    assert_eq!(store.list_routes().await.unwrap(), vec![stored, plain]);
}

pub(crate) async fn route_alias_is_unique_per_profile(store: &dyn ControlStore) {
    let first = store
        .insert_route(new_route("smart", "default"))
        .await
        .unwrap();
    let again = store.insert_route(new_route("smart", "default")).await;
    assert!(
        matches!(again, Err(ControlError::DuplicateAlias)),
        "{again:?}"
    );
    // The same alias in another profile is another route.
    let other = store
        .insert_route(new_route("smart", "team-a"))
        .await
        .unwrap();
    assert_ne!(other.id, first.id);

    let moved = store
        .update_route(
            &other.id,
            RoutePatch {
                profile: Some("default".into()),
                ..RoutePatch::default()
            },
        )
        .await;
    assert!(
        matches!(moved, Err(ControlError::DuplicateAlias)),
        "{moved:?}"
    );
    assert_eq!(store.list_routes().await.unwrap().len(), 2);
}

pub(crate) async fn route_patch_changes_only_given_fields(store: &dyn ControlStore) {
    let route = store
        .insert_route(new_route("smart", "default"))
        .await
        .unwrap();
    let deployments = vec![Deployment {
        provider: Provider::Mock,
        model: "mock-echo".into(),
        weight: 1,
        priority: 0,
    }];
    let patch = RoutePatch {
        deployments: Some(deployments.clone()),
        strategy: Some(None),
        first_byte_timeout_ms: Some(None),
        ..RoutePatch::default()
    };
    let expected = patch.applied_to(&route);
    let patched = store.update_route(&route.id, patch).await.unwrap();
    assert_eq!(patched.deployments, deployments);
    assert_eq!(patched.strategy, None);
    assert_eq!(patched.first_byte_timeout_ms, None);
    assert_eq!(
        (patched.alias.as_str(), patched.fallbacks.as_slice()),
        ("smart", route.fallbacks.as_slice())
    );
    // Fields the patch does not name keep their values.
    assert_eq!(
        patched.context_window_fallbacks,
        route.context_window_fallbacks
    );
    assert_eq!(patched.deadline_ms, route.deadline_ms);
    assert!(patched.updated_at >= route.updated_at);
    assert_eq!(
        patched,
        crate::RouteRecord {
            updated_at: patched.updated_at,
            ..expected
        }
    );

    let renamed = store
        .update_route(
            &route.id,
            RoutePatch {
                alias: Some("clever".into()),
                strategy: Some(Some(Strategy::RoundRobin)),
                fallbacks: Some(Vec::new()),
                context_window_fallbacks: Some(vec!["huge".into()]),
                content_policy_fallbacks: Some(Vec::new()),
                first_byte_timeout_ms: Some(Some(750)),
                deadline_ms: Some(None),
                enabled: Some(false),
                ..RoutePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.context_window_fallbacks, ["huge"]);
    assert!(renamed.content_policy_fallbacks.is_empty());
    assert_eq!(
        (renamed.first_byte_timeout_ms, renamed.deadline_ms),
        (Some(750), None)
    );
    assert_eq!(renamed.alias, "clever");
    assert_eq!(renamed.strategy, Some(Strategy::RoundRobin));
    assert!(renamed.fallbacks.is_empty() && !renamed.enabled);
    assert_eq!(renamed.deployments, deployments);

    let missing = store
        .update_route("route_missing", RoutePatch::default())
        .await;
    assert!(
        matches!(missing, Err(ControlError::NotFound { what: "route", .. })),
        "{missing:?}"
    );
}

pub(crate) async fn route_delete_removes_it(store: &dyn ControlStore) {
    let kept = store
        .insert_route(new_route("kept", "default"))
        .await
        .unwrap();
    let gone = store
        .insert_route(new_route("gone", "default"))
        .await
        .unwrap();
    store.delete_route(&gone.id).await.unwrap();
    assert_eq!(store.get_route(&gone.id).await.unwrap(), None);
    assert_eq!(store.list_routes().await.unwrap(), vec![kept]);
    assert!(matches!(
        store.delete_route(&gone.id).await,
        Err(ControlError::NotFound { .. })
    ));
    // The alias is free again.
    store
        .insert_route(new_route("gone", "default"))
        .await
        .unwrap();
}

pub(crate) async fn route_audit_entries_describe_the_route(store: &dyn ControlStore) {
    let route = store
        .insert_route(new_route("smart", "default"))
        .await
        .unwrap();
    let entry = store
        .record_audit(NewAuditEntry::for_route("admin", "create", &route))
        .await
        .unwrap();
    assert_eq!(
        (entry.object_kind.as_str(), entry.object_id.as_str()),
        ("route", route.id.as_str())
    );
    assert_eq!(entry.summary["alias"], json!("smart"));
    assert_eq!(entry.summary["strategy"], json!("weighted"));
    assert_eq!(
        entry.summary["deployments"][0],
        json!({"provider": "openai", "model": "gpt-4o", "weight": 3, "priority": 1})
    );
    assert_eq!(entry.summary["fallbacks"], json!(["cheap", "local"]));
    assert_eq!(
        entry.summary["context_window_fallbacks"],
        json!(["long", "longer"])
    );
    assert_eq!(
        entry.summary["content_policy_fallbacks"],
        json!(["lenient"])
    );
    assert_eq!(entry.summary["first_byte_timeout_ms"], json!(2_500));
    assert_eq!(entry.summary["deadline_ms"], json!(u32::MAX));
}

fn new_profile(name: &str) -> NewProfile {
    NewProfile {
        name: name.into(),
        description: "The search team".into(),
        strategy: Some(Strategy::RoundRobin),
    }
}

pub(crate) async fn profile_round_trips(store: &dyn ControlStore) {
    let stored = store.insert_profile(new_profile("team-b")).await.unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.description.as_str()),
        ("team-b", "The search team")
    );
    assert_eq!(stored.strategy, Some(Strategy::RoundRobin));
    assert!(stored.created_at > 0 && stored.updated_at == stored.created_at);

    let plain = store
        .insert_profile(NewProfile {
            description: String::new(),
            strategy: None,
            ..new_profile("team-a")
        })
        .await
        .unwrap();
    assert_eq!((plain.description.as_str(), plain.strategy), ("", None));

    assert_eq!(
        store.get_profile("team-b").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_profile("team-c").await.unwrap(), None);
    // Listed by name, not by age.
    assert_eq!(store.list_profiles().await.unwrap(), vec![plain, stored]);
}

pub(crate) async fn profile_name_is_unique(store: &dyn ControlStore) {
    store.insert_profile(new_profile("team-a")).await.unwrap();
    let again = store.insert_profile(new_profile("team-a")).await;
    assert!(
        matches!(again, Err(ControlError::DuplicateProfile)),
        "{again:?}"
    );
    assert_eq!(store.list_profiles().await.unwrap().len(), 1);
}

pub(crate) async fn profile_patch_changes_only_given_fields(store: &dyn ControlStore) {
    let profile = store.insert_profile(new_profile("team-a")).await.unwrap();
    let patch = ProfilePatch {
        strategy: Some(None),
        ..ProfilePatch::default()
    };
    let expected = patch.applied_to(&profile);
    let patched = store.update_profile("team-a", patch).await.unwrap();
    assert_eq!(patched.strategy, None);
    assert_eq!(patched.description, "The search team");
    assert!(patched.updated_at >= profile.updated_at);
    assert_eq!(
        patched,
        crate::ProfileRecord {
            updated_at: patched.updated_at,
            ..expected
        }
    );

    let described = store
        .update_profile(
            "team-a",
            ProfilePatch {
                description: Some("Billing".into()),
                strategy: Some(Some(Strategy::LeastInflight)),
            },
        )
        .await
        .unwrap();
    assert_eq!(described.description, "Billing");
    assert_eq!(described.strategy, Some(Strategy::LeastInflight));

    let missing = store
        .update_profile("team-z", ProfilePatch::default())
        .await;
    assert!(
        matches!(
            missing,
            Err(ControlError::NotFound {
                what: "profile",
                ..
            })
        ),
        "{missing:?}"
    );
}

pub(crate) async fn profile_delete_removes_it(store: &dyn ControlStore) {
    let kept = store.insert_profile(new_profile("kept")).await.unwrap();
    store.insert_profile(new_profile("gone")).await.unwrap();
    store.delete_profile("gone").await.unwrap();
    assert_eq!(store.get_profile("gone").await.unwrap(), None);
    assert_eq!(store.list_profiles().await.unwrap(), vec![kept]);
    assert!(matches!(
        store.delete_profile("gone").await,
        Err(ControlError::NotFound { .. })
    ));
    // The name is free again.
    store.insert_profile(new_profile("gone")).await.unwrap();
}

pub(crate) async fn profile_audit_entries_describe_the_profile(store: &dyn ControlStore) {
    let profile = store.insert_profile(new_profile("team-a")).await.unwrap();
    let entry = store
        .record_audit(NewAuditEntry::for_profile("admin", "create", &profile))
        .await
        .unwrap();
    assert_eq!(
        (entry.object_kind.as_str(), entry.object_id.as_str()),
        ("profile", "team-a")
    );
    assert_eq!(
        entry.summary,
        json!({"name": "team-a", "description": "The search team", "strategy": "round_robin"})
    );
}
