//! Tests of the test support library itself (the mock vendor, the test CA, helpers).
//! Nothing here runs the gateway.

use crate::support;

use futures::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::mock_upstream::{expected_reply, prompt_words};
use support::*;

fn chat_url(mock: &MockUpstream) -> String {
    format!("{}/chat/completions", mock.base_url())
}

#[tokio::test]
async fn non_streaming_completion_has_deterministic_content_and_usage() {
    let mock = MockUpstream::start().await;
    let req = json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are terse"},
            {"role": "user", "content": "How are you doing today my friend?"}
        ]
    });
    let resp = client()
        .post(chat_url(&mock))
        .header("authorization", "Bearer upstream-key")
        .header("X-Custom", "abc")
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let declared_len: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(declared_len, body.len());
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-test");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].is_u64());
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply to: How are you doing to"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // 3 + 7 words in the prompt; 8 words in the reply.
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["usage"]["total_tokens"], 18);
    assert_eq!(prompt_words(&req), 10);
    assert_eq!(expected_reply(&req), "mock reply to: How are you doing to");

    let recs = mock.requests();
    assert_eq!(recs.len(), 1);
    assert_eq!(mock.request_count(), 1);
    let r = &recs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("Authorization"), Some("Bearer upstream-key"));
    assert_eq!(r.headers.get("x-custom").map(|s| s.as_str()), Some("abc"));
    assert_eq!(r.json(), req);
    assert_eq!(r.status, 200);
    assert!(!r.stream);
    assert!(r.finished);
    assert_eq!(r.response_body, body);
}

