//! The command line (`spec/gateway.md` §5): `serve`, `check`, `prices`, `key new`, `usage`
//! (`crate::accounting::report`), and `key create|list|update|revoke` ([`keys`]: the runtime
//! key API of a running gateway).
//!
//! Pingora's own `Opt::parse_args()` would reject these flags, so pingora's `Opt` is built
//! here from ours.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod keys;

use clap::{Parser, Subcommand};
use pingora::connectors::ConnectorOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::Opt;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::accounting::usage_log::UsageLog;
use crate::config::reload::{self, Reloader};
use crate::config::snapshot::Snapshot;
use crate::config::{self, Config};
use crate::gateway::Gateway;
use crate::observability::metrics::Metrics;
use crate::observability::telemetry::Telemetry;
use crate::policy::health::Health;
use crate::policy::limits::Limiter;
use crate::policy::runtime_keys::RuntimeKeys;
use crate::response_store::ResponseStore;
use crate::server::admin::AdminApp;
use crate::server::{bind, drain};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An LLM gateway: one endpoint, one kind of key, many vendors"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// The config file.
        #[arg(short, long, default_value = "config/switchyard.toml")]
        config: PathBuf,
        /// Take over the listening sockets of a running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
        /// Once every listener is bound, write `{"listen":"IP:PORT","admin":"IP:PORT"}` here
        /// (atomically). With `listen` or `admin_listen` on port 0 the system picks a free
        /// port, and this file (or the `listening` line on stderr) tells which.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Validate a config file: exit 0, or non-zero with every error (file:line: path: reason)
    /// and their count.
    Check {
        #[arg(short, long, default_value = "config/switchyard.toml")]
        config: PathBuf,
        /// Check everything but the environment, key files and DNS (for CI without secrets):
        /// environment variables and key files are named but not read, hosts not resolved.
        #[arg(long)]
        offline: bool,
    },
    /// Print the prices in force for each model (or the one a name or alias resolves to), in
    /// USD per million tokens, and where each comes from: the config, or a catalogue entry with
    /// its vendor page and date.
    Prices {
        #[arg(short, long, default_value = "config/switchyard.toml")]
        config: PathBuf,
        /// A model name or alias; absent: every model.
        model: Option<String>,
    },
    /// Manage client keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Requests, tokens and cost from the usage log, grouped (the monthly chargeback).
    /// Streams: only the groups are held in memory.
    Usage {
        /// Usage log files, plain or gzip (rotated ones too). None: the config's `[log] usage`
        /// file and its rotated siblings (`usage.jsonl.1`, `usage.jsonl.2.gz`, ...).
        files: Vec<PathBuf>,
        /// Group by these, comma-separated: team, key, model, provider, user, tag, day, month.
        #[arg(long, default_value = "team")]
        by: String,
        /// From this date (YYYY-MM-DD), month (YYYY-MM) or RFC 3339 time (UTC days).
        #[arg(long)]
        since: Option<String>,
        /// To this date or month, included, or until this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::accounting::report::Format,
        /// The config whose usage log is read when no file is named.
        #[arg(short, long, default_value = "config/switchyard.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print a new secret once (on stderr), and the `[[keys]]` stanza that holds only its hash
    /// (on stdout, ready to append to a config).
    New {
        #[arg(long)]
        id: String,
        #[arg(long)]
        team: String,
    },
    #[command(flatten)]
    Runtime(keys::RuntimeKeyCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            config,
            upgrade,
            ready_file,
        } => serve(&config, upgrade, ready_file),
        Command::Check { config, offline } => check(&config, offline),
        Command::Prices { config, model } => prices(&config, model.as_deref()),
        Command::Key {
            command: KeyCommand::New { id, team },
        } => key_new(&id, &team),
        Command::Key {
            command: KeyCommand::Runtime(command),
        } => keys::run(command),
        Command::Usage {
            files,
            by,
            since,
            until,
            format,
            config,
        } => usage(
            &files,
            &by,
            since.as_deref(),
            until.as_deref(),
            format,
            &config,
        ),
    }
}

