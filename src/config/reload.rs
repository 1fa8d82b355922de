//! Hot reload: the config file is watched, and SIGHUP is heard, by one background thread that
//! validates the whole new file and swaps it into the [`Snapshot`] in one atomic store.
//!
//! - What triggers a reload: a change to the config file seen by `notify` (in-place writes,
//!   editors' write-to-temp-and-rename, the Kubernetes ConfigMap `..data` symlink swap), after
//!   [`DEBOUNCE`] without further events; or SIGHUP, at once.
//! - The watch is [`crate::config::watch`]'s: the file's directory, not the file (a rename over
//!   the file, or a swap of the `..data` symlink it points through, replaces the inode a file
//!   watch would be attached to); events naming other files (logs written next to the config)
//!   are ignored.
//! - A file event whose bytes hash to the running config's hash (or to the last rejected
//!   file's) changes nothing; SIGHUP always reloads (it also re-resolves provider addresses
//!   and rereads the key files).
//! - The vendor key files the running config names (`api_key_file`), and its price catalogue
//!   (`[pricing] catalogue`, stored again when its bytes changed), are watched the same way
//!   (a Kubernetes Secret volume swaps `..data` as a ConfigMap volume does): a change to one
//!   reloads the config, which rereads every key file, and the new config is stored only when
//!   a key differs ([`Trigger::KeyFile`]); the next request uses the new key. A key's value is
//!   never logged. The watched files follow the running config after each reload.
//! - Validation is `switchyard check`'s, except that the PEM files the config names are not
//!   read ([`config::Mode::Reload`]): the TLS settings need a restart, the pair's
//!   contents are reloaded by `tls::Rotation`, and a bad certificate on disk must not block an
//!   urgent edit (disabling a leaked key). An `api_key_env` variable the process does not have
//!   is refused with "restart the process (or use api_key_file)": the environment of a running
//!   process is fixed when it starts.
//! - A bad file is logged (one line per error, `file:line: path: reason`), counted once as
//!   `switchyard_config_reloads_total{result="failure"}`, and the last good config keeps serving.
//! - Fields that pingora binds or the process starts once ([`restart_only_changes`]: listen
//!   addresses, threads, the TLS settings (not the certificate files' contents: `tls::Rotation`
//!   reloads those), the state backend, the usage log sink, `[telemetry]`) keep their running values; each
//!   change is reported as needing a restart.
//! - Requests in flight keep the config they took (`Snapshot::load` once per request), so a
//!   reload never changes one half-way.
//!
//! Code that keeps state derived from the config (the limiter, the usage log sink) registers a
//! [`Listener`]; it is called after each successful store.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::snapshot::Snapshot;
use crate::config::watch::{FileWatch, DEBOUNCE, MAX_DELAY};
use crate::config::{self, Config, ConfigError, State, UsageSink};
use crate::observability::metrics::Metrics;

/// How often provider host names are resolved again. Addresses are resolved when a config
/// loads (pingora's peers take socket addresses); a vendor or a Kubernetes headless Service
/// can move, so the running config is re-resolved this often and swapped in when an address
/// changed.
const DNS_REFRESH: Duration = Duration::from_secs(30);

/// How long `spawn` waits for the thread to hear SIGHUP and watch the file.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Called with the new config after each successful reload, on the reloader's thread: keep it
/// short, and never block on a request. Panics are caught and logged.
pub type Listener = Box<dyn Fn(&Arc<Config>) + Send + Sync>;

/// What set off a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A change in the config's directory (after debouncing).
    FileEvent,
    /// SIGHUP: reload even if the file's bytes did not change.
    Signal,
    /// The periodic re-resolution of provider host names found a changed address.
    Addresses,
    /// A change to one of the running config's key files (`api_key_file`), after debouncing.
    KeyFile,
}

