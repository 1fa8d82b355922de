//! The config file exactly as written: serde types that mirror the TOML of `spec/gateway.md` §4.
//!
//! Every struct denies unknown fields, so a misspelt field is an error with its line rather than
//! a setting silently ignored. Values that validation must check are kept as [`Spanned`] so an
//! error can name the line they were written on; integers are read as `i64` (TOML's own integer
//! type) so that `0` or `-5` reach validation and get a clear reason instead of a serde message.
//! Nothing here is checked beyond TOML types: [`super::validate`] turns it into the runtime
//! [`super::Config`].

use serde::Deserialize;
use toml::Spanned;

/// The whole file. Every section is optional: an empty file is a valid (if useless) config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub providers: Vec<Provider>,
    #[serde(default)]
    pub models: Vec<Model>,
    #[serde(default)]
    pub teams: Vec<Team>,
    #[serde(default)]
    pub keys: Vec<Key>,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub content_filters: Vec<ContentFilter>,
    #[serde(default)]
    pub pricing: Pricing,
    /// Absent: no traces are exported.
    pub telemetry: Option<Spanned<Telemetry>>,
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// The collector's OTLP/HTTP base URL (`http://host:4318`); spans go to `/v1/traces`.
    pub endpoint: Option<Spanned<String>>,
    /// Share of new traces sampled, 0 to 1 (an integer or a float); default 1.
    pub sample_ratio: Option<Spanned<toml::Value>>,
    /// `service.name` of the spans; default `switchyard`.
    pub service_name: Option<Spanned<String>>,
    /// Requests' spans waiting for export; default 2048. When full, new spans are dropped.
    pub max_queue_size: Option<Spanned<i64>>,
}

/// `[server]`: the listeners and the request size limit. Absent fields take the spec's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: Option<Spanned<String>>,
    pub admin_listen: Option<Spanned<String>>,
    pub max_request_bytes: Option<Spanned<i64>>,
    pub threads: Option<Spanned<i64>>,
    /// PEM certificate chain (leaf first) served on the API listener; with `tls_key`.
    pub tls_cert: Option<Spanned<String>>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<Spanned<String>>,
    /// Serve the admin listener over TLS too, with the same pair (default false).
    pub admin_tls: Option<Spanned<bool>>,
    /// PEM CA certificates: the admin listener then requires a client certificate they signed.
    pub admin_tls_client_ca: Option<Spanned<String>>,
    pub max_uri_bytes: Option<Spanned<i64>>,
    pub max_header_line_bytes: Option<Spanned<i64>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub max_headers: Option<Spanned<i64>>,
    /// The environment variable holding the admin API's bearer token (the runtime key API,
    /// `crate::policy::runtime_keys`); read at start.
    pub admin_token_env: Option<Spanned<String>>,
}

/// `[routing]`: retries, fallbacks and the cool-down of failing routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    pub max_attempts: Option<Spanned<i64>>,
    pub backoff_base_ms: Option<Spanned<i64>>,
    pub backoff_max_ms: Option<Spanned<i64>>,
    pub failures_to_cool: Option<Spanned<i64>>,
    pub cooldown_ms: Option<Spanned<i64>>,
    pub retry_after_cap_ms: Option<Spanned<i64>>,
}

/// `[limits]`: settings of the limiter itself (the limits are in `[[teams]]` and `[[keys]]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Tokens reserved for the completion when a request gives no `max_tokens`.
    pub default_max_tokens: Option<Spanned<i64>>,
}

