//! Routing that survives failing vendors: retries on another route, fallbacks, Retry-After,
//! cool-down and recovery, and no retry once bytes reached the client. The vendors are the
//! test tree's mock servers, told to fail per server.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::*;

struct Setup {
    a: MockUpstream,
    b: MockUpstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let dead = closed_port_addr();
    let body = ConfigBody::new()
        .usage_log()
        .text(
            "[routing]
max_attempts = 3
backoff_base_ms = 1
backoff_max_ms = 5
failures_to_cool = 2
cooldown_ms = 300
retry_after_cap_ms = 30000",
        )
        .provider(
            "a",
            "openai",
            &a.base_url(),
            "first_byte_timeout_ms = 600\nidle_timeout_ms = 600",
        )
        .provider("b", "openai", &b.base_url(), "")
        .provider(
            "dead",
            "openai",
            &format!("http://{dead}/v1"),
            "connect_timeout_ms = 500",
        )
        .model_with("primary", "fallbacks = [\"backup\"]", &[("a", "a-model")])
        .model("backup", &[("b", "b-model")])
        .model_with("deadfirst", "fallbacks = [\"backup\"]", &[("dead", "x")])
        .model("solo", &[("a", "solo-model")])
        .model("pair", &[("a", "pa"), ("b", "pb")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&body).await;
    Setup { a, b, gw }
}

fn without_model(body: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    v.as_object_mut().unwrap().remove("model");
    v
}

async fn send(gw: &Gateway, id: &str, model: &str, stream: bool) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-request-id", id)
        .json(&chat_body(model, "retry me please", stream))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_failure_before_the_first_byte_falls_back() {
    let faults: [(&str, Behaviour); 5] = [
        ("status_5xx", Behaviour::status(500)),
        ("status_5xx", Behaviour::status(503)),
        ("status_5xx", Behaviour::status(529)),
        (
            "status_429",
            Behaviour {
                status: Some(429),
                retry_after: Some("1".into()),
                ..Behaviour::default()
            },
        ),
        (
            "first_byte_timeout",
            Behaviour {
                stall_headers_ms: Some(3000),
                ..Behaviour::default()
            },
        ),
    ];
    for (cause, fault) in faults {
        let s = setup().await;
        s.a.set_default(fault.clone());
        let resp = send(&s.gw, "r1", "primary", false).await;
        assert_eq!(resp.status(), 200, "{fault:?}\n{}", s.gw.logs());
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["model"], "b-model", "{fault:?}");
        assert_eq!(s.a.request_count(), 1, "{fault:?}");
        assert_eq!(s.b.request_count(), 1, "{fault:?}");
        // The body was replayed exactly, but for the route's model name.
        let (ra, rb) = (s.a.last_request().unwrap(), s.b.last_request().unwrap());
        assert_eq!(without_model(&ra.body), without_model(&rb.body));
        assert_eq!(ra.json()["model"], "a-model");

        // Streaming: the second failure of `a` (or, after a Retry-After, `a` is skipped at
        // once); the client gets b's bytes exactly once.
        let blocked = cause == "status_429";
        let a_calls = if blocked { 1.0 } else { 2.0 };
        let resp = send(&s.gw, "r2", "primary", true).await;
        assert_eq!(resp.status(), 200);
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(s.a.request_count() as f64, a_calls, "{fault:?}");
        assert_eq!(
            bytes,
            s.b.last_request().unwrap().response_body,
            "{fault:?}"
        );

        let m = s.gw.metrics().await;
        assert_eq!(
            metric_value(
                &m,
                "switchyard_fallbacks_total",
                &[("from", "primary"), ("to", "backup")]
            ),
            Some(2.0),
            "{fault:?}"
        );
        assert_eq!(
            metric_value(
                &m,
                "switchyard_upstream_errors_total",
                &[("provider", "a"), ("reason", cause)]
            ),
            Some(a_calls),
            "{fault:?}\n{m}"
        );
        assert_eq!(
            metric_value(&m, "switchyard_retries_total", &[("provider", "b")]),
            Some(a_calls)
        );
        if !blocked {
            // Two failures cooled `a` down.
            assert_eq!(
                metric_value(
                    &m,
                    "switchyard_route_healthy",
                    &[("provider", "a"), ("model", "a-model")]
                ),
                Some(0.0)
            );
        }
        let line = s.gw.usage_line("r2").await;
        assert_eq!(line["provider"], "b");
        assert_eq!(line["model"], "primary");
        assert_eq!(line["upstream_model"], "b-model");
        assert_eq!(line["attempts"], if blocked { 1 } else { 2 });
        assert_eq!(line["status"], 200);
        assert_eq!(line["usage_source"], "reported");
    }
}

