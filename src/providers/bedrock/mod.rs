//! Amazon Bedrock Runtime (`kind = "bedrock"`): Claude through `InvokeModel` /
//! `InvokeModelWithResponseStream` with the Anthropic Messages body, every other model family
//! through `Converse` / `ConverseStream`; requests signed with SigV4 ([`sign`], credentials
//! from AWS's chain kept fresh by [`credentials`]) or a Bedrock API key (`api_key_env`, sent
//! as `Authorization: Bearer`); streams re-framed from AWS event streams ([`eventstream`]).
//!
//! Endpoint: `https://bedrock-runtime.{region}.amazonaws.com` ("Amazon Bedrock endpoints and
//! quotas", AWS General Reference), or `base_url` (VPC, FIPS endpoints, tests). Paths (Bedrock
//! API Reference): `/model/{modelId}/invoke`, `/model/{modelId}/invoke-with-response-stream`,
//! `/model/{modelId}/converse`, `/model/{modelId}/converse-stream`. The model id is one path
//! segment, percent-encoded: a foundation model id (`anthropic.claude-sonnet-4-…-v1:0`), a
//! cross-region inference profile (`us.`/`eu.`/`apac.`/`global.` + a model id), or an ARN
//! (`arn:aws:bedrock:…:inference-profile/…`, its `:` and `/` escaped).
//!
//! Which API a model goes through ([`api`]): Claude ids (`anthropic.claude…`, or behind a
//! geography prefix) through invoke; other readable ids through Converse; an id whose family
//! cannot be read from it (an application inference profile's or a provisioned model's ARN)
//! through the provider's `bedrock_api` (`invoke` or `converse`; `converse` when unset, which
//! serves every family).
//!
//! Errors (Bedrock API Reference, InvokeModel, "Errors"; the type is in the
//! `x-amzn-ErrorType` header, the words in the body's `{"message"}`): `ValidationException`
//! 400 (the client's 400, message kept), `AccessDeniedException` 403 /
//! `UnrecognizedClientException` 403 / `ExpiredTokenException` 403 (the gateway's credentials:
//! a 502, the route cooled), `ResourceNotFoundException` 404 (the model is not served in the
//! region: a 404), `ThrottlingException` 429 and `ModelNotReadyException` 429 (retried and
//! cooled as any 429, a `retry-after` honoured), `ServiceUnavailableException` 503,
//! `InternalServerException` 500, `ModelTimeoutException` 408, `ModelErrorException` 424 (a
//! 502). These are the gateway's usual rules by status ([`super::vendor_error`]).
//!
//! Usage: an invoke answer is Anthropic's message, and an invoke stream re-framed is
//! Anthropic's events, so usage is read as for `anthropic` (`message_start` /
//! `message_delta` usage, cache reads and writes included). Bedrock adds its own
//! `amazon-bedrock-invocationMetrics` (`inputTokenCount`, `outputTokenCount`) to the last
//! event; the Anthropic usage wins (it splits the cache tokens, which the metrics do not),
//! and the metrics pass through to a Messages client untouched.

pub mod credentials;
pub mod eventstream;
pub mod sign;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::Provider;
use crate::contract::bedrock as contract;
use crate::dialect::adjusted::Adjustments;
use crate::dialect::{refusal, Dialect};
use crate::error::GatewayError;
use crate::upstream::reframe::Reframe;

use super::vendor::{Call, ConfigFields, Need, Vendor};
use super::Operation;

/// A `bedrock` provider's own settings.
#[derive(Debug)]
pub struct Settings {
    /// The AWS region (`us-east-1`): the endpoint's and the signature's.
    pub region: String,
    /// `bedrock_api`: the API of model ids whose family cannot be read from them.
    pub api: Option<Api>,
    /// The AWS credentials, unless the provider has an API key (or was checked offline).
    pub credentials: Option<Arc<credentials::Keeper>>,
}

/// The Bedrock API a model is called through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `InvokeModel`: the model's own body (Claude: Anthropic Messages).
    Invoke,
    /// `Converse`: Bedrock's one body for every model.
    Converse,
}

impl Api {
    /// The `bedrock_api` value named `s`.
    pub fn parse(s: &str) -> Option<Api> {
        match s {
            "invoke" => Some(Api::Invoke),
            "converse" => Some(Api::Converse),
            _ => None,
        }
    }
}

/// Amazon Bedrock Runtime.
pub struct Bedrock;

