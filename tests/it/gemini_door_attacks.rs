//! The Gemini door against a hostile newcomer (#30): odd paths, keys given twice or in two
//! places, `alt` values, bodies that are not what Google's reference describes, a secret
//! `?key=` that must show nowhere (logs, usage log, metrics, traces, answers' bodies and
//! headers), the wrong HTTP method. Each bad request must get a clear 4xx in Google's error
//! shape, `{"error":{"code","message","status"}}` with `code` the HTTP status and `status` a
//! canonical `google.rpc.Code` name (ai.google.dev, Gemini API "Troubleshooting guide";
//! google/rpc/code.proto), in bounded time, and never a 5xx, a panic or a hang; the gateway
//! serves the next request afterwards. Query parameters are Google's system parameters
//! (cloud.google.com/apis/docs/system-parameters: `key`/`$key`, `alt`/`$alt` with `json`,
//! `media`, `proto`, `sse`).
//!
//! One gateway per test: `flash` routed natively to a strict [`MockGemini`] (as
//! `gemini-2.5-flash`), `sonnet` translated to a strict [`MockAnthropic`].

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::{json, Value};
use support::*;

/// How long one request may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(20);

/// The canonical status names of `google.rpc.Code` (googleapis, google/rpc/code.proto).
const CANONICAL: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
];

/// A plain generateContent body.
fn hello() -> Value {
    json!({"contents":[{"role":"user","parts":[{"text":"hello"}]}]})
}

struct Door {
    gw: Gateway,
    gem: MockGemini,
    anth: MockAnthropic,
}

impl Door {
    /// Requests that reached either vendor.
    fn upstream_count(&self) -> usize {
        self.gem.request_count() + self.anth.requests().len()
    }
}

fn config(extra: &str) -> String {
    ConfigBody::new()
        .usage_log()
        .text(extra)
        .provider("gem", "gemini", "{GEM}", "api_key_env = \"SY_ATK_GEM\"")
        .provider(
            "anth",
            "anthropic",
            "{ANTH}",
            "api_key_env = \"SY_ATK_ANTH\"",
        )
        .model("flash", &[("gem", "gemini-2.5-flash")])
        .model("sonnet", &[("anth", "claude-sonnet-4-5")])
        .team("t", "")
        .demo_key("k", "t")
        .build()
}

/// The door with `extra` config lines and `env` (e.g. `RUST_LOG`).
async fn door_with(extra: &str, env: &[(&str, &str)]) -> Door {
    let gem = MockGemini::start("gem-atk-key").await;
    let anth = MockAnthropic::start("anth-atk-key").await;
    let body = config(extra)
        .replace("{GEM}", &gem.origin())
        .replace("{ANTH}", &anth.origin());
    let gw = Gateway::builder(&body)
        .env("SY_ATK_GEM", "gem-atk-key")
        .env("SY_ATK_ANTH", "anth-atk-key")
        .envs(env)
        .start()
        .await;
    Door { gw, gem, anth }
}

async fn door() -> Door {
    door_with("", &[]).await
}

