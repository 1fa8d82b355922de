//! `MockUpstream`: a real HTTP/1.1 (or HTTPS) server on loopback that imitates an
//! OpenAI-compatible vendor, records every request, and injects faults on demand.
//!
//! Behaviour is chosen per request from `x-mock-*` request headers, which win over a
//! one-shot behaviour queued with [`MockUpstream::enqueue`], which wins over the
//! server-wide default set with [`MockUpstream::set_default`]:
//!
//! | header | effect |
//! |---|---|
//! | `x-mock-status: 500` | answer that status; >= 400 gets `{"error":{"message":"mock failure","type":"server_error","code":null}}` |
//! | `x-mock-retry-after: 3` | add `Retry-After: 3` |
//! | `x-mock-stall-headers-ms: N` | sleep N ms before sending the response head |
//! | `x-mock-delay-ms: N` | sleep N ms after the head, before the first body byte |
//! | `x-mock-chunks: N` | streaming: N content chunks (default 5) |
//! | `x-mock-chunk-delay-ms: N` | streaming: sleep N ms before every event after the first |
//! | `x-mock-drop-after: K` | streaming: after the role chunk and K content chunks (flushed), close the TCP connection without the chunked terminator |
//! | `x-mock-stall-after: K` | streaming: after the role chunk and K content chunks, send nothing more but keep the connection open until the peer goes away |
//! | `x-mock-error-event-after: K` | streaming: after the role chunk and K content chunks (0: before any content), send `data: {"error":{"message":"busy","type":"server_error","code":null}}` and end the body (no `[DONE]`) |
//! | `x-mock-finish-reason: R` | the finish reason (`content_filter`: the filter stopped the answer), streamed or not |
//! | `x-mock-no-usage: 1` | omit usage (non-streaming: no `usage` field; streaming: no usage chunk) |
//! | `x-mock-billed-tokens: 1` | report `prompt_tokens` as OpenAI bills them ([`billed_prompt_tokens`]) instead of words |
//!
//! `Behaviour::error(status, body)` answers a vendor's own error body (OpenAI's
//! `{"error":{"message","type","param","code"}}`, [`openai_error_body`]).
//!
//! As OpenAI does, a request that names an organization or a project (`OpenAI-Organization`,
//! `OpenAI-Project`) that is not the key's is refused with 401 `mismatched_organization`: the
//! mock's key belongs to none, so any such header is refused.
//!
//! [`Recorded::mock_headers`] names the `x-mock-*` headers a request carried, so a test can
//! show its steering reached the mock (request headers go upstream by allow-list, and
//! `x-mock-*` only through a provider's `forward_headers`).
//!
//! As Azure OpenAI does, a request whose `api-version` query is a date before 2024-09-01 and
//! whose body has `stream_options` is refused with 400 "Unrecognized request argument".
//!
//! The stream is: a role chunk (`delta: {"role":"assistant","content":""}`), N chunks with
//! `delta.content` = `"tok0 "`, `"tok1 "`, …, `"tok{N-1} "`, a finish chunk (`delta: {}`,
//! `finish_reason: "stop"`), a usage chunk (`choices: []`, only when the request had
//! `stream_options.include_usage: true` and not no-usage), then `data: [DONE]`.
//! Every event is `data: {json}\n\n` and is its own body frame.
//!
//! Failures in time: `stall_headers_ms` (before the head), `delay_ms` (after the head, before
//! the first event), `stall_after: 1` (after the first content event), `trickle(ms)` (an
//! event every `ms` forever, as `chunks: usize::MAX` with `chunk_delay_ms`).
//!
//! `Behaviour::body` replaces the whole answer with a fixed body; `Behaviour::frames`
//! replaces it with raw frames sent one by one (vendor-shaped streams).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio_rustls::TlsAcceptor;

use super::strict;
use super::tls::TestCa;

/// The fixed `created` timestamp of every mock answer (deterministic output).
pub const MOCK_CREATED: u64 = 1_700_000_000;

