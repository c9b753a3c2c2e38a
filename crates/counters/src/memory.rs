//! The in-process quota counters of `tollgate all`: one mutex over plain
//! maps. A lease costs O(candidates) plus O(log n) per lease it expires,
//! plus O(requests in the key's window) when it names a key.
//!
//! Round-robin cursors idle for [`ROTATION_IDLE_MS`] are forgotten (and
//! dropped by `sweep`), as their Redis keys expire.

mod keys;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tollgate_core::clock::{ms_until_next_utc_midnight, utc_day, utc_month};

use self::keys::KeyState;
use super::activity::next_latency_ewma_us;
use super::{
    AccountActivity, AccountUsage, Candidate, CircuitPolicy, CountersError, DenialReason,
    ErrorClass, Fit, IN_FLIGHT_RETRY_MS, LeaseDecision, LeaseDenied, LeaseGranted, LeaseInput,
    QuotaCounters, ROTATION_IDLE_MS, Selection, SettleInput, Settlement, Strategy,
};

/// The draw bits `weighted` uses (what a Redis script holds exactly).
const DRAW_MASK: u64 = (1 << 53) - 1;

/// [`QuotaCounters`] held in this process (lost on restart).
#[derive(Debug, Default)]
pub struct MemoryCounters {
    state: Mutex<State>,
}

impl MemoryCounters {
    /// Raises one of a key's counters with `raise` (which returns the count
    /// before), when the period the caller names is the current one;
    /// `None` for a period that has ended.
    fn raise_key(
        &self,
        key_id: &str,
        current: bool,
        raise: impl FnOnce(&mut KeyState) -> u64,
    ) -> Option<u64> {
        if !current {
            return None;
        }
        let mut state = self.lock();
        Some(raise(state.keys.entry(key_id.to_owned()).or_default()))
    }

    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later calls could not live with, so carry on.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, AccountState>,
    keys: HashMap<String, KeyState>,
    leases: HashMap<String, OpenLease>,
    /// Settled leases, remembered until the time they are forgotten.
    settled: HashMap<String, i64>,
    /// Open leases by expiry time and settled ones by the time they are
    /// forgotten, soonest first.
    expiry: BTreeSet<(i64, String)>,
    /// Round-robin cursors by pool.
    rotations: HashMap<String, Rotation>,
    /// Claims taken, by name, with when their hold ends.
    claims: HashMap<String, i64>,
}

#[derive(Debug)]
struct Rotation {
    /// Grants made in the pool so far.
    turn: u64,
    /// When the cursor is forgotten unless another grant moves it.
    idle_until_ms: i64,
}

#[derive(Debug, Default)]
struct AccountState {
    /// The UTC day `used` counts.
    day: i64,
    used: u64,
    reserved: u64,
    cooling_until_ms: i64,
    /// Open leases.
    in_flight: u64,
    /// Server failures in a row while the circuit is closed.
    failures: u32,
    /// Set from the moment the circuit opens until a success closes it.
    circuit: Option<Circuit>,
    /// The lease that probes a half-open circuit.
    probe: Option<String>,
    /// Its activity; the day counts are those of `activity_day`.
    activity: AccountActivity,
    activity_day: i64,
}

#[derive(Debug, Clone, Copy)]
struct Circuit {
    /// Open before this instant, half-open from it.
    until_ms: i64,
    /// How long it stayed open this time.
    backoff_ms: i64,
}

impl AccountState {
    /// Tokens used on `today` (a counter from an earlier day is spent).
    fn used_on(&self, today: i64) -> u64 {
        if self.day < today { 0 } else { self.used }
    }

    /// Its activity as of `today` (day counts from an earlier day are 0).
    fn activity_on(&self, today: i64) -> AccountActivity {
        if self.activity_day < today {
            AccountActivity {
                successes_today: 0,
                errors_today: 0,
                ..self.activity
            }
        } else {
            self.activity
        }
    }

    /// Moves the activity's day counts on to `today`.
    fn activity_today(&mut self, today: i64) -> &mut AccountActivity {
        if self.activity_day < today {
            self.activity = self.activity_on(today);
            self.activity_day = today;
        }
        &mut self.activity
    }

    fn record_served(&mut self, now_ms: i64, latency_us: Option<u64>) {
        let activity = self.activity_today(utc_day(now_ms));
        activity.last_used_at_ms = Some(now_ms);
        activity.successes_today = activity.successes_today.saturating_add(1);
        if let Some(sample_us) = latency_us {
            activity.latency_ewma_us =
                Some(next_latency_ewma_us(activity.latency_ewma_us, sample_us));
        }
    }

