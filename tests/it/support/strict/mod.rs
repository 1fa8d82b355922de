//! The vendors' request contracts, one module per vendor dialect, as pure functions: each
//! `check(body) -> Result<(), Refusal>` refuses what the vendor refuses, with the vendor's own
//! status, error type/code and message wording. The strict mock vendors call them
//! (`MockUpstream` for OpenAI chat and Responses, `MockAnthropic`, `MockGemini`), and the
//! generative test (`tests/it/generative.rs`) uses them to say why a translated request failed.
//!
//! - [`openai_chat`]: `POST /v1/chat/completions`.
//! - [`openai_responses`]: `POST /v1/responses`.
//! - [`anthropic`]: `POST /v1/messages` (and `count_tokens`).
//! - [`gemini`]: `generateContent` / `streamGenerateContent`.
//! - [`converse`]: Bedrock `Converse` / `ConverseStream` (`check(body, model)`).
//!
//! Each module's doc is its rule list: rule → the vendor doc (URL or page title) it comes from
//! → the tests that check the gateway keeps it. Every rule has a unit test of the validator
//! in its module; `generative::every_door_to_every_vendor_keeps_the_vendor_rules` checks the
//! gateway keeps all of them for random valid requests.

pub mod anthropic;
pub mod converse;
pub mod gemini;
pub mod openai_chat;
pub mod openai_responses;

use serde_json::{json, Value};

/// A vendor's refusal: its HTTP status, its error `type` (Anthropic, OpenAI) or `status`
/// (Google), OpenAI's `code` and `param` when the vendor gives them, and its message.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<String>,
    pub message: String,
}

impl Refusal {
    /// OpenAI's 400 `invalid_request_error` about `param` (e.g. `messages[1].tool_calls[0].id`).
    pub fn openai(param: &str, code: Option<&'static str>, message: impl Into<String>) -> Self {
        Refusal {
            status: 400,
            kind: "invalid_request_error",
            code,
            param: (!param.is_empty()).then(|| param.to_string()),
            message: message.into(),
        }
    }

    /// OpenAI's "string too long" (`string_above_max_length`) for `param`.
    pub fn openai_too_long(param: &str, max: usize, len: usize) -> Self {
        Refusal::openai(
            param,
            Some("string_above_max_length"),
            format!("Invalid '{param}': string too long. Expected a string with maximum length {max}, but got a string with length {len} instead."),
        )
    }

    /// Anthropic's 400 `invalid_request_error`.
    pub fn anthropic(message: impl Into<String>) -> Self {
        Refusal {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message: message.into(),
        }
    }

    /// Google's 400 `INVALID_ARGUMENT`.
    pub fn gemini(message: impl Into<String>) -> Self {
        Refusal {
            status: 400,
            kind: "INVALID_ARGUMENT",
            code: None,
            param: None,
            message: message.into(),
        }
    }

    /// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
    pub fn openai_body(&self) -> String {
        json!({"error":{"message":self.message,"type":self.kind,"param":self.param,"code":self.code}})
            .to_string()
    }

    /// Anthropic's error body: `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic_body(&self) -> String {
        json!({"type":"error","error":{"type":self.kind,"message":self.message}}).to_string()
    }

    /// Google's error body: `{"error":{"code","message","status"}}`.
    pub fn gemini_body(&self) -> String {
        json!({"error":{"code":self.status,"message":self.message,"status":self.kind}}).to_string()
    }
}

/// Characters of a string (what the vendors' length limits count).
pub fn chars(s: &str) -> usize {
    s.chars().count()
}

