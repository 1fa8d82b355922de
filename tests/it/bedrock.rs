//! Amazon Bedrock (`kind = "bedrock"`) through the real binary, against `MockBedrock`, which
//! recomputes every SigV4 signature on its own, checks the session token and the path's model
//! id, refuses what Bedrock refuses in Claude's invoke body, and streams AWS event-stream
//! frames cut at every byte.

use std::time::Duration;

use crate::support;

use serde_json::{json, Value};
use support::*;

const REGION: &str = "us-east-1";
const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const KEY_ID: &str = "AKIAMOCKBEDROCK01";
const SECRET: &str = "mock/secret+key=bedrock";
const TOKEN: &str = "mock-session-token-static";
const ANTH_KEY: &str = "sk-ant-bedrock-test-1";

fn static_key() -> AwsKey {
    AwsKey {
        id: KEY_ID.into(),
        secret: SECRET.into(),
        token: Some(TOKEN.into()),
        until: None,
    }
}

/// The AWS environment of a gateway with static keys (no profile, no IMDS).
fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
    ]
}

fn bedrock_provider(body: ConfigBody, name: &str, origin: &str, extra: &str) -> ConfigBody {
    let extra = format!("region = \"{REGION}\"\n{extra}");
    body.provider(name, "bedrock", origin, &extra)
}

struct Setup {
    bedrock: MockBedrock,
    gw: Gateway,
}

async fn setup() -> Setup {
    let bedrock = MockBedrock::start(REGION, &[CLAUDE], Some(static_key())).await;
    let body = bedrock_provider(ConfigBody::new().usage_log(), "aws", &bedrock.origin(), "")
        .model_with(
            "claude",
            "input_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0",
            &[("aws", CLAUDE)],
        )
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body).envs(&aws_env()).start().await;
    Setup { bedrock, gw }
}

async fn post(
    gw: &Gateway,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = gw
        .client()
        .post(gw.url(path))
        .header("authorization", format!("Bearer {DEMO_SECRET}"))
        .json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

/// The text of a Messages answer, whole or streamed.
fn said(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return v["content"][0]["text"].as_str().unwrap_or("").to_string();
    }
    named_events(text)
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["delta"]["text"].as_str().map(String::from))
        .collect()
}

fn messages_body(stream: bool) -> Value {
    json!({"model":"claude","max_tokens":256,"stream":stream,
           "messages":[{"role":"user","content":"Hello"}]})
}

