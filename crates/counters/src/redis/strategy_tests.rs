//! Round robin across replicas: two `RedisCounters` on one prefix share the
//! cursor, so the rotation stays fair whichever replica takes a request.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_core::clock::MS_PER_DAY;

use super::RedisCounters;
use super::tests::fresh;
use crate::{
    Candidate, LeaseDecision, LeaseInput, QuotaCounters, Reservation, Selection, Strategy,
};

const NOON: i64 = 20_000 * MS_PER_DAY + MS_PER_DAY / 2;
const ACCOUNTS: [&str; 3] = ["a", "b", "c"];
const ROUNDS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_stays_fair_across_replicas() {
    let (_keys, first) = fresh().await;
    let prefix = first.keys.tag.trim_matches(['{', '}']).to_owned();
    let second = Arc::new(
        RedisCounters::connect("redis://127.0.0.1:6379", prefix)
            .await
            .unwrap()
            .with_caller_clock(),
    );
    let candidates: Vec<Candidate> = ACCOUNTS
        .iter()
        .map(|id| Candidate {
            account_id: (*id).into(),
            daily_limit: Some(1_000_000),
            priority: 0,
            weight: 1,
            strict: false,
        })
        .collect();
    let replicas: [Arc<RedisCounters>; 2] = [first, second];
    let mut tasks = Vec::new();
    for task in 0..6 {
        let counters = Arc::clone(&replicas[task % 2]);
        let candidates = candidates.clone();
        tasks.push(tokio::spawn(async move {
            let mut served = Vec::new();
            for n in 0..ROUNDS {
                let decision = counters
                    .lease(LeaseInput {
                        lease_id: format!("rr-{task}-{n}"),
                        candidates: candidates.clone(),
                        reservation: Reservation::exact(1),
                        now_ms: NOON,
                        ttl_ms: 60_000,
                        key: None,
                        selection: Selection {
                            strategy: Strategy::RoundRobin,
                            draw: 0,
                            pool: "team-a/gpt-4o".into(),
                        },
                        health_probe: false,
                    })
                    .await
                    .unwrap();
                match decision {
                    LeaseDecision::Granted(grant) => served.push(grant.account_id),
                    LeaseDecision::Denied(denial) => panic!("denied: {denial:?}"),
                }
            }
            served
        }));
    }
    let mut per_account: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for account in task.await.unwrap() {
            *per_account.entry(account).or_default() += 1;
        }
    }
    for account in ACCOUNTS {
        assert_eq!(
            per_account.get(account),
            Some(&(6 * ROUNDS / 3)),
            "{account}"
        );
    }
}
