//! How long a vendor asks to be left alone, from the headers of its answer, in every form
//! LLM vendors use:
//!
//! - `retry-after-ms: 1500` (OpenAI, Azure OpenAI): milliseconds;
//! - `retry-after: 20` (HTTP, RFC 9110 §10.2.3): seconds, or an HTTP-date (`Wed, 21 Oct 2026
//!   07:28:00 GMT`);
//! - OpenAI's `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` (`1s`, `6m0s`,
//!   `20ms`): when the exhausted limit resets — read on a 429 only, where it is the wait;
//! - Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`
//!   (RFC 3339 times): likewise, on a 429.
//!
//! The longest wait given wins (a vendor that names several limits is free again when the last
//! resets). A date in the past is no wait. What the gateway does with it (cap, cool-down, the
//! client's own `retry-after`) is `crate::health`'s and `crate::router`'s business.

use std::time::{Duration, SystemTime};

/// The wait a vendor's answer asks for, if any. `status` decides whether reset headers count
/// (only a 429 says the limit they describe is exhausted).
pub fn retry_hint<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    now: SystemTime,
) -> Option<Duration> {
    headers
        .filter_map(|(name, value)| {
            let value = std::str::from_utf8(value).ok()?.trim();
            match name {
                "retry-after-ms" => millis(value),
                "retry-after" => seconds(value).or_else(|| http_date(value, now)),
                "x-ratelimit-reset-requests" | "x-ratelimit-reset-tokens" if status == 429 => {
                    go_duration(value)
                }
                n if status == 429
                    && n.starts_with("anthropic-ratelimit-")
                    && n.ends_with("-reset") =>
                {
                    rfc3339(value, now)
                }
                _ => None,
            }
        })
        .max()
}

fn millis(v: &str) -> Option<Duration> {
    let ms: f64 = v.parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
}

fn seconds(v: &str) -> Option<Duration> {
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn http_date(v: &str, now: SystemTime) -> Option<Duration> {
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn rfc3339(v: &str, now: SystemTime) -> Option<Duration> {
    let at = humantime::parse_rfc3339_weak(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Go's duration format, as OpenAI writes its resets: `1s`, `6m0s`, `1h2m3.5s`, `20ms`.
fn go_duration(v: &str) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(status: u16, headers: &[(&str, &str)]) -> Option<Duration> {
        let now = httpdate::parse_http_date("Mon, 30 Nov 2026 07:00:00 GMT").unwrap();
        retry_hint(status, headers.iter().map(|(n, v)| (*n, v.as_bytes())), now)
    }

    #[test]
    fn every_form() {
        let s = Duration::from_secs;
        assert_eq!(hint(429, &[("retry-after", "20")]), Some(s(20)));
        assert_eq!(
            hint(503, &[("retry-after", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            hint(429, &[("retry-after", "Mon, 30 Nov 2026 07:00:45 GMT")]),
            Some(s(45))
        );
        assert_eq!(
            hint(429, &[("retry-after", "Mon, 30 Nov 2026 06:00:00 GMT")]),
            Some(s(0)),
            "a date in the past is no wait"
        );
        assert_eq!(
            hint(429, &[("retry-after-ms", "2500")]),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            hint(429, &[("x-ratelimit-reset-tokens", "6m0s")]),
            Some(s(360))
        );
        assert_eq!(
            hint(429, &[("x-ratelimit-reset-requests", "1h2m3.5s")]),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(
            hint(429, &[("x-ratelimit-reset-requests", "20ms")]),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            hint(
                429,
                &[("anthropic-ratelimit-tokens-reset", "2026-11-30T07:00:30Z")]
            ),
            Some(s(30))
        );
    }

    #[test]
    fn the_longest_wins_and_resets_count_only_on_429() {
        let both = [
            ("retry-after", "5"),
            ("x-ratelimit-reset-tokens", "30s"),
            ("anthropic-ratelimit-requests-reset", "2026-11-30T07:00:10Z"),
        ];
        assert_eq!(hint(429, &both), Some(Duration::from_secs(30)));
        assert_eq!(hint(503, &both), Some(Duration::from_secs(5)));
        assert_eq!(hint(200, &[("x-ratelimit-reset-tokens", "30s")]), None);
    }

    #[test]
    fn garbage_is_no_hint() {
        for v in ["", "soon", "-3", "NaN", "1x", "inf"] {
            assert_eq!(
                hint(429, &[("retry-after", v), ("x-ratelimit-reset-tokens", v)]),
                None,
                "{v}"
            );
        }
    }
}