/// What a reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file's bytes are those of the running (or last rejected) config: nothing to do.
    Unchanged,
    /// A new config is serving; its hash.
    Applied { hash: String },
    /// The file was unreadable or invalid; the running config keeps serving.
    Rejected,
}

/// Reloads the config at `path` into `snapshot`. Built by `cli::serve`, then [`Reloader::spawn`]ed.
pub struct Reloader {
    path: PathBuf,
    snapshot: Arc<Snapshot>,
    metrics: Arc<Metrics>,
    listeners: Vec<Listener>,
    /// Hash of the last file that failed validation, so that repeated events about the same
    /// bad bytes do not log and count the same failure again.
    last_rejected: Option<String>,
}

impl Reloader {
    /// `path` as given on the command line (it names the file in log lines and errors);
    /// `listeners` are called after every successful reload, in order.
    pub fn new(
        path: &Path,
        snapshot: Arc<Snapshot>,
        metrics: Arc<Metrics>,
        listeners: Vec<Listener>,
    ) -> Reloader {
        Reloader {
            path: path.to_path_buf(),
            snapshot,
            metrics,
            listeners,
            last_rejected: None,
        }
    }

    /// Sets `switchyard_config_info{hash}`, the last-success timestamp and the counters at 0
    /// ([`Metrics::preset`]) from the running config (at startup, so that the metrics describe
    /// the first config too).
    pub fn publish_current(&self) {
        publish(&self.metrics, &self.snapshot);
    }

