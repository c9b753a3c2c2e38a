//! The in-process quota counters of `tollgate all`: one mutex over plain
//! maps. A lease costs O(candidates) plus O(log n) per lease it expires,
//! plus O(requests in the key's window) when it names a key.

mod keys;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tollgate_core::clock::{ms_until_next_utc_midnight, utc_day};

use self::keys::KeyState;
use super::{
    AccountUsage, Candidate, CountersError, DenialReason, IN_FLIGHT_RETRY_MS, LeaseDecision,
    LeaseDenied, LeaseGranted, LeaseInput, QuotaCounters, SettleInput, Settlement,
};

/// [`QuotaCounters`] held in this process (lost on restart).
#[derive(Debug, Default)]
pub struct MemoryCounters {
    state: Mutex<State>,
}

impl MemoryCounters {
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
    /// Open leases by expiry time, soonest first.
    expiry: BTreeSet<(i64, String)>,
}

#[derive(Debug, Default)]
struct AccountState {
    /// The UTC day `used` counts.
    day: i64,
    used: u64,
    reserved: u64,
    cooling_until_ms: i64,
}

impl AccountState {
    /// Tokens used on `today` (a counter from an earlier day is spent).
    fn used_on(&self, today: i64) -> u64 {
        if self.day < today { 0 } else { self.used }
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

fn standing(
    candidate: &Candidate,
    account: Option<&AccountState>,
    tokens: u64,
    now_ms: i64,
) -> Standing {
    let today = utc_day(now_ms);
    let (used, reserved, cooling_until_ms) = account.map_or((0, 0, 0), |state| {
        (state.used_on(today), state.reserved, state.cooling_until_ms)
    });
    let cooling = cooling_until_ms > now_ms;
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
        let retry = now_ms.saturating_add(IN_FLIGHT_RETRY_MS).min(next_midnight);
        Standing::Blocked(retry, DenialReason::InFlight)
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
            }
        }
        expired
    }

    fn release(&mut self, lease: &OpenLease) {
        if let Some(account) = self.accounts.get_mut(&lease.account_id) {
            account.reserved = account.reserved.saturating_sub(lease.tokens);
        }
        if let Some(key) = lease.key_id.as_ref().and_then(|id| self.keys.get_mut(id)) {
            key.release(lease.tokens);
        }
    }

    fn lease(&mut self, input: LeaseInput) -> LeaseDecision {
        let LeaseInput {
            lease_id,
            candidates,
            tokens,
            now_ms,
            ttl_ms,
            key,
        } = input;
        let mut key_window = None;
        if let Some(limits) = &key {
            let state = self.keys.entry(limits.key_id.clone()).or_default();
            state.slide(now_ms);
            key_window = Some(state.report(limits, now_ms));
            if let Some((retry_at_ms, reason)) = state.check(limits, tokens, now_ms) {
                return LeaseDecision::Denied(LeaseDenied {
                    retry_at_ms,
                    reason,
                    key_window,
                });
            }
        }
        let mut best: Option<(&Candidate, (u64, i32, u32))> = None;
        let mut soonest: Option<(i64, DenialReason)> = None;
        for candidate in &candidates {
            let account = self.accounts.get(&candidate.account_id);
            match standing(candidate, account, tokens, now_ms) {
                Standing::Eligible(remaining) => {
                    let rank = (remaining, candidate.priority, candidate.weight);
                    if best.is_none_or(|(_, best_rank)| rank > best_rank) {
                        best = Some((candidate, rank));
                    }
                }
                Standing::Blocked(at, reason) => {
                    if soonest.is_none_or(|(soonest_at, _)| at < soonest_at) {
                        soonest = Some((at, reason));
                    }
                }
                Standing::Never => {}
            }
        }
        let Some((chosen, _)) = best else {
            let (retry_at_ms, reason) = match soonest {
                Some(found) => found,
                None if candidates.is_empty() => (now_ms, DenialReason::NoCandidates),
                None => (
                    now_ms.saturating_add(ms_until_next_utc_midnight(now_ms)),
                    DenialReason::DailyLimit,
                ),
            };
            return LeaseDecision::Denied(LeaseDenied {
                retry_at_ms,
                reason,
                key_window,
            });
        };
        let today = utc_day(now_ms);
        let account = self.accounts.entry(chosen.account_id.clone()).or_default();
        account.reserved = account.reserved.saturating_add(tokens);
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
            lease_id,
            account_id: chosen.account_id.clone(),
            reserved_tokens: tokens,
            expires_at_ms,
            remaining_tokens,
            key_window,
        })
    }

    fn settle(&mut self, input: SettleInput) -> Settlement {
        let today = utc_day(input.now_ms);
        match self.leases.remove(&input.lease_id) {
            Some(lease) => {
                self.expiry
                    .remove(&(lease.expires_at_ms, input.lease_id.clone()));
                self.release(&lease);
                if let Some(key_id) = lease.key_id {
                    let key = self.keys.entry(key_id).or_default();
                    key.add_used(today, input.actual_tokens);
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
                    self.keys
                        .entry(key_id)
                        .or_default()
                        .add_used(today, input.actual_tokens);
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
        let mut state = self.lock();
        state.expire(input.now_ms);
        if state.leases.contains_key(&input.lease_id) {
            return Err(CountersError::DuplicateLease(input.lease_id));
        }
        Ok(state.lease(input))
    }

    async fn settle(&self, input: SettleInput) -> Result<Settlement, CountersError> {
        let mut state = self.lock();
        state.expire(input.now_ms);
        Ok(state.settle(input))
    }

    async fn cooldown(&self, account_id: &str, until_ms: i64) -> Result<(), CountersError> {
        let mut state = self.lock();
        let account = state.accounts.entry(account_id.to_owned()).or_default();
        account.cooling_until_ms = account.cooling_until_ms.max(until_ms);
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
            })
            .unwrap_or_default())
    }

    async fn sweep(&self, now_ms: i64) -> Result<u64, CountersError> {
        Ok(self.lock().expire(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryCounters;
    use crate::counters::conformance::counters_conformance_tests;

    async fn fresh() -> ((), Arc<MemoryCounters>) {
        ((), Arc::new(MemoryCounters::new()))
    }

    counters_conformance_tests!(fresh);
}
