//! The gateway core end to end: the real `switchyard` binary on loopback ports in front of the
//! test tree's mock vendor, driven by a real HTTP client.

use crate::support;

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;

const PROVIDER_KEY: &str = "sk-provider-secret-0123456789";
const LIMITED_SECRET: &str = "sk-test-limited";
const DISABLED_SECRET: &str = "sk-test-disabled";
const EXPIRED_SECRET: &str = "sk-test-expired";

/// A config with one OpenAI-compatible upstream (`up`) and the mock provider.
fn config(base_url: &str, extra: &str) -> String {
    let up = "api_key_env = \"SY_TEST_PROVIDER_KEY\"\n\
              first_byte_timeout_ms = 1500\n\
              idle_timeout_ms = 1500";
    ConfigBody::new()
        .provider("up", "openai", base_url, up)
        .mock_provider("builtin")
        .model_with("gpt-test", "aliases = [\"gt\"]", &[("up", "upstream-gpt")])
        .model("mock-model", &[("builtin", "mock-1")])
        .team("all", "")
        .team("narrow", "models = [\"mock-*\"]")
        .demo_key("demo", "all")
        .key("limited", "narrow", LIMITED_SECRET, "")
        .key("off", "all", DISABLED_SECRET, "disabled = true")
        .key(
            "old",
            "all",
            EXPIRED_SECRET,
            "expires_at = \"2020-01-01T00:00:00Z\"",
        )
        .text(extra)
        .build()
}

async fn start(base_url: &str, server_extra: &str) -> Gateway {
    Gateway::builder(&config(base_url, ""))
        .server_extra(server_extra)
        .env("SY_TEST_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await
}

/// Asserts the spec's error shape and returns the error object.
async fn expect_error(resp: reqwest::Response, status: u16, reason: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert!(resp.headers().contains_key("x-request-id"), "x-request-id");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let v: Value = resp.json().await.expect("error body is JSON");
    let e = &v["error"];
    assert_eq!(e["reason"], reason, "{v}");
    assert_eq!(e["status"], status, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string() && e["code"].is_string(), "{v}");
    assert!(e.get("param").is_some(), "{v}");
    e.clone()
}

#[tokio::test]
async fn large_bodies_are_forwarded_intact_and_oversize_gets_413() {
    let mock = MockUpstream::start().await;
    // An 8 MiB body takes the debug-built mock a while to read on a loaded machine: this test is
    // about the bytes, so the vendor gets more than the shared config's 1.5 s to answer.
    let patient = config(&mock.base_url(), "").replace(
        "first_byte_timeout_ms = 1500",
        "first_byte_timeout_ms = 30000",
    );
    let gw = Gateway::builder(&patient)
        .server_extra("max_request_bytes = 9437184") // 9 MiB
        .env("SY_TEST_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await;
    for size in [1 << 20, 8 << 20] {
        let filler = "x".repeat(size);
        let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": filler}]});
        let resp = gw.chat(DEMO_SECRET, &body).await;
        assert_eq!(resp.status(), 200, "{size}: {}", gw.logs());
        let got = mock.last_request().expect("upstream got the request");
        let sent: Value = got.json();
        assert_eq!(sent["messages"][0]["content"].as_str().unwrap().len(), size);
        assert_eq!(
            Sha256::digest(sent["messages"][0]["content"].as_str().unwrap()),
            Sha256::digest(&filler)
        );
        assert_eq!(
            got.header("content-length").unwrap(),
            got.body.len().to_string()
        );
    }
    let count = mock.request_count();
    let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "y".repeat(10 << 20)}]});
    expect_error(gw.chat(DEMO_SECRET, &body).await, 413, "payload_too_large").await;
    assert_eq!(
        mock.request_count(),
        count,
        "an oversize body must not reach the upstream"
    );
    // The gateway still serves after refusing it.
    let ok = gw
        .chat(DEMO_SECRET, &chat_body("gpt-test", "hi", false))
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn bodies_around_the_replay_limit_and_keepalive_reuse() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let client = client();
    // One keep-alive connection, sizes on both sides of pingora's 64 KiB replay buffer.
    for size in [0usize, 1000, 65_400, 65_536, 65_600, 200_000, 1000] {
        let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "z".repeat(size)}]});
        let resp = client
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(DEMO_SECRET)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "size {size}");
        resp.bytes().await.unwrap();
        let sent = mock.last_request().unwrap().json();
        assert_eq!(sent["messages"][0]["content"].as_str().unwrap().len(), size);
    }
}