/// `[state]`: where the counters of limits and budgets live.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// `"memory"` (default) or `"redis"`.
    pub backend: Option<Spanned<String>>,
    /// Memory backend: the snapshot directory (default `data`).
    pub dir: Option<Spanned<String>>,
    /// Redis backend: `redis://…` or `rediss://…` (TLS); never with a password in it.
    pub redis_url: Option<Spanned<String>>,
    /// Redis backend on a Redis Cluster, instead of `redis_url`: seed nodes
    /// (`redis://host:port` or `rediss://…`, no password), any of which gives the slot map.
    pub redis_cluster: Option<Spanned<Vec<Spanned<String>>>>,
    /// Redis backend behind Sentinel, instead of `redis_url`: the sentinels
    /// (`redis://host:26379` or `rediss://…`), asked for the master `redis_master_name`.
    pub redis_sentinels: Option<Spanned<Vec<Spanned<String>>>>,
    /// With `redis_sentinels`: the master set's name (`sentinel monitor <name> …`).
    pub redis_master_name: Option<Spanned<String>>,
    /// Redis backend: the environment variable holding the password (`AUTH`).
    pub redis_password_env: Option<Spanned<String>>,
    /// Redis backend, `rediss://`: PEM CA certificates trusted beside the system roots.
    pub redis_ca_file: Option<Spanned<String>>,
    /// Redis backend: how long a limiter call may wait for Redis (default 100 ms).
    pub redis_timeout_ms: Option<Spanned<i64>>,
    /// Stored Responses (translated routes): how long one is kept (default 30 days).
    pub responses_ttl_s: Option<Spanned<i64>>,
    /// Both backends: the most bytes of stored responses held, all teams (default 64 MiB).
    pub responses_max_bytes: Option<Spanned<i64>>,
    /// Both backends: the most bytes of one team's stored responses (default 16 MiB).
    pub responses_team_max_bytes: Option<Spanned<i64>>,
    /// Stored responses in a Redis of their own (`redis://…` or `rediss://…`, the password and
    /// CA of `redis_password_env`/`redis_ca_file`), whatever the limiter's backend.
    pub responses_redis_url: Option<Spanned<String>>,
    /// Memory backend: the most stored responses kept (default 10000).
    pub responses_max_entries: Option<Spanned<i64>>,
    /// Vendor state kept for chat-door clients that drop `thinking_blocks`: how long (default
    /// 24 hours).
    pub vendor_state_ttl_s: Option<Spanned<i64>>,
    /// Memory backend: the file of the keys issued at runtime (default `<dir>/keys.json`).
    pub keys_file: Option<Spanned<String>>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// The usage log: a file path, `"-"` for stdout; absent: off.
    pub usage: Option<Spanned<String>>,
}

/// One `[[providers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: Spanned<String>,
    /// `openai | azure | anthropic | gemini | bedrock | vertex | mock`; kept a string so an unknown kind is
    /// reported by validation with its line and the list of known kinds.
    pub kind: Spanned<String>,
    pub base_url: Option<Spanned<String>>,
    pub api_key_env: Option<Spanned<String>>,
    /// The file holding the API key (instead of `api_key_env`), reread on every reload.
    pub api_key_file: Option<Spanned<String>>,
    pub connect_timeout_ms: Option<Spanned<i64>>,
    pub first_byte_timeout_ms: Option<Spanned<i64>>,
    pub idle_timeout_ms: Option<Spanned<i64>>,
    pub total_timeout_ms: Option<Spanned<i64>>,
    /// Azure only.
    pub api_version: Option<Spanned<String>>,
    /// Anthropic only.
    pub default_max_tokens: Option<Spanned<i64>>,
    /// OpenAI only: the server serves chat completions but not the Responses API.
    pub chat_only: Option<Spanned<bool>>,
    /// Client headers forwarded besides the vendor's own list: names or `prefix*`.
    #[serde(default)]
    pub forward_headers: Vec<Spanned<String>>,
    /// Bedrock only: the AWS region (`us-east-1`), for the endpoint and the signature.
    pub region: Option<Spanned<String>>,
    /// Bedrock only: the API a model id whose family cannot be read from it (an ARN) is
    /// called through: `invoke` (Claude, the Messages body) or `converse`.
    pub bedrock_api: Option<Spanned<String>>,
    /// Vertex only: the Google Cloud project id.
    pub project: Option<Spanned<String>>,
    /// Vertex only: the location (`us-east5`, `europe-west1`, `global`).
    pub location: Option<Spanned<String>>,
    /// Vertex only: a service-account key file (JSON); absent: Application Default Credentials.
    pub credentials_file: Option<Spanned<String>>,
}

