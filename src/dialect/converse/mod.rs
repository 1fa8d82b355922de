//! The Bedrock Converse dialect (`Converse` / `ConverseStream`, spoken by `bedrock` vendors for
//! every model family but Claude; never a front door): the facts about its answers that more
//! than one module needs. AWS's Bedrock API reference, "Converse" (`stopReason`).

pub mod wire;

/// Whether a `stopReason` means a filter stopped the answer: `content_filtered` (the model
/// provider's filter) or `guardrail_intervened` (a Bedrock guardrail).
pub fn is_filtered(reason: &str) -> bool {
    matches!(reason, "content_filtered" | "guardrail_intervened")
}
