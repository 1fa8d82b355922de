//! `[[providers]]`: names, kinds and the fields each kind takes, timeouts, the API key read
//! from its environment variable or its file, and `base_url` parsed and resolved once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::checks::{name, non_blank, opt, positive, unique};
use super::{Mode, Result, Source};
use crate::config::raw;
use crate::config::{
    GoogleCloud, HeaderPattern, Provider, ProviderKind, Secret, Timeouts, Upstream,
};
use crate::providers::{self, vendor::ConfigFields, vendor::Need};

/// The providers that passed, by their position in the file, and the key files they read.
pub(super) struct Providers {
    pub(super) list: Vec<Arc<Provider>>,
    /// Provider name → index into `list` (every well-named provider, also one that failed
    /// otherwise, so that its routes are not reported as naming no provider).
    pub(super) index: HashMap<String, usize>,
    /// Every `api_key_file`, in order ([`crate::config::Config::key_files`]).
    pub(super) key_files: Vec<PathBuf>,
}

/// Checks every provider on its own, recording each one's first error in `src`.
pub(super) fn providers(src: &Source, raw: &[raw::Provider]) -> Providers {
    let mut seen = HashMap::new();
    let mut out = Providers {
        list: Vec::with_capacity(raw.len()),
        index: HashMap::new(),
        key_files: Vec::new(),
    };
    for (i, p) in raw.iter().enumerate() {
        let path = format!("providers[{i}]");
        let named = src
            .keep(name(src, &p.name, &format!("{path}.name")))
            .and_then(|_| {
                src.keep(unique(
                    src,
                    &mut seen,
                    &p.name,
                    &format!("{path}.name"),
                    "provider",
                ))
            });
        if named.is_some() {
            out.index.insert(p.name.get_ref().clone(), i);
        }
        if let Some((provider, key_file)) = src.keep(provider(src, &path, p)) {
            out.list.push(Arc::new(provider));
            out.key_files.extend(key_file);
        }
    }
    out
}

