//! `[auth]`: the `[[auth.jwt]]` issuers. Names unique and distinct from every key id (both
//! are the `key` label of the metrics and the limiter's key scope), issuers unique (a token
//! is routed to its issuer by its `iss`), at least one audience, a JWKS URL over `https` (or
//! `http` to a loopback host, for tests and sidecars), the algorithms among RS256, ES256 and
//! EdDSA, a team claim or a default team naming a `[[teams]]` entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::checks::{name, non_blank, opt, positive, unique};
use super::{Result, Source};
use crate::config::raw;
use crate::config::{JwtAlgorithm, JwtIssuer};

/// Default clock skew allowed on `exp`/`nbf`, seconds.
const DEFAULT_LEEWAY_S: u64 = 60;
/// Default period of the JWK Set's scheduled refetch, seconds.
const DEFAULT_REFRESH_S: u64 = 300;
/// Default least time between two fetches, seconds.
const DEFAULT_MIN_REFETCH_S: u64 = 10;
/// The most clock skew, refresh period or refetch interval accepted: one day.
const MAX_SECONDS: u64 = 86_400;

/// Checks every issuer on its own, recording each one's first error in `src`.
pub(super) fn jwt_issuers(
    src: &Source,
    raw: &[raw::Jwt],
    teams: &HashMap<String, usize>,
    keys: &[raw::Key],
) -> Vec<Arc<JwtIssuer>> {
    let mut names = HashMap::new();
    let mut issuers = HashMap::new();
    let key_ids: HashMap<&str, usize> = keys
        .iter()
        .map(|k| (k.id.get_ref().as_str(), src.line_of(k.id.span().start)))
        .collect();
    let mut list = Vec::with_capacity(raw.len());
    for (i, j) in raw.iter().enumerate() {
        let path = format!("auth.jwt[{i}]");
        let checked = unique(
            src,
            &mut names,
            &j.name,
            &format!("{path}.name"),
            "issuer name",
        )
        .and_then(|()| not_a_key_id(src, &j.name, &key_ids, &path))
        .and_then(|()| {
            unique(
                src,
                &mut issuers,
                &j.issuer,
                &format!("{path}.issuer"),
                "issuer",
            )
        })
        .and_then(|()| issuer(src, &path, j, teams));
        if let Some(issuer) = src.keep(checked) {
            list.push(Arc::new(issuer));
        }
    }
    list
}

fn not_a_key_id(
    src: &Source,
    value: &Spanned<String>,
    key_ids: &HashMap<&str, usize>,
    path: &str,
) -> Result<()> {
    match key_ids.get(value.get_ref().as_str()) {
        Some(line) => Err(src.at(
            value,
            &format!("{path}.name"),
            format!(
                "{:?} is also the id of the key on line {line}: an issuer's name is its \
                 tokens' key id in metrics and limits",
                value.get_ref()
            ),
        )),
        None => Ok(()),
    }
}

