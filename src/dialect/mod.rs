//! Wire dialects: one module per dialect a client or a vendor speaks, each with its borrowed
//! request view, its stream scanner (usage, content seen, error events) and its error shape.
//! When the route's vendor speaks the front door's dialect the client's bytes go upstream with
//! only `model` spliced ([`crate::dialect::body::Prepared`]) and the vendor's bytes come back untouched,
//! read on the way by the dialect's scanner; otherwise [`crate::convert`] translates.
//!
//! One folder per dialect, each holding the dialect's request view (`mod.rs`), its wire types
//! (`wire.rs`: the serde shapes of its requests and answers, one declaration per shape, which
//! [`crate::convert`] reads and writes) and its stream scanner (`stream.rs`):
//!
//! - [`chat`]: OpenAI Chat Completions (the chat API; `openai`, `azure`);
//! - [`messages`]: Anthropic Messages (`anthropic`);
//! - [`embeddings`]: OpenAI Embeddings (`openai`, `azure`);
//! - [`responses`]: OpenAI Responses (`openai`, `azure`);
//! - [`gemini`]: Gemini `generateContent`, `countTokens`, `embedContent` and
//!   `batchEmbedContents` (`gemini`, Vertex's Gemini models; and a front door, Google's
//!   Gemini API paths: [`gemini::door`]);
//! - [`converse`]: Bedrock Converse / ConverseStream (`bedrock`, every model family but
//!   Claude; a vendor dialect only).
//!
//! Shared by all: [`sse`], the one Server-Sent Events decoder, [`refusal`], each dialect's
//! way of saying its content filter stopped an answer, and [`adjusted`], what a translation
//! changed for the route's vendor. [`chat_stream`], [`messages_stream`]
//! and [`responses_stream`] are the old paths of the stream scanners.

pub mod adjusted;
pub mod body;
pub mod chat;
pub(crate) mod converse;
pub(crate) mod embeddings;
pub(crate) mod gemini;
pub(crate) mod messages;
pub(crate) mod refusal;
pub mod request;
pub(crate) mod responses;
pub(crate) mod sse;

pub use chat::stream as chat_stream;
pub use messages::stream as messages_stream;
pub use responses::stream as responses_stream;

use bytes::Bytes;

use crate::accounting::usage::Usage;
use crate::error::GatewayError;

/// The Gemini door's calls (`dialect::gemini::door`), for tests that read a request at it.
pub use gemini::door as gemini_door;
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
    /// Amazon Bedrock `Converse` / `ConverseStream` (a vendor dialect only).
    Converse,
}

/// How a whole answer in a dialect is read for its usage: the usage it reports, and the
/// characters of text it generated (the base of an estimate when it reports none).
pub type BodyReader = (fn(&[u8]) -> Option<Usage>, fn(&[u8]) -> u64);

/// The scanner that meters a stream: each dialect's own ([`chat::stream`], [`messages::stream`],
/// [`responses::stream`], [`gemini::stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamScanner {
    Chat,
    Messages,
    Responses,
    Gemini,
}

impl Dialect {
    /// The scanner that meters a stream in this dialect. A Converse stream is metered after
    /// its translation to chat (a Gemini one too, but at the Gemini door, where it passes
    /// through); embeddings do not stream.
    pub fn stream_scanner(self) -> StreamScanner {
        match self {
            Dialect::Messages => StreamScanner::Messages,
            Dialect::Responses => StreamScanner::Responses,
            Dialect::Gemini => StreamScanner::Gemini,
            Dialect::Chat | Dialect::Converse | Dialect::Embeddings => StreamScanner::Chat,
        }
    }

    /// The reader of a whole answer in this dialect (Anthropic's `message`, a Responses
    /// `response`, a `GenerateContentResponse` at the Gemini door); `None` for a
    /// `chat.completion` (the dialects answered in chat's shape), which the meter reads
    /// itself, and for embeddings, which generate no text.
    pub fn body_reader(self) -> Option<BodyReader> {
        match self {
            Dialect::Messages => Some((messages::body_usage, messages::body_text_chars)),
            Dialect::Responses => Some((responses::body_usage, responses::body_text_chars)),
            Dialect::Gemini => Some((gemini::body_usage, gemini::body_text_chars)),
            Dialect::Chat | Dialect::Converse | Dialect::Embeddings => None,
        }
    }
}

/// An error's JSON body in `dialect`'s shape ([`Dialect::error_body`]).
pub fn error_body(dialect: Dialect, err: &GatewayError) -> Bytes {
    dialect.error_body(err)
}

/// An error as the last event of a stream, in `dialect`'s shape ([`Dialect::error_event`]).
pub fn error_event(dialect: Dialect, err: &GatewayError) -> Bytes {
    dialect.error_event(err)
}

impl Dialect {
    /// An error's JSON body in this dialect's shape (a vendor dialect answers in the chat
    /// shape: it is never a front door; the Gemini door in Google's).
    pub fn error_body(self, err: &GatewayError) -> Bytes {
        match self {
            Dialect::Messages => messages::error_body(err),
            Dialect::Gemini => gemini::error::error_body(err),
            Dialect::Chat | Dialect::Converse | Dialect::Embeddings | Dialect::Responses => {
                err.body()
            }
        }
    }

    /// An error as the last event of a stream, in this dialect's shape (a Gemini stream in
    /// server-sent events; its JSON-array framing ends with [`gemini::array::error_tail`]).
    pub fn error_event(self, err: &GatewayError) -> Bytes {
        match self {
            Dialect::Messages => messages::error_event(err),
            Dialect::Responses => responses::error_event(err),
            Dialect::Gemini => gemini::error::error_event(err),
            Dialect::Chat | Dialect::Converse | Dialect::Embeddings => err.sse_event(),
        }
    }
}
