//! `quota_bench`: `Lease` then `Settle` of the same lease against Redis
//! through `RedisCounters`, as the quota service does for each request.
//!
//! ```text
//! quota_bench --rate 2000 --clients 1            # open loop, one client
//! quota_bench --rate 2000 --clients 4 --key-limits
//! quota_bench --max --clients 4 --concurrency 16 # closed loop
//! ```
//!
//! Open loop: operation n of a client is due at a fixed time and runs in its
//! own task, so a slow one never delays the next; its latency is counted
//! from the due time (paced by a thread, since tokio's timer ticks in whole
//! milliseconds), so any delay in starting it is charged. Each client is its own `RedisCounters` (its own
//! connection), as separate quota replicas would be. Every key the run
//! writes is under a fresh prefix and is deleted at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tollgate_core::clock::now_ms;
use tollgate_counters::{
    Candidate, KeyLimits, LeaseDecision, LeaseInput, QuotaCounters, RedisCounters, Reservation,
    Selection, SettleInput,
};
use tollgate_load::bench_stats::{latency_histogram, latency_line, record};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Operations (lease + settle) per second, all clients together.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Separate `RedisCounters` instances sharing the load.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Closed loop: as many operations as the clients can do.
    #[arg(long)]
    max: bool,
    /// Operations in flight per client in closed loop.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Lease for one of `--keys` client keys with RPM, TPM and daily limits.
    #[arg(long)]
    key_limits: bool,
    /// Client keys the leases take turns on (with `--key-limits`).
    #[arg(long, default_value_t = 20)]
    keys: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

const ACCOUNTS: usize = 8;
const LEASE_TOKENS: u64 = 1_000;
const ACTUAL_TOKENS: u64 = 800;
/// What those tokens cost (micro-dollars), charged to the key's month.
const COST_MICRO_USD: u64 = 300;
/// Longer than `RedisCounters`' response timeout.
const DRAIN: Duration = Duration::from_secs(5);

/// Latencies of one operation, or why it failed.
type Sample = Result<(Duration, Duration, Duration), String>;

struct Bench {
    prefix: String,
    candidates: Vec<Candidate>,
    key_limits: bool,
    keys: u64,
}

impl Bench {
    fn lease_input(&self, lease_id: String, n: u64) -> LeaseInput {
        let key = self.key_limits.then(|| KeyLimits {
            key_id: format!("key{}", n % self.keys),
            rpm: Some(1_000_000),
            tpm: Some(4_000_000_000),
            daily_token_budget: Some(1_000_000_000_000),
            monthly_budget_micro_usd: Some(1_000_000_000_000),
        });
        LeaseInput {
            lease_id,
            candidates: self.candidates.clone(),
            reservation: Reservation::exact(LEASE_TOKENS),
            now_ms: now_ms(),
            ttl_ms: 60_000,
            key,
            selection: Selection::default(),
            health_probe: false,
        }
    }

    /// One lease then its settle; latencies measured from `start`.
    async fn operation(
        &self,
        counters: &RedisCounters,
        client: usize,
        n: u64,
        start: Instant,
    ) -> Sample {
        let lease_id = format!("{}-{client}-{n}", self.prefix);
        let input = self.lease_input(lease_id.clone(), n);
        let key_id = input.key.as_ref().map(|key| key.key_id.clone());
        let granted = match counters.lease(input).await {
            Ok(LeaseDecision::Granted(granted)) => granted,
            Ok(LeaseDecision::Denied(denied)) => {
                return Err(format!("denied: {:?}", denied.reason));
            }
            Err(error) => return Err(error.to_string()),
        };
        let leased = Instant::now();
        let settle = SettleInput {
            lease_id,
            account_id: granted.account_id,
            key_id,
            actual_tokens: ACTUAL_TOKENS,
            cost_micro_usd: COST_MICRO_USD,
            served: true,
            latency_us: None,
            now_ms: now_ms(),
            remember_ms: 60_000,
        };
        counters
            .settle(settle)
            .await
            .map_err(|error| error.to_string())?;
        let settled = Instant::now();
        Ok((leased - start, settled - leased, settled - start))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.concurrency == 0 || !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("--clients, --concurrency and --rate must be positive");
    }
    let prefix = format!("qbench{}", now_ms());
    let bench = Arc::new(Bench {
        candidates: (0..ACCOUNTS)
            .map(|i| Candidate {
                account_id: format!("acct{i}"),
                daily_limit: Some(1_000_000_000_000),
                priority: 0,
                weight: 1,
                strict: false,
            })
            .collect(),
        prefix: prefix.clone(),
        key_limits: args.key_limits,
        keys: args.keys.max(1),
    });
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(Arc::new(
            RedisCounters::connect(&args.redis_url, prefix.clone()).await?,
        ));
    }
    let result = run(&args, &bench, &clients).await;
    let deleted = delete_keys(&args.redis_url, &prefix).await?;
    eprintln!("deleted {deleted} keys under {{{prefix}}}");
    result
}

