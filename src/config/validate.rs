//! From the raw TOML types to the runtime [`Config`]: every check of the config happens here,
//! once, at load or reload, so the request path never meets a malformed value.
//!
//! The first problem found is returned as a [`ConfigError`] naming the 1-based line and the
//! config path (`models[1].routes[0].provider`) of the offending field. TOML syntax errors and
//! unknown fields get their line from the `toml` crate's error span; semantic errors get it from
//! the [`Spanned`] raw fields. Secrets (environment values) never appear in an error.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::raw;
use super::{
    Config, ConfigError, ContentFilter, Globs, HeadLimits, Key, Limits, LimitsConfig, Log, Model,
    ModelKind, Provider, ProviderKind, RedisState, Route, Routing, Secret, Server, State,
    StoredResponses, Strategy, Team, TelemetryConfig, Timeouts, TlsConfig, Upstream, UsageSink,
};

type Result<T> = std::result::Result<T, ConfigError>;

/// Longest provider, model, alias, team or key name: they become metric labels and log fields.
const MAX_NAME_LEN: usize = 128;
/// Smallest `server.max_request_bytes`: below this not even a short chat request fits.
const MIN_REQUEST_BYTES: u64 = 1024;

/// Reads and validates the config file at `path`. An unreadable file is an error without a line.
pub fn load_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        path: String::new(),
        reason: format!("cannot read the config file: {e}"),
    })?;
    load_str(&text, path)
}

/// Validates config `text`; `path` is only recorded (in errors and [`Config::source`]).
pub fn load_str(text: &str, path: &Path) -> Result<Config> {
    validate_source(Source::new(text, path))
}

/// [`load_str`] for a hot reload: the certificate and CA files named by `[server] tls_*` and
/// `[state] redis_ca_file` are not read. Those settings need a restart (the running ones are
/// kept), and the pair's contents are `tls::Rotation`'s business: a bad certificate on disk
/// must not block a config edit such as disabling a leaked key.
pub fn load_str_for_reload(text: &str, path: &Path) -> Result<Config> {
    let mut src = Source::new(text, path);
    src.read_pem_files = false;
    validate_source(src)
}

fn validate_source(src: Source) -> Result<Config> {
    let text = src.text;
    // Syntax first, on its own: a syntax error has a line but no meaningful config path.
    toml::from_str::<toml::Table>(text).map_err(|e| src.toml_error(&e, false))?;
    let raw: raw::Config = toml::from_str(text).map_err(|e| src.toml_error(&e, true))?;
    build(&src, &raw)
}

/// The text being validated, with what is needed to turn a byte offset into a line.
struct Source<'a> {
    text: &'a str,
    file: &'a Path,
    /// Byte offset at which each line starts; the first is 0.
    line_starts: Vec<usize>,
    /// Whether the PEM files the config names are read and checked (not on a hot reload).
    read_pem_files: bool,
}

