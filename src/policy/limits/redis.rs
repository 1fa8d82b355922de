//! The `redis` backend: counters shared by every instance, one Lua script per admission and
//! one per settle (one round trip each; a script runs atomically, so "check every limit of key
//! and team, then take from all" needs no lock).
//!
//! Layout: every key of an admission starts with its team's hash tag, `switchyard:{t:<team>}:`
//! ([`base_key`]), then `k:<key id>` (the key's counters), `t` (the team's) or
//! `u:<team>:<user>` (a user's, its `memory::user_id`), each name with `%`, `:`, `{`, `}`
//! percent-encoded; a user has only the two budget hashes. On a Redis Cluster the tag puts all
//! the keys one script touches in one hash slot (the cluster client routes the script by its
//! `KEYS`, which name every key it touches), and spreads teams over the masters.
//!
//! | key (after the team's prefix) | type | holds | expires |
//! |---|---|---|---|
//! | `{who}:rpm`, `{who}:tpm` | string | GCRA arrival time (µs, Redis clock) | when the bucket is full again |
//! | `{who}:inflight` | sorted set | admitted request ids, scored by their deadline | safety TTL after the last admission |
//! | `{who}:tpd:{day}` | hash | `spent`, `reserved` tokens | a day after the day ends |
//! | `{who}:upm:{month}` | hash | `spent`, `reserved` nano-dollars | a day after the month ends |
//!
//! These names replaced `switchyard:{k|t|u}:<name>:…` when cluster support came: a gateway
//! upgraded across it starts with full buckets and the current periods' spending forgotten,
//! once (README, "Shared state on Redis Cluster and Sentinel").
//!
//! Rates are GCRA (not a sliding window), like the memory backend, computed on Redis' clock
//! (`TIME`) so that every instance agrees. A refund or an overdraft moves the arrival time back
//! (never before now: a full bucket) or forward. In-flight requests are members of a sorted
//! set scored by `now + safety TTL` (the longest provider `total_timeout_ms` + 60 s): members
//! past their score are dropped at the next admission, so the slots of a crashed instance come
//! back by themselves. A crashed instance's budget reservations stay counted until the period
//! ends (conservative: at most its in-flight requests' reservations), and so do those of a
//! settle that could not reach Redis.
//!
//! Redis down: see [`super`]'s module doc. The connection (`super::connect`: one server, a
//! cluster, or Sentinel's master) is made on first use, in the tokio runtime of the requests;
//! after a failure, [`Shared::probe_if_due`] builds a fresh connection in the background once a
//! second (behind Sentinel, asking the sentinels again: that is how a failover is followed).
//! The budget gauges' reads are one pipeline on a single server, one command per budget
//! (sent at once) on a cluster, where a pipeline must stay within a slot.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::Script;

use super::budget::{money_cap, Budget, Period};
use super::connect::{Conn, Redis};
use super::memory::{Periods, Refusal, Spending, CONCURRENCY_RETRY};
use super::{Granted, Hold, LimitKind, Need, RateHeaders, RateStatus, Refused, Scope, Who};
use crate::config::{Config, Key, Limits, RedisState, Team};
use crate::observability::metrics::Metrics;

/// Timeouts in a row that make an outage (one connection error does): a single slow answer
/// under load sends only its own request to the memory limiter.
const TIMEOUTS_FOR_OUTAGE: u32 = 3;
/// How often Redis is probed while it is down.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// The most a probe (a new connection and a `PING`) may take, and the budget of the calls
/// made before Redis first answered: a gateway that just started connects (and loads its
/// scripts) under its first burst, which must not be mistaken for slowness.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a budget's counters outlive their period (for the settles of requests that
/// started in it).
const BUDGET_GRACE_SECS: u64 = 86_400;

/// Admission (and, with `ARGV[7] = "peek"`, the headers alone). KEYS: for the key, the team
/// then the user, `rpm, tpm, inflight, tpd:{day}, upm:{month}`. ARGV: id, tokens,
/// nano-dollars, safety TTL (ms), day and month expiry (unix ms), mode; then for the key, the
/// team and the user `rpm, tpm, max_concurrent, tokens_per_day, usd_per_month
/// (nano-dollars)`, -1 for none (a user has budgets only, and none without a user); then the
/// floors (the least a budget must have left: tokens, nano-dollars).
/// Returns 35 integers: status (1 admitted, 0 refused, 2 peek), refusing scope (0 key, 1 team,
/// 2 user), limit (1 rpm, 2 tpm, 3 concurrency, 4 tokens/day, 5 usd/month), wait (ms), the
/// limit's value; then for key, team and user, rpm and tpm: limit (-1 none), remaining, reset
/// (ms); then for key, team and user: day tokens and month nano-dollars spent + reserved;
/// then for key, team and user: the day tokens and month nano-dollars reserved by this
/// admission (0: none).
const ADMIT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tokens = tonumber(ARGV[2])
local usd = tonumber(ARGV[3])
local mode = ARGV[7]
local floor_tokens = tonumber(ARGV[23])
local floor_usd = tonumber(ARGV[24])

