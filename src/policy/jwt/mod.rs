//! JWT clients: a bearer token signed by an `[[auth.jwt]]` issuer (an OIDC identity
//! provider: Okta, Entra ID, Google, Keycloak, Kubernetes service-account tokens, GitHub
//! Actions) is a client like a key. The issuer's name stands in for the key id (metrics'
//! `key` label, the limiter's key scope: no per-user label), its claims give the team and the
//! end user (the usage log's `user`, the team's per-user budgets).
//!
//! # Which tokens come here
//!
//! A bearer token of three base64url parts separated by dots ([`looks_like_jwt`], the JWS
//! compact serialization of RFC 7515 §7.1), when the config has an issuer; anything else is a
//! key. A token over [`MAX_TOKEN_BYTES`] (16 KiB) is refused before any decoding: that bounds
//! the header and the number of claims parsed.
//!
//! # Checks, in order (each failure a 401 with the reason in quotes)
//!
//! 1. The header's `alg` is one the issuer accepts: RS256, ES256 or EdDSA (RFC 7518 §3.1,
//!    RFC 8037 §3.1). `none` (an unsecured JWS, RFC 7519 §6) and `HS*` are refused before any
//!    key is looked at, so an HS256 token whose "secret" is the issuer's public key cannot
//!    pass ("algorithm not allowed").
//! 2. The payload's `iss` names a configured issuer ("unknown issuer"); the payload is read
//!    unverified only to pick the issuer's keys, and verified next.
//! 3. The header's `kid` names a key of the issuer's JWK Set ([`jwks`]), after at most one
//!    bounded refetch ("unknown signing key (kid)"); without a `kid`, a set of one key uses
//!    it. The key's type must be the `alg`'s ("algorithm not allowed").
//! 4. The signature, by `jsonwebtoken` ("bad signature"), then the claims (RFC 7519 §4.1):
//!    `exp` is required and must not be past ("token expired"), `nbf` if present must be
//!    reached ("token not yet valid"), both with `leeway_s` of clock skew; `iss` equals the
//!    issuer's; `aud` (a string or a list) names one of `audiences` ("wrong audience").
//! 5. The user claim (`user_claim`, default `sub`) is a non-empty string of at most 256
//!    bytes ("no user claim"); the team is the first team-named string of the team claim (a
//!    string, or a list such as `groups`), else `default_team` ("no team for this token");
//!    the limits claim (`limits_claim`), when the issuer names one and the token has it, is
//!    the user's own limits ("malformed limits claim"; [`claims::claim_limits`]). A claim
//!    name is looked up as written, else as a dotted path into nested objects
//!    ([`claims::claim`]: `realm_access.roles`).
//!
//! No token, header or claim value is logged or echoed: the reasons are fixed strings.

pub mod claims;
pub mod jwks;

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::config::{Config, JwtAlgorithm, JwtIssuer, Key, Limits};
use crate::error::GatewayError;
use crate::policy::attribution::MAX_USER_BYTES;
use crate::policy::auth::Principal;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Whether a bearer token has the shape of a JWS: three base64url parts, the first two
/// non-empty.
pub fn looks_like_jwt(token: &[u8]) -> bool {
    let mut parts = token.split(|&b| b == b'.');
    let b64url = |p: &[u8]| {
        p.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => {
            !h.is_empty() && !p.is_empty() && b64url(h) && b64url(p) && b64url(s)
        }
        _ => false,
    }
}

/// The principal of a JWT: its issuer's stand-in key, its team, its user.
pub async fn authenticate(config: &Config, token: &[u8]) -> Result<Principal, GatewayError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(refused("token too large: at most 16 KiB"));
    }
    let token = std::str::from_utf8(token).map_err(|_| malformed())?;
    let mut parts = token.splitn(3, '.');
    let (Some(head), Some(body)) = (parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let header: Header = decode_part(head)?;
    let alg = JwtAlgorithm::from_name(&header.alg)
        .ok_or_else(|| refused("algorithm not allowed: RS256, ES256 or EdDSA only"))?;
    let claims: Unverified = decode_part(body)?;
    let issuer = claims
        .iss
        .as_deref()
        .and_then(|iss| config.jwt.iter().find(|j| j.issuer == iss))
        .ok_or_else(|| refused("unknown issuer: no [[auth.jwt]] issuer has this token's `iss`"))?;
    if !issuer.algorithms.contains(&alg) {
        return Err(refused("algorithm not allowed for this issuer"));
    }
    let key = signing_key(issuer, header.kid.as_deref()).await?;
    if key.algorithm != alg {
        return Err(refused("algorithm not allowed: the key is of another type"));
    }
    let claims = verify(issuer, alg, token, &key.key)?;
    principal(config, issuer, &claims)
}

