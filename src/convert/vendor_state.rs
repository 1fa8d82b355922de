//! Opaque vendor state that a vendor needs back on the next turn (Anthropic's signed `thinking`
//! and `redacted_thinking` blocks, Gemini's `thoughtSignature`), kept out of tool-call ids and
//! carried in the client's own dialect, and the short tool-call ids the gateway mints.
//!
//! In the chat pivot the state travels as an assistant message's `thinking_blocks` (the name
//! the OpenAI-compatible ecosystem uses, LiteLLM's convention):
//!
//! - Anthropic's: `{"type":"thinking","thinking":…,"signature":…}` as Anthropic signed it, and
//!   `{"type":"redacted_thinking","data":…}`;
//! - Gemini's: `{"type":"thinking","thinking":"","signature":"gemini:<call id>:<signature>"}`,
//!   one per signed `functionCall`, naming the call it belongs to ([`wrap_gemini`]). The
//!   prefix holds `:`, which base64 cannot produce, so a Gemini signature is never taken for
//!   Anthropic's.
//!
//! At the Responses door the same blocks are `reasoning` items whose `encrypted_content` says
//! whose they are ([`to_encrypted`], [`from_encrypted`]): `anthropic:` + the signature (the
//! thinking text in `summary`), `anthropic-redacted:` + the data, or the Gemini form above.
//! Any other `encrypted_content` (OpenAI's own, from a native route) is no vendor's here.
//!
//! Each vendor leg sends only its own vendor's state and drops the rest by rule ([`Owner`]),
//! noting `thinking_signature` in the request's adjustments (`x-switchyard-adjusted`,
//! `switchyard_request_adjustments_total{adjustment="thinking_signature"}`): a signature is
//! checked by the vendor that made it, and another vendor's refuses the request ("Invalid
//! signature in thinking block"; Gemini's "Corrupted thought signature").

use sha2::{Digest, Sha256};

use crate::dialect::chat::wire::ThinkingBlock;
use crate::dialect::messages::wire::Block;

/// The adjustment noted when a vendor leg drops another vendor's reasoning state.
pub const DROPPED: &str = "thinking_signature";

const GEMINI: &str = "gemini:";
const ANTHROPIC: &str = "anthropic:";
const ANTHROPIC_REDACTED: &str = "anthropic-redacted:";

/// Whose reasoning state a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Anthropic,
    Gemini,
}

/// The owner of a pivot thinking block: Gemini's when its signature has the gateway's Gemini
/// prefix, else Anthropic's (the only other vendor that signs thinking blocks).
pub fn owner(block: &ThinkingBlock<'_>) -> Owner {
    match block {
        ThinkingBlock::Thinking { signature, .. } if signature.starts_with(GEMINI) => Owner::Gemini,
        _ => Owner::Anthropic,
    }
}

/// A Gemini `thoughtSignature` of the call `call_id`, as carried in a thinking block's
/// `signature`: `gemini:<call id>:<signature>`.
pub fn wrap_gemini(call_id: &str, signature: &str) -> String {
    format!("{GEMINI}{call_id}:{signature}")
}

/// The call id and the Gemini signature a wrapped signature holds; `None` for any other.
pub fn unwrap_gemini(wrapped: &str) -> Option<(&str, &str)> {
    let rest = wrapped.strip_prefix(GEMINI)?;
    let (call, sig) = rest.rsplit_once(':')?;
    (!call.is_empty() && !sig.is_empty()).then_some((call, sig))
}

/// A Responses `reasoning` item's `encrypted_content` for a pivot block.
pub fn to_encrypted(block: &ThinkingBlock<'_>) -> String {
    match block {
        ThinkingBlock::Thinking { signature, .. } if signature.starts_with(GEMINI) => {
            signature.to_string()
        }
        ThinkingBlock::Thinking { signature, .. } => format!("{ANTHROPIC}{signature}"),
        ThinkingBlock::RedactedThinking { data } => format!("{ANTHROPIC_REDACTED}{data}"),
    }
}

