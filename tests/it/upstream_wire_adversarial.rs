//! The gateway's HTTP/1.1 client (`src/upstream/*`) against a vendor that bends or breaks
//! HTTP on purpose, through the real binary: heads and chunk lines split at every byte, odd
//! but valid heads, heads too large, streams cut mid-chunk or ended by the connection, an
//! early answer to a large body, bytes after an answer, endless interim heads, a vendor that
//! never reads. Each ends with the right status within the provider's timeouts, is counted
//! once in the usage log, and leaves no connection whose leftover bytes the next request
//! would read.

use crate::support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::raw_vendor::{read_request, serve, write_slowly};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
/// What a connection that must not be reused would answer.
const WRONG: &str = r#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"LEFTOVER"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
/// An SSE event with content, and the stream's end.
const EVENT: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";
const DONE: &str = "data: [DONE]\n\n";

/// Bounds every client call: each vendor here must be ended by the gateway's timeouts well
/// before.
const CLIENT_BOUND: Duration = Duration::from_secs(20);

fn with_length(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn chunked(head_extra: &str, pieces: &[&str]) -> String {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{head_extra}transfer-encoding: chunked\r\n\r\n"
    );
    for p in pieces {
        out.push_str(&format!("{:x}\r\n{p}\r\n", p.len()));
    }
    out.push_str("0\r\n\r\n");
    out
}

async fn gateway(base_url: &str) -> Gateway {
    gateway_with_total(base_url, 8000).await
}

async fn gateway_with_total(base_url: &str, total_ms: u64) -> Gateway {
    Gateway::builder(&config(base_url, total_ms))
        .env("SY_ADV_KEY", "sk-vendor-adversarial")
        .start()
        .await
}

/// One OpenAI-kind vendor at `base_url` with short timeouts, one attempt per request.
fn config(base_url: &str, total_ms: u64) -> String {
    let vendor = format!(
        "api_key_env = \"SY_ADV_KEY\"
connect_timeout_ms = 1000
first_byte_timeout_ms = 1000
idle_timeout_ms = 700
total_timeout_ms = {total_ms}"
    );
    ConfigBody::new()
        .usage_log()
        .text("[routing]\nmax_attempts = 1")
        .provider("v", "openai", base_url, &vendor)
        .model("m", &[("v", "vendor-m")])
        .team("t", "")
        .demo_key("k", "t")
        .build()
}

/// Sends a chat request with `x-request-id: id`; its status and body as text.
async fn ask(gw: &Gateway, id: &str, content: &str, stream: bool) -> (u16, String) {
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-request-id", id)
        .timeout(CLIENT_BOUND)
        .json(&chat_body("m", content, stream))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}\n{}", gw.logs()));
    let status = resp.status().as_u16();
    let text = match resp.bytes().await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => panic!("{id}: the body did not end within {CLIENT_BOUND:?}: {e}"),
    };
    (status, text)
}

fn content(text: &str) -> Value {
    let body: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    body["choices"][0]["message"]["content"].clone()
}

fn errors(m: &str, reason: &str) -> Option<f64> {
    metric_value(
        m,
        "switchyard_upstream_errors_total",
        &[("provider", "v"), ("reason", reason)],
    )
}

/// The usage log's lines of request `id` (after its line came, and a moment for a second).
async fn usage_of(gw: &Gateway, id: &str) -> Vec<Value> {
    gw.usage_line(id).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.usage_lines()
        .into_iter()
        .filter(|l| l["request_id"] == id)
        .collect()
}

/// A vendor that answers every request with the scripted answer of its index (in the order
/// the requests came, whatever the connection), and closes the connection after it when
/// asked.
async fn scripted(answers: Vec<(String, bool)>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    serve(move |mut sock: TcpStream, _| {
        let answers = answers.clone();
        async move {
            while read_request(&mut sock).await.is_some() {
                let Some((raw, close)) = answers.lock().unwrap().next() else {
                    return;
                };
                if sock.write_all(raw.as_bytes()).await.is_err() || close {
                    return;
                }
            }
        }
    })
    .await
}

