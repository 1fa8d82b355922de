//! The request body: its bounded read, a borrowed view of the JSON, and the rewrite.
//!
//! The prompt is usually most of a request, and can be megabytes. The view keeps every
//! top-level field as raw JSON borrowed from the body (`&RawValue`), and the rewrite splices
//! those raw bytes into the upstream body: `messages` is validated once and copied once, never
//! re-serialised.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use pingora::proxy::Session;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// Pingora replays at most this many bytes of a request body on its own (`BODY_BUF_LIMIT`).
const RETRY_BUFFER_LIMIT: usize = 64 * 1024;

/// Reads the whole request body, refusing more than `limit` bytes.
///
/// Pingora forwards a body that `request_filter` has read only through its retry buffer, which
/// holds 64 KiB. So retry buffering is switched on only for the last 64 KiB of a body of known
/// length: pingora then calls `request_body_filter` once per upstream attempt with that tail,
/// and the proxy swaps in the full rewritten body there (see `notes/` and `proxy.rs`).
/// A chunked body of more than 64 KiB cannot be framed that way and gets 411.
pub async fn read(session: &mut Session, limit: usize) -> Result<Bytes, BodyError> {
    let declared = declared_length(session)?;
    if let Some(len) = declared {
        if len > limit {
            return Err(BodyError::TooLarge { declared: true });
        }
    }
    // Clients that send `Expect: 100-continue` (curl does above 1 KiB) wait for it before
    // sending the body; it goes out only now, once the request was authenticated.
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue
        && session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .is_err()
    {
        return Err(BodyError::ClientGone);
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    loop {
        let remaining = declared.map_or(0, |len| len.saturating_sub(buf.len()));
        if remaining <= RETRY_BUFFER_LIMIT {
            session.enable_retry_buffering();
        }
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge { declared: false });
                }
                buf.put_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(BodyError::ClientGone),
        }
    }
    if !buf.is_empty() && session.get_retry_buffer().is_none() {
        return Err(BodyError::Gateway(GatewayError::LengthRequired(format!(
            "a request body over {RETRY_BUFFER_LIMIT} bytes needs a Content-Length header"
        ))));
    }
    Ok(buf.freeze())
}

/// Why the body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit; `declared` when the client's Content-Length said so before any read.
    TooLarge {
        declared: bool,
    },
    /// The client went away or broke the framing: nobody to answer.
    ClientGone,
    Gateway(GatewayError),
}

fn declared_length(session: &Session) -> Result<Option<usize>, BodyError> {
    let Some(value) = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
    else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            BodyError::Gateway(GatewayError::InvalidRequest(
                "Content-Length is not a number".into(),
            ))
        })
}

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
    let max_tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|name| top.iter().find(|(k, _)| k == name))
        .and_then(|(_, v)| v.get().parse::<u64>().ok());

    Ok(ChatRequest {
        fields: top,
        model,
        stream,
        messages,
        max_tokens,
    })
}

fn invalid(msg: &str) -> GatewayError {
    GatewayError::InvalidRequest(msg.to_string())
}