/// Whether `region` looks like an AWS region (`us-east-1`, `us-gov-west-1`, `eu-central-2`).
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The model part of a model id: an ARN's resource id (after its last `/`), else the id.
/// `None` for an ARN whose resource does not name a model (an application inference
/// profile, a provisioned or custom model).
fn readable_model(id: &str) -> Option<&str> {
    let Some(rest) = id.strip_prefix("arn:") else {
        return Some(id);
    };
    let resource = rest.splitn(5, ':').nth(4)?;
    let (kind, name) = resource.split_once('/')?;
    matches!(kind, "foundation-model" | "inference-profile").then_some(name)
}

/// Whether a model id names Claude: `anthropic.claude…`, or a cross-region profile of it
/// (`us.anthropic.claude…`, `global.anthropic.claude…`).
pub fn is_claude(model: &str) -> bool {
    model.starts_with("anthropic.claude")
        || model
            .split_once('.')
            .is_some_and(|(geo, rest)| geo.len() <= 7 && rest.starts_with("anthropic.claude"))
}

/// The API `upstream_model` goes through on `provider` (see the module doc).
pub fn api(provider: &Provider, upstream_model: &str) -> Api {
    match readable_model(upstream_model) {
        Some(model) if is_claude(model) => Api::Invoke,
        Some(_) => Api::Converse,
        None => provider
            .bedrock
            .as_ref()
            .and_then(|b| b.api)
            .unwrap_or(Api::Converse),
    }
}

impl Vendor for Bedrock {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    /// OpenTelemetry GenAI semantic conventions, `gen_ai.provider.name`: `aws.bedrock`.
    fn telemetry_name(&self) -> &'static str {
        "aws.bedrock"
    }

    fn dialect(&self) -> Dialect {
        Dialect::Messages
    }

    /// Claude through invoke speaks Messages; every other model Converse
    /// ([`crate::convert::chat_to_converse`]).
    fn dialect_for(&self, provider: &Provider, upstream_model: &str) -> Dialect {
        match api(provider, upstream_model) {
            Api::Invoke => Dialect::Messages,
            Api::Converse => Dialect::Converse,
        }
    }

    fn speaks_for(&self, provider: &Provider, upstream_model: &str, dialect: Dialect) -> bool {
        dialect == self.dialect_for(provider, upstream_model)
    }

    fn envelope(
        &self,
        call: &Call<'_>,
        body: Bytes,
        adjusted: &mut Adjustments,
    ) -> Result<Bytes, GatewayError> {
        match api(call.provider, call.upstream_model) {
            Api::Invoke => invoke_body(call, &body, adjusted),
            Api::Converse => Ok(body),
        }
    }

    fn sign(
        &self,
        provider: &Provider,
        head: &mut http::request::Parts,
        body: &[u8],
    ) -> Result<(), GatewayError> {
        if provider.api_key.is_some() {
            return Ok(());
        }
        let settings = provider.bedrock.as_ref();
        let Some((region, keeper)) =
            settings.and_then(|s| s.credentials.as_ref().map(|k| (&s.region, k)))
        else {
            return Err(GatewayError::Upstream(format!(
                "provider `{}` has no AWS credentials",
                provider.name
            )));
        };
        let credentials = keeper.current();
        sign::sign(
            head,
            body,
            region,
            &credentials,
            std::time::SystemTime::now(),
        )
        .map_err(|e| GatewayError::Upstream(format!("provider `{}`: {e}", provider.name)))
    }

    fn reframe(&self, call: &Call<'_>) -> Option<Box<dyn Reframe>> {
        call.stream
            .then(|| Box::new(eventstream::EventStream::new()) as Box<dyn Reframe>)
    }

    /// `https://bedrock-runtime.{region}.amazonaws.com` (`.amazonaws.com.cn` in the China
    /// regions: "Amazon Bedrock endpoints and quotas", AWS General Reference).
    fn default_base_url(&self, raw: &crate::config::raw::Provider) -> Option<String> {
        let region = raw.region.as_ref()?.get_ref();
        let domain = match region.starts_with("cn-") {
            true => "amazonaws.com.cn",
            false => "amazonaws.com",
        };
        valid_region(region).then(|| format!("https://bedrock-runtime.{region}.{domain}"))
    }

    fn path(&self, provider: &Provider, model: &str, stream: bool, op: Operation) -> String {
        let id = super::path_segment(model);
        let action = match (op, api(provider, model), stream) {
            (Operation::Embed | Operation::EmbedOne | Operation::CountTokens, _, _) => "invoke",
            (_, Api::Invoke, false) => "invoke",
            (_, Api::Invoke, true) => "invoke-with-response-stream",
            (_, Api::Converse, false) => "converse",
            (_, Api::Converse, true) => "converse-stream",
        };
        format!("/model/{id}/{action}")
    }

    /// A Bedrock API key: `Authorization: Bearer` ("Use an Amazon Bedrock API key", Amazon
    /// Bedrock User Guide).
    fn key_header(&self, key: &str) -> Option<(&'static str, String)> {
        Some(("authorization", format!("Bearer {key}")))
    }

    /// A 200 invoke answer with `stop_reason: "refusal"` (Anthropic's message).
    fn is_content_filter(&self, status: u16, body: &[u8]) -> bool {
        status == 200 && refusal::messages(body)
    }

    fn credential_source(&self, provider: &Provider) -> Option<String> {
        if let Some(var) = &provider.api_key_env {
            return Some(format!("Bedrock API key ({var})"));
        }
        if provider.api_key.is_some() {
            return Some("Bedrock API key (api_key_file)".into());
        }
        let keeper = provider.bedrock.as_ref()?.credentials.as_ref()?;
        Some(format!("AWS {}", keeper.source().describe()))
    }

    fn fields(&self) -> ConfigFields {
        ConfigFields {
            base_url: Need::Optional,
            default_max_tokens: true,
            ..ConfigFields::REMOTE
        }
    }
}

