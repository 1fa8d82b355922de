//! The Responses API's state on translated routes, through the binary: the gateway keeps the
//! responses it answers for a vendor without the API (the strict `MockAnthropic`) and rebuilds
//! the conversation for `previous_response_id`; `GET`/`DELETE /v1/responses/{id}` and
//! `…/input_items` answer from the store. Driven by the official OpenAI SDK and by raw HTTP:
//! team isolation, unknown ids, TTL expiry, the memory bound (evictions counted), and the
//! Redis backend shared by two instances, then stopped.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const OTHER_SECRET: &str = "sk-other-team";

/// A config with an Anthropic route, a native OpenAI route, two teams; `state` is the
/// `[state]` table (empty: the test harness's memory default).
fn config(anth: &MockAnthropic, oai: &MockUpstream, state: &str) -> String {
    format!(
        r#"
{state}

[[providers]]
name = "anth"
kind = "anthropic"
base_url = "{}"
api_key_env = "SY_S_ANTH"

[[providers]]
name = "oai"
kind = "openai"
base_url = "{}"

[[models]]
name = "claude"
  [[models.routes]]
  provider = "anth"
  model = "claude-sonnet-4-5"

[[providers]]
name = "local"
kind = "mock"

[[models]]
name = "demo"
  [[models.routes]]
  provider = "local"
  model = "mock-1"

[[models]]
name = "gpt"
  [[models.routes]]
  provider = "oai"
  model = "gpt-4.1"

[[teams]]
name = "t"

[[teams]]
name = "other"

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"

[[keys]]
id = "o"
team = "other"
sha256 = "{}"
"#,
        anth.origin(),
        oai.base_url(),
        sha256_hex(OTHER_SECRET)
    )
}

async fn start(anth: &MockAnthropic, oai: &MockUpstream, state: &str) -> Gateway {
    Gateway::builder(&config(anth, oai, state))
        .env("SY_S_ANTH", "anth-key")
        .start()
        .await
}

/// A call on the API with `secret`: (status, JSON body).
async fn call(
    gw: &Gateway,
    secret: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = gw
        .client()
        .request(method, gw.url(path))
        .bearer_auth(secret);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, v)
}

async fn create(gw: &Gateway, secret: &str, body: Value) -> (u16, Value) {
    call(gw, secret, "POST", "/v1/responses", Some(body)).await
}

