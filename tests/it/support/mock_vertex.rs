//! `MockVertex`: a loopback Vertex AI for one project and location, with its own OAuth2
//! token endpoint, strict about what the real services check.
//!
//! The token endpoint (`POST /token`, the test service account's `token_uri`) takes
//! Google's JWT-bearer grant (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
//! `assertion=<JWT>`: Google Identity, "Using OAuth 2.0 for Server to Server Applications")
//! and verifies the assertion with code of its own (the `rsa` crate, not the `ring` that
//! signed it): an RS256 signature by the service account's key, `iss` = the account's email,
//! `aud` = the token URI, a `scope` with `cloud-platform`, `iat` not in the future and `exp`
//! after now and at most an hour after `iat`. It hands out `ya29.mock-N` tokens that expire
//! after [`MockVertex::set_token_lifetime`] seconds (short, to make the gateway refresh).
//!
//! The model endpoints (`POST /v1/projects/{project}/locations/{location}/publishers/
//! {publisher}/models/{model}:{method}`) take only a current token (`Authorization: Bearer`;
//! else 401 `UNAUTHENTICATED`), the project (else 403 `PERMISSION_DENIED`) and location
//! (else 400) served, the publisher of the model (`anthropic` for `claude-*`, else `google`;
//! else 404) and a model served there (else 404 `NOT_FOUND`), then:
//!
//! - `publishers/google` `:generateContent` / `:streamGenerateContent` (`?alt=sse` for
//!   server-sent events, else Google's JSON array) / `:countTokens` go to a [`MockGemini`]
//!   (its strict validator and answers);
//! - `publishers/google` `:predict` (embeddings): `instances` of `{"content": text}`, one per
//!   request for `gemini-embedding-001` (Google, "Get text embeddings"); vectors
//!   `[i + 0.5, -1]` with `statistics`;
//! - `publishers/anthropic` `:rawPredict` / `:streamRawPredict`: the body must carry
//!   `anthropic_version: "vertex-2023-10-16"` and no `model`, `stream: true` exactly on
//!   `:streamRawPredict`, and only the `anthropic-beta` values Vertex serves (else Vertex's
//!   400 "Unexpected value(s) … for the `anthropic-beta` header"); then it goes, `model` from
//!   the path, to a [`MockAnthropic`] (its strict validator and answers).
//!
//! Set on demand: every token denied ([`MockVertex::deny`]: 403 `PERMISSION_DENIED`, as a
//! service account without the Vertex AI User role gets), a 429 `RESOURCE_EXHAUSTED` with a
//! `RetryInfo` ([`MockVertex::throttle`]), the token endpoint refusing every grant
//! ([`MockVertex::refuse_grants`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::Engine;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::mock_anthropic::MockAnthropic;
use super::mock_gemini::{gemini_retry_info_body, MockGemini};

/// The project every mock serves.
pub const VERTEX_PROJECT: &str = "sy-test-project";
/// The key the inner Gemini mock takes (the gateway never sees it).
const INNER_GEMINI_KEY: &str = "inner-gemini-key";
/// The key the inner Anthropic mock takes (the gateway never sees it).
const INNER_ANTHROPIC_KEY: &str = "inner-anthropic-key";
/// The betas Vertex serves for Claude (what the mock lets through).
pub const VERTEX_BETAS: &[&str] = &[
    "interleaved-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "tool-search-tool-2025-10-19",
    "web-search-2025-03-05",
];
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// One request to a model endpoint, as received.
#[derive(Clone, Debug)]
pub struct VertexRecorded {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
}

impl VertexRecorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Shared {
    location: String,
    public_key: RsaPublicKey,
    client_email: String,
    token_uri: String,
    lifetime_s: u64,
    /// Token → when it expires.
    tokens: Vec<(String, Instant)>,
    refuse_grants: bool,
    deny: bool,
    throttle: Option<String>,
    /// The models served; `None`: any.
    models: Option<HashSet<String>>,
    requests: Vec<VertexRecorded>,
    /// Token endpoint calls refused (bad assertion).
    bad_grants: Vec<String>,
    gemini_origin: String,
    anthropic_origin: String,
}

/// A service-account key file made for a test: an RSA key from `openssl genpkey`.
pub struct ServiceAccount {
    _dir: tempfile::TempDir,
    pub key_file: PathBuf,
    pub email: String,
    pem: String,
}