/// The invoke body of a Messages body (see [`crate::contract::bedrock`]): `model` and
/// `stream` out, `anthropic_version` Bedrock's, the client's `anthropic-beta` header as
/// `anthropic_beta` (only the betas Bedrock takes), the fields of betas it does not take
/// dropped. What was dropped is noted in `adjusted`.
fn invoke_body(
    call: &Call<'_>,
    body: &[u8],
    adjusted: &mut Adjustments,
) -> Result<Bytes, GatewayError> {
    let mut top: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_slice(body)
        .map_err(|e| {
        GatewayError::InvalidRequest(format!("the request body is not a JSON object: {e}"))
    })?;
    top.remove("model");
    top.remove("stream");
    top.remove("anthropic_beta");
    let values = call
        .client
        .headers
        .get_all("anthropic-beta")
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    let (betas, dropped) = contract::betas(values);
    if dropped {
        adjusted.note(contract::BETA_DROPPED);
    }
    for &(place, field, beta, note) in contract::GATED {
        if betas.contains(&beta) {
            continue;
        }
        let removed = match place {
            contract::Place::Top => top.remove(field).is_some(),
            contract::Place::OutputConfig => remove_in(&mut top, "output_config", |v| {
                v.as_object_mut().and_then(|o| o.remove(field)).is_some()
            })?,
            contract::Place::Tool => remove_in(&mut top, "tools", |v| {
                let mut any = false;
                for tool in v.as_array_mut().into_iter().flatten() {
                    any |= tool.as_object_mut().and_then(|o| o.remove(field)).is_some();
                }
                any
            })?,
        };
        if removed {
            adjusted.note(note);
        }
    }
    for field in ["system", "messages", "tools"] {
        if remove_in(&mut top, field, drop_scopes)? {
            adjusted.note(contract::SCOPE_DROPPED);
        }
    }
    top.insert(
        "anthropic_version".into(),
        raw(&Value::from(contract::VERSION))?,
    );
    if !betas.is_empty() {
        top.insert("anthropic_beta".into(), raw(&Value::from(betas))?);
    }
    serde_json::to_vec(&top)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("bedrock body: {e}")))
}

/// Applies `edit` to `top[field]` when its raw text may hold something to edit; `true` when
/// `edit` changed it (then the field is written back).
fn remove_in(
    top: &mut std::collections::BTreeMap<String, Box<RawValue>>,
    field: &str,
    edit: impl Fn(&mut Value) -> bool,
) -> Result<bool, GatewayError> {
    let Some(value) = top.get(field) else {
        return Ok(false);
    };
    let mut parsed: Value = serde_json::from_str(value.get())
        .map_err(|e| GatewayError::InvalidRequest(format!("{field}: {e}")))?;
    if !edit(&mut parsed) {
        return Ok(false);
    }
    top.insert(field.to_string(), raw(&parsed)?);
    Ok(true)
}

/// Drops every `cache_control.scope` in `v`; `true` when one was.
fn drop_scopes(v: &mut Value) -> bool {
    match v {
        Value::Object(o) => {
            let mut any = o
                .get_mut("cache_control")
                .and_then(Value::as_object_mut)
                .and_then(|c| c.remove("scope"))
                .is_some();
            for (_, child) in o.iter_mut() {
                any |= drop_scopes(child);
            }
            any
        }
        Value::Array(a) => {
            let mut any = false;
            for child in a {
                any |= drop_scopes(child);
            }
            any
        }
        _ => false,
    }
}

