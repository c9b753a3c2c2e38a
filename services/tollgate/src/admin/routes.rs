//! `tollgate admin routes`: create, list and delete routes (model aliases
//! mapped to deployments).

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use tollgate_admin_api::{Deployment, NewRoute, Route};

use super::client::AdminClient;
use super::keys::path_id;
use super::table::Table;
use super::{dash, data, flag, json_text};

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

/// One `--deployment` value as a deployment. The model is everything
/// between the provider and an optional trailing `:weight[:priority]`, so a
/// model name may hold colons (`ollama:llama3:8b` is model `llama3:8b`) as
/// long as what follows the last ones is not numeric.
pub fn deployment(text: &str) -> anyhow::Result<Deployment> {
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
    let weight = numbers
        .first()
        .map(|weight| weight.parse::<u32>())
        .transpose()
        .with_context(|| format!("--deployment {text:?}: weight must be a positive integer"))?;
    let priority = numbers
        .get(1)
        .map(|priority| priority.parse::<i32>())
        .transpose()
        .with_context(|| format!("--deployment {text:?}: priority must be an integer"))?;
    Ok(Deployment {
        provider: provider.trim().to_owned(),
        model: parts.join(":"),
        weight,
        priority,
    })
}

/// Names given in a list flag, trimmed, without empty ones.
fn names(given: &[String]) -> Vec<String> {
    given
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

impl CreateRoute {
    /// The `POST /admin/v1/routes` body with only the fields given.
    pub fn body(&self) -> anyhow::Result<NewRoute> {
        Ok(NewRoute {
            alias: self.alias.clone(),
            profile: self.profile.clone(),
            deployments: self
                .deployments
                .iter()
                .map(|text| deployment(text))
                .collect::<anyhow::Result<_>>()?,
            strategy: self.strategy.clone(),
            fallbacks: names(&self.fallbacks),
            context_window_fallbacks: names(&self.context_window_fallbacks),
            content_policy_fallbacks: names(&self.content_policy_fallbacks),
            first_byte_timeout_ms: self.first_byte_timeout_ms,
            deadline_ms: self.deadline_ms,
            enabled: self.disabled.then_some(false),
        })
    }
}

pub async fn run(
    client: &AdminClient,
    command: RoutesCommand,
    json: bool,
) -> anyhow::Result<String> {
    let (answer, human) = match command {
        RoutesCommand::Create(create) => {
            let body = serde_json::to_value(create.body()?)?;
            let answer = client.post("/routes", &body).await?;
            let route = read_route(&answer)?;
            let human = format!(
                "created route {} ({} in profile {} -> {})\n",
                dash(&route.id),
                dash(&route.alias),
                dash(&route.profile),
                deployments_cell(&route.deployments),
            );
            (answer, human)
        }
        RoutesCommand::List => {
            let answer = client.get("/routes", &[]).await?;
            let routes = data(&answer)
                .iter()
                .map(read_route)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let human = list_table(&routes);
            (answer, human)
        }
        RoutesCommand::Delete { id } => {
            let answer = client.delete(&format!("/routes/{}", path_id(&id))).await?;
            (answer, format!("deleted route {id}\n"))
        }
    };
    Ok(if json { json_text(&answer) } else { human })
}

/// A route as the edge answers it.
fn read_route(answer: &Value) -> anyhow::Result<Route> {
    Route::deserialize(answer).context("the answer is not a route")
}

/// Deployments as `provider:model` (with `*weight` and `^priority` when
/// not the defaults), comma-separated.
pub fn deployments_cell(deployments: &[Deployment]) -> String {
    let shown: Vec<String> = deployments
        .iter()
        .map(|deployment| {
            let mut text = format!("{}:{}", dash(&deployment.provider), dash(&deployment.model));
            match deployment.weight {
                Some(1) | None => {}
                Some(weight) => text.push_str(&format!("*{weight}")),
            }
            match deployment.priority {
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
pub fn list_table(routes: &[Route]) -> String {
    let mut table = Table::new(&[
        "ID",
        "ALIAS",
        "PROFILE",
        "DEPLOYMENTS",
        "STRATEGY",
        "FALLBACKS",
        "ENABLED",
    ]);
    for route in routes {
        table.push(vec![
            dash(&route.id),
            dash(&route.alias),
            dash(&route.profile),
            deployments_cell(&route.deployments),
            dash(route.strategy.as_deref().unwrap_or_default()),
            dash(&route.fallbacks.join(",")),
            flag(route.enabled),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::super::AdminCommand;
    use super::super::tests::parse;
    use super::*;
    use serde_json::json;

    fn json(value: impl serde::Serialize) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn deployments_parse_with_optional_weight_and_priority() {
        assert_eq!(
            json(deployment("mock:mock-echo").unwrap()),
            json!({"provider": "mock", "model": "mock-echo"})
        );
        assert_eq!(
            json(deployment("openai:gpt-4o:3").unwrap()),
            json!({"provider": "openai", "model": "gpt-4o", "weight": 3})
        );
        assert_eq!(
            json(deployment("ollama:llama3:8b:2:-1").unwrap()),
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
            json(create.body().unwrap()),
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
            json(plain.body().unwrap()),
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
        let deployment = |provider: &str, model: &str, weight, priority| Deployment {
            provider: provider.into(),
            model: model.into(),
            weight: Some(weight),
            priority: Some(priority),
        };
        let text = list_table(&[Route {
            id: "route_1".into(),
            alias: "smart".into(),
            profile: "default".into(),
            deployments: vec![
                deployment("mock", "mock-echo", 1, 0),
                deployment("openai", "gpt-4o", 3, -1),
            ],
            fallbacks: vec!["cheap".into()],
            enabled: true,
            ..Route::default()
        }]);
        assert!(text.contains("mock:mock-echo,openai:gpt-4o*3^-1"), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("route_1  smart"));
    }
}
