//! OpenAI Chat Completions as OpenAI serves it (`POST /v1/chat/completions`): the rules a
//! request the gateway builds for a chat vendor must keep. They apply where the gateway
//! writes the request (the Messages and Responses doors on chat vendors, through
//! `crate::convert::chat_vendor`); the chat door's own requests to chat vendors pass through
//! as the client wrote them.
//!
//! | Rule | Source |
//! |---|---|
//! | a tool call's `id` (and a `tool` message's `tool_call_id`) has at most 40 characters | OpenAI's 400 `string_above_max_length`, "Invalid 'messages[N].tool_calls[0].id': string too long. Expected a string with maximum length 40" (reported in agno-agi/agno#5382, BerriAI/litellm#17343; not in the API reference) |
//! | `user` and `safety_identifier` have at most 64 characters | API reference, "Create chat completion": `safety_identifier` ("a maximum length of 64 characters"), `user` (deprecated for it; same cap, a 400 over it) |
//! | a function's `name` matches `^[a-zA-Z0-9_-]{1,64}$` | API reference, `tools[].function.name`: "Must be a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64" |
//! | at most 128 tools | API reference, `tools`: "A max of 128 functions are supported" |
//! | at most 4 stop sequences | API reference, `stop`: "Up to 4 sequences"; help center, "How do I use stop sequences in the OpenAI API?" |
//! | a `tool` message's content is text (a string, or `text` parts) | API reference, "Tool message": content parts "For tool messages, only type `text` is supported" |

use std::borrow::Cow;

use super::{capped, id_for, name_of, refused, shown};
use crate::error::GatewayError;

/// The longest tool-call id OpenAI takes.
pub const TOOL_CALL_ID_MAX: usize = 40;

/// The longest `user` or `safety_identifier` OpenAI takes.
pub const USER_MAX: usize = 64;

/// The longest function name OpenAI takes.
pub const FUNCTION_NAME_MAX: usize = 64;

/// The most tools one request may offer.
pub const TOOLS_MAX: usize = 128;

/// The most stop sequences one request may give.
pub const STOP_MAX: usize = 4;

/// Whether OpenAI takes `id` as a tool call's id: 1 to 40 characters.
pub(crate) fn valid_tool_call_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= TOOL_CALL_ID_MAX
}

/// A tool-call id (of an assistant's call, or a `tool` message's `tool_call_id`) as OpenAI
/// takes it: itself when valid, else its portable id (the same for the call and its result).
pub(crate) fn tool_call_id(id: Cow<'_, str>) -> Cow<'_, str> {
    id_for(id, valid_tool_call_id)
}

/// `user` or `safety_identifier` within OpenAI's 64 characters: itself, or its SHA-256 in hex
/// (Anthropic's `metadata.user_id` may be 256; Claude Code sends ~160).
pub(crate) fn user(value: Cow<'_, str>) -> Cow<'_, str> {
    capped(value, USER_MAX)
}

/// `tools[i].function.name` as OpenAI takes it, else a 400 naming it: a name cannot be
/// mapped, since the model would call the tool by the mapped name.
pub(crate) fn check_function_name(vendor: &str, i: usize, name: &str) -> Result<(), GatewayError> {
    if name_of(name, FUNCTION_NAME_MAX, &[]) {
        return Ok(());
    }
    Err(refused(
        vendor,
        format!(
            "`tools[{i}]` name `{}` is not one this route's provider takes: 1 to {FUNCTION_NAME_MAX} letters, digits, `_` or `-`",
            shown(name)
        ),
    ))
}

/// At most [`TOOLS_MAX`] tools, else a 400 naming `tools`.
pub(crate) fn check_tool_count(vendor: &str, n: usize) -> Result<(), GatewayError> {
    if n <= TOOLS_MAX {
        return Ok(());
    }
    Err(refused(
        vendor,
        format!("`tools` has {n} tools; this route's provider takes at most {TOOLS_MAX}"),
    ))
}

/// At most [`STOP_MAX`] stop sequences, else a 400 naming the field (`field`: the door's
/// name for it). Leaving some out would let the answer run past a stop the client asked for.
pub(crate) fn check_stop_count(vendor: &str, field: &str, n: usize) -> Result<(), GatewayError> {
    if n <= STOP_MAX {
        return Ok(());
    }
    Err(refused(
        vendor,
        format!("`{field}` has {n} stop sequences; this route's provider takes at most {STOP_MAX}"),
    ))
}

/// A content part of type `kind` in the tool result for the call `call_id`, else a 400
/// naming it: a tool result holds text only here, and an image left out would change what
/// the model sees.
pub(crate) fn check_tool_result_part(
    vendor: &str,
    call_id: &str,
    kind: &str,
) -> Result<(), GatewayError> {
    if kind == "text" {
        return Ok(());
    }
    Err(refused(
        vendor,
        format!(
            "the tool result for the call `{}` holds `{}` content: this route's provider takes text only in tool results",
            shown(call_id),
            shown(kind)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_ids_over_40_are_mapped() {
        let forty = "c".repeat(40);
        assert_eq!(tool_call_id(Cow::Borrowed(&forty)), forty);
        assert_eq!(
            tool_call_id(Cow::Borrowed("functions.lookup:0")),
            "functions.lookup:0"
        );
        let gemini = format!("call_1__thought__{}", "Cq+/=".repeat(40));
        let mapped = tool_call_id(Cow::Borrowed(&gemini));
        assert!(mapped.len() <= TOOL_CALL_ID_MAX, "{mapped}");
        assert_eq!(mapped, tool_call_id(Cow::Borrowed(&gemini)));
    }

    #[test]
    fn users_over_64_are_hashed() {
        assert_eq!(user(Cow::Borrowed("u-1")), "u-1");
        let long = "u".repeat(159);
        assert_eq!(user(Cow::Borrowed(&long)).len(), 64);
    }

    #[test]
    fn names_counts_and_tool_results() {
        assert!(check_function_name("openai", 0, "get_weather").is_ok());
        let e = check_function_name("openai", 3, &"n".repeat(65)).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string().contains("`tools[3]`") && e.to_string().contains("openai"),
            "{e}"
        );
        assert!(check_function_name("openai", 0, "mcp.fs:read").is_err());
        assert!(check_tool_count("openai", 128).is_ok());
        assert!(check_tool_count("openai", 129).is_err());
        assert!(check_stop_count("openai", "stop_sequences", 4).is_ok());
        let e = check_stop_count("openai", "stop_sequences", 5).unwrap_err();
        assert!(e.to_string().contains("`stop_sequences`"), "{e}");
        assert!(check_tool_result_part("azure", "call_1", "text").is_ok());
        let e = check_tool_result_part("azure", "call_1", "image_url").unwrap_err();
        assert!(
            e.to_string().contains("`call_1`") && e.to_string().contains("azure"),
            "{e}"
        );
    }
}
