//! Prices of a model as the vendors bill them, and the price line one answer is billed at.
//!
//! A model's [`Prices`] are resolved once, when the config loads
//! ([`crate::config::validate`]): the `[[models]]` entry's own price fields, else the price
//! catalogue's entry for its route (the catalogue shipped in `config/prices.toml`, or the
//! operator's `[pricing] catalogue`). Cache prices left out take the catalogue's ratio to the
//! input price, else the vendor's documented ratio ([`VendorRatios`]).
//!
//! An answer is billed at one price line ([`Prices::line`]):
//! - the OpenAI `service_tier` the answer says served it (`flex`, `priority`) when the model
//!   has rates for it ("Flex processing", "Priority processing",
//!   <https://platform.openai.com/docs/pricing>): the whole request at those rates;
//! - else the highest prompt-size tier whose `above_prompt_tokens` the prompt passes: the whole
//!   request at the tier's rates, as Anthropic ("Long context pricing",
//!   <https://docs.anthropic.com/en/docs/about-claude/pricing>), Google ("Gemini 2.5 Pro:
//!   prompts > 200k tokens", <https://ai.google.dev/gemini-api/docs/pricing>) and OpenAI bill it;
//! - else the base rates.
//!
//! A service tier's rates are not tiered by prompt size. The cost itself is
//! [`crate::accounting::usage::cost`]'s (this module imports nothing of the crate: the config
//! holds its types).

use std::fmt;

/// An OpenAI processing tier billed at other rates than the default ("Flex processing",
/// "Priority processing": <https://platform.openai.com/docs/api-reference/chat/object>
/// `service_tier`). `default`, `auto` and `scale` are the standard rates: not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceTier {
    Flex,
    Priority,
}

impl ServiceTier {
    /// The answer's `service_tier` value; `None` for the standard tiers or an unknown one.
    pub fn parse(s: &str) -> Option<ServiceTier> {
        match s {
            "flex" => Some(ServiceTier::Flex),
            "priority" => Some(ServiceTier::Priority),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
        }
    }
}

/// One set of rates, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens, reasoning included.
    pub output: f64,
    /// Input tokens read from the prompt cache.
    pub cached_input: f64,
    /// Input tokens written to the prompt cache with the default (5-minute) lifetime.
    pub cache_write: f64,
    /// Input tokens written to the prompt cache with a 1-hour lifetime (Anthropic's
    /// `ttl: "1h"`).
    pub cache_write_1h: f64,
}

/// The multipliers of the input price a vendor documents for its cache prices, used when
/// neither the config nor the catalogue gives one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VendorRatios {
    pub cached_input: f64,
    pub cache_write: f64,
    pub cache_write_1h: f64,
}

impl VendorRatios {
    /// No documented ratio: every cache price is the input price.
    pub const NONE: VendorRatios = VendorRatios {
        cached_input: 1.0,
        cache_write: 1.0,
        cache_write_1h: 1.0,
    };

    /// The ratios of a vendor kind (`anthropic`, `openai`, ...) for `model` (the upstream
    /// model, or a catalogue entry's glob):
    /// - Claude (`anthropic`; `bedrock` and `vertex` for a model whose name holds `claude`):
    ///   cache reads 0.1×, 5-minute writes 1.25×, 1-hour writes 2× the base input price
    ///   ("Prompt caching" → "Pricing",
    ///   <https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#pricing>); Bedrock
    ///   and Vertex bill Claude's cache the same way.
    /// - `openai`, `azure`: cache reads 0.5× (the discount OpenAI's "Prompt caching" guide,
    ///   <https://platform.openai.com/docs/guides/prompt-caching>, gives as the least of its
    ///   models; newer models bill less, which the catalogue states), writes at the input price
    ///   (OpenAI bills no cache write).
    /// - Gemini (`gemini`; `vertex` for a `gemini` model): cache reads 0.25× (the least discount
    ///   of "Context caching", <https://ai.google.dev/gemini-api/docs/pricing>), writes at the
    ///   input price (Gemini reports no write).
    /// - anything else (Bedrock's other models, `mock`): no documented ratio, the input price.
    pub fn of(kind: &str, model: &str) -> VendorRatios {
        const CLAUDE: VendorRatios = VendorRatios {
            cached_input: 0.1,
            cache_write: 1.25,
            cache_write_1h: 2.0,
        };
        const OPENAI: VendorRatios = VendorRatios {
            cached_input: 0.5,
            cache_write: 1.0,
            cache_write_1h: 1.0,
        };
        const GEMINI: VendorRatios = VendorRatios {
            cached_input: 0.25,
            cache_write: 1.0,
            cache_write_1h: 1.0,
        };
        match kind {
            "anthropic" => CLAUDE,
            "bedrock" | "vertex" if model.contains("claude") => CLAUDE,
            "openai" | "azure" => OPENAI,
            "gemini" => GEMINI,
            "vertex" if model.contains("gemini") => GEMINI,
            _ => VendorRatios::NONE,
        }
    }

    /// The ratios of a catalogue entry's rates (each cache price over its input price);
    /// `None` for a free input price.
    pub fn of_rates(r: &Rates) -> Option<VendorRatios> {
        (r.input > 0.0).then(|| VendorRatios {
            cached_input: r.cached_input / r.input,
            cache_write: r.cache_write / r.input,
            cache_write_1h: r.cache_write_1h / r.input,
        })
    }
}

