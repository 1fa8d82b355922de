//! Google's streamed JSON array, made from server-sent events: a `streamGenerateContent`
//! asked without `alt=sse` is answered as one JSON array whose elements are the
//! `GenerateContentResponse`s, sent as they come (Gemini API reference, "Generating content",
//! `models.streamGenerateContent`; the REST transport without `alt=sse` answers
//! `[{…}\r\n,{…}\r\n]`, which Google's SDKs read element by element).
//!
//! A native route's vendor is asked the same framing and its bytes pass through; an answer
//! the gateway makes as events (a translated stream, the built-in mock) goes through
//! [`ToArray`]: each event's data becomes an element (`[` before the first, `,\r\n` before
//! the others), and the end closes the array. An error after the stream started is its last
//! element ([`error_tail`]), as Google ends one.

use bytes::{BufMut, Bytes, BytesMut};

use crate::dialect::sse::{self, Decoder};
use crate::error::GatewayError;

/// Re-frames a stream of `data: {GenerateContentResponse}` events into Google's JSON array.
#[derive(Debug, Default)]
pub struct ToArray {
    sse: Decoder,
    /// The `[` went out.
    opened: bool,
    /// The `]` went out.
    closed: bool,
    out: BytesMut,
}

impl ToArray {
    /// The array's bytes for the next events of `chunk` (cut anywhere); empty while no event
    /// is complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        sse::feed(self, |s| &mut s.sse, chunk, Self::event);
        self.out.split().freeze()
    }

    /// The end: an event left without its blank line (when whole), then `]` (`[]` for a
    /// stream without events). Once.
    pub fn finish(&mut self) -> Bytes {
        sse::finish(self, |s| &mut s.sse, Self::event);
        if !self.closed {
            self.closed = true;
            if !self.opened {
                self.opened = true;
                self.out.put_u8(b'[');
            }
            self.out.put_slice(b"]");
        }
        self.out.split().freeze()
    }

    fn event(&mut self, _name: &[u8], data: &[u8]) {
        let data = data.trim_ascii();
        if self.closed || data.is_empty() || data == b"[DONE]" {
            return;
        }
        self.out
            .put_slice(if self.opened { b",\r\n" } else { b"[" });
        self.opened = true;
        self.out.put_slice(data);
    }
}

/// An error as the last element of an array stream that already started (its `[` went out),
/// closing it.
pub fn error_tail(err: &GatewayError) -> Bytes {
    let body = super::error::error_body(err);
    let mut out = BytesMut::with_capacity(body.len() + 8);
    out.put_slice(b",\r\n");
    out.put_slice(&body);
    out.put_slice(b"\r\n]");
    out.freeze()
}

/// A whole array of the events in `chunks` (an answer the gateway wrote itself, as events).
pub fn whole(chunks: &[Bytes]) -> Bytes {
    let mut a = ToArray::default();
    let mut out = BytesMut::new();
    for c in chunks {
        out.put_slice(&a.feed(c));
    }
    out.put_slice(&a.finish());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_elements_however_cut() {
        let events = b"data: {\"a\":1}\r\n\r\ndata: {\"b\":[2]}\r\n\r\ndata: {\"c\":3}";
        for cut in 0..events.len() {
            let mut t = ToArray::default();
            let mut out = t.feed(&events[..cut]).to_vec();
            out.extend_from_slice(&t.feed(&events[cut..]));
            out.extend_from_slice(&t.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "[{\"a\":1},\r\n{\"b\":[2]},\r\n{\"c\":3}]",
                "cut {cut}"
            );
            assert!(t.finish().is_empty());
        }
        assert_eq!(&whole(&[])[..], b"[]");
    }

    #[test]
    fn an_error_closes_the_array() {
        let mut out = whole(&[Bytes::from_static(b"data: {\"a\":1}\n\n")]).to_vec();
        out.pop();
        out.extend_from_slice(&error_tail(&GatewayError::Upstream("gone".into())));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[1]["error"]["status"], "UNAVAILABLE");
    }
}