local function lim(s, i) return tonumber(ARGV[7 + s * 5 + i]) end

local function tat_of(key)
  local v = redis.call('GET', key)
  if v then return math.max(tonumber(v), now) end
  return now
end

local function set_tat(key, tat)
  local ms = math.ceil((tat - now) / 1000)
  if ms <= 0 then redis.call('DEL', key)
  else redis.call('SET', key, string.format('%.17g', tat), 'PX', ms) end
end

-- GCRA, burst = limit per minute: the new arrival time, or nil and the wait (us).
local function gcra(key, limit, n)
  local T = 60000000 / limit
  local tat = tat_of(key)
  local earliest = tat + T * (n - limit)
  if now < earliest then return nil, earliest - now end
  return tat + T * n, 0
end

local function status(key, limit)
  if limit < 0 then return -1, 0, 0 end
  local T = 60000000 / limit
  local tat = tat_of(key)
  local remaining = math.floor((now + T * limit - tat) / T)
  if remaining < 0 then remaining = 0 end
  if remaining > limit then remaining = limit end
  return limit, remaining, math.ceil((tat - now) / 1000)
end

local function used(key, cap)
  if cap < 0 then return 0 end
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  return (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
end

-- What a budget reserves (see budget.rs `Budget::grant`): the demand when it fits, else all
-- that is left when that covers the floor, else nil (refused).
local function grant(key, cap, demand, floor)
  local left = cap - used(key, cap)
  if left < 0 then left = 0 end
  if demand <= left then return demand end
  if left > 0 and floor <= left then return left end
  return nil
end

local grants = {0, 0, 0, 0, 0, 0}
local fs, fc, fw, fcap = -1, 0, 0, 0
local function refuse(s, code, wait, cap)
  local rank = (code >= 4) and 1 or 0
  local cur = (fc >= 4) and 1 or 0
  if fs < 0 or rank > cur or (rank == cur and wait > fw) then
    fs, fc, fw, fcap = s, code, wait, cap
  end
end

if mode == 'admit' then
  local plans = {}
  for s = 0, 2 do
    local k = s * 5
    local p = {}
    local rpm, tpm, conc, tpd, upm = lim(s, 1), lim(s, 2), lim(s, 3), lim(s, 4), lim(s, 5)
    if rpm >= 0 then
      local tat, wait = gcra(KEYS[k + 1], rpm, 1)
      if tat then p.rpm = tat else refuse(s, 1, wait, rpm) end
    end
    if tpm >= 0 then
      local tat, wait = gcra(KEYS[k + 2], tpm, math.min(tokens, tpm))
      if tat then p.tpm = tat else refuse(s, 2, wait, tpm) end
    end
    if conc >= 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
      if redis.call('ZCARD', KEYS[k + 3]) >= conc then refuse(s, 3, 0, conc) end
    end
    if tpd >= 0 and tokens > 0 then
      local g = grant(KEYS[k + 4], tpd, tokens, floor_tokens)
      if g then p.day = g else refuse(s, 4, 0, tpd) end
    end
    if upm >= 0 and usd > 0 then
      local g = grant(KEYS[k + 5], upm, usd, floor_usd)
      if g then p.month = g else refuse(s, 5, 0, upm) end
    end
    plans[s] = p
  end
  if fs < 0 then
    for s = 0, 2 do
      local k = s * 5
      local p = plans[s]
      if p.rpm then set_tat(KEYS[k + 1], p.rpm) end
      if p.tpm then set_tat(KEYS[k + 2], p.tpm) end
      if lim(s, 3) >= 0 then
        redis.call('ZADD', KEYS[k + 3], string.format('%.17g', now + tonumber(ARGV[4]) * 1000), ARGV[1])
        redis.call('PEXPIRE', KEYS[k + 3], ARGV[4])
      end
      if p.day then
        redis.call('HINCRBY', KEYS[k + 4], 'reserved', string.format('%d', p.day))
        redis.call('PEXPIREAT', KEYS[k + 4], ARGV[5])
        grants[s * 2 + 1] = p.day
      end
      if p.month then
        redis.call('HINCRBY', KEYS[k + 5], 'reserved', string.format('%d', p.month))
        redis.call('PEXPIREAT', KEYS[k + 5], ARGV[6])
        grants[s * 2 + 2] = p.month
      end
    end
  end
end

local st = 2
if mode == 'admit' then st = (fs < 0) and 1 or 0 end
local out = {st, fs, fc, math.ceil(fw / 1000), fcap}
for s = 0, 2 do
  for i = 1, 2 do
    local l, r, reset = status(KEYS[s * 5 + i], lim(s, i))
    out[#out + 1] = l
    out[#out + 1] = r
    out[#out + 1] = reset
  end
end
for s = 0, 2 do
  out[#out + 1] = used(KEYS[s * 5 + 4], lim(s, 4))
  out[#out + 1] = used(KEYS[s * 5 + 5], lim(s, 5))
end
for i = 1, 6 do out[#out + 1] = grants[i] end
return out
"#;

/// Settle. KEYS: for the key, the team then the user, `rpm, tpm, inflight, tpd:{admitted},
/// tpd:{now}, upm:{admitted}, upm:{now}`. ARGV: id, refund (1/0), tokens used, nano-dollars
/// used, day and month expiry (unix ms); then for the key, the team and the user: rpm taken
/// (its limit, or -1), tpm limit (-1 none), tokens reserved from it, in flight (1/0), day and
/// month reservations.
const SETTLE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local refund = ARGV[2] == '1'
local tokens = tonumber(ARGV[3])

-- Moves a GCRA's arrival time by n units (back for a refund, never before now).
local function shift(key, limit, n)
  local T = 60000000 / limit
  local v = redis.call('GET', key)
  local tat = now
  if v then tat = math.max(tonumber(v), now) end
  tat = math.max(tat + T * n, now)
  local ms = math.ceil((tat - now) / 1000)
  if ms <= 0 then redis.call('DEL', key)
  else redis.call('SET', key, string.format('%.17g', tat), 'PX', ms) end
end

local function budget(admitted, current, reserved, spent, expire)
  if reserved == '0' then return end
  if redis.call('EXISTS', admitted) == 1 then
    redis.call('HINCRBY', admitted, 'reserved', '-' .. reserved)
  end
  if not refund then
    redis.call('HINCRBY', current, 'spent', spent)
    redis.call('PEXPIREAT', current, expire)
  end
end

for s = 0, 2 do
  local k = s * 7
  local a = 6 + s * 6
  local rpm, tpm, reserved = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if refund and rpm >= 0 then shift(KEYS[k + 1], rpm, -1) end
  if tpm >= 0 then
    local used = tokens
    if refund then used = 0 end
    if used ~= reserved then shift(KEYS[k + 2], tpm, used - reserved) end
  end
  if ARGV[a + 4] == '1' then redis.call('ZREM', KEYS[k + 3], ARGV[1]) end
  budget(KEYS[k + 4], KEYS[k + 5], ARGV[a + 5], ARGV[3], ARGV[5])
  budget(KEYS[k + 6], KEYS[k + 7], ARGV[a + 6], ARGV[4], ARGV[6])
end
return 1
"#;

/// Why a Redis call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("no answer in time")]
    Timeout,
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply: {0}")]
    Reply(String),
}

/// The shared backend: a Redis connection, the scripts, and whether Redis is up.
pub struct Shared {
    redis: Redis,
    conn: ArcSwapOption<Conn>,
    admit: Script,
    settle: Script,
    up: AtomicBool,
    /// Whether Redis has answered since the connection was made (see [`PROBE_TIMEOUT`]).
    answered: AtomicBool,
    /// Held while the first connection is made.
    connecting: tokio::sync::Mutex<()>,
    /// Calls that timed out since the last answer.
    timeouts_in_a_row: AtomicU32,
    probing: AtomicBool,
    /// When Redis went down or was last probed; the next probe waits [`RETRY_EVERY`].
    last_try: Mutex<Option<Instant>>,
    /// How long an in-flight entry lives without its settle (ms).
    safety_ttl_ms: AtomicU64,
    /// How long a call may wait once Redis has answered (`[state] redis_timeout_ms`).
    call_timeout: Duration,
}

impl Shared {
    /// Checks the URL (and the TLS roots); connects on first use.
    pub(crate) fn new(state: &RedisState) -> Result<Shared, String> {
        let redis = Redis::new(state)?;
        let call_timeout = state.timeout;
        Ok(Shared {
            redis,
            conn: ArcSwapOption::empty(),
            admit: Script::new(ADMIT_LUA),
            settle: Script::new(SETTLE_LUA),
            up: AtomicBool::new(true),
            timeouts_in_a_row: AtomicU32::new(0),
            connecting: tokio::sync::Mutex::new(()),
            answered: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            last_try: Mutex::new(None),
            safety_ttl_ms: AtomicU64::new(660_000),
            call_timeout,
        })
    }

    /// The in-flight safety TTL: the longest `total_timeout_ms` of the providers plus a minute
    /// (no request lives longer, so no live request loses its slot).
    pub(crate) fn sync(&self, config: &Config) {
        let longest = config
            .providers
            .iter()
            .map(|p| p.timeouts.total)
            .max()
            .unwrap_or(Duration::from_secs(600));
        let ttl = longest + Duration::from_secs(60);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.safety_ttl_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Records a failed call (the request it was for went to the memory limiter). A connection
    /// error, or [`TIMEOUTS_FOR_OUTAGE`] timeouts in a row, is an outage: its start is logged
    /// once, the gauge drops to 0 and requests stop asking Redis until a probe succeeds.
    pub(crate) fn went_down(&self, error: &SharedError, metrics: &Metrics) {
        if matches!(error, SharedError::Timeout) {
            let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::AcqRel) + 1;
            if in_a_row < TIMEOUTS_FOR_OUTAGE {
                if in_a_row == 1 {
                    tracing::warn!(
                        "redis answered slowly (over {} ms): a request was limited by this instance alone",
                        self.call_timeout.as_millis()
                    );
                }
                return;
            }
        }
        *self.last_try.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if self.up.swap(false, Ordering::AcqRel) {
            metrics.limits_backend_up.set(0);
            tracing::warn!(
                %error,
                "redis is unreachable: limits and budgets are enforced per instance until it answers again"
            );
        }
    }

    /// While Redis is down: at most once per [`RETRY_EVERY`], tries a fresh connection in the
    /// background; when it answers, limits are shared again.
    pub(crate) fn probe_if_due(self: &Arc<Self>, metrics: &Arc<Metrics>) {
        let due = {
            let last = self.last_try.lock().unwrap_or_else(|p| p.into_inner());
            last.is_none_or(|t| t.elapsed() >= RETRY_EVERY)
        };
        if !due || self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::Release);
            return;
        };
        let (shared, metrics) = (self.clone(), metrics.clone());
        runtime.spawn(async move { shared.probe(&metrics).await });
    }

    async fn probe(&self, metrics: &Metrics) {
        let attempt = async {
            let mut conn = self.redis.connect(PROBE_TIMEOUT).await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            // A restarted Redis has no scripts: load them before requests come back.
            self.admit.load_async(&mut conn).await?;
            self.settle.load_async(&mut conn).await?;
            Ok::<_, SharedError>(conn)
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(conn)) => {
                self.conn.store(Some(Arc::new(conn)));
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                self.up.store(true, Ordering::Release);
                metrics.limits_backend_up.set(1);
                tracing::info!("redis answers again: limits and budgets are shared again");
            }
            Ok(Err(_)) | Err(_) => {
                *self.last_try.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            }
        }
        self.probing.store(false, Ordering::Release);
    }

    /// The connection, made on first use: one for all requests (a burst at startup must not
    /// open one each; the others wait for it, within [`PROBE_TIMEOUT`]: a single server's is
    /// lazy and connects with the first command, a cluster's reads the slot map, Sentinel's
    /// asks the sentinels for the master), with the scripts loaded in the background so the
    /// first requests rarely pay the `NOSCRIPT` round trips.
    async fn connection(&self) -> Result<Conn, SharedError> {
        if let Some(conn) = self.conn.load_full() {
            return Ok((*conn).clone());
        }
        let only_one = tokio::time::timeout(PROBE_TIMEOUT, self.connecting.lock());
        let _only_one = only_one.await.map_err(|_| SharedError::Timeout)?;
        if let Some(conn) = self.conn.load_full() {
            return Ok((*conn).clone());
        }
        let conn = self.redis.connect(PROBE_TIMEOUT).await?;
        self.conn.store(Some(Arc::new(conn.clone())));
        self.preload(conn.clone());
        Ok(conn)
    }

    /// Loads both scripts on `conn` in the background (no request waits for it; on a
    /// cluster, `SCRIPT LOAD` goes to every master).
    fn preload(&self, mut conn: Conn) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let scripts = [self.admit.clone(), self.settle.clone()];
        runtime.spawn(async move {
            for script in scripts {
                let load = script.load_async(&mut conn);
                if tokio::time::timeout(PROBE_TIMEOUT, load).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Runs the admission script for `who`.
    pub(crate) async fn admit(
        &self,
        who: &Who<'_>,
        need: Need,
        periods: Periods,
    ) -> Result<Result<Granted, Refused>, SharedError> {
        let (id, reply) = self.run_admit("admit", who, need, periods).await?;
        let mut reply = Reply::parse(&reply)?;
        let (usd, tokens) = budget_left(who, &reply.budgets);
        reply.headers.budget_usd_left = usd;
        reply.headers.budget_tokens_left = tokens;
        if reply.status != 1 {
            return Ok(Err(Box::new((
                reply.refusal(need, periods)?,
                reply.headers,
            ))));
        }
        let holds = [
            hold(&who.key.limits, need, reply.grants[0]),
            hold(&who.team.limits, need, reply.grants[1]),
            hold(user_limits(who), need, reply.grants[2]),
        ];
        Ok(Ok(Granted {
            periods,
            holds,
            headers: reply.headers,
            shared_id: Some(id),
            budgets: Some(reply.budgets),
        }))
    }

    /// The headers of `key` and `team` as they stand.
    pub(crate) async fn peek(
        &self,
        key: &Key,
        team: &Team,
        periods: Periods,
    ) -> Result<RateHeaders, SharedError> {
        let who = Who {
            key,
            team,
            user: None,
            user_limits: &team.user_limits,
        };
        let (_, reply) = self
            .run_admit("peek", &who, Need::default(), periods)
            .await?;
        let reply = Reply::parse(&reply)?;
        let (usd, tokens) = budget_left(&who, &reply.budgets);
        Ok(RateHeaders {
            budget_usd_left: usd,
            budget_tokens_left: tokens,
            ..reply.headers
        })
    }

    async fn run_admit(
        &self,
        mode: &str,
        who: &Who<'_>,
        need: Need,
        periods: Periods,
    ) -> Result<(String, Vec<i64>), SharedError> {
        let id = format!("{:032x}", rand::random::<u128>());
        let mut call = self.admit.prepare_invoke();
        let team = who.team.name.as_str();
        let names = [
            (Scope::Key, who.key.id.as_str()),
            (Scope::Team, team),
            (Scope::User, who.user.unwrap_or("-")),
        ];
        for (scope, name) in names {
            let base = base_key(team, scope, name);
            call.key(format!("{base}:rpm"))
                .key(format!("{base}:tpm"))
                .key(format!("{base}:inflight"))
                .key(format!("{base}:tpd:{}", periods.day))
                .key(format!("{base}:upm:{}", periods.month));
        }
        call.arg(&id)
            .arg(need.tokens)
            .arg(need.usd_nanos)
            .arg(self.safety_ttl_ms.load(Ordering::Relaxed))
            .arg(expiry_ms(Period::Day, periods))
            .arg(expiry_ms(Period::Month, periods))
            .arg(mode);
        for limits in [&who.key.limits, &who.team.limits, user_limits(who)] {
            call.arg(opt(limits.rpm.map(u64::from)))
                .arg(opt(limits.tpm.map(u64::from)))
                .arg(opt(limits.max_concurrent.map(u64::from)))
                .arg(opt(limits.tokens_per_day))
                .arg(opt(limits.usd_per_month.map(money_cap)));
        }
        call.arg(need.floor_tokens).arg(need.floor_usd_nanos);
        let reply: Vec<i64> = self.invoke(&call).await?;
        Ok((id, reply))
    }

    /// What every key and team with a budget has spent and reserved in the current day and
    /// month, read in one pipelined round trip (`HMGET spent reserved` of each budget hash),
    /// within the call timeout: the gauges of a scrape.
    pub(crate) async fn budgets(
        &self,
        config: &Config,
        runtime_keys: &[Arc<Key>],
        periods: Periods,
    ) -> Result<Spending, SharedError> {
        let mut hashes: Vec<String> = Vec::new();
        let mut asked: Vec<((Scope, String), Period)> = Vec::new();
        let team_of = |k: &Key| config.teams.get(k.team).map_or("", |t| t.name.as_str());
        let keys = config
            .keys
            .iter()
            .chain(runtime_keys)
            .map(|k| (team_of(k), Scope::Key, &k.id, &k.limits));
        let teams = config
            .teams
            .iter()
            .map(|t| (t.name.as_str(), Scope::Team, &t.name, &t.limits));
        for (team, scope, name, limits) in keys.chain(teams) {
            let base = base_key(team, scope, name);
            if limits.tokens_per_day.is_some() {
                hashes.push(format!("{base}:tpd:{}", periods.day));
                asked.push(((scope, name.clone()), Period::Day));
            }
            if limits.usd_per_month.is_some() {
                hashes.push(format!("{base}:upm:{}", periods.month));
                asked.push(((scope, name.clone()), Period::Month));
            }
        }
        let mut out = Spending::new();
        if asked.is_empty() {
            return Ok(out);
        }
        let conn = self.connection().await?;
        let replies = tokio::time::timeout(
            self.call_timeout.max(PROBE_TIMEOUT),
            self.read_budgets(conn, &hashes),
        )
        .await
        .map_err(|_| SharedError::Timeout)??;
        for ((who, period), (spent, reserved)) in asked.into_iter().zip(replies) {
            let entry = out.entry(who).or_default();
            let budget = match period {
                Period::Day => &mut entry.0,
                Period::Month => &mut entry.1,
            };
            *budget = Budget {
                period: match period {
                    Period::Day => periods.day,
                    Period::Month => periods.month,
                },
                spent: spent.unwrap_or(0),
                reserved: reserved.unwrap_or(0),
            };
        }
        Ok(out)
    }

    /// `HMGET spent reserved` of each of `hashes`: one pipeline on a single server; on a
    /// cluster (where a pipeline must stay in one slot, and teams spread over slots) one
    /// command each, all sent at once.
    async fn read_budgets(
        &self,
        mut conn: Conn,
        hashes: &[String],
    ) -> Result<Vec<(Option<u64>, Option<u64>)>, SharedError> {
        let hmget = |hash: &String| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(hash).arg("spent").arg("reserved");
            cmd
        };
        if !self.redis.is_cluster() {
            let mut pipe = redis::pipe();
            for hash in hashes {
                pipe.add_command(hmget(hash));
            }
            return Ok(pipe.query_async(&mut conn).await?);
        }
        let reads: Vec<_> = hashes
            .iter()
            .map(|hash| {
                let (cmd, mut conn) = (hmget(hash), conn.clone());
                tokio::spawn(async move { cmd.query_async(&mut conn).await })
            })
            .collect();
        let mut replies = Vec::with_capacity(reads.len());
        for read in reads {
            let reply = read
                .await
                .map_err(|e| SharedError::Reply(format!("a budget read failed: {e}")))?;
            replies.push(reply?);
        }
        Ok(replies)
    }

    /// Runs the settle script of an admission: `names` are the key's id, the team's name and
    /// the user's `memory::user_id` (`-` without a user, whose hold then holds nothing).
    pub(crate) async fn settle(
        &self,
        id: &str,
        names: [&str; 3],
        holds: &[Hold; 3],
        admitted: Periods,
        now: Duration,
        used: Option<Need>,
    ) -> Result<(), SharedError> {
        let current = Periods::at(now);
        let mut call = self.settle.prepare_invoke();
        let team = names[1];
        let names = [
            (Scope::Key, names[0]),
            (Scope::Team, team),
            (Scope::User, names[2]),
        ];
        for (scope, name) in names {
            let base = base_key(team, scope, name);
            call.key(format!("{base}:rpm"))
                .key(format!("{base}:tpm"))
                .key(format!("{base}:inflight"))
                .key(format!("{base}:tpd:{}", admitted.day))
                .key(format!("{base}:tpd:{}", current.day))
                .key(format!("{base}:upm:{}", admitted.month))
                .key(format!("{base}:upm:{}", current.month));
        }
        let spent = used.unwrap_or_default();
        call.arg(id)
            .arg(if used.is_none() { "1" } else { "0" })
            .arg(spent.tokens)
            .arg(spent.usd_nanos)
            .arg(expiry_ms(Period::Day, current))
            .arg(expiry_ms(Period::Month, current));
        for hold in holds {
            let (tpm, reserved) = hold.tpm.map_or((-1, 0), |(l, r)| (i64::from(l), r));
            call.arg(hold.rpm.map_or(-1, i64::from))
                .arg(tpm)
                .arg(reserved)
                .arg(u8::from(hold.inflight))
                .arg(hold.day)
                .arg(hold.month);
        }
        let _: i64 = self.invoke(&call).await?;
        Ok(())
    }

    /// Runs a script within the call timeout ([`PROBE_TIMEOUT`] until Redis first answered);
    /// an answer ends a run of timeouts.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, SharedError> {
        let mut conn = self.connection().await?;
        let budget = if self.answered.load(Ordering::Relaxed) {
            self.call_timeout
        } else {
            PROBE_TIMEOUT
        };
        let reply = tokio::time::timeout(budget, call.invoke_async(&mut conn))
            .await
            .map_err(|_| SharedError::Timeout)??;
        if !self.answered.load(Ordering::Relaxed) {
            self.answered.store(true, Ordering::Relaxed);
        }
        if self.timeouts_in_a_row.load(Ordering::Relaxed) != 0 {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        }
        Ok(reply)
    }
}

/// A limit as the scripts take it: its value, or -1 for none.
fn opt(v: Option<u64>) -> i64 {
    v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The prefix of every counter of an admission of `team`: `switchyard:{t:<team>}:` with the
/// team's name escaped ([`push_key_part`]). The braces are a Redis Cluster hash tag: the
/// key's, the team's and the user's counters of one team share a hash slot (so one script
/// can touch them all), while different teams spread over the slots.
fn team_tag(team: &str) -> String {
    let mut out = String::from("switchyard:{t:");
    push_key_part(&mut out, team);
    out.push_str("}:");
    out
}

/// `switchyard:{t:<team>}:k:<key id>`, `…:t` (the team itself) or `…:u:<user>`, each name
/// escaped so that no two names share a key (a user's name is its `memory::user_id`, escaped
/// already). A key belongs to one team, so its counters sit in its team's slot; a key moved
/// to another team starts afresh there.
pub(crate) fn base_key(team: &str, scope: Scope, name: &str) -> String {
    let mut out = team_tag(team);
    match scope {
        Scope::Key => {
            out.push_str("k:");
            push_key_part(&mut out, name);
        }
        Scope::Team => out.push('t'),
        Scope::User => {
            out.push_str("u:");
            out.push_str(name);
        }
    }
    out
}

/// The least left of the money budgets and of the token budgets of `who`, from what each has
/// spent and reserved (`budgets`: key, team, user).
fn budget_left(who: &Who<'_>, budgets: &[(u64, u64); 3]) -> (Option<u64>, Option<u64>) {
    let limits = [&who.key.limits, &who.team.limits, user_limits(who)];
    let mut usd: Option<u64> = None;
    let mut tokens: Option<u64> = None;
    for (limits, (day, month)) in limits.into_iter().zip(budgets) {
        if let Some(cap) = limits.tokens_per_day {
            let left = cap.saturating_sub(*day);
            tokens = Some(tokens.map_or(left, |t| t.min(left)));
        }
        if let Some(cap) = limits.usd_per_month.map(money_cap) {
            let left = cap.saturating_sub(*month);
            usd = Some(usd.map_or(left, |u| u.min(left)));
        }
    }
    (usd, tokens)
}

/// The limits of the user scope of an admission: its team's per-user budgets or those its
/// credential named, none without a user.
fn user_limits<'a>(who: &Who<'a>) -> &'a Limits {
    static NONE: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();
    match who.user {
        Some(_) => who.user_limits,
        None => NONE.get_or_init(Limits::default),
    }
}

/// Appends `name` to a Redis key, `%`, `:` and braces escaped, so that no two names share a
/// key and no name makes a cluster hash tag.
pub(crate) fn push_key_part(out: &mut String, name: &str) {
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// Unix ms at which a budget hash of the period containing `periods` may expire.
fn expiry_ms(period: Period, periods: Periods) -> u64 {
    let end = period.end(periods.unix.as_secs());
    end.saturating_add(BUDGET_GRACE_SECS).saturating_mul(1000)
}

/// What a shared admission holds, from the limits it was checked against and what the
/// script reserved from the budgets (`(day tokens, month nano-dollars)`).
fn hold(limits: &Limits, need: Need, (day, month): (u64, u64)) -> Hold {
    Hold {
        state: None,
        rpm: limits.rpm,
        tpm: limits.tpm.map(|l| (l, need.tokens.min(u64::from(l)))),
        inflight: limits.max_concurrent.is_some(),
        day: if limits.tokens_per_day.is_some() {
            day
        } else {
            0
        },
        month: if limits.usd_per_month.is_some() {
            month
        } else {
            0
        },
    }
}

/// The admission script's reply.
struct Reply {
    /// 1 admitted, 0 refused, 2 peek.
    status: i64,
    scope: i64,
    code: i64,
    wait_ms: i64,
    cap: i64,
    headers: RateHeaders,
    budgets: [(u64, u64); 3],
    /// What this admission reserved from the day and month budgets, for key, team and user.
    grants: [(u64, u64); 3],
}

impl Reply {
    fn parse(v: &[i64]) -> Result<Reply, SharedError> {
        if v.len() < 35 {
            return Err(SharedError::Reply(format!("{} values", v.len())));
        }
        let status = |at: usize| {
            let limit = v[at];
            (limit >= 0).then(|| RateStatus {
                limit: limit.unsigned_abs(),
                remaining: v[at + 1].max(0).unsigned_abs(),
                reset: Duration::from_millis(v[at + 2].max(0).unsigned_abs()),
            })
        };
        let key = RateHeaders::from_status(status(5), status(8));
        let team = RateHeaders::from_status(status(11), status(14));
        let n = |at: usize| v[at].max(0).unsigned_abs();
        Ok(Reply {
            status: v[0],
            scope: v[1],
            code: v[2],
            wait_ms: v[3],
            cap: v[4],
            headers: key.tighter(team),
            budgets: [(n(23), n(24)), (n(25), n(26)), (n(27), n(28))],
            grants: [(n(29), n(30)), (n(31), n(32)), (n(33), n(34))],
        })
    }

    /// The refusal this reply tells of; for a budget, what `need` needed at least and what
    /// the refusing entity's budget had left (its cap less its `used`, from `budgets`).
    fn refusal(&self, need: Need, periods: Periods) -> Result<Refusal, SharedError> {
        let scope = match self.scope {
            1 => Scope::Team,
            2 => Scope::User,
            _ => Scope::Key,
        };
        let wait = Duration::from_millis(self.wait_ms.max(0).unsigned_abs());
        let (limit, retry_after) = match self.code {
            1 => (LimitKind::Rpm, wait),
            2 => (LimitKind::Tpm, wait),
            3 => (LimitKind::Concurrency, CONCURRENCY_RETRY),
            4 => (
                LimitKind::TokensPerDay,
                Period::Day.until_next(periods.unix),
            ),
            5 => (
                LimitKind::UsdPerMonth,
                Period::Month.until_next(periods.unix),
            ),
            other => return Err(SharedError::Reply(format!("limit code {other}"))),
        };
        let cap = self.cap.max(0).unsigned_abs();
        let (day_used, month_used) = self.budgets[match scope {
            Scope::Key => 0,
            Scope::Team => 1,
            Scope::User => 2,
        }];
        let (needed, left) = match limit {
            LimitKind::TokensPerDay => (need.floor_tokens, cap.saturating_sub(day_used)),
            LimitKind::UsdPerMonth => (need.floor_usd_nanos, cap.saturating_sub(month_used)),
            _ => (0, 0),
        };
        Ok(Refusal {
            scope,
            limit,
            retry_after,
            cap,
            needed,
            left,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_so_they_cannot_collide() {
        assert_eq!(
            base_key("ml", Scope::Key, "alice"),
            "switchyard:{t:ml}:k:alice"
        );
        assert_eq!(
            base_key("a:rpm", Scope::Team, "a:rpm"),
            "switchyard:{t:a%3Arpm}:t"
        );
        assert_eq!(
            base_key("{x}%", Scope::Team, "{x}%"),
            "switchyard:{t:%7Bx%7D%25}:t"
        );
        assert_eq!(
            base_key("ml", Scope::User, "ml:bob"),
            "switchyard:{t:ml}:u:ml:bob"
        );
    }

    #[test]
    fn every_key_of_an_admission_carries_its_team_hash_tag() {
        // The hash tag is what lies between the first `{` and the next `}`: an escaped team
        // name holds no brace, so the tag is the whole `t:<team>`, whatever the key or user.
        for (scope, name) in [
            (Scope::Key, "k{1}"),
            (Scope::Team, "t{x}"),
            (Scope::User, "t%7Bx%7D:u"),
        ] {
            let key = base_key("t{x}", scope, name);
            let tag = key
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}'))
                .map(|(tag, _)| tag);
            assert_eq!(tag, Some("t:t%7Bx%7D"), "{key}");
        }
    }

    #[test]
    fn a_shared_hold_mirrors_the_limits() {
        let limits = Limits {
            rpm: Some(10),
            tpm: Some(100),
            max_concurrent: None,
            tokens_per_day: Some(1000),
            usd_per_month: None,
        };
        let h = hold(
            &limits,
            Need {
                tokens: 250,
                usd_nanos: 7,
                floor_tokens: 100,
                floor_usd_nanos: 7,
            },
            (250, 7),
        );
        assert_eq!(h.rpm, Some(10));
        assert_eq!(
            h.tpm,
            Some((100, 100)),
            "a reservation never exceeds the bucket"
        );
        assert!(!h.inflight);
        assert_eq!((h.day, h.month), (250, 0));
    }
}