/// `usage`: the report on stdout (a table ends with what was read; CSV and JSON say it on
/// stderr). Exit 2 with the argument named: an unknown grouping, a bad date, a file that
/// cannot be opened, a config without a usage log file.
fn usage(
    files: &[PathBuf],
    by: &str,
    since: Option<&str>,
    until: Option<&str>,
    format: crate::accounting::report::Format,
    config_path: &std::path::Path,
) -> ExitCode {
    use crate::accounting::report::{self, Format, Query, Totals, Window};
    let query = match (report::parse_by(by), Window::parse(since, until)) {
        (Ok(by), Ok(window)) => Query { by, window },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("switchyard usage: {e}");
            return ExitCode::from(2);
        }
    };
    let files = if files.is_empty() {
        match config_usage_log(config_path).and_then(|log| report::with_rotated(&log)) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("switchyard usage: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        files.to_vec()
    };
    let mut totals = Totals::default();
    for file in &files {
        if let Err(e) = totals.read_file(&query, file) {
            eprintln!("switchyard usage: {e}");
            return ExitCode::from(2);
        }
    }
    for cut in &totals.cut_files {
        eprintln!("switchyard usage: {cut} (read up to there)");
    }
    print!("{}", report::render(&query, &totals, format, files.len()));
    if format != Format::Table {
        eprintln!("{}", totals.summary(files.len()));
    }
    ExitCode::SUCCESS
}

/// The usage log file a config names (`[log] usage`), checked as `check --offline` would.
fn config_usage_log(path: &std::path::Path) -> Result<PathBuf, String> {
    let config = config::check_file(path, config::Mode::Offline).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("--config: {}", lines.join("\n"))
    })?;
    match &config.log.usage {
        Some(config::UsageSink::File(file)) => Ok(file.clone()),
        Some(config::UsageSink::Stdout) => Err(format!(
            "--config: {}: [log] usage is stdout; name the usage log files",
            path.display()
        )),
        None => Err(format!(
            "--config: {}: no [log] usage file; name the usage log files",
            path.display()
        )),
    }
}

fn check(path: &std::path::Path, offline: bool) -> ExitCode {
    let mode = if offline {
        config::Mode::Offline
    } else {
        config::Mode::Start
    };
    match config::check_file(path, mode) {
        Ok(c) => {
            println!(
                "{}: ok ({} providers, {} models, {} teams, {} keys){}",
                path.display(),
                c.providers.len(),
                c.models.len(),
                c.teams.len(),
                c.keys.len(),
                if offline {
                    "; offline: environment variables, key files and hosts not checked"
                } else {
                    ""
                }
            );
            warn_unpriced(&c);
            for provider in &c.providers {
                if let Some(source) = crate::providers::credential_source(provider) {
                    println!("  provider `{}`: credentials from {source}", provider.name);
                }
            }
            for line in credential_sources(&c, offline) {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_errors(path, &errors);
            ExitCode::from(2)
        }
    }
}

/// A warning (on stderr; `check` still succeeds) per model routed to a vendor that has no
/// price from the config nor a catalogue: its spending would never reach `usd_per_month`.
fn warn_unpriced(c: &Config) {
    for m in c.models.iter().filter(|m| m.prices.is_none()) {
        let vendor = m
            .routes
            .iter()
            .any(|r| c.providers[r.provider].kind != config::ProviderKind::Mock);
        if vendor {
            eprintln!(
                "warning: model {:?} has no price (none in the config, no catalogue entry for its routes): it costs 0 and no usd_per_month budget sees it",
                m.name
            );
        }
    }
}

/// `prices`: the config is read offline (no secret is needed to read prices).
fn prices(path: &std::path::Path, model: Option<&str>) -> ExitCode {
    let c = match config::check_file(path, config::Mode::Offline) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(path, &errors);
            return ExitCode::from(2);
        }
    };
    let models: Vec<_> = match model {
        None => c.models.iter().collect(),
        Some(name) => match c.model(name) {
            Some(m) => vec![m],
            None => {
                eprintln!("switchyard prices: no model or alias named {name:?}");
                return ExitCode::from(2);
            }
        },
    };
    for m in models {
        print!(
            "{}",
            crate::accounting::prices::describe(&m.name, m.prices.as_deref())
        );
    }
    ExitCode::SUCCESS
}

/// Which credentials each cloud provider will use, one line each (never a secret): the
/// source its first token came from; offline, what would be looked up.
fn credential_sources(c: &Config, offline: bool) -> Vec<String> {
    c.providers
        .iter()
        .filter_map(|p| {
            let google = p.google.as_ref()?;
            let source = match (&google.tokens, &google.credentials_file) {
                (Some(tokens), _) => tokens.source().to_string(),
                (None, Some(file)) if offline => format!(
                    "service-account key file {} (credentials_file; not read offline)",
                    file.display()
                ),
                (None, _) => "Application Default Credentials (not looked up offline)".to_string(),
            };
            Some(format!(
                "provider {:?}: Google credentials: {source}",
                p.name
            ))
        })
        .collect()
}

