//! `POST /v1/responses` through the binary: passed through to OpenAI-compatible vendors (the
//! client's bytes with only `model` spliced, the vendor's answer and event stream back byte for
//! byte, usage read from the `response` object and from `response.completed`), driven by raw
//! HTTP and by the official OpenAI SDK (`client.responses.create`, streamed and not, a function
//! tool and its output on a second turn); translated for vendors without the Responses API
//! (the strict `MockAnthropic`, a chat-only OpenAI-compatible server, the built-in mock).

use crate::support;

use serde_json::Value;
use support::*;

const TEXT: &str = include_str!("../fixtures/responses/text.json");
const CALL: &str = include_str!("../fixtures/responses/function_call.json");
const STREAM: &str = include_str!("../fixtures/responses/stream_text.sse");

struct Setup {
    oai: MockUpstream,
    az: MockUpstream,
    vllm: MockUpstream,
    anth: MockAnthropic,
    gw: Gateway,
}

async fn setup() -> Setup {
    let oai = MockUpstream::start().await;
    let az = MockUpstream::start().await;
    let vllm = MockUpstream::start().await;
    let anth = MockAnthropic::start("anth-provider-key").await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "oai",
            "openai",
            &oai.base_url(),
            "api_key_env = \"SY_R_OAI\"",
        )
        .provider(
            "az",
            "azure",
            &az.origin(),
            "api_key_env = \"SY_R_AZ\"\napi_version = \"2024-10-21\"",
        )
        .provider("vllm", "openai", &vllm.base_url(), "chat_only = true")
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_R_ANTH\"",
        )
        .mock_provider("local")
        .model("resp-vllm", &[("vllm", "qwen3")])
        .model("resp-claude", &[("anth", "claude-sonnet-4-5")])
        .model("resp-mock", &[("local", "mock-1")])
        .model_with(
            "resp-oai",
            "input_usd_per_mtok = 2.0\noutput_usd_per_mtok = 8.0",
            &[("oai", "gpt-4.1")],
        )
        .model("resp-az", &[("az", "my-gpt41-deployment")])
        .text(
            r#"[[content_filters]]
name = "no-secrets"
deny = ["(?i)project\\s+nightjar"]"#,
        )
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_R_OAI", "sk-oai-provider-key")
        .env("SY_R_AZ", "az-provider-key")
        .env("SY_R_ANTH", "anth-provider-key")
        .start()
        .await;
    Setup {
        oai,
        az,
        vllm,
        anth,
        gw,
    }
}

fn answer(body: &str) -> Behaviour {
    Behaviour {
        body: Some(body.to_string()),
        ..Behaviour::default()
    }
}

/// The stream cut into frames at arbitrary places, as a vendor's TCP segments would be.
fn stream_frames(stream: &str) -> Behaviour {
    let bytes = stream.as_bytes();
    let cuts = [0, 100, 101, 700, 1500, bytes.len() - 10, bytes.len()];
    let frames = cuts
        .windows(2)
        .map(|w| String::from_utf8(bytes[w[0]..w[1]].to_vec()).unwrap())
        .collect();
    Behaviour {
        frames: Some(frames),
        ..Behaviour::default()
    }
}

