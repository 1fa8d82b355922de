//! The errors translations raise: a client's request a vendor cannot take (400), a vendor's
//! own error reported inside an answer or a stream (its 4xx, or 502), and a vendor answer the
//! gateway cannot read (502). The messages never carry a key or a header.
//!
//! And what a vendor's error answer means at the client's door ([`at_door`]): on a
//! pass-through route (the vendor speaks the door's dialect) the vendor's own `type`, `code`
//! and `param` as it sent them; on a translated route the well-known conditions
//! ([`Condition`]) as the door's own code, by the table below, the vendor's message kept.
//! Agents branch on these to compact their context: Codex CLI and OpenAI-SDK clients on
//! `code: "context_length_exceeded"`, Claude Code on an `invalid_request_error` whose message
//! starts with "prompt is too long".
//!
//! | condition | OpenAI/Azure say | Anthropic says | Gemini says | Bedrock Converse says | chat, Responses door | Messages door |
//! |---|---|---|---|---|---|---|
//! | context length | 400 `code: "context_length_exceeded"` | 400 `invalid_request_error` "prompt is too long: N tokens > M maximum" | 400 `INVALID_ARGUMENT` "The input token count (N) exceeds the maximum number of tokens allowed (M)." | 400 `ValidationException` "Input is too long for requested model." | `invalid_request_error`, `context_length_exceeded`, `param` `messages` (chat) / `input` (Responses) | `invalid_request_error`, the message starting "prompt is too long: " |
//! | rate limited | 429 (`rate_limit_exceeded`) | 429 `rate_limit_error` | 429 `RESOURCE_EXHAUSTED` | 429 `ThrottlingException` | `rate_limit_error`, `rate_limit_exceeded` | `rate_limit_error` |
//! | overloaded | 503 | 529 `overloaded_error` | 503 `UNAVAILABLE` "The model is overloaded." | 503 `ServiceUnavailableException` | the gateway's 502 (OpenAI has no code for it) | `overloaded_error` (status 502) |
//! | invalid image | 400 `code: "invalid_image"` ("Invalid image.") | 400 `invalid_request_error` "Could not process image" / an image's media type | 400 `INVALID_ARGUMENT` "Unable to process input image" / "Provided image is not valid" | 400 `ValidationException` about the image | `invalid_request_error`, `invalid_image` | `invalid_request_error` |
//! | content filtered | Azure 400 `content_filter` | 200 `stop_reason: "refusal"` | 200 `blockReason` / SAFETY | 200 `stopReason` `content_filtered` / `guardrail_intervened` | the "Contents Filtered" error (`crate::providers::is_content_filter`, before this table) | the same, in Anthropic's shape |
//!
//! Sources: OpenAI's error body is as its API reference ("Error codes") shows and as clients
//! report it (`{"message":"This model's maximum context length is 8192 tokens…","type":
//! "invalid_request_error","param":"messages","code":"context_length_exceeded"}`,
//! crewAIInc/crewAI-examples#121; `"Invalid image."`, `code: "invalid_image"`,
//! chatchat-space/Langchain-Chatchat#4876); Anthropic's API reference, "Errors" (400
//! `invalid_request_error`, 429 `rate_limit_error`, 529 `overloaded_error`) and its 400
//! "prompt is too long: 103078 tokens > 102398 maximum" (Portkey's error library, "input
//! length error"); Gemini's 400 "The input token count (3475108) exceeds the maximum number
//! of tokens allowed (1048576)." with `status: "INVALID_ARGUMENT"`
//! (google-gemini/gemini-cli#4231), its 429 `RESOURCE_EXHAUSTED` and 503 `UNAVAILABLE`
//! (Gemini API reference, "Troubleshooting").

use crate::dialect::Dialect;
use crate::error::{ErrorCode, GatewayError};

/// A vendor's error condition that every door has a code for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    ContextLength,
    RateLimited,
    Overloaded,
    InvalidImage,
}

/// A vendor's error (as [`crate::providers::vendor_error`] made it: the vendor's own
/// `type`/`code`/`param`) as the client's `door` shows it: the vendor's fields kept when it
/// speaks the door's dialect (`passes_through`), else the door's own code for a well-known
/// [`Condition`] of the `vendor` dialect, or none (the gateway's). Other errors are unchanged.
pub fn at_door(
    err: GatewayError,
    vendor: Dialect,
    door: Dialect,
    passes_through: bool,
) -> GatewayError {
    let GatewayError::Vendor {
        status,
        message,
        code,
    } = err
    else {
        return err;
    };
    if passes_through {
        return GatewayError::Vendor {
            status,
            message,
            code,
        };
    }
    let condition = condition(vendor, status, code.as_deref(), &message);
    let (message, code) = match condition {
        Some(c) => door_code(door, c, message),
        None => (message, None),
    };
    GatewayError::Vendor {
        status,
        message,
        code: code.map(Box::new),
    }
}

