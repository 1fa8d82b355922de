//! The scanner of an Anthropic Messages event stream passing through to an Anthropic client:
//! it reads the vendor's bytes as they go by (the client gets them untouched) and keeps what
//! metering needs. Anthropic's docs, "Streaming Messages":
//!
//! - `message_start`: `message.usage` has the input counts (`input_tokens`,
//!   `cache_read_input_tokens`, `cache_creation_input_tokens`) and a first `output_tokens`;
//! - `content_block_delta`: `text_delta` (`text`), `thinking_delta` (`thinking`),
//!   `input_json_delta` (`partial_json`) — the generated text, counted for estimates;
//!   `signature_delta` and `citations_delta` carry no generated text;
//! - `message_delta`: `usage` with the cumulative `output_tokens` (and, on newer models, input
//!   counts again: the latest value of each field wins); its `delta.stop_reason` `refusal`
//!   says the classifiers stopped the answer ([`Scanner::refused`]);
//! - `message_stop`: the end; `error`: a failure mid-stream (`error.type`, `error.message`);
//!   `ping`: nothing.
//!
//! Events are read through the one SSE decoder ([`crate::dialect::sse::Decoder`]); an event's JSON is
//! parsed only for the few event types that carry usage or an error, and deltas are read with a
//! borrowed view (no allocation for text without escapes).

use std::borrow::Cow;

use serde::Deserialize;

use crate::accounting::usage::Usage;
use crate::dialect::messages::wire::{DeltaIn, UsageIn};
use crate::dialect::refusal::ANTHROPIC_REFUSAL;
use crate::dialect::sse::{self, Decoder};

/// The longest error message kept from an upstream.
const MAX_ERROR_CHARS: usize = 1024;

/// Create one per streamed answer, [`feed`](Scanner::feed) it every chunk that goes to the
/// client, [`finish`](Scanner::finish) it at the end, then read its fields.
#[derive(Debug, Default)]
pub struct Scanner {
    sse: Decoder,
    input: UsageIn,
    /// `message_stop` was seen: the vendor ended the stream properly.
    pub done: bool,
    /// Events dispatched (pings included).
    pub events: u64,
    /// Deltas that carried generated text (text, thinking, tool input).
    pub content_events: u64,
    /// Characters of generated text seen in deltas: the base of an estimate when the stream
    /// reports no usage.
    pub content_chars: u64,
    /// The message of an `error` event.
    pub error: Option<String>,
    /// `message_delta` said `stop_reason: "refusal"`: the vendor's classifiers stopped the
    /// answer ([`crate::dialect::refusal`]).
    pub refused: bool,
    /// A line or an event outgrew the decoder's cap and was dropped.
    pub overflowed: bool,
    /// Whether a `message_start` or `message_delta` reported usage.
    reported: bool,
}

#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    message: Option<MessageIn>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(borrow, default)]
    delta: Option<DeltaIn<'a>>,
    #[serde(borrow, default)]
    error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
