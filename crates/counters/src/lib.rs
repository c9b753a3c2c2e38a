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
//!   `used_today + reserved + least <= daily_limit` (no limit: always),
//!   where `least` is what the lease's [`Reservation`] needs at the least:
//!   its prompt plus the client's completion cap, or plus a minimum
//!   completion when the client set none. The grant reserves the prompt
//!   plus the client's cap, or plus the largest completion (up to the
//!   model's maximum) that fits the chosen account's room and the key's
//!   ([`Reservation::fit`]), and reports that completion cap.
//! - Among eligible candidates the lease's [`Strategy`] picks one (denials
//!   do not depend on it):
//!   - `most_remaining` (the default): the most tokens left today
//!     (`daily_limit - used_today - reserved`; unlimited counts as most);
//!     ties go to higher `priority`, then higher `weight`, then the earlier
//!     candidate in the list.
//!   - `priority`: the highest `priority`; ties go to the most tokens left,
//!     then the earlier candidate.
//!   - `weighted`: at random in proportion to `weight`, decided by the
//!     caller's [`Selection::draw`] (a weight of 0 is never picked unless
//!     every eligible weight is 0, then each counts as 1).
//!   - `round_robin`: the eligible candidates in list order, one after the
//!     other, following a cursor per [`Selection::pool`] shared by every
//!     caller of the same store (it only advances on a grant, and is
//!     forgotten after [`ROTATION_IDLE_MS`] without one).
//!   - `least_inflight`: the fewest open leases; ties go to the most tokens
//!     left, then the earlier candidate.
//!   - `lowest_latency`: the lowest upstream latency average
//!     ([`AccountActivity::latency_ewma_us`]), an account not measured yet
//!     first (so each gets measured); ties go to the most tokens left, then
//!     the earlier candidate.
//! - Each account has a circuit breaker, shared like everything else:
//!   [`QuotaCounters::record_failure`] counts consecutive server failures;
//!   at the policy's threshold the circuit opens for a backoff (the policy's
//!   base, doubled each time it opens again without having closed, capped).
//!   While open the account is not eligible ([`DenialReason::CircuitOpen`],
//!   retry at its end). Once the backoff is over the circuit is half-open:
//!   exactly one lease (the probe) may be granted on the account; while that
//!   lease is open the account is not eligible (`CircuitOpen`, retry
//!   shortly, like [`DenialReason::InFlight`]). Settling the probe or its
//!   expiry lets the next lease probe. A success
//!   ([`QuotaCounters::record_success`]) closes a half-open circuit and
//!   forgets the backoff, or restarts the count of a closed one; a failure
//!   re-opens a half-open circuit with the doubled backoff. Reports that
//!   arrive while the circuit is open (from requests started before it
//!   opened) change nothing.
//! - A lease not settled within its TTL expires and its reservation is
//!   released (lazily on every call, and by [`QuotaCounters::sweep`]). An
//!   account counts its open leases (`in_flight`): one more on a grant, one
//!   less when the lease is settled or expires.
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
//!   reserved, like an account). The key is checked first (for the
//!   reservation's least), in the same atomic step as the account choice,
//!   and its room left under its TPM and daily budget bounds the
//!   reservation as the account's does: a request a key limit refuses
//!   reserves nothing anywhere, and one the accounts refuse records nothing
//!   on the key. A grant records the request and its tokens in the key's
//!   window and reserves the tokens on the key's day; settling corrects
//!   both to the actual count. Window entries are not released when a
//!   lease expires: the request was made, and it slides out on its own.
//!   Every decision for a key reports where its window stands
//!   ([`KeyWindowReport`]), after the request on a grant.
//! - A key's monthly USD budget counts the cost (integer micro-dollars)
//!   settled per UTC calendar month ([`tollgate_core::clock::utc_month`]);
//!   like the day counters, a month counter never goes back to an earlier
//!   month. A request's cost is only known once it is answered, so the
//!   check is on settled spend alone: a key is refused once its spend
//!   reached the budget ([`DenialReason::KeyMonthlyBudget`], retry at the
//!   start of the next month), and the requests in flight when it gets
//!   there may take it past the budget by their cost. Settling adds the
//!   cost to the key's month for open, late and unknown leases alike.
//!
//! Every call takes the caller's `now_ms`; what "now" is for a decision is
//! the store's to say. [`MemoryCounters`] (one process) takes it as it
//! is. [`RedisCounters`] reads the Redis server's clock inside each script
//! instead, so every replica decides by one clock whatever its own says
//! (its conformance tests pass it a caller's clock, to drive time by hand).
//! Decisions report the time they were made at, and durations (a lease's
//! TTL, a cooldown) are passed as durations, so nothing mixes two clocks.
//! Every other input of a decision is in its arguments, so each call fits
//! one server-side script: [`MemoryCounters`] takes one lock per call,
//! [`RedisCounters`] runs one Lua script per call; both pass the same
//! conformance suite.
//! - Each account keeps its activity ([`activity`]): a served settle is a
//!   success (and carries the call's latency), [`QuotaCounters::record_error`]
//!   an error; both are read back with [`QuotaCounters::usage`].
//! - Settling is idempotent: a settled lease (open or late) is remembered
//!   for [`SettleInput::remember_ms`], and settling it again within that
//!   time charges nothing ([`Settlement::Repeated`]), so a caller may retry
//!   a settle whose answer it lost.

