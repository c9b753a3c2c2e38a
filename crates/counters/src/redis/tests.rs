//! The Redis counters against the real server at 127.0.0.1:6379 (a server
//! that is down fails these tests): the shared conformance suite, then what
//! only Redis has (scripts reloaded after a flush, the hash tag, expiring
//! day counters) and exactness across separate connections.

use std::collections::HashMap;
use std::sync::Arc;

use ::redis::aio::MultiplexedConnection;
use tollgate_core::clock::{MS_PER_DAY, utc_day, utc_month};

use super::{DAY_COUNTER_TTL_SECS, MONTH_COUNTER_TTL_SECS, RedisCounters};
use crate::conformance::counters_conformance_tests;
use crate::{
    Candidate, CircuitPolicy, CountersError, DenialReason, ErrorClass, LeaseDecision, LeaseGranted,
    LeaseInput, QuotaCounters, Reservation, Selection, SettleInput, Settlement,
};

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const NOON: i64 = 20_000 * MS_PER_DAY + MS_PER_DAY / 2;

/// A prefix no other test (or test run) uses.
fn unique_prefix() -> String {
    format!("tgtest:{}:", tollgate_core::ids::prefixed("run"))
}

/// Counters that decide by the time each call passes (the conformance
/// checks drive time by hand).
async fn connect(prefix: &str) -> RedisCounters {
    RedisCounters::connect(REDIS_URL, prefix)
        .await
        .expect("these tests need Redis at 127.0.0.1:6379")
        .with_caller_clock()
}

