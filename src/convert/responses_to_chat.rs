//! The Responses front door (`POST /v1/responses`) on vendors that do not serve the Responses
//! API (`anthropic`, `gemini`, chat-only OpenAI-compatible servers, the built-in mock): a
//! Responses request becomes a chat-completions request (the pivot, which then goes on like
//! any chat request), and the chat answer or stream becomes a `response` object or the
//! Responses event stream.
//!
//! Request mapping ([`request`]): `instructions` → a leading `system` message;
//! `input` as a string → one user message; input items: messages (`user`, `assistant`,
//! `system`, `developer` → `system`) with a string content or `input_text`/`output_text`/
//! `refusal` parts → text, `input_image` (`image_url`, `detail`) → `image_url` parts;
//! `function_call` → an assistant message's `tool_calls` (consecutive calls in one message);
//! `function_call_output` → a `tool` message (an `output` array with `input_image` parts →
//! text and image parts, which each vendor's contract carries or refuses naming the vendor,
//! never drops); `reasoning` items whose `encrypted_content` the gateway handed out → the
//! next assistant message's `thinking_blocks` (`super::vendor_state`), any other (OpenAI's
//! own) left out. `tools`: function tools → chat function tools; `namespace` tools →
//! function tools with flattened names, mapped back in the answer; a hosted `web_search` →
//! `web_search_options` (each vendor leg maps it to its own search or leaves it out); other
//! hosted tools are left out of the offer and named in `x-switchyard-adjusted`
//! ([`super::hosted_tools`]); `tool_choice`
//! `auto`/`none`/`required`/`{"type":"function","name"}`; `max_output_tokens` → `max_tokens`;
//! `temperature`, `top_p`, `parallel_tool_calls`, `user`, `safety_identifier`, `stream` kept; `reasoning.effort` →
//! `reasoning_effort`; `text.format` `json_schema` → `response_format` `json_schema`,
//! `json_object` → `json_object`. Dropped: `store`, `metadata`, `include`, `truncation`,
//! `service_tier`, `prompt_cache_key`, `reasoning.summary`, and any other
//! field. A 400 names what a chat vendor cannot carry: `input_file` parts, images by `file_id`, other
//! input item types, `previous_response_id`, `conversation`, `prompt` and `background`.
//!
//! Answers: the first choice's `content` → a `message` item with one `output_text` part
//! (`refusal` → a `refusal` part), `tool_calls` → `function_call` items; `finish_reason`
//! `length` → `status: "incomplete"` with `incomplete_details.reason: "max_output_tokens"`,
//! `content_filter` → `incomplete` with `content_filter` (a stream ends with
//! `response.incomplete`), anything else → `completed`; usage →
//! `input_tokens` (`input_tokens_details.cached_tokens`), `output_tokens`
//! (`output_tokens_details.reasoning_tokens`), `total_tokens`. `thinking_blocks` → `reasoning`
//! items first (the thinking as `summary`, the block as `encrypted_content`, which the client
//! sees only when `include` asks for `reasoning.encrypted_content` and the store always
//! keeps); the streamed reasoning text is left out.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::dialect::chat::wire::{CompletionIn, ThinkingBlock, ToolDeltaIn};

use crate::accounting::usage::Usage;
use crate::dialect::adjusted::Adjustments;
use crate::error::GatewayError;

use super::errors::unreadable;
use super::hosted_tools::{self, Namespaced};
use super::translate::{chat_event, ChatEvent, End, EventState, Translated, Translating};
use super::vendor_state;

const VENDOR: &str = "openai";

fn invalid(what: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest(what.into())
}

// ---------------------------------------------------------------------------------------------
// Request: Responses in, chat out.

/// Fields that a chat vendor cannot honour and that change what the client gets: a 400.
const REFUSED_FIELDS: &[(&str, &str)] = &[
    (
        "conversation",
        "conversations are not stored for this route's provider",
    ),
    ("prompt", "stored prompts are OpenAI's own"),
];

