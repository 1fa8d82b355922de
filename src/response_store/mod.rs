//! The Responses API's state on translated routes (`anthropic`, `gemini`, chat-only `openai`,
//! the built-in mock): the gateway keeps each response it answers there, with its input, in
//! the `[state]` backend (memory, or Redis shared by every instance), so that
//! `previous_response_id`, `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}` and
//! `GET /v1/responses/{id}/input_items` work as they do on OpenAI.
//!
//! The rule for ids:
//! - a translated response gets an id the gateway mints: `resp_sy` + 32 hex digits
//!   ([`mint_id`]); only such ids are ever looked up in the store, on every route. A
//!   `previous_response_id` of that form is expanded before routing (the stored input, the
//!   stored output, then the new input) and never reaches a vendor;
//! - any other id is the vendor's: it passes through untouched on native routes
//!   (`openai`/`azure` serving the Responses API keep their own state) and is a 404 on
//!   translated ones; `GET`/`DELETE` answer from the store only, so they are 404 for it.
//!
//! A response is stored when the request did not say `"store": false`, its answer was a 200
//! that completed (a whole `response` object, or a stream that reached `response.completed`
//! or `response.incomplete`), and it went through a translation. It is stored as soon as the
//! translation made that whole object (a stream's `response.completed`/`response.incomplete`
//! event, a whole answer's body), before those bytes go to the client ([`ResponseStore::keep`],
//! called by `gateway::answer`): a follow-up sent the moment the client reads that event finds
//! it, on any instance, even while the vendor's own last bytes are still to come. What is stored is the response object
//! and its whole input (with a `previous_response_id`, the conversation it was expanded to),
//! under the key's team: another team's key finds nothing (404).
//!
//! Bounds, on both backends, by what the backend really holds (the body, its keys and index
//! entries): `[state] responses_team_max_bytes` per team, `responses_max_bytes` in all (and
//! `responses_max_entries` in memory); a save over a bound evicts the team's oldest, then the
//! oldest of all ([`memory`], [`redis`] say how each counts and evicts). The bytes held are the
//! gauge `switchyard_responses_stored_bytes`, evictions `switchyard_responses_evicted_total
//! {reason}` (`team_max_bytes`, `max_bytes`, `max_entries`).
//!
//! Failures: a lookup that the backend cannot answer (Redis down) is a 503 `overloaded` on the
//! request that needs it; a save that fails (Redis down, one response larger than its team's
//! bound) is logged (the id and the team, nothing of the content) and counted in
//! `switchyard_responses_store_errors_total{op}`.
//!
//! Modules: [`memory`] and [`redis`] (the backends), [`door`] (the `GET`/`DELETE` answers),
//! [`vendor_state`] (the vendor state kept for chat-door clients that drop `thinking_blocks`,
//! in the same backend and bounds under `vs_{call id}` ids, with its own TTL and metrics).

pub mod door;
pub mod memory;
pub mod redis;
pub mod vendor_state;

use std::time::Instant;

use bytes::Bytes;
use prometheus::{IntCounterVec, IntGauge};
use serde_json::{json, Map, Value};

use crate::config::{Config, RedisState, State, StoredResponses};
use crate::dialect::request::{FrontRequest, Pending};
use crate::dialect::{responses, Dialect};
use crate::error::GatewayError;
use crate::observability::metrics::{counter, gauge, Metrics};

use self::memory::{Eviction, Memory};
use self::redis::{Bounds, RedisStore};

/// The prefix of the ids the gateway mints for translated responses.
pub const ID_PREFIX: &str = "resp_sy";

/// A new response id: `resp_sy` and 128 random bits in hex.
pub fn mint_id() -> String {
    format!("{ID_PREFIX}{:032x}", rand::random::<u128>())
}

