//! The Redis backend's store of runtime keys, shared by every instance:
//!
//! - `switchyard:{rkeys}:key:<id>`: a hash per key, fields `id`, `team`, `sha256`, `limits`
//!   (JSON), `expires_at` (RFC 3339 or empty), `disabled` (`0`/`1`), `metadata` (JSON),
//!   `created_at`, `updated_at`;
//! - `switchyard:{rkeys}:ids`: the set of ids;
//! - `switchyard:{rkeys}:gen`: a counter raised (`INCR`) after every change;
//! - [`CHANNEL`]: a change is also published there (`PUBLISH`, the key's id); on a single
//!   server every instance subscribes and reloads at once (on a Redis Cluster or behind
//!   Sentinel the poll alone follows changes: it keeps the bound by itself).
//!
//! Only single-key commands (and pipelines of them), no script and no transaction; every key
//! carries the hash tag `{rkeys}`, so on a Redis Cluster they share one slot and a pipeline
//! of them goes to one master (the store is small and changes at an administrator's pace).
//! The connection is the limiter's kind ([`crate::policy::limits::Redis`]): one server, a
//! cluster or Sentinel's master. A create claims its id with `HSETNX … id`, so two
//! instances creating one id get one 201 and one 409. Each instance polls the generation every
//! [`super::POLL_EVERY`] on a thread of its own and reloads every key when it moved: a revoke
//! is in force everywhere within that period plus one reload.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ::redis::aio::ConnectionLike;
use ::redis::{Client, RedisResult};
use futures_util::StreamExt;
use tokio::sync::Notify;

use super::{ApiError, KeyLimits, RuntimeKey, RuntimeKeys, POLL_EVERY};
use crate::config::RedisState;
use crate::policy::limits::{Redis, RedisConn};

/// The set of ids.
pub const IDS: &str = "switchyard:{rkeys}:ids";
/// The generation counter.
pub const GENERATION: &str = "switchyard:{rkeys}:gen";
/// Where each change is published (the id changed); each instance listens.
pub const CHANNEL: &str = "switchyard:rkeys:changed";
/// The longest an admin call waits for Redis.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the start waits for the first load.
const FIRST_LOAD: Duration = Duration::from_secs(3);

/// The hash of the key `id`.
pub fn hash_key(id: &str) -> String {
    format!("switchyard:{{rkeys}}:key:{id}")
}

/// The Redis client, and the keys as last loaded.
pub struct RedisStore {
    redis: Redis,
    last: Mutex<Vec<RuntimeKey>>,
}

/// A connection to the store's Redis: the one place that makes them.
async fn connection(redis: &Redis) -> RedisResult<RedisConn> {
    redis.connect(OP_TIMEOUT).await
}

impl RedisStore {
    /// Checks the URL (and the TLS roots); connects on first use.
    pub fn new(state: &RedisState) -> Result<RedisStore, String> {
        Ok(RedisStore {
            redis: Redis::new(state)?,
            last: Mutex::new(Vec::new()),
        })
    }

