//! The Gemini door's embeddings (`POST /v1beta/models/{model}:embedContent` and
//! `:batchEmbedContents`) on routes whose vendor speaks OpenAI's embeddings: the request
//! becomes an OpenAI embeddings body, and the answer Google's shape again. Google's API
//! reference, "Embeddings": `embedContent` takes `{"content":{"parts":[{"text"}]},
//! "taskType","title","outputDimensionality"}` and answers `{"embedding":{"values":[…]}}`;
//! `batchEmbedContents` takes `{"requests":[{"model":"models/{model}", …}]}` and answers
//! `{"embeddings":[{"values":[…]}]}`, in the order of the requests.
//!
//! Mapped: a content's text parts (joined by newlines: Gemini embeds a content as one text)
//! → one `input` string, each batch request one input, in order; `outputDimensionality` →
//! `dimensions` (a batch must give one value throughout: OpenAI takes one per request); the
//! vectors (`data[].embedding`, by `index`) → `values`, their numbers as the vendor wrote them.
//! Refused (400 naming the field): a content without text, a batch request whose `model` is
//! not the path's (Google: "The model of each request must match the model of the batch"),
//! different `outputDimensionality` values in one batch, an empty batch. Dropped: `taskType`
//! and `title` (OpenAI's embeddings have no task types), snake_case spellings read alike.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::dialect::gemini::wire::ContentIn;
use crate::error::{printable, GatewayError};

use super::chunks::to_bytes;
use super::errors::unreadable;

fn invalid(what: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest(what.into())
}

/// An `EmbedContentRequest` (the body of `embedContent`, or one of a batch's `requests`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedIn<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<ContentIn<'a>>,
    #[serde(default, alias = "output_dimensionality")]
    output_dimensionality: Option<u64>,
}

#[derive(Deserialize)]
struct BatchIn<'a> {
    #[serde(borrow, default)]
    requests: Vec<EmbedIn<'a>>,
}

#[derive(Serialize)]
struct EmbeddingsOut<'a> {
    model: &'a str,
    input: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u64>,
}

/// The OpenAI embeddings body for an `embedContent` (`batch` false) or `batchEmbedContents`
/// request to `model` (the path's), sent to `upstream_model`; bad input is a 400 naming the
/// field.
pub(crate) fn request(
    body: &[u8],
    model: &str,
    upstream_model: &str,
    batch: bool,
) -> Result<Bytes, GatewayError> {
    let requests = match batch {
        true => {
            let b: BatchIn<'_> = serde_json::from_slice(body).map_err(|e| {
                invalid(format!(
                    "the request body is not a BatchEmbedContentsRequest: {e}"
                ))
            })?;
            if b.requests.is_empty() {
                return Err(invalid("`requests` must not be empty"));
            }
            b.requests
        }
        false => vec![serde_json::from_slice::<EmbedIn<'_>>(body).map_err(|e| {
            invalid(format!(
                "the request body is not an EmbedContentRequest: {e}"
            ))
        })?],
    };
    let mut input = Vec::with_capacity(requests.len());
    let mut dimensions = None;
    for (i, r) in requests.into_iter().enumerate() {
        let at = match batch {
            true => format!("requests[{i}]."),
            false => String::new(),
        };
        if let Some(m) = r.model.as_deref() {
            if batch && m.strip_prefix("models/").unwrap_or(m) != model {
                return Err(invalid(format!(
                    "`{at}model` `{}` is not the model of the batch (`models/{model}`)",
                    printable(m, 64)
                )));
            }
        }
        if i > 0 && r.output_dimensionality != dimensions {
            return Err(invalid(format!(
                "`{at}outputDimensionality` differs from the first request's: this route's provider takes one for the batch"
            )));
        }
        dimensions = r.output_dimensionality;
        input.push(text_of(&at, r.content)?);
    }
    Ok(to_bytes(&EmbeddingsOut {
        model: upstream_model,
        input,
        dimensions,
    }))
}

/// A content's text parts, joined by newlines; none is a 400.
fn text_of(at: &str, content: Option<ContentIn<'_>>) -> Result<String, GatewayError> {
    let texts: Vec<Cow<'_, str>> = content
        .map(|c| c.parts.into_iter().filter_map(|p| p.text).collect())
        .unwrap_or_default();
    if texts.is_empty() {
        return Err(invalid(format!(
            "`{at}content.parts` holds no text to embed"
        )));
    }
    Ok(texts.join("\n"))
}

