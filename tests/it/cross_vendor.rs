//! Fallback across vendors mid-conversation (#27, "What to build" 2 and 3): a conversation with
//! a tool call, reasoning and an image is started on vendor kind A and continued on vendor kind
//! B — by the client's history (chat and Messages doors), by `previous_response_id` (Responses
//! door), and by a fallback inside one request (a model whose route to A fails 5xx, falling
//! back to B's model) — for every ordered pair of {openai (the chat mock), anthropic, gemini,
//! the built-in mock}, through the real binary, each vendor a strict mock.
//!
//! What each turn-2 vendor must get: only its own reasoning state (Anthropic's signed thinking
//! first in the tool loop's assistant turn, Gemini's `thoughtSignature` on its call; another
//! vendor's dropped by rule and named in `x-switchyard-adjusted: thinking_signature`), tool
//! call ids valid everywhere, Google's documented `skip_thought_signature_validator` on calls
//! Gemini never signed, and Anthropic's thinking left off (`thinking`) in a tool loop Anthropic
//! did not think in. The built-in mock makes no tool calls: a conversation it starts has its
//! text answer and the image.

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "anth-key-x";
const GEM_KEY: &str = "gem-key-x";
/// The signature the Anthropic mock signs its thinking with (base64 letters, as Anthropic's).
const ANTH_SIGNATURE: &str = "EqSIGanthropic+/==";
/// A one-pixel PNG's first bytes: an image every vendor takes inline.
const IMAGE_B64: &str = "iVBORw0KGgoAAAANSUhEUg==";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vendor {
    OpenAi,
    Anthropic,
    Gemini,
    Mock,
}

const VENDORS: [Vendor; 4] = [
    Vendor::OpenAi,
    Vendor::Anthropic,
    Vendor::Gemini,
    Vendor::Mock,
];

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::OpenAi => "openai",
            Vendor::Anthropic => "anthropic",
            Vendor::Gemini => "gemini",
            Vendor::Mock => "mock",
        }
    }

    fn model(self) -> String {
        format!("m-{}", self.name())
    }

    /// Whether the vendor keeps reasoning state the client must send back.
    fn signs(self) -> bool {
        matches!(self, Vendor::Anthropic | Vendor::Gemini)
    }
}

/// The vendor kinds a request can fall back to (the built-in mock answers only a request's
/// first attempt, before any upstream: it is no fallback).
const UPSTREAMS: [Vendor; 3] = [Vendor::OpenAi, Vendor::Anthropic, Vendor::Gemini];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    Chat,
    Messages,
    Responses,
}

struct World {
    oa: MockUpstream,
    anth: MockAnthropic,
    gem: MockGemini,
    _down: MockUpstream,
    gw: Gateway,
}

async fn world() -> World {
    let oa = MockUpstream::start().await;
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let gem = MockGemini::start(GEM_KEY).await;
    let down = MockUpstream::start().await;
    down.set_default(Behaviour::status(500));
    anth.set_content(json!([
        {"type": "thinking", "thinking": "The user wants the weather.", "signature": ANTH_SIGNATURE},
        {"type": "tool_use", "id": "toolu_01A", "name": "wx", "input": {"city": "Oslo"}}
    ]));
    let anth_env = "api_key_env = \"SY_X_ANTH\"";
    let gem_env = "api_key_env = \"SY_X_GEM\"";
    let mut body = ConfigBody::new()
        .provider("oa", "openai", &oa.base_url(), "chat_only = true")
        .provider("an", "anthropic", &anth.origin(), anth_env)
        .provider("ge", "gemini", &gem.origin(), gem_env)
        .mock_provider("mk")
        .provider("oa-down", "openai", &down.base_url(), "chat_only = true")
        .provider("an-down", "anthropic", &down.origin(), anth_env)
        .provider("ge-down", "gemini", &down.origin(), gem_env)
        .model("m-openai", &[("oa", "gpt-4o")])
        .model("m-anthropic", &[("an", "claude-sonnet-4-5")])
        .model("m-gemini", &[("ge", "gemini-3-pro")])
        .model("m-mock", &[("mk", "mock-1")]);
    for a in UPSTREAMS {
        let down = match a {
            Vendor::OpenAi => "oa-down",
            Vendor::Anthropic => "an-down",
            _ => "ge-down",
        };
        for b in UPSTREAMS.into_iter().filter(|b| *b != a) {
            let fallbacks = format!("fallbacks = [\"{}\"]", b.model());
            body = body.model_with(&fallback_model(a, b), &fallbacks, &[(down, "x")]);
        }
    }
    let body = body.team("t", "").demo_key("k", "t").build();
    let gw = Gateway::builder(&body)
        .env("SY_X_ANTH", ANTH_KEY)
        .env("SY_X_GEM", GEM_KEY)
        .start()
        .await;
    World {
        oa,
        anth,
        gem,
        _down: down,
        gw,
    }
}

