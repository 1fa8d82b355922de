//! Redis as managed services run it, started for a test from real `redis-server`s
//! ([`RedisServer::start_with`]):
//! - [`RedisCluster`]: three masters (`--cluster-enabled yes`), joined by
//!   `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes`, ready once every node
//!   says `cluster_state:ok`;
//! - [`RedisSentinel`]: a master, a replica (`--replicaof`) and one sentinel
//!   (`redis-server <conf> --sentinel`, quorum 1, `down-after-milliseconds` 1000) that fails
//!   the master over when it is killed.

use std::process::Command;
use std::time::{Duration, Instant};

use super::redis::RedisServer;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A Redis Cluster of three masters, killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster (slots 0–5460, 5461–10922, 10923–16383 as
    /// `redis-cli` splits them) and waits until every node serves it.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "{dir}/nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &self.nodes {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster never became ok: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The seed nodes as `[state] redis_cluster` takes them (a TOML array).
    pub fn seeds_toml(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"{}\"", n.url().trim_end_matches("/0")))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot(&self, key: &str) -> u16 {
        let reply = self.nodes[0]
            .command(&["CLUSTER", "KEYSLOT", key])
            .expect("CLUSTER KEYSLOT");
        reply
            .trim()
            .trim_start_matches(':')
            .parse()
            .expect("a slot")
    }

    /// The keys matching `pattern` held by each master (`KEYS` on each: a node holds only
    /// its own slots' keys), in node order.
    pub fn keys_by_node(&self, pattern: &str) -> Vec<Vec<String>> {
        self.nodes.iter().map(|n| n.keys(pattern)).collect()
    }
}

/// A master, its replica and a sentinel watching them as `mymaster`.
pub struct RedisSentinel {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinel: RedisServer,
    /// Holds the sentinel's config file (Sentinel rewrites it).
    _conf: tempfile::TempDir,
}

/// The master set's name the sentinel monitors.
pub const MASTER_NAME: &str = "mymaster";

impl RedisSentinel {
    /// Starts the master, the replica (waiting until it is in sync) and the sentinel (waiting
    /// until it knows the replica, so that it can fail over to it).
    pub fn start() -> RedisSentinel {
        let master = RedisServer::start_with(&[]);
        let of = master.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &of]);
        wait_for(
            || {
                replica
                    .command(&["INFO", "replication"])
                    .is_some_and(|i| i.contains("master_link_status:up"))
            },
            "the replica never synced",
        );
        let conf = tempfile::Builder::new()
            .prefix("switchyard-sentinel-")
            .tempdir()
            .expect("tempdir");
        let file = conf.path().join("sentinel.conf");
        std::fs::write(
            &file,
            format!(
                "sentinel monitor {MASTER_NAME} 127.0.0.1 {of} 1\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n"
            ),
        )
        .expect("write sentinel.conf");
        let sentinel = RedisServer::start_with(&[&file.to_string_lossy(), "--sentinel"]);
        let s = RedisSentinel {
            master,
            replica,
            sentinel,
            _conf: conf,
        };
        wait_for(
            || {
                s.sentinel
                    .command(&["SENTINEL", "REPLICAS", MASTER_NAME])
                    .is_some_and(|r| r.contains(&s.replica.port().to_string()))
            },
            "the sentinel never found the replica",
        );
        s
    }

    /// `[state]`'s `redis_sentinels` (a TOML array) and `redis_master_name` lines.
    pub fn state_toml(&self) -> String {
        format!(
            "redis_sentinels = [\"redis://127.0.0.1:{}\"]\nredis_master_name = \"{MASTER_NAME}\"\n",
            self.sentinel.port()
        )
    }

    /// The port of the master the sentinel names now (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    pub fn master_port(&self) -> Option<u16> {
        let reply = self
            .sentinel
            .command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])?;
        reply
            .split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
            .nth(1)
            .and_then(|p| p.parse().ok())
    }

    /// Waits until the replica holds every write the master acknowledged (`WAIT 1`).
    pub fn wait_replicated(&self) {
        let reply = self
            .master
            .command(&["WAIT", "1", "2000"])
            .unwrap_or_default();
        assert_eq!(
            reply.trim(),
            ":1",
            "the replica did not acknowledge the writes"
        );
    }

    /// Waits until the sentinel names the replica as master and the replica says so.
    pub fn wait_failed_over(&self) {
        let port = self.replica.port();
        wait_for(
            || {
                self.master_port() == Some(port)
                    && self
                        .replica
                        .command(&["ROLE"])
                        .is_some_and(|r| r.contains("master"))
            },
            "the sentinel never promoted the replica",
        );
    }
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
