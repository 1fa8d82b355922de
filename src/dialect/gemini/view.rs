//! The Gemini door's borrowed view of a request body: what the gateway itself needs from it
//! (the output cap for the limits, the input for estimates, the texts for content policies),
//! every top-level field kept as raw JSON borrowed from the body, which goes upstream as the
//! client's bytes on a native route.
//!
//! Google's API reference: `GenerateContentRequest` (`contents[]`, `systemInstruction`,
//! `tools[]`, `generationConfig.maxOutputTokens`), `CountTokensRequest` (`contents[]` or
//! `generateContentRequest`), `EmbedContentRequest` (`content`) and
//! `BatchEmbedContentsRequest` (`requests[]`). Gemini's JSON is proto3 JSON: a parser takes a
//! field by its lowerCamelCase name or by the proto's snake_case one
//! (protobuf.dev, "ProtoJSON Format": "parsers accept both the lowerCamelCase name (or the one
//! specified by the json_name option) and the original proto field name"), and the SDKs send
//! some fields so (`system_instruction`, `generation_config`): the view reads both.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::door::Method;
use crate::dialect::body::{reject_duplicates, Fields};
use crate::dialect::chat::whole_number;
use crate::error::GatewayError;

/// A borrowed view of a Gemini door request.
pub struct GeminiRequest<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// `generationConfig.maxOutputTokens`, when given.
    pub max_tokens: Option<u64>,
}

impl<'a> GeminiRequest<'a> {
    /// The raw value of a top-level field, by its lowerCamelCase or snake_case name.
    pub fn field(&self, camel: &str) -> Option<&'a RawValue> {
        let snake = snake_case(camel);
        self.fields
            .iter()
            .find(|(k, _)| k == camel || *k == snake)
            .map(|(_, v)| *v)
    }

    /// The raw JSON of what the vendor reads as input: `systemInstruction`, `contents`,
    /// `tools` (a `countTokens`' `generateContentRequest`; an embedding's `content` or
    /// `requests`).
    pub fn input_json(&self) -> impl Iterator<Item = &'a str> + '_ {
        [
            "systemInstruction",
            "contents",
            "tools",
            "generateContentRequest",
            "content",
            "requests",
        ]
        .into_iter()
        .filter_map(|name| self.field(name).map(RawValue::get))
    }

    /// The text of each content to embed: `batchEmbedContents`' `requests[].content`, or
    /// `embedContent`'s `content` (its parts' texts joined by a space).
    pub fn embed_texts(&self) -> Vec<String> {
        let joined = |v: &serde_json::Value| {
            let mut texts = Vec::new();
            collect_texts(v, &mut texts);
            texts.join(" ")
        };
        if let Some(requests) = self.field("requests") {
            let requests: Vec<serde_json::Value> =
                serde_json::from_str(requests.get()).unwrap_or_default();
            return requests.iter().map(|r| joined(&r["content"])).collect();
        }
        self.field("content")
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c.get()).ok())
            .map(|c| vec![joined(&c)])
            .unwrap_or_default()
    }

    /// Every `text` of the input (the system instruction's, each content's parts', an
    /// embedding's), for content policies.
    pub fn texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for json in self.input_json() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(json) {
                collect_texts(&v, &mut out);
            }
        }
        out
    }
}

/// Parses a Gemini door request as far as the gateway needs it: a JSON object (no field given
/// twice) with what `method` requires; every problem is a 400 naming the field. What the
/// fields hold beyond that is the vendor's (or the translation's) to judge.
pub fn parse(body: &[u8], method: Method) -> Result<GeminiRequest<'_>, GatewayError> {
    let Fields(fields) = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("the request body is not a JSON object: {e}"))
    })?;
    reject_duplicates(&fields)?;
    if let Some((k, _)) = fields.iter().find(|(k, _)| {
        k.contains('_') && fields.iter().any(|(o, _)| snake_case(o) == **k && o != k)
    }) {
        let name: String = k.chars().take(64).collect();
        return Err(invalid(format!(
            "the field `{name}` is given twice, in snake_case and in lowerCamelCase"
        )));
    }
    let view = GeminiRequest {
        fields,
        max_tokens: None,
    };
    let required: &[&str] = match method {
        Method::Generate | Method::Stream => &["contents"],
        Method::CountTokens => &["contents", "generateContentRequest"],
        Method::Embed => &["content"],
        Method::BatchEmbed => &["requests"],
    };
    if !required.iter().any(|f| view.field(f).is_some()) {
        return Err(invalid(format!(
            "`{}` is required",
            required.join("` or `")
        )));
    }
    for name in ["contents", "requests"] {
        if let Some(v) = view.field(name) {
            if serde_json::from_str::<Vec<&RawValue>>(v.get()).is_err() {
                return Err(invalid(format!("`{name}` must be an array")));
            }
        }
    }
    let max_tokens = max_output_tokens(view.field("generationConfig"))?;
    Ok(GeminiRequest { max_tokens, ..view })
}

