//! Anthropic's Messages request contract (`POST /v1/messages`, `/v1/messages/count_tokens`), as
//! the API refuses it: 400 `invalid_request_error` with Anthropic's wording.
//!
//! Sources: the API reference "Messages" (docs.anthropic.com/en/api/messages, "API ref"
//! below), "Tool use with Claude" (docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview,
//! "Tool use" below), "Building with extended thinking"
//! (docs.anthropic.com/en/docs/build-with-claude/extended-thinking, "Thinking" below), "Vision"
//! (docs.anthropic.com/en/docs/build-with-claude/vision), "Prompt caching", "Effort"
//! (platform.claude.com/docs/en/build-with-claude/effort), and the 400s other gateways' users
//! met.
//!
//! | rule | source | checked through the gateway by |
//! |---|---|---|
//! | `anthropic-version` header present | API ref, headers | `translation::`, `vendor_rules::` |
//! | only known top-level fields ("Extra inputs are not permitted"); no `max_tokens` in `count_tokens` | API ref | `native_messages::`, `generative::` |
//! | `model` a non-empty string; `max_tokens` a positive integer; `messages` non-empty | API ref | `generative::` |
//! | roles `user`, `assistant` (the mock also takes `system`) | API ref, `messages` | `generative::` |
//! | every message has non-empty content | "all messages must have non-empty content" | `vendor_rules::empty_turns_*`, `generative::` |
//! | text blocks (messages, `system`, tool results) non-empty | "text content blocks must be non-empty" | `generative::` |
//! | content blocks by role: `image`/`document`/`tool_result` only from the user; `tool_use`/`thinking`/`redacted_thinking` only from the assistant | API ref, content blocks | `generative::` |
//! | `image` source: base64 of `image/jpeg`, `image/png`, `image/gif`, `image/webp` with valid data, or a `url` | "Vision" | `generative::` |
//! | `tool_use.id` and `tool_result.tool_use_id` match `^[a-zA-Z0-9_-]+$` | API ref, `tool_use.id` pattern; "String should match pattern" (HKUDS/nanobot#4356) | `generative::` |
//! | `tool_use` ids unique in the request | "`tool_use` ids must be unique" | `generative::` |
//! | each `tool_use` answered by a `tool_result` in the next (user) message, and each `tool_result` answers a `tool_use` of the message before | "Tool use" (formatting tool results); "`tool_use` ids were found without `tool_result` blocks immediately after" / "unexpected `tool_use_id` found in `tool_result` blocks" (anthropics/claude-code#8210, #18947) | `generative::` |
//! | in a user message, `tool_result` blocks come before any other block | "Tool use": "tool result blocks must come FIRST in the content array" | `generative::` |
//! | `tool_result.content` a string or `text`/`image`/`document`/`search_result` blocks | API ref, tool result content | `generative::` |
//! | tool names match `^[a-zA-Z0-9_-]{1,64}$` and are unique; a `tool_choice` of type `tool` names one | "Tool use" (`name`); "Tool names must be unique" | `generative::` |
//! | `temperature` 0–1, `top_p` 0–1, `top_k` ≥ 0 | API ref | `generative::` |
//! | `metadata` holds only `user_id`, at most 256 characters | API ref, `metadata.user_id` | `claude_code_requests::`, `generative::` |
//! | every stop sequence has a non-whitespace character | the API's 400 | `vendor_rules::empty_turns_*`, `generative::` |
//! | `thinking.type` `enabled`, `disabled` or `adaptive`; enabled: `budget_tokens` ≥ 1024 and below `max_tokens` | "Thinking" | `generative::` |
//! | with thinking on (enabled or adaptive): `temperature` only 1, no `top_k`, `top_p` 0.95–1, no forced `tool_choice` (`any`, `tool`) | "Thinking", Feature compatibility ("temperature may only be set to 1 when thinking is enabled", "Thinking may not be enabled when tool_choice forces tool use") | `translation::`, `generative::` |
//! | with thinking enabled, the last assistant message, when it holds `tool_use`, starts with `thinking`/`redacted_thinking` (earlier turns' blocks may be left out) | "Thinking", preserving thinking blocks ("Expected `thinking` or `redacted_thinking`") | `vendor_rules::`, `generative::` |
//! | every `thinking` block has its `signature` | "Thinking" | `generative::` |
//! | `output_config.effort` `low`, `medium`, `high` or `max` | "Effort" | `claude_code_requests::`, `generative::` |
//! | `output_config.format` is `{"type":"json_schema","schema":{…}}` | "Structured outputs" | `translation::structured_output_*` |
//! | `tools[].input_schema` and `output_config.format.schema` are JSON Schema: `type` names lower case | "Tool use" (`input_schema`: "JSON Schema"), JSON Schema Validation §6.1.1 | `generative::` (Gemini door, Google's upper-case types), `real_clients_gemini::gemini_cli_s_schemas_reach_anthropic_as_json_schema` |
//! | at most 4 blocks with `cache_control` | "Prompt caching" | `generative::` |

