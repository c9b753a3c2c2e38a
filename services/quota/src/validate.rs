//! Checks on admin input shared by keys, accounts, profiles and routes. Every failure names
//! the field at fault (`param`) so the admin API can point at it.

use tollgate_control_store::{DEFAULT_PROFILE, STRATEGIES, parse_strategy, strategy_name};
use tollgate_core::{GatewayError, Provider, ProviderSettings};
use tollgate_counters::Strategy;

const MAX_NAME_CHARS: usize = 200;
const MAX_PROFILE_CHARS: usize = 64;
const MAX_MODEL_CHARS: usize = 256;
const MAX_LIST_LEN: usize = 1_000;

/// A name: trimmed, at most 200 characters, no control characters.
pub(crate) fn name(param: &str, value: &str) -> Result<String, GatewayError> {
    let value = value.trim();
    if value.chars().count() > MAX_NAME_CHARS || value.chars().any(char::is_control) {
        return Err(GatewayError::invalid(
            param,
            format!("{param} must be at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A profile name (empty means the default profile): letters, digits, `-`,
/// `_` and `.`, at most 64 characters. Profiles become metric labels, so
/// they stay short and plain.
pub(crate) fn profile(param: &str, value: &str) -> Result<String, GatewayError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(DEFAULT_PROFILE.to_owned());
    }
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain || value.len() > MAX_PROFILE_CHARS {
        return Err(GatewayError::invalid(
            param,
            format!("{param} must be 1-{MAX_PROFILE_CHARS} letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(value.to_owned())
}

/// A strategy name; empty means none (the profile's, or the configured
/// one).
pub(crate) fn strategy(value: &str) -> Result<Option<Strategy>, GatewayError> {
    match value.trim() {
        "" => Ok(None),
        name => parse_strategy(name).map(Some).ok_or_else(|| {
            let known: Vec<&str> = STRATEGIES.into_iter().map(strategy_name).collect();
            GatewayError::invalid(
                "strategy",
                format!("strategy must be one of: {}", known.join(", ")),
            )
        }),
    }
}

/// A strategy an update sets: unlike in a spec, empty is refused (the
/// update's `clear` removes a strategy).
pub(crate) fn strategy_update(value: &str) -> Result<Strategy, GatewayError> {
    strategy(value)?.ok_or_else(|| {
        GatewayError::invalid("strategy", "strategy must not be empty; clear it instead")
    })
}

pub(crate) fn profiles(param: &str, values: &[String]) -> Result<Vec<String>, GatewayError> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        if value.trim().is_empty() {
            return Err(GatewayError::invalid(
                param,
                format!("{param} must not contain empty names"),
            ));
        }
        let profile = profile(param, value)?;
        if !out.contains(&profile) {
            out.push(profile);
        }
    }
    Ok(out)
}

/// Model names: trimmed, non-empty, no whitespace, duplicates dropped.
pub(crate) fn models(param: &str, values: &[String]) -> Result<Vec<String>, GatewayError> {
    if values.len() > MAX_LIST_LEN {
        return Err(GatewayError::invalid(
            param,
            format!("{param} may list at most {MAX_LIST_LEN} models"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let value = value.trim();
        if value.is_empty()
            || value.len() > MAX_MODEL_CHARS
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(GatewayError::invalid(
                param,
                format!("{param} entries must be model names without spaces"),
            ));
        }
        if !out.iter().any(|known| known == value) {
            out.push(value.to_owned());
        }
    }
    Ok(out)
}

/// A limit that, when set, must be positive (omit it for "no limit").
pub(crate) fn positive<T: PartialOrd + Default>(
    param: &str,
    value: Option<T>,
) -> Result<Option<T>, GatewayError> {
    match value {
        Some(value) if value <= T::default() => Err(GatewayError::invalid(
            param,
            format!("{param} must be positive; omit it for no limit"),
        )),
        other => Ok(other),
    }
}

/// An `http://` or `https://` URL with a host, without a trailing slash.
pub(crate) fn base_url(param: &str, value: &str) -> Result<String, GatewayError> {
    let value = value.trim().trim_end_matches('/');
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(host) if !host.is_empty() && !value.chars().any(char::is_whitespace) => {
            Ok(value.to_owned())
        }
        _ => Err(GatewayError::invalid(
            param,
            format!("{param} must be an http:// or https:// URL"),
        )),
    }
}

/// Which optional fields a `clear` list names; unknown names are refused.
pub(crate) fn clear_list<'a>(
    clear: &'a [String],
    allowed: &[&str],
) -> Result<Vec<&'a str>, GatewayError> {
    clear
        .iter()
        .map(|name| {
            let name = name.trim();
            if allowed.contains(&name) {
                Ok(name)
            } else {
                Err(GatewayError::invalid(
                    "clear",
                    format!("clear accepts only: {}", allowed.join(", ")),
                ))
            }
        })
        .collect()
}

/// `Some(None)` when the field is cleared, `Some(Some(v))` when set, `None`
/// when untouched; setting and clearing at once is refused.
pub(crate) fn set_or_clear<T>(
    param: &str,
    value: Option<T>,
    cleared: &[&str],
) -> Result<Option<Option<T>>, GatewayError> {
    let clear = cleared.contains(&param);
    match (value, clear) {
        (Some(_), true) => Err(GatewayError::invalid(
            param,
            format!("{param} cannot be set and cleared at once"),
        )),
        (Some(value), false) => Ok(Some(Some(value))),
        (None, true) => Ok(Some(None)),
        (None, false) => Ok(None),
    }
}

/// An account's provider settings (a JSON object, empty for none) checked
/// against its provider: the canonical JSON to store, or `None` when
/// nothing is set. A bad key is a 400 naming it (`settings.<key>`).
pub(crate) fn settings(provider: Provider, text: &str) -> Result<Option<String>, GatewayError> {
    ProviderSettings::from_json(provider, text)
        .map(|settings| settings.to_json())
        .map_err(|error| GatewayError::invalid(error.param(), error.message))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn settings_are_checked_per_provider_and_made_canonical() {
        assert_eq!(settings(Provider::OpenAi, "").unwrap(), None);
        assert_eq!(
            settings(Provider::OpenAiCompatible, r#"{ "preset" : "vllm" }"#).unwrap(),
            Some(r#"{"preset":"vllm"}"#.to_owned())
        );
        assert_eq!(settings(Provider::OpenAiCompatible, "{}").unwrap(), None);
        let error = settings(Provider::OpenRouter, r#"{"referer":"x"}"#).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("settings.referer"));
        assert_eq!(error.kind, tollgate_core::ErrorKind::InvalidRequest);
    }

    #[test]
    fn profiles_are_plain_names() {
        assert_eq!(profile("profile", "").unwrap(), "default");
        assert_eq!(profile("profile", " team-a ").unwrap(), "team-a");
        let err = profile("profile", "team a").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("profile"));
        assert!(profile("profile", &"x".repeat(65)).is_err());
        assert_eq!(
            profiles("profiles", &["a".into(), "a".into(), "b".into()]).unwrap(),
            ["a", "b"]
        );
        assert!(profiles("profiles", &[" ".into()]).is_err());
    }

    #[test]
    fn base_urls_are_http() {
        assert_eq!(
            base_url("base_url", "https://api.example.com/v1/").unwrap(),
            "https://api.example.com/v1"
        );
        assert!(base_url("base_url", "http://127.0.0.1:9").is_ok());
        for bad in ["ftp://x", "https://", "api.example.com", "http:// x", ""] {
            assert!(base_url("base_url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_lists() {
        assert_eq!(positive("rpm", Some(5u32)).unwrap(), Some(5));
        assert_eq!(positive::<u32>("rpm", None).unwrap(), None);
        assert!(positive("rpm", Some(0u32)).is_err());
        assert!(positive("budget", Some(-1i64)).is_err());
        assert_eq!(
            models("models", &[" a ".into(), "a".into()]).unwrap(),
            ["a"]
        );
        assert!(models("models", &["a b".into()]).is_err());
        assert!(models("models", &[String::new()]).is_err());
        assert!(name("name", &"n".repeat(201)).is_err());
    }

    #[test]
    fn clear_lists_and_conflicts() {
        let clear = vec!["rpm".to_owned()];
        let cleared = clear_list(&clear, &["rpm", "tpm"]).unwrap();
        assert_eq!(
            set_or_clear("rpm", None::<u32>, &cleared).unwrap(),
            Some(None)
        );
        assert_eq!(
            set_or_clear("tpm", Some(1u32), &cleared).unwrap(),
            Some(Some(1))
        );
        assert_eq!(set_or_clear("tpm", None::<u32>, &cleared).unwrap(), None);
        assert!(set_or_clear("rpm", Some(1u32), &cleared).is_err());
        let err = clear_list(&["secret".to_owned()], &["rpm"]).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("clear"));
    }
}
