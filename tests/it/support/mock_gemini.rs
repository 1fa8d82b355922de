//! `MockGemini`: a loopback server that behaves as Gemini's `generateContent` does for what the
//! gateway sends it, strict about the rules Google's docs state, recording every request.
//!
//! Enforced: `x-goog-api-key` must be the configured key (else 403 `PERMISSION_DENIED`); every
//! other rule of Gemini's contract is [`super::strict::gemini`]'s (its module doc lists them
//! with their sources), answered in Google's error shape `{"error":{"code","message","status"}}`.
//!
//! `batchEmbedContents` requests must name `models/{model}` and carry text; their vectors are
//! `[i + 0.5, -1]`.
//!
//! Answers: while the last turn is the user's text, a `functionCall` of `wx` with a
//! `thoughtSignature` (the model wants the weather); once a `functionResponse` came back, a text.
//!
//! Streams: server-sent events with `?alt=sse`, else Google's JSON array (`[{…}\r\n]`).
//! `countTokens` answers `{"totalTokens"}` (the words of the texts), `embedContent` one vector
//! `[0.5, -1]`. Every request's action, query, head and body are recorded.
//!
//! Set with [`MockGemini::set_behaviour`] ([`GeminiBehaviour`]): fixed answer bytes
//! (`raw`), a filtered answer (text parts,
//! one stream event each, then a candidate with `finishReason` SAFETY or another reason), a
//! prompt blocked by `promptFeedback.blockReason`, a 429 `RESOURCE_EXHAUSTED` whose wait is
//! only in its body (`google.rpc.RetryInfo` `retryDelay`, no `retry-after` header, as Gemini
//! answers), and a stall before the head.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::paced::stall;
use super::strict;

/// The signature the mock gives its function calls.
pub const GEMINI_SIGNATURE: &str = "U0lHLTAwMQ==";

/// How the mock answers instead (every field optional; the default answers normally).
#[derive(Clone, Debug, Default)]
pub struct GeminiBehaviour {
    /// Sleep before sending the head.
    pub stall_headers_ms: Option<u64>,
    /// The candidate's `finishReason` (SAFETY, RECITATION, …) after `text_before`.
    pub finish_reason: Option<String>,
    /// Text parts before the finish (a stream: one event each); none: no content at all.
    pub text_before: Vec<String>,
    /// Answer `promptFeedback.blockReason` with this reason and no candidate.
    pub block_reason: Option<String>,
    /// Answer 429 `RESOURCE_EXHAUSTED` with a `RetryInfo` of this `retryDelay` ("45.5s").
    pub retry_delay: Option<String>,
    /// Answer a request that passed the checks with Google's error of this HTTP status,
    /// `status` and message (`(400, "INVALID_ARGUMENT", "The input token count …")`).
    pub error: Option<(u16, String, String)>,
    /// Answer a request that passed the checks with these bytes as they are (a whole answer,
    /// or a stream's whole body in the framing asked), with this content type.
    pub raw: Option<(String, String)>,
}

