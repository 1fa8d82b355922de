//! The scanner of a Gemini `streamGenerateContent` answer passing through to a Gemini client:
//! it reads the vendor's bytes as they go by (the client gets them untouched) and keeps what
//! metering needs, in either of Google's framings (Gemini API reference, "Generating content",
//! `models.streamGenerateContent`: a stream of `GenerateContentResponse`s):
//!
//! - `alt=sse`: server-sent events, each `data:` one `GenerateContentResponse` (read through
//!   the one SSE decoder, [`crate::dialect::sse::Decoder`]);
//! - otherwise a JSON array streamed element by element, `[{…}\r\n,{…}\r\n]` (read by
//!   [`Elements`], which splits the array's top-level elements however the bytes are cut).
//!
//! Each element: `usageMetadata` (the latest is the whole answer's: Google reports running
//! totals, the last chunk's are the totals; `cachedContentTokenCount` and `thoughtsTokenCount`
//! read as the `gemini` translation reads them, [`super::wire::UsageIn::usage`]);
//! `candidates[].content.parts[]` (a part is content: text, thought, a function call; their
//! characters are counted for an estimate); `candidates[].finishReason` (the answer's end; a
//! filtering reason, [`super::is_filtered`], is a refusal); `promptFeedback.blockReason`
//! (a blocked prompt: the end, and a refusal); `error` (a failure mid-stream, as Google ends
//! one). Gemini sends no end marker: a stream ended when a finish or block reason came (or
//! the array closed).

use crate::accounting::usage::Usage;
use crate::dialect::sse::{self, Decoder, MAX_EVENT_BYTES};

use super::wire::{ResponseIn, UsageIn};

/// The longest error message kept from an upstream.
const MAX_ERROR_CHARS: usize = 1024;

/// Which framing the stream turned out to be (from its first non-blank byte).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Framing {
    #[default]
    Unknown,
    Sse,
    Array,
}

/// Create one per streamed answer, [`feed`](Scanner::feed) it every chunk that goes to the
/// client, [`finish`](Scanner::finish) it at the end, then read its fields.
#[derive(Debug, Default)]
pub struct Scanner {
    framing: Framing,
    sse: Decoder,
    array: Elements,
    usage: Option<UsageIn>,
    /// A finish reason, a block reason or the array's end was seen.
    pub done: bool,
    /// Elements read.
    pub events: u64,
    /// Elements with a candidate part (text, thought, function call, …).
    pub content_events: u64,
    /// Characters of generated text and call arguments: the base of an estimate when the
    /// stream reports no usage.
    pub content_chars: u64,
    /// The message of an element that was an error.
    pub error: Option<String>,
    /// A finish or block reason said Gemini's filters stopped the answer.
    pub refused: bool,
    /// An element outgrew the cap and was dropped.
    pub overflowed: bool,
}