    /// One reload attempt: read, compare, validate, keep restart-only fields, store, notify.
    pub fn reload(&mut self, trigger: Trigger) -> Outcome {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => return self.reject(trigger, &self.unreadable(&e.to_string())),
        };
        let hash = hex::encode(Sha256::digest(&bytes));
        let running = self.snapshot.load();
        let seen = hash == running.hash || self.last_rejected.as_ref() == Some(&hash);
        if trigger == Trigger::FileEvent && seen {
            tracing::debug!(file = %self.path.display(), %hash, "config file unchanged");
            return Outcome::Unchanged;
        }
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                self.last_rejected = Some(hash);
                return self.reject(trigger, &self.unreadable("not UTF-8 text"));
            }
        };
        match config::check_str(&text, &self.path, config::Mode::Reload) {
            Ok(new) if trigger == Trigger::KeyFile && !keys_changed(&running, &new) => {
                tracing::debug!(file = %self.path.display(), "key files unchanged");
                Outcome::Unchanged
            }
            Ok(new) => self.apply(trigger, &running, new),
            Err(errors) => {
                self.last_rejected = Some(hash);
                self.reject(trigger, &errors)
            }
        }
    }

    fn unreadable(&self, why: &str) -> Vec<ConfigError> {
        vec![ConfigError {
            file: self.path.clone(),
            line: None,
            path: String::new(),
            reason: format!("cannot read the config file: {why}"),
        }]
    }

    /// Counts one failure and logs each error on its own line.
    fn reject(&self, trigger: Trigger, errors: &[ConfigError]) -> Outcome {
        self.metrics
            .config_reloads
            .with_label_values(&["failure"])
            .inc();
        for e in errors {
            tracing::error!(
                ?trigger,
                "config reload rejected, the running config keeps serving: {e}"
            );
        }
        Outcome::Rejected
    }

    fn apply(&mut self, trigger: Trigger, running: &Config, mut new: Config) -> Outcome {
        self.last_rejected = None;
        for change in restart_only_changes(running, &new) {
            tracing::warn!(
                file = %self.path.display(),
                "{change} requires a restart; keeping the running value until then"
            );
        }
        keep_restart_only(running, &mut new);
        let hash = new.hash.clone();
        let stored = self.snapshot.store(new);
        self.metrics
            .config_reloads
            .with_label_values(&["success"])
            .inc();
        publish(&self.metrics, &self.snapshot);
        tracing::info!(file = %self.path.display(), %hash, ?trigger, "config reloaded");
        super::demo_key::warn_if_exposed(&stored);
        self.notify_listeners(&stored);
        Outcome::Applied { hash }
    }

    /// Resolves the running config's provider hosts again (by loading the same file) and
    /// swaps the result in when an address changed. A file with other bytes is left to the
    /// file events; a failed resolution keeps the last addresses.
    pub fn refresh_addresses(&mut self) -> Outcome {
        let running = self.snapshot.load();
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Outcome::Unchanged;
        };
        if hex::encode(Sha256::digest(text.as_bytes())) != running.hash {
            return Outcome::Unchanged;
        }
        match config::load_str_for_reload(&text, &self.path) {
            Ok(new) if !same_addresses(&running, &new) => {
                tracing::info!(file = %self.path.display(), "provider addresses changed");
                self.apply(Trigger::Addresses, &running, new)
            }
            Ok(_) => Outcome::Unchanged,
            Err(e) => {
                tracing::debug!(
                    "re-resolving provider hosts failed, keeping the last addresses: {e}"
                );
                Outcome::Unchanged
            }
        }
    }

    /// Calls every listener; one that panics is logged and does not stop the others (nor the
    /// reloader: the new config is already serving).
    fn notify_listeners(&self, config: &Arc<Config>) {
        for (i, listener) in self.listeners.iter().enumerate() {
            if catch_unwind(AssertUnwindSafe(|| listener(config))).is_err() {
                tracing::error!(listener = i, "a config reload listener panicked");
            }
        }
    }

    /// Starts the reloader's thread and returns once it hears SIGHUP and watches the file
    /// (so a SIGHUP sent after startup can never hit the default action, which kills the
    /// process). The thread runs until the process exits. A file that cannot be watched is
    /// logged and leaves SIGHUP working; only a thread or signal failure is an error.
    pub fn spawn(self) -> io::Result<()> {
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("config-reload".into())
            .spawn(move || self.thread_main(ready_tx))?;
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the config reloader did not start")),
        }
    }

    fn thread_main(self, ready: std_mpsc::SyncSender<io::Result<()>>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(rt) => rt.block_on(self.run(ready)),
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    }

    async fn run(self, ready: std_mpsc::SyncSender<io::Result<()>>) {
        let hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        // Capacity 1 is enough: a pending message already means "reload"; the file is read
        // after the message is taken, so a later change is never missed.
        let (tx, rx) = mpsc::channel(1);
        let watch = FileWatch::start(&self.path, tx, "config file");
        let (key_tx, key_rx) = mpsc::channel(1);
        let mut keys = KeyFileWatches::new(key_tx);
        keys.follow(&watched_files(&self.snapshot.load()));
        let _ = ready.send(Ok(()));
        self.event_loop(rx, key_rx, hangup, watch, keys).await;
    }

    async fn event_loop(
        mut self,
        mut events: mpsc::Receiver<()>,
        mut key_events: mpsc::Receiver<()>,
        mut hangup: Signal,
        mut watch: Option<FileWatch>,
        mut keys: KeyFileWatches,
    ) {
        let mut dns = tokio::time::interval_at(Instant::now() + DNS_REFRESH, DNS_REFRESH);
        dns.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                Some(()) = events.recv() => Trigger::FileEvent,
                Some(()) = key_events.recv() => Trigger::KeyFile,
                Some(()) = hangup.recv() => Trigger::Signal,
                _ = dns.tick() => {
                    self.refresh_addresses();
                    continue;
                }
                else => return,
            };
            let burst = match first {
                Trigger::KeyFile => &mut key_events,
                _ => &mut events,
            };
            let trigger = settle(first, burst, &mut hangup).await;
            self.reload(trigger);
            if let Some(w) = watch.as_mut() {
                // A ConfigMap swap moves the symlink's target: follow it.
                w.refresh(&self.path);
            }
            keys.follow(&watched_files(&self.snapshot.load()));
        }
    }
}