/// Every error on its own line (`file:line: path: reason`), then their count.
fn print_errors(path: &std::path::Path, errors: &[config::ConfigError]) {
    for e in errors {
        eprintln!("{e}");
    }
    let n = errors.len();
    eprintln!(
        "{}: {n} error{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
}

/// `key new`: the secret on stderr, shown this once; the `[[keys]]` stanza alone on stdout,
/// so that `switchyard key new ... >> switchyard.toml` never writes the secret into a config.
/// `--id` and `--team` are checked by the rules `check` applies; exit 2 when one breaks them.
fn key_new(id: &str, team: &str) -> ExitCode {
    let (secret, hash) = crate::policy::auth::new_secret();
    let stanza = key_stanza(id, team, &hash);
    if let Err(e) = stanza_is_valid(team, &stanza) {
        eprintln!("switchyard key new: {e}");
        return ExitCode::from(2);
    }
    eprintln!(
        "The secret, shown this once. Give it to the key's owner; Switchyard keeps only its hash:"
    );
    eprintln!("{secret}");
    print!("{stanza}");
    ExitCode::SUCCESS
}

/// The `[[keys]]` stanza of a key: its id, team and the SHA-256 (hex) of its secret.
fn key_stanza(id: &str, team: &str, hash: &str) -> String {
    format!(
        "[[keys]]\nid = {}\nteam = {}\nsha256 = \"{hash}\"\n",
        toml_string(id),
        toml_string(team)
    )
}

/// Validates `stanza` as `check` would, in a config of its own beside a `[[teams]]` named
/// `team`; an error names the flag at fault (`--id`, `--team`) and the rule it breaks.
fn stanza_is_valid(team: &str, stanza: &str) -> Result<(), String> {
    let text = format!("[[teams]]\nname = {}\n\n{stanza}", toml_string(team));
    match config::load_str(&text, std::path::Path::new("key new")) {
        Ok(_) => Ok(()),
        Err(e) => {
            let flag = if e.path.starts_with("keys[0].id") {
                "--id"
            } else {
                "--team"
            };
            Err(format!("{flag}: {}", e.reason))
        }
    }
}

fn toml_string(s: &str) -> String {
    // A JSON string literal is a valid TOML basic string.
    serde_json::to_string(s).unwrap_or_default()
}

fn serve(path: &std::path::Path, upgrade: bool, ready_file: Option<PathBuf>) -> ExitCode {
    init_tracing();
    // rustls needs one process-wide crypto provider (the TLS listeners, the Redis client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match config::check_file(path, config::Mode::Start) {
        Ok(c) => c,
        Err(errors) => {
            print_errors(path, &errors);
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        file = %path.display(),
        hash = %config.hash,
        listen = %config.server.listen,
        admin = %config.server.admin_listen,
        "config loaded"
    );
    config::demo_key::warn_if_exposed(&config);
    let (api, admin) = match (
        bind::reserve(&config.server.listen),
        bind::reserve(&config.server.admin_listen),
    ) {
        (Ok(api), Ok(admin)) => (api, admin),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!(
                "{}: [server]: cannot bind a port for a listener: {e}",
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let server = build_server(path, config, upgrade, &api, &admin);
    bind::announce(api, admin, ready_file);
    server.run_forever()
}

/// Pingora's server with the proxy on `api` (`server.listen`) and the admin app on `admin`
/// (`admin_listen`), each with port 0 replaced by the port reserved for it, and the config
/// reloader watching `path`.
fn build_server(
    path: &std::path::Path,
    config: Config,
    upgrade: bool,
    api: &bind::Reserved,
    admin: &bind::Reserved,
) -> Server {
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut conf = ServerConf {
        threads: config
            .server
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        // Retries are decided by the proxy itself (`RetryPolicy`); this is pingora's bound.
        max_retries: 16,
        // SIGTERM (and the old process of a SIGQUIT upgrade) stops accepting at once, then
        // lets requests in flight run for up to this long: pingora's grace period is the drain.
        // `drain::watch` ends it early, as soon as no connection is left.
        grace_period_seconds: Some(drain::bound_seconds()),
        // Then pingora stops its runtimes: whatever still runs is dropped at its next await.
        graceful_shutdown_timeout_seconds: Some(drain::RUNTIME_STOP_SECONDS),
        ..ServerConf::default()
    };
    let tag = socket_tag(&api.addr);
    conf.pid_file = std::env::temp_dir()
        .join(format!("switchyard-{tag}.pid"))
        .display()
        .to_string();
    conf.upgrade_sock = std::env::temp_dir()
        .join(format!("switchyard-{tag}.sock"))
        .display()
        .to_string();

    let listen = api.addr.clone();
    let admin_listen = admin.addr.clone();
    let metrics = Arc::new(Metrics::new());
    let usage_log = UsageLog::start(config.log.usage.as_ref(), metrics.clone());
    let health = Arc::new(Health::new(&config, metrics.clone()));
    let telemetry = match config
        .telemetry
        .as_ref()
        .map(|t| Telemetry::start(t, &metrics))
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("{}: [telemetry]: {e}", path.display());
            std::process::exit(2);
        }
    };
    let snapshot = Snapshot::new(config);
    let limiter = match Limiter::new(&snapshot.load().state, metrics.clone()) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("{}: [state]: {e}", path.display());
            std::process::exit(2);
        }
    };
    limiter.sync(&snapshot.load());
    let config = snapshot.load();
    let responses =
        match ResponseStore::new(&config.state, config.responses_redis.as_ref(), &metrics) {
            Ok(store) => Arc::new(store),
            Err(e) => {
                eprintln!("{}: [state]: {e}", path.display());
                std::process::exit(2);
            }
        };
    let tls = load_tls(path, snapshot.load().server.tls.as_ref(), &metrics);
    let runtime_keys = open_runtime_keys(path, &snapshot, &limiter);
    let runtime_sync = Arc::clone(&runtime_keys);
    let health_sync = Arc::clone(&health);
    let limiter_sync = Arc::clone(&limiter);
    let limiter_admin = Arc::clone(&limiter);
    // The JWKS of each `[[auth.jwt]]` issuer, fetched from now on (and after reloads).
    crate::policy::jwt::jwks::sync(&snapshot.load());
    let mut listeners: Vec<reload::Listener> = vec![
        Box::new(move |c: &Arc<Config>| health_sync.sync(c)),
        Box::new(move |c: &Arc<Config>| limiter_sync.sync(c)),
        Box::new(|c: &Arc<Config>| crate::policy::jwt::jwks::sync(c)),
        Box::new(move |c: &Arc<Config>| runtime_sync.resync(c)),
    ];
    if let Some(rotation) = &tls {
        // SIGHUP (which always reloads the config) looks at the certificate files too.
        let trigger = rotation.trigger();
        listeners.push(Box::new(move |_: &Arc<Config>| trigger()));
    }
    start_reloader(path, &snapshot, &metrics, listeners);
    let tls_config = snapshot.load().server.tls.clone();

    let mut server = Server::new_with_opt_and_conf(opt, conf);
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        let limiter_flush = Arc::clone(&limiter);
        drain::watch(&server, addr.port(), move || limiter_flush.flush());
    }
    server.bootstrap();
    let conf = server.configuration.clone();

    let mut proxy = Service::new(
        "switchyard".to_string(),
        Gateway::new(
            snapshot.clone(),
            metrics.clone(),
            usage_log,
            health,
            limiter,
            responses,
            ConnectorOptions::from_server_conf(&conf),
        )
        .with_telemetry(telemetry),
    );
    let mut api_listener = ListenerConfig::tcp(listen.clone()).l4_buffer(client_buffers());
    if let Some(options) = api.socket_options() {
        api_listener = api_listener.tcp_socket_options(options);
    }
    let resolver = tls.as_ref().map(|r| Arc::clone(r.resolver()));
    if let Some(resolver) = &resolver {
        // HTTP/2 by ALPN beside HTTP/1.1.
        api_listener = api_listener.tls(tls_settings(
            path,
            crate::server::tls::settings(resolver, true, None),
        ));
    }
    proxy.add_listener(api_listener);
    let mut admin_service = Service::new(
        "switchyard-admin".to_string(),
        pingora::apps::http_app::HttpServer::new_app(AdminApp {
            snapshot: Arc::clone(&snapshot),
            metrics,
            limiter: limiter_admin,
            api_probe: crate::server::admin::probe_address(&listen),
            api_tls: resolver.is_some(),
            runtime_keys,
        }),
    );
    match (&resolver, &tls_config) {
        (Some(resolver), Some(t)) if t.admin => {
            let settings =
                crate::server::tls::settings(resolver, false, t.admin_client_ca.as_deref());
            admin_service.add_tls_with_settings(
                &admin_listen,
                admin.socket_options(),
                tls_settings(path, settings),
            );
        }
        _ => match admin.socket_options() {
            Some(options) => admin_service.add_tcp_with_settings(&admin_listen, options),
            None => admin_service.add_tcp(&admin_listen),
        },
    }
    if let Some(rotation) = tls {
        if let Err(e) = rotation.spawn() {
            tracing::error!("cannot watch the TLS certificate files ({e}); SIGHUP reloads them");
        }
    }
    server.add_service(proxy);
    server.add_service(admin_service);
    server
}