/// One `[[models]]` entry with its `[[models.routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: Spanned<String>,
    #[serde(default)]
    pub aliases: Vec<Spanned<String>>,
    #[serde(default)]
    pub fallbacks: Vec<Spanned<String>>,
    pub input_usd_per_mtok: Option<Spanned<f64>>,
    pub output_usd_per_mtok: Option<Spanned<f64>>,
    pub cached_input_usd_per_mtok: Option<Spanned<f64>>,
    /// 5-minute prompt-cache writes.
    pub cache_write_usd_per_mtok: Option<Spanned<f64>>,
    /// 1-hour prompt-cache writes.
    pub cache_write_1h_usd_per_mtok: Option<Spanned<f64>>,
    /// `[[models.price_tiers]]`: the whole request at other prices above a prompt size.
    #[serde(default)]
    pub price_tiers: Vec<PriceTier>,
    /// `[models.service_tiers.flex]`, `[models.service_tiers.priority]`.
    pub service_tiers: Option<ServiceTiers>,
    /// `weighted` (default) or `latency`.
    pub strategy: Option<Spanned<String>>,
    /// `chat` (default) or `embedding`.
    pub kind: Option<Spanned<String>>,
    /// Defaults to empty so that "no routes" is reported by validation at the model's line.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// The five price fields of a model, a tier, a service tier or a catalogue entry, borrowed
/// (written out in each table, not flattened: flatten defeats `deny_unknown_fields`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawRates<'a> {
    pub input_usd_per_mtok: Option<&'a Spanned<f64>>,
    pub output_usd_per_mtok: Option<&'a Spanned<f64>>,
    pub cached_input_usd_per_mtok: Option<&'a Spanned<f64>>,
    pub cache_write_usd_per_mtok: Option<&'a Spanned<f64>>,
    pub cache_write_1h_usd_per_mtok: Option<&'a Spanned<f64>>,
}

impl RawRates<'_> {
    /// Whether any price is written.
    pub fn any(&self) -> bool {
        self.input_usd_per_mtok.is_some()
            || self.output_usd_per_mtok.is_some()
            || self.cached_input_usd_per_mtok.is_some()
            || self.cache_write_usd_per_mtok.is_some()
            || self.cache_write_1h_usd_per_mtok.is_some()
    }
}

/// Implements `rates()` for a table that writes out the five price fields.
macro_rules! raw_rates {
    ($t:ty) => {
        impl $t {
            pub fn rates(&self) -> RawRates<'_> {
                RawRates {
                    input_usd_per_mtok: self.input_usd_per_mtok.as_ref(),
                    output_usd_per_mtok: self.output_usd_per_mtok.as_ref(),
                    cached_input_usd_per_mtok: self.cached_input_usd_per_mtok.as_ref(),
                    cache_write_usd_per_mtok: self.cache_write_usd_per_mtok.as_ref(),
                    cache_write_1h_usd_per_mtok: self.cache_write_1h_usd_per_mtok.as_ref(),
                }
            }
        }
    };
}
raw_rates!(Model);
raw_rates!(PriceTier);
raw_rates!(ServiceRates);
raw_rates!(CatalogueEntry);

/// One `[[models.price_tiers]]` (or a catalogue entry's `[[prices.price_tiers]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// The tier applies to a prompt of more than this many tokens.
    pub above_prompt_tokens: Spanned<i64>,
    pub input_usd_per_mtok: Option<Spanned<f64>>,
    pub output_usd_per_mtok: Option<Spanned<f64>>,
    pub cached_input_usd_per_mtok: Option<Spanned<f64>>,
    pub cache_write_usd_per_mtok: Option<Spanned<f64>>,
    pub cache_write_1h_usd_per_mtok: Option<Spanned<f64>>,
}

