//! From the raw TOML types to the runtime [`Config`]: every check of the config happens here,
//! once, at load or reload, so the request path never meets a malformed value.
//!
//! Every problem is reported as a [`ConfigError`] naming the 1-based line and the config path
//! (`models[1].routes[0].provider`) of the offending field. Validation goes on after an error:
//! each section, and each provider, model, team, key and content filter, is checked on its own
//! ([`check_str`] returns every error, at least one per faulty item; [`load_str`] the first).
//! A TOML syntax error stops at that one error: the file cannot be read further. An unknown
//! field or a wrongly typed value is reported and passed over (its line set aside), up to a
//! missing field or a value over several lines. Those get their line from the `toml` crate's
//! error span; semantic errors get it from the [`Spanned`] raw fields. Secrets (environment values, key files)
//! never appear in an error.
//!
//! [`Mode`] says what a check may reach: at start everything; on a hot reload not the PEM
//! files; offline (`switchyard check --offline`) neither the environment, nor key files, nor
//! DNS.
//!
//! One submodule per section: [`server`], [`state`] (and `[log]`), [`routing`] (and
//! `[limits]`), [`providers`], [`models`], [`teams`] (and keys), [`auth`] (`[[auth.jwt]]`),
//! [`filters`], [`telemetry`];
//! [`checks`] holds the small checks they share, on the value [`rules`] that the admin key
//! API (`crate::policy::runtime_keys`) shares too.

mod auth;
mod checks;
mod filters;
mod models;
pub(crate) mod prices;
mod providers;
mod routing;
pub(crate) mod rules;
mod server;
mod state;
mod teams;
mod telemetry;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::raw;
use super::{Config, ConfigError};
use auth::jwt_issuers;
use filters::content_filters;
use models::{alias_patterns, fallback_kinds, model, model_index};
use providers::{providers, Providers};
use routing::{limits_config, routing};
use server::server;
use state::{log, responses_redis, runtime_keys, state, stored_responses};
use teams::{keys, teams};
use telemetry::telemetry;

pub(super) type Result<T> = std::result::Result<T, ConfigError>;

/// Longest provider, model, alias, team or key name: they become metric labels and log fields.
pub(super) const MAX_NAME_LEN: usize = 128;

/// What a check reads besides the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serve` and `switchyard check`: environment variables, key files, PEM files, DNS.
    Start,
    /// A hot reload: as [`Mode::Start`] but not the PEM files the config names (see
    /// [`load_str_for_reload`]); an environment variable the process lacks is reported as
    /// needing a restart (a process's environment is fixed when it starts).
    Reload,
    /// `switchyard check --offline`, for CI without secrets: no environment variable, no key
    /// file and no host name is read or resolved (their names and paths are still checked).
    /// The [`Config`] it returns is for counting only: it has no keys and no addresses.
    Offline,
}

/// Reads and validates the config file at `path`. An unreadable file is an error without a line.
pub fn load_file(path: &Path) -> Result<Config> {
    check_file(path, Mode::Start).map_err(first)
}

/// Validates config `text`; `path` is only recorded (in errors and [`Config::source`]).
pub fn load_str(text: &str, path: &Path) -> Result<Config> {
    check_str(text, path, Mode::Start).map_err(first)
}

/// [`load_str`] for a hot reload ([`Mode::Reload`]): the certificate and CA files named by
/// `[server] tls_*` and `[state] redis_ca_file` are not read. Those settings need a restart
/// (the running ones are kept), and the pair's contents are `tls::Rotation`'s business: a bad
/// certificate on disk must not block a config edit such as disabling a leaked key.
pub fn load_str_for_reload(text: &str, path: &Path) -> Result<Config> {
    check_str(text, path, Mode::Reload).map_err(first)
}

/// Reads and validates the config file at `path`, returning every error found (never an
/// empty list), section by section (`[server]`, `[state]`, `[log]`, `[routing]`, `[limits]`,
/// providers, models, teams, keys, content filters, `[telemetry]`), items in file order.
pub fn check_file(path: &Path, mode: Mode) -> std::result::Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            path: String::new(),
            reason: format!("cannot read the config file: {e}"),
        }]
    })?;
    check_str(&text, path, mode)
}

/// Validates config `text` in `mode`, returning every error found (never an empty list).
pub fn check_str(
    text: &str,
    path: &Path,
    mode: Mode,
) -> std::result::Result<Config, Vec<ConfigError>> {
    validate_source(Source::new(text, path, mode))
}

/// The first of a list of errors (the list is never empty; a placeholder if it were).
fn first(errors: Vec<ConfigError>) -> ConfigError {
    errors.into_iter().next().unwrap_or_else(|| ConfigError {
        file: Default::default(),
        line: None,
        path: String::new(),
        reason: "invalid config".to_string(),
    })
}

fn validate_source(src: Source) -> std::result::Result<Config, Vec<ConfigError>> {
    // Syntax first, on its own: a syntax error has a line but no meaningful config path.
    toml::from_str::<toml::Table>(src.text).map_err(|e| vec![src.toml_error(&e, false)])?;
    let raw = deserialize(&src)?;
    build(&src, &raw)
}

/// Most unknown fields and wrongly typed values reported before giving up on the file.
const MAX_FIELD_ERRORS: usize = 100;

