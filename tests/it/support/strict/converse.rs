//! Bedrock's `Converse` / `ConverseStream` request contract, as Bedrock refuses it: 400
//! `ValidationException` with Bedrock's wording (`{"message": …}`).
//!
//! Sources: AWS's Bedrock API reference (docs.aws.amazon.com/bedrock/latest/APIReference/,
//! "API ref" below: `API_runtime_Converse`, `Message`, `ContentBlock`, `SystemContentBlock`,
//! `ImageBlock`, `DocumentBlock`, `ToolUseBlock`, `ToolResultBlock`, `ToolSpecification`,
//! `ToolChoice`, `InferenceConfiguration`, `CachePointBlock`), the user guide ("Using the
//! Converse API", "Prompt caching for faster model inference"), the Amazon Nova 2 user guide
//! ("Request and response schema", `reasoningConfig`), and the ValidationExceptions other
//! clients met (BerriAI/litellm, strands-agents trackers).
//!
//! | rule | source | checked through the gateway by |
//! |---|---|---|
//! | only known top-level fields | API ref, `Converse` request body | `converse::`, `generative::` |
//! | `messages` non-empty; roles `user`/`assistant`; each has non-empty `content` | API ref, `Message` | `generative::` |
//! | the first message is the user's; the roles alternate | "A conversation must start with a user message." / "A conversation must alternate between user and assistant roles." | `converse::`, `generative::` |
//! | a content block sets exactly one member; a `text` is not blank | API ref, `ContentBlock` (a union); "The text field in the ContentBlock object at messages.N.content.M is blank." | `generative::` |
//! | `image`: `format` png/jpeg/gif/webp, `source.bytes` valid base64, at most 3.75 MB, at most 20 images | API ref, `ImageBlock`, `ImageSource`; user guide "Using the Converse API" | `converse::`, `generative::` |
//! | `document`: `format` pdf/csv/doc/docx/xls/xlsx/html/txt/md, `name` of letters, digits, single whitespace, hyphens, parentheses, square brackets (1–200), bytes base64, at most 4.5 MB, at most 5 | API ref, `DocumentBlock` | `converse::` |
//! | `toolUse` only from the assistant, `toolResult` only from the user; `toolUseId` 1–64 of `[a-zA-Z0-9_-]`; a tool name 1–64 of `[a-zA-Z0-9_-]`; `input` an object | API ref, `ToolUseBlock`, `ToolResultBlock` | `generative::` |
//! | a `toolResult` has non-empty `content` of `text`/`json`/`image`/`document`, `status` success/error; `image` only for Nova and Claude | API ref, `ToolResultBlock`, `ToolResultContentBlock` | `generative::` |
//! | every `toolUse` of an assistant turn is answered by a `toolResult` of the next user turn, and no more | "Expected toolResult blocks at messages.N.content for the following Ids: …"; "The number of toolResult blocks at messages.N.content exceeds the number of toolUse blocks of previous turn." | `converse::`, `generative::` |
//! | `toolUse`/`toolResult` blocks need a `toolConfig` | "The toolConfig field must be defined when using toolUse and toolResult content blocks." | `generative::` |
//! | `system` blocks: a non-blank `text`, or a `cachePoint` | API ref, `SystemContentBlock` | `generative::` |
//! | `cachePoint` {`type`: `default`} only on models with prompt caching (Amazon Nova here; Claude goes through InvokeModel); never in Nova's `toolConfig` | user guide "Prompt caching for faster model inference" | `converse::`, `generative::` |
//! | `inferenceConfig`: `maxTokens` ≥ 1, `temperature` and `topP` 0–1, at most 2,500 `stopSequences`, each non-empty | API ref, `InferenceConfiguration` | `generative::` |
//! | `toolConfig.tools` non-empty, each a `toolSpec` with a `name`, a non-empty `description` if any, an `inputSchema.json` object; tool names unique | API ref, `ToolConfiguration`, `ToolSpecification` | `generative::` |
//! | `toolChoice`: one of `auto {}`, `any {}`, `tool {name}` naming a declared tool; `any`/`tool` only on Claude, Mistral Large, Amazon Nova | API ref, `ToolChoice` ("only supported by Anthropic Claude 3 models, Mistral Large, and Amazon Nova") | `converse::`, `generative::` |
//! | `additionalModelRequestFields.reasoningConfig` only on Nova 2, `type` enabled/disabled, `maxReasoningEffort` low/medium/high | Amazon Nova 2 user guide, "Extended thinking" | `converse::`, `generative::` |
//! | `outputConfig.textFormat`: `type` `json_schema`, `structure.jsonSchema.schema` a JSON Schema in a string | API ref, `OutputConfig`, `OutputFormat`, `JsonSchemaDefinition` | `converse::`, `generative::` |
//! | `reasoningContent` only in assistant turns, and signed reasoning only for Claude | API ref, `ReasoningContentBlock`, `ReasoningTextBlock.signature` | `generative::` |

