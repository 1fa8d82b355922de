//! What each vendor kind needs on the wire: the upstream path, the auth headers, which dialect
//! it speaks, and how its errors are rewrapped.
//!
//! A vendor kind is a module implementing [`Vendor`] ([`openai`], [`azure`], [`anthropic`],
//! [`gemini`], [`bedrock`], [`vertex`], [`mock`], which also answers in-process), and [`vendor`] is the one place a
//! [`ProviderKind`] is turned into its vendor: adding a kind is adding its file, its
//! `ProviderKind` variant and a line there. The free functions below are what the rest of the
//! gateway calls; each asks the provider's vendor. Requests in another dialect than the
//! vendor's are translated by [`crate::convert`].

pub(crate) mod anthropic;
pub(crate) mod azure;
pub mod bedrock;
pub(crate) mod gemini;
pub mod headers;
pub(crate) mod mock;
pub(crate) mod openai;
pub(crate) mod retry_hint;
pub(crate) mod vendor;
pub mod vertex;

use crate::config::{Provider, ProviderKind};
use crate::dialect::Dialect;
use crate::error::GatewayError;

pub use vendor::{Call, Vendor};

/// The Messages API version sent to `anthropic` vendors when the client gave none.
pub use anthropic::VERSION as ANTHROPIC_VERSION;

/// What a request asks of the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A chat completion or message (streamed or not).
    Generate,
    /// Token counting: Anthropic's `count_tokens`, Gemini's `countTokens` (answered by the
    /// vendor only where it speaks the door's dialect, [`Vendor::counts_tokens`]; others are
    /// answered with the gateway's estimate).
    CountTokens,
    /// Embeddings (`openai`, `azure`; `gemini` through `batchEmbedContents`, `vertex` through
    /// `:predict`); at the Gemini door, `batchEmbedContents`.
    Embed,
    /// The Gemini door's `embedContent`: one content's embedding (`gemini` natively; other
    /// vendors as their embeddings of one input).
    EmbedOne,
    /// A Responses API call: `openai`/`azure` serve their own `/responses`; other vendors
    /// generate through their usual endpoint, the request translated.
    Respond,
}

/// The vendor of a kind: the one dispatch on [`ProviderKind`].
pub fn vendor(kind: ProviderKind) -> &'static dyn Vendor {
    match kind {
        ProviderKind::OpenAi => &openai::OpenAi,
        ProviderKind::Azure => &azure::Azure,
        ProviderKind::Anthropic => &anthropic::Anthropic,
        ProviderKind::Gemini => &gemini::Gemini,
        ProviderKind::Bedrock => &bedrock::Bedrock,
        ProviderKind::Vertex => &vertex::Vertex,
        ProviderKind::Mock => &mock::Mock,
    }
}

/// The path (and query) of the endpoint for `upstream_model` on this provider: the
/// `base_url`'s path, then the vendor's ([`Vendor::path`]).
pub fn upstream_path(
    provider: &Provider,
    upstream_model: &str,
    stream: bool,
    op: Operation,
) -> String {
    let base = provider
        .upstream
        .as_ref()
        .map_or("", |u| u.base_path.as_str());
    let path = vendor(provider.kind).path(provider, upstream_model, stream, op);
    format!("{base}{path}")
}

/// Whether a vendor kind speaks `dialect` natively (then the client's bytes go through).
pub fn speaks(kind: ProviderKind, dialect: Dialect) -> bool {
    vendor(kind).speaks(dialect)
}

/// Whether this provider speaks `dialect` natively for `upstream_model`: its kind does (for
/// that model: [`Vendor::speaks_for`]), and an `openai` provider marked `chat_only` does not
/// serve the Responses API.
pub fn serves(provider: &Provider, upstream_model: &str, dialect: Dialect) -> bool {
    vendor(provider.kind).speaks_for(provider, upstream_model, dialect)
        && !(dialect == Dialect::Responses && provider.chat_only)
}

/// The generation dialect a vendor kind speaks (the built-in mock speaks chat); a cloud's
/// may depend on the model: [`dialect_for`].
pub fn dialect(kind: ProviderKind) -> Dialect {
    vendor(kind).dialect()
}

