//! Bedrock Converse (`Converse` / `ConverseStream`): the rules a request the gateway builds
//! for a `bedrock` vendor's non-Claude models must keep (`crate::convert::chat_to_converse`
//! calls them). Sources are AWS's Bedrock API reference (docs.aws.amazon.com/bedrock/latest/
//! APIReference/API_runtime_*.html) and user guide, named per rule.
//!
//! | Rule | What the gateway does | Source |
//! |---|---|---|
//! | `toolUse.toolUseId` / `toolResult.toolUseId` are 1 to 64 of `[a-zA-Z0-9_-]` | maps any other id (`functions.lookup:0`, a 65-character id) to its portable id, the call and its result alike | API reference, `ToolUseBlock.toolUseId`, `ToolResultBlock.toolUseId`: "Length Constraints: Minimum length of 1. Maximum length of 64. Pattern: `[a-zA-Z0-9_-]+`" |
//! | a tool's `name` is 1 to 64 of `[a-zA-Z0-9_-]` | refuses another name (400 naming `tools[i]`) | API reference, `ToolSpecification.name` (same constraints) |
//! | a tool's `description` has at least 1 character | an empty one is left out | API reference, `ToolSpecification.description`: "Minimum length of 1" |
//! | `inferenceConfig.temperature` and `topP` are in 0–1 | refuses a value outside (400 naming `temperature` / `top_p`); OpenAI's temperature goes to 2 | API reference, `InferenceConfiguration`: "Valid Range: Minimum value of 0. Maximum value of 1." |
//! | `inferenceConfig.maxTokens` is at least 1 | refuses 0 (400 naming `max_tokens`) | API reference, `InferenceConfiguration.maxTokens`: "Minimum value of 1" |
//! | at most 2,500 stop sequences, each at least 1 character | refuses more (400 naming `stop`); empty ones are left out, noting `stop` | API reference, `InferenceConfiguration.stopSequences`: "Maximum number of 2500 items" |
//! | an image is `png`, `jpeg`, `gif` or `webp`, given as bytes (or an S3 location), at most 3.75 MB, at most 20 per request | refuses another media type, an image by URL (the gateway fetches nothing), one over 3.75 MB and a 21st image (400 naming the message) | API reference, `ImageBlock.format` ("Valid Values: png \| jpeg \| gif \| webp"), `ImageSource` (bytes, s3Location); user guide "Using the Converse API", `image` ("up to 3.75 MB", "up to 20 images") |
//! | a `toolResult`'s `image` only on Amazon Nova and Claude | carried there; refused elsewhere (400 naming the tool message) | API reference, `ToolResultContentBlock.image`: "This field is only supported by Amazon Nova and Anthropic Claude 3 and 4 models" |
//! | a document's `format` is one of pdf, csv, doc, docx, xls, xlsx, html, txt, md; at most 4.5 MB, at most 5 per request | refuses another type, a larger one, a 6th (400 naming the message) | API reference, `DocumentBlock.format`; user guide "Using the Converse API", `document` ("up to 4.5 MB", "up to five documents") |
//! | a document's `name` holds only letters, digits, single whitespace characters, hyphens, parentheses and square brackets, 1 to 200 characters | other characters become a space (runs of whitespace one space), cut to 200, noting `file.filename`; an empty name becomes `document` | API reference, `DocumentBlock.name` ("The name can only contain the following characters: Alphanumeric characters, Whitespace characters (no more than one in a row), Hyphens, Parentheses, Square brackets"; length 1–200) |
//! | the conversation starts with a `user` message and the roles alternate | consecutive turns of one role are merged; a conversation that starts with the assistant is refused (400 naming `messages`) | user guide "Using the Converse API" ("The first message must be from the user"); Bedrock's ValidationException "A conversation must start with a user message" and "…must alternate between user and assistant roles" |
//! | a `toolResult` answers a `toolUse` of the assistant turn just before it, and every `toolUse` is answered in the next user turn | refuses a tool result that answers no call of the turn before, and a call left unanswered (400 naming the message) | Bedrock's ValidationExceptions "The number of toolResult blocks at messages.N.content exceeds the number of toolUse blocks of previous turn." and "Expected toolResult blocks at messages.N.content for the following Ids: …" (reported in BerriAI/litellm and strands-agents trackers) |
//! | `toolUse`/`toolResult` blocks need a `toolConfig` | a history with tool calls and no `tools` declares the history's tools with an open schema (`{"type":"object"}`), noting `tools` | Bedrock's ValidationException "The toolConfig field must be defined when using toolUse and toolResult content blocks." |
//! | `toolChoice` `any`/`tool` only on Anthropic Claude 3+, Mistral Large and Amazon Nova | a forced choice on another model becomes `auto`, noting `tool_choice`; `none` (which Converse lacks) leaves the tools out, or, when the history holds tool blocks, keeps them with no choice, noting `tool_choice` | API reference, `ToolChoice`: "This field is only supported by Anthropic Claude 3 models, Mistral Large, and Amazon Nova" |
//! | reasoning is asked through `additionalModelRequestFields`, per model family: Amazon Nova 2 takes `reasoningConfig` {`type`, `maxReasoningEffort` low/medium/high} | Nova 2: the effort from the client's budget (≤1,024 low, ≤8,192 medium, else high); another model family: left out, noting `reasoning_effort` | Amazon Nova 2 user guide, "Extended thinking" and "Request and response schema" (`reasoningConfig`) |
//! | `reasoningContent.reasoningText.signature` is Anthropic's (Claude's thinking on Bedrock), and no non-Claude model takes a signed block back | another vendor's signed thinking in the history (Anthropic's, Gemini's) is dropped, noting `thinking_signature` | API reference, `ReasoningTextBlock.signature`; Anthropic "Building with extended thinking" (signatures are checked by the platform that made them) |
//! | structured output is `outputConfig.textFormat` {`type`: `json_schema`, `structure.jsonSchema` {`schema` as a string, `name`}} | `response_format` `json_schema` maps to it; `json_object` has no form: left out, noting `response_format` | API reference, `OutputConfig`, `OutputFormat`, `JsonSchemaDefinition`; user guide "Get validated JSON results from models" |
//! | `cachePoint` blocks only on models with prompt caching (Amazon Nova Micro, Lite, Pro, Premier, Nova 2; Claude) | a `cachePoint` after the system prompt for Amazon Nova models; none elsewhere | user guide "Prompt caching for faster model inference" (supported models, the `cachePoint` block in `system`) |

