//! One attempt's exchange with a vendor, under the four timeouts of a provider
//! (`[[providers]] *_timeout_ms`):
//!
//! - **connect**: the TCP and TLS handshakes (`connect_timeout_ms`);
//! - **first byte**: from the request's last byte to the answer's head *and* its first body
//!   bytes (`first_byte_timeout_ms`) — a vendor that answers 200 and then stays silent is as
//!   slow as one that does not answer;
//! - **idle**: the longest silence between two chunks after the first (`idle_timeout_ms`);
//!   every byte resets it; each write of the request too must end within it;
//! - **total**: the request's hard deadline (`total_timeout_ms` from its arrival), which ends a
//!   silent stream on time, not at its next chunk.
//!
//! Each wait is bounded by the earlier of its own timeout and the deadline, and reports which
//! one ran out ([`Failure`]).
//!
//! Connections are made by pingora's transport connector (TCP, TLS) and kept idle between
//! requests ([`pool`]); HTTP/1.1 is spoken on them by [`wire`]: the request's head and a small
//! body go in one write, and the answer is read through one buffer that grows with what it
//! holds. (pingora's own HTTP client writes a request's head and body apart, reads each answer
//! through a 64 KiB buffer, and watches each idle connection with a task of its own.)
//!
//! A pooled connection that the vendor closed while it was idle fails on its first write or
//! read, before any byte of an answer: the exchange is then tried once more on a fresh
//! connection, which is not a failure of the route (a broken answer is one: it is not sent
//! again). As with pingora's own proxy, a vendor that closed the connection just after
//! reading the request may so see it twice; it sent no answer to the first.

pub mod pool;
pub mod reframe;
pub mod wire;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout_at;

use crate::config::{Provider, Timeouts};
pub use pool::Pool;
use wire::{Body, Decoded, Framing};

/// The room for a read at first; it grows (to [`READ_MAX`]) while reads fill it.
const READ_MIN: usize = 2 * 1024;
const READ_MAX: usize = 64 * 1024;

/// Why an attempt failed; [`Failure::cause`] is its `switchyard_upstream_errors_total` reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Connect,
    ConnectTimeout,
    Tls,
    FirstByteTimeout,
    IdleTimeout,
    TotalTimeout,
    /// The vendor closed or reset the connection, or sent what is not HTTP.
    Reset,
}

impl Failure {
    /// The metric label.
    pub fn cause(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Tls => "tls",
            Failure::FirstByteTimeout => "first_byte_timeout",
            Failure::IdleTimeout => "idle_timeout",
            Failure::TotalTimeout => "total_timeout",
            Failure::Reset => "reset",
        }
    }

    fn of_connect(e: &Error) -> Failure {
        match e.etype() {
            ErrorType::ConnectTimedout => Failure::ConnectTimeout,
            ErrorType::TLSHandshakeFailure
            | ErrorType::InvalidCert
            | ErrorType::HandshakeError
            | ErrorType::TLSWantX509Lookup => Failure::Tls,
            _ => Failure::Connect,
        }
    }
}

/// The clocks of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    timeouts: Timeouts,
    /// The request's hard deadline.
    deadline: Instant,
    /// When the request went out; `None` until then.
    sent_at: Option<Instant>,
    /// Whether a body byte has arrived (then the idle timeout applies).
    body_started: bool,
}

impl Clock {
    pub fn new(timeouts: Timeouts, deadline: Instant) -> Clock {
        Clock {
            timeouts,
            deadline,
            sent_at: None,
            body_started: false,
        }
    }

    /// The end of the current wait, and what it is called when it runs out.
    fn wait(&self) -> (Instant, Failure) {
        let now = Instant::now();
        let (until, kind) = match self.sent_at {
            None => (now + self.timeouts.connect, Failure::ConnectTimeout),
            Some(sent) if !self.body_started => {
                (sent + self.timeouts.first_byte, Failure::FirstByteTimeout)
            }
            Some(_) => (now + self.timeouts.idle, Failure::IdleTimeout),
        };
        self.capped(until, kind)
    }

