//! A new user's first hour, through the real binary: the shipped configs' safe defaults (the
//! public demo key kept to the built-in mock, a warning while it can reach more), the
//! container config serving every README example, and the messages that must not mislead
//! (a budget refusal, an unknown or forbidden model, answers no retry can change).

use crate::support;

use serde_json::{json, Value};
use support::*;

/// The public demo key's secret, as the README publishes it.
const DEMO: &str = "sk-switchyard-demo";

/// The part of the demo-key warning that does not change with the reason.
const DEMO_WARNING: &str = "the public demo key of the example configs is in the config";

/// A real (OpenAI-compatible) vendor and a model routed to it, as the README's walkthrough
/// adds them.
fn real_vendor(base_url: &str) -> String {
    format!(
        "\n[[providers]]\nname = \"acme\"\nkind = \"openai\"\nbase_url = \"{base_url}\"\n\n\
         [[models]]\nname = \"acme-large\"\n  [[models.routes]]\n  provider = \"acme\"\n  model = \"large\"\n"
    )
}

async fn error_of(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn the_demo_key_is_refused_on_a_real_route_and_warned_about_when_it_is_not() {
    let vendor = MockUpstream::start().await;
    let example = shipped_config("config/switchyard.toml");
    let config = format!("{example}\n{}", real_vendor(&vendor.base_url()));
    let gw = Gateway::start_raw(&config).await;

    // The example keeps the demo team to the mock: the vendor is not reached.
    let resp = gw.chat(DEMO, &chat_body("acme-large", "hi", false)).await;
    let (status, _, v) = error_of(resp).await;
    assert_eq!(status, 403, "{v}");
    assert!(vendor.requests().is_empty(), "the vendor was reached");
    // The mock still answers.
    let resp = gw.chat(DEMO, &chat_body("demo", "hi", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(!gw.logs().contains(DEMO_WARNING), "{}", gw.logs());

    // A reload that lets the demo team use every model is warned about.
    let open = config.replace("models = [\"gpt-4o-mini\", \"claude-sonnet\"]", "");
    assert_ne!(open, config, "the example's demo team has a models list");
    gw.write_config_raw(&open);
    let logs = gw.wait_for_log(DEMO_WARNING).await;
    assert!(logs.contains("`acme-large`"), "{logs}");
    assert!(
        !logs.contains(DEMO),
        "no secret in the logs, not even the public one"
    );
}

#[tokio::test]
async fn the_demo_key_on_a_public_listener_is_warned_about_at_start() {
    // The container config listens on every interface, as its port mapping needs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public = format!("0.0.0.0:{port}");
    let container = shipped_config("deploy/container.toml").replace("{API}", &public);
    let gw = Gateway::start_raw(&container).await;
    let logs = gw.wait_for_log(DEMO_WARNING).await;
    assert!(
        logs.contains(&format!("the API listens on {public}")),
        "{logs}"
    );
}

#[tokio::test]
async fn the_container_config_serves_the_readme_examples() {
    let gw = Gateway::start_raw(&shipped_config("deploy/container.toml")).await;
    let resp = gw.chat(DEMO, &chat_body("demo", "hello", false)).await;
    assert_eq!(resp.status(), 200);
    let resp = gw
        .client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", DEMO)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude-sonnet",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hello"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message", "{v}");
}

#[tokio::test]
async fn an_unknown_model_points_at_the_model_list_and_a_forbidden_one_is_named_as_sent() {
    let gw = Gateway::start(&format!(
        r#"
[[providers]]
name = "m"
kind = "mock"

[[models]]
name = "big"
aliases = ["b"]
  [[models.routes]]
  provider = "m"
  model = "upstream-big"

[[models]]
name = "small"
  [[models.routes]]
  provider = "m"
  model = "upstream-small"

[[teams]]
name = "t"
models = ["small"]

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"
"#
    ))
    .await;
    let (status, _, v) = error_of(gw.chat(DEMO, &chat_body("nope", "hi", false)).await).await;
    assert_eq!(status, 404);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`nope`") && message.contains("GET /v1/models"),
        "{v}"
    );

    let (status, _, v) = error_of(gw.chat(DEMO, &chat_body("b", "hi", false)).await).await;
    assert_eq!(status, 403);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("`b`"), "the alias as sent: {v}");
    assert!(
        !message.contains("upstream-big") && !message.contains("`big`"),
        "{v}"
    );
}

/// A team allowed only `small`, on the mock; its key's secret is [`DEMO`].
fn small_only() -> String {
    format!(
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n\n\
         [[models]]\nname = \"big\"\n  [[models.routes]]\n  provider = \"m\"\n  model = \"x\"\n\n\
         [[models]]\nname = \"small\"\n  [[models.routes]]\n  provider = \"m\"\n  model = \"y\"\n\n\
         [[teams]]\nname = \"t\"\nmodels = [\"small\"]\n\n\
         [[keys]]\nid = \"k\"\nteam = \"t\"\nsha256 = \"{DEMO_SHA256}\"\n"
    )
}

