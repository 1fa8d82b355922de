//! Vendors that speak other dialects, end to end: mock Anthropic and Gemini servers replay the
//! vendors' documented shapes (streams cut at awkward byte boundaries), the official OpenAI
//! and Anthropic Python SDKs talk to the gateway, and usage reaches the metrics and the log.

use crate::support;

use std::path::Path;

use serde_json::Value;
use support::*;

const ANTH_KEY: &str = "sk-ant-provider-secret-1";
const GEM_KEY: &str = "gem-provider-secret-2";

struct Setup {
    anth: MockUpstream,
    gem: MockUpstream,
    oai: MockUpstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockUpstream::start().await;
    let gem = MockUpstream::start().await;
    let oai = MockUpstream::start().await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_T_ANTH\"\ndefault_max_tokens = 333",
        )
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_T_GEM\"")
        .provider("oai", "openai", &oai.base_url(), "")
        .model_with(
            "claude-sonnet",
            "input_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0",
            &[("claude", "claude-sonnet-4-5")],
        )
        .model("gemini-flash", &[("gem", "gemini-2.5-flash")])
        .model("gpt", &[("oai", "gpt-x")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_T_ANTH", ANTH_KEY)
        .env("SY_T_GEM", GEM_KEY)
        .start()
        .await;
    Setup { anth, gem, oai, gw }
}

fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(full).unwrap()
}

/// A vendor stream cut every `n` bytes (inside UTF-8 sequences and JSON tokens alike).
fn frames(text: &str, n: usize) -> Vec<String> {
    // Frames are strings: cut on char boundaries nearest to every n bytes.
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + n).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(text[start..end].to_string());
        start = end;
    }
    out
}

fn replay_body(body: &str) -> Behaviour {
    Behaviour {
        body: Some(body.to_string()),
        ..Behaviour::default()
    }
}

fn replay_stream(sse: &str, cut: usize) -> Behaviour {
    Behaviour {
        frames: Some(frames(sse, cut)),
        ..Behaviour::default()
    }
}

