//! How a lease picks one account among those eligible to serve it. Routes
//! and profiles name a strategy in the control data; the quota counters
//! apply it (their crate doc gives each strategy's rule and tie-breakers).

/// How a lease picks among the eligible candidates.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    MostRemaining,
    Priority,
    Weighted,
    RoundRobin,
    LeastInflight,
    LowestLatency,
}