#[derive(Deserialize)]
struct ListIn<'a> {
    #[serde(borrow, default)]
    data: Vec<ItemIn<'a>>,
}

#[derive(Deserialize)]
struct ItemIn<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow)]
    embedding: &'a RawValue,
}

#[derive(Serialize)]
struct Values<'a> {
    values: &'a RawValue,
}

#[derive(Serialize)]
struct One<'a> {
    embedding: Values<'a>,
}

#[derive(Serialize)]
struct Many<'a> {
    embeddings: Vec<Values<'a>>,
}

/// An OpenAI embeddings answer in Google's shape: `{"embedding":{"values"}}`, or for a batch
/// `{"embeddings":[{"values"}…]}` in the order of the inputs.
pub(crate) fn answer(embeddings_answer: &[u8], batch: bool) -> Result<Bytes, GatewayError> {
    let mut list: ListIn<'_> = serde_json::from_slice(embeddings_answer)
        .map_err(|e| unreadable("openai", "an embeddings answer", e))?;
    list.data.sort_by_key(|d| d.index);
    if list
        .data
        .iter()
        .any(|d| !d.embedding.get().starts_with('['))
    {
        return Err(unreadable(
            "openai",
            "an embeddings answer",
            "a vector that is not a list of numbers",
        ));
    }
    let mut values = list.data.iter().map(|d| Values {
        values: d.embedding,
    });
    if batch {
        return Ok(to_bytes(&Many {
            embeddings: values.collect(),
        }));
    }
    let first = values
        .next()
        .ok_or_else(|| unreadable("openai", "an embeddings answer", "no vector"))?;
    Ok(to_bytes(&One { embedding: first }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn body(v: Value, batch: bool) -> Result<Value, GatewayError> {
        request(v.to_string().as_bytes(), "emb", "up", batch)
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn one_content_and_a_batch() {
        assert_eq!(
            body(
                json!({"content": {"parts": [{"text": "a"}, {"text": "b"}]},
                       "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8}),
                false
            )
            .unwrap(),
            json!({"model": "up", "input": ["a\nb"], "dimensions": 8})
        );
        assert_eq!(
            body(
                json!({"requests": [
                    {"model": "models/emb", "content": {"parts": [{"text": "x"}]}, "output_dimensionality": 4},
                    {"model": "emb", "content": {"parts": [{"text": "y"}]}, "outputDimensionality": 4}
                ]}),
                true
            )
            .unwrap(),
            json!({"model": "up", "input": ["x", "y"], "dimensions": 4})
        );
    }

    #[test]
    fn bad_batches_are_400s_naming_the_field() {
        for (v, field) in [
            (
                json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}),
                "`requests[0].model`",
            ),
            (
                json!({"requests": [
                    {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 4},
                    {"content": {"parts": [{"text": "y"}]}}
                ]}),
                "`requests[1].outputDimensionality`",
            ),
            (json!({"requests": []}), "`requests`"),
            (
                json!({"requests": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}]}),
                "`requests[0].content.parts`",
            ),
        ] {
            let e = body(v, true).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        let e = body(json!({"content": {"parts": []}}), false).unwrap_err();
        assert!(e.to_string().contains("`content.parts`"), "{e}");
    }

    #[test]
    fn answers_in_googles_shape() {
        let openai = json!({"object": "list", "model": "emb", "data": [
            {"object": "embedding", "index": 1, "embedding": [0.5, -1e-3]},
            {"object": "embedding", "index": 0, "embedding": [0.25, 1.0]}
        ], "usage": {"prompt_tokens": 2, "total_tokens": 2}});
        let bytes = openai.to_string();
        let many: Value = serde_json::from_slice(&answer(bytes.as_bytes(), true).unwrap()).unwrap();
        assert_eq!(
            many,
            json!({"embeddings": [{"values": [0.25, 1.0]}, {"values": [0.5, -1e-3]}]})
        );
        let one: Value = serde_json::from_slice(&answer(bytes.as_bytes(), false).unwrap()).unwrap();
        assert_eq!(one, json!({"embedding": {"values": [0.25, 1.0]}}));
        assert_eq!(answer(b"{\"data\":[]}", false).unwrap_err().status(), 502);
    }
}
