//! Gemini's `usageMetadata`, converted to the gateway's convention:
//! `promptTokenCount` already counts cached content; thinking tokens
//! (`thoughtsTokenCount`) are counted apart from `candidatesTokenCount`, so
//! the completion is their sum; tokens of tool-use prompts count as prompt.

use serde::Deserialize;

use crate::usage::Usage;

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

impl WireUsage {
    pub fn usage(&self) -> Usage {
        let clamp = |count: u64| u32::try_from(count).unwrap_or(u32::MAX);
        let count = |field: Option<u64>| field.unwrap_or(0);
        let thoughts = count(self.thoughts_token_count);
        Usage {
            prompt: clamp(
                count(self.prompt_token_count)
                    .saturating_add(count(self.tool_use_prompt_token_count)),
            ),
            completion: clamp(count(self.candidates_token_count).saturating_add(thoughts)),
            cached: clamp(count(self.cached_content_token_count)),
            reasoning: clamp(thoughts),
            ..Usage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thoughts_are_completion_and_reasoning() {
        let usage: WireUsage = serde_json::from_str(
            r#"{"promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 200,
                "cachedContentTokenCount": 100, "thoughtsTokenCount": 50,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 120}]}"#,
        )
        .unwrap();
        assert_eq!(
            usage.usage(),
            Usage {
                prompt: 120,
                completion: 80,
                cached: 100,
                reasoning: 50,
                ..Usage::default()
            }
        );
        assert_eq!(WireUsage::default().usage(), Usage::default());
    }
}
