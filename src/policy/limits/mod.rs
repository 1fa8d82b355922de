//! Rate limits and budgets per key and per team (`spec/gateway.md` §2 and §4): requests and
//! tokens per minute, requests in flight, tokens per UTC day, dollars per UTC month.
//!
//! # How the proxy uses it
//!
//! ```ignore
//! // At startup and after each config reload (keys and teams whose limits did not change
//! // keep their state):
//! let limiter = Limiter::new(&config.state, metrics.clone())?;  // memory or redis
//! limiter.sync(&config);
//! // In proxy's admit, after auth and model resolution, before choosing a route:
//! let demand = Demand::estimate(&model, prompt_estimate, max_tokens, &config.limits);
//! // `admit_for` also holds the end user (named by `policy::attribution`) to the team's
//! // per-user budgets; `admit` is `admit_for` without a user.
//! match limiter.admit_for(&principal.key, &principal.team, user, demand).await {
//!     Ok(admission) => ctx.admission = Some(admission), // admission.headers().apply(resp)
//!     Err(rejection) => {
//!         // rejection.to_error(): 429 rate_limit / quota_exceeded with its retry-after;
//!         // rejection.headers(): x-ratelimit-*; rejection.limit_label(): the metric label
//!         // (the limiter already counted it in switchyard_rate_limited_total).
//!     }
//! }
//! // In logging (once per request, on every path), when it was admitted:
//! limiter.settle(admission, Some(Spent { tokens, usd })).await; // or None: refund everything
//! // An authenticated answer refused before admission (404, 403…) still gets the headers:
//! limiter.peek_headers(&principal.key, &principal.team).await.apply(resp);
//! // Before each scrape of /metrics (the admin listener): the switchyard_budget_* gauges.
//! limiter.publish_budgets(&config).await;
//! // At shutdown (memory backend), after pingora's `Server::run` returns:
//! limiter.flush();
//! ```
//!
//! # Semantics
//!
//! - **Key and team at once.** A request must pass every limit of its key *and* of its team;
//!   the tighter wins. All of them are checked before any is taken from, so a refused request
//!   consumes nothing anywhere (memory: under the key's then the team's lock; Redis: one
//!   atomic script).
//! - **rpm, tpm: GCRA** with a burst of the whole per-minute amount: a fresh bucket lets
//!   `rpm` requests through at once, then refills one every `60/rpm` s. So within any 60 s
//!   window at most `2 × rpm − 1` pass (a full bucket plus a minute of refill); from a cold
//!   start, a burst of simultaneous requests gets exactly `rpm` plus one per `60/rpm` s the
//!   burst lasts. The same holds for tokens.
//! - **Token reservation.** `admit` reserves [`Demand::tokens`] (prompt estimate +
//!   `max_tokens`, or `[limits] default_max_tokens` when the client sent none) from tpm and
//!   from the day's budget, and the estimated cost from the month's. `settle` replaces the
//!   reservation with the real usage: tokens beyond it are taken anyway (tpm goes into debt,
//!   which the next requests pay before their own; a budget may end over by at most one
//!   request's excess over its reservation); tokens below it are given back. A GCRA cannot
//!   refund, so the memory backend keeps a *balance* beside each GCRA: credits, spent before
//!   the GCRA and capped so that credits and GCRA never hold more than a full bucket, and debt
//!   (see `memory::Bucket`); the Redis backend moves the GCRA's arrival time back and forth.
//!   A demand larger than a whole tpm bucket waits for a full bucket and takes it; the rest is
//!   debt at settle.
//! - **max_concurrent** counts admitted requests until their settle (failures included). An
//!   [`Admission`] dropped without a settle (a cancelled task, a bug) is settled in memory as
//!   if it used all it reserved; in Redis its slot comes back after the safety TTL.
//! - **Budgets** (`tokens_per_day`: UTC calendar day; `usd_per_month`: UTC calendar month):
//!   admitted while `spent + reserved + demand ≤ budget`, reserving the demand. A demand that
//!   does not fit (an agent's `max_tokens` of 128k against a nearly spent day) is still
//!   admitted when what is left covers its *floor*, its likely cost — the prompt estimate plus
//!   `min(max_tokens, [limits] default_max_tokens)` — and then reserves all that is left, so
//!   the next request waits for its settle; the budget ends over by at most that one request's
//!   real usage beyond what was left. Spending is counted in the period the request ends in; a reservation made in a period that has ended is dropped with it.
//!   A request that costs nothing against a budget (a model without prices, for
//!   `usd_per_month`) is never refused by it. Money is counted in nano-dollars.
//! - **Per-user budgets.** A team's `user_tokens_per_day` / `user_usd_per_month` give each
//!   of its end users (a request's `user`, `crate::policy::attribution`) budgets of their
//!   own: a third entity beside key and team ([`Scope::User`]), checked and taken with them,
//!   settled the same way. A user's limits are its team's per-user budgets, or those its
//!   credential names ([`EndUser::limits`]: a JWT's limits claim, which may add rates and
//!   `max_concurrent`). A request naming no user, or whose user has no limits, has no user
//!   entity. Memory: users are created at their first request (kept by `memory::user_id`,
//!   `team:user` escaped), take new limits at the request that brings them (their counters
//!   kept), are snapshotted with keys and teams, dropped when their team leaves the config,
//!   and pruned when idle once thousands are held. Redis: `switchyard:{t:<team>}:u:<team>:<user>:tpd:{day}` /
//!   `…:upm:{month}`, in the same scripts.
//! - **Answers.** A spent budget → 429 `quota_exceeded`, `retry-after` = seconds to the next
//!   period. rpm / tpm → 429 `rate_limit`, `retry-after` = the GCRA's wait (rounded up to a
//!   whole second); concurrency → 429 `rate_limit`, `retry-after: 1`. When several limits
//!   refuse, a budget is named first, then the longest wait.
//! - **Headers.** [`RateHeaders`]: OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,
//!   tokens}` of the tighter of key and team (the one with less remaining); absent when
//!   neither has that limit. `reset-*` is the time until the bucket is full again, written
//!   like OpenAI's (`"0.5s"`, `"1s"`, `"6m0s"`, `"1h2m3s"`: see [`format_reset`]). Beside
//!   them `x-switchyard-budget-remaining-usd` (dollars, [`format_usd`]) and
//!   `x-switchyard-budget-remaining-tokens`: the least left of the money and token budgets that
//!   apply (key, team, user), after the admission's reservation; absent when none applies.
//! - **Gauges.** [`Limiter::publish_budgets`] sets `switchyard_budget_{limit,spent,reserved}`
//!   of every configured key and team budget: memory from this process's counters; Redis from
//!   Redis (one pipelined `HMGET` per budget, one round trip, so another instance's spending
//!   shows), or from the fallback's numbers while Redis is down. Per-user budgets have none.
//! - **Reloads** ([`Limiter::sync`]): a key or team whose limits did not change keeps its
//!   state. One whose limits changed keeps its facts (requests in flight, what its budgets
//!   spent) and gets a new, full bucket for each rate whose value changed. A removed one is
//!   dropped (re-adding it starts afresh, budgets included). A budget starts counting when it
//!   is configured: spending of a key without a budget is not tracked.
//!
//! # Backends
//!
//! - `memory` (`memory.rs`): one process. Budgets are snapshotted to `state.dir/budgets.json`
//!   every `snapshot::INTERVAL` (2 s) and by [`Limiter::flush`]; a crash loses at most the
//!   last 2 s of spending (`snapshot.rs`). Rates and in-flight counts start afresh on restart.
//! - `redis` (`redis.rs`): every instance shares the counters, on one Redis server, a Redis
//!   Cluster (an admission's keys share their team's hash slot) or a master found through
//!   Sentinel (`connect.rs`; a failover is an outage until a probe finds the new master, at
//!   most about 2 s after the sentinels name it). One Lua script per admission
//!   and one per settle (one round trip each), GCRA in Lua on Redis' own clock, keys with
//!   TTLs. If Redis does not answer within `[state] redis_timeout_ms` (100 ms by default; 1 s until it first
//!   answered, while the connection is made) or the connection fails, that request is limited
//!   by this instance's memory limiter instead (a slow answer is logged, at most once per run
//!   of them). A connection error, or three timeouts in a row, is an outage: it is logged
//!   once, `switchyard_limits_backend_up` drops to 0, requests stop asking Redis, and while
//!   requests come Redis is probed in the background (a fresh connection, a `PING`, the
//!   scripts loaded) at most every `redis::RETRY_EVERY` (1 s); when it answers, the gauge is
//!   1 again and limits are shared again (from whatever Redis holds: a Redis restarted empty
//!   starts with full buckets). During an outage each of N instances enforces the limits on
//!   its own: at most N × each rate limit pass, and each instance may spend what was left of a
//!   budget when it last heard from Redis (the fallback starts from the shared spending it
//!   last saw, not from zero). Spending counted locally during an outage is not merged back.
//!
//! # Files
//!
//! `budget.rs` (calendar periods, nano-dollars), `clock.rs` (monotonic and wall time, a manual
//! clock for tests), `memory.rs` (the in-process limiter and its GCRA with a peek), `redis.rs`
//! (the Lua scripts, the connection and the outage logic), `connect.rs` (the Redis
//! connection: one server, cluster or Sentinel; password, TLS roots), `snapshot.rs` (the budgets file).

