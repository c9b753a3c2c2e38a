//! Every write to keys, accounts, profiles and routes lands in the control store's
//! audit log: who (the actor the edge names in request metadata, or
//! `system` for the service's own writes), what, to which object, and a
//! summary without secrets.
//!
//! The change is already made when its entry is written, so an audit
//! failure is logged as an error rather than turned into a failed request
//! (which a client would retry, repeating the change).

use tollgate_control_store::{AuditRecord, NewAuditEntry};
use tollgate_core::GatewayError;
use tollgate_proto::{ACTOR_METADATA, v1};
use tonic::Request;
use tracing::error;

use crate::QuotaService;
use crate::errors::from_control;

/// The actor of the service's own writes (bootstrap accounts, an account
/// disabled after its upstream refused the credential).
pub(crate) const SYSTEM: &str = "system";

/// Entries listed when a query names no limit.
const DEFAULT_LIST_LIMIT: u32 = 100;

/// The most entries one query lists.
const MAX_LIST_LIMIT: u32 = 1_000;

/// The longest actor kept.
const MAX_ACTOR_CHARS: usize = 128;

/// Who made `request`: its actor metadata, cut to printable ASCII, or
/// `unknown` when it names none.
pub(crate) fn actor<T>(request: &Request<T>) -> String {
    let named: String = request
        .metadata()
        .get(ACTOR_METADATA)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_ACTOR_CHARS)
        .collect();
    match named.trim() {
        "" => "unknown".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

impl QuotaService {
    /// Appends `entry` to the audit log; a failure is logged, not returned.
    pub(crate) async fn record_audit(&self, entry: NewAuditEntry) {
        let (action, kind, id) = (
            entry.action.clone(),
            entry.object_kind.clone(),
            entry.object_id.clone(),
        );
        if let Err(err) = self.control.record_audit(entry).await {
            error!(%action, %kind, %id, error = %err, "could not write the audit log entry");
        }
    }

    /// The newest `limit` entries (0: [`DEFAULT_LIST_LIMIT`]; at most
    /// [`MAX_LIST_LIMIT`]), newest first.
    pub(crate) async fn list_audit(&self, limit: u32) -> Result<v1::AuditList, GatewayError> {
        let limit = match limit {
            0 => DEFAULT_LIST_LIMIT,
            limit => limit.min(MAX_LIST_LIMIT),
        };
        let entries = self.control.list_audit(limit).await.map_err(from_control)?;
        Ok(v1::AuditList {
            entries: entries.into_iter().map(to_proto).collect(),
        })
    }
}

fn to_proto(record: AuditRecord) -> v1::AuditEntry {
    v1::AuditEntry {
        id: record.id,
        at: record.at,
        actor: record.actor,
        action: record.action,
        object_kind: record.object_kind,
        object_id: record.object_id,
        summary_json: record.summary.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_come_from_metadata_and_are_cleaned() {
        let mut request = Request::new(());
        assert_eq!(actor(&request), "unknown");
        request
            .metadata_mut()
            .insert(ACTOR_METADATA, "admin (cli:alice)\t".parse().unwrap());
        assert_eq!(actor(&request), "admin (cli:alice)");
        let long = "a".repeat(300);
        request
            .metadata_mut()
            .insert(ACTOR_METADATA, long.parse().unwrap());
        assert_eq!(actor(&request).len(), MAX_ACTOR_CHARS);
    }
}
