//! Quota counters: per-account daily tokens, reservations (leases), cooldowns.
//!
//! [`QuotaCounters`] is the admission primitive behind the quota service's
//! `Lease`: one atomic step that picks an account among candidates and
//! reserves tokens on it. The rules every implementation keeps:
//!
//! - Tokens used are counted per account per UTC day
//!   ([`tollgate_core::clock::utc_day`] of `now_ms`), so a new day starts at
//!   zero at 00:00 UTC without any job. Open reservations are not per day:
//!   they count against whichever day they are still open in.
//! - A candidate is eligible when it is not cooling down and
//!   `used_today + reserved + tokens <= daily_limit` (no limit: always).
//! - Among eligible candidates the one with the most tokens left today
//!   (`daily_limit - used_today - reserved`; unlimited counts as most) wins;
//!   ties go to higher `priority`, then higher `weight`, then the earlier
//!   candidate in the list.
//! - A lease not settled within its TTL expires and its reservation is
//!   released (lazily on every call, and by [`QuotaCounters::sweep`]).
//! - Settling replaces the reservation with the actual count; settling an
//!   expired or unknown lease still counts the actual tokens on the account
//!   the caller names.
//! - A denial says when the soonest candidate could serve: its cooldown end,
//!   the next 00:00 UTC for a spent daily limit, or shortly for one blocked
//!   only by reservations in flight.
//!
//! - A lease may name the client key it is for, with the key's own limits
//!   ([`KeyLimits`]): requests per minute and tokens per minute over a
//!   sliding [`KEY_WINDOW_MS`] window, and tokens per UTC day (used plus
//!   reserved, like an account). The key is checked first, in the same
//!   atomic step as the account choice: a request a key limit refuses
//!   reserves nothing anywhere, and one the accounts refuse records nothing
//!   on the key. A grant records the request and its tokens in the key's
//!   window and reserves the tokens on the key's day; settling corrects
//!   both to the actual count. Window entries are not released when a
//!   lease expires: the request was made, and it slides out on its own.
//!   Every decision for a key reports where its window stands
//!   ([`KeyWindowReport`]), after the request on a grant.
//!
//! All times are unix milliseconds passed in by the caller, so tests drive
//! them with a manual clock and replicas agree on what "now" means. Every
//! input of a decision is in its arguments, so each call fits one
//! server-side script: [`MemoryCounters`] takes one lock per call,
//! [`RedisCounters`] runs one Lua script per call; both pass the same
//! conformance suite.

#[cfg(test)]
pub(crate) mod conformance;
mod memory;
pub mod redis;

pub use self::redis::RedisCounters;
pub use memory::MemoryCounters;

use async_trait::async_trait;

/// How long a candidate blocked only by open reservations is told to wait:
/// any of them may settle at any moment.
pub const IN_FLIGHT_RETRY_MS: i64 = 1_000;

/// The span of the sliding window a key's RPM and TPM are counted over.
pub const KEY_WINDOW_MS: i64 = 60_000;

/// A client key's own limits, checked in the same step as the account
/// choice. `None` is no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLimits {
    pub key_id: String,
    /// Requests admitted within any [`KEY_WINDOW_MS`].
    pub rpm: Option<u32>,
    /// Tokens (reserved, then actual once settled) within any
    /// [`KEY_WINDOW_MS`].
    pub tpm: Option<u32>,
    /// Tokens used plus reserved per UTC day.
    pub daily_token_budget: Option<u64>,
}

/// An account that may serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub account_id: String,
    /// Tokens it may use per UTC day; `None` means unlimited.
    pub daily_limit: Option<u64>,
    /// Higher wins a tie on tokens remaining.
    pub priority: i32,
    /// Higher wins a tie on remaining tokens and priority.
    pub weight: u32,
}

/// One admission request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInput {
    /// Chosen by the caller, unique per lease.
    pub lease_id: String,
    pub candidates: Vec<Candidate>,
    /// Tokens to reserve on the chosen account.
    pub tokens: u64,
    pub now_ms: i64,
    /// After this long an unsettled lease expires; must be positive.
    pub ttl_ms: i64,
    /// The client key the request is for, when it has limits to enforce.
    pub key: Option<KeyLimits>,
}

/// A reservation made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGranted {
    pub lease_id: String,
    pub account_id: String,
    pub reserved_tokens: u64,
    pub expires_at_ms: i64,
    /// Tokens the account has left today after this reservation; `None`
    /// when it has no daily limit.
    pub remaining_tokens: Option<u64>,
    /// The key's window after this request, when the lease named a key.
    pub key_window: Option<KeyWindowReport>,
}

