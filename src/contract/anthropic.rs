//! Anthropic Messages (`POST /v1/messages`): the rules a request the gateway builds for an
//! `anthropic` vendor must keep (`crate::convert::chat_to_messages` calls them).
//!
//! | Rule | What the gateway does | Source |
//! |---|---|---|
//! | `tool_use.id` / `tool_result.tool_use_id` match `^[a-zA-Z0-9_-]+$` | maps an invalid id (`functions.lookup:0`, a legacy `<id>__thought__<signature>`) to its portable id | Anthropic's 400 "String should match pattern '^[a-zA-Z0-9_-]+$'" (API reference, "Create a Message", `tool_use` block `id`; reported in HKUDS/nanobot#4356) |
//! | a tool's `name` matches `^[a-zA-Z0-9_-]{1,128}$` | refuses another name (400 naming `tools[i]`) | Anthropic's 400 "tools.N.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'" (API reference, "Create a Message", `tools[].name`) |
//! | `metadata.user_id` has at most 256 characters | a longer one goes as its SHA-256 in hex | API reference, "Create a Message", `metadata.user_id`: maxLength 256 |
//! | thinking's `budget_tokens` is at least 1,024 and below `max_tokens` | a budget is cut to `max_tokens - 1`; a `max_tokens` that leaves no 1,024 is a 400 | "Building with extended thinking"; API reference, `thinking.budget_tokens` ("Must be ≥1024 and less than `max_tokens`") |
//! | with thinking on: no `temperature` other than 1, no `top_k`, `top_p` only in 0.95–1, no forced `tool_choice` | leaves them out / makes the choice `auto`, noting `temperature`, `top_k`, `top_p`, `tool_choice` | "Building with extended thinking", Feature compatibility ("Thinking isn't compatible with temperature or top_k modifications as well as forced tool use"; "you can set top_p to values between 1 and 0.95"); the 400s "temperature may only be set to 1 when thinking is enabled", "Thinking may not be enabled when tool_choice forces tool use" |
//! | `temperature` and `top_p` not both | `top_p` is left out, noting `top_p` | API reference, `top_p` ("You should either alter temperature or top_p, but not both"); the 400 "temperature and top_p cannot both be specified for this model" (Opus 4.1, the 4.5 models) |
//! | each stop sequence contains non-whitespace | whitespace-only ones are left out, noting `stop` | Anthropic's 400 "each stop sequence must contain non-whitespace" |
//! | a `tool_result` holds text and image blocks | carried, images included | API reference, `tool_result` block `content`: text, image, search result, document blocks |

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::{capped, id_for, keep_noted, name_of, refused, shown};
use crate::dialect::adjusted::Adjustments;
use crate::dialect::messages::wire::ToolChoiceOut;
use crate::error::GatewayError;

/// The vendor kind, in refusals.
const VENDOR: &str = "anthropic";

/// The longest tool name Anthropic takes.
pub const TOOL_NAME_MAX: usize = 128;

/// The longest `metadata.user_id` Anthropic takes.
pub const USER_ID_MAX: usize = 256;

