//! Translated pairs: one module per pair of dialects, both directions, request and answer,
//! streaming included. A request is translated only when the route's vendor speaks another
//! dialect than the client's front door; otherwise its bytes pass through
//! ([`crate::dialect`]). Chat Completions is the pivot:
//!
//! - [`chat_anthropic`]: chat requests → Anthropic Messages; Messages answers and streams → chat;
//! - [`chat_gemini`]: chat requests → Gemini `generateContent`; its answers and streams → chat;
//! - [`messages_chat`]: Messages requests (the `/v1/messages` door) → chat; chat answers and
//!   streams → Messages.
//!
//! [`common`] holds what the pairs share. Each module's doc lists what its pair drops.
//! The entry points the proxy calls are [`request_body`], [`response_body`] and
//! [`stream_translator`]: they dispatch on the provider's kind.

pub mod chat_anthropic;
pub mod chat_gemini;
pub mod common;
pub mod messages_chat;

use bytes::Bytes;

use crate::config::{Provider, ProviderKind};
use crate::dialect::chat::ChatRequest;
use crate::error::GatewayError;

pub use common::{unix_now, SseTranslator, Translated};

/// The vendor body for a provider that does not speak OpenAI's dialect, or `None` for kinds
/// whose body is the client's own (`openai`, `azure`, `mock`): those use [`crate::body::Prepared`].
pub fn request_body(
    provider: &Provider,
    req: &ChatRequest<'_>,
    upstream_model: &str,
) -> Option<Result<Bytes, GatewayError>> {
    match provider.kind {
        ProviderKind::Anthropic => Some(chat_anthropic::request_body(
            req,
            upstream_model,
            provider.default_max_tokens,
        )),
        ProviderKind::Gemini => Some(chat_gemini::request_body(req)),
        ProviderKind::OpenAi | ProviderKind::Azure | ProviderKind::Mock => None,
    }
}

/// A translating vendor's successful non-streaming answer as an OpenAI `chat.completion`, or
/// `None` for kinds that already answer in OpenAI's dialect.
pub fn response_body(
    kind: ProviderKind,
    body: &[u8],
    model_hint: &str,
    created: u64,
) -> Option<Result<Translated, GatewayError>> {
    match kind {
        ProviderKind::Anthropic => Some(chat_anthropic::response(body, model_hint, created)),
        ProviderKind::Gemini => Some(chat_gemini::response(body, model_hint, created)),
        ProviderKind::OpenAi | ProviderKind::Azure | ProviderKind::Mock => None,
    }
}

/// The stream translator for a translating kind, or `None` for pass-through kinds.
/// `model_hint` (the route's upstream model) names the model until the vendor says its own.
pub fn stream_translator(
    kind: ProviderKind,
    model_hint: &str,
    created: u64,
) -> Option<Box<dyn SseTranslator>> {
    match kind {
        ProviderKind::Anthropic => Some(Box::new(chat_anthropic::AnthropicStream::new(
            model_hint, created,
        ))),
        ProviderKind::Gemini => Some(Box::new(chat_gemini::GeminiStream::new(
            model_hint, created,
        ))),
        ProviderKind::OpenAi | ProviderKind::Azure | ProviderKind::Mock => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_by_kind() {
        let body = include_bytes!("../../tests/fixtures/anthropic/message_text.json");
        let t = response_body(ProviderKind::Anthropic, body, "h", 1)
            .unwrap()
            .unwrap();
        assert_eq!(t.finish_reason, "stop");
        let body = include_bytes!("../../tests/fixtures/gemini/generate_text.json");
        assert!(response_body(ProviderKind::Gemini, body, "h", 1)
            .unwrap()
            .is_ok());
        for kind in [
            ProviderKind::OpenAi,
            ProviderKind::Azure,
            ProviderKind::Mock,
        ] {
            assert!(response_body(kind, b"{}", "h", 1).is_none());
            assert!(stream_translator(kind, "h", 1).is_none());
        }
        let mut t = stream_translator(ProviderKind::Gemini, "h", 1).unwrap();
        t.feed(include_bytes!(
            "../../tests/fixtures/gemini/stream_text.sse"
        ));
        assert!(t.finish().ends_with(b"data: [DONE]\n\n"));
        assert!(t.is_done() && t.usage().is_some());
    }
}
