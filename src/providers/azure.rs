//! Azure OpenAI (`kind = "azure"`): the deployment in the path and a dated `api-version` in the
//! query for chat and embeddings, the v1 API for Responses, the key in `api-key`.

use crate::config::Provider;
use crate::dialect::Dialect;

use super::headers::Defined;
use super::vendor::{ConfigFields, Vendor};
use super::{path_segment, Operation};

/// Azure OpenAI.
pub struct Azure;

/// The client headers Azure OpenAI defines that the gateway forwards: OpenAI's
/// ([`super::openai::CLIENT_HEADERS`]: its v1 API is OpenAI's) and Azure's own client request
/// id (Azure REST API guidelines, "x-ms-client-request-id", echoed in Azure's logs).
const CLIENT_HEADERS: &[Defined] = &[
    (
        "openai-beta",
        "OpenAI API reference, Assistants API (beta) headers",
    ),
    (
        "x-client-request-id",
        "OpenAI API reference, API Overview, Debugging requests",
    ),
    (
        "x-ms-client-request-id",
        "Azure REST API reference, common request headers",
    ),
];

impl Vendor for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn telemetry_name(&self) -> &'static str {
        "azure.ai.openai"
    }

    fn dialect(&self) -> Dialect {
        Dialect::Chat
    }

    fn speaks(&self, dialect: Dialect) -> bool {
        matches!(
            dialect,
            Dialect::Chat | Dialect::Embeddings | Dialect::Responses
        )
    }

    fn path(&self, provider: &Provider, model: &str, _stream: bool, op: Operation) -> String {
        let version = provider.api_version.as_deref().unwrap_or_default();
        match op {
            Operation::Embed | Operation::EmbedOne => format!(
                "/openai/deployments/{}/embeddings?api-version={version}",
                path_segment(model)
            ),
            // Azure's v1 API (OpenAI-compatible): no deployment in the path, the deployment
            // name is the body's `model`, and no dated `api-version`.
            Operation::Respond if !provider.chat_only => "/openai/v1/responses".to_string(),
            _ => format!(
                "/openai/deployments/{}/chat/completions?api-version={version}",
                path_segment(model)
            ),
        }
    }

    fn key_header(&self, key: &str) -> Option<(&'static str, String)> {
        Some(("api-key", key.to_string()))
    }

    fn client_headers(&self) -> &'static [Defined] {
        CLIENT_HEADERS
    }

    /// Azure OpenAI refuses `stream_options` ("Unrecognized request argument") before API
    /// version 2024-09-01 (its data-plane reference: `stream_options` first appears in
    /// 2024-09-01-preview; the GA 2024-06-01 lacks it); a version that is not a date (`v1`,
    /// `preview`) takes it.
    fn takes_stream_options(&self, provider: &Provider) -> bool {
        let version = provider.api_version.as_deref().unwrap_or("");
        match version.get(..10) {
            Some(date) if date.as_bytes().iter().filter(|b| **b == b'-').count() == 2 => {
                date >= "2024-09-01"
            }
            _ => true,
        }
    }

    fn is_content_filter(&self, status: u16, body: &[u8]) -> bool {
        super::openai::is_content_filter(status, body)
    }

    fn fields(&self) -> ConfigFields {
        ConfigFields {
            api_version: true,
            ..ConfigFields::REMOTE
        }
    }
}
