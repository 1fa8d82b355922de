//! A Messages door's body passed through to Anthropic (the client's bytes, `model` spliced)
//! whose history another vendor started: what Anthropic would refuse in it is cleaned out, as
//! the translated legs do ([`super::chat_to_messages`]), so that a conversation can move to
//! Anthropic mid-way.
//!
//! - a `thinking` block signed by Gemini (the gateway's `gemini:` form,
//!   [`super::vendor_state`]) is dropped: Anthropic checks every signature it gets back
//!   ("Invalid `signature` in `thinking` block"); noted `thinking_signature`. Claude's own
//!   signatures are kept whichever platform made them: the Claude API, Amazon Bedrock and
//!   Vertex AI take each other's (Anthropic, "Building with extended thinking", thinking
//!   encryption: signatures are compatible across platforms; Amazon Bedrock User Guide,
//!   "Thinking encryption": pass thinking blocks back "as you received it"), so a
//!   conversation moves between `anthropic` and `bedrock` routes with its thinking intact;
//! - with thinking on (`enabled` or `adaptive`), a tool loop whose assistant turn does not
//!   start with a `thinking` block (another vendor's tool calls) has thinking left off for
//!   this request: "a tool-use loop is one assistant turn, so change the configuration only
//!   between turns" (platform.claude.com, "Thinking in tool and multi-turn workflows");
//!   noted `thinking`.
//!
//! - a tool-call id Anthropic refuses (`tool_use.id` and `tool_result.tool_use_id` must match
//!   `^[a-zA-Z0-9_-]+$`: ids another vendor minted, such as Kimi's `functions.lookup:0`, that
//!   a translated route handed the client) goes as its portable id, alike in the call and its
//!   result ([`crate::contract::anthropic::tool_use_id`]).
//!
//! A body with none of these passes untouched (a byte search decides before any parse).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::contract::anthropic as contract;
use crate::dialect::adjusted::Adjustments;

use super::vendor_state;

/// The adjustment noted when thinking is left off for one request.
const THINKING_OFF: &str = "thinking";

/// The body as far as deciding needs it: raw values, nothing copied.
#[derive(Deserialize)]
struct Light<'a> {
    #[serde(borrow, default)]
    thinking: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// Whether `body` needs cleaning, read without building it: a Gemini signature in it, or
/// thinking on beside a tool loop that does not start with a thinking block. Claude Code sends
/// thinking and tool calls on every request; this keeps its bodies off the parse below.
fn needs_cleaning(body: &[u8]) -> bool {
    if memchr::memmem::find(body, b"\"gemini:").is_some() {
        return true;
    }
    let Ok(light) = serde_json::from_slice::<Light<'_>>(body) else {
        return false;
    };
    let on = light
        .thinking
        .and_then(|t| serde_json::from_str::<Kind<'_>>(t.get()).ok())
        .and_then(|k| k.kind)
        .is_some_and(|k| k == "enabled" || k == "adaptive");
    if !on {
        return false;
    }
    let last = light.messages.iter().rev().find_map(|m| {
        serde_json::from_str::<Turn<'_>>(m.get())
            .ok()
            .filter(|t| t.role.as_deref() == Some("assistant"))
    });
    let Some(content) = last.and_then(|t| t.content) else {
        return false;
    };
    let blocks: Vec<Kind<'_>> = serde_json::from_str(content.get()).unwrap_or_default();
    let kind = |k: &Kind<'_>| k.kind.as_deref().unwrap_or("").to_string();
    let calls = blocks.iter().any(|b| kind(b) == "tool_use");
    let first = blocks.first().map(kind).unwrap_or_default();
    calls && first != "thinking" && first != "redacted_thinking"
}