/// Gemini's 429 with its wait in a `RetryInfo` detail (the shape of Google's answers).
pub fn gemini_retry_info_body(retry_delay: &str) -> String {
    json!({"error":{"code":429,
        "message":format!("You exceeded your current quota. Please retry in {retry_delay}."),
        "status":"RESOURCE_EXHAUSTED",
        "details":[
            {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{
                "quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":retry_delay}]}})
    .to_string()
}

struct Shared {
    key: String,
    behaviour: GeminiBehaviour,
    requests: Vec<(String, Bytes)>,
    /// The request heads, in the order of `requests`.
    heads: Vec<HeaderMap>,
    /// The request queries, in the order of `requests`.
    queries: Vec<Option<String>>,
}

pub struct MockGemini {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockGemini {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockGemini {
    pub async fn start(key: &str) -> MockGemini {
        let shared = Arc::new(Mutex::new(Shared {
            key: key.to_string(),
            behaviour: GeminiBehaviour::default(),
            requests: Vec::new(),
            heads: Vec::new(),
            queries: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1beta/models/{action}", post(generate))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockGemini { addr, shared, task }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers this way from now on.
    pub fn set_behaviour(&self, behaviour: GeminiBehaviour) {
        self.shared.lock().unwrap().behaviour = behaviour;
    }

    /// The request headers received, in order.
    pub fn heads(&self) -> Vec<HeaderMap> {
        self.shared.lock().unwrap().heads.clone()
    }

    /// The requests received, as (action, query, raw body), in order.
    pub fn received(&self) -> Vec<(String, Option<String>, Bytes)> {
        let s = self.shared.lock().unwrap();
        s.requests
            .iter()
            .zip(&s.queries)
            .map(|((a, b), q)| (a.clone(), q.clone(), b.clone()))
            .collect()
    }

    /// How many requests reached the mock.
    pub fn request_count(&self) -> usize {
        self.shared.lock().unwrap().requests.len()
    }

    /// The last body received, as JSON.
    pub fn last_body(&self) -> Option<Value> {
        let s = self.shared.lock().unwrap();
        s.requests
            .last()
            .and_then(|(_, b)| serde_json::from_slice(b).ok())
    }

    /// The bodies received, as JSON, in order.
    pub fn bodies(&self) -> Vec<Value> {
        let s = self.shared.lock().unwrap();
        s.requests
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }
}

fn error(code: u16, status: &str, message: &str) -> Response {
    let body = json!({"error":{"code":code,"message":message,"status":status}});
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// `batchEmbedContents`: every request names `models/{the path's model}` and has text; the
/// answer's vectors are `[i + 0.5, -1]` for the i-th request.
fn embed(action: &str, v: &Value) -> Response {
    let model = format!("models/{}", action.trim_end_matches(":batchEmbedContents"));
    let Some(requests) = v["requests"].as_array().filter(|r| !r.is_empty()) else {
        return error(400, "INVALID_ARGUMENT", "requests must not be empty");
    };
    for (i, r) in requests.iter().enumerate() {
        if r["model"] != model.as_str() {
            return error(
                400,
                "INVALID_ARGUMENT",
                &format!("requests[{i}].model must be {model}"),
            );
        }
        if r["content"]["parts"][0]["text"]
            .as_str()
            .is_none_or(|t| t.is_empty())
        {
            return error(
                400,
                "INVALID_ARGUMENT",
                &format!("requests[{i}].content is empty"),
            );
        }
    }
    let embeddings: Vec<Value> = (0..requests.len())
        .map(|i| json!({"values": [i as f64 + 0.5, -1.0]}))
        .collect();
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(json!({"embeddings": embeddings}).to_string()))
        .unwrap()
}

/// `countTokens`: the words of every text in the body.
fn count_tokens(v: &Value) -> Response {
    fn words(v: &Value) -> u64 {
        match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("text", Value::String(s)) => s.split_whitespace().count() as u64,
                    _ => words(v),
                })
                .sum(),
            Value::Array(a) => a.iter().map(words).sum(),
            _ => 0,
        }
    }
    if v.get("contents").is_none() && v.get("generateContentRequest").is_none() {
        return error(
            400,
            "INVALID_ARGUMENT",
            "contents or generateContentRequest is required",
        );
    }
    let n = words(v);
    let body = json!({"totalTokens": n,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]});
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// `embedContent`: one content with text → one vector `[0.5, -1]`.
fn embed_one(v: &Value) -> Response {
    if v["content"]["parts"][0]["text"]
        .as_str()
        .is_none_or(|t| t.is_empty())
    {
        return error(400, "INVALID_ARGUMENT", "content is empty");
    }
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"embedding": {"values": [0.5, -1.0]}}).to_string(),
        ))
        .unwrap()
}

/// A stream's body in the framing asked: server-sent events, or Google's JSON array.
fn framed(sse: bool, answers: &[Value]) -> (&'static str, String) {
    if sse {
        let events: Vec<String> = answers
            .iter()
            .map(|a| format!("data: {a}\r\n\r\n"))
            .collect();
        return ("text/event-stream", events.concat());
    }
    let elements: Vec<String> = answers.iter().map(Value::to_string).collect();
    (
        "application/json",
        format!("[{}\r\n]", elements.join("\r\n,")),
    )
}

