//! The Gemini front door (`POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent`) on routes whose vendor speaks another dialect: a
//! `GenerateContentRequest` becomes a chat request (the pivot, which goes on to the vendor's
//! leg), and the chat answer or stream becomes a `GenerateContentResponse` or Google's
//! stream of them (`alt=sse` framing; the door re-frames for the JSON-array framing). The
//! reverse of [`super::chat_to_gemini`]. The door's rules, each with its Google doc, are
//! [`crate::contract::gemini_door`]. Google's reference: "Generating content", "Function
//! calling", "Thought signatures", `GenerationConfig`.
//!
//! Both spellings of proto3 JSON are read (`inlineData` and `inline_data`, …: the SDKs send
//! some nested fields in snake_case), and `bytes` in standard or URL-safe base64 (made
//! standard in the pivot).
//!
//! Request mapping ([`request`]): `systemInstruction` (its text parts, or a string) → a
//! leading `system` message; `contents[]` role `user` → `user` messages (`text` → text parts;
//! `inlineData` image/* → `image_url` with a `data:` URL, audio/wav and audio/mp3 →
//! `input_audio`, any other medium → a `file` part with a `data:` URL; `fileData` → an
//! `image_url` for an image by http(s) URL, any other URI a 400 naming the part), its
//! `functionResponse` parts → `tool` messages first (the `response` object's JSON as text, its
//! inline parts as image parts), each paired with its call by `id`, or, without one, with the
//! first unanswered call of that name in the model turn before it (Google pairs them by name
//! and order); role `model` → an `assistant` message: its text parts joined, `functionCall` →
//! `tool_calls` (`args` → `arguments`; the call's `id`, or one minted from its place in the
//! history, `call_` + 24 hex digits, the same every time the history is sent), `thought` parts
//! with a `thoughtSignature` → `thinking_blocks` (a signed thought with text is Anthropic's
//! `thinking`, one without text its `redacted_thinking`), a call's `thoughtSignature` →
//! `thinking_blocks` `gemini:<call id>:<signature>` ([`super::vendor_state`]); each vendor leg
//! takes back its own and drops the others'. `tools[].functionDeclarations` → function tools
//! (`parametersJsonSchema` as it is; `parameters`, Google's OpenAPI subset, as JSON Schema:
//! `type` in lower case, `nullable` → a `null` type, int64 counts given as strings made
//! numbers, `propertyOrdering` and `example` left out); `googleSearch` → the pivot's
//! `web_search_options`; `toolConfig.functionCallingConfig` AUTO/VALIDATED → `auto`, NONE →
//! `none`, ANY → `required`, or the one function of `allowedFunctionNames` (several: only
//! those tools offered, `required`); `generationConfig`: `temperature`, `topP` → `top_p`,
//! `candidateCount` → `n`, `maxOutputTokens` → `max_completion_tokens`, `stopSequences` →
//! `stop`, `presencePenalty`, `frequencyPenalty`, `seed`, `responseLogprobs` → `logprobs`,
//! `logprobs` → `top_logprobs`, `responseMimeType` `application/json` (+ `responseJsonSchema`,
//! or `responseSchema` as JSON Schema) → `response_format` `json_schema` named `output` (or
//! `json_object`), `thinkingConfig` → `reasoning_effort`
//! ([`crate::contract::gemini_door::reasoning_effort`]). The model is the path's; `stream`
//! is the method's, with `stream_options.include_usage`.
//!
//! What it drops (noted in `x-switchyard-adjusted`): `safetySettings`, `generationConfig.topK`,
//! `labels`, `responseModalities`, `speechConfig`, `mediaResolution`, `imageConfig`, hosted
//! tools the pivot has no place for (`tools.codeExecution`, …), code execution parts of the
//! history; silently: `thinkingConfig.includeThoughts` (thoughts a vendor shows are shown),
//! unsigned `thought` parts, signatures on text parts, `videoMetadata`, and any field not
//! named here. Refused (400 naming the field): `cachedContent`, an empty `contents`, a role
//! other than `user`/`model`, a part of no known kind, a `fileData` the pivot cannot carry,
//! a `functionResponse` that answers no call, a `responseMimeType` other than JSON or text.
//!
//! Answers ([`answer`], [`Stream`]): each choice → a candidate (`index`) with
//! `content.role` `model` and its parts: the reasoning first (`thinking_blocks` with text →
//! `thought: true` parts with the signature as `thoughtSignature`, `redacted_thinking` → a
//! thought part with only its signature, `reasoning_content` → a thought part), the text
//! (or refusal), then each tool call as a `functionCall` part (`id`, `name`, `args` object; a
//! Gemini signature for it → the part's `thoughtSignature`). `finish_reason` stop → STOP,
//! length → MAX_TOKENS, tool_calls → STOP (Gemini has no tool finish reason), content_filter
//! → SAFETY, another → OTHER. Usage → `usageMetadata`: `promptTokenCount` (cached included),
//! `candidatesTokenCount` (output without reasoning), `thoughtsTokenCount`,
//! `cachedContentTokenCount`, `totalTokenCount`; the chat `id` → `responseId`, `model` →
//! `modelVersion`. A stream: one `data: {GenerateContentResponse}` event per chat chunk with
//! its text and thought deltas; tool calls whole (Gemini streams a call in one part), with
//! `finishReason` and `usageMetadata` on the last event; only the first choice is streamed.
//! Reasoning streamed as `reasoning_content` goes out as thought text parts, and the thinking
//! block that follows it (Anthropic's, whole) as a thought part with only its signature; a
//! request gathers a model turn's unsigned thought parts into the signed part that closes
//! them, so the block goes back whole (a whole answer's `reasoning_content` is left out when
//! its blocks carry the text).
//! An error chunk, or a stream cut before its end, → `data: {"error":{code,message,status}}`.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::accounting::usage::Usage;
use crate::contract::gemini_door as contract;
use crate::dialect::adjusted::Adjustments;
use crate::dialect::chat::wire::{
    ChunkErrorIn, CompletionIn, DeltaIn, FunctionName, ImageUrl, Str, StreamOptions, ThinkingBlock,
    ToolCallOut, ToolChoiceOut, ToolDeltaIn,
};
use crate::dialect::gemini::wire::{
    BlobIn, ContentIn, FunctionCallIn, FunctionDeclIn, FunctionResponseIn, GenerationConfigIn,
    PartIn, RequestIn, ToolConfigIn, ToolIn,
};
use crate::error::{printable, GatewayError};

use super::chunks::to_bytes;
use super::errors::unreadable;
use super::translate::{chat_event, ChatEvent, End, EventState, Translating};
use super::vendor_state;

const VENDOR: &str = "openai";

fn invalid(what: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest(what.into())
}

// ---------------------------------------------------------------------------------------------
// Request: Gemini in, the chat pivot out.

/// The chat pivot as this door writes it.
#[derive(Serialize)]
struct PivotOut<'a> {
    model: &'a str,
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<FormatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_search_options: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thinking_blocks: Vec<ThinkingBlock<'a>>,
}

impl<'a> MessageOut<'a> {
    fn new(role: &'static str, content: Option<ContentOut<'a>>) -> Self {
        MessageOut {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            thinking_blocks: Vec::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<PartOut<'a>>),
}

/// A chat content part: OpenAI's `text`, `image_url`, `input_audio` (`{data, format}`, wav or
/// mp3) and `file` (`{file_data: <data: URL>}`) parts.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartOut<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl<'a> },
    InputAudio { input_audio: AudioOut<'a> },
    File { file: FileOut },
}

#[derive(Serialize)]
struct AudioOut<'a> {
    data: Cow<'a, str>,
    format: &'static str,
}

#[derive(Serialize)]
struct FileOut {
    file_data: String,
}

#[derive(Serialize)]
struct ToolOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDefOut<'a>,
}

