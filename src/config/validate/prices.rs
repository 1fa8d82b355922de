//! Prices: a model's price fields, `[[models.price_tiers]]` and `[models.service_tiers.*]`,
//! the price catalogue (the built-in `config/prices.toml` and the operator's
//! `[pricing] catalogue`), and the one place a model's [`Prices`] are resolved from them.
//!
//! Resolution ([`resolve`]), for each model:
//! 1. Its catalogue entry: the first entry, the operator's catalogue before the built-in one,
//!    whose `kind` is the kind of one of the model's routes (`azure` routes take `openai`
//!    entries) and one of whose `models` globs matches that route's upstream model; else one
//!    matching the model's own name.
//! 2. A model that writes any price field, tier or service tier is priced by the config: each
//!    base field it leaves out is the catalogue entry's (input, output) or the entry's ratio
//!    to its input price (cache prices), else the vendor's documented ratio
//!    ([`VendorRatios::of_kind`] of its first route) times the input price. The catalogue's
//!    tiers and service tiers are not mixed in: the config's are the only ones.
//! 3. Otherwise the catalogue entry, its cache prices left out filled by the vendor's ratio.
//! 4. No entry: no prices (the model costs 0; `switchyard check` warns).
//!
//! In a tier or a service tier, `input` and `output` left out are the base's, cache prices
//! left out the same ratio times the tier's input. Every price must be a finite number >= 0,
//! and tiers' `above_prompt_tokens` must rise strictly, in the order written: a repeated or
//! lower threshold is an error naming the line of both.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::checks::{globs, money, non_blank, opt, positive};
use super::{Result, Source};
use crate::accounting::prices::{Origin, Prices, PromptTier, Rates, VendorRatios, Whence};
use crate::config::{raw, ConfigError, Globs};

/// The catalogue that ships with the binary.
pub(crate) const BUILTIN: &str = include_str!("../../../config/prices.toml");

/// What the built-in catalogue's file is called in errors and `switchyard prices`.
const BUILTIN_NAME: &str = "built-in config/prices.toml";

/// The vendor kinds a catalogue entry may name.
const KINDS: [&str; 6] = [
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "bedrock",
    "vertex",
];

/// The five prices as written, each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Partial {
    input: Option<f64>,
    output: Option<f64>,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
}

impl Partial {
    fn any(&self) -> bool {
        *self != Partial::default()
    }

    /// Complete rates: `input`/`output` left out from `base`, cache prices from `ratios`
    /// times the input price. Also says how each cache price was found.
    fn fill(&self, base: Option<&Rates>, ratios: (VendorRatios, Whence)) -> (Rates, [Whence; 3]) {
        let input = self.input.or(base.map(|b| b.input)).unwrap_or(0.0);
        let output = self.output.or(base.map(|b| b.output)).unwrap_or(0.0);
        let (ratio, derived) = ratios;
        let pick = |given: Option<f64>, r: f64| match given {
            Some(v) => (v, Whence::Given),
            None => (input * r, derived),
        };
        let (cached_input, w0) = pick(self.cached_input, ratio.cached_input);
        let (cache_write, w1) = pick(self.cache_write, ratio.cache_write);
        let (cache_write_1h, w2) = pick(self.cache_write_1h, ratio.cache_write_1h);
        (
            Rates {
                input,
                output,
                cached_input,
                cache_write,
                cache_write_1h,
            },
            [w0, w1, w2],
        )
    }
}

/// A model's or an entry's prices as written.
#[derive(Debug, Clone, Default)]
pub(super) struct Written {
    base: Partial,
    tiers: Vec<(u64, Partial)>,
    flex: Option<Partial>,
    priority: Option<Partial>,
}

impl Written {
    fn any(&self) -> bool {
        self.base.any() || !self.tiers.is_empty() || self.flex.is_some() || self.priority.is_some()
    }

    /// Complete prices: the base filled from `fallback` (input/output) and `ratios`, the
    /// tiers and service tiers from the base and `ratios`.
    fn complete(
        &self,
        fallback: Option<&Rates>,
        ratios: (VendorRatios, Whence),
        origin: Origin,
    ) -> Prices {
        let (base, cache_whence) = self.base.fill(fallback, ratios);
        let tier = |p: &Partial| p.fill(Some(&base), ratios).0;
        Prices {
            tiers: self
                .tiers
                .iter()
                .map(|(above, p)| PromptTier {
                    above_prompt_tokens: *above,
                    rates: tier(p),
                })
                .collect(),
            flex: self.flex.as_ref().map(tier),
            priority: self.priority.as_ref().map(tier),
            base,
            origin,
            cache_whence,
        }
    }
}