/// The raw config, read past unknown fields and wrongly typed values: each such error is
/// recorded in `src`, its line blanked (spaces, byte for byte, so every offset and line of the
/// text stays the same) and the text read again. An error that is not on a `key = value` line
/// (a missing field, reported at its table's header), or whose blanking breaks the syntax (a
/// value over several lines), ends the reading: every error so far is returned.
fn deserialize(src: &Source) -> std::result::Result<raw::Config, Vec<ConfigError>> {
    let mut text = src.text.to_string();
    for _ in 0..MAX_FIELD_ERRORS {
        let e = match toml::from_str::<raw::Config>(&text) {
            Ok(raw) => return Ok(raw),
            Err(e) => e,
        };
        src.errors.borrow_mut().push(src.toml_error(&e, true));
        let blanked = e
            .span()
            .is_some_and(|span| blank_line(&mut text, span.start));
        if !blanked || toml::from_str::<toml::Table>(&text).is_err() {
            break;
        }
    }
    Err(src.errors.take())
}

/// Replaces the line holding byte `offset` by spaces when it is a `key = value` line.
fn blank_line(text: &mut String, offset: usize) -> bool {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    if line_key(&text[start..end]).is_none() {
        return false;
    }
    let spaces = " ".repeat(end - start);
    text.replace_range(start..end, &spaces);
    true
}

/// The text being validated, with what is needed to turn a byte offset into a line.
pub(super) struct Source<'a> {
    text: &'a str,
    file: &'a Path,
    /// Byte offset at which each line starts; the first is 0.
    line_starts: Vec<usize>,
    /// What may be read besides the text.
    mode: Mode,
    /// The errors found so far ([`Source::keep`]), in order.
    errors: RefCell<Vec<ConfigError>>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str, file: &'a Path, mode: Mode) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            text,
            file,
            line_starts,
            mode,
            errors: RefCell::new(Vec::new()),
        }
    }

    /// Whether the PEM files the config names are read and checked (not on a hot reload).
    fn read_pem_files(&self) -> bool {
        self.mode != Mode::Reload
    }

    /// Whether environment variables and key files are read, and host names resolved (not
    /// offline).
    fn online(&self) -> bool {
        self.mode != Mode::Offline
    }

    /// The value of a check that succeeded; a failed one's error is recorded for the report
    /// and `None` returned, so that validation goes on with the next item.
    fn keep<T>(&self, result: Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.borrow_mut().push(e);
                None
            }
        }
    }

    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    fn error(&self, span: Option<Range<usize>>, path: &str, reason: String) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s.start)),
            path: path.to_string(),
            reason,
        }
    }

    /// An error at the line where `value` was written.
    fn at<T>(&self, value: &Spanned<T>, path: &str, reason: impl Into<String>) -> ConfigError {
        self.error(Some(value.span()), path, reason.into())
    }

    /// A TOML syntax or type error (unknown field, missing field, wrong type): the toml
    /// crate's span gives the line; for a type error (`with_path`) the config path is rebuilt
    /// from the table headers above it.
    fn toml_error(&self, e: &toml::de::Error, with_path: bool) -> ConfigError {
        let reason = one_line(e.message());
        let path = match e.span() {
            Some(span) if with_path => self.path_at(span.start),
            _ => String::new(),
        };
        self.error(e.span(), &path, reason)
    }

    /// Best-effort config path of the byte `offset`: the table of the last header before it
    /// (arrays of tables indexed by how often their header appeared) plus the key written on
    /// that line, if any. Only a hint for a human, so quoted keys and the like are not handled.
    fn path_at(&self, offset: usize) -> String {
        let line = self.line_of(offset);
        let mut headers = HeaderScan::default();
        self.text.lines().take(line).for_each(|l| headers.feed(l));
        let current = self.text.lines().nth(line - 1).unwrap_or("");
        let table = headers.table;
        match line_key(current) {
            Some(key) if table.is_empty() => key.to_string(),
            Some(key) => format!("{table}.{key}"),
            None => table,
        }
    }
}

/// The toml crate's message without its layout: its lines (e.g. "invalid table header" and
/// "expected `.`, `]`") joined into one, so the reason fits the `file:line: path: reason` line.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if parts.is_empty() {
        "invalid TOML".to_string()
    } else {
        parts.join("; ")
    }
}

/// Follows the table headers of a TOML text line by line, skipping multi-line strings, to know
/// which table (with array indices) a line belongs to.
#[derive(Default)]
struct HeaderScan {
    /// The current table's config path, e.g. `models[1].routes[0]`; `""` at the top level.
    table: String,
    /// How many times each array of tables (by its resolved path) has been opened so far.
    counts: HashMap<String, usize>,
    /// The delimiter of the multi-line string we are inside, if any.
    in_string: Option<&'static str>,
}

impl HeaderScan {
    fn feed(&mut self, line: &str) {
        if let Some(delim) = self.in_string {
            if line.contains(delim) {
                self.in_string = None;
            }
            return;
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("[[") {
            if let Some(end) = rest.find("]]") {
                self.open(&rest[..end], true);
            }
        } else if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                self.open(&rest[..end], false);
            }
        } else {
            for delim in ["\"\"\"", "'''"] {
                if line.matches(delim).count() % 2 == 1 {
                    self.in_string = Some(delim);
                }
            }
        }
    }

    /// Opens table `name` (dotted), resolving parents that are arrays to their latest element.
    fn open(&mut self, name: &str, array: bool) {
        let mut path = String::new();
        let segments: Vec<&str> = name.split('.').map(str::trim).collect();
        for (i, segment) in segments.iter().enumerate() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(segment);
            let last = i + 1 == segments.len();
            if last && array {
                *self.counts.entry(path.clone()).or_insert(0) += 1;
            }
            if let Some(&n) = self.counts.get(&path) {
                path = format!("{path}[{}]", n.saturating_sub(1));
            }
        }
        self.table = path;
    }
}

