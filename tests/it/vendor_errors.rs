//! Vendor errors keep their meaning (`switchyard::convert::errors`), through the binary to the
//! strict mock vendors answering each vendor's own error: on a pass-through route the vendor's
//! `type`, `code` and `param` as it sent them; on a translated route the door's own code for
//! the well-known conditions (context length, rate limited, overloaded, invalid image), the
//! vendor's message kept. Table-driven: every condition × every door × every vendor kind, and
//! the OpenAI and Anthropic SDKs reading what agents branch on to compact their context.

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-provider-errors";
const GEM_KEY: &str = "gem-provider-errors";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    OpenAi,
    Anthropic,
    Gemini,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Door {
    Chat,
    Responses,
    Messages,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Condition {
    ContextLength,
    RateLimited,
    Overloaded,
    InvalidImage,
}

const OPENAI_CONTEXT: &str = "This model's maximum context length is 8192 tokens. However, your messages resulted in 8227 tokens. Please reduce the length of the messages.";
const ANTHROPIC_CONTEXT: &str = "prompt is too long: 203078 tokens > 200000 maximum";
const GEMINI_CONTEXT: &str =
    "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576).";

struct Vendors {
    oai: MockUpstream,
    anth: MockAnthropic,
    gem: MockGemini,
    gw: Gateway,
}

async fn vendors() -> Vendors {
    let oai = MockUpstream::start().await;
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let gem = MockGemini::start(GEM_KEY).await;
    let body = ConfigBody::new()
        .text("[routing]\nmax_attempts = 1\nfailures_to_cool = 16")
        .provider("oai", "openai", &oai.base_url(), "")
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_VE_ANTH\"",
        )
        .provider(
            "gem",
            "gemini",
            &gem.origin(),
            "api_key_env = \"SY_VE_GEM\"",
        )
        .model("gpt", &[("oai", "gpt-x")])
        .model("claude", &[("claude", "claude-sonnet-4-5")])
        .model("gemini", &[("gem", "gemini-2.5-flash")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_VE_ANTH", ANTH_KEY)
        .env("SY_VE_GEM", GEM_KEY)
        .start()
        .await;
    Vendors { oai, anth, gem, gw }
}

/// Makes `kind`'s mock answer `condition` as that vendor does; returns the vendor's message.
fn answer(v: &Vendors, kind: Kind, condition: Condition) -> &'static str {
    use Condition::*;
    match kind {
        Kind::OpenAi => {
            let (status, message, kind, param, code) = match condition {
                ContextLength => (
                    400,
                    OPENAI_CONTEXT,
                    "invalid_request_error",
                    Some("messages"),
                    Some("context_length_exceeded"),
                ),
                RateLimited => (
                    429,
                    "Rate limit reached for gpt-x on requests per min (RPM): Limit 3, Used 3.",
                    "requests",
                    None,
                    Some("rate_limit_exceeded"),
                ),
                Overloaded => (
                    503,
                    "That model is currently overloaded with other requests.",
                    "server_error",
                    None,
                    None,
                ),
                InvalidImage => (
                    400,
                    "Invalid image.",
                    "invalid_request_error",
                    None,
                    Some("invalid_image"),
                ),
            };
            v.oai.set_default(Behaviour::error(
                status,
                &openai_error_body(message, kind, param, code),
            ));
            message
        }
        Kind::Anthropic => {
            let (status, kind, message) = match condition {
                ContextLength => (400, "invalid_request_error", ANTHROPIC_CONTEXT),
                RateLimited => (
                    429,
                    "rate_limit_error",
                    "Number of request tokens has exceeded your per-minute rate limit",
                ),
                Overloaded => (529, "overloaded_error", "Overloaded"),
                InvalidImage => (400, "invalid_request_error", "Could not process image"),
            };
            v.anth.set_behaviour(AnthBehaviour {
                error: Some((status, anthropic_error_body(kind, message))),
                ..AnthBehaviour::default()
            });
            message
        }
        Kind::Gemini => {
            let (status, name, message) = match condition {
                ContextLength => (400, "INVALID_ARGUMENT", GEMINI_CONTEXT),
                RateLimited => (
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                ),
                Overloaded => (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
                InvalidImage => (
                    400,
                    "INVALID_ARGUMENT",
                    "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
                ),
            };
            v.gem.set_behaviour(GeminiBehaviour {
                error: Some((status, name.to_string(), message.to_string())),
                ..GeminiBehaviour::default()
            });
            message
        }
    }
}

/// Sends a plain request for `model` on `door`; the status and the JSON body.
async fn send(gw: &Gateway, door: Door, model: &str) -> (u16, Value) {
    let c = gw.client();
    let r = match door {
        Door::Chat => c
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(DEMO_SECRET)
            .json(&json!({"model":model,"messages":[{"role":"user","content":"hello"}]})),
        Door::Responses => c
            .post(gw.url("/v1/responses"))
            .bearer_auth(DEMO_SECRET)
            .json(&json!({"model":model,"input":"hello"})),
        Door::Messages => c
            .post(gw.url("/v1/messages"))
            .header("x-api-key", DEMO_SECRET)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model":model,"max_tokens":64,
                          "messages":[{"role":"user","content":"hello"}]})),
    };
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

fn model_of(kind: Kind) -> &'static str {
    match kind {
        Kind::OpenAi => "gpt",
        Kind::Anthropic => "claude",
        Kind::Gemini => "gemini",
    }
}

