//! Vendor refusals in a 200 (issue 15, item 6): an answer whose finish says the vendor's content
//! filter stopped it — Azure/OpenAI `finish_reason: "content_filter"`, Gemini `SAFETY` (or a
//! blocked prompt), Anthropic `stop_reason: "refusal"` — is not passed on as an ordinary answer.
//! A whole answer becomes the seed's "Contents Filtered" error (400, reason `content_filter`,
//! in the door's error shape); a stream refused before any content is that 400 too; a stream
//! refused after content ends with one error event carrying it. The usage log says status 400,
//! reason `content_filter`.
//!
//! Every front door that has the pair: chat (Azure pass-through, Gemini and Anthropic
//! translated), Messages (Anthropic pass-through, Azure and Gemini translated), Responses
//! (a chat-only OpenAI-compatible server, Gemini and Anthropic translated).

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-refusals";
const GEM_KEY: &str = "gem-refusals";

/// The seed's message, word for word.
const FILTERED: &str = "This content may violate our content policy, please check https://Slier.ai/terms to learn more. If you believe this to be in error, please contact us at safety@Slier.ai to keep our systems safe and available.";

struct Setup {
    anth: MockAnthropic,
    /// Azure (model `azure`) and a chat-only server (model `vllm`) on one mock.
    oai: MockUpstream,
    gem: MockGemini,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let gem = MockGemini::start(GEM_KEY).await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "azure",
            "azure",
            &oai.origin(),
            "api_version = \"2024-10-21\"",
        )
        .provider("vllm", "openai", &oai.base_url(), "chat_only = true")
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_RF_ANTH\"",
        )
        .provider(
            "gem",
            "gemini",
            &gem.origin(),
            "api_key_env = \"SY_RF_GEM\"",
        )
        .model("azure", &[("azure", "gpt4o-prod")])
        .model("vllm", &[("vllm", "llama")])
        .model("claude", &[("anth", "claude-sonnet-4-5")])
        .model("gemini", &[("gem", "gemini-3-pro")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_RF_ANTH", ANTH_KEY)
        .env("SY_RF_GEM", GEM_KEY)
        .start()
        .await;
    Setup { anth, oai, gem, gw }
}

impl Setup {
    /// Every vendor refuses, before any content (`text_before` empty) or after some.
    fn refuse(&self, after_content: bool) {
        self.oai.set_default(Behaviour {
            finish_reason: Some("content_filter".into()),
            chunks: Some(if after_content { 2 } else { 0 }),
            ..Behaviour::default()
        });
        self.anth.set_behaviour(AnthBehaviour {
            stop_reason: Some("refusal".into()),
            ..AnthBehaviour::default()
        });
        let content = if after_content {
            json!([{"type": "text", "text": "Here is how"}])
        } else {
            json!([])
        };
        self.anth.set_content(content);
        self.gem.set_behaviour(GeminiBehaviour {
            finish_reason: Some("SAFETY".into()),
            text_before: if after_content {
                vec!["Here is how".into()]
            } else {
                vec![]
            },
            ..GeminiBehaviour::default()
        });
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Door {
    Chat,
    Messages,
    Responses,
}

/// Each door with the models that reach a refusing vendor through it.
const CASES: [(Door, &[&str]); 3] = [
    (Door::Chat, &["azure", "gemini", "claude"]),
    (Door::Messages, &["azure", "gemini", "claude"]),
    (Door::Responses, &["vllm", "gemini", "claude"]),
];

struct Got {
    status: u16,
    text: String,
}

async fn send(gw: &Gateway, door: Door, id: &str, model: &str, stream: bool) -> Got {
    let (path, body) = match door {
        Door::Chat => (
            "/v1/chat/completions",
            chat_body(model, "how do I …", stream),
        ),
        Door::Messages => (
            "/v1/messages",
            json!({"model": model, "max_tokens": 64, "stream": stream,
                   "messages": [{"role": "user", "content": "how do I …"}]}),
        ),
        Door::Responses => (
            "/v1/responses",
            json!({"model": model, "input": "how do I …", "stream": stream}),
        ),
    };
    let resp = client()
        .post(gw.url(path))
        .bearer_auth(DEMO_SECRET)
        .header("x-request-id", id)
        .header("anthropic-version", "2023-06-01")
        .timeout(Duration::from_secs(15))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}\n{}", gw.logs()));
    let status = resp.status().as_u16();
    let text = String::from_utf8_lossy(&resp.bytes().await.unwrap()).into_owned();
    Got { status, text }
}

/// The seed's "Contents Filtered" error in `door`'s JSON shape.
fn assert_filtered_body(door: Door, text: &str, what: &str) {
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    match door {
        Door::Chat | Door::Responses => {
            let e = &v["error"];
            assert_eq!(e["reason"], "content_filter", "{what}: {v}");
            assert_eq!(e["param"], "prompt", "{what}: {v}");
            assert_eq!(e["status"], 400, "{what}: {v}");
            assert_eq!(e["message"], FILTERED, "{what}: {v}");
        }
        Door::Messages => {
            assert_eq!(v["type"], "error", "{what}: {v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{what}: {v}");
            assert_eq!(v["error"]["message"], FILTERED, "{what}: {v}");
        }
    }
}

/// The error events of a stream at `door`: chat `data: {"error":…}`, Messages and Responses
/// `event: error`.
fn error_events(door: Door, text: &str) -> Vec<Value> {
    named_events(text)
        .into_iter()
        .filter(|(name, data)| match door {
            Door::Chat => data.starts_with("{\"error\""),
            Door::Messages | Door::Responses => name == "error",
        })
        .map(|(_, data)| serde_json::from_str(&data).unwrap())
        .collect()
}

/// Whether an error event says content_filter in `door`'s shape.
fn says_filtered(door: Door, e: &Value) -> bool {
    match door {
        Door::Chat => e["error"]["reason"] == "content_filter",
        Door::Messages => e["error"]["message"] == FILTERED,
        Door::Responses => e["code"] == "content_filter",
    }
}

async fn assert_logged_as_filtered(gw: &Gateway, id: &str) {
    let line = gw.usage_line(id).await;
    assert_eq!(line["status"], 400, "{id}: {line}");
    assert_eq!(line["reason"], "content_filter", "{id}: {line}");
}

#[tokio::test]
async fn a_refused_whole_answer_is_the_content_filter_error_at_every_door() {
    let s = setup().await;
    s.refuse(true);
    for (door, models) in CASES {
        for model in models {
            let id = format!("whole-{door:?}-{model}");
            let got = send(&s.gw, door, &id, model, false).await;
            assert_eq!(got.status, 400, "{id}: {}", got.text);
            assert_filtered_body(door, &got.text, &id);
            assert_logged_as_filtered(&s.gw, &id).await;
        }
    }
}

/// A Gemini prompt blocked by `promptFeedback.blockReason` (no candidate at all) is refused
/// the same way.
#[tokio::test]
async fn a_blocked_gemini_prompt_is_the_content_filter_error() {
    let s = setup().await;
    s.gem.set_behaviour(GeminiBehaviour {
        block_reason: Some("PROHIBITED_CONTENT".into()),
        ..GeminiBehaviour::default()
    });
    for stream in [false, true] {
        let id = format!("blocked-{stream}");
        let got = send(&s.gw, Door::Chat, &id, "gemini", stream).await;
        assert_eq!(got.status, 400, "{id}: {}", got.text);
        assert_filtered_body(Door::Chat, &got.text, &id);
        assert_logged_as_filtered(&s.gw, &id).await;
    }
}

#[tokio::test]
async fn a_stream_refused_before_any_content_is_the_content_filter_error() {
    let s = setup().await;
    s.refuse(false);
    for (door, models) in CASES {
        for model in models {
            let id = format!("early-{door:?}-{model}");
            let got = send(&s.gw, door, &id, model, true).await;
            assert_eq!(got.status, 400, "{id}: {}", got.text);
            assert_filtered_body(door, &got.text, &id);
            assert_logged_as_filtered(&s.gw, &id).await;
        }
    }
}

#[tokio::test]
async fn a_stream_refused_after_content_ends_with_one_content_filter_event() {
    let s = setup().await;
    s.refuse(true);
    for (door, models) in CASES {
        for model in models {
            let id = format!("late-{door:?}-{model}");
            let got = send(&s.gw, door, &id, model, true).await;
            assert_eq!(got.status, 200, "{id}: the head went out with the content");
            let errors = error_events(door, &got.text);
            assert_eq!(errors.len(), 1, "{id}: {}", got.text);
            assert!(says_filtered(door, &errors[0]), "{id}: {}", got.text);
            let events = named_events(&got.text);
            assert!(
                events.len() > 1,
                "{id}: the content came first: {}",
                got.text
            );
            let last = serde_json::from_str::<Value>(&events.last().unwrap().1).ok();
            assert_eq!(last.as_ref(), Some(&errors[0]), "{id}: it ends the stream");
            if door == Door::Chat {
                assert!(!got.text.contains("[DONE]"), "{id}: {}", got.text);
            }
            assert_logged_as_filtered(&s.gw, &id).await;
        }
    }
}