/// A Responses request body as a chat-completions body, noting in `adjusted` what it left
/// out: hosted tools the pivot has no slot for ([`super::hosted_tools`]), and a `reasoning`
/// item's `encrypted_content` that is no vendor's the gateway translates to (OpenAI's own,
/// from a native route), `thinking_signature`.
pub fn request(body: &[u8], adjusted: &mut Adjustments) -> Result<Bytes, GatewayError> {
    let req: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the request body is not a JSON object: {e}")))?;
    let given = |name: &str| req.get(name).filter(|v| !v.is_null());
    // The gateway's own ids were expanded before routing (`crate::response_store`); any
    // other is a vendor's, which this route's vendor does not know.
    if let Some(id) = given("previous_response_id") {
        let id: String = id.as_str().unwrap_or("?").chars().take(128).collect();
        return Err(GatewayError::NotFound(format!(
            "Previous response with id '{id}' not found (`previous_response_id`): this route's provider keeps no responses, and the gateway did not store it"
        )));
    }
    for (field, why) in REFUSED_FIELDS {
        if given(field).is_some() {
            return Err(invalid(format!("`{field}` is not supported here: {why}")));
        }
    }
    if given("background") == Some(&Value::Bool(true)) {
        return Err(invalid(
            "`background` responses are not supported for this route's provider",
        ));
    }
    let mut out = Map::new();
    out.insert(
        "model".into(),
        req.get("model").cloned().unwrap_or_default(),
    );
    let mut messages = Vec::new();
    if let Some(instructions) = given("instructions") {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match given("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            let mut reasoning = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if item.get("type").and_then(Value::as_str) == Some("reasoning") {
                    let block = reasoning_block(item);
                    if block.is_none()
                        && item.get("encrypted_content").is_some_and(Value::is_string)
                    {
                        adjusted.note(vendor_state::DROPPED);
                    }
                    reasoning.extend(block);
                    continue;
                }
                input_item(i, item, &mut messages)?;
                attach_reasoning(&mut reasoning, &mut messages);
            }
        }
        _ => return Err(invalid("`input` is required")),
    }
    out.insert("messages".into(), Value::Array(messages));
    let offer = match given("tools") {
        Some(tools) => tools_to_chat(tools, adjusted)?,
        None => Offer::default(),
    };
    let has_tools = !offer.functions.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(offer.functions));
    }
    if let Some(options) = offer.web_search {
        out.insert("web_search_options".into(), options);
    }
    if let Some(choice) = given("tool_choice") {
        let choice = tool_choice_to_chat(choice)?;
        // Chat vendors refuse a `tool_choice` without `tools`: when every tool offered was
        // left out, so is the choice (an adjustment unless it was `auto`/`none`).
        if has_tools || given("tools").is_none() {
            out.insert("tool_choice".into(), choice);
        } else if !matches!(choice.as_str(), Some("auto" | "none")) {
            adjusted.note("tool_choice");
        }
    }
    if let Some(n) = given("max_output_tokens") {
        out.insert("max_tokens".into(), n.clone());
    }
    for name in [
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "stream",
    ] {
        if let Some(v) = given(name) {
            out.insert(name.into(), v.clone());
        }
    }
    if let Some(effort) = given("reasoning").and_then(|r| r.get("effort")) {
        if !effort.is_null() {
            out.insert("reasoning_effort".into(), effort.clone());
        }
    }
    if let Some(format) = given("text").and_then(|t| t.get("format")) {
        if let Some(f) = format_to_chat(format)? {
            out.insert("response_format".into(), f);
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&out).unwrap_or_default()))
}

/// A `reasoning` item as the pivot's thinking block, when its `encrypted_content` is a
/// vendor's the gateway handed out (`super::vendor_state`); any other (OpenAI's own, or none)
/// is left out: no vendor here could check it.
fn reasoning_block(item: &Value) -> Option<Value> {
    let encrypted = item.get("encrypted_content").and_then(Value::as_str)?;
    let text: String = item
        .get("summary")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let block = vendor_state::from_encrypted(encrypted, text)?;
    serde_json::to_value(block).ok()
}

/// Reasoning items go with the assistant turn that follows them (the turn they reasoned
/// for): once one is there, it gets them as `thinking_blocks`.
fn attach_reasoning(reasoning: &mut Vec<Value>, messages: &mut [Value]) {
    if reasoning.is_empty() {
        return;
    }
    let Some(m) = messages.last_mut().filter(|m| m["role"] == "assistant") else {
        return;
    };
    if !m.get("thinking_blocks").is_some_and(Value::is_array) {
        m["thinking_blocks"] = json!([]);
    }
    if let Some(blocks) = m["thinking_blocks"].as_array_mut() {
        blocks.append(reasoning);
    }
}

/// One input item, appended to the chat messages.
fn input_item(i: usize, item: &Value, messages: &mut Vec<Value>) -> Result<(), GatewayError> {
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        None | Some("message") => messages.push(message_to_chat(i, item)?),
        Some("function_call") => {
            // A call of a namespace's function goes by its flattened name, as offered.
            let name = match (
                item.get("namespace").and_then(Value::as_str),
                item.get("name").and_then(Value::as_str),
            ) {
                (Some(namespace), Some(name)) => json!(hosted_tools::flat_name(namespace, name)),
                _ => item.get("name").cloned().unwrap_or_default(),
            };
            let call = json!({
                "id": item.get("call_id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!("{}")),
                },
            });
            // Consecutive calls, and the text before them (a replayed answer), are one
            // assistant turn.
            let last = messages.last_mut().filter(|m| m["role"] == "assistant");
            match last {
                Some(m) => {
                    if !m.get("tool_calls").is_some_and(Value::is_array) {
                        m["tool_calls"] = json!([]);
                    }
                    if let Some(calls) = m["tool_calls"].as_array_mut() {
                        calls.push(call);
                    }
                }
                None => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        Some("function_call_output") => {
            let output = match item.get("output") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) => tool_output(i, parts)?,
                _ => {
                    return Err(invalid(format!(
                        "`input[{i}].output` must be a string or an array of content parts"
                    )))
                }
            };
            messages.push(json!({
                "role": "tool",
                "tool_call_id": item.get("call_id").cloned().unwrap_or_default(),
                "content": output,
            }));
        }
        // The gateway's own references were resolved before routing
        // (`crate::response_store::expand`); any other names an item nobody here stored.
        Some("item_reference") => {
            let id = item.get("id").and_then(Value::as_str).unwrap_or("?");
            let id: String = id.chars().take(128).collect();
            return Err(GatewayError::InvalidParam {
                message: format!(
                    "Item with id '{id}' not found (`input[{i}].id`): the gateway did not store it, and this route's provider keeps no items"
                ),
                param: format!("input[{i}].id"),
            });
        }
        Some(other) => {
            return Err(invalid(format!(
                "`input[{i}]` of type `{other}` is not supported for this route's provider"
            )))
        }
    }
    Ok(())
}

