//! gRPC clients that implement the service traits, for split mode.
//!
//! Each `Remote*` balances its calls over every replica of a [`Peer`] (see
//! [`crate::balance`]) and forwards every method unchanged, so the caller's
//! code is the same whether the service runs in this process, in one other
//! process, or in many.

use std::future::Future;

use futures_util::future::BoxFuture;
use tonic::{Request, Response, Status, Streaming};

use crate::BoxStream;
use crate::balance::{Balancer, Link};
use crate::v1::analytics_client::AnalyticsClient;
use crate::v1::quota_client::QuotaClient;
use crate::v1::router_client::RouterClient;
use crate::v1::worker_client::WorkerClient;
use crate::v1::*;

pub use crate::balance::{Peer, Settings};
pub use crate::discovery::InvalidAddress;

/// Every replica behind `addresses`, a comma-separated list of `host:port`
/// (the host an IP address or a DNS name), for a `Remote*` client.
pub fn peer(addresses: &str) -> Result<Peer, InvalidAddress> {
    Peer::dns(&addresses.split(',').collect::<Vec<_>>())
}

/// Implements a service trait for a remote client: `extra` holds the items
/// written out by hand (stream types and streaming methods), then each listed
/// unary method forwards its request through the balancer.
macro_rules! forward {
    ($ty:ty: $trait:path { $($extra:tt)* } $($method:ident($req:ty) -> $resp:ty;)*) => {
        #[tonic::async_trait]
        impl $trait for $ty {
            $($extra)*
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let (response, _in_flight) = self
                        .balancer
                        .call(request, |link, request| async move {
                            Self::client(link).$method(request).await
                        })
                        .await?;
                    Ok(response)
                }
            )*
        }
    };
}

/// Forwards a server-streaming call: it stays counted on its endpoint while
/// the stream lasts.
async fn stream<M, T, F, Fut>(
    balancer: &Balancer,
    request: Request<M>,
    send: F,
) -> Result<Response<BoxStream<T>>, Status>
where
    M: Clone,
    T: Send + 'static,
    F: FnMut(Link, Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<Streaming<T>>, Status>>,
{
    let (response, in_flight) = balancer.call(request, send).await?;
    Ok(response.map(|stream| Box::pin(in_flight.hold(stream)) as BoxStream<T>))
}

macro_rules! remote {
    ($name:ident, $client:ident) => {
        #[doc = concat!("The `", stringify!($client), "` behind the service trait, balanced over a peer's replicas.")]
        #[derive(Clone)]
        pub struct $name {
            balancer: std::sync::Arc<Balancer>,
        }

        impl $name {
            /// Calls the service at every replica of `peer` (see [`peer`]).
            /// Needs a tokio runtime from the first call on.
            pub fn new(peer: Peer) -> Self {
                Self {
                    balancer: std::sync::Arc::new(Balancer::new(peer, Self::probe)),
                }
            }

            fn client(link: Link) -> $client<Link> {
                let origin = link.origin();
                $client::with_origin(link, origin)
                    .max_decoding_message_size(crate::MAX_GRPC_MESSAGE)
            }

            fn probe(link: Link) -> BoxFuture<'static, Result<(), Status>> {
                Box::pin(async move {
                    Self::client(link).ping(PingRequest {}).await.map(drop)
                })
            }
        }
    };
}

remote!(RemoteQuota, QuotaClient);
remote!(RemoteRouter, RouterClient);
remote!(RemoteWorker, WorkerClient);
remote!(RemoteAnalytics, AnalyticsClient);

forward! {
    RemoteQuota: crate::Quota {
        type WatchInvalidationsStream = BoxStream<Invalidation>;

        async fn watch_invalidations(
            &self,
            request: Request<WatchInvalidationsRequest>,
        ) -> Result<Response<Self::WatchInvalidationsStream>, Status> {
            stream(&self.balancer, request, |link, request| async move {
                Self::client(link).watch_invalidations(request).await
            })
            .await
        }
    }
    ping(PingRequest) -> PingReply;
    resolve_key(ResolveKeyRequest) -> KeyRecord;
    list_models(ListModelsRequest) -> ModelList;
    lease(LeaseRequest) -> LeaseGrant;
    settle(SettleRequest) -> SettleReply;
    renew_lease(RenewLeaseRequest) -> RenewLeaseReply;
    report_outcome(OutcomeReport) -> OutcomeAck;
    create_key(KeySpec) -> CreatedKey;
    list_keys(ListRequest) -> KeyList;
    get_key(IdRequest) -> KeyRecord;
    update_key(KeyUpdate) -> KeyRecord;
    delete_key(IdRequest) -> Deleted;
    create_account(AccountSpec) -> AccountRecord;
    list_accounts(ListRequest) -> AccountList;
    get_account(IdRequest) -> AccountRecord;
    update_account(AccountUpdate) -> AccountRecord;
    delete_account(IdRequest) -> Deleted;
    reset_account(ResetAccountRequest) -> AccountRecord;
    claim_health_probe(ClaimHealthProbeRequest) -> ClaimHealthProbeReply;
    create_route(RouteSpec) -> RouteRecord;
    list_routes(ListRequest) -> RouteList;
    get_route(IdRequest) -> RouteRecord;
    update_route(RouteUpdate) -> RouteRecord;
    delete_route(IdRequest) -> Deleted;
    create_profile(ProfileSpec) -> ProfileRecord;
    list_profiles(ListRequest) -> ProfileList;
    get_profile(IdRequest) -> ProfileRecord;
    update_profile(ProfileUpdate) -> ProfileRecord;
    delete_profile(IdRequest) -> Deleted;
    profile_stats(ProfileStatsRequest) -> ProfileStatsReply;
    sync_account_usage(AccountUsageTotals) -> AccountSyncReport;
    list_audit(AuditQuery) -> AuditList;
    reseal_secrets(ResealRequest) -> ResealReport;
}

forward! {
    RemoteRouter: crate::Router {
        type ChatStreamStream = BoxStream<ChatChunk>;

        async fn chat_stream(
            &self,
            request: Request<ChatRequest>,
        ) -> Result<Response<Self::ChatStreamStream>, Status> {
            stream(&self.balancer, request, |link, request| async move {
                Self::client(link).chat_stream(request).await
            })
            .await
        }
    }
    ping(PingRequest) -> PingReply;
    chat(ChatRequest) -> ChatReply;
}

forward! {
    RemoteWorker: crate::Worker {
        type CallStreamStream = BoxStream<ProviderChunk>;

        async fn call_stream(
            &self,
            request: Request<ProviderRequest>,
        ) -> Result<Response<Self::CallStreamStream>, Status> {
            stream(&self.balancer, request, |link, request| async move {
                Self::client(link).call_stream(request).await
            })
            .await
        }
    }
    ping(PingRequest) -> PingReply;
    call(ProviderRequest) -> ProviderReply;
}

forward! {
    RemoteAnalytics: crate::Analytics {}
    ping(PingRequest) -> PingReply;
    ingest(UsageBatch) -> IngestReply;
    query_usage(UsageQuery) -> UsageReport;
    account_tokens_since(AccountTokensQuery) -> AccountTokensReport;
}