    fn record_error(&mut self, class: ErrorClass, now_ms: i64) {
        let activity = self.activity_today(utc_day(now_ms));
        activity.last_error_at_ms = Some(now_ms);
        activity.last_error = Some(class);
        activity.errors_today = activity.errors_today.saturating_add(1);
    }

    fn add_used(&mut self, today: i64, tokens: u64) {
        if self.day < today {
            self.day = today;
            self.used = 0;
        }
        self.used = self.used.saturating_add(tokens);
    }
}

#[derive(Debug)]
struct OpenLease {
    account_id: String,
    key_id: Option<String>,
    tokens: u64,
    expires_at_ms: i64,
}

/// Where one candidate stands for a request of `tokens` at `now_ms`.
enum Standing {
    /// Eligible, with this many tokens left (`u64::MAX` when unlimited).
    Eligible(u64),
    /// Not now; the soonest it could serve.
    Blocked(i64, DenialReason),
    /// The request is larger than its whole daily limit.
    Never,
}

/// The soonest instant a blocked lease could be retried when only leases
/// in flight stand in the way.
fn in_flight_retry_at(now_ms: i64) -> i64 {
    let next_midnight = now_ms.saturating_add(ms_until_next_utc_midnight(now_ms));
    now_ms.saturating_add(IN_FLIGHT_RETRY_MS).min(next_midnight)
}

/// Adds the circuit's verdict (`Some(retry at)` when it blocks) to a
/// standing: the later of two blocks wins.
fn with_circuit(standing: Standing, circuit_block: Option<i64>) -> Standing {
    match (standing, circuit_block) {
        (standing, None) | (standing @ Standing::Never, _) => standing,
        (Standing::Eligible(_), Some(at)) => Standing::Blocked(at, DenialReason::CircuitOpen),
        (Standing::Blocked(other, reason), Some(at)) => {
            if at > other {
                Standing::Blocked(at, DenialReason::CircuitOpen)
            } else {
                Standing::Blocked(other, reason)
            }
        }
    }
}

/// An eligible candidate, as the strategies see it.
struct Eligible<'a> {
    candidate: &'a Candidate,
    remaining: u64,
    in_flight: u64,
    /// Its latency average; `None` before its first measured call.
    latency_ewma_us: Option<u64>,
}

/// The index of the first eligible candidate with the highest key.
fn first_max<K: Ord>(eligible: &[Eligible<'_>], key: impl Fn(&Eligible<'_>) -> K) -> usize {
    let mut best = 0;
    for (index, entry) in eligible.iter().enumerate().skip(1) {
        if key(entry) > key(&eligible[best]) {
            best = index;
        }
    }
    best
}

/// Which of the (non-empty) eligible candidates the strategy picks; `turn`
/// is the pool's round-robin cursor.
fn pick(eligible: &[Eligible<'_>], selection: &Selection, turn: u64) -> usize {
    match selection.strategy {
        Strategy::MostRemaining => first_max(eligible, |entry| {
            (
                entry.remaining,
                entry.candidate.priority,
                entry.candidate.weight,
            )
        }),
        Strategy::Priority => first_max(eligible, |entry| {
            (entry.candidate.priority, entry.remaining)
        }),
        Strategy::LeastInflight => first_max(eligible, |entry| {
            (std::cmp::Reverse(entry.in_flight), entry.remaining)
        }),
        // `None` (not measured) is below every measure, so it comes first.
        Strategy::LowestLatency => first_max(eligible, |entry| {
            (std::cmp::Reverse(entry.latency_ewma_us), entry.remaining)
        }),
        Strategy::RoundRobin => usize::try_from(turn % eligible.len() as u64).unwrap_or_default(),
        Strategy::Weighted => {
            let all_zero = eligible.iter().all(|entry| entry.candidate.weight == 0);
            let weight = |entry: &Eligible<'_>| {
                if all_zero {
                    1
                } else {
                    u64::from(entry.candidate.weight)
                }
            };
            let total: u64 = eligible.iter().map(weight).sum();
            let mut target = (selection.draw & DRAW_MASK) % total;
            for (index, entry) in eligible.iter().enumerate() {
                let share = weight(entry);
                if target < share {
                    return index;
                }
                target -= share;
            }
            eligible.len() - 1
        }
    }
}

