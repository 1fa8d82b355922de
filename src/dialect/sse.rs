//! The one Server-Sent Events decoder: every stream scanner ([`crate::dialect`]) and every
//! stream translator ([`crate::convert`]) reads vendor streams through [`Decoder`].
//!
//! The rules followed are the WHATWG ones: lines end in `\n`, `\r\n` or `\r` (a `\r` ending
//! one chunk and a `\n` starting the next are one line end); a blank line dispatches the event;
//! `data:` takes an optional single leading space and several `data:` lines of one event are
//! joined with `\n`; lines starting with `:` are comments (keep-alives); a line with no colon is
//! a field name with an empty value; `id:`, `retry:` and unknown fields are ignored; a UTF-8 BOM
//! at the start of the stream is dropped.
//!
//! Memory is bounded: only the unterminated line between chunks and the event being read are
//! kept, each capped at [`MAX_EVENT_BYTES`]; what outgrows the cap is dropped and
//! [`Decoder::overflowed`] is set, so a broken or hostile upstream cannot grow the gateway's
//! memory without bound.

use memchr::{memchr, memchr2};

/// The cap on one line (and one event's data): any real event fits (a 1 MiB event is fine),
/// and a broken upstream cannot make the gateway buffer without bound.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// A buffer whose capacity grew past this is freed after use instead of being kept for the
/// next line or event, so that one huge event does not pin its memory for the whole stream.
pub const RETAIN_BYTES: usize = 64 * 1024;

/// An incremental decoder of Server-Sent Events (WHATWG rules: `\n`, `\r\n` or `\r` line ends,
/// one split across chunks included; `data:` lines joined by `\n`; `:` comments; a blank line
/// dispatches). It keeps only the unterminated line between chunks and the event being read.
#[derive(Debug)]
pub struct Decoder {
    /// The cap on one line and on one event's data.
    cap: usize,
    partial: Vec<u8>,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    /// The last chunk ended in `\r`: a `\n` starting the next one ends no new line.
    after_cr: bool,
    started: bool,
    name: Vec<u8>,
    data: Vec<u8>,
    data_lines: usize,
    /// The event's data outgrew the cap: it is not dispatched.
    lost: bool,
    /// The event was handed out: clear it before reading on.
    dispatched: bool,
    /// A line or an event was dropped for its size.
    pub overflowed: bool,
}

/// One decoded event: its `event:` name (empty when none) and its data.
#[derive(Debug, PartialEq)]
pub struct Event<'d> {
    pub name: &'d [u8],
    pub data: &'d [u8],
}

/// Feeds `chunk` to the decoder a stream scanner keeps (`decoder` says where), handing each
/// complete event's name and data to the scanner's `on_event`. Returns whether a line or an
/// event was dropped for its size so far.
pub fn feed<S>(
    scanner: &mut S,
    decoder: fn(&mut S) -> &mut Decoder,
    chunk: &[u8],
    on_event: fn(&mut S, &[u8], &[u8]),
) -> bool {
    // The decoder is taken out while the scanner handles events: both are borrowed mutably.
    let mut sse = std::mem::take(decoder(scanner));
    let mut rest = chunk;
    while let Some(ev) = sse.next_event(&mut rest) {
        on_event(scanner, ev.name, ev.data);
    }
    let overflowed = sse.overflowed;
    *decoder(scanner) = sse;
    overflowed
}

/// Ends a scanner's stream: an event left without its blank line is handed over when its data
/// is whole (`[DONE]` or complete JSON: an upstream that closes right after its last event
/// loses nothing), and dropped when it was cut. Returns [`feed`]'s `overflowed`.
pub fn finish<S>(
    scanner: &mut S,
    decoder: fn(&mut S) -> &mut Decoder,
    on_event: fn(&mut S, &[u8], &[u8]),
) -> bool {
    let mut sse = std::mem::take(decoder(scanner));
    if let Some(ev) = sse.finish() {
        if is_whole(ev.data) {
            on_event(scanner, ev.name, ev.data);
        }
    }
    let overflowed = sse.overflowed;
    *decoder(scanner) = sse;
    overflowed
}

/// Whether the data of an event left without its blank line at the body's end is whole:
/// `[DONE]` or complete JSON (a cut one is dropped). What [`finish`] dispatches.
pub fn is_whole(data: &[u8]) -> bool {
    data.trim_ascii() == b"[DONE]" || serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::with_cap(MAX_EVENT_BYTES)
    }
}

impl Decoder {
    /// A decoder that drops lines and events longer than `cap` bytes.
    pub fn with_cap(cap: usize) -> Decoder {
        Decoder {
            cap,
            partial: Vec::new(),
            discarding: false,
            after_cr: false,
            started: false,
            name: Vec::new(),
            data: Vec::new(),
            data_lines: 0,
            lost: false,
            dispatched: false,
            overflowed: false,
        }
    }

