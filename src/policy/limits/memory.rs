//! The in-process limiter: the `memory` backend, and the fallback of the `redis` one.
//!
//! One [`Entity`] per key and per team, found through an `ArcSwap<Tables>` rebuilt by
//! [`Memory::sync`] (keys and teams come only from the config, so the map never changes on the
//! request path and needs no lock). Each entity's counters sit behind their own small mutex;
//! an admission locks the key's, then the team's (always in that order, so two requests never
//! wait on each other in a cycle), checks every limit of both, and only then commits them all:
//! a refused request takes nothing from any limit. No lock is ever held across an `await`
//! (nothing here is async).
//!
//! Rates are `governor`'s GCRA, with two additions governor lacks:
//! - a *peek*: the GCRA's state (its theoretical arrival time) is kept in [`Tat`], a
//!   governor `StateStore` that stores the new state only for [`Step::Take`]; a
//!   [`Step::Peek`] runs the same GCRA arithmetic and keeps nothing. That is how "check all,
//!   then commit all" is exact.
//! - a *balance* next to each GCRA (see [`Bucket`]): tokens given back (reserved, not used)
//!   are credits spent before the GCRA on the next admission; tokens used beyond the
//!   reservation are a debt paid before anything else.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use super::budget::{money_cap, Budget, Period};
use super::clock::Clock;
use super::{Hold, LimitKind, Need, RateHeaders, RateStatus, Refused, Scope};
use crate::config::{Config, Key, Limits};

/// What a GCRA check does with the state it computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// Compute the decision, keep the old state.
    Peek,
    /// Compute the decision and store the new state (when it allows).
    Take,
}

/// GCRA's one number, the theoretical arrival time, as a governor state store.
#[derive(Debug)]
pub(crate) struct Tat(AtomicU64);

/// A `Tat` that has never let anything through.
const UNSET: u64 = u64::MAX;

impl StateStore for Tat {
    type Key = Step;

    fn measure_and_replace<T, F, E>(&self, key: &Step, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Callers hold the entity's mutex, so load-compute-store cannot interleave.
        let current = self.0.load(Ordering::Acquire);
        let prev = (current != UNSET).then(|| Nanos::from(current));
        let (outcome, next) = f(prev)?;
        if *key == Step::Take {
            self.0.store(next.as_u64(), Ordering::Release);
        }
        Ok(outcome)
    }
}

// governor implements `KeyedStateStore` for every `StateStore` with a hashable key: `Tat`
// is one through the blanket impl.

type Gcra = RateLimiter<Step, Tat, Clock, StateInformationMiddleware>;

/// A per-minute rate (rpm or tpm): governor's GCRA with a burst of the whole per-minute
/// amount, plus a balance.
///
/// The balance makes refunds and overdrafts possible on top of a GCRA, which can do neither:
/// - `balance > 0` (credits): tokens given back at settle. They are spent first on the next
///   admission, and clamped to `limit − room(GCRA)` whenever they are looked at, so credits
///   and the GCRA together never hold more than a full bucket. That is exactly a refund into
///   a bucket that is capped at its size.
/// - `balance < 0` (debt): tokens used beyond what was reserved. The next admission needs its
///   own amount plus the debt (at most a full bucket), so debt is paid at the bucket's rate;
///   settling never refuses.
pub(crate) struct Bucket {
    limit: u32,
    /// Time to refill one unit: a minute over the limit.
    interval: Duration,
    gcra: Gcra,
    balance: i64,
}

/// What an admission takes from one bucket, decided by [`Bucket::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Take {
    /// The amount asked for, capped at the bucket's size.
    amount: u64,
    /// Of which from credits.
    credit: u64,
    /// Taken from the GCRA (the amount less credits, or plus debt paid).
    gcra: u32,
}

impl Bucket {
    pub(crate) fn new(limit: u32, clock: &Clock) -> Bucket {
        let per_minute = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute);
        Bucket {
            limit: per_minute.get(),
            interval: quota.replenish_interval(),
            gcra: RateLimiter::new(quota, Tat(AtomicU64::new(UNSET)), clock.clone()),
            balance: 0,
        }
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Units the GCRA would let through right now.
    fn room(&self) -> u32 {
        match self.gcra.check_key(&Step::Peek) {
            Ok(snapshot) => snapshot
                .remaining_burst_capacity()
                .saturating_add(1)
                .min(self.limit),
            Err(_) => 0,
        }
    }

