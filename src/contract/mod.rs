//! Each vendor dialect's contract: the rules its API documents (or states in the 400s it
//! gives) for what a request may hold, as code, each with the doc it comes from. A rule lives
//! here and only here; the translations in [`crate::convert`] call it.
//!
//! One module per vendor dialect:
//!
//! - [`openai_chat`]: OpenAI Chat Completions as OpenAI serves it (`openai`, `azure`, the
//!   OpenAI-compatible servers and the built-in `mock` on translated routes);
//! - [`openai_responses`]: the Responses API (the `/v1/responses` door, and OpenAI behind it);
//! - [`anthropic`]: Anthropic Messages;
//! - [`bedrock`]: Claude's Messages body on Amazon Bedrock (its envelope, betas and fields);
//! - [`gemini`]: Gemini `generateContent`;
//! - [`gemini_door`]: what the Gemini front door's requests carry to other vendors;
//! - [`converse`]: Bedrock Converse (`bedrock`, every model family but Claude).
//! - [`vertex`]: what Vertex AI adds for Claude (its `anthropic_version`, the betas it serves).
//!
//! What a rule does with a request that breaks it, in this order of preference:
//!
//! - **maps** it, when the vendor needs another form of the same thing and the mapping is
//!   stable: a tool-call id invalid for the vendor becomes [`portable_id`] (the same input id
//!   always gives the same output id, so an assistant's call and the tool result that answers
//!   it map alike without state), a value over a length cap becomes its SHA-256 in hex
//!   ([`capped`]);
//! - **adjusts** it as the vendor's docs advise, and notes the client's field in
//!   [`Adjustments`] (the answer's `x-switchyard-adjusted` header and
//!   `switchyard_request_adjustments_total`): a `temperature` left out beside Anthropic's
//!   thinking, a forced `tool_choice` made `auto`;
//! - **refuses** it with a 400 naming the field and the vendor kind ([`refused`]) before any
//!   vendor is called, when carrying it would change what the request means (an image in a
//!   tool result for a vendor whose tool results hold text) or when no stable map back exists
//!   (a tool name the vendor does not take: the model would call the tool by another name).
//!
//! Why tool-call ids need no map back: a vendor's answer carries only the ids it mints itself
//! (valid for it, and short on every vendor the gateway speaks), never the ids of the history
//! it was sent, so the client never sees a mapped id. The mapped ids exist only in the
//! requests, where a call and its result map alike.

pub(crate) mod anthropic;
pub(crate) mod bedrock;
pub(crate) mod converse;
pub(crate) mod gemini;
pub(crate) mod gemini_door;
pub(crate) mod openai_chat;
pub(crate) mod openai_responses;
pub(crate) mod vertex;

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::dialect::adjusted::Adjustments;
use crate::error::GatewayError;

/// The prefix of a mapped tool-call id.
const PORTABLE_ID_PREFIX: &str = "call_";

/// Hex digits of the SHA-256 kept in a mapped tool-call id: 128 bits, so two different ids
/// do not meet in one conversation.
const PORTABLE_ID_HEX: usize = 32;

/// The SHA-256 of `value`, in lower-case hex (64 characters).
pub(crate) fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// `value` itself when it has at most `max` characters, else its SHA-256 in hex (64
/// characters; every cap that uses this is at least 64): the same value always gives the
/// same result, so what a vendor counts per user stays per user.
pub(crate) fn capped(value: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    if value.chars().count() <= max {
        return value;
    }
    Cow::Owned(sha256_hex(&value))
}

/// A tool-call id valid for every vendor the gateway speaks, made from `id`: `call_` and the
/// first 32 hex digits of its SHA-256 (37 characters of `[a-z0-9_]`: within OpenAI's 40 and
/// Anthropic's `^[a-zA-Z0-9_-]+$`).
pub(crate) fn portable_id(id: &str) -> String {
    let mut out = String::with_capacity(PORTABLE_ID_PREFIX.len() + PORTABLE_ID_HEX);
    out.push_str(PORTABLE_ID_PREFIX);
    out.push_str(&sha256_hex(id)[..PORTABLE_ID_HEX]);
    out
}