#[tokio::test]
async fn upstream_gets_rewritten_model_lifted_params_and_provider_key_only() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let body = json!({
        "model": "gt",
        "messages": [{"role": "user", "content": "How are you?"}],
        "temperature": 0.2,
        "model_params": {"temperature": 1, "top_p": 0.5, "seed": 7},
        "user": "u-1"
    });
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-request-id", "client-id-123")
        .header("cookie", "session=abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "client-id-123");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer["model"], "upstream-gpt",
        "the upstream's model is passed on"
    );

    let got = mock.last_request().unwrap();
    assert_eq!(got.path, "/v1/chat/completions");
    let sent = got.json();
    assert_eq!(sent["model"], "upstream-gpt");
    assert_eq!(sent["temperature"], 0.2, "top level wins over model_params");
    assert_eq!(sent["top_p"], 0.5);
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["user"], "u-1");
    assert!(sent.get("model_params").is_none());
    assert!(
        sent.get("stream_options").is_none(),
        "only streams ask for usage"
    );
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert!(got.header("cookie").is_none());
    let all_headers = format!("{:?}", got.headers);
    assert!(
        !all_headers.contains(DEMO_SECRET),
        "client key leaked upstream"
    );
    assert!(!String::from_utf8_lossy(&got.body).contains(DEMO_SECRET));
    assert_eq!(got.header("host"), Some(mock.addr().to_string().as_str()));
}

#[tokio::test]
async fn streamed_bytes_equal_the_upstream_bytes() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mock-chunks", "40")
        .header("x-mock-chunk-delay-ms", "5")
        .json(&chat_body("gpt-test", "stream please", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let client_bytes = resp.bytes().await.unwrap();
    let got = mock.last_request().unwrap();
    assert_eq!(got.json()["stream_options"], json!({"include_usage": true}));
    assert!(got.finished);
    assert_eq!(client_bytes, got.response_body, "bytes differ");
    let events = parse_sse(std::str::from_utf8(&client_bytes).unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 40);
}

#[tokio::test]
async fn stream_chunks_arrive_as_they_are_sent() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let mut resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mock-chunks", "3")
        // Long enough apart that a buffering proxy would deliver everything at once.
        .header("x-mock-chunk-delay-ms", "400")
        .json(&chat_body("gpt-test", "slow", true))
        .send()
        .await
        .unwrap();
    // The first event reaches the client while the upstream is still sending: when it
    // arrives, the mock has not finished the stream.
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    assert!(first.starts_with(b"data: "));
    let rec = mock.requests();
    assert!(
        !rec.last().unwrap().finished,
        "the first chunk came only after the stream ended"
    );
    while resp.chunk().await.unwrap().is_some() {}
}

#[tokio::test]
async fn error_rows_of_the_spec() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let c = client();
    let post = |body: &'static str, secret: Option<&'static str>| {
        let mut r = c.post(gw.url("/v1/chat/completions")).body(body);
        if let Some(s) = secret {
            r = r.bearer_auth(s);
        }
        r.send()
    };
    let good = r#"{"model":"gpt-test","messages":[{"role":"user","content":"x"}]}"#;

    // 401 in all its forms.
    expect_error(post(good, None).await.unwrap(), 401, "authentication").await;
    expect_error(
        post(good, Some("sk-unknown")).await.unwrap(),
        401,
        "authentication",
    )
    .await;
    expect_error(
        post(good, Some(DISABLED_SECRET)).await.unwrap(),
        401,
        "authentication",
    )
    .await;
    expect_error(
        post(good, Some(EXPIRED_SECRET)).await.unwrap(),
        401,
        "authentication",
    )
    .await;
    let malformed = c
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", "Basic abc")
        .body(good)
        .send()
        .await
        .unwrap();
    expect_error(malformed, 401, "authentication").await;

    // 400 for each malformed body.
    for bad in [
        "not json",
        "[]",
        r#"{"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":42,"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"gpt-test"}"#,
        r#"{"model":"gpt-test","messages":"hi"}"#,
        r#"{"model":"gpt-test","messages":[{"role":"user","content":"x"}],"model_params":[1]}"#,
        r#"{"model":"gpt-test","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
        r#"{"model":"gpt-test","model":"x","messages":[{"role":"user","content":"x"}]}"#,
        "",
    ] {
        let e = expect_error(
            post(bad, Some(DEMO_SECRET)).await.unwrap(),
            400,
            "invalid_request",
        )
        .await;
        assert!(!e["message"].as_str().unwrap().contains(DEMO_SECRET));
    }

    // 404 model, 403 allow-list, 404 path, 405 method.
    let e = expect_error(
        post(
            r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#,
            Some(DEMO_SECRET),
        )
        .await
        .unwrap(),
        404,
        "model_not_found",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("nope"));
    expect_error(
        post(good, Some(LIMITED_SECRET)).await.unwrap(),
        403,
        "permission",
    )
    .await;
    let resp = c
        .get(gw.url("/v2/nothing"))
        .bearer_auth(DEMO_SECRET)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "invalid_request").await;
    let resp = c
        .get(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .send()
        .await
        .unwrap();
    expect_error(resp, 405, "invalid_request").await;

    assert_eq!(
        mock.request_count(),
        0,
        "no refused request reached the upstream"
    );
}