impl ServiceAccount {
    /// A new key, its file written with `token_uri`.
    pub fn new(token_uri: &str) -> ServiceAccount {
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("key.pem");
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem_path)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl genpkey: {out:?}");
        let pem = std::fs::read_to_string(&pem_path).unwrap();
        let email = format!("switchyard@{VERTEX_PROJECT}.iam.gserviceaccount.com");
        let key_file = dir.path().join("service-account.json");
        let json = json!({"type":"service_account","project_id":VERTEX_PROJECT,
            "private_key_id":"k1","private_key":pem,"client_email":email,
            "client_id":"100000000000000000001","token_uri":token_uri});
        std::fs::write(&key_file, json.to_string()).unwrap();
        ServiceAccount {
            _dir: dir,
            key_file,
            email,
            pem,
        }
    }
}

pub struct MockVertex {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
    pub account: ServiceAccount,
    /// Where Gemini requests end (its bodies are the Gemini dialect's).
    pub gemini: MockGemini,
    /// Where Claude requests end (with `model` back in the body).
    pub anthropic: MockAnthropic,
}

impl Drop for MockVertex {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockVertex {
    /// A Vertex AI of [`VERTEX_PROJECT`] in `location`, with a fresh service account whose
    /// `token_uri` is this mock's.
    pub async fn start(location: &str) -> MockVertex {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token_uri = format!("http://{addr}/token");
        let account = ServiceAccount::new(&token_uri);
        let public_key = RsaPrivateKey::from_pkcs8_pem(&account.pem)
            .unwrap()
            .to_public_key();
        let gemini = MockGemini::start(INNER_GEMINI_KEY).await;
        let anthropic = MockAnthropic::start(INNER_ANTHROPIC_KEY).await;
        let shared = Arc::new(Mutex::new(Shared {
            location: location.to_string(),
            public_key,
            client_email: account.email.clone(),
            token_uri,
            lifetime_s: 3600,
            tokens: Vec::new(),
            refuse_grants: false,
            deny: false,
            throttle: None,
            models: None,
            requests: Vec::new(),
            bad_grants: Vec::new(),
            gemini_origin: gemini.origin(),
            anthropic_origin: anthropic.origin(),
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{action}",
                post(model),
            )
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockVertex {
            addr,
            shared,
            task,
            account,
            gemini,
            anthropic,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn location(&self) -> String {
        self.shared.lock().unwrap().location.clone()
    }

    /// A `[[providers]]` stanza for this mock (its `base_url`, project, location and key
    /// file), then `extra` lines.
    pub fn provider(&self, name: &str, extra: &str) -> String {
        format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"vertex\"\nbase_url = \"{}\"\nproject = \"{VERTEX_PROJECT}\"\nlocation = \"{}\"\ncredentials_file = \"{}\"\n{extra}",
            self.origin(),
            self.location(),
            self.account.key_file.display()
        )
    }

    /// Tokens handed out from now on expire after `seconds`.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.shared.lock().unwrap().lifetime_s = seconds;
    }

    /// Every model endpoint answers 403 `PERMISSION_DENIED` (`true`), or serves again.
    pub fn deny(&self, on: bool) {
        self.shared.lock().unwrap().deny = on;
    }

    /// Every model endpoint answers 429 `RESOURCE_EXHAUSTED` with this `retryDelay`, or
    /// (`None`) serves again.
    pub fn throttle(&self, retry_delay: Option<&str>) {
        self.shared.lock().unwrap().throttle = retry_delay.map(str::to_string);
    }

    /// The token endpoint refuses every grant (`invalid_grant`).
    pub fn refuse_grants(&self, on: bool) {
        self.shared.lock().unwrap().refuse_grants = on;
    }

    /// Only these models are served in the location (others: 404).
    pub fn serve_only(&self, models: &[&str]) {
        self.shared.lock().unwrap().models = Some(models.iter().map(|m| m.to_string()).collect());
    }

    /// The tokens handed out, in order.
    pub fn tokens_issued(&self) -> Vec<String> {
        let s = self.shared.lock().unwrap();
        s.tokens.iter().map(|(t, _)| t.clone()).collect()
    }

    /// Grants refused for a bad assertion (the reasons).
    pub fn bad_grants(&self) -> Vec<String> {
        self.shared.lock().unwrap().bad_grants.clone()
    }

    pub fn requests(&self) -> Vec<VertexRecorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn last(&self) -> VertexRecorded {
        self.requests()
            .pop()
            .expect("a request reached the Vertex mock")
    }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// Verifies a JWT-bearer assertion as Google's token endpoint does; `Err` says why not.
fn verify_assertion(s: &Shared, jwt: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, claims, sig] = parts[..] else {
        return Err("not a JWT".into());
    };
    let head: Value = serde_json::from_slice(&b64url(head).ok_or("header not base64url")?)
        .map_err(|_| "header not JSON")?;
    if head["alg"] != "RS256" {
        return Err(format!("alg {} is not RS256", head["alg"]));
    }
    let signature = b64url(sig).ok_or("signature not base64url")?;
    let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
    s.public_key
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
        .map_err(|_| "Invalid JWT Signature.".to_string())?;
    let c: Value = serde_json::from_slice(&b64url(claims).ok_or("claims not base64url")?)
        .map_err(|_| "claims not JSON")?;
    if c["iss"] != s.client_email.as_str() {
        return Err(format!("iss {} is not the account", c["iss"]));
    }
    if c["aud"] != s.token_uri.as_str() {
        return Err(format!("aud {} is not the token URI", c["aud"]));
    }
    let scopes = c["scope"].as_str().unwrap_or("");
    if !scopes.split(' ').any(|sc| sc == CLOUD_PLATFORM) {
        return Err(format!("scope {scopes:?} lacks cloud-platform"));
    }
    let (iat, exp) = (
        c["iat"].as_i64().unwrap_or(0),
        c["exp"].as_i64().unwrap_or(0),
    );
    let now = now_s();
    if iat > now + 5 || exp <= now || exp - iat > 3600 {
        return Err(format!("Invalid JWT: iat {iat}, exp {exp}, now {now}"));
    }
    Ok(())
}

async fn token(State(shared): State<Arc<Mutex<Shared>>>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let mut s = shared.lock().unwrap();
    let verdict = if field("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        Err("unsupported grant_type".to_string())
    } else if s.refuse_grants {
        Err("account disabled".to_string())
    } else {
        verify_assertion(&s, field("assertion").unwrap_or(""))
    };
    if let Err(why) = verdict {
        s.bad_grants.push(why.clone());
        return json_response(
            400,
            json!({"error":"invalid_grant","error_description":why}),
        );
    }
    let n = s.tokens.len() + 1;
    let token = format!("ya29.mock-{n}-{}", now_s());
    let lifetime = s.lifetime_s;
    s.tokens.push((
        token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    ));
    json_response(
        200,
        json!({"access_token":token,"expires_in":lifetime,"token_type":"Bearer"}),
    )
}

fn json_response(status: u16, v: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// Google's error shape.
fn google_error(code: u16, status: &str, message: &str) -> Response {
    json_response(
        code,
        json!({"error":{"code":code,"message":message,"status":status}}),
    )
}

/// Vertex's own checks of a model call, in the order it makes them; `Err` is the answer.
fn admit(
    s: &Shared,
    headers: &HeaderMap,
    project: &str,
    location: &str,
    publisher: &str,
    model: &str,
) -> Result<(), Box<Response>> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let now = Instant::now();
    let current = bearer.is_some_and(|b| s.tokens.iter().any(|(t, until)| t == b && *until > now));
    if !current {
        return Err(Box::new(google_error(401, "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")));
    }
    let resource =
        format!("projects/{project}/locations/{location}/publishers/{publisher}/models/{model}");
    if project != VERTEX_PROJECT || s.deny {
        return Err(Box::new(google_error(403, "PERMISSION_DENIED", &format!(
            "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."))));
    }
    if location != s.location {
        return Err(Box::new(google_error(
            400,
            "INVALID_ARGUMENT",
            &format!(
                "Location {location} is not served by this endpoint ({}).",
                s.location
            ),
        )));
    }
    let want = if model.starts_with("claude-") {
        "anthropic"
    } else {
        "google"
    };
    let served = s.models.as_ref().is_none_or(|m| m.contains(model));
    if publisher != want || !served {
        return Err(Box::new(google_error(404, "NOT_FOUND", &format!(
            "Publisher Model `{resource}` was not found or your project does not have access to it."))));
    }
    if let Some(delay) = &s.throttle {
        return Err(Box::new(
            Response::builder()
                .status(429)
                .header("content-type", "application/json")
                .body(Body::from(gemini_retry_info_body(delay)))
                .unwrap(),
        ));
    }
    Ok(())
}

async fn model(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((project, location, publisher, action)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!(
        "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{action}"
    );
    let (model, method) = action.split_once(':').unwrap_or((action.as_str(), ""));
    let (admitted, gemini, anthropic) = {
        let s = shared.lock().unwrap();
        (
            admit(&s, &headers, &project, &location, &publisher, model),
            s.gemini_origin.clone(),
            s.anthropic_origin.clone(),
        )
    };
    let answer = match admitted {
        Err(r) => *r,
        Ok(()) => match (publisher.as_str(), method) {
            ("google", "generateContent" | "streamGenerateContent" | "countTokens") => {
                gemini_call(&gemini, model, method, query.as_deref(), &body).await
            }
            ("google", "predict") => predict(model, &body),
            ("anthropic", "rawPredict" | "streamRawPredict") => {
                claude_call(&anthropic, model, method, &headers, &body).await
            }
            _ => google_error(400, "INVALID_ARGUMENT", &format!("unknown method {method}")),
        },
    };
    shared.lock().unwrap().requests.push(VertexRecorded {
        path,
        query,
        headers,
        body,
        status: answer.status().as_u16(),
    });
    answer
}

/// The answer of `origin`'s mock to a POST of `body` at `path`, streamed through.
async fn forward(url: String, headers: Vec<(&str, String)>, body: Vec<u8>) -> Response {
    let mut req = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("the inner mock answers");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from_stream(resp.bytes_stream()))
        .unwrap()
}

async fn gemini_call(
    origin: &str,
    model: &str,
    method: &str,
    query: Option<&str>,
    body: &Bytes,
) -> Response {
    // A stream is server-sent events with `alt=sse`, Google's JSON array without it.
    let stream = method == "streamGenerateContent";
    if query.is_some_and(|q| q != "alt=sse") || (!stream && query.is_some()) {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "only streamGenerateContent takes a query, and only alt=sse",
        );
    }
    let url = format!(
        "{origin}/v1beta/models/{model}:{method}{}",
        query.map_or(String::new(), |q| format!("?{q}"))
    );
    forward(
        url,
        vec![
            ("x-goog-api-key", INNER_GEMINI_KEY.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        body.to_vec(),
    )
    .await
}

/// Claude on Vertex: Vertex's rules, then the body (with `model` back) to the Anthropic mock.
async fn claude_call(
    origin: &str,
    model: &str,
    method: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let anth_error = |message: String| {
        json_response(
            400,
            json!({"type":"error","error":{"type":"invalid_request_error","message":message}}),
        )
    };
    let betas: Vec<String> = headers
        .get_all("anthropic-beta")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    let unexpected: Vec<String> = betas
        .iter()
        .filter(|b| !VERTEX_BETAS.contains(&b.as_str()))
        .map(|b| format!("`{b}`"))
        .collect();
    if !unexpected.is_empty() {
        return anth_error(format!(
            "Unexpected value(s) {} for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header.",
            unexpected.join(", ")
        ));
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return anth_error("invalid JSON".into());
    };
    let Some(obj) = v.as_object_mut() else {
        return anth_error("body must be an object".into());
    };
    if obj.remove("anthropic_version") != Some(json!("vertex-2023-10-16")) {
        return anth_error("anthropic_version: must be \"vertex-2023-10-16\"".into());
    }
    if obj.contains_key("model") {
        return anth_error("model: Extra inputs are not permitted".into());
    }
    let stream = obj.get("stream") == Some(&json!(true));
    if stream != (method == "streamRawPredict") {
        return anth_error(format!("{method} takes stream: {}", !stream));
    }
    obj.insert("model".into(), json!(model));
    let mut forwarded = vec![
        ("x-api-key", INNER_ANTHROPIC_KEY.to_string()),
        ("anthropic-version", "2023-06-01".to_string()),
        ("content-type", "application/json".to_string()),
    ];
    if !betas.is_empty() {
        forwarded.push(("anthropic-beta", betas.join(",")));
    }
    forward(
        format!("{origin}/v1/messages"),
        forwarded,
        serde_json::to_vec(&v).unwrap(),
    )
    .await
}

/// The text embeddings API's `:predict`.
fn predict(model: &str, body: &Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    for k in v
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if k != "instances" && k != "parameters" {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                &format!("Invalid JSON payload received. Unknown name \"{k}\""),
            );
        }
    }
    let Some(instances) = v["instances"].as_array().filter(|i| !i.is_empty()) else {
        return google_error(400, "INVALID_ARGUMENT", "instances must not be empty");
    };
    if model == "gemini-embedding-001" && instances.len() > 1 {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "gemini-embedding-001 takes one instance per request.",
        );
    }
    let mut predictions = Vec::new();
    for (i, inst) in instances.iter().enumerate() {
        let Some(text) = inst["content"].as_str().filter(|t| !t.is_empty()) else {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                &format!("instances[{i}].content is required"),
            );
        };
        predictions.push(json!({"embeddings":{"values":[i as f64 + 0.5, -1.0],
            "statistics":{"truncated":false,"token_count":text.split_whitespace().count()}}}));
    }
    if let Some(p) = v.get("parameters") {
        if p.get("outputDimensionality")
            .is_some_and(|d| d.as_u64().is_none_or(|d| d == 0))
        {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "parameters.outputDimensionality must be positive",
            );
        }
    }
    json_response(
        200,
        json!({"predictions":predictions,"metadata":{"billableCharacterCount":10}}),
    )
}