use std::borrow::Cow;

use super::{id_for, name_of, refused, shown};
use crate::dialect::adjusted::Adjustments;
use crate::error::GatewayError;

/// The vendor kind, in refusals.
const VENDOR: &str = "bedrock";

/// The longest `toolUseId` and tool name Converse takes.
pub const ID_MAX: usize = 64;
/// The longest tool name.
pub const TOOL_NAME_MAX: usize = 64;
/// The most stop sequences one request may give.
pub const STOP_MAX: usize = 2500;
/// The largest image, in bytes (decoded).
pub const IMAGE_MAX_BYTES: usize = 3_750_000;
/// The most images one request may hold.
pub const IMAGES_MAX: usize = 20;
/// The largest document, in bytes (decoded).
pub const DOCUMENT_MAX_BYTES: usize = 4_500_000;
/// The most documents one request may hold.
pub const DOCUMENTS_MAX: usize = 5;
/// The longest document name.
pub const DOCUMENT_NAME_MAX: usize = 200;

/// The adjustment noted when a document's name was made one Converse takes.
pub const DOCUMENT_NAME: &str = "file.filename";

/// Whether Converse takes `id` as a `toolUseId`: 1 to 64 of `[a-zA-Z0-9_-]`.
pub(crate) fn valid_tool_use_id(id: &str) -> bool {
    name_of(id, ID_MAX, &[])
}

