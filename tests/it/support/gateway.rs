//! `Gateway`: runs the real `switchyard` binary as a child process with a generated config
//! whose listeners are on port 0 (`127.0.0.1:0`), reads the addresses it bound from its
//! `--ready-file`, waits for `GET /readyz`, and kills it on drop. No port is picked by the
//! test and handed over, so parallel tests never race for one.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The secret of the demo key (`Authorization: Bearer sk-switchyard-demo`).
pub const DEMO_SECRET: &str = "sk-switchyard-demo";
/// SHA-256 hex of [`DEMO_SECRET`], as a config's `[[keys]] sha256` holds it.
pub const DEMO_SHA256: &str = "37cbfc183c342e976476530bb738059047143238dbbee2003f91b27a3d546483";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const READY_POLL: Duration = Duration::from_millis(50);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// What a generated config's `listen` and `admin_listen` (and `{API}`, `{ADMIN}` in a raw
/// one) say: the gateway picks the ports and reports them in its ready file.
pub const ANY_PORT: &str = "127.0.0.1:0";

/// SHA-256 of `s`, lowercase hex.
pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Path of the `switchyard` binary cargo built for these tests.
pub fn switchyard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchyard"))
}

/// Runs `switchyard ARGS…` to completion in `cwd` (e.g. `check -c FILE`, `key new …`)
/// and returns its output.
pub fn run_switchyard(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(switchyard_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run switchyard")
}

/// The address of a listener not bound yet (until the ready file tells).
const UNBOUND: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// How to start a [`Gateway`]; see [`Gateway::builder`] and [`Gateway::raw_builder`].
#[derive(Clone, Debug, Default)]
pub struct GatewayBuilder {
    body: String,
    raw: bool,
    server_extra: String,
    env: Vec<(String, String)>,
    program: Option<(PathBuf, Vec<String>)>,
    configmap: bool,
}

impl GatewayBuilder {
    /// Runs another program instead of `switchyard serve -c {CONFIG} --ready-file {READY}`
    /// (for the harness's own tests). `{CONFIG}` and `{READY}` in `args` and in env values are
    /// replaced by the config path and the ready file's path; the program must write the
    /// ready file (`{"listen":"IP:PORT","admin":"IP:PORT"}`) as the gateway does.
    pub fn program(mut self, program: PathBuf, args: &[&str]) -> Self {
        self.program = Some((program, args.iter().map(|s| s.to_string()).collect()));
        self
    }

    /// Lays the config out as a Kubernetes ConfigMap volume does:
    /// `configmap/switchyard.toml -> ..data/switchyard.toml`, `..data -> ..gen0`, the file in
    /// `..gen0/`. [`Gateway::config_path`] is then the symlink, and
    /// [`Gateway::write_config_configmap`] swaps `..data` as the kubelet does.
    pub fn configmap(mut self) -> Self {
        self.configmap = true;
        self
    }

    /// Extra lines for the generated `[server]` section (not used with raw configs).
    pub fn server_extra(mut self, lines: &str) -> Self {
        self.server_extra = lines.to_string();
        self
    }

    /// An environment variable for the child.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Several environment variables for the child.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self.env.push((k.to_string(), v.to_string()));
        }
        self
    }

    /// Starts the child, reads its ready file and waits until `GET /readyz` answers 200;
    /// panics with the logs if it exits or is not ready within 20 s.
    pub async fn start(self) -> Gateway {
        let mut gw = self.spawn();
        if let Err(why) = gw.wait_ready().await {
            let logs = gw.logs();
            gw.kill();
            let msg = format!(
                "gateway did not become ready: {why}\n\
                 config {}:\n{}\n===== logs =====\n{logs}",
                gw.config_path.display(),
                std::fs::read_to_string(&gw.config_path).unwrap_or_default()
            );
            drop(gw); // before panicking, so its Drop does not print the logs again
            panic!("{msg}");
        }
        gw
    }

    /// Spawns the child without waiting for readiness (e.g. to watch it fail on a bad
    /// config: see [`Gateway::wait_exit`]). Its addresses are known after
    /// [`Gateway::wait_bound`].
    pub fn spawn(&self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-test-")
            .tempdir()
            .expect("tempdir");
        let configmap_dir = self.configmap.then(|| dir.path().join("configmap"));
        let config_path = match &configmap_dir {
            Some(cm) => cm.join("switchyard.toml"),
            None => dir.path().join("switchyard.toml"),
        };
        let mut gw = Gateway {
            child: None,
            api: UNBOUND,
            admin: UNBOUND,
            config_path,
            ready_path: dir.path().join("ready.json"),
            stdout_path: dir.path().join("stdout.log"),
            stderr_path: dir.path().join("stderr.log"),
            server_extra: self.server_extra.clone(),
            configmap_dir,
            configmap_gen: AtomicU32::new(0),
            dir,
        };
        let text = if self.raw {
            gw.fill_placeholders(&self.body)
        } else {
            gw.generate(&self.body)
        };
        if gw.configmap_dir.is_some() {
            gw.swap_configmap(&text);
        } else {
            std::fs::write(&gw.config_path, text).expect("write config");
        }

        let config = gw.config_path.to_string_lossy().into_owned();
        let ready = gw.ready_path.to_string_lossy().into_owned();
        let fill = |a: &str| a.replace("{CONFIG}", &config).replace("{READY}", &ready);
        let (program, args) = self.program.clone().unwrap_or_else(|| {
            let args = ["serve", "-c", "{CONFIG}", "--ready-file", "{READY}"];
            (switchyard_bin(), args.map(String::from).to_vec())
        });
        let mut cmd = Command::new(program);
        cmd.args(args.iter().map(|a| fill(a)))
            .current_dir(gw.dir.path())
            .stdin(Stdio::null())
            .stdout(File::create(&gw.stdout_path).expect("stdout log"))
            .stderr(File::create(&gw.stderr_path).expect("stderr log"));
        let has_rust_log = self.env.iter().any(|(k, _)| k == "RUST_LOG");
        if !has_rust_log && std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.env {
            cmd.env(k, fill(v));
        }
        gw.child = Some(cmd.spawn().expect("spawn switchyard"));
        gw
    }
}