/// `id` itself when the vendor takes it (`valid`), else its [`portable_id`].
pub(crate) fn id_for<'a>(id: Cow<'a, str>, valid: fn(&str) -> bool) -> Cow<'a, str> {
    if valid(&id) {
        return id;
    }
    Cow::Owned(portable_id(&id))
}

/// A 400 about the client's request that the route's vendor kind cannot take, naming what.
pub(crate) fn refused(vendor: &str, what: impl std::fmt::Display) -> GatewayError {
    GatewayError::InvalidRequest(format!("{what} (provider kind `{vendor}`)"))
}

/// `name` has 1 to `max` characters, each an ASCII letter, digit, `_`, `-` or one of `more`.
pub(crate) fn name_of(name: &str, max: usize, more: &[char]) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || more.contains(&c);
    !name.is_empty() && name.chars().count() <= max && name.chars().all(ok)
}

/// A value the client gave, for an error message: at most 64 characters, printable.
pub(crate) fn shown(value: &str) -> String {
    crate::error::printable(value, 64)
}

/// Leaves out what `keep` refuses from `values`, noting `field` in `adjusted` when something
/// was left out.
pub(crate) fn keep_noted<T>(
    values: Vec<T>,
    keep: impl Fn(&T) -> bool,
    field: &'static str,
    adjusted: &mut Adjustments,
) -> Vec<T> {
    let before = values.len();
    let kept: Vec<T> = values.into_iter().filter(keep).collect();
    if kept.len() != before {
        adjusted.note(field);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_ids_are_stable_and_valid_for_every_vendor() {
        for id in [
            "functions.lookup:0",
            "toolu_01A09q90qw90lq917835lq9",
            &format!("call_1{}{}", "__thought__", "Cq+/=".repeat(80)),
            "",
        ] {
            let p = portable_id(id);
            assert_eq!(p, portable_id(id), "stable");
            assert_eq!(p.len(), 37);
            assert!(openai_chat::valid_tool_call_id(&p), "{p}");
            assert!(anthropic::valid_tool_use_id(&p), "{p}");
        }
        assert_ne!(portable_id("a"), portable_id("b"));
    }

    #[test]
    fn ids_map_only_when_invalid() {
        assert_eq!(
            id_for(Cow::Borrowed("call_1"), anthropic::valid_tool_use_id),
            "call_1"
        );
        let mapped = id_for(
            Cow::Borrowed("functions.lookup:0"),
            anthropic::valid_tool_use_id,
        );
        assert_eq!(mapped, portable_id("functions.lookup:0"));
    }

    #[test]
    fn capped_values_keep_what_fits() {
        assert_eq!(capped(Cow::Borrowed("u-1"), 64), "u-1");
        let long = "x".repeat(65);
        let c = capped(Cow::Borrowed(&long), 64);
        assert_eq!(c.len(), 64);
        assert_eq!(c, sha256_hex(&long));
        assert_eq!(
            capped(Cow::Borrowed(&"é".repeat(64)), 64).chars().count(),
            64
        );
    }

    #[test]
    fn names_and_noted_filters() {
        assert!(name_of("get_weather-2", 64, &[]));
        assert!(!name_of("a.b", 64, &[]));
        assert!(name_of("a.b:c", 64, &['.', ':']));
        assert!(!name_of("", 64, &[]));
        assert!(!name_of(&"a".repeat(65), 64, &[]));
        let mut adjusted = Adjustments::default();
        assert_eq!(
            keep_noted(vec![1, 2], |_| true, "stop", &mut adjusted),
            [1, 2]
        );
        assert!(adjusted.is_empty());
        assert_eq!(
            keep_noted(vec![1, 2], |n| *n > 1, "stop", &mut adjusted),
            [2]
        );
        assert_eq!(adjusted.header_value().as_deref(), Some("stop"));
    }
}
