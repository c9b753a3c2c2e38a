//! A rolling restart in split mode under steady load: two replicas of
//! each service (edge, router, worker, quota, analytics) sharing one Redis
//! prefix and one Postgres database, restarted one at a time with SIGTERM
//! while a load balancer in front of the edges sends a steady mix of plain
//! and streamed requests to the edges whose `/readyz` answered 200. No
//! client request fails, and both the stored usage and the account's
//! counter are exactly what the clients were told.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use support::*;
use tokio::task::{JoinHandle, JoinSet};

/// Every quota replica seals and opens account secrets with it.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const MODEL: &str = "rolling-model";
/// Requests per second the load balancer sends.
const RATE: u64 = 30;
/// How often the load balancer asks each edge's `/readyz`.
const READINESS_POLL: Duration = Duration::from_millis(100);
/// Probes in a row that must fail before the balancer takes an edge out
/// (Kubernetes' default `failureThreshold`): one probe lost on a busy
/// machine does not; a draining edge's 503s do, well within its drain
/// delay.
const FAILURE_THRESHOLD: u32 = 3;
/// The upstream account's name, and the variable its secret is read from.
const ACCOUNT: &str = "rolling-upstream";
const SECRET_ENV: &str = "ROLLING_UPSTREAM_KEY";

/// Every process's configuration: a short drain delay, and the upstream
/// account, declared so that the first quota replica creates it and the
/// second finds it at start (a replica sees accounts created through
/// another only at its next refresh).
fn config(upstream: &str) -> String {
    format!(
        "shutdown_drain_delay_secs: 1\n\
         shutdown_grace_secs: 10\n\
         accounts:\n\
         \x20 - name: {ACCOUNT}\n\
         \x20   provider: openai_compatible\n\
         \x20   base_url: {upstream}\n\
         \x20   secret_env: {SECRET_ENV}\n\
         \x20   models: [{MODEL}]\n\
         \x20   daily_token_limit: 100000000\n"
    )
}

/// One replica: how to start it and the process now running.
struct Replica {
    name: String,
    args: Vec<String>,
    /// The log line that says it serves.
    ready: &'static str,
    /// Its gRPC address, or for the edge its public base URL.
    address: Address,
    process: Option<Process>,
    stopped: Vec<Process>,
    starts: usize,
}

enum Address {
    Grpc(String),
    Edge(String),
}

impl Replica {
    async fn start(&mut self, dir: &Path) {
        self.starts += 1;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env = [
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("TOLLGATE_MASTER_KEY", MASTER_KEY),
            (SECRET_ENV, "sk-rolling"),
        ];
        let name = format!("{}-{}", self.name, self.starts);
        let mut process = Process::start(&name, dir, &args, &env);
        wait_for_log(&mut process, self.ready).await;
        match &self.address {
            Address::Grpc(address) => accepting(address, &mut process).await,
            Address::Edge(public) => {
                wait_ready(&format!("{public}/readyz"), &mut [&mut process]).await;
            }
        }
        self.process = Some(process);
    }

    /// SIGTERM, a clean exit, and the same replica started again.
    async fn restart(&mut self, dir: &Path) {
        let mut process = self.process.take().expect("running");
        process.signal("TERM");
        let exit = process.exited(Duration::from_secs(20)).await;
        assert!(exit.success(), "{} exited with {exit:?}", process.name);
        // Kept, so a failing test prints its log too.
        self.stopped.push(process);
        self.start(dir).await;
    }
}