/// A running `switchyard serve` child process. Dropping it kills the process.
pub struct Gateway {
    child: Option<Child>,
    /// The bound addresses, from the ready file ([`UNBOUND`] until it is read).
    api: SocketAddr,
    admin: SocketAddr,
    config_path: PathBuf,
    /// `--ready-file`: where the child reports the addresses it bound.
    ready_path: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    server_extra: String,
    /// The ConfigMap-style directory, when started with [`GatewayBuilder::configmap`].
    configmap_dir: Option<PathBuf>,
    /// The generation of the ConfigMap's data directory (`..genN`).
    configmap_gen: AtomicU32,
    dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts with a generated `[server]` section (listen, admin_listen on [`ANY_PORT`]),
    /// then `config_body` (which must not contain `[server]`), then
    /// `[state] backend = "memory", dir = "<tempdir>/data"` unless the body has `[state]`.
    pub async fn start(config_body: &str) -> Gateway {
        Self::builder(config_body).start().await
    }

    /// [`Gateway::start`] with environment variables for the child.
    pub async fn start_with_env(config_body: &str, env: &[(&str, &str)]) -> Gateway {
        Self::builder(config_body).envs(env).start().await
    }

    /// Starts with a complete config in which `{API}` and `{ADMIN}` are replaced by
    /// [`ANY_PORT`] (the addresses bound are then [`Gateway::api_addr`] and
    /// [`Gateway::admin_addr`]) and `{DIR}` by the temp directory. Nothing is added.
    pub async fn start_raw(full_config: &str) -> Gateway {
        Self::raw_builder(full_config).start().await
    }

    /// [`Gateway::start_raw`] with environment variables for the child.
    pub async fn start_raw_with_env(full_config: &str, env: &[(&str, &str)]) -> Gateway {
        Self::raw_builder(full_config).envs(env).start().await
    }

    /// A builder for a generated-`[server]` config (see [`Gateway::start`]).
    pub fn builder(config_body: &str) -> GatewayBuilder {
        GatewayBuilder {
            body: config_body.to_string(),
            ..GatewayBuilder::default()
        }
    }

    /// A builder for a raw config with placeholders (see [`Gateway::start_raw`]).
    pub fn raw_builder(full_config: &str) -> GatewayBuilder {
        GatewayBuilder {
            body: full_config.to_string(),
            raw: true,
            ..GatewayBuilder::default()
        }
    }

