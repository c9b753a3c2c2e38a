//! Drives the connections: open loop at a fixed rate, or closed loop.
//!
//! Open loop measures each request from the moment it was due, not from
//! when it could be sent, so a server that stalls is charged for the
//! requests that queued behind the stall (no coordinated omission). When a
//! connection is idle and merely waits for the next due time, the request
//! is timed from when it actually left, so the timer's own lateness is not
//! charged to the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout};

use crate::conn::Connection;
use crate::schedule::Schedule;
use crate::stats::{Outcome, Stats};
use crate::target::Target;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// This many requests per second in total, whatever the server does.
    Rate(f64),
    /// Each connection sends again as soon as it has an answer.
    Max,
}

/// One run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    /// Measure each request to the first piece of its answer's body (a
    /// stream's first event) instead of to its end.
    pub first_byte: bool,
}

/// What a run observed, and over how long.
pub struct RunResult {
    pub stats: Stats,
    /// From the end of the warmup to the last measured answer.
    pub elapsed: Duration,
}

/// Pause after a failed request in closed loop, so a server that refuses
/// connections is not hammered in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Opens every connection, then runs the plan on all of them at once.
pub async fn run(target: Arc<Target>, plan: &Plan) -> anyhow::Result<RunResult> {
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        let mut connection = Connection::new(target.clone());
        connection
            .open()
            .await
            .with_context(|| format!("cannot reach {}", target.url))?;
        connections.push(connection);
    }

    let start = Instant::now();
    let window = Window {
        measure_from: start + plan.warmup,
        end: start + plan.warmup + plan.duration,
        timeout: plan.timeout,
        first_byte: plan.first_byte,
    };
    let mut tasks = JoinSet::new();
    for (index, connection) in connections.into_iter().enumerate() {
        let stats = Stats::new()?;
        match plan.mode {
            Mode::Rate(rate) => {
                let schedule = Schedule::for_connection(start, rate, plan.connections, index);
                tasks.spawn(open_loop(connection, schedule, window, stats));
            }
            Mode::Max => {
                tasks.spawn(closed_loop(connection, window, stats));
            }
        }
    }

    let mut total = Stats::new()?;
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.context("a connection task failed")?)?;
    }
    let elapsed = total.last_done.map_or(Duration::ZERO, |done| {
        done.saturating_duration_since(window.measure_from)
    });
    Ok(RunResult {
        stats: total,
        elapsed,
    })
}

/// The time frame shared by every connection.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
    timeout: Duration,
    first_byte: bool,
}

