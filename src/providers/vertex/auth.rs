//! Google OAuth2 access tokens for a `kind = "vertex"` provider, from Google's Application
//! Default Credentials (Google Cloud, "How Application Default Credentials works"), looked
//! up in this order ([`find`]):
//!
//! 1. the provider's `credentials_file`, else the file named by
//!    `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key (`"type": "service_account"`;
//!    its JWT assertion, signed with the key, is exchanged at the key's own `token_uri`);
//! 2. gcloud's authorized-user file (`gcloud auth application-default login`,
//!    `~/.config/gcloud/application_default_credentials.json`);
//! 3. the metadata server (Compute Engine, Cloud Run, GKE Workload Identity).
//!
//! The tokens come from the `gcp_auth` crate. Each provider's [`Tokens`] has a thread of its
//! own that fetches the first token while the config loads (a credential that gives none is a
//! config error), then refreshes it ahead of its expiry ([`next_refresh`]); a request only
//! reads the current token ([`Tokens::current`]), it never fetches one. The thread ends when
//! the config that holds the provider is dropped (a reload makes new ones). A token never
//! appears in a log, a metric or an error; a failed refresh is logged with the provider's name
//! and the error, and retried.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use gcp_auth::TokenProvider;

/// The OAuth2 scope every Vertex AI call needs (Vertex AI REST reference, "Authorization
/// scopes").
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long a config load waits for a provider's first token.
const FIRST_TOKEN_WAIT: Duration = Duration::from_secs(20);

/// Where a provider's tokens come from (shown by `switchyard check`; never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A service-account key file: the provider's `credentials_file`, or
    /// `GOOGLE_APPLICATION_CREDENTIALS` (`from_env`).
    ServiceAccount { path: PathBuf, from_env: bool },
    /// gcloud's authorized-user file.
    AuthorizedUser { path: PathBuf },
    /// The metadata server of Compute Engine, Cloud Run or GKE (Workload Identity).
    MetadataServer,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::ServiceAccount { path, from_env } => write!(
                f,
                "service-account key file {} ({})",
                path.display(),
                if *from_env {
                    "GOOGLE_APPLICATION_CREDENTIALS"
                } else {
                    "credentials_file"
                }
            ),
            Source::AuthorizedUser { path } => {
                write!(f, "gcloud authorized-user file {}", path.display())
            }
            Source::MetadataServer => f.write_str(
                "the metadata server (Compute Engine, Cloud Run, GKE Workload Identity)",
            ),
        }
    }
}

/// Where the provider's tokens come from, as Application Default Credentials look (see the
/// module doc): `credentials_file` when given. A key file that is not a service account's
/// is refused: `gcp_auth` reads an authorized-user file only from gcloud's own path, and
/// other kinds (external accounts) are not served.
pub fn find(credentials_file: Option<&Path>) -> Result<Source, String> {
    let named = match credentials_file {
        Some(path) => Some((path.to_path_buf(), false)),
        None => std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
            .filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), true)),
    };
    if let Some((path, from_env)) = named {
        key_file_kind(&path)?;
        return Ok(Source::ServiceAccount { path, from_env });
    }
    if let Some(path) = gcloud_file().filter(|p| p.is_file()) {
        return Ok(Source::AuthorizedUser { path });
    }
    Ok(Source::MetadataServer)
}

/// The largest credentials file read (a service-account key is about 2.3 KiB).
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// Checks that the credentials file at `path` is a service-account key (its `type`); the
/// key itself is read when the tokens start.
fn key_file_kind(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut text = String::new();
    // Bounded: a key file is a few KiB; `/dev/zero` or a huge file must not hang the load.
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{} is over {MAX_KEY_FILE_BYTES} bytes: not a Google credentials JSON file",
            path.display()
        ));
    }
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let kind: Kind = serde_json::from_str(&text)
        .map_err(|_| format!("{} is not a Google credentials JSON file", path.display()))?;
    match kind.kind.as_deref() {
        Some("service_account") => Ok(()),
        Some("authorized_user") => Err(format!(
            "{} is an authorized-user file: leave credentials_file out and let gcloud's own file be found (gcloud auth application-default login)",
            path.display()
        )),
        other => Err(format!(
            "{}: credentials of type {:?} are not served (a service-account key is)",
            path.display(),
            other.unwrap_or("none")
        )),
    }
}

