//! The Responses API (`POST /v1/responses`), as OpenAI serves it and as the `/v1/responses`
//! door reads it: what a Responses request may hold that another vendor's contract limits,
//! for `crate::convert::responses_to_chat`. A Responses request to a vendor that serves the
//! Responses API passes through as the client wrote it; the gateway never writes one.
//!
//! | Rule | What the gateway does | Source |
//! |---|---|---|
//! | `user` and `safety_identifier` have at most 64 characters | `user` is carried as chat's `user` (within [`super::openai_chat::USER_MAX`], hashed when longer; to Anthropic as `metadata.user_id`); `safety_identifier` likewise (chat's `safety_identifier`, capped; to Anthropic as `metadata.user_id` when there is no `user`) | API reference, "Create a model response": `safety_identifier`, `user` |
//! | a `function_call_output`'s `output` is a string or `input_text`, `input_image`, `input_file` parts | text and images are carried (each vendor's contract then takes or refuses an image in a tool result); a file is refused (400 naming the item) | API reference, "Create a model response", `input[]` function tool call output: `output` |
//! | a `function_call`'s `call_id` | carried; each vendor's contract maps an id it does not take | API reference, function tool call `call_id` |

use super::shown;
use crate::error::GatewayError;

/// The parts a `function_call_output`'s `output` array may hold that the gateway carries:
/// `Some(true)` for text, `Some(false)` for an image, else a 400 naming the part.
pub(crate) fn tool_output_part(i: usize, j: usize, kind: &str) -> Result<bool, GatewayError> {
    match kind {
        "input_text" | "output_text" => Ok(true),
        "input_image" => Ok(false),
        other => Err(GatewayError::InvalidRequest(format!(
            "`input[{i}].output[{j}]` of type `{}` is not supported for this route's provider",
            shown(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_output_parts() {
        assert!(tool_output_part(0, 0, "input_text").unwrap());
        assert!(!tool_output_part(0, 1, "input_image").unwrap());
        let e = tool_output_part(3, 1, "input_file").unwrap_err();
        assert!(e.to_string().contains("`input[3].output[1]`"), "{e}");
    }
}
