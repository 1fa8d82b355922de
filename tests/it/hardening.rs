//! Hardening end to end (issue 18), with the real binary on loopback: caps on the request head
//! on both listeners, strict `messages`, and the allow-list of a vendor's response headers.

use crate::support;

use std::path::Path;

use serde_json::{json, Value};
use support::*;

/// The vendor headers the issue saw reach the client, and a few more of the same kinds.
fn vendor_headers() -> Vec<(String, String)> {
    [
        ("x-request-id", "req_vendor_42"),
        ("openai-processing-ms", "17"),
        ("openai-organization", "org-internal-7"),
        ("openai-project", "proj_internal"),
        ("x-ratelimit-limit-requests", "9000"),
        ("x-ratelimit-remaining-tokens", "3999000"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("set-cookie", "vid=abc; Path=/"),
        ("server", "cloudflare"),
        ("cf-ray", "8c1f-SJC"),
        ("x-powered-by", "vendor"),
        ("via", "1.1 vendor-edge"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// Headers of the list above that must never reach the client.
const LEAKED: &[&str] = &[
    "openai-organization",
    "openai-project",
    "anthropic-ratelimit-requests-remaining",
    "set-cookie",
    "server",
    "cf-ray",
    "x-powered-by",
    "via",
];

/// A key with a limit of its own (60 requests a minute).
const LIMITED_SECRET: &str = "sk-hardening-limited";

/// `oai` (OpenAI kind) and `claude` (Anthropic kind) vendors; key `k` of a team without
/// limits, and key `lim` (`LIMITED_SECRET`) with `rpm = 60`.
async fn setup(server_extra: &str) -> (MockUpstream, MockUpstream, Gateway) {
    let oai = MockUpstream::start().await;
    let anth = MockUpstream::start().await;
    let gw = Gateway::builder(&vendors_config(&oai, &anth, ""))
        .server_extra(server_extra)
        .start()
        .await;
    (oai, anth, gw)
}

fn vendors_config(oai: &MockUpstream, anth: &MockUpstream, extra: &str) -> String {
    ConfigBody::new()
        .provider("oai", "openai", &oai.base_url(), "")
        .provider("claude", "anthropic", &anth.origin(), "")
        .model("gpt", &[("oai", "gpt-x")])
        .model("claude", &[("claude", "claude-x")])
        .team("t", "")
        .demo_key("k", "t")
        .key("lim", "t", LIMITED_SECRET, "rpm = 60")
        .text(extra)
        .build()
}

/// The `error` object of a JSON error answer, after checking status and shape.
async fn error_of(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "errors are JSON"
    );
    let v: Value = resp.json().await.unwrap();
    let e = v["error"].clone();
    assert_eq!(e["status"], status, "{v}");
    for field in ["message", "type", "code", "reason"] {
        assert!(e[field].is_string(), "{field} in {v}");
    }
    e
}

#[tokio::test]
async fn head_caps_answer_431_and_414_on_both_listeners() {
    let (oai, _anth, gw) = setup("").await;
    let c = client();
    let body = chat_body("gpt", "hi", false);

    // The case: one 200 KB header line.
    let big = "a".repeat(200 * 1024);
    let resp = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-big", &big)
        .json(&body)
        .send()
        .await
        .unwrap();
    let e = error_of(resp, 431).await;
    assert_eq!(e["reason"], "invalid_request");
    assert!(e["message"].as_str().unwrap().contains("`x-big`"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("8192"), "{e}");

    // 8 KiB a line is the default: a 7 KiB header passes.
    let fine = "a".repeat(7 * 1024);
    let resp = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-fine", &fine)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Five 7 KiB lines: each under 8 KiB, together over the 32 KiB head.
    let mut req = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET);
    for i in 0..5 {
        req = req.header(format!("x-part-{i}"), &fine);
    }
    let e = error_of(req.json(&body).send().await.unwrap(), 431).await;
    assert!(e["message"].as_str().unwrap().contains("32768"), "{e}");

    // 101 header fields (the default cap is 100).
    let mut req = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET);
    for i in 0..101 {
        req = req.header(format!("x-h-{i}"), "1");
    }
    error_of(req.json(&body).send().await.unwrap(), 431).await;

    // A 9 KiB request target.
    let long = format!("/v1/chat/completions?q={}", "a".repeat(9 * 1024));
    let resp = c
        .post(gw.url(&long))
        .bearer_auth(DEMO_SECRET)
        .json(&body)
        .send()
        .await
        .unwrap();
    error_of(resp, 414).await;

    // Refused before authentication: no key is needed to be told.
    let resp = c
        .post(gw.url("/v1/chat/completions"))
        .header("x-big", &big)
        .json(&body)
        .send()
        .await
        .unwrap();
    error_of(resp, 431).await;

    // The admin listener holds the same caps.
    let resp = c
        .get(gw.admin_url("/metrics"))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    error_of(resp, 431).await;
    let resp = c
        .get(gw.admin_url(&format!("/healthz?{}", "a".repeat(9 * 1024))))
        .send()
        .await
        .unwrap();
    error_of(resp, 414).await;
    assert_eq!(
        c.get(gw.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Above pingora's own cap (256 header fields) pingora answers first: a bare 400.
    let mut req = c.get(gw.url("/v1/models")).bearer_auth(DEMO_SECRET);
    for i in 0..300 {
        req = req.header(format!("x-h-{i}"), "1");
    }
    assert_eq!(req.send().await.unwrap().status(), 400);

    // Only the request with the 7 KiB header went upstream; the refusals are counted.
    assert_eq!(oai.request_count(), 1);
    let m = gw.metrics().await;
    assert_eq!(
        metric_value(&m, "switchyard_requests_total", &[("status", "431")]),
        Some(4.0)
    );
    assert_eq!(
        metric_value(&m, "switchyard_requests_total", &[("status", "414")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn head_caps_are_configurable() {
    let (_oai, _anth, gw) = setup("max_header_line_bytes = 1024\nmax_uri_bytes = 64").await;
    let c = client();
    let resp = c
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mid", "a".repeat(2000))
        .json(&chat_body("gpt", "hi", false))
        .send()
        .await
        .unwrap();
    let e = error_of(resp, 431).await;
    assert!(e["message"].as_str().unwrap().contains("1024"), "{e}");
    let resp = c
        .post(gw.url(&format!("/v1/chat/completions?{}", "q".repeat(64))))
        .bearer_auth(DEMO_SECRET)
        .json(&chat_body("gpt", "hi", false))
        .send()
        .await
        .unwrap();
    let e = error_of(resp, 414).await;
    assert!(e["message"].as_str().unwrap().contains("64 bytes"), "{e}");
}

#[tokio::test]
async fn messages_without_content_or_with_unknown_roles_are_400_naming_the_field() {
    let (oai, _anth, gw) = setup("").await;
    for (messages, param) in [
        (json!([{"role": "user"}]), "messages[0].content"),
        (
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": null}]),
            "messages[1].content",
        ),
        (
            json!([{"role": "user", "content": 7}]),
            "messages[0].content",
        ),
        (
            json!([{"role": "robot", "content": "a"}]),
            "messages[0].role",
        ),
    ] {
        let body = json!({"model": "gpt", "messages": messages});
        let e = error_of(gw.chat(DEMO_SECRET, &body).await, 400).await;
        assert_eq!(e["param"], param, "{body}");
        assert_eq!(e["reason"], "invalid_request");
        assert_eq!(e["type"], "invalid_request_error");
    }
    assert_eq!(oai.request_count(), 0, "nothing invalid went upstream");

    // What OpenAI's API allows goes through: an assistant turn with only tool calls.
    let body = json!({"model": "gpt", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    ]});
    assert_eq!(gw.chat(DEMO_SECRET, &body).await.status(), 200);
    assert_eq!(oai.request_count(), 1);
}

/// Checks one answer's head: nothing of the vendor's but the allowed headers.
fn assert_clean(resp: &reqwest::Response, what: &str) {
    let h = resp.headers();
    for name in LEAKED {
        assert!(
            h.get(*name).is_none(),
            "{what}: `{name}` reached the client"
        );
    }
    // The key's team has no limits: no x-ratelimit-* of the vendor's.
    for name in ["x-ratelimit-limit-requests", "x-ratelimit-remaining-tokens"] {
        if let Some(v) = h.get(name) {
            assert!(
                v != "9000" && v != "3999000",
                "{what}: the vendor's `{name}: {v:?}` reached the client"
            );
        }
    }
    assert_eq!(
        h["x-upstream-request-id"], "req_vendor_42",
        "{what}: the vendor's request id, renamed"
    );
    assert_ne!(
        h["x-request-id"], "req_vendor_42",
        "{what}: ours stays ours"
    );
}

#[tokio::test]
async fn vendor_headers_are_cut_to_the_allow_list_on_every_answer() {
    let (oai, anth, gw) = setup("").await;
    let with_headers = |b: Behaviour| Behaviour {
        headers: vendor_headers(),
        ..b
    };
    oai.set_default(with_headers(Behaviour::default()));
    let c = client();

    let resp = gw.chat(DEMO_SECRET, &chat_body("gpt", "hi", false)).await;
    assert_clean(&resp, "chat");
    assert_eq!(resp.headers()["openai-processing-ms"], "17");
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();

    let resp = gw.chat(DEMO_SECRET, &chat_body("gpt", "hi", true)).await;
    assert_clean(&resp, "chat stream");
    assert!(resp.text().await.unwrap().contains("[DONE]"));

    // A vendor error passed on (not retried), rewrapped in the gateway's shape.
    oai.enqueue(with_headers(Behaviour::status(400)));
    let resp = gw.chat(DEMO_SECRET, &chat_body("gpt", "hi", false)).await;
    assert_clean(&resp, "vendor 400");
    error_of(resp, 400).await;

    // The Anthropic front door, to an OpenAI vendor.
    let messages = json!({"model": "gpt", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});
    let resp = c
        .post(gw.url("/v1/messages"))
        .header("x-api-key", DEMO_SECRET)
        .json(&messages)
        .send()
        .await
        .unwrap();
    assert_clean(&resp, "messages front door");
    assert_eq!(resp.status(), 200);

    // An Anthropic vendor (translated to the chat front door), its answer replayed.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/anthropic/message_text.json");
    anth.set_default(Behaviour {
        body: Some(std::fs::read_to_string(fixture).unwrap()),
        headers: vendor_headers(),
        ..Behaviour::default()
    });
    let resp = gw
        .chat(DEMO_SECRET, &chat_body("claude", "hi", false))
        .await;
    assert_clean(&resp, "anthropic vendor");
    assert_eq!(resp.status(), 200);

    // The Anthropic front door to the Anthropic vendor: the body passes natively, the head not.
    let native = json!({"model": "claude", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});
    let resp = c
        .post(gw.url("/v1/messages"))
        .header("x-api-key", DEMO_SECRET)
        .header("anthropic-version", "2023-06-01")
        .json(&native)
        .send()
        .await
        .unwrap();
    assert_clean(&resp, "native messages");
    assert_eq!(resp.status(), 200);
    // A key with limits gets the gateway's own x-ratelimit-* (its 60 a minute), not the vendor's.
    let resp = gw
        .chat(LIMITED_SECRET, &chat_body("gpt", "hi", false))
        .await;
    assert_clean(&resp, "limited key");
    assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "60");
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "59");
}

#[tokio::test]
async fn counters_of_names_a_reload_adds_are_exported_at_zero() {
    let (oai, anth, gw) = setup("").await;
    let m = gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "switchyard_config_reloads_total",
            &[("result", "failure")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric_value(&m, "switchyard_rate_limited_total", &[("key", "new")]),
        None
    );
    let added = format!(
        "\n[[keys]]\nid = \"new\"\nteam = \"t\"\nsha256 = \"{}\"\n",
        sha256_hex("sk-hardening-new")
    );
    gw.write_config(&vendors_config(&oai, &anth, &added));
    let mut scrape = String::new();
    for _ in 0..100 {
        scrape = gw.metrics().await;
        if metric_value(
            &scrape,
            "switchyard_config_reloads_total",
            &[("result", "success")],
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for limit in ["rpm", "tpm", "concurrency", "budget"] {
        assert_eq!(
            metric_value(
                &scrape,
                "switchyard_rate_limited_total",
                &[("team", "t"), ("key", "new"), ("limit", limit)]
            ),
            Some(0.0),
            "{limit}\n{scrape}"
        );
    }
}

/// A body without `Content-Length` (chunked), far over pingora's 64 KiB replay buffer,
/// reaches the vendor whole: the gateway sends the body it read.
#[tokio::test]
async fn a_large_chunked_body_reaches_the_vendor_whole() {
    let (oai, _anth, gw) = setup("").await;
    let filler = "x".repeat(300 * 1024);
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": filler}]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let parts: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(parts)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.logs());
    assert_eq!(oai.request_count(), 1);
    let got: Value = serde_json::from_slice(&oai.last_request().unwrap().body).unwrap();
    assert_eq!(
        got["messages"][0]["content"].as_str().unwrap().len(),
        300 * 1024
    );
}
