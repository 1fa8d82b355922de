//! The chat pivot's leg to a chat vendor (`openai`, `azure`, OpenAI-compatible servers) on a
//! translated route: a request that came in at the Messages or Responses door, made to keep
//! OpenAI's chat contract ([`crate::contract::openai_chat`]) before it goes:
//!
//! - tool-call ids over 40 characters (an assistant's `tool_calls[].id` and the `tool`
//!   message's `tool_call_id` alike) go as their portable ids;
//! - `user` and `safety_identifier` over 64 characters go as their SHA-256 in hex;
//! - a function name OpenAI does not take, more than 128 tools, more than 4 stop sequences
//!   and a tool result holding anything but text are each a 400 naming it and the vendor
//!   kind, before any vendor is called.
//!
//! The pivot is the gateway's own JSON, kept for every attempt; it is rewritten (and its
//! [`crate::dialect::body::Prepared`] bodies made again) only when a rule changed something.
//!
//! The chat door's own requests to a chat vendor pass through as the client wrote them, but
//! for one rule ([`door_ids_mapped`]): a tool-call id over OpenAI's 40 characters (the
//! gateway's legacy Gemini ids, `<id>__thought__<signature>`, carried to OpenAI by a
//! fallback) is mapped as above, since the vendor would refuse the whole conversation.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::Provider;
use crate::contract::openai_chat as contract;
use crate::dialect::adjusted::Adjustments;
use crate::dialect::body::{write_json_string, Fields, Prepared, RewriteOptions};
use crate::dialect::chat;
use crate::dialect::request::Pivot;
use crate::error::GatewayError;
use crate::providers;

use super::{hosted_tools, vendor_state};

/// The upstream body for a chat vendor from the pivot of a Messages or Responses request:
/// conformed to OpenAI's chat contract, without `stream_options` for vendors that refuse it,
/// and without `web_search_options` (a hosted web search only OpenAI's search models take:
/// left out and noted in `adjusted`, [`super::hosted_tools`]).
pub(crate) fn request(
    pivot: &Pivot,
    provider: &Provider,
    upstream_model: &str,
    adjusted: &mut Adjustments,
) -> Result<Bytes, GatewayError> {
    let stream_options = providers::takes_stream_options(provider);
    let vendor = providers::vendor(provider.kind).name();
    let conformed = conformed(&pivot.body, vendor)?;
    let body: &Bytes = conformed.as_ref().unwrap_or(&pivot.body);
    let web_search = hosted_tools::offers_web_search(body);
    if conformed.is_none() && !web_search {
        let prepared = match stream_options {
            true => &pivot.prepared,
            false => &pivot.without_stream_options,
        };
        return without_thinking_blocks(prepared.body_for(upstream_model), adjusted);
    }
    let view = chat::parse(body)?;
    if web_search && view.field("web_search_options").is_some() {
        adjusted.note(hosted_tools::WEB_SEARCH);
    }
    let fields: Vec<_> = view
        .fields()
        .iter()
        .filter(|(k, _)| k != "web_search_options" && (stream_options || k != "stream_options"))
        .cloned()
        .collect();
    let options = RewriteOptions {
        stream: view.stream && stream_options,
        include_usage: stream_options,
    };
    without_thinking_blocks(
        Prepared::new(&fields, body, options).body_for(upstream_model),
        adjusted,
    )
}

