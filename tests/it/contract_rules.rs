//! Each vendor's contract (`src/contract/`) kept by the translated requests, through the
//! binary and the strict mock vendors: the issue's examples "Reasoning changes what else the
//! vendor accepts" (adjusted, said in `x-switchyard-adjusted` and counted in
//! `switchyard_request_adjustments_total`), "Ids minted by one vendor break the next one"
//! (ids mapped alike in a call and its result) and "Fields with other limits on the other
//! side" (hashed), and what cannot travel refused with a 400 before any vendor is called.
//! The rules are listed per vendor in docs/vendor-rules.md.

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-contract-secret-3";

/// Kimi and DeepSeek mint ids like this one; Anthropic refuses them.
const KIMI_ID: &str = "functions.lookup:0";

/// The gateway's own legacy Gemini id: `<id>__thought__<signature>`, a signature of
/// hundreds of characters with `+/=`.
fn gemini_id() -> String {
    format!("call_7__thought__{}", "CiQBjz1rX+/=".repeat(30))
}

struct Setup {
    anth: MockAnthropic,
    oa: MockUpstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oa = MockUpstream::start().await;
    let body = ConfigBody::new()
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_C_ANTH\"",
        )
        .provider("oa", "openai", &oa.base_url(), "chat_only = true")
        .model("claude", &[("claude", "claude-sonnet-4-5")])
        .model("gpt", &[("oa", "gpt-4o")])
        .team("t", "tpm = 1000000")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_C_ANTH", ANTH_KEY)
        .start()
        .await;
    Setup { anth, oa, gw }
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = gw
        .client()
        .post(gw.url(path))
        .bearer_auth(DEMO_SECRET)
        .header("x-api-key", DEMO_SECRET)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, v)
}

fn adjusted(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("x-switchyard-adjusted")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The adjustments counted for `provider`'s `adjustment`, once the request is accounted.
async fn counted(gw: &Gateway, provider: &str, adjustment: &str, want: f64) -> f64 {
    let labels = [("provider", provider), ("adjustment", adjustment)];
    let mut last = None;
    for _ in 0..50 {
        let text = gw.metrics().await;
        last = metric_value(&text, "switchyard_request_adjustments_total", &labels);
        if last == Some(want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last.unwrap_or(0.0)
}

fn lookup_tool_chat() -> Value {
    json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}])
}

