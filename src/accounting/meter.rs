//! Reads the usage of an answer from the bytes that go to the client.
//!
//! Streams are metered by their dialect's scanner ([`crate::dialect`]) over the bytes that are
//! forwarded, or, on a translated stream with a door's leg, over the chat events that leg
//! decoded ([`Meter::event`]: one decode for both); a non-streaming answer's body is kept (bounded, shared not copied) and its `usage`
//! read at the end. When an upstream reports no usage, it is estimated from the text and marked
//! `estimated`: a request is never silently counted as zero tokens.

use bytes::Bytes;
use serde::Deserialize;

use crate::accounting::estimate::generated_chars;
use crate::accounting::usage::{estimate_tokens, estimated, ServiceTier, Usage, UsageSource};
use crate::dialect::chat::stream::Scanner;
use crate::dialect::{
    self, embeddings, gemini, messages, responses, BodyReader, Dialect, StreamScanner,
};

/// The largest non-streaming answer kept to read its usage; a larger one is estimated.
const BODY_METER_LIMIT: usize = 16 * 1024 * 1024;

/// Reads the usage of an answer from the bytes that go to the client.
pub enum Meter {
    /// Nothing to meter (an error answer, or not started).
    None,
    /// A chat-completions stream: the scanner reads usage and `content`, the counter the other
    /// generated text (reasoning, refusal, tool calls) for an estimate.
    Stream(Box<Scanner>),
    /// An Anthropic Messages event stream.
    Messages(Box<messages::stream::Scanner>),
    /// An OpenAI Responses event stream.
    Responses(Box<responses::stream::Scanner>),
    /// A Gemini stream passing through to the Gemini door (server-sent events or Google's
    /// JSON array).
    Gemini(Box<gemini::stream::Scanner>),
    /// A non-streaming answer in `dialect`, kept as the chunks that went to the client (shared,
    /// not copied) and read once whole at the end.
    Body {
        dialect: Dialect,
        chunks: Vec<Bytes>,
        len: usize,
        overflowed: bool,
    },
}

impl Meter {
    /// The meter of a stream in `dialect` (Chat or Messages; a Gemini or Bedrock Converse
    /// stream is metered after its translation to chat, whose last chunk carries the vendor's
    /// usage, cache reads and writes included).
    pub fn stream_of(dialect: Dialect) -> Meter {
        match dialect.stream_scanner() {
            StreamScanner::Messages => Meter::Messages(Box::default()),
            StreamScanner::Responses => Meter::Responses(Box::default()),
            StreamScanner::Gemini => Meter::Gemini(Box::default()),
            StreamScanner::Chat => Meter::Stream(Box::default()),
        }
    }

    /// The meter of a whole answer in `dialect`.
    pub fn body_of(dialect: Dialect) -> Meter {
        Meter::Body {
            dialect,
            chunks: Vec::new(),
            len: 0,
            overflowed: false,
        }
    }