/// A tool-call id as a `toolUseId`: itself when valid, else its portable id.
pub(crate) fn tool_use_id(id: Cow<'_, str>) -> Cow<'_, str> {
    id_for(id, valid_tool_use_id)
}

/// `tools[i]`'s name as Converse takes it, else a 400 naming it.
pub(crate) fn check_tool_name(i: usize, name: &str) -> Result<(), GatewayError> {
    if name_of(name, TOOL_NAME_MAX, &[]) {
        return Ok(());
    }
    Err(refused(
        VENDOR,
        format!(
            "`tools[{i}]` name `{}` is not one this route's provider takes: 1 to {TOOL_NAME_MAX} letters, digits, `_` or `-`",
            shown(name)
        ),
    ))
}

/// A sampling value (`temperature`, `top_p`) within 0–1, else a 400 naming it.
pub(crate) fn check_unit(field: &str, raw: Option<&str>) -> Result<(), GatewayError> {
    let Some(raw) = raw else { return Ok(()) };
    match raw.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
        _ => Err(refused(
            VENDOR,
            format!(
                "`{field}` is {}; this route's provider takes 0 to 1",
                shown(raw)
            ),
        )),
    }
}

/// `max_tokens` at least 1, else a 400 naming it.
pub(crate) fn check_max_tokens(max: Option<u64>) -> Result<(), GatewayError> {
    match max {
        Some(0) => Err(refused(
            VENDOR,
            "`max_tokens` is 0; this route's provider takes at least 1",
        )),
        _ => Ok(()),
    }
}

/// The stop sequences Converse takes: empty ones left out (noted `stop`), more than
/// [`STOP_MAX`] a 400.
pub(crate) fn stop_sequences<'a>(
    stops: Vec<Cow<'a, str>>,
    adjusted: &mut Adjustments,
) -> Result<Vec<Cow<'a, str>>, GatewayError> {
    if stops.len() > STOP_MAX {
        return Err(refused(
            VENDOR,
            format!(
                "`stop` has {} stop sequences; this route's provider takes at most {STOP_MAX}",
                stops.len()
            ),
        ));
    }
    Ok(super::keep_noted(
        stops,
        |s| !s.is_empty(),
        "stop",
        adjusted,
    ))
}

/// The Converse `format` of an image's media type, else a 400 naming the message.
pub(crate) fn image_format(at: &str, media_type: &str) -> Result<&'static str, GatewayError> {
    match media_type.to_ascii_lowercase().as_str() {
        "image/png" => Ok("png"),
        "image/jpeg" | "image/jpg" => Ok("jpeg"),
        "image/gif" => Ok("gif"),
        "image/webp" => Ok("webp"),
        other => Err(refused(
            VENDOR,
            format!(
                "`{at}`: an image of type `{}` cannot be carried (Converse takes png, jpeg, gif and webp)",
                shown(other)
            ),
        )),
    }
}

