//! Gemini's `generateContent` / `streamGenerateContent` request contract, as the API refuses
//! it: 400 `INVALID_ARGUMENT` with Google's wording.
//!
//! Sources: the API reference "Generating content" (ai.google.dev/api/generate-content, "API
//! ref" below), "Function calling" (ai.google.dev/gemini-api/docs/function-calling), "Thought
//! signatures" (ai.google.dev/gemini-api/docs/thought-signatures), "Gemini thinking"
//! (ai.google.dev/gemini-api/docs/thinking), and the 400s other clients met
//! (google-gemini/gemini-cli#3814 and its duplicates).
//!
//! | rule | source | checked through the gateway by |
//! |---|---|---|
//! | only known top-level fields ("Unknown name … Cannot find field") | API ref, request body | `generative::` |
//! | `contents` non-empty; roles `user` or `model`; every content has parts | API ref, `Content` | `translation::`, `generative::` |
//! | a part holds data (`text`, `inlineData`, `fileData`, `functionCall`, `functionResponse`, …); `text` non-empty | API ref, `Part`; "Unable to submit request because it has an empty text parameter" | `generative::` |
//! | `inlineData` has a `mimeType` and valid base64 `data` | API ref, `Blob` | `generative::` |
//! | `functionCall` has a name | API ref, `FunctionCall` | `generative::` |
//! | the first `functionCall` of a `model` turn carries its `thoughtSignature` (Gemini 3; parallel calls after it carry none) | "Thought signatures" ("Function call is missing a thought_signature") | `vendor_rules::gemini_thought_signatures_*`, `generative::` |
//! | a function call turn comes right after a user turn or a function response turn | "Please ensure that function call turn comes immediately after a user turn or after a function response turn." | `generative::` |
//! | a function response turn comes right after a function call turn, with as many `functionResponse` parts as it has `functionCall` parts | "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn." (gemini-cli#3814) | `generative::` |
//! | `systemInstruction` has non-empty parts | API ref, `systemInstruction` | `generative::` |
//! | `functionDeclarations[].name`: starts with a letter or `_`, then letters, digits, `_ . : -`, at most 64 | "Function calling", `FunctionDeclaration.name` | `generative::` |
//! | `toolConfig.functionCallingConfig.mode` `AUTO`, `ANY`, `NONE` or `VALIDATED`; `allowedFunctionNames` only with `ANY`, naming declared functions | API ref, `FunctionCallingConfig` | `generative::` |
//! | `generationConfig`: `temperature` 0–2, `topP` 0–1, `topK` ≥ 1, `candidateCount` ≥ 1, `maxOutputTokens` ≥ 1, at most 5 `stopSequences` | API ref, `GenerationConfig` | `generative::` |
//! | `thinkingConfig`: not both `thinkingBudget` and `thinkingLevel` | "Gemini thinking" | `generative::` |
//!
//! Gemini's JSON is proto3 JSON: a field is taken by its lowerCamelCase name or its proto
//! snake_case one (protobuf.dev, "ProtoJSON Format"), and bytes as standard or URL-safe
//! base64; the check reads both spellings (`gemini_door::` sends the SDKs' snake_case).

use serde_json::Value;

use super::{base64_ok, chars, in_range, Refusal};

/// The top-level fields of a `generateContent` request.
const KNOWN_FIELDS: &[&str] = &[
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
    "labels",
];

/// The data a part may hold (one of them).
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::gemini(message)
}

/// `v` with every object key in lowerCamelCase (`inline_data` → `inlineData`), as a proto3
/// JSON parser reads it.
fn camel_cased(v: &Value) -> Value {
    let camel = |k: &str| {
        let mut out = String::with_capacity(k.len());
        let mut upper = false;
        for c in k.chars() {
            match (c, upper) {
                ('_', _) => upper = true,
                (c, true) => {
                    out.push(c.to_ascii_uppercase());
                    upper = false;
                }
                (c, false) => out.push(c),
            }
        }
        out
    };
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (camel(k), camel_cased(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(camel_cased).collect()),
        other => other.clone(),
    }
}

/// Standard or URL-safe base64, as Google's proto3 JSON parser takes bytes.
fn gemini_base64_ok(s: &str) -> bool {
    base64_ok(&s.replace('-', "+").replace('_', "/"))
}

