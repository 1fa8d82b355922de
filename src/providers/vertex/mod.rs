//! Google Vertex AI (`kind = "vertex"`): Gemini and Claude models of one Google Cloud project
//! in one location, with Google's OAuth2 access tokens ([`auth`]).
//!
//! Every path is under `/v1/projects/{project}/locations/{location}/publishers/…/models/{model}`
//! (Google's Vertex AI REST reference, `projects.locations.publishers.models`):
//!
//! - Gemini (`publishers/google`): `:generateContent` and `:streamGenerateContent?alt=sse`,
//!   the same body and answers as the Gemini API ([`crate::dialect::Dialect::Gemini`]: the
//!   `gemini` kind's translation, not a copy);
//! - Claude (`publishers/anthropic`, a model whose name starts with `claude-`): `:rawPredict`
//!   and `:streamRawPredict` with the Messages body, `model` out and `anthropic_version` in
//!   ([`crate::contract::vertex`]), `anthropic-beta` kept to the betas Vertex serves;
//! - embeddings (`publishers/google`): `:predict` with `instances` ([`embeddings`]).
//!
//! The endpoint is `https://{location}-aiplatform.googleapis.com`, or
//! `https://aiplatform.googleapis.com` for the `global` location (Google's "Deployments and
//! endpoints" page for Vertex AI generative models); `base_url` overrides it.
//!
//! Token counting for Claude is answered with the gateway's estimate.

pub(crate) mod auth;
pub(crate) mod embeddings;

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::Provider;
use crate::contract::vertex as rules;
use crate::dialect::body::{reject_duplicates, write_json_string, Fields};
use crate::dialect::{refusal, Dialect};
use crate::error::GatewayError;
use crate::upstream::reframe::Reframe;

use super::headers::Defined;
use super::vendor::{Call, ConfigFields, Need, Vendor};
use super::{path_segment, Operation};

/// Vertex AI.
pub struct Vertex;

/// The client headers Vertex takes for Claude: `anthropic-beta` (kept to the betas Vertex
/// serves when the request is signed, [`rules::kept_betas`]); `anthropic-version` is not
/// sent, the version is the body's.
const CLIENT_HEADERS: &[Defined] = &[(
    "anthropic-beta",
    "Anthropic API reference, Beta headers; Claude on Vertex AI",
)];

/// Whether `upstream_model` is one of Anthropic's Claude models (served by
/// `publishers/anthropic` in the Messages dialect).
pub fn is_claude(upstream_model: &str) -> bool {
    upstream_model.starts_with("claude-")
}

