//! `MockBedrock`: a loopback server that behaves as Amazon Bedrock Runtime does, checking
//! what the service checks with code of its own (not the crates the gateway signs and
//! decodes with):
//!
//! - **SigV4** recomputed here with `hmac` + `sha2` over the canonical request ("Create a
//!   signed AWS API request", AWS General Reference): the credential scope (date, the mock's
//!   region, service `bedrock`), `x-amz-date` within 15 minutes, `host` and `x-amz-date`
//!   signed, the canonical URI as the path sent, each segment encoded once more (all services
//!   but S3), the body's SHA-256; the access key must be one the mock issued and not expired
//!   (else 403 `ExpiredTokenException`), its session token in `x-amz-security-token` (signed).
//!   Or, with [`MockBedrock::start_api_key`], `Authorization: Bearer <key>` (Bedrock API keys).
//! - **The path**: `/model/{modelId}/{invoke|invoke-with-response-stream|converse|converse-stream}`,
//!   the id one percent-encoded segment that decodes to a model the mock serves (else 404
//!   `ResourceNotFoundException`).
//! - **Claude's invoke body** ("Anthropic Claude Messages API — Request and Response", Bedrock
//!   User Guide): `anthropic_version` `bedrock-2023-05-31`; no `model`, no `stream`;
//!   `anthropic_beta` only the betas Bedrock lists ("invalid beta flag"); the fields of betas
//!   it does not take refused ("Extra inputs are not permitted"): `context_management`,
//!   `output_config.effort`, a tool's `defer_loading` / `input_examples` unless their beta is
//!   on, any `cache_control.scope`; then every Messages rule of
//!   [`super::strict::anthropic`].
//!
//! Answers: InvokeModel, Anthropic's message; InvokeModelWithResponseStream, Anthropic's
//! events each in a `chunk` frame (`{"bytes":"<base64>","p":…}`) of an AWS event stream
//! whose frames (CRCs by `crc32fast`, encoded here) are sent in pieces of
//! [`BedrockBehaviour::piece`] bytes (1 by default: every frame cut at every byte), the last
//! event with Bedrock's `amazon-bedrock-invocationMetrics`. Converse requests go to
//! [`super::mock_bedrock_converse`].
//!
//! Failures ([`BedrockBehaviour`]): an HTTP error with `x-amzn-ErrorType` and `{"message"}`
//! (each exception type, optionally with `retry-after`, optionally only N times), an
//! exception frame after K text deltas, a frame with a bad CRC, the connection dropped inside
//! a frame.
//!
//! Credentials by the container endpoint: `GET /ecs-credentials` mints a new key valid for
//! [`MockBedrock::set_key_lifetime`] (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), and only keys
//! not yet expired are taken.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::mock_anthropic::block_events;
use super::strict;
use super::AnthUsage;

/// The text of every answer.
pub const BEDROCK_REPLY: &str = "Hello from the mock Bedrock.";

/// The betas Bedrock lists for Claude's `anthropic_beta` (its User Guide, "anthropic_beta").
pub const BEDROCK_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
];

/// One AWS access key the mock takes.
#[derive(Clone, Debug)]
pub struct AwsKey {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
    /// When it stops being taken (`None`: never).
    pub until: Option<SystemTime>,
}

/// How the mock fails (the default answers normally).
#[derive(Clone, Debug, Default)]
pub struct BedrockBehaviour {
    /// Answer (status, exception type, message) instead of the model's answer.
    pub error: Option<(u16, String, String)>,
    /// Only the next N requests get `error` (None: every one).
    pub error_times: Option<usize>,
    /// A `retry-after` header (seconds) on the error answer.
    pub retry_after: Option<u64>,
    /// Streams: after K text deltas, an exception frame of this type, then the end.
    pub exception_after: Option<(usize, String)>,
    /// Streams: after K text deltas, a frame whose CRC is wrong.
    pub corrupt_after: Option<usize>,
    /// Streams: after K text deltas, half a frame, then the connection dropped.
    pub drop_after: Option<usize>,
    /// Streams: bytes per piece sent (default 1).
    pub piece: Option<usize>,
    /// The answer's content blocks (default: one text block of [`BEDROCK_REPLY`]).
    pub content: Option<Value>,
}

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct BedrockRecorded {
    /// The raw path, as sent.
    pub path: String,
    /// The model id, decoded from the path.
    pub model: String,
    /// `invoke`, `invoke-with-response-stream`, `converse` or `converse-stream`.
    pub action: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
}