mod budget;
mod clock;
mod connect;
mod memory;
mod redis;
mod snapshot;

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pingora::http::ResponseHeader;

use crate::config::{self, Config, Key, LimitsConfig, Model, Team};
use crate::error::GatewayError;
use crate::observability::metrics::{BudgetRow, Metrics};

pub use self::clock::Clock;
/// The Redis of `[state]` (single, cluster or Sentinel; password, TLS roots) and its
/// connection, for the response store too.
pub(crate) use self::connect::{Conn as RedisConn, Redis};
use self::memory::{Memory, Periods};
pub(crate) use self::redis::push_key_part;

/// What a request may cost, reserved at admission.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Demand {
    /// Prompt tokens (estimated) plus the completion's `max_tokens` (or the default).
    pub tokens: u64,
    /// The cost of those tokens at the model's prices (0 for a model without prices).
    pub usd: f64,
    /// The least a budget must have left to admit the request (its likely cost): the prompt
    /// estimate plus `min(max_tokens, [limits] default_max_tokens)`. A budget with less than
    /// `tokens` left but at least this reserves what it has left. 0: the whole demand.
    pub floor_tokens: u64,
    /// The same in USD.
    pub floor_usd: f64,
}

impl Demand {
    /// The demand of a request: `prompt_tokens` (an estimate) plus `max_tokens`, or
    /// `[limits] default_max_tokens` when the client gave none, priced at `model`'s prices;
    /// its floor counts at most `default_max_tokens` of output.
    pub fn estimate(
        model: &Model,
        prompt_tokens: u64,
        max_tokens: Option<u64>,
        limits: &LimitsConfig,
    ) -> Demand {
        let completion = max_tokens.unwrap_or(limits.default_max_tokens);
        let usage = crate::accounting::usage::Usage::new(prompt_tokens, completion);
        let likely = crate::accounting::usage::Usage::new(
            prompt_tokens,
            completion.min(limits.default_max_tokens),
        );
        Demand {
            tokens: usage.total_tokens,
            usd: crate::accounting::usage::cost(model, &usage),
            floor_tokens: likely.total_tokens,
            floor_usd: crate::accounting::usage::cost(model, &likely),
        }
    }
}

