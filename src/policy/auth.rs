//! Bearer keys. The config holds only each secret's SHA-256; a presented secret is hashed and
//! looked up by its hash, then compared in constant time. A hash the config does not hold is
//! looked up among the keys issued at runtime ([`crate::policy::runtime_keys`], an in-memory
//! index: no store round trip per request).
//!
//! Looking up by hash leaks nothing useful through timing: an attacker who learns how close
//! the SHA-256 of a guess is to a stored hash learns nothing about the secret behind it.

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, Key, Team};
use crate::error::GatewayError;
use crate::policy::runtime_keys;

/// The key a request authenticated with, and its team.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The config key; for a JWT, a stand-in named after its issuer (`crate::policy::jwt`).
    pub key: Arc<Key>,
    pub team: Arc<Team>,
    /// The end user the credential itself names (a JWT's user claim); it takes the place of
    /// the team's attribution sources. `None` for keys.
    pub user: Option<String>,
    /// The user's limits the credential names (a JWT's limits claim, `crate::policy::jwt`):
    /// they take the place of the team's per-user budgets. `None`: the team's.
    pub user_limits: Option<Arc<crate::config::Limits>>,
}

/// Checks an `Authorization` header value against the config's keys.
pub fn authenticate(
    config: &Config,
    header: Option<&[u8]>,
    now: SystemTime,
) -> Result<Principal, GatewayError> {
    let header = header.ok_or(GatewayError::Authentication(
        "missing bearer key: send `Authorization: Bearer <key>`",
    ))?;
    let secret = bearer(header).ok_or(GatewayError::Authentication(
        "malformed Authorization header: expected `Bearer <key>`",
    ))?;
    authenticate_secret(config, secret, now)
}

/// Checks a bare secret (Anthropic's SDKs send it as `x-api-key`).
pub fn authenticate_secret(
    config: &Config,
    secret: &[u8],
    now: SystemTime,
) -> Result<Principal, GatewayError> {
    let secret = secret.trim_ascii();
    if secret.is_empty() || secret.iter().any(|c| !c.is_ascii_graphic()) {
        return Err(GatewayError::Authentication("malformed API key"));
    }
    let digest: [u8; 32] = Sha256::digest(secret).into();
    let found = config
        .key_index
        .get(&digest)
        .map(|&i| &config.keys[i])
        .filter(|k| bool::from(k.sha256.ct_eq(&digest)));
    let Some(key) = found else {
        // Not a key of the config: perhaps one issued at runtime (an in-memory index).
        return runtime_keys::authenticate(config, &digest, now)
            .unwrap_or(Err(GatewayError::Authentication("invalid API key")));
    };
    if key.disabled {
        return Err(GatewayError::Authentication("this API key is disabled"));
    }
    if key.expires_at.is_some_and(|at| now >= at) {
        return Err(GatewayError::Authentication("this API key has expired"));
    }
    Ok(Principal {
        key: key.clone(),
        team: config.teams[key.team].clone(),
        user: None,
        user_limits: None,
    })
}

/// The secret of `Bearer <secret>` (scheme case-insensitive), if well formed.
pub(crate) fn bearer(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    let (scheme, rest) = header.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let secret = rest.trim_ascii();
    let separated = rest.first().is_some_and(|c| *c == b' ' || *c == b'\t');
    if !separated || secret.is_empty() || secret.iter().any(|c| !c.is_ascii_graphic()) {
        return None;
    }
    Some(secret)
}

/// A new random secret for `switchyard key new` and the admin key API, and its SHA-256 in hex.
pub fn new_secret() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("sk-sy-{}", hex::encode(bytes));
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    (secret, hash)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_forms() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer a b"), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
