//! The Responses door's tools that are not plain functions, on translated routes (#27, item 6
//! and "Codex CLI out of the box"): Codex CLI's `namespace` tools are carried as function
//! tools whose calls go back with their namespace; a hosted `web_search` becomes Anthropic's
//! web search server tool or Gemini's Google Search, or is left out; every other hosted tool
//! is left out of the offer, named in `x-switchyard-adjusted` and counted in
//! `switchyard_request_adjustments_total` — never a 400.

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "anth-hosted-key";
const GEM_KEY: &str = "gem-hosted-key";

/// Codex CLI's default offer, cut down to one tool of each kind it sends (captured from
/// `codex exec` 0.171.0 with only a provider configured), plus two hosted tools it may offer.
fn codex_tools() -> Value {
    json!([
        {"type": "function", "name": "exec_command", "description": "Runs a command.",
         "strict": false, "parameters": {"type": "object",
            "properties": {"cmd": {"type": "string"}}, "required": ["cmd"],
            "additionalProperties": false}},
        {"type": "namespace", "name": "multi_agent_v1",
         "description": "Tools for spawning and managing sub-agents.",
         "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Spawn an agent.",
             "strict": false, "parameters": {"type": "object",
                "properties": {"task": {"type": "string"}}, "required": ["task"],
                "additionalProperties": false}},
            {"type": "function", "name": "wait_agent", "description": "Wait for agents.",
             "strict": false, "parameters": {"type": "object", "properties": {}}}]},
        {"type": "web_search", "external_web_access": false},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "image_generation"}
    ])
}

fn codex_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "instructions": "You are a coding agent.",
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "what is new in rust?"}]}],
        "tools": codex_tools(),
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"summary": "auto"},
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "stream": stream
    })
}

