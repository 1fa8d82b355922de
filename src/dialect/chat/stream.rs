//! The scanner of an OpenAI-compatible streaming chat completion passing through to a chat
//! client: Server-Sent Events of `data: {chat.completion.chunk}` ending in `data: [DONE]`.
//!
//! The gateway forwards every upstream chunk to the client unchanged and shows the same bytes
//! to [`Scanner::feed`] on the way, so that when the stream ends it knows the usage to meter,
//! whether any content reached the client, and whether the stream ended in an error.
//!
//! Why it is built the way it is:
//!
//! - **One decoder.** Events are read through [`crate::dialect::sse::Decoder`], as by every other
//!   scanner and translator: it keeps only the partial line between chunks and the event being
//!   read, and joins multi-line `data:`.
//! - **No JSON parsing on the hot path.** Nearly every event is a content delta; parsing each one
//!   would cost more than the proxying. `serde_json` runs only on the value after a `"usage"` key
//!   (found with `memchr::memmem`, normally once per stream) and on error events. Content is
//!   detected and measured by byte search.
//! - **Bounded memory.** A line or event longer than the cap ([`MAX_LINE_BYTES`] by default) is
//!   dropped and [`Scanner::overflowed`] is set, rather than letting an upstream grow our memory
//!   without bound.
//!
//! `event:` is only looked at to notice `event: error`. A chunk whose data holds
//! `"content_filter"` (found by byte search) is parsed to see whether a choice finished with
//! it ([`Scanner::refused`]).

use memchr::memchr2;
use memchr::memmem::Finder;

use crate::accounting::usage::{ServiceTier, Usage};
use crate::dialect::refusal;
use crate::dialect::sse::{self, Decoder};

/// The default cap on one line (and on one event's data): large enough for any real chunk
/// (a 1 MiB event is fine), small enough that a broken or hostile upstream cannot make the
/// gateway buffer without bound.
pub const MAX_LINE_BYTES: usize = crate::dialect::sse::MAX_EVENT_BYTES;

/// The longest error message kept from an upstream: enough for any real message, and a bound
/// on what ends up in logs.
const MAX_ERROR_BYTES: usize = 1024;

const USAGE_KEY: &[u8] = b"\"usage\"";
const CONTENT_KEY: &[u8] = b"\"content\"";
const TOOL_CALLS_KEY: &[u8] = b"\"tool_calls\"";
const CONTENT_FILTER_VALUE: &[u8] = b"\"content_filter\"";
const FINISH_REASON_KEY: &[u8] = b"\"finish_reason\"";

/// Where the `"content"` search of an event's data stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Carry {
    #[default]
    Search,
    /// Just after a `"content"` key, before its `:`.
    AfterKey,
    /// Just after `"content":`, before the value.
    AfterColon,
}

/// What the content search found in one event's data.
#[derive(Debug, Clone, Default)]
struct Event {
    /// A non-empty `"content"` string was seen.
    content: bool,
    /// Characters of the `"content"` strings.
    chars: u64,
    carry: Carry,
    /// The data ended inside a content string (the event is cut or not JSON).
    in_string: bool,
}

/// The incremental scanner: create one per streamed response, [`feed`](Scanner::feed) it every
/// chunk forwarded to the client, [`finish`](Scanner::finish) it at the end of the stream, then
/// read its public fields.
#[derive(Debug)]
pub struct Scanner {
    /// The last usage seen with non-null `prompt_tokens` and `completion_tokens`, whether its
    /// chunk's `choices` was empty (OpenAI's `include_usage`) or not (the chat API's shape).
    /// `"usage": null` in ordinary chunks is ignored.
    pub usage: Option<Usage>,
    /// `data: [DONE]` was seen: the upstream ended the stream properly.
    pub done: bool,
    /// A choice finished (a non-null `finish_reason`): the answer is whole even if a lenient
    /// upstream then closes without `[DONE]`.
    pub finished: bool,
    /// Data events dispatched, `[DONE]` excluded (error events included).
    pub events: u64,
    /// Events with a non-empty `"content"` string or non-empty `"tool_calls"`: whether anything
    /// the client would show reached it.
    pub content_events: u64,
    /// Total characters of the `"content"` string values (Unicode scalar values; an escape such
    /// as `\"` or `\u00e9` counts as one): the base of the estimate when an upstream sends no
    /// usage.
    pub content_chars: u64,
    /// Characters of the other generated text: reasoning, refusals, tool-call names and
    /// arguments ([`crate::accounting::estimate::generated_chars_besides_content`]).
    pub other_chars: u64,
    /// The message of an error event: data `{"error":{"message":…}}` (or `{"error":"…"}`), or
    /// an event named `error` (its JSON `error.message` or `message`, else its text).
    pub error: Option<String>,
    /// A choice finished with `finish_reason: "content_filter"`: the vendor's filter stopped
    /// the answer ([`crate::dialect::refusal`]).
    pub refused: bool,
    /// A line (or an event's data) outgrew the cap and was dropped.
    pub overflowed: bool,
    sse: Decoder,
    /// An event a translator decoded and found left without its blank line at the body's end
    /// ([`Scanner::last_event`]): taken by [`Scanner::finish`], as the scanner's own would be.
    last: Option<(Vec<u8>, Vec<u8>)>,
    usage_key: Finder<'static>,
    content_key: Finder<'static>,
    tool_calls_key: Finder<'static>,
    content_filter_value: Finder<'static>,
    finish_reason_key: Finder<'static>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner with the default line cap, [`MAX_LINE_BYTES`].
    pub fn new() -> Self {
        Self::with_line_cap(MAX_LINE_BYTES)
    }

