//! Vendor state kept by the gateway for chat-door clients that drop it (#27, "What to build"
//! 2: "… otherwise kept by the gateway in its `[state]` backend under a short id, per team,
//! with a TTL"). Most chat-door clients (the OpenAI SDKs used plainly, LangChain) send back
//! only an assistant message's `role`, `content` and `tool_calls`, not `thinking_blocks`.
//! Through the real binary, strict mocks recording what they got:
//!
//! - a Gemini route gets its REAL `thoughtSignature` back on the call in the second turn (not
//!   Google's placeholder `skip_thought_signature_validator`), streamed or not;
//! - an Anthropic route with `reasoning_effort` gets its signed thinking block first in the
//!   tool loop's assistant turn, thinking on;
//! - another team's key finds nothing (the placeholder; thinking left off);
//! - the OpenAI Python SDK used plainly, on the Gemini route, likewise;
//! - on the memory and the Redis backend (a real redis-server), with the TTL of
//!   `[state] vendor_state_ttl_s`; Redis down, the request goes on without it (counted).

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "anth-key-v";
const GEM_KEY: &str = "gem-key-v";
const OTHER_SECRET: &str = "sk-other-team-v";
const ANTH_SIGNATURE: &str = "EqSIGkept+/==";
const PLACEHOLDER: &str = "skip_thought_signature_validator";

struct World {
    anth: MockAnthropic,
    gem: MockGemini,
    gw: Gateway,
}

async fn world(state: &str) -> World {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let gem = MockGemini::start(GEM_KEY).await;
    anth.set_content(json!([
        {"type": "thinking", "thinking": "The user wants the weather.", "signature": ANTH_SIGNATURE},
        {"type": "tool_use", "id": "toolu_01A", "name": "wx", "input": {"city": "Oslo"}}
    ]));
    let body = ConfigBody::new()
        .text(state)
        .provider(
            "an",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_V_ANTH\"",
        )
        .provider("ge", "gemini", &gem.origin(), "api_key_env = \"SY_V_GEM\"")
        .model("m-anthropic", &[("an", "claude-sonnet-4-5")])
        .model("m-gemini", &[("ge", "gemini-3-pro")])
        .team("t", "")
        .team("other", "")
        .demo_key("k", "t")
        .key("o", "other", OTHER_SECRET, "")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_V_ANTH", ANTH_KEY)
        .env("SY_V_GEM", GEM_KEY)
        .start()
        .await;
    World { anth, gem, gw }
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "wx", "parameters":
        {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

fn first_turn(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 4000, "reasoning_effort": "low", "stream": stream,
        "tools": tools(), "messages": [{"role": "user", "content": "Weather in Oslo?"}]})
}

/// The second turn as a plain OpenAI-SDK client sends it: the assistant message with only
/// `role`, `content` and `tool_calls` (no `thinking_blocks`), then the tool's result.
fn second_turn(model: &str, call_id: &str) -> Value {
    json!({"model": model, "max_tokens": 4000, "reasoning_effort": "low", "tools": tools(),
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": call_id,
                "type": "function", "function": {"name": "wx", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "-3C"}]})
}

/// Posts a chat request with `secret`; the status and the body's text.
async fn post(gw: &Gateway, secret: &str, body: &Value) -> (u16, String) {
    let r = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(secret)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The tool-call id of a first turn's answer (a whole `chat.completion`, or its stream), and
/// whether the answer carried `thinking_blocks` (which the clients here then drop).
fn call_id_of(text: &str, stream: bool) -> (String, bool) {
    let carried = text.contains("thinking_blocks");
    if !stream {
        let v: Value = serde_json::from_str(text).unwrap();
        let id = v["choices"][0]["message"]["tool_calls"][0]["id"].as_str();
        return (
            id.unwrap_or_else(|| panic!("no call: {text}")).into(),
            carried,
        );
    }
    let id = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| {
            v["choices"][0]["delta"]["tool_calls"][0]["id"]
                .as_str()
                .map(String::from)
        });
    (id.unwrap_or_else(|| panic!("no call: {text}")), carried)
}

/// The `thoughtSignature` Gemini got on the call of the second turn's model turn.
fn gemini_call_signature(w: &World) -> Value {
    let got = w.gem.bodies().pop().expect("gemini got nothing");
    let call = got["contents"][1]["parts"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p.get("functionCall").is_some()))
        .cloned()
        .unwrap_or_else(|| panic!("no call in {got}"));
    call["thoughtSignature"].clone()
}

