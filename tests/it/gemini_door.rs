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

/// Errors the gateway answers itself at the door are in Google's shape, with the canonical
/// status; a 429 of the gateway's own limits carries a `RetryInfo` and `Retry-After`.
#[tokio::test]
async fn errors_are_in_googles_shape_with_retry_info() {
    let s = setup_with("rpm = 1").await;
    let google = |v: &Value, code: u64, status: &str| {
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["error"]["status"], status, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(
            v["error"].get("reason").is_none(),
            "Google's shape only: {v}"
        );
    };
    let body = turn("hi").to_string();
    let cases: [(&str, &[u8], Option<(&str, &str)>, u16, &str); 7] = [
        (
            "/v1beta/models/nope:generateContent",
            body.as_bytes(),
            None,
            404,
            "NOT_FOUND",
        ),
        (
            "/v1beta/models/gemini-flash:predict",
            body.as_bytes(),
            None,
            404,
            "NOT_FOUND",
        ),
        (
            "/v1beta/tunedModels/t1:generateContent",
            body.as_bytes(),
            None,
            404,
            "NOT_FOUND",
        ),
        (
            "/v1beta/models/gemini-flash:generateContent",
            b"{\"contents\":{}}",
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "/v1beta/models/gemini-flash:generateContent",
            b"not json",
            None,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "/v1beta/models/gemini-flash:generateContent",
            body.as_bytes(),
            Some(("x-goog-api-key", "sk-wrong")),
            401,
            "UNAUTHENTICATED",
        ),
        (
            "/v1/models/gemini-flash:generateContent",
            body.as_bytes(),
            Some(("x-other", "no key")),
            401,
            "UNAUTHENTICATED",
        ),
    ];
    for (path, body, header, code, status) in cases {
        let mut req = s.gw.client().post(s.gw.url(path)).body(body.to_vec());
        req = match header {
            Some((k, v)) => req.header(k, v),
            None => req.header("x-goog-api-key", DEMO_SECRET),
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{path}");
        let v: Value = r.json().await.unwrap();
        google(&v, code as u64, status);
    }
    assert!(s.gem.request_count() == 0, "nothing reached the vendor");
    // rpm = 1: the first passes, the second is the gateway's own 429.
    let (status, _) = post(
        &s.gw,
        "/v1beta/models/gemini-flash:generateContent",
        &turn("one"),
    )
    .await;
    assert_eq!(status, 200);
    let r =
        s.gw.client()
            .post(s.gw.url("/v1beta/models/gemini-flash:generateContent"))
            .header("x-goog-api-key", DEMO_SECRET)
            .json(&turn("two"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let v: Value = r.json().await.unwrap();
    google(&v, 429, "RESOURCE_EXHAUSTED");
    assert_eq!(
        v["error"]["details"],
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{wait}s")}])
    );
}

/// A vendor's error on a native route keeps its message and status, in Google's shape.
#[tokio::test]
async fn a_vendors_error_is_in_googles_shape() {
    let s = setup().await;
    s.gem.set_behaviour(GeminiBehaviour {
        error: Some((400, "INVALID_ARGUMENT".into(), "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576).".into())),
        ..GeminiBehaviour::default()
    });
    let (status, v) = post(
        &s.gw,
        "/v1beta/models/gemini-flash:generateContent",
        &turn("hi"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input token count"),
        "{v}"
    );
}

/// The gateway's content filter answers Google's way: a 200 whose prompt is blocked for
/// SAFETY, the seed's message in `blockReasonMessage`; the vendor is never called. A
/// vendor's own SAFETY answer on a native route comes back as it is.
#[tokio::test]
async fn the_content_filter_is_a_safety_blocked_prompt() {
    let gem = MockGemini::start(GEM_KEY).await;
    let body = ConfigBody::new()
        .usage_log()
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_T_GEM\"")
        .model("gemini-flash", &[("gem", "gemini-2.5-flash")])
        .team("t", "")
        .demo_key("k", "t")
        .text("[[content_filters]]\nname = \"no-keys\"\ndeny = ['(?i)private key']")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_T_GEM", GEM_KEY)
        .start()
        .await;
    let (status, v) = post(
        &gw,
        "/v1beta/models/gemini-flash:generateContent",
        &turn("my PRIVATE KEY is"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    assert_eq!(v["promptFeedback"]["blockReasonMessage"], "This content may violate our content policy, please check https://Slier.ai/terms to learn more. If you believe this to be in error, please contact us at safety@Slier.ai to keep our systems safe and available.");
    assert!(v.get("candidates").is_none());
    let body = turn("my private key").to_string();
    let (status, _, bytes) = post_raw(
        &gw,
        "/v1beta/models/gemini-flash:streamGenerateContent",
        body.as_bytes(),
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v[0]["promptFeedback"]["blockReason"], "SAFETY");
    assert_eq!(gem.request_count(), 0);
    let lines = gw.wait_usage_lines(2).await;
    assert_eq!(lines[0]["reason"], "content_filter", "{}", lines[0]);
    // The vendor's own refusal: its bytes, safety ratings and all.
    gem.set_behaviour(GeminiBehaviour {
        finish_reason: Some("SAFETY".into()),
        text_before: vec!["Sure,".into()],
        ..GeminiBehaviour::default()
    });
    let (status, v) = post(
        &gw,
        "/v1beta/models/gemini-flash:generateContent",
        &turn("hi"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["candidates"][0]["finishReason"], "SAFETY");
    assert_eq!(v["candidates"][0]["safetyRatings"][0]["blocked"], true);
}

/// `GET /v1beta/models[/{model}]`, and `GET /v1/models` for a client that authenticates the
/// Google way, answer in Google's `Model` shape, paged by `pageSize`/`pageToken`; a bearer
/// client on `/v1/models` still gets OpenAI's list.
#[tokio::test]
async fn models_in_googles_shape() {
    let s = setup().await;
    let get = |path: &str, key: Key| {
        let gw = &s.gw;
        let url = match key {
            Key::Query => gw.url(&format!(
                "{path}{}key={DEMO_SECRET}",
                if path.contains('?') { "&" } else { "?" }
            )),
            _ => gw.url(path),
        };
        let mut req = gw.client().get(url);
        req = match key {
            Key::Goog => req.header("x-goog-api-key", DEMO_SECRET),
            Key::Bearer => req.header("authorization", format!("Bearer {DEMO_SECRET}")),
            Key::Query => req,
        };
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for (path, key) in [
        ("/v1beta/models", Key::Goog),
        ("/v1/models", Key::Goog),
        ("/v1/models", Key::Query),
        ("/v1beta/models", Key::Bearer),
    ] {
        let (status, v) = get(path, key).await;
        assert_eq!(status, 200, "{path} {key:?}: {v}");
        let names: Vec<&str> = v["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["models/gemini-flash", "models/echo"],
            "{path} {key:?}"
        );
        assert_eq!(v["models"][0]["displayName"], "gemini-flash");
        assert!(v["models"][0]["supportedGenerationMethods"]
            .as_array()
            .unwrap()
            .contains(&json!("generateContent")));
    }
    let (_, v) = get("/v1beta/models?pageSize=1", Key::Goog).await;
    assert_eq!(v["models"].as_array().unwrap().len(), 1);
    let token = v["nextPageToken"].as_str().unwrap().to_string();
    let (_, v) = get(
        &format!("/v1beta/models?pageSize=1&pageToken={token}"),
        Key::Goog,
    )
    .await;
    assert_eq!(v["models"][0]["name"], "models/echo");
    assert!(v.get("nextPageToken").is_none());
    let (status, v) = get("/v1beta/models/gemini-flash", Key::Goog).await;
    assert_eq!(
        (status, v["name"].as_str()),
        (200, Some("models/gemini-flash"))
    );
    let (status, v) = get("/v1beta/models/nope", Key::Query).await;
    assert_eq!(
        (status, v["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (status, v) = get("/v1/models", Key::Bearer).await;
    assert_eq!(
        (status, v["object"].as_str()),
        (200, Some("list")),
        "OpenAI's for a bearer client"
    );
}

/// `countTokens` passes through to a `gemini` route (the vendor's count, bytes untouched);
/// on a route that cannot count it is the gateway's estimate in Google's shape. Neither is
/// charged.
#[tokio::test]
async fn count_tokens_native_and_estimated() {
    let s = setup().await;
    let body = br#"{"contents":[{"role":"user","parts":[{"text":"one two three"}]}]}"#;
    let (status, _, bytes) = post_raw(
        &s.gw,
        "/v1beta/models/gemini-flash:countTokens",
        body,
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["totalTokens"], 3, "the vendor's count: {v}");
    let (action, _, sent) = s.gem.received().pop().unwrap();
    assert_eq!(
        (action.as_str(), &sent[..]),
        ("gemini-2.5-flash:countTokens", &body[..])
    );
    let (status, _, bytes) = post_raw(&s.gw, "/v1/models/echo:countTokens", body, Key::Query).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v["totalTokens"].as_u64().unwrap() >= 1, "{v}");
}

/// `embedContent` and `batchEmbedContents` pass through to a `gemini` route; the mock
/// answers both in Google's shapes.
#[tokio::test]
async fn embeddings_native_and_mock() {
    let s = setup().await;
    let one = br#"{"content":{"parts":[{"text":"hello world"}]},"taskType":"RETRIEVAL_QUERY"}"#;
    let (status, _, bytes) = post_raw(
        &s.gw,
        "/v1beta/models/gemini-flash:embedContent",
        one,
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes, br#"{"embedding":{"values":[0.5,-1.0]}}"#);
    let (action, _, sent) = s.gem.received().pop().unwrap();
    assert_eq!(
        (action.as_str(), &sent[..]),
        ("gemini-2.5-flash:embedContent", &one[..])
    );
    let batch = br#"{"requests":[{"model":"models/gemini-2.5-flash","content":{"parts":[{"text":"a"}]}},{"model":"models/gemini-2.5-flash","content":{"parts":[{"text":"b"}]}}]}"#;
    let (status, _, bytes) = post_raw(
        &s.gw,
        "/v1beta/models/gemini-flash:batchEmbedContents",
        batch,
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    let (action, _, sent) = s.gem.received().pop().unwrap();
    assert_eq!(
        (action.as_str(), &sent[..]),
        ("gemini-2.5-flash:batchEmbedContents", &batch[..])
    );
    let (status, _, bytes) =
        post_raw(&s.gw, "/v1beta/models/echo:embedContent", one, Key::Goog).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["embedding"]["values"].as_array().unwrap().len(), 8);
    let (status, _, bytes) = post_raw(
        &s.gw,
        "/v1beta/models/echo:batchEmbedContents",
        batch,
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
}
