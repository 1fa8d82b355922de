//! `[[teams]]` and the `[[keys]]` that belong to them: limits, model globs, key ids, hashes
//! and expiry dates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use toml::Spanned;

use super::checks::{globs, limits, money, name, opt, positive, unique};
use super::{Result, Source};
use crate::config::raw;
use crate::config::{Key, Limits, Team, UserSource};

type Teams = (Vec<Arc<Team>>, HashMap<String, usize>);

/// Checks every team on its own, recording each one's first error in `src`. The index holds
/// every well-named team (also one that failed otherwise, so that its keys are not reported
/// as naming no team).
pub(super) fn teams(src: &Source, raw: &[raw::Team]) -> Teams {
    let mut seen = HashMap::new();
    let mut list = Vec::with_capacity(raw.len());
    let mut index = HashMap::new();
    for (i, t) in raw.iter().enumerate() {
        let path = format!("teams[{i}]");
        let named = src
            .keep(name(src, &t.name, &format!("{path}.name")))
            .and_then(|_| {
                src.keep(unique(
                    src,
                    &mut seen,
                    &t.name,
                    &format!("{path}.name"),
                    "team",
                ))
            });
        if named.is_none() {
            continue;
        }
        index.insert(t.name.get_ref().clone(), i);
        if let Some(team) = src.keep(team(src, &path, t)) {
            list.push(Arc::new(team));
        }
    }
    (list, index)
}

fn team(src: &Source, path: &str, t: &raw::Team) -> Result<Team> {
    let models = opt(t.models.as_ref(), |g| {
        globs(src, g, &format!("{path}.models"))
    })?;
    let user_from = match &t.attribution {
        None => vec![UserSource::Header],
        Some(a) => user_from(src, a, path)?,
    };
    Ok(Team {
        name: t.name.get_ref().clone(),
        models,
        limits: limits(src, t.limits(), path)?,
        user_limits: user_limits(src, t, path)?,
        user_from,
    })
}

/// `user_tokens_per_day` and `user_usd_per_month`: the budgets of each user of the team.
fn user_limits(src: &Source, t: &raw::Team, path: &str) -> Result<Limits> {
    Ok(Limits {
        tokens_per_day: opt(t.user_tokens_per_day.as_ref(), |v| {
            positive(src, v, &format!("{path}.user_tokens_per_day"), u64::MAX)
        })?,
        usd_per_month: opt(t.user_usd_per_month.as_ref(), |v| {
            money(src, v, &format!("{path}.user_usd_per_month"))
        })?,
        ..Limits::default()
    })
}

/// `[teams.attribution] user_from`: a list of `"header"` and `"body"`, each at most once (an
/// empty list: no user is read). Absent: `["header"]`.
fn user_from(src: &Source, a: &Spanned<raw::Attribution>, path: &str) -> Result<Vec<UserSource>> {
    let field = format!("{path}.attribution.user_from");
    let Some(list) = &a.get_ref().user_from else {
        return Ok(vec![UserSource::Header]);
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let source = match v.get_ref().as_str() {
            "header" => UserSource::Header,
            "body" => UserSource::Body,
            other => {
                return Err(src.at(
                    v,
                    &field,
                    format!("unknown source {other:?}: one of \"header\", \"body\""),
                ))
            }
        };
        if out.contains(&source) {
            return Err(src.at(v, &field, format!("{:?} is listed twice", source.name())));
        }
        out.push(source);
    }
    Ok(out)
}

type Keys = (Vec<Arc<Key>>, HashMap<[u8; 32], usize>);

/// Checks every key on its own, recording each one's first error in `src`.
pub(super) fn keys(src: &Source, raw: &[raw::Key], teams: &HashMap<String, usize>) -> Keys {
    let mut seen_ids = HashMap::new();
    let mut index: HashMap<[u8; 32], usize> = HashMap::new();
    let mut list = Vec::with_capacity(raw.len());
    for (i, k) in raw.iter().enumerate() {
        let path = format!("keys[{i}]");
        let Some(key) = src.keep(key(src, &path, k, teams)) else {
            continue;
        };
        let distinct = unique(src, &mut seen_ids, &k.id, &format!("{path}.id"), "key id")
            .and_then(|()| distinct_secret(src, raw, &index, &path, k, &key));
        if src.keep(distinct).is_none() {
            continue;
        }
        index.insert(key.sha256, i);
        list.push(Arc::new(key));
    }
    (list, index)
}