/// The five price fields of a table at `path`, each a finite number >= 0.
fn partial(src: &Source, r: raw::RawRates, path: &str) -> Result<Partial> {
    let price =
        |v: Option<&Spanned<f64>>, name: &str| opt(v, |v| money(src, v, &format!("{path}.{name}")));
    Ok(Partial {
        input: price(r.input_usd_per_mtok, "input_usd_per_mtok")?,
        output: price(r.output_usd_per_mtok, "output_usd_per_mtok")?,
        cached_input: price(r.cached_input_usd_per_mtok, "cached_input_usd_per_mtok")?,
        cache_write: price(r.cache_write_usd_per_mtok, "cache_write_usd_per_mtok")?,
        cache_write_1h: price(r.cache_write_1h_usd_per_mtok, "cache_write_1h_usd_per_mtok")?,
    })
}

/// The prices a `[[models]]` entry or a catalogue entry writes, checked.
pub(super) fn written(
    src: &Source,
    path: &str,
    rates: raw::RawRates,
    tiers: &[raw::PriceTier],
    service: Option<&raw::ServiceTiers>,
) -> Result<Written> {
    let base = partial(src, rates, path)?;
    let mut out = Vec::with_capacity(tiers.len());
    let mut last: Option<(u64, &Spanned<i64>)> = None;
    for (j, t) in tiers.iter().enumerate() {
        let tpath = format!("{path}.price_tiers[{j}]");
        let field = format!("{tpath}.above_prompt_tokens");
        let above = positive(src, &t.above_prompt_tokens, &field, u64::MAX)?;
        if let Some((prev, prev_at)) = last {
            if above <= prev {
                let line = src.line_of(prev_at.span().start);
                let what = if above == prev { "repeats" } else { "is below" };
                return Err(src.at(
                    &t.above_prompt_tokens,
                    &field,
                    format!(
                        "{above} {what} the threshold {prev} of the tier on line {line}: tiers overlap; write them with rising above_prompt_tokens"
                    ),
                ));
            }
        }
        last = Some((above, &t.above_prompt_tokens));
        out.push((above, partial(src, t.rates(), &tpath)?));
    }
    let (flex, priority) = match service {
        None => (None, None),
        Some(s) => {
            let spath = format!("{path}.service_tiers");
            (
                opt(s.flex.as_ref(), |f| {
                    partial(src, f.rates(), &format!("{spath}.flex"))
                })?,
                opt(s.priority.as_ref(), |p| {
                    partial(src, p.rates(), &format!("{spath}.priority"))
                })?,
            )
        }
    };
    Ok(Written {
        base,
        tiers: out,
        flex,
        priority,
    })
}

/// One catalogue entry, checked.
#[derive(Debug)]
struct Entry {
    kind: String,
    models: Globs,
    /// Its complete rates (its own cache prices, else the vendor's ratios).
    complete: Prices,
}

/// A price catalogue: entries in the order written.
#[derive(Debug, Default)]
pub(crate) struct Catalogue {
    entries: Vec<Entry>,
}

impl Catalogue {
    /// The first entry for `kind` (`azure`: `openai`) whose globs match `model`.
    fn find(&self, kind: &str, model: &str) -> Option<&Entry> {
        let kind = if kind == "azure" { "openai" } else { kind };
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.models.matches(model))
    }
}

/// Parses and checks a catalogue file's `text` (`file` names it in errors and origins);
/// every error is returned, with its line in that file.
pub(crate) fn parse_catalogue(
    text: &str,
    file: &Path,
    name: &str,
) -> std::result::Result<Catalogue, Vec<ConfigError>> {
    let src = Source::new(text, file, super::Mode::Offline);
    let raw: raw::Catalogue = toml::from_str(text).map_err(|e| vec![src.toml_error(&e, true)])?;
    let mut entries = Vec::with_capacity(raw.prices.len());
    for (i, e) in raw.prices.iter().enumerate() {
        if let Some(entry) = src.keep(entry(&src, i, e, name)) {
            entries.push(entry);
        }
    }
    match src.errors.take() {
        errors if errors.is_empty() => Ok(Catalogue { entries }),
        errors => Err(errors),
    }
}