    /// Credits beyond what would fill the bucket are worthless: drop them.
    fn clamp_credit(&mut self) {
        if self.balance > 0 {
            let headroom = i64::from(self.limit - self.room());
            self.balance = self.balance.min(headroom);
        }
    }

    /// What taking `amount` (capped at the bucket's size: a larger request waits for a full
    /// bucket, and its excess becomes debt at settle) would take, or how long until it could.
    pub(crate) fn plan(&mut self, amount: u64) -> Result<Take, Duration> {
        self.clamp_credit();
        let amount = amount.min(u64::from(self.limit));
        let (credit, need) = if self.balance >= 0 {
            let credit = amount.min(self.balance.unsigned_abs());
            (credit, amount - credit)
        } else {
            let owed = amount.saturating_add(self.balance.unsigned_abs());
            (0, owed.min(u64::from(self.limit)))
        };
        let gcra = u32::try_from(need).unwrap_or(self.limit);
        let Some(n) = NonZeroU32::new(gcra) else {
            return Ok(Take {
                amount,
                credit,
                gcra: 0,
            });
        };
        match self.gcra.check_key_n(&Step::Peek, n) {
            Ok(Ok(_)) => Ok(Take {
                amount,
                credit,
                gcra,
            }),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.gcra.clock().now())),
            // `n` never exceeds the burst; a full bucket's refill time is the honest answer.
            Err(_) => Err(self.interval * self.limit),
        }
    }

    /// Takes what [`Bucket::plan`] decided. Time only moves forward between the two and the
    /// entity's mutex is held, so the GCRA allows it again.
    pub(crate) fn commit(&mut self, take: Take) {
        if let Some(n) = NonZeroU32::new(take.gcra) {
            let _ = self.gcra.check_key_n(&Step::Take, n);
        }
        if self.balance >= 0 {
            self.balance -= i64::try_from(take.credit).unwrap_or(0);
        } else {
            let paid = u64::from(take.gcra).saturating_sub(take.amount);
            self.balance = self
                .balance
                .saturating_add(i64::try_from(paid).unwrap_or(i64::MAX))
                .min(0);
        }
    }

    /// Gives back `amount` units that were taken but not used (a credit, capped at a bucket).
    pub(crate) fn give_back(&mut self, amount: u64) {
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        self.balance = self
            .balance
            .saturating_add(amount)
            .min(i64::from(self.limit));
        self.clamp_credit();
    }

    /// Takes `amount` more units than were reserved, whatever the bucket holds (a debt).
    pub(crate) fn take_extra(&mut self, amount: u64) {
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        self.balance = self.balance.saturating_sub(amount);
    }

    /// The bucket as the `x-ratelimit-*` headers show it: its size, what is left now, and the
    /// time until it is full again (to within one refill interval).
    pub(crate) fn status(&mut self) -> RateStatus {
        self.clamp_credit();
        let room = i64::from(self.room());
        let limit = i64::from(self.limit);
        let remaining = (room + self.balance).clamp(0, limit);
        let missing = u32::try_from(limit - room - self.balance).unwrap_or(0);
        RateStatus {
            limit: u64::from(self.limit),
            remaining: remaining.unsigned_abs(),
            reset: self.interval * missing,
        }
    }
}

/// The counters of one key or one team.
pub(crate) struct State {
    pub(crate) rpm: Option<Bucket>,
    pub(crate) tpm: Option<Bucket>,
    /// Requests admitted and not yet settled.
    pub(crate) inflight: u32,
    /// Tokens of the current UTC day.
    pub(crate) day: Budget,
    /// Nano-dollars of the current UTC month.
    pub(crate) month: Budget,
}

impl State {
    fn new(limits: &Limits, clock: &Clock) -> State {
        State {
            rpm: limits.rpm.map(|l| Bucket::new(l, clock)),
            tpm: limits.tpm.map(|l| Bucket::new(l, clock)),
            inflight: 0,
            day: Budget::default(),
            month: Budget::default(),
        }
    }

    /// The rate part of the `x-ratelimit-*` headers of this entity.
    pub(crate) fn headers(&mut self) -> RateHeaders {
        RateHeaders::from_status(
            self.rpm.as_mut().map(Bucket::status),
            self.tpm.as_mut().map(Bucket::status),
        )
    }
}

