//! Anthropic (`kind = "anthropic"`): the Messages API and its `count_tokens`, the key in
//! `x-api-key`, an `anthropic-version` header, and the client's `anthropic-version` and
//! `anthropic-beta` kept.

use crate::config::Provider;
use crate::dialect::{refusal, Dialect};

use super::headers::Defined;
use super::vendor::{ConfigFields, Vendor};
use super::Operation;

/// The Messages API version sent when the client gave none (a client on the `/v1/messages`
/// door may send its own `anthropic-version`, which is kept).
pub const VERSION: &str = "2023-06-01";

/// The Anthropic API.
pub struct Anthropic;

/// The client headers the Anthropic API defines that the gateway forwards (not the SDKs'
/// `x-stainless-*` telemetry, nor `anthropic-dangerous-direct-browser-access`, which is for
/// browsers calling Anthropic directly).
const CLIENT_HEADERS: &[Defined] = &[
    // "You must send an anthropic-version request header": Anthropic API reference, Versions.
    ("anthropic-version", "Anthropic API reference, Versions"),
    // Beta features by name, comma-separated: Anthropic API reference, Beta headers.
    ("anthropic-beta", "Anthropic API reference, Beta headers"),
];

impl Vendor for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn telemetry_name(&self) -> &'static str {
        "anthropic"
    }

    fn dialect(&self) -> Dialect {
        Dialect::Messages
    }

    fn path(&self, _provider: &Provider, _model: &str, _stream: bool, op: Operation) -> String {
        match op {
            Operation::CountTokens => "/v1/messages/count_tokens".to_string(),
            Operation::Embed | Operation::EmbedOne => "/embeddings".to_string(),
            Operation::Generate | Operation::Respond => "/v1/messages".to_string(),
        }
    }

    fn counts_tokens(&self, door: Dialect) -> bool {
        door == Dialect::Messages
    }

    fn key_header(&self, key: &str) -> Option<(&'static str, String)> {
        Some(("x-api-key", key.to_string()))
    }

    fn client_headers(&self) -> &'static [Defined] {
        CLIENT_HEADERS
    }

    fn default_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[("anthropic-version", VERSION)]
    }

    /// A 200 answer with `stop_reason: "refusal"`.
    fn is_content_filter(&self, status: u16, body: &[u8]) -> bool {
        status == 200 && refusal::messages(body)
    }

    fn fields(&self) -> ConfigFields {
        ConfigFields {
            default_max_tokens: true,
            ..ConfigFields::REMOTE
        }
    }
}
