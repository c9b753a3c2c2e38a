//! Fault tests of the usage pipeline, with real processes, the local Redis
//! and the local Postgres: analytics replicas killed with SIGKILL in the
//! middle of a batch, and Postgres cut off for 30 s under load. After
//! each, every request a client saw answered is in `usage_events` exactly
//! once, with the tokens the client was told; after the outage the lag
//! gauges (entries and seconds) first show it and then drain to zero.
//!
//! The request path runs split (quota, worker, router, edge) so that the
//! only members of the usage consumer group are the analytics processes a
//! test starts and kills.

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const GROUP: &str = "analytics";
/// Short enough that a dead replica's entries are taken over within the
/// test, long enough that a live replica keeps its own.
const CLAIM_IDLE_SECS: u64 = 2;
/// How long Postgres stays cut off: the outage the issue names.
const OUTAGE: Duration = Duration::from_secs(30);

/// Everything one test runs against.
struct Setup {
    dir: tempfile::TempDir,
    prefix: RedisPrefix,
    database: Database,
    config: PathBuf,
    gateway: Gateway,
    key: String,
}

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let prefix = RedisPrefix::new("faults");
        let database = Database::create("faults").await;
        let config = dir.path().join("analytics.yaml");
        std::fs::write(
            &config,
            format!("usage_claim_idle_secs: {CLAIM_IDLE_SECS}\n"),
        )
        .unwrap();
        let gateway = request_path(dir.path(), &prefix.0).await;
        let key = gateway.key(json!({"name": "faults"})).await;
        Setup {
            dir,
            prefix,
            database,
            config,
            gateway,
            key,
        }
    }

    /// An analytics replica writing to `database_url` (the test's database,
    /// directly or through a proxy).
    async fn analytics(&self, name: &str, database_url: &str) -> Analytics {
        self.analytics_with(name, database_url, &[]).await
    }

    /// An analytics replica with extra flags.
    async fn analytics_with(&self, name: &str, database_url: &str, extra: &[&str]) -> Analytics {
        let data = self.dir.path().join("data").to_string_lossy().into_owned();
        let config = self.config.to_string_lossy().into_owned();
        let mut args = vec![
            "analytics",
            "--grpc-listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--config",
            &config,
            "--redis-url",
            REDIS,
            "--redis-prefix",
            &self.prefix.0,
            "--database-url",
            database_url,
        ];
        args.extend_from_slice(extra);
        let mut process = Process::start(name, self.dir.path(), &args, &[]);
        let line = wait_for_log(&mut process, "reading usage events from Redis").await;
        let consumer = log_field(&line, "consumer");
        wait_for_log(&mut process, "analytics ready").await;
        Analytics { process, consumer }
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(REDIS)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Entries pending with `consumer`.
    async fn pending_of(&self, consumer: &str) -> u64 {
        let mut connection = self.redis().await;
        let reply: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(self.prefix.stream())
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(100_000)
            .arg(consumer)
            .query_async(&mut connection)
            .await
            .unwrap();
        u64::try_from(reply.len()).unwrap()
    }

    /// Entries in the stream, and pending in the group.
    async fn stream_state(&self) -> (u64, u64) {
        let mut connection = self.redis().await;
        let length: u64 = redis::cmd("XLEN")
            .arg(self.prefix.stream())
            .query_async(&mut connection)
            .await
            .unwrap();
        let summary: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(self.prefix.stream())
            .arg(GROUP)
            .query_async(&mut connection)
            .await
            .unwrap();
        let pending = match summary.first() {
            Some(redis::Value::Int(count)) => u64::try_from(*count).unwrap(),
            other => panic!("unexpected XPENDING reply {other:?}"),
        };
        (length, pending)
    }

    /// Rows, distinct request ids and total tokens in `usage_events`.
    async fn stored(&self) -> (i64, i64, i64) {
        let mut connection = sqlx::PgConnection::connect(&self.database.url())
            .await
            .unwrap();
        let counts = sqlx::query_as(
            "SELECT count(*), count(DISTINCT request_id), \
             coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint FROM usage_events",
        )
        .fetch_one(&mut connection)
        .await;
        // Before the first replica migrated, there is no table yet.
        counts.unwrap_or((0, 0, 0))
    }

    async fn wait_for_rows(&self, at_least: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.stored().await.0 < at_least {
            assert!(Instant::now() < deadline, "fewer than {at_least} rows");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the group has read and acknowledged everything, then
    /// checks that the store holds each request the clients saw exactly
    /// once, with the tokens they saw.
    async fn assert_exactly_once(&self, seen: &Seen) {
        let requests = i64::try_from(seen.ids.len()).unwrap();
        // Long enough to drain the backlog a 30 s outage builds up on a
        // busy two-core machine.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (rows, distinct, _) = self.stored().await;
            let (length, pending) = self.stream_state().await;
            assert!(rows <= requests, "{rows} rows for {requests} requests");
            assert_eq!(rows, distinct, "a request id is stored twice");
            if rows == requests && pending == 0 {
                assert_eq!(length, seen.ids.len() as u64, "stream length");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not drained: {rows} of {requests} rows, {pending} pending, {length} entries"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, _, tokens) = self.stored().await;
        assert_eq!(u64::try_from(tokens).unwrap(), seen.tokens, "token sum");
        let mut connection = sqlx::PgConnection::connect(&self.database.url())
            .await
            .unwrap();
        let stored: Vec<String> = sqlx::query_scalar("SELECT request_id FROM usage_events")
            .fetch_all(&mut connection)
            .await
            .unwrap();
        let stored: HashSet<String> = stored.into_iter().collect();
        assert_eq!(
            stored, seen.ids,
            "stored request ids differ from served ones"
        );
    }
}

/// Quota, worker, router (appending usage to the stream) and edge, each a
/// process of its own; no analytics consumer among them.
async fn request_path(dir: &Path, prefix: &str) -> Gateway {
    let data_dir = dir.join("data");
    let data = data_dir.to_string_lossy().into_owned();
    let quota = format!("127.0.0.1:{}", free_port());
    let worker = format!("127.0.0.1:{}", free_port());
    let router = format!("127.0.0.1:{}", free_port());
    // Nobody serves analytics gRPC here: the usage API is not used.
    let analytics = format!("127.0.0.1:{}", free_port());
    let env = [("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)];
    let mut processes = Vec::new();
    let services: [(&str, Vec<&str>, &str); 4] = [
        (
            "quota",
            vec!["quota", "--grpc-listen", &quota, "--data-dir", &data],
            "quota ready",
        ),
        (
            "worker",
            vec!["worker", "--grpc-listen", &worker, "--data-dir", &data],
            "worker ready",
        ),
        (
            "router",
            vec![
                "router",
                "--grpc-listen",
                &router,
                "--data-dir",
                &data,
                "--quota-addr",
                &quota,
                "--worker-addrs",
                &worker,
                "--analytics-addr",
                &analytics,
                "--redis-url",
                REDIS,
                "--redis-prefix",
                prefix,
            ],
            "router ready",
        ),
        (
            "edge",
            vec![
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data-dir",
                &data,
                "--router-addr",
                &router,
                "--quota-addr",
                &quota,
                "--analytics-addr",
                &analytics,
            ],
            "edge ready",
        ),
    ];
    let mut edge_line = String::new();
    for (name, args, ready) in services {
        let mut process = Process::start(name, dir, &args, &env);
        edge_line = wait_for_log(&mut process, ready).await;
        processes.push(process);
    }
    let public = format!("http://{}", log_field(&edge_line, "public"));
    let admin = format!("http://{}", log_field(&edge_line, "admin"));
    // `/readyz` would wait for analytics, which each test starts itself.
    let mut refs: Vec<&mut Process> = processes.iter_mut().collect();
    wait_ready(&format!("{public}/healthz"), &mut refs).await;
    Gateway::from_processes(processes, public, admin, data_dir)
}

/// One analytics replica and its name in the consumer group.
struct Analytics {
    process: Process,
    consumer: String,
}

impl Analytics {
    /// Freezes the replica (SIGSTOP) at a moment it holds entries it read
    /// but has not acknowledged, and kills it (SIGKILL): a crash in the
    /// middle of a batch. Returns how many entries it left pending.
    async fn kill_mid_batch(&mut self, setup: &Setup) -> u64 {
        for attempt in 0..20u64 {
            self.process.signal("STOP");
            // A replica stopped while blocked in a read is still handed
            // the next entries by Redis: they become pending with it.
            let deadline = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < deadline {
                let pending = setup.pending_of(&self.consumer).await;
                if pending > 0 {
                    self.process.kill();
                    return pending;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.process.signal("CONT");
            tokio::time::sleep(Duration::from_millis(37 + attempt * 11)).await;
        }
        panic!("{} never held pending entries", self.consumer);
    }
}

/// What the clients were answered.
#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    tokens: u64,
}

/// Clients sending chat completions until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Seen>>,
}

impl Load {
    fn start(gateway: &Gateway, key: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let (public, key, stop) = (gateway.public.clone(), key.to_owned(), stop.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut seen = Seen::default();
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        // Prompts of varied length, so token sums mean something.
                        let text = vec!["token"; 1 + (n * 7 + client) % 23].join(" ");
                        let response = http
                            .post(format!("{public}/v1/chat/completions"))
                            .bearer_auth(&key)
                            .json(&user("mock-echo", &text))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        let id = response.headers()["x-request-id"]
                            .to_str()
                            .unwrap()
                            .to_owned();
                        let body: Value = response.json().await.unwrap();
                        seen.tokens += body["usage"]["total_tokens"].as_u64().unwrap();
                        assert!(seen.ids.insert(id), "request id served twice");
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    seen
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Seen::default();
        for task in self.tasks {
            let seen = task.await.unwrap();
            all.tokens += seen.tokens;
            all.ids.extend(seen.ids);
        }
        all
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_killed_mid_batch_and_restarted_loses_and_doubles_nothing() {
    let setup = Setup::start().await;
    let url = setup.database.url();
    let mut first = setup.analytics("analytics-first", &url).await;
    let load = Load::start(&setup.gateway, &setup.key, 4);
    setup.wait_for_rows(50).await;

    let stranded = first.kill_mid_batch(&setup).await;
    // Events keep coming while no replica runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut restarted = setup.analytics("analytics-restarted", &url).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = load.finish().await;
    assert!(seen.ids.len() > 100, "only {} requests", seen.ids.len());

    setup.assert_exactly_once(&seen).await;
    // The restarted process has a new consumer name: it took the dead
    // one's batch over by claiming it.
    assert_eq!(setup.pending_of(&first.consumer).await, 0);
    wait_for_log(
        &mut restarted.process,
        "claimed pending usage entries of another consumer",
    )
    .await;
    eprintln!(
        "{} requests, {} tokens, {stranded} entries stranded by the kill",
        seen.ids.len(),
        seen.tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_surviving_replica_claims_a_killed_replicas_pending_events() {
    let setup = Setup::start().await;
    let url = setup.database.url();
    let mut doomed = setup.analytics("analytics-doomed", &url).await;
    let mut survivor = setup.analytics("analytics-survivor", &url).await;
    let load = Load::start(&setup.gateway, &setup.key, 4);
    setup.wait_for_rows(50).await;

    let stranded = doomed.kill_mid_batch(&setup).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = load.finish().await;

    setup.assert_exactly_once(&seen).await;
    assert_eq!(setup.pending_of(&doomed.consumer).await, 0);
    let line = wait_for_log(
        &mut survivor.process,
        "claimed pending usage entries of another consumer",
    )
    .await;
    let claimed: u64 = log_field(&line, "entries").parse().unwrap();
    assert!(claimed > 0, "{line}");
    eprintln!(
        "{} requests, {} tokens, {stranded} stranded, first claim took {claimed}",
        seen.ids.len(),
        seen.tokens
    );
}

/// A TCP proxy to the local Postgres that can drop every connection it
/// carries and refuse new ones until restored.
struct PgProxy {
    port: u16,
    open: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl PgProxy {
    async fn start() -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !accepting.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        PgProxy {
            port,
            open,
            cut,
            task,
        }
    }

    fn url(&self, database: &Database) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, database.name
        )
    }

    /// Drops every proxied connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|cuts| *cuts += 1);
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gauge's value on a `/metrics` page.
async fn gauge(metrics_url: &str, name: &str) -> f64 {
    let page = reqwest::get(metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_off_under_load_loses_nothing_and_the_lag_drains() {
    let setup = Setup::start().await;
    let proxy = PgProxy::start().await;
    let metrics_listen = format!("127.0.0.1:{}", free_port());
    let metrics_url = format!("http://{metrics_listen}/metrics");
    let mut analytics = setup
        .analytics_with(
            "analytics-proxied",
            &proxy.url(&setup.database),
            &["--admin-listen", &metrics_listen],
        )
        .await;
    let load = Load::start(&setup.gateway, &setup.key, 4);
    setup.wait_for_rows(50).await;

    proxy.cut();
    let cut_at = Instant::now();
    let (rows_at_cut, _, _) = setup.stored().await;
    wait_for_log(&mut analytics.process, "usage batch write failed; retrying").await;
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    // Nothing reached the store while cut off; the events wait in Redis,
    // and the lag gauges show how many and for how long.
    let (rows_during, _, _) = setup.stored().await;
    assert!(
        rows_during <= rows_at_cut + 512,
        "{rows_during} rows written through a cut connection (had {rows_at_cut})"
    );
    let (length, _) = setup.stream_state().await;
    assert!(
        i64::try_from(length).unwrap() > rows_during,
        "no backlog built up: {length} entries, {rows_during} rows"
    );
    let lag_seconds = gauge(&metrics_url, "tollgate_usage_events_lag_seconds").await;
    assert!(
        lag_seconds >= 15.0,
        "lag of {lag_seconds} s after a 30 s outage"
    );
    assert!(gauge(&metrics_url, "tollgate_usage_events_lag").await >= 100.0);
    proxy.restore();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = load.finish().await;

    setup.assert_exactly_once(&seen).await;
    assert!(analytics.process.is_running());
    // Measured every 5 s: the gauges come back down once drained.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gauge(&metrics_url, "tollgate_usage_events_lag_seconds").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the lag in seconds never drained"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(gauge(&metrics_url, "tollgate_usage_events_lag").await, 0.0);
    eprintln!(
        "{} requests, {} tokens, {} rows before the cut, lag {lag_seconds} s at its end",
        seen.ids.len(),
        seen.tokens,
        rows_at_cut
    );
}