/// The model whose only route (to a vendor of kind `a`) fails 5xx, falling back to `b`'s.
fn fallback_model(a: Vendor, b: Vendor) -> String {
    format!("fb-{}-{}", a.name(), b.name())
}

/// The OpenAI mock's answer when it starts a conversation: a call of `wx`.
fn openai_tool_call() -> Behaviour {
    let body = json!({"id": "chatcmpl-x1", "object": "chat.completion", "created": 1,
        "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_oa_1",
            "type": "function", "function": {"name": "wx", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
    Behaviour {
        body: Some(body.to_string()),
        ..Behaviour::default()
    }
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, String, Value) {
    let r = gw
        .client()
        .post(gw.url(path))
        .bearer_auth(DEMO_SECRET)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let adjusted = r
        .headers()
        .get("x-switchyard-adjusted")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text}));
    (status, adjusted, v)
}

fn path(door: Door) -> &'static str {
    match door {
        Door::Chat => "/v1/chat/completions",
        Door::Messages => "/v1/messages",
        Door::Responses => "/v1/responses",
    }
}

/// Turn 1's request at `door`: reasoning on, the `wx` tool, a text and an image.
fn first_turn(door: Door, model: &str) -> Value {
    match door {
        Door::Chat => json!({"model": model, "max_tokens": 4000, "reasoning_effort": "low",
            "tools": [{"type": "function", "function": {"name": "wx", "parameters":
                {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{IMAGE_B64}")}}]}]}),
        Door::Messages => json!({"model": model, "max_tokens": 4000,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "wx", "input_schema":
                {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE_B64}}]}]}),
        Door::Responses => json!({"model": model, "max_output_tokens": 4000,
            "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"],
            "tools": [{"type": "function", "name": "wx", "parameters":
                {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "What is the weather where this photo was taken?"},
                {"type": "input_image", "image_url": format!("data:image/png;base64,{IMAGE_B64}")}]}]}),
    }
}

/// Turn 2's request at `door` for `model`, continuing turn 1 (`first`, `answer`): the tool's
/// result for every call the answer made, or a follow-up question when it made none.
fn second_turn(door: Door, model: &str, first: &Value, answer: &Value) -> Value {
    let mut next = first.clone();
    next["model"] = json!(model);
    match door {
        Door::Chat => {
            let msg = answer["choices"][0]["message"].clone();
            let mut messages = vec![first["messages"][0].clone(), msg.clone()];
            let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
            for c in &calls {
                messages.push(json!({"role": "tool", "tool_call_id": c["id"], "content": "-3C"}));
            }
            if calls.is_empty() {
                messages.push(json!({"role": "user", "content": "And tomorrow?"}));
            }
            next["messages"] = json!(messages);
        }
        Door::Messages => {
            let content = answer["content"].as_array().cloned().unwrap_or_default();
            let results: Vec<Value> = content
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| json!({"type": "tool_result", "tool_use_id": b["id"], "content": "-3C"}))
                .collect();
            let user = if results.is_empty() {
                json!({"role": "user", "content": "And tomorrow?"})
            } else {
                json!({"role": "user", "content": results})
            };
            next["messages"] = json!([first["messages"][0],
                {"role": "assistant", "content": content}, user]);
        }
        Door::Responses => {
            let output = answer["output"].as_array().cloned().unwrap_or_default();
            let results: Vec<Value> = output
                .iter()
                .filter(|i| i["type"] == "function_call")
                .map(|i| json!({"type": "function_call_output", "call_id": i["call_id"], "output": "-3C"}))
                .collect();
            next["previous_response_id"] = answer["id"].clone();
            next["input"] = if results.is_empty() {
                json!("And tomorrow?")
            } else {
                json!(results)
            };
        }
    }
    next
}