/// The bare key a line assigns (`rpm = 5` → `rpm`), if it is such a line.
fn line_key(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    bare.then_some(key)
}

/// Every section and item checked on its own (errors recorded in `src`), then the runtime
/// [`Config`] built when none failed.
fn build(src: &Source, raw: &raw::Config) -> std::result::Result<Config, Vec<ConfigError>> {
    let server = src.keep(server(src, &raw.server));
    let state = src.keep(state(src, &raw.state));
    let stored_responses = src.keep(stored_responses(src, &raw.state));
    let responses_redis = src.keep(responses_redis(src, &raw.state));
    let log = src.keep(log(src, &raw.log));
    let runtime_keys = src.keep(runtime_keys(src, &raw.server, &raw.state));
    let routing = src.keep(routing(src, &raw.routing));
    let limits = src.keep(limits_config(src, &raw.limits));
    let Providers {
        list: providers,
        index: provider_index,
        key_files,
    } = providers(src, &raw.providers);
    let model_index = model_index(src, &raw.models);
    let alias_patterns = alias_patterns(src, &raw.models);
    let catalogues = prices::catalogues(src, &raw.pricing);
    let kinds: HashMap<&str, &str> = raw
        .providers
        .iter()
        .map(|p| (p.name.get_ref().as_str(), p.kind.get_ref().as_str()))
        .collect();
    let models: Vec<Option<Arc<_>>> = raw
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let built = model(
                src,
                i,
                m,
                &provider_index,
                &kinds,
                &model_index,
                &catalogues,
            );
            src.keep(built.map(Arc::new))
        })
        .collect();
    // Fallbacks are model indices: their kinds are compared only when every model was built.
    let models: Option<Vec<_>> = models.into_iter().collect();
    if let Some(models) = &models {
        src.keep(fallback_kinds(src, &raw.models, models));
    }
    let (teams, team_index) = teams(src, &raw.teams);
    let (keys, key_index) = keys(src, &raw.keys, &team_index);
    let jwt = jwt_issuers(src, &raw.auth.jwt, &team_index, &raw.keys);
    let content_filters = content_filters(src, &raw.content_filters);
    let telemetry = match raw.telemetry.as_ref() {
        None => Some(None),
        Some(t) => src.keep(telemetry(src, t)).map(Some),
    };
    let errors = src.errors.take();
    let (
        false,
        Some(server),
        Some(state),
        Some(stored_responses),
        Some(responses_redis),
        Some(log),
        Some(runtime_keys),
        Some(routing),
        Some(limits),
        Some(models),
        Some(telemetry),
    ) = (
        !errors.is_empty(),
        server,
        state,
        stored_responses,
        responses_redis,
        log,
        runtime_keys,
        routing,
        limits,
        models,
        telemetry,
    )
    else {
        return Err(errors);
    };
    Ok(Config {
        source: src.file.to_path_buf(),
        hash: hex::encode(Sha256::digest(src.text.as_bytes())),
        server,
        state,
        stored_responses,
        responses_redis,
        log,
        routing,
        limits,
        providers,
        models,
        teams,
        keys,
        jwt,
        content_filters,
        telemetry,
        model_index: model_index
            .into_iter()
            .map(|(name, entry)| (name, entry.model))
            .collect(),
        alias_patterns,
        key_index,
        key_files,
        price_catalogue: catalogues.file,
        runtime_keys,
    })
}

#[cfg(test)]
pub(super) mod testing {
    //! Helpers shared by the sections' tests, and what they all use.
    pub(super) use super::{load_file, load_str, load_str_for_reload, Result};
    pub(super) use crate::config::*;
    pub(super) use std::path::{Path, PathBuf};
    pub(super) use std::time::{Duration, SystemTime};

    pub(super) const FILE: &str = "test.toml";

    pub(super) fn load(text: &str) -> Result<Config> {
        load_str(text, Path::new(FILE))
    }

    pub(super) fn reject(text: &str) -> ConfigError {
        match load(text) {
            Ok(_) => panic!("config was accepted:\n{text}"),
            Err(e) => e,
        }
    }

    /// Asserts `text` is rejected at the line marked `# <-`, at config `path`, with a reason
    /// containing `reason`.
    #[track_caller]
    pub(super) fn rejects(text: &str, path: &str, reason: &str) {
        let marked = text.lines().position(|l| l.contains("# <-")).map(|i| i + 1);
        assert!(marked.is_some(), "test text has no `# <-` marker");
        let e = reject(text);
        assert_eq!(e.line, marked, "line of {e}");
        assert_eq!(e.path, path, "path of {e}");
        assert!(
            e.reason.contains(reason),
            "reason of {e}: wanted {reason:?}"
        );
        assert_eq!(e.file, PathBuf::from(FILE));
    }

