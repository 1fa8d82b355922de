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

use pingora::http::ResponseHeader;

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

/// Leaves only the allowed headers of a vendor's answer, its request id renamed.
pub fn keep_allowed(resp: &mut ResponseHeader) {
    let request_id = VENDOR_REQUEST_IDS
        .iter()
        .find_map(|name| resp.headers.get(*name))
        .cloned();
    let dropped: Vec<http::HeaderName> = resp
        .headers
        .keys()
        .filter(|name| !PASSED.contains(&name.as_str()))
        .cloned()
        .collect();
    for name in &dropped {
        resp.remove_header(name);
    }
    if let Some(id) = request_id.filter(|v| v.len() <= 256) {
        // A valid header value stays valid under another name.
        let _ = resp.insert_header(UPSTREAM_REQUEST_ID, id);
    }
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