/// A key or a team: its limits from the config and its counters.
pub(crate) struct Entity {
    pub(crate) limits: Limits,
    /// Whether it has any limit: one without is skipped on the request path (no lock).
    pub(crate) limited: bool,
    /// Shared with the entity that replaces this one when its limits change (see
    /// [`Memory::sync`]) and with the admissions in flight, which settle into it.
    pub(crate) state: Arc<Mutex<State>>,
}

/// Every key (by id) and team (by name) of the running config.
#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) keys: HashMap<String, Arc<Entity>>,
    pub(crate) teams: HashMap<String, Arc<Entity>>,
}

impl Tables {
    fn map(&self, scope: Scope) -> Option<&HashMap<String, Arc<Entity>>> {
        match scope {
            Scope::Key => Some(&self.keys),
            Scope::Team => Some(&self.teams),
            Scope::User => None,
        }
    }
}

/// The end users met so far, by [`user_id`], each with the budgets of its team. Created by
/// the first request of a user of a team with per-user budgets; dropped when its team loses
/// them (or leaves the config), and, once [`USERS_PRUNE_AT`] are held, when nothing of the
/// current day and month is counted for it.
pub(crate) type Users = HashMap<String, Arc<Entity>>;

/// How many users are held before idle ones are pruned (then again at each doubling).
const USERS_PRUNE_AT: usize = 4096;

/// A user's name in the limiter (the memory map, the snapshot, the Redis keys): its team's
/// name and its own, each with `%`, `:` and braces escaped, joined by `:` (so no two pairs
/// share one).
pub(crate) fn user_id(team: &str, user: &str) -> String {
    let mut out = String::with_capacity(team.len() + user.len() + 1);
    super::redis::push_key_part(&mut out, team);
    out.push(':');
    super::redis::push_key_part(&mut out, user);
    out
}

/// Budget numbers restored from a snapshot, waiting for their key or team to appear.
pub(crate) type Restored = HashMap<(Scope, String), (Budget, Budget)>;

/// The day's and the month's budget numbers of keys and teams, for the gauges.
pub(crate) type Spending = HashMap<(Scope, String), (Budget, Budget)>;

/// Why one entity refuses a request (a [`super::Rejection`] without its names and headers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Refusal {
    pub(crate) scope: Scope,
    pub(crate) limit: LimitKind,
    pub(crate) retry_after: Duration,
    /// The limit's value (requests, tokens, or nano-dollars), for the message.
    pub(crate) cap: u64,
    /// For a budget: the least this request needed reserved, and what the budget had left
    /// (tokens, or nano-dollars); 0 and 0 for the other limits. For the message.
    pub(crate) needed: u64,
    pub(crate) left: u64,
}

impl Refusal {
    /// Of two reasons to refuse, the one to tell the client: a spent budget first (retrying
    /// soon would be pointless), otherwise the longer wait.
    pub(crate) fn worse(self, other: Refusal) -> Refusal {
        let rank = |r: &Refusal| (r.limit.is_budget(), r.retry_after);
        if rank(&other) > rank(&self) {
            other
        } else {
            self
        }
    }
}

/// What an admission will take from one entity.
#[derive(Default)]
struct Plan {
    rpm: Option<Take>,
    tpm: Option<Take>,
    inflight: bool,
    day: u64,
    month: u64,
}

/// Calendar periods at the moment of an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Periods {
    pub(crate) day: u32,
    pub(crate) month: u32,
    /// Wall time, for the `retry-after` of a spent budget.
    pub(crate) unix: Duration,
}

impl Periods {
    pub(crate) fn at(unix: Duration) -> Periods {
        Periods {
            day: Period::Day.index(unix.as_secs()),
            month: Period::Month.index(unix.as_secs()),
            unix,
        }
    }
}

/// The in-process limiter.
pub(crate) struct Memory {
    tables: ArcSwap<Tables>,
    users: Mutex<Users>,
    /// The size of `users` at which idle users are pruned next.
    prune_at: AtomicU64,
    clock: Clock,
    restored: Mutex<Restored>,
    /// The keys issued at runtime (`crate::policy::runtime_keys`), synced beside the config's.
    runtime_keys: ArcSwap<Vec<Arc<Key>>>,
    /// Held through a sync: the config's reloader and the runtime keys' poller both sync.
    syncing: Mutex<()>,
}

