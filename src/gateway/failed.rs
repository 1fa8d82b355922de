//! What a failed attempt means: its `switchyard_upstream_errors_total` reason, how long its
//! route is left alone, and the client's answer when no other attempt follows (502, or 504 when
//! every failure was a timeout; a vendor's own 4xx; a 429 with `retry-after`).

use std::time::{Duration, SystemTime};

use pingora::http::ResponseHeader;

use crate::config::{Model, Provider};
use crate::error::GatewayError;
use crate::providers::retry_hint;
use crate::upstream::Failure;

/// Why an attempt failed before anything went to the client: the route's failure, and the
/// answer if no other attempt follows.
pub struct Failed {
    /// `switchyard_upstream_errors_total{reason}`.
    pub cause: &'static str,
    /// How long the vendor asked the route to be left alone.
    pub retry_after: Option<Duration>,
    pub error: GatewayError,
    /// The vendor's request id of an error answer, passed to the client.
    pub upstream_request_id: Option<String>,
}

impl Failed {
    pub fn of(failure: Failure, provider: Option<&Provider>) -> Failed {
        let name = provider.map_or("?", |p| p.name.as_str());
        let error = match failure {
            Failure::ConnectTimeout => {
                GatewayError::UpstreamTimeout(format!("connecting to provider `{name}` timed out"))
            }
            Failure::FirstByteTimeout => GatewayError::UpstreamTimeout(format!(
                "provider `{name}` sent no answer within first_byte_timeout_ms"
            )),
            Failure::IdleTimeout => GatewayError::UpstreamTimeout(format!(
                "provider `{name}` went silent for idle_timeout_ms"
            )),
            Failure::TotalTimeout => GatewayError::UpstreamTimeout(format!(
                "provider `{name}` did not finish within total_timeout_ms"
            )),
            Failure::Connect => {
                GatewayError::Upstream(format!("cannot connect to provider `{name}`"))
            }
            Failure::Tls => GatewayError::Upstream(format!("TLS with provider `{name}` failed")),
            Failure::Reset => GatewayError::Upstream(format!(
                "provider `{name}` closed the connection mid-answer"
            )),
        };
        Failed {
            cause: failure.cause(),
            retry_after: None,
            error,
            upstream_request_id: None,
        }
    }

    /// A whole answer that cannot be translated to the client's dialect.
    pub fn untranslatable(error: GatewayError) -> Failed {
        Failed {
            cause: "other",
            retry_after: None,
            error,
            upstream_request_id: None,
        }
    }

    /// Whether the same route may be tried again: a failure that says nothing about the route's
    /// deployment or the request (a refused connection or a reset, a 5xx/429/529 status or an
    /// error event before any content, a timeout before the first byte). A vendor's 4xx, a
    /// refused provider key, a TLS failure, an answer that cannot be translated, and the idle
    /// and total timeouts are not: they would fail the same way again.
    pub fn transient(&self) -> bool {
        matches!(
            self.cause,
            "connect"
                | "connect_timeout"
                | "first_byte_timeout"
                | "reset"
                | "status_5xx"
                | "status_429"
                | "stream_error"
        )
    }

    /// An error event in the vendor's stream before any content.
    pub fn stream_error(message: &str, provider: Option<&Provider>) -> Failed {
        let name = provider.map_or("?", |p| p.name.as_str());
        Failed {
            cause: "stream_error",
            retry_after: None,
            error: GatewayError::Upstream(format!(
                "provider `{name}` failed its stream: {message}"
            )),
            upstream_request_id: None,
        }
    }
}

/// The answer when no attempt follows a failed one: 502 unless every failure was a timeout.
pub fn final_error(failed: Failed, only_timeouts: bool) -> GatewayError {
    match failed.error {
        GatewayError::UpstreamTimeout(m) if !only_timeouts => GatewayError::Upstream(m),
        other => other,
    }
}

/// Nothing left to try: a 429 with `retry-after` when routes only wait out a vendor's
/// Retry-After, else a 502.
pub fn no_route_left(model: &Model, blocked_ms: Option<u64>) -> GatewayError {
    match blocked_ms {
        Some(ms) => GatewayError::RateLimited {
            message: format!(
                "every route of `{}` is rate limited by its vendor; retry later",
                model.name
            ),
            retry_after_secs: ms.div_ceil(1000).max(1),
        },
        None => GatewayError::Upstream(format!("no route of `{}` is available", model.name)),
    }
}

/// The wait a vendor's error answer asks for, in any of the forms vendors use (its headers,
/// or a retry delay inside its body); the longest wins.
pub fn retry_after(resp: &ResponseHeader, body: &[u8]) -> Option<Duration> {
    let status = resp.status.as_u16();
    let headers = resp.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    let from_head = retry_hint::retry_hint(status, headers, SystemTime::now());
    from_head.max(retry_hint::from_error_body(status, body))
}

/// The metric cause of a vendor's error status. `status_auth` (401/403) can only be the
/// gateway's own provider key failing, which is why it fails the route (another route is
/// tried and the route's health counts it): the client's credentials, organisation and project
/// headers never reach a vendor (request headers go by allow-list,
/// `crate::providers::headers`), so no client can make a vendor answer 401/403 and cool a
/// route for everyone.
pub fn status_reason(status: u16) -> &'static str {
    match status {
        429 => "status_429",
        401 | 403 => "status_auth",
        400..=499 => "status_4xx",
        _ => "status_5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_504_only_when_every_failure_was_one() {
        let timeout = || Failed::of(Failure::IdleTimeout, None);
        assert_eq!(timeout().cause, "idle_timeout");
        assert_eq!(final_error(timeout(), true).status(), 504);
        assert_eq!(final_error(timeout(), false).status(), 502);
        let reset = Failed::of(Failure::Reset, None);
        assert_eq!(final_error(reset, true).status(), 502);
    }

    #[test]
    fn only_transient_failures_try_the_same_route_again() {
        let of = |f| Failed::of(f, None).transient();
        assert!(of(Failure::Connect) && of(Failure::ConnectTimeout) && of(Failure::Reset));
        assert!(of(Failure::FirstByteTimeout));
        assert!(!of(Failure::Tls) && !of(Failure::IdleTimeout) && !of(Failure::TotalTimeout));
        let status = |cause| Failed {
            cause,
            retry_after: None,
            error: GatewayError::Upstream(String::new()),
            upstream_request_id: None,
        };
        for s in [500, 503, 529, 429] {
            assert!(status(status_reason(s)).transient(), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!status(status_reason(s)).transient(), "{s}");
        }
        assert!(Failed::stream_error("overloaded", None).transient());
        assert!(!Failed::untranslatable(GatewayError::Upstream(String::new())).transient());
    }

    #[test]
    fn vendor_statuses_have_their_metric_reasons() {
        for (status, reason) in [
            (429, "status_429"),
            (401, "status_auth"),
            (403, "status_auth"),
            (409, "status_4xx"),
            (500, "status_5xx"),
            (529, "status_5xx"),
        ] {
            assert_eq!(status_reason(status), reason, "{status}");
        }
    }

    #[test]
    fn the_longest_wait_of_the_head_and_the_body_wins() {
        let mut resp = ResponseHeader::build(429, None).unwrap();
        resp.insert_header("retry-after", "2").unwrap();
        let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"45.5s"}]}}"#;
        assert_eq!(
            retry_after(&resp, body),
            Some(Duration::from_millis(45_500))
        );
        assert_eq!(retry_after(&resp, b"{}"), Some(Duration::from_secs(2)));
    }
}
