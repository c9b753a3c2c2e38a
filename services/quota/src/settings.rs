//! The quota service's tunables, with the defaults an embedded deployment
//! runs with.

use std::time::Duration;

/// How the quota service times leases, cooldowns and its account snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings {
    /// How long an unsettled lease holds its reservation. A router that
    /// crashes mid-request leaks its reservation for at most this long; a
    /// settle that arrives later still counts the real usage.
    pub lease_ttl: Duration,
    /// Cooldown after an upstream 429 that names no Retry-After.
    pub default_cooldown: Duration,
    /// Consecutive server errors or timeouts on one account that trigger a
    /// short cooldown.
    pub failure_threshold: u32,
    /// That short cooldown.
    pub failure_cooldown: Duration,
    /// How old the in-memory account snapshot may get before a lease
    /// triggers a reload from the store (writes through this process reload
    /// it at once).
    pub refresh_interval: Duration,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(300),
            default_cooldown: Duration::from_secs(60),
            failure_threshold: 3,
            failure_cooldown: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(5),
        }
    }
}
