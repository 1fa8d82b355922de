//! `[state]` (the memory or Redis backend, stored responses) and `[log]` (the usage sink).

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::checks::{non_blank, opt, pem_roots, positive, positive_usize};
use super::providers::api_key;
use super::{Result, Source};
use crate::config::raw;
use crate::config::{
    Log, RedisNodes, RedisState, RuntimeKeysConfig, State, StoredResponses, UsageSink,
};

pub(super) fn state(src: &Source, raw: &raw::State) -> Result<State> {
    let nodes = redis_nodes(src, raw)?;
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
        "redis" => match nodes {
            Some((nodes, tls)) => Ok(State::Redis(redis_state(src, raw, nodes, tls)?)),
            None => Err(src.error(
                raw.backend.as_ref().map(Spanned::span),
                "state.redis_url",
                "backend = \"redis\" requires redis_url (one server), redis_cluster (a Redis \
                 Cluster's seed nodes) or redis_sentinels with redis_master_name"
                    .to_string(),
            )),
        },
        other => Err(src.error(
            raw.backend.as_ref().map(Spanned::span),
            "state.backend",
            format!("unknown backend {other:?} (expected \"memory\" or \"redis\")"),
        )),
    }
}

/// Where Redis is: `redis_url`, `redis_cluster` or `redis_sentinels` (with
/// `redis_master_name`), at most one of them, each URL checked like [`redis_url_as`]; and
/// whether its URLs are `rediss://` (all of a list are one or the other). `None`: none given.
fn redis_nodes(src: &Source, raw: &raw::State) -> Result<Option<(RedisNodes, bool)>> {
    let given = [
        raw.redis_url
            .as_ref()
            .map(|u| (u.span(), "state.redis_url")),
        raw.redis_cluster
            .as_ref()
            .map(|u| (u.span(), "state.redis_cluster")),
        raw.redis_sentinels
            .as_ref()
            .map(|u| (u.span(), "state.redis_sentinels")),
    ];
    let mut given = given.into_iter().flatten();
    let first = given.next();
    if let (Some((_, first)), Some((span, second))) = (first, given.next()) {
        return Err(src.error(
            Some(span),
            second,
            format!(
                "{} is given too: name Redis once (redis_url for one server, redis_cluster for \
                 a cluster, redis_sentinels for Sentinel)",
                first.trim_start_matches("state.")
            ),
        ));
    }
    if raw.redis_sentinels.is_none() {
        if let Some(name) = &raw.redis_master_name {
            return Err(src.at(
                name,
                "state.redis_master_name",
                "only with redis_sentinels (the master set they are asked for)",
            ));
        }
    }
    if let Some(url) = &raw.redis_url {
        redis_url_as(src, url, "state.redis_url")?;
        let tls = url.get_ref().starts_with("rediss://");
        return Ok(Some((RedisNodes::Single(url.get_ref().clone()), tls)));
    }
    if let Some(seeds) = &raw.redis_cluster {
        let (seeds, tls) = url_list(src, seeds, "state.redis_cluster")?;
        return Ok(Some((RedisNodes::Cluster(seeds), tls)));
    }
    let Some(list) = &raw.redis_sentinels else {
        return Ok(None);
    };
    let (sentinels, tls) = url_list(src, list, "state.redis_sentinels")?;
    let master_name = match &raw.redis_master_name {
        Some(name) => non_blank(src, name, "state.redis_master_name")?,
        None => {
            return Err(src.at(
                list,
                "state.redis_master_name",
                "redis_sentinels requires redis_master_name (the name the sentinels monitor \
                 the master under)",
            ))
        }
    };
    Ok(Some((
        RedisNodes::Sentinel {
            sentinels,
            master_name,
        },
        tls,
    )))
}

/// A non-empty list of Redis URLs (each checked like [`redis_url_as`], without a database
/// number: a cluster has only database 0, and sentinels have none), all `redis://` or all
/// `rediss://`; the URLs and whether they are TLS.
fn url_list(
    src: &Source,
    list: &Spanned<Vec<Spanned<String>>>,
    path: &str,
) -> Result<(Vec<String>, bool)> {
    let Some(first) = list.get_ref().first() else {
        return Err(src.at(
            list,
            path,
            "must name at least one node (redis://host:port)",
        ));
    };
    let tls = first.get_ref().starts_with("rediss://");
    let mut out = Vec::new();
    for url in list.get_ref() {
        let info = redis_url_as(src, url, path)?;
        if url.get_ref().starts_with("rediss://") != tls {
            return Err(src.at(
                url,
                path,
                "mixes redis:// and rediss://: every node is reached with TLS or none is",
            ));
        }
        if info.redis_settings().db() != 0 {
            return Err(src.at(
                url,
                path,
                "names a database: a cluster has only database 0 (and a sentinel none)",
            ));
        }
        out.push(url.get_ref().clone());
    }
    Ok((out, tls))
}