/// The watches of the running config's key files (`api_key_file`): one [`FileWatch`] per
/// file, all signalling one channel ([`Trigger::KeyFile`]).
struct KeyFileWatches {
    tx: mpsc::Sender<()>,
    /// Each file as the config names it, and its watch (`None`: the platform refused; a
    /// SIGHUP still rereads it).
    watches: Vec<(PathBuf, Option<FileWatch>)>,
}

impl KeyFileWatches {
    fn new(tx: mpsc::Sender<()>) -> KeyFileWatches {
        KeyFileWatches {
            tx,
            watches: Vec::new(),
        }
    }

    /// Watches exactly `files`: drops the watches of files no longer named, follows where the
    /// others now lead (a Secret's `..data` swap), and starts watching new ones.
    fn follow(&mut self, files: &[PathBuf]) {
        self.watches.retain(|(path, _)| files.contains(path));
        for (path, watch) in &mut self.watches {
            if let Some(w) = watch.as_mut() {
                w.refresh(path);
            }
        }
        for file in files {
            if !self.watches.iter().any(|(path, _)| path == file) {
                let watch = FileWatch::start(file, self.tx.clone(), "API key file");
                self.watches.push((file.clone(), watch));
            }
        }
    }
}

/// The files watched beside the config: its key files and its `[pricing] catalogue`.
fn watched_files(config: &Config) -> Vec<PathBuf> {
    let mut files = config.key_files.clone();
    files.extend(
        config
            .price_catalogue
            .as_ref()
            .map(|(path, _)| path.clone()),
    );
    files
}

/// Whether a provider's key (compared by provider, in order; the keys themselves are never
/// shown) or the price catalogue's bytes differ between the two configs.
fn keys_changed(running: &Config, new: &Config) -> bool {
    if running.price_catalogue != new.price_catalogue {
        return true;
    }
    let keys = |c: &Config| {
        c.providers
            .iter()
            .map(|p| (p.name.clone(), p.api_key.clone()))
            .collect::<Vec<_>>()
    };
    keys(running) != keys(new)
}

/// Waits out a burst of file events: returns after [`DEBOUNCE`] without one (or
/// [`MAX_DELAY`] in all), or at once on SIGHUP, which is a request to reload now.
async fn settle(first: Trigger, events: &mut mpsc::Receiver<()>, hangup: &mut Signal) -> Trigger {
    if first == Trigger::Signal {
        return first;
    }
    let deadline = Instant::now() + MAX_DELAY;
    loop {
        tokio::select! {
            Some(()) = hangup.recv() => return Trigger::Signal,
            more = events.recv() => if more.is_none() { return first },
            () = tokio::time::sleep(DEBOUNCE) => return first,
            () = tokio::time::sleep_until(deadline) => return first,
        }
    }
}

/// Whether every provider resolves to the same set of addresses in both configs.
fn same_addresses(a: &Config, b: &Config) -> bool {
    let addrs = |c: &Config| {
        c.providers
            .iter()
            .map(|p| {
                let mut v = p
                    .upstream
                    .as_ref()
                    .map(|u| u.addrs.clone())
                    .unwrap_or_default();
                v.sort();
                (p.name.clone(), v)
            })
            .collect::<Vec<_>>()
    };
    addrs(a) == addrs(b)
}

/// Sets the metrics that describe the running config: its hash (only that series), the time
/// it was stored, and every counter series its names determine, at 0 until they count.
fn publish(metrics: &Metrics, snapshot: &Snapshot) {
    let config = snapshot.load();
    metrics.preset(&config);
    metrics.config_info.reset();
    metrics
        .config_info
        .with_label_values(&[config.hash.as_str()])
        .set(1);
    metrics
        .config_last_reload_success
        .set(snapshot.loaded_at() as f64);
}

