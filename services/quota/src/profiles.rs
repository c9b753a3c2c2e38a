//! `ProfileStats`: the accounts of one profile and where each stands today
//! (tokens used, reserved and left, and whether it can serve), for the
//! admin API. A profile exists when it is stored, or while an account or a
//! key names it.

use tollgate_control_store::{AccountRecord, strategy_name};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_counters::AccountUsage;
use tollgate_proto::v1;

use crate::QuotaService;
use crate::errors::{from_control, from_counters};
use crate::validate;

impl QuotaService {
    pub(crate) async fn profile_stats(
        &self,
        profile: &str,
    ) -> Result<v1::ProfileStatsReply, GatewayError> {
        let profile = validate::profile("profile", profile)?;
        let accounts: Vec<AccountRecord> = self
            .control
            .list_accounts()
            .await
            .map_err(from_control)?
            .into_iter()
            .filter(|account| account.profile == profile)
            .collect();
        let stored = self
            .control
            .get_profile(&profile)
            .await
            .map_err(from_control)?;
        if stored.is_none() && accounts.is_empty() && !self.profile_named_by_a_key(&profile).await?
        {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                format!("profile {profile:?} not found"),
            ));
        }
        let strategy = stored
            .as_ref()
            .and_then(|stored| stored.strategy)
            .unwrap_or_else(|| self.settings.strategy(&profile));
        let now_ms = self.clock.now_ms();
        let mut stats = Vec::with_capacity(accounts.len());
        for account in accounts {
            let usage = self
                .counters
                .usage(&account.id, now_ms)
                .await
                .map_err(from_counters)?;
            stats.push(account_stats(account, &usage));
        }
        Ok(v1::ProfileStatsReply {
            profile,
            accounts: stats,
            description: stored.map(|stored| stored.description).unwrap_or_default(),
            strategy: strategy_name(strategy).to_owned(),
        })
    }

    async fn profile_named_by_a_key(&self, profile: &str) -> Result<bool, GatewayError> {
        let keys = self.control.list_keys().await.map_err(from_control)?;
        Ok(keys
            .iter()
            .any(|key| key.profile == profile || key.profiles.iter().any(|name| name == profile)))
    }
}

/// Where an account stands, from the most to the least lasting cause (a
/// circuit breaker belongs between disabled and cooling down). The
/// counters report only cooldowns and circuits still running, by their own
/// clock (the Redis server's).
pub(crate) fn state_of(enabled: bool, usage: &AccountUsage) -> v1::AccountState {
    if !enabled {
        v1::AccountState::Disabled
    } else if usage.cooling_until_ms.is_some() {
        v1::AccountState::CoolingDown
    } else if usage.circuit_open_until_ms.is_some() {
        v1::AccountState::CircuitOpen
    } else if usage.half_open {
        v1::AccountState::HalfOpen
    } else {
        v1::AccountState::Ok
    }
}

/// One account's standing.
fn account_stats(account: AccountRecord, usage: &AccountUsage) -> v1::AccountStats {
    let cooling_until_ms = usage.cooling_until_ms;
    let circuit_open_until_ms = usage.circuit_open_until_ms;
    let state = state_of(account.enabled, usage);
    let tokens_remaining = account
        .daily_token_limit
        .map(|limit| limit.saturating_sub(usage.used_today + usage.reserved));
    v1::AccountStats {
        id: account.id,
        name: account.name,
        provider: account.provider.as_str().to_owned(),
        tokens_used_today: usage.used_today,
        tokens_reserved: usage.reserved,
        daily_token_limit: account.daily_token_limit,
        tokens_remaining,
        state: state.into(),
        cooling_until_ms,
        circuit_open_until_ms,
        disabled_reason: if account.enabled {
            String::new()
        } else {
            account.disabled_reason.unwrap_or_default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::Provider;

    fn account(enabled: bool, limit: Option<u64>) -> AccountRecord {
        AccountRecord {
            id: "acct_1".into(),
            provider: Provider::Mock,
            name: "mock".into(),
            email: None,
            sealed_secret: None,
            base_url: None,
            profile: "default".into(),
            models: Vec::new(),
            daily_token_limit: limit,
            rpm: None,
            tpm: None,
            priority: 0,
            weight: 1,
            strict_cap: false,
            health_probe: false,
            settings: None,
            prices: None,
            enabled,
            disabled_reason: (!enabled).then(|| "upstream refused the credential".into()),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[allow(clippy::field_reassign_with_default)]
    fn usage(used: u64, reserved: u64, cooling_until_ms: Option<i64>) -> AccountUsage {
        // Field by field, so fields added to `AccountUsage` keep defaults.
        let mut usage = AccountUsage::default();
        usage.used_today = used;
        usage.reserved = reserved;
        usage.cooling_until_ms = cooling_until_ms;
        usage
    }

    #[test]
    fn remaining_is_the_limit_less_used_and_reserved() {
        let stats = account_stats(account(true, Some(100)), &usage(30, 20, None));
        assert_eq!(stats.tokens_remaining, Some(50));
        assert_eq!(stats.state(), v1::AccountState::Ok);
        let over = account_stats(account(true, Some(10)), &usage(30, 0, None));
        assert_eq!(over.tokens_remaining, Some(0));
        let unlimited = account_stats(account(true, None), &usage(30, 0, None));
        assert_eq!(unlimited.tokens_remaining, None);
    }

    #[test]
    fn state_is_disabled_then_cooling_down_then_ok() {
        let disabled = account_stats(account(false, None), &usage(0, 0, Some(5_000)));
        assert_eq!(disabled.state(), v1::AccountState::Disabled);
        assert_eq!(disabled.disabled_reason, "upstream refused the credential");
        let cooling = account_stats(account(true, None), &usage(0, 0, Some(5_000)));
        assert_eq!(cooling.state(), v1::AccountState::CoolingDown);
        assert_eq!(cooling.cooling_until_ms, Some(5_000));
        // The counters report no cooldown once it is over.
        let over = account_stats(account(true, None), &usage(0, 0, None));
        assert_eq!(over.state(), v1::AccountState::Ok);
        assert_eq!(over.cooling_until_ms, None);
    }

    #[test]
    fn an_open_circuit_shows_until_when_then_half_open() {
        let mut open = usage(0, 0, None);
        open.circuit_open_until_ms = Some(9_000);
        let stats = account_stats(account(true, None), &open);
        assert_eq!(stats.state(), v1::AccountState::CircuitOpen);
        assert_eq!(stats.circuit_open_until_ms, Some(9_000));
        let mut probing = usage(0, 0, None);
        probing.half_open = true;
        let stats = account_stats(account(true, None), &probing);
        assert_eq!(stats.state(), v1::AccountState::HalfOpen);
        assert_eq!(stats.circuit_open_until_ms, None);
    }
}