    fn dir_str(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    fn fill_placeholders(&self, text: &str) -> String {
        text.replace("{API}", ANY_PORT)
            .replace("{ADMIN}", ANY_PORT)
            .replace("{DIR}", &self.dir_str())
    }

    fn generate(&self, body: &str) -> String {
        assert!(
            !body.contains("[server]"),
            "Gateway::start: the config body must not contain [server]; use start_raw"
        );
        let q = |s: &str| serde_json::to_string(s).unwrap();
        let mut text = format!(
            "[server]\nlisten = {}\nadmin_listen = {}\n{}\n\n",
            q(ANY_PORT),
            q(ANY_PORT),
            self.server_extra.trim_end()
        );
        text.push_str(&self.fill_placeholders(body));
        text.push('\n');
        if !body.contains("[state]") {
            let data = self.dir.path().join("data");
            text.push_str(&format!(
                "\n[state]\nbackend = \"memory\"\ndir = {}\n",
                q(&data.to_string_lossy())
            ));
        }
        text
    }

    /// Rewrites the config file in place with a new body (same ports, `[server]` extras
    /// and `[state]` rule as at start). For hot-reload tests.
    pub fn write_config(&self, config_body: &str) {
        std::fs::write(&self.config_path, self.generate(config_body)).expect("write config");
    }

    /// Rewrites the config file in place with a full config (placeholders replaced).
    pub fn write_config_raw(&self, full_config: &str) {
        std::fs::write(&self.config_path, self.fill_placeholders(full_config))
            .expect("write config");
    }

    /// Like [`Gateway::write_config`] but writes a sibling temp file and renames it over
    /// the config (an atomic replace, as editors and config managers do).
    pub fn write_config_atomic(&self, config_body: &str) {
        let tmp = self.dir.path().join(".switchyard.toml.tmp");
        std::fs::write(&tmp, self.generate(config_body)).expect("write temp config");
        std::fs::rename(&tmp, &self.config_path).expect("rename config");
    }

    /// Like [`Gateway::write_config`] but as the kubelet updates a ConfigMap volume: the new
    /// file goes into a new `..genN` directory, a `..data_tmp` symlink to it is renamed over
    /// `..data`, and the old generation is removed. Needs [`GatewayBuilder::configmap`].
    pub fn write_config_configmap(&self, config_body: &str) {
        self.swap_configmap(&self.generate(config_body));
    }

    fn swap_configmap(&self, text: &str) {
        let cm = self
            .configmap_dir
            .as_ref()
            .expect("write_config_configmap needs GatewayBuilder::configmap");
        std::fs::create_dir_all(cm).expect("configmap dir");
        let generation = self.configmap_gen.fetch_add(1, Ordering::SeqCst);
        let new_dir = format!("..gen{generation}");
        std::fs::create_dir(cm.join(&new_dir)).expect("configmap generation dir");
        std::fs::write(cm.join(&new_dir).join("switchyard.toml"), text).expect("write config");
        let data = cm.join("..data");
        let old_dir = std::fs::read_link(&data).ok();
        let tmp = cm.join("..data_tmp");
        std::os::unix::fs::symlink(&new_dir, &tmp).expect("..data_tmp symlink");
        std::fs::rename(&tmp, &data).expect("rename ..data_tmp over ..data");
        let user_link = cm.join("switchyard.toml");
        if std::fs::symlink_metadata(&user_link).is_err() {
            std::os::unix::fs::symlink("..data/switchyard.toml", &user_link)
                .expect("config symlink");
        }
        if let Some(old) = old_dir {
            std::fs::remove_dir_all(cm.join(old)).expect("remove old generation");
        }
    }

    /// The generated text a body would produce (what [`Gateway::write_config`] writes).
    pub fn render_config(&self, config_body: &str) -> String {
        self.generate(config_body)
    }

    /// The config file's text with the listeners' [`ANY_PORT`] replaced by the addresses
    /// bound: what a second process must be given to take this one's sockets over
    /// (`serve --upgrade`).
    pub fn config_with_bound_addresses(&self) -> String {
        let text = std::fs::read_to_string(&self.config_path).expect("read config");
        let any = serde_json::to_string(ANY_PORT).unwrap();
        text.replace(
            &format!("admin_listen = {any}"),
            &format!("admin_listen = \"{}\"", self.admin),
        )
        .replace(
            &format!("listen = {any}"),
            &format!("listen = \"{}\"", self.api),
        )
    }

    /// `http://API_ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.api, path)
    }

    /// `http://ADMIN_ADDR{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The child's working directory (a temp dir; relative paths in the config land here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The child's pid (0 once it has been reaped by stop/kill).
    pub fn child_pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// A reqwest client: no proxy, HTTP/1 only.
    pub fn client(&self) -> reqwest::Client {
        super::client()
    }