#[tokio::test]
async fn messages_door_to_bedrock_claude_whole_and_streamed() {
    let s = setup().await;
    let r = post(
        &s.gw,
        "/v1/messages",
        &messages_body(false),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", s.gw.logs());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], BEDROCK_REPLY);
    let sent = s.bedrock.last();
    assert_eq!(sent.action, "invoke");
    assert_eq!(sent.model, CLAUDE);
    // The id's `:` escaped in the path.
    assert!(sent.path.contains("%3A0/invoke"), "{}", sent.path);
    assert_eq!(sent.header("x-amz-security-token"), Some(TOKEN));
    assert!(sent.header("anthropic-version").is_none());
    let body = sent.json();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(body.get("model").is_none() && body.get("stream").is_none());

    let r = post(
        &s.gw,
        "/v1/messages",
        &messages_body(true),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    let events = named_events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{text}");
    assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    let said: String = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["delta"]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(said, BEDROCK_REPLY);
    assert_eq!(s.bedrock.last().action, "invoke-with-response-stream");

    let lines = s.gw.wait_usage_lines(2).await;
    for (line, stream) in lines.iter().zip([false, true]) {
        assert_eq!(line["stream"], stream, "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["provider"], "aws", "{line}");
        assert_eq!(line["prompt_tokens"], 20, "{line}");
        assert_eq!(line["completion_tokens"], 7, "{line}");
        assert_eq!(line["usage_source"], "reported", "{line}");
        let cost = line["cost_usd"].as_f64().unwrap();
        assert!(
            (cost - (20.0 * 3.0 + 7.0 * 15.0) / 1e6).abs() < 1e-12,
            "{line}"
        );
    }
}

/// A chat request with a tool.
fn chat_tools(stream: bool) -> Value {
    json!({"model":"claude","stream":stream,"max_tokens":128,
        "messages":[{"role":"user","content":"Weather in Paris?"}],
        "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather",
            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]})
}

fn tool_call_content() -> Value {
    json!([{"type":"text","text":"Let me check."},
           {"type":"tool_use","id":"toolu_bdrk_1","name":"get_weather","input":{"city":"Paris"}}])
}

#[tokio::test]
async fn chat_door_to_bedrock_claude_with_tools_whole_and_streamed() {
    let s = setup().await;
    s.bedrock.set_behaviour(BedrockBehaviour {
        content: Some(tool_call_content()),
        ..Default::default()
    });
    let r = post(&s.gw, "/v1/chat/completions", &chat_tools(false), &[]).await;
    assert_eq!(r.status(), 200, "{}", s.gw.logs());
    let v: Value = r.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{v}");
    assert_eq!(call["id"], "toolu_bdrk_1");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 20);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    let sent = s.bedrock.last().json();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");

    let r = post(&s.gw, "/v1/chat/completions", &chat_tools(true), &[]).await;
    assert_eq!(r.status(), 200);
    let events = parse_sse_json(&r.text().await.unwrap());
    let args: String = events
        .iter()
        .filter_map(|e| e.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city":"Paris"})
    );
    assert_eq!(s.bedrock.last().action, "invoke-with-response-stream");
    let lines = s.gw.wait_usage_lines(2).await;
    for line in &lines {
        assert_eq!(line["prompt_tokens"], 20, "{line}");
        assert_eq!(line["completion_tokens"], 7, "{line}");
        assert!(line["cost_usd"].as_f64().unwrap() > 0.0, "{line}");
    }
}

#[tokio::test]
async fn responses_door_to_bedrock_claude_whole_and_streamed() {
    let s = setup().await;
    let body =
        |stream: bool| json!({"model":"claude","input":"Hello","stream":stream,"store":false});
    let r = post(&s.gw, "/v1/responses", &body(false), &[]).await;
    assert_eq!(r.status(), 200, "{}", s.gw.logs());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], BEDROCK_REPLY, "{v}");
    assert_eq!(v["usage"]["input_tokens"], 20);
    let r = post(&s.gw, "/v1/responses", &body(true), &[]).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let done = parse_sse_json(&text)
        .into_iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(done["response"]["usage"]["output_tokens"], 7, "{done}");
    assert_eq!(s.bedrock.count(), 2);
    let lines = s.gw.wait_usage_lines(2).await;
    assert!(lines.iter().all(|l| l["cost_usd"].as_f64().unwrap() > 0.0));
}

