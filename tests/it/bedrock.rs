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
