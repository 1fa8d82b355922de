//! The Anthropic Messages dialect (`POST /v1/messages`, spoken natively by `anthropic`
//! vendors): its error shape and event writer. Anthropic's docs: "Errors"
//! (`{"type":"error","error":{"type","message"}}`) and "Streaming Messages" (named events).

use bytes::Bytes;

use crate::error::{GatewayError, CONTENT_FILTER_MESSAGE};

/// Anthropic's error `type` for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 411 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

pub fn error_json(status: u16, message: &str) -> String {
    format!(
        r#"{{"type":"error","error":{{"type":"{}","message":{}}}}}"#,
        error_type(status),
        serde_json::Value::from(message)
    )
}

fn message_of(err: &GatewayError) -> String {
    match err {
        GatewayError::ContentFilter => CONTENT_FILTER_MESSAGE.to_string(),
        other => other.to_string(),
    }
}

/// A gateway error as an Anthropic error body (`{"type":"error","error":{"type","message"}}`),
/// for answers on the `/v1/messages` front door; the HTTP status stays `err.status()`.
pub fn error_body(err: &GatewayError) -> Bytes {
    Bytes::from(error_json(err.status(), &message_of(err)))
}

/// The same error as an Anthropic `error` event, for a stream that already started.
pub fn error_event(err: &GatewayError) -> Bytes {
    let mut out = Vec::new();
    push_event(
        &mut out,
        "error",
        &error_json(err.status(), &message_of(err)),
    );
    Bytes::from(out)
}

pub fn push_event(out: &mut Vec<u8>, name: &str, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn errors_in_anthropic_shape() {
        let v: Value = serde_json::from_slice(&error_body(&GatewayError::RateLimited {
            message: "slow".into(),
            retry_after_secs: 1,
        }))
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"error","error":{"type":"rate_limit_error","message":"slow"}})
        );
        let v: Value = serde_json::from_slice(&error_body(&GatewayError::ContentFilter)).unwrap();
        assert_eq!(v["error"]["message"], CONTENT_FILTER_MESSAGE);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let ev = error_event(&GatewayError::Upstream("x".into()));
        assert!(ev.starts_with(b"event: error\ndata: {\"type\":\"error\""));
        assert!(ev.ends_with(b"\n\n"));
    }
}
