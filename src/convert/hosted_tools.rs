//! The Responses door's tools that are not plain functions, on translated routes (the chat
//! pivot has only function tools, and `web_search_options`):
//!
//! - **`namespace` tools** (`{"type":"namespace","name","description","tools":[function…]}`,
//!   Codex CLI groups its sub-agent and MCP tools so; OpenAI API reference, "Create a model
//!   response", `tools` → Namespace) are carried as function tools whose names join the
//!   namespace and the function ([`flat_name`]). A `function_call` the model makes by such a name
//!   goes back to the client as the namespace's own (`name` the function's, `namespace` the
//!   group's: OpenAI API reference, the `function_call` output item's `namespace`), by the
//!   names the request offered ([`Namespaced`]); a replayed `function_call` with a `namespace`
//!   is flattened the same way.
//! - **Hosted tools** the vendor runs itself. `web_search` (and its `web_search_preview`
//!   versions) becomes the pivot's `web_search_options`, which each vendor leg maps to the
//!   vendor's own search ([`anthropic_web_search`], [`gemini_google_search`]) or leaves out.
//!   Every other hosted type (`file_search`, `code_interpreter`, `image_generation`,
//!   `local_shell`, `computer_use_preview`, `mcp`, …, and any type not known yet) is left out of
//!   the offer and noted as `tools.<type>` ([`left_out`]): an offered tool the model never gets
//!   does not change what the request means, so this is an adjustment, not a 400.
//!
//! Names: the flattened name satisfies every vendor's function-name rule at once: OpenAI
//! `^[a-zA-Z0-9_-]{1,64}$` (API reference, Chat Completions `tools[].function.name`), Anthropic
//! `^[a-zA-Z0-9_-]{1,64}$` (Messages API reference, `tools[].name`; "Define tools"), Gemini
//! "must start with a letter or an underscore; a-z, A-Z, 0-9, underscores, dots and dashes,
//! at most 64" (API reference, `FunctionDeclaration.name`).

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::dialect::adjusted::Adjustments;
use crate::dialect::Dialect;

/// What joins a namespace and its function's name in a flattened name.
pub const SEPARATOR: &str = "__";

/// The longest function name every vendor takes (OpenAI, Anthropic and Gemini: 64).
pub const MAX_NAME: usize = 64;

/// Whether `name` satisfies every vendor's function-name rule (see the module doc).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The function name a namespace's function goes by on a translated route:
/// `<namespace>__<name>` when that is a valid name (see [`valid_name`]); otherwise its
/// characters outside `[a-zA-Z0-9_-]` made `_`, a leading `_` if it does not start with a
/// letter, cut to 51 characters, then `_` and the first 12 hex digits of the SHA-256 of
/// `<namespace>__<name>` (stable: the same pair always gets the same name).
pub fn flat_name(namespace: &str, name: &str) -> String {
    let joined = format!("{namespace}{SEPARATOR}{name}");
    if valid_name(&joined) {
        return joined;
    }
    let mut clean: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !clean.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        clean.insert(0, '_');
    }
    clean.truncate(MAX_NAME - 13);
    let digest = hex::encode(Sha256::digest(joined.as_bytes()));
    format!("{clean}_{}", &digest[..12])
}

/// The flattened names of a request's namespace tools: flattened name → (namespace, name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaced(HashMap<String, (String, String)>);

impl Namespaced {
    /// The namespace tools a Responses request body offers (empty when it offers none or is
    /// not readable: the answer then names calls as the vendor did).
    pub fn of_request(body: &[u8]) -> Namespaced {
        if memchr::memmem::find(body, b"\"namespace\"").is_none() {
            return Namespaced::default();
        }
        #[derive(Deserialize)]
        struct Tools {
            #[serde(default)]
            tools: Vec<Value>,
        }
        let Ok(req) = serde_json::from_slice::<Tools>(body) else {
            return Namespaced::default();
        };
        let mut names = HashMap::new();
        for group in req.tools.iter().filter(|t| t["type"] == "namespace") {
            let Some(namespace) = group["name"].as_str() else {
                continue;
            };
            for tool in group["tools"].as_array().into_iter().flatten() {
                if let Some(name) = tool["name"].as_str() {
                    names.insert(
                        flat_name(namespace, name),
                        (namespace.to_string(), name.to_string()),
                    );
                }
            }
        }
        Namespaced(names)
    }

