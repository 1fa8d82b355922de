//! Switchyard's load benchmark (issue 8): run on demand, never by `cargo test`.
//!
//! ```sh
//! cargo bench --bench load                      # LOAD_SECS=5 LOAD_STREAMS=10000 by default
//! LOAD_ONLY=streams cargo bench --bench load    # only the concurrent slow streams (memory)
//! LOAD_ONLY=chunks cargo bench --bench load     # only chunks/s through long streams
//! LOAD_ONLY=plain cargo bench --bench load      # only non-streaming requests per CPU-second
//! LOAD_ONLY=streaming cargo bench --bench load  # only 20-chunk streams per CPU-second
//! LOAD_ONLY=translated cargo bench --bench load # 20-chunk streams per CPU-second, passed
//!                                               # through (chat door) and translated (the
//!                                               # Messages door on the same chat vendor)
//! LOAD_ONLY=bedrock cargo bench --bench load    # 20-delta streams per CPU-second at the
//!                                               # Messages door: an `anthropic` vendor's SSE
//!                                               # beside a `bedrock` vendor's event stream
//!                                               # (SigV4 signing, event-stream decoding)
//! LOAD_ONLY=mock cargo bench --bench load       # only the mock vendor, to profile by hand
//! LOAD_GATEWAY_BIN=path/to/switchyard cargo bench --bench load   # another gateway build
//! ```
//!
//! On loopback it starts, in this process, a minimal Rust mock vendor (hyper; a fixed JSON
//! answer, or an SSE stream of N chunks every M ms), then the release gateway
//! (`target/release/switchyard serve -c <generated config>`: auth, limits set high, metrics,
//! usage log to a file) and nginx as a plain reverse proxy (1 worker) when it is installed.
//! The gateway and nginx are pinned to core 0 with `taskset -c 0`; this process (mock and
//! load generator, one thread) to core 1. The load generator is a raw HTTP/1.1 client over
//! keep-alive connections, so that its cost is as small as possible and the same for every
//! target. It writes `benches/results/latest.md` and `benches/results/latency.svg`.
//!
//! Every loop is bounded in count and time; only 127.0.0.1 is used; child processes are
//! killed when their handle drops (also on panic).

// Test and bench code: a failed expectation panics with its message, which is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The bench measures the process itself (rlimits, CPU pinning, a counting allocator).
#![allow(unsafe_code)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod null_proxy;

const CLIENT_KEY: &str = "sk-switchyard-bench-0123456789abcdef";
/// The AWS environment of the gateway's `bedrock` vendor (and of this process, which loads the
/// same config): static keys with a session token, no instance metadata.
const AWS_BENCH_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "AKIABENCHBENCHBENCH1"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "bench/secret/key/not/real/0123456789abcd",
    ),
    ("AWS_SESSION_TOKEN", "bench-session-token"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];
/// Upper bound of samples kept per latency run (memory bound).
const MAX_SAMPLES: usize = 2_000_000;
/// Concurrency of the throughput run.
const CONC: usize = 64;

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/// A child process killed (SIGKILL) and reaped when dropped.
struct Child {
    name: &'static str,
    inner: std::process::Child,
}

impl Child {
    fn pid(&self) -> u32 {
        self.inner.id()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
        eprintln!("[load] stopped {}", self.name);
    }
}