/// `body` without its assistant messages' `thinking_blocks`: another vendor's reasoning state
/// (Anthropic's signed thinking, Gemini's signatures), which no chat vendor takes back —
/// dropped by rule and noted ([`vendor_state::DROPPED`]). The rest of the body keeps its
/// bytes: each member is cut out of its message where it stands. A byte search first: most
/// bodies hold none and go on untouched.
fn without_thinking_blocks(body: Bytes, adjusted: &mut Adjustments) -> Result<Bytes, GatewayError> {
    if memchr::memmem::find(&body, b"\"thinking_blocks\"").is_none() {
        return Ok(body);
    }
    #[derive(serde::Deserialize)]
    struct Messages<'a> {
        #[serde(borrow)]
        messages: Vec<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        thinking_blocks: Option<&'a RawValue>,
    }
    let text = std::str::from_utf8(&body)
        .map_err(|e| GatewayError::Internal(format!("the chat pivot is not UTF-8: {e}")))?;
    let view: Messages<'_> = serde_json::from_str(text)
        .map_err(|e| GatewayError::Internal(format!("the chat pivot has no messages: {e}")))?;
    let mut cuts: Vec<std::ops::Range<usize>> = Vec::new();
    for raw in view.messages {
        let m: Message<'_> = serde_json::from_str(raw.get())
            .map_err(|e| GatewayError::Internal(format!("a pivot message: {e}")))?;
        if let Some(blocks) = m.thinking_blocks {
            cuts.push(member_range(text, blocks.get()));
            adjusted.note(vendor_state::DROPPED);
        }
    }
    if cuts.is_empty() {
        return Ok(body);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for cut in cuts {
        out.push_str(&text[at..cut.start]);
        at = cut.end;
    }
    out.push_str(&text[at..]);
    Ok(Bytes::from(out))
}

/// The byte range in `text` of the object member whose value is the slice `value` of `text`:
/// its key, its value and one comma beside it (the one before, or the one after for a first
/// member), so that what is left is the object without it.
pub(crate) fn member_range(text: &str, value: &str) -> std::ops::Range<usize> {
    let start = value.as_ptr() as usize - text.as_ptr() as usize;
    let end = start + value.len();
    let before = text[..start].trim_end();
    let before = before.strip_suffix(':').unwrap_or(before).trim_end();
    let key_start = before
        .rfind('"')
        .and_then(|q| before[..q].rfind('"'))
        .unwrap_or(start);
    let lead = text[..key_start].trim_end();
    if lead.ends_with(',') {
        return lead.len() - 1..end;
    }
    let rest = &text[end..];
    let trimmed = rest.trim_start();
    match trimmed.strip_prefix(',') {
        Some(after) => key_start..text.len() - after.trim_start().len(),
        None => key_start..end,
    }
}

/// The chat door's body with its tool-call ids over 40 characters mapped, or `None` when it
/// has none (the client's bytes then pass through).
pub(crate) fn door_ids_mapped(body: &[u8]) -> Result<Option<Bytes>, GatewayError> {
    if !has_long_ids(body) {
        return Ok(None);
    }
    Ok(rewritten(body, false).map(Bytes::from))
}

/// Whether a tool call's `id` or a `tool_call_id` in `body` is one OpenAI refuses: a scan of
/// the messages that borrows, so the common request costs one pass and no copy. A body whose
/// messages cannot be read so is left to the vendor (the door's own checks passed it).
fn has_long_ids(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(borrow, default)]
        messages: Vec<MessageIds<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct MessageIds<'a> {
        #[serde(borrow, default)]
        tool_calls: Option<Vec<CallId<'a>>>,
        #[serde(borrow, default)]
        tool_call_id: Option<Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct CallId<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
    }
    // Most bodies hold no tool call at all: one byte search, no parse.
    if memchr::memmem::find(body, b"\"tool_call").is_none() {
        return false;
    }
    let Ok(req) = serde_json::from_slice::<Request<'_>>(body) else {
        return false;
    };
    let refused = |id: &Option<Cow<'_, str>>| {
        id.as_deref()
            .is_some_and(|id| !contract::valid_tool_call_id(id))
    };
    req.messages.iter().any(|m| {
        refused(&m.tool_call_id) || m.tool_calls.iter().flatten().any(|call| refused(&call.id))
    })
}

/// The pivot `body` made to keep OpenAI's chat contract, or `None` when it keeps it already.
/// What cannot be made to keep it is a 400.
fn conformed(body: &[u8], vendor: &str) -> Result<Option<Bytes>, GatewayError> {
    let req: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| GatewayError::Internal(format!("the chat pivot is not an object: {e}")))?;
    check_tools(&req, vendor)?;
    if let Some(stop) = req.get("stop").and_then(Value::as_array) {
        // Only the Messages door's `stop_sequences` become a pivot's `stop` on these routes.
        contract::check_stop_count(vendor, "stop_sequences", stop.len())?;
    }
    if let Some(messages) = req.get("messages").and_then(Value::as_array) {
        for m in messages {
            check_tool_result(m, vendor)?;
        }
    }
    Ok(rewritten(body, true).map(Bytes::from))
}