/// The well-known condition a vendor's error answer reports, by the vendor's dialect: `status`
/// is the client's status for it (502 for a vendor's 5xx), `code` the vendor's fields.
pub(crate) fn condition(
    vendor: Dialect,
    status: u16,
    code: Option<&ErrorCode>,
    message: &str,
) -> Option<Condition> {
    let field = |f: fn(&ErrorCode) -> &Option<String>| code.and_then(|c| f(c).as_deref());
    let lower = message.to_ascii_lowercase();
    let says = |needle: &str| lower.contains(needle);
    match vendor {
        Dialect::Messages => match field(|c| &c.r#type) {
            Some("invalid_request_error") if says("prompt is too long") => {
                Some(Condition::ContextLength)
            }
            Some("invalid_request_error")
                if says("could not process image")
                    || (says("image") && (says("media type") || says("image exceeds"))) =>
            {
                Some(Condition::InvalidImage)
            }
            Some("rate_limit_error") => Some(Condition::RateLimited),
            Some("overloaded_error") => Some(Condition::Overloaded),
            _ if status == 429 => Some(Condition::RateLimited),
            _ => None,
        },
        Dialect::Gemini => match status {
            400 if says("input token count") && says("exceeds the maximum") => {
                Some(Condition::ContextLength)
            }
            400 if says("unable to process input image")
                || (says("image") && says("not valid")) =>
            {
                Some(Condition::InvalidImage)
            }
            429 => Some(Condition::RateLimited),
            502 if says("overloaded") || says("unavailable") => Some(Condition::Overloaded),
            _ => None,
        },
        // Bedrock's errors (AWS's Bedrock API reference, "Converse", Errors): a 400
        // `ValidationException` "Input is too long for requested model." (Nova: "Input Tokens
        // Exceeded…"), or about an image; 429 `ThrottlingException` "Too many requests, please
        // wait before trying again."; 503 `ServiceUnavailableException`.
        Dialect::Converse => match status {
            400 if says("too long")
                || (says("input token") && says("exceed"))
                || says("context window") =>
            {
                Some(Condition::ContextLength)
            }
            400 if says("image")
                && (says("invalid") || says("unable to process") || says("could not process")) =>
            {
                Some(Condition::InvalidImage)
            }
            429 => Some(Condition::RateLimited),
            502 if says("unavailable") || says("overloaded") => Some(Condition::Overloaded),
            _ => None,
        },
        Dialect::Chat | Dialect::Responses | Dialect::Embeddings => match field(|c| &c.code) {
            Some("context_length_exceeded") => Some(Condition::ContextLength),
            Some("invalid_image" | "invalid_image_format" | "invalid_image_url") => {
                Some(Condition::InvalidImage)
            }
            _ if status == 429 => Some(Condition::RateLimited),
            _ if status == 502 && says("overloaded") => Some(Condition::Overloaded),
            _ => None,
        },
    }
}

/// The door's own `type`/`code`/`param` (and message) for a condition, the vendor's message
/// kept (on the Messages door a context-length message starts with Anthropic's "prompt is too
/// long: ", which Claude Code looks for).
pub(crate) fn door_code(
    door: Dialect,
    condition: Condition,
    message: String,
) -> (String, Option<ErrorCode>) {
    let code = |t: Option<&str>, c: Option<&str>, p: Option<&str>| {
        Some(ErrorCode {
            r#type: t.map(str::to_string),
            code: c.map(str::to_string),
            param: p.map(str::to_string),
        })
    };
    match door {
        Dialect::Messages => match condition {
            Condition::ContextLength => {
                let message = if message
                    .to_ascii_lowercase()
                    .starts_with("prompt is too long")
                {
                    message
                } else {
                    format!("prompt is too long: {message}")
                };
                (message, code(Some("invalid_request_error"), None, None))
            }
            Condition::RateLimited => (message, code(Some("rate_limit_error"), None, None)),
            Condition::Overloaded => (message, code(Some("overloaded_error"), None, None)),
            Condition::InvalidImage => (message, code(Some("invalid_request_error"), None, None)),
        },
        Dialect::Chat
        | Dialect::Responses
        | Dialect::Embeddings
        | Dialect::Gemini
        | Dialect::Converse => {
            let input = if door == Dialect::Responses {
                "input"
            } else {
                "messages"
            };
            match condition {
                Condition::ContextLength => (
                    message,
                    code(
                        Some("invalid_request_error"),
                        Some("context_length_exceeded"),
                        Some(input),
                    ),
                ),
                Condition::RateLimited => (
                    message,
                    code(Some("rate_limit_error"), Some("rate_limit_exceeded"), None),
                ),
                Condition::Overloaded => (message, None),
                Condition::InvalidImage => (
                    message,
                    code(Some("invalid_request_error"), Some("invalid_image"), None),
                ),
            }
        }
    }
}

/// A 400 about the client's request, saying which vendor could not take what.
pub(crate) fn unsupported(vendor: &str, what: impl std::fmt::Display) -> GatewayError {
    GatewayError::InvalidRequest(format!("{what} (provider kind `{vendor}`)"))
}

