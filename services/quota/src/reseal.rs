//! The second step of a master-key rotation: every account secret sealed
//! under an earlier master key is opened (the process was started with that
//! key configured as retired) and sealed again under the current one.
//!
//! Run it after every quota replica runs with the new key as current; once
//! it reports no unreadable secrets, the retired key can be dropped from the
//! configuration. Running it again changes nothing.

use secrecy::ExposeSecret;
use tollgate_control_store::{AccountPatch, NewAuditEntry};
use tollgate_core::GatewayError;
use tollgate_proto::v1;
use tracing::{info, warn};

use crate::QuotaService;
use crate::errors::{from_control, from_crypto};

impl QuotaService {
    pub(crate) async fn reseal_secrets(
        &self,
        actor: &str,
    ) -> Result<v1::ResealReport, GatewayError> {
        let accounts = self.control.list_accounts().await.map_err(from_control)?;
        let mut report = v1::ResealReport {
            key_id: self.secrets.key_id().to_owned(),
            ..v1::ResealReport::default()
        };
        for account in accounts {
            let Some(sealed) = &account.sealed_secret else {
                continue;
            };
            if !self.secrets.needs_reseal(sealed) {
                report.current += 1;
                continue;
            }
            let plaintext = match self.secrets.open(sealed) {
                Ok(plaintext) => plaintext,
                Err(err) => {
                    warn!(account = %account.id, error = %err, "no configured master key opens this account's secret");
                    report.unreadable_account_ids.push(account.id);
                    continue;
                }
            };
            let resealed = self
                .secrets
                .seal(plaintext.expose_secret())
                .map_err(from_crypto)?;
            // An admin may have set a new secret since the list was read: leave
            // that one alone (it is sealed under the current key already).
            let still_same = self
                .control
                .get_account(&account.id)
                .await
                .map_err(from_control)?
                .is_some_and(|now| now.sealed_secret.as_deref() == Some(sealed.as_str()));
            if !still_same {
                continue;
            }
            let patch = AccountPatch {
                sealed_secret: Some(Some(resealed)),
                ..AccountPatch::default()
            };
            let stored = self
                .control
                .update_account(&account.id, patch)
                .await
                .map_err(from_control)?;
            self.record_audit(NewAuditEntry::for_account(actor, "reseal", &stored))
                .await;
            report.resealed += 1;
        }
        info!(
            key_id = %report.key_id,
            resealed = report.resealed,
            unreadable = report.unreadable_account_ids.len(),
            "account secrets sealed under the current master key"
        );
        if report.resealed > 0 {
            self.control_changed().await?;
        }
        Ok(report)
    }
}
