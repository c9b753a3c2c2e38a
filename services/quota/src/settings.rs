//! The quota service's tunables, with the defaults an embedded deployment
//! runs with.

use std::collections::BTreeMap;
use std::time::Duration;

use tollgate_counters::{CircuitPolicy, Reservation, Strategy};
use tollgate_proto::v1::LeaseRequest;

/// How the quota service times leases, cooldowns and its account snapshot,
/// and how each profile picks its accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings {
    /// How long an unsettled lease holds its reservation. A router that
    /// crashes mid-request leaks its reservation for at most this long; a
    /// settle that arrives later still counts the real usage.
    pub lease_ttl: Duration,
    /// Cooldown after an upstream 429 that names no Retry-After.
    pub default_cooldown: Duration,
    /// The longest cooldown an upstream 429's Retry-After may ask for;
    /// `None`: until the next 00:00 UTC at the latest.
    pub max_cooldown: Option<Duration>,
    /// Consecutive server errors or timeouts on one account that open its
    /// circuit.
    pub failure_threshold: u32,
    /// How long a circuit first stays open; it doubles each time a probe
    /// fails.
    pub failure_cooldown: Duration,
    /// The longest a circuit stays open however often its probes fail.
    pub failure_backoff_max: Duration,
    /// How old the in-memory account snapshot may get before a lease
    /// triggers a reload from the store (writes through this process reload
    /// it at once).
    pub refresh_interval: Duration,
    /// Completion tokens per choice a lease reserves for a request that
    /// sets no cap (the model's maximum output), lowered to the room the
    /// chosen account has left; the cap it ends up with is sent upstream.
    pub default_completion_cap: u32,
    /// The least completion cap per choice worth granting a request that
    /// sets none: an account with less room left is skipped for it.
    pub min_completion_cap: u32,
    /// Settings of the profiles that have any, by name; the others use
    /// [`ProfileSettings::default`].
    pub profiles: BTreeMap<String, ProfileSettings>,
}

/// What one profile changes from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileSettings {
    /// How a lease picks among the profile's eligible accounts.
    pub strategy: Strategy,
}

impl QuotaSettings {
    /// The strategy of `profile`.
    pub(crate) fn strategy(&self, profile: &str) -> Strategy {
        self.profiles
            .get(profile)
            .map(|settings| settings.strategy)
            .unwrap_or_default()
    }

    /// What a lease for `request` reserves: its prompt estimate, and the
    /// client's completion cap for each choice or, without one, up to
    /// [`QuotaSettings::default_completion_cap`].
    pub(crate) fn reservation(&self, request: &LeaseRequest) -> Reservation {
        Reservation::for_request(
            u64::from(request.prompt_tokens),
            request.max_completion_tokens.map(u64::from),
            u64::from(request.choices),
            u64::from(self.default_completion_cap),
            u64::from(self.min_completion_cap),
        )
        .with_worst_prompt(u64::from(request.worst_prompt_tokens))
    }

    /// The lease TTL in milliseconds.
    pub(crate) fn lease_ttl_ms(&self) -> i64 {
        millis(self.lease_ttl)
    }

    pub(crate) fn circuit_policy(&self) -> CircuitPolicy {
        CircuitPolicy {
            failure_threshold: self.failure_threshold,
            // The counters refuse a zero backoff.
            base_backoff_ms: millis(self.failure_cooldown).max(1),
            max_backoff_ms: millis(self.failure_backoff_max),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(120),
            default_cooldown: Duration::from_secs(60),
            max_cooldown: None,
            failure_threshold: 3,
            failure_cooldown: Duration::from_secs(5),
            failure_backoff_max: Duration::from_secs(600),
            refresh_interval: Duration::from_secs(5),
            default_completion_cap: 4_096,
            min_completion_cap: 256,
            profiles: BTreeMap::new(),
        }
    }
}