#[derive(Serialize)]
struct FunctionDefOut<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Schema<'a>>,
}

/// A schema: the client's JSON Schema as it is, or Google's OpenAPI subset made JSON Schema.
#[derive(Serialize)]
#[serde(untagged)]
enum Schema<'a> {
    Raw(&'a RawValue),
    Converted(Value),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FormatOut<'a> {
    JsonObject,
    JsonSchema { json_schema: NamedSchema<'a> },
}

#[derive(Serialize)]
struct NamedSchema<'a> {
    name: &'static str,
    schema: Schema<'a>,
}

/// A `GenerateContentRequest` (the client's bytes) as the chat pivot's body for `model` (the
/// path's), streamed when the method is `streamGenerateContent`; what the pivot leaves out is
/// in the [`Adjustments`]. Bad input is a 400 naming the field.
pub(crate) fn request(
    body: &[u8],
    model: &str,
    stream: bool,
) -> Result<(Bytes, Adjustments), GatewayError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(invalid(
            "the request body is not a GenerateContentRequest: a JSON object is expected",
        ));
    }
    let mut reader = serde_json::Deserializer::from_slice(body);
    let req: RequestIn<'_> = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match field.as_str() {
            "." | "" => invalid(format!(
                "the request body is not a GenerateContentRequest: {inner}"
            )),
            _ => invalid(format!("`{field}`: {inner}")),
        }
    })?;
    let mut adjusted = Adjustments::default();
    if req.cached_content.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(contract::refuse_cached_content());
    }
    if req.contents.is_empty() {
        return Err(invalid("`contents` must not be empty"));
    }
    if req.safety_settings.is_some_and(|s| s.get() != "null") {
        adjusted.note(contract::SAFETY_SETTINGS);
    }
    if req.labels.is_some_and(|s| s.get() != "null") {
        adjusted.note(contract::LABELS);
    }
    let mut messages = Vec::with_capacity(req.contents.len() + 1);
    if let Some(system) = system_text(req.system_instruction)? {
        messages.push(MessageOut::new("system", Some(ContentOut::Text(system))));
    }
    let mut pending = Vec::new();
    for (i, content) in req.contents.into_iter().enumerate() {
        convert_content(i, content, &mut pending, &mut messages, &mut adjusted)?;
    }
    let (mut tools, web_search) = convert_tools(req.tools, &mut adjusted)?;
    let tool_choice = match tools.is_empty() {
        true => None,
        false => convert_tool_config(req.tool_config, &mut tools)?,
    };
    let config = req.generation_config;
    let mut out = PivotOut {
        model,
        messages,
        max_completion_tokens: None,
        reasoning_effort: None,
        temperature: None,
        top_p: None,
        n: None,
        seed: None,
        presence_penalty: None,
        frequency_penalty: None,
        stop: Vec::new(),
        logprobs: None,
        top_logprobs: None,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        tools,
        tool_choice,
        response_format: None,
        web_search_options: web_search.then(Map::new),
    };
    if let Some(config) = config {
        generation_config(config, &mut out, &mut adjusted)?;
    }
    Ok((to_bytes(&out), adjusted))
}

/// `systemInstruction`: a `Content` whose text parts are joined, or a bare string.
fn system_text(raw: Option<&RawValue>) -> Result<Option<Cow<'_, str>>, GatewayError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    if raw.get().starts_with('"') {
        let text = serde_json::from_str::<Str<'_>>(raw.get())
            .map_err(|e| invalid(format!("`systemInstruction`: {e}")))?;
        return Ok((!text.0.is_empty()).then_some(text.0));
    }
    let content: ContentIn<'_> = serde_json::from_str(raw.get())
        .map_err(|e| invalid(format!("`systemInstruction` is not a Content: {e}")))?;
    let mut texts: Vec<Cow<'_, str>> = content.parts.into_iter().filter_map(|p| p.text).collect();
    Ok(match texts.len() {
        0 => None,
        1 => texts.pop(),
        _ => Some(Cow::Owned(texts.join("\n"))),
    })
}

/// A call of the model turn before, not yet answered: (pivot id, function name).
type Pending<'a> = Vec<(String, Cow<'a, str>)>;

/// One turn of `contents` (`contents[i]`) as chat messages.
fn convert_content<'a>(
    i: usize,
    content: ContentIn<'a>,
    pending: &mut Pending<'a>,
    out: &mut Vec<MessageOut<'a>>,
    adjusted: &mut Adjustments,
) -> Result<(), GatewayError> {
    match content.role.as_deref().unwrap_or("user") {
        "user" | "function" | "tool" => user_messages(i, content.parts, pending, out),
        "model" => {
            out.push(model_message(i, content.parts, pending, adjusted)?);
            Ok(())
        }
        other => Err(invalid(format!(
            "`contents[{i}].role` `{}` is not `user` or `model`",
            printable(other, 64)
        ))),
    }
}

/// A user turn: its function responses as `tool` messages first, then its other parts as one
/// user message.
fn user_messages<'a>(
    i: usize,
    parts: Vec<PartIn<'a>>,
    pending: &mut Pending<'a>,
    out: &mut Vec<MessageOut<'a>>,
) -> Result<(), GatewayError> {
    let mut content = Vec::new();
    for (j, p) in parts.into_iter().enumerate() {
        let at = format!("contents[{i}].parts[{j}]");
        if let Some(r) = p.function_response {
            out.push(tool_message(&at, r, pending)?);
        } else if let Some(text) = p.text {
            if p.thought != Some(true) && !text.is_empty() {
                content.push(PartOut::Text { text });
            }
        } else if let Some(blob) = p.inline_data {
            content.push(inline_part(&at, blob)?);
        } else if let Some(file) = p.file_data {
            let url = contract::image_by_uri(&at, file.mime_type.as_deref(), file.file_uri)?;
            content.push(PartOut::ImageUrl {
                image_url: ImageUrl { url },
            });
        } else if p.function_call.is_some() {
            return Err(invalid(format!(
                "`{at}.functionCall` belongs in a `model` turn"
            )));
        } else if p.executable_code.is_none() && p.code_execution_result.is_none() {
            return Err(invalid(format!(
                "`{at}` holds none of text, inlineData, fileData, functionResponse"
            )));
        }
    }
    let content = match content.len() {
        0 => return Ok(()),
        1 if matches!(content[0], PartOut::Text { .. }) => match content.pop() {
            Some(PartOut::Text { text }) => ContentOut::Text(text),
            _ => return Ok(()),
        },
        _ => ContentOut::Parts(content),
    };
    out.push(MessageOut::new("user", Some(content)));
    Ok(())
}

/// An `inlineData` part: an image, wav or mp3 audio, or any other medium as a file, each as
/// standard base64.
fn inline_part<'a>(at: &str, blob: BlobIn<'a>) -> Result<PartOut<'a>, GatewayError> {
    let data = base64_of(at, &blob)?;
    let mime = blob.mime_type.to_ascii_lowercase();
    if mime.is_empty() {
        return Err(invalid(format!("`{at}.inlineData.mimeType` is required")));
    }
    let audio = match mime.as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" => Some("wav"),
        "audio/mp3" | "audio/mpeg" => Some("mp3"),
        _ => None,
    };
    if let Some(format) = audio {
        return Ok(PartOut::InputAudio {
            input_audio: AudioOut { data, format },
        });
    }
    let url = format!("data:{};base64,{data}", blob.mime_type);
    if mime.starts_with("image/") {
        return Ok(PartOut::ImageUrl {
            image_url: ImageUrl {
                url: Cow::Owned(url),
            },
        });
    }
    Ok(PartOut::File {
        file: FileOut { file_data: url },
    })
}

