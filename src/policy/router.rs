//! Which upstream serves a request: the model a client names, whether its team may use it,
//! and the route chosen by weight.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Model, Route, Routing, Strategy, Team};
use crate::error::{printable, GatewayError};
use crate::policy::health::{Availability, Health};

/// The model named by `name` (its name or an alias) that `team` may use. Errors name the
/// model as the client sent it: 404 `ModelNotFound`, 403 `Permission`.
pub fn resolve(config: &Config, team: &Team, name: &str) -> Result<Arc<Model>, GatewayError> {
    let model = config
        .model(name)
        .ok_or_else(|| GatewayError::ModelNotFound(printable(name, 128)))?;
    if !team.allows(&model.name) {
        return Err(GatewayError::Permission(printable(name, 128)));
    }
    Ok(model.clone())
}

/// One upstream attempt: which model (the requested one or a fallback) and which route.
#[derive(Debug, Clone)]
pub struct Choice {
    pub model: Arc<Model>,
    /// The route's index in `model.routes`.
    pub index: usize,
    pub route: Route,
}

/// What is left to try.
#[derive(Debug)]
pub enum Next {
    Try(Choice),
    /// Nothing left; `blocked_ms` when some route is only waiting out a vendor's Retry-After.
    Exhausted {
        blocked_ms: Option<u64>,
    },
}

/// The next route to try for a request on `primary`: an untried healthy route of the model
/// (by weight), then of its fallbacks in order (those the team may use); then, when `again`
/// (the last failure was transient: [`crate::gateway::failed::Failed::transient`]), a route
/// this request already tried that its failures have not cooled down — so a model with one
/// route gets `max_attempts` tries; when every route is cooled down, the least recently failed
/// untried one; never a route whose vendor said Retry-After. `local` allows the in-process
/// mock (only on the first attempt: it answers in `admit`, before any upstream).
#[allow(clippy::too_many_arguments)]
pub fn next(
    config: &Config,
    team: &Team,
    primary: &Arc<Model>,
    tried: &[(String, usize)],
    health: &Health,
    local: bool,
    again: bool,
    now_ms: u64,
) -> Next {
    let chain = chain(config, team, primary);
    let mut blocked_ms: Option<u64> = None;
    let mut cooled: Vec<(u64, &Arc<Model>, usize)> = Vec::new();
    for model in &chain {
        let mut open: Vec<(usize, bool)> = Vec::new();
        for i in (0..model.routes.len()).filter(|&i| usable(config, model, i, tried, local)) {
            let state = route_health(config, health, model, i);
            match state.availability(now_ms) {
                Availability::Healthy => open.push((i, false)),
                Availability::Probe => open.push((i, true)),
                Availability::Cooled => cooled.push((state.last_failure(), model, i)),
                Availability::Blocked(ms) => {
                    blocked_ms = Some(blocked_ms.map_or(ms, |b: u64| b.min(ms)))
                }
            }
        }
        while !open.is_empty() {
            let k = match model.strategy {
                Strategy::Weighted => pick_index(model, &open, rand::random::<f64>()),
                Strategy::Latency => pick_lighter(model, &open, |i| {
                    route_health(config, health, model, i).load_cost()
                }),
            };
            let (i, probe) = open[k];
            if !probe || route_health(config, health, model, i).try_probe() {
                return Next::Try(choice(model, i));
            }
            open.swap_remove(k);
        }
    }
    if again {
        if let Some(choice) = tried_again(config, health, &chain, tried, now_ms) {
            return Next::Try(choice);
        }
    }
    match cooled.iter().min_by_key(|(last, _, _)| *last) {
        Some((_, model, i)) => Next::Try(choice(model, *i)),
        None => Next::Exhausted { blocked_ms },
    }
}

/// Whether route `i` of `model` may take an attempt: not tried yet by this request, and not
/// the in-process mock unless `local` (the mock answers only a first attempt).
fn usable(
    config: &Config,
    model: &Model,
    i: usize,
    tried: &[(String, usize)],
    local: bool,
) -> bool {
    let kind = config.providers[model.routes[i].provider].kind;
    !tried.iter().any(|(m, r)| *m == model.name && *r == i)
        && (!crate::providers::vendor(kind).is_local() || local)
}

/// A route already tried by this request that is still healthy (below `failures_to_cool`),
/// for another try after a transient failure: the first model of `chain` that has one, by
/// weight. Never the in-process mock, never a cooled, probing or blocked route.
fn tried_again(
    config: &Config,
    health: &Health,
    chain: &[Arc<Model>],
    tried: &[(String, usize)],
    now_ms: u64,
) -> Option<Choice> {
    chain.iter().find_map(|model| {
        let open: Vec<(usize, bool)> = (0..model.routes.len())
            .filter(|&i| again_usable(config, health, model, i, tried, now_ms))
            .map(|i| (i, false))
            .collect();
        (!open.is_empty()).then(|| {
            let k = pick_index(model, &open, rand::random::<f64>());
            choice(model, open[k].0)
        })
    })
}

