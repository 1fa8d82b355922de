//! Pooled upstream connections (`src/upstream/pool.rs`): a vendor that closes a keep-alive
//! connection just as the gateway reuses it (the request crosses the close) costs the client
//! nothing — the gateway sends again on a fresh connection, without counting a failure of the
//! route.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use support::raw_vendor::read_request;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

/// An OpenAI-compatible vendor that answers the first request of each connection, says
/// nothing about closing it (HTTP/1.1 keep-alive by default), and closes the connection
/// without an answer when a second request comes on it.
async fn closing_vendor() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                read_request(&mut sock).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                // The next request on this connection is read, then the connection closes.
                read_request(&mut sock).await;
                drop(sock);
            });
        }
    });
    (format!("http://{addr}/v1"), connections)
}

#[tokio::test]
async fn a_pooled_connection_the_vendor_closed_is_replaced_without_a_failure() {
    let (base_url, connections) = closing_vendor().await;
    let config = ConfigBody::new()
        .provider("v", "openai", &base_url, "")
        .model("m", &[("v", "m")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&config).start().await;
    for i in 0..3 {
        let resp = gw.chat(DEMO_SECRET, &chat_body("m", "hi", false)).await;
        assert_eq!(resp.status(), 200, "request {i}\n{}", gw.logs());
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "each later request met a closing pooled connection, then a fresh one"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "switchyard_upstream_errors_total",
            &[("provider", "v"), ("reason", "reset")]
        ),
        Some(0.0),
        "a stale pooled connection is not a failure of the route"
    );
}