/// Per-request behaviour of the mock. Every field is optional; see the module docs for
/// the matching `x-mock-*` headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Behaviour {
    /// Answer this status (>= 400: OpenAI-style JSON error body).
    pub status: Option<u16>,
    /// Value of a `Retry-After` header to add.
    pub retry_after: Option<String>,
    /// Sleep before sending the response head.
    pub stall_headers_ms: Option<u64>,
    /// Sleep after the head, before the body.
    pub delay_ms: Option<u64>,
    /// Streaming: number of content chunks (default 5).
    pub chunks: Option<usize>,
    /// Streaming: sleep before every event after the first.
    pub chunk_delay_ms: Option<u64>,
    /// Streaming: after K content chunks, abort the TCP connection.
    pub drop_after: Option<usize>,
    /// Streaming: after K content chunks, go silent but keep the connection open.
    pub stall_after: Option<usize>,
    /// Streaming: after K content chunks (0: before any content), an error event, then the
    /// end of the body without `[DONE]`.
    pub error_event_after: Option<usize>,
    /// The finish reason instead of `stop` (`content_filter`), streamed or not.
    pub finish_reason: Option<String>,
    /// Omit usage.
    pub no_usage: bool,
    /// Report `prompt_tokens` as OpenAI bills them ([`billed_prompt_tokens`]).
    pub billed_tokens: bool,
    /// Replace the response body verbatim (status as chosen, default 200; streaming or not).
    /// No header equivalent.
    pub body: Option<String>,
    /// Content-Type used with `body` or `frames` (default `application/json` for `body`,
    /// `text/event-stream` for `frames`). No header equivalent.
    pub content_type: Option<String>,
    /// Send these raw byte strings as the response body, each its own frame (chunked),
    /// honouring `delay_ms`, `chunk_delay_ms`, `drop_after` and `stall_after` (counted in
    /// frames). For vendor-shaped streams (Anthropic, Gemini…). No header equivalent.
    pub frames: Option<Vec<String>>,
    /// Extra response headers, as a vendor sends them (rate limits, organization, cookies…),
    /// on every kind of answer. No header equivalent.
    pub headers: Vec<(String, String)>,
}

impl Behaviour {
    /// Shorthand: a behaviour that answers `status` with the mock's JSON error body.
    pub fn status(status: u16) -> Behaviour {
        Behaviour {
            status: Some(status),
            ..Behaviour::default()
        }
    }

    /// Shorthand: answer `status` with this error body (a vendor's own error, e.g.
    /// [`openai_error_body`]).
    pub fn error(status: u16, body: &str) -> Behaviour {
        Behaviour {
            status: Some(status),
            body: Some(body.to_string()),
            ..Behaviour::default()
        }
    }

    /// Shorthand: a stream of content events, one every `every_ms`, that never ends.
    pub fn trickle(every_ms: u64) -> Behaviour {
        Behaviour {
            chunks: Some(usize::MAX),
            chunk_delay_ms: Some(every_ms),
            ..Behaviour::default()
        }
    }

    fn overridden_by_headers(mut self, headers: &BTreeMap<String, String>) -> Behaviour {
        fn num<T: std::str::FromStr>(h: &BTreeMap<String, String>, name: &str) -> Option<T> {
            h.get(name).and_then(|v| v.trim().parse().ok())
        }
        if let Some(v) = num(headers, "x-mock-status") {
            self.status = Some(v);
        }
        if let Some(v) = headers.get("x-mock-retry-after") {
            self.retry_after = Some(v.trim().to_string());
        }
        if let Some(v) = num(headers, "x-mock-stall-headers-ms") {
            self.stall_headers_ms = Some(v);
        }
        if let Some(v) = num(headers, "x-mock-delay-ms") {
            self.delay_ms = Some(v);
        }
        if let Some(v) = num(headers, "x-mock-chunks") {
            self.chunks = Some(v);
        }
        if let Some(v) = num(headers, "x-mock-chunk-delay-ms") {
            self.chunk_delay_ms = Some(v);
        }
        if let Some(v) = num(headers, "x-mock-drop-after") {
            self.drop_after = Some(v);
        }
        if let Some(v) = num(headers, "x-mock-stall-after") {
            self.stall_after = Some(v);
        }
        if let Some(v) = num(headers, "x-mock-error-event-after") {
            self.error_event_after = Some(v);
        }
        if let Some(v) = headers.get("x-mock-finish-reason") {
            self.finish_reason = Some(v.trim().to_string());
        }
        if let Some(v) = headers.get("x-mock-no-usage") {
            let v = v.trim();
            self.no_usage = !(v == "0" || v.eq_ignore_ascii_case("false"));
        }
        if let Some(v) = headers.get("x-mock-billed-tokens") {
            self.billed_tokens = v.trim() == "1";
        }
        self
    }
}

