//! `tollgate admin profiles`: how a profile's accounts stand today.

use clap::Subcommand;
use serde_json::Value;

use super::client::AdminClient;
use super::keys::path_id;
use super::table::Table;
use super::{cell, json_text};

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// Each account of a profile: tokens used, reserved and left today,
    /// state, and today's requests and errors.
    Stats {
        /// Profile name (e.g. `default`).
        profile: String,
    },
}

pub async fn run(
    client: &AdminClient,
    command: ProfilesCommand,
    json: bool,
) -> anyhow::Result<String> {
    let ProfilesCommand::Stats { profile } = command;
    let answer = client
        .get(&format!("/profiles/{}/stats", path_id(&profile)), &[])
        .await?;
    Ok(if json {
        json_text(&answer)
    } else {
        stats_table(&answer)
    })
}

/// `profiles stats` as a table, one account a row.
pub fn stats_table(answer: &Value) -> String {
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "PROVIDER",
        "USED TODAY",
        "RESERVED",
        "REMAINING",
        "DAILY LIMIT",
        "STATE",
        "REQUESTS",
        "ERRORS",
    ]);
    let accounts = answer["accounts"].as_array().map_or(&[][..], Vec::as_slice);
    for account in accounts {
        table.push(vec![
            cell(&account["id"]),
            cell(&account["name"]),
            cell(&account["provider"]),
            cell(&account["tokens_used_today"]),
            cell(&account["tokens_reserved"]),
            or_unlimited(&account["tokens_remaining"]),
            or_unlimited(&account["daily_token_limit"]),
            state(account),
            cell(&account["requests_today"]),
            cell(&account["errors_today"]),
        ]);
    }
    if table.is_empty() {
        return format!("profile {} has no accounts\n", cell(&answer["profile"]));
    }
    table.render()
}

fn or_unlimited(value: &Value) -> String {
    if value.is_null() {
        "unlimited".to_owned()
    } else {
        cell(value)
    }
}

/// The state, with when a cooldown ends or why the account is disabled.
fn state(account: &Value) -> String {
    let state = cell(&account["state"]);
    match state.as_str() {
        "cooling_down" => format!(
            "cooling_down until {}",
            cell(&account["cooling_down_until"])
        ),
        "circuit_open" => format!(
            "circuit_open until {}",
            cell(&account["circuit_open_until"])
        ),
        "disabled" if !account["disabled_reason"].is_null() => {
            format!("disabled: {}", cell(&account["disabled_reason"]))
        }
        _ => state,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admin::tests::parse;
    use serde_json::json;

    #[test]
    fn stats_takes_a_profile() {
        let args = parse(&["profiles", "stats", "team-a"]).unwrap();
        assert!(matches!(
            args.command,
            crate::admin::AdminCommand::Profiles(ProfilesCommand::Stats { ref profile }) if profile == "team-a"
        ));
        assert!(parse(&["profiles", "stats"]).is_err());
    }

    #[test]
    fn the_table_shows_limits_states_and_counts() {
        let answer = json!({"profile": "default", "accounts": [
            {"id": "acct_1", "name": "a", "provider": "mock", "tokens_used_today": 5,
             "tokens_reserved": 0, "tokens_remaining": null, "daily_token_limit": null,
             "state": "ok", "requests_today": 2, "errors_today": 0},
            {"id": "acct_2", "name": "b", "provider": "openai", "tokens_used_today": 0,
             "tokens_reserved": 0, "tokens_remaining": 10, "daily_token_limit": 10,
             "state": "cooling_down", "cooling_down_until": "2026-01-01T00:00:00Z",
             "requests_today": null, "errors_today": null},
            {"id": "acct_3", "name": "c", "provider": "openai", "state": "disabled",
             "disabled_reason": "refused credential"}
        ]});
        let text = stats_table(&answer);
        assert!(text.contains("unlimited"), "{text}");
        assert!(
            text.contains("cooling_down until 2026-01-01T00:00:00Z"),
            "{text}"
        );
        assert!(text.contains("disabled: refused credential"), "{text}");
        let empty = stats_table(&json!({"profile": "x", "accounts": []}));
        assert_eq!(empty, "profile x has no accounts\n");
    }
}
