//! The OpenAI Responses dialect (`POST /v1/responses`, spoken natively by `openai` and `azure`
//! vendors): its borrowed request view and the usage of a whole `response` object. Its stream
//! scanner is [`stream`]; its error shape is OpenAI's
//! `{"error":{"message","type","param","code"}}`, the chat door's.
//!
//! OpenAI's API reference, "Create a model response": `input` is a string or an array of input
//! items (messages whose `content` is a string or `input_text`/`input_image`/`input_file`
//! parts, `function_call`, `function_call_output`, reasoning items, …); `instructions` is the
//! system prompt; `max_output_tokens` caps the output, reasoning included; `stream` asks for
//! semantic events. The answer is a `response` object whose `usage` holds `input_tokens`
//! (`input_tokens_details.cached_tokens`), `output_tokens`
//! (`output_tokens_details.reasoning_tokens`) and `total_tokens`.
//!
//! The view reads only what the gateway needs (routing, limits, policies, estimates) and keeps
//! every top-level field as raw JSON, so that a native route gets the client's bytes with only
//! `model` spliced.

pub mod stream;

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::accounting::usage::{ServiceTier, Usage};
use crate::dialect::body::fields_and_model;
use crate::dialect::chat::whole_number;
use crate::error::{GatewayError, CONTENT_FILTER_MESSAGE};

/// A borrowed view of a Responses request.
#[derive(Debug)]
pub struct ResponsesRequest<'a> {
    /// Every top-level field but `model`, as raw values, in the client's order.
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// `max_output_tokens`, when given (`null` is absence).
    pub max_output_tokens: Option<u64>,
}

impl<'a> ResponsesRequest<'a> {
    /// Every top-level field but `model`, as raw values, in order.
    pub fn fields(&self) -> &[(Cow<'a, str>, &'a RawValue)] {
        &self.fields
    }

    /// A top-level field, `null` being absence.
    pub fn field(&self, name: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .filter(|v| v.get() != "null")
    }

    /// The raw JSON of what the model reads as input: `instructions`, `input` and `tools`.
    pub fn input_json(&self) -> impl Iterator<Item = &'a str> + '_ {
        ["instructions", "input", "tools"]
            .into_iter()
            .filter_map(|name| self.field(name).map(|v| v.get()))
    }

    /// The texts of `instructions` and of every input item (message texts, tool outputs), for
    /// content policies.
    pub fn texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = self.field("instructions").and_then(string) {
            out.push(s);
        }
        let Some(input) = self.field("input") else {
            return out;
        };
        if let Some(s) = string(input) {
            out.push(s);
            return out;
        }
        let items: Vec<&RawValue> = serde_json::from_str(input.get()).unwrap_or_default();
        for item in items {
            out.push(item_text(item));
        }
        out
    }
}

/// The JSON string `v` holds, if it is one.
fn string(v: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(v.get()).ok()
}

/// The text an input item carries: a message's string content or its parts' `text`, a
/// function call's arguments, a tool output.
fn item_text(item: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(borrow, default)]
        content: Option<&'a RawValue>,
        #[serde(default)]
        arguments: Option<String>,
        #[serde(borrow, default)]
        output: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(default)]
        text: Option<String>,
    }
    let Ok(item) = serde_json::from_str::<Item<'_>>(item.get()) else {
        return String::new();
    };
    let mut out = String::new();
    for raw in [item.content, item.output].into_iter().flatten() {
        if let Some(s) = string(raw) {
            out.push_str(&s);
            continue;
        }
        let parts: Vec<Part> = serde_json::from_str(raw.get()).unwrap_or_default();
        for t in parts.into_iter().filter_map(|p| p.text) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&t);
        }
    }
    if let Some(a) = item.arguments {
        out.push_str(&a);
    }
    out
}

/// An error as the Responses stream's `error` event (`{"type":"error","code","message",
/// "param"}`), for a stream that already started; the SDKs raise it as an API error.
pub fn error_event(err: &GatewayError) -> Bytes {
    let message = match err {
        GatewayError::ContentFilter => CONTENT_FILTER_MESSAGE.to_string(),
        other => other.to_string(),
    };
    let data = serde_json::json!({
        "type": "error",
        "code": err.reason(),
        "message": message,
        "param": err.param(),
    });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

fn invalid(msg: &str) -> GatewayError {
    GatewayError::InvalidRequest(msg.to_string())
}

/// Parses a Responses request as far as the gateway needs it; every problem is a 400 naming
/// the field. The rest (item types, tool shapes, …) is the vendor's business on a native
/// route, and the translation's on another.
pub fn parse(body: &[u8]) -> Result<ResponsesRequest<'_>, GatewayError> {
    let (fields, model) = fields_and_model(body)?;
    let view = ResponsesRequest {
        fields,
        model,
        stream: false,
        max_output_tokens: None,
    };
    let stream = match view.field("stream").map(|v| v.get()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("`stream` must be a boolean")),
    };
    let max_output_tokens = match view.field("max_output_tokens") {
        None => None,
        Some(v) => Some(
            whole_number(v).ok_or_else(|| invalid("`max_output_tokens` must be a whole number"))?,
        ),
    };
    match view.field("input") {
        None if view.field("previous_response_id").is_none() && view.field("prompt").is_none() => {
            return Err(invalid("`input` is required"))
        }
        None => {}
        Some(v) => check_input(v)?,
    }
    if let Some(v) = view.field("instructions") {
        if string(v).is_none() {
            return Err(invalid("`instructions` must be a string"));
        }
    }
    Ok(ResponsesRequest {
        stream,
        max_output_tokens,
        ..view
    })
}