    /// A scanner that drops lines (and event data) longer than `max_line` bytes.
    pub fn with_line_cap(max_line: usize) -> Self {
        Scanner {
            usage: None,
            done: false,
            finished: false,
            events: 0,
            content_events: 0,
            content_chars: 0,
            other_chars: 0,
            error: None,
            refused: false,
            overflowed: false,
            sse: Decoder::with_cap(max_line),
            last: None,
            usage_key: Finder::new(USAGE_KEY),
            content_key: Finder::new(CONTENT_KEY),
            tool_calls_key: Finder::new(TOOL_CALLS_KEY),
            content_filter_value: Finder::new(CONTENT_FILTER_VALUE),
            finish_reason_key: Finder::new(FINISH_REASON_KEY),
        }
    }

    /// Scans the next chunk of the body, cut anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.overflowed |= sse::feed(self, |s| &mut s.sse, chunk, Self::event);
    }

    /// Ends the stream. An event left without its blank line is dispatched if its data is
    /// `[DONE]` or complete JSON (an upstream that closes right after its last event loses
    /// nothing), and dropped if it was cut. Calling it again does nothing more.
    pub fn finish(&mut self) {
        self.overflowed |= sse::finish(self, |s| &mut s.sse, Self::event);
        if let Some((name, data)) = self.last.take() {
            if sse::is_whole(&data) {
                self.event(&name, &data);
            }
        }
    }

    /// Scans one event a stream translator decoded already (its `event:` name and its data):
    /// a translated stream's chat events are decoded once, by the door's leg, which hands
    /// each to the meter as well ([`crate::convert::SseTranslator::feed_metered`]). Counts as
    /// [`feed`](Scanner::feed) would for the event's bytes.
    pub fn decoded_event(&mut self, name: &[u8], data: &[u8]) {
        self.event(name, data);
    }

    /// The event a translator's decoder found left without its blank line at the body's end:
    /// kept, and taken by [`finish`](Scanner::finish) when whole, as one cut in
    /// [`feed`](Scanner::feed)'s input would be.
    pub fn last_event(&mut self, name: &[u8], data: &[u8]) {
        self.last = Some((name.to_vec(), data.to_vec()));
    }

    /// The bytes the scanner holds between chunks.
    pub fn retained(&self) -> usize {
        self.sse.retained()
    }

    /// One complete event.
    fn event(&mut self, name: &[u8], data: &[u8]) {
        let trimmed = data.trim_ascii();
        if trimmed == b"[DONE]" {
            self.done = true;
            return;
        }
        self.events += 1;
        let mut ev = Event::default();
        scan_content(&mut ev, &self.content_key, data);
        if ev.content || has_tool_calls(&self.tool_calls_key, data) {
            self.content_events += 1;
        }
        self.content_chars = self.content_chars.saturating_add(ev.chars);
        let other = crate::accounting::estimate::generated_chars_besides_content(data);
        self.other_chars = self.other_chars.saturating_add(other);
        if let Some(mut u) = scan_usage(&self.usage_key, data) {
            // OpenAI writes the tier that served the answer in every chunk; the usage chunk's
            // is read ("service_tier", Chat Completions chunk object).
            u.service_tier = service_tier(data);
            self.usage = Some(u);
        }
        if !self.finished && finish_reason_set(&self.finish_reason_key, data) {
            self.finished = true;
        }
        // Parsed only when the value is there (the finish chunk of a filtered answer).
        if self.content_filter_value.find(data).is_some() && refusal::chat(data) {
            self.refused = true;
        }
        let typed = name == b"error";
        if typed || starts_with_error_key(trimmed) {
            if let Some(message) = error_message(Some(data), typed) {
                self.error = Some(message);
            }
        }
    }
}