impl BedrockRecorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
}

struct Shared {
    region: String,
    keys: Vec<AwsKey>,
    api_key: Option<String>,
    models: Vec<String>,
    usage: AnthUsage,
    behaviour: BedrockBehaviour,
    requests: Vec<BedrockRecorded>,
    key_lifetime: Duration,
    minted: usize,
}

pub struct MockBedrock {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockBedrock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The error answer of an exception: (status, type, message).
type Failure = (u16, String, String);

impl MockBedrock {
    /// Starts the mock for `region`, serving `models`, taking the SigV4 key `key`.
    pub async fn start(region: &str, models: &[&str], key: Option<AwsKey>) -> MockBedrock {
        Self::start_with(region, models, key, None).await
    }

    /// Starts the mock taking only `Authorization: Bearer <api_key>` (a Bedrock API key).
    pub async fn start_api_key(region: &str, models: &[&str], api_key: &str) -> MockBedrock {
        Self::start_with(region, models, None, Some(api_key.to_string())).await
    }

    async fn start_with(
        region: &str,
        models: &[&str],
        key: Option<AwsKey>,
        api_key: Option<String>,
    ) -> MockBedrock {
        let shared = Arc::new(Mutex::new(Shared {
            region: region.to_string(),
            keys: key.into_iter().collect(),
            api_key,
            models: models.iter().map(|m| m.to_string()).collect(),
            usage: AnthUsage {
                input: 20,
                cache_read: 0,
                cache_write: 0,
                output: 7,
            },
            behaviour: BedrockBehaviour::default(),
            requests: Vec::new(),
            key_lifetime: Duration::from_secs(3600),
            minted: 0,
        }));
        let app = Router::new()
            .route("/ecs-credentials", axum::routing::get(ecs_credentials))
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockBedrock { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`: the `base_url` of a `bedrock` provider.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The container credential endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`).
    pub fn credentials_url(&self) -> String {
        format!("http://{}/ecs-credentials", self.addr)
    }

    /// How long each key the container endpoint mints is taken.
    pub fn set_key_lifetime(&self, lifetime: Duration) {
        self.shared.lock().unwrap().key_lifetime = lifetime;
    }

    /// How many keys the container endpoint minted.
    pub fn keys_minted(&self) -> usize {
        self.shared.lock().unwrap().minted
    }

    pub fn set_behaviour(&self, behaviour: BedrockBehaviour) {
        self.shared.lock().unwrap().behaviour = behaviour;
    }

    pub fn set_usage(&self, usage: AnthUsage) {
        self.shared.lock().unwrap().usage = usage;
    }

    pub fn requests(&self) -> Vec<BedrockRecorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn count(&self) -> usize {
        self.shared.lock().unwrap().requests.len()
    }

    pub fn last(&self) -> BedrockRecorded {
        let s = self.shared.lock().unwrap();
        s.requests
            .last()
            .cloned()
            .expect("a request reached the mock")
    }
}

/// Bedrock's error answer: the status, `x-amzn-ErrorType` and `{"message"}`.
fn error_response(status: u16, kind: &str, message: &str, retry_after: Option<u64>) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", "application/json")
        .header(
            "x-amzn-errortype",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
        .header("x-amzn-requestid", "mock-request-1");
    if let Some(s) = retry_after {
        b = b.header("retry-after", s.to_string());
    }
    b.body(Body::from(json!({ "message": message }).to_string()))
        .unwrap()
}

async fn ecs_credentials(State(shared): State<Arc<Mutex<Shared>>>) -> Response {
    let mut s = shared.lock().unwrap();
    s.minted += 1;
    let n = s.minted;
    let until = SystemTime::now() + s.key_lifetime;
    let key = AwsKey {
        id: format!("ASIAMOCKKEY{n:05}"),
        secret: format!("mock-secret-{n}-{}", n * 7919),
        token: Some(format!("mock-session-token-{n}")),
        until: Some(until),
    };
    s.keys.push(key.clone());
    let secs = until
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expiration = jiff::Timestamp::from_second(secs).unwrap().to_string();
    let body = json!({
        "AccessKeyId": key.id,
        "SecretAccessKey": key.secret,
        "Token": key.token,
        "Expiration": expiration,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (model, action) = match route(&path) {
        Some(r) => r,
        None => return error_response(404, "UnknownOperationException", "unknown operation", None),
    };
    let mut rec = BedrockRecorded {
        path: path.clone(),
        model: model.clone(),
        action: action.clone(),
        headers: headers.clone(),
        body: body.clone(),
        status: 200,
    };
    let (checked, behaviour, usage) = {
        let mut s = shared.lock().unwrap();
        let checked = authenticate(&s, &method, &uri, &headers, &body).and_then(|()| {
            if s.models.contains(&model) {
                Ok(())
            } else {
                Err((
                    404,
                    "ResourceNotFoundException".to_string(),
                    "Could not resolve the foundation model from the provided model identifier."
                        .to_string(),
                ))
            }
        });
        let mut behaviour = s.behaviour.clone();
        if checked.is_ok() && behaviour.error.is_some() {
            match s.behaviour.error_times.as_mut() {
                Some(0) => behaviour.error = None,
                Some(n) => *n -= 1,
                None => {}
            }
        }
        (checked, behaviour, s.usage)
    };
    let record = |rec: BedrockRecorded| shared.lock().unwrap().requests.push(rec);
    if let Err((status, kind, message)) = checked {
        rec.status = status;
        record(rec);
        return error_response(status, &kind, &message, None);
    }
    if let Some((status, kind, message)) = &behaviour.error {
        rec.status = *status;
        record(rec);
        return error_response(*status, kind, message, behaviour.retry_after);
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            rec.status = 400;
            record(rec);
            return error_response(
                400,
                "ValidationException",
                &format!("Malformed input request: {e}"),
                None,
            );
        }
    };
    let answer = match action.as_str() {
        "invoke" | "invoke-with-response-stream" => {
            invoke(&v, &model, action.ends_with("stream"), &behaviour, usage)
        }
        "converse" => super::mock_bedrock_converse::converse(&v, &model)
            .map(|a| json_response(&a))
            .map_err(converse_error),
        _ => super::mock_bedrock_converse::converse_stream(&v, &model)
            .map(|events| {
                let frames = super::mock_bedrock_converse::frames(&events, &behaviour);
                stream_response(frames, &behaviour)
            })
            .map_err(converse_error),
    };
    match answer {
        Ok(r) => {
            record(rec);
            r
        }
        Err((status, kind, message)) => {
            rec.status = status;
            record(rec);
            error_response(status, &kind, &message, None)
        }
    }
}

fn converse_error((status, body): (u16, Value)) -> Failure {
    let kind = if status == 400 {
        "ValidationException"
    } else {
        "InternalServerException"
    };
    let message = body["message"].as_str().unwrap_or("").to_string();
    (status, kind.to_string(), message)
}

/// The model id (decoded) and the action of a `/model/{id}/{action}` path.
fn route(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/model/")?;
    let (id, action) = rest.split_once('/')?;
    if action.contains('/')
        || !matches!(
            action,
            "invoke" | "invoke-with-response-stream" | "converse" | "converse-stream"
        )
    {
        return None;
    }
    let decoded = percent_decode(id)?;
    Some((decoded, action.to_string()))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 3986 encoding of everything but unreserved characters (SigV4's `UriEncode`).
fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn denied(kind: &str, message: &str) -> Failure {
    (403, kind.to_string(), message.to_string())
}

/// Checks the request's authentication as Bedrock does: a Bedrock API key, or SigV4.
fn authenticate(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Failure> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let auth = get("authorization").unwrap_or("");
    if let Some(api_key) = &s.api_key {
        return match auth.strip_prefix("Bearer ") {
            Some(k) if k == api_key => Ok(()),
            _ => Err(denied("AccessDeniedException", "Invalid API Key format")),
        };
    }
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    })?;
    let field = |name: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(name))
            .unwrap_or("")
    };
    let credential = field("Credential=");
    let signed = field("SignedHeaders=");
    let signature = field("Signature=");
    let scope: Vec<&str> = credential.split('/').collect();
    let bad_sig = || {
        denied(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    };
    if scope.len() != 5 || scope[3] != "bedrock" || scope[4] != "aws4_request" {
        return Err(bad_sig());
    }
    if scope[2] != s.region {
        return Err(bad_sig());
    }
    let amz_date = get("x-amz-date").ok_or_else(bad_sig)?;
    if amz_date.len() != 16 || &amz_date[..8] != scope[1] {
        return Err(bad_sig());
    }
    let when = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", amz_date)
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_second())
        .ok_or_else(bad_sig)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - when).abs() > 15 * 60 {
        return Err(denied("InvalidSignatureException", "Signature expired"));
    }
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(bad_sig());
    }
    let key = s.keys.iter().find(|k| k.id == scope[0]).ok_or_else(|| {
        denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    })?;
    match (&key.token, get("x-amz-security-token")) {
        (Some(t), Some(sent)) if t == sent && names.contains(&"x-amz-security-token") => {}
        (None, None) => {}
        _ => {
            return Err(denied(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ))
        }
    }
    if key.until.is_some_and(|u| SystemTime::now() >= u) {
        return Err(denied(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    let canonical_uri = uri
        .path()
        .split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/");
    let mut query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|q| !q.is_empty())
        .map(|q| {
            let (k, v) = q.split_once('=').unwrap_or((q, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for n in &names {
        let values: Vec<String> = headers
            .get_all(*n)
            .iter()
            .map(|v| {
                v.to_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(bad_sig());
        }
        canonical_headers.push_str(&format!("{n}:{}\n", values.join(",")));
    }
    let creq = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/bedrock/aws4_request\n{}",
        scope[1],
        scope[2],
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let k = hmac(
        format!("AWS4{}", key.secret).as_bytes(),
        scope[1].as_bytes(),
    );
    let k = hmac(&k, scope[2].as_bytes());
    let k = hmac(&k, b"bedrock");
    let k = hmac(&k, b"aws4_request");
    if hex::encode(hmac(&k, sts.as_bytes())) != signature {
        return Err(bad_sig());
    }
    Ok(())
}

fn validation(message: impl Into<String>) -> Failure {
    (400, "ValidationException".to_string(), message.into())
}

/// Checks an invoke body for Claude as Bedrock does; `Ok` is the body as Anthropic's API
/// would take it (for the Messages rules).
pub fn check_invoke(v: &Value, model: &str) -> Result<Value, Failure> {
    let obj = v
        .as_object()
        .ok_or_else(|| validation("Malformed input request: expected an object"))?;
    if v["anthropic_version"] != "bedrock-2023-05-31" {
        return Err(validation(
            "Malformed input request: anthropic_version: must be bedrock-2023-05-31",
        ));
    }
    for k in ["model", "stream"] {
        if obj.contains_key(k) {
            return Err(validation(format!(
                "Malformed input request: #: extraneous key [{k}] is not permitted, please reformat your input and try again."
            )));
        }
    }
    let mut betas: Vec<&str> = Vec::new();
    if let Some(list) = obj.get("anthropic_beta") {
        for b in list
            .as_array()
            .ok_or_else(|| validation("anthropic_beta: must be a list"))?
        {
            let b = b.as_str().unwrap_or("");
            if !BEDROCK_BETAS.contains(&b) {
                return Err(validation("invalid beta flag"));
            }
            betas.push(b);
        }
    }
    let on = |b: &str| betas.contains(&b);
    if obj.contains_key("context_management") && !on("context-management-2025-06-27") {
        return Err(validation(
            "context_management: Extra inputs are not permitted",
        ));
    }
    if v.pointer("/output_config/effort").is_some() && !on("effort-2025-11-24") {
        return Err(validation(
            "output_config.effort: Extra inputs are not permitted",
        ));
    }
    for (i, tool) in v["tools"].as_array().into_iter().flatten().enumerate() {
        for (field, beta) in [
            ("defer_loading", "tool-search-tool-2025-10-19"),
            ("input_examples", "tool-examples-2025-10-29"),
        ] {
            if tool.get(field).is_some() && !on(beta) {
                return Err(validation(format!(
                    "tools.{i}.custom.{field}: Extra inputs are not permitted"
                )));
            }
        }
    }
    if has_scope(v) {
        return Err(validation(
            "cache_control.scope: Extra inputs are not permitted",
        ));
    }
    let mut anthropic = v.clone();
    let o = anthropic.as_object_mut().unwrap();
    o.remove("anthropic_version");
    o.remove("anthropic_beta");
    o.insert("model".into(), json!(model));
    strict::anthropic::check(&anthropic).map_err(|r| validation(r.message.clone()))?;
    Ok(anthropic)
}

fn has_scope(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            o.get("cache_control")
                .is_some_and(|c| c.get("scope").is_some())
                || o.values().any(has_scope)
        }
        Value::Array(a) => a.iter().any(has_scope),
        _ => false,
    }
}

fn json_response(v: &Value) -> Response {
    Response::builder()
        .header("content-type", "application/json")
        .header("x-amzn-requestid", "mock-request-1")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// InvokeModel / InvokeModelWithResponseStream for Claude.
fn invoke(
    v: &Value,
    model: &str,
    stream: bool,
    behaviour: &BedrockBehaviour,
    usage: AnthUsage,
) -> Result<Response, Failure> {
    check_invoke(v, model)?;
    let content = behaviour
        .content
        .clone()
        .unwrap_or_else(|| json!([{"type":"text","text":BEDROCK_REPLY}]));
    let blocks = content.as_array().cloned().unwrap_or_default();
    let stop_reason = if blocks.iter().any(|b| b["type"] == "tool_use") {
        "tool_use"
    } else {
        "end_turn"
    };
    let u = json!({"input_tokens":usage.input,"cache_creation_input_tokens":usage.cache_write,
                   "cache_read_input_tokens":usage.cache_read,"output_tokens":usage.output});
    if !stream {
        let answer = json!({"id":"msg_bdrk_1","type":"message","role":"assistant","model":model,
            "content":content,"stop_reason":stop_reason,"stop_sequence":null,"usage":u});
        return Ok(json_response(&answer));
    }
    let mut start_usage = u.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        json!({"type":"message_start","message":{"id":"msg_bdrk_1","type":"message",
            "role":"assistant","model":model,"content":[],"stop_reason":null,
            "stop_sequence":null,"usage":start_usage}}),
    ];
    for (i, b) in blocks.iter().enumerate() {
        for e in block_events(i, b) {
            let data = e
                .split_once("data: ")
                .map(|(_, d)| d.trim())
                .unwrap_or("{}");
            events.push(serde_json::from_str(data).unwrap());
        }
    }
    events.push(
        json!({"type":"message_delta","delta":{"stop_reason":stop_reason,
        "stop_sequence":null},"usage":{"output_tokens":usage.output}}),
    );
    events.push(
        json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{
        "inputTokenCount":usage.input,"outputTokenCount":usage.output,
        "invocationLatency":120,"firstByteLatency":40}}),
    );
    let mut frames = Vec::new();
    let mut deltas = 0;
    for e in &events {
        if let Some((k, kind)) = &behaviour.exception_after {
            if deltas == *k {
                frames.push(encode_frame(
                    &[
                        (":exception-type", kind.as_str()),
                        (":content-type", "application/json"),
                        (":message-type", "exception"),
                    ],
                    json!({"message": format!("mock {kind}")})
                        .to_string()
                        .as_bytes(),
                ));
                break;
            }
        }
        if behaviour.corrupt_after == Some(deltas) {
            let mut f = chunk_frame(e);
            let at = f.len() - 6;
            f[at] ^= 0x20;
            frames.push(f);
            break;
        }
        if behaviour.drop_after == Some(deltas) {
            let f = chunk_frame(e);
            frames.push(f[..f.len() / 2].to_vec());
            frames.push(Vec::new()); // the marker: drop the connection here
            break;
        }
        frames.push(chunk_frame(e));
        if e["delta"]["type"] == "text_delta" {
            deltas += 1;
        }
    }
    Ok(stream_response(frames, behaviour))
}

/// An invoke `chunk` frame of one model event.
fn chunk_frame(event: &Value) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    encode_frame(
        &[
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        json!({"bytes": b64, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345"})
            .to_string()
            .as_bytes(),
    )
}

/// One AWS event-stream frame ("Event stream encoding", AWS General Reference): total length,
/// headers length, prelude CRC, headers (string values, type 7), payload, message CRC.
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The event-stream answer: the frames' bytes in pieces of `behaviour.piece` bytes; an empty
/// frame marks where the connection is dropped.
fn stream_response(frames: Vec<Vec<u8>>, behaviour: &BedrockBehaviour) -> Response {
    let piece = behaviour.piece.unwrap_or(1).max(1);
    let dropped = frames.last().is_some_and(|f| f.is_empty());
    let bytes: Vec<u8> = frames.concat();
    let mut pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if dropped {
        pieces.push(Err(std::io::Error::other("connection dropped")));
    }
    Response::builder()
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amzn-bedrock-content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mock's SigV4 agrees with AWS's published example ("Signature Version 4 test
    /// suite", `post-vanilla`; secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`): its
    /// signing key and signature over the suite's canonical request.
    #[test]
    fn signing_key_matches_aws_example() {
        // AWS General Reference, "Examples of how to derive a signing key for Signature
        // Version 4": secret, 20120215, us-east-1, iam.
        let k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        let k = hmac(&k, b"us-east-1");
        let k = hmac(&k, b"iam");
        let k = hmac(&k, b"aws4_request");
        assert_eq!(
            hex::encode(k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