/// Where `candidate` stands; a health probe ignores its cooldown.
fn standing(
    candidate: &Candidate,
    account: Option<&AccountState>,
    tokens: u64,
    now_ms: i64,
    health_probe: bool,
) -> Standing {
    let today = utc_day(now_ms);
    let (used, reserved, cooling_until_ms) = account.map_or((0, 0, 0), |state| {
        (state.used_on(today), state.reserved, state.cooling_until_ms)
    });
    let cooling = !health_probe && cooling_until_ms > now_ms;
    let Some(limit) = candidate.daily_limit else {
        return if cooling {
            Standing::Blocked(cooling_until_ms, DenialReason::CoolingDown)
        } else {
            Standing::Eligible(u64::MAX)
        };
    };
    if tokens > limit {
        return Standing::Never;
    }
    let committed = used.saturating_add(reserved);
    if !cooling && committed.saturating_add(tokens) <= limit {
        return Standing::Eligible(limit - committed);
    }
    let next_midnight = now_ms.saturating_add(ms_until_next_utc_midnight(now_ms));
    let day_spent = used.saturating_add(tokens) > limit;
    if cooling {
        if day_spent && cooling_until_ms < next_midnight {
            Standing::Blocked(next_midnight, DenialReason::DailyLimit)
        } else {
            Standing::Blocked(cooling_until_ms, DenialReason::CoolingDown)
        }
    } else if day_spent {
        Standing::Blocked(next_midnight, DenialReason::DailyLimit)
    } else {
        Standing::Blocked(in_flight_retry_at(now_ms), DenialReason::InFlight)
    }
}

impl State {
    /// Releases every lease that expired at or before `now_ms`.
    fn expire(&mut self, now_ms: i64) -> u64 {
        let mut expired = 0;
        while let Some((expires_at_ms, _)) = self.expiry.first() {
            if *expires_at_ms > now_ms {
                break;
            }
            let Some((_, lease_id)) = self.expiry.pop_first() else {
                break;
            };
            if let Some(lease) = self.leases.remove(&lease_id) {
                self.release(&lease);
                expired += 1;
            } else {
                self.settled.remove(&lease_id);
            }
        }
        expired
    }

    fn release(&mut self, lease: &OpenLease) {
        if let Some(account) = self.accounts.get_mut(&lease.account_id) {
            account.reserved = account.reserved.saturating_sub(lease.tokens);
            account.in_flight = account.in_flight.saturating_sub(1);
        }
        if let Some(key) = lease.key_id.as_ref().and_then(|id| self.keys.get_mut(id)) {
            key.release(lease.tokens);
        }
    }

