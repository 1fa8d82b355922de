//! `kind = "vertex"` (#28 item 2, and items 3, 4, 5 for Vertex) through the real binary against
//! [`MockVertex`]: a Vertex AI that takes only current access tokens from its own token
//! endpoint (which verifies the service account's signed JWT assertion), checks the project,
//! location and publisher in the path, and hands Gemini requests to the strict Gemini mock
//! and Claude requests (after Vertex's own rules) to the strict Anthropic mock.

use std::time::{Duration, Instant};

use crate::support;

use serde_json::{json, Value};
use support::*;

const GEM_KEY: &str = "gem-direct-key";
const ANTH_SIGNATURE: &str = "EqSIGvertex+/==";
const PRICES: &str = "input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    Chat,
    Messages,
    Responses,
}

const DOORS: [Door; 3] = [Door::Chat, Door::Messages, Door::Responses];

fn door_path(door: Door) -> &'static str {
    match door {
        Door::Chat => "/v1/chat/completions",
        Door::Messages => "/v1/messages",
        Door::Responses => "/v1/responses",
    }
}

/// A first turn at `door` that offers the `wx` tool.
fn with_tool(door: Door, model: &str, stream: bool) -> Value {
    let params = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    match door {
        Door::Chat => json!({"model": model, "stream": stream, "max_tokens": 500,
            "tools": [{"type": "function", "function": {"name": "wx", "parameters": params}}],
            "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]}),
        Door::Messages => json!({"model": model, "stream": stream, "max_tokens": 500,
            "tools": [{"name": "wx", "input_schema": params}],
            "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]}),
        Door::Responses => json!({"model": model, "stream": stream, "max_output_tokens": 500,
            "tools": [{"type": "function", "name": "wx", "parameters": params}],
            "input": "What is the weather in Oslo?"}),
    }
}

/// POSTs `body` at `path` with the demo key: status, `x-request-id`, body text.
async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, String, String) {
    post_with(gw, path, body, &[]).await
}

async fn post_with(
    gw: &Gateway,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = gw
        .client()
        .post(gw.url(path))
        .header("authorization", format!("Bearer {DEMO_SECRET}"))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, id, r.text().await.unwrap())
}

/// Whether `text` (a whole answer or a stream) at `door` carries a call of `wx`.
fn calls_wx(door: Door, text: &str) -> bool {
    let call = match door {
        Door::Chat => "\"tool_calls\"",
        Door::Messages => "\"tool_use\"",
        Door::Responses => "\"function_call\"",
    };
    text.contains(call) && text.contains("wx")
}

async fn gateway(body: ConfigBody, env: &[(&str, &str)]) -> Gateway {
    let body = body.team("t", "").demo_key("k", "t").usage_log().build();
    let mut b = Gateway::builder(&body);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start().await
}

fn bearer_of(r: &VertexRecorded) -> String {
    r.header("authorization").unwrap_or("").to_string()
}

/// Chat, Messages and Responses doors → Vertex Gemini, whole and streamed, with a tool: the
/// call arrives, the path is Vertex's, the token is one the token endpoint issued for a
/// verified assertion, and usage and cost are the vendor's.
#[tokio::test]
async fn every_door_reaches_vertex_gemini_with_tools_usage_and_cost() {
    let vx = MockVertex::start("us-east5").await;
    let gw = gateway(
        ConfigBody::new().text(&vx.provider("vx", "")).model_with(
            "gem",
            PRICES,
            &[("vx", "gemini-3-pro")],
        ),
        &[],
    )
    .await;
    for door in DOORS {
        for stream in [false, true] {
            let (status, id, text) =
                post(&gw, door_path(door), &with_tool(door, "gem", stream)).await;
            assert_eq!(status, 200, "{door:?} stream={stream}: {text}");
            assert!(calls_wx(door, &text), "{door:?} stream={stream}: {text}");
            let r = vx.last();
            let method = if stream {
                "gemini-3-pro:streamGenerateContent"
            } else {
                "gemini-3-pro:generateContent"
            };
            assert_eq!(
                r.path,
                format!("/v1/projects/{VERTEX_PROJECT}/locations/us-east5/publishers/google/models/{method}")
            );
            assert_eq!(r.query.as_deref(), stream.then_some("alt=sse"));
            assert!(vx
                .tokens_issued()
                .iter()
                .any(|t| bearer_of(&r) == format!("Bearer {t}")));
            assert!(r.header("x-goog-api-key").is_none());
            let line = gw.usage_line(&id).await;
            assert_eq!(line["provider"], "vx", "{line}");
            assert_eq!(
                (
                    line["prompt_tokens"].as_u64(),
                    line["completion_tokens"].as_u64()
                ),
                (Some(10), Some(5)),
                "{door:?} stream={stream}: {line}"
            );
            assert_eq!(line["usage_source"], "reported", "{line}");
            let cost = line["cost_usd"].as_f64().unwrap();
            assert!((cost - (10.0 + 5.0 * 2.0) / 1e6).abs() < 1e-12, "{line}");
        }
    }
    assert!(vx.bad_grants().is_empty(), "{:?}", vx.bad_grants());
    assert_eq!(
        vx.tokens_issued().len(),
        1,
        "one token serves while it is current"
    );
}

/// Chat, Messages and Responses doors → Vertex Claude (`publishers/anthropic`, `:rawPredict`
/// / `:streamRawPredict`), whole and streamed, with a tool, usage and cost.
#[tokio::test]
async fn every_door_reaches_vertex_claude_with_tools_usage_and_cost() {
    let vx = MockVertex::start("europe-west1").await;
    vx.anthropic.set_content(json!([
        {"type": "thinking", "thinking": "The user wants the weather.", "signature": ANTH_SIGNATURE},
        {"type": "tool_use", "id": "toolu_01A", "name": "wx", "input": {"city": "Oslo"}}
    ]));
    vx.anthropic.set_usage(AnthUsage {
        input: 12,
        cache_read: 0,
        cache_write: 0,
        output: 7,
    });
    let model = "claude-sonnet-4-5@20250929";
    let gw = gateway(
        ConfigBody::new().text(&vx.provider("vx", "")).model_with(
            "claude",
            PRICES,
            &[("vx", model)],
        ),
        &[],
    )
    .await;
    for door in DOORS {
        for stream in [false, true] {
            let (status, id, text) =
                post(&gw, door_path(door), &with_tool(door, "claude", stream)).await;
            assert_eq!(status, 200, "{door:?} stream={stream}: {text}");
            assert!(calls_wx(door, &text), "{door:?} stream={stream}: {text}");
            let r = vx.last();
            let method = if stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            };
            assert_eq!(
                r.path,
                format!("/v1/projects/{VERTEX_PROJECT}/locations/europe-west1/publishers/anthropic/models/{model}:{method}")
            );
            let sent = r.json();
            assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
            assert!(sent.get("model").is_none(), "{sent}");
            assert!(r.header("anthropic-version").is_none());
            assert!(r.header("x-api-key").is_none());
            let line = gw.usage_line(&id).await;
            assert_eq!(
                (
                    line["prompt_tokens"].as_u64(),
                    line["completion_tokens"].as_u64()
                ),
                (Some(12), Some(7)),
                "{door:?} stream={stream}: {line}"
            );
            let cost = line["cost_usd"].as_f64().unwrap();
            assert!((cost - (12.0 + 7.0 * 2.0) / 1e6).abs() < 1e-12, "{line}");
        }
    }
}

/// `/v1/messages` → Vertex Claude as Claude Code sends it: the body arrives as written (cache
/// marks, the signed thinking of the history, `thinking`), `model` out and Vertex's
/// `anthropic_version` in; of Claude Code's betas only those Vertex serves go on (the mock
/// refuses the others with Vertex's 400), and the answer's thinking reaches the client with
/// its signature.
#[tokio::test]
async fn messages_to_vertex_claude_keep_cache_marks_and_thinking() {
    let vx = MockVertex::start("us-east5").await;
    vx.anthropic.set_content(json!([
        {"type": "thinking", "thinking": "Cold, probably.", "signature": ANTH_SIGNATURE},
        {"type": "text", "text": "It is cold in Oslo."}
    ]));
    let model = "claude-opus-4-1@20250805";
    let gw = gateway(
        ConfigBody::new()
            .text(&vx.provider("vx", ""))
            .model("claude", &[("vx", model)]),
        &[],
    )
    .await;
    let body = json!({"model": "claude", "max_tokens": 2048, "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "wx", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "What is the weather in Oslo?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should call wx.", "signature": ANTH_SIGNATURE},
                {"type": "tool_use", "id": "toolu_01A", "name": "wx", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "-3C",
                 "cache_control": {"type": "ephemeral"}}]}]});
    let betas = "claude-code-20250219,interleaved-thinking-2025-05-14,prompt-caching-scope-2026-01-05,effort-2025-11-24";
    let (status, _, text) = post_with(
        &gw,
        "/v1/messages",
        &body,
        &[
            ("anthropic-beta", betas),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"signature_delta\"") && text.contains(ANTH_SIGNATURE),
        "{text}"
    );
    assert!(
        text.contains("\"text_delta\"") && text.contains("Oslo."),
        "{text}"
    );
    let r = vx.last();
    assert_eq!(
        r.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    let mut sent = r.json();
    assert_eq!(
        sent.as_object().unwrap().keys().next().map(String::as_str),
        Some("anthropic_version")
    );
    sent.as_object_mut().unwrap().remove("anthropic_version");
    let mut want = body.clone();
    want.as_object_mut().unwrap().remove("model");
    assert_eq!(sent, want, "the body arrives as the client wrote it");
    // What the Anthropic mock behind Vertex validated: the same, with `model` from the path.
    assert_eq!(vx.anthropic.last().json()["model"], model);

    // Token counting on a Vertex Claude route is the gateway's estimate: Vertex is not called.
    let before = vx.requests().len();
    let mut count = body.clone();
    for k in ["max_tokens", "stream"] {
        count.as_object_mut().unwrap().remove(k);
    }
    let (status, _, text) = post(&gw, "/v1/messages/count_tokens", &count).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(vx.requests().len(), before);
}