/// Waits until `address` accepts TCP connections.
async fn accepting(address: &str, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(
            process.is_running(),
            "{} exited:\n{}",
            process.name,
            process.log()
        );
        assert!(Instant::now() < deadline, "{address} never accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn address() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The whole split-mode deployment, two replicas of each service.
struct Cluster {
    dir: PathBuf,
    replicas: Vec<Replica>,
    edges: [String; 2],
    admins: [String; 2],
}

impl Cluster {
    async fn start(dir: &Path, upstream: &str, redis_prefix: &str, database_url: &str) -> Cluster {
        let config = dir.join("tollgate.yaml");
        std::fs::write(&config, self::config(upstream)).unwrap();
        let config = config.to_string_lossy().into_owned();
        let data = dir.join("data").to_string_lossy().into_owned();
        let quotas = [address(), address()];
        let analytics = [address(), address()];
        let workers = [address(), address()];
        let routers = [address(), address()];
        let edges = [address(), address()];
        let admins = [address(), address()];
        let list = |pair: &[String; 2]| pair.join(",");
        let common = |role: &str, grpc: &str| -> Vec<String> {
            [
                role,
                "--grpc-listen",
                grpc,
                "--data-dir",
                &data,
                "--config",
                &config,
            ]
            .map(str::to_owned)
            .to_vec()
        };
        let redis = ["--redis-url", REDIS, "--redis-prefix", redis_prefix].map(str::to_owned);
        let mut replicas = Vec::new();
        for (n, side) in ["a", "b"].into_iter().enumerate() {
            let mut args = common("quota", &quotas[n]);
            args.extend(redis.clone());
            args.extend(["--database-url".to_owned(), database_url.to_owned()]);
            replicas.push(replica(
                &format!("quota-{side}"),
                args,
                "quota ready",
                &quotas[n],
            ));
        }
        for (n, side) in ["a", "b"].into_iter().enumerate() {
            let mut args = common("analytics", &analytics[n]);
            args.extend(redis.clone());
            args.extend(["--database-url".to_owned(), database_url.to_owned()]);
            replicas.push(replica(
                &format!("analytics-{side}"),
                args,
                "analytics ready",
                &analytics[n],
            ));
        }
        for (n, side) in ["a", "b"].into_iter().enumerate() {
            let args = common("worker", &workers[n]);
            replicas.push(replica(
                &format!("worker-{side}"),
                args,
                "worker ready",
                &workers[n],
            ));
        }
        for (n, side) in ["a", "b"].into_iter().enumerate() {
            let mut args = common("router", &routers[n]);
            args.extend(redis.clone());
            args.extend(
                [
                    "--quota-addr",
                    &list(&quotas),
                    "--worker-addrs",
                    &list(&workers),
                    "--analytics-addr",
                    &list(&analytics),
                ]
                .map(str::to_owned),
            );
            replicas.push(replica(
                &format!("router-{side}"),
                args,
                "router ready",
                &routers[n],
            ));
        }
        for (n, side) in ["a", "b"].into_iter().enumerate() {
            let args = [
                "edge",
                "--listen",
                &edges[n],
                "--admin-listen",
                &admins[n],
                "--data-dir",
                &data,
                "--config",
                &config,
                "--router-addr",
                &list(&routers),
                "--quota-addr",
                &list(&quotas),
                "--analytics-addr",
                &list(&analytics),
            ]
            .map(str::to_owned)
            .to_vec();
            replicas.push(Replica {
                name: format!("edge-{side}"),
                args,
                ready: "edge ready",
                address: Address::Edge(format!("http://{}", edges[n])),
                process: None,
                stopped: Vec::new(),
                starts: 0,
            });
        }
        // One at a time: the first quota replica creates the built-in and
        // the declared accounts, which the second then finds.
        for replica in &mut replicas {
            replica.start(dir).await;
        }
        Cluster {
            dir: dir.to_owned(),
            replicas,
            edges: edges.map(|address| format!("http://{address}")),
            admins: admins.map(|address| format!("http://{address}")),
        }
    }

    /// SIGTERM to every replica at once, so they drain together.
    fn stop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(process) = replica.process.as_mut()
                && process.is_running()
            {
                process.signal("TERM");
            }
        }
    }
}

fn replica(name: &str, args: Vec<String>, ready: &'static str, grpc: &str) -> Replica {
    Replica {
        name: name.to_owned(),
        args,
        ready,
        address: Address::Grpc(grpc.to_owned()),
        process: None,
        stopped: Vec::new(),
        starts: 0,
    }
}

/// What one client request got.
enum Outcome {
    Served { id: String, tokens: u64 },
    Failed(String),
}