    /// The end of one write of the request: a vendor that reads none of it for the idle
    /// timeout is as slow as one that sends nothing.
    fn write_wait(&self) -> (Instant, Failure) {
        self.capped(Instant::now() + self.timeouts.idle, Failure::IdleTimeout)
    }

    /// `until`, or the deadline when it comes first.
    fn capped(&self, until: Instant, kind: Failure) -> (Instant, Failure) {
        if self.deadline <= until {
            (self.deadline, Failure::TotalTimeout)
        } else {
            (until, kind)
        }
    }
}

/// The address, SNI and connection options of a provider for the `attempt`-th try (several
/// resolved addresses are used in turn).
pub fn peer(provider: &Provider, attempt: u32) -> Option<HttpPeer> {
    let upstream = provider.upstream.as_ref()?;
    let addr: SocketAddr = upstream.addrs[(attempt.max(1) as usize - 1) % upstream.addrs.len()];
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
    let t = provider.timeouts;
    peer.options.connection_timeout = Some(t.connect);
    peer.options.total_connection_timeout = Some(t.connect);
    // Reads are bounded here (`Clock`), not by pingora's per-read timeout.
    peer.options.read_timeout = None;
    peer.options.write_timeout = Some(t.idle);
    peer.options.idle_timeout = Some(pool::IDLE);
    Some(peer)
}

/// A request sent to a vendor, its answer being read.
pub struct Exchange {
    stream: Stream,
    /// The pool key of the connection's peer.
    key: u64,
    /// What was read from the connection and not yet handed out.
    buf: BytesMut,
    /// The room made in `buf` before a read: [`READ_MIN`], doubled (to [`READ_MAX`]) by each
    /// read that fills it.
    read_size: usize,
    /// The answer's head, once it came.
    head: Option<Box<ResponseHeader>>,
    body: Body,
    /// Whether the connection may carry another request after this answer.
    reusable: bool,
    /// Whether any byte came from the vendor for this request: it has the request then, and
    /// a kept connection that fails is not sent it again.
    answered: bool,
    clock: Clock,
    /// What a read ahead by [`Exchange::chunks`] got after its batch: the end, or a failure.
    ahead: Option<Result<Option<Bytes>, Failure>>,
    /// The re-framer of the body, for a vendor whose framing is not its dialect's
    /// ([`Exchange::reframe`]); `None` for most.
    reframe: Option<Box<dyn reframe::Reframe>>,
}

/// The most bytes [`Exchange::chunks`] gathers into one piece.
const BATCH_BYTES: usize = 16 * 1024;

/// Connects (or takes a pooled connection), sends the request head and body, and waits for
/// the answer's head (within the first-byte timeout). A pooled connection that fails before
/// any byte of an answer came (the vendor closed it while it was idle) is replaced once by a
/// fresh one; one that failed after (a broken answer) is not: the vendor had the request.
///
/// The connect and send state (pingora's connector: TCP, TLS) is boxed: it lives only until
/// the answer's head came, not in the future of every open stream.
pub async fn send(
    pool: &Pool,
    peer: &HttpPeer,
    head: &RequestHeader,
    body: &Bytes,
    clock: Clock,
) -> Result<Exchange, Failure> {
    Box::pin(connect_and_send(pool, peer, head, body, clock)).await
}

async fn connect_and_send(
    pool: &Pool,
    peer: &HttpPeer,
    head: &RequestHeader,
    body: &Bytes,
    clock: Clock,
) -> Result<Exchange, Failure> {
    let key = pool::key(peer);
    let mut request = Vec::new();
    wire::encode_request(head, body, &mut request);
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only { None } else { pool.take(key) };
        let reused = pooled.is_some();
        let stream = match pooled {
            Some(stream) => stream,
            None => {
                let (until, kind) = clock.wait();
                match timeout_at(until.into(), pool.connect(peer)).await {
                    Err(_) => return Err(kind),
                    Ok(Err(e)) => return Err(Failure::of_connect(&e)),
                    Ok(Ok(s)) => s,
                }
            }
        };
        let mut exchange = Exchange {
            stream,
            key,
            buf: BytesMut::new(),
            read_size: READ_MIN,
            head: None,
            body: Body::new(Framing::Empty),
            reusable: false,
            answered: false,
            clock,
            ahead: None,
            reframe: None,
        };
        let sent = match exchange.write_request(&request, body).await {
            Ok(()) => {
                exchange.clock.sent_at = Some(Instant::now());
                exchange.read_head().await
            }
            Err(Failure::Reset) => exchange.read_early_answer().await,
            // A write that timed out: the vendor may have answered and stopped reading.
            Err(f) => match now_or_never(exchange.read_early_answer()) {
                Some(Ok(())) => Ok(()),
                _ => Err(f),
            },
        };
        match sent {
            Ok(()) => return Ok(exchange),
            Err(Failure::Reset) if reused && !exchange.answered => fresh_only = true,
            Err(f) => return Err(f),
        }
    }
}

