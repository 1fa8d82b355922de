//! Which client request headers go upstream: an allow-list per vendor, never a deny-list.
//!
//! A client header reaches the vendor only when it is one of
//!
//! - [`COMMON`]: what every HTTP API reads the same way (`accept`, `user-agent`) and W3C
//!   trace context (`traceparent`, `tracestate`; the gateway sets its own `traceparent` over
//!   the client's when `[telemetry]` is on);
//! - the route's vendor's own list ([`super::Vendor::client_headers`], in each kind's file,
//!   every entry with the vendor doc it comes from): `anthropic-version`/`anthropic-beta` for
//!   Anthropic, `openai-beta` and the client request id for OpenAI and Azure;
//! - the provider's `forward_headers` from the config (exact names or a `prefix*`), for
//!   extensions the gateway does not know (a tracing or test header);
//!
//! and never one of [`NEVER`]/[`NEVER_PREFIXES`], whatever the lists say: credentials (the
//! client's key is the gateway's, not the vendor's), cookies, forwarding and client-address
//! headers, the headers that pick who pays (`openai-organization`, `openai-project`,
//! `x-goog-user-project`), the gateway's own `x-switchyard-*`, `accept-encoding` (the answer
//! is scanned, so it must not come back compressed) and hop-by-hop headers. `content-type`,
//! `content-length`, `host` and the key headers are set by the gateway itself, and so is
//! `x-request-id` (the gateway's request id, which is the client's when it sent a sane one:
//! `crate::gateway`'s attempt).
//!
//! So a vendor's 401/403 can only mean the gateway's own provider key, which is what cools a
//! route (`crate::gateway::failed`): a client's `OpenAI-Organization` from its environment
//! (which OpenAI answers with 401 `mismatched_organization`) never reaches the vendor.
//!
//! SDK telemetry headers (`x-stainless-*` of the OpenAI and Anthropic SDKs, Google's
//! `x-goog-api-client`) are not forwarded: they describe the client's runtime (OS,
//! architecture, retry count), which no vendor reference lists as a request input, and the
//! request the vendor sees is the gateway's.

use crate::config::{HeaderPattern, Provider};

use super::vendor::Vendor;

/// A client header a vendor takes: its lower-case name and the vendor doc that defines it.
pub type Defined = (&'static str, &'static str);

/// Client headers every vendor takes.
pub const COMMON: &[Defined] = &[
    ("accept", "RFC 9110 §12.5.1"),
    ("user-agent", "RFC 9110 §10.1.5"),
    ("traceparent", "W3C Trace Context §3.2"),
    ("tracestate", "W3C Trace Context §3.3"),
];

/// Client headers that never go upstream, whatever a list or the config says.
pub const NEVER: &[&str] = &[
    // Credentials: the client's key is for the gateway.
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    // Who pays: OpenAI's API reference ("API Overview", Authentication: "Usage from these
    // API requests counts as usage for the specified organization and project"); Google's
    // quota project (Cloud docs, "System parameters": x-goog-user-project).
    "openai-organization",
    "openai-project",
    "x-goog-user-project",
    // Forwarding and client addresses (RFC 7239 and its de-facto predecessors).
    "forwarded",
    "x-real-ip",
    "via",
    // The answer is scanned; it must come back uncompressed.
    "accept-encoding",
    // Set by the gateway.
    "content-type",
    "content-length",
    "host",
    // Hop-by-hop (RFC 9110 §7.6.1) and framing.
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Prefixes of client headers that never go upstream: forwarding (`x-forwarded-for`, …) and
/// the gateway's own (`x-switchyard-user`, `x-switchyard-tags`, …).
pub const NEVER_PREFIXES: &[&str] = &["x-forwarded-", "x-switchyard-"];

/// Whether a client header (its lower-case name) goes upstream to `provider`.
pub fn forwards(provider: &Provider, vendor: &dyn Vendor, name: &str) -> bool {
    if never(name) {
        return false;
    }
    let listed = |list: &[Defined]| list.iter().any(|(n, _)| *n == name);
    listed(COMMON)
        || listed(vendor.client_headers())
        || provider.forward_headers.iter().any(|p| p.matches(name))
}

/// Whether `name` (lower case) is one of [`NEVER`] or starts with one of [`NEVER_PREFIXES`].
pub fn never(name: &str) -> bool {
    NEVER.contains(&name) || NEVER_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Why a `forward_headers` pattern may not be configured, if it may not: it names (or, as a
/// prefix, could match) a header that never goes upstream.
pub fn refused(pattern: &HeaderPattern) -> Option<String> {
    match pattern {
        HeaderPattern::Exact(name) if never(name) => Some(format!(
            "`{name}` never goes upstream (a credential, cookie, forwarding, organisation or \
             project, hop-by-hop or gateway header)"
        )),
        HeaderPattern::Prefix(prefix) => {
            let hit = NEVER
                .iter()
                .find(|n| n.starts_with(prefix.as_str()))
                .copied()
                .or_else(|| {
                    NEVER_PREFIXES
                        .iter()
                        .find(|p| p.starts_with(prefix.as_str()) || prefix.starts_with(**p))
                        .copied()
                });
            hit.map(|hit| {
                format!(
                    "`{prefix}*` would match `{hit}`, which never goes upstream (a credential, \
                     cookie, forwarding, organisation or project, hop-by-hop or gateway header)"
                )
            })
        }
        HeaderPattern::Exact(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_that_could_match_a_never_header_are_refused() {
        let exact = |s: &str| HeaderPattern::Exact(s.into());
        let prefix = |s: &str| HeaderPattern::Prefix(s.into());
        for p in [
            exact("authorization"),
            exact("openai-organization"),
            exact("x-forwarded-for"),
            exact("x-switchyard-user"),
            exact("connection"),
            prefix("x-"),
            prefix(""),
            prefix("x-forwarded"),
            prefix("x-switchyard-a"),
            prefix("openai-"),
            prefix("cook"),
        ] {
            assert!(refused(&p).is_some(), "{p:?}");
        }
        for p in [
            exact("x-portkey-trace"),
            prefix("x-mock-"),
            prefix("x-acme-"),
        ] {
            assert_eq!(refused(&p), None, "{p:?}");
        }
    }
}
