//! `tollgate admin accounts`: add, list, show, disable and enable provider
//! accounts, with each one's state and activity. A secret is only ever read from an environment variable or
//! stdin, never from a flag value (which shell history and `ps` would keep).

use std::io::BufRead;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_admin_api::{Account, AccountPatch, NewAccount};

use super::client::AdminClient;
use super::keys::{path_id, yes_no};
use super::table::Table;
use super::{cell, dash, data, flag, json_text, or_dash};

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add a provider account.
    Add(AddAccount),
    /// List accounts with today's token use, state and activity.
    List,
    /// Show one account: its settings, state and activity.
    Get {
        /// Account id (`acct_…`).
        id: String,
    },
    /// Stop routing requests to an account.
    Disable {
        /// Account id (`acct_…`).
        id: String,
    },
    /// Route requests to an account again.
    Enable {
        /// Account id (`acct_…`).
        id: String,
    },
    /// Make a minimal real call (one completion token) with an account's
    /// credential; its tokens count on the account, on no client key.
    Test {
        /// Account id (`acct_…`).
        id: String,
        /// Model to call [default: the account's first model].
        #[arg(long)]
        model: Option<String>,
    },
    /// Raise each account's tokens-used-today counter to the usage store's
    /// total (after the counters lost writes, e.g. a Redis flush).
    Sync,
    /// End an account's cooldown, close its circuit and enable it again.
    Reset {
        /// Account id (`acct_…`).
        id: String,
    },
    /// Replace an account's provider settings (or remove them).
    Settings {
        /// Account id (`acct_…`).
        id: String,
        /// A setting, `KEY=VALUE`, repeated for each; `deployments.MODEL=NAME`
        /// maps a model to an Azure deployment. The ones given replace the
        /// account's settings whole.
        #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = Setting::parse, required_unless_present = "clear")]
        settings: Vec<Setting>,
        /// Remove every setting.
        #[arg(long, conflicts_with = "settings")]
        clear: bool,
    },
}

/// One `--setting KEY=VALUE`: a top-level key, or `KEY.NAME` for an entry
/// of an object setting (`deployments.gpt-4o=prod-gpt-4o`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    /// The entry name of `KEY.NAME` (everything after the first dot).
    pub entry: Option<String>,
    pub value: String,
}

impl Setting {
    /// Reads `KEY=VALUE`; what the key means is the server's to check.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (path, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
        let (key, entry) = match path.split_once('.') {
            Some((key, entry)) => (key, Some(entry.to_owned())),
            None => (path, None),
        };
        if key.is_empty() || entry.as_deref() == Some("") {
            return Err(format!("{text:?} has an empty key"));
        }
        Ok(Self {
            key: key.to_owned(),
            entry,
            value: value.to_owned(),
        })
    }

    /// The settings object of `settings`, later ones winning.
    pub fn object(settings: &[Setting]) -> Map<String, Value> {
        let mut object = Map::new();
        for setting in settings {
            let value = Value::from(setting.value.as_str());
            match &setting.entry {
                None => {
                    object.insert(setting.key.clone(), value);
                }
                Some(entry) => {
                    let slot = object
                        .entry(setting.key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    if let Value::Object(entries) = slot {
                        entries.insert(entry.clone(), value);
                    }
                }
            }
        }
        object
    }
}

