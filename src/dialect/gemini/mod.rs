//! The Gemini dialect (`generateContent`, spoken by `gemini` vendors; never a front door): the
//! facts about its answers that more than one module needs. Google's API reference:
//! `FinishReason` and `BlockReason`.

pub mod wire;

/// Whether a `finishReason` or `blockReason` means Gemini's filters stopped the answer.
pub fn is_filtered(reason: &str) -> bool {
    matches!(
        reason,
        "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION"
            | "OTHER_BLOCK"
    )
}