#[tokio::test]
async fn answers_no_retry_can_change_say_so() {
    let gw = Gateway::start(&small_only()).await;
    let mut bad = chat_body("small", "hi", false);
    bad["messages"] = json!("not a list");
    for (secret, body, status) in [
        ("sk-wrong", chat_body("small", "hi", false), 401),
        (DEMO, chat_body("big", "hi", false), 403),
        (DEMO, chat_body("nope", "hi", false), 404),
        (DEMO, bad, 400),
    ] {
        let (got, headers, v) = error_of(gw.chat(secret, &body).await).await;
        assert_eq!(got, status, "{v}");
        assert_eq!(headers["x-should-retry"], "false", "{status}");
    }
    // An answer a retry may change does not carry it.
    let resp = gw.chat(DEMO, &chat_body("small", "hi", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("x-should-retry"));
}

#[tokio::test]
async fn a_405_says_which_methods_are_allowed() {
    let gw = Gateway::start(&small_only()).await;
    for (path, allow) in [
        ("/v1/chat/completions", "POST"),
        ("/v2/chat/completions", "POST"),
        ("/v1/models", "GET"),
        ("/v1/responses/resp_x", "GET, DELETE"),
        ("/v1/responses/resp_x/input_items", "GET"),
    ] {
        let resp = gw
            .client()
            .put(gw.url(path))
            .bearer_auth(DEMO)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{path}");
        assert_eq!(resp.headers()["allow"], allow, "{path}");
    }
}

#[tokio::test]
async fn a_budget_refusal_says_what_the_request_needed_and_what_is_left() {
    let gw = Gateway::start(&format!(
        r#"
[[providers]]
name = "m"
kind = "mock"

[[models]]
name = "priced"
input_usd_per_mtok = 10.0
output_usd_per_mtok = 30.0
  [[models.routes]]
  provider = "m"
  model = "x"

[[teams]]
name = "platform"
usd_per_month = 0.01

[[keys]]
id = "k"
team = "platform"
sha256 = "{DEMO_SHA256}"
"#
    ))
    .await;
    // Its likely output, [limits] default_max_tokens (1024) at $30 per million, is $0.03:
    // more than the whole budget of $0.01, of which nothing is spent.
    let mut body = chat_body("priced", "hi", false);
    body["max_tokens"] = json!(100_000);
    let (status, headers, v) = error_of(gw.chat(DEMO, &body).await).await;
    assert_eq!(status, 429, "{v}");
    assert!(headers.contains_key("retry-after"));
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("team `platform`"), "{message}");
    assert!(
        message.contains("needs at least $0.03"),
        "what it needed: {message}"
    );
    assert!(
        message.contains("$0.01 left of its $0.01"),
        "what is left: {message}"
    );
    assert!(!message.contains("has used"), "{message}");
}

/// The chat API names `/v2/chat/completions` beside `/v1/chat/completions`: the same door.
#[tokio::test]
async fn the_v2_chat_path_is_the_chat_door() {
    let gw = Gateway::start(&small_only()).await;
    let resp = gw
        .client()
        .post(gw.url("/v2/chat/completions"))
        .bearer_auth(DEMO)
        .json(&chat_body("small", "hi there", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion", "{v}");
    // Its errors are the chat door's, with the same key rules.
    let resp = gw
        .client()
        .post(gw.url("/v2/chat/completions"))
        .bearer_auth("sk-wrong")
        .json(&chat_body("small", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// Load balancers probe the API port; Claude Code sends `HEAD /` at start. Neither needs a
/// key, and neither is counted as a request.
#[tokio::test]
async fn the_api_listener_answers_health_probes_uncounted() {
    let gw = Gateway::start(&small_only()).await;
    let resp = gw.client().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    let resp = gw.client().head(gw.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = gw.client().head(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // `GET /` is no probe: a 404 in the chat door's shape, counted.
    let resp = gw.client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let m = gw.metrics().await;
    assert_eq!(
        metric_value(&m, "switchyard_requests_total", &[]),
        Some(1.0),
        "only GET / counts\n{m}"
    );
}

/// A refusal of one field names it in `param` (OpenAI's SDKs show it), on every door.
#[tokio::test]
async fn a_refused_field_is_named_in_param() {
    let gw = Gateway::start(&small_only()).await;
    let cases = [
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "model",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "small"}),
            "messages",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "small", "messages": "hi"}),
            "messages",
        ),
        (
            "/v1/responses",
            json!({"model": "small", "input": []}),
            "input",
        ),
        ("/v1/embeddings", json!({"model": "small"}), "input"),
    ];
    for (path, body, param) in cases {
        let resp = gw
            .client()
            .post(gw.url(path))
            .bearer_auth(DEMO)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path} {body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{path} {body}: {v}");
    }
}

/// Every door answers with ids in its own vendor's style, whatever vendor answered (here the
/// built-in mock, which speaks chat): `chatcmpl-…`, `msg_…`, `resp_…`; streams too.
#[tokio::test]
async fn ids_are_in_the_doors_own_style() {
    let gw = Gateway::start(&small_only()).await;
    let post = |path: &'static str, body: Value, anthropic: bool| {
        let mut req = gw.client().post(gw.url(path)).json(&body);
        req = if anthropic {
            req.header("x-api-key", DEMO)
                .header("anthropic-version", "2023-06-01")
        } else {
            req.bearer_auth(DEMO)
        };
        req.send()
    };
    let v: Value = post(
        "/v1/chat/completions",
        chat_body("small", "hi", false),
        false,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"), "{v}");
    let messages = json!({"model": "small", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    let v: Value = post("/v1/messages", messages.clone(), true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
    let mut streamed = messages;
    streamed["stream"] = json!(true);
    let text = post("/v1/messages", streamed, true)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("data: ")
                .filter(|d| d.contains("message_start"))
        })
        .unwrap();
    let start: Value = serde_json::from_str(start).unwrap();
    assert!(
        start["message"]["id"].as_str().unwrap().starts_with("msg_"),
        "{start}"
    );
    let v: Value = post(
        "/v1/responses",
        json!({"model": "small", "input": "hi"}),
        false,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
}