/// A `function_call_output`'s parts as a `tool` message's content: their text joined, or,
/// with images, text and `image_url` parts (each vendor's contract takes an image in a tool
/// result or refuses the request; it is never dropped). Other parts are a 400
/// ([`crate::contract::openai_responses::tool_output_part`]).
fn tool_output(i: usize, parts: &[Value]) -> Result<Value, GatewayError> {
    let mut images = false;
    for (j, p) in parts.iter().enumerate() {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
        images |= !crate::contract::openai_responses::tool_output_part(i, j, kind)?;
    }
    if !images {
        return Ok(Value::String(parts_text(parts)));
    }
    parts
        .iter()
        .enumerate()
        .map(|(j, p)| part_to_chat(i, j, p))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The text of `input_text`/`output_text` parts, joined.
fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message item as a chat message.
fn message_to_chat(i: usize, item: &Value) -> Result<Value, GatewayError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("developer") | Some("system") => "system",
        Some("user") => "user",
        Some("assistant") => "assistant",
        _ => {
            return Err(invalid(format!(
                "`input[{i}].role` must be `user`, `assistant`, `system` or `developer`"
            )))
        }
    };
    let content = match item.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) if role == "user" => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                out.push(part_to_chat(i, j, part)?);
            }
            Value::Array(out)
        }
        // System and assistant turns take text.
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if part.get("text").and_then(Value::as_str).is_none()
                    && part.get("refusal").is_none()
                {
                    return Err(invalid(format!(
                        "`input[{i}].content[{j}]` must be a text part in a {role} message"
                    )));
                }
            }
            let text: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").or(p.get("refusal")).and_then(Value::as_str))
                .collect();
            Value::String(text.join("\n"))
        }
        _ => {
            return Err(invalid(format!(
                "`input[{i}].content` must be a string or an array of content parts"
            )))
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// A user message's content part as a chat content part.
fn part_to_chat(i: usize, j: usize, part: &Value) -> Result<Value, GatewayError> {
    let at = || format!("`input[{i}].content[{j}]`");
    match part.get("type").and_then(Value::as_str) {
        Some("input_text") | Some("output_text") => Ok(json!({
            "type": "text",
            "text": part.get("text").and_then(Value::as_str).unwrap_or_default(),
        })),
        Some("input_image") => {
            let Some(url) = part.get("image_url").and_then(Value::as_str) else {
                return Err(invalid(format!(
                    "{}: images by `file_id` are not supported for this route's provider; send `image_url`",
                    at()
                )));
            };
            let mut image = json!({"url": url});
            if let Some(detail) = part.get("detail").filter(|d| !d.is_null()) {
                image["detail"] = detail.clone();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some(other) => Err(invalid(format!(
            "{} of type `{other}` is not supported for this route's provider",
            at()
        ))),
        None => Err(invalid(format!("{} needs a `type`", at()))),
    }
}

/// The client's tools as the chat pivot offers them.
#[derive(Default)]
struct Offer {
    /// Chat function tools: the client's functions, and the functions of its `namespace`
    /// tools under flattened names.
    functions: Vec<Value>,
    /// A hosted web search, as chat's `web_search_options` (each vendor leg maps it or
    /// leaves it out).
    web_search: Option<Value>,
}

/// Function tools as chat tools, `namespace` tools flattened, a hosted web search as
/// `web_search_options`; every other hosted tool is left out and noted
/// ([`super::hosted_tools`]).
fn tools_to_chat(tools: &Value, adjusted: &mut Adjustments) -> Result<Offer, GatewayError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("`tools` must be an array"))?;
    let mut offer = Offer::default();
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let mut function = Map::new();
                for name in ["name", "description", "parameters", "strict"] {
                    if let Some(v) = tool.get(name).filter(|v| !v.is_null()) {
                        function.insert(name.into(), v.clone());
                    }
                }
                offer
                    .functions
                    .push(json!({"type": "function", "function": function}));
            }
            Some("namespace") => {
                hosted_tools::namespace_to_chat(i, tool, &mut offer.functions, adjusted)
                    .map_err(invalid)?;
            }
            Some(kind) if hosted_tools::is_web_search(kind) => {
                offer.web_search = Some(hosted_tools::web_search_options(tool));
            }
            Some(other) => adjusted.note(hosted_tools::left_out(other)),
            None => return Err(invalid(format!("`tools[{i}]` needs a `type`"))),
        }
    }
    Ok(offer)
}

fn tool_choice_to_chat(choice: &Value) -> Result<Value, GatewayError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`tool_choice.name` is required"))?;
            // A namespace's function goes by its flattened name, as offered.
            let name = match o.get("namespace").and_then(Value::as_str) {
                Some(namespace) => hosted_tools::flat_name(namespace, name),
                None => name.to_string(),
            };
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid(
            "`tool_choice` must be `auto`, `none`, `required` or a function tool on this route",
        )),
    }
}