fn sdk(mode: &str, gw: &Gateway, model: &str, stream: bool, tools: bool) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_call.py");
    let base = if mode == "openai" {
        gw.url("/v1")
    } else {
        gw.url("")
    };
    let mut cmd = std::process::Command::new(support::python());
    cmd.args([
        script,
        mode,
        &base,
        DEMO_SECRET,
        model,
        if stream { "stream" } else { "once" },
    ]);
    if tools {
        cmd.arg("tools");
    }
    let out = cmd.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_anthropic() {
    let s = setup().await;
    s.anth
        .enqueue(replay_body(&fixture("anthropic/message_text.json")));
    let r = sdk("openai", &s.gw, "claude-sonnet", false, false);
    assert_eq!(
        r["content"], "Hi! My name is Claude. How can I help?",
        "{r}"
    );
    assert_eq!(r["finish_reason"], "stop");
    // Cache reads (5) count as prompt tokens, as OpenAI counts cached tokens.
    assert_eq!(r["usage"]["prompt_tokens"], 2100);
    assert_eq!(r["usage"]["completion_tokens"], 503);
    let req = s.anth.last_request().unwrap();
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(ANTH_KEY));
    assert!(req.header("anthropic-version").is_some());
    assert!(
        req.header("authorization").is_none(),
        "the client's key never goes upstream"
    );
    let sent = req.json();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["max_tokens"], 333, "the provider's default_max_tokens");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["messages"][0]["role"], "user");

    // A stream cut every 7 bytes.
    s.anth
        .enqueue(replay_stream(&fixture("anthropic/stream_text.sse"), 7));
    let r = sdk("openai", &s.gw, "claude-sonnet", true, false);
    assert_eq!(r["content"], "Bonjour — ça va? 👋\n\"quoted\"", "{r}");
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["usage"]["prompt_tokens"], 25);
    assert_eq!(r["usage"]["completion_tokens"], 15);

    // Tool use, streamed, cut every 5 bytes.
    s.anth
        .enqueue(replay_stream(&fixture("anthropic/stream_tool_use.sse"), 5));
    let r = sdk("openai", &s.gw, "claude-sonnet", true, true);
    assert_eq!(r["finish_reason"], "tool_calls", "{r}");
    let tool_prompt = r["usage"]["prompt_tokens"].as_u64().unwrap() as f64;
    let call = &r["tool_calls"][0];
    assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()), "{r}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object(), "{r}");
    let sent = s.anth.last_request().unwrap().json();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert!(sent["tools"][0]["input_schema"].is_object());

    // Vendor errors: 400 passes with the vendor's message; 529 overloaded is a 502.
    s.anth.enqueue(Behaviour {
        status: Some(400),
        ..replay_body(&fixture("anthropic/error_invalid_request.json"))
    });
    let r = sdk("openai", &s.gw, "claude-sonnet", false, false);
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(r["error"], "BadRequestError");
    // A 529 once is tried again on the same route (the only one) and answers.
    let overloaded = || Behaviour {
        status: Some(529),
        ..replay_body(&fixture("anthropic/error_overloaded.json"))
    };
    s.anth.enqueue(overloaded());
    let r = sdk("openai", &s.gw, "claude-sonnet", false, false);
    assert!(r["status"].is_null(), "{r}");
    // On every attempt (max_attempts = 3): a 502 with the vendor's message.
    for _ in 0..3 {
        s.anth.enqueue(overloaded());
    }
    let r = sdk("openai", &s.gw, "claude-sonnet", false, false);
    assert_eq!(r["status"], 502, "{r}");
    assert!(
        r["body"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{r}"
    );

    // Usage and cost of the translated vendor reach the metrics and the log.
    let m = s.gw.metrics().await;
    let prompt = metric_value(
        &m,
        "switchyard_tokens_total",
        &[
            ("model", "claude-sonnet"),
            ("type", "prompt"),
            ("usage_source", "reported"),
        ],
    );
    // What the SDK was told is what the metrics counted.
    assert_eq!(prompt, Some((2100 + 25) as f64 + tool_prompt), "{m}");
    assert!(
        metric_value(
            &m,
            "switchyard_cost_usd_total",
            &[("model", "claude-sonnet")]
        )
        .unwrap()
            > 0.0
    );
    let log = std::fs::read_to_string(s.gw.dir().join("usage.jsonl")).unwrap();
    assert!(log
        .lines()
        .any(|l| l.contains("\"provider\":\"claude\"") && l.contains("\"prompt_tokens\":2100")));
    assert!(!log.contains(ANTH_KEY) && !m.contains(ANTH_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_gemini() {
    let s = setup().await;
    s.gem
        .enqueue(replay_body(&fixture("gemini/generate_text.json")));
    let r = sdk("openai", &s.gw, "gemini-flash", false, false);
    assert_eq!(r["content"], "AI learns patterns from data.", "{r}");
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["usage"]["prompt_tokens"], 8);
    let req = s.gem.last_request().unwrap();
    assert_eq!(req.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(req.header("x-goog-api-key"), Some(GEM_KEY));
    let sent = req.json();
    assert!(sent["systemInstruction"].is_object(), "{sent}");
    assert_eq!(sent["contents"][0]["role"], "user");

    s.gem
        .enqueue(replay_stream(&fixture("gemini/stream_text.sse"), 3));
    let r = sdk("openai", &s.gw, "gemini-flash", true, false);
    assert_eq!(r["content"], "The sky is blue — \"ü\" 日本.", "{r}");
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["usage"]["prompt_tokens"], 9);
    let req = s.gem.last_request().unwrap();
    assert_eq!(
        req.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );

    // SAFETY after some text ends the stream with the seed's Contents Filtered error event,
    // which the SDK raises.
    s.gem
        .enqueue(replay_stream(&fixture("gemini/stream_safety.sse"), 11));
    let failure = sdk_failure("openai", &s.gw, "gemini-flash", true);
    assert!(
        failure.contains("APIError") && failure.contains("content policy"),
        "{failure}"
    );
}

/// Runs the SDK call expecting it to fail; returns what it printed.
fn sdk_failure(mode: &str, gw: &Gateway, model: &str, stream: bool) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_call.py");
    let base = if mode == "openai" {
        gw.url("/v1")
    } else {
        gw.url("")
    };
    let out = std::process::Command::new(support::python())
        .args([
            script,
            mode,
            &base,
            DEMO_SECRET,
            model,
            if stream { "stream" } else { "once" },
        ])
        .output()
        .expect("python3 runs");
    assert!(!out.status.success(), "the SDK call succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_on_the_messages_front_door() {
    let s = setup().await;
    // Routed to an OpenAI-compatible vendor, non-streaming and streaming.
    let r = sdk("anthropic", &s.gw, "gpt", false, false);
    assert!(
        r["content"].as_str().unwrap().starts_with("mock reply to:"),
        "{r}"
    );
    assert_eq!(r["stop_reason"], "end_turn");
    assert!(r["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let sent = s.oai.last_request().unwrap().json();
    assert_eq!(sent["model"], "gpt-x");
    assert_eq!(sent["messages"][0]["role"], "system");
    let r = sdk("anthropic", &s.gw, "gpt", true, false);
    assert!(r["content"].as_str().unwrap().starts_with("tok0 "), "{r}");
    assert_eq!(r["stop_reason"], "end_turn");
    assert!(r["usage"]["output_tokens"].as_u64().unwrap() > 0, "{r}");

    // Routed to an Anthropic vendor.
    s.anth
        .enqueue(replay_body(&fixture("anthropic/message_text.json")));
    let r = sdk("anthropic", &s.gw, "claude-sonnet", false, false);
    assert_eq!(
        r["content"], "Hi! My name is Claude. How can I help?",
        "{r}"
    );
    // The vendor's own bytes: `input_tokens` without the cache read it reports beside it.
    assert_eq!(r["usage"]["input_tokens"], 2095);
    s.anth
        .enqueue(replay_stream(&fixture("anthropic/stream_text.sse"), 9));
    let r = sdk("anthropic", &s.gw, "claude-sonnet", true, false);
    assert_eq!(r["content"], "Bonjour — ça va? 👋\n\"quoted\"", "{r}");
    assert_eq!(r["stop_reason"], "end_turn");

    // Errors come back in Anthropic's shape.
    let r = sdk("anthropic", &s.gw, "no-such-model", false, false);
    assert_eq!(r["status"], 404, "{r}");
    assert_eq!(r["body"]["type"], "error", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deployment_urls_key_header_and_content_filter() {
    let azure = MockUpstream::start().await;
    let body = ConfigBody::new()
        .provider(
            "az",
            "azure",
            &azure.origin(),
            "api_key_env = \"SY_T_AZURE\"\napi_version = \"2024-10-21\"",
        )
        .model("gpt-4o", &[("az", "gpt4o-prod")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_T_AZURE", "azure-provider-secret")
        .start()
        .await;
    let resp = gw
        .chat(DEMO_SECRET, &chat_body("gpt-4o", "hello", true))
        .await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    let req = azure.last_request().unwrap();
    assert_eq!(
        req.path,
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(req.header("api-key"), Some("azure-provider-secret"));
    assert!(req.header("authorization").is_none());
    assert_eq!(
        bytes, req.response_body,
        "Azure streams pass through untouched"
    );

    // Azure's content-filter 400 becomes the seed's Contents Filtered error.
    azure.enqueue(Behaviour {
        status: Some(400),
        body: Some(
            r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#
                .into(),
        ),
        ..Behaviour::default()
    });
    let resp = gw
        .chat(
            DEMO_SECRET,
            &chat_body("gpt-4o", "something hateful", false),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["reason"], "content_filter", "{v}");
    assert_eq!(v["error"]["param"], "prompt");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("This content may violate"));
}
