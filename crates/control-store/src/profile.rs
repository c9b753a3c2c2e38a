//! Profiles (teams): the name keys, accounts and routes belong to, stored
//! so that it can carry a description and the strategy its leases use.
//!
//! The name is the profile's identity: keys, accounts and routes refer to
//! it by name, so it cannot be renamed.

use tollgate_core::Strategy;

use super::set;

/// A stored profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRecord {
    pub name: String,
    pub description: String,
    /// How its leases pick an account when their route names no strategy;
    /// `None` means the configured default.
    pub strategy: Option<Strategy>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A profile to insert; the store assigns its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProfile {
    pub name: String,
    pub description: String,
    pub strategy: Option<Strategy>,
}

/// A partial update of a profile: `None` leaves a field unchanged;
/// `strategy: Some(None)` clears the strategy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub description: Option<String>,
    pub strategy: Option<Option<Strategy>>,
}

impl ProfilePatch {
    /// The record as it will be once the patch is applied (timestamps
    /// aside).
    pub fn applied_to(&self, record: &ProfileRecord) -> ProfileRecord {
        let mut next = record.clone();
        set(&mut next.description, &self.description);
        set(&mut next.strategy, &self.strategy);
        next
    }
}