/// Checks a `generateContent` body as Gemini does.
pub fn check(v: &Value) -> Result<(), Refusal> {
    let v = &camel_cased(v);
    if let Some(obj) = v.as_object() {
        if let Some(k) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
            )));
        }
    }
    let contents = v["contents"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("contents must not be empty"))?;
    for (i, c) in contents.iter().enumerate() {
        check_content(i, c)?;
    }
    check_turns(contents)?;
    check_system(v)?;
    check_tools(v)?;
    check_generation_config(&v["generationConfig"])
}

fn check_content(i: usize, c: &Value) -> Result<(), Refusal> {
    let role = c["role"].as_str().unwrap_or("");
    if role != "user" && role != "model" {
        return Err(invalid(format!("contents[{i}].role must be user or model")));
    }
    let parts = c["parts"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid(format!("contents[{i}].parts must not be empty")))?;
    // Parallel calls: only the first `functionCall` part of a step carries the signature
    // ("Thought signatures": "only the first function call part … will contain a signature").
    let first_call = parts.iter().position(|p| p.get("functionCall").is_some());
    for (j, p) in parts.iter().enumerate() {
        if role == "model" && Some(j) == first_call && !p["thoughtSignature"].is_string() {
            return Err(invalid(format!(
                "Function call is missing a thought_signature in functionCall parts. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures. contents[{i}].parts[{j}]"
            )));
        }
        check_part(&format!("contents[{i}].parts[{j}]"), p)?;
    }
    Ok(())
}

/// A part holds data; text non-empty; inline data typed and base64; calls named.
fn check_part(at: &str, p: &Value) -> Result<(), Refusal> {
    if !PART_DATA.iter().any(|k| p.get(*k).is_some()) {
        return Err(invalid(format!(
            "{at}: must include one of the data fields (text, inlineData, fileData, functionCall, functionResponse)"
        )));
    }
    if p["text"].as_str().is_some_and(str::is_empty) {
        return Err(invalid(format!(
            "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again. ({at}.text)"
        )));
    }
    if let Some(blob) = p.get("inlineData") {
        if blob["mimeType"].as_str().is_none_or(str::is_empty) {
            return Err(invalid(format!("{at}.inline_data.mime_type: required")));
        }
        if !gemini_base64_ok(blob["data"].as_str().unwrap_or("")) {
            return Err(invalid(format!(
                "Invalid value at '{at}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
            )));
        }
    }
    if let Some(call) = p.get("functionCall") {
        if call["name"].as_str().is_none_or(str::is_empty) {
            return Err(invalid(format!(
                "{at}.function_call.name: Name cannot be empty."
            )));
        }
    }
    Ok(())
}

fn count(c: &Value, key: &str) -> usize {
    c["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.get(key).is_some())
        .count()
}

/// Function call turns follow user turns; function response turns follow call turns and
/// answer each call.
fn check_turns(contents: &[Value]) -> Result<(), Refusal> {
    for (i, c) in contents.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &contents[p]);
        let calls = count(c, "functionCall");
        if calls > 0 && c["role"] == "model" && prev.is_none_or(|p| p["role"] != "user") {
            return Err(invalid(
                "Please ensure that function call turn comes immediately after a user turn or after a function response turn.",
            ));
        }
        let responses = count(c, "functionResponse");
        if responses == 0 {
            continue;
        }
        let prev_calls = prev
            .filter(|p| p["role"] == "model")
            .map(|p| count(p, "functionCall"))
            .unwrap_or(0);
        if prev_calls == 0 {
            return Err(invalid(
                "Please ensure that function response turn comes immediately after a function call turn.",
            ));
        }
        if prev_calls != responses {
            return Err(invalid(
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
            ));
        }
    }
    Ok(())
}

fn check_system(v: &Value) -> Result<(), Refusal> {
    let system = &v["systemInstruction"];
    if system.is_null() {
        return Ok(());
    }
    let parts = system["parts"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("system_instruction.parts must not be empty"))?;
    for (j, p) in parts.iter().enumerate() {
        check_part(&format!("system_instruction.parts[{j}]"), p)?;
    }
    Ok(())
}