use serde_json::Value;

use super::{base64_ok, chars, in_range, schema_type_error, word_id, Refusal, IMAGE_TYPES};

/// The top-level fields the Messages API knows; `context_management` counts as known (a
/// field newer than the gateway).
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_k",
    "top_p",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
];

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::anthropic(message)
}

/// The headers Anthropic requires of every request beside the key: `anthropic-version`.
pub fn check_headers(anthropic_version: Option<&str>) -> Result<(), Refusal> {
    match anthropic_version {
        Some(_) => Ok(()),
        None => Err(invalid("anthropic-version: header is required")),
    }
}

/// Checks a `/v1/messages` body as Anthropic does.
pub fn check(v: &Value) -> Result<(), Refusal> {
    check_with(v, false)
}

/// Checks a `/v1/messages/count_tokens` body (no `max_tokens`) as Anthropic does.
pub fn check_count_tokens(v: &Value) -> Result<(), Refusal> {
    check_with(v, true)
}

fn check_with(v: &Value, count: bool) -> Result<(), Refusal> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("body must be an object"))?;
    for k in obj.keys() {
        if !KNOWN_FIELDS.contains(&k.as_str()) || (count && k == "max_tokens") {
            return Err(invalid(format!("{k}: Extra inputs are not permitted")));
        }
    }
    if v["model"].as_str().is_none_or(|m| m.is_empty()) {
        return Err(invalid("model: Field required"));
    }
    let max_tokens = v["max_tokens"].as_u64();
    if !count && max_tokens.is_none_or(|n| n < 1) {
        return Err(invalid("max_tokens: Field required"));
    }
    let msgs = v["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("messages: at least one message is required"))?;
    let thinking = check_thinking(v, max_tokens)?;
    if let Some(effort) = v.pointer("/output_config/effort") {
        if !matches!(effort.as_str(), Some("low" | "medium" | "high" | "max")) {
            return Err(invalid(
                "output_config.effort: Input should be 'low', 'medium', 'high' or 'max'",
            ));
        }
    }
    if let Some(format) = v.pointer("/output_config/format") {
        if format["type"] != "json_schema" || !format["schema"].is_object() {
            return Err(invalid(
                "output_config.format: Input tag should be 'json_schema', with an object `schema`",
            ));
        }
        if let Some(bad) = schema_type_error(&format["schema"], "output_config.format.schema") {
            return Err(invalid(format!("{bad}: not a JSON Schema type")));
        }
    }
    if thinking || v["thinking"]["type"] == "adaptive" {
        check_beside_thinking(v)?;
    }
    // Only the last assistant message must keep its thinking: "During tool use, you must pass
    // thinking blocks back to the API for the last assistant message" (extended thinking,
    // "Preserving thinking blocks"); earlier turns' blocks may be left out.
    let last_assistant = msgs.iter().rposition(|m| m["role"] == "assistant");
    for (i, m) in msgs.iter().enumerate() {
        check_message(i, m, thinking && Some(i) == last_assistant)?;
    }
    check_stop_sequences(v)?;
    if cache_marks(v) > 4 {
        return Err(invalid(
            "A maximum of 4 blocks with cache_control may be provided",
        ));
    }
    check_sampling(v)?;
    check_metadata(v)?;
    check_system(v)?;
    check_tools(v)?;
    check_tool_ids(msgs)
}

