//! The client's connection (`src/downstream.rs`), over raw sockets to the real binary: request
//! heads read in turn on one keep-alive connection, a malformed head answered 400 and the
//! connection closed, an early answer read whole before its connection closes, and a stopping
//! server closing its idle keep-alive connections at once.

use crate::support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config() -> String {
    ConfigBody::new()
        .usage_log()
        .mock_provider("local")
        .model("m", &[("local", "mock-1")])
        .team("t", "")
        .demo_key("k", "t")
        .build()
}

fn chat_request(secret: &str) -> Vec<u8> {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One whole HTTP/1.1 answer with a `Content-Length` body: (status, head, body).
async fn read_answer(conn: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a content-length");
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                buf.drain(..end + 4 + len);
                let status = head[9..12].parse().expect("status");
                return (status, head, body);
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline.into(), conn.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "connection closed before a whole answer");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until the peer closes; `true` when it did within `within`.
async fn closes_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), conn.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_connection_are_answered_in_turn() {
    let gw = Gateway::start(&config()).await;
    let mut conn = TcpStream::connect(gw.api_addr()).await.unwrap();
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        conn.write_all(&chat_request(DEMO_SECRET)).await.unwrap();
        let (status, head, body) = read_answer(&mut conn, &mut buf).await;
        assert_eq!(status, 200, "{head}\n{body}");
        assert!(body.contains("chat.completion"), "{body}");
        let id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .expect("x-request-id")
            .to_string();
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "three requests, three ids: {ids:?}");
    // Each is counted once.
    for id in &ids {
        assert_eq!(gw.usage_line(id).await["status"], 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_is_read_whole_then_the_connection_closes() {
    let gw = Gateway::start(&config()).await;
    let mut conn = TcpStream::connect(gw.api_addr()).await.unwrap();
    let mut buf = Vec::new();
    // A wrong key is refused before the body is read: the body is drained (so the client
    // reads the answer, not a reset), and the connection is not kept.
    conn.write_all(&chat_request("sk-wrong")).await.unwrap();
    let (status, _, body) = read_answer(&mut conn, &mut buf).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    assert!(closes_within(&mut conn, Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_head_gets_400_and_the_connection_closes() {
    let gw = Gateway::start(&config()).await;
    for garbage in [
        &b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nBad Header Line\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let mut conn = TcpStream::connect(gw.api_addr()).await.unwrap();
        conn.write_all(garbage).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got))
            .await
            .expect("the gateway answers and closes within 10 s");
        assert!(read.is_ok() || !got.is_empty());
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "{:?} got {text:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    // The gateway is still serving.
    let resp = gw
        .chat(
            DEMO_SECRET,
            &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_closes_its_idle_keep_alive_connections_at_once() {
    let mut gw = Gateway::builder(&config())
        .env("SWITCHYARD_DRAIN_SECONDS", "30")
        .start()
        .await;
    let mut conn = TcpStream::connect(gw.api_addr()).await.unwrap();
    let mut buf = Vec::new();
    conn.write_all(&chat_request(DEMO_SECRET)).await.unwrap();
    let (status, _, _) = read_answer(&mut conn, &mut buf).await;
    assert_eq!(status, 200);
    // The connection now waits for its next request; the server is told to stop.
    gw.signal(libc::SIGTERM);
    assert!(
        closes_within(&mut conn, Duration::from_secs(10)).await,
        "the idle connection was not closed"
    );
    // Well within the 30 s drain bound: the drain did not wait for the idle connection.
    let status = gw
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("the gateway exits once no connection is left");
    assert!(status.success(), "{status:?}");
}
