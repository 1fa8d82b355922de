//! Bedrock Converse (`kind = "bedrock"`, every model family but Claude) through the real binary:
//! the chat, Messages and Responses doors translated to `Converse` / `ConverseStream` and back,
//! against `MockBedrock` (SigV4 recomputed on its own, event-stream frames cut at every byte)
//! whose Converse answers are `mock_bedrock_converse`'s, each request checked by the strict
//! Converse validator (`support::strict::converse`).

use crate::support;

use serde_json::{json, Value};
use support::*;

const REGION: &str = "us-east-1";
const NOVA: &str = "us.amazon.nova-pro-v1:0";
const LLAMA: &str = "meta.llama3-1-70b-instruct-v1:0";
const NOVA2: &str = "global.amazon.nova-2-lite-v1:0";
const KEY_ID: &str = "AKIAMOCKCONVERSE01";
const SECRET: &str = "mock/secret+key=converse";
const TOKEN: &str = "mock-session-token-converse";

/// A 1×1 PNG, base64.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// Prices (USD per million tokens) of the `nova` model.
const INPUT: f64 = 0.8;
const OUTPUT: f64 = 3.2;
const CACHED: f64 = 0.2;
const CACHE_WRITE: f64 = 1.0;

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

struct Setup {
    bedrock: MockBedrock,
    gw: Gateway,
}

async fn setup() -> Setup {
    let bedrock = MockBedrock::start(REGION, &[NOVA, LLAMA, NOVA2], Some(static_key())).await;
    let prices = format!(
        "input_usd_per_mtok = {INPUT}\noutput_usd_per_mtok = {OUTPUT}\n\
         cached_input_usd_per_mtok = {CACHED}\ncache_write_usd_per_mtok = {CACHE_WRITE}"
    );
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "aws",
            "bedrock",
            &bedrock.origin(),
            &format!("region = \"{REGION}\""),
        )
        .model_with("nova", &prices, &[("aws", NOVA)])
        .model("llama", &[("aws", LLAMA)])
        .model("nova2", &[("aws", NOVA2)])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body).envs(&aws_env()).start().await;
    Setup { bedrock, gw }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Door {
    Chat,
    Messages,
    Responses,
}

const DOORS: [Door; 3] = [Door::Chat, Door::Messages, Door::Responses];

impl Door {
    fn path(self) -> &'static str {
        match self {
            Door::Chat => "/v1/chat/completions",
            Door::Messages => "/v1/messages",
            Door::Responses => "/v1/responses",
        }
    }
}

