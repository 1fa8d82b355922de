//! Google's clients through the Gemini door of the real binary (#30, "What it must show"):
//!
//! - the Gen AI Python SDK (`google-genai`, pinned in `.ci/run`; driven by
//!   `tests/python/genai_sdk.py`, which records the bytes of every HTTP exchange) with the
//!   gateway as `base_url`, at the SDK's default API version (`v1`) and at `v1beta`: generate,
//!   stream, count tokens, embed (one and a batch), list models, get a model, and a tool round
//!   trip with automatic function calling off. On a `gemini` route the bytes are compared both
//!   ways against the SDK pointed straight at the strict [`MockGemini`]; on an `anthropic` route
//!   the answers are translated, tools included.
//! - Gemini CLI (`gemini -p`, pinned in `tests/clients/gemini-cli/`) pointed at the gateway the
//!   way its docs say (`GOOGLE_GEMINI_BASE_URL`, `GEMINI_API_KEY`), on an `anthropic` route and
//!   on the built-in mock, its default model names matched by an alias pattern.
//!
//! The SDK runs in the interpreter of the other SDK tests ([`support::python`]); a missing
//! package is a failure that says how to install it, as the other SDK tests fail. Gemini CLI
//! must be installed with `npm ci --prefix tests/clients/gemini-cli` (`.ci/run` does); a
//! missing install is a failure that says so, as for Codex and Claude Code.

use std::path::Path;

use crate::real_clients::{answered, installed, run, Run};
use crate::support;

use serde_json::{json, Value};
use support::*;

/// The model the `gemini` route names upstream (another name than the gateway's, so that the
/// door's rewrite of the model is seen).
const UPSTREAM: &str = "gemini-2.5-flash";

/// The SDK's generative calls, in the order the script makes them.
const GENERATIVE_OPS: [&str; 4] = ["generate", "stream", "count", "tools"];

/// The SDK's embedding calls (both are `batchEmbedContents` to the Gemini API).
const EMBED_OPS: [&str; 2] = ["embed_one", "embed_batch"];

/// Runs `tests/python/genai_sdk.py` with `ops` against `base_url`: its JSON report.
fn genai(base_url: &str, key: &str, model: &str, version: &str, ops: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/genai_sdk.py");
    let out = std::process::Command::new(support::python())
        .args([script, base_url, key, model, version, &ops.join(",")])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'google'"),
        "google-genai is not installed in {}: `{} -m pip install google-genai==3.6.1` \
         (.ci/run does)",
        support::python(),
        support::python()
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// The exchanges the SDK made for `op`.
fn exchanges<'a>(report: &'a Value, op: &str) -> &'a [Value] {
    report["exchanges"][op]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no exchange for {op}: {report}"))
}

/// What the SDK parsed for `op`, failing on an error it raised.
fn outcome<'a>(report: &'a Value, op: &str) -> &'a Value {
    let o = &report["ops"][op];
    assert!(
        o.get("error").is_none(),
        "{op} failed: {o}\nexchanges: {}",
        report["exchanges"][op]
    );
    o
}