/// Where a client key stands in its sliding window at a decision, for the
/// `x-ratelimit-*` headers: what is left of its RPM and TPM and when the
/// window next frees some of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyWindowReport {
    /// Requests the key may still make in the window; `None` without an
    /// RPM limit.
    pub remaining_requests: Option<u64>,
    /// Tokens the key may still use in the window; `None` without a TPM
    /// limit.
    pub remaining_tokens: Option<u64>,
    /// When the oldest request in the window leaves it (unix ms); the
    /// decision's `now_ms` when the window is empty.
    pub requests_reset_at_ms: i64,
    /// When the oldest request holding tokens leaves the window (unix ms);
    /// the decision's `now_ms` when none holds any.
    pub tokens_reset_at_ms: i64,
}

/// Why no candidate could take a lease (the one that could serve soonest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialReason {
    /// The list of candidates was empty.
    NoCandidates,
    /// Cooling down after an upstream 429 or repeated failures.
    CoolingDown,
    /// Its tokens for today are spent.
    DailyLimit,
    /// Only reservations still open keep it from fitting.
    InFlight,
    /// The key's requests per minute are spent (window slides at
    /// `retry_at_ms`).
    KeyRpm,
    /// The key's tokens per minute are spent, or the request is larger
    /// than them.
    KeyTpm,
    /// The key's tokens for today are spent (or held by its open leases).
    KeyDailyBudget,
}

impl DenialReason {
    /// A low-cardinality label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            DenialReason::NoCandidates => "no_candidates",
            DenialReason::CoolingDown => "cooldown",
            DenialReason::DailyLimit => "daily_limit",
            DenialReason::InFlight => "in_flight",
            DenialReason::KeyRpm => "key_rpm",
            DenialReason::KeyTpm => "key_tpm",
            DenialReason::KeyDailyBudget => "key_daily_budget",
        }
    }

    /// Whether the client key's own limit refused the request (rather than
    /// every account being unable to serve it).
    pub const fn is_key_limit(self) -> bool {
        matches!(
            self,
            DenialReason::KeyRpm | DenialReason::KeyTpm | DenialReason::KeyDailyBudget
        )
    }
}

/// No reservation made, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseDenied {
    /// The soonest instant (unix ms) any candidate could serve.
    pub retry_at_ms: i64,
    pub reason: DenialReason,
    /// The key's window as it stands (nothing was admitted), when the lease
    /// named a key.
    pub key_window: Option<KeyWindowReport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    Granted(LeaseGranted),
    Denied(LeaseDenied),
}

/// The real usage of a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleInput {
    pub lease_id: String,
    /// The account the lease was granted on; used when the lease has
    /// expired or is unknown (the actual tokens still count).
    pub account_id: String,
    /// The key the lease was for; like `account_id`, its day counter is
    /// charged when the lease has expired or is unknown.
    pub key_id: Option<String>,
    pub actual_tokens: u64,
    pub now_ms: i64,
}

/// What settling found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The lease was open: its reservation was replaced by the actual count.
    Settled,
    /// The lease had expired or was unknown: the actual count was added to
    /// the named account.
    Late,
}

/// An account's counters now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountUsage {
    /// Tokens settled on the current UTC day.
    pub used_today: u64,
    /// Tokens held by open leases.
    pub reserved: u64,
    /// Set while the account is cooling down.
    pub cooling_until_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    #[error("a lease with id {0:?} is already open")]
    DuplicateLease(String),
    #[error("invalid counters input: {0}")]
    InvalidInput(&'static str),
    #[error("counters backend failed: {0}")]
    Backend(String),
}

/// Per-account daily token counters, leases and cooldowns, shared by every
/// quota replica that uses the same backend.
#[async_trait]
pub trait QuotaCounters: Send + Sync {
    /// Picks a candidate and reserves `tokens` on it, atomically.
    async fn lease(&self, input: LeaseInput) -> Result<LeaseDecision, CountersError>;

    /// Replaces a lease's reservation with the tokens really used.
    async fn settle(&self, input: SettleInput) -> Result<Settlement, CountersError>;

    /// Keeps the account out of every lease until `until_ms`. A cooldown
    /// only ever extends: an earlier `until_ms` than the current one is
    /// ignored.
    async fn cooldown(&self, account_id: &str, until_ms: i64) -> Result<(), CountersError>;

    /// The account's counters at `now_ms` (expired leases released first).
    async fn usage(&self, account_id: &str, now_ms: i64) -> Result<AccountUsage, CountersError>;

    /// Expires every lease past its TTL at `now_ms`; returns how many.
    async fn sweep(&self, now_ms: i64) -> Result<u64, CountersError>;
}
