//! `tollgate admin profiles`: create, list and delete stored profiles
//! (teams), and how a profile's accounts stand today.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use tollgate_admin_api::{NewProfile, Profile};

use super::client::AdminClient;
use super::keys::path_id;
use super::table::Table;
use super::{cell, dash, data, json_text};

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// Create a stored profile (a team keys, accounts and routes name).
    Create(CreateProfile),
    /// List stored profiles.
    List,
    /// Delete a stored profile; refused while a key, account or route
    /// still names it.
    Delete {
        /// Profile name.
        name: String,
    },
    /// Each account of a profile: tokens used, reserved and left today,
    /// state, and today's requests and errors.
    Stats {
        /// Profile name (e.g. `default`).
        profile: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CreateProfile {
    /// Profile name: letters, digits, '-', '_' or '.'.
    pub name: String,
    /// What the profile is for.
    #[arg(long)]
    pub description: Option<String>,
    /// How its requests pick an account when their route names no
    /// strategy: most_remaining, priority, weighted, round_robin,
    /// least_inflight or lowest_latency [default: the config file's, else
    /// most_remaining].
    #[arg(long)]
    pub strategy: Option<String>,
}

impl CreateProfile {
    /// The `POST /admin/v1/profiles` body with only the fields given.
    pub fn body(&self) -> NewProfile {
        NewProfile {
            name: self.name.clone(),
            description: self.description.clone(),
            strategy: self.strategy.clone(),
        }
    }
}

pub async fn run(
    client: &AdminClient,
    command: ProfilesCommand,
    json: bool,
) -> anyhow::Result<String> {
    let (answer, human) = match command {
        ProfilesCommand::Create(create) => {
            let body = serde_json::to_value(create.body())?;
            let answer = client.post("/profiles", &body).await?;
            let profile = read_profile(&answer)?;
            let human = format!(
                "created profile {} (strategy {})\n",
                dash(&profile.name),
                strategy_cell(&profile),
            );
            (answer, human)
        }
        ProfilesCommand::List => {
            let answer = client.get("/profiles", &[]).await?;
            let profiles = data(&answer)
                .iter()
                .map(read_profile)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let human = list_table(&profiles);
            (answer, human)
        }
        ProfilesCommand::Delete { name } => {
            let answer = client
                .delete(&format!("/profiles/{}", path_id(&name)))
                .await?;
            (answer, format!("deleted profile {name}\n"))
        }
        ProfilesCommand::Stats { profile } => {
            let answer = client
                .get(&format!("/profiles/{}/stats", path_id(&profile)), &[])
                .await?;
            let human = stats_table(&answer);
            (answer, human)
        }
    };
    Ok(if json { json_text(&answer) } else { human })
}

/// A profile as the edge answers it.
fn read_profile(answer: &Value) -> anyhow::Result<Profile> {
    Profile::deserialize(answer).context("the answer is not a profile")
}

/// A profile's stored strategy, or what an unset one means.
fn strategy_cell(profile: &Profile) -> String {
    match &profile.strategy {
        None => "configured".to_owned(),
        Some(strategy) => dash(strategy),
    }
}

/// `profiles list` as a table.
pub fn list_table(profiles: &[Profile]) -> String {
    let mut table = Table::new(&["NAME", "STRATEGY", "DESCRIPTION", "CREATED"]);
    for profile in profiles {
        table.push(vec![
            dash(&profile.name),
            strategy_cell(profile),
            dash(&profile.description),
            dash(&profile.created_at),
        ]);
    }
    table.render()
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
mod tests {
    use super::*;
    use crate::admin::tests::parse;
    use serde_json::json;

    #[test]
    fn create_sends_only_the_fields_given() {
        let args = parse(&["profiles", "create", "team-a", "--strategy", "round_robin"]).unwrap();
        let crate::admin::AdminCommand::Profiles(ProfilesCommand::Create(create)) = args.command
        else {
            panic!("not a profiles create");
        };
        assert_eq!(
            serde_json::to_value(create.body()).unwrap(),
            json!({"name": "team-a", "strategy": "round_robin"})
        );
        assert!(parse(&["profiles", "create"]).is_err());
        assert!(parse(&["profiles", "delete"]).is_err());
    }

    #[test]
    fn the_list_shows_an_unset_strategy_as_configured() {
        let profile = |name: &str, strategy: Option<&str>, description: &str| Profile {
            name: name.into(),
            description: description.into(),
            strategy: strategy.map(str::to_owned),
            created_at: "2026-01-01T00:00:00Z".into(),
            ..Profile::default()
        };
        let text = list_table(&[
            profile("team-a", None, ""),
            profile("team-b", Some("priority"), "Billing"),
        ]);
        assert!(text.contains("configured"), "{text}");
        assert!(
            text.contains("priority") && text.contains("Billing"),
            "{text}"
        );
    }

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