/// `^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$`: a function declaration's name.
fn function_name_ok(name: &str) -> bool {
    let mut cs = name.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars(name) <= 64
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Declared function names; the function calling mode and allowed names.
fn check_tools(v: &Value) -> Result<(), Refusal> {
    let mut names = Vec::new();
    for (i, t) in v["tools"].as_array().into_iter().flatten().enumerate() {
        for (j, f) in t["functionDeclarations"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = f["name"].as_str().unwrap_or("");
            if !function_name_ok(name) {
                return Err(invalid(format!(
                    "* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a maximum length of 64."
                )));
            }
            names.push(name);
        }
    }
    let config = &v["toolConfig"]["functionCallingConfig"];
    let mode = config["mode"].as_str().unwrap_or("AUTO");
    if !matches!(
        mode,
        "AUTO" | "ANY" | "NONE" | "VALIDATED" | "MODE_UNSPECIFIED"
    ) {
        return Err(invalid(format!(
            "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"{mode}\""
        )));
    }
    if let Some(allowed) = config["allowedFunctionNames"].as_array() {
        if mode != "ANY" {
            return Err(invalid(
                "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names is only allowed when mode is ANY.",
            ));
        }
        if let Some(n) = allowed
            .iter()
            .find(|n| !names.contains(&n.as_str().unwrap_or("")))
        {
            return Err(invalid(format!(
                "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: {n} is not a declared function."
            )));
        }
    }
    Ok(())
}

fn check_generation_config(g: &Value) -> Result<(), Refusal> {
    let bad = |field: &str| {
        invalid(format!(
            "* GenerateContentRequest.generation_config.{field}: value out of range"
        ))
    };
    if !in_range(&g["temperature"], 0.0, 2.0) {
        return Err(bad("temperature"));
    }
    if !in_range(&g["topP"], 0.0, 1.0) {
        return Err(bad("top_p"));
    }
    for (k, field) in [
        ("topK", "top_k"),
        ("candidateCount", "candidate_count"),
        ("maxOutputTokens", "max_output_tokens"),
    ] {
        if !g[k].is_null() && g[k].as_u64().is_none_or(|n| n < 1) {
            return Err(bad(field));
        }
    }
    if g["stopSequences"].as_array().is_some_and(|s| s.len() > 5) {
        return Err(invalid(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are allowed",
        ));
    }
    let thinking = &g["thinkingConfig"];
    if !thinking["thinkingBudget"].is_null() && !thinking["thinkingLevel"].is_null() {
        return Err(invalid(
            "You can only set only one of thinking budget and thinking level.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok() -> Value {
        json!({"contents":[
            {"role":"user","parts":[{"text":"hi"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}]},
            {"role":"model","parts":[
                {"functionCall":{"name":"ns.f","args":{}},"thoughtSignature":"c2ln"},
                {"functionCall":{"name":"g","args":{}},"thoughtSignature":"c2ln"}]},
            {"role":"user","parts":[
                {"functionResponse":{"name":"ns.f","response":{"r":1}}},
                {"functionResponse":{"name":"g","response":{"r":2}}}]}],
            "systemInstruction":{"parts":[{"text":"be brief"}]},
            "tools":[{"functionDeclarations":[{"name":"ns.f"},{"name":"g"}]}],
            "generationConfig":{"temperature":1.5,"topP":0.5,"maxOutputTokens":10,"stopSequences":["x"]}})
    }

    fn refused_saying(body: Value, words: &str) {
        let r = check(&body).expect_err("refused");
        assert!(r.message.contains(words), "{r:?}");
        assert_eq!((r.status, r.kind), (400, "INVALID_ARGUMENT"));
    }

    #[test]
    fn a_parallel_tool_loop_with_an_image_passes() {
        check(&ok()).unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut b = ok();
        b["model"] = json!("gemini");
        refused_saying(b, "Unknown name \"model\"");
    }

    #[test]
    fn contents_roles_and_parts() {
        let mut b = ok();
        b["contents"] = json!([]);
        refused_saying(b, "contents must not be empty");
        let mut b = ok();
        b["contents"][0]["role"] = json!("assistant");
        refused_saying(b, "contents[0].role");
        let mut b = ok();
        b["contents"][0]["parts"] = json!([]);
        refused_saying(b, "contents[0].parts must not be empty");
    }

    #[test]
    fn parts_hold_data_and_text_is_not_empty() {
        let mut b = ok();
        b["contents"][0]["parts"][0] = json!({"thought":true});
        refused_saying(b, "one of the data fields");
        let mut b = ok();
        b["contents"][0]["parts"][0] = json!({"text":""});
        refused_saying(b, "empty text parameter");
    }

    #[test]
    fn inline_data_typed_and_base64_and_calls_named() {
        let mut b = ok();
        b["contents"][0]["parts"][1]["inlineData"]["data"] = json!("%%%");
        refused_saying(b, "Base64 decoding failed");
        let mut b = ok();
        b["contents"][0]["parts"][1]["inlineData"]["mimeType"] = json!("");
        refused_saying(b, "mime_type");
        let mut b = ok();
        b["contents"][1]["parts"][0]["functionCall"]["name"] = json!("");
        refused_saying(b, "Name cannot be empty");
    }

    #[test]
    fn function_calls_carry_their_thought_signature() {
        let mut b = ok();
        b["contents"][1]["parts"][0]
            .as_object_mut()
            .unwrap()
            .remove("thoughtSignature");
        refused_saying(b, "missing a thought_signature");
        // A parallel call after the first needs none.
        let mut b = ok();
        b["contents"][1]["parts"][1]
            .as_object_mut()
            .unwrap()
            .remove("thoughtSignature");
        check(&b).unwrap();
    }

    #[test]
    fn call_turns_follow_user_turns_and_responses_answer_each_call() {
        let mut b = ok();
        b["contents"][2]["parts"].as_array_mut().unwrap().pop();
        refused_saying(b, "number of function response parts is equal");
        let mut b = ok();
        b["contents"].as_array_mut().unwrap().remove(1);
        refused_saying(
            b,
            "function response turn comes immediately after a function call turn",
        );
        let mut b = ok();
        b["contents"].as_array_mut().unwrap().remove(0);
        refused_saying(b, "function call turn comes immediately after a user turn");
    }

    #[test]
    fn system_instruction_has_parts() {
        let mut b = ok();
        b["systemInstruction"] = json!({"parts":[]});
        refused_saying(b, "system_instruction.parts");
    }

    #[test]
    fn function_declaration_names() {
        let mut b = ok();
        b["tools"][0]["functionDeclarations"][0]["name"] = json!("1f");
        refused_saying(b, "Invalid function name");
        let mut b = ok();
        b["tools"][0]["functionDeclarations"][0]["name"] = json!("f".repeat(65));
        refused_saying(b, "Invalid function name");
        let mut b = ok();
        b["tools"][0]["functionDeclarations"][0]["name"] = json!("a b");
        refused_saying(b, "Invalid function name");
    }

    #[test]
    fn function_calling_mode_and_allowed_names() {
        let mut b = ok();
        b["toolConfig"] = json!({"functionCallingConfig":{"mode":"REQUIRED"}});
        refused_saying(b, "function_calling_config.mode");
        let mut b = ok();
        b["toolConfig"] =
            json!({"functionCallingConfig":{"mode":"AUTO","allowedFunctionNames":["g"]}});
        refused_saying(b, "only allowed when mode is ANY");
        let mut b = ok();
        b["toolConfig"] =
            json!({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["h"]}});
        refused_saying(b, "not a declared function");
        let mut b = ok();
        b["toolConfig"] =
            json!({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["g"]}});
        check(&b).unwrap();
    }

    #[test]
    fn generation_config_ranges_and_thinking() {
        let set = |k: &str, v: Value| {
            let mut b = ok();
            b["generationConfig"][k] = v;
            b
        };
        refused_saying(set("temperature", json!(2.5)), "temperature");
        refused_saying(set("topP", json!(1.5)), "top_p");
        refused_saying(set("topK", json!(0)), "top_k");
        refused_saying(set("candidateCount", json!(0)), "candidate_count");
        refused_saying(set("maxOutputTokens", json!(0)), "max_output_tokens");
        refused_saying(
            set("stopSequences", json!(["a", "b", "c", "d", "e", "f"])),
            "at most 5",
        );
        refused_saying(
            set(
                "thinkingConfig",
                json!({"thinkingBudget":1024,"thinkingLevel":"high"}),
            ),
            "only one of thinking budget and thinking level",
        );
        check(&set("thinkingConfig", json!({"thinkingBudget":-1}))).unwrap();
    }
}