/// Locks an entity's counters. A panic while they were held cannot leave them inconsistent in
/// a way that matters more than refusing service would, so a poisoned lock is taken as is.
pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Memory {
    pub(crate) fn new(clock: Clock, restored: Restored) -> Memory {
        Memory {
            tables: ArcSwap::from_pointee(Tables::default()),
            users: Mutex::new(Users::new()),
            prune_at: AtomicU64::new(USERS_PRUNE_AT as u64),
            clock,
            restored: Mutex::new(restored),
            runtime_keys: ArcSwap::from_pointee(Vec::new()),
            syncing: Mutex::new(()),
        }
    }

    /// Replaces the keys issued at runtime; they take effect at the next [`Memory::sync`].
    pub(crate) fn set_runtime_keys(&self, keys: Vec<Arc<Key>>) {
        self.runtime_keys.store(Arc::new(keys));
    }

    /// The keys issued at runtime, as last set.
    pub(crate) fn runtime_keys(&self) -> Arc<Vec<Arc<Key>>> {
        self.runtime_keys.load_full()
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    #[cfg(test)]
    pub(crate) fn tables(&self) -> arc_swap::Guard<Arc<Tables>> {
        self.tables.load()
    }

    /// Takes the config's keys and teams: an entity whose limits did not change is kept as it
    /// is; one whose limits changed keeps its counters (in-flight requests, what its budgets
    /// spent: those are facts, not settings) and gets a new, full bucket for each rate whose
    /// value changed; a removed one is dropped.
    pub(crate) fn sync(&self, config: &Config) {
        let _syncing = self
            .syncing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let runtime_keys = self.runtime_keys.load();
        let old = self.tables.load();
        let mut restored = self
            .restored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut entity = |scope: Scope, name: &str, limits: &Limits| {
            let previous = old.map(scope).and_then(|m| m.get(name));
            let saved = restored.remove(&(scope, name.to_string()));
            self.carry(previous, limits, saved)
        };
        let keys = config
            .keys
            .iter()
            .chain(runtime_keys.iter())
            .map(|k| (k.id.clone(), entity(Scope::Key, &k.id, &k.limits)))
            .collect();
        let teams = config
            .teams
            .iter()
            .map(|t| (t.name.clone(), entity(Scope::Team, &t.name, &t.limits)))
            .collect();
        drop(restored);
        self.sync_users(&teams);
        self.tables.store(Arc::new(Tables { keys, teams }));
    }

    /// Keeps the users whose team is still configured (each takes its limits, the team's
    /// per-user budgets or its credential's, at its next request: [`Memory::user`]); drops
    /// the others.
    fn sync_users(&self, teams: &HashMap<String, Arc<Entity>>) {
        let mut users = lock_users(&self.users);
        users.retain(|id, _| team_of(id).is_some_and(|team| teams.contains_key(&team)));
    }

    /// The entity of `user` of `team` held to `limits` (its team's per-user budgets, or those
    /// its credential names), created at its first request; an entity whose limits changed
    /// (another token's limits claim) keeps its counters under the new limits.
    fn user(&self, team: &str, user: &str, limits: &Limits) -> Arc<Entity> {
        let id = user_id(team, user);
        let mut users = lock_users(&self.users);
        if let Some(e) = users.get(&id) {
            if e.limits == *limits {
                return e.clone();
            }
            let kept = self.carry(Some(e), limits, None);
            users.insert(id, kept.clone());
            return kept;
        }
        self.prune_if_due(&mut users);
        let saved = self
            .restored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&(Scope::User, id.clone()));
        let entity = self.carry(None, limits, saved);
        users.insert(id, entity.clone());
        entity
    }

    /// Once `users` holds [`USERS_PRUNE_AT`] (then twice as many…), drops those that count
    /// nothing of the current day and month and have no request in flight.
    fn prune_if_due(&self, users: &mut Users) {
        let at = self.prune_at.load(Ordering::Relaxed);
        if (users.len() as u64) < at {
            return;
        }
        let periods = Periods::at(self.clock.unix());
        users.retain(|_, e| {
            Arc::strong_count(&e.state) > 1 || {
                let s = lock(&e.state);
                s.inflight > 0
                    || (s.day.period == periods.day && s.day.spent + s.day.reserved > 0)
                    || (s.month.period == periods.month && s.month.spent + s.month.reserved > 0)
            }
        });
        let next = (users.len() as u64 * 2).max(USERS_PRUNE_AT as u64);
        self.prune_at.store(next, Ordering::Relaxed);
    }

    /// The entity for `limits`, carried over from `previous` when there is one.
    fn carry(
        &self,
        previous: Option<&Arc<Entity>>,
        limits: &Limits,
        saved: Option<(Budget, Budget)>,
    ) -> Arc<Entity> {
        match previous {
            Some(e) if e.limits == *limits => e.clone(),
            Some(e) => {
                let mut state = lock(&e.state);
                if e.limits.rpm != limits.rpm {
                    state.rpm = limits.rpm.map(|l| Bucket::new(l, &self.clock));
                }
                if e.limits.tpm != limits.tpm {
                    state.tpm = limits.tpm.map(|l| Bucket::new(l, &self.clock));
                }
                drop(state);
                Arc::new(Entity {
                    limits: limits.clone(),
                    limited: *limits != Limits::default(),
                    state: e.state.clone(),
                })
            }
            None => {
                let mut state = State::new(limits, &self.clock);
                if let Some((day, month)) = saved {
                    state.day = day;
                    state.month = month;
                }
                Arc::new(Entity {
                    limits: limits.clone(),
                    limited: *limits != Limits::default(),
                    state: Arc::new(Mutex::new(state)),
                })
            }
        }
    }

    /// Admits a request of `need` for `key` of `team`, or says which limit refuses it. Every
    /// limit of both is checked before any is taken from. Returns the holds to settle and
    /// the headers, or the refusal and the headers as they stand.
    pub(crate) fn admit(
        &self,
        key: &str,
        team: &str,
        user: Option<(&str, &Limits)>,
        need: Need,
    ) -> Result<(Periods, [Hold; 3], RateHeaders), Refused> {
        let tables = self.tables.load();
        let periods = Periods::at(self.clock.unix());
        let user = user.map(|(name, limits)| self.user(team, name, limits));
        let mut guards = locked(&tables, key, team, user.as_ref());
        let mut plans: [Option<Plan>; 3] = [None, None, None];
        let mut refusal: Option<Refusal> = None;
        let scopes = [Scope::Key, Scope::Team, Scope::User];
        for ((scope, slot), plan) in scopes.into_iter().zip(&mut guards).zip(&mut plans) {
            let Some((entity, state)) = slot else {
                continue;
            };
            match check(scope, &entity.limits, state, need, periods) {
                Ok(p) => *plan = Some(p),
                Err(r) => refusal = Some(refusal.map_or(r, |prev| prev.worse(r))),
            }
        }
        if let Some(r) = refusal {
            return Err(Box::new((r, headers_of(&mut guards, periods))));
        }
        let mut holds = [Hold::default(), Hold::default(), Hold::default()];
        for ((slot, plan), hold) in guards.iter_mut().zip(plans).zip(&mut holds) {
            if let (Some((entity, state)), Some(plan)) = (slot, plan) {
                *hold = commit(state, plan, &entity.state);
            }
        }
        Ok((periods, holds, headers_of(&mut guards, periods)))
    }

    /// The headers of `key` and `team` as they stand, taking nothing.
    pub(crate) fn peek(&self, key: &str, team: &str) -> RateHeaders {
        let tables = self.tables.load();
        let periods = Periods::at(self.clock.unix());
        let mut guards = locked(&tables, key, team, None);
        headers_of(&mut guards, periods)
    }

    /// Raises the budgets of `scope`/`name` to what the shared backend reported (when higher),
    /// so that a fallback during a Redis outage starts from the shared spending, not from zero.
    pub(crate) fn observe(&self, scope: Scope, name: &str, periods: Periods, day: u64, month: u64) {
        let tables = self.tables.load();
        let entity = match tables.map(scope) {
            Some(map) => map.get(name).cloned(),
            None => lock_users(&self.users).get(name).cloned(),
        };
        let Some(entity) = entity else {
            return;
        };
        let mut state = lock(&entity.state);
        state.day.roll(periods.day);
        state.day.spent = state.day.spent.max(day.saturating_sub(state.day.reserved));
        state.month.roll(periods.month);
        state.month.spent = state
            .month
            .spent
            .max(month.saturating_sub(state.month.reserved));
    }

    /// Every entity's budgets (users' included), for the snapshot.
    pub(crate) fn budgets(&self) -> Vec<(Scope, String, Budget, Budget)> {
        let tables = self.tables.load();
        let users = lock_users(&self.users).clone();
        let mut out = Vec::with_capacity(tables.keys.len() + tables.teams.len() + users.len());
        let all = [
            (Scope::Key, &tables.keys),
            (Scope::Team, &tables.teams),
            (Scope::User, &users),
        ];
        for (scope, map) in all {
            for (name, entity) in map {
                let state = lock(&entity.state);
                out.push((scope, name.clone(), state.day, state.month));
            }
        }
        // Users restored from the last snapshot who have not come back yet keep what they
        // spent this day or month (a second restart must not forget it).
        let periods = Periods::at(self.clock.unix());
        let restored = self
            .restored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for ((scope, name), (day, month)) in restored.iter() {
            let current = day.period == periods.day || month.period == periods.month;
            if *scope == Scope::User && current && !users.contains_key(name) {
                out.push((*scope, name.clone(), *day, *month));
            }
        }
        out
    }

    /// The budgets of every key and team with one, for the `switchyard_budget_*` gauges; the
    /// numbers of a past period read as nothing.
    pub(crate) fn gauges(&self) -> Spending {
        let tables = self.tables.load();
        let periods = Periods::at(self.clock.unix());
        let mut out = Spending::new();
        for (scope, map) in [(Scope::Key, &tables.keys), (Scope::Team, &tables.teams)] {
            for (name, entity) in map {
                let l = &entity.limits;
                if l.tokens_per_day.is_none() && l.usd_per_month.is_none() {
                    continue;
                }
                let state = lock(&entity.state);
                let (mut day, mut month) = (state.day, state.month);
                day.roll(periods.day);
                month.roll(periods.month);
                out.insert((scope, name.clone()), (day, month));
            }
        }
        out
    }
}

