//! The three states of a PATCH field: absent, `null`, a value.

use serde::{Deserialize, Deserializer};

/// Deserializes a PATCH field: absent is `None` (with `#[serde(default)]`),
/// `null` is `Some(None)`, a value is `Some(Some(value))`. Serialized with
/// `skip_serializing_if = "Option::is_none"`, the same three states come
/// back out.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Patch {
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        rpm: Option<Option<u32>>,
    }

    #[test]
    fn patch_fields_distinguish_absent_null_and_value_both_ways() {
        for (text, rpm) in [
            ("{}", None),
            (r#"{"rpm":null}"#, Some(None)),
            (r#"{"rpm":5}"#, Some(Some(5))),
        ] {
            let patch: Patch = serde_json::from_str(text).unwrap();
            assert_eq!(patch, Patch { rpm });
            assert_eq!(serde_json::to_string(&patch).unwrap(), text);
        }
    }
}
