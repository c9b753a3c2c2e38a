//! The quota service: keys, accounts, leases and settlement.
//!
//! [`QuotaService`] implements `tollgate_proto::Quota`. It owns the control
//! data through a [`ControlStore`], makes every admission decision through
//! [`QuotaCounters`], and opens account secrets with a [`SecretBox`] only to
//! hand them out inside a lease. The data path (`Lease`, `ListModels`)
//! reads an in-memory snapshot of the accounts, routes and stored profile
//! strategies, never the database;
//! `ResolveKey` reads the store (the edge caches its answers, and drops
//! them when `WatchInvalidations` announces a key write, broadcast between
//! replicas through Redis by [`RedisBroadcast`]).
//!
//! A key's RPM, TPM, daily token budget and monthly USD budget are enforced
//! inside `Lease`, in the same counters step as the account choice (key
//! limits are part of the in-memory snapshot; spend is charged at `Settle`
//! with the cost the router priced). The key's model and profile
//! allow-lists are checked by the edge against the key record it resolved.
//!
//! The `Quota` impl at the bottom of this file is a table: each RPC takes
//! what it needs from the request (the actor, the message) and calls a
//! method of [`QuotaService`] defined in the module of its concern, which
//! holds its own `impl QuotaService` block: `keys` (admin reads and
//! writes, `ResolveKey`), `accounts`, `profile_admin` and `routes` (admin
//! reads and writes, and an account's reset), `profiles`
//! (`ProfileStats`), `lease` (`ListModels`, `Lease`, `RenewLease`,
//! `Settle`), `outcome` (`ReportOutcome`), `health_probes`
//! (`ClaimHealthProbe`), `reconcile` (`SyncAccountUsage`), `reseal`
//! (`ResealSecrets`) and `audit` (`ListAudit`, and the entry every write
//! appends). What needs no service, such as checks of admin input,
//! conversions to the wire types and the plan of a lease's targets over
//! the snapshot, stays in free functions.
//!
//! [`build`] makes the service from its [`QuotaSettings`] and [`Deps`];
//! [`App::run_until`] runs its invalidation broadcast until shutdown.

mod accounts;
mod app;
mod audit;
mod broadcast;
mod errors;
mod health_probes;
mod invalidations;
mod key_refusal;
mod keys;
mod lease;
mod outcome;
mod profile_admin;
mod profiles;
mod rate_limits;
mod reconcile;
mod reseal;
mod resolve;
mod routes;
mod routing;
mod settings;
mod snapshot;
mod validate;

pub use accounts::ROVODEV_DEFAULT_DAILY_TOKENS;
pub use app::{App, BroadcastRedis, BuildError, Deps, build};
pub use broadcast::{BroadcastError, RedisBroadcast};
pub use settings::{ProfileSettings, QuotaSettings};

use std::sync::Arc;

use tollgate_control_store::crypto::SecretBox;
use tollgate_control_store::{AccountRecord, ControlStore};
use tollgate_core::GatewayError;
use tollgate_core::clock::Clock;
use tollgate_counters::QuotaCounters;
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1;
use tollgate_telemetry::Metrics;
use tonic::{Request, Response, Status};

use crate::errors::from_control;
use crate::invalidations::Invalidations;
use crate::snapshot::AccountCache;

/// The quota service. Build it once per process with [`build`] and share
/// it (`Arc<QuotaService>` coerces to `QuotaHandle`).
pub struct QuotaService {
    control: Arc<dyn ControlStore>,
    counters: Arc<dyn QuotaCounters>,
    secrets: SecretBox,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    settings: QuotaSettings,
    cache: Arc<AccountCache>,
    invalidations: Invalidations,
    /// Set once this process has opened some account's circuit, so the
    /// lease path skips the circuit gauge until then.
    opened_circuits: std::sync::atomic::AtomicBool,
}

/// What [`QuotaService::ensure_account`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredAccount {
    pub account: AccountRecord,
    /// False when an account with that name already existed (it is left as
    /// it is).
    pub created: bool,
}

