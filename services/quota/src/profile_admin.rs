//! Profiles: admin reads and writes of the stored profiles (teams). See
//! [`crate::profiles`] for where a profile's accounts stand.
//!
//! A profile is keyed by its name, which keys, accounts and routes refer
//! to; it cannot be renamed, and it cannot be deleted while any of them
//! still names it. Its strategy is what a lease uses when the route asked
//! for names none, ahead of the configured `profiles:` setting.

use tollgate_control_store::{
    NewAuditEntry, NewProfile, ProfilePatch, ProfileRecord, strategy_name,
};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::v1;

use crate::QuotaService;
use crate::errors::from_control;
use crate::validate;

/// Optional profile fields a `ProfileUpdate.clear` may name.
const CLEARABLE: [&str; 1] = ["strategy"];

/// How many ids of each kind a refused delete names.
const USERS_NAMED: usize = 3;

pub(crate) fn to_proto(profile: ProfileRecord) -> v1::ProfileRecord {
    v1::ProfileRecord {
        name: profile.name,
        description: profile.description,
        strategy: profile
            .strategy
            .map(strategy_name)
            .unwrap_or_default()
            .to_owned(),
        created_at: profile.created_at,
        updated_at: profile.updated_at,
    }
}

fn not_found(name: &str) -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, format!("profile {name:?} not found"))
}

/// A profile name as a spec gives it: required (unlike in a key or an
/// account, where empty means the default profile).
fn name(value: &str) -> Result<String, GatewayError> {
    if value.trim().is_empty() {
        return Err(GatewayError::invalid("name", "name is required"));
    }
    validate::profile("name", value)
}

fn new_profile(spec: v1::ProfileSpec) -> Result<NewProfile, GatewayError> {
    Ok(NewProfile {
        name: name(&spec.name)?,
        description: validate::name("description", &spec.description)?,
        strategy: validate::strategy(&spec.strategy)?,
    })
}

fn patch_from(update: &v1::ProfileUpdate) -> Result<ProfilePatch, GatewayError> {
    let cleared = validate::clear_list(&update.clear, &CLEARABLE)?;
    let strategy = update
        .strategy
        .as_deref()
        .map(validate::strategy_update)
        .transpose()?;
    Ok(ProfilePatch {
        description: update
            .description
            .as_deref()
            .map(|description| validate::name("description", description))
            .transpose()?,
        strategy: validate::set_or_clear("strategy", strategy, &cleared)?,
    })
}

impl QuotaService {
    pub(crate) async fn create_profile(
        &self,
        actor: &str,
        spec: v1::ProfileSpec,
    ) -> Result<v1::ProfileRecord, GatewayError> {
        let profile = new_profile(spec)?;
        let profile = self
            .control
            .insert_profile(profile)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_profile(actor, "create", &profile))
            .await;
        self.control_changed().await?;
        Ok(to_proto(profile))
    }

    pub(crate) async fn list_profiles(&self) -> Result<v1::ProfileList, GatewayError> {
        let profiles = self.control.list_profiles().await.map_err(from_control)?;
        Ok(v1::ProfileList {
            profiles: profiles.into_iter().map(to_proto).collect(),
        })
    }

    pub(crate) async fn get_profile(&self, name: &str) -> Result<v1::ProfileRecord, GatewayError> {
        self.control
            .get_profile(name.trim())
            .await
            .map_err(from_control)?
            .map(to_proto)
            .ok_or_else(|| not_found(name.trim()))
    }

    pub(crate) async fn update_profile(
        &self,
        actor: &str,
        update: v1::ProfileUpdate,
    ) -> Result<v1::ProfileRecord, GatewayError> {
        let patch = patch_from(&update)?;
        let profile = self
            .control
            .update_profile(update.name.trim(), patch)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_profile(actor, "update", &profile))
            .await;
        self.control_changed().await?;
        Ok(to_proto(profile))
    }

    /// Refuses to delete a profile that a key, an account or a route still
    /// names: they would silently fall back to the configured strategy.
    pub(crate) async fn delete_profile(
        &self,
        actor: &str,
        name: &str,
    ) -> Result<v1::Deleted, GatewayError> {
        let name = name.trim();
        let existing = self
            .control
            .get_profile(name)
            .await
            .map_err(from_control)?
            .ok_or_else(|| not_found(name))?;
        let users = self.profile_users(name).await?;
        if let Some(message) = in_use(name, &users) {
            return Err(GatewayError::invalid("name", message));
        }
        self.control
            .delete_profile(name)
            .await
            .map_err(from_control)?;
        self.record_audit(NewAuditEntry::for_profile(actor, "delete", &existing))
            .await;
        self.control_changed().await?;
        Ok(v1::Deleted {
            id: name.to_owned(),
        })
    }

    /// The ids of the keys, accounts and routes naming `profile`.
    async fn profile_users(&self, profile: &str) -> Result<Users, GatewayError> {
        let keys = self.control.list_keys().await.map_err(from_control)?;
        let accounts = self.control.list_accounts().await.map_err(from_control)?;
        let routes = self.control.list_routes().await.map_err(from_control)?;
        Ok(Users {
            keys: keys
                .into_iter()
                .filter(|key| key.profile == profile || key.profiles.iter().any(|p| p == profile))
                .map(|key| key.id)
                .collect(),
            accounts: accounts
                .into_iter()
                .filter(|account| account.profile == profile)
                .map(|account| account.id)
                .collect(),
            routes: routes
                .into_iter()
                .filter(|route| route.profile == profile)
                .map(|route| route.id)
                .collect(),
        })
    }
}