/// `[models.service_tiers]`: rates of the OpenAI processing tiers other than the default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTiers {
    pub flex: Option<ServiceRates>,
    pub priority: Option<ServiceRates>,
}

/// `[models.service_tiers.flex]` or `.priority`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRates {
    pub input_usd_per_mtok: Option<Spanned<f64>>,
    pub output_usd_per_mtok: Option<Spanned<f64>>,
    pub cached_input_usd_per_mtok: Option<Spanned<f64>>,
    pub cache_write_usd_per_mtok: Option<Spanned<f64>>,
    pub cache_write_1h_usd_per_mtok: Option<Spanned<f64>>,
}

/// `[pricing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// An operator's price catalogue (the shape of `config/prices.toml`), searched before the
    /// built-in one; reloaded with the config.
    pub catalogue: Option<Spanned<String>>,
}

/// A price catalogue file: `[[prices]]` entries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    #[serde(default)]
    pub prices: Vec<CatalogueEntry>,
}

/// One `[[prices]]` entry of a catalogue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    /// The vendor kind (`openai`, `anthropic`, `gemini`, `bedrock`, `vertex`; `azure` routes
    /// take the `openai` entries).
    pub kind: Spanned<String>,
    /// Model-name globs (the route's upstream model, else the model's name).
    pub models: Vec<Spanned<String>>,
    pub input_usd_per_mtok: Option<Spanned<f64>>,
    pub output_usd_per_mtok: Option<Spanned<f64>>,
    pub cached_input_usd_per_mtok: Option<Spanned<f64>>,
    pub cache_write_usd_per_mtok: Option<Spanned<f64>>,
    pub cache_write_1h_usd_per_mtok: Option<Spanned<f64>>,
    #[serde(default)]
    pub price_tiers: Vec<PriceTier>,
    pub service_tiers: Option<ServiceTiers>,
    /// The date the prices were read (`YYYY-MM-DD`).
    pub as_of: Spanned<String>,
    /// The vendor page they were read from.
    pub source: Spanned<String>,
}

/// One `[[models.routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub provider: Spanned<String>,
    /// The upstream's name for the model.
    pub model: Spanned<String>,
    /// Default 1.
    pub weight: Option<Spanned<i64>>,
}

/// Per-team or per-key limits, flattened into their table in the file. Written out in both
/// [`Team`] and [`Key`] (not `#[serde(flatten)]`), because flatten defeats both
/// `deny_unknown_fields` and [`Spanned`].
#[derive(Debug, Default)]
pub struct Limits<'a> {
    pub rpm: Option<&'a Spanned<i64>>,
    pub tpm: Option<&'a Spanned<i64>>,
    pub max_concurrent: Option<&'a Spanned<i64>>,
    pub tokens_per_day: Option<&'a Spanned<i64>>,
    pub usd_per_month: Option<&'a Spanned<f64>>,
}

/// One `[[teams]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: Spanned<String>,
    /// Allowed model-name globs; absent: every model.
    pub models: Option<Vec<Spanned<String>>>,
    pub rpm: Option<Spanned<i64>>,
    pub tpm: Option<Spanned<i64>>,
    pub max_concurrent: Option<Spanned<i64>>,
    pub tokens_per_day: Option<Spanned<i64>>,
    pub usd_per_month: Option<Spanned<f64>>,
    /// Each end user's own budget inside the team (a user named by attribution), tokens per
    /// UTC day.
    pub user_tokens_per_day: Option<Spanned<i64>>,
    /// Each end user's own budget inside the team, USD per UTC month.
    pub user_usd_per_month: Option<Spanned<f64>>,
    /// `[teams.attribution]`: where the end user of a request is read from.
    pub attribution: Option<Spanned<Attribution>>,
}