/// `body` (a Messages request as it goes to Anthropic) cleaned, or `None` when nothing in it
/// needs to change.
pub fn clean(body: &[u8], adjusted: &mut Adjustments) -> Option<Bytes> {
    let foreign_ids = has_foreign_ids(body);
    let state = memchr::memmem::find(body, b"\"thinking\"").is_some() && needs_cleaning(body);
    if !foreign_ids && !state {
        return None;
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let mut changed = foreign_ids && map_ids(&mut v);
    if state {
        changed |= drop_gemini_blocks(&mut v, adjusted);
        let thinking = v
            .pointer("/thinking/type")
            .and_then(Value::as_str)
            .is_some_and(|t| t == "enabled" || t == "adaptive");
        if thinking && loop_without_thinking(&v) {
            if let Some(o) = v.as_object_mut() {
                o.remove("thinking");
            }
            adjusted.note(THINKING_OFF);
            changed = true;
        }
    }
    changed.then(|| Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
}

/// Whether an `"id"` or `"tool_use_id"` member of `body` holds a string Anthropic would refuse
/// as a tool-call id: a byte scan, no parse. A member of that name elsewhere (a tool's input)
/// may make it answer `true` for nothing; [`map_ids`] then changes nothing.
fn has_foreign_ids(body: &[u8]) -> bool {
    [&b"\"tool_use_id\""[..], &b"\"id\""[..]].iter().any(|key| {
        memchr::memmem::find_iter(body, key).any(|at| {
            let rest = &body[at + key.len()..];
            let rest = trim_ws(rest);
            let Some(rest) = rest.strip_prefix(b":") else {
                return false;
            };
            let Some(rest) = trim_ws(rest).strip_prefix(b"\"") else {
                return false;
            };
            let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
            !rest[..end]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    })
}

fn trim_ws(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !first.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// Maps the tool-call ids Anthropic refuses, in `tool_use` and `tool_result` blocks alike;
/// whether any changed.
fn map_ids(v: &mut Value) -> bool {
    let mut changed = false;
    let messages = v.get_mut("messages").and_then(Value::as_array_mut);
    for m in messages.into_iter().flatten() {
        let Some(blocks) = m.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        for b in blocks {
            let key = match b.get("type").and_then(Value::as_str) {
                Some("tool_use") => "id",
                Some("tool_result") => "tool_use_id",
                _ => continue,
            };
            let Some(id) = b.get(key).and_then(Value::as_str) else {
                continue;
            };
            if contract::valid_tool_use_id(id) {
                continue;
            }
            let mapped = contract::tool_use_id(Cow::Borrowed(id)).into_owned();
            b[key] = Value::String(mapped);
            changed = true;
        }
    }
    changed
}

/// Drops the Gemini-signed `thinking` blocks of assistant turns; whether there were any.
fn drop_gemini_blocks(v: &mut Value, adjusted: &mut Adjustments) -> bool {
    let mut dropped = false;
    let messages = v.get_mut("messages").and_then(Value::as_array_mut);
    for m in messages.into_iter().flatten() {
        if m.get("role").and_then(Value::as_str) != Some("assistant") {
            continue;
        }
        let Some(blocks) = m.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        let before = blocks.len();
        blocks.retain(|b| {
            let sig = b.get("signature").and_then(Value::as_str).unwrap_or("");
            !(b.get("type").and_then(Value::as_str) == Some("thinking")
                && vendor_state::unwrap_gemini(sig).is_some())
        });
        if blocks.len() != before {
            adjusted.note(vendor_state::DROPPED);
            dropped = true;
        }
    }
    dropped
}

/// Whether the last assistant turn calls tools without starting with a thinking block.
fn loop_without_thinking(v: &Value) -> bool {
    let last = v.get("messages").and_then(Value::as_array).and_then(|m| {
        m.iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
    });
    let Some(blocks) = last
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
    else {
        return false;
    };
    let kind = |b: &Value| {
        b.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let calls = blocks.iter().any(|b| kind(b) == "tool_use");
    let first = blocks.first().map(kind).unwrap_or_default();
    calls && first != "thinking" && first != "redacted_thinking"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn another_vendors_history_is_made_acceptable() {
        let sig = vendor_state::wrap_gemini("call_1", "U0lH");
        let body = json!({"model":"c","max_tokens":4000,
            "thinking":{"type":"enabled","budget_tokens":1024},
            "messages":[{"role":"user","content":"x"},
                {"role":"assistant","content":[{"type":"thinking","thinking":"","signature":sig},
                    {"type":"tool_use","id":"call_1","name":"f","input":{}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"ok"}]}]});
        let mut adjusted = Adjustments::default();
        let out = clean(body.to_string().as_bytes(), &mut adjusted).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("thinking").is_none(), "{v}");
        assert_eq!(v["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(adjusted.as_slice(), [vendor_state::DROPPED, THINKING_OFF]);
        // Its own signed thinking: untouched.
        let own = json!({"model":"c","thinking":{"type":"enabled","budget_tokens":1024},
            "messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"EqS+/="},
                {"type":"tool_use","id":"t1","name":"f","input":{}}]}]});
        let mut adjusted = Adjustments::default();
        assert!(clean(own.to_string().as_bytes(), &mut adjusted).is_none());
        assert!(adjusted.is_empty());
        assert!(clean(br#"{"model":"c","messages":[]}"#, &mut adjusted).is_none());
    }

    #[test]
    fn foreign_tool_ids_are_mapped_alike_in_call_and_result() {
        let body = json!({"model":"c","messages":[
            {"role":"user","content":"hi"},
            {"role":"assistant","content":[{"type":"tool_use","id":"functions.lookup:0","name":"f","input":{"id":"a.b"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"functions.lookup:0","content":"r"}]}]});
        let mut adjusted = Adjustments::default();
        let out = clean(body.to_string().as_bytes(), &mut adjusted).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let call = v["messages"][1]["content"][0]["id"].as_str().unwrap();
        assert!(contract::valid_tool_use_id(call), "{call}");
        assert_eq!(v["messages"][2]["content"][0]["tool_use_id"], call);
        // A tool's own input keeps its values.
        assert_eq!(v["messages"][1]["content"][0]["input"]["id"], "a.b");
        // Valid ids (and an `id` inside a tool's input only): nothing to change.
        let fine = json!({"model":"c","messages":[
            {"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"f","input":{"id":"a.b"}}]}]});
        assert!(clean(fine.to_string().as_bytes(), &mut adjusted).is_none());
        assert!(!has_foreign_ids(br#"{"id" : "toolu_01A-b"}"#));
        assert!(has_foreign_ids(br#"{"tool_use_id" : "x.y"}"#));
    }
}
