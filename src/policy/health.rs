//! Passive health of routes: consecutive failures cool a route down for a while, then one
//! probe request is let through (half-open); a vendor's `Retry-After` skips the route until
//! then. The state outlives config reloads: it is keyed by provider name and upstream model,
//! and lives outside the config snapshot.
//!
//! Every field is an atomic, and the map is an `ArcSwap` replaced only when the config
//! changes, so the request path takes no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{Config, Routing};
use crate::observability::metrics::Metrics;

/// The health of one route.
#[derive(Debug, Default)]
pub struct RouteHealth {
    consecutive_failures: AtomicU32,
    /// Unix ms until which the route is cooled (soft: used when nothing else is left).
    cooled_until: AtomicU64,
    /// Unix ms until which the vendor asked us to stay away (hard: never tried before).
    retry_after_until: AtomicU64,
    /// Unix ms of the last failure, to pick the least recently failed route.
    last_failure: AtomicU64,
    /// Set while the half-open probe is in flight.
    probing: AtomicBool,
    /// Moving average of the time to first byte of its successful attempts, µs (0: none yet).
    ttft_ewma_us: AtomicU64,
    /// Attempts on this route in flight now.
    in_flight: AtomicU32,
}

/// Counts an attempt in flight on a route for as long as it lives.
#[derive(Debug)]
pub struct InFlight(Arc<RouteHealth>);

impl InFlight {
    pub fn start(route: Arc<RouteHealth>) -> InFlight {
        route.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(route)
    }

