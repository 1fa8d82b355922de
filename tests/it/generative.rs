//! The generative test: random but valid front-door requests, rendered for every door (chat
//! completions, Messages, Responses, and Google's `generateContent` at the Gemini door) and
//! sent through the real binary to every vendor kind (an
//! `openai` route to `MockUpstream`, `anthropic` to `MockAnthropic`, `gemini` to `MockGemini`,
//! `bedrock` Converse models (Amazon Nova, and Llama, which takes no forced tool choice, no
//! tool-result image and no cache point) to `MockBedrock`, the built-in `mock`), each mock
//! strict about its vendor's contract (`support::strict`).
//!
//! The property, per request and door × vendor pair: the gateway answers 2xx (the vendor took
//! the translated request, and got every image the client sent), or refuses with a 4xx in the
//! door's error shape before calling the vendor (the mock recorded no request). A vendor's
//! refusal of what the gateway sent, an image lost on the way, or any 5xx is a failure; the
//! shrunk failure prints the client's request, what the gateway sent and the vendor's refusal
//! (its strict validator's message).
//!
//! A case ([`Case`]) is one conversation: any mix of system text, tools and `tool_choice`,
//! reasoning settings (`reasoning_effort`; Messages thinking `enabled`/`adaptive`/`disabled`
//! with `output_config.effort`; Responses `reasoning.effort`), sampling parameters, foreign
//! tool-call ids (`functions.lookup:0`, 60-character ids, ids with `.`/`:`), images in user
//! turns and in tool results, `user`/`metadata.user_id` (up to 200 characters where the door
//! takes them) and `safety_identifier`, structured outputs (chat `response_format`, Messages
//! `output_config.format`, Responses `text.format`, each `json_schema`), stop sequences, and a multi-turn history of tool calls, results and thinking
//! blocks with signatures. Each door's renderer makes the request valid in that door's dialect
//! (e.g. Messages with thinking on leaves out a temperature other than 1).
//!
//! Runs: a fixed seed and [`DEFAULT_CASES`] cases in CI (well under 60 s on 2 cores); set
//! `SWITCHYARD_GENERATIVE_CASES=N` and `SWITCHYARD_GENERATIVE_SEED=S` (any u64) for a longer or
//! different run, and `SWITCHYARD_GENERATIVE_SURVEY=1` to go on past failures and print every
//! distinct failure kind with the figures (cases, pairs, requests, failures) instead of
//! shrinking the first.
//!
//! What another part of issue #27 is fixing now is kept out of the run by [`KNOWN`] (each
//! entry names the failure kind, its owner and a minimal request): the cases it matches are
//! not sent to that pair, and counted (`SWITCHYARD_GENERATIVE_ALL=1` sends them anyway). The
//! list empties as those parts land.
//!
//! The Responses door to the `openai` route is passed through: those requests are sent
//! without `stream` (MockUpstream answers a chat stream, not Responses events), and must
//! satisfy the OpenAI Responses validator as they are.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Value};
use support::*;

/// Cases per run when `SWITCHYARD_GENERATIVE_CASES` is not set (each is sent through 36 pairs).
const DEFAULT_CASES: u32 = 150;
/// The seed when `SWITCHYARD_GENERATIVE_SEED` is not set.
const DEFAULT_SEED: u64 = 27;

const ANTH_KEY: &str = "sk-ant-generative";
const GEM_KEY: &str = "gem-generative";
/// The Bedrock Converse models of the `ConverseNova` and `ConverseLlama` routes.
const NOVA: &str = "us.amazon.nova-pro-v1:0";
const LLAMA: &str = "meta.llama3-1-70b-instruct-v1:0";
/// The Bedrock Claude model of the `BedrockClaude` route (InvokeModel, the Messages body).
const BEDROCK_CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
/// The Vertex AI models of the `VertexClaude` and `VertexGemini` routes.
const VERTEX_CLAUDE: &str = "claude-sonnet-4-5@20250929";
const VERTEX_GEMINI: &str = "gemini-3-pro";
const AWS_KEY_ID: &str = "AKIAGENERATIVE0001";
const AWS_SECRET: &str = "generative/secret+key";
const AWS_TOKEN: &str = "generative-session-token";