    /// Meters a chunk the gateway built itself (a translation).
    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            Meter::Stream(s) => s.feed(chunk),
            Meter::Messages(s) => s.feed(chunk),
            Meter::Responses(s) => s.feed(chunk),
            Meter::Gemini(s) => s.feed(chunk),
            Meter::Body { .. } => self.feed_bytes(&Bytes::copy_from_slice(chunk)),
            Meter::None => {}
        }
    }

    /// Meters one event of a chat stream that a translator decoded already (its `event:` name
    /// and data): the door's leg of a translated stream decodes each chat event once, for
    /// itself and the meter ([`crate::convert::SseTranslator::feed_metered`]). Only a chat
    /// stream's meter reads decoded events (translated streams are metered in chat); the
    /// others take their bytes through [`Meter::feed`].
    pub fn event(&mut self, name: &[u8], data: &[u8]) {
        if let Meter::Stream(s) = self {
            s.decoded_event(name, data);
        }
    }

    /// The event a translator's decoder found left without its blank line at the body's
    /// end: read at the stream's end, when whole, as one left in [`Meter::feed`]'s bytes.
    pub fn last_event(&mut self, name: &[u8], data: &[u8]) {
        if let Meter::Stream(s) = self {
            s.last_event(name, data);
        }
    }

    /// Meters a chunk that goes to the client as it is: a body keeps a reference to it.
    pub fn feed_bytes(&mut self, chunk: &Bytes) {
        match self {
            Meter::None => {}
            Meter::Stream(s) => s.feed(chunk),
            Meter::Messages(s) => s.feed(chunk),
            Meter::Responses(s) => s.feed(chunk),
            Meter::Gemini(s) => s.feed(chunk),
            Meter::Body {
                chunks,
                len,
                overflowed,
                ..
            } => {
                if *len + chunk.len() > BODY_METER_LIMIT {
                    *overflowed = true;
                    chunks.clear();
                } else if !*overflowed {
                    *len += chunk.len();
                    chunks.push(chunk.clone());
                }
            }
        }
    }

    /// Whether a stream reached its end: `[DONE]` or a finished choice (chat),
    /// `message_stop` (Messages), a terminal `response.*` event (Responses). A whole answer
    /// always has. Read at the stream's end: the last event, left without its blank line, is
    /// taken first.
    pub fn ended(&mut self) -> bool {
        match self {
            Meter::Stream(s) => {
                s.finish();
                s.done || s.finished
            }
            Meter::Messages(s) => {
                s.finish();
                s.done
            }
            Meter::Responses(s) => {
                s.finish();
                s.done
            }
            Meter::Gemini(s) => {
                s.finish();
                s.done
            }
            Meter::Body { .. } | Meter::None => true,
        }
    }

    /// Whether a stream's end event has been read so far ([`Meter::ended`] without taking a
    /// last event left without its blank line, so it can be asked mid-stream); `false` for a
    /// whole answer.
    pub fn end_seen(&self) -> bool {
        match self {
            Meter::Stream(s) => s.done || s.finished,
            Meter::Messages(s) => s.done,
            Meter::Responses(s) => s.done,
            Meter::Gemini(s) => s.done,
            Meter::Body { .. } | Meter::None => false,
        }
    }

    /// Whether this meters an event stream (not a whole answer).
    pub fn is_stream(&self) -> bool {
        matches!(
            self,
            Meter::Stream(_) | Meter::Messages(_) | Meter::Responses(_) | Meter::Gemini(_)
        )
    }

    /// A whole answer has come: its chunks become one buffer (one copy when it came in several),
    /// which the refusal check and the usage read then take in place.
    pub fn seal(&mut self) {
        if let Meter::Body { chunks, .. } = self {
            if chunks.len() > 1 {
                let one = Bytes::from(chunks.concat());
                *chunks = vec![one];
            }
        }
    }

    /// Whether a stream carried content: text, reasoning (thinking), a refusal's text or a tool
    /// call. Until it did, a failure can still be retried on another route. A whole answer:
    /// whether any of it was kept.
    pub fn started(&self) -> bool {
        match self {
            // `other_chars`: reasoning_content, reasoning, refusal, tool calls.
            Meter::Stream(s) => s.content_events > 0 || s.other_chars > 0,
            // Text, thinking and tool-input deltas.
            Meter::Messages(s) => s.content_events > 0,
            // Every `*.delta` with text: output text, refusal, reasoning, call arguments.
            Meter::Responses(s) => s.content_events > 0,
            // An element with a candidate part.
            Meter::Gemini(s) => s.content_events > 0,
            Meter::Body { len, .. } => *len > 0,
            Meter::None => false,
        }
    }

    /// The message of an error event the stream carried (its scanner's `error`).
    pub fn stream_error(&self) -> Option<&str> {
        match self {
            Meter::Stream(s) => s.error.as_deref(),
            Meter::Messages(s) => s.error.as_deref(),
            Meter::Responses(s) => s.error.as_deref(),
            Meter::Gemini(s) => s.error.as_deref(),
            Meter::Body { .. } | Meter::None => None,
        }
    }

    /// Whether the answer says the vendor's content filter stopped it
    /// ([`crate::dialect::refusal`]): a stream's finish event, as seen so far, or the kept
    /// whole answer (one too large to keep is not read).
    pub fn refused(&self) -> bool {
        match self {
            Meter::Stream(s) => s.refused,
            Meter::Messages(s) => s.refused,
            Meter::Responses(s) => s.refused,
            Meter::Gemini(s) => s.refused,
            Meter::Body {
                dialect,
                chunks,
                overflowed: false,
                ..
            } => dialect::refused(*dialect, &whole(chunks)),
            Meter::Body { .. } | Meter::None => false,
        }
    }

    /// The answer's usage: as reported, or estimated from the text (completion) and from the
    /// request (`prompt_estimate`). `None` when nothing was metered.
    pub fn settle(&mut self, prompt_estimate: u64) -> Option<(Usage, UsageSource)> {
        match self {
            Meter::None => None,
            Meter::Stream(scanner) => {
                scanner.finish();
                Some(match scanner.usage {
                    Some(u) => (u, UsageSource::Reported),
                    // `content`, and every other generated text.
                    None => {
                        let chars = scanner.content_chars.saturating_add(scanner.other_chars);
                        (
                            estimated(prompt_estimate, estimate_tokens(chars)),
                            UsageSource::Estimated,
                        )
                    }
                })
            }
            Meter::Messages(s) => {
                s.finish();
                Some(match s.usage() {
                    Some(u) => (u, UsageSource::Reported),
                    None => (
                        estimated(prompt_estimate, estimate_tokens(s.content_chars)),
                        UsageSource::Estimated,
                    ),
                })
            }
            Meter::Responses(s) => {
                s.finish();
                Some(match s.usage() {
                    Some(u) => (u, UsageSource::Reported),
                    None => (
                        estimated(prompt_estimate, estimate_tokens(s.content_chars)),
                        UsageSource::Estimated,
                    ),
                })
            }
            Meter::Gemini(s) => {
                s.finish();
                Some(match s.usage() {
                    Some(u) => (u, UsageSource::Reported),
                    None => (
                        estimated(prompt_estimate, estimate_tokens(s.content_chars)),
                        UsageSource::Estimated,
                    ),
                })
            }
            Meter::Body {
                dialect: Dialect::Embeddings,
                chunks,
                ..
            } => Some(match embeddings::body_usage(&whole(chunks)) {
                Some(u) => (u, UsageSource::Reported),
                None => (estimated(prompt_estimate, 0), UsageSource::Estimated),
            }),
            Meter::Body {
                dialect,
                chunks,
                len,
                overflowed,
            } => Some(match dialect.body_reader() {
                Some(read) => dialect_body_usage(read, chunks, *len, *overflowed, prompt_estimate),
                None => body_usage(chunks, *len, *overflowed, prompt_estimate),
            }),
        }
    }
}

