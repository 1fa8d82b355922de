//! The published demo key, `sk-switchyard-demo`: the example configs carry its hash so that
//! the gateway answers out of the box, and anyone who has read the README can use it. It is
//! harmless while it reaches only the built-in `mock` provider on a loopback listener; beyond
//! that it is an open door, and `serve` says so at every start and every reload
//! ([`warn_if_exposed`]).

use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use super::{Config, Key};

/// The demo key's secret, published in the README and the example configs.
pub const DEMO_SECRET: &str = "sk-switchyard-demo";

/// Why the demo key is exposed, when it is: the first model its team may use that has a route
/// to a real vendor (not `mock`), and/or the API listener when it is not on loopback. `None`:
/// the key is absent, disabled, or reaches only the mock on loopback.
pub fn exposure(config: &Config) -> Option<String> {
    let demo: [u8; 32] = Sha256::digest(DEMO_SECRET.as_bytes()).into();
    let key = config.keys.get(*config.key_index.get(&demo)?)?;
    if key.disabled {
        return None;
    }
    let mut why = Vec::new();
    if let Some(model) = real_vendor_model(config, key) {
        why.push(format!(
            "it may use the model `{model}`, which reaches a real vendor"
        ));
    }
    if !is_loopback(&config.server.listen) {
        why.push(format!(
            "the API listens on {}, not only on loopback",
            config.server.listen
        ));
    }
    (!why.is_empty()).then(|| why.join(", and "))
}

/// Logs a warning when the demo key is exposed (see [`exposure`]); called at start and after
/// every reload.
pub fn warn_if_exposed(config: &Config) {
    // The secret is public, but it is not written to a log all the same: logs hold no secret.
    if let Some(why) = exposure(config) {
        tracing::warn!(
            file = %config.source.display(),
            "the public demo key of the example configs is in the config and {why}: anyone who \
             has read the README can use it; remove its [[keys]] entry, or generate your own \
             with `switchyard key new`"
        );
    }
}

/// A model `key`'s team may use with a route to a provider other than the built-in mock.
fn real_vendor_model<'c>(config: &'c Config, key: &Key) -> Option<&'c str> {
    let team = config.teams.get(key.team)?;
    config
        .models
        .iter()
        .filter(|m| team.allows(&m.name))
        .find(|m| {
            m.routes
                .iter()
                .any(|r| !crate::providers::vendor(config.provider(r.provider).kind).is_local())
        })
        .map(|m| m.name.as_str())
}

/// Whether `listen` (an `ip:port`, as validated) accepts only loopback connections:
/// `127.0.0.0/8` or `[::1]`.
fn is_loopback(listen: &str) -> bool {
    listen
        .parse::<SocketAddr>()
        .is_ok_and(|addr| addr.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::load_str;
    use std::path::Path;

    const MOCK: &str = "[[providers]]\nname = \"demo\"\nkind = \"mock\"\n\n\
        [[models]]\nname = \"m\"\n  [[models.routes]]\n  provider = \"demo\"\n  model = \"x\"\n\n";
    const DEMO_KEY: &str =
        "[[teams]]\nname = \"demo\"\n\n[[keys]]\nid = \"demo\"\nteam = \"demo\"\n\
        sha256 = \"37cbfc183c342e976476530bb738059047143238dbbee2003f91b27a3d546483\"\n";

    fn exposure_of(text: &str) -> Option<String> {
        exposure(&load_str(text, Path::new("t.toml")).unwrap())
    }

    #[test]
    fn the_demo_key_on_the_mock_on_loopback_is_quiet() {
        let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\n{MOCK}{DEMO_KEY}");
        assert_eq!(exposure_of(&text), None);
        let text = format!("[server]\nlisten = \"[::1]:8080\"\n{MOCK}{DEMO_KEY}");
        assert_eq!(exposure_of(&text), None);
    }

    #[test]
    fn a_public_listener_or_a_real_vendor_exposes_it() {
        let text = format!("[server]\nlisten = \"0.0.0.0:8080\"\n{MOCK}{DEMO_KEY}");
        assert!(exposure_of(&text).unwrap().contains("0.0.0.0:8080"));
        let real = "[[providers]]\nname = \"openai\"\nkind = \"openai\"\n\
            base_url = \"http://127.0.0.1:9\"\n\n\
            [[models]]\nname = \"gpt\"\n  [[models.routes]]\n  provider = \"openai\"\n  model = \"x\"\n\n";
        let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\n{MOCK}{real}{DEMO_KEY}");
        assert!(exposure_of(&text).unwrap().contains("`gpt`"));
        // The same, with the demo team kept to the mock's model: quiet again.
        let kept = DEMO_KEY.replace("name = \"demo\"\n", "name = \"demo\"\nmodels = [\"m\"]\n");
        let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\n{MOCK}{real}{kept}");
        assert_eq!(exposure_of(&text), None);
    }

    #[test]
    fn without_the_demo_key_there_is_nothing_to_say() {
        let text = format!("[server]\nlisten = \"0.0.0.0:8080\"\n{MOCK}");
        assert_eq!(exposure_of(&text), None);
    }
}
