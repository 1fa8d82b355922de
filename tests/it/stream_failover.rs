//! Streams owned end to end (issue 17): until the first content event a failure of any kind
//! fails over to the next route or fallback, after it the stream ends with exactly one error
//! event in the door's dialect; four timeouts that mean what their names say, each labelled
//! apart in `switchyard_upstream_errors_total`; and a wait given only in a vendor's error
//! body (Gemini's `RetryInfo`) blocks the route and reaches the client as `retry-after`.
//!
//! The vendors are the test tree's mocks told to fail one way each (`support::mock_*`). The
//! timeouts in the config are short so that each test takes about a second; every request has
//! a client-side bound (a hang fails the test, it never blocks the suite).

use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const ANTH_KEY: &str = "sk-ant-stream-failover";
const GEM_KEY: &str = "gem-stream-failover";

/// How long a client waits for a whole answer before the test fails as a hang.
const CLIENT_BOUND: Duration = Duration::from_secs(15);
/// `first_byte_timeout_ms` and `idle_timeout_ms` of the failing vendors.
const SHORT_MS: u64 = 400;
/// The mocks' stalls: well past [`SHORT_MS`].
const STALL_MS: u64 = 4000;
/// `total_timeout_ms` of the trickling vendor.
const TOTAL_MS: u64 = 800;

struct Setup {
    anth: MockAnthropic,
    /// The OpenAI-compatible vendor that fails (models `primary`, `solo`, `slow`).
    a: MockUpstream,
    /// The fallback (model `gpt`), which answers.
    b: MockUpstream,
    gem: MockGemini,
    gw: Gateway,
    /// Keeps the black-hole listener (and its full queue) alive.
    _hole: BlackHole,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gem = MockGemini::start(GEM_KEY).await;
    let hole = BlackHole::new().await;
    let refused = closed_port_addr();
    let short = format!(
        "first_byte_timeout_ms = {SHORT_MS}\nidle_timeout_ms = {SHORT_MS}\ntotal_timeout_ms = 10000"
    );
    let body = ConfigBody::new()
        .usage_log()
        .text(
            "[routing]
max_attempts = 3
backoff_base_ms = 1
backoff_max_ms = 5
failures_to_cool = 3
cooldown_ms = 60000
retry_after_cap_ms = 60000",
        )
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            &format!("api_key_env = \"SY_SF_ANTH\"\n{short}"),
        )
        .provider("a", "openai", &a.base_url(), &short)
        .provider(
            "slow",
            "openai",
            &a.base_url(),
            &format!("first_byte_timeout_ms = 5000\nidle_timeout_ms = 5000\ntotal_timeout_ms = {TOTAL_MS}"),
        )
        .provider("b", "openai", &b.base_url(), "")
        .provider(
            "refused",
            "openai",
            &format!("http://{refused}/v1"),
            "connect_timeout_ms = 200",
        )
        .provider(
            "hole",
            "openai",
            &format!("http://{}/v1", hole.addr),
            "connect_timeout_ms = 200",
        )
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_SF_GEM\"")
        .model_with("claude", "fallbacks = [\"gpt\"]", &[("anth", "claude-sonnet-4-5")])
        .model("claude-solo", &[("anth", "claude-solo-4-5")])
        .model_with("primary", "fallbacks = [\"gpt\"]", &[("a", "a-model")])
        .model("solo", &[("a", "solo-model")])
        .model("slow", &[("slow", "slow-model")])
        .model_with("refused", "fallbacks = [\"gpt\"]", &[("refused", "r")])
        .model_with("hole", "fallbacks = [\"gpt\"]", &[("hole", "h")])
        .model("gemini", &[("gem", "gemini-3-pro")])
        .model("gpt", &[("b", "gpt-5")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_SF_ANTH", ANTH_KEY)
        .env("SY_SF_GEM", GEM_KEY)
        .start()
        .await;
    Setup {
        anth,
        a,
        b,
        gem,
        gw,
        _hole: hole,
    }
}

/// A loopback address whose connects hang until the client gives up: a listener with a
/// backlog of 0 whose accept queue is already full, so Linux drops every new SYN. (An
/// unroutable address would do the same, but the tests stay on loopback.)
struct BlackHole {
    addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl BlackHole {
    async fn new() -> BlackHole {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..4 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => queued.push(s),
                _ => break,
            }
        }
        let probe = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr));
        assert!(
            probe.await.is_err(),
            "a connect to the full listener did not hang: the connect-timeout test needs it"
        );
        BlackHole {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}