use serde_json::Value;

use super::{base64_ok, chars, in_range, word_id, Refusal};

/// The top-level fields of a `Converse` request body.
const KNOWN_FIELDS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
    "outputConfig",
];

/// The members of a `ContentBlock`.
const BLOCK_MEMBERS: &[&str] = &[
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
];

const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];
const DOCUMENT_FORMATS: &[&str] = &[
    "pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md",
];
const IMAGE_MAX_BYTES: usize = 3_750_000;
const DOCUMENT_MAX_BYTES: usize = 4_500_000;

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        kind: "ValidationException",
        code: None,
        param: None,
        message: message.into(),
    }
}

/// Whether `model` (a model id, an inference profile or an ARN naming one) is Amazon Nova.
fn nova(model: &str) -> bool {
    model.contains("amazon.nova")
}

fn claude(model: &str) -> bool {
    model.contains("anthropic.claude")
}

/// What counts across the request.
#[derive(Default)]
struct Counts {
    images: usize,
    documents: usize,
    tool_blocks: bool,
}

/// Checks a `Converse` body for `model` as Bedrock does.
pub fn check(v: &Value, model: &str) -> Result<(), Refusal> {
    let obj = v.as_object().ok_or_else(|| {
        invalid("Malformed input request, please reformat your input and try again.")
    })?;
    if let Some(k) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "Malformed input request: extraneous key [{k}] is not permitted, please reformat your input and try again."
        )));
    }
    let messages = v["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("The messages field is required and must not be empty."))?;
    let mut counts = Counts::default();
    for (i, m) in messages.iter().enumerate() {
        check_message(i, m, model, &mut counts)?;
    }
    check_turns(messages)?;
    check_system(v, model)?;
    check_inference(&v["inferenceConfig"])?;
    check_tools(v, model, counts.tool_blocks)?;
    check_output(&v["outputConfig"])?;
    check_additional(&v["additionalModelRequestFields"], model)
}

/// `outputConfig.textFormat`: `type` `json_schema`, `structure.jsonSchema.schema` a string
/// holding a JSON object.
fn check_output(c: &Value) -> Result<(), Refusal> {
    if c.is_null() {
        return Ok(());
    }
    let f = &c["textFormat"];
    if f["type"] != "json_schema" {
        return Err(invalid(
            "1 validation error detected: Value at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must satisfy enum value set: [json_schema]",
        ));
    }
    let schema = f["structure"]["jsonSchema"]["schema"]
        .as_str()
        .unwrap_or("");
    if !serde_json::from_str::<Value>(schema).is_ok_and(|s| s.is_object()) {
        return Err(invalid(
            "outputConfig.textFormat.structure.jsonSchema.schema must be a JSON schema in a string",
        ));
    }
    Ok(())
}

fn check_message(i: usize, m: &Value, model: &str, counts: &mut Counts) -> Result<(), Refusal> {
    let role = m["role"].as_str().unwrap_or("");
    if role != "user" && role != "assistant" {
        return Err(invalid(format!(
            "1 validation error detected: Value '{role}' at 'messages.{i}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]"
        )));
    }
    let content = m["content"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."
            ))
        })?;
    for (j, b) in content.iter().enumerate() {
        check_block(&format!("messages.{i}.content.{j}"), role, b, model, counts)?;
    }
    Ok(())
}

/// Exactly one member set.
fn one_member<'a>(at: &str, b: &'a Value, members: &[&str]) -> Result<&'a str, Refusal> {
    let obj = b
        .as_object()
        .ok_or_else(|| invalid(format!("{at} must be an object")))?;
    let set: Vec<&String> = obj.keys().collect();
    match set.as_slice() {
        [one] if members.contains(&one.as_str()) => Ok(one.as_str()),
        [one] => Err(invalid(format!(
            "Malformed input request: extraneous key [{one}] is not permitted at {at}"
        ))),
        _ => Err(invalid(format!(
            "{at}: exactly one member of the union must be set"
        ))),
    }
}

