//! The OpenAI Embeddings dialect (`POST /v1/embeddings`, spoken natively by `openai` and
//! `azure` vendors): its borrowed request view and the usage of its answers. OpenAI's API
//! reference, "Create embeddings": `input` is a string, an array of strings, an array of token
//! ids, or an array of arrays of token ids; `encoding_format` is `float` (the default) or
//! `base64`; `dimensions` and `user` are optional. The answer is
//! `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage":
//! {"prompt_tokens","total_tokens"}}`.

pub mod wire;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::accounting::usage::{estimate_tokens, Usage};
use crate::dialect::body::{fields_and_model, given};
use crate::error::GatewayError;

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    /// Token ids, as OpenAI's tokenizers number them.
    Tokens(Vec<u64>),
}

/// A borrowed view of an embeddings request.
#[derive(Debug)]
pub struct EmbeddingsRequest<'a> {
    /// Every top-level field but `model`, as raw values, in order.
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub model: Cow<'a, str>,
    pub inputs: Vec<Input>,
    /// `encoding_format: "base64"`: vectors as base64 of little-endian `f32`s.
    pub base64: bool,
    pub dimensions: Option<u64>,
}

impl<'a> EmbeddingsRequest<'a> {
    pub fn fields(&self) -> &[(Cow<'a, str>, &'a RawValue)] {
        &self.fields
    }

    /// Input tokens estimated: a token id is a token; text at about four characters a token.
    pub fn prompt_estimate(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| match i {
                Input::Text(t) => estimate_tokens(t.chars().count() as u64),
                Input::Tokens(ids) => ids.len() as u64,
            })
            .sum::<u64>()
            .max(1)
    }

    /// The input texts, for content policies.
    pub fn texts(&self) -> Vec<String> {
        self.inputs
            .iter()
            .filter_map(|i| match i {
                Input::Text(t) => Some(t.clone()),
                Input::Tokens(_) => None,
            })
            .collect()
    }
}

fn invalid(msg: &str) -> GatewayError {
    GatewayError::InvalidRequest(msg.to_string())
}

/// Parses an embeddings request; every problem is a 400 naming the field.
pub fn parse(body: &[u8]) -> Result<EmbeddingsRequest<'_>, GatewayError> {
    let (fields, model) = fields_and_model(body)?;
    let field = |name: &str| given(&fields, name);
    let input = field("input").ok_or_else(|| invalid("`input` is required"))?;
    let inputs = inputs(input)?;
    let base64 = match field("encoding_format").map(|v| v.get()) {
        None | Some("\"float\"") => false,
        Some("\"base64\"") => true,
        Some(_) => return Err(invalid("`encoding_format` must be `float` or `base64`")),
    };
    let dimensions = match field("dimensions") {
        None => None,
        Some(v) => Some(
            crate::dialect::chat::whole_number(v)
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("`dimensions` must be a positive whole number"))?,
        ),
    };
    Ok(EmbeddingsRequest {
        fields,
        model,
        inputs,
        base64,
        dimensions,
    })
}

/// `input` in any of its four shapes; empty inputs are refused as OpenAI refuses them.
fn inputs(raw: &RawValue) -> Result<Vec<Input>, GatewayError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum One {
        Text(String),
        Tokens(Vec<u64>),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Text(String),
        Tokens(Vec<u64>),
        Many(Vec<One>),
    }
    let bad =
        || invalid("`input` must be a string, an array of strings, or an array of token arrays");
    let out: Vec<Input> = match serde_json::from_str::<Shape>(raw.get()).map_err(|_| bad())? {
        Shape::Text(t) => vec![Input::Text(t)],
        Shape::Tokens(ids) => vec![Input::Tokens(ids)],
        Shape::Many(items) => items
            .into_iter()
            .map(|i| match i {
                One::Text(t) => Input::Text(t),
                One::Tokens(ids) => Input::Tokens(ids),
            })
            .collect(),
    };
    let empty = out.is_empty()
        || out.iter().any(|i| match i {
            Input::Text(t) => t.is_empty(),
            Input::Tokens(ids) => ids.is_empty(),
        });
    if empty {
        return Err(invalid("`input` must not be empty, nor hold an empty item"));
    }
    Ok(out)
}

/// The usage of an embeddings answer: `prompt_tokens` (all input; no output).
pub fn body_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<UsageWire>,
    }
    #[derive(Deserialize)]
    struct UsageWire {
        prompt_tokens: Option<u64>,
    }
    let prompt = serde_json::from_slice::<Answer>(body)
        .ok()?
        .usage?
        .prompt_tokens?;
    Some(Usage::new(prompt, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_shape() {
        let cases = [
            (r#""hello world""#, vec![Input::Text("hello world".into())]),
            (
                r#"["a","b"]"#,
                vec![Input::Text("a".into()), Input::Text("b".into())],
            ),
            ("[1,2,3]", vec![Input::Tokens(vec![1, 2, 3])]),
            (
                "[[1,2],[3]]",
                vec![Input::Tokens(vec![1, 2]), Input::Tokens(vec![3])],
            ),
        ];
        for (input, want) in cases {
            let body = format!(r#"{{"model":"e","input":{input}}}"#);
            let r = parse(body.as_bytes()).unwrap();
            assert_eq!(r.inputs, want, "{input}");
        }
        let r = parse(
            br#"{"model":"e","input":[[1,2],[3]],"encoding_format":"base64","dimensions":256}"#,
        )
        .unwrap();
        assert_eq!(
            (r.base64, r.dimensions, r.prompt_estimate()),
            (true, Some(256), 3)
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        for (body, want) in [
            (r#"{"input":"x"}"#, "`model` is required"),
            (r#"{"model":"e"}"#, "`input` is required"),
            (r#"{"model":"e","input":""}"#, "must not be empty"),
            (r#"{"model":"e","input":[]}"#, "must not be empty"),
            (r#"{"model":"e","input":{"a":1}}"#, "`input` must be"),
            (
                r#"{"model":"e","input":"x","encoding_format":"hex"}"#,
                "`encoding_format`",
            ),
            (
                r#"{"model":"e","input":"x","dimensions":-1}"#,
                "`dimensions`",
            ),
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn usage_has_no_output() {
        let u = body_usage(br#"{"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}"#).unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (8, 0, 8)
        );
        assert!(body_usage(br#"{"data":[]}"#).is_none());
    }
}