/// An entity with its counters locked.
type Locked<'a> = Option<(&'a Arc<Entity>, MutexGuard<'a, State>)>;

/// The key's, the team's and the user's counters, locked in that order (the one order every
/// path uses, so that two requests never wait on each other in a cycle); absent for an
/// unknown name or an entity without limits.
fn locked<'a>(
    tables: &'a Tables,
    key: &str,
    team: &str,
    user: Option<&'a Arc<Entity>>,
) -> [Locked<'a>; 3] {
    [tables.keys.get(key), tables.teams.get(team), user]
        .map(|e| e.filter(|e| e.limited).map(|e| (e, lock(&e.state))))
}

/// The headers of the entities (any may be absent), the tighter of each.
fn headers_of(guards: &mut [Locked<'_>; 3], periods: Periods) -> RateHeaders {
    guards
        .iter_mut()
        .flatten()
        .map(|(entity, state)| {
            let mut h = state.headers();
            h.budget_tokens_left = entity.limits.tokens_per_day.map(|cap| {
                let mut day = state.day;
                day.roll(periods.day);
                day.left(cap)
            });
            h.budget_usd_left = entity.limits.usd_per_month.map(|usd| {
                let mut month = state.month;
                month.roll(periods.month);
                month.left(money_cap(usd))
            });
            h
        })
        .fold(RateHeaders::default(), RateHeaders::tighter)
}

/// Locks the users' map (a panic while it was held leaves it usable).
fn lock_users(users: &Mutex<Users>) -> MutexGuard<'_, Users> {
    users
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The team's name in a [`user_id`].
fn team_of(id: &str) -> Option<String> {
    let escaped = id.split(':').next()?;
    Some(unescape(escaped))
}

/// Undoes `push_key_part`'s escapes.
fn unescape(s: &str) -> String {
    s.replace("%3A", ":")
        .replace("%7B", "{")
        .replace("%7D", "}")
        .replace("%25", "%")
}

/// Checks every limit of one entity for `need`, taking nothing; the refusal, if any, is the
/// worst of its limits (see [`Refusal::worse`]).
fn check(
    scope: Scope,
    limits: &Limits,
    state: &mut State,
    need: Need,
    periods: Periods,
) -> Result<Plan, Refusal> {
    let mut plan = Plan::default();
    let mut refusal: Option<Refusal> = None;
    // `needed` and `left` are a budget's (0 for the other limits).
    let mut refuse = |limit: LimitKind, retry_after: Duration, cap: u64, needed: u64, left: u64| {
        let r = Refusal {
            scope,
            limit,
            retry_after,
            cap,
            needed,
            left,
        };
        refusal = Some(refusal.map_or(r, |prev| prev.worse(r)));
    };
    if let Some(bucket) = state.rpm.as_mut() {
        match bucket.plan(1) {
            Ok(take) => plan.rpm = Some(take),
            Err(wait) => refuse(LimitKind::Rpm, wait, u64::from(bucket.limit()), 0, 0),
        }
    }
    if let Some(bucket) = state.tpm.as_mut() {
        match bucket.plan(need.tokens) {
            Ok(take) => plan.tpm = Some(take),
            Err(wait) => refuse(LimitKind::Tpm, wait, u64::from(bucket.limit()), 0, 0),
        }
    }
    if let Some(max) = limits.max_concurrent {
        if state.inflight >= max {
            refuse(
                LimitKind::Concurrency,
                CONCURRENCY_RETRY,
                u64::from(max),
                0,
                0,
            );
        }
        plan.inflight = true;
    }
    if let Some(cap) = limits.tokens_per_day {
        state.day.roll(periods.day);
        match state.day.grant(need.tokens, need.floor_tokens, cap) {
            Some(grant) => plan.day = grant,
            None => {
                let wait = Period::Day.until_next(periods.unix);
                let left = state.day.left(cap);
                refuse(LimitKind::TokensPerDay, wait, cap, need.floor_tokens, left);
            }
        }
    }
    if let Some(usd) = limits.usd_per_month {
        let cap = money_cap(usd);
        state.month.roll(periods.month);
        match state.month.grant(need.usd_nanos, need.floor_usd_nanos, cap) {
            Some(grant) => plan.month = grant,
            None => {
                let wait = Period::Month.until_next(periods.unix);
                let left = state.month.left(cap);
                refuse(
                    LimitKind::UsdPerMonth,
                    wait,
                    cap,
                    need.floor_usd_nanos,
                    left,
                );
            }
        }
    }
    match refusal {
        Some(r) => Err(r),
        None => Ok(plan),
    }
}

/// The `retry-after` of a refusal by `max_concurrent`: a slot frees when any request ends.
pub(crate) const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);

