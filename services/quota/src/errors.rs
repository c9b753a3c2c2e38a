//! How store and counter failures reach a caller: the caller's own mistakes
//! keep their meaning, everything else becomes an internal error whose
//! detail goes to the log only.

use tollgate_control_store::ControlError;
use tollgate_control_store::crypto::CryptoError;
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_counters::CountersError;
use tracing::error;

pub(crate) fn internal() -> GatewayError {
    GatewayError::new(ErrorKind::Internal, "internal quota service error")
}

pub(crate) fn from_control(err: ControlError) -> GatewayError {
    match err {
        ControlError::NotFound { what, id } => {
            GatewayError::new(ErrorKind::NotFound, format!("{what} {id:?} not found"))
        }
        ControlError::DuplicateAlias => {
            GatewayError::invalid("alias", "this profile already has a route with this alias")
        }
        ControlError::DuplicateProfile => {
            GatewayError::invalid("name", "a profile with this name already exists")
        }
        ControlError::DuplicateKey => {
            error!("generated key collided with a stored key hash");
            internal()
        }
        ControlError::Corrupt { .. } | ControlError::Database(_) => {
            error!(error = %err, "control store failed");
            internal()
        }
    }
}

pub(crate) fn from_counters(err: CountersError) -> GatewayError {
    error!(error = %err, "quota counters failed");
    internal()
}

pub(crate) fn from_crypto(err: CryptoError) -> GatewayError {
    error!(error = %err, "secret sealing failed");
    internal()
}