/// "Reasoning changes what else the vendor accepts", from the chat door: `reasoning_effort`
/// with a temperature (LangChain always sends one), a `top_p` below 0.95 and a forced
/// `tool_choice` reach Anthropic without what it refuses beside thinking; the answer names
/// each change and the metric counts it.
#[tokio::test]
async fn reasoning_with_sampling_is_adjusted_said_and_counted_from_the_chat_door() {
    let s = setup().await;
    let (status, headers, v) = post(
        &s.gw,
        "/v1/chat/completions",
        &json!({"model": "claude", "max_tokens": 4000, "reasoning_effort": "low",
            "temperature": 0.2, "top_p": 0.5, "top_k": 5, "tools": lookup_tool_chat(),
            "tool_choice": "required",
            "messages": [{"role": "user", "content": "look it up"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.anth.last().json();
    assert_eq!(sent["thinking"]["type"], "enabled", "{sent}");
    for field in ["temperature", "top_p", "top_k"] {
        assert!(sent.get(field).is_none(), "{field}: {sent}");
    }
    assert_eq!(sent["tool_choice"]["type"], "auto", "{sent}");
    assert_eq!(adjusted(&headers), "temperature, top_p, top_k, tool_choice");
    assert_eq!(counted(&s.gw, "claude", "temperature", 1.0).await, 1.0);
    assert_eq!(counted(&s.gw, "claude", "tool_choice", 1.0).await, 1.0);

    // Without reasoning the temperature stays; a `top_p` beside it is left out (Claude's
    // 4.5 models refuse both), and said.
    let (status, headers, v) = post(
        &s.gw,
        "/v1/chat/completions",
        &json!({"model": "claude", "temperature": 0.2, "top_p": 0.9,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.anth.last().json();
    assert_eq!(sent["temperature"], 0.2);
    assert!(sent.get("top_p").is_none(), "{sent}");
    assert_eq!(adjusted(&headers), "top_p");
    assert_eq!(counted(&s.gw, "claude", "top_p", 2.0).await, 2.0);
    assert_eq!(counted(&s.gw, "claude", "temperature", 1.0).await, 1.0);

    // What Anthropic takes as it is is not changed, and nothing is said.
    let (status, headers, v) = post(
        &s.gw,
        "/v1/chat/completions",
        &json!({"model": "claude", "top_p": 0.9,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(s.anth.last().json()["top_p"], 0.9);
    assert!(headers.get("x-switchyard-adjusted").is_none());
}

/// The same from the Responses door: `reasoning.effort` with a `temperature` and a named
/// function as `tool_choice`.
#[tokio::test]
async fn reasoning_with_sampling_is_adjusted_said_and_counted_from_the_responses_door() {
    let s = setup().await;
    let (status, headers, v) = post(
        &s.gw,
        "/v1/responses",
        &json!({"model": "claude", "max_output_tokens": 4000, "reasoning": {"effort": "low"},
            "temperature": 0.2, "input": "look it up",
            "tools": [{"type": "function", "name": "lookup",
                "parameters": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "function", "name": "lookup"}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.anth.last().json();
    assert_eq!(sent["thinking"]["type"], "enabled", "{sent}");
    assert!(sent.get("temperature").is_none(), "{sent}");
    assert_eq!(sent["tool_choice"]["type"], "auto", "{sent}");
    assert_eq!(adjusted(&headers), "temperature, tool_choice");
    assert_eq!(counted(&s.gw, "claude", "temperature", 1.0).await, 1.0);
    assert_eq!(counted(&s.gw, "claude", "tool_choice", 1.0).await, 1.0);
}

fn anthropic_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// "Ids minted by one vendor break the next one", to Anthropic: a history whose tool calls
/// carry Kimi's `functions.lookup:0` and the gateway's legacy Gemini id reaches Anthropic
/// with ids in its pattern, each call and its result mapped alike, from the chat and the
/// Responses doors.
#[tokio::test]
async fn foreign_tool_call_ids_reach_anthropic_valid_and_paired() {
    let s = setup().await;
    let gemini = gemini_id();
    let calls = json!([
        {"id": KIMI_ID, "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"a\"}"}},
        {"id": gemini, "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"b\"}"}}]);
    let (status, _, v) = post(
        &s.gw,
        "/v1/chat/completions",
        &json!({"model": "claude", "tools": lookup_tool_chat(), "messages": [
            {"role": "user", "content": "look both up"},
            {"role": "assistant", "content": null, "tool_calls": calls},
            {"role": "tool", "tool_call_id": KIMI_ID, "content": "A"},
            {"role": "tool", "tool_call_id": gemini, "content": "B"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.anth.last().json();
    let uses = sent["messages"][1]["content"].as_array().unwrap().clone();
    let results = sent["messages"][2]["content"].as_array().unwrap().clone();
    assert_eq!(uses.len(), 2, "{sent}");
    for (u, r) in uses.iter().zip(&results) {
        let id = u["id"].as_str().unwrap();
        assert!(anthropic_id_ok(id), "{id}");
        assert_eq!(r["tool_use_id"], id, "{sent}");
    }
    assert_ne!(uses[0]["id"], uses[1]["id"]);

    let (status, _, v) = post(
        &s.gw,
        "/v1/responses",
        &json!({"model": "claude", "input": [
            {"role": "user", "content": "look it up"},
            {"type": "function_call", "call_id": KIMI_ID, "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": KIMI_ID, "output": "A"}],
            "tools": [{"type": "function", "name": "lookup",
                "parameters": {"type": "object", "properties": {}}}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.anth.last().json();
    let id = sent["messages"][1]["content"][0]["id"].as_str().unwrap();
    assert!(anthropic_id_ok(id), "{sent}");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], id);
}

fn messages_tool_history(id: &str, result: Value) -> Value {
    json!({"model": "gpt", "max_tokens": 500,
        "tools": [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}],
        "messages": [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": id, "name": "lookup", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": id, "content": result}]}]})
}

/// "Ids minted by one vendor break the next one", to OpenAI: the gateway's legacy Gemini id
/// (hundreds of characters) from the Messages and the chat doors reaches an OpenAI route
/// within its 40 characters, the call and its result alike.
#[tokio::test]
async fn long_tool_call_ids_reach_an_openai_route_within_40_characters() {
    let s = setup().await;
    let (status, _, v) = post(
        &s.gw,
        "/v1/messages",
        &messages_tool_history(&gemini_id(), json!("A")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.oa.last_request().unwrap().json();
    let id = sent["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
    assert!(
        id.len() <= 40,
        "OpenAI refuses tool call ids over 40 characters: {id}"
    );
    assert_eq!(sent["messages"][2]["tool_call_id"], id, "{sent}");

    // The chat door's own history (a conversation begun on Gemini, carried on by a fallback)
    // passes through, but for its ids over 40 characters; a valid one is kept as it is.
    let gemini = gemini_id();
    let (status, _, v) = post(
        &s.gw,
        "/v1/chat/completions",
        &json!({"model": "gpt", "tools": lookup_tool_chat(), "messages": [
            {"role": "user", "content": "look both up"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": gemini, "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
                {"id": KIMI_ID, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": gemini, "content": "A"},
            {"role": "tool", "tool_call_id": KIMI_ID, "content": "B"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.oa.last_request().unwrap().json();
    let id = sent["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
    assert!(id.len() <= 40, "{sent}");
    assert_eq!(sent["messages"][2]["tool_call_id"], id, "{sent}");
    assert_eq!(sent["messages"][1]["tool_calls"][1]["id"], KIMI_ID);
    assert_eq!(sent["messages"][3]["tool_call_id"], KIMI_ID);
}

/// "Fields with other limits on the other side": Claude Code's 159-character
/// `metadata.user_id` reaches an OpenAI route as a 64-character `user`, the same for the
/// same id.
#[tokio::test]
async fn a_long_metadata_user_id_reaches_openai_as_a_stable_hash() {
    let s = setup().await;
    let user_id = format!(
        "user_{}_account_{}_session_{}",
        "f".repeat(64),
        "0".repeat(36),
        "1".repeat(36)
    );
    let body = json!({"model": "gpt", "max_tokens": 50, "metadata": {"user_id": user_id},
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, v) = post(&s.gw, "/v1/messages", &body).await;
    assert_eq!(status, 200, "{v}");
    let first = s.oa.last_request().unwrap().json()["user"].clone();
    assert_eq!(first.as_str().unwrap().len(), 64, "{first}");
    post(&s.gw, "/v1/messages", &body).await;
    assert_eq!(s.oa.last_request().unwrap().json()["user"], first);
}

/// What cannot travel is refused before any vendor is called, naming it and the vendor
/// kind: an image in a tool result for an OpenAI chat route (its tool messages hold text),
/// a tool name over OpenAI's 64 characters (a mapped name would come back as another tool).
/// The same image reaches Anthropic, whose tool results hold images.
#[tokio::test]
async fn what_a_vendor_cannot_hold_is_refused_before_it_is_called() {
    let s = setup().await;
    let image = json!([{"type": "text", "text": "the chart"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]);
    let before = s.oa.request_count();
    let (status, _, v) = post(
        &s.gw,
        "/v1/messages",
        &messages_tool_history("toolu_1", image),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tool result") && message.contains("openai"),
        "{message}"
    );

    let mut long_name = messages_tool_history("toolu_1", json!("A"));
    long_name["tools"][0]["name"] = json!("n".repeat(100));
    let (status, _, v) = post(&s.gw, "/v1/messages", &long_name).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("tools[0]"),
        "{v}"
    );
    assert_eq!(s.oa.request_count(), before, "no vendor was called");

    // A Responses tool output holding an image reaches Anthropic with it (it was dropped).
    let (status, _, v) = post(
        &s.gw,
        "/v1/responses",
        &json!({"model": "claude", "input": [
            {"role": "user", "content": "what does the chart show?"},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": [
                {"type": "input_text", "text": "the chart"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}],
            "tools": [{"type": "function", "name": "lookup",
                "parameters": {"type": "object", "properties": {}}}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = s.anth.last().json();
    let result = &sent["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result", "{sent}");
    assert_eq!(result["content"][1]["type"], "image", "{sent}");
}

/// Structured outputs travel, never dropped: the chat door's `response_format` `json_schema`
/// reaches Anthropic as `output_config.format` (Anthropic, "Structured outputs"), and the
/// Messages door's `output_config.format` reaches a chat vendor as `response_format` with the
/// `name` OpenAI requires; a format that cannot travel is a 400 naming it.
#[tokio::test]
async fn structured_output_travels_between_chat_and_messages() {
    let s = setup().await;
    let schema = json!({"type":"object","properties":{"city":{"type":"string"}},
                        "required":["city"],"additionalProperties":false});
    let (status, _, body) = post(
        &s.gw,
        "/v1/chat/completions",
        &json!({"model":"claude","messages":[{"role":"user","content":"where?"}],
                "response_format":{"type":"json_schema",
                                   "json_schema":{"name":"place","schema":schema}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = s.anth.last().json();
    assert_eq!(
        sent["output_config"],
        json!({"format":{"type":"json_schema","schema":schema}}),
        "{sent}"
    );

    let (status, _, body) = post(
        &s.gw,
        "/v1/messages",
        &json!({"model":"gpt","max_tokens":100,"messages":[{"role":"user","content":"where?"}],
                "output_config":{"format":{"type":"json_schema","schema":schema}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = s.oa.last_request().unwrap().json();
    assert_eq!(sent["response_format"]["type"], "json_schema", "{sent}");
    assert_eq!(sent["response_format"]["json_schema"]["schema"], schema);
    assert_eq!(sent["response_format"]["json_schema"]["name"], "output");

    let before = s.oa.request_count();
    let (status, _, body) = post(
        &s.gw,
        "/v1/messages",
        &json!({"model":"gpt","max_tokens":100,"messages":[{"role":"user","content":"x"}],
                "output_config":{"format":{"type":"json_schema"}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("output_config.format"), "{body}");
    assert_eq!(
        s.oa.request_count(),
        before,
        "refused before any vendor is called"
    );
}

/// The Responses door's `safety_identifier` (the OpenAI SDKs' successor of `user`) is carried:
/// to a chat vendor capped at OpenAI's 64 characters, to Anthropic as `metadata.user_id`.
#[tokio::test]
async fn the_responses_doors_safety_identifier_is_carried() {
    let s = setup().await;
    let long = format!("user-{}", "9".repeat(80));
    for model in ["gpt", "claude"] {
        let (status, _, body) = post(
            &s.gw,
            "/v1/responses",
            &json!({"model": model, "input": "hi", "safety_identifier": long, "store": false}),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
    }
    let sent = s.oa.last_request().unwrap().json();
    let id = sent["safety_identifier"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 64, "{sent}");
    assert_ne!(id, long);
    let sent = s.anth.last().json();
    assert_eq!(sent["metadata"]["user_id"], long, "{sent}");
}