fn entry(src: &Source, i: usize, e: &raw::CatalogueEntry, file: &str) -> Result<Entry> {
    let path = format!("prices[{i}]");
    let kind = e.kind.get_ref();
    if !KINDS.contains(&kind.as_str()) {
        return Err(src.at(
            &e.kind,
            &format!("{path}.kind"),
            format!("unknown kind {kind:?}: use one of {}", KINDS.join(", ")),
        ));
    }
    if e.models.is_empty() {
        return Err(src.at(
            &e.kind,
            &format!("{path}.models"),
            "must list at least one model glob",
        ));
    }
    let models = globs(src, &e.models, &format!("{path}.models"))?;
    let as_of = e.as_of.get_ref();
    if !is_date(as_of) {
        return Err(src.at(
            &e.as_of,
            &format!("{path}.as_of"),
            format!("{as_of:?} is not a YYYY-MM-DD date"),
        ));
    }
    let source = non_blank(src, &e.source, &format!("{path}.source"))?;
    if !source.starts_with("https://") {
        return Err(src.at(
            &e.source,
            &format!("{path}.source"),
            "must be the https:// address of the vendor's price page",
        ));
    }
    let prices = written(
        src,
        &path,
        e.rates(),
        &e.price_tiers,
        e.service_tiers.as_ref(),
    )?;
    for (field, v) in [
        ("input_usd_per_mtok", prices.base.input),
        ("output_usd_per_mtok", prices.base.output),
    ] {
        if v.is_none() {
            return Err(src.at(
                &e.kind,
                &format!("{path}.{field}"),
                "a catalogue entry must give its input and output prices",
            ));
        }
    }
    let origin = Origin::Catalogue {
        file: file.to_string(),
        kind: kind.clone(),
        pattern: models.patterns().join(" "),
        source,
        as_of: as_of.clone(),
    };
    let complete = prices.complete(
        None,
        (VendorRatios::of_kind(kind), Whence::VendorRatio),
        origin,
    );
    Ok(Entry {
        kind: kind.clone(),
        models,
        complete,
    })
}

/// Whether `s` is a `YYYY-MM-DD` date (digits in place; month 1–12, day 1–31).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// The catalogues a config's models are priced from, the operator's first, and the
/// operator's file (watched and hashed for the reloader).
#[derive(Debug, Default)]
pub(super) struct Catalogues {
    list: Vec<Catalogue>,
    /// `[pricing] catalogue` as written, and the SHA-256 of its bytes.
    pub(super) file: Option<(PathBuf, String)>,
}

/// The built-in catalogue, then the operator's `[pricing] catalogue` (read and checked; its
/// errors name its own lines).
pub(super) fn catalogues(src: &Source, pricing: &raw::Pricing) -> Catalogues {
    let mut out = Catalogues::default();
    if let Some(path) = &pricing.catalogue {
        let file = PathBuf::from(path.get_ref());
        match std::fs::read_to_string(&file) {
            Err(e) => {
                src.keep::<()>(Err(src.at(
                    path,
                    "pricing.catalogue",
                    format!("cannot read the price catalogue {}: {e}", file.display()),
                )));
            }
            Ok(text) => {
                let hash = hex::encode(Sha256::digest(text.as_bytes()));
                let name = file.display().to_string();
                match parse_catalogue(&text, &file, &name) {
                    Ok(c) => out.list.push(c),
                    Err(errors) => src.errors.borrow_mut().extend(errors),
                }
                out.file = Some((file, hash));
            }
        }
    }
    match builtin() {
        Ok(c) => out.list.push(c),
        Err(errors) => src.errors.borrow_mut().extend(errors),
    }
    out
}

/// The catalogue that ships with the binary (checked by a test: it never fails).
pub(crate) fn builtin() -> std::result::Result<Catalogue, Vec<ConfigError>> {
    parse_catalogue(BUILTIN, Path::new("config/prices.toml"), BUILTIN_NAME)
}

/// A model's prices (module doc): `written` by its `[[models]]` entry, `routes` its routes'
/// (vendor kind, upstream model), `name` its name.
pub(super) fn resolve(
    written: &Written,
    routes: &[(&str, &str)],
    name: &str,
    catalogues: &Catalogues,
) -> Option<Prices> {
    let by_route = routes
        .iter()
        .find_map(|(kind, model)| catalogues.list.iter().find_map(|c| c.find(kind, model)));
    let entry = by_route.or_else(|| {
        routes
            .iter()
            .find_map(|(kind, _)| catalogues.list.iter().find_map(|c| c.find(kind, name)))
    });
    if !written.any() {
        return entry.map(|e| e.complete.clone());
    }
    let kind = routes.first().map_or("", |(k, _)| *k);
    let ratios = match entry.and_then(|e| VendorRatios::of_rates(&e.complete.base)) {
        Some(r) => (r, Whence::CatalogueRatio),
        None => (VendorRatios::of_kind(kind), Whence::VendorRatio),
    };
    let fallback = entry.map(|e| &e.complete.base);
    Some(written.complete(fallback, ratios, Origin::Config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_is_valid() {
        let c = builtin().unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!c.entries.is_empty());
    }

    #[test]
    fn dates() {
        assert!(is_date("2026-12-06"));
        assert!(!is_date("2026-13-06"));
        assert!(!is_date("2026-1-06"));
        assert!(!is_date("06/12/2026"));
    }
}
