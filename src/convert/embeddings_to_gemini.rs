//! `/v1/embeddings` to `kind = "gemini"`: OpenAI embeddings requests to Gemini's
//! `batchEmbedContents` (`POST {base}/v1beta/models/{model}:batchEmbedContents`), and its
//! answer back to OpenAI's list shape. Google's API reference, "Embeddings":
//! `{"requests":[{"model":"models/{model}","content":{"parts":[{"text"}]},
//! "outputDimensionality"}]}` → `{"embeddings":[{"values":[…]}]}`.
//!
//! Mapped: each text input → one request; `dimensions` → `outputDimensionality`;
//! `encoding_format: "base64"` → the vectors written as base64 of little-endian `f32`s, as
//! OpenAI does (the OpenAI SDKs ask for it by default). Refused (400): token-id inputs (Gemini
//! embeds text). Dropped: `user`. Gemini reports no usage: it is estimated (marked) from the
//! input text.

use std::borrow::Cow;

use base64::Engine;
use bytes::Bytes;

use crate::dialect::embeddings::wire::{Item, List, UsageOut, Vector};
use crate::dialect::embeddings::{EmbeddingsRequest, Input};
use crate::dialect::gemini::wire::{BatchAnswer, BatchRequest, Content, EmbedRequest, Part};
use crate::error::GatewayError;

use super::chunks::to_bytes;
use super::errors::{unreadable, unsupported};

const VENDOR: &str = "gemini";

/// The `batchEmbedContents` body for `req`, sent to `upstream_model`.
pub fn request(req: &EmbeddingsRequest<'_>, upstream_model: &str) -> Result<Bytes, GatewayError> {
    let model = format!("models/{upstream_model}");
    let requests = req
        .inputs
        .iter()
        .map(|i| match i {
            Input::Text(text) => Ok(EmbedRequest {
                model: model.clone(),
                content: Content {
                    role: None,
                    parts: vec![Part::Text(Cow::Borrowed(text.as_str()))],
                },
                output_dimensionality: req.dimensions,
            }),
            Input::Tokens(_) => Err(unsupported(
                VENDOR,
                "`input` as token ids cannot be embedded by this route: send text",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(to_bytes(&BatchRequest { requests }))
}

/// A `batchEmbedContents` answer in OpenAI's list shape; `prompt_tokens` is the gateway's
/// estimate (Gemini reports none), so the meter marks it estimated only if the caller says so.
pub fn answer(
    body: &[u8],
    model: &str,
    base64: bool,
    prompt_estimate: u64,
) -> Result<Bytes, GatewayError> {
    let answer: BatchAnswer =
        serde_json::from_slice(body).map_err(|e| unreadable(VENDOR, "an answer", e))?;
    let data = answer
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, e)| Item {
            object: "embedding",
            index,
            embedding: if base64 {
                Vector::Base64(base64_f32(&e.values))
            } else {
                Vector::Floats(e.values)
            },
        })
        .collect();
    Ok(to_bytes(&List {
        object: "list",
        data,
        model,
        usage: UsageOut {
            prompt_tokens: prompt_estimate,
            total_tokens: prompt_estimate,
        },
    }))
}

/// Floats as OpenAI's base64 encoding: little-endian `f32`s.
pub fn base64_f32(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::embeddings::parse;
    use serde_json::{json, Value};

    #[test]
    fn requests_and_answers() {
        let req = parse(br#"{"model":"e","input":["a","b"],"dimensions":3}"#).unwrap();
        let v: Value =
            serde_json::from_slice(&request(&req, "text-embedding-004").unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"requests":[
                {"model":"models/text-embedding-004","content":{"parts":[{"text":"a"}]},"outputDimensionality":3},
                {"model":"models/text-embedding-004","content":{"parts":[{"text":"b"}]},"outputDimensionality":3}]})
        );
        let req = parse(br#"{"model":"e","input":[1,2]}"#).unwrap();
        assert_eq!(request(&req, "m").unwrap_err().status(), 400);

        let body = br#"{"embeddings":[{"values":[0.5,-1.0]},{"values":[0.25]}]}"#;
        let v: Value = serde_json::from_slice(&answer(body, "m", false, 4).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"object":"list","model":"m","usage":{"prompt_tokens":4,"total_tokens":4},
                   "data":[{"object":"embedding","index":0,"embedding":[0.5,-1.0]},
                           {"object":"embedding","index":1,"embedding":[0.25]}]})
        );
        let v: Value = serde_json::from_slice(&answer(body, "m", true, 4).unwrap()).unwrap();
        // 0.5f32 = 00 00 00 3f, -1.0f32 = 00 00 80 bf
        assert_eq!(v["data"][0]["embedding"], "AAAAPwAAgL8=");
    }
}
