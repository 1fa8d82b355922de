//! Prices as vendors bill them, through the real binary and the strict mock vendors: 1-hour and
//! 5-minute cache writes in one Anthropic answer (pass-through, streamed, and translated to the chat door); a price tier
//! below and above its threshold; a model priced only by the built-in catalogue reaching the
//! team's `usd_per_month`; an OpenAI answer served `flex` or `priority` priced by its rates; the
//! usage log's `price` and `service_tier`; bad prices refused by `check` with file:line;
//! `switchyard prices`; `check`'s warning about an unpriced model.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-pricing-secret-1";
const OAI_KEY: &str = "sk-oai-pricing-secret-2";

fn body(text: &str) -> Behaviour {
    Behaviour {
        body: Some(text.to_string()),
        ..Behaviour::default()
    }
}

fn sse(events: &[String]) -> Behaviour {
    Behaviour {
        frames: Some(events.iter().map(|e| format!("{e}\n\n")).collect()),
        ..Behaviour::default()
    }
}

/// Two strict vendors (Anthropic, OpenAI), `models` routed to them (providers `claude` and
/// `oai`), one team `t` with `team`'s limits, and the usage log.
async fn gateway(anth: &MockAnthropic, oai: &MockUpstream, models: &str, team: &str) -> Gateway {
    let body = format!(
        r#"[log]
usage = "{{DIR}}/usage.jsonl"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{anth}"
api_key_env = "SY_P_ANTH"

[[providers]]
name = "oai"
kind = "openai"
base_url = "{oai}"
api_key_env = "SY_P_OAI"

{models}

[[teams]]
name = "t"
{team}

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"
"#,
        anth = anth.origin(),
        oai = oai.base_url(),
    );
    Gateway::builder(&body)
        .env("SY_P_ANTH", ANTH_KEY)
        .env("SY_P_OAI", OAI_KEY)
        .start()
        .await
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, String) {
    let resp = client()
        .post(gw.url(path))
        .bearer_auth(DEMO_SECRET)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The issue's example: at $3/MTok input, 100,000 tokens written to the 1-hour cache cost
/// $0.60 (2×) and 100,000 to the 5-minute cache $0.375 (1.25×), whether the answer passes
/// through (whole or streamed) or is translated to the chat door; no cache price is written in
/// the config: Anthropic's documented ratios apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hour_and_five_minute_writes_in_one_request_cost_the_vendors_bill() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let models = r#"
[[models]]
name = "claude"
input_usd_per_mtok = 3
output_usd_per_mtok = 15
  [[models.routes]]
  provider = "claude"
  model = "claude-x"
"#;
    let gw = gateway(&anth, &oai, models, "").await;
    // 100,000 tokens written for 1 hour and 100,000 for 5 minutes, reported by the vendor in
    // `usage.cache_creation` beside their total.
    anth.set_usage(AnthUsage {
        input: 10,
        cache_read: 0,
        cache_write: 200_000,
        output: 100,
    });
    anth.set_cache_write_1h(100_000);
    let ask = |stream: bool| {
        json!({"model":"claude","max_tokens":500,"stream":stream,
               "messages":[{"role":"user","content":"hello"}]})
    };
    for (path, stream) in [
        ("/v1/messages", false),
        ("/v1/messages", true),
        ("/v1/chat/completions", false),
    ] {
        let (status, text) = post(&gw, path, &ask(stream)).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    let lines = gw.wait_usage_lines(3).await;
    // 10 × 3 + 100,000 × 3.75 + 100,000 × 6 + 100 × 15 µ$.
    let bill = (30.0 + 375_000.0 + 600_000.0 + 1_500.0) / 1e6;
    for l in &lines {
        assert_eq!(l["prompt_tokens"], 200_010, "{l}");
        assert_eq!(l["cache_write_tokens"], 200_000, "{l}");
        assert_eq!(l["cache_write_1h_tokens"], 100_000, "{l}");
        assert_eq!(l["price"], "base", "{l}");
        let cost = l["cost_usd"].as_f64().unwrap();
        assert!(close(cost, bill), "{l}: {cost} vs {bill}");
    }
}

/// `[[models.price_tiers]]`: a prompt at the threshold is billed at the base prices, one token
/// more and the whole request (output included) at the tier's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiered_request_below_and_above_the_threshold() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let models = r#"
[[models]]
name = "long"
input_usd_per_mtok = 3
output_usd_per_mtok = 15
  [[models.price_tiers]]
  above_prompt_tokens = 200000
  input_usd_per_mtok = 6
  output_usd_per_mtok = 22.5
  [[models.routes]]
  provider = "claude"
  model = "claude-x"
"#;
    let gw = gateway(&anth, &oai, models, "").await;
    for input in [200_000, 200_001] {
        anth.set_usage(AnthUsage {
            input,
            cache_read: 0,
            cache_write: 0,
            output: 1000,
        });
        let (status, text) = post(
            &gw,
            "/v1/messages",
            &json!({"model":"long","max_tokens":1000,
                    "messages":[{"role":"user","content":"hello"}]}),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    let lines = gw.wait_usage_lines(2).await;
    assert_eq!(lines[0]["price"], "base", "{}", lines[0]);
    assert!(close(lines[0]["cost_usd"].as_f64().unwrap(), 0.6 + 0.015));
    assert_eq!(lines[1]["price"], "tier>200000", "{}", lines[1]);
    let above = (200_001.0 * 6.0 + 1_000.0 * 22.5) / 1e6;
    assert!(
        close(lines[1]["cost_usd"].as_f64().unwrap(), above),
        "{}",
        lines[1]
    );
}

/// What the team's budget has spent this month, from the memory backend's snapshot.
async fn budget_spent_nanos(gw: &Gateway, want: u64) -> u64 {
    let path = gw.dir().join("data/budgets.json");
    let mut last = 0;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            last = v["teams"]["t"]["usd_nanos"].as_u64().unwrap_or(0);
            if last >= want {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// A model with no price in the config is priced by the built-in catalogue's entry for its
/// route (Claude Sonnet 4.5: $3 / $15, cache reads $0.30): its spending reaches the team's
/// `usd_per_month`, which then refuses the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_priced_only_by_the_catalogue_reaches_the_budget() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let models = r#"
[[models]]
name = "sonnet"
  [[models.routes]]
  provider = "claude"
  model = "claude-sonnet-4-5-20250929"
"#;
    let gw = gateway(&anth, &oai, models, "usd_per_month = 0.05").await;
    // 20 × 3 + 10,000 × 0.3 + 1,000 × 15 = 18,060 µ$ a request.
    anth.set_usage(AnthUsage {
        input: 20,
        cache_read: 10_000,
        cache_write: 0,
        output: 1000,
    });
    let mut admitted = 0;
    for i in 0..10 {
        let (status, text) = post(
            &gw,
            "/v1/messages",
            &json!({"model":"sonnet","max_tokens":100,
                    "messages":[{"role":"user","content":"hello"}]}),
        )
        .await;
        if status == 429 {
            assert!(text.contains("quota"), "{text}");
            break;
        }
        assert_eq!(status, 200, "{text}");
        admitted += 1;
        gw.wait_usage_lines(i + 1).await;
    }
    let lines = gw.wait_usage_lines(admitted).await;
    assert!(
        close(lines[0]["cost_usd"].as_f64().unwrap(), 0.01806),
        "{}",
        lines[0]
    );
    assert_eq!(lines[0]["price"], "base");
    assert_eq!(admitted, 3, "0.05 USD pays three requests of 0.01806");
    // Each spending is rounded up to the nano-dollar.
    let spent = budget_spent_nanos(&gw, 3 * 18_060_000).await;
    assert!(
        (3 * 18_060_000..=3 * 18_060_000 + 3).contains(&spent),
        "{spent}"
    );
}

fn openai_answer(tier: &str) -> String {
    json!({"id":"c1","object":"chat.completion","created":1,"model":"gpt-x",
           "service_tier":tier,
           "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100}})
    .to_string()
}

fn openai_stream(tier: &str) -> Vec<String> {
    let chunk = |choices: Value, usage: Value| {
        format!(
            "data: {}",
            json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-x",
                   "service_tier":tier,"choices":choices,"usage":usage})
        )
    };
    vec![
        chunk(
            json!([{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index":0,"delta":{},"finish_reason":"stop"}]),
            Value::Null,
        ),
        chunk(
            json!([]),
            json!({"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100}),
        ),
        "data: [DONE]".to_string(),
    ]
}

/// An OpenAI answer that says it was served `flex` or `priority` is priced at that tier's
/// rates (`[models.service_tiers.*]`), whole or streamed, chat completions or the Responses
/// API; `default` at the base rates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flex_and_priority_answers_are_priced_by_their_rates() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let models = r#"
[[models]]
name = "gpt"
input_usd_per_mtok = 2
output_usd_per_mtok = 8
  [models.service_tiers.flex]
  input_usd_per_mtok = 1
  output_usd_per_mtok = 4
  [models.service_tiers.priority]
  input_usd_per_mtok = 3.5
  output_usd_per_mtok = 14
  [[models.routes]]
  provider = "oai"
  model = "gpt-x"
"#;
    let gw = gateway(&anth, &oai, models, "").await;
    let cases = [
        ("flex", false, 0.001 + 0.0004),
        ("priority", false, 0.0035 + 0.0014),
        ("default", false, 0.002 + 0.0008),
        ("flex", true, 0.001 + 0.0004),
        ("priority", true, 0.0035 + 0.0014),
    ];
    for (i, (tier, stream, want)) in cases.iter().enumerate() {
        if *stream {
            oai.enqueue(sse(&openai_stream(tier)));
        } else {
            oai.enqueue(body(&openai_answer(tier)));
        }
        let mut ask = json!({"model":"gpt","messages":[{"role":"user","content":"hi"}]});
        if *stream {
            ask["stream"] = json!(true);
            ask["stream_options"] = json!({"include_usage":true});
        }
        let (status, text) = post(&gw, "/v1/chat/completions", &ask).await;
        assert_eq!(status, 200, "{text}");
        let lines = gw.wait_usage_lines(i + 1).await;
        let l = &lines[i];
        let cost = l["cost_usd"].as_f64().unwrap();
        assert!(close(cost, *want), "{tier} stream={stream}: {l}");
        if *tier == "default" {
            assert!(l.get("service_tier").is_none(), "{l}");
            assert_eq!(l["price"], "base", "{l}");
        } else {
            assert_eq!(l["service_tier"], *tier, "{l}");
            assert_eq!(l["price"], *tier, "{l}");
        }
    }
    // The Responses API passed through: `response.service_tier`, whole and streamed.
    let response = json!({"id":"resp_1","object":"response","created_at":1,"status":"completed",
        "model":"gpt-x","service_tier":"priority","output":[{"type":"message","id":"msg_1",
        "status":"completed","role":"assistant",
        "content":[{"type":"output_text","text":"ok","annotations":[]}]}],
        "usage":{"input_tokens":1000,"output_tokens":100,"total_tokens":1100}});
    oai.enqueue(body(&response.to_string()));
    let completed = format!(
        "event: response.completed\ndata: {}",
        json!({"type":"response.completed","sequence_number":1,"response":response})
    );
    oai.enqueue(sse(&[completed]));
    for (n, stream) in [(6, false), (7, true)] {
        let ask = json!({"model":"gpt","input":"hi","stream":stream});
        let (status, text) = post(&gw, "/v1/responses", &ask).await;
        assert_eq!(status, 200, "{text}");
        let l = &gw.wait_usage_lines(n).await[n - 1];
        assert_eq!(l["service_tier"], "priority", "stream={stream}: {l}");
        let cost = l["cost_usd"].as_f64().unwrap();
        assert!(close(cost, 0.0035 + 0.0014), "stream={stream}: {l}");
    }
}

/// The 1-based line holding `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?}"))
        + 1
}

const BASE: &str = r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "SY_P_NONE"
"#;

/// A negative price and tiers that overlap are `check` errors naming the file and line.
#[test]
fn bad_prices_are_check_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{BASE}
[[models]]
name = "a"
input_usd_per_mtok = -3                  # negative
  [[models.routes]]
  provider = "claude"
  model = "claude-x"

[[models]]
name = "b"
input_usd_per_mtok = 3
  [[models.price_tiers]]
  above_prompt_tokens = 200000
  input_usd_per_mtok = 6
  [[models.price_tiers]]
  above_prompt_tokens = 200000           # overlap
  input_usd_per_mtok = 9
  [[models.routes]]
  provider = "claude"
  model = "claude-x"

[[models]]
name = "c"
  [models.service_tiers.flex]
  output_usd_per_mtok = -1               # negative flex
  [[models.routes]]
  provider = "claude"
  model = "claude-x"
"#
    );
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, &config).unwrap();
    let out = run_switchyard(&["check", "--offline", "-c", "bad.toml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let negative = line_of(&config, "# negative");
    assert!(
        err.contains(&format!("bad.toml:{negative}: models[0].input_usd_per_mtok: must be a finite number >= 0, not -3")),
        "{err}"
    );
    let (first, overlap) = (
        line_of(&config, "above_prompt_tokens = 200000"),
        line_of(&config, "# overlap"),
    );
    assert!(
        err.contains(&format!("bad.toml:{overlap}: models[1].price_tiers[1].above_prompt_tokens: 200000 repeats the threshold 200000 of the tier on line {first}")),
        "{err}"
    );
    let flex = line_of(&config, "# negative flex");
    assert!(
        err.contains(&format!(
            "bad.toml:{flex}: models[2].service_tiers.flex.output_usd_per_mtok"
        )),
        "{err}"
    );
    // An operator's catalogue is checked the same way, its errors at its own lines.
    let catalogue = "[[prices]]\nkind = \"anthropic\"\nmodels = [\"claude-x\"]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = -2\nas_of = \"2026-12-06\"\nsource = \"https://example.com/prices\"\n";
    std::fs::write(dir.path().join("prices.toml"), catalogue).unwrap();
    let config = format!("[pricing]\ncatalogue = \"prices.toml\"\n{BASE}");
    std::fs::write(&path, &config).unwrap();
    let out = run_switchyard(&["check", "--offline", "-c", "bad.toml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "prices.toml:5: prices[0].output_usd_per_mtok: must be a finite number >= 0, not -2"
        ),
        "{err}"
    );
}

/// `switchyard prices` prints each model's prices and where they come from; `check` warns,
/// and still succeeds, about a routed model with no price from either.
#[test]
fn prices_command_and_the_check_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{BASE}
[[models]]
name = "sonnet"
aliases = ["s"]
  [[models.routes]]
  provider = "claude"
  model = "claude-sonnet-4-5-20250929"

[[models]]
name = "mine"
input_usd_per_mtok = 4
output_usd_per_mtok = 20
  [[models.routes]]
  provider = "claude"
  model = "claude-sonnet-4-5-20250929"

[[models]]
name = "unknown"
  [[models.routes]]
  provider = "claude"
  model = "claude-nobody-knows"
"#
    );
    std::fs::write(dir.path().join("c.toml"), &config).unwrap();
    let out = run_switchyard(&["prices", "-c", "c.toml"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("sonnet: catalogue (built-in config/prices.toml): anthropic \"claude-sonnet-4-5* claude-sonnet-4 claude-sonnet-4-[0-9][0-9][0-9]*\", https://platform.claude.com/docs/en/about-claude/pricing as of 2026-12-06"),
        "{text}"
    );
    assert!(
        text.contains(
            "  base: input 3 output 15 cached_input 0.3 cache_write 3.75 cache_write_1h 6\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  tier>200000: input 6 output 22.5"),
        "{text}"
    );
    assert!(
        text.contains("mine: config\n  lent by catalogue (built-in config/prices.toml): anthropic \"claude-sonnet-4-5* "),
        "{text}"
    );
    assert!(
        text.contains("  base: input 4 output 20 cached_input 0.4 (catalogue ratio) cache_write 5 (catalogue ratio) cache_write_1h 8 (catalogue ratio)"),
        "{text}"
    );
    assert!(text.contains("unknown: no price"), "{text}");
    let one = run_switchyard(&["prices", "-c", "c.toml", "s"], dir.path());
    let one = String::from_utf8_lossy(&one.stdout);
    assert!(
        one.starts_with("sonnet: catalogue") && !one.contains("mine"),
        "{one}"
    );

    let out = run_switchyard(&["check", "--offline", "-c", "c.toml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: model \"unknown\" has no price"),
        "{err}"
    );
    assert!(
        !err.contains("\"sonnet\"") && !err.contains("\"mine\""),
        "{err}"
    );
}

fn catalogue(input: &str) -> String {
    format!(
        "[[prices]]\nkind = \"anthropic\"\nmodels = [\"claude-in-house-*\"]\n\
         input_usd_per_mtok = {input}\noutput_usd_per_mtok = 10\n\
         as_of = \"2026-12-06\"\nsource = \"https://example.com/our-negotiated-prices\"\n"
    )
}

/// Writes `text` to `path` as editors and ConfigMaps do: a new file renamed over the old one.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An operator's `[pricing] catalogue` prices a model the built-in one does not know; a change
/// to the file is used by the next requests without a restart, and a bad one is refused (the
/// running prices keep serving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_catalogue_is_reloaded_when_it_changes() {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.toml");
    std::fs::write(&file, catalogue("2")).unwrap();
    let models = format!(
        "[pricing]\ncatalogue = \"{}\"\n\n[[models]]\nname = \"own\"\n  [[models.routes]]\n  provider = \"claude\"\n  model = \"claude-in-house-7\"\n",
        file.display()
    );
    let gw = gateway(&anth, &oai, &models, "").await;
    anth.set_usage(AnthUsage {
        input: 1000,
        cache_read: 0,
        cache_write: 0,
        output: 100,
    });
    let ask = json!({"model":"own","max_tokens":100,"messages":[{"role":"user","content":"hi"}]});
    let mut sent = 0;
    let mut send = || {
        sent += 1;
        let n = sent;
        let gw = &gw;
        let ask = ask.clone();
        async move {
            let (status, text) = post(gw, "/v1/messages", &ask).await;
            assert_eq!(status, 200, "{text}");
            gw.wait_usage_lines(n).await[n - 1]["cost_usd"]
                .as_f64()
                .unwrap()
        }
    };
    // 1000 × 2 + 100 × 10 µ$.
    assert!(close(send().await, 0.003));
    replace(&file, &catalogue("5"));
    let mut cost = 0.0;
    for _ in 0..50 {
        cost = send().await;
        if close(cost, 0.006) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(close(cost, 0.006), "the new price was never used: {cost}");
    replace(&file, &catalogue("-1"));
    gw.wait_for_log("prices.toml:4: prices[0].input_usd_per_mtok: must be a finite number >= 0")
        .await;
    assert!(close(send().await, 0.006));
}
