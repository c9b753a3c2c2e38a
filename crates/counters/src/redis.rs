//! Quota counters in Redis, shared by every quota replica: each operation is
//! one Lua script, so one round trip and atomic on the server, deciding
//! exactly as [`MemoryCounters`](super::MemoryCounters) does (the same
//! conformance suite runs against both).
//!
//! Keys, for a prefix `P` (the scripts in `redis/*.lua` describe each one):
//! `{P}leases`, `{P}expiry`, `{P}acct:<account>`, `{P}used:<day>:<account>`
//! and `{P}activity:<day>:<account>` (successes and errors that UTC day);
//! for client keys with limits `{P}lease_keys`, `{P}key:<key>`,
//! `{P}kused:<day>:<key>`, `{P}kspend:<month>:<key>` (micro-dollars
//! settled in a UTC month, expiring [`MONTH_COUNTER_TTL_SECS`] after its
//! last write) and the sliding window `{P}kwin:<key>` (a sorted
//! set of the key's lease ids by admission time) with `{P}ktok:<key>` (their
//! tokens), `{P}khold:<key>` (those holding tokens) and the window's token
//! total in `{P}key:<key>`. The key's check runs inside the lease script,
//! before the account choice, and reads only the requests leaving the window
//! plus a few sorted-set positions, never the whole window. A
//! `round_robin` lease advances the cursor `{P}rr:<pool>`, which expires
//! [`ROTATION_IDLE_MS`] after its last grant; the circuit breaker and the
//! count of leases in flight live in `{P}acct:<account>`, with the account's
//! activity. A claim (`claim`, the health probes' one taker per hold) is
//! `{P}claim:<name>`, holding when its hold ends and expiring then.
//! The whole prefix, in braces, is the Redis Cluster hash tag, so every key a
//! script touches is in one slot. The trait has no profile yet, so all the
//! counters of one prefix share that slot; a tag per profile needs the
//! profile in the trait's calls and can then replace it. Scripts are handed
//! the keys they start from in `KEYS` (which routes them) and derive the rest
//! from the prefix (same tag, same slot): which day counter an account reads
//! and which accounts an expiring lease releases are only known inside.
//!
//! Like the in-process store, every call that takes `now_ms` first releases
//! all leases due under the prefix (one `ZRANGEBYSCORE` on the expiry set,
//! empty in the common case), not only the candidates' own: one sorted set
//! instead of one per account, and `sweep` counts agree with the in-process
//! store's.
//!
//! Day counters are keyed by UTC day number and expire
//! [`DAY_COUNTER_TTL_SECS`] after their last write, so nothing resets them
//! at 00:00 UTC. Account hashes (reservations, cooldown end, newest day
//! charged) have no expiry: one small hash per account.
//!
//! Lua numbers are doubles, exact below 2^53: token counts beyond that are
//! refused as invalid input; times are clamped to ±(2^53 − 1) ms (a lease
//! TTL or cooldown meant as "forever" still lasts 285,000 years); a daily
//! limit beyond it ranks as 2^53 − 1 tokens (still below an unlimited
//! account; the remaining count reported back is computed here from the
//! real limit).

#[cfg(test)]
mod strategy_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{RedisError, Script};
use async_trait::async_trait;

use super::activity::MAX_LATENCY_SAMPLE_US;
use super::{
    AccountActivity, AccountUsage, CircuitPolicy, Completion, CountersError, DenialReason,
    ErrorClass, KEY_WINDOW_MS, KeyWindowReport, LeaseDecision, LeaseDenied, LeaseGranted,
    LeaseInput, QuotaCounters, ROTATION_IDLE_MS, SettleInput, Settlement, Strategy,
};

/// How long a day's used-tokens counter outlives its last write.
pub const DAY_COUNTER_TTL_SECS: u64 = 3 * 86_400;

/// How long a key's monthly spend counter outlives its last write: past
/// the end of the longest month.
pub const MONTH_COUNTER_TTL_SECS: u64 = 40 * 86_400;