async fn open_loop(
    mut connection: Connection,
    schedule: Schedule,
    window: Window,
    mut stats: Stats,
) -> Stats {
    for n in 0.. {
        let Some(due) = schedule.due(n) else { break };
        if due >= window.end {
            break;
        }
        let sent = if Instant::now() < due {
            sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        let (outcome, done) = send(&mut connection, window).await;
        if due >= window.measure_from {
            stats.record(outcome, done - sent, done);
        }
    }
    stats
}

async fn closed_loop(mut connection: Connection, window: Window, mut stats: Stats) -> Stats {
    loop {
        let sent = Instant::now();
        if sent >= window.end {
            break;
        }
        let (outcome, done) = send(&mut connection, window).await;
        let failed = matches!(outcome, Outcome::Failed(_));
        if sent >= window.measure_from {
            stats.record(outcome, done - sent, done);
        }
        if failed {
            sleep(ERROR_PAUSE).await;
        }
    }
    stats
}

/// One request, and when it counts as done: its answer's end, or with
/// `first_byte` the first piece of its body.
async fn send(connection: &mut Connection, window: Window) -> (Outcome, Instant) {
    let limit = window.timeout;
    let outcome = match timeout(limit, connection.send()).await {
        Ok(Ok((status, first_piece))) => {
            let end = Instant::now();
            let done = if window.first_byte {
                first_piece.unwrap_or(end)
            } else {
                end
            };
            return (Outcome::Answered(status), done);
        }
        Ok(Err(error)) => Outcome::Failed(format!("{error:#}")),
        Err(_) => {
            connection.reset();
            Outcome::Failed(format!("no answer within {limit:?}"))
        }
    };
    (outcome, Instant::now())
}

#[cfg(test)]
mod tests {

    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};

    use bytes::Bytes;
    use http::{Method, Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// A server on port 0 answering `status` to requests that carry a
    /// two-byte body with its length, and 400 to anything else.
    async fn serve(status: StatusCode) -> (SocketAddr, Arc<AtomicU64>) {
        serve_stalling(status, None).await
    }

    /// Like [`serve`], but the request numbered `stall.0` (from 0) is held
    /// for `stall.1`.
    async fn serve_stalling(
        status: StatusCode,
        stall: Option<(u64, Duration)>,
    ) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let number = counter.fetch_add(1, Ordering::Relaxed);
                        if let Some((at, pause)) = stall
                            && at == number
                        {
                            tokio::time::sleep(pause).await;
                        }
                        let framed = request.headers().get("content-length")
                            == Some(&http::HeaderValue::from_static("2"));
                        let body = request.into_body().collect().await?.to_bytes();
                        let status = if framed && body.as_ref() == b"{}" {
                            status
                        } else {
                            StatusCode::BAD_REQUEST
                        };
                        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *response.status_mut() = status;
                        Ok::<_, hyper::Error>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, hits)
    }

    async fn target(addr: SocketAddr) -> Arc<Target> {
        let url = format!("http://{addr}/v1/chat/completions");
        Arc::new(
            Target::resolve(&url, Method::POST, &[], Bytes::from_static(b"{}"))
                .await
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn open_loop_sends_the_scheduled_requests_and_measures_after_warmup() {
        let (addr, hits) = serve(StatusCode::OK).await;
        let plan = Plan {
            mode: Mode::Rate(200.0),
            connections: 2,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            first_byte: false,
        };
        let result = run(target(addr).await, &plan).await.unwrap();
        let stats = &result.stats;
        assert_eq!(
            (stats.errors, stats.non_2xx),
            (0, 0),
            "{:?}",
            stats.first_error
        );
        assert!((99..=101).contains(&stats.ok), "measured {}", stats.ok);
        let sent = hits.load(Ordering::Relaxed);
        assert!((119..=121).contains(&sent), "sent {sent}");
        assert_eq!(stats.latency_ns.len(), stats.ok);
    }

    #[tokio::test]
    async fn open_loop_charges_a_stall_to_every_request_queued_behind_it() {
        // 100 requests/s on one connection; request 20 is held for 300 ms,
        // so the ~30 requests due meanwhile wait too. Timed from their due
        // time they are all slow; timed from their send time only one would be.
        let (addr, _) =
            serve_stalling(StatusCode::OK, Some((20, Duration::from_millis(300)))).await;
        let plan = Plan {
            mode: Mode::Rate(100.0),
            connections: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            first_byte: false,
        };
        let result = run(target(addr).await, &plan).await.unwrap();
        let histogram = &result.stats.latency_ns;
        let slow = histogram.count_between(50_000_000, u64::MAX);
        assert!(
            slow >= 20,
            "only {slow} requests were charged 50 ms or more"
        );
        assert!(histogram.max() >= 290_000_000, "max {}", histogram.max());
    }

    #[tokio::test]
    async fn closed_loop_counts_error_statuses_and_refused_connections() {
        let (addr, _) = serve(StatusCode::SERVICE_UNAVAILABLE).await;
        let plan = Plan {
            mode: Mode::Max,
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
            first_byte: false,
        };
        let result = run(target(addr).await, &plan).await.unwrap();
        assert_eq!(result.stats.ok, 0);
        assert!(result.stats.non_2xx > 0);
        assert_eq!(
            result.stats.first_error.as_deref(),
            Some("HTTP status 503 Service Unavailable")
        );

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = closed.local_addr().unwrap();
        drop(closed);
        assert!(run(target(refused).await, &plan).await.is_err());
    }
}