    /// The next complete event in `input`, advancing `input` past it; `None` when `input` is
    /// used up (its unterminated end is kept for the next chunk).
    pub fn next_event(&mut self, input: &mut &[u8]) -> Option<Event<'_>> {
        self.reset_if_dispatched();
        let mut buf: &[u8] = input;
        let mut found = false;
        while !buf.is_empty() && !found {
            if std::mem::take(&mut self.after_cr) && buf[0] == b'\n' {
                buf = &buf[1..];
                continue;
            }
            let Some(i) = memchr2(b'\n', b'\r', buf) else {
                self.keep_partial(buf);
                buf = &[];
                break;
            };
            let mut next = i + 1;
            if buf[i] == b'\r' {
                match buf.get(i + 1) {
                    Some(b'\n') => next += 1,
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            found = self.end_line(&buf[..i]);
            buf = &buf[next..];
        }
        *input = buf;
        found.then(|| self.event())
    }

    /// Ends the input: the unterminated last line counts as a line, and an event left without
    /// its blank line is handed out (the translator decides whether its data is complete).
    pub fn finish(&mut self) -> Option<Event<'_>> {
        self.reset_if_dispatched();
        self.after_cr = false;
        if !std::mem::take(&mut self.discarding) && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
        if self.data_lines > 0 && !self.lost {
            self.dispatched = true;
            return Some(self.event());
        }
        self.reset_if_dispatched();
        None
    }

    fn event(&self) -> Event<'_> {
        Event {
            name: &self.name,
            data: &self.data,
        }
    }

    /// The bytes held between chunks (buffers' capacity), for tests of memory retention.
    pub fn retained(&self) -> usize {
        self.partial.capacity() + self.data.capacity() + self.name.capacity()
    }

    fn reset_if_dispatched(&mut self) {
        if std::mem::take(&mut self.dispatched) {
            self.name.clear();
            self.data.clear();
            if self.data.capacity() > RETAIN_BYTES {
                self.data = Vec::new();
            }
            self.data_lines = 0;
            self.lost = false;
        }
    }

    fn keep_partial(&mut self, bytes: &[u8]) {
        if self.discarding {
            return;
        }
        if self.partial.len() + bytes.len() > self.cap {
            self.overflowed = true;
            self.discarding = true;
            self.partial = Vec::new();
            return;
        }
        self.partial.extend_from_slice(bytes);
    }

    /// A line ended; `tail` is its part in this chunk. Returns whether an event is ready.
    fn end_line(&mut self, tail: &[u8]) -> bool {
        if std::mem::take(&mut self.discarding) {
            return false;
        }
        if self.partial.is_empty() {
            return self.line(tail);
        }
        if self.partial.len() + tail.len() > self.cap {
            self.overflowed = true;
            self.partial = Vec::new();
            return false;
        }
        let mut line = std::mem::take(&mut self.partial);
        line.extend_from_slice(tail);
        let ready = self.line(&line);
        if line.capacity() <= RETAIN_BYTES {
            line.clear();
            self.partial = line;
        }
        ready
    }

    /// One complete line, without its line end. Returns whether it dispatched an event.
    fn line(&mut self, mut line: &[u8]) -> bool {
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            let ready = self.data_lines > 0 && !self.lost;
            self.dispatched = true;
            if !ready {
                self.reset_if_dispatched();
            }
            return ready;
        }
        let (field, value) = match memchr(b':', line) {
            Some(0) => return false,
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => self.data_line(value),
            b"event" => {
                self.name.clear();
                self.name.extend_from_slice(value);
            }
            _ => {}
        }
        false
    }

    fn data_line(&mut self, value: &[u8]) {
        self.data_lines += 1;
        if self.lost {
            return;
        }
        if self.data.len() + value.len() + 1 > self.cap {
            self.overflowed = true;
            self.lost = true;
            self.data = Vec::new();
            return;
        }
        if self.data_lines > 1 {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `input` fed in one piece, then cut at `cuts`.
    fn decode(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let mut push = |e: Event<'_>| {
            out.push((
                String::from_utf8_lossy(e.name).into_owned(),
                String::from_utf8_lossy(e.data).into_owned(),
            ))
        };
        for p in pieces {
            let mut rest = *p;
            while let Some(e) = d.next_event(&mut rest) {
                push(e);
            }
        }
        if let Some(e) = d.finish() {
            push(e);
        }
        out
    }

    #[test]
    fn decoder_follows_the_sse_rules_at_every_cut() {
        let stream = b"\xEF\xBB\xBF: comment\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\ndata: x\rretry: 5\r\rdata: y\n\n\n\nevent: lone\n\ndata: last";
        let want = vec![
            ("a".to_string(), "1\n2".to_string()),
            (String::new(), "x".to_string()),
            (String::new(), "y".to_string()),
            (String::new(), "last".to_string()),
        ];
        assert_eq!(decode(&[stream]), want);
        for i in 0..=stream.len() {
            assert_eq!(decode(&[&stream[..i], &stream[i..]]), want, "cut at {i}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode(&bytes), want);
    }

    #[test]
    fn decoder_name_does_not_leak_into_the_next_event() {
        let got = decode(&[b"event: error\ndata: 1\n\ndata: 2\n\n"]);
        assert_eq!(got[1].0, "");
    }
}
