//! `[[models]]`: names and aliases in one namespace, routes to providers, fallbacks (of the
//! same kind), prices, strategy.

use std::collections::HashMap;
use std::sync::Arc;

use toml::Spanned;

use super::checks::{name, non_blank, opt, positive_u32};
use super::prices::{resolve, written, Catalogues};
use super::{Result, Source};
use crate::config::raw;
use crate::config::{Globs, Model, ModelKind, Route, Strategy};

/// Where a model name or alias was defined, to name both sides of a clash.
pub(super) struct NameEntry {
    pub(super) model: usize,
    line: usize,
    alias: bool,
}

/// Model names and aliases share one namespace (a client's `model` may be either): builds the
/// index and refuses any name that appears twice, whichever kinds the two are. Each bad name
/// is recorded in `src` and left out of the index; the others are checked still.
pub(super) fn model_index(src: &Source, models: &[raw::Model]) -> HashMap<String, NameEntry> {
    let mut index: HashMap<String, NameEntry> = HashMap::new();
    for (i, m) in models.iter().enumerate() {
        let names = std::iter::once((&m.name, format!("models[{i}].name"), false)).chain(
            m.aliases
                .iter()
                .enumerate()
                .map(|(j, a)| (a, format!("models[{i}].aliases[{j}]"), true)),
        );
        for (value, path, alias) in names {
            if alias && value.get_ref().contains('*') {
                continue; // a pattern: [`alias_patterns`]
            }
            let Some(text) = src.keep(name(src, value, &path)) else {
                continue;
            };
            let entry = NameEntry {
                model: i,
                line: src.line_of(value.span().start),
                alias,
            };
            if let Some(first) = index.get(&text) {
                let reason = name_clash(models, &text, first, &entry);
                src.keep::<()>(Err(src.at(value, &path, reason)));
                continue;
            }
            index.insert(text, entry);
        }
    }
    index
}

/// The aliases with a `*` (`claude-*`: any model name a client sends that no model or exact
/// alias has, such as the dated names coding agents ask for), each compiled with its model's
/// index, in the config's order; an invalid pattern is recorded in `src`.
pub(super) fn alias_patterns(src: &Source, models: &[raw::Model]) -> Vec<(Globs, usize)> {
    let mut out = Vec::new();
    for (i, m) in models.iter().enumerate() {
        for (j, a) in m.aliases.iter().enumerate() {
            if !a.get_ref().contains('*') {
                continue;
            }
            let path = format!("models[{i}].aliases[{j}]");
            let Some(text) = src.keep(name(src, a, &path)) else {
                continue;
            };
            match Globs::new(vec![text]) {
                Ok(globs) => out.push((globs, i)),
                Err((_, reason)) => {
                    src.keep::<()>(Err(src.at(
                        a,
                        &path,
                        format!("not a valid pattern: {reason}"),
                    )));
                }
            }
        }
    }
    out
}

fn name_clash(models: &[raw::Model], text: &str, first: &NameEntry, new: &NameEntry) -> String {
    let owner = models
        .get(first.model)
        .map_or("", |m| m.name.get_ref().as_str());
    let line = first.line;
    match (first.alias, new.alias) {
        (false, false) => format!("duplicate model name {text:?} (first on line {line})"),
        (true, false) => {
            format!("model name {text:?} is already an alias of model {owner:?} (line {line})")
        }
        (false, true) if first.model == new.model => {
            format!("alias {text:?} repeats the model's own name")
        }
        (false, true) => format!("alias {text:?} is already the name of a model (line {line})"),
        (true, true) => {
            format!("alias {text:?} is already an alias of model {owner:?} (line {line})")
        }
    }
}

