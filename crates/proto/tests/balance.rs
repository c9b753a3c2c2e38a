//! Balanced clients against real gRPC servers on loopback ports: calls
//! spread over the replicas, a replica that stops is ejected without a
//! failed call and takes calls again once it is back.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use tollgate_proto::discovery::{Addresses, Discover};
use tollgate_proto::remote::{Peer, RemoteWorker, Settings, peer};
use tollgate_proto::v1::worker_server::WorkerServer;
use tollgate_proto::v1::{PingReply, PingRequest, ProviderChunk, ProviderReply, ProviderRequest};
use tollgate_proto::{BoxStream, Worker};

/// A worker that answers with its own name and counts its calls; a
/// request for provider `slow` takes 300 ms.
#[derive(Clone)]
struct Replica {
    name: &'static str,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Worker for Replica {
    type CallStreamStream = BoxStream<ProviderChunk>;

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Ok(Response::new(PingReply {
            service: self.name.into(),
        }))
    }

    async fn call(
        &self,
        request: Request<ProviderRequest>,
    ) -> Result<Response<ProviderReply>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if request.get_ref().provider == "slow" {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(Response::new(ProviderReply {
            body: self.name.as_bytes().to_vec().into(),
            usage: None,
        }))
    }

    async fn call_stream(
        &self,
        _: Request<ProviderRequest>,
    ) -> Result<Response<Self::CallStreamStream>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// A replica serving on a loopback port until stopped.
struct Running {
    address: SocketAddr,
    replica: Replica,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn start(name: &'static str) -> Self {
        let replica = Replica {
            name,
            calls: Arc::default(),
        };
        Self::serve(replica, "127.0.0.1:0").await
    }

    async fn serve(replica: Replica, address: &str) -> Self {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(WorkerServer::new(replica.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                stopped.await.ok();
            });
        let task = tokio::spawn(async move { server.await.unwrap() });
        Self {
            address,
            replica,
            stop,
            task,
        }
    }

    fn calls(&self) -> usize {
        self.replica.calls.load(Ordering::SeqCst)
    }

    /// Stops serving and closes the port; returns what it needs to restart.
    async fn stop(self) -> (Replica, SocketAddr) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
        (self.replica, self.address)
    }
}

fn fast() -> Settings {
    Settings {
        ejection: Duration::from_millis(100),
        max_ejection: Duration::from_millis(400),
        probe_timeout: Duration::from_millis(200),
        first_lookup: Duration::from_secs(2),
    }
}

fn client(addresses: &[SocketAddr]) -> RemoteWorker {
    let list = addresses
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    RemoteWorker::new(peer(&list).unwrap().with_settings(fast()))
}