/// A blob's data as standard base64, or a 400 naming it.
fn base64_of<'a>(at: &str, blob: &BlobIn<'a>) -> Result<Cow<'a, str>, GatewayError> {
    let bad = || invalid(format!("`{at}.inlineData.data` is not base64"));
    match &blob.data {
        Cow::Borrowed(d) => contract::standard_base64(d).ok_or_else(bad),
        Cow::Owned(d) => contract::standard_base64(d)
            .map(|c| Cow::Owned(c.into_owned()))
            .ok_or_else(bad),
    }
}

/// A signature (proto3 `bytes`) as standard base64; one that is no base64 is kept as sent (the
/// vendor that made it judges it).
fn signature_of(sig: &str) -> String {
    contract::standard_base64(sig).map_or_else(|| sig.to_string(), Cow::into_owned)
}

/// A `functionResponse` as a `tool` message, paired with its call (see the module doc).
fn tool_message<'a>(
    at: &str,
    r: FunctionResponseIn<'a>,
    pending: &mut Pending<'a>,
) -> Result<MessageOut<'a>, GatewayError> {
    let given =
        r.id.as_deref()
            .filter(|id| !id.is_empty())
            .map(vendor_state::client_call_id);
    let by_id = given
        .as_ref()
        .and_then(|id| pending.iter().position(|(p, _)| p == id));
    let id = match (by_id, given) {
        (Some(k), _) => pending.remove(k).0,
        // An id of no pending call: the call's id was left out (the client's, or minted), so
        // the name and order pair them; with no such call either, the id stands.
        (None, given) => match pending.iter().position(|(_, name)| *name == r.name) {
            Some(k) => pending.remove(k).0,
            None => given.ok_or_else(|| {
                invalid(format!(
                    "`{at}.functionResponse` (`{}`) answers no function call of the model turn before it",
                    printable(&r.name, 64)
                ))
            })?,
        },
    };
    let text = r
        .response
        .map_or(Cow::Borrowed("{}"), |v| Cow::Borrowed(v.get()));
    let mut images = Vec::new();
    for (k, p) in r.parts.into_iter().enumerate() {
        let Some(blob) = p.inline_data else { continue };
        images.push(inline_part(
            &format!("{at}.functionResponse.parts[{k}]"),
            blob,
        )?);
    }
    let content = match images.is_empty() {
        true => ContentOut::Text(text),
        false => {
            let mut parts = vec![PartOut::Text { text }];
            parts.extend(images);
            ContentOut::Parts(parts)
        }
    };
    Ok(MessageOut {
        tool_call_id: Some(Cow::Owned(id)),
        ..MessageOut::new("tool", Some(content))
    })
}

/// A model turn as an assistant message; its calls become the turn's pending calls.
fn model_message<'a>(
    i: usize,
    parts: Vec<PartIn<'a>>,
    pending: &mut Pending<'a>,
    adjusted: &mut Adjustments,
) -> Result<MessageOut<'a>, GatewayError> {
    pending.clear();
    let mut texts: Vec<Cow<'a, str>> = Vec::new();
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    // The text of unsigned thought parts since the last signed one: a streamed thought comes
    // as text parts, then a part with its signature.
    let mut thought = String::new();
    for (j, p) in parts.into_iter().enumerate() {
        if let Some(call) = p.function_call {
            let id = call_id(i, j, &call);
            if let Some(sig) = p.thought_signature.as_deref().filter(|s| !s.is_empty()) {
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking: Cow::Borrowed(""),
                    signature: Cow::Owned(vendor_state::wrap_gemini(&id, &signature_of(sig))),
                });
            }
            let arguments = call
                .args
                .map_or(Cow::Borrowed("{}"), |a| Cow::Borrowed(a.get()));
            tool_calls.push(ToolCallOut::new(id.clone(), call.name.clone(), arguments));
            pending.push((id, call.name));
        } else if p.thought == Some(true) {
            thought.push_str(p.text.as_deref().unwrap_or_default());
            let Some(sig) = p.thought_signature.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let signature = Cow::Owned(signature_of(sig));
            let text = std::mem::take(&mut thought);
            thinking_blocks.push(match text.is_empty() {
                false => ThinkingBlock::Thinking {
                    thinking: Cow::Owned(text),
                    signature,
                },
                true => ThinkingBlock::RedactedThinking { data: signature },
            });
        } else if let Some(text) = p.text {
            texts.push(text);
        } else if p.executable_code.is_some() || p.code_execution_result.is_some() {
            adjusted.note(contract::CODE_EXECUTION_PARTS);
        } else if p.inline_data.is_some() || p.file_data.is_some() {
            return Err(invalid(format!(
                "`contents[{i}].parts[{j}]`: media in a `model` turn cannot be carried to this route's provider"
            )));
        } else if p.function_response.is_some() {
            return Err(invalid(format!(
                "`contents[{i}].parts[{j}].functionResponse` belongs in a `user` turn"
            )));
        }
    }
    let content = match texts.len() {
        0 if !tool_calls.is_empty() => None,
        0 => Some(ContentOut::Text(Cow::Borrowed(""))),
        1 => texts.pop().map(ContentOut::Text),
        _ => Some(ContentOut::Text(Cow::Owned(texts.concat()))),
    };
    Ok(MessageOut {
        tool_calls,
        thinking_blocks,
        ..MessageOut::new("assistant", content)
    })
}

/// A call's id in the pivot: the client's (made short when another vendor would refuse it),
/// or one minted from its place in the history (stable: the same history, the same ids).
fn call_id(i: usize, j: usize, call: &FunctionCallIn<'_>) -> String {
    match call.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => vendor_state::client_call_id(id),
        None => vendor_state::short_call_id(&format!("gemini-door/{i}/{j}/{}", call.name)),
    }
}

/// The function tools, and whether Google Search was offered (the pivot's hosted web search).
fn convert_tools<'a>(
    tools: Vec<ToolIn<'a>>,
    adjusted: &mut Adjustments,
) -> Result<(Vec<ToolOut<'a>>, bool), GatewayError> {
    let mut out = Vec::new();
    let mut web_search = false;
    for (i, t) in tools.into_iter().enumerate() {
        web_search |= t.google_search.is_some() || t.google_search_retrieval.is_some();
        let hosted = [
            ("codeExecution", t.code_execution),
            ("urlContext", t.url_context),
            ("googleMaps", t.google_maps),
            ("fileSearch", t.file_search),
            ("computerUse", t.computer_use),
        ];
        for (name, given) in hosted {
            if given.is_some() {
                adjusted.note(contract::hosted_tool_adjustment(name));
            }
        }
        for (j, f) in t.function_declarations.into_iter().enumerate() {
            out.push(function_tool(i, j, f)?);
        }
    }
    Ok((out, web_search))
}

fn function_tool<'a>(
    i: usize,
    j: usize,
    f: FunctionDeclIn<'a>,
) -> Result<ToolOut<'a>, GatewayError> {
    if f.name.is_empty() {
        return Err(invalid(format!(
            "`tools[{i}].functionDeclarations[{j}].name` is required"
        )));
    }
    let parameters = match (f.parameters_json_schema, f.parameters) {
        (Some(raw), _) if raw.get() != "null" => Some(json_schema_as_is(raw)),
        (_, Some(raw)) if raw.get() != "null" => Some(Schema::Converted(openapi_schema(
            &format!("tools[{i}].functionDeclarations[{j}].parameters"),
            raw,
        )?)),
        _ => None,
    };
    Ok(ToolOut {
        kind: "function",
        function: FunctionDefOut {
            name: f.name,
            description: f.description,
            parameters,
        },
    })
}

