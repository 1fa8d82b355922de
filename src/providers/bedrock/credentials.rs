//! AWS credentials for a `bedrock` provider without `api_key_env`: found once at load by
//! AWS's standard provider chain, then kept fresh by a background thread, so that signing
//! ([`super::sign`]) only reads them and never waits on a credential endpoint.
//!
//! The chain is AWS's default order ("Standardized credential providers", AWS SDKs and Tools
//! Reference Guide; `aws_config::default_provider::credentials`), each source from
//! `aws-config`, tried in turn at load until one answers:
//!
//! 1. [`Source::Environment`]: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
//!    `AWS_SESSION_TOKEN`;
//! 2. [`Source::Profile`]: the shared `~/.aws/credentials` / `~/.aws/config` files
//!    (`AWS_PROFILE`);
//! 3. [`Source::WebIdentity`]: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS IRSA),
//!    exchanged with STS;
//! 4. [`Source::Container`]: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI` (ECS
//!    task roles, EKS Pod Identity);
//! 5. [`Source::Imds`]: EC2 instance metadata (IMDSv2).
//!
//! A source that is not configured answers "not loaded" and the next is tried; one that is
//! configured but fails ends the search with its error (as AWS's chain does). The source that
//! answered is kept for the refreshes: temporary credentials (with an expiry) are fetched
//! again at `expiry - min(5 min, lifetime / 2)`, failures retried with a doubling back-off
//! while the old ones stay in use. The keeper's thread ends when the config that owns it is
//! dropped (a reload builds a new one).
//!
//! No secret ever enters a message: errors name the source, never a key.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

/// How long loading may take at most (IMDS off EC2 answers only after its timeouts).
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest margin before expiry at which credentials are fetched again.
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// The shortest wait between two fetches.
const MIN_WAIT: Duration = Duration::from_millis(200);

/// The longest a refresher sleeps before looking whether its config is still in use.
const SLICE: Duration = Duration::from_secs(60);

/// The longest back-off after a failed refresh.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a provider's AWS credentials come from (what `switchyard check` prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Environment,
    Profile,
    WebIdentity,
    Container,
    Imds,
}

impl Source {
    /// The source as `switchyard check` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Environment => "environment (AWS_ACCESS_KEY_ID)",
            Source::Profile => "shared profile (~/.aws/credentials, AWS_PROFILE)",
            Source::WebIdentity => "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)",
            Source::Container => "container credentials (AWS_CONTAINER_CREDENTIALS_*_URI)",
            Source::Imds => "EC2 instance metadata (IMDSv2)",
        }
    }
}

/// A provider's current AWS credentials, kept fresh off the request path.
pub struct Keeper {
    current: ArcSwap<Credentials>,
    source: Source,
}

impl fmt::Debug for Keeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keeper")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Keeper {
    /// The credentials to sign with now.
    pub fn current(&self) -> Arc<Credentials> {
        self.current.load_full()
    }

    /// Where they come from.
    pub fn source(&self) -> Source {
        self.source
    }
}

/// Finds the provider's credentials now (blocking the caller, at config load, up to
/// [`LOAD_TIMEOUT`]) and starts their refresher. `region` is the provider's, for STS.
/// `Err` says why in words with no secret in them.
pub fn load(region: &str) -> Result<Arc<Keeper>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let region = region.to_string();
    std::thread::Builder::new()
        .name("bedrock-credentials".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start the credential refresher: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let found = find(&region).await;
                let (keeper, provider) = match found {
                    Ok((source, provider, credentials)) => (
                        Arc::new(Keeper {
                            current: ArcSwap::from_pointee(credentials),
                            source,
                        }),
                        provider,
                    ),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let weak = Arc::downgrade(&keeper);
                if tx.send(Ok(keeper)).is_err() {
                    return;
                }
                refresh(weak, provider).await;
            });
        })
        .map_err(|e| format!("cannot start the credential refresher: {e}"))?;
    match rx.recv_timeout(LOAD_TIMEOUT) {
        Ok(found) => found,
        Err(_) => Err(format!(
            "no AWS credentials within {}s",
            LOAD_TIMEOUT.as_secs()
        )),
    }
}

