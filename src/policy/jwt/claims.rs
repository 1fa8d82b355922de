//! Reading a verified token's claims: a claim by name or by a dotted path into nested objects
//! ([`claim`]), and the user's own limits from the issuer's `limits_claim`
//! ([`claim_limits`]).
//!
//! Identity providers nest what a gateway needs: Keycloak puts roles in
//! `realm_access.roles`, Entra ID and Auth0 use namespaced claim names that themselves hold
//! dots (`https://example.com/team`). So a claim name is first looked up as written, at the
//! top level; only when no such claim exists is it read as a path of `.`-separated object
//! keys (`realm_access.roles`).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Limits;

/// The claim `name` of `claims`: the top-level claim of that exact name, else the value at
/// the dotted path `name` (each segment an object key).
pub fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut segments = name.split('.');
    let mut value = claims.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// A limits claim that is not an object of limits within their bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedLimits;

/// The limits a token names for its user, an object in the issuer's `limits_claim`:
///
/// ```json
/// {"rpm": 20, "tpm": 40000, "max_concurrent": 2, "tokens_per_day": 200000, "usd_per_month": 25.0}
/// ```
///
/// Each field is optional and, when present, replaces the team's per-user value of that
/// field (`user_tokens_per_day`, `user_usd_per_month`; the team has no per-user rates);
/// the team's own limits still hold the whole team. The same bounds as a `[[keys]]`
/// stanza's: the rates and `tokens_per_day` whole numbers of at least 1 (rates at most
/// 2^32-1), `usd_per_month` a finite number of at least 0. An absent claim: `Ok(None)`; any
/// other shape (`null` is absent), an unknown field or a value out of bounds is an `Err` (the token is refused:
/// an identity provider that means to limit a user must not let it through unlimited).
pub fn claim_limits(
    value: Option<&Value>,
    team_user_limits: &Limits,
) -> Result<Option<Limits>, MalformedLimits> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Claimed {
        rpm: Option<u32>,
        tpm: Option<u32>,
        max_concurrent: Option<u32>,
        tokens_per_day: Option<u64>,
        usd_per_month: Option<f64>,
    }
    let c = Claimed::deserialize(value).map_err(|_| MalformedLimits)?;
    let at_least_one = [c.rpm, c.tpm, c.max_concurrent]
        .into_iter()
        .flatten()
        .all(|v| v >= 1)
        && c.tokens_per_day.is_none_or(|v| v >= 1);
    let money = c.usd_per_month.is_none_or(|v| v.is_finite() && v >= 0.0);
    if !at_least_one || !money {
        return Err(MalformedLimits);
    }
    Ok(Some(Limits {
        rpm: c.rpm.or(team_user_limits.rpm),
        tpm: c.tpm.or(team_user_limits.tpm),
        max_concurrent: c.max_concurrent.or(team_user_limits.max_concurrent),
        tokens_per_day: c.tokens_per_day.or(team_user_limits.tokens_per_day),
        usd_per_month: c.usd_per_month.or(team_user_limits.usd_per_month),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_claim_by_its_name_then_by_its_path() {
        let c = claims(json!({
            "realm_access": {"roles": ["ml", "dev"]},
            "https://example.com/team": "ml",
            "a.b": 1,
            "a": {"b": 2}
        }));
        assert_eq!(claim(&c, "realm_access.roles"), Some(&json!(["ml", "dev"])));
        assert_eq!(claim(&c, "https://example.com/team"), Some(&json!("ml")));
        // The exact name wins over the path.
        assert_eq!(claim(&c, "a.b"), Some(&json!(1)));
        assert_eq!(claim(&c, "realm_access.missing"), None);
        assert_eq!(claim(&c, "realm_access.roles.x"), None);
        assert_eq!(claim(&c, ""), None);
    }

    #[test]
    fn limits_replace_the_teams_per_user_fields_they_name() {
        let team = Limits {
            tokens_per_day: Some(1000),
            usd_per_month: Some(5.0),
            ..Limits::default()
        };
        let got = claim_limits(Some(&json!({"rpm": 3, "usd_per_month": 1.5})), &team);
        assert_eq!(
            got,
            Ok(Some(Limits {
                rpm: Some(3),
                tokens_per_day: Some(1000),
                usd_per_month: Some(1.5),
                ..Limits::default()
            }))
        );
        assert_eq!(claim_limits(None, &team), Ok(None));
        assert_eq!(claim_limits(Some(&Value::Null), &team), Ok(None));
    }

    #[test]
    fn a_malformed_limits_claim_is_refused() {
        let team = Limits::default();
        for bad in [
            json!("20"),
            json!({"rpm": 0}),
            json!({"rpm": -1}),
            json!({"rpm": 1.5}),
            json!({"tokens_per_day": 0}),
            json!({"usd_per_month": -1}),
            json!({"rpm": 4294967296u64}),
            json!({"requests": 5}),
        ] {
            assert_eq!(
                claim_limits(Some(&bad), &team),
                Err(MalformedLimits),
                "{bad}"
            );
        }
    }
}