/// A vendor that answers every request with `raw`, one byte at a time (1 ms apart).
async fn byte_by_byte(raw: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    serve(move |mut sock: TcpStream, _| {
        let raw = raw.clone();
        async move {
            while read_request(&mut sock).await.is_some() {
                if !write_slowly(&mut sock, raw.as_bytes(), Duration::from_millis(1)).await {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn heads_and_chunk_lines_split_at_every_byte_are_read_whole() {
    let (a, b) = ANSWER.split_at(50);
    let raw = chunked("", &[a, b]);
    let (url, connections) = byte_by_byte(raw).await;
    let gw = gateway(&url).await;
    for i in 0..2 {
        let (status, text) = ask(&gw, &format!("split-{i}"), "hello", false).await;
        assert_eq!(status, 200, "{text}\n{}", gw.logs());
        assert_eq!(content(&text), "hi");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "kept after its end");
}

#[tokio::test]
async fn a_stream_split_at_every_byte_is_relayed_whole() {
    let raw = format!(
        "{}{:x}\r\n{DONE}\r\n0\r\n\r\n",
        stream_head_and_event(),
        DONE.len()
    );
    let (url, connections) = byte_by_byte(raw).await;
    let gw = gateway(&url).await;
    for i in 0..2 {
        let id = format!("split-stream-{i}");
        let (status, text) = ask(&gw, &id, "hello", true).await;
        assert_eq!(status, 200, "{text}\n{}", gw.logs());
        let events = parse_sse(&text);
        assert_eq!(events.len(), 2, "{text}");
        assert!(events[0].contains("\"hi\""), "{text}");
        assert_eq!(events[1], "[DONE]");
        let lines = usage_of(&gw, &id).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["status"], 200, "{lines:?}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "kept after its end");
}

#[tokio::test]
async fn odd_but_valid_heads_are_read() {
    let many: String = (0..200).map(|i| format!("x-vendor-{i}: {i}\r\n")).collect();
    let answers = [
        // No reason phrase.
        format!(
            "HTTP/1.1 200\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
            ANSWER.len()
        ),
        // The coding's name in capitals.
        chunked("", &[ANSWER]).replace("transfer-encoding: chunked", "Transfer-Encoding: CHUNKED"),
        // `chunked` named twice for a body chunked once.
        chunked("transfer-encoding: chunked\r\n", &[ANSWER]),
        // A length with leading zeros.
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {:08}\r\n\r\n{ANSWER}",
            ANSWER.len()
        ),
        // 200 headers (pingora's own client took up to 256).
        with_length(ANSWER).replace("content-type", &format!("{many}content-type")),
        // An obsolete line folding (RFC 9112 §5.2: replaced by a space), and a space before
        // a colon, both accepted by pingora's own client.
        with_length(ANSWER).replace(
            "content-type: application/json\r\n",
            "content-type: application/json\r\nx-folded: a\r\n  b\r\nx-spaced : c\r\n",
        ),
    ];
    let n = answers.len();
    let (url, _) = scripted(answers.into_iter().map(|a| (a, true)).collect()).await;
    let gw = gateway(&url).await;
    for i in 0..n {
        let (status, text) = ask(&gw, &format!("odd-{i}"), "hello", false).await;
        assert_eq!(status, 200, "answer {i}: {text}\n{}", gw.logs());
        assert_eq!(content(&text), "hi", "answer {i}");
    }
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(0.0));
}

#[tokio::test]
async fn a_head_over_64_kib_fails_as_a_reset_once_and_the_next_request_is_served() {
    let huge = format!(
        "HTTP/1.1 200 OK\r\nx-huge: {}\r\ncontent-length: 2\r\n\r\n{{}}",
        "a".repeat(70 * 1024)
    );
    let (url, connections) = scripted(vec![(huge, false), (with_length(ANSWER), false)]).await;
    let gw = gateway(&url).await;
    let (status, text) = ask(&gw, "huge", "hello", false).await;
    assert_eq!(status, 502, "{text}\n{}", gw.logs());
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "upstream_error", "{body}");
    let lines = usage_of(&gw, "huge").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 502, "{lines:?}");
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(1.0));

    let (status, text) = ask(&gw, "after-huge", "hello", false).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content(&text), "hi");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "not reused after a broken head"
    );
}