/// Whether an event's data has a `"finish_reason"` key with a value other than `null`.
fn finish_reason_set(key: &Finder<'_>, data: &[u8]) -> bool {
    let mut from = 0;
    while let Some(k) = data.get(from..).and_then(|d| key.find(d)).map(|k| k + from) {
        from = k + FINISH_REASON_KEY.len();
        let p = skip_ws(data, from);
        if data.get(p) != Some(&b':') {
            continue;
        }
        let p = skip_ws(data, p + 1);
        if data
            .get(p..)
            .is_some_and(|v| !v.is_empty() && !v.starts_with(b"null"))
        {
            return true;
        }
    }
    false
}

/// Whether data starts with `{"error"` (whitespace allowed around the `{`): only such data is
/// parsed as an error, so that content merely mentioning errors costs nothing.
fn starts_with_error_key(trimmed: &[u8]) -> bool {
    match trimmed.strip_prefix(b"{") {
        Some(rest) => rest.trim_ascii_start().starts_with(b"\"error\""),
        None => false,
    }
}

fn skip_ws(data: &[u8], mut p: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = data.get(p) {
        p += 1;
    }
    p
}

/// Finds the values of `"usage"` keys in an event's data and deserialises them, in place;
/// returns the last usage with non-null token counts. A `"usage"` found by byte search in
/// valid JSON is a real string token (an escaped quote inside a string would be `\"`), and one
/// followed by `:` is a key.
fn scan_usage(key: &Finder<'_>, data: &[u8]) -> Option<Usage> {
    let mut found = None;
    let mut from = 0;
    while let Some(k) = data.get(from..).and_then(|d| key.find(d)).map(|k| k + from) {
        from = k + USAGE_KEY.len();
        let mut p = skip_ws(data, from);
        if data.get(p) != Some(&b':') {
            continue;
        }
        p = skip_ws(data, p + 1);
        let Some(rest) = data.get(p..).filter(|r| !r.is_empty()) else {
            break;
        };
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Option<Usage>>();
        if let Some(Ok(u)) = values.next() {
            if u.is_some() {
                found = u;
            }
            from = p + values.byte_offset();
        }
    }
    found
}

/// The `"service_tier"` of an event's data when it is one billed apart (`flex`, `priority`),
/// by byte search: read only on the event that carries the usage.
fn service_tier(data: &[u8]) -> Option<ServiceTier> {
    const KEY: &[u8] = b"\"service_tier\"";
    let k = memchr::memmem::find(data, KEY)?;
    let mut p = skip_ws(data, k + KEY.len());
    if data.get(p) != Some(&b':') {
        return None;
    }
    p = skip_ws(data, p + 1);
    let rest = data.get(p..)?.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    ServiceTier::parse(std::str::from_utf8(&rest[..end]).ok()?)
}

/// Measures the `"content"` string values of an event's data, by byte search: adds their
/// characters to the event and marks it as content if one is non-empty.
fn scan_content(ev: &mut Event, key: &Finder<'_>, data: &[u8]) {
    let mut state = std::mem::take(&mut ev.carry);
    ev.in_string = false;
    let mut p = 0;
    loop {
        match state {
            Carry::Search => match data.get(p..).and_then(|d| key.find(d)) {
                Some(k) => {
                    p += k + CONTENT_KEY.len();
                    state = Carry::AfterKey;
                }
                None => return,
            },
            Carry::AfterKey => {
                p = skip_ws(data, p);
                match data.get(p) {
                    None => break,
                    Some(b':') => {
                        p += 1;
                        state = Carry::AfterColon;
                    }
                    Some(_) => state = Carry::Search,
                }
            }
            Carry::AfterColon => {
                p = skip_ws(data, p);
                match data.get(p) {
                    None => break,
                    Some(b'"') => {
                        let (chars, end, closed) = count_string(data, p + 1);
                        ev.chars = ev.chars.saturating_add(chars);
                        if chars > 0 {
                            ev.content = true;
                        }
                        if !closed {
                            ev.in_string = true;
                            return;
                        }
                        p = end;
                        state = Carry::Search;
                    }
                    // null, or a non-string value: not text the client shows as such
                    Some(_) => state = Carry::Search,
                }
            }
        }
    }
    ev.carry = state;
}

/// Counts the characters of the JSON string whose body starts at `start`, up to its closing
/// unescaped quote: UTF-8 scalar values, each escape (`\n`, `\"`, `\uXXXX`) as one. Returns
/// the count, the offset after the closing quote, and whether the string was closed.
fn count_string(data: &[u8], start: usize) -> (u64, usize, bool) {
    let mut chars = 0u64;
    let mut p = start;
    loop {
        let rest = data.get(p..).unwrap_or_default();
        let Some(k) = memchr2(b'"', b'\\', rest) else {
            return (chars + utf8_chars(rest), data.len(), false);
        };
        chars += utf8_chars(&rest[..k]);
        p += k;
        if data.get(p) == Some(&b'"') {
            return (chars, p + 1, true);
        }
        chars += 1;
        let step = if data.get(p + 1) == Some(&b'u') { 6 } else { 2 };
        if p + step > data.len() {
            return (chars, data.len(), false);
        }
        p += step;
    }
}