/// One answer: status, headers, body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` (path and query as given) with `headers` and `body`; a hang (no whole
/// answer within [`HANG`]) fails the test.
async fn send(
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    // Redirects are not followed: a `Location` is part of the answer checked.
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.request(method, gw.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let shown: String = path.chars().take(200).collect();
    let exchange = async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok::<_, reqwest::Error>(Answer {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(HANG, exchange).await {
        Err(_) => panic!("{shown}: no answer within {HANG:?} (a hang)"),
        Ok(Err(e)) => panic!("{shown}: the connection failed ({e})\n{}", gw.logs()),
        Ok(Ok(a)) => a,
    }
}

/// `POST path` with the demo key in `x-goog-api-key` and a JSON `body`.
async fn post(gw: &Gateway, path: &str, body: &Value) -> Answer {
    send(
        gw,
        "POST",
        path,
        &[
            ("x-goog-api-key", DEMO_SECRET),
            ("content-type", "application/json"),
        ],
        body.to_string().into_bytes(),
    )
    .await
}

/// Why `a` is not a 4xx in Google's error shape (None: it is).
fn not_google_4xx(a: &Answer) -> Option<String> {
    if !(400..500).contains(&a.status) {
        return Some(format!("status {}", a.status));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&a.body) else {
        return Some("the body is not JSON".into());
    };
    let e = &v["error"];
    if e["code"].as_u64() != Some(u64::from(a.status)) {
        return Some(format!("error.code is not {}", a.status));
    }
    if !e["status"].as_str().is_some_and(|s| CANONICAL.contains(&s)) {
        return Some("error.status is not a canonical google.rpc.Code name".into());
    }
    if e["message"].as_str().is_none_or(str::is_empty) {
        return Some("error.message is missing".into());
    }
    None
}

/// `a` is a 4xx in Google's shape, and, when `statuses` is not empty, one of them.
#[track_caller]
fn assert_google_4xx(what: &str, a: &Answer, statuses: &[u16]) {
    if let Some(why) = not_google_4xx(a) {
        panic!(
            "{what}: not a 4xx in Google's shape ({why}): {} {}",
            a.status,
            a.text()
        );
    }
    assert!(
        statuses.is_empty() || statuses.contains(&a.status),
        "{what}: {} (want one of {statuses:?}): {}",
        a.status,
        a.text()
    );
}

/// The gateway still answers a good request (it did not crash or wedge).
async fn still_serves(d: &Door) {
    let a = post(&d.gw, "/v1beta/models/flash:generateContent", &hello()).await;
    assert_eq!(
        a.status,
        200,
        "after the attack: {}\n{}",
        a.text(),
        d.gw.logs()
    );
}

// ---------------------------------------------------------------------------------------
// Paths

#[tokio::test]
async fn an_empty_model_is_a_google_4xx() {
    let d = door().await;
    for path in [
        "/v1beta/models/:generateContent",
        "/v1/models/:generateContent",
        "/v1beta/models/:streamGenerateContent?alt=sse",
        "/v1beta/models/models/:generateContent",
        "/v1beta/models/%20:countTokens",
    ] {
        let a = post(&d.gw, path, &hello()).await;
        assert_google_4xx(path, &a, &[400, 404]);
    }
    assert_eq!(d.upstream_count(), 0, "no vendor was asked");
    still_serves(&d).await;
}

#[tokio::test]
async fn an_encoded_slash_or_colon_in_the_model_is_a_name_not_a_path() {
    let d = door().await;
    for path in [
        "/v1beta/models/a%2Fb:generateContent",
        "/v1beta/models/flash%2F..%2F..%2Fv1%2Fchat%2Fcompletions:generateContent",
        "/v1beta/models/tunedModels%2Fflash:generateContent",
    ] {
        let a = post(&d.gw, path, &hello()).await;
        assert_google_4xx(path, &a, &[400, 404]);
    }
    // No literal colon: the path of a model (`models.get`), where POST is not allowed.
    let path = "/v1beta/models/flash%3AgenerateContent";
    let a = post(&d.gw, path, &hello()).await;
    assert_google_4xx(path, &a, &[400, 404, 405]);
    assert_eq!(d.upstream_count(), 0, "no vendor was asked");
    still_serves(&d).await;
}

#[tokio::test]
async fn a_double_colon_or_an_unknown_method_is_a_google_4xx() {
    let d = door().await;
    for path in [
        "/v1beta/models/flash::generateContent",
        "/v1beta/models/flash:generateContent:generateContent",
        "/v1beta/models/flash:",
        "/v1beta/models/flash:explode",
        "/v1beta/models/flash:generatecontent",
        "/v1beta/models/flash:generateContent/extra",
    ] {
        let a = post(&d.gw, path, &hello()).await;
        assert_google_4xx(path, &a, &[400, 404]);
    }
    assert_eq!(d.upstream_count(), 0, "no vendor was asked");
    still_serves(&d).await;
}

#[tokio::test]
async fn a_huge_model_name_is_a_google_4xx() {
    let d = door().await;
    // Within the URI cap (8 KiB by default): an unknown model.
    let path = format!("/v1beta/models/{}:generateContent", "m".repeat(6000));
    let a = post(&d.gw, &path, &hello()).await;
    assert_google_4xx("a 6000-byte model name", &a, &[400, 404]);
    assert!(
        a.body.len() < 4096,
        "the answer echoes the name: {} bytes",
        a.body.len()
    );
    // Beyond it: the URI cap's 414, in the door's shape.
    let path = format!("/v1beta/models/{}:generateContent", "m".repeat(20_000));
    let a = post(&d.gw, &path, &hello()).await;
    assert_google_4xx("a 20000-byte model name", &a, &[414]);
    assert_eq!(d.upstream_count(), 0, "no vendor was asked");
    still_serves(&d).await;
}

#[tokio::test]
async fn get_put_or_delete_on_a_method_is_a_google_4xx() {
    let d = door().await;
    for (method, path) in [
        ("GET", "/v1beta/models/flash:generateContent"),
        ("GET", "/v1beta/models/flash:streamGenerateContent?alt=sse"),
        ("PUT", "/v1beta/models/flash:generateContent"),
        ("DELETE", "/v1beta/models/flash"),
        ("POST", "/v1beta/models"),
        ("POST", "/v1beta/models/flash"),
    ] {
        let a = send(
            &d.gw,
            method,
            path,
            &[("x-goog-api-key", DEMO_SECRET)],
            Vec::new(),
        )
        .await;
        assert_google_4xx(&format!("{method} {path}"), &a, &[400, 404, 405]);
    }
    assert_eq!(d.upstream_count(), 0, "no vendor was asked");
    still_serves(&d).await;
}

// ---------------------------------------------------------------------------------------
// Keys

/// `POST :generateContent` of `flash` with `query` and `headers` (and a JSON body): why the
/// answer is not a Google-shaped 400 or 401 (None: it is).
async fn not_refused(d: &Door, query: &str, headers: &[(&str, &str)]) -> Option<String> {
    let path = format!("/v1beta/models/flash:generateContent?{query}");
    let mut headers = headers.to_vec();
    headers.push(("content-type", "application/json"));
    let a = send(
        &d.gw,
        "POST",
        &path,
        &headers,
        hello().to_string().into_bytes(),
    )
    .await;
    assert!(!a.text().contains(DEMO_SECRET), "{}", a.text());
    let why = not_google_4xx(&a)
        .or_else(|| (![400, 401].contains(&a.status)).then(|| format!("status {}", a.status)));
    let shown: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    why.map(|why| format!("?{query} {shown:?}: {why}"))
}

/// Finding (gemini-door): a request carrying two different keys is served with one of them
/// (which one is the door's choice, unseen by the client); a client or proxy that appends its
/// own `key=` cannot know which key paid. Google's system parameters give one key per request
/// (`key` / `$key` / `X-Goog-Api-Key`, cloud.google.com/apis/docs/system-parameters).
#[tokio::test]
async fn two_different_keys_in_one_request_are_refused() {
    let d = door().await;
    let mut found = Vec::new();
    let wrong = "sk-not-a-key";
    for query in [
        format!("key={DEMO_SECRET}&key={wrong}"),
        format!("key={wrong}&key={DEMO_SECRET}"),
        format!("key={DEMO_SECRET}&$key={wrong}"),
    ] {
        found.extend(not_refused(&d, &query, &[]).await);
    }
    for (header, query) in [(DEMO_SECRET, wrong), (wrong, DEMO_SECRET)] {
        let query = format!("key={query}");
        found.extend(not_refused(&d, &query, &[("x-goog-api-key", header)]).await);
    }
    let bearer = format!("Bearer {wrong}");
    let headers = [
        ("x-goog-api-key", DEMO_SECRET),
        ("authorization", bearer.as_str()),
    ];
    found.extend(not_refused(&d, "", &headers).await);
    assert!(found.is_empty(), "served:\n{}", found.join("\n"));
    assert_eq!(d.upstream_count(), 0, "no vendor was asked");
}

#[tokio::test]
async fn a_missing_empty_or_wrong_key_is_a_google_4xx() {
    let d = door().await;
    for (path, headers) in [
        ("/v1beta/models/flash:generateContent", vec![]),
        ("/v1beta/models/flash:generateContent?key=", vec![]),
        (
            "/v1beta/models/flash:generateContent",
            vec![("x-goog-api-key", "")],
        ),
        (
            "/v1beta/models/flash:generateContent",
            vec![("x-goog-api-key", "sk-not-a-key")],
        ),
        ("/v1beta/models?key=sk-not-a-key", vec![]),
    ] {
        let method = if path.contains(':') { "POST" } else { "GET" };
        let a = send(
            &d.gw,
            method,
            path,
            &headers,
            hello().to_string().into_bytes(),
        )
        .await;
        assert_google_4xx(path, &a, &[400, 401, 403]);
    }
    assert_eq!(d.upstream_count(), 0, "no vendor was asked");
}

// ---------------------------------------------------------------------------------------
// `alt`

#[tokio::test]
async fn alt_json_streams_google_s_json_array() {
    let d = door().await;
    let a = post(
        &d.gw,
        "/v1beta/models/flash:streamGenerateContent?alt=json",
        &hello(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let chunks: Value = serde_json::from_slice(&a.body)
        .unwrap_or_else(|e| panic!("alt=json is a JSON array ({e}): {}", a.text()));
    assert!(
        chunks
            .as_array()
            .is_some_and(|c| !c.is_empty() && c[0]["candidates"].is_array()),
        "{chunks}"
    );
}

/// Google's `alt` takes `json` (default), `media`, `proto` or `sse`
/// (cloud.google.com/apis/docs/system-parameters); any other value, a second `alt`, and
/// `proto`/`media` (which the door cannot produce) are a 400, not a 200 in a framing the
/// client did not ask for (an `alt=SSE` client's SSE reader cannot parse a JSON array).
#[tokio::test]
async fn an_alt_the_door_cannot_honour_is_a_google_400() {
    let d = door().await;
    let mut found = Vec::new();
    for alt in [
        "SSE",
        "Sse",
        "proto",
        "media",
        "xml",
        "",
        "sse&alt=json",
        "json&alt=sse",
    ] {
        for model in ["flash", "sonnet"] {
            let path = format!("/v1beta/models/{model}:streamGenerateContent?alt={alt}");
            let a = post(&d.gw, &path, &hello()).await;
            if let Some(why) = not_google_4xx(&a) {
                let start: String = a.text().chars().take(60).collect();
                found.push(format!("{path}: {why}: {start}"));
            }
        }
    }
    assert!(found.is_empty(), "answered:\n{}", found.join("\n"));
}

/// Finding (gemini-door): `$alt` and `$key` are `alt`'s and `key`'s other spellings (Google's
/// system parameters); `?$key=` is a 401 ("missing bearer key") and `?$alt=sse` gets the
/// JSON array instead of events.
#[tokio::test]
async fn dollar_alt_and_dollar_key_are_alt_and_key() {
    let d = door().await;
    for query in [
        format!("$key={DEMO_SECRET}"),
        format!("%24key={DEMO_SECRET}"),
    ] {
        let path = format!("/v1beta/models/flash:generateContent?{query}");
        let a = send(
            &d.gw,
            "POST",
            &path,
            &[("content-type", "application/json")],
            hello().to_string().into_bytes(),
        )
        .await;
        assert_eq!(a.status, 200, "?{query}: {}", a.text());
    }
    for query in ["$alt=sse", "%24alt=sse"] {
        let path = format!("/v1beta/models/flash:streamGenerateContent?{query}");
        let a = post(&d.gw, &path, &hello()).await;
        assert_eq!(a.status, 200, "{query}: {}", a.text());
        assert!(a.text().starts_with("data: "), "{query}: {}", a.text());
    }
}

// ---------------------------------------------------------------------------------------
// Bodies

/// `body` to `:generateContent` of both routes: each a Google-shaped 4xx (one of `statuses`).
async fn bad_body(d: &Door, what: &str, body: &[u8], statuses: &[u16]) {
    bad_body_to(d, "generateContent", what, body, statuses).await;
}

/// `body` to `:{method}` of both routes: each a Google-shaped 4xx (one of `statuses`).
async fn bad_body_to(d: &Door, method: &str, what: &str, body: &[u8], statuses: &[u16]) {
    for model in ["flash", "sonnet"] {
        let path = format!("/v1beta/models/{model}:{method}");
        let a = send(
            &d.gw,
            "POST",
            &path,
            &[
                ("x-goog-api-key", DEMO_SECRET),
                ("content-type", "application/json"),
            ],
            body.to_vec(),
        )
        .await;
        assert_google_4xx(&format!("{what} to {path}"), &a, statuses);
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_google_400() {
    let d = door().await;
    for body in [
        &b"hello"[..],
        b"",
        b"{",
        b"[]",
        b"null",
        b"{\"contents\":[]} trailing",
    ] {
        for method in [
            "generateContent",
            "streamGenerateContent",
            "countTokens",
            "embedContent",
            "batchEmbedContents",
        ] {
            bad_body_to(&d, method, &String::from_utf8_lossy(body), body, &[400]).await;
        }
    }
    still_serves(&d).await;
}

#[tokio::test]
async fn contents_that_are_not_an_array_are_a_google_400() {
    let d = door().await;
    for body in [
        json!({"contents":"hello"}),
        json!({"contents":{"role":"user","parts":[{"text":"x"}]}}),
        json!({"contents":[{"role":"user","parts":"x"}]}),
        json!({"contents":[]}),
        json!({}),
    ] {
        let what = body.to_string();
        bad_body(&d, &what, what.as_bytes(), &[400]).await;
    }
    assert_eq!(
        d.anth.requests().len(),
        0,
        "nothing was translated to Anthropic"
    );
    still_serves(&d).await;
}

/// Finding (gemini-pair): a field of the wrong JSON type is a 400 whose message is serde's
/// ("invalid type: string \"x\", expected a sequence at line 1 column 25"), not the field's
/// name as the project's errors give it (`contents[0].parts`).
#[tokio::test]
async fn a_wrong_type_is_a_google_400_naming_the_field() {
    let d = door().await;
    let mut found = Vec::new();
    for (body, field) in [
        (json!({"contents":"hello"}), "contents"),
        (json!({"contents":[{"role":"user","parts":"x"}]}), "parts"),
        (
            json!({"contents":[{"role":"user","parts":[{"text":7}]}]}),
            "text",
        ),
        (
            json!({"contents":[{"role":"user","parts":[{"text":"x"}]}],
                "generationConfig":{"maxOutputTokens":"many"}}),
            "maxOutputTokens",
        ),
        (
            json!({"contents":[{"role":"user","parts":[{"text":"x"}]}],
                "tools":{"functionDeclarations":[]}}),
            "tools",
        ),
    ] {
        let a = post(&d.gw, "/v1beta/models/sonnet:generateContent", &body).await;
        assert_google_4xx(&body.to_string(), &a, &[400]);
        if !a.text().contains(field) {
            found.push(format!("{body}: {}", a.text()));
        }
    }
    assert!(found.is_empty(), "not named:\n{}", found.join("\n"));
}

#[tokio::test]
async fn ten_megabytes_of_parts_are_answered_in_bounded_time() {
    let d = door().await;
    let part = json!({"text": "word ".repeat(200)});
    let parts: Vec<Value> = std::iter::repeat_n(part, 10 * 1024).collect();
    let body = json!({"contents":[{"role":"user","parts":parts}]});
    assert!(body.to_string().len() > 10_000_000);
    for model in ["flash", "sonnet"] {
        let path = format!("/v1beta/models/{model}:generateContent");
        let a = post(&d.gw, &path, &body).await;
        assert!(
            a.status == 200 || not_google_4xx(&a).is_none(),
            "{model}: {} {}",
            a.status,
            a.text().chars().take(500).collect::<String>()
        );
    }
    still_serves(&d).await;
}

#[tokio::test]
async fn deep_nesting_is_a_google_400() {
    let d = door().await;
    let depth = 100_000;
    let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(
        "{{\"contents\":[{{\"role\":\"user\",\"parts\":[{{\"text\":\"x\"}}]}}],\
         \"generationConfig\":{{\"stopSequences\":{deep}}}}}"
    );
    bad_body(&d, "100000 nested arrays", body.as_bytes(), &[400]).await;
    let deep = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let body = format!(
        "{{\"contents\":[{{\"role\":\"user\",\"parts\":[{{\"functionResponse\":\
         {{\"name\":\"f\",\"response\":{deep}}}}}]}}]}}"
    );
    bad_body(&d, "100000 nested objects", body.as_bytes(), &[400]).await;
    still_serves(&d).await;
}

#[tokio::test]
async fn invalid_base64_is_a_google_400_naming_the_field() {
    let d = door().await;
    for data in ["!!!not base64***", "QUJD=QUJD", "Q"] {
        let body = json!({"contents":[{"role":"user","parts":[
            {"text":"what is this?"},
            {"inlineData":{"mimeType":"image/png","data":data}}]}]});
        let a = post(&d.gw, "/v1beta/models/sonnet:generateContent", &body).await;
        assert_google_4xx(data, &a, &[400]);
        assert!(a.text().contains("data"), "{data}: {}", a.text());
    }
    // URL-safe base64 is base64 to Google (proto3 JSON): accepted.
    let body = json!({"contents":[{"role":"user","parts":[
        {"text":"what is this?"},
        {"inline_data":{"mime_type":"image/png","data":"iVBORw0KGgo-_w=="}}]}]});
    let a = post(&d.gw, "/v1beta/models/sonnet:generateContent", &body).await;
    assert_eq!(a.status, 200, "URL-safe base64: {}", a.text());
    assert_eq!(d.anth.requests().len(), 1, "{}", a.text());
}

#[tokio::test]
async fn a_field_given_in_snake_case_and_camel_case_is_a_google_400() {
    let d = door().await;
    for body in [
        json!({"contents":[{"role":"user","parts":[{"text":"x"}]}],
               "generationConfig":{"maxOutputTokens":5},
               "generation_config":{"maxOutputTokens":500}}),
        json!({"contents":[{"role":"user","parts":[{"text":"x"}]}],
               "generationConfig":{"maxOutputTokens":5,"max_output_tokens":500}}),
        json!({"contents":[{"role":"user","parts":[
               {"inlineData":{"mimeType":"image/png","data":"AAAA"},
                "inline_data":{"mime_type":"image/gif","data":"AAAA"}}]}]}),
        json!({"contents":[{"role":"user","parts":[{"text":"x"}]}],
               "systemInstruction":{"parts":[{"text":"a"}]},
               "system_instruction":{"parts":[{"text":"b"}]}}),
    ] {
        let what = body.to_string();
        let a = post(&d.gw, "/v1beta/models/sonnet:generateContent", &body).await;
        assert_google_4xx(&what, &a, &[400]);
    }
    assert_eq!(
        d.anth.requests().len(),
        0,
        "nothing was translated to Anthropic"
    );
}

// ---------------------------------------------------------------------------------------
// A `?key=` shows nowhere

/// A loopback OTLP/HTTP receiver keeping every export's raw body.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = Router::new().route(
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
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, bodies)
}

#[tokio::test]
async fn a_query_key_shows_in_no_log_metric_trace_error_or_header() {
    let (otlp, spans) = otlp_receiver().await;
    let d = door_with(
        &format!("[telemetry]\nendpoint = \"http://{otlp}\"\nservice_name = \"atk\""),
        &[("RUST_LOG", "trace")],
    )
    .await;
    let wrong = "sk-wrong-but-still-secret-42";
    let long = "m".repeat(9000);
    let requests = [
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?key={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:streamGenerateContent?alt=sse&key={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/sonnet:generateContent?key={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/nope:generateContent?key={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:explode?key={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/{long}:generateContent?key={DEMO_SECRET}"),
        ),
        (
            "GET",
            format!("/v1beta/models/flash:generateContent?key={DEMO_SECRET}"),
        ),
        ("GET", format!("/v1beta/models?key={DEMO_SECRET}")),
        ("GET", format!("/v1beta/models/flash?key={DEMO_SECRET}")),
        ("GET", format!("/v1beta/models/?key={DEMO_SECRET}")),
        ("GET", format!("/v1beta/models/flash/?key={DEMO_SECRET}")),
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?key={wrong}"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?key={wrong}&key={wrong}"),
        ),
        ("POST", format!("/v1/chat/completions?key={DEMO_SECRET}")),
        // Google's other spellings of the key (system parameters: `$key`, URL-encoded
        // `%24key`), a key among other parameters, and reserved `password`.
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?$key={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?%24key={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?KEY={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?alt=sse&key={DEMO_SECRET}&x=1"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?password={DEMO_SECRET}"),
        ),
        (
            "POST",
            format!("/v1beta/models/flash:generateContent?key%3D{DEMO_SECRET}"),
        ),
    ];
    let mut statuses = Vec::new();
    for (method, path) in &requests {
        let body = if path.contains("chat/completions") {
            chat_body("flash", "hi", false)
        } else {
            hello()
        };
        let a = send(
            &d.gw,
            method,
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await;
        // Bad body too: it must not echo the key either.
        let bad = send(
            &d.gw,
            "POST",
            path,
            &[("content-type", "application/json")],
            b"{not json".to_vec(),
        )
        .await;
        for ans in [&a, &bad] {
            for secret in [DEMO_SECRET, wrong] {
                assert!(
                    !ans.text().contains(secret),
                    "{method}: the answer's body shows the key: {}",
                    ans.text()
                );
                for (name, value) in &ans.headers {
                    assert!(
                        !String::from_utf8_lossy(value.as_bytes()).contains(secret),
                        "{method}: the answer's {name} header shows the key"
                    );
                }
            }
            assert!(ans.status < 500, "{method}: {} {}", ans.status, ans.text());
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses[0], 200, "a ?key= is a key: {statuses:?}");
    // Spans are exported in batches: wait until they stop coming.
    let mut seen = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let n = spans.lock().unwrap().len();
        if n > 0 && n == seen {
            break;
        }
        seen = n;
    }
    let traces = spans.lock().unwrap().join("\n");
    assert!(!traces.is_empty(), "the gateway exported spans");
    // The spans carry the paths (so a key left in one would be found).
    assert!(traces.contains("generateContent"), "{traces}");
    let usage = std::fs::read_to_string(d.gw.dir().join("usage.jsonl")).unwrap_or_default();
    let metrics = d.gw.metrics().await;
    let logs = d.gw.logs();
    for (what, text) in [
        ("logs", &logs),
        ("usage log", &usage),
        ("metrics", &metrics),
        ("traces", &traces),
    ] {
        for secret in [DEMO_SECRET, wrong] {
            assert!(!text.contains(secret), "the {what} show a ?key=: {text}");
        }
    }
    for (name, heads) in [("gemini", d.gem.heads())] {
        for h in heads {
            for (k, v) in &h {
                assert!(
                    !String::from_utf8_lossy(v.as_bytes()).contains(DEMO_SECRET),
                    "the {name} vendor got the client's key in {k}"
                );
            }
        }
    }
    assert!(
        d.anth.requests().iter().all(|q| !q
            .headers
            .values()
            .any(|v| v.as_bytes() == DEMO_SECRET.as_bytes())),
        "Anthropic got the client's key"
    );
}
