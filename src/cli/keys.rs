//! `switchyard key create|list|update|revoke`: the runtime key API of a running gateway's
//! admin listener (`crate::server::admin`'s `/v1/keys`), from the command line.
//!
//! The admin URL is `--admin-url`, else `http://` + the config's `[server] admin_listen`
//! (a wildcard address reached on loopback). The admin token is `SWITCHYARD_ADMIN_TOKEN`, else
//! the variable the config's `[server] admin_token_env` names. The config is read only for
//! those two settings (as raw TOML: nothing else of it is checked or needed).
//! Answers are printed as JSON on stdout; the create's holds the secret in `key`, shown this
//! once. Exit 0 on success, 1 when the gateway refuses (its message on stderr), 2 when it
//! cannot be asked (a bad flag, no token, no connection).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Map, Value};

/// The environment variable the CLI takes the admin token from first.
pub const TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";
/// The largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Where the admin API is and how to reach it.
#[derive(Debug, Args)]
pub struct Admin {
    /// The admin listener's base URL (default: from the config's `admin_listen`).
    #[arg(long)]
    pub admin_url: Option<String>,
    /// The config whose `admin_listen` and `admin_token_env` are used when the flag or
    /// `SWITCHYARD_ADMIN_TOKEN` is absent.
    #[arg(short, long, default_value = "config/switchyard.toml")]
    pub config: PathBuf,
}

/// The limits of a key (those of a `[[keys]]` stanza).
#[derive(Debug, Args, Default)]
pub struct LimitFlags {
    #[arg(long)]
    pub rpm: Option<i64>,
    #[arg(long)]
    pub tpm: Option<i64>,
    #[arg(long)]
    pub max_concurrent: Option<i64>,
    #[arg(long)]
    pub tokens_per_day: Option<i64>,
    #[arg(long)]
    pub usd_per_month: Option<f64>,
}

impl LimitFlags {
    /// The flags given, over `base` (a key's current limits).
    fn over(&self, mut base: Map<String, Value>) -> Map<String, Value> {
        let ints = [
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("max_concurrent", self.max_concurrent),
            ("tokens_per_day", self.tokens_per_day),
        ];
        for (name, v) in ints {
            if let Some(v) = v {
                base.insert(name.into(), json!(v));
            }
        }
        if let Some(usd) = self.usd_per_month {
            base.insert("usd_per_month".into(), json!(usd));
        }
        base
    }
    fn any(&self) -> bool {
        self.rpm.is_some()
            || self.tpm.is_some()
            || self.max_concurrent.is_some()
            || self.tokens_per_day.is_some()
            || self.usd_per_month.is_some()
    }
}

#[derive(Debug, Subcommand)]
pub enum RuntimeKeyCommand {
    /// Issue a key on the running gateway; prints it with its secret (in `key`) this once.
    Create {
        #[command(flatten)]
        admin: Admin,
        #[arg(long)]
        team: String,
        /// Default: minted by the gateway (`rk-…`).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        limits: LimitFlags,
        /// RFC 3339 (`2027-01-01T00:00:00Z`).
        #[arg(long)]
        expires_at: Option<String>,
        /// A JSON object kept with the key.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List the keys issued at runtime (never a secret).
    List {
        #[command(flatten)]
        admin: Admin,
    },
    /// Change a key's limits (the flags given; the others are kept), expiry, metadata, or
    /// enable it again.
    Update {
        #[command(flatten)]
        admin: Admin,
        id: String,
        #[command(flatten)]
        limits: LimitFlags,
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        metadata: Option<String>,
        /// Accept the key again after `revoke --disable`.
        #[arg(long)]
        enable: bool,
    },
    /// Revoke a key on every instance: delete it, or with `--disable` keep it disabled.
    Revoke {
        #[command(flatten)]
        admin: Admin,
        id: String,
        #[arg(long)]
        disable: bool,
    },
}

/// Runs a `key` subcommand against the admin API.
pub fn run(command: RuntimeKeyCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(2, &format!("cannot start: {e}")),
    };
    runtime.block_on(async move {
        let admin = match &command {
            RuntimeKeyCommand::Create { admin, .. }
            | RuntimeKeyCommand::List { admin }
            | RuntimeKeyCommand::Update { admin, .. }
            | RuntimeKeyCommand::Revoke { admin, .. } => admin,
        };
        let api = match Api::new(admin) {
            Ok(api) => api,
            Err(e) => return fail(2, &e),
        };
        match call(&api, command).await {
            Ok(value) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err((code, message)) => fail(code, &message),
        }
    })
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("switchyard key: {message}");
    ExitCode::from(code)
}