/// The keys issued at runtime, from the `[state]` backend (memory: the keys file; Redis:
/// loaded and then followed by a poller), handed to the limiter whenever they change; exit 2
/// when the store cannot be opened (an unreadable keys file).
fn open_runtime_keys(
    path: &std::path::Path,
    snapshot: &Arc<Snapshot>,
    limiter: &Arc<Limiter>,
) -> Arc<RuntimeKeys> {
    let limiter = Arc::clone(limiter);
    let on_change = Box::new(move |c: &Config, keys| limiter.sync_runtime_keys(c, keys));
    RuntimeKeys::open(snapshot, on_change).unwrap_or_else(|e| {
        eprintln!("{}: [state] runtime keys: {e}", path.display());
        std::process::exit(2);
    })
}

/// The certificate pair of `[server] tls_cert`/`tls_key`, loaded for serving (validation read
/// it a moment ago; a file that changed since is refused the same way: exit 2).
fn load_tls(
    path: &std::path::Path,
    tls: Option<&crate::config::TlsConfig>,
    metrics: &Arc<Metrics>,
) -> Option<crate::server::tls::Rotation> {
    let t = tls?;
    match crate::server::tls::Rotation::load(t, Arc::clone(metrics)) {
        Ok(rotation) => {
            metrics.register_tls();
            Some(rotation)
        }
        Err(e) => {
            eprintln!("{}: [server] TLS: {e}", path.display());
            std::process::exit(2);
        }
    }
}

