//! OpenRouter: OpenAI's wire format plus its app attribution headers,
//! `HTTP-Referer` (the app's URL) and `X-Title` (its name), taken from the
//! account's settings, else from the gateway-wide default. Its reported
//! `usage.cost` is read with the rest of the usage
//! ([`crate::Usage::provider_cost_micro_usd`]).

use http::header::{HeaderName, HeaderValue};
use tollgate_core::provider_settings::OpenRouterSettings;

/// The attribution headers to send: each of the account's, else the
/// default's. Values were checked when the settings were read; one that
/// still does not make a header is left out.
pub(crate) fn attribution_headers(
    account: &OpenRouterSettings,
    default: &OpenRouterSettings,
) -> Vec<(HeaderName, HeaderValue)> {
    let referer = account
        .http_referer
        .as_ref()
        .or(default.http_referer.as_ref());
    let title = account.x_title.as_ref().or(default.x_title.as_ref());
    [
        (HeaderName::from_static("http-referer"), referer),
        (HeaderName::from_static("x-title"), title),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        let value = HeaderValue::from_str(value?).ok()?;
        Some((name, value))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_wins_over_the_default_header_by_header() {
        let account = OpenRouterSettings {
            http_referer: None,
            x_title: Some("Team App".into()),
        };
        let default = OpenRouterSettings {
            http_referer: Some("https://gateway.example".into()),
            x_title: Some("Gateway".into()),
        };
        let headers = attribution_headers(&account, &default);
        assert_eq!(
            headers,
            vec![
                (
                    HeaderName::from_static("http-referer"),
                    HeaderValue::from_static("https://gateway.example")
                ),
                (
                    HeaderName::from_static("x-title"),
                    HeaderValue::from_static("Team App")
                ),
            ]
        );
        let none = attribution_headers(
            &OpenRouterSettings::default(),
            &OpenRouterSettings::default(),
        );
        assert!(none.is_empty());
    }
}
