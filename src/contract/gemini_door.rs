//! The Gemini front door (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent`) on translated routes: what of a `GenerateContentRequest` the chat
//! pivot carries, what it leaves out (noted in `x-switchyard-adjusted`, by the client's field
//! as Google names it) and what it refuses (a 400 naming the field), each with its Google doc.
//! `crate::convert::gemini_to_chat` calls these rules. On `gemini` and Vertex Gemini routes
//! the client's bytes pass through and none of this applies.
//!
//! | Rule | What the gateway does | Source |
//! |---|---|---|
//! | `cachedContent` names a cache held by Google | refused (400 naming `cachedContent`): the gateway has no cache of Google's to give another vendor, and leaving it out would drop the prompt it stands for | ai.google.dev "Context caching"; API reference `GenerateContentRequest.cachedContent` ("The name of the content cached to use as context … Format: cachedContents/{cachedContent}") |
//! | `fileData.fileUri` is a URI Google fetches (Files API, `gs://`, YouTube) | an image by `http(s)` URL (image `mimeType`, or an image extension) becomes an `image_url`; any other URI is refused (400 naming `contents[i].parts[j].fileData`): no other vendor can read Google's files | API reference `FileData` ("URI based data"); "Files API" |
//! | `inlineData.data` is base64, standard or URL-safe, as proto3 JSON's `bytes` | normalised to standard base64 with padding in the pivot's `data:` URLs and in signatures | protobuf "JSON Mapping" (`bytes`: "standard base64 encoding with paddings … Either standard or URL-safe base64 encoding with/without paddings are accepted") |
//! | `thinkingBudget` and `thinkingLevel` together | refused (400 naming `generationConfig.thinkingConfig`), as Google refuses them | ai.google.dev "Gemini thinking" ("You cannot use both thinkingLevel and the legacy thinkingBudget parameter in the same request") |
//! | `functionCallingConfig.mode` is AUTO, ANY, NONE or VALIDATED | another mode is refused (400 naming it) | API reference `FunctionCallingConfig.Mode` |
//! | `safetySettings` | no vendor behind the pivot takes Google's thresholds: left out, noted `safetySettings` | API reference `SafetySetting` |
//! | `generationConfig.topK` | the chat pivot has no `top_k` every vendor takes: left out, noted `generationConfig.topK` | API reference `GenerationConfig.topK` |
//! | Google's hosted tools (`googleSearch`, `googleSearchRetrieval`) | become the pivot's hosted web search (`web_search_options`), which each vendor leg maps to its own or leaves out (noted `tools.web_search`, `crate::convert::hosted_tools`) | "Grounding with Google Search" |
//! | other hosted tools (`codeExecution`, `urlContext`, `googleMaps`, `fileSearch`, `computerUse`) and code execution parts | left out of the offer, noted `tools.<name>` (an offered tool the model never gets does not change the request's meaning) | "Code execution", "URL context", "Grounding with Google Maps", "File search", "Computer use" |
//! | `labels` (Vertex AI billing labels), `responseModalities`, `speechConfig`, `mediaResolution`, `imageConfig` | left out, each noted by its name | Vertex AI `GenerateContentRequest.labels`; API reference `GenerationConfig` |
//! | `thought: true` parts without a `thoughtSignature` | left out: a model's past thoughts are not input, and no vendor checks them | "Thought signatures" |

use std::borrow::Cow;

use crate::error::GatewayError;

/// The adjustment noted for left-out `safetySettings`.
pub const SAFETY_SETTINGS: &str = "safetySettings";
/// The adjustment noted for a left-out `generationConfig.topK`.
pub const TOP_K: &str = "generationConfig.topK";
/// The adjustment noted for left-out `labels`.
pub const LABELS: &str = "labels";
/// The adjustment noted for left-out code execution parts of the history.
pub const CODE_EXECUTION_PARTS: &str = "contents.executableCode";

fn invalid(what: String) -> GatewayError {
    GatewayError::InvalidRequest(what)
}

/// `cachedContent` is refused on translated routes.
pub(crate) fn refuse_cached_content() -> GatewayError {
    invalid(
        "`cachedContent` names a cache held by Google, which this route's provider cannot read: send the cached contents in `contents` instead"
            .into(),
    )
}

/// Google's hosted tool `name` (as Google names the field) → the adjustment noted when it
/// is left out.
pub(crate) fn hosted_tool_adjustment(name: &str) -> &'static str {
    match name {
        "codeExecution" => "tools.codeExecution",
        "urlContext" => "tools.urlContext",
        "googleMaps" => "tools.googleMaps",
        "fileSearch" => "tools.fileSearch",
        "computerUse" => "tools.computerUse",
        _ => "tools",
    }
}

/// A `fileData` part the pivot can carry: an image by `http(s)` URL, else a 400 naming
/// `contents[i].parts[j].fileData`.
pub(crate) fn image_by_uri<'a>(
    at: &str,
    mime_type: Option<&str>,
    uri: Cow<'a, str>,
) -> Result<Cow<'a, str>, GatewayError> {
    let web = uri.starts_with("https://") || uri.starts_with("http://");
    let google = uri.contains("generativelanguage.googleapis.com")
        || uri.contains("youtube.com")
        || uri.contains("youtu.be");
    let image = match mime_type {
        Some(m) => m.starts_with("image/"),
        None => has_image_extension(&uri),
    };
    if web && !google && image {
        return Ok(uri);
    }
    Err(invalid(format!(
        "`{at}.fileData`: only an image by http(s) URL can be carried to this route's provider (a file of Google's Files API, Cloud Storage or YouTube, or another medium by URI, cannot): send it as `inlineData`"
    )))
}

