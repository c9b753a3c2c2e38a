//! Domain types shared by every Tollgate service. Nothing here does I/O.

pub mod apikey;
pub mod catalog;
pub mod clock;
pub mod error;
pub mod ids;
pub mod model;
pub mod presets;
pub mod provider;
pub mod provider_settings;
pub mod self_hosted;
pub mod strategy;
pub mod tokens;

pub use error::{ErrorKind, GatewayError};
pub use model::ModelRef;
pub use provider::Provider;
pub use provider_settings::ProviderSettings;
pub use strategy::Strategy;