/// Claude Code's request shape: cache marks (one with the `scope` of a beta Bedrock does
/// not list), a thinking block with its signature before a tool call, thinking on,
/// `context_management` without its beta, and its beta header.
fn claude_code_body(stream: bool) -> Value {
    json!({"model":"claude","max_tokens":2048,"stream":stream,
        "system":[{"type":"text","text":"You are Claude Code.",
                   "cache_control":{"type":"ephemeral","scope":"global"}}],
        "messages":[
            {"role":"user","content":[{"type":"text","text":"Fix the bug",
                "cache_control":{"type":"ephemeral"}}]},
            {"role":"assistant","content":[
                {"type":"thinking","thinking":"Let me look.","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"},
                {"type":"tool_use","id":"toolu_01","name":"read_file","input":{"path":"src/main.rs"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"fn main() {}"}]}],
        "tools":[{"name":"read_file","description":"Read","input_schema":{"type":"object"}}],
        "thinking":{"type":"enabled","budget_tokens":1024},
        "context_management":{"edits":[{"type":"clear_thinking_20251015"}]},
        "metadata":{"user_id":"user_abc"}})
}

const CLAUDE_CODE_BETAS: &str =
    "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14,prompt-caching-scope-2026-01-05";

#[tokio::test]
async fn messages_door_keeps_cache_marks_and_thinking_and_drops_what_bedrock_refuses() {
    let s = setup().await;
    for stream in [false, true] {
        let r = post(
            &s.gw,
            "/v1/messages",
            &claude_code_body(stream),
            &[
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", CLAUDE_CODE_BETAS),
            ],
        )
        .await;
        assert_eq!(r.status(), 200, "{}", s.gw.logs());
        assert_eq!(
            r.headers()["x-switchyard-adjusted"],
            "anthropic-beta, context_management, cache_control.scope"
        );
        r.bytes().await.unwrap();
        let sent = s.bedrock.last().json();
        assert_eq!(
            sent["anthropic_beta"],
            json!(["interleaved-thinking-2025-05-14"])
        );
        assert!(sent.get("context_management").is_none());
        assert_eq!(
            sent["system"][0]["cache_control"],
            json!({"type":"ephemeral"})
        );
        assert_eq!(
            sent["messages"][0]["content"][0]["cache_control"],
            json!({"type":"ephemeral"})
        );
        assert_eq!(
            sent["messages"][1]["content"][0],
            json!({"type":"thinking","thinking":"Let me look.","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"})
        );
        assert_eq!(
            sent["thinking"],
            json!({"type":"enabled","budget_tokens":1024})
        );
        assert_eq!(sent["metadata"], json!({"user_id":"user_abc"}));
    }
    // With their betas, the fields go as they are.
    let mut body = claude_code_body(false);
    body["output_config"] = json!({"effort":"high"});
    let r = post(
        &s.gw,
        "/v1/messages",
        &body,
        &[
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "context-management-2025-06-27,effort-2025-11-24",
            ),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", s.gw.logs());
    let sent = s.bedrock.last().json();
    assert_eq!(sent["context_management"], body["context_management"]);
    assert_eq!(sent["output_config"], json!({"effort":"high"}));
}

/// The mock refuses what Bedrock refuses: the adjustments above are needed.
#[tokio::test]
async fn the_mock_refuses_what_bedrock_refuses() {
    let s = setup().await;
    let base = json!({"anthropic_version":"bedrock-2023-05-31","max_tokens":10,
        "messages":[{"role":"user","content":"hi"}]});
    let cases = [
        (json!({"model":"x"}), "extraneous key [model]"),
        (json!({"stream":true}), "extraneous key [stream]"),
        (
            json!({"anthropic_beta":["claude-code-20250219"]}),
            "invalid beta flag",
        ),
        (json!({"context_management":{}}), "context_management"),
        (
            json!({"anthropic_version":"2023-06-01"}),
            "anthropic_version",
        ),
        (
            json!({"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral","scope":"global"}}]}),
            "scope",
        ),
    ];
    for (extra, words) in cases {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = raw_invoke(&s.bedrock, &body).await;
        assert_eq!(answer.0, 400, "{extra}: {}", answer.1);
        assert!(answer.1.contains(words), "{extra}: {}", answer.1);
    }
    assert_eq!(raw_invoke(&s.bedrock, &base).await.0, 200);
}

