//! Claude Code's requests on routes that are not Anthropic's: its current thinking mode
//! (`thinking: {"type":"adaptive"}` with `output_config.effort`) and its long
//! `metadata.user_id` reach an OpenAI-compatible vendor in forms that vendor takes, and the
//! built-in mock (the example config's `claude-sonnet`) answers them.

use crate::support;

use serde_json::{json, Value};
use support::*;

/// The body Claude Code sends for a prompt (the parts that matter here).
fn claude_code_body(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 32000,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low"},
        "metadata": {"user_id": format!("user_{}_account_{}_session_{}",
            "f".repeat(64), "0".repeat(36), "1".repeat(36))},
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "say hi"}]}],
        "stream": false
    })
}

async fn post_messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    gw.client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", DEMO_SECRET)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn adaptive_thinking_reaches_an_openai_route_as_reasoning_effort() {
    let vendor = MockUpstream::start().await;
    let config = ConfigBody::new()
        .provider("oa", "openai", &vendor.base_url(), "")
        .model("gpt", &[("oa", "gpt-5")])
        .mock_provider("m")
        .model("claude-sonnet", &[("m", "mock-large")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&config).await;

    let resp = post_messages(&gw, &claude_code_body("gpt")).await;
    assert_eq!(resp.status(), 200);
    let sent = vendor.last_request().unwrap().json();
    assert_eq!(sent["reasoning_effort"], "low", "{sent}");
    let user = sent["user"].as_str().unwrap();
    assert!(
        user.len() <= 64,
        "OpenAI refuses a user over 64 characters: {user}"
    );

    // The built-in mock answers it too (the example config's claude-sonnet).
    let resp = post_messages(&gw, &claude_code_body("claude-sonnet")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message", "{v}");

    // An effort Anthropic does not define is the client's 400, naming the field, and no
    // vendor is called.
    let before = vendor.request_count();
    let mut bad = claude_code_body("gpt");
    bad["output_config"]["effort"] = json!("extreme");
    let resp = post_messages(&gw, &bad).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("output_config.effort"),
        "{v}"
    );
    assert_eq!(vendor.request_count(), before);
}
