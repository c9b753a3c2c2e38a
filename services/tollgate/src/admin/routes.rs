//! `tollgate admin routes`: create, list and delete routes (model aliases
//! mapped to deployments).

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::AdminClient;
use super::keys::{path_id, yes_no};
use super::table::Table;
use super::{cell, data, json_text};

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Create a route: an alias clients ask for, served by deployments.
    Create(CreateRoute),
    /// List routes.
    List,
    /// Delete a route; its alias is then an unknown model (unless an
    /// account lists a model of that name).
    Delete {
        /// Route id (`route_…`).
        id: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CreateRoute {
    /// The model name clients send.
    #[arg(long)]
    pub alias: String,
    /// A deployment as provider:model[:weight[:priority]] (repeat it, in
    /// order), e.g. openai:gpt-4o:3 or anthropic:claude-sonnet-4:1:-1.
    #[arg(
        long = "deployment",
        value_name = "PROVIDER:MODEL[:WEIGHT[:PRIORITY]]",
        required = true
    )]
    pub deployments: Vec<String>,
    /// The profile (team) the alias belongs to [server default: default].
    #[arg(long)]
    pub profile: Option<String>,
    /// How a request picks among the deployments' accounts: most_remaining,
    /// priority, weighted, round_robin, least_inflight or lowest_latency
    /// [default: the profile's].
    #[arg(long)]
    pub strategy: Option<String>,
    /// Aliases (or models) to try in order when no deployment can serve,
    /// comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub fallbacks: Vec<String>,
    /// Aliases to try in order when an attempt fails because the prompt is
    /// longer than the model's context window, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub context_window_fallbacks: Vec<String>,
    /// Aliases to try in order when the provider's content policy refuses
    /// an attempt, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub content_policy_fallbacks: Vec<String>,
    /// How long an attempt waits for the first byte of its answer (a
    /// stream's first event), in milliseconds [default: the router's].
    #[arg(long, value_name = "MS")]
    pub first_byte_timeout_ms: Option<u32>,
    /// The request's whole time, every attempt included, in milliseconds
    /// [default: the router's].
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u32>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// One `--deployment` value as its JSON object. The model is everything
/// between the provider and an optional trailing `:weight[:priority]`, so a
/// model name may hold colons (`ollama:llama3:8b` is model `llama3:8b`) as
/// long as what follows the last ones is not numeric.
pub fn deployment(text: &str) -> anyhow::Result<Value> {
    let (provider, rest) = text
        .split_once(':')
        .filter(|(provider, rest)| !provider.trim().is_empty() && !rest.trim().is_empty())
        .with_context(|| {
            format!("--deployment {text:?}: expected provider:model[:weight[:priority]]")
        })?;
    let mut parts: Vec<&str> = rest.split(':').collect();
    let mut numbers: Vec<&str> = Vec::new();
    while parts.len() > 1 && numbers.len() < 2 {
        let last = parts[parts.len() - 1];
        if last.parse::<i64>().is_err() {
            break;
        }
        numbers.insert(0, last);
        parts.pop();
    }
    let mut body = Map::new();
    body.insert("provider".into(), json!(provider.trim()));
    body.insert("model".into(), json!(parts.join(":")));
    if let Some(weight) = numbers.first() {
        let weight: u32 = weight
            .parse()
            .with_context(|| format!("--deployment {text:?}: weight must be a positive integer"))?;
        body.insert("weight".into(), json!(weight));
    }
    if let Some(priority) = numbers.get(1) {
        let priority: i32 = priority
            .parse()
            .with_context(|| format!("--deployment {text:?}: priority must be an integer"))?;
        body.insert("priority".into(), json!(priority));
    }
    Ok(Value::Object(body))
}

impl CreateRoute {
    /// The `POST /admin/v1/routes` body with only the fields given.
    pub fn body(&self) -> anyhow::Result<Value> {
        let mut body = Map::new();
        body.insert("alias".into(), json!(self.alias));
        let deployments = self
            .deployments
            .iter()
            .map(|text| deployment(text))
            .collect::<anyhow::Result<Vec<Value>>>()?;
        body.insert("deployments".into(), Value::Array(deployments));
        if let Some(profile) = &self.profile {
            body.insert("profile".into(), json!(profile));
        }
        if let Some(strategy) = &self.strategy {
            body.insert("strategy".into(), json!(strategy));
        }
        let lists = [
            ("fallbacks", &self.fallbacks),
            ("context_window_fallbacks", &self.context_window_fallbacks),
            ("content_policy_fallbacks", &self.content_policy_fallbacks),
        ];
        for (field, names) in lists {
            let names: Vec<&str> = names
                .iter()
                .map(|name| name.trim())
                .filter(|name| !name.is_empty())
                .collect();
            if !names.is_empty() {
                body.insert(field.into(), json!(names));
            }
        }
        let timeouts = [
            ("first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("deadline_ms", self.deadline_ms),
        ];
        for (field, ms) in timeouts {
            if let Some(ms) = ms {
                body.insert(field.into(), json!(ms));
            }
        }
        if self.disabled {
            body.insert("enabled".into(), json!(false));
        }
        Ok(Value::Object(body))
    }
}

pub async fn run(
    client: &AdminClient,
    command: RoutesCommand,
    json: bool,
) -> anyhow::Result<String> {
    let (answer, human) = match command {
        RoutesCommand::Create(create) => {
            let answer = client.post("/routes", &create.body()?).await?;
            let human = format!(
                "created route {} ({} in profile {} -> {})\n",
                cell(&answer["id"]),
                cell(&answer["alias"]),
                cell(&answer["profile"]),
                deployments_cell(&answer["deployments"]),
            );
            (answer, human)
        }
        RoutesCommand::List => {
            let answer = client.get("/routes", &[]).await?;
            let human = list_table(&answer);
            (answer, human)
        }
        RoutesCommand::Delete { id } => {
            let answer = client.delete(&format!("/routes/{}", path_id(&id))).await?;
            (answer, format!("deleted route {id}\n"))
        }
    };
    Ok(if json { json_text(&answer) } else { human })
}

/// Deployments as `provider:model` (with `*weight` and `^priority` when
/// not the defaults), comma-separated.
pub fn deployments_cell(deployments: &Value) -> String {
    let shown: Vec<String> = deployments
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|deployment| {
            let mut text = format!(
                "{}:{}",
                cell(&deployment["provider"]),
                cell(&deployment["model"])
            );
            match deployment["weight"].as_u64() {
                Some(1) | None => {}
                Some(weight) => text.push_str(&format!("*{weight}")),
            }
            match deployment["priority"].as_i64() {
                Some(0) | None => {}
                Some(priority) => text.push_str(&format!("^{priority}")),
            }
            text
        })
        .collect();
    if shown.is_empty() {
        "-".to_owned()
    } else {
        shown.join(",")
    }
}