/// Sends `body` to the mock's invoke, signed by the gateway's signer (`aws-sigv4`), so that
/// the mock's own SigV4 check meets it directly.
async fn raw_invoke(bedrock: &MockBedrock, body: &Value) -> (u16, String) {
    let head = http::Request::builder()
        .method("POST")
        .uri(format!("/model/{}/invoke", CLAUDE.replace(':', "%3A")))
        .header("host", bedrock.origin().trim_start_matches("http://"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (mut parts, ()) = head.into_parts();
    let bytes = serde_json::to_vec(body).unwrap();
    let creds =
        aws_credential_types::Credentials::new(KEY_ID, SECRET, Some(TOKEN.into()), None, "t");
    switchyard::providers::bedrock::sign::sign(
        &mut parts,
        &bytes,
        REGION,
        &creds,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let mut r = client().post(format!("{}{}", bedrock.origin(), parts.uri));
    for (k, v) in parts.headers.iter() {
        r = r.header(k.as_str(), v.to_str().unwrap());
    }
    let resp = r.body(bytes).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

// ---------------------------------------------------------------------------------------------
// Routing across clouds, errors, health.

/// One model routed to `anthropic` and `bedrock` at once.
async fn two_clouds() -> (MockAnthropic, MockBedrock, Gateway) {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let bedrock = MockBedrock::start(REGION, &[CLAUDE], Some(static_key())).await;
    let body = ConfigBody::new().usage_log().provider(
        "anth",
        "anthropic",
        &anth.origin(),
        "api_key_env = \"SY_B_ANTH\"",
    );
    let body = bedrock_provider(body, "aws", &bedrock.origin(), "")
        .model_with(
            "claude",
            "input_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0",
            &[("anth", "claude-sonnet-4-5"), ("aws", CLAUDE)],
        )
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let mut env = aws_env();
    env.push(("SY_B_ANTH", ANTH_KEY));
    let gw = Gateway::builder(&body).envs(&env).start().await;
    (anth, bedrock, gw)
}

/// Anthropic overloaded: Bedrock answers, with the conversation's thinking signature intact
/// ("signature values are compatible across platforms": Anthropic, "Building with extended
/// thinking", thinking encryption); Bedrock throttled: Anthropic answers.
#[tokio::test]
async fn a_fallback_between_anthropic_and_bedrock_either_way() {
    // Routes are picked by weight: until the failing vendor's turn comes (and it fails, and the
    // other takes the request over), a request may go to the healthy one first; every request
    // is answered by the healthy one. Each direction on a gateway of its own (a failed route
    // cools down).
    let (anth, bedrock, gw) = two_clouds().await;
    anth.set_behaviour(AnthBehaviour {
        error: Some((529, anthropic_error_body("overloaded_error", "busy"))),
        ..Default::default()
    });
    let mut stream = false;
    for _ in 0..20 {
        let r = post(
            &gw,
            "/v1/messages",
            &claude_code_body(stream),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
        assert_eq!(r.status(), 200, "{}", gw.logs());
        assert_eq!(said(&r.text().await.unwrap()), BEDROCK_REPLY);
        let sent = bedrock.last().json();
        assert_eq!(
            sent["messages"][1]["content"][0]["signature"],
            "EqQBCgIYAhIM1gbcDa9GJwZA"
        );
        stream = !stream;
        if anth.message_count() >= 1 {
            break;
        }
    }
    assert!(
        anth.message_count() >= 1,
        "anthropic was never picked first"
    );

    let (anth, bedrock, gw) = two_clouds().await;
    bedrock.set_behaviour(BedrockBehaviour {
        error: Some((
            429,
            "ThrottlingException".into(),
            "Too many requests, please wait before trying again.".into(),
        )),
        ..Default::default()
    });
    for _ in 0..20 {
        let r = post(
            &gw,
            "/v1/messages",
            &claude_code_body(stream),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
        assert_eq!(r.status(), 200, "{}", gw.logs());
        assert_eq!(said(&r.text().await.unwrap()), ANTHROPIC_REPLY);
        stream = !stream;
        if bedrock.count() >= 1 {
            break;
        }
    }
    assert!(bedrock.count() >= 1, "bedrock was never picked first");
    drop(anth);
}

/// Two regions of one model: a throttled one (with Bedrock's `retry-after`) cools its own
/// route only; the other serves; the client never sees the 429.
#[tokio::test]
async fn a_throttled_region_cools_only_its_route() {
    let east = MockBedrock::start("us-east-1", &[CLAUDE], Some(static_key())).await;
    let west = MockBedrock::start("us-west-2", &[CLAUDE], Some(static_key())).await;
    let body = ConfigBody::new()
        .provider("east", "bedrock", &east.origin(), "region = \"us-east-1\"")
        .provider("west", "bedrock", &west.origin(), "region = \"us-west-2\"")
        .model("claude", &[("east", CLAUDE), ("west", CLAUDE)])
        .model("claude-east", &[("east", CLAUDE)])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body).envs(&aws_env()).start().await;
    east.set_behaviour(BedrockBehaviour {
        error: Some((
            429,
            "ThrottlingException".into(),
            "Too many requests".into(),
        )),
        retry_after: Some(30),
        ..Default::default()
    });
    for _ in 0..12 {
        let r = post(
            &gw,
            "/v1/messages",
            &messages_body(false),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
        assert_eq!(r.status(), 200, "{}", gw.logs());
    }
    assert_eq!(
        east.count(),
        1,
        "east tried once, then cooled for its retry-after"
    );
    assert_eq!(west.count(), 12);
    // The model routed to east only: its client gets the 429 and the wait, east untouched.
    let mut body = messages_body(false);
    body["model"] = json!("claude-east");
    let r = post(
        &gw,
        "/v1/messages",
        &body,
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((28..=30).contains(&wait), "{wait}");
    assert_eq!(east.count(), 1, "the cooled route was not called");
    assert!(r.headers().get("retry-after").is_some());
}

/// Each Bedrock exception: the client's status and door shape, the message kept (never a
/// secret), the gateway's credentials refused as a 502.
#[tokio::test]
async fn bedrock_errors_reach_the_client_by_their_rules() {
    let s = setup().await;
    let cases = [
        (
            400,
            "ValidationException",
            "messages.0: too long",
            400,
            true,
        ),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model",
            502,
            false,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            502,
            false,
        ),
        (
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            502,
            false,
        ),
        (
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model",
            404,
            true,
        ),
        (429, "ThrottlingException", "Too many requests", 429, true),
        (
            429,
            "ModelNotReadyException",
            "Model is not ready",
            429,
            true,
        ),
        (
            503,
            "ServiceUnavailableException",
            "Service unavailable",
            502,
            true,
        ),
        (
            500,
            "InternalServerException",
            "Internal failure",
            502,
            true,
        ),
    ];
    for (status, kind, message, want, kept) in cases {
        s.bedrock.set_behaviour(BedrockBehaviour {
            error: Some((status, kind.into(), message.into())),
            ..Default::default()
        });
        for path in ["/v1/messages", "/v1/chat/completions"] {
            let body = if path == "/v1/messages" {
                messages_body(false)
            } else {
                chat_tools(false)
            };
            let r = post(&s.gw, path, &body, &[("anthropic-version", "2023-06-01")]).await;
            assert_eq!(r.status().as_u16(), want, "{kind} at {path}");
            let v: Value = r.json().await.unwrap();
            let text = v.to_string();
            assert_eq!(text.contains(message), kept, "{kind} at {path}: {v}");
            if path == "/v1/messages" {
                assert_eq!(v["type"], "error", "{v}");
            } else {
                assert!(v["error"]["message"].is_string(), "{v}");
            }
        }
    }
    let logs = s.gw.logs();
    assert!(
        !logs.contains(SECRET) && !logs.contains(TOKEN),
        "a secret in the logs"
    );
}

/// A model the region does not serve: Bedrock's 404 in the door's shape.
#[tokio::test]
async fn a_model_the_region_does_not_serve_is_a_404() {
    let bedrock = MockBedrock::start(REGION, &[CLAUDE], Some(static_key())).await;
    let body = bedrock_provider(ConfigBody::new(), "aws", &bedrock.origin(), "")
        .model(
            "opus",
            &[("aws", "eu.anthropic.claude-opus-4-20250514-v1:0")],
        )
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body).envs(&aws_env()).start().await;
    let mut body = messages_body(false);
    body["model"] = json!("opus");
    let r = post(
        &gw,
        "/v1/messages",
        &body,
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Could not resolve"),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------
// Event streams.

/// Two regions, the first one's stream broken before content: the second answers whole.
/// After content, a broken stream ends as a reset (the client's read fails), and an exception
/// frame as one error event.
#[tokio::test]
async fn stream_failures_before_and_after_content() {
    let east = MockBedrock::start("us-east-1", &[CLAUDE], Some(static_key())).await;
    let west = MockBedrock::start("us-west-2", &[CLAUDE], Some(static_key())).await;
    let body = ConfigBody::new()
        .usage_log()
        .provider("east", "bedrock", &east.origin(), "region = \"us-east-1\"")
        .provider("west", "bedrock", &west.origin(), "region = \"us-west-2\"")
        .model_with(
            "claude",
            "fallbacks = [\"claude-west\"]",
            &[("east", CLAUDE)],
        )
        .model("claude-west", &[("west", CLAUDE)])
        .model("claude-east", &[("east", CLAUDE)])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body).envs(&aws_env()).start().await;
    let before_content = [
        BedrockBehaviour {
            corrupt_after: Some(0),
            ..Default::default()
        },
        BedrockBehaviour {
            drop_after: Some(0),
            ..Default::default()
        },
        BedrockBehaviour {
            exception_after: Some((0, "modelStreamErrorException".into())),
            ..Default::default()
        },
        BedrockBehaviour {
            exception_after: Some((0, "throttlingException".into())),
            ..Default::default()
        },
    ];
    for b in before_content {
        east.set_behaviour(b.clone());
        let r = post(
            &gw,
            "/v1/messages",
            &messages_body(true),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
        assert_eq!(r.status(), 200, "{b:?}");
        let text = r.text().await.unwrap();
        let said: String = named_events(&text)
            .iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
            .filter_map(|e| e["delta"]["text"].as_str().map(String::from))
            .collect();
        assert_eq!(said, BEDROCK_REPLY, "{b:?}: {text}");
        assert!(!text.contains("event: error"), "{b:?}: {text}");
    }
    assert_eq!(west.count(), 4);

    let mut body = messages_body(true);
    body["model"] = json!("claude-east");
    for b in [
        BedrockBehaviour {
            corrupt_after: Some(1),
            ..Default::default()
        },
        BedrockBehaviour {
            drop_after: Some(1),
            ..Default::default()
        },
    ] {
        east.set_behaviour(b.clone());
        let r = post(
            &gw,
            "/v1/messages",
            &body,
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
        assert_eq!(r.status(), 200, "{b:?}");
        // The reset after content: the text so far, then one error event ends the stream.
        let text = r.text().await.unwrap();
        let events = named_events(&text);
        assert_eq!(said(&text), "Hello from", "{b:?}: {text}");
        assert_eq!(
            events.iter().filter(|(n, _)| n == "error").count(),
            1,
            "{text}"
        );
        assert_eq!(events.last().unwrap().0, "error", "{text}");
    }
    east.set_behaviour(BedrockBehaviour {
        exception_after: Some((1, "modelStreamErrorException".into())),
        ..Default::default()
    });
    let r = post(
        &gw,
        "/v1/messages",
        &body,
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    let text = r.text().await.unwrap();
    let events = named_events(&text);
    let errors: Vec<_> = events.iter().filter(|(n, _)| n == "error").collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].1.contains("modelStreamErrorException"), "{text}");
    assert_eq!(events.last().unwrap().0, "error");
    assert_eq!(west.count(), 4, "never retried after content");
}

// ---------------------------------------------------------------------------------------------
// Credentials.

/// Keys from a container credential endpoint that expire every 3 s, the mock taking only keys
/// not yet expired: 8 s of steady traffic (over two expiries), not one failed request, and the
/// keys were fetched again ahead of expiry.
#[tokio::test]
async fn credentials_are_refreshed_before_they_expire_under_steady_traffic() {
    let bedrock = MockBedrock::start(REGION, &[CLAUDE], None).await;
    bedrock.set_key_lifetime(Duration::from_secs(3));
    let body = bedrock_provider(ConfigBody::new(), "aws", &bedrock.origin(), "")
        .model("claude", &[("aws", CLAUDE)])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let url = bedrock.credentials_url();
    let gw = Gateway::builder(&body)
        .envs(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            ),
        ])
        .start()
        .await;
    let started = std::time::Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let r = post(
            &gw,
            "/v1/messages",
            &messages_body(sent % 2 == 1),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
        assert_eq!(r.status(), 200, "request {sent}: {}", gw.logs());
        r.bytes().await.unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent > 40, "{sent}");
    assert!(
        bedrock.keys_minted() >= 4,
        "minted {}",
        bedrock.keys_minted()
    );
    let ids: std::collections::HashSet<String> = bedrock
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(|a| a[..50].to_string()))
        .collect();
    assert!(ids.len() >= 3, "requests signed with {} keys", ids.len());
    assert!(bedrock.requests().iter().all(|r| r.status == 200));
}

/// A Bedrock API key goes as `Authorization: Bearer`, with no SigV4; an ARN model id goes
/// escaped in the path; `bedrock_api` decides an ARN whose family is not in it.
#[tokio::test]
async fn api_key_and_arn_model_ids() {
    const ARN: &str = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3";
    let bedrock = MockBedrock::start_api_key(REGION, &[CLAUDE, ARN], "bedrock-api-key-1").await;
    let body = bedrock_provider(
        ConfigBody::new(),
        "aws",
        &bedrock.origin(),
        "api_key_env = \"SY_BEDROCK_KEY\"\nbedrock_api = \"invoke\"",
    )
    .model("claude", &[("aws", CLAUDE)])
    .model("profile", &[("aws", ARN)])
    .team("t", "")
    .demo_key("k", "t")
    .build();
    let gw = Gateway::builder(&body)
        .envs(&[
            ("SY_BEDROCK_KEY", "bedrock-api-key-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .start()
        .await;
    let r = post(
        &gw,
        "/v1/messages",
        &messages_body(false),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", gw.logs());
    let sent = bedrock.last();
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer bedrock-api-key-1")
    );
    assert!(sent.header("x-amz-date").is_none());
    let mut body = messages_body(true);
    body["model"] = json!("profile");
    let r = post(
        &gw,
        "/v1/messages",
        &body,
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", gw.logs());
    r.bytes().await.unwrap();
    let sent = bedrock.last();
    assert_eq!(sent.model, ARN);
    assert_eq!(
        sent.path,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A111122223333%3Aapplication-inference-profile%2Fa1b2c3/invoke-with-response-stream"
    );
}

// ---------------------------------------------------------------------------------------------
// Config and `switchyard check`.

/// `switchyard check -c <config>` with only `env` set.
fn check(config: &str, env: &[(&str, &str)], offline: bool) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = std::process::Command::new(switchyard_bin());
    cmd.arg("check").arg("-c").arg(&path);
    if offline {
        cmd.arg("--offline");
    }
    let out = cmd
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const CHECKED: &str = r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "aws"
kind = "bedrock"
base_url = "http://127.0.0.1:9"
region = "eu-central-1"

[[providers]]
name = "aws-key"
kind = "bedrock"
base_url = "http://127.0.0.1:9"
region = "us-east-1"
api_key_env = "BEDROCK_KEY"

[[models]]
name = "claude"
  [[models.routes]]
  provider = "aws"
  model = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
  [[models.routes]]
  provider = "aws-key"
  model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
"#;

#[test]
fn check_names_each_providers_credential_source_and_no_secret() {
    let mut env = aws_env();
    env.push(("BEDROCK_KEY", "bedrock-secret-api-key"));
    let (code, text) = check(CHECKED, &env, false);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("provider `aws`: credentials from AWS environment (AWS_ACCESS_KEY_ID)"),
        "{text}"
    );
    assert!(
        text.contains("provider `aws-key`: credentials from Bedrock API key (BEDROCK_KEY)"),
        "{text}"
    );
    for secret in [SECRET, TOKEN, KEY_ID, "bedrock-secret-api-key"] {
        assert!(!text.contains(secret), "{text}");
    }
    // A profile file: its source named.
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let (code, text) = check(
        CHECKED,
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("BEDROCK_KEY", "k"),
        ],
        false,
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("provider `aws`: credentials from AWS shared profile"),
        "{text}"
    );
}

#[test]
fn a_bedrock_provider_without_credentials_or_region_is_a_config_error() {
    let env = [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("BEDROCK_KEY", "k"),
    ];
    let (code, text) = check(CHECKED, &env, false);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(":7: providers[0].kind: no AWS credentials found"),
        "{text}"
    );
    // Offline, no credential is looked for.
    let (code, text) = check(CHECKED, &env, true);
    assert_eq!(code, 0, "{text}");

    let bad = [
        (
            CHECKED.replacen("region = \"eu-central-1\"\n", "", 1),
            ":7: providers[0].region: kind = \"bedrock\" requires region",
        ),
        (
            CHECKED.replacen("\"eu-central-1\"", "\"Frankfurt\"", 1),
            ":9: providers[0].region: \"Frankfurt\" is not an AWS region",
        ),
        (
            CHECKED.replacen(
                "region = \"eu-central-1\"",
                "region = \"eu-central-1\"\nbedrock_api = \"chat\"",
                1,
            ),
            ":10: providers[0].bedrock_api: unknown bedrock_api \"chat\"",
        ),
        (
            CHECKED.replacen("kind = \"bedrock\"", "kind = \"anthropic\"", 1),
            ":9: providers[0].region: region applies only to kind = \"bedrock\"",
        ),
    ];
    for (config, want) in bad {
        let (code, text) = check(&config, &env, true);
        assert_eq!(code, 2, "{want}: {text}");
        assert!(text.contains(want), "{want}: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Real clients.

/// Runs tests/python/anthropic_sdk.py (create, stream, count_tokens) against the gateway.
fn anthropic_sdk(gw: &Gateway, model: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/anthropic_sdk.py");
    let out = std::process::Command::new(support::python())
        .args([script, &gw.url(""), DEMO_SECRET, model, "1024"])
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

/// The official Anthropic SDK on a model routed to Bedrock: its cache marks arrive, its
/// `prompt-caching-2024-07-31` beta (which Bedrock does not list) is left out, usage comes
/// back with the cache reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_on_a_bedrock_route() {
    let s = setup().await;
    s.bedrock.set_usage(AnthUsage {
        input: 12,
        cache_read: 4000,
        cache_write: 0,
        output: 9,
    });
    let r = anthropic_sdk(&s.gw, "claude");
    assert_eq!(r["create"]["content"], BEDROCK_REPLY, "{r}");
    assert_eq!(r["create"]["usage"]["cache_read_input_tokens"], 4000, "{r}");
    assert_eq!(r["stream"]["content"], BEDROCK_REPLY, "{r}");
    assert_eq!(r["stream"]["stop_reason"], "end_turn", "{r}");
    assert_eq!(r["stream"]["usage"]["cache_read_input_tokens"], 4000, "{r}");
    assert!(r["count"]["input_tokens"].as_u64().unwrap() > 0, "{r}");
    let actions: Vec<String> = s
        .bedrock
        .requests()
        .iter()
        .map(|q| q.action.clone())
        .collect();
    assert_eq!(actions, ["invoke", "invoke-with-response-stream"]);
    for q in s.bedrock.requests() {
        let body = q.json();
        assert_eq!(
            body["system"][0]["cache_control"],
            json!({"type":"ephemeral"})
        );
        assert!(body.get("anthropic_beta").is_none(), "{body}");
    }
}

/// Claude Code (`claude -p`, pinned in tests/clients/claude-code) on a model routed to the
/// Bedrock mock: every request it makes answers 200 (the mock refusing what Bedrock refuses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_on_a_bedrock_route() {
    let bedrock = MockBedrock::start(REGION, &[CLAUDE], Some(static_key())).await;
    let body = bedrock_provider(ConfigBody::new().usage_log(), "aws", &bedrock.origin(), "")
        .model_with(
            "cc-bedrock",
            crate::real_clients::CLAUDE_CODE_MODELS,
            &[("aws", CLAUDE)],
        )
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body).envs(&aws_env()).start().await;
    let r = crate::real_clients::claude_p(&gw, "say hi").await;
    assert!(
        r.success,
        "claude -p failed:\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        gw.logs()
    );
    assert!(
        r.stdout.contains(BEDROCK_REPLY),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    crate::real_clients::answered(&gw, "cc-bedrock").await;
    let invoked = bedrock
        .requests()
        .iter()
        .filter(|q| q.action.starts_with("invoke"))
        .count();
    assert!(invoked >= 1);
    assert!(bedrock.requests().iter().all(|q| q.status == 200));
}