    /// The keys as last loaded (for a config reload: no round trip).
    pub fn last_loaded(&self) -> Vec<RuntimeKey> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `op` on a fresh connection, within [`OP_TIMEOUT`]; a failure is a 503.
    async fn call<T, F>(&self, op: F) -> Result<T, ApiError>
    where
        F: AsyncFnOnce(&mut RedisConn) -> RedisResult<T>,
    {
        // Boxed: the cluster connection's futures are deep, and the admin listener's handler
        // awaits this inside its own.
        let run = Box::pin(async {
            let mut conn = connection(&self.redis).await?;
            op(&mut conn).await
        });
        match tokio::time::timeout(OP_TIMEOUT, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ApiError::unavailable(format!(
                "redis error ({:?})",
                e.kind()
            ))),
            Err(_) => Err(ApiError::unavailable("redis did not answer in time")),
        }
    }

    pub async fn all(&self) -> Result<Vec<RuntimeKey>, ApiError> {
        self.call(async |c| load_all(c).await)
            .await
            .inspect(|all| self.remember(all))
    }

    fn remember(&self, all: &[RuntimeKey]) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = all.to_vec();
    }

    pub async fn get(&self, id: &str) -> Result<Option<RuntimeKey>, ApiError> {
        self.call(async |c| {
            let fields: HashMap<String, String> = ::redis::cmd("HGETALL")
                .arg(hash_key(id))
                .query_async(c)
                .await?;
            Ok(from_fields(&fields))
        })
        .await
    }

    /// Adds `record`, claiming its id first; 409 when it is taken.
    pub async fn insert(&self, record: &RuntimeKey) -> Result<(), ApiError> {
        let claimed = self
            .call(async |c| {
                let claimed: i64 = ::redis::cmd("HSETNX")
                    .arg(hash_key(&record.id))
                    .arg("id")
                    .arg(&record.id)
                    .query_async(c)
                    .await?;
                if claimed == 1 {
                    write(c, record).await?;
                    ::redis::cmd("SADD")
                        .arg(IDS)
                        .arg(&record.id)
                        .query_async::<()>(c)
                        .await?;
                    changed(c, &record.id).await?;
                }
                Ok(claimed == 1)
            })
            .await?;
        if claimed {
            Ok(())
        } else {
            Err(ApiError::conflict(format!(
                "a runtime key with id {:?} exists",
                record.id
            )))
        }
    }

    /// Rewrites the record of `record.id`; 404 when it is gone.
    pub async fn replace(&self, record: &RuntimeKey) -> Result<(), ApiError> {
        let found = self
            .call(async |c| {
                let exists: i64 = ::redis::cmd("EXISTS")
                    .arg(hash_key(&record.id))
                    .query_async(c)
                    .await?;
                if exists == 0 {
                    return Ok(false);
                }
                write(c, record).await?;
                // Deleted meanwhile (by another instance): the write made an orphan hash,
                // which would hold the id; take it away again.
                let member: i64 = ::redis::cmd("SISMEMBER")
                    .arg(IDS)
                    .arg(&record.id)
                    .query_async(c)
                    .await?;
                if member == 0 {
                    ::redis::cmd("DEL")
                        .arg(hash_key(&record.id))
                        .query_async::<()>(c)
                        .await?;
                    return Ok(false);
                }
                changed(c, &record.id).await?;
                Ok(true)
            })
            .await?;
        if found {
            Ok(())
        } else {
            Err(ApiError::not_found(&record.id))
        }
    }

    /// Deletes the key `id`; whether it was there.
    pub async fn remove(&self, id: &str) -> Result<bool, ApiError> {
        self.call(async |c| {
            let deleted: i64 = ::redis::cmd("DEL").arg(hash_key(id)).query_async(c).await?;
            ::redis::cmd("SREM")
                .arg(IDS)
                .arg(id)
                .query_async::<()>(c)
                .await?;
            if deleted == 1 {
                changed(c, id).await?;
            }
            Ok(deleted == 1)
        })
        .await
    }
}

/// Raises the generation and publishes the change.
async fn changed(c: &mut impl ConnectionLike, id: &str) -> RedisResult<()> {
    ::redis::cmd("INCR")
        .arg(GENERATION)
        .query_async::<()>(c)
        .await?;
    ::redis::cmd("PUBLISH")
        .arg(CHANNEL)
        .arg(id)
        .query_async::<()>(c)
        .await
}

/// Every key: the set's ids, then one pipelined `HGETALL` each (an id whose hash is gone or
/// partial, mid-change, is left out).
async fn load_all(c: &mut impl ConnectionLike) -> RedisResult<Vec<RuntimeKey>> {
    let ids: Vec<String> = ::redis::cmd("SMEMBERS").arg(IDS).query_async(c).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = ::redis::pipe();
    for id in &ids {
        pipe.cmd("HGETALL").arg(hash_key(id));
    }
    let hashes: Vec<HashMap<String, String>> = pipe.query_async(c).await?;
    Ok(hashes.iter().filter_map(from_fields).collect())
}

/// Writes every field of `record` (one `HSET`).
async fn write(c: &mut impl ConnectionLike, record: &RuntimeKey) -> RedisResult<()> {
    let fields: [(&str, String); 9] = [
        ("id", record.id.clone()),
        ("team", record.team.clone()),
        ("sha256", record.sha256.clone()),
        ("limits", json(&record.limits)),
        ("expires_at", record.expires_at.clone().unwrap_or_default()),
        (
            "disabled",
            if record.disabled { "1" } else { "0" }.to_string(),
        ),
        ("metadata", json(&record.metadata)),
        ("created_at", record.created_at.clone()),
        ("updated_at", record.updated_at.clone()),
    ];
    let mut cmd = ::redis::cmd("HSET");
    cmd.arg(hash_key(&record.id));
    for (name, value) in &fields {
        cmd.arg(*name).arg(value);
    }
    cmd.query_async::<()>(c).await
}

