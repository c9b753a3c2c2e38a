//! Field conversions shared by the admin endpoints: US dollars to and from
//! integer micro-dollars, timestamps (RFC 3339 or unix seconds), and what
//! a PATCH field's three states (absent, `null`, a value; read by
//! `tollgate_admin_api::patch::present`) ask of quota: no change, a clear
//! or a refusal, a new value.

use serde_json::Value;
use tollgate_core::{GatewayError, ModelRef};

use crate::rfc3339;

/// Largest dollar amount that fits in micro-dollars as an `i64`.
const MAX_USD: f64 = 9.0e12;

/// A non-negative dollar amount as integer micro-dollars.
pub fn usd_to_micro(usd: f64, param: &str) -> Result<i64, GatewayError> {
    if !usd.is_finite() || !(0.0..=MAX_USD).contains(&usd) {
        return Err(GatewayError::invalid(
            param,
            format!("`{param}` must be a non-negative number of US dollars"),
        ));
    }
    // In range by the check above, so the cast cannot saturate.
    #[allow(clippy::cast_possible_truncation)]
    Ok((usd * 1_000_000.0).round() as i64)
}

/// Micro-dollars as dollars, for JSON output.
#[allow(clippy::cast_precision_loss)]
pub fn micro_to_usd(micro: i64) -> f64 {
    micro as f64 / 1_000_000.0
}

/// Unix seconds from a JSON integer (unix seconds) or an RFC 3339 string.
pub fn timestamp_secs(value: &Value, param: &str) -> Result<i64, GatewayError> {
    let parsed = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => rfc3339::parse_ms(text).map(|ms| ms.div_euclid(1000)),
        _ => None,
    };
    parsed.ok_or_else(|| {
        GatewayError::invalid(
            param,
            format!("`{param}` must be an RFC 3339 timestamp or an integer of unix seconds"),
        )
    })
}

/// A PATCH field that may change but not be cleared: `null` is refused.
pub fn not_null<T>(field: Option<Option<T>>, param: &str) -> Result<Option<T>, GatewayError> {
    match field {
        Some(None) => Err(GatewayError::invalid(
            param,
            format!("`{param}` cannot be null"),
        )),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// The names of the limits a PATCH clears (JSON `null`), for the proto's
/// `clear` list.
#[derive(Debug, Default)]
pub struct Clears(pub Vec<String>);

impl Clears {
    /// The new value of a clearable field; `null` records `proto_name` as
    /// cleared.
    pub fn take<T>(&mut self, field: Option<Option<T>>, proto_name: &str) -> Option<T> {
        match field {
            Some(None) => {
                self.0.push(proto_name.to_owned());
                None
            }
            Some(Some(value)) => Some(value),
            None => None,
        }
    }
}

/// Refuses model names a client could not send.
pub fn check_models(models: &[String], param: &str) -> Result<(), GatewayError> {
    match models
        .iter()
        .position(|model| ModelRef::parse(model).is_none())
    {
        Some(index) => Err(GatewayError::invalid(
            format!("{param}[{index}]"),
            "model names must not be empty",
        )),
        None => Ok(()),
    }
}

/// Refuses empty names in a list of profiles.
pub fn check_names(names: &[String], param: &str) -> Result<(), GatewayError> {
    match names.iter().position(|name| name.trim().is_empty()) {
        Some(index) => Err(GatewayError::invalid(
            format!("{param}[{index}]"),
            "names must not be empty",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use tollgate_admin_api::patch::present;

    #[test]
    fn dollars_round_to_micro_dollars_and_back() {
        assert_eq!(usd_to_micro(12.5, "b").unwrap(), 12_500_000);
        assert_eq!(usd_to_micro(0.0000014, "b").unwrap(), 1);
        assert_eq!(usd_to_micro(0.0, "b").unwrap(), 0);
        assert!((micro_to_usd(12_500_000) - 12.5).abs() < f64::EPSILON);
        assert_eq!(
            usd_to_micro(-1.0, "b").unwrap_err().param.as_deref(),
            Some("b")
        );
        assert!(usd_to_micro(f64::NAN, "b").is_err());
        assert!(usd_to_micro(1e20, "b").is_err());
    }

    #[test]
    fn timestamps_from_seconds_or_rfc3339() {
        assert_eq!(
            timestamp_secs(&json!(1_700_000_000), "t").unwrap(),
            1_700_000_000
        );
        assert_eq!(
            timestamp_secs(&json!("2023-11-14T22:13:20Z"), "t").unwrap(),
            1_700_000_000
        );
        assert_eq!(
            timestamp_secs(&json!("2023-11-15T00:13:20+02:00"), "t").unwrap(),
            1_700_000_000
        );
        for bad in [
            json!("tomorrow"),
            json!(1.5),
            json!(true),
            json!("1700000000"),
        ] {
            assert_eq!(
                timestamp_secs(&bad, "t").unwrap_err().param.as_deref(),
                Some("t")
            );
        }
    }

    #[test]
    fn patch_fields_distinguish_absent_null_and_value() {
        #[derive(Deserialize)]
        struct Patch {
            #[serde(default, deserialize_with = "present")]
            rpm: Option<Option<u32>>,
        }
        let parse = |text: &str| serde_json::from_str::<Patch>(text).unwrap().rpm;
        assert_eq!(parse("{}"), None);
        assert_eq!(parse(r#"{"rpm": null}"#), Some(None));
        assert_eq!(parse(r#"{"rpm": 5}"#), Some(Some(5)));

        let mut clears = Clears::default();
        assert_eq!(clears.take(Some(None::<u32>), "rpm"), None);
        assert_eq!(clears.take(Some(Some(3)), "tpm"), Some(3));
        assert_eq!(clears.take(None::<Option<u32>>, "x"), None);
        assert_eq!(clears.0, ["rpm"]);
        assert!(not_null(Some(None::<bool>), "enabled").is_err());
        assert_eq!(not_null(Some(Some(true)), "enabled").unwrap(), Some(true));
    }

    #[test]
    fn lists_refuse_empty_entries() {
        let models = vec!["mock-echo".to_owned(), " ".to_owned()];
        assert_eq!(
            check_models(&models, "models")
                .unwrap_err()
                .param
                .as_deref(),
            Some("models[1]")
        );
        assert!(check_names(&["a".to_owned()], "profiles").is_ok());
        assert!(check_names(&[String::new()], "profiles").is_err());
    }
}