/// One provider, and the key file it read its key from (if any).
fn provider(src: &Source, path: &str, p: &raw::Provider) -> Result<(Provider, Option<PathBuf>)> {
    let field = |name: &str| format!("{path}.{name}");
    let name = name(src, &p.name, &field("name"))?;
    let kind = provider_kind(p.kind.get_ref()).ok_or_else(|| {
        src.at(
            &p.kind,
            &field("kind"),
            format!(
                "unknown provider kind {:?} (expected {})",
                p.kind.get_ref(),
                kind_names()
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
    let forward_headers = forward_headers(src, path, &p.forward_headers)?;
    let (api_key, api_key_env, api_key_file) = match (&p.api_key_env, &p.api_key_file) {
        (None, None) => (None, None, None),
        (Some(_), Some(file)) => {
            return Err(src.at(
                file,
                &field("api_key_file"),
                "give either api_key_env or api_key_file, not both",
            ))
        }
        (Some(var), None) => {
            let key = api_key(src, var, &field("api_key_env"))?;
            (key, Some(var.get_ref().clone()), None)
        }
        (None, Some(file)) => {
            let (key, path) = api_key_file(src, file, &field("api_key_file"))?;
            (key, None, Some(path))
        }
    };
    let mut google = google(src, path, p, kind)?;
    let vendor = providers::vendor(kind);
    let upstream = match (&p.base_url, vendor.fields().base_url) {
        (Some(url), _) => Some(upstream(src, url, &field("base_url"))?),
        (None, Need::Refused) => None,
        (None, Need::Optional) => match vendor.default_base_url(p) {
            // The kind's default, made from fields already checked: spanned at the name.
            Some(url) => Some(upstream(
                src,
                &Spanned::new(p.name.span(), url),
                &field("base_url"),
            )?),
            None => None,
        },
        (None, Need::Required) => {
            return Err(src.at(
                &p.name,
                &field("base_url"),
                format!("kind = {kind_name:?} requires base_url"),
            ))
        }
    };
    let bedrock = bedrock(src, path, p, kind)?;
    if let Some(google) = &mut google {
        // Last: online, this fetches the first access token (a thread of its own thereafter).
        google.tokens = google_tokens(src, path, p, &name, google.credentials_file.as_deref())?;
    }
    let provider = Provider {
        name,
        kind,
        upstream,
        api_key,
        api_key_env,
        timeouts,
        api_version,
        default_max_tokens,
        chat_only: p.chat_only.as_ref().is_some_and(|v| *v.get_ref()),
        forward_headers,
        bedrock,
        google,
    };
    Ok((provider, api_key_file))
}

/// A `bedrock` provider's settings: `region` (required, an AWS region), `bedrock_api`
/// (`invoke` or `converse`), and, without an API key (`api_key_env`/`api_key_file`), its AWS
/// credentials found now by AWS's chain ([`providers::bedrock::credentials::load`]): none
/// found is an error at the provider's `kind`, as a missing key is. Offline, no credential is
/// looked for. Other kinds take neither field.
fn bedrock(
    src: &Source,
    path: &str,
    p: &raw::Provider,
    kind: ProviderKind,
) -> Result<Option<providers::bedrock::Settings>> {
    let field = |name: &str| format!("{path}.{name}");
    if kind != ProviderKind::Bedrock {
        for (value, name) in [(&p.region, "region"), (&p.bedrock_api, "bedrock_api")] {
            if let Some(v) = value {
                return Err(src.at(
                    v,
                    &field(name),
                    format!(
                        "{name} applies only to kind = \"bedrock\", not {:?}",
                        p.kind.get_ref()
                    ),
                ));
            }
        }
        return Ok(None);
    }
    let Some(region) = &p.region else {
        return Err(src.at(
            &p.kind,
            &field("region"),
            "kind = \"bedrock\" requires region (the AWS region, e.g. \"us-east-1\")",
        ));
    };
    if !providers::bedrock::valid_region(region.get_ref()) {
        return Err(src.at(
            region,
            &field("region"),
            format!(
                "{:?} is not an AWS region (like \"us-east-1\")",
                region.get_ref()
            ),
        ));
    }
    let api = match &p.bedrock_api {
        None => None,
        Some(v) => Some(providers::bedrock::Api::parse(v.get_ref()).ok_or_else(|| {
            src.at(
                v,
                &field("bedrock_api"),
                format!(
                    "unknown bedrock_api {:?} (expected \"invoke\" or \"converse\")",
                    v.get_ref()
                ),
            )
        })?),
    };
    let has_key = p.api_key_env.is_some() || p.api_key_file.is_some();
    let credentials = if has_key || !src.online() {
        None
    } else {
        Some(
            providers::bedrock::credentials::load(region.get_ref())
                .map_err(|reason| src.at(&p.kind, &field("kind"), reason))?,
        )
    };
    Ok(Some(providers::bedrock::Settings {
        region: region.get_ref().clone(),
        api,
        credentials,
    }))
}

/// The kind named `s` (its vendor's [`crate::providers::Vendor::name`]).
fn provider_kind(s: &str) -> Option<ProviderKind> {
    ProviderKind::ALL
        .into_iter()
        .find(|k| providers::vendor(*k).name() == s)
}

/// The kind names as a config error lists them: `openai, azure, anthropic, gemini, bedrock, vertex or
/// mock`.
fn kind_names() -> String {
    let names: Vec<&str> = ProviderKind::ALL
        .iter()
        .map(|k| providers::vendor(*k).name())
        .collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The kinds whose [`ConfigFields`] pass `takes`, as an error names them: `kind = "azure"`,
/// or `kind = "a" or "b"`.
fn kinds_taking(takes: impl Fn(&ConfigFields) -> bool) -> String {
    let names: Vec<String> = ProviderKind::ALL
        .iter()
        .map(|k| providers::vendor(*k))
        .filter(|v| takes(&v.fields()))
        .map(|v| format!("{:?}", v.name()))
        .collect();
    format!("kind = {}", names.join(" or "))
}

/// Fields that only some kinds take ([`ConfigFields`]): set on another kind they would be
/// silently unused, which is almost always a copy-paste mistake, so they are refused like
/// unknown fields.
fn check_kind_fields(
    src: &Source,
    path: &str,
    p: &raw::Provider,
    kind: ProviderKind,
) -> Result<()> {
    let field = |name: &str| format!("{path}.{name}");
    let kind_name = p.kind.get_ref();
    let takes = providers::vendor(kind).fields();
    if let (Some(url), Need::Refused) = (&p.base_url, takes.base_url) {
        return Err(src.at(
            url,
            &field("base_url"),
            format!("a {kind_name} provider takes no base_url"),
        ));
    }
    if let (Some(env), false) = (&p.api_key_env, takes.api_key_env) {
        return Err(src.at(
            env,
            &field("api_key_env"),
            format!("a {kind_name} provider takes no api_key_env"),
        ));
    }
    // A kind that takes a key from the environment takes it from a file just as well.
    if let (Some(file), false) = (&p.api_key_file, takes.api_key_env) {
        return Err(src.at(
            file,
            &field("api_key_file"),
            format!("a {kind_name} provider takes no api_key_file"),
        ));
    }
    match (&p.api_version, takes.api_version) {
        (None, true) => {
            return Err(src.at(
                &p.kind,
                &field("api_version"),
                format!("kind = {kind_name:?} requires api_version"),
            ))
        }
        (Some(v), false) => {
            return Err(src.at(
                v,
                &field("api_version"),
                format!(
                    "api_version applies only to {}, not {kind_name:?}",
                    kinds_taking(|f| f.api_version)
                ),
            ))
        }
        _ => {}
    }
    if let (Some(v), false) = (&p.chat_only, takes.chat_only) {
        return Err(src.at(
            v,
            &field("chat_only"),
            format!(
                "chat_only applies only to {}, not {kind_name:?}",
                kinds_taking(|f| f.chat_only)
            ),
        ));
    }
    if let (Some(v), false) = (p.forward_headers.first(), takes.forward_headers) {
        return Err(src.at(
            v,
            &field("forward_headers"),
            format!("a {kind_name} provider has no upstream to forward headers to"),
        ));
    }
    if !takes.google {
        for (value, name) in [
            (&p.project, "project"),
            (&p.location, "location"),
            (&p.credentials_file, "credentials_file"),
        ] {
            if let Some(v) = value {
                return Err(src.at(
                    v,
                    &field(name),
                    format!(
                        "{name} applies only to {}, not {kind_name:?}",
                        kinds_taking(|f| f.google)
                    ),
                ));
            }
        }
    }
    if let (Some(v), false) = (&p.default_max_tokens, takes.default_max_tokens) {
        return Err(src.at(
            v,
            &field("default_max_tokens"),
            format!(
                "default_max_tokens applies only to {}, not {kind_name:?}",
                kinds_taking(|f| f.default_max_tokens)
            ),
        ));
    }
    Ok(())
}

/// A Google Cloud kind's `project`, `location` and `credentials_file` (`None` for other
/// kinds, which [`check_kind_fields`] refuses them on), its tokens not started yet
/// ([`google_tokens`]). `project` and `location` are required; `location` goes into the
/// endpoint's host name.
fn google(
    src: &Source,
    path: &str,
    p: &raw::Provider,
    kind: ProviderKind,
) -> Result<Option<GoogleCloud>> {
    if !providers::vendor(kind).fields().google {
        return Ok(None);
    }
    let field = |n: &str| format!("{path}.{n}");
    let kind_name = p.kind.get_ref();
    let required = |v: &Option<Spanned<String>>, n: &str| match v {
        Some(v) => non_blank(src, v, &field(n)),
        None => Err(src.at(
            &p.kind,
            &field(n),
            format!("kind = {kind_name:?} requires {n}"),
        )),
    };
    let project = required(&p.project, "project")?;
    let location = required(&p.location, "location")?;
    if let Some(at) = &p.project {
        if !providers::vertex::is_project(&project) {
            return Err(src.at(
                at,
                &field("project"),
                format!(
                    "{project:?} is not a Google Cloud project id (lower case letters, digits and -, like \"my-project\")"
                ),
            ));
        }
    }
    if let Some(at) = &p.location {
        if !providers::vertex::is_location(&location) {
            return Err(src.at(
                at,
                &field("location"),
                format!(
                    "{location:?} is not a Google Cloud location (like \"us-east5\" or \"global\")"
                ),
            ));
        }
    }
    let credentials_file = opt(p.credentials_file.as_ref(), |v| {
        non_blank(src, v, &field("credentials_file"))
    })?
    .map(PathBuf::from);
    Ok(Some(GoogleCloud {
        project,
        location,
        credentials_file,
        tokens: None,
    }))
}

/// Online, the provider's credentials found ([`providers::vertex::auth::find`]) and its first
/// access token fetched now, so that a missing or unusable credential fails the load, not the
/// first request (the error at `credentials_file`, or the provider's name when none is
/// given); offline, nothing.
fn google_tokens(
    src: &Source,
    path: &str,
    p: &raw::Provider,
    name: &str,
    credentials_file: Option<&std::path::Path>,
) -> Result<Option<Arc<providers::vertex::auth::Tokens>>> {
    use providers::vertex::auth;
    if !src.online() {
        return Ok(None);
    }
    let at = p.credentials_file.as_ref().map_or(&p.name, |f| f);
    let field = format!("{path}.credentials_file");
    let source = auth::find(credentials_file).map_err(|e| src.at(at, &field, e))?;
    let tokens = auth::Tokens::start(name, source).map_err(|e| src.at(at, &field, e))?;
    Ok(Some(tokens))
}

/// `forward_headers`: each entry a header name (RFC 9110 token characters, any case, kept
/// lower case) or a name prefix with a trailing `*`; a name or prefix that is (or could
/// match) a header that never goes upstream ([`providers::headers::refused`]) is refused,
/// and so is a `*` anywhere else.
fn forward_headers(
    src: &Source,
    path: &str,
    raw: &[Spanned<String>],
) -> Result<Vec<HeaderPattern>> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let field = format!("{path}.forward_headers[{i}]");
        let text = entry.get_ref().trim().to_ascii_lowercase();
        let (name, prefix) = match text.strip_suffix('*') {
            Some(p) => (p, true),
            None => (text.as_str(), false),
        };
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'+-.^_`|~".contains(c);
        if (!prefix && name.is_empty()) || !name.chars().all(token) {
            return Err(src.at(
                entry,
                &field,
                format!(
                    "{:?} is not a header name or a `prefix*` (letters, digits and `-`, a `*` only at the end)",
                    entry.get_ref()
                ),
            ));
        }
        let pattern = if prefix {
            HeaderPattern::Prefix(name.to_string())
        } else {
            HeaderPattern::Exact(name.to_string())
        };
        if let Some(why) = providers::headers::refused(&pattern) {
            return Err(src.at(entry, &field, why));
        }
        out.push(pattern);
    }
    Ok(out)
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
/// Offline ([`Mode::Offline`]) only the name is checked and no key is returned. On a reload,
/// a variable the process does not have is reported as needing a restart: a process's
/// environment is fixed when it starts (POSIX `exec`), so no reload can ever see it.
pub(super) fn api_key(src: &Source, var: &Spanned<String>, path: &str) -> Result<Option<Secret>> {
    let name = var.get_ref();
    let valid_name = !name.is_empty() && !name.contains(['=', '\0']);
    if !valid_name {
        return Err(src.at(
            var,
            path,
            format!("{name:?} is not an environment variable name"),
        ));
    }
    if !src.online() {
        return Ok(None);
    }
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
        Ok(_) => Err(src.at(var, path, format!("environment variable {name} is empty"))),
        Err(std::env::VarError::NotPresent) if src.mode == Mode::Reload => Err(src.at(
            var,
            path,
            format!(
                "environment variable {name} is not set in the running process (its \
                 environment is fixed at start): restart the process (or use api_key_file)"
            ),
        )),
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

/// Reads the API key from `api_key_file` now (at start and on every reload), with its
/// trailing line break(s) trimmed: a Kubernetes Secret mounted as a file, or a file written
/// by `echo`. Offline ([`Mode::Offline`]) the file is not read. The file's content never
/// enters a message: an unreadable file is reported with the OS's reason only.
fn api_key_file(
    src: &Source,
    file: &Spanned<String>,
    path: &str,
) -> Result<(Option<Secret>, PathBuf)> {
    let name = non_blank(src, file, path)?;
    let at = PathBuf::from(&name);
    if !src.online() {
        return Ok((None, at));
    }
    let bytes = std::fs::read(&at)
        .map_err(|e| src.at(file, path, format!("cannot read {name}: {}", io_reason(&e))))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(src.at(file, path, format!("{name} is not UTF-8 text")));
    };
    let key = text.trim_end_matches(['\n', '\r']);
    if key.trim().is_empty() {
        return Err(src.at(file, path, format!("{name} is empty")));
    }
    if key.contains(['\n', '\r']) {
        return Err(src.at(
            file,
            path,
            format!("{name} holds more than one line: it must hold the key alone"),
        ));
    }
    Ok((Some(Secret::new(key.to_string())), at))
}

/// An I/O error's reason without the OS error code decoration (`No such file or directory`).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// `base_url` split into its parts, before name resolution.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BaseUrl {
    pub(super) tls: bool,
    /// Without brackets for an IPv6 literal.
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) base_path: String,
    pub(super) host_header: String,
}

fn upstream(src: &Source, url: &Spanned<String>, path: &str) -> Result<Upstream> {
    let parsed = parse_base_url(url.get_ref()).map_err(|reason| src.at(url, path, reason))?;
    let addrs = resolve_unless_offline(src, &parsed.host, parsed.port)
        .map_err(|reason| src.at(url, path, reason))?;
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
pub(super) fn parse_base_url(text: &str) -> std::result::Result<BaseUrl, String> {
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

/// [`resolve`], except offline ([`Mode::Offline`]): an IP address is taken as it is and a
/// host name is not resolved (no address).
pub(super) fn resolve_unless_offline(
    src: &Source,
    host: &str,
    port: u16,
) -> std::result::Result<Vec<SocketAddr>, String> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
        Err(_) if !src.online() => Ok(Vec::new()),
        Err(_) => resolve(host, port),
    }
}

/// Resolves the upstream's addresses once, at load: pingora's `HttpPeer::new` would resolve
/// on every request, blocking, and panic on failure.
pub(super) fn resolve(host: &str, port: u16) -> std::result::Result<Vec<SocketAddr>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testing::*;

    // --- providers ---------------------------------------------------------------------------

    fn provider(fields: &str) -> String {
        format!("[[providers]]\nname = \"v\"\n{fields}")
    }

    #[test]
    fn provider_kind_and_kind_fields() {
        rejects(
            &provider("kind = \"sagemaker\" # <-\n"),
            "providers[0].kind",
            "unknown provider kind \"sagemaker\"",
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
    fn vertex_takes_a_project_and_a_location() {
        let vertex = |fields: &str| {
            format!("[[providers]]\nname = \"vx\"\nkind = \"vertex\" # <-\n{fields}")
        };
        rejects(
            &vertex("location = \"us-east5\"\n"),
            "providers[0].project",
            "kind = \"vertex\" requires project",
        );
        rejects(
            &vertex("project = \"p\"\n"),
            "providers[0].location",
            "kind = \"vertex\" requires location",
        );
        let bad = "[[providers]]\nname = \"vx\"\nkind = \"vertex\"\nproject = \"p\"\nlocation = \"us east\" # <-\n";
        rejects(
            bad,
            "providers[0].location",
            "is not a Google Cloud location",
        );
        for project in ["..", "a/b", "p?x", "my project", ".hidden", "My-Project"] {
            let bad = format!("[[providers]]\nname = \"vx\"\nkind = \"vertex\"\nproject = {project:?} # <-\nlocation = \"global\"\n");
            rejects(
                &bad,
                "providers[0].project",
                "is not a Google Cloud project id",
            );
        }
        let blank = "[[providers]]\nname = \"vx\"\nkind = \"vertex\"\nproject = \"p\"\nlocation = \"global\"\ncredentials_file = \" \" # <-\n";
        rejects(blank, "providers[0].credentials_file", "must not be empty");
        let keyed = "[[providers]]\nname = \"vx\"\nkind = \"vertex\"\nproject = \"p\"\nlocation = \"global\"\napi_key_env = \"K\" # <-\n";
        rejects(keyed, "providers[0].api_key_env", "takes no api_key_env");
        let elsewhere = "[[providers]]\nname = \"g\"\nkind = \"gemini\"\nbase_url = \"http://127.0.0.1\"\nproject = \"p\" # <-\n";
        rejects(
            elsewhere,
            "providers[0].project",
            "project applies only to kind = \"vertex\", not \"gemini\"",
        );

        // Offline: no credentials are read; the endpoint is made from the location.
        let ok = |location: &str| {
            let text = format!("[[providers]]\nname = \"vx\"\nkind = \"vertex\"\nproject = \"my-project\"\nlocation = \"{location}\"\ncredentials_file = \"/no/such/key.json\"\n");
            super::super::check_str(&text, Path::new(FILE), super::super::Mode::Offline).unwrap()
        };
        let c = ok("europe-west1");
        let p = c.provider(0);
        let up = p.upstream.as_ref().unwrap();
        assert_eq!(
            (up.host.as_str(), up.port, up.tls),
            ("europe-west1-aiplatform.googleapis.com", 443, true)
        );
        let google = p.google.as_ref().unwrap();
        assert_eq!(
            (google.project.as_str(), google.location.as_str()),
            ("my-project", "europe-west1")
        );
        assert_eq!(
            google.credentials_file,
            Some(PathBuf::from("/no/such/key.json"))
        );
        assert!(google.tokens.is_none());
        assert_eq!(
            ok("global").provider(0).upstream.as_ref().unwrap().host,
            "aiplatform.googleapis.com"
        );
    }

    #[test]
    fn kind_only_fields_name_the_kinds_that_take_them() {
        assert_eq!(kinds_taking(|f| f.api_version), "kind = \"azure\"");
        assert_eq!(
            kinds_taking(|f| f.base_url != Need::Refused),
            "kind = \"openai\" or \"azure\" or \"anthropic\" or \"gemini\" or \"bedrock\" or \"vertex\""
        );
        assert_eq!(
            kind_names(),
            "openai, azure, anthropic, gemini, bedrock, vertex or mock"
        );
        assert_eq!(provider_kind("gemini"), Some(ProviderKind::Gemini));
        assert_eq!(provider_kind("bedrock"), Some(ProviderKind::Bedrock));
        assert_eq!(provider_kind("sagemaker"), None);
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

    #[test]
    fn forward_headers_take_names_and_prefixes_but_never_credentials() {
        let with = |list: &str| {
            format!("[[providers]]\nname = \"v\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nforward_headers = {list}\n")
        };
        let c = load_str(
            &with(r#"["X-Portkey-Trace", "x-mock-*"]"#),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            c.providers[0].forward_headers,
            [
                HeaderPattern::Exact("x-portkey-trace".into()),
                HeaderPattern::Prefix("x-mock-".into())
            ]
        );
        for (list, says) in [
            (
                r#"["authorization"]"#,
                "`authorization` never goes upstream",
            ),
            (r#"["ok", "Cookie"]"#, "`cookie` never goes upstream"),
            (r#"["openai-project"]"#, "never goes upstream"),
            (r#"["x-forwarded-*"]"#, "would match"),
            (r#"["x-*"]"#, "would match"),
            (r#"["*"]"#, "would match"),
            (r#"["x-switchyard-user"]"#, "never goes upstream"),
            (r#"["te"]"#, "never goes upstream"),
            (r#"["x-*-y"]"#, "is not a header name"),
            (r#"["a b"]"#, "is not a header name"),
            (r#"[""]"#, "is not a header name"),
        ] {
            let e = load_str(&with(list), Path::new("t.toml")).unwrap_err();
            assert!(e.path.starts_with("providers[0].forward_headers["), "{e}");
            assert!(e.reason.contains(says), "{list}: {e}");
        }
    }

    #[test]
    fn provider_api_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        let with = |path: &str| {
            provider(&format!(
                "kind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_file = \"{path}\" # <-\n"
            ))
        };
        let text = with(&file.display().to_string());
        std::fs::write(&file, "sk-from-file\n").unwrap();
        let c = load(&text).unwrap();
        let p = c.provider(0);
        assert_eq!(p.api_key.as_ref().unwrap().expose(), "sk-from-file");
        assert_eq!(
            (p.api_key_env.as_deref(), c.key_files.clone()),
            (None, vec![file.clone()])
        );
        std::fs::write(&file, "sk-crlf\r\n").unwrap();
        assert_eq!(
            load(&text)
                .unwrap()
                .provider(0)
                .api_key
                .as_ref()
                .unwrap()
                .expose(),
            "sk-crlf"
        );

        let path = "providers[0].api_key_file";
        std::fs::write(&file, "\n").unwrap();
        rejects(&text, path, "is empty");
        std::fs::write(&file, "sk-SECRET-one\nsk-SECRET-two\n").unwrap();
        rejects(&text, path, "more than one line");
        assert!(!reject(&text).to_string().contains("SECRET"));
        rejects(
            &with("/no/such/key"),
            path,
            "cannot read /no/such/key: no such file",
        );
        rejects(&with(" "), path, "must not be empty");
        rejects(
            &provider("kind = \"mock\"\napi_key_file = \"k\" # <-\n"),
            path,
            "mock provider takes no api_key_file",
        );
        rejects(
            &provider(
                "kind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"X\"\napi_key_file = \"k\" # <-\n",
            ),
            path,
            "either api_key_env or api_key_file, not both",
        );
    }

    /// A reload cannot see a variable the process was started without: it says so.
    #[test]
    fn a_reload_missing_a_variable_asks_for_a_restart() {
        let unset = "SWITCHYARD_TEST_RELOAD_NEVER_SET";
        let text = provider(&format!(
            "kind = \"openai\"\nbase_url = \"http://127.0.0.1\"\napi_key_env = \"{unset}\"\n"
        ));
        let e = load_str_for_reload(&text, Path::new(FILE)).unwrap_err();
        assert!(e.reason.contains(unset), "{e}");
        assert!(
            e.reason
                .contains("restart the process (or use api_key_file)"),
            "{e}"
        );
        let e = load(&text).unwrap_err();
        assert!(!e.reason.contains("restart"), "{e}");
    }
}
