//! `tollgate admin audit` (who changed what) and `tollgate admin
//! rotate-master-key` (seal every account secret again under the current
//! master key).

use clap::Args;
use serde_json::{Value, json};

use super::client::AdminClient;
use super::table::Table;
use super::{cell, data, json_text};

/// `audit`: the newest admin writes.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many entries, newest first (the API caps it at 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

pub async fn list(client: &AdminClient, args: AuditArgs, json: bool) -> anyhow::Result<String> {
    let answer = client
        .get("/audit", &[("limit", args.limit.to_string())])
        .await?;
    Ok(if json {
        json_text(&answer)
    } else {
        audit_table(&answer)
    })
}

/// The audit log as a table, one write a row.
pub fn audit_table(answer: &Value) -> String {
    let mut table = Table::new(&["AT", "ACTOR", "ACTION", "OBJECT", "ID", "SUMMARY"]);
    for entry in data(answer) {
        table.push(vec![
            cell(&entry["at"]),
            cell(&entry["actor"]),
            cell(&entry["action"]),
            cell(&entry["object"]),
            cell(&entry["object_id"]),
            entry["summary"].to_string(),
        ]);
    }
    if table.is_empty() {
        return "the audit log is empty\n".to_owned();
    }
    table.render()
}

/// Runs the reseal; the procedure around it is in the command's help.
pub async fn rotate_master_key(client: &AdminClient, json: bool) -> anyhow::Result<String> {
    let answer = client.post("/master-key/reseal", &json!({})).await?;
    Ok(if json {
        json_text(&answer)
    } else {
        reseal_text(&answer)
    })
}

pub fn reseal_text(answer: &Value) -> String {
    let mut text = format!(
        "master key {}: {} secret(s) resealed, {} already current\n",
        cell(&answer["key_id"]),
        cell(&answer["resealed"]),
        cell(&answer["already_current"]),
    );
    let unreadable = answer["unreadable_account_ids"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if unreadable.is_empty() {
        text.push_str("every secret is sealed under the current key\n");
    } else {
        text.push_str(&format!(
            "no configured key opens the secret of: {} (keep the previous key configured, or \
             set these secrets again)\n",
            cell(&Value::from(unreadable.to_vec()))
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reseal_report_names_unreadable_accounts() {
        let done = reseal_text(&json!({
            "key_id": "ab12cd34", "resealed": 2, "already_current": 1,
            "unreadable_account_ids": []
        }));
        assert_eq!(
            done,
            "master key ab12cd34: 2 secret(s) resealed, 1 already current\n\
             every secret is sealed under the current key\n"
        );
        let partial = reseal_text(&json!({
            "key_id": "ab12cd34", "resealed": 0, "already_current": 0,
            "unreadable_account_ids": ["acct_a", "acct_b"]
        }));
        assert!(partial.contains("acct_a,acct_b"), "{partial}");
    }

    #[test]
    fn the_audit_table_shows_one_row_per_write() {
        let table = audit_table(&json!({"data": [{
            "at": "2026-11-22T02:00:00Z", "actor": "admin (cli:alice)", "action": "create",
            "object": "key", "object_id": "key_1", "summary": {"name": "ci"}
        }]}));
        assert!(table.starts_with("AT"), "{table}");
        assert!(table.contains("admin (cli:alice)"), "{table}");
        assert!(table.contains(r#"{"name":"ci"}"#), "{table}");
        assert_eq!(
            audit_table(&json!({"data": []})),
            "the audit log is empty\n"
        );
    }
}