async fn post(gw: &Gateway, door: Door, body: &Value) -> reqwest::Response {
    gw.client()
        .post(gw.url(door.path()))
        .header("authorization", format!("Bearer {DEMO_SECRET}"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The spec's cost formula (gateway.md §2b), in USD.
fn cost(prompt: u64, cached: u64, write: u64, completion: u64) -> f64 {
    ((prompt - cached - write) as f64 * INPUT
        + cached as f64 * CACHED
        + write as f64 * CACHE_WRITE
        + completion as f64 * OUTPUT)
        / 1e6
}

fn chat_media_body(stream: bool, history: bool) -> Value {
    let mut messages = vec![
        json!({"role":"system","content":"Be brief."}),
        json!({"role":"user","content":[{"type":"text","text":"What is this?"},
            {"type":"image_url","image_url":{"url":format!("data:image/png;base64,{PNG}")}}]}),
    ];
    if history {
        messages.push(json!({"role":"assistant","content":"A pixel."}));
        messages.push(json!({"role":"user","content":"And now?"}));
    }
    json!({"model":"nova","messages":messages,"stop":["42"],"max_tokens":100,
           "temperature":0.3,"stream":stream,"stream_options":{"include_usage":true}})
}

/// The chat door to a Converse model, whole and streamed: the system prompt (with Nova's
/// `cachePoint`), an image, stop sequences and sampling reach the mock as Converse takes them,
/// signed; the answer, its finish and its usage (cache writes on the first turn, reads on a
/// later one) come back in chat's shape; the usage log prices cache reads and writes apart.
#[tokio::test]
async fn chat_door_to_converse_with_system_image_stops_usage_and_cost() {
    let s = setup().await;
    let said = "Seen 1 image(s), 0 document(s). System: Be brief. The answer is ";
    let r = post(&s.gw, Door::Chat, &chat_media_body(false, false)).await;
    assert_eq!(r.status(), 200, "{}", s.gw.logs());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], said, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cache_write_tokens"],
        100
    );
    let sent = s.bedrock.last();
    assert_eq!(
        (sent.action.as_str(), sent.model.as_str()),
        ("converse", NOVA)
    );
    assert_eq!(sent.header("x-amz-security-token"), Some(TOKEN));
    let body = sent.json();
    assert_eq!(
        body["system"],
        json!([{"text":"Be brief."},{"cachePoint":{"type":"default"}}])
    );
    assert_eq!(
        body["messages"][0]["content"][1],
        json!({"image":{"format":"png","source":{"bytes":PNG}}})
    );
    assert_eq!(
        body["inferenceConfig"],
        json!({"maxTokens":100,"temperature":0.3,"stopSequences":["42"]})
    );
    assert!(body.get("model").is_none() && body.get("stream").is_none());

    let r = post(&s.gw, Door::Chat, &chat_media_body(true, false)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events = parse_sse_json(&text);
    assert_eq!(stream_text(&events), said, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let last = events
        .iter()
        .rev()
        .find(|e| e["usage"].is_object())
        .unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cache_write_tokens"],
        100
    );
    assert_eq!(s.bedrock.last().action, "converse-stream");

    // A later turn reads the cached prefix.
    let r = post(&s.gw, Door::Chat, &chat_media_body(false, true)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 100);

    let lines = s.gw.wait_usage_lines(3).await;
    for (line, (stream, cached, write)) in
        lines
            .iter()
            .zip([(false, 0, 100), (true, 0, 100), (false, 100, 0)])
    {
        assert_eq!(line["stream"], stream, "{line}");
        assert_eq!(line["provider"], "aws", "{line}");
        assert_eq!(line["usage_source"], "reported", "{line}");
        assert_eq!(line["completion_tokens"], 5, "{line}");
        assert_eq!(line["cached_tokens"], cached, "{line}");
        assert_eq!(line["cache_write_tokens"], write, "{line}");
        let prompt = line["prompt_tokens"].as_u64().unwrap();
        assert!(prompt > 100, "{line}");
        let want = cost(prompt, cached, write, 5);
        let got = line["cost_usd"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{line}: want {want}");
    }
}

/// A tool request at `door`: offer `get_weather`, force it.
fn tool_request(door: Door, stream: bool) -> Value {
    let schema = json!({"type":"object","properties":{"city":{"type":"string"}}});
    match door {
        Door::Chat => json!({"model":"nova","stream":stream,
            "messages":[{"role":"user","content":"Weather in Oslo?"}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":schema}}],
            "tool_choice":"required"}),
        Door::Messages => json!({"model":"nova","stream":stream,"max_tokens":200,
            "messages":[{"role":"user","content":"Weather in Oslo?"}],
            "tools":[{"name":"get_weather","description":"Weather","input_schema":schema}],
            "tool_choice":{"type":"any"}}),
        Door::Responses => json!({"model":"nova","stream":stream,"input":"Weather in Oslo?",
            "tools":[{"type":"function","name":"get_weather","description":"Weather","parameters":schema}],
            "tool_choice":"required"}),
    }
}

/// The follow-up at `door` with the call `id` answered.
fn tool_follow_up(door: Door, stream: bool, id: &str) -> Value {
    let mut v = tool_request(door, stream);
    let o = v.as_object_mut().unwrap();
    o.remove("tool_choice");
    match door {
        Door::Chat => {
            o.insert(
                "messages".into(),
                json!([
                {"role":"user","content":"Weather in Oslo?"},
                {"role":"assistant","content":null,"tool_calls":[{"id":id,"type":"function",
                    "function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
                {"role":"tool","tool_call_id":id,"content":"-3 C, snow"}]),
            );
        }
        Door::Messages => {
            o.insert("messages".into(), json!([
                {"role":"user","content":"Weather in Oslo?"},
                {"role":"assistant","content":[{"type":"tool_use","id":id,"name":"get_weather","input":{"city":"Oslo"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":id,"content":"-3 C, snow"}]}]));
        }
        Door::Responses => {
            o.insert("input".into(), json!([
                {"role":"user","content":"Weather in Oslo?"},
                {"type":"function_call","call_id":id,"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"},
                {"type":"function_call_output","call_id":id,"output":"-3 C, snow"}]));
        }
    }
    v
}

/// The tool call a door's answer holds: (id, name, arguments as JSON).
async fn tool_call_of(door: Door, stream: bool, r: reqwest::Response) -> (String, String, Value) {
    let text = r.text().await.unwrap();
    let args = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    match (door, stream) {
        (Door::Chat, false) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            let c = &v["choices"][0]["message"]["tool_calls"][0];
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
            let id = c["id"].as_str().unwrap().to_string();
            let name = c["function"]["name"].as_str().unwrap().to_string();
            (id, name, args(c["function"]["arguments"].as_str().unwrap()))
        }
        (Door::Chat, true) => {
            let events = parse_sse_json(&text);
            let calls: Vec<&Value> = events
                .iter()
                .filter_map(|e| e.pointer("/choices/0/delta/tool_calls/0"))
                .collect();
            let id = calls[0]["id"].as_str().unwrap().to_string();
            let name = calls[0]["function"]["name"].as_str().unwrap().to_string();
            let joined: String = calls
                .iter()
                .filter_map(|c| c["function"]["arguments"].as_str())
                .collect();
            (id, name, args(&joined))
        }
        (Door::Messages, false) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["stop_reason"], "tool_use", "{v}");
            let b = v["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["type"] == "tool_use")
                .unwrap()
                .clone();
            let id = b["id"].as_str().unwrap().to_string();
            (
                id,
                b["name"].as_str().unwrap().to_string(),
                b["input"].clone(),
            )
        }
        (Door::Messages, true) => {
            let events: Vec<Value> = named_events(&text)
                .into_iter()
                .filter_map(|(_, d)| serde_json::from_str(&d).ok())
                .collect();
            let start = events
                .iter()
                .find(|e| e["content_block"]["type"] == "tool_use")
                .unwrap_or_else(|| panic!("{text}"));
            let joined: String = events
                .iter()
                .filter_map(|e| e["delta"]["partial_json"].as_str())
                .collect();
            let b = &start["content_block"];
            (
                b["id"].as_str().unwrap().to_string(),
                b["name"].as_str().unwrap().to_string(),
                args(&joined),
            )
        }
        (Door::Responses, stream) => {
            let v: Value = if stream {
                named_events(&text)
                    .into_iter()
                    .find(|(n, _)| n == "response.completed")
                    .map(|(_, d)| serde_json::from_str::<Value>(&d).unwrap()["response"].clone())
                    .unwrap_or_else(|| panic!("{text}"))
            } else {
                serde_json::from_str(&text).unwrap()
            };
            let item = v["output"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "function_call")
                .unwrap_or_else(|| panic!("{v}"))
                .clone();
            (
                item["call_id"].as_str().unwrap().to_string(),
                item["name"].as_str().unwrap().to_string(),
                args(item["arguments"].as_str().unwrap()),
            )
        }
    }
}

/// The text a door's answer holds.
async fn text_of(door: Door, stream: bool, r: reqwest::Response) -> String {
    let text = r.text().await.unwrap();
    match (door, stream) {
        (Door::Chat, false) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        }
        (Door::Chat, true) => stream_text(&parse_sse_json(&text)),
        (Door::Messages, false) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            v["content"][0]["text"].as_str().unwrap().to_string()
        }
        (Door::Messages, true) => named_events(&text)
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
            .filter_map(|e| e["delta"]["text"].as_str().map(String::from))
            .collect(),
        (Door::Responses, false) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            v["output"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["type"] == "message")
                .flat_map(|i| i["content"].as_array().unwrap().clone())
                .filter_map(|c| c["text"].as_str().map(String::from))
                .collect()
        }
        (Door::Responses, true) => named_events(&text)
            .into_iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
            .filter_map(|e| e["delta"].as_str().map(String::from))
            .collect(),
    }
}

/// Every door, whole and streamed: a forced tool call comes back as the door's tool call
/// (Converse's `any`, the mock's `toolUse`), and the tool's result goes back as a
/// `toolResult` paired with its `toolUse` by id, answered with the text that used it.
#[tokio::test]
async fn every_door_runs_a_tool_loop_on_converse_whole_and_streamed() {
    let s = setup().await;
    for door in DOORS {
        for stream in [false, true] {
            let r = post(&s.gw, door, &tool_request(door, stream)).await;
            assert_eq!(r.status(), 200, "{door:?} {stream}: {}", s.gw.logs());
            let (id, name, args) = tool_call_of(door, stream, r).await;
            assert_eq!(
                (name.as_str(), &args),
                ("get_weather", &json!({"city":"Oslo"})),
                "{door:?} {stream}"
            );
            let sent = s.bedrock.last().json();
            assert_eq!(
                sent["toolConfig"]["toolChoice"],
                json!({"any":{}}),
                "{door:?}"
            );
            assert_eq!(
                sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
                "get_weather"
            );

            let r = post(&s.gw, door, &tool_follow_up(door, stream, &id)).await;
            assert_eq!(r.status(), 200, "{door:?} {stream}: {}", s.gw.logs());
            assert_eq!(
                text_of(door, stream, r).await,
                support::mock_bedrock_converse::CONVERSE_TOOL_ANSWER,
                "{door:?} {stream}"
            );
            let sent = s.bedrock.last().json();
            let use_id = &sent["messages"][1]["content"][0]["toolUse"]["toolUseId"];
            let result_id = &sent["messages"][2]["content"][0]["toolResult"]["toolUseId"];
            assert!(use_id.is_string() && use_id == result_id, "{sent}");
            assert_eq!(
                sent["messages"][2]["content"][0]["toolResult"]["content"],
                json!([{"text":"-3 C, snow"}])
            );
        }
    }
}

/// The Messages and Responses doors get a Converse text answer in their own shape, whole
/// and streamed, with the usage (cache writes included) in their own fields.
#[tokio::test]
async fn messages_and_responses_doors_get_converse_text_and_usage() {
    let s = setup().await;
    let said = "Seen 0 image(s), 0 document(s). System: Be brief. The answer is 42.";
    for stream in [false, true] {
        let m = json!({"model":"nova","max_tokens":64,"stream":stream,"system":"Be brief.",
            "messages":[{"role":"user","content":"Hi"}]});
        let r = post(&s.gw, Door::Messages, &m).await;
        assert_eq!(r.status(), 200, "{}", s.gw.logs());
        assert_eq!(text_of(Door::Messages, stream, r).await, said);
        let rq = json!({"model":"nova","stream":stream,"instructions":"Be brief.","input":"Hi"});
        let r = post(&s.gw, Door::Responses, &rq).await;
        assert_eq!(r.status(), 200, "{}", s.gw.logs());
        assert_eq!(text_of(Door::Responses, stream, r).await, said);
    }
    let lines = s.gw.wait_usage_lines(4).await;
    for line in &lines {
        assert_eq!(line["cache_write_tokens"], 100, "{line}");
        assert_eq!(line["completion_tokens"], 5, "{line}");
        assert_eq!(line["usage_source"], "reported", "{line}");
    }
}

/// What Converse cannot take is a 400 in the door's shape naming the field and the vendor
/// kind, before Bedrock is called; what the docs say to adjust is adjusted and said.
#[tokio::test]
async fn what_converse_cannot_take_is_refused_and_adjustments_are_said() {
    let s = setup().await;
    let before = s.bedrock.count();
    let mut hot = chat_media_body(false, false);
    hot["temperature"] = json!(1.5);
    let r = post(&s.gw, Door::Chat, &hot).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`temperature`") && message.contains("bedrock"),
        "{v}"
    );
    let by_url = json!({"model":"nova","max_tokens":50,"messages":[{"role":"user","content":[
        {"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}}]}]});
    let r = post(&s.gw, Door::Messages, &by_url).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("URL"),
        "{v}"
    );
    assert_eq!(s.bedrock.count(), before, "Bedrock was not called");

    // Llama takes no forced tool choice and no reasoning setting: `auto`, both said.
    let mut body = tool_request(Door::Chat, false);
    body["model"] = json!("llama");
    body["reasoning_effort"] = json!("high");
    let r = post(&s.gw, Door::Chat, &body).await;
    assert_eq!(r.status(), 200, "{}", s.gw.logs());
    assert_eq!(
        r.headers()["x-switchyard-adjusted"].to_str().unwrap(),
        "tool_choice, reasoning_effort"
    );
    let sent = s.bedrock.last();
    assert_eq!(sent.model, LLAMA);
    let sent = sent.json();
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"auto":{}}));
    assert!(sent.get("additionalModelRequestFields").is_none());
    assert!(sent.get("system").is_none());
}

/// Bedrock's errors at each door: a too-long input is the door's context-length error, a
/// throttle its rate-limit error, and an exception frame mid-stream the door's stream error.
#[tokio::test]
async fn bedrock_errors_reach_each_door_in_its_shape() {
    let s = setup().await;
    s.bedrock.set_behaviour(BedrockBehaviour {
        error: Some((
            400,
            "ValidationException".into(),
            "Input is too long for requested model.".into(),
        )),
        ..BedrockBehaviour::default()
    });
    let r = post(&s.gw, Door::Chat, &chat_media_body(false, false)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");
    let m = json!({"model":"nova","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]});
    let r = post(&s.gw, Door::Messages, &m).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("prompt is too long"),
        "{v}"
    );

    s.bedrock.set_behaviour(BedrockBehaviour {
        error: Some((
            429,
            "ThrottlingException".into(),
            "Too many requests, please wait before trying again.".into(),
        )),
        ..BedrockBehaviour::default()
    });
    let r = post(&s.gw, Door::Messages, &m).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");

    s.bedrock.set_behaviour(BedrockBehaviour {
        exception_after: Some((1, "modelStreamErrorException".into())),
        ..BedrockBehaviour::default()
    });
    let mut streamed = m.clone();
    streamed["stream"] = json!(true);
    let r = post(&s.gw, Door::Messages, &streamed).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events = named_events(&text);
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("error"),
        "{text}"
    );
    assert!(!text.contains("message_stop"), "{text}");
}

/// A chat door's PDF (a `file` part) reaches Converse as a `document` block, its name made one
/// Converse takes (said in `x-switchyard-adjusted`); Nova 2's reasoning is asked through
/// `additionalModelRequestFields.reasoningConfig` and its reasoning text comes back as
/// `reasoning_content`, whole and streamed.
#[tokio::test]
async fn documents_and_nova_reasoning_travel() {
    let s = setup().await;
    let body = json!({"model":"nova","messages":[{"role":"user","content":[
        {"type":"text","text":"Sum it up"},
        {"type":"file","file":{"filename":"q3_report.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQK"}}]}]});
    let r = post(&s.gw, Door::Chat, &body).await;
    assert_eq!(r.status(), 200, "{}", s.gw.logs());
    assert_eq!(
        r.headers()["x-switchyard-adjusted"].to_str().unwrap(),
        "file.filename"
    );
    let v: Value = r.json().await.unwrap();
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Seen 0 image(s), 1 document(s)."),
        "{v}"
    );
    assert_eq!(
        s.bedrock.last().json()["messages"][0]["content"][1],
        json!({"document":{"format":"pdf","name":"q3 report pdf","source":{"bytes":"JVBERi0xLjQK"}}})
    );

    for stream in [false, true] {
        let body = json!({"model":"nova2","reasoning_effort":"high","stream":stream,
            "messages":[{"role":"user","content":"Think first."}]});
        let r = post(&s.gw, Door::Chat, &body).await;
        assert_eq!(r.status(), 200, "{}", s.gw.logs());
        let text = r.text().await.unwrap();
        let reasoning: String = if stream {
            parse_sse_json(&text)
                .iter()
                .filter_map(|e| e.pointer("/choices/0/delta/reasoning_content"))
                .filter_map(Value::as_str)
                .collect()
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            v["choices"][0]["message"]["reasoning_content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(reasoning, "The user asks; I answer.", "{text}");
        let sent = s.bedrock.last();
        assert_eq!(sent.model, NOVA2);
        assert_eq!(
            sent.json()["additionalModelRequestFields"],
            json!({"reasoningConfig":{"type":"enabled","maxReasoningEffort":"high"}})
        );
    }
}