impl Vendor for Vertex {
    fn name(&self) -> &'static str {
        "vertex"
    }

    /// The OpenTelemetry GenAI semantic conventions' well-known value for Vertex AI.
    fn telemetry_name(&self) -> &'static str {
        "gcp.vertex_ai"
    }

    fn dialect(&self) -> Dialect {
        Dialect::Gemini
    }

    /// Claude models speak Messages; every other model Gemini's `generateContent`.
    fn dialect_for(&self, _provider: &Provider, upstream_model: &str) -> Dialect {
        if is_claude(upstream_model) {
            Dialect::Messages
        } else {
            Dialect::Gemini
        }
    }

    fn speaks_for(&self, provider: &Provider, upstream_model: &str, dialect: Dialect) -> bool {
        dialect == self.dialect_for(provider, upstream_model)
    }

    /// Claude's body: the client's (or the translation's) fields as written, but `model`
    /// (in the path) and any `anthropic_version`, after Vertex's `anthropic_version`. An
    /// embeddings body becomes `:predict`'s. Gemini's goes as it is.
    fn envelope(
        &self,
        call: &Call<'_>,
        body: Bytes,
        _adjusted: &mut crate::dialect::adjusted::Adjustments,
    ) -> Result<Bytes, GatewayError> {
        match call.op {
            Operation::Embed => return embeddings::request(&body),
            Operation::EmbedOne => return embeddings::request_one(&body),
            _ => {}
        }
        if !is_claude(call.upstream_model) {
            return Ok(body);
        }
        claude_body(&body)
    }

    /// `Authorization: Bearer` with the provider's current access token ([`auth::Tokens`],
    /// refreshed in the background, never fetched here; none is a 502); the client's
    /// `anthropic-beta` kept to the betas Vertex serves on a Claude path, and not sent on
    /// another.
    fn sign(
        &self,
        provider: &Provider,
        head: &mut http::request::Parts,
        _body: &[u8],
    ) -> Result<(), GatewayError> {
        let token = provider
            .google
            .as_ref()
            .and_then(|g| g.tokens.as_ref())
            .and_then(|t| t.current())
            .ok_or_else(|| {
                GatewayError::Upstream(format!(
                    "provider `{}` has no current Google access token",
                    provider.name
                ))
            })?;
        let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| GatewayError::Internal("bad access token".into()))?;
        value.set_sensitive(true);
        head.headers.insert(http::header::AUTHORIZATION, value);
        if head.uri.path().contains("/publishers/anthropic/") {
            keep_vertex_betas(&mut head.headers);
        } else {
            // Anthropic's betas mean nothing to Gemini.
            head.headers.remove("anthropic-beta");
        }
        Ok(())
    }

    /// An embeddings answer (`:predict`'s `predictions`) is read as `batchEmbedContents`' (as
    /// `embedContent`'s for the Gemini door's one content).
    fn reframe(&self, call: &Call<'_>) -> Option<Box<dyn Reframe>> {
        match call.op {
            Operation::Embed => Some(Box::new(embeddings::Answer::default())),
            Operation::EmbedOne => Some(Box::new(embeddings::Answer::one())),
            _ => None,
        }
    }

    /// `https://{location}-aiplatform.googleapis.com`; `https://aiplatform.googleapis.com` for
    /// `global`. `None` without a usable `location` (validation reports it).
    fn default_base_url(&self, raw: &crate::config::raw::Provider) -> Option<String> {
        let location = raw.location.as_ref()?.get_ref();
        if !is_location(location) {
            return None;
        }
        Some(if location == "global" {
            "https://aiplatform.googleapis.com".to_string()
        } else {
            format!("https://{location}-aiplatform.googleapis.com")
        })
    }

    fn path(&self, provider: &Provider, model: &str, stream: bool, op: Operation) -> String {
        let (project, location) = provider
            .google
            .as_ref()
            .map_or(("", ""), |g| (g.project.as_str(), g.location.as_str()));
        let publisher = if is_claude(model) {
            "anthropic"
        } else {
            "google"
        };
        // `@` (Claude's `claude-sonnet-4-5@20250929`) is a path character (RFC 3986 `pchar`).
        let model = path_segment(model).replace("%40", "@");
        let method = match op {
            Operation::Embed | Operation::EmbedOne => ":predict",
            _ if publisher == "google" && op == Operation::CountTokens => ":countTokens",
            _ if publisher == "anthropic" && stream => ":streamRawPredict",
            _ if publisher == "anthropic" => ":rawPredict",
            _ if stream => ":streamGenerateContent?alt=sse",
            _ => ":generateContent",
        };
        format!(
            "/v1/projects/{}/locations/{}/publishers/{publisher}/models/{model}{method}",
            path_segment(project),
            path_segment(location)
        )
    }

    fn client_headers(&self) -> &'static [Defined] {
        CLIENT_HEADERS
    }

    /// A Gemini model's `countTokens` for the Gemini door (the request passes through; Vertex
    /// AI REST reference, `projects.locations.publishers.models.countTokens`); Claude's are
    /// estimated.
    fn counts_tokens(&self, door: Dialect) -> bool {
        door == Dialect::Gemini
    }

    /// A Gemini answer blocked or stopped for safety, or a Claude answer with
    /// `stop_reason: "refusal"`.
    fn is_content_filter(&self, status: u16, body: &[u8]) -> bool {
        status == 200 && (refusal::gemini_answer(body) || refusal::messages(body))
    }

    fn fields(&self) -> ConfigFields {
        ConfigFields {
            base_url: Need::Optional,
            api_key_env: false,
            default_max_tokens: true,
            google: true,
            ..ConfigFields::REMOTE
        }
    }
}

/// Whether `s` can be a Google Cloud project in a Vertex path: a project id (lower case
/// letters, digits and `-`, a letter first: Google Cloud SDK reference, "gcloud projects
/// create", PROJECT_ID, <https://cloud.google.com/sdk/gcloud/reference/projects/create>), a
/// project number (digits), or a legacy domain-scoped id (`example.com:my-project`): lower
/// case letters, digits, `-`, `.` and `:`, a letter or digit first. So never `..`, `/`, `?` or
/// a space, which would change the path the request goes to.
pub fn is_project(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        })
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `s` can be a Google Cloud location (`us-east5`, `europe-west1`, `global`): lower
/// case letters, digits and `-`, as it goes into a host name.
pub fn is_location(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The Claude body Vertex takes: `{"anthropic_version":"vertex-2023-10-16", …}` then the
/// body's other fields as written, without `model` and any `anthropic_version` of its own.
fn claude_body(body: &[u8]) -> Result<Bytes, GatewayError> {
    let Fields(fields) = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("the request body is not a JSON object: {e}"))
    })?;
    reject_duplicates(&fields)?;
    let mut out = BytesMut::with_capacity(body.len() + 48);
    out.put_slice(b"{\"anthropic_version\":");
    write_json_string(&mut (&mut out).writer(), rules::VERSION);
    for (key, value) in &fields {
        if key == "model" || key == "anthropic_version" {
            continue;
        }
        out.put_u8(b',');
        write_json_string(&mut (&mut out).writer(), key);
        out.put_u8(b':');
        out.put_slice(value.get().as_bytes());
    }
    out.put_u8(b'}');
    Ok(out.freeze())
}