/// The name of the replica that answered, or the failure's code and message.
async fn call(worker: &RemoteWorker, provider: &str) -> Result<String, String> {
    let request = ProviderRequest {
        provider: provider.into(),
        ..Default::default()
    };
    match worker.call(Request::new(request)).await {
        Ok(reply) => Ok(String::from_utf8(reply.into_inner().body.to_vec()).unwrap()),
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

#[tokio::test]
async fn calls_spread_over_every_replica() {
    let a = Running::start("a").await;
    let b = Running::start("b").await;
    let worker = client(&[a.address, b.address]);
    for _ in 0..40 {
        call(&worker, "fast").await.unwrap();
    }
    assert_eq!(a.calls() + b.calls(), 40);
    assert!(
        a.calls() >= 5 && b.calls() >= 5,
        "{} / {}",
        a.calls(),
        b.calls()
    );
}

#[tokio::test]
async fn a_stopped_replica_is_ejected_without_failed_calls_and_rejoins() {
    let a = Running::start("a").await;
    let b = Running::start("b").await;
    let worker = client(&[a.address, b.address]);
    for _ in 0..10 {
        call(&worker, "fast").await.unwrap();
    }
    assert!(b.calls() > 0);

    let (replica_b, address_b) = b.stop().await;
    let served_by_b = replica_b.calls.load(Ordering::SeqCst);
    for n in 0..30 {
        let answer = call(&worker, "fast").await;
        assert_eq!(answer.as_deref(), Ok("a"), "call {n} after b stopped");
    }
    assert_eq!(replica_b.calls.load(Ordering::SeqCst), served_by_b);

    let b = Running::serve(replica_b, &address_b.to_string()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while b.calls() == served_by_b {
        assert!(tokio::time::Instant::now() < deadline, "b never came back");
        call(&worker, "fast").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn stopping_a_replica_fails_no_call_in_flight_on_either_replica() {
    let a = Running::start("a").await;
    let b = Running::start("b").await;
    let worker = client(&[a.address, b.address]);
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let worker = worker.clone();
            tokio::spawn(async move { call(&worker, "slow").await })
        })
        .collect();
    while a.calls() + b.calls() < 6 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // In flight counts as load: the six spread over both replicas.
    assert!(
        a.calls() >= 2 && b.calls() >= 2,
        "{} / {}",
        a.calls(),
        b.calls()
    );
    // A graceful stop lets b finish its calls; a's are untouched.
    b.stop().await;
    for call in slow {
        assert!(call.await.unwrap().is_ok());
    }
    assert_eq!(call(&worker, "fast").await.as_deref(), Ok("a"));
}

#[tokio::test]
async fn a_lone_replica_is_called_even_while_ejected() {
    let a = Running::start("a").await;
    let worker = RemoteWorker::new(
        peer(&a.address.to_string())
            .unwrap()
            .with_settings(Settings {
                ejection: Duration::from_secs(60),
                ..fast()
            }),
    );
    call(&worker, "fast").await.unwrap();
    let (replica, address) = a.stop().await;
    let failed = call(&worker, "fast").await.unwrap_err();
    assert!(failed.starts_with("Unavailable"), "{failed}");
    let _a = Running::serve(replica, &address.to_string()).await;
    // Still ejected for a minute, but it is the only one: it gets the call.
    assert_eq!(call(&worker, "fast").await.as_deref(), Ok("a"));
}

/// Addresses set by the test, as an EndpointSlice watch would set them.
struct Manual(watch::Sender<Option<Addresses>>);

impl Discover for Manual {
    fn watch(&self) -> watch::Receiver<Option<Addresses>> {
        self.0.subscribe()
    }
}

#[tokio::test]
async fn a_call_in_flight_ends_well_on_a_replica_that_leaves_the_set() {
    let a = Running::start("a").await;
    let b = Running::start("b").await;
    let source = Arc::new(Manual(watch::Sender::new(Some([b.address].into()))));
    let worker = RemoteWorker::new(Peer::new("manual", source.clone()).with_settings(fast()));
    let slow = tokio::spawn({
        let worker = worker.clone();
        async move { call(&worker, "slow").await }
    });
    while b.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    source.0.send_replace(Some([a.address].into()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..5 {
        assert_eq!(call(&worker, "fast").await.as_deref(), Ok("a"));
    }
    assert_eq!(slow.await.unwrap().as_deref(), Ok("b"));
    assert_eq!(b.calls(), 1);
}

#[tokio::test]
async fn a_dns_name_reaches_the_replica_behind_it() {
    let a = Running::start("a").await;
    // `localhost` may also resolve to ::1, where nothing listens: those
    // calls are refused before they are sent and go to 127.0.0.1.
    let worker = RemoteWorker::new(
        peer(&format!("localhost:{}", a.address.port()))
            .unwrap()
            .with_settings(fast()),
    );
    for _ in 0..10 {
        assert_eq!(call(&worker, "fast").await.as_deref(), Ok("a"));
    }
}

/// An HTTP/2 server that refuses every stream unprocessed (RST_STREAM with
/// REFUSED_STREAM), as a server may while it goes away; counts them.
async fn refusing() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_, mut respond))) = connection.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            });
        }
    });
    (address, refused, task)
}

#[tokio::test]
async fn a_call_refused_unprocessed_goes_to_another_replica() {
    let (refuser, refused, task) = refusing().await;
    let a = Running::start("a").await;
    let worker = client(&[refuser, a.address]);
    for n in 0..20 {
        assert_eq!(call(&worker, "fast").await.as_deref(), Ok("a"), "call {n}");
    }
    assert!(refused.load(Ordering::SeqCst) > 0, "no call was refused");
    assert_eq!(a.calls(), 20);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_a_graceful_stop_all_succeed() {
    let a = Running::start("a").await;
    let b = Running::start("b").await;
    let worker = client(&[a.address, b.address]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (worker, stop) = (worker.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Err(failure) = call(&worker, "fast").await {
                        failures.push(failure);
                    }
                }
                failures
            })
        })
        .collect();
    // Each graceful stop's GOAWAY reaches calls on their way to b: none of
    // them may fail. Five stops, since any one may miss the race.
    let mut b = b;
    for _ in 0..5 {
        // Back in service (probed) and busy again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while b.calls() < 20 {
            assert!(tokio::time::Instant::now() < deadline, "b takes no calls");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (replica, address) = b.stop().await;
        replica.calls.store(0, Ordering::SeqCst);
        b = Running::serve(replica, &address.to_string()).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