fn has_image_extension(uri: &str) -> bool {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "heic" | "heif"
    )
}

/// Standard base64 with padding for a proto3 `bytes` value given standard or URL-safe, with or
/// without padding; `None` when it is no base64 (a character of neither alphabet, or a length
/// no encoding gives). Borrowed when it already is standard.
pub(crate) fn standard_base64(data: &str) -> Option<Cow<'_, str>> {
    let body = data.trim_end_matches('=');
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
    {
        return None;
    }
    if body.len() % 4 == 1 {
        return None;
    }
    let url_safe = body.bytes().any(|b| b == b'-' || b == b'_');
    if !url_safe && data.len().is_multiple_of(4) {
        return Some(Cow::Borrowed(data));
    }
    let mut out: String = body
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    Some(Cow::Owned(out))
}

/// `thinkingConfig` as the pivot's `reasoning_effort`, the reverse of
/// `crate::convert::chat_to_gemini`'s budgets (none/minimal 0, low 1,024, medium 8,192, high
/// 24,576): a budget of 0 → `minimal`, up to 1,024 → `low`, up to 8,192 → `medium`, above →
/// `high`, -1 (dynamic) → none (the vendor's default); a level (Gemini 3: MINIMAL, LOW,
/// MEDIUM, HIGH) → the same effort. Both at once, or another level, is a 400.
pub(crate) fn reasoning_effort(
    budget: Option<i64>,
    level: Option<&str>,
) -> Result<Option<&'static str>, GatewayError> {
    match (budget, level) {
        (Some(_), Some(_)) => Err(invalid(
            "`generationConfig.thinkingConfig`: `thinkingBudget` and `thinkingLevel` cannot be used together".into(),
        )),
        (Some(b), None) if b < 0 => Ok(None),
        (Some(0), None) => Ok(Some("minimal")),
        (Some(b), None) if b <= 1024 => Ok(Some("low")),
        (Some(b), None) if b <= 8192 => Ok(Some("medium")),
        (Some(_), None) => Ok(Some("high")),
        (None, Some(level)) => match level.to_ascii_uppercase().as_str() {
            "MINIMAL" => Ok(Some("minimal")),
            "LOW" => Ok(Some("low")),
            "MEDIUM" => Ok(Some("medium")),
            "HIGH" => Ok(Some("high")),
            "THINKING_LEVEL_UNSPECIFIED" => Ok(None),
            _ => Err(invalid(format!(
                "`generationConfig.thinkingConfig.thinkingLevel` `{}` is not one of MINIMAL, LOW, MEDIUM, HIGH",
                crate::error::printable(level, 64)
            ))),
        },
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_made_standard() {
        assert_eq!(standard_base64("AAEC").as_deref(), Some("AAEC"));
        assert!(matches!(standard_base64("AAEC"), Some(Cow::Borrowed(_))));
        assert_eq!(standard_base64("-_8").as_deref(), Some("+/8="));
        assert_eq!(standard_base64("ab-_").as_deref(), Some("ab+/"));
        assert_eq!(standard_base64("YQ").as_deref(), Some("YQ=="));
        assert_eq!(standard_base64("a b"), None);
        assert_eq!(standard_base64("abcde"), None);
    }

    #[test]
    fn thinking_maps_to_effort() {
        assert_eq!(reasoning_effort(Some(0), None).unwrap(), Some("minimal"));
        assert_eq!(reasoning_effort(Some(-1), None).unwrap(), None);
        assert_eq!(reasoning_effort(Some(1024), None).unwrap(), Some("low"));
        assert_eq!(reasoning_effort(Some(8192), None).unwrap(), Some("medium"));
        assert_eq!(reasoning_effort(Some(24576), None).unwrap(), Some("high"));
        assert_eq!(reasoning_effort(None, Some("low")).unwrap(), Some("low"));
        assert_eq!(reasoning_effort(None, Some("HIGH")).unwrap(), Some("high"));
        let e = reasoning_effort(Some(1), Some("LOW")).unwrap_err();
        assert!(e.to_string().contains("thinkingConfig"), "{e}");
        assert!(reasoning_effort(None, Some("huge")).is_err());
    }

    #[test]
    fn only_web_images_by_uri() {
        let at = "contents[0].parts[1]";
        assert!(image_by_uri(at, Some("image/png"), "https://x.test/a".into()).is_ok());
        assert!(image_by_uri(at, None, "https://x.test/a.JPG?x=1".into()).is_ok());
        for (mime, uri) in [
            (Some("application/pdf"), "https://x.test/a.pdf"),
            (Some("image/png"), "gs://bucket/a.png"),
            (
                Some("image/png"),
                "https://generativelanguage.googleapis.com/v1beta/files/abc",
            ),
            (None, "https://www.youtube.com/watch?v=1"),
        ] {
            let e = image_by_uri(at, mime, uri.into()).unwrap_err();
            assert!(
                e.to_string().contains("contents[0].parts[1].fileData"),
                "{e}"
            );
        }
    }
}
