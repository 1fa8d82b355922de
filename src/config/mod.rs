//! The configuration: the TOML file of docs/config.md, read into raw serde types
//! ([`raw`], `deny_unknown_fields`), then checked and turned into the runtime [`Config`]
//! ([`validate`]) whose lookup tables the request path uses without further work.
//!
//! Every error names the file, the line and the config path (`models[1].routes[0].provider`),
//! so `switchyard check` and a rejected hot reload say exactly what is wrong; every
//! independent error is reported, not just the first ([`check_str`]). `switchyard check
//! --offline` ([`Mode::Offline`]) reads no environment variable or key file and resolves no
//! host, so CI can check a config without its secrets. [`demo_key`] warns while the published
//! demo key is loaded and reaches more than the built-in mock.
//!
//! A running config is kept in [`snapshot`] and replaced by [`reload`], which hears of file
//! changes through [`watch`] (the TLS certificate rotation uses the same watcher). Checking a
//! config reaches none of them: [`validate`] reads certificate files only through
//! `crate::server::tls::pem`, which imports nothing of the crate.

pub(crate) mod demo_key;
pub mod raw;
pub(crate) mod reload;
pub(crate) mod snapshot;
pub(crate) mod validate;
pub(crate) mod watch;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use validate::{check_file, check_str, load_file, load_str, load_str_for_reload, Mode};

/// Why a config was refused: the file, the 1-based line (when one can be named), the config
/// path of the offending field and the reason. Displayed as `file:line: path: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub path: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// A secret read from the environment or a key file (a provider's API key). Its `Debug` never prints it, so
/// it cannot leak through a log line or a panic message that formats the config.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// The secret itself: call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

/// The whole validated configuration. Immutable once built; a reload builds a new one.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub source: PathBuf,
    /// SHA-256 (hex) of the file's bytes: shown by `/readyz` and the metrics.
    pub hash: String,
    pub server: Server,
    pub state: State,
    /// `[state] responses_*`: the stored responses of translated Responses routes.
    pub stored_responses: StoredResponses,
    /// `[state] responses_redis_url`: the stored responses' own Redis (`None`: they live in
    /// `state`'s backend). Read at start, like `state`.
    pub responses_redis: Option<RedisState>,
    pub log: Log,
    pub routing: Routing,
    pub limits: LimitsConfig,
    pub providers: Vec<Arc<Provider>>,
    pub models: Vec<Arc<Model>>,
    pub teams: Vec<Arc<Team>>,
    pub keys: Vec<Arc<Key>>,
    /// `[[auth.jwt]]`: the identity providers whose JWTs are accepted (`crate::policy::jwt`).
    pub jwt: Vec<Arc<JwtIssuer>>,
    pub content_filters: Vec<Arc<ContentFilter>>,
    /// `[telemetry]`; `None`: no traces.
    pub telemetry: Option<TelemetryConfig>,
    /// Model name or alias → index into `models`.
    pub model_index: HashMap<String, usize>,
    /// Aliases with a `*` (`claude-*`), each with its model's index, in the config's order:
    /// asked only for a name no model or exact alias has.
    pub alias_patterns: Vec<(Globs, usize)>,
    /// SHA-256 of a key's secret → index into `keys`.
    pub key_index: HashMap<[u8; 32], usize>,
    /// The files vendor keys were read from (`api_key_file`), as written: the reloader
    /// watches them, so a rotated key is read again without a restart.
    pub key_files: Vec<PathBuf>,
    /// `[pricing] catalogue` as written and the SHA-256 of the bytes it was read with: the
    /// reloader watches it like a key file, and stores a new config when its bytes changed.
    pub price_catalogue: Option<(PathBuf, String)>,
    /// The admin key API's credential and the memory backend's key file
    /// (`crate::policy::runtime_keys`).
    pub runtime_keys: RuntimeKeysConfig,
}

/// `[server] admin_token_env` and `[state] keys_file`: what the keys issued at runtime need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeKeysConfig {
    /// The admin API's bearer token, read from `admin_token_env` at load; `None`: only the
    /// admin listener's mTLS (if any) admits a caller to the key API.
    pub admin_token: Option<Secret>,
    /// Memory backend: where runtime keys are kept (written atomically, mode 0600).
    pub keys_file: PathBuf,
}

