//! Client keys: created once in plaintext, stored as a hash, resolved by it.

use tollgate_core::ErrorKind;
use tollgate_core::apikey::{KeyHash, looks_like_key};
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    IdRequest, KeySpec, KeyUpdate, ListRequest, ResolveKeyRequest, StringList,
};
use tonic::Request;

use crate::{TestApp, gateway_error, spawn_app};

async fn resolve(
    app: &TestApp,
    plaintext: &str,
) -> Result<tollgate_proto::v1::KeyRecord, tollgate_core::GatewayError> {
    app.quota
        .resolve_key(Request::new(ResolveKeyRequest {
            key_hash: KeyHash::of(plaintext).as_str().to_owned(),
        }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(gateway_error)
}

#[tokio::test]
async fn keys_are_created_once_listed_updated_and_deleted() {
    let app = spawn_app().await;
    assert!(!app.quota.has_keys().await.unwrap());

    let created = app
        .quota
        .create_key(Request::new(KeySpec {
            name: "ci".into(),
            profiles: vec!["team-a".into()],
            rpm: Some(60),
            daily_token_budget: Some(100_000),
            ..KeySpec::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let plaintext = created.secret.clone();
    assert!(looks_like_key(&plaintext));
    let key = created.key.unwrap();
    assert_eq!(key.profile, "default");
    assert_eq!(key.profiles, ["team-a"]);
    assert!(key.enabled);
    assert!(plaintext.starts_with(&key.prefix));
    assert!(plaintext.ends_with(&key.last4));
    assert!(app.quota.has_keys().await.unwrap());

    // Only the hash is stored.
    let stored_hash: String = sqlx::query_scalar("SELECT key_hash FROM keys")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(stored_hash, KeyHash::of(&plaintext).as_str());

    assert_eq!(resolve(&app, &plaintext).await.unwrap(), key);
    let listed = app
        .quota
        .list_keys(Request::new(ListRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys, std::slice::from_ref(&key));

    let updated = app
        .quota
        .update_key(Request::new(KeyUpdate {
            id: key.id.clone(),
            name: Some("ci-2".into()),
            models: Some(StringList {
                values: vec!["mock-echo".into()],
            }),
            tpm: Some(1_000),
            clear: vec!["rpm".into()],
            ..KeyUpdate::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "ci-2");
    assert_eq!(updated.models, ["mock-echo"]);
    assert_eq!((updated.rpm, updated.tpm), (None, Some(1_000)));
    assert_eq!(updated.daily_token_budget, Some(100_000));
    assert_eq!(updated.profiles, ["team-a"]);

    let fetched = app
        .quota
        .get_key(Request::new(IdRequest { id: key.id.clone() }))
        .await
        .unwrap();
    assert_eq!(fetched.into_inner(), updated);

    app.quota
        .delete_key(Request::new(IdRequest { id: key.id.clone() }))
        .await
        .unwrap();
    let missing = app
        .quota
        .get_key(Request::new(IdRequest { id: key.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(missing).kind, ErrorKind::NotFound);
    assert_eq!(
        resolve(&app, &plaintext).await.unwrap_err().kind,
        ErrorKind::InvalidApiKey
    );
    let again = app
        .quota
        .delete_key(Request::new(IdRequest { id: key.id }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(again).kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn unknown_disabled_and_expired_keys_do_not_resolve() {
    let app = spawn_app().await;
    let unknown = resolve(&app, "tg-not-a-real-key").await.unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::InvalidApiKey);
    assert_eq!(unknown.kind.http_status(), 401);

    let expiring = app
        .quota
        .create_key(Request::new(KeySpec {
            expires_at: Some(NOON_SECS + 60),
            ..KeySpec::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resolve(&app, &expiring.secret).await.is_ok());
    app.clock.advance(60_000);
    let expired = resolve(&app, &expiring.secret).await.unwrap_err();
    assert_eq!(expired.kind, ErrorKind::InvalidApiKey);
    assert!(expired.message.contains("expired"));

    let disabled = app
        .quota
        .create_key(Request::new(KeySpec {
            enabled: Some(false),
            ..KeySpec::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let refused = resolve(&app, &disabled.secret).await.unwrap_err();
    assert!(refused.message.contains("disabled"));
}

const NOON_SECS: i64 = crate::NOON / 1000;

#[tokio::test]
async fn invalid_key_input_names_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            KeySpec {
                profile: "team a".into(),
                ..KeySpec::default()
            },
            "profile",
        ),
        (
            KeySpec {
                profiles: vec!["ok".into(), "no way".into()],
                ..KeySpec::default()
            },
            "profiles",
        ),
        (
            KeySpec {
                rpm: Some(0),
                ..KeySpec::default()
            },
            "rpm",
        ),
        (
            KeySpec {
                models: vec!["".into()],
                ..KeySpec::default()
            },
            "models",
        ),
        (
            KeySpec {
                monthly_budget_micro_usd: Some(-5),
                ..KeySpec::default()
            },
            "monthly_budget_micro_usd",
        ),
    ];
    for (spec, param) in cases {
        let err = gateway_error(app.quota.create_key(Request::new(spec)).await.unwrap_err());
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{param}");
        assert_eq!(err.param.as_deref(), Some(param));
    }
    assert!(!app.quota.has_keys().await.unwrap());

    let key = app
        .quota
        .create_key(Request::new(KeySpec::default()))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    let bad_clear = app
        .quota
        .update_key(Request::new(KeyUpdate {
            id: key.id.clone(),
            clear: vec!["name".into()],
            ..KeyUpdate::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(bad_clear).param.as_deref(), Some("clear"));
    let both = app
        .quota
        .update_key(Request::new(KeyUpdate {
            id: key.id,
            rpm: Some(5),
            clear: vec!["rpm".into()],
            ..KeyUpdate::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(both).param.as_deref(), Some("rpm"));
}
