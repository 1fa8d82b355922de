//! Google Gemini (`kind = "gemini"`, the Gemini API): `generateContent`,
//! `streamGenerateContent` (as SSE, or Google's JSON array when the Gemini door's client asked
//! it so), `countTokens`, `embedContent` and `batchEmbedContents` on `v1beta/models/{model}`
//! (Gemini API reference: "Generating content", "Counting tokens", "Embeddings"), the key in
//! `x-goog-api-key`.

use crate::config::Provider;
use crate::dialect::{refusal, Dialect};

use super::vendor::Vendor;
use super::{path_segment, Operation};

/// The Gemini API.
pub struct Gemini;

impl Vendor for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn telemetry_name(&self) -> &'static str {
        "gcp.gemini"
    }

    fn dialect(&self) -> Dialect {
        Dialect::Gemini
    }

    fn path(&self, _provider: &Provider, model: &str, stream: bool, op: Operation) -> String {
        let model = path_segment(model);
        match op {
            Operation::Embed => format!("/v1beta/models/{model}:batchEmbedContents"),
            Operation::EmbedOne => format!("/v1beta/models/{model}:embedContent"),
            Operation::CountTokens => format!("/v1beta/models/{model}:countTokens"),
            _ if stream => format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            _ => format!("/v1beta/models/{model}:generateContent"),
        }
    }

    /// `countTokens` for the Gemini door (the request passes through).
    fn counts_tokens(&self, door: Dialect) -> bool {
        door == Dialect::Gemini
    }

    fn key_header(&self, key: &str) -> Option<(&'static str, String)> {
        Some(("x-goog-api-key", key.to_string()))
    }

    /// None of the Gemini API's own: its `x-goog-*` system parameters are the key
    /// (`x-goog-api-key`), the project billed (`x-goog-user-project`, never forwarded), the
    /// SDK's telemetry (`x-goog-api-client`) and request routing for gRPC
    /// (`x-goog-request-params`): Google Cloud docs, "System parameters".
    fn client_headers(&self) -> &'static [super::headers::Defined] {
        &[]
    }

    /// Gemini refuses a bad API key with a 400 (`API_KEY_INVALID`), which is the gateway's own
    /// key failing, like a 401 elsewhere.
    fn status(&self, status: u16, body: &[u8]) -> u16 {
        if status == 400 && memchr::memmem::find(body, b"API_KEY_INVALID").is_some() {
            401
        } else {
            status
        }
    }

    /// A 200 answer whose prompt was blocked (`promptFeedback.blockReason`) or with a
    /// candidate stopped for SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, ….
    fn is_content_filter(&self, status: u16, body: &[u8]) -> bool {
        status == 200 && refusal::gemini_answer(body)
    }
}