/// Every tool-call id in `answer` (at any door): short and valid for every vendor.
fn assert_ids_valid(answer: &Value, ctx: &str) {
    let text = answer.to_string();
    assert!(!text.contains("__thought__"), "{ctx}: {text}");
    let mut ids = Vec::new();
    collect_ids(answer, &mut ids);
    for id in ids {
        let ok = (1..=40).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        assert!(
            ok,
            "{ctx}: tool call id {id:?} is not valid for every vendor"
        );
    }
}

fn collect_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            let call = o
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| matches!(t, "function" | "tool_use" | "function_call"));
            for key in ["id", "call_id"] {
                if let (true, Some(id)) = (call, o.get(key).and_then(Value::as_str)) {
                    if key == "call_id" || !id.starts_with("fc_") {
                        out.push(id.to_string());
                    }
                }
            }
            o.values().for_each(|v| collect_ids(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_ids(v, out)),
        _ => {}
    }
}

/// What turn 2's vendor got, as JSON.
fn received(w: &World, b: Vendor) -> Option<Value> {
    match b {
        Vendor::OpenAi => w.oa.last_request().map(|r| r.json()),
        Vendor::Anthropic => Some(w.anth.last().json()),
        Vendor::Gemini => w.gem.bodies().pop(),
        Vendor::Mock => None,
    }
}

/// One conversation: turn 1 on `a`, turn 2 on `second` (B's model, or a fallback model whose
/// first route fails), which B's strict mock must take.
async fn converse(w: &World, door: Door, a: Vendor, b: Vendor, second: &str) {
    let ctx = format!("{door:?} {} -> {} (as {second})", a.name(), b.name());
    if a == Vendor::OpenAi {
        w.oa.enqueue(openai_tool_call());
    }
    let first = first_turn(door, &a.model());
    let (status, _, answer) = post(&w.gw, path(door), &first).await;
    assert_eq!(status, 200, "{ctx}, turn 1: {answer}");
    assert_ids_valid(&answer, &ctx);
    let called = a != Vendor::Mock;
    let next = second_turn(door, second, &first, &answer);
    let before = (w.anth.message_count(), w.gem.request_count());
    let (status, adjusted, answer2) = post(&w.gw, path(door), &next).await;
    assert_eq!(status, 200, "{ctx}, turn 2: {answer2}\nsent: {next}");
    assert_ids_valid(&answer2, &ctx);

    // The vendor's state was dropped by rule where it could not go, and said so (the chat
    // door's bytes pass through to OpenAI as the client wrote them; the built-in mock takes
    // anything).
    let cleaned = b != Vendor::Mock && !(door == Door::Chat && b == Vendor::OpenAi);
    let dropped = a != b && a.signs() && cleaned;
    assert_eq!(
        adjusted.contains("thinking_signature"),
        dropped,
        "{ctx}: x-switchyard-adjusted: {adjusted:?}"
    );
    let Some(got) = received(w, b) else { return };
    match b {
        Vendor::Anthropic => assert!(w.anth.message_count() > before.0, "{ctx}"),
        Vendor::Gemini => assert!(w.gem.request_count() > before.1, "{ctx}"),
        _ => {}
    }
    let text = got.to_string();
    if cleaned && a != b {
        assert!(!text.contains(ANTH_SIGNATURE), "{ctx}: {text}");
        assert!(!text.contains(GEMINI_SIGNATURE), "{ctx}: {text}");
        assert!(!text.contains("thinking_blocks"), "{ctx}: {text}");
    }
    match b {
        Vendor::Anthropic if called => {
            let assistant = &got["messages"][1];
            if a == Vendor::Anthropic {
                // Its own signed thinking starts the loop's assistant turn; thinking stays on.
                assert_eq!(
                    assistant["content"][0]["signature"], ANTH_SIGNATURE,
                    "{ctx}"
                );
                assert_eq!(got["thinking"]["type"], "enabled", "{ctx}");
            } else {
                // A loop Anthropic did not think in: thinking left off for this request.
                assert!(got.get("thinking").is_none(), "{ctx}: {text}");
                assert!(adjusted.contains("thinking"), "{ctx}: {adjusted}");
            }
        }
        Vendor::Gemini if called => {
            let call = &got["contents"][1]["parts"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p.get("functionCall").is_some()))
                .cloned()
                .unwrap_or_else(|| panic!("{ctx}: no call in {text}"));
            let want = if a == Vendor::Gemini {
                GEMINI_SIGNATURE
            } else {
                "skip_thought_signature_validator"
            };
            assert_eq!(call["thoughtSignature"], want, "{ctx}: {text}");
        }
        _ => {}
    }
    // The image of turn 1 went on too.
    assert!(text.contains(IMAGE_B64), "{ctx}: {text}");
}