impl Config {
    /// The model a client's `model` names: by its name or one of its aliases, else by the
    /// first alias pattern (`claude-*`) that matches it, in the config's order.
    pub fn model(&self, name: &str) -> Option<&Arc<Model>> {
        let i = self.model_index.get(name).copied().or_else(|| {
            self.alias_patterns
                .iter()
                .find(|(globs, _)| globs.matches(name))
                .map(|&(_, i)| i)
        })?;
        self.models.get(i)
    }
    pub fn provider(&self, idx: usize) -> &Arc<Provider> {
        &self.providers[idx]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// API listener, e.g. `0.0.0.0:8080`.
    pub listen: String,
    /// Admin listener (metrics, health), e.g. `127.0.0.1:9090`.
    pub admin_listen: String,
    /// Largest request body accepted; larger gets 413.
    pub max_request_bytes: usize,
    /// Worker threads of the proxy service (default: the number of CPUs).
    pub threads: Option<usize>,
    /// Caps on the request head, checked first on every listener (`crate::server::request_head`).
    pub head: HeadLimits,
    /// TLS on the listeners; `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// `[server] tls_*`: the certificate pair (checked at load: readable, matching, not expired)
/// and where it is served. Paths are relative to the working directory, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Whether the admin listener serves TLS too (same pair).
    pub admin: bool,
    /// CA certificates that must have signed the admin listener's client certificates.
    pub admin_client_ca: Option<PathBuf>,
}

/// Caps on a request's head (request line and headers). The defaults are nginx's and
/// Apache's: a request line or a header line must fit in 8 KiB (nginx's
/// `large_client_header_buffers 4 8k`, Apache's `LimitRequestLine`/`LimitRequestFieldSize`),
/// the whole head in 32 KiB (nginx's four such buffers), and 100 header fields (Apache's
/// `LimitRequestFields`). pingora's HTTP/1 reader itself stops at 1 MiB of head and 256 header
/// fields; these caps apply below that, so they are bounded by those values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request target (path and query), in bytes; longer gets 414.
    pub max_uri_bytes: usize,
    /// Longest header line (`name: value`), in bytes; longer gets 431.
    pub max_header_line_bytes: usize,
    /// Largest head (request line and every header line, with their CRLFs); larger gets 431.
    pub max_header_bytes: usize,
    /// Most header fields; more gets 431.
    pub max_headers: usize,
}

impl HeadLimits {
    /// pingora 0.9's HTTP/1 reader answers a bare 400 (no body) and closes the connection
    /// when a head is larger than this, before the gateway sees the request.
    pub const PINGORA_MAX_HEADER_BYTES: usize = 1_048_575;
    /// pingora 0.9's HTTP/1 reader parses at most this many header fields (more: a bare 400).
    pub const PINGORA_MAX_HEADERS: usize = 256;
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_uri_bytes: 8 * 1024,
            max_header_line_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// `[limits]`: how the limiter estimates a request before it knows its real usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Completion tokens reserved (from tpm and the day's budget) for a request that gives no
    /// `max_tokens`; settled with the real count when the answer ends.
    pub default_max_tokens: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            default_max_tokens: 1024,
        }
    }
}

/// `[routing]`: how failed attempts are retried and failing routes cooled down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// Upstream attempts per request, the first included (routes and fallbacks together).
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles for each further one (with jitter).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Consecutive failures that cool a route down.
    pub failures_to_cool: u32,
    /// How long a cooled route is skipped before one probe request is let through.
    pub cooldown: Duration,
    /// The longest vendor `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            max_attempts: 3,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
            failures_to_cool: 3,
            cooldown: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Counters live in this process, snapshotted under `dir`.
    Memory { dir: PathBuf },
    /// Counters shared by every instance through Redis; a call that takes longer than
    /// `timeout` is limited by this instance alone.
    Redis(RedisState),
}

/// `[state] responses_*`: how the gateway keeps the responses it answers on translated
/// Responses routes (`crate::response_store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredResponses {
    /// How long a stored response lives (both backends).
    pub ttl: Duration,
    /// Both backends: the most bytes held by all teams' stored responses (as the backend
    /// holds them: the body, its keys and index entries); the oldest are evicted first.
    pub max_bytes: usize,
    /// Both backends: the most bytes held by one team's stored responses; that team's oldest
    /// are evicted first. At most `max_bytes`.
    pub team_max_bytes: usize,
    /// Memory backend: the most responses kept.
    pub max_entries: usize,
    /// How long vendor state kept for a tool call lives (`[state] vendor_state_ttl_s`,
    /// `crate::response_store::vendor_state`); it shares the bounds above.
    pub vendor_state_ttl: Duration,
}

