//! OpenAI (`kind = "openai"`): Chat Completions, Embeddings and the Responses API under the
//! `base_url` (`https://api.openai.com/v1`), the key as a bearer token.

use crate::config::Provider;
use crate::dialect::{refusal, Dialect};

use super::headers::Defined;
use super::vendor::{ConfigFields, Vendor};
use super::Operation;

/// The OpenAI API.
pub struct OpenAi;

impl Vendor for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn telemetry_name(&self) -> &'static str {
        "openai"
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

    fn path(&self, provider: &Provider, _model: &str, _stream: bool, op: Operation) -> String {
        match op {
            Operation::Embed | Operation::EmbedOne => "/embeddings".to_string(),
            // A provider marked `chat_only` does not serve the Responses API.
            Operation::Respond if !provider.chat_only => "/responses".to_string(),
            _ => "/chat/completions".to_string(),
        }
    }

    fn key_header(&self, key: &str) -> Option<(&'static str, String)> {
        Some(("authorization", format!("Bearer {key}")))
    }

    fn client_headers(&self) -> &'static [Defined] {
        CLIENT_HEADERS
    }

    fn is_content_filter(&self, status: u16, body: &[u8]) -> bool {
        is_content_filter(status, body)
    }

    fn fields(&self) -> ConfigFields {
        ConfigFields {
            chat_only: true,
            ..ConfigFields::REMOTE
        }
    }
}

/// The client headers OpenAI's API defines that the gateway forwards (also Azure's, whose v1
/// API is OpenAI's). Not `OpenAI-Organization`/`OpenAI-Project` (who pays:
/// [`super::headers::NEVER`]) nor the SDKs' `x-stainless-*` telemetry.
pub(super) const CLIENT_HEADERS: &[Defined] = &[
    // Betas of the Assistants and Realtime APIs ("OpenAI-Beta: assistants=v2"): OpenAI API
    // reference, "Assistants" migration guide.
    (
        "openai-beta",
        "OpenAI API reference, Assistants API (beta) headers",
    ),
    // A request id of the client's own, echoed in OpenAI's logs: OpenAI API reference,
    // "API Overview" › Debugging requests ("X-Client-Request-Id").
    (
        "x-client-request-id",
        "OpenAI API reference, API Overview, Debugging requests",
    ),
];

/// The content-filter signal of the OpenAI API and Azure OpenAI: Azure's 400
/// `{"error":{"code":"content_filter"}}` (or its `innererror.code`
/// `ResponsibleAIPolicyViolation`), and a 200 answer with a choice finished with
/// `content_filter`. A byte search runs first, so an ordinary error is not parsed.
pub(super) fn is_content_filter(status: u16, body: &[u8]) -> bool {
    let has = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
    match status {
        400 => {
            (has(b"content_filter") || has(b"ResponsibleAIPolicyViolation")) && filter_error(body)
        }
        200 => refusal::chat(body),
        _ => false,
    }
}

/// Whether an error body's `error.code` is `content_filter` or its `error.innererror.code`
/// is `ResponsibleAIPolicyViolation`; only those fields are read.
fn filter_error(body: &[u8]) -> bool {
    use serde::Deserialize;
    use std::borrow::Cow;
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        error: Error<'a>,
    }
    #[derive(Deserialize)]
    struct Error<'a> {
        #[serde(borrow, default)]
        code: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        innererror: Option<Inner<'a>>,
    }
    #[derive(Deserialize)]
    struct Inner<'a> {
        #[serde(borrow, default)]
        code: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Body<'_>>(body).is_ok_and(|b| {
        b.error.code.as_deref() == Some("content_filter")
            || b.error.innererror.and_then(|i| i.code).as_deref()
                == Some("ResponsibleAIPolicyViolation")
    })
}
