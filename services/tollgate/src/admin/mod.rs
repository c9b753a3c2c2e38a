//! `tollgate admin`: the operator's command line for the admin API (keys,
//! provider accounts, routes, profiles, usage, the audit log, the master-key
//! reseal), talking to a running edge over HTTP.
//!
//! Results go to stdout (tables, or the API's JSON with `--json`); errors
//! go to stderr through `main`, which exits non-zero.

pub mod accounts;
pub mod audit;
pub mod client;
pub mod keys;
pub mod profiles;
pub mod routes;
pub mod table;
pub mod usage;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use client::AdminClient;

/// The admin listener when none is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081";

/// Where the token is read from when neither `--token` nor its env is set.
pub const TOKEN_FILE: &str = "admin.token";

/// `tollgate admin [global flags] <command>`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API base URL (the edge's admin listener).
    #[arg(long, env = "TOLLGATE_ADMIN_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// Admin bearer token [default: the contents of <data-dir>/admin.token].
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Data directory holding admin.token, when no token is given.
    #[arg(
        long,
        env = "TOLLGATE_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Print the API's raw JSON instead of tables, for scripts.
    #[arg(long, env = "TOLLGATE_ADMIN_JSON", global = true)]
    pub json: bool,
    /// Who you are, for the audit log of admin writes [default: cli:$USER].
    #[arg(long, env = "TOLLGATE_ADMIN_ACTOR", global = true)]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Client API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Provider accounts.
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// Routes: model aliases served by ordered deployments.
    #[command(subcommand)]
    Routes(routes::RoutesCommand),
    /// Profiles (teams): create, list and delete them, and their accounts' standing today.
    #[command(subcommand)]
    Profiles(profiles::ProfilesCommand),
    /// Usage totals (requests, tokens, cost), grouped.
    Usage(usage::UsageArgs),
    /// The audit log of admin writes, newest first.
    Audit(audit::AuditArgs),
    /// Seal every account secret again under the current master key.
    ///
    /// A rotation: (1) restart every quota (or `all`) process with the new
    /// key in TOLLGATE_MASTER_KEY and the old one in
    /// TOLLGATE_MASTER_KEY_PREVIOUS; (2) run this command; (3) once it
    /// reports no unreadable secret, drop TOLLGATE_MASTER_KEY_PREVIOUS and
    /// restart.
    RotateMasterKey,
}

/// Runs one admin command and prints its result to stdout.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let token = resolve_token(args.token.as_deref(), &args.data_dir)?;
    let actor = args
        .actor
        .or_else(|| std::env::var("USER").ok().map(|user| format!("cli:{user}")));
    let client = AdminClient::new(&args.url, token).with_actor(actor);
    let output = match args.command {
        AdminCommand::Keys(command) => keys::run(&client, command, args.json).await?,
        AdminCommand::Accounts(command) => accounts::run(&client, command, args.json).await?,
        AdminCommand::Routes(command) => routes::run(&client, command, args.json).await?,
        AdminCommand::Profiles(command) => profiles::run(&client, command, args.json).await?,
        AdminCommand::Usage(usage) => usage::run(&client, usage, args.json).await?,
        AdminCommand::Audit(audit) => audit::list(&client, audit, args.json).await?,
        AdminCommand::RotateMasterKey => audit::rotate_master_key(&client, args.json).await?,
    };
    print!("{output}");
    Ok(())
}

/// The token given, else the first line of `<data_dir>/admin.token`.
pub fn resolve_token(given: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(token) = given.map(str::trim).filter(|token| !token.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = data_dir.join(TOKEN_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no admin token: pass --token, set TOLLGATE_ADMIN_TOKEN, or point --data-dir at a \
             directory with admin.token (could not read {})",
            path.display()
        )
    })?;
    let token = text.lines().next().unwrap_or_default().trim();
    anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
    Ok(token.to_owned())
}

/// Pretty JSON with a trailing newline, for `--json`.
pub fn json_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// A string as a table cell: `-` when empty.
pub fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// An optional value as a table cell: `-` when absent.
pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// `true` as `yes`, `false` as `no`.
pub fn flag(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// A JSON value as a table cell: strings bare; `null`, empty strings and
/// empty lists as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The `data` list of a list answer (empty when absent).
pub fn data(value: &Value) -> &[Value] {
    value["data"].as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    pub(crate) fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
        let mut full = vec!["tollgate", "admin"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full)?.command {
            Command::Admin(admin) => Ok(admin),
            other => panic!("not admin: {other:?}"),
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let args = parse(&["--url", "http://h:1", "keys", "list", "--json"]).unwrap();
        assert_eq!(args.url, "http://h:1");
        assert!(args.json);
        let args = parse(&["keys", "list", "--token", "t", "--data-dir", "/d"]).unwrap();
        assert_eq!(args.token.as_deref(), Some("t"));
        assert_eq!(args.data_dir, PathBuf::from("/d"));
        assert!(parse(&[]).is_err());
        assert!(parse(&["keys"]).is_err());
    }

    #[test]
    fn the_token_comes_from_the_flag_else_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_token(Some(" t1 "), dir.path()).unwrap(), "t1");
        let missing = resolve_token(None, dir.path()).unwrap_err().to_string();
        assert!(missing.contains("admin.token"), "{missing}");
        std::fs::write(dir.path().join(TOKEN_FILE), "tga-file\n").unwrap();
        assert_eq!(resolve_token(None, dir.path()).unwrap(), "tga-file");
        assert_eq!(resolve_token(Some(""), dir.path()).unwrap(), "tga-file");
        std::fs::write(dir.path().join(TOKEN_FILE), "\n").unwrap();
        assert!(resolve_token(None, dir.path()).is_err());
    }

    #[test]
    fn cells_show_json_values_plainly() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("a")), "a");
        assert_eq!(cell(&json!("")), "-");
        assert_eq!(cell(&json!(5)), "5");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(data(&json!({"data": [1, 2]})).len(), 2);
        assert!(data(&json!({})).is_empty());
    }
}
