//! The data path: `ListModels`, `Lease` and `Settle`. Everything here reads
//! the in-memory account snapshot and the counters; nothing touches the
//! control database.
//!
//! A lease id handed to the router is `<counter lease id>.<account id>`, or
//! `<counter lease id>:<key id>.<account id>` for a key with limits, so a
//! settle that arrives after the lease expired (or at another quota
//! replica) still knows which account and key to charge.
//!
//! A key's own limits refuse with 429 `rate_limit_exceeded`
//! ([`ErrorKind::RateLimited`]); accounts that cannot serve refuse with 429
//! `quota_exhausted`. Both carry Retry-After. A grant for a key with an RPM
//! or TPM carries the key's standing after it (`rate_limit`), and so does
//! a refusal by the counters, the key's own or the accounts' (in the
//! error), for the `x-ratelimit-*` headers. Settle charges the request's
//! cost to the key's monthly budget.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use secrecy::ExposeSecret;
use tollgate_control_store::{DEFAULT_PROFILE, RouteRecord};
use tollgate_core::error::RateLimits;
use tollgate_core::{ErrorKind, GatewayError, ModelRef, ids};
use tollgate_counters::{
    Candidate, KeyWindowReport, LeaseDecision, LeaseDenied, LeaseGranted, LeaseInput, Selection,
    SettleInput, Strategy,
};
use tollgate_proto::v1;
use tollgate_telemetry::{AccountLabels, ReasonLabels};

use crate::QuotaService;
use crate::errors::from_counters;
use crate::resolve::{servable_models, serves};
use crate::routing::{self, Member, Target};
use crate::snapshot::{AccountEntry, Snapshot};
use crate::{key_refusal, rate_limits};

/// Retry-After when every account that serves the model is disabled.
const DISABLED_RETRY_SECS: u64 = 60;
/// Retry-After when the request already tried every account it could use.
const EXCLUDED_RETRY_SECS: u64 = 1;

const LEASE_ID_SEPARATOR: char = '.';
const KEY_ID_SEPARATOR: char = ':';

fn wire_lease_id(lease_id: &str, key_id: Option<&str>, account_id: &str) -> String {
    match key_id {
        // A key id that holds a separator is left out: only a late settle
        // then misses the key's day counter.
        Some(key) if !key.is_empty() && !key.contains([LEASE_ID_SEPARATOR, KEY_ID_SEPARATOR]) => {
            format!("{lease_id}{KEY_ID_SEPARATOR}{key}{LEASE_ID_SEPARATOR}{account_id}")
        }
        _ => format!("{lease_id}{LEASE_ID_SEPARATOR}{account_id}"),
    }
}

/// What a wire lease id names.
#[derive(Debug, PartialEq, Eq)]
struct WireLease<'a> {
    lease_id: &'a str,
    key_id: Option<&'a str>,
    account_id: &'a str,
}

fn split_lease_id(wire: &str) -> Option<WireLease<'_>> {
    let (lease, account_id) = wire
        .split_once(LEASE_ID_SEPARATOR)
        .filter(|(lease, account)| !lease.is_empty() && !account.is_empty())?;
    let (lease_id, key_id) = match lease.split_once(KEY_ID_SEPARATOR) {
        Some((lease_id, key_id)) if !lease_id.is_empty() && !key_id.is_empty() => {
            (lease_id, Some(key_id))
        }
        Some(_) => return None,
        None => (lease, None),
    };
    Some(WireLease {
        lease_id,
        key_id,
        account_id,
    })
}

/// How the target's accounts are picked, with what that needs: a random
/// draw for `weighted`, and for `round_robin` the rotation of the profile's
/// accounts for this target (profile names hold no '/').
fn selection(strategy: Strategy, profile: &str, target: &str) -> Selection {
    Selection {
        strategy,
        draw: match strategy {
            Strategy::Weighted => random_draw(),
            _ => 0,
        },
        pool: match strategy {
            Strategy::RoundRobin => format!("{profile}/{target}"),
            _ => String::new(),
        },
    }
}