/// The Converse `format` of a document, from its media type or else its file name's
/// extension, else a 400 naming the message.
pub(crate) fn document_format(
    at: &str,
    media_type: &str,
    filename: &str,
) -> Result<&'static str, GatewayError> {
    let by_type = match media_type.to_ascii_lowercase().as_str() {
        "application/pdf" => Some("pdf"),
        "text/csv" => Some("csv"),
        "application/msword" => Some("doc"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Some("docx"),
        "application/vnd.ms-excel" => Some("xls"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Some("xlsx"),
        "text/html" => Some("html"),
        "text/plain" => Some("txt"),
        "text/markdown" => Some("md"),
        _ => None,
    };
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let by_name = match ext.as_str() {
        "pdf" => Some("pdf"),
        "csv" => Some("csv"),
        "doc" => Some("doc"),
        "docx" => Some("docx"),
        "xls" => Some("xls"),
        "xlsx" => Some("xlsx"),
        "html" | "htm" => Some("html"),
        "txt" => Some("txt"),
        "md" => Some("md"),
        _ => None,
    };
    by_type.or(by_name).ok_or_else(|| {
        refused(
            VENDOR,
            format!(
                "`{at}`: a file of type `{}` cannot be carried (Converse documents are pdf, csv, doc, docx, xls, xlsx, html, txt or md)",
                shown(media_type)
            ),
        )
    })
}

/// The decoded size of base64 `data`, in bytes (padding and whitespace aside).
pub(crate) fn decoded_len(data: &str) -> usize {
    let n = data
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .count();
    n / 4 * 3 + (n % 4).saturating_sub(1)
}

/// An inline medium within `max` bytes, else a 400 naming the message.
pub(crate) fn check_size(at: &str, what: &str, data: &str, max: usize) -> Result<(), GatewayError> {
    let len = decoded_len(data);
    if len <= max {
        return Ok(());
    }
    Err(refused(
        VENDOR,
        format!("`{at}`: the {what} has {len} bytes; this route's provider takes at most {max}"),
    ))
}

/// At most `max` of a medium per request, else a 400 naming the message of the one too many.
pub(crate) fn check_count(at: &str, what: &str, n: usize, max: usize) -> Result<(), GatewayError> {
    if n <= max {
        return Ok(());
    }
    Err(refused(
        VENDOR,
        format!("`{at}`: more than {max} {what}s in one request; this route's provider takes at most {max}"),
    ))
}

/// A document name Converse takes: letters, digits, hyphens, parentheses and square
/// brackets kept, anything else a space, whitespace runs one space, at most 200 characters;
/// noted as [`DOCUMENT_NAME`] when it changed.
pub(crate) fn document_name<'a>(name: &'a str, adjusted: &mut Adjustments) -> Cow<'a, str> {
    let keep = |c: char| c.is_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']');
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if keep(c) { c } else { ' ' };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let mut out: String = out.trim_end().chars().take(DOCUMENT_NAME_MAX).collect();
    out.truncate(out.trim_end().len());
    if out.is_empty() {
        out = "document".into();
    }
    if out == name {
        return Cow::Borrowed(name);
    }
    adjusted.note(DOCUMENT_NAME);
    Cow::Owned(out)
}

/// Whether the model takes `toolChoice` `any` and `tool`: Claude 3+, Mistral Large, Amazon
/// Nova (by the model id, a foundation model, an inference profile or an ARN that names one).
pub(crate) fn takes_forced_tool_choice(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("anthropic.claude")
        || m.contains("mistral.mistral-large")
        || m.contains("amazon.nova")
}

/// Whether the model takes images in a `toolResult`: Amazon Nova and Claude.
pub(crate) fn takes_tool_result_images(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("amazon.nova") || m.contains("anthropic.claude")
}

/// Whether the model takes Nova 2's `reasoningConfig`.
pub(crate) fn takes_nova_reasoning(model: &str) -> bool {
    model.to_ascii_lowercase().contains("amazon.nova-2")
}

/// Whether the gateway puts a `cachePoint` after the system prompt: Amazon Nova models
/// (prompt caching on Nova Micro, Lite, Pro, Premier and Nova 2).
pub(crate) fn takes_cache_points(model: &str) -> bool {
    model.to_ascii_lowercase().contains("amazon.nova")
}

/// Nova 2's `maxReasoningEffort` for a reasoning budget in tokens (> 0).
pub(crate) fn nova_effort(budget: u64) -> &'static str {
    match budget {
        0..=1024 => "low",
        1025..=8192 => "medium",
        _ => "high",
    }
}

/// A 400 for a conversation that does not start with a user message.
pub(crate) fn must_start_with_user() -> GatewayError {
    refused(
        VENDOR,
        "`messages`: the conversation must start with a user message on this route's provider",
    )
}

/// A 400 for a tool result that answers no call of the assistant turn before it.
pub(crate) fn result_without_call(i: usize, id: &str) -> GatewayError {
    refused(
        VENDOR,
        format!(
            "`messages[{i}]`: the `tool` message for `{}` answers no tool call of the assistant turn just before it",
            shown(id)
        ),
    )
}