/// The generation dialect this provider speaks for `upstream_model` ([`Vendor::dialect_for`]).
pub fn dialect_for(provider: &Provider, upstream_model: &str) -> Dialect {
    vendor(provider.kind).dialect_for(provider, upstream_model)
}

/// The upstream body of `call` made from the body in the vendor's dialect
/// ([`Vendor::envelope`]), what it dropped of the client's noted in `adjusted`.
pub fn envelope(
    call: &Call<'_>,
    body: bytes::Bytes,
    adjusted: &mut crate::dialect::adjusted::Adjustments,
) -> Result<bytes::Bytes, GatewayError> {
    vendor(call.provider.kind).envelope(call, body, adjusted)
}

/// Where this provider's credentials come from, for `switchyard check`
/// ([`Vendor::credential_source`]; never a secret).
pub fn credential_source(provider: &Provider) -> Option<String> {
    vendor(provider.kind).credential_source(provider)
}

/// The re-framer of `call`'s successful answer, if its vendor needs one ([`Vendor::reframe`]).
pub fn reframe(call: &Call<'_>) -> Option<Box<dyn crate::upstream::reframe::Reframe>> {
    vendor(call.provider.kind).reframe(call)
}

/// Whether a chat vendor takes `stream_options` (so that its stream can end with usage); see
/// [`azure::Azure`] for the one that may not.
pub fn takes_stream_options(provider: &Provider) -> bool {
    vendor(provider.kind).takes_stream_options(provider)
}