/// `input`: a non-empty string, or a non-empty array of item objects.
fn check_input(v: &RawValue) -> Result<(), GatewayError> {
    if string(v).is_some() {
        return Ok(());
    }
    let items: Vec<&RawValue> = serde_json::from_str(v.get())
        .map_err(|_| invalid("`input` must be a string or an array of input items"))?;
    if items.is_empty() {
        return Err(invalid("`input` must not be empty"));
    }
    for (i, item) in items.iter().enumerate() {
        if !item.get().trim_start().starts_with('{') {
            return Err(GatewayError::InvalidRequest(format!(
                "`input[{i}]` must be an object"
            )));
        }
    }
    Ok(())
}

/// The `usage` of a Responses answer (`response` object), or of a `response.completed`
/// event's `response`.
#[derive(Debug, Default, Deserialize)]
pub struct UsageWire {
    input_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    output_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl UsageWire {
    /// The gateway's usage; `None` without input and output counts.
    pub fn usage(&self) -> Option<Usage> {
        let mut u = Usage::new(self.input_tokens?, self.output_tokens?);
        u.cached_tokens = self
            .input_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        u.reasoning_tokens = self
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0);
        Some(u)
    }
}

/// The usage of a whole `response` object.
pub fn body_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(default)]
        usage: Option<UsageWire>,
        #[serde(borrow, default)]
        service_tier: Option<std::borrow::Cow<'a, str>>,
    }
    let a = serde_json::from_slice::<Answer>(body).ok()?;
    let mut u = a.usage?.usage()?;
    u.service_tier = a.service_tier.as_deref().and_then(ServiceTier::parse);
    Some(u)
}

/// Characters of generated text in a whole `response` object (`output_text` parts, refusals,
/// reasoning summaries, function call arguments): the base of an estimate without usage.
pub fn body_text_chars(body: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        output: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        content: Vec<Part>,
        #[serde(default)]
        summary: Vec<Part>,
        #[serde(default)]
        arguments: Option<String>,
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        refusal: Option<String>,
    }
    let Ok(a) = serde_json::from_slice::<Answer>(body) else {
        return 0;
    };
    let count = |s: &Option<String>| s.as_deref().map_or(0, |t| t.chars().count() as u64);
    a.output
        .iter()
        .map(|i| {
            i.content
                .iter()
                .chain(&i.summary)
                .map(|p| count(&p.text) + count(&p.refusal))
                .sum::<u64>()
                + count(&i.arguments)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_stream_cap_and_texts() {
        let body = br#"{"model":"m","instructions":"Be brief.","input":[
            {"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","image_url":"data:x"}]},
            {"type":"function_call","call_id":"c1","name":"f","arguments":"{\"a\":1}"},
            {"type":"function_call_output","call_id":"c1","output":"sunny"}],
            "stream":true,"max_output_tokens":64}"#;
        let r = parse(body).unwrap();
        assert_eq!((r.model.as_ref(), r.stream), ("m", true));
        assert_eq!(r.max_output_tokens, Some(64));
        assert_eq!(r.texts(), ["Be brief.", "hi", "{\"a\":1}", "sunny"]);
        assert_eq!(r.fields().len(), 4, "all but model");
        let r = parse(br#"{"model":"m","input":"hello","max_output_tokens":null}"#).unwrap();
        assert_eq!((r.stream, r.max_output_tokens), (false, None));
        assert_eq!(r.texts(), ["hello"]);
        assert!(parse(br#"{"model":"m","previous_response_id":"resp_1"}"#).is_ok());
    }

    #[test]
    fn bad_requests_name_the_field() {
        for (body, want) in [
            (r#"[]"#, "not a JSON object"),
            (r#"{"input":"x"}"#, "`model` is required"),
            (r#"{"model":7,"input":"x"}"#, "`model` must be a string"),
            (r#"{"model":"m"}"#, "`input` is required"),
            (r#"{"model":"m","input":[]}"#, "`input` must not be empty"),
            (r#"{"model":"m","input":5}"#, "`input` must be a string"),
            (
                r#"{"model":"m","input":["x"]}"#,
                "`input[0]` must be an object",
            ),
            (r#"{"model":"m","input":"x","stream":"yes"}"#, "`stream`"),
            (
                r#"{"model":"m","input":"x","max_output_tokens":-3}"#,
                "`max_output_tokens`",
            ),
            (
                r#"{"model":"m","input":"x","instructions":[1]}"#,
                "`instructions`",
            ),
            (r#"{"model":"m","input":"x","input":"y"}"#, "given twice"),
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn usage_with_cached_and_reasoning_tokens() {
        let body = br#"{"id":"resp_1","object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"abcd"}]}],
            "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":20},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123}}"#;
        let u = body_usage(body).unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.cached_tokens,
                u.completion_tokens,
                u.reasoning_tokens
            ),
            (36, 20, 87, 64)
        );
        assert_eq!(u.total_tokens, 123);
        assert_eq!(body_text_chars(body), 4);
        assert!(body_usage(br#"{"output":[]}"#).is_none());
        assert!(body_usage(br#"{"usage":null}"#).is_none());
    }

    #[test]
    fn error_event_is_an_sse_error() {
        let ev = error_event(&GatewayError::Upstream("the vendor broke".into()));
        let text = std::str::from_utf8(&ev).unwrap();
        let data = text.strip_prefix("event: error\ndata: ").unwrap();
        let v: serde_json::Value = serde_json::from_str(data.trim_end()).unwrap();
        assert_eq!(v["type"], "error");
        assert!(v["message"].as_str().unwrap().contains("the vendor broke"));
        assert!(v["code"].is_string());
    }
}
