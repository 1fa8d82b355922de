//! The stream-translation driver and what every translated pair returns: [`SseTranslator`]
//! (upstream SSE bytes in, client SSE bytes out, chunk by chunk), [`Translating`], which owns
//! the SSE decoding ([`crate::dialect::sse`]) and feeds a pair's [`EventState`] event by
//! event, and [`Translated`], a whole answer re-encoded.
//!
//! Everything here is pure (bytes in, bytes out, no I/O, no pingora type), so every translator
//! can be tested by feeding it recorded vendor streams cut at every byte.

use bytes::Bytes;

use crate::accounting::meter::Meter;
use crate::accounting::usage::Usage;
use crate::dialect::sse::Decoder;

/// A vendor's non-streaming answer, re-encoded in the client's dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The answer's body: an OpenAI `chat.completion` (or an Anthropic `message` for the
    /// `/v1/messages` front door).
    pub body: Bytes,
    /// The usage the vendor reported, to meter; `None` when it reported none.
    pub usage: Option<Usage>,
    /// The first choice's finish reason in the body's dialect (`stop`, `length`, `tool_calls`,
    /// `content_filter`; or `end_turn`, `max_tokens`, `tool_use`, `refusal`).
    pub finish_reason: &'static str,
}

/// A streaming translator: upstream SSE bytes in, client SSE bytes out, chunk by chunk, keeping
/// only an unterminated line and the event being read between chunks.
///
/// Feed it every chunk of the upstream body as it arrives, cut anywhere; forward what it
/// returns (possibly empty). Call [`finish`](SseTranslator::finish) once when the upstream
/// body ended cleanly: it emits what only the end can tell (the last chunk and `[DONE]`, or an
/// error event for a stream cut short). After a transport error, do not call `finish`; the
/// proxy ends the stream with its own error event instead.
///
/// [`super::chat_to_messages::Stream`] and [`super::chat_to_gemini::Stream`] write OpenAI streams, so [`crate::dialect::chat_stream::Scanner`]
/// can meter their output like any pass-through stream;
/// [`super::messages_to_chat::Stream`] and [`super::responses_to_chat::Stream`] read OpenAI
/// streams: [`SseTranslator::feed_metered`] meters the chat events they decode, so the chat
/// pivot is decoded once. Translators chain: Gemini → OpenAI → Anthropic.
pub trait SseTranslator: Send + Sync {
    /// Translates the next chunk of the vendor's body.
    fn feed(&mut self, chunk: &[u8]) -> Bytes;
    /// Ends the stream; calling it again returns nothing more.
    fn finish(&mut self) -> Bytes;
    /// [`feed`](SseTranslator::feed) a chat stream's chunk, metering its events on the way:
    /// the door's leg of a translated stream decodes each chat event once, for itself and
    /// `meter` ([`Meter::event`]), which then needs no decoding of its own. Every event of
    /// the chunk is metered, those after the stream's end too, as the meter reads all bytes.
    fn feed_metered(&mut self, chunk: &[u8], meter: &mut Meter) -> Bytes {
        meter.feed(chunk);
        self.feed(chunk)
    }
    /// [`finish`](SseTranslator::finish), handing `meter` the event left without its blank
    /// line, if any ([`Meter::last_event`]).
    fn finish_metered(&mut self, _meter: &mut Meter) -> Bytes {
        self.finish()
    }
    /// The usage the vendor reported so far (complete once the stream ended).
    fn usage(&self) -> Option<Usage>;
    /// Whether any text or tool call reached the output.
    fn has_content(&self) -> bool;
    /// Whether the output ended properly (`[DONE]`, or Anthropic's `message_stop`).
    fn is_done(&self) -> bool;
    /// Whether the output ended with an error event.
    fn is_failed(&self) -> bool;
    /// A Responses stream that ended well: its whole `response` object (what
    /// `response.completed` carried), for the response store. `None` for other dialects.
    fn completed_response(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a translated stream stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum End {
    #[default]
    Open,
    /// Ended properly.
    Done,
    /// Ended with an error event.
    Failed,
}

/// What a stream translator keeps between events: the dialect's part, driven by
/// [`Translating`], which owns the SSE decoding and the stop at the first end.
pub(crate) trait EventState: Send + Sync {
    /// Translates one upstream event's data, writing what the client gets to `out`.
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>);
    /// The body ended with the stream still open: write its proper end, or an error event
    /// when the stream was cut short.
    fn at_eof(&mut self, out: &mut Vec<u8>);
    fn end(&self) -> End;
    fn usage(&self) -> Option<Usage>;
    fn has_content(&self) -> bool;
    /// See [`SseTranslator::completed_response`].
    fn completed_response(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A stream translator: an SSE decoder feeding a dialect's `EventState` event by event,
/// until the stream ends (what follows its end is dropped).
#[derive(Debug)]
pub struct Translating<S> {
    sse: Decoder,
    st: S,
}

impl<S> Translating<S> {
    pub(crate) fn over(st: S) -> Self {
        Translating {
            sse: Decoder::default(),
            st,
        }
    }
}

impl<S: EventState> SseTranslator for Translating<S> {
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::new();
        let mut rest = chunk;
        while self.st.end() == End::Open {
            let Some(ev) = self.sse.next_event(&mut rest) else {
                break;
            };
            self.st.on_event(ev.data, &mut out);
        }
        Bytes::from(out)
    }

    fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        if self.st.end() == End::Open {
            if let Some(ev) = self.sse.finish() {
                self.st.on_event(ev.data, &mut out);
            }
        }
        if self.st.end() == End::Open {
            self.st.at_eof(&mut out);
        }
        Bytes::from(out)
    }

    fn feed_metered(&mut self, chunk: &[u8], meter: &mut Meter) -> Bytes {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(ev) = self.sse.next_event(&mut rest) {
            meter.event(ev.name, ev.data);
            // What follows the end is metered, not translated (as `feed` drops it).
            if self.st.end() == End::Open {
                self.st.on_event(ev.data, &mut out);
            }
        }
        Bytes::from(out)
    }

    fn finish_metered(&mut self, meter: &mut Meter) -> Bytes {
        let mut out = Vec::new();
        if let Some(ev) = self.sse.finish() {
            meter.last_event(ev.name, ev.data);
            if self.st.end() == End::Open {
                self.st.on_event(ev.data, &mut out);
            }
        }
        if self.st.end() == End::Open {
            self.st.at_eof(&mut out);
        }
        Bytes::from(out)
    }

    fn usage(&self) -> Option<Usage> {
        self.st.usage()
    }

    fn has_content(&self) -> bool {
        self.st.has_content()
    }

    fn is_done(&self) -> bool {
        self.st.end() == End::Done
    }

    fn is_failed(&self) -> bool {
        self.st.end() == End::Failed
    }

    fn completed_response(&self) -> Option<serde_json::Value> {
        self.st.completed_response()
    }
}

/// One server-sent event of a chat completions stream, as the translators from chat
/// (`<door>_to_chat`'s `Stream`) read it.
pub(crate) enum ChatEvent<'a> {
    /// A blank event (a keep-alive).
    Nothing,
    /// `[DONE]`: the stream's end.
    Done,
    /// A chunk (its `error` taken out: that is [`ChatEvent::Error`]).
    Chunk(crate::dialect::chat::wire::ChunkIn<'a>),
    /// An error object in place of a chunk (the gateway's own, or a vendor's).
    Error(&'a serde_json::value::RawValue),
    /// Not a chunk.
    Unreadable(serde_json::Error),
}

/// Reads one event's `data` of a chat completions stream.
pub(crate) fn chat_event(data: &[u8]) -> ChatEvent<'_> {
    let data = data.trim_ascii();
    if data.is_empty() {
        return ChatEvent::Nothing;
    }
    if data == b"[DONE]" {
        return ChatEvent::Done;
    }
    match serde_json::from_slice::<crate::dialect::chat::wire::ChunkIn<'_>>(data) {
        Ok(mut chunk) => match chunk.error.take() {
            Some(err) => ChatEvent::Error(err),
            None => ChatEvent::Chunk(chunk),
        },
        Err(e) => ChatEvent::Unreadable(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dialect::chat_stream::Scanner;

    /// The data of every event of an SSE byte string, as JSON (`[DONE]` as a JSON string).
    pub(crate) fn events_of(bytes: &[u8]) -> Vec<serde_json::Value> {
        let mut d = Decoder::default();
        let mut rest = bytes;
        let mut out = Vec::new();
        while let Some(e) = d.next_event(&mut rest) {
            out.push(serde_json::from_slice(e.data).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(e.data).into())
            }));
        }
        assert!(d.finish().is_none(), "unterminated output event");
        out
    }

    /// The output of a translator fed `input` in `pieces`, then finished.
    fn run_pieces(t: &mut dyn SseTranslator, pieces: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            out.extend_from_slice(&t.feed(p));
        }
        out.extend_from_slice(&t.finish());
        assert!(t.finish().is_empty(), "finish twice");
        out
    }

    /// Feeds `input` whole, cut in two at every byte, and byte by byte, to fresh translators
    /// from `make`, and checks the output is the same every time. Returns it.
    pub(crate) fn same_at_every_cut(
        make: &dyn Fn() -> Box<dyn SseTranslator>,
        input: &[u8],
    ) -> Vec<u8> {
        let whole = run_pieces(make().as_mut(), &[input]);
        for i in 0..=input.len() {
            let got = run_pieces(make().as_mut(), &[&input[..i], &input[i..]]);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&whole),
                "cut at byte {i}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run_pieces(make().as_mut(), &bytes), whole, "byte by byte");
        whole
    }

    /// What the gateway's own scanner reads from a translated OpenAI stream.
    pub(crate) fn scan(output: &[u8]) -> Scanner {
        let mut s = Scanner::new();
        s.feed(output);
        s.finish();
        s
    }
}