/// gcloud's authorized-user file, `$HOME/.config/gcloud/application_default_credentials.json`
/// (`CLOUDSDK_CONFIG` is not read: `gcp_auth` reads this path).
fn gcloud_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".config/gcloud/application_default_credentials.json"))
}

/// One access token and when it expires.
pub struct Token {
    secret: String,
    expires: SystemTime,
}

impl Token {
    /// The token itself: call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"*****")
            .field("expires", &self.expires)
            .finish()
    }
}

/// A provider's access tokens, kept fresh by a thread of their own.
pub struct Tokens {
    source: Source,
    current: ArcSwapOption<Token>,
    /// Dropped with the provider: the refresh thread then ends.
    _stop: tokio::sync::watch::Sender<()>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Starts `provider`'s tokens from `source`: waits for the first token (up to 20 s), and
    /// leaves a thread refreshing it. The error says why no token came (never a secret).
    pub fn start(provider: &str, source: Source) -> Result<Arc<Tokens>, String> {
        let (stop, stopped) = tokio::sync::watch::channel(());
        let tokens = Arc::new(Tokens {
            source: source.clone(),
            current: ArcSwapOption::empty(),
            _stop: stop,
        });
        let (first_tx, first_rx) = mpsc::channel();
        let weak = Arc::downgrade(&tokens);
        let name = provider.to_string();
        std::thread::Builder::new()
            .name(format!("switchyard-gcp-{}", short(provider)))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = first_tx.send(Err(format!("cannot start: {e}")));
                        return;
                    }
                };
                runtime.block_on(refresh_loop(name, source, weak, stopped, first_tx));
            })
            .map_err(|e| format!("cannot start the token thread: {e}"))?;
        match first_rx.recv_timeout(FIRST_TOKEN_WAIT) {
            Ok(Ok(())) => Ok(tokens),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "no access token from {} within {} s",
                tokens.source,
                FIRST_TOKEN_WAIT.as_secs()
            )),
        }
    }

    /// Tokens that hold `secret` until `expires`, with no thread (for tests).
    #[cfg(test)]
    pub(crate) fn fixed(secret: &str, expires: SystemTime) -> Tokens {
        Tokens {
            source: Source::MetadataServer,
            current: ArcSwapOption::from_pointee(Token {
                secret: secret.to_string(),
                expires,
            }),
            _stop: tokio::sync::watch::channel(()).0,
        }
    }

    /// Where the tokens come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The current token, if it has not expired.
    pub fn current(&self) -> Option<Arc<Token>> {
        self.current
            .load_full()
            .filter(|t| t.expires > SystemTime::now())
    }
}

/// A thread name's provider part (thread names are short).
fn short(provider: &str) -> String {
    provider.chars().take(16).collect()
}