/// A whole answer's bytes: in place when it is one chunk (every answer [`Meter::seal`]ed).
fn whole(chunks: &[Bytes]) -> std::borrow::Cow<'_, [u8]> {
    match chunks {
        [one] => std::borrow::Cow::Borrowed(one),
        _ => std::borrow::Cow::Owned(chunks.concat()),
    }
}

/// The usage of a whole non-streaming answer. Most answers are one chunk, read in place;
/// the `usage` object alone is read first, and the choices only when it is missing.
fn body_usage(chunks: &[Bytes], len: usize, overflowed: bool, prompt: u64) -> (Usage, UsageSource) {
    if overflowed {
        return (
            estimated(prompt, estimate_tokens(len as u64)),
            UsageSource::Estimated,
        );
    }
    let body = whole(chunks);
    let body: &[u8] = &body;
    if let Ok(UsageOnly {
        usage: Some(mut u),
        service_tier,
    }) = serde_json::from_slice::<UsageOnly>(body)
    {
        u.service_tier = service_tier.as_deref().and_then(ServiceTier::parse);
        return (u, UsageSource::Reported);
    }
    let completion = match generated_chars(body) {
        0 if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() => {
            estimate_tokens(len as u64)
        }
        chars => estimate_tokens(chars),
    };
    (estimated(prompt, completion), UsageSource::Estimated)
}

/// The usage of a whole answer in a dialect other than chat (Anthropic's `message`, a
/// Responses `response`), as reported or estimated.
fn dialect_body_usage(
    read: BodyReader,
    chunks: &[Bytes],
    len: usize,
    overflowed: bool,
    prompt: u64,
) -> (Usage, UsageSource) {
    let (reported, text_chars) = read;
    let body = whole(chunks);
    if !overflowed {
        if let Some(u) = reported(&body) {
            return (u, UsageSource::Reported);
        }
    }
    let chars = if overflowed {
        len as u64
    } else {
        text_chars(&body)
    };
    (
        estimated(prompt, estimate_tokens(chars)),
        UsageSource::Estimated,
    )
}