/// `/v1/embeddings` → Vertex's `:predict`: one instance per input, the vectors back in
/// OpenAI's list shape; `gemini-embedding-001` takes one input per request, and Vertex's
/// 400 for more reaches the client as a 400.
#[tokio::test]
async fn embeddings_go_through_predict() {
    let vx = MockVertex::start("us-central1").await;
    let gw = gateway(
        ConfigBody::new()
            .text(&vx.provider("vx", ""))
            .model_with(
                "emb",
                "kind = \"embedding\"",
                &[("vx", "gemini-embedding-001")],
            )
            .model_with(
                "emb-old",
                "kind = \"embedding\"",
                &[("vx", "text-embedding-005")],
            ),
        &[],
    )
    .await;
    let (status, _, text) = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "emb", "input": "hello world", "dimensions": 8}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["embedding"], json!([0.5, -1.0]), "{v}");
    let r = vx.last();
    assert!(
        r.path
            .ends_with("/publishers/google/models/gemini-embedding-001:predict"),
        "{}",
        r.path
    );
    assert_eq!(
        r.json(),
        json!({"instances": [{"content": "hello world"}], "parameters": {"outputDimensionality": 8}})
    );
    let (status, _, text) = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "emb-old", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][1]["embedding"], json!([1.5, -1.0]), "{v}");
    let (status, _, text) = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "emb", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("one instance per request"), "{text}");
}

