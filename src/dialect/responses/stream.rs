//! The scanner of an OpenAI Responses event stream passing through to a Responses client: it
//! reads the vendor's bytes as they go by (the client gets them untouched) and keeps what
//! metering needs. OpenAI's API reference, "Streaming events":
//!
//! - `response.created`, `response.in_progress`: the response, no usage yet;
//! - `response.output_text.delta`, `response.refusal.delta`,
//!   `response.function_call_arguments.delta`, `response.reasoning_summary_text.delta`, … :
//!   a `delta` string of generated text, counted for estimates;
//! - `response.completed` (and `response.incomplete`): the final `response`, whose `usage` has
//!   `input_tokens` (`input_tokens_details.cached_tokens`) and `output_tokens`
//!   (`output_tokens_details.reasoning_tokens`); an incomplete one whose
//!   `incomplete_details.reason` is `content_filter` was stopped by the filter
//!   ([`Scanner::refused`]);
//! - `response.failed`: the final `response` with its `error` (`code`, `message`);
//!   `error`: a failure (`code`, `message`) outside a response.

use std::borrow::Cow;

use serde::Deserialize;

use crate::accounting::usage::{ServiceTier, Usage};
use crate::dialect::refusal::ResponseObject;
use crate::dialect::responses::UsageWire;
use crate::dialect::sse::{self, Decoder};

/// The longest error message kept from an upstream.
const MAX_ERROR_CHARS: usize = 1024;

/// Create one per streamed answer, [`feed`](Scanner::feed) it every chunk that goes to the
/// client, [`finish`](Scanner::finish) it at the end, then read its fields.
#[derive(Debug, Default)]
pub struct Scanner {
    sse: Decoder,
    usage: Option<Usage>,
    /// A terminal event (`response.completed`, `.incomplete` or `.failed`) was seen.
    pub done: bool,
    /// Events dispatched.
    pub events: u64,
    /// Delta events that carried generated text.
    pub content_events: u64,
    /// Characters of generated text seen in deltas.
    pub content_chars: u64,
    /// The message of a `response.failed` or `error` event.
    pub error: Option<String>,
    /// `response.incomplete` with `incomplete_details.reason: "content_filter"`: the vendor's
    /// filter stopped the answer ([`crate::dialect::refusal`]).
    pub refused: bool,
    /// A line or an event outgrew the decoder's cap and was dropped.
    pub overflowed: bool,
}

#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(default)]
    response: Option<ResponseIn<'a>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponseIn<'a> {
    #[serde(default)]
    usage: Option<UsageWire>,
    /// The processing tier that served it (`flex`, `priority` are billed apart).
    #[serde(borrow, default)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow, flatten)]
    finish: ResponseObject<'a>,
    #[serde(borrow, default)]
    error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
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

    /// The usage the final response reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn event(&mut self, name: &[u8], data: &[u8]) {
        self.events += 1;
        let Ok(ev) = serde_json::from_slice::<EventIn<'_>>(data) else {
            if name == b"error" {
                self.error = Some(truncate(&String::from_utf8_lossy(data)));
            }
            return;
        };
        let kind = ev.kind.as_ref();
        if kind.ends_with(".delta") {
            let chars = ev.delta.as_deref().map_or(0, |d| d.chars().count() as u64);
            if chars > 0 {
                self.content_events += 1;
                self.content_chars = self.content_chars.saturating_add(chars);
            }
            return;
        }
        match kind {
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.done = true;
                let Some(r) = ev.response else { return };
                if let Some(mut u) = r.usage.as_ref().and_then(UsageWire::usage) {
                    u.service_tier = r.service_tier.as_deref().and_then(ServiceTier::parse);
                    self.usage = Some(u);
                }
                self.refused |= r.finish.filtered();
                if kind == "response.failed" {
                    let (code, message) = r
                        .error
                        .map(|e| (e.code.unwrap_or_default(), e.message.unwrap_or_default()))
                        .unwrap_or_default();
                    self.error = Some(describe(&code, &message));
                }
            }
            "error" => {
                let code = ev.code.unwrap_or_default();
                let message = ev.message.unwrap_or_default();
                self.error = Some(describe(&code, &message));
            }
            _ => {}
        }
    }
}

fn describe(code: &str, message: &str) -> String {
    let code = if code.is_empty() { "error" } else { code };
    truncate(&format!("{code}: {message}"))
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = include_str!("../../../tests/fixtures/responses/stream_text.sse");

    fn scan_pieces(pieces: &[&[u8]]) -> Scanner {
        let mut s = Scanner::new();
        for p in pieces {
            s.feed(p);
        }
        s.finish();
        s
    }

    #[test]
    fn usage_and_content_at_every_cut() {
        let bytes = STREAM.as_bytes();
        for i in (0..=bytes.len()).step_by(7) {
            let s = scan_pieces(&[&bytes[..i], &bytes[i..]]);
            let u = s.usage().expect("usage");
            assert_eq!((u.prompt_tokens, u.cached_tokens), (37, 12), "cut at {i}");
            assert_eq!((u.completion_tokens, u.reasoning_tokens), (11, 0));
            assert!(s.done && s.error.is_none());
            assert_eq!(s.content_events, 3);
            assert_eq!(s.content_chars, "Hi there, friend!".len() as u64);
        }
    }

    #[test]
    fn failed_and_error_events() {
        let s = scan_pieces(&[b"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"r\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"},\"usage\":null}}\n\n"]);
        assert_eq!(s.error.as_deref(), Some("server_error: boom"));
        assert!(s.done && s.usage().is_none());
        let s = scan_pieces(&[b"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\",\"param\":null}\n\n"]);
        assert_eq!(s.error.as_deref(), Some("rate_limit_exceeded: slow down"));
        assert!(!s.done);
        let s = scan_pieces(&[b"data: {not json\n\n\xff\n\nevent: error\ndata: oops\n\n"]);
        assert_eq!(s.error.as_deref(), Some("oops"));
    }

    #[test]
    fn a_cut_stream_has_no_usage() {
        let cut = STREAM.split("event: response.completed").next().unwrap();
        let s = scan_pieces(&[cut.as_bytes()]);
        assert!(s.usage().is_none() && !s.done);
        assert_eq!(s.content_events, 3);
    }

    #[test]
    fn an_incomplete_response_stopped_by_the_filter() {
        let end = "event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"id\":\"r\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"content_filter\"},\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}}\n\n";
        let cut = STREAM.split("event: response.completed").next().unwrap();
        let s = scan_pieces(&[cut.as_bytes(), end.as_bytes()]);
        assert!(s.refused && s.done && s.content_events == 3);
        assert_eq!(s.usage().unwrap().completion_tokens, 2);
        let length = end.replace("content_filter", "max_output_tokens");
        assert!(!scan_pieces(&[length.as_bytes()]).refused);
        assert!(!scan_pieces(&[STREAM.as_bytes()]).refused);
    }
}