/// One request the mock received, and what it answered.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// Position in [`MockUpstream::requests`] (0-based).
    pub index: usize,
    /// `POST`, `GET`, …
    pub method: String,
    /// Path and query, e.g. `/v1/chat/completions` or `/openai/deployments/x/chat/completions?api-version=1`.
    pub path: String,
    /// Lowercased header names → values (repeated headers joined with `", "`).
    pub headers: BTreeMap<String, String>,
    /// The request body, complete.
    pub body: Bytes,
    /// The status the mock answered (0 while it has not decided yet).
    pub status: u16,
    /// Whether the request asked for a stream (`"stream": true`).
    pub stream: bool,
    /// Exactly the response-body bytes the mock wrote so far (stream or not).
    pub response_body: Bytes,
    /// The mock wrote its whole response (for a stream: through `data: [DONE]`).
    pub finished: bool,
    /// The mock deliberately aborted the connection (`drop-after`).
    pub aborted: bool,
    /// The peer went away (or the connection failed) before the mock finished answering.
    pub client_gone: bool,
    /// The client's address: the same one on two requests means one pooled connection.
    pub peer: Option<SocketAddr>,
}

impl Recorded {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }

    /// The request body parsed as JSON (panics if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "mock: recorded request body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(400)])
            )
        })
    }

    /// The response body as (lossy) UTF-8 text.
    pub fn response_text(&self) -> String {
        String::from_utf8_lossy(&self.response_body).into_owned()
    }

    /// The `x-mock-*` headers the request carried (sorted names): the steering that reached
    /// the mock.
    pub fn mock_headers(&self) -> Vec<&str> {
        self.headers
            .keys()
            .filter(|n| n.starts_with("x-mock-"))
            .map(|n| n.as_str())
            .collect()
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

#[derive(Default)]
struct Entry {
    rec: Recorded,
    resp: Vec<u8>,
}

impl Entry {
    /// The request as recorded, with the response bytes sent so far.
    fn recorded(&self) -> Recorded {
        let mut r = self.rec.clone();
        r.response_body = Bytes::copy_from_slice(&self.resp);
        r
    }
}

#[derive(Default)]
struct Shared {
    entries: Mutex<Vec<Entry>>,
    default: Mutex<Behaviour>,
    queue: Mutex<VecDeque<Behaviour>>,
    changed: Notify,
}

impl Shared {
    fn update(&self, idx: usize, f: impl FnOnce(&mut Entry)) {
        {
            let mut entries = self.entries.lock().unwrap();
            if let Some(e) = entries.get_mut(idx) {
                f(e);
            }
        }
        self.changed.notify_waiters();
    }

    fn push(&self, mut rec: Recorded) -> usize {
        let idx;
        {
            let mut entries = self.entries.lock().unwrap();
            idx = entries.len();
            rec.index = idx;
            entries.push(Entry {
                rec,
                resp: Vec::new(),
            });
        }
        self.changed.notify_waiters();
        idx
    }

    fn snapshot(&self) -> Vec<Recorded> {
        let entries = self.entries.lock().unwrap();
        entries.iter().map(Entry::recorded).collect()
    }

    /// The last request only (a long run's mock holds many).
    fn last(&self) -> Option<Recorded> {
        let entries = self.entries.lock().unwrap();
        entries.last().map(Entry::recorded)
    }

    fn behaviour_for(&self, headers: &BTreeMap<String, String>) -> Behaviour {
        let base = self
            .queue
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().unwrap().clone());
        base.overridden_by_headers(headers)
    }
}

/// A running mock vendor. Dropping it stops the server and closes its connections.
pub struct MockUpstream {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl MockUpstream {
    /// Plain HTTP on `127.0.0.1:0`.
    pub async fn start() -> MockUpstream {
        Self::start_inner(None).await
    }

    /// HTTPS on `127.0.0.1:0` (and best effort on `[::1]` with the same port, so that
    /// `localhost` works whichever address a client picks), with a leaf certificate for
    /// `localhost` and 127.0.0.1 signed by `ca`.
    pub async fn start_tls(ca: &TestCa) -> MockUpstream {
        let leaf = ca.leaf_for_localhost();
        Self::start_inner(Some(TlsAcceptor::from(leaf.server_config()))).await
    }

