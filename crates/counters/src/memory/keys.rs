//! A client key's counters in the in-process store: its sliding window of
//! admitted requests (each with its tokens), its day counter and its month's
//! spend, and the check of [`KeyLimits`] against them.

use std::collections::VecDeque;

use tollgate_core::clock::{
    ms_until_next_utc_midnight, next_utc_month_start_ms, utc_day, utc_month,
};

use crate::{DenialReason, IN_FLIGHT_RETRY_MS, KEY_WINDOW_MS, KeyLimits, KeyWindowReport};

/// One admitted request still inside the window.
#[derive(Debug)]
struct WindowEntry {
    at_ms: i64,
    lease_id: String,
    /// Reserved tokens until the lease settles, then the actual count.
    tokens: u64,
}

#[derive(Debug, Default)]
pub(super) struct KeyState {
    /// Admitted requests, oldest first.
    window: VecDeque<WindowEntry>,
    /// The UTC day `used` counts.
    day: i64,
    used: u64,
    reserved: u64,
    /// The UTC month (`YYYYMM`) `spent` counts.
    month: i64,
    /// Micro-dollars settled in `month`.
    spent: u64,
}

impl KeyState {
    /// Drops the requests that left the window at `now_ms` (an entry made
    /// at `t` counts while `now_ms < t + KEY_WINDOW_MS`).
    pub(super) fn slide(&mut self, now_ms: i64) {
        let start = now_ms.saturating_sub(KEY_WINDOW_MS);
        while self
            .window
            .front()
            .is_some_and(|entry| entry.at_ms <= start)
        {
            self.window.pop_front();
        }
    }

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

    /// Raises the count of `today` to `tokens` if it is below (never
    /// lowers it); returns the count before.
    pub(super) fn raise_used(&mut self, today: i64, tokens: u64) -> u64 {
        let before = self.used_on(today);
        if tokens > before {
            self.add_used(today, tokens - before);
        }
        before
    }

    /// Adds a settled request: its tokens to the day of `now_ms`, its cost
    /// to the month (a counter never goes back to an earlier one).
    pub(super) fn charge(&mut self, now_ms: i64, tokens: u64, cost_micro_usd: u64) {
        self.add_used(utc_day(now_ms), tokens);
        let month = utc_month(now_ms);
        if self.month < month {
            self.month = month;
            self.spent = 0;
        }
        self.spent = self.spent.saturating_add(cost_micro_usd);
    }

    fn spent_in(&self, month: i64) -> u64 {
        if self.month < month { 0 } else { self.spent }
    }

    /// Raises the spend of `month` to `micro_usd` if it is below (never
    /// lowers it); returns the amount before.
    pub(super) fn raise_spent(&mut self, month: i64, micro_usd: u64) -> u64 {
        let before = self.spent_in(month);
        if micro_usd > before {
            if self.month < month {
                self.month = month;
            }
            self.spent = micro_usd;
        }
        before
    }

    pub(super) fn release(&mut self, tokens: u64) {
        self.reserved = self.reserved.saturating_sub(tokens);
    }

    /// Why `limits` refuse `tokens` more at `now_ms` (the window already
    /// slid), with the soonest instant every one of them could pass.
    pub(super) fn check(
        &self,
        limits: &KeyLimits,
        tokens: u64,
        now_ms: i64,
    ) -> Option<(i64, DenialReason)> {
        let refusals = [
            limits
                .rpm
                .and_then(|rpm| self.rpm_refusal(rpm, now_ms))
                .map(|at| (at, DenialReason::KeyRpm)),
            limits
                .tpm
                .and_then(|tpm| self.tpm_refusal(u64::from(tpm), tokens, now_ms))
                .map(|at| (at, DenialReason::KeyTpm)),
            limits
                .daily_token_budget
                .and_then(|budget| self.budget_refusal(budget, tokens, now_ms))
                .map(|at| (at, DenialReason::KeyDailyBudget)),
            limits
                .monthly_budget_micro_usd
                .filter(|budget| self.spent_in(utc_month(now_ms)) >= *budget)
                .map(|_| {
                    (
                        next_utc_month_start_ms(now_ms),
                        DenialReason::KeyMonthlyBudget,
                    )
                }),
        ];
        // Every limit must pass: the latest of their retry times; a tie
        // names the first limit checked.
        refusals
            .into_iter()
            .flatten()
            .fold(
                None,
                |latest: Option<(i64, DenialReason)>, refusal| match latest {
                    Some(found) if found.0 >= refusal.0 => Some(found),
                    _ => Some(refusal),
                },
            )
    }

