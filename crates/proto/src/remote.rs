//! gRPC clients that implement the service traits, for split mode.
//!
//! Each `Remote*` wraps a tonic client on a lazily connected channel and
//! forwards every method unchanged, so the caller's code is the same whether
//! the service runs in this process or in another one.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::BoxStream;
use crate::v1::analytics_client::AnalyticsClient;
use crate::v1::quota_client::QuotaClient;
use crate::v1::router_client::RouterClient;
use crate::v1::worker_client::WorkerClient;
use crate::v1::*;

/// A peer address that is not a valid URI.
#[derive(Debug, thiserror::Error)]
#[error("invalid peer address {address:?}: {reason}")]
pub struct InvalidAddress {
    address: String,
    reason: String,
}

/// Opens a lazily connected HTTP/2 channel to `address` (`host:port` or a
/// full `http://` URI). The first call connects; a broken connection is
/// re-established on the next call.
pub fn channel(address: &str) -> Result<Channel, InvalidAddress> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|err| InvalidAddress {
        address: address.to_owned(),
        reason: err.to_string(),
    })?;
    Ok(endpoint
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Implements a service trait for a remote client: `extra` holds the items
/// written out by hand (stream types and streaming methods), then each listed
/// unary method forwards its request to the client.
macro_rules! forward {
    ($ty:ty: $trait:path { $($extra:tt)* } $($method:ident($req:ty) -> $resp:ty;)*) => {
        #[tonic::async_trait]
        impl $trait for $ty {
            $($extra)*
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.client.clone().$method(request).await
                }
            )*
        }
    };
}

macro_rules! remote {
    ($name:ident, $client:ident) => {
        #[doc = concat!("The `", stringify!($client), "` behind the service trait.")]
        #[derive(Clone)]
        pub struct $name {
            client: $client<Channel>,
        }

        impl $name {
            /// Wraps a channel from [`channel`].
            pub fn new(channel: Channel) -> Self {
                Self {
                    client: $client::new(channel).max_decoding_message_size(64 << 20),
                }
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
            let response = self.client.clone().watch_invalidations(request).await?;
            Ok(response.map(|stream| Box::pin(stream) as BoxStream<Invalidation>))
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
            let response = self.client.clone().chat_stream(request).await?;
            Ok(response.map(|stream| Box::pin(stream) as BoxStream<ChatChunk>))
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
            let response = self.client.clone().call_stream(request).await?;
            Ok(response.map(|stream| Box::pin(stream) as BoxStream<ProviderChunk>))
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