/// `thinking.type` known; `enabled` needs a budget ≥ 1024 below `max_tokens`. True when
/// thinking is `enabled`.
fn check_thinking(v: &Value, max_tokens: Option<u64>) -> Result<bool, Refusal> {
    let kind = &v["thinking"]["type"];
    if !v["thinking"].is_null()
        && !matches!(kind.as_str(), Some("enabled" | "disabled" | "adaptive"))
    {
        return Err(invalid(
            "thinking.type: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'",
        ));
    }
    let thinking = kind == "enabled";
    if thinking {
        let budget = v["thinking"]["budget_tokens"].as_u64().unwrap_or(0);
        if budget < 1024 || max_tokens.is_some_and(|m| budget >= m) {
            return Err(invalid(
                "thinking.budget_tokens: must be ≥ 1024 and less than max_tokens",
            ));
        }
    }
    Ok(thinking)
}

/// What thinking is not compatible with ("Building with extended thinking", Feature
/// compatibility).
fn check_beside_thinking(v: &Value) -> Result<(), Refusal> {
    if v["temperature"].as_f64().is_some_and(|t| t != 1.0) {
        return Err(invalid(
            "temperature may only be set to 1 when thinking is enabled",
        ));
    }
    if !v["top_k"].is_null() {
        return Err(invalid("top_k is not supported when thinking is enabled"));
    }
    if v["top_p"]
        .as_f64()
        .is_some_and(|p| !(0.95..=1.0).contains(&p))
    {
        return Err(invalid(
            "top_p must be between 0.95 and 1 when thinking is enabled",
        ));
    }
    if matches!(v["tool_choice"]["type"].as_str(), Some("any" | "tool")) {
        return Err(invalid(
            "Thinking may not be enabled when tool_choice forces tool use.",
        ));
    }
    Ok(())
}

/// The block types each role may send.
fn allowed_blocks(role: &str) -> &'static [&'static str] {
    match role {
        "assistant" => &[
            "text",
            "thinking",
            "redacted_thinking",
            "tool_use",
            "server_tool_use",
            "web_search_tool_result",
            "web_fetch_tool_result",
            "code_execution_tool_result",
            "mcp_tool_use",
            "mcp_tool_result",
            "container_upload",
        ],
        _ => &[
            "text",
            "image",
            "document",
            "search_result",
            "tool_result",
            "container_upload",
        ],
    }
}

/// `thinking`: thinking is on and `m` is the last assistant message, which must then start
/// with its thinking when it holds `tool_use`.
fn check_message(i: usize, m: &Value, thinking: bool) -> Result<(), Refusal> {
    let role = m["role"].as_str().unwrap_or("");
    if !matches!(role, "user" | "assistant" | "system") {
        return Err(invalid(format!(
            "messages.{i}.role: unexpected role `{role}`"
        )));
    }
    let empty = match &m["content"] {
        Value::String(s) => s.is_empty(),
        Value::Array(blocks) => blocks.is_empty(),
        _ => true,
    };
    if empty {
        return Err(invalid(format!(
            "messages.{i}: all messages must have non-empty content"
        )));
    }
    let blocks = m["content"].as_array().cloned().unwrap_or_default();
    for b in &blocks {
        if b["type"] == "thinking" && !b["signature"].is_string() {
            return Err(invalid(format!(
                "messages.{i}.content: `thinking` blocks need their `signature`"
            )));
        }
    }
    let has_tool_use = blocks.iter().any(|b| b["type"] == "tool_use");
    if thinking && role == "assistant" && has_tool_use {
        let first = blocks[0]["type"].as_str().unwrap_or("");
        if first != "thinking" && first != "redacted_thinking" {
            return Err(invalid(format!(
                "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block"
            )));
        }
    }
    for (j, b) in blocks.iter().enumerate() {
        check_block(
            &format!("messages.{i}.content.{j}"),
            b,
            allowed_blocks(role),
        )?;
    }
    Ok(())
}