/// Whether the vendor speaks the door's dialect (its error passes as it is).
fn passes_through(kind: Kind, door: Door) -> bool {
    matches!(
        (kind, door),
        (Kind::OpenAi, Door::Chat | Door::Responses) | (Kind::Anthropic, Door::Messages)
    )
}

/// What the client must see: status, then (chat and Responses doors) `type`, `code`, `param`,
/// or (Messages door) `type` and how its message starts.
fn expected(kind: Kind, door: Door, condition: Condition) -> (u16, Value) {
    use Condition::*;
    let status = match condition {
        ContextLength | InvalidImage => 400,
        RateLimited => 429,
        Overloaded => 502,
    };
    if door == Door::Messages {
        let t = match condition {
            ContextLength | InvalidImage => "invalid_request_error",
            RateLimited => "rate_limit_error",
            Overloaded => "overloaded_error",
        };
        return (status, json!({"type": t}));
    }
    let input = if door == Door::Responses {
        "input"
    } else {
        "messages"
    };
    let fields = match (condition, passes_through(kind, door)) {
        // The vendor's own, as it sent them.
        (ContextLength, true) => json!([
            "invalid_request_error",
            "context_length_exceeded",
            "messages"
        ]),
        (RateLimited, true) => json!(["requests", "rate_limit_exceeded", null]),
        (Overloaded, true) => json!(["server_error", "upstream_error", null]),
        (InvalidImage, true) => json!(["invalid_request_error", "invalid_image", null]),
        // The door's own for the vendor's condition.
        (ContextLength, false) => {
            json!(["invalid_request_error", "context_length_exceeded", input])
        }
        (RateLimited, false) => json!(["rate_limit_error", "rate_limit_exceeded", null]),
        (Overloaded, false) => json!(["api_error", "upstream_error", null]),
        (InvalidImage, false) => json!(["invalid_request_error", "invalid_image", null]),
    };
    (status, fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_condition_at_every_door_from_every_vendor_kind() {
    let v = vendors().await;
    let mut failures = Vec::new();
    let mut cases = 0;
    for condition in [
        Condition::ContextLength,
        Condition::RateLimited,
        Condition::Overloaded,
        Condition::InvalidImage,
    ] {
        for kind in [Kind::OpenAi, Kind::Anthropic, Kind::Gemini] {
            let message = answer(&v, kind, condition);
            for door in [Door::Chat, Door::Responses, Door::Messages] {
                cases += 1;
                let (status, body) = send(&v.gw, door, model_of(kind)).await;
                let (want_status, want) = expected(kind, door, condition);
                let case = format!("{condition:?} from {kind:?} at the {door:?} door");
                let e = &body["error"];
                let got = if door == Door::Messages {
                    json!({"type": e["type"]})
                } else {
                    json!([e["type"], e["code"], e["param"]])
                };
                let text = e["message"].as_str().unwrap_or_default();
                let mut wrong = Vec::new();
                if status != want_status {
                    wrong.push(format!("status {status}, want {want_status}"));
                }
                if got != want {
                    wrong.push(format!("{got}, want {want}"));
                }
                if !text.contains(message) {
                    wrong.push(format!("message {text:?} lost the vendor's {message:?}"));
                }
                if door == Door::Messages && condition == Condition::ContextLength {
                    if !text.starts_with("prompt is too long") {
                        wrong.push(format!("message {text:?} does not say prompt is too long"));
                    }
                    if body["type"] != "error" {
                        wrong.push(format!("not Anthropic's shape: {body}"));
                    }
                }
                if door != Door::Messages && e["reason"].as_str().is_none() {
                    wrong.push(format!("no gateway reason: {body}"));
                }
                if !wrong.is_empty() {
                    failures.push(format!("{case}: {}\n    {body}", wrong.join("; ")));
                }
            }
        }
    }
    assert_eq!(cases, 36);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What Codex CLI and Claude Code branch on, read by the real SDKs: the OpenAI SDK's
/// `e.code == "context_length_exceeded"` on the chat door (pass-through to openai, translated
/// to anthropic and gemini), the Anthropic SDK's `invalid_request_error` "prompt is too long"
/// on the Messages door (pass-through to anthropic, translated to openai and gemini).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_read_context_length_exceeded_on_pass_through_and_translated_routes() {
    let v = vendors().await;
    for kind in [Kind::OpenAi, Kind::Anthropic, Kind::Gemini] {
        answer(&v, kind, Condition::ContextLength);
    }
    let script = r#"
import sys
import anthropic, openai
base, key = sys.argv[1], sys.argv[2]
oai = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
ant = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
for model in ["gpt", "claude", "gemini"]:
    try:
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        print("openai", model, "no error")
    except openai.BadRequestError as e:
        print("openai", model, e.status_code, e.code, e.param)
    try:
        ant.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
        print("anthropic", model, "no error")
    except anthropic.BadRequestError as e:
        err = e.body["error"]
        too_long = err["message"].lower().startswith("prompt is too long")
        print("anthropic", model, e.status_code, err["type"], "too_long" if too_long else err["message"])
"#;
    let out = tokio::process::Command::new(support::python())
        .arg("-c")
        .arg(script)
        .arg(v.gw.url(""))
        .arg(DEMO_SECRET)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "openai gpt 400 context_length_exceeded messages",
            "anthropic gpt 400 invalid_request_error too_long",
            "openai claude 400 context_length_exceeded messages",
            "anthropic claude 400 invalid_request_error too_long",
            "openai gemini 400 context_length_exceeded messages",
            "anthropic gemini 400 invalid_request_error too_long",
        ],
        "{stderr}"
    );
}