impl Scanner {
    /// Scans the next chunk of the body, cut anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if self.framing == Framing::Unknown {
            let Some(first) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
                return;
            };
            rest = &rest[first..];
            self.framing = match rest[0] {
                b'[' => Framing::Array,
                _ => Framing::Sse,
            };
        }
        match self.framing {
            Framing::Array => self.feed_array(rest),
            Framing::Sse => {
                self.overflowed |= sse::feed(self, |s| &mut s.sse, rest, Self::event);
            }
            Framing::Unknown => {}
        }
    }

    /// Ends the stream: an SSE event left without its blank line counts if its data is whole.
    pub fn finish(&mut self) {
        if self.framing == Framing::Sse {
            self.overflowed |= sse::finish(self, |s| &mut s.sse, Self::event);
        }
    }

    /// The usage reported so far (complete once the stream ended).
    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().and_then(UsageIn::usage)
    }

    fn feed_array(&mut self, chunk: &[u8]) {
        let mut array = std::mem::take(&mut self.array);
        array.feed(chunk, |e| self.element(e));
        self.overflowed |= array.overflowed;
        self.done |= array.closed;
        self.array = array;
    }

    fn event(&mut self, _name: &[u8], data: &[u8]) {
        self.element(data);
    }

    /// One `GenerateContentResponse` (or an error object).
    fn element(&mut self, data: &[u8]) {
        self.events += 1;
        let Ok(r) = serde_json::from_slice::<ResponseIn<'_>>(data) else {
            return;
        };
        if let Some(e) = r.error {
            let code = e.code.map_or(String::new(), |c| format!("{c}: "));
            self.error = Some(truncate(&format!("{code}{}", e.message)));
            self.done = true;
            return;
        }
        if let Some(u) = r.usage_metadata {
            self.usage = Some(u);
        }
        if let Some(reason) = r.prompt_feedback.and_then(|f| f.block_reason) {
            self.refused |= super::is_filtered(&reason) || !reason.is_empty();
            self.done = true;
        }
        let mut parts = 0;
        for c in &r.candidates {
            for p in c.content.iter().flat_map(|c| &c.parts) {
                parts += 1;
                let text = p.text.as_deref().map_or(0, |t| t.chars().count());
                let args = p
                    .function_call
                    .as_ref()
                    .map_or(0, |f| f.name.len() + f.args.map_or(0, |a| a.get().len()));
                self.content_chars = self.content_chars.saturating_add((text + args) as u64);
            }
            if let Some(reason) = c.finish_reason.as_deref() {
                self.refused |= super::is_filtered(reason);
                self.done = true;
            }
        }
        if parts > 0 {
            self.content_events += 1;
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

/// Splits a streamed JSON array into its top-level elements, however its bytes are cut:
/// strings and escapes are followed so that a bracket inside a string is text. Keeps only the
/// element being read (at most [`MAX_EVENT_BYTES`]; a longer one is dropped, `overflowed`).
#[derive(Debug, Default)]
pub struct Elements {
    /// Nesting depth: 1 inside the array, 2 and more inside an element.
    depth: usize,
    in_string: bool,
    escaped: bool,
    element: Vec<u8>,
    /// The element being read outgrew the cap.
    dropping: bool,
    /// The array's closing `]` was read.
    pub closed: bool,
    pub overflowed: bool,
}

impl Elements {
    /// Reads `chunk`, handing each complete element's bytes to `on_element`.
    pub fn feed(&mut self, chunk: &[u8], mut on_element: impl FnMut(&[u8])) {
        for &b in chunk {
            if self.closed {
                return;
            }
            let inside = self.depth >= 2;
            if self.in_string {
                self.keep(b);
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' if inside => {
                    self.in_string = true;
                    self.keep(b);
                }
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth >= 2 {
                        self.keep(b);
                    }
                }
                b']' | b'}' => {
                    if inside {
                        self.keep(b);
                    }
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 1 && inside {
                        if !self.dropping {
                            on_element(&self.element);
                        }
                        self.element.clear();
                        self.dropping = false;
                    } else if self.depth == 0 {
                        self.closed = true;
                    }
                }
                _ if inside => self.keep(b),
                // Separators and blanks between elements.
                _ => {}
            }
        }
    }

    fn keep(&mut self, b: u8) {
        if self.dropping {
            return;
        }
        if self.element.len() >= MAX_EVENT_BYTES {
            self.dropping = true;
            self.overflowed = true;
            self.element = Vec::new();
            return;
        }
        self.element.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel]\"lo"}]},"index":0}],"usageMetadata":{"promptTokenCount":10,"totalTokenCount":10},"modelVersion":"g"}"#;
    const LAST: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":" there"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":4,"thoughtsTokenCount":2,"cachedContentTokenCount":3,"totalTokenCount":16}}"#;

    fn framings() -> [String; 2] {
        [
            format!("data: {TEXT}\r\n\r\ndata: {LAST}\r\n\r\n"),
            format!("[{TEXT}\r\n,{LAST}\r\n]"),
        ]
    }

    #[test]
    fn both_framings_cut_anywhere() {
        for body in framings() {
            let bytes = body.as_bytes();
            for cut in 0..bytes.len() {
                let mut s = Scanner::default();
                s.feed(&bytes[..cut]);
                s.feed(&bytes[cut..]);
                s.finish();
                assert!(s.done, "cut {cut} of {body}");
                assert_eq!(s.content_events, 2, "cut {cut}");
                assert_eq!(s.content_chars, 13, "cut {cut}");
                let u = s.usage().unwrap();
                assert_eq!(u.prompt_tokens, 10);
                assert_eq!(u.completion_tokens, 6, "candidates + thoughts");
                assert!(!s.refused && s.error.is_none());
            }
        }
    }

    #[test]
    fn a_stream_without_a_finish_is_not_done() {
        let mut s = Scanner::default();
        s.feed(format!("[{TEXT}\r\n").as_bytes());
        s.finish();
        assert!(!s.done);
        assert_eq!(s.content_events, 1);
    }

    #[test]
    fn refusals_and_errors() {
        let blocked = r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3,"totalTokenCount":3}}"#;
        let mut s = Scanner::default();
        s.feed(format!("data: {blocked}\n\n").as_bytes());
        assert!(s.refused && s.done);
        let stopped = r#"{"candidates":[{"finishReason":"RECITATION","index":0}]}"#;
        let mut s = Scanner::default();
        s.feed(format!("[{stopped}]").as_bytes());
        assert!(s.refused && s.done && s.content_events == 0);
        let error =
            r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#;
        let mut s = Scanner::default();
        s.feed(format!("[{TEXT},\r\n{error}]").as_bytes());
        assert_eq!(s.error.as_deref(), Some("503: The model is overloaded."));
    }
}
