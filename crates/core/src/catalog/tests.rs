//! The built-in catalog file and the rules of reading one.

use std::collections::HashSet;

use super::*;
use crate::Provider;

fn builtin() -> Catalog {
    Catalog::parse(BUILTIN_YAML).unwrap()
}

#[test]
fn the_builtin_file_parses_and_is_the_one_served() {
    let catalog = builtin();
    assert!(catalog.models().len() >= 25);
    assert_eq!(Catalog::builtin().models(), catalog.models());
}

#[test]
fn every_model_has_a_provider_limits_and_dated_prices() {
    for model in builtin().models() {
        assert!(!model.id.is_empty());
        assert!(model.context_window.is_some(), "{}", model.id);
        if !model.can(Capability::Embeddings) {
            assert!(model.max_output_tokens.is_some(), "{}", model.id);
        }
        assert!(model.prices.is_some(), "{} has no prices", model.id);
        assert!(model.prices_read.is_some(), "{}", model.id);
    }
}

#[test]
fn names_are_unique_across_ids_and_aliases() {
    let mut seen = HashSet::new();
    for model in builtin().models() {
        for name in std::iter::once(&model.id).chain(&model.aliases) {
            assert!(seen.insert(name.clone()), "{name} twice");
        }
    }
    let twice =
        "models:\n  - {id: a, provider: openai}\n  - {id: b, provider: openai, aliases: [a]}\n";
    assert_eq!(
        Catalog::parse(twice).unwrap_err(),
        CatalogError::DuplicateName { name: "a".into() }
    );
}