/// A 1×1 PNG, base64 (what every vendor takes as an image).
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// The tool names a case may offer (valid for every vendor's dialect that the door speaks:
/// OpenAI's and Anthropic's `^[a-zA-Z0-9_-]{1,64}$`), some not valid as they are elsewhere
/// (Gemini wants a letter or `_` first).
const TOOL_NAMES: &[&str] = &[
    "lookup",
    "get_weather",
    "search-docs",
    "2fa_check",
    "a_tool_name_of_exactly_sixty_four_characters_for_the_limit_0123",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Door {
    Chat,
    Messages,
    Responses,
    /// Google's `generateContent` / `streamGenerateContent?alt=sse` (the model in the path).
    Gemini,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Vendor {
    OpenAi,
    Anthropic,
    Gemini,
    ConverseNova,
    ConverseLlama,
    BedrockClaude,
    VertexClaude,
    VertexGemini,
    Builtin,
}

const DOORS: [Door; 4] = [Door::Chat, Door::Messages, Door::Responses, Door::Gemini];
const VENDORS: [Vendor; 9] = [
    Vendor::OpenAi,
    Vendor::Anthropic,
    Vendor::Gemini,
    Vendor::ConverseNova,
    Vendor::ConverseLlama,
    Vendor::BedrockClaude,
    Vendor::VertexClaude,
    Vendor::VertexGemini,
    Vendor::Builtin,
];

impl Vendor {
    /// The model name routed to this vendor in the test's config.
    fn model(self) -> &'static str {
        match self {
            Vendor::OpenAi => "gen-openai",
            Vendor::Anthropic => "gen-anthropic",
            Vendor::Gemini => "gen-gemini",
            Vendor::ConverseNova => "gen-converse-nova",
            Vendor::ConverseLlama => "gen-converse-llama",
            Vendor::BedrockClaude => "gen-bedrock-claude",
            Vendor::VertexClaude => "gen-vertex-claude",
            Vendor::VertexGemini => "gen-vertex-gemini",
            Vendor::Builtin => "gen-builtin",
        }
    }
}

/// Reasoning settings, rendered in each door's own terms.
#[derive(Clone, Debug)]
enum Reasoning {
    Off,
    /// `reasoning_effort` / `reasoning.effort` / Messages adaptive with `output_config.effort`.
    Effort(&'static str),
    /// Messages `thinking: enabled` with this budget (chat, Responses: effort `high`).
    Enabled(u32),
    /// Messages `thinking: adaptive` (chat, Responses: no setting).
    Adaptive,
    /// Messages `thinking: disabled` (chat, Responses: no setting).
    Disabled,
}

#[derive(Clone, Copy, Debug)]
enum Choice {
    Unset,
    Auto,
    /// `tool_choice` none.
    Nothing,
    Required,
    Named,
}

/// The shapes of tool-call ids clients send back, some minted by other vendors.
#[derive(Clone, Copy, Debug)]
enum IdKind {
    OpenAi,
    Anthropic,
    /// `functions.lookup:0` (Kimi, DeepSeek).
    Functions,
    /// 60 characters.
    Long,
    /// With `.` and `:`.
    Dotted,
}

#[derive(Clone, Debug)]
struct UserTurn {
    text: String,
    image: bool,
}

#[derive(Clone, Debug)]
struct Call {
    id: String,
    tool: usize,
    args: String,
    result: String,
    result_image: bool,
}

/// One step of a history: a user turn (absent right after tool results), the assistant's
/// answer (thinking, text, tool calls), and the results of its calls.
#[derive(Clone, Debug)]
struct Exchange {
    user: Option<UserTurn>,
    thinking: Option<(String, String)>,
    text: Option<String>,
    calls: Vec<Call>,
}

/// One generated conversation, rendered for each door by [`render`].
#[derive(Clone, Debug)]
struct Case {
    system: Option<String>,
    /// The offered tools' names (calls name one of them).
    names: Vec<&'static str>,
    /// Messages: `top_k` (without thinking).
    top_k: Option<u32>,
    /// Messages: `system` as a block with `cache_control`, and one on the last user block.
    cache: bool,
    /// Chat: the system text as a `developer` message.
    developer: bool,
    /// Responses: `store: false` with `include: ["reasoning.encrypted_content"]`.
    stateless: bool,
    /// Tools offered without `description` and `parameters`.
    bare_tools: bool,
    /// Content as part arrays where the door allows (chat assistant and tool messages,
    /// Responses `output_text` items, Messages system blocks).
    parts: bool,
    /// More parameters: chat `seed`, penalties, `parallel_tool_calls`; Messages
    /// `disable_parallel_tool_use`; Responses `parallel_tool_calls`, `truncation`.
    more_params: bool,
    /// Tool results marked as errors (Messages `is_error`), `redacted_thinking` beside
    /// thinking (Messages), named user messages (chat).
    marks: bool,
    /// A structured output: chat `response_format` `json_schema`, Messages
    /// `output_config.format`, Responses `text.format` `json_schema`.
    structured: bool,
    choice: Choice,
    reasoning: Reasoning,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u32>,
    stop: Vec<String>,
    user: Option<String>,
    history: Vec<Exchange>,
    last: Option<UserTurn>,
    stream: bool,
}

/// Thinking on in the Messages rendering (enabled, adaptive, or an effort).
fn thinking_on(case: &Case) -> bool {
    matches!(
        case.reasoning,
        Reasoning::Enabled(_) | Reasoning::Adaptive | Reasoning::Effort(_)
    )
}

impl Case {
    /// The tool calls of its history (what [`KNOWN`] entries usually test).
    #[allow(dead_code)]
    fn calls(&self) -> impl Iterator<Item = &Call> {
        self.history.iter().flat_map(|e| e.calls.iter())
    }
}

// ---------------------------------------------------------------------------------------
// Known failure kinds a change in progress is fixing: the generator keeps these cases away
// from the pair. One place, empty unless a fix is under way.
// ---------------------------------------------------------------------------------------

/// A failure kind under repair elsewhere: the pairs and cases it covers.
struct Known {
    /// The kind, as the report names it.
    kind: &'static str,
    /// The part of #27 fixing it.
    owner: &'static str,
    /// Whether the case, sent from this door to this vendor, is of this kind.
    applies: fn(&Case, Door, Vendor) -> bool,
}

/// The known failure kinds (see the module doc), each with a minimal reproducing request in
/// its comment: kept out of the run while another change fixes them. Empty: the five kinds the
/// first long run found on be65994 (tool-call ids outside Anthropic's pattern and over OpenAI's
/// 40 characters, foreign tool calls without Gemini's thoughtSignature, thinking on beside a
/// tool history without thinking blocks, images in tool results dropped) were fixed when the
/// parts of #27 merged, and a sixth (foreign ids on the Messages door's pass-through to
/// Anthropic) with them.
const KNOWN: &[Known] = &[];

fn known(case: &Case, door: Door, vendor: Vendor) -> Option<&'static str> {
    if std::env::var("SWITCHYARD_GENERATIVE_ALL").is_ok_and(|v| v == "1") {
        return None;
    }
    KNOWN
        .iter()
        .find(|k| (k.applies)(case, door, vendor))
        .map(|k| k.kind)
}

// ---------------------------------------------------------------------------------------
// Generation.
// ---------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z]{1,8}( [a-zA-Z0-9]{1,8}){0,4}",
        1 => prop::sample::select(vec!["héllo wörld", "日本語のテキスト", "emoji 🙂 ok", "tab\tand\nnewline", "\"quoted\" {json}"])
            .prop_map(str::to_string),
    ]
}

/// A user turn: text, text and an image, or (a quarter of the image turns) an image alone.
fn user_turn() -> impl Strategy<Value = UserTurn> {
    (
        text(),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(text, image, alone)| UserTurn {
            text: if image && alone { String::new() } else { text },
            image,
        })
}

fn id_kind() -> impl Strategy<Value = IdKind> {
    prop_oneof![
        Just(IdKind::OpenAi),
        Just(IdKind::Anthropic),
        Just(IdKind::Functions),
        Just(IdKind::Long),
        Just(IdKind::Dotted),
    ]
}

fn call() -> impl Strategy<Value = (IdKind, Call)> {
    (
        id_kind(),
        0..TOOL_NAMES.len(),
        text(),
        prop_oneof![4 => text(), 1 => Just(String::new())],
        prop::bool::weighted(0.3),
    )
        .prop_map(|(kind, tool, q, result, result_image)| {
            let args = json!({ "q": q }).to_string();
            let call = Call {
                id: String::new(),
                tool,
                args,
                result,
                result_image,
            };
            (kind, call)
        })
}

fn signature() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{16,48}(==)?"
}

fn exchange() -> impl Strategy<Value = (Exchange, Vec<IdKind>)> {
    (
        prop::option::of(user_turn()),
        prop::option::weighted(0.4, (text(), signature())),
        prop::option::of(text()),
        prop::collection::vec(call(), 0..3),
    )
        .prop_map(|(user, thinking, text, calls)| {
            let (kinds, calls): (Vec<IdKind>, Vec<Call>) = calls.into_iter().unzip();
            let ex = Exchange {
                user,
                thinking,
                text,
                calls,
            };
            (ex, kinds)
        })
}

