//! Embeddings on Vertex AI: Google's text embeddings API is `:predict` on the model
//! (`publishers/google/models/{model}:predict`), not the Gemini API's `batchEmbedContents`
//! (Google Cloud, "Get text embeddings" and the "Text embeddings API" reference):
//!
//! - request: `{"instances":[{"content":"…"}, …],"parameters":{"outputDimensionality":N}}`;
//! - answer: `{"predictions":[{"embeddings":{"values":[…],"statistics":{"token_count":N,
//!   "truncated":false}}}, …]}`.
//!
//! The door's translation makes `batchEmbedContents`' body ([`crate::convert`]'s
//! `embeddings_to_gemini`, shared with the `gemini` kind); [`request`] re-shapes it for
//! `:predict`, and [`Answer`] re-shapes the answer back into `batchEmbedContents`' before the
//! same translation reads it. Google documents `gemini-embedding-001` as taking one input
//! per request: Vertex's own 400 for more reaches the client as a 400.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::upstream::reframe::{Corrupt, Reframe};

/// `batchEmbedContents`' request, as far as it is read here.
#[derive(Deserialize)]
struct Batch {
    requests: Vec<One>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct One {
    content: Content,
    #[serde(alias = "output_dimensionality")]
    output_dimensionality: Option<u64>,
    #[serde(default, alias = "task_type")]
    task_type: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: String,
}

/// `:predict`'s request.
#[derive(Serialize)]
struct Predict<'a> {
    instances: Vec<Instance<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Parameters>,
}

#[derive(Serialize)]
struct Instance<'a> {
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    output_dimensionality: u64,
}

/// The `:predict` body for a `batchEmbedContents` body: one instance per request, the texts
/// of its parts joined; `outputDimensionality` (the same for every request) as a parameter.
pub fn request(body: &[u8]) -> Result<Bytes, GatewayError> {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("not a batchEmbedContents body for Vertex: {e}"))
    })?;
    predict(&batch)
}

/// The `:predict` body for an `embedContent` body (the Gemini door's): one instance.
pub fn request_one(body: &[u8]) -> Result<Bytes, GatewayError> {
    let one: One = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("not an embedContent body for Vertex: {e}"))
    })?;
    predict(&Batch {
        requests: vec![one],
    })
}

fn predict(batch: &Batch) -> Result<Bytes, GatewayError> {
    let texts: Vec<String> = batch
        .requests
        .iter()
        .map(|r| r.content.parts.iter().map(|p| p.text.as_str()).collect())
        .collect();
    let predict = Predict {
        instances: texts
            .iter()
            .zip(&batch.requests)
            .map(|(t, r)| Instance {
                content: t,
                task_type: r.task_type.as_deref(),
            })
            .collect(),
        parameters: batch
            .requests
            .first()
            .and_then(|r| r.output_dimensionality)
            .map(|n| Parameters {
                output_dimensionality: n,
            }),
    };
    serde_json::to_vec(&predict)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("embeddings body for vertex: {e}")))
}

/// `:predict`'s answer.
#[derive(Deserialize)]
struct Predictions {
    #[serde(default)]
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: Values,
}

#[derive(Deserialize, Serialize)]
struct Values {
    #[serde(default)]
    values: Vec<f32>,
}

/// `batchEmbedContents`' answer.
#[derive(Serialize)]
struct BatchAnswer {
    embeddings: Vec<Values>,
}

/// `embedContent`'s answer.
#[derive(Serialize)]
struct OneAnswer {
    embedding: Values,
}

/// Gathers a `:predict` answer and gives it, at its end, as `batchEmbedContents`' answer
/// (`{"embeddings":[{"values":[…]}, …]}`, in order). An answer that is not `:predict`'s
/// is [`Corrupt`].
#[derive(Default)]
pub struct Answer {
    body: Vec<u8>,
    /// `embedContent`'s answer (the first prediction) instead of `batchEmbedContents`'.
    one: bool,
}

impl Answer {
    /// The re-framer of an `embedContent` call's answer.
    pub fn one() -> Answer {
        Answer {
            body: Vec::new(),
            one: true,
        }
    }
}

impl Reframe for Answer {
    fn feed(&mut self, bytes: &[u8]) -> Result<Bytes, Corrupt> {
        self.body.extend_from_slice(bytes);
        Ok(Bytes::new())
    }

    fn finish(&mut self) -> Result<Bytes, Corrupt> {
        let answer: Predictions = serde_json::from_slice(&self.body)
            .map_err(|e| Corrupt(format!("not a :predict answer: {e}")))?;
        let mut embeddings: Vec<Values> = answer
            .predictions
            .into_iter()
            .map(|p| p.embeddings)
            .collect();
        let out = match self.one {
            true => {
                let embedding = embeddings
                    .drain(..)
                    .next()
                    .ok_or_else(|| Corrupt("a :predict answer without predictions".into()))?;
                serde_json::to_vec(&OneAnswer { embedding })
            }
            false => serde_json::to_vec(&BatchAnswer { embeddings }),
        };
        out.map(Bytes::from).map_err(|e| Corrupt(e.to_string()))
    }

    fn content_type(&self) -> &'static str {
        "application/json"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_requests_become_predict_instances_and_back() {
        let body = br#"{"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"hello"}]},"outputDimensionality":8},{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"world"}]},"outputDimensionality":8}]}"#;
        let out = request(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"instances":[{"content":"hello"},{"content":"world"}],"parameters":{"outputDimensionality":8}}"#
        );
        let plain =
            request(br#"{"requests":[{"model":"m","content":{"parts":[{"text":"a"}]}}]}"#).unwrap();
        assert_eq!(&plain[..], br#"{"instances":[{"content":"a"}]}"#);

        let answer = br#"{"predictions":[{"embeddings":{"statistics":{"truncated":false,"token_count":2},"values":[0.5,-1]}},{"embeddings":{"values":[0.25]}}],"metadata":{"billableCharacterCount":10}}"#;
        let mut reframe = Answer::default();
        for piece in answer.chunks(7) {
            assert!(reframe.feed(piece).unwrap().is_empty());
        }
        assert_eq!(
            &reframe.finish().unwrap()[..],
            br#"{"embeddings":[{"values":[0.5,-1.0]},{"values":[0.25]}]}"#
        );
        let one =
            request_one(br#"{"content":{"parts":[{"text":"hi"}]},"task_type":"RETRIEVAL_QUERY"}"#)
                .unwrap();
        assert_eq!(
            &one[..],
            br#"{"instances":[{"content":"hi","task_type":"RETRIEVAL_QUERY"}]}"#
        );
        let mut reframe = Answer::one();
        reframe.feed(answer).unwrap();
        assert_eq!(
            &reframe.finish().unwrap()[..],
            br#"{"embedding":{"values":[0.5,-1.0]}}"#
        );
        let mut bad = Answer::default();
        bad.feed(b"{\"predictions\":").unwrap();
        assert!(bad.finish().is_err());
    }
}