/// The largest integer every step of the scripts holds exactly.
const MAX_EXACT: u64 = (1 << 53) - 1;
const MAX_EXACT_MS: i64 = (1 << 53) - 1;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A decision slower than this fails; an unsettled lease it may still have
/// made expires with its TTL.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

const COMMON_LUA: &str = include_str!("redis/common.lua");
const KEY_LIMITS_LUA: &str = include_str!("redis/key_limits.lua");

/// [`QuotaCounters`] in Redis (or a Redis-compatible server), for quota
/// replicas that must agree.
#[derive(Clone)]
pub struct RedisCounters {
    connection: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    clock: ScriptClock,
}

/// Whose clock the scripts decide by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScriptClock {
    /// The Redis server's (`TIME`): one clock for every replica.
    Server,
    /// The `now_ms` each call passes: for tests that drive time by hand.
    #[cfg(test)]
    Caller,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: only the prefix is shown.
        f.debug_struct("RedisCounters")
            .field("hash_tag", &self.keys.tag)
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`) and
    /// loads the scripts. Every key starts with `{prefix}`; the prefix must
    /// be non-empty and free of braces.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, CountersError> {
        let keys = Keys::new(prefix.into())?;
        let client = ::redis::Client::open(url)
            .map_err(|_| CountersError::Backend("invalid Redis URL".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(backend)?;
        let scripts = Scripts::new();
        for script in scripts.all() {
            script.load_async(&mut connection).await.map_err(backend)?;
        }
        Ok(Self {
            connection,
            keys,
            scripts,
            clock: ScriptClock::Server,
        })
    }

    /// Decides by the `now_ms` each call passes instead of the server's
    /// clock, so a test can move time by hand.
    #[cfg(test)]
    pub(crate) fn with_caller_clock(mut self) -> Self {
        self.clock = ScriptClock::Caller;
        self
    }

    /// The time argument of a script: empty for the server's clock.
    #[cfg_attr(not(test), allow(unused_variables))]
    fn now_arg(&self, now_ms: i64) -> String {
        match self.clock {
            ScriptClock::Server => String::new(),
            #[cfg(test)]
            ScriptClock::Caller => clamp_time(now_ms).to_string(),
        }
    }

    /// Runs one script by SHA; the client loads it again and retries once
    /// when the server answers `NOSCRIPT` (after a restart or SCRIPT FLUSH).
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        invocation: ::redis::ScriptInvocation<'_>,
    ) -> Result<T, CountersError> {
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl QuotaCounters for RedisCounters {
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
        exact(input.reservation.most(), "tokens must be below 2^53")?;
        let optional = |limit: Option<u64>| {
            limit
                .map(|limit| limit.min(MAX_EXACT).to_string())
                .unwrap_or_default()
        };
        let key = input.key.as_ref();
        let mut invocation = self.scripts.lease.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.expiry())
            .arg(&self.keys.tag)
            .arg(self.now_arg(input.now_ms))
            .arg(input.reservation.least())
            .arg(&input.lease_id)
            .arg(clamp_time(input.ttl_ms))
            .arg(key.map_or("", |key| key.key_id.as_str()))
            .arg(optional(key.and_then(|key| key.rpm.map(u64::from))))
            .arg(optional(key.and_then(|key| key.tpm.map(u64::from))))
            .arg(optional(key.and_then(|key| key.daily_token_budget)))
            .arg(KEY_WINDOW_MS)
            .arg(strategy_name(input.selection.strategy))
            .arg(input.selection.draw & MAX_EXACT)
            .arg(&input.selection.pool)
            .arg(ROTATION_IDLE_MS)
            .arg(optional(key.and_then(|key| key.monthly_budget_micro_usd)));
        let reservation = input.reservation;
        invocation.arg(reservation.prompt_tokens);
        match reservation.completion {
            Completion::Exact(_) => invocation.arg("").arg(1),
            Completion::UpTo {
                max_per_choice,
                choices,
                ..
            } => invocation.arg(max_per_choice).arg(choices),
        };
        invocation
            .arg(reservation.worst_prompt_tokens)
            .arg(if input.health_probe { "1" } else { "0" });
        for candidate in &input.candidates {
            let limit = candidate
                .daily_limit
                .map(|limit| limit.min(MAX_EXACT).to_string())
                .unwrap_or_default();
            invocation
                .key(self.keys.account(&candidate.account_id))
                .arg(&candidate.account_id)
                .arg(limit)
                .arg(candidate.priority)
                .arg(candidate.weight)
                .arg(if candidate.strict { "1" } else { "0" });
        }
        let reply: Vec<i64> = self.run(invocation).await?;
        decode_lease(&reply, input)
    }

    async fn settle(&self, input: SettleInput) -> Result<Settlement, CountersError> {
        exact(input.actual_tokens, "actual_tokens must be below 2^53")?;
        exact(input.cost_micro_usd, "cost_micro_usd must be below 2^53")?;
        if input.remember_ms <= 0 {
            return Err(CountersError::InvalidInput("remember_ms must be positive"));
        }
        let mut invocation = self.scripts.settle.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.expiry())
            .key(self.keys.account(&input.account_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(input.now_ms))
            .arg(&input.lease_id)
            .arg(&input.account_id)
            .arg(input.actual_tokens)
            .arg(DAY_COUNTER_TTL_SECS)
            .arg(input.key_id.as_deref().unwrap_or_default())
            .arg(input.cost_micro_usd)
            .arg(MONTH_COUNTER_TTL_SECS)
            .arg(if input.served { "1" } else { "0" })
            .arg(clamp_time(input.remember_ms))
            .arg(
                input
                    .latency_us
                    .map(|us| us.min(MAX_LATENCY_SAMPLE_US).to_string())
                    .unwrap_or_default(),
            );
        match self.run::<i64>(invocation).await? {
            1 => Ok(Settlement::Settled),
            0 => Ok(Settlement::Late),
            2 => Ok(Settlement::Repeated),
            _ => Err(unexpected_reply()),
        }
    }

    async fn renew(&self, lease_id: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, CountersError> {
        let mut invocation = self.scripts.renew.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.expiry())
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(lease_id)
            .arg(clamp_time(ttl_ms));
        let open: i64 = self.run(invocation).await?;
        Ok(open == 1)
    }

    async fn cooldown(
        &self,
        account_id: &str,
        duration_ms: i64,
        now_ms: i64,
    ) -> Result<i64, CountersError> {
        let mut invocation = self.scripts.cooldown.prepare_invoke();
        invocation
            .key(self.keys.account(account_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(clamp_time(duration_ms));
        self.run::<i64>(invocation).await
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
        let base = clamp_time(policy.base_backoff_ms);
        let mut invocation = self.scripts.circuit_failure.prepare_invoke();
        invocation
            .key(self.keys.account(account_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(policy.failure_threshold.max(1))
            .arg(base)
            .arg(clamp_time(policy.max_backoff_ms).max(base));
        match self.run::<Vec<i64>>(invocation).await?[..] {
            [1, open_until_ms] => Ok(Some(open_until_ms)),
            [0, _] => Ok(None),
            _ => Err(unexpected_reply()),
        }
    }

    async fn reset_health(
        &self,
        account_id: &str,
        cooldown: bool,
        circuit: bool,
    ) -> Result<(), CountersError> {
        let flag = |on: bool| if on { "1" } else { "0" };
        let mut invocation = self.scripts.reset_health.prepare_invoke();
        invocation
            .key(self.keys.account(account_id))
            .arg(&self.keys.tag)
            .arg("")
            .arg(flag(cooldown))
            .arg(flag(circuit));
        self.run::<i64>(invocation).await.map(drop)
    }

    async fn record_success(&self, account_id: &str, now_ms: i64) -> Result<bool, CountersError> {
        let mut invocation = self.scripts.circuit_success.prepare_invoke();
        invocation
            .key(self.keys.account(account_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms));
        Ok(self.run::<i64>(invocation).await? == 1)
    }

    async fn claim(&self, name: &str, hold_ms: i64, now_ms: i64) -> Result<bool, CountersError> {
        if hold_ms <= 0 {
            return Err(CountersError::InvalidInput("hold_ms must be positive"));
        }
        let mut invocation = self.scripts.claim.prepare_invoke();
        invocation
            .key(self.keys.claim(name))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(clamp_time(hold_ms));
        Ok(self.run::<i64>(invocation).await? == 1)
    }

    async fn record_error(
        &self,
        account_id: &str,
        class: ErrorClass,
        now_ms: i64,
    ) -> Result<(), CountersError> {
        let mut invocation = self.scripts.record_error.prepare_invoke();
        invocation
            .key(self.keys.account(account_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(account_id)
            .arg(class.as_str())
            .arg(DAY_COUNTER_TTL_SECS);
        self.run::<i64>(invocation).await.map(drop)
    }

    async fn usage(&self, account_id: &str, now_ms: i64) -> Result<AccountUsage, CountersError> {
        let mut invocation = self.scripts.usage.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.expiry())
            .key(self.keys.account(account_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(account_id);
        let (counts, recorded): (Vec<i64>, Vec<String>) = self.run(invocation).await?;
        match counts[..] {
            [
                now_ms,
                used,
                reserved,
                cooling_until_ms,
                in_flight,
                failures,
                circuit_set,
                circuit_until_ms,
                successes_today,
                errors_today,
            ] => Ok(AccountUsage {
                used_today: non_negative(used),
                reserved: non_negative(reserved),
                cooling_until_ms: (cooling_until_ms > now_ms).then_some(cooling_until_ms),
                in_flight: non_negative(in_flight),
                consecutive_failures: u32::try_from(failures).unwrap_or(0),
                circuit_open_until_ms: (circuit_set == 1 && circuit_until_ms > now_ms)
                    .then_some(circuit_until_ms),
                half_open: circuit_set == 1 && circuit_until_ms <= now_ms,
                activity: decode_activity(&recorded, successes_today, errors_today)?,
            }),
            _ => Err(unexpected_reply()),
        }
    }

    async fn sweep(&self, now_ms: i64) -> Result<u64, CountersError> {
        let mut invocation = self.scripts.sweep.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.expiry())
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms));
        self.run::<i64>(invocation).await.map(non_negative)
    }

    async fn raise_used_today(
        &self,
        account_id: &str,
        tokens: u64,
        day: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError> {
        exact(tokens, "tokens must be below 2^53")?;
        let mut invocation = self.scripts.raise_used.prepare_invoke();
        invocation
            .key(self.keys.account(account_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(account_id)
            .arg(tokens)
            .arg(DAY_COUNTER_TTL_SECS)
            .arg(day);
        decode_raise(&self.run::<Vec<i64>>(invocation).await?)
    }

    async fn raise_key_spend(
        &self,
        key_id: &str,
        micro_usd: u64,
        month: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError> {
        exact(micro_usd, "micro_usd must be below 2^53")?;
        let mut invocation = self.scripts.raise_key_spend.prepare_invoke();
        invocation
            .key(self.keys.client_key(key_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(key_id)
            .arg(micro_usd)
            .arg(MONTH_COUNTER_TTL_SECS)
            .arg(month);
        decode_raise(&self.run::<Vec<i64>>(invocation).await?)
    }

    async fn raise_key_used_today(
        &self,
        key_id: &str,
        tokens: u64,
        day: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, CountersError> {
        exact(tokens, "tokens must be below 2^53")?;
        let mut invocation = self.scripts.raise_key_used.prepare_invoke();
        invocation
            .key(self.keys.client_key(key_id))
            .arg(&self.keys.tag)
            .arg(self.now_arg(now_ms))
            .arg(key_id)
            .arg(tokens)
            .arg(DAY_COUNTER_TTL_SECS)
            .arg(day);
        decode_raise(&self.run::<Vec<i64>>(invocation).await?)
    }
}

/// An account's activity from the usage script's reply: its day counts,
/// and its last use, last error (time and class) and latency average as
/// stored ('' when not recorded).
fn decode_activity(
    recorded: &[String],
    successes_today: i64,
    errors_today: i64,
) -> Result<AccountActivity, CountersError> {
    let [last_used, last_error_at, last_error, latency_ewma] = recorded else {
        return Err(unexpected_reply());
    };
    fn optional<T: std::str::FromStr>(text: &str) -> Result<Option<T>, CountersError> {
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| unexpected_reply())
    }
    Ok(AccountActivity {
        last_used_at_ms: optional(last_used)?,
        last_error_at_ms: optional(last_error_at)?,
        last_error: optional::<ErrorClass>(last_error)?,
        successes_today: non_negative(successes_today),
        errors_today: non_negative(errors_today),
        latency_ewma_us: optional(latency_ewma)?,
    })
}

/// A raise's reply: the count before, or `None` when the server's today is
/// another day than the one asked for.
fn decode_raise(reply: &[i64]) -> Result<Option<u64>, CountersError> {
    match *reply {
        [before, 1] => Ok(Some(non_negative(before))),
        [_, 0] => Ok(None),
        _ => Err(unexpected_reply()),
    }
}

fn decode_lease(reply: &[i64], input: LeaseInput) -> Result<LeaseDecision, CountersError> {
    match *reply {
        [
            1,
            now_ms,
            index,
            used,
            reserved,
            tokens,
            cap,
            ref report @ ..,
        ] => {
            let chosen = usize::try_from(index - 1)
                .ok()
                .and_then(|index| input.candidates.get(index))
                .ok_or_else(unexpected_reply)?;
            let committed = non_negative(used).saturating_add(non_negative(reserved));
            Ok(LeaseDecision::Granted(LeaseGranted {
                account_id: chosen.account_id.clone(),
                remaining_tokens: chosen
                    .daily_limit
                    .map(|limit| limit.saturating_sub(committed)),
                lease_id: input.lease_id,
                reserved_tokens: non_negative(tokens),
                decided_at_ms: now_ms,
                completion_cap: match input.reservation.completion {
                    Completion::Exact(_) => None,
                    Completion::UpTo { .. } => Some(non_negative(cap)),
                },
                expires_at_ms: clamp_time(now_ms.saturating_add(input.ttl_ms)),
                key_window: decode_report(report)?,
            }))
        }
        [0, now_ms, retry_at_ms, reason, ref report @ ..] => {
            let reason = match reason {
                1 => DenialReason::CoolingDown,
                2 => DenialReason::DailyLimit,
                3 => DenialReason::InFlight,
                4 => DenialReason::NoCandidates,
                5 => DenialReason::KeyRpm,
                6 => DenialReason::KeyTpm,
                7 => DenialReason::KeyDailyBudget,
                8 => DenialReason::CircuitOpen,
                9 => DenialReason::KeyMonthlyBudget,
                _ => return Err(unexpected_reply()),
            };
            Ok(LeaseDecision::Denied(LeaseDenied {
                decided_at_ms: now_ms,
                retry_at_ms,
                reason,
                key_window: decode_report(report)?,
            }))
        }
        [-1] => Err(CountersError::DuplicateLease(input.lease_id)),
        _ => Err(unexpected_reply()),
    }
}

/// The key's window report at the end of a lease reply: a flag, requests
/// and tokens left (-1: no such limit), and the two reset instants.
fn decode_report(report: &[i64]) -> Result<Option<KeyWindowReport>, CountersError> {
    let left = |value: i64| u64::try_from(value).ok();
    match *report {
        [0, ..] => Ok(None),
        [
            1,
            requests,
            tokens,
            requests_reset_at_ms,
            tokens_reset_at_ms,
        ] => Ok(Some(KeyWindowReport {
            remaining_requests: left(requests),
            remaining_tokens: left(tokens),
            requests_reset_at_ms,
            tokens_reset_at_ms,
        })),
        _ => Err(unexpected_reply()),
    }
}

/// Key names under one prefix; `tag` is `{prefix}`, the hash tag.
#[derive(Debug, Clone)]
struct Keys {
    tag: String,
}

impl Keys {
    fn new(prefix: String) -> Result<Self, CountersError> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(CountersError::InvalidInput(
                "the Redis key prefix must be non-empty and free of braces",
            ));
        }
        Ok(Self {
            tag: format!("{{{prefix}}}"),
        })
    }

    fn leases(&self) -> String {
        format!("{}leases", self.tag)
    }

    fn expiry(&self) -> String {
        format!("{}expiry", self.tag)
    }

    fn account(&self, account_id: &str) -> String {
        format!("{}acct:{account_id}", self.tag)
    }

    /// A claim's key (see claim.lua).
    fn claim(&self, name: &str) -> String {
        format!("{}claim:{name}", self.tag)
    }

    /// A client key's hash (`key:<key>` in common.lua).
    fn client_key(&self, key_id: &str) -> String {
        format!("{}key:{key_id}", self.tag)
    }
}

/// The operations' scripts, hashed once; sent by SHA.
#[derive(Debug, Clone)]
struct Scripts {
    lease: Script,
    settle: Script,
    renew: Script,
    cooldown: Script,
    circuit_failure: Script,
    circuit_success: Script,
    usage: Script,
    sweep: Script,
    raise_used: Script,
    raise_key_used: Script,
    reset_health: Script,
    raise_key_spend: Script,
    record_error: Script,
    claim: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_common = |body: &str| Script::new(&[COMMON_LUA, body].concat());
        Self {
            lease: Script::new(
                &[COMMON_LUA, KEY_LIMITS_LUA, include_str!("redis/lease.lua")].concat(),
            ),
            settle: with_common(include_str!("redis/settle.lua")),
            renew: with_common(include_str!("redis/renew.lua")),
            cooldown: with_common(include_str!("redis/cooldown.lua")),
            circuit_failure: with_common(include_str!("redis/circuit_failure.lua")),
            circuit_success: with_common(include_str!("redis/circuit_success.lua")),
            usage: with_common(include_str!("redis/usage.lua")),
            sweep: with_common(include_str!("redis/sweep.lua")),
            raise_used: with_common(include_str!("redis/raise_used.lua")),
            raise_key_used: with_common(include_str!("redis/raise_key_used.lua")),
            reset_health: with_common(include_str!("redis/reset_health.lua")),
            raise_key_spend: with_common(include_str!("redis/raise_key_spend.lua")),
            record_error: with_common(include_str!("redis/record_error.lua")),
            claim: with_common(include_str!("redis/claim.lua")),
        }
    }

    fn all(&self) -> [&Script; 14] {
        [
            &self.lease,
            &self.settle,
            &self.renew,
            &self.cooldown,
            &self.circuit_failure,
            &self.circuit_success,
            &self.usage,
            &self.sweep,
            &self.raise_used,
            &self.raise_key_used,
            &self.reset_health,
            &self.raise_key_spend,
            &self.record_error,
            &self.claim,
        ]
    }
}

/// The strategy as the lease script reads it.
fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::MostRemaining => "most_remaining",
        Strategy::Priority => "priority",
        Strategy::Weighted => "weighted",
        Strategy::RoundRobin => "round_robin",
        Strategy::LeastInflight => "least_inflight",
        Strategy::LowestLatency => "lowest_latency",
    }
}

fn exact(value: u64, what: &'static str) -> Result<(), CountersError> {
    if value > MAX_EXACT {
        return Err(CountersError::InvalidInput(what));
    }
    Ok(())
}

fn clamp_time(ms: i64) -> i64 {
    ms.clamp(-MAX_EXACT_MS, MAX_EXACT_MS)
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn backend(err: RedisError) -> CountersError {
    CountersError::Backend(format!("redis: {err}"))
}

fn unexpected_reply() -> CountersError {
    CountersError::Backend("redis: unexpected reply from a counters script".into())
}