fn reasoning() -> impl Strategy<Value = Reasoning> {
    prop_oneof![
        3 => Just(Reasoning::Off),
        2 => prop::sample::select(vec!["minimal", "low", "medium", "high"]).prop_map(Reasoning::Effort),
        1 => (1024u32..3000).prop_map(Reasoning::Enabled),
        1 => Just(Reasoning::Adaptive),
        1 => Just(Reasoning::Disabled),
    ]
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        Just(Choice::Unset),
        Just(Choice::Auto),
        Just(Choice::Nothing),
        Just(Choice::Required),
        Just(Choice::Named),
    ]
}

fn unit() -> impl Strategy<Value = f64> {
    (0u32..=100).prop_map(|x| f64::from(x) / 100.0)
}

fn case() -> impl Strategy<Value = Case> {
    let head = (
        prop::option::of(text()),
        prop::sample::subsequence(TOOL_NAMES.to_vec(), 0..=4).prop_shuffle(),
        choice(),
        reasoning(),
        prop::option::of(unit()),
        prop::option::of(unit()),
        prop::option::of(16u32..4000),
    );
    let tail = (
        prop::collection::vec(
            prop::sample::select(vec!["END", "###", "\n\nUser:", "STOP", "\n", "</answer>"]),
            0..7,
        ),
        prop::option::of("[a-zA-Z0-9_-]{1,200}"),
        prop::collection::vec(exchange(), 0..4),
        prop::option::of(user_turn()),
        any::<bool>(),
    );
    let extra = (
        prop::option::weighted(0.3, 1u32..100),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
    );
    (head, tail, extra).prop_map(
        |(
            (system, names, choice, reasoning, temperature, top_p, max_tokens),
            (stop, user, history, last, stream),
            (top_k, cache, developer, stateless, bare_tools, parts, more_params, marks, structured),
        )| {
            normalise(
                Case {
                    system,
                    names,
                    top_k,
                    cache,
                    developer,
                    stateless,
                    bare_tools,
                    parts,
                    more_params,
                    marks,
                    structured,
                    choice,
                    reasoning,
                    temperature,
                    top_p,
                    max_tokens,
                    stop: stop.into_iter().map(str::to_string).collect(),
                    user,
                    history: Vec::new(),
                    last,
                    stream,
                },
                history,
            )
        },
    )
}

/// Makes a generated case a conversation a client could send: ids unique and of their kind,
/// calls naming offered tools, a user turn wherever no tool results stand in for it, a
/// `tool_choice` only with tools, an assistant turn that says something.
fn normalise(mut case: Case, history: Vec<(Exchange, Vec<IdKind>)>) -> Case {
    let mut n = 0usize;
    let any_calls = history.iter().any(|(e, _)| !e.calls.is_empty());
    if any_calls && case.names.is_empty() {
        case.names.push(TOOL_NAMES[0]);
    }
    let mut after_calls = false;
    for (mut ex, kinds) in history {
        for (c, kind) in ex.calls.iter_mut().zip(kinds) {
            c.tool %= case.names.len().max(1);
            c.id = tool_id(kind, case.names[c.tool], n);
            n += 1;
        }
        if !after_calls && ex.user.is_none() {
            ex.user = Some(UserTurn {
                text: "go on".to_string(),
                image: false,
            });
        }
        if ex.calls.is_empty() && ex.text.is_none() {
            ex.text = Some("done".to_string());
        }
        after_calls = !ex.calls.is_empty();
        case.history.push(ex);
    }
    if !after_calls && case.last.is_none() {
        case.last = Some(UserTurn {
            text: "hello".to_string(),
            image: false,
        });
    }
    if case.names.is_empty() {
        case.choice = Choice::Unset;
    }
    case
}

fn tool_id(kind: IdKind, tool: &str, n: usize) -> String {
    match kind {
        IdKind::OpenAi => format!("call_{n}Xa9"),
        IdKind::Anthropic => format!("toolu_01{n}AbCdEfGh"),
        IdKind::Functions => format!("functions.{tool}:{n}"),
        IdKind::Long => format!("{:x<60}", format!("call_{n}_")),
        IdKind::Dotted => format!("tool.{n}:v1"),
    }
}

// ---------------------------------------------------------------------------------------
// Rendering: one valid request per door.
// ---------------------------------------------------------------------------------------

fn tool_schema() -> Value {
    json!({"type":"object","properties":{"q":{"type":"string"}}})
}

/// A JSON Schema as a Gemini client sends it: with `upper`, its types in Google's upper-case
/// enum names (`"OBJECT"`), which the Gemini API takes in `parametersJsonSchema` and
/// `responseJsonSchema` and Gemini CLI sends; JSON Schema's own names (lower case) otherwise.
fn gem_json_schema(schema: Value, upper: bool) -> Value {
    match schema {
        Value::Object(m) if upper => Value::Object(
            m.into_iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("type", Value::String(t)) => (k, Value::String(t.to_uppercase())),
                    ("properties", Value::Object(p)) => (
                        k,
                        Value::Object(
                            p.into_iter()
                                .map(|(n, s)| (n, gem_json_schema(s, true)))
                                .collect(),
                        ),
                    ),
                    (_, v) => (k, v),
                })
                .collect(),
        ),
        other => other,
    }
}

/// The schema of a structured output.
fn answer_schema() -> Value {
    json!({"type":"object","properties":{"answer":{"type":"string"}},
           "required":["answer"],"additionalProperties":false})
}

fn render(case: &Case, door: Door, vendor: Vendor) -> Value {
    let model = vendor.model();
    match door {
        Door::Chat => render_chat(case, model),
        Door::Messages => render_messages(case, model),
        Door::Responses => render_responses(case, model),
        Door::Gemini => render_gemini(case, vendor),
    }
}

fn first_64(s: &str) -> String {
    s.chars().take(64).collect()
}

fn chat_user(u: &UserTurn) -> Value {
    if u.image {
        let mut parts = vec![
            json!({"type":"image_url","image_url":{"url":format!("data:image/png;base64,{PNG}")}}),
        ];
        if !u.text.is_empty() {
            parts.insert(0, json!({"type":"text","text":u.text}));
        }
        json!({"role":"user","content":parts})
    } else {
        json!({"role":"user","content":u.text})
    }
}

