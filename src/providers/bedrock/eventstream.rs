//! Bedrock's streams (`application/vnd.amazon.eventstream`: binary frames, each with a
//! prelude CRC and a message CRC) re-framed into server-sent events as they arrive
//! ([`crate::upstream::reframe::Reframe`]). The frames are decoded by AWS's own
//! `aws-smithy-eventstream` (the CRCs checked there); this module only renders them:
//!
//! - an `InvokeModelWithResponseStream` `chunk` event (payload `{"bytes":"<base64>"}`, the
//!   model's own event: "PayloadPart", Bedrock API Reference, InvokeModelWithResponseStream)
//!   becomes that event as `event: <its "type">\ndata: <json>\n\n`: for Claude, Anthropic's
//!   own server-sent events, so the Messages door passes them through and the Messages meter
//!   reads their usage;
//! - a `ConverseStream` event (`messageStart`, `contentBlockDelta`, …, `metadata`: Bedrock API
//!   Reference, ConverseStream, "Response Syntax") becomes `event: <:event-type>\ndata:
//!   <payload>\n\n`;
//! - an exception frame (`:message-type: exception`, `:exception-type` such as
//!   `throttlingException`, `modelStreamErrorException`, `validationException`,
//!   `serviceUnavailableException`, `internalServerException`), or an `error` frame
//!   (`:error-code`, `:error-message`), becomes Anthropic's error event: `event: error\ndata:
//!   {"type":"error","error":{"type":"<exception-type>","message":"<message>"}}`.
//!
//! A frame that fails its CRC, claims an impossible length or is cut at the body's end is
//! [`Corrupt`]: the stream ends as a reset (before content, the gateway fails over).

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};

use crate::upstream::reframe::{Corrupt, Reframe};

/// The longest frame taken (AWS's event-stream limit is 16 MiB per message, "Event stream
/// encoding", AWS General Reference; a little more is allowed for the prelude and CRCs).
const MAX_FRAME: usize = 16 * 1024 * 1024 + 1024;

/// The re-framer of one Bedrock stream.
#[derive(Default)]
pub struct EventStream {
    decoder: MessageFrameDecoder,
    /// The bytes not yet decoded.
    buffer: BytesMut,
    /// Whether the decoder holds the prelude of a frame not yet complete.
    in_frame: bool,
}

impl EventStream {
    pub fn new() -> Self {
        EventStream::default()
    }
}

impl Reframe for EventStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<Bytes, Corrupt> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if !self.in_frame && self.buffer.len() >= 4 {
                let total = (&self.buffer[..4]).get_u32() as usize;
                if !(16..=MAX_FRAME).contains(&total) {
                    return Err(Corrupt(format!("event-stream frame of {total} bytes")));
                }
            }
            let started = self.buffer.len() >= 12;
            match self.decoder.decode_frame(&mut self.buffer) {
                Ok(DecodedFrame::Complete(message)) => {
                    self.in_frame = false;
                    render(&message, &mut out)?;
                }
                Ok(DecodedFrame::Incomplete) => {
                    self.in_frame = self.in_frame || started;
                    break;
                }
                Err(e) => return Err(Corrupt(format!("event-stream frame: {e}"))),
            }
        }
        Ok(Bytes::from(out))
    }

    fn finish(&mut self) -> Result<Bytes, Corrupt> {
        if self.in_frame || !self.buffer.is_empty() {
            return Err(Corrupt("the event stream ended inside a frame".into()));
        }
        Ok(Bytes::new())
    }
}

/// A string header of `message`.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Appends the server-sent event of one decoded frame to `out`.
fn render(message: &Message, out: &mut Vec<u8>) -> Result<(), Corrupt> {
    match header(message, ":message-type").unwrap_or("event") {
        "exception" => {
            let kind = header(message, ":exception-type").unwrap_or("exception");
            let text = serde_json::from_slice::<serde_json::Value>(message.payload())
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(message.payload()).into_owned());
            error_event(kind, &text, out);
        }
        "error" => {
            let kind = header(message, ":error-code").unwrap_or("error");
            let text = header(message, ":error-message").unwrap_or("");
            error_event(kind, text, out);
        }
        _ => {
            let kind = header(message, ":event-type").unwrap_or("message");
            if kind == "chunk" {
                let inner = chunk_bytes(message.payload())?;
                let name = event_type(&inner)?;
                event(&name, &inner, out);
            } else {
                event(kind, message.payload(), out);
            }
        }
    }
    Ok(())
}

/// The model's own event inside an invoke `chunk` (`{"bytes":"<base64>"}`).
fn chunk_bytes(payload: &[u8]) -> Result<Vec<u8>, Corrupt> {
    #[derive(serde::Deserialize)]
    struct Part<'a> {
        #[serde(borrow)]
        bytes: std::borrow::Cow<'a, str>,
    }
    let part: Part<'_> = serde_json::from_slice(payload)
        .map_err(|_| Corrupt("an event-stream chunk without bytes".into()))?;
    base64::engine::general_purpose::STANDARD
        .decode(part.bytes.as_bytes())
        .map_err(|_| Corrupt("an event-stream chunk whose bytes are not base64".into()))
}