fn issuer(
    src: &Source,
    path: &str,
    j: &raw::Jwt,
    teams: &HashMap<String, usize>,
) -> Result<JwtIssuer> {
    let name = name(src, &j.name, &format!("{path}.name"))?;
    let issuer = non_blank(src, &j.issuer, &format!("{path}.issuer"))?;
    let audiences = audiences(src, &j.audiences, path)?;
    let jwks_url = jwks_url(src, &j.jwks_url, &format!("{path}.jwks_url"))?;
    let team_claim = opt(j.team_claim.as_ref(), |c| {
        non_blank(src, c, &format!("{path}.team_claim"))
    })?;
    let default_team = opt(j.default_team.as_ref(), |t| {
        teams.get(t.get_ref()).copied().ok_or_else(|| {
            src.at(
                t,
                &format!("{path}.default_team"),
                format!("names no [[teams]] entry: {:?}", t.get_ref()),
            )
        })
    })?;
    if team_claim.is_none() && default_team.is_none() {
        return Err(src.at(
            &j.name,
            path,
            "needs `team_claim` (the claim naming the team), `default_team`, or both",
        ));
    }
    let user_claim = opt(j.user_claim.as_ref(), |c| {
        non_blank(src, c, &format!("{path}.user_claim"))
    })?
    .unwrap_or_else(|| "sub".to_string());
    let limits_claim = opt(j.limits_claim.as_ref(), |c| {
        non_blank(src, c, &format!("{path}.limits_claim"))
    })?;
    let algorithms = match &j.algorithms {
        None => JwtAlgorithm::ALL.to_vec(),
        Some(list) => algorithms(src, list, &format!("{path}.algorithms"))?,
    };
    let seconds = |v: Option<&Spanned<i64>>, field: &str, default: u64| {
        opt(v, |v| {
            positive(src, v, &format!("{path}.{field}"), MAX_SECONDS)
        })
        .map(|v| v.unwrap_or(default))
    };
    let leeway_s = match &j.leeway_s {
        // Zero is a valid skew: exact clocks.
        Some(v) if *v.get_ref() == 0 => 0,
        v => seconds(v.as_ref(), "leeway_s", DEFAULT_LEEWAY_S)?,
    };
    let refresh = seconds(
        j.jwks_refresh_s.as_ref(),
        "jwks_refresh_s",
        DEFAULT_REFRESH_S,
    )?;
    // The default never exceeds a shorter refresh period.
    let min_refetch = seconds(
        j.jwks_min_refetch_s.as_ref(),
        "jwks_min_refetch_s",
        DEFAULT_MIN_REFETCH_S.min(refresh),
    )?;
    if let Some(v) = j
        .jwks_min_refetch_s
        .as_ref()
        .filter(|_| min_refetch > refresh)
    {
        return Err(src.at(
            v,
            &format!("{path}.jwks_min_refetch_s"),
            format!("must be at most jwks_refresh_s ({refresh})"),
        ));
    }
    Ok(JwtIssuer {
        name,
        issuer,
        audiences,
        jwks_url,
        team_claim,
        default_team,
        user_claim,
        limits_claim,
        algorithms,
        leeway_s,
        jwks_refresh: Duration::from_secs(refresh),
        jwks_min_refetch: Duration::from_secs(min_refetch),
    })
}

fn audiences(
    src: &Source,
    list: &Spanned<Vec<Spanned<String>>>,
    path: &str,
) -> Result<Vec<String>> {
    if list.get_ref().is_empty() {
        return Err(src.at(
            list,
            &format!("{path}.audiences"),
            "must name at least one audience: a token for another service must not pass",
        ));
    }
    list.get_ref()
        .iter()
        .enumerate()
        .map(|(i, a)| non_blank(src, a, &format!("{path}.audiences[{i}]")))
        .collect()
}