fn check_block(
    at: &str,
    role: &str,
    b: &Value,
    model: &str,
    counts: &mut Counts,
) -> Result<(), Refusal> {
    match one_member(at, b, BLOCK_MEMBERS)? {
        "text" => check_text(at, &b["text"]),
        "image" => check_image(at, &b["image"], counts),
        "document" => check_document(at, &b["document"], counts),
        "cachePoint" => check_cache_point(at, &b["cachePoint"], model),
        "toolUse" => {
            counts.tool_blocks = true;
            if role != "assistant" {
                return Err(invalid(format!(
                    "{at}: toolUse blocks are only allowed in assistant messages"
                )));
            }
            let t = &b["toolUse"];
            check_id(at, &t["toolUseId"])?;
            let name = t["name"].as_str().unwrap_or("");
            if !word_id(name, 64) {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{name}' at '{at}.member.toolUse.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
                )));
            }
            if !t["input"].is_object() {
                return Err(invalid(format!("{at}.toolUse.input must be a JSON object")));
            }
            Ok(())
        }
        "toolResult" => {
            counts.tool_blocks = true;
            if role != "user" {
                return Err(invalid(format!(
                    "{at}: toolResult blocks are only allowed in user messages"
                )));
            }
            check_tool_result(at, &b["toolResult"], model, counts)
        }
        "reasoningContent" => {
            if role != "assistant" {
                return Err(invalid(format!(
                    "{at}: reasoningContent blocks are only allowed in assistant messages"
                )));
            }
            if !claude(model) && !b["reasoningContent"]["reasoningText"]["signature"].is_null() {
                return Err(invalid(format!(
                    "{at}: this model does not take signed reasoning content"
                )));
            }
            Ok(())
        }
        other => Err(invalid(format!(
            "{at}: the gateway never sends `{other}` blocks"
        ))),
    }
}

fn check_text(at: &str, t: &Value) -> Result<(), Refusal> {
    match t.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(()),
        _ => Err(invalid(format!(
            "The text field in the ContentBlock object at {at} is blank. Add text to the text field, and try again."
        ))),
    }
}

fn check_id(at: &str, id: &Value) -> Result<(), Refusal> {
    let id = id.as_str().unwrap_or("");
    if word_id(id, 64) {
        return Ok(());
    }
    Err(invalid(format!(
        "1 validation error detected: Value '{id}' at '{at}.member.toolUseId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+ and length less than or equal to 64"
    )))
}

/// The decoded size of valid base64.
fn decoded(data: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_or(0, |b| b.len())
}

fn check_image(at: &str, img: &Value, counts: &mut Counts) -> Result<(), Refusal> {
    counts.images += 1;
    if counts.images > 20 {
        return Err(invalid(
            "Too many images: a request may hold at most 20 images.",
        ));
    }
    let format = img["format"].as_str().unwrap_or("");
    if !IMAGE_FORMATS.contains(&format) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{format}' at '{at}.member.image.format' failed to satisfy constraint: Member must satisfy enum value set: [gif, jpeg, png, webp]"
        )));
    }
    let bytes = img["source"]["bytes"].as_str().unwrap_or("");
    if !base64_ok(bytes) {
        return Err(invalid(format!(
            "{at}.image.source.bytes: Invalid base64 encoded bytes"
        )));
    }
    if decoded(bytes) > IMAGE_MAX_BYTES {
        return Err(invalid(format!("{at}: image exceeds 3.75 MB maximum")));
    }
    Ok(())
}

/// Letters, digits, single whitespace characters, hyphens, parentheses, square brackets.
fn document_name_ok(name: &str) -> bool {
    let ok = |c: char| {
        c.is_alphanumeric() || c.is_whitespace() || matches!(c, '-' | '(' | ')' | '[' | ']')
    };
    (1..=200).contains(&chars(name))
        && name.chars().all(ok)
        && !name
            .chars()
            .zip(name.chars().skip(1))
            .any(|(a, b)| a.is_whitespace() && b.is_whitespace())
}