/// The tools OpenAI takes: at most 128, each named as it takes names.
fn check_tools(req: &Map<String, Value>, vendor: &str) -> Result<(), GatewayError> {
    let Some(tools) = req.get("tools").and_then(Value::as_array) else {
        return Ok(());
    };
    contract::check_tool_count(vendor, tools.len())?;
    for (i, tool) in tools.iter().enumerate() {
        if let Some(name) = tool.pointer("/function/name").and_then(Value::as_str) {
            contract::check_function_name(vendor, i, name)?;
        }
    }
    Ok(())
}

/// A `tool` message's content parts as OpenAI takes them: text only.
fn check_tool_result(m: &Value, vendor: &str) -> Result<(), GatewayError> {
    if m.get("role").and_then(Value::as_str) != Some("tool") {
        return Ok(());
    }
    let call_id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for part in m
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("?");
        contract::check_tool_result_part(vendor, call_id, kind)?;
    }
    Ok(())
}

/// `body` with its tool-call ids mapped (and, with `users`, `user` and `safety_identifier`
/// capped), or `None` when nothing changed. Every other byte is kept, keys in their order: a
/// tool's schema or a `response_format` keeps the order the client gave its properties.
fn rewritten(body: &[u8], users: bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    edited(text, &mut |key, value| match key {
        "messages" => edited_items(value, |m| {
            edited(m.get(), &mut |key, value| match key {
                "tool_calls" => edited_items(value, |call| {
                    edited(call.get(), &mut |key, value| {
                        (key == "id").then(|| mapped_id(value)).flatten()
                    })
                }),
                "tool_call_id" => mapped_id(value),
                _ => None,
            })
        }),
        "user" | "safety_identifier" if users => capped_user(value),
        _ => None,
    })
    .map(String::into_bytes)
}

/// A tool-call id's new JSON string when OpenAI does not take it, else `None`.
fn mapped_id(value: &RawValue) -> Option<String> {
    let id: Cow<'_, str> = serde_json::from_str(value.get()).ok()?;
    match contract::tool_call_id(Cow::Borrowed(&id)) {
        Cow::Owned(mapped) => serde_json::to_string(&mapped).ok(),
        Cow::Borrowed(_) => None,
    }
}

/// A `user`'s new JSON string when it is over OpenAI's cap, else `None`.
fn capped_user(value: &RawValue) -> Option<String> {
    let user: Cow<'_, str> = serde_json::from_str(value.get()).ok()?;
    match contract::user(Cow::Borrowed(&user)) {
        Cow::Owned(capped) => serde_json::to_string(&capped).ok(),
        Cow::Borrowed(_) => None,
    }
}

