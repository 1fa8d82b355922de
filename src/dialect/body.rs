//! The request body: its bounded read, a borrowed view of the JSON, and the rewrite.
//!
//! The prompt is usually most of a request, and can be megabytes. The view keeps every
//! top-level field as raw JSON borrowed from the body (`&RawValue`), and the rewrite splices
//! those raw bytes into the upstream body: `messages` is validated once and copied once, never
//! re-serialised.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use pingora::protocols::http::ServerSession as Session;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// Reads the whole request body, refusing more than `limit` bytes. Each upstream attempt
/// sends a body made from it (`prepare_attempt` in `gateway/attempt.rs`), with or without the
/// client's `Content-Length`.
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
    if expects_continue && session.write_continue_response().await.is_err() {
        return Err(BodyError::ClientGone);
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    loop {
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

/// What changes between the client's body and the upstream's, besides `model`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RewriteOptions {
    /// The request streams.
    pub stream: bool,
    /// Ask an OpenAI-compatible upstream for usage in the stream's last chunk (streams only).
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
    /// `fields` are the request's top-level fields but `model`, as raw values inside `body`
    /// (the buffer they were parsed from): the values are slices of it.
    pub fn new(
        fields: &[(Cow<'_, str>, &RawValue)],
        body: &Bytes,
        opts: RewriteOptions,
    ) -> Prepared {
        let with_usage = opts.include_usage && opts.stream;
        let stream_options = fields
            .iter()
            .find(|(k, _)| k == "stream_options")
            .map(|(_, v)| *v);
        let merged = with_usage.then(|| merged_stream_options(stream_options));
        let own_len: usize = fields.iter().map(|(k, _)| k.len() + 8).sum();
        let mut own =
            BytesMut::with_capacity(own_len + 32 + merged.as_ref().map_or(0, String::len));
        let mut parts = Vec::with_capacity(fields.len() * 2 + 3);
        let mut field = |own: &mut BytesMut, key: &str, value: Bytes| {
            own.put_u8(b',');
            let mut w = own.writer();
            write_json_string(&mut w, key);
            w.into_inner().put_u8(b':');
            parts.push(own.split().freeze());
            parts.push(value);
        };
        for (k, v) in fields {
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
pub fn write_json_string<W: std::io::Write>(out: &mut W, s: &str) {
    // Writing a &str into a Vec or BytesMut writer cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// A request body's top-level fields (raw values, in order, none given twice) and its `model`
/// taken out of them: how every front door opens a body, with the same 400s.
pub type TopFields<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

pub fn fields_and_model(body: &[u8]) -> Result<(TopFields<'_>, Cow<'_, str>), GatewayError> {
    let Fields(mut fields) = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("the request body is not a JSON object: {e}"))
    })?;
    reject_duplicates(&fields)?;
    let invalid = |m: &str| GatewayError::InvalidRequest(m.to_string());
    let at = fields
        .iter()
        .position(|(k, _)| k == "model")
        .ok_or_else(|| invalid("`model` is required"))?;
    let (_, raw) = fields.remove(at);
    let model = Cow::<str>::deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
        .map_err(|_| invalid("`model` must be a string"))?;
    if model.is_empty() {
        return Err(invalid("`model` must not be empty"));
    }
    Ok((fields, model))
}

/// A top-level field that is present and not `null` (`null` is absence).
pub fn given<'a>(fields: &[(Cow<'a, str>, &'a RawValue)], name: &str) -> Option<&'a RawValue> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .filter(|v| v.get() != "null")
}

/// Two fields with one name would let the gateway check one value and the vendor use the other.
pub fn reject_duplicates(fields: &[(Cow<'_, str>, &RawValue)]) -> Result<(), GatewayError> {
    for (i, (k, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(other, _)| other == k) {
            let name: String = k.chars().take(64).collect();
            return Err(GatewayError::InvalidRequest(format!(
                "the field `{name}` is given twice"
            )));
        }
    }
    Ok(())
}

/// A JSON object's top-level entries, in order, values left raw. Keys borrow from the input
/// unless they contain escapes.
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

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
pub struct CowStr<'a>(pub Cow<'a, str>);

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
    use crate::dialect::chat::parse;
    use serde_json::{json, Value};

    fn rewrite(body: &str, upstream: &str, include_usage: bool) -> Value {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let req = parse(&body).unwrap();
        let p = Prepared::new(
            req.fields(),
            &body,
            RewriteOptions {
                stream: req.stream,
                include_usage,
            },
        );
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
        let p = Prepared::new(req.fields(), &body, RewriteOptions::default());
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
        let out = Prepared::new(req.fields(), &body, RewriteOptions::default()).body_for("u");
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
}