    async fn start_inner(tls: Option<TlsAcceptor>) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("mock: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock: local_addr");
        let shared = Arc::new(Shared::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let is_tls = tls.is_some();
        if is_tls {
            // Best effort: also answer on [::1]:PORT for clients that resolve localhost to ::1.
            if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, addr.port())).await {
                tokio::spawn(accept_loop(
                    v6,
                    tls.clone(),
                    shared.clone(),
                    shutdown_rx.clone(),
                ));
            }
        }
        tokio::spawn(accept_loop(listener, tls, shared.clone(), shutdown_rx));
        MockUpstream {
            addr,
            tls: is_tls,
            shared,
            shutdown,
        }
    }

    /// The address it listens on (127.0.0.1:PORT).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/v1`, or `https://localhost:PORT/v1` for a TLS mock.
    pub fn base_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/v1", self.addr.port())
        } else {
            format!("http://127.0.0.1:{}/v1", self.addr.port())
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` (no `/v1`; for Azure-style base URLs).
    pub fn origin(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://127.0.0.1:{}", self.addr.port())
        }
    }

    /// `origin() + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin(), path)
    }

    /// Sets the server-wide default behaviour (used when no queued behaviour is pending;
    /// `x-mock-*` headers still override it field by field).
    pub fn set_default(&self, behaviour: Behaviour) {
        *self.shared.default.lock().unwrap() = behaviour;
    }

    /// Queues a one-shot behaviour: the next request that arrives uses it instead of the
    /// default (headers still override). Several calls queue several, used in order.
    pub fn enqueue(&self, behaviour: Behaviour) {
        self.shared.queue.lock().unwrap().push_back(behaviour);
    }

    /// All requests so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.snapshot()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.last()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.shared.entries.lock().unwrap().len()
    }

    /// Forgets the recorded requests and queued behaviours (the default stays).
    pub fn clear(&self) {
        self.shared.entries.lock().unwrap().clear();
        self.shared.queue.lock().unwrap().clear();
    }

    /// Waits until `pred(requests)` holds; panics after 20 s naming `what`.
    /// (A bound against hangs, not a timing assertion.)
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let snap = self.shared.snapshot();
            if pred(&snap) {
                return snap;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let snap = self.shared.snapshot();
                if pred(&snap) {
                    return snap;
                }
                panic!(
                    "mock: gave up waiting for: {what}; requests so far: {:#?}",
                    snap.iter()
                        .map(|r| (
                            r.index,
                            &r.method,
                            &r.path,
                            r.status,
                            r.finished,
                            r.aborted,
                            r.client_gone
                        ))
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    /// Waits until at least `n` requests arrived (panics after 20 s).
    pub async fn wait_for_requests(&self, n: usize) -> Vec<Recorded> {
        self.wait_until(&format!("{n} request(s)"), |r| r.len() >= n)
            .await
    }

    /// Waits until the peer of request `index` went away before the answer was complete
    /// (panics after 20 s). Useful to check that the gateway closed an upstream stream.
    pub async fn wait_client_gone(&self, index: usize) -> Recorded {
        let snap = self
            .wait_until(&format!("client of request #{index} to go away"), |r| {
                r.get(index).map(|r| r.client_gone).unwrap_or(false)
            })
            .await;
        snap[index].clone()
    }

    /// Stops accepting and closes every open connection.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A loopback address nothing listens on: see [`closed_port_addr`].
    pub fn closed_port_addr() -> SocketAddr {
        closed_port_addr()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A loopback address nothing listens on: a socket of this process is bound there (bound,
/// not listening, so a connection is refused) for as long as the process runs, so the port
/// cannot be given to anything else. One address for the whole process.
pub fn closed_port_addr() -> SocketAddr {
    static CLOSED: std::sync::OnceLock<(tokio::net::TcpSocket, SocketAddr)> =
        std::sync::OnceLock::new();
    let (_, addr) = CLOSED.get_or_init(|| {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("local_addr");
        (socket, addr)
    });
    *addr
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(_) => {
                // e.g. EMFILE: back off a little and go on.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_conn(tcp, peer, shared, shutdown).await,
                Some(acceptor) => {
                    let mut sd = shutdown.clone();
                    let tls_stream = tokio::select! {
                        r = acceptor.accept(tcp) => r,
                        _ = sd.changed() => return,
                    };
                    if let Ok(s) = tls_stream {
                        serve_conn(s, peer, shared, shutdown).await
                    }
                }
            }
        });
    }
}

/// Counts completed flushes of one connection, so a producer can know its frames reached
/// the socket before it aborts the connection.
#[derive(Default)]
struct ConnTracker {
    flushes: AtomicU64,
    notify: Notify,
    peer: Option<SocketAddr>,
}

struct TrackedIo<S> {
    inner: S,
    conn: Arc<ConnTracker>,
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = r {
            self.conn.flushes.fetch_add(1, Ordering::SeqCst);
            self.conn.notify.notify_waiters();
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_conn<S>(
    io: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(ConnTracker {
        peer: Some(peer),
        ..ConnTracker::default()
    });
    let io = TokioIo::new(TrackedIo {
        inner: io,
        conn: conn.clone(),
    });
    let svc = service_fn(move |req| handle(req, shared.clone(), conn.clone()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let connection = builder.serve_connection(io, svc);
    tokio::select! {
        _ = connection => {}
        _ = shutdown.changed() => {}
    }
}

/// What the body has handed to hyper: the number of frames consumed, and — at the first
/// `Pending` after the latest frame — the frame count and flush count at that moment.
#[derive(Default)]
struct Progress {
    consumed: AtomicU64,
    pending_mark: Mutex<Option<(u64, u64)>>,
    ended: AtomicBool,
}

/// A response body fed by a producer task through a channel. `Err` items abort the
/// connection (hyper drops it without writing anything more).
struct ChanBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    exact: Option<u64>,
    bytes_out: u64,
    progress: Arc<Progress>,
    conn: Arc<ConnTracker>,
    shared: Arc<Shared>,
    idx: Option<usize>,
}

impl Body for ChanBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.progress.consumed.fetch_add(1, Ordering::SeqCst);
                self.bytes_out += b.len() as u64;
                if self.is_end_stream() {
                    self.progress.ended.store(true, Ordering::SeqCst);
                }
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.progress.ended.store(true, Ordering::SeqCst);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.progress.ended.store(true, Ordering::SeqCst);
                Poll::Ready(None)
            }
            Poll::Pending => {
                // Keep the mark of the *first* Pending after the latest frame: every flush
                // that completes after it has written that frame to the socket.
                let consumed = self.progress.consumed.load(Ordering::SeqCst);
                let mut mark = self.progress.pending_mark.lock().unwrap();
                if mark.map(|(c, _)| c) != Some(consumed) {
                    *mark = Some((consumed, self.conn.flushes.load(Ordering::SeqCst)));
                    drop(mark);
                    self.conn.notify.notify_waiters();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.exact, Some(n) if self.bytes_out >= n)
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for ChanBody {
    fn drop(&mut self) {
        if !self.progress.ended.load(Ordering::SeqCst) && !self.is_end_stream() {
            if let Some(idx) = self.idx {
                self.shared.update(idx, |e| e.rec.client_gone = true);
            }
        }
    }
}

/// The producer side of a [`ChanBody`]: records every frame before sending it.
struct Producer {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    shared: Arc<Shared>,
    idx: Option<usize>,
    progress: Arc<Progress>,
    conn: Arc<ConnTracker>,
    sent: u64,
}

impl Producer {
    /// Records and sends one frame; `false` if the peer is gone.
    async fn send(&mut self, b: Bytes) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        if let Some(idx) = self.idx {
            self.shared
                .update(idx, |e| e.resp.extend_from_slice(b.as_ref()));
        }
        self.sent += 1;
        self.tx.send(Ok(b)).await.is_ok()
    }

    fn finish(self) {
        if let Some(idx) = self.idx {
            self.shared.update(idx, |e| e.rec.finished = true);
        }
        // Dropping `tx` ends the body.
    }

    /// Waits until every frame sent so far was taken by hyper and a flush of the
    /// connection completed after that (or the peer went away).
    async fn wait_flushed(&self) {
        loop {
            let notified = self.conn.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some((consumed, flushes_at)) = *self.progress.pending_mark.lock().unwrap() {
                if consumed >= self.sent && self.conn.flushes.load(Ordering::SeqCst) > flushes_at {
                    return;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Aborts the connection after everything sent so far reached the socket.
    async fn abort(self) {
        self.wait_flushed().await;
        if let Some(idx) = self.idx {
            self.shared.update(idx, |e| e.rec.aborted = true);
        }
        let _ = self
            .tx
            .send(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "mock: drop-after",
            )))
            .await;
    }

    /// Goes silent until the peer goes away.
    async fn stall(self) {
        self.tx.closed().await;
    }
}

fn channel_body(
    shared: &Arc<Shared>,
    conn: &Arc<ConnTracker>,
    idx: Option<usize>,
    exact: Option<u64>,
) -> (ChanBody, Producer) {
    let (tx, rx) = mpsc::channel(64);
    let progress = Arc::new(Progress::default());
    let body = ChanBody {
        rx,
        exact,
        bytes_out: 0,
        progress: progress.clone(),
        conn: conn.clone(),
        shared: shared.clone(),
        idx,
    };
    let producer = Producer {
        tx,
        shared: shared.clone(),
        idx,
        progress,
        conn: conn.clone(),
        sent: 0,
    };
    (body, producer)
}

/// Marks the request's client as gone if the handler future is dropped before it answers.
struct HandlerGuard {
    shared: Arc<Shared>,
    idx: usize,
    armed: bool,
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        if self.armed {
            self.shared.update(self.idx, |e| e.rec.client_gone = true);
        }
    }
}

fn error_json(message: &str, kind: &str) -> String {
    json!({"error": {"message": message, "type": kind, "code": null}}).to_string()
}

/// Whitespace-separated words across all messages' contents (string contents, and the
/// `text` of content parts), at least 1.
pub fn prompt_words(request: &Value) -> u64 {
    let mut n = 0u64;
    if let Some(msgs) = request.get("messages").and_then(|m| m.as_array()) {
        for m in msgs {
            n += words(&content_text(m.get("content")));
        }
    }
    n.max(1)
}

/// Prompt tokens as OpenAI bills them: every text (string contents, `text` parts, roles) in
/// o200k tokens (a real tokenizer), 3 per message and 3 priming the reply (OpenAI's cookbook
/// count), and every image by OpenAI's published figure: at high detail, fit in 2048×2048,
/// shortest side to 768, 85 + 170 per 512-px tile, the size read from the data URL's PNG
/// header (765, a 1024×1024 image, when it cannot be read); 85 at low detail.
pub fn billed_prompt_tokens(request: &Value) -> u64 {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let tokens = |s: &str| bpe.encode_with_special_tokens(s).len() as u64;
    let mut n = 3;
    for m in request["messages"].as_array().into_iter().flatten() {
        n += 3 + tokens(m["role"].as_str().unwrap_or_default());
        match &m["content"] {
            Value::String(s) => n += tokens(s),
            Value::Array(parts) => {
                for p in parts {
                    if let Some(t) = p["text"].as_str() {
                        n += tokens(t);
                    }
                    if let Some(url) = p["image_url"]["url"].as_str() {
                        n += openai_image_tokens(url, p["image_url"]["detail"].as_str());
                    }
                }
            }
            _ => {}
        }
    }
    n
}

fn openai_image_tokens(url: &str, detail: Option<&str>) -> u64 {
    use base64::Engine;
    if detail == Some("low") {
        return 85;
    }
    let b64 = url.split_once(',').map_or("", |(_, b)| b);
    let head = base64::engine::general_purpose::STANDARD
        .decode(&b64.as_bytes()[..b64.len().min(32)])
        .unwrap_or_default();
    let (w, h) = match head.get(12..24) {
        Some(ihdr) if &ihdr[..4] == b"IHDR" => (
            u32::from_be_bytes(ihdr[4..8].try_into().unwrap()) as f64,
            u32::from_be_bytes(ihdr[8..12].try_into().unwrap()) as f64,
        ),
        _ => (1024.0, 1024.0),
    };
    let fit = (2048.0 / w.max(h)).min(1.0);
    let (w, h) = (w * fit, h * fit);
    let short = (768.0 / w.min(h)).min(1.0);
    let (w, h) = (w * short, h * short);
    85 + 170 * ((w / 512.0).ceil() * (h / 512.0).ceil()) as u64
}

/// Number of whitespace-separated words in `s`.
pub fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn content_text(c: Option<&Value>) -> String {
    match c {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The deterministic non-streaming reply content for a request:
/// `"mock reply to: " + first 20 chars of the last message's content`.
pub fn expected_reply(request: &Value) -> String {
    let last = request
        .get("messages")
        .and_then(|m| m.as_array())
        .and_then(|m| m.last())
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let head: String = last.chars().take(20).collect();
    format!("mock reply to: {head}")
}

fn stream_event(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

async fn sleep_ms(ms: Option<u64>) {
    if let Some(ms) = ms {
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// Azure OpenAI's rule on the `api-version` query ([`strict::openai_chat::check_azure_api_version`]),
/// as the refusal body Azure sends.
fn azure_refusal(path: &str, body: Option<&Value>) -> Option<String> {
    let version = path.split("api-version=").nth(1)?;
    strict::openai_chat::check_azure_api_version(version, body?)
        .err()
        .map(|r| r.openai_body())
}

/// OpenAI's error body: `{"error":{"message","type","param","code"}}` (its API reference,
/// "Error codes"; e.g. 400 `invalid_request_error` `context_length_exceeded` on `messages`).
pub fn openai_error_body(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> String {
    json!({"error":{"message":message,"type":kind,"param":param,"code":code}}).to_string()
}

/// OpenAI's 401 for an `OpenAI-Organization`/`OpenAI-Project` that is not the key's (the
/// mock's key has neither): `mismatched_organization` / `mismatched_project`.
fn organization_refusal(headers: &BTreeMap<String, String>) -> Option<String> {
    if headers.contains_key("openai-organization") {
        return Some(openai_error_body(
            "OpenAI-Organization header should match organization for API key",
            "invalid_request_error",
            None,
            Some("mismatched_organization"),
        ));
    }
    headers.contains_key("openai-project").then(|| {
        openai_error_body(
            "OpenAI-Project header should match project for API key",
            "invalid_request_error",
            None,
            Some("mismatched_project"),
        )
    })
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnTracker>,
) -> Result<Response<ChanBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            let (b, p) = channel_body(&shared, &conn, None, Some(0));
            drop(p);
            let mut resp = Response::new(b);
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(resp);
        }
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in parts.headers.iter() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|old| {
                old.push_str(", ");
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let behaviour = shared.behaviour_for(&headers);
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let stream = json_body
        .as_ref()
        .and_then(|j| j.get("stream"))
        .and_then(|s| s.as_bool())
        .unwrap_or(false);
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let behaviour = match azure_refusal(&path, json_body.as_ref()) {
        Some(body) => Behaviour {
            status: Some(400),
            body: Some(body),
            ..Behaviour::default()
        },
        None => match organization_refusal(&headers) {
            Some(body) => Behaviour::error(401, &body),
            None => behaviour,
        },
    };
    let rule_path = path.clone();
    let idx = shared.push(Recorded {
        method: parts.method.to_string(),
        path,
        headers,
        body,
        stream,
        peer: conn.peer,
        ..Recorded::default()
    });
    let mut guard = HandlerGuard {
        shared: shared.clone(),
        idx,
        armed: true,
    };

    sleep_ms(behaviour.stall_headers_ms).await;

    enum Plan {
        Fixed(u16, &'static str, String),
        Stream(Value),
        Frames(Vec<String>),
    }
    let plan = if parts.method != hyper::Method::POST {
        Plan::Fixed(
            404,
            "application/json",
            error_json("mock: only POST is served", "invalid_request_error"),
        )
    } else if let Some(body) = behaviour.body.clone() {
        Plan::Fixed(behaviour.status.unwrap_or(200), "", body)
    } else if let Some(frames) = behaviour.frames.clone() {
        Plan::Frames(frames)
    } else if let Some(status) = behaviour.status.filter(|s| *s >= 400) {
        Plan::Fixed(
            status,
            "application/json",
            error_json("mock failure", "server_error"),
        )
    } else {
        match json_body {
            Some(j) if j.is_object() && openai_rule_broken(&rule_path, &j).is_some() => {
                let refusal = openai_rule_broken(&rule_path, &j).unwrap_or_default();
                Plan::Fixed(400, "application/json", refusal)
            }
            Some(j) if j.is_object() => {
                if stream {
                    Plan::Stream(j)
                } else {
                    Plan::Fixed(
                        behaviour.status.unwrap_or(200),
                        "application/json",
                        completion(&j, idx, &behaviour).to_string(),
                    )
                }
            }
            _ => Plan::Fixed(
                400,
                "application/json",
                error_json(
                    "mock: request body is not a JSON object",
                    "invalid_request_error",
                ),
            ),
        }
    };

    let mut builder = Response::builder().header("x-mock-request-index", idx.to_string());
    if let Some(ra) = &behaviour.retry_after {
        builder = builder.header("retry-after", ra.as_str());
    }
    for (name, value) in &behaviour.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let resp = match plan {
        Plan::Fixed(status, ctype, text) => {
            let ctype = if ctype.is_empty() {
                behaviour
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/json".to_string())
            } else {
                ctype.to_string()
            };
            shared.update(idx, |e| e.rec.status = status);
            let bytes = Bytes::from(text);
            let (body, mut producer) =
                channel_body(&shared, &conn, Some(idx), Some(bytes.len() as u64));
            let delay = behaviour.delay_ms;
            tokio::spawn(async move {
                sleep_ms(delay).await;
                if bytes.is_empty() || producer.send(bytes).await {
                    producer.finish();
                }
            });
            builder
                .status(status)
                .header("content-type", ctype)
                .body(body)
                .expect("mock response")
        }
        Plan::Frames(frames) => {
            let status = behaviour.status.unwrap_or(200);
            shared.update(idx, |e| e.rec.status = status);
            let ctype = behaviour
                .content_type
                .clone()
                .unwrap_or_else(|| "text/event-stream".to_string());
            let (body, producer) = channel_body(&shared, &conn, Some(idx), None);
            tokio::spawn(produce_frames(producer, frames, behaviour));
            builder
                .status(status)
                .header("content-type", ctype)
                .body(body)
                .expect("mock response")
        }
        Plan::Stream(j) => {
            let status = behaviour.status.unwrap_or(200);
            shared.update(idx, |e| e.rec.status = status);
            let (body, producer) = channel_body(&shared, &conn, Some(idx), None);
            tokio::spawn(produce_stream(producer, j, idx, behaviour));
            builder
                .status(status)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(body)
                .expect("mock response")
        }
    };
    guard.armed = false;
    Ok(resp)
}

fn completion(req: &Value, idx: usize, b: &Behaviour) -> Value {
    let reply = expected_reply(req);
    let no_usage = b.no_usage;
    let prompt = if b.billed_tokens {
        billed_prompt_tokens(req)
    } else {
        prompt_words(req)
    };
    let completion = words(&reply);
    let mut v = json!({
        "id": format!("chatcmpl-mock-{idx}"),
        "object": "chat.completion",
        "created": MOCK_CREATED,
        "model": req.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply},
            "finish_reason": b.finish_reason.as_deref().unwrap_or("stop")
        }],
    });
    if !no_usage {
        v["usage"] = json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion
        });
    }
    v
}

async fn produce_stream(mut p: Producer, req: Value, idx: usize, b: Behaviour) {
    let id = format!("chatcmpl-mock-{idx}");
    let model = req.get("model").cloned().unwrap_or(Value::Null);
    let n = b.chunks.unwrap_or(5);
    let include_usage = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": MOCK_CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    };
    let between = b.chunk_delay_ms;

    sleep_ms(b.delay_ms).await;
    if !p
        .send(stream_event(&chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )))
        .await
    {
        return;
    }
    for i in 0..n {
        if b.drop_after == Some(i) {
            return p.abort().await;
        }
        if b.stall_after == Some(i) {
            return p.stall().await;
        }
        if b.error_event_after == Some(i) {
            return error_event(p, between).await;
        }
        sleep_ms(between).await;
        if !p
            .send(stream_event(&chunk(
                json!({"content": format!("tok{i} ")}),
                Value::Null,
            )))
            .await
        {
            return;
        }
    }
    if b.drop_after.is_some() {
        return p.abort().await;
    }
    if b.stall_after.is_some() {
        return p.stall().await;
    }
    if b.error_event_after.is_some() {
        return error_event(p, between).await;
    }
    sleep_ms(between).await;
    let finish = b.finish_reason.as_deref().unwrap_or("stop");
    if !p.send(stream_event(&chunk(json!({}), json!(finish)))).await {
        return;
    }
    if include_usage && !b.no_usage {
        let prompt = prompt_words(&req);
        let usage = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": MOCK_CREATED,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": n as u64,
                "total_tokens": prompt + n as u64
            }
        });
        sleep_ms(between).await;
        if !p.send(stream_event(&usage)).await {
            return;
        }
    }
    sleep_ms(between).await;
    if p.send(Bytes::from_static(b"data: [DONE]\n\n")).await {
        p.finish();
    }
}

/// The error event an OpenAI-compatible server sends mid-stream, then the end of the body.
async fn error_event(mut p: Producer, between: Option<u64>) {
    sleep_ms(between).await;
    let event = json!({"error": {"message": "busy", "type": "server_error", "code": null}});
    if p.send(stream_event(&event)).await {
        p.finish();
    }
}

async fn produce_frames(mut p: Producer, frames: Vec<String>, b: Behaviour) {
    sleep_ms(b.delay_ms).await;
    for (i, f) in frames.into_iter().enumerate() {
        if b.drop_after == Some(i) {
            return p.abort().await;
        }
        if b.stall_after == Some(i) {
            return p.stall().await;
        }
        if i > 0 {
            sleep_ms(b.chunk_delay_ms).await;
        }
        if !p.send(Bytes::from(f)).await {
            return;
        }
    }
    if b.drop_after.is_some() {
        return p.abort().await;
    }
    if b.stall_after.is_some() {
        return p.stall().await;
    }
    p.finish();
}

/// The OpenAI contract of the endpoint `path` names ([`strict::openai_chat`] for chat
/// completions, [`strict::openai_responses`] for Responses; other endpoints: none), as the
/// refusal body OpenAI sends.
fn openai_rule_broken(path: &str, body: &Value) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let checked = if path.ends_with("/chat/completions") {
        strict::openai_chat::check(body)
    } else if path.ends_with("/responses") {
        strict::openai_responses::check(body)
    } else {
        Ok(())
    };
    checked.err().map(|r| r.openai_body())
}