#[derive(Debug, Clone, Args)]
pub struct AddAccount {
    /// Provider: openai, openai_compatible, gemini, openrouter, ollama, rovodev, mock, …
    #[arg(long, env = "TOLLGATE_ACCOUNT_PROVIDER")]
    pub provider: String,
    /// A name to recognise the account by.
    #[arg(long, env = "TOLLGATE_ACCOUNT_NAME")]
    pub name: String,
    /// Read the provider secret from this environment variable.
    #[arg(
        long,
        env = "TOLLGATE_ACCOUNT_SECRET_ENV",
        conflicts_with = "secret_stdin"
    )]
    pub secret_env: Option<String>,
    /// Read the provider secret from the first line of stdin.
    #[arg(long, env = "TOLLGATE_ACCOUNT_SECRET_STDIN")]
    pub secret_stdin: bool,
    /// Upstream base URL (e.g. http://127.0.0.1:8000/v1).
    #[arg(long, env = "TOLLGATE_ACCOUNT_BASE_URL")]
    pub base_url: Option<String>,
    /// The login the secret belongs to (Rovo Dev: the Atlassian email).
    #[arg(long, env = "TOLLGATE_ACCOUNT_EMAIL")]
    pub email: Option<String>,
    /// Models the account serves, comma-separated [default: any of its provider's,
    /// when asked as provider/model].
    #[arg(long, env = "TOLLGATE_ACCOUNT_MODELS", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Tokens the account may use per UTC day.
    #[arg(long, env = "TOLLGATE_ACCOUNT_DAILY_TOKEN_LIMIT")]
    pub daily_token_limit: Option<u64>,
    /// The profile (team) the account belongs to [server default: default].
    #[arg(long, env = "TOLLGATE_ACCOUNT_PROFILE")]
    pub profile: Option<String>,
    /// Selection priority.
    #[arg(long, env = "TOLLGATE_ACCOUNT_PRIORITY", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Selection weight.
    #[arg(long, env = "TOLLGATE_ACCOUNT_WEIGHT")]
    pub weight: Option<u32>,
    /// Reserve prompts at their worst case (one token per byte), so the
    /// daily limit holds even when an estimate is low [server default: on
    /// for rovodev, off for the others].
    #[arg(long, env = "TOLLGATE_ACCOUNT_STRICT_CAP")]
    pub strict_cap: Option<bool>,
    /// Probe the account while it cools down or its circuit is open, and
    /// put it back in service when a probe succeeds (each probe is a real,
    /// paid call) [server default: off].
    #[arg(long, env = "TOLLGATE_ACCOUNT_HEALTH_PROBE")]
    pub health_probe: Option<bool>,
    /// A provider setting, `KEY=VALUE`, repeated for each (azure_openai:
    /// `api_version=2024-10-21`, `deployments.MODEL=DEPLOYMENT`;
    /// openai_compatible: `preset=vllm`; openrouter: `http_referer=URL`,
    /// `x_title=NAME`).
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = Setting::parse)]
    pub settings: Vec<Setting>,
}

/// Where the secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    None,
    Env(String),
    Stdin,
}

impl AddAccount {
    pub fn secret_source(&self) -> SecretSource {
        match (&self.secret_env, self.secret_stdin) {
            (Some(var), _) => SecretSource::Env(var.clone()),
            (None, true) => SecretSource::Stdin,
            (None, false) => SecretSource::None,
        }
    }

    /// The `POST /admin/v1/accounts` body with `secret` (if any) and only
    /// the fields given.
    pub fn body(&self, secret: Option<String>) -> NewAccount {
        NewAccount {
            provider: self.provider.clone(),
            name: self.name.clone(),
            email: self.email.clone().unwrap_or_default(),
            secret: secret.unwrap_or_default(),
            base_url: self.base_url.clone().unwrap_or_default(),
            profile: self.profile.clone(),
            models: self
                .models
                .iter()
                .map(|model| model.trim())
                .filter(|model| !model.is_empty())
                .map(str::to_owned)
                .collect(),
            daily_token_limit: self.daily_token_limit,
            priority: self.priority,
            weight: self.weight,
            strict_cap: self.strict_cap,
            health_probe: self.health_probe,
            settings: (!self.settings.is_empty()).then(|| Setting::object(&self.settings)),
            // What the CLI has no flag for is left out of the body.
            ..NewAccount::default()
        }
    }
}

