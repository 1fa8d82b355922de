//! The Gemini front door (#30 items 1–5) through the real binary: Google's Gemini API paths
//! (`/v1beta/models/{model}:generateContent` and the other calls, the `/v1/` ones too), keys
//! as Google's clients send them, native pass-through to `gemini` ([`MockGemini`]) and Vertex
//! Gemini ([`MockVertex`]) routes in both stream framings, usage read from `usageMetadata`,
//! errors in Google's shape, the model list, token counting and embeddings.

use crate::support;

use serde_json::{json, Value};
use support::*;

const GEM_KEY: &str = "gem-provider-key";

/// A first turn, as Google's SDKs write it (snake_case where they send it so).
fn turn(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}],
           "generation_config": {"max_output_tokens": 64}})
}

struct Setup {
    gem: MockGemini,
    gw: Gateway,
}

/// A gateway with `gemini-flash` on a `gemini` provider (and `echo` on the built-in mock).
async fn setup() -> Setup {
    setup_with("").await
}

async fn setup_with(team_extra: &str) -> Setup {
    let gem = MockGemini::start(GEM_KEY).await;
    let body = ConfigBody::new()
        .usage_log()
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_T_GEM\"")
        .mock_provider("mock")
        .model("gemini-flash", &[("gem", "gemini-2.5-flash")])
        .model("echo", &[("mock", "echo-1")])
        .team("t", team_extra)
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_T_GEM", GEM_KEY)
        .start()
        .await;
    Setup { gem, gw }
}

/// How a test sends its key.
#[derive(Clone, Copy, Debug)]
enum Key {
    Goog,
    Query,
    Bearer,
}

/// POSTs `body` (raw bytes) at `path` with the demo key sent as `key` says: status, headers,
/// body bytes.
async fn post_raw(
    gw: &Gateway,
    path: &str,
    body: &[u8],
    key: Key,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let url = match key {
        Key::Query if path.contains('?') => gw.url(&format!("{path}&key={DEMO_SECRET}")),
        Key::Query => gw.url(&format!("{path}?key={DEMO_SECRET}")),
        _ => gw.url(path),
    };
    let mut req = gw
        .client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    req = match key {
        Key::Goog => req.header("x-goog-api-key", DEMO_SECRET),
        Key::Bearer => req.header("authorization", format!("Bearer {DEMO_SECRET}")),
        Key::Query => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, bytes) = post_raw(gw, path, body.to_string().as_bytes(), Key::Goog).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The answer with unknown fields, a thought signature, grounding and safety ratings: what
/// must come back untouched.
const RICH_ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Oslo is cold.","thoughtSignature":"c2lnLTE_-w=="}]},"finishReason":"STOP","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"NEGLIGIBLE"}],"groundingMetadata":{"webSearchQueries":["oslo weather"]},"futureField":{"x":[1,2]}}],"usageMetadata":{"promptTokenCount":11,"candidatesTokenCount":4,"thoughtsTokenCount":3,"cachedContentTokenCount":2,"totalTokenCount":18},"modelVersion":"gemini-2.5-flash","responseId":"r-1"}"#;

