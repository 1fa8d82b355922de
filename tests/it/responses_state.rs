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
    let key = format!("switchyard:{{resp}}:b:t:{id}");
    assert_eq!(redis.keys("switchyard:{resp}:b:*"), vec![key.clone()]);
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

/// A raw HTTP/1.1 client reads a translated stream only until `response.completed` and sends
/// its next turn at once, while the vendor still holds back its stream's last bytes: the
/// gateway kept the response before that event went out, so the follow-up is a 200 (it was a
/// 404 when the response was kept only at the vendor's last byte: #27, "The Responses store
/// answers late").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_sent_at_response_completed_finds_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let gw = start(&anth, &oai, "").await;
    anth.set_behaviour(AnthBehaviour {
        end_delay_ms: Some(4_000),
        ..AnthBehaviour::default()
    });
    for turn in 0..3 {
        let body =
            json!({"model": "claude", "input": format!("turn {turn}"), "stream": true}).to_string();
        let mut conn = tokio::net::TcpStream::connect(gw.api_addr()).await.unwrap();
        let head = format!(
            "POST /v1/responses HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {DEMO_SECRET}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        let started = std::time::Instant::now();
        let completed = loop {
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(at) = text.find("event: response.completed\ndata: ") {
                let rest = &text[at + "event: response.completed\ndata: ".len()..];
                if let Some(line) = rest.split_once('\n').map(|(l, _)| l) {
                    break serde_json::from_str::<Value>(line).unwrap();
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
                .await
                .expect("response.completed within 10 s")
                .unwrap();
            assert!(n > 0, "the stream ended before response.completed: {text}");
            seen.extend_from_slice(&buf[..n]);
        };
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "response.completed came only with the vendor's last bytes"
        );
        let id = completed["response"]["id"].as_str().unwrap().to_string();
        // At once, on another connection, while the first one is still open.
        let (status, next) = create(
            &gw,
            DEMO_SECRET,
            json!({"model": "claude", "input": "and then?", "previous_response_id": id}),
        )
        .await;
        assert_eq!(status, 200, "turn {turn}: {next}");
        assert_eq!(next["previous_response_id"], id, "{next}");
        drop(conn);
    }
}

/// An `item_reference` the gateway cannot resolve is a 400 naming `input[i].id`, before any
/// vendor is called: one that names a response the store does not hold (another team's), and
/// one in no form the gateway mints, on a translated route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_item_references_are_a_400_naming_the_item() {
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let gw = start(&anth, &oai, "").await;
    let first = first_turn(&gw).await;
    let item = first["output"][0]["id"].as_str().unwrap().to_string();
    assert!(item.starts_with("msg_resp_sy"), "{first}");
    let before = anth.requests().len();
    for (secret, id) in [(OTHER_SECRET, item.as_str()), (DEMO_SECRET, "msg_abc123")] {
        let (status, v) = create(
            &gw,
            secret,
            json!({"model": "claude", "input": [
                {"role": "user", "content": "Weather in Paris?"},
                {"type": "item_reference", "id": id}]}),
        )
        .await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["param"], "input[1].id", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("Item with id '{id}' not found")),
            "{v}"
        );
    }
    assert_eq!(anth.requests().len(), before, "no vendor call");
    // The owner's reference resolves.
    let (status, v) = create(
        &gw,
        DEMO_SECRET,
        json!({"model": "claude", "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "item_reference", "id": item},
            {"role": "user", "content": "And tomorrow?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

/// The bytes the Redis store holds, all teams or one (`team:{team}`).
fn held(redis: &RedisServer, field: &str) -> u64 {
    redis
        .hget("switchyard:{resp}:held", field)
        .map_or(0, |v| v.parse().unwrap())
}

async fn status_of(gw: &Gateway, secret: &str, v: &Value) -> u16 {
    let path = format!("/v1/responses/{}", v["id"].as_str().unwrap());
    call(gw, secret, "GET", &path, None).await.0
}

/// #27: on Redis a stored response lived its 30-day TTL with no cap. Now a team's responses
/// are bounded in bytes (`responses_team_max_bytes`: the team's oldest evicted, its others and
/// other teams' kept) and so is the whole store (`responses_max_bytes`: the oldest of all
/// evicted), by what Redis holds; evictions counted, the bytes held a gauge; a delete frees its
/// bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_is_bounded_per_team_and_in_total() {
    let Some(redis) = RedisServer::try_start() else {
        panic!("redis-server is needed for this test");
    };
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    anth.set_content(tool_blocks());
    let state = |extra: &str| {
        format!(
            "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nresponses_ttl_s = 600\n{extra}",
            redis.url()
        )
    };
    // One response's size, as Redis holds it (all are alike here).
    let size = {
        let mut gw = start(&anth, &oai, &state("")).await;
        first_turn(&gw).await;
        gw.stop();
        let size = held(&redis, "total");
        assert!(size > 500, "{size}");
        assert_eq!(held(&redis, "team:t"), size);
        redis.command(&["FLUSHALL"]).unwrap();
        size
    };
    let team_max = size * 7 / 2;
    let total_max = size * 9 / 2;
    let gw = start(
        &anth,
        &oai,
        &state(&format!(
            "responses_team_max_bytes = {team_max}\nresponses_max_bytes = {total_max}\n"
        )),
    )
    .await;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(first_turn(&gw).await);
    }
    // The team's bound: its two oldest went, its three newest stay.
    for (i, v) in mine.iter().enumerate() {
        let want = if i < 2 { 404 } else { 200 };
        assert_eq!(status_of(&gw, DEMO_SECRET, v).await, want, "response {i}");
    }
    assert!(held(&redis, "team:t") <= team_max);
    let body = json!({"model": "claude", "input": "Weather in Paris?",
                      "tools": [{"type": "function", "name": "get_weather",
                                 "parameters": {"type": "object"}}]});
    let (status, x) = create(&gw, OTHER_SECRET, body.clone()).await;
    assert_eq!(status, 200, "{x}");
    // Another team's response fits beside them: nothing of `t` went.
    assert_eq!(status_of(&gw, DEMO_SECRET, &mine[2]).await, 200);
    // The store's bound: one more response evicts the oldest of all (`t`'s third).
    let (status, y) = create(&gw, OTHER_SECRET, body).await;
    assert_eq!(status, 200, "{y}");
    assert_eq!(status_of(&gw, DEMO_SECRET, &mine[2]).await, 404);
    for v in &mine[3..] {
        assert_eq!(status_of(&gw, DEMO_SECRET, v).await, 200);
    }
    for v in [&x, &y] {
        assert_eq!(status_of(&gw, OTHER_SECRET, v).await, 200);
    }
    let total = held(&redis, "total");
    assert!(total <= total_max, "{total} > {total_max}");
    assert_eq!(
        redis.keys("switchyard:{resp}:b:*").len(),
        4,
        "{:?}",
        redis.keys("*")
    );
    let metrics = gw.metrics().await;
    let evicted = |reason: &str| {
        metric_value(
            &metrics,
            "switchyard_responses_evicted_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(evicted("team_max_bytes"), Some(2.0), "{metrics}");
    assert_eq!(evicted("max_bytes"), Some(1.0), "{metrics}");
    assert_eq!(
        metric_value(&metrics, "switchyard_responses_stored_bytes", &[]),
        Some(total as f64),
        "{metrics}"
    );
    // A delete frees its bytes and its index entries.
    let path = format!("/v1/responses/{}", mine[4]["id"].as_str().unwrap());
    assert_eq!(call(&gw, DEMO_SECRET, "DELETE", &path, None).await.0, 200);
    assert!(held(&redis, "total") < total);
    let index = redis.command(&["ZCARD", "switchyard:{resp}:i:t"]).unwrap();
    assert_eq!(index.trim(), ":1", "only mine[3] is left in t's index");
}

/// `[state] responses_redis_url`: stored responses in a Redis of their own while the limiter
/// keeps its counters elsewhere (here in memory): a response is in that Redis, and continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_responses_in_a_redis_of_their_own() {
    let Some(redis) = RedisServer::try_start() else {
        panic!("redis-server is needed for this test");
    };
    let anth = MockAnthropic::start("anth-key").await;
    let oai = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = format!(
        "[state]\nbackend = \"memory\"\ndir = {:?}\nresponses_redis_url = \"{}\"\n",
        dir.path().display().to_string(),
        redis.url()
    );
    let gw = start(&anth, &oai, &state).await;
    anth.set_content(tool_blocks());
    let first = first_turn(&gw).await;
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        redis.keys("switchyard:{resp}:b:*"),
        vec![format!("switchyard:{{resp}}:b:t:{id}")]
    );
    assert!(
        redis.keys("switchyard:{t:*").is_empty(),
        "the limiter is not there"
    );
    let (status, v) = create(
        &gw,
        DEMO_SECRET,
        json!({"model": "claude", "previous_response_id": id, "input": [
            {"type": "function_call_output", "call_id": "toolu_42", "output": "sunny"}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}