    fn lease(&mut self, input: LeaseInput) -> LeaseDecision {
        let LeaseInput {
            lease_id,
            candidates,
            reservation,
            now_ms,
            ttl_ms,
            key,
            selection,
            health_probe,
        } = input;
        let least = reservation.least();
        let mut key_window = None;
        let mut key_room = None;
        if let Some(limits) = &key {
            let state = self.keys.entry(limits.key_id.clone()).or_default();
            state.slide(now_ms);
            key_window = Some(state.report(limits, now_ms));
            if let Some((retry_at_ms, reason)) = state.check(limits, least, now_ms) {
                return LeaseDecision::Denied(LeaseDenied {
                    decided_at_ms: now_ms,
                    retry_at_ms,
                    reason,
                    key_window,
                });
            }
            key_room = state.room(limits, now_ms);
        }
        let mut eligible: Vec<Eligible<'_>> = Vec::with_capacity(candidates.len());
        let mut soonest: Option<(i64, DenialReason)> = None;
        for candidate in &candidates {
            let account = self.accounts.get(&candidate.account_id);
            let circuit_block = account
                .filter(|_| !health_probe)
                .and_then(|account| self.circuit_block(account, now_ms));
            let need = reservation.least_for(candidate.strict);
            let standing = standing(candidate, account, need, now_ms, health_probe);
            match with_circuit(standing, circuit_block) {
                Standing::Eligible(remaining) => eligible.push(Eligible {
                    candidate,
                    remaining,
                    in_flight: account.map_or(0, |account| account.in_flight),
                    latency_ewma_us: account.and_then(|account| account.activity.latency_ewma_us),
                }),
                Standing::Blocked(at, reason) => {
                    if soonest.is_none_or(|(soonest_at, _)| at < soonest_at) {
                        soonest = Some((at, reason));
                    }
                }
                Standing::Never => {}
            }
        }
        if eligible.is_empty() {
            let (retry_at_ms, reason) = match soonest {
                Some(found) => found,
                None if candidates.is_empty() => (now_ms, DenialReason::NoCandidates),
                None => (
                    now_ms.saturating_add(ms_until_next_utc_midnight(now_ms)),
                    DenialReason::DailyLimit,
                ),
            };
            return LeaseDecision::Denied(LeaseDenied {
                decided_at_ms: now_ms,
                retry_at_ms,
                reason,
                key_window,
            });
        }
        let turn = match selection.strategy {
            Strategy::RoundRobin => self.next_turn(&selection.pool, now_ms),
            _ => 0,
        };
        let chosen = &eligible[pick(&eligible, &selection, turn)];
        // Eligible means room for its least, and the key's check passed.
        let account_room = (chosen.remaining != u64::MAX).then_some(chosen.remaining);
        let strict = chosen.candidate.strict;
        let fit = reservation
            .fit(strict, account_room, key_room)
            .unwrap_or(Fit {
                tokens: reservation.least_for(strict),
                completion_cap: None,
            });
        let tokens = fit.tokens;
        let chosen = chosen.candidate;
        let today = utc_day(now_ms);
        let account = self.accounts.entry(chosen.account_id.clone()).or_default();
        account.reserved = account.reserved.saturating_add(tokens);
        account.in_flight = account.in_flight.saturating_add(1);
        if account.circuit.is_some() {
            // Half-open (an open one is not eligible): this lease probes.
            account.probe = Some(lease_id.clone());
        }
        let remaining_tokens = chosen.daily_limit.map(|limit| {
            limit.saturating_sub(account.used_on(today).saturating_add(account.reserved))
        });
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        if let Some(limits) = &key {
            let state = self.keys.entry(limits.key_id.clone()).or_default();
            state.admit(&lease_id, tokens, now_ms);
            key_window = Some(state.report(limits, now_ms));
        }
        self.expiry.insert((expires_at_ms, lease_id.clone()));
        self.leases.insert(
            lease_id.clone(),
            OpenLease {
                account_id: chosen.account_id.clone(),
                key_id: key.map(|limits| limits.key_id),
                tokens,
                expires_at_ms,
            },
        );
        LeaseDecision::Granted(LeaseGranted {
            decided_at_ms: now_ms,
            lease_id,
            account_id: chosen.account_id.clone(),
            reserved_tokens: tokens,
            completion_cap: fit.completion_cap,
            expires_at_ms,
            remaining_tokens,
            key_window,
        })
    }

    /// `Some(retry at)` when the account's circuit keeps it out of a lease
    /// at `now_ms`: open, or half-open with its probe lease still open.
    fn circuit_block(&self, account: &AccountState, now_ms: i64) -> Option<i64> {
        let circuit = account.circuit?;
        if circuit.until_ms > now_ms {
            return Some(circuit.until_ms);
        }
        let probing = account
            .probe
            .as_ref()
            .is_some_and(|lease_id| self.leases.contains_key(lease_id));
        probing.then(|| in_flight_retry_at(now_ms))
    }

    /// The pool's cursor for this grant, moved on for the next one.
    fn next_turn(&mut self, pool: &str, now_ms: i64) -> u64 {
        let idle_until_ms = now_ms.saturating_add(ROTATION_IDLE_MS);
        match self.rotations.get_mut(pool) {
            Some(rotation) if rotation.idle_until_ms > now_ms => {
                let turn = rotation.turn;
                rotation.turn = turn.saturating_add(1);
                rotation.idle_until_ms = idle_until_ms;
                turn
            }
            _ => {
                self.rotations.insert(
                    pool.to_owned(),
                    Rotation {
                        turn: 1,
                        idle_until_ms,
                    },
                );
                0
            }
        }
    }

    fn record_failure(
        &mut self,
        account_id: &str,
        policy: CircuitPolicy,
        now_ms: i64,
    ) -> Option<i64> {
        let base = policy.base_backoff_ms;
        let max = policy.max_backoff_ms.max(base);
        let account = self.accounts.entry(account_id.to_owned()).or_default();
        let backoff_ms = match account.circuit {
            Some(circuit) if circuit.until_ms > now_ms => return None,
            Some(circuit) => circuit.backoff_ms.saturating_mul(2).clamp(base, max),
            None => {
                account.failures = account.failures.saturating_add(1);
                if account.failures < policy.failure_threshold.max(1) {
                    return None;
                }
                base
            }
        };
        let until_ms = now_ms.saturating_add(backoff_ms);
        account.circuit = Some(Circuit {
            until_ms,
            backoff_ms,
        });
        account.failures = 0;
        account.probe = None;
        Some(until_ms)
    }

