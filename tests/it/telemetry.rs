//! OpenTelemetry traces through the real binary: a small OTLP/HTTP receiver (axum, OTLP/JSON)
//! in the test tree gets one request's span with its GenAI and gateway attributes, the
//! attempts' child spans, the client's `traceparent` continued; the mock vendor gets a
//! `traceparent` naming the attempt's span; with `[telemetry]` absent nothing is sent; a
//! collector that is down costs the request nothing and its spans are counted as dropped.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use support::*;

const PROVIDER_KEY: &str = "sk-provider-otel-secret-7";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Every OTLP/JSON export request the receiver got, with its content type.
#[derive(Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<(String, Value)>>>,
    addr: String,
}

impl Receiver {
    async fn start() -> Receiver {
        let rx = Receiver::default();
        let posts = rx.posts.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: axum::http::HeaderMap, body: String| {
                let posts = posts.clone();
                async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let value: Value = serde_json::from_str(&body).expect("OTLP/JSON body");
                    posts.lock().unwrap().push((ct, value));
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, ..rx }
    }

    fn posts(&self) -> Vec<(String, Value)> {
        self.posts.lock().unwrap().clone()
    }

    /// Every span received so far, across export requests.
    fn spans(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .flat_map(|(_, body)| {
                body["resourceSpans"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
                    .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Waits (at most 15 s) until `n` spans arrived.
    async fn wait_spans(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(base_url: &str, telemetry: &str) -> String {
    let key = "api_key_env = \"SY_OTEL_PROVIDER_KEY\"";
    ConfigBody::new()
        .text(telemetry)
        .provider("up-a", "openai", base_url, key)
        .provider("up-b", "openai", base_url, key)
        .model(
            "gpt-test",
            &[("up-a", "upstream-a"), ("up-b", "upstream-b")],
        )
        .team("research", "")
        .demo_key("alice", "research")
        .build()
}

async fn start(mock: &MockUpstream, telemetry: &str) -> Gateway {
    Gateway::builder(&config(&mock.base_url(), telemetry))
        .env("SY_OTEL_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await
}

fn telemetry_section(rx: &Receiver) -> String {
    format!(
        "[telemetry]\nendpoint = \"http://{}\"\nservice_name = \"gw-test\"\n",
        rx.addr
    )
}

async fn chat_with_traceparent(gw: &Gateway, traceparent: Option<&str>) -> reqwest::Response {
    let mut req = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "one two three"}]}));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.expect("chat request")
}

/// The attributes of a span as a map of key → the value's JSON (`{"stringValue": …}` …).
fn attrs(span: &Value) -> serde_json::Map<String, Value> {
    span["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
        .collect()
}

fn text(a: &serde_json::Map<String, Value>, key: &str) -> String {
    a.get(key)
        .and_then(|v| v["stringValue"].as_str())
        .unwrap_or_else(|| panic!("no string attribute {key} in {a:?}"))
        .to_string()
}

fn int(a: &serde_json::Map<String, Value>, key: &str) -> i64 {
    a.get(key)
        .and_then(|v| v["intValue"].as_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no int attribute {key} in {a:?}"))
}

/// The model name the mock vendor was sent last.
fn sent_model(mock: &MockUpstream) -> String {
    mock.last_request().unwrap().json()["model"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_span_with_genai_attributes_continuing_the_clients_trace() {
    let rx = Receiver::start().await;
    let mock = MockUpstream::start().await;
    let gw = start(&mock, &telemetry_section(&rx)).await;

    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let resp = chat_with_traceparent(&gw, Some(&client_tp)).await;
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let answer: Value = resp.json().await.unwrap();

    let spans = rx.wait_spans(2).await;
    assert_eq!(
        spans.len(),
        2,
        "one request span and one attempt span: {spans:#?}"
    );
    let (ct, body) = &rx.posts()[0];
    assert_eq!(ct, "application/json");
    let resource = &body["resourceSpans"][0]["resource"]["attributes"];
    assert!(resource.to_string().contains("\"gw-test\""), "{resource}");
    assert_eq!(
        body["resourceSpans"][0]["scopeSpans"][0]["schemaUrl"],
        "https://opentelemetry.io/schemas/1.37.0"
    );

    let server = spans.iter().find(|s| s["kind"] == 2).expect("server span");
    let attempt = spans.iter().find(|s| s["kind"] == 3).expect("attempt span");
    // The client's trace continued: same trace id, the client's span as parent.
    assert_eq!(server["traceId"], CLIENT_TRACE);
    assert_eq!(server["parentSpanId"], CLIENT_SPAN);
    assert_eq!(server["name"], "chat gpt-test");
    assert_eq!(server["status"]["code"], 0);
    let a = attrs(server);
    assert_eq!(text(&a, "gen_ai.operation.name"), "chat");
    assert_eq!(text(&a, "gen_ai.provider.name"), "openai");
    assert_eq!(text(&a, "gen_ai.request.model"), "gpt-test");
    assert_eq!(
        int(&a, "gen_ai.usage.input_tokens"),
        answer["usage"]["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        int(&a, "gen_ai.usage.output_tokens"),
        answer["usage"]["completion_tokens"].as_i64().unwrap()
    );
    assert!(int(&a, "gen_ai.usage.output_tokens") > 0);
    assert_eq!(text(&a, "switchyard.team"), "research");
    assert_eq!(text(&a, "switchyard.key_id"), "alice");
    // Either route may serve (they split the traffic by weight): the span names the one that did.
    let provider = text(&a, "switchyard.provider");
    let upstream_model = provider.replace("up-", "upstream-");
    assert!(["up-a", "up-b"].contains(&provider.as_str()), "{provider}");
    assert_eq!(text(&a, "switchyard.upstream_model"), upstream_model);
    assert_eq!(sent_model(&mock), upstream_model);
    assert_eq!(text(&a, "switchyard.request_id"), request_id);
    assert_eq!(int(&a, "switchyard.attempts"), 1);
    assert_eq!(int(&a, "http.response.status_code"), 200);
    assert!(!a.contains_key("error.type"));
    let start: u128 = server["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u128 = server["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(start > 0 && end >= start);

    // The attempt: a child of the request span, and the parent named upstream.
    assert_eq!(attempt["traceId"], CLIENT_TRACE);
    assert_eq!(attempt["parentSpanId"], server["spanId"]);
    let b = attrs(attempt);
    assert_eq!(text(&b, "gen_ai.request.model"), upstream_model);
    assert_eq!(text(&b, "switchyard.provider"), provider);
    assert_eq!(int(&b, "server.port"), i64::from(mock.port()));
    let sent = mock.last_request().unwrap();
    assert_eq!(
        sent.header("traceparent"),
        Some(
            format!(
                "00-{CLIENT_TRACE}-{}-01",
                attempt["spanId"].as_str().unwrap()
            )
            .as_str()
        )
    );

    // No secret in what was exported.
    let exported = serde_json::to_string(&rx.posts()).unwrap();
    assert!(!exported.contains(DEMO_SECRET) && !exported.contains(PROVIDER_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_has_a_child_span_per_attempt() {
    let rx = Receiver::start().await;
    let mock = MockUpstream::start().await;
    mock.enqueue(Behaviour::status(500));
    let gw = start(&mock, &telemetry_section(&rx)).await;

    // No traceparent from the client: a new trace.
    let resp = chat_with_traceparent(&gw, None).await;
    assert_eq!(resp.status(), 200);

    let spans = rx.wait_spans(3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let server = spans.iter().find(|s| s["kind"] == 2).expect("server span");
    assert!(
        server.get("parentSpanId").is_none(),
        "a new trace has no parent"
    );
    assert_eq!(int(&attrs(server), "switchyard.attempts"), 2);
    let attempts: Vec<_> = spans.iter().filter(|s| s["kind"] == 3).collect();
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        assert_eq!(a["traceId"], server["traceId"]);
        assert_eq!(a["parentSpanId"], server["spanId"]);
    }
    // The routes are chosen by weight: either provider may be tried first.
    let first = *attempts
        .iter()
        .find(|s| int(&attrs(s), "switchyard.attempt") == 1)
        .unwrap();
    let second = *attempts
        .iter()
        .find(|s| int(&attrs(s), "switchyard.attempt") == 2)
        .unwrap();
    assert_eq!(first["status"]["code"], 2);
    assert!(attrs(first).contains_key("error.type"));
    assert_eq!(second["status"]["code"], 0);
    assert_ne!(
        text(&attrs(first), "switchyard.provider"),
        text(&attrs(second), "switchyard.provider")
    );
    assert_eq!(
        text(&attrs(server), "switchyard.provider"),
        text(&attrs(second), "switchyard.provider")
    );
    // Each attempt named its own span upstream.
    let sent = mock.requests();
    assert_eq!(sent.len(), 2);
    for (req, span) in sent.iter().zip([first, second]) {
        let want = format!(
            "00-{}-{}-01",
            server["traceId"].as_str().unwrap(),
            span["spanId"].as_str().unwrap()
        );
        assert_eq!(req.header("traceparent"), Some(want.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_telemetry_section_nothing_is_sent() {
    let rx = Receiver::start().await;
    let mock = MockUpstream::start().await;
    let gw = start(&mock, "").await;

    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let resp = chat_with_traceparent(&gw, Some(&client_tp)).await;
    assert_eq!(resp.status(), 200);
    // Longer than the exporter's batching delay (1 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(rx.posts().is_empty(), "{:?}", rx.posts());
    assert!(!gw.metrics().await.contains("switchyard_telemetry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_traces_are_not_sent_but_still_passed_upstream() {
    let rx = Receiver::start().await;
    let mock = MockUpstream::start().await;
    let gw = start(&mock, &telemetry_section(&rx)).await;

    // The client's decision (flags 00) is followed.
    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00");
    assert_eq!(
        chat_with_traceparent(&gw, Some(&client_tp)).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(rx.posts().is_empty(), "{:?}", rx.posts());
    let tp = mock
        .last_request()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(tp.starts_with(&format!("00-{CLIENT_TRACE}-")), "{tp}");
    assert!(tp.ends_with("-00"), "{tp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_dropped_spans_not_answers() {
    let mock = MockUpstream::start().await;
    let down = closed_port_addr();
    let gw = start(
        &mock,
        &format!("[telemetry]\nendpoint = \"http://{down}\"\n"),
    )
    .await;

    for _ in 0..3 {
        assert_eq!(chat_with_traceparent(&gw, None).await.status(), 200);
    }
    // Three requests, each a request span and an attempt span.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = gw.metrics().await;
        if metrics.contains("switchyard_telemetry_spans_dropped_total 6") {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_a_span_without_attempts_or_team() {
    let rx = Receiver::start().await;
    let mock = MockUpstream::start().await;
    let gw = start(&mock, &telemetry_section(&rx)).await;

    let resp = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-not-a-key-of-this-gateway")
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let spans = rx.wait_spans(1).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span["kind"], 2);
    assert_eq!(span["name"], "POST /v1/chat/completions");
    let a = attrs(span);
    assert_eq!(int(&a, "http.response.status_code"), 401);
    assert_eq!(text(&a, "error.type"), "401");
    assert_eq!(int(&a, "switchyard.attempts"), 0);
    for absent in [
        "switchyard.team",
        "switchyard.key_id",
        "gen_ai.operation.name",
    ] {
        assert!(!a.contains_key(absent), "{absent} in {a:?}");
    }
    assert_eq!(mock.request_count(), 0);
    let exported = serde_json::to_string(&rx.posts()).unwrap();
    assert!(!exported.contains("sk-not-a-key-of-this-gateway"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_ratio_of_zero_sends_no_new_trace() {
    let rx = Receiver::start().await;
    let mock = MockUpstream::start().await;
    let section = format!("{}sample_ratio = 0\n", telemetry_section(&rx));
    let gw = start(&mock, &section).await;

    assert_eq!(chat_with_traceparent(&gw, None).await.status(), 200);
    let tp = mock
        .last_request()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
    // A client's sampled trace is still followed.
    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    assert_eq!(
        chat_with_traceparent(&gw, Some(&client_tp)).await.status(),
        200
    );
    let spans = rx.wait_spans(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert!(spans.iter().all(|s| s["traceId"] == CLIENT_TRACE));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.spans().len(), 2, "the unsampled request sent nothing");
}

/// The end user and tags of a request (`x-switchyard-user`, `x-switchyard-tags`) are span
/// attributes `user.id` and `switchyard.tags` (an array), never metric labels; a request
/// without them has neither attribute.
#[tokio::test]
async fn the_end_user_and_tags_are_span_attributes() {
    let rx = Receiver::start().await;
    let mock = MockUpstream::start().await;
    let gw = start(&mock, &telemetry_section(&rx)).await;
    let resp = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-switchyard-user", "user-7f3a")
        .header("x-switchyard-tags", "nightly, eval")
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(chat_with_traceparent(&gw, None).await.status(), 200);
    let spans = rx.wait_spans(4).await;
    let servers: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 2).collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    let named = servers
        .iter()
        .map(|s| attrs(s))
        .find(|a| a.contains_key("user.id"))
        .expect("a span with user.id");
    assert_eq!(text(&named, "user.id"), "user-7f3a");
    assert_eq!(
        named["switchyard.tags"],
        json!({"arrayValue": {"values": [{"stringValue": "nightly"}, {"stringValue": "eval"}]}})
    );
    let other = servers
        .iter()
        .map(|s| attrs(s))
        .find(|a| !a.contains_key("user.id"))
        .expect("the span of the request without a user");
    assert!(!other.contains_key("switchyard.tags"));
    let scrape = gw.metrics().await;
    assert!(
        !scrape.contains("user-7f3a") && !scrape.contains("nightly"),
        "no label holds them"
    );
}
