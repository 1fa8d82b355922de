//! The Anthropic front door to an Anthropic route is a pass-through: the vendor receives the
//! client's bytes with only `model` changed, the client receives the vendor's bytes, and usage
//! (cache reads and writes included) is metered from them. A strict mock vendor
//! (`support::mock_anthropic`) refuses what Anthropic refuses, so a lossy rewrite would fail.

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-provider-secret-9";

struct Setup {
    anth: MockAnthropic,
    oai: MockUpstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_N_ANTH\"",
        )
        .provider("oai", "openai", &oai.base_url(), "")
        .model_with(
            "claude-sonnet",
            "input_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0",
            &[("claude", "claude-sonnet-4-5")],
        )
        .model("gpt", &[("oai", "gpt-5")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_N_ANTH", ANTH_KEY)
        .start()
        .await;
    Setup { anth, oai, gw }
}

/// A Claude Code-like request: cache marks on system and user blocks, a `system` message, a
/// thinking block with its signature before a tool call, thinking on, a field newer than the
/// gateway, and whitespace inside values that a re-serialisation would lose.
fn claude_code_body(stream: bool) -> String {
    format!(
        concat!(
            r#"{{"model":"claude-sonnet","max_tokens":2048,"#,
            r#""system":[{{"type":"text","text":"You are Claude Code.","cache_control":{{"type":"ephemeral"}}}}],"#,
            r#""messages":[{{"role":"system","content":"Extra system text"}},"#,
            r#"{{"role":"user","content":[{{"type":"text","text":"Fix the bug  \u00e9","cache_control":{{"type": "ephemeral"}}}}]}},"#,
            r#"{{"role":"assistant","content":[{{"type":"thinking","thinking":"Let me look.","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"}},"#,
            r#"{{"type":"tool_use","id":"toolu_01","name":"read_file","input":{{ "path" : "src/main.rs" }}}}]}},"#,
            r#"{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_01","content":"fn main() {{}}"}}]}}],"#,
            r#""thinking":{{"type":"enabled","budget_tokens":1024}},"#,
            r#""context_management":{{"edits":[{{"type":"clear_tool_uses_20250919"}}]}},"#,
            r#""stream":{}}}"#
        ),
        stream
    )
}

async fn post_messages(gw: &Gateway, path: &str, body: String) -> reqwest::Response {
    gw.client()
        .post(gw.url(path))
        .header("x-api-key", DEMO_SECRET)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_gets_the_clients_bytes_and_the_client_the_vendors() {
    let s = setup().await;
    s.anth.set_usage(AnthUsage {
        input: 20,
        cache_read: 90_000,
        cache_write: 300,
        output: 100,
    });
    for stream in [false, true] {
        let body = claude_code_body(stream);
        let r = post_messages(&s.gw, "/v1/messages", body.clone()).await;
        let status = r.status();
        let got = r.bytes().await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
        let sent = s.anth.last();
        // Byte for byte, but the model name.
        let want = body.replacen(
            r#""model":"claude-sonnet""#,
            r#""model":"claude-sonnet-4-5""#,
            1,
        );
        assert_eq!(String::from_utf8_lossy(&sent.body), want, "stream={stream}");
        assert_eq!(
            got, sent.response,
            "the answer reaches the client untouched"
        );
        // The vendor's headers: its key, the client's version and beta; never the client's key.
        assert_eq!(sent.header("x-api-key"), Some(ANTH_KEY));
        assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(
            sent.header("anthropic-beta"),
            Some("context-management-2025-06-27")
        );
        assert!(sent.header("authorization").is_none());
        assert!(!format!("{:?}", sent.headers).contains(DEMO_SECRET));
    }

    // Usage metered from the vendor's bytes: prompt = input + cache read + cache write.
    // (A line is written once its answer went out: the two may come in either order.)
    let lines = s.gw.wait_usage_lines(2).await;
    let streams: std::collections::BTreeSet<bool> =
        lines.iter().filter_map(|l| l["stream"].as_bool()).collect();
    assert_eq!(streams.len(), 2, "one whole, one streamed: {lines:?}");
    for line in &lines {
        assert_eq!(line["status"], 200);
        assert_eq!(line["prompt_tokens"], 90_320, "{line}");
        assert_eq!(line["completion_tokens"], 100, "{line}");
        assert_eq!(line["usage_source"], "reported");
        assert_eq!(line["provider"], "claude");
    }
    let metrics = s.gw.metrics().await;
    let prompt = metrics
        .lines()
        .find(|l| {
            l.starts_with("switchyard_tokens_total{")
                && l.contains("provider=\"claude\"")
                && l.contains("type=\"prompt\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(prompt.ends_with(" 180640"), "{prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendors_refusal_comes_back_in_anthropics_shape() {
    let s = setup().await;
    // A whitespace-only stop sequence: the client's business on a native route, refused by
    // the vendor, and its message reaches the client.
    let body = r#"{"model":"claude-sonnet","max_tokens":64,"stop_sequences":["\n"],"messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_messages(&s.gw, "/v1/messages", body.to_string()).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("non-whitespace"),
        "{v}"
    );
    // Bad input the gateway itself needs is refused before any vendor, in the same shape.
    let before = s.anth.requests().len();
    for (body, want) in [
        (r#"{"max_tokens":1,"messages":[]}"#, "`model` is required"),
        (
            r#"{"model":"claude-sonnet","max_tokens":1}"#,
            "`messages` is required",
        ),
        (
            r#"{"model":"claude-sonnet","max_tokens":"x","messages":[]}"#,
            "`max_tokens` must be a whole number",
        ),
        ("[1,2]", "not a JSON object"),
    ] {
        let r = post_messages(&s.gw, "/v1/messages", body.to_string()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{body}: {v}"
        );
    }
    assert_eq!(s.anth.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_passes_through_or_is_estimated_and_is_never_charged() {
    let s = setup().await;
    let body = r#"{"model":"claude-sonnet","system":"Be brief.","messages":[{"role":"user","content":"Count me, please."}]}"#;
    let r = post_messages(&s.gw, "/v1/messages/count_tokens", body.to_string()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let sent = s.anth.last();
    assert_eq!(sent.path, "/v1/messages/count_tokens");
    let want_body = body.replacen("claude-sonnet", "claude-sonnet-4-5", 1);
    assert_eq!(String::from_utf8_lossy(&sent.body), want_body);
    assert_eq!(v["input_tokens"], want_body.len() / 4, "the vendor's count");

    // To a route whose vendor cannot count: the gateway's estimate, same shape, no upstream.
    let body = body.replacen("claude-sonnet", "gpt", 1);
    let r = post_messages(&s.gw, "/v1/messages/count_tokens", body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(s.oai.request_count(), 0);

    // Both are counted as requests, neither is charged tokens.
    let lines = s.gw.wait_usage_lines(2).await;
    assert!(lines.iter().all(|l| l["status"] == 200), "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["prompt_tokens"] == 0 && l["completion_tokens"] == 0),
        "{lines:?}"
    );
    let metrics = s.gw.metrics().await;
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("switchyard_tokens_total{") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("switchyard_requests_total{") && l.contains("status=\"200\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>(),
        2.0
    );
}

/// Runs tests/python/anthropic_sdk.py (create, stream, count_tokens) against the gateway.
fn anthropic_sdk(gw: &Gateway, model: &str, max_tokens: u32) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/anthropic_sdk.py");
    let out = std::process::Command::new(support::python())
        .args([
            script,
            &gw.url(""),
            DEMO_SECRET,
            model,
            &max_tokens.to_string(),
        ])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_through_the_gateway() {
    let s = setup().await;
    s.anth.set_usage(AnthUsage {
        input: 12,
        cache_read: 4000,
        cache_write: 0,
        output: 9,
    });
    let r = anthropic_sdk(&s.gw, "claude-sonnet", 1024);
    assert_eq!(r["create"]["content"], ANTHROPIC_REPLY, "{r}");
    assert_eq!(r["create"]["usage"]["cache_read_input_tokens"], 4000, "{r}");
    assert_eq!(r["stream"]["content"], ANTHROPIC_REPLY, "{r}");
    assert_eq!(r["stream"]["stop_reason"], "end_turn");
    assert_eq!(r["stream"]["usage"]["cache_read_input_tokens"], 4000, "{r}");
    assert!(r["count"]["input_tokens"].as_u64().unwrap() > 0, "{r}");
    let paths: Vec<String> = s.anth.requests().iter().map(|q| q.path.clone()).collect();
    assert_eq!(
        paths,
        ["/v1/messages", "/v1/messages", "/v1/messages/count_tokens"]
    );
    for q in s.anth.requests() {
        // The SDK's cache marks arrive as the SDK wrote them.
        assert_eq!(
            q.json()["system"][0]["cache_control"],
            json!({"type":"ephemeral"})
        );
        assert_eq!(
            q.header("anthropic-beta"),
            Some("prompt-caching-2024-07-31")
        );
    }

    // To an OpenAI reasoning model: translated, with max_completion_tokens.
    let r = anthropic_sdk(&s.gw, "gpt", 16000);
    assert!(
        r["create"]["content"]
            .as_str()
            .unwrap()
            .starts_with("mock reply to:"),
        "{r}"
    );
    assert!(
        r["stream"]["content"].as_str().unwrap().starts_with("tok0"),
        "{r}"
    );
    let sent = s.oai.requests();
    assert_eq!(sent.len(), 2, "count_tokens never reaches an OpenAI vendor");
    for q in sent {
        let v = q.json();
        assert_eq!(v["max_completion_tokens"], 16000, "{v}");
        assert!(v.get("max_tokens").is_none(), "{v}");
        assert!(q.header("anthropic-beta").is_none());
        assert_eq!(v["messages"][0]["role"], "system");
    }
}