/// The upstream's request head, made from the client's: `POST uri` in HTTP/1.1 (whatever the
/// client speaks); of the client's headers only those the vendor takes ([`headers::forwards`]:
/// an allow-list per vendor plus the provider's `forward_headers`, never a credential, cookie,
/// forwarding, organisation/project or hop-by-hop header); Host and the provider's key in; the
/// vendor's default headers (`anthropic-version`) set when the client did not set them.
///
/// Last, the vendor signs the request ([`Vendor::sign`]: AWS SigV4, a cloud's token) over
/// the finished head and `body`.
///
/// The head is built as a plain `http` head, headers going in by their parsed names, without
/// pingora's map of header-name cases (vendors read names case-blind): a head is made for
/// every attempt, and pingora's `insert_header`/`remove_header` parse each name again and keep
/// the second map in step.
pub fn upstream_head(
    provider: &Provider,
    client: &pingora::http::RequestHeader,
    uri: http::Uri,
    body: &[u8],
) -> Result<pingora::http::RequestHeader, GatewayError> {
    use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
    let bad = |_| GatewayError::Internal("bad upstream header".into());
    let vendor = vendor(provider.kind);
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = http::Method::POST;
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let headers = &mut parts.headers;
    headers.reserve(8);
    for (name, value) in &client.headers {
        if headers::forwards(provider, vendor, name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(up) = &provider.upstream {
        headers.insert(HOST, HeaderValue::from_str(&up.host_header).map_err(bad)?);
    }
    for (name, value) in vendor.auth_headers(provider) {
        let mut value = HeaderValue::try_from(value).map_err(bad)?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(name), value);
    }
    for &(name, value) in vendor.default_headers() {
        if !headers.contains_key(name) {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    vendor.sign(provider, &mut parts, body)?;
    Ok(pingora::http::RequestHeader::from(parts))
}

/// The headers that carry the provider's key, as the vendor expects them.
pub fn auth_headers(provider: &Provider) -> Vec<(&'static str, String)> {
    vendor(provider.kind).auth_headers(provider)
}

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
/// (but never the provider's key, which some vendors echo in part), and the `type`, `code`
/// and `param` it gave ([`vendor_code`]), as the vendor names them: the gateway shows them, or
/// the door's own code for them, after `crate::convert::errors::at_door`. A 401/403 (the
/// gateway's key refused) keeps nothing of the vendor's answer; a 5xx is the client's 502.
pub fn vendor_error(provider: Option<&Provider>, status: u16, body: &[u8]) -> GatewayError {
    let name = provider.map_or("?", |p| p.name.as_str());
    let client_status = client_status_for_vendor(status);
    if status == 401 || status == 403 {
        return GatewayError::Upstream(format!(
            "provider `{name}` refused the gateway's credentials (status {status})"
        ));
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let mut message = vendor_message(parsed.as_ref(), body);
    if let Some(key) = provider.and_then(|p| p.api_key.as_ref()) {
        if !key.expose().is_empty() {
            message = message.replace(key.expose(), "*****");
        }
    }
    if client_status == 502 {
        message = format!("provider `{name}` failed with status {status}: {message}");
    }
    let code = parsed.as_ref().and_then(vendor_code).map(Box::new);
    GatewayError::Vendor {
        status: client_status,
        message,
        code,
    }
}

/// The `type`, `code` and `param` of a vendor's error body, where they are strings (OpenAI's
/// and Azure's `{"error":{"message","type","param","code"}}`, Anthropic's
/// `{"type":"error","error":{"type","message"}}`; Gemini's `error.code` is the HTTP status, a
/// number, and is not taken). `None` when it has none of them.
fn vendor_code(v: &serde_json::Value) -> Option<crate::error::ErrorCode> {
    let error = v.get("error")?;
    let text = |name: &str| {
        error
            .get(name)
            .and_then(|f| f.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| crate::error::printable(s, 128))
    };
    let code = crate::error::ErrorCode {
        r#type: text("type"),
        code: text("code"),
        param: text("param"),
    };
    (code != crate::error::ErrorCode::default()).then_some(code)
}

/// The message of a vendor's error body: `error.message` (OpenAI, Azure, Anthropic, Gemini),
/// a top-level `message`, or the start of the text.
fn vendor_message(parsed: Option<&serde_json::Value>, body: &[u8]) -> String {
    let found = parsed.and_then(|v| {
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

/// The status to act on for a vendor's error answer ([`Vendor::status`]): Gemini's refusal
/// of a bad API key (a 400 `API_KEY_INVALID`) is the gateway's own key failing, like a 401
/// elsewhere: a route to retry and a 502 for the client, not a fault of the client's request.
pub fn vendor_status(kind: ProviderKind, status: u16, body: &[u8]) -> u16 {
    vendor(kind).status(status, body)
}

/// Whether a vendor's own answer (`body`, not translated, with its `status`) is a refusal on
/// content grounds, which the client gets as the "Contents Filtered" error of the chat API
/// ([`GatewayError::ContentFilter`]); each vendor's signal is its
/// [`Vendor::is_content_filter`]:
///
/// - `openai`/`azure`: Azure's 400 `{"error":{"code":"content_filter"}}` (or its
///   `innererror.code` `ResponsibleAIPolicyViolation`), and a 200 answer with a choice
///   finished with `content_filter`;
/// - `gemini`: a 200 answer whose prompt was blocked (`promptFeedback.blockReason`) or with a
///   candidate stopped for SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, …;
/// - `anthropic`: a 200 answer with `stop_reason: "refusal"`.
///
/// The 200 answers are read by [`crate::dialect::refusal`].
///
/// For non-streaming answers only: a stream already sent its head, so a filtered stream ends
/// with `finish_reason: "content_filter"` instead.
pub fn is_content_filter(kind: ProviderKind, status: u16, body: &[u8]) -> bool {
    vendor(kind).is_content_filter(status, body)
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
    use super::*;

    #[test]
    fn the_upstream_head_carries_the_providers_key_not_the_clients() {
        let provider = |kind, forward: Vec<crate::config::HeaderPattern>| Provider {
            name: "p".into(),
            kind,
            upstream: Some(crate::config::Upstream {
                tls: true,
                host: "api.vendor.test".into(),
                port: 443,
                base_path: "/v1".into(),
                host_header: "api.vendor.test".into(),
                addrs: vec![([127, 0, 0, 1], 443).into()],
            }),
            api_key: Some(crate::config::Secret::new("sk-vendor".into())),
            api_key_env: None,
            timeouts: Default::default(),
            api_version: None,
            default_max_tokens: None,
            chat_only: false,
            forward_headers: forward,
            bedrock: None,
            google: None,
        };
        let mut client =
            pingora::http::RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (name, value) in [
            ("Host", "gateway.local"),
            ("Authorization", "Bearer sk-client"),
            ("x-api-key", "sk-client"),
            ("Content-Length", "999"),
            ("Content-Type", "text/plain"),
            ("Accept-Encoding", "gzip"),
            ("Connection", "keep-alive"),
            ("User-Agent", "OpenAI/Python 1.0"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("anthropic-beta", "tools"),
            ("anthropic-version", "2023-06-01"),
            ("OpenAI-Beta", "assistants=v2"),
            ("OpenAI-Organization", "org-client"),
            ("OpenAI-Project", "proj-client"),
            ("X-Client-Request-Id", "client-1"),
            ("x-stainless-os", "Linux"),
            ("Cookie", "session=1"),
            ("Forwarded", "for=192.0.2.1"),
            ("X-Forwarded-For", "192.0.2.1"),
            ("X-Real-IP", "192.0.2.1"),
            ("x-switchyard-user", "alice"),
            ("x-goog-user-project", "billed"),
            ("X-Custom", "unknown"),
            ("x-mock-status", "500"),
        ] {
            client.append_header(name, value).unwrap();
        }
        let uri: http::Uri = "/v1/chat/completions".parse().unwrap();
        let names = |h: &pingora::http::RequestHeader| {
            let mut n: Vec<String> = h.headers.keys().map(|k| k.to_string()).collect();
            n.sort();
            n
        };
        let get = |h: &pingora::http::RequestHeader, n: &str| {
            h.headers.get(n).map(|v| v.to_str().unwrap().to_string())
        };
        let head = upstream_head(
            &provider(ProviderKind::OpenAi, Vec::new()),
            &client,
            uri.clone(),
            &[0u8; 42],
        )
        .unwrap();
        assert_eq!(head.method, http::Method::POST);
        assert_eq!(head.version, http::Version::HTTP_11);
        assert_eq!(head.uri.path(), "/v1/chat/completions");
        assert_eq!(
            names(&head),
            [
                "authorization",
                "content-length",
                "content-type",
                "host",
                "openai-beta",
                "traceparent",
                "user-agent",
                "x-client-request-id"
            ]
        );
        assert_eq!(
            get(&head, "authorization").as_deref(),
            Some("Bearer sk-vendor")
        );
        assert_eq!(get(&head, "host").as_deref(), Some("api.vendor.test"));
        assert_eq!(get(&head, "content-length").as_deref(), Some("42"));
        assert_eq!(
            get(&head, "content-type").as_deref(),
            Some("application/json")
        );

        // Anthropic: its key header and the client's anthropic-version/-beta, not OpenAI's.
        let head = upstream_head(
            &provider(ProviderKind::Anthropic, Vec::new()),
            &client,
            uri.clone(),
            &[0u8; 42],
        )
        .unwrap();
        assert_eq!(
            names(&head),
            [
                "anthropic-beta",
                "anthropic-version",
                "content-length",
                "content-type",
                "host",
                "traceparent",
                "user-agent",
                "x-api-key"
            ]
        );
        assert_eq!(get(&head, "x-api-key").as_deref(), Some("sk-vendor"));
        assert_eq!(
            get(&head, "anthropic-version").as_deref(),
            Some("2023-06-01")
        );

        // Gemini: nothing of its own; a default anthropic-version only for Anthropic.
        let head = upstream_head(
            &provider(ProviderKind::Gemini, Vec::new()),
            &client,
            uri.clone(),
            &[0u8; 42],
        )
        .unwrap();
        assert_eq!(
            names(&head),
            [
                "content-length",
                "content-type",
                "host",
                "traceparent",
                "user-agent",
                "x-goog-api-key"
            ]
        );

        // forward_headers adds names and prefixes, but never a header that must not go.
        use crate::config::HeaderPattern::{Exact, Prefix};
        let extended = provider(
            ProviderKind::OpenAi,
            vec![Exact("x-custom".into()), Prefix("x-mock-".into())],
        );
        let head = upstream_head(&extended, &client, uri, &[0u8; 42]).unwrap();
        assert_eq!(get(&head, "x-custom").as_deref(), Some("unknown"));
        assert_eq!(get(&head, "x-mock-status").as_deref(), Some("500"));
        assert_eq!(get(&head, "cookie"), None);
    }

    #[test]
    fn a_client_without_anthropic_version_gets_the_default() {
        let provider = Provider {
            name: "p".into(),
            kind: ProviderKind::Anthropic,
            upstream: None,
            api_key: None,
            api_key_env: None,
            timeouts: Default::default(),
            api_version: None,
            default_max_tokens: None,
            chat_only: false,
            forward_headers: Vec::new(),
            bedrock: None,
            google: None,
        };
        let client = pingora::http::RequestHeader::build("POST", b"/v1/messages", None).unwrap();
        let head =
            upstream_head(&provider, &client, "/v1/messages".parse().unwrap(), b"x").unwrap();
        assert_eq!(
            head.headers.get("anthropic-version").unwrap(),
            ANTHROPIC_VERSION
        );
    }

    #[test]
    fn azure_versions_that_take_stream_options() {
        let provider = |kind, v: Option<&str>| Provider {
            name: "p".into(),
            kind,
            upstream: None,
            api_key: None,
            api_key_env: None,
            timeouts: Default::default(),
            api_version: v.map(str::to_string),
            default_max_tokens: None,
            chat_only: false,
            forward_headers: Vec::new(),
            bedrock: None,
            google: None,
        };
        let azure = |v: &str| provider(ProviderKind::Azure, Some(v));
        for (v, takes) in [
            ("2024-06-01", false),
            ("2024-08-01-preview", false),
            ("2024-09-01-preview", true),
            ("2024-10-21", true),
            ("2025-04-01-preview", true),
            ("v1", true),
            ("preview", true),
        ] {
            assert_eq!(takes_stream_options(&azure(v)), takes, "{v}");
        }
        assert!(takes_stream_options(&provider(ProviderKind::OpenAi, None)));
    }

    #[test]
    fn responses_paths() {
        let provider = |kind, version: Option<&str>| Provider {
            name: "p".into(),
            kind,
            upstream: None,
            api_key: None,
            api_key_env: None,
            timeouts: Default::default(),
            api_version: version.map(str::to_string),
            default_max_tokens: None,
            chat_only: false,
            forward_headers: Vec::new(),
            bedrock: None,
            google: None,
        };
        let path = |kind, version| {
            upstream_path(&provider(kind, version), "dep", true, Operation::Respond)
        };
        assert_eq!(path(ProviderKind::OpenAi, None), "/responses");
        let chat_only = Provider {
            chat_only: true,
            ..provider(ProviderKind::OpenAi, None)
        };
        assert_eq!(
            upstream_path(&chat_only, "m", false, Operation::Respond),
            "/chat/completions"
        );
        assert_eq!(
            path(ProviderKind::Azure, Some("2024-10-21")),
            "/openai/v1/responses"
        );
        // Vendors without the API generate through their own endpoint (translated).
        assert_eq!(path(ProviderKind::Anthropic, None), "/v1/messages");
        assert_eq!(
            path(ProviderKind::Gemini, None),
            "/v1beta/models/dep:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn every_kind_is_one_vendor_with_its_own_name() {
        let names: Vec<&str> = ProviderKind::ALL
            .iter()
            .map(|k| vendor(*k).name())
            .collect();
        assert_eq!(
            names,
            [
                "openai",
                "azure",
                "anthropic",
                "gemini",
                "bedrock",
                "vertex",
                "mock"
            ]
        );
        let local: Vec<bool> = ProviderKind::ALL
            .iter()
            .map(|k| vendor(*k).is_local())
            .collect();
        assert_eq!(local, [false, false, false, false, false, false, true]);
        assert!(ProviderKind::ALL.iter().all(
            |k| vendor(*k).counts_tokens(Dialect::Messages) == (*k == ProviderKind::Anthropic)
        ));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("gpt-4o_v1.2"), "gpt-4o_v1.2");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }

    fn anthropic_error(kind: &str, message: &str) -> Vec<u8> {
        format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}},"request_id":"req_1"}}"#)
            .into_bytes()
    }

    #[test]
    fn vendor_error_keeps_anthropic_messages() {
        let cases = [
            (400, "invalid_request_error", 400),
            (404, "not_found_error", 404),
            (413, "request_too_large", 413),
            (429, "rate_limit_error", 429),
            (500, "api_error", 502),
            (529, "overloaded_error", 502),
        ];
        for (status, kind, client) in cases {
            let e = vendor_error(None, status, &anthropic_error(kind, "the vendor's words"));
            assert_eq!(e.status(), client, "{kind}");
            assert!(e.to_string().contains("the vendor's words"), "{kind}: {e}");
        }
        for status in [401, 403] {
            let e = vendor_error(
                None,
                status,
                &anthropic_error("authentication_error", "bad key"),
            );
            assert_eq!(e.status(), 502);
            assert!(!e.to_string().contains("bad key"));
        }
    }

    #[test]
    fn vendor_error_keeps_gemini_messages() {
        let body = include_bytes!("../../tests/fixtures/gemini/error_resource_exhausted.json");
        let e = vendor_error(None, 429, body);
        assert_eq!(e.status(), 429);
        assert_eq!(
            e.to_string(),
            "Resource has been exhausted (e.g. check quota)."
        );
        let body = br#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            vendor_error(None, 400, body).to_string(),
            "Invalid JSON payload received."
        );
        let e = vendor_error(None, 503, br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#);
        assert_eq!(e.status(), 502);
        assert!(e.to_string().contains("The model is overloaded."));
    }

    #[test]
    fn gemini_key_refusal_is_the_gateways_auth_failure() {
        let body = include_bytes!("../../tests/fixtures/gemini/error_api_key_invalid.json");
        assert_eq!(vendor_status(ProviderKind::Gemini, 400, body), 401);
        assert_eq!(vendor_status(ProviderKind::Gemini, 400, b"{}"), 400);
        assert_eq!(vendor_status(ProviderKind::OpenAi, 400, body), 400);
        assert_eq!(
            vendor_error(None, vendor_status(ProviderKind::Gemini, 400, body), body).status(),
            502
        );
    }

    #[test]
    fn content_filter_answers_are_recognised() {
        use ProviderKind::*;
        let azure_400 = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#;
        assert!(is_content_filter(Azure, 400, azure_400));
        assert!(is_content_filter(OpenAi, 400, azure_400));
        let inner_only = br#"{"error":{"code":"400","message":"x","innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#;
        assert!(is_content_filter(Azure, 400, inner_only));
        assert!(!is_content_filter(
            Azure,
            400,
            br#"{"error":{"code":"invalid_value","message":"content_filter is not a parameter"}}"#
        ));
        assert!(!is_content_filter(Azure, 429, azure_400));

        let filtered = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]}"#;
        assert!(is_content_filter(Azure, 200, filtered));
        let fine = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"content_filter is a word"},"finish_reason":"stop"}]}"#;
        assert!(!is_content_filter(Azure, 200, fine));

        let gemini = |name: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/gemini/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        assert!(is_content_filter(
            Gemini,
            200,
            &gemini("generate_safety.json")
        ));
        assert!(is_content_filter(
            Gemini,
            200,
            &gemini("generate_prompt_blocked.json")
        ));
        assert!(!is_content_filter(
            Gemini,
            200,
            &gemini("generate_text.json")
        ));
        assert!(!is_content_filter(
            Gemini,
            400,
            &gemini("generate_safety.json")
        ));

        assert!(is_content_filter(
            Anthropic,
            200,
            br#"{"type":"message","content":[],"stop_reason":"refusal"}"#
        ));
        assert!(!is_content_filter(
            Anthropic,
            200,
            include_bytes!("../../tests/fixtures/anthropic/message_text.json")
        ));
        assert!(!is_content_filter(Mock, 200, filtered));
    }
}