impl<'a> Source<'a> {
    fn new(text: &'a str, file: &'a Path) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            text,
            file,
            line_starts,
            read_pem_files: true,
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

fn build(src: &Source, raw: &raw::Config) -> Result<Config> {
    let server = server(src, &raw.server)?;
    let state = state(src, &raw.state)?;
    let stored_responses = stored_responses(src, &raw.state)?;
    let log = log(src, &raw.log)?;
    let routing = routing(src, &raw.routing)?;
    let limits = limits_config(src, &raw.limits)?;
    let (providers, provider_index) = providers(src, &raw.providers)?;
    let model_index = model_index(src, &raw.models)?;
    let models = raw
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| model(src, i, m, &provider_index, &model_index).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    fallback_kinds(src, &raw.models, &models)?;
    let (teams, team_index) = teams(src, &raw.teams)?;
    let (keys, key_index) = keys(src, &raw.keys, &team_index)?;
    let content_filters = content_filters(src, &raw.content_filters)?;
    let telemetry = raw
        .telemetry
        .as_ref()
        .map(|t| telemetry(src, t))
        .transpose()?;
    Ok(Config {
        source: src.file.to_path_buf(),
        hash: hex::encode(Sha256::digest(src.text.as_bytes())),
        server,
        state,
        stored_responses,
        log,
        routing,
        limits,
        providers,
        models,
        teams,
        keys,
        content_filters,
        telemetry,
        model_index: model_index
            .into_iter()
            .map(|(name, entry)| (name, entry.model))
            .collect(),
        key_index,
    })
}

/// `[routing]`: every field a positive integer; absent ones keep [`Routing::default`].
/// `[limits]`: `default_max_tokens` a positive integer (default 1024).
fn limits_config(src: &Source, raw: &raw::LimitsSection) -> Result<LimitsConfig> {
    let default_max_tokens = match &raw.default_max_tokens {
        None => LimitsConfig::default().default_max_tokens,
        Some(v) => positive(src, v, "limits.default_max_tokens", u64::from(u32::MAX))?,
    };
    Ok(LimitsConfig { default_max_tokens })
}

fn routing(src: &Source, r: &raw::Routing) -> Result<Routing> {
    let d = Routing::default();
    let ms = |v: &Option<Spanned<i64>>, name: &str, default: Duration| -> Result<Duration> {
        v.as_ref().map_or(Ok(default), |v| {
            positive(src, v, &format!("routing.{name}"), 86_400_000).map(Duration::from_millis)
        })
    };
    let count = |v: &Option<Spanned<i64>>, name: &str, default: u32| -> Result<u32> {
        v.as_ref().map_or(Ok(default), |v| {
            positive(src, v, &format!("routing.{name}"), 16).map(|n| n as u32)
        })
    };
    let routing = Routing {
        max_attempts: count(&r.max_attempts, "max_attempts", d.max_attempts)?,
        backoff_base: ms(&r.backoff_base_ms, "backoff_base_ms", d.backoff_base)?,
        backoff_max: ms(&r.backoff_max_ms, "backoff_max_ms", d.backoff_max)?,
        failures_to_cool: count(&r.failures_to_cool, "failures_to_cool", d.failures_to_cool)?,
        cooldown: ms(&r.cooldown_ms, "cooldown_ms", d.cooldown)?,
        retry_after_cap: ms(
            &r.retry_after_cap_ms,
            "retry_after_cap_ms",
            d.retry_after_cap,
        )?,
    };
    Ok(routing)
}

// ---------------------------------------------------------------------------------------------
// Small checks shared by every section.

/// A provider, model, alias or team name: it is matched exactly and becomes a metric label, so
/// it must be non-empty, short, and free of whitespace and control characters.
fn name(src: &Source, value: &Spanned<String>, path: &str) -> Result<String> {
    let s = value.get_ref();
    if s.is_empty() {
        return Err(src.at(value, path, "must not be empty"));
    }
    if s.chars().count() > MAX_NAME_LEN {
        return Err(src.at(
            value,
            path,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(src.at(
            value,
            path,
            format!("{s:?} must not contain whitespace or control characters"),
        ));
    }
    Ok(s.clone())
}

/// Records `value` as a name of kind `what`, refusing one already seen (it names the first).
fn unique(
    src: &Source,
    seen: &mut HashMap<String, usize>,
    value: &Spanned<String>,
    path: &str,
    what: &str,
) -> Result<()> {
    let line = src.line_of(value.span().start);
    match seen.insert(value.get_ref().clone(), line) {
        Some(first) => Err(src.at(
            value,
            path,
            format!(
                "duplicate {what} {:?} (first on line {first})",
                value.get_ref()
            ),
        )),
        None => Ok(()),
    }
}

/// A string that must have some non-blank content (an upstream model name, a glob).
fn non_blank(src: &Source, value: &Spanned<String>, path: &str) -> Result<String> {
    if value.get_ref().trim().is_empty() {
        return Err(src.at(value, path, "must not be empty"));
    }
    Ok(value.get_ref().clone())
}

/// A positive integer no larger than `max` (the runtime type's range).
fn positive(src: &Source, value: &Spanned<i64>, path: &str, max: u64) -> Result<u64> {
    let v = *value.get_ref();
    match u64::try_from(v) {
        Ok(n) if n >= 1 && n <= max => Ok(n),
        Ok(n) if n > max => Err(src.at(value, path, format!("must be at most {max}, not {v}"))),
        _ => Err(src.at(value, path, format!("must be a positive integer, not {v}"))),
    }
}

fn positive_u32(src: &Source, value: &Spanned<i64>, path: &str) -> Result<u32> {
    let n = positive(src, value, path, u64::from(u32::MAX))?;
    u32::try_from(n).map_err(|_| src.at(value, path, "out of range"))
}

fn positive_usize(src: &Source, value: &Spanned<i64>, path: &str) -> Result<usize> {
    let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
    let n = positive(src, value, path, max)?;
    usize::try_from(n).map_err(|_| src.at(value, path, "out of range"))
}

/// A price or a money budget: finite and not negative (zero is a free model or no spending).
fn money(src: &Source, value: &Spanned<f64>, path: &str) -> Result<f64> {
    let v = *value.get_ref();
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(src.at(
            value,
            path,
            format!("must be a finite number >= 0, not {v}"),
        ))
    }
}

/// Applies `f` to an optional field, keeping `None`.
fn opt<T, U>(value: Option<&T>, f: impl FnOnce(&T) -> Result<U>) -> Result<Option<U>> {
    value.map(f).transpose()
}

/// A list of globs (team model allow-lists, content-filter team lists): non-empty strings
/// that compile (`Globs`); an invalid one is reported at its own line.
fn globs(src: &Source, values: &[Spanned<String>], path: &str) -> Result<Globs> {
    let patterns = values
        .iter()
        .enumerate()
        .map(|(i, g)| non_blank(src, g, &format!("{path}[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Globs::new(patterns).map_err(|(i, reason)| {
        let g = &values[i];
        src.at(
            g,
            &format!("{path}[{i}]"),
            format!("invalid glob {:?}: {reason}", g.get_ref()),
        )
    })
}

fn limits(src: &Source, raw: raw::Limits, path: &str) -> Result<Limits> {
    let field = |name: &str| format!("{path}.{name}");
    Ok(Limits {
        rpm: opt(raw.rpm, |v| positive_u32(src, v, &field("rpm")))?,
        tpm: opt(raw.tpm, |v| positive_u32(src, v, &field("tpm")))?,
        max_concurrent: opt(raw.max_concurrent, |v| {
            positive_u32(src, v, &field("max_concurrent"))
        })?,
        tokens_per_day: opt(raw.tokens_per_day, |v| {
            positive(src, v, &field("tokens_per_day"), u64::MAX)
        })?,
        usd_per_month: opt(raw.usd_per_month, |v| {
            money(src, v, &field("usd_per_month"))
        })?,
    })
}

// ---------------------------------------------------------------------------------------------
// [server], [state], [log]

fn server(src: &Source, raw: &raw::Server) -> Result<Server> {
    let listen = socket_addr(src, raw.listen.as_ref(), "server.listen", "0.0.0.0:8080")?;
    let admin = socket_addr(
        src,
        raw.admin_listen.as_ref(),
        "server.admin_listen",
        "127.0.0.1:9090",
    )?;
    if listeners_clash(listen.1, admin.1) {
        let reason = format!("admin_listen {} clashes with listen {}", admin.0, listen.0);
        let span = raw
            .admin_listen
            .as_ref()
            .or(raw.listen.as_ref())
            .map(Spanned::span);
        return Err(src.error(span, "server.admin_listen", reason));
    }
    let max_request_bytes = match &raw.max_request_bytes {
        None => 32 * 1024 * 1024,
        Some(v) => {
            let n = positive_usize(src, v, "server.max_request_bytes")?;
            if (n as u64) < MIN_REQUEST_BYTES {
                return Err(src.at(
                    v,
                    "server.max_request_bytes",
                    format!("must be at least {MIN_REQUEST_BYTES}, not {n}"),
                ));
            }
            n
        }
    };
    let threads = opt(raw.threads.as_ref(), |v| {
        positive_usize(src, v, "server.threads")
    })?;
    Ok(Server {
        listen: listen.0,
        admin_listen: admin.0,
        max_request_bytes,
        threads,
        head: head_limits(src, raw)?,
        tls: tls(src, raw)?,
    })
}

/// The caps on the request head: each positive, and no larger than what pingora's own reader
/// lets through (above that pingora answers first, with a bare 400).
fn head_limits(src: &Source, raw: &raw::Server) -> Result<HeadLimits> {
    let d = HeadLimits::default();
    let total_cap = HeadLimits::PINGORA_MAX_HEADER_BYTES as u64;
    let cap = |v: Option<&Spanned<i64>>, path: &str, max: u64, default: usize| {
        opt(v, |v| positive(src, v, path, max).map(|n| n as usize)).map(|n| n.unwrap_or(default))
    };
    Ok(HeadLimits {
        max_uri_bytes: cap(
            raw.max_uri_bytes.as_ref(),
            "server.max_uri_bytes",
            total_cap,
            d.max_uri_bytes,
        )?,
        max_header_line_bytes: cap(
            raw.max_header_line_bytes.as_ref(),
            "server.max_header_line_bytes",
            total_cap,
            d.max_header_line_bytes,
        )?,
        max_header_bytes: cap(
            raw.max_header_bytes.as_ref(),
            "server.max_header_bytes",
            total_cap,
            d.max_header_bytes,
        )?,
        max_headers: cap(
            raw.max_headers.as_ref(),
            "server.max_headers",
            HeadLimits::PINGORA_MAX_HEADERS as u64,
            d.max_headers,
        )?,
    })
}

/// `tls_cert` and `tls_key` come together; the pair is read and checked now (so `check` and a
/// start refuse a missing file, a key that does not match, an expired certificate, naming the
/// PEM file). `admin_tls` needs the pair; `admin_tls_client_ca` needs `admin_tls`.
fn tls(src: &Source, raw: &raw::Server) -> Result<Option<TlsConfig>> {
    let admin = raw.admin_tls.as_ref().is_some_and(|a| *a.get_ref());
    let (cert, key) = match (&raw.tls_cert, &raw.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (Some(c), None) => return Err(src.at(c, "server.tls_key", "tls_cert requires tls_key")),
        (None, Some(k)) => return Err(src.at(k, "server.tls_cert", "tls_key requires tls_cert")),
        (None, None) => {
            return match (&raw.admin_tls, &raw.admin_tls_client_ca) {
                (Some(a), _) if admin => Err(src.at(
                    a,
                    "server.admin_tls",
                    "admin_tls requires tls_cert and tls_key",
                )),
                (_, Some(ca)) => Err(src.at(
                    ca,
                    "server.admin_tls_client_ca",
                    "admin_tls_client_ca requires admin_tls = true (and tls_cert, tls_key)",
                )),
                _ => Ok(None),
            }
        }
    };
    let cert_path = PathBuf::from(non_blank(src, cert, "server.tls_cert")?);
    let key_path = PathBuf::from(non_blank(src, key, "server.tls_key")?);
    if src.read_pem_files {
        crate::server::tls::load_pair(&cert_path, &key_path).map_err(|e| match e.file {
            crate::server::tls::PairFile::Cert => src.at(cert, "server.tls_cert", e.to_string()),
            crate::server::tls::PairFile::Key => src.at(key, "server.tls_key", e.to_string()),
        })?;
    }
    let admin_client_ca = match &raw.admin_tls_client_ca {
        None => None,
        Some(ca) if !admin => {
            return Err(src.at(
                ca,
                "server.admin_tls_client_ca",
                "admin_tls_client_ca requires admin_tls = true",
            ))
        }
        Some(ca) => {
            let path = PathBuf::from(non_blank(src, ca, "server.admin_tls_client_ca")?);
            pem_roots(src, &path).map_err(|reason| {
                src.at(
                    ca,
                    "server.admin_tls_client_ca",
                    format!("{}: {reason}", path.display()),
                )
            })?;
            Some(path)
        }
    };
    Ok(Some(TlsConfig {
        cert: cert_path,
        key: key_path,
        admin,
        admin_client_ca,
    }))
}

/// A listen address as written (kept for the runtime) and parsed (to compare the two).
fn socket_addr(
    src: &Source,
    value: Option<&Spanned<String>>,
    path: &str,
    default: &str,
) -> Result<(String, SocketAddr)> {
    let text = value.map_or(default, |v| v.get_ref().as_str());
    let parsed = text.parse::<SocketAddr>().map_err(|_| {
        src.error(
            value.map(Spanned::span),
            path,
            format!("{text:?} is not an address like 0.0.0.0:8080 or [::1]:8080"),
        )
    })?;
    Ok((text.to_string(), parsed))
}

/// Whether two listeners would fight over one port: the same address, or the same port where
/// one of them is the wildcard address (which binds every interface). Port 0 (the system picks
/// a free port for each) never clashes.
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn state(src: &Source, raw: &raw::State) -> Result<State> {
    if let Some(url) = &raw.redis_url {
        redis_url(src, url)?;
    }
    let backend = raw
        .backend
        .as_ref()
        .map_or("memory", |b| b.get_ref().as_str());
    match backend {
        "memory" => {
            let dir = match &raw.dir {
                None => PathBuf::from("data"),
                Some(d) => PathBuf::from(non_blank(src, d, "state.dir")?),
            };
            Ok(State::Memory { dir })
        }
        "redis" => match &raw.redis_url {
            Some(url) => Ok(State::Redis(redis_state(src, raw, url)?)),
            None => Err(src.error(
                raw.backend.as_ref().map(Spanned::span),
                "state.redis_url",
                "backend = \"redis\" requires redis_url".to_string(),
            )),
        },
        other => Err(src.error(
            raw.backend.as_ref().map(Spanned::span),
            "state.backend",
            format!("unknown backend {other:?} (expected \"memory\" or \"redis\")"),
        )),
    }
}

/// `[state] responses_ttl_s`, `responses_max_bytes`, `responses_max_entries`: positive
/// integers; absent ones keep [`StoredResponses::default`].
fn stored_responses(src: &Source, raw: &raw::State) -> Result<StoredResponses> {
    let d = StoredResponses::default();
    let ttl = match &raw.responses_ttl_s {
        None => d.ttl,
        Some(v) => Duration::from_secs(positive(src, v, "state.responses_ttl_s", 366 * 86_400)?),
    };
    let max_bytes = match &raw.responses_max_bytes {
        None => d.max_bytes,
        Some(v) => positive_usize(src, v, "state.responses_max_bytes")?,
    };
    let max_entries = match &raw.responses_max_entries {
        None => d.max_entries,
        Some(v) => positive_usize(src, v, "state.responses_max_entries")?,
    };
    Ok(StoredResponses {
        ttl,
        max_bytes,
        max_entries,
    })
}

/// Checks that `path` holds CA certificates (unless `src` reads no PEM files).
fn pem_roots(src: &Source, path: &Path) -> std::result::Result<(), String> {
    if src.read_pem_files {
        crate::server::tls::load_roots(path)?;
    }
    Ok(())
}

/// A `redis://` or `rediss://` URL without a password (the config holds no secret: the
/// password comes from `redis_password_env`). The URL is never quoted in a message.
fn redis_url(src: &Source, url: &Spanned<String>) -> Result<()> {
    let u = url.get_ref();
    let rest = u
        .strip_prefix("redis://")
        .or_else(|| u.strip_prefix("rediss://"));
    if rest.is_none_or(str::is_empty) {
        return Err(src.at(
            url,
            "state.redis_url",
            "must be a URL starting with redis:// or rediss:// (TLS)",
        ));
    }
    let info = redis::IntoConnectionInfo::into_connection_info(u.as_str()).map_err(|_| {
        src.at(
            url,
            "state.redis_url",
            "not a valid Redis URL (redis[s]://[user@]host[:port][/db])",
        )
    })?;
    if u.contains('#') {
        return Err(src.at(
            url,
            "state.redis_url",
            "a #fragment (#insecure) is refused: the server's certificate is always verified; \
             name a private CA in redis_ca_file",
        ));
    }
    if info.redis_settings().password().is_some() {
        return Err(src.at(
            url,
            "state.redis_url",
            "holds a password: remove it from the URL and name the environment variable that \
             holds it in redis_password_env",
        ));
    }
    Ok(())
}

/// The Redis backend's settings: the timeout, the password from its environment variable,
/// the extra CA file (read now; only with `rediss://`).
fn redis_state(src: &Source, raw: &raw::State, url: &Spanned<String>) -> Result<RedisState> {
    let timeout = match &raw.redis_timeout_ms {
        None => Duration::from_millis(100),
        Some(ms) => Duration::from_millis(positive(src, ms, "state.redis_timeout_ms", 60_000)?),
    };
    let password = opt(raw.redis_password_env.as_ref(), |var| {
        api_key(src, var, "state.redis_password_env")
    })?;
    let ca_file = match &raw.redis_ca_file {
        None => None,
        Some(ca) if !url.get_ref().starts_with("rediss://") => {
            return Err(src.at(
                ca,
                "state.redis_ca_file",
                "redis_ca_file requires a rediss:// (TLS) redis_url",
            ))
        }
        Some(ca) => {
            let path = PathBuf::from(non_blank(src, ca, "state.redis_ca_file")?);
            pem_roots(src, &path).map_err(|reason| {
                src.at(
                    ca,
                    "state.redis_ca_file",
                    format!("{}: {reason}", path.display()),
                )
            })?;
            Some(path)
        }
    };
    Ok(RedisState {
        url: url.get_ref().clone(),
        timeout,
        password,
        ca_file,
    })
}

fn log(src: &Source, raw: &raw::Log) -> Result<Log> {
    let usage = match &raw.usage {
        None => None,
        Some(u) if u.get_ref() == "-" => Some(UsageSink::Stdout),
        Some(u) => Some(UsageSink::File(PathBuf::from(non_blank(
            src,
            u,
            "log.usage",
        )?))),
    };
    Ok(Log { usage })
}

// ---------------------------------------------------------------------------------------------
// [telemetry]

fn telemetry(src: &Source, section: &Spanned<raw::Telemetry>) -> Result<TelemetryConfig> {
    let t = section.get_ref();
    let Some(endpoint) = &t.endpoint else {
        return Err(src.at(
            section,
            "telemetry.endpoint",
            "[telemetry] requires endpoint, the collector's OTLP/HTTP URL such as \"http://127.0.0.1:4318\"",
        ));
    };
    let at = |reason: String| src.at(endpoint, "telemetry.endpoint", reason);
    let url = parse_base_url(endpoint.get_ref()).map_err(at)?;
    if url.tls {
        return Err(at(format!(
            "{:?}: the OTLP exporter speaks plain http://; send spans to a local collector",
            endpoint.get_ref()
        )));
    }
    let addr = resolve(&url.host, url.port).map_err(at)?[0];
    let path = if url.base_path.ends_with("/v1/traces") {
        url.base_path
    } else {
        format!("{}/v1/traces", url.base_path)
    };
    Ok(TelemetryConfig {
        endpoint: endpoint.get_ref().clone(),
        addr,
        host_header: url.host_header,
        path,
        sample_ratio: sample_ratio(src, t.sample_ratio.as_ref())?,
        service_name: match &t.service_name {
            Some(n) => non_blank(src, n, "telemetry.service_name")?,
            None => "switchyard".to_string(),
        },
        max_queue_size: match &t.max_queue_size {
            Some(n) => positive(src, n, "telemetry.max_queue_size", 1_000_000)? as usize,
            None => 2048,
        },
    })
}

fn sample_ratio(src: &Source, v: Option<&Spanned<toml::Value>>) -> Result<f64> {
    let Some(v) = v else { return Ok(1.0) };
    let ratio = match v.get_ref() {
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(f) => *f,
        _ => f64::NAN,
    };
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(src.at(
            v,
            "telemetry.sample_ratio",
            "must be a number from 0 to 1 (the share of new traces sampled)",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// [[providers]]

type Providers = (Vec<Arc<Provider>>, HashMap<String, usize>);

fn providers(src: &Source, raw: &[raw::Provider]) -> Result<Providers> {
    let mut seen = HashMap::new();
    let mut list = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let path = format!("providers[{i}]");
        name(src, &p.name, &format!("{path}.name"))?;
        unique(src, &mut seen, &p.name, &format!("{path}.name"), "provider")?;
        list.push(Arc::new(provider(src, &path, p)?));
    }
    let index = list
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i))
        .collect();
    Ok((list, index))
}

fn provider(src: &Source, path: &str, p: &raw::Provider) -> Result<Provider> {
    let field = |name: &str| format!("{path}.{name}");
    let name = name(src, &p.name, &field("name"))?;
    let kind = provider_kind(p.kind.get_ref()).ok_or_else(|| {
        src.at(
            &p.kind,
            &field("kind"),
            format!(
                "unknown provider kind {:?} (expected openai, azure, anthropic, gemini or mock)",
                p.kind.get_ref()
            ),
        )
    })?;
    let kind_name = p.kind.get_ref();
    check_kind_fields(src, path, p, kind)?;
    let api_version = opt(p.api_version.as_ref(), |v| {
        non_blank(src, v, &field("api_version"))
    })?;
    let default_max_tokens = opt(p.default_max_tokens.as_ref(), |v| {
        positive(src, v, &field("default_max_tokens"), u64::MAX)
    })?;
    let timeouts = timeouts(src, path, p)?;
    let (api_key, api_key_env) = match &p.api_key_env {
        None => (None, None),
        Some(var) => {
            let key = api_key(src, var, &field("api_key_env"))?;
            (Some(key), Some(var.get_ref().clone()))
        }
    };
    let upstream = match (&p.base_url, kind) {
        (Some(url), _) => Some(upstream(src, url, &field("base_url"))?),
        (None, ProviderKind::Mock) => None,
        (None, _) => {
            return Err(src.at(
                &p.name,
                &field("base_url"),
                format!("kind = {kind_name:?} requires base_url"),
            ))
        }
    };
    Ok(Provider {
        name,
        kind,
        upstream,
        api_key,
        api_key_env,
        timeouts,
        api_version,
        default_max_tokens,
        chat_only: p.chat_only.as_ref().is_some_and(|v| *v.get_ref()),
    })
}

fn provider_kind(s: &str) -> Option<ProviderKind> {
    match s {
        "openai" => Some(ProviderKind::OpenAi),
        "azure" => Some(ProviderKind::Azure),
        "anthropic" => Some(ProviderKind::Anthropic),
        "gemini" => Some(ProviderKind::Gemini),
        "mock" => Some(ProviderKind::Mock),
        _ => None,
    }
}

/// Fields that only some kinds take: set on another kind they would be silently unused, which
/// is almost always a copy-paste mistake, so they are refused like unknown fields.
fn check_kind_fields(
    src: &Source,
    path: &str,
    p: &raw::Provider,
    kind: ProviderKind,
) -> Result<()> {
    let field = |name: &str| format!("{path}.{name}");
    let kind_name = p.kind.get_ref();
    if kind == ProviderKind::Mock {
        if let Some(url) = &p.base_url {
            return Err(src.at(url, &field("base_url"), "a mock provider takes no base_url"));
        }
        if let Some(env) = &p.api_key_env {
            return Err(src.at(
                env,
                &field("api_key_env"),
                "a mock provider takes no api_key_env",
            ));
        }
    }
    match (&p.api_version, kind) {
        (None, ProviderKind::Azure) => {
            return Err(src.at(
                &p.kind,
                &field("api_version"),
                "kind = \"azure\" requires api_version",
            ))
        }
        (Some(v), k) if k != ProviderKind::Azure => {
            return Err(src.at(
                v,
                &field("api_version"),
                format!("api_version applies only to kind = \"azure\", not {kind_name:?}"),
            ))
        }
        _ => {}
    }
    if let (Some(v), false) = (&p.chat_only, kind == ProviderKind::OpenAi) {
        return Err(src.at(
            v,
            &field("chat_only"),
            format!("chat_only applies only to kind = \"openai\", not {kind_name:?}"),
        ));
    }
    if let (Some(v), false) = (&p.default_max_tokens, kind == ProviderKind::Anthropic) {
        return Err(src.at(
            v,
            &field("default_max_tokens"),
            format!("default_max_tokens applies only to kind = \"anthropic\", not {kind_name:?}"),
        ));
    }
    Ok(())
}

fn timeouts(src: &Source, path: &str, p: &raw::Provider) -> Result<Timeouts> {
    let d = Timeouts::default();
    let ms = |value: &Option<Spanned<i64>>, name: &str, default: Duration| match value {
        None => Ok(default),
        Some(v) => positive(src, v, &format!("{path}.{name}"), u64::MAX).map(Duration::from_millis),
    };
    Ok(Timeouts {
        connect: ms(&p.connect_timeout_ms, "connect_timeout_ms", d.connect)?,
        first_byte: ms(
            &p.first_byte_timeout_ms,
            "first_byte_timeout_ms",
            d.first_byte,
        )?,
        idle: ms(&p.idle_timeout_ms, "idle_timeout_ms", d.idle)?,
        total: ms(&p.total_timeout_ms, "total_timeout_ms", d.total)?,
    })
}

/// Reads the API key from the named environment variable now, so a missing key fails the load
/// (and `switchyard check`) rather than the first request. The value never enters a message.
fn api_key(src: &Source, var: &Spanned<String>, path: &str) -> Result<Secret> {
    let name = var.get_ref();
    let valid_name = !name.is_empty() && !name.contains(['=', '\0']);
    if !valid_name {
        return Err(src.at(
            var,
            path,
            format!("{name:?} is not an environment variable name"),
        ));
    }
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        Ok(_) => Err(src.at(var, path, format!("environment variable {name} is empty"))),
        Err(std::env::VarError::NotPresent) => {
            Err(src.at(var, path, format!("environment variable {name} is not set")))
        }
        Err(std::env::VarError::NotUnicode(_)) => Err(src.at(
            var,
            path,
            format!("environment variable {name} is not valid UTF-8"),
        )),
    }
}

/// `base_url` split into its parts, before name resolution.
#[derive(Debug, PartialEq, Eq)]
struct BaseUrl {
    tls: bool,
    /// Without brackets for an IPv6 literal.
    host: String,
    port: u16,
    base_path: String,
    host_header: String,
}

fn upstream(src: &Source, url: &Spanned<String>, path: &str) -> Result<Upstream> {
    let parsed = parse_base_url(url.get_ref()).map_err(|reason| src.at(url, path, reason))?;
    let addrs = resolve(&parsed.host, parsed.port).map_err(|reason| src.at(url, path, reason))?;
    Ok(Upstream {
        tls: parsed.tls,
        host: parsed.host,
        port: parsed.port,
        base_path: parsed.base_path,
        host_header: parsed.host_header,
        addrs,
    })
}

/// Parses `http(s)://host[:port][/path]` with the `url` crate (WHATWG URL parsing: the host
/// lower-cased, IDNA, IPv4 forms normalised). Query, fragment and user info are refused: the
/// provider code appends its own path and query, and credentials belong in `api_key_env`.
fn parse_base_url(text: &str) -> std::result::Result<BaseUrl, String> {
    // The URL parser would strip or encode whitespace; a base URL with any is a typo.
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?} must not contain whitespace"));
    }
    let url = url::Url::parse(text).map_err(|e| url_error(text, e))?;
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(format!("{text:?} must start with http:// or https://")),
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?} must not contain user info; put the key in api_key_env"
        ));
    }
    let (host, bracketed) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_string(), d.to_string()),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), ip.to_string()),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), format!("[{ip}]")),
        None => return Err(format!("{text:?}: no host")),
    };
    let default_port = if tls { 443 } else { 80 };
    let port = url.port().unwrap_or(default_port);
    if port == 0 {
        return Err(format!("{text:?}: \"0\" is not a port (1-65535)"));
    }
    let host_header = if port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    Ok(BaseUrl {
        tls,
        host,
        port,
        base_path: url.path().trim_end_matches('/').to_string(),
        host_header,
    })
}