/// The characters of UTF-8 text: its bytes that are not continuation bytes (`10xxxxxx`).
fn utf8_chars(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count() as u64
}

/// Whether a data line has a `"tool_calls"` key whose value is a non-empty array or an object
/// (a tool call being streamed to the client), not `null` or `[]`.
fn has_tool_calls(key: &Finder<'_>, data: &[u8]) -> bool {
    let mut from = 0;
    while let Some(k) = data.get(from..).and_then(|d| key.find(d)) {
        from += k + TOOL_CALLS_KEY.len();
        let p = skip_ws(data, from);
        if data.get(p) != Some(&b':') {
            continue;
        }
        let p = skip_ws(data, p + 1);
        match data.get(p) {
            Some(b'{') => return true,
            Some(b'[') if data.get(skip_ws(data, p + 1)) != Some(&b']') => return true,
            _ => {}
        }
    }
    false
}

/// The message of an error event. `data` is its data when kept; `typed` says the event was
/// named `error`, in which case any data, or none, still signals an error.
fn error_message(data: Option<&[u8]>, typed: bool) -> Option<String> {
    let parsed = data.and_then(|d| serde_json::from_slice::<serde_json::Value>(d).ok());
    if let Some(v) = &parsed {
        let message = match v.get("error") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(e @ serde_json::Value::Object(_)) => Some(match e.get("message") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => e.to_string(),
            }),
            _ => match v.get("message") {
                Some(serde_json::Value::String(s)) if typed => Some(s.clone()),
                _ => None,
            },
        };
        if let Some(m) = message {
            return Some(truncate(m));
        }
    }
    if !typed {
        return None;
    }
    match data.map(|d| String::from_utf8_lossy(d.trim_ascii()).into_owned()) {
        Some(text) if !text.is_empty() => Some(truncate(text)),
        _ => Some("the upstream sent an `error` event".to_string()),
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::usage::estimate_tokens;
    use proptest::prelude::*;
    use serde_json::Value;

    /// A recorded-style stream: role chunk, 20 content chunks (unicode, escaped quotes, a
    /// `\u` escape, a backslash), the finish chunk, the `include_usage` chunk with empty
    /// `choices`, `[DONE]`. Ordinary chunks carry `"usage":null`, as OpenAI sends them when
    /// usage is requested.
    fn recorded() -> String {
        let head = r#"{"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_f85bea6784","#;
        let mut s = String::new();
        s.push_str(&format!(
            "data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
        for piece in CONTENT {
            s.push_str(&format!(
                "data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
            ));
        }
        s.push_str(&format!(
            "data: {head}\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"
        ));
        s.push_str(&format!(
            "data: {head}\"choices\":[],\"usage\":{{\"prompt_tokens\":27,\"completion_tokens\":31,\"total_tokens\":58,\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n"
        ));
        s.push_str("data: [DONE]\n\n");
        s
    }

    /// The content pieces, as they appear inside the JSON strings (escapes included).
    const CONTENT: [&str; 20] = [
        "Bonjour",
        " !",
        " Voici",
        " un",
        " \\\"résumé\\\"",
        " en",
        " 日本語",
        "：",
        " テスト",
        " 🚀",
        "\\n\\n",
        "- café",
        " \\u00e9t\\u00e9",
        " C:\\\\temp",
        " naïve",
        " Ünïcödé",
        "\\t",
        " 😀👍",
        " done",
        ".",
    ];

    const PIECE_CHARS: u64 =
        7 + 2 + 6 + 3 + 9 + 3 + 4 + 1 + 4 + 2 + 2 + 6 + 4 + 8 + 6 + 8 + 1 + 3 + 5 + 1;

    /// What a scan concluded, to compare runs.
    #[derive(Debug, PartialEq, Eq, Clone)]
    struct Outcome {
        usage: Option<Usage>,
        done: bool,
        events: u64,
        content_events: u64,
        content_chars: u64,
        error: Option<String>,
        refused: bool,
        overflowed: bool,
    }

    fn outcome(s: &Scanner) -> Outcome {
        Outcome {
            usage: s.usage,
            done: s.done,
            events: s.events,
            content_events: s.content_events,
            content_chars: s.content_chars,
            error: s.error.clone(),
            refused: s.refused,
            overflowed: s.overflowed,
        }
    }

    fn scan_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut s = Scanner::new();
        for p in pieces {
            s.feed(p);
        }
        s.finish();
        outcome(&s)
    }

    fn scan(bytes: &[u8]) -> Outcome {
        scan_pieces([bytes])
    }

    /// An independent oracle: parses every event's data with serde_json.
    fn oracle(stream: &str) -> Outcome {
        let normalized = stream.replace("\r\n", "\n").replace('\r', "\n");
        let mut o = Outcome {
            usage: None,
            done: false,
            events: 0,
            content_events: 0,
            content_chars: 0,
            error: None,
            refused: false,
            overflowed: false,
        };
        for block in normalized.split("\n\n").filter(|b| !b.is_empty()) {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let data = data.join("\n");
            if data == "[DONE]" {
                o.done = true;
                continue;
            }
            o.events += 1;
            let v: Value = serde_json::from_str(&data).unwrap();
            let mut content = false;
            for c in v["choices"].as_array().unwrap() {
                if let Some(text) = c["delta"]["content"].as_str() {
                    o.content_chars += text.chars().count() as u64;
                    content |= !text.is_empty();
                }
                o.refused |= c["finish_reason"] == "content_filter";
            }
            o.content_events += u64::from(content);
            if let Ok(u) = serde_json::from_value::<Usage>(v["usage"].clone()) {
                o.usage = Some(u);
            }
        }
        o
    }

    fn expected() -> Outcome {
        Outcome {
            usage: Some(Usage {
                prompt_tokens: 27,
                completion_tokens: 31,
                total_tokens: 58,
                ..Usage::default()
            }),
            done: true,
            events: 23,
            content_events: 20,
            content_chars: PIECE_CHARS,
            error: None,
            refused: false,
            overflowed: false,
        }
    }

    #[test]
    fn recorded_stream_matches_the_oracle_and_hand_counts() {
        let stream = recorded();
        assert_eq!(oracle(&stream), expected());
        assert_eq!(scan(stream.as_bytes()), expected());
    }

    #[test]
    fn recorded_stream_at_every_split_point() {
        let stream = recorded();
        let b = stream.as_bytes();
        for i in 0..=b.len() {
            assert_eq!(scan_pieces([&b[..i], &b[i..]]), expected(), "split at {i}");
        }
    }

    #[test]
    fn recorded_stream_byte_by_byte() {
        let stream = recorded();
        assert_eq!(scan_pieces(stream.as_bytes().chunks(1)), expected());
        let crlf = stream.replace('\n', "\r\n");
        assert_eq!(scan_pieces(crlf.as_bytes().chunks(1)), expected());
        let cr = stream.replace('\n', "\r");
        assert_eq!(scan_pieces(cr.as_bytes().chunks(1)), expected());
    }

    fn split_at_cuts(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts {
            out.push(bytes[at..c].to_vec());
            at = c;
        }
        out.push(bytes[at..].to_vec());
        out
    }

    proptest! {
        #[test]
        fn random_splits_of_all_line_end_variants(
            cuts in prop::collection::vec(any::<usize>(), 0..40),
            variant in 0..3usize,
        ) {
            let lf = recorded();
            let stream = match variant {
                0 => lf,
                1 => lf.replace('\n', "\r\n"),
                _ => lf.replace('\n', "\r"),
            };
            let pieces = split_at_cuts(stream.as_bytes(), &cuts);
            prop_assert_eq!(scan_pieces(pieces.iter().map(Vec::as_slice)), expected());
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut s = Scanner::with_line_cap(256);
            for p in split_at_cuts(&bytes, &cuts) {
                s.feed(&p);
            }
            s.finish();
        }

        #[test]
        fn sse_shaped_garbage_never_panics(
            parts in prop::collection::vec(prop::sample::select(vec![
                "data:", "data: ", "{", "}", "[", "]", "\"usage\"", ":", "\"content\"",
                "\"tool_calls\"", "\"error\"", "\"", "\\", "\\u12", "null", "1", "\n", "\r",
                "\r\n", "[DONE]", "event: error\n", ": c\n", "é", "\u{FEFF}", " ",
                "{\"prompt_tokens\":", "\"completion_tokens\":2",
            ]), 0..80),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let bytes = parts.concat().into_bytes();
            let mut s = Scanner::with_line_cap(64);
            for p in split_at_cuts(&bytes, &cuts) {
                s.feed(&p);
            }
            s.finish();
        }
    }

    fn run(stream: &str) -> Scanner {
        let mut s = Scanner::new();
        s.feed(stream.as_bytes());
        s.finish();
        s
    }

    #[test]
    fn a_finished_choice_is_seen_whatever_the_spacing_and_null_is_not_one() {
        let open = "data: {\"choices\":[{\"delta\":{\"content\":\"finish_reason\"},\"finish_reason\":null}]}\n\n";
        assert!(
            !run(open).finished,
            "null, and the words in content, are not a finish"
        );
        let spaced = "data: {\"choices\":[{\"delta\":{},\"finish_reason\" :  \"length\"}]}\n\n";
        assert!(run(&format!("{open}{spaced}")).finished);
        // The last event left without its blank line counts once the stream is finished.
        assert!(run("data: {\"choices\":[{\"finish_reason\":\"stop\"}]}").finished);
        assert!(!run(open).done);
    }

    #[test]
    fn usage_in_a_chunk_with_choices_the_seed_shape() {
        let s = run(concat!(
            "data: {\"id\":\"9f62\",\"object\":\"chat.completion.chunk\",\"created\":1692154202,\"model\":\"claude-2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\" I\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"9f62\",\"object\":\"chat.completion.chunk\",\"created\":1692154202,\"model\":\"claude-2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}\n\n",
            "data: [DONE]\n\n",
        ));
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 9,
                total_tokens: 21,
                ..Usage::default()
            })
        );
        assert!(s.done);
        assert_eq!((s.events, s.content_events, s.content_chars), (2, 1, 2));
    }

    #[test]
    fn usage_null_and_null_counts_are_ignored_and_the_last_usage_wins() {
        let s = run(concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":null,\"completion_tokens\":5}}\n\n",
        ));
        // total defaults to prompt + completion
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7,
                ..Usage::default()
            })
        );
        let s = run(concat!(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":40,\"total_tokens\":71}}\n\n",
        ));
        assert_eq!(s.usage.map(|u| u.total_tokens), Some(71));
        assert!(!s.done);
    }

    #[test]
    fn usage_as_a_string_value_is_not_a_key() {
        let s = run("data: {\"choices\":[{\"delta\":{\"content\":\"the \\\"usage\\\": {}\"}}],\"kind\":\"usage\"}\n\n");
        assert_eq!(s.usage, None);
        assert_eq!(s.content_chars, 15);
    }

    #[test]
    fn comments_between_events() {
        let s = run(concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n",
            ": keep-alive\n",
            "\n",
            ":\n\n",
            ": OPENROUTER PROCESSING\r\n\r\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        ));
        assert_eq!((s.events, s.content_events, s.content_chars), (2, 1, 2));
        assert_eq!(s.usage.map(|u| u.total_tokens), Some(2));
        assert!(s.done);
    }

    #[test]
    fn event_error_with_json_data() {
        let s = run(concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ));
        assert_eq!(s.error.as_deref(), Some("Overloaded"));
        assert_eq!((s.events, s.content_events), (2, 1));
        assert!(!s.done);

        let s = run("event: error\ndata: {\"message\":\"rate limited\"}\n\n");
        assert_eq!(s.error.as_deref(), Some("rate limited"));
        let s = run("event: error\ndata: upstream went away\n\n");
        assert_eq!(s.error.as_deref(), Some("upstream went away"));
        // several data lines are joined with \n
        let s = run("event: error\ndata: upstream\ndata:went away\n\n");
        assert_eq!(s.error.as_deref(), Some("upstream\nwent away"));
        // an event named otherwise is no error
        let s = run("event: message\ndata: {\"message\":\"fine\"}\n\n");
        assert_eq!(s.error, None);
    }

    #[test]
    fn error_data_without_event_name() {
        let s = run(concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
            "data: { \"error\":{\"message\":\"upstream reset the connection\",\"type\":\"upstream_error\",\"code\":\"upstream_error\"}}\n\n",
        ));
        assert_eq!(s.error.as_deref(), Some("upstream reset the connection"));
        let s = run("data: {\"error\":\"plain\"}\n\n");
        assert_eq!(s.error.as_deref(), Some("plain"));
        // content about errors is not an error
        let s = run("data: {\"choices\":[{\"delta\":{\"content\":\"{\\\"error\\\":1}\"}}]}\n\n");
        assert_eq!(s.error, None);
        assert_eq!(s.content_chars, 11);
        // a multi-line error event is kept whole
        let s = run("data: {\"error\":\ndata: {\"message\":\"two lines\"}}\n\n");
        assert_eq!(s.error.as_deref(), Some("two lines"));
    }

    #[test]
    fn multi_line_data_json() {
        let s = run(concat!(
            "data: {\"usage\":\n",
            "data: {\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n",
        ));
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 1,
                completion_tokens: 2,
                total_tokens: 3,
                ..Usage::default()
            })
        );
        assert_eq!(s.events, 1);

        // usage on a later line, the key and its value on different lines, content too
        let s = run(concat!(
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\"\n",
            "data: :\n",
            "data: \"hey\"}}],\n",
            "data: \"usage\"\n",
            "data: : {\"prompt_tokens\":5,\n",
            "data: \"completion_tokens\":6, \"total_tokens\":11}\n",
            "data: }\n\n",
        ));
        assert_eq!(s.usage.map(|u| u.total_tokens), Some(11));
        assert_eq!((s.events, s.content_events, s.content_chars), (1, 1, 3));

        // [DONE] on one of several lines is not [DONE]
        let s = run("data: [DONE]\ndata: x\n\n");
        assert!(!s.done);
        assert_eq!(s.events, 1);
    }

    #[test]
    fn cr_at_chunk_end_then_lf_is_one_line_end() {
        let mut s = Scanner::new();
        s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r");
        s.feed(b"\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\r\n\r\n");
        s.finish();
        // two data lines of one event (a second line end would have dispatched the first alone)
        assert_eq!((s.events, s.content_events, s.content_chars), (1, 1, 2));

        let mut s = Scanner::new();
        s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r");
        s.feed(b"\r");
        s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\r\r");
        s.finish();
        assert_eq!((s.events, s.content_chars), (2, 2));
    }

    #[test]
    fn field_syntax() {
        // no space after the colon; a bare `data` is a data line with an empty value
        let s = run("data:{\"choices\":[{\"delta\":{\"content\":\"ab\"}}]}\n\ndata\n\nid: 7\nretry: 100\n\n");
        assert_eq!((s.events, s.content_chars), (2, 2));
        // no space before [DONE] either
        let s = run("data:[DONE]\n\n");
        assert!(s.done);
        assert_eq!(s.events, 0);
        // unknown fields and a `data` prefix that is not the field are ignored
        let s = run("datax: {\"choices\":[]}\nfoo\n\n");
        assert_eq!(s.events, 0);
        // a BOM at the start of the stream
        let s = run("\u{FEFF}data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n");
        assert_eq!(s.content_chars, 1);
    }

    #[test]
    fn content_detection() {
        let s = run(concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":null}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":null}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"content\\\":\\\"x\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"logprobs\":{\"content\":[{\"token\":\"x\"}]}}]}\n\n",
        ));
        assert_eq!((s.events, s.content_events, s.content_chars), (8, 3, 1));
    }

    #[test]
    fn ten_thousand_chunks() {
        let mut chunks: Vec<String> = (0..10_000)
            .map(|i| format!("data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"w{i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"))
            .collect();
        chunks.push("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":10000,\"total_tokens\":10009}}\n\n".into());
        chunks.push("data: [DONE]\n\n".into());
        let expected_chars: u64 = (0..10_000u64).map(|i| 2 + i.to_string().len() as u64).sum();
        let mut s = Scanner::new();
        for c in &chunks {
            s.feed(c.as_bytes());
        }
        s.finish();
        assert_eq!(s.events, 10_001);
        assert_eq!(s.content_events, 10_000);
        assert_eq!(s.content_chars, expected_chars);
        assert_eq!(s.usage.map(|u| u.completion_tokens), Some(10_000));
        assert!(s.done && !s.overflowed);
        assert!(s.retained() <= 2 * crate::dialect::sse::RETAIN_BYTES);
    }

    #[test]
    fn one_mib_event_in_seven_pieces() {
        let text: String = "aé日😀".repeat(1 << 18); // 1 MiB of chars, 2.5 MiB of bytes
        let stream = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":2}}}}\n\ndata: [DONE]\n\n"
        );
        let b = stream.as_bytes();
        let step = b.len() / 7 + 1;
        let mut s = Scanner::new();
        for piece in b.chunks(step) {
            s.feed(piece);
        }
        s.finish();
        assert_eq!(s.content_chars, 1 << 20);
        assert_eq!((s.events, s.content_events), (2, 1));
        assert_eq!(s.usage.map(|u| u.total_tokens), Some(3));
        assert!(s.done && !s.overflowed);
        // the big line's buffer is not kept for the rest of the stream
        assert!(s.retained() <= 2 * crate::dialect::sse::RETAIN_BYTES);
    }

    #[test]
    fn overflowing_line_is_dropped_and_the_stream_goes_on() {
        let big = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "x".repeat(5000)
        );
        let tail = "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let stream = format!("{big}{tail}");
        for step in [1, 7, 1000, stream.len()] {
            let mut s = Scanner::with_line_cap(1024);
            for piece in stream.as_bytes().chunks(step) {
                s.feed(piece);
            }
            s.finish();
            assert!(s.overflowed, "step {step}");
            assert!(s.retained() <= 2048);
            assert_eq!((s.events, s.content_chars), (2, 2), "step {step}");
            assert_eq!(s.usage.map(|u| u.total_tokens), Some(2));
            assert!(s.done);
        }
        // under the cap nothing overflows
        let mut s = Scanner::with_line_cap(1 << 20);
        s.feed(stream.as_bytes());
        assert!(!s.overflowed);
        assert_eq!(s.content_chars, 5002);
    }

    #[test]
    fn finish_dispatches_a_complete_last_event_without_its_blank_line() {
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}";
        for stream in [
            usage.to_string(),
            format!("{usage}\n"),
            format!("{usage}\r"),
        ] {
            let mut s = Scanner::new();
            s.feed(stream.as_bytes());
            assert_eq!(s.events, 0);
            s.finish();
            assert_eq!(s.events, 1, "{stream:?}");
            assert_eq!(s.usage.map(|u| u.total_tokens), Some(5));
            s.finish();
            assert_eq!(s.events, 1, "finish twice");
        }
        let s = run("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]");
        assert!(s.done);
        assert_eq!(s.events, 1);
        // a multi-line usage value completed on the last, unterminated line
        let s = run("data: {\"usage\":\ndata: {\"prompt_tokens\":1,\"completion_tokens\":1}}");
        assert_eq!(s.usage.map(|u| u.total_tokens), Some(2));
    }

    #[test]
    fn finish_drops_a_cut_last_event() {
        for cut in [
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel",
            "data: {\"choices\":[{\"delta\":{\"content\":\"}",
            "data: {\"id\":\"a}",
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\n",
            "data: {\"choices\":[],\"usage\":\ndata: {\"prompt_tokens\":2,\"completion_tokens\":3}",
            "data: [DON",
            "data: {\"error\":{\"message\":\"x\"}",
        ] {
            let s = run(&format!("data: {{\"choices\":[]}}\n\n{cut}"));
            assert_eq!(s.events, 1, "{cut:?}");
            assert_eq!(
                (s.usage, s.done, &s.error, s.content_chars),
                (None, false, &None, 0),
                "{cut:?}"
            );
        }
    }

    #[test]
    fn garbage_never_panics_and_counts_nothing_it_should_not() {
        for g in [
            "data: {\"usage\"",
            "data: {\"usage\":",
            "data: {\"usage\":{\"prompt_tokens\":\"x\",\"completion_tokens\":1}}\n\n",
            "data: {\"usage\":[1,2]}\n\n",
            "data: {\"usage\":-1}\n\n",
            "data: \"content\":\"\\u12",
            "data: \"content\":\"\\",
            "data: \"tool_calls\":[",
            "data: {\"error\":}\n\n",
            "\0\u{1}\u{7f}\n\n\r\r\n:::\n\ndata:\n\n",
            "event: error\n\n",
            "data: }}}]]]\n\n",
        ] {
            let s = run(g);
            assert_eq!(s.usage, None, "{g:?}");
            assert_eq!(s.error, None, "{g:?}");
        }
        let mut s = Scanner::new();
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for piece in noise.chunks(333) {
            s.feed(piece);
        }
        s.finish();
    }

    #[test]
    fn estimate_tokens_rounds_up() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(4), 1);
        assert_eq!(estimate_tokens(5), 2);
        assert_eq!(estimate_tokens(PIECE_CHARS), PIECE_CHARS.div_ceil(4));
        assert_eq!(estimate_tokens(u64::MAX), u64::MAX / 4 + 1);
    }

    #[test]
    fn usage_deserializes_with_a_default_total() {
        let u: Usage =
            serde_json::from_str(r#"{"prompt_tokens":12,"completion_tokens":9}"#).unwrap();
        assert_eq!(u.total_tokens, 21);
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":12,"completion_tokens":9,"total_tokens":null}"#,
        )
        .unwrap();
        assert_eq!(u.total_tokens, 21);
        assert!(serde_json::from_str::<Usage>(r#"{"prompt_tokens":12}"#).is_err());
    }

    /// The issue's example: 40 reasoning chunks of 50 characters and "Yes".
    #[test]
    fn a_stream_counts_reasoning_at_every_cut() {
        let mut stream = String::new();
        for _ in 0..40 {
            let piece = "x".repeat(50);
            stream.push_str(&format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"reasoning_content\":\"{piece}\"}}}}]}}\n\n"
            ));
        }
        stream.push_str(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yes\"}}]}\r\n\r\n",
        );
        stream.push_str("data: [DONE]");
        for cut in [1, 7, 64, 1000, stream.len()] {
            let mut s = Scanner::new();
            for piece in stream.as_bytes().chunks(cut) {
                s.feed(piece);
            }
            s.finish();
            assert_eq!((s.content_chars, s.other_chars), (3, 2000), "cut {cut}");
        }
        assert_eq!(estimate_tokens(3 + 2000), 501);
    }

    /// A filtered answer: content, then a finish chunk with `content_filter`; at every cut.
    #[test]
    fn a_content_filter_finish_is_seen_at_every_cut() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once upon\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for cut in [1, 7, 64, stream.len()] {
            let mut s = Scanner::new();
            for piece in stream.as_bytes().chunks(cut) {
                s.feed(piece);
            }
            s.finish();
            assert!(s.refused, "cut {cut}");
            assert_eq!(s.content_events, 1);
        }
        assert_eq!(oracle(stream).refused, scan(stream.as_bytes()).refused);
        // The words in content, or a finish that is not the filter's, are no refusal.
        let fine = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\\"content_filter\\\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        );
        assert!(!scan(fine.as_bytes()).refused);
    }
}