    fn record_success(&mut self, account_id: &str, now_ms: i64) -> bool {
        let Some(account) = self.accounts.get_mut(account_id) else {
            return false;
        };
        match account.circuit {
            Some(circuit) if circuit.until_ms > now_ms => false,
            Some(_) => {
                account.failures = 0;
                account.circuit = None;
                account.probe = None;
                true
            }
            None => {
                account.failures = 0;
                false
            }
        }
    }

    /// Remembers a settled lease for `remember_ms` from `now_ms`.
    fn remember_settled(&mut self, lease_id: &str, now_ms: i64, remember_ms: i64) {
        let forget_at_ms = now_ms.saturating_add(remember_ms);
        self.settled.insert(lease_id.to_owned(), forget_at_ms);
        self.expiry.insert((forget_at_ms, lease_id.to_owned()));
    }

    fn settle(&mut self, input: SettleInput) -> Settlement {
        if self.settled.contains_key(&input.lease_id) {
            return Settlement::Repeated;
        }
        if input.served {
            self.record_success(&input.account_id, input.now_ms);
            self.accounts
                .entry(input.account_id.clone())
                .or_default()
                .record_served(input.now_ms, input.latency_us);
        }
        let today = utc_day(input.now_ms);
        self.remember_settled(&input.lease_id, input.now_ms, input.remember_ms);
        match self.leases.remove(&input.lease_id) {
            Some(lease) => {
                self.expiry
                    .remove(&(lease.expires_at_ms, input.lease_id.clone()));
                self.release(&lease);
                if let Some(key_id) = lease.key_id {
                    let key = self.keys.entry(key_id).or_default();
                    key.charge(input.now_ms, input.actual_tokens, input.cost_micro_usd);
                    key.settle_window(&input.lease_id, input.actual_tokens);
                }
                self.accounts
                    .entry(lease.account_id)
                    .or_default()
                    .add_used(today, input.actual_tokens);
                Settlement::Settled
            }
            None => {
                if let Some(key_id) = input.key_id {
                    self.keys.entry(key_id).or_default().charge(
                        input.now_ms,
                        input.actual_tokens,
                        input.cost_micro_usd,
                    );
                }
                self.accounts
                    .entry(input.account_id)
                    .or_default()
                    .add_used(today, input.actual_tokens);
                Settlement::Late
            }
        }
    }
}

#[async_trait]
impl QuotaCounters for MemoryCounters {
    async fn lease(&self, input: LeaseInput) -> Result<LeaseDecision, CountersError> {
        if input.ttl_ms <= 0 {
            return Err(CountersError::InvalidInput("ttl_ms must be positive"));
        }
        if input.key.as_ref().is_some_and(|key| key.key_id.is_empty()) {
            return Err(CountersError::InvalidInput("key_id must not be empty"));
        }
        if !input.reservation.is_valid() {
            return Err(CountersError::InvalidInput(
                "a reservation needs a choice and a least completion within its most",
            ));
        }
        let mut state = self.lock();
        state.expire(input.now_ms);
        if state.leases.contains_key(&input.lease_id) {
            return Err(CountersError::DuplicateLease(input.lease_id));
        }
        Ok(state.lease(input))
    }

    async fn settle(&self, input: SettleInput) -> Result<Settlement, CountersError> {
        if input.remember_ms <= 0 {
            return Err(CountersError::InvalidInput("remember_ms must be positive"));
        }
        let mut state = self.lock();
        state.expire(input.now_ms);
        Ok(state.settle(input))
    }