/// Whether `id` is one the gateway minted (and so may be in its store).
pub fn is_minted(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One stored response: the `response` object and its input items.
#[derive(Debug, Clone)]
pub struct Stored {
    pub response: Value,
    pub input: Vec<Value>,
}

impl Stored {
    /// The stored form, at its exact length (a `Vec` grown by the serializer holds up to twice
    /// its length: what the memory backend counts must be what it holds).
    fn to_bytes(&self) -> Bytes {
        let v = json!({"response": self.response, "input": self.input});
        let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
        bytes.shrink_to_fit();
        Bytes::from(bytes)
    }

    fn from_bytes(b: &[u8]) -> Option<Stored> {
        let mut v: Map<String, Value> = serde_json::from_slice(b).ok()?;
        let response = v.remove("response")?;
        let input = match v.remove("input")? {
            Value::Array(items) => items,
            _ => return None,
        };
        Some(Stored { response, input })
    }
}

enum Backend {
    Memory(Memory),
    /// Boxed: the client and its scripts are much larger than the memory store's maps.
    Redis(Box<RedisStore>),
}

/// The response store: its backend and its metrics.
pub struct ResponseStore {
    backend: Backend,
    errors: IntCounterVec,
    /// `switchyard_vendor_state_errors_total{op}`: kept vendor state not written or read.
    vendor_state_errors: IntCounterVec,
    /// `switchyard_vendor_state_recalled_total`: tool calls given back kept state.
    vendor_state_recalled: prometheus::IntCounter,
    evicted: IntCounterVec,
    /// The bytes the store holds (memory: this process's; Redis: every instance's, as of this
    /// instance's last save).
    held: IntGauge,
}

/// The backend could not answer.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl ResponseStore {
    /// The store of its own Redis (`[state] responses_redis_url`) or else of `state`'s backend
    /// (a Redis client connects on first use); its metrics are registered with `metrics`.
    pub fn new(
        state: &State,
        own: Option<&RedisState>,
        metrics: &Metrics,
    ) -> Result<ResponseStore, String> {
        let backend = match (own, state) {
            (Some(r), _) | (None, State::Redis(r)) => Backend::Redis(Box::new(RedisStore::new(r)?)),
            (None, State::Memory { .. }) => Backend::Memory(Memory::default()),
        };
        Ok(ResponseStore::with_backend(backend, metrics))
    }

    /// A memory store (a gateway built without one: tests).
    pub fn memory(metrics: &Metrics) -> ResponseStore {
        ResponseStore::with_backend(Backend::Memory(Memory::default()), metrics)
    }

    fn with_backend(backend: Backend, metrics: &Metrics) -> ResponseStore {
        let errors = counter(
            "switchyard_responses_store_errors_total",
            "Stored responses that could not be written, read or deleted.",
            &["op"],
        );
        let evicted = counter(
            "switchyard_responses_evicted_total",
            "Stored responses evicted before their TTL to make room: for the store's bound in \
             bytes (max_bytes), a team's (team_max_bytes), the memory store's in entries \
             (max_entries).",
            &["reason"],
        );
        let held = gauge(
            "switchyard_responses_stored_bytes",
            "Bytes held by stored responses (Redis: all instances', as of this instance's last \
             save).",
        );
        let vendor_state_errors = counter(
            "switchyard_vendor_state_errors_total",
            "Vendor state kept for tool calls (chat-door clients that drop thinking_blocks) \
             that could not be written or read; the request went on without it.",
            &["op"],
        );
        let recalled = counter(
            "switchyard_vendor_state_recalled_total",
            "Tool calls of a history given back the vendor state the gateway kept for them.",
            &[],
        );
        let vendor_state_recalled = recalled.with_label_values::<&str>(&[]);
        // Present from the first scrape, like every counter whose labels are a fixed set.
        for op in ["save", "load", "delete"] {
            errors.with_label_values(&[op]);
        }
        for op in ["save", "load"] {
            vendor_state_errors.with_label_values(&[op]);
        }
        for why in Eviction::ALL {
            evicted.with_label_values(&[why.label()]);
        }
        metrics.register(Box::new(errors.clone()));
        metrics.register(Box::new(evicted.clone()));
        metrics.register(Box::new(held.clone()));
        metrics.register(Box::new(vendor_state_errors.clone()));
        metrics.register(Box::new(recalled));
        ResponseStore {
            backend,
            errors,
            vendor_state_errors,
            vendor_state_recalled,
            evicted,
            held,
        }
    }

    /// The stored response `id` of `team`; `None` when there is none (unknown, expired,
    /// evicted, deleted, another team's).
    pub async fn load(&self, team: &str, id: &str) -> Result<Option<Stored>, Unavailable> {
        let key = store_key(team, id);
        let found = match &self.backend {
            Backend::Memory(m) => m.load(&key, Instant::now()),
            Backend::Redis(r) => r.load(&key).await.map_err(|e| {
                self.failed("load", team, id, &e.to_string());
                Unavailable(e.to_string())
            })?,
        };
        Ok(found.and_then(|b| Stored::from_bytes(&b)))
    }

    /// The entries `ids` of `team` (raw bodies, in order; `None` for each it does not hold), in
    /// one call to the backend (Redis: one `MGET`). A failure is counted as `kind`'s `load`.
    async fn load_many(
        &self,
        kind: Kind,
        team: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Bytes>>, Unavailable> {
        let keys: Vec<String> = ids.iter().map(|id| store_key(team, id)).collect();
        match &self.backend {
            Backend::Memory(m) => {
                let now = Instant::now();
                Ok(keys.iter().map(|k| m.load(k, now)).collect())
            }
            Backend::Redis(r) => r.load_many(&keys).await.map_err(|e| {
                self.failed_as(kind, "load", team, "", &e.to_string());
                Unavailable(e.to_string())
            }),
        }
    }

    /// Deletes the stored response `id` of `team`; whether there was one.
    pub async fn delete(&self, team: &str, id: &str) -> Result<bool, Unavailable> {
        match &self.backend {
            Backend::Memory(m) => {
                let deleted = m.delete(&store_key(team, id), Instant::now());
                self.held.set(gauge_value(m.usage().bytes));
                Ok(deleted)
            }
            Backend::Redis(r) => r.delete(&team_part(team), id).await.map_err(|e| {
                self.failed("delete", team, id, &e.to_string());
                Unavailable(e.to_string())
            }),
        }
    }

    /// Keeps `stored` as `id` of `team`; a failure is logged and counted, not returned: the
    /// answer is on its way to the client.
    async fn save(
        &self,
        kind: Kind,
        team: &str,
        id: &str,
        stored: Bytes,
        limits: &StoredResponses,
    ) {
        match &self.backend {
            Backend::Memory(_) => self.save_in_memory(kind, team, id, stored, limits),
            Backend::Redis(r) => self.save_in_redis(kind, r, team, id, stored, limits).await,
        }
    }

    async fn save_in_redis(
        &self,
        kind: Kind,
        r: &RedisStore,
        team: &str,
        id: &str,
        stored: Bytes,
        limits: &StoredResponses,
    ) {
        let team_max = limits.team_max_bytes.min(limits.max_bytes);
        let held = redis::held_bytes(&format!("{}:{id}", team_part(team)), stored.len());
        if held > team_max {
            let why = format!(
                "the response ({held} bytes) is larger than responses_team_max_bytes ({team_max})"
            );
            return self.failed_as(kind, "save", team, id, &why);
        }
        let bounds = Bounds {
            team_max,
            total_max: limits.max_bytes,
        };
        match r
            .save(&team_part(team), id, &stored, kind.ttl(limits), bounds)
            .await
        {
            Ok(saved) => {
                let evicted = |why: Eviction| self.evicted.with_label_values(&[why.label()]);
                evicted(Eviction::TeamBytes).inc_by(saved.evicted_for_team);
                evicted(Eviction::Bytes).inc_by(saved.evicted_for_total);
                self.held
                    .set(i64::try_from(saved.bytes).unwrap_or(i64::MAX));
            }
            Err(e) => self.failed_as(kind, "save", team, id, &e.to_string()),
        }
    }

    fn save_in_memory(
        &self,
        kind: Kind,
        team: &str,
        id: &str,
        stored: Bytes,
        limits: &StoredResponses,
    ) {
        let Backend::Memory(m) = &self.backend else {
            return;
        };
        let limits = StoredResponses {
            ttl: kind.ttl(limits),
            ..*limits
        };
        match m.save(team, store_key(team, id), stored, &limits, Instant::now()) {
            Ok(evicted) => {
                for why in evicted {
                    self.evicted.with_label_values(&[why.label()]).inc();
                }
                self.held.set(gauge_value(m.usage().bytes));
            }
            Err(e) => self.failed_as(
                kind,
                "save",
                team,
                id,
                &format!(
                    "the response ({} bytes held) is larger than its team's bound \
                     (responses_team_max_bytes, at most responses_max_bytes: {})",
                    e.bytes, e.max_bytes
                ),
            ),
        }
    }

    /// Logs and counts a failed call; the message never holds content or secrets.
    fn failed(&self, op: &'static str, team: &str, id: &str, why: &str) {
        self.failed_as(Kind::Response, op, team, id, why);
    }

    /// [`Self::failed`], counted as what was stored.
    fn failed_as(&self, kind: Kind, op: &'static str, team: &str, id: &str, why: &str) {
        match kind {
            Kind::Response => {
                self.errors.with_label_values(&[op]).inc();
                tracing::warn!(op, team, response_id = id, "response store: {why}");
            }
            Kind::VendorState => {
                self.vendor_state_errors.with_label_values(&[op]).inc();
                tracing::warn!(op, team, key = id, "vendor state store: {why}");
            }
        }
    }

    /// What to keep of a translated answer that completed (`response`, the object the
    /// translation handed out), or `None` when nothing is to be kept.
    fn what_to_keep(
        req: Option<&FrontRequest>,
        response: Option<Value>,
    ) -> Option<(String, Bytes)> {
        let req = req?;
        let pending = req.pending.as_ref().filter(|p| p.store)?;
        let response = response?;
        // The request's input: with a `previous_response_id`, the whole conversation.
        let body: Map<String, Value> = serde_json::from_slice(&req.body).ok()?;
        let input = input_items(body.get("input"));
        let stored = Stored { response, input };
        Some((pending.id.clone(), stored.to_bytes()))
    }

    /// Keeps a translated answer that completed (`response`, the object the translation
    /// handed out), before its end goes to the client: a client (or another instance) that
    /// asks for it right after the answer ends finds it. A failure is logged and counted.
    pub async fn keep(
        &self,
        config: Option<&Config>,
        team: Option<&str>,
        req: Option<&FrontRequest>,
        response: Option<Value>,
    ) {
        let (Some(config), Some(team)) = (config, team) else {
            return;
        };
        if let Some((id, stored)) = Self::what_to_keep(req, response) {
            self.save(Kind::Response, team, &id, stored, &config.stored_responses)
                .await;
        }
    }
}

/// What an entry of the store is: a stored response, or vendor state kept for a tool call
/// ([`vendor_state`]); they share the backend and its bounds, not the TTL nor the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Response,
    VendorState,
}

