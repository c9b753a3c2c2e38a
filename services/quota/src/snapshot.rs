//! The in-memory copy of every provider account, every enabled route, the
//! stored profiles' strategies and every client key's limits, so `Lease`
//! and `ListModels` touch no database.
//!
//! The snapshot is rebuilt from the control store after every account,
//! profile, route or key write made through this process or (heard through
//! the Redis broadcast) through another replica, and at the latest
//! `refresh_interval` after the previous load: a read that finds it older
//! starts a reload in the background and carries on with the copy it has. Secrets are opened once
//! per load; an account whose secret cannot be opened is kept out of leases.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tollgate_control_store::crypto::SecretBox;
use tollgate_control_store::{
    AccountRecord, ControlError, ControlStore, KeyRecord, ProfileRecord, RouteRecord,
};
use tollgate_counters::{KeyLimits, Strategy};
use tracing::{debug, warn};

/// One account as leases see it.
pub(crate) struct AccountEntry {
    pub record: AccountRecord,
    /// The opened secret; `None` when it has none or it could not be opened.
    pub credential: Option<SecretString>,
    /// Whether it can be leased at all: enabled, with a credential when its
    /// provider needs one.
    pub leasable: bool,
}

impl AccountEntry {
    fn new(record: AccountRecord, secrets: &SecretBox) -> Self {
        let credential = record
            .sealed_secret
            .as_deref()
            .and_then(|sealed| match secrets.open(sealed) {
                Ok(secret) => Some(secret),
                Err(err) => {
                    warn!(account = %record.id, error = %err, "account secret cannot be opened; account not leasable");
                    None
                }
            });
        let has_needed_secret = credential.is_some()
            || !crate::accounts::needs_secret(record.provider, record.settings.as_deref());
        Self {
            leasable: record.enabled && has_needed_secret,
            credential,
            record,
        }
    }
}

/// Every account at one moment, oldest first, every enabled route, the
/// strategies of the stored profiles that have one, and the limits of every
/// key that has any.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub accounts: Vec<Arc<AccountEntry>>,
    /// Enabled routes by profile, then alias.
    pub routes: HashMap<String, HashMap<String, RouteRecord>>,
    /// By profile name; a profile without a stored strategy is absent.
    pub profile_strategies: HashMap<String, Strategy>,
    /// By key id; a key without limits is absent.
    pub key_limits: HashMap<String, KeyLimits>,
}

impl Snapshot {
    /// The enabled route of `profile` whose alias is `alias`.
    pub fn route(&self, profile: &str, alias: &str) -> Option<&RouteRecord> {
        self.routes.get(profile)?.get(alias)
    }

    /// The strategy stored for `profile`, if any.
    pub fn profile_strategy(&self, profile: &str) -> Option<Strategy> {
        self.profile_strategies.get(profile).copied()
    }
}

/// The stored strategies by profile name.
fn profile_strategies(profiles: Vec<ProfileRecord>) -> HashMap<String, Strategy> {
    profiles
        .into_iter()
        .filter_map(|profile| Some((profile.name, profile.strategy?)))
        .collect()
}

/// Enabled routes by profile, then alias.
fn enabled_routes(routes: Vec<RouteRecord>) -> HashMap<String, HashMap<String, RouteRecord>> {
    let mut by_profile: HashMap<String, HashMap<String, RouteRecord>> = HashMap::new();
    for route in routes.into_iter().filter(|route| route.enabled) {
        by_profile
            .entry(route.profile.clone())
            .or_default()
            .insert(route.alias.clone(), route);
    }
    by_profile
}

/// The limits a lease enforces for `key`, if it has any.
fn key_limits(key: KeyRecord) -> Option<KeyLimits> {
    // Stored budgets are positive (checked on write); anything else is no
    // budget.
    let monthly_budget_micro_usd = key
        .monthly_budget_micro_usd
        .and_then(|budget| u64::try_from(budget).ok());
    let limited = key.rpm.is_some()
        || key.tpm.is_some()
        || key.daily_token_budget.is_some()
        || monthly_budget_micro_usd.is_some();
    limited.then_some(KeyLimits {
        key_id: key.id,
        rpm: key.rpm,
        tpm: key.tpm,
        daily_token_budget: key.daily_token_budget,
        monthly_budget_micro_usd,
    })
}

