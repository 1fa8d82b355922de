//! The `redis` backend of the response store: one string per response, `SET … PX` with the
//! TTL, shared by every instance that names the same Redis. Keys are
//! `switchyard:{resp}:b:{team}:{id}` (the team percent-encoded like the limiter's names), so
//! a key of another team reads nothing. The connection is the limiter's kind (`[state]`
//! single server, cluster or Sentinel, or the store's own `responses_redis_url`; password, CA
//! file), made on first use and made again after a failed call (behind Sentinel, that finds
//! the new master after a failover); every call is bounded by [`CALL_TIMEOUT`], and after a
//! failed call the next ones fail at once for [`RETRY_AFTER`] (a Redis that does not answer
//! must not hold every request that needs it for the whole timeout).
//!
//! Bounded by what it holds, per team and in total (`[state] responses_team_max_bytes`,
//! `responses_max_bytes`), so that stored responses can never crowd out the limiter's keys.
//! Beside the bodies, three index keys:
//! - `switchyard:{resp}:i:{team}`: a sorted set of the team's response ids, scored by expiry
//!   (epoch ms; with one TTL for all, the oldest first);
//! - `switchyard:{resp}:all`: a sorted set of every `{team}:{id}`, scored the same way;
//! - `switchyard:{resp}:held`: a hash of `{team}:{id}` → the bytes that entry holds
//!   ([`held_bytes`]), and the running sums `total` and `team:{team}`.
//!
//! Saving and deleting are Lua scripts ([`SAVE_LUA`], [`DELETE_LUA`]), so each runs atomically
//! in Redis: however many instances save at once, the sums never overshoot their bounds. A save
//! first forgets the entries whose expiry passed (up to 100 per call, the index entries of
//! bodies Redis already expired), then evicts the team's oldest while the team is over its
//! bound, then the oldest of all while the store is over its own, then writes. The index keys
//! get the TTL at each save, so an idle store leaves nothing behind.
//!
//! Redis Cluster: every key of the store carries the hash tag `{resp}`, so the whole store is
//! one hash slot, on one master. That is what keeps the store-wide bound exact (one script
//! sees every team's sums), and it is why the scripts may delete the bodies they evict: the
//! scripts declare the keys they are called for in `KEYS` (the client routes them by those),
//! and the bodies they evict, found in the indexes, are in the same slot by construction. The
//! store's size is bounded by `responses_max_bytes`; a store too big for one master gets a
//! Redis of its own (`responses_redis_url`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::RedisState;
use crate::policy::limits::{Redis, RedisConn};

/// The most a store call may take (a stored conversation can be large; the limiter's
/// `redis_timeout_ms` is for small scripts).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long calls fail at once after one failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why Redis gave no answer (never quotes the URL or the password).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {} ms", CALL_TIMEOUT.as_millis())]
    Timeout,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis failed less than {} ms ago", RETRY_AFTER.as_millis())]
    RecentlyDown,
}

pub struct RedisStore {
    redis: Redis,
    save_script: redis::Script,
    delete_script: redis::Script,
    /// The connection, once made; dropped after a failed call, so the next one is made anew.
    conn: tokio::sync::Mutex<Option<RedisConn>>,
    /// Until when calls fail at once, after a failed one.
    down_until: Mutex<Option<Instant>>,
}

impl RedisStore {
    pub fn new(state: &RedisState) -> Result<RedisStore, String> {
        Ok(RedisStore {
            redis: Redis::new(state)?,
            save_script: redis::Script::new(SAVE_LUA),
            delete_script: redis::Script::new(DELETE_LUA),
            conn: tokio::sync::Mutex::new(None),
            down_until: Mutex::new(None),
        })
    }

    /// The connection, made on first use (in the requests' runtime) and after a failed call,
    /// within [`CALL_TIMEOUT`].
    async fn connection(&self) -> Result<RedisConn, RedisError> {
        let mut conn = tokio::time::timeout(CALL_TIMEOUT, self.conn.lock())
            .await
            .map_err(|_| RedisError::Timeout)?;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let c = self.redis.connect(CALL_TIMEOUT).await?;
        *conn = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        self.check_down()?;
        let result = async {
            let mut conn = self.connection().await?;
            tokio::time::timeout(CALL_TIMEOUT, cmd.query_async(&mut conn))
                .await
                .map_err(|_| RedisError::Timeout)?
                .map_err(RedisError::Redis)
        }
        .await;
        self.mark(result.is_err()).await;
        result
    }