pub mod activity;
#[cfg(test)]
pub(crate) mod conformance;
mod memory;
pub mod redis;
mod reservation;

pub use self::activity::{AccountActivity, ErrorClass};
pub use self::redis::RedisCounters;
pub use memory::MemoryCounters;
pub use reservation::{Completion, Fit, Reservation};
/// How a lease picks among the eligible candidates (see the crate doc).
pub use tollgate_core::Strategy;

use async_trait::async_trait;

/// How long a candidate blocked only by open reservations is told to wait:
/// any of them may settle at any moment.
pub const IN_FLIGHT_RETRY_MS: i64 = 1_000;

/// The span of the sliding window a key's RPM and TPM are counted over.
pub const KEY_WINDOW_MS: i64 = 60_000;

/// How long a `round_robin` cursor outlives its last grant: pools are named
/// after client-supplied model names, so idle ones must not pile up.
pub const ROTATION_IDLE_MS: i64 = 86_400_000;

/// The strategy of a lease with the inputs it needs, so the decision stays
/// a function of its arguments (and replays the same in both stores).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    pub strategy: Strategy,
    /// A uniformly random number from the caller, for `weighted`: the pick
    /// is the candidate whose share of the eligible weights holds
    /// `(draw mod 2^53) mod total weight` (only 53 bits, so every step is
    /// exact in a Redis script).
    pub draw: u64,
    /// The rotation `round_robin` follows: callers that name the same pool
    /// share one cursor.
    pub pool: String,
}

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
    /// Micro-dollars settled per UTC calendar month; checked against spend
    /// already settled (see the crate doc).
    pub monthly_budget_micro_usd: Option<u64>,
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
    /// Reserves the prompt at its worst case
    /// ([`Reservation::worst_prompt_tokens`]), so its limit holds even when
    /// the estimate is low.
    pub strict: bool,
}

/// One admission request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInput {
    /// Chosen by the caller, unique per lease.
    pub lease_id: String,
    pub candidates: Vec<Candidate>,
    /// Tokens to reserve on the chosen account (and the key): a candidate
    /// is eligible when it has room for [`Reservation::least`], and the
    /// grant reserves [`Reservation::fit`] of the room it (and the key)
    /// has left.
    pub reservation: Reservation,
    pub now_ms: i64,
    /// After this long an unsettled lease expires; must be positive.
    pub ttl_ms: i64,
    /// The client key the request is for, when it has limits to enforce.
    pub key: Option<KeyLimits>,
    /// How the account is picked among the eligible ones.
    pub selection: Selection,
    /// A health probe of a cooling or circuit-broken account: cooldowns
    /// and circuits keep no candidate out (daily limits still do).
    pub health_probe: bool,
}

/// A reservation made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGranted {
    /// When the decision was made, by the store's clock.
    pub decided_at_ms: i64,
    pub lease_id: String,
    pub account_id: String,
    pub reserved_tokens: u64,
    /// The completion cap per choice the reservation assumed, for a
    /// request that set none; `None` when the client's cap stands.
    pub completion_cap: Option<u64>,
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
    /// The key's settled spend this UTC month reached its monthly budget
    /// (retry at the start of the next month).
    KeyMonthlyBudget,
    /// Its circuit is open after repeated server failures (retry when the
    /// backoff ends), or half-open with its one probe lease in flight
    /// (retry shortly).
    CircuitOpen,
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
            DenialReason::KeyMonthlyBudget => "key_monthly_budget",
            DenialReason::CircuitOpen => "circuit_open",
        }
    }

    /// Whether the client key's own limit refused the request (rather than
    /// every account being unable to serve it).
    pub const fn is_key_limit(self) -> bool {
        matches!(
            self,
            DenialReason::KeyRpm
                | DenialReason::KeyTpm
                | DenialReason::KeyDailyBudget
                | DenialReason::KeyMonthlyBudget
        )
    }
}

/// No reservation made, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseDenied {
    /// When the decision was made, by the store's clock.
    pub decided_at_ms: i64,
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
    /// What the request cost in micro-dollars, added to the key's month
    /// (the lease's key when it is open, else `key_id`).
    pub cost_micro_usd: u64,
    /// The upstream served the request in full: in the same step, a
    /// success on the account's circuit (its failure count restarts, a
    /// half-open circuit closes; an open one is left alone).
    pub served: bool,
    /// How long the served call took upstream, in microseconds, folded
    /// into the account's latency average (only when `served`).
    pub latency_us: Option<u64>,
    pub now_ms: i64,
    /// How long the settle is remembered, so the same settle sent again
    /// charges nothing: at least as long as the caller may retry it (the
    /// lease TTL). Must be positive.
    pub remember_ms: i64,
}