async fn post(gw: &Gateway, body: &str) -> (u16, String, Option<String>) {
    let r = gw
        .client()
        .post(gw.url("/v1/responses"))
        .bearer_auth(DEMO_SECRET)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.text().await.unwrap(), ct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passed_through_byte_for_byte_and_metered() {
    let s = setup().await;
    // Whole answer: the client's bytes but the model up, the vendor's bytes down.
    s.oai.enqueue(answer(CALL));
    let body = r#"{"model":"resp-oai","input":[{"role":"user","content":[{"type":"input_text","text":"Weather in Paris?"}]}],"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],"store":false,"reasoning":{"effort":"low"},"x_future_field":[1,2]}"#;
    let (status, text, _) = post(&s.gw, body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, CALL);
    let sent = s.oai.last_request().unwrap();
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(
        String::from_utf8_lossy(&sent.body),
        body.replacen("resp-oai", "gpt-4.1", 1)
    );
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-oai-provider-key")
    );

    // A stream, cut anywhere by the vendor: the same bytes reach the client.
    s.oai.enqueue(stream_frames(STREAM));
    let body = r#"{"model":"resp-oai","input":"hi","stream":true}"#;
    let (status, text, ct) = post(&s.gw, body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, STREAM);
    assert!(ct.unwrap().starts_with("text/event-stream"));
    assert_eq!(
        String::from_utf8_lossy(&s.oai.last_request().unwrap().body),
        r#"{"model":"gpt-4.1","input":"hi","stream":true}"#,
        "no stream_options are added on this door"
    );

    // Azure: its v1 API path, the deployment as the body's model, its own key header.
    s.az.enqueue(answer(TEXT));
    let (status, text, _) = post(&s.gw, r#"{"model":"resp-az","input":"hi"}"#).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, TEXT);
    let sent = s.az.last_request().unwrap();
    assert_eq!(sent.path, "/openai/v1/responses");
    assert_eq!(sent.json()["model"], "my-gpt41-deployment");
    assert_eq!(sent.header("api-key"), Some("az-provider-key"));

    // Usage: from the response's usage, and from response.completed's; costs priced. A line is
    // written when its request is counted, which may come after the next request began: the
    // lines are found by what they say, not by their order.
    let lines = s.gw.wait_usage_lines(3).await;
    let find = |model: &str, prompt: u64| {
        lines
            .iter()
            .find(|l| l["model"] == model && l["prompt_tokens"].as_u64() == Some(prompt))
            .unwrap_or_else(|| panic!("no usage line for {model} with {prompt}: {lines:?}"))
    };
    let whole = find("resp-oai", 291);
    assert_eq!(whole["completion_tokens"], 23, "{whole}");
    assert_eq!(whole["usage_source"], "reported");
    assert!(whole["cost_usd"].as_f64().unwrap() > 0.0);
    let streamed = find("resp-oai", 37);
    assert_eq!(streamed["cached_tokens"], 12, "{streamed}");
    assert_eq!(streamed["completion_tokens"], 11, "{streamed}");
    assert_eq!(streamed["usage_source"], "reported");
    find("resp-az", 37);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_in_openais_shape() {
    let s = setup().await;
    for (body, field) in [
        (r#"{"model":"resp-oai"}"#, "`input`"),
        (r#"{"model":"resp-oai","input":[]}"#, "`input`"),
        (r#"{"model":"resp-oai","input":"x","stream":1}"#, "`stream`"),
        (r#"{"input":"x"}"#, "`model`"),
        ("not json", "JSON"),
    ] {
        let (status, text, _) = post(&s.gw, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {text}"
        );
        assert_eq!(v["error"]["type"], "invalid_request_error", "{text}");
    }
    assert_eq!(s.oai.request_count(), 0);
    // Only POST.
    let r =
        s.gw.client()
            .get(s.gw.url("/v1/responses"))
            .bearer_auth(DEMO_SECRET)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

fn run_sdk(gw: &Gateway, model: &str, stream: &str, tools: bool) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_responses.py"
    );
    let base = gw.url("/v1");
    let mut args = vec![script, &base, DEMO_SECRET, model, stream];
    if tools {
        args.push("tools");
    }
    let out = std::process::Command::new(support::python())
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_creates_responses_through_the_gateway() {
    let s = setup().await;
    // Not streamed, with a function tool: the call, then its output on a second turn.
    s.oai.enqueue(answer(CALL));
    s.oai.enqueue(answer(TEXT));
    let v = run_sdk(&s.gw, "resp-oai", "once", true);
    let turns = v["turns"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(turns.len(), 2, "{v}");
    assert_eq!(turns[0]["calls"][0]["name"], "get_weather");
    assert_eq!(turns[0]["calls"][0]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(turns[0]["usage"]["input_tokens"], 291);
    assert_eq!(turns[1]["text"], "Hi there, friend!");
    let sent = s.oai.requests();
    let second = sent[1].json();
    assert_eq!(second["model"], "gpt-4.1");
    assert_eq!(second["input"][2]["type"], "function_call_output");
    assert_eq!(
        second["input"][2]["call_id"],
        "call_unLAR8MvFNptuiZK6K6HCy5k"
    );

    // Streamed: the SDK reads every event the vendor sent.
    s.oai.enqueue(stream_frames(STREAM));
    let v = run_sdk(&s.gw, "resp-oai", "stream", false);
    let turn = &v["turns"][0];
    assert_eq!(turn["text"], "Hi there, friend!", "{v}");
    assert_eq!(turn["status"], "completed");
    assert_eq!(turn["usage"]["input_tokens_details"]["cached_tokens"], 12);
    let events: Vec<&str> = turn["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"response.created"));
    assert_eq!(events.last(), Some(&"response.completed"));
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == "response.output_text.delta")
            .count(),
        3
    );
    let lines = s.gw.wait_usage_lines(3).await;
    assert_eq!(lines[2]["prompt_tokens"], 37, "{}", lines[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_for_vendors_without_the_api() {
    let s = setup().await;
    s.anth.set_content(serde_json::json!([
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
    ]));
    let body = r#"{"model":"resp-claude","instructions":"Be brief.","max_output_tokens":300,
        "input":[{"role":"user","content":[{"type":"input_text","text":"Weather in Paris?"}]}],
        "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],
        "tool_choice":"required","store":false}"#;
    let (status, text, _) = post(&s.gw, body).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "Let me check.");
    assert_eq!(v["output"][1]["type"], "function_call");
    assert_eq!(v["output"][1]["call_id"], "toolu_01");
    assert_eq!(v["output"][1]["arguments"], r#"{"city":"Paris"}"#);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0, "{v}");
    let sent = s.anth.last().json();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 300);
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["tool_choice"]["type"], "any");

    // What Anthropic cannot carry is a 400 naming it, before the vendor.
    let before = s.anth.requests().len();
    let (status, text, _) = post(
        &s.gw,
        r#"{"model":"resp-claude","input":[{"role":"user","content":[{"type":"input_file","file_id":"file_1"}]}]}"#,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("`input_file`"), "{text}");
    assert_eq!(s.anth.requests().len(), before);

    // A chat-only OpenAI-compatible server gets chat completions.
    let (status, text, _) = post(&s.gw, r#"{"model":"resp-vllm","input":"hello there"}"#).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(!v["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .is_empty());
    let sent = s.vllm.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.json()["messages"],
        serde_json::json!([{"role": "user", "content": "hello there"}])
    );
    assert_eq!(s.oai.request_count(), 0);

    // Usage: metered from the chat pivot.
    let lines = s.gw.wait_usage_lines(3).await;
    let ok: Vec<&Value> = lines.iter().filter(|l| l["status"] == 200).collect();
    assert_eq!(ok.len(), 2, "{lines:?}");
    assert!(ok
        .iter()
        .all(|l| l["completion_tokens"].as_u64().unwrap() > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_reaches_anthropic_and_the_mock() {
    let s = setup().await;
    s.anth.set_content(serde_json::json!([
        {"type": "tool_use", "id": "toolu_07", "name": "get_weather", "input": {"city": "Paris"}}
    ]));
    for stream in ["once", "stream"] {
        let v = run_sdk(&s.gw, "resp-claude", stream, true);
        let turns = v["turns"].as_array().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(turns.len(), 2, "{stream}: {v}");
        assert_eq!(turns[0]["calls"][0]["call_id"], "toolu_07", "{v}");
        assert_eq!(turns[0]["calls"][0]["arguments"], r#"{"city":"Paris"}"#);
        assert!(
            turns[0]["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{v}"
        );
        // The second turn carried the call and its output as Anthropic's tool blocks.
        let sent = s.anth.last().json();
        let msgs = sent["messages"].as_array().unwrap();
        assert_eq!(msgs[1]["content"][0]["type"], "tool_use", "{sent}");
        assert_eq!(msgs[2]["content"][0]["type"], "tool_result", "{sent}");
        assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_07");
        if stream == "stream" {
            let events = turns[0]["events"].as_array().unwrap();
            for want in [
                "response.created",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ] {
                assert!(events.iter().any(|e| e == want), "{want}: {v}");
            }
        }
    }
    // The built-in mock answers on this door too, streamed and not.
    for stream in ["once", "stream"] {
        let v = run_sdk(&s.gw, "resp-mock", stream, false);
        let turn = &v["turns"][0];
        assert!(!turn["text"].as_str().unwrap_or("").is_empty(), "{v}");
        assert_eq!(turn["status"], "completed", "{v}");
        assert!(turn["usage"]["output_tokens"].as_u64().unwrap() > 0, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_cut_streams_on_the_responses_door() {
    let s = setup().await;
    // Content filters read the input items' texts and the instructions.
    for body in [
        r#"{"model":"resp-oai","input":[{"role":"user","content":[{"type":"input_text","text":"tell me about Project  Nightjar"}]}]}"#,
        r#"{"model":"resp-claude","instructions":"project nightjar","input":"hi"}"#,
        r#"{"model":"resp-oai","input":[{"type":"function_call_output","call_id":"c","output":"PROJECT NIGHTJAR"}]}"#,
    ] {
        let (status, text, _) = post(&s.gw, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], "content_filter", "{text}");
    }
    assert_eq!(s.oai.request_count(), 0);

    // A translated stream cut by the vendor ends with a Responses `error` event.
    let r =
        s.gw.client()
            .post(s.gw.url("/v1/responses"))
            .bearer_auth(DEMO_SECRET)
            .header("x-mock-drop-after", "2")
            .body(r#"{"model":"resp-vllm","input":"hello","stream":true}"#)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap_or_default();
    assert!(text.starts_with("event: response.created\n"), "{text}");
    assert!(text.contains("response.output_text.delta"), "{text}");
    assert!(!text.contains("response.completed"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: "), "{text}");
    let data: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["type"], "error");
}