/// Deletes every key of one prefix when dropped, so also after a failed
/// assertion (best effort: a leftover key only costs memory).
pub(super) struct TestKeys {
    tag: String,
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        let Ok(mut connection) =
            ::redis::Client::open(REDIS_URL).and_then(|client| client.get_connection())
        else {
            return;
        };
        let pattern = key_pattern(&self.tag);
        let mut cursor = 0_u64;
        loop {
            let Ok((next, keys)) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1_000)
                .query::<(u64, Vec<String>)>(&mut connection)
            else {
                return;
            };
            if !keys.is_empty() {
                let _ = ::redis::cmd("DEL").arg(&keys).exec(&mut connection);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

pub(super) async fn fresh() -> (TestKeys, Arc<RedisCounters>) {
    let counters = connect(&unique_prefix()).await;
    let keys = TestKeys {
        tag: counters.keys.tag.clone(),
    };
    (keys, Arc::new(counters))
}

counters_conformance_tests!(fresh);

/// A SCAN pattern matching the keys that start with `tag`.
fn key_pattern(tag: &str) -> String {
    let mut pattern = String::new();
    for ch in tag.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('*');
    pattern
}

async fn raw_connection() -> MultiplexedConnection {
    ::redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn keys_under(connection: &mut MultiplexedConnection, tag: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(key_pattern(tag))
            .arg("COUNT")
            .arg(1_000)
            .query_async(connection)
            .await
            .unwrap();
        found.extend(keys);
        if next == 0 {
            found.sort();
            return found;
        }
        cursor = next;
    }
}

/// The part of a key Redis Cluster hashes: the text between the first `{`
/// and the first `}` after it, when not empty.
/// Seconds a key has left to live (-1 without an expiry, -2 when absent).
async fn ttl_of(connection: &mut MultiplexedConnection, key: impl ::redis::ToRedisArgs) -> i64 {
    ::redis::cmd("TTL")
        .arg(key)
        .query_async(connection)
        .await
        .unwrap()
}

fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = open + 1 + key[open + 1..].find('}')?;
    (close > open + 1).then(|| &key[open + 1..close])
}

fn pool(accounts: &[(&str, u64)]) -> Vec<Candidate> {
    accounts
        .iter()
        .map(|(id, limit)| Candidate {
            account_id: (*id).into(),
            daily_limit: Some(*limit),
            priority: 0,
            weight: 1,
            strict: false,
        })
        .collect()
}

async fn grant(counters: &RedisCounters, lease_id: &str, candidates: &[Candidate]) -> LeaseGranted {
    match counters
        .lease(LeaseInput {
            lease_id: lease_id.into(),
            candidates: candidates.to_vec(),
            reservation: Reservation::exact(10),
            now_ms: NOON,
            ttl_ms: 60_000,
            key: None,
            selection: Selection::default(),
            health_probe: false,
        })
        .await
        .unwrap()
    {
        LeaseDecision::Granted(grant) => grant,
        LeaseDecision::Denied(denial) => panic!("expected a grant, got {denial:?}"),
    }
}

fn settle_input(grant: &LeaseGranted, tokens: u64) -> SettleInput {
    SettleInput {
        lease_id: grant.lease_id.clone(),
        account_id: grant.account_id.clone(),
        key_id: None,
        actual_tokens: tokens,
        cost_micro_usd: 0,
        served: false,
        latency_us: None,
        now_ms: NOON,
        remember_ms: 60_000,
    }
}

async fn settle(counters: &RedisCounters, grant: &LeaseGranted, tokens: u64) -> Settlement {
    counters.settle(settle_input(grant, tokens)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_loaded_again_after_a_script_flush() {
    let (_keys, counters) = fresh().await;
    let accounts = pool(&[("a", 1_000)]);
    let first = grant(&counters, "before-flush", &accounts).await;

    let mut connection = raw_connection().await;
    ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec_async(&mut connection)
        .await
        .unwrap();

    // Every operation still works: each is sent by SHA, gets NOSCRIPT, is
    // loaded and sent again.
    let second = grant(&counters, "after-flush", &accounts).await;
    assert!(counters.renew("after-flush", 1_000, NOON).await.unwrap());
    assert_eq!(settle(&counters, &first, 10).await, Settlement::Settled);
    counters.cooldown("a", 1, NOON).await.unwrap();
    let policy = CircuitPolicy {
        failure_threshold: 3,
        base_backoff_ms: 1_000,
        max_backoff_ms: 1_000,
    };
    assert_eq!(
        counters.record_failure("a", policy, NOON).await.unwrap(),
        None
    );
    assert!(!counters.record_success("a", NOON).await.unwrap());
    counters.reset_health("z", true, true).await.unwrap();
    counters
        .raise_used_today("b", 1, utc_day(NOON), NOON)
        .await
        .unwrap()
        .unwrap();
    counters
        .raise_key_used_today("k", 1, utc_day(NOON), NOON)
        .await
        .unwrap()
        .unwrap();
    counters
        .raise_key_spend("k", 1, utc_month(NOON), NOON)
        .await
        .unwrap()
        .unwrap();
    counters
        .record_error("a", ErrorClass::Timeout, NOON)
        .await
        .unwrap();
    assert!(counters.claim("probe:a", 1_000, NOON).await.unwrap());
    assert_eq!(counters.sweep(NOON + 60_000).await.unwrap(), 1);
    let usage = counters.usage("a", NOON).await.unwrap();
    assert_eq!((usage.used_today, usage.reserved), (10, 0));
    assert_eq!(settle(&counters, &second, 5).await, Settlement::Late);

    let loaded: Vec<bool> = ::redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(
            counters
                .scripts
                .all()
                .iter()
                .map(|script| script.get_hash())
                .collect::<Vec<_>>(),
        )
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(loaded, vec![true; counters.scripts.all().len()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_the_prefix_as_its_hash_tag() {
    let prefix = unique_prefix();
    let counters = connect(&prefix).await;
    let _keys = TestKeys {
        tag: counters.keys.tag.clone(),
    };
    // Account ids with braces and colons cannot move a key's tag.
    let accounts = pool(&[("plain", 1_000), ("we{ir}d:id", 5_000)]);
    let settled = grant(&counters, "lease-1", &accounts).await;
    assert_eq!(settled.account_id, "we{ir}d:id");
    settle(&counters, &settled, 7).await;
    let open = grant(&counters, "lease-2", &accounts[..1]).await;
    counters.cooldown("cooling", 5_000, NOON).await.unwrap();

    let mut connection = raw_connection().await;
    let keys = keys_under(&mut connection, &counters.keys.tag).await;
    let day = utc_day(NOON);
    let tag = &counters.keys.tag;
    let mut expected = vec![
        format!("{tag}acct:cooling"),
        format!("{tag}acct:plain"),
        format!("{tag}acct:we{{ir}}d:id"),
        format!("{tag}expiry"),
        format!("{tag}leases"),
        format!("{tag}used:{day}:we{{ir}}d:id"),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    for key in &keys {
        assert_eq!(hash_tag(key), Some(prefix.as_str()), "{key}");
    }
    assert_eq!(open.account_id, "plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_counters_expire_and_are_keyed_by_utc_day() {
    let (_keys, counters) = fresh().await;
    let first = grant(&counters, "lease-1", &pool(&[("a", 1_000)])).await;
    settle(&counters, &first, 30).await;

    let mut connection = raw_connection().await;
    let tag = &counters.keys.tag;
    let day_key = format!("{tag}used:{}:a", utc_day(NOON));
    let used: u64 = ::redis::cmd("GET")
        .arg(&day_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(used, 30);
    let ttl = ttl_of(&mut connection, &day_key).await;
    let full = i64::try_from(DAY_COUNTER_TTL_SECS).unwrap();
    assert!(ttl > full - 60 && ttl <= full, "TTL {ttl}");
    // The account's hash has no expiry: it holds the cooldown and the open
    // reservations, which must outlive any day.
    let account_ttl = ttl_of(&mut connection, format!("{tag}acct:a")).await;
    assert_eq!(account_ttl, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_spend_is_keyed_by_utc_month_and_expires() {
    let (_keys, counters) = fresh().await;
    let mut connection = raw_connection().await;
    let tag = counters.keys.tag.clone();
    let spend_key = format!("{tag}kspend:{}:key-1", utc_month(NOON));
    assert!(spend_key.ends_with("}kspend:202410:key-1"), "{spend_key}");
    let charge = |lease_id: &str, cost_micro_usd: u64| SettleInput {
        lease_id: lease_id.into(),
        account_id: "a".into(),
        key_id: Some("key-1".into()),
        actual_tokens: 10,
        cost_micro_usd,
        served: false,
        latency_us: None,
        now_ms: NOON,
        remember_ms: 60_000,
    };
    // A free request writes no spend counter.
    counters.settle(charge("free", 0)).await.unwrap();
    let exists: bool = ::redis::cmd("EXISTS")
        .arg(&spend_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(!exists);
    counters.settle(charge("paid-1", 250)).await.unwrap();
    counters.settle(charge("paid-2", 50)).await.unwrap();
    let spent: u64 = ::redis::cmd("GET")
        .arg(&spend_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(spent, 300);
    let ttl = ttl_of(&mut connection, &spend_key).await;
    let full = i64::try_from(MONTH_COUNTER_TTL_SECS).unwrap();
    assert!(ttl > full - 60 && ttl <= full, "TTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_day_counts_are_keyed_by_utc_day_and_expire() {
    let (_keys, counters) = fresh().await;
    let mut connection = raw_connection().await;
    let day_key = format!("{}activity:{}:a", counters.keys.tag, utc_day(NOON));
    counters
        .record_error("a", ErrorClass::ServerError, NOON)
        .await
        .unwrap();
    let grant = grant(&counters, "served", &pool(&[("a", 1_000)])).await;
    counters
        .settle(SettleInput {
            served: true,
            latency_us: Some(1_500),
            ..settle_input(&grant, 10)
        })
        .await
        .unwrap();
    let counts: HashMap<String, u64> = ::redis::cmd("HGETALL")
        .arg(&day_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        counts,
        HashMap::from([("successes".to_owned(), 1), ("errors".to_owned(), 1)])
    );
    let ttl = ttl_of(&mut connection, &day_key).await;
    let full = i64::try_from(DAY_COUNTER_TTL_SECS).unwrap();
    assert!(ttl > full - 60 && ttl <= full, "TTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prefixes_and_unreachable_servers_are_errors() {
    for prefix in ["", "a{b", "a}b"] {
        assert!(matches!(
            RedisCounters::connect(REDIS_URL, prefix).await,
            Err(CountersError::InvalidInput(_))
        ));
    }
    // Nothing listens on port 1; the password never shows in the error.
    let err = RedisCounters::connect("redis://user:s3cret@127.0.0.1:1", "tgtest:")
        .await
        .unwrap_err();
    assert!(matches!(err, CountersError::Backend(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let err = RedisCounters::connect("not a url", "tgtest:")
        .await
        .unwrap_err();
    assert!(matches!(err, CountersError::Backend(_)), "{err:?}");

    let (_keys, counters) = fresh().await;
    assert!(!format!("{counters:?}").contains("127.0.0.1"));
    assert!(matches!(
        counters
            .lease(LeaseInput {
                lease_id: "huge".into(),
                candidates: pool(&[("a", 1_000)]),
                reservation: Reservation::exact(1 << 53),
                now_ms: NOON,
                ttl_ms: 1,
                key: None,
                selection: Selection::default(),
                health_probe: false,
            })
            .await,
        Err(CountersError::InvalidInput(_))
    ));
}

/// Three quota replicas (three connections) and many tasks race for four
/// accounts whose caps are far below the demand. Each task asks for one size
/// (sizes differ between tasks), settles every grant at its exact size, and
/// stops at its first refusal: a refusal while some account still had room
/// would leave that room unused at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_never_pass_a_cap_nor_refuse_what_fits() {
    const CAPS: [(&str, u64); 4] = [("p", 1_000), ("q", 1_500), ("r", 700), ("s", 2_300)];
    const SIZES: [u64; 4] = [3, 10, 25, 60];
    const TASKS: u64 = 36;
    /// Far more than the caps allow; a task that gets here never was refused.
    const MAX_ATTEMPTS: u64 = 2_000;

    let prefix = unique_prefix();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(connect(&prefix).await));
    }
    let _keys = TestKeys {
        tag: replicas[0].keys.tag.clone(),
    };
    let candidates: Arc<[Candidate]> = Arc::from(pool(&CAPS));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let counters = Arc::clone(&replicas[(task % 3) as usize]);
        let candidates = Arc::clone(&candidates);
        let tokens = SIZES[(task % 4) as usize];
        tasks.push(tokio::spawn(async move {
            let mut admitted = Vec::new();
            for attempt in 0..MAX_ATTEMPTS {
                let decision = counters
                    .lease(LeaseInput {
                        lease_id: format!("task{task}-{attempt}"),
                        candidates: candidates.to_vec(),
                        reservation: Reservation::exact(tokens),
                        now_ms: NOON,
                        ttl_ms: 600_000,
                        key: None,
                        selection: Selection::default(),
                        health_probe: false,
                    })
                    .await
                    .unwrap();
                match decision {
                    LeaseDecision::Granted(grant) => {
                        // Hold the reservation a little while others race.
                        for _ in 0..(task + attempt) % 4 {
                            tokio::task::yield_now().await;
                        }
                        assert_eq!(settle(&counters, &grant, tokens).await, Settlement::Settled);
                        admitted.push((grant.account_id, tokens));
                    }
                    LeaseDecision::Denied(denial) => {
                        assert!(
                            matches!(
                                denial.reason,
                                DenialReason::DailyLimit | DenialReason::InFlight
                            ),
                            "{denial:?}"
                        );
                        return (admitted, tokens);
                    }
                }
            }
            panic!("task {task} was never refused");
        }));
    }

    let mut per_account = HashMap::<String, u64>::new();
    let mut smallest_refused = u64::MAX;
    for task in tasks {
        let (admitted, refused) = task.await.unwrap();
        for (account, tokens) in admitted {
            *per_account.entry(account).or_default() += tokens;
        }
        smallest_refused = smallest_refused.min(refused);
    }
    assert_eq!(smallest_refused, SIZES[0]);

    for (account, cap) in CAPS {
        let admitted = per_account.get(account).copied().unwrap_or(0);
        assert!(admitted <= cap, "{account} admitted {admitted} > {cap}");
        let usage = replicas[0].usage(account, NOON).await.unwrap();
        assert_eq!(
            (usage.used_today, usage.reserved),
            (admitted, 0),
            "{account}"
        );
        // Each refusal came when no account fitted it, and settles at the
        // exact size only ever add: so none may fit one now.
        assert!(
            cap - admitted < smallest_refused,
            "{account} has {} left, yet a request of {smallest_refused} was refused",
            cap - admitted
        );
    }
}

/// Two replicas on one prefix deciding by the server's clock, whatever
/// their own clocks say: one ten minutes behind, one ten minutes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_skewed_clocks_decide_by_the_servers() {
    let prefix = unique_prefix();
    let behind = RedisCounters::connect(REDIS_URL, prefix.clone())
        .await
        .unwrap();
    let ahead = RedisCounters::connect(REDIS_URL, prefix).await.unwrap();
    let _keys = TestKeys {
        tag: behind.keys.tag.clone(),
    };
    let real = tollgate_core::clock::now_ms();
    let skew = 10 * 60_000;
    let pool = pool(&[("a", 1_000_000)]);
    let decision = behind
        .lease(LeaseInput {
            lease_id: "from-behind".into(),
            candidates: pool,
            reservation: Reservation::exact(100),
            now_ms: real - skew,
            ttl_ms: 60_000,
            key: None,
            selection: Selection::default(),
            health_probe: false,
        })
        .await
        .unwrap();
    let LeaseDecision::Granted(grant) = decision else {
        panic!("expected a grant, got {decision:?}");
    };
    // The decision's time is the server's, not the caller's.
    assert!((grant.decided_at_ms - real).abs() < 5_000, "{grant:?}");
    assert!(
        (grant.expires_at_ms - (real + 60_000)).abs() < 5_000,
        "{grant:?}"
    );

    // The replica ahead sweeps: by its clock the lease expired ten minutes
    // ago, by the server's it has a minute left.
    assert_eq!(ahead.sweep(real + skew).await.unwrap(), 0);
    let usage = ahead.usage("a", real + skew).await.unwrap();
    assert_eq!(usage.reserved, 100);
    assert!(
        ahead
            .renew("from-behind", 60_000, real + skew)
            .await
            .unwrap()
    );

    // The day follows the server too: a settle from a replica whose clock
    // says yesterday charges the server's today.
    let yesterday = real - MS_PER_DAY;
    let settled = behind
        .settle(SettleInput {
            lease_id: grant.lease_id.clone(),
            account_id: "a".into(),
            key_id: None,
            actual_tokens: 70,
            cost_micro_usd: 0,
            served: true,
            latency_us: None,
            now_ms: yesterday,
            remember_ms: 60_000,
        })
        .await
        .unwrap();
    assert_eq!(settled, Settlement::Settled);
    let usage = ahead.usage("a", real + MS_PER_DAY).await.unwrap();
    assert_eq!((usage.used_today, usage.reserved), (70, 0));
    let mut connection = raw_connection().await;
    let today_key = format!("{}used:{}:a", behind.keys.tag, utc_day(real));
    let used: Option<i64> = ::redis::cmd("GET")
        .arg(&today_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(used, Some(70));

    // A cooldown is a duration from the server's now, not the caller's.
    let until = behind.cooldown("a", 30_000, yesterday).await.unwrap();
    assert!((until - (real + 30_000)).abs() < 5_000, "{until}");
    // Raising today's counter takes the server's today only.
    assert_eq!(
        ahead
            .raise_used_today("a", 500, utc_day(real + skew), real + skew)
            .await
            .unwrap(),
        if utc_day(real + skew) == utc_day(real) {
            Some(70)
        } else {
            None
        }
    );
}