/// One secret, one key: refuses a hash already held by an earlier key (named).
fn distinct_secret(
    src: &Source,
    raw: &[raw::Key],
    index: &HashMap<[u8; 32], usize>,
    path: &str,
    k: &raw::Key,
    key: &Key,
) -> Result<()> {
    match index.get(&key.sha256) {
        Some(&first) => {
            let first_id = raw.get(first).map_or("", |f| f.id.get_ref().as_str());
            Err(src.at(
                &k.sha256,
                &format!("{path}.sha256"),
                format!("same sha256 as keys[{first}] ({first_id:?}): one secret, one key"),
            ))
        }
        None => Ok(()),
    }
}

fn key(src: &Source, path: &str, k: &raw::Key, teams: &HashMap<String, usize>) -> Result<Key> {
    let field = |name: &str| format!("{path}.{name}");
    let id = key_id(src, &k.id, &field("id"))?;
    let team = *teams.get(k.team.get_ref()).ok_or_else(|| {
        src.at(
            &k.team,
            &field("team"),
            format!("no team named {:?}", k.team.get_ref()),
        )
    })?;
    let sha256 = sha256_hex(k.sha256.get_ref())
        .ok_or_else(|| src.at(&k.sha256, &field("sha256"), "must be exactly 64 hex digits"))?;
    let expires_at = opt(k.expires_at.as_ref(), |v| {
        expires_at(src, v, &field("expires_at"))
    })?;
    Ok(Key {
        id,
        team,
        sha256,
        limits: limits(src, k.limits(), path)?,
        expires_at,
        disabled: k.disabled,
    })
}

/// A key id is a metric label and a log field: a conservative character set keeps it one
/// ([`super::rules::key_id`]).
fn key_id(src: &Source, value: &Spanned<String>, path: &str) -> Result<String> {
    super::rules::key_id(value.get_ref()).map_err(|reason| src.at(value, path, reason))?;
    Ok(value.get_ref().clone())
}

fn sha256_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// `expires_at` as a quoted string or a bare TOML date-time, both RFC 3339 with an offset.
fn expires_at(src: &Source, value: &Spanned<toml::Value>, path: &str) -> Result<SystemTime> {
    let text = match value.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => {
            return Err(src.at(
                value,
                path,
                "must be an RFC 3339 date-time such as \"2027-01-01T00:00:00Z\"",
            ))
        }
    };
    parse_rfc3339(&text).map_err(|reason| src.at(value, path, reason))
}

