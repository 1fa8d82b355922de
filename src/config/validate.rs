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
    Config, ConfigError, ContentFilter, Key, Limits, Log, Model, Provider, ProviderKind, Route,
    Secret, Server, State, Team, Timeouts, Upstream, UsageSink,
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
    let src = Source::new(text, path);
    let raw: raw::Config = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    build(&src, &raw)
}

/// The text being validated, with what is needed to turn a byte offset into a line.
struct Source<'a> {
    text: &'a str,
    file: &'a Path,
    /// Byte offset at which each line starts; the first is 0.
    line_starts: Vec<usize>,
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
    /// crate's span gives the line; the config path is rebuilt from the table headers above it.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let reason = e.message().lines().next().unwrap_or("invalid TOML").to_string();
        let path = e
            .span()
            .map(|span| self.path_at(span.start))
            .unwrap_or_default();
        self.error(e.span(), &path, reason)
    }

    /// Best-effort config path of the byte `offset`: the table of the last header before it
    /// (arrays of tables indexed by how often their header appeared) plus the key written on
    /// that line, if any. Only a hint for a human, so quoted keys and the like are not handled.
    fn path_at(&self, offset: usize) -> String {
        let line = self.line_of(offset);
        let mut headers = HeaderScan::default();
        for text in self.text.lines().take(line - 1) {
            headers.feed(text);
        }
        let current = self.text.lines().nth(line - 1).unwrap_or("");
        headers.feed(current);
        let table = headers.table;
        match line_key(current) {
            Some(key) if table.is_empty() => key.to_string(),
            Some(key) => format!("{table}.{key}"),
            None => table,
        }
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
    let log = log(src, &raw.log)?;
    let (providers, provider_index) = providers(src, &raw.providers)?;
    let model_index = model_index(src, &raw.models)?;
    let models = raw
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| model(src, i, m, &provider_index, &model_index).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let (teams, team_index) = teams(src, &raw.teams)?;
    let (keys, key_index) = keys(src, &raw.keys, &team_index)?;
    let content_filters = content_filters(src, &raw.content_filters)?;
    Ok(Config {
        source: src.file.to_path_buf(),
        hash: hex::encode(Sha256::digest(src.text.as_bytes())),
        server,
        state,
        log,
        providers,
        models,
        teams,
        keys,
        content_filters,
        model_index: model_index
            .into_iter()
            .map(|(name, entry)| (name, entry.model))
            .collect(),
        key_index,
    })
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
            format!("duplicate {what} {:?} (first on line {first})", value.get_ref()),
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
        _ => Err(src.at(
            value,
            path,
            format!("must be a positive integer, not {v}"),
        )),
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

/// A list of globs (team model allow-lists, content-filter team lists): non-empty strings.
fn globs(src: &Source, values: &[Spanned<String>], path: &str) -> Result<Vec<String>> {
    values
        .iter()
        .enumerate()
        .map(|(i, g)| non_blank(src, g, &format!("{path}[{i}]")))
        .collect()
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
        let span = raw.admin_listen.as_ref().or(raw.listen.as_ref()).map(Spanned::span);
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
    })
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
/// one of them is the wildcard address (which binds every interface).
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn state(src: &Source, raw: &raw::State) -> Result<State> {
    if let Some(url) = &raw.redis_url {
        let u = url.get_ref();
        let scheme_ok = u.starts_with("redis://") || u.starts_with("rediss://");
        if !scheme_ok || u.len() <= "rediss://".len() {
            return Err(src.at(
                url,
                "state.redis_url",
                "must be a URL starting with redis:// or rediss://",
            ));
        }
    }
    let backend = raw.backend.as_ref().map_or("memory", |b| b.get_ref().as_str());
    match backend {
        "memory" => {
            let dir = match &raw.dir {
                None => PathBuf::from("data"),
                Some(d) => PathBuf::from(non_blank(src, d, "state.dir")?),
            };
            Ok(State::Memory { dir })
        }
        "redis" => match &raw.redis_url {
            Some(url) => Ok(State::Redis {
                url: url.get_ref().clone(),
            }),
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
fn check_kind_fields(src: &Source, path: &str, p: &raw::Provider, kind: ProviderKind) -> Result<()> {
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
        first_byte: ms(&p.first_byte_timeout_ms, "first_byte_timeout_ms", d.first_byte)?,
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
        return Err(src.at(var, path, format!("{name:?} is not an environment variable name")));
    }
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        Ok(_) => Err(src.at(var, path, format!("environment variable {name} is empty"))),
        Err(std::env::VarError::NotPresent) => Err(src.at(
            var,
            path,
            format!("environment variable {name} is not set"),
        )),
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

/// Parses `http(s)://host[:port][/path]`. Query, fragment and user info are refused: the
/// provider code appends its own path and query, and credentials belong in `api_key_env`.
fn parse_base_url(url: &str) -> std::result::Result<BaseUrl, String> {
    let (tls, rest) = if let Some(rest) = strip_prefix_ci(url, "https://") {
        (true, rest)
    } else if let Some(rest) = strip_prefix_ci(url, "http://") {
        (false, rest)
    } else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    if rest.contains(['?', '#']) {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} must not contain whitespace"));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(format!(
            "{url:?} must not contain user info; put the key in api_key_env"
        ));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = split_host_port(authority, default_port).map_err(|e| format!("{url:?}: {e}"))?;
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let host_header = if port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    Ok(BaseUrl {
        tls,
        host,
        port,
        base_path: path.trim_end_matches('/').to_string(),
        host_header,
    })
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Splits `host[:port]` or `[v6][:port]`; the host is lower-cased (DNS is case-insensitive)
/// and IPv6 literals lose their brackets.
fn split_host_port(authority: &str, default_port: u16) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in the host")?;
        let host = &rest[..end];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        match &rest[end + 1..] {
            "" => (host, None),
            tail => (host, Some(tail.strip_prefix(':').ok_or("junk after ']'")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".to_string());
    }
    if !host.contains(':') && host.contains(['[', ']', ':']) {
        return Err(format!("{host:?} is not a host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("{p:?} is not a port (1-65535)")),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
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
        routes,
    })
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
            return Err(src.at(f, &path, format!("fallback {:?} is listed twice", f.get_ref())));
        }
        out.push(target);
    }
    Ok(out)
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

/// RFC 3339 with `Z` or a numeric offset (`+02:00`). humantime parses UTC only, so the offset
/// is taken off, the rest parsed as UTC, and the offset applied.
fn parse_rfc3339(text: &str) -> std::result::Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 date-time such as 2027-01-01T00:00:00Z");
    let upper = text.trim().to_ascii_uppercase();
    let (local, offset_secs) = split_offset(&upper).ok_or_else(bad)?;
    let utc = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|_| bad())?;
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    // Local time = UTC + offset, so UTC = local - offset.
    let t = if offset_secs >= 0 {
        utc.checked_sub(shift)
    } else {
        utc.checked_add(shift)
    };
    t.ok_or_else(bad)
}

/// Splits `…Z` or `…±HH:MM` into the local part and the offset in seconds.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(local) = s.strip_suffix('Z') {
        return Some((local, 0));
    }
    let at = s.len().checked_sub(6)?;
    let (local, off) = (s.get(..at)?, s.get(at..)?.as_bytes());
    let sign = match off[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |a: u8, b: u8| -> Option<i64> {
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
    };
    if off[3] != b':' {
        return None;
    }
    let (h, m) = (digits(off[1], off[2])?, digits(off[4], off[5])?);
    if h > 23 || m > 59 {
        return None;
    }
    Some((local, sign * (h * 3600 + m * 60)))
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
        None => vec!["*".to_string()],
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
    regex::Regex::new(value.get_ref())
        .map_err(|e| src.at(value, path, format!("invalid regex: {}", regex_reason(&e))))
}

/// The one-line cause of a regex error (its `Display` is a multi-line picture of the pattern).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .map_or_else(|| text.lines().next().unwrap_or("").to_string(), str::to_string)
}