#[tokio::test]
async fn upstream_faults_get_502_and_504() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let send = |header: &'static str, value: &'static str| {
        client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(DEMO_SECRET)
            .header(header, value)
            .json(&chat_body("gpt-test", "x", false))
            .send()
    };
    // A vendor 5xx: 502, the vendor's message kept.
    let e = expect_error(
        send("x-mock-status", "503").await.unwrap(),
        502,
        "upstream_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("mock failure"),
        "{e}"
    );
    // A vendor 400 about the request: the vendor's status, in the spec's shape.
    let e = expect_error(
        send("x-mock-status", "400").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("mock failure"),
        "{e}"
    );
    // A vendor 401 is the gateway's provider key failing, not the client's: 502.
    let e = expect_error(
        send("x-mock-status", "401").await.unwrap(),
        502,
        "upstream_error",
    )
    .await;
    assert!(!e["message"].as_str().unwrap().contains(PROVIDER_KEY));
    // No headers within first_byte_timeout_ms (1.5 s): 504.
    expect_error(
        send("x-mock-stall-headers-ms", "5000").await.unwrap(),
        504,
        "upstream_timeout",
    )
    .await;

    // A stream cut mid-way after its first bytes: one error event, no [DONE].
    let resp = send("x-mock-drop-after", "2").await.unwrap();
    drop(resp);
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mock-drop-after", "2")
        .json(&chat_body("gpt-test", "x", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = String::from_utf8_lossy(&resp.bytes().await.unwrap_or_default()).into_owned();
    let events = parse_sse(&text);
    assert!(!events.contains(&"[DONE]".to_string()), "{text}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["reason"], "upstream_error", "{text}");

    // Nothing listens: 502.
    let dead = format!("http://{}/v1", closed_port_addr());
    let gw2 = start(&dead, "").await;
    expect_error(
        gw2.chat(DEMO_SECRET, &chat_body("gpt-test", "x", false))
            .await,
        502,
        "upstream_error",
    )
    .await;
}

#[tokio::test]
async fn weighted_choice_follows_the_weights() {
    let heavy = MockUpstream::start().await;
    let light = MockUpstream::start().await;
    let cfg = format!(
        r#"
[[providers]]
name = "heavy"
kind = "openai"
base_url = "{}"

[[providers]]
name = "light"
kind = "openai"
base_url = "{}"

[[models]]
name = "m"
  [[models.routes]]
  provider = "heavy"
  model = "h"
  weight = 3
  [[models.routes]]
  provider = "light"
  model = "l"
  weight = 1

[[teams]]
name = "t"

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"
"#,
        heavy.base_url(),
        light.base_url()
    );
    let gw = Gateway::start(&cfg).await;
    let n = 400;
    let body = chat_body("m", "x", false);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = client();
            let url = gw.url("/v1/chat/completions");
            let body = body.clone();
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .bearer_auth(DEMO_SECRET)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.json::<Value>().await.unwrap()["model"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        })
        .collect();
    let mut h = 0;
    for t in tasks {
        if t.await.unwrap() == "h" {
            h += 1;
        }
    }
    assert_eq!(heavy.request_count() + light.request_count(), n);
    assert_eq!(heavy.request_count(), h);
    eprintln!("weights 3:1 over {n} requests: heavy {h}, light {}", n - h);
    // Expected 300; ±45 is more than five standard deviations (σ ≈ 8.7).
    assert!((255..=345).contains(&h), "heavy got {h} of {n}");
}

#[tokio::test]
async fn https_upstream_with_a_private_ca() {
    let ca = TestCa::new();
    let mock = MockUpstream::start_tls(&ca).await;
    let ca_path = ca.ca_pem_path();
    let gw = Gateway::builder(&config(&mock.base_url(), ""))
        .env("SY_TEST_PROVIDER_KEY", PROVIDER_KEY)
        .env("SSL_CERT_FILE", ca_path.to_str().unwrap())
        .start()
        .await;
    let resp = gw
        .chat(DEMO_SECRET, &chat_body("gpt-test", "over tls", false))
        .await;
    assert_eq!(resp.status(), 200, "{}", gw.logs());
    let got = mock.last_request().unwrap();
    assert_eq!(got.json()["model"], "upstream-gpt");
    assert_eq!(
        got.header("host"),
        Some(format!("localhost:{}", mock.port()).as_str())
    );
    let resp = gw
        .chat(DEMO_SECRET, &chat_body("gpt-test", "stream over tls", true))
        .await;
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes, mock.last_request().unwrap().response_body);

    // Without the CA the certificate is refused: 502, and nothing reached the mock.
    let untrusted = start(&mock.base_url(), "").await;
    let before = mock.request_count();
    expect_error(
        untrusted
            .chat(DEMO_SECRET, &chat_body("gpt-test", "x", false))
            .await,
        502,
        "upstream_error",
    )
    .await;
    assert_eq!(mock.request_count(), before);
}