/// `text.format` as `response_format` (`None` for plain text).
fn format_to_chat(format: &Value) -> Result<Option<Value>, GatewayError> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for name in ["name", "description", "schema", "strict"] {
                if let Some(v) = format.get(name).filter(|v| !v.is_null()) {
                    schema.insert(name.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(invalid(format!(
            "`text.format.type` `{other}` is not supported; use `text`, `json_object` or `json_schema`"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers: chat in, Responses out.

/// The Responses `usage` object.
fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    })
}

/// The response's status and `incomplete_details` for a chat finish reason.
fn status_of(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The ids of a translated response and its items, derived from the chat answer's id.
fn response_id(chat_id: &str) -> String {
    format!("resp_{}", chat_id.trim_start_matches("chatcmpl-"))
}

/// Who a translated response is: the id the gateway minted for it (`None`: derived from the
/// chat answer's id) and the state fields its object echoes.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub id: Option<String>,
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// The flattened names of the request's `namespace` tools, to name calls as offered.
    pub tools: Namespaced,
    /// The client asked `include: ["reasoning.encrypted_content"]`: its `reasoning` items
    /// carry their `encrypted_content` (the stored response always does, so that
    /// `previous_response_id` carries the vendor's reasoning state on).
    pub include_encrypted: bool,
}

/// What `include` asks for a `reasoning` item's `encrypted_content`.
pub const INCLUDE_ENCRYPTED: &str = "reasoning.encrypted_content";

/// `output` as the client sees it: without `encrypted_content` unless it asked for it.
fn client_output(ident: &Identity, output: &[Value]) -> Vec<Value> {
    output
        .iter()
        .map(|item| {
            let mut item = item.clone();
            if !ident.include_encrypted {
                if let Some(o) = item.as_object_mut() {
                    o.remove("encrypted_content");
                }
            }
            item
        })
        .collect()
}

/// A whole translated `response` (as [`answer`] makes it, for the store) as the client gets
/// it ([`client_output`]).
pub fn client_view(ident: &Identity, stored: &Bytes) -> Bytes {
    if ident.include_encrypted || memchr::memmem::find(stored, b"encrypted_content").is_none() {
        return stored.clone();
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(stored) else {
        return stored.clone();
    };
    if let Some(output) = v.get("output").and_then(Value::as_array) {
        v["output"] = Value::Array(client_output(ident, output));
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// A `reasoning` item for a vendor's reasoning block: its text as the summary, the block as
/// `encrypted_content` (`super::vendor_state::to_encrypted`).
fn reasoning_item(id: &str, block: &ThinkingBlock<'_>) -> Value {
    let summary = match block {
        ThinkingBlock::Thinking { thinking, .. } if !thinking.is_empty() => {
            json!([{"type": "summary_text", "text": thinking}])
        }
        _ => json!([]),
    };
    json!({"id": id, "type": "reasoning", "summary": summary,
           "encrypted_content": vendor_state::to_encrypted(block)})
}

impl Identity {
    fn id_or(&self, chat_id: Option<&str>) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => response_id(chat_id.unwrap_or("gateway")),
        }
    }
}

/// A `response` object around `output`.
#[allow(clippy::too_many_arguments)]
fn response_object(
    ident: &Identity,
    id: &str,
    created: u64,
    model: &str,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": ident.previous_response_id,
        "store": ident.store,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
        "metadata": {},
    })
}

fn message_item(id: &str, status: &str, parts: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": parts})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

/// A `function_call` item; a namespace's function (by its flattened name, `names`) goes by
/// its own name and its `namespace`, as the client offered it ([`super::hosted_tools`]).
fn call_item(
    names: &Namespaced,
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
) -> Value {
    let mut item = json!({"id": id, "type": "function_call", "status": status,
                          "call_id": call_id, "name": name, "arguments": arguments});
    if let Some((namespace, own)) = names.lookup(name) {
        item["name"] = json!(own);
        item["namespace"] = json!(namespace);
    }
    item
}

/// A `chat.completion` as a Responses `response` object (its first choice), of the given
/// identity.
pub fn answer(
    body: &[u8],
    model_hint: &str,
    created: u64,
    ident: &Identity,
) -> Result<Translated, GatewayError> {
    let c: CompletionIn<'_> =
        serde_json::from_slice(body).map_err(|e| unreadable(VENDOR, "an answer", e))?;
    let id = ident.id_or(c.id.as_deref());
    let choice = c.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|ch| ch.finish_reason.clone());
    let mut output = Vec::new();
    if let Some(m) = choice.and_then(|ch| ch.message) {
        for block in m.thinking_blocks.iter().flatten() {
            output.push(reasoning_item(&format!("rs_{id}_{}", output.len()), block));
        }
        let part = match (m.content.filter(|t| !t.is_empty()), m.refusal) {
            (Some(text), _) => Some(text_part(&text)),
            (None, Some(refusal)) => Some(json!({"type": "refusal", "refusal": refusal})),
            (None, None) => None,
        };
        // Item ids as the stream names them: the kind, the response id, the output index.
        if let Some(part) = part {
            output.push(message_item(
                &format!("msg_{id}_{}", output.len()),
                "completed",
                vec![part],
            ));
        }
        for call in m.tool_calls.iter().flatten() {
            output.push(call_item(
                &ident.tools,
                &format!("fc_{id}_{}", output.len()),
                "completed",
                &call.id,
                &call.function.name,
                &call.function.arguments,
            ));
        }
    }
    let (status, incomplete) = status_of(finish.as_deref());
    let model = c.model.as_deref().unwrap_or(model_hint);
    let created = c.created.unwrap_or(created);
    let body = response_object(
        ident,
        &id,
        created,
        model,
        status,
        incomplete,
        output,
        c.usage.as_ref(),
    );
    Ok(Translated {
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        usage: c.usage,
        finish_reason: status,
    })
}

// ---------------------------------------------------------------------------------------------
// Streams: chat chunks in, Responses events out.

/// Translates a chat chunk stream (asked with `include_usage`) into the Responses semantic
/// events: `response.created` and `response.in_progress` at the first chunk; for text
/// `response.output_item.added` (a `message`), `response.content_part.added`,
/// `response.output_text.delta`… then `response.output_text.done`,
/// `response.content_part.done`, `response.output_item.done`; for each tool call
/// `response.output_item.added` (a `function_call`), `response.function_call_arguments.delta`…
/// then `.done` and `response.output_item.done`; at `[DONE]` `response.completed` (or
/// `response.incomplete`) with the whole response and its usage. An error chunk, or a stream
/// cut short, becomes an `error` event. Only the first choice is translated.
pub type Stream = Translating<StreamState>;

/// The output item being streamed.
#[derive(Debug)]
enum Item {
    Message {
        text: String,
    },
    Call {
        index: u32,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// What a [`Stream`] keeps between events.
#[derive(Debug, Default)]
pub struct StreamState {
    ident: Identity,
    model: String,
    created: u64,
    id: String,
    started: bool,
    sequence: u64,
    /// The finished output items, in order.
    done_items: Vec<Value>,
    open: Option<Item>,
    finish: Option<String>,
    usage: Option<Usage>,
    content: bool,
    end: End,
}

impl Stream {
    /// `model_hint` names the model until the upstream's first chunk does. The gateway always
    /// knows the response's identity ([`Stream::with_identity`]); tests need none.
    #[cfg(test)]
    pub fn new(model_hint: &str, created: u64) -> Self {
        Self::with_identity(model_hint, created, Identity::default())
    }

    /// A stream whose response has the given identity.
    pub fn with_identity(model_hint: &str, created: u64, ident: Identity) -> Self {
        Translating::over(StreamState {
            ident,
            model: model_hint.to_string(),
            created,
            ..StreamState::default()
        })
    }
}

impl StreamState {
    /// An error object in place of a chunk: the stream fails with its message.
    fn upstream_error(&mut self, err: &serde_json::value::RawValue, out: &mut Vec<u8>) {
        let err: Value = serde_json::from_str(err.get()).unwrap_or_default();
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the upstream stream failed");
        self.fail(&GatewayError::Upstream(message.to_string()), out);
    }
}

impl EventState for StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let chunk = match chat_event(data) {
            ChatEvent::Nothing => return,
            ChatEvent::Done => return self.last(out),
            ChatEvent::Unreadable(e) => {
                return self.fail(&unreadable(VENDOR, "a stream event", e), out)
            }
            ChatEvent::Error(err) => return self.upstream_error(err, out),
            ChatEvent::Chunk(chunk) => chunk,
        };
        self.begin(chunk.id.as_deref(), chunk.model.as_deref(), out);
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                for block in delta.thinking_blocks.iter().flatten() {
                    self.reasoning(block, out);
                }
                for text in [delta.content, delta.refusal].into_iter().flatten() {
                    self.text(&text, out);
                }
                for call in delta.tool_calls.into_iter().flatten() {
                    self.tool(call, out);
                }
            }
            if let Some(f) = choice.finish_reason {
                self.finish = Some(f.into_owned());
            }
        }
    }

    /// The body ended without `[DONE]`: complete if a finish reason came, else cut.
    fn at_eof(&mut self, out: &mut Vec<u8>) {
        if self.finish.is_some() {
            return self.last(out);
        }
        self.fail(
            &GatewayError::Upstream(
                "the upstream stream ended before the answer was complete".into(),
            ),
            out,
        );
    }

    fn end(&self) -> End {
        self.end
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn has_content(&self) -> bool {
        self.content
    }

    fn completed_response(&self) -> Option<Value> {
        if self.end != End::Done {
            return None;
        }
        let (status, incomplete) = status_of(self.finish.as_deref());
        Some(self.response(status, incomplete))
    }
}

impl StreamState {
    /// Writes one event, its `type` and `sequence_number` added.
    fn push(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&serde_json::to_vec(&data).unwrap_or_default());
        out.extend_from_slice(b"\n\n");
    }

    /// The response as stored (every item whole).
    fn response(&self, status: &str, incomplete: Value) -> Value {
        self.response_of(status, incomplete, self.done_items.clone())
    }

    /// The response as the client sees it ([`client_output`]).
    fn client_response(&self, status: &str, incomplete: Value) -> Value {
        let output = client_output(&self.ident, &self.done_items);
        self.response_of(status, incomplete, output)
    }

    fn response_of(&self, status: &str, incomplete: Value, output: Vec<Value>) -> Value {
        response_object(
            &self.ident,
            &self.id,
            self.created,
            &self.model,
            status,
            incomplete,
            output,
            self.usage.as_ref(),
        )
    }

    /// A whole reasoning block as a `reasoning` item: added and done at once.
    fn reasoning(&mut self, block: &ThinkingBlock<'_>, out: &mut Vec<u8>) {
        self.close(out);
        let index = self.output_index();
        let item = reasoning_item(&format!("rs_{}_{index}", self.id), block);
        let shown = client_output(&self.ident, std::slice::from_ref(&item));
        let mut added = shown.first().cloned().unwrap_or_default();
        added["summary"] = json!([]);
        self.push(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        self.push(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": shown.first().cloned().unwrap_or_default()}),
        );
        self.done_items.push(item);
        self.content = true;
    }

    fn begin(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        self.id = self.ident.id_or(id);
        if let Some(m) = model {
            self.model = m.to_string();
        }
        let r = self.response("in_progress", Value::Null);
        self.push(out, "response.created", json!({"response": r}));
        self.push(out, "response.in_progress", json!({"response": r}));
    }

    fn output_index(&self) -> usize {
        self.done_items.len()
    }

    fn item_id(&self) -> String {
        match &self.open {
            Some(Item::Call { .. }) => format!("fc_{}_{}", self.id, self.output_index()),
            _ => format!("msg_{}_{}", self.id, self.output_index()),
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Item::Message { .. })) {
            self.close(out);
            self.open = Some(Item::Message {
                text: String::new(),
            });
            let (id, index) = (self.item_id(), self.output_index());
            let item = message_item(&id, "in_progress", vec![]);
            self.push(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.push(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                       "part": text_part("")}),
            );
        }
        if let Some(Item::Message { text: all }) = &mut self.open {
            all.push_str(text);
        }
        self.content = true;
        let (id, index) = (self.item_id(), self.output_index());
        self.push(
            out,
            "response.output_text.delta",
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text,
                   "logprobs": []}),
        );
    }

    fn tool(&mut self, call: ToolDeltaIn<'_>, out: &mut Vec<u8>) {
        let (name, arguments) = call
            .function
            .map_or((None, None), |f| (f.name, f.arguments));
        let same = matches!(&self.open, Some(Item::Call { index, .. }) if *index == call.index);
        if !same {
            self.close(out);
            self.open = Some(Item::Call {
                index: call.index,
                call_id: call.id.map(Cow::into_owned).unwrap_or_default(),
                name: name.map(Cow::into_owned).unwrap_or_default(),
                arguments: String::new(),
            });
            self.content = true;
            let (id, index) = (self.item_id(), self.output_index());
            if let Some(Item::Call { call_id, name, .. }) = &self.open {
                let item = call_item(&self.ident.tools, &id, "in_progress", call_id, name, "");
                self.push(
                    out,
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                );
            }
        }
        let Some(fragment) = arguments.filter(|a| !a.is_empty()) else {
            return;
        };
        if let Some(Item::Call { arguments, .. }) = &mut self.open {
            arguments.push_str(&fragment);
        }
        let (id, index) = (self.item_id(), self.output_index());
        self.push(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": fragment}),
        );
    }

    /// Finishes the open item: its `.done` events, then it joins the output.
    fn close(&mut self, out: &mut Vec<u8>) {
        let (id, index) = (self.item_id(), self.output_index());
        let item = match self.open.take() {
            None => return,
            Some(Item::Message { text }) => {
                self.push(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "text": text, "logprobs": []}),
                );
                self.push(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": text_part(&text)}),
                );
                message_item(&id, "completed", vec![text_part(&text)])
            }
            Some(Item::Call {
                call_id,
                name,
                arguments,
                ..
            }) => {
                let item = call_item(
                    &self.ident.tools,
                    &id,
                    "completed",
                    &call_id,
                    &name,
                    &arguments,
                );
                self.push(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": item["name"],
                           "arguments": arguments}),
                );
                item
            }
        };
        self.push(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.done_items.push(item);
    }

    /// `response.completed` (or `.incomplete`) with the whole response.
    fn last(&mut self, out: &mut Vec<u8>) {
        self.begin(None, None, out);
        self.close(out);
        let (status, incomplete) = status_of(self.finish.as_deref());
        let r = self.client_response(status, incomplete);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.push(out, kind, json!({"response": r}));
        self.end = End::Done;
    }

    fn fail(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        out.extend_from_slice(&crate::dialect::responses::error_event(err));
        self.end = End::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::translate::tests::{events_of, same_at_every_cut};
    use crate::convert::translate::SseTranslator;

    const STREAM_TEXT: &str = include_str!("../../tests/fixtures/openai/stream_text.sse");
    const STREAM_TOOLS: &str = include_str!("../../tests/fixtures/openai/stream_tool_calls.sse");
    const STREAM_ERROR: &str = include_str!("../../tests/fixtures/openai/stream_error.sse");
    const COMPLETION_TOOLS: &str =
        include_str!("../../tests/fixtures/openai/completion_tool_calls.json");

    fn chat(body: &str) -> Value {
        chat_adjusted(body).0
    }

    fn chat_adjusted(body: &str) -> (Value, Adjustments) {
        let mut adjusted = Adjustments::default();
        let body = request(body.as_bytes(), &mut adjusted).unwrap();
        (serde_json::from_slice(&body).unwrap(), adjusted)
    }

    fn refused(body: &str) -> String {
        let e = request(body.as_bytes(), &mut Adjustments::default()).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        e.to_string()
    }

    #[test]
    fn request_items_tools_and_options() {
        let v = chat(
            r#"{"model":"m","instructions":"Be brief.","stream":true,"max_output_tokens":50,
            "temperature":0.2,"top_p":0.9,"store":true,"metadata":{"a":"b"},
            "reasoning":{"effort":"low","summary":"auto"},
            "text":{"format":{"type":"json_schema","name":"w","schema":{"type":"object"},"strict":true}},
            "tools":[{"type":"function","name":"get_weather","description":"d","parameters":{"type":"object"},"strict":true}],
            "tool_choice":{"type":"function","name":"get_weather"},
            "input":[
              {"role":"developer","content":"Use tools."},
              {"type":"message","role":"user","content":[{"type":"input_text","text":"Weather?"},
                {"type":"input_image","image_url":"https://x/y.png","detail":"low"}]},
              {"type":"reasoning","id":"rs_1","summary":[]},
              {"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
              {"type":"function_call","call_id":"c2","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
              {"type":"function_call_output","call_id":"c1","output":"sunny"},
              {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"rain"}]},
              {"role":"assistant","content":[{"type":"output_text","text":"Sunny and rain."}]}]}"#,
        );
        assert_eq!(
            v,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "system", "content": "Use tools."},
                    {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                    {"role": "tool", "tool_call_id": "c2", "content": "rain"},
                    {"role": "assistant", "content": "Sunny and rain."}],
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}, "strict": true}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "max_tokens": 50,
                "temperature": 0.2,
                "top_p": 0.9,
                "stream": true,
                "reasoning_effort": "low",
                "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
            })
        );
        let v = chat(r#"{"model":"m","input":"hi","tool_choice":"required"}"#);
        assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(v["tool_choice"], "required");
    }

    #[test]
    fn reasoning_items_go_with_their_turn_and_images_with_their_output() {
        let body = json!({"model":"m","input":[
            {"role":"user","content":"x"},
            {"type":"reasoning","summary":[{"type":"summary_text","text":"hm"}],
             "encrypted_content":"anthropic:EqS+/="},
            {"type":"reasoning","summary":[],"encrypted_content":"gAAAAABopenai"},
            {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
            {"type":"function_call_output","call_id":"c1","output":[
                {"type":"input_text","text":"shot"},
                {"type":"input_image","image_url":"data:image/png;base64,iVBO"}]}]})
        .to_string();
        let mut adjusted = Adjustments::default();
        let v: Value =
            serde_json::from_slice(&request(body.as_bytes(), &mut adjusted).unwrap()).unwrap();
        assert_eq!(
            v["messages"][1]["thinking_blocks"],
            json!([{"type":"thinking","thinking":"hm","signature":"EqS+/="}])
        );
        assert_eq!(
            v["messages"][2]["content"],
            json!([{"type":"text","text":"shot"},
                   {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}])
        );
        // OpenAI's own encrypted reasoning goes to no translated vendor: left out, noted.
        assert!(!v.to_string().contains("gAAAA"));
        assert_eq!(adjusted.as_slice(), [vendor_state::DROPPED]);
    }

    #[test]
    fn a_vendors_previous_response_id_is_a_404_naming_it() {
        let e = request(
            br#"{"model":"m","input":"x","previous_response_id":"resp_1"}"#,
            &mut Adjustments::default(),
        )
        .unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(e.to_string().contains("'resp_1'"), "{e}");
        assert!(e.to_string().contains("`previous_response_id`"), "{e}");
    }

    #[test]
    fn a_replayed_answer_with_text_and_calls_is_one_assistant_turn() {
        let v = chat(
            r#"{"model":"m","input":[{"role":"user","content":"Weather?"},
              {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Let me check.","annotations":[]}]},
              {"type":"function_call","call_id":"c1","name":"w","arguments":"{}"},
              {"type":"function_call_output","call_id":"c1","output":"sunny"}]}"#,
        );
        assert_eq!(
            v["messages"],
            json!([
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}])
        );
    }

    #[test]
    fn the_minted_identity_names_the_response_and_its_items() {
        let ident = Identity {
            id: Some("resp_syabc".into()),
            store: true,
            previous_response_id: Some("resp_syold".into()),
            ..Identity::default()
        };
        let t = answer(COMPLETION_TOOLS.as_bytes(), "hint", 5, &ident).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["id"], "resp_syabc");
        assert_eq!(v["store"], true);
        assert_eq!(v["previous_response_id"], "resp_syold");
        assert!(v["output"][0]["id"]
            .as_str()
            .unwrap()
            .contains("resp_syabc"));

        let mut s = Stream::with_identity("h", 1, ident);
        assert!(s.completed_response().is_none());
        s.feed(STREAM_TOOLS.as_bytes());
        s.finish();
        let r = s.completed_response().unwrap();
        assert_eq!(r["id"], "resp_syabc");
        let output = r["output"].as_array().unwrap();
        assert!(output.iter().any(|i| i["type"] == "function_call"), "{r}");
    }

    /// Codex CLI's default offer (#27, "Codex CLI out of the box"): its `namespace` tool is
    /// carried as flattened functions, its hosted `web_search` as `web_search_options`, and
    /// hosted tools with no slot are left out and noted instead of a 400.
    #[test]
    fn namespace_and_hosted_tools_are_carried_or_left_out() {
        let (v, adjusted) = chat_adjusted(
            r#"{"model":"m","input":"x","tool_choice":"auto","tools":[
                {"type":"function","name":"exec_command","parameters":{"type":"object"}},
                {"type":"namespace","name":"multi_agent_v1","description":"Sub-agents.",
                 "tools":[{"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]},
                {"type":"web_search","external_web_access":false},
                {"type":"file_search","vector_store_ids":["v"]},
                {"type":"code_interpreter","container":{"type":"auto"}},
                {"type":"hologram_maker"}]}"#,
        );
        let names: Vec<&str> = v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["exec_command", "multi_agent_v1__spawn_agent"]);
        assert_eq!(
            v["tools"][1]["function"]["description"],
            "multi_agent_v1: Sub-agents."
        );
        assert_eq!(v["web_search_options"], json!({}));
        assert_eq!(v["tool_choice"], "auto");
        assert_eq!(
            adjusted.as_slice(),
            ["tools.file_search", "tools.code_interpreter", "tools.other"]
        );
        // Only hosted tools the pivot cannot carry: no `tools`, no forced choice.
        let (v, adjusted) = chat_adjusted(
            r#"{"model":"m","input":"x","tool_choice":"required","tools":[{"type":"file_search"}]}"#,
        );
        assert!(
            v.get("tools").is_none() && v.get("tool_choice").is_none(),
            "{v}"
        );
        assert_eq!(adjusted.as_slice(), ["tools.file_search", "tool_choice"]);
        // A choice of a namespace's function names it as offered.
        let v = chat(
            r#"{"model":"m","input":"x","tools":[{"type":"namespace","name":"ns","tools":[{"type":"function","name":"f"}]}],
                "tool_choice":{"type":"function","namespace":"ns","name":"f"}}"#,
        );
        assert_eq!(v["tool_choice"]["function"]["name"], "ns__f");
        // A replayed call of a namespace's function goes by the flattened name.
        let v = chat(
            r#"{"model":"m","input":[{"type":"function_call","call_id":"c1","namespace":"multi_agent_v1",
                "name":"spawn_agent","arguments":"{}"},
               {"type":"function_call_output","call_id":"c1","output":"ok"}]}"#,
        );
        assert_eq!(
            v["messages"][0]["tool_calls"][0]["function"]["name"],
            "multi_agent_v1__spawn_agent"
        );
    }

    #[test]
    fn calls_of_namespace_functions_go_back_by_namespace_and_name() {
        let ident = Identity {
            tools: Namespaced::of_request(
                br#"{"tools":[{"type":"namespace","name":"ns","tools":[{"type":"function","name":"get_weather"},
                    {"type":"function","name":"get_current_weather"}]}]}"#,
            ),
            ..Identity::default()
        };
        let body =
            COMPLETION_TOOLS.replace("\"get_current_weather\"", "\"ns__get_current_weather\"");
        assert!(
            body.contains("ns__get_current_weather"),
            "the fixture's call"
        );
        let t = answer(body.as_bytes(), "hint", 5, &ident).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let call = v["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap();
        assert_eq!(
            (&call["namespace"], &call["name"]),
            (&json!("ns"), &json!("get_current_weather"))
        );
        let stream = STREAM_TOOLS.replace("\"get_weather\"", "\"ns__get_weather\"");
        let mut s = Stream::with_identity("h", 1, ident);
        let mut out = s.feed(stream.as_bytes()).to_vec();
        out.extend_from_slice(&s.finish());
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("ns__get_weather"), "{text}");
        assert!(text.contains(r#""namespace":"ns""#), "{text}");
    }

    #[test]
    fn what_chat_cannot_carry_is_a_400_naming_it() {
        for (body, want) in [
            (
                r#"{"model":"m","input":"x","tools":[{"type":"namespace","tools":[]}]}"#,
                "`tools[0].name`",
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}"#,
                "`input[0].content[0]` of type `input_file`",
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#,
                "`file_id`",
            ),
            (
                r#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#,
                "Item with id 'x' not found (`input[0].id`)",
            ),
            (
                r#"{"model":"m","input":[{"role":"robot","content":"x"}]}"#,
                "`input[0].role`",
            ),
            (
                r#"{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}"#,
                "`text.format.type`",
            ),
            (
                r#"{"model":"m","input":"x","tool_choice":{"type":"web_search"}}"#,
                "`tool_choice`",
            ),
            (
                r#"{"model":"m","input":"x","background":true}"#,
                "`background`",
            ),
        ] {
            let e = refused(body);
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn whole_answers() {
        let t = answer(COMPLETION_TOOLS.as_bytes(), "hint", 5, &Identity::default()).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        let calls: Vec<&Value> = v["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "function_call")
            .collect();
        assert!(!calls.is_empty(), "{v}");
        assert_eq!(calls[0]["name"], "get_current_weather");
        assert!(calls[0]["call_id"].as_str().unwrap().starts_with("call_"));
        let u = t.usage.unwrap();
        assert_eq!(v["usage"]["input_tokens"], u.prompt_tokens);
        assert_eq!(v["usage"]["output_tokens"], u.completion_tokens);

        let body = br#"{"id":"chatcmpl-1","choices":[{"message":{"content":"abc"},"finish_reason":"length"}],
            "usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":2}}}"#;
        let v: Value =
            serde_json::from_slice(&answer(body, "hint", 5, &Identity::default()).unwrap().body)
                .unwrap();
        assert_eq!(v["id"], "resp_1");
        assert_eq!(v["model"], "hint");
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(v["output"][0]["content"][0]["text"], "abc");
        assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert!(answer(b"nope", "h", 1, &Identity::default()).is_err());
    }

    fn translate(input: &str) -> Vec<Value> {
        let out = same_at_every_cut(
            &|| Box::new(Stream::new("hint", 9)) as Box<dyn SseTranslator>,
            input.as_bytes(),
        );
        events_of(&out)
    }

    fn kinds(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn text_stream_events() {
        let events = translate(STREAM_TEXT);
        let kinds = kinds(&events);
        assert_eq!(
            kinds[..4],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added"
            ]
        );
        assert_eq!(
            kinds[kinds.len() - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        let last = events.last().unwrap();
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], text);
        assert!(last["response"]["usage"]["input_tokens"].as_u64().unwrap() > 0);
        let seq: Vec<u64> = events
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "{seq:?}");
    }

    #[test]
    fn tool_call_stream_events() {
        let events = translate(STREAM_TOOLS);
        let done: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.done")
            .collect();
        assert_eq!(done.len(), 2);
        assert_eq!(done[0]["arguments"], "{\"location\": \"Paris\"}");
        assert_eq!(done[1]["arguments"], "{}");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        let output = last["response"]["output"].as_array().unwrap();
        assert_eq!(output.len(), 3, "text, two calls");
        assert_eq!(output[1]["call_id"], "call_DdmO9pD3xa9XTPNJ32zg2hcA");
        assert_eq!(output[2]["name"], "get_time");
        assert_eq!(last["response"]["usage"]["total_tokens"], 110);
        // Each item's events carry its own output index.
        let added: Vec<u64> = events
            .iter()
            .filter(|e| e["type"] == "response.output_item.added")
            .map(|e| e["output_index"].as_u64().unwrap())
            .collect();
        assert_eq!(added, [0, 1, 2]);
    }

    #[test]
    fn errors_and_cut_streams_end_with_an_error_event() {
        let events = translate(STREAM_ERROR);
        assert_eq!(events.last().unwrap()["type"], "error");
        let cut = STREAM_TEXT.split("data: [DONE]").next().unwrap();
        let cut = cut.rsplitn(3, "\n\ndata: ").last().unwrap();
        let mut t = Stream::new("h", 1);
        let mut out = t.feed(format!("{cut}\n\n").as_bytes()).to_vec();
        out.extend_from_slice(&t.finish());
        let events = events_of(&out);
        assert_eq!(events.last().unwrap()["type"], "error", "{events:?}");
        assert!(t.is_failed());
    }
}
