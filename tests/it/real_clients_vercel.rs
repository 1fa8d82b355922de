//! The Vercel AI SDK (`ai` and `@ai-sdk/openai`, pinned in `tests/clients/vercel-ai/`) through
//! the real binary: its default OpenAI provider speaks the Responses API with `store` on, so
//! from the second step of a tool loop it sends the previous output as `item_reference` items
//! naming the ids the gateway gave them. On a translated route the gateway resolves them from
//! its response store (#27, "The Responses store … forgets references"): the built-in mock
//! and the strict `MockAnthropic`.
//!
//! Needs Node.js and `npm ci` run in `tests/clients/vercel-ai/` (`.ci/run` does both); without
//! them the tests fail saying so.

use crate::support;

use std::path::PathBuf;

use serde_json::{json, Value};
use support::*;

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/vercel-ai")
}

/// Runs `tool_loop.mjs` against `gw` with `model`: its JSON report.
fn run_tool_loop(gw: &Gateway, model: &str) -> Value {
    let dir = client_dir();
    assert!(
        dir.join("node_modules/ai/package.json").exists()
            && dir
                .join("node_modules/@ai-sdk/openai/package.json")
                .exists(),
        "the Vercel AI SDK is not installed: run `npm ci` in {} (.ci/run does)",
        dir.display()
    );
    let out = std::process::Command::new("node")
        .current_dir(&dir)
        .args(["tool_loop.mjs", &gw.url("/v1"), DEMO_SECRET, model])
        .output()
        .expect("node runs (Node.js 18 or newer on PATH)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}"))
}

fn config(anth: &MockAnthropic) -> String {
    format!(
        r#"
[[providers]]
name = "anth"
kind = "anthropic"
base_url = "{}"
api_key_env = "SY_V_ANTH"

[[providers]]
name = "local"
kind = "mock"

[[models]]
name = "claude"
  [[models.routes]]
  provider = "anth"
  model = "claude-sonnet-4-5"

[[models]]
name = "demo"
  [[models.routes]]
  provider = "local"
  model = "mock-1"

[[teams]]
name = "t"

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"
"#,
        anth.origin()
    )
}

async fn start(anth: &MockAnthropic) -> Gateway {
    Gateway::builder(&config(anth))
        .env("SY_V_ANTH", "anth-key")
        .start()
        .await
}

/// A model that calls the tool (the strict Anthropic mock): both steps of the loop succeed,
/// the second sent with `item_reference`s to the first step's text and call, which reached
/// Anthropic as the assistant's text and `tool_use` followed by the `tool_result`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vercel_ai_tool_loop_on_an_anthropic_route() {
    let anth = MockAnthropic::start("anth-key").await;
    anth.set_content(json!([
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Paris"}}
    ]));
    let gw = start(&anth).await;
    let v = run_tool_loop(&gw, "claude");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{v}");
    assert_eq!(steps[0]["toolCalls"], json!(["get_weather"]), "{v}");
    assert_eq!(steps[1]["toolCalls"], json!(["get_weather"]), "{v}");
    assert!(v["item_references"].as_u64().unwrap() >= 2, "{v}");

    let sent = anth.requests();
    assert_eq!(sent.len(), 3, "two steps and a second turn");
    assert!(sent.iter().all(|r| r.status == 200), "{sent:?}");
    let second = sent[1].json();
    let msgs = second["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{second}");
    let assistant = msgs[1]["content"].as_array().unwrap();
    assert_eq!(assistant[0]["text"], "Let me check.", "{second}");
    assert_eq!(assistant[1]["type"], "tool_use", "{second}");
    assert_eq!(assistant[1]["id"], "toolu_7", "{second}");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result", "{second}");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_7", "{second}");
    assert!(
        !String::from_utf8_lossy(&sent[1].body).contains("resp_sy"),
        "the gateway's ids never reach the vendor: {second}"
    );
}

/// The built-in mock answers text: one step, then a second turn that refers to it by
/// `item_reference`, answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vercel_ai_continues_on_the_builtin_mock() {
    let anth = MockAnthropic::start("anth-key").await;
    let gw = start(&anth).await;
    let v = run_tool_loop(&gw, "demo");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{v}");
    assert!(
        steps[0]["text"]
            .as_str()
            .unwrap()
            .contains("Switchyard's mock"),
        "{v}"
    );
    assert!(v["item_references"].as_u64().unwrap() >= 1, "{v}");
    // The mock echoes the last message: the second turn's own words.
    assert!(
        v["turn2"]["text"].as_str().unwrap().contains("Thanks!"),
        "{v}"
    );
}
