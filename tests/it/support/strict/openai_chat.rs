//! OpenAI's Chat Completions request contract (`POST /v1/chat/completions`), as the API
//! refuses it: 400 `invalid_request_error` with `param` and OpenAI's wording.
//!
//! Sources: the API reference "Create chat completion"
//! (platform.openai.com/docs/api-reference/chat/create, "API ref" below), the "Function
//! calling" guide (platform.openai.com/docs/guides/function-calling), "Images and vision"
//! (platform.openai.com/docs/guides/images-vision), and the 400s other gateways' users met.
//!
//! | rule | source | checked through the gateway by |
//! |---|---|---|
//! | `response_format.json_schema.name` required, `^[a-zA-Z0-9_-]{1,64}$` | API ref, `response_format` | `translation::structured_output_*` |
//! | `user` ≤ 64 characters | API ref, `user`; "string too long … maximum length 64" | `claude_code_requests::*`, `generative::` |
//! | `safety_identifier` ≤ 64 characters | API ref, `safety_identifier` | `generative::` |
//! | `messages` a non-empty array; roles `system`, `developer`, `user`, `assistant`, `tool`, `function` | API ref, `messages` | `generative::` |
//! | a `tool` message follows an assistant message with `tool_calls` (or another tool message) and answers one of its ids | "Messages with role 'tool' must be a response to a preceding message with 'tool_calls'" (microsoft/promptflow#3130, FoundationAgents/OpenManus#744) | `generative::` |
//! | every `tool_calls[].id` answered by a tool message before the next other message | "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'" (microsoft/promptflow#3130) | `generative::` |
//! | `tool_calls[].id` ≤ 40 characters | `string_above_max_length` (agno-agi/agno#5382, BerriAI/litellm#17343) | `generative::` |
//! | an assistant message has `content` or `tool_calls` | API ref, assistant message `content` ("Required unless tool_calls … is specified") | `generative::` |
//! | content parts by role: `image_url`/`input_audio`/`file` only from `user`; assistant parts `text`/`refusal`; system, developer and tool parts `text` | API ref, each message type's content parts | `generative::` |
//! | `image_url.url` an http(s) URL or a base64 `data:` URL of JPEG/PNG/GIF/WebP | "Images and vision" | `generative::` |
//! | `tools[].function.name` matches `^[a-zA-Z0-9_-]{1,64}$`; at most 128 tools | API ref, `tools` / function `name` | `generative::` |
//! | `tools[].function.parameters` and `response_format.json_schema.schema` are JSON Schema: `type` names lower case | API ref (`parameters`: "described as a JSON Schema object"), JSON Schema Validation §6.1.1 | `generative::` (Gemini door, Google's upper-case types) |
//! | `tool_choice` only with `tools`; a named function is one of them | "tool_choice is only allowed when 'tools' are specified" (API ref, `tool_choice`) | `generative::` |
//! | `temperature` 0–2, `top_p` 0–1, `presence_penalty`/`frequency_penalty` −2–2, `n` 1–128 | API ref | `generative::` |
//! | `max_tokens`/`max_completion_tokens` a positive integer | API ref | `generative::` |
//! | `stop`: a string or up to 4 strings | API ref, `stop` ("Up to 4 sequences") | `generative::` |
//! | Azure: `api-version` before 2024-09-01 refuses `stream_options` | Azure OpenAI "API version lifecycle" | `vendor_rules::old_azure_api_versions_*` |
//! | `reasoning_effort` one of `none`, `minimal`, `low`, `medium`, `high`, `xhigh` | API ref, `reasoning_effort` | `generative::` |

use serde_json::Value;

use super::{chars, in_range, openai_image_url_ok, schema_type_error, word_id, Refusal};

/// Azure OpenAI's rule: API versions (the `api-version` query, `YYYY-MM-DD…`) before
/// 2024-09-01 do not know `stream_options` and refuse a request that has it ("Unrecognized
/// request argument supplied: stream_options"; Azure OpenAI "API version lifecycle",
/// learn.microsoft.com/azure/ai-services/openai/api-version-deprecation). Checked through
/// the gateway by `vendor_rules::old_azure_api_versions_*`.
pub fn check_azure_api_version(api_version: &str, body: &Value) -> Result<(), Refusal> {
    let Some(date) = api_version.get(..10) else {
        return Ok(());
    };
    if date >= "2024-09-01" || body.get("stream_options").is_none() {
        return Ok(());
    }
    Err(Refusal {
        status: 400,
        kind: "invalid_request_error",
        code: None,
        param: None,
        message: "Unrecognized request argument supplied: stream_options".to_string(),
    })
}