fn check_document(at: &str, doc: &Value, counts: &mut Counts) -> Result<(), Refusal> {
    counts.documents += 1;
    if counts.documents > 5 {
        return Err(invalid(
            "Too many documents: a request may hold at most 5 documents.",
        ));
    }
    let format = doc["format"].as_str().unwrap_or("");
    if !DOCUMENT_FORMATS.contains(&format) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{format}' at '{at}.member.document.format' failed to satisfy constraint: Member must satisfy enum value set: [pdf, csv, doc, docx, xls, xlsx, html, txt, md]"
        )));
    }
    let name = doc["name"].as_str().unwrap_or("");
    if !document_name_ok(name) {
        return Err(invalid(format!(
            "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets. The name can't contain more than one consecutive whitespace character. ({at}.document.name)"
        )));
    }
    let bytes = doc["source"]["bytes"].as_str().unwrap_or("");
    if !base64_ok(bytes) {
        return Err(invalid(format!(
            "{at}.document.source.bytes: Invalid base64 encoded bytes"
        )));
    }
    if decoded(bytes) > DOCUMENT_MAX_BYTES {
        return Err(invalid(format!("{at}: document exceeds 4.5 MB maximum")));
    }
    Ok(())
}

fn check_cache_point(at: &str, c: &Value, model: &str) -> Result<(), Refusal> {
    if c["type"] != "default" {
        return Err(invalid(format!("{at}.cachePoint.type must be default")));
    }
    if !nova(model) && !claude(model) {
        return Err(invalid(
            "You invoked an unsupported model or your request did not allow prompt caching. See the documentation for more information.",
        ));
    }
    Ok(())
}

fn check_tool_result(at: &str, r: &Value, model: &str, counts: &mut Counts) -> Result<(), Refusal> {
    check_id(at, &r["toolUseId"])?;
    let content = r["content"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid(format!("{at}.toolResult.content must not be empty")))?;
    for (k, c) in content.iter().enumerate() {
        let at = format!("{at}.toolResult.content.{k}");
        match one_member(&at, c, &["text", "json", "image", "document", "video"])? {
            "text" => check_text(&at, &c["text"])?,
            "json" if !c["json"].is_object() && !c["json"].is_array() => {
                return Err(invalid(format!("{at}.json must be a JSON object")))
            }
            "image" if !nova(model) && !claude(model) => {
                return Err(invalid(format!(
                    "This model doesn't support the image content block in tool results. ({at})"
                )))
            }
            "image" => check_image(&at, &c["image"], counts)?,
            "document" => check_document(&at, &c["document"], counts)?,
            _ => {}
        }
    }
    match r["status"].as_str() {
        None | Some("success" | "error") => Ok(()),
        Some(s) => Err(invalid(format!(
            "{at}.toolResult.status `{s}` is not success or error"
        ))),
    }
}

