//! What each vendor kind needs on the wire: the upstream path and the auth headers.
//! `openai` and `azure` speak the client's dialect and are passed through untouched;
//! `mock` answers in-process ([`mock`]).

pub mod mock;

use crate::config::{Provider, ProviderKind};
use crate::error::GatewayError;

/// The path (and query) of the chat endpoint for `upstream_model` on this provider.
pub fn upstream_path(provider: &Provider, upstream_model: &str, stream: bool) -> String {
    let base = provider
        .upstream
        .as_ref()
        .map_or("", |u| u.base_path.as_str());
    match provider.kind {
        ProviderKind::OpenAi | ProviderKind::Mock => format!("{base}/chat/completions"),
        ProviderKind::Azure => format!(
            "{base}/openai/deployments/{}/chat/completions?api-version={}",
            path_segment(upstream_model),
            provider.api_version.as_deref().unwrap_or_default()
        ),
        ProviderKind::Anthropic => format!("{base}/v1/messages"),
        ProviderKind::Gemini if stream => format!(
            "{base}/v1beta/models/{}:streamGenerateContent?alt=sse",
            path_segment(upstream_model)
        ),
        ProviderKind::Gemini => format!(
            "{base}/v1beta/models/{}:generateContent",
            path_segment(upstream_model)
        ),
    }
}

/// Whether this kind takes the client's OpenAI-shaped body as it is (after the rewrite).
pub fn passes_through(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::OpenAi | ProviderKind::Azure)
}

/// The headers that carry the provider's key (and API version), as the vendor expects them.
pub fn auth_headers(provider: &Provider) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(2);
    if let Some(key) = &provider.api_key {
        let key = key.expose();
        match provider.kind {
            ProviderKind::OpenAi => out.push(("authorization", format!("Bearer {key}"))),
            ProviderKind::Azure => out.push(("api-key", key.to_string())),
            ProviderKind::Anthropic => out.push(("x-api-key", key.to_string())),
            ProviderKind::Gemini => out.push(("x-goog-api-key", key.to_string())),
            ProviderKind::Mock => {}
        }
    }
    if provider.kind == ProviderKind::Anthropic {
        out.push(("anthropic-version", "2023-06-01".to_string()));
    }
    out
}

/// Client headers that never go upstream: credentials (the client's key must not reach a
/// vendor), hop-by-hop headers, and `accept-encoding` (the stream is scanned, so it must not
/// come back compressed).
pub const STRIPPED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "accept-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
    "host",
];

/// The status the client gets for a vendor's error status. A vendor's 401/403 means the
/// gateway's own provider key failed, not the client's: that is the gateway's upstream error.
pub fn client_status_for_vendor(status: u16) -> u16 {
    match status {
        401 | 403 => 502,
        400..=499 => status,
        _ => 502,
    }
}

/// A vendor's error answer, rewrapped into the spec's shape with the vendor's message kept
/// (but never the provider's key, which some vendors echo in part).
pub fn vendor_error(provider: Option<&Provider>, status: u16, body: &[u8]) -> GatewayError {
    let name = provider.map_or("?", |p| p.name.as_str());
    let client_status = client_status_for_vendor(status);
    if status == 401 || status == 403 {
        return GatewayError::Upstream(format!(
            "provider `{name}` refused the gateway's credentials (status {status})"
        ));
    }
    let mut message = vendor_message(body);
    if let Some(key) = provider.and_then(|p| p.api_key.as_ref()) {
        if !key.expose().is_empty() {
            message = message.replace(key.expose(), "*****");
        }
    }
    if client_status == 502 {
        return GatewayError::Upstream(format!(
            "provider `{name}` failed with status {status}: {message}"
        ));
    }
    GatewayError::Vendor {
        status: client_status,
        message,
    }
}

/// The message of a vendor's error body: `error.message` (OpenAI, Azure, Anthropic, Gemini),
/// a top-level `message`, or the start of the text.
fn vendor_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let found = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    let text = found.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text: String = text.chars().take(1024).collect();
    if text.trim().is_empty() {
        "no message".to_string()
    } else {
        text
    }
}

/// A model name made safe for a URL path segment (percent-encodes all but unreserved bytes).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("gpt-4o_v1.2"), "gpt-4o_v1.2");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