/// A random number for spreading load (not for secrets): each
/// `RandomState` is keyed apart from every other, so hashing nothing with a
/// new one gives a fresh value without a random-number dependency.
fn random_draw() -> u64 {
    RandomState::new().hash_one(())
}

fn exhausted_error(retry_after_secs: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::QuotaExhausted,
        "no provider account can serve this model now; retry later",
    )
    .with_retry_after(retry_after_secs)
}

/// Why one target could not take the lease; the request is refused only
/// once every target has been tried.
enum Refusal {
    /// None of its accounts is leasable.
    Disabled,
    /// The request already tried every leasable one.
    Excluded,
    /// The counters refused every candidate (not for the key's own limits:
    /// those refuse the request at once), with the denial's reason label.
    Denied(GatewayError, &'static str),
}

impl Refusal {
    /// Which refusal a client hears when several targets refused: the
    /// counters' (it knows when to retry) over "already tried" over
    /// "disabled".
    fn rank(&self) -> u8 {
        match self {
            Refusal::Denied(..) => 2,
            Refusal::Excluded => 1,
            Refusal::Disabled => 0,
        }
    }

    fn into_error(self, service: &QuotaService) -> GatewayError {
        match self {
            Refusal::Disabled => service.exhausted("disabled", DISABLED_RETRY_SECS),
            Refusal::Excluded => service.exhausted("excluded", EXCLUDED_RETRY_SECS),
            Refusal::Denied(error, reason) => {
                service.count_denial(reason);
                error
            }
        }
    }
}

/// What the router needs to know of the route asked for: its deadline,
/// the first-byte timeout of the route that serves (else its own), and the
/// failure classes it has fallbacks for.
fn with_route_settings(
    grant: &mut v1::LeaseGrant,
    route: Option<&RouteRecord>,
    target: &Target<'_>,
) {
    grant.first_byte_timeout_ms = target
        .first_byte_timeout_ms
        .or_else(|| route.and_then(|route| route.first_byte_timeout_ms));
    let Some(route) = route else {
        return;
    };
    grant.deadline_ms = route.deadline_ms;
    grant.fallback_classes = routing::fallback_classes(route)
        .into_iter()
        .map(i32::from)
        .collect();
}

/// The one account a pinned lease (the admin account test) may use: it
/// must exist, serve `model`, and be leasable.
fn pinned<'a>(
    accounts: &'a [Arc<AccountEntry>],
    account_id: &str,
    model: &ModelRef,
) -> Result<&'a Arc<AccountEntry>, GatewayError> {
    let entry = accounts
        .iter()
        .find(|entry| entry.record.id == account_id)
        .ok_or_else(|| {
            GatewayError::new(
                ErrorKind::NotFound,
                format!("account {account_id:?} not found"),
            )
        })?;
    if !serves(&entry.record, model) {
        return Err(GatewayError::invalid(
            "model",
            format!(
                "account {account_id:?} does not serve model {:?}",
                model.qualified()
            ),
        ));
    }
    if !entry.leasable {
        return Err(GatewayError::new(
            ErrorKind::QuotaExhausted,
            "this account is disabled or has no usable credential",
        )
        .with_retry_after(DISABLED_RETRY_SECS));
    }
    Ok(entry)
}

/// A model name fit for a metric label: one the operator configured on the
/// account, or "other" for a name a client passed through to an account
/// that serves any model (unbounded, so never a label).
fn model_label(configured: &[String], model: &str) -> String {
    if configured.iter().any(|name| name == model) {
        model.to_owned()
    } else {
        "other".to_owned()
    }
}