impl Exchange {
    /// Writes the encoded request (its head, and its body when small) and a large body after
    /// it, within the request's deadline.
    async fn write_request(&mut self, request: &[u8], body: &Bytes) -> Result<(), Failure> {
        self.write_all(request).await?;
        if body.len() > wire::COALESCE_LIMIT {
            self.write_all(body).await?;
        }
        let (until, kind) = self.clock.write_wait();
        match timeout_at(until.into(), self.stream.flush()).await {
            Err(_) => Err(kind),
            Ok(Err(_)) => Err(Failure::Reset),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Writes `bytes`, each write within the idle timeout (as pingora's per-write timeout): a
    /// vendor that reads a large body slowly but steadily is not idle.
    async fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), Failure> {
        while !bytes.is_empty() {
            let (until, kind) = self.clock.write_wait();
            match timeout_at(until.into(), self.stream.write(bytes)).await {
                Err(_) => return Err(kind),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(Failure::Reset),
                Ok(Ok(n)) => bytes = &bytes[n..],
            }
        }
        Ok(())
    }

    /// The answer a vendor sent before it read the whole request (a 413, a 400) and closed
    /// the connection or stopped reading, which so failed the request's write: its head when
    /// it came (the connection is then not kept), else a reset.
    async fn read_early_answer(&mut self) -> Result<(), Failure> {
        self.clock.sent_at = Some(Instant::now());
        match self.read_head().await {
            Ok(()) => {
                self.reusable = false;
                Ok(())
            }
            Err(_) => Err(Failure::Reset),
        }
    }

    /// Reads until the answer's head (interim 1xx heads are passed over).
    async fn read_head(&mut self) -> Result<(), Failure> {
        loop {
            match wire::parse_head(&self.buf) {
                Err(_) => return Err(Failure::Reset),
                Ok(None) => {
                    if self.fill().await? == 0 {
                        return Err(Failure::Reset);
                    }
                }
                Ok(Some(h)) if (100..200).contains(&h.head.status.as_u16()) => {
                    self.buf.advance(h.len);
                }
                Ok(Some(h)) => {
                    self.buf.advance(h.len);
                    let framing = Framing::of(&h.head).map_err(|_| Failure::Reset)?;
                    self.reusable = h.keep_alive && framing.reusable(&h.head);
                    self.body = Body::new(framing);
                    self.head = Some(Box::new(h.head));
                    return Ok(());
                }
            }
        }
    }

    /// Reads more of the answer into the buffer, within the current wait; 0 at the
    /// connection's end.
    async fn fill(&mut self) -> Result<usize, Failure> {
        if self.buf.capacity() - self.buf.len() < self.read_size / 2 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let (until, kind) = self.clock.wait();
        match timeout_at(until.into(), self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(kind),
            Ok(Err(_)) => Err(Failure::Reset),
            Ok(Ok(n)) => {
                self.answered |= n > 0;
                // A read that filled the room: a large answer; read more at once next time.
                if n == room {
                    self.read_size = (self.read_size * 2).min(READ_MAX);
                }
                Ok(n)
            }
        }
    }

    /// The answer's head (an exchange is made only once it came; `None` after
    /// [`Exchange::forget_head`]).
    pub fn head(&self) -> Option<&ResponseHeader> {
        self.head.as_deref()
    }

    /// Drops the answer's head once what the client needs of it was taken: an open stream
    /// does not keep it.
    pub fn forget_head(&mut self) {
        self.head = None;
    }

    /// Re-frames the rest of the answer's body with `reframe` (a successful answer, its
    /// head still held: its content type becomes the re-framer's).
    pub fn reframe(&mut self, reframe: Box<dyn reframe::Reframe>) {
        if let Some(head) = &mut self.head {
            // A static, valid header value: this cannot fail.
            let _ = head.insert_header(http::header::CONTENT_TYPE, reframe.content_type());
        }
        self.reframe = Some(reframe);
    }

    /// The next chunk of the answer's body (re-framed, when a re-framer is set); `None` at its
    /// end. A body the re-framer cannot read ends as a reset.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        if self.reframe.is_none() {
            return self.raw_chunk().await;
        }
        loop {
            let raw = self.raw_chunk().await?;
            let Some(reframe) = self.reframe.as_mut() else {
                return Ok(raw);
            };
            let out = match raw {
                Some(raw) => reframe.feed(&raw),
                None => {
                    let last = reframe.finish();
                    self.reframe = None;
                    match last {
                        Ok(last) if last.is_empty() => return Ok(None),
                        // The last events now; the end at the next call (the re-framer gone).
                        Ok(last) => return Ok(Some(last)),
                        Err(_) => return Err(Failure::Reset),
                    }
                }
            };
            match out {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => return Ok(Some(out)),
                Err(_) => return Err(Failure::Reset),
            }
        }
    }