fn algorithms(
    src: &Source,
    list: &Spanned<Vec<Spanned<String>>>,
    path: &str,
) -> Result<Vec<JwtAlgorithm>> {
    if list.get_ref().is_empty() {
        return Err(src.at(list, path, "must name at least one of RS256, ES256, EdDSA"));
    }
    let mut out = Vec::new();
    for (i, a) in list.get_ref().iter().enumerate() {
        let alg = JwtAlgorithm::from_name(a.get_ref()).ok_or_else(|| {
            src.at(
                a,
                &format!("{path}[{i}]"),
                format!(
                    "{:?} is not accepted: RS256, ES256 or EdDSA (never `none`, never a \
                     shared-secret HS* algorithm)",
                    a.get_ref()
                ),
            )
        })?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// An absolute `https` URL, or `http` to a loopback address or `localhost`.
fn jwks_url(src: &Source, value: &Spanned<String>, path: &str) -> Result<String> {
    let url = url::Url::parse(value.get_ref())
        .map_err(|e| src.at(value, path, format!("not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(value.get_ref().clone()),
        "http" if loopback => Ok(value.get_ref().clone()),
        "http" => Err(src.at(
            value,
            path,
            "must be https (plain http only to a loopback address): the keys it serves \
             decide who may call",
        )),
        _ => Err(src.at(value, path, "must be an https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    const TEAM: &str = "[[teams]]\nname = \"research\"\n";

    fn issuer(extra: &str) -> String {
        format!(
            "{TEAM}[[auth.jwt]]\nname = \"okta\"\nissuer = \"https://id.example.com\"\n\
             audiences = [\"switchyard\"]\njwks_url = \"https://id.example.com/keys\"\n\
             team_claim = \"groups\"\n{extra}"
        )
    }

    #[test]
    fn a_full_issuer_is_read() {
        let c = load(&issuer(
            "user_claim = \"email\"\nalgorithms = [\"ES256\"]\nleeway_s = 0\n\
             default_team = \"research\"\njwks_refresh_s = 600\njwks_min_refetch_s = 5\n",
        ))
        .unwrap();
        let j = &c.jwt[0];
        assert_eq!(j.name, "okta");
        assert_eq!(j.user_claim, "email");
        assert_eq!(j.algorithms, vec![crate::config::JwtAlgorithm::Es256]);
        assert_eq!(j.leeway_s, 0);
        assert_eq!(j.default_team, Some(0));
        assert_eq!(j.jwks_min_refetch.as_secs(), 5);
        let c = load(&issuer("jwks_refresh_s = 4\n")).unwrap();
        assert_eq!(
            c.jwt[0].jwks_min_refetch.as_secs(),
            4,
            "the default follows a short refresh"
        );
        assert_eq!(c.jwt[0].leeway_s, 60);
    }

    #[test]
    fn bad_issuers_name_their_field() {
        for (extra, path, reason) in [
            (
                "algorithms = [\"HS256\"]\n",
                "auth.jwt[0].algorithms[0]",
                "never a shared-secret",
            ),
            (
                "algorithms = [\"none\"]\n",
                "auth.jwt[0].algorithms[0]",
                "is not accepted",
            ),
            (
                "default_team = \"nobody\"\n",
                "auth.jwt[0].default_team",
                "names no [[teams]]",
            ),
            (
                "leeway_s = -1\n",
                "auth.jwt[0].leeway_s",
                "positive integer",
            ),
            (
                "jwks_min_refetch_s = 900\n",
                "auth.jwt[0].jwks_min_refetch_s",
                "at most",
            ),
        ] {
            let e = load(&issuer(extra)).unwrap_err();
            assert_eq!(e.path, path, "{extra}");
            assert!(e.reason.contains(reason), "{extra}: {}", e.reason);
        }
        let e = load(&issuer("").replace("[\"switchyard\"]", "[]")).unwrap_err();
        assert_eq!(e.path, "auth.jwt[0].audiences");
        let e = load(&issuer("").replace("https://id.example.com/keys", "http://id.example.com/k"))
            .unwrap_err();
        assert!(e.reason.contains("must be https"), "{}", e.reason);
        assert!(
            load(&issuer("").replace("https://id.example.com/keys", "http://127.0.0.1:9/k"))
                .is_ok()
        );
        let e = load(&issuer("").replace("team_claim = \"groups\"\n", "")).unwrap_err();
        assert!(e.reason.contains("needs `team_claim`"), "{}", e.reason);
    }

    #[test]
    fn names_and_issuers_are_unique_and_not_key_ids() {
        let twice = format!("{}{}", issuer(""), issuer("").replace(TEAM, ""));
        let e = load(&twice).unwrap_err();
        assert!(e.reason.contains("duplicate issuer name"), "{}", e.reason);
        let key = format!(
            "{}[[keys]]\nid = \"okta\"\nteam = \"research\"\nsha256 = \"{}\"\n",
            issuer(""),
            "ab".repeat(32)
        );
        let e = load(&key).unwrap_err();
        assert!(e.reason.contains("also the id of the key"), "{}", e.reason);
    }
}
