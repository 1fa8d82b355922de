//! Small checks shared by every section: names (unique, short, no whitespace), non-blank
//! strings, positive integers in the runtime type's range, money, glob lists, limits, CA files.

use std::collections::HashMap;
use std::path::Path;

use toml::Spanned;

use super::{rules, Result, Source};
use crate::config::raw;
use crate::config::{Globs, Limits};

/// A provider, model, alias or team name: it is matched exactly and becomes a metric label, so
/// it must be non-empty, short, and free of whitespace and control characters.
pub(super) fn name(src: &Source, value: &Spanned<String>, path: &str) -> Result<String> {
    rules::name(value.get_ref()).map_err(|reason| src.at(value, path, reason))?;
    Ok(value.get_ref().clone())
}

/// Records `value` as a name of kind `what`, refusing one already seen (it names the first).
pub(super) fn unique(
    src: &Source,
    seen: &mut HashMap<String, usize>,
    value: &Spanned<String>,
    path: &str,
    what: &str,
) -> Result<()> {
    let line = src.line_of(value.span().start);
    match seen.insert(value.get_ref().clone(), line) {
        Some(first) => Err(src.at(
            value,
            path,
            format!(
                "duplicate {what} {:?} (first on line {first})",
                value.get_ref()
            ),
        )),
        None => Ok(()),
    }
}

/// A string that must have some non-blank content (an upstream model name, a glob).
pub(super) fn non_blank(src: &Source, value: &Spanned<String>, path: &str) -> Result<String> {
    if value.get_ref().trim().is_empty() {
        return Err(src.at(value, path, "must not be empty"));
    }
    Ok(value.get_ref().clone())
}

/// A positive integer no larger than `max` (the runtime type's range).
pub(super) fn positive(src: &Source, value: &Spanned<i64>, path: &str, max: u64) -> Result<u64> {
    rules::positive(*value.get_ref(), max).map_err(|reason| src.at(value, path, reason))
}

pub(super) fn positive_u32(src: &Source, value: &Spanned<i64>, path: &str) -> Result<u32> {
    rules::positive_u32(*value.get_ref()).map_err(|reason| src.at(value, path, reason))
}

pub(super) fn positive_usize(src: &Source, value: &Spanned<i64>, path: &str) -> Result<usize> {
    let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
    let n = positive(src, value, path, max)?;
    usize::try_from(n).map_err(|_| src.at(value, path, "out of range"))
}

/// A price or a money budget: finite and not negative (zero is a free model or no spending).
pub(super) fn money(src: &Source, value: &Spanned<f64>, path: &str) -> Result<f64> {
    rules::money(*value.get_ref()).map_err(|reason| src.at(value, path, reason))
}

/// Applies `f` to an optional field, keeping `None`.
pub(super) fn opt<T, U>(value: Option<&T>, f: impl FnOnce(&T) -> Result<U>) -> Result<Option<U>> {
    value.map(f).transpose()
}

/// A list of globs (team model allow-lists, content-filter team lists): non-empty strings
/// that compile (`Globs`); an invalid one is reported at its own line.
pub(super) fn globs(src: &Source, values: &[Spanned<String>], path: &str) -> Result<Globs> {
    let patterns = values
        .iter()
        .enumerate()
        .map(|(i, g)| non_blank(src, g, &format!("{path}[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Globs::new(patterns).map_err(|(i, reason)| {
        let g = &values[i];
        src.at(
            g,
            &format!("{path}[{i}]"),
            format!("invalid glob {:?}: {reason}", g.get_ref()),
        )
    })
}

pub(super) fn limits(src: &Source, raw: raw::Limits, path: &str) -> Result<Limits> {
    let field = |name: &str| format!("{path}.{name}");
    Ok(Limits {
        rpm: opt(raw.rpm, |v| positive_u32(src, v, &field("rpm")))?,
        tpm: opt(raw.tpm, |v| positive_u32(src, v, &field("tpm")))?,
        max_concurrent: opt(raw.max_concurrent, |v| {
            positive_u32(src, v, &field("max_concurrent"))
        })?,
        tokens_per_day: opt(raw.tokens_per_day, |v| {
            positive(src, v, &field("tokens_per_day"), u64::MAX)
        })?,
        usd_per_month: opt(raw.usd_per_month, |v| {
            money(src, v, &field("usd_per_month"))
        })?,
    })
}

/// Checks that `path` holds CA certificates (unless `src` reads no PEM files).
pub(super) fn pem_roots(src: &Source, path: &Path) -> std::result::Result<(), String> {
    if src.read_pem_files() {
        crate::server::tls::pem::load_roots(path)?;
    }
    Ok(())
}
