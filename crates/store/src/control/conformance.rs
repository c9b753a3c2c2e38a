//! The behaviour every [`ControlStore`] must show, as checks that take a
//! fresh, empty store. `control_conformance_tests!(fresh)` turns them into
//! one test each for an implementation, where `fresh().await` returns
//! `(guard, store)` and the guard keeps the store's resources alive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_core::Provider;

use super::{AccountPatch, ControlError, ControlStore, KeyPatch, NewAccount, NewKey};

/// Generates one `#[tokio::test]` per conformance check.
macro_rules! control_conformance_tests {
    ($fresh:path) => {
        $crate::control::conformance::control_conformance_tests!(@each $fresh:
            key_round_trips_by_id_and_hash,
            key_hash_is_unique,
            keys_list_oldest_first,
            key_patch_changes_only_given_fields,
            key_delete_removes_it,
            unknown_ids_are_not_found,
            account_round_trips,
            account_patch_changes_only_given_fields,
            disabling_records_the_reason_and_enabling_clears_it,
            account_delete_removes_it,
            large_limits_round_trip,
        );
    };
    (@each $fresh:path: $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (_guard, store) = $fresh().await;
                $crate::control::conformance::$check(&store).await;
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
        crate::control::KeyRecord {
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
        crate::control::KeyRecord {
            updated_at: 0,
            ..unchanged
        },
        crate::control::KeyRecord {
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
    assert_eq!(stored.disabled_reason, None);

    let bare = store
        .insert_account(NewAccount::new(Provider::Mock, "mock"))
        .await
        .unwrap();
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
        ..AccountPatch::default()
    };
    let updated = store
        .update_account(&stored.id, patch.clone())
        .await
        .unwrap();
    let expected = patch.applied_to(&stored);
    assert_eq!(
        updated,
        crate::control::AccountRecord {
            updated_at: updated.updated_at,
            ..expected
        }
    );
    assert_eq!(updated.sealed_secret.as_deref(), Some("v1:0123abcd:bmV3"));
    assert_eq!(updated.email, None);
    assert_eq!(updated.daily_token_limit, None);
    assert_eq!(updated.priority, -1);
    assert_eq!(updated.base_url, stored.base_url);
    assert_eq!(updated.weight, stored.weight);
    assert_eq!(updated.rpm, stored.rpm);
    assert_eq!(store.get_account(&stored.id).await.unwrap(), Some(updated));
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
