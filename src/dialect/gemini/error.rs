//! Errors at the Gemini door, in Google's shape: `{"error":{"code","message","status"}}`,
//! `code` the HTTP status and `status` the canonical code's name (Google Cloud API design
//! guide, "Errors": the `google.rpc.Code` ↔ HTTP table; Gemini API reference,
//! "Troubleshooting": 400 `INVALID_ARGUMENT`, 403 `PERMISSION_DENIED`, 404 `NOT_FOUND`, 429
//! `RESOURCE_EXHAUSTED`, 500 `INTERNAL`, 503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`).
//!
//! A 429 with a wait carries it as Google does, a `google.rpc.RetryInfo` in `details`
//! (`{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}`: Google Cloud
//! API design guide, "Errors", error details; `retryDelay` a `google.protobuf.Duration` in
//! its JSON form, seconds with an `s`), besides the `Retry-After` header every door gets.
//!
//! The gateway's own content filter (a `[[content_filters]]` match, or a translated vendor's
//! refusal) is answered Google's way, a prompt blocked for `SAFETY` ([`blocked`]), not an
//! error: that is how Gemini itself refuses, and what Google's clients expect.
//!
//! In a stream that already started an error is the stream's last element, as Google ends
//! one: a `data:` event holding the error object (`alt=sse`), or the error object as the
//! array's last element (the JSON array; [`super::array`] closes it).

use bytes::Bytes;
use serde_json::json;

use crate::error::{GatewayError, CONTENT_FILTER_MESSAGE};

/// The canonical code's name for an HTTP status (Google's table; a status it has no row for
/// takes its class's: `INVALID_ARGUMENT` for a 4xx, `INTERNAL` for a 5xx).
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 405 | 411 | 413 | 414 | 431 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

/// The error object, `{"error":{…}}`.
fn object(err: &GatewayError) -> serde_json::Value {
    let status = err.status();
    let message = match err {
        GatewayError::ContentFilter => CONTENT_FILTER_MESSAGE.to_string(),
        other => other.to_string(),
    };
    let mut error = json!({
        "code": status,
        "message": message,
        "status": status_name(status),
    });
    if let Some(secs) = err.retry_after().filter(|_| status == 429) {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{secs}s"),
        }]);
    }
    json!({ "error": error })
}

/// An error's JSON body in Google's shape.
pub fn error_body(err: &GatewayError) -> Bytes {
    Bytes::from(object(err).to_string())
}

/// The "Contents Filtered" refusal at the Gemini door, Google's way: a 200
/// `GenerateContentResponse` with no candidate whose `promptFeedback.blockReason` is `SAFETY`
/// (Gemini API reference, "Generating content", `PromptFeedback`, `BlockReason.SAFETY`: "Prompt
/// was blocked due to safety reasons"), the seed's message word for word in
/// `blockReasonMessage` (Vertex AI's `PromptFeedback` field, which the Gen AI SDKs read as
/// `block_reason_message`), no tokens counted. A stream gets it as its one element: an
/// `alt=sse` event, or a one-element JSON array (`array`). Returns the content type and body.
pub fn blocked(stream: bool, array: bool) -> (&'static str, Bytes) {
    let answer = json!({
        "promptFeedback": {
            "blockReason": "SAFETY",
            "blockReasonMessage": CONTENT_FILTER_MESSAGE,
        },
        "usageMetadata": {"promptTokenCount": 0, "totalTokenCount": 0},
    });
    match (stream, array) {
        (true, false) => (
            "text/event-stream",
            Bytes::from(format!("data: {answer}\r\n\r\n")),
        ),
        (true, true) => ("application/json", Bytes::from(format!("[{answer}]"))),
        (false, _) => ("application/json", Bytes::from(answer.to_string())),
    }
}

/// An error as the last event of an `alt=sse` stream.
pub fn error_event(err: &GatewayError) -> Bytes {
    Bytes::from(format!("data: {}\r\n\r\n", object(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(err: &GatewayError) -> serde_json::Value {
        serde_json::from_slice(&error_body(err)).unwrap()
    }

    #[test]
    fn googles_shape() {
        let v = parsed(&GatewayError::ModelNotFound("m".into()));
        assert_eq!(v["error"]["code"], 404);
        assert_eq!(v["error"]["status"], "NOT_FOUND");
        assert!(v["error"]["message"].as_str().unwrap().contains("`m`"));
        assert!(v["error"].get("details").is_none());
        let v = parsed(&GatewayError::Authentication("invalid API key"));
        assert_eq!(
            (v["error"]["code"].as_u64(), v["error"]["status"].as_str()),
            (Some(401), Some("UNAUTHENTICATED"))
        );
        for (status, name) in [
            (403, "PERMISSION_DENIED"),
            (500, "INTERNAL"),
            (502, "UNAVAILABLE"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
            (413, "INVALID_ARGUMENT"),
        ] {
            assert_eq!(status_name(status), name);
        }
    }

    #[test]
    fn the_content_filter_is_a_blocked_prompt() {
        let (ct, body) = blocked(false, false);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
        assert_eq!(
            v["promptFeedback"]["blockReasonMessage"],
            CONTENT_FILTER_MESSAGE
        );
        assert!(crate::dialect::refusal::gemini_answer(&body));
        let (_, body) = blocked(true, true);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v[0]["promptFeedback"]["blockReason"], "SAFETY");
        let (ct, body) = blocked(true, false);
        assert_eq!(ct, "text/event-stream");
        assert!(body.starts_with(b"data: {"));
    }

    #[test]
    fn a_wait_is_a_retry_info() {
        let err = GatewayError::RateLimited {
            message: "slow down".into(),
            retry_after_secs: 12,
        };
        let v = parsed(&err);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            v["error"]["details"],
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}])
        );
        let event = error_event(&err);
        assert!(event.starts_with(b"data: {\"error\":"));
        assert!(event.ends_with(b"}\r\n\r\n"));
    }
}
