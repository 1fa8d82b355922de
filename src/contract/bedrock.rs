//! Claude on Amazon Bedrock (`InvokeModel` / `InvokeModelWithResponseStream`): the Anthropic
//! Messages body with Bedrock's envelope, and what Bedrock refuses in it.
//!
//! Docs: "Anthropic Claude Messages API — Request and Response", Amazon Bedrock User Guide
//! (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html):
//!
//! - `anthropic_version` is required and must be `bedrock-2023-05-31` ([`VERSION`]);
//! - the model is the path's (`/model/{modelId}/invoke`), not a body field, and the stream is
//!   the operation (`invoke-with-response-stream`): `model` and `stream` are not in the body
//!   (Bedrock answers "model: Extra inputs are not permitted");
//! - betas go as the body's `anthropic_beta` list, not a header, and only those Bedrock
//!   documents are taken ([`BETAS`]); an unknown one is refused ("invalid beta flag": the
//!   failures Claude Code's `claude-code-20250219`, `prompt-caching-scope-2026-01-05`,
//!   `adaptive-thinking-2026-01-28` caused behind gateways, coder/aibridge#221, LiteLLM's
//!   "Claude Code beta headers incident"), so the others are dropped and noted
//!   `anthropic-beta`;
//! - body fields of betas Bedrock does not take are refused as "Extra inputs are not
//!   permitted" (anthropics/claude-code#49548 `context_management`,
//!   anthropics/claude-code-action#1005 `output_config.effort`, anthropics/claude-code#31033
//!   `tools.N.custom.defer_loading`, #11678 `input_examples`): each is kept only beside its
//!   beta ([`GATED`]) and otherwise dropped and noted; `cache_control.scope` (the
//!   `prompt-caching-scope` beta, which Bedrock does not list) is always dropped.

/// The `anthropic_version` Bedrock requires in the body.
pub const VERSION: &str = "bedrock-2023-05-31";

/// The betas Bedrock documents for Claude's `anthropic_beta` (same page, "anthropic_beta").
pub const BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
];

/// Where a gated field is: at the top of the body, in `output_config`, or in each tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Top,
    OutputConfig,
    Tool,
}

/// A body field Bedrock takes only beside its beta: (where, field, beta, the adjustment noted
/// when it is dropped).
pub const GATED: &[(Place, &str, &str, &str)] = &[
    (
        Place::Top,
        "context_management",
        "context-management-2025-06-27",
        "context_management",
    ),
    (
        Place::OutputConfig,
        "effort",
        "effort-2025-11-24",
        "output_config.effort",
    ),
    (
        Place::Tool,
        "defer_loading",
        "tool-search-tool-2025-10-19",
        "tools.defer_loading",
    ),
    (
        Place::Tool,
        "input_examples",
        "tool-examples-2025-10-29",
        "tools.input_examples",
    ),
];

/// The adjustment noted when a client's beta is dropped.
pub const BETA_DROPPED: &str = "anthropic-beta";

/// The adjustment noted when a `cache_control.scope` is dropped.
pub const SCOPE_DROPPED: &str = "cache_control.scope";

/// The betas of the client's `anthropic-beta` header values (comma-separated, possibly
/// several headers) that Bedrock takes, each once in the client's order, and whether any was
/// dropped.
pub fn betas<'a>(values: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, bool) {
    let mut kept: Vec<&str> = Vec::new();
    let mut dropped = false;
    for beta in values.flat_map(|v| v.split(',')).map(str::trim) {
        if beta.is_empty() {
            continue;
        }
        if BETAS.contains(&beta) {
            if !kept.contains(&beta) {
                kept.push(beta);
            }
        } else {
            dropped = true;
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documented_betas_pass() {
        let (kept, dropped) = betas(
            [
                "claude-code-20250219,interleaved-thinking-2025-05-14",
                " context-1m-2025-08-07 ,prompt-caching-scope-2026-01-05",
                "interleaved-thinking-2025-05-14",
            ]
            .into_iter(),
        );
        assert_eq!(
            kept,
            ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
        );
        assert!(dropped);
        assert_eq!(
            betas(["effort-2025-11-24"].into_iter()),
            (vec!["effort-2025-11-24"], false)
        );
    }
}