pub(super) fn model(
    src: &Source,
    i: usize,
    m: &raw::Model,
    providers: &HashMap<String, usize>,
    kinds: &HashMap<&str, &str>,
    models: &HashMap<String, NameEntry>,
    catalogues: &Catalogues,
) -> Result<Model> {
    let path = format!("models[{i}]");
    if m.routes.is_empty() {
        return Err(src.at(
            &m.name,
            &format!("{path}.routes"),
            format!("model {:?} has no [[models.routes]]", m.name.get_ref()),
        ));
    }
    let routes = m
        .routes
        .iter()
        .enumerate()
        .map(|(j, r)| route(src, &format!("{path}.routes[{j}]"), r, providers))
        .collect::<Result<Vec<_>>>()?;
    let fallbacks = fallbacks(src, i, m, models)?;
    let written = written(
        src,
        &path,
        m.rates(),
        &m.price_tiers,
        m.service_tiers.as_ref(),
    )?;
    // Each route's vendor kind and upstream model, for the catalogue.
    let route_kinds: Vec<(&str, &str)> = m
        .routes
        .iter()
        .map(|r| {
            let kind = kinds.get(r.provider.get_ref().as_str()).copied();
            (kind.unwrap_or(""), r.model.get_ref().as_str())
        })
        .collect();
    let prices = resolve(&written, &route_kinds, m.name.get_ref(), catalogues);
    Ok(Model {
        name: m.name.get_ref().clone(),
        aliases: m.aliases.iter().map(|a| a.get_ref().clone()).collect(),
        fallbacks,
        prices: prices.map(Arc::new),
        strategy: strategy(src, &path, m.strategy.as_ref())?,
        kind: model_kind(src, &path, m.kind.as_ref())?,
        routes,
    })
}

fn model_kind(src: &Source, path: &str, v: Option<&Spanned<String>>) -> Result<ModelKind> {
    let Some(v) = v else {
        return Ok(ModelKind::Unmarked);
    };
    match v.get_ref().as_str() {
        "chat" => Ok(ModelKind::Chat),
        "embedding" => Ok(ModelKind::Embedding),
        other => Err(src.at(
            v,
            &format!("{path}.kind"),
            format!("unknown kind {other:?}: use \"chat\" or \"embedding\""),
        )),
    }
}

fn strategy(src: &Source, path: &str, v: Option<&Spanned<String>>) -> Result<Strategy> {
    let Some(v) = v else {
        return Ok(Strategy::Weighted);
    };
    match v.get_ref().as_str() {
        "weighted" => Ok(Strategy::Weighted),
        "latency" => Ok(Strategy::Latency),
        other => Err(src.at(
            v,
            &format!("{path}.strategy"),
            format!("unknown strategy {other:?}: use \"weighted\" or \"latency\""),
        )),
    }
}

fn route(
    src: &Source,
    path: &str,
    r: &raw::Route,
    providers: &HashMap<String, usize>,
) -> Result<Route> {
    let provider = *providers.get(r.provider.get_ref()).ok_or_else(|| {
        src.at(
            &r.provider,
            &format!("{path}.provider"),
            format!("no provider named {:?}", r.provider.get_ref()),
        )
    })?;
    let upstream_model = non_blank(src, &r.model, &format!("{path}.model"))?;
    let weight = opt(r.weight.as_ref(), |w| {
        positive_u32(src, w, &format!("{path}.weight"))
    })?
    .unwrap_or(1);
    Ok(Route {
        provider,
        upstream_model,
        weight,
    })
}

/// Fallback names (or aliases) → model indices, in order; not the model itself, not twice.
fn fallbacks(
    src: &Source,
    i: usize,
    m: &raw::Model,
    models: &HashMap<String, NameEntry>,
) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(m.fallbacks.len());
    for (j, f) in m.fallbacks.iter().enumerate() {
        let path = format!("models[{i}].fallbacks[{j}]");
        let target = models
            .get(f.get_ref())
            .ok_or_else(|| src.at(f, &path, format!("no model named {:?}", f.get_ref())))?
            .model;
        if target == i {
            return Err(src.at(f, &path, "a model cannot fall back to itself"));
        }
        if out.contains(&target) {
            return Err(src.at(
                f,
                &path,
                format!("fallback {:?} is listed twice", f.get_ref()),
            ));
        }
        out.push(target);
    }
    Ok(out)
}

