//! The public keys of each `[[auth.jwt]]` issuer: its JWK Set (RFC 7517 §5), fetched by a
//! thread of its own, kept in memory and swapped whole.
//!
//! # Lifecycle
//!
//! - **At start** ([`sync`], called when the gateway starts and after every reload) each JWKS
//!   URL gets a [`Jwks`] and a fetcher thread (a one-thread tokio runtime), which fetches at
//!   once. Until the first fetch succeeds the issuer's tokens are refused (`401`, "unknown
//!   signing key"): the gateway serves keys and other issuers meanwhile rather than refusing
//!   to start because an identity provider is down.
//! - **On a schedule**: every `jwks_refresh_s` (default 300 s) the set is fetched again; a
//!   set that has not loaded yet is tried again every `jwks_min_refetch_s`.
//! - **On an unknown `kid`** ([`Jwks::refetch`]): the request asks the fetcher for one fetch
//!   and waits for it (at most [`FETCH_TIMEOUT`] plus a little) — but only if the last fetch
//!   is older than `jwks_min_refetch_s` (default 10 s); otherwise it is refused at once. So
//!   tokens with made-up `kid`s cause at most one fetch per interval, and never a queue.
//! - **Failures keep the last good keys**: an unreachable URL, a hang (cut at
//!   [`FETCH_TIMEOUT`]), an error status, a body over [`MAX_JWKS_BYTES`], or a body with no
//!   usable key is logged (issuer name, URL, reason) and changes nothing.
//! - A URL no issuer names any more after a reload is dropped from the registry; its thread
//!   ends at its next wake-up.
//!
//! # Usable keys
//!
//! Signature keys (`use` absent or `sig`) of type `RSA`, `EC` on `P-256`, or `OKP` on
//! `Ed25519`, each with its `kid` (RFC 7517 §4.5). `oct` keys (shared secrets) are never
//! taken: a JWKS is public, so a secret in it would let anyone sign. A key with an `alg`
//! (RFC 7517 §4.4) is used only for that algorithm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use tokio::sync::{watch, Notify};

use crate::config::{Config, JwtAlgorithm, JwtIssuer};

/// The longest one fetch of a JWK Set may take (connect, headers, body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWK Set read: real ones are a few KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most keys kept from one set.
const MAX_KEYS: usize = 64;

/// One usable public key.
pub struct PublicKey {
    pub key: DecodingKey,
    /// The one algorithm it verifies (its key type's; its JWK's `alg` if given must agree).
    pub algorithm: JwtAlgorithm,
}

/// The keys of one JWK Set, by `kid`.
#[derive(Default)]
pub struct KeySet {
    pub by_kid: HashMap<String, Arc<PublicKey>>,
    /// Whether a fetch ever succeeded.
    pub loaded: bool,
}

/// One JWK Set URL: its keys, and the fetcher's controls.
pub struct Jwks {
    /// The issuer's name, for the logs.
    name: String,
    url: String,
    refresh: Duration,
    min_refetch: Duration,
    keys: ArcSwap<KeySet>,
    /// Asks the fetcher for a fetch (kept when it is not waiting: it fetches on waking).
    wanted: Arc<Notify>,
    /// Bumped after every fetch attempt, good or bad: what a waiting request watches.
    attempts: watch::Sender<u64>,
    /// When the last fetch attempt started.
    last_attempt: Mutex<Option<Instant>>,
}

impl Jwks {
    /// The current keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Asks for a fetch because a token named a `kid` not in the set, and waits for it when
    /// the last one is older than `jwks_min_refetch_s`. Returns whether a fetch was waited
    /// for (then [`Jwks::keys`] holds its outcome).
    pub async fn refetch(&self) -> bool {
        let allowed = {
            let last = self
                .last_attempt
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            last.is_none_or(|at| at.elapsed() >= self.min_refetch)
        };
        let mut attempts = self.attempts.subscribe();
        self.wanted.notify_one();
        if !allowed {
            return false;
        }
        let wait = FETCH_TIMEOUT + Duration::from_secs(1);
        matches!(
            tokio::time::timeout(wait, attempts.changed()).await,
            Ok(Ok(()))
        )
    }