/// The `usage` of a `chat.completion` body and the `service_tier` that served it; everything
/// else is skipped without allocating.
#[derive(Deserialize)]
struct UsageOnly<'a> {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(borrow, default)]
    service_tier: Option<std::borrow::Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_meter_reads_usage_or_estimates() {
        let mut m = Meter::body_of(Dialect::Chat);
        m.feed(br#"{"choices":[{"message":{"content":"abcdefgh"}}],"#);
        m.feed(br#""usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#);
        assert_eq!(
            m.settle(99),
            Some((
                Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2,
                    total_tokens: 7,
                    ..Usage::default()
                },
                UsageSource::Reported
            ))
        );
        let mut m = Meter::body_of(Dialect::Chat);
        m.feed(br#"{"choices":[{"message":{"content":"abcdefgh"}}]}"#);
        let (u, src) = m.settle(10).unwrap();
        assert_eq!(src, UsageSource::Estimated);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (10, 2));
        assert!(Meter::None.settle(1).is_none());
    }

    #[test]
    fn responses_meters_read_their_usage() {
        let mut m = Meter::body_of(Dialect::Responses);
        m.feed(include_bytes!(
            "../../tests/fixtures/responses/function_call.json"
        ));
        let (u, src) = m.settle(1).unwrap();
        assert_eq!(src, UsageSource::Reported);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (291, 23));
        let mut m = Meter::body_of(Dialect::Responses);
        m.feed(br#"{"output":[{"type":"message","content":[{"type":"output_text","text":"abcdefgh"}]}]}"#);
        let (u, src) = m.settle(5).unwrap();
        assert_eq!(src, UsageSource::Estimated);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (5, 2));
        let mut m = Meter::stream_of(Dialect::Responses);
        m.feed(include_bytes!(
            "../../tests/fixtures/responses/stream_text.sse"
        ));
        assert!(m.started());
        let (u, src) = m.settle(1).unwrap();
        assert_eq!(src, UsageSource::Reported);
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.completion_tokens),
            (37, 12, 11)
        );
    }

    #[test]
    fn estimates_count_reasoning_refusal_and_tool_calls() {
        let mut m = Meter::body_of(Dialect::Chat);
        m.feed(br#"{"choices":[{"message":{"content":null,"reasoning_content":"abcdefgh","#);
        m.feed(br#""tool_calls":[{"function":{"name":"abcd","arguments":"{\"q\":1}"}}]}}]}"#);
        let (u, src) = m.settle(3).unwrap();
        assert_eq!(src, UsageSource::Estimated);
        assert_eq!(u.completion_tokens, estimate_tokens(8 + 4 + 7));
        let mut m = Meter::stream_of(Dialect::Chat);
        m.feed(b"data: {\"choices\":[{\"delta\":{\"reasoning\":\"abcdefgh\"}}]}\n\n");
        m.feed(b"data: {\"choices\":[{\"delta\":{\"refusal\":\"no\"}}]}\n\ndata: [DONE]\n\n");
        let (u, src) = m.settle(3).unwrap();
        assert_eq!(src, UsageSource::Estimated);
        assert_eq!(u.completion_tokens, estimate_tokens(10));
        // A body that is not JSON is estimated from its length.
        let mut m = Meter::body_of(Dialect::Chat);
        m.feed(b"not json at all!");
        assert_eq!(m.settle(1).unwrap().0.completion_tokens, 4);
    }

    #[test]
    fn started_counts_text_reasoning_thinking_and_tool_calls() {
        let fed = |dialect, chunk: &str| {
            let mut m = Meter::stream_of(dialect);
            m.feed(chunk.as_bytes());
            m
        };
        let role = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}}]}\n\n";
        assert!(!fed(Dialect::Chat, role).started());
        for started in [
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
        ] {
            assert!(fed(Dialect::Chat, started).started(), "{started}");
        }
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n";
        assert!(!fed(Dialect::Messages, start).started());
        let thinking = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me\"}}\n\n";
        assert!(fed(Dialect::Messages, thinking).started());
        let created = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n";
        assert!(!fed(Dialect::Responses, created).started());
        let reasoning = "event: response.reasoning_summary_text.delta\ndata: {\"type\":\"response.reasoning_summary_text.delta\",\"delta\":\"Thinking\"}\n\n";
        assert!(fed(Dialect::Responses, reasoning).started());
        assert!(!Meter::None.started());
    }

    #[test]
    fn stream_errors_and_refusals_are_read() {
        let mut m = Meter::stream_of(Dialect::Chat);
        m.feed(b"data: {\"error\":{\"message\":\"busy\",\"type\":\"server_error\"}}\n\n");
        assert_eq!(m.stream_error(), Some("busy"));
        assert!(!m.started() && !m.refused());
        let mut m = Meter::stream_of(Dialect::Messages);
        m.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n");
        assert_eq!(m.stream_error(), Some("overloaded_error: busy"));
        m.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"}}\n\n");
        assert!(m.refused());
        let mut m = Meter::stream_of(Dialect::Chat);
        m.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n");
        assert!(m.refused() && m.stream_error().is_none());

        // Whole answers, kept in chunks, read by their dialect.
        let mut m = Meter::body_of(Dialect::Chat);
        m.feed(br#"{"choices":[{"index":0,"message":{"content":null},"#);
        m.feed(br#""finish_reason":"content_filter"}]}"#);
        assert!(m.refused());
        let mut m = Meter::body_of(Dialect::Messages);
        m.feed(br#"{"type":"message","content":[],"stop_reason":"refusal"}"#);
        assert!(m.refused() && m.stream_error().is_none());
        let mut m = Meter::body_of(Dialect::Responses);
        m.feed(br#"{"status":"incomplete","incomplete_details":{"reason":"content_filter"}}"#);
        assert!(m.refused());
        let mut m = Meter::body_of(Dialect::Chat);
        m.feed(br#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}"#);
        assert!(!m.refused());
    }
}
