//! `MockAnthropic`: a loopback server that behaves as Anthropic's Messages API does, strict about
//! the rules Anthropic's docs state, and that records every request byte for byte.
//!
//! Enforced: `x-api-key` must be the configured key (else 401 `authentication_error`); every
//! other rule of Anthropic's contract is [`super::strict::anthropic`]'s (its module doc lists
//! them with their sources), answered in Anthropic's error shape
//! `{"type":"error","error":{"type","message"}}`.
//!
//! Answers: a `message` (or its event stream) with a fixed text and the usage set with
//! [`MockAnthropic::set_usage`] (its cache writes split by lifetime in `usage.cache_creation`,
//! as Anthropic reports them: the 1-hour part set with [`MockAnthropic::set_cache_write_1h`],
//! the rest 5-minute); `count_tokens` answers `{"input_tokens": N}` with N the body's
//! length divided by 4.
//!
//! Failures as Anthropic has them, set with [`MockAnthropic::set_behaviour`]
//! ([`AnthBehaviour`]): a stall before the head or before the first event, an `error` event
//! (`overloaded_error`, "busy") after K text deltas (0: before any content), silence after K
//! deltas, a text delta trickled forever, a `stop_reason` of the mock's choosing
//! (`refusal`, whole and streamed), and a stream whose end comes late after `message_stop`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::paced::{paced_body, stall, Then};
use super::strict::{self, Refusal};

/// The text of every answer.
pub const ANTHROPIC_REPLY: &str = "Hello from the mock vendor.";

/// Usage reported by the mock: input (uncached), cache read, cache write, output.
#[derive(Clone, Copy, Debug)]
pub struct AnthUsage {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

/// How the mock fails (every field optional; the default answers normally).
#[derive(Clone, Debug, Default)]
pub struct AnthBehaviour {
    /// Sleep before sending the head.
    pub stall_headers_ms: Option<u64>,
    /// Streams: sleep after the head, before the first event.
    pub delay_ms: Option<u64>,
    /// Streams: after `message_start`, `ping` and K text deltas (0: before any content), send
    /// `event: error` `{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`
    /// and close.
    pub error_after: Option<usize>,
    /// Streams: after `message_start`, `ping` and K text deltas, go silent with the
    /// connection open.
    pub stall_after: Option<usize>,
    /// Streams: after `message_start`, `ping` and the first text delta, one more text delta
    /// every N ms, forever.
    pub trickle_ms: Option<u64>,
    /// The answer's `stop_reason` (e.g. `refusal`) instead of `end_turn`/`tool_use`.
    pub stop_reason: Option<String>,
    /// Answer a request that passed the checks with this status and Anthropic error body
    /// ([`anthropic_error_body`]), as Anthropic refuses a prompt that is too long (400) or
    /// is overloaded (529).
    pub error: Option<(u16, String)>,
    /// Streams: after the last event (`message_stop`), hold the body's end back N ms (the
    /// client has the whole answer; the vendor's last bytes come late).
    pub end_delay_ms: Option<u64>,
}

/// Anthropic's error body (API reference, "Errors"): `{"type":"error","error":{"type",
/// "message"},"request_id"}`.
pub fn anthropic_error_body(kind: &str, message: &str) -> String {
    json!({"type":"error","error":{"type":kind,"message":message},"request_id":"req_mock_err"})
        .to_string()
}

/// The error event of an overloaded Anthropic, as it ends a stream.
pub const ANTHROPIC_OVERLOADED_EVENT: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct AnthRecorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
    /// Exactly the bytes the mock answered.
    pub response: Bytes,
}

impl AnthRecorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
}

struct Shared {
    key: String,
    usage: AnthUsage,
    /// The part of `usage.cache_write` written for 1 hour.
    cache_write_1h: u64,
    /// The answer's content blocks (default: one text block of [`ANTHROPIC_REPLY`]).
    content: Option<Value>,
    behaviour: AnthBehaviour,
    requests: Vec<AnthRecorded>,
}