impl QuotaService {
    /// Every name a client can ask for: the models the leasable accounts serve
    /// and the aliases of enabled routes that one of them serves (each alias
    /// listed with its first deployment's provider; under the same name a
    /// route comes first).
    pub(crate) fn list_models(&self) -> v1::ModelList {
        let snapshot = self.cache.current();
        let enabled = snapshot
            .accounts
            .iter()
            .filter(|entry| entry.leasable)
            .map(|entry| &entry.record);
        let mut models: BTreeMap<String, (String, String)> = servable_models(enabled)
            .into_iter()
            .map(|(id, provider)| (id, (provider.as_str().to_owned(), String::new())))
            .collect();
        for routes in snapshot.routes.values() {
            for route in routes.values() {
                let target = routing::route_target(&snapshot, route);
                let servable = target.members.iter().any(|member| member.entry.leasable);
                if let (true, Some(first)) = (servable, route.deployments.first()) {
                    models.insert(
                        route.alias.clone(),
                        (first.provider.as_str().to_owned(), first.model.clone()),
                    );
                }
            }
        }
        v1::ModelList {
            models: models
                .into_iter()
                .map(|(id, (provider, upstream_model))| v1::ModelEntry {
                    id,
                    provider,
                    upstream_model,
                })
                .collect(),
        }
    }

