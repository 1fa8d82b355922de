//! Vendor refusals in a 200: an answer whose finish says the vendor's content filter stopped
//! it. The gateway answers such a whole answer with the "Contents Filtered" error of the chat API and
//! ends such a stream with that error event ([`crate::error::GatewayError::ContentFilter`]).
//!
//! What each dialect says (vendors' API references):
//!
//! - Chat Completions (OpenAI, Azure OpenAI): a choice's `finish_reason: "content_filter"`.
//!   A model's own refusal (the `refusal` field, `finish_reason: "stop"`) is an answer the
//!   client shows, not a filter: it passes.
//! - Anthropic Messages: `stop_reason: "refusal"` (the streaming classifiers stopped the
//!   answer; in a stream, on `message_delta`).
//! - OpenAI Responses: `status: "incomplete"` with `incomplete_details.reason:
//!   "content_filter"` (in a stream, the `response.incomplete` event's `response`).
//! - Gemini: a candidate's `finishReason` in [`super::gemini::is_filtered`] (SAFETY,
//!   RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY, …), or a prompt blocked by
//!   `promptFeedback.blockReason`. RECITATION (the answer would recite copyrighted text) counts
//!   as filtered: the vendor withheld the content on policy grounds, as OpenAI-compatible
//!   translations of Gemini report it (`content_filter`).
//! - Bedrock Converse: `stopReason` `content_filtered` (the model's filter) or
//!   `guardrail_intervened` (a Bedrock guardrail) ([`super::converse::is_filtered`]).
//!
//! A whole answer is refused when any of its choices (candidates) is: the gateway answers one
//! error, not part of an answer. Every reader runs a byte search first, so an ordinary answer
//! is not parsed.

use std::borrow::Cow;

use memchr::memmem;
use serde::Deserialize;

use super::{gemini, Dialect};

/// The chat finish reason, and the Responses `incomplete_details.reason`, of a filtered answer.
pub const CONTENT_FILTER: &str = "content_filter";

/// Anthropic's `stop_reason` of a filtered answer.
pub const ANTHROPIC_REFUSAL: &str = "refusal";

/// Whether a whole (non-streaming) answer in `dialect` says the vendor's filter stopped it.
/// Embeddings have no such finish.
pub fn refused(dialect: Dialect, body: &[u8]) -> bool {
    match dialect {
        Dialect::Chat => chat(body),
        Dialect::Messages => messages(body),
        Dialect::Responses => responses(body),
        Dialect::Gemini => gemini_answer(body),
        Dialect::Converse => converse_answer(body),
        Dialect::Embeddings => false,
    }
}

/// A `chat.completion` (or one `chat.completion.chunk`) with a choice finished by the filter.
pub fn chat(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow, default)]
        choices: Vec<Choice<'a>>,
    }
    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(borrow, default)]
        finish_reason: Option<Cow<'a, str>>,
    }
    has(body, CONTENT_FILTER.as_bytes())
        && serde_json::from_slice::<Answer<'_>>(body).is_ok_and(|a| {
            a.choices
                .iter()
                .any(|c| c.finish_reason.as_deref() == Some(CONTENT_FILTER))
        })
}

/// An Anthropic `message` with `stop_reason: "refusal"`.
pub fn messages(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        stop_reason: Option<Cow<'a, str>>,
    }
    has(body, ANTHROPIC_REFUSAL.as_bytes())
        && serde_json::from_slice::<Message<'_>>(body)
            .is_ok_and(|m| m.stop_reason.as_deref() == Some(ANTHROPIC_REFUSAL))
}

/// A Bedrock `ConverseResponse` whose `stopReason` says a filter stopped it
/// ([`super::converse::is_filtered`]: `content_filtered`, `guardrail_intervened`).
pub fn converse_answer(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer<'a> {
        #[serde(borrow, default)]
        stop_reason: Option<Cow<'a, str>>,
    }
    (has(body, b"content_filtered") || has(body, b"guardrail_intervened"))
        && serde_json::from_slice::<Answer<'_>>(body).is_ok_and(|a| {
            a.stop_reason
                .as_deref()
                .is_some_and(super::converse::is_filtered)
        })
}

/// A Responses `response` object left incomplete by the content filter.
pub fn responses(body: &[u8]) -> bool {
    has(body, CONTENT_FILTER.as_bytes())
        && serde_json::from_slice::<ResponseObject<'_>>(body).is_ok_and(|r| r.filtered())
}