/// Takes a checked plan from an entity; returns what its settle must give back or settle.
fn commit(state: &mut State, plan: Plan, shared: &Arc<Mutex<State>>) -> Hold {
    let mut hold = Hold {
        state: Some(shared.clone()),
        ..Hold::default()
    };
    if let (Some(bucket), Some(take)) = (state.rpm.as_mut(), plan.rpm) {
        bucket.commit(take);
        hold.rpm = Some(bucket.limit());
    }
    if let (Some(bucket), Some(take)) = (state.tpm.as_mut(), plan.tpm) {
        bucket.commit(take);
        hold.tpm = Some((bucket.limit(), take.amount));
    }
    if plan.inflight {
        state.inflight = state.inflight.saturating_add(1);
        hold.inflight = true;
    }
    state.day.reserved = state.day.reserved.saturating_add(plan.day);
    hold.day = plan.day;
    state.month.reserved = state.month.reserved.saturating_add(plan.month);
    hold.month = plan.month;
    hold
}

/// Settles one entity's hold: releases the in-flight slot and the reservations, and counts
/// what was really used (`None`: nothing was, everything is given back, the request too).
pub(crate) fn settle(hold: &Hold, admitted: Periods, now: Periods, used: Option<Need>) {
    let Some(shared) = hold.state.as_ref() else {
        return;
    };
    let mut state = lock(shared);
    if hold.inflight {
        state.inflight = state.inflight.saturating_sub(1);
    }
    if let (Some(bucket), Some(_)) = (state.rpm.as_mut(), hold.rpm) {
        if used.is_none() {
            bucket.give_back(1);
        }
    }
    if let (Some(bucket), Some((_, reserved))) = (state.tpm.as_mut(), hold.tpm) {
        let actual = used.map_or(0, |u| u.tokens);
        if actual >= reserved {
            bucket.take_extra(actual - reserved);
        } else {
            bucket.give_back(reserved - actual);
        }
    }
    settle_budget(
        &mut state.day,
        hold.day,
        admitted.day,
        now.day,
        used.map(|u| u.tokens),
    );
    settle_budget(
        &mut state.month,
        hold.month,
        admitted.month,
        now.month,
        used.map(|u| u.usd_nanos),
    );
}