    /// Keeps `body` under `key` (of `team`, response `id`) for `ttl`, evicting oldest first to
    /// keep the team within `team_max` bytes and the store within `total_max`. Returns the
    /// evictions (for the team's bound, for the store's) and the bytes the store holds after.
    pub async fn save(
        &self,
        team_part: &str,
        id: &str,
        body: &Bytes,
        ttl: Duration,
        bounds: Bounds,
    ) -> Result<Saved, RedisError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let member = format!("{team_part}:{id}");
        let held = held_bytes(&member, body.len());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut call = self.save_script.prepare_invoke();
        call.key(format!("{KEY_PREFIX}{member}"))
            .key(format!("{TEAM_INDEX_PREFIX}{team_part}"))
            .key(ALL_INDEX)
            .key(HELD)
            .arg(body.as_ref())
            .arg(ms)
            .arg(now_ms)
            .arg(&member)
            .arg(id)
            .arg(team_part)
            .arg(held)
            .arg(bounds.team_max)
            .arg(bounds.total_max)
            .arg(KEY_PREFIX)
            .arg(TEAM_INDEX_PREFIX);
        let (team, total, bytes): (i64, i64, i64) = self.invoke(&call).await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Saved {
            evicted_for_team: count(team),
            evicted_for_total: count(total),
            bytes: count(bytes),
        })
    }

    pub async fn load(&self, key: &str) -> Result<Option<Bytes>, RedisError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        let v: Option<Vec<u8>> = self.run(&cmd).await?;
        Ok(v.map(Bytes::from))
    }

    /// The bodies under `keys`, in one `MGET` (one round trip however many).
    pub async fn load_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, RedisError> {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(key);
        }
        let v: Vec<Option<Vec<u8>>> = self.run(&cmd).await?;
        Ok(v.into_iter().map(|b| b.map(Bytes::from)).collect())
    }

    /// Deletes `{team}:{id}` and its index entries; whether there was a body.
    pub async fn delete(&self, team_part: &str, id: &str) -> Result<bool, RedisError> {
        let member = format!("{team_part}:{id}");
        let mut call = self.delete_script.prepare_invoke();
        call.key(format!("{KEY_PREFIX}{member}"))
            .key(ALL_INDEX)
            .key(HELD)
            .arg(&member)
            .arg(KEY_PREFIX)
            .arg(TEAM_INDEX_PREFIX);
        let n: i64 = self.invoke(&call).await?;
        Ok(n > 0)
    }

    /// Runs a script within [`CALL_TIMEOUT`], failing at once for [`RETRY_AFTER`] after a
    /// failure, like [`Self::run`].
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.check_down()?;
        let result = async {
            let mut conn = self.connection().await?;
            tokio::time::timeout(CALL_TIMEOUT, call.invoke_async(&mut conn))
                .await
                .map_err(|_| RedisError::Timeout)?
                .map_err(RedisError::Redis)
        }
        .await;
        self.mark(result.is_err()).await;
        result
    }

    fn check_down(&self) -> Result<(), RedisError> {
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_some_and(|t| Instant::now() < t) {
            return Err(RedisError::RecentlyDown);
        }
        Ok(())
    }

    /// Records how a call went; a failed one also drops the connection (the next call makes
    /// a new one: behind Sentinel, to whichever server is master then).
    async fn mark(&self, failed: bool) {
        {
            let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
            *down = failed.then(|| Instant::now() + RETRY_AFTER);
        }
        if failed {
            if let Ok(mut conn) = self.conn.try_lock() {
                *conn = None;
            }
        }
    }
}

/// The bounds a save keeps, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub team_max: usize,
    pub total_max: usize,
}

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub evicted_for_team: u64,
    pub evicted_for_total: u64,
    /// The bytes the store holds after it, all teams.
    pub bytes: u64,
}

