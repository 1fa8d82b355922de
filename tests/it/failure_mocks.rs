//! Tests of the failure mocks themselves (no gateway): each vendor mock fails the way the
//! stream-loop and refusal tests (`stream_failover.rs`, `refusals.rs`) rely on, so those tests
//! fail only when the gateway does.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "anth-mock-key";
const GEM_KEY: &str = "gem-mock-key";

fn anthropic_request(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 16, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn post_anthropic(anth: &MockAnthropic, stream: bool) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", anth.origin()))
        .header("x-api-key", ANTH_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_request(stream))
        .send()
        .await
        .unwrap()
}

/// Event names of an SSE body, in order.
fn event_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn openai_error_chunk_before_and_after_content() {
    let mock = MockUpstream::start().await;
    for (k, contents) in [(0usize, vec![""]), (2, vec!["", "tok0 ", "tok1 "])] {
        mock.set_default(Behaviour {
            error_event_after: Some(k),
            ..Behaviour::default()
        });
        let text = client()
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&chat_body("m", "hi", true))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let events = parse_sse_json(&text);
        let (last, rest) = events.split_last().unwrap();
        assert_eq!(last["error"]["message"], "busy", "{text}");
        let got: Vec<&str> = rest
            .iter()
            .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(got, contents, "{text}");
        assert!(!text.contains("[DONE]"));
    }
    // content_filter as the finish, streamed and not.
    mock.set_default(Behaviour {
        finish_reason: Some("content_filter".into()),
        ..Behaviour::default()
    });
    let whole: Value = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body("m", "hi", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["choices"][0]["finish_reason"], "content_filter");
    let text = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(parse_sse_json(&text)
        .iter()
        .any(|e| e["choices"][0]["finish_reason"] == "content_filter"));
}

#[tokio::test]
async fn openai_trickle_goes_on_past_any_chunk_count() {
    let mock = MockUpstream::start().await;
    mock.set_default(Behaviour::trickle(20));
    let resp = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while parse_sse(&seen).len() < 12 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("an event every 20 ms")
            .expect("the trickle does not end")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("tok10 "), "{seen}");
}

#[tokio::test]
async fn anthropic_error_event_before_and_after_content() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    anth.set_behaviour(AnthBehaviour {
        error_after: Some(0),
        ..AnthBehaviour::default()
    });
    let text = post_anthropic(&anth, true).await.text().await.unwrap();
    assert_eq!(event_names(&text), ["message_start", "ping", "error"]);
    assert!(text.ends_with(ANTHROPIC_OVERLOADED_EVENT), "{text}");
    anth.set_behaviour(AnthBehaviour {
        error_after: Some(1),
        ..AnthBehaviour::default()
    });
    let text = post_anthropic(&anth, true).await.text().await.unwrap();
    assert_eq!(
        event_names(&text),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(anth.message_count(), 2);
}

#[tokio::test]
async fn anthropic_stalls_and_trickles() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    // Silent after the first delta: the body does not end.
    anth.set_behaviour(AnthBehaviour {
        stall_after: Some(1),
        ..AnthBehaviour::default()
    });
    let mut body = post_anthropic(&anth, true).await.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        let chunk = body.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let more = tokio::time::timeout(Duration::from_millis(300), body.next()).await;
    assert!(more.is_err(), "silence after the first delta, got {more:?}");

    // A delta every 20 ms, past the answer's own end.
    anth.set_behaviour(AnthBehaviour {
        trickle_ms: Some(20),
        ..AnthBehaviour::default()
    });
    let mut body = post_anthropic(&anth, true).await.bytes_stream();
    let mut seen = String::new();
    while event_names(&seen).len() < 10 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("a delta every 20 ms")
            .expect("the trickle does not end")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("message_stop"), "{seen}");

    // Silent before the head.
    anth.set_behaviour(AnthBehaviour {
        stall_headers_ms: Some(2000),
        ..AnthBehaviour::default()
    });
    let head = tokio::time::timeout(Duration::from_millis(300), post_anthropic(&anth, false));
    assert!(head.await.is_err(), "no head during the stall");
}

#[tokio::test]
async fn anthropic_refusal_whole_and_streamed() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    anth.set_behaviour(AnthBehaviour {
        stop_reason: Some("refusal".into()),
        ..AnthBehaviour::default()
    });
    let whole: Value = post_anthropic(&anth, false).await.json().await.unwrap();
    assert_eq!(whole["stop_reason"], "refusal");
    let text = post_anthropic(&anth, true).await.text().await.unwrap();
    assert!(text.contains(r#""stop_reason":"refusal""#), "{text}");
}

async fn post_gemini(gem: &MockGemini, stream: bool) -> reqwest::Response {
    let action = if stream {
        "gemini-3-pro:streamGenerateContent?alt=sse"
    } else {
        "gemini-3-pro:generateContent"
    };
    client()
        .post(format!("{}/v1beta/models/{action}", gem.origin()))
        .header("x-goog-api-key", GEM_KEY)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn gemini_retry_info_filters_and_blocks() {
    let gem = MockGemini::start(GEM_KEY).await;
    gem.set_behaviour(GeminiBehaviour {
        retry_delay: Some("45.5s".into()),
        ..GeminiBehaviour::default()
    });
    let resp = post_gemini(&gem, false).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_none());
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["status"], "RESOURCE_EXHAUSTED");
    let info = e["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
        .unwrap();
    assert_eq!(info["retryDelay"], "45.5s");

    gem.set_behaviour(GeminiBehaviour {
        finish_reason: Some("SAFETY".into()),
        text_before: vec!["Here".into(), " is how".into()],
        ..GeminiBehaviour::default()
    });
    let text = post_gemini(&gem, true).await.text().await.unwrap();
    let events = parse_sse_json(&text);
    assert_eq!(events.len(), 3, "{text}");
    assert_eq!(
        events[1]["candidates"][0]["content"]["parts"][0]["text"],
        " is how"
    );
    assert_eq!(events[2]["candidates"][0]["finishReason"], "SAFETY");
    let whole: Value = post_gemini(&gem, false).await.json().await.unwrap();
    assert_eq!(whole["candidates"][0]["finishReason"], "SAFETY");
    assert_eq!(
        whole["candidates"][0]["content"]["parts"][1]["text"],
        " is how"
    );

    gem.set_behaviour(GeminiBehaviour {
        block_reason: Some("PROHIBITED_CONTENT".into()),
        ..GeminiBehaviour::default()
    });
    let whole: Value = post_gemini(&gem, false).await.json().await.unwrap();
    assert_eq!(whole["promptFeedback"]["blockReason"], "PROHIBITED_CONTENT");
    assert!(whole.get("candidates").is_none());
    assert_eq!(gem.request_count(), 4);
}