struct Setup {
    anth: MockAnthropic,
    gem: MockGemini,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let gem = MockGemini::start(GEM_KEY).await;
    let body = ConfigBody::new()
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_H_ANTH\"",
        )
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_H_GEM\"")
        .mock_provider("local")
        .model("claude", &[("anth", "claude-sonnet-4-5")])
        .model("gemini", &[("gem", "gemini-2.5-flash")])
        .model("mock", &[("local", "mock-1")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_H_ANTH", ANTH_KEY)
        .env("SY_H_GEM", GEM_KEY)
        .start()
        .await;
    Setup { anth, gem, gw }
}

/// `POST /v1/responses`: status, `x-switchyard-adjusted`, body.
async fn post(gw: &Gateway, body: &Value) -> (u16, Option<String>, String) {
    let r = gw
        .client()
        .post(gw.url("/v1/responses"))
        .bearer_auth(DEMO_SECRET)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let adjusted = r
        .headers()
        .get("x-switchyard-adjusted")
        .map(|v| v.to_str().unwrap().to_string());
    (status, adjusted, r.text().await.unwrap())
}

/// What Anthropic answers when the model searched the web, then called a namespace's
/// function: its server tool blocks, cited text, and a `tool_use` by the flattened name.
fn searched_then_called() -> Value {
    json!([
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
         "input": {"query": "rust news"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
         "content": [{"type": "web_search_result", "url": "https://blog.rust-lang.org/",
                      "title": "Rust Blog", "encrypted_content": "EqwBCg", "page_age": null}]},
        {"type": "text", "text": "Rust 1.99 is out.",
         "citations": [{"type": "web_search_result_location", "url": "https://blog.rust-lang.org/",
                        "title": "Rust Blog", "encrypted_index": "Eo8BCg",
                        "cited_text": "Rust 1.99 is out"}]},
        {"type": "tool_use", "id": "toolu_1", "name": "multi_agent_v1__spawn_agent",
         "input": {"task": "summarise"}}
    ])
}

/// `switchyard_request_adjustments_total{adjustment}` once it reads `want` (polled: a request
/// is counted after its answer went out).
async fn adjustments(gw: &Gateway, adjustment: &str, want: f64) -> f64 {
    gw.metric_until(
        "switchyard_request_adjustments_total",
        &[("adjustment", adjustment)],
        want,
    )
    .await
}

#[tokio::test]
async fn codex_offer_on_anthropic_carries_namespaces_and_maps_web_search() {
    let s = setup().await;
    s.anth.set_content(searched_then_called());
    let (status, adjusted, body) = post(&s.gw, &codex_request("claude", false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        adjusted.as_deref(),
        Some("tools.file_search, tools.image_generation"),
        "hosted tools Anthropic cannot run are left out and named; web search is mapped"
    );

    let sent = s.anth.last().json();
    let tools = sent["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__wait_agent",
            "web_search"
        ]
    );
    assert_eq!(
        tools[3],
        json!({"type": "web_search_20250305", "name": "web_search"})
    );
    for name in &names {
        assert!(
            name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "Anthropic's tool-name rule: {name}"
        );
    }

    // The answer: the cited text, and the call under its namespace and own name.
    let v: Value = serde_json::from_str(&body).unwrap();
    let output = v["output"].as_array().unwrap();
    assert_eq!(output[0]["content"][0]["text"], "Rust 1.99 is out.", "{v}");
    let call = output
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap();
    assert_eq!(call["name"], "spawn_agent", "{call}");
    assert_eq!(call["namespace"], "multi_agent_v1", "{call}");
    assert_eq!(call["arguments"], r#"{"task":"summarise"}"#);

    assert_eq!(adjustments(&s.gw, "tools.file_search", 1.0).await, 1.0);
    assert_eq!(adjustments(&s.gw, "tools.image_generation", 1.0).await, 1.0);
    assert_eq!(adjustments(&s.gw, "tools.web_search", 0.0).await, 0.0);

    // The next turn replays the call by namespace and name: it reaches Anthropic under the
    // flattened name the model called.
    let mut next = codex_request("claude", false);
    let items = next["input"].as_array_mut().unwrap();
    items.push(json!({"type": "function_call", "call_id": "toolu_1",
        "namespace": "multi_agent_v1", "name": "spawn_agent", "arguments": "{\"task\":\"summarise\"}"}));
    items.push(json!({"type": "function_call_output", "call_id": "toolu_1", "output": "done"}));
    s.anth
        .set_content(json!([{"type": "text", "text": "All done."}]));
    let (status, _, body) = post(&s.gw, &next).await;
    assert_eq!(status, 200, "{body}");
    let sent = s.anth.last().json();
    let replayed = &sent["messages"][1]["content"];
    assert_eq!(replayed[0]["type"], "tool_use", "{sent}");
    assert_eq!(replayed[0]["name"], "multi_agent_v1__spawn_agent");
}

#[tokio::test]
async fn codex_offer_on_anthropic_streamed_names_calls_by_namespace() {
    let s = setup().await;
    s.anth.set_content(searched_then_called());
    let (status, adjusted, body) = post(&s.gw, &codex_request("claude", true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        adjusted.as_deref(),
        Some("tools.file_search, tools.image_generation")
    );
    assert!(body.contains("Rust 1.99 is out."), "{body}");
    assert!(!body.contains("multi_agent_v1__"), "{body}");
    let done: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|e| e["type"] == "response.output_item.done")
        .collect();
    let call = done
        .iter()
        .map(|e| &e["item"])
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function_call item: {body}"));
    assert_eq!(
        (&call["namespace"], &call["name"]),
        (&json!("multi_agent_v1"), &json!("spawn_agent"))
    );
    assert!(body.contains("event: response.completed"), "{body}");
}

#[tokio::test]
async fn codex_offer_on_gemini_leaves_out_web_search_beside_functions() {
    let s = setup().await;
    let (status, adjusted, body) = post(&s.gw, &codex_request("gemini", false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        adjusted.as_deref(),
        Some("tools.file_search, tools.image_generation, tools.web_search")
    );
    let sent = s.gem.bodies().pop().unwrap();
    let tools = sent["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "only the function declarations: {sent}");
    let names: Vec<&str> = tools[0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__wait_agent"
        ]
    );

    // Web search alone: Gemini's own Google Search, nothing left out.
    let alone =
        json!({"model": "gemini", "input": "news?", "tools": [{"type": "web_search_preview"}]});
    let (status, adjusted, body) = post(&s.gw, &alone).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(adjusted, None);
    let sent = s.gem.bodies().pop().unwrap();
    assert_eq!(sent["tools"], json!([{"google_search": {}}]), "{sent}");

    assert_eq!(adjustments(&s.gw, "tools.web_search", 1.0).await, 1.0);
}

#[tokio::test]
async fn codex_offer_on_the_builtin_mock_is_answered_with_what_was_left_out_named() {
    let s = setup().await;
    for stream in [false, true] {
        let (status, adjusted, body) = post(&s.gw, &codex_request("mock", stream)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            adjusted.as_deref(),
            Some("tools.file_search, tools.image_generation, tools.web_search"),
            "stream: {stream}"
        );
    }
    // A hosted type nobody knows yet is left out too, not refused.
    let novel = json!({"model": "mock", "input": "hi", "tools": [{"type": "hologram_2027"}]});
    let (status, adjusted, body) = post(&s.gw, &novel).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(adjusted.as_deref(), Some("tools.other"));
    assert_eq!(adjustments(&s.gw, "tools.web_search", 2.0).await, 2.0);
    assert_eq!(adjustments(&s.gw, "tools.other", 1.0).await, 1.0);
}