    /// The (namespace, name) a flattened name stands for; `None` for any other name.
    pub fn lookup(&self, flat: &str) -> Option<(&str, &str)> {
        self.0
            .get(flat)
            .map(|(namespace, name)| (namespace.as_str(), name.as_str()))
    }
}

/// A `namespace` tool's function tools, as chat function tools with flattened names; each
/// description starts with the namespace's own (`<namespace>: <its description>`), so that
/// the model still reads what the group is for. Tools of a namespace that are not functions
/// are left out and noted (as `tools.namespace`).
pub fn namespace_to_chat(
    i: usize,
    group: &Value,
    out: &mut Vec<Value>,
    adjusted: &mut Adjustments,
) -> Result<(), String> {
    let namespace = group["name"]
        .as_str()
        .ok_or_else(|| format!("`tools[{i}].name` is required for a `namespace` tool"))?;
    let tools = group["tools"]
        .as_array()
        .ok_or_else(|| format!("`tools[{i}].tools` must be an array of function tools"))?;
    let about = group["description"].as_str().unwrap_or_default();
    for (j, tool) in tools.iter().enumerate() {
        if tool["type"] != "function" {
            adjusted.note("tools.namespace");
            continue;
        }
        let name = tool["name"]
            .as_str()
            .ok_or_else(|| format!("`tools[{i}].tools[{j}].name` is required"))?;
        let mut function = Map::new();
        function.insert("name".into(), json!(flat_name(namespace, name)));
        let own = tool["description"].as_str().unwrap_or_default();
        let description = match (about.is_empty(), own.is_empty()) {
            (true, _) => own.to_string(),
            (false, true) => format!("{namespace}: {about}"),
            (false, false) => format!("{namespace}: {about}\n\n{own}"),
        };
        if !description.is_empty() {
            function.insert("description".into(), json!(description));
        }
        for key in ["parameters", "strict"] {
            if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                function.insert(key.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(())
}

/// Whether a Responses tool type is OpenAI's hosted web search (`web_search`,
/// `web_search_2025_08_26`, `web_search_preview`, `web_search_preview_2025_03_11`; OpenAI API
/// reference, "Create a model response", `tools`).
pub fn is_web_search(kind: &str) -> bool {
    kind == "web_search" || kind.starts_with("web_search_")
}

/// A hosted web search tool as the chat pivot's `web_search_options` (OpenAI API reference,
/// Chat Completions `web_search_options`: `search_context_size`, `user_location` as
/// `{"type":"approximate","approximate":{city, country, region, timezone}}`).
pub fn web_search_options(tool: &Value) -> Value {
    let mut options = Map::new();
    if let Some(size) = tool.get("search_context_size").filter(|v| v.is_string()) {
        options.insert("search_context_size".into(), size.clone());
    }
    if let Some(location) = tool.get("user_location").filter(|v| v.is_object()) {
        let mut approximate = Map::new();
        for key in ["city", "country", "region", "timezone"] {
            if let Some(v) = location.get(key).filter(|v| v.is_string()) {
                approximate.insert(key.into(), v.clone());
            }
        }
        options.insert(
            "user_location".into(),
            json!({"type": "approximate", "approximate": approximate}),
        );
    }
    Value::Object(options)
}

/// The adjustment that names a hosted tool type left out of the offer: `tools.<type>` for the
/// types OpenAI documents, `tools.other` for any other.
pub fn left_out(kind: &str) -> &'static str {
    match kind {
        k if is_web_search(k) => "tools.web_search",
        "file_search" => "tools.file_search",
        "code_interpreter" => "tools.code_interpreter",
        "image_generation" => "tools.image_generation",
        "local_shell" => "tools.local_shell",
        "shell" => "tools.shell",
        "apply_patch" => "tools.apply_patch",
        "computer_use_preview" | "computer_use" | "computer" => "tools.computer_use_preview",
        "mcp" => "tools.mcp",
        "custom" => "tools.custom",
        "tool_search" => "tools.tool_search",
        _ => "tools.other",
    }
}

/// Anthropic's server-side web search tool for the pivot's `web_search_options`: the basic
/// `web_search_20250305` version, the one every Claude model and platform with web search
/// takes (Anthropic docs, "Web search tool": versions `web_search_20250305`,
/// `web_search_20260209` with dynamic filtering on 4.6+ models only, `web_search_20260318`).
/// The user's location goes as its `user_location` (`{"type":"approximate", city, region,
/// country, timezone}`).
pub fn anthropic_web_search(options: &Value) -> Value {
    let mut tool = json!({"type": "web_search_20250305", "name": "web_search"});
    if let Some(at) = options
        .pointer("/user_location/approximate")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    {
        let mut location = at.clone();
        location["type"] = json!("approximate");
        tool["user_location"] = location;
    }
    tool
}

/// Gemini's Google Search grounding tool (Gemini API, "Grounding with Google Search": a
/// `{"google_search": {}}` tool).
pub fn gemini_google_search() -> Value {
    json!({"google_search": {}})
}

/// Whether a chat body may carry `web_search_options` (a byte search: the field is then
/// looked up in the parsed view).
pub fn offers_web_search(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"web_search_options\"").is_some()
}

/// The adjustment that names a hosted web search left out (`tools[].web_search` at the
/// Responses door, `web_search_options` at the chat door).
pub const WEB_SEARCH: &str = "tools.web_search";

/// The vendor leg of the pivot's `web_search_options` (`options`), on the vendor's request
/// `body`: Anthropic gets its web search server tool, unless a client function is already
/// named `web_search` (tool names must be unique: Anthropic, "Define tools"); Gemini gets
/// Google Search when no function is offered beside it (a built-in tool with function
/// calling needs `include_server_side_tool_invocations` and a Gemini 3 model: Gemini API,
/// "Combine built-in tools and function calling"). Otherwise the search is left out and
/// noted as [`WEB_SEARCH`].
pub fn vendor_web_search(
    vendor: Dialect,
    body: Bytes,
    options: &Value,
    adjusted: &mut Adjustments,
) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        adjusted.note(WEB_SEARCH);
        return body;
    };
    let tools = v.get("tools").and_then(Value::as_array);
    let tool = match vendor {
        Dialect::Messages
            if !tools
                .into_iter()
                .flatten()
                .any(|t| t["name"] == "web_search") =>
        {
            anthropic_web_search(options)
        }
        Dialect::Gemini if tools.is_none_or(Vec::is_empty) => gemini_google_search(),
        _ => {
            adjusted.note(WEB_SEARCH);
            return body;
        }
    };
    add_tool(&mut v, tool);
    serde_json::to_vec(&v).map_or(body, Bytes::from)
}

