//! Every error Switchyard answers itself, and the one place it becomes an HTTP answer.
//!
//! The JSON shape is the chat API's (docs/api.md), extended with OpenAI's fields so that OpenAI SDKs read it
//! (docs/api.md, "Errors"): `{"error":{"message","type","param","code","reason","status"}}`.
//! `reason` doubles as the low-cardinality metric label.

use bytes::Bytes;
use serde::Serialize;

/// The message of the "Contents Filtered" error of the chat API, word for word.
pub const CONTENT_FILTER_MESSAGE: &str = "This content may violate our content policy, please check https://Slier.ai/terms to learn more. If you believe this to be in error, please contact us at safety@Slier.ai to keep our systems safe and available.";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    InvalidRequest(String),
    /// An invalid request whose fault is one field: `param` names it as OpenAI's errors do
    /// (`messages[0].content`).
    #[error("{message}")]
    InvalidParam { message: String, param: String },
    /// The request target is longer than `server.max_uri_bytes`.
    #[error("the request URI is longer than the limit of {limit} bytes")]
    UriTooLong { limit: usize },
    /// A header line, the whole head, or the number of headers is over its `[server]` cap.
    #[error("{0}")]
    HeaderTooLarge(String),
    #[error("{0}")]
    NotFound(String),
    /// `allow`: the methods the path takes, for the answer's `Allow` header (RFC 9110 §15.5.6).
    #[error("method {method} is not allowed on this path (allowed: {allow})")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content filter")]
    ContentFilter,
    #[error("{0}")]
    Authentication(&'static str),
    /// The model as the client named it (an alias stays the alias).
    #[error(
        "this key's team may not use the model `{0}`; GET /v1/models lists the models it may use"
    )]
    Permission(String),
    #[error("the model `{0}` does not exist; GET /v1/models lists the models this key may use")]
    ModelNotFound(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    UpstreamTimeout(String),
    #[error("{0}")]
    Overloaded(String),
    /// A vendor's error answer, passed on with the client's status for it and the vendor's
    /// message; `code`: the `type`/`code`/`param` the client's door shows (the vendor's own on
    /// a pass-through route, the door's for a well-known condition on a translated one:
    /// `crate::convert::errors::at_door`), `None` for the gateway's.
    #[error("{message}")]
    Vendor {
        status: u16,
        message: String,
        code: Option<Box<ErrorCode>>,
    },
    /// A bug in Switchyard; never expected.
    #[error("{0}")]
    Internal(String),
}

/// An error's `type`, `code` and `param` as a vendor (or the client's door) names them, each
/// `None` where it gave none: OpenAI's `{"error":{"type","code","param"}}` (`type`
/// `invalid_request_error`, `code` `context_length_exceeded`, `param` `messages`), or
/// Anthropic's `{"error":{"type"}}` (`overloaded_error`). A field left `None` takes the
/// gateway's value (the type of the status, `code` = `reason`, `param` as the gateway finds
/// it); `reason` and `status` stay the gateway's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCode {
    pub r#type: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

impl GatewayError {
    /// A vendor's error with the client's `status` and the vendor's `message`, no code.
    pub fn vendor(status: u16, message: String) -> GatewayError {
        GatewayError::Vendor {
            status,
            message,
            code: None,
        }
    }