type Failure = (u8, String);

async fn call(api: &Api, command: RuntimeKeyCommand) -> Result<Value, Failure> {
    match command {
        RuntimeKeyCommand::Create {
            admin: _,
            team,
            id,
            limits,
            expires_at,
            metadata,
        } => {
            let mut body = json!({"team": team, "limits": limits.over(Map::new())});
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            if let Some(t) = expires_at {
                body["expires_at"] = json!(t);
            }
            if let Some(m) = metadata {
                body["metadata"] = metadata_flag(&m)?;
            }
            let created = api.send(http::Method::POST, "/v1/keys", Some(body)).await?;
            eprintln!("The secret is in `key`, shown this once; the gateway keeps only its hash.");
            Ok(created)
        }
        RuntimeKeyCommand::List { admin: _ } => api.send(http::Method::GET, "/v1/keys", None).await,
        RuntimeKeyCommand::Update {
            admin: _,
            id,
            limits,
            expires_at,
            metadata,
            enable,
        } => {
            let path = format!("/v1/keys/{id}");
            let mut patch = Map::new();
            if limits.any() {
                let current = api.send(http::Method::GET, &path, None).await?;
                let base = current["limits"].as_object().cloned().unwrap_or_default();
                patch.insert("limits".into(), Value::Object(limits.over(base)));
            }
            if let Some(t) = expires_at {
                patch.insert("expires_at".into(), json!(t));
            }
            if let Some(m) = metadata {
                patch.insert("metadata".into(), metadata_flag(&m)?);
            }
            if enable {
                patch.insert("disabled".into(), json!(false));
            }
            if patch.is_empty() {
                return Err((
                    2,
                    "nothing to update: give a limit, --expires-at, --metadata or --enable".into(),
                ));
            }
            api.send(http::Method::PATCH, &path, Some(Value::Object(patch)))
                .await
        }
        RuntimeKeyCommand::Revoke {
            admin: _,
            id,
            disable,
        } => {
            let path = format!("/v1/keys/{id}");
            if disable {
                let body = json!({"disabled": true});
                api.send(http::Method::PATCH, &path, Some(body)).await
            } else {
                api.send(http::Method::DELETE, &path, None).await
            }
        }
    }
}

fn metadata_flag(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| (2, format!("--metadata: not JSON: {e}")))
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<bytes::Bytes>,
>;

/// The admin API: its base URL, the token, a client.
struct Api {
    base: String,
    token: String,
    client: Client,
}

impl Api {
    fn new(admin: &Admin) -> Result<Api, String> {
        let raw = read_raw(&admin.config);
        let base = match (&admin.admin_url, &raw) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Ok(raw)) => {
                let listen = raw
                    .server
                    .admin_listen
                    .as_ref()
                    .map_or("127.0.0.1:9090", |l| l.get_ref().as_str());
                let addr = crate::server::admin::probe_address(listen)
                    .map_or(listen.to_string(), |a| a.to_string());
                format!("http://{addr}")
            }
            (None, Err(e)) => return Err(format!("no --admin-url, and {e}")),
        };
        let token = token(&raw)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Api {
            base,
            token,
            client,
        })
    }

    /// One call; the answer's JSON, or (1, the gateway's message) on a refusal.
    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(bytes)))
            .map_err(|e| (2, format!("{url}: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| (2, format!("cannot reach {url}: {e}")))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| (2, format!("{url}: the answer was not read: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| (2, format!("{url}: {status}, not a JSON answer")))?;
        if status.is_success() {
            Ok(value)
        } else {
            let message = value["error"]["message"].as_str().unwrap_or("");
            Err((1, format!("{status}: {message}")))
        }
    }
}

/// The config as raw TOML (only `[server]` is used).
fn read_raw(path: &Path) -> Result<crate::config::raw::Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
}

/// `SWITCHYARD_ADMIN_TOKEN`, else the variable of the config's `admin_token_env`.
fn token(raw: &Result<crate::config::raw::Config, String>) -> Result<String, String> {
    if let Ok(t) = std::env::var(TOKEN_ENV) {
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let named = raw
        .as_ref()
        .ok()
        .and_then(|r| r.server.admin_token_env.as_ref())
        .map(|v| v.get_ref().clone());
    match named {
        Some(var) => std::env::var(&var)
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("no admin token: {TOKEN_ENV} and {var} are unset")),
        None => Err(format!(
            "no admin token: set {TOKEN_ENV} (or the config's [server] admin_token_env)"
        )),
    }
}