/// `v` as a raw JSON value.
fn raw(v: &Value) -> Result<Box<RawValue>, GatewayError> {
    serde_json::value::to_raw_value(v)
        .map_err(|e| GatewayError::Internal(format!("bedrock body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        Provider {
            name: "aws".into(),
            kind: crate::config::ProviderKind::Bedrock,
            upstream: None,
            api_key: None,
            api_key_env: None,
            timeouts: Default::default(),
            api_version: None,
            default_max_tokens: None,
            chat_only: false,
            forward_headers: Vec::new(),
            bedrock: None,
            google: None,
        }
    }

    fn envelope(body: Value, betas: Option<&str>) -> (Value, Vec<&'static str>) {
        let mut client =
            pingora::http::RequestHeader::build("POST", b"/v1/messages", None).unwrap();
        if let Some(b) = betas {
            client.append_header("anthropic-beta", b).unwrap();
        }
        let provider = provider();
        let call = Call {
            provider: &provider,
            upstream_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            op: Operation::Generate,
            stream: true,
            client: &client,
        };
        let mut adjusted = Adjustments::default();
        let out = Bedrock
            .envelope(&call, Bytes::from(body.to_string()), &mut adjusted)
            .unwrap();
        (
            serde_json::from_slice(&out).unwrap(),
            adjusted.as_slice().to_vec(),
        )
    }

    #[test]
    fn the_invoke_envelope_changes_only_what_bedrock_requires() {
        let body = serde_json::json!({"model":"claude","stream":true,"max_tokens":10,
            "system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral","ttl":"1h"}}],
            "messages":[{"role":"user","content":"hi"}],
            "tools":[{"name":"t","input_schema":{"type":"object"},"defer_loading":true}],
            "output_config":{"effort":"high","format":{"type":"json_schema","schema":{}}}});
        let (out, notes) = envelope(
            body.clone(),
            Some("effort-2025-11-24, claude-code-20250219"),
        );
        assert_eq!(out["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(
            out["anthropic_beta"],
            serde_json::json!(["effort-2025-11-24"])
        );
        assert!(out.get("model").is_none() && out.get("stream").is_none());
        assert_eq!(out["system"], body["system"]);
        assert_eq!(out["output_config"], body["output_config"]);
        assert!(out["tools"][0].get("defer_loading").is_none());
        assert_eq!(notes, ["anthropic-beta", "tools.defer_loading"]);

        let (out, notes) = envelope(body, None);
        assert!(out.get("anthropic_beta").is_none());
        assert_eq!(
            out["output_config"],
            serde_json::json!({"format":{"type":"json_schema","schema":{}}})
        );
        assert_eq!(notes, ["output_config.effort", "tools.defer_loading"]);
    }

    #[test]
    fn paths() {
        let p = provider();
        let path = |m: &str, stream: bool| Bedrock.path(&p, m, stream, Operation::Generate);
        assert_eq!(
            path("anthropic.claude-3-haiku-20240307-v1:0", false),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
        );
        assert_eq!(
            path("us.anthropic.claude-3-haiku-20240307-v1:0", true),
            "/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream"
        );
        assert_eq!(
            path("amazon.nova-pro-v1:0", false),
            "/model/amazon.nova-pro-v1%3A0/converse"
        );
        assert_eq!(
            path("arn:aws:bedrock:us-east-1:1:application-inference-profile/x", true),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fx/converse-stream"
        );
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "eu-central-2",
            "ap-southeast-4",
        ] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us-east-x",
            "us--1",
            "us-east-1/",
        ] {
            assert!(!valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn which_api_serves_a_model_id() {
        assert!(is_claude("anthropic.claude-sonnet-4-20250514-v1:0"));
        assert!(is_claude("us.anthropic.claude-sonnet-4-20250514-v1:0"));
        assert!(is_claude("global.anthropic.claude-opus-4-5-20251101-v1:0"));
        assert!(is_claude("apac.anthropic.claude-3-haiku-20240307-v1:0"));
        assert!(!is_claude("amazon.nova-pro-v1:0"));
        assert!(!is_claude("us.meta.llama3-3-70b-instruct-v1:0"));
        assert_eq!(
            readable_model("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"),
            Some("anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(
            readable_model("arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"),
            Some("us.anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(
            readable_model(
                "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3"
            ),
            None
        );
    }
}