    /// The attempt's time to first byte: folded into the route's average (weight 1/8).
    pub fn first_byte_after(&self, ttft: Duration) {
        let us = (ttft.as_micros().min(u128::from(u64::MAX)) as u64).max(1);
        let old = self.0.ttft_ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { old - old / 8 + us / 8 };
        self.0.ttft_ewma_us.store(new.max(1), Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a route may take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Healthy,
    /// Cooled down, but its cool-down ended: this request is the one probe.
    Probe,
    /// Cooled down: try it only if nothing else is left.
    Cooled,
    /// The vendor said `Retry-After`: do not try before this many ms from now.
    Blocked(u64),
}

impl RouteHealth {
    /// The latency strategy's cost of sending one more request here: the average time to first
    /// byte × (requests in flight + 1); 0 for a route never measured, so it gets tried.
    pub fn load_cost(&self) -> u64 {
        let ttft = self.ttft_ewma_us.load(Ordering::Relaxed);
        let in_flight = u64::from(self.in_flight.load(Ordering::Relaxed));
        ttft.saturating_mul(in_flight + 1)
    }

    /// Whether this route may be tried now. `Probe` means its cool-down is over: the caller
    /// that picks it must win [`RouteHealth::try_probe`] first.
    pub fn availability(&self, now_ms: u64) -> Availability {
        let blocked = self.retry_after_until.load(Ordering::Relaxed);
        if blocked > now_ms {
            return Availability::Blocked(blocked - now_ms);
        }
        let cooled = self.cooled_until.load(Ordering::Relaxed);
        if cooled == 0 {
            Availability::Healthy
        } else if cooled > now_ms || self.probing.load(Ordering::Relaxed) {
            Availability::Cooled
        } else {
            Availability::Probe
        }
    }

    /// Takes the one half-open probe; false if another request has it.
    pub fn try_probe(&self) -> bool {
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    pub fn last_failure(&self) -> u64 {
        self.last_failure.load(Ordering::Relaxed)
    }

    /// A successful answer: the route is healthy again. Returns whether it was cooled.
    pub fn success(&self) -> bool {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.probing.store(false, Ordering::Release);
        self.cooled_until.swap(0, Ordering::Relaxed) != 0
    }

    /// A failed attempt; `retry_after` from the vendor, if it gave one. Returns whether the
    /// route is cooled down now.
    pub fn failure(&self, policy: &Routing, now_ms: u64, retry_after: Option<Duration>) -> bool {
        self.last_failure.store(now_ms, Ordering::Relaxed);
        if let Some(wait) = retry_after {
            let wait = wait.min(policy.retry_after_cap).as_millis() as u64;
            self.retry_after_until
                .fetch_max(now_ms + wait, Ordering::Relaxed);
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let was_probe = self.probing.swap(false, Ordering::AcqRel);
        if failures >= policy.failures_to_cool || was_probe {
            let until = now_ms + policy.cooldown.as_millis() as u64;
            self.cooled_until.store(until, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A probe that ended without a verdict (the client left): let another one through.
    pub fn release_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

/// Route health by provider name, then upstream model: an identity that survives reloads,
/// looked up by `&str` so that the request path allocates no key.
type Routes = HashMap<String, HashMap<String, Arc<RouteHealth>>>;

/// The health of every route of the config.
pub struct Health {
    routes: ArcSwap<Routes>,
    /// The `[routing]` settings of the running config.
    policy: ArcSwap<Routing>,
    metrics: Arc<Metrics>,
}

impl Health {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Health {
        let h = Health {
            routes: ArcSwap::from_pointee(HashMap::new()),
            policy: ArcSwap::from_pointee(config.routing),
            metrics,
        };
        h.sync(config);
        h
    }

    /// After a config load: routes that remain keep their state; new ones start healthy.
    pub fn sync(&self, config: &Config) {
        let mut next = Routes::new();
        for model in &config.models {
            for route in &model.routes {
                let provider = &config.providers[route.provider].name;
                let state = self.route(provider, &route.upstream_model);
                let cooled = state.cooled_until.load(Ordering::Relaxed) != 0;
                self.metrics
                    .route_healthy
                    .with_label_values(&[provider, &route.upstream_model])
                    .set(i64::from(!cooled));
                next.entry(provider.clone())
                    .or_default()
                    .insert(route.upstream_model.clone(), state);
            }
        }
        self.routes.store(Arc::new(next));
        self.policy.store(Arc::new(config.routing));
    }

    /// The state of a route (a fresh one if a reload removed it mid-request).
    pub fn route(&self, provider: &str, upstream_model: &str) -> Arc<RouteHealth> {
        self.routes
            .load()
            .get(provider)
            .and_then(|models| models.get(upstream_model))
            .cloned()
            .unwrap_or_default()
    }

    pub fn record_success(&self, provider: &str, upstream_model: &str) {
        if self.route(provider, upstream_model).success() {
            self.set_gauge(provider, upstream_model, true);
        }
    }

    pub fn record_failure(
        &self,
        provider: &str,
        upstream_model: &str,
        retry_after: Option<Duration>,
    ) {
        let policy = **self.policy.load();
        if self
            .route(provider, upstream_model)
            .failure(&policy, now_ms(), retry_after)
        {
            self.set_gauge(provider, upstream_model, false);
        }
    }

    fn set_gauge(&self, provider: &str, upstream_model: &str, healthy: bool) {
        self.metrics
            .route_healthy
            .with_label_values(&[provider, upstream_model])
            .set(i64::from(healthy));
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_cool_then_one_probe_then_recover() {
        let p = Routing {
            failures_to_cool: 2,
            cooldown: Duration::from_millis(1000),
            ..Routing::default()
        };
        let h = RouteHealth::default();
        assert_eq!(h.availability(0), Availability::Healthy);
        assert!(!h.failure(&p, 10, None));
        assert_eq!(h.availability(11), Availability::Healthy);
        assert!(h.failure(&p, 20, None));
        assert_eq!(h.availability(500), Availability::Cooled);
        // Cool-down over: exactly one probe.
        assert_eq!(h.availability(1100), Availability::Probe);
        assert!(h.try_probe());
        assert!(!h.try_probe());
        assert_eq!(h.availability(1100), Availability::Cooled);
        // The probe fails: cooled again at once.
        assert!(h.failure(&p, 1200, None));
        assert_eq!(h.availability(1300), Availability::Cooled);
        assert_eq!(h.availability(2300), Availability::Probe);
        assert!(h.try_probe());
        assert!(h.success());
        assert_eq!(h.availability(2301), Availability::Healthy);
    }

    #[test]
    fn retry_after_blocks_up_to_the_cap() {
        let p = Routing {
            retry_after_cap: Duration::from_secs(5),
            ..Routing::default()
        };
        let h = RouteHealth::default();
        h.failure(&p, 0, Some(Duration::from_secs(3600)));
        assert_eq!(h.availability(1000), Availability::Blocked(4000));
        assert_eq!(h.availability(5000), Availability::Healthy);
    }
}
