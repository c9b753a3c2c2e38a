//! The few fields of a streamed `chat.completion.chunk` the relay reads,
//! parsed without allocating and without failing on unexpected types.

use std::fmt;

use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};

use crate::usage::WireUsage;

/// The parts of a `chat.completion.chunk` the relay looks at; everything
/// else is skipped without allocating.
#[derive(Deserialize)]
pub(super) struct ChunkProbe {
    #[serde(default)]
    pub(super) error: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
    #[serde(default)]
    pub(super) choices: Option<Vec<ChoiceProbe>>,
}

#[derive(Deserialize)]
pub(super) struct ChoiceProbe {
    #[serde(default)]
    pub(super) delta: Option<DeltaProbe>,
}

#[derive(Deserialize)]
pub(super) struct DeltaProbe {
    #[serde(default, deserialize_with = "text_len")]
    pub(super) content: usize,
    #[serde(default, deserialize_with = "text_len")]
    pub(super) reasoning_content: usize,
}

/// The byte length of a string; 0 for any other JSON value.
fn text_len<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    struct TextLen;

    impl<'de> Visitor<'de> for TextLen {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<usize, E> {
            Ok(text.len())
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<usize, E> {
            Ok(0)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<usize, E> {
            Ok(0)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<usize, E> {
            Ok(0)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<usize, E> {
            Ok(0)
        }

        fn visit_unit<E: de::Error>(self) -> Result<usize, E> {
            Ok(0)
        }

        fn visit_none<E: de::Error>(self) -> Result<usize, E> {
            Ok(0)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(0)
        }

        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(0)
        }
    }

    deserializer.deserialize_any(TextLen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_text_and_skips_everything_else() {
        let chunk: ChunkProbe = serde_json::from_str(
            r#"{"id":"x","choices":[{"delta":{"content":"h\u00e9","reasoning_content":"ab"}},
                {"delta":{"content":[1,{"a":null}],"reasoning_content":7}},{"delta":null}],
                "usage":null,"error":null}"#,
        )
        .unwrap();
        assert!(chunk.error.is_none() && chunk.usage.is_none());
        let choices = chunk.choices.unwrap();
        let delta = choices[0].delta.as_ref().unwrap();
        assert_eq!((delta.content, delta.reasoning_content), (3, 2));
        let delta = choices[1].delta.as_ref().unwrap();
        assert_eq!((delta.content, delta.reasoning_content), (0, 0));
        assert!(choices[2].delta.is_none());
    }
}
