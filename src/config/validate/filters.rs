//! `[[content_filters]]`: named deny-lists of regexes and the teams they apply to.

use std::collections::HashMap;
use std::sync::Arc;

use toml::Spanned;

use super::checks::{globs, name, unique};
use super::{Result, Source};
use crate::config::raw;
use crate::config::{ContentFilter, Globs};

fn content_filter(src: &Source, i: usize, f: &raw::ContentFilter) -> Result<ContentFilter> {
    let path = format!("content_filters[{i}]");
    let name = name(src, &f.name, &format!("{path}.name"))?;
    if f.deny.is_empty() {
        return Err(src.at(
            &f.name,
            &format!("{path}.deny"),
            "deny must list at least one regex",
        ));
    }
    let deny = f
        .deny
        .iter()
        .enumerate()
        .map(|(j, re)| deny_regex(src, re, &format!("{path}.deny[{j}]")))
        .collect::<Result<Vec<_>>>()?;
    let teams = match &f.teams {
        None => Globs::new(vec!["*".to_string()])
            .map_err(|(_, e)| src.error(None, &format!("{path}.teams"), e))?,
        Some(g) => globs(src, g, &format!("{path}.teams"))?,
    };
    Ok(ContentFilter { name, deny, teams })
}

/// Checks every filter on its own, recording each one's first error in `src`.
pub(super) fn content_filters(src: &Source, raw: &[raw::ContentFilter]) -> Vec<Arc<ContentFilter>> {
    let mut seen = HashMap::new();
    let mut list = Vec::with_capacity(raw.len());
    for (i, f) in raw.iter().enumerate() {
        let Some(filter) = src.keep(content_filter(src, i, f)) else {
            continue;
        };
        let path = format!("content_filters[{i}].name");
        if src
            .keep(unique(src, &mut seen, &f.name, &path, "content filter"))
            .is_some()
        {
            list.push(Arc::new(filter));
        }
    }
    list
}

fn deny_regex(src: &Source, value: &Spanned<String>, path: &str) -> Result<regex::Regex> {
    if value.get_ref().is_empty() {
        return Err(src.at(value, path, "an empty regex would match every request"));
    }
    regex::Regex::new(value.get_ref()).map_err(|e| {
        let reason = format!("invalid regex {:?}: {}", value.get_ref(), regex_reason(&e));
        src.at(value, path, reason)
    })
}

/// The one-line cause of a regex error (its `Display` is a multi-line picture of the pattern).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .map_or_else(
            || text.lines().next().unwrap_or("").to_string(),
            str::to_string,
        )
}

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::*;

    // --- content filters ---------------------------------------------------------------------

    #[test]
    fn content_filter_checks() {
        let text = "[[content_filters]]\nname = \"f\"\ndeny = [\n  'ok',\n  '(unclosed', # <-\n]\n";
        rejects(
            text,
            "content_filters[0].deny[1]",
            "invalid regex \"(unclosed\": unclosed group",
        );
        let e = reject(text);
        assert!(!e.reason.contains('\n'), "{e}");
        rejects(
            "[[content_filters]]\nname = \"f\" # <-\ndeny = []\n",
            "content_filters[0].deny",
            "at least one regex",
        );
        rejects(
            "[[content_filters]]\nname = \"f\"\ndeny = [''] # <-\n",
            "content_filters[0].deny[0]",
            "match every request",
        );
        rejects(
            "[[content_filters]]\nname = \"f\"\ndeny = ['x']\nteams = [''] # <-\n",
            "content_filters[0].teams[0]",
            "must not be empty",
        );
        rejects(
            "[[content_filters]] # <-\nname = \"f\"\n",
            "content_filters[0]",
            "missing field `deny`",
        );
    }
}