/// The fields of `new` that differ from `running` but that only a restart can apply: pingora
/// binds the listeners and sizes its thread pools once, the state backend holds the counters,
/// and the usage log writer opens its sink once (drop `log.usage` from here, and from
/// [`keep_restart_only`], when a [`Listener`] re-points it). Each is described without
/// secrets (a Redis URL may carry a password).
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<String> {
    let (old, next) = (&running.server, &new.server);
    let mut changes = Vec::new();
    if old.listen != next.listen {
        changes.push(format!("server.listen ({} -> {})", old.listen, next.listen));
    }
    if old.admin_listen != next.admin_listen {
        changes.push(format!(
            "server.admin_listen ({} -> {})",
            old.admin_listen, next.admin_listen
        ));
    }
    if old.threads != next.threads {
        changes.push(format!(
            "server.threads ({} -> {})",
            threads(old.threads),
            threads(next.threads)
        ));
    }
    if old.tls != next.tls {
        changes.push(format!(
            "server.tls_* ({} -> {})",
            describe_tls(old.tls.as_ref()),
            describe_tls(next.tls.as_ref())
        ));
    }
    if running.state != new.state {
        changes.push(format!(
            "state ({} -> {})",
            describe_state(&running.state),
            describe_state(&new.state)
        ));
    }
    if running.responses_redis != new.responses_redis {
        let describe = |r: &Option<crate::config::RedisState>| match r {
            Some(_) => "its own redis (URL not shown)",
            None => "the state backend",
        };
        changes.push(format!(
            "state.responses_redis_url ({} -> {})",
            describe(&running.responses_redis),
            describe(&new.responses_redis)
        ));
    }
    if running.log.usage != new.log.usage {
        changes.push(format!(
            "log.usage ({} -> {})",
            describe_sink(running.log.usage.as_ref()),
            describe_sink(new.log.usage.as_ref())
        ));
    }
    if running.telemetry != new.telemetry {
        let endpoint = |c: &Config| {
            c.telemetry
                .as_ref()
                .map_or("off".to_string(), |t| t.endpoint.clone())
        };
        changes.push(format!(
            "telemetry ({} -> {})",
            endpoint(running),
            endpoint(new)
        ));
    }
    changes
}

/// Copies the restart-only fields of `running` into `new`, so the stored config describes
/// what the process really runs with.
fn keep_restart_only(running: &Config, new: &mut Config) {
    new.server.listen.clone_from(&running.server.listen);
    new.server
        .admin_listen
        .clone_from(&running.server.admin_listen);
    new.server.threads = running.server.threads;
    new.server.tls.clone_from(&running.server.tls);
    new.state = running.state.clone();
    new.responses_redis.clone_from(&running.responses_redis);
    new.log.usage.clone_from(&running.log.usage);
    new.telemetry.clone_from(&running.telemetry);
}

/// The TLS settings in a few words: which files, and whether admin and mTLS are on. A change
/// of the files' contents is not a config change: `tls::Rotation` reloads it.
fn describe_tls(tls: Option<&crate::config::TlsConfig>) -> String {
    match tls {
        None => "off".to_string(),
        Some(t) => format!(
            "{} + {}{}{}",
            t.cert.display(),
            t.key.display(),
            if t.admin { ", admin" } else { "" },
            if t.admin_client_ca.is_some() {
                ", admin mTLS"
            } else {
                ""
            }
        ),
    }
}

fn threads(t: Option<usize>) -> String {
    t.map_or_else(|| "default".to_string(), |n| n.to_string())
}

fn describe_sink(sink: Option<&UsageSink>) -> String {
    match sink {
        None => "off".to_string(),
        Some(UsageSink::Stdout) => "stdout".to_string(),
        Some(UsageSink::File(path)) => path.display().to_string(),
    }
}

