//! Gemini `generateContent`: the rules a request the gateway builds for a `gemini` vendor
//! must keep (`crate::convert::chat_to_gemini` calls them).
//!
//! | Rule | What the gateway does | Source |
//! |---|---|---|
//! | a function's `name` is 1 to 64 of `a-z A-Z 0-9 _ . : -`, a letter or `_` first | refuses another name (400 naming `tools[i]`); the gateway does not rename tools (the model's calls would come back under the new name) | API reference, `FunctionDeclaration.name`: "Must be a-z, A-Z, 0-9, or contain underscores, colons, dots, and dashes, with a maximum length of 64"; Gemini answers a digit first with 400 "Invalid function name. Must start with a letter or an underscore" |
//! | `batchEmbedContents`: each `requests[].model` must be the path's model | the Gemini door's native route names the upstream model in each request as in the path (`crate::dialect::gemini::view::batch_models_spliced`); the embeddings translation writes it so | API reference, `models.batchEmbedContents` (`requests[].model`: "must match the model specified in the path"); enforced by `tests/it/support/mock_gemini.rs`, shown by `real_clients_gemini::the_genai_sdk_embeds_on_a_gemini_route_bytes_both_ways` |
//! | at most 5 stop sequences | refuses more (400 naming the field) | API reference, `GenerationConfig.stopSequences`: "The set of character sequences (up to 5)" |
//! | a `functionResponse` carries a JSON object (`response`) and inline data (`parts[].inlineData`) | a tool result's text goes as its object, or `{"output": text}`; its images given as `data:` URLs go as inline parts; an image by URL is refused (400 naming the tool result), never dropped (`crate::convert::chat_to_gemini`) | API reference, `FunctionResponse.response` ("The function response in JSON object format"), `FunctionResponse.parts` (multimodal function responses, inline data only) |
//! | function call ids | none are sent: Gemini pairs a `functionResponse` with its call by name and order, so no id can break its rules | API reference, `FunctionCall.id` / `FunctionResponse.id` (optional) |
//! | every `functionCall` of a model turn goes back with the `thoughtSignature` Gemini gave it (Gemini 3) | the signature rides in the client's own slot (`thinking_blocks` `gemini:<call id>:<signature>`, a legacy `<id>__thought__<signature>` id is still read) and goes back on its call; a call Gemini never signed (another vendor's history) gets `skip_thought_signature_validator` on the turn's first call (`crate::convert::chat_to_gemini`) | "Thought signatures" (ai.google.dev/gemini-api/docs/thought-signatures), FAQ on transferring a conversation from another model |
//! | the thinking budget counts against `maxOutputTokens` | a budget above it is cut to it | "Gemini thinking", thinking budgets |

use super::{name_of, refused, shown};
use crate::error::GatewayError;

/// The vendor kind, in refusals.
const VENDOR: &str = "gemini";

/// The longest function name Gemini takes.
pub const FUNCTION_NAME_MAX: usize = 64;

/// The most stop sequences one request may give.
pub const STOP_MAX: usize = 5;

/// `tools[i]`'s name as Gemini takes it, else a 400 naming it.
pub(crate) fn check_function_name(i: usize, name: &str) -> Result<(), GatewayError> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && name_of(name, FUNCTION_NAME_MAX, &['.', ':']) {
        return Ok(());
    }
    Err(refused(
        VENDOR,
        format!(
            "`tools[{i}]` name `{}` is not one this route's provider takes: 1 to {FUNCTION_NAME_MAX} letters, digits, `_`, `.`, `:` or `-`, a letter or `_` first",
            shown(name)
        ),
    ))
}

/// At most [`STOP_MAX`] stop sequences, else a 400 naming `stop`.
pub(crate) fn check_stop_count(n: usize) -> Result<(), GatewayError> {
    if n <= STOP_MAX {
        return Ok(());
    }
    Err(refused(
        VENDOR,
        format!("`stop` has {n} stop sequences; this route's provider takes at most {STOP_MAX}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stops_and_tool_results() {
        assert!(check_function_name(0, "mcp.fs:read-file_2").is_ok());
        let e = check_function_name(2, "has space").unwrap_err();
        assert!(
            e.to_string().contains("`tools[2]`") && e.to_string().contains("gemini"),
            "{e}"
        );
        assert!(check_function_name(0, &"a".repeat(65)).is_err());
        for ok in ["get_weather", "_ns.tool:v1-2"] {
            assert!(check_function_name(0, ok).is_ok(), "{ok}");
        }
        assert!(check_function_name(0, &"a".repeat(64)).is_ok());
        // A letter or `_` first: Gemini refuses `2fa_check` and `-x`.
        for bad in ["2fa_check", "-x", ""] {
            assert!(check_function_name(0, bad).is_err(), "{bad}");
        }
        assert!(check_stop_count(5).is_ok());
        assert_eq!(check_stop_count(6).unwrap_err().status(), 400);
    }
}