impl QuotaService {
    /// Builds the service and loads the first account snapshot from
    /// `control`. Fails only when the store cannot be read.
    pub(crate) async fn new(
        control: Arc<dyn ControlStore>,
        counters: Arc<dyn QuotaCounters>,
        secrets: SecretBox,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        settings: QuotaSettings,
    ) -> Result<Self, GatewayError> {
        let cache = AccountCache::load(
            Arc::clone(&control),
            secrets.clone(),
            settings.refresh_interval,
        )
        .await
        .map_err(from_control)?;
        Ok(Self {
            control,
            counters,
            secrets,
            clock,
            metrics,
            settings,
            cache,
            invalidations: Invalidations::new(),
            opened_circuits: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Reloads the account and key-limit snapshot from the store now
    /// (writes through this service do so already; use this after writing
    /// to the store directly).
    pub async fn reload_accounts(&self) -> Result<(), GatewayError> {
        self.cache.reload().await.map_err(from_control)
    }

    /// After a write to the control store made through this service:
    /// reloads the snapshot here, and tells the other replicas (through
    /// the Redis broadcast, when one runs) to reload theirs.
    pub(crate) async fn control_changed(&self) -> Result<(), GatewayError> {
        self.invalidations.control_changed();
        self.reload_accounts().await
    }

    /// Broadcasts key invalidations and control changes through Redis pub/sub
    /// (channel `<prefix>invalidations`), so edges subscribed to any quota
    /// replica hear of a key changed through this one, every replica
    /// leases with what was written through any other, and the other way
    /// round. Drive the returned broadcast with [`RedisBroadcast::run`].
    pub fn broadcast_invalidations(
        &self,
        redis_url: &str,
        prefix: &str,
    ) -> Result<RedisBroadcast, BroadcastError> {
        RedisBroadcast::new(
            &self.invalidations,
            Arc::clone(&self.cache),
            redis_url,
            prefix,
        )
    }

    /// Ends every `WatchInvalidations` stream and the Redis broadcast. Call it
    /// when shutting down: an open stream would otherwise hold a gRPC
    /// server's graceful shutdown until its grace period runs out.
    pub fn stop_invalidations(&self) {
        self.invalidations.stop();
    }
}

fn reply<T>(result: Result<T, GatewayError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|err| err.to_status())
}

#[tonic::async_trait]
impl tollgate_proto::Quota for QuotaService {
    type WatchInvalidationsStream = tollgate_proto::BoxStream<v1::Invalidation>;

    async fn ping(
        &self,
        _request: Request<v1::PingRequest>,
    ) -> Result<Response<v1::PingReply>, Status> {
        Ok(Response::new(v1::PingReply {
            service: "quota".to_owned(),
        }))
    }

    async fn resolve_key(
        &self,
        request: Request<v1::ResolveKeyRequest>,
    ) -> Result<Response<v1::KeyRecord>, Status> {
        reply(self.resolve_key(&request.get_ref().key_hash).await)
    }

    async fn list_models(
        &self,
        _request: Request<v1::ListModelsRequest>,
    ) -> Result<Response<v1::ModelList>, Status> {
        Ok(Response::new(self.list_models()))
    }

    async fn lease(
        &self,
        request: Request<v1::LeaseRequest>,
    ) -> Result<Response<v1::LeaseGrant>, Status> {
        reply(self.lease(request.into_inner()).await)
    }

    async fn settle(
        &self,
        request: Request<v1::SettleRequest>,
    ) -> Result<Response<v1::SettleReply>, Status> {
        reply(self.settle(request.into_inner()).await)
    }

    async fn renew_lease(
        &self,
        request: Request<v1::RenewLeaseRequest>,
    ) -> Result<Response<v1::RenewLeaseReply>, Status> {
        reply(self.renew_lease(&request.get_ref().lease_id).await)
    }

    async fn report_outcome(
        &self,
        request: Request<v1::OutcomeReport>,
    ) -> Result<Response<v1::OutcomeAck>, Status> {
        reply(self.report_outcome(request.into_inner()).await)
    }

    async fn claim_health_probe(
        &self,
        request: Request<v1::ClaimHealthProbeRequest>,
    ) -> Result<Response<v1::ClaimHealthProbeReply>, Status> {
        reply(self.claim_health_probe(request.into_inner()).await)
    }

    async fn create_key(
        &self,
        request: Request<v1::KeySpec>,
    ) -> Result<Response<v1::CreatedKey>, Status> {
        let actor = audit::actor(&request);
        reply(self.create_key(&actor, request.into_inner()).await)
    }

    async fn list_keys(
        &self,
        _request: Request<v1::ListRequest>,
    ) -> Result<Response<v1::KeyList>, Status> {
        reply(self.list_keys().await)
    }

    async fn get_key(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::KeyRecord>, Status> {
        reply(self.get_key(&request.get_ref().id).await)
    }

    async fn update_key(
        &self,
        request: Request<v1::KeyUpdate>,
    ) -> Result<Response<v1::KeyRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.update_key(&actor, request.into_inner()).await)
    }

    async fn delete_key(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::Deleted>, Status> {
        let actor = audit::actor(&request);
        reply(self.delete_key(&actor, &request.get_ref().id).await)
    }

    async fn create_account(
        &self,
        request: Request<v1::AccountSpec>,
    ) -> Result<Response<v1::AccountRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.create_account(&actor, request.into_inner()).await)
    }