/// Rates above a prompt size: a request whose prompt has more than `above_prompt_tokens`
/// tokens is billed wholly at `rates`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTier {
    pub above_prompt_tokens: u64,
    pub rates: Rates,
}

/// Where a price came from, for `switchyard prices` and the docs.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The `[[models]]` entry of the config.
    Config,
    /// A catalogue entry: its model pattern, the vendor page it was read from and when.
    Catalogue {
        /// `built-in` or the operator's catalogue file.
        file: String,
        kind: String,
        pattern: String,
        source: String,
        as_of: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Config => f.write_str("config"),
            Origin::Catalogue {
                file,
                kind,
                pattern,
                source,
                as_of,
            } => write!(
                f,
                "catalogue ({file}): {kind} {pattern:?}, {source} as of {as_of}"
            ),
        }
    }
}

/// How each base price was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whence {
    /// Written in the config or the catalogue entry.
    #[default]
    Given,
    /// Left out of the config, taken from the model's catalogue entry.
    Catalogue,
    /// Left out of the config with no catalogue entry: 0.
    Missing,
    /// The catalogue entry's ratio to its input price.
    CatalogueRatio,
    /// The vendor's documented ratio ([`VendorRatios::of`]).
    VendorRatio,
}

/// A model's prices: the base rates, tiers by prompt size (ascending), rates per service tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    pub base: Rates,
    /// Ascending by `above_prompt_tokens`, no two alike.
    pub tiers: Vec<PromptTier>,
    pub flex: Option<Rates>,
    pub priority: Option<Rates>,
    pub origin: Origin,
    /// How the base's `input`, `output`, `cached_input`, `cache_write` and `cache_write_1h`
    /// were found.
    pub whence: [Whence; 5],
    /// The catalogue entry that lent a price or a ratio to prices the config gives.
    pub lender: Option<Origin>,
}

/// The price line an answer was billed at, as the usage log names it: `base`,
/// `tier>200000`, `flex`, `priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceLine {
    Base,
    Tier(u64),
    Service(ServiceTier),
}

impl fmt::Display for PriceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceLine::Base => f.write_str("base"),
            PriceLine::Tier(n) => write!(f, "tier>{n}"),
            PriceLine::Service(t) => f.write_str(t.as_str()),
        }
    }
}

impl Prices {
    /// The rates a request with `prompt_tokens` served at `service_tier` is billed at, and the
    /// line's name (module doc: service tier first, then prompt tiers, then base).
    pub fn line(
        &self,
        prompt_tokens: u64,
        service_tier: Option<ServiceTier>,
    ) -> (&Rates, PriceLine) {
        let service = match service_tier {
            Some(ServiceTier::Flex) => self.flex.as_ref(),
            Some(ServiceTier::Priority) => self.priority.as_ref(),
            None => None,
        };
        if let (Some(rates), Some(tier)) = (service, service_tier) {
            return (rates, PriceLine::Service(tier));
        }
        match self
            .tiers
            .iter()
            .rev()
            .find(|t| prompt_tokens > t.above_prompt_tokens)
        {
            Some(t) => (&t.rates, PriceLine::Tier(t.above_prompt_tokens)),
            None => (&self.base, PriceLine::Base),
        }
    }
}

/// `switchyard prices`' lines for one model: where its prices come from, then one line per
/// price line (`base`, `tier>N`, `flex`, `priority`) in USD per million tokens, a cache price
/// derived by a ratio marked so. `None` prices: one line saying so.
pub fn describe(name: &str, prices: Option<&Prices>) -> String {
    // Rounded to the nano-dollar: a ratio's product prints as 0.4, not 0.39999999999999997.
    let usd = |v: f64| (v * 1e9).round() / 1e9;
    let Some(p) = prices else {
        return format!(
            "{name}: no price (neither in the config nor in a catalogue): it costs 0 and no budget sees it\n"
        );
    };
    let mut out = format!("{name}: {}\n", p.origin);
    if let Some(lender) = &p.lender {
        out.push_str(&format!("  lent by {lender}\n"));
    }
    let mark = |w: Whence| match w {
        Whence::Given => "",
        Whence::Catalogue => " (catalogue)",
        Whence::Missing => " (not given)",
        Whence::CatalogueRatio => " (catalogue ratio)",
        Whence::VendorRatio => " (vendor ratio)",
    };
    let [wi, wo, w0, w1, w2] = p.whence;
    let b = &p.base;
    out.push_str(&format!(
        "  base: input {}{} output {}{} cached_input {}{} cache_write {}{} cache_write_1h {}{}\n",
        usd(b.input),
        mark(wi),
        usd(b.output),
        mark(wo),
        usd(b.cached_input),
        mark(w0),
        usd(b.cache_write),
        mark(w1),
        usd(b.cache_write_1h),
        mark(w2)
    ));
    let lines = p
        .tiers
        .iter()
        .map(|t| (PriceLine::Tier(t.above_prompt_tokens), &t.rates))
        .chain(
            p.flex
                .iter()
                .map(|r| (PriceLine::Service(ServiceTier::Flex), r)),
        )
        .chain(
            p.priority
                .iter()
                .map(|r| (PriceLine::Service(ServiceTier::Priority), r)),
        );
    for (line, r) in lines {
        out.push_str(&format!(
            "  {line}: input {} output {} cached_input {} cache_write {} cache_write_1h {}\n",
            usd(r.input),
            usd(r.output),
            usd(r.cached_input),
            usd(r.cache_write),
            usd(r.cache_write_1h)
        ));
    }
    out
}