/// What a client got: status, `retry-after`, body, and how long the whole answer took.
struct Got {
    status: u16,
    retry_after: Option<String>,
    text: String,
    took: Duration,
}

async fn post(gw: &Gateway, path: &str, id: &str, body: Value) -> Got {
    let started = Instant::now();
    let resp = client()
        .post(gw.url(path))
        .bearer_auth(DEMO_SECRET)
        .header("x-request-id", id)
        .header("anthropic-version", "2023-06-01")
        .timeout(CLIENT_BOUND)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path} ({id}): {e}\n{}", gw.logs()));
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = match resp.bytes().await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => panic!("{id}: the body did not end within {CLIENT_BOUND:?}: {e}"),
    };
    Got {
        status,
        retry_after,
        text,
        took: started.elapsed(),
    }
}

async fn chat(gw: &Gateway, id: &str, model: &str, stream: bool) -> Got {
    post(
        gw,
        "/v1/chat/completions",
        id,
        chat_body(model, "tell me a story", stream),
    )
    .await
}

async fn messages(gw: &Gateway, id: &str, model: &str, stream: bool) -> Got {
    let body = json!({"model": model, "max_tokens": 64, "stream": stream,
                      "messages": [{"role": "user", "content": "tell me a story"}]});
    post(gw, "/v1/messages", id, body).await
}

async fn upstream_errors(gw: &Gateway, provider: &str, reason: &str) -> Option<f64> {
    metric_value(
        &gw.metrics().await,
        "switchyard_upstream_errors_total",
        &[("provider", provider), ("reason", reason)],
    )
}

async fn healthy(gw: &Gateway, provider: &str, model: &str) -> Option<f64> {
    metric_value(
        &gw.metrics().await,
        "switchyard_route_healthy",
        &[("provider", provider), ("model", model)],
    )
}

/// The chat stream's error events (`data: {"error":…}`).
fn chat_errors(text: &str) -> Vec<Value> {
    parse_sse_json(text)
        .into_iter()
        .filter(|e| e.get("error").is_some())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// An error event before any content: the next route answers.

/// The issue's example: `message_start`, `ping`, `event: error` (overloaded), close; the
/// model's fallback answers the client's stream, whole; the failure is counted and, the third
/// time, cools the route.
#[tokio::test]
async fn an_error_event_before_content_falls_back_and_is_counted() {
    let s = setup().await;
    s.anth.set_behaviour(AnthBehaviour {
        error_after: Some(0),
        ..AnthBehaviour::default()
    });
    let got = chat(&s.gw, "ev1", "claude", true).await;
    assert_eq!(got.status, 200, "{}\n{}", got.text, s.gw.logs());
    assert_eq!(s.anth.message_count(), 1);
    assert_eq!(s.b.request_count(), 1);
    assert_eq!(
        got.text,
        s.b.last_request().unwrap().response_text(),
        "the client gets the fallback's stream, whole, and nothing of the failed attempt"
    );
    let line = s.gw.usage_line("ev1").await;
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["attempts"], 2, "{line}");
    assert_eq!(line["provider"], "b", "{line}");
    assert_eq!(
        upstream_errors(&s.gw, "anth", "stream_error").await,
        Some(1.0)
    );
    assert_eq!(healthy(&s.gw, "anth", "claude-sonnet-4-5").await, Some(1.0));
    for id in ["ev2", "ev3"] {
        assert_eq!(chat(&s.gw, id, "claude", true).await.status, 200);
    }
    assert_eq!(
        upstream_errors(&s.gw, "anth", "stream_error").await,
        Some(3.0)
    );
    assert_eq!(
        healthy(&s.gw, "anth", "claude-sonnet-4-5").await,
        Some(0.0),
        "three failures in a row (failures_to_cool = 3) cool the route"
    );
}