    /// A mock provider `p` and a team `t`, for cases about other sections.
    pub(super) const BASE: &str =
        "[[providers]]\nname = \"p\"\nkind = \"mock\"\n\n[[teams]]\nname = \"t\"\n";

    pub(super) fn with_base(rest: &str) -> String {
        format!("{BASE}{rest}")
    }

    pub(super) const HASH_A: &str =
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    pub(super) const HASH_B: &str =
        "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    pub(super) fn unix(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    // --- the happy path ----------------------------------------------------------------------

    #[test]
    fn empty_file_is_a_config_of_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:8080");
        assert_eq!(c.server.admin_listen, "127.0.0.1:9090");
        assert_eq!(c.server.max_request_bytes, 33_554_432);
        assert_eq!(c.server.threads, None);
        assert_eq!(
            c.server.head,
            HeadLimits {
                max_uri_bytes: 8192,
                max_header_line_bytes: 8192,
                max_header_bytes: 32768,
                max_headers: 100,
            }
        );
        assert_eq!(
            c.state,
            State::Memory {
                dir: PathBuf::from("data")
            }
        );
        assert_eq!(c.log.usage, None);
        assert!(c.providers.is_empty() && c.models.is_empty() && c.keys.is_empty());
        assert_eq!(
            c.hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(c.source, PathBuf::from(FILE));
    }

    #[test]
    fn full_config_round_trips() {
        let var = "SWITCHYARD_TEST_ROUNDTRIP_KEY";
        std::env::set_var(var, "sk-roundtrip");
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:18080"
admin_listen = "127.0.0.1:19090"
max_request_bytes = 2048
threads = 3
max_uri_bytes = 4096
max_header_line_bytes = 2048
max_header_bytes = 16384
max_headers = 50

[state]
backend = "redis"
redis_url = "redis://cache:6380/1"

[log]
usage = "-"

[[providers]]
name = "openai"
kind = "openai"
base_url = "HTTP://127.0.0.1:8000/v1/"
api_key_env = "{var}"
connect_timeout_ms = 100
idle_timeout_ms = 200

[[providers]]
name = "azure"
kind = "azure"
base_url = "https://[::1]:8443"
api_version = "2024-10-21"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "https://localhost"
default_max_tokens = 1024
total_timeout_ms = 5000

[[providers]]
name = "gem"
kind = "gemini"
base_url = "http://127.0.0.1:80/prefix"

[[providers]]
name = "mock"
kind = "mock"

[[models]]
name = "gpt-4o"
aliases = ["gpt4o", "4o"]
fallbacks = ["sonnet", "flash"]
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10
cached_input_usd_per_mtok = 1.25
  [[models.routes]]
  provider = "openai"
  model = "gpt-4o-2024-08-06"
  weight = 3
  [[models.routes]]
  provider = "azure"
  model = "gpt4o-prod"

[[models]]
name = "claude-sonnet"
aliases = ["sonnet"]
  [[models.routes]]
  provider = "claude"
  model = "claude-sonnet-4"

[[models]]
name = "flash"
input_usd_per_mtok = 0
  [[models.routes]]
  provider = "gem"
  model = "gemini-2.0-flash"
  [[models.routes]]
  provider = "mock"
  model = "mock-small"
  weight = 2

[[teams]]
name = "search"
models = ["gpt-4o", "claude-*"]
rpm = 600
tpm = 200000
max_concurrent = 50
tokens_per_day = 5000000
usd_per_month = 300

[[teams]]
name = "all"

[[keys]]
id = "search-prod"
team = "search"
sha256 = "{upper}"
rpm = 60
tpm = 20000
expires_at = "2027-01-01T00:00:00Z"

[[keys]]
id = "all.1_x-y"
team = "all"
sha256 = "{HASH_B}"
usd_per_month = 0.5
expires_at = 2027-01-01T02:00:00+02:00
disabled = true

[[content_filters]]
name = "no-secrets"
deny = ['(?i)BEGIN (RSA|OPENSSH) PRIVATE KEY', 'AKIA[0-9A-Z]{{16}}']

[[content_filters]]
name = "search-only"
deny = ['forbidden']
teams = ["search", "x-*"]
"#,
            upper = HASH_A.to_ascii_uppercase()
        );
        let c = load(&text).unwrap();

        assert_eq!(
            c.server,
            Server {
                listen: "127.0.0.1:18080".into(),
                admin_listen: "127.0.0.1:19090".into(),
                max_request_bytes: 2048,
                threads: Some(3),
                tls: None,
                head: HeadLimits {
                    max_uri_bytes: 4096,
                    max_header_line_bytes: 2048,
                    max_header_bytes: 16384,
                    max_headers: 50,
                },
            }
        );
        assert_eq!(
            c.state,
            State::Redis(RedisState {
                nodes: crate::config::RedisNodes::Single("redis://cache:6380/1".into()),
                timeout: Duration::from_millis(100),
                password: None,
                ca_file: None,
            })
        );
        assert_eq!(c.log.usage, Some(UsageSink::Stdout));
        assert_eq!(c.hash, hex::encode(Sha256::digest(text.as_bytes())));