/// What a request really cost, known when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Spent {
    pub tokens: u64,
    pub usd: f64,
}

/// A demand or a spending in the limiter's units (tokens, nano-dollars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Need {
    pub(crate) tokens: u64,
    pub(crate) usd_nanos: u64,
    /// The least a budget must have left to admit (at most `tokens` / `usd_nanos`).
    pub(crate) floor_tokens: u64,
    pub(crate) floor_usd_nanos: u64,
}

impl From<Demand> for Need {
    fn from(d: Demand) -> Need {
        let tokens = d.tokens.max(1);
        let usd_nanos = budget::usd_to_nanos_ceil(d.usd);
        let floor = |floor: u64, whole: u64| match floor {
            0 => whole,
            f => f.min(whole),
        };
        Need {
            tokens,
            usd_nanos,
            floor_tokens: floor(d.floor_tokens, tokens),
            floor_usd_nanos: floor(budget::usd_to_nanos_ceil(d.floor_usd), usd_nanos),
        }
    }
}

impl From<Spent> for Need {
    fn from(s: Spent) -> Need {
        let (tokens, usd_nanos) = (s.tokens, budget::usd_to_nanos(s.usd));
        Need {
            tokens,
            usd_nanos,
            floor_tokens: tokens,
            floor_usd_nanos: usd_nanos,
        }
    }
}

/// Whose limit: the key's own, its team's, or its end user's inside the team (the
/// per-user budgets, `crate::policy::attribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Key,
    Team,
    User,
}

impl Scope {
    fn noun(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Team => "team",
            Scope::User => "user",
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Rpm,
    Tpm,
    Concurrency,
    TokensPerDay,
    UsdPerMonth,
}

impl LimitKind {
    /// The `limit` label of `switchyard_rate_limited_total`: `rpm`, `tpm`, `concurrency` or
    /// `budget`.
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::Rpm => "rpm",
            LimitKind::Tpm => "tpm",
            LimitKind::Concurrency => "concurrency",
            LimitKind::TokensPerDay | LimitKind::UsdPerMonth => "budget",
        }
    }

    pub fn is_budget(self) -> bool {
        matches!(self, LimitKind::TokensPerDay | LimitKind::UsdPerMonth)
    }
}

/// One rate bucket as the headers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateStatus {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    /// Until the bucket is full again.
    pub(crate) reset: Duration,
}

/// The `x-ratelimit-*` headers of an answer: the tighter of the key's and the team's rates;
/// and the `x-switchyard-budget-remaining-{usd,tokens}` headers: the least left of the
/// budgets that apply (key, team, end user), after this request's reservation.
/// A `None` field is a header left out (none has that limit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateHeaders {
    pub limit_requests: Option<u64>,
    pub remaining_requests: Option<u64>,
    pub reset_requests: Option<Duration>,
    pub limit_tokens: Option<u64>,
    pub remaining_tokens: Option<u64>,
    pub reset_tokens: Option<Duration>,
    /// What is left of the tightest `usd_per_month` (nano-dollars).
    pub budget_usd_left: Option<u64>,
    /// What is left of the tightest `tokens_per_day`.
    pub budget_tokens_left: Option<u64>,
}

impl RateHeaders {
    pub(crate) fn from_status(rpm: Option<RateStatus>, tpm: Option<RateStatus>) -> RateHeaders {
        RateHeaders {
            limit_requests: rpm.map(|s| s.limit),
            remaining_requests: rpm.map(|s| s.remaining),
            reset_requests: rpm.map(|s| s.reset),
            limit_tokens: tpm.map(|s| s.limit),
            remaining_tokens: tpm.map(|s| s.remaining),
            reset_tokens: tpm.map(|s| s.reset),
            budget_usd_left: None,
            budget_tokens_left: None,
        }
    }

    fn requests(&self) -> Option<RateStatus> {
        Some(RateStatus {
            limit: self.limit_requests?,
            remaining: self.remaining_requests?,
            reset: self.reset_requests?,
        })
    }

    fn tokens(&self) -> Option<RateStatus> {
        Some(RateStatus {
            limit: self.limit_tokens?,
            remaining: self.remaining_tokens?,
            reset: self.reset_tokens?,
        })
    }