/// A streamed answer's head (chunked) and one content event; the test writes what follows.
fn stream_head_and_event() -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{EVENT}\r\n",
        EVENT.len()
    )
}

#[tokio::test]
async fn a_stream_cut_mid_chunk_ends_with_one_error_event_and_is_counted_once() {
    let cut = format!(
        "{}40\r\ndata: {{\"id\":\"c1\",\"obj",
        stream_head_and_event()
    );
    let (url, _) = scripted(vec![(cut, true)]).await;
    let gw = gateway(&url).await;
    let (status, text) = ask(&gw, "cut", "hello", true).await;
    assert_eq!(
        status, 200,
        "the head went out with the first content: {text}"
    );
    let events = parse_sse(&text);
    assert!(!events.contains(&"[DONE]".to_string()), "{text}");
    let errors_sent: Vec<&String> = events.iter().filter(|e| e.contains("\"error\"")).collect();
    assert_eq!(errors_sent.len(), 1, "one error event: {text}");
    assert!(text.contains("\"hi\""), "what came is delivered: {text}");
    let lines = usage_of(&gw, "cut").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 502, "{lines:?}");
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(1.0));
}

#[tokio::test]
async fn a_close_delimited_stream_is_read_to_its_end() {
    let whole = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n{EVENT}{DONE}");
    let (url, connections) = scripted(vec![(whole.clone(), true), (whole, true)]).await;
    let gw = gateway(&url).await;
    for i in 0..2 {
        let id = format!("close-{i}");
        let (status, text) = ask(&gw, &id, "hello", true).await;
        assert_eq!(status, 200, "{text}");
        let events = parse_sse(&text);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
        assert!(text.contains("\"hi\""), "{text}");
        let lines = usage_of(&gw, &id).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["status"], 200, "{lines:?}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "a closed connection is not kept"
    );
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(0.0));
}

/// The HTTP framing cannot tell this cut from an end (the connection's end is the body's end):
/// the relay does, from the stream's events (no `[DONE]`, no finished choice).
#[tokio::test]
async fn a_close_delimited_stream_cut_before_its_end_ends_with_an_error_event() {
    let cut = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n{EVENT}data: {{\"id\":\"c1\",\"ob");
    let (url, _) = scripted(vec![(cut, true)]).await;
    let gw = gateway(&url).await;
    let (status, text) = ask(&gw, "close-cut", "hello", true).await;
    assert_eq!(status, 200, "{text}");
    let events = parse_sse(&text);
    assert!(!events.contains(&"[DONE]".to_string()), "{text}");
    let errors_sent = events.iter().filter(|e| e.contains("\"error\"")).count();
    assert_eq!(errors_sent, 1, "one error event: {text}");
    let lines = usage_of(&gw, "close-cut").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 502, "{lines:?}");
}

/// A vendor that reads a request's head only, answers `status` at once and closes (or holds
/// the connection open, reading nothing more).
async fn early_answer(status: &str) -> String {
    early_answer_then(status, false).await
}

async fn early_answer_then(status: &str, hold: bool) -> String {
    let body = r#"{"error":{"message":"request too large for this vendor","type":"invalid_request_error"}}"#;
    let raw = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (url, _) = serve(move |mut sock: TcpStream, _| {
        let raw = raw.clone();
        async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if sock.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let _ = sock.write_all(raw.as_bytes()).await;
            if hold {
                tokio::time::sleep(CLIENT_BOUND).await;
            }
            // Closed with the body unread: the gateway's socket may see a reset.
        }
    })
    .await;
    url
}