/// Anthropic's smallest thinking budget.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// Whether Anthropic takes `id` as a `tool_use` id: `^[a-zA-Z0-9_-]+$`.
pub(crate) fn valid_tool_use_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A tool-call id as a `tool_use` id (or a `tool_result`'s `tool_use_id`): itself when
/// valid, else its portable id (the same for the call and its result).
pub(crate) fn tool_use_id(id: Cow<'_, str>) -> Cow<'_, str> {
    id_for(id, valid_tool_use_id)
}

/// `tools[i]`'s name as Anthropic takes it, else a 400 naming it.
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

/// `metadata.user_id` within Anthropic's 256 characters: itself, or its SHA-256 in hex.
pub(crate) fn user_id(value: Cow<'_, str>) -> Cow<'_, str> {
    capped(value, USER_ID_MAX)
}

/// The thinking budget for a client's asked `budget` and the request's `max_tokens`: at
/// least 1,024, cut to `max_tokens - 1`; a `max_tokens` that leaves no room for 1,024 is a
/// 400 naming the fields.
pub(crate) fn thinking_budget(budget: u64, max_tokens: u64) -> Result<u64, GatewayError> {
    let budget = budget
        .max(MIN_THINKING_BUDGET)
        .min(max_tokens.saturating_sub(1));
    if budget < MIN_THINKING_BUDGET {
        return Err(GatewayError::InvalidRequest(format!(
            "reasoning (`reasoning_effort` or `thinking`) needs `max_tokens` above {MIN_THINKING_BUDGET} on this route: Anthropic's smallest thinking budget is {MIN_THINKING_BUDGET} tokens, and it must be below `max_tokens`"
        )));
    }
    Ok(budget)
}

/// The stop sequences Anthropic takes: whitespace-only ones are left out (the others still
/// stop the answer), noting `stop`.
pub(crate) fn stop_sequences<'a>(
    stops: Vec<Cow<'a, str>>,
    adjusted: &mut Adjustments,
) -> Vec<Cow<'a, str>> {
    keep_noted(stops, |s| !s.trim().is_empty(), "stop", adjusted)
}

/// The sampling parameters and the tool choice, as the client sent them.
pub(crate) struct Sampling<'a> {
    pub temperature: Option<&'a RawValue>,
    pub top_p: Option<&'a RawValue>,
    pub top_k: Option<&'a RawValue>,
    pub tool_choice: Option<ToolChoiceOut<'a>>,
}