/// The text of a parsed `GenerateContentResponse` (its first candidate's text parts).
fn answer_text(r: &Value) -> String {
    r["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

fn requests_ok(metrics: &str, model: &str) -> f64 {
    metric_value(
        metrics,
        "switchyard_requests_total",
        &[("model", model), ("status", "200")],
    )
    .unwrap_or(0.0)
}

/// A gateway with `flash` routed to a [`MockGemini`] (as [`UPSTREAM`]).
async fn gemini_gateway(gem: &MockGemini) -> Gateway {
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "gem",
            "gemini",
            &gem.origin(),
            "api_key_env = \"SY_GENAI_GEM\"",
        )
        .model("flash", &[("gem", UPSTREAM)])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    Gateway::builder(&body)
        .env("SY_GENAI_GEM", "gem-key")
        .start()
        .await
}

/// `path` (`/v1beta/models/{model}:{method}?…`) as the vendor receives it: its
/// `{model}:{method}` with `model` renamed to `upstream`.
fn action(path: &str, model: &str, upstream: &str) -> String {
    let rest = path.split_once("/models/").map_or(path, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    rest.replacen(&format!("{model}:"), &format!("{upstream}:"), 1)
}

/// Notes a difference (`what`: `left` is not `right`) in `problems`.
fn differ<T: PartialEq + std::fmt::Debug>(
    problems: &mut Vec<String>,
    what: String,
    left: T,
    right: T,
) {
    if left != right {
        problems.push(format!("{what}:\n   got {left:?}\n  want {right:?}"));
    }
}

/// The SDK's `ops` through `gw` (model `flash`) at its default API version and at `v1beta`,
/// compared with the SDK's `ops` straight at `gem` (model [`UPSTREAM`]): each vendor request
/// the client's bytes but for the model, each answer the vendor's bytes. Returns every
/// difference (so that one run shows them all) and how many calls went through.
fn bytes_both_ways(gem: &MockGemini, gw: &Gateway, ops: &[&str]) -> (Vec<String>, usize) {
    // The SDK straight at the vendor: the bytes it sends Google, and what Google answers.
    let direct = genai(&gem.origin(), "gem-key", UPSTREAM, "v1beta", ops);
    for op in ops {
        outcome(&direct, op);
    }
    let mut problems = Vec::new();
    let mut calls = 0;
    for (version, used) in [("default", "v1"), ("v1beta", "v1beta")] {
        let from = gem.request_count();
        let via = genai(&gw.url(""), DEMO_SECRET, "flash", version, ops);
        assert_eq!(via["api_version"], used, "the SDK's API version");
        let received = &gem.received()[from..];
        let sent: Vec<&Value> = ops.iter().flat_map(|op| exchanges(&via, op)).collect();
        assert_eq!(
            received.len(),
            sent.len(),
            "{version}: one vendor request per SDK request: {received:?}"
        );
        for (got, ex) in received.iter().zip(&sent) {
            let path = ex["path"].as_str().unwrap();
            assert!(
                path.starts_with(&format!("/{used}/models/flash:")),
                "{path}"
            );
            let at = |what: &str| format!("{version} {path}: {what}");
            differ(
                &mut problems,
                at("the vendor's {model}:{method}"),
                got.0.clone(),
                action(path, "flash", UPSTREAM),
            );
            // `alt=sse` goes on iff the SDK sent it; the key never does.
            let query = path.split_once('?').map(|(_, q)| q.to_string());
            differ(
                &mut problems,
                at("the vendor's query"),
                got.1.clone(),
                query,
            );
            // The client's bytes untouched but for the model (which batch embeddings name
            // in the body too: each request's model must be the path's, Google's reference,
            // models.batchEmbedContents).
            let want = ex["request"]
                .as_str()
                .unwrap()
                .replace("\"models/flash\"", &format!("\"models/{UPSTREAM}\""));
            differ(
                &mut problems,
                at("what the vendor received"),
                String::from_utf8_lossy(&got.2).into_owned(),
                want,
            );
        }
        for &op in ops {
            let (via_x, direct_x) = (exchanges(&via, op), exchanges(&direct, op));
            differ(
                &mut problems,
                format!("{version} {op}: exchanges"),
                via_x.len(),
                direct_x.len(),
            );
            for (v, d) in via_x.iter().zip(direct_x) {
                let at = |what: &str| format!("{version} {op}: {what}");
                differ(&mut problems, at("status"), &v["status"], &d["status"]);
                // The vendor's answer, byte for byte.
                differ(
                    &mut problems,
                    at("what the SDK got"),
                    &v["response"],
                    &d["response"],
                );
                let unnamed = |x: &Value| {
                    x["request"]
                        .as_str()
                        .unwrap()
                        .replace(&format!("models/{UPSTREAM}"), "models/flash")
                };
                differ(
                    &mut problems,
                    at("what the SDK sent"),
                    unnamed(v),
                    unnamed(d),
                );
            }
            if let Some(e) = via["ops"][op].get("error") {
                problems.push(format!(
                    "{version} {op}: the SDK raised {e}: {}",
                    via["ops"][op]
                ));
            }
        }
        calls += sent.len();
    }
    (problems, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_sdk_on_a_gemini_route_bytes_both_ways() {
    let gem = MockGemini::start("gem-key").await;
    let gw = gemini_gateway(&gem).await;
    let (problems, calls) = bytes_both_ways(&gem, &gw, &GENERATIVE_OPS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for version in ["default", "v1beta"] {
        let via = genai(
            &gw.url(""),
            DEMO_SECRET,
            "flash",
            version,
            &["tools", "list", "get"],
        );
        // What the SDK made of the answers.
        let tools = outcome(&via, "tools");
        assert_eq!(tools["calls"][0]["name"], "wx", "{tools}");
        assert_eq!(tools["text"], "It is cold in Oslo.", "{tools}");
        let names: Vec<&str> = outcome(&via, "list")["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert!(names.contains(&"models/flash"), "{names:?}");
        assert_eq!(outcome(&via, "get")["name"], "models/flash");
    }
    // Each vendor request carried the provider's key, never the client's.
    for head in gem.heads() {
        assert_eq!(head["x-goog-api-key"], "gem-key");
        assert!(
            !head
                .values()
                .any(|v| v.as_bytes() == DEMO_SECRET.as_bytes()),
            "{head:?}"
        );
    }
    answered(&gw, "flash").await;
    let m = gw.metrics().await;
    // Each call that names the model is counted (the round trips' four too).
    assert_eq!(requests_ok(&m, "flash"), (calls + 4) as f64, "{calls}: {m}");
}

/// Finding (gemini-door): the SDK's `embed_content` is `batchEmbedContents` to the Gemini API,
/// whose body names the model again in each request (`requests[].model`, which must be the
/// path's: Google's reference, `models.batchEmbedContents`); on a native route the door
/// changes the model in the path only, so Gemini refuses the batch (400 INVALID_ARGUMENT
/// "requests[0].model must be models/gemini-2.5-flash", from the strict mock), e.g.
/// `POST /v1/models/flash:batchEmbedContents` `{"requests": [{"content": {"parts": [{"text":
/// "hello"}], "role": "user"}, "model": "models/flash"}]}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_sdk_embeds_on_a_gemini_route_bytes_both_ways() {
    let gem = MockGemini::start("gem-key").await;
    let gw = gemini_gateway(&gem).await;
    let (problems, calls) = bytes_both_ways(&gem, &gw, &EMBED_OPS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    answered(&gw, "flash").await;
    let m = gw.metrics().await;
    assert_eq!(requests_ok(&m, "flash"), calls as f64, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_sdk_on_an_anthropic_route_translated_with_a_tool_round_trip() {
    let anth = MockAnthropic::start("anth-genai-key").await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_GENAI_ANTH\"",
        )
        .model("sonnet", &[("anth", "claude-sonnet-4-5")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_GENAI_ANTH", "anth-genai-key")
        .start()
        .await;

    for version in ["default", "v1beta"] {
        let r = genai(
            &gw.url(""),
            DEMO_SECRET,
            "sonnet",
            version,
            &["generate", "stream", "count", "list", "get"],
        );
        let generated = outcome(&r, "generate");
        assert_eq!(answer_text(generated), ANTHROPIC_REPLY, "{generated}");
        assert_eq!(generated["candidates"][0]["finish_reason"], "STOP");
        assert!(
            generated["usage_metadata"]["prompt_token_count"].as_u64() > Some(0),
            "{generated}"
        );
        let chunks = outcome(&r, "stream")["chunks"].as_array().unwrap();
        let streamed: String = chunks.iter().map(answer_text).collect();
        assert_eq!(streamed, ANTHROPIC_REPLY, "{chunks:?}");
        assert_eq!(
            chunks.last().unwrap()["candidates"][0]["finish_reason"],
            "STOP",
            "{chunks:?}"
        );
        assert!(
            outcome(&r, "count")["total_tokens"].as_u64() > Some(0),
            "{r}"
        );
        let names: Vec<&str> = outcome(&r, "list")["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert!(names.contains(&"models/sonnet"), "{names:?}");
        assert_eq!(outcome(&r, "get")["name"], "models/sonnet");
    }

    // A tool round trip: the vendor calls `wx`, the SDK answers with a functionResponse.
    anth.set_content(json!([{"type":"tool_use","id":"toolu_wx1","name":"wx",
                             "input":{"city":"Oslo"}}]));
    let before = anth.requests().len();
    let r = genai(&gw.url(""), DEMO_SECRET, "sonnet", "default", &["tools"]);
    let tools = outcome(&r, "tools");
    assert_eq!(tools["calls"][0]["name"], "wx", "{tools}");
    assert_eq!(tools["calls"][0]["args"], json!({"city":"Oslo"}), "{tools}");
    let sent: Vec<Value> = anth.requests()[before..].iter().map(|q| q.json()).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let tool = &sent[0]["tools"][0];
    assert_eq!(tool["name"], "wx", "{tool}");
    assert_eq!(
        tool["input_schema"]["properties"]["city"]["type"], "string",
        "Google's upper-case types become JSON Schema's: {tool}"
    );
    let turns = sent[1]["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(turns[1]["content"][0]["type"], "tool_use", "{turns:?}");
    assert_eq!(turns[1]["content"][0]["id"], "toolu_wx1", "{turns:?}");
    let result = &turns[2]["content"][0];
    assert_eq!(result["type"], "tool_result", "{turns:?}");
    assert_eq!(result["tool_use_id"], "toolu_wx1", "{turns:?}");
    assert!(result.to_string().contains("temp_c"), "{result}");
    answered(&gw, "sonnet").await;
    let m = gw.metrics().await;
    // generate, stream and count at both versions, and the round trip's two calls.
    assert_eq!(requests_ok(&m, "sonnet"), 8.0, "{m}");

    // Anthropic has no embeddings: a clear 4xx in Google's shape, raised by the SDK.
    let r = genai(
        &gw.url(""),
        DEMO_SECRET,
        "sonnet",
        "default",
        &["embed_one"],
    );
    let e = &r["ops"]["embed_one"];
    let code = e["code"].as_u64().unwrap_or_else(|| panic!("{r}"));
    assert!((400..500).contains(&code), "{r}");
    assert!(e["status"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
    assert_eq!(
        anth.requests().len(),
        before + 2,
        "nothing reached Anthropic"
    );
}

/// The model names Gemini CLI asks for (0.61.0: `auto` routes between `gemini-3.1-pro-preview`
/// and `gemini-3.5-flash-lite`; `-m` names any), matched by an alias pattern so that no
/// version's names need typing.
const GEMINI_CLI_MODELS: &str = r#"aliases = ["gemini-*"]"#;

/// `~/.gemini/settings.json` for the runs: Gemini CLI's documented settings for what is not the
/// API (usage statistics, auto update), and the API-key auth type named, because 0.61.0 infers
/// a `gateway` auth type from `GOOGLE_GEMINI_BASE_URL` that its own validation then refuses
/// ("Invalid auth method selected.", exit 41, before any request: google-gemini/gemini-cli
/// issue 27550); naming `gemini-api-key` is that issue's workaround.
const GEMINI_CLI_SETTINGS: &str = r#"{
  "security": {"auth": {"selectedType": "gemini-api-key"}},
  "privacy": {"usageStatisticsEnabled": false},
  "general": {"enableAutoUpdate": false}
}"#;

/// The environment the README gives Gemini CLI ("## Gemini clients"), pointed at `gw`; the
/// README also names the settings line [`GEMINI_CLI_SETTINGS`] carries for the auth type.
fn gemini_cli_env(gw: &Gateway) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("## Gemini clients")
        .expect("the README's section for Gemini clients");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    assert!(
        section.contains(r#"{"security": {"auth": {"selectedType": "gemini-api-key"}}}"#),
        "the README names the auth type setting: {section}"
    );
    let cli = section
        .find("**Gemini CLI**")
        .expect("the README's Gemini CLI part");
    let block = &section[cli..];
    let open = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let len = block[open..].find("```").expect("its end");
    let base = gw.url("");
    let env: Vec<(String, String)> = block[open..open + len]
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| {
            let v = v.replace("http://localhost:8080", base.trim_end_matches('/'));
            (k.to_string(), v)
        })
        .collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY"],
        "the README's settings"
    );
    env
}

/// `gemini -p "<prompt>" <args…>` against `gw`, in a fresh HOME with [`GEMINI_CLI_SETTINGS`]
/// and the README's environment ([`gemini_cli_env`]: `GOOGLE_GEMINI_BASE_URL` the gateway,
/// `GEMINI_API_KEY` the demo key, as Gemini CLI's configuration reference names them), the
/// working folder trusted by its documented variable (`GEMINI_CLI_TRUST_WORKSPACE`; headless
/// runs refuse an untrusted folder).
async fn gemini_p(gw: &Gateway, prompt: &str, args: &[&str]) -> Run {
    let gemini = installed("gemini-cli", "@google/gemini-cli/bundle/gemini.js");
    let home = tempfile::tempdir().unwrap();
    let settings = home.path().join(".gemini");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(settings.join("settings.json"), GEMINI_CLI_SETTINGS).unwrap();
    let readme = gemini_cli_env(gw);
    let mut env: Vec<(&str, &str)> = readme
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("GEMINI_CLI_TRUST_WORKSPACE", "true"));
    let mut argv = vec![gemini.to_str().unwrap(), "-p", prompt];
    argv.extend(args);
    run(Path::new("node"), &argv, home.path(), &env).await
}

/// `gemini -p "say hi"` with its default model (`auto`) on an `anthropic` route: the strict
/// mock, the gateway and what Gemini CLI printed.
async fn gemini_p_on_anthropic() -> (MockAnthropic, Gateway, Run) {
    let anth = MockAnthropic::start("anth-gcli-key").await;
    // Gemini CLI's `auto` model first asks a flash-lite model to rate the prompt, in JSON of
    // its schema; the vendor's one answer is that JSON, so that both calls succeed.
    let reply =
        format!("{{\"complexity_reasoning\": \"{ANTHROPIC_REPLY}\", \"complexity_score\": 10}}");
    anth.set_content(json!([{"type":"text","text":reply}]));
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_GCLI_ANTH\"",
        )
        .model_with(
            "gcli-claude",
            GEMINI_CLI_MODELS,
            &[("anth", "claude-sonnet-4-5")],
        )
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_GCLI_ANTH", "anth-gcli-key")
        .start()
        .await;
    let r = gemini_p(&gw, "say hi", &[]).await;
    assert!(
        r.success,
        "gemini -p failed:\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        gw.logs()
    );
    (anth, gw, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_p_on_an_anthropic_route_and_the_builtin_mock() {
    let (anth, gw, r) = gemini_p_on_anthropic().await;
    assert!(
        r.stdout.contains(ANTHROPIC_REPLY),
        "Gemini CLI printed Anthropic's answer:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    answered(&gw, "gcli-claude").await;
    // The rating (whole, JSON asked for) and the answer (streamed, with the CLI's tools).
    let sent: Vec<Value> = anth.requests().iter().map(|q| q.json()).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0]["output_config"]["format"]["schema"].is_object(),
        "{}",
        sent[0]
    );
    assert_eq!(sent[1]["stream"], true);
    assert!(
        sent[1]["tools"].as_array().is_some_and(|t| !t.is_empty()),
        "{}",
        sent[1]
    );
    assert_eq!(requests_ok(&gw.metrics().await, "gcli-claude"), 2.0);

    let mock = ConfigBody::new()
        .usage_log()
        .mock_provider("local")
        .model_with("gcli-mock", GEMINI_CLI_MODELS, &[("local", "mock-large")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&mock).await;
    // A model named on the command line: no rating call first (the mock's answer is no JSON).
    let r = gemini_p(&gw, "say hi", &["-m", "gemini-2.5-flash"]).await;
    assert!(
        r.success,
        "gemini -p failed:\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        gw.logs()
    );
    assert!(
        r.stdout.contains("Hello from Switchyard's mock provider."),
        "Gemini CLI printed the mock's answer:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    answered(&gw, "gcli-mock").await;
    assert!(requests_ok(&gw.metrics().await, "gcli-mock") >= 1.0);
}

/// The `type` values under `schema` that JSON Schema does not define (`"OBJECT"`, …), with
/// their JSON pointers.
fn non_json_schema_types(schema: &Value, at: &str, found: &mut Vec<String>) {
    const TYPES: [&str; 7] = [
        "object", "array", "string", "number", "integer", "boolean", "null",
    ];
    match schema {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{at}/{k}");
                let bad = |t: &Value| t.as_str().is_some_and(|t| !TYPES.contains(&t));
                let is_bad = match v {
                    Value::String(_) => bad(v),
                    Value::Array(ts) => ts.iter().any(bad),
                    _ => false,
                };
                if k == "type" && is_bad {
                    found.push(format!("{here} = {v}"));
                }
                non_json_schema_types(v, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                non_json_schema_types(v, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Finding (gemini-pair): Gemini CLI 0.61.0 writes its JSON schemas with the Gen AI SDK's
/// `Type` enum (`"type": "OBJECT"`, `"STRING"`, `"INTEGER"`) in `responseJsonSchema` (the
/// model router's rating call, `BaseLlmClient.generateJson`), which Gemini takes; on an
/// `anthropic` route that schema reaches Anthropic's `output_config.format.schema` as sent,
/// and JSON Schema's types are lower-case (json-schema.org, "type"), so Anthropic refuses it
/// (the strict mock does not check schemas; this test does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_cli_s_schemas_reach_anthropic_as_json_schema() {
    let (anth, _gw, _r) = gemini_p_on_anthropic().await;
    let mut found = Vec::new();
    for (i, q) in anth.requests().iter().enumerate() {
        let v = q.json();
        let schema = &v["output_config"]["format"]["schema"];
        non_json_schema_types(
            schema,
            &format!("request {i} output_config.format.schema"),
            &mut found,
        );
        for (t, tool) in v["tools"].as_array().into_iter().flatten().enumerate() {
            let at = format!("request {i} tools/{t} ({}) input_schema", tool["name"]);
            non_json_schema_types(&tool["input_schema"], &at, &mut found);
        }
    }
    assert!(
        found.is_empty(),
        "not JSON Schema types:\n{}",
        found.join("\n")
    );
}