/// Every ordered pair of vendor kinds, at every door: the client's history (chat, Messages)
/// and `previous_response_id` (Responses) carry a conversation from A to B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_moves_between_every_pair_of_vendors() {
    let w = world().await;
    for door in [Door::Chat, Door::Messages, Door::Responses] {
        for a in VENDORS {
            for b in VENDORS {
                converse(&w, door, a, b, &b.model()).await;
            }
        }
    }
}

/// A fallback inside one request carries such a history: the model's route to A fails 5xx and
/// its fallback, B, takes the conversation A started (every ordered pair of upstream kinds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_inside_one_request_carries_the_conversation() {
    let w = world().await;
    for door in [Door::Chat, Door::Messages, Door::Responses] {
        for a in UPSTREAMS {
            for b in UPSTREAMS.into_iter().filter(|b| *b != a) {
                converse(&w, door, a, b, &fallback_model(a, b)).await;
            }
        }
    }
    let m = w.gw.metrics().await;
    assert!(
        metric_value(
            &m,
            "switchyard_request_adjustments_total",
            &[("provider", "ge"), ("adjustment", "thinking_signature")]
        )
        .is_some_and(|n| n > 0.0),
        "{m}"
    );
}

/// "Reasoning state lost in the tool loop" (#27): `/v1/responses` → `anthropic` with
/// `reasoning.effort` and a function tool. The thinking block comes back as a `reasoning` item
/// (its `encrypted_content` only when `include` asks, stored either way), and the next turn —
/// by `previous_response_id`, or replayed statelessly — reaches Anthropic with the assistant
/// turn starting with its signed thinking block, which the strict mock requires. Redacted
/// thinking too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_thinking_survives_the_responses_tool_loop() {
    let w = world().await;
    w.anth.set_content(json!([
        {"type": "thinking", "thinking": "Weather needs a lookup.", "signature": ANTH_SIGNATURE},
        {"type": "redacted_thinking", "data": "REDACTED+/="},
        {"type": "tool_use", "id": "toolu_01A", "name": "wx", "input": {"city": "Oslo"}}
    ]));
    let tools = json!([{"type": "function", "name": "wx", "parameters":
        {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    for include in [false, true] {
        let mut first = json!({"model": "m-anthropic", "max_output_tokens": 4000,
            "reasoning": {"effort": "low"}, "tools": tools, "input": "Weather in Oslo?"});
        if include {
            first["include"] = json!(["reasoning.encrypted_content"]);
        }
        let (status, _, answer) = post(&w.gw, "/v1/responses", &first).await;
        assert_eq!(status, 200, "{answer}");
        let output = answer["output"].as_array().unwrap().clone();
        let kinds: Vec<&str> = output.iter().filter_map(|i| i["type"].as_str()).collect();
        assert_eq!(
            kinds,
            ["reasoning", "reasoning", "function_call"],
            "{answer}"
        );
        assert_eq!(output[0]["summary"][0]["text"], "Weather needs a lookup.");
        assert_eq!(
            output[0].get("encrypted_content").is_some(),
            include,
            "{answer}"
        );
        // The stored response keeps the state whatever the client asked.
        let id = answer["id"].as_str().unwrap();
        let stored: Value =
            w.gw.client()
                .get(w.gw.url(&format!("/v1/responses/{id}")))
                .bearer_auth(DEMO_SECRET)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert!(
            stored["output"][0]["encrypted_content"].is_string(),
            "{stored}"
        );
        let call_id = output[2]["call_id"].clone();
        let result = json!({"type": "function_call_output", "call_id": call_id, "output": "-3C"});

        // By previous_response_id.
        let next = json!({"model": "m-anthropic", "max_output_tokens": 4000,
            "reasoning": {"effort": "low"}, "tools": tools,
            "previous_response_id": id, "input": [result]});
        let (status, _, text) = post(&w.gw, "/v1/responses", &next).await;
        assert_eq!(status, 200, "{text}");
        assert_thinking_first(&w.anth.last().json());

        // Replayed statelessly: the client sends the output items back as input.
        if include {
            let mut input = vec![json!({"role": "user", "content": "Weather in Oslo?"})];
            input.extend(output.iter().cloned());
            input.push(result.clone());
            let replay = json!({"model": "m-anthropic", "max_output_tokens": 4000,
                "reasoning": {"effort": "low"}, "tools": tools, "store": false,
                "include": ["reasoning.encrypted_content"], "input": input});
            let (status, _, text) = post(&w.gw, "/v1/responses", &replay).await;
            assert_eq!(status, 200, "{text}");
            assert_thinking_first(&w.anth.last().json());
        }
    }
}

/// The tool loop's assistant turn as Anthropic got it: its signed thinking, its redacted
/// thinking, then its call; thinking on.
fn assert_thinking_first(sent: &Value) {
    assert_eq!(sent["thinking"]["type"], "enabled", "{sent}");
    let content = &sent["messages"][1]["content"];
    assert_eq!(
        content[0],
        json!({"type": "thinking", "thinking": "Weather needs a lookup.", "signature": ANTH_SIGNATURE}),
        "{sent}"
    );
    assert_eq!(
        content[1],
        json!({"type": "redacted_thinking", "data": "REDACTED+/="}),
        "{sent}"
    );
    assert_eq!(content[2]["type"], "tool_use", "{sent}");
}

/// "Silently dropped content" (#27): a tool's result with an image — a Responses
/// `function_call_output` whose `output` is `[input_text, input_image]`, a Messages
/// `tool_result` with an image block — reaches Anthropic as an image block inside its
/// `tool_result`, Gemini as an inline part of its multimodal `functionResponse`, and is
/// refused for an OpenAI chat vendor (its tool messages take text) with a 400 naming the
/// field and the vendor: never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_in_tool_results_are_carried_or_refused() {
    let w = world().await;
    let url = format!("data:image/png;base64,{IMAGE_B64}");
    for vendor in [Vendor::Anthropic, Vendor::Gemini, Vendor::OpenAi] {
        let responses = json!({"model": vendor.model(), "input": [
            {"role": "user", "content": "What does the camera see?"},
            {"type": "function_call", "call_id": "call_cam", "name": "wx", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_cam", "output": [
                {"type": "input_text", "text": "snapshot"},
                {"type": "input_image", "image_url": url}]}]});
        let messages = json!({"model": vendor.model(), "max_tokens": 100, "messages": [
            {"role": "user", "content": "What does the camera see?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_cam", "name": "wx", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_cam",
                "content": [{"type": "text", "text": "snapshot"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                        "data": IMAGE_B64}}]}]}]});
        for (door, body) in [("/v1/responses", responses), ("/v1/messages", messages)] {
            let ctx = format!("{door} -> {}", vendor.name());
            let (status, _, answer) = post(&w.gw, door, &body).await;
            if vendor == Vendor::OpenAi {
                assert_eq!(status, 400, "{ctx}: {answer}");
                let message = answer.to_string();
                assert!(message.contains("tool result"), "{ctx}: {message}");
                assert!(message.contains("openai"), "{ctx}: {message}");
                continue;
            }
            assert_eq!(status, 200, "{ctx}: {answer}");
            let got = received(&w, vendor).unwrap();
            match vendor {
                Vendor::Anthropic => {
                    let result = &got["messages"][2]["content"][0];
                    assert_eq!(result["type"], "tool_result", "{ctx}: {got}");
                    let image = result["content"]
                        .as_array()
                        .and_then(|c| c.iter().find(|b| b["type"] == "image"))
                        .unwrap_or_else(|| panic!("{ctx}: no image in {got}"));
                    assert_eq!(image["source"]["data"], IMAGE_B64, "{ctx}");
                }
                _ => {
                    let response = &got["contents"][2]["parts"][0]["functionResponse"];
                    assert_eq!(
                        response["parts"],
                        json!([{"inlineData": {"mimeType": "image/png", "data": IMAGE_B64}}]),
                        "{ctx}: {got}"
                    );
                    assert_eq!(response["response"], json!({"output": "snapshot"}));
                }
            }
        }
    }
}
