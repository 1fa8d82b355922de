//! Usage of one answer, normalised for every dialect, and its cost.
//!
//! How it is read from the answers: [`crate::accounting::meter`]. Where it is written: [`crate::accounting::usage_log`],
//! the metrics and the limiter.

use serde::{Deserialize, Serialize};

pub use crate::accounting::prices::ServiceTier;
use crate::accounting::prices::{PriceLine, Prices, Rates};
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
    /// Input tokens written to the vendor's prompt cache (part of `prompt_tokens`), whatever
    /// their lifetime.
    pub cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written with a 1-hour lifetime (Anthropic's
    /// `usage.cache_creation.ephemeral_1h_input_tokens`), billed at its own price; the rest
    /// has the default 5-minute lifetime.
    pub cache_write_1h_tokens: u64,
    /// Output tokens spent on reasoning (part of `completion_tokens`).
    pub reasoning_tokens: u64,
    /// The OpenAI processing tier that served the answer, when it was not the default
    /// (`service_tier` of the answer): priced by its own rates when the model has them.
    pub service_tier: Option<ServiceTier>,
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
/// `prompt_tokens_details.cache_write_tokens` (the name OpenRouter uses) when not zero, and
/// their 1-hour part in `prompt_tokens_details.cache_write_1h_tokens` (Switchyard's name: the
/// chat shape has none) when not zero. The service tier is not part of `usage` (OpenAI writes
/// it beside it): a translated answer keeps it only where its door's shape has the field.
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
                    cache_write_1h_tokens: Some(self.cache_write_1h_tokens).filter(|n| *n > 0),
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_write_1h_tokens: Option<u64>,
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
        let cache_write_1h_tokens = prompt
            .cache_write_1h_tokens
            .unwrap_or(0)
            .min(cache_write_tokens);
        Ok(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: w
                .total_tokens
                .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
            cached_tokens,
            cache_write_tokens,
            cache_write_1h_tokens,
            service_tier: None,
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

/// Cost in USD of `usage` at the model's prices (0 for a model without prices: none in the
/// config nor the catalogue), by the spec's formula (`gateway.md` §2b) at the price line the
/// answer falls in ([`Prices::line`]): uncached input, cache reads, 5-minute and 1-hour cache
/// writes, and output (reasoning included), each at its own price per million tokens.
pub fn cost(model: &Model, usage: &Usage) -> f64 {
    priced(model, usage).0
}

/// [`cost`] and the price line it was billed at (`None`: the model has no prices).
pub fn priced(model: &Model, usage: &Usage) -> (f64, Option<PriceLine>) {
    match model.prices.as_deref() {
        Some(p) => {
            let (usd, line) = at_prices(p, usage);
            (usd, Some(line))
        }
        None => (0.0, None),
    }
}

/// Cost in USD of `usage` at `prices`, and the line it was billed at.
pub fn at_prices(prices: &Prices, usage: &Usage) -> (f64, PriceLine) {
    let (rates, line) = prices.line(usage.prompt_tokens, usage.service_tier);
    (at_rates(rates, usage), line)
}

/// Cost in USD of `usage` at `rates`: uncached input, cache reads, 5-minute writes, 1-hour
/// writes and output, each at its own rate, per million tokens. Parts larger than their whole
/// are capped (a server's bad report costs no less).
pub fn at_rates(rates: &Rates, usage: &Usage) -> f64 {
    let cached = usage.cached_tokens.min(usage.prompt_tokens);
    let written = usage.cache_write_tokens.min(usage.prompt_tokens - cached);
    let written_1h = usage.cache_write_1h_tokens.min(written);
    let uncached = usage.prompt_tokens - cached - written;
    let input = rates.input * uncached as f64
        + rates.cached_input * cached as f64
        + rates.cache_write * (written - written_1h) as f64
        + rates.cache_write_1h * written_1h as f64;
    (input + rates.output * usage.completion_tokens as f64) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::prices::{Origin, PromptTier};

    fn model(base: Option<Rates>) -> Model {
        Model {
            name: "m".into(),
            aliases: vec![],
            fallbacks: vec![],
            prices: base.map(|base| {
                std::sync::Arc::new(Prices {
                    base,
                    tiers: vec![],
                    flex: None,
                    priority: None,
                    origin: Origin::Config,
                    whence: Default::default(),
                    lender: None,
                })
            }),
            strategy: Default::default(),
            kind: Default::default(),
            routes: vec![],
        }
    }

    fn rates(input: f64, output: f64, cached: f64, write: f64) -> Rates {
        Rates {
            input,
            output,
            cached_input: cached,
            cache_write: write,
            cache_write_1h: input * 2.0,
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
        assert!((cost(&model(Some(rates(2.5, 10.0, 2.5, 2.5))), &u) - 7.5).abs() < 1e-9);
        assert_eq!(priced(&model(None), &u), (0.0, None));
    }

    /// The issue's example: 3 / 15 USD per million, cache reads at a tenth of the input price.
    #[test]
    fn cost_prices_cache_reads_and_writes_apart() {
        let m = model(Some(rates(3.0, 15.0, 0.3, 3.75)));
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
        // Parts larger than the whole are capped (a server's bad report costs no less).
        let odd = Usage {
            cached_tokens: 200_000,
            ..u
        };
        assert!((cost(&m, &odd) - (90_020.0 * 0.3 + 1_500.0) / 1e6).abs() < 1e-12);
    }

    fn prices() -> Prices {
        let r = |input: f64, output: f64| Rates {
            input,
            output,
            cached_input: input * 0.1,
            cache_write: input * 1.25,
            cache_write_1h: input * 2.0,
        };
        Prices {
            base: r(3.0, 15.0),
            tiers: vec![PromptTier {
                above_prompt_tokens: 200_000,
                rates: r(6.0, 22.5),
            }],
            flex: Some(r(1.5, 7.5)),
            priority: None,
            origin: Origin::Config,
            whence: Default::default(),
            lender: None,
        }
    }

    /// The issue's example: 100,000 tokens written to the 1-hour cache at $3/MTok input cost
    /// $0.60 (2×), and 100,000 to the 5-minute cache $0.375 (1.25×).
    #[test]
    fn one_hour_and_five_minute_writes_at_their_own_rates() {
        let u = Usage {
            prompt_tokens: 200_000,
            cache_write_tokens: 200_000,
            cache_write_1h_tokens: 100_000,
            ..Usage::default()
        };
        let (usd, line) = at_prices(&prices(), &u);
        assert!((usd - (0.60 + 0.375)).abs() < 1e-12, "{usd}");
        assert_eq!(line, PriceLine::Base);
        // A 1-hour part larger than the writes is capped at them.
        let odd = Usage {
            cache_write_1h_tokens: 900_000,
            ..u
        };
        assert!((at_rates(&prices().base, &odd) - 1.2).abs() < 1e-12);
    }

    #[test]
    fn the_whole_request_above_a_threshold_at_the_tier() {
        let p = prices();
        let at = Usage::new(200_000, 1_000);
        assert_eq!(at_prices(&p, &at).1, PriceLine::Base);
        assert!((at_prices(&p, &at).0 - (0.6 + 0.015)).abs() < 1e-12);
        let above = Usage::new(200_001, 1_000);
        let (usd, line) = at_prices(&p, &above);
        assert_eq!(line.to_string(), "tier>200000");
        assert!((usd - (200_001.0 * 6.0 + 1_000.0 * 22.5) / 1e6).abs() < 1e-12);
    }

    #[test]
    fn a_service_tier_with_rates_wins_one_without_falls_back() {
        let p = prices();
        let flex = Usage {
            service_tier: Some(ServiceTier::Flex),
            ..Usage::new(300_000, 10)
        };
        let (usd, line) = at_prices(&p, &flex);
        assert_eq!(line.to_string(), "flex");
        assert!((usd - (300_000.0 * 1.5 + 75.0) / 1e6).abs() < 1e-12);
        let priority = Usage {
            service_tier: Some(ServiceTier::Priority),
            ..Usage::new(10, 10)
        };
        assert_eq!(at_prices(&p, &priority).1, PriceLine::Base);
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
        let h: Usage = serde_json::from_str(
            r#"{"prompt_tokens":50,"completion_tokens":1,
                "prompt_tokens_details":{"cache_write_tokens":40,"cache_write_1h_tokens":30}}"#,
        )
        .unwrap();
        assert_eq!((h.cache_write_tokens, h.cache_write_1h_tokens), (40, 30));
        let back = serde_json::to_value(h).unwrap();
        assert_eq!(back["prompt_tokens_details"]["cache_write_1h_tokens"], 30);
        let plain = serde_json::to_value(Usage::new(1, 2)).unwrap();
        assert!(plain.get("prompt_tokens_details").is_none());
    }
}