/// The roles OpenAI's chat API knows.
const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Checks a chat completions body as OpenAI does.
pub fn check(body: &Value) -> Result<(), Refusal> {
    check_identity(body)?;
    check_response_format(body)?;
    check_sampling(body)?;
    check_tools(body)?;
    let msgs = body["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            Refusal::openai(
                "messages",
                Some("empty_array"),
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            )
        })?;
    for (i, m) in msgs.iter().enumerate() {
        check_message(i, m)?;
    }
    check_tool_pairing(msgs)
}

/// `response_format` `json_schema`: a `json_schema` with a `name` of 1 to 64 letters, digits,
/// `_` or `-` (API reference, "Create chat completion", `response_format.json_schema.name`,
/// required).
fn check_response_format(body: &Value) -> Result<(), Refusal> {
    let f = &body["response_format"];
    if f["type"] != "json_schema" {
        return Ok(());
    }
    if let Some(bad) = schema_type_error(
        &f["json_schema"]["schema"],
        "response_format.json_schema.schema",
    ) {
        return Err(Refusal::openai(
            "response_format.json_schema.schema",
            Some("invalid_value"),
            format!("Invalid schema for response_format: {bad} is not a JSON Schema type."),
        ));
    }
    let name = f["json_schema"]["name"].as_str().unwrap_or("");
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(Refusal::openai(
            "response_format.json_schema.name",
            Some("invalid_value"),
            "Invalid 'response_format.json_schema.name': expected a string of 1 to 64 letters, digits, underscores or dashes.",
        ));
    }
    Ok(())
}

/// `user`, `safety_identifier`: at most 64 characters.
fn check_identity(body: &Value) -> Result<(), Refusal> {
    if let Some(user) = body["user"].as_str() {
        let n = chars(user);
        if n > 64 {
            // The wording the mock has always answered (tests match on it).
            return Err(Refusal::openai(
                "user",
                Some("string_above_max_length"),
                format!("Invalid 'user': string too long. Expected a string with maximum length 64, but got a string with length {n}."),
            ));
        }
    }
    if let Some(id) = body["safety_identifier"].as_str() {
        if chars(id) > 64 {
            return Err(Refusal::openai_too_long("safety_identifier", 64, chars(id)));
        }
    }
    Ok(())
}

fn below_min(param: &str, min: &str) -> Refusal {
    Refusal::openai(
        param,
        Some("integer_below_min_value"),
        format!("Invalid '{param}': integer below minimum value. Expected a value >= {min}."),
    )
}

fn out_of_range(param: &str, lo: &str, hi: &str) -> Refusal {
    Refusal::openai(
        param,
        Some("decimal_above_max_value"),
        format!("Invalid '{param}': expected a value between {lo} and {hi}."),
    )
}

/// Sampling ranges, token bounds, `n`, `stop`, `reasoning_effort`.
fn check_sampling(body: &Value) -> Result<(), Refusal> {
    if !in_range(&body["temperature"], 0.0, 2.0) {
        return Err(out_of_range("temperature", "0", "2"));
    }
    if !in_range(&body["top_p"], 0.0, 1.0) {
        return Err(out_of_range("top_p", "0", "1"));
    }
    for p in ["presence_penalty", "frequency_penalty"] {
        if !in_range(&body[p], -2.0, 2.0) {
            return Err(out_of_range(p, "-2", "2"));
        }
    }
    if !in_range(&body["n"], 1.0, 128.0) {
        return Err(out_of_range("n", "1", "128"));
    }
    for p in ["max_tokens", "max_completion_tokens"] {
        let v = &body[p];
        if !v.is_null() && v.as_u64().is_none_or(|n| n < 1) {
            return Err(below_min(p, "1"));
        }
    }
    match &body["stop"] {
        Value::Null | Value::String(_) => {}
        Value::Array(stops) if stops.len() <= 4 && stops.iter().all(Value::is_string) => {}
        Value::Array(stops) if stops.len() > 4 => {
            return Err(Refusal::openai(
                "stop",
                Some("array_above_max_length"),
                format!("Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {} instead.", stops.len()),
            ))
        }
        _ => {
            return Err(Refusal::openai(
                "stop",
                Some("invalid_type"),
                "Invalid type for 'stop': expected a string or an array of strings.",
            ))
        }
    }
    let effort = &body["reasoning_effort"];
    if !effort.is_null()
        && !matches!(
            effort.as_str(),
            Some("none" | "minimal" | "low" | "medium" | "high" | "xhigh")
        )
    {
        return Err(Refusal::openai(
            "reasoning_effort",
            Some("invalid_value"),
            format!("Invalid value: {effort}. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'."),
        ));
    }
    Ok(())
}