/// The `url` crate's refusal in the words of the config reference.
fn url_error(text: &str, e: url::ParseError) -> String {
    use url::ParseError as E;
    let authority = text
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    match e {
        E::RelativeUrlWithoutBase => format!("{text:?} must start with http:// or https://"),
        E::EmptyHost => format!("{text:?}: no host"),
        E::InvalidPort => format!("{text:?}: the port is not a port (1-65535)"),
        E::InvalidIpv6Address if authority.contains('[') && !authority.contains(']') => {
            format!("{text:?}: unclosed '[' in the host")
        }
        E::InvalidIpv6Address => format!("{text:?}: the host is not an IPv6 address"),
        e => format!("{text:?} is not a valid URL: {e}"),
    }
}

/// Resolves the upstream's addresses once, at load: pingora's `HttpPeer::new` would resolve
/// on every request, blocking, and panic on failure.
fn resolve(host: &str, port: u16) -> std::result::Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host}:{port}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve host {host}:{port}: no addresses"));
    }
    Ok(addrs)
}

// ---------------------------------------------------------------------------------------------
// [[models]]

/// Where a model name or alias was defined, to name both sides of a clash.
struct NameEntry {
    model: usize,
    line: usize,
    alias: bool,
}

/// Model names and aliases share one namespace (a client's `model` may be either): builds the
/// index and refuses any name that appears twice, whichever kinds the two are.
fn model_index(src: &Source, models: &[raw::Model]) -> Result<HashMap<String, NameEntry>> {
    let mut index: HashMap<String, NameEntry> = HashMap::new();
    for (i, m) in models.iter().enumerate() {
        let names = std::iter::once((&m.name, format!("models[{i}].name"), false)).chain(
            m.aliases
                .iter()
                .enumerate()
                .map(|(j, a)| (a, format!("models[{i}].aliases[{j}]"), true)),
        );
        for (value, path, alias) in names {
            let text = name(src, value, &path)?;
            let entry = NameEntry {
                model: i,
                line: src.line_of(value.span().start),
                alias,
            };
            if let Some(first) = index.get(&text) {
                let reason = name_clash(models, &text, first, &entry);
                return Err(src.at(value, &path, reason));
            }
            index.insert(text, entry);
        }
    }
    Ok(index)
}