    /// The child's stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!("----- stdout -----\n{out}\n----- stderr -----\n{err}")
    }

    /// The usage log's lines (`[log] usage = "{DIR}/usage.jsonl"`), parsed.
    pub fn usage_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir().join("usage.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("usage line {l}: {e}")))
            .collect()
    }

    /// Waits until the usage log has at least `n` lines (its writer thread is asynchronous);
    /// panics with the gateway's logs after 20 s.
    pub async fn wait_usage_lines(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let lines = self.usage_lines();
            if lines.len() >= n {
                return lines;
            }
            if Instant::now() > deadline {
                panic!(
                    "the usage log has {} of {n} lines\n{}",
                    lines.len(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the usage-log line of `request_id` (panics with the logs after 20 s).
    pub async fn usage_line(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(line) = self
                .usage_lines()
                .into_iter()
                .find(|l| l["request_id"] == request_id)
            {
                return line;
            }
            if Instant::now() > deadline {
                panic!("no usage line for {request_id}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the logs contain `needle` (panics with the logs after 20 s).
    pub async fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            if Instant::now() > deadline {
                panic!("gateway logs never contained {needle:?}:\n{logs}");
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// The value of the series `name{labels}` once it reads `want` (a request is counted
    /// after its answer went out, so a scrape right after the answer may not show it yet):
    /// polls for up to 5 s and returns the last value read (0 when absent).
    pub async fn metric_until(&self, name: &str, labels: &[(&str, &str)], want: f64) -> f64 {
        let mut last = 0.0;
        for _ in 0..50 {
            last = super::metric_value(&self.metrics().await, name, labels).unwrap_or(0.0);
            if last == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }

    /// `GET /metrics` on the admin listener, as text.
    pub async fn metrics(&self) -> String {
        let resp = super::client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", self.logs()));
        resp.text().await.expect("metrics body")
    }

    /// `POST /v1/chat/completions` with `Authorization: Bearer {secret}` and a JSON body.
    pub async fn chat(&self, secret: &str, body: &Value) -> reqwest::Response {
        super::client()
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(secret)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /v1/chat/completions: {e}\n{}", self.logs()))
    }

    /// Waits until the child reports the addresses it bound (for a child from
    /// [`GatewayBuilder::spawn`] that `/readyz` cannot tell about, e.g. an admin listener
    /// that wants client certificates); panics with the logs after 20 s or if it exits.
    pub async fn wait_bound(&mut self) {
        if let Err(why) = self.read_ready_file().await {
            panic!("gateway did not bind: {why}\n{}", self.logs());
        }
    }

    /// Waits for the ready file and takes the bound addresses from it.
    async fn read_ready_file(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.ready_path) {
                let v: Value =
                    serde_json::from_str(&text).map_err(|e| format!("ready file {text:?}: {e}"))?;
                let addr = |key: &str| {
                    v[key]
                        .as_str()
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                        .ok_or_else(|| format!("ready file without {key}: {text}"))
                };
                self.api = addr("listen")?;
                self.admin = addr("admin")?;
                return Ok(());
            }
            if let Some(status) = self.try_wait() {
                return Err(format!("the gateway exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err("no ready file within 20 s".to_string());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        if self.admin == UNBOUND {
            self.read_ready_file().await?;
        }
        let client = super::client();
        let url = self.admin_url("/readyz");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("the gateway exited with {status}"));
            }
            let probe = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(resp) = probe {
                if resp.status().as_u16() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("GET {url} did not answer 200 within 20 s"));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Waits for readiness again (e.g. after a signal); panics with the logs on failure.
    pub async fn wait_until_ready(&mut self) {
        if let Err(why) = self.wait_ready().await {
            panic!("gateway not ready: {why}\n{}", self.logs());
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// Sends a signal (e.g. `libc::SIGHUP`) to the child, if it is still running.
    pub fn signal(&mut self, sig: i32) {
        if self.is_running() {
            let pid = self.child_pid() as libc::pid_t;
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Waits (without blocking the async runtime) up to `max` for the child to exit.
    pub async fn wait_exit(&mut self, max: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + max;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then waits (blocking the thread) up to 30 s for the exit; SIGKILL after
    /// that. Returns the exit status. Note: this blocks the current thread, so a
    /// `MockUpstream` on a current-thread runtime does not progress meanwhile; prefer
    /// [`Gateway::stop_async`] when requests to a mock may still be in flight.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if self.child.is_none() || Instant::now() > deadline {
                return self.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits (yielding to the runtime) up to 30 s; SIGKILL after that.
    pub async fn stop_async(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        match self.wait_exit(STOP_TIMEOUT).await {
            Some(s) => Some(s),
            None => self.kill(),
        }
    }

    /// SIGKILL (if still running) and reap. Returns the exit status.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("pid", &self.child_pid())
            .field("api", &self.api)
            .field("admin", &self.admin)
            .field("config_path", &self.config_path)
            .finish()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            // Captured by the test harness and shown with the failure.
            let logs = self.logs();
            let start = logs.len().saturating_sub(30_000);
            let start = (start..logs.len())
                .find(|i| logs.is_char_boundary(*i))
                .unwrap_or(0);
            eprintln!("===== switchyard logs (tail) =====\n{}", &logs[start..]);
        }
    }
}