    fn count_denial(&self, reason: &str) {
        self.metrics
            .quota
            .lease_denied
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn exhausted(&self, reason: &str, retry_after_secs: u64) -> GatewayError {
        self.count_denial(reason);
        exhausted_error(retry_after_secs)
    }

    pub(crate) async fn lease(
        &self,
        request: v1::LeaseRequest,
    ) -> Result<v1::LeaseGrant, GatewayError> {
        let model = ModelRef::parse(&request.model)
            .ok_or_else(|| GatewayError::invalid("model", "model is required"))?;
        let profile = match request.profile.trim() {
            "" => DEFAULT_PROFILE,
            profile => profile,
        };
        if request.health_probe && request.account_id.is_empty() {
            return Err(GatewayError::invalid(
                "health_probe",
                "a health probe names the account it probes",
            ));
        }
        let snapshot = self.cache.current();
        let class = request.fallback_class();
        // The route asked for, whose settings the grant carries.
        let route = if request.account_id.is_empty() {
            snapshot.route(profile, &model.qualified())
        } else {
            None
        };
        let targets = if request.account_id.is_empty() {
            let targets = routing::plan(
                &snapshot,
                profile,
                &model,
                class,
                &request.exclude_fallbacks,
            );
            if targets.iter().all(|target| target.members.is_empty()) {
                let message = match class {
                    v1::FallbackClass::Unspecified => {
                        format!("no account serves model {:?}", model.qualified())
                    }
                    _ => format!(
                        "no {} fallback of model {:?} is left to try",
                        class.as_str_name(),
                        model.qualified()
                    ),
                };
                return Err(
                    GatewayError::new(ErrorKind::ModelNotFound, message).with_param("model")
                );
            }
            targets
        } else {
            let entry = pinned(&snapshot.accounts, &request.account_id, &model)?;
            vec![Target {
                name: model.qualified(),
                strategy: None,
                first_byte_timeout_ms: None,
                members: vec![Member {
                    entry,
                    upstream_model: model.model.clone(),
                    priority: entry.record.priority,
                    weight: entry.record.weight,
                }],
            }]
        };
        let mut refusal: Option<Refusal> = None;
        let usable = targets
            .iter()
            .enumerate()
            .filter(|(_, target)| !target.members.is_empty());
        for (index, target) in usable {
            let refused = match self
                .lease_target(&snapshot, &request, profile, target)
                .await?
            {
                Ok(mut grant) => {
                    // The first target is the model asked for; any later one,
                    // and every one of a failure class, is a fallback of its
                    // route.
                    if index > 0 || class != v1::FallbackClass::Unspecified {
                        grant.fallback.clone_from(&target.name);
                    }
                    with_route_settings(&mut grant, route, target);
                    return Ok(grant);
                }
                Err(refused) => refused,
            };
            if refusal
                .as_ref()
                .is_none_or(|known| refused.rank() > known.rank())
            {
                refusal = Some(refused);
            }
        }
        let refusal = refusal.unwrap_or(Refusal::Disabled);
        if let Refusal::Denied(..) = refusal {
            return Err(refusal.into_error(self));
        }
        // No account was asked, so nothing reported where the key stands:
        // ask the counters alone, for the x-ratelimit-* headers (or for the
        // key's own refusal, which a client should hear first).
        let standing = self.key_standing(&snapshot, &request).await?;
        Err(refusal.into_error(self).with_rate_limits(standing))
    }

    /// Where a key with limits stands now, without admitting anything: a lease
    /// with no candidates checks the key and then finds no account. A key that
    /// is over its own limit gets that refusal instead.
    async fn key_standing(
        &self,
        snapshot: &Snapshot,
        request: &v1::LeaseRequest,
    ) -> Result<RateLimits, GatewayError> {
        let Some(limits) = snapshot.key_limits.get(&request.key_id) else {
            return Ok(RateLimits::default());
        };
        let now_ms = self.clock.now_ms();
        let decision = self
            .counters
            .lease(LeaseInput {
                lease_id: ids::prefixed("lease"),
                candidates: Vec::new(),
                reservation: self.settings.reservation(request),
                now_ms,
                ttl_ms: self.settings.lease_ttl_ms(),
                key: Some(limits.clone()),
                selection: Selection::default(),
                health_probe: false,
            })
            .await
            .map_err(from_counters)?;
        let LeaseDecision::Denied(LeaseDenied {
            decided_at_ms: now_ms,
            retry_at_ms,
            reason,
            key_window,
        }) = decision
        else {
            // Nothing can be granted without a candidate.
            return Err(crate::errors::internal());
        };
        // Times from here on are the counters' (the Redis server's clock).
        let standing = key_window
            .map(|report| rate_limits::of_report(limits, &report, now_ms))
            .unwrap_or_default();
        if reason.is_key_limit() {
            let wait_ms = u64::try_from(retry_at_ms.saturating_sub(now_ms)).unwrap_or(0);
            self.count_denial(reason.as_str());
            return Err(
                key_refusal::error(reason, Some(limits), wait_ms.div_ceil(1000).max(1))
                    .with_rate_limits(standing),
            );
        }
        Ok(standing)
    }

    /// Leases one of `target`'s accounts: the grant, or why none could take
    /// it. A refusal by the key's own limits is an error (no other target
    /// would change it).
    async fn lease_target(
        &self,
        snapshot: &Snapshot,
        request: &v1::LeaseRequest,
        profile: &str,
        target: &Target<'_>,
    ) -> Result<Result<v1::LeaseGrant, Refusal>, GatewayError> {
        let usable: Vec<&Member<'_>> = target
            .members
            .iter()
            .filter(|member| member.entry.leasable)
            .collect();
        if usable.is_empty() {
            return Ok(Err(Refusal::Disabled));
        }
        let candidates: Vec<Candidate> = usable
            .iter()
            .filter(|member| {
                !request
                    .exclude_account_ids
                    .contains(&member.entry.record.id)
            })
            .map(|member| Candidate {
                account_id: member.entry.record.id.clone(),
                daily_limit: member.entry.record.daily_token_limit,
                priority: member.priority,
                weight: member.weight,
                strict: member.entry.record.strict_cap,
            })
            .collect();
        if candidates.is_empty() {
            return Ok(Err(Refusal::Excluded));
        }
        let key = snapshot.key_limits.get(&request.key_id).cloned();
        // Only a key with limits is named in the lease id (and charged on a
        // late settle).
        let limited_key_id = key.as_ref().map(|limits| limits.key_id.clone());
        let key_limits = key.clone();
        let now_ms = self.clock.now_ms();
        // The route's, else the stored profile's, else the configured one.
        let strategy = target
            .strategy
            .or_else(|| snapshot.profile_strategy(profile))
            .unwrap_or_else(|| self.settings.strategy(profile));
        let decision = self
            .counters
            .lease(LeaseInput {
                lease_id: ids::prefixed("lease"),
                candidates,
                reservation: self.settings.reservation(request),
                now_ms,
                ttl_ms: self.settings.lease_ttl_ms(),
                key,
                selection: selection(strategy, profile, &target.name),
                health_probe: request.health_probe,
            })
            .await
            .map_err(from_counters)?;
        // The key's standing at the decision, by the counters' clock (the
        // Redis server's), which its reset times are on.
        let standing = |report: Option<KeyWindowReport>, decided_at_ms: i64| {
            key_limits
                .as_ref()
                .zip(report)
                .map(|(limits, report)| rate_limits::of_report(limits, &report, decided_at_ms))
                .unwrap_or_default()
        };
        match decision {
            LeaseDecision::Granted(granted) => {
                let Some(member) = usable
                    .iter()
                    .find(|member| member.entry.record.id == granted.account_id)
                else {
                    return Err(crate::errors::internal());
                };
                let mut grant = self.grant(member, &granted, limited_key_id.as_deref());
                grant.rate_limit =
                    rate_limits::to_proto(&standing(granted.key_window, granted.decided_at_ms));
                Ok(Ok(grant))
            }
            LeaseDecision::Denied(LeaseDenied {
                decided_at_ms,
                retry_at_ms,
                reason,
                key_window,
            }) => {
                let standing = |report| standing(report, decided_at_ms);
                let wait_ms = u64::try_from(retry_at_ms.saturating_sub(decided_at_ms)).unwrap_or(0);
                let secs = wait_ms.div_ceil(1000).max(1);
                // Either refusal carries the key's standing, for the
                // x-ratelimit-* headers of its 429.
                if reason.is_key_limit() {
                    self.count_denial(reason.as_str());
                    return Err(key_refusal::error(reason, key_limits.as_ref(), secs)
                        .with_rate_limits(standing(key_window)));
                }
                let error = exhausted_error(secs).with_rate_limits(standing(key_window));
                Ok(Err(Refusal::Denied(error, reason.as_str())))
            }
        }
    }

    fn grant(
        &self,
        member: &Member<'_>,
        granted: &LeaseGranted,
        key_id: Option<&str>,
    ) -> v1::LeaseGrant {
        let entry = member.entry;
        let account = &entry.record;
        self.metrics.quota.leases.inc();
        self.note_lease_granted(&account.id);
        if let Some(remaining) = granted.remaining_tokens {
            self.metrics
                .quota
                .account_tokens_remaining
                .get_or_create(&AccountLabels {
                    account: account.id.clone(),
                    profile: account.profile.clone(),
                })
                .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        }
        let base_url = account
            .base_url
            .clone()
            .or_else(|| account.provider.default_base_url().map(str::to_owned))
            .unwrap_or_default();
        v1::LeaseGrant {
            lease_id: wire_lease_id(&granted.lease_id, key_id, &account.id),
            account_id: account.id.clone(),
            provider: account.provider.as_str().to_owned(),
            upstream_model: member.upstream_model.clone(),
            base_url,
            credential: entry
                .credential
                .as_ref()
                .map(|secret| secret.expose_secret().to_owned())
                .unwrap_or_default(),
            email: account.email.clone().unwrap_or_default(),
            reserved_tokens: u32::try_from(granted.reserved_tokens).unwrap_or(u32::MAX),
            completion_cap: granted
                .completion_cap
                .map_or(0, |cap| u32::try_from(cap).unwrap_or(u32::MAX)),
            model_label: model_label(&account.models, &member.upstream_model),
            rate_limit: None,
            ttl_ms: self.settings.lease_ttl_ms(),
            fallback: String::new(),
            first_byte_timeout_ms: None,
            deadline_ms: None,
            fallback_classes: Vec::new(),
            settings: account.settings.clone().unwrap_or_default(),
            prices: account.prices.map(v1::ModelPrices::from),
        }
    }

    /// Keeps an open lease for another lease TTL from now.
    pub(crate) async fn renew_lease(
        &self,
        wire_lease_id: &str,
    ) -> Result<v1::RenewLeaseReply, GatewayError> {
        let WireLease { lease_id, .. } = split_lease_id(wire_lease_id).ok_or_else(|| {
            GatewayError::invalid("lease_id", "lease_id is not one this service issued")
        })?;
        let now_ms = self.clock.now_ms();
        let ttl_ms = self.settings.lease_ttl_ms();
        let renewed = self
            .counters
            .renew(lease_id, ttl_ms, now_ms)
            .await
            .map_err(from_counters)?;
        Ok(v1::RenewLeaseReply {
            renewed,
            ttl_ms: if renewed { ttl_ms } else { 0 },
        })
    }

    pub(crate) async fn settle(
        &self,
        request: v1::SettleRequest,
    ) -> Result<v1::SettleReply, GatewayError> {
        let WireLease {
            lease_id,
            key_id,
            account_id,
        } = split_lease_id(&request.lease_id).ok_or_else(|| {
            GatewayError::invalid("lease_id", "lease_id is not one this service issued")
        })?;
        let cost_micro_usd = u64::try_from(request.cost_micro_usd).map_err(|_| {
            GatewayError::invalid("cost_micro_usd", "cost_micro_usd must not be negative")
        })?;
        let usage = request.usage.unwrap_or_default();
        let actual = u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens);
        // The upstream answered in full: the account's run of failures is over,
        // in the same step. (A failed attempt is released with zero usage, and
        // a cut stream is settled as failed.)
        let served = actual > 0 && !request.failed;
        self.counters
            .settle(SettleInput {
                lease_id: lease_id.to_owned(),
                account_id: account_id.to_owned(),
                key_id: key_id.map(str::to_owned),
                actual_tokens: actual,
                cost_micro_usd,
                served,
                latency_us: request.upstream_latency_us.filter(|_| served),
                now_ms: self.clock.now_ms(),
                // As long as the router may retry it: a lease TTL.
                remember_ms: self.settings.lease_ttl_ms(),
            })
            .await
            .map_err(from_counters)?;
        Ok(v1::SettleReply {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_models_are_labelled_other() {
        let configured = vec!["gpt-4o-mini".to_owned()];
        assert_eq!(model_label(&configured, "gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(model_label(&configured, "anything-a-client-sends"), "other");
        assert_eq!(model_label(&[], "llama"), "other");
    }

    #[test]
    fn wire_lease_ids_carry_the_account() {
        let wire = wire_lease_id("lease_0192", None, "acct_0193");
        assert_eq!(
            split_lease_id(&wire),
            Some(WireLease {
                lease_id: "lease_0192",
                key_id: None,
                account_id: "acct_0193"
            })
        );
        assert_eq!(split_lease_id("lease_0192"), None);
        assert_eq!(split_lease_id(".acct"), None);
        assert_eq!(split_lease_id("lease."), None);
    }

    #[test]
    fn wire_lease_ids_carry_the_key() {
        let wire = wire_lease_id("lease_0192", Some("key_0194"), "acct_0193");
        assert_eq!(wire, "lease_0192:key_0194.acct_0193");
        assert_eq!(
            split_lease_id(&wire),
            Some(WireLease {
                lease_id: "lease_0192",
                key_id: Some("key_0194"),
                account_id: "acct_0193"
            })
        );
        // A key id that could not be parsed back is left out.
        assert_eq!(
            wire_lease_id("lease_0192", Some("key.odd"), "acct_0193"),
            "lease_0192.acct_0193"
        );
        assert_eq!(
            wire_lease_id("lease_0192", Some(""), "acct_0193"),
            "lease_0192.acct_0193"
        );
        assert_eq!(split_lease_id("lease_0192:.acct"), None);
        assert_eq!(split_lease_id(":key.acct"), None);
    }
}