fn name_clash(models: &[raw::Model], text: &str, first: &NameEntry, new: &NameEntry) -> String {
    let owner = models
        .get(first.model)
        .map_or("", |m| m.name.get_ref().as_str());
    let line = first.line;
    match (first.alias, new.alias) {
        (false, false) => format!("duplicate model name {text:?} (first on line {line})"),
        (true, false) => {
            format!("model name {text:?} is already an alias of model {owner:?} (line {line})")
        }
        (false, true) if first.model == new.model => {
            format!("alias {text:?} repeats the model's own name")
        }
        (false, true) => format!("alias {text:?} is already the name of a model (line {line})"),
        (true, true) => {
            format!("alias {text:?} is already an alias of model {owner:?} (line {line})")
        }
    }
}

fn model(
    src: &Source,
    i: usize,
    m: &raw::Model,
    providers: &HashMap<String, usize>,
    models: &HashMap<String, NameEntry>,
) -> Result<Model> {
    let path = format!("models[{i}]");
    if m.routes.is_empty() {
        return Err(src.at(
            &m.name,
            &format!("{path}.routes"),
            format!("model {:?} has no [[models.routes]]", m.name.get_ref()),
        ));
    }
    let routes = m
        .routes
        .iter()
        .enumerate()
        .map(|(j, r)| route(src, &format!("{path}.routes[{j}]"), r, providers))
        .collect::<Result<Vec<_>>>()?;
    let fallbacks = fallbacks(src, i, m, models)?;
    let price = |v: &Option<Spanned<f64>>, name: &str| {
        opt(v.as_ref(), |v| money(src, v, &format!("{path}.{name}")))
    };
    Ok(Model {
        name: m.name.get_ref().clone(),
        aliases: m.aliases.iter().map(|a| a.get_ref().clone()).collect(),
        fallbacks,
        input_usd_per_mtok: price(&m.input_usd_per_mtok, "input_usd_per_mtok")?,
        output_usd_per_mtok: price(&m.output_usd_per_mtok, "output_usd_per_mtok")?,
        cached_input_usd_per_mtok: price(
            &m.cached_input_usd_per_mtok,
            "cached_input_usd_per_mtok",
        )?,
        cache_write_usd_per_mtok: price(&m.cache_write_usd_per_mtok, "cache_write_usd_per_mtok")?,
        strategy: strategy(src, &path, m.strategy.as_ref())?,
        kind: model_kind(src, &path, m.kind.as_ref())?,
        routes,
    })
}

fn model_kind(src: &Source, path: &str, v: Option<&Spanned<String>>) -> Result<ModelKind> {
    let Some(v) = v else {
        return Ok(ModelKind::Unmarked);
    };
    match v.get_ref().as_str() {
        "chat" => Ok(ModelKind::Chat),
        "embedding" => Ok(ModelKind::Embedding),
        other => Err(src.at(
            v,
            &format!("{path}.kind"),
            format!("unknown kind {other:?}: use \"chat\" or \"embedding\""),
        )),
    }
}

fn strategy(src: &Source, path: &str, v: Option<&Spanned<String>>) -> Result<Strategy> {
    let Some(v) = v else {
        return Ok(Strategy::Weighted);
    };
    match v.get_ref().as_str() {
        "weighted" => Ok(Strategy::Weighted),
        "latency" => Ok(Strategy::Latency),
        other => Err(src.at(
            v,
            &format!("{path}.strategy"),
            format!("unknown strategy {other:?}: use \"weighted\" or \"latency\""),
        )),
    }
}

fn route(
    src: &Source,
    path: &str,
    r: &raw::Route,
    providers: &HashMap<String, usize>,
) -> Result<Route> {
    let provider = *providers.get(r.provider.get_ref()).ok_or_else(|| {
        src.at(
            &r.provider,
            &format!("{path}.provider"),
            format!("no provider named {:?}", r.provider.get_ref()),
        )
    })?;
    let upstream_model = non_blank(src, &r.model, &format!("{path}.model"))?;
    let weight = opt(r.weight.as_ref(), |w| {
        positive_u32(src, w, &format!("{path}.weight"))
    })?
    .unwrap_or(1);
    Ok(Route {
        provider,
        upstream_model,
        weight,
    })
}

/// Fallback names (or aliases) → model indices, in order; not the model itself, not twice.
fn fallbacks(
    src: &Source,
    i: usize,
    m: &raw::Model,
    models: &HashMap<String, NameEntry>,
) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(m.fallbacks.len());
    for (j, f) in m.fallbacks.iter().enumerate() {
        let path = format!("models[{i}].fallbacks[{j}]");
        let target = models
            .get(f.get_ref())
            .ok_or_else(|| src.at(f, &path, format!("no model named {:?}", f.get_ref())))?
            .model;
        if target == i {
            return Err(src.at(f, &path, "a model cannot fall back to itself"));
        }
        if out.contains(&target) {
            return Err(src.at(
                f,
                &path,
                format!("fallback {:?} is listed twice", f.get_ref()),
            ));
        }
        out.push(target);
    }
    Ok(out)
}

