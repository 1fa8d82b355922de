//! The chat-completions dialect (`POST /v1/chat/completions`, the chat API; spoken natively by
//! `openai` and `azure` vendors): its borrowed request view, with `model_params` lifted. Its
//! stream scanner is [`stream`]; its error shape is [`crate::error::GatewayError::body`].

pub mod stream;
pub mod wire;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dialect::body::{fields_and_model, reject_duplicates, CowStr, Fields};
use crate::error::GatewayError;

/// A borrowed view of a chat-completions request: every top-level field in order, as raw
/// JSON, with `model_params` already lifted.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    /// Top-level fields except `model` and `model_params`, in the client's order, then the
    /// lifted `model_params` entries that the top level did not set.
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    pub messages: Vec<&'a RawValue>,
    /// `max_tokens` or `max_completion_tokens`, when given as a number.
    pub max_tokens: Option<u64>,
}

impl<'a> ChatRequest<'a> {
    /// Every top-level field but `model` and `model_params`, as raw values, in order.
    pub fn fields(&self) -> &[(Cow<'a, str>, &'a RawValue)] {
        &self.fields
    }

    /// The raw value of a top-level field (after lifting).
    pub fn field(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

/// Parses and checks a request body. Every problem is a 400 with a message that says what.
pub fn parse(body: &[u8]) -> Result<ChatRequest<'_>, GatewayError> {
    let (mut top, model) = fields_and_model(body)?;
    if let Some(params) = take(&mut top, "model_params") {
        lift_model_params(&mut top, params)?;
    }

    let messages_raw = top
        .iter()
        .find(|(k, _)| k == "messages")
        .map(|(_, v)| *v)
        .ok_or_else(|| invalid("`messages` is required"))?;
    let messages: Vec<&RawValue> = serde_json::from_str(messages_raw.get())
        .map_err(|_| invalid("`messages` must be an array of message objects"))?;
    if messages.is_empty() {
        return Err(invalid("`messages` must not be empty"));
    }
    for (i, m) in messages.iter().enumerate() {
        check_message(i, m)?;
    }

    let stream = match top
        .iter()
        .find(|(k, _)| k == "stream")
        .map(|(_, v)| v.get())
    {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("`stream` must be a boolean")),
    };
    // `null` is absence: `{"max_tokens":null,"max_completion_tokens":300}` means 300.
    let max_tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .filter_map(|name| top.iter().find(|(k, _)| k == name))
        .find_map(|(_, v)| whole_number(v));

    Ok(ChatRequest {
        fields: top,
        model,
        stream,
        messages,
        max_tokens,
    })
}

/// A JSON number that is a whole non-negative number (`300` or `300.0`); `None` for `null`,
/// fractions, negatives and anything else.
pub fn whole_number(v: &RawValue) -> Option<u64> {
    let text = v.get();
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = serde_json::from_str(text).ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64).then_some(f as u64)
}

fn invalid(msg: &str) -> GatewayError {
    GatewayError::InvalidRequest(msg.to_string())
}

fn take<'a>(fields: &mut Vec<(Cow<'a, str>, &'a RawValue)>, name: &str) -> Option<&'a RawValue> {
    let pos = fields.iter().position(|(k, _)| k == name)?;
    Some(fields.remove(pos).1)
}

/// `model_params` keys go to the top level; a key given at both levels keeps the top-level value.
fn lift_model_params<'a>(
    top: &mut Vec<(Cow<'a, str>, &'a RawValue)>,
    params: &'a RawValue,
) -> Result<(), GatewayError> {
    if params.get() == "null" {
        return Ok(());
    }
    let Fields(inner) = serde_json::from_str(params.get())
        .map_err(|_| invalid("`model_params` must be an object"))?;
    reject_duplicates(&inner)?;
    for (k, v) in inner {
        if k == "model" || k == "messages" || k == "model_params" {
            return Err(GatewayError::InvalidRequest(format!(
                "`model_params` may not set `{k}`"
            )));
        }
        if !top.iter().any(|(t, _)| *t == k) {
            top.push((k, v));
        }
    }
    Ok(())
}