/// RFC 3339 with `Z` or a numeric offset ([`super::rules::rfc3339`]).
fn parse_rfc3339(text: &str) -> std::result::Result<SystemTime, String> {
    super::rules::rfc3339(text)
}

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::*;

    // --- teams and keys ----------------------------------------------------------------------

    #[test]
    fn per_user_budgets_and_attribution_sources() {
        use crate::config::UserSource;
        let team = |field: &str| format!("[[teams]]\nname = \"t\"\n{field} # <-\n");
        rejects(
            &team("user_tokens_per_day = 0"),
            "teams[0].user_tokens_per_day",
            "positive",
        );
        rejects(
            &team("user_usd_per_month = -1.0"),
            "teams[0].user_usd_per_month",
            ">= 0",
        );
        let sources = |list: &str| {
            format!("[[teams]]\nname = \"t\"\n[teams.attribution]\nuser_from = {list} # <-\n")
        };
        rejects(
            &sources("[\"header\", \"cookie\"]"),
            "teams[0].attribution.user_from",
            "unknown source \"cookie\"",
        );
        rejects(
            &sources("[\"body\", \"body\"]"),
            "teams[0].attribution.user_from",
            "listed twice",
        );
        let c = load(
            "[[teams]]\nname = \"t\"\nuser_tokens_per_day = 400\nuser_usd_per_month = 2.5\n\
             [teams.attribution]\nuser_from = [\"body\", \"header\"]\n",
        )
        .unwrap();
        let t = &c.teams[0];
        assert_eq!(t.user_from, [UserSource::Body, UserSource::Header]);
        assert_eq!(t.user_limits.tokens_per_day, Some(400));
        assert_eq!(t.user_limits.usd_per_month, Some(2.5));
        assert_eq!(t.user_limits.rpm, None);
        let plain = load("[[teams]]\nname = \"t\"\n").unwrap();
        assert_eq!(
            plain.teams[0].user_from,
            [UserSource::Header],
            "the default"
        );
    }

    #[test]
    fn team_limits_and_globs() {
        let team = |field: &str| format!("[[teams]]\nname = \"t\"\n{field} # <-\n");
        rejects(&team("rpm = 0"), "teams[0].rpm", "positive integer");
        rejects(
            &team("tpm = 4294967296"),
            "teams[0].tpm",
            "at most 4294967295",
        );
        rejects(
            &team("max_concurrent = -1"),
            "teams[0].max_concurrent",
            "positive",
        );
        rejects(
            &team("tokens_per_day = 0"),
            "teams[0].tokens_per_day",
            "positive",
        );
        rejects(
            &team("usd_per_month = -0.01"),
            "teams[0].usd_per_month",
            ">= 0",
        );
        rejects(
            &team("models = [\"a\", \"\"]"),
            "teams[0].models[1]",
            "must not be empty",
        );
        rejects(
            &team("models = [\"a\", \"gpt-[4\"]"),
            "teams[0].models[1]",
            "invalid glob \"gpt-[4\": unclosed character class",
        );
        let c = load(&team("models = []")).unwrap();
        assert!(!c.teams[0].allows("anything"));
    }

    fn key(fields: &str) -> String {
        with_base(&format!("[[keys]]\nid = \"k\"\nteam = \"t\"\n{fields}"))
    }

    #[test]
    fn key_checks() {
        rejects(
            &key(&format!("sha256 = \"{HASH_A}\"\nrpm = 0 # <-\n")),
            "keys[0].rpm",
            "positive",
        );
        rejects(
            &key(&format!(
                "sha256 = \"{HASH_A}\"\nusd_per_month = nan # <-\n"
            )),
            "keys[0].usd_per_month",
            "finite",
        );
        rejects(
            &key("sha256 = \"abc\" # <-\n"),
            "keys[0].sha256",
            "exactly 64 hex digits",
        );
        let not_hex = format!("{}zz", &HASH_A[..62]);
        rejects(
            &key(&format!("sha256 = \"{not_hex}\" # <-\n")),
            "keys[0].sha256",
            "64 hex",
        );
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"k\"\nteam = \"nope\" # <-\nsha256 = \"{HASH_A}\"\n"
            )),
            "keys[0].team",
            "no team named \"nope\"",
        );
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"a/b\" # <-\nteam = \"t\"\nsha256 = \"{HASH_A}\"\n"
            )),
            "keys[0].id",
            "may contain only",
        );
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"\" # <-\nteam = \"t\"\nsha256 = \"{HASH_A}\"\n"
            )),
            "keys[0].id",
            "must not be empty",
        );
        // The same secret under two ids, once in upper case.
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"a\"\nteam = \"t\"\nsha256 = \"{HASH_A}\"\n\
                 [[keys]]\nid = \"b\"\nteam = \"t\"\nsha256 = \"{}\" # <-\n",
                HASH_A.to_ascii_uppercase()
            )),
            "keys[1].sha256",
            "same sha256 as keys[0] (\"a\")",
        );
    }

    #[test]
    fn key_expiry() {
        let exp = |v: &str| key(&format!("sha256 = \"{HASH_A}\"\nexpires_at = {v} # <-\n"));
        let at = |v: &str| load(&exp(v)).map(|c| c.keys[0].expires_at);
        assert_eq!(at("\"1970-01-01T00:00:10Z\""), Ok(Some(unix(10))));
        assert_eq!(
            at("\"2027-01-01t00:00:00z\""),
            Ok(Some(unix(1_798_761_600)))
        );
        assert_eq!(
            at("\"2026-12-31T19:00:00-05:00\""),
            Ok(Some(unix(1_798_761_600)))
        );
        assert_eq!(
            at("\"2027-01-01T00:00:00.5+00:00\""),
            Ok(Some(unix(1_798_761_600) + Duration::from_millis(500)))
        );
        assert_eq!(at("2027-01-01T00:00:00Z"), Ok(Some(unix(1_798_761_600))));
        let path = "keys[0].expires_at";
        rejects(&exp("\"2027-01-01\""), path, "not an RFC 3339 date-time");
        rejects(&exp("\"2027-01-01T00:00:00\""), path, "RFC 3339");
        rejects(&exp("\"2027-13-01T00:00:00Z\""), path, "RFC 3339");
        rejects(&exp("\"2027-01-01T00:00:00+25:00\""), path, "RFC 3339");
        rejects(&exp("\"next year\""), path, "RFC 3339");
        rejects(&exp("2027-01-01"), path, "RFC 3339");
        rejects(&exp("1798761600"), path, "must be an RFC 3339 date-time");
    }
}