/// A fallback serves the same doors as its model: a chat model cannot fall back to an
/// embedding model, nor the other way (an unmarked model may fall back to any).
fn fallback_kinds(src: &Source, raw: &[raw::Model], models: &[Arc<Model>]) -> Result<()> {
    for (i, m) in models.iter().enumerate() {
        for (j, &f) in m.fallbacks.iter().enumerate() {
            let (Some(kind), Some(fallback_kind)) = (m.kind.as_str(), models[f].kind.as_str())
            else {
                continue;
            };
            if kind != fallback_kind {
                return Err(src.at(
                    &raw[i].fallbacks[j],
                    &format!("models[{i}].fallbacks[{j}]"),
                    format!(
                        "{:?} is a {kind} model and {:?} a {fallback_kind} model: a fallback must be of the same kind",
                        m.name, models[f].name,
                    ),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// [[teams]], [[keys]]

type Teams = (Vec<Arc<Team>>, HashMap<String, usize>);

fn teams(src: &Source, raw: &[raw::Team]) -> Result<Teams> {
    let mut seen = HashMap::new();
    let mut list = Vec::with_capacity(raw.len());
    let mut index = HashMap::new();
    for (i, t) in raw.iter().enumerate() {
        let path = format!("teams[{i}]");
        let name = name(src, &t.name, &format!("{path}.name"))?;
        unique(src, &mut seen, &t.name, &format!("{path}.name"), "team")?;
        let models = opt(t.models.as_ref(), |g| {
            globs(src, g, &format!("{path}.models"))
        })?;
        let limits = limits(src, t.limits(), &path)?;
        index.insert(name.clone(), i);
        list.push(Arc::new(Team {
            name,
            models,
            limits,
        }));
    }
    Ok((list, index))
}

type Keys = (Vec<Arc<Key>>, HashMap<[u8; 32], usize>);

fn keys(src: &Source, raw: &[raw::Key], teams: &HashMap<String, usize>) -> Result<Keys> {
    let mut seen_ids = HashMap::new();
    let mut index: HashMap<[u8; 32], usize> = HashMap::new();
    let mut list = Vec::with_capacity(raw.len());
    for (i, k) in raw.iter().enumerate() {
        let path = format!("keys[{i}]");
        let key = key(src, &path, k, teams)?;
        unique(src, &mut seen_ids, &k.id, &format!("{path}.id"), "key id")?;
        if let Some(&first) = index.get(&key.sha256) {
            let first_id = raw.get(first).map_or("", |f| f.id.get_ref().as_str());
            return Err(src.at(
                &k.sha256,
                &format!("{path}.sha256"),
                format!("same sha256 as keys[{first}] ({first_id:?}): one secret, one key"),
            ));
        }
        index.insert(key.sha256, i);
        list.push(Arc::new(key));
    }
    Ok((list, index))
}

fn key(src: &Source, path: &str, k: &raw::Key, teams: &HashMap<String, usize>) -> Result<Key> {
    let field = |name: &str| format!("{path}.{name}");
    let id = key_id(src, &k.id, &field("id"))?;
    let team = *teams.get(k.team.get_ref()).ok_or_else(|| {
        src.at(
            &k.team,
            &field("team"),
            format!("no team named {:?}", k.team.get_ref()),
        )
    })?;
    let sha256 = sha256_hex(k.sha256.get_ref())
        .ok_or_else(|| src.at(&k.sha256, &field("sha256"), "must be exactly 64 hex digits"))?;
    let expires_at = opt(k.expires_at.as_ref(), |v| {
        expires_at(src, v, &field("expires_at"))
    })?;
    Ok(Key {
        id,
        team,
        sha256,
        limits: limits(src, k.limits(), path)?,
        expires_at,
        disabled: k.disabled,
    })
}

/// A key id is a metric label and a log field: a conservative character set keeps it one.
fn key_id(src: &Source, value: &Spanned<String>, path: &str) -> Result<String> {
    let id = name(src, value, path)?;
    let ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(src.at(
            value,
            path,
            format!("{id:?} may contain only A-Z, a-z, 0-9, '.', '_' and '-'"),
        ));
    }
    Ok(id)
}

fn sha256_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// `expires_at` as a quoted string or a bare TOML date-time, both RFC 3339 with an offset.
fn expires_at(src: &Source, value: &Spanned<toml::Value>, path: &str) -> Result<SystemTime> {
    let text = match value.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => {
            return Err(src.at(
                value,
                path,
                "must be an RFC 3339 date-time such as \"2027-01-01T00:00:00Z\"",
            ))
        }
    };
    parse_rfc3339(&text).map_err(|reason| src.at(value, path, reason))
}

/// RFC 3339 with `Z` or a numeric offset (`+02:00`), parsed by jiff. jiff's timestamps also
/// take offsets up to ±25:59 (Temporal's range); RFC 3339's are at most ±23:59.
fn parse_rfc3339(text: &str) -> std::result::Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 date-time such as 2027-01-01T00:00:00Z");
    let text = text.trim();
    let t: jiff::Timestamp = text.parse().map_err(|_| bad())?;
    if offset_hours(text).is_some_and(|h| h > 23) {
        return Err(bad());
    }
    Ok(SystemTime::from(t))
}

/// The hours of a numeric offset at the end of `text` (`…+HH:MM`), if it has one.
fn offset_hours(text: &str) -> Option<u32> {
    let at = text.len().checked_sub(6)?;
    let off = text.get(at..)?;
    off.starts_with(['+', '-'])
        .then(|| off.get(1..3)?.parse().ok())?
}

// ---------------------------------------------------------------------------------------------
// [[content_filters]]

fn content_filter(src: &Source, i: usize, f: &raw::ContentFilter) -> Result<ContentFilter> {
    let path = format!("content_filters[{i}]");
    let name = name(src, &f.name, &format!("{path}.name"))?;
    if f.deny.is_empty() {
        return Err(src.at(
            &f.name,
            &format!("{path}.deny"),
            "deny must list at least one regex",
        ));
    }
    let deny = f
        .deny
        .iter()
        .enumerate()
        .map(|(j, re)| deny_regex(src, re, &format!("{path}.deny[{j}]")))
        .collect::<Result<Vec<_>>>()?;
    let teams = match &f.teams {
        None => Globs::new(vec!["*".to_string()]).expect("`*` is a glob"),
        Some(g) => globs(src, g, &format!("{path}.teams"))?,
    };
    Ok(ContentFilter { name, deny, teams })
}

fn content_filters(src: &Source, raw: &[raw::ContentFilter]) -> Result<Vec<Arc<ContentFilter>>> {
    let mut seen = HashMap::new();
    let mut list = Vec::with_capacity(raw.len());
    for (i, f) in raw.iter().enumerate() {
        let filter = content_filter(src, i, f)?;
        let path = format!("content_filters[{i}].name");
        unique(src, &mut seen, &f.name, &path, "content filter")?;
        list.push(Arc::new(filter));
    }
    Ok(list)
}

fn deny_regex(src: &Source, value: &Spanned<String>, path: &str) -> Result<regex::Regex> {
    if value.get_ref().is_empty() {
        return Err(src.at(value, path, "an empty regex would match every request"));
    }
    regex::Regex::new(value.get_ref()).map_err(|e| {
        let reason = format!("invalid regex {:?}: {}", value.get_ref(), regex_reason(&e));
        src.at(value, path, reason)
    })
}

/// The one-line cause of a regex error (its `Display` is a multi-line picture of the pattern).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .map_or_else(
            || text.lines().next().unwrap_or("").to_string(),
            str::to_string,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "test.toml";

    fn load(text: &str) -> Result<Config> {
        load_str(text, Path::new(FILE))
    }

    fn reject(text: &str) -> ConfigError {
        match load(text) {
            Ok(_) => panic!("config was accepted:\n{text}"),
            Err(e) => e,
        }
    }

    /// Asserts `text` is rejected at the line marked `# <-`, at config `path`, with a reason
    /// containing `reason`.
    #[track_caller]
    fn rejects(text: &str, path: &str, reason: &str) {
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
    const BASE: &str = "[[providers]]\nname = \"p\"\nkind = \"mock\"\n\n[[teams]]\nname = \"t\"\n";

    fn with_base(rest: &str) -> String {
        format!("{BASE}{rest}")
    }

    const HASH_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const HASH_B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn unix(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

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
                url: "redis://cache:6380/1".into(),
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
        assert_eq!(gpt.input_usd_per_mtok, Some(2.5));
        assert_eq!(gpt.output_usd_per_mtok, Some(10.0));
        assert_eq!(gpt.cached_input_usd_per_mtok, Some(1.25));
        assert_eq!(
            gpt.cache_write_usd_per_mtok, None,
            "absent: the input price"
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
        assert_eq!(flash.input_usd_per_mtok, Some(0.0));
        assert_eq!(flash.output_usd_per_mtok, None);
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
        assert_eq!(c.server.listen, "0.0.0.0:8080");
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

    // --- providers ---------------------------------------------------------------------------

    fn provider(fields: &str) -> String {
        format!("[[providers]]\nname = \"v\"\n{fields}")
    }

    #[test]
    fn provider_kind_and_kind_fields() {
        rejects(
            &provider("kind = \"bedrock\" # <-\n"),
            "providers[0].kind",
            "unknown provider kind \"bedrock\"",
        );
        // A missing base_url is reported at the provider's name.
        rejects(
            "[[providers]]\nname = \"v\" # <-\nkind = \"openai\"\n",
            "providers[0].base_url",
            "kind = \"openai\" requires base_url",
        );
        rejects(
            &provider("kind = \"mock\"\nbase_url = \"http://127.0.0.1\" # <-\n"),
            "providers[0].base_url",
            "mock provider takes no base_url",
        );
        rejects(
            &provider("kind = \"mock\"\napi_key_env = \"X\" # <-\n"),
            "providers[0].api_key_env",
            "mock provider takes no api_key_env",
        );
        rejects(
            &provider("kind = \"azure\" # <-\nbase_url = \"https://127.0.0.1\"\n"),
            "providers[0].api_version",
            "requires api_version",
        );
        rejects(
            &provider(
                "kind = \"openai\"\nbase_url = \"https://127.0.0.1\"\napi_version = \"1\" # <-\n",
            ),
            "providers[0].api_version",
            "only to kind = \"azure\"",
        );
        rejects(
            &provider("kind = \"gemini\"\nbase_url = \"https://127.0.0.1\"\ndefault_max_tokens = 5 # <-\n"),
            "providers[0].default_max_tokens",
            "only to kind = \"anthropic\"",
        );
        rejects(
            &provider("kind = \"anthropic\"\nbase_url = \"https://127.0.0.1\"\ndefault_max_tokens = 0 # <-\n"),
            "providers[0].default_max_tokens",
            "positive integer",
        );
    }

    #[test]
    fn provider_base_url() {
        let url = |u: &str| provider(&format!("kind = \"openai\"\nbase_url = \"{u}\" # <-\n"));
        let path = "providers[0].base_url";
        rejects(
            &url("ftp://127.0.0.1"),
            path,
            "must start with http:// or https://",
        );
        rejects(&url("127.0.0.1:80"), path, "must start with http://");
        rejects(&url("http://127.0.0.1:0"), path, "not a port");
        rejects(&url("http://127.0.0.1:99999"), path, "not a port");
        rejects(&url("http://127.0.0.1:x/v1"), path, "not a port");
        rejects(&url("http://"), path, "no host");
        rejects(&url("http://:80/v1"), path, "no host");
        rejects(&url("http://[::1/v1"), path, "unclosed");
        rejects(&url("http://[zz]/v1"), path, "not an IPv6 address");
        rejects(&url("http://user:pw@127.0.0.1"), path, "user info");
        rejects(&url("http://127.0.0.1/v1?x=1"), path, "query");
        rejects(
            &url("http://no-such-host.invalid/v1"),
            path,
            "cannot resolve host no-such-host.invalid:80",
        );
    }

    #[test]
    fn base_url_parts() {
        let p = parse_base_url("https://Example.COM/v1/").unwrap();
        assert_eq!(
            p,
            BaseUrl {
                tls: true,
                host: "example.com".into(),
                port: 443,
                base_path: "/v1".into(),
                host_header: "example.com".into(),
            }
        );
        let p = parse_base_url("http://example.com:8080").unwrap();
        assert_eq!(
            (p.port, p.host_header.as_str(), p.base_path.as_str()),
            (8080, "example.com:8080", "")
        );
        let p = parse_base_url("http://example.com:80/").unwrap();
        assert_eq!(
            (p.port, p.host_header.as_str(), p.base_path.as_str()),
            (80, "example.com", "")
        );
        let p = parse_base_url("https://example.com:80").unwrap();
        assert_eq!(p.host_header, "example.com:80");
        let p = parse_base_url("http://[::1]/a/b//").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 80));
        assert_eq!(
            (p.host_header.as_str(), p.base_path.as_str()),
            ("[::1]", "/a/b")
        );
        let p = parse_base_url("http://[::1]:8080").unwrap();
        assert_eq!(p.host_header, "[::1]:8080");
        // What WHATWG parsing adds: IDNA hosts and IPv4 shorthand, normalised.
        let p = parse_base_url("https://Bücher.example/v1").unwrap();
        assert_eq!(p.host, "xn--bcher-kva.example");
        let p = parse_base_url("http://127.1:8000").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 8000));
        assert!(parse_base_url("http://exa mple.com")
            .unwrap_err()
            .contains("whitespace"));
    }

    #[test]
    fn provider_timeouts() {
        let t = |field: &str| {
            provider(&format!(
                "kind = \"openai\"\nbase_url = \"http://127.0.0.1\"\n{field} # <-\n"
            ))
        };
        rejects(
            &t("connect_timeout_ms = 0"),
            "providers[0].connect_timeout_ms",
            "positive integer",
        );
        rejects(
            &t("first_byte_timeout_ms = -5"),
            "providers[0].first_byte_timeout_ms",
            "positive integer, not -5",
        );
        rejects(
            &t("idle_timeout_ms = 0"),
            "providers[0].idle_timeout_ms",
            "positive",
        );
        rejects(
            &t("total_timeout_ms = 0"),
            "providers[0].total_timeout_ms",
            "positive",
        );
        rejects(
            &t("total_timeout_ms = 1.5"),
            "providers[0].total_timeout_ms",
            "invalid type",
        );
    }

    #[test]
    fn provider_api_key_env() {
        let set = "SWITCHYARD_TEST_APIKEY_SET";
        let empty = "SWITCHYARD_TEST_APIKEY_EMPTY";
        let unset = "SWITCHYARD_TEST_APIKEY_NEVER_SET";
        std::env::set_var(set, "sk-value");
        std::env::set_var(empty, "");
        let with = |var: &str| {
            provider(&format!(
                "kind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"{var}\" # <-\n"
            ))
        };
        let c = load(&with(set)).unwrap();
        assert_eq!(c.provider(0).api_key.as_ref().unwrap().expose(), "sk-value");
        rejects(
            &with(unset),
            "providers[0].api_key_env",
            &format!("environment variable {unset} is not set"),
        );
        rejects(
            &with(empty),
            "providers[0].api_key_env",
            &format!("environment variable {empty} is empty"),
        );
        rejects(
            &with(""),
            "providers[0].api_key_env",
            "not an environment variable name",
        );
    }

    /// An error about a provider whose key was read never shows the key, whatever the error.
    #[test]
    fn secrets_never_appear_in_errors() {
        let var = "SWITCHYARD_TEST_SECRET_LEAK";
        let secret = "sk-live-DO-NOT-LEAK-7f3a9c1e";
        std::env::set_var(var, secret);
        let cases = [
            format!("[[providers]]\nname = \"v\"\nkind = \"openai\"\napi_key_env = \"{var}\"\nbase_url = \"ftp://x\"\n"),
            format!("[[providers]]\nname = \"v\"\nkind = \"mock\"\napi_key_env = \"{var}\"\n"),
            format!("[[providers]]\nname = \"v\"\nkind = \"openai\"\napi_key_env = \"{var}\"\n"),
            format!("[[providers]]\nname = \"v\"\nkind = \"azure\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"{var}\"\n"),
            format!("[[providers]]\nname = \"v\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"{var}\"\n[[providers]]\nname = \"v\"\nkind = \"mock\"\n"),
            format!("[[providers]]\nname = \"v\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"{var}\"\n[[models]]\nname = \"m\"\n"),
            format!("[[providers]]\nname = \"v\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"{var}\"\nextra = 1\n"),
            format!("[state]\nbackend = \"redis\"\nredis_url = \"rediss://u:{secret}@h\"\n"),
            format!("[state]\nbackend = \"redis\"\nredis_url = \"redis://:{secret}@h:x\"\n"),
            format!("[state]\nbackend = \"redis\"\nredis_url = \"redis://h\"\nredis_password_env = \"{var}\"\nredis_timeout_ms = 0\n"),
        ];
        for text in &cases {
            let e = reject(text);
            for shown in [e.to_string(), format!("{e:?}")] {
                assert!(!shown.contains(secret), "secret leaked: {shown}");
            }
        }
        let ok = format!("[[providers]]\nname = \"v\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"{var}\"\n");
        let c = load(&ok).unwrap();
        assert!(!format!("{c:?}").contains(secret));
        let redis = format!("[state]\nbackend = \"redis\"\nredis_url = \"redis://h\"\nredis_password_env = \"{var}\"\n");
        let c = load(&redis).unwrap();
        assert!(
            matches!(&c.state, State::Redis(r) if r.password.as_ref().map(Secret::expose) == Some(secret))
        );
        assert!(!format!("{c:?}").contains(secret));
    }

    // --- models ------------------------------------------------------------------------------

    #[test]
    fn model_routes() {
        rejects(
            &with_base("[[models]]\nname = \"m\" # <-\n"),
            "models[0].routes",
            "has no [[models.routes]]",
        );
        let route = |fields: &str| {
            with_base(&format!(
                "[[models]]\nname = \"m\"\n  [[models.routes]]\n{fields}"
            ))
        };
        rejects(
            &route("  provider = \"nope\" # <-\n  model = \"x\"\n"),
            "models[0].routes[0].provider",
            "no provider named \"nope\"",
        );
        rejects(
            &route("  provider = \"p\"\n  model = \"\" # <-\n"),
            "models[0].routes[0].model",
            "must not be empty",
        );
        rejects(
            &route("  provider = \"p\"\n  model = \"x\"\n  weight = 0 # <-\n"),
            "models[0].routes[0].weight",
            "positive integer",
        );
        rejects(
            &route("  provider = \"p\"\n  model = \"x\"\n  weight = 5000000000 # <-\n"),
            "models[0].routes[0].weight",
            "at most 4294967295",
        );
        rejects(
            &with_base("[[models]]\nname = \"m\"\n  [[models.routes]] # <-\n  provider = \"p\"\n"),
            "models[0].routes[0]",
            "missing field `model`",
        );
        // The path of the second route of the second model.
        let text = with_base(
            "[[models]]\nname = \"a\"\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n\
             [[models]]\nname = \"b\"\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n\
             \x20 [[models.routes]]\n  provider = \"q\" # <-\n  model = \"x\"\n",
        );
        rejects(
            &text,
            "models[1].routes[1].provider",
            "no provider named \"q\"",
        );
    }

    fn model(name: &str, extra: &str) -> String {
        format!("[[models]]\nname = \"{name}\"\n{extra}\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n")
    }

    #[test]
    fn model_fallbacks() {
        rejects(
            &with_base(&format!(
                "{}{}",
                model("a", "fallbacks = [\"b\", \"c\"] # <-"),
                model("b", "")
            )),
            "models[0].fallbacks[1]",
            "no model named \"c\"",
        );
        rejects(
            &with_base(&model("a", "aliases = [\"aa\"]\nfallbacks = [\"aa\"] # <-")),
            "models[0].fallbacks[0]",
            "cannot fall back to itself",
        );
        rejects(
            &with_base(&format!(
                "{}{}",
                model("a", "fallbacks = [\"b\", \"bb\"] # <-"),
                model("b", "aliases = [\"bb\"]")
            )),
            "models[0].fallbacks[1]",
            "listed twice",
        );
    }

    #[test]
    fn model_prices() {
        rejects(
            &with_base(&model("a", "input_usd_per_mtok = -1 # <-")),
            "models[0].input_usd_per_mtok",
            "finite number >= 0",
        );
        rejects(
            &with_base(&model("a", "output_usd_per_mtok = nan # <-")),
            "models[0].output_usd_per_mtok",
            "finite number >= 0",
        );
        rejects(
            &with_base(&model("a", "output_usd_per_mtok = inf # <-")),
            "models[0].output_usd_per_mtok",
            "finite",
        );
        rejects(
            &with_base(&model("a", "cached_input_usd_per_mtok = -0.5 # <-")),
            "models[0].cached_input_usd_per_mtok",
            "finite number >= 0",
        );
        rejects(
            &with_base(&model("a", "cache_write_usd_per_mtok = nan # <-")),
            "models[0].cache_write_usd_per_mtok",
            "finite number >= 0",
        );
    }

    // --- teams and keys ----------------------------------------------------------------------

    #[test]
    fn team_limits_and_globs() {
        let team = |field: &str| format!("[[teams]]\nname = \"t\"\n{field} # <-\n");
        rejects(&team("rpm = 0"), "teams[0].rpm", "positive integer");
        rejects(
            &team("tpm = 4294967296"),
            "teams[0].tpm",
            "at most 4294967295",
        );
        rejects(
            &team("max_concurrent = -1"),
            "teams[0].max_concurrent",
            "positive",
        );
        rejects(
            &team("tokens_per_day = 0"),
            "teams[0].tokens_per_day",
            "positive",
        );
        rejects(
            &team("usd_per_month = -0.01"),
            "teams[0].usd_per_month",
            ">= 0",
        );
        rejects(
            &team("models = [\"a\", \"\"]"),
            "teams[0].models[1]",
            "must not be empty",
        );
        rejects(
            &team("models = [\"a\", \"gpt-[4\"]"),
            "teams[0].models[1]",
            "invalid glob \"gpt-[4\": unclosed character class",
        );
        let c = load(&team("models = []")).unwrap();
        assert!(!c.teams[0].allows("anything"));
    }

    fn key(fields: &str) -> String {
        with_base(&format!("[[keys]]\nid = \"k\"\nteam = \"t\"\n{fields}"))
    }

    #[test]
    fn key_checks() {
        rejects(
            &key(&format!("sha256 = \"{HASH_A}\"\nrpm = 0 # <-\n")),
            "keys[0].rpm",
            "positive",
        );
        rejects(
            &key(&format!(
                "sha256 = \"{HASH_A}\"\nusd_per_month = nan # <-\n"
            )),
            "keys[0].usd_per_month",
            "finite",
        );
        rejects(
            &key("sha256 = \"abc\" # <-\n"),
            "keys[0].sha256",
            "exactly 64 hex digits",
        );
        let not_hex = format!("{}zz", &HASH_A[..62]);
        rejects(
            &key(&format!("sha256 = \"{not_hex}\" # <-\n")),
            "keys[0].sha256",
            "64 hex",
        );
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"k\"\nteam = \"nope\" # <-\nsha256 = \"{HASH_A}\"\n"
            )),
            "keys[0].team",
            "no team named \"nope\"",
        );
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"a/b\" # <-\nteam = \"t\"\nsha256 = \"{HASH_A}\"\n"
            )),
            "keys[0].id",
            "may contain only",
        );
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"\" # <-\nteam = \"t\"\nsha256 = \"{HASH_A}\"\n"
            )),
            "keys[0].id",
            "must not be empty",
        );
        // The same secret under two ids, once in upper case.
        rejects(
            &with_base(&format!(
                "[[keys]]\nid = \"a\"\nteam = \"t\"\nsha256 = \"{HASH_A}\"\n\
                 [[keys]]\nid = \"b\"\nteam = \"t\"\nsha256 = \"{}\" # <-\n",
                HASH_A.to_ascii_uppercase()
            )),
            "keys[1].sha256",
            "same sha256 as keys[0] (\"a\")",
        );
    }

    #[test]
    fn key_expiry() {
        let exp = |v: &str| key(&format!("sha256 = \"{HASH_A}\"\nexpires_at = {v} # <-\n"));
        let at = |v: &str| load(&exp(v)).map(|c| c.keys[0].expires_at);
        assert_eq!(at("\"1970-01-01T00:00:10Z\""), Ok(Some(unix(10))));
        assert_eq!(
            at("\"2027-01-01t00:00:00z\""),
            Ok(Some(unix(1_798_761_600)))
        );
        assert_eq!(
            at("\"2026-12-31T19:00:00-05:00\""),
            Ok(Some(unix(1_798_761_600)))
        );
        assert_eq!(
            at("\"2027-01-01T00:00:00.5+00:00\""),
            Ok(Some(unix(1_798_761_600) + Duration::from_millis(500)))
        );
        assert_eq!(at("2027-01-01T00:00:00Z"), Ok(Some(unix(1_798_761_600))));
        let path = "keys[0].expires_at";
        rejects(&exp("\"2027-01-01\""), path, "not an RFC 3339 date-time");
        rejects(&exp("\"2027-01-01T00:00:00\""), path, "RFC 3339");
        rejects(&exp("\"2027-13-01T00:00:00Z\""), path, "RFC 3339");
        rejects(&exp("\"2027-01-01T00:00:00+25:00\""), path, "RFC 3339");
        rejects(&exp("\"next year\""), path, "RFC 3339");
        rejects(&exp("2027-01-01"), path, "RFC 3339");
        rejects(&exp("1798761600"), path, "must be an RFC 3339 date-time");
    }

    // --- content filters ---------------------------------------------------------------------

    #[test]
    fn content_filter_checks() {
        let text = "[[content_filters]]\nname = \"f\"\ndeny = [\n  'ok',\n  '(unclosed', # <-\n]\n";
        rejects(
            text,
            "content_filters[0].deny[1]",
            "invalid regex \"(unclosed\": unclosed group",
        );
        let e = reject(text);
        assert!(!e.reason.contains('\n'), "{e}");
        rejects(
            "[[content_filters]]\nname = \"f\" # <-\ndeny = []\n",
            "content_filters[0].deny",
            "at least one regex",
        );
        rejects(
            "[[content_filters]]\nname = \"f\"\ndeny = [''] # <-\n",
            "content_filters[0].deny[0]",
            "match every request",
        );
        rejects(
            "[[content_filters]]\nname = \"f\"\ndeny = ['x']\nteams = [''] # <-\n",
            "content_filters[0].teams[0]",
            "must not be empty",
        );
        rejects(
            "[[content_filters]] # <-\nname = \"f\"\n",
            "content_filters[0]",
            "missing field `deny`",
        );
    }

    // --- server, state, log ------------------------------------------------------------------

    #[test]
    fn server_checks() {
        let server = |fields: &str| format!("[server]\n{fields} # <-\n");
        rejects(
            &server("listen = \"localhost:80\""),
            "server.listen",
            "not an address",
        );
        rejects(
            &server("admin_listen = \"9090\""),
            "server.admin_listen",
            "not an address",
        );
        rejects(
            &server("admin_listen = \"0.0.0.0:8080\""),
            "server.admin_listen",
            "clashes with listen",
        );
        rejects(
            &server("listen = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9000\""),
            "server.admin_listen",
            "clashes",
        );
        // Different interfaces may share a port; the wildcard takes them all.
        assert!(load(&server("listen = \"127.0.0.2:9090\"")).is_ok());
        rejects(
            &server("listen = \"[::]:9090\""),
            "server.admin_listen",
            "clashes",
        );
        rejects(
            &server("max_request_bytes = 1023"),
            "server.max_request_bytes",
            "at least 1024",
        );
        rejects(
            &server("max_request_bytes = 0"),
            "server.max_request_bytes",
            "positive",
        );
        assert_eq!(
            load("[server]\nmax_request_bytes = 1024\n")
                .unwrap()
                .server
                .max_request_bytes,
            1024
        );
        rejects(&server("threads = 0"), "server.threads", "positive");
        rejects(
            &server("max_uri_bytes = 0"),
            "server.max_uri_bytes",
            "positive",
        );
        rejects(
            &server("max_header_line_bytes = -1"),
            "server.max_header_line_bytes",
            "positive",
        );
        rejects(
            &server("max_header_bytes = 1048576"),
            "server.max_header_bytes",
            "at most 1048575",
        );
        rejects(
            &server("max_headers = 257"),
            "server.max_headers",
            "at most 256",
        );
        assert_eq!(
            load("[server]\nmax_headers = 256\n")
                .unwrap()
                .server
                .head
                .max_headers,
            256
        );
    }

    #[test]
    fn tls_checks() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c = dir.path().join("c.pem");
        let k = dir.path().join("k.pem");
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let (c, k) = (c.display().to_string(), k.display().to_string());
        let server = |fields: &str| format!("[server]\n{fields} # <-\n");
        rejects(
            &server(&format!("tls_cert = \"{c}\"")),
            "server.tls_key",
            "requires tls_key",
        );
        rejects(
            &server(&format!("tls_key = \"{k}\"")),
            "server.tls_cert",
            "requires tls_cert",
        );
        rejects(
            &server("admin_tls = true"),
            "server.admin_tls",
            "requires tls_cert",
        );
        rejects(
            &server(&format!(
                "tls_cert = \"{c}\"\ntls_key = \"{k}\"\nadmin_tls_client_ca = \"{c}\""
            )),
            "server.admin_tls_client_ca",
            "requires admin_tls = true",
        );
        rejects(
            &server(&format!("tls_key = \"{k}\"\ntls_cert = \"{k}\"")),
            "server.tls_cert",
            &format!("{k}: no CERTIFICATE block"),
        );
        rejects(
            &server(&format!("tls_cert = \"{c}\"\ntls_key = \"{c}\"")),
            "server.tls_key",
            &format!("{c}: no PEM private key"),
        );
        rejects(
            &server(&format!("tls_cert = \"{c}\"\ntls_key = \"{k}\"\nadmin_tls = true\nadmin_tls_client_ca = \"{k}\"")),
            "server.admin_tls_client_ca",
            &format!("{k}: no CERTIFICATE block"),
        );
        // A hot reload reads no PEM file: a bad pair on disk does not block a config edit.
        let bad = format!("[server]\ntls_cert = \"{k}\"\ntls_key = \"/missing.pem\"\n");
        assert!(load(&bad).is_err());
        let reloaded = load_str_for_reload(&bad, Path::new(FILE)).unwrap();
        assert_eq!(
            reloaded.server.tls.unwrap().key,
            PathBuf::from("/missing.pem")
        );
        let ok = load(&format!(
            "[server]\ntls_cert = \"{c}\"\ntls_key = \"{k}\"\nadmin_tls = true\nadmin_tls_client_ca = \"{c}\"\n"
        ))
        .unwrap();
        assert_eq!(
            ok.server.tls,
            Some(TlsConfig {
                cert: c.clone().into(),
                key: k.clone().into(),
                admin: true,
                admin_client_ca: Some(c.into()),
            })
        );
    }

    #[test]
    fn stored_responses_and_model_kinds() {
        let c = load("").unwrap();
        assert_eq!(c.stored_responses, StoredResponses::default());
        let c = load(&with_base(&format!(
            "[state]\nresponses_ttl_s = 60\nresponses_max_bytes = 1000\nresponses_max_entries = 5\n{}{}",
            model("e", "kind = \"embedding\""),
            model("c", "kind = \"chat\"")
        )))
        .unwrap();
        assert_eq!(
            c.stored_responses,
            StoredResponses {
                ttl: Duration::from_secs(60),
                max_bytes: 1000,
                max_entries: 5
            }
        );
        assert_eq!(c.models[0].kind, ModelKind::Embedding);
        assert_eq!(c.models[1].kind, ModelKind::Chat);
        for field in [
            "responses_ttl_s",
            "responses_max_bytes",
            "responses_max_entries",
        ] {
            rejects(
                &format!("[state]\n{field} = 0 # <-\n"),
                &format!("state.{field}"),
                "must be a positive integer",
            );
        }
        rejects(
            &with_base(&model("e", "kind = \"vision\" # <-")),
            "models[0].kind",
            "unknown kind \"vision\"",
        );
        rejects(
            &with_base(&format!(
                "{}{}",
                model("c", "kind = \"chat\"\nfallbacks = [\"e\"] # <-"),
                model("e", "kind = \"embedding\"")
            )),
            "models[0].fallbacks[0]",
            "a fallback must be of the same kind",
        );
        // An unmarked model (no `kind`) may fall back to either.
        let c = load(&with_base(&format!(
            "{}{}",
            model("u", "fallbacks = [\"e\"]"),
            model("e", "kind = \"embedding\"")
        )))
        .unwrap();
        assert_eq!(c.models[0].kind, ModelKind::Unmarked);
    }

    #[test]
    fn state_and_log_checks() {
        rejects(
            "[state]\nbackend = \"redis\" # <-\n",
            "state.redis_url",
            "requires redis_url",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"http://127.0.0.1:6379\" # <-\n",
            "state.redis_url",
            "starting with redis://",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"rediss://:pw@cache:6380\" # <-\n",
            "state.redis_url",
            "holds a password: remove it from the URL and name the environment variable",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://u:pw@cache\" # <-\n",
            "state.redis_url",
            "redis_password_env",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"rediss://c:6380/#insecure\" # <-\n",
            "state.redis_url",
            "#insecure) is refused",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://c\"\nredis_ca_file = \"ca.pem\" # <-\n",
            "state.redis_ca_file",
            "requires a rediss://",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"rediss://c\"\nredis_ca_file = \"/nonexistent/ca.pem\" # <-\n",
            "state.redis_ca_file",
            "/nonexistent/ca.pem: cannot read the file",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"rediss://c\"\nredis_password_env = \"SY_TEST_UNSET_REDIS_PW\" # <-\n",
            "state.redis_password_env",
            "SY_TEST_UNSET_REDIS_PW is not set",
        );
        let c =
            load("[state]\nbackend = \"redis\"\nredis_url = \"rediss://default@cache:6380/2\"\n")
                .unwrap();
        assert!(matches!(&c.state, State::Redis(r) if r.url == "rediss://default@cache:6380/2"));
        rejects(
            "[state]\nbackend = \"disk\" # <-\n",
            "state.backend",
            "unknown backend \"disk\"",
        );
        rejects(
            "[state]\ndir = \"\" # <-\n",
            "state.dir",
            "must not be empty",
        );
        let c = load(
            "[state]\nbackend = \"memory\"\ndir = \"/var/lib/sy\"\nredis_url = \"redis://r\"\n",
        )
        .unwrap();
        assert_eq!(
            c.state,
            State::Memory {
                dir: "/var/lib/sy".into()
            }
        );
        rejects(
            "[log]\nusage = \"\" # <-\n",
            "log.usage",
            "must not be empty",
        );
        let c = load("[log]\nusage = \"data/u.jsonl\"\n").unwrap();
        assert_eq!(c.log.usage, Some(UsageSink::File("data/u.jsonl".into())));
    }

    #[test]
    fn limits_section_checks() {
        assert_eq!(load("").unwrap().limits.default_max_tokens, 1024);
        let c = load("[limits]\ndefault_max_tokens = 256\n").unwrap();
        assert_eq!(c.limits.default_max_tokens, 256);
        rejects(
            "[limits]\ndefault_max_tokens = 0 # <-\n",
            "limits.default_max_tokens",
            "positive integer",
        );
        rejects(
            "[limits]\ndefault_max_tokens = 5000000000 # <-\n",
            "limits.default_max_tokens",
            "at most 4294967295",
        );
        rejects("[limits]\nrpm = 5 # <-\n", "limits.rpm", "unknown field");
    }

    #[test]
    fn telemetry_section_checks() {
        assert_eq!(load("").unwrap().telemetry, None);
        let t = load("[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n")
            .unwrap()
            .telemetry
            .unwrap();
        assert_eq!(t.addr, "127.0.0.1:4318".parse().unwrap());
        assert_eq!(t.path, "/v1/traces");
        assert_eq!(t.host_header, "127.0.0.1:4318");
        assert_eq!(
            (t.sample_ratio, t.service_name.as_str()),
            (1.0, "switchyard")
        );
        assert_eq!(t.max_queue_size, 2048);
        let t = load(
            "[telemetry]\nendpoint = \"http://127.0.0.1:4318/otlp/v1/traces\"\nsample_ratio = 0.25\nservice_name = \"gw\"\nmax_queue_size = 10\n",
        )
        .unwrap()
        .telemetry
        .unwrap();
        assert_eq!(t.path, "/otlp/v1/traces");
        assert_eq!((t.sample_ratio, t.service_name.as_str()), (0.25, "gw"));
        assert_eq!(t.max_queue_size, 10);
        let ratio = |r: &str| {
            load(&format!(
                "[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\nsample_ratio = {r}\n"
            ))
        };
        assert_eq!(ratio("0").unwrap().telemetry.unwrap().sample_ratio, 0.0);
        assert_eq!(ratio("1").unwrap().telemetry.unwrap().sample_ratio, 1.0);
        let section =
            |rest: &str| format!("[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n{rest}");
        rejects(
            &section("sample_ratio = 1.5 # <-\n"),
            "telemetry.sample_ratio",
            "from 0 to 1",
        );
        rejects(
            &section("sample_ratio = \"all\" # <-\n"),
            "telemetry.sample_ratio",
            "from 0 to 1",
        );
        rejects(
            &section("service_name = \" \" # <-\n"),
            "telemetry.service_name",
            "must not be empty",
        );
        rejects(
            &section("max_queue_size = 0 # <-\n"),
            "telemetry.max_queue_size",
            "positive integer",
        );
        rejects(
            &section("headers = 1 # <-\n"),
            "telemetry.headers",
            "unknown field",
        );
        rejects(
            "[telemetry]\nendpoint = \"https://127.0.0.1:4318\" # <-\n",
            "telemetry.endpoint",
            "plain http://",
        );
        rejects(
            "[telemetry]\nendpoint = \"127.0.0.1:4318\" # <-\n",
            "telemetry.endpoint",
            "must start with http://",
        );
        rejects(
            "[telemetry] # <-\nsample_ratio = 0.5\n",
            "telemetry.endpoint",
            "requires endpoint",
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

    #[test]
    fn chat_only_is_an_openai_flag() {
        let openai = "[[providers]]\nname = \"v\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nchat_only = true\n";
        let c = load_str(openai, Path::new("t.toml")).unwrap();
        assert!(c.providers[0].chat_only);
        let plain = openai.replace("chat_only = true\n", "");
        assert!(!load_str(&plain, Path::new("t.toml")).unwrap().providers[0].chat_only);
        let mock = "[[providers]]\nname = \"m\"\nkind = \"mock\"\nchat_only = true\n";
        let e = load_str(mock, Path::new("t.toml")).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.path, "providers[0].chat_only", "{e}");
        assert!(
            e.reason.contains("applies only to kind = \"openai\""),
            "{e}"
        );
    }
}
