//! `RedisServer`: a real `redis-server` child on a free loopback port, without persistence
//! (`--save "" --appendonly no`), that a test can stop and restart on the same port (to take
//! Redis away mid-run and bring it back empty). Killed on drop.
//! [`RedisServer::start_tls`] also serves TLS (`--tls-port`, a certificate given as PEM, e.g.
//! by `tls::TestCa`) and requires a password (`--requirepass`). [`RedisServer::start_with`]
//! passes extra arguments (a cluster node, a replica: `redis_topology.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// First starts tried on new ports when the last one's port was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// A `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// The TLS port, when started with [`RedisServer::start_tls`].
    tls_port: Option<u16>,
    password: Option<String>,
    /// More `redis-server` arguments (`--cluster-enabled yes`, `--replicaof …`, `--sentinel`).
    extra: Vec<String>,
}

impl RedisServer {
    /// Whether `redis-server` is on the PATH (`.ci/run` installs it).
    pub fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts one on a free loopback port and waits until it answers `PING`; `None` (with a
    /// message on stderr) when `redis-server` is not installed.
    pub fn try_start() -> Option<RedisServer> {
        // A test that skips itself could never fail: without redis-server it fails instead.
        assert!(
            Self::available(),
            "redis-server is not installed: run the tests with `bash .ci/run`, which installs it"
        );
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("switchyard-redis-")
                .tempdir()
                .expect("tempdir"),
            tls_port: None,
            password: None,
            extra: Vec::new(),
        };
        server.first_start();
        Some(server)
    }

    /// Starts one with `extra` arguments after the harness's own (a first one that is not an
    /// option, a config file, before them), on a free loopback port; `{dir}` in an argument
    /// is replaced by the server's directory (its `--dir`). Panics when `redis-server` is not
    /// installed.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        assert!(
            Self::available(),
            "redis-server is not installed: run the tests with `bash .ci/run`, which installs it"
        );
        let dir = tempfile::Builder::new()
            .prefix("switchyard-redis-")
            .tempdir()
            .expect("tempdir");
        let at = dir.path().to_string_lossy().into_owned();
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
            tls_port: None,
            password: None,
            extra: extra.iter().map(|a| a.replace("{dir}", &at)).collect(),
        };
        server.first_start();
        server
    }

    /// The server's directory (its `--dir`, where its log and config files are).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts one that also listens with TLS on a second port (serving `cert_pem`, a chain
    /// for 127.0.0.1, and `key_pem`; clients need no certificate, `ca_pem` is only required
    /// by redis-server) and requires `password` (`AUTH`) on both ports. Panics when
    /// `redis-server` is not installed.
    pub fn start_tls(cert_pem: &str, key_pem: &str, ca_pem: &str, password: &str) -> RedisServer {
        assert!(
            Self::available(),
            "redis-server is not installed: run the tests with `bash .ci/run`, which installs it"
        );
        let dir = tempfile::Builder::new()
            .prefix("switchyard-redis-")
            .tempdir()
            .expect("tempdir");
        for (name, pem) in [
            ("cert.pem", cert_pem),
            ("key.pem", key_pem),
            ("ca.pem", ca_pem),
        ] {
            std::fs::write(dir.path().join(name), pem).expect("write a PEM file");
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
            tls_port: Some(free_port()),
            password: Some(password.to_string()),
            extra: Vec::new(),
        };
        server.first_start();
        server
    }

    /// `rediss://127.0.0.1:{tls_port}/0` (no password: the gateway takes it from the
    /// environment). Only for a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("started with start_tls");
        format!("rediss://127.0.0.1:{port}/0")
    }

    /// Starts one; panics when `redis-server` is not installed.
    pub fn start() -> RedisServer {
        Self::try_start().expect("redis-server is required for this test")
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, as a crash would) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server for the first time. Its ports were free a moment ago (redis-server
    /// cannot be given port 0 and say which port it took), but another program may have
    /// bound one since: then it starts again on new free ports.
    fn first_start(&mut self) {
        for _ in 1..START_ATTEMPTS {
            self.child = Some(self.spawn());
            if self.wait_ready(Instant::now() + READY_TIMEOUT) {
                return;
            }
            self.stop();
            if !self.log().contains("Address already in use") {
                break;
            }
            self.port = free_port();
            self.tls_port = self.tls_port.map(|_| free_port());
        }
        self.restart(); // the last attempt, which panics with the log
    }

    /// Starts the server again on the same port (empty: nothing is persisted), waiting until
    /// it answers `PING`.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.spawn();
            self.child = Some(child);
            if self.wait_ready(deadline) {
                return;
            }
            // The port may still be held by the previous process: try again until the deadline.
            self.stop();
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn spawn(&self) -> Child {
        let mut cmd = Command::new("redis-server");
        // A config file (an extra first argument that is not an option, as a sentinel's in
        // `redis-server <file> --sentinel`) comes before every option.
        let (conf, options) = match self.extra.split_first() {
            Some((first, rest)) if !first.starts_with("--") => (Some(first), rest),
            _ => (None, &self.extra[..]),
        };
        cmd.args(conf);
        if let Some(tls_port) = self.tls_port {
            let file = |name: &str| self.dir.path().join(name).to_string_lossy().into_owned();
            cmd.args(["--tls-port", &tls_port.to_string()])
                .args(["--tls-cert-file", &file("cert.pem")])
                .args(["--tls-key-file", &file("key.pem")])
                .args(["--tls-ca-cert-file", &file("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        }
        if let Some(password) = &self.password {
            cmd.args(["--requirepass", password]);
        }
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.path().to_string_lossy()])
            .args(["--logfile", &self.log_path().to_string_lossy()])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn wait_ready(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false; // exited (port in use?)
            }
            if self
                .command(&["PING"])
                .is_some_and(|r| r.starts_with("+PONG"))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends one command (RESP) and returns the raw reply, `None` if the server is not up.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        if let Some(password) = &self.password {
            let reply = send(&mut s, &["AUTH", password])?;
            if !reply.starts_with("+OK") {
                return None;
            }
        }
        send(&mut s, args)
    }

    /// A hash field (`HGET`), `None` when absent.
    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        let reply = self.command(&["HGET", key, field])?;
        let mut lines = reply.split("\r\n");
        match lines.next() {
            Some(l) if l.starts_with('$') && l != "$-1" => lines.next().map(str::to_string),
            _ => None,
        }
    }

    /// The keys matching `pattern` (`KEYS`), for tests that look at what the gateway stored.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let reply = self.command(&["KEYS", pattern]).unwrap_or_default();
        reply
            .split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends one RESP command on `s` and returns the raw reply (one read).
fn send(s: &mut TcpStream, args: &[&str]) -> Option<String> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 65536];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
