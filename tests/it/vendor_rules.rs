//! Translated requests that real vendors accept: each test sends what clients really send
//! through the binary to a mock that refuses what the vendor refuses (`support::mock_anthropic`,
//! and `MockUpstream`'s Azure API-version rule), so a lossy or careless translation fails.

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-provider-secret-7";

struct Setup {
    anth: MockAnthropic,
    azure: MockUpstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let azure = MockUpstream::start().await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_V_ANTH\"",
        )
        .provider(
            "az-old",
            "azure",
            &azure.origin(),
            "api_version = \"2024-06-01\"",
        )
        .provider(
            "az-new",
            "azure",
            &azure.origin(),
            "api_version = \"2024-10-21\"",
        )
        .model("claude", &[("claude", "claude-sonnet-4-5")])
        .model("old-azure", &[("az-old", "gpt4o")])
        .model("new-azure", &[("az-new", "gpt4o")])
        .team("t", "tpm = 100000")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_V_ANTH", ANTH_KEY)
        .start()
        .await;
    Setup { anth, azure, gw }
}

async fn chat(gw: &Gateway, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
    let r = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_turns_whitespace_stops_and_nulls_reach_anthropic_in_a_shape_it_takes() {
    let s = setup().await;
    // An agent history with an empty assistant turn, whitespace stop sequences, and unset
    // fields serialised as null.
    let (status, headers, text) = chat(
        &s.gw,
        json!({"model":"claude",
               "messages":[{"role":"user","content":"Start"},{"role":"assistant","content":""},
                           {"role":"user","content":"Continue"}],
               "stop":["\n","\t ","END"],
               "max_tokens":null,"max_completion_tokens":300,"temperature":null,"top_p":null}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let sent = s.anth.last().json();
    assert_eq!(
        sent["messages"],
        json!([{"role":"user","content":[{"type":"text","text":"Start"},
                                          {"type":"text","text":"Continue"}]}]),
        "no empty turn; the user turns around it merged: {sent}"
    );
    assert_eq!(sent["stop_sequences"], json!(["END"]), "{sent}");
    assert_eq!(sent["max_tokens"], 300, "null is absence: {sent}");
    assert!(sent.get("temperature").is_none() && sent.get("top_p").is_none());
    // The limiter reserved the prompt and 300 output tokens, not its 1,024 default.
    let remaining: u64 = headers["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (100_000 - 400..100_000 - 300).contains(&remaining),
        "{remaining}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_azure_api_versions_stream_without_stream_options_and_usage_is_estimated() {
    let s = setup().await;
    for (model, takes) in [("old-azure", false), ("new-azure", true)] {
        let (status, _, text) = chat(&s.gw, chat_body(model, "Hello there", true)).await;
        assert_eq!(status, 200, "{model}: {text}");
        assert!(text.contains("tok0"), "{text}");
        let sent = s.azure.last_request().unwrap();
        assert_eq!(
            sent.json().get("stream_options").is_some(),
            takes,
            "{model}: {}",
            sent.path
        );
    }
    // The old version's stream had no usage: estimated, and marked so.
    let lines = s.gw.wait_usage_lines(2).await;
    let old = lines.iter().find(|l| l["model"] == "old-azure").unwrap();
    let new = lines.iter().find(|l| l["model"] == "new-azure").unwrap();
    assert_eq!(old["usage_source"], "estimated", "{old}");
    assert!(old["completion_tokens"].as_u64().unwrap() > 0, "{old}");
    assert_eq!(new["usage_source"], "reported", "{new}");
}

/// Anthropic's `thinking` blocks reach a chat client (`reasoning_content`, and
/// `thinking_blocks` with their signatures), and go back on the next turn first in the
/// assistant turn, as Anthropic requires when thinking is on: streamed and not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_blocks_go_to_the_chat_client_and_back() {
    let s = setup().await;
    let thinking =
        json!({"type":"thinking","thinking":"Look up the weather.","signature":"SIG-abc"});
    s.anth.set_content(
        json!([thinking, {"type":"tool_use","id":"toolu_9","name":"wx",
                                          "input":{"city":"Oslo"}}]),
    );
    let tools = json!([{"type":"function","function":{"name":"wx","parameters":{"type":"object",
                        "properties":{"city":{"type":"string"}}}}}]);
    let turn1 = json!({"model":"claude","max_tokens":2048,"tools":tools,
                       "thinking":{"type":"enabled","budget_tokens":1024},
                       "messages":[{"role":"user","content":"Weather in Oslo?"}]});
    let (status, _, text) = chat(&s.gw, turn1.clone()).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let msg = &answer["choices"][0]["message"];
    assert_eq!(msg["reasoning_content"], "Look up the weather.", "{msg}");
    assert_eq!(msg["thinking_blocks"], json!([thinking]), "{msg}");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "wx");

    // Streamed, the same blocks arrive as deltas.
    let mut streamed = turn1.clone();
    streamed["stream"] = json!(true);
    let (status, _, text) = chat(&s.gw, streamed).await;
    assert_eq!(status, 200, "{text}");
    let mut reasoning = String::new();
    let mut blocks = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let d = &v["choices"][0]["delta"];
        reasoning.push_str(d["reasoning_content"].as_str().unwrap_or(""));
        blocks.extend(d["thinking_blocks"].as_array().cloned().unwrap_or_default());
    }
    assert_eq!(reasoning, "Look up the weather.");
    assert_eq!(blocks, vec![thinking.clone()]);

    // Turn 2 sends the assistant turn back as the client got it: the vendor accepts it.
    let mut turn2 = turn1.clone();
    let assistant = json!({"role":"assistant","content":null,"tool_calls":msg["tool_calls"],
                           "reasoning_content":msg["reasoning_content"],
                           "thinking_blocks":msg["thinking_blocks"]});
    turn2["messages"] = json!([turn1["messages"][0], assistant,
                               {"role":"tool","tool_call_id":"toolu_9","content":"-3C"}]);
    let (status, _, text) = chat(&s.gw, turn2.clone()).await;
    assert_eq!(status, 200, "{text}");
    let sent = s.anth.last().json();
    assert_eq!(sent["messages"][1]["content"][0], thinking, "{sent}");
    assert_eq!(sent["messages"][1]["content"][1]["type"], "tool_use");

    // A client that drops the thinking blocks (the OpenAI SDKs used plainly) gets them back
    // from the gateway's `[state]` backend, kept under the tool call's id: thinking stays on
    // (`tests/it/vendor_state_store.rs` has the whole of it).
    turn2["messages"][1]
        .as_object_mut()
        .unwrap()
        .remove("thinking_blocks");
    let (status, _, text) = chat(&s.gw, turn2.clone()).await;
    assert_eq!(status, 200, "{text}");
    let sent = s.anth.last().json();
    assert_eq!(sent["messages"][1]["content"][0], thinking, "{sent}");
    assert_eq!(sent["thinking"]["type"], "enabled", "{sent}");

    // A tool call whose thinking nobody kept (another id): Anthropic would refuse the turn
    // (the mock enforces the rule), so thinking is left off for this request, as Anthropic
    // advises for a tool loop that does not start with its thinking, and the answer says so.
    turn2["messages"][1]["tool_calls"][0]["id"] = json!("toolu_never_kept");
    turn2["messages"][2]["tool_call_id"] = json!("toolu_never_kept");
    let (status, headers, text) = chat(&s.gw, turn2).await;
    assert_eq!(status, 200, "{text}");
    assert!(s.anth.last().json().get("thinking").is_none());
    let adjusted = headers
        .get("x-switchyard-adjusted")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(adjusted.contains("thinking"), "{adjusted}");
}

/// Gemini 3's `thoughtSignature` on a function call reaches the chat client in the assistant
/// message's `thinking_blocks` (never in the tool call's id, which stays short and valid for
/// every vendor), and goes back on the function call part of the next turn: streamed and not.
/// An id the gateway minted before (`<id>__thought__<signature>`) is still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_thought_signatures_travel_in_thinking_blocks() {
    let gem = MockGemini::start("gem-key-3").await;
    let body = format!(
        r#"
[[providers]]
name = "gem"
kind = "gemini"
base_url = "{}"
api_key_env = "SY_V_GEM"

[[models]]
name = "gemini"
  [[models.routes]]
  provider = "gem"
  model = "gemini-3-pro"

[[teams]]
name = "t"

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"
"#,
        gem.origin()
    );
    let gw = Gateway::builder(&body)
        .env("SY_V_GEM", "gem-key-3")
        .start()
        .await;
    let tools = json!([{"type":"function","function":{"name":"wx","parameters":{"type":"object",
                        "properties":{"city":{"type":"string"}}}}}]);
    for stream in [false, true] {
        let turn1 = json!({"model":"gemini","tools":tools,"stream":stream,
                           "messages":[{"role":"user","content":"Weather in Oslo?"}]});
        let (status, _, text) = chat(&gw, turn1.clone()).await;
        assert_eq!(status, 200, "{text}");
        let (call, blocks) = if stream {
            let deltas: Vec<Value> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|v| v["choices"][0]["delta"].clone())
                .collect();
            let call = deltas.iter().find_map(|d| d["tool_calls"].get(0).cloned());
            let blocks = deltas
                .iter()
                .find_map(|d| d.get("thinking_blocks").cloned());
            (call.unwrap_or_else(|| panic!("{text}")), blocks)
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            let m = &v["choices"][0]["message"];
            (
                m["tool_calls"][0].clone(),
                m.get("thinking_blocks").cloned(),
            )
        };
        let id = call["id"].as_str().unwrap().to_string();
        assert!(id.len() <= 40 && !id.contains(GEMINI_SIGNATURE), "{id}");
        let wrapped = format!("gemini:{id}:{GEMINI_SIGNATURE}");
        assert_eq!(
            blocks,
            Some(json!([{"type":"thinking","thinking":"","signature":wrapped}])),
            "{text}"
        );
        // Turn 2: the client echoes the message as it got it, and the tool's result.
        let mut turn2 = turn1.clone();
        turn2["messages"] = json!([turn1["messages"][0],
            {"role":"assistant","content":null,"thinking_blocks":blocks,
             "tool_calls":[{"id":id,"type":"function",
              "function":{"name":"wx","arguments":"{\"city\":\"Oslo\"}"}}]},
            {"role":"tool","tool_call_id":id,"content":"-3C"}]);
        let (status, _, text) = chat(&gw, turn2).await;
        assert_eq!(status, 200, "stream={stream}: {text}");
        assert!(text.contains("cold in Oslo"), "{text}");
        let sent = gem.bodies().pop().unwrap();
        assert_eq!(
            sent["contents"][1]["parts"][0],
            json!({"functionCall":{"name":"wx","args":{"city":"Oslo"}},
                   "thoughtSignature":GEMINI_SIGNATURE}),
            "{sent}"
        );
        assert_eq!(
            sent["contents"][2]["parts"][0]["functionResponse"]["name"],
            "wx"
        );
    }
    // An id of the old form a client still holds: its signature goes back with the call.
    let legacy = format!("call_1__thought__{GEMINI_SIGNATURE}");
    let turn2 = json!({"model":"gemini","tools":tools,"messages":[
        {"role":"user","content":"Weather in Oslo?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":legacy,"type":"function",
          "function":{"name":"wx","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":legacy,"content":"-3C"}]});
    let (status, _, text) = chat(&gw, turn2).await;
    assert_eq!(status, 200, "{text}");
    let sent = gem.bodies().pop().unwrap();
    assert_eq!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        GEMINI_SIGNATURE
    );
}