/// A JSON Schema the client sent (`parametersJsonSchema`, `responseJsonSchema`): its bytes,
/// unless it names a type in Google's upper-case enum (`"type": "OBJECT"`), which the Gemini
/// API takes there and Gemini CLI sends (0.61.0, its model router's `responseJsonSchema`), but
/// JSON Schema does not (JSON Schema Validation §6.1.1: the type names are lower-case) and so
/// neither do the vendors behind the pivot: those are lower-cased, nothing else is changed.
fn json_schema_as_is(raw: &RawValue) -> Schema<'_> {
    const GOOGLE_TYPES: [&str; 7] = [
        "\"STRING\"",
        "\"NUMBER\"",
        "\"INTEGER\"",
        "\"BOOLEAN\"",
        "\"ARRAY\"",
        "\"OBJECT\"",
        "\"NULL\"",
    ];
    let text = raw.get();
    if !GOOGLE_TYPES.iter().any(|t| text.contains(t)) {
        return Schema::Raw(raw);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Schema::Converted(lower_type_names(v)),
        Err(_) => Schema::Raw(raw),
    }
}

/// `v` with every schema's `type` (a name or a list of names) in lower case, recursively
/// through subschemas; values (`enum`, `const`, `default`, `examples`) are data and kept.
fn lower_type_names(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, val)| {
                    let val = match k.as_str() {
                        "type" => match val {
                            Value::String(t) => Value::String(t.to_ascii_lowercase()),
                            Value::Array(a) => Value::Array(
                                a.into_iter()
                                    .map(|t| match t {
                                        Value::String(t) => Value::String(t.to_ascii_lowercase()),
                                        other => other,
                                    })
                                    .collect(),
                            ),
                            other => lower_type_names(other),
                        },
                        "enum" | "const" | "default" | "examples" | "example" => val,
                        _ => lower_type_names(val),
                    };
                    (k, val)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(lower_type_names).collect()),
        other => other,
    }
}

/// Google's OpenAPI-subset `Schema` (`at` names it) as JSON Schema.
fn openapi_schema(at: &str, raw: &RawValue) -> Result<Value, GatewayError> {
    let v: Value = serde_json::from_str(raw.get())
        .map_err(|e| invalid(format!("`{at}` is not a Schema: {e}")))?;
    Ok(json_schema(v))
}

/// One `Schema` object as JSON Schema (see the module doc), recursively.
fn json_schema(v: Value) -> Value {
    let Value::Object(m) = v else {
        return v;
    };
    let mut out = Map::new();
    let mut nullable = false;
    for (k, val) in m {
        let key = camel_key(&k);
        match key {
            "type" => {
                if let Some(t) = val.as_str().filter(|t| *t != "TYPE_UNSPECIFIED") {
                    out.insert(key.into(), Value::from(t.to_ascii_lowercase()));
                }
            }
            "nullable" => nullable = val == Value::Bool(true),
            "propertyOrdering" | "example" => {}
            "properties" => {
                let props = match val {
                    Value::Object(p) => {
                        Value::Object(p.into_iter().map(|(n, s)| (n, json_schema(s))).collect())
                    }
                    other => other,
                };
                out.insert(key.into(), props);
            }
            "items" => {
                out.insert(key.into(), json_schema(val));
            }
            "anyOf" => {
                let all = match val {
                    Value::Array(a) => Value::Array(a.into_iter().map(json_schema).collect()),
                    other => other,
                };
                out.insert(key.into(), all);
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" | "minProperties"
            | "maxProperties" => {
                // int64 in proto3 JSON may be a string.
                let n = match &val {
                    Value::String(s) => s.parse::<u64>().map(Value::from).unwrap_or(val),
                    _ => val,
                };
                out.insert(key.into(), n);
            }
            _ => {
                out.insert(key.into(), val);
            }
        }
    }
    if nullable {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), Value::from(vec![t, "null".to_string()]));
        }
    }
    Value::Object(out)
}

/// A `Schema` key in lowerCamelCase (proto3 JSON parsers take the snake_case names too).
fn camel_key(k: &str) -> &str {
    match k {
        "any_of" => "anyOf",
        "min_items" => "minItems",
        "max_items" => "maxItems",
        "min_length" => "minLength",
        "max_length" => "maxLength",
        "min_properties" => "minProperties",
        "max_properties" => "maxProperties",
        "property_ordering" => "propertyOrdering",
        other => other,
    }
}

/// `toolConfig.functionCallingConfig` as `tool_choice`; ANY with several allowed names
/// narrows the offered `tools` to them.
fn convert_tool_config<'a>(
    config: Option<ToolConfigIn<'a>>,
    tools: &mut Vec<ToolOut<'a>>,
) -> Result<Option<ToolChoiceOut<'a>>, GatewayError> {
    let Some(c) = config.and_then(|c| c.function_calling_config) else {
        return Ok(None);
    };
    let mode = c.mode.as_deref().unwrap_or("MODE_UNSPECIFIED");
    let mut allowed = c.allowed_function_names;
    Ok(match mode {
        "MODE_UNSPECIFIED" => None,
        "AUTO" | "VALIDATED" => Some(ToolChoiceOut::Mode("auto")),
        "NONE" => Some(ToolChoiceOut::Mode("none")),
        "ANY" if allowed.len() == 1 => allowed.pop().map(|name| ToolChoiceOut::Function {
            kind: "function",
            function: FunctionName { name },
        }),
        "ANY" => {
            if !allowed.is_empty() {
                tools.retain(|t| allowed.contains(&t.function.name));
            }
            Some(ToolChoiceOut::Mode("required"))
        }
        other => {
            return Err(invalid(format!(
            "`toolConfig.functionCallingConfig.mode` `{}` is not one of AUTO, ANY, NONE, VALIDATED",
            printable(other, 64)
        )))
        }
    })
}

/// `generationConfig` into the pivot (see the module doc).
fn generation_config<'a>(
    c: GenerationConfigIn<'a>,
    out: &mut PivotOut<'a>,
    adjusted: &mut Adjustments,
) -> Result<(), GatewayError> {
    out.temperature = c.temperature;
    out.top_p = c.top_p;
    out.n = c.candidate_count;
    out.max_completion_tokens = c.max_output_tokens;
    out.stop = c.stop_sequences;
    out.seed = c.seed;
    out.presence_penalty = c.presence_penalty;
    out.frequency_penalty = c.frequency_penalty;
    if c.response_logprobs == Some(true) {
        out.logprobs = Some(true);
        out.top_logprobs = c.logprobs;
    }
    if c.top_k.is_some_and(|k| k.get() != "null") {
        adjusted.note(contract::TOP_K);
    }
    let left_out = [
        ("generationConfig.responseModalities", c.response_modalities),
        ("generationConfig.speechConfig", c.speech_config),
        ("generationConfig.mediaResolution", c.media_resolution),
        ("generationConfig.imageConfig", c.image_config),
    ];
    for (name, given) in left_out {
        if given.is_some_and(|v| v.get() != "null") {
            adjusted.note(name);
        }
    }
    if let Some(t) = c.thinking_config {
        out.reasoning_effort =
            contract::reasoning_effort(t.thinking_budget, t.thinking_level.as_deref())?;
    }
    out.response_format = response_format(
        c.response_mime_type.as_deref(),
        c.response_json_schema,
        c.response_schema,
    )?;
    Ok(())
}