/// The same from an OpenAI-compatible vendor: a role-only chunk, then `data: {"error":…}`.
#[tokio::test]
async fn an_openai_error_chunk_before_content_falls_back() {
    let s = setup().await;
    s.a.set_default(Behaviour {
        error_event_after: Some(0),
        ..Behaviour::default()
    });
    let got = chat(&s.gw, "oe1", "primary", true).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!((s.a.request_count(), s.b.request_count()), (1, 1));
    assert_eq!(got.text, s.b.last_request().unwrap().response_text());
    let line = s.gw.usage_line("oe1").await;
    assert_eq!(
        (line["status"].clone(), line["attempts"].clone()),
        (json!(200), json!(2))
    );
    assert_eq!(upstream_errors(&s.gw, "a", "stream_error").await, Some(1.0));
}

/// No route left: the client gets a 502 JSON in its door's error shape with the vendor's
/// message, not a 200 stream holding an error.
#[tokio::test]
async fn an_error_event_before_content_with_no_route_left_is_a_502() {
    let s = setup().await;
    s.anth.set_behaviour(AnthBehaviour {
        error_after: Some(0),
        ..AnthBehaviour::default()
    });
    let got = chat(&s.gw, "nr1", "claude-solo", true).await;
    assert_eq!(got.status, 502, "{}", got.text);
    let e: Value = serde_json::from_str(&got.text).expect("a JSON error, not a stream");
    assert_eq!(e["error"]["reason"], "upstream_error", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("busy"),
        "{e}"
    );
    let line = s.gw.usage_line("nr1").await;
    assert_eq!(line["status"], 502, "{line}");
    assert_eq!(line["reason"], "upstream_error", "{line}");

    // The Messages door, a pass-through: Anthropic's error shape.
    let got = messages(&s.gw, "nr2", "claude-solo", true).await;
    assert_eq!(got.status, 502, "{}", got.text);
    let e: Value = serde_json::from_str(&got.text).expect("a JSON error, not a stream");
    assert_eq!(e["type"], "error", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("busy"),
        "{e}"
    );
    assert_eq!(s.b.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// A failure after content: never retried; one error event.

#[tokio::test]
async fn an_error_event_after_content_ends_the_stream_with_one_error_event() {
    let s = setup().await;
    s.a.set_default(Behaviour {
        error_event_after: Some(2),
        ..Behaviour::default()
    });
    let got = chat(&s.gw, "ac1", "primary", true).await;
    assert_eq!(got.status, 200, "the head went out with the first content");
    let events = parse_sse(&got.text);
    assert!(!events.iter().any(|e| e == "[DONE]"), "{}", got.text);
    assert_eq!(stream_text(&parse_sse_json(&got.text)), "tok0 tok1 ");
    let errors = chat_errors(&got.text);
    assert_eq!(errors.len(), 1, "exactly one error event: {}", got.text);
    assert!(errors[0].to_string().contains("busy"), "{}", got.text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        last.get("error").is_some(),
        "the error event ends the stream"
    );
    assert_eq!(s.b.request_count(), 0, "never retried after content");
    let line = s.gw.usage_line("ac1").await;
    assert_eq!(line["status"], 502, "{line}");
    assert_eq!(line["reason"], "upstream_error", "{line}");
    assert_eq!(upstream_errors(&s.gw, "a", "stream_error").await, Some(1.0));
    // The route's health records each such failure: the third cools it.
    for id in ["ac2", "ac3"] {
        chat(&s.gw, id, "primary", true).await;
    }
    assert_eq!(healthy(&s.gw, "a", "a-model").await, Some(0.0));
}

/// The Messages door, passing Anthropic's stream through: the text, then one `error` event.
#[tokio::test]
async fn an_anthropic_error_after_content_is_one_error_event_at_the_messages_door() {
    let s = setup().await;
    s.anth.set_behaviour(AnthBehaviour {
        error_after: Some(1),
        ..AnthBehaviour::default()
    });
    let got = messages(&s.gw, "am1", "claude", true).await;
    assert_eq!(got.status, 200);
    let events = named_events(&got.text);
    assert!(
        events.iter().any(|(n, _)| n == "content_block_delta"),
        "{}",
        got.text
    );
    let errors: Vec<_> = events.iter().filter(|(n, _)| n == "error").collect();
    assert_eq!(errors.len(), 1, "{}", got.text);
    assert_eq!(events.last().unwrap().0, "error", "{}", got.text);
    assert_eq!(s.b.request_count(), 0);
    let line = s.gw.usage_line("am1").await;
    assert_eq!(line["status"], 502, "{line}");
    assert_eq!(line["reason"], "upstream_error", "{line}");
}

// ---------------------------------------------------------------------------------------------
// The four timeouts.

/// First byte = the head and the first event: a vendor silent before its head, or after its
/// head before any event, is given up after `first_byte_timeout_ms` and the fallback answers.
#[tokio::test]
async fn a_stall_before_the_first_event_falls_back_as_a_first_byte_timeout() {
    let stalls = [
        (
            "before the head",
            Behaviour {
                stall_headers_ms: Some(STALL_MS),
                ..Behaviour::default()
            },
        ),
        (
            "after the head",
            Behaviour {
                delay_ms: Some(STALL_MS),
                ..Behaviour::default()
            },
        ),
    ];
    for (when, stall) in stalls {
        let s = setup().await;
        s.a.set_default(stall);
        let got = chat(&s.gw, "fb1", "primary", true).await;
        assert_eq!(got.status, 200, "{when}: {}", got.text);
        assert_eq!(s.b.request_count(), 1, "{when}");
        assert_eq!(
            got.text,
            s.b.last_request().unwrap().response_text(),
            "{when}"
        );
        assert!(
            got.took < Duration::from_millis(STALL_MS),
            "{when}: the gateway waited for the stalled vendor ({:?})",
            got.took
        );
        assert_eq!(
            upstream_errors(&s.gw, "a", "first_byte_timeout").await,
            Some(1.0),
            "{when}"
        );
        let line = s.gw.usage_line("fb1").await;
        assert_eq!(line["attempts"], 2, "{when}: {line}");
    }
}

/// Idle: silence after the first content event, longer than `idle_timeout_ms`, ends the stream
/// with one error event; the request is a 504.
#[tokio::test]
async fn a_stall_after_content_ends_as_an_idle_timeout() {
    let s = setup().await;
    s.a.set_default(Behaviour {
        stall_after: Some(1),
        ..Behaviour::default()
    });
    let got = chat(&s.gw, "id1", "primary", true).await;
    assert_eq!(got.status, 200);
    assert_eq!(stream_text(&parse_sse_json(&got.text)), "tok0 ");
    let errors = chat_errors(&got.text);
    assert_eq!(errors.len(), 1, "{}", got.text);
    assert_eq!(
        errors[0]["error"]["reason"], "upstream_timeout",
        "{}",
        got.text
    );
    assert!(!parse_sse(&got.text).iter().any(|e| e == "[DONE]"));
    assert_eq!(s.b.request_count(), 0);
    let line = s.gw.usage_line("id1").await;
    assert_eq!(line["status"], 504, "{line}");
    assert_eq!(line["reason"], "upstream_timeout", "{line}");
    assert_eq!(upstream_errors(&s.gw, "a", "idle_timeout").await, Some(1.0));
}

/// Silence after the first events but before any content (Anthropic's `message_start` and
/// `ping`, then nothing) is an idle timeout while nothing went to the client: the fallback
/// answers, whole.
#[tokio::test]
async fn a_stall_after_the_first_events_before_content_falls_back() {
    let s = setup().await;
    s.anth.set_behaviour(AnthBehaviour {
        stall_after: Some(0),
        ..AnthBehaviour::default()
    });
    let got = chat(&s.gw, "is1", "claude", true).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(s.anth.message_count(), 1);
    assert_eq!(s.b.request_count(), 1);
    assert_eq!(
        got.text,
        s.b.last_request().unwrap().response_text(),
        "nothing of the stalled attempt reached the client"
    );
    assert_eq!(
        upstream_errors(&s.gw, "anth", "idle_timeout").await,
        Some(1.0)
    );
    let line = s.gw.usage_line("is1").await;
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["attempts"], 2, "{line}");
}

/// Total: a hard deadline. A vendor that trickles an event every 100 ms never trips the idle
/// timeout; the stream still ends at `total_timeout_ms`, with one error event.
#[tokio::test]
async fn a_trickling_stream_ends_at_the_total_timeout() {
    let s = setup().await;
    s.a.set_default(Behaviour::trickle(100));
    let got = chat(&s.gw, "tt1", "slow", true).await;
    assert_eq!(got.status, 200);
    assert!(!stream_text(&parse_sse_json(&got.text)).is_empty());
    let errors = chat_errors(&got.text);
    assert_eq!(errors.len(), 1, "{}", got.text);
    assert_eq!(errors[0]["error"]["reason"], "upstream_timeout");
    // A generous bound (not a speed assertion): the deadline ended it, not the client's.
    assert!(
        got.took < Duration::from_millis(TOTAL_MS + 2000),
        "the stream ran {:?} past a total timeout of {TOTAL_MS} ms",
        got.took
    );
    let line = s.gw.usage_line("tt1").await;
    assert_eq!(line["status"], 504, "{line}");
    assert_eq!(line["reason"], "upstream_timeout", "{line}");
    assert_eq!(
        upstream_errors(&s.gw, "slow", "total_timeout").await,
        Some(1.0)
    );
}

/// Connect: refused at once, or no answer within `connect_timeout_ms`; labelled apart, and
/// the fallback answers either way.
#[tokio::test]
async fn connect_failures_fall_back_labelled_apart() {
    let s = setup().await;
    for (model, provider, reason) in [
        ("refused", "refused", "connect"),
        ("hole", "hole", "connect_timeout"),
    ] {
        for stream in [false, true] {
            let id = format!("{model}-{stream}");
            let got = chat(&s.gw, &id, model, stream).await;
            assert_eq!(got.status, 200, "{id}: {}", got.text);
            let line = s.gw.usage_line(&id).await;
            assert_eq!(line["provider"], "b", "{id}: {line}");
        }
        assert_eq!(
            upstream_errors(&s.gw, provider, reason).await,
            Some(2.0),
            "{model}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A wait given only in the error body.

/// Gemini answers 429 with no `retry-after` header and the wait in a `RetryInfo` detail: the
/// route is blocked for it, the next request does not reach the vendor, and the client is told
/// to wait as long (rounded up to whole seconds).
#[tokio::test]
async fn a_gemini_retry_info_blocks_the_route_and_reaches_the_client() {
    let s = setup().await;
    s.gem.set_behaviour(GeminiBehaviour {
        retry_delay: Some("45.5s".into()),
        ..GeminiBehaviour::default()
    });
    let got = chat(&s.gw, "ri1", "gemini", false).await;
    assert_eq!(got.status, 429, "{}", got.text);
    assert_eq!(got.retry_after.as_deref(), Some("46"), "{}", got.text);
    let got = chat(&s.gw, "ri2", "gemini", false).await;
    assert_eq!(got.status, 429, "{}", got.text);
    let secs: u64 = got.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((44..=46).contains(&secs), "{secs}");
    assert_eq!(s.gem.request_count(), 1, "the blocked route was not called");
    assert!(s.a.request_count() == 0 && s.b.request_count() == 0);
}