    /// For each of requests and tokens, the bucket with less remaining (on a tie, the smaller
    /// one): the one that will refuse first.
    pub fn tighter(self, other: RateHeaders) -> RateHeaders {
        let pick = |a: Option<RateStatus>, b: Option<RateStatus>| match (a, b) {
            (Some(a), Some(b)) => Some(if (b.remaining, b.limit) < (a.remaining, a.limit) {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        };
        let least = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RateHeaders {
            budget_usd_left: least(self.budget_usd_left, other.budget_usd_left),
            budget_tokens_left: least(self.budget_tokens_left, other.budget_tokens_left),
            ..RateHeaders::from_status(
                pick(self.requests(), other.requests()),
                pick(self.tokens(), other.tokens()),
            )
        }
    }

    /// Every header name with its value, if any, in a fixed order: the one list that
    /// [`RateHeaders::pairs`] and [`RateHeaders::apply`] both read.
    /// How many headers [`RateHeaders::apply_to`] adds.
    pub fn count(&self) -> usize {
        self.entries().iter().filter(|(_, v)| v.is_some()).count()
    }

    fn entries(&self) -> [(&'static str, Option<RateValue>); 8] {
        use RateValue::{Count, Reset, Usd};
        [
            ("x-ratelimit-limit-requests", self.limit_requests.map(Count)),
            (
                "x-ratelimit-remaining-requests",
                self.remaining_requests.map(Count),
            ),
            ("x-ratelimit-reset-requests", self.reset_requests.map(Reset)),
            ("x-ratelimit-limit-tokens", self.limit_tokens.map(Count)),
            (
                "x-ratelimit-remaining-tokens",
                self.remaining_tokens.map(Count),
            ),
            ("x-ratelimit-reset-tokens", self.reset_tokens.map(Reset)),
            (
                "x-switchyard-budget-remaining-usd",
                self.budget_usd_left.map(Usd),
            ),
            (
                "x-switchyard-budget-remaining-tokens",
                self.budget_tokens_left.map(Count),
            ),
        ]
    }

    /// The headers as `(name, value)` pairs, in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        self.entries()
            .into_iter()
            .filter_map(|(name, v)| match v? {
                RateValue::Count(n) => Some((name, n.to_string())),
                RateValue::Reset(d) => Some((name, format_reset(d))),
                RateValue::Usd(n) => Some((name, format_usd(n))),
            })
            .collect()
    }

    /// Sets the headers on a response (those with a value; others are left as they are).
    /// Runs on every answer: counts go in as numbers, with no `String` on the way.
    pub fn apply(&self, resp: &mut ResponseHeader) {
        for (name, v) in self.entries() {
            // Names are constants and values are digits and units: insertion cannot fail.
            let _ = match v {
                Some(RateValue::Count(n)) => resp.insert_header(name, http::HeaderValue::from(n)),
                Some(RateValue::Reset(d)) => resp.insert_header(name, format_reset(d)),
                Some(RateValue::Usd(n)) => resp.insert_header(name, format_usd(n)),
                None => Ok(()),
            };
        }
    }
}

impl RateHeaders {
    /// [`RateHeaders::apply`] on a plain header map (the head of a vendor's answer is built
    /// so, `crate::gateway::response_headers::client_head`): by names parsed once, at compile time.
    pub fn apply_to(&self, headers: &mut http::HeaderMap) {
        use http::{HeaderName, HeaderValue};
        const NAMES: [HeaderName; 8] = [
            HeaderName::from_static("x-ratelimit-limit-requests"),
            HeaderName::from_static("x-ratelimit-remaining-requests"),
            HeaderName::from_static("x-ratelimit-reset-requests"),
            HeaderName::from_static("x-ratelimit-limit-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-tokens"),
            HeaderName::from_static("x-ratelimit-reset-tokens"),
            HeaderName::from_static("x-switchyard-budget-remaining-usd"),
            HeaderName::from_static("x-switchyard-budget-remaining-tokens"),
        ];
        // Every value is written into one buffer and each header takes a slice of it: one
        // allocation for all of them (a `HeaderValue` of its own costs two each).
        let mut buf = bytes::BytesMut::with_capacity(160);
        let mut ends: [Option<(usize, usize)>; 8] = [None; 8];
        for ((_, v), end) in self.entries().into_iter().zip(&mut ends) {
            let start = buf.len();
            let written = match v {
                Some(RateValue::Count(n)) => fmt::Write::write_fmt(&mut buf, format_args!("{n}")),
                Some(RateValue::Reset(d)) => write_reset(&mut buf, d),
                Some(RateValue::Usd(n)) => write_usd(&mut buf, n),
                None => continue,
            };
            if written.is_ok() {
                *end = Some((start, buf.len()));
            }
        }
        let buf = buf.freeze();
        for (name, range) in NAMES.into_iter().zip(ends) {
            let Some((start, end)) = range else {
                continue;
            };
            // Digits, dots and unit letters: always a valid value.
            if let Ok(value) = HeaderValue::from_maybe_shared(buf.slice(start..end)) {
                headers.insert(name, value);
            }
        }
    }
}

/// One header value: a count, the time until a reset, or nano-dollars.
#[derive(Clone, Copy)]
enum RateValue {
    Count(u64),
    Reset(Duration),
    Usd(u64),
}

/// Nano-dollars as a decimal number of dollars with six decimals, rounded down (what is left
/// is never overstated): `"12.500000"`, `"0.000450"`.
pub fn format_usd(nanos: u64) -> String {
    let mut out = String::new();
    let _ = write_usd(&mut out, nanos);
    out
}

/// [`format_usd`] into `out`.
fn write_usd(out: &mut impl std::fmt::Write, nanos: u64) -> std::fmt::Result {
    let micros = nanos / 1000;
    write!(out, "{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// A duration the way OpenAI writes its `x-ratelimit-reset-*` headers (Go's duration format),
/// to the millisecond, rounded up: `"0s"`, `"0.5s"`, `"1s"`, `"59.999s"`, `"6m0s"`,
/// `"1m30.5s"`, `"1h0m0s"`.
pub fn format_reset(d: Duration) -> String {
    let mut out = String::new();
    let _ = write_reset(&mut out, d);
    out
}

/// [`format_reset`] into `out`.
fn write_reset(out: &mut impl std::fmt::Write, d: Duration) -> std::fmt::Result {
    let ms = d.as_nanos().div_ceil(1_000_000);
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, s_ms) = (rest / 60_000, rest % 60_000);
    if h > 0 {
        write!(out, "{h}h{m}m")?;
    } else if m > 0 {
        write!(out, "{m}m")?;
    }
    let (secs, frac) = (s_ms / 1000, s_ms % 1000);
    if frac == 0 {
        return write!(out, "{secs}s");
    }
    // Milliseconds without trailing zeros: 500 -> "5", 250 -> "25", 7 -> "007".
    let (mut digits, mut width) = (frac, 3);
    while digits % 10 == 0 {
        digits /= 10;
        width -= 1;
    }
    write!(out, "{secs}.{digits:0width$}s")
}

/// What an admission holds in one entity (key, team or user), to settle or give back.
#[derive(Default)]
pub(crate) struct Hold {
    /// The memory backend's counters of the entity (`None` for a Redis admission).
    pub(crate) state: Option<Arc<Mutex<memory::State>>>,
    /// The rpm limit, when a request was taken from it.
    pub(crate) rpm: Option<u32>,
    /// The tpm limit and the tokens reserved from it.
    pub(crate) tpm: Option<(u32, u64)>,
    /// Whether the request counts against `max_concurrent`.
    pub(crate) inflight: bool,
    /// Tokens reserved from the day's budget (0: no budget).
    pub(crate) day: u64,
    /// Nano-dollars reserved from the month's budget (0: no budget, or nothing to reserve).
    pub(crate) month: u64,
}

/// Which backend admitted a request: its settle goes to the same one.
enum Via {
    Local,
    Shared { id: String },
}

/// An admitted request: what it reserved, until [`Limiter::settle`]. Dropping one unsettled
/// settles it in memory as if it used what it reserved (a Redis admission's in-flight slot
/// heals by its TTL).
pub struct Admission {
    key: String,
    team: String,
    /// The end user's [`memory::user_id`], when its team has per-user budgets.
    user: Option<String>,
    need: Need,
    periods: Periods,
    holds: [Hold; 3],
    headers: RateHeaders,
    via: Via,
    settled: bool,
}

impl Admission {
    /// The `x-ratelimit-*` headers after this admission.
    pub fn headers(&self) -> &RateHeaders {
        &self.headers
    }

    /// Tokens reserved against the tighter tpm (0 without one).
    pub fn reserved_tokens(&self) -> u64 {
        self.holds
            .iter()
            .filter_map(|h| h.tpm.map(|(_, t)| t))
            .max()
            .unwrap_or(0)
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("key", &self.key)
            .field("team", &self.team)
            .field("shared", &matches!(self.via, Via::Shared { .. }))
            .finish()
    }
}

impl Drop for Admission {
    /// An admission dropped without [`Limiter::settle`] (a bug in the caller, or a task that
    /// was cancelled) must not hold its in-flight slot and its reservations forever: it is
    /// settled as if it had used all it reserved (the conservative guess).
    fn drop(&mut self) {
        if !self.settled && matches!(self.via, Via::Local) {
            for hold in &self.holds {
                memory::settle(hold, self.periods, self.periods, Some(self.need));
            }
        }
    }
}

/// A refused request: which limit, whose, and when to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub scope: Scope,
    pub limit: LimitKind,
    pub retry_after: Duration,
    /// The name of the key or team whose limit refused.
    pub name: String,
    /// The limit's value (requests, tokens, or nano-dollars for money).
    cap: u64,
    /// For a budget: the least the request needed reserved and what the budget had left
    /// (tokens, or nano-dollars for money).
    needed: u64,
    left: u64,
    headers: RateHeaders,
}

impl Rejection {
    /// The `x-ratelimit-*` headers as they stand.
    pub fn headers(&self) -> &RateHeaders {
        &self.headers
    }

    /// `rpm`, `tpm`, `concurrency` or `budget`: the metric label.
    pub fn limit_label(&self) -> &'static str {
        self.limit.label()
    }

    /// `retry-after` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// The 429 answer: `quota_exceeded` for a spent budget, `rate_limit` otherwise.
    pub fn to_error(&self) -> GatewayError {
        let retry_after_secs = self.retry_after_secs();
        let message = self.message(retry_after_secs);
        if self.limit.is_budget() {
            GatewayError::QuotaExceeded {
                message,
                retry_after_secs,
            }
        } else {
            GatewayError::RateLimited {
                message,
                retry_after_secs,
            }
        }
    }

    fn message(&self, secs: u64) -> String {
        let who = format!("{} `{}`", self.scope.noun(), self.name);
        match self.limit {
            LimitKind::Rpm => format!(
                "rate limit reached: {who} allows {} requests per minute; retry in {secs} s",
                self.cap
            ),
            LimitKind::Tpm => format!(
                "rate limit reached: {who} allows {} tokens per minute; retry in {secs} s",
                self.cap
            ),
            LimitKind::Concurrency => format!(
                "rate limit reached: {who} allows {} requests in flight; retry in {secs} s",
                self.cap
            ),
            LimitKind::TokensPerDay => format!(
                "quota exceeded: this request needs at least {} tokens of budget (its prompt \
                 and likely output) and {who} has {} left of its {} tokens for today (UTC); \
                 it renews in {secs} s",
                self.needed, self.left, self.cap
            ),
            LimitKind::UsdPerMonth => format!(
                "quota exceeded: this request needs at least {} of budget (its prompt and \
                 likely output at the model's prices) and {who} has {} left of its {} for this \
                 month (UTC); it renews in {secs} s",
                usd(self.needed),
                usd(self.left),
                usd(self.cap)
            ),
        }
    }
}

/// Nano-dollars as dollars for a message: cents (`$1.25`), or down to a millionth of a dollar
/// below a cent (`$0.000450`), so that a small amount does not read `$0.00`.
fn usd(nanos: u64) -> String {
    let dollars = nanos as f64 / 1e9;
    if nanos == 0 || nanos >= 10_000_000 {
        format!("${dollars:.2}")
    } else {
        format!("${dollars:.6}")
    }
}

/// Why a limiter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("state.dir {dir}: {source}")]
    Snapshot {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state.redis_url: {0}")]
    Redis(String),
}

/// The limiter: cheap to clone (one `Arc`), shared by every request and by the reloader.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    /// The memory backend, or the Redis backend's fallback.
    memory: Memory,
    shared: Option<Arc<redis::Shared>>,
    metrics: Arc<Metrics>,
    /// The memory backend's budgets file.
    store: Option<snapshot::Store>,
    /// Dropped with the limiter: stops the snapshot thread.
    _stop: Option<mpsc::Sender<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Inner {
    fn flush(&self) {
        if let Some(store) = &self.store {
            if let Err(e) = store.save(self.memory.budgets()) {
                tracing::error!(file = %store.path().display(), error = %e, "cannot write the budgets snapshot");
            }
        }
    }
}

impl Limiter {
    /// A limiter for the `[state]` of the config, on the system clock. Memory: reads the
    /// budgets snapshot under `state.dir` (creating the directory) and starts a thread that
    /// writes it every 2 s. Redis: checks the URL; it connects on first use.
    pub fn new(state: &config::State, metrics: Arc<Metrics>) -> Result<Limiter, LimitsError> {
        Limiter::with_clock(state, metrics, Clock::system())
    }