/// A load balancer in front of the edges: polls their `/readyz` and sends
/// each request to one that answered 200 at its last poll.
struct Load {
    stop: Arc<AtomicBool>,
    /// Each edge's `/readyz` at its last poll.
    ready: Arc<[AtomicBool; 2]>,
    task: JoinHandle<Vec<Outcome>>,
}

impl Load {
    fn start(edges: [String; 2], key: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ready: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(true), AtomicBool::new(true)]);
        for (n, edge) in edges.iter().enumerate() {
            let (ready, stop, url) = (ready.clone(), stop.clone(), format!("{edge}/readyz"));
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_millis(500))
                    .build()
                    .unwrap();
                let mut failures = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ok = matches!(http.get(&url).send().await, Ok(r) if r.status() == 200);
                    failures = if ok { 0 } else { failures + 1 };
                    ready[n].store(failures < FAILURE_THRESHOLD, Ordering::Relaxed);
                    tokio::time::sleep(READINESS_POLL).await;
                }
            });
        }
        let task = tokio::spawn({
            let (stop, ready) = (stop.clone(), ready.clone());
            async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let began = Instant::now();
                let mut requests = JoinSet::new();
                let mut ticks = tokio::time::interval(Duration::from_millis(1000 / RATE));
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    ticks.tick().await;
                    n += 1;
                    let candidates: Vec<usize> = (0..2)
                        .filter(|&e| ready[e].load(Ordering::Relaxed))
                        .collect();
                    let Some(&edge) = candidates.get(n % candidates.len().max(1)) else {
                        let at = began.elapsed().as_millis();
                        requests.spawn(async move {
                            Outcome::Failed(format!("request {n} at {at} ms: no edge ready"))
                        });
                        continue;
                    };
                    let (http, url, key) = (http.clone(), edges[edge].clone(), key.clone());
                    requests.spawn(async move {
                        let at = began.elapsed().as_millis();
                        match send(&http, &url, &key, n).await {
                            Ok((id, tokens)) => Outcome::Served { id, tokens },
                            Err(error) => Outcome::Failed(format!(
                                "request {n} to edge {edge} at {at} ms: {error}"
                            )),
                        }
                    });
                }
                requests.join_all().await
            }
        });
        Load { stop, ready, task }
    }

    /// Waits until the load balancer sends requests to `edge` again, as a
    /// rolling update waits for a new pod to be ready in the endpoints
    /// before it stops the next one.
    async fn routes_to(&self, edge: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ready[edge].load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "edge {edge} never ready again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Request `n`: a plain answer or, every other one, a stream with its usage;
/// each with a completion cap, so its usage is known in advance. Returns the
/// request id and the tokens the client was told.
async fn send(
    http: &reqwest::Client,
    edge: &str,
    key: &str,
    n: usize,
) -> Result<(String, u64), String> {
    let streamed = n % 2 == 1;
    let text = format!(
        "request {n} of a rolling restart, long enough to be cut by its cap {}",
        if streamed {
            "[[mock:chunks=4,chunk_delay_ms=50]]"
        } else {
            "[[mock:latency_ms=150]]"
        }
    );
    let mut body = user(MODEL, &text);
    body["max_tokens"] = json!(3 + n % 5);
    if streamed {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let response = http
        .post(format!("{edge}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .map_err(|error| format!("{error:?}"))?;
    let status = response.status();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response
        .text()
        .await
        .map_err(|error| format!("body: {error:?}"))?;
    if status != 200 {
        return Err(format!("{status}: {text}"));
    }
    let tokens = if streamed {
        let events = sse_data(&text);
        if events.last().map(String::as_str) != Some("[DONE]") {
            return Err(format!("stream without [DONE]: {text}"));
        }
        let parsed: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|event| serde_json::from_str(event).unwrap_or(Value::Null))
            .collect();
        if let Some(bad) = parsed
            .iter()
            .find(|e| e.is_null() || e.get("error").is_some())
        {
            return Err(format!("stream event {bad}: {text}"));
        }
        parsed
            .last()
            .and_then(|last| last["usage"]["total_tokens"].as_u64())
            .ok_or_else(|| format!("stream without usage: {text}"))?
    } else {
        let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if !body["choices"][0]["message"]["content"].is_string() {
            return Err(format!("no content: {text}"));
        }
        body["usage"]["total_tokens"]
            .as_u64()
            .ok_or_else(|| format!("no usage: {text}"))?
    };
    if id.is_empty() {
        return Err("no x-request-id".into());
    }
    Ok((id, tokens))
}

/// Rows, distinct request ids and total tokens in `usage_events`.
async fn stored(database_url: &str) -> (i64, i64, i64) {
    let mut connection = sqlx::PgConnection::connect(database_url).await.unwrap();
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT request_id), \
         coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint FROM usage_events",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_fails_no_request_and_counts_usage_exactly() {
    let began = Instant::now();
    let prefix = RedisPrefix::new("rolling");
    let database = Database::create("rolling").await;
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let mut cluster = Cluster::start(dir.path(), &base_url, &prefix.0, &database.url()).await;
    let admin = Gateway::from_processes(
        Vec::new(),
        cluster.edges[0].clone(),
        cluster.admins[0].clone(),
        cluster.dir.join("data"),
    );
    let created = admin
        .admin_post("/admin/v1/keys", json!({"name": "rolling"}))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    eprintln!("cluster up after {:?}", began.elapsed());

    let load = Load::start(cluster.edges.clone(), key);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // quota, analytics, worker, router, edge: each replica in turn.
    for index in 0..cluster.replicas.len() {
        let restarting = Instant::now();
        let dir = cluster.dir.clone();
        cluster.replicas[index].restart(&dir).await;
        if let Address::Edge(public) = &cluster.replicas[index].address {
            let edge = cluster.edges.iter().position(|e| e == public).unwrap();
            load.routes_to(edge).await;
        }
        eprintln!(
            "{} restarted in {:?}",
            cluster.replicas[index].name,
            restarting.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.finish().await;

    let mut ids = HashSet::new();
    let mut tokens = 0u64;
    let mut failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Served { id, tokens: t } => {
                assert!(ids.insert(id.clone()), "request id {id} served twice");
                tokens += t;
            }
            Outcome::Failed(why) => failures.push(why),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed:\n{}",
        failures.len(),
        failures.len() + ids.len(),
        failures.join("\n")
    );
    assert!(ids.len() > 200, "only {} requests", ids.len());

    // The usage pipeline drains: every request once, with its tokens.
    let requests = i64::try_from(ids.len()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (rows, distinct, _) = stored(&database.url()).await;
        assert_eq!(rows, distinct, "a request id stored twice");
        assert!(rows <= requests, "{rows} rows for {requests} requests");
        if rows == requests {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {requests} requests stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, stored_tokens) = stored(&database.url()).await;
    assert_eq!(u64::try_from(stored_tokens).unwrap(), tokens, "token sum");
    let mut connection = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    let stored_ids: Vec<String> = sqlx::query_scalar("SELECT request_id FROM usage_events")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored_ids.into_iter().collect::<HashSet<_>>(), ids);
    let usage = admin.admin_get("/admin/v1/usage?group_by=model").await;
    let row = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["group"] == MODEL)
        .unwrap_or_else(|| panic!("no usage of {MODEL}: {usage}"))
        .clone();
    assert_eq!(row["requests"].as_u64().unwrap(), ids.len() as u64, "{row}");
    assert_eq!(row["total_tokens"].as_u64().unwrap(), tokens, "{row}");
    assert_eq!(row["errors"].as_u64().unwrap(), 0, "{row}");

    // Every lease settled once: the account's counter is what the clients
    // were told, with nothing left reserved.
    let stats = admin.admin_get("/admin/v1/profiles/default/stats").await;
    let account = stats["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["name"] == ACCOUNT)
        .unwrap_or_else(|| panic!("{ACCOUNT} not in {stats}"))
        .clone();
    assert_eq!(
        account["tokens_used_today"].as_u64().unwrap(),
        tokens,
        "{account}"
    );
    assert_eq!(account["tokens_reserved"].as_u64().unwrap(), 0, "{account}");
    eprintln!(
        "{} requests, {tokens} tokens, in {:?}",
        ids.len(),
        began.elapsed()
    );
    cluster.stop();
}
