//! OpenAI's Responses request contract (`POST /v1/responses`), as the API refuses it: 400
//! `invalid_request_error` with `param` and OpenAI's wording.
//!
//! Sources: the API reference "Create a model response"
//! (platform.openai.com/docs/api-reference/responses/create, "API ref" below), the
//! "Function calling" guide, "Reasoning models" (platform.openai.com/docs/guides/reasoning),
//! "Images and vision".
//!
//! | rule | source | checked through the gateway by |
//! |---|---|---|
//! | `input` a string or an array of known items (`message`, `function_call`, `function_call_output`, `reasoning`, `item_reference`, …) | API ref, `input` | `generative::` (Responses door → `openai`, passed through) |
//! | message roles `user`, `assistant`, `system`, `developer`; content parts `input_text`/`input_image`/`input_file` (not from the assistant), `output_text`/`refusal` (only from the assistant) | API ref, input message content | `generative::` |
//! | `input_image.image_url` an http(s) or base64 `data:` URL of JPEG/PNG/GIF/WebP | "Images and vision" | `generative::` |
//! | a `function_call` has `call_id`, `name` and string `arguments` | API ref, function tool call | `generative::` |
//! | a `function_call_output` answers a `function_call` of the input (without `previous_response_id`) | "No tool call found for function call output with call_id …" (the API's 400) | `generative::` |
//! | `function_call_output.output` a string or `input_text`/`input_image`/`input_file` parts | API ref, function tool call output | `generative::` |
//! | a `reasoning` item has a `summary` array | API ref, reasoning item | `generative::` |
//! | function `tools[].name` matches `^[a-zA-Z0-9_-]{1,64}$`; `tool_choice` names one of them | API ref, `tools`, `tool_choice` | `generative::` |
//! | `temperature` 0–2, `top_p` 0–1 | API ref | `generative::` |
//! | `max_output_tokens` ≥ 16 | API ref; "integer below minimum value. Expected a value >= 16" | `generative::` |
//! | `reasoning.effort` one of `none`, `minimal`, `low`, `medium`, `high`, `xhigh` | API ref, `reasoning.effort` | `generative::` |
//! | `user`, `safety_identifier` ≤ 64 characters | API ref | `generative::` |
//! | `text.format` `json_schema` has a `name` (`^[a-zA-Z0-9_-]{1,64}$`) and an object `schema` | API ref, "Create a model response", `text.format` | `generative::` |
//! | `metadata`: at most 16 pairs, keys ≤ 64, string values ≤ 512 | API ref, `metadata` | `generative::` |

use serde_json::Value;

use super::{chars, in_range, openai_image_url_ok, word_id, Refusal};

/// Checks a Responses body as OpenAI does.
pub fn check(body: &Value) -> Result<(), Refusal> {
    check_fields(body)?;
    check_tools(body)?;
    let items = match &body["input"] {
        Value::String(_) => return Ok(()),
        Value::Array(items) => items,
        Value::Null if !body["previous_response_id"].is_null() => return Ok(()),
        _ => {
            return Err(Refusal::openai(
                "input",
                Some("invalid_type"),
                "Invalid type for 'input': expected a string or an array of input items.",
            ))
        }
    };
    let stateful = body["previous_response_id"].is_string();
    let mut calls: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        check_item(i, item, stateful, &mut calls)?;
    }
    Ok(())
}

