//! Which upstream serves a request: the model a client names, whether its team may use it,
//! and the route chosen by weight.

use std::sync::Arc;

use crate::config::{Config, Model, Route, Team};
use crate::error::GatewayError;

/// The model named by `name` (its name or an alias) that `team` may use.
pub fn resolve(config: &Config, team: &Team, name: &str) -> Result<Arc<Model>, GatewayError> {
    let model = config
        .model(name)
        .ok_or_else(|| GatewayError::ModelNotFound(printable(name)))?;
    if !team.allows(&model.name) {
        return Err(GatewayError::Permission(model.name.clone()));
    }
    Ok(model.clone())
}

/// A route of `model` chosen with probability proportional to its weight; `roll` is a
/// uniform random number in `[0, 1)` (passed in so that tests can steer it).
pub fn pick(model: &Model, roll: f64) -> &Route {
    let total: u64 = model.routes.iter().map(|r| u64::from(r.weight)).sum();
    let mut target = (roll.clamp(0.0, 1.0) * total as f64) as u64;
    for route in &model.routes {
        let w = u64::from(route.weight);
        if target < w {
            return route;
        }
        target -= w;
    }
    // Validation guarantees at least one route; roll == 1.0 lands here.
    &model.routes[model.routes.len() - 1]
}

/// A client-given name made safe to echo in an error: bounded, no control characters.
fn printable(name: &str) -> String {
    name.chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(weights: &[u32]) -> Model {
        Model {
            name: "m".into(),
            aliases: vec![],
            fallbacks: vec![],
            input_usd_per_mtok: None,
            output_usd_per_mtok: None,
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
        let n = 1000;
        let first = (0..n)
            .filter(|i| pick(&m, *i as f64 / n as f64).provider == 0)
            .count();
        assert_eq!(first, 750);
        assert_eq!(pick(&m, 0.999_999).provider, 1);
        assert_eq!(pick(&m, 1.0).provider, 1);
        assert_eq!(pick(&m, 0.0).provider, 0);
    }
}