struct MessageIn {
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Scans the next chunk of the body, cut anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.overflowed |= sse::feed(self, |s| &mut s.sse, chunk, Self::event);
    }

    /// Ends the stream: a last event without its blank line counts if its data is whole JSON.
    pub fn finish(&mut self) {
        self.overflowed |= sse::finish(self, |s| &mut s.sse, Self::event);
    }

    /// The usage reported so far (complete once the stream ended).
    pub fn usage(&self) -> Option<Usage> {
        if !self.reported {
            return None;
        }
        self.input.reported()
    }

    fn event(&mut self, name: &[u8], data: &[u8]) {
        self.events += 1;
        let Ok(ev) = serde_json::from_slice::<EventIn<'_>>(data) else {
            if name == b"error" {
                self.error = Some(truncate(&String::from_utf8_lossy(data)));
            }
            return;
        };
        match ev.kind.as_ref() {
            "message_start" => {
                if let Some(u) = ev.message.and_then(|m| m.usage) {
                    self.merge(u);
                }
            }
            "message_delta" => {
                if let Some(u) = ev.usage {
                    self.merge(u);
                }
                let stop = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                if stop == Some(ANTHROPIC_REFUSAL) {
                    self.refused = true;
                }
            }
            "content_block_delta" => {
                let chars = ev.delta.map_or(0, |d| {
                    [d.text, d.thinking, d.partial_json]
                        .iter()
                        .flatten()
                        .map(|t| t.chars().count() as u64)
                        .sum()
                });
                if chars > 0 {
                    self.content_events += 1;
                    self.content_chars = self.content_chars.saturating_add(chars);
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let e = ev.error;
                let kind = e
                    .as_ref()
                    .and_then(|e| e.kind.as_deref())
                    .unwrap_or("error");
                let message = e.as_ref().and_then(|e| e.message.as_deref()).unwrap_or("");
                self.error = Some(truncate(&format!("{kind}: {message}")));
            }
            _ => {}
        }
    }

    /// Usage fields seen later replace earlier ones; absent ones keep their value.
    fn merge(&mut self, u: UsageIn) {
        self.reported = true;
        self.input = self.input.merge(u);
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"usage\":{\"input_tokens\":20,\"cache_read_input_tokens\":90000,\"cache_creation_input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me think\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"H\\u00e9llo\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":100}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    fn scan_pieces(pieces: &[&[u8]]) -> Scanner {
        let mut s = Scanner::new();
        for p in pieces {
            s.feed(p);
        }
        s.finish();
        s
    }

    #[test]
    fn usage_with_cache_counts_and_content_at_every_cut() {
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            let s = scan_pieces(&[&bytes[..i], &bytes[i..]]);
            let u = s.usage().expect("usage");
            assert_eq!(u.prompt_tokens, 20 + 90000 + 5, "cut at {i}");
            assert_eq!((u.cached_tokens, u.cache_write_tokens), (90000, 5));
            assert_eq!(u.completion_tokens, 100);
            assert!(s.done);
            assert_eq!(s.content_events, 2);
            assert_eq!(s.content_chars, "Let me think".len() as u64 + 5);
            assert!(s.error.is_none());
        }
    }

    #[test]
    fn error_event_mid_stream() {
        let s = scan_pieces(&[
            STREAM.split("event: ping").next().unwrap().as_bytes(),
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n",
        ]);
        assert_eq!(s.error.as_deref(), Some("overloaded_error: busy"));
        assert!(!s.done);
        // The input was reported by message_start: partial usage is still known.
        assert_eq!(s.usage().unwrap().completion_tokens, 1);
    }

    #[test]
    fn no_usage_and_garbage() {
        let s = scan_pieces(&[b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"]);
        assert!(s.usage().is_none() && s.done);
        let s = scan_pieces(&[b"data: {not json\n\n\xff\xfe\n\nevent: error\ndata: oops\n\n"]);
        assert_eq!(s.error.as_deref(), Some("oops"));
        assert!(s.usage().is_none());
    }

    #[test]
    fn a_cut_last_event_is_dropped_a_whole_one_counts() {
        let whole = "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":3,\"output_tokens\":7}}";
        let s = scan_pieces(&[whole.as_bytes()]);
        assert_eq!(s.usage().unwrap().completion_tokens, 7);
        let s = scan_pieces(&[&whole.as_bytes()[..whole.len() - 2]]);
        assert!(s.usage().is_none());
    }

    #[test]
    fn a_refusal_after_some_text() {
        let refused = STREAM.replace(
            "\"stop_reason\":\"end_turn\"",
            "\"stop_reason\":\"refusal\"",
        );
        let s = scan_pieces(&[refused.as_bytes()]);
        assert!(s.refused && s.content_events > 0);
        assert!(!scan_pieces(&[STREAM.as_bytes()]).refused);
    }
}