/// Adds `tool` to the `tools` array of a vendor request (made if absent).
fn add_tool(v: &mut Map<String, Value>, tool: Value) {
    match v.get_mut("tools").and_then(Value::as_array_mut) {
        Some(tools) => tools.push(tool),
        None => {
            v.insert("tools".into(), json!([tool]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_names_are_valid_for_every_vendor_and_stable() {
        assert_eq!(
            flat_name("multi_agent_v1", "spawn_agent"),
            "multi_agent_v1__spawn_agent"
        );
        let long = flat_name(&"n".repeat(60), "tool");
        assert!(valid_name(&long) && long.len() == MAX_NAME, "{long}");
        assert_eq!(long, flat_name(&"n".repeat(60), "tool"));
        assert_ne!(long, flat_name(&"n".repeat(60), "tool2"));
        let odd = flat_name("mcp.server/x", "9 lives");
        assert!(valid_name(&odd), "{odd}");
        assert!(odd.starts_with("mcp_server_x__9_lives_"), "{odd}");
        let digit = flat_name("1ns", "f");
        assert!(
            valid_name(&digit) && digit.starts_with("_1ns__f_"),
            "{digit}"
        );
        for bad in ["", "9a", "a.b", "a b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn namespaced_names_map_back() {
        let body = br#"{"model":"m","tools":[{"type":"function","name":"plain"},
            {"type":"namespace","name":"multi_agent_v1","description":"Agents.",
             "tools":[{"type":"function","name":"spawn_agent"},{"type":"function","name":"wait_agent"}]}]}"#;
        let names = Namespaced::of_request(body);
        assert_eq!(
            names.lookup("multi_agent_v1__wait_agent"),
            Some(("multi_agent_v1", "wait_agent"))
        );
        assert_eq!(names.lookup("plain"), None);
        assert_eq!(
            Namespaced::of_request(br#"{"tools":[]}"#),
            Namespaced::default()
        );
        assert_eq!(
            Namespaced::of_request(b"not json \"namespace\""),
            Namespaced::default()
        );
    }

    #[test]
    fn namespace_tools_become_functions_with_the_group_named() {
        let group = json!({"type":"namespace","name":"ns","description":"Group.",
            "tools":[{"type":"function","name":"f","description":"Does f.",
                      "parameters":{"type":"object"},"strict":false},
                     {"type":"custom","name":"g"}]});
        let (mut out, mut adjusted) = (Vec::new(), Adjustments::default());
        namespace_to_chat(3, &group, &mut out, &mut adjusted).unwrap();
        assert_eq!(
            out,
            vec![json!({"type":"function","function":{"name":"ns__f",
                "description":"ns: Group.\n\nDoes f.","parameters":{"type":"object"},"strict":false}})]
        );
        assert_eq!(adjusted.as_slice(), ["tools.namespace"]);
        let e = namespace_to_chat(3, &json!({"type":"namespace"}), &mut out, &mut adjusted)
            .unwrap_err();
        assert!(e.contains("tools[3].name"), "{e}");
    }

    #[test]
    fn hosted_types_are_named_and_mapped() {
        assert_eq!(left_out("web_search_preview"), "tools.web_search");
        assert_eq!(left_out("file_search"), "tools.file_search");
        assert_eq!(left_out("brand_new_tool"), "tools.other");
        assert!(is_web_search("web_search_preview_2025_03_11") && !is_web_search("websearch"));
        let options = web_search_options(&json!({"type":"web_search","search_context_size":"low",
            "user_location":{"type":"approximate","city":"Paris","country":"FR","junk":1}}));
        assert_eq!(
            options,
            json!({"search_context_size":"low",
                   "user_location":{"type":"approximate","approximate":{"city":"Paris","country":"FR"}}})
        );
        assert_eq!(
            anthropic_web_search(&options),
            json!({"type":"web_search_20250305","name":"web_search",
                   "user_location":{"type":"approximate","city":"Paris","country":"FR"}})
        );
        assert_eq!(
            anthropic_web_search(&json!({})),
            json!({"type":"web_search_20250305","name":"web_search"})
        );
    }

    fn leg(vendor: Dialect, body: &str) -> (Value, Adjustments) {
        let mut adjusted = Adjustments::default();
        let out = vendor_web_search(
            vendor,
            Bytes::from(body.to_string()),
            &json!({}),
            &mut adjusted,
        );
        (serde_json::from_slice(&out).unwrap(), adjusted)
    }

    #[test]
    fn each_vendor_gets_its_own_search_or_a_note() {
        let (v, a) = leg(Dialect::Messages, r#"{"tools":[{"name":"f"}]}"#);
        assert_eq!(
            v["tools"],
            json!([{"name":"f"},{"type":"web_search_20250305","name":"web_search"}])
        );
        assert!(a.is_empty());
        let (v, a) = leg(Dialect::Messages, r#"{"tools":[{"name":"web_search"}]}"#);
        assert_eq!(v["tools"], json!([{"name":"web_search"}]));
        assert_eq!(a.as_slice(), [WEB_SEARCH]);
        let (v, a) = leg(Dialect::Gemini, r#"{"contents":[]}"#);
        assert_eq!(v["tools"], json!([{"google_search":{}}]));
        assert!(a.is_empty());
        let (v, a) = leg(
            Dialect::Gemini,
            r#"{"tools":[{"functionDeclarations":[]}]}"#,
        );
        assert_eq!(v["tools"], json!([{"functionDeclarations":[]}]));
        assert_eq!(a.as_slice(), [WEB_SEARCH]);
        let (_, a) = leg(Dialect::Chat, r#"{}"#);
        assert_eq!(a.as_slice(), [WEB_SEARCH]);
    }
}