/// Two fields with one name would let the gateway check one value and the vendor use the other.
fn reject_duplicates(fields: &[(Cow<'_, str>, &RawValue)]) -> Result<(), GatewayError> {
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

/// The roles of OpenAI's Chat Completions API (`function` is its deprecated tool role).
pub const MESSAGE_ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A message as the seed API (OpenAI's) requires it: an object whose `role` is one of
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

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// What changes between the client's body and the upstream's, besides `model`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RewriteOptions {
    /// Ask an OpenAI-compatible upstream for usage in the stream's last chunk.
    pub include_usage: bool,
}

/// The upstream body without its `model`, as parts: `{"model":` + name + the parts. The raw
/// values stay where they are in the client's body (shared `Bytes`, so a 1 MiB prompt is
/// not copied here); only keys, separators and a merged `stream_options` are the gateway's
/// own bytes. Built once per request; each attempt writes the body out once, for its
/// route's model name.
#[derive(Debug, Clone)]
pub struct Prepared {
    parts: Vec<Bytes>,
    len: usize,
}

impl Prepared {
    /// `body` is the buffer `req` was parsed from: the values are slices of it.
    pub fn new(req: &ChatRequest<'_>, body: &Bytes, opts: RewriteOptions) -> Prepared {
        let with_usage = opts.include_usage && req.stream;
        let merged = with_usage.then(|| merged_stream_options(req.field("stream_options")));
        let own_len: usize = req.fields.iter().map(|(k, _)| k.len() + 8).sum();
        let mut own =
            BytesMut::with_capacity(own_len + 32 + merged.as_ref().map_or(0, String::len));
        let mut parts = Vec::with_capacity(req.fields.len() * 2 + 3);
        let mut field = |own: &mut BytesMut, key: &str, value: Bytes| {
            own.put_u8(b',');
            let mut w = own.writer();
            write_json_string(&mut w, key);
            w.into_inner().put_u8(b':');
            parts.push(own.split().freeze());
            parts.push(value);
        };
        for (k, v) in &req.fields {
            if with_usage && k == "stream_options" {
                continue;
            }
            field(&mut own, k, share(body, v.get().as_bytes()));
        }
        if let Some(m) = merged {
            field(&mut own, "stream_options", Bytes::from(m));
        }
        parts.push(Bytes::from_static(b"}"));
        let len = parts.iter().map(Bytes::len).sum();
        Prepared { parts, len }
    }

    /// The full upstream body for one route's model name: one copy of the parts.
    pub fn body_for(&self, upstream_model: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len + upstream_model.len() + 16);
        out.put_slice(b"{\"model\":");
        let mut writer = out.writer();
        write_json_string(&mut writer, upstream_model);
        let mut out = writer.into_inner();
        for part in &self.parts {
            out.put_slice(part);
        }
        out.freeze()
    }
}

/// `part` as a slice of `body` when it lies inside it (no copy), else a copy of its own.
fn share(body: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    if start <= body.len() && part.len() <= body.len() - start {
        body.slice(start..start + part.len())
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// The client's `stream_options` with `include_usage: true`, keeping whatever else it set.
fn merged_stream_options(client: Option<&RawValue>) -> String {
    let mut map = client
        .and_then(|raw| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get()).ok()
        })
        .unwrap_or_default();
    map.insert("include_usage".into(), serde_json::Value::Bool(true));
    serde_json::Value::Object(map).to_string()
}

/// Appends `s` as a JSON string literal, escaped in place.
fn write_json_string<W: std::io::Write>(out: &mut W, s: &str) {
    // Writing a &str into a Vec or BytesMut writer cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// A JSON object's top-level entries, in order, values left raw. Keys borrow from the input
/// unless they contain escapes.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    out.push((key.0, value));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A string that borrows when it can (`Cow<str>` alone always allocates under serde).
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rewrite(body: &str, upstream: &str, include_usage: bool) -> Value {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let req = parse(&body).unwrap();
        let p = Prepared::new(&req, &body, RewriteOptions { include_usage });
        serde_json::from_slice(&p.body_for(upstream)).unwrap()
    }

    #[test]
    fn lifts_model_params_and_rewrites_model() {
        let v = rewrite(
            r#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"temperature":0.5,
               "model_params":{"temperature":1,"top_p":0.9}}"#,
            "up-model",
            false,
        );
        assert_eq!(
            v,
            json!({"model":"up-model","messages":[{"role":"user","content":"hi"}],
                   "temperature":0.5,"top_p":0.9})
        );
    }

    #[test]
    fn values_are_shared_with_the_client_body_not_copied() {
        let body = Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hello"}],"n":1}"#,
        );
        let req = parse(&body).unwrap();
        let p = Prepared::new(&req, &body, RewriteOptions::default());
        let inside = |b: &[u8]| {
            let (s, o) = (b.as_ptr() as usize, body.as_ptr() as usize);
            s >= o && s + b.len() <= o + body.len()
        };
        let messages = p.parts.iter().find(|b| b.starts_with(b"[{")).unwrap();
        assert!(
            inside(messages),
            "the messages are a slice of the client's body"
        );
        // A slice from elsewhere is copied, with the same bytes.
        let other = b"[1,2]".to_vec();
        let shared = share(&body, &other);
        assert_eq!(&shared[..], b"[1,2]");
        assert!(!inside(&shared));
    }

    #[test]
    fn messages_are_copied_byte_for_byte() {
        let msgs = r#"[{"role":"user","content":"a\u00e9 \"q\"  spaced   "}]"#;
        let body = Bytes::from(format!(r#"{{"messages":{msgs},"model":"m"}}"#));
        let req = parse(&body).unwrap();
        let out = Prepared::new(&req, &body, RewriteOptions::default()).body_for("u");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(msgs), "{text}");
    }

    #[test]
    fn streaming_gets_include_usage_and_keeps_client_options() {
        let v = rewrite(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,
               "stream_options":{"include_usage":false,"other":1}}"#,
            "u",
            true,
        );
        assert_eq!(v["stream_options"], json!({"include_usage":true,"other":1}));
        let v = rewrite(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#,
            "u",
            true,
        );
        assert_eq!(v["stream_options"], json!({"include_usage":true}));
        let v = rewrite(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            "u",
            true,
        );
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn model_name_is_escaped() {
        let v = rewrite(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            "we\"ird\\",
            false,
        );
        assert_eq!(v["model"], "we\"ird\\");
    }

    #[test]
    fn bad_bodies_are_400_with_a_reason() {
        let cases = [
            ("", "not a JSON object"),
            ("[1]", "not a JSON object"),
            ("{\"model\":1,\"messages\":[]}", "`model` must be a string"),
            ("{\"messages\":[{\"role\":\"user\"}]}", "`model` is required"),
            ("{\"model\":\"m\"}", "`messages` is required"),
            ("{\"model\":\"m\",\"messages\":{}}", "`messages` must be an array"),
            ("{\"model\":\"m\",\"messages\":[]}", "must not be empty"),
            ("{\"model\":\"m\",\"messages\":[1]}", "`messages[0]` must be an object"),
            ("{\"model\":\"m\",\"messages\":[{}]}", "`messages[0].role` is required"),
            ("{\"model\":\"m\",\"model\":\"n\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "given twice"),
            ("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model_params\":3}", "`model_params` must be an object"),
            ("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model_params\":{\"model\":\"x\"}}", "may not set `model`"),
            ("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", "`stream` must be a boolean"),
            ("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing", "not a JSON object"),
        ];
        for (body, want) in cases {
            let err = parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.to_string().contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn escaped_keys_are_understood() {
        let req = parse(
            br#"{"mod\u0065l":"m","messages":[{"role":"user","content":"x"}],"max_tokens":7}"#,
        )
        .unwrap();
        assert_eq!(req.model, "m");
        assert_eq!(req.max_tokens, Some(7));
    }

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