#[test]
fn the_families_the_gateway_serves_are_covered() {
    let catalog = builtin();
    for (name, provider) in [
        ("gpt-4o", Provider::OpenAi),
        ("gpt-4o-mini", Provider::OpenAi),
        ("gpt-4.1", Provider::OpenAi),
        ("gpt-4.1-mini", Provider::OpenAi),
        ("gpt-4.1-nano", Provider::OpenAi),
        ("gpt-5", Provider::OpenAi),
        ("gpt-5-mini", Provider::OpenAi),
        ("gpt-5-nano", Provider::OpenAi),
        ("o3", Provider::OpenAi),
        ("o4-mini", Provider::OpenAi),
        ("text-embedding-3-small", Provider::OpenAi),
        ("text-embedding-3-large", Provider::OpenAi),
        ("claude-3-5-haiku-20241022", Provider::Anthropic),
        ("claude-3-7-sonnet-20250219", Provider::Anthropic),
        ("claude-sonnet-4-20250514", Provider::Anthropic),
        ("claude-sonnet-4-5-20250929", Provider::Anthropic),
        ("claude-haiku-4-5-20251001", Provider::Anthropic),
        ("claude-opus-4-20250514", Provider::Anthropic),
        ("claude-opus-4-1-20250805", Provider::Anthropic),
        ("claude-opus-4-5-20251101", Provider::Anthropic),
        ("gemini-2.5-pro", Provider::Gemini),
        ("gemini-2.5-flash", Provider::Gemini),
        ("gemini-2.5-flash-lite", Provider::Gemini),
        ("gemini-2.0-flash-001", Provider::Gemini),
        ("gemini-2.0-flash-lite", Provider::Gemini),
    ] {
        let model = catalog.find(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(model.provider, provider, "{name}");
        assert!(model.prices.is_some(), "{name}");
    }
}

#[test]
fn snapshots_resolve_to_their_family_and_other_suffixes_do_not() {
    let catalog = builtin();
    let id = |name: &str| catalog.find(name).map(|model| model.id.as_str());
    assert_eq!(id("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(id("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
    assert_eq!(id("claude-sonnet-4-20250514"), Some("claude-sonnet-4"));
    assert_eq!(id("claude-opus-4-1-20250805"), Some("claude-opus-4-1"));
    assert_eq!(id("claude-sonnet-4-0"), Some("claude-sonnet-4"));
    assert_eq!(id("claude-3-5-haiku-latest"), Some("claude-3-5-haiku"));
    assert_eq!(id("gemini-2.0-flash-001"), Some("gemini-2.0-flash"));
    assert_eq!(id("gpt-4o-mini-search-preview"), None);
    assert_eq!(id("gpt-4o-latest"), None);
    assert_eq!(id("openai/gpt-4o"), None);
}

#[test]
fn cost_of_a_cached_and_cache_writing_request_is_exact() {
    let catalog = builtin();
    // Claude Sonnet 4.5: $3 input, $0.30 cache read, $3.75 5 m write, $6 1 h
    // write, $15 output per million.
    let usage = UsageTokens {
        prompt: 12_000,
        completion: 800,
        cached: 6_000,
        cache_write_5m: 3_000,
        cache_write_1h: 2_000,
        reasoning: 300,
    };
    // 1000 x 3 + 6000 x 0.30 + 3000 x 3.75 + 2000 x 6 + 800 x 15.
    assert_eq!(
        catalog.cost("claude-sonnet-4-5-20250929", &usage),
        Cost {
            micro_usd: 3_000 + 1_800 + 11_250 + 12_000 + 12_000,
            priced: true
        }
    );
    // gpt-4o-mini: $0.15 input, $0.075 cached, $0.60 output per million.
    let usage = UsageTokens {
        prompt: 2_000_000,
        completion: 1_000_000,
        cached: 1_000_000,
        ..UsageTokens::default()
    };
    assert_eq!(
        catalog.cost("gpt-4o-mini", &usage).micro_usd,
        150_000 + 75_000 + 600_000
    );
}

#[test]
fn reasoning_priced_apart_only_where_the_catalog_says() {
    let yaml = "models:\n  - id: thinker\n    provider: gemini\n    \
                prices: {input: 0.30, output: 2.50, reasoning: 3.50}\n    \
                prices_read: 2026-12-03\n";
    let catalog = Catalog::parse(yaml).unwrap();
    let usage = UsageTokens {
        prompt: 1_000,
        completion: 1_000,
        reasoning: 600,
        ..UsageTokens::default()
    };
    // 1000 x 0.30 + 400 x 2.50 + 600 x 3.50.
    assert_eq!(
        catalog.cost("thinker", &usage).micro_usd,
        300 + 1_000 + 2_100
    );
    // o4-mini prices reasoning as output: 1000 x 1.10 + 1000 x 4.40.
    assert_eq!(builtin().cost("o4-mini", &usage).micro_usd, 5_500);
}

#[test]
fn an_unpriced_model_costs_nothing_and_says_so() {
    let catalog = builtin();
    let usage = UsageTokens {
        prompt: 10,
        completion: 5,
        ..UsageTokens::default()
    };
    assert_eq!(catalog.cost("no-such-model", &usage), Cost::UNPRICED);
    assert_eq!(catalog.cost("", &usage), Cost::UNPRICED);
    // Nothing used, nothing to price.
    assert_eq!(
        catalog.cost("no-such-model", &UsageTokens::default()),
        Cost {
            micro_usd: 0,
            priced: true
        }
    );
    // Known but without prices.
    let yaml = "models:\n  - {id: bare, provider: ollama}\n";
    let catalog = Catalog::parse(yaml).unwrap();
    assert_eq!(catalog.cost("bare", &usage), Cost::UNPRICED);
}

#[test]
fn bad_entries_are_refused_with_the_model_named() {
    let refused = |yaml: &str| match Catalog::parse(yaml).unwrap_err() {
        CatalogError::Invalid { model, reason } => format!("{model}: {reason}"),
        other => other.to_string(),
    };
    assert!(refused("models:\n  - {id: m, provider: nobody}\n").starts_with("m: unknown provider"));
    assert_eq!(
        refused("models:\n  - {id: m, provider: openai, prices: {input: 1, output: 2}}\n"),
        "m: prices need prices_read"
    );
    assert!(
        refused(
            "models:\n  - {id: m, provider: openai, prices: {input: -1, output: 2}, \
             prices_read: 2026-12-03}\n"
        )
        .contains("is not an amount of US dollars")
    );
    assert!(
        refused("models:\n  - {id: m, provider: openai, capabilities: [telepathy]}\n")
            .contains("telepathy")
    );
    assert!(
        refused(
            "models:\n  - {id: m, provider: openai, context_window: 10, max_output_tokens: 20}\n"
        )
        .contains("larger than the context window")
    );
    assert!(refused("models:\n  - {id: m, provider: openai, colour: red}\n").contains("colour"));
}