/// `responseMimeType` with its schema as `response_format`.
fn response_format<'a>(
    mime: Option<&str>,
    json_schema: Option<&'a RawValue>,
    openapi: Option<&'a RawValue>,
) -> Result<Option<FormatOut<'a>>, GatewayError> {
    let json_schema = json_schema.filter(|s| s.get() != "null");
    let openapi = openapi.filter(|s| s.get() != "null");
    match mime {
        None | Some("") | Some("text/plain") => Ok(None),
        Some("application/json") => {
            let schema = match (json_schema, openapi) {
                (Some(raw), _) => json_schema_as_is(raw),
                (None, Some(raw)) => Schema::Converted(openapi_schema(
                    "generationConfig.responseSchema",
                    raw,
                )?),
                (None, None) => return Ok(Some(FormatOut::JsonObject)),
            };
            Ok(Some(FormatOut::JsonSchema {
                json_schema: NamedSchema {
                    name: "output",
                    schema,
                },
            }))
        }
        Some(other) => Err(invalid(format!(
            "`generationConfig.responseMimeType` `{}` cannot be carried to this route's provider: only `application/json` and `text/plain`",
            printable(other, 64)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers: chat in, Gemini out.

/// A `GenerateContentResponse` as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    candidates: Vec<CandidateOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<UsageOut>,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CandidateOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ModelContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct ModelContent<'a> {
    role: &'static str,
    parts: Vec<GeminiPart<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GeminiPart<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<CallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct CallOut<'a> {
    id: Cow<'a, str>,
    name: Cow<'a, str>,
    args: Box<RawValue>,
}

/// `usageMetadata` (token counts; the zero ones of cache and thoughts left out).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageOut {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cached_content_token_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    thoughts_token_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl UsageOut {
    fn of(u: &Usage) -> UsageOut {
        UsageOut {
            prompt_token_count: u.prompt_tokens,
            candidates_token_count: u.completion_tokens.saturating_sub(u.reasoning_tokens),
            total_token_count: u.total_tokens,
            cached_content_token_count: u.cached_tokens,
            thoughts_token_count: u.reasoning_tokens,
        }
    }
}

/// Gemini's `finishReason` for a chat `finish_reason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "stop" | "tool_calls" | "function_call" => "STOP",
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "OTHER",
    }
}

/// A tool call's `arguments` string as the `args` object Gemini clients read; a model's
/// broken JSON is kept as text under `_arguments` rather than failing the answer.
fn args_object(arguments: &str) -> Box<RawValue> {
    let trimmed = arguments.trim();
    let trimmed = if trimmed.is_empty() { "{}" } else { trimmed };
    // Re-written compact: a stream event's data is one line.
    let parsed = trimmed
        .starts_with('{')
        .then(|| serde_json::from_str::<Value>(trimmed).ok())
        .flatten()
        .and_then(|v| serde_json::value::to_raw_value(&v).ok());
    parsed.unwrap_or_else(|| {
        let wrapped = format!(r#"{{"_arguments":{}}}"#, super::chunks::json_str(arguments));
        RawValue::from_string(wrapped).unwrap_or_default()
    })
}

/// Thinking blocks as thought parts (without their text when it was streamed already, as
/// `reasoning_content`: the signature then closes the streamed thought); the Gemini
/// signatures among them (`gemini:<call id>:<signature>`) are returned for their calls
/// instead.
fn thought_parts<'a>(
    blocks: Vec<ThinkingBlock<'a>>,
    parts: &mut Vec<GeminiPart<'a>>,
    text_streamed: bool,
) -> Vec<(String, String)> {
    let mut signatures = Vec::new();
    for b in blocks {
        match b {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => {
                if let Some((call, sig)) = vendor_state::unwrap_gemini(&signature) {
                    signatures.push((call.to_string(), sig.to_string()));
                    continue;
                }
                parts.push(GeminiPart {
                    text: (!text_streamed && !thinking.is_empty()).then_some(thinking),
                    thought: Some(true),
                    thought_signature: Some(signature),
                    ..GeminiPart::default()
                });
            }
            ThinkingBlock::RedactedThinking { data } => parts.push(GeminiPart {
                thought: Some(true),
                thought_signature: Some(data),
                ..GeminiPart::default()
            }),
        }
    }
    signatures
}

/// A `functionCall` part, with the Gemini signature given for its id.
fn call_part<'a>(
    id: Cow<'a, str>,
    name: Cow<'a, str>,
    arguments: &str,
    signatures: &[(String, String)],
) -> GeminiPart<'a> {
    let signature = signatures
        .iter()
        .find(|(call, _)| *call == id)
        .map(|(_, sig)| Cow::Owned(sig.clone()));
    GeminiPart {
        function_call: Some(CallOut {
            id,
            name,
            args: args_object(arguments),
        }),
        thought_signature: signature,
        ..GeminiPart::default()
    }
}

