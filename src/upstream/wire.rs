//! HTTP/1.1 on the wire to a vendor (RFC 9112): the request written in one piece, the
//! answer's head parsed by `httparse`, and its body framed by its length, by chunks or by the
//! connection's end.
//!
//! The gateway speaks only HTTP/1.1 to vendors, one request at a time per connection; a vendor
//! that breaks the framing (a bad chunk, two different lengths, a head over
//! [`HEAD_LIMIT`]) fails the attempt as a reset.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};

/// The largest answer head read; a longer one is not HTTP the gateway accepts.
pub const HEAD_LIMIT: usize = 64 * 1024;
/// The most headers an answer head may have (pingora's own client takes as many).
const MAX_HEADERS: usize = 256;
/// The longest chunk-size line (with its extensions) or trailer line.
const LINE_LIMIT: usize = 4 * 1024;
/// A body up to this size is written with its head in one piece; a larger one after it.
pub const COALESCE_LIMIT: usize = 16 * 1024;

/// The framing broke: the attempt fails as a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The request line and headers, then the empty line; `body` follows when it is small.
pub fn encode_request(head: &RequestHeader, body: &[u8], out: &mut Vec<u8>) {
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    out.reserve(256 + head.headers.len() * 48 + body.len().min(COALESCE_LIMIT));
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if body.len() <= COALESCE_LIMIT {
        out.extend_from_slice(body);
    }
}

/// An answer's head read from the start of `buf`.
pub struct Head {
    pub head: ResponseHeader,
    /// Its length in `buf`.
    pub len: usize,
    /// Whether the connection may carry another request after this answer.
    pub keep_alive: bool,
}

/// Parses an answer head at the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Malformed> {
    // Not parsed before its end came: a head that trickles in is not parsed again after
    // every read. It ends with an empty line (CRLF, or a bare LF: RFC 9112 §2.2).
    let end = memchr::memmem::find(buf, b"\n\r\n").or_else(|| memchr::memmem::find(buf, b"\n\n"));
    match end {
        None if buf.len() < HEAD_LIMIT => return Ok(None),
        None => return Err(Malformed),
        Some(_) => {}
    }
    // Filled by the parser as it goes: no 256 headers set up for every answer.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    // As pingora's own client: an obsolete line folding and a space before a header's colon
    // are taken from a vendor (RFC 9112 §5.2, §5.1 allow a recipient to).
    let mut parser = httparse::ParserConfig::default();
    parser.allow_obsolete_multiline_headers_in_responses(true);
    parser.allow_spaces_after_header_name_in_responses(true);
    let len = match parser.parse_response_with_uninit_headers(&mut resp, buf, &mut slots) {
        // A head that came whole in one read is held to the limit too.
        Ok(httparse::Status::Complete(len)) if len <= HEAD_LIMIT => len,
        Ok(httparse::Status::Partial) if buf.len() < HEAD_LIMIT => return Ok(None),
        Ok(_) | Err(_) => return Err(Malformed),
    };
    let status = http::StatusCode::from_u16(resp.code.ok_or(Malformed)?).map_err(|_| Malformed)?;
    // A plain `http` head, headers in by their parsed names (as `crate::gateway::response_headers`
    // builds the client's): no pingora map of header-name cases.
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.headers.reserve(resp.headers.len());
    // The head copied once; each value is a slice of that copy (one allocation for them all,
    // and the client's head shares them: `crate::gateway::response_headers`).
    let raw = bytes::Bytes::copy_from_slice(&buf[..len]);
    for h in resp.headers.iter() {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Malformed)?;
        let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
        parts.headers.append(
            name,
            unfold(h.value, || raw.slice(start..start + h.value.len()))?,
        );
    }
    let http11 = resp.version == Some(1);
    parts.version = if http11 {
        http::Version::HTTP_11
    } else {
        http::Version::HTTP_10
    };
    let keep_alive = http11 && !has_token(&parts.headers, CONNECTION, "close");
    Ok(Some(Head {
        head: ResponseHeader::from(parts),
        len,
        keep_alive,
    }))
}

/// A header value with each obsolete line folding (CRLF and its spaces) replaced by spaces
/// (RFC 9112 §5.2); a value with another control byte is refused. `shared` gives the same
/// bytes as `value`, shared with the head's copy (taken when nothing is to be replaced).
fn unfold(
    value: &[u8],
    shared: impl FnOnce() -> bytes::Bytes,
) -> Result<http::HeaderValue, Malformed> {
    if !value.iter().any(|&b| b == b'\r' || b == b'\n') {
        return http::HeaderValue::from_maybe_shared(shared()).map_err(|_| Malformed);
    }
    let value: Vec<u8> = value
        .iter()
        .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect();
    http::HeaderValue::from_bytes(&value).map_err(|_| Malformed)
}

