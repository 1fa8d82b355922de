//! Usage of one answer, normalised for every dialect, and its cost.
//!
//! How it is read from the answers: [`crate::accounting::meter`]. Where it is written: [`crate::accounting::usage_log`],
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
/// they are not zero. Prompt-cache writes, which OpenAI does not report, go in
/// `prompt_tokens_details.cache_write_tokens` (the name OpenRouter uses) when not zero.
impl Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("prompt_tokens", &self.prompt_tokens)?;
        m.serialize_entry("completion_tokens", &self.completion_tokens)?;
        m.serialize_entry("total_tokens", &self.total_tokens)?;
        if self.cached_tokens > 0 || self.cache_write_tokens > 0 {
            m.serialize_entry(
                "prompt_tokens_details",
                &PromptDetails {
                    cached_tokens: Some(self.cached_tokens),
                    cache_write_tokens: Some(self.cache_write_tokens).filter(|n| *n > 0),
                },
            )?;
        }
        if self.reasoning_tokens > 0 {
            m.serialize_entry(
                "completion_tokens_details",
                &CompletionDetails {
                    reasoning_tokens: Some(self.reasoning_tokens),
                },
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
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

/// OpenAI's `usage.prompt_tokens_details` (its other counts, such as audio, are not read).
#[derive(Default, Serialize, Deserialize)]
struct PromptDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cached_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
}

/// OpenAI's `usage.completion_tokens_details`.
#[derive(Default, Serialize, Deserialize)]
struct CompletionDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reasoning_tokens: Option<u64>,
}

impl TryFrom<UsageWire> for Usage {
    type Error = &'static str;

    fn try_from(w: UsageWire) -> Result<Self, Self::Error> {
        let (Some(prompt_tokens), Some(completion_tokens)) = (w.prompt_tokens, w.completion_tokens)
        else {
            return Err("usage without prompt_tokens or completion_tokens");
        };
        let prompt = w.prompt_tokens_details.unwrap_or_default();
        let completion = w.completion_tokens_details.unwrap_or_default();
        // The parts never exceed their whole, whatever a server reports.
        let cached_tokens = prompt.cached_tokens.unwrap_or(0).min(prompt_tokens);
        let cache_write_tokens = prompt
            .cache_write_tokens
            .unwrap_or(0)
            .min(prompt_tokens - cached_tokens);
        Ok(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: w
                .total_tokens
                .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
            cached_tokens,
            cache_write_tokens,
            reasoning_tokens: completion
                .reasoning_tokens
                .unwrap_or(0)
                .min(completion_tokens),
        })
    }
}

/// An estimate of the tokens in `chars` characters of text: `ceil(chars / 4)`, the common rule
/// of thumb for English with GPT-style tokenizers. Only an estimate, for when an upstream sends
/// no usage: real counts vary with the language and the tokenizer.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

pub fn estimated(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        ..Usage::default()
    }
}

/// Cost in USD of `usage` at the model's prices (0 for a model without prices), by the
/// spec's formula (`gateway.md` §2b): uncached input at `input_usd_per_mtok`, cache reads at
/// `cached_input_usd_per_mtok` and cache writes at `cache_write_usd_per_mtok` (both default to
/// the input price), output (reasoning included) at `output_usd_per_mtok`, per million tokens.
pub fn cost(model: &Model, usage: &Usage) -> f64 {
    let input_price = model.input_usd_per_mtok.unwrap_or(0.0);
    let cached_price = model.cached_input_usd_per_mtok.unwrap_or(input_price);
    let write_price = model.cache_write_usd_per_mtok.unwrap_or(input_price);
    let cached = usage.cached_tokens.min(usage.prompt_tokens);
    let written = usage.cache_write_tokens.min(usage.prompt_tokens - cached);
    let uncached = usage.prompt_tokens - cached - written;
    let input =
        input_price * uncached as f64 + cached_price * cached as f64 + write_price * written as f64;
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
            cached_input_usd_per_mtok: None,
            cache_write_usd_per_mtok: None,
            strategy: Default::default(),
            kind: Default::default(),
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

    /// The issue's example: 3 / 15 USD per million, cache reads at a tenth of the input price.
    #[test]
    fn cost_prices_cache_reads_and_writes_apart() {
        let mut m = model(Some(3.0), Some(15.0));
        m.cached_input_usd_per_mtok = Some(0.3);
        m.cache_write_usd_per_mtok = Some(3.75);
        let u = Usage {
            prompt_tokens: 90_020,
            completion_tokens: 100,
            total_tokens: 90_120,
            cached_tokens: 90_000,
            ..Usage::default()
        };
        // 20 × 3 + 90000 × 0.3 + 100 × 15 = 28560 µ$.
        assert!((cost(&m, &u) - 0.02856).abs() < 1e-12);
        let w = Usage {
            cache_write_tokens: 1_000,
            cached_tokens: 0,
            ..u
        };
        // 89020 × 3 + 1000 × 3.75 + 100 × 15.
        assert!((cost(&m, &w) - (267_060.0 + 3_750.0 + 1_500.0) / 1e6).abs() < 1e-12);
        // Without cache prices, cache reads and writes cost the input price.
        let plain = model(Some(3.0), Some(15.0));
        assert!((cost(&plain, &u) - 0.27156).abs() < 1e-12);
        // Parts larger than the whole are capped (a server's bad report costs no less).
        let odd = Usage {
            cached_tokens: 200_000,
            ..u
        };
        assert!((cost(&m, &odd) - (90_020.0 * 0.3 + 1_500.0) / 1e6).abs() < 1e-12);
    }

    #[test]
    fn usage_reads_and_writes_openai_details() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":90020,"completion_tokens":300,"total_tokens":90320,
                "prompt_tokens_details":{"cached_tokens":90000,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":200,"audio_tokens":0}}"#,
        )
        .unwrap();
        assert_eq!(
            (u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens),
            (90_000, 0, 200)
        );
        let back = serde_json::to_value(u).unwrap();
        assert_eq!(back["prompt_tokens_details"]["cached_tokens"], 90_000);
        assert!(back["prompt_tokens_details"]
            .get("cache_write_tokens")
            .is_none());
        assert_eq!(back["completion_tokens_details"]["reasoning_tokens"], 200);
        let w: Usage = serde_json::from_str(
            r#"{"prompt_tokens":50,"completion_tokens":1,
                "prompt_tokens_details":{"cached_tokens":null,"cache_write_tokens":40},
                "completion_tokens_details":null}"#,
        )
        .unwrap();
        assert_eq!(
            (w.cached_tokens, w.cache_write_tokens, w.total_tokens),
            (0, 40, 51)
        );
        let back = serde_json::to_value(w).unwrap();
        assert_eq!(back["prompt_tokens_details"]["cache_write_tokens"], 40);
        assert!(back.get("completion_tokens_details").is_none());
        let plain = serde_json::to_value(Usage::new(1, 2)).unwrap();
        assert!(plain.get("prompt_tokens_details").is_none());
    }
}