/// A whole `chat.completion` as a `GenerateContentResponse` (see the module doc).
pub(crate) fn answer(chat_answer: &[u8], model: &str) -> Result<Bytes, GatewayError> {
    let c: CompletionIn<'_> =
        serde_json::from_slice(chat_answer).map_err(|e| unreadable(VENDOR, "an answer", e))?;
    let mut candidates = Vec::with_capacity(c.choices.len());
    for choice in c.choices {
        let mut parts = Vec::new();
        if let Some(m) = choice.message {
            let blocks = m.thinking_blocks.unwrap_or_default();
            // Anthropic's thinking text is in its blocks and in `reasoning_content` both.
            let texts_in_blocks = blocks.iter().any(
                |b| matches!(b, ThinkingBlock::Thinking { thinking, .. } if !thinking.is_empty()),
            );
            let signatures = thought_parts(blocks, &mut parts, false);
            let reasoning = m.reasoning_content.filter(|_| !texts_in_blocks);
            if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
                parts.push(GeminiPart {
                    text: Some(r),
                    thought: Some(true),
                    ..GeminiPart::default()
                });
            }
            let text = m.content.filter(|t| !t.is_empty()).or(m.refusal);
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                parts.push(GeminiPart {
                    text: Some(text),
                    ..GeminiPart::default()
                });
            }
            for call in m.tool_calls.unwrap_or_default() {
                let arguments = call.function.arguments;
                parts.push(call_part(
                    call.id,
                    call.function.name,
                    &arguments,
                    &signatures,
                ));
            }
        }
        candidates.push(CandidateOut {
            content: (!parts.is_empty()).then_some(ModelContent {
                role: "model",
                parts,
            }),
            finish_reason: Some(finish_reason(
                choice.finish_reason.as_deref().unwrap_or("stop"),
            )),
            index: choice.index,
        });
    }
    Ok(to_bytes(&ResponseOut {
        candidates,
        usage_metadata: c.usage.as_ref().map(UsageOut::of),
        model_version: c.model.as_deref().unwrap_or(model),
        response_id: c.id.as_deref().unwrap_or_default(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Streams: chat chunks in, Gemini stream events out.

/// A tool call being streamed: its chat index, id, name and arguments so far.
#[derive(Debug, Default)]
struct CallSoFar {
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// Translates a chat chunk stream (asked with `include_usage`) into Gemini's stream events,
/// each `data: {GenerateContentResponse}\r\n\r\n` (see the module doc).
pub type Stream = Translating<StreamState>;

/// What a [`Stream`] keeps between events.
#[derive(Debug, Default)]
pub struct StreamState {
    model: String,
    id: String,
    calls: Vec<CallSoFar>,
    signatures: Vec<(String, String)>,
    /// Reasoning text went out since the last thinking block: the block that follows closes
    /// it with its signature only.
    reasoning_streamed: bool,
    finish: Option<&'static str>,
    usage: Option<Usage>,
    content: bool,
    end: End,
}

impl Stream {
    /// `model` names the answer's model until the vendor's first chunk does.
    pub fn new(model: &str) -> Self {
        Translating::over(StreamState {
            model: model.to_string(),
            ..StreamState::default()
        })
    }
}

impl EventState for StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let chunk = match chat_event(data) {
            ChatEvent::Nothing => return,
            ChatEvent::Done => return self.last(out),
            ChatEvent::Unreadable(e) => {
                return self.fail(&unreadable(VENDOR, "a stream event", e), out)
            }
            ChatEvent::Error(err) => return self.upstream_error(err, out),
            ChatEvent::Chunk(chunk) => chunk,
        };
        if let Some(id) = chunk.id.filter(|s| !s.is_empty()) {
            self.id = id.into_owned();
        }
        if let Some(model) = chunk.model.filter(|s| !s.is_empty()) {
            self.model = model.into_owned();
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let mut parts = Vec::new();
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                self.delta(delta, &mut parts);
            }
            if let Some(f) = choice.finish_reason.as_deref() {
                self.finish = Some(finish_reason(f));
            }
        }
        if !parts.is_empty() {
            self.content = true;
            self.push(out, parts, None, None);
        }
    }

    /// The body ended without `[DONE]`: complete if a finish reason came, else cut.
    fn at_eof(&mut self, out: &mut Vec<u8>) {
        if self.finish.is_some() {
            return self.last(out);
        }
        self.fail(
            &GatewayError::Upstream(
                "the upstream stream ended before the answer was complete".into(),
            ),
            out,
        );
    }

    fn end(&self) -> End {
        self.end
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn has_content(&self) -> bool {
        self.content
    }
}

impl StreamState {
    fn delta<'a>(&mut self, delta: DeltaIn<'a>, parts: &mut Vec<GeminiPart<'a>>) {
        let blocks = delta.thinking_blocks.unwrap_or_default();
        if !blocks.is_empty() {
            let streamed = std::mem::take(&mut self.reasoning_streamed);
            let signatures = thought_parts(blocks, parts, streamed);
            self.signatures.extend(signatures);
        }
        if let Some(r) = delta.reasoning_content.filter(|r| !r.is_empty()) {
            self.reasoning_streamed = true;
            parts.push(GeminiPart {
                text: Some(r),
                thought: Some(true),
                ..GeminiPart::default()
            });
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                parts.push(GeminiPart {
                    text: Some(text),
                    ..GeminiPart::default()
                });
            }
        }
        for call in delta.tool_calls.unwrap_or_default() {
            self.tool_delta(call);
        }
    }

    /// A tool call's fragment, kept until the call is whole (at the stream's end).
    fn tool_delta(&mut self, call: ToolDeltaIn<'_>) {
        let k = match self.calls.iter().position(|c| c.index == call.index) {
            Some(k) => k,
            None => {
                self.calls.push(CallSoFar {
                    index: call.index,
                    ..CallSoFar::default()
                });
                self.calls.len() - 1
            }
        };
        let so_far = &mut self.calls[k];
        if let Some(id) = call.id.filter(|id| !id.is_empty()) {
            so_far.id = id.into_owned();
        }
        if let Some(f) = call.function {
            if let Some(name) = f.name {
                so_far.name.push_str(&name);
            }
            if let Some(args) = f.arguments {
                so_far.arguments.push_str(&args);
            }
        }
    }

    /// The last event: the whole tool calls, the finish reason and the usage.
    fn last(&mut self, out: &mut Vec<u8>) {
        let calls = std::mem::take(&mut self.calls);
        let signatures = std::mem::take(&mut self.signatures);
        let parts: Vec<GeminiPart<'_>> = calls
            .iter()
            .enumerate()
            .map(|(n, c)| {
                let id = match c.id.is_empty() {
                    true => vendor_state::short_call_id(&format!("{}/{n}", self.id)),
                    false => c.id.clone(),
                };
                call_part(
                    Cow::Owned(id),
                    Cow::Borrowed(c.name.as_str()),
                    &c.arguments,
                    &signatures,
                )
            })
            .collect();
        self.content |= !parts.is_empty();
        let finish = Some(self.finish.unwrap_or("STOP"));
        let usage = self.usage.as_ref().map(UsageOut::of);
        self.push(out, parts, finish, usage);
        self.end = End::Done;
    }

    /// One `data:` event of a `GenerateContentResponse` with `parts` of the first candidate.
    fn push(
        &self,
        out: &mut Vec<u8>,
        parts: Vec<GeminiPart<'_>>,
        finish: Option<&'static str>,
        usage: Option<UsageOut>,
    ) {
        let body = ResponseOut {
            candidates: vec![CandidateOut {
                content: (!parts.is_empty()).then_some(ModelContent {
                    role: "model",
                    parts,
                }),
                finish_reason: finish,
                index: 0,
            }],
            usage_metadata: usage,
            model_version: &self.model,
            response_id: &self.id,
        };
        push_data(out, &to_bytes(&body));
    }

    /// An error chunk from upstream (the gateway's own shape or a vendor's).
    fn upstream_error(&mut self, err: &RawValue, out: &mut Vec<u8>) {
        let parsed = serde_json::from_str::<ChunkErrorIn<'_>>(err.get()).ok();
        let status = parsed.as_ref().and_then(|e| e.status).unwrap_or(502);
        let message = parsed
            .and_then(|e| e.message)
            .unwrap_or(Cow::Borrowed("the upstream stream failed"));
        push_data(out, error_json(status, &message).as_bytes());
        self.end = End::Failed;
    }

    fn fail(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        out.extend_from_slice(&crate::dialect::gemini::error::error_event(err));
        self.end = End::Failed;
    }
}

/// One SSE event of Google's `alt=sse` framing: `data: <json>\r\n\r\n`.
fn push_data(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Google's error body, `{"error":{"code","message","status"}}`, with the canonical status
/// name of the HTTP status ([`crate::dialect::gemini::error::status_name`]).
fn error_json(code: u16, message: &str) -> String {
    format!(
        r#"{{"error":{{"code":{code},"message":{},"status":"{}"}}}}"#,
        super::chunks::json_str(message),
        crate::dialect::gemini::error::status_name(code)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::translate::tests::{events_of, same_at_every_cut};
    use crate::convert::translate::SseTranslator;
    use serde_json::json;

    const STREAM_TEXT: &str = include_str!("../../tests/fixtures/openai/stream_text.sse");
    const STREAM_TOOLS: &str = include_str!("../../tests/fixtures/openai/stream_tool_calls.sse");
    const STREAM_ERROR: &str = include_str!("../../tests/fixtures/openai/stream_error.sse");
    const STREAM_FILTER: &str =
        include_str!("../../tests/fixtures/openai/stream_content_filter.sse");
    const COMPLETION_TOOLS: &str =
        include_str!("../../tests/fixtures/openai/completion_tool_calls.json");
    const COMPLETION_TEXT: &str = include_str!("../../tests/fixtures/openai/completion_text.json");
    const COMPLETION_FILTER: &str =
        include_str!("../../tests/fixtures/openai/completion_content_filter.json");

    fn pivot(body: Value, stream: bool) -> (Value, Vec<&'static str>) {
        let (out, adjusted) = request(body.to_string().as_bytes(), "m", stream).unwrap();
        (
            serde_json::from_slice(&out).unwrap(),
            adjusted.as_slice().to_vec(),
        )
    }

    fn refused(body: Value) -> String {
        let e = request(body.to_string().as_bytes(), "m", false).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        e.to_string()
    }

    #[test]
    fn a_plain_request_with_its_generation_config() {
        let (p, adjusted) = pivot(
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
                "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                "generationConfig": {
                    "temperature": 0.5, "topP": 0.9, "topK": 40, "candidateCount": 2,
                    "maxOutputTokens": 100, "stopSequences": ["END"], "seed": 7,
                    "presencePenalty": 0.1, "frequencyPenalty": 0.2,
                    "responseLogprobs": true, "logprobs": 3
                },
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
            }),
            true,
        );
        assert_eq!(
            p,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "Be brief.\nBe kind."},
                    {"role": "user", "content": "Hi"}
                ],
                "max_completion_tokens": 100, "temperature": 0.5, "top_p": 0.9, "n": 2,
                "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2, "stop": ["END"],
                "logprobs": true, "top_logprobs": 3,
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
        assert_eq!(adjusted, ["safetySettings", "generationConfig.topK"]);
    }

    /// The SDKs' snake_case spellings and URL-safe base64 read as Google reads them.
    #[test]
    fn snake_case_and_url_safe_base64() {
        let (p, _) = pivot(
            json!({
                "system_instruction": {"parts": [{"text": "S"}]},
                "contents": [{"role": "user", "parts": [
                    {"text": "What is this?"},
                    {"inline_data": {"mime_type": "image/png", "data": "iVBO-w_8"}},
                    {"inline_data": {"mime_type": "audio/wav", "data": "UklG"}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                    {"file_data": {"mime_type": "image/jpeg", "file_uri": "https://x.test/cat"}}
                ]}],
                "generation_config": {"max_output_tokens": 5, "stop_sequences": ["x"],
                    "thinking_config": {"thinking_budget": 2048}}
            }),
            false,
        );
        assert_eq!(
            p["messages"][1]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO+w/8"}},
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat"}}
            ])
        );
        assert_eq!(p["messages"][0], json!({"role": "system", "content": "S"}));
        assert_eq!(p["max_completion_tokens"], 5);
        assert_eq!(p["stop"], json!(["x"]));
        assert_eq!(p["reasoning_effort"], "medium");
    }

    /// Calls without ids get minted ones, and their responses are paired by name and order;
    /// signatures ride in `thinking_blocks`.
    #[test]
    fn function_calls_and_responses_pair_up() {
        let body = json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
                {"role": "model", "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                     "thoughtSignature": "c2ln-_"},
                    {"function_call": {"name": "get_weather", "args": {"city": "Rome"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"t": 20}}},
                    {"function_response": {"name": "get_weather", "response": {"t": 25}}},
                    {"text": "Thanks"}
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"id": "toolu_01", "name": "lookup", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "toolu_01", "name": "lookup", "response": {"ok": true}}}
                ]}
            ]
        });
        let (p, _) = pivot(body.clone(), false);
        let m = &p["messages"];
        let first = m[1]["tool_calls"][0]["id"].as_str().unwrap().to_string();
        let second = m[1]["tool_calls"][1]["id"].as_str().unwrap().to_string();
        assert!(
            vendor_state::valid_call_id(&first) && first != second,
            "{first} {second}"
        );
        assert_eq!(m[1]["content"], "Checking.");
        assert_eq!(
            m[1]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Paris"}"#
        );
        assert_eq!(
            m[1]["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "", "signature": format!("gemini:{first}:c2ln+/==")}])
        );
        assert_eq!(
            m[2],
            json!({"role": "tool", "content": r#"{"t":20}"#, "tool_call_id": first})
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "content": r#"{"t":25}"#, "tool_call_id": second})
        );
        assert_eq!(m[4], json!({"role": "user", "content": "Thanks"}));
        assert_eq!(m[5]["tool_calls"][0]["id"], "toolu_01");
        assert!(m[5].get("content").is_none());
        assert_eq!(m[6]["tool_call_id"], "toolu_01");
        // The same history gives the same ids.
        assert_eq!(pivot(body, false).0, p);
        // A response with an id its call did not carry is paired by name.
        let (p, _) = pivot(
            json!({"contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"id": "x1", "name": "a", "response": {}}}]}
            ]}),
            false,
        );
        assert_eq!(
            p["messages"][1]["tool_call_id"],
            p["messages"][0]["tool_calls"][0]["id"]
        );
        // A response that answers no call.
        let e = refused(json!({"contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "b", "response": {}}}]}
        ]}));
        assert!(e.contains("`contents[1].parts[0].functionResponse`"), "{e}");
    }

    /// Thoughts with a signature are a vendor's state (Anthropic's thinking), without one
    /// they are left out.
    #[test]
    fn signed_thoughts_become_thinking_blocks() {
        let (p, _) = pivot(
            json!({"contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": [
                    {"text": "hmm", "thought": true, "thoughtSignature": "RXFR"},
                    {"thought": true, "thought_signature": "cmVk"},
                    {"text": "unsigned", "thought": true},
                    {"text": "A"}
                ]},
                {"role": "user", "parts": [{"text": "more"}]}
            ]}),
            false,
        );
        assert_eq!(
            p["messages"][1],
            json!({"role": "assistant", "content": "A", "thinking_blocks": [
                {"type": "thinking", "thinking": "hmm", "signature": "RXFR"},
                {"type": "redacted_thinking", "data": "cmVk"}
            ]})
        );
    }

    #[test]
    fn tools_schemas_and_tool_config() {
        let (p, adjusted) = pivot(
            json!({
                "contents": [{"parts": [{"text": "x"}]}],
                "tools": [
                    {"functionDeclarations": [
                        {"name": "a", "description": "A", "parameters": {
                            "type": "OBJECT",
                            "properties": {
                                "city": {"type": "STRING", "nullable": true},
                                "days": {"type": "ARRAY", "items": {"type": "INTEGER"}, "minItems": "1"}
                            },
                            "required": ["city"], "propertyOrdering": ["city", "days"]
                        }},
                        {"name": "b", "parametersJsonSchema": {"type": "object", "properties": {}}},
                        {"name": "c"}
                    ]},
                    {"googleSearch": {}},
                    {"codeExecution": {}}
                ],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "b"]}}
            }),
            false,
        );
        assert_eq!(
            p["tools"],
            json!([
                {"type": "function", "function": {"name": "a", "description": "A", "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": ["string", "null"]},
                        "days": {"type": "array", "items": {"type": "integer"}, "minItems": 1}
                    },
                    "required": ["city"]
                }}},
                {"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {}}}}
            ])
        );
        assert_eq!(p["tool_choice"], "required");
        assert_eq!(p["web_search_options"], json!({}));
        assert_eq!(adjusted, ["tools.codeExecution"]);
        let choice = |config: Value| {
            let (p, _) = pivot(
                json!({"contents": [{"parts": [{"text": "x"}]}],
                       "tools": [{"functionDeclarations": [{"name": "a"}]}],
                       "tool_config": {"function_calling_config": config}}),
                false,
            );
            p["tool_choice"].clone()
        };
        assert_eq!(choice(json!({"mode": "AUTO"})), "auto");
        assert_eq!(choice(json!({"mode": "NONE"})), "none");
        assert_eq!(
            choice(json!({"mode": "ANY", "allowed_function_names": ["a"]})),
            json!({"type": "function", "function": {"name": "a"}})
        );
        let e = refused(json!({"contents": [{"parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [{"name": "a"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}));
        assert!(e.contains("functionCallingConfig.mode"), "{e}");
    }

    #[test]
    fn response_formats() {
        let format = |config: Value| {
            let (p, _) = pivot(
                json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config}),
                false,
            );
            p["response_format"].clone()
        };
        assert_eq!(
            format(json!({"responseMimeType": "application/json"})),
            json!({"type": "json_object"})
        );
        assert_eq!(
            format(json!({"responseMimeType": "application/json",
                          "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "NUMBER"}}}})),
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema":
                {"type": "object", "properties": {"a": {"type": "number"}}}}})
        );
        assert_eq!(
            format(json!({"response_mime_type": "application/json",
                          "response_json_schema": {"type": "string"}})),
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "string"}}})
        );
        assert_eq!(
            format(json!({"responseMimeType": "text/plain"})),
            Value::Null
        );
        let e = refused(json!({"contents": [{"parts": [{"text": "x"}]}],
            "generationConfig": {"responseMimeType": "text/x.enum"}}));
        assert!(e.contains("generationConfig.responseMimeType"), "{e}");
    }

    #[test]
    fn bad_input_is_a_400_naming_the_field() {
        for (body, field) in [
            (json!({"contents": []}), "`contents`"),
            (
                json!({"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/1"}),
                "`cachedContent`",
            ),
            (
                json!({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}),
                "`contents[0].role`",
            ),
            (
                json!({"contents": [{"parts": [{"fileData": {"mimeType": "application/pdf", "fileUri": "gs://b/a.pdf"}}]}]}),
                "`contents[0].parts[0].fileData`",
            ),
            (
                json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "a b"}}]}]}),
                "`contents[0].parts[0].inlineData.data`",
            ),
            (
                json!({"contents": [{"parts": [{"videoMetadata": {}}]}]}),
                "`contents[0].parts[0]`",
            ),
            (
                json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": 10, "thinkingLevel": "LOW"}}}),
                "thinkingConfig",
            ),
            (
                json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"description": "no name"}]}]}),
                "`tools[0].functionDeclarations[0].name`",
            ),
            (json!({"contents": "x"}), "`contents`: invalid type"),
            (json!([1]), "not a GenerateContentRequest"),
        ] {
            let e = refused(body);
            assert!(e.contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn a_whole_answer_with_tool_calls() {
        let out: Value =
            serde_json::from_slice(&answer(COMPLETION_TOOLS.as_bytes(), "h").unwrap()).unwrap();
        assert_eq!(
            out,
            json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"id": "call_abc123", "name": "get_current_weather", "args": {"location": "Boston, MA"}}}
                ]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 82, "candidatesTokenCount": 17, "totalTokenCount": 99},
                "modelVersion": "gpt-4o-mini",
                "responseId": "chatcmpl-abc123"
            })
        );
        let out: Value =
            serde_json::from_slice(&answer(COMPLETION_FILTER.as_bytes(), "h").unwrap()).unwrap();
        assert_eq!(out["candidates"][0]["finishReason"], "SAFETY");
        let out: Value =
            serde_json::from_slice(&answer(COMPLETION_TEXT.as_bytes(), "h").unwrap()).unwrap();
        assert_eq!(out["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert!(out["candidates"][0]["content"]["parts"][0]["text"].is_string());
    }

    /// Reasoning: Anthropic's signed thinking → signed thought parts, Gemini's signatures →
    /// their calls' `thoughtSignature`; usage with cache and thoughts.
    #[test]
    fn reasoning_and_signatures_in_an_answer() {
        let chat = json!({
            "id": "x", "model": "claude",
            "choices": [{"index": 0, "finish_reason": "length", "message": {
                "role": "assistant", "content": "A",
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "hmm", "signature": "RXFR"},
                    {"type": "redacted_thinking", "data": "cmVk"},
                    {"type": "thinking", "thinking": "", "signature": "gemini:call_1:U0lH"}
                ],
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]
            }}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 3}}
        });
        let out: Value =
            serde_json::from_slice(&answer(chat.to_string().as_bytes(), "h").unwrap()).unwrap();
        assert_eq!(
            out["candidates"][0],
            json!({"content": {"role": "model", "parts": [
                {"text": "hmm", "thought": true, "thoughtSignature": "RXFR"},
                {"thought": true, "thoughtSignature": "cmVk"},
                {"text": "A"},
                {"functionCall": {"id": "call_1", "name": "f", "args": {"_arguments": "not json"}}, "thoughtSignature": "U0lH"}
            ]}, "finishReason": "MAX_TOKENS", "index": 0})
        );
        assert_eq!(
            out["usageMetadata"],
            json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 18,
                   "cachedContentTokenCount": 4, "thoughtsTokenCount": 3})
        );
        // What the client sends back gives the vendor its state again.
        let (p, _) = pivot(
            json!({"contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": out["candidates"][0]["content"]["parts"].clone()},
                {"role": "user", "parts": [{"functionResponse": {"id": "call_1", "name": "f", "response": {}}}]}
            ]}),
            false,
        );
        assert_eq!(
            p["messages"][1]["thinking_blocks"],
            chat["choices"][0]["message"]["thinking_blocks"]
        );
    }

    /// Anthropic's thinking through the chat pivot: its text once (streamed as thought
    /// parts, or whole), its signature closing it; sent back, it is the same block again.
    #[test]
    fn thinking_text_once_and_its_signature_back() {
        let chat = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Let me \"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think.\"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"Let me think.\",\"signature\":\"U2ln\"}]}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yes.\"},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";
        let events = stream_of(chat);
        let parts: Vec<Value> = events
            .iter()
            .flat_map(|e| {
                e["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            parts,
            [
                json!({"text": "Let me ", "thought": true}),
                json!({"text": "think.", "thought": true}),
                json!({"thought": true, "thoughtSignature": "U2ln"}),
                json!({"text": "Yes."})
            ]
        );
        let (p, _) = pivot(
            json!({"contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": parts},
                {"role": "user", "parts": [{"text": "more"}]}
            ]}),
            false,
        );
        assert_eq!(
            p["messages"][1]["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "Let me think.", "signature": "U2ln"}])
        );
        // A whole answer: the text once, in the signed part.
        let whole = json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "content": "Yes.", "reasoning_content": "Let me think.",
            "thinking_blocks": [{"type": "thinking", "thinking": "Let me think.", "signature": "U2ln"}]}}]});
        let out: Value =
            serde_json::from_slice(&answer(whole.to_string().as_bytes(), "h").unwrap()).unwrap();
        assert_eq!(
            out["candidates"][0]["content"]["parts"],
            json!([{"text": "Let me think.", "thought": true, "thoughtSignature": "U2ln"}, {"text": "Yes."}])
        );
    }

    fn stream_of(input: &str) -> Vec<Value> {
        let make = || -> Box<dyn SseTranslator> { Box::new(Stream::new("hint")) };
        let out = same_at_every_cut(&make, input.as_bytes());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.split("\r\n\r\n")
                .all(|e| e.is_empty() || e.starts_with("data: {")),
            "{text}"
        );
        events_of(text.as_bytes())
    }

    #[test]
    fn a_text_stream() {
        let events = stream_of(STREAM_TEXT);
        let last = events.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert!(last["usageMetadata"]["totalTokenCount"].is_u64(), "{last}");
        let text: String = events
            .iter()
            .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
            .collect();
        assert!(!text.is_empty());
        for e in &events[..events.len() - 1] {
            assert!(e["candidates"][0].get("finishReason").is_none(), "{e}");
        }
    }

    #[test]
    fn a_tool_call_stream_gives_whole_calls_at_the_end() {
        let events = stream_of(STREAM_TOOLS);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            events[0]["candidates"][0]["content"]["parts"],
            json!([{"text": "Let me check."}])
        );
        assert_eq!(
            events[1],
            json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "args": {"location": "Paris"}}},
                    {"functionCall": {"id": "call_2", "name": "get_time", "args": {}}}
                ]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 30, "totalTokenCount": 110},
                "modelVersion": "gpt-4o-2024-08-06",
                "responseId": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
            })
        );
    }

    #[test]
    fn errors_and_filters_in_a_stream() {
        let events = stream_of(STREAM_ERROR);
        let last = events.last().unwrap();
        assert_eq!(last["error"]["code"], 502);
        assert_eq!(last["error"]["status"], "UNAVAILABLE");
        let events = stream_of(STREAM_FILTER);
        assert_eq!(
            events.last().unwrap()["candidates"][0]["finishReason"],
            "SAFETY"
        );
        // Cut before the end: an error event.
        let cut = &STREAM_TEXT[..STREAM_TEXT.find("\n\n").unwrap() + 2];
        let events = stream_of(cut);
        assert_eq!(events.last().unwrap()["error"]["code"], 502);
        let mut t = Stream::new("h");
        t.feed(STREAM_TEXT.as_bytes());
        t.finish();
        assert!(t.is_done() && t.usage().is_some() && t.has_content());
    }
}
