//! Vendor state the gateway keeps for chat-door clients that drop it: what an answer's
//! assistant message carried in `thinking_blocks` beside its tool calls ([`Collector`]), and
//! how a later request's history gets it back ([`wanted`], [`splice`]). Pure (bytes in,
//! bytes out); the store is `crate::response_store::vendor_state`.
//!
//! Most chat-door clients (the OpenAI SDKs used plainly, LangChain) send back only an
//! assistant message's `role`, `content` and `tool_calls`; `thinking_blocks` is LiteLLM's
//! convention, no slot of OpenAI's chat API. Without it a Gemini 3 route gets the placeholder
//! signature (Gemini API, "Thought signatures": "the first function call in each step … must
//! include its thought signature"), and an Anthropic route with thinking on loses the signed
//! thinking of the tool loop (Anthropic, "Extended thinking" → "Preserving thinking blocks":
//! "you must pass thinking blocks back to the API for the last assistant message").
//!
//! What is kept, per tool call the client sees: the JSON array of the `thinking_blocks` of
//! the assistant message that made the call (the same array under each of its calls' ids), as
//! the pivot carries it (`super::vendor_state`: Gemini's `gemini:<call id>:<signature>`,
//! Anthropic's signed blocks). Only ids every vendor takes ([`vendor_state::valid_call_id`],
//! which the gateway's minted `call_` + 24 hex ids are) are kept or looked up.

use std::collections::HashMap;

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::dialect::sse::Decoder;

use super::vendor_state;

/// The most tool calls of one request whose state is looked up (the latest ones): a bound on
/// the batched lookup, far above any real tool loop's assistant turns that still matter.
pub const MAX_LOOKUPS: usize = 256;

/// Reads a translated answer's chat pivot (a whole `chat.completion`, or its stream chunk by
/// chunk) and gathers the first choice's tool-call ids and `thinking_blocks`.
#[derive(Debug, Default)]
pub struct Collector {
    sse: Decoder,
    ids: Vec<String>,
    blocks: Vec<Value>,
}

impl Collector {
    /// One chunk of a streamed chat pivot (SSE, cut anywhere).
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(ev) = self.sse.next_event(&mut rest) {
            let data = ev.data;
            let interesting = memchr::memmem::find(data, b"\"thinking_blocks\"").is_some()
                || memchr::memmem::find(data, b"\"tool_calls\"").is_some();
            if !interesting {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(data) else {
                continue;
            };
            if let Some(delta) = first_choice(&v).and_then(|c| c.get("delta")) {
                gather(delta, &mut self.ids, &mut self.blocks);
            }
        }
    }

    /// A whole `chat.completion`.
    pub fn whole(&mut self, body: &[u8]) {
        if memchr::memmem::find(body, b"\"thinking_blocks\"").is_none() {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        if let Some(message) = first_choice(&v).and_then(|c| c.get("message")) {
            gather(message, &mut self.ids, &mut self.blocks);
        }
    }

    /// What to keep: `(tool-call id, thinking_blocks JSON array)` for each call of an answer
    /// that carried state beside tool calls; empty otherwise. Takes it (once).
    pub fn take(&mut self) -> Vec<(String, Bytes)> {
        let ids = std::mem::take(&mut self.ids);
        let blocks = std::mem::take(&mut self.blocks);
        if ids.is_empty() || blocks.is_empty() {
            return Vec::new();
        }
        let array = Bytes::from(serde_json::to_vec(&Value::Array(blocks)).unwrap_or_default());
        ids.into_iter()
            .filter(|id| vendor_state::valid_call_id(id))
            .map(|id| (id, array.clone()))
            .collect()
    }
}

fn first_choice(v: &Value) -> Option<&Value> {
    v.get("choices")?
        .as_array()?
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
}

/// A message's or a delta's tool-call ids and thinking blocks, added to what was gathered.
fn gather(m: &Value, ids: &mut Vec<String>, blocks: &mut Vec<Value>) {
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for id in calls
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str))
        {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
    }
    if let Some(found) = m.get("thinking_blocks").and_then(Value::as_array) {
        blocks.extend(found.iter().cloned());
    }
}

/// Whether an assistant message has no `thinking_blocks` of its own (absent, null or empty).
fn lacks_blocks(m: &Map<String, Value>) -> bool {
    match m.get("thinking_blocks") {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// The assistant messages of a chat body that have tool calls and no `thinking_blocks`,
/// latest last, each with its calls' ids (only ids every vendor takes).
fn bare_calls(messages: &[Value]) -> impl Iterator<Item = (usize, Vec<&str>)> {
    messages.iter().enumerate().filter_map(|(i, m)| {
        let m = m.as_object()?;
        if m.get("role").and_then(Value::as_str) != Some("assistant") || !lacks_blocks(m) {
            return None;
        }
        let ids: Vec<&str> = m
            .get("tool_calls")?
            .as_array()?
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str))
            .filter(|id| vendor_state::valid_call_id(id))
            .collect();
        (!ids.is_empty()).then_some((i, ids))
    })
}

