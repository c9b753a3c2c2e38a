//! `tollgate admin keys`: create (the plaintext key is printed once), list,
//! revoke and disable client keys.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use tollgate_admin_api::{CreatedKey, Key, KeyPatch, NewKey};

use super::client::AdminClient;
use super::table::Table;
use super::{dash, data, flag, json_text};

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
    pub fn body(&self) -> NewKey {
        NewKey {
            name: self.name.clone(),
            profile: self.profile.clone(),
            models: self
                .models
                .iter()
                .map(|model| model.trim())
                .filter(|model| !model.is_empty())
                .map(str::to_owned)
                .collect(),
            rpm: self.rpm,
            tpm: self.tpm,
            daily_token_budget: self.daily_token_budget,
            monthly_budget_usd: self.monthly_budget_usd,
            expires_at: self.expires_at.clone().map(Value::from),
            // What the CLI has no flag for is left out of the body.
            ..NewKey::default()
        }
    }
}

pub async fn run(client: &AdminClient, command: KeysCommand, json: bool) -> anyhow::Result<String> {
    let (answer, human) = match command {
        KeysCommand::Create(create) => {
            let body = serde_json::to_value(create.body())?;
            let answer = client.post("/keys", &body).await?;
            let created =
                CreatedKey::deserialize(&answer).context("the answer is not a created key")?;
            let human = created_text(&created);
            (answer, human)
        }
        KeysCommand::List => {
            let answer = client.get("/keys", &[]).await?;
            let keys = data(&answer)
                .iter()
                .map(|key| Key::deserialize(key).context("the answer is not a key"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let human = list_table(&keys);
            (answer, human)
        }
        KeysCommand::Revoke { id } => {
            let answer = client.delete(&format!("/keys/{}", path_id(&id))).await?;
            (answer, format!("revoked key {id}\n"))
        }
        KeysCommand::Disable { id } => {
            let patch = KeyPatch {
                enabled: Some(Some(false)),
                ..KeyPatch::default()
            };
            let answer = client
                .patch(
                    &format!("/keys/{}", path_id(&id)),
                    &serde_json::to_value(patch)?,
                )
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
pub fn created_text(created: &CreatedKey) -> String {
    format!(
        "created key {} (name {}, profile {})\n\
         \n\
         API key (shown only now; store it safely, it cannot be read again):\n\
         \n\
         \x20   {}\n",
        dash(&created.record.id),
        dash(&created.record.name),
        dash(&created.record.profile),
        dash(&created.key),
    )
}

/// `keys list` as a table: id, name, profile, prefix…last4, enabled.
pub fn list_table(keys: &[Key]) -> String {
    let mut table = Table::new(&["ID", "NAME", "PROFILE", "KEY", "ENABLED"]);
    for key in keys {
        table.push(vec![
            dash(&key.id),
            dash(&key.name),
            dash(&key.profile),
            format!("{}…{}", dash(&key.prefix), dash(&key.last4)),
            flag(key.enabled),
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
    use serde_json::json;

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
        let json = |body: NewKey| serde_json::to_value(body).unwrap();
        assert_eq!(
            json(create(&["--name", "ci"]).body()),
            json!({"name": "ci"})
        );
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
            json(body),
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
        let text = created_text(&CreatedKey {
            record: Key {
                id: "key_1".into(),
                name: "ci".into(),
                profile: "default".into(),
                ..Key::default()
            },
            key: "tg-secretvalue".into(),
        });
        assert!(text.contains("created key key_1"));
        assert!(text.contains("shown only now"));
        assert!(text.lines().any(|line| line.trim() == "tg-secretvalue"));
    }

    #[test]
    fn the_list_shows_the_masked_key() {
        let key = |id: &str, name: &str, profile: &str, prefix: &str, last4: &str| Key {
            id: id.into(),
            name: name.into(),
            profile: profile.into(),
            prefix: prefix.into(),
            last4: last4.into(),
            ..Key::default()
        };
        let text = list_table(&[
            Key {
                enabled: true,
                ..key("key_1", "ci", "default", "tg-abcd", "wxyz")
            },
            key("key_22", "old", "research", "tg-efgh", "1234"),
        ]);
        assert_eq!(
            text,
            "ID      NAME  PROFILE   KEY           ENABLED\n\
             key_1   ci    default   tg-abcd…wxyz  yes\n\
             key_22  old   research  tg-efgh…1234  no\n"
        );
    }
}
