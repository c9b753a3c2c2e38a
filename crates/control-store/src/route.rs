//! Routes: a model alias a profile's clients ask for, mapped to the
//! deployments (provider and upstream model) that serve it.
//!
//! An alias is unique within its profile. The deployments' weight and
//! priority feed the lease's account choice in place of the accounts' own;
//! the fallbacks are other aliases of the same profile, tried in order when
//! no deployment can serve. Two more lists name the aliases that serve a
//! request whose attempt failed for a reason another deployment of the
//! same route would share: a prompt longer than the model's context window,
//! or a content-policy refusal. A route may also set its own timeouts.

use tollgate_core::{Provider, Strategy};

use super::set;

/// One provider and upstream model a route sends requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub provider: Provider,
    /// The model name sent upstream.
    pub model: String,
    /// Share of traffic under the `weighted` strategy, and the last
    /// tie-breaker otherwise.
    pub weight: u32,
    /// Higher wins a tie on tokens remaining; what `priority` picks by.
    pub priority: i32,
}

/// A stored route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRecord {
    pub id: String,
    /// The model name clients ask for.
    pub alias: String,
    pub profile: String,
    pub deployments: Vec<Deployment>,
    /// How a lease picks among the deployments' accounts; `None` means the
    /// profile's strategy.
    pub strategy: Option<Strategy>,
    /// Other aliases of the profile, tried in order when no deployment can
    /// serve.
    pub fallbacks: Vec<String>,
    /// Other aliases of the profile, tried in order when an attempt fails
    /// because the prompt is longer than the model's context window.
    pub context_window_fallbacks: Vec<String>,
    /// Other aliases of the profile, tried in order when an attempt is
    /// refused by the provider's content policy.
    pub content_policy_fallbacks: Vec<String>,
    /// The longest an attempt may wait for the first byte of its answer
    /// (a stream's first event); `None` means the router's setting.
    pub first_byte_timeout_ms: Option<u32>,
    /// The longest a request may take, every attempt and pause included;
    /// `None` means the router's setting.
    pub deadline_ms: Option<u32>,
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A route to insert; the store assigns its id and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoute {
    pub alias: String,
    pub profile: String,
    pub deployments: Vec<Deployment>,
    pub strategy: Option<Strategy>,
    pub fallbacks: Vec<String>,
    pub context_window_fallbacks: Vec<String>,
    pub content_policy_fallbacks: Vec<String>,
    pub first_byte_timeout_ms: Option<u32>,
    pub deadline_ms: Option<u32>,
    pub enabled: bool,
}

/// A partial update of a route: `None` leaves a field unchanged;
/// `Some(None)` clears the strategy or a timeout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePatch {
    pub alias: Option<String>,
    pub profile: Option<String>,
    pub deployments: Option<Vec<Deployment>>,
    pub strategy: Option<Option<Strategy>>,
    pub fallbacks: Option<Vec<String>>,
    pub context_window_fallbacks: Option<Vec<String>>,
    pub content_policy_fallbacks: Option<Vec<String>>,
    pub first_byte_timeout_ms: Option<Option<u32>>,
    pub deadline_ms: Option<Option<u32>>,
    pub enabled: Option<bool>,
}

impl RoutePatch {
    /// The record as it will be once the patch is applied (timestamps
    /// aside), so a caller can validate the result before writing it.
    pub fn applied_to(&self, record: &RouteRecord) -> RouteRecord {
        let mut next = record.clone();
        set(&mut next.alias, &self.alias);
        set(&mut next.profile, &self.profile);
        set(&mut next.deployments, &self.deployments);
        set(&mut next.strategy, &self.strategy);
        set(&mut next.fallbacks, &self.fallbacks);
        set(
            &mut next.context_window_fallbacks,
            &self.context_window_fallbacks,
        );
        set(
            &mut next.content_policy_fallbacks,
            &self.content_policy_fallbacks,
        );
        set(&mut next.first_byte_timeout_ms, &self.first_byte_timeout_ms);
        set(&mut next.deadline_ms, &self.deadline_ms);
        set(&mut next.enabled, &self.enabled);
        next
    }
}

/// The name of a strategy as configured and stored (`round_robin`, …).
pub fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::MostRemaining => "most_remaining",
        Strategy::Priority => "priority",
        Strategy::Weighted => "weighted",
        Strategy::RoundRobin => "round_robin",
        Strategy::LeastInflight => "least_inflight",
        Strategy::LowestLatency => "lowest_latency",
    }
}

/// Every strategy, in the order they are documented.
pub const STRATEGIES: [Strategy; 6] = [
    Strategy::MostRemaining,
    Strategy::Priority,
    Strategy::Weighted,
    Strategy::RoundRobin,
    Strategy::LeastInflight,
    Strategy::LowestLatency,
];

/// The strategy named `name` ([`strategy_name`]), if any.
pub fn parse_strategy(name: &str) -> Option<Strategy> {
    STRATEGIES
        .into_iter()
        .find(|strategy| strategy_name(*strategy) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_match_the_config_spelling() {
        for strategy in STRATEGIES {
            let configured = serde_json::to_value(strategy).ok();
            assert_eq!(
                configured.as_ref().and_then(|value| value.as_str()),
                Some(strategy_name(strategy))
            );
            assert_eq!(parse_strategy(strategy_name(strategy)), Some(strategy));
        }
        assert_eq!(parse_strategy("fastest"), None);
    }
}