/// One `[[models]]` entry over `vertex` and `gemini`, with fallbacks both ways: a throttled
/// Vertex falls back to the Gemini API (the same dialect: the request goes as it is) and a
/// Gemini API down falls back to Vertex.
#[tokio::test]
async fn vertex_and_gemini_fall_back_to_each_other() {
    let vx = MockVertex::start("us-east5").await;
    let gem = MockGemini::start(GEM_KEY).await;
    let gw = gateway(
        ConfigBody::new()
            .text(&vx.provider("vx", ""))
            .provider("ge", "gemini", &gem.origin(), "api_key_env = \"SY_VX_GEM\"")
            .model_with(
                "gem-vx-first",
                "fallbacks = [\"gem-api\"]",
                &[("vx", "gemini-3-pro")],
            )
            .model_with(
                "gem-api",
                "fallbacks = [\"gem-vx\"]",
                &[("ge", "gemini-3-pro")],
            )
            .model("gem-vx", &[("vx", "gemini-3-flash")])
            .text("[routing]\nmax_attempts = 3\nfailures_to_cool = 1"),
        &[("SY_VX_GEM", GEM_KEY)],
    )
    .await;
    vx.throttle(Some("30s"));
    let body = with_tool(Door::Chat, "gem-vx-first", false);
    let (status, _, text) = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(calls_wx(Door::Chat, &text), "{text}");
    assert_eq!(gem.request_count(), 1, "the Gemini API answered");
    assert_eq!(vx.last().status, 429);
    vx.throttle(None);

    gem.set_behaviour(GeminiBehaviour {
        error: Some((503, "UNAVAILABLE".into(), "The model is overloaded.".into())),
        ..Default::default()
    });
    let before = vx.requests().len();
    let body = with_tool(Door::Messages, "gem-api", true);
    let (status, _, text) = post(&gw, "/v1/messages", &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(calls_wx(Door::Messages, &text), "{text}");
    assert_eq!(vx.requests().len(), before + 1, "Vertex answered");
    assert_eq!(vx.last().status, 200);
}

/// Access tokens are refreshed in the background ahead of their expiry: under steady traffic
/// for more than two lifetimes of a short-lived token, no request fails and several tokens
/// were used, each while current (the mock refuses an expired one).
#[tokio::test]
async fn tokens_refresh_under_steady_traffic() {
    let vx = MockVertex::start("us-east5").await;
    // Six seconds: a refresh is due halfway, leaving three seconds for a token fetch on a
    // loaded machine (the mock's RS256 check is unoptimised in a debug build).
    vx.set_token_lifetime(6);
    let gw = gateway(
        ConfigBody::new()
            .text(&vx.provider("vx", ""))
            .model("gem", &[("vx", "gemini-3-pro")]),
        &[],
    )
    .await;
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(14) {
        let (status, _, text) = post(
            &gw,
            "/v1/chat/completions",
            &with_tool(Door::Chat, "gem", false),
        )
        .await;
        assert_eq!(
            status,
            200,
            "request {sent} after {:?}: {text}",
            start.elapsed()
        );
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let used: std::collections::HashSet<String> = vx.requests().iter().map(bearer_of).collect();
    assert!(
        used.len() >= 3,
        "{} tokens used over {sent} requests",
        used.len()
    );
    assert!(vx.requests().iter().all(|r| r.status == 200));
    assert!(vx.bad_grants().is_empty(), "{:?}", vx.bad_grants());
    let logs = gw.logs();
    for t in vx.tokens_issued() {
        assert!(!logs.contains(&t), "a token was logged");
    }
}

/// A token Vertex denies (403 `PERMISSION_DENIED`: the account lacks the role) is the
/// gateway's fault: 502 with nothing of Google's answer, and the route is cooled.
#[tokio::test]
async fn a_denied_token_is_a_502_and_cools_the_route() {
    let vx = MockVertex::start("us-east5").await;
    let gw = gateway(
        ConfigBody::new()
            .text(&vx.provider("vx", ""))
            .model("gem", &[("vx", "gemini-3-pro")])
            .text("[routing]\nmax_attempts = 1\nfailures_to_cool = 1\ncooldown_ms = 60000"),
        &[],
    )
    .await;
    vx.deny(true);
    let (status, _, text) = post(
        &gw,
        "/v1/chat/completions",
        &with_tool(Door::Chat, "gem", false),
    )
    .await;
    assert_eq!(status, 502, "{text}");
    assert!(!text.contains("aiplatform.endpoints.predict"), "{text}");
    assert!(text.contains("vx"), "{text}");
    let healthy = gw
        .metric_until(
            "switchyard_route_healthy",
            &[("provider", "vx"), ("model", "gem")],
            0.0,
        )
        .await;
    assert_eq!(healthy, 0.0);
}

/// A throttled location cools its own route only: a model over two locations keeps
/// answering from the other while the throttled one is left alone for Google's
/// `RetryInfo` delay, and another model in the other location is untouched.
#[tokio::test]
async fn a_throttled_location_cools_its_route_only() {
    let east = MockVertex::start("us-east5").await;
    let west = MockVertex::start("europe-west1").await;
    let gw = gateway(
        ConfigBody::new()
            .text(&east.provider("vx-east", ""))
            .text(&west.provider("vx-west", ""))
            .model(
                "gem",
                &[("vx-east", "gemini-3-pro"), ("vx-west", "gemini-3-pro")],
            )
            .model("gem-west", &[("vx-west", "gemini-3-flash")])
            .text("[routing]\nmax_attempts = 2"),
        &[],
    )
    .await;
    east.throttle(Some("30s"));
    for _ in 0..6 {
        let (status, _, text) = post(
            &gw,
            "/v1/chat/completions",
            &with_tool(Door::Chat, "gem", false),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    assert!(
        east.requests().len() <= 1,
        "the throttled location is not retried within its delay: {}",
        east.requests().len()
    );
    let (status, _, text) = post(
        &gw,
        "/v1/chat/completions",
        &with_tool(Door::Chat, "gem-west", false),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let metrics = gw.metrics().await;
    let healthy = |provider: &str, model: &str| {
        metric_value(
            &metrics,
            "switchyard_route_healthy",
            &[("provider", provider), ("model", model)],
        )
    };
    assert_eq!(
        gw.metric_until(
            "switchyard_route_healthy",
            &[("provider", "vx-east"), ("model", "gem")],
            0.0
        )
        .await,
        0.0
    );
    assert_ne!(healthy("vx-west", "gem"), Some(0.0), "{metrics}");
    assert_ne!(healthy("vx-west", "gem-west"), Some(0.0), "{metrics}");
}

/// A model the location does not serve: Vertex's 404, in the door's shape.
#[tokio::test]
async fn a_model_not_in_the_location_is_a_404_at_the_door() {
    let vx = MockVertex::start("europe-west1").await;
    vx.serve_only(&["gemini-3-pro"]);
    let gw = gateway(
        ConfigBody::new()
            .text(&vx.provider("vx", ""))
            .model("claude", &[("vx", "claude-opus-4-1@20250805")]),
        &[],
    )
    .await;
    let (status, _, text) = post(
        &gw,
        "/v1/messages",
        &with_tool(Door::Messages, "claude", false),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was not found"),
        "{v}"
    );
    let (status, _, text) = post(
        &gw,
        "/v1/chat/completions",
        &with_tool(Door::Chat, "claude", false),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was not found"),
        "{v}"
    );
}

/// `switchyard check` names each Vertex provider's credential source (never a secret), and a
/// credential that gives no token is a config error at the provider's line.
#[tokio::test]
async fn check_names_the_credential_source_and_refuses_an_unusable_one() {
    let vx = MockVertex::start("global").await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[[models]]\nname = \"gem\"\n  [[models.routes]]\n  provider = \"vx\"\n  model = \"gemini-3-pro\"\n",
        vx.provider("vx", "")
    );
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, &config).unwrap();
    let p = path.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_switchyard(&["check", "--config", &p], std::path::Path::new("."))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "provider \"vx\": Google credentials: service-account key file {} (credentials_file)",
            vx.account.key_file.display()
        )),
        "{stdout}"
    );
    for t in vx.tokens_issued() {
        assert!(!stdout.contains(&t));
    }

    // Without credentials_file: Application Default Credentials, the environment's file first.
    let adc = config.replace(
        &format!("credentials_file = \"{}\"\n", vx.account.key_file.display()),
        "",
    );
    assert_ne!(adc, config);
    let adc_path = dir.path().join("adc.toml");
    std::fs::write(&adc_path, &adc).unwrap();
    let key_file = vx.account.key_file.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(switchyard_bin())
            .args(["check", "--config", adc_path.to_str().unwrap()])
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key_file)
            .env("HOME", "/nonexistent")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "provider \"vx\": Google credentials: service-account key file {} (GOOGLE_APPLICATION_CREDENTIALS)",
            vx.account.key_file.display()
        )),
        "{stdout}"
    );

    vx.refuse_grants(true);
    let p = path.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_switchyard(&["check", "--config", &p], std::path::Path::new("."))
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("providers[0].credentials_file"), "{stderr}");
    assert!(
        stderr.contains("no access token from service-account key file"),
        "{stderr}"
    );
}