/// A vendor's error reported with a status (a mid-stream error event, or an error body in a
/// 200 answer), in the gateway's shape: the client gets the vendor's 4xx about its request,
/// and a 502 for the vendor's own failures and for the gateway's key being refused.
pub(crate) fn vendor_failure(vendor: &str, status: u16, message: &str) -> GatewayError {
    let message: String = message.chars().take(1024).collect();
    match crate::providers::client_status_for_vendor(status) {
        502 => GatewayError::Upstream(format!(
            "the {vendor} provider failed (status {status}): {message}"
        )),
        client => GatewayError::vendor(client, message),
    }
}

/// A 502 for a vendor answer the gateway cannot read.
pub(crate) fn unreadable(vendor: &str, what: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Upstream(format!(
        "the {vendor} provider sent {what} that cannot be read: {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor(status: u16, message: &str, t: Option<&str>, c: Option<&str>) -> GatewayError {
        GatewayError::Vendor {
            status,
            message: message.into(),
            code: Some(Box::new(ErrorCode {
                r#type: t.map(str::to_string),
                code: c.map(str::to_string),
                param: Some("messages".into()),
            })),
        }
    }

    #[test]
    fn a_pass_through_route_keeps_the_vendors_fields() {
        let err = vendor(
            400,
            "too long",
            Some("invalid_request_error"),
            Some("x_custom"),
        );
        let kept = at_door(err.clone(), Dialect::Chat, Dialect::Chat, true);
        assert_eq!(kept, err);
    }

    #[test]
    fn a_translated_route_shows_the_doors_own_code_or_none() {
        let cases = [
            // (vendor dialect, status, message, type, code) → condition
            (
                Dialect::Chat,
                400,
                "maximum context length is 8192 tokens",
                Some("invalid_request_error"),
                Some("context_length_exceeded"),
                Some(Condition::ContextLength),
            ),
            (
                Dialect::Messages,
                400,
                "prompt is too long: 203078 tokens > 200000 maximum",
                Some("invalid_request_error"),
                None,
                Some(Condition::ContextLength),
            ),
            (
                Dialect::Gemini,
                400,
                "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576).",
                None,
                None,
                Some(Condition::ContextLength),
            ),
            (
                Dialect::Messages,
                502,
                "provider `a` failed with status 529: Overloaded",
                Some("overloaded_error"),
                None,
                Some(Condition::Overloaded),
            ),
            (Dialect::Gemini, 429, "Resource has been exhausted", None, None, Some(Condition::RateLimited)),
            (
                Dialect::Messages,
                400,
                "Could not process image",
                Some("invalid_request_error"),
                None,
                Some(Condition::InvalidImage),
            ),
            (
                Dialect::Messages,
                400,
                "messages.0: user messages must have non-empty content",
                Some("invalid_request_error"),
                None,
                None,
            ),
            (Dialect::Chat, 400, "bad", Some("invalid_request_error"), Some("invalid_value"), None),
            (
                Dialect::Converse,
                400,
                "The model returned the following errors: Input is too long for requested model.",
                Some("ValidationException"),
                None,
                Some(Condition::ContextLength),
            ),
            (Dialect::Converse, 429, "Too many requests, please wait before trying again.", Some("ThrottlingException"), None, Some(Condition::RateLimited)),
            (Dialect::Converse, 502, "the bedrock provider failed (status 503): Service unavailable", None, None, Some(Condition::Overloaded)),
            (Dialect::Converse, 400, "Unable to process the image: invalid format", None, None, Some(Condition::InvalidImage)),
            (Dialect::Converse, 400, "Malformed input request", Some("ValidationException"), None, None),
        ];
        for (dialect, status, message, t, c, want) in cases {
            let code = ErrorCode {
                r#type: t.map(str::to_string),
                code: c.map(str::to_string),
                param: None,
            };
            assert_eq!(
                condition(dialect, status, Some(&code), message),
                want,
                "{message}"
            );
        }
        // Anthropic's context error at the chat door: OpenAI's code, Anthropic's message.
        let err = vendor(
            400,
            "prompt is too long: 9 tokens > 8 maximum",
            Some("invalid_request_error"),
            None,
        );
        let at_chat = at_door(err, Dialect::Messages, Dialect::Responses, false);
        let code = at_chat.vendor_code().unwrap();
        assert_eq!(code.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(code.param.as_deref(), Some("input"));
        assert_eq!(
            at_chat.to_string(),
            "prompt is too long: 9 tokens > 8 maximum"
        );
        // OpenAI's at the Messages door: Anthropic's type and wording, OpenAI's message kept.
        let err = vendor(
            400,
            "maximum context length is 8192 tokens",
            None,
            Some("context_length_exceeded"),
        );
        let at_messages = at_door(err, Dialect::Chat, Dialect::Messages, false);
        assert_eq!(
            at_messages.vendor_code().unwrap().r#type.as_deref(),
            Some("invalid_request_error")
        );
        assert_eq!(
            at_messages.to_string(),
            "prompt is too long: maximum context length is 8192 tokens"
        );
        // Not a well-known condition: the vendor's fields are not shown in another dialect.
        let err = vendor(
            400,
            "bad",
            Some("invalid_request_error"),
            Some("invalid_value"),
        );
        assert_eq!(
            at_door(err, Dialect::Chat, Dialect::Messages, false).vendor_code(),
            None
        );
    }
}
