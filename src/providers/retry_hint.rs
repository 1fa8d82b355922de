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
//! And from the body of an error answer ([`from_error_body`]):
//!
//! - Gemini (and every Google API, Vertex AI included): `error.details[]` holds a
//!   `google.rpc.RetryInfo` (`"@type": "type.googleapis.com/google.rpc.RetryInfo"`) whose
//!   `retryDelay` is a protobuf `Duration` in its JSON form (`"45.5s"`); Gemini sends no
//!   `retry-after` header with it.
//!
//! OpenAI, Azure OpenAI and Anthropic document their waits in headers only (their error
//! bodies' prose, "Please retry after 20 seconds", repeats the header and is not read).
//!
//! The longest wait given wins (a vendor that names several limits is free again when the last
//! resets). A date in the past is no wait. What the gateway does with it (cap, cool-down, the
//! client's own `retry-after`) is `crate::policy::health`'s and `crate::policy::router`'s business.

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

/// The wait an error answer's JSON body asks for: Google's `RetryInfo` detail
/// (`{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",
/// "retryDelay":"45.5s"}]}}`, also inside a one-element array as Gemini's streaming endpoint
/// answers). Only error statuses (4xx, 5xx) are read; a body without the type name is not
/// parsed.
pub fn from_error_body(status: u16, body: &[u8]) -> Option<Duration> {
    if !(400..=599).contains(&status) || memchr::memmem::find(body, RETRY_INFO).is_none() {
        return None;
    }
    let errors: Vec<ErrorBody> = match serde_json::from_slice::<OneOrMany>(body).ok()? {
        OneOrMany::Many(es) => es,
        OneOrMany::One(e) => vec![e],
    };
    errors
        .iter()
        .flat_map(|e| &e.error.details)
        .filter(|d| d.kind.as_bytes() == RETRY_INFO)
        .filter_map(|d| protobuf_duration(d.retry_delay.as_deref()?))
        .max()
}

const RETRY_INFO: &[u8] = b"type.googleapis.com/google.rpc.RetryInfo";

/// `Many` first: serde reads a struct from an array too.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<ErrorBody>),
    One(ErrorBody),
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(serde::Deserialize)]
struct ErrorObject {
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(serde::Deserialize)]
struct Detail {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(rename = "retryDelay", default)]
    retry_delay: Option<String>,
}

/// A protobuf `Duration` in JSON: seconds with up to nine fractional digits and an `s`
/// (`"3s"`, `"45.5s"`, `"0.000000001s"`). A negative one is no wait.
fn protobuf_duration(v: &str) -> Option<Duration> {
    let secs = v.trim().strip_suffix('s')?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    seconds(secs)
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

    const GEMINI_429: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota. Please retry in 45.5s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"45.5s"}]}}"#;

    #[test]
    fn gemini_retry_info_in_the_body() {
        assert_eq!(
            from_error_body(429, GEMINI_429.as_bytes()),
            Some(Duration::from_millis(45_500))
        );
        let array = format!("[{GEMINI_429}]");
        assert_eq!(
            from_error_body(429, array.as_bytes()),
            Some(Duration::from_millis(45_500))
        );
        let whole = GEMINI_429.replace("45.5s", "3s");
        assert_eq!(
            from_error_body(503, whole.as_bytes()),
            Some(Duration::from_secs(3))
        );
        let tiny = GEMINI_429.replace("45.5s", "0.000000001s");
        assert_eq!(
            from_error_body(429, tiny.as_bytes()),
            Some(Duration::from_nanos(1))
        );
    }

    #[test]
    fn other_bodies_are_no_hint() {
        // Not an error status; the hint elsewhere than a RetryInfo detail; the vendors that
        // put their waits in headers only.
        assert_eq!(from_error_body(200, GEMINI_429.as_bytes()), None);
        for body in [
            r#"{"error":{"code":429,"message":"type.googleapis.com/google.rpc.RetryInfo","details":[]}}"#,
            r#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.Help","retryDelay":"9s"}]}} type.googleapis.com/google.rpc.RetryInfo"#,
            r#"{"error":{"message":"Rate limit reached for gpt-4o. Please try again in 20s.","type":"requests","code":"rate_limit_exceeded"}}"#,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            "not json type.googleapis.com/google.rpc.RetryInfo",
            "",
        ] {
            assert_eq!(from_error_body(429, body.as_bytes()), None, "{body}");
        }
        for delay in ["", "s", "-3s", "45.5", "1m", "NaNs", "1e3s", " s"] {
            let body = GEMINI_429.replace("45.5s", delay);
            assert_eq!(from_error_body(429, body.as_bytes()), None, "{delay}");
        }
    }
}