    /// [`Limiter::new`] on a given clock (tests move a manual one).
    pub fn with_clock(
        state: &config::State,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Limiter, LimitsError> {
        match state {
            config::State::Memory { dir } => Limiter::memory(dir, metrics, clock),
            config::State::Redis(redis_state) => {
                let shared = redis::Shared::new(redis_state).map_err(LimitsError::Redis)?;
                metrics.limits_backend_up.set(1);
                Ok(Limiter {
                    inner: Arc::new(Inner {
                        memory: Memory::new(clock, Default::default()),
                        shared: Some(Arc::new(shared)),
                        metrics,
                        store: None,
                        _stop: None,
                    }),
                })
            }
        }
    }

    fn memory(
        dir: &std::path::Path,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Limiter, LimitsError> {
        let err = |source| LimitsError::Snapshot {
            dir: dir.to_path_buf(),
            source,
        };
        let store = snapshot::Store::open(dir).map_err(err)?;
        let restored = store.load().map_err(err)?;
        let (stop, stopped) = mpsc::channel();
        metrics.limits_backend_up.set(1);
        let limiter = Limiter {
            inner: Arc::new(Inner {
                memory: Memory::new(clock, restored),
                shared: None,
                metrics,
                store: Some(store),
                _stop: Some(stop),
            }),
        };
        let weak = Arc::downgrade(&limiter.inner);
        std::thread::Builder::new()
            .name("switchyard-budgets".into())
            .spawn(move || snapshot_loop(&weak, &stopped))
            .map_err(err)?;
        Ok(limiter)
    }

    /// `"memory"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        if self.inner.shared.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// Takes the config's keys and teams (see the module doc for what is kept).
    pub fn sync(&self, config: &Config) {
        self.inner.memory.sync(config);
        if let Some(shared) = &self.inner.shared {
            shared.sync(config);
        }
    }

    /// Takes the keys issued at runtime (`crate::policy::runtime_keys`) beside the config's
    /// ones, with the same rules as [`Limiter::sync`]; later syncs keep them.
    pub fn sync_runtime_keys(&self, config: &Config, keys: Vec<Arc<Key>>) {
        self.inner.memory.set_runtime_keys(keys);
        self.sync(config);
    }

    /// Admits a request of `key` (of `team`) that may cost `demand`, reserving it from every
    /// limit of both; or refuses it, taking nothing, and counts the refusal in
    /// `switchyard_rate_limited_total`.
    pub async fn admit(
        &self,
        key: &Key,
        team: &Team,
        demand: Demand,
    ) -> Result<Admission, Rejection> {
        self.admit_for(key, team, None, demand).await
    }

    /// [`Limiter::admit`] for the end user `user` of the request (named by attribution), held
    /// also to its team's per-user budgets (`user_tokens_per_day`, `user_usd_per_month`), or
    /// to the limits its credential names ([`EndUser::limits`]), when there are some; `None`,
    /// or no user limits: key and team only.
    pub async fn admit_for(
        &self,
        key: &Key,
        team: &Team,
        user: Option<EndUser<'_>>,
        demand: Demand,
    ) -> Result<Admission, Rejection> {
        let need = Need::from(demand);
        let user_limits = user.and_then(|u| u.limits).unwrap_or(&team.user_limits);
        let user = user
            .map(|u| u.name)
            .filter(|_| *user_limits != config::Limits::default());
        let user_id = user.map(|u| memory::user_id(&team.name, u));
        let who = Who {
            key,
            team,
            user: user_id.as_deref(),
            user_limits,
        };
        let result = match self.usable_shared() {
            Some(shared) => match shared.admit(&who, need, self.periods()).await {
                Ok(result) => {
                    self.observe_shared(&who, &result);
                    result
                }
                Err(e) => {
                    shared.went_down(&e, &self.inner.metrics);
                    self.admit_locally(&who, user, need)
                }
            },
            None => self.admit_locally(&who, user, need),
        };
        let result = result
            .map(|granted| self.admission(&who, need, granted))
            .map_err(|refused| self.rejection(key, team, user, *refused));
        if let Err(rejection) = &result {
            self.inner
                .metrics
                .rate_limited
                .with_label_values(&[&team.name, &key.id, rejection.limit_label()])
                .inc();
        }
        result
    }

    /// Ends an admitted request: gives back its in-flight slot, and replaces its reservations
    /// with what it really cost (`None`: it cost nothing — it failed before any upstream work —
    /// and everything it took, the request itself included, is given back).
    pub async fn settle(&self, mut admission: Admission, spent: Option<Spent>) {
        admission.settled = true;
        let used = spent.map(Need::from);
        match &admission.via {
            Via::Local => {
                let now = self.periods();
                for hold in &admission.holds {
                    memory::settle(hold, admission.periods, now, used);
                }
            }
            Via::Shared { id } => {
                let Some(shared) = &self.inner.shared else {
                    return;
                };
                let now = self.inner.memory.clock().unix();
                let call = shared.settle(
                    id,
                    [
                        &admission.key,
                        &admission.team,
                        admission.user.as_deref().unwrap_or("-"),
                    ],
                    &admission.holds,
                    admission.periods,
                    now,
                    used,
                );
                if let Err(e) = call.await {
                    shared.went_down(&e, &self.inner.metrics);
                }
            }
        }
    }

    /// The `x-ratelimit-*` headers of `key` and `team` as they stand, taking nothing: for
    /// authenticated requests answered before admission (an unknown model, a forbidden one).
    pub async fn peek_headers(&self, key: &Key, team: &Team) -> RateHeaders {
        if let Some(shared) = self.usable_shared() {
            match shared.peek(key, team, self.periods()).await {
                Ok(headers) => return headers,
                Err(e) => shared.went_down(&e, &self.inner.metrics),
            }
        }
        self.inner.memory.peek(&key.id, &team.name)
    }

    /// Publishes every configured budget of `config` in the `switchyard_budget_*` gauges
    /// (`Metrics::set_budgets`): its limit, and what its current period spent and holds
    /// reserved. Called by the admin listener before each scrape, so the numbers are those of
    /// the moment. Memory: read from this process's counters. Redis: read from Redis in one
    /// pipelined round trip (so another instance's spending shows), within the call timeout;
    /// while Redis is down or does not answer in time, this instance's fallback numbers (the
    /// shared spending it last saw, plus its own since).
    pub async fn publish_budgets(&self, config: &Config) {
        let runtime_keys = self.inner.memory.runtime_keys();
        let numbers = match self.usable_shared() {
            Some(shared) => match shared.budgets(config, &runtime_keys, self.periods()).await {
                Ok(numbers) => numbers,
                Err(e) => {
                    shared.went_down(&e, &self.inner.metrics);
                    self.inner.memory.gauges()
                }
            },
            None => self.inner.memory.gauges(),
        };
        self.inner
            .metrics
            .set_budgets(budget_rows(config, &runtime_keys, &numbers));
    }

    /// Writes the budgets snapshot now (memory backend; nothing to do for Redis). Call it at
    /// shutdown: pingora's `run_forever` exits the process without running destructors.
    pub fn flush(&self) {
        self.inner.flush();
    }

    fn periods(&self) -> Periods {
        Periods::at(self.inner.memory.clock().unix())
    }

    /// The shared backend when it is configured and up; when it is down, starts a background
    /// probe if one is due.
    fn usable_shared(&self) -> Option<&Arc<redis::Shared>> {
        let shared = self.inner.shared.as_ref()?;
        if shared.is_up() {
            return Some(shared);
        }
        shared.probe_if_due(&self.inner.metrics);
        None
    }

    fn admit_locally(
        &self,
        who: &Who<'_>,
        user: Option<&str>,
        need: Need,
    ) -> Result<Granted, Refused> {
        let user = user.map(|name| (name, who.user_limits));
        self.inner
            .memory
            .admit(&who.key.id, &who.team.name, user, need)
            .map(|(periods, holds, headers)| Granted {
                periods,
                holds,
                headers,
                shared_id: None,
                budgets: None,
            })
    }

    /// After a shared admission, raises the fallback's budgets to the shared spending.
    fn observe_shared(&self, who: &Who<'_>, result: &Result<Granted, Refused>) {
        if let Ok(Granted {
            periods,
            budgets: Some(b),
            ..
        }) = result
        {
            let memory = &self.inner.memory;
            memory.observe(Scope::Key, &who.key.id, *periods, b[0].0, b[0].1);
            memory.observe(Scope::Team, &who.team.name, *periods, b[1].0, b[1].1);
            if let Some(user) = who.user {
                memory.observe(Scope::User, user, *periods, b[2].0, b[2].1);
            }
        }
    }

    fn admission(&self, who: &Who<'_>, need: Need, granted: Granted) -> Admission {
        Admission {
            key: who.key.id.clone(),
            team: who.team.name.clone(),
            user: who.user.map(str::to_string),
            need,
            periods: granted.periods,
            holds: granted.holds,
            headers: granted.headers,
            via: match granted.shared_id {
                Some(id) => Via::Shared { id },
                None => Via::Local,
            },
            settled: false,
        }
    }

    fn rejection(
        &self,
        key: &Key,
        team: &Team,
        user: Option<&str>,
        (refusal, headers): (memory::Refusal, RateHeaders),
    ) -> Rejection {
        let name = match refusal.scope {
            Scope::Key => key.id.clone(),
            Scope::Team => team.name.clone(),
            Scope::User => format!("{}` of team `{}", user.unwrap_or("-"), team.name),
        };
        Rejection {
            scope: refusal.scope,
            limit: refusal.limit,
            retry_after: refusal.retry_after,
            name,
            cap: refusal.cap,
            needed: refusal.needed,
            left: refusal.left,
            headers,
        }
    }
}

/// The gauges' rows: every team's then every key's budgets, in config order, with the
/// numbers of `spending` (none yet: 0).
fn budget_rows(
    config: &Config,
    runtime_keys: &[Arc<Key>],
    spending: &memory::Spending,
) -> Vec<BudgetRow> {
    let teams = config
        .teams
        .iter()
        .map(|t| (Scope::Team, &t.name, &t.name, "", &t.limits));
    let keys = config.keys.iter().chain(runtime_keys).filter_map(|k| {
        let team = &config.teams.get(k.team)?.name;
        Some((Scope::Key, &k.id, team, k.id.as_str(), &k.limits))
    });
    let mut rows = Vec::new();
    for (scope, name, team, key, limits) in teams.chain(keys) {
        let (day, month) = spending
            .get(&(scope, name.clone()))
            .copied()
            .unwrap_or_default();
        let row = |period, unit, limit: f64, b: budget::Budget, scale: f64| BudgetRow {
            team: team.clone(),
            key: key.to_string(),
            period,
            unit,
            limit,
            spent: b.spent as f64 / scale,
            reserved: b.reserved as f64 / scale,
        };
        if let Some(cap) = limits.tokens_per_day {
            rows.push(row("day", "tokens", cap as f64, day, 1.0));
        }
        if let Some(usd) = limits.usd_per_month {
            rows.push(row("month", "usd", usd, month, 1e9));
        }
    }
    rows
}

/// Whom an admission is for: the key, its team, and the end user's [`memory::user_id`] when
/// the team has per-user budgets.
pub(crate) struct Who<'a> {
    pub(crate) key: &'a Key,
    pub(crate) team: &'a Team,
    pub(crate) user: Option<&'a str>,
    /// The user's limits: the team's per-user budgets, or those its credential names
    /// ([`EndUser::limits`]).
    pub(crate) user_limits: &'a config::Limits,
}

/// The end user of a request ([`Limiter::admit_for`]): its name, and the limits its
/// credential names for it (a JWT's limits claim, `crate::policy::jwt`), which take the
/// place of its team's per-user budgets; `None`: the team's.
#[derive(Debug, Clone, Copy)]
pub struct EndUser<'a> {
    pub name: &'a str,
    pub limits: Option<&'a config::Limits>,
}

/// An admission as a backend returns it.
pub(crate) struct Granted {
    pub(crate) periods: Periods,
    pub(crate) holds: [Hold; 3],
    pub(crate) headers: RateHeaders,
    /// The Redis admission's id (its member in the in-flight sets).
    pub(crate) shared_id: Option<String>,
    /// Redis: the key's, the team's and the user's (day tokens, month nano-dollars) spent and
    /// reserved.
    pub(crate) budgets: Option<[(u64, u64); 3]>,
}

/// A refusal as a backend returns it, with the headers as they stand (boxed: refusals are
/// the rare path, admissions should not pay for their size).
pub(crate) type Refused = Box<(memory::Refusal, RateHeaders)>;

/// The snapshot thread: writes the budgets every interval until the limiter is dropped (its
/// `Sender` goes with it, which ends the wait at once).
fn snapshot_loop(inner: &Weak<Inner>, stopped: &mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(snapshot::INTERVAL) {
            Err(RecvTimeoutError::Timeout) => match inner.upgrade() {
                Some(inner) => inner.flush(),
                None => return,
            },
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests;
