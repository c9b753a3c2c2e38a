//! Key invalidations: a key changed through one quota replica reaches the
//! `WatchInvalidations` streams of every replica that broadcasts through the
//! same Redis (127.0.0.1:6379, a fresh channel prefix per test); and an
//! account written through one replica is served by the others at once.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use secrecy::SecretString;
use tollgate_proto::Quota;
use tollgate_proto::v1::{
    IdRequest, KeySpec, KeyUpdate, ListModelsRequest, WatchInvalidationsRequest,
};
use tollgate_quota::{BroadcastRedis, QuotaService};
use tonic::Request;

use crate::*;

const REDIS: &str = "redis://127.0.0.1:6379";

/// Broadcasting through Redis on channel prefix `prefix`.
fn broadcast(prefix: &str) -> Option<BroadcastRedis> {
    Some(BroadcastRedis {
        redis_url: SecretString::from(REDIS),
        prefix: prefix.to_owned(),
    })
}

/// Waits until `count` broadcasts listen on the channel.
async fn subscribers(channel: &str, count: i64) {
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("this test needs Redis at 127.0.0.1:6379");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, listening): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        if listening >= count {
            return;
        }
        assert!(Instant::now() < deadline, "broadcasts never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two replicas broadcasting through a fresh channel, each subscribed: the
/// app's, and a second one over the same control store whose snapshot
/// would not refresh on its own within any test.
async fn broadcasting_pair() -> (TestApp, Arc<QuotaService>) {
    let prefix = format!("tollgate-test-{}:", tollgate_core::ids::request_id());
    let app = spawn_app_on(QuotaSettings::default(), broadcast(&prefix)).await;
    let quiet = QuotaSettings {
        refresh_interval: Duration::from_secs(3_600),
        ..QuotaSettings::default()
    };
    let other = app.replica(quiet, broadcast(&prefix)).await;
    subscribers(&format!("{prefix}invalidations"), 2).await;
    (app, other)
}

async fn model_names(quota: &QuotaService) -> Vec<String> {
    let list = quota
        .list_models(Request::new(ListModelsRequest {}))
        .await
        .unwrap()
        .into_inner();
    list.models.into_iter().map(|model| model.id).collect()
}

async fn create_key(quota: &QuotaService) -> (String, String) {
    let created = quota
        .create_key(Request::new(KeySpec::default()))
        .await
        .unwrap()
        .into_inner();
    let secret = created.secret;
    let id = created.key.unwrap().id;
    (
        id,
        tollgate_core::apikey::KeyHash::of(&secret)
            .as_str()
            .to_owned(),
    )
}

#[tokio::test]
async fn every_key_write_is_announced_with_its_hash() {
    let app = spawn_app().await;
    let mut events = app
        .quota
        .watch_invalidations(Request::new(WatchInvalidationsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let (id, hash) = create_key(&app.quota).await;
    app.quota
        .update_key(Request::new(KeyUpdate {
            id: id.clone(),
            enabled: Some(false),
            ..KeyUpdate::default()
        }))
        .await
        .unwrap();
    app.quota
        .delete_key(Request::new(IdRequest { id: id.clone() }))
        .await
        .unwrap();
    for _ in 0..2 {
        let event = events.next().await.unwrap().unwrap();
        assert_eq!(
            (event.key_id.as_str(), event.key_hash.as_str()),
            (id.as_str(), hash.as_str())
        );
        assert!(!event.all);
    }
    app.quota.stop_invalidations();
    assert!(
        events.next().await.is_none(),
        "creating a key announces nothing"
    );
}

#[tokio::test]
async fn a_key_revoked_through_one_replica_reaches_the_others_watchers() {
    let (app, other) = broadcasting_pair().await;
    assert!(matches!(
        other.broadcast_invalidations(REDIS, "any:"),
        Err(tollgate_quota::BroadcastError::AlreadyBroadcasting)
    ));
    let mut local = app
        .quota
        .watch_invalidations(Request::new(WatchInvalidationsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let mut remote = other
        .watch_invalidations(Request::new(WatchInvalidationsRequest {}))
        .await
        .unwrap()
        .into_inner();

    let (id, hash) = create_key(&app.quota).await;
    app.quota
        .delete_key(Request::new(IdRequest { id: id.clone() }))
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(1), remote.next())
        .await
        .expect("the other replica's watcher heard nothing within 1 s")
        .unwrap()
        .unwrap();
    assert_eq!(
        (heard.key_id.as_str(), heard.key_hash.as_str()),
        (id.as_str(), hash.as_str())
    );
    let own = local.next().await.unwrap().unwrap();
    assert_eq!(own.key_id, id);
    // The replica's own event is not delivered a second time from Redis.
    let again = tokio::time::timeout(Duration::from_millis(300), local.next()).await;
    assert!(again.is_err(), "duplicate: {again:?}");

    app.quota.stop_invalidations();
    other.stop_invalidations();
}

#[tokio::test]
async fn an_account_written_through_one_replica_is_served_by_the_others_at_once() {
    let (app, other) = broadcasting_pair().await;
    assert!(
        !model_names(&other)
            .await
            .contains(&"fresh-model".to_owned())
    );

    let created = app
        .create_account(mock_spec("fresh", &["fresh-model"], None))
        .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !model_names(&other)
        .await
        .contains(&"fresh-model".to_owned())
    {
        assert!(
            Instant::now() < deadline,
            "the other replica does not serve the new account 2 s after it was created"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Disabling it through the other replica takes it out of the first's
    // leases the same way.
    other
        .update_account(Request::new(tollgate_proto::v1::AccountUpdate {
            id: created.id.clone(),
            enabled: Some(false),
            ..tollgate_proto::v1::AccountUpdate::default()
        }))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while app.try_lease("fresh-model", 10, &[]).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the disabled account is still leased"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    app.quota.stop_invalidations();
    other.stop_invalidations();
}