/// Whether route `i` of `model` was tried by this request and may take another try.
fn again_usable(
    config: &Config,
    health: &Health,
    model: &Model,
    i: usize,
    tried: &[(String, usize)],
    now_ms: u64,
) -> bool {
    let kind = config.providers[model.routes[i].provider].kind;
    !crate::providers::vendor(kind).is_local()
        && tried.iter().any(|(m, r)| *m == model.name && *r == i)
        && matches!(
            route_health(config, health, model, i).availability(now_ms),
            Availability::Healthy
        )
}

/// The requested model, then its fallbacks that the team may use.
fn chain(config: &Config, team: &Team, primary: &Arc<Model>) -> Vec<Arc<Model>> {
    let mut out = vec![primary.clone()];
    for &f in &primary.fallbacks {
        let m = &config.models[f];
        if team.allows(&m.name) && !out.iter().any(|o| Arc::ptr_eq(o, m)) {
            out.push(m.clone());
        }
    }
    out
}

fn route_health(
    config: &Config,
    health: &Health,
    model: &Model,
    i: usize,
) -> Arc<crate::policy::health::RouteHealth> {
    let route = &model.routes[i];
    health.route(
        &config.providers[route.provider].name,
        &route.upstream_model,
    )
}

fn choice(model: &Arc<Model>, i: usize) -> Choice {
    Choice {
        model: model.clone(),
        index: i,
        route: model.routes[i].clone(),
    }
}

/// Whether [`next`] would find a route to retry on (without taking a probe); `again` as for
/// [`next`].
pub fn has_next(
    config: &Config,
    team: &Team,
    primary: &Arc<Model>,
    tried: &[(String, usize)],
    health: &Health,
    again: bool,
    now_ms: u64,
) -> bool {
    chain(config, team, primary).iter().any(|model| {
        (0..model.routes.len()).any(|i| {
            let untried = usable(config, model, i, tried, false)
                && !matches!(
                    route_health(config, health, model, i).availability(now_ms),
                    Availability::Blocked(_)
                );
            untried || (again && again_usable(config, health, model, i, tried, now_ms))
        })
    })
}

/// Vendor statuses worth another route: rate limits, overload, server errors, and a
/// refused provider key (that route's fault, not the request's). Other 4xx are the
/// request's own fault and go back to the client.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 401 | 403 | 408 | 409 | 429) || status >= 500
}

/// The wait before attempt `done + 1`: exponential from `backoff_base`, capped at
/// `backoff_max`, with ±50% jitter so that clients retrying together do not hit the next
/// vendor in lockstep. `roll` is uniform in [0, 1).
pub fn backoff(routing: &Routing, done: u32, roll: f64) -> Duration {
    let exp = routing
        .backoff_base
        .saturating_mul(1u32 << done.saturating_sub(1).min(16));
    exp.min(routing.backoff_max)
        .mul_f64(0.5 + roll.clamp(0.0, 1.0))
}

/// Weighted pick among `open` (indices into `model.routes`); returns a position in `open`.
fn pick_index(model: &Model, open: &[(usize, bool)], roll: f64) -> usize {
    let total: u64 = open
        .iter()
        .map(|(i, _)| u64::from(model.routes[*i].weight))
        .sum();
    let mut target = (roll.clamp(0.0, 1.0) * total as f64) as u64;
    for (k, (i, _)) in open.iter().enumerate() {
        let w = u64::from(model.routes[*i].weight);
        if target < w {
            return k;
        }
        target -= w;
    }
    open.len() - 1
}

/// The power of two choices: two routes drawn by weight (distinct when there are two), the
/// one with the lower `cost` taken; ties go to the first draw.
fn pick_lighter(model: &Model, open: &[(usize, bool)], cost: impl Fn(usize) -> u64) -> usize {
    let a = pick_index(model, open, rand::random::<f64>());
    if open.len() < 2 {
        return a;
    }
    let mut b = pick_index(model, open, rand::random::<f64>());
    if b == a {
        b = (a + 1 + (rand::random::<u64>() as usize % (open.len() - 1))) % open.len();
    }
    if cost(open[b].0) < cost(open[a].0) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(weights: &[u32]) -> Model {
        Model {
            name: "m".into(),
            aliases: vec![],
            fallbacks: vec![],
            prices: None,
            strategy: Default::default(),
            kind: Default::default(),
            routes: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| Route {
                    provider: i,
                    upstream_model: format!("u{i}"),
                    weight: w,
                })
                .collect(),
        }
    }

    #[test]
    fn pick_follows_the_weights() {
        let m = model(&[3, 1]);
        let open = [(0, false), (1, false)];
        let n = 1000;
        let first = (0..n)
            .filter(|i| pick_index(&m, &open, *i as f64 / n as f64) == 0)
            .count();
        assert_eq!(first, 750);
        assert_eq!(pick_index(&m, &open, 0.999_999), 1);
        assert_eq!(pick_index(&m, &open, 1.0), 1);
        assert_eq!(pick_index(&m, &open, 0.0), 0);
        // Only the open routes count.
        assert_eq!(pick_index(&m, &[(1, false)], 0.0), 0);
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let r = Routing::default();
        assert_eq!(backoff(&r, 1, 0.5), Duration::from_millis(25));
        assert_eq!(backoff(&r, 2, 0.5), Duration::from_millis(50));
        assert_eq!(backoff(&r, 3, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(&r, 30, 0.5), Duration::from_secs(1));
    }
}
