//! `[routing]` (retries, backoff, cooldown) and `[limits]` (the default `max_tokens`).

use std::time::Duration;

use toml::Spanned;

use super::checks::positive;
use super::{Result, Source};
use crate::config::raw;
use crate::config::{LimitsConfig, Routing};

/// `[routing]`: every field a positive integer; absent ones keep [`Routing::default`].
/// `[limits]`: `default_max_tokens` a positive integer (default 1024).
pub(super) fn limits_config(src: &Source, raw: &raw::LimitsSection) -> Result<LimitsConfig> {
    let default_max_tokens = match &raw.default_max_tokens {
        None => LimitsConfig::default().default_max_tokens,
        Some(v) => positive(src, v, "limits.default_max_tokens", u64::from(u32::MAX))?,
    };
    Ok(LimitsConfig { default_max_tokens })
}

pub(super) fn routing(src: &Source, r: &raw::Routing) -> Result<Routing> {
    let d = Routing::default();
    let ms = |v: &Option<Spanned<i64>>, name: &str, default: Duration| -> Result<Duration> {
        v.as_ref().map_or(Ok(default), |v| {
            positive(src, v, &format!("routing.{name}"), 86_400_000).map(Duration::from_millis)
        })
    };
    let count = |v: &Option<Spanned<i64>>, name: &str, default: u32| -> Result<u32> {
        v.as_ref().map_or(Ok(default), |v| {
            positive(src, v, &format!("routing.{name}"), 16).map(|n| n as u32)
        })
    };
    let routing = Routing {
        max_attempts: count(&r.max_attempts, "max_attempts", d.max_attempts)?,
        backoff_base: ms(&r.backoff_base_ms, "backoff_base_ms", d.backoff_base)?,
        backoff_max: ms(&r.backoff_max_ms, "backoff_max_ms", d.backoff_max)?,
        failures_to_cool: count(&r.failures_to_cool, "failures_to_cool", d.failures_to_cool)?,
        cooldown: ms(&r.cooldown_ms, "cooldown_ms", d.cooldown)?,
        retry_after_cap: ms(
            &r.retry_after_cap_ms,
            "retry_after_cap_ms",
            d.retry_after_cap,
        )?,
    };
    Ok(routing)
}

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::*;

    #[test]
    fn limits_section_checks() {
        assert_eq!(load("").unwrap().limits.default_max_tokens, 1024);
        let c = load("[limits]\ndefault_max_tokens = 256\n").unwrap();
        assert_eq!(c.limits.default_max_tokens, 256);
        rejects(
            "[limits]\ndefault_max_tokens = 0 # <-\n",
            "limits.default_max_tokens",
            "positive integer",
        );
        rejects(
            "[limits]\ndefault_max_tokens = 5000000000 # <-\n",
            "limits.default_max_tokens",
            "at most 4294967295",
        );
        rejects("[limits]\nrpm = 5 # <-\n", "limits.rpm", "unknown field");
    }
}