/// The JSON object `raw` with the values `edit(key, value)` gives replaced (a new raw JSON
/// value), the others and every key kept as they were; `None` when nothing was replaced or
/// `raw` is not an object.
fn edited(raw: &str, edit: &mut dyn FnMut(&str, &RawValue) -> Option<String>) -> Option<String> {
    let Fields(fields) = serde_json::from_str(raw).ok()?;
    let mut changed = false;
    let mut out = Vec::with_capacity(raw.len() + 64);
    out.push(b'{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(&mut out, key);
        out.push(b':');
        match edit(key, value) {
            Some(new) => {
                changed = true;
                out.extend_from_slice(new.as_bytes());
            }
            None => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    out.push(b'}');
    if !changed {
        return None;
    }
    String::from_utf8(out).ok()
}

/// The JSON array `raw` with each item `edit` gives replaced; `None` when nothing was
/// replaced or `raw` is not an array.
fn edited_items(raw: &RawValue, edit: impl Fn(&RawValue) -> Option<String>) -> Option<String> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    let mut changed = false;
    let mut out = String::with_capacity(raw.get().len() + 64);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match edit(item) {
            Some(new) => {
                changed = true;
                out.push_str(&new);
            }
            None => out.push_str(item.get()),
        }
    }
    out.push(']');
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conform(v: Value) -> Result<Option<Value>, GatewayError> {
        conformed(v.to_string().as_bytes(), "openai")
            .map(|b| b.map(|b| serde_json::from_slice(&b).unwrap()))
    }

    #[test]
    fn long_ids_map_alike_in_call_and_result() {
        let long = format!("call_1__thought__{}", "Cq+/=".repeat(40));
        let v = conform(json!({"model":"m","user":"u".repeat(100),"messages":[
            {"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[
                {"id":long,"type":"function","function":{"name":"f","arguments":"{}"}},
                {"id":"functions.f:1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":long,"content":"ok"},
            {"role":"tool","tool_call_id":"functions.f:1","content":"ok"}]}))
        .unwrap()
        .unwrap();
        let id = v["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
        assert!(id.len() <= 40, "{id}");
        assert_eq!(v["messages"][2]["tool_call_id"], id);
        assert_eq!(v["messages"][1]["tool_calls"][1]["id"], "functions.f:1");
        assert_eq!(v["messages"][3]["tool_call_id"], "functions.f:1");
        assert_eq!(v["user"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn the_chat_doors_long_ids_alone_are_mapped() {
        let long = format!("call_1__thought__{}", "Cq+/=".repeat(40));
        let body = json!({"model":"m","stop":["a","b","c","d","e"],"messages":[
            {"role":"assistant","content":null,"tool_calls":[
                {"id":long,"type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":long,"content":"ok"}]});
        let out = door_ids_mapped(body.to_string().as_bytes())
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let id = v["messages"][0]["tool_calls"][0]["id"].as_str().unwrap();
        assert!(id.len() <= 40, "{id}");
        assert_eq!(v["messages"][1]["tool_call_id"], id);
        assert_eq!(
            v["stop"], body["stop"],
            "the client's other choices are its own"
        );
        let short = json!({"model":"m","messages":[{"role":"tool","tool_call_id":"call_1","content":"x"},
            {"role":"assistant","tool_calls":null}]});
        assert!(door_ids_mapped(short.to_string().as_bytes())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_rewrite_keeps_every_other_byte_and_key_order() {
        let long = "x".repeat(41);
        let body = format!(
            r#"{{"model":"m","tools":[{{"type":"function","function":{{"name":"f","parameters":{{"properties":{{"z":{{}},"a":{{}}}}}}}}}}],"messages":[{{"role":"assistant","tool_calls":[{{"type":"function","id":"{long}","function":{{"name":"f","arguments":"{{}}"}}}}]}},{{"role":"tool","tool_call_id":"{long}","content":"ok"}}]}}"#
        );
        let out = conformed(body.as_bytes(), "openai").unwrap().unwrap();
        let mapped = crate::contract::portable_id(&long);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            body.replace(&long, &mapped)
        );
    }

    #[test]
    fn a_request_that_keeps_the_contract_is_left_alone() {
        let v = json!({"model":"m","user":"u","stop":["a"],"messages":[{"role":"user","content":"hi"}],
            "tools":[{"type":"function","function":{"name":"f"}}]});
        assert!(conform(v).unwrap().is_none());
    }

    #[test]
    fn what_cannot_travel_is_a_400() {
        let image = json!({"model":"m","messages":[
            {"role":"assistant","content":null,"tool_calls":[
                {"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"see"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]}]});
        let e = conform(image).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string().contains("image_url") && e.to_string().contains("openai"),
            "{e}"
        );
        let stops = json!({"model":"m","stop":["a","b","c","d","e"],"messages":[]});
        assert!(conform(stops)
            .unwrap_err()
            .to_string()
            .contains("stop_sequences"));
        let name = json!({"model":"m","messages":[],
            "tools":[{"type":"function","function":{"name":"x".repeat(65)}}]});
        assert!(conform(name).unwrap_err().to_string().contains("tools[0]"));
    }
}