/// The settings, or exit 2 with the reason (an unreadable client CA file).
fn tls_settings(
    path: &std::path::Path,
    settings: Result<pingora::listeners::tls::TlsSettings, String>,
) -> pingora::listeners::tls::TlsSettings {
    settings.unwrap_or_else(|e| {
        eprintln!("{}: [server] TLS: {e}", path.display());
        std::process::exit(2);
    })
}

/// Buffers of each client connection. pingora's default reads through a 64 KiB buffer that
/// lives as long as the connection, although its HTTP/1 layer reads headers and bodies into
/// buffers of its own: the socket is read directly instead (9,750 open streams: 708 → 627 MB
/// RSS). Writes keep pingora's small (one-MSS) buffer.
fn client_buffers() -> L4BufferSettings {
    L4BufferSettings {
        read: Some(0),
        write: None,
    }
}

/// Publishes the first config's metrics and starts the hot reloader's thread (it returns at
/// once; the thread lives until the process exits). Without it the gateway still serves, on
/// the config it started with.
fn start_reloader(
    path: &std::path::Path,
    snapshot: &Arc<Snapshot>,
    metrics: &Arc<Metrics>,
    listeners: Vec<reload::Listener>,
) {
    // State that outlives a reload (the limiter, the usage log sink) registers here.
    let reloader = Reloader::new(path, Arc::clone(snapshot), Arc::clone(metrics), listeners);
    reloader.publish_current();
    if let Err(e) = reloader.spawn() {
        tracing::error!(
            "cannot start the config reloader ({e}); hot reload is off until a restart"
        );
    }
}

/// A file-name-safe tag of the listen address, so that instances on different ports on one
/// machine do not share a pid file or upgrade socket.
fn socket_tag(listen: &str) -> String {
    listen
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// pingora's crates, whose debug and trace logs print request headers (secrets included).
const PINGORA_TARGETS: &[&str] = &[
    "pingora",
    "pingora_core",
    "pingora_proxy",
    "pingora_http",
    "pingora_pool",
    "pingora_error",
    "pingora_rustls",
    "pingora_runtime",
    "pingora_timeout",
];

/// Logs to stderr; the level comes from `RUST_LOG` (default `info`), the format from
/// `SWITCHYARD_LOG_FORMAT` (`text` or `json`).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // pingora logs whole request headers at debug and trace, the client's and the provider's
    // keys among them: its crates are capped at info whatever RUST_LOG asks.
    for target in PINGORA_TARGETS {
        if let Ok(d) = format!("{target}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let json = std::env::var("SWITCHYARD_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