    /// One fetch: the new keys replace the old only when the set is good.
    async fn fetch(&self, client: &Client) {
        *self
            .last_attempt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        let result = match tokio::time::timeout(FETCH_TIMEOUT, download(client, &self.url)).await {
            Ok(Ok(body)) => parse(&body),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())),
        };
        match result {
            Ok(set) => {
                let keys = set.by_kid.len();
                if self.keys.load().loaded {
                    tracing::debug!(issuer = %self.name, url = %self.url, keys, "JWKS refreshed");
                } else {
                    tracing::info!(issuer = %self.name, url = %self.url, keys, "JWKS loaded");
                }
                self.keys.store(Arc::new(set));
            }
            Err(reason) => {
                let kept = self.keys.load().by_kid.len();
                tracing::warn!(
                    issuer = %self.name,
                    url = %self.url,
                    %reason,
                    kept_keys = kept,
                    "JWKS fetch failed; keeping the last good keys"
                );
            }
        }
        self.attempts.send_modify(|n| *n = n.wrapping_add(1));
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// The running sets, by URL. Weak: the config holds no `Jwks`, the registry's strong
/// references are in `held`.
struct Registry {
    held: HashMap<String, Arc<Jwks>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// The set of `issuer`'s URL, if [`sync`] started one.
pub fn get(issuer: &JwtIssuer) -> Option<Arc<Jwks>> {
    let registry = REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry.as_ref()?.held.get(&issuer.jwks_url).cloned()
}

/// Starts a fetcher for every JWKS URL of `config` not running yet, and lets go of those no
/// issuer names any more. Called at start and after each reload.
pub fn sync(config: &Config) {
    let mut registry = REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let registry = registry.get_or_insert_with(|| Registry {
        held: HashMap::new(),
    });
    registry
        .held
        .retain(|url, _| config.jwt.iter().any(|j| &j.jwks_url == url));
    for issuer in &config.jwt {
        if registry.held.contains_key(&issuer.jwks_url) {
            continue;
        }
        let jwks = Arc::new(Jwks {
            name: issuer.name.clone(),
            url: issuer.jwks_url.clone(),
            refresh: issuer.jwks_refresh,
            min_refetch: issuer.jwks_min_refetch,
            keys: ArcSwap::from_pointee(KeySet::default()),
            wanted: Arc::new(Notify::new()),
            attempts: watch::channel(0).0,
            last_attempt: Mutex::new(None),
        });
        let weak = Arc::downgrade(&jwks);
        let spawned = std::thread::Builder::new()
            .name("switchyard-jwks".to_string())
            .spawn(move || run(weak));
        if let Err(e) = spawned {
            tracing::error!(issuer = %issuer.name, "cannot start the JWKS fetcher: {e}");
            continue;
        }
        registry.held.insert(issuer.jwks_url.clone(), jwks);
    }
}

/// The fetcher thread of one set: fetch, wait for the schedule or a request, again; ends when
/// the set is dropped.
fn run(jwks: Weak<Jwks>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the JWKS fetcher's runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let client = match client() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot build the JWKS client: {e}");
                return;
            }
        };
        loop {
            let Some(set) = jwks.upgrade() else { return };
            set.fetch(&client).await;
            let (min, refresh, wanted) = (set.min_refetch, set.refresh, Arc::clone(&set.wanted));
            let loaded = set.keys.load().loaded;
            drop(set);
            tokio::time::sleep(min).await;
            if loaded {
                let _ = tokio::time::timeout(refresh.saturating_sub(min), wanted.notified()).await;
            }
        }
    });
}

/// An HTTP(S) client trusting the system's roots.
fn client() -> Result<Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// GETs `url`: the body of a 2xx answer, at most [`MAX_JWKS_BYTES`].
async fn download(client: &Client, url: &str) -> Result<Bytes, String> {
    let request = http::Request::get(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("body not read (over {MAX_JWKS_BYTES} bytes?): {e}"))?;
    Ok(body.to_bytes())
}

/// The usable keys of a JWK Set document; an error if there are none.
fn parse(body: &[u8]) -> Result<KeySet, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let doc: Document = serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
    let mut by_kid = HashMap::new();
    for value in doc.keys {
        if by_kid.len() == MAX_KEYS {
            break;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if let Some((kid, key)) = usable(&jwk) {
            by_kid.insert(kid, Arc::new(key));
        }
    }
    if by_kid.is_empty() {
        return Err("no usable signature key (RSA, EC P-256 or OKP Ed25519 with a kid)".into());
    }
    Ok(KeySet {
        by_kid,
        loaded: true,
    })
}

/// A JWK's `kid` and key, if it is a signature key of a kind accepted.
fn usable(jwk: &Jwk) -> Option<(String, PublicKey)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => JwtAlgorithm::Rs256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            JwtAlgorithm::Es256
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            JwtAlgorithm::EdDsa
        }
        _ => return None,
    };
    let named = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(JwtAlgorithm::Rs256),
        Some(KeyAlgorithm::ES256) => Some(JwtAlgorithm::Es256),
        Some(KeyAlgorithm::EdDSA) => Some(JwtAlgorithm::EdDsa),
        Some(_) => return None,
    };
    if named.is_some_and(|n| n != family) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((
        kid,
        PublicKey {
            key,
            algorithm: family,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn garbage_and_secret_keys_are_not_a_set() {
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"keys":[]}"#).is_err());
        // An `oct` key (a shared secret) is never taken.
        assert!(parse(br#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}"#).is_err());
        // A key without a kid is not usable either.
        let ed =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo""#;
        assert!(parse(format!(r#"{{"keys":[{ed}}}]}}"#).as_bytes()).is_err());
        let set = parse(
            format!(r#"{{"keys":[{ed},"kid":"a"}},{{"kty":"oct","kid":"s","k":"c2VjcmV0"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(set.by_kid.len(), 1);
        assert!(set.by_kid.contains_key("a"));
    }
}