struct Installed {
    snapshot: Arc<Snapshot>,
    generation: u64,
    loaded_at: Instant,
}

/// Holds the current [`Snapshot`] and reloads it.
pub(crate) struct AccountCache {
    control: Arc<dyn ControlStore>,
    secrets: SecretBox,
    refresh_interval: Duration,
    installed: RwLock<Installed>,
    generations: AtomicU64,
    /// A background reload runs.
    refreshing: AtomicBool,
    /// A background reload was asked for and has not started yet.
    wanted: AtomicBool,
}

impl AccountCache {
    /// Loads the first snapshot.
    pub async fn load(
        control: Arc<dyn ControlStore>,
        secrets: SecretBox,
        refresh_interval: Duration,
    ) -> Result<Arc<Self>, ControlError> {
        let cache = Arc::new(Self {
            control,
            secrets,
            refresh_interval,
            installed: RwLock::new(Installed {
                snapshot: Arc::new(Snapshot::default()),
                generation: 0,
                loaded_at: Instant::now(),
            }),
            generations: AtomicU64::new(1),
            refreshing: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
        });
        cache.reload().await?;
        Ok(cache)
    }

    /// Reads every account, route, profile and key from the store and installs the result, unless
    /// a load that started later has already installed a newer one.
    pub async fn reload(&self) -> Result<(), ControlError> {
        let generation = self.generations.fetch_add(1, Ordering::SeqCst);
        let records = self.control.list_accounts().await?;
        let routes = self.control.list_routes().await?;
        let profiles = self.control.list_profiles().await?;
        let keys = self.control.list_keys().await?;
        let snapshot = Arc::new(Snapshot {
            accounts: records
                .into_iter()
                .map(|record| Arc::new(AccountEntry::new(record, &self.secrets)))
                .collect(),
            routes: enabled_routes(routes),
            profile_strategies: profile_strategies(profiles),
            key_limits: keys
                .into_iter()
                .filter_map(key_limits)
                .map(|limits| (limits.key_id.clone(), limits))
                .collect(),
        });
        let mut installed = self
            .installed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if generation > installed.generation {
            *installed = Installed {
                snapshot,
                generation,
                loaded_at: Instant::now(),
            };
        }
        Ok(())
    }

    /// The current snapshot; starts a background reload when it is stale.
    pub fn current(self: &Arc<Self>) -> Arc<Snapshot> {
        let (snapshot, stale) = {
            let installed = self
                .installed
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                Arc::clone(&installed.snapshot),
                installed.loaded_at.elapsed() >= self.refresh_interval,
            )
        };
        // Reads that find it stale while a reload runs wait for that one.
        if stale && !self.refreshing.load(Ordering::SeqCst) {
            self.reload_in_background();
        }
        snapshot
    }

    /// Counts a failed reload as a load, so the next attempt waits a full
    /// interval instead of following on every call.
    fn postpone_reload(&self) {
        self.installed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .loaded_at = Instant::now();
    }

    /// Reloads the snapshot on a background task. One runs at a time; a
    /// reload asked for while one runs is made once that one is done, so
    /// a change written after the running reload read the store is never
    /// missed.
    pub(crate) fn reload_in_background(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.wanted.store(true, Ordering::SeqCst);
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let cache = Arc::clone(self);
        runtime.spawn(async move {
            loop {
                while cache.wanted.swap(false, Ordering::SeqCst) {
                    match cache.reload().await {
                        Ok(()) => debug!("account snapshot reloaded"),
                        Err(err) => {
                            warn!(error = %err, "account snapshot reload failed; keeping the old one");
                            cache.postpone_reload();
                            break;
                        }
                    }
                }
                cache.refreshing.store(false, Ordering::SeqCst);
                // Asked for between the last check and the line above: this
                // task goes on unless another has started meanwhile.
                if !cache.wanted.load(Ordering::SeqCst)
                    || cache.refreshing.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            }
        });
    }
}