/// The pivot block of a Responses `reasoning` item (its `encrypted_content`, and its summary
/// text for Anthropic's thinking); `None` when the content is no vendor's the gateway
/// translates to (OpenAI's own, or garbage): it is dropped by rule.
pub fn from_encrypted(encrypted: &str, text: String) -> Option<ThinkingBlock<'static>> {
    if unwrap_gemini(encrypted).is_some() {
        return Some(ThinkingBlock::Thinking {
            thinking: "".into(),
            signature: encrypted.to_string().into(),
        });
    }
    if let Some(sig) = encrypted.strip_prefix(ANTHROPIC).filter(|s| !s.is_empty()) {
        return Some(ThinkingBlock::Thinking {
            thinking: text.into(),
            signature: sig.to_string().into(),
        });
    }
    let data = encrypted
        .strip_prefix(ANTHROPIC_REDACTED)
        .filter(|s| !s.is_empty())?;
    Some(ThinkingBlock::RedactedThinking {
        data: data.to_string().into(),
    })
}

/// Whether `id` is a tool-call id every vendor takes: 1–40 characters of `[A-Za-z0-9_-]`
/// (Anthropic's `tool_use.id` pattern `^[a-zA-Z0-9_-]+$`; OpenAI refuses tool-call ids over
/// 40 characters).
pub fn valid_call_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A short tool-call id made from `seed` (stable: the same seed, the same id): `call_` and 24
/// hex digits of its SHA-256, valid for every vendor ([`valid_call_id`]).
pub fn short_call_id(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    format!("call_{}", &hex::encode(digest)[..24])
}

/// A vendor's own tool-call id kept when every vendor takes it, else made short from it.
pub fn client_call_id(vendor_id: &str) -> String {
    if valid_call_id(vendor_id) {
        vendor_id.to_string()
    } else {
        short_call_id(vendor_id)
    }
}

/// A chat `thinking_blocks` entry as the Messages block it stands for (Anthropic's own
/// `thinking` or `redacted_thinking`).
pub(crate) fn messages_block(b: ThinkingBlock<'_>) -> Block<'_> {
    match b {
        ThinkingBlock::Thinking {
            thinking,
            signature,
        } => Block::Thinking {
            thinking,
            signature,
        },
        ThinkingBlock::RedactedThinking { data } => Block::RedactedThinking { data },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_signatures_are_told_from_anthropics() {
        let wrapped = wrap_gemini("call_1", "U0lH+/=");
        assert_eq!(unwrap_gemini(&wrapped), Some(("call_1", "U0lH+/=")));
        let gemini = ThinkingBlock::Thinking {
            thinking: "".into(),
            signature: wrapped.clone().into(),
        };
        assert_eq!(owner(&gemini), Owner::Gemini);
        let anthropic = ThinkingBlock::Thinking {
            thinking: "hm".into(),
            signature: "EqQBCgIYAhIM+/=".into(),
        };
        assert_eq!(owner(&anthropic), Owner::Anthropic);
        assert_eq!(unwrap_gemini("EqQBCgIYAhIM+/="), None);
        // Through a Responses reasoning item and back, each keeps its owner.
        for block in [gemini, anthropic] {
            let back = from_encrypted(&to_encrypted(&block), "hm".into()).unwrap();
            assert_eq!(owner(&back), owner(&block));
        }
        let redacted = ThinkingBlock::RedactedThinking { data: "abc".into() };
        assert_eq!(
            from_encrypted(&to_encrypted(&redacted), String::new()),
            Some(redacted)
        );
        // OpenAI's own encrypted reasoning is no vendor's here.
        assert_eq!(from_encrypted("gAAAAABoxyz", String::new()), None);
    }

    #[test]
    fn minted_ids_are_short_and_valid_everywhere() {
        let long = format!("call_x__thought__{}", "A+/=".repeat(100));
        let id = client_call_id(&long);
        assert!(valid_call_id(&id) && id.len() == 29, "{id}");
        assert_eq!(client_call_id(&long), id);
        assert_eq!(client_call_id("toolu_01A"), "toolu_01A");
        assert!(!valid_call_id("functions.lookup:0"));
        assert!(!valid_call_id(&"a".repeat(41)));
    }
}
