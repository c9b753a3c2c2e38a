//! Client keys: creation (the plaintext is returned once and only its hash
//! kept), admin reads and writes, and `ResolveKey` for the edge.

use tollgate_control_store::{KeyPatch, KeyRecord, NewAuditEntry, NewKey};
use tollgate_core::apikey::PlaintextKey;
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::v1;

use crate::QuotaService;
use crate::errors::{from_control, internal};
use crate::validate;

/// Optional key fields a `KeyUpdate.clear` may name.
const CLEARABLE: [&str; 5] = [
    "rpm",
    "tpm",
    "daily_token_budget",
    "monthly_budget_micro_usd",
    "expires_at",
];

pub(crate) fn to_proto(key: KeyRecord) -> v1::KeyRecord {
    v1::KeyRecord {
        id: key.id,
        name: key.name,
        profile: key.profile,
        profiles: key.profiles,
        models: key.models,
        rpm: key.rpm,
        tpm: key.tpm,
        daily_token_budget: key.daily_token_budget,
        monthly_budget_micro_usd: key.monthly_budget_micro_usd,
        expires_at: key.expires_at,
        enabled: key.enabled,
        created_at: key.created_at,
        prefix: key.prefix,
        last4: key.last4,
    }
}

fn invalid_key(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidApiKey, message)
}

fn patch_from(update: &v1::KeyUpdate) -> Result<KeyPatch, GatewayError> {
    let cleared = validate::clear_list(&update.clear, &CLEARABLE)?;
    Ok(KeyPatch {
        name: update
            .name
            .as_deref()
            .map(|name| validate::name("name", name))
            .transpose()?,
        profile: update
            .profile
            .as_deref()
            .map(|profile| validate::profile("profile", profile))
            .transpose()?,
        profiles: update
            .profiles
            .as_ref()
            .map(|list| validate::profiles("profiles", &list.values))
            .transpose()?,
        models: update
            .models
            .as_ref()
            .map(|list| validate::models("models", &list.values))
            .transpose()?,
        rpm: validate::set_or_clear("rpm", validate::positive("rpm", update.rpm)?, &cleared)?,
        tpm: validate::set_or_clear("tpm", validate::positive("tpm", update.tpm)?, &cleared)?,
        daily_token_budget: validate::set_or_clear(
            "daily_token_budget",
            validate::positive("daily_token_budget", update.daily_token_budget)?,
            &cleared,
        )?,
        monthly_budget_micro_usd: validate::set_or_clear(
            "monthly_budget_micro_usd",
            validate::positive("monthly_budget_micro_usd", update.monthly_budget_micro_usd)?,
            &cleared,
        )?,
        expires_at: validate::set_or_clear("expires_at", update.expires_at, &cleared)?,
        enabled: update.enabled,
    })
}

impl QuotaService {
    /// Whether any client key exists (a first start creates a dev key when
    /// none does).
    pub async fn has_keys(&self) -> Result<bool, GatewayError> {
        let keys = self.control.list_keys().await.map_err(from_control)?;
        Ok(!keys.is_empty())
    }

    /// The key whose plaintext hashes to `key_hash`, if it may be used now.
    pub(crate) async fn resolve_key(&self, key_hash: &str) -> Result<v1::KeyRecord, GatewayError> {
        if key_hash.is_empty() {
            return Err(invalid_key("missing API key"));
        }
        let key = self
            .control
            .get_key_by_hash(key_hash)
            .await
            .map_err(from_control)?
            .ok_or_else(|| invalid_key("invalid API key"))?;
        if !key.enabled {
            return Err(invalid_key("this API key is disabled"));
        }
        if key.is_expired(self.clock.now_ms().div_euclid(1000)) {
            return Err(invalid_key("this API key has expired"));
        }
        Ok(to_proto(key))
    }

    pub(crate) async fn create_key(
        &self,
        actor: &str,
        spec: v1::KeySpec,
    ) -> Result<v1::CreatedKey, GatewayError> {
        let plaintext = PlaintextKey::generate().map_err(|_| internal())?;
        let new = NewKey {
            name: validate::name("name", &spec.name)?,
            key_hash: plaintext.hash().as_str().to_owned(),
            prefix: plaintext.display_prefix(),
            last4: plaintext.last4(),
            profile: validate::profile("profile", &spec.profile)?,
            profiles: validate::profiles("profiles", &spec.profiles)?,
            models: validate::models("models", &spec.models)?,
            rpm: validate::positive("rpm", spec.rpm)?,
            tpm: validate::positive("tpm", spec.tpm)?,
            daily_token_budget: validate::positive("daily_token_budget", spec.daily_token_budget)?,
            monthly_budget_micro_usd: validate::positive(
                "monthly_budget_micro_usd",
                spec.monthly_budget_micro_usd,
            )?,
            expires_at: spec.expires_at,
            enabled: spec.enabled.unwrap_or(true),
        };
        let key = self.control.insert_key(new).await.map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_key(actor, "create", &key))
            .await;
        self.control_changed().await?;
        Ok(v1::CreatedKey {
            key: Some(to_proto(key)),
            secret: plaintext.expose().to_owned(),
        })
    }

    pub(crate) async fn list_keys(&self) -> Result<v1::KeyList, GatewayError> {
        let keys = self.control.list_keys().await.map_err(from_control)?;
        Ok(v1::KeyList {
            keys: keys.into_iter().map(to_proto).collect(),
        })
    }

    pub(crate) async fn get_key(&self, id: &str) -> Result<v1::KeyRecord, GatewayError> {
        self.control
            .get_key(id)
            .await
            .map_err(from_control)?
            .map(to_proto)
            .ok_or_else(|| GatewayError::new(ErrorKind::NotFound, format!("key {id:?} not found")))
    }

    pub(crate) async fn update_key(
        &self,
        actor: &str,
        update: v1::KeyUpdate,
    ) -> Result<v1::KeyRecord, GatewayError> {
        let patch = patch_from(&update)?;
        let key = self
            .control
            .update_key(&update.id, patch)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_key(actor, "update", &key))
            .await;
        self.invalidations.key_changed(&key.id, &key.key_hash);
        self.control_changed().await?;
        Ok(to_proto(key))
    }

    pub(crate) async fn delete_key(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<v1::Deleted, GatewayError> {
        // Read first: the edges' caches are keyed by the hash, and the audit
        // entry describes what was deleted.
        let existing = self.control.get_key(id).await.map_err(from_control)?;
        self.control.delete_key(id).await.map_err(from_control)?;
        let key_hash = match existing {
            Some(key) => {
                self.record_audit(NewAuditEntry::for_key(actor, "delete", &key))
                    .await;
                key.key_hash
            }
            None => String::new(),
        };
        self.invalidations.key_changed(id, &key_hash);
        self.control_changed().await?;
        Ok(v1::Deleted { id: id.to_owned() })
    }
}