/// The secret from its source: `read_env` looks a variable up, `stdin`
/// gives the input. Trailing line breaks are dropped; empty is an error.
pub fn read_secret(
    source: &SecretSource,
    read_env: impl Fn(&str) -> Option<String>,
    stdin: impl BufRead,
) -> anyhow::Result<Option<String>> {
    let secret = match source {
        SecretSource::None => return Ok(None),
        SecretSource::Env(var) => read_env(var)
            .with_context(|| format!("--secret-env: environment variable {var} is not set"))?,
        SecretSource::Stdin => {
            let mut line = String::new();
            let mut stdin = stdin;
            stdin
                .read_line(&mut line)
                .context("--secret-stdin: could not read stdin")?;
            line
        }
    };
    let secret = secret.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!secret.trim().is_empty(), "the secret is empty");
    Ok(Some(secret))
}

pub async fn run(
    client: &AdminClient,
    command: AccountsCommand,
    json: bool,
) -> anyhow::Result<String> {
    let (answer, human) = match command {
        AccountsCommand::Add(add) => {
            let secret = read_secret(
                &add.secret_source(),
                |var| std::env::var(var).ok(),
                std::io::stdin().lock(),
            )?;
            let body = serde_json::to_value(add.body(secret))?;
            let answer = client.post("/accounts", &body).await?;
            let account = read_account(&answer)?;
            let human = format!(
                "added account {} ({} {}, secret {})\n",
                dash(&account.id),
                dash(&account.provider),
                dash(&account.name),
                dash(&account.secret_mask),
            );
            (answer, human)
        }
        AccountsCommand::List => {
            let answer = client.get("/accounts", &[]).await?;
            let accounts = data(&answer)
                .iter()
                .map(read_account)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let human = list_table(&accounts);
            (answer, human)
        }
        AccountsCommand::Get { id } => {
            let answer = client
                .get(&format!("/accounts/{}", path_id(&id)), &[])
                .await?;
            let human = detail(&read_account(&answer)?);
            (answer, human)
        }
        AccountsCommand::Disable { id } => {
            let answer = set_enabled(client, &id, false).await?;
            (answer, format!("disabled account {id}\n"))
        }
        AccountsCommand::Enable { id } => {
            let answer = set_enabled(client, &id, true).await?;
            (answer, format!("enabled account {id}\n"))
        }
        AccountsCommand::Test { id, model } => {
            let body = model.map_or_else(|| json!({}), |model| json!({ "model": model }));
            let path = format!("/accounts/{}/test", path_id(&id));
            let answer = client.post(&path, &body).await?;
            let human = test_line(&id, &answer);
            (answer, human)
        }
        AccountsCommand::Sync => {
            let answer = client.post("/accounts/sync", &json!({})).await?;
            let human = sync_table(&answer);
            (answer, human)
        }
        AccountsCommand::Reset { id } => {
            let path = format!("/accounts/{}/reset", path_id(&id));
            let answer = client.post(&path, &json!({})).await?;
            let human = format!("reset account {id}: {}\n", state(&read_account(&answer)?));
            (answer, human)
        }
        AccountsCommand::Settings {
            id,
            settings,
            clear,
        } => {
            let patch = AccountPatch {
                settings: Some((!clear).then(|| Setting::object(&settings))),
                ..AccountPatch::default()
            };
            let path = format!("/accounts/{}", path_id(&id));
            let answer = client.patch(&path, &serde_json::to_value(patch)?).await?;
            let account = read_account(&answer)?;
            let human = format!("settings of account {id}: {}\n", settings_text(&account));
            (answer, human)
        }
    };
    Ok(if json { json_text(&answer) } else { human })
}

/// An account as the edge answers it.
fn read_account(answer: &Value) -> anyhow::Result<Account> {
    Account::deserialize(answer).context("the answer is not an account")
}

async fn set_enabled(client: &AdminClient, id: &str, enabled: bool) -> anyhow::Result<Value> {
    let path = format!("/accounts/{}", path_id(id));
    let patch = AccountPatch {
        enabled: Some(Some(enabled)),
        ..AccountPatch::default()
    };
    Ok(client.patch(&path, &serde_json::to_value(patch)?).await?)
}

