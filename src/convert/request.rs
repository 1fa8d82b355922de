//! What every chat → vendor request translation reads from the chat pivot beyond its wire
//! view ([`crate::dialect::chat::wire`]): the function tools, the reasoning budget asked for,
//! tool arguments as an object, and how turns of one role merge.

use serde_json::value::RawValue;

use super::errors::unsupported;
use crate::dialect::chat::wire::{field, OaFunctionDef, OaTool, Str};
use crate::dialect::chat::ChatRequest;
use crate::dialect::messages::wire::ThinkingIn;
use crate::error::GatewayError;

/// The `max_tokens` sent to Anthropic (which requires one) when neither the client nor the
/// provider's `default_max_tokens` gives it.
pub const FALLBACK_MAX_TOKENS: u64 = 4096;

/// The client's function tools; any other tool type is a 400 (no vendor here runs OpenAI's
/// built-in tools).
pub(crate) fn function_tools<'a>(
    req: &ChatRequest<'a>,
    vendor: &str,
) -> Result<Vec<OaFunctionDef<'a>>, GatewayError> {
    let tools: Vec<OaTool<'a>> = field(req, "tools")?.unwrap_or_default();
    tools
        .into_iter()
        .map(|t| match (t.kind.as_ref(), t.function) {
            ("function", Some(f)) => Ok(f),
            (kind, _) => Err(unsupported(
                vendor,
                format!("tools of type `{kind}` are not supported"),
            )),
        })
        .collect()
}

/// How much the client asked the model to reason, read from OpenAI's `reasoning_effort`
/// (`none`/`minimal`: no reasoning; `low`, `medium`, `high`) or from Anthropic's
/// `thinking` (`{"type":"enabled","budget_tokens":N}` / `{"type":"disabled"}`, e.g. in
/// `model_params`), as a budget of reasoning tokens: low 1,024, medium 8,192, high 24,576
/// (Gemini 2.5's documented budget range; Anthropic's minimum is 1,024). `Ok(None)`: not asked;
/// `Ok(Some(0))`: asked to not reason. An effort that is not one of these is a 400.
pub(crate) fn reasoning_budget(req: &ChatRequest<'_>) -> Result<Option<u64>, GatewayError> {
    if let Some(t) = field::<ThinkingIn<'_>>(req, "thinking")? {
        return match t.kind.as_ref() {
            "disabled" => Ok(Some(0)),
            "enabled" => Ok(Some(t.budget_tokens.unwrap_or(1024))),
            other => Err(GatewayError::InvalidRequest(format!(
                "`thinking.type` `{other}` is not `enabled` or `disabled`"
            ))),
        };
    }
    match field::<Str<'_>>(req, "reasoning_effort")?
        .as_ref()
        .map(|s| s.0.as_ref())
    {
        None => Ok(None),
        Some("none" | "minimal") => Ok(Some(0)),
        Some("low") => Ok(Some(1024)),
        Some("medium") => Ok(Some(8192)),
        Some("high") => Ok(Some(24576)),
        Some(other) => Err(GatewayError::InvalidRequest(format!(
            "`reasoning_effort` `{other}` is not one of none, minimal, low, medium, high"
        ))),
    }
}

/// A tool call's `arguments` string as the JSON object vendors take; empty means `{}`.
pub(crate) fn arguments_object(args: &str) -> Result<Box<RawValue>, GatewayError> {
    let args = args.trim();
    let args = if args.is_empty() { "{}" } else { args };
    let bad = || {
        GatewayError::InvalidRequest(
            "a tool call's `function.arguments` must be a JSON object in a string".into(),
        )
    };
    if !args.starts_with('{') {
        return Err(bad());
    }
    serde_json::from_str::<Box<RawValue>>(args).map_err(|_| bad())
}

/// Appends `blocks` to the last message when it has the same role (both vendors want the
/// results of one turn's tool calls, and any text after them, in one message).
pub(crate) fn push_merged<R: PartialEq, T>(list: &mut Vec<(R, Vec<T>)>, role: R, blocks: Vec<T>) {
    // A turn without content (`"content": ""` in agent histories) is left out: Anthropic and
    // Gemini refuse empty turns, and the turns around it then merge.
    if blocks.is_empty() {
        return;
    }
    match list.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => list.push((role, blocks)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::chat::parse;
    use crate::dialect::chat::wire::{
        content, messages, stop_sequences, tool_choice, Image, OaContent, ToolChoice,
    };

    fn req(body: &str) -> ChatRequest<'_> {
        parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn images_from_data_and_http_urls() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},
            {"type":"image_url","image_url":"https://x/y.jpg"},
            {"type":"image_url","image_url":{"url":"data:image\/gif;base64,R0lG"}},
            {"type":"image_url","image_url":{"url":"data:text/plain,hi"}}]}]}"#;
        let r = req(body);
        let msgs = messages(&r).unwrap();
        let Some(OaContent::Parts(parts)) = content(msgs[0].content).unwrap() else {
            panic!("parts")
        };
        assert_eq!(
            parts[0].image().unwrap(),
            Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBO".into()
            }
        );
        assert_eq!(
            parts[1].image().unwrap(),
            Image::Url("https://x/y.jpg".into())
        );
        assert_eq!(
            parts[2].image().unwrap(),
            Image::Base64 {
                media_type: "image/gif".into(),
                data: "R0lG".into()
            }
        );
        assert_eq!(parts[3].image().unwrap_err().status(), 400);
    }

    #[test]
    fn stop_tool_choice_and_arguments() {
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":"x","tool_choice":"required"}"#,
        );
        assert_eq!(stop_sequences(&r).unwrap(), vec!["x"]);
        assert_eq!(tool_choice(&r).unwrap(), Some(ToolChoice::Required));
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"],
                "tool_choice":{"type":"function","function":{"name":"f"}}}"#,
        );
        assert_eq!(stop_sequences(&r).unwrap(), vec!["a", "b"]);
        assert_eq!(
            tool_choice(&r).unwrap(),
            Some(ToolChoice::Function("f".into()))
        );
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":3,"tool_choice":"x"}"#,
        );
        assert_eq!(stop_sequences(&r).unwrap_err().status(), 400);
        assert_eq!(tool_choice(&r).unwrap_err().status(), 400);
        assert_eq!(arguments_object("").unwrap().get(), "{}");
        assert_eq!(
            arguments_object(r#" {"a": [1]} "#).unwrap().get(),
            r#"{"a": [1]}"#
        );
        assert!(arguments_object("[1]").is_err());
        assert!(arguments_object("{").is_err());
    }

    #[test]
    fn function_tools_refuse_other_types() {
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}"#,
        );
        let e = function_tools(&r, "anthropic").err().unwrap();
        assert!(e.to_string().contains("web_search"), "{e}");
    }
}
