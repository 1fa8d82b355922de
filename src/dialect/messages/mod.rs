//! The Anthropic Messages dialect (`POST /v1/messages` and `/v1/messages/count_tokens`,
//! spoken natively by `anthropic` vendors): its borrowed request view, the usage of a whole
//! answer, its error shape and event writer. Its stream scanner is [`stream`].
//! Anthropic's docs: "Messages" (request and `usage`), "Errors"
//! (`{"type":"error","error":{"type","message"}}`) and "Streaming Messages" (named events).
//!
//! The view reads only what the gateway itself needs — `model` (routing), `stream`,
//! `max_tokens` (limits), the texts of `system` and `messages` (content policies, estimates) —
//! and keeps every top-level field as raw JSON borrowed from the body, so that a request to an
//! Anthropic route goes upstream as the client's bytes with only `model` spliced: cache marks,
//! thinking blocks and their signatures, beta fields and fields that do not exist yet survive.

pub mod stream;
pub mod wire;

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;
use crate::dialect::body::{fields_and_model, given};
use crate::error::{GatewayError, CONTENT_FILTER_MESSAGE};

/// A borrowed view of a Messages request (or a `count_tokens` request, which has the same
/// fields but `max_tokens` and `stream`).
#[derive(Debug)]
pub struct MessagesRequest<'a> {
    /// Every top-level field but `model`, as raw values, in the client's order.
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// `max_tokens`, when given as a number (`null` is absence).
    pub max_tokens: Option<u64>,
    pub system: Option<&'a RawValue>,
    pub messages: Vec<&'a RawValue>,
}

impl<'a> MessagesRequest<'a> {
    /// Every top-level field but `model`, as raw values, in order.
    pub fn fields(&self) -> &[(Cow<'a, str>, &'a RawValue)] {
        &self.fields
    }

    /// The texts of the system prompt and of every message (string contents and `text`
    /// blocks; tool results' texts included), for content policies.
    pub fn texts(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = self.system {
            out.push(content_text(system.get()));
        }
        for m in &self.messages {
            #[derive(Deserialize)]
            struct Msg<'a> {
                #[serde(borrow, default)]
                content: Option<&'a RawValue>,
            }
            if let Ok(Msg { content: Some(c) }) = serde_json::from_str::<Msg<'_>>(m.get()) {
                out.push(content_text(c.get()));
            }
        }
        out
    }

    /// The raw JSON of what the vendor reads as input: `system`, `messages` and `tools`.
    pub fn input_json(&self) -> impl Iterator<Item = &'a str> + '_ {
        ["system", "messages", "tools"]
            .into_iter()
            .filter_map(|name| {
                self.fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.get())
            })
    }
}

/// Parses a Messages request as far as the gateway needs it; every problem is a 400 naming the
/// field. The rest (roles, block types, `max_tokens` being required, …) is the vendor's
/// business on a native route, and the translation's on another.
pub fn parse(body: &[u8]) -> Result<MessagesRequest<'_>, GatewayError> {
    let (fields, model) = fields_and_model(body)?;
    let field = |name: &str| given(&fields, name);
    let messages_raw = field("messages").ok_or_else(|| invalid("`messages` is required"))?;
    let messages: Vec<&RawValue> = serde_json::from_str(messages_raw.get())
        .map_err(|_| invalid("`messages` must be an array of message objects"))?;
    let stream = match field("stream").map(|v| v.get()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("`stream` must be a boolean")),
    };
    let max_tokens = match field("max_tokens") {
        None => None,
        Some(v) => Some(
            crate::dialect::chat::whole_number(v)
                .ok_or_else(|| invalid("`max_tokens` must be a whole number"))?,
        ),
    };
    let system = field("system");
    Ok(MessagesRequest {
        fields,
        model,
        stream,
        max_tokens,
        system,
        messages,
    })
}

fn invalid(msg: &str) -> GatewayError {
    GatewayError::InvalidRequest(msg.to_string())
}