/// One content block: a type its role may send, non-empty text, an image Anthropic takes, a
/// tool result's content.
fn check_block(at: &str, b: &Value, allowed: &[&str]) -> Result<(), Refusal> {
    let kind = b["type"].as_str().unwrap_or("");
    if !allowed.contains(&kind) {
        return Err(invalid(format!(
            "{at}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags: {allowed:?}"
        )));
    }
    match kind {
        "text" if b["text"].as_str().is_none_or(str::is_empty) => Err(invalid(format!(
            "{at}.text: text content blocks must be non-empty"
        ))),
        "image" => check_image(at, &b["source"]),
        "tool_result" => match &b["content"] {
            Value::Null | Value::String(_) => Ok(()),
            Value::Array(inner) => {
                for (k, c) in inner.iter().enumerate() {
                    check_block(
                        &format!("{at}.content.{k}"),
                        c,
                        &["text", "image", "document", "search_result"],
                    )?;
                }
                Ok(())
            }
            _ => Err(invalid(format!(
                "{at}.content: Input should be a valid list or string"
            ))),
        },
        _ => Ok(()),
    }
}

/// An image source: base64 of a supported type with valid data, or a URL ("Vision").
fn check_image(at: &str, source: &Value) -> Result<(), Refusal> {
    match source["type"].as_str() {
        Some("base64") => {
            let media = source["media_type"].as_str().unwrap_or("");
            if !IMAGE_TYPES.contains(&media) {
                return Err(invalid(format!(
                    "{at}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                )));
            }
            if !base64_ok(source["data"].as_str().unwrap_or("")) {
                return Err(invalid(format!(
                    "{at}.source.base64.data: The image data is not valid base64."
                )));
            }
            Ok(())
        }
        Some("url") if source["url"].is_string() => Ok(()),
        Some("file") if source["file_id"].is_string() => Ok(()),
        _ => Err(invalid(format!(
            "{at}.source: Input tag does not match any of the expected tags: 'base64', 'url', 'file'"
        ))),
    }
}

fn check_stop_sequences(v: &Value) -> Result<(), Refusal> {
    for s in v["stop_sequences"].as_array().into_iter().flatten() {
        if s.as_str().is_none_or(|s| s.trim().is_empty()) {
            return Err(invalid(
                "stop_sequences: each stop sequence must contain non-whitespace",
            ));
        }
    }
    Ok(())
}

/// How many objects in the body carry `cache_control`.
fn cache_marks(v: &Value) -> usize {
    match v {
        Value::Object(o) => {
            usize::from(o.contains_key("cache_control"))
                + o.values().map(cache_marks).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(cache_marks).sum(),
        _ => 0,
    }
}

fn check_sampling(v: &Value) -> Result<(), Refusal> {
    if !in_range(&v["temperature"], 0.0, 1.0) {
        return Err(invalid(
            "temperature: Input should be less than or equal to 1",
        ));
    }
    if !in_range(&v["top_p"], 0.0, 1.0) {
        return Err(invalid("top_p: Input should be less than or equal to 1"));
    }
    if !v["top_k"].is_null() && v["top_k"].as_u64().is_none() {
        return Err(invalid("top_k: Input should be greater than or equal to 0"));
    }
    Ok(())
}

/// `metadata`: only `user_id`, a string of at most 256 characters.
fn check_metadata(v: &Value) -> Result<(), Refusal> {
    let Some(meta) = v["metadata"].as_object() else {
        return Ok(());
    };
    if let Some(k) = meta.keys().find(|k| *k != "user_id") {
        return Err(invalid(format!(
            "metadata.{k}: Extra inputs are not permitted"
        )));
    }
    match &meta.get("user_id") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if chars(s) <= 256 => Ok(()),
        Some(_) => Err(invalid(
            "metadata.user_id: String should have at most 256 characters",
        )),
    }
}

/// `system`: a string or text blocks, none empty.
fn check_system(v: &Value) -> Result<(), Refusal> {
    for (j, b) in v["system"].as_array().into_iter().flatten().enumerate() {
        check_block(&format!("system.{j}"), b, &["text"])?;
    }
    Ok(())
}

/// Client tool names (pattern, unique); a `tool_choice` of type `tool` names one of them.
fn check_tools(v: &Value) -> Result<(), Refusal> {
    let mut names: Vec<&str> = Vec::new();
    for (i, t) in v["tools"].as_array().into_iter().flatten().enumerate() {
        let name = t["name"].as_str().unwrap_or("");
        let custom = t["type"].is_null() || t["type"] == "custom";
        if custom && !word_id(name, 64) {
            return Err(invalid(format!(
                "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )));
        }
        if names.contains(&name) {
            return Err(invalid("tools: Tool names must be unique."));
        }
        if let Some(bad) = schema_type_error(&t["input_schema"], &format!("tools.{i}.input_schema"))
        {
            return Err(invalid(format!("{bad}: not a JSON Schema type")));
        }
        names.push(name);
    }
    if v["tool_choice"]["type"] == "tool" {
        let named = v["tool_choice"]["name"].as_str().unwrap_or("");
        if !names.contains(&named) {
            return Err(invalid(format!(
                "tool_choice.name: Tool '{named}' not found in tools"
            )));
        }
    }
    Ok(())
}

/// The `tool_use` ids of a message's blocks.
fn tool_use_ids(m: &Value) -> Vec<&str> {
    blocks_of(m, "tool_use")
        .map(|b| b["id"].as_str().unwrap_or(""))
        .collect()
}

fn blocks_of<'a>(m: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    m["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |b| b["type"] == kind)
}

fn tool_result_ids(m: &Value) -> Vec<&str> {
    blocks_of(m, "tool_result")
        .map(|b| b["tool_use_id"].as_str().unwrap_or(""))
        .collect()
}

/// Tool-use ids: the pattern and unique; then each result answering the message before
/// (results first); then each call answered in the next message.
fn check_tool_ids(msgs: &[Value]) -> Result<(), Refusal> {
    let mut seen: Vec<&str> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        for id in tool_use_ids(m) {
            if !word_id(id, usize::MAX) {
                return Err(invalid(format!(
                    "messages.{i}.content: tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                )));
            }
            if seen.contains(&id) {
                return Err(invalid(format!(
                    "messages.{i}.content: `tool_use` ids must be unique"
                )));
            }
            seen.push(id);
        }
        if tool_result_ids(m).iter().any(|id| !word_id(id, usize::MAX)) {
            return Err(invalid(format!(
                "messages.{i}.content: tool_result.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'"
            )));
        }
    }
    for (i, m) in msgs.iter().enumerate() {
        let before = i
            .checked_sub(1)
            .map(|p| tool_use_ids(&msgs[p]))
            .unwrap_or_default();
        if let Some(id) = tool_result_ids(m).iter().find(|id| !before.contains(id)) {
            return Err(invalid(format!(
                "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )));
        }
        check_results_first(i, m)?;
    }
    for (i, m) in msgs.iter().enumerate() {
        let next = msgs.get(i + 1).map(tool_result_ids).unwrap_or_default();
        let missing: Vec<&str> = tool_use_ids(m)
            .into_iter()
            .filter(|id| !next.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                i + 1,
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// In a message with tool results, no other block comes before a result.
fn check_results_first(i: usize, m: &Value) -> Result<(), Refusal> {
    let blocks = m["content"].as_array().cloned().unwrap_or_default();
    let last_result = blocks.iter().rposition(|b| b["type"] == "tool_result");
    let first_other = blocks.iter().position(|b| b["type"] != "tool_result");
    match (last_result, first_other) {
        (Some(r), Some(o)) if o < r => Err(invalid(format!(
            "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: tool_result blocks must come first in the content array, before any other content."
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PNG: &str = "iVBORw0KGgo=";

    fn ok() -> Value {
        json!({"model":"claude","max_tokens":2048,"messages":[
            {"role":"user","content":"hi"},
            {"role":"assistant","content":[
                {"type":"thinking","thinking":"t","signature":"sig"},
                {"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},
            {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"toolu_1","content":[
                    {"type":"text","text":"r"},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":PNG}}]},
                {"type":"text","text":"and?"}]}],
            "tools":[{"name":"f","input_schema":{"type":"object"}}]})
    }

    fn refused(body: Value) -> Refusal {
        check(&body).expect_err("refused")
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = ok();
        b[k] = v;
        b
    }

    fn refused_saying(body: Value, words: &str) {
        let r = refused(body);
        assert!(r.message.contains(words), "{r:?}");
        assert_eq!((r.status, r.kind), (400, "invalid_request_error"));
    }

    #[test]
    fn a_tool_loop_with_thinking_and_an_image_result_passes() {
        check(&ok()).unwrap();
        check(&with(
            "thinking",
            json!({"type":"enabled","budget_tokens":1024}),
        ))
        .unwrap();
    }

    #[test]
    fn the_version_header_is_required() {
        check_headers(Some("2023-06-01")).unwrap();
        assert!(check_headers(None)
            .unwrap_err()
            .message
            .contains("anthropic-version"));
    }

    #[test]
    fn fields_model_max_tokens_messages() {
        refused_saying(
            with("user", json!("x")),
            "user: Extra inputs are not permitted",
        );
        refused_saying(with("model", json!("")), "model");
        refused_saying(with("max_tokens", json!(0)), "max_tokens");
        refused_saying(with("messages", json!([])), "messages");
        let mut b = ok();
        b.as_object_mut().unwrap().remove("max_tokens");
        check_count_tokens(&b).unwrap();
        assert!(check_count_tokens(&ok()).is_err());
    }

    #[test]
    fn roles_and_non_empty_content() {
        let mut b = ok();
        b["messages"][0]["role"] = json!("tool");
        refused_saying(b, "messages.0.role");
        let mut b = ok();
        b["messages"][0]["content"] = json!("");
        refused_saying(b, "non-empty content");
        let mut b = ok();
        b["messages"][0]["content"] = json!([{"type":"text","text":""}]);
        refused_saying(b, "text content blocks must be non-empty");
        refused_saying(
            with("system", json!([{"type":"text","text":""}])),
            "system.0.text",
        );
    }

    #[test]
    fn block_types_by_role() {
        let mut b = ok();
        b["messages"][0]["content"] = json!([{"type":"tool_use","id":"x","name":"f","input":{}}]);
        refused_saying(b, "messages.0.content.0.type");
        let mut b = ok();
        b["messages"][1]["content"][0] =
            json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":PNG}});
        refused_saying(b, "messages.1.content.0.type");
    }

    #[test]
    fn images_of_supported_types_with_valid_base64() {
        let img = |media: &str, data: &str| json!([{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":media,"data":data}}]}]);
        check(&with("messages", img("image/webp", PNG))).unwrap();
        refused_saying(with("messages", img("image/bmp", PNG)), "media_type");
        refused_saying(
            with("messages", img("image/png", "not base64!")),
            "not valid base64",
        );
        let mut b = ok();
        b["messages"][2]["content"][0]["content"][1]["source"]["media_type"] = json!("image/tiff");
        refused_saying(b, "messages.2.content.0.content.1.source");
    }

    #[test]
    fn tool_use_ids_match_the_pattern_and_are_unique() {
        let mut b = ok();
        b["messages"][1]["content"][1]["id"] = json!("functions.f:0");
        b["messages"][2]["content"][0]["tool_use_id"] = json!("functions.f:0");
        refused_saying(b, "String should match pattern");
        let mut b = ok();
        b["messages"][2]["content"][0]["tool_use_id"] = json!("a.b");
        refused_saying(b, "tool_use_id: String should match pattern");
        let b = json!({"model":"c","max_tokens":10,"messages":[
            {"role":"user","content":"a"},
            {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]},
            {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]});
        refused_saying(b, "ids must be unique");
    }

    #[test]
    fn every_tool_use_is_answered_next_and_every_result_answers() {
        let mut b = ok();
        b["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_2");
        refused_saying(b, "unexpected `tool_use_id`");
        let mut b = ok();
        b["messages"][2]["content"] = json!("no results");
        refused_saying(
            b,
            "were found without `tool_result` blocks immediately after: toolu_1",
        );
        let mut b = ok();
        b["messages"].as_array_mut().unwrap().pop();
        refused_saying(b, "toolu_1");
    }

    #[test]
    fn tool_results_come_first() {
        let mut b = ok();
        b["messages"][2]["content"]
            .as_array_mut()
            .unwrap()
            .reverse();
        refused_saying(b, "must come first");
    }

    #[test]
    fn tool_names_unique_and_named_choice() {
        refused_saying(
            with("tools", json!([{"name":"a.b","input_schema":{}}])),
            "tools.0.custom.name",
        );
        refused_saying(
            with("tools", json!([{"name":&"n".repeat(65),"input_schema":{}}])),
            "pattern",
        );
        refused_saying(
            with(
                "tools",
                json!([{"name":"f","input_schema":{}},{"name":"f","input_schema":{}}]),
            ),
            "unique",
        );
        refused_saying(
            with("tool_choice", json!({"type":"tool","name":"g"})),
            "not found",
        );
        check(&with("tools", json!([{"type":"web_search_20250305","name":"web_search"},{"name":"f","input_schema":{}}]))).unwrap();
    }

    #[test]
    fn sampling_ranges() {
        refused_saying(with("temperature", json!(1.5)), "temperature");
        refused_saying(with("top_p", json!(2)), "top_p");
        refused_saying(with("top_k", json!(-1)), "top_k");
        check(&with("temperature", json!(0))).unwrap();
    }

    #[test]
    fn metadata_user_id_only_and_at_most_256() {
        check(&with("metadata", json!({"user_id":"u".repeat(256)}))).unwrap();
        refused_saying(
            with("metadata", json!({"user_id":"u".repeat(257)})),
            "at most 256",
        );
        refused_saying(with("metadata", json!({"session":"x"})), "metadata.session");
    }

    #[test]
    fn stop_sequences_need_non_whitespace() {
        refused_saying(with("stop_sequences", json!(["\n"])), "non-whitespace");
        check(&with("stop_sequences", json!(["END"]))).unwrap();
    }

    #[test]
    fn thinking_types_budget_and_what_it_excludes() {
        refused_saying(with("thinking", json!({"type":"on"})), "thinking.type");
        refused_saying(
            with("thinking", json!({"type":"enabled","budget_tokens":512})),
            "budget_tokens",
        );
        refused_saying(
            with("thinking", json!({"type":"enabled","budget_tokens":4096})),
            "budget_tokens",
        );
        let on = |k: &str, v: Value| {
            let mut b = with("thinking", json!({"type":"adaptive"}));
            b[k] = v;
            b
        };
        refused_saying(
            on("temperature", json!(0.2)),
            "temperature may only be set to 1",
        );
        refused_saying(on("top_k", json!(5)), "top_k");
        refused_saying(on("top_p", json!(0.5)), "top_p must be between 0.95 and 1");
        refused_saying(on("tool_choice", json!({"type":"any"})), "forces tool use");
        check(&on("top_p", json!(0.95))).unwrap();
    }

    #[test]
    fn thinking_enabled_tool_turns_start_with_thinking_and_thinking_is_signed() {
        let mut b = with("thinking", json!({"type":"enabled","budget_tokens":1024}));
        b["messages"][1]["content"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        refused_saying(b.clone(), "Expected `thinking` or `redacted_thinking`");
        // Only the last assistant message must keep its thinking: once a later assistant
        // turn follows, the earlier tool turn may go without.
        let msgs = b["messages"].as_array_mut().unwrap();
        msgs.push(json!({"role":"assistant","content":"done"}));
        msgs.push(json!({"role":"user","content":"thanks"}));
        check(&b).unwrap();
        let mut b = ok();
        b["messages"][1]["content"][0]
            .as_object_mut()
            .unwrap()
            .remove("signature");
        refused_saying(b, "signature");
    }

    #[test]
    fn effort_values_and_cache_control_count() {
        refused_saying(
            with("output_config", json!({"effort":"xhigh"})),
            "output_config.effort",
        );
        let marked: Vec<Value> = (0..5)
            .map(|i| json!({"type":"text","text":format!("s{i}"),"cache_control":{"type":"ephemeral"}}))
            .collect();
        refused_saying(with("system", json!(marked)), "maximum of 4");
    }
}
