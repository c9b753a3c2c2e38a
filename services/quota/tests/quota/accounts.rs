//! Provider accounts: validated, secrets sealed at rest and masked on read.

use tollgate_control_store::NewAccount;
use tollgate_core::{ErrorKind, Provider};
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    AccountSpec, AccountUpdate, IdRequest, ListRequest, ModelPrices, StringList,
};
use tonic::Request;

use crate::{gateway_error, mock_spec, spawn_app};

const SECRET: &str = "sk-live-0123456789abcdefghijWXYZ";

fn openai_spec(name: &str, secret: &str) -> AccountSpec {
    AccountSpec {
        provider: "openai".into(),
        name: name.into(),
        secret: secret.into(),
        models: vec!["gpt-4o-mini".into()],
        ..AccountSpec::default()
    }
}

#[tokio::test]
async fn secrets_are_masked_on_read_and_sealed_in_the_database_file() {
    let app = spawn_app().await;
    let created = app.create_account(openai_spec("main", SECRET)).await;
    assert_eq!(created.secret_mask, "sk-…WXYZ");
    assert_eq!(created.provider, "openai");
    assert_eq!(created.profile, "default");
    assert_eq!((created.priority, created.weight), (0, 1));
    assert!(created.enabled);
    assert_eq!((created.tokens_used_today, created.tokens_reserved), (0, 0));

    let listed = app
        .quota
        .list_accounts(Request::new(ListRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.accounts, std::slice::from_ref(&created));
    assert_eq!(app.get_account(&created.id).await, created);
    assert!(!format!("{listed:?}").contains(SECRET));

    // The raw column holds the sealed form, which opens to the secret.
    let sealed: String = sqlx::query_scalar("SELECT secret_sealed FROM accounts WHERE id = ?")
        .bind(&created.id)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert!(sealed.starts_with(&format!("v1:{}:", app.secrets.key_id())));
    assert!(!sealed.contains(SECRET));
    use secrecy::ExposeSecret;
    assert_eq!(app.secrets.open(&sealed).unwrap().expose_secret(), SECRET);

    // Nowhere in the database files is the plaintext.
    sqlx::query("PRAGMA wal_checkpoint(FULL)")
        .execute(app.store.pool())
        .await
        .unwrap();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(SECRET.len())
                .any(|window| window == SECRET.as_bytes())
        );
    }

    // A new secret replaces the old one; other fields stay.
    let updated = app
        .quota
        .update_account(Request::new(AccountUpdate {
            id: created.id.clone(),
            secret: Some("sk-rotated-9876543210zzzz".into()),
            models: Some(StringList {
                values: vec!["gpt-4o".into()],
            }),
            daily_token_limit: Some(5_000),
            ..AccountUpdate::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.secret_mask, "sk-…zzzz");
    assert_eq!(updated.models, ["gpt-4o"]);
    assert_eq!(updated.daily_token_limit, Some(5_000));
    assert_eq!(updated.name, "main");

    app.quota
        .delete_account(Request::new(IdRequest {
            id: created.id.clone(),
        }))
        .await
        .unwrap();
    let gone = app
        .quota
        .get_account(Request::new(IdRequest { id: created.id }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(gone).kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn invalid_accounts_are_refused_with_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            AccountSpec {
                provider: "acme".into(),
                ..mock_spec("a", &[], None)
            },
            "provider",
        ),
        (openai_spec("no-secret", ""), "secret"),
        (
            AccountSpec {
                provider: "openai_compatible".into(),
                secret: "sk-x".into(),
                ..mock_spec("no-url", &["m"], None)
            },
            "base_url",
        ),
        (
            AccountSpec {
                base_url: "ftp://files.example.com".into(),
                ..openai_spec("ftp", SECRET)
            },
            "base_url",
        ),
        (
            AccountSpec {
                profile: "a b".into(),
                ..mock_spec("p", &[], None)
            },
            "profile",
        ),
        (mock_spec("zero", &["m"], Some(0)), "daily_token_limit"),
        (mock_spec("space", &["bad model"], None), "models"),
    ];
    for (spec, param) in cases {
        let err = gateway_error(
            app.quota
                .create_account(Request::new(spec))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{param}");
        assert_eq!(err.param.as_deref(), Some(param));
    }
    let listed = app
        .quota
        .list_accounts(Request::new(ListRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.accounts.is_empty());

    // An update may not leave an account incomplete.
    let compatible = app
        .create_account(AccountSpec {
            provider: "openai_compatible".into(),
            secret: "sk-compatible-secret".into(),
            base_url: "http://127.0.0.1:9/v1/".into(),
            ..mock_spec("compatible", &["m"], None)
        })
        .await;
    assert_eq!(compatible.base_url, "http://127.0.0.1:9/v1");
    for clear in ["base_url", "secret"] {
        let err = app
            .quota
            .update_account(Request::new(AccountUpdate {
                id: compatible.id.clone(),
                clear: vec![clear.into()],
                ..AccountUpdate::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(gateway_error(err).param.as_deref(), Some(clear));
    }
    assert_eq!(
        app.get_account(&compatible.id).await.base_url,
        "http://127.0.0.1:9/v1"
    );
}

#[tokio::test]
async fn provider_defaults_apply() {
    let app = spawn_app().await;
    let rovodev = app
        .create_account(AccountSpec {
            provider: "rovodev".into(),
            email: "dev@example.com".into(),
            secret: "atlassian-token-0000".into(),
            base_url: "https://rovo.example.com".into(),
            ..mock_spec("", &["claude-sonnet-4"], None)
        })
        .await;
    assert_eq!(
        rovodev.daily_token_limit,
        Some(tollgate_quota::ROVODEV_DEFAULT_DAILY_TOKENS)
    );
    assert_eq!(rovodev.daily_token_limit, Some(20_000_000));
    assert_eq!(rovodev.name, "rovodev");
    assert_eq!(rovodev.email, "dev@example.com");

    let without_email = app
        .quota
        .create_account(Request::new(AccountSpec {
            provider: "rovodev".into(),
            secret: "atlassian-token-0000".into(),
            base_url: "https://rovo.example.com".into(),
            ..mock_spec("rovo-2", &["claude-sonnet-4"], None)
        }))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(without_email).param.as_deref(), Some("email"));

    let mock = app
        .create_account(mock_spec("mock", &["mock-echo"], None))
        .await;
    assert_eq!(mock.secret_mask, "");
    assert_eq!(mock.base_url, "");
    assert_eq!(mock.daily_token_limit, None);
}

#[tokio::test]
async fn ensure_account_creates_once_by_name() {
    let app = spawn_app().await;
    let mock = NewAccount {
        models: vec!["mock-echo".into()],
        ..NewAccount::new(Provider::Mock, "mock")
    };
    let first = app.quota.ensure_account(mock.clone()).await.unwrap();
    assert!(first.created);
    let second = app
        .quota
        .ensure_account(NewAccount {
            models: vec![],
            ..mock
        })
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(second.account, first.account);
    assert_eq!(
        app.lease("mock-echo", 10).await.account_id,
        first.account.id
    );

    let sealed = app.secrets.seal(SECRET).unwrap();
    let env_openai = NewAccount {
        sealed_secret: Some(sealed),
        models: vec!["gpt-4o-mini".into()],
        ..NewAccount::new(Provider::OpenAi, "env-openai")
    };
    assert!(app.quota.ensure_account(env_openai).await.unwrap().created);
    assert_eq!(app.lease("gpt-4o-mini", 10).await.credential, SECRET);

    let incomplete = NewAccount::new(Provider::OpenAi, "no-secret");
    let err = app.quota.ensure_account(incomplete).await.unwrap_err();
    assert_eq!(err.param.as_deref(), Some("secret"));
}

#[tokio::test]
async fn an_accounts_own_prices_are_kept_and_travel_in_its_leases() {
    let app = spawn_app().await;
    let negotiated = ModelPrices {
        input: 2_000_000,
        output: 8_000_000,
        cached_input: Some(500_000),
        ..ModelPrices::default()
    };
    let created = app
        .create_account(AccountSpec {
            prices: Some(negotiated),
            ..mock_spec("negotiated", &["house-model"], None)
        })
        .await;
    assert_eq!(created.prices, Some(negotiated));
    assert_eq!(app.get_account(&created.id).await.prices, Some(negotiated));
    let grant = app.lease("house-model", 10).await;
    assert_eq!(grant.account_id, created.id);
    assert_eq!(grant.prices, Some(negotiated));

    // Cleared, the account's requests go back to the catalog's prices.
    let update = |prices, clear: &[&str]| AccountUpdate {
        id: created.id.clone(),
        prices,
        clear: clear.iter().map(|field| (*field).to_owned()).collect(),
        ..AccountUpdate::default()
    };
    let both = app
        .quota
        .update_account(Request::new(update(Some(negotiated), &["prices"])))
        .await
        .unwrap_err();
    assert_eq!(gateway_error(both).param.as_deref(), Some("prices"));
    let cleared = app
        .quota
        .update_account(Request::new(update(None, &["prices"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.prices, None);
    assert_eq!(app.lease("house-model", 10).await.prices, None);
}