/// Whether a comma-separated header (`Connection`, `Transfer-Encoding`) lists `token`.
fn has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How an answer's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the vendor closes the connection (which then cannot be kept).
    Close,
}

impl Framing {
    /// The framing of an answer to a POST: `Transfer-Encoding` first, then `Content-Length`
    /// (differing lengths are refused), else the connection's end.
    pub fn of(head: &ResponseHeader) -> Result<Framing, Malformed> {
        let status = head.status.as_u16();
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(Framing::Empty);
        }
        let headers = &head.headers;
        if headers.contains_key(TRANSFER_ENCODING) {
            let last = headers
                .get_all(TRANSFER_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|t| !t.is_empty());
            return Ok(match last {
                Some(t) if t.eq_ignore_ascii_case("chunked") => Framing::Chunked,
                _ => Framing::Close,
            });
        }
        let mut length = None;
        for value in headers.get_all(CONTENT_LENGTH) {
            for part in value.to_str().map_err(|_| Malformed)?.split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Malformed);
                }
                let n: u64 = part.parse().map_err(|_| Malformed)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Malformed);
                }
                length = Some(n);
            }
        }
        Ok(length.map_or(Framing::Close, Framing::Length))
    }

    /// Whether the connection may be reused after such a body (a `Transfer-Encoding` with a
    /// `Content-Length` too is read by its chunks, but the connection is not kept).
    pub fn reusable(self, head: &ResponseHeader) -> bool {
        match self {
            Framing::Close => false,
            Framing::Chunked => !head.headers.contains_key(CONTENT_LENGTH),
            Framing::Empty | Framing::Length(_) => true,
        }
    }
}

/// What the body decoder made of the bytes it has.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// More bytes are needed.
    More,
    End,
}

/// Where the decoder stands in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a known length.
    Length(u64),
    /// Before a chunk-size line.
    Size,
    /// Bytes left of a chunk's data.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailer,
    /// Until the connection ends.
    Close,
    Done,
}

/// An answer's body, decoded from the connection's read buffer as it fills.
#[derive(Debug)]
pub struct Body {
    state: State,
}

impl Body {
    pub fn new(framing: Framing) -> Body {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size,
            Framing::Close => State::Close,
        };
        Body { state }
    }

    /// Whether the body was read to its end.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// The next piece of the body from `buf` (taken out of it, without a copy).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Malformed> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length(left) | State::Data(left) if !buf.is_empty() => {
                    let n = (buf.len() as u64).min(left);
                    let data = buf.split_to(n as usize).freeze();
                    self.state = match (self.state, left - n) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), rest) => State::Length(rest),
                        (_, 0) => State::DataEnd,
                        (_, rest) => State::Data(rest),
                    };
                    return Ok(Decoded::Data(data));
                }
                State::Close if !buf.is_empty() => {
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::Length(_) | State::Data(_) | State::Close => return Ok(Decoded::More),
                State::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        buf.advance(len);
                        self.state = if size == 0 {
                            State::Trailer
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() < LINE_LIMIT => {
                        return Ok(Decoded::More)
                    }
                    _ => return Err(Malformed),
                },
                State::DataEnd => match line_end(buf)? {
                    Some((0, len)) => {
                        buf.advance(len);
                        self.state = State::Size;
                    }
                    Some(_) => return Err(Malformed),
                    None => return Ok(Decoded::More),
                },
                State::Trailer => match line_end(buf)? {
                    // The empty line ends the body; trailer fields are not passed on.
                    Some((0, len)) => {
                        buf.advance(len);
                        self.state = State::Done;
                    }
                    Some((_, len)) => buf.advance(len),
                    None => return Ok(Decoded::More),
                },
            }
        }
    }

    /// The connection ended: the end of a body framed by it, else a cut body.
    pub fn eof(&mut self) -> Result<(), Malformed> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(Malformed),
        }
    }
}