/// The client's body goes upstream byte for byte (odd spacing, the SDKs' snake_case,
/// URL-safe base64), only the path's model changed and the client's key gone;
/// the vendor's answer comes back byte for byte; usage is read from `usageMetadata`.
#[tokio::test]
async fn native_generate_is_bytes_both_ways() {
    let s = setup().await;
    s.gem.set_behaviour(GeminiBehaviour {
        raw: Some(("application/json".into(), RICH_ANSWER.into())),
        ..GeminiBehaviour::default()
    });
    let body = br#"{ "contents" : [{"role":"user","parts":[{"text":"Weather in Oslo?"},{"inline_data":{"mime_type":"image/png","data":"iVBORw0KGgo_-A=="}}]}],
        "generation_config":{"max_output_tokens":64}, "safety_settings": [{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}] }"#;
    for key in [Key::Goog, Key::Query, Key::Bearer] {
        for version in ["v1beta", "v1"] {
            let path = format!("/{version}/models/gemini-flash:generateContent");
            let (status, headers, answer) = post_raw(&s.gw, &path, body, key).await;
            assert_eq!(
                status,
                200,
                "{key:?} {version}: {}",
                String::from_utf8_lossy(&answer)
            );
            assert_eq!(answer, RICH_ANSWER.as_bytes(), "{key:?} {version}");
            assert!(
                headers.contains_key("x-ratelimit-limit-requests")
                    || headers.contains_key("x-request-id")
            );
            let (action, query, sent) = s.gem.received().pop().unwrap();
            assert_eq!(action, "gemini-2.5-flash:generateContent");
            assert_eq!(query, None, "no client key, no alt");
            assert_eq!(&sent[..], &body[..], "{key:?} {version}");
            let head = s.gem.heads().pop().unwrap();
            assert_eq!(head["x-goog-api-key"], GEM_KEY);
            assert!(head.get("authorization").is_none());
        }
    }
    let lines = s.gw.wait_usage_lines(6).await;
    let last = lines.last().unwrap();
    assert_eq!(last["prompt_tokens"], 11, "{last}");
    assert_eq!(
        last["completion_tokens"], 7,
        "candidates + thoughts: {last}"
    );
    assert_eq!(
        (
            last["cached_tokens"].as_u64(),
            last["reasoning_tokens"].as_u64()
        ),
        (Some(2), Some(3)),
        "{last}"
    );
    assert_eq!(last["status"], 200);
}

/// `streamGenerateContent?alt=sse` passes the vendor's events through as they came; without
/// `alt=sse` the vendor is asked Google's JSON array and its bytes pass through too; both are
/// metered from `usageMetadata`.
#[tokio::test]
async fn native_streams_in_both_framings() {
    let s = setup().await;
    let body = turn("What is the weather in Oslo?").to_string();
    for (sse, framing) in [(true, "sse"), (false, "array")] {
        let path = match sse {
            true => "/v1beta/models/gemini-flash:streamGenerateContent?alt=sse",
            false => "/v1beta/models/gemini-flash:streamGenerateContent",
        };
        let (status, headers, answer) = post_raw(&s.gw, path, body.as_bytes(), Key::Query).await;
        let text = String::from_utf8(answer).unwrap();
        assert_eq!(status, 200, "{framing}: {text}");
        let (_, query, sent) = s.gem.received().pop().unwrap();
        assert_eq!(&sent[..], body.as_bytes());
        let content_type = headers["content-type"].to_str().unwrap();
        if sse {
            assert_eq!(query.as_deref(), Some("alt=sse"));
            assert!(
                content_type.starts_with("text/event-stream"),
                "{content_type}"
            );
            assert!(text.starts_with("data: {\"candidates\""), "{text}");
        } else {
            assert_eq!(query, None, "the client's key is not forwarded");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                v[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"],
                GEMINI_SIGNATURE
            );
        }
    }
    let lines = s.gw.wait_usage_lines(2).await;
    for l in &lines {
        assert_eq!(
            (l["prompt_tokens"].as_u64(), l["completion_tokens"].as_u64()),
            (Some(10), Some(5)),
            "{l}"
        );
        assert_eq!(l["stream"], true, "{l}");
    }
}

/// The built-in mock answers the door, in Google's shapes: whole, and streamed in both
/// framings.
#[tokio::test]
async fn the_mock_answers_the_door() {
    let s = setup().await;
    let (status, v) = post(
        &s.gw,
        "/v1beta/models/echo:generateContent",
        &turn("ping pong"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let text = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("ping pong"), "{text}");
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert!(v["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    let body = turn("ping").to_string();
    let (status, _, bytes) = post_raw(
        &s.gw,
        "/v1beta/models/echo:streamGenerateContent",
        body.as_bytes(),
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v.as_array().unwrap().len() > 2, "{v}");
    let (status, _, bytes) = post_raw(
        &s.gw,
        "/v1beta/models/echo:streamGenerateContent?alt=sse",
        body.as_bytes(),
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("data: {") && text.contains("\"finishReason\":\"STOP\""),
        "{text}"
    );
}