/// `v` as JSON (a hash field).
fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The record of a hash's fields; `None` when one is missing or malformed.
fn from_fields(f: &HashMap<String, String>) -> Option<RuntimeKey> {
    let text = |name: &str| f.get(name).cloned();
    let limits: KeyLimits = serde_json::from_str(f.get("limits")?).ok()?;
    let metadata = serde_json::from_str(f.get("metadata")?).ok()?;
    Some(RuntimeKey {
        id: text("id")?,
        team: text("team")?,
        sha256: text("sha256")?,
        limits,
        expires_at: text("expires_at").filter(|t| !t.is_empty()),
        disabled: f.get("disabled")? == "1",
        metadata,
        created_at: text("created_at")?,
        updated_at: text("updated_at")?,
    })
}

// --- the poller -------------------------------------------------------------------------------

/// Starts the thread that loads the keys and then polls the generation; waits up to
/// [`FIRST_LOAD`] for the first load (Redis down at start: the gateway serves the config's
/// keys, and the runtime ones once Redis answers).
pub(super) fn start_poller(keys: &Arc<RuntimeKeys>) -> Result<(), String> {
    let weak = Arc::downgrade(keys);
    let (ready, loaded) = mpsc::channel();
    std::thread::Builder::new()
        .name("switchyard-runtime-keys".into())
        .spawn(move || poll(&weak, ready))
        .map_err(|e| format!("cannot start the runtime keys' poller: {e}"))?;
    if loaded.recv_timeout(FIRST_LOAD).is_err() {
        tracing::warn!(
            "the runtime keys are not loaded yet (redis does not answer): they are accepted once it does"
        );
    }
    Ok(())
}

/// The poller's loop, on a one-thread runtime; it ends with the [`RuntimeKeys`].
fn poll(weak: &Weak<RuntimeKeys>, ready: mpsc::Sender<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime keys' poller: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let wake = Arc::new(Notify::new());
        if let Some(keys) = weak.upgrade() {
            if let Some(client) = keys.redis().and_then(|store| store.redis.single_client()) {
                tokio::spawn(listen(client, Arc::clone(&wake)));
            }
        }
        let mut conn: Option<RedisConn> = None;
        let mut seen: Option<i64> = None;
        let mut failing = false;
        let mut ready = Some(ready);
        loop {
            let Some(keys) = weak.upgrade() else {
                return;
            };
            let Some(store) = keys.redis() else {
                return;
            };
            let step = tokio::time::timeout(OP_TIMEOUT, poll_once(store, &mut conn, seen)).await;
            let answered = matches!(step, Ok(Ok(_)));
            match step {
                Ok(Ok(Some((generation, all)))) => {
                    store.remember(&all);
                    keys.publish(&keys.snapshot.load(), &all);
                    seen = Some(generation);
                }
                Ok(Ok(None)) => {}
                Ok(Err(_)) | Err(_) => {
                    conn = None;
                    if !failing {
                        tracing::warn!("cannot reach redis for the runtime keys: retrying");
                    }
                    failing = true;
                }
            }
            if answered {
                if failing {
                    tracing::info!("redis answers again: runtime keys are followed again");
                }
                failing = false;
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            drop(keys);
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = wake.notified() => {}
            }
        }
    });
}

/// Wakes the poller at each message on [`CHANNEL`], so that a change is followed at once; a
/// lost subscription only costs the wait for the next poll. Resubscribes every second while
/// Redis cannot be reached. Single server only (a cluster's or Sentinel's instances follow by
/// the poll).
async fn listen(client: Client, wake: Arc<Notify>) {
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(CHANNEL).await.is_ok() {
                let mut messages = pubsub.into_on_message();
                while messages.next().await.is_some() {
                    wake.notify_one();
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One poll: the generation, and every key when it moved since `seen`.
async fn poll_once(
    store: &RedisStore,
    conn: &mut Option<RedisConn>,
    seen: Option<i64>,
) -> RedisResult<Option<(i64, Vec<RuntimeKey>)>> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(connection(&store.redis).await?),
    };
    let generation: Option<i64> = ::redis::cmd("GET").arg(GENERATION).query_async(c).await?;
    let generation = generation.unwrap_or(0);
    if seen == Some(generation) {
        return Ok(None);
    }
    Ok(Some((generation, load_all(c).await?)))
}
