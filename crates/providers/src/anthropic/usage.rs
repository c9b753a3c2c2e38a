//! Anthropic's `usage` object, converted to the gateway's convention:
//! Anthropic's `input_tokens` leaves out the tokens read from and written
//! to the prompt cache, so the prompt is the sum of the three.

use serde::Deserialize;

use crate::usage::Usage;

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
}

/// Cache writes by lifetime.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default)]
    ephemeral_1h_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes the counts a later report gives (a stream's `message_delta`
    /// after its `message_start`); the others stay.
    pub fn update(&mut self, later: WireUsage) {
        let WireUsage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
            cache_creation,
        } = later;
        self.input_tokens = input_tokens.or(self.input_tokens);
        self.output_tokens = output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens =
            cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = cache_read_input_tokens.or(self.cache_read_input_tokens);
        self.cache_creation = cache_creation.or(self.cache_creation);
    }

    /// The usage in the gateway's convention. Cache writes without a
    /// breakdown by lifetime are 5-minute writes, Anthropic's default.
    pub fn usage(&self) -> Usage {
        let clamp = |count: u64| u32::try_from(count).unwrap_or(u32::MAX);
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let (write_5m, write_1h) = match self.cache_creation {
            Some(CacheCreation {
                ephemeral_5m_input_tokens,
                ephemeral_1h_input_tokens,
            }) if ephemeral_5m_input_tokens.is_some() || ephemeral_1h_input_tokens.is_some() => (
                ephemeral_5m_input_tokens.unwrap_or(0),
                ephemeral_1h_input_tokens.unwrap_or(0),
            ),
            _ => (written, 0),
        };
        let input = self.input_tokens.unwrap_or(0);
        Usage {
            prompt: clamp(input.saturating_add(read).saturating_add(written)),
            completion: clamp(self.output_tokens.unwrap_or(0)),
            cached: clamp(read),
            cache_write_5m: clamp(write_5m),
            cache_write_1h: clamp(write_1h),
            reasoning: 0,
            provider_cost_micro_usd: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(json: &str) -> Usage {
        serde_json::from_str::<WireUsage>(json).unwrap().usage()
    }

    #[test]
    fn the_prompt_counts_cache_reads_and_writes() {
        let usage = usage(
            r#"{"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 40,
                "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 10}}"#,
        );
        assert_eq!(
            usage,
            Usage {
                prompt: 150,
                completion: 5,
                cached: 100,
                cache_write_5m: 30,
                cache_write_1h: 10,
                reasoning: 0,
                provider_cost_micro_usd: None,
            }
        );
    }

    #[test]
    fn writes_without_a_breakdown_are_five_minute_writes() {
        let usage = usage(
            r#"{"input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 7, "cache_read_input_tokens": null}"#,
        );
        assert_eq!(
            (usage.prompt, usage.cache_write_5m, usage.cache_write_1h),
            (8, 7, 0)
        );
    }

    #[test]
    fn a_later_report_updates_what_it_gives() {
        let mut start: WireUsage = serde_json::from_str(
            r#"{"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 4}"#,
        )
        .unwrap();
        start.update(serde_json::from_str(r#"{"output_tokens": 15}"#).unwrap());
        assert_eq!(start.usage().prompt, 24);
        assert_eq!(start.usage().completion, 15);
    }
}
