//! Shared helpers for Switchyard's integration tests: include with `mod support;`.
//!
//! - [`mock_anthropic`]: `MockAnthropic`, a strict Anthropic Messages vendor that records bytes.
//! - [`mock_bedrock`]: `MockBedrock`, Amazon Bedrock Runtime checking SigV4 on its own, with
//!   event-stream answers ([`mock_bedrock_converse`]: its Converse answers).
//! - [`mock_gemini`]: `MockGemini`, a Gemini vendor that wants its thought signatures back.
//! - [`mock_vertex`]: `MockVertex`, Vertex AI with its token endpoint (Gemini and Claude inside).
//! - [`mock_upstream`]: `MockUpstream`, an OpenAI-compatible vendor with fault injection.
//! - [`paced`]: the axum mocks' streamed body that stalls or trickles.
//! - [`strict`]: the vendors' request contracts (one module per dialect) the mocks enforce.
//! - [`raw_vendor`]: what raw-socket vendors share (reading a request).
//! - [`config`]: `ConfigBody`, the TOML of common setups (vendors, models, a team, a key).
//! - [`gateway`]: `Gateway`, the real `switchyard serve` binary as a child process.
//! - [`redis`]: `RedisServer`, a real `redis-server` on a free port, stopped and restarted on demand.
//! - [`redis_topology`]: `RedisCluster` (three masters) and `RedisSentinel` (master, replica,
//!   sentinel) made of such servers.
//! - [`tls`]: `TestCa`, a throw-away CA and `localhost` leaf certificates.
#![allow(dead_code, unused_imports)]

pub mod config;
pub mod gateway;
pub mod jwks;
pub mod mock_anthropic;
pub mod mock_bedrock;
pub mod mock_bedrock_converse;
pub mod mock_gemini;
pub mod mock_upstream;
pub mod mock_vertex;
pub mod paced;
pub mod raw_vendor;
pub mod redis;
pub mod redis_topology;
pub mod strict;
pub mod tls;

pub use config::ConfigBody;
pub use gateway::{
    run_switchyard, sha256_hex, switchyard_bin, Gateway, GatewayBuilder, ANY_PORT, DEMO_SECRET,
    DEMO_SHA256,
};
pub use mock_anthropic::{
    anthropic_error_body, AnthBehaviour, AnthRecorded, AnthUsage, MockAnthropic,
    ANTHROPIC_OVERLOADED_EVENT, ANTHROPIC_REPLY,
};
pub use mock_bedrock::{AwsKey, BedrockBehaviour, BedrockRecorded, MockBedrock, BEDROCK_REPLY};
pub use mock_gemini::{gemini_retry_info_body, GeminiBehaviour, MockGemini, GEMINI_SIGNATURE};
pub use mock_upstream::{closed_port_addr, openai_error_body, Behaviour, MockUpstream, Recorded};
pub use mock_vertex::{MockVertex, VertexRecorded, VERTEX_PROJECT};
pub use redis::RedisServer;
pub use tls::{LeafCert, TestCa};

use serde_json::{json, Value};

/// The Python interpreter that runs `tests/python/*.py`: `$SWITCHYARD_PYTHON` when set (`.ci/run`
/// sets it to the interpreter of the virtual environment it makes, `.venv/bin/python`), else
/// `python3` from `PATH`.
pub fn python() -> String {
    std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A config file of the repository (`config/switchyard.toml`, `deploy/container.toml`) made
/// runnable by [`Gateway::start_raw`]: its `listen` and `admin_listen` on the harness's free
/// loopback ports, its state `dir` and usage log in the gateway's temp directory; every other
/// line as shipped.
pub fn shipped_config(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(path)).expect("a shipped config");
    text.lines()
        .map(|line| match line.split('=').next().unwrap_or("").trim() {
            "listen" => "listen = \"{API}\"".to_string(),
            "admin_listen" => "admin_listen = \"{ADMIN}\"".to_string(),
            "dir" => "dir = \"{DIR}/data\"".to_string(),
            "usage" => "usage = \"{DIR}/usage.jsonl\"".to_string(),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A reqwest client: no proxy, HTTP/1 only, no timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .build()
        .expect("reqwest client")
}

/// `{"model": model, "messages": [{"role":"user","content": content}], "stream": stream}`.
pub fn chat_body(model: &str, content: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": stream
    })
}

/// The `data:` payloads of an SSE body, one per event, in order (multi-line data joined
/// with `\n`; comments and other fields ignored). `[DONE]` is returned as `"[DONE]"`.
pub fn parse_sse(body: &str) -> Vec<String> {
    let mut events = Vec::new();
    let normalized = body.replace("\r\n", "\n");
    for block in normalized.split("\n\n") {
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix("data:") {
                data.push(rest.strip_prefix(' ').unwrap_or(rest));
            }
        }
        if !data.is_empty() {
            events.push(data.join("\n"));
        }
    }
    events
}

/// The (event name, data) pairs of an SSE body; the name is empty for unnamed events.
pub fn named_events(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let mut name = String::new();
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if !data.is_empty() {
            out.push((name, data.join("\n")));
        }
    }
    out
}

/// The JSON events of an SSE body (everything but `[DONE]`), parsed.
pub fn parse_sse_json(body: &str) -> Vec<Value> {
    parse_sse(body)
        .into_iter()
        .filter(|d| d != "[DONE]")
        .map(|d| {
            serde_json::from_str(&d).unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {d}"))
        })
        .collect()
}

/// The concatenated `choices[0].delta.content` of parsed stream chunks.
pub fn stream_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/content")
                .and_then(|c| c.as_str())
        })
        .collect()
}

/// Sum of the Prometheus samples named `name` whose labels include every `(key, value)`
/// of `labels` (None if there is no such sample). Reads the text exposition format.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (series_name, label_text) = match series.find('{') {
            Some(i) => (&series[..i], &series[i + 1..series.len().saturating_sub(1)]),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let parsed = parse_labels(label_text);
        let all = labels
            .iter()
            .all(|(k, v)| parsed.iter().any(|(pk, pv)| pk == k && pv == v));
        if !all {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',') | Some(' ')) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            break;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(o) => val.push(o),
                    None => break,
                },
                '"' => break,
                o => val.push(o),
            }
        }
        out.push((key.trim().to_string(), val));
    }
    out
}
