//! Routes: a profile's model alias mapped to ordered deployments, with a
//! strategy, fallbacks and timeouts of its own. The body that creates one,
//! the PATCH that changes one, and a route as read.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::patch::present;
use crate::schema;

/// One deployment of a route.
//
// In a body `weight` and `priority` may be left out (1 and 0); a read
// always has them.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    #[serde(default)]
    #[schema(schema_with = schema::provider, required = true)]
    pub provider: String,
    /// The upstream model.
    #[serde(default)]
    #[schema(required = true)]
    pub model: String,
    /// Default: 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u32)]
    pub weight: Option<u32>,
    /// Default: 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i32)]
    pub priority: Option<i32>,
}

/// The body of `POST /admin/v1/routes`.
//
// Absent strings are empty, which quota reads as unset (the default
// profile, the profile's strategy).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoute {
    #[serde(default)]
    #[schema(min_length = 1, required = true)]
    pub alias: String,
    /// Default: `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub profile: Option<String>,
    #[serde(default)]
    #[schema(min_items = 1, required = true)]
    pub deployments: Vec<Deployment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::route_strategy)]
    pub strategy: Option<String>,
    /// Aliases tried next, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Aliases tried next, in order, when an attempt fails because the
    /// prompt is longer than the model's context window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_window_fallbacks: Vec<String>,
    /// Aliases tried next, in order, when the provider's content policy
    /// refuses an attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_policy_fallbacks: Vec<String>,
    /// Per attempt: how long to wait for the first byte of the answer (a
    /// stream's first event); absent: the router's `upstream_timeout_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u32, minimum = 1)]
    pub first_byte_timeout_ms: Option<u32>,
    /// The request's whole time, every attempt and pause included, from its
    /// start; absent: the router's `request_deadline_secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u32, minimum = 1)]
    pub deadline_ms: Option<u32>,
    /// Default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool)]
    pub enabled: Option<bool>,
}

/// Present fields change; `null` clears the strategy or a timeout. Other
/// fields cannot be `null`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutePatch {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String)]
    pub alias: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String)]
    pub profile: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<Deployment>, min_items = 1)]
    pub deployments: Option<Option<Vec<Deployment>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = schema::route_strategy_patch)]
    pub strategy: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<String>)]
    pub fallbacks: Option<Option<Vec<String>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<String>)]
    pub context_window_fallbacks: Option<Option<Vec<String>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<String>)]
    pub content_policy_fallbacks: Option<Option<Vec<String>>>,
    /// `null`: back to the router's.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub first_byte_timeout_ms: Option<Option<u32>>,
    /// `null`: back to the router's.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub deadline_ms: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub enabled: Option<Option<bool>>,
}

/// A route as read.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct Route {
    pub id: String,
    /// The model name clients send.
    pub alias: String,
    pub profile: String,
    pub deployments: Vec<Deployment>,
    #[schema(required = true, schema_with = schema::route_strategy_read)]
    pub strategy: Option<String>,
    /// Aliases tried next, in order.
    pub fallbacks: Vec<String>,
    /// Aliases tried next, in order, when an attempt fails because the
    /// prompt is longer than the model's context window.
    pub context_window_fallbacks: Vec<String>,
    /// Aliases tried next, in order, when the provider's content policy
    /// refuses an attempt.
    pub content_policy_fallbacks: Vec<String>,
    /// Per attempt: how long to wait for the first byte of the answer (a
    /// stream's first event); `null`: the router's `upstream_timeout_ms`.
    #[schema(required = true, minimum = 1)]
    pub first_byte_timeout_ms: Option<u32>,
    /// The request's whole time, every attempt and pause included, from its
    /// start; `null`: the router's `request_deadline_secs`.
    #[schema(required = true, minimum = 1)]
    pub deadline_ms: Option<u32>,
    pub enabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}