/// Reasoning changes what else Anthropic takes: thinking is not compatible with a
/// `temperature` other than 1, `top_k`, a `top_p` below 0.95 or a forced `tool_choice`
/// (Anthropic, "Building with extended thinking"). LangChain and many SDK wrappers always send
/// a temperature; the gateway leaves out what the vendor would refuse, on the chat and the
/// Responses doors, and the strict mock accepts the result.
#[tokio::test]
async fn reasoning_with_sampling_and_forced_tools_is_made_acceptable() {
    let s = setup().await;
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {}}}}]);
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "lookup"}}),
    ] {
        let (status, _, text) = chat(
            &s.gw,
            json!({"model": "claude", "max_tokens": 4000, "reasoning_effort": "low",
                "temperature": 0.2, "top_p": 0.5, "tools": tools, "tool_choice": choice,
                "messages": [{"role": "user", "content": "look it up"}]}),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let sent = s.anth.last().json();
        assert_eq!(sent["thinking"]["type"], "enabled", "{sent}");
        assert!(sent.get("temperature").is_none(), "{sent}");
        assert!(sent.get("top_p").is_none(), "{sent}");
        assert_eq!(sent["tool_choice"]["type"], "auto", "{sent}");
    }
    let r =
        s.gw.client()
            .post(s.gw.url("/v1/responses"))
            .bearer_auth(DEMO_SECRET)
            .json(&json!({"model": "claude", "max_output_tokens": 4000,
            "reasoning": {"effort": "low"}, "temperature": 0.2, "input": "hi"}))
            .send()
            .await
            .unwrap();
    let status = r.status();
    assert_eq!(status, 200, "{}", r.text().await.unwrap());
    assert!(s.anth.last().json().get("temperature").is_none());
}