/// Chat completions: tool results as `tool` messages (text: the chat API's tool content is
/// text), reasoning as `reasoning_effort`, `user` up to OpenAI's 64 characters.
fn render_chat(case: &Case, model: &str) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = &case.system {
        let role = if case.developer {
            "developer"
        } else {
            "system"
        };
        messages.push(json!({"role":role,"content":s}));
    }
    for ex in &case.history {
        if let Some(u) = &ex.user {
            let mut m = chat_user(u);
            if case.marks {
                m["name"] = json!("alice");
            }
            messages.push(m);
        }
        let content = match (&ex.text, case.parts) {
            (Some(t), true) => json!([{"type":"text","text":t}]),
            (t, _) => json!(t),
        };
        let mut a = json!({"role":"assistant","content":content});
        if !ex.calls.is_empty() {
            a["tool_calls"] = ex
                .calls
                .iter()
                .map(|c| json!({"id":c.id,"type":"function","function":{"name":case.names[c.tool],"arguments":c.args}}))
                .collect();
        }
        messages.push(a);
        for c in &ex.calls {
            let content = match case.parts && !c.result.is_empty() {
                true => json!([{"type":"text","text":c.result}]),
                false => json!(c.result),
            };
            messages.push(json!({"role":"tool","tool_call_id":c.id,"content":content}));
        }
    }
    if let Some(u) = &case.last {
        messages.push(chat_user(u));
    }
    let mut body = json!({"model":model,"messages":messages,"stream":case.stream});
    if !case.names.is_empty() {
        body["tools"] = case
            .names
            .iter()
            .map(|n| match case.bare_tools {
                true => json!({"type":"function","function":{"name":n}}),
                false => json!({"type":"function","function":{"name":n,"description":"a tool","parameters":tool_schema()}}),
            })
            .collect();
    }
    body["tool_choice"] = match case.choice {
        Choice::Unset => Value::Null,
        Choice::Auto => json!("auto"),
        Choice::Nothing => json!("none"),
        Choice::Required => json!("required"),
        Choice::Named => json!({"type":"function","function":{"name":case.names[0]}}),
    };
    body["reasoning_effort"] = match case.reasoning {
        Reasoning::Effort(e) => json!(e),
        Reasoning::Enabled(_) => json!("high"),
        _ => Value::Null,
    };
    body["temperature"] = json!(case.temperature);
    body["top_p"] = json!(case.top_p);
    body["max_completion_tokens"] = json!(case.max_tokens);
    if !case.stop.is_empty() {
        body["stop"] = json!(case.stop.iter().take(4).collect::<Vec<_>>());
    }
    body["user"] = json!(case.user.as_deref().map(first_64));
    if case.structured {
        body["response_format"] =
            json!({"type":"json_schema","json_schema":{"name":"answer","schema":answer_schema()}});
    }
    if case.more_params {
        body["safety_identifier"] = json!(case.user.as_deref().map(first_64));
        body["seed"] = json!(7);
        body["presence_penalty"] = json!(0.5);
        body["frequency_penalty"] = json!(-0.5);
        if !case.names.is_empty() {
            body["parallel_tool_calls"] = json!(false);
        }
    }
    strip_nulls(body)
}

fn anth_image() -> Value {
    json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":PNG}})
}

fn anth_user_blocks(u: &UserTurn) -> Vec<Value> {
    let mut blocks = Vec::new();
    if !u.text.is_empty() {
        blocks.push(json!({"type":"text","text":u.text}));
    }
    if u.image {
        blocks.push(anth_image());
    }
    blocks
}

fn anth_results(calls: &[Call], is_error: bool) -> Vec<Value> {
    calls
        .iter()
        .map(|c| {
            let content = if c.result_image && c.result.is_empty() {
                json!([anth_image()])
            } else if c.result_image {
                json!([{"type":"text","text":c.result}, anth_image()])
            } else {
                json!(c.result)
            };
            let mut result = json!({"type":"tool_result","tool_use_id":c.id,"content":content});
            if is_error {
                result["is_error"] = json!(true);
            }
            result
        })
        .collect()
}

/// Messages: tool results first in the next user turn, thinking blocks signed (and opening
/// every tool-calling turn when thinking is enabled), `max_tokens` above the budget, with
/// thinking on no temperature but 1, no `top_p` below 0.95, no forced `tool_choice`;
/// `metadata.user_id` up to 200 characters.
fn render_messages(case: &Case, model: &str) -> Value {
    let enabled = matches!(case.reasoning, Reasoning::Enabled(_));
    let mut messages = Vec::new();
    let mut pending: Vec<Value> = Vec::new();
    for ex in &case.history {
        let mut user = std::mem::take(&mut pending);
        if let Some(u) = &ex.user {
            user.extend(anth_user_blocks(u));
        }
        if !user.is_empty() {
            messages.push(json!({"role":"user","content":user}));
        }
        let mut blocks = Vec::new();
        match &ex.thinking {
            Some((t, sig)) => {
                blocks.push(json!({"type":"thinking","thinking":t,"signature":sig}));
                if case.marks {
                    blocks.push(json!({"type":"redacted_thinking","data":sig}));
                }
            }
            None if enabled && !ex.calls.is_empty() => blocks
                .push(json!({"type":"thinking","thinking":"planning","signature":"c2lnbmF0dXJl"})),
            None => {}
        }
        if let Some(t) = &ex.text {
            blocks.push(json!({"type":"text","text":t}));
        }
        for c in &ex.calls {
            let input: Value = serde_json::from_str(&c.args).unwrap_or(json!({}));
            blocks
                .push(json!({"type":"tool_use","id":c.id,"name":case.names[c.tool],"input":input}));
        }
        messages.push(json!({"role":"assistant","content":blocks}));
        pending = anth_results(&ex.calls, case.marks);
    }
    let mut user = pending;
    if let Some(u) = &case.last {
        user.extend(anth_user_blocks(u));
    }
    if !user.is_empty() {
        messages.push(json!({"role":"user","content":user}));
    }
    let mut max_tokens = case.max_tokens.unwrap_or(1024);
    let mut body = json!({"model":model,"messages":messages,"stream":case.stream});
    match case.reasoning {
        Reasoning::Off => {}
        Reasoning::Effort(e) => {
            let e = if e == "minimal" { "low" } else { e };
            body["thinking"] = json!({"type":"adaptive"});
            body["output_config"] = json!({ "effort": e });
        }
        Reasoning::Enabled(budget) => {
            max_tokens = max_tokens.max(budget + 1);
            body["thinking"] = json!({"type":"enabled","budget_tokens":budget});
        }
        Reasoning::Adaptive => body["thinking"] = json!({"type":"adaptive"}),
        Reasoning::Disabled => body["thinking"] = json!({"type":"disabled"}),
    }
    if case.structured {
        body["output_config"]["format"] = json!({"type":"json_schema","schema":answer_schema()});
    }
    body["max_tokens"] = json!(max_tokens);
    if let Some(s) = &case.system {
        body["system"] = match (case.cache, case.parts) {
            (true, _) => json!([{"type":"text","text":s,"cache_control":{"type":"ephemeral"}}]),
            (false, true) => json!([{"type":"text","text":s},{"type":"text","text":"Be brief."}]),
            (false, false) => json!(s),
        };
    }
    if case.cache {
        let last = body["messages"].as_array_mut().and_then(|m| m.last_mut());
        if let Some(block) = last
            .and_then(|m| m["content"].as_array_mut())
            .and_then(|b| b.last_mut())
        {
            block["cache_control"] = json!({"type":"ephemeral"});
        }
    }
    if !thinking_on(case) {
        body["top_k"] = json!(case.top_k);
    }
    if !case.names.is_empty() {
        body["tools"] = case
            .names
            .iter()
            .map(|n| match case.bare_tools {
                true => json!({"name":n,"input_schema":{"type":"object"}}),
                false => json!({"name":n,"description":"a tool","input_schema":tool_schema()}),
            })
            .collect();
    }
    let thinking = thinking_on(case);
    body["tool_choice"] = match case.choice {
        Choice::Unset => Value::Null,
        Choice::Auto => json!({"type":"auto"}),
        Choice::Nothing => json!({"type":"none"}),
        Choice::Required | Choice::Named if thinking => json!({"type":"auto"}),
        Choice::Required => json!({"type":"any"}),
        Choice::Named => json!({"type":"tool","name":case.names[0]}),
    };
    if case.more_params && body["tool_choice"].is_object() && body["tool_choice"]["type"] != "none"
    {
        body["tool_choice"]["disable_parallel_tool_use"] = json!(true);
    }
    if !thinking {
        body["temperature"] = json!(case.temperature);
    }
    body["top_p"] = json!(case.top_p.filter(|p| !thinking || *p >= 0.95));
    let stops: Vec<&String> = case.stop.iter().filter(|s| !s.trim().is_empty()).collect();
    if !stops.is_empty() {
        body["stop_sequences"] = json!(stops);
    }
    if let Some(u) = &case.user {
        body["metadata"] = json!({ "user_id": u });
    }
    strip_nulls(body)
}