fn ids(m: &Value, member: &str) -> Vec<String> {
    m["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b[member]["toolUseId"].as_str().map(str::to_string))
        .collect()
}

/// The first message is the user's, roles alternate, and each assistant turn's tool uses
/// are answered in the next user turn, one result each.
fn check_turns(messages: &[Value]) -> Result<(), Refusal> {
    if messages[0]["role"] != "user" {
        return Err(invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        ));
    }
    for (i, m) in messages.iter().enumerate().skip(1) {
        if m["role"] == messages[i - 1]["role"] {
            return Err(invalid(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            ));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let results = ids(m, "toolResult");
        let uses = i
            .checked_sub(1)
            .map(|p| ids(&messages[p], "toolUse"))
            .unwrap_or_default();
        if results.len() > uses.len() || results.iter().any(|r| !uses.contains(r)) {
            return Err(invalid(format!(
                "The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of previous turn."
            )));
        }
        if m["role"] == "assistant" && !ids(m, "toolUse").is_empty() {
            let uses = ids(m, "toolUse");
            let answered = messages
                .get(i + 1)
                .map(|n| ids(n, "toolResult"))
                .unwrap_or_default();
            let missing: Vec<&String> = uses.iter().filter(|u| !answered.contains(u)).collect();
            // A last assistant turn with tool uses is a prefill: nothing to answer yet.
            if !missing.is_empty() && i + 1 < messages.len() {
                let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Err(invalid(format!(
                    "Expected toolResult blocks at messages.{}.content for the following Ids: {}",
                    i + 1,
                    list.join(", ")
                )));
            }
        }
    }
    Ok(())
}

fn check_system(v: &Value, model: &str) -> Result<(), Refusal> {
    let system = &v["system"];
    if system.is_null() {
        return Ok(());
    }
    let blocks = system
        .as_array()
        .ok_or_else(|| invalid("system must be a list of SystemContentBlock"))?;
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("system.{j}");
        match one_member(&at, b, &["text", "guardContent", "cachePoint"])? {
            "text" => check_text(&at, &b["text"])?,
            "cachePoint" => check_cache_point(&at, &b["cachePoint"], model)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_inference(c: &Value) -> Result<(), Refusal> {
    if c.is_null() {
        return Ok(());
    }
    let obj = c
        .as_object()
        .ok_or_else(|| invalid("inferenceConfig must be an object"))?;
    for k in obj.keys() {
        if !["maxTokens", "temperature", "topP", "stopSequences"].contains(&k.as_str()) {
            return Err(invalid(format!(
                "Malformed input request: extraneous key [{k}] is not permitted in inferenceConfig"
            )));
        }
    }
    let bad = |field: &str, constraint: &str| {
        invalid(format!(
            "1 validation error detected: Value at 'inferenceConfig.{field}' failed to satisfy constraint: {constraint}"
        ))
    };
    if !c["maxTokens"].is_null() && c["maxTokens"].as_u64().is_none_or(|n| n < 1) {
        return Err(bad(
            "maxTokens",
            "Member must have value greater than or equal to 1",
        ));
    }
    if !in_range(&c["temperature"], 0.0, 1.0) {
        return Err(bad(
            "temperature",
            "Member must have value less than or equal to 1",
        ));
    }
    if !in_range(&c["topP"], 0.0, 1.0) {
        return Err(bad(
            "topP",
            "Member must have value less than or equal to 1",
        ));
    }
    if let Some(stops) = c["stopSequences"].as_array() {
        if stops.len() > 2500 {
            return Err(bad(
                "stopSequences",
                "Member must have length less than or equal to 2500",
            ));
        }
        if stops.iter().any(|s| s.as_str().is_none_or(str::is_empty)) {
            return Err(bad(
                "stopSequences",
                "Member must have length greater than or equal to 1",
            ));
        }
    }
    Ok(())
}

fn check_tools(v: &Value, model: &str, tool_blocks: bool) -> Result<(), Refusal> {
    let config = &v["toolConfig"];
    if config.is_null() {
        if tool_blocks {
            return Err(invalid(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
            ));
        }
        return Ok(());
    }
    let tools = config["tools"]
        .as_array()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("toolConfig.tools must not be empty"))?;
    let mut names: Vec<&str> = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let at = format!("toolConfig.tools.{i}");
        match one_member(&at, t, &["toolSpec", "cachePoint", "systemTool"])? {
            "toolSpec" => {}
            "cachePoint" if claude(model) => continue,
            _ => {
                return Err(invalid(format!(
                    "{at}: this model does not take this tool member"
                )))
            }
        }
        let spec = &t["toolSpec"];
        let name = spec["name"].as_str().unwrap_or("");
        if !word_id(name, 64) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{name}' at '{at}.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
            )));
        }
        if names.contains(&name) {
            return Err(invalid(format!(
                "The toolConfig field contains duplicate tool names: {name}"
            )));
        }
        names.push(name);
        if spec["description"].as_str().is_some_and(str::is_empty) {
            return Err(invalid(format!(
                "1 validation error detected: Value '' at '{at}.member.toolSpec.description' failed to satisfy constraint: Member must have length greater than or equal to 1"
            )));
        }
        if !spec["inputSchema"]["json"].is_object() {
            return Err(invalid(format!(
                "{at}.toolSpec.inputSchema.json must be a JSON object"
            )));
        }
    }
    let choice = &config["toolChoice"];
    if choice.is_null() {
        return Ok(());
    }
    let forced_ok = claude(model) || nova(model) || model.contains("mistral.mistral-large");
    match one_member("toolConfig.toolChoice", choice, &["auto", "any", "tool"])? {
        "auto" => Ok(()),
        member if !forced_ok => Err(invalid(format!(
            "This model doesn't support the toolConfig.toolChoice.{member} field. Remove toolConfig.toolChoice.{member} and try again."
        ))),
        "any" => Ok(()),
        _ => {
            let name = choice["tool"]["name"].as_str().unwrap_or("");
            if names.contains(&name) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "The tool {name} in toolConfig.toolChoice is not defined in toolConfig.tools."
                )))
            }
        }
    }
}