async fn generate(
    State(shared): State<Arc<Mutex<Shared>>>,
    axum::extract::Path(action): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sse = query.as_deref() == Some("alt=sse");
    let (key_ok, behaviour) = {
        let mut s = shared.lock().unwrap();
        s.requests.push((action.clone(), body.clone()));
        s.heads.push(headers.clone());
        s.queries.push(query.clone());
        let key = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
        (key == Some(s.key.as_str()), s.behaviour.clone())
    };
    stall(behaviour.stall_headers_ms).await;
    if !key_ok {
        return error(403, "PERMISSION_DENIED", "API key not valid");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    if action.ends_with(":batchEmbedContents") {
        return embed(&action, &v);
    }
    if action.ends_with(":embedContent") {
        return embed_one(&v);
    }
    if action.ends_with(":countTokens") {
        return count_tokens(&v);
    }
    if let Err(r) = strict::gemini::check(&v) {
        return error(r.status, r.kind, &r.message);
    }
    let stream = action.ends_with(":streamGenerateContent");
    if let Some((code, status, message)) = &behaviour.error {
        return error(*code, status, message);
    }
    if let Some(delay) = &behaviour.retry_delay {
        return Response::builder()
            .status(429)
            .header("content-type", "application/json")
            .body(Body::from(gemini_retry_info_body(delay)))
            .unwrap();
    }
    if let Some((content_type, raw)) = &behaviour.raw {
        return Response::builder()
            .status(200)
            .header("content-type", content_type.as_str())
            .body(Body::from(raw.clone()))
            .unwrap();
    }
    if behaviour.finish_reason.is_some() || behaviour.block_reason.is_some() {
        return filtered(&behaviour, stream, sse);
    }
    let answered = v["contents"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["parts"].as_array())
        .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()));
    let part = if answered {
        json!({"text":"It is cold in Oslo."})
    } else {
        json!({"functionCall":{"name":"wx","args":{"city":"Oslo"}},"thoughtSignature":GEMINI_SIGNATURE})
    };
    let answer = json!({"candidates":[{"content":{"role":"model","parts":[part]},"finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15},
        "modelVersion":"gemini-3-pro","responseId":"resp-1"});
    let (content_type, text) = if stream {
        framed(sse, &[answer])
    } else {
        ("application/json", answer.to_string())
    };
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(Body::from(text))
        .unwrap()
}

/// A filtered answer: the text parts (a stream: one event each), then the candidate stopped
/// with `finishReason`, or a prompt blocked by `promptFeedback.blockReason`.
fn filtered(b: &GeminiBehaviour, stream: bool, sse: bool) -> Response {
    let usage = json!({"promptTokenCount":10,"candidatesTokenCount":b.text_before.len(),
        "totalTokenCount":10 + b.text_before.len()});
    let text_event = |t: &str| {
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":t}]},"index":0}],
            "modelVersion":"gemini-3-pro","responseId":"resp-f"})
    };
    let last = match &b.block_reason {
        Some(reason) => json!({"promptFeedback":{"blockReason":reason},"usageMetadata":usage,
            "modelVersion":"gemini-3-pro","responseId":"resp-f"}),
        None => {
            let mut candidate = json!({"finishReason":b.finish_reason,"index":0,
                "safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT",
                                  "probability":"HIGH","blocked":true}]});
            if !stream && !b.text_before.is_empty() {
                let parts: Vec<Value> = b.text_before.iter().map(|t| json!({"text":t})).collect();
                candidate["content"] = json!({"role":"model","parts":parts});
            }
            json!({"candidates":[candidate],"usageMetadata":usage,
                "modelVersion":"gemini-3-pro","responseId":"resp-f"})
        }
    };
    let (content_type, text) = if stream {
        let mut answers: Vec<Value> = b.text_before.iter().map(|t| text_event(t)).collect();
        answers.push(last);
        framed(sse, &answers)
    } else {
        ("application/json", last.to_string())
    };
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(Body::from(text))
        .unwrap()
}