fn responses_user(u: &UserTurn) -> Value {
    if u.image {
        let mut parts =
            vec![json!({"type":"input_image","image_url":format!("data:image/png;base64,{PNG}")})];
        if !u.text.is_empty() {
            parts.insert(0, json!({"type":"input_text","text":u.text}));
        }
        json!({"role":"user","content":parts})
    } else {
        json!({"role":"user","content":u.text})
    }
}

/// Responses: reasoning items with `encrypted_content` before the calls they led to,
/// `function_call_output` with text and images, `reasoning.effort`, `user` up to 64 and the
/// long value in `metadata`.
fn render_responses(case: &Case, model: &str) -> Value {
    let mut input = Vec::new();
    for (k, ex) in case.history.iter().enumerate() {
        if let Some(u) = &ex.user {
            input.push(responses_user(u));
        }
        if let Some((t, sig)) = &ex.thinking {
            input.push(json!({"type":"reasoning","id":format!("rs_gen{k}"),
                "summary":[{"type":"summary_text","text":t}],"encrypted_content":sig}));
        }
        if let Some(t) = &ex.text {
            input.push(match case.parts {
                true => json!({"type":"message","role":"assistant","id":format!("msg_gen{k}"),
                    "status":"completed","content":[{"type":"output_text","text":t,"annotations":[]}]}),
                false => json!({"role":"assistant","content":t}),
            });
        }
        for c in &ex.calls {
            input.push(json!({"type":"function_call","call_id":c.id,"name":case.names[c.tool],"arguments":c.args}));
        }
        for c in &ex.calls {
            let output = if c.result_image && c.result.is_empty() {
                json!([{"type":"input_image","image_url":format!("data:image/png;base64,{PNG}")}])
            } else if c.result_image {
                json!([{"type":"input_text","text":c.result},
                       {"type":"input_image","image_url":format!("data:image/png;base64,{PNG}")}])
            } else {
                json!(c.result)
            };
            input.push(json!({"type":"function_call_output","call_id":c.id,"output":output}));
        }
    }
    if let Some(u) = &case.last {
        input.push(responses_user(u));
    }
    let mut body = json!({"model":model,"input":input,"stream":case.stream});
    if let Some(s) = &case.system {
        body["instructions"] = json!(s);
    }
    if !case.names.is_empty() {
        body["tools"] = case
            .names
            .iter()
            .map(|n| json!({"type":"function","name":n,"description":"a tool","parameters":tool_schema()}))
            .collect();
    }
    body["tool_choice"] = match case.choice {
        Choice::Unset => Value::Null,
        Choice::Auto => json!("auto"),
        Choice::Nothing => json!("none"),
        Choice::Required => json!("required"),
        Choice::Named => json!({"type":"function","name":case.names[0]}),
    };
    body["reasoning"] = match case.reasoning {
        Reasoning::Effort(e) => json!({ "effort": e }),
        Reasoning::Enabled(_) => json!({"effort":"high"}),
        _ => Value::Null,
    };
    body["temperature"] = json!(case.temperature);
    body["top_p"] = json!(case.top_p);
    body["max_output_tokens"] = json!(case.max_tokens);
    if case.more_params {
        body["truncation"] = json!("auto");
        if !case.names.is_empty() {
            body["parallel_tool_calls"] = json!(false);
        }
    }
    if case.stateless {
        body["store"] = json!(false);
        body["include"] = json!(["reasoning.encrypted_content"]);
    }
    if let Some(u) = &case.user {
        body["user"] = json!(first_64(u));
        body["metadata"] = json!({ "client_user": u });
        if case.more_params {
            body["safety_identifier"] = json!(first_64(u));
        }
    }
    if case.structured {
        body["text"] =
            json!({"format":{"type":"json_schema","name":"answer","schema":answer_schema()}});
    }
    strip_nulls(body)
}

/// A tool name as a Gemini client would declare it (Google refuses a digit first).
fn gem_name(name: &str) -> String {
    match name.starts_with(|c: char| c.is_ascii_digit()) {
        true => format!("_{name}"),
        false => name.to_string(),
    }
}

/// An image part as the Google SDKs send it: standard base64 to a Gemini route (as Google
/// itself answers), or URL-safe without padding elsewhere (`snake`: the Python SDK's
/// spellings), which the gateway must make standard for the vendor.
fn gem_image(snake: bool) -> Value {
    match snake {
        true => json!({"inline_data":{"mime_type":"image/png","data":PNG.trim_end_matches('=')}}),
        false => json!({"inlineData":{"mimeType":"image/png","data":PNG}}),
    }
}

fn gem_user_parts(u: &UserTurn, snake: bool) -> Vec<Value> {
    let mut parts = Vec::new();
    if !u.text.is_empty() {
        parts.push(json!({ "text": u.text }));
    }
    if u.image {
        parts.push(gem_image(snake));
    }
    parts
}

/// A Gemini `Schema` (Google's OpenAPI subset) of the tools' parameters.
fn gem_openapi_schema() -> Value {
    json!({"type":"OBJECT","properties":{"q":{"type":"STRING","nullable":true}},"propertyOrdering":["q"]})
}