    /// The vendor's (or the door's) own `type`/`code`/`param` of a [`GatewayError::Vendor`].
    pub fn vendor_code(&self) -> Option<&ErrorCode> {
        match self {
            GatewayError::Vendor { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> u16 {
        use GatewayError::*;
        match self {
            InvalidRequest(_) | InvalidParam { .. } | ContentFilter => 400,
            Authentication(_) => 401,
            Permission(_) => 403,
            NotFound(_) | ModelNotFound(_) => 404,
            MethodNotAllowed { .. } => 405,
            PayloadTooLarge { .. } => 413,
            UriTooLong { .. } => 414,
            HeaderTooLarge(_) => 431,
            RateLimited { .. } | QuotaExceeded { .. } => 429,
            Internal(_) => 500,
            Upstream(_) => 502,
            Overloaded(_) => 503,
            UpstreamTimeout(_) => 504,
            Vendor { status, .. } => *status,
        }
    }

    /// The spec's `reason`, also the metric label: a fixed, small set of values.
    pub fn reason(&self) -> &'static str {
        use GatewayError::*;
        match self {
            InvalidRequest(_)
            | InvalidParam { .. }
            | NotFound(_)
            | MethodNotAllowed { .. }
            | UriTooLong { .. }
            | HeaderTooLarge(_) => "invalid_request",
            ContentFilter => "content_filter",
            Authentication(_) => "authentication",
            Permission(_) => "permission",
            ModelNotFound(_) => "model_not_found",
            PayloadTooLarge { .. } => "payload_too_large",
            RateLimited { .. } => "rate_limit",
            QuotaExceeded { .. } => "quota_exceeded",
            Upstream(_) => "upstream_error",
            UpstreamTimeout(_) => "upstream_timeout",
            Overloaded(_) => "overloaded",
            Internal(_) => "internal_error",
            Vendor { status, .. } => vendor_reason(*status),
        }
    }

    /// OpenAI's `type` field: the vendor's when it gave one, else [`Self::gateway_type`].
    pub fn error_type(&self) -> &str {
        self.vendor_code()
            .and_then(|c| c.r#type.as_deref())
            .unwrap_or_else(|| self.gateway_type())
    }

    /// OpenAI's `code` field: the vendor's when it gave one, else the `reason`.
    pub fn code(&self) -> &str {
        self.vendor_code()
            .and_then(|c| c.code.as_deref())
            .unwrap_or_else(|| self.reason())
    }

    /// The gateway's own OpenAI `type` for this error, which SDKs use to pick an exception
    /// class.
    fn gateway_type(&self) -> &'static str {
        match self.status() {
            400 | 404 | 405 | 411 | 413 | 414 | 431 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 if matches!(self, GatewayError::QuotaExceeded { .. }) => "insufficient_quota",
            429 => "rate_limit_error",
            500 => "internal_error",
            _ => "api_error",
        }
    }

    /// Seconds for `retry-after`, for the answers that carry one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited {
                retry_after_secs, ..
            }
            | GatewayError::QuotaExceeded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// Whether retrying the same request could change this answer: not for a malformed or
    /// refused request (400, 401, 403, 404, 405, 413, 414, 431), whoever made it. OpenAI's
    /// and Anthropic's SDKs (and Claude Code) read `x-should-retry: false` as "do not retry";
    /// without it they retry a 401, which a mistyped key turns into a minute of silence.
    pub fn should_retry(&self) -> bool {
        !matches!(self.status(), 400 | 401 | 403 | 404 | 405 | 413 | 414 | 431)
    }

    /// The headers this error's answer carries besides `content-type`: `retry-after` (seconds)
    /// when there is a time to wait, `x-should-retry: false` when no retry can change it, and
    /// `allow` on a 405.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let GatewayError::MethodNotAllowed { allow, .. } = self {
            out.push(("allow", allow.to_string()));
        }
        if let Some(secs) = self.retry_after() {
            out.push(("retry-after", secs.to_string()));
        }
        if !self.should_retry() {
            out.push(("x-should-retry", "false".to_string()));
        }
        out
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Bytes {
        let message = match self {
            GatewayError::ContentFilter => CONTENT_FILTER_MESSAGE.to_string(),
            other => other.to_string(),
        };
        let param = self.param();
        let body = ErrorBody {
            error: ErrorObject {
                message: &message,
                r#type: self.error_type(),
                param,
                code: self.code(),
                reason: self.reason(),
                status: self.status(),
            },
        };
        // Serialising plain strings and numbers cannot fail.
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// OpenAI's `param`: the request field at fault, when one is. An invalid request's
    /// message names its field first, in backticks (`` `messages[2]` must be an object ``), or
    /// as "the field `x`": that field is the `param`, so no refusal of a field leaves it `null`.
    pub fn param(&self) -> Option<&str> {
        match self {
            GatewayError::ContentFilter => Some("prompt"),
            GatewayError::InvalidParam { param, .. } => Some(param),
            GatewayError::Vendor { code, .. } => code.as_ref().and_then(|c| c.param.as_deref()),
            GatewayError::InvalidRequest(message) => field_named(message),
            _ => None,
        }
    }

    /// The same error as one SSE event, for a stream that already started.
    pub fn sse_event(&self) -> Bytes {
        let body = self.body();
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

/// The reason label for a vendor status passed on to the client.
fn vendor_reason(status: u16) -> &'static str {
    match status {
        404 => "model_not_found",
        413 => "payload_too_large",
        429 => "rate_limit",
        400..=499 => "invalid_request",
        _ => "upstream_error",
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    r#type: &'a str,
    param: Option<&'a str>,
    code: &'a str,
    reason: &'static str,
    status: u16,
}

/// A client-given value made safe to echo in an error: at most `max` characters, control
/// characters replaced by `?`.
pub fn printable(value: &str, max: usize) -> String {
    value
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The field an invalid request's message starts by naming: `` `path` `` at its start, or
/// after "the field ". Only a field path (letters, digits, `_`, `-`, `.`, `[`, `]`) counts.
fn field_named(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix('`')
        .or_else(|| message.strip_prefix("the field `"))?;
    let name = &rest[..rest.find('`')?];
    let is_path = |c: char| c.is_ascii_alphanumeric() || "_-.[]".contains(c);
    (!name.is_empty() && name.len() <= 128 && name.chars().all(is_path)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_filter_is_the_seed_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&GatewayError::ContentFilter.body()).unwrap();
        assert_eq!(v["error"]["message"], CONTENT_FILTER_MESSAGE);
        assert_eq!(v["error"]["param"], "prompt");
        assert_eq!(v["error"]["reason"], "content_filter");
        assert_eq!(v["error"]["status"], 400);
    }

    #[test]
    fn every_field_is_present() {
        let e = GatewayError::ModelNotFound("x\"y".into());
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["status"], 404);
        assert_eq!(v["error"]["reason"], "model_not_found");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["param"].is_null());
        assert_eq!(
            v["error"]["message"],
            "the model `x\"y` does not exist; GET /v1/models lists the models this key may use"
        );
    }

    #[test]
    fn a_refused_field_named_in_the_message_is_the_param() {
        for (message, param) in [
            ("`model` is required", Some("model")),
            (
                "`messages[2].content` must be a string",
                Some("messages[2].content"),
            ),
            (
                "the field `temperature` is given twice",
                Some("temperature"),
            ),
            ("`model_params` may not set `model`", Some("model_params")),
            ("the request body is not a JSON object: eof", None),
            ("` not a field` x", None),
            ("`unclosed", None),
        ] {
            let e = GatewayError::InvalidRequest(message.into());
            assert_eq!(e.param(), param, "{message}");
        }
    }

    #[test]
    fn an_invalid_field_is_named_in_param() {
        let e = GatewayError::InvalidParam {
            message: "`messages[0].content` is required".into(),
            param: "messages[0].content".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["status"], 400);
        assert_eq!(v["error"]["reason"], "invalid_request");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages[0].content");
    }

    #[test]
    fn answers_no_retry_can_change_say_so() {
        for e in [
            GatewayError::InvalidRequest("x".into()),
            GatewayError::Authentication("bad key"),
            GatewayError::Permission("m".into()),
            GatewayError::ModelNotFound("m".into()),
            GatewayError::vendor(400, "x".into()),
        ] {
            assert_eq!(
                e.headers(),
                [("x-should-retry", "false".to_string())],
                "{e:?}"
            );
        }
        let limited = GatewayError::RateLimited {
            message: "x".into(),
            retry_after_secs: 3,
        };
        assert_eq!(limited.headers(), [("retry-after", "3".to_string())]);
        assert!(GatewayError::Upstream("x".into()).headers().is_empty());
    }

    #[test]
    fn a_vendors_own_type_code_and_param_are_shown_and_the_gateways_fill_the_rest() {
        let e = GatewayError::Vendor {
            status: 400,
            message: "This model's maximum context length is 8192 tokens.".into(),
            code: Some(Box::new(ErrorCode {
                r#type: Some("invalid_request_error".into()),
                code: Some("context_length_exceeded".into()),
                param: Some("messages".into()),
            })),
        };
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(
            v["error"],
            serde_json::json!({"message": "This model's maximum context length is 8192 tokens.",
                "type": "invalid_request_error", "param": "messages",
                "code": "context_length_exceeded", "reason": "invalid_request", "status": 400})
        );
        let bare = GatewayError::Vendor {
            status: 404,
            message: "no such model".into(),
            code: Some(Box::new(ErrorCode {
                r#type: Some("not_found_error".into()),
                ..ErrorCode::default()
            })),
        };
        let v: serde_json::Value = serde_json::from_slice(&bare.body()).unwrap();
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert!(v["error"]["param"].is_null());
    }

    #[test]
    fn head_limits_answer_414_and_431() {
        let uri = GatewayError::UriTooLong { limit: 8192 };
        assert_eq!((uri.status(), uri.reason()), (414, "invalid_request"));
        let head = GatewayError::HeaderTooLarge("a header line is too long".into());
        assert_eq!((head.status(), head.reason()), (431, "invalid_request"));
        let v: serde_json::Value = serde_json::from_slice(&head.body()).unwrap();
        assert_eq!(v["error"]["status"], 431);
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
}
