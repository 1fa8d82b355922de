//! The OpenAI Embeddings answer as the gateway writes it for a translated vendor: the `list`
//! of `embedding` items (floats, or base64 of little-endian `f32`s) and its `usage`. OpenAI's
//! API reference, "The embedding object".

use serde::Serialize;

#[derive(Serialize)]
pub(crate) struct List<'a> {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<Item>,
    pub(crate) model: &'a str,
    pub(crate) usage: UsageOut,
}

#[derive(Serialize)]
pub(crate) struct Item {
    pub(crate) object: &'static str,
    pub(crate) index: usize,
    pub(crate) embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
pub(crate) struct UsageOut {
    pub(crate) prompt_tokens: u64,
    pub(crate) total_tokens: u64,
}