        // Providers.
        let names: Vec<&str> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "azure", "claude", "gem", "mock"]);
        let openai = c.provider(0);
        assert_eq!(openai.kind, ProviderKind::OpenAi);
        assert_eq!(
            openai.upstream,
            Some(Upstream {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8000,
                base_path: "/v1".into(),
                host_header: "127.0.0.1:8000".into(),
                addrs: vec!["127.0.0.1:8000".parse().unwrap()],
            })
        );
        assert_eq!(
            openai.api_key.as_ref().map(Secret::expose),
            Some("sk-roundtrip")
        );
        assert_eq!(openai.api_key_env.as_deref(), Some(var));
        let d = Timeouts::default();
        assert_eq!(
            openai.timeouts,
            Timeouts {
                connect: Duration::from_millis(100),
                idle: Duration::from_millis(200),
                ..d
            }
        );
        let azure = c.provider(1);
        assert_eq!(azure.kind, ProviderKind::Azure);
        assert_eq!(azure.api_version.as_deref(), Some("2024-10-21"));
        assert!(azure.api_key.is_none() && azure.api_key_env.is_none());
        let up = azure.upstream.as_ref().unwrap();
        assert_eq!((up.tls, up.host.as_str(), up.port), (true, "::1", 8443));
        assert_eq!(up.host_header, "[::1]:8443");
        assert_eq!(up.base_path, "");
        assert_eq!(up.addrs, vec!["[::1]:8443".parse::<SocketAddr>().unwrap()]);
        let claude = c.provider(2);
        assert_eq!(claude.kind, ProviderKind::Anthropic);
        assert_eq!(claude.default_max_tokens, Some(1024));
        assert_eq!(claude.timeouts.total, Duration::from_millis(5000));
        let up = claude.upstream.as_ref().unwrap();
        assert_eq!((up.host.as_str(), up.port), ("localhost", 443));
        assert_eq!(up.host_header, "localhost");
        assert!(!up.addrs.is_empty() && up.addrs.iter().all(|a| a.port() == 443));
        let gem = c.provider(3);
        assert_eq!(gem.kind, ProviderKind::Gemini);
        let up = gem.upstream.as_ref().unwrap();
        assert_eq!(
            (up.host_header.as_str(), up.base_path.as_str()),
            ("127.0.0.1", "/prefix")
        );
        let mock = c.provider(4);
        assert_eq!(mock.kind, ProviderKind::Mock);
        assert!(mock.upstream.is_none());
        assert_eq!(mock.timeouts, d);

        // Models.
        let gpt = c.model("4o").unwrap();
        assert_eq!(gpt.name, "gpt-4o");
        assert_eq!(gpt.aliases, ["gpt4o", "4o"]);
        assert_eq!(gpt.fallbacks, [1, 2]);
        let p = gpt.prices.as_deref().unwrap();
        assert_eq!((p.base.input, p.base.output), (2.5, 10.0));
        assert_eq!(p.base.cached_input, 1.25);
        assert_eq!(
            p.base.cache_write, 2.5,
            "absent: OpenAI bills no cache write"
        );
        assert_eq!(
            gpt.routes,
            [
                Route {
                    provider: 0,
                    upstream_model: "gpt-4o-2024-08-06".into(),
                    weight: 3
                },
                Route {
                    provider: 1,
                    upstream_model: "gpt4o-prod".into(),
                    weight: 1
                },
            ]
        );
        assert_eq!(c.model("sonnet").unwrap().name, "claude-sonnet");
        let flash = c.model("flash").unwrap();
        assert_eq!(flash.prices.as_deref().unwrap().base.input, 0.0);
        assert_eq!(flash.routes[1].provider, 4);
        assert_eq!(flash.routes[1].weight, 2);
        let mut index: Vec<(&str, usize)> = c
            .model_index
            .iter()
            .map(|(k, &v)| (k.as_str(), v))
            .collect();
        index.sort();
        assert_eq!(
            index,
            [
                ("4o", 0),
                ("claude-sonnet", 1),
                ("flash", 2),
                ("gpt-4o", 0),
                ("gpt4o", 0),
                ("sonnet", 1)
            ]
        );
        assert!(c.model("gpt-4o-mini").is_none());

        // Teams and keys.
        let search = &c.teams[0];
        assert_eq!(search.name, "search");
        assert_eq!(
            search.models.as_ref().map(Globs::patterns),
            Some(&["gpt-4o".to_string(), "claude-*".to_string()][..])
        );
        assert_eq!(
            search.limits,
            Limits {
                rpm: Some(600),
                tpm: Some(200_000),
                max_concurrent: Some(50),
                tokens_per_day: Some(5_000_000),
                usd_per_month: Some(300.0),
            }
        );
        assert!(search.allows("claude-sonnet") && !search.allows("flash"));
        assert!(c.teams[1].models.is_none() && c.teams[1].limits == Limits::default());

        let k0 = &c.keys[0];
        assert_eq!(
            (k0.id.as_str(), k0.team, k0.disabled),
            ("search-prod", 0, false)
        );
        assert_eq!(hex::encode(k0.sha256), HASH_A);
        assert_eq!(k0.limits.rpm, Some(60));
        assert_eq!(k0.limits.tpm, Some(20_000));
        assert_eq!(k0.limits.max_concurrent, None);
        assert_eq!(k0.expires_at, Some(unix(1_798_761_600)));
        let k1 = &c.keys[1];
        assert_eq!(
            (k1.id.as_str(), k1.team, k1.disabled),
            ("all.1_x-y", 1, true)
        );
        assert_eq!(k1.limits.usd_per_month, Some(0.5));
        assert_eq!(k1.expires_at, Some(unix(1_798_761_600)));
        assert_eq!(c.key_index.len(), 2);
        assert_eq!(c.key_index[&k0.sha256], 0);
        assert_eq!(c.key_index[&k1.sha256], 1);

        // Content filters.
        let f0 = &c.content_filters[0];
        assert_eq!(f0.name, "no-secrets");
        assert_eq!(f0.teams.patterns(), ["*"]);
        assert_eq!(f0.deny.len(), 2);
        assert!(f0.deny[0].is_match("-----begin rsa private key-----"));
        assert!(f0.deny[1].is_match("AKIAABCDEFGHIJKLMNOP"));
        assert_eq!(c.content_filters[1].teams.patterns(), ["search", "x-*"]);

        // The secret stays out of the config's Debug output.
        assert!(!format!("{c:?}").contains("sk-roundtrip"));
    }

    #[test]
    fn shipped_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchyard.toml");
        let c = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.source, path);
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.server.admin_listen, "127.0.0.1:9090");
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.provider(0).kind, ProviderKind::Mock);
        assert_eq!(c.model("demo").unwrap().name, "gpt-4o-mini");
        assert_eq!(
            c.model("claude-sonnet").unwrap().routes[0].upstream_model,
            "mock-large"
        );
        let demo_hash: [u8; 32] = Sha256::digest(b"sk-switchyard-demo").into();
        let key = &c.keys[c.key_index[&demo_hash]];
        assert_eq!(
            (key.id.as_str(), c.teams[key.team].name.as_str()),
            ("demo", "demo")
        );
        assert_eq!(
            c.teams[0].limits,
            Limits {
                rpm: Some(600),
                tpm: Some(200_000),
                max_concurrent: Some(20),
                tokens_per_day: Some(5_000_000),
                usd_per_month: Some(50.0),
            }
        );
    }

    fn full_example() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/full.toml");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn full_example_has_no_unknown_field() {
        let text = full_example();
        let raw: raw::Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(raw.providers.len(), 6);
        assert!(raw.content_filters.iter().all(|f| !f.deny.is_empty()));
        assert_eq!(raw.auth.jwt.len(), 1, "the example shows a JWT issuer");
    }

    /// The full example is semantically valid too, once its vendors' hosts and key variables
    /// are swapped for ones this test controls (no network, no shared env var names).
    #[test]
    fn full_example_validates_offline() {
        let mut text = full_example();
        for host in [
            "api.openai.com",
            "my-resource.openai.azure.com",
            "api.anthropic.com",
            "generativelanguage.googleapis.com",
        ] {
            text = text.replace(host, "127.0.0.1");
        }
        for var in [
            "OPENAI_API_KEY",
            "AZURE_OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
        ] {
            let ours = format!("SWITCHYARD_TEST_FULL_{var}");
            std::env::set_var(&ours, "sk-test");
            text = text.replace(&format!("\"{var}\""), &format!("\"{ours}\""));
        }
        let c = load(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.models.len(), 6);
        assert_eq!(c.models[5].kind, ModelKind::Embedding);
        assert_eq!(c.stored_responses, StoredResponses::default());
        assert_eq!(c.model("gpt4o").unwrap().fallbacks, [1]);
        assert_eq!(c.content_filters.len(), 2);
    }

    // --- TOML-level errors -------------------------------------------------------------------

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = with_base(
            "[[models]]\nname = \"m\"\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n\
             [[models]]\nname = \"n\"\n  [[models.routes]]\n  provider = \"p\"\n  wieght = 2 # <-\n",
        );
        rejects(
            &text,
            "models[1].routes[0].wieght",
            "unknown field `wieght`",
        );
        rejects(
            "[server]\nlisten = \"0.0.0.0:1\"\nfoo = 1 # <-\n",
            "server.foo",
            "`foo`",
        );
        rejects("bogus = 1 # <-\n", "bogus", "unknown field `bogus`");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = reject("[server]\nlisten = \"0.0.0.0:8080\"\nthreads = = 4\n");
        assert_eq!(e.line, Some(3));
        assert!(!e.reason.contains('\n') && !e.reason.contains('|'), "{e}");
        rejects("[server]\n[state # <-\n", "", "invalid table header");
    }

    #[test]
    fn type_and_missing_field_errors_name_line() {
        rejects("[log]\nusage = 5 # <-\n", "log.usage", "invalid type");
        rejects(
            "[[providers]]\nname = \"a\"\nkind = \"mock\"\n[[providers]] # <-\nname = \"b\"\n",
            "providers[1]",
            "missing field `kind`",
        );
    }

    #[test]
    fn header_scan_skips_multiline_strings() {
        let text =
            "[[content_filters]]\nname = \"a\"\ndeny = ['''\n[[models]]\n''']\nbad = 1 # <-\n";
        rejects(text, "content_filters[0].bad", "unknown field `bad`");
    }

    #[test]
    fn unreadable_file_has_no_line() {
        let e = load_file(Path::new("/nonexistent/switchyard.toml")).unwrap_err();
        assert_eq!(e.line, None);
        assert_eq!(e.path, "");
        assert!(e.reason.contains("cannot read"), "{e}");
    }

    // --- names and duplicates ----------------------------------------------------------------

    #[test]
    fn duplicate_names() {
        rejects(
            "[[providers]]\nname = \"a\"\nkind = \"mock\"\n[[providers]]\nname = \"a\" # <-\nkind = \"mock\"\n",
            "providers[1].name",
            "duplicate provider \"a\" (first on line 2)",
        );
        let model = |name: &str, aliases: &str, mark: &str| {
            format!(
                "[[models]]\nname = \"{name}\"\naliases = [{aliases}] {mark}\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n"
            )
        };
        let two = |a: String, b: String| with_base(&format!("{a}{b}"));
        // Same model name twice: the second name's line. Its marker is on the aliases line,
        // so put the marker by hand on the name.
        let text = two(model("m", "", ""), model("m", "", "")).replacen(
            "name = \"m\"\naliases = [] \n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n[[models]]\nname = \"m\"",
            "name = \"m\"\naliases = [] \n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n[[models]]\nname = \"m\" # <-",
            1,
        );
        rejects(&text, "models[1].name", "duplicate model name \"m\"");
        rejects(
            &two(model("m", "\"x\"", ""), model("n", "\"y\", \"x\"", "# <-")),
            "models[1].aliases[1]",
            "alias \"x\" is already an alias of model \"m\"",
        );
        rejects(
            &two(model("m", "", ""), model("n", "\"m\"", "# <-")),
            "models[1].aliases[0]",
            "alias \"m\" is already the name of a model",
        );
        rejects(
            &two(model("m", "\"m\"", "# <-"), String::new()),
            "models[0].aliases[0]",
            "repeats the model's own name",
        );
        let text = two(model("m", "\"n\"", ""), model("n", "", ""));
        let text = text.replacen("name = \"n\"\naliases", "name = \"n\" # <-\naliases", 1);
        rejects(
            &text,
            "models[1].name",
            "model name \"n\" is already an alias of model \"m\"",
        );
        rejects(
            "[[teams]]\nname = \"t\"\n[[teams]]\nname = \"t\" # <-\n",
            "teams[1].name",
            "duplicate team \"t\"",
        );
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"k\"\nteam = \"t\"\nsha256 = \"{HASH_A}\"\n\
                 [[keys]]\nid = \"k\" # <-\nteam = \"t\"\nsha256 = \"{HASH_B}\"\n"
            )),
            "keys[1].id",
            "duplicate key id \"k\"",
        );
        rejects(
            &with_base(
                "[[content_filters]]\nname = \"f\"\ndeny = ['a']\n\
                 [[content_filters]]\nname = \"f\" # <-\ndeny = ['b']\n",
            ),
            "content_filters[1].name",
            "duplicate content filter",
        );
    }

    #[test]
    fn bad_names() {
        let provider =
            |name: &str| format!("[[providers]]\nname = \"{name}\" # <-\nkind = \"mock\"\n");
        rejects(&provider(""), "providers[0].name", "must not be empty");
        rejects(&provider("a b"), "providers[0].name", "whitespace");
        rejects(
            &provider("a\\tb"),
            "providers[0].name",
            "whitespace or control",
        );
        rejects(&provider("a\\u0007"), "providers[0].name", "control");
        rejects(
            &provider(&"x".repeat(129)),
            "providers[0].name",
            "at most 128",
        );
        assert!(load(&provider(&"x".repeat(128))).is_ok());
        rejects(
            "[[teams]]\nname = \" \" # <-\n",
            "teams[0].name",
            "whitespace",
        );
    }

    #[test]
    fn error_display_names_file_line_and_path() {
        let e = reject("[server]\nthreads = 0\n");
        assert_eq!(
            e.to_string(),
            "test.toml:2: server.threads: must be a positive integer, not 0"
        );
    }

    // --- every error, offline ----------------------------------------------------------------

    /// One mistake in each of nine places, each in a different section or item: every one is
    /// reported, in the file's order, and the first is what `load_str` returns.
    #[test]
    fn every_independent_error_is_reported() {
        let text = r#"
[server]
threads = 0

[routing]
max_attempts = 0

[[providers]]
name = "a"
kind = "sagemaker"

[[providers]]
name = "b"
kind = "openai"
base_url = "ftp://x"

[[models]]
name = "m"
  [[models.routes]]
  provider = "a"
  model = ""

[[models]]
name = "n"
fallbacks = ["nope"]
  [[models.routes]]
  provider = "b"
  model = "x"

[[teams]]
name = "t"
models = ["[bad"]

[[keys]]
id = "k"
team = "t"
sha256 = "xyz"

[[content_filters]]
name = "f"
deny = ["(unclosed"]

[telemetry]
endpoint = "https://127.0.0.1:4318"
"#;
        let errors = check_str(text, Path::new(FILE), Mode::Start).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "server.threads",
                "routing.max_attempts",
                "providers[0].kind",
                "providers[1].base_url",
                "models[0].routes[0].model",
                "models[1].fallbacks[0]",
                "teams[0].models[0]",
                "keys[0].sha256",
                "content_filters[0].deny[0]",
                "telemetry.endpoint",
            ],
            "{errors:#?}"
        );
        // Routes naming a provider that failed for another reason are not reported again.
        assert!(errors
            .iter()
            .all(|e| !e.reason.contains("no provider named")));
        assert!(errors.iter().all(|e| e.line.is_some()));
        assert_eq!(load(text).unwrap_err(), errors[0]);
    }

    /// A syntax error stops there: the file cannot be read further. Unknown fields and
    /// wrong types are passed over, line by line, up to a missing field.
    #[test]
    fn toml_errors_are_passed_over_up_to_a_missing_field() {
        let errors = check_str(
            "[server\n[routing]\nmax_attempts = 0\n",
            Path::new(FILE),
            Mode::Start,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");

        let text = "[server]\nbogus = 1\nthreads = \"two\"\n[routing]\nmax_attempts = 0\n\
                    [[providers]]\nname = \"p\"\nkind = \"mock\"\ncolour = \"ünïcode\"\n\
                    [[models]]\nname = \"m\"\n  [[models.routes]]\n  provider = \"nope\"\n  model = \"x\"\n";
        let errors = check_str(text, Path::new(FILE), Mode::Start).unwrap_err();
        let found: Vec<(Option<usize>, &str)> =
            errors.iter().map(|e| (e.line, e.path.as_str())).collect();
        assert_eq!(
            found,
            [
                (Some(2), "server.bogus"),
                (Some(3), "server.threads"),
                (Some(9), "providers[0].colour"),
                (Some(5), "routing.max_attempts"),
                (Some(13), "models[0].routes[0].provider"),
            ],
            "{errors:#?}"
        );
        assert_eq!(load(text).unwrap_err(), errors[0]);

        // A missing field ends the reading (its table cannot be built).
        let text =
            "[server]\nbogus = 1\n[[providers]]\nkind = \"mock\"\n[routing]\nmax_attempts = 0\n";
        let errors = check_str(text, Path::new(FILE), Mode::Start).unwrap_err();
        let found: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
        assert_eq!(found, [Some(2), Some(3)], "{errors:#?}");
        assert!(
            errors[1].reason.contains("missing field `name`"),
            "{errors:#?}"
        );
        // So does a value over several lines.
        let text = "[server]\nbogus = [\n 1,\n]\n[routing]\nmax_attempts = 0\n";
        let errors = check_str(text, Path::new(FILE), Mode::Start).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
    }

    /// Offline, variables are named but not read and host names not resolved; what the
    /// config says on its own is still checked.
    #[test]
    fn offline_reads_no_environment_and_resolves_no_host() {
        let unset = "SWITCHYARD_TEST_OFFLINE_NEVER_SET";
        let text = format!(
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://cache.invalid\"\n\
             redis_password_env = \"{unset}_R\"\n\
             [[providers]]\nname = \"p\"\nkind = \"openai\"\n\
             base_url = \"https://api.example.invalid/v1\"\napi_key_env = \"{unset}\"\n\
             [[providers]]\nname = \"q\"\nkind = \"anthropic\"\nbase_url = \"https://127.0.0.1\"\n\
             api_key_file = \"/no/such/dir/key\"\n\
             [telemetry]\nendpoint = \"http://collector.invalid:4318\"\n"
        );
        let online = check_str(&text, Path::new(FILE), Mode::Start).unwrap_err();
        let reasons: Vec<String> = online.iter().map(|e| e.reason.clone()).collect();
        assert_eq!(online.len(), 4, "{reasons:#?}");
        assert!(reasons[0].contains(&format!("{unset}_R is not set")));
        assert!(reasons[1].contains(&format!("{unset} is not set")));
        assert!(reasons[2].contains("cannot read /no/such/dir/key"));
        assert!(reasons[3].contains("cannot resolve host collector.invalid"));

        let c = check_str(&text, Path::new(FILE), Mode::Offline).unwrap();
        assert!(c.providers.iter().all(|p| p.api_key.is_none()));
        assert!(c.providers[0].upstream.as_ref().unwrap().addrs.is_empty());
        assert_eq!(c.providers[1].upstream.as_ref().unwrap().addrs.len(), 1);
        assert_eq!(c.key_files, [PathBuf::from("/no/such/dir/key")]);

        // Names and the rest are still checked offline.
        let bad = text.replace(&format!("\"{unset}\""), "\"\"") + "[routing]\nmax_attempts = 0\n";
        let errors = check_str(&bad, Path::new(FILE), Mode::Offline).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["routing.max_attempts", "providers[0].api_key_env"]);
    }

    #[test]
    fn alias_patterns_match_what_no_name_or_alias_has() {
        let c = crate::config::load_str(
            &std::fs::read_to_string("config/switchyard.toml").unwrap(),
            std::path::Path::new("config/switchyard.toml"),
        )
        .unwrap();
        // Claude Code's default model names reach the example config's `claude-sonnet`.
        for asked in [
            "claude-opus-5-5",
            "claude-haiku-4-5-20251001",
            "claude-sonnet",
        ] {
            assert_eq!(c.model(asked).unwrap().name, "claude-sonnet", "{asked}");
        }
        assert_eq!(c.model("demo").unwrap().name, "gpt-4o-mini");
        assert!(c.model("gpt-5").is_none());
        // An exact name wins over a pattern, whatever the order.
        let c = crate::config::load_str(
            "[[providers]]\nname = \"m\"\nkind = \"mock\"\n\
             [[models]]\nname = \"any\"\naliases = [\"*\"]\n[[models.routes]]\nprovider = \"m\"\nmodel = \"x\"\n\
             [[models]]\nname = \"exact\"\n[[models.routes]]\nprovider = \"m\"\nmodel = \"y\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.model("exact").unwrap().name, "exact");
        assert_eq!(c.model("whatever").unwrap().name, "any");
    }
}
