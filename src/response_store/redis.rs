//! The `redis` backend of the response store: one string per response, `SET … PX` with the
//! TTL, shared by every instance that names the same Redis. Keys are
//! `switchyard:resp:{team}:{id}` (the team percent-encoded like the limiter's names), so a key
//! of another team reads nothing. The connection is the limiter's kind (`[state]` URL,
//! password, CA file), made on first use; every call is bounded by [`CALL_TIMEOUT`], and after a
//! failed call the next ones fail at once for [`RETRY_AFTER`] (a Redis that does not answer
//! must not hold every request that needs it for the whole timeout).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisState;

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
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    /// Until when calls fail at once, after a failed one.
    down_until: Mutex<Option<Instant>>,
}

impl RedisStore {
    pub fn new(state: &RedisState) -> Result<RedisStore, String> {
        Ok(RedisStore {
            client: crate::policy::limits::redis_client(state)?,
            conn: Mutex::new(None),
            down_until: Mutex::new(None),
        })
    }

    /// The connection, made lazily on first use (in the requests' runtime).
    fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        *conn = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        {
            let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
            if down.is_some_and(|t| Instant::now() < t) {
                return Err(RedisError::RecentlyDown);
            }
        }
        let mut conn = self.connection()?;
        let result = tokio::time::timeout(CALL_TIMEOUT, cmd.query_async(&mut conn))
            .await
            .map_err(|_| RedisError::Timeout)
            .and_then(|r| r.map_err(RedisError::Redis));
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        *down = result.is_err().then(|| Instant::now() + RETRY_AFTER);
        result
    }

    pub async fn save(&self, key: &str, body: &Bytes, ttl: Duration) -> Result<(), RedisError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(body.as_ref()).arg("PX").arg(ms);
        self.run::<()>(&cmd).await
    }

    pub async fn load(&self, key: &str) -> Result<Option<Bytes>, RedisError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        let v: Option<Vec<u8>> = self.run(&cmd).await?;
        Ok(v.map(Bytes::from))
    }

    pub async fn delete(&self, key: &str) -> Result<bool, RedisError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        let n: i64 = self.run(&cmd).await?;
        Ok(n > 0)
    }
}