/// `[teams.attribution]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribution {
    /// Sources of the end user, first found wins: `"header"` (`x-switchyard-user`), `"body"`
    /// (the door's own field). Default `["header"]`.
    pub user_from: Option<Vec<Spanned<String>>>,
}

impl Team {
    pub fn limits(&self) -> Limits<'_> {
        Limits {
            rpm: self.rpm.as_ref(),
            tpm: self.tpm.as_ref(),
            max_concurrent: self.max_concurrent.as_ref(),
            tokens_per_day: self.tokens_per_day.as_ref(),
            usd_per_month: self.usd_per_month.as_ref(),
        }
    }
}

/// One `[[keys]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub id: Spanned<String>,
    pub team: Spanned<String>,
    /// SHA-256 of the secret, 64 hex digits.
    pub sha256: Spanned<String>,
    pub rpm: Option<Spanned<i64>>,
    pub tpm: Option<Spanned<i64>>,
    pub max_concurrent: Option<Spanned<i64>>,
    pub tokens_per_day: Option<Spanned<i64>>,
    pub usd_per_month: Option<Spanned<f64>>,
    /// An RFC 3339 date-time, quoted as the spec writes it or as a bare TOML date-time: both
    /// are accepted, hence a [`toml::Value`] rather than a `String`.
    pub expires_at: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub disabled: bool,
}

impl Key {
    pub fn limits(&self) -> Limits<'_> {
        Limits {
            rpm: self.rpm.as_ref(),
            tpm: self.tpm.as_ref(),
            max_concurrent: self.max_concurrent.as_ref(),
            tokens_per_day: self.tokens_per_day.as_ref(),
            usd_per_month: self.usd_per_month.as_ref(),
        }
    }
}

/// `[auth]`: clients beside the `[[keys]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `[[auth.jwt]]`: identity providers whose signed JWTs are accepted as bearer tokens.
    #[serde(default)]
    pub jwt: Vec<Jwt>,
}

/// One `[[auth.jwt]]` issuer (see `crate::policy::jwt`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// Shown in metrics (the `key` label) and logs.
    pub name: Spanned<String>,
    /// The exact `iss` of its tokens.
    pub issuer: Spanned<String>,
    /// Accepted `aud` values: a token must name at least one.
    pub audiences: Spanned<Vec<Spanned<String>>>,
    /// Where its public keys are served (a JWK Set), `https://…` (or `http://` on loopback).
    pub jwks_url: Spanned<String>,
    /// The claim naming the team: a string, or a list of strings (groups) of which the first
    /// naming a `[[teams]]` entry wins.
    pub team_claim: Option<Spanned<String>>,
    /// The team of a token whose team claim is absent or names no team.
    pub default_team: Option<Spanned<String>>,
    /// The claim naming the end user (default `sub`).
    pub user_claim: Option<Spanned<String>>,
    /// The claim holding the user's own limits (an object of `rpm`, `tpm`,
    /// `max_concurrent`, `tokens_per_day`, `usd_per_month`), in place of the team's per-user
    /// budgets.
    pub limits_claim: Option<Spanned<String>>,
    /// Accepted algorithms, of `RS256`, `ES256`, `EdDSA` (default all three).
    pub algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    /// Clock skew allowed on `exp` and `nbf`, seconds (default 60).
    pub leeway_s: Option<Spanned<i64>>,
    /// How often the JWK Set is fetched again, seconds (default 300).
    pub jwks_refresh_s: Option<Spanned<i64>>,
    /// The least time between two fetches, seconds (default 10): bounds the refetches a
    /// token with an unknown `kid` may cause.
    pub jwks_min_refetch_s: Option<Spanned<i64>>,
}

/// One `[[content_filters]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentFilter {
    pub name: Spanned<String>,
    /// Regexes; a request whose text matches any of them is refused.
    pub deny: Vec<Spanned<String>>,
    /// Team-name globs; absent: every team (`["*"]`).
    pub teams: Option<Vec<Spanned<String>>>,
}