/// One Gemini tool loop whose client drops `thinking_blocks`: the second turn reaches Gemini
/// with the real signature; another team's key gets the placeholder.
async fn gemini_loop(w: &World, stream: bool) -> String {
    let (status, text) = post(&w.gw, DEMO_SECRET, &first_turn("m-gemini", stream)).await;
    assert_eq!(status, 200, "{text}");
    let (call_id, carried) = call_id_of(&text, stream);
    assert!(
        carried,
        "the answer carried the signature in its slot: {text}"
    );
    assert!(
        call_id.starts_with("call_") && call_id.len() == 29,
        "{call_id}"
    );

    let next = second_turn("m-gemini", &call_id);
    let (status, text) = post(&w.gw, DEMO_SECRET, &next).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        gemini_call_signature(w),
        GEMINI_SIGNATURE,
        "stream {stream}"
    );

    let (status, text) = post(&w.gw, OTHER_SECRET, &next).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(gemini_call_signature(w), PLACEHOLDER, "another team's key");
    call_id
}

/// One Anthropic tool loop with `reasoning_effort` whose client drops `thinking_blocks`: the
/// signed thinking block comes back first in the assistant turn and thinking stays on; another
/// team's key finds nothing (thinking left off for that request, as without state).
async fn anthropic_loop(w: &World, stream: bool) {
    let (status, text) = post(&w.gw, DEMO_SECRET, &first_turn("m-anthropic", stream)).await;
    assert_eq!(status, 200, "{text}");
    let (call_id, carried) = call_id_of(&text, stream);
    assert!(carried, "{text}");
    let next = second_turn("m-anthropic", &call_id);
    let (status, text) = post(&w.gw, DEMO_SECRET, &next).await;
    assert_eq!(status, 200, "{text}");
    let sent = w.anth.last().json();
    assert_eq!(sent["thinking"]["type"], "enabled", "{sent}");
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "The user wants the weather.",
            "signature": ANTH_SIGNATURE}),
        "{sent}"
    );
    assert_eq!(
        sent["messages"][1]["content"][1]["type"], "tool_use",
        "{sent}"
    );

    let (status, text) = post(&w.gw, OTHER_SECRET, &next).await;
    assert_eq!(status, 200, "{text}");
    let sent = w.anth.last().json();
    assert!(sent.get("thinking").is_none(), "{sent}");
    assert!(!sent.to_string().contains(ANTH_SIGNATURE), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_gives_dropped_state_back_per_team() {
    // Each answer kind on a gateway of its own: the mocks' call ids repeat, and what one kept
    // must not answer for the other.
    for stream in [false, true] {
        let w = world("").await;
        gemini_loop(&w, stream).await;
        anthropic_loop(&w, stream).await;
        let metrics = w.gw.metrics().await;
        assert!(
            metrics.contains("switchyard_vendor_state_recalled_total 2"),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_keeps_state_with_its_ttl_and_a_failure_is_not_fatal() {
    let Some(mut redis) = RedisServer::try_start() else {
        panic!("redis-server is needed for this test");
    };
    let state = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nvendor_state_ttl_s = 600\n",
        redis.url()
    );
    let w = world(&state).await;
    let call_id = gemini_loop(&w, false).await;
    let key = format!("switchyard:{{resp}}:b:t:vs_{call_id}");
    assert!(redis.keys("switchyard:{resp}:b:*").contains(&key), "{key}");
    let ttl: i64 = redis
        .command(&["TTL", &key])
        .unwrap()
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
    anthropic_loop(&w, false).await;

    // Redis down: the request goes on without the state (Gemini's placeholder), counted.
    redis.stop();
    let (status, text) = post(&w.gw, DEMO_SECRET, &second_turn("m-gemini", &call_id)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(gemini_call_signature(&w), PLACEHOLDER);
    let metrics = w.gw.metrics().await;
    assert!(
        metrics.contains("switchyard_vendor_state_errors_total{op=\"load\"} 1"),
        "{metrics}"
    );
}

/// The OpenAI Python SDK used plainly (the pattern of its function-calling guide: the
/// assistant message rebuilt from `content` and `tool_calls`), in a tool loop on the Gemini
/// route: its second turn reaches Gemini with the real signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_tool_loop_keeps_gemini_s_signature() {
    let w = world("").await;
    let code = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2])
tools = [{"type": "function", "function": {"name": "wx", "parameters":
    {"type": "object", "properties": {"city": {"type": "string"}}}}}]
messages = [{"role": "user", "content": "Weather in Oslo?"}]
first = client.chat.completions.create(model="m-gemini", messages=messages, tools=tools,
    reasoning_effort="low")
m = first.choices[0].message
messages.append({"role": "assistant", "content": m.content,
    "tool_calls": [c.model_dump(exclude_none=True) for c in m.tool_calls]})
for c in m.tool_calls:
    messages.append({"role": "tool", "tool_call_id": c.id, "content": "-3C"})
second = client.chat.completions.create(model="m-gemini", messages=messages, tools=tools,
    reasoning_effort="low")
print(second.choices[0].message.content)
"#;
    let url = w.gw.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .args(["-c", code, &url, DEMO_SECRET])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "It is cold in Oslo."
    );
    // The client sent no thinking_blocks; Gemini got its own signature back.
    assert!(!w.gem.bodies().is_empty());
    assert_eq!(gemini_call_signature(&w), GEMINI_SIGNATURE);
}