/// Sampling ranges, `max_output_tokens`, `reasoning.effort`, identity fields, metadata.
fn check_fields(body: &Value) -> Result<(), Refusal> {
    if !in_range(&body["temperature"], 0.0, 2.0) {
        return Err(Refusal::openai(
            "temperature",
            Some("decimal_above_max_value"),
            "Invalid 'temperature': expected a value between 0 and 2.",
        ));
    }
    if !in_range(&body["top_p"], 0.0, 1.0) {
        return Err(Refusal::openai(
            "top_p",
            Some("decimal_above_max_value"),
            "Invalid 'top_p': expected a value between 0 and 1.",
        ));
    }
    let max = &body["max_output_tokens"];
    if !max.is_null() && max.as_u64().is_none_or(|n| n < 16) {
        return Err(Refusal::openai(
            "max_output_tokens",
            Some("integer_below_min_value"),
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16.",
        ));
    }
    let effort = &body["reasoning"]["effort"];
    if !effort.is_null()
        && !matches!(
            effort.as_str(),
            Some("none" | "minimal" | "low" | "medium" | "high" | "xhigh")
        )
    {
        return Err(Refusal::openai(
            "reasoning.effort",
            Some("invalid_value"),
            format!("Invalid value: {effort}. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'."),
        ));
    }
    let format = &body["text"]["format"];
    if format["type"] == "json_schema" {
        let name = format["name"].as_str().unwrap_or("");
        let named = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !named || !format["schema"].is_object() {
            return Err(Refusal::openai(
                "text.format.name",
                Some("invalid_value"),
                "Invalid 'text.format': a json_schema format needs a 'name' of 1 to 64 letters, digits, underscores or dashes and an object 'schema'.",
            ));
        }
    }
    for p in ["user", "safety_identifier"] {
        if let Some(s) = body[p].as_str() {
            if chars(s) > 64 {
                return Err(Refusal::openai_too_long(p, 64, chars(s)));
            }
        }
    }
    if let Some(meta) = body["metadata"].as_object() {
        if meta.len() > 16 {
            return Err(Refusal::openai(
                "metadata",
                Some("object_above_max_properties"),
                "Invalid 'metadata': too many properties. Expected an object with at most 16 properties.",
            ));
        }
        for (k, v) in meta {
            if chars(k) > 64 {
                return Err(Refusal::openai_too_long("metadata", 64, chars(k)));
            }
            match v.as_str() {
                Some(s) if chars(s) <= 512 => {}
                Some(s) => {
                    return Err(Refusal::openai_too_long(
                        &format!("metadata.{k}"),
                        512,
                        chars(s),
                    ))
                }
                None => {
                    return Err(Refusal::openai(
                        &format!("metadata.{k}"),
                        Some("invalid_type"),
                        format!("Invalid type for 'metadata.{k}': expected a string."),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Function tool names; a named `tool_choice` names one of them.
fn check_tools(body: &Value) -> Result<(), Refusal> {
    let mut names = Vec::new();
    for (i, t) in body["tools"].as_array().into_iter().flatten().enumerate() {
        if t["type"] != "function" {
            continue;
        }
        let name = t["name"].as_str().unwrap_or("");
        if !word_id(name, 64) {
            return Err(Refusal::openai(
                &format!("tools[{i}].name"),
                Some("invalid_value"),
                format!("Invalid 'tools[{i}].name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' and has at most 64 characters."),
            ));
        }
        names.push(name);
    }
    if let Some(named) = body["tool_choice"]["name"].as_str() {
        if body["tool_choice"]["type"] == "function" && !names.contains(&named) {
            return Err(Refusal::openai(
                "tool_choice",
                None,
                format!("Tool choice '{named}' not found in 'tools' parameter."),
            ));
        }
    }
    Ok(())
}

fn unknown(param: String, what: &str) -> Refusal {
    Refusal::openai(
        &param,
        Some("invalid_value"),
        format!("Invalid value: '{what}'. Supported values are listed in the API reference for '{param}'."),
    )
}

/// One input item: its type and its content; function outputs answer a call before them.
fn check_item<'a>(
    i: usize,
    item: &'a Value,
    stateful: bool,
    calls: &mut Vec<&'a str>,
) -> Result<(), Refusal> {
    let kind = item["type"]
        .as_str()
        .unwrap_or(if item["role"].is_string() {
            "message"
        } else {
            ""
        });
    match kind {
        "message" => check_message(i, item),
        "function_call" => {
            let call_id = item["call_id"].as_str().unwrap_or("");
            if call_id.is_empty()
                || item["name"].as_str().is_none_or(str::is_empty)
                || !item["arguments"].is_string()
            {
                return Err(Refusal::openai(
                    &format!("input[{i}]"),
                    Some("missing_required_parameter"),
                    format!("Missing required parameter: 'input[{i}].call_id', 'input[{i}].name' and 'input[{i}].arguments' (a string) are required."),
                ));
            }
            calls.push(call_id);
            Ok(())
        }
        "function_call_output" => {
            let call_id = item["call_id"].as_str().unwrap_or("");
            if !stateful && !calls.contains(&call_id) {
                return Err(Refusal::openai(
                    "input",
                    None,
                    format!("No tool call found for function call output with call_id {call_id}."),
                ));
            }
            match &item["output"] {
                Value::String(_) => Ok(()),
                Value::Array(parts) => {
                    for (j, p) in parts.iter().enumerate() {
                        check_part(&format!("input[{i}].output[{j}]"), p, &["input_text", "input_image", "input_file"])?;
                    }
                    Ok(())
                }
                _ => Err(Refusal::openai(
                    &format!("input[{i}].output"),
                    Some("invalid_type"),
                    format!("Invalid type for 'input[{i}].output': expected a string or an array of input content."),
                )),
            }
        }
        "reasoning" => {
            if item["summary"].is_array() {
                Ok(())
            } else {
                Err(Refusal::openai(
                    &format!("input[{i}].summary"),
                    Some("missing_required_parameter"),
                    format!("Missing required parameter: 'input[{i}].summary'."),
                ))
            }
        }
        "item_reference"
        | "web_search_call"
        | "file_search_call"
        | "computer_call"
        | "computer_call_output"
        | "local_shell_call"
        | "local_shell_call_output"
        | "custom_tool_call"
        | "custom_tool_call_output"
        | "mcp_call"
        | "mcp_approval_response"
        | "image_generation_call"
        | "code_interpreter_call"
        | "compaction" => Ok(()),
        other => Err(unknown(format!("input[{i}].type"), other)),
    }
}

/// A message item: its role, and its content parts by role.
fn check_message(i: usize, m: &Value) -> Result<(), Refusal> {
    let role = m["role"].as_str().unwrap_or("");
    let allowed: &[&str] = match role {
        "assistant" => &["output_text", "refusal"],
        "user" | "system" | "developer" => &["input_text", "input_image", "input_file"],
        other => return Err(unknown(format!("input[{i}].role"), other)),
    };
    match &m["content"] {
        Value::String(_) => Ok(()),
        Value::Array(parts) => {
            for (j, p) in parts.iter().enumerate() {
                check_part(&format!("input[{i}].content[{j}]"), p, allowed)?;
            }
            Ok(())
        }
        _ => Err(Refusal::openai(
            &format!("input[{i}].content"),
            Some("invalid_type"),
            format!("Invalid type for 'input[{i}].content': expected a string or an array of content parts."),
        )),
    }
}

/// A content part of an allowed type; an image's URL one OpenAI takes.
fn check_part(param: &str, p: &Value, allowed: &[&str]) -> Result<(), Refusal> {
    let kind = p["type"].as_str().unwrap_or("");
    if !allowed.contains(&kind) {
        return Err(unknown(format!("{param}.type"), kind));
    }
    if kind == "input_image" {
        let url = p["image_url"].as_str().unwrap_or("");
        if p["file_id"].is_null() && !openai_image_url_ok(url) {
            return Err(Refusal::openai(
                &format!("{param}.image_url"),
                Some("invalid_image_url"),
                "Invalid image URL: the URL must be a valid http(s) URL or a base64 data URL of image/jpeg, image/png, image/gif or image/webp.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok() -> Value {
        json!({"model":"m","input":[
            {"role":"user","content":[{"type":"input_text","text":"hi"}]},
            {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"e"},
            {"type":"function_call","call_id":"functions.f:0","name":"f","arguments":"{}"},
            {"type":"function_call_output","call_id":"functions.f:0","output":[
                {"type":"input_text","text":"r"},
                {"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]}]})
    }

    fn refused(body: Value) -> Refusal {
        check(&body).expect_err("refused")
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = ok();
        b[k] = v;
        b
    }

    #[test]
    fn a_tool_loop_with_reasoning_and_an_image_result_passes() {
        check(&ok()).unwrap();
        check(&json!({"model":"m","input":"hi"})).unwrap();
    }

    #[test]
    fn outputs_answer_a_call_of_the_input() {
        let mut b = ok();
        b["input"][3]["call_id"] = json!("other");
        assert!(refused(b.clone()).message.contains("No tool call found"));
        b["previous_response_id"] = json!("resp_1");
        check(&b).unwrap();
    }

    #[test]
    fn items_roles_and_parts() {
        let mut b = ok();
        b["input"][0]["role"] = json!("tool");
        assert_eq!(refused(b).param.as_deref(), Some("input[0].role"));
        let mut b = ok();
        b["input"][0]["content"][0]["type"] = json!("output_text");
        refused(b);
        let mut b = ok();
        b["input"][1] = json!({"type":"reasoning","id":"rs_1"});
        assert_eq!(refused(b).param.as_deref(), Some("input[1].summary"));
        let mut b = ok();
        b["input"][2]["arguments"] = json!({});
        refused(b);
        let mut b = ok();
        b["input"][3]["output"][1]["image_url"] = json!("data:image/svg+xml;base64,PHN2Zz4=");
        assert_eq!(refused(b).code, Some("invalid_image_url"));
    }

    #[test]
    fn tool_names_and_named_choice() {
        let b = with(
            "tools",
            json!([{"type":"function","name":"a.b","parameters":{}}]),
        );
        assert_eq!(refused(b).param.as_deref(), Some("tools[0].name"));
        let mut b = with(
            "tools",
            json!([{"type":"function","name":"f","parameters":{}}]),
        );
        b["tool_choice"] = json!({"type":"function","name":"g"});
        refused(b);
    }

    #[test]
    fn ranges_and_bounds() {
        refused(with("temperature", json!(3)));
        refused(with("top_p", json!(-0.1)));
        assert_eq!(
            refused(with("max_output_tokens", json!(15)))
                .param
                .as_deref(),
            Some("max_output_tokens")
        );
        check(&with("max_output_tokens", json!(16))).unwrap();
        refused(with("reasoning", json!({"effort":"max"})));
    }

    #[test]
    fn identity_and_metadata_limits() {
        refused(with("user", json!("u".repeat(65))));
        refused(with("safety_identifier", json!("s".repeat(65))));
        let many: serde_json::Map<String, Value> =
            (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        refused(with("metadata", Value::Object(many)));
        refused(with("metadata", json!({"k": "v".repeat(513)})));
        refused(with("metadata", json!({"k": 1})));
        check(&with("metadata", json!({"k": "v"}))).unwrap();
    }
}
