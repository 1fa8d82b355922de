//! Wire dialects: one module per dialect a client or a vendor speaks, each with its borrowed
//! request view, its stream scanner (usage, content seen, error events) and its error shape.
//! When the route's vendor speaks the front door's dialect the client's bytes go upstream with
//! only `model` spliced ([`crate::gateway::body::Prepared`]) and the vendor's bytes come back untouched,
//! read on the way by the dialect's scanner; otherwise [`crate::convert`] translates.
//!
//! - [`chat`], [`chat_stream`]: OpenAI Chat Completions (the seed API; `openai`, `azure`);
//! - [`messages`], [`messages_stream`]: Anthropic Messages (`anthropic`);
//! - [`embeddings`]: OpenAI Embeddings (`openai`, `azure`);
//! - [`responses`], [`responses_stream`]: OpenAI Responses (`openai`, `azure`);
//! - [`gemini`]: Gemini `generateContent` (`gemini`; a vendor dialect only);
//! - [`refusal`]: each dialect's way of saying its content filter stopped an answer.

pub mod chat;
pub mod chat_stream;
pub mod embeddings;
pub mod gemini;
pub mod messages;
pub mod messages_stream;
pub mod refusal;
pub mod responses;
pub mod responses_stream;
pub mod sse;

use bytes::Bytes;

use crate::gateway::error::GatewayError;

pub use refusal::refused;

/// A wire dialect: what a front door or a vendor speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions.
    Chat,
    /// Anthropic Messages.
    Messages,
    /// Google Gemini `generateContent`.
    Gemini,
    /// OpenAI Embeddings.
    Embeddings,
    /// OpenAI Responses.
    Responses,
}

/// An error's JSON body in `dialect`'s shape (a vendor dialect answers in the chat shape: it
/// is never a front door).
pub fn error_body(dialect: Dialect, err: &GatewayError) -> Bytes {
    match dialect {
        Dialect::Messages => messages::error_body(err),
        Dialect::Chat | Dialect::Gemini | Dialect::Embeddings | Dialect::Responses => err.body(),
    }
}

/// An error as the last event of a stream, in `dialect`'s shape.
pub fn error_event(dialect: Dialect, err: &GatewayError) -> Bytes {
    match dialect {
        Dialect::Messages => messages::error_event(err),
        Dialect::Responses => responses::error_event(err),
        Dialect::Chat | Dialect::Gemini | Dialect::Embeddings => err.sse_event(),
    }
}