/// The roles of OpenAI's Chat Completions API (`function` is its deprecated tool role).
pub const MESSAGE_ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A message as the chat API (OpenAI's) requires it: an object whose `role` is one of
/// [`MESSAGE_ROLES`] and whose `content` is a string or an array of content parts. `content`
/// may be `null` or absent only where OpenAI allows it: an assistant message that carries
/// `tool_calls` or a legacy `function_call`, and a legacy `function` message (whose content
/// OpenAI types `string | null`). The error's `param` names the field (`messages[0].content`).
fn check_message(i: usize, raw: &RawValue) -> Result<(), GatewayError> {
    let Ok(Fields(fields)) = serde_json::from_str::<Fields<'_>>(raw.get()) else {
        return Err(field_error(
            format!("messages[{i}]"),
            "must be an object with `role` and `content`",
        ));
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.get())
            .filter(|v| *v != "null")
    };
    let role = match field("role").map(serde_json::from_str::<CowStr<'_>>) {
        None => return Err(field_error(format!("messages[{i}].role"), "is required")),
        Some(Ok(CowStr(role))) if MESSAGE_ROLES.contains(&role.as_ref()) => role,
        Some(_) => {
            return Err(field_error(
                format!("messages[{i}].role"),
                &format!("must be one of {}", MESSAGE_ROLES.join(", ")),
            ))
        }
    };
    match field("content") {
        None if content_may_be_null(&role, field("tool_calls"), field("function_call")) => Ok(()),
        None => Err(field_error(
            format!("messages[{i}].content"),
            "is required (a string or an array of content parts)",
        )),
        Some(c) if c.starts_with('"') => Ok(()),
        Some(c) if is_array_of_objects(c) => Ok(()),
        Some(_) => Err(field_error(
            format!("messages[{i}].content"),
            "must be a string or an array of content parts (objects)",
        )),
    }
}

/// Where OpenAI's API accepts a message without content.
fn content_may_be_null(role: &str, tool_calls: Option<&str>, function_call: Option<&str>) -> bool {
    match role {
        "assistant" => tool_calls.is_some() || function_call.is_some(),
        "function" => true,
        _ => false,
    }
}

/// Whether raw JSON is an array whose every element is an object.
fn is_array_of_objects(raw: &str) -> bool {
    serde_json::from_str::<Vec<&RawValue>>(raw)
        .is_ok_and(|parts| parts.iter().all(|p| p.get().starts_with('{')))
}

/// A 400 naming the field at fault, in OpenAI's `param`.
fn field_error(param: String, what: &str) -> GatewayError {
    GatewayError::InvalidParam {
        message: format!("`{param}` {what}"),
        param,
    }
}

/// The text of a message: its string `content`, or the `text` of its content parts joined
/// by spaces (images and other parts carry no text).
pub fn message_text(raw: &str) -> String {
    #[derive(Deserialize)]
    struct Msg {
        #[serde(default)]
        content: serde_json::Value,
    }
    match serde_json::from_str::<Msg>(raw).map(|m| m.content) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(serde_json::Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `param` a body with these `messages` is refused with (`None`: accepted).
    fn refused_param(messages: &str) -> Option<String> {
        let body = format!(r#"{{"model":"m","messages":{messages}}}"#);
        match parse(body.as_bytes()) {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(e.status(), 400, "{messages}");
                Some(e.param().unwrap_or("<none>").to_string())
            }
        }
    }

    #[test]
    fn messages_follow_openais_rules() {
        let accepted = [
            r#"[{"role":"system","content":"s"},{"role":"developer","content":"d"},{"role":"user","content":"u"}]"#,
            r#"[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]}]"#,
            r#"[{"role":"user","content":""}]"#,
            r#"[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]"#,
            r#"[{"role":"assistant","tool_calls":[]}]"#,
            r#"[{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}}]"#,
            r#"[{"role":"tool","tool_call_id":"c","content":"42"}]"#,
            r#"[{"role":"function","name":"f","content":null}]"#,
        ];
        for m in accepted {
            assert_eq!(refused_param(m), None, "{m}");
        }
        let refused = [
            (r#"[{"role":"user"}]"#, "messages[0].content"),
            (
                r#"[{"role":"user","content":"a"},{"role":"user","content":null}]"#,
                "messages[1].content",
            ),
            (
                r#"[{"role":"assistant","content":null}]"#,
                "messages[0].content",
            ),
            (
                r#"[{"role":"assistant","content":null,"tool_calls":null}]"#,
                "messages[0].content",
            ),
            (
                r#"[{"role":"tool","tool_call_id":"c"}]"#,
                "messages[0].content",
            ),
            (r#"[{"role":"user","content":42}]"#, "messages[0].content"),
            (
                r#"[{"role":"user","content":{"text":"a"}}]"#,
                "messages[0].content",
            ),
            (
                r#"[{"role":"user","content":["a"]}]"#,
                "messages[0].content",
            ),
            (r#"[{"role":"robot","content":"a"}]"#, "messages[0].role"),
            (r#"[{"role":"User","content":"a"}]"#, "messages[0].role"),
            (r#"[{"role":7,"content":"a"}]"#, "messages[0].role"),
            (r#"[{"content":"a"}]"#, "messages[0].role"),
            (r#"["hi"]"#, "messages[0]"),
        ];
        for (m, param) in refused {
            assert_eq!(refused_param(m).as_deref(), Some(param), "{m}");
        }
        let e = parse(br#"{"model":"m","messages":[{"role":"user"}]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`messages[0].content` is required (a string or an array of content parts)"
        );
    }
}