/// What settling found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The lease was open: its reservation was replaced by the actual count.
    Settled,
    /// The lease had expired or was unknown: the actual count was added to
    /// the named account.
    Late,
    /// The lease was settled already: nothing was charged again.
    Repeated,
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
    /// Leases open on it.
    pub in_flight: u64,
    /// Server failures in a row while its circuit is closed.
    pub consecutive_failures: u32,
    /// Set while its circuit is open: when the backoff ends.
    pub circuit_open_until_ms: Option<i64>,
    /// Its backoff is over but no success has closed the circuit yet: one
    /// probe lease at a time.
    pub half_open: bool,
    /// What it has been doing (see [`activity`]).
    pub activity: AccountActivity,
}

/// When an account's circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Consecutive failures that open a closed circuit (0 counts as 1).
    pub failure_threshold: u32,
    /// The first backoff; must be positive.
    pub base_backoff_ms: i64,
    /// The longest backoff (raised to the base when below it).
    pub max_backoff_ms: i64,
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

    /// Keeps an open lease (a long stream) for `ttl_ms` from now; an
    /// expiry only moves later. False when the lease is no longer open
    /// (settled, expired or unknown): its reservation is gone and is not
    /// made again.
    async fn renew(&self, lease_id: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, CountersError>;

    /// Keeps the account out of every lease for `duration_ms` from now. A
    /// cooldown only ever extends: one that would end before the current
    /// one changes nothing. Returns when the cooldown ends.
    async fn cooldown(
        &self,
        account_id: &str,
        duration_ms: i64,
        now_ms: i64,
    ) -> Result<i64, CountersError>;

    /// Counts a server error or timeout on the account at `now_ms` (see the
    /// crate doc for the circuit's rules). Returns when the circuit stays
    /// open until if this failure opened it.
    async fn record_failure(
        &self,
        account_id: &str,
        policy: CircuitPolicy,
        now_ms: i64,
    ) -> Result<Option<i64>, CountersError>;

    /// An operator's reset of the account's health: ends its cooldown
    /// (`cooldown`) and closes its circuit, forgetting its failures and
    /// backoff (`circuit`).
    async fn reset_health(
        &self,
        account_id: &str,
        cooldown: bool,
        circuit: bool,
    ) -> Result<(), CountersError>;

    /// Takes `name` for `hold_ms` from now, unless it is held already
    /// (from an earlier claim whose hold has not ended); whether this call
    /// took it. One taker per hold across every replica of the store: the
    /// health probe of an account is claimed so.
    async fn claim(&self, name: &str, hold_ms: i64, now_ms: i64) -> Result<bool, CountersError>;

    /// Records a failure of an upstream call on the account at `now_ms` in
    /// its activity: its last error and one more error today. (What the
    /// failure does to the account, a cooldown or its circuit, is
    /// [`QuotaCounters::cooldown`]'s and [`QuotaCounters::record_failure`]'s.)
    async fn record_error(
        &self,
        account_id: &str,
        class: ErrorClass,
        now_ms: i64,
    ) -> Result<(), CountersError>;

    /// Records that the account served a request at `now_ms`. Returns
    /// whether this closed its (half-open) circuit.
    async fn record_success(&self, account_id: &str, now_ms: i64) -> Result<bool, CountersError>;

    /// The account's counters at `now_ms` (expired leases released first).
    async fn usage(&self, account_id: &str, now_ms: i64) -> Result<AccountUsage, CountersError>;

    /// Expires every lease past its TTL at `now_ms`; returns how many.
    async fn sweep(&self, now_ms: i64) -> Result<u64, CountersError>;

    /// Raises the account's tokens used today (the day
    /// [`QuotaCounters::usage`] reads) to `tokens` if it is below, and
    /// returns the count it had before; `None`, changing nothing, when
    /// today (by the store's clock) is not UTC day `day`. Reconciliation
    /// calls it with the usage store's total for that day, repairing a
    /// counter that lost writes (a Redis flush or failover). It never
    /// lowers a counter: one above the store is expected while usage
    /// events are still on their way, and lowering it would let the
    /// account pass its limit.
    async fn raise_used_today(
        &self,
        account_id: &str,
        tokens: u64,
        day: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError>;

    /// Raises a client key's spend this UTC month (what its monthly budget
    /// reads) to `micro_usd` if it is below, and returns the amount it had
    /// before; `None`, changing nothing, when this month (by the store's
    /// clock) is not `month` (`YYYYMM`). As
    /// [`QuotaCounters::raise_used_today`], for the month's spend.
    async fn raise_key_spend(
        &self,
        key_id: &str,
        micro_usd: u64,
        month: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError>;

    /// Raises a client key's tokens used today (the day its daily token
    /// budget reads) to `tokens` if it is below; as
    /// [`QuotaCounters::raise_used_today`], for the key's day counter.
    async fn raise_key_used_today(
        &self,
        key_id: &str,
        tokens: u64,
        day: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError>;
}
