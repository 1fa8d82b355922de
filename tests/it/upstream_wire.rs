//! HTTP/1.1 to the vendors (`src/upstream/wire.rs`, `src/upstream/pool.rs`), against a vendor
//! that answers with scripted bytes: requests go out whole on kept connections, answers are
//! framed by length, chunks (extensions, trailers) or the connection's end, interim 1xx heads
//! are passed over, `Connection: close` and HTTP/1.0 answers are not reused, and a vendor
//! that breaks the framing fails the attempt as a reset (502).

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::raw_vendor::read_request;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

/// One scripted answer: its bytes, and whether the vendor closes the connection after them.
struct Script {
    raw: String,
    close: bool,
}

fn keep(raw: String) -> Script {
    Script { raw, close: false }
}

fn with_length(extra_head: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra_head}content-length: {}\r\n\r\n{ANSWER}",
        ANSWER.len()
    )
}

/// A vendor that answers the n-th request it reads (whatever the connection) with the n-th
/// script; it counts connections and keeps each request as it came.
struct Vendor {
    base_url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn vendor(scripts: Vec<Script>) -> Vendor {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let scripts = Arc::new(Mutex::new(scripts.into_iter()));
    let (count, seen) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (seen, scripts) = (seen.clone(), scripts.clone());
            tokio::spawn(async move {
                while let Some(request) = read_request(&mut sock).await {
                    seen.lock().unwrap().push(request);
                    let Some(script) = scripts.lock().unwrap().next() else {
                        return;
                    };
                    if sock.write_all(script.raw.as_bytes()).await.is_err() || script.close {
                        return;
                    }
                }
            });
        }
    });
    Vendor {
        base_url: format!("http://{addr}/v1"),
        connections,
        requests,
    }
}

async fn gateway(v: &Vendor) -> Gateway {
    gateway_with(v, "").await
}

/// `routing`: a `[routing]` table's lines (empty: the defaults).
async fn gateway_with(v: &Vendor, routing: &str) -> Gateway {
    let config = ConfigBody::new()
        .text(&format!("[routing]\n{routing}\n"))
        .provider("v", "openai", &v.base_url, "api_key_env = \"SY_WIRE_KEY\"")
        .model("m", &[("v", "vendor-m")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    Gateway::builder(&config)
        .env("SY_WIRE_KEY", "sk-vendor-wire")
        .start()
        .await
}

async fn ask(gw: &Gateway) -> (u16, Value) {
    let resp = gw.chat(DEMO_SECRET, &chat_body("m", "hello", false)).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn resets(m: &str) -> Option<f64> {
    metric_value(
        m,
        "switchyard_upstream_errors_total",
        &[("provider", "v"), ("reason", "reset")],
    )
}

#[tokio::test]
async fn requests_go_out_whole_on_one_kept_connection() {
    let v = vendor((0..3).map(|_| keep(with_length(""))).collect()).await;
    let gw = gateway(&v).await;
    for i in 0..3 {
        let (status, body) = ask(&gw).await;
        assert_eq!(status, 200, "request {i}: {body}\n{}", gw.logs());
        assert_eq!(body["choices"][0]["message"]["content"], "hi");
    }
    assert_eq!(
        v.connections.load(Ordering::SeqCst),
        1,
        "one kept connection"
    );
    let requests = v.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
            "{head}"
        );
        let head = head.to_ascii_lowercase();
        assert!(head.contains("\r\nhost: 127.0.0.1:"), "{head}");
        assert!(
            head.contains("\r\nauthorization: bearer sk-vendor-wire\r\n"),
            "{head}"
        );
        assert!(
            !head.contains(DEMO_SECRET),
            "the client's key never goes on"
        );
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), len);
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["model"], "vendor-m");
    }
}

#[tokio::test]
async fn chunked_answers_with_extensions_and_trailers_are_read_whole_and_kept() {
    let (a, b) = ANSWER.split_at(40);
    let chunked = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x};name=value\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nx-vendor-trailer: 1\r\n\r\n",
        a.len(),
        b.len()
    );
    let v = vendor(vec![keep(chunked.clone()), keep(chunked)]).await;
    let gw = gateway(&v).await;
    for _ in 0..2 {
        let (status, body) = ask(&gw).await;
        assert_eq!(status, 200, "{body}\n{}", gw.logs());
        assert_eq!(body["usage"]["total_tokens"], 4);
    }
    assert_eq!(
        v.connections.load(Ordering::SeqCst),
        1,
        "kept after its trailer"
    );
}

#[tokio::test]
async fn interim_heads_are_passed_over() {
    let v = vendor(vec![keep(format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n{}",
        with_length("")
    ))])
    .await;
    let gw = gateway(&v).await;
    let (status, body) = ask(&gw).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    assert_eq!(body["choices"][0]["message"]["content"], "hi");
}

#[tokio::test]
async fn close_answers_are_not_reused() {
    let close_delimited =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{ANSWER}");
    let v = vendor(vec![
        keep(with_length("connection: close\r\n")),
        Script {
            raw: close_delimited,
            close: true,
        },
        keep(format!(
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
            ANSWER.len()
        )),
        keep(with_length("")),
    ])
    .await;
    let gw = gateway(&v).await;
    for i in 0..4 {
        let (status, body) = ask(&gw).await;
        assert_eq!(status, 200, "request {i}: {body}\n{}", gw.logs());
        assert_eq!(
            body["choices"][0]["message"]["content"], "hi",
            "request {i}"
        );
    }
    // `Connection: close`, the end of a close-delimited body, and HTTP/1.0 each end their
    // connection: four requests, four connections, and no failure of the route.
    assert_eq!(v.connections.load(Ordering::SeqCst), 4);
    assert_eq!(resets(&gw.metrics().await), Some(0.0));
}

#[tokio::test]
async fn broken_framing_fails_the_attempt_as_a_reset() {
    let v = vendor(vec![
        Script {
            raw: format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-length: 3\r\n\r\n{ANSWER}",
                ANSWER.len()
            ),
            close: true,
        },
        Script {
            raw: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                .into(),
            close: true,
        },
        Script {
            raw: format!("HTTP/1.1 200 OK\r\ncontent-length: 999\r\n\r\n{ANSWER}"),
            close: true,
        },
        Script {
            raw: "this is not http\r\n\r\n".into(),
            close: true,
        },
    ])
    .await;
    // One attempt per request: a reset is transient, so the defaults would try the same
    // route again (and take the next script).
    let gw = gateway_with(&v, "max_attempts = 1").await;
    for i in 0..4 {
        let (status, body) = ask(&gw).await;
        assert_eq!(status, 502, "request {i}: {body}");
        assert_eq!(
            body["error"]["code"], "upstream_error",
            "request {i}: {body}"
        );
    }
    assert_eq!(resets(&gw.metrics().await), Some(4.0));
}