/// A 400 for an assistant's tool call left without its result.
pub(crate) fn call_without_result(i: usize, id: &str) -> GatewayError {
    refused(
        VENDOR,
        format!(
            "`messages[{i}]`: the tool call `{}` has no `tool` message answering it right after",
            shown(id)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_ranges() {
        assert!(valid_tool_use_id("tooluse_AbC-12"));
        assert!(!valid_tool_use_id("functions.lookup:0"));
        assert!(!valid_tool_use_id(&"a".repeat(65)));
        assert!(valid_tool_use_id(&"a".repeat(64)));
        let mapped = tool_use_id(Cow::Borrowed("functions.lookup:0"));
        assert!(valid_tool_use_id(&mapped) && mapped.starts_with("call_"));
        assert!(check_tool_name(0, "2fa_check").is_ok());
        let e = check_tool_name(3, "a.b").unwrap_err();
        assert!(
            e.to_string().contains("`tools[3]`") && e.to_string().contains("bedrock"),
            "{e}"
        );
        assert!(check_tool_name(0, &"a".repeat(65)).is_err());
        assert!(check_unit("temperature", Some("1")).is_ok());
        assert!(check_unit("temperature", Some("0.0")).is_ok());
        let e = check_unit("temperature", Some("1.5")).unwrap_err();
        assert!(e.to_string().contains("`temperature`"), "{e}");
        assert!(check_unit("top_p", Some("-0.1")).is_err());
        assert!(check_max_tokens(Some(0)).is_err());
        assert!(check_max_tokens(Some(1)).is_ok() && check_max_tokens(None).is_ok());
    }

    #[test]
    fn stops_media_and_names() {
        let mut adjusted = Adjustments::default();
        let kept = stop_sequences(vec!["END".into(), "".into()], &mut adjusted).unwrap();
        assert_eq!(kept, ["END"]);
        assert_eq!(adjusted.as_slice(), ["stop"]);
        let many: Vec<Cow<'_, str>> = (0..=STOP_MAX).map(|_| Cow::Borrowed("x")).collect();
        assert_eq!(
            stop_sequences(many, &mut adjusted).unwrap_err().status(),
            400
        );
        assert_eq!(image_format("m", "image/JPEG").unwrap(), "jpeg");
        assert!(image_format("messages[1].content", "image/bmp")
            .unwrap_err()
            .to_string()
            .contains("messages[1].content"));
        assert_eq!(document_format("m", "application/pdf", "").unwrap(), "pdf");
        assert_eq!(
            document_format("m", "application/octet-stream", "a.MD").unwrap(),
            "md"
        );
        assert!(document_format("m", "application/zip", "a.zip").is_err());
        assert_eq!(decoded_len("iVBORw=="), 4);
        assert_eq!(decoded_len("QUJD"), 3);
        assert!(check_size("m", "image", &"A".repeat(5_000_004), IMAGE_MAX_BYTES).is_err());
        assert!(check_count("m", "image", 21, IMAGES_MAX).is_err());
        let mut adjusted = Adjustments::default();
        assert_eq!(
            document_name("Report (Q3) [final]", &mut adjusted),
            "Report (Q3) [final]"
        );
        assert!(adjusted.is_empty());
        assert_eq!(
            document_name("q3_report.final.pdf", &mut adjusted),
            "q3 report final pdf"
        );
        assert_eq!(document_name("  a\t\tb  ", &mut adjusted), "a b");
        assert_eq!(document_name("...", &mut adjusted), "document");
        assert_eq!(document_name(&"x".repeat(300), &mut adjusted).len(), 200);
        assert_eq!(adjusted.as_slice(), [DOCUMENT_NAME]);
    }

    #[test]
    fn model_families() {
        for m in [
            "amazon.nova-pro-v1:0",
            "us.amazon.nova-lite-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-micro-v1:0",
        ] {
            assert!(takes_cache_points(m) && takes_forced_tool_choice(m), "{m}");
            assert!(!takes_nova_reasoning(m), "{m}");
        }
        assert!(takes_nova_reasoning("global.amazon.nova-2-lite-v1:0"));
        assert!(takes_forced_tool_choice("mistral.mistral-large-2407-v1:0"));
        for m in [
            "meta.llama3-1-70b-instruct-v1:0",
            "mistral.mistral-7b-instruct-v0:2",
        ] {
            assert!(
                !takes_forced_tool_choice(m) && !takes_cache_points(m),
                "{m}"
            );
        }
        assert_eq!(
            (
                nova_effort(1),
                nova_effort(1024),
                nova_effort(8192),
                nova_effort(24576)
            ),
            ("low", "low", "medium", "high")
        );
    }
}