/// A first turn whose answer is a function call, as a stored response of team `t`.
async fn first_turn(gw: &Gateway) -> Value {
    let (status, v) = create(
        gw,
        DEMO_SECRET,
        json!({"model": "claude", "input": "Weather in Paris?",
               "tools": [{"type": "function", "name": "get_weather",
                          "parameters": {"type": "object"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

fn tool_blocks() -> Value {
    json!([
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_42", "name": "get_weather", "input": {"city": "Paris"}}
    ])
}

/// The messages the vendor got: user, assistant (text + tool_use), user (tool_result), in
/// strict alternation, the result answering the call.
fn assert_rebuilt(sent: &Value) {
    let msgs = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{sent}");
    let first = &msgs[0]["content"];
    assert!(
        first == "Weather in Paris?" || first[0]["text"] == "Weather in Paris?",
        "{sent}"
    );
    let assistant = msgs[1]["content"].as_array().unwrap();
    assert_eq!(assistant[0]["type"], "text", "{sent}");
    assert_eq!(assistant.last().unwrap()["type"], "tool_use", "{sent}");
    assert_eq!(assistant.last().unwrap()["id"], "toolu_42", "{sent}");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result", "{sent}");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_42", "{sent}");
}

fn run_sdk(gw: &Gateway, model: &str, stream: &str) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_responses_state.py"
    );
    let out = std::process::Command::new(support::python())
        .args([script, &gw.url("/v1"), DEMO_SECRET, model, stream])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_continues_a_translated_conversation() {
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let gw = start(&anth, &oai, "").await;
    anth.set_content(tool_blocks());
    for stream in ["once", "stream"] {
        let before = anth.requests().len();
        let v = run_sdk(&gw, "claude", stream);
        assert!(v["error"].is_null(), "{stream}: {v}");
        let first = &v["first"];
        let id = first["id"].as_str().unwrap();
        assert!(id.starts_with("resp_sy"), "{v}");
        assert_eq!(first["store"], true, "{v}");
        assert_eq!(first["calls"][0]["call_id"], "toolu_42", "{v}");
        assert_eq!(v["second"]["previous_response_id"], id, "{v}");
        assert_ne!(v["second"]["id"], id, "{v}");

        // The second turn reached the vendor as the whole conversation, Anthropic's way.
        let sent = anth.requests();
        assert_eq!(sent.len(), before + 2, "{stream}: one vendor call per turn");
        let second = sent[before + 1].json();
        assert_rebuilt(&second);
        assert!(
            !String::from_utf8_lossy(&sent[before + 1].body).contains("resp_sy"),
            "the gateway's ids never reach the vendor: {second}"
        );

        // Read back through the SDK.
        assert_eq!(v["retrieved"]["id"], v["second"]["id"], "{v}");
        assert_eq!(v["retrieved"]["calls"], v["second"]["calls"], "{v}");
        assert_eq!(
            v["input_items"],
            json!([
                "message",
                "message",
                "function_call",
                "function_call_output"
            ]),
            "{stream}: the conversation the second turn was made of, oldest first: {v}"
        );
        assert_eq!(v["deleted"], true);
        assert_eq!(v["after_delete"], 404, "{v}");
        assert_eq!(v["follow_up_after_delete"], 404, "{v}");
        assert_eq!(
            anth.requests().len(),
            before + 2,
            "a 404 never reaches the vendor"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_teams_key_and_unknown_ids_get_404() {
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let gw = start(&anth, &oai, "").await;
    anth.set_content(tool_blocks());
    let first = first_turn(&gw).await;
    let id = first["id"].as_str().unwrap();
    let paths = [
        ("GET", format!("/v1/responses/{id}")),
        ("GET", format!("/v1/responses/{id}/input_items")),
        ("DELETE", format!("/v1/responses/{id}")),
    ];
    for (method, path) in &paths {
        let (status, v) = call(&gw, OTHER_SECRET, method, path, None).await;
        assert_eq!(status, 404, "{method} {path}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(id), "{v}");
        assert!(
            v.get("output").is_none() && !v.to_string().contains("Paris"),
            "{v}"
        );
    }
    // The next turn answers the stored call (Anthropic refuses a tool_use left unanswered).
    let follow_up = json!({"model": "claude", "previous_response_id": id, "input": [
        {"type": "function_call_output", "call_id": "toolu_42", "output": "sunny"},
        {"role": "user", "content": "and tomorrow?"}]});
    let before = anth.requests().len();
    let (status, v) = create(&gw, OTHER_SECRET, follow_up.clone()).await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(id), "{v}");
    assert!(!v.to_string().contains("Paris"), "{v}");
    assert_eq!(anth.requests().len(), before);

    // The owner still has it all (the other team's DELETE deleted nothing).
    let (status, v) = call(&gw, DEMO_SECRET, "GET", &paths[0].1, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, first);
    let (status, v) = call(&gw, DEMO_SECRET, "GET", &paths[1].1, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(
        v["data"][0]["content"][0]["text"], "Weather in Paris?",
        "{v}"
    );
    assert_eq!(v["has_more"], false);
    let (status, v) = create(&gw, DEMO_SECRET, follow_up).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["previous_response_id"], id);

    // Unknown ids: one of the gateway's form, and a vendor's on a translated route.
    let unknown = "resp_sy0123456789abcdef0123456789abcdef";
    let (status, v) = call(
        &gw,
        DEMO_SECRET,
        "GET",
        &format!("/v1/responses/{unknown}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = call(&gw, DEMO_SECRET, "DELETE", "/v1/responses/resp_abc", None).await;
    assert_eq!(status, 404, "{v}");
    for prev in [
        unknown,
        "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452e3795b",
    ] {
        let (status, v) = create(
            &gw,
            DEMO_SECRET,
            json!({"model": "claude", "previous_response_id": prev, "input": "hi"}),
        )
        .await;
        assert_eq!(status, 404, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(prev),
            "{v}"
        );
    }
    // Without a key, 401 as on every door.
    let r = gw.client().get(gw.url(&paths[0].1)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A vendor's id passes through untouched to a native route.
    oai.enqueue(Behaviour {
        body: Some(include_str!("../fixtures/responses/text.json").to_string()),
        ..Behaviour::default()
    });
    let body = json!({"model": "gpt", "previous_response_id": "resp_vendor1", "input": "hi"});
    let (status, _) = create(&gw, DEMO_SECRET, body).await;
    assert_eq!(status, 200);
    assert_eq!(
        oai.last_request().unwrap().json()["previous_response_id"],
        "resp_vendor1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_eviction_in_memory() {
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = format!(
        "[state]\nbackend = \"memory\"\ndir = {:?}\nresponses_ttl_s = 1\nresponses_max_entries = 2\n",
        dir.path().display().to_string()
    );
    let gw = start(&anth, &oai, &state).await;
    anth.set_content(tool_blocks());
    let a = first_turn(&gw).await;
    let b = first_turn(&gw).await;
    let c = first_turn(&gw).await;
    let get = |v: &Value| format!("/v1/responses/{}", v["id"].as_str().unwrap());
    // The bound of 2: the oldest went, counted.
    let (status, _) = call(&gw, DEMO_SECRET, "GET", &get(&a), None).await;
    assert_eq!(status, 404);
    for v in [&b, &c] {
        let (status, got) = call(&gw, DEMO_SECRET, "GET", &get(v), None).await;
        assert_eq!(status, 200, "{got}");
    }
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "switchyard_responses_evicted_total",
            &[("reason", "max_entries")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "switchyard_responses_evicted_total",
            &[("reason", "max_bytes")]
        ),
        Some(0.0),
        "present from the first scrape: {metrics}"
    );
    // `store: false` keeps nothing (and evicts nothing).
    let (status, v) = create(
        &gw,
        DEMO_SECRET,
        json!({"model": "claude", "input": "x", "store": false}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["store"], false);
    let (status, _) = call(&gw, DEMO_SECRET, "GET", &get(&v), None).await;
    assert_eq!(status, 404);
    // The TTL of 1 s: gone after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, v) = call(&gw, DEMO_SECRET, "GET", &get(&c), None).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = create(
        &gw,
        DEMO_SECRET,
        json!({"model": "claude", "previous_response_id": c["id"], "input": "hi"}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "switchyard_responses_evicted_total",
            &[("reason", "max_entries")]
        ),
        Some(1.0),
        "expiry is not eviction: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shares_the_state_between_instances() {
    let Some(mut redis) = RedisServer::try_start() else {
        return;
    };
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let state = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nresponses_ttl_s = 600\n",
        redis.url()
    );
    let one = start(&anth, &oai, &state).await;
    let two = start(&anth, &oai, &state).await;
    anth.set_content(tool_blocks());

    // Stored by one, continued on the other.
    let first = first_turn(&one).await;
    let id = first["id"].as_str().unwrap();
    let key = format!("switchyard:resp:t:{id}");
    assert_eq!(redis.keys("switchyard:resp:*"), vec![key.clone()]);
    let ttl: i64 = redis
        .command(&["TTL", &key])
        .unwrap()
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((1..=600).contains(&ttl), "{ttl}");
    let follow_up = json!({"model": "claude", "previous_response_id": id,
        "input": [{"type": "function_call_output", "call_id": "toolu_42", "output": "sunny"}]});
    let (status, v) = create(&two, DEMO_SECRET, follow_up.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_rebuilt(&anth.last().json());
    let (status, got) = call(
        &two,
        DEMO_SECRET,
        "GET",
        &format!("/v1/responses/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got, first);
    let (status, _) = call(
        &two,
        OTHER_SECRET,
        "GET",
        &format!("/v1/responses/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Redis stopped: what needs the store is a clear 503; a save that fails is counted.
    redis.stop();
    let before = anth.requests().len();
    let (status, v) = create(&one, DEMO_SECRET, follow_up).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("response store") && message.contains(id),
        "{v}"
    );
    assert_eq!(anth.requests().len(), before, "nothing went to the vendor");
    let (status, v) = call(
        &one,
        DEMO_SECRET,
        "GET",
        &format!("/v1/responses/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 503, "{v}");
    let (status, v) = create(&one, DEMO_SECRET, json!({"model": "claude", "input": "hi"})).await;
    assert_eq!(
        status, 200,
        "the answer itself does not need the store: {v}"
    );
    let mut counted = None;
    for _ in 0..50 {
        let metrics = one.metrics().await;
        counted = metric_value(
            &metrics,
            "switchyard_responses_store_errors_total",
            &[("op", "save")],
        );
        if counted == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, Some(1.0));
    let logs = one.logs();
    assert!(logs.contains("response store"), "{logs}");
    assert!(
        !logs.contains(DEMO_SECRET) && !logs.contains("anth-key"),
        "{logs}"
    );
    // Redis back (empty): the store works again without a restart of the gateways.
    redis.restart();
    let mut back = None;
    for _ in 0..50 {
        let first = first_turn(&one).await;
        let path = format!("/v1/responses/{}", first["id"].as_str().unwrap());
        if call(&two, DEMO_SECRET, "GET", &path, None).await.0 == 200 {
            back = Some(first);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "the store never came back: {}", one.logs());
}

/// The built-in mock (the README's first commands) keeps its Responses too, streamed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_keeps_its_responses() {
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let gw = start(&anth, &oai, "").await;
    let (status, first) =
        create(&gw, DEMO_SECRET, json!({"model": "demo", "input": "hello"})).await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("resp_sy"), "{first}");
    let r = gw
        .client()
        .post(gw.url("/v1/responses"))
        .bearer_auth(DEMO_SECRET)
        .json(&json!({"model": "demo", "input": "again", "stream": true,
                      "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let done = text
        .split("\n\n")
        .find(|e| e.starts_with("event: response.completed"))
        .unwrap_or_else(|| panic!("{text}"));
    let done: Value = serde_json::from_str(done.split_once("data: ").unwrap().1).unwrap();
    let second = &done["response"];
    assert_eq!(second["previous_response_id"], id, "{done}");
    let path = format!(
        "/v1/responses/{}/input_items?order=asc",
        second["id"].as_str().unwrap()
    );
    let (status, items) = call(&gw, DEMO_SECRET, "GET", &path, None).await;
    assert_eq!(status, 200, "{items}");
    let texts: Vec<&Value> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["content"][0]["text"])
        .collect();
    assert_eq!(texts[0], "hello", "{items}");
    assert_eq!(
        texts[1], &first["output"][0]["content"][0]["text"],
        "{items}"
    );
    assert_eq!(texts[2], "again", "{items}");
}