impl StoredResponses {
    /// Default of `responses_max_bytes`: 64 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
    /// Default of `responses_team_max_bytes`: 16 MiB (or `responses_max_bytes` if smaller).
    pub const DEFAULT_TEAM_MAX_BYTES: usize = 16 * 1024 * 1024;
}

impl Default for StoredResponses {
    fn default() -> Self {
        StoredResponses {
            ttl: Duration::from_secs(30 * 86_400),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            team_max_bytes: Self::DEFAULT_TEAM_MAX_BYTES,
            max_entries: 10_000,
            vendor_state_ttl: Duration::from_secs(86_400),
        }
    }
}

/// How to reach Redis: one server, a cluster or a master found through Sentinel; `redis://`
/// or `rediss://` (TLS, system roots plus `ca_file`), the password read from the environment
/// at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisState {
    pub nodes: RedisNodes,
    pub timeout: Duration,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

/// Where Redis is (`[state] redis_url`, `redis_cluster`, or `redis_sentinels` with
/// `redis_master_name`). No URL holds a password (refused at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisNodes {
    /// One server (or a primary behind a fixed address): `redis_url`.
    Single(String),
    /// A Redis Cluster: its seed nodes (any reachable one gives the slot map).
    Cluster(Vec<String>),
    /// The master named `master_name`, asked of `sentinels` (`redis://host:26379`).
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

/// `[telemetry]`: where and how the spans are exported (read at start; a reload keeps the
/// exporter the gateway started with).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The endpoint as written, for messages.
    pub endpoint: String,
    /// The collector's address, resolved at load (unspecified, `0.0.0.0`, in a config checked
    /// offline, which is never served).
    pub addr: std::net::SocketAddr,
    /// `Host` header of the export requests.
    pub host_header: String,
    /// The path spans are posted to (the endpoint's path + `/v1/traces`).
    pub path: String,
    pub sample_ratio: f64,
    pub service_name: String,
    pub max_queue_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// Where the usage log goes: `None` off, `Some(Stdout)` or a file.
    pub usage: Option<UsageSink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageSink {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
    Bedrock,
    Vertex,
    Mock,
}

impl ProviderKind {
    /// Every kind, in the order a config error lists them. What each one is and takes is its
    /// [`crate::providers::Vendor`] (`crate::providers::vendor(kind)`).
    pub const ALL: [ProviderKind; 7] = [
        ProviderKind::OpenAi,
        ProviderKind::Azure,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Bedrock,
        ProviderKind::Vertex,
        ProviderKind::Mock,
    ];
}

/// Where and how to reach one vendor.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// Parsed `base_url`; `None` only for `kind = "mock"`.
    pub upstream: Option<Upstream>,
    /// The API key, read from `api_key_env` or `api_key_file` at load time; `None` when
    /// neither is named (or when checked offline).
    pub api_key: Option<Secret>,
    /// The env var the key came from (for messages; never the key).
    pub api_key_env: Option<String>,
    pub timeouts: Timeouts,
    /// Azure: the `api-version` query parameter.
    pub api_version: Option<String>,
    /// Anthropic: `max_tokens` sent when the client gives none.
    pub default_max_tokens: Option<u64>,
    /// OpenAI-compatible servers that serve chat completions only (vLLM, Ollama, llama.cpp):
    /// the Responses door is translated to chat for them.
    pub chat_only: bool,
    /// `forward_headers`: client headers forwarded to this provider besides its vendor's own
    /// allow-list (`crate::providers::headers`); never a credential, cookie, forwarding,
    /// organisation/project or hop-by-hop header (refused by validation).
    pub forward_headers: Vec<HeaderPattern>,
    /// Bedrock (`kind = "bedrock"`): its region, API override and AWS credentials.
    pub bedrock: Option<crate::providers::bedrock::Settings>,
    /// Vertex: the project, location and credentials (`None` for other kinds).
    pub google: Option<GoogleCloud>,
}

/// Where a `kind = "vertex"` provider's models run and who it is to Google.
#[derive(Debug)]
pub struct GoogleCloud {
    /// The Google Cloud project id (in every path).
    pub project: String,
    /// The location (`us-east5`, `global`): in every path, and the default endpoint's host.
    pub location: String,
    /// `credentials_file` as written, if given (else Application Default Credentials).
    pub credentials_file: Option<PathBuf>,
    /// The access tokens, refreshed in the background; `None` only in a config checked
    /// offline, which is never served.
    pub tokens: Option<Arc<crate::providers::vertex::auth::Tokens>>,
}