    async fn list_accounts(
        &self,
        _request: Request<v1::ListRequest>,
    ) -> Result<Response<v1::AccountList>, Status> {
        reply(self.list_accounts().await)
    }

    async fn get_account(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::AccountRecord>, Status> {
        reply(self.get_account(&request.get_ref().id).await)
    }

    async fn update_account(
        &self,
        request: Request<v1::AccountUpdate>,
    ) -> Result<Response<v1::AccountRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.update_account(&actor, request.into_inner()).await)
    }

    async fn delete_account(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::Deleted>, Status> {
        let actor = audit::actor(&request);
        reply(self.delete_account(&actor, &request.get_ref().id).await)
    }

    async fn reset_account(
        &self,
        request: Request<v1::ResetAccountRequest>,
    ) -> Result<Response<v1::AccountRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.reset_account(&actor, request.into_inner()).await)
    }

    async fn create_route(
        &self,
        request: Request<v1::RouteSpec>,
    ) -> Result<Response<v1::RouteRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.create_route(&actor, request.into_inner()).await)
    }

    async fn list_routes(
        &self,
        _request: Request<v1::ListRequest>,
    ) -> Result<Response<v1::RouteList>, Status> {
        reply(self.list_routes().await)
    }

    async fn get_route(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::RouteRecord>, Status> {
        reply(self.get_route(&request.get_ref().id).await)
    }

    async fn update_route(
        &self,
        request: Request<v1::RouteUpdate>,
    ) -> Result<Response<v1::RouteRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.update_route(&actor, request.into_inner()).await)
    }

    async fn delete_route(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::Deleted>, Status> {
        let actor = audit::actor(&request);
        reply(self.delete_route(&actor, &request.get_ref().id).await)
    }

    async fn create_profile(
        &self,
        request: Request<v1::ProfileSpec>,
    ) -> Result<Response<v1::ProfileRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.create_profile(&actor, request.into_inner()).await)
    }

    async fn list_profiles(
        &self,
        _request: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ProfileList>, Status> {
        reply(self.list_profiles().await)
    }

    async fn get_profile(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::ProfileRecord>, Status> {
        reply(self.get_profile(&request.get_ref().id).await)
    }

    async fn update_profile(
        &self,
        request: Request<v1::ProfileUpdate>,
    ) -> Result<Response<v1::ProfileRecord>, Status> {
        let actor = audit::actor(&request);
        reply(self.update_profile(&actor, request.into_inner()).await)
    }

    async fn delete_profile(
        &self,
        request: Request<v1::IdRequest>,
    ) -> Result<Response<v1::Deleted>, Status> {
        let actor = audit::actor(&request);
        reply(self.delete_profile(&actor, &request.get_ref().id).await)
    }

    async fn profile_stats(
        &self,
        request: Request<v1::ProfileStatsRequest>,
    ) -> Result<Response<v1::ProfileStatsReply>, Status> {
        reply(self.profile_stats(&request.get_ref().profile).await)
    }

    async fn watch_invalidations(
        &self,
        _request: Request<v1::WatchInvalidationsRequest>,
    ) -> Result<Response<Self::WatchInvalidationsStream>, Status> {
        Ok(Response::new(self.invalidations.subscribe()))
    }

    async fn sync_account_usage(
        &self,
        request: Request<v1::AccountUsageTotals>,
    ) -> Result<Response<v1::AccountSyncReport>, Status> {
        let actor = audit::actor(&request);
        reply(self.sync_account_usage(&actor, request.into_inner()).await)
    }

    async fn list_audit(
        &self,
        request: Request<v1::AuditQuery>,
    ) -> Result<Response<v1::AuditList>, Status> {
        reply(self.list_audit(request.get_ref().limit).await)
    }

    async fn reseal_secrets(
        &self,
        request: Request<v1::ResealRequest>,
    ) -> Result<Response<v1::ResealReport>, Status> {
        let actor = audit::actor(&request);
        reply(self.reseal_secrets(&actor).await)
    }
}