/// `anthropic-beta` kept to what Vertex serves ([`rules::kept_betas`]); removed when nothing
/// is left, or when it is not text.
fn keep_vertex_betas(headers: &mut http::HeaderMap) {
    let joined: Vec<String> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    headers.remove("anthropic-beta");
    if let Some(kept) = rules::kept_betas(&joined.join(",")) {
        if let Ok(value) = http::HeaderValue::try_from(kept) {
            headers.insert("anthropic-beta", value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_bodies_lose_model_and_take_vertexs_version() {
        let body = br#"{"model":"claude-sonnet-4-5@20250929","max_tokens":5,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}"#;
        let out = claude_body(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}"#
        );
        let own = claude_body(br#"{"anthropic_version":"x","max_tokens":1}"#).unwrap();
        assert_eq!(
            &own[..],
            br#"{"anthropic_version":"vertex-2023-10-16","max_tokens":1}"#
        );
        assert!(claude_body(b"[1]").is_err());
    }

    fn provider(expires: std::time::SystemTime) -> Provider {
        Provider {
            name: "vx".into(),
            kind: crate::config::ProviderKind::Vertex,
            upstream: None,
            api_key: None,
            api_key_env: None,
            timeouts: Default::default(),
            api_version: None,
            default_max_tokens: None,
            chat_only: false,
            forward_headers: Vec::new(),
            bedrock: None,
            google: Some(crate::config::GoogleCloud {
                project: "my-project".into(),
                location: "global".into(),
                credentials_file: None,
                tokens: Some(std::sync::Arc::new(auth::Tokens::fixed("ya29.t", expires))),
            }),
        }
    }

    #[test]
    fn requests_are_signed_with_the_current_token() {
        use std::time::{Duration, SystemTime};
        let later = SystemTime::now() + Duration::from_secs(60);
        let p = provider(later);
        let head = |path: &str| {
            let mut parts = http::Request::post(path).body(()).unwrap().into_parts().0;
            parts.headers.insert(
                "anthropic-beta",
                "claude-code-20250219,context-1m-2025-08-07"
                    .parse()
                    .unwrap(),
            );
            parts
        };
        let claude = "/v1/projects/my-project/locations/global/publishers/anthropic/models/claude-x:rawPredict";
        let mut parts = head(claude);
        Vertex.sign(&p, &mut parts, b"{}").unwrap();
        assert_eq!(parts.headers["authorization"], "Bearer ya29.t");
        assert!(parts.headers["authorization"].is_sensitive());
        assert_eq!(parts.headers["anthropic-beta"], "context-1m-2025-08-07");
        let mut parts = head("/v1/projects/my-project/locations/global/publishers/google/models/gemini-3-pro:generateContent");
        Vertex.sign(&p, &mut parts, b"{}").unwrap();
        assert!(parts.headers.get("anthropic-beta").is_none());

        let expired = provider(SystemTime::now() - Duration::from_secs(1));
        let e = Vertex.sign(&expired, &mut head(claude), b"{}").unwrap_err();
        assert_eq!(e.status(), 502);
        assert!(e
            .to_string()
            .contains("provider `vx` has no current Google access token"));
        assert_eq!(
            Vertex.path(&p, "claude-sonnet-4-5@20250929", true, Operation::Generate),
            "/v1/projects/my-project/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        assert_eq!(
            Vertex.path(&p, "gemini-embedding-001", false, Operation::Embed),
            "/v1/projects/my-project/locations/global/publishers/google/models/gemini-embedding-001:predict"
        );
    }

    #[test]
    fn locations() {
        for ok in ["us-east5", "europe-west1", "global", "asia-southeast1"] {
            assert!(is_location(ok), "{ok}");
        }
        for bad in ["", "US-EAST5", "us east", "us.east", "-x", "x-", "a/b"] {
            assert!(!is_location(bad), "{bad}");
        }
    }

    #[test]
    fn betas_vertex_refuses_are_dropped_from_the_head() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14"
                .parse()
                .unwrap(),
        );
        headers.append(
            "anthropic-beta",
            "prompt-caching-scope-2026-01-05".parse().unwrap(),
        );
        keep_vertex_betas(&mut headers);
        assert_eq!(
            headers.get("anthropic-beta").unwrap(),
            "interleaved-thinking-2025-05-14"
        );
        let mut only = http::HeaderMap::new();
        only.insert("anthropic-beta", "effort-2025-11-24".parse().unwrap());
        keep_vertex_betas(&mut only);
        assert!(only.get("anthropic-beta").is_none());
    }
}
