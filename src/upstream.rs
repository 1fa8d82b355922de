//! One attempt's exchange with a vendor, on pingora's pooled connections (its `Connector`),
//! under the four timeouts of a provider (`[[providers]] *_timeout_ms`):
//!
//! - **connect**: the TCP and TLS handshakes (`connect_timeout_ms`);
//! - **first byte**: from the request's last byte to the answer's head *and* its first body
//!   bytes (`first_byte_timeout_ms`) — a vendor that answers 200 and then stays silent is as
//!   slow as one that does not answer;
//! - **idle**: the longest silence between two chunks after the first (`idle_timeout_ms`);
//!   every byte resets it;
//! - **total**: the request's hard deadline (`total_timeout_ms` from its arrival), which ends a
//!   silent stream on time, not at its next chunk.
//!
//! Each wait is bounded by the earlier of its own timeout and the deadline, and reports which
//! one ran out ([`Failure`]). A pooled connection that the vendor closed while it was idle fails
//! on its first write or read: the exchange is then tried once more on a fresh connection, which
//! is not a failure of the route. As with pingora's own proxy, a vendor that closed the
//! connection just after reading the request may so see it twice; it sent no answer to the
//! first.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::{Error, ErrorType};
use tokio::time::timeout_at;

use crate::config::{Provider, Timeouts};

/// How long an idle pooled connection to a vendor is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

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

    /// Whether the vendor was too slow (the answer is then 504, not 502).
    pub fn is_timeout(self) -> bool {
        matches!(
            self,
            Failure::ConnectTimeout
                | Failure::FirstByteTimeout
                | Failure::IdleTimeout
                | Failure::TotalTimeout
        )
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
    peer.options.idle_timeout = Some(POOL_IDLE);
    Some(peer)
}

/// A request sent to a vendor, its answer being read.
pub struct Exchange {
    /// Boxed: an exchange moves through several futures, and pingora's session is large.
    session: Box<HttpSession>,
    clock: Clock,
    /// What a read ahead by [`Exchange::chunks`] got after its batch: the end, or a failure.
    ahead: Option<Result<Option<Bytes>, Failure>>,
}

/// The most bytes [`Exchange::chunks`] gathers into one piece.
const BATCH_BYTES: usize = 16 * 1024;

/// Connects (or takes a pooled connection), sends the request head and body, and waits for
/// the answer's head (within the first-byte timeout). A pooled connection that fails before
/// any answer came (the vendor closed it while it was idle) is replaced once by a fresh one.
///
/// The connect and send state (pingora's connector: TCP, TLS) is boxed: it lives only until
/// the answer's head came, not in the future of every open stream.
pub async fn send(
    connector: &Connector,
    peer: &HttpPeer,
    head: &RequestHeader,
    body: &Bytes,
    clock: Clock,
) -> Result<Exchange, Failure> {
    Box::pin(connect_and_send(connector, peer, head, body, clock)).await
}

async fn connect_and_send(
    connector: &Connector,
    peer: &HttpPeer,
    head: &RequestHeader,
    body: &Bytes,
    clock: Clock,
) -> Result<Exchange, Failure> {
    let mut fresh_only = false;
    loop {
        let mut clock = clock;
        let (until, kind) = clock.wait();
        let connect = timeout_at(until.into(), connector.get_http_session(peer)).await;
        let (session, reused) = match connect {
            Err(_) => return Err(kind),
            Ok(Err(e)) => return Err(Failure::of_connect(&e)),
            Ok(Ok(s)) => s,
        };
        if reused && fresh_only {
            // A second stale one: drop it and ask again (the pool hands out each once).
            drop(session);
            continue;
        }
        clock.sent_at = Some(Instant::now());
        let mut exchange = Exchange {
            session: Box::new(session),
            clock,
            ahead: None,
        };
        let sent = match exchange.write_request(head, body).await {
            Ok(()) => exchange.read_head().await,
            Err(f) => Err(f),
        };
        match sent {
            Ok(()) => return Ok(exchange),
            Err(Failure::Reset) if reused && !fresh_only => {
                exchange.session.shutdown().await;
                fresh_only = true;
            }
            Err(f) => return Err(f),
        }
    }
}

impl Exchange {
    async fn write_request(&mut self, head: &RequestHeader, body: &Bytes) -> Result<(), Failure> {
        let session = &mut self.session;
        let write = async {
            session.write_request_header(Box::new(head.clone())).await?;
            session.write_request_body(body.clone(), true).await?;
            session.finish_request_body().await
        };
        match timeout_at(self.clock.deadline.into(), write).await {
            Err(_) => Err(Failure::TotalTimeout),
            Ok(Err(e)) if matches!(e.etype(), ErrorType::WriteTimedout) => {
                Err(Failure::IdleTimeout)
            }
            Ok(Err(_)) => Err(Failure::Reset),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_head(&mut self) -> Result<(), Failure> {
        let (until, kind) = self.clock.wait();
        match timeout_at(until.into(), self.session.read_response_header()).await {
            Err(_) => Err(kind),
            Ok(Err(e)) if matches!(e.etype(), ErrorType::ReadTimedout) => Err(kind),
            Ok(Err(_)) => Err(Failure::Reset),
            Ok(Ok(())) if self.session.response_header().is_some() => Ok(()),
            Ok(Ok(())) => Err(Failure::Reset),
        }
    }

    /// The answer's head (an exchange is made only once it came).
    pub fn head(&self) -> Option<&ResponseHeader> {
        self.session.response_header()
    }

    /// The next chunk of the answer's body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        let (until, kind) = self.clock.wait();
        let read = match timeout_at(until.into(), self.session.read_response_body()).await {
            Err(_) => return Err(kind),
            Ok(Err(e)) if matches!(e.etype(), ErrorType::ReadTimedout) => return Err(kind),
            Ok(Err(_)) => return Err(Failure::Reset),
            Ok(Ok(read)) => read,
        };
        if read.as_ref().is_some_and(|b| !b.is_empty()) {
            self.clock.body_started = true;
        }
        Ok(read)
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

    /// Reads the rest of a body (an error answer), keeping at most `limit` bytes.
    pub async fn rest(&mut self, limit: usize) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(out)
    }

    /// Gives the connection back to the pool when the answer was read to its end (and the
    /// vendor keeps it alive), else closes it.
    pub async fn finish(mut self, connector: &Connector, peer: &HttpPeer) {
        if self.session.response_done() {
            // Boxed: pingora's release is a large future, and it would otherwise be part of
            // the future of every open stream.
            Box::pin(connector.release_http_session(*self.session, peer, Some(POOL_IDLE))).await;
        } else {
            self.session.shutdown().await;
        }
    }
}

/// Polls a future once: its output if it is ready now. A read that is not ready is dropped
/// before it took any byte (pingora's body reads and tokio's socket reads are cancel-safe so).
fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}
