//! The admin API's JSON objects, each defined once (keys, accounts,
//! routes, profiles, usage reports): the edge reads and
//! writes them, the CLI sends and reads them, and the OpenAPI document's
//! schemas for them are derived from these definitions (`utoipa`), so a
//! field is named, typed and described in one place.
//!
//! A type's or field's doc comment (`///`) is its description in the
//! OpenAPI document, so it speaks to the API's users; notes for the code
//! are `//` comments.
//!
//! Only the JSON shape lives here, and the conversion of prices between
//! the API's dollars and the model catalog's micro-dollars. What makes a
//! value valid is otherwise judged where it is used: the edge converts these objects to and from quota's
//! protobuf messages, and quota decides.

pub mod accounts;
pub mod keys;
pub mod patch;
pub mod prices;
pub mod profiles;
pub mod routes;
pub mod schema;
pub mod usage;

pub use accounts::{Account, AccountPatch, NewAccount};
pub use keys::{CreatedKey, Key, KeyPatch, NewKey};
pub use prices::{InvalidPrices, Prices};
pub use profiles::{NewProfile, Profile, ProfilePatch};
pub use routes::{Deployment, NewRoute, Route, RoutePatch};
pub use usage::{UsageReport, UsageRow};