#[tokio::test]
async fn an_early_answer_to_a_large_body_is_passed_on() {
    for (status, code) in [("413 Payload Too Large", 413), ("400 Bad Request", 400)] {
        let url = early_answer(status).await;
        let gw = gateway(&url).await;
        let large = "x".repeat(4 * 1024 * 1024);
        let id = format!("early-{code}");
        let (got, text) = ask(&gw, &id, &large, false).await;
        assert_eq!(got, code, "{text}\n{}", gw.logs());
        assert!(text.contains("request too large for this vendor"), "{text}");
        let lines = usage_of(&gw, &id).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["status"], code, "{lines:?}");
    }
}

#[tokio::test]
async fn an_early_answer_from_a_vendor_that_stops_reading_is_passed_on() {
    let url = early_answer_then("413 Payload Too Large", true).await;
    let gw = gateway(&url).await;
    let large = "x".repeat(8 * 1024 * 1024);
    let (got, text) = ask(&gw, "early-held", &large, false).await;
    assert_eq!(got, 413, "{text}\n{}", gw.logs());
    assert!(text.contains("request too large for this vendor"), "{text}");
    let lines = usage_of(&gw, "early-held").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 413, "{lines:?}");
    assert_eq!(errors(&gw.metrics().await, "idle_timeout"), Some(0.0));
}

#[tokio::test]
async fn an_endless_error_body_is_read_up_to_its_limit_only() {
    // A 400 whose body never ends: its first 64 KiB carry the message, then blanks forever.
    let (url, connections) = serve(|mut sock: TcpStream, _| async move {
        if read_request(&mut sock).await.is_none() {
            return;
        }
        let head = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n\
                    {\"error\":{\"message\":\"no such parameter\",\"type\":\"invalid_request_error\"}}";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let blanks = vec![b' '; 16 * 1024];
        while sock.write_all(&blanks).await.is_ok() {}
    })
    .await;
    let gw = gateway(&url).await;
    let (status, text) = ask(&gw, "endless-error", "hello", false).await;
    assert_eq!(status, 400, "{text}\n{}", gw.logs());
    assert!(text.contains("no such parameter"), "{text}");
    let (status, _) = ask(&gw, "after-endless-error", "hello", false).await;
    assert_eq!(status, 400);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "not kept with its body unread"
    );
}

#[tokio::test]
async fn bytes_after_an_answer_keep_its_connection_from_reuse() {
    // The first connection sends a second answer after the first (at once, or a moment
    // later), and answers any later request on it with that wrong answer too; the others
    // answer right.
    let (url, connections) = serve(|mut sock: TcpStream, n| async move {
        while read_request(&mut sock).await.is_some() {
            let ok = match n {
                0 => {
                    let both = format!("{}{}", with_length(ANSWER), with_length(WRONG));
                    sock.write_all(both.as_bytes()).await.is_ok()
                }
                1 => {
                    let first = sock.write_all(with_length(ANSWER).as_bytes()).await.is_ok();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    first && sock.write_all(with_length(WRONG).as_bytes()).await.is_ok()
                }
                _ => sock.write_all(with_length(ANSWER).as_bytes()).await.is_ok(),
            };
            if !ok {
                return;
            }
        }
    })
    .await;
    let gw = gateway(&url).await;
    for i in 0..4 {
        let (status, text) = ask(&gw, &format!("extra-{i}"), "hello", false).await;
        assert_eq!(status, 200, "request {i}: {text}\n{}", gw.logs());
        assert_eq!(
            content(&text),
            "hi",
            "request {i} got another answer's bytes"
        );
        // Room for the late bytes of connection 1 to come.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(0.0));
}

#[tokio::test]
async fn endless_interim_heads_end_by_the_first_byte_timeout() {
    for pause in [Duration::ZERO, Duration::from_millis(20)] {
        let (url, _) = serve(move |mut sock: TcpStream, _| async move {
            if read_request(&mut sock).await.is_none() {
                return;
            }
            loop {
                if sock
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                if pause.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(pause).await;
                }
            }
        })
        .await;
        let gw = gateway(&url).await;
        let id = format!("interim-{}", pause.as_millis());
        let (status, text) = ask(&gw, &id, "hello", false).await;
        assert_eq!(status, 504, "{text}\n{}", gw.logs());
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["code"], "upstream_timeout", "{body}");
        assert_eq!(errors(&gw.metrics().await, "first_byte_timeout"), Some(1.0));
        let lines = usage_of(&gw, &id).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
}