/// The tool-call ids whose state a chat body could use: those of assistant messages with tool
/// calls and no `thinking_blocks`, at most [`MAX_LOOKUPS`] (the latest). Empty when there are
/// none (most requests: one cheap scan, no parse, when the body names no tool calls).
pub fn wanted(body: &[u8]) -> Vec<String> {
    if memchr::memmem::find(body, b"\"tool_calls\"").is_none() {
        return Vec::new();
    }
    // Borrowed: the messages' content is skipped, not built (this runs before routing on
    // every chat request with a tool history).
    #[derive(serde::Deserialize)]
    struct Light<'a> {
        #[serde(borrow)]
        messages: Vec<Message<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        role: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        tool_calls: Option<Vec<Call<'a>>>,
        #[serde(borrow, default)]
        thinking_blocks: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Call<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
    }
    let Ok(light) = serde_json::from_slice::<Light<'_>>(body) else {
        return Vec::new();
    };
    // No blocks: absent, `null` or an empty array (as [`lacks_blocks`] reads them).
    let bare = |b: Option<&RawValue>| {
        b.is_none_or(|b| {
            let t: String = b.get().chars().filter(|c| !c.is_whitespace()).collect();
            t == "null" || t == "[]"
        })
    };
    let mut ids: Vec<String> = light
        .messages
        .into_iter()
        .filter(|m| m.role.as_deref() == Some("assistant") && bare(m.thinking_blocks))
        .flat_map(|m| m.tool_calls.unwrap_or_default())
        .filter_map(|c| c.id)
        .filter(|id| vendor_state::valid_call_id(id))
        .map(Cow::into_owned)
        .collect();
    let skip = ids.len().saturating_sub(MAX_LOOKUPS);
    ids.drain(..skip);
    ids
}

/// The chat body with each assistant message that has tool calls and no `thinking_blocks`
/// given the blocks `found` holds for its first call that has some (a JSON array, as
/// [`Collector::take`] made it); `None` when nothing was spliced.
pub fn splice(body: &[u8], found: &HashMap<String, Bytes>) -> Option<Bytes> {
    if found.is_empty() {
        return None;
    }
    let mut whole: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let messages = whole.get("messages")?.as_array()?;
    let mut patches: Vec<(usize, Value)> = Vec::new();
    for (i, ids) in bare_calls(messages) {
        let blocks = ids
            .iter()
            .filter_map(|id| found.get(*id))
            .find_map(|b| serde_json::from_slice::<Value>(b).ok())
            .filter(|b| b.as_array().is_some_and(|a| !a.is_empty()));
        if let Some(blocks) = blocks {
            patches.push((i, blocks));
        }
    }
    if patches.is_empty() {
        return None;
    }
    let messages = whole.get_mut("messages")?.as_array_mut()?;
    for (i, blocks) in patches {
        if let Some(m) = messages.get_mut(i).and_then(Value::as_object_mut) {
            m.insert("thinking_blocks".into(), blocks);
        }
    }
    serde_json::to_vec(&whole).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_streamed_answer_cut_anywhere_gives_its_calls_state() {
        let sig = json!([{"type":"thinking","thinking":"","signature":"gemini:call_1:U0lH"}]);
        let stream = format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1",
                "type":"function","function":{"name":"f","arguments":"{}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"thinking_blocks": sig}}]}),
        );
        for cut in 0..stream.len() {
            let mut c = Collector::default();
            c.feed(&stream.as_bytes()[..cut]);
            c.feed(&stream.as_bytes()[cut..]);
            let kept = c.take();
            assert_eq!(kept.len(), 1, "cut at {cut}");
            assert_eq!(kept[0].0, "call_1");
            assert_eq!(serde_json::from_slice::<Value>(&kept[0].1).unwrap(), sig);
        }
        // Without tool calls, or without blocks: nothing.
        let mut c = Collector::default();
        c.whole(br#"{"choices":[{"index":0,"message":{"thinking_blocks":[{"type":"x"}]}}]}"#);
        assert!(c.take().is_empty());
    }

    #[test]
    fn state_goes_back_where_the_client_dropped_it() {
        let body = json!({"model":"m","messages":[
            {"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"42"},
            {"role":"assistant","tool_calls":[{"id":"call_2","type":"function",
                "function":{"name":"f","arguments":"{}"}}],
                "thinking_blocks":[{"type":"thinking","thinking":"own","signature":"s"}]},
            {"role":"assistant","tool_calls":[{"id":"functions.f:0","type":"function",
                "function":{"name":"f","arguments":"{}"}}]}]});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(wanted(&bytes), ["call_1"]);
        assert!(wanted(br#"{"messages":[{"role":"user","content":"hi"}]}"#).is_empty());
        let blocks = json!([{"type":"thinking","thinking":"t","signature":"sig"}]);
        let found = HashMap::from([("call_1".to_string(), Bytes::from(blocks.to_string()))]);
        let out: Value = serde_json::from_slice(&splice(&bytes, &found).unwrap()).unwrap();
        assert_eq!(out["messages"][1]["thinking_blocks"], blocks);
        assert_eq!(out["messages"][3]["thinking_blocks"][0]["thinking"], "own");
        assert!(out["messages"][4].get("thinking_blocks").is_none());
        assert!(splice(&bytes, &HashMap::new()).is_none());
    }
}
