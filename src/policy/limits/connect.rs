//! How the gateway reaches Redis, one type for the limiter and the response store: a single
//! server (`[state] redis_url`), a Redis Cluster (`redis_cluster`, seed nodes) or a primary
//! found through Sentinel (`redis_sentinels` and `redis_master_name`). For every kind: the
//! password read from `redis_password_env` at load (never in a URL, never logged), and for
//! `rediss://` the system's root certificates plus `redis_ca_file`.
//!
//! - **Single**: a `ConnectionManager` to the URL (it reconnects to the same address).
//! - **Cluster**: redis-rs's async cluster connection. It reads the slot map from the seeds,
//!   sends each command to the master of its key's slot and follows `MOVED` and `ASK` itself
//!   (and refreshes its slot map on `MOVED`). A script goes to the slot of its `KEYS`, so every
//!   script's keys must share a hash slot: the callers' key names carry a hash tag (`{…}`) for
//!   that (`redis.rs`, `response_store/redis.rs`). A pipeline must stay within one slot.
//! - **Sentinel**: each [`Redis::connect`] asks the sentinels (in their configured order) for
//!   the master of `redis_master_name`, checks with `ROLE` that the server named is a master,
//!   then makes a `ConnectionManager` to it. After a failover the old connection fails (the
//!   old master is gone, or it answers writes with `READONLY`); the callers then make a new
//!   connection, which finds the new master (see `super`'s module doc for what the limiter
//!   does meanwhile). The password is the Redis servers'; sentinels are asked without one.
//!   With `rediss://` sentinels, both the sentinels and the master are reached over TLS.

use std::path::Path;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    TlsCertificates, TlsMode, Value,
};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::config::{RedisNodes, RedisState};

/// What the gateway connects to (built at start; connects only in [`Redis::connect`]).
pub(crate) struct Redis {
    target: Target,
}

enum Target {
    Single(Client),
    Cluster(ClusterClient),
    /// The sentinels' client takes `&mut self` to ask them: one lookup at a time.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// A connection to a single server, a Redis Cluster or the master Sentinel named; cheap to
/// clone (every clone shares the sockets).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Redis {
    /// The client for `state`. Errors never quote a URL or the password.
    pub(crate) fn new(state: &RedisState) -> Result<Redis, String> {
        let roots = match &state.ca_file {
            None => None,
            Some(ca) => Some(roots_pem(ca)?),
        };
        let password = state.password.as_ref().map(|p| p.expose().to_string());
        let target = match &state.nodes {
            RedisNodes::Single(url) => Target::Single(single(url, password, roots)?),
            RedisNodes::Cluster(seeds) => Target::Cluster(cluster(seeds, password, roots)?),
            RedisNodes::Sentinel {
                sentinels,
                master_name,
            } => Target::Sentinel(tokio::sync::Mutex::new(sentinel(
                sentinels,
                master_name,
                password,
                roots,
            )?)),
        };
        Ok(Redis { target })
    }

    /// The client of a single server (`redis_url`), for what only one server offers here
    /// (a pub/sub subscription); `None` for a cluster or Sentinel.
    pub(crate) fn single_client(&self) -> Option<Client> {
        match &self.target {
            Target::Single(client) => Some(client.clone()),
            Target::Cluster(_) | Target::Sentinel(_) => None,
        }
    }

    /// Whether this is a Redis Cluster (a pipeline must then stay within one hash slot).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// A new connection, within `timeout` for what it does now. Single: made lazily (it
    /// connects with its first command). Cluster: connects to a seed and reads the slot map.
    /// Sentinel: asks the sentinels for the master, then connects lazily to it.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Conn, RedisError> {
        let manager = |client: Client| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(200));
            ConnectionManager::new_lazy_with_config(client, config).map(Conn::Single)
        };
        match &self.target {
            Target::Single(client) => manager(client.clone()),
            Target::Cluster(client) => {
                let conn = tokio::time::timeout(timeout, client.get_async_connection())
                    .await
                    .map_err(|_| timed_out())??;
                Ok(Conn::Cluster(conn))
            }
            Target::Sentinel(sentinels) => {
                let lookup = async { sentinels.lock().await.async_get_client().await };
                let master = tokio::time::timeout(timeout, lookup)
                    .await
                    .map_err(|_| timed_out())??;
                manager(master)
            }
        }
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "redis did not answer in time",
    ))
}

/// A client of one server. The URL was checked at load; its errors never print it.
fn single(url: &str, password: Option<String>, roots: Option<Vec<u8>>) -> Result<Client, String> {
    let mut info = url
        .into_connection_info()
        .map_err(|_| "not a valid Redis URL".to_string())?;
    if let Some(password) = password {
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    let client = match roots {
        // `rediss://` without a CA file: redis-rs trusts the system's roots.
        None => Client::open(info),
        Some(root_cert) => Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            },
        ),
    };
    client.map_err(|e| format!("cannot make a Redis client: {e}"))
}