/// The first line in `buf`: (its length without the line end, with it); `None` until it is
/// whole. CRLF, or a bare LF (RFC 9112 §2.2).
fn line_end(buf: &[u8]) -> Result<Option<(usize, usize)>, Malformed> {
    match memchr::memchr(b'\n', buf) {
        Some(i) if i > 0 && buf[i - 1] == b'\r' => Ok(Some((i - 1, i + 1))),
        Some(i) => Ok(Some((i, i + 1))),
        None if buf.len() < LINE_LIMIT => Ok(None),
        None => Err(Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().expect("a whole head")
    }

    /// Decodes `wire` fed `step` bytes at a time; the body, and whether it ended.
    fn decode_all(
        framing: Framing,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, bool), Malformed> {
        let mut body = Body::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match body.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok((out, true)),
                Decoded::More if fed < wire.len() => {
                    let n = step.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                Decoded::More => {
                    body.eof()?;
                    return Ok((out, body.done()));
                }
            }
        }
    }

    #[test]
    fn a_request_is_one_piece_with_a_small_body_and_its_head_alone_with_a_large_one() {
        let mut head = RequestHeader::build("POST", b"/v1/chat/completions?x=1", None).unwrap();
        head.insert_header("host", "api.example.com").unwrap();
        head.insert_header("content-length", "2").unwrap();
        let mut out = Vec::new();
        encode_request(&head, b"{}", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: api.example.com\r\ncontent-length: 2\r\n\r\n{}"
        );
        let big = vec![b'a'; COALESCE_LIMIT + 1];
        let mut out = Vec::new();
        encode_request(&head, &big, &mut out);
        assert!(out.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn heads_parse_with_their_connection_fate() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Request-Id: r1\r\n\r\nrest",
        );
        assert_eq!(h.head.status.as_u16(), 200);
        assert_eq!(h.len, 70);
        assert!(h.keep_alive);
        assert_eq!(h.head.headers["x-request-id"], "r1");
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.0 200 OK\r\n\r\n").keep_alive);
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
                .unwrap()
                .map(|h| h.len),
            None
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 2000 OK\r\n\r\n").err(),
            Some(Malformed)
        );
        assert_eq!(
            parse_head(b"not http at all\r\n\r\n").err(),
            Some(Malformed)
        );
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(HEAD_LIMIT));
        assert_eq!(parse_head(endless.as_bytes()).err(), Some(Malformed));
    }

    #[test]
    fn heads_as_pingora_took_them_parse() {
        let many: String = (0..200).map(|i| format!("x-{i}: {i}\r\n")).collect();
        let h = head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"));
        assert_eq!(h.head.headers.len(), 200);
        let h = head("HTTP/1.1 200\r\nx-folded: a\r\n \tb\r\nx-spaced : c\r\n\r\n");
        assert_eq!(h.head.status.as_u16(), 200);
        assert_eq!(h.head.headers["x-folded"], "a   \tb");
        assert_eq!(h.head.headers["x-spaced"], "c");
        let too_many: String = (0..=MAX_HEADERS)
            .map(|i| format!("x-{i}: {i}\r\n"))
            .collect();
        assert_eq!(
            parse_head(format!("HTTP/1.1 200 OK\r\n{too_many}\r\n").as_bytes()).err(),
            Some(Malformed)
        );
    }

    #[test]
    fn a_whole_head_over_the_limit_is_malformed() {
        let whole = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "a".repeat(HEAD_LIMIT));
        assert_eq!(parse_head(whole.as_bytes()).err(), Some(Malformed));
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let f = |t: &str| Framing::of(&head(t).head);
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
            Ok(Framing::Empty)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Err(Malformed)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"),
            Err(Malformed)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Ok(Framing::Close)
        );
        assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n"), Ok(Framing::Close));
        let both =
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n").head;
        assert_eq!(Framing::of(&both), Ok(Framing::Chunked));
        assert!(!Framing::Chunked.reusable(&both));
        assert!(!Framing::Close.reusable(&both));
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            assert_eq!(
                decode_all(Framing::Chunked, wire, step),
                Ok((b"hello world".to_vec(), true)),
                "step {step}"
            );
        }
        // A bare LF ends a chunk's data and a trailer line (RFC 9112 §2.2).
        assert_eq!(
            decode_all(Framing::Chunked, b"2\r\nhi\n0\r\nx: 1\n\n", 1),
            Ok((b"hi".to_vec(), true))
        );
    }

    #[test]
    fn broken_chunks_and_cut_bodies_are_malformed() {
        assert_eq!(
            decode_all(Framing::Chunked, b"zz\r\nhi\r\n0\r\n\r\n", 64),
            Err(Malformed)
        );
        assert_eq!(
            decode_all(Framing::Chunked, b"2\r\nhiXX0\r\n\r\n", 64),
            Err(Malformed)
        );
        assert_eq!(
            decode_all(Framing::Chunked, b"5\r\nhel", 64),
            Err(Malformed)
        );
        assert_eq!(decode_all(Framing::Length(5), b"hel", 2), Err(Malformed));
        let long_line = format!("1;{}\r\n", "e".repeat(LINE_LIMIT));
        assert_eq!(
            decode_all(Framing::Chunked, long_line.as_bytes(), 64),
            Err(Malformed)
        );
    }

    #[test]
    fn lengths_stop_at_their_end_and_close_framing_at_the_connection_end() {
        assert_eq!(
            decode_all(Framing::Length(3), b"abc", 2),
            Ok((b"abc".to_vec(), true))
        );
        assert_eq!(
            decode_all(Framing::Length(0), b"", 2),
            Ok((Vec::new(), true))
        );
        assert_eq!(
            decode_all(Framing::Close, b"all of it", 4),
            Ok((b"all of it".to_vec(), true))
        );
        assert_eq!(decode_all(Framing::Empty, b"", 4), Ok((Vec::new(), true)));
    }
}