/// The text of a `system` or message `content`: a string, or its `text` blocks (and the text of
/// `tool_result` blocks' own content) joined by newlines.
fn content_text(raw: &str) -> String {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content<'a> {
        Text(String),
        Blocks(#[serde(borrow)] Vec<Block<'a>>),
    }
    #[derive(Deserialize)]
    struct Block<'a> {
        #[serde(default)]
        text: Option<String>,
        #[serde(borrow, default)]
        content: Option<&'a RawValue>,
    }
    match serde_json::from_str::<Content<'_>>(raw) {
        Ok(Content::Text(s)) => s,
        Ok(Content::Blocks(blocks)) => blocks
            .into_iter()
            .flat_map(|b| {
                let nested = b.content.map(|c| content_text(c.get()));
                b.text.into_iter().chain(nested)
            })
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => String::new(),
    }
}

/// The usage of a whole (non-streaming) `message` answer, if it reports one.
pub fn body_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        usage: Option<wire::UsageIn>,
    }
    serde_json::from_slice::<Message>(body)
        .ok()?
        .usage?
        .reported()
}

/// The characters of generated text in a whole `message` answer (text, thinking, tool inputs),
/// to estimate its output when it reports no usage.
pub fn body_text_chars(body: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        content: Vec<Block<'a>>,
    }
    #[derive(Deserialize)]
    struct Block<'a> {
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        thinking: Option<String>,
        #[serde(borrow, default)]
        input: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Message<'_>>(body).map_or(0, |m| {
        m.content
            .iter()
            .map(|b| {
                let text = b.text.as_deref().map_or(0, |t| t.chars().count());
                let thinking = b.thinking.as_deref().map_or(0, |t| t.chars().count());
                let input = b.input.map_or(0, |i| i.get().len());
                (text + thinking + input) as u64
            })
            .sum()
    })
}

/// Anthropic's error `type` for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 411 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

pub fn error_json(status: u16, message: &str) -> String {
    typed_error_json(error_type(status), message)
}

/// An Anthropic error body of the given error `type` (`{"type":"error","error":{"type",
/// "message"}}`).
fn typed_error_json(kind: &str, message: &str) -> String {
    format!(
        r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
        serde_json::Value::from(kind),
        serde_json::Value::from(message)
    )
}

/// The Anthropic error `type` of a gateway error: the vendor's (or the door's mapped one,
/// `crate::convert::errors`) when it carries one, else the type of its status.
fn type_of(err: &GatewayError) -> &str {
    err.vendor_code()
        .and_then(|c| c.r#type.as_deref())
        .unwrap_or_else(|| error_type(err.status()))
}

fn message_of(err: &GatewayError) -> String {
    match err {
        GatewayError::ContentFilter => CONTENT_FILTER_MESSAGE.to_string(),
        other => other.to_string(),
    }
}

/// A gateway error as an Anthropic error body (`{"type":"error","error":{"type","message"}}`),
/// for answers on the `/v1/messages` front door; the HTTP status stays `err.status()`.
pub fn error_body(err: &GatewayError) -> Bytes {
    Bytes::from(typed_error_json(type_of(err), &message_of(err)))
}

/// The same error as an Anthropic `error` event, for a stream that already started.
pub fn error_event(err: &GatewayError) -> Bytes {
    let mut out = Vec::new();
    push_event(
        &mut out,
        "error",
        &typed_error_json(type_of(err), &message_of(err)),
    );
    Bytes::from(out)
}

pub fn push_event(out: &mut Vec<u8>, name: &str, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn errors_in_anthropic_shape() {
        let v: Value = serde_json::from_slice(&error_body(&GatewayError::RateLimited {
            message: "slow".into(),
            retry_after_secs: 1,
        }))
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"error","error":{"type":"rate_limit_error","message":"slow"}})
        );
        let v: Value = serde_json::from_slice(&error_body(&GatewayError::ContentFilter)).unwrap();
        assert_eq!(v["error"]["message"], CONTENT_FILTER_MESSAGE);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let ev = error_event(&GatewayError::Upstream("x".into()));
        assert!(ev.starts_with(b"event: error\ndata: {\"type\":\"error\""));
        assert!(ev.ends_with(b"\n\n"));
    }
}