#[tokio::test]
async fn a_refused_connection_falls_back() {
    let s = setup().await;
    let resp = send(&s.gw, "c1", "deadfirst", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(s.b.request_count(), 1);
    let m = s.gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "switchyard_upstream_errors_total",
            &[("provider", "dead"), ("reason", "connect")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_requests_own_fault_is_not_retried() {
    let s = setup().await;
    s.a.set_default(Behaviour::status(400));
    let resp = send(&s.gw, "f1", "primary", false).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["reason"], "invalid_request");
    assert_eq!(s.a.request_count(), 1);
    assert_eq!(s.b.request_count(), 0);
}

#[tokio::test]
async fn after_the_first_byte_a_stream_is_never_retried() {
    for (header, value, reason) in [
        ("x-mock-drop-after", "3", "upstream_error"),
        ("x-mock-stall-after", "3", "upstream_timeout"),
    ] {
        let s = setup().await;
        let resp = client()
            .post(s.gw.url("/v1/chat/completions"))
            .bearer_auth(DEMO_SECRET)
            .header("x-request-id", "mid")
            .header(header, value)
            .json(&chat_body("primary", "x", true))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = String::from_utf8_lossy(&resp.bytes().await.unwrap_or_default()).into_owned();
        let events = parse_sse(&text);
        assert!(!events.iter().any(|e| e == "[DONE]"), "{text}");
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["reason"], reason, "{text}");
        // Exactly the chunks the vendor sent, once, then the error event.
        let contents: Vec<String> = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(contents, ["", "tok0 ", "tok1 ", "tok2 "], "{text}");
        assert_eq!(s.b.request_count(), 0, "no retry after bytes went out");
        let line = s.gw.usage_line("mid").await;
        assert_eq!(line["usage_source"], "estimated");
        assert!(line["completion_tokens"].as_u64().unwrap() > 0, "{line}");
        assert_ne!(line["status"], 200, "{line}");
    }
}

#[tokio::test]
async fn retry_after_is_honoured_and_answers_429_when_nothing_is_left() {
    let s = setup().await;
    s.a.set_default(Behaviour {
        status: Some(429),
        retry_after: Some("20".into()),
        ..Behaviour::default()
    });
    let resp = send(&s.gw, "ra1", "solo", false).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "20");
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["reason"], "rate_limit");
    // The route is skipped until then: no upstream call, still a 429 with retry-after.
    let resp = send(&s.gw, "ra2", "solo", false).await;
    assert_eq!(resp.status(), 429);
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&secs), "{secs}");
    assert_eq!(s.a.request_count(), 1);
}

/// Vendors say how long to wait in several forms; each blocks the route for that long and the
/// client, with nothing left to try, gets the gateway's own `retry-after`.
#[tokio::test]
async fn every_retry_hint_form_is_honoured() {
    let in_20s = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
    let anthropic_reset =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(25))
            .to_string();
    type Case = (
        &'static str,
        Vec<(String, String)>,
        std::ops::RangeInclusive<u64>,
    );
    let cases: Vec<Case> = vec![
        ("http-date", vec![("retry-after".into(), in_20s)], 18..=21),
        (
            "ms",
            vec![("retry-after-ms".into(), "12000".into())],
            12..=12,
        ),
        (
            "openai-reset",
            vec![
                ("x-ratelimit-reset-requests".into(), "1s".into()),
                ("x-ratelimit-reset-tokens".into(), "0m15s".into()),
            ],
            15..=15,
        ),
        (
            "anthropic-reset",
            vec![("anthropic-ratelimit-tokens-reset".into(), anthropic_reset)],
            23..=26,
        ),
    ];
    for (name, headers, want) in cases {
        let s = setup().await;
        s.a.set_default(Behaviour {
            status: Some(429),
            headers,
            ..Behaviour::default()
        });
        let resp = send(&s.gw, &format!("hint-{name}"), "solo", false).await;
        assert_eq!(resp.status(), 429, "{name}");
        // The route is blocked: the next request does not reach the vendor.
        let resp = send(&s.gw, &format!("hint2-{name}"), "solo", false).await;
        assert_eq!(resp.status(), 429, "{name}");
        let secs: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            want.contains(&secs),
            "{name}: retry-after {secs}, want {want:?}"
        );
        assert_eq!(s.a.request_count(), 1, "{name}");
    }
}

#[tokio::test]
async fn every_route_failing_is_502_and_every_timeout_504() {
    let s = setup().await;
    s.a.set_default(Behaviour::status(500));
    s.b.set_default(Behaviour::status(502));
    let resp = send(&s.gw, "x1", "primary", false).await;
    assert_eq!(resp.status(), 502);
    // Both routes, then (each failure being transient) one of them again: max_attempts.
    assert_eq!(s.a.request_count() + s.b.request_count(), 3);
    // Each failed attempt is logged with the request id.
    let logs = s.gw.wait_for_log("request_id: x1").await;
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("upstream attempt failed") && l.contains("request_id: x1"))
            .count(),
        3,
        "{logs}"
    );

    let t = setup().await;
    t.a.set_default(Behaviour {
        stall_headers_ms: Some(3000),
        ..Behaviour::default()
    });
    let resp = send(&t.gw, "x2", "solo", false).await;
    assert_eq!(resp.status(), 504);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["reason"], "upstream_timeout");
}