#[tokio::test]
async fn no_usage_and_empty_messages() {
    let mock = MockUpstream::start().await;
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-no-usage", "1")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": ""}]}))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert!(v.get("usage").is_none());
    assert_eq!(v["choices"][0]["message"]["content"], "mock reply to: ");

    let v: Value = client()
        .post(chat_url(&mock))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": ""}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // min 1 prompt token; "mock reply to:" is 3 words.
    assert_eq!(v["usage"]["prompt_tokens"], 1);
    assert_eq!(v["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn streaming_yields_documented_events_and_records_exact_bytes() {
    let mock = MockUpstream::start().await;
    let req = json!({
        "model": "gpt-stream",
        "messages": [{"role": "user", "content": "one two three"}],
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let resp = client()
        .post(chat_url(&mock))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(
        resp.headers()
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked")
    );
    let body = resp.bytes().await.unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    let data = parse_sse(text);
    assert_eq!(data.len(), 1 + 5 + 1 + 1 + 1, "{text}");
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let events = parse_sse_json(text);
    assert_eq!(events.len(), 8);
    for e in &events {
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["model"], "gpt-stream");
        assert_eq!(e["id"], events[0]["id"]);
    }
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    for i in 0..5 {
        assert_eq!(
            events[1 + i]["choices"][0]["delta"]["content"],
            format!("tok{i} ")
        );
        assert!(events[1 + i]["choices"][0]["finish_reason"].is_null());
    }
    assert_eq!(stream_text(&events), "tok0 tok1 tok2 tok3 tok4 ");
    assert_eq!(events[6]["choices"][0]["delta"], json!({}));
    assert_eq!(events[6]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[7]["choices"], json!([]));
    assert_eq!(
        events[7]["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8})
    );

    let r = mock.last_request().unwrap();
    assert!(r.stream);
    assert!(r.finished);
    assert!(!r.aborted);
    assert_eq!(r.response_body, body, "recorded bytes differ from received");
}

#[tokio::test]
async fn streaming_frames_arrive_one_event_at_a_time() {
    let mock = MockUpstream::start().await;
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-chunks", "3")
        .header("x-mock-chunk-delay-ms", "20")
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut frames = Vec::new();
    while let Some(f) = stream.next().await {
        frames.push(f.unwrap());
    }
    // With a delay between events each event is its own chunk on the wire.
    assert_eq!(frames.len(), 1 + 3 + 1 + 1);
    for f in &frames {
        assert!(f.starts_with(b"data: ") && f.ends_with(b"\n\n"));
    }
    let all: Vec<u8> = frames.concat();
    let text = String::from_utf8(all.clone()).unwrap();
    // No usage chunk without stream_options.include_usage.
    assert!(!text.contains("\"usage\""));
    assert_eq!(stream_text(&parse_sse_json(&text)), "tok0 tok1 tok2 ");
    assert_eq!(mock.last_request().unwrap().response_body, all);
}

#[tokio::test]
async fn status_and_retry_after_headers() {
    let mock = MockUpstream::start().await;
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-status", "503")
        .header("x-mock-retry-after", "3")
        .json(&chat_body("m", "hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"].to_str().unwrap(), "3");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "mock failure", "type": "server_error", "code": null}})
    );
    assert_eq!(mock.last_request().unwrap().status, 503);

    // A streaming request that fails gets the same JSON error, not a stream.
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-status", "500")
        .json(&chat_body("m", "hello", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
}

#[tokio::test]
async fn default_queue_and_header_precedence() {
    let mock = MockUpstream::start().await;
    mock.set_default(Behaviour::status(502));
    mock.enqueue(Behaviour::status(429));
    let send = |h: Option<(&'static str, &'static str)>| {
        let mut rb = client()
            .post(chat_url(&mock))
            .json(&chat_body("m", "x", false));
        if let Some((k, v)) = h {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 429); // queued one-shot
    assert_eq!(send(None).await.unwrap().status(), 502); // default
    assert_eq!(
        send(Some(("x-mock-status", "200"))).await.unwrap().status(),
        200
    ); // header wins
    mock.set_default(Behaviour::default());
    mock.enqueue(Behaviour {
        status: Some(400),
        body: Some(r#"{"error":{"message":"bad thing","type":"invalid_request_error"}}"#.into()),
        ..Behaviour::default()
    });
    let resp = send(None).await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "bad thing");
    assert_eq!(send(None).await.unwrap().status(), 200);
    assert_eq!(mock.request_count(), 5);
    mock.clear();
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn raw_frames_are_sent_verbatim() {
    let mock = MockUpstream::start().await;
    let frames = vec![
        "event: message_start\ndata: {\"type\":\"message_start\"}\n\n".to_string(),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n".to_string(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string(),
    ];
    mock.set_default(Behaviour {
        frames: Some(frames.clone()),
        ..Behaviour::default()
    });
    let resp = client()
        .post(mock.url("/v1/messages"))
        .json(&chat_body("claude", "hi", true))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let body = resp.bytes().await.unwrap();
    assert_eq!(body, frames.concat().as_bytes());
    assert!(mock.last_request().unwrap().finished);

    let resp = client()
        .post(mock.url("/v1/messages"))
        .header("x-mock-drop-after", "2")
        .json(&chat_body("claude", "hi", true))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed);
    assert_eq!(got, frames[..2].concat().as_bytes());
}

#[tokio::test]
async fn any_post_path_is_answered_and_recorded() {
    let mock = MockUpstream::start().await;
    let url = mock.url("/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01");
    let resp = client()
        .post(url)
        .header("api-key", "azure-secret")
        .json(&chat_body("ignored", "hi there", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r = mock.last_request().unwrap();
    assert_eq!(
        r.path,
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01"
    );
    assert_eq!(
        r.path_only(),
        "/openai/deployments/gpt4o-prod/chat/completions"
    );
    assert_eq!(r.header("api-key"), Some("azure-secret"));

    // Non-POST: recorded, answered 404.
    let resp = client().get(mock.url("/v1/models")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(mock.requests()[1].method, "GET");

    // Not JSON: 400.
    let resp = client()
        .post(chat_url(&mock))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn drop_after_aborts_the_connection_mid_stream() {
    let mock = MockUpstream::start().await;
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-drop-after", "2")
        .json(&json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": true}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => got.extend_from_slice(&b),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let text = String::from_utf8(got.clone()).unwrap();
    assert!(
        error.is_some(),
        "the client must see a body error, got a clean end after {text:?}"
    );
    assert!(!text.contains("[DONE]"));
    let data = parse_sse(&text);
    assert_eq!(data.len(), 3, "{text}"); // role + tok0 + tok1
    assert_eq!(stream_text(&parse_sse_json(&text)), "tok0 tok1 ");
    let r = mock.last_request().unwrap();
    assert!(r.aborted);
    assert!(!r.finished);
    assert_eq!(r.response_body, got);

    // Zero content chunks: only the role chunk, then the abort.
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-drop-after", "0")
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap();
    let err = resp.bytes().await;
    assert!(err.is_err());
    assert_eq!(
        parse_sse(&mock.last_request().unwrap().response_text()).len(),
        1
    );
}

#[tokio::test]
async fn stall_after_keeps_the_connection_open_until_the_client_leaves() {
    let mock = MockUpstream::start().await;
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-stall-after", "1")
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("tok0") {
        got.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    let r = mock.last_request().unwrap();
    assert!(!r.finished && !r.client_gone);
    drop(stream);
    let r = mock.wait_client_gone(0).await;
    assert!(!r.finished);
    assert!(!r.aborted);
    assert_eq!(r.response_body, got);
}

#[tokio::test]
async fn stalls_and_delays_still_answer() {
    let mock = MockUpstream::start().await;
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-stall-headers-ms", "30")
        .header("x-mock-delay-ms", "30")
        .json(&chat_body("m", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "mock reply to: hi");

    // A client that gives up during a header stall is noticed.
    let c = client();
    let req = c
        .post(chat_url(&mock))
        .header("x-mock-stall-headers-ms", "60000")
        .json(&chat_body("m", "hi", false))
        .send();
    let pending = tokio::spawn(req);
    mock.wait_for_requests(2).await;
    pending.abort();
    let r = mock.wait_client_gone(1).await;
    assert!(!r.finished);
}

#[tokio::test]
async fn eight_mib_body_is_recorded_intact() {
    let mock = MockUpstream::start().await;
    let big: String = (0..8 * 1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let body = serde_json::to_vec(&json!({
        "model": "m",
        "messages": [{"role": "user", "content": big}]
    }))
    .unwrap();
    assert!(body.len() > 8 * 1024 * 1024);
    let want = Sha256::digest(&body);
    let resp = client()
        .post(chat_url(&mock))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 1);
    let r = mock.last_request().unwrap();
    assert_eq!(r.body.len(), body.len());
    assert_eq!(Sha256::digest(&r.body), want);
}

#[tokio::test]
async fn tls_mock_is_trusted_only_by_clients_that_trust_the_test_ca() {
    let ca = TestCa::new();
    let mock = MockUpstream::start_tls(&ca).await;
    assert!(mock.base_url().starts_with("https://localhost:"));
    assert!(mock.base_url().ends_with("/v1"));
    let pem = std::fs::read_to_string(ca.ca_pem_path()).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(pem, ca.ca_pem());

    let trusting = ca.reqwest_client();
    let resp = trusting
        .post(chat_url(&mock))
        .json(&chat_body("m", "secure hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply to: secure hello"
    );

    // The IP SAN works too.
    let resp = trusting
        .post(format!(
            "https://127.0.0.1:{}/v1/chat/completions",
            mock.port()
        ))
        .json(&chat_body("m", "by ip", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let r = mock.last_request().unwrap();
    assert_eq!(r.response_body, body);

    // A client with only the public roots refuses the certificate.
    let untrusting = client();
    let err = untrusting
        .post(chat_url(&mock))
        .json(&chat_body("m", "x", false))
        .send()
        .await
        .expect_err("a client without the test CA must fail the handshake");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn tls_drop_after_still_delivers_the_prefix() {
    let ca = TestCa::new();
    let mock = MockUpstream::start_tls(&ca).await;
    let resp = ca
        .reqwest_client()
        .post(chat_url(&mock))
        .header("x-mock-drop-after", "3")
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed);
    assert_eq!(
        stream_text(&parse_sse_json(&String::from_utf8(got.clone()).unwrap())),
        "tok0 tok1 tok2 "
    );
    assert_eq!(mock.last_request().unwrap().response_body, got);
}

#[tokio::test]
async fn closed_port_refuses_connections() {
    let addr = MockUpstream::closed_port_addr();
    assert!(addr.ip().is_loopback());
    let err = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&chat_body("m", "x", false))
        .send()
        .await
        .expect_err("nothing listens there");
    assert!(err.is_connect(), "{err:?}");
    assert_ne!(closed_port_addr().port(), 0);
}

#[tokio::test]
async fn mock_shutdown_closes_stalled_streams() {
    let mock = MockUpstream::start().await;
    let resp = client()
        .post(chat_url(&mock))
        .header("x-mock-stall-after", "0")
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap();
    mock.shutdown();
    // The body ends (with an error: no chunked terminator) instead of hanging.
    assert!(resp.bytes().await.is_err());
}

#[test]
fn demo_secret_hash_matches() {
    assert_eq!(sha256_hex(DEMO_SECRET), DEMO_SHA256);
    assert_eq!(sha256_hex(""), hex_empty());
    // The binary the Gateway harness runs is the one cargo built for this package.
    assert!(switchyard_bin().ends_with("switchyard"));
}

fn hex_empty() -> String {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string()
}

#[test]
fn sse_and_metric_helpers() {
    let text = "data: {\"a\":1}\n\n: comment\n\ndata: [DONE]\n\n";
    assert_eq!(parse_sse(text), vec!["{\"a\":1}", "[DONE]"]);
    assert_eq!(parse_sse_json(text), vec![json!({"a": 1})]);

    let metrics = "\
# HELP switchyard_requests_total Requests.
# TYPE switchyard_requests_total counter
switchyard_requests_total{team=\"search\",key=\"k1\",model=\"gpt-4o\",status=\"200\"} 3
switchyard_requests_total{team=\"search\",key=\"k2\",model=\"gpt-4o\",status=\"200\"} 2
switchyard_requests_total{team=\"other\",key=\"k3\",model=\"gpt-4o\",status=\"429\"} 1
switchyard_active_streams 0
";
    assert_eq!(
        metric_value(metrics, "switchyard_requests_total", &[("team", "search")]),
        Some(5.0)
    );
    assert_eq!(
        metric_value(metrics, "switchyard_requests_total", &[("status", "429")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(metrics, "switchyard_requests_total", &[]),
        Some(6.0)
    );
    assert_eq!(
        metric_value(metrics, "switchyard_active_streams", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric_value(metrics, "switchyard_requests_total", &[("team", "nope")]),
        None
    );
}

#[test]
fn leaf_certificate_files() {
    let ca = TestCa::new();
    let leaf = ca.leaf_for_localhost();
    assert_eq!(leaf.cert_chain.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = leaf.write_pem_files(dir.path());
    assert!(std::fs::read_to_string(cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(std::fs::read_to_string(key)
        .unwrap()
        .contains("PRIVATE KEY"));
    let _ = leaf.server_config();
}

// ---- The Gateway harness, exercised against a stand-in process ----
//
// The stand-in is this very test binary, re-run with `FAKE_GATEWAY_CONFIG` set, executing
// only `fake_gateway_process`: it reads the generated config, answers `GET /readyz` with
// 200 on `admin_listen`, and dies on SIGTERM. So these tests check the harness (ports,
// config generation, readiness, logs, stop, drop) without the real gateway.

fn fake_gateway(mode: &str) -> GatewayBuilder {
    let exe = std::env::current_exe().unwrap();
    Gateway::builder("[[providers]]\nname = \"demo\"\nkind = \"mock\"\n")
        .program(
            exe,
            &[
                "support_selftest::fake_gateway_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ],
        )
        .env("FAKE_GATEWAY_CONFIG", "{CONFIG}")
        .env("FAKE_GATEWAY_READY", "{READY}")
        .env("FAKE_GATEWAY_MODE", mode)
}

#[test]
fn fake_gateway_process() {
    use std::io::{Read, Write};
    let Ok(path) = std::env::var("FAKE_GATEWAY_CONFIG") else {
        return; // an ordinary test run: nothing to do
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg: toml::Value = toml::from_str(&text).expect("generated config is TOML");
    println!(
        "fake gateway: config {path} rust_log={:?}",
        std::env::var("RUST_LOG").ok()
    );
    if std::env::var("FAKE_GATEWAY_MODE").as_deref() == Ok("addr-in-use") {
        eprintln!("Error: Address already in use (os error 98)");
        std::process::exit(1);
    }
    let admin = cfg["server"]["admin_listen"].as_str().unwrap().to_string();
    let api = cfg["server"]["listen"].as_str().unwrap().to_string();
    let api = std::net::TcpListener::bind(&api).unwrap();
    let listener = std::net::TcpListener::bind(&admin).unwrap();
    // The ready file, as `serve --ready-file` writes it: the addresses bound.
    let ready = format!(
        "{{\"listen\":\"{}\",\"admin\":\"{}\"}}",
        api.local_addr().unwrap(),
        listener.local_addr().unwrap()
    );
    let ready_path = std::env::var("FAKE_GATEWAY_READY").unwrap();
    std::fs::write(format!("{ready_path}.tmp"), ready).unwrap();
    std::fs::rename(format!("{ready_path}.tmp"), ready_path).unwrap();
    eprintln!(
        "fake gateway: admin on {admin}, state dir {}",
        cfg["state"]["dir"]
    );
    for stream in listener.incoming() {
        let mut s = stream.unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let body = if head.starts_with("GET /readyz ") {
            "ready"
        } else {
            "nope"
        };
        let status = if body == "ready" {
            "200 OK"
        } else {
            "404 Not Found"
        };
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

#[tokio::test]
async fn gateway_harness_starts_waits_and_stops() {
    let mut gw = fake_gateway("ok").start().await;
    assert_ne!(gw.api_addr(), gw.admin_addr());
    assert!(gw.api_addr().ip().is_loopback());
    assert!(gw.url("/v1/models").starts_with("http://127.0.0.1:"));
    assert!(gw.admin_url("/readyz").ends_with("/readyz"));
    assert!(gw.child_pid() > 0);
    let cfg = std::fs::read_to_string(gw.config_path()).unwrap();
    assert!(cfg.starts_with("[server]\n"));
    assert!(cfg.contains(&format!("listen = \"{ANY_PORT}\"")));
    assert!(cfg.contains(&format!("admin_listen = \"{ANY_PORT}\"")));
    let bound = gw.config_with_bound_addresses();
    assert!(bound.contains(&format!("\nlisten = \"{}\"", gw.api_addr())));
    assert!(bound.contains(&format!("admin_listen = \"{}\"", gw.admin_addr())));
    assert!(cfg.contains("[state]\nbackend = \"memory\""));
    assert!(cfg.contains("kind = \"mock\""));
    let ready = gw
        .client()
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    gw.wait_for_log("fake gateway: admin on").await;
    assert!(gw.logs().contains("rust_log=Some("));

    gw.write_config("[state]\nbackend = \"memory\"\n");
    let cfg = std::fs::read_to_string(gw.config_path()).unwrap();
    assert_eq!(cfg.matches("[state]").count(), 1);
    gw.write_config_atomic("# nothing\n");
    assert!(std::fs::read_to_string(gw.config_path())
        .unwrap()
        .contains("# nothing"));

    let status = gw.stop_async().await.expect("exit status");
    assert!(!status.success()); // killed by SIGTERM
    assert!(!gw.is_running());
}

#[tokio::test]
async fn gateway_harness_raw_config_and_drop_kills() {
    let exe = std::env::current_exe().unwrap();
    let gw = Gateway::raw_builder(
        "[server]\nlisten = \"{API}\"\nadmin_listen = \"{ADMIN}\"\n\n[state]\nbackend = \"memory\"\ndir = \"{DIR}/x\"\n",
    )
    .program(exe, &["support_selftest::fake_gateway_process", "--exact", "--nocapture"])
    .env("FAKE_GATEWAY_CONFIG", "{CONFIG}")
    .env("FAKE_GATEWAY_READY", "{READY}")
    .start()
    .await;
    let cfg = std::fs::read_to_string(gw.config_path()).unwrap();
    assert!(cfg.contains(&format!("admin_listen = \"{ANY_PORT}\"")));
    assert_ne!(gw.admin_addr().port(), 0);
    assert!(cfg.contains(&format!("{}/x", gw.dir().display())));
    let pid = gw.child_pid() as libc::pid_t;
    drop(gw);
    // Reaped: the pid no longer names our child.
    // SAFETY: signal 0 only checks for existence.
    // SAFETY: kill(2) with signal 0 only asks whether the pid exists.
    #[allow(unsafe_code)]
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the child survived Drop");
}

#[tokio::test]
async fn gateway_harness_reports_a_child_that_exits() {
    let start = tokio::spawn(fake_gateway("addr-in-use").start());
    let err = start.await.expect_err("start must panic");
    let msg = match err.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
        Err(e) => panic!("not a panic: {e}"),
    };
    assert!(msg.contains("exited"), "{msg}");
    assert!(msg.contains("Address already in use"), "{msg}");
    assert!(msg.contains("[server]"), "{msg}");
}
