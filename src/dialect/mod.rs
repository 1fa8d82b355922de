//! Wire dialects: one module per dialect a client or a vendor speaks, each with its borrowed
//! request view, its stream scanner (usage, content seen, error events) and its error shape.
//! When the route's vendor speaks the front door's dialect the client's bytes go upstream with
//! only `model` spliced ([`crate::body::Prepared`]) and the vendor's bytes come back untouched,
//! read on the way by the dialect's scanner; otherwise [`crate::convert`] translates.
//!
//! - [`chat`], [`chat_stream`]: OpenAI Chat Completions (the seed API; `openai`, `azure`);
//! - [`messages`]: Anthropic Messages (`anthropic`);
//! - [`gemini`]: Gemini `generateContent` (`gemini`; a vendor dialect only).

pub mod chat;
pub mod chat_stream;
pub mod gemini;
pub mod messages;