/// The `type` of a model's event (Anthropic's `message_start`, …): read off the front when the
/// event starts `{"type":"<name>"` (Anthropic's always do), else parsed.
fn event_type(json: &[u8]) -> Result<std::borrow::Cow<'_, str>, Corrupt> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    let front = json
        .strip_prefix(b"{\"type\":\"")
        .and_then(|rest| Some(&rest[..memchr::memchr(b'"', rest)?]))
        .filter(|name| name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_'))
        .and_then(|name| std::str::from_utf8(name).ok());
    if let Some(name) = front {
        return Ok(std::borrow::Cow::Borrowed(name));
    }
    serde_json::from_slice::<Typed>(json)
        .map(|t| std::borrow::Cow::Owned(t.kind))
        .map_err(|_| Corrupt("an event-stream chunk that is not a typed JSON event".into()))
}

/// `event: <name>\ndata: <json on one line>\n\n`. JSON holds line breaks only as
/// whitespace between tokens (inside strings they are escaped), so they become spaces.
fn event(name: &str, json: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let start = out.len();
    out.extend_from_slice(json);
    if memchr::memchr2(b'\n', b'\r', json).is_some() {
        for b in &mut out[start..] {
            if matches!(*b, b'\n' | b'\r') {
                *b = b' ';
            }
        }
    }
    out.extend_from_slice(b"\n\n");
}

/// Anthropic's error event for an exception frame.
fn error_event(kind: &str, message: &str, out: &mut Vec<u8>) {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    });
    event("error", body.to_string().as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let message = Message::new_from_parts(
            headers
                .iter()
                .map(|(n, v)| Header::new(n.to_string(), HeaderValue::String(v.to_string().into())))
                .collect(),
            Bytes::copy_from_slice(payload),
        );
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    fn chunk(json: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        frame(
            &[(":message-type", "event"), (":event-type", "chunk")],
            format!(r#"{{"bytes":"{b64}","p":"abc"}}"#).as_bytes(),
        )
    }

    #[test]
    fn invoke_chunks_become_anthropic_events_whatever_the_cuts() {
        let mut body = chunk(r#"{"type":"message_start","message":{"usage":{"input_tokens":3}}}"#);
        body.extend(chunk("{\"type\":\"message_stop\",\n\"x\":1}"));
        let want = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n\
                    event: message_stop\ndata: {\"type\":\"message_stop\", \"x\":1}\n\n";
        for cut in 0..body.len() {
            let mut r = EventStream::new();
            let mut got = r.feed(&body[..cut]).unwrap().to_vec();
            got.extend_from_slice(&r.feed(&body[cut..]).unwrap());
            got.extend_from_slice(&r.finish().unwrap());
            assert_eq!(String::from_utf8(got).unwrap(), want, "cut at {cut}");
        }
    }

    #[test]
    fn converse_events_and_exceptions() {
        let mut r = EventStream::new();
        let mut body = frame(
            &[(":message-type", "event"), (":event-type", "messageStart")],
            br#"{"role":"assistant"}"#,
        );
        body.extend(frame(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            br#"{"message":"Too many requests"}"#,
        ));
        let got = String::from_utf8(r.feed(&body).unwrap().to_vec()).unwrap();
        assert_eq!(
            got,
            "event: messageStart\ndata: {\"role\":\"assistant\"}\n\n\
             event: error\ndata: {\"error\":{\"message\":\"Too many requests\",\"type\":\"throttlingException\"},\"type\":\"error\"}\n\n"
        );
    }

    #[test]
    fn event_names_are_read_off_the_front_or_parsed() {
        assert_eq!(
            event_type(br#"{"type":"message_stop"}"#).unwrap(),
            "message_stop"
        );
        assert_eq!(
            event_type(br#"{ "index":0, "type":"ping"}"#).unwrap(),
            "ping"
        );
        assert!(event_type(br#"{"index":0}"#).is_err());
    }

    #[test]
    fn corrupt_and_cut_frames() {
        let mut body = chunk(r#"{"type":"ping"}"#);
        let last = body.len() - 1;
        body[last] ^= 1;
        assert!(EventStream::new().feed(&body).is_err());
        let body = chunk(r#"{"type":"ping"}"#);
        let mut r = EventStream::new();
        assert_eq!(r.feed(&body[..body.len() - 3]).unwrap(), Bytes::new());
        assert!(r.finish().is_err());
        let mut r = EventStream::new();
        assert!(r.feed(&[0xff, 0xff, 0xff, 0xff, 0, 0]).is_err());
    }
}