/// A fallback serves the same doors as its model: a chat model cannot fall back to an
/// embedding model, nor the other way (an unmarked model may fall back to any).
pub(super) fn fallback_kinds(
    src: &Source,
    raw: &[raw::Model],
    models: &[Arc<Model>],
) -> Result<()> {
    for (i, m) in models.iter().enumerate() {
        for (j, &f) in m.fallbacks.iter().enumerate() {
            let (Some(kind), Some(fallback_kind)) = (m.kind.as_str(), models[f].kind.as_str())
            else {
                continue;
            };
            if kind != fallback_kind {
                return Err(src.at(
                    &raw[i].fallbacks[j],
                    &format!("models[{i}].fallbacks[{j}]"),
                    format!(
                        "{:?} is a {kind} model and {:?} a {fallback_kind} model: a fallback must be of the same kind",
                        m.name, models[f].name,
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::*;

    // --- models ------------------------------------------------------------------------------

    #[test]
    fn model_routes() {
        rejects(
            &with_base("[[models]]\nname = \"m\" # <-\n"),
            "models[0].routes",
            "has no [[models.routes]]",
        );
        let route = |fields: &str| {
            with_base(&format!(
                "[[models]]\nname = \"m\"\n  [[models.routes]]\n{fields}"
            ))
        };
        rejects(
            &route("  provider = \"nope\" # <-\n  model = \"x\"\n"),
            "models[0].routes[0].provider",
            "no provider named \"nope\"",
        );
        rejects(
            &route("  provider = \"p\"\n  model = \"\" # <-\n"),
            "models[0].routes[0].model",
            "must not be empty",
        );
        rejects(
            &route("  provider = \"p\"\n  model = \"x\"\n  weight = 0 # <-\n"),
            "models[0].routes[0].weight",
            "positive integer",
        );
        rejects(
            &route("  provider = \"p\"\n  model = \"x\"\n  weight = 5000000000 # <-\n"),
            "models[0].routes[0].weight",
            "at most 4294967295",
        );
        rejects(
            &with_base("[[models]]\nname = \"m\"\n  [[models.routes]] # <-\n  provider = \"p\"\n"),
            "models[0].routes[0]",
            "missing field `model`",
        );
        // The path of the second route of the second model.
        let text = with_base(
            "[[models]]\nname = \"a\"\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n\
             [[models]]\nname = \"b\"\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n\
             \x20 [[models.routes]]\n  provider = \"q\" # <-\n  model = \"x\"\n",
        );
        rejects(
            &text,
            "models[1].routes[1].provider",
            "no provider named \"q\"",
        );
    }

    fn model(name: &str, extra: &str) -> String {
        format!("[[models]]\nname = \"{name}\"\n{extra}\n  [[models.routes]]\n  provider = \"p\"\n  model = \"x\"\n")
    }

    #[test]
    fn model_fallbacks() {
        rejects(
            &with_base(&format!(
                "{}{}",
                model("a", "fallbacks = [\"b\", \"c\"] # <-"),
                model("b", "")
            )),
            "models[0].fallbacks[1]",
            "no model named \"c\"",
        );
        rejects(
            &with_base(&model("a", "aliases = [\"aa\"]\nfallbacks = [\"aa\"] # <-")),
            "models[0].fallbacks[0]",
            "cannot fall back to itself",
        );
        rejects(
            &with_base(&format!(
                "{}{}",
                model("a", "fallbacks = [\"b\", \"bb\"] # <-"),
                model("b", "aliases = [\"bb\"]")
            )),
            "models[0].fallbacks[1]",
            "listed twice",
        );
    }

    #[test]
    fn model_prices() {
        rejects(
            &with_base(&model("a", "input_usd_per_mtok = -1 # <-")),
            "models[0].input_usd_per_mtok",
            "finite number >= 0",
        );
        rejects(
            &with_base(&model("a", "output_usd_per_mtok = nan # <-")),
            "models[0].output_usd_per_mtok",
            "finite number >= 0",
        );
        rejects(
            &with_base(&model("a", "output_usd_per_mtok = inf # <-")),
            "models[0].output_usd_per_mtok",
            "finite",
        );
        rejects(
            &with_base(&model("a", "cached_input_usd_per_mtok = -0.5 # <-")),
            "models[0].cached_input_usd_per_mtok",
            "finite number >= 0",
        );
        rejects(
            &with_base(&model("a", "cache_write_usd_per_mtok = nan # <-")),
            "models[0].cache_write_usd_per_mtok",
            "finite number >= 0",
        );
        // Finite but so large a request's cost overflows to infinity (which stuck in the
        // cost counter and was logged as `null`): refused. A dollar a token is taken.
        rejects(
            &with_base(&model("a", "output_usd_per_mtok = 1e300 # <-")),
            "models[0].output_usd_per_mtok",
            "above the most taken, 1000000",
        );
        rejects(
            &with_base(&model(
                "a",
                "input_usd_per_mtok = 1\n  [[models.price_tiers]]\n  above_prompt_tokens = 10\n  input_usd_per_mtok = 1e7 # <-",
            )),
            "models[0].price_tiers[0].input_usd_per_mtok",
            "above the most taken",
        );
        assert!(load(&with_base(&model("a", "output_usd_per_mtok = 1000000"))).is_ok());
    }

    #[test]
    fn stored_responses_and_model_kinds() {
        let c = load("").unwrap();
        assert_eq!(c.stored_responses, StoredResponses::default());
        let c = load(&with_base(&format!(
            "[state]\nresponses_ttl_s = 60\nresponses_max_bytes = 1000\nresponses_max_entries = 5\nvendor_state_ttl_s = 90\n{}{}",
            model("e", "kind = \"embedding\""),
            model("c", "kind = \"chat\"")
        )))
        .unwrap();
        assert_eq!(
            c.stored_responses,
            StoredResponses {
                ttl: Duration::from_secs(60),
                max_bytes: 1000,
                team_max_bytes: 1000,
                max_entries: 5,
                vendor_state_ttl: Duration::from_secs(90),
            }
        );
        let team = load("[state]\nresponses_team_max_bytes = 4096\n").unwrap();
        assert_eq!(team.stored_responses.team_max_bytes, 4096);
        assert!(team.responses_redis.is_none());
        let own = load("[state]\nresponses_redis_url = \"redis://127.0.0.1:6390/2\"\n").unwrap();
        assert_eq!(
            own.responses_redis.map(|r| r.nodes),
            Some(crate::config::RedisNodes::Single(
                "redis://127.0.0.1:6390/2".to_string()
            ))
        );
        rejects(
            "[state]\nresponses_redis_url = \"redis://:hunter2@h:6379\" # <-\n",
            "state.responses_redis_url",
            "holds a password",
        );
        rejects(
            "[state]\nresponses_max_bytes = 1000\nresponses_team_max_bytes = 2000 # <-\n",
            "state.responses_team_max_bytes",
            "more than responses_max_bytes",
        );
        assert_eq!(c.models[0].kind, ModelKind::Embedding);
        assert_eq!(c.models[1].kind, ModelKind::Chat);
        for field in [
            "responses_ttl_s",
            "responses_max_bytes",
            "responses_team_max_bytes",
            "responses_max_entries",
            "vendor_state_ttl_s",
        ] {
            rejects(
                &format!("[state]\n{field} = 0 # <-\n"),
                &format!("state.{field}"),
                "must be a positive integer",
            );
        }
        rejects(
            &with_base(&model("e", "kind = \"vision\" # <-")),
            "models[0].kind",
            "unknown kind \"vision\"",
        );
        rejects(
            &with_base(&format!(
                "{}{}",
                model("c", "kind = \"chat\"\nfallbacks = [\"e\"] # <-"),
                model("e", "kind = \"embedding\"")
            )),
            "models[0].fallbacks[0]",
            "a fallback must be of the same kind",
        );
        // An unmarked model (no `kind`) may fall back to either.
        let c = load(&with_base(&format!(
            "{}{}",
            model("u", "fallbacks = [\"e\"]"),
            model("e", "kind = \"embedding\"")
        )))
        .unwrap();
        assert_eq!(c.models[0].kind, ModelKind::Unmarked);
    }
}
