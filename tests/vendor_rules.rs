//! Translated requests that real vendors accept: each test sends what clients really send
//! through the binary to a mock that refuses what the vendor refuses (`support::mock_anthropic`,
//! and `MockUpstream`'s Azure API-version rule), so a lossy or careless translation fails.

mod support;

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
    let body = format!(
        r#"
[log]
usage = "{{DIR}}/usage.jsonl"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{anth}"
api_key_env = "SY_V_ANTH"

[[providers]]
name = "az-old"
kind = "azure"
base_url = "{azure}"
api_version = "2024-06-01"

[[providers]]
name = "az-new"
kind = "azure"
base_url = "{azure}"
api_version = "2024-10-21"

[[models]]
name = "claude"
  [[models.routes]]
  provider = "claude"
  model = "claude-sonnet-4-5"

[[models]]
name = "old-azure"
  [[models.routes]]
  provider = "az-old"
  model = "gpt4o"

[[models]]
name = "new-azure"
  [[models.routes]]
  provider = "az-new"
  model = "gpt4o"

[[teams]]
name = "t"
tpm = 100000

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"
"#,
        anth = anth.origin(),
        azure = azure.origin(),
    );
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
    let lines: Vec<Value> = std::fs::read_to_string(s.gw.dir().join("usage.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_model = |m: &str| lines.iter().find(|l| l["model"] == m).cloned();
    for _ in 0..50 {
        if by_model("new-azure").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let lines: Vec<Value> = std::fs::read_to_string(s.gw.dir().join("usage.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let old = lines.iter().find(|l| l["model"] == "old-azure").unwrap();
    let new = lines.iter().find(|l| l["model"] == "new-azure").unwrap();
    assert_eq!(old["usage_source"], "estimated", "{old}");
    assert!(old["completion_tokens"].as_u64().unwrap() > 0, "{old}");
    assert_eq!(new["usage_source"], "reported", "{new}");
}
