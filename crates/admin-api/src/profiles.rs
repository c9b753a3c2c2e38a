//! Stored profiles (teams), by name: the body that creates one, the PATCH
//! that changes one, and a profile as read.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::patch::present;
use crate::schema;

/// The body of `POST /admin/v1/profiles`.
//
// Absent strings are empty, which quota reads as unset (no description,
// the configured strategy).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    #[serde(default)]
    #[schema(min_length = 1, required = true)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::profile_strategy)]
    pub strategy: Option<String>,
}

/// Present fields change; `null` clears the strategy. A profile cannot be
/// renamed.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String)]
    pub description: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = schema::profile_strategy_patch)]
    pub strategy: Option<Option<String>>,
}

/// A stored profile as read.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct Profile {
    pub name: String,
    pub description: String,
    #[schema(required = true, schema_with = schema::profile_strategy_read)]
    pub strategy: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}