/// The header fields looked at before verification.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// The payload field read before verification, to pick the issuer.
#[derive(serde::Deserialize)]
struct Unverified {
    iss: Option<String>,
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, GatewayError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

/// The issuer's key named `kid`, refetching the set once (bounded) when it lacks it.
async fn signing_key(
    issuer: &JwtIssuer,
    kid: Option<&str>,
) -> Result<Arc<jwks::PublicKey>, GatewayError> {
    let unknown = || refused("unknown signing key (kid): not in the issuer's JWKS");
    let set = jwks::get(issuer).ok_or_else(unknown)?;
    let find = |keys: &jwks::KeySet| match kid {
        Some(kid) => keys.by_kid.get(kid).cloned(),
        None if keys.by_kid.len() == 1 => keys.by_kid.values().next().cloned(),
        None => None,
    };
    if let Some(key) = find(&set.keys()) {
        return Ok(key);
    }
    if set.refetch().await {
        if let Some(key) = find(&set.keys()) {
            return Ok(key);
        }
    }
    Err(unknown())
}

/// The verified claims: signature, `exp`/`nbf` with the issuer's leeway, `iss`, `aud`.
fn verify(
    issuer: &JwtIssuer,
    alg: JwtAlgorithm,
    token: &str,
    key: &jsonwebtoken::DecodingKey,
) -> Result<Map<String, Value>, GatewayError> {
    let mut v = Validation::new(match alg {
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    });
    v.set_issuer(&[&issuer.issuer]);
    v.set_audience(&issuer.audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = issuer.leeway_s;
    v.validate_nbf = true;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        refused(match e.kind() {
            K::InvalidSignature => "bad signature",
            K::ExpiredSignature => "token expired",
            K::ImmatureSignature => "token not yet valid (nbf)",
            K::InvalidAudience => "wrong audience: the token is not for this gateway",
            K::InvalidIssuer => "unknown issuer",
            K::InvalidAlgorithm | K::MissingAlgorithm => "algorithm not allowed",
            K::MissingRequiredClaim(c) if c == "exp" => "the token has no `exp` claim",
            K::MissingRequiredClaim(c) if c == "aud" => "wrong audience: the token has no `aud`",
            K::MissingRequiredClaim(_) => "the token lacks a required claim",
            _ => "malformed token",
        })
    })?;
    Ok(data.claims)
}

/// The principal of verified `claims`: the issuer's stand-in key, the team, the user.
fn principal(
    config: &Config,
    issuer: &JwtIssuer,
    claims: &Map<String, Value>,
) -> Result<Principal, GatewayError> {
    let user = match claims::claim(claims, &issuer.user_claim) {
        Some(Value::String(u)) if !u.is_empty() => u,
        _ => {
            return Err(refused(
                "no user claim: the token lacks the issuer's user claim",
            ))
        }
    };
    if user.len() > MAX_USER_BYTES {
        return Err(refused("user claim too long: at most 256 bytes"));
    }
    let team = team(config, issuer, claims)
        .ok_or_else(|| refused("no team for this token: its team claim names no team"))?;
    let limits_claim = issuer
        .limits_claim
        .as_deref()
        .and_then(|name| claims::claim(claims, name));
    let user_limits = claims::claim_limits(limits_claim, &config.teams[team].user_limits)
        .map_err(|claims::MalformedLimits| {
            refused("malformed limits claim: an object of rpm, tpm, max_concurrent, tokens_per_day, usd_per_month")
        })?;
    let key = Arc::new(Key {
        id: issuer.name.clone(),
        team,
        sha256: [0; 32],
        limits: Limits::default(),
        expires_at: None,
        disabled: false,
    });
    Ok(Principal {
        key,
        team: Arc::clone(&config.teams[team]),
        user: Some(user.clone()),
        user_limits: user_limits.map(Arc::new),
    })
}

/// Index into `config.teams` of the token's team: the team claim's value (a string, or the
/// first string of a list that names a team), else the default team.
fn team(config: &Config, issuer: &JwtIssuer, claims: &Map<String, Value>) -> Option<usize> {
    let by_name = |name: &str| config.teams.iter().position(|t| t.name == name);
    let claimed = match issuer
        .team_claim
        .as_ref()
        .and_then(|c| claims::claim(claims, c))
    {
        Some(Value::String(s)) => by_name(s),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).find_map(by_name),
        _ => None,
    };
    claimed.or(issuer.default_team)
}

fn malformed() -> GatewayError {
    refused("malformed token: not a JWS of base64url JSON parts")
}

/// A 401 with `reason` (a fixed text: never a token or claim value).
fn refused(reason: &'static str) -> GatewayError {
    GatewayError::Authentication(reason)
}

#[cfg(test)]
mod tests {
    use super::looks_like_jwt;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(b"eyJh.eyJi.c2ln"));
        assert!(looks_like_jwt(b"eyJh.eyJi."));
        assert!(!looks_like_jwt(b"sk-sy-0123abcd"));
        assert!(!looks_like_jwt(b"a.b"));
        assert!(!looks_like_jwt(b"a.b.c.d"));
        assert!(!looks_like_jwt(b".b.c"));
        assert!(!looks_like_jwt(b"a.b+.c"));
    }
}