/// `tools` names and count; `tool_choice` only with tools, naming one of them.
fn check_tools(body: &Value) -> Result<(), Refusal> {
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    if tools.len() > 128 {
        return Err(Refusal::openai(
            "tools",
            Some("array_above_max_length"),
            format!("Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length {} instead.", tools.len()),
        ));
    }
    let mut names = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        if t["type"] != "function" {
            continue;
        }
        let name = t["function"]["name"].as_str().unwrap_or("");
        if !word_id(name, 64) {
            return Err(Refusal::openai(
                &format!("tools[{i}].function.name"),
                Some("invalid_value"),
                format!("Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' and has at most 64 characters."),
            ));
        }
        let at = format!("tools[{i}].function.parameters");
        if let Some(bad) = schema_type_error(&t["function"]["parameters"], &at) {
            return Err(Refusal::openai(
                &at,
                Some("invalid_function_parameters"),
                format!("Invalid schema for function: {bad} is not a JSON Schema type."),
            ));
        }
        names.push(name);
    }
    let choice = &body["tool_choice"];
    if choice.is_null() {
        return Ok(());
    }
    if tools.is_empty() {
        return Err(Refusal::openai(
            "tool_choice",
            None,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        ));
    }
    if let Some(named) = choice["function"]["name"].as_str() {
        if !names.contains(&named) {
            return Err(Refusal::openai(
                "tool_choice",
                None,
                format!("Invalid value for 'tool_choice': tool choice function '{named}' is not one of the tools."),
            ));
        }
    }
    Ok(())
}

/// Role, content presence, content part types by role, image URLs, tool-call id length.
fn check_message(i: usize, m: &Value) -> Result<(), Refusal> {
    let role = m["role"].as_str().unwrap_or("");
    if !ROLES.contains(&role) {
        return Err(Refusal::openai(
            &format!("messages[{i}].role"),
            Some("invalid_value"),
            format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."),
        ));
    }
    let calls = m["tool_calls"].as_array().filter(|c| !c.is_empty());
    if role == "assistant"
        && m["content"].is_null()
        && calls.is_none()
        && m["function_call"].is_null()
    {
        return Err(Refusal::openai(
            &format!("messages[{i}].content"),
            None,
            format!("Invalid value for 'messages[{i}].content': expected a string, got null."),
        ));
    }
    for (j, c) in calls.into_iter().flatten().enumerate() {
        let id = c["id"].as_str().unwrap_or("");
        if chars(id) > 40 {
            return Err(Refusal::openai_too_long(
                &format!("messages[{i}].tool_calls[{j}].id"),
                40,
                chars(id),
            ));
        }
    }
    let allowed: &[&str] = match role {
        "user" => &["text", "image_url", "input_audio", "file"],
        "assistant" => &["text", "refusal"],
        _ => &["text"],
    };
    for (j, part) in m["content"].as_array().into_iter().flatten().enumerate() {
        let kind = part["type"].as_str().unwrap_or("");
        if !allowed.contains(&kind) {
            return Err(Refusal::openai(
                &format!("messages[{i}].content[{j}].type"),
                Some("invalid_value"),
                format!("Invalid value: '{kind}'. Supported values are: {allowed:?}."),
            ));
        }
        if kind == "image_url" {
            let url = part["image_url"]["url"].as_str().unwrap_or("");
            if !openai_image_url_ok(url) {
                return Err(Refusal::openai(
                    &format!("messages[{i}].content[{j}].image_url.url"),
                    Some("invalid_image_url"),
                    "Invalid image URL: the URL must be a valid http(s) URL or a base64 data URL of image/jpeg, image/png, image/gif or image/webp.",
                ));
            }
        }
    }
    Ok(())
}