impl Kind {
    fn ttl(self, limits: &StoredResponses) -> std::time::Duration {
        match self {
            Kind::Response => limits.ttl,
            Kind::VendorState => limits.vendor_state_ttl,
        }
    }
}

/// `switchyard:{resp}:b:{team}:{id}`, the team escaped so that no two teams share a key.
fn store_key(team: &str, id: &str) -> String {
    format!("{}{}:{id}", redis::KEY_PREFIX, team_part(team))
}

/// The team as it is written in keys: escaped (no `:`, no two teams alike).
fn team_part(team: &str) -> String {
    let mut out = String::new();
    crate::policy::limits::push_key_part(&mut out, team);
    out
}

fn gauge_value(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The 404 of a `previous_response_id` that is not in the store (for this team).
fn previous_not_found(id: &str) -> GatewayError {
    let id: String = id.chars().take(128).collect();
    GatewayError::NotFound(format!(
        "Previous response with id '{id}' not found (`previous_response_id`)."
    ))
}

/// The 503 of a store that cannot answer.
pub fn unavailable(id: &str, e: &Unavailable) -> GatewayError {
    GatewayError::Overloaded(format!(
        "the response store cannot be read now ({}); response '{id}' is unavailable, retry later",
        e.0
    ))
}

/// Before routing, on the Responses door: decides the id and whether to store, and expands a
/// gateway-minted `previous_response_id` into the conversation it continues (the stored
/// input, the stored output, then the new input), so every attempt's body is made from it.
/// Unknown (expired, evicted, deleted, another team's) → 404 naming it; store down → 503.
pub async fn expand(
    store: &ResponseStore,
    team: &str,
    mut req: FrontRequest,
) -> Result<FrontRequest, GatewayError> {
    if req.dialect != Dialect::Responses {
        return Ok(req);
    }
    let view = responses::parse(&req.body)?;
    let store_it = view.field("store").is_none_or(|v| v.get() != "false");
    let previous = match view.field("previous_response_id") {
        None => None,
        Some(v) => Some(serde_json::from_str::<String>(v.get()).map_err(|_| {
            GatewayError::InvalidParam {
                message: "`previous_response_id` must be a string".into(),
                param: "previous_response_id".into(),
            }
        })?),
    };
    let minted = previous.as_deref().filter(|id| is_minted(id));
    let pending = Pending {
        id: mint_id(),
        store: store_it,
        previous_response_id: previous.clone(),
    };
    if let Some(id) = minted {
        let stored = store
            .load(team, id)
            .await
            .map_err(|e| unavailable(id, &e))?
            .ok_or_else(|| previous_not_found(id))?;
        let mut body: Map<String, Value> = serde_json::from_slice(&req.body).map_err(|e| {
            GatewayError::InvalidRequest(format!("the request body is not JSON: {e}"))
        })?;
        let mut input = stored.input;
        input.extend(output_as_input(&stored.response));
        input.extend(input_items(body.get("input")));
        body.insert("input".into(), Value::Array(input));
        body.remove("previous_response_id");
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        req = FrontRequest::read(Dialect::Responses, bytes)?;
    }
    if memchr::memmem::find(&req.body, b"\"item_reference\"").is_some() {
        let mut body: Map<String, Value> = serde_json::from_slice(&req.body).map_err(|e| {
            GatewayError::InvalidRequest(format!("the request body is not JSON: {e}"))
        })?;
        let resolved = match body.get_mut("input") {
            Some(Value::Array(items)) => resolve_references(store, team, items).await?,
            _ => false,
        };
        if resolved {
            let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
            req = FrontRequest::read(Dialect::Responses, bytes)?;
        }
    }
    req.pending = Some(pending);
    Ok(req)
}

/// The response id in an output item id the gateway minted: items are named
/// `{kind}_{response id}_{output index}` (`msg_resp_sy…_0`, `fc_resp_sy…_1`: see
/// `convert::responses_to_chat`), so `msg_resp_sy<32 hex>_0` names response `resp_sy<32 hex>`.
/// `None` for any other id (a vendor's own, which only a native route knows).
fn minted_item_response(item_id: &str) -> Option<&str> {
    let (head, index) = item_id.rsplit_once('_')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (_kind, response) = head.split_once('_')?;
    is_minted(response).then_some(response)
}

/// The id of an `item_reference` input item (`{"type":"item_reference","id":…}`).
fn reference_id(item: &Value) -> Option<&str> {
    (item.get("type").and_then(Value::as_str) == Some("item_reference"))
        .then(|| item.get("id").and_then(Value::as_str))
        .flatten()
}

/// Replaces each `item_reference` input item that names an output item the gateway stored
/// (its id minted by the gateway: [`minted_item_response`]) by that item, as input (without
/// its id and status, like a `previous_response_id`'s output). The Vercel AI SDK's OpenAI
/// provider sends these for the previous step's output when `store` is on (OpenAI's Responses
/// API reference, "Input item list": `item_reference`, "An internal identifier for an item to
/// reference"). A reference to such an item that this team's store does not hold (unknown,
/// expired, evicted, deleted, another team's) is a 400 naming `input[i].id`, in OpenAI's words
/// "Item with id '…' not found."; the store down is a 503. Other references are left for the
/// route (a native OpenAI route knows its own ids). Whether any was replaced.
async fn resolve_references(
    store: &ResponseStore,
    team: &str,
    items: &mut [Value],
) -> Result<bool, GatewayError> {
    let mut resolved = false;
    let mut loaded: Vec<(String, Option<Stored>)> = Vec::new();
    for (i, item) in items.iter_mut().enumerate() {
        let Some(id) = reference_id(item).map(str::to_string) else {
            continue;
        };
        let Some(response_id) = minted_item_response(&id) else {
            continue;
        };
        if !loaded.iter().any(|(r, _)| r == response_id) {
            let stored = store
                .load(team, response_id)
                .await
                .map_err(|e| unavailable(response_id, &e))?;
            loaded.push((response_id.to_string(), stored));
        }
        let found = loaded
            .iter()
            .find(|(r, _)| r == response_id)
            .and_then(|(_, s)| s.as_ref())
            .and_then(|s| output_item(&s.response, &id));
        match found {
            Some(stored_item) => *item = stored_item,
            None => return Err(reference_not_found(i, &id)),
        }
        resolved = true;
    }
    Ok(resolved)
}

/// The output item `id` of a stored response, as an input item (no id, no status).
fn output_item(response: &Value, id: &str) -> Option<Value> {
    let item = response
        .get("output")?
        .as_array()?
        .iter()
        .find(|item| item.get("id").and_then(Value::as_str) == Some(id))?;
    Some(as_input(item))
}

/// An output item as an input item: without the id and status the gateway gave it (a vendor
/// must not take them for its own).
fn as_input(item: &Value) -> Value {
    let mut item = item.clone();
    if let Some(o) = item.as_object_mut() {
        o.remove("id");
        o.remove("status");
    }
    item
}

/// The 400 of an `item_reference` the store does not hold (OpenAI's wording).
fn reference_not_found(i: usize, id: &str) -> GatewayError {
    let id: String = id.chars().take(128).collect();
    GatewayError::InvalidParam {
        message: format!("Item with id '{id}' not found (`input[{i}].id`)."),
        param: format!("input[{i}].id"),
    }
}

/// The request's `input` as items: a string is one user message.
fn input_items(input: Option<&Value>) -> Vec<Value> {
    match input {
        Some(Value::String(text)) => vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// A stored response's output items as input items: without the ids and statuses the
/// gateway gave them (a vendor must not take them for its own).
fn output_as_input(response: &Value) -> Vec<Value> {
    let Some(items) = response.get("output").and_then(Value::as_array) else {
        return Vec::new();
    };
    items.iter().map(as_input).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> FrontRequest {
        FrontRequest::read(Dialect::Responses, Bytes::from(body.to_string())).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_conversation_is_kept_per_team_and_expanded() {
        let metrics = Metrics::new();
        let store = ResponseStore::memory(&metrics);
        let config = crate::config::load_str("", std::path::Path::new("t.toml")).unwrap();
        let first = expand(&store, "a", request(r#"{"model":"m","input":"hi"}"#))
            .await
            .unwrap();
        let id = first.pending.as_ref().unwrap().id.clone();
        assert!(is_minted(&id));
        let response = json!({"id": id, "output": [{"id": "msg_1", "type": "message",
            "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "hello"}]}]});
        store
            .keep(
                Some(&config),
                Some("a"),
                Some(&first),
                Some(response.clone()),
            )
            .await;

        let body = format!(r#"{{"model":"m","previous_response_id":"{id}","input":"more"}}"#);
        let next = expand(&store, "a", request(&body)).await.unwrap();
        let sent: Value = serde_json::from_slice(&next.body).unwrap();
        assert!(sent.get("previous_response_id").is_none(), "{sent}");
        let texts: Vec<&Value> = sent["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &i["content"][0]["text"])
            .collect();
        assert_eq!(texts, [&json!("hi"), &json!("hello"), &json!("more")]);
        assert_eq!(
            next.pending.as_ref().unwrap().previous_response_id,
            Some(id.clone())
        );

        // Another team: not found, and nothing of the first team's data in the error.
        let Err(e) = expand(&store, "b", request(&body)).await else {
            panic!("another team's id was expanded");
        };
        assert_eq!(e.status(), 404);
        assert!(!e.to_string().contains("hello"));
        assert!(store.load("b", &id).await.unwrap().is_none());
        assert_eq!(
            store.load("a", &id).await.unwrap().unwrap().response,
            response
        );
        // `store: false` keeps nothing.
        let off = expand(
            &store,
            "a",
            request(r#"{"model":"m","input":"x","store":false}"#),
        )
        .await
        .unwrap();
        let off_id = off.pending.as_ref().unwrap().id.clone();
        store
            .keep(
                Some(&config),
                Some("a"),
                Some(&off),
                Some(json!({"output": []})),
            )
            .await;
        assert!(store.load("a", &off_id).await.unwrap().is_none());
        assert!(!store.delete("b", &id).await.unwrap());
        assert!(store.delete("a", &id).await.unwrap());
    }

    #[test]
    fn item_ids_name_their_response() {
        let id = mint_id();
        assert_eq!(
            minted_item_response(&format!("msg_{id}_0")),
            Some(id.as_str())
        );
        assert_eq!(
            minted_item_response(&format!("fc_{id}_12")),
            Some(id.as_str())
        );
        assert_eq!(minted_item_response(&format!("msg_{id}_")), None);
        assert_eq!(minted_item_response(&format!("msg_{id}x_0")), None);
        assert_eq!(minted_item_response("msg_67ccd2bed1ec8190_0"), None);
        assert_eq!(minted_item_response(&id), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn item_references_become_the_stored_items() {
        let metrics = Metrics::new();
        let store = ResponseStore::memory(&metrics);
        let config = crate::config::load_str("", std::path::Path::new("t.toml")).unwrap();
        let first = expand(&store, "a", request(r#"{"model":"m","input":"hi"}"#))
            .await
            .unwrap();
        let id = first.pending.as_ref().unwrap().id.clone();
        let call = json!({"id": format!("fc_{id}_1"), "type": "function_call",
            "status": "completed", "call_id": "c1", "name": "f", "arguments": "{}"});
        let response = json!({"id": id, "output": [{"id": format!("msg_{id}_0"),
            "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "calling"}]}, call]});
        store
            .keep(Some(&config), Some("a"), Some(&first), Some(response))
            .await;
        let body = json!({"model": "m", "input": [
            {"role": "user", "content": "hi"},
            {"type": "item_reference", "id": format!("msg_{id}_0")},
            {"type": "item_reference", "id": format!("fc_{id}_1")},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"type": "item_reference", "id": "msg_vendors_own"}]});
        let next = expand(&store, "a", request(&body.to_string()))
            .await
            .unwrap();
        let sent: Value = serde_json::from_slice(&next.body).unwrap();
        let input = sent["input"].as_array().unwrap();
        assert_eq!(input[1]["type"], "message", "{sent}");
        assert_eq!(input[1]["content"][0]["text"], "calling", "{sent}");
        assert!(input[1].get("id").is_none(), "{sent}");
        assert_eq!(input[2]["call_id"], "c1", "{sent}");
        assert_eq!(
            input[4]["id"], "msg_vendors_own",
            "left for the route: {sent}"
        );

        // Another team, or an item the response does not hold: 400 naming `input[i].id`.
        let Err(e) = expand(&store, "b", request(&body.to_string())).await else {
            panic!("another team's item was resolved");
        };
        assert_eq!((e.status(), e.param()), (400, Some("input[1].id")), "{e}");
        let missing = json!({"model": "m", "input": [
            {"type": "item_reference", "id": format!("fc_{id}_7")}]});
        let Err(e) = expand(&store, "a", request(&missing.to_string())).await else {
            panic!("an unknown item was resolved");
        };
        assert!(e.to_string().contains("Item with id"), "{e}");
        assert_eq!(e.param(), Some("input[0].id"));
    }

    #[test]
    fn minted_ids_are_recognised() {
        let id = mint_id();
        assert!(is_minted(&id), "{id}");
        assert!(!is_minted(
            "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452e3795b"
        ));
        assert!(!is_minted("resp_sy"));
        assert!(!is_minted(&format!("{id}0")));
    }

    #[test]
    fn keys_hold_the_team_escaped() {
        assert_eq!(
            store_key("a:b", "resp_sy1"),
            "switchyard:{resp}:b:a%3Ab:resp_sy1"
        );
        assert_ne!(store_key("a:b", "x"), store_key("a", "b:x"));
    }

    #[test]
    fn stored_round_trip_and_output_as_input() {
        let s = Stored {
            response: json!({"id": "r", "output": [{"id": "fc_1", "status": "completed",
                "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]}),
            input: vec![json!({"role": "user", "content": "hi"})],
        };
        let back = Stored::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back.input, s.input);
        assert_eq!(
            output_as_input(&back.response),
            vec![json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"})]
        );
        assert_eq!(
            input_items(Some(&json!("hi")))[0]["content"][0]["text"],
            "hi"
        );
    }
}