/// `accounts list` as a table, with today's tokens against the daily limit.
pub fn list_table(accounts: &[Account]) -> String {
    let mut table = Table::new(&[
        "ID",
        "PROVIDER",
        "NAME",
        "PROFILE",
        "MODELS",
        "SECRET",
        "TOKENS TODAY",
        "ENABLED",
        "STATE",
        "OK/ERR TODAY",
        "LATENCY",
        "LAST ERROR",
    ]);
    for account in accounts {
        table.push(vec![
            dash(&account.id),
            dash(&account.provider),
            dash(&account.name),
            dash(&account.profile),
            dash(&account.models.join(",")),
            dash(&account.secret_mask),
            tokens_today(account),
            flag(account.enabled),
            state(account),
            outcomes_today(account),
            latency(account),
            dash(account.last_error.as_deref().unwrap_or_default()),
        ]);
    }
    table.render()
}

/// `accounts get`: one field a line.
pub fn detail(account: &Account) -> String {
    let last_error = match &account.last_error {
        Some(class) => format!("{class} at {}", or_dash(account.last_error_at.as_deref())),
        None => "-".to_owned(),
    };
    let rows = [
        ("id", dash(&account.id)),
        ("provider", dash(&account.provider)),
        ("name", dash(&account.name)),
        ("profile", dash(&account.profile)),
        ("models", dash(&account.models.join(","))),
        ("secret", dash(&account.secret_mask)),
        ("settings", settings_text(account)),
        ("priority", account.priority.to_string()),
        ("weight", account.weight.to_string()),
        ("enabled", flag(account.enabled)),
        ("state", state(account)),
        ("tokens today", tokens_today(account)),
        ("ok/err today", outcomes_today(account)),
        ("latency ewma", latency(account)),
        ("last used", or_dash(account.last_used_at.as_deref())),
        ("last error", last_error),
    ];
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(name, value)| format!("{name:<width$}  {value}\n"))
        .collect()
}

/// The settings as compact JSON; `-` when there are none.
pub fn settings_text(account: &Account) -> String {
    if account.settings.is_empty() {
        "-".to_owned()
    } else {
        Value::Object(account.settings.clone()).to_string()
    }
}

/// Successes and errors this UTC day, `12 / 3`.
pub fn outcomes_today(account: &Account) -> String {
    format!("{} / {}", account.successes_today, account.errors_today)
}

/// The latency average in milliseconds, one decimal; `-` before the first.
pub fn latency(account: &Account) -> String {
    account
        .latency_ewma_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
}

/// `accounts sync` as a table of every account's counter before and after,
/// then one of every client key's with usage today (when there is one),
/// each followed by a line saying how many changed.
pub fn sync_table(answer: &Value) -> String {
    let accounts = data(answer);
    let keys = answer["keys"].as_array().map_or(&[][..], Vec::as_slice);
    let mut text = format!(
        "{}{} of {} account counters raised for {}\n",
        counters_table(accounts, "ID", "account_id"),
        cell(&answer["changed"]),
        accounts.len(),
        cell(&answer["day"]),
    );
    if !keys.is_empty() {
        text.push('\n');
        text.push_str(&counters_table(keys, "KEY", "key_id"));
    }
    text.push_str(&format!(
        "{} of {} key counters raised\n",
        cell(&answer["keys_changed"]),
        keys.len(),
    ));
    text
}

/// One row per synced counter; `id_field` holds its account or key id,
/// shown under `id_header`.
fn counters_table(entries: &[Value], id_header: &str, id_field: &str) -> String {
    let mut table = Table::new(&[
        id_header,
        "COUNTER BEFORE",
        "RECOMPUTED",
        "COUNTER AFTER",
        "CHANGED",
    ]);
    for entry in entries {
        table.push(vec![
            cell(&entry[id_field]),
            cell(&entry["counter_before"]),
            cell(&entry["recomputed"]),
            cell(&entry["counter_after"]),
            yes_no(&entry["changed"]),
        ]);
    }
    table.render()
}