/// The state backend, named without its Redis URL.
fn describe_state(state: &State) -> String {
    match state {
        State::Memory { dir } => format!("memory backend in {}", dir.display()),
        State::Redis(r) => match r.nodes {
            crate::config::RedisNodes::Single(_) => "redis backend (URL not shown)".to_string(),
            crate::config::RedisNodes::Cluster(_) => {
                "redis cluster backend (URLs not shown)".to_string()
            }
            crate::config::RedisNodes::Sentinel { .. } => {
                "redis sentinel backend (URLs not shown)".to_string()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn config_text(listen: &str, route_model: &str) -> String {
        format!(
            r#"
[server]
listen = "{listen}"
admin_listen = "127.0.0.1:19090"

[state]
backend = "memory"
dir = "data"

[[providers]]
name = "builtin"
kind = "mock"

[[models]]
name = "demo"
  [[models.routes]]
  provider = "builtin"
  model = "{route_model}"

[[teams]]
name = "all"

[[keys]]
id = "demo"
team = "all"
sha256 = "37cbfc183c342e976476530bb738059047143238dbbee2003f91b27a3d546483"
"#
        )
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        snapshot: Arc<Snapshot>,
        metrics: Arc<Metrics>,
        calls: Arc<AtomicUsize>,
        reloader: Reloader,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config_text("127.0.0.1:18080", "a")).unwrap();
        let snapshot = Snapshot::new(config::load_file(&path).unwrap());
        let metrics = Arc::new(Metrics::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let listener: Listener = Box::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let reloader = Reloader::new(&path, snapshot.clone(), metrics.clone(), vec![listener]);
        Fixture {
            _dir: dir,
            path,
            snapshot,
            metrics,
            calls,
            reloader,
        }
    }

    fn count(m: &Metrics, result: &str) -> u64 {
        m.config_reloads.with_label_values(&[result]).get()
    }

    #[test]
    fn unchanged_bytes_do_nothing_but_sighup_reloads() {
        let mut f = fixture();
        assert_eq!(f.reloader.reload(Trigger::FileEvent), Outcome::Unchanged);
        assert_eq!(count(&f.metrics, "success"), 0);
        assert!(matches!(
            f.reloader.reload(Trigger::Signal),
            Outcome::Applied { .. }
        ));
        assert_eq!(count(&f.metrics, "success"), 1);
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_good_file_is_stored_and_published() {
        let mut f = fixture();
        std::fs::write(&f.path, config_text("127.0.0.1:18080", "b")).unwrap();
        let Outcome::Applied { hash } = f.reloader.reload(Trigger::FileEvent) else {
            panic!("not applied");
        };
        let c = f.snapshot.load();
        assert_eq!(c.hash, hash);
        assert_eq!(c.models[0].routes[0].upstream_model, "b");
        assert_eq!(f.metrics.config_info.with_label_values(&[&hash]).get(), 1);
        let (text, _) = f.metrics.render();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.matches("switchyard_config_info{").count(), 1);
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_bad_file_is_counted_once_and_keeps_the_running_config() {
        let mut f = fixture();
        let before = f.snapshot.load().hash.clone();
        std::fs::write(&f.path, "[server\n").unwrap();
        assert_eq!(f.reloader.reload(Trigger::FileEvent), Outcome::Rejected);
        // The same bad bytes again: not a new failure.
        assert_eq!(f.reloader.reload(Trigger::FileEvent), Outcome::Unchanged);
        assert_eq!(count(&f.metrics, "failure"), 1);
        assert_eq!(f.snapshot.load().hash, before);
        std::fs::remove_file(&f.path).unwrap();
        assert_eq!(f.reloader.reload(Trigger::FileEvent), Outcome::Rejected);
        assert_eq!(count(&f.metrics, "failure"), 2);
        assert_eq!(f.calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn restart_only_fields_keep_their_running_values() {
        let mut f = fixture();
        let text = config_text("127.0.0.1:18081", "b")
            .replace("dir = \"data\"", "dir = \"d2\"\n[log]\nusage = \"-\"")
            + "\n[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n";
        std::fs::write(&f.path, &text).unwrap();
        let running = f.snapshot.load();
        let new = config::load_str(&text, &f.path).unwrap();
        let changes = restart_only_changes(&running, &new);
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert!(changes[0].starts_with("server.listen"));
        assert!(changes[1].starts_with("state"));
        assert_eq!(changes[2], "log.usage (off -> stdout)");
        assert_eq!(changes[3], "telemetry (off -> http://127.0.0.1:4318)");
        assert!(matches!(
            f.reloader.reload(Trigger::FileEvent),
            Outcome::Applied { .. }
        ));
        let c = f.snapshot.load();
        assert_eq!(c.server.listen, "127.0.0.1:18080");
        assert_eq!(c.state, running.state);
        assert_eq!(c.log.usage, None);
        assert_eq!(c.telemetry, None);
        assert_eq!(c.models[0].routes[0].upstream_model, "b");
    }

    #[test]
    fn tls_settings_need_a_restart() {
        let cfg = |extra: &str| {
            config::load_str_for_reload(&format!("[server]\n{extra}"), Path::new("t.toml")).unwrap()
        };
        let off = cfg("");
        let on = cfg("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nadmin_tls = true\n");
        let changes = restart_only_changes(&off, &on);
        assert_eq!(changes, ["server.tls_* (off -> c.pem + k.pem, admin)"]);
        let mut new = cfg("");
        keep_restart_only(&on, &mut new);
        assert_eq!(new.server.tls, on.server.tls);
    }

    #[test]
    fn provider_addresses_are_compared_as_sets() {
        let cfg = |host: &str| {
            config::load_str(
                &format!("[[providers]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://{host}:9/v1\"\n"),
                Path::new("t.toml"),
            )
            .unwrap()
        };
        assert!(same_addresses(&cfg("127.0.0.1"), &cfg("127.0.0.1")));
        assert!(!same_addresses(&cfg("127.0.0.1"), &cfg("127.0.0.2")));
    }

    /// A key file event reloads, but stores a new config only when a key changed.
    #[test]
    fn a_key_file_change_applies_only_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "sk-a\n").unwrap();
        let path = dir.path().join("c.toml");
        let text = format!(
            "[[providers]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_file = \"{}\"\n",
            key.display()
        );
        std::fs::write(&path, text).unwrap();
        let snapshot = Snapshot::new(config::load_file(&path).unwrap());
        let metrics = Arc::new(Metrics::new());
        let mut reloader = Reloader::new(&path, snapshot.clone(), metrics.clone(), vec![]);
        assert_eq!(reloader.reload(Trigger::KeyFile), Outcome::Unchanged);
        assert_eq!(count(&metrics, "success"), 0);
        std::fs::write(&key, "sk-b\n").unwrap();
        // A file event about the config's own (unchanged) bytes does not look at keys.
        assert_eq!(reloader.reload(Trigger::FileEvent), Outcome::Unchanged);
        assert!(matches!(
            reloader.reload(Trigger::KeyFile),
            Outcome::Applied { .. }
        ));
        let c = snapshot.load();
        assert_eq!(c.providers[0].api_key.as_ref().unwrap().expose(), "sk-b");
        assert_eq!(c.key_files, std::slice::from_ref(&key));
        std::fs::remove_file(&key).unwrap();
        assert_eq!(reloader.reload(Trigger::KeyFile), Outcome::Rejected);
        assert_eq!(count(&metrics, "failure"), 1);
    }

    #[test]
    fn redis_urls_are_never_described() {
        let s = State::Redis(crate::config::RedisState {
            nodes: crate::config::RedisNodes::Single("redis://db:6379".into()),
            timeout: std::time::Duration::from_millis(100),
            password: Some(crate::config::Secret::new("hunter2".into())),
            ca_file: None,
        });
        assert!(!describe_state(&s).contains("hunter2"));
    }
}