/// One `forward_headers` entry: an exact header name, or a prefix (written with a trailing
/// `*`, kept without it); lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    Exact(String),
    Prefix(String),
}

impl HeaderPattern {
    /// Whether the lower-case header `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HeaderPattern::Exact(n) => n == name,
            HeaderPattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// A parsed `base_url`, with its addresses resolved at load time (pingora's `HttpPeer`
/// would resolve DNS blocking, and panic on failure, on every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    /// Host name (no port): the SNI and `Host` header.
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash, e.g. `/v1`; `""` for none.
    pub base_path: String,
    /// `Host` header value: `host` or `host:port` when the port is not the scheme's default.
    pub host_header: String,
    /// Resolved addresses, at least one (none only in a config checked offline, which is
    /// never served).
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(2_000),
            first_byte: Duration::from_millis(30_000),
            idle: Duration::from_millis(30_000),
            total: Duration::from_millis(600_000),
        }
    }
}

/// A model as clients name it, and the upstream routes that serve it.
#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub aliases: Vec<String>,
    /// Other models (indices into `Config::models`) to try, in order, when every route fails.
    pub fallbacks: Vec<usize>,
    /// Its prices: the config's, else the price catalogue's entry for its routes
    /// ([`crate::accounting::prices`]); `None`: neither has one (it costs 0, and
    /// `switchyard check` warns).
    pub prices: Option<Arc<crate::accounting::prices::Prices>>,
    /// How a route is picked among the healthy ones.
    pub strategy: Strategy,
    /// What the model does: chat (every generating door), embeddings, or unmarked (any door).
    pub kind: ModelKind,
    pub routes: Vec<Route>,
}

/// `[[models]] kind`: which doors a model serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ModelKind {
    /// No `kind` in the config: every door, as before kinds existed (a config written then
    /// keeps working), and no `type` in `/v1/models`.
    #[default]
    Unmarked,
    /// Chat completions, Messages, Responses.
    Chat,
    /// `/v1/embeddings` only.
    Embedding,
}

impl ModelKind {
    /// The `type` of `/v1/models`; `None` for an unmarked model.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            ModelKind::Unmarked => None,
            ModelKind::Chat => Some("chat"),
            ModelKind::Embedding => Some("embedding"),
        }
    }
}

/// `[[models]] strategy`: how a route is picked among the model's healthy routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// At random, in proportion to the routes' weights.
    #[default]
    Weighted,
    /// The power of two choices: two routes drawn by weight, the one with the lower
    /// time-to-first-token average × (requests in flight + 1) taken, so a slow or busy route
    /// sheds traffic before it fails.
    Latency,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Index into `Config::providers`.
    pub provider: usize,
    /// The upstream's name for the model.
    pub upstream_model: String,
    /// Relative weight, at least 1.
    pub weight: u32,
}

/// Limits and budgets shared by a team's keys, or tightened for one key. `None`: no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub tokens_per_day: Option<u64>,
    pub usd_per_month: Option<f64>,
}

#[derive(Debug)]
pub struct Team {
    pub name: String,
    /// Allowed model names (globs); `None`: every model.
    pub models: Option<Globs>,
    pub limits: Limits,
    /// Each end user's budgets inside the team (`user_tokens_per_day`, `user_usd_per_month`;
    /// the rates are always `None`). A request without a user is not held to them.
    pub user_limits: Limits,
    /// Where the end user of a request is read from (`[teams.attribution] user_from`), in
    /// order, first found wins. Default: the `x-switchyard-user` header only.
    pub user_from: Vec<UserSource>,
}

/// Where an end user's name can be read from (`crate::policy::attribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    /// The `x-switchyard-user` request header.
    Header,
    /// The door's own body field: `safety_identifier`, else `user` (chat completions and
    /// Responses); `metadata.user_id` (Messages).
    Body,
}

impl UserSource {
    /// Its name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            UserSource::Header => "header",
            UserSource::Body => "body",
        }
    }
}

impl Team {
    /// Whether this team may use the model named `name` (its canonical name).
    pub fn allows(&self, name: &str) -> bool {
        match &self.models {
            None => true,
            Some(globs) => globs.matches(name),
        }
    }
}