#[tokio::test]
async fn a_vendor_that_never_reads_ends_by_the_idle_timeout() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    let (url, _) = serve(move |sock: TcpStream, _| {
        // Held open, never read.
        keep.lock().unwrap().push(sock);
        async {}
    })
    .await;
    let gw = gateway(&url).await;
    let large = "x".repeat(16 * 1024 * 1024);
    let (status, text) = ask(&gw, "unread", &large, false).await;
    assert_eq!(status, 504, "{text}\n{}", gw.logs());
    assert_eq!(errors(&gw.metrics().await, "idle_timeout"), Some(1.0));
    let lines = usage_of(&gw, "unread").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 504, "{lines:?}");
    drop(held);
}

#[tokio::test]
async fn garbage_on_an_idle_pooled_connection_is_not_read_as_the_next_answer() {
    let (url, connections) = serve(|mut sock: TcpStream, n| async move {
        while read_request(&mut sock).await.is_some() {
            if sock
                .write_all(with_length(ANSWER).as_bytes())
                .await
                .is_err()
            {
                return;
            }
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = sock.write_all(with_length(WRONG).as_bytes()).await;
            }
        }
    })
    .await;
    let gw = gateway(&url).await;
    for i in 0..2 {
        let (status, text) = ask(&gw, &format!("idle-{i}"), "hello", false).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(content(&text), "hi", "request {i}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn statuses_outside_http_classes_are_not_passed_on() {
    let answers = [
        "HTTP/1.1 600 Beyond\r\ncontent-length: 2\r\n\r\n{}",
        "HTTP/1.1 999 Nine\r\ncontent-length: 2\r\n\r\n{}",
    ];
    let (url, _) = scripted(answers.iter().map(|a| (a.to_string(), true)).collect()).await;
    let gw = gateway(&url).await;
    for i in 0..answers.len() {
        let (status, text) = ask(&gw, &format!("class-{i}"), "hello", false).await;
        assert_eq!(status, 502, "answer {i}: {text}");
    }
}

#[tokio::test]
async fn a_broken_answer_on_a_kept_connection_is_not_sent_again() {
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = requests.clone();
    let (url, connections) = serve(move |mut sock: TcpStream, n| {
        let seen = seen.clone();
        async move {
            let mut on_this = 0;
            while read_request(&mut sock).await.is_some() {
                seen.fetch_add(1, Ordering::SeqCst);
                on_this += 1;
                let raw = if n == 0 && on_this == 2 {
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello"
                        .to_string()
                } else {
                    with_length(ANSWER)
                };
                if sock.write_all(raw.as_bytes()).await.is_err() || (n == 0 && on_this == 2) {
                    return;
                }
            }
        }
    })
    .await;
    let gw = gateway(&url).await;
    let (status, text) = ask(&gw, "kept-1", "hello", false).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = ask(&gw, "kept-2", "hello", false).await;
    // The vendor answered (badly) on the kept connection: it has the request; sending it
    // again would make it answer (and bill) twice for one attempt.
    assert_eq!(status, 502, "{text}");
    assert_eq!(requests.load(Ordering::SeqCst), 2, "sent once per attempt");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(1.0));
}