#[tokio::test]
async fn models_list_is_per_key_and_mock_provider_answers() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let list = |secret: &'static str| {
        client()
            .get(gw.url("/v1/models"))
            .bearer_auth(secret)
            .send()
    };
    let all: Value = list(DEMO_SECRET).await.unwrap().json().await.unwrap();
    assert_eq!(all["object"], "list");
    let ids: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    // Each model, then its aliases (a name a client may send as `model`).
    assert_eq!(ids, ["gpt-test", "gt", "mock-model"]);
    assert_eq!(all["data"][0]["object"], "model");
    let narrow: Value = list(LIMITED_SECRET).await.unwrap().json().await.unwrap();
    assert_eq!(narrow["data"].as_array().unwrap().len(), 1);
    assert_eq!(narrow["data"][0]["id"], "mock-model");
    expect_error(list("sk-nope").await.unwrap(), 401, "authentication").await;

    // The built-in mock answers in-process, with usage, streamed and not.
    let r: Value = gw
        .chat(LIMITED_SECRET, &json!({"model":"mock-model","messages":[{"role":"user","content":"one two three"}],"max_tokens":4}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["model"], "mock-1");
    assert_eq!(r["usage"]["prompt_tokens"], 3);
    assert_eq!(r["usage"]["completion_tokens"], 4);
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    let s = gw
        .chat(LIMITED_SECRET, &chat_body("mock-model", "hi there", true))
        .await;
    assert_eq!(s.status(), 200);
    let events = parse_sse(&s.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn admin_health_and_readiness() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let c = client();
    let h = c.get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r: Value = c
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = std::fs::read(gw.config_path()).unwrap();
    assert_eq!(r["config_hash"], hex::encode(Sha256::digest(&file)));
    // The admin paths are not on the public listener.
    let m = c.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 404);
}

#[tokio::test]
async fn openai_python_sdk_works_unchanged() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_sdk.py");
    let out = tokio::process::Command::new(support::python())
        .arg(script)
        .arg(gw.url("/v1"))
        .arg(DEMO_SECRET)
        .arg("mock-model")
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ngateway:\n{}",
        gw.logs()
    );
    assert!(stdout.contains("streaming ok"), "{stdout}");
}

#[tokio::test]
async fn no_secret_in_the_logs() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::builder(&config(&mock.base_url(), ""))
        .env("SY_TEST_PROVIDER_KEY", PROVIDER_KEY)
        .env("RUST_LOG", "trace")
        .start()
        .await;
    gw.chat(DEMO_SECRET, &chat_body("gpt-test", "x", false))
        .await;
    gw.chat(DEMO_SECRET, &chat_body("gpt-test", "x", true))
        .await
        .bytes()
        .await
        .unwrap();
    gw.chat("sk-wrong-secret", &chat_body("gpt-test", "x", false))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = gw.logs();
    assert!(logs.contains("request"), "{logs}");
    for secret in [DEMO_SECRET, PROVIDER_KEY, "sk-wrong-secret"] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
    let _ = SystemTime::now();
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let body = serde_json::to_vec(&chat_body("mock-model", "hello", false)).unwrap();
    let mut conn = tokio::net::TcpStream::connect(gw.api_addr()).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // The body is held back until the gateway says to go on.
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("an interim answer before the body")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    conn.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("chat.completion") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_refused_expect_100_continue_gets_its_answer_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = MockUpstream::start().await;
    let gw = start(&mock.base_url(), "").await;
    let mut conn = tokio::net::TcpStream::connect(gw.api_addr()).await.unwrap();
    let head =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-wrong\r\n\
                Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    // No body follows; the 401 must come without waiting for one (the drain gives up
    // only after 10 s, so a 5 s bound tells the two apart).
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("the 401 came at once")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if String::from_utf8_lossy(&answer).contains("\"status\":401") {
            break;
        }
    }
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
