//! Schemas the derived ones use: references to the document's hand-kept
//! components (`Provider`, `ProviderSettings`, `Timestamp`, `Strategy`, each described for the
//! field that uses it), and the enumerations of an account's state and of
//! its last error's class.

use utoipa::openapi::schema::{Object, OneOf, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr, Schema};

/// `#/components/schemas/Provider`: a provider's name.
pub fn provider() -> RefOr<Schema> {
    Ref::from_schema_name("Provider").into()
}

/// `#/components/schemas/ProviderSettings`: an account's settings.
pub fn provider_settings() -> RefOr<Schema> {
    Ref::from_schema_name("ProviderSettings").into()
}

/// An account's settings, or `null` to remove them.
pub fn provider_settings_or_null() -> Schema {
    OneOf::builder()
        .item(Ref::from_schema_name("ProviderSettings"))
        .item(Object::builder().schema_type(Type::Null))
        .description(Some("Replaces the settings whole; `null` removes them."))
        .build()
        .into()
}

/// `#/components/schemas/Timestamp`: RFC 3339 or unix seconds.
pub fn timestamp() -> RefOr<Schema> {
    Ref::from_schema_name("Timestamp").into()
}

/// A timestamp, or `null` to remove it.
pub fn timestamp_or_null() -> Schema {
    OneOf::builder()
        .item(Ref::from_schema_name("Timestamp"))
        .item(Object::builder().schema_type(Type::Null))
        .description(Some("`null` removes the expiry."))
        .build()
        .into()
}

/// `#/components/schemas/Strategy`, described.
fn strategy(description: &str) -> RefOr<Schema> {
    let mut strategy = Ref::from_schema_name("Strategy");
    strategy.description = description.to_owned();
    strategy.into()
}

/// `#/components/schemas/Strategy` or `null`, described.
fn strategy_or_null(description: &str) -> Schema {
    OneOf::builder()
        .item(Ref::from_schema_name("Strategy"))
        .item(Object::builder().schema_type(Type::Null))
        .description(Some(description))
        .build()
        .into()
}

/// A route's strategy in a body that may leave it out.
pub fn route_strategy() -> RefOr<Schema> {
    strategy("Default: the profile's.")
}

/// A route's strategy in a PATCH.
pub fn route_strategy_patch() -> Schema {
    strategy_or_null("`null`: back to the profile's.")
}

/// A route's strategy as read.
pub fn route_strategy_read() -> Schema {
    strategy_or_null("`null`: the profile's.")
}

/// A profile's strategy in a body that may leave it out.
pub fn profile_strategy() -> RefOr<Schema> {
    strategy("Default: the config file's, else `most_remaining`.")
}

/// A profile's strategy in a PATCH.
pub fn profile_strategy_patch() -> Schema {
    strategy_or_null("`null`: back to the configured one.")
}

/// A profile's strategy as read.
pub fn profile_strategy_read() -> Schema {
    strategy_or_null("`null`: the configured one.")
}

/// A string that is one of `values`.
fn one_of(values: &[&str]) -> Object {
    Object::builder()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// An account's state, as `Account.state` names it.
pub fn account_state() -> Object {
    let mut schema = one_of(&[
        "ok",
        "cooling_down",
        "disabled",
        "circuit_open",
        "half_open",
    ]);
    schema.description = Some(
        "Where it stands now: serving, cooling down after an upstream 429, its circuit open \
         after repeated failures (or half-open, one probe at a time), or disabled."
            .to_owned(),
    );
    schema
}

/// The class of an account's last upstream failure, or `null`.
pub fn error_class() -> Object {
    let mut schema = one_of(&["rate_limited", "server_error", "timeout", "auth_failed"]);
    schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    if let Some(values) = schema.enum_values.as_mut() {
        values.push(serde_json::Value::Null);
    }
    schema.description = Some("The class of that failure.".to_owned());
    schema
}