impl<'a> Sampling<'a> {
    /// `temperature` and `top_p` never together: Claude Opus 4.1 and the 4.5 models refuse
    /// both ("temperature and top_p cannot both be specified for this model. Please use only
    /// one."), and the API reference says to alter one, not both (`top_p`: "You should either
    /// alter temperature or top_p, but not both"). The `temperature` is kept, `top_p` left
    /// out and noted.
    pub(crate) fn one_sampler(self, adjusted: &mut Adjustments) -> Sampling<'a> {
        if self.temperature.is_none() || self.top_p.is_none() {
            return self;
        }
        adjusted.note("top_p");
        Sampling {
            top_p: None,
            ..self
        }
    }

    /// What Anthropic takes beside thinking, resolved as its docs advise rather than refused
    /// (see the module's table): a `temperature` other than 1 and `top_k` are left out, a
    /// `top_p` outside 0.95–1 is left out, a forced `tool_choice` (`any`, a named tool)
    /// becomes `auto` keeping `disable_parallel_tool_use`. Each change notes the client's
    /// field in `adjusted`.
    pub(crate) fn beside_thinking(self, adjusted: &mut Adjustments) -> Sampling<'a> {
        let number = |v: &RawValue| v.get().parse::<f64>().ok();
        let mut keep =
            |v: Option<&'a RawValue>, ok: &dyn Fn(f64) -> bool, field: &'static str| match v {
                Some(v) if number(v).is_some_and(ok) => Some(v),
                Some(_) => {
                    adjusted.note(field);
                    None
                }
                None => None,
            };
        let temperature = keep(self.temperature, &|t| t == 1.0, "temperature");
        let top_p = keep(self.top_p, &|p| (0.95..=1.0).contains(&p), "top_p");
        let top_k = keep(self.top_k, &|_| false, "top_k");
        let tool_choice = self.tool_choice.map(|c| match c {
            ToolChoiceOut::Any {
                disable_parallel_tool_use,
            }
            | ToolChoiceOut::Tool {
                disable_parallel_tool_use,
                ..
            } => {
                adjusted.note("tool_choice");
                ToolChoiceOut::Auto {
                    disable_parallel_tool_use,
                }
            }
            other => other,
        });
        Sampling {
            temperature,
            top_p,
            top_k,
            tool_choice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn tool_use_ids_outside_the_pattern_are_mapped() {
        assert_eq!(tool_use_id(Cow::Borrowed("toolu_01A-b")), "toolu_01A-b");
        let kimi = tool_use_id(Cow::Borrowed("functions.lookup:0"));
        assert!(
            valid_tool_use_id(&kimi) && kimi != "functions.lookup:0",
            "{kimi}"
        );
        assert_eq!(kimi, tool_use_id(Cow::Borrowed("functions.lookup:0")));
        let gemini = tool_use_id(Cow::Borrowed("call_1__thought__Cq+/="));
        assert!(valid_tool_use_id(&gemini), "{gemini}");
        assert!(!valid_tool_use_id(""));
    }

    #[test]
    fn names_user_ids_and_stops() {
        assert!(check_tool_name(0, &"a".repeat(128)).is_ok());
        let e = check_tool_name(1, "caldav.create").unwrap_err();
        assert!(
            e.to_string().contains("`tools[1]`") && e.to_string().contains("anthropic"),
            "{e}"
        );
        assert_eq!(user_id(Cow::Borrowed("u")), "u");
        assert_eq!(user_id(Cow::Owned("u".repeat(257))).len(), 64);
        let mut adjusted = Adjustments::default();
        let kept = stop_sequences(vec![" ".into(), "END".into()], &mut adjusted);
        assert_eq!(kept, ["END"]);
        assert_eq!(adjusted.as_slice(), ["stop"]);
    }

    #[test]
    fn thinking_budget_bounds() {
        assert_eq!(thinking_budget(500, 4000).unwrap(), 1024);
        assert_eq!(thinking_budget(24576, 4000).unwrap(), 3999);
        assert_eq!(thinking_budget(1024, 1024).unwrap_err().status(), 400);
    }

    #[test]
    fn temperature_and_top_p_are_never_sent_together() {
        let mut adjusted = Adjustments::default();
        let both = Sampling {
            temperature: Some(raw("0.3")),
            top_p: Some(raw("0.9")),
            top_k: None,
            tool_choice: None,
        }
        .one_sampler(&mut adjusted);
        assert!(both.temperature.is_some() && both.top_p.is_none());
        assert_eq!(adjusted.as_slice(), ["top_p"]);
        let mut adjusted = Adjustments::default();
        let one = Sampling {
            temperature: None,
            top_p: Some(raw("0.9")),
            top_k: None,
            tool_choice: None,
        }
        .one_sampler(&mut adjusted);
        assert!(one.top_p.is_some() && adjusted.is_empty());
    }

    #[test]
    fn beside_thinking_leaves_out_and_notes() {
        let mut adjusted = Adjustments::default();
        let s = Sampling {
            temperature: Some(raw("0.2")),
            top_p: Some(raw("0.5")),
            top_k: Some(raw("5")),
            tool_choice: Some(ToolChoiceOut::Any {
                disable_parallel_tool_use: true,
            }),
        }
        .beside_thinking(&mut adjusted);
        assert!(s.temperature.is_none() && s.top_p.is_none() && s.top_k.is_none());
        assert!(matches!(
            s.tool_choice,
            Some(ToolChoiceOut::Auto {
                disable_parallel_tool_use: true
            })
        ));
        assert_eq!(
            adjusted.header_value().as_deref(),
            Some("temperature, top_p, top_k, tool_choice")
        );
        // What Anthropic takes beside thinking stays, and nothing is noted.
        let mut adjusted = Adjustments::default();
        let s = Sampling {
            temperature: Some(raw("1")),
            top_p: Some(raw("0.97")),
            top_k: None,
            tool_choice: Some(ToolChoiceOut::None),
        }
        .beside_thinking(&mut adjusted);
        assert!(s.temperature.is_some() && s.top_p.is_some());
        assert!(adjusted.is_empty(), "{adjusted:?}");
    }
}