/// The body keys' prefix (then `{team}:{id}`); `crate::response_store`'s `store_key` makes
/// the whole key. Every key of the store carries the hash tag `{resp}` (one cluster slot).
pub const KEY_PREFIX: &str = "switchyard:{resp}:b:";
/// A team's index (then `{team}`).
const TEAM_INDEX_PREFIX: &str = "switchyard:{resp}:i:";
const ALL_INDEX: &str = "switchyard:{resp}:all";
const HELD: &str = "switchyard:{resp}:held";
/// Redis's own bookkeeping per stored response, an estimate: the key's and the value's
/// headers, the expiry entry, the sorted sets' skip-list and dict nodes, the hash's entry.
const REDIS_ENTRY_OVERHEAD: usize = 200;

/// The bytes one stored response holds in Redis: the body, its key ([`KEY_PREFIX`] and
/// `member`), `member` in the store's index and the held hash, the id in the team's index, and
/// [`REDIS_ENTRY_OVERHEAD`].
pub fn held_bytes(member: &str, body_len: usize) -> usize {
    body_len + KEY_PREFIX.len() + 4 * member.len() + REDIS_ENTRY_OVERHEAD
}

/// Saves one response. KEYS: the body's key, the team's index, the store's index, the held
/// hash. ARGV: body, TTL ms, now ms, member `{team}:{id}`, id, team, held bytes, team bound,
/// store bound, body key prefix, team index prefix. Returns {evicted for the team, evicted for
/// the store, bytes held after}.
const SAVE_LUA: &str = r#"
local body_key, team_index, all_index, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local member, id, team = ARGV[4], ARGV[5], ARGV[6]
local size, team_max, total_max = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local key_prefix, team_prefix = ARGV[10], ARGV[11]

local function forget(m)
  local n = tonumber(redis.call('HGET', held, m) or '0')
  local t, i = string.match(m, '^(.*):([^:]*)$')
  redis.call('HDEL', held, m)
  redis.call('ZREM', all_index, m)
  redis.call('ZREM', team_prefix .. t, i)
  redis.call('DEL', key_prefix .. m)
  redis.call('HINCRBY', held, 'total', -n)
  redis.call('HINCRBY', held, 'team:' .. t, -n)
end

local function sum(field)
  return tonumber(redis.call('HGET', held, field) or '0')
end

if redis.call('HEXISTS', held, member) == 1 then forget(member) end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', all_index, '-inf', now, 'LIMIT', 0, 100)) do
  forget(m)
end
local for_team, for_total = 0, 0
while sum('team:' .. team) + size > team_max do
  local oldest = redis.call('ZRANGE', team_index, 0, 0)[1]
  if not oldest then break end
  forget(team .. ':' .. oldest)
  for_team = for_team + 1
end
while sum('total') + size > total_max do
  local oldest = redis.call('ZRANGE', all_index, 0, 0)[1]
  if not oldest then break end
  forget(oldest)
  for_total = for_total + 1
end
local expires = now + ttl
redis.call('SET', body_key, ARGV[1], 'PX', ttl)
redis.call('ZADD', team_index, expires, id)
redis.call('ZADD', all_index, expires, member)
redis.call('HSET', held, member, size)
redis.call('HINCRBY', held, 'team:' .. team, size)
local total = redis.call('HINCRBY', held, 'total', size)
for _, k in ipairs({team_index, all_index, held}) do
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return {for_team, for_total, total}
"#;

/// Deletes one response. KEYS: the body's key, the store's index, the held hash. ARGV: member
/// `{team}:{id}`, body key prefix, team index prefix. Returns how many bodies were deleted.
const DELETE_LUA: &str = r#"
local body_key, all_index, held = KEYS[1], KEYS[2], KEYS[3]
local member, team_prefix = ARGV[1], ARGV[3]
local n = tonumber(redis.call('HGET', held, member) or '0')
local t, i = string.match(member, '^(.*):([^:]*)$')
if redis.call('HEXISTS', held, member) == 1 then
  redis.call('HDEL', held, member)
  redis.call('ZREM', all_index, member)
  redis.call('ZREM', team_prefix .. t, i)
  redis.call('HINCRBY', held, 'total', -n)
  redis.call('HINCRBY', held, 'team:' .. t, -n)
end
return redis.call('DEL', body_key)
"#;