#[tokio::test]
async fn a_failing_route_cools_down_and_recovers() {
    let s = setup().await;
    s.a.set_default(Behaviour::status(500));
    let total = 300;
    let mut tasks = Vec::new();
    for w in 0..10 {
        let url = s.gw.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            let c = client();
            for i in 0..total / 10 {
                let r = c
                    .post(&url)
                    .bearer_auth(DEMO_SECRET)
                    .json(&chat_body("pair", &format!("w{w} i{i}"), i % 3 == 0))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let to_a = s.a.request_count();
    assert_eq!(s.b.request_count(), total, "every request was served by b");
    eprintln!("one route failing: a tried {to_a} times, b served {total}");
    // Without cool-down `a` would take half of the first attempts (~150).
    assert!(to_a < 60, "a was tried {to_a} times");
    let m = s.gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "switchyard_route_healthy",
            &[("provider", "a"), ("model", "pa")]
        ),
        Some(0.0)
    );

    // `a` recovers: after its cool-down a probe succeeds and it takes traffic again.
    s.a.set_default(Behaviour::default());
    let before = s.a.request_count();
    let mut served_by_a = 0;
    for _ in 0..300 {
        let r = send(&s.gw, "rec", "pair", false).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        if v["model"] == "pa" {
            served_by_a += 1;
            if served_by_a >= 5 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served_by_a >= 5, "a never took traffic again");
    assert!(s.a.request_count() > before);
    let m = s.gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "switchyard_route_healthy",
            &[("provider", "a"), ("model", "pa")]
        ),
        Some(1.0)
    );
}

/// `strategy = "latency"`: a route made slow by its vendor gets a shrinking share while its
/// weight stays as configured; the same routes under `weighted` keep their even split.
#[tokio::test]
async fn the_latency_strategy_sheds_a_slow_route() {
    let fast = MockUpstream::start().await;
    let slow = MockUpstream::start().await;
    slow.set_default(Behaviour {
        stall_headers_ms: Some(150),
        ..Behaviour::default()
    });
    let body = ConfigBody::new()
        .provider("fast", "openai", &fast.base_url(), "")
        .provider("slow", "openai", &slow.base_url(), "")
        .model_with(
            "by-latency",
            "strategy = \"latency\"",
            &[("fast", "m-latency"), ("slow", "m-latency")],
        )
        .model("by-weight", &[("fast", "m-weight"), ("slow", "m-weight")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&body).await;
    let n = 40;
    for model in ["by-latency", "by-weight"] {
        for i in 0..n {
            let resp = send(&gw, &format!("{model}-{i}"), model, false).await;
            assert_eq!(resp.status(), 200);
        }
    }
    let share = |upstream: &str| {
        let hits = |m: &MockUpstream| {
            m.requests()
                .iter()
                .filter(|r| r.json()["model"] == upstream)
                .count()
        };
        hits(&slow) as f64 / n as f64
    };
    let (latency, weighted) = (share("m-latency"), share("m-weight"));
    println!("slow route's share: latency strategy {latency:.2}, weighted {weighted:.2}");
    assert!(latency <= 0.15, "latency strategy: slow share {latency}");
    assert!(
        (0.25..=0.75).contains(&weighted),
        "weighted: slow share {weighted}"
    );
}

/// A model with one route: a transient failure (here a 500, then a reset) is tried again on
/// the same route, with the backoff and within `max_attempts`; a failure that would repeat (a
/// 400) is not.
#[tokio::test]
async fn a_single_route_is_retried_after_a_transient_failure() {
    let s = setup().await;
    s.a.enqueue(Behaviour::status(500));
    let resp = send(&s.gw, "same1", "solo", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(s.a.request_count(), 2);
    let line = s.gw.usage_line("same1").await;
    assert_eq!(line["attempts"], 2, "{line}");
    assert_eq!(line["provider"], "a");
    assert_eq!(line["status"], 200);
    let m = s.gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "switchyard_upstream_errors_total",
            &[("provider", "a"), ("reason", "status_5xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "switchyard_retries_total", &[("provider", "a")]),
        Some(1.0)
    );

    // Streams too, before any content.
    s.a.enqueue(Behaviour::status(503));
    let resp = send(&s.gw, "same2", "solo", true).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("[DONE]"));
    assert_eq!(s.a.request_count(), 4);

    // The request's own fault is not retried.
    s.a.enqueue(Behaviour::status(400));
    let resp = send(&s.gw, "same3", "solo", false).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(s.a.request_count(), 5);

    // Every attempt failing: max_attempts (3) tries, then 502 — but the route cools down
    // after failures_to_cool (2), so the third is not taken on it.
    s.a.set_default(Behaviour::status(500));
    let resp = send(&s.gw, "same4", "solo", false).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(s.a.request_count(), 7);
}