/// The fields of a Responses `response` object that say it was filtered.
#[derive(Deserialize)]
pub(super) struct ResponseObject<'a> {
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    incomplete_details: Option<Incomplete<'a>>,
}

#[derive(Deserialize)]
struct Incomplete<'a> {
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

impl ResponseObject<'_> {
    pub(super) fn filtered(&self) -> bool {
        self.status.as_deref() == Some("incomplete")
            && self
                .incomplete_details
                .as_ref()
                .and_then(|d| d.reason.as_deref())
                == Some(CONTENT_FILTER)
    }
}

/// A Gemini `GenerateContentResponse` (whole, or one event of a stream) whose prompt was
/// blocked or whose candidate was stopped by a filter.
pub fn gemini_answer(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer<'a> {
        #[serde(borrow, default)]
        candidates: Vec<Candidate<'a>>,
        #[serde(borrow, default)]
        prompt_feedback: Option<Feedback<'a>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Candidate<'a> {
        #[serde(borrow, default)]
        finish_reason: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Feedback<'a> {
        #[serde(borrow, default)]
        block_reason: Option<Cow<'a, str>>,
    }
    if !has(body, b"finishReason") && !has(body, b"blockReason") {
        return false;
    }
    serde_json::from_slice::<Answer<'_>>(body).is_ok_and(|a| {
        a.prompt_feedback.and_then(|f| f.block_reason).is_some()
            || a.candidates
                .iter()
                .filter_map(|c| c.finish_reason.as_deref())
                .any(gemini::is_filtered)
    })
}

fn has(body: &[u8], needle: &[u8]) -> bool {
    memmem::find(body, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_content_filter_in_any_choice() {
        let filtered = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]}"#;
        assert!(refused(Dialect::Chat, filtered));
        let second =
            br#"{"choices":[{"finish_reason":"stop"},{"finish_reason":"content_filter"}]}"#;
        assert!(refused(Dialect::Chat, second));
        for fine in [
            &br#"{"choices":[{"message":{"content":"about content_filter"},"finish_reason":"stop"}]}"#[..],
            br#"{"choices":[{"message":{"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#,
            br#"{"choices":[{"finish_reason":"content_filter""#,
            b"not json content_filter",
            b"",
        ] {
            assert!(!refused(Dialect::Chat, fine), "{}", String::from_utf8_lossy(fine));
        }
    }

    #[test]
    fn anthropic_refusal_stop_reason() {
        assert!(refused(
            Dialect::Messages,
            br#"{"type":"message","content":[],"stop_reason":"refusal"}"#
        ));
        assert!(!refused(
            Dialect::Messages,
            br#"{"type":"message","content":[{"type":"text","text":"refusal"}],"stop_reason":"end_turn"}"#
        ));
    }

    #[test]
    fn responses_incomplete_by_the_filter() {
        let filtered = br#"{"object":"response","status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":[]}"#;
        assert!(refused(Dialect::Responses, filtered));
        let length = br#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"content":[{"text":"content_filter"}]}]}"#;
        assert!(!refused(Dialect::Responses, length));
        let completed =
            br#"{"status":"completed","incomplete_details":{"reason":"content_filter"}}"#;
        assert!(!refused(Dialect::Responses, completed));
    }

    #[test]
    fn gemini_finish_and_block_reasons() {
        for reason in [
            "SAFETY",
            "RECITATION",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
        ] {
            let body = format!(r#"{{"candidates":[{{"finishReason":"{reason}","index":0}}]}}"#);
            assert!(refused(Dialect::Gemini, body.as_bytes()), "{reason}");
        }
        assert!(refused(
            Dialect::Gemini,
            br#"{"promptFeedback":{"blockReason":"OTHER"},"usageMetadata":{"promptTokenCount":3}}"#
        ));
        for reason in ["STOP", "MAX_TOKENS", "MALFORMED_FUNCTION_CALL", "OTHER"] {
            let body = format!(r#"{{"candidates":[{{"finishReason":"{reason}"}}]}}"#);
            assert!(!refused(Dialect::Gemini, body.as_bytes()), "{reason}");
        }
        assert!(!refused(
            Dialect::Embeddings,
            br#"{"finish_reason":"content_filter"}"#
        ));
    }
}