fn have(cmd: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// `taskset -c CORE prog args…` when pinning is on, else `prog args…`.
fn pinned(pin: bool, core: &str, prog: &Path) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core).arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Waits (at most `limit`) until `addr` accepts a TCP connection.
async fn wait_listening(addr: SocketAddr, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A `/proc/PID/status` field in kB.
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User+system CPU seconds of a process (all its threads).
fn proc_cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`: state is field 3; utime, stime are 14, 15.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / tick
}

fn raise_nofile() -> u64 {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        // Root may raise the hard limit too; fall back to the hard limit otherwise.
        let want = libc::rlimit {
            rlim_cur: 65_536,
            rlim_max: r.rlim_max.max(65_536),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return 65_536;
        }
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

fn pin_self(core: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) pins the calling thread, and
    // every thread created afterwards inherits it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

// ---------------------------------------------------------------------------------------
// The mock vendor
// ---------------------------------------------------------------------------------------

const NONSTREAM_BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock-small","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#;
const EV_ROLE: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-small\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
const EV_TOK: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-small\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n";
const EV_FINISH: &str = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-small\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
const EV_DONE: &str = "data: [DONE]\n\n";

type MockBody = BoxBody<Bytes, Infallible>;

fn num_header(req: &Request<Incoming>, name: &str) -> Option<u64> {
    req.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// The Anthropic events of a Messages stream of `chunks` text deltas, each as its JSON.
fn anthropic_events(chunks: u64) -> Vec<String> {
    let mut events = vec![
        r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#.to_string(),
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_string(),
    ];
    for _ in 0..chunks {
        events.push(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"tok "}}"#.to_string(),
        );
    }
    events.push(r#"{"type":"content_block_stop","index":0}"#.to_string());
    events.push(format!(
        r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{chunks}}}}}"#
    ));
    events.push(r#"{"type":"message_stop"}"#.to_string());
    events
}

/// One AWS event-stream frame with string headers (AWS General Reference, "Event stream
/// encoding"): total length, headers length, prelude CRC, headers, payload, message CRC.
fn event_stream_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out
}

/// A stream of Anthropic events: as SSE (`anthropic`), or each in an invoke `chunk` frame
/// (`bedrock`, `{"bytes":"<base64>"}`), one write per event.
fn anthropic_stream(chunks: u64, bedrock: bool) -> Response<MockBody> {
    use base64::Engine;
    let frames: Vec<Bytes> = anthropic_events(chunks)
        .into_iter()
        .map(|json| {
            if !bedrock {
                let name = json
                    .split('"')
                    .nth(3)
                    .unwrap_or("message_delta")
                    .to_string();
                return Bytes::from(format!("event: {name}\ndata: {json}\n\n"));
            }
            let b64 = base64::engine::general_purpose::STANDARD.encode(json);
            let payload = format!(r#"{{"bytes":"{b64}","p":"abcdefghijklmnop"}}"#);
            Bytes::from(event_stream_frame(
                &[
                    (":event-type", "chunk"),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                payload.as_bytes(),
            ))
        })
        .collect();
    let s = futures::stream::iter(
        frames
            .into_iter()
            .map(|f| Ok::<_, Infallible>(Frame::data(f))),
    );
    let content_type = if bedrock {
        "application/vnd.amazon.eventstream"
    } else {
        "text/event-stream"
    };
    Response::builder()
        .header("content-type", content_type)
        .body(BodyExt::boxed(StreamBody::new(s)))
        .expect("response")
}

async fn mock_handle(req: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    let path = req.uri().path();
    let bedrock = path.ends_with("/invoke-with-response-stream");
    if bedrock || path == "/v1/messages" {
        let chunks = num_header(&req, "x-bench-chunks").unwrap_or(5).min(100_000);
        return Ok(anthropic_stream(chunks, bedrock));
    }
    let h_chunks = num_header(&req, "x-bench-chunks");
    let h_ms = num_header(&req, "x-bench-chunk-ms");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let stream = v.get("stream").and_then(|s| s.as_bool()).unwrap_or(false);
    if !stream {
        let resp = Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(NONSTREAM_BODY.as_bytes())).boxed())
            .expect("response");
        return Ok(resp);
    }
    let chunks = h_chunks
        .or_else(|| v.get("bench_chunks").and_then(|x| x.as_u64()))
        .unwrap_or(5)
        .min(100_000);
    let ms = h_ms
        .or_else(|| v.get("bench_chunk_ms").and_then(|x| x.as_u64()))
        .unwrap_or(0)
        .min(10_000);
    let usage = v
        .pointer("/stream_options/include_usage")
        .and_then(|x| x.as_bool())
        .unwrap_or(false);
    // Steps: 0 role, 1..=chunks content, then finish, usage (if asked), [DONE].
    let s = futures::stream::unfold(0u64, move |step| async move {
        let ev: Bytes = if step == 0 {
            Bytes::from_static(EV_ROLE.as_bytes())
        } else if step <= chunks {
            if step > 1 && ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Bytes::from_static(EV_TOK.as_bytes())
        } else if step == chunks + 1 {
            Bytes::from_static(EV_FINISH.as_bytes())
        } else if step == chunks + 2 && usage {
            Bytes::from(format!(
                "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-small\",\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n",
                chunks + 12
            ))
        } else if step == chunks + 2 || (step == chunks + 3 && usage) {
            Bytes::from_static(EV_DONE.as_bytes())
        } else {
            return None;
        };
        Some((Ok::<_, Infallible>(Frame::data(ev)), step + 1))
    });
    let resp = Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(s)))
        .expect("response");
    Ok(resp)
}

async fn mock_serve(listener: TcpListener) {
    // Bounded by the process: it ends with the runtime.
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = sock.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(sock), service_fn(mock_handle))
                .await;
        });
    }
}

// ---------------------------------------------------------------------------------------
// The load generator: a minimal HTTP/1.1 client
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct Resp {
    status: u16,
    /// From the start of the request to the first body byte.
    ttfb: Duration,
    /// SSE events (`\n\n`) seen in the body.
    events: u64,
    /// The longest pause between two body reads after the first one.
    max_gap: Duration,
}

struct Conn {
    addr: SocketAddr,
    sock: Option<TcpStream>,
    buf: Vec<u8>,
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.reserve(16 * 1024);
    let n = s.read_buf(buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

struct BodyTrack {
    t0: Instant,
    first: Option<Duration>,
    last: Option<Instant>,
    max_gap: Duration,
    events: u64,
    prev: u8,
}

impl BodyTrack {
    fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.first.is_none() {
            self.first = Some(now - self.t0);
        }
        if let Some(l) = self.last {
            self.max_gap = self.max_gap.max(now - l);
        }
        self.last = Some(now);
        for &b in data {
            if b == b'\n' && self.prev == b'\n' {
                self.events += 1;
            }
            self.prev = b;
        }
    }
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            sock: None,
            buf: Vec::with_capacity(32 * 1024),
        }
    }

    async fn request(&mut self, req: &[u8]) -> io::Result<Resp> {
        let t0 = Instant::now();
        let r = self.request_inner(req, t0).await;
        if r.is_err() {
            self.sock = None;
        }
        r
    }

    async fn request_inner(&mut self, req: &[u8], t0: Instant) -> io::Result<Resp> {
        if self.sock.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.sock = Some(s);
        }
        let s = self.sock.as_mut().expect("connected");
        let buf = &mut self.buf;
        buf.clear();
        s.write_all(req).await?;
        let head_end = loop {
            if let Some(p) = find(buf, b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err(io::Error::other("response head too large"));
            }
            read_more(s, buf).await?;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head.get(9..12).and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut clen: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some(v) = line.strip_prefix("content-length:") {
                clen = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("transfer-encoding:") {
                chunked = v.contains("chunked");
            } else if let Some(v) = line.strip_prefix("connection:") {
                close = v.contains("close");
            }
        }
        let mut tr = BodyTrack {
            t0,
            first: None,
            last: None,
            max_gap: Duration::ZERO,
            events: 0,
            prev: 0,
        };
        if chunked {
            let mut pos = head_end;
            // Bounded: every pass consumes a chunk or the stream ends with an error.
            loop {
                let line_end = loop {
                    if let Some(i) = find(&buf[pos..], b"\r\n") {
                        break pos + i;
                    }
                    if buf.len() - pos > 1024 {
                        return Err(io::Error::other("bad chunk size line"));
                    }
                    read_more(s, buf).await?;
                };
                let line = std::str::from_utf8(&buf[pos..line_end]).unwrap_or("");
                let hex = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16)
                    .map_err(|_| io::Error::other("bad chunk size"))?;
                pos = line_end + 2;
                if size == 0 {
                    while buf.len() < pos + 2 {
                        read_more(s, buf).await?;
                    }
                    break;
                }
                while buf.len() < pos + size + 2 {
                    read_more(s, buf).await?;
                }
                tr.feed(&buf[pos..pos + size]);
                pos += size + 2;
                if pos == buf.len() {
                    buf.clear();
                    pos = 0;
                }
            }
        } else if let Some(n) = clen {
            let mut seen = head_end;
            while buf.len() < head_end + n {
                tr.feed(&buf[seen..]);
                seen = buf.len();
                read_more(s, buf).await?;
            }
            tr.feed(&buf[seen..head_end + n]);
        } else {
            // Body until EOF.
            let mut seen = head_end;
            loop {
                tr.feed(&buf[seen..]);
                seen = buf.len();
                if read_more(s, buf).await.is_err() {
                    break;
                }
            }
            close = true;
        }
        if close {
            self.sock = None;
        }
        Ok(Resp {
            status,
            ttfb: tr.first.unwrap_or_else(|| t0.elapsed()),
            events: tr.events,
            max_gap: tr.max_gap,
        })
    }
}

fn build_request(stream: bool, chunks: u64, chunk_ms: u64) -> Rc<[u8]> {
    let body = if stream {
        format!(
            r#"{{"model":"bench","stream":true,"bench_chunks":{chunks},"bench_chunk_ms":{chunk_ms},"messages":[{{"role":"user","content":"How are you?"}}]}}"#
        )
    } else {
        r#"{"model":"bench","messages":[{"role":"user","content":"How are you?"}],"max_tokens":16}"#
            .to_string()
    };
    let mut r = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if stream {
        let _ = write!(
            r,
            "x-bench-chunks: {chunks}\r\nx-bench-chunk-ms: {chunk_ms}\r\n"
        );
    }
    r.push_str("\r\n");
    r.push_str(&body);
    Rc::from(r.into_bytes())
}

/// A non-streaming request whose one message is `prompt_bytes` of text.
fn build_big_request(prompt_bytes: usize) -> Rc<[u8]> {
    let filler: String = "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(prompt_bytes)
        .collect();
    let body = format!(
        r#"{{"model":"bench","messages":[{{"role":"user","content":"{filler}"}}],"max_tokens":16}}"#
    );
    let mut r = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    r.push_str(&body);
    Rc::from(r.into_bytes())
}

/// The gateway's own rewrite of a 1 MiB prompt, in this process: parse the borrowed view,
/// prepare, splice the upstream body. Returns the median time over `reps` and the time of a
/// plain copy of the same bytes, as the floor to compare with.
fn rewrite_1mib(reps: usize) -> (Duration, Duration, usize) {
    use switchyard::dialect::body::{Prepared, RewriteOptions};
    use switchyard::dialect::chat::parse;
    let req = build_big_request(1 << 20);
    let at = find(&req, b"\r\n\r\n").expect("head") + 4;
    let body = Bytes::copy_from_slice(&req[at..]);
    let median = |mut v: Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let mut rewrite = Vec::with_capacity(reps);
    let mut copy = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        let view = parse(std::hint::black_box(&body)).expect("valid request");
        let prepared = Prepared::new(
            view.fields(),
            &body,
            RewriteOptions {
                stream: view.stream,
                include_usage: true,
            },
        );
        std::hint::black_box(prepared.body_for("mock-small"));
        rewrite.push(t0.elapsed());
        let t0 = Instant::now();
        std::hint::black_box(Bytes::copy_from_slice(std::hint::black_box(&body)));
        copy.push(t0.elapsed());
    }
    (median(rewrite), median(copy), body.len())
}

/// In-process cost per request of the two features that cannot be switched off in a config:
/// bearer-key auth (SHA-256 of the key, then the lookup) and the metrics of a finished
/// request (`Metrics::count_request`, as the gateway calls it once per request). Medians of
/// `reps` batches of 1,000 calls, per call.
fn always_on_costs(config_toml: &str, reps: usize) -> (Duration, Duration) {
    use switchyard::accounting::usage::{Usage, UsageSource};
    use switchyard::observability::metrics::{Finished, Metrics};
    let config = switchyard::config::load_str(config_toml, Path::new("bench.toml"))
        .expect("the bench config loads");
    let header = format!("Bearer {CLIENT_KEY}");
    let now = std::time::SystemTime::now();
    let metrics = Metrics::new();
    let finished = Finished {
        team: "bench",
        key: "bench",
        model: "bench",
        provider: "benchmock",
        status: 200,
        stream: false,
        duration: Duration::from_micros(180),
        ttft: Some(Duration::from_micros(150)),
        own: Duration::from_micros(20),
        usage: Some((
            Usage {
                prompt_tokens: 12,
                completion_tokens: 7,
                total_tokens: 19,
                ..Usage::default()
            },
            UsageSource::Reported,
        )),
        adjusted: &[],
        door: "chat",
        cost: 0.000_006,
    };
    let per_call = |f: &dyn Fn()| {
        let mut v: Vec<Duration> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                for _ in 0..1_000 {
                    f();
                }
                t0.elapsed() / 1_000
            })
            .collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let auth = per_call(&|| {
        let p = switchyard::policy::auth::authenticate(&config, Some(header.as_bytes()), now);
        assert!(
            std::hint::black_box(p).is_ok(),
            "the bench key authenticates"
        );
    });
    let count = per_call(&|| metrics.count_request(std::hint::black_box(&finished)));
    (auth, count)
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone)]
struct Lat {
    us: Vec<u32>,
    errors: u64,
}

impl Lat {
    fn pct(&self, p: f64) -> f64 {
        if self.us.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (self.us.len() - 1) as f64).round() as usize;
        self.us[i.min(self.us.len() - 1)] as f64
    }
}

/// Sequential requests on one keep-alive connection for `secs` (after a 200-request warm-up):
/// full-response latency, or time to first body byte when `ttfb`.
async fn run_c1(addr: SocketAddr, req: &[u8], secs: f64, ttfb: bool) -> Lat {
    let mut c = Conn::new(addr);
    for _ in 0..200 {
        let _ = c.request(req).await;
    }
    let mut lat = Lat::default();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end && lat.us.len() < MAX_SAMPLES {
        let t0 = Instant::now();
        match c.request(req).await {
            Ok(r) if r.status == 200 => {
                let d = if ttfb { r.ttfb } else { t0.elapsed() };
                lat.us.push(d.as_micros().min(u32::MAX as u128) as u32);
            }
            _ => lat.errors += 1,
        }
    }
    lat.us.sort_unstable();
    lat
}

struct Tput {
    ok: u64,
    errors: u64,
    secs: f64,
    /// CPU seconds the proxy (if any) spent during the run.
    proxy_cpu: Option<f64>,
}

async fn tput_phase(addr: SocketAddr, req: &Rc<[u8]>, min_events: u64, dur: f64) -> (u64, u64) {
    let end = Instant::now() + Duration::from_secs_f64(dur);
    let mut tasks = Vec::with_capacity(CONC);
    for _ in 0..CONC {
        let req = req.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut c = Conn::new(addr);
            let (mut ok, mut err) = (0u64, 0u64);
            while Instant::now() < end {
                match c.request(&req).await {
                    Ok(r) if r.status == 200 && r.events >= min_events => ok += 1,
                    _ => err += 1,
                }
            }
            (ok, err)
        }));
    }
    let (mut ok, mut err) = (0, 0);
    for t in tasks {
        if let Ok((o, e)) = t.await {
            ok += o;
            err += e;
        }
    }
    (ok, err)
}

/// `CONC` connections sending back to back for `secs` (after a 0.5 s warm-up); a request
/// counts when it is answered 200 with at least `min_events` SSE events (0: any body).
async fn run_tput(
    addr: SocketAddr,
    req: Rc<[u8]>,
    min_events: u64,
    secs: f64,
    proxy_pid: Option<u32>,
) -> Tput {
    tput_phase(addr, &req, min_events, 0.5).await;
    let cpu0 = proxy_pid.map(proc_cpu_secs);
    let t0 = Instant::now();
    let (ok, errors) = tput_phase(addr, &req, min_events, secs).await;
    let el = t0.elapsed().as_secs_f64();
    let proxy_cpu = proxy_pid.zip(cpu0).map(|(p, c0)| proc_cpu_secs(p) - c0);
    Tput {
        ok,
        errors,
        secs: el,
        proxy_cpu,
    }
}

impl Tput {
    fn per_s(&self) -> f64 {
        self.ok as f64 / self.secs.max(1e-9)
    }

    /// Requests per CPU-second of the proxy (`None` for the mock alone).
    fn per_cpu_s(&self) -> Option<f64> {
        self.proxy_cpu.map(|c| self.ok as f64 / c.max(1e-9))
    }
}

/// The streams of the streaming throughput run: issue 17's measure (20 content chunks, no
/// delay at the mock); each has role + 20 chunks + finish + `[DONE]` events at least.
const STREAM_CHUNKS: u64 = 20;

fn streaming_request() -> Rc<[u8]> {
    build_request(true, STREAM_CHUNKS, 0)
}

/// The same stream asked for at the Messages door (`/v1/messages`): the gateway translates the
/// request to chat and each chat chunk back to Messages events (`message_start` …
/// `message_stop`), so a stream ends with at least role + 20 content deltas + stop events.
fn translated_streaming_request() -> Rc<[u8]> {
    let body = r#"{"model":"bench","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"How are you?"}]}"#;
    let r = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {CLIENT_KEY}\r\nanthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-bench-chunks: {STREAM_CHUNKS}\r\nx-bench-chunk-ms: 0\r\n\r\n{body}",
        body.len()
    );
    Rc::from(r.into_bytes())
}

/// A 20-delta stream asked for at the Messages door of `model` (`bench-anthropic`: an
/// `anthropic` vendor, passed through; `bench-bedrock`: a `bedrock` vendor, signed with SigV4
/// and re-framed from its event stream). Each ends with at least 25 events.
fn messages_streaming_request(model: &str) -> Rc<[u8]> {
    let body = format!(
        r#"{{"model":"{model}","stream":true,"max_tokens":64,"messages":[{{"role":"user","content":"How are you?"}}]}}"#
    );
    let r = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {CLIENT_KEY}\r\nanthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-bench-chunks: {STREAM_CHUNKS}\r\n\r\n{body}",
        body.len()
    );
    Rc::from(r.into_bytes())
}

/// Chunks/s through 1,000-chunk streams (no delay at the mock), at most `reps` streams
/// and about `secs` seconds.
async fn run_chunks(addr: SocketAddr, req: &[u8], secs: f64) -> (f64, u64) {
    let mut c = Conn::new(addr);
    let _ = c.request(req).await;
    let (mut events, mut errors) = (0u64, 0u64);
    let t0 = Instant::now();
    let mut n = 0;
    while n < 1_000 && t0.elapsed().as_secs_f64() < secs {
        n += 1;
        match c.request(req).await {
            Ok(r) if r.status == 200 && r.events >= 1_000 => events += r.events,
            _ => errors += 1,
        }
    }
    (events as f64 / t0.elapsed().as_secs_f64(), errors)
}

struct Target {
    name: &'static str,
    addr: SocketAddr,
    pid: Option<u32>,
}

struct Figures {
    lat: Lat,
    /// Full-response latency at c=1 of a request with a 1 MiB prompt.
    big: Lat,
    tput: Tput,
    ttfb: Lat,
    chunks_per_s: f64,
    chunk_errors: u64,
    /// Throughput of 20-chunk streams at c=`CONC`.
    stput: Tput,
}

async fn measure(t: &Target, secs: f64) -> Figures {
    let plain = build_request(false, 0, 0);
    let short = build_request(true, 5, 0);
    let long = build_request(true, 1_000, 0);
    eprintln!("[load] {}: latency at c=1", t.name);
    let lat = run_c1(t.addr, &plain, secs, false).await;
    eprintln!("[load] {}: throughput at c={CONC}", t.name);
    let tput = run_tput(t.addr, plain.clone(), 0, secs, t.pid).await;
    eprintln!(
        "[load] {}: throughput of {STREAM_CHUNKS}-chunk streams at c={CONC}",
        t.name
    );
    let stput = run_tput(t.addr, streaming_request(), STREAM_CHUNKS + 3, secs, t.pid).await;
    eprintln!("[load] {}: stream time to first byte", t.name);
    let ttfb = run_c1(t.addr, &short, secs, true).await;
    eprintln!("[load] {}: 1,000-chunk streams", t.name);
    let (chunks_per_s, chunk_errors) = run_chunks(t.addr, &long, secs).await;
    eprintln!("[load] {}: 1 MiB prompts", t.name);
    let big = run_c1(
        t.addr,
        &build_big_request(1 << 20),
        (secs / 2.0).max(0.5),
        false,
    )
    .await;
    Figures {
        lat,
        big,
        tput,
        ttfb,
        chunks_per_s,
        chunk_errors,
        stput,
    }
}

struct Many {
    asked: usize,
    opened: usize,
    completed: usize,
    peak_open: usize,
    peak_rss_kb: u64,
    max_gap: Duration,
    secs: f64,
    /// Why the streams that did not complete failed, with counts.
    failures: std::collections::BTreeMap<String, usize>,
}

/// `k` concurrent slow streams (`chunks` chunks, one a second), opened over `ramp`; samples
/// the gateway's VmRSS every 100 ms.
async fn run_many(addr: SocketAddr, pid: u32, k: usize, chunks: u64, ramp: Duration) -> Many {
    let req = build_request(true, chunks, 1_000);
    let open = Arc::new(AtomicUsize::new(0));
    let opened = Arc::new(AtomicUsize::new(0));
    let bound = ramp + Duration::from_secs(chunks + 20);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(k);
    for i in 0..k {
        let req = req.clone();
        let (open, opened) = (open.clone(), opened.clone());
        let delay = ramp.mul_f64(i as f64 / k as f64);
        tasks.push(tokio::task::spawn_local(async move {
            tokio::time::sleep(delay).await;
            let mut c = Conn::new(addr);
            open.fetch_add(1, Ordering::Relaxed);
            let r = tokio::time::timeout(bound, c.request(&req)).await;
            open.fetch_sub(1, Ordering::Relaxed);
            match r {
                Ok(Ok(r)) if r.status == 200 => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    Ok(r)
                }
                Ok(Ok(r)) => Err(format!("status {}", r.status)),
                Ok(Err(e)) => Err(format!("{:?}", e.kind())),
                Err(_) => Err("timed out".to_string()),
            }
        }));
    }
    let sampler = {
        let open = open.clone();
        tokio::task::spawn_local(async move {
            let (mut peak_rss, mut peak_open) = (0u64, 0usize);
            let end = Instant::now() + bound + Duration::from_secs(1);
            while Instant::now() < end {
                if let Some(kb) = proc_status_kb(pid, "VmRSS:") {
                    peak_rss = peak_rss.max(kb);
                }
                peak_open = peak_open.max(open.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
                if peak_open > 0 && open.load(Ordering::Relaxed) == 0 {
                    break;
                }
            }
            (peak_rss, peak_open)
        })
    };
    let (mut completed, mut max_gap) = (0usize, Duration::ZERO);
    let mut failures = std::collections::BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => {
                // role + chunks + finish + [DONE] at least.
                if r.events >= chunks + 3 {
                    completed += 1;
                } else {
                    *failures.entry("incomplete".to_string()).or_insert(0) += 1;
                }
                max_gap = max_gap.max(r.max_gap);
            }
            Ok(Err(why)) => *failures.entry(why).or_insert(0) += 1,
            Err(_) => *failures.entry("task failed".to_string()).or_insert(0) += 1,
        }
    }
    let (peak_rss_kb, peak_open) = sampler.await.unwrap_or((0, 0));
    Many {
        asked: k,
        opened: opened.load(Ordering::Relaxed),
        completed,
        peak_open,
        peak_rss_kb,
        max_gap,
        secs: t0.elapsed().as_secs_f64(),
        failures,
    }
}

// ---------------------------------------------------------------------------------------
// Setup of the gateway and nginx
// ---------------------------------------------------------------------------------------

/// Which optional features a gateway config switches on (auth and metrics always are).
#[derive(Clone, Copy)]
struct Features {
    limits: bool,
    usage_log: bool,
    /// The per-request log line (`RUST_LOG=info`, the default) rather than `warn`.
    request_log: bool,
}

const ALL_ON: Features = Features {
    limits: true,
    usage_log: true,
    request_log: true,
};

fn gateway_config(dir: &Path, port: u16, admin: u16, mock: u16, f: Features) -> String {
    let full = gateway_config_all(dir, port, admin, mock);
    let mut out = String::with_capacity(full.len());
    for line in full.lines() {
        let limit = [
            "rpm",
            "tpm",
            "max_concurrent",
            "tokens_per_day",
            "usd_per_month",
        ]
        .iter()
        .any(|k| line.starts_with(&format!("{k} =")));
        if (limit && !f.limits) || (line.starts_with("usage =") && !f.usage_log) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn gateway_config_all(dir: &Path, port: u16, admin: u16, mock: u16) -> String {
    let sha = hex::encode(Sha256::digest(CLIENT_KEY.as_bytes()));
    let d = dir.display();
    format!(
        r#"# generated by benches/load: every feature on, limits far above what the bench sends
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
threads = 1

[state]
backend = "memory"
dir = "{d}/state"

[log]
usage = "{d}/usage.jsonl"

[[providers]]
name = "benchmock"
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
api_key_env = "SWITCHYARD_BENCH_VENDOR_KEY"
# The stream's shape, for a translated request too (whose body keeps no `bench_chunks`).
forward_headers = ["x-bench-chunks", "x-bench-chunk-ms"]

[[providers]]
name = "benchanthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"
api_key_env = "SWITCHYARD_BENCH_VENDOR_KEY"
forward_headers = ["x-bench-chunks"]

# Signed with the AWS keys of the bench's environment (AWS_ACCESS_KEY_ID, …).
[[providers]]
name = "benchbedrock"
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{mock}"
forward_headers = ["x-bench-chunks"]

[[models]]
name = "bench-anthropic"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
  [[models.routes]]
  provider = "benchanthropic"
  model = "claude-sonnet-4-5"

[[models]]
name = "bench-bedrock"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
  [[models.routes]]
  provider = "benchbedrock"
  model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

[[models]]
name = "bench"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
  [[models.routes]]
  provider = "benchmock"
  model = "mock-small"

[[teams]]
name = "bench"
rpm = 1000000000
tpm = 4000000000
max_concurrent = 1000000
tokens_per_day = 4000000000
usd_per_month = 1000000000.0

[[keys]]
id = "bench"
team = "bench"
sha256 = "{sha}"
rpm = 1000000000
tpm = 4000000000
max_concurrent = 1000000
"#
    )
}

fn nginx_config(dir: &Path, port: u16, mock: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 30000; }}
http {{
  access_log off;
  client_max_body_size 64m;
  client_body_buffer_size 2m;
  client_body_temp_path {d}/ngx-body;
  proxy_temp_path {d}/ngx-proxy;
  fastcgi_temp_path {d}/ngx-fastcgi;
  uwsgi_temp_path {d}/ngx-uwsgi;
  scgi_temp_path {d}/ngx-scgi;
  keepalive_requests 100000000;
  upstream mock {{ server 127.0.0.1:{mock}; keepalive 256; keepalive_requests 100000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"#
    )
}

/// The gateway measured: `LOAD_GATEWAY_BIN` (another build, e.g. one with frame pointers to
/// profile), else the one cargo built with this bench.
fn gateway_bin() -> PathBuf {
    std::env::var_os("LOAD_GATEWAY_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_switchyard")),
        PathBuf::from,
    )
}

/// How the report names the gateway's build: its profile directory, or the path given.
fn gateway_build() -> String {
    if std::env::var_os("LOAD_GATEWAY_BIN").is_some() {
        return format!("`{}`", gateway_bin().display());
    }
    let bin = gateway_bin();
    let profile = bin
        .parent()
        .and_then(|d| d.file_name())
        .map_or("release".into(), |n| n.to_string_lossy().into_owned());
    format!("`{profile}` build")
}

/// Starts the release gateway on free loopback ports with a generated config; panics with its
/// log when it does not listen within 30 s.
async fn start_gateway(
    pin: bool,
    work: &Path,
    tag: &str,
    mock_port: u16,
    f: Features,
) -> (Child, SocketAddr) {
    // LOAD_GATEWAY_BIN: another build of the gateway (e.g. one with frame pointers to profile).
    let gw_bin = gateway_bin();
    let (gw_port, admin_port) = (free_port(), free_port());
    let dir = work.join(tag);
    std::fs::create_dir_all(&dir).expect("gateway dir");
    let cfg = dir.join("switchyard.toml");
    std::fs::write(
        &cfg,
        gateway_config(&dir, gw_port, admin_port, mock_port, f),
    )
    .expect("cfg");
    let log_path = dir.join("switchyard.log");
    let gw_log = std::fs::File::create(&log_path).expect("log");
    let mut gw = Child {
        name: "switchyard",
        inner: pinned(pin, "0", &gw_bin)
            .arg("serve")
            .arg("-c")
            .arg(&cfg)
            .env("SWITCHYARD_BENCH_VENDOR_KEY", "sk-vendor-bench")
            .envs(AWS_BENCH_ENV)
            .env("RUST_LOG", if f.request_log { "info" } else { "warn" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(gw_log)
            .spawn()
            .expect("start switchyard"),
    };
    let gw_addr: SocketAddr = format!("127.0.0.1:{gw_port}").parse().expect("addr");
    let mut up = false;
    for _ in 0..60 {
        if gw.inner.try_wait().ok().flatten().is_some() {
            break;
        }
        if wait_listening(gw_addr, Duration::from_millis(500)).await {
            up = true;
            break;
        }
    }
    if !up {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("switchyard did not start listening within 30 s:\n{log}");
    }
    (gw, gw_addr)
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

fn svg(rows: &[(&str, &Lat)]) -> String {
    let pcts = [50.0, 90.0, 99.0, 99.9];
    let colors = ["#4e79a7", "#59a14f", "#f28e2b", "#e15759"];
    let max = rows
        .iter()
        .flat_map(|(_, l)| pcts.iter().map(|p| l.pct(*p)))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    // Log scale from 1 µs to the decade above the largest value.
    let decades = max.log10().ceil().max(1.0);
    let scale = |v: f64| (v.max(1.0).log10() / decades).clamp(0.0, 1.0);
    let (w, h, left, top, bottom) = (760.0, 380.0, 60.0, 40.0, 60.0);
    let plot_h = h - top - bottom;
    let group_w = (w - left - 20.0) / pcts.len() as f64;
    let bar_w = (group_w - 30.0) / rows.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="22" font-size="14">Non-streaming latency at concurrency 1 (µs, log scale, lower is better)</text>"#
    );
    for i in 0..=(decades as i32) {
        let v = 10f64.powi(i);
        let y = top + plot_h - plot_h * scale(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            w - 20.0,
            left - 6.0,
            y + 4.0
        );
    }
    for (gi, p) in pcts.iter().enumerate() {
        let gx = left + gi as f64 * group_w + 15.0;
        for (ri, (_, lat)) in rows.iter().enumerate() {
            let v = lat.pct(*p);
            let v = if v.is_finite() { v } else { 0.0 };
            let bh = plot_h * scale(v);
            let x = gx + ri as f64 * bar_w;
            let y = top + plot_h - bh;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{v:.0}</text>"#,
                bar_w - 4.0,
                colors[ri % colors.len()],
                x + (bar_w - 4.0) / 2.0,
                y - 3.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">p{p}</text>"#,
            gx + (group_w - 30.0) / 2.0,
            top + plot_h + 18.0
        );
    }
    for (ri, (name, _)) in rows.iter().enumerate() {
        let x = left + ri as f64 * 170.0;
        let y = h - 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{name}</text>"#,
            y - 10.0,
            colors[ri % colors.len()],
            x + 16.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "meets",
        Some(false) => "**falls short**",
        None => "not measured",
    }
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var("LOAD_ROLE").is_ok_and(|r| r == null_proxy::ROLE) {
        let listen = std::env::var("LOAD_NULL_LISTEN").expect("LOAD_NULL_LISTEN");
        let upstream = std::env::var("LOAD_NULL_UPSTREAM").expect("LOAD_NULL_UPSTREAM");
        null_proxy::run(&listen, upstream.parse().expect("upstream address"));
    }
    // The generated config names its vendor key by this variable; the in-process measures
    // load that config too. Set before any thread starts.
    std::env::set_var("SWITCHYARD_BENCH_VENDOR_KEY", "sk-vendor-bench");
    // The `bedrock` vendor's AWS credentials: static keys from the environment (no IMDS).
    for (k, v) in AWS_BENCH_ENV {
        std::env::set_var(k, v);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cores >= 2 && have("taskset").is_some();
    if pin && !pin_self(1) {
        eprintln!("[load] could not pin the harness to core 1");
    }
    let nofile = raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(pin, cores, nofile));
}

async fn run(pin: bool, cores: usize, nofile: u64) {
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let load_start = loadavg();
    let secs = env_num("LOAD_SECS", 5.0).clamp(0.5, 120.0);
    let want_streams = env_num("LOAD_STREAMS", 10_000.0).clamp(0.0, 50_000.0) as usize;
    // This process holds two sockets per stream (client and mock side).
    let streams = want_streams.min((nofile as usize).saturating_sub(500) / 2);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out_dir = root.join("benches/results");
    std::fs::create_dir_all(&out_dir).expect("benches/results");
    let work = std::env::temp_dir().join(format!("switchyard-load-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");

    // The mock vendor, in this process (core 1).
    let mock_l = TcpListener::bind("127.0.0.1:0").await.expect("mock bind");
    let mock_port = mock_l.local_addr().expect("addr").port();
    tokio::task::spawn_local(mock_serve(mock_l));

    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    if only == "mock" {
        // The mock alone, to point a gateway and a profiler at by hand.
        eprintln!("[load] mock vendor on 127.0.0.1:{mock_port} (Ctrl-C to stop)");
        std::future::pending::<()>().await;
    }

    // The gateway (core 0).
    let gw = start_gateway(pin, &work, "switchyard", mock_port, ALL_ON).await;
    let gw_addr = gw.1;
    let gw = gw.0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_start = proc_status_kb(gw.pid(), "VmRSS:");

    // nginx (core 0), when installed.
    let nginx_bin = have("nginx");
    let mut nginx: Option<Child> = None;
    let mut nginx_addr = None;
    let mut nginx_note = String::new();
    if let Some(bin) = &nginx_bin {
        let port = free_port();
        let ncfg = work.join("nginx.conf");
        std::fs::write(&ncfg, nginx_config(&work, port, mock_port)).expect("nginx cfg");
        let child = pinned(pin, "0", bin)
            .arg("-p")
            .arg(&work)
            .arg("-c")
            .arg(&ncfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                let c = Child {
                    name: "nginx",
                    inner: c,
                };
                let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
                if wait_listening(addr, Duration::from_secs(10)).await {
                    nginx_addr = Some((addr, c.pid()));
                    nginx = Some(c);
                } else {
                    nginx_note = format!(
                        "nginx did not start: {}",
                        std::fs::read_to_string(work.join("nginx-error.log")).unwrap_or_default()
                    );
                }
            }
            Err(e) => nginx_note = format!("nginx did not start: {e}"),
        }
    } else {
        nginx_note =
            "nginx is not installed (`apt-get install -y nginx-light`): its column is skipped"
                .into();
    }
    let nginx_version = nginx_bin
        .as_ref()
        .and_then(|b| Command::new(b).arg("-v").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();

    // pingora alone (core 0): this binary as a null proxy, the framework's floor.
    let null_port = free_port();
    let null_addr: SocketAddr = format!("127.0.0.1:{null_port}").parse().expect("addr");
    let null_proxy = Child {
        name: "pingora null proxy",
        inner: pinned(pin, "0", &std::env::current_exe().expect("own path"))
            .env("LOAD_ROLE", null_proxy::ROLE)
            .env("LOAD_NULL_LISTEN", null_addr.to_string())
            .env("LOAD_NULL_UPSTREAM", format!("127.0.0.1:{mock_port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the pingora null proxy"),
    };
    assert!(
        wait_listening(null_addr, Duration::from_secs(10)).await,
        "the pingora null proxy did not listen"
    );

    let mock_addr: SocketAddr = format!("127.0.0.1:{mock_port}").parse().expect("addr");
    let mut targets = vec![Target {
        name: "direct",
        addr: mock_addr,
        pid: None,
    }];
    if let Some((addr, pid)) = nginx_addr {
        targets.push(Target {
            name: "nginx",
            addr,
            pid: Some(pid),
        });
    }
    targets.push(Target {
        name: "pingora",
        addr: null_addr,
        pid: Some(null_proxy.pid()),
    });
    targets.push(Target {
        name: "switchyard",
        addr: gw_addr,
        pid: Some(gw.pid()),
    });

    // Sanity: one plain and one streamed request through every target.
    for t in &targets {
        let mut c = Conn::new(t.addr);
        let r = c.request(&build_request(false, 0, 0)).await;
        let s = c.request(&build_request(true, 3, 0)).await;
        match (r, s) {
            (Ok(r), Ok(s)) if r.status == 200 && s.status == 200 && s.events >= 5 => {}
            (r, s) => panic!(
                "{}: sanity request failed: plain {:?}, stream {:?}",
                t.name,
                r.map(|r| r.status),
                s.map(|s| (s.status, s.events))
            ),
        }
    }

    if only == "chunks" {
        // Chunks/s through 1,000-chunk streams only; no report is written.
        for t in &targets {
            let (rate, errors) = run_chunks(t.addr, &build_request(true, 1_000, 0), secs).await;
            eprintln!("[load] {}: {rate:.0} chunks/s, {errors} failed", t.name);
        }
        return;
    }
    if only == "streaming" || only == "plain" {
        // Requests/s at c=CONC and per proxy CPU-second only (20-chunk streams, or
        // non-streaming requests); no report is written.
        let mut rows = Vec::new();
        for t in &targets {
            let r = if only == "plain" {
                run_tput(t.addr, build_request(false, 0, 0), 0, secs, t.pid).await
            } else {
                run_tput(t.addr, streaming_request(), STREAM_CHUNKS + 3, secs, t.pid).await
            };
            rows.push((t.name, r));
        }
        let pingora = rows.iter().find(|(n, _)| *n == "pingora").map(|(_, r)| r);
        for (name, r) in &rows {
            let vs = |v: Option<f64>, p: Option<f64>| {
                v.zip(p)
                    .map_or("–".to_string(), |(v, p)| format!("{:.2}", v / p))
            };
            eprintln!(
                "[load] {name}: {:.0} requests/s ({only}, c={CONC}), {} per proxy CPU-second ({} \
                 × pingora), {} failed",
                r.per_s(),
                fmt_opt(r.per_cpu_s(), 0),
                vs(r.per_cpu_s(), pingora.and_then(Tput::per_cpu_s)),
                r.errors
            );
        }
        return;
    }
    if only == "translated" {
        // Requests/s and per proxy CPU-second of the gateway alone, the same 20-chunk stream
        // passed through and translated; no report is written.
        let t = targets
            .iter()
            .find(|t| t.name == "switchyard")
            .expect("the gateway is a target");
        let pass = run_tput(t.addr, streaming_request(), STREAM_CHUNKS + 3, secs, t.pid).await;
        let tr = run_tput(
            t.addr,
            translated_streaming_request(),
            STREAM_CHUNKS + 3,
            secs,
            t.pid,
        )
        .await;
        for (name, r) in [("passed through", &pass), ("translated", &tr)] {
            eprintln!(
                "[load] switchyard, {name}: {:.0} requests/s (c={CONC}), {} per proxy CPU-second, {} failed",
                r.per_s(),
                fmt_opt(r.per_cpu_s(), 0),
                r.errors
            );
        }
        if let (Some(a), Some(b)) = (tr.per_cpu_s(), pass.per_cpu_s()) {
            eprintln!(
                "[load] translated / passed through, per CPU-second: {:.2}",
                a / b
            );
        }
        return;
    }
    if only == "bedrock" {
        // Requests/s and per proxy CPU-second of the gateway alone, the same 20-delta stream
        // at the Messages door from an `anthropic` vendor (SSE, passed through) and from a
        // `bedrock` vendor (SigV4, event stream re-framed); no report is written.
        let t = targets
            .iter()
            .find(|t| t.name == "switchyard")
            .expect("the gateway is a target");
        let mut runs = Vec::new();
        for (name, model) in [
            ("anthropic", "bench-anthropic"),
            ("bedrock", "bench-bedrock"),
        ] {
            let req = messages_streaming_request(model);
            runs.push((
                name,
                run_tput(t.addr, req, STREAM_CHUNKS + 5, secs, t.pid).await,
            ));
        }
        for (name, r) in &runs {
            eprintln!(
                "[load] switchyard, Messages stream from {name}: {:.0} requests/s (c={CONC}), {} per proxy CPU-second, {} failed",
                r.per_s(),
                fmt_opt(r.per_cpu_s(), 0),
                r.errors
            );
        }
        if let (Some(a), Some(b)) = (runs[1].1.per_cpu_s(), runs[0].1.per_cpu_s()) {
            eprintln!("[load] bedrock / anthropic, per CPU-second: {:.2}", a / b);
        }
        return;
    }
    if only == "streams" {
        // A quick look at the memory of concurrent streams only; no report is written.
        drop(nginx);
        let ramp = Duration::from_secs_f64((streams as f64 / 2_000.0).clamp(1.0, 10.0));
        let m = run_many(gw_addr, gw.pid(), streams, 10, ramp).await;
        eprintln!(
            "[load] {} streams: {} answered 200, {} complete, peak RSS {:.1} MB, idle RSS at start {:.1} MB, longest gap {:?}, failures {:?}",
            m.asked,
            m.opened,
            m.completed,
            m.peak_rss_kb as f64 / 1024.0,
            idle_rss_start.unwrap_or(0) as f64 / 1024.0,
            m.max_gap,
            m.failures
        );
        return;
    }

    let mut figs = Vec::new();
    for t in &targets {
        figs.push(measure(t, secs).await);
    }
    drop(nginx);
    let (rewrite_t, copy_t, rewrite_bytes) = rewrite_1mib(101);
    let (auth_t, metrics_t) = always_on_costs(&gateway_config_all(&work, 1, 2, mock_port), 51);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_after = proc_status_kb(gw.pid(), "VmRSS:");

    let stream_chunks = 10u64;
    let many = if streams > 0 {
        eprintln!("[load] switchyard: {streams} concurrent slow streams");
        let ramp = Duration::from_secs_f64((streams as f64 / 2_000.0).clamp(1.0, 10.0));
        Some(run_many(gw_addr, gw.pid(), streams, stream_chunks, ramp).await)
    } else {
        None
    };
    let hwm = proc_status_kb(gw.pid(), "VmHWM:");
    // The same streams through pingora alone: the framework's own memory per stream.
    let null_idle = proc_status_kb(null_proxy.pid(), "VmRSS:");
    let null_many = if streams > 0 {
        eprintln!("[load] pingora null proxy: {streams} concurrent slow streams");
        let ramp = Duration::from_secs_f64((streams as f64 / 2_000.0).clamp(1.0, 10.0));
        Some(run_many(null_addr, null_proxy.pid(), streams, stream_chunks, ramp).await)
    } else {
        None
    };
    drop(null_proxy);
    let usage_lines = std::fs::read_to_string(work.join("switchyard/usage.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0);
    drop(gw);

    // The cost of each optional feature: all on, then each one off, then all off.
    let variants: [(&str, Features); 5] = [
        ("all on", ALL_ON),
        (
            "limits off",
            Features {
                limits: false,
                ..ALL_ON
            },
        ),
        (
            "usage log off",
            Features {
                usage_log: false,
                ..ALL_ON
            },
        ),
        (
            "request log off (`RUST_LOG=warn`)",
            Features {
                request_log: false,
                ..ALL_ON
            },
        ),
        (
            "limits, usage log and request log off",
            Features {
                limits: false,
                usage_log: false,
                request_log: false,
            },
        ),
    ];
    let feat_secs = secs;
    let plain = build_request(false, 0, 0);
    let mut feature_rows = Vec::new();
    for (i, (label, f)) in variants.iter().enumerate() {
        eprintln!("[load] feature cost: {label}");
        let (child, addr) = start_gateway(pin, &work, &format!("feat{i}"), mock_port, *f).await;
        let lat = run_c1(addr, &plain, feat_secs, false).await;
        let tput = run_tput(addr, plain.clone(), 0, feat_secs, Some(child.pid())).await;
        drop(child);
        feature_rows.push((*label, lat, tput));
    }

    // ------------------------------------------------------------------ the report
    let idx = |n: &str| targets.iter().position(|t| t.name == n);
    let d = &figs[idx("direct").expect("direct")];
    let n = idx("nginx").map(|i| &figs[i]);
    let pn = idx("pingora").map(|i| &figs[i]);
    let g = &figs[idx("switchyard").expect("switchyard")];
    let rps = |f: &Figures| f.tput.ok as f64 / f.tput.secs;
    let added = |f: &Figures, p: f64| f.lat.pct(p) - d.lat.pct(p);
    let added_ttfb = |f: &Figures, p: f64| f.ttfb.pct(p) - d.ttfb.pct(p);

    let mut md = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let _ = writeln!(md, "# Switchyard load benchmark: latest run\n");
    let _ = writeln!(
        md,
        "{date}; {cores} cores ({cpu}); {} per measurement; `cargo bench --bench load`.\n",
        if secs == secs.trunc() {
            format!("{secs:.0} s")
        } else {
            format!("{secs} s")
        }
    );
    let _ = writeln!(
        md,
        "Loopback only. {}. Load generator and mock vendor: one thread of this harness (a raw \
         HTTP/1.1 keep-alive client, a hyper server). Switchyard: {}, `threads = 1`, every \
         feature on: bearer keys, team and key limits (`rpm`, `tpm`, `max_concurrent`, set far \
         above the load), team budgets (`tokens_per_day`, `usd_per_month`), metrics, usage log \
         to a file, request log at the default `info` level to a file. nginx: {}, 1 worker, \
         `access_log off`, `proxy_buffering off`, upstream keep-alive.\n",
        if pin {
            "Switchyard, nginx and the pingora null proxy pinned to core 0 (`taskset -c 0`), \
             harness to core 1"
        } else {
            "No pinning (fewer than 2 cores or no `taskset`)"
        },
        gateway_build(),
        if nginx_version.is_empty() {
            "absent".to_string()
        } else {
            nginx_version.clone()
        }
    );
    let _ = writeln!(
        md,
        "Load average (1, 5, 15 min) at the start: {load_start}; at the end: {}. Anything else \
         running on the machine shows in the tails (p99, p99.9) first.\n",
        loadavg()
    );
    if !nginx_note.is_empty() {
        let _ = writeln!(md, "> {nginx_note}\n");
    }
    let _ = writeln!(md, "## Figures\n");
    let _ = writeln!(
        md,
        "| | direct (mock) | nginx | pingora null proxy | switchyard | switchyard / nginx | \
         switchyard / pingora | switchyard / direct |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let opt = |f: Option<&Figures>, v: &dyn Fn(&Figures) -> f64| f.map(v);
    let row = |md: &mut String, label: &str, v: &dyn Fn(&Figures) -> f64, dig: usize| {
        let (dv, nv, pv, gv) = (v(d), opt(n, v), opt(pn, v), v(g));
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_opt(Some(dv), dig),
            fmt_opt(nv, dig),
            fmt_opt(pv, dig),
            fmt_opt(Some(gv), dig),
            fmt_opt(nv.map(|n| gv / n), 2),
            fmt_opt(pv.map(|p| gv / p), 2),
            fmt_opt(Some(gv / dv), 2)
        );
    };
    row(
        &mut md,
        &format!("requests/s, c={CONC}, non-streaming"),
        &rps,
        0,
    );
    row(
        &mut md,
        &format!("requests/s, c={CONC}, {STREAM_CHUNKS}-chunk streams"),
        &|f: &Figures| f.stput.per_s(),
        0,
    );
    for p in [50.0, 90.0, 99.0, 99.9] {
        row(
            &mut md,
            &format!("latency p{p} at c=1 (µs)"),
            &|f: &Figures| f.lat.pct(p),
            0,
        );
    }
    for p in [50.0, 99.0] {
        row(
            &mut md,
            &format!("stream time to first byte p{p} at c=1 (µs)"),
            &|f: &Figures| f.ttfb.pct(p),
            0,
        );
    }
    row(
        &mut md,
        "chunks/s through 1,000-chunk streams",
        &|f: &Figures| f.chunks_per_s,
        0,
    );
    row(
        &mut md,
        "1 MiB prompt, latency p50 at c=1 (µs)",
        &|f: &Figures| f.big.pct(50.0),
        0,
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| added by the proxy (minus direct) | nginx | pingora null proxy | switchyard |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|");
    let added_row = |md: &mut String, label: &str, v: &dyn Fn(&Figures) -> f64| {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            fmt_opt(n.map(v), 0),
            fmt_opt(pn.map(v), 0),
            fmt_opt(Some(v(g)), 0)
        );
    };
    for p in [50.0, 99.0] {
        added_row(
            &mut md,
            &format!("latency p{p} at c=1 (µs)"),
            &|f: &Figures| added(f, p),
        );
    }
    for p in [50.0, 99.0] {
        added_row(
            &mut md,
            &format!("stream time to first byte p{p} (µs)"),
            &|f: &Figures| added_ttfb(f, p),
        );
    }
    added_row(
        &mut md,
        "1 MiB prompt, latency p50 (µs)",
        &|f: &Figures| f.big.pct(50.0) - d.big.pct(50.0),
    );
    let cpu_row = |f: &Figures| {
        f.tput
            .proxy_cpu
            .map(|c| (100.0 * c / f.tput.secs, f.tput.ok as f64 / c.max(1e-9)))
    };
    let _ = writeln!(
        md,
        "| proxy core busy during the c={CONC} run (%) | {} | {} | {} |",
        fmt_opt(n.and_then(cpu_row).map(|x| x.0), 0),
        fmt_opt(pn.and_then(cpu_row).map(|x| x.0), 0),
        fmt_opt(cpu_row(g).map(|x| x.0), 0)
    );
    let _ = writeln!(
        md,
        "| requests per proxy CPU-second, non-streaming | {} | {} | {} |",
        fmt_opt(n.and_then(cpu_row).map(|x| x.1), 0),
        fmt_opt(pn.and_then(cpu_row).map(|x| x.1), 0),
        fmt_opt(cpu_row(g).map(|x| x.1), 0)
    );
    let scpu = |f: &Figures| f.stput.per_cpu_s();
    let _ = writeln!(
        md,
        "| requests per proxy CPU-second, {STREAM_CHUNKS}-chunk streams | {} | {} | {} |",
        fmt_opt(n.and_then(scpu), 0),
        fmt_opt(pn.and_then(scpu), 0),
        fmt_opt(scpu(g), 0)
    );
    if let Some((busy, _)) = n.and_then(cpu_row) {
        if busy < 90.0 {
            let _ = writeln!(
                md,
                "\nnginx's core was {busy:.0}% busy at c={CONC}: the harness's core (load generator \
                 and mock) was the bottleneck, so nginx's requests/s is a floor of what it can do \
                 and the fairer comparison is requests per proxy CPU-second."
            );
        }
    }
    let _ = writeln!(
        md,
        "\nThe pingora null proxy is pingora 0.9 with a `ProxyHttp` that only names the mock \
         (`benches/load/null_proxy.rs`), on the gateway's server settings: the framework's own \
         floor. Switchyard's own work per request (auth, body read and rewrite, limits, routing, \
         metering, metrics, usage log) is the gap between those two columns.\n"
    );
    let _ = writeln!(
        md,
        "Request rewrite of a 1 MiB prompt, in-process (parse the borrowed view, splice the \
         upstream body; median of 101): {:.0} µs for {} bytes ({:.2} GiB/s); a plain copy of the \
         same bytes takes {:.0} µs, so the rewrite costs {:.1} copies.\n",
        rewrite_t.as_secs_f64() * 1e6,
        rewrite_bytes,
        rewrite_bytes as f64 / rewrite_t.as_secs_f64() / (1u64 << 30) as f64,
        copy_t.as_secs_f64() * 1e6,
        rewrite_t.as_secs_f64() / copy_t.as_secs_f64().max(1e-9)
    );
    let errs: Vec<String> = targets
        .iter()
        .zip(&figs)
        .map(|(t, f)| {
            format!(
                "{} {}/{}/{}/{}/{}",
                t.name, f.lat.errors, f.tput.errors, f.stput.errors, f.ttfb.errors, f.chunk_errors
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "\nFailed requests (latency/throughput/streaming throughput/first byte/chunks): {}. Usage log lines written by \
         the gateway: {usage_lines}.\n",
        errs.join(", ")
    );

    let _ = writeln!(md, "## Memory (switchyard)\n");
    let mb = |kb: Option<u64>| fmt_opt(kb.map(|k| k as f64 / 1024.0), 1);
    let _ = writeln!(md, "| | MB |\n|---|---:|");
    let _ = writeln!(md, "| idle RSS after start | {} |", mb(idle_rss_start));
    let _ = writeln!(
        md,
        "| idle RSS after the load above | {} |",
        mb(idle_rss_after)
    );
    if let Some(m) = &many {
        let _ = writeln!(
            md,
            "| peak RSS with {} concurrent slow streams open | {} |",
            m.peak_open,
            mb(Some(m.peak_rss_kb))
        );
    }
    let _ = writeln!(md, "| VmHWM (lifetime peak) | {} |", mb(hwm));
    if let Some(m) = &null_many {
        let _ = writeln!(
            md,
            "| pingora null proxy: idle RSS, then peak with {} slow streams ({} complete) | {} → {} |",
            m.peak_open,
            m.completed,
            mb(null_idle),
            mb(Some(m.peak_rss_kb))
        );
    }
    if let (Some(g), Some(p)) = (&many, &null_many) {
        let per = |m: &Many, idle: Option<u64>| {
            (m.peak_rss_kb.saturating_sub(idle.unwrap_or(0)) as f64) / m.peak_open.max(1) as f64
        };
        let _ = writeln!(
            md,
            "| per open stream, above idle (KB): switchyard / pingora null proxy | {:.1} / {:.1} |",
            per(g, idle_rss_after),
            per(p, null_idle)
        );
    }
    let _ = writeln!(md);
    if let Some(m) = &many {
        let _ = writeln!(
            md,
            "Slow streams: {} asked (LOAD_STREAMS={want_streams}, file-descriptor limit {nofile}), \
             {} answered 200, {} complete ({stream_chunks} chunks one second apart), at most {} \
             open at once; longest pause between two reads of one stream {:.2} s (the mock \
             pauses 1 s); {:.1} s in all.\n",
            m.asked,
            m.opened,
            m.completed,
            m.peak_open,
            m.max_gap.as_secs_f64(),
            m.secs
        );
        if !m.failures.is_empty() {
            let f: Vec<String> = m
                .failures
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(md, "Streams that failed, by reason: {}.\n", f.join(", "));
        }
    }

    let _ = writeln!(
        md,
        "## Cost of each feature (switchyard, {feat_secs} s per measurement)\n\n\
         Bearer-key auth and metrics cannot be switched off in the config, so they are on in \
         every row; their cost per request is measured in-process instead: auth (SHA-256 of the \
         key and the lookup) {:.2} µs, the metrics of a finished request \
         (`Metrics::count_request`) {:.2} µs (medians of 51 batches of 1,000 calls).\n",
        auth_t.as_secs_f64() * 1e6,
        metrics_t.as_secs_f64() * 1e6
    );
    let _ = writeln!(
        md,
        "| features | requests/s, c={CONC} | requests per CPU-second | p50 at c=1 (µs) | p99 at c=1 (µs) |\n|---|---:|---:|---:|---:|"
    );
    for (label, lat, tput) in &feature_rows {
        let _ = writeln!(
            md,
            "| {label} | {:.0} | {} | {:.0} | {:.0} |",
            tput.ok as f64 / tput.secs,
            fmt_opt(tput.proxy_cpu.map(|c| tput.ok as f64 / c.max(1e-9)), 0),
            lat.pct(50.0),
            lat.pct(99.0)
        );
    }
    let _ = writeln!(md);

    // Targets of issue 19: every feature on, against pingora alone in the same run.
    let _ = writeln!(
        md,
        "## Against the targets of issue 19 (every feature on)\n\n\
         Keys, limits, budgets, metrics and the usage log on (the config above); pingora alone is \
         the null proxy of the same run.\n"
    );
    let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
    let per_stream = many.as_ref().map(|m| {
        m.peak_rss_kb.saturating_sub(idle_rss_after.unwrap_or(0)) as f64 / m.peak_open.max(1) as f64
    });
    let _ = writeln!(
        md,
        "| memory per open stream ≤ 16 KB above idle | {} KB ({} streams) | {} |",
        fmt_opt(per_stream, 1),
        many.as_ref().map_or(0, |m| m.peak_open),
        verdict(per_stream.map(|k| k <= 16.0))
    );
    let vs_pingora =
        |v: &dyn Fn(&Figures) -> Option<f64>| pn.and_then(|p| v(g).zip(v(p))).map(|(a, b)| a / b);
    let plain_cpu = vs_pingora(&|f: &Figures| f.tput.per_cpu_s());
    let _ = writeln!(
        md,
        "| requests per proxy CPU-second ≥ 0.9 × pingora, non-streaming | {} × | {} |",
        fmt_opt(plain_cpu, 2),
        verdict(plain_cpu.map(|r| r >= 0.9))
    );
    let stream_cpu = vs_pingora(&|f: &Figures| f.stput.per_cpu_s());
    let _ = writeln!(
        md,
        "| requests per proxy CPU-second ≥ 0.9 × pingora, {STREAM_CHUNKS}-chunk streams | {} × | {} |",
        fmt_opt(stream_cpu, 2),
        verdict(stream_cpu.map(|r| r >= 0.9))
    );
    let chunks = vs_pingora(&|f: &Figures| Some(f.chunks_per_s));
    let _ = writeln!(
        md,
        "| chunks/s through 1,000-chunk streams ≥ 1.0 × pingora | {} × | {} |\n",
        fmt_opt(chunks, 2),
        verdict(chunks.map(|r| r >= 1.0))
    );

    // Targets of issue 8.
    let _ = writeln!(md, "## Against the targets of issue 8\n");
    let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
    let ratio = n.map(|f| rps(g) / rps(f));
    let _ = writeln!(
        md,
        "| requests/s ≥ 0.7 × nginx | {} × | {} |",
        fmt_opt(ratio, 2),
        verdict(ratio.map(|r| r >= 0.7))
    );
    let per_cpu = |f: &Figures| f.tput.proxy_cpu.map(|c| f.tput.ok as f64 / c.max(1e-9));
    let cpu_ratio = n.and_then(per_cpu).zip(per_cpu(g)).map(|(nc, gc)| gc / nc);
    let _ = writeln!(
        md,
        "| the same, per proxy CPU-second | {} × | {} |",
        fmt_opt(cpu_ratio, 2),
        verdict(cpu_ratio.map(|r| r >= 0.7))
    );
    let a50 = added(g, 50.0);
    let a99 = added(g, 99.0);
    let t50 = added_ttfb(g, 50.0);
    let _ = writeln!(
        md,
        "| added p50 ≤ 100 µs | {a50:.0} µs | {} |",
        verdict(Some(a50 <= 100.0))
    );
    let _ = writeln!(
        md,
        "| added p99 ≤ 250 µs | {a99:.0} µs | {} |",
        verdict(Some(a99 <= 250.0))
    );
    let _ = writeln!(
        md,
        "| added time to first token p50 ≤ 150 µs | {t50:.0} µs | {} |",
        verdict(Some(t50 <= 150.0))
    );
    match &many {
        Some(m) => {
            let rss = m.peak_rss_kb as f64 / 1024.0;
            let ok = m.asked >= 10_000 && m.completed == m.asked && rss <= 150.0;
            let _ = writeln!(
                md,
                "| 10,000 streams, no stall, RSS ≤ 150 MB | {} streams, {} complete, {rss:.1} MB | {} |",
                m.asked,
                m.completed,
                if ok {
                    "meets"
                } else if m.asked < 10_000 && m.completed == m.asked && rss <= 150.0 {
                    "meets at the number reached (fewer than 10,000)"
                } else {
                    "**falls short**"
                }
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| 10,000 streams | not run (LOAD_STREAMS=0) | not measured |"
            );
        }
    }
    let idle = idle_rss_start.map(|k| k as f64 / 1024.0);
    let _ = writeln!(
        md,
        "| idle RSS ≤ 25 MB | {} MB | {} |",
        fmt_opt(idle, 1),
        verdict(idle.map(|v| v <= 25.0))
    );
    let _ = writeln!(md, "\n![latency](latency.svg)");

    let mut rows: Vec<(&str, &Lat)> = vec![("direct", &d.lat)];
    if let Some(f) = n {
        rows.push(("nginx", &f.lat));
    }
    if let Some(f) = pn {
        rows.push(("pingora", &f.lat));
    }
    rows.push(("switchyard", &g.lat));
    std::fs::write(out_dir.join("latency.svg"), svg(&rows)).expect("write svg");
    std::fs::write(out_dir.join("latest.md"), &md).expect("write report");
    let _ = std::fs::remove_dir_all(&work);
    println!("{md}");
    eprintln!(
        "[load] wrote {} and {}",
        out_dir.join("latest.md").display(),
        out_dir.join("latency.svg").display()
    );
}