#[derive(Debug)]
pub struct Key {
    /// Shown in metrics and logs; never the secret.
    pub id: String,
    /// Index into `Config::teams`.
    pub team: usize,
    pub sha256: [u8; 32],
    pub limits: Limits,
    pub expires_at: Option<SystemTime>,
    pub disabled: bool,
}

/// One `[[auth.jwt]]` issuer, checked (`crate::policy::jwt` verifies its tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIssuer {
    /// Shown in metrics (the `key` label) and logs; never a user.
    pub name: String,
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// Accepted `aud` values (at least one).
    pub audiences: Vec<String>,
    /// The JWK Set's URL.
    pub jwks_url: String,
    /// The claim naming the team (a string, or a list of group names); `None`: every token
    /// gets `default_team`.
    pub team_claim: Option<String>,
    /// Index into `Config::teams` of the team of a token whose claim names none.
    pub default_team: Option<usize>,
    /// The claim naming the end user (default `sub`).
    pub user_claim: String,
    /// The claim holding the user's own limits (`crate::policy::jwt::claim_limits`).
    pub limits_claim: Option<String>,
    /// Accepted algorithms (never `none`, never HS*).
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
    /// The JWK Set is fetched again this often.
    pub jwks_refresh: Duration,
    /// The least time between two fetches of the JWK Set.
    pub jwks_min_refetch: Duration,
}

/// A JWS algorithm an issuer may sign with: asymmetric only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    Rs256,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl JwtAlgorithm {
    /// All of them, the default.
    pub const ALL: [JwtAlgorithm; 3] = [
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Es256,
        JwtAlgorithm::EdDsa,
    ];

    /// Its `alg` name (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm an `alg` names, if it is one of these.
    pub fn from_name(name: &str) -> Option<JwtAlgorithm> {
        JwtAlgorithm::ALL.into_iter().find(|a| a.name() == name)
    }
}

#[derive(Debug)]
pub struct ContentFilter {
    pub name: String,
    pub deny: Vec<regex::Regex>,
    /// Team name globs this policy applies to (`*`: all).
    pub teams: Globs,
}

/// A list of globs (a team's model allow-list, a content filter's teams), compiled once at
/// load by `globset` into one set. `*` matches any run of characters (also empty, `/`
/// included), `?` one character, `[abc]`/`[a-z]` one of a class, `{a,b}` either; `\`
/// escapes. Matching is case-sensitive.
#[derive(Debug, Clone)]
pub struct Globs {
    patterns: Vec<String>,
    set: globset::GlobSet,
}

impl Globs {
    /// Compiles `patterns`; an invalid one is returned by its index, with globset's reason.
    pub fn new(patterns: Vec<String>) -> Result<Globs, (usize, String)> {
        let mut set = globset::GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            let glob = globset::Glob::new(p).map_err(|e| (i, e.kind().to_string()))?;
            set.add(glob);
        }
        let set = set.build().map_err(|e| (0, e.to_string()))?;
        Ok(Globs { patterns, set })
    }

    /// Whether any of the globs matches `text` whole.
    pub fn matches(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    /// The globs as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl PartialEq for Globs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

/// The default config path of the spec.
pub fn default_path() -> &'static Path {
    Path::new("config/switchyard.toml")
}

#[cfg(test)]
mod tests {
    use super::Globs;

    fn glob_match(pattern: &str, text: &str) -> bool {
        Globs::new(vec![pattern.to_string()]).unwrap().matches(text)
    }

    #[test]
    fn globs() {
        assert!(glob_match("claude-*", "claude-sonnet"));
        assert!(glob_match("*", ""));
        assert!(glob_match("gpt-4o", "gpt-4o"));
        assert!(!glob_match("gpt-4o", "gpt-4o-mini"));
        assert!(glob_match("*-mini", "gpt-4o-mini"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("org/*", "org/team/x"));
        assert!(glob_match("gpt-4?", "gpt-4o"));
        assert!(glob_match("{gpt,o}-*", "o-3"));
        assert!(!glob_match("Claude-*", "claude-x"));
        let two = Globs::new(vec!["a".into(), "b*".into()]).unwrap();
        assert!(two.matches("a") && two.matches("bcd") && !two.matches("c"));
        assert!(!Globs::new(vec![]).unwrap().matches(""));
        assert_eq!(
            Globs::new(vec!["ok".into(), "gpt-[4".into()]).unwrap_err(),
            (1, "unclosed character class; missing ']'".to_string())
        );
    }
}