fn check_additional(fields: &Value, model: &str) -> Result<(), Refusal> {
    let Some(obj) = fields.as_object() else {
        return Ok(());
    };
    for (k, r) in obj {
        if k != "reasoningConfig" || !model.contains("amazon.nova-2") {
            return Err(invalid(format!(
                "The model returned the following errors: Malformed input request: extraneous key [{k}] is not permitted, please reformat your input and try again."
            )));
        }
        if !matches!(r["type"].as_str(), Some("enabled" | "disabled")) {
            return Err(invalid("reasoningConfig.type must be enabled or disabled"));
        }
        if !r["maxReasoningEffort"].is_null()
            && !matches!(
                r["maxReasoningEffort"].as_str(),
                Some("low" | "medium" | "high")
            )
        {
            return Err(invalid(
                "reasoningConfig.maxReasoningEffort must be low, medium or high",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOVA: &str = "amazon.nova-pro-v1:0";
    const LLAMA: &str = "meta.llama3-1-70b-instruct-v1:0";

    fn ok() -> Value {
        json!({"messages":[
            {"role":"user","content":[{"text":"hi"},
                {"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},
                {"document":{"format":"pdf","name":"Report (Q3) [final]","source":{"bytes":"JVBERi0="}}}]},
            {"role":"assistant","content":[
                {"toolUse":{"toolUseId":"tooluse_1","name":"f","input":{}}},
                {"toolUse":{"toolUseId":"call_2","name":"g","input":{"a":1}}}]},
            {"role":"user","content":[
                {"toolResult":{"toolUseId":"tooluse_1","content":[{"text":"r"}]}},
                {"toolResult":{"toolUseId":"call_2","content":[{"json":{"r":2}}],"status":"success"}},
                {"text":"and?"}]}],
            "system":[{"text":"be brief"},{"cachePoint":{"type":"default"}}],
            "toolConfig":{"tools":[
                {"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}},
                {"toolSpec":{"name":"g","description":"G","inputSchema":{"json":{"type":"object"}}}}],
                "toolChoice":{"tool":{"name":"g"}}},
            "inferenceConfig":{"maxTokens":10,"temperature":0.5,"topP":1,"stopSequences":["x"]}})
    }

    fn refused_saying(body: Value, model: &str, words: &str) {
        let r = check(&body, model).expect_err("refused");
        assert!(r.message.contains(words), "{r:?}");
        assert_eq!((r.status, r.kind), (400, "ValidationException"));
    }

    #[test]
    fn a_tool_loop_with_media_and_a_cache_point_passes() {
        check(&ok(), NOVA).unwrap();
    }

    #[test]
    fn unknown_fields_and_roles() {
        let mut b = ok();
        b["model"] = json!("x");
        refused_saying(b, NOVA, "extraneous key [model]");
        let mut b = ok();
        b["messages"][0]["role"] = json!("system");
        refused_saying(b, NOVA, "enum value set");
        let mut b = ok();
        b["messages"].as_array_mut().unwrap().remove(0);
        refused_saying(b, NOVA, "must start with a user message");
        let mut b = ok();
        b["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role":"user","content":[{"text":"x"}]}));
        refused_saying(b, NOVA, "must alternate");
        let mut b = ok();
        b["messages"][0]["content"] = json!([]);
        refused_saying(b, NOVA, "is empty");
    }

    #[test]
    fn blocks_texts_and_media() {
        let mut b = ok();
        b["messages"][0]["content"][0] = json!({"text":"  "});
        refused_saying(b, NOVA, "is blank");
        let mut b = ok();
        b["messages"][0]["content"][0] = json!({"text":"a","image":{}});
        refused_saying(b, NOVA, "exactly one member");
        let mut b = ok();
        b["messages"][0]["content"][1]["image"]["format"] = json!("bmp");
        refused_saying(b, NOVA, "image.format");
        let mut b = ok();
        b["messages"][0]["content"][1]["image"]["source"]["bytes"] = json!("%%%");
        refused_saying(b, NOVA, "Invalid base64");
        let mut b = ok();
        b["messages"][0]["content"][2]["document"]["name"] = json!("a.pdf");
        refused_saying(b, NOVA, "document file name");
        let mut b = ok();
        b["messages"][0]["content"][2]["document"]["name"] = json!("a  b");
        refused_saying(b, NOVA, "document file name");
        let mut b = ok();
        let images: Vec<Value> = (0..21)
            .map(|_| json!({"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}))
            .collect();
        b["messages"][0]["content"] = json!(images);
        refused_saying(b, NOVA, "at most 20 images");
    }

    #[test]
    fn tool_uses_are_answered_one_result_each() {
        let mut b = ok();
        b["messages"][2]["content"]
            .as_array_mut()
            .unwrap()
            .remove(1);
        refused_saying(
            b,
            NOVA,
            "Expected toolResult blocks at messages.2.content for the following Ids: call_2",
        );
        let mut b = ok();
        b["messages"][2]["content"]
            .as_array_mut()
            .unwrap()
            .push(json!({"toolResult":{"toolUseId":"other","content":[{"text":"r"}]}}));
        refused_saying(b, NOVA, "exceeds the number of toolUse blocks");
        let mut b = ok();
        b["messages"][1]["content"][0]["toolUse"]["toolUseId"] = json!("functions.f:0");
        refused_saying(b, NOVA, "toolUseId");
        let mut b = ok();
        b.as_object_mut().unwrap().remove("toolConfig");
        refused_saying(b, NOVA, "toolConfig field must be defined");
        let mut b = ok();
        b["messages"][2]["content"][0]["toolResult"]["content"] = json!([]);
        refused_saying(b, NOVA, "must not be empty");
        let mut b = ok();
        b["messages"][2]["content"][0]["toolResult"]["content"] =
            json!([{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}]);
        check(&b, NOVA).unwrap();
        b["system"] = json!([{"text":"s"}]);
        b["toolConfig"]["toolChoice"] = json!({"auto":{}});
        refused_saying(b, LLAMA, "image content block in tool results");
    }

    #[test]
    fn cache_points_tool_choice_inference_and_reasoning() {
        refused_saying(ok(), LLAMA, "did not allow prompt caching");
        let mut b = ok();
        b["system"] = json!([{"text":"s"}]);
        refused_saying(b.clone(), LLAMA, "toolChoice.tool");
        b["toolConfig"]["toolChoice"] = json!({"any":{}});
        refused_saying(b.clone(), LLAMA, "toolChoice.any");
        b["toolConfig"]["toolChoice"] = json!({"auto":{}});
        check(&b, LLAMA).unwrap();
        let mut b = ok();
        b["toolConfig"]["toolChoice"] = json!({"tool":{"name":"h"}});
        refused_saying(b, NOVA, "not defined");
        let mut b = ok();
        b["toolConfig"]["tools"][0]["toolSpec"]["name"] = json!("a.b");
        refused_saying(b, NOVA, "regular expression pattern");
        let mut b = ok();
        b["toolConfig"]["tools"][1]["toolSpec"]["description"] = json!("");
        refused_saying(b, NOVA, "greater than or equal to 1");
        for (k, v, words) in [
            ("temperature", json!(1.5), "temperature"),
            ("topP", json!(-1), "topP"),
            ("maxTokens", json!(0), "maxTokens"),
            ("stopSequences", json!([""]), "stopSequences"),
            ("topK", json!(5), "extraneous key [topK]"),
        ] {
            let mut b = ok();
            b["inferenceConfig"][k] = v;
            refused_saying(b, NOVA, words);
        }
        let mut b = ok();
        b["outputConfig"] = json!({"textFormat":{"type":"json_schema","structure":{"jsonSchema":{"schema":{"type":"object"}}}}});
        refused_saying(b.clone(), NOVA, "JSON schema in a string");
        b["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"] =
            json!("{\"type\":\"object\"}");
        check(&b, NOVA).unwrap();
        let mut b = ok();
        b["additionalModelRequestFields"] =
            json!({"reasoningConfig":{"type":"enabled","maxReasoningEffort":"low"}});
        refused_saying(b.clone(), NOVA, "extraneous key [reasoningConfig]");
        check(&b, "us.amazon.nova-2-lite-v1:0").unwrap();
        b["additionalModelRequestFields"]["reasoningConfig"]["maxReasoningEffort"] = json!("max");
        refused_saying(b, "us.amazon.nova-2-lite-v1:0", "maxReasoningEffort");
        let mut b = ok();
        b["messages"][1]["content"].as_array_mut().unwrap().insert(
            0,
            json!({"reasoningContent":{"reasoningText":{"text":"t","signature":"EqQB"}}}),
        );
        refused_saying(b, NOVA, "signed reasoning");
    }
}