/// `generationConfig.maxOutputTokens` (or `max_output_tokens`), when given as a number.
fn max_output_tokens(config: Option<&RawValue>) -> Result<Option<u64>, GatewayError> {
    let Some(config) = config else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct Config<'a> {
        #[serde(
            borrow,
            default,
            rename = "maxOutputTokens",
            alias = "max_output_tokens"
        )]
        max: Option<&'a RawValue>,
    }
    let c: Config<'_> = serde_json::from_str(config.get())
        .map_err(|_| invalid("`generationConfig` must be an object".into()))?;
    match c.max {
        None => Ok(None),
        Some(v) if v.get() == "null" => Ok(None),
        Some(v) => whole_number(v).map(Some).ok_or_else(|| {
            invalid("`generationConfig.maxOutputTokens` must be a whole number".into())
        }),
    }
}

/// Every string under a `text` key, depth first.
fn collect_texts(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("text", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_texts(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_texts(v, out)),
        _ => {}
    }
}

/// `systemInstruction` → `system_instruction`.
fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn invalid(message: String) -> GatewayError {
    GatewayError::InvalidRequest(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_read() {
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],
            "system_instruction":{"parts":[{"text":"be brief"}]},
            "generation_config":{"max_output_tokens":64}}"#;
        let v = parse(body, Method::Generate).unwrap();
        assert_eq!(v.max_tokens, Some(64));
        assert_eq!(v.texts(), vec!["be brief".to_string(), "hi".to_string()]);
        let body = br#"{"contents":[],"generationConfig":{"maxOutputTokens":8}}"#;
        assert_eq!(parse(body, Method::Stream).unwrap().max_tokens, Some(8));
    }

    #[test]
    fn refusals_name_the_field() {
        let err = |body: &[u8], m| parse(body, m).err().unwrap().to_string();
        assert!(err(b"[]", Method::Generate).contains("not a JSON object"));
        assert!(err(b"{}", Method::Generate).contains("`contents` is required"));
        assert!(err(br#"{"contents":{}}"#, Method::Generate).contains("`contents` must be"));
        assert!(err(b"{}", Method::Embed).contains("`content`"));
        assert!(err(b"{}", Method::BatchEmbed).contains("`requests`"));
        assert!(err(b"{}", Method::CountTokens).contains("generateContentRequest"));
        let bad = br#"{"contents":[],"generationConfig":{"maxOutputTokens":"x"}}"#;
        assert!(err(bad, Method::Generate).contains("maxOutputTokens"));
        assert!(err(br#"{"contents":[],"contents":[]}"#, Method::Generate).contains("twice"));
        let both = br#"{"contents":[],"generationConfig":{},"generation_config":{}}"#;
        assert!(err(both, Method::Generate).contains("`generation_config` is given twice"));
    }
}

/// A `batchEmbedContents` body for a vendor of the Gemini dialect: the client's bytes with
/// each `requests[].model` that names the client's model (`client_model`, with or without
/// `models/`) replaced by `models/{upstream_model}`, nothing else changed. Google's reference
/// (`models.batchEmbedContents`): each request's model "must match the model specified in the
/// path", and the path now names the upstream model. A request naming another model is left
/// as it is (the vendor refuses it, as Google would); a body that cannot be read is returned
/// as it came (the door's view read it already).
pub fn batch_models_spliced(body: &Bytes, client_model: &str, upstream_model: &str) -> Bytes {
    #[derive(serde::Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        requests: Vec<Request<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(borrow, default)]
        model: Option<&'a RawValue>,
    }
    let Ok(batch) = serde_json::from_slice::<Batch<'_>>(body) else {
        return body.clone();
    };
    let names_client = |raw: &RawValue| {
        serde_json::from_str::<&str>(raw.get()).is_ok_and(|m| {
            m.strip_prefix("models/").unwrap_or(m)
                == client_model.strip_prefix("models/").unwrap_or(client_model)
        })
    };
    let spans: Vec<(usize, usize)> = batch
        .requests
        .iter()
        .filter_map(|r| r.model)
        .filter(|raw| names_client(raw))
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            (start, start + raw.get().len())
        })
        .collect();
    if spans.is_empty() {
        return body.clone();
    }
    let replacement =
        serde_json::to_string(&format!("models/{upstream_model}")).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + spans.len() * replacement.len());
    let mut at = 0;
    for (start, end) in spans {
        out.extend_from_slice(&body[at..start]);
        out.extend_from_slice(replacement.as_bytes());
        at = end;
    }
    out.extend_from_slice(&body[at..]);
    Bytes::from(out)
}

#[cfg(test)]
mod batch_tests {
    use super::batch_models_spliced;
    use bytes::Bytes;

    #[test]
    fn each_request_naming_the_clients_model_names_the_upstream_one() {
        let body = Bytes::from_static(
            br#"{"requests": [{"content": {"parts": [{"text": "models/flash"}]}, "model": "models/flash"},
                {"model":"flash","content":{}}, {"model": "models/other"}]}"#,
        );
        let out = batch_models_spliced(&body, "flash", "gemini-2.5-flash");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"requests": [{"content": {"parts": [{"text": "models/flash"}]}, "model": "models/gemini-2.5-flash"},
                {"model":"models/gemini-2.5-flash","content":{}}, {"model": "models/other"}]}"#
        );
        let bad = Bytes::from_static(b"{\"requests\": 5}");
        assert_eq!(batch_models_spliced(&bad, "flash", "x"), bad);
    }
}