/// One `[[models]]` entry over `vertex` and `anthropic` for Claude (and one over `vertex` and
/// `gemini` for Gemini): when the Vertex route fails the other serves, and the other way; a
/// conversation with Claude's signed thinking goes to either as it is (Anthropic: signatures
/// are valid on every platform).
#[tokio::test]
async fn one_model_over_vertex_and_the_vendors_own_api() {
    const ANTH_KEY: &str = "anth-direct-key";
    let vx = MockVertex::start("us-east5").await;
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let gem = MockGemini::start(GEM_KEY).await;
    let gw = gateway(
        ConfigBody::new()
            .text(&vx.provider("vx", ""))
            .provider(
                "an",
                "anthropic",
                &anth.origin(),
                "api_key_env = \"SY_VX_ANTH\"",
            )
            .provider("ge", "gemini", &gem.origin(), "api_key_env = \"SY_VX_GEM\"")
            .model(
                "claude",
                &[
                    ("vx", "claude-sonnet-4-5@20250929"),
                    ("an", "claude-sonnet-4-5"),
                ],
            )
            .model("gem", &[("vx", "gemini-3-pro"), ("ge", "gemini-3-pro")])
            .text("[routing]\nmax_attempts = 2\nfailures_to_cool = 1\ncooldown_ms = 60000"),
        &[("SY_VX_ANTH", ANTH_KEY), ("SY_VX_GEM", GEM_KEY)],
    )
    .await;
    let history = json!({"model": "claude", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "wx", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "What is the weather in Oslo?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should call wx.", "signature": ANTH_SIGNATURE},
                {"type": "tool_use", "id": "toolu_01A", "name": "wx", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "-3C"}]}]});

    // Vertex denies: Anthropic's own API answers, with the signed thinking as sent.
    vx.deny(true);
    let (status, _, text) = post(&gw, "/v1/messages", &history).await;
    assert_eq!(status, 200, "{text}");
    let sent = anth.last().json();
    assert_eq!(sent["messages"][1], history["messages"][1]);
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    let anth_calls = anth.requests().len();
    // Vertex's route is cooled; once it serves again and Anthropic fails, Vertex answers.
    vx.deny(false);
    anth.set_behaviour(AnthBehaviour {
        error: Some((529, anthropic_error_body("overloaded_error", "busy"))),
        ..Default::default()
    });
    // Routes are picked by weight: until Anthropic's turn comes (and fails, and Vertex takes
    // the request over), a request may go to Vertex first. Every request is answered.
    let mut fell_back = false;
    for _ in 0..20 {
        let (status, _, text) = post(&gw, "/v1/messages", &history).await;
        assert_eq!(status, 200, "{text}");
        assert!(vx.last().path.contains("anthropic") && vx.last().status == 200);
        if anth.requests().len() > anth_calls {
            fell_back = true;
            break;
        }
    }
    assert!(
        fell_back,
        "the failing Anthropic API was never picked first"
    );
    assert_eq!(
        vx.anthropic.last().json()["messages"][1],
        history["messages"][1]
    );

    // Gemini: the Gemini API down, Vertex answers (the other way round:
    // `vertex_and_gemini_fall_back_to_each_other`).
    gem.set_behaviour(GeminiBehaviour {
        error: Some((503, "UNAVAILABLE".into(), "The model is overloaded.".into())),
        ..Default::default()
    });
    let before = vx.requests().len();
    let mut ok = 0;
    for _ in 0..3 {
        let (status, _, text) = post(
            &gw,
            "/v1/chat/completions",
            &with_tool(Door::Chat, "gem", false),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        ok += 1;
    }
    assert_eq!(ok, 3);
    assert!(vx.requests().len() >= before + 3, "Vertex served every one");
}
