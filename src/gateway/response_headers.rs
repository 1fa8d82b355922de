//! What of a vendor's response head reaches the client: an allow-list, applied to every
//! upstream answer (every front door, every vendor kind) in `proxy::client_head`, before the
//! gateway adds its own headers (`x-request-id`, `x-ratelimit-*`); a vendor error rewrapped by
//! the gateway keeps only the vendor's request id.
//!
//! Kept: how to read the body ([`PASSED`]: `content-type`, `content-length`,
//! `content-encoding`, `transfer-encoding`, `cache-control`, `date`), when to retry
//! (`retry-after`, on a vendor error passed on) and OpenAI's `openai-processing-ms` (the
//! vendor's own time, useful next to the gateway's latency). The vendor's request id
//! (`x-request-id`, Anthropic's `request-id`, Azure's `apim-request-id`) is renamed
//! `x-upstream-request-id`, so a vendor's support can find the call while `x-request-id`
//! stays the gateway's.
//!
//! Dropped: everything else. That is the vendor's rate-limit headers
//! (`x-ratelimit-*`, `anthropic-ratelimit-*`: the account's quota, not the key's), account
//! and organization headers (`openai-organization`, `openai-project`), cookies
//! (`set-cookie`: for the vendor's domain, presented on the gateway's), server identification
//! (`server`, `via`, `x-powered-by`, `cf-ray`, `alt-svc`) and hop-by-hop headers
//! (`connection`, `keep-alive`, `proxy-*`, `te`, `trailer`, `upgrade`).

use http::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderMap;
use pingora::http::ResponseHeader;

use crate::policy::limits::RateHeaders;

/// The vendor headers passed to the client as they are.
pub const PASSED: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "cache-control",
    "date",
    "retry-after",
    "openai-processing-ms",
];

/// The vendor's request id, by vendor (the first one present wins).
pub const VENDOR_REQUEST_IDS: &[&str] = &["x-request-id", "request-id", "apim-request-id"];

/// The name the vendor's request id is passed under.
pub const UPSTREAM_REQUEST_ID: &str = "x-upstream-request-id";

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static(UPSTREAM_REQUEST_ID);

/// Leaves only the allowed headers of a vendor's answer, its request id renamed.
#[cfg(test)] // the gateway builds heads from parts ([`client_parts`])
pub fn keep_allowed(resp: &mut ResponseHeader) {
    *resp = allowed(resp);
}

/// A new head with the vendor's status and only its allowed headers, its request id renamed.
#[cfg(test)] // the gateway builds heads from parts ([`client_parts`])
pub fn allowed(vendor: &ResponseHeader) -> ResponseHeader {
    ResponseHeader::from(allowed_parts(vendor, 2))
}

/// [`allowed`] as a plain `http` head: built without pingora's map of header-name cases,
/// headers go in by their parsed names. An answer's head is made on every request, and
/// pingora's `insert_header` parses each name again and keeps a second map of them.
///
/// The map is sized for what goes in (`extra`: the headers the caller adds), not more: the
/// client's head lives as long as its answer (pingora keeps it), and a map of 13 to 24 headers
/// takes twice the memory of one of up to 12.
fn allowed_parts(vendor: &ResponseHeader, extra: usize) -> http::response::Parts {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = vendor.status;
    parts.version = vendor.version;
    let headers = &mut parts.headers;
    // Framing headers are replaced by the caller's (counted in `extra`).
    let passed = vendor
        .headers
        .keys()
        .filter(|n| PASSED.contains(&n.as_str()) && !is_framing(n))
        .count();
    let request_id = VENDOR_REQUEST_IDS
        .iter()
        .find_map(|name| vendor.headers.get(*name))
        .filter(|v| v.len() <= 256);
    headers.reserve(passed + usize::from(request_id.is_some()) + extra);
    for (name, value) in &vendor.headers {
        if PASSED.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(id) = request_id {
        headers.insert(X_UPSTREAM_REQUEST_ID, id.clone());
    }
    parts
}

fn is_framing(name: &HeaderName) -> bool {
    name == CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING
}

/// The client's head of a vendor's answer: its allowed headers, the translation's content
/// type (`content_type`; its encoding dropped), the framing (`len`: a known length, else
/// chunks), the gateway's request id and its `x-ratelimit-*` headers.
#[cfg(test)] // the gateway builds heads from parts ([`client_parts`])
pub fn client_head(
    vendor: &ResponseHeader,
    content_type: Option<&'static str>,
    len: Option<usize>,
    request_id: &str,
    rate: Option<&RateHeaders>,
) -> ResponseHeader {
    framed(client_parts(vendor, content_type, request_id, rate), len)
}

/// [`client_head`] before its framing, which is known only when the answer goes out: made
/// while the vendor's head is at hand, so that it need not be kept (or copied) meanwhile.
pub fn client_parts(
    vendor: &ResponseHeader,
    content_type: Option<&'static str>,
    request_id: &str,
    rate: Option<&RateHeaders>,
) -> http::response::Parts {
    // The request id, the framing, a content type, and the rate-limit headers.
    let extra = 2 + usize::from(content_type.is_some()) + rate.map_or(0, RateHeaders::count);
    let mut parts = allowed_parts(vendor, extra);
    let headers = &mut parts.headers;
    if let Some(t) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(t));
        headers.remove(CONTENT_ENCODING);
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID, id);
    }
    if let Some(rate) = rate {
        rate.apply_to(headers);
    }
    parts
}