/// A cluster client from its seed nodes (all `redis://` or all `rediss://`, checked at load).
fn cluster(
    seeds: &[String],
    password: Option<String>,
    roots: Option<Vec<u8>>,
) -> Result<ClusterClient, String> {
    // A command that meets a moved slot or a failed node is retried twice (MOVED and ASK
    // are followed on top of that); the callers bound every call by their own timeout.
    let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
        .connection_timeout(Duration::from_secs(1))
        .retries(2);
    if let Some(password) = password {
        builder = builder.password(password);
    }
    if seeds.iter().any(|s| s.starts_with("rediss://")) {
        builder = builder.tls(TlsMode::Secure);
    }
    if let Some(root_cert) = roots {
        builder = builder.certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        });
    }
    builder
        .build()
        .map_err(|e| format!("cannot make a Redis Cluster client: {e}"))
}

/// A client of the master named `master_name`, found through `sentinels`.
fn sentinel(
    sentinels: &[String],
    master_name: &str,
    password: Option<String>,
    roots: Option<Vec<u8>>,
) -> Result<SentinelClient, String> {
    let addrs = sentinels
        .iter()
        .map(|s| {
            s.as_str()
                .into_connection_info()
                .map(|info| info.addr().clone())
                .map_err(|_| "not a valid sentinel URL".to_string())
        })
        .collect::<Result<Vec<ConnectionAddr>, String>>()?;
    let tls = addrs
        .iter()
        .any(|a| matches!(a, ConnectionAddr::TcpTls { .. }));
    let mut builder = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
        .map_err(|e| format!("cannot make a Sentinel client: {e}"))?;
    if let Some(password) = password {
        builder = builder.set_client_to_redis_password(password);
    }
    if tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
    }
    if let Some(root_cert) = roots {
        let certs = |root_cert: Vec<u8>| TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        };
        builder = builder
            .set_client_to_redis_certificates(certs(root_cert.clone()))
            .set_client_to_sentinel_certificates(certs(root_cert));
    }
    builder
        .build()
        .map_err(|e| format!("cannot make a Sentinel client: {e}"))
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The CA file's certificates followed by the system's roots, as PEM: redis-rs replaces the
/// system roots by the store it is given, and the config promises both.
fn roots_pem(ca: &Path) -> Result<Vec<u8>, String> {
    let mut out =
        std::fs::read(ca).map_err(|e| format!("{}: cannot read the file: {e}", ca.display()))?;
    out.push(b'\n');
    let system = rustls_native_certs::load_native_certs();
    for cert in system.certs.into_iter().filter(usable_root) {
        out.extend_from_slice(pem::encode(&pem::Pem::new("CERTIFICATE", cert.to_vec())).as_bytes());
    }
    Ok(out)
}

/// Whether rustls takes `cert` as a trust anchor (one odd system root must not refuse them all).
fn usable_root(cert: &CertificateDer<'static>) -> bool {
    RootCertStore::empty().add(cert.clone()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn state(nodes: RedisNodes) -> RedisState {
        RedisState {
            nodes,
            timeout: Duration::from_millis(100),
            password: Some(Secret::new("hunter2".into())),
            ca_file: None,
        }
    }

    #[test]
    fn every_kind_is_built_without_connecting() {
        let single = Redis::new(&state(RedisNodes::Single("redis://127.0.0.1:1/0".into())));
        assert!(!single.map(|r| r.is_cluster()).unwrap_or(true));
        let seeds = vec![
            "rediss://127.0.0.1:1".to_string(),
            "rediss://127.0.0.1:2".to_string(),
        ];
        let cluster = Redis::new(&state(RedisNodes::Cluster(seeds)));
        assert!(cluster.map(|r| r.is_cluster()).unwrap_or(false));
        let sentinel = Redis::new(&state(RedisNodes::Sentinel {
            sentinels: vec!["redis://127.0.0.1:1".into()],
            master_name: "mymaster".into(),
        }));
        assert!(!sentinel.map(|r| r.is_cluster()).unwrap_or(true));
    }

    #[tokio::test]
    async fn a_cluster_that_does_not_answer_fails_within_the_timeout() {
        let seeds = vec!["redis://127.0.0.1:1".to_string()];
        let Ok(redis) = Redis::new(&state(RedisNodes::Cluster(seeds))) else {
            panic!("a cluster client");
        };
        let started = std::time::Instant::now();
        let err = redis.connect(Duration::from_millis(300)).await.err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let shown = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(!shown.is_empty() && !shown.contains("hunter2"), "{shown}");
    }
}