/// `routes list` as a table.
pub fn list_table(answer: &Value) -> String {
    let mut table = Table::new(&[
        "ID",
        "ALIAS",
        "PROFILE",
        "DEPLOYMENTS",
        "STRATEGY",
        "FALLBACKS",
        "ENABLED",
    ]);
    for route in data(answer) {
        table.push(vec![
            cell(&route["id"]),
            cell(&route["alias"]),
            cell(&route["profile"]),
            deployments_cell(&route["deployments"]),
            cell(&route["strategy"]),
            cell(&route["fallbacks"]),
            yes_no(&route["enabled"]),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::super::AdminCommand;
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn deployments_parse_with_optional_weight_and_priority() {
        assert_eq!(
            deployment("mock:mock-echo").unwrap(),
            json!({"provider": "mock", "model": "mock-echo"})
        );
        assert_eq!(
            deployment("openai:gpt-4o:3").unwrap(),
            json!({"provider": "openai", "model": "gpt-4o", "weight": 3})
        );
        assert_eq!(
            deployment("ollama:llama3:8b:2:-1").unwrap(),
            json!({"provider": "ollama", "model": "llama3:8b", "weight": 2, "priority": -1})
        );
        assert!(deployment("mock").is_err());
        assert!(deployment(":x").is_err());
        assert!(deployment("openai:gpt-4o:-3").is_err());
    }

    #[test]
    fn create_sends_only_the_fields_given() {
        let args = parse(&[
            "routes",
            "create",
            "--alias",
            "smart",
            "--deployment",
            "mock:mock-echo",
            "--deployment",
            "openai:gpt-4o:2:1",
            "--fallbacks",
            "cheap,local",
            "--strategy",
            "weighted",
            "--context-window-fallbacks",
            "long, longer",
            "--content-policy-fallbacks",
            "lenient",
            "--first-byte-timeout-ms",
            "1500",
            "--deadline-ms",
            "30000",
        ])
        .unwrap();
        let AdminCommand::Routes(RoutesCommand::Create(create)) = args.command else {
            panic!("not routes create");
        };
        assert_eq!(
            create.body().unwrap(),
            json!({
                "alias": "smart",
                "deployments": [
                    {"provider": "mock", "model": "mock-echo"},
                    {"provider": "openai", "model": "gpt-4o", "weight": 2, "priority": 1}
                ],
                "fallbacks": ["cheap", "local"],
                "context_window_fallbacks": ["long", "longer"],
                "content_policy_fallbacks": ["lenient"],
                "first_byte_timeout_ms": 1500,
                "deadline_ms": 30000,
                "strategy": "weighted"
            })
        );
        assert!(parse(&["routes", "create", "--alias", "smart"]).is_err());
        let plain = parse(&["routes", "create", "--alias", "a", "--deployment", "mock:m"]).unwrap();
        let AdminCommand::Routes(RoutesCommand::Create(plain)) = plain.command else {
            panic!("not routes create");
        };
        assert_eq!(
            plain.body().unwrap(),
            json!({"alias": "a", "deployments": [{"provider": "mock", "model": "m"}]})
        );
        assert!(
            parse(&[
                "routes",
                "create",
                "--alias",
                "a",
                "--deployment",
                "mock:m",
                "--deadline-ms",
                "-5",
            ])
            .is_err()
        );
    }

    #[test]
    fn the_list_shows_deployments_compactly() {
        let answer = json!({"data": [{
            "id": "route_1", "alias": "smart", "profile": "default",
            "deployments": [
                {"provider": "mock", "model": "mock-echo", "weight": 1, "priority": 0},
                {"provider": "openai", "model": "gpt-4o", "weight": 3, "priority": -1}
            ],
            "strategy": null, "fallbacks": ["cheap"], "enabled": true
        }]});
        let text = list_table(&answer);
        assert!(text.contains("mock:mock-echo,openai:gpt-4o*3^-1"), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("route_1  smart"));
    }
}
