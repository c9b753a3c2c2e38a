//! `tollgate admin keys`: create (the plaintext key is printed once), list,
//! revoke and disable client keys.

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::AdminClient;
use super::table::Table;
use super::{cell, data, json_text};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (shown only this once).
    Create(CreateKey),
    /// List keys (never the keys themselves: prefix and last four).
    List,
    /// Delete a key; requests with it fail at once.
    Revoke {
        /// Key id (`key_…`).
        id: String,
    },
    /// Disable a key without deleting it.
    Disable {
        /// Key id (`key_…`).
        id: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CreateKey {
    /// A name to recognise the key by.
    #[arg(long, env = "TOLLGATE_KEY_NAME")]
    pub name: String,
    /// The profile (team) the key routes to [server default: default].
    #[arg(long, env = "TOLLGATE_KEY_PROFILE")]
    pub profile: Option<String>,
    /// Models the key may use, comma-separated [default: any].
    #[arg(long, env = "TOLLGATE_KEY_MODELS", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Requests per minute.
    #[arg(long, env = "TOLLGATE_KEY_RPM")]
    pub rpm: Option<u32>,
    /// Tokens per minute.
    #[arg(long, env = "TOLLGATE_KEY_TPM")]
    pub tpm: Option<u32>,
    /// Tokens per UTC day.
    #[arg(long, env = "TOLLGATE_KEY_DAILY_TOKEN_BUDGET")]
    pub daily_token_budget: Option<u64>,
    /// Spend per UTC month in USD (priced from the upstream's usage).
    #[arg(long, env = "TOLLGATE_KEY_MONTHLY_BUDGET_USD")]
    pub monthly_budget_usd: Option<f64>,
    /// Expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
    #[arg(long, env = "TOLLGATE_KEY_EXPIRES_AT")]
    pub expires_at: Option<String>,
}

impl CreateKey {
    /// The `POST /admin/v1/keys` body: only the fields given.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name));
        if let Some(profile) = &self.profile {
            body.insert("profile".into(), json!(profile));
        }
        let models: Vec<&str> = self
            .models
            .iter()
            .map(|model| model.trim())
            .filter(|model| !model.is_empty())
            .collect();
        if !models.is_empty() {
            body.insert("models".into(), json!(models));
        }
        insert_some(&mut body, "rpm", self.rpm);
        insert_some(&mut body, "tpm", self.tpm);
        insert_some(&mut body, "daily_token_budget", self.daily_token_budget);
        insert_some(&mut body, "monthly_budget_usd", self.monthly_budget_usd);
        if let Some(expires_at) = &self.expires_at {
            body.insert("expires_at".into(), json!(expires_at));
        }
        Value::Object(body)
    }
}

fn insert_some<T: Into<Value>>(body: &mut Map<String, Value>, name: &str, value: Option<T>) {
    if let Some(value) = value {
        body.insert(name.to_owned(), value.into());
    }
}

pub async fn run(client: &AdminClient, command: KeysCommand, json: bool) -> anyhow::Result<String> {
    let (answer, human) = match command {
        KeysCommand::Create(create) => {
            let answer = client.post("/keys", &create.body()).await?;
            let human = created_text(&answer);
            (answer, human)
        }
        KeysCommand::List => {
            let answer = client.get("/keys", &[]).await?;
            let human = list_table(&answer);
            (answer, human)
        }
        KeysCommand::Revoke { id } => {
            let answer = client.delete(&format!("/keys/{}", path_id(&id))).await?;
            (answer, format!("revoked key {id}\n"))
        }
        KeysCommand::Disable { id } => {
            let body = json!({"enabled": false});
            let answer = client
                .patch(&format!("/keys/{}", path_id(&id)), &body)
                .await?;
            (answer, format!("disabled key {id}\n"))
        }
    };
    Ok(if json { json_text(&answer) } else { human })
}