pub struct MockAnthropic {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockAnthropic {
    /// Starts the mock; requests must carry `x-api-key: key`.
    pub async fn start(key: &str) -> MockAnthropic {
        let shared = Arc::new(Mutex::new(Shared {
            key: key.to_string(),
            usage: AnthUsage {
                input: 20,
                cache_read: 0,
                cache_write: 0,
                output: 7,
            },
            cache_write_1h: 0,
            requests: Vec::new(),
            content: None,
            behaviour: AnthBehaviour::default(),
        }));
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockAnthropic { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`: the `base_url` of an `anthropic` provider.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers with these content blocks (text, thinking, redacted_thinking, tool_use), as a
    /// message or as their stream events; `stop_reason` is `tool_use` when one is a tool call.
    pub fn set_content(&self, blocks: Value) {
        self.shared.lock().unwrap().content = Some(blocks);
    }

    /// Fails (or stops) this way on every following answer.
    pub fn set_behaviour(&self, behaviour: AnthBehaviour) {
        self.shared.lock().unwrap().behaviour = behaviour;
    }

    /// How many `/v1/messages` requests reached the mock.
    pub fn message_count(&self) -> usize {
        let s = self.shared.lock().unwrap();
        s.requests
            .iter()
            .filter(|r| r.path == "/v1/messages")
            .count()
    }

    pub fn set_usage(&self, usage: AnthUsage) {
        self.shared.lock().unwrap().usage = usage;
    }

    /// Reports this many of the usage's cache writes as 1-hour writes
    /// (`usage.cache_creation.ephemeral_1h_input_tokens`).
    pub fn set_cache_write_1h(&self, tokens: u64) {
        self.shared.lock().unwrap().cache_write_1h = tokens;
    }

    pub fn requests(&self) -> Vec<AnthRecorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn last(&self) -> AnthRecorded {
        let s = self.shared.lock().unwrap();
        s.requests
            .last()
            .cloned()
            .expect("a request reached the mock")
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> (StatusCode, Bytes) {
    let body = json!({"type":"error","error":{"type":kind,"message":message}});
    (status, Bytes::from(body.to_string()))
}

fn refused(r: Refusal) -> (StatusCode, Bytes) {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Bytes::from(r.anthropic_body()))
}

/// Checks a request as Anthropic does (the key here, every other rule in
/// [`strict::anthropic`]); `Err` is the answer.
fn check(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    count: bool,
) -> Result<Value, (StatusCode, Bytes)> {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(shared.key.as_str()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    let version = headers
        .get("anthropic-version")
        .map(|v| v.to_str().unwrap_or(""));
    strict::anthropic::check_headers(version).map_err(refused)?;
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| refused(Refusal::anthropic(format!("invalid JSON: {e}"))))?;
    let checked = if count {
        strict::anthropic::check_count_tokens(&v)
    } else {
        strict::anthropic::check(&v)
    };
    checked.map_err(refused)?;
    Ok(v)
}

fn record(
    shared: &Arc<Mutex<Shared>>,
    path: &str,
    headers: HeaderMap,
    body: Bytes,
    status: u16,
    response: Bytes,
) {
    shared.lock().unwrap().requests.push(AnthRecorded {
        path: path.to_string(),
        headers,
        body,
        status,
        response,
    });
}

fn respond(status: StatusCode, content_type: &str, body: Body) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("request-id", "req_mock_vendor_1")
        .body(body)
        .unwrap()
}

async fn messages(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (checked, usage, content, behaviour) = {
        let s = shared.lock().unwrap();
        let content = s
            .content
            .clone()
            .unwrap_or_else(|| json!([{"type":"text","text":ANTHROPIC_REPLY}]));
        let b = s.behaviour.clone();
        (
            check(&s, &headers, &body, false),
            (s.usage, s.cache_write_1h),
            content,
            b,
        )
    };
    stall(behaviour.stall_headers_ms).await;
    let blocks = content.as_array().cloned().unwrap_or_default();
    let stop_reason = match &behaviour.stop_reason {
        Some(r) => r.as_str(),
        None if blocks.iter().any(|b| b["type"] == "tool_use") => "tool_use",
        None => "end_turn",
    };
    let v = match checked {
        Ok(v) => v,
        Err((status, err)) => {
            record(
                &shared,
                "/v1/messages",
                headers,
                body,
                status.as_u16(),
                err.clone(),
            );
            return respond(status, "application/json", Body::from(err));
        }
    };
    if let Some((status, err)) = behaviour.error.clone() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let bytes = Bytes::from(err);
        record(
            &shared,
            "/v1/messages",
            headers,
            body,
            status.as_u16(),
            bytes.clone(),
        );
        return respond(status, "application/json", Body::from(bytes));
    }
    let model = v["model"].as_str().unwrap_or("").to_string();
    let (usage, one_hour) = usage;
    let one_hour = one_hour.min(usage.cache_write);
    let u = json!({"input_tokens":usage.input,"cache_creation_input_tokens":usage.cache_write,
                   "cache_read_input_tokens":usage.cache_read,"output_tokens":usage.output,
                   "cache_creation":{"ephemeral_5m_input_tokens":usage.cache_write - one_hour,
                                     "ephemeral_1h_input_tokens":one_hour}});
    if v["stream"] != true {
        let answer = json!({"id":"msg_mock1","type":"message","role":"assistant","model":model,
            "content":content,"stop_reason":stop_reason,"stop_sequence":null,"usage":u});
        let bytes = Bytes::from(answer.to_string());
        record(&shared, "/v1/messages", headers, body, 200, bytes.clone());
        return respond(StatusCode::OK, "application/json", Body::from(bytes));
    }
    let mut start_usage = u.clone();
    start_usage["output_tokens"] = json!(1);
    let mut frames = vec![
        format!(
            "event: message_start\ndata: {}\n\n",
            json!({"type":"message_start","message":{
            "id":"msg_mock1","type":"message","role":"assistant","model":model,"content":[],
            "stop_reason":null,"stop_sequence":null,"usage":start_usage}})
        ),
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_string(),
    ];
    for (i, b) in blocks.iter().enumerate() {
        frames.extend(block_events(i, b));
    }
    frames.push(format!(
        "event: message_delta\ndata: {}\n\n",
        json!({"type":"message_delta","delta":{"stop_reason":stop_reason,"stop_sequence":null},
               "usage":{"output_tokens":usage.output}})
    ));
    frames.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string());
    let (frames, then) = failing(frames, &behaviour);
    let all = Bytes::from(frames.concat());
    record(&shared, "/v1/messages", headers, body, 200, all);
    respond(
        StatusCode::OK,
        "text/event-stream",
        paced_body(frames, behaviour.delay_ms, then),
    )
}

/// The frames of a stream cut where `b` fails it, and what follows them.
fn failing(mut frames: Vec<String>, b: &AnthBehaviour) -> (Vec<String>, Then) {
    // The frame index just after the K-th text delta (K = 0: after message_start and ping).
    let after_deltas = |k: usize| {
        if k == 0 {
            return 2;
        }
        let mut seen = 0;
        for (i, f) in frames.iter().enumerate() {
            if f.starts_with("event: content_block_delta") {
                seen += 1;
                if seen == k {
                    return i + 1;
                }
            }
        }
        frames.len()
    };
    if let Some(k) = b.error_after {
        frames.truncate(after_deltas(k));
        frames.push(ANTHROPIC_OVERLOADED_EVENT.to_string());
        return (frames, Then::Close);
    }
    if let Some(k) = b.stall_after {
        frames.truncate(after_deltas(k));
        return (frames, Then::Stall);
    }
    if let Some(every_ms) = b.trickle_ms {
        frames.truncate(after_deltas(1));
        let frame = format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"."}})
        );
        return (frames, Then::Trickle { every_ms, frame });
    }
    if let Some(ms) = b.end_delay_ms {
        return (frames, Then::CloseAfter { ms });
    }
    (frames, Then::Close)
}

/// The stream events of one content block, as Anthropic sends them: text in three deltas,
/// thinking then its signature, a tool's input as JSON fragments.
pub fn block_events(index: usize, block: &Value) -> Vec<String> {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let delta = |d: Value| {
        event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":index,"delta":d}),
        )
    };
    let mut start = block.clone();
    let mut deltas = Vec::new();
    match block["type"].as_str().unwrap_or("") {
        "text" => {
            start["text"] = json!("");
            let text: Vec<char> = block["text"].as_str().unwrap_or("").chars().collect();
            for piece in text.chunks(text.len().div_ceil(3).max(1)) {
                let piece: String = piece.iter().collect();
                deltas.push(delta(json!({"type":"text_delta","text":piece})));
            }
        }
        "thinking" => {
            start["thinking"] = json!("");
            start["signature"] = json!("");
            deltas.push(delta(
                json!({"type":"thinking_delta","thinking":block["thinking"]}),
            ));
            deltas.push(delta(
                json!({"type":"signature_delta","signature":block["signature"]}),
            ));
        }
        "tool_use" => {
            start["input"] = json!({});
            let input = block["input"].to_string();
            let (a, b) = input.split_at(input.len() / 2);
            for part in [a, b] {
                deltas.push(delta(
                    json!({"type":"input_json_delta","partial_json":part}),
                ));
            }
        }
        _ => {}
    }
    let mut out = vec![event(
        "content_block_start",
        json!({"type":"content_block_start","index":index,"content_block":start}),
    )];
    out.extend(deltas);
    out.push(event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":index}),
    ));
    out
}

async fn count_tokens(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let checked = check(&shared.lock().unwrap(), &headers, &body, true);
    let (status, answer) = match checked {
        Ok(_) => (
            StatusCode::OK,
            Bytes::from(json!({"input_tokens": body.len() / 4}).to_string()),
        ),
        Err(e) => e,
    };
    record(
        &shared,
        "/v1/messages/count_tokens",
        headers,
        body,
        status.as_u16(),
        answer.clone(),
    );
    respond(status, "application/json", Body::from(answer))
}