/// The token provider for `source` (the metadata server and gcloud's file are tried as they
/// are built: `gcp_auth` fetches a first token then).
async fn token_provider(source: &Source) -> Result<Arc<dyn TokenProvider>, String> {
    let provider: Arc<dyn TokenProvider> = match source {
        Source::ServiceAccount { path, .. } => Arc::new(
            gcp_auth::CustomServiceAccount::from_file(path)
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        Source::AuthorizedUser { path } => Arc::new(
            gcp_auth::ConfigDefaultCredentials::new()
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        Source::MetadataServer => Arc::new(
            gcp_auth::MetadataServiceAccount::new()
                .await
                .map_err(|e| {
                    format!("no credentials_file, GOOGLE_APPLICATION_CREDENTIALS or gcloud file, and the metadata server gave no token: {e}")
                })?,
        ),
    };
    Ok(provider)
}

/// Fetches the first token (its outcome sent on `first`), then refreshes it ahead of expiry
/// until the [`Tokens`] are dropped.
async fn refresh_loop(
    name: String,
    source: Source,
    tokens: Weak<Tokens>,
    mut stopped: tokio::sync::watch::Receiver<()>,
    first: mpsc::Sender<Result<(), String>>,
) {
    let provider = match token_provider(&source).await {
        Ok(p) => p,
        Err(e) => {
            let _ = first.send(Err(e));
            return;
        }
    };
    let mut first = Some(first);
    let mut failures = 0u32;
    loop {
        let wait = match provider.token(&[SCOPE]).await {
            Ok(token) => {
                let Some(tokens) = tokens.upgrade() else {
                    return;
                };
                let expires = expiry(token.expires_at().timestamp_millis());
                tokens.current.store(Some(Arc::new(Token {
                    secret: token.as_str().to_string(),
                    expires,
                })));
                drop(tokens);
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
                failures = 0;
                next_refresh(expires, SystemTime::now())
            }
            Err(e) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(format!("no access token from {source}: {e}")));
                    return;
                }
                failures += 1;
                tracing::warn!(provider = %name, source = %source, error = %e, failures, "cannot refresh the Google access token; retrying");
                retry_wait(failures)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A Unix time in milliseconds as a [`SystemTime`] (a time before 1970 is 1970).
fn expiry(unix_ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0))
}

/// When to refresh a token that expires at `expires`: 30 s before for a token with over a
/// minute left (Google's are an hour; `gcp_auth` hands out a new one once its cached token
/// has under 20 s left, so a call at 30 s gets the cached one and the next, 15 s later, a new
/// one), else halfway to its expiry (at least 0.5 s): a refresh always lands while the
/// current token still serves.
pub fn next_refresh(expires: SystemTime, now: SystemTime) -> Duration {
    let left = expires.duration_since(now).unwrap_or(Duration::ZERO);
    if left > Duration::from_secs(60) {
        left - Duration::from_secs(30)
    } else {
        (left / 2).max(Duration::from_millis(500))
    }
}

/// The wait before the `failures`-th retry of a failed refresh: 1, 2, 4, … s, at most 30 s.
fn retry_wait(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_land_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s| now + Duration::from_secs(s);
        assert_eq!(next_refresh(at(3600), now), Duration::from_secs(3570));
        assert_eq!(next_refresh(at(30), now), Duration::from_secs(15));
        assert_eq!(next_refresh(at(6), now), Duration::from_secs(3));
        assert_eq!(next_refresh(now, now), Duration::from_millis(500));
        assert_eq!(
            next_refresh(now - Duration::from_secs(5), now),
            Duration::from_millis(500)
        );
        assert_eq!(
            [1, 2, 3, 6, 7, 40].map(|n| retry_wait(n).as_secs()),
            [1, 2, 4, 30, 30, 30]
        );
    }

    #[test]
    fn only_service_account_files_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let sa = file("sa.json", r#"{"type":"service_account","private_key":"x"}"#);
        assert_eq!(
            find(Some(&sa)),
            Ok(Source::ServiceAccount {
                path: sa.clone(),
                from_env: false
            })
        );
        let user = file(
            "user.json",
            r#"{"type":"authorized_user","refresh_token":"SECRET"}"#,
        );
        let e = find(Some(&user)).unwrap_err();
        assert!(e.contains("authorized-user file"), "{e}");
        assert!(!e.contains("SECRET"));
        let ext = file("ext.json", r#"{"type":"external_account"}"#);
        assert!(find(Some(&ext))
            .unwrap_err()
            .contains("\"external_account\" are not served"));
        let junk = file("junk.json", "private_key = SECRET");
        let e = find(Some(&junk)).unwrap_err();
        assert!(
            e.contains("not a Google credentials JSON file") && !e.contains("SECRET"),
            "{e}"
        );
        let huge = file("huge.json", &" ".repeat(2 * 1024 * 1024));
        assert!(find(Some(&huge))
            .unwrap_err()
            .contains("is over 1048576 bytes"));
        assert!(find(Some(Path::new("/dev/zero")))
            .unwrap_err()
            .contains("is over"));
        assert!(find(Some(Path::new("/no/such/file.json")))
            .unwrap_err()
            .contains("cannot read /no/such/file.json"));
        assert_eq!(
            Source::ServiceAccount {
                path: sa,
                from_env: true
            }
            .to_string(),
            format!(
                "service-account key file {}/sa.json (GOOGLE_APPLICATION_CREDENTIALS)",
                dir.path().display()
            )
        );
    }

    #[test]
    fn a_token_is_never_shown() {
        let t = Token {
            secret: "ya29.SECRET".into(),
            expires: SystemTime::UNIX_EPOCH,
        };
        assert!(!format!("{t:?}").contains("SECRET"));
    }
}
