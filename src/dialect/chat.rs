//! The chat-completions dialect (`POST /v1/chat/completions`, the seed API; spoken natively by
//! `openai` and `azure` vendors): its borrowed request view, with `model_params` lifted. Its
//! stream scanner is [`super::chat_stream`]; its error shape is [`crate::error::GatewayError::body`].

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::body::Fields;
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
    let fields: Fields<'_> = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("the request body is not a JSON object: {e}"))
    })?;
    let mut top = fields.0;
    reject_duplicates(&top)?;

    let model = take(&mut top, "model")
        .ok_or_else(|| invalid("`model` is required"))
        .and_then(|raw| {
            Cow::<str>::deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                .map_err(|_| invalid("`model` must be a string"))
        })?;
    if model.is_empty() {
        return Err(invalid("`model` must not be empty"));
    }
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

/// Two fields with one name would let the gateway check one value and the vendor use the other.
pub fn reject_duplicates(fields: &[(Cow<'_, str>, &RawValue)]) -> Result<(), GatewayError> {
    for (i, (k, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(other, _)| other == k) {
            return Err(GatewayError::InvalidRequest(format!(
                "the field `{}` is given twice",
                truncate(k, 64)
            )));
        }
    }
    Ok(())
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

/// A message must be an object with a string `role`; its content is the vendor's business.
fn check_message(i: usize, raw: &RawValue) -> Result<(), GatewayError> {
    #[derive(Deserialize)]
    struct Msg<'a> {
        #[serde(borrow)]
        role: Option<Cow<'a, str>>,
    }
    match serde_json::from_str::<Msg<'_>>(raw.get()) {
        Ok(Msg { role: Some(_) }) => Ok(()),
        Ok(Msg { role: None }) => Err(GatewayError::InvalidRequest(format!(
            "`messages[{i}].role` is required"
        ))),
        Err(_) => Err(GatewayError::InvalidRequest(format!(
            "`messages[{i}]` must be an object with a string `role`"
        ))),
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

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