/// `[state] responses_ttl_s`, `responses_max_bytes`, `responses_team_max_bytes`,
/// `responses_max_entries`, `vendor_state_ttl_s` (at most 366 days): positive integers; absent ones keep [`StoredResponses::default`]
/// (the team's bound no more than the total's). A team bound over the total is refused.
pub(super) fn stored_responses(src: &Source, raw: &raw::State) -> Result<StoredResponses> {
    let d = StoredResponses::default();
    let ttl = match &raw.responses_ttl_s {
        None => d.ttl,
        Some(v) => Duration::from_secs(positive(src, v, "state.responses_ttl_s", 366 * 86_400)?),
    };
    let max_bytes = match &raw.responses_max_bytes {
        None => d.max_bytes,
        Some(v) => positive_usize(src, v, "state.responses_max_bytes")?,
    };
    let team_max_bytes = match &raw.responses_team_max_bytes {
        None => d.team_max_bytes.min(max_bytes),
        Some(v) => {
            let n = positive_usize(src, v, "state.responses_team_max_bytes")?;
            if n > max_bytes {
                return Err(src.at(
                    v,
                    "state.responses_team_max_bytes",
                    format!(
                        "{n} is more than responses_max_bytes ({max_bytes}): one team's bound \
                         cannot exceed the whole store's"
                    ),
                ));
            }
            n
        }
    };
    let max_entries = match &raw.responses_max_entries {
        None => d.max_entries,
        Some(v) => positive_usize(src, v, "state.responses_max_entries")?,
    };
    let vendor_state_ttl = match &raw.vendor_state_ttl_s {
        None => d.vendor_state_ttl,
        Some(v) => Duration::from_secs(positive(src, v, "state.vendor_state_ttl_s", 366 * 86_400)?),
    };
    Ok(StoredResponses {
        ttl,
        max_bytes,
        team_max_bytes,
        max_entries,
        vendor_state_ttl,
    })
}

/// `[state] responses_redis_url`: the stored responses' own Redis, checked like `redis_url`,
/// with the same password and CA settings; `None` without it.
pub(super) fn responses_redis(src: &Source, raw: &raw::State) -> Result<Option<RedisState>> {
    let Some(url) = &raw.responses_redis_url else {
        return Ok(None);
    };
    redis_url_as(src, url, "state.responses_redis_url")?;
    let tls = url.get_ref().starts_with("rediss://");
    redis_state(src, raw, RedisNodes::Single(url.get_ref().clone()), tls).map(Some)
}

/// A `redis://` or `rediss://` URL without a password (the config holds no secret: the
/// password comes from `redis_password_env`), for the setting at `path`; its parsed form.
/// The URL is never quoted in a message.
fn redis_url_as(src: &Source, url: &Spanned<String>, path: &str) -> Result<redis::ConnectionInfo> {
    let u = url.get_ref();
    let rest = u
        .strip_prefix("redis://")
        .or_else(|| u.strip_prefix("rediss://"));
    if rest.is_none_or(str::is_empty) {
        return Err(src.at(
            url,
            path,
            "must be a URL starting with redis:// or rediss:// (TLS)",
        ));
    }
    let info = redis::IntoConnectionInfo::into_connection_info(u.as_str()).map_err(|_| {
        src.at(
            url,
            path,
            "not a valid Redis URL (redis[s]://[user@]host[:port][/db])",
        )
    })?;
    if u.contains('#') {
        return Err(src.at(
            url,
            path,
            "a #fragment (#insecure) is refused: the server's certificate is always verified; \
             name a private CA in redis_ca_file",
        ));
    }
    if info.redis_settings().password().is_some() {
        return Err(src.at(
            url,
            path,
            "holds a password: remove it from the URL and name the environment variable that \
             holds it in redis_password_env",
        ));
    }
    Ok(info)
}

/// The Redis backend's settings: where it is, the timeout, the password from its environment
/// variable, the extra CA file (read now; only when `tls`, the nodes' URLs being `rediss://`).
fn redis_state(src: &Source, raw: &raw::State, nodes: RedisNodes, tls: bool) -> Result<RedisState> {
    let timeout = match &raw.redis_timeout_ms {
        None => Duration::from_millis(100),
        Some(ms) => Duration::from_millis(positive(src, ms, "state.redis_timeout_ms", 60_000)?),
    };
    let password = opt(raw.redis_password_env.as_ref(), |var| {
        api_key(src, var, "state.redis_password_env")
    })?
    .flatten();
    let ca_file = match &raw.redis_ca_file {
        None => None,
        Some(ca) if !tls => return Err(src.at(
            ca,
            "state.redis_ca_file",
            "redis_ca_file requires a rediss:// (TLS) redis_url, redis_cluster or redis_sentinels",
        )),
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
        nodes,
        timeout,
        password,
        ca_file,
    })
}