    async fn renew(&self, lease_id: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, CountersError> {
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let mut state = self.lock();
        state.expire(now_ms);
        let State { leases, expiry, .. } = &mut *state;
        let Some(lease) = leases.get_mut(lease_id) else {
            return Ok(false);
        };
        if expires_at_ms > lease.expires_at_ms {
            expiry.remove(&(lease.expires_at_ms, lease_id.to_owned()));
            expiry.insert((expires_at_ms, lease_id.to_owned()));
            lease.expires_at_ms = expires_at_ms;
        }
        Ok(true)
    }

    async fn cooldown(
        &self,
        account_id: &str,
        duration_ms: i64,
        now_ms: i64,
    ) -> Result<i64, CountersError> {
        let until_ms = now_ms.saturating_add(duration_ms);
        let mut state = self.lock();
        let account = state.accounts.entry(account_id.to_owned()).or_default();
        account.cooling_until_ms = account.cooling_until_ms.max(until_ms);
        Ok(account.cooling_until_ms)
    }

    async fn record_failure(
        &self,
        account_id: &str,
        policy: CircuitPolicy,
        now_ms: i64,
    ) -> Result<Option<i64>, CountersError> {
        if policy.base_backoff_ms <= 0 {
            return Err(CountersError::InvalidInput(
                "base_backoff_ms must be positive",
            ));
        }
        Ok(self.lock().record_failure(account_id, policy, now_ms))
    }

    async fn reset_health(
        &self,
        account_id: &str,
        cooldown: bool,
        circuit: bool,
    ) -> Result<(), CountersError> {
        let mut state = self.lock();
        if let Some(account) = state.accounts.get_mut(account_id) {
            if cooldown {
                account.cooling_until_ms = 0;
            }
            if circuit {
                account.failures = 0;
                account.circuit = None;
                account.probe = None;
            }
        }
        Ok(())
    }

    async fn record_success(&self, account_id: &str, now_ms: i64) -> Result<bool, CountersError> {
        Ok(self.lock().record_success(account_id, now_ms))
    }

    async fn claim(&self, name: &str, hold_ms: i64, now_ms: i64) -> Result<bool, CountersError> {
        if hold_ms <= 0 {
            return Err(CountersError::InvalidInput("hold_ms must be positive"));
        }
        let mut state = self.lock();
        state.claims.retain(|_, until_ms| *until_ms > now_ms);
        if state.claims.contains_key(name) {
            return Ok(false);
        }
        state
            .claims
            .insert(name.to_owned(), now_ms.saturating_add(hold_ms));
        Ok(true)
    }

    async fn record_error(
        &self,
        account_id: &str,
        class: ErrorClass,
        now_ms: i64,
    ) -> Result<(), CountersError> {
        self.lock()
            .accounts
            .entry(account_id.to_owned())
            .or_default()
            .record_error(class, now_ms);
        Ok(())
    }

    async fn usage(&self, account_id: &str, now_ms: i64) -> Result<AccountUsage, CountersError> {
        let mut state = self.lock();
        state.expire(now_ms);
        Ok(state
            .accounts
            .get(account_id)
            .map(|account| AccountUsage {
                used_today: account.used_on(utc_day(now_ms)),
                reserved: account.reserved,
                cooling_until_ms: (account.cooling_until_ms > now_ms)
                    .then_some(account.cooling_until_ms),
                in_flight: account.in_flight,
                consecutive_failures: account.failures,
                circuit_open_until_ms: account
                    .circuit
                    .map(|circuit| circuit.until_ms)
                    .filter(|until_ms| *until_ms > now_ms),
                half_open: account
                    .circuit
                    .is_some_and(|circuit| circuit.until_ms <= now_ms),
                activity: account.activity_on(utc_day(now_ms)),
            })
            .unwrap_or_default())
    }

    async fn sweep(&self, now_ms: i64) -> Result<u64, CountersError> {
        let mut state = self.lock();
        state
            .rotations
            .retain(|_, rotation| rotation.idle_until_ms > now_ms);
        Ok(state.expire(now_ms))
    }

    async fn raise_used_today(
        &self,
        account_id: &str,
        tokens: u64,
        day: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError> {
        let today = utc_day(now_ms);
        if today != day {
            return Ok(None);
        }
        let mut state = self.lock();
        let account = state.accounts.entry(account_id.to_owned()).or_default();
        let before = account.used_on(today);
        if tokens > before {
            account.add_used(today, tokens - before);
        }
        Ok(Some(before))
    }

    async fn raise_key_spend(
        &self,
        key_id: &str,
        micro_usd: u64,
        month: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError> {
        let current = utc_month(now_ms) == month;
        Ok(self.raise_key(key_id, current, |key| key.raise_spent(month, micro_usd)))
    }

    async fn raise_key_used_today(
        &self,
        key_id: &str,
        tokens: u64,
        day: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError> {
        let current = utc_day(now_ms) == day;
        Ok(self.raise_key(key_id, current, |key| key.raise_used(day, tokens)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryCounters;
    use crate::conformance::counters_conformance_tests;

    async fn fresh() -> ((), Arc<MemoryCounters>) {
        ((), Arc::new(MemoryCounters::new()))
    }

    counters_conformance_tests!(fresh);
}
