//! The [`Vendor`] trait: everything the gateway needs to know about one vendor kind, so that a
//! kind is one file (`providers/<kind>.rs`) and one line in [`super::vendor`].
//!
//! Each method has the behaviour most vendors share as its default; a vendor overrides what is
//! its own. The methods are pure: they look at the provider's config and the bytes given, and
//! do no I/O.
//!
//! The clouds (Bedrock, Vertex) serve several dialects on one provider, by model: a vendor may
//! answer [`Vendor::dialect_for`] per upstream model, wrap the body the dialect gives in its own
//! envelope ([`Vendor::envelope`]), sign each request ([`Vendor::sign`]: AWS SigV4, or a
//! short-lived OAuth token) and re-frame its answer's body into the dialect's server-sent
//! events ([`Vendor::reframe`]: AWS event streams).

use bytes::Bytes;

use crate::config::Provider;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::upstream::reframe::Reframe;

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

    /// The dialect the vendor speaks for `upstream_model`: by default its one
    /// [`Vendor::dialect`]; a cloud that serves several model families answers per model
    /// (Bedrock: Claude in the Messages body, others through Converse).
    fn dialect_for(&self, _provider: &Provider, _upstream_model: &str) -> Dialect {
        self.dialect()
    }

    /// Whether the vendor speaks `dialect` natively for `upstream_model`; by default
    /// [`Vendor::speaks`].
    fn speaks_for(&self, _provider: &Provider, _upstream_model: &str, dialect: Dialect) -> bool {
        self.speaks(dialect)
    }

    /// The upstream body made from `body`, the body in the vendor's dialect (the client's,
    /// spliced, or a translation): by default `body` itself. A cloud wraps it as it requires
    /// (Bedrock and Vertex take the Messages body without `model` and `stream`, with their own
    /// `anthropic_version`). `client` is the client's request head (Bedrock carries
    /// `anthropic-beta` in the body). What it drops of the client's is noted in `adjusted`
    /// (Bedrock drops the betas it does not take). An error is the client's answer.
    fn envelope(
        &self,
        _call: &Call<'_>,
        body: Bytes,
        _adjusted: &mut crate::dialect::adjusted::Adjustments,
    ) -> Result<Bytes, GatewayError> {
        Ok(body)
    }

    /// Authenticates the upstream request: by default nothing beyond
    /// [`Vendor::auth_headers`] (already in `head`). A cloud signs the whole request (AWS
    /// SigV4 over method, path, query, headers and the body's hash) or adds a short-lived
    /// token; credentials are refreshed off the request path, never fetched here. `head` is
    /// complete (Host, content type and length in); `body` is what will be sent.
    fn sign(
        &self,
        _provider: &Provider,
        _head: &mut http::request::Parts,
        _body: &[u8],
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    /// The re-framer of a successful answer's body when the vendor's wire framing is not the
    /// dialect's (AWS event streams → the dialect's server-sent events); by default `None`.
    fn reframe(&self, _call: &Call<'_>) -> Option<Box<dyn Reframe>> {
        None
    }

    /// Where the provider's credentials come from, as `switchyard check` says it (never a
    /// secret): a cloud's credential source; by default `None` (a key named in the config).
    fn credential_source(&self, _provider: &Provider) -> Option<String> {
        None
    }

    /// The provider's `base_url` when the config gives none, made from its other fields (a
    /// cloud's region); `None` when the kind has no default.
    fn default_base_url(&self, _raw: &crate::config::raw::Provider) -> Option<String> {
        None
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

    /// Whether the vendor counts the tokens of a request from the `door` dialect itself
    /// ([`Operation::CountTokens`]: Anthropic's `count_tokens` for the Messages door, Gemini's
    /// `countTokens` for the Gemini door, the request passing through); others are answered
    /// with the gateway's estimate.
    fn counts_tokens(&self, _door: Dialect) -> bool {
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

/// One upstream call, as the vendor hooks see it.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub provider: &'a Provider,
    /// The upstream's name for the model (the route's `model`).
    pub upstream_model: &'a str,
    pub op: Operation,
    pub stream: bool,
    /// The client's request head.
    pub client: &'a pingora::http::RequestHeader,
}

/// Whether a kind needs `base_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The field must be given.
    Required,
    /// The field may be given (else the kind's default, [`Vendor::default_base_url`]).
    Optional,
    /// The field is refused.
    Refused,
}

/// Which `[[providers]]` fields a kind takes. A field a kind does not take is refused when
/// set (it would be silently unused, almost always a copy-paste mistake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigFields {
    /// Whether `base_url` is required, optional or refused.
    pub base_url: Need,
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
    /// `project`, `location` and `credentials_file` (Google Cloud) are taken: `project` and
    /// `location` required.
    pub google: bool,
}

impl ConfigFields {
    /// A vendor reached over the network with a key: `base_url`, `api_key_env` and
    /// `forward_headers`.
    pub const REMOTE: ConfigFields = ConfigFields {
        base_url: Need::Required,
        api_key_env: true,
        api_version: false,
        chat_only: false,
        default_max_tokens: false,
        forward_headers: true,
        google: false,
    };
}