    fn rpm_refusal(&self, rpm: u32, now_ms: i64) -> Option<i64> {
        let count = self.window.len();
        let rpm = usize::try_from(rpm).unwrap_or(usize::MAX);
        if count < rpm {
            return None;
        }
        // The request fits once `count - rpm + 1` of the oldest have left.
        Some(
            self.window
                .get(count - rpm)
                .map_or(now_ms.saturating_add(KEY_WINDOW_MS), |entry| {
                    entry.at_ms.saturating_add(KEY_WINDOW_MS)
                }),
        )
    }

    fn tpm_refusal(&self, tpm: u64, tokens: u64, now_ms: i64) -> Option<i64> {
        if tokens > tpm {
            return Some(now_ms.saturating_add(KEY_WINDOW_MS));
        }
        let in_window: u64 = self.window.iter().map(|entry| entry.tokens).sum();
        let excess = in_window.saturating_add(tokens).checked_sub(tpm)?;
        if excess == 0 {
            return None;
        }
        let mut freed = 0_u64;
        for entry in &self.window {
            freed = freed.saturating_add(entry.tokens);
            if freed >= excess {
                return Some(entry.at_ms.saturating_add(KEY_WINDOW_MS));
            }
        }
        Some(now_ms.saturating_add(KEY_WINDOW_MS))
    }

    fn budget_refusal(&self, budget: u64, tokens: u64, now_ms: i64) -> Option<i64> {
        let used = self.used_on(utc_day(now_ms));
        if used.saturating_add(self.reserved).saturating_add(tokens) <= budget {
            return None;
        }
        let next_midnight = now_ms.saturating_add(ms_until_next_utc_midnight(now_ms));
        if tokens > budget || used.saturating_add(tokens) > budget {
            Some(next_midnight)
        } else {
            Some(now_ms.saturating_add(IN_FLIGHT_RETRY_MS).min(next_midnight))
        }
    }

    /// The tokens `limits` leave room for at `now_ms` (the window already
    /// slid): under the TPM and the daily budget, whichever is smaller;
    /// `None` when the key has neither.
    pub(super) fn room(&self, limits: &KeyLimits, now_ms: i64) -> Option<u64> {
        let in_window: u64 = self.window.iter().map(|entry| entry.tokens).sum();
        let under_tpm = limits
            .tpm
            .map(|tpm| u64::from(tpm).saturating_sub(in_window));
        let under_budget = limits.daily_token_budget.map(|budget| {
            budget.saturating_sub(self.used_on(utc_day(now_ms)).saturating_add(self.reserved))
        });
        match (under_tpm, under_budget) {
            (Some(tpm), Some(budget)) => Some(tpm.min(budget)),
            (tpm, budget) => tpm.or(budget),
        }
    }

    /// Records a granted request: in the window, and reserved on the day.
    pub(super) fn admit(&mut self, lease_id: &str, tokens: u64, now_ms: i64) {
        let at = self.window.partition_point(|entry| entry.at_ms <= now_ms);
        self.window.insert(
            at,
            WindowEntry {
                at_ms: now_ms,
                lease_id: lease_id.to_owned(),
                tokens,
            },
        );
        self.reserved = self.reserved.saturating_add(tokens);
    }

    /// Replaces a request's tokens in the window by its actual count (a
    /// request that already left the window no longer counts anyway).
    pub(super) fn settle_window(&mut self, lease_id: &str, actual_tokens: u64) {
        if let Some(entry) = self
            .window
            .iter_mut()
            .find(|entry| entry.lease_id == lease_id)
        {
            entry.tokens = actual_tokens;
        }
    }

    /// Where the window stands at `now_ms` (already slid) against `limits`.
    pub(super) fn report(&self, limits: &KeyLimits, now_ms: i64) -> KeyWindowReport {
        let requests = u64::try_from(self.window.len()).unwrap_or(u64::MAX);
        let tokens: u64 = self.window.iter().map(|entry| entry.tokens).sum();
        let leaves_at = |entry: &WindowEntry| entry.at_ms.saturating_add(KEY_WINDOW_MS);
        KeyWindowReport {
            remaining_requests: limits
                .rpm
                .map(|rpm| u64::from(rpm).saturating_sub(requests)),
            remaining_tokens: limits.tpm.map(|tpm| u64::from(tpm).saturating_sub(tokens)),
            requests_reset_at_ms: self.window.front().map_or(now_ms, leaves_at),
            tokens_reset_at_ms: self
                .window
                .iter()
                .find(|entry| entry.tokens > 0)
                .map_or(now_ms, leaves_at),
        }
    }
}