/// `accounts test` in one line: ok or the failure, with model and latency.
pub fn test_line(id: &str, answer: &Value) -> String {
    let timing = format!(
        "model {}, {} ms",
        cell(&answer["model"]),
        cell(&answer["latency_ms"])
    );
    if answer["ok"].as_bool() == Some(true) {
        format!("account {id}: ok ({timing})\n")
    } else {
        format!(
            "account {id}: failed with status {} ({timing}): {}\n",
            cell(&answer["status"]),
            cell(&answer["error"]["message"]),
        )
    }
}

/// `used / limit` (or `used / unlimited`), with reserved tokens when any.
pub fn tokens_today(account: &Account) -> String {
    let used = account.tokens_used_today;
    let limit = account
        .daily_token_limit
        .map_or_else(|| "unlimited".to_owned(), |limit| limit.to_string());
    match account.tokens_reserved {
        0 => format!("{used} / {limit}"),
        reserved => format!("{used} / {limit} (+{reserved} reserved)"),
    }
}

/// `ok`, `disabled` with the recorded reason, or `cooling_down` /
/// `circuit_open` with until when.
pub fn state(account: &Account) -> String {
    if !account.enabled {
        return match account.disabled_reason.as_deref() {
            Some(reason) if !reason.is_empty() => format!("disabled: {reason}"),
            _ => "disabled".to_owned(),
        };
    }
    let until = |name: &str, at: &Option<String>| match at {
        Some(at) => format!("{name} until {at}"),
        None => name.to_owned(),
    };
    match account.state.as_str() {
        "cooling_down" => until("cooling_down", &account.cooling_down_until),
        "circuit_open" => until("circuit_open", &account.circuit_open_until),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::AdminCommand;
    use super::super::tests::parse;
    use super::*;

    fn add(args: &[&str]) -> Result<AddAccount, clap::Error> {
        let mut full = vec!["accounts", "add"];
        full.extend_from_slice(args);
        match parse(&full)?.command {
            AdminCommand::Accounts(AccountsCommand::Add(add)) => Ok(add),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_secret_cannot_be_a_flag_value_and_has_one_source() {
        let base = ["--provider", "openai", "--name", "main"];
        assert_eq!(add(&base).unwrap().secret_source(), SecretSource::None);
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            add(&args)
        };
        assert_eq!(
            with(&["--secret-env", "OPENAI_KEY"])
                .unwrap()
                .secret_source(),
            SecretSource::Env("OPENAI_KEY".into())
        );
        assert_eq!(
            with(&["--secret-stdin"]).unwrap().secret_source(),
            SecretSource::Stdin
        );
        assert!(with(&["--secret-env", "A", "--secret-stdin"]).is_err());
        assert!(with(&["--secret", "sk-plain"]).is_err());
        assert!(add(&["--name", "x"]).is_err());
    }

    #[test]
    fn settings_flags_build_the_settings_object() {
        let account = add(&[
            "--provider",
            "azure_openai",
            "--name",
            "azure",
            "--setting",
            "api_version=2024-10-21",
            "--setting",
            "deployments.gpt-4.1=prod-gpt41",
            "--setting",
            "deployments.gpt-4o=prod-4o",
        ])
        .unwrap();
        let body = serde_json::to_value(account.body(None)).unwrap();
        assert_eq!(
            body["settings"],
            json!({
                "api_version": "2024-10-21",
                "deployments": {"gpt-4.1": "prod-gpt41", "gpt-4o": "prod-4o"}
            })
        );
        let plain = add(&["--provider", "openai", "--name", "o"]).unwrap();
        assert!(
            serde_json::to_value(plain.body(None))
                .unwrap()
                .get("settings")
                .is_none()
        );
        for bad in ["no-equals", "=v", ".x=v", "deployments.=v"] {
            assert!(Setting::parse(bad).is_err(), "{bad}");
        }
        // A value may hold `=` and `.`.
        assert_eq!(
            Setting::parse("http_referer=https://a.example/?x=1").unwrap(),
            Setting {
                key: "http_referer".into(),
                entry: None,
                value: "https://a.example/?x=1".into(),
            }
        );
    }

    #[test]
    fn the_settings_command_replaces_or_clears() {
        let parsed =
            parse(&["accounts", "settings", "acct_1", "--setting", "preset=groq"]).unwrap();
        let AdminCommand::Accounts(AccountsCommand::Settings {
            id,
            settings,
            clear,
        }) = parsed.command
        else {
            panic!("not accounts settings");
        };
        assert_eq!((id.as_str(), clear), ("acct_1", false));
        assert_eq!(
            Setting::object(&settings),
            json!({"preset": "groq"}).as_object().cloned().unwrap()
        );
        assert!(parse(&["accounts", "settings", "acct_1", "--clear"]).is_ok());
        assert!(parse(&["accounts", "settings", "acct_1"]).is_err());
        assert!(
            parse(&[
                "accounts",
                "settings",
                "acct_1",
                "--clear",
                "--setting",
                "a=b"
            ])
            .is_err()
        );
    }

    #[test]
    fn secrets_are_read_from_env_or_the_first_stdin_line() {
        let env = |var: &str| (var == "K").then(|| "sk-env\n".to_owned());
        let none: &[u8] = b"";
        assert_eq!(
            read_secret(&SecretSource::Env("K".into()), env, none).unwrap(),
            Some("sk-env".into())
        );
        let missing = read_secret(&SecretSource::Env("NOPE".into()), env, none).unwrap_err();
        assert!(missing.to_string().contains("NOPE"));
        let input: &[u8] = b"sk-stdin\r\nignored\n";
        assert_eq!(
            read_secret(&SecretSource::Stdin, env, input).unwrap(),
            Some("sk-stdin".into())
        );
        assert!(read_secret(&SecretSource::Stdin, env, none).is_err());
        assert_eq!(read_secret(&SecretSource::None, env, none).unwrap(), None);
    }

    #[test]
    fn add_sends_only_the_fields_given() {
        let account = add(&[
            "--provider",
            "openai_compatible",
            "--name",
            "local",
            "--base-url",
            "http://127.0.0.1:8000/v1",
            "--models",
            "a,b",
            "--daily-token-limit",
            "20000000",
            "--profile",
            "research",
            "--priority",
            "-2",
            "--weight",
            "3",
            "--health-probe",
            "true",
        ])
        .unwrap();
        let body = |account: &AddAccount, secret: Option<&str>| {
            serde_json::to_value(account.body(secret.map(str::to_owned))).unwrap()
        };
        assert_eq!(
            body(&account, Some("sk-x")),
            json!({
                "provider": "openai_compatible", "name": "local", "secret": "sk-x",
                "base_url": "http://127.0.0.1:8000/v1", "models": ["a", "b"],
                "daily_token_limit": 20_000_000u64, "profile": "research",
                "priority": -2, "weight": 3, "health_probe": true
            })
        );
        let bare = add(&["--provider", "mock", "--name", "m"]).unwrap();
        assert_eq!(body(&bare, None), json!({"provider": "mock", "name": "m"}));
        let rovo = add(&[
            "--provider",
            "rovodev",
            "--name",
            "rovo-1",
            "--email",
            "dev@example.com",
        ])
        .unwrap();
        assert_eq!(
            body(&rovo, Some("token")),
            json!({
                "provider": "rovodev", "name": "rovo-1", "secret": "token",
                "email": "dev@example.com"
            })
        );
    }

    #[test]
    fn sync_shows_each_counter_and_how_many_changed() {
        assert!(matches!(
            parse(&["accounts", "sync"]).unwrap().command,
            AdminCommand::Accounts(AccountsCommand::Sync)
        ));
        let text = sync_table(&json!({"day": "2024-01-01", "changed": 1, "data": [
            {"account_id": "acct_1", "counter_before": 0, "recomputed": 120,
             "counter_after": 120, "changed": true},
            {"account_id": "acct_2", "counter_before": 50, "recomputed": 40,
             "counter_after": 50, "changed": false}
        ], "keys_changed": 0, "keys": [
            {"key_id": "key_1", "counter_before": 90, "recomputed": 90,
             "counter_after": 90, "changed": false}
        ]}));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID      COUNTER BEFORE"), "{text}");
        let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(lines[1]), "acct_1 0 120 120 yes");
        assert_eq!(words(lines[2]), "acct_2 50 40 50 no");
        assert_eq!(lines[3], "1 of 2 account counters raised for 2024-01-01");
        assert_eq!(lines[4], "");
        assert!(lines[5].starts_with("KEY    COUNTER BEFORE"), "{text}");
        assert_eq!(words(lines[6]), "key_1 90 90 90 no");
        assert_eq!(lines[7], "0 of 1 key counters raised");
    }

    #[test]
    fn sync_without_key_usage_says_so_in_one_line() {
        let text = sync_table(&json!({"day": "2024-01-01", "changed": 0, "data": [],
            "keys_changed": 0, "keys": []}));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"0 of 0 key counters raised"), "{text}");
        assert!(!text.contains("KEY "), "{text}");
    }

    #[test]
    fn the_list_shows_use_against_the_limit_and_the_state() {
        let text = list_table(&[
            Account {
                id: "acct_1".into(),
                provider: "openai".into(),
                name: "main".into(),
                profile: "default".into(),
                models: vec!["gpt-4o".into()],
                secret_mask: "sk-…abcd".into(),
                daily_token_limit: Some(1000),
                tokens_used_today: 250,
                enabled: true,
                state: "ok".into(),
                ..Account::default()
            },
            Account {
                id: "acct_2".into(),
                provider: "mock".into(),
                name: "m".into(),
                profile: "default".into(),
                tokens_reserved: 10,
                disabled_reason: Some("upstream 401".into()),
                state: "disabled".into(),
                ..Account::default()
            },
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID      PROVIDER"));
        assert!(lines[1].contains("sk-…abcd"));
        assert!(lines[1].contains("250 / 1000"));
        assert!(lines[1].contains("yes      ok"), "{}", lines[1]);
        assert!(lines[2].contains("0 / unlimited (+10 reserved)"));
        assert!(lines[2].contains("disabled: upstream 401"), "{}", lines[2]);
    }

    fn busy() -> Account {
        Account {
            id: "acct_1".into(),
            provider: "openai".into(),
            name: "main".into(),
            profile: "default".into(),
            models: vec!["gpt-4o".into()],
            secret_mask: "sk-…abcd".into(),
            daily_token_limit: Some(1000),
            tokens_used_today: 250,
            enabled: true,
            state: "ok".into(),
            weight: 1,
            successes_today: 12,
            errors_today: 3,
            latency_ewma_ms: Some(412.345),
            last_used_at: Some("2026-12-03T13:00:00Z".into()),
            last_error: Some("timeout".into()),
            last_error_at: Some("2026-12-03T12:59:00Z".into()),
            ..Account::default()
        }
    }

    #[test]
    fn answers_are_read_as_accounts() {
        let answer = serde_json::to_value(busy()).unwrap();
        assert_eq!(read_account(&answer).unwrap(), busy());
        assert!(read_account(&json!({"id": "acct_1"})).is_err());
    }

    #[test]
    fn the_list_shows_the_activity() {
        let idle = Account {
            latency_ewma_ms: None,
            last_error: None,
            last_error_at: None,
            last_used_at: None,
            successes_today: 0,
            errors_today: 0,
            ..busy()
        };
        let text = list_table(&[busy(), idle]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("OK/ERR TODAY  LATENCY   LAST ERROR"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("12 / 3        412.3 ms  timeout"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with("0 / 0         -         -"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn get_shows_one_field_a_line() {
        let text = detail(&busy());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id            acct_1");
        assert!(lines.contains(&"ok/err today  12 / 3"), "{text}");
        assert!(lines.contains(&"latency ewma  412.3 ms"), "{text}");
        assert!(
            lines.contains(&"last used     2026-12-03T13:00:00Z"),
            "{text}"
        );
        assert!(
            lines.contains(&"last error    timeout at 2026-12-03T12:59:00Z"),
            "{text}"
        );
    }
}
