//! Caps on the request head (`[server]` `max_uri_bytes`, `max_header_line_bytes`,
//! `max_header_bytes`, `max_headers`), checked first on every listener: the API listener's
//! `proxy`'s `admit` and the admin listener's handler call [`check`] before anything else.
//!
//! pingora 0.9's HTTP/1 reader has already read the head when this runs: it buffers up to
//! 1 MiB of head and parses up to 256 header fields, and answers anything beyond that itself
//! with a bare `400` (no body) and a closed connection (the admin listener: a closed
//! connection, no answer). These caps are the gateway's, below pingora's: they bound what a
//! request may carry further (into logs, the upstream request, the limiter) and answer in the
//! spec's error shape, so a client learns which cap it hit.

use pingora::http::RequestHeader;

use crate::config::HeadLimits;
use crate::error::GatewayError;

/// `" HTTP/1.1\r\n"` after the request target, and the blank line that ends the head.
const REQUEST_LINE_TAIL: usize = 11;
const HEAD_END: usize = 2;

/// The head's request target, header lines and size against `limits`:
/// 414 for a long URI, 431 for too many headers, a long header line or a large head.
pub fn check(req: &RequestHeader, limits: &HeadLimits) -> Result<(), GatewayError> {
    let uri = req.raw_path().len();
    if uri > limits.max_uri_bytes {
        return Err(GatewayError::UriTooLong {
            limit: limits.max_uri_bytes,
        });
    }
    let count = req.headers.len();
    if count > limits.max_headers {
        return Err(GatewayError::HeaderTooLarge(format!(
            "the request has {count} header fields; the limit is {}",
            limits.max_headers
        )));
    }
    let mut total = req.method.as_str().len() + 1 + uri + REQUEST_LINE_TAIL + HEAD_END;
    for (name, value) in &req.headers {
        let line = name.as_str().len() + 2 + value.len();
        if line > limits.max_header_line_bytes {
            return Err(GatewayError::HeaderTooLarge(format!(
                "the header `{}` is longer than the limit of {} bytes a line",
                printable(name.as_str()),
                limits.max_header_line_bytes
            )));
        }
        total += line + 2;
    }
    if total > limits.max_header_bytes {
        return Err(GatewayError::HeaderTooLarge(format!(
            "the request head is larger than the limit of {} bytes",
            limits.max_header_bytes
        )));
    }
    Ok(())
}

/// A header name for a message: at most 64 characters (a name is a token, never a secret).
fn printable(name: &str) -> &str {
    match name.char_indices().nth(64) {
        Some((i, _)) => &name[..i],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, String)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", uri.as_bytes(), None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), value.as_str()).unwrap();
        }
        req
    }

    fn small() -> HeadLimits {
        HeadLimits {
            max_uri_bytes: 100,
            max_header_line_bytes: 50,
            max_header_bytes: 200,
            max_headers: 4,
        }
    }

    #[test]
    fn a_head_within_every_cap_passes() {
        let req = request("/v1/chat/completions", &[("host", "a".into())]);
        assert_eq!(check(&req, &small()), Ok(()));
        assert_eq!(check(&req, &HeadLimits::default()), Ok(()));
    }

    #[test]
    fn a_long_uri_is_414() {
        let at = format!("/{}", "a".repeat(99));
        assert_eq!(check(&request(&at, &[]), &small()), Ok(()));
        let over = format!("/{}", "a".repeat(100));
        let e = check(&request(&over, &[]), &small()).unwrap_err();
        assert_eq!(e.status(), 414);
    }

    #[test]
    fn a_long_header_line_is_431_and_named() {
        // "x-big: " is 7 bytes: 43 bytes of value make a 50-byte line.
        let at = request("/", &[("x-big", "v".repeat(43))]);
        assert_eq!(check(&at, &small()), Ok(()));
        let over = request("/", &[("x-big", "v".repeat(44))]);
        let e = check(&over, &small()).unwrap_err();
        assert_eq!(e.status(), 431);
        assert!(e.to_string().contains("`x-big`"), "{e}");
        assert!(
            !e.to_string().contains("vvv"),
            "the value is never echoed: {e}"
        );
    }

    #[test]
    fn too_many_headers_is_431() {
        let four: Vec<(&str, String)> = (0..4).map(|_| ("x-a", "1".to_string())).collect();
        assert_eq!(check(&request("/", &four), &small()), Ok(()));
        let five: Vec<(&str, String)> = (0..5).map(|_| ("x-a", "1".to_string())).collect();
        let e = check(&request("/", &five), &small()).unwrap_err();
        assert_eq!(e.status(), 431);
        assert!(e.to_string().contains("5 header fields"), "{e}");
    }

    #[test]
    fn a_large_head_of_short_lines_is_431() {
        // Four 48-byte lines (+CRLF) and the request line go over 200 bytes.
        let lines: Vec<(&str, String)> = ["x-a", "x-b", "x-c", "x-d"]
            .iter()
            .map(|n| (*n, "v".repeat(43)))
            .collect();
        let e = check(&request("/", &lines), &small()).unwrap_err();
        assert_eq!(e.status(), 431);
        assert!(e.to_string().contains("head is larger"), "{e}");
    }
}
