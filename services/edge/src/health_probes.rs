//! Active health probes. An account that opted in (`health_probe`) and is
//! out of service for its health (cooling down, its circuit open or
//! half-open) gets, at most once per interval across every edge, the same
//! minimal pinned call as the admin account test, marked as a probe so its
//! cooldown and circuit do not keep it out. A probe that succeeds ends the
//! cooldown and closes the circuit (an account reset, audited as done by
//! `health_probe`); one that fails is reported like any failed call, so the
//! account stays out (and a failed credential disables it).
//!
//! Each round lists the accounts, and for each one to probe asks quota for
//! the probe's claim (`ClaimHealthProbe`, held for one interval): the
//! replica that takes it probes, the others skip the account.

use std::future::Future;
use std::time::Duration;

use tollgate_core::ids;
use tollgate_proto::v1::{
    AccountRecord, AccountState, ClaimHealthProbeRequest, ListRequest, ResetAccountRequest,
};
use tracing::{debug, info, warn};

use crate::handlers::admin::account_test::chat_request;
use crate::state::EdgeState;

/// The actor a probe's reset is audited under.
const PROBE_ACTOR: &str = "health_probe";

/// Probes the accounts that need it every `interval` until `stop`
/// resolves.
pub async fn probe_health(state: EdgeState, interval: Duration, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            () = &mut stop => break,
            () = probe_round(&state, interval) => {}
        }
    }
}

/// Whether `account` is one to probe: opted in, enabled, and kept out by
/// its cooldown or its circuit.
pub(crate) fn needs_probe(account: &AccountRecord) -> bool {
    account.health_probe
        && account.enabled
        && matches!(
            account.state(),
            AccountState::CoolingDown | AccountState::CircuitOpen | AccountState::HalfOpen
        )
}

async fn probe_round(state: &EdgeState, interval: Duration) {
    let accounts = match state
        .quota
        .list_accounts(tonic::Request::new(ListRequest {}))
        .await
    {
        Ok(reply) => reply.into_inner().accounts,
        Err(status) => {
            debug!(code = ?status.code(), "health probes: cannot list accounts");
            return;
        }
    };
    let hold_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    for account in accounts.iter().filter(|account| needs_probe(account)) {
        let claim = ClaimHealthProbeRequest {
            account_id: account.id.clone(),
            hold_ms,
        };
        match state
            .quota
            .claim_health_probe(tonic::Request::new(claim))
            .await
        {
            Ok(reply) if reply.get_ref().claimed => probe(state, account).await,
            Ok(_) => debug!(account = %account.id, "health probe claimed elsewhere"),
            Err(status) => {
                debug!(account = %account.id, code = ?status.code(), "health probe claim failed");
            }
        }
    }
}

/// One probe of `account`, and its reset when it succeeds.
async fn probe(state: &EdgeState, account: &AccountRecord) {
    let Some(model) = account.models.first() else {
        debug!(account = %account.id, "health probe skipped: the account lists no models");
        return;
    };
    let request = chat_request(account, model, ids::prefixed("probe"), true);
    if let Err(status) = state.router.chat(tonic::Request::new(request)).await {
        info!(account = %account.id, code = ?status.code(), "health probe failed");
        return;
    }
    let mut reset = tonic::Request::new(ResetAccountRequest {
        id: account.id.clone(),
        clear_cooldown: true,
        close_circuit: true,
        enable: false,
    });
    if let Ok(actor) = PROBE_ACTOR.parse() {
        reset
            .metadata_mut()
            .insert(tollgate_proto::ACTOR_METADATA, actor);
    }
    match state.quota.reset_account(reset).await {
        Ok(_) => info!(account = %account.id, "health probe succeeded; account back in service"),
        Err(status) => {
            warn!(account = %account.id, code = ?status.code(), "health probe succeeded but the reset failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(state: AccountState, enabled: bool, health_probe: bool) -> AccountRecord {
        AccountRecord {
            state: state.into(),
            enabled,
            health_probe,
            ..AccountRecord::default()
        }
    }

    #[test]
    fn only_opted_in_accounts_out_for_their_health_are_probed() {
        for state in [
            AccountState::CoolingDown,
            AccountState::CircuitOpen,
            AccountState::HalfOpen,
        ] {
            assert!(needs_probe(&account(state, true, true)), "{state:?}");
            assert!(!needs_probe(&account(state, true, false)), "{state:?}");
            assert!(!needs_probe(&account(state, false, true)), "{state:?}");
        }
        assert!(!needs_probe(&account(AccountState::Ok, true, true)));
        assert!(!needs_probe(&account(AccountState::Disabled, true, true)));
    }
}
