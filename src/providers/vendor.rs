//! The [`Vendor`] trait: everything the gateway needs to know about one vendor kind, so that a
//! kind is one file (`providers/<kind>.rs`) and one line in [`super::vendor`].
//!
//! Each method has the behaviour most vendors share as its default; a vendor overrides what is
//! its own. The methods are pure: they look at the provider's config and the bytes given, and
//! do no I/O.
//!
//! Room for what comes next (issue #28): a vendor whose requests are signed (AWS SigV4) or
//! carry a short-lived token (Vertex) overrides [`Vendor::auth_headers`] (today built from
//! the static key by [`Vendor::key_header`]); such a vendor will need the request's method,
//! URI and body hash there, which can be added as an argument without touching the others.

use crate::config::Provider;
use crate::dialect::Dialect;

use super::Operation;

/// One vendor kind: its wire protocol and its config.
pub trait Vendor: Sync {
    /// The kind as written in the config (`kind = "openai"`).
    fn name(&self) -> &'static str;

    /// The `gen_ai.provider.name` of spans of calls to this vendor: the OpenTelemetry GenAI
    /// semantic conventions' well-known value where there is one.
    fn telemetry_name(&self) -> &'static str;

    /// The generation dialect the vendor speaks.
    fn dialect(&self) -> Dialect;

    /// Whether the vendor speaks `dialect` natively (then the client's bytes go through).
    fn speaks(&self, dialect: Dialect) -> bool {
        dialect == self.dialect()
    }

    /// The path (and query) of the endpoint for `op` on `upstream_model`, after the
    /// provider's `base_url` path.
    fn path(
        &self,
        provider: &Provider,
        upstream_model: &str,
        stream: bool,
        op: Operation,
    ) -> String;

    /// Whether the vendor counts a request's tokens itself ([`Operation::CountTokens`]);
    /// others are answered with the gateway's estimate.
    fn counts_tokens(&self) -> bool {
        false
    }

    /// The header that carries the provider's key, if the vendor takes one.
    fn key_header(&self, _key: &str) -> Option<(&'static str, String)> {
        None
    }

    /// The headers that authenticate a request to this provider (the key's header when the
    /// provider has a key).
    fn auth_headers(&self, provider: &Provider) -> Vec<(&'static str, String)> {
        provider
            .api_key
            .as_ref()
            .and_then(|key| self.key_header(key.expose()))
            .into_iter()
            .collect()
    }

    /// The client headers this vendor defines that the gateway forwards (lower-case names),
    /// each with the vendor doc it comes from; see [`super::headers`] for the headers every
    /// vendor takes and those none ever does. By default none.
    fn client_headers(&self) -> &'static [super::headers::Defined] {
        &[]
    }

    /// Headers set when the client did not send them (an API version).
    fn default_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Whether the vendor's chat endpoint takes `stream_options` (so that its stream can end
    /// with usage).
    fn takes_stream_options(&self, _provider: &Provider) -> bool {
        true
    }

    /// The status to act on for the vendor's error answer (`status`, `body`): by default the
    /// status itself.
    fn status(&self, status: u16, _body: &[u8]) -> u16 {
        status
    }

    /// Whether the vendor's own (untranslated, non-streaming) answer is a refusal on content
    /// grounds. See [`super::is_content_filter`].
    fn is_content_filter(&self, _status: u16, _body: &[u8]) -> bool {
        false
    }

    /// Whether the vendor answers in-process (no upstream, no retries, no upstream metrics).
    fn is_local(&self) -> bool {
        false
    }

    /// The provider fields of the config this kind takes.
    fn fields(&self) -> ConfigFields {
        ConfigFields::REMOTE
    }
}

/// Which `[[providers]]` fields a kind takes. A field a kind does not take is refused when
/// set (it would be silently unused, almost always a copy-paste mistake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigFields {
    /// `base_url` is required (`true`) or refused (`false`).
    pub base_url: bool,
    /// `api_key_env` is allowed.
    pub api_key_env: bool,
    /// `api_version` is required (`true`) or refused (`false`).
    pub api_version: bool,
    /// `chat_only` is allowed.
    pub chat_only: bool,
    /// `default_max_tokens` is allowed.
    pub default_max_tokens: bool,
    /// `forward_headers` is allowed (a kind with an upstream).
    pub forward_headers: bool,
}

impl ConfigFields {
    /// A vendor reached over the network with a key: `base_url`, `api_key_env` and
    /// `forward_headers`.
    pub const REMOTE: ConfigFields = ConfigFields {
        base_url: true,
        api_key_env: true,
        api_version: false,
        chat_only: false,
        default_max_tokens: false,
        forward_headers: true,
    };
}