/// The chain's sources in AWS's order, each built on `config`.
fn sources(config: &ProviderConfig) -> Vec<(Source, SharedCredentialsProvider)> {
    use aws_config::{ecs, environment, imds, profile, web_identity_token};
    vec![
        (
            Source::Environment,
            SharedCredentialsProvider::new(
                environment::credentials::EnvironmentVariableCredentialsProvider::new(),
            ),
        ),
        (
            Source::Profile,
            SharedCredentialsProvider::new(
                profile::ProfileFileCredentialsProvider::builder()
                    .configure(config)
                    .build(),
            ),
        ),
        (
            Source::WebIdentity,
            SharedCredentialsProvider::new(
                web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                    .configure(config)
                    .build(),
            ),
        ),
        (
            Source::Container,
            SharedCredentialsProvider::new(
                ecs::EcsCredentialsProvider::builder()
                    .configure(config)
                    .build(),
            ),
        ),
        (
            Source::Imds,
            SharedCredentialsProvider::new(
                imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(config)
                    .build(),
            ),
        ),
    ]
}

/// The provider config the sources share: the region, and an HTTPS client on rustls with
/// ring (the crate's TLS) for STS and the credential endpoints.
fn provider_config(region: &str) -> ProviderConfig {
    use aws_smithy_http_client::tls;
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    ProviderConfig::default()
        .with_region(Some(aws_config::Region::new(region.to_string())))
        .with_http_client(client)
}

/// The first source that answers, with its first credentials.
async fn find(region: &str) -> Result<(Source, SharedCredentialsProvider, Credentials), String> {
    let config = provider_config(region);
    for (source, provider) in sources(&config) {
        match provider.provide_credentials().await {
            Ok(credentials) => return Ok((source, provider, credentials)),
            Err(CredentialsError::CredentialsNotLoaded(_)) => continue,
            Err(e) => {
                return Err(format!(
                    "AWS credentials from {} failed: {}",
                    source.describe(),
                    reason(&e)
                ))
            }
        }
    }
    Err(
        "no AWS credentials found: none of the environment (AWS_ACCESS_KEY_ID), a shared \
         profile, web identity (AWS_WEB_IDENTITY_TOKEN_FILE), container credentials \
         (AWS_CONTAINER_CREDENTIALS_*_URI) or EC2 instance metadata gave any (or set \
         api_key_env to a Bedrock API key)"
            .to_string(),
    )
}

/// An error's words with its causes, none of which holds a secret (`aws-config`'s errors
/// name files, variables and endpoints).
fn reason(e: &CredentialsError) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// How long to wait before fetching credentials that expire at `expiry` again, from `now`:
/// until `expiry - min(5 min, lifetime / 2)`, at least [`MIN_WAIT`]. `None` without an
/// expiry (long-lived keys are never fetched again).
pub fn next_refresh(expiry: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    let lifetime = expiry?.duration_since(now).unwrap_or_default();
    let margin = (lifetime / 2).min(MAX_MARGIN);
    Some((lifetime - margin).max(MIN_WAIT))
}

/// Fetches the credentials again before they expire, for as long as the keeper lives.
async fn refresh(keeper: Weak<Keeper>, provider: SharedCredentialsProvider) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let expiry = match keeper.upgrade() {
            Some(k) => k.current().expiry(),
            None => return,
        };
        let Some(wait) = next_refresh(expiry, SystemTime::now()) else {
            return;
        };
        // In slices, so that the thread of a config replaced by a reload ends within one.
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < until {
            if keeper.strong_count() == 0 {
                return;
            }
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + SLICE)).await;
        }
        loop {
            let Some(k) = keeper.upgrade() else {
                return;
            };
            match provider.provide_credentials().await {
                Ok(fresh) => {
                    k.current.store(Arc::new(fresh));
                    backoff = Duration::from_secs(1);
                    break;
                }
                Err(e) => {
                    tracing::warn!(source = k.source.describe(), error = %reason(&e),
                        "bedrock: refreshing AWS credentials failed; retrying");
                    drop(k);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshed_ahead_of_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| Some(now + Duration::from_secs(s));
        // An hour: five minutes early.
        assert_eq!(next_refresh(at(3600), now), Some(Duration::from_secs(3300)));
        // Four seconds: at half the lifetime.
        assert_eq!(next_refresh(at(4), now), Some(Duration::from_secs(2)));
        // Already expired: soon, not in a spin.
        assert_eq!(next_refresh(Some(now), now), Some(MIN_WAIT));
        // Long-lived keys: never.
        assert_eq!(next_refresh(None, now), None);
    }
}