/// `^[a-zA-Z0-9_-]{1,max}$`: the tool-name pattern of OpenAI and Anthropic, and Anthropic's
/// tool-use id pattern (with `max` = usize::MAX).
pub fn word_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && chars(s) <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Standard base64 with padding, as the vendors decode image data.
pub fn base64_ok(s: &str) -> bool {
    use base64::Engine;
    !s.is_empty() && base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

/// The image media types all three vendors take: JPEG, PNG, GIF, WebP.
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// A `data:` URL's media type and base64 payload, when `url` is one.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (head, data) = rest.split_once(',')?;
    let media = head.strip_suffix(";base64")?;
    Some((media, data))
}

/// An image URL OpenAI fetches or decodes: `http(s)://…`, or a `data:` URL of a supported
/// type with valid base64 ("Images and vision", platform.openai.com/docs/guides/images-vision).
pub fn openai_image_url_ok(url: &str) -> bool {
    if url.starts_with("https://") || url.starts_with("http://") {
        return true;
    }
    data_url(url).is_some_and(|(media, data)| IMAGE_TYPES.contains(&media) && base64_ok(data))
}

/// A number field in `lo..=hi` (absent or null is fine; a non-number is out of range).
pub fn in_range(v: &Value, lo: f64, hi: f64) -> bool {
    v.is_null() || v.as_f64().is_some_and(|x| (lo..=hi).contains(&x))
}

/// The first `type` of a JSON Schema (`schema`, reached at `at`) that is not one of JSON
/// Schema's type names, which are lower case (JSON Schema Validation §6.1.1: "null",
/// "boolean", "object", "array", "number", "string", "integer"): where it is, and what it is.
/// Subschemas are followed (`properties`, `items`, `anyOf`/`oneOf`/`allOf`,
/// `additionalProperties`, `$defs`); values (`enum`, `const`, `default`) are data.
pub fn schema_type_error(schema: &Value, at: &str) -> Option<String> {
    const TYPES: [&str; 7] = [
        "null", "boolean", "object", "array", "number", "string", "integer",
    ];
    let Value::Object(m) = schema else {
        return None;
    };
    let bad = |t: &Value| t.as_str().is_some_and(|t| !TYPES.contains(&t));
    match m.get("type") {
        Some(t @ Value::String(_)) if bad(t) => return Some(format!("{at}.type: {t}")),
        Some(Value::Array(ts)) if ts.iter().any(bad) => return Some(format!("{at}.type: {ts:?}")),
        _ => {}
    }
    for (key, v) in m {
        let found = match (key.as_str(), v) {
            ("properties" | "$defs" | "definitions", Value::Object(p)) => p
                .iter()
                .find_map(|(n, s)| schema_type_error(s, &format!("{at}.{key}.{n}"))),
            ("items" | "additionalProperties", s) => schema_type_error(s, &format!("{at}.{key}")),
            ("anyOf" | "oneOf" | "allOf", Value::Array(all)) => all
                .iter()
                .enumerate()
                .find_map(|(i, s)| schema_type_error(s, &format!("{at}.{key}[{i}]"))),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_ids_data_urls_and_bodies() {
        assert!(word_id("toolu_01-AbC", usize::MAX));
        assert!(!word_id("functions.lookup:0", usize::MAX));
        assert!(!word_id("", 64));
        assert!(!word_id(&"a".repeat(65), 64));
        assert_eq!(
            data_url("data:image/png;base64,iVBO"),
            Some(("image/png", "iVBO"))
        );
        assert!(!openai_image_url_ok("data:image/tiff;base64,AAAA"));
        assert!(!openai_image_url_ok("data:image/png;base64,@@@"));
        assert!(openai_image_url_ok("https://example.com/a.png"));
        let r = Refusal::openai("user", None, "m");
        let body: Value = serde_json::from_str(&r.openai_body()).unwrap();
        assert_eq!(body["error"]["param"], "user");
        let body: Value = serde_json::from_str(&Refusal::anthropic("m").anthropic_body()).unwrap();
        assert_eq!(body["type"], "error");
        let body: Value = serde_json::from_str(&Refusal::gemini("m").gemini_body()).unwrap();
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(body["error"]["code"], 400);
    }
}