/// What names a profile, by kind.
#[derive(Debug, Default)]
struct Users {
    keys: Vec<String>,
    accounts: Vec<String>,
    routes: Vec<String>,
}

/// Why `profile` cannot be deleted, naming what uses it; `None` when
/// nothing does.
fn in_use(profile: &str, users: &Users) -> Option<String> {
    let parts: Vec<String> = [
        ("key", &users.keys),
        ("account", &users.accounts),
        ("route", &users.routes),
    ]
    .into_iter()
    .filter(|(_, ids)| !ids.is_empty())
    .map(|(kind, ids)| {
        let plural = if ids.len() == 1 { "" } else { "s" };
        let mut named = ids
            .iter()
            .take(USERS_NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if ids.len() > USERS_NAMED {
            named.push_str(&format!(" and {} more", ids.len() - USERS_NAMED));
        }
        format!("{} {kind}{plural} ({named})", ids.len())
    })
    .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "profile {profile:?} is still used by {}; move or delete them first",
            parts.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {

    use super::*;
    use tollgate_counters::Strategy;

    fn ids(prefix: &str, count: usize) -> Vec<String> {
        (1..=count).map(|n| format!("{prefix}_{n}")).collect()
    }

    #[test]
    fn a_refused_delete_names_what_uses_the_profile() {
        assert_eq!(in_use("team-a", &Users::default()), None);
        let users = Users {
            keys: ids("key", 1),
            accounts: ids("acct", 5),
            routes: Vec::new(),
        };
        assert_eq!(
            in_use("team-a", &users).as_deref(),
            Some(
                "profile \"team-a\" is still used by 1 key (key_1), 5 accounts \
                 (acct_1, acct_2, acct_3 and 2 more); move or delete them first"
            )
        );
    }

    #[test]
    fn specs_are_checked_field_by_field() {
        let spec = |name: &str, strategy: &str| v1::ProfileSpec {
            name: name.into(),
            description: " Search team ".into(),
            strategy: strategy.into(),
        };
        let profile = new_profile(spec(" team-a ", "round_robin")).unwrap();
        assert_eq!(profile.name, "team-a");
        assert_eq!(profile.description, "Search team");
        assert_eq!(profile.strategy, Some(Strategy::RoundRobin));
        assert_eq!(new_profile(spec("team-a", "")).unwrap().strategy, None);

        let param = |spec: v1::ProfileSpec| new_profile(spec).unwrap_err().param;
        assert_eq!(param(spec("", "")).as_deref(), Some("name"));
        assert_eq!(param(spec("team a", "")).as_deref(), Some("name"));
        assert_eq!(
            param(spec("team-a", "fastest")).as_deref(),
            Some("strategy")
        );
    }

    #[test]
    fn updates_set_or_clear_the_strategy() {
        let update = |strategy: Option<&str>, clear: &[&str]| v1::ProfileUpdate {
            name: "team-a".into(),
            description: None,
            strategy: strategy.map(str::to_owned),
            clear: clear.iter().map(|name| (*name).to_owned()).collect(),
        };
        let set = patch_from(&update(Some("priority"), &[])).unwrap();
        assert_eq!(set.strategy, Some(Some(Strategy::Priority)));
        assert_eq!(set.description, None);
        let cleared = patch_from(&update(None, &["strategy"])).unwrap();
        assert_eq!(cleared.strategy, Some(None));
        let param = |update: v1::ProfileUpdate| patch_from(&update).unwrap_err().param;
        assert_eq!(param(update(Some(""), &[])).as_deref(), Some("strategy"));
        assert_eq!(
            param(update(Some("fastest"), &[])).as_deref(),
            Some("strategy")
        );
        assert_eq!(
            param(update(None, &["description"])).as_deref(),
            Some("clear")
        );
    }
}
