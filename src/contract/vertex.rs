//! Vertex AI's own rules for Claude (`publishers/anthropic`), beside the Messages API's
//! ([`super::anthropic`]), which hold as they are: the body is Anthropic's.
//!
//! - The body names no `model` (it is in the path) and carries `anthropic_version:
//!   "vertex-2023-10-16"` instead of the `anthropic-version` header: Anthropic's "Claude on
//!   Vertex AI" (docs.anthropic.com/en/api/claude-on-vertex-ai) and Google's "Use Claude
//!   models" (`:rawPredict` / `:streamRawPredict`, `stream` kept in the body). See
//!   [`VERSION`].
//! - `anthropic-beta` is taken as a header, but a value Vertex does not serve is refused with
//!   a 400 ("Unexpected value(s) `prompt-caching-scope-2026-01-05` for the `anthropic-beta`
//!   header"): reported against Claude Code in anthropics/claude-code#21625
//!   (`prompt-caching-scope-2026-01-05`), #34802 (`effort-2025-11-24`,
//!   `adaptive-thinking-2026-01-28`), #12429 (`web-search-2025-03-05` on count-tokens), and
//!   against gateways forwarding it (BerriAI/litellm#19984, Wei-Shaw/sub2api#3358:
//!   `advisor-tool-2026-03-01`, `redact-thinking-2026-02-12`,
//!   `thinking-token-count-2026-05-13`). The gateway keeps only the betas Vertex serves
//!   ([`VERTEX_BETAS`]) and drops the others, so that Claude Code's requests pass.

/// The `anthropic_version` Vertex requires in the body of a Claude request.
pub const VERSION: &str = "vertex-2023-10-16";

/// The `anthropic-beta` values Vertex serves for Claude (Google's "Use Claude models" feature
/// pages: 1M context, interleaved thinking, context management, computer use, tool search,
/// web search; the ones reported accepted in the issues above).
pub const VERTEX_BETAS: &[&str] = &[
    "interleaved-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "tool-search-tool-2025-10-19",
    "web-search-2025-03-05",
];

/// The `anthropic-beta` header's values Vertex serves, comma-joined in the client's order, or
/// `None` when none is left (the header is then not sent).
pub fn kept_betas(header: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|b| VERTEX_BETAS.contains(b))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_codes_betas_vertex_refuses_are_dropped() {
        assert_eq!(
            kept_betas("claude-code-20250219,interleaved-thinking-2025-05-14, prompt-caching-scope-2026-01-05,effort-2025-11-24,context-1m-2025-08-07").as_deref(),
            Some("interleaved-thinking-2025-05-14,context-1m-2025-08-07")
        );
        assert_eq!(kept_betas("prompt-caching-scope-2026-01-05"), None);
        assert_eq!(kept_betas(""), None);
    }
}
