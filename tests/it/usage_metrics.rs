//! Usage accounting end to end: every request counted once, tokens equal to what the vendor
//! reported, estimates marked, disconnects counted with what was delivered, and nothing
//! secret in `/metrics` or the usage log.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const PROVIDER_KEY: &str = "sk-provider-usage-secret-42";

fn config(base_url: &str, usage_path: &str) -> String {
    let up = "api_key_env = \"SY_USAGE_PROVIDER_KEY\"\n\
              first_byte_timeout_ms = 2000\n\
              idle_timeout_ms = 2000";
    ConfigBody::new()
        .text(&format!("[log]\nusage = \"{usage_path}\""))
        .provider("up", "openai", base_url, up)
        .mock_provider("builtin")
        .model_with(
            "gpt-test",
            "input_usd_per_mtok = 2.0\noutput_usd_per_mtok = 8.0",
            &[("up", "upstream-gpt")],
        )
        .model("local", &[("builtin", "mock-1")])
        .team("research", "")
        .demo_key("alice", "research")
        .build()
}

async fn start(mock: &MockUpstream) -> Gateway {
    Gateway::builder(&config(&mock.base_url(), "{DIR}/usage.jsonl"))
        .env("SY_USAGE_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await
}

/// The usage the mock reported in one recorded answer (streamed or not).
fn reported(rec: &Recorded) -> (u64, u64) {
    let text = rec.response_text();
    let usage = if rec.stream {
        parse_sse_json(&text)
            .into_iter()
            .rev()
            .find(|v| !v["usage"].is_null())
            .map(|v| v["usage"].clone())
            .expect("the stream carried usage")
    } else {
        serde_json::from_str::<Value>(&text).unwrap()["usage"].clone()
    };
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn counters_equal_the_usage_the_vendor_sent() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock).await;
    let c = client();
    let mut sent = 0;
    for i in 0..30usize {
        let stream = i % 2 == 0;
        let resp = c
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(DEMO_SECRET)
            .header("x-mock-chunks", (1 + i % 7).to_string())
            .json(&chat_body("gpt-test", &"word ".repeat(i + 1), stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        sent += 1;
    }
    // Errors count too: an unknown model, a bad key, a vendor 500.
    gw.chat(DEMO_SECRET, &chat_body("nope", "x", false)).await;
    gw.chat("sk-bad", &chat_body("gpt-test", "x", false)).await;
    c.post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mock-status", "500")
        .json(&chat_body("gpt-test", "x", false))
        .send()
        .await
        .unwrap();
    let total_requests = sent + 3;

    let lines = gw.wait_usage_lines(total_requests).await;
    assert_eq!(lines.len(), total_requests, "one usage line per request");

    let (mut prompt, mut completion) = (0u64, 0u64);
    for rec in mock.requests().iter().filter(|r| r.status == 200) {
        let (p, c) = reported(rec);
        prompt += p;
        completion += c;
    }
    let metrics = gw.metrics().await;
    let labels = [
        ("team", "research"),
        ("key", "alice"),
        ("model", "gpt-test"),
    ];
    let tokens = |kind: &str| {
        let mut l = labels.to_vec();
        l.push(("type", kind));
        l.push(("usage_source", "reported"));
        metric_value(&metrics, "switchyard_tokens_total", &l).unwrap_or(0.0) as u64
    };
    assert_eq!(tokens("prompt"), prompt);
    assert_eq!(tokens("completion"), completion);
    let requests = metric_value(&metrics, "switchyard_requests_total", &[]).unwrap() as usize;
    assert_eq!(requests, total_requests);
    assert_eq!(
        metric_value(&metrics, "switchyard_requests_total", &[("status", "200")]).unwrap() as usize,
        sent
    );
    assert_eq!(
        metric_value(
            &metrics,
            "switchyard_requests_total",
            &[("key", "-"), ("status", "401")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "switchyard_upstream_errors_total",
            &[("provider", "up")]
        ),
        // The vendor's 500 on every attempt: the model's one route is tried max_attempts (3)
        // times, each failure counted; the request itself once.
        Some(3.0)
    );
    let cost = metric_value(
        &metrics,
        "switchyard_cost_usd_total",
        &[("team", "research")],
    )
    .unwrap();
    let want = (prompt as f64 * 2.0 + completion as f64 * 8.0) / 1e6;
    assert!((cost - want).abs() < 1e-9, "{cost} vs {want}");
    // The usage log agrees with the metrics.
    let logged: u64 = lines
        .iter()
        .map(|l| l["completion_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(logged, completion);
    let ok = lines
        .iter()
        .find(|l| l["status"] == 200 && l["stream"] == true)
        .unwrap();
    for field in [
        "request_id",
        "time",
        "key",
        "team",
        "model",
        "provider",
        "upstream_model",
        "usage_source",
        "cost_usd",
        "duration_ms",
        "ttft_ms",
    ] {
        assert!(!ok[field].is_null(), "{field} missing from {ok}");
    }
    assert_eq!(ok["upstream_model"], "upstream-gpt");
    assert_eq!(ok["usage_source"], "reported");
    let failed = lines.iter().find(|l| l["status"] == 404).unwrap();
    assert_eq!(failed["reason"], "model_not_found");
}

#[tokio::test]
async fn missing_usage_is_estimated_and_marked() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock).await;
    for stream in [false, true] {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(DEMO_SECRET)
            .header("x-mock-no-usage", "1")
            .header("x-mock-chunks", "8")
            .json(&chat_body("gpt-test", "please estimate me", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let lines = gw.wait_usage_lines(2).await;
    for l in &lines {
        assert_eq!(l["usage_source"], "estimated", "{l}");
        assert!(l["prompt_tokens"].as_u64().unwrap() > 0, "{l}");
        assert!(l["completion_tokens"].as_u64().unwrap() > 0, "{l}");
    }
    let metrics = gw.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "switchyard_tokens_total",
            &[("usage_source", "estimated"), ("type", "completion")]
        )
        .unwrap()
            > 0.0
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_counted_with_partial_tokens() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock).await;
    let mut resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-request-id", "leaver-1")
        .header("x-mock-chunks", "50")
        .header("x-mock-chunk-delay-ms", "50")
        .json(&chat_body("gpt-test", "I will leave early", true))
        .send()
        .await
        .unwrap();
    let mut seen = 0;
    while seen < 4 {
        let chunk = resp.chunk().await.unwrap().unwrap();
        seen += chunk.iter().filter(|b| **b == b'\n').count() / 2;
    }
    drop(resp);
    let lines = gw.wait_usage_lines(1).await;
    let l = &lines[0];
    assert_eq!(l["request_id"], "leaver-1");
    assert_eq!(l["status"], 499, "{l}");
    assert_eq!(l["usage_source"], "estimated", "{l}");
    let completion = l["completion_tokens"].as_u64().unwrap();
    assert!(completion > 0 && completion < 50, "{l}");
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_value(&metrics, "switchyard_requests_total", &[("status", "499")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "switchyard_active_streams", &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn mock_provider_usage_is_counted() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock).await;
    let r: Value = gw
        .chat(DEMO_SECRET, &chat_body("local", "one two three", false))
        .await
        .json()
        .await
        .unwrap();
    let s = gw
        .chat(DEMO_SECRET, &chat_body("local", "one two three", true))
        .await;
    s.bytes().await.unwrap();
    // A request is counted once its answer has ended, which the client may see first: wait
    // for both (bounded).
    let want = 2 * r["usage"]["completion_tokens"].as_u64().unwrap();
    let mut completion = 0;
    for _ in 0..100 {
        let metrics = gw.metrics().await;
        completion = metric_value(
            &metrics,
            "switchyard_tokens_total",
            &[("model", "local"), ("type", "completion")],
        )
        .unwrap_or(0.0) as u64;
        if completion >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(completion, want);
}

#[tokio::test]
async fn no_secret_in_metrics_or_usage_log_and_promtool_accepts_the_scrape() {
    let mock = MockUpstream::start().await;
    let gw = start(&mock).await;
    gw.chat(DEMO_SECRET, &chat_body("gpt-test", "x", false))
        .await;
    gw.chat(DEMO_SECRET, &chat_body("gpt-test", "x", true))
        .await
        .bytes()
        .await
        .unwrap();
    gw.chat("sk-not-a-key-at-all", &chat_body("gpt-test", "x", false))
        .await;
    gw.chat(
        DEMO_SECRET,
        &chat_body("client-chosen-model-name", "x", false),
    )
    .await;
    let lines = gw.wait_usage_lines(4).await;
    let log = serde_json::to_string(&lines).unwrap();
    let metrics = gw.metrics().await;
    for secret in [DEMO_SECRET, PROVIDER_KEY, "sk-not-a-key-at-all"] {
        assert!(!metrics.contains(secret), "{secret} in /metrics");
        assert!(!log.contains(secret), "{secret} in the usage log");
    }
    assert!(
        !metrics.contains("client-chosen-model-name"),
        "client input became a label"
    );
    assert!(!log.contains("\"x\""), "prompt text in the usage log");

    let dir = tempfile::tempdir().unwrap();
    let scrape = dir.path().join("scrape.prom");
    std::fs::write(&scrape, &metrics).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&scrape).unwrap())
        .output()
        .expect("promtool is installed (.ci/run installs Debian's prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_unwritable_usage_log_fails_no_request() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::builder(&config(&mock.base_url(), "{DIR}/not-a-dir/usage.jsonl"))
        .env("SY_USAGE_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await;
    std::fs::write(
        gw.dir().join("not-a-dir"),
        b"a file where a directory should be",
    )
    .unwrap();
    for _ in 0..3 {
        let resp = gw
            .chat(DEMO_SECRET, &chat_body("gpt-test", "x", false))
            .await;
        assert_eq!(resp.status(), 200);
    }
    let mut errors = 0.0;
    for _ in 0..100 {
        let metrics = gw.metrics().await;
        errors = metric_value(&metrics, "switchyard_usage_log_errors_total", &[]).unwrap_or(0.0);
        if errors >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(errors, 3.0, "each lost line is counted");
    assert!(gw.logs().contains("cannot write the usage log"));
}