    /// The next chunk of the answer's body as it came; `None` at its end.
    async fn raw_chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        loop {
            match self.body.decode(&mut self.buf) {
                Err(_) => return Err(Failure::Reset),
                Ok(Decoded::End) => return Ok(None),
                Ok(Decoded::Data(data)) => {
                    self.clock.body_started = true;
                    return Ok(Some(data));
                }
                Ok(Decoded::More) => {
                    if self.fill().await? == 0 {
                        self.body.eof().map_err(|_| Failure::Reset)?;
                        self.reusable = false;
                    }
                }
            }
        }
    }

    /// The next chunk of the answer's body with the chunks that have already arrived behind
    /// it (up to [`BATCH_BYTES`]), as one piece; `None` at its end. pingora hands out one
    /// HTTP chunk per read, and the client would get a write (a syscall) per chunk; a vendor
    /// that sends events faster than they are relayed gets them relayed in fewer writes.
    pub async fn chunks(&mut self) -> Result<Option<Bytes>, Failure> {
        if let Some(ahead) = self.ahead.take() {
            return ahead;
        }
        let Some(first) = self.chunk().await? else {
            return Ok(None);
        };
        let mut batch: Option<BytesMut> = None;
        let mut len = first.len();
        while len < BATCH_BYTES {
            // Only what is ready now: a chunk still on its way is not waited for.
            match now_or_never(self.chunk()) {
                None => break,
                Some(Ok(Some(next))) => {
                    len += next.len();
                    batch
                        .get_or_insert_with(|| BytesMut::from(&first[..]))
                        .extend_from_slice(&next);
                }
                Some(end_or_failure) => {
                    self.ahead = Some(end_or_failure);
                    break;
                }
            }
        }
        Ok(Some(batch.map_or(first, BytesMut::freeze)))
    }

    /// Reads the rest of a body (an error answer) up to `limit` bytes: a longer one is not
    /// waited for (a vendor could send it for ever), and its connection is then not kept.
    pub async fn rest(&mut self, limit: usize) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(chunk) = self.chunk().await? else {
                break;
            };
            let room = limit - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(out)
    }

    /// Gives the connection back to the pool when the answer was read to its end (and the
    /// vendor keeps it alive, and sent nothing after it), else closes it.
    pub fn finish(self, pool: &Pool) {
        if self.reusable && self.body.done() && self.buf.is_empty() {
            pool.give_back(self.key, self.stream);
        }
    }
}

/// Polls a future once: its output if it is ready now. A read that is not ready is dropped
/// before it took any byte (tokio's socket reads are cancel-safe so).
fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}