/// The head of [`client_parts`] with its framing: a known length, or chunks.
pub fn framed(mut parts: http::response::Parts, len: Option<usize>) -> ResponseHeader {
    framing(&mut parts.headers, len);
    ResponseHeader::from(parts)
}

/// A known length, or chunks.
fn framing(headers: &mut HeaderMap, len: Option<usize>) {
    headers.remove(CONTENT_LENGTH);
    headers.remove(http::header::TRANSFER_ENCODING);
    match len {
        Some(n) => headers.insert(CONTENT_LENGTH, HeaderValue::from(n)),
        None => headers.insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        ),
    };
}

/// The vendor's request id of an answer, as the client gets it (under
/// [`UPSTREAM_REQUEST_ID`]).
pub fn upstream_request_id(resp: &ResponseHeader) -> Option<String> {
    VENDOR_REQUEST_IDS
        .iter()
        .find_map(|name| resp.headers.get(*name))
        .filter(|v| v.len() <= 256)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor_answer(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (name, value) in headers {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    fn names(resp: &ResponseHeader) -> Vec<String> {
        let mut v: Vec<String> = resp.headers.keys().map(|n| n.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn openais_answer_keeps_only_the_allowed_headers() {
        let mut resp = vendor_answer(&[
            ("content-type", "application/json"),
            ("content-length", "120"),
            ("x-request-id", "req_abc"),
            ("openai-processing-ms", "321"),
            ("openai-organization", "org-internal-7"),
            ("openai-project", "proj_1"),
            ("openai-version", "2020-10-01"),
            ("x-ratelimit-limit-requests", "9000"),
            ("x-ratelimit-remaining-tokens", "3999000"),
            ("set-cookie", "vid=abc; Path=/"),
            ("set-cookie", "__cf_bm=x; Path=/"),
            ("server", "cloudflare"),
            ("cf-ray", "8c1-SJC"),
            ("alt-svc", "h3=\":443\""),
            ("strict-transport-security", "max-age=1"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
        ]);
        keep_allowed(&mut resp);
        assert_eq!(
            names(&resp),
            [
                "content-length",
                "content-type",
                "openai-processing-ms",
                "x-upstream-request-id"
            ]
        );
        assert_eq!(resp.headers["x-upstream-request-id"], "req_abc");
        assert_eq!(resp.headers["content-length"], "120");
    }

    #[test]
    fn anthropics_and_azures_request_ids_are_renamed() {
        let mut anthropic = vendor_answer(&[
            ("request-id", "req_018"),
            ("anthropic-ratelimit-tokens-remaining", "1"),
            ("anthropic-organization-id", "org"),
            ("via", "1.1 google"),
        ]);
        keep_allowed(&mut anthropic);
        assert_eq!(names(&anthropic), ["x-upstream-request-id"]);
        assert_eq!(anthropic.headers["x-upstream-request-id"], "req_018");

        let mut azure = vendor_answer(&[
            ("apim-request-id", "a-1"),
            ("x-ms-region", "West Europe"),
            ("azureml-model-session", "d"),
        ]);
        keep_allowed(&mut azure);
        assert_eq!(names(&azure), ["x-upstream-request-id"]);
    }

    #[test]
    fn the_clients_head_has_the_framing_the_request_id_and_the_rate_headers() {
        let vendor = vendor_answer(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("content-length", "120"),
            ("x-request-id", "req_vendor"),
            ("server", "cloudflare"),
        ]);
        let rate = RateHeaders {
            limit_requests: Some(60),
            remaining_requests: Some(59),
            reset_requests: Some(std::time::Duration::from_secs(1)),
            ..RateHeaders::default()
        };
        let resp = client_head(&vendor, None, None, "req_1", Some(&rate));
        assert_eq!(resp.status, 200);
        assert!(!resp.has_case());
        assert_eq!(resp.headers["transfer-encoding"], "chunked");
        assert!(resp.headers.get("content-length").is_none());
        assert_eq!(resp.headers["content-encoding"], "gzip");
        assert_eq!(resp.headers["x-request-id"], "req_1");
        assert_eq!(resp.headers["x-upstream-request-id"], "req_vendor");
        assert_eq!(resp.headers["x-ratelimit-remaining-requests"], "59");
        assert!(resp.headers.get("server").is_none());

        // A translated answer: its own content type, no encoding, a known length.
        let resp = client_head(&vendor, Some("text/event-stream"), Some(7), "req_2", None);
        assert_eq!(resp.headers["content-type"], "text/event-stream");
        assert!(resp.headers.get("content-encoding").is_none());
        assert_eq!(resp.headers["content-length"], "7");
        assert!(resp.headers.get("transfer-encoding").is_none());
        assert!(resp.headers.get("x-ratelimit-limit-requests").is_none());
    }

    #[test]
    fn an_error_answer_keeps_retry_after() {
        let mut resp = vendor_answer(&[
            ("retry-after", "3"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-should-retry", "true"),
        ]);
        keep_allowed(&mut resp);
        assert_eq!(names(&resp), ["retry-after"]);
    }
}
