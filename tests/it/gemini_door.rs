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
    /// (path, body, the key header instead of the demo key, status, Google's status).
    type Case<'a> = (&'a str, &'a [u8], Option<(&'a str, &'a str)>, u16, &'a str);
    let cases: [Case; 7] = [
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

/// A `gemini` route that fails before any content (a 503, or a stream whose first element is
/// an error) falls back to a Vertex Gemini route, in both stream framings: the client gets
/// Vertex's answer, and Vertex got the client's bytes untouched on Google's publisher path.
#[tokio::test]
async fn fallback_from_gemini_to_vertex_before_content() {
    let gem = MockGemini::start(GEM_KEY).await;
    let vx = MockVertex::start("us-east5").await;
    let body = ConfigBody::new()
        .usage_log()
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_T_GEM\"")
        .text(&vx.provider("vx", ""))
        .model_with(
            "gemini-flash",
            "fallbacks = [\"vx-gemini\"]",
            &[("gem", "gemini-2.5-flash")],
        )
        .model("vx-gemini", &[("vx", "gemini-3-pro")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_T_GEM", GEM_KEY)
        .start()
        .await;
    let sent = turn("What is the weather in Oslo?").to_string();
    let failures = [
        GeminiBehaviour {
            error: Some((503, "UNAVAILABLE".into(), "The model is overloaded.".into())),
            ..GeminiBehaviour::default()
        },
        GeminiBehaviour {
            raw: Some(("application/json".into(), r#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#.into())),
            ..GeminiBehaviour::default()
        },
    ];
    let mut n = 0;
    for failure in failures {
        gem.set_behaviour(failure);
        for (path, query) in [
            ("/v1beta/models/gemini-flash:generateContent", None),
            ("/v1beta/models/gemini-flash:streamGenerateContent", None),
            (
                "/v1beta/models/gemini-flash:streamGenerateContent?alt=sse",
                Some("alt=sse"),
            ),
        ] {
            let (status, _, bytes) = post_raw(&gw, path, sent.as_bytes(), Key::Goog).await;
            let text = String::from_utf8_lossy(&bytes).to_string();
            assert_eq!(status, 200, "{path}: {text}");
            assert!(text.contains(GEMINI_SIGNATURE), "Vertex's answer: {text}");
            let r = vx.last();
            let method = path.rsplit_once(':').unwrap().1.split('?').next().unwrap();
            assert_eq!(
                r.path,
                format!("/v1/projects/{VERTEX_PROJECT}/locations/us-east5/publishers/google/models/gemini-3-pro:{method}")
            );
            assert_eq!(r.query.as_deref(), query, "{path}");
            assert_eq!(&r.body[..], sent.as_bytes(), "the client's bytes: {path}");
            n += 1;
        }
    }
    let lines = gw.wait_usage_lines(n).await;
    for l in &lines {
        assert_eq!(
            (l["status"].as_u64(), l["provider"].as_str()),
            (Some(200), Some("vx")),
            "{l}"
        );
        assert_eq!(l["prompt_tokens"], 10, "Vertex's usageMetadata: {l}");
    }
}

/// A stream cut after its content began ends as Google ends one: with an error object as the
/// array's last element (the array closed), or as the last `alt=sse` event.
#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_a_google_error() {
    let s = setup().await;
    let first =
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Oslo is"}]},"index":0}]}"#;
    let body = turn("hi").to_string();
    for (sse, raw) in [
        (false, format!("[{first}\r\n")),
        (true, format!("data: {first}\r\n\r\n")),
    ] {
        s.gem.set_behaviour(GeminiBehaviour {
            raw: Some((
                if sse {
                    "text/event-stream"
                } else {
                    "application/json"
                }
                .into(),
                raw,
            )),
            ..GeminiBehaviour::default()
        });
        let path = match sse {
            true => "/v1beta/models/gemini-flash:streamGenerateContent?alt=sse",
            false => "/v1beta/models/gemini-flash:streamGenerateContent",
        };
        let (status, _, bytes) = post_raw(&s.gw, path, body.as_bytes(), Key::Goog).await;
        assert_eq!(status, 200);
        let text = String::from_utf8(bytes).unwrap();
        if sse {
            let last = text.trim_end().rsplit("data: ").next().unwrap();
            let v: Value = serde_json::from_str(last).unwrap();
            assert_eq!(v["error"]["status"], "UNAVAILABLE", "{text}");
        } else {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(
                v[0]["candidates"][0]["content"]["parts"][0]["text"],
                "Oslo is"
            );
            assert_eq!(v[1]["error"]["code"], 502, "{text}");
        }
    }
}

/// Traces, the usage log, `/metrics`, the gateway's own output and its answers never show a
/// key sent in the query; the upstream request carries the provider's key, never the
/// client's; the door is a metric label.
#[tokio::test]
async fn a_query_key_is_nowhere_and_the_door_is_a_label() {
    use std::sync::{Arc, Mutex};
    let spans: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let gem = MockGemini::start(GEM_KEY).await;
    let body = ConfigBody::new()
        .usage_log()
        .text(&format!(
            "[telemetry]\nendpoint = \"http://{otlp}\"\nservice_name = \"gw\""
        ))
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_T_GEM\"")
        .model("gemini-flash", &[("gem", "gemini-2.5-flash")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_T_GEM", GEM_KEY)
        .env("RUST_LOG", "debug")
        .start()
        .await;
    let sent = turn("hi").to_string();
    let mut answers = Vec::new();
    for path in [
        "/v1beta/models/gemini-flash:generateContent",
        "/v1beta/models/gemini-flash:streamGenerateContent?alt=sse",
        "/v1beta/models/nope:generateContent",
        "/v1beta/models/gemini-flash:nothing",
    ] {
        let (status, headers, bytes) = post_raw(&gw, path, sent.as_bytes(), Key::Query).await;
        answers.push(format!(
            "{status} {headers:?} {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    assert!(
        answers[0].starts_with("200") && answers[2].starts_with("404"),
        "{answers:?}"
    );
    for (i, head) in gem.heads().iter().enumerate() {
        assert_eq!(head["x-goog-api-key"], GEM_KEY);
        assert!(
            !format!("{head:?}").contains(DEMO_SECRET),
            "request {i} upstream"
        );
    }
    for (_, query, _) in gem.received() {
        assert!(
            query.as_deref().is_none_or(|q| !q.contains("key")),
            "{query:?}"
        );
    }
    let metrics = gw
        .metric_until(
            "switchyard_door_requests_total",
            &[("door", "gemini"), ("status", "200")],
            2.0,
        )
        .await;
    assert_eq!(metrics, 2.0);
    let lines = gw.wait_usage_lines(4).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while spans.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let traces = spans.lock().unwrap().join("\n");
    assert!(
        traces.contains("generateContent"),
        "the span names the path: {traces}"
    );
    let everything = [
        ("answers", answers.join("\n")),
        ("usage log", format!("{lines:?}")),
        ("metrics", gw.metrics().await),
        ("traces", traces),
        ("gateway output", gw.logs()),
    ];
    for (what, text) in everything {
        assert!(
            !text.contains(DEMO_SECRET),
            "the {what} show the query's key"
        );
    }
}

/// A client that leaves before its answer began closes the vendor's connection at once, in
/// both stream framings and whole; the request is logged 499.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_the_vendor() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let closed: Arc<Mutex<Vec<Option<Instant>>>> = Arc::default();
    let seen = closed.clone();
    let (origin, _) = support::raw_vendor::serve(move |mut sock, _| {
        let seen = seen.clone();
        async move {
            if support::raw_vendor::read_request(&mut sock).await.is_none() {
                return;
            }
            let index = {
                let mut c = seen.lock().unwrap();
                c.push(None);
                c.len() - 1
            };
            let mut buf = [0u8; 1024];
            while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            seen.lock().unwrap()[index] = Some(Instant::now());
        }
    })
    .await;
    let origin = origin.trim_end_matches("/v1").to_string();
    let body = ConfigBody::new()
        .usage_log()
        .provider("gem", "gemini", &origin, "api_key_env = \"SY_T_GEM\"")
        .model("gemini-flash", &[("gem", "gemini-2.5-flash")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_T_GEM", GEM_KEY)
        .start()
        .await;
    let sent = turn("write a long essay").to_string();
    let paths = [
        "/v1beta/models/gemini-flash:generateContent",
        "/v1beta/models/gemini-flash:streamGenerateContent",
        "/v1beta/models/gemini-flash:streamGenerateContent?alt=sse",
    ];
    for (n, path) in paths.iter().enumerate() {
        let mut conn = tokio::net::TcpStream::connect(gw.api_addr()).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: gw\r\nx-goog-api-key: {DEMO_SECRET}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{sent}",
            sent.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while closed.lock().unwrap().len() <= n {
            assert!(
                Instant::now() < deadline,
                "{path}: never reached the vendor"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let left = Instant::now();
        drop(conn);
        let deadline = Instant::now() + Duration::from_secs(2);
        while closed.lock().unwrap()[n].is_none() {
            assert!(
                Instant::now() < deadline,
                "{path}: the vendor's connection stayed open"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let after = closed.lock().unwrap()[n]
            .unwrap()
            .saturating_duration_since(left);
        println!("{path}: vendor connection closed {after:?} after the client's");
        let lines = gw.wait_usage_lines(n + 1).await;
        assert_eq!(lines[n]["status"], 499, "{}", lines[n]);
    }
}

/// A Vertex Gemini route is native too: generate (bytes both ways), both stream framings,
/// `countTokens` on Google's publisher path, and embeddings through Vertex's `:predict`
/// answered in the Gemini API's shapes.
#[tokio::test]
async fn vertex_gemini_is_native() {
    let vx = MockVertex::start("us-east5").await;
    let body = ConfigBody::new()
        .usage_log()
        .text(&vx.provider("vx", ""))
        .model("vx-gemini", &[("vx", "gemini-3-pro")])
        .model("vx-embed", &[("vx", "gemini-embedding-001")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&body).await;
    let base = format!("/v1/projects/{VERTEX_PROJECT}/locations/us-east5/publishers/google/models");
    let sent = turn("What is the weather in Oslo?").to_string();
    for (path, method, query) in [
        (
            "/v1beta/models/vx-gemini:generateContent",
            "gemini-3-pro:generateContent",
            None,
        ),
        (
            "/v1beta/models/vx-gemini:streamGenerateContent",
            "gemini-3-pro:streamGenerateContent",
            None,
        ),
        (
            "/v1/models/vx-gemini:streamGenerateContent?alt=sse",
            "gemini-3-pro:streamGenerateContent",
            Some("alt=sse"),
        ),
        (
            "/v1beta/models/vx-gemini:countTokens",
            "gemini-3-pro:countTokens",
            None,
        ),
    ] {
        let (status, _, bytes) = post_raw(&gw, path, sent.as_bytes(), Key::Goog).await;
        let text = String::from_utf8_lossy(&bytes).to_string();
        assert_eq!(status, 200, "{path}: {text}");
        let r = vx.last();
        assert_eq!(
            (r.path.as_str(), r.query.as_deref()),
            (format!("{base}/{method}").as_str(), query),
            "{path}"
        );
        assert_eq!(&r.body[..], sent.as_bytes(), "{path}");
        assert!(r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ") && !a.contains(DEMO_SECRET)));
        if method.ends_with("countTokens") {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["totalTokens"], 6, "{text}");
        } else {
            assert!(text.contains(GEMINI_SIGNATURE), "{path}: {text}");
        }
    }
    let one = br#"{"content":{"parts":[{"text":"hello world"}]},"taskType":"RETRIEVAL_QUERY"}"#;
    let (status, _, bytes) =
        post_raw(&gw, "/v1beta/models/vx-embed:embedContent", one, Key::Goog).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes, br#"{"embedding":{"values":[0.5,-1.0]}}"#);
    let r = vx.last();
    assert_eq!(r.path, format!("{base}/gemini-embedding-001:predict"));
    assert_eq!(
        r.json(),
        json!({"instances": [{"content": "hello world", "task_type": "RETRIEVAL_QUERY"}]})
    );
    let batch = br#"{"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"a"}]}}]}"#;
    let (status, _, bytes) = post_raw(
        &gw,
        "/v1beta/models/vx-embed:batchEmbedContents",
        batch,
        Key::Goog,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes, br#"{"embeddings":[{"values":[0.5,-1.0]}]}"#);
}