async fn run(
    args: &Args,
    bench: &Arc<Bench>,
    clients: &[Arc<RedisCounters>],
) -> anyhow::Result<()> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let (sender, mut samples) = mpsc::unbounded_channel::<Sample>();
    for (index, counters) in clients.iter().enumerate() {
        if args.max {
            for _ in 0..args.concurrency {
                let (bench, counters, sender) = (bench.clone(), counters.clone(), sender.clone());
                tokio::spawn(closed_loop(
                    bench,
                    counters,
                    index,
                    measure_from,
                    end,
                    sender,
                ));
            }
        } else {
            let (bench, counters, sender) = (bench.clone(), counters.clone(), sender.clone());
            let pace = Pace {
                start,
                measure_from,
                end,
                rate: args.rate,
                clients: clients.len(),
                index,
            };
            let runtime = tokio::runtime::Handle::current();
            std::thread::spawn(move || open_loop(runtime, bench, counters, pace, sender));
        }
    }
    drop(sender);
    let mut histograms: [Histogram<u64>; 3] = [
        latency_histogram()?,
        latency_histogram()?,
        latency_histogram()?,
    ];
    let (mut failed, mut first_error) = (0_u64, None);
    while let Some(sample) = samples.recv().await {
        match sample {
            Ok(latencies) => {
                let [lease, settle, pair] = &mut histograms;
                record(lease, latencies.0);
                record(settle, latencies.1);
                record(pair, latencies.2);
            }
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    let mode = if args.max {
        format!("closed loop, {} in flight per client", args.concurrency)
    } else {
        format!("open loop at {} ops/s", args.rate)
    };
    let done = histograms[2].len();
    println!(
        "{mode}, {} client(s), key limits {}: {done} ops in {} s = {:.0} ops/s, {failed} failed",
        clients.len(),
        if args.key_limits { "on" } else { "off" },
        args.duration,
        done as f64 / args.duration as f64,
    );
    for (name, histogram) in ["lease", "settle", "pair"].iter().zip(&histograms) {
        println!("{}", latency_line(name, histogram));
    }
    if let Some(error) = first_error {
        println!("first failure: {error}");
        // Scripts the client gave up on may still be queued in Redis: let
        // them run before the keys they write are deleted.
        tokio::time::sleep(DRAIN).await;
    }
    Ok(())
}

/// When one client's operations are due.
struct Pace {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    rate: f64,
    clients: usize,
    index: usize,
}

/// Paces one client from its own OS thread (`thread::sleep` wakes within
/// tens of microseconds; tokio's timer ticks in whole milliseconds) and
/// starts each operation as a task on the runtime, timed from its due time.
fn open_loop(
    runtime: tokio::runtime::Handle,
    bench: Arc<Bench>,
    counters: Arc<RedisCounters>,
    pace: Pace,
    sender: mpsc::UnboundedSender<Sample>,
) {
    let interval = pace.clients as f64 / pace.rate;
    let offset = pace.index as f64 / pace.rate;
    for n in 0_u64.. {
        let due = pace.start + Duration::from_secs_f64(offset + interval * n as f64);
        if due >= pace.end {
            break;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let (bench, counters, sender) = (bench.clone(), counters.clone(), sender.clone());
        let measured = due >= pace.measure_from;
        runtime.spawn(async move {
            let sample = bench.operation(&counters, pace.index, n, due).await;
            if measured {
                let _ = sender.send(sample);
            }
        });
    }
}

async fn closed_loop(
    bench: Arc<Bench>,
    counters: Arc<RedisCounters>,
    index: usize,
    measure_from: Instant,
    end: Instant,
    sender: mpsc::UnboundedSender<Sample>,
) {
    // Lease ids only need to be unique: give each task its own range.
    let mut n = u64::from(task_base());
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        let sample = bench.operation(&counters, index, n, start).await;
        if start >= measure_from {
            let _ = sender.send(sample);
        }
        n += 1;
    }
}

/// A distinct starting number per closed-loop task.
fn task_base() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 24
}

/// Deletes every key under the run's prefix; returns how many.
async fn delete_keys(url: &str, prefix: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url).context("Redis URL")?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{{{prefix}}}*");
    let (mut cursor, mut deleted) = (0_u64, 0_u64);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            let removed: u64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await?;
            deleted += removed;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
