//! The Gemini dialect (`generateContent`): spoken by `gemini` vendors and Vertex's Gemini
//! models, and a front door (`/v1beta/models/{model}:generateContent` and the other calls of
//! Google's Gemini API, [`door`]). Its parts: the door's paths ([`door`]), its view of a
//! request body ([`view`]), the scanner of a stream passing through in either of Google's
//! framings ([`stream`]), the re-framer of server-sent events into Google's streamed JSON
//! array ([`array`]), Google's error shape ([`error`]) and the wire types ([`wire`]); here,
//! the facts about its answers that more than one module needs. Google's API reference:
//! `FinishReason`, `BlockReason`, `UsageMetadata`.

pub mod array;
pub mod door;
pub mod error;
pub mod stream;
pub mod view;
pub mod wire;

use crate::accounting::usage::Usage;

/// Whether a `finishReason` or `blockReason` means Gemini's filters stopped the answer.
pub fn is_filtered(reason: &str) -> bool {
    matches!(
        reason,
        "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION"
            | "OTHER_BLOCK"
    )
}

/// The usage of a whole `GenerateContentResponse` (its `usageMetadata`, read as the `gemini`
/// translation reads it: [`wire::UsageIn::usage`]); `None` when it reports none.
pub fn body_usage(body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct UsageOnly {
        #[serde(default)]
        usage_metadata: Option<wire::UsageIn>,
    }
    serde_json::from_slice::<UsageOnly>(body)
        .ok()?
        .usage_metadata?
        .usage()
}

/// The characters of text and function-call arguments a whole answer generated (the base of
/// an estimate when it reports no usage).
pub fn body_text_chars(body: &[u8]) -> u64 {
    let mut s = stream::Scanner::default();
    s.feed(b"[");
    s.feed(body);
    s.feed(b"]");
    s.content_chars
}
