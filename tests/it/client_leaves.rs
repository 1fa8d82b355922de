//! A client that leaves once it has its stream's end event had the whole answer: coding agents
//! (Codex CLI, Claude Code) close at once, before the vendor's last bytes come. Such a request
//! is logged with its status and full usage, not 499 — on a passed-through stream (the
//! vendor's own `message_stop`) and a translated one (the gateway's `[DONE]`). A client that
//! leaves before the end is still a 499.

use crate::support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANTH_KEY: &str = "anth-leaves-key";

async fn setup() -> (MockAnthropic, Gateway) {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_CL_ANTH\"",
        )
        .model("claude", &[("anth", "claude-sonnet-4-5")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_CL_ANTH", ANTH_KEY)
        .start()
        .await;
    // The vendor holds its body's end back after its last event, as real vendors may.
    anth.set_behaviour(AnthBehaviour {
        end_delay_ms: Some(3_000),
        ..AnthBehaviour::default()
    });
    (anth, gw)
}

/// Sends a streamed request on a raw connection, reads until `until` is in what came, then
/// closes the connection at once.
async fn read_until_then_close(gw: &Gateway, path: &str, body: &Value, until: &str) {
    let body = body.to_string();
    let mut conn = tokio::net::TcpStream::connect(gw.api_addr()).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {DEMO_SECRET}\r\n\
         anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&seen).contains(until) {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the end event within 10 s")
            .unwrap();
        assert!(n > 0, "the stream ended before {until}");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_after_the_end_event_had_the_whole_answer() {
    let (_anth, gw) = setup().await;
    // Passed through: the Messages door on an Anthropic route, until the vendor's message_stop.
    read_until_then_close(
        &gw,
        "/v1/messages",
        &json!({"model":"claude","max_tokens":64,"stream":true,
                "messages":[{"role":"user","content":"hi"}]}),
        "event: message_stop",
    )
    .await;
    // Translated: the chat door on the same route, until the gateway's [DONE].
    read_until_then_close(
        &gw,
        "/v1/chat/completions",
        &json!({"model":"claude","stream":true,"messages":[{"role":"user","content":"hi"}]}),
        "data: [DONE]",
    )
    .await;
    let lines = gw.wait_usage_lines(2).await;
    for line in &lines {
        assert_eq!(line["status"], 200, "{line}");
        assert!(
            line["completion_tokens"].as_u64().unwrap_or(0) > 0,
            "{line}"
        );
    }
}