/// Tool messages answer the tool calls of the assistant message right before them, each id.
fn check_tool_pairing(msgs: &[Value]) -> Result<(), Refusal> {
    // The ids of the last assistant message's tool calls not answered yet.
    let mut open: Option<(usize, Vec<String>)> = None;
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or("");
            let answered = open
                .as_mut()
                .and_then(|(_, ids)| ids.iter().position(|x| x == id).map(|p| ids.remove(p)));
            if answered.is_none() {
                return Err(Refusal::openai(
                    &format!("messages.[{i}].role"),
                    None,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                ));
            }
            continue;
        }
        unanswered(&open)?;
        open = None;
        if role == "assistant" {
            let ids: Vec<String> = m["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["id"].as_str().unwrap_or("").to_string())
                .collect();
            if !ids.is_empty() {
                open = Some((i, ids));
            }
        }
    }
    unanswered(&open)
}

fn unanswered(open: &Option<(usize, Vec<String>)>) -> Result<(), Refusal> {
    match open {
        Some((i, ids)) if !ids.is_empty() => Err(Refusal::openai(
            "messages",
            None,
            format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {} (messages[{i}])", ids.join(", ")),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok() -> Value {
        json!({"model":"m","messages":[{"role":"user","content":"hi"}]})
    }

    fn refused(body: Value) -> Refusal {
        check(&body).expect_err("refused")
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = ok();
        b[k] = v;
        b
    }

    fn tool_loop(id: &str) -> Value {
        json!({"model":"m","messages":[
            {"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":id,"type":"function",
                "function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":id,"content":"r"}]})
    }

    #[test]
    fn a_plain_request_and_a_tool_loop_pass() {
        check(&ok()).unwrap();
        check(&tool_loop("call_1")).unwrap();
        check(&tool_loop("functions.lookup:0")).unwrap();
    }

    #[test]
    fn user_and_safety_identifier_at_most_64() {
        check(&with("user", json!("u".repeat(64)))).unwrap();
        let r = refused(with("user", json!("u".repeat(65))));
        assert!(r.message.contains("maximum length 64"), "{r:?}");
        let r = refused(with("safety_identifier", json!("s".repeat(65))));
        assert_eq!(r.param.as_deref(), Some("safety_identifier"));
    }

    #[test]
    fn messages_non_empty_and_known_roles() {
        assert_eq!(
            refused(with("messages", json!([]))).param.as_deref(),
            Some("messages")
        );
        let r = refused(with("messages", json!([{"role":"model","content":"x"}])));
        assert_eq!(r.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn tool_call_ids_at_most_40() {
        let r = refused(tool_loop(&"c".repeat(41)));
        assert_eq!(r.code, Some("string_above_max_length"));
        assert_eq!(r.param.as_deref(), Some("messages[1].tool_calls[0].id"));
    }

    #[test]
    fn tool_messages_answer_the_calls_before_them() {
        let mut b = tool_loop("call_1");
        b["messages"][2]["tool_call_id"] = json!("call_2");
        assert!(refused(b)
            .message
            .contains("must be a response to a preceeding message"));
        let b = json!({"model":"m","messages":[{"role":"user","content":"hi"},
            {"role":"tool","tool_call_id":"x","content":"r"}]});
        assert!(refused(b).message.contains("role 'tool'"));
    }

    #[test]
    fn every_tool_call_is_answered() {
        let mut b = tool_loop("call_1");
        b["messages"][2] = json!({"role":"user","content":"next"});
        let r = refused(b);
        assert!(
            r.message.contains("did not have response messages: call_1"),
            "{r:?}"
        );
        let mut b = tool_loop("call_1");
        b["messages"].as_array_mut().unwrap().pop();
        assert!(refused(b).message.contains("call_1"));
    }

    #[test]
    fn an_assistant_message_has_content_or_tool_calls() {
        let b = json!({"model":"m","messages":[{"role":"user","content":"a"},
            {"role":"assistant","content":null},{"role":"user","content":"b"}]});
        assert_eq!(refused(b).param.as_deref(), Some("messages[1].content"));
    }

    #[test]
    fn content_part_types_by_role_and_image_urls() {
        let img = |url: &str| json!({"type":"image_url","image_url":{"url":url}});
        let b = with(
            "messages",
            json!([{"role":"user","content":[img("data:image/png;base64,iVBORw0KGgo=")]}]),
        );
        check(&b).unwrap();
        let b = with(
            "messages",
            json!([{"role":"user","content":[img("data:image/bmp;base64,iVBORw0KGgo=")]}]),
        );
        assert_eq!(refused(b).code, Some("invalid_image_url"));
        let b = with(
            "messages",
            json!([{"role":"user","content":"a"},
            {"role":"assistant","content":[img("https://x/y.png")]}]),
        );
        assert_eq!(
            refused(b).param.as_deref(),
            Some("messages[1].content[0].type")
        );
        let b = with(
            "messages",
            json!([{"role":"system","content":[img("https://x/y.png")]},
            {"role":"user","content":"a"}]),
        );
        assert_eq!(
            refused(b).param.as_deref(),
            Some("messages[0].content[0].type")
        );
    }

    #[test]
    fn tool_names_pattern_and_count() {
        let tool = |n: &str| json!({"type":"function","function":{"name":n,"parameters":{"type":"object"}}});
        check(&with("tools", json!([tool("get_weather-2")]))).unwrap();
        let r = refused(with("tools", json!([tool("ns.lookup")])));
        assert_eq!(r.param.as_deref(), Some("tools[0].function.name"));
        refused(with("tools", json!([tool(&"n".repeat(65))])));
        let many: Vec<Value> = (0..129).map(|i| tool(&format!("t{i}"))).collect();
        refused(with("tools", json!(many)));
    }

    #[test]
    fn tool_choice_needs_tools_and_names_one() {
        assert_eq!(
            refused(with("tool_choice", json!("auto"))).param.as_deref(),
            Some("tool_choice")
        );
        let mut b = with(
            "tools",
            json!([{"type":"function","function":{"name":"f"}}]),
        );
        b["tool_choice"] = json!({"type":"function","function":{"name":"g"}});
        refused(b.clone());
        b["tool_choice"] = json!({"type":"function","function":{"name":"f"}});
        check(&b).unwrap();
    }

    #[test]
    fn sampling_ranges_n_and_token_bounds() {
        check(&with("temperature", json!(2.0))).unwrap();
        refused(with("temperature", json!(2.1)));
        refused(with("top_p", json!(1.5)));
        refused(with("presence_penalty", json!(-3)));
        refused(with("n", json!(0)));
        refused(with("max_tokens", json!(0)));
        refused(with("max_completion_tokens", json!(-1)));
        check(&with("max_completion_tokens", json!(1))).unwrap();
    }

    #[test]
    fn stop_is_a_string_or_up_to_four() {
        check(&with("stop", json!("x"))).unwrap();
        check(&with("stop", json!(["a", "b", "c", "d"]))).unwrap();
        assert_eq!(
            refused(with("stop", json!(["a", "b", "c", "d", "e"])))
                .param
                .as_deref(),
            Some("stop")
        );
        refused(with("stop", json!(3)));
    }

    #[test]
    fn old_azure_versions_refuse_stream_options() {
        let b = with("stream_options", json!({"include_usage": true}));
        let r = check_azure_api_version("2024-06-01", &b).unwrap_err();
        assert!(r.message.contains("stream_options"));
        check_azure_api_version("2024-10-21", &b).unwrap();
        check_azure_api_version("2024-06-01", &ok()).unwrap();
    }

    #[test]
    fn reasoning_effort_values() {
        check(&with("reasoning_effort", json!("minimal"))).unwrap();
        assert_eq!(
            refused(with("reasoning_effort", json!("max")))
                .param
                .as_deref(),
            Some("reasoning_effort")
        );
    }
}