/// The Gemini door (`generateContent`): `contents` with `user`/`model` turns, function calls
/// (with their `id` when `marks`, else paired by name and order, and the `thoughtSignature`
/// Gemini gave the turn's first call), function responses (with inline images), signed thought
/// parts, `tools[].functionDeclarations` (OpenAPI `parameters`, or `parametersJsonSchema` when
/// `parts`), `toolConfig`, `generationConfig` with `thinkingConfig` (a level, a budget, 0 or
/// -1), `safetySettings` (`cache`). To every vendor but Gemini's own routes (where the bytes
/// pass through to a validator that reads camelCase) a third of the cases (`developer`) is
/// spelled as the Python SDK does: snake_case names and URL-safe, unpadded base64.
fn render_gemini(case: &Case, vendor: Vendor) -> Value {
    use base64::Engine;
    let native = matches!(vendor, Vendor::Gemini | Vendor::VertexGemini);
    let snake = case.developer && !native;
    let sign = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut contents = Vec::new();
    let mut pending: Vec<Value> = Vec::new();
    for ex in &case.history {
        if !pending.is_empty() {
            contents.push(json!({"role":"user","parts":std::mem::take(&mut pending)}));
        }
        if let Some(u) = &ex.user {
            let parts = gem_user_parts(u, snake);
            if !parts.is_empty() {
                contents.push(json!({"role":"user","parts":parts}));
            }
        }
        let mut parts = Vec::new();
        if let Some((t, sig)) = &ex.thinking {
            parts.push(json!({"text":t,"thought":true,"thoughtSignature":sign(sig)}));
        }
        if let Some(t) = &ex.text {
            parts.push(json!({ "text": t }));
        }
        for (k, c) in ex.calls.iter().enumerate() {
            let args: Value = serde_json::from_str(&c.args).unwrap_or(json!({}));
            let mut call = json!({"name":gem_name(case.names[c.tool]),"args":args});
            if case.marks {
                call["id"] = json!(c.id);
            }
            let mut part = json!({ "functionCall": call });
            if k == 0 {
                part["thoughtSignature"] = json!(sign(&format!("sig-{}", c.id)));
            }
            parts.push(part);
        }
        contents.push(json!({"role":"model","parts":parts}));
        for c in &ex.calls {
            let mut response =
                json!({"name":gem_name(case.names[c.tool]),"response":{"result":c.result}});
            if case.marks {
                response["id"] = json!(c.id);
            }
            if c.result_image {
                response["parts"] = json!([gem_image(snake)]);
            }
            pending.push(json!({ "functionResponse": response }));
        }
    }
    let mut last = pending;
    if let Some(u) = &case.last {
        if !last.is_empty() {
            contents.push(json!({"role":"user","parts":std::mem::take(&mut last)}));
        }
        last = gem_user_parts(u, snake);
    }
    if !last.is_empty() {
        contents.push(json!({"role":"user","parts":last}));
    }
    let mut body = json!({"contents":contents,"stream":case.stream});
    if let Some(s) = &case.system {
        body["systemInstruction"] = json!({"parts":[{"text":s}]});
    }
    if !case.names.is_empty() {
        let declarations: Vec<Value> = case
            .names
            .iter()
            .map(|n| match (case.bare_tools, case.parts) {
                (true, _) => json!({"name":gem_name(n)}),
                (false, true) => json!({"name":gem_name(n),"description":"a tool","parametersJsonSchema":gem_json_schema(tool_schema(), case.more_params)}),
                (false, false) => json!({"name":gem_name(n),"description":"a tool","parameters":gem_openapi_schema()}),
            })
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
        let mode = match case.choice {
            Choice::Unset => None,
            Choice::Auto => Some(json!({"mode":"AUTO"})),
            Choice::Nothing => Some(json!({"mode":"NONE"})),
            Choice::Required => Some(json!({"mode":"ANY"})),
            Choice::Named => {
                Some(json!({"mode":"ANY","allowedFunctionNames":[gem_name(case.names[0])]}))
            }
        };
        if let Some(config) = mode {
            body["toolConfig"] = json!({ "functionCallingConfig": config });
        }
    }
    let mut config = json!({});
    config["temperature"] = json!(case.temperature);
    config["topP"] = json!(case.top_p);
    config["topK"] = json!(case.top_k);
    config["maxOutputTokens"] = json!(case.max_tokens);
    let stops: Vec<&String> = case.stop.iter().take(4).collect();
    if !stops.is_empty() {
        config["stopSequences"] = json!(stops);
    }
    config["thinkingConfig"] = match case.reasoning {
        Reasoning::Off => Value::Null,
        Reasoning::Effort(e) => json!({"thinkingLevel": e.to_uppercase(), "includeThoughts": true}),
        Reasoning::Enabled(budget) => json!({ "thinkingBudget": budget }),
        Reasoning::Adaptive => json!({"thinkingBudget": -1}),
        Reasoning::Disabled => json!({"thinkingBudget": 0}),
    };
    if case.more_params {
        config["seed"] = json!(7);
        config["presencePenalty"] = json!(0.5);
        config["frequencyPenalty"] = json!(-0.5);
    }
    if case.structured {
        config["responseMimeType"] = json!("application/json");
        config["responseJsonSchema"] = gem_json_schema(answer_schema(), case.more_params);
    }
    let config = strip_nulls(config);
    if config.as_object().is_some_and(|o| !o.is_empty()) {
        body["generationConfig"] = config;
    }
    if case.cache {
        body["safetySettings"] =
            json!([{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_ONLY_HIGH"}]);
    }
    let body = strip_nulls(body);
    match snake {
        true => snake_case(body),
        false => body,
    }
}

/// The proto's snake_case names of a Gemini request's camelCase fields, as the Python SDK
/// sends some (the values of schemas, arguments and responses are the client's own).
fn snake_case(v: Value) -> Value {
    const OWN: &[&str] = &[
        "args",
        "response",
        "parameters",
        "parametersJsonSchema",
        "responseJsonSchema",
    ];
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let v = if OWN.contains(&k.as_str()) {
                        v
                    } else {
                        snake_case(v)
                    };
                    let mut snake = String::new();
                    for c in k.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                            snake.push(c.to_ascii_lowercase());
                        } else {
                            snake.push(c);
                        }
                    }
                    (snake, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(snake_case).collect()),
        other => other,
    }
}

/// The body without its null fields (a client leaves unset fields out).
fn strip_nulls(mut body: Value) -> Value {
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    body
}

// ---------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------

struct World {
    openai: MockUpstream,
    anth: MockAnthropic,
    gem: MockGemini,
    bedrock: MockBedrock,
    vertex: MockVertex,
    gw: Gateway,
    http: reqwest::Client,
}