/// Moves a reservation made in period `made_in` to what was spent, counted in the period the
/// request ended in (`now`). Only budgets that reserved (those with a cap) count spending.
fn settle_budget(budget: &mut Budget, reserved: u64, made_in: u32, now: u32, used: Option<u64>) {
    let capped = reserved > 0;
    budget.release(made_in, reserved);
    if let (true, Some(used)) = (capped, used) {
        budget.roll(now);
        budget.spent = budget.spent.saturating_add(used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        // 2026-03-10T12:00:00Z
        Clock::manual(Duration::from_secs(1_773_144_000))
    }

    #[test]
    fn a_bucket_lets_exactly_its_limit_through_then_one_per_interval() {
        let c = clock();
        let mut b = Bucket::new(60, &c);
        for i in 0..60 {
            let take = b.plan(1).unwrap_or_else(|_| panic!("request {i} refused"));
            b.commit(take);
        }
        let wait = b.plan(1).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(1),
            "one request per second refills"
        );
        c.advance(Duration::from_millis(999));
        assert!(b.plan(1).is_err());
        c.advance(Duration::from_millis(1));
        let take = b.plan(1).unwrap();
        b.commit(take);
        assert!(b.plan(1).is_err());
    }

    #[test]
    fn a_peek_takes_nothing() {
        let c = clock();
        let mut b = Bucket::new(3, &c);
        for _ in 0..10 {
            b.plan(3).unwrap();
        }
        assert_eq!(b.status().remaining, 3);
    }

    #[test]
    fn credits_are_spent_first_and_never_overfill_the_bucket() {
        let c = clock();
        let mut b = Bucket::new(1000, &c);
        let take = b.plan(1000).unwrap();
        b.commit(take);
        assert_eq!(b.status().remaining, 0);
        b.give_back(900); // 1000 reserved, 100 used
        assert_eq!(b.status().remaining, 900);
        let take = b.plan(900).unwrap();
        assert_eq!((take.credit, take.gcra), (900, 0));
        // Half a minute later the GCRA has refilled 500: credits and GCRA hold 1000 at most.
        c.advance(Duration::from_secs(30));
        assert_eq!(b.status().remaining, 1000);
        c.advance(Duration::from_secs(60));
        assert_eq!(b.status().remaining, 1000, "a full bucket, not more");
        let take = b.plan(1000).unwrap();
        b.commit(take);
        assert!(b.plan(1).is_err());
    }

    #[test]
    fn debt_is_paid_before_the_next_request() {
        let c = clock();
        let mut b = Bucket::new(600, &c);
        let take = b.plan(100).unwrap();
        b.commit(take);
        b.take_extra(400); // 100 reserved, 500 used
        assert_eq!(b.status().remaining, 100);
        assert!(b.plan(101).is_err());
        let take = b.plan(100).unwrap();
        assert_eq!(take.gcra, 500, "its own 100 and the 400 owed");
        b.commit(take);
        assert_eq!((b.balance, b.status().remaining), (0, 0));
        // A debt larger than the bucket: each admission waits for a full bucket.
        b.take_extra(1500);
        let wait = b.plan(1).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60), "a full minute to refill 600");
        c.advance(Duration::from_secs(60));
        let take = b.plan(1).unwrap();
        assert_eq!(take.gcra, 600);
        b.commit(take);
        assert_eq!(b.balance, -901);
    }

    #[test]
    fn a_request_larger_than_the_bucket_waits_for_a_full_one() {
        let c = clock();
        let mut b = Bucket::new(100, &c);
        let take = b.plan(5000).unwrap();
        assert_eq!(take.amount, 100);
        b.commit(take);
        assert_eq!(b.plan(5000).unwrap_err(), Duration::from_secs(60));
    }

    #[test]
    fn status_reports_remaining_and_reset() {
        let c = clock();
        let mut b = Bucket::new(60, &c);
        let take = b.plan(30).unwrap();
        b.commit(take);
        let s = b.status();
        assert_eq!((s.limit, s.remaining), (60, 30));
        assert_eq!(s.reset, Duration::from_secs(30));
    }
}