#[tokio::test]
async fn chunk_sizes_in_capitals_and_with_leading_zeros_are_read() {
    let (a, b) = ANSWER.split_at(10);
    let raw = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
         000{:X}\r\n{a}\r\n{:X}\r\n{b}\r\n000\r\n\r\n",
        a.len(),
        b.len()
    );
    assert!(raw.contains("\r\n000A\r\n"), "{raw}");
    let (url, connections) = scripted(vec![(raw.clone(), false), (raw, false)]).await;
    let gw = gateway(&url).await;
    for i in 0..2 {
        let (status, text) = ask(&gw, &format!("hex-{i}"), "hello", false).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(content(&text), "hi");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_head_that_trickles_for_ever_ends_by_the_first_byte_timeout() {
    let (url, _) = serve(|mut sock: TcpStream, _| async move {
        if read_request(&mut sock).await.is_none() {
            return;
        }
        let mut endless = b"HTTP/1.1 200 OK\r\nx-slow: ".to_vec();
        endless.extend(std::iter::repeat_n(b'a', 60_000));
        write_slowly(&mut sock, &endless, Duration::from_millis(20)).await;
    })
    .await;
    let gw = gateway(&url).await;
    let (status, text) = ask(&gw, "trickle-head", "hello", false).await;
    assert_eq!(status, 504, "{text}");
    assert_eq!(errors(&gw.metrics().await, "first_byte_timeout"), Some(1.0));
}

#[tokio::test]
async fn a_stream_that_trickles_for_ever_ends_by_the_total_timeout_counted_once() {
    let (url, _) = serve(|mut sock: TcpStream, _| async move {
        if read_request(&mut sock).await.is_none() {
            return;
        }
        let head = stream_head_and_event();
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // A chunk that never ends, a byte at a time, each well within the idle timeout.
        let mut endless = b"100000\r\n: ".to_vec();
        endless.extend(std::iter::repeat_n(b'.', 60_000));
        write_slowly(&mut sock, &endless, Duration::from_millis(20)).await;
    })
    .await;
    let gw = gateway_with_total(&url, 2000).await;
    let (status, text) = ask(&gw, "trickle-stream", "hello", true).await;
    assert_eq!(status, 200, "{text}");
    let events = parse_sse(&text);
    assert!(!events.contains(&"[DONE]".to_string()), "{text}");
    assert!(text.contains("\"hi\""), "{text}");
    assert!(text.contains("upstream_timeout"), "{text}");
    let lines = usage_of(&gw, "trickle-stream").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 504, "{lines:?}");
    assert_eq!(errors(&gw.metrics().await, "total_timeout"), Some(1.0));
}

#[tokio::test]
async fn a_large_body_read_slowly_but_steadily_is_not_an_idle_timeout() {
    // A vendor that reads at most 256 KiB every 30 ms (some 8 MB/s): the 24 MiB body takes
    // about 3 s to go, far more than the 700 ms idle timeout, each pause far less.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = vec![0u8; 256 * 1024];
                let mut body_left = None;
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    match body_left {
                        Some(ref mut left) => *left -= n,
                        None => {
                            head.extend_from_slice(&buf[..n]);
                            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                                let text =
                                    String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                                let len: usize = text
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse().ok())
                                    .unwrap();
                                body_left = Some(len - (head.len() - end - 4));
                            }
                        }
                    }
                    if body_left == Some(0) {
                        let _ = sock.write_all(with_length(ANSWER).as_bytes()).await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            });
        }
    });
    let gw = gateway(&format!("http://{addr}/v1")).await;
    let large = "x".repeat(24 * 1024 * 1024);
    let (status, text) = ask(&gw, "slow-reader", &large, false).await;
    assert_eq!(status, 200, "{text}\n{}", gw.logs());
    assert_eq!(content(&text), "hi");
    assert_eq!(errors(&gw.metrics().await, "idle_timeout"), Some(0.0));
}