/// `[server] admin_token_env` (an environment variable read now, like a provider's
/// `api_key_env`) and `[state] keys_file` (default `keys.json` in `[state] dir`).
pub(super) fn runtime_keys(
    src: &Source,
    server: &raw::Server,
    raw: &raw::State,
) -> Result<RuntimeKeysConfig> {
    let admin_token = opt(server.admin_token_env.as_ref(), |var| {
        api_key(src, var, "server.admin_token_env")
    })?
    .flatten();
    let keys_file = match (&raw.keys_file, &raw.dir) {
        (Some(f), _) => PathBuf::from(non_blank(src, f, "state.keys_file")?),
        (None, Some(d)) => PathBuf::from(d.get_ref()).join("keys.json"),
        (None, None) => PathBuf::from("data").join("keys.json"),
    };
    Ok(RuntimeKeysConfig {
        admin_token,
        keys_file,
    })
}

pub(super) fn log(src: &Source, raw: &raw::Log) -> Result<Log> {
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

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::*;

    #[test]
    fn admin_token_and_keys_file() {
        let c = load("").unwrap();
        assert_eq!(c.runtime_keys.admin_token, None);
        assert_eq!(c.runtime_keys.keys_file, PathBuf::from("data/keys.json"));
        let c = load("[state]\ndir = \"/var/lib/sy\"\n").unwrap();
        assert_eq!(
            c.runtime_keys.keys_file,
            PathBuf::from("/var/lib/sy/keys.json")
        );
        let c = load("[state]\nkeys_file = \"/etc/sy/k.json\"\n").unwrap();
        assert_eq!(c.runtime_keys.keys_file, PathBuf::from("/etc/sy/k.json"));
        rejects(
            "[state]\nkeys_file = \" \" # <-\n",
            "state.keys_file",
            "must not be empty",
        );
        rejects(
            "[server]\nadmin_token_env = \"SY_TEST_UNSET_ADMIN_TOKEN\" # <-\n",
            "server.admin_token_env",
            "SY_TEST_UNSET_ADMIN_TOKEN is not set",
        );
        // PATH is set in every test environment: the token is read, and never shown.
        let c = load("[server]\nadmin_token_env = \"PATH\"\n").unwrap();
        let token = c.runtime_keys.admin_token.as_ref().unwrap();
        assert_eq!(format!("{token:?}"), "*****");
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
        assert!(
            matches!(&c.state, State::Redis(r) if r.nodes == RedisNodes::Single("rediss://default@cache:6380/2".into()))
        );
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
    fn cluster_and_sentinel_checks() {
        let cluster = "[state]\nbackend = \"redis\"\nredis_cluster = [\"redis://a:7000\", \"redis://b:7001\"]\n";
        let c = load(cluster).unwrap();
        assert!(matches!(&c.state, State::Redis(r) if r.nodes
            == RedisNodes::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])));
        let c = load(
            "[state]\nbackend = \"redis\"\nredis_sentinels = [\"rediss://s:26379\"]\n\
             redis_master_name = \"mymaster\"\n",
        )
        .unwrap();
        assert!(
            matches!(&c.state, State::Redis(r) if r.nodes == RedisNodes::Sentinel {
                sentinels: vec!["rediss://s:26379".into()],
                master_name: "mymaster".into(),
            })
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://a\"\nredis_cluster = [\"redis://b:7000\"] # <-\n",
            "state.redis_cluster",
            "redis_url is given too: name Redis once",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_cluster = [] # <-\n",
            "state.redis_cluster",
            "must name at least one node",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_cluster = [\"redis://a:7000\", \"rediss://b:7001\"] # <-\n",
            "state.redis_cluster",
            "mixes redis:// and rediss://",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_cluster = [\"redis://a:7000/3\"] # <-\n",
            "state.redis_cluster",
            "names a database: a cluster has only database 0",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_cluster = [\"redis://:pw@a:7000\"] # <-\n",
            "state.redis_cluster",
            "holds a password",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_sentinels = [\"redis://s:26379\"] # <-\n",
            "state.redis_master_name",
            "redis_sentinels requires redis_master_name",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://a\"\nredis_master_name = \"m\" # <-\n",
            "state.redis_master_name",
            "only with redis_sentinels",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_sentinels = [\"redis://s:26379\"]\nredis_master_name = \" \" # <-\n",
            "state.redis_master_name",
            "must not be empty",
        );
        rejects(
            "[state]\nbackend = \"redis\"\nredis_cluster = [\"redis://a:7000\"]\nredis_ca_file = \"ca.pem\" # <-\n",
            "state.redis_ca_file",
            "requires a rediss://",
        );
    }
}