async fn world() -> World {
    let openai = MockUpstream::start().await;
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let gem = MockGemini::start(GEM_KEY).await;
    let bedrock = MockBedrock::start(
        "us-east-1",
        &[NOVA, LLAMA, BEDROCK_CLAUDE],
        Some(AwsKey {
            id: AWS_KEY_ID.into(),
            secret: AWS_SECRET.into(),
            token: Some(AWS_TOKEN.into()),
            until: None,
        }),
    )
    .await;
    let vertex = MockVertex::start("us-east5").await;
    let body = ConfigBody::new()
        .text(&vertex.provider("vx", ""))
        .provider("oa", "openai", &openai.base_url(), "")
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_GEN_ANTH\"",
        )
        .provider(
            "gem",
            "gemini",
            &gem.origin(),
            "api_key_env = \"SY_GEN_GEM\"",
        )
        .provider(
            "aws",
            "bedrock",
            &bedrock.origin(),
            "region = \"us-east-1\"",
        )
        .mock_provider("builtin")
        .model(Vendor::OpenAi.model(), &[("oa", "gpt-5")])
        .model(
            Vendor::Anthropic.model(),
            &[("claude", "claude-sonnet-4-5")],
        )
        .model(Vendor::Gemini.model(), &[("gem", "gemini-3-pro")])
        .model(Vendor::ConverseNova.model(), &[("aws", NOVA)])
        .model(Vendor::ConverseLlama.model(), &[("aws", LLAMA)])
        .model(Vendor::BedrockClaude.model(), &[("aws", BEDROCK_CLAUDE)])
        .model(Vendor::VertexClaude.model(), &[("vx", VERTEX_CLAUDE)])
        .model(Vendor::VertexGemini.model(), &[("vx", VERTEX_GEMINI)])
        .model(Vendor::Builtin.model(), &[("builtin", "mock-large")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_GEN_ANTH", ANTH_KEY)
        .env("SY_GEN_GEM", GEM_KEY)
        .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_SESSION_TOKEN", AWS_TOKEN)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .start()
        .await;
    let http = gw.client();
    World {
        openai,
        anth,
        gem,
        bedrock,
        vertex,
        gw,
        http,
    }
}

impl World {
    /// Requests the vendor's mock has received.
    fn seen(&self, vendor: Vendor) -> usize {
        match vendor {
            Vendor::OpenAi => self.openai.request_count(),
            Vendor::Anthropic => self.anth.message_count(),
            Vendor::Gemini => self.gem.request_count(),
            Vendor::ConverseNova | Vendor::ConverseLlama | Vendor::BedrockClaude => {
                self.bedrock.count()
            }
            Vendor::VertexClaude | Vendor::VertexGemini => self.vertex.requests().len(),
            Vendor::Builtin => 0,
        }
    }

    /// What the gateway last sent the vendor, and the vendor's contract's verdict on it.
    fn last_sent(&self, vendor: Vendor) -> (Value, String) {
        let verdict = |r: Result<(), strict::Refusal>| match r {
            Ok(()) => "(the strict validator takes it)".to_string(),
            Err(r) => format!("{} {}: {}", r.status, r.kind, r.message),
        };
        match vendor {
            Vendor::OpenAi => {
                let last = self.openai.last_request().expect("a request");
                let body = last.json();
                let check = if last.path_only().ends_with("/responses") {
                    strict::openai_responses::check(&body)
                } else {
                    strict::openai_chat::check(&body)
                };
                (body, verdict(check))
            }
            Vendor::Anthropic => {
                let body = self.anth.last().json();
                let check = strict::anthropic::check(&body);
                (body, verdict(check))
            }
            Vendor::Gemini => {
                let body = self.gem.last_body().unwrap_or(Value::Null);
                let check = strict::gemini::check(&body);
                (body, verdict(check))
            }
            Vendor::ConverseNova | Vendor::ConverseLlama => {
                let last = self.bedrock.last();
                let body = last.json();
                let check = strict::converse::check(&body, &last.model);
                (body, verdict(check))
            }
            Vendor::BedrockClaude => {
                let last = self.bedrock.last();
                let body = last.json();
                let check = match support::mock_bedrock::check_invoke(&body, &last.model) {
                    Ok(_) => Ok(()),
                    Err((status, kind, message)) => Err(strict::Refusal {
                        status,
                        kind: "ValidationException",
                        code: None,
                        param: None,
                        message: format!("{kind}: {message}"),
                    }),
                };
                (body, verdict(check))
            }
            // The Vertex mock checks Vertex's own rules (path, token, envelope, betas), then
            // hands the body (Claude's with `model` back) to the vendor's strict mock.
            Vendor::VertexClaude => {
                let body = self.vertex.anthropic.last().json();
                let check = strict::anthropic::check(&body);
                (body, verdict(check))
            }
            Vendor::VertexGemini => {
                let body = self.vertex.gemini.last_body().unwrap_or(Value::Null);
                let check = strict::gemini::check(&body);
                (body, verdict(check))
            }
            Vendor::Builtin => (Value::Null, String::new()),
        }
    }

    async fn send(&self, door: Door, vendor: Vendor, body: &Value) -> (u16, String) {
        let req = match door {
            // As the Google SDKs send it: the model and the method in the path, the key in
            // `x-goog-api-key`, streams with `alt=sse`; the body has no `model` or `stream`.
            Door::Gemini => {
                let stream = body["stream"].as_bool().unwrap_or(false);
                let mut body = body.clone();
                if let Some(o) = body.as_object_mut() {
                    o.remove("stream");
                }
                let path = match stream {
                    true => format!(
                        "/v1beta/models/{}:streamGenerateContent?alt=sse",
                        vendor.model()
                    ),
                    false => format!("/v1beta/models/{}:generateContent", vendor.model()),
                };
                let resp = self
                    .http
                    .post(self.gw.url(&path))
                    .header("x-goog-api-key", DEMO_SECRET)
                    .json(&body)
                    .send()
                    .await
                    .expect("the gateway answers");
                let status = resp.status().as_u16();
                return (status, resp.text().await.unwrap_or_default());
            }
            Door::Chat => self
                .http
                .post(self.gw.url("/v1/chat/completions"))
                .bearer_auth(DEMO_SECRET),
            Door::Responses => self
                .http
                .post(self.gw.url("/v1/responses"))
                .bearer_auth(DEMO_SECRET),
            Door::Messages => self
                .http
                .post(self.gw.url("/v1/messages"))
                .header("x-api-key", DEMO_SECRET)
                .header("anthropic-version", "2023-06-01")
                // As Claude Code sends them: one beta every Claude platform takes, and ones
                // Bedrock and Vertex refuse (the gateway must drop those for the clouds).
                .header(
                    "anthropic-beta",
                    "interleaved-thinking-2025-05-14,claude-code-20250219,prompt-caching-scope-2026-01-05",
                ),
        };
        let resp = req.json(body).send().await.expect("the gateway answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }
}

/// The door's error shape with a message: `{"error":{"message",…}}` (chat, Responses; Google's
/// `{"error":{"code","message","status"}}` at the Gemini door) or
/// `{"type":"error","error":{"type","message"}}` (Messages).
fn door_error_message(door: Door, text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    if door == Door::Messages && v["type"] != "error" {
        return None;
    }
    if door == Door::Gemini && !(v["error"]["code"].is_u64() && v["error"]["status"].is_string()) {
        return None;
    }
    v["error"]["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// What one request showed.
enum Outcome {
    Answered,
    /// Refused by the gateway before any vendor call, with this message.
    Refused(String),
    /// The property does not hold: the kind (for the survey) and the full report.
    Broken {
        kind: String,
        report: String,
    },
    /// Kept away from this pair by [`KNOWN`].
    Skipped(&'static str),
}

/// The failure kind: door, vendor and the refusal with its numbers and ids masked.
fn kind_of(door: Door, vendor: Vendor, refusal: &str) -> String {
    let masked: String = refusal
        .split_whitespace()
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "#"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!("{door:?} -> {vendor:?}: {masked}")
}

async fn exercise(w: &World, case: &Case, door: Door, vendor: Vendor) -> Outcome {
    if let Some(kind) = known(case, door, vendor) {
        return Outcome::Skipped(kind);
    }
    let mut body = render(case, door, vendor);
    if door == Door::Responses && vendor == Vendor::OpenAi {
        // Passed through: MockUpstream answers a chat stream, not Responses events, so the
        // gateway would report the stream cut; the request contract is what is tested here.
        body["stream"] = json!(false);
    }
    let before = w.seen(vendor);
    let (status, text) = w.send(door, vendor, &body).await;
    let called = w.seen(vendor) > before;
    let shaped = door_error_message(door, &text);
    if (200..300).contains(&status) {
        return match called.then(|| dropped_images(w, vendor, &body)).flatten() {
            Some(report) => Outcome::Broken {
                kind: format!("{door:?} -> {vendor:?}: an image of the request silently dropped"),
                report: format!("{door:?} door -> {vendor:?}: answered {status}, {report}"),
            },
            None => Outcome::Answered,
        };
    }
    if (400..500).contains(&status) && !called {
        if let Some(message) = shaped {
            return Outcome::Refused(message);
        }
    }
    let (sent, verdict) = if called {
        w.last_sent(vendor)
    } else {
        (Value::Null, "(no vendor call)".to_string())
    };
    let refusal = if verdict.is_empty() || verdict.starts_with('(') {
        format!("gateway {status}: {}", head_of(&text))
    } else {
        verdict.clone()
    };
    let report = format!(
        "{door:?} door -> {vendor:?}: the gateway answered {status} {text}\n\
         the client's request:\n{}\n\
         what the gateway sent the vendor:\n{}\n\
         the vendor's contract says: {verdict}",
        serde_json::to_string_pretty(&body).unwrap_or_default(),
        serde_json::to_string_pretty(&sent).unwrap_or_default(),
    );
    Outcome::Broken {
        kind: kind_of(door, vendor, &refusal),
        report,
    }
}

/// When the vendor got fewer images than the client sent (an answered request that lost
/// content, which the vendor cannot see), what was sent and what arrived.
fn dropped_images(w: &World, vendor: Vendor, body: &Value) -> Option<String> {
    // The unpadded prefix: the Gemini door sends some images in URL-safe base64 without padding.
    let count = |v: &Value| v.to_string().matches(PNG.trim_end_matches('=')).count();
    let sent = count(body);
    if sent == 0 {
        return None;
    }
    let (arrived, _) = w.last_sent(vendor);
    (count(&arrived) < sent).then(|| {
        format!(
            "{sent} images sent, {} arrived\nthe client's request:\n{}\nwhat the gateway sent the vendor:\n{}",
            count(&arrived),
            serde_json::to_string_pretty(body).unwrap_or_default(),
            serde_json::to_string_pretty(&arrived).unwrap_or_default()
        )
    })
}

fn head_of(text: &str) -> String {
    text.chars().take(300).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The run's tallies (printed at the end).
#[derive(Default)]
struct Tally {
    cases: u64,
    requests: u64,
    answered: u64,
    refused: BTreeMap<String, u64>,
    skipped: BTreeMap<&'static str, u64>,
    broken: BTreeMap<String, (u64, String)>,
}

#[test]
fn every_door_to_every_vendor_keeps_the_vendor_rules() {
    let cases = env_u64("SWITCHYARD_GENERATIVE_CASES").unwrap_or(u64::from(DEFAULT_CASES));
    let seed = env_u64("SWITCHYARD_GENERATIVE_SEED").unwrap_or(DEFAULT_SEED);
    let survey = std::env::var("SWITCHYARD_GENERATIVE_SURVEY").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(world());
    let tally = Mutex::new(Tally::default());
    let started = std::time::Instant::now();

    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let config = Config {
        cases: u32::try_from(cases).unwrap_or(u32::MAX),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&case(), |case| {
        let mut t = tally.lock().unwrap();
        t.cases += 1;
        for door in DOORS {
            for vendor in VENDORS {
                let outcome = rt.block_on(exercise(&w, &case, door, vendor));
                match outcome {
                    Outcome::Skipped(kind) => *t.skipped.entry(kind).or_default() += 1,
                    Outcome::Answered => {
                        t.requests += 1;
                        t.answered += 1;
                    }
                    Outcome::Refused(message) => {
                        t.requests += 1;
                        let key = kind_of(door, vendor, &message);
                        *t.refused.entry(key).or_default() += 1;
                    }
                    Outcome::Broken { kind, report } => {
                        t.requests += 1;
                        if !survey {
                            return Err(TestCaseError::fail(report));
                        }
                        let e = t.broken.entry(kind).or_insert((0, report));
                        e.0 += 1;
                    }
                }
            }
        }
        Ok(())
    });
    let t = tally.into_inner().unwrap();
    eprintln!(
        "generative: seed {seed}, {} cases generated (with shrinking), {} door x vendor pairs, {} requests sent, {} answered 2xx, {} refused by the gateway, {} failed; {:.1}s",
        t.cases,
        DOORS.len() * VENDORS.len(),
        t.requests,
        t.answered,
        t.refused.values().sum::<u64>(),
        t.broken.values().map(|b| b.0).sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
    for (kind, n) in &t.skipped {
        let owner = KNOWN
            .iter()
            .find(|k| k.kind == *kind)
            .map_or("", |k| k.owner);
        eprintln!("  kept away (known, fixed by {owner}): {n} x {kind}");
    }
    for (kind, n) in &t.refused {
        eprintln!("  refused by the gateway: {n} x {kind}");
    }
    for (kind, (n, report)) in &t.broken {
        eprintln!("  FAILURE KIND: {n} x {kind}\n    first seen:\n{report}\n");
    }
    if let Err(e) = result {
        panic!("the property failed (shrunk):\n{e}");
    }
    assert!(t.broken.is_empty(), "{} failure kinds", t.broken.len());
}