/// A TLS vendor (a certificate for `localhost` from `ca`): each connection is handed to
/// `handler` after its handshake.
async fn tls_vendor<F, Fut>(
    ca: &TestCa,
    handler: F,
) -> (String, Arc<std::sync::atomic::AtomicUsize>)
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.leaf_for_localhost().server_config());
    let (url, connections) = serve(move |sock: TcpStream, _| {
        let (acceptor, handler) = (acceptor.clone(), handler.clone());
        async move {
            if let Ok(tls) = acceptor.accept(sock).await {
                handler(tls).await;
            }
        }
    })
    .await;
    (
        url.replace("http://127.0.0.1", "https://localhost"),
        connections,
    )
}

async fn tls_gateway(ca: &TestCa, base_url: &str) -> Gateway {
    let config = config(base_url, 8000);
    Gateway::builder(&config)
        .env("SY_ADV_KEY", "sk-vendor-adversarial")
        .env("SSL_CERT_FILE", ca.ca_pem_path().to_str().unwrap())
        .start()
        .await
}

#[tokio::test]
async fn over_tls_connections_are_kept_and_an_early_answer_is_passed_on() {
    let ca = TestCa::new();
    let (url, connections) = tls_vendor(&ca, |mut tls| async move {
        while read_request(&mut tls).await.is_some() {
            if tls.write_all(with_length(ANSWER).as_bytes()).await.is_err() {
                return;
            }
            let _ = tls.flush().await;
        }
    })
    .await;
    let gw = tls_gateway(&ca, &url).await;
    for i in 0..3 {
        let (status, text) = ask(&gw, &format!("tls-{i}"), "hello", false).await;
        assert_eq!(status, 200, "{text}\n{}", gw.logs());
        assert_eq!(content(&text), "hi");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one kept TLS connection"
    );

    let body = r#"{"error":{"message":"request too large for this vendor","type":"invalid_request_error"}}"#;
    let raw = format!(
        "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (url, _) = tls_vendor(&ca, move |mut tls| {
        let raw = raw.clone();
        async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let _ = tls.write_all(raw.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    })
    .await;
    let gw = tls_gateway(&ca, &url).await;
    let large = "x".repeat(4 * 1024 * 1024);
    let (status, text) = ask(&gw, "tls-early", &large, false).await;
    assert_eq!(status, 413, "{text}\n{}", gw.logs());
    assert!(text.contains("request too large for this vendor"), "{text}");
}

/// A chunked stream that ends cleanly but before its end event (no `[DONE]`, no finished
/// choice) is cut too: one error event, 502 once, `reset`. One whose choice finished is whole
/// without `[DONE]` (lenient OpenAI-compatible servers omit it).
#[tokio::test]
async fn a_stream_ended_before_its_end_event_is_an_error_but_a_finished_one_is_whole() {
    let chunked = |events: &str| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{events}\r\n0\r\n\r\n",
            events.len()
        )
    };
    let finished = EVENT.replace("\"finish_reason\":null", "\"finish_reason\":\"stop\"");
    let (url, _) = scripted(vec![
        (chunked(EVENT), false),
        (chunked(&format!("{EVENT}{finished}")), false),
    ])
    .await;
    let gw = gateway(&url).await;

    let (status, text) = ask(&gw, "no-end", "hello", true).await;
    assert_eq!(status, 200, "{text}");
    let events = parse_sse(&text);
    assert!(!events.contains(&"[DONE]".to_string()), "{text}");
    assert_eq!(
        events.iter().filter(|e| e.contains("\"error\"")).count(),
        1,
        "{text}"
    );
    let lines = usage_of(&gw, "no-end").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 502, "{lines:?}");
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(1.0));

    let (status, text) = ask(&gw, "finished", "hello", true).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("\"error\""), "{text}");
    let lines = usage_of(&gw, "finished").await;
    assert_eq!(lines[0]["status"], 200, "{lines:?}");
    assert_eq!(errors(&gw.metrics().await, "reset"), Some(1.0));
}
