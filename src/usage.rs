//! Usage of one answer, normalised for every dialect, and its cost.
//!
//! How it is read from the answers: [`crate::meter`]. Where it is written: [`crate::usage_log`],
//! the metrics and the limiter.

use serde::{Deserialize, Serialize};

use crate::config::Model;

/// Whether token counts came from the vendor or were estimated by Switchyard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    Reported,
    Estimated,
}

impl UsageSource {
    pub fn label(self) -> &'static str {
        match self {
            UsageSource::Reported => "reported",
            UsageSource::Estimated => "estimated",
        }
    }
}

/// The usage of one answer, normalised for every dialect (`shared/spec/gateway.md` §2b).
///
/// Deserialising reads OpenAI's shape: it requires non-null `prompt_tokens` and
/// `completion_tokens` (a usage object without them is no usage to meter); `total_tokens`
/// defaults to their sum when absent or null.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "UsageWire")]
pub struct Usage {
    /// All input tokens, cached and cache-written included.
    pub prompt_tokens: u64,
    /// All output tokens, reasoning included.
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Input tokens read from the vendor's prompt cache (part of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Input tokens written to the vendor's prompt cache (part of `prompt_tokens`).
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning (part of `completion_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Usage with input and output only.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            ..Usage::default()
        }
    }
}

/// Written in OpenAI's shape: `prompt_tokens`, `completion_tokens`, `total_tokens`, and
/// `prompt_tokens_details.cached_tokens` / `completion_tokens_details.reasoning_tokens` when
/// they are not zero.
impl Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("prompt_tokens", &self.prompt_tokens)?;
        m.serialize_entry("completion_tokens", &self.completion_tokens)?;
        m.serialize_entry("total_tokens", &self.total_tokens)?;
        if self.cached_tokens > 0 {
            m.serialize_entry(
                "prompt_tokens_details",
                &serde_json::json!({"cached_tokens": self.cached_tokens}),
            )?;
        }
        if self.reasoning_tokens > 0 {
            m.serialize_entry(
                "completion_tokens_details",
                &serde_json::json!({"reasoning_tokens": self.reasoning_tokens}),
            )?;
        }
        m.end()
    }
}

/// The wire shape of `usage`, every count optional, checked by `TryFrom`.
#[derive(Deserialize)]
struct UsageWire {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl TryFrom<UsageWire> for Usage {
    type Error = &'static str;

    fn try_from(w: UsageWire) -> Result<Self, Self::Error> {
        match (w.prompt_tokens, w.completion_tokens) {
            (Some(prompt_tokens), Some(completion_tokens)) => Ok(Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: w
                    .total_tokens
                    .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
                ..Usage::default()
            }),
            _ => Err("usage without prompt_tokens or completion_tokens"),
        }
    }
}

/// An estimate of the tokens in `chars` characters of text: `ceil(chars / 4)`, the common rule
/// of thumb for English with GPT-style tokenizers. Only an estimate, for when an upstream sends
/// no usage: real counts vary with the language and the tokenizer.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

/// Prompt tokens estimated from the request's messages (their JSON size, at about four
/// bytes a token), for answers that report no usage.
pub fn estimate_prompt(req: &crate::dialect::chat::ChatRequest<'_>) -> u64 {
    estimate_json_tokens(req.messages.iter().map(|m| m.get()))
}

/// Prompt tokens estimated from the raw JSON of a request's input (messages, system prompt,
/// tools), at about four bytes a token; at least 1.
pub fn estimate_json_tokens<'a>(parts: impl Iterator<Item = &'a str>) -> u64 {
    let bytes: usize = parts.map(str::len).sum();
    estimate_tokens(bytes as u64).max(1)
}

pub fn estimated(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        ..Usage::default()
    }
}

/// Cost in USD of `usage` at the model's prices (0 for a model without prices).
pub fn cost(model: &Model, usage: &Usage) -> f64 {
    let input = model.input_usd_per_mtok.unwrap_or(0.0) * usage.prompt_tokens as f64;
    let output = model.output_usd_per_mtok.unwrap_or(0.0) * usage.completion_tokens as f64;
    (input + output) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(input: Option<f64>, output: Option<f64>) -> Model {
        Model {
            name: "m".into(),
            aliases: vec![],
            fallbacks: vec![],
            input_usd_per_mtok: input,
            output_usd_per_mtok: output,
            routes: vec![],
        }
    }

    #[test]
    fn cost_uses_both_prices() {
        let u = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 500_000,
            total_tokens: 1_500_000,
            ..Usage::default()
        };
        assert!((cost(&model(Some(2.5), Some(10.0)), &u) - 7.5).abs() < 1e-9);
        assert_eq!(cost(&model(None, None), &u), 0.0);
    }
}