/// An id as one URL path segment: characters that would change the path
/// (`/`, `?`, `#`, `%`, spaces) are percent-encoded.
pub fn path_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What `keys create` prints: the record, then the key on a line of its own.
pub fn created_text(answer: &Value) -> String {
    format!(
        "created key {} (name {}, profile {})\n\
         \n\
         API key (shown only now; store it safely, it cannot be read again):\n\
         \n\
         \x20   {}\n",
        cell(&answer["id"]),
        cell(&answer["name"]),
        cell(&answer["profile"]),
        cell(&answer["key"]),
    )
}

/// `keys list` as a table: id, name, profile, prefix…last4, enabled.
pub fn list_table(answer: &Value) -> String {
    let mut table = Table::new(&["ID", "NAME", "PROFILE", "KEY", "ENABLED"]);
    for key in data(answer) {
        table.push(vec![
            cell(&key["id"]),
            cell(&key["name"]),
            cell(&key["profile"]),
            format!("{}…{}", cell(&key["prefix"]), cell(&key["last4"])),
            yes_no(&key["enabled"]),
        ]);
    }
    table.render()
}

/// `true` as `yes`, anything else as `no`.
pub fn yes_no(value: &Value) -> String {
    if value.as_bool() == Some(true) {
        "yes".to_owned()
    } else {
        "no".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::AdminCommand;
    use super::super::tests::parse;
    use super::*;

    fn create(args: &[&str]) -> CreateKey {
        let mut full = vec!["keys", "create"];
        full.extend_from_slice(args);
        match parse(&full).unwrap().command {
            AdminCommand::Keys(KeysCommand::Create(create)) => create,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_sends_only_the_fields_given() {
        assert_eq!(create(&["--name", "ci"]).body(), json!({"name": "ci"}));
        let body = create(&[
            "--name",
            "team-a",
            "--profile",
            "research",
            "--models",
            "mock-echo, openai/gpt-4o,",
            "--rpm",
            "60",
            "--tpm",
            "1000",
            "--daily-token-budget",
            "20000000",
            "--monthly-budget-usd",
            "25.5",
            "--expires-at",
            "2027-01-01T00:00:00Z",
        ])
        .body();
        assert_eq!(
            body,
            json!({
                "name": "team-a", "profile": "research", "models": ["mock-echo", "openai/gpt-4o"],
                "rpm": 60, "tpm": 1000, "daily_token_budget": 20_000_000u64,
                "monthly_budget_usd": 25.5, "expires_at": "2027-01-01T00:00:00Z"
            })
        );
    }

    #[test]
    fn create_refuses_a_missing_name_or_a_bad_number() {
        assert!(parse(&["keys", "create"]).is_err());
        assert!(parse(&["keys", "create", "--name", "x", "--rpm", "-1"]).is_err());
        assert!(parse(&["keys", "revoke"]).is_err());
        assert!(matches!(
            parse(&["keys", "disable", "key_1"]).unwrap().command,
            AdminCommand::Keys(KeysCommand::Disable { id }) if id == "key_1"
        ));
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(path_id("key_01ABC-x.y~"), "key_01ABC-x.y~");
        assert_eq!(path_id("../a b?c"), "..%2Fa%20b%3Fc");
    }

    #[test]
    fn the_created_key_is_printed_on_its_own_line() {
        let text = created_text(&json!({
            "id": "key_1", "name": "ci", "profile": "default", "key": "tg-secretvalue"
        }));
        assert!(text.contains("created key key_1"));
        assert!(text.contains("shown only now"));
        assert!(text.lines().any(|line| line.trim() == "tg-secretvalue"));
    }

    #[test]
    fn the_list_shows_the_masked_key() {
        let text = list_table(&json!({"data": [
            {"id": "key_1", "name": "ci", "profile": "default", "prefix": "tg-abcd",
             "last4": "wxyz", "enabled": true},
            {"id": "key_22", "name": "old", "profile": "research", "prefix": "tg-efgh",
             "last4": "1234", "enabled": false}
        ]}));
        assert_eq!(
            text,
            "ID      NAME  PROFILE   KEY           ENABLED\n\
             key_1   ci    default   tg-abcd…wxyz  yes\n\
             key_22  old   research  tg-efgh…1234  no\n"
        );
    }
}
