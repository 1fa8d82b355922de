//! `kind = "gemini"`: OpenAI chat requests to Google's Gemini API
//! (`POST {base}/v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`;
//! the model is in the path, see [`super::upstream_path`], never in the body), and its answers
//! and streams back to OpenAI's shapes.
//!
//! Request mapping ([`request`]):
//!
//! - `system`/`developer` messages → `systemInstruction` (one text part each);
//! - `user` → role `user`, `assistant` → role `model`, with `parts`: `text`; images as
//!   `inlineData` (a `data:` URL) or `fileData` (any other URL, its media type guessed from the
//!   extension); assistant `tool_calls` → `functionCall` parts (`arguments` → `args`); `tool`
//!   messages → `functionResponse` parts of a `user` turn, named after the call they answer
//!   (found by `tool_call_id` among the earlier assistant messages), `response` being the
//!   tool's JSON object, or `{"output": text}`, and the images of the tool's result (`data:`
//!   URLs) as its `parts` (`inlineData`: Gemini's multimodal function responses; an image by
//!   URL is a 400). Each `functionCall` part gets the `thoughtSignature` Gemini gave it back,
//!   from the assistant message's `thinking_blocks` (`super::vendor_state`) or from a legacy
//!   `<id>__thought__<signature>` id; a turn whose calls Gemini never signed gets
//!   [`UNSIGNED_CALL_SIGNATURE`] on its first call, and another vendor's thinking blocks are
//!   dropped (noted `thinking_signature`). Consecutive
//!   turns of one role are merged, and a turn without content is left out (Gemini refuses
//!   empty `parts`); `null` for any optional field is absence;
//! - `generationConfig`: `temperature`, `top_p` → `topP`, `max_tokens`/`max_completion_tokens`
//!   → `maxOutputTokens`, `stop` → `stopSequences` (more than Gemini's 5: a 400 naming
//!   `stop`), `n` → `candidateCount`, `seed`,
//!   `presence_penalty`, `frequency_penalty`, `response_format` json_object/json_schema →
//!   `responseMimeType` (+ `responseJsonSchema`); Gemini's own `top_k` → `topK`;
//!   `reasoning_effort` (or Anthropic-style `thinking`) → `thinkingConfig.thinkingBudget`
//!   (none/minimal 0, low 1,024, medium 8,192, high 24,576; cut to `maxOutputTokens`);
//! - Gemini's contract ([`crate::contract::gemini`]): a function name Gemini does not take
//!   and more than 5 stop sequences are each a 400 naming the field; a tool result's images go
//!   as the `functionResponse`'s inline parts (an image by URL is a 400); tool call ids are
//!   not sent (a response is paired with its call by name), so an id of any form is no
//!   concern here;
//! - `tools` → one `functionDeclarations` tool (schemas as `parametersJsonSchema`, which takes
//!   JSON Schema as OpenAI clients write it); `tool_choice` auto/none/required/function →
//!   `toolConfig.functionCallingConfig` AUTO/NONE/ANY/ANY with `allowedFunctionNames`.
//!
//! Dropped: `user`, `logit_bias`, `logprobs`, `top_logprobs`, `stream` (the path says it),
//! `stream_options`, `parallel_tool_calls`, `store`, `metadata`, `modalities`, `audio`,
//! `prediction`, `service_tier`, legacy `functions`/`function_call`, and
//! any field this module does not name.
//!
//! Answers: the text parts of each candidate (thought parts left out) → `message.content`,
//! `functionCall` parts → `tool_calls` (their `id` when Gemini gives one valid for every
//! vendor, else a short one made from it or from `responseId`: `call_` + 24 hex digits; a
//! part's `thoughtSignature`, which Gemini 3 wants back with the call, goes to
//! `message.thinking_blocks` as `gemini:<call id>:<signature>`, never into the id; signatures
//! on text parts, which Gemini only recommends sending back, are left out), one choice per
//! candidate. `finishReason` STOP → `stop` (`tool_calls` when the
//! candidate called functions), MAX_TOKENS → `length`, the filters' reasons
//! ([`crate::dialect::gemini::is_filtered`]: SAFETY, RECITATION, BLOCKLIST,
//! PROHIBITED_CONTENT, SPII, IMAGE_SAFETY, …) → `content_filter`; a prompt blocked by
//! `promptFeedback.blockReason` → an empty answer (a stream: a role chunk and a last chunk)
//! with `content_filter`. Which filter it was (the reason, `safetyRatings`) is lost: chat has
//! one `content_filter`, and the gateway answers it as the chat API's content-filter error
//! ([`crate::dialect::refusal`]). Other reasons (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, …)
//! → `stop`. Usage: `promptTokenCount` (+ `toolUsePromptTokenCount`)
//! → `prompt_tokens`, `candidatesTokenCount` + `thoughtsTokenCount` → `completion_tokens`
//! (thinking is billed as output, as OpenAI counts reasoning tokens), `totalTokenCount`;
//! `cachedContentTokenCount` → `prompt_tokens_details.cached_tokens` (a part of the prompt),
//! `thoughtsTokenCount` → `completion_tokens_details.reasoning_tokens`.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;
use crate::contract::gemini as contract;
use crate::dialect::adjusted::Adjustments;
use crate::dialect::chat::wire::{
    content, field, messages, plain_text, raw_field, stop_sequences, tool_choice, AssistantMessage,
    Choice, Completion, Image, OaContent, OaMessage, OaPart, ResponseFormat, ThinkingBlock,
    ToolCallOut, ToolChoice,
};
use crate::dialect::chat::ChatRequest;
use crate::dialect::gemini::is_filtered;
use crate::dialect::gemini::wire::{
    Blob, CandidateIn, Content, ContentIn, ErrorIn, FileData, FunctionCall, FunctionCallingConfig,
    FunctionDecl, FunctionResponse, FunctionResponsePart, GenerationConfig, Part, Request,
    ResponseIn, ResponseValue, Role, SignedFunctionCall, ThinkingConfig, ToolConfig, ToolOut,
};
use crate::error::GatewayError;

use super::chunks::{
    content_delta, thinking_blocks_delta, to_bytes, tool_start_delta, ChunkWriter, ROLE_DELTA,
};
use super::errors::{unreadable, unsupported, vendor_failure};
use super::request::{arguments_object, function_tools, push_merged, reasoning_budget};
use super::translate::{End, EventState, Translated, Translating};
use super::vendor_state;

const VENDOR: &str = "gemini";

// ---------------------------------------------------------------------------------------------
// Request.

/// The separator of the tool-call ids this gateway used to mint, `<id>__thought__<signature>`
/// (before the signatures moved to `thinking_blocks`): ids clients still hold are read.
pub const THOUGHT_SIGNATURE_SEPARATOR: &str = "__thought__";

/// The `thoughtSignature` Google documents for function calls Gemini never signed (another
/// model's calls in a history moved to Gemini): ai.google.dev "Thought signatures", FAQ
/// "How do I transfer a conversation from a different model to Gemini 3?" — set the
/// signature to `skip_thought_signature_validator`.
pub const UNSIGNED_CALL_SIGNATURE: &str = "skip_thought_signature_validator";

/// A tool call id and the signature it carries, if any (legacy ids).
fn split_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(THOUGHT_SIGNATURE_SEPARATOR) {
        Some((id, sig)) if !sig.is_empty() => (id, Some(sig)),
        _ => (id, None),
    }
}

/// The `generateContent` body for `req` (the same for streaming: the path differs). Another
/// vendor's reasoning state in the history is dropped and noted in `adjusted`.
pub fn request(req: &ChatRequest<'_>, adjusted: &mut Adjustments) -> Result<Bytes, GatewayError> {
    let (system, contents) = convert_messages(messages(req)?, adjusted)?;
    let declarations = convert_tools(req)?;
    let tool_config = convert_tool_choice(req, !declarations.is_empty())?;
    let body = Request {
        contents,
        system_instruction: system,
        tools: if declarations.is_empty() {
            Vec::new()
        } else {
            vec![ToolOut {
                function_declarations: declarations,
            }]
        },
        tool_config,
        generation_config: generation_config(req)?,
    };
    Ok(to_bytes(&body))
}

type Converted<'a> = (Option<Content<'a>>, Vec<Content<'a>>);

/// The system instruction and the conversation.
fn convert_messages<'a>(
    msgs: Vec<OaMessage<'a>>,
    adjusted: &mut Adjustments,
) -> Result<Converted<'a>, GatewayError> {
    let mut system = Vec::new();
    let mut turns: Vec<(Role, Vec<Part<'_>>)> = Vec::with_capacity(msgs.len());
    // (tool call id, function name) of the assistant's calls so far, to name the responses
    let mut calls: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    for (i, m) in msgs.into_iter().enumerate() {
        match m.role.as_ref() {
            "system" | "developer" => {
                let text = plain_text(content(m.content)?, "\n");
                if !text.is_empty() {
                    system.push(Part::Text(text));
                }
            }
            "user" => push_merged(&mut turns, Role::User, user_parts(content(m.content)?)?),
            "assistant" => {
                let parts = model_parts(m, &mut calls, adjusted)?;
                push_merged(&mut turns, Role::Model, parts)
            }
            "tool" => push_merged(
                &mut turns,
                Role::User,
                vec![function_response(i, m, &calls)?],
            ),
            other => {
                return Err(unsupported(
                    VENDOR,
                    format!("messages with role `{other}` are not supported"),
                ))
            }
        }
    }
    let system = (!system.is_empty()).then_some(Content {
        role: None,
        parts: system,
    });
    let contents = turns
        .into_iter()
        .map(|(role, parts)| Content {
            role: Some(role),
            parts,
        })
        .collect();
    Ok((system, contents))
}

fn user_parts(content: Option<OaContent<'_>>) -> Result<Vec<Part<'_>>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(OaContent::Text(t)) => Ok(text_part(t).into_iter().collect()),
        Some(OaContent::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| user_part(p).transpose())
            .collect(),
    }
}

/// A text part, or none for empty text (Gemini refuses empty parts).
fn text_part(text: Cow<'_, str>) -> Option<Part<'_>> {
    (!text.is_empty()).then_some(Part::Text(text))
}

fn user_part(part: OaPart<'_>) -> Result<Option<Part<'_>>, GatewayError> {
    match part.kind.as_ref() {
        "text" => Ok(part.text.and_then(text_part)),
        "image_url" => Ok(Some(match part.image()? {
            Image::Base64 { media_type, data } => Part::InlineData(Blob {
                mime_type: media_type,
                data,
            }),
            Image::Url(url) => Part::FileData(FileData {
                mime_type: guess_image_type(&url),
                file_uri: url,
            }),
        })),
        other => Err(unsupported(
            VENDOR,
            format!("content parts of type `{other}` are not supported"),
        )),
    }
}

/// The media type of an image URL from its extension, when it says.
fn guess_image_type(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "heic" => Some("image/heic"),
        "heif" => Some("image/heif"),
        _ => None,
    }
}

/// The Gemini signatures an assistant message carries in its `thinking_blocks`, by the call
/// they belong to ([`vendor_state::wrap_gemini`]); another vendor's blocks (Anthropic's
/// signed thinking) are dropped by rule and noted.
fn gemini_signatures(
    blocks: Option<Vec<ThinkingBlock<'_>>>,
    adjusted: &mut Adjustments,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in blocks.unwrap_or_default() {
        let ThinkingBlock::Thinking { signature, .. } = &b else {
            adjusted.note(vendor_state::DROPPED);
            continue;
        };
        match vendor_state::unwrap_gemini(signature) {
            Some((call, sig)) => out.push((call.to_string(), sig.to_string())),
            None => adjusted.note(vendor_state::DROPPED),
        }
    }
    out
}

/// A `model` turn: its text, then its function calls (remembered to name their responses),
/// each with the `thoughtSignature` Gemini gave it (from the message's `thinking_blocks`, or a
/// legacy id). A turn whose calls Gemini never signed (another vendor's) gets Google's
/// [`UNSIGNED_CALL_SIGNATURE`] on its first call, where Gemini 3 checks one.
fn model_parts<'a>(
    m: OaMessage<'a>,
    calls: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
    adjusted: &mut Adjustments,
) -> Result<Vec<Part<'a>>, GatewayError> {
    let signatures = gemini_signatures(m.thinking_blocks, adjusted);
    let mut parts: Vec<Part<'a>> = match content(m.content)? {
        None => Vec::new(),
        Some(OaContent::Text(t)) => text_part(t).into_iter().collect(),
        Some(OaContent::Parts(ps)) => ps
            .into_iter()
            .filter_map(|p| match p.kind.as_ref() {
                "text" => p.text.and_then(text_part),
                "refusal" => p.refusal.and_then(text_part),
                _ => None,
            })
            .collect(),
    };
    let mut first_call = None;
    let mut signed = false;
    for call in m.tool_calls.unwrap_or_default() {
        let args = arguments_object(&call.function.arguments)?;
        let function_call = FunctionCall {
            name: call.function.name.clone(),
            args,
        };
        let sig = split_call_id(&call.id).1.map(str::to_string).or_else(|| {
            signatures
                .iter()
                .find(|(id, _)| *id == call.id)
                .map(|(_, sig)| sig.clone())
        });
        first_call.get_or_insert(parts.len());
        parts.push(match sig {
            Some(sig) => {
                signed = true;
                Part::SignedFunctionCall(SignedFunctionCall {
                    function_call,
                    thought_signature: Cow::Owned(sig),
                })
            }
            None => Part::FunctionCall(function_call),
        });
        calls.push((call.id, call.function.name));
    }
    if let (Some(at), false) = (first_call, signed) {
        if let Part::FunctionCall(f) = parts.remove(at) {
            let signed = SignedFunctionCall {
                function_call: f,
                thought_signature: Cow::Borrowed(UNSIGNED_CALL_SIGNATURE),
            };
            parts.insert(at, Part::SignedFunctionCall(signed));
        }
    }
    Ok(parts)
}

/// The `functionResponse` of a `tool` message (`messages[i]`): its JSON object, or its text
/// under `output`; the images it holds (`data:` URLs) as the response's `inlineData` parts.
/// An image by URL is a 400: Gemini's function responses take inline data only.
fn function_response<'a>(
    i: usize,
    m: OaMessage<'a>,
    calls: &[(Cow<'a, str>, Cow<'a, str>)],
) -> Result<Part<'a>, GatewayError> {
    let id = m.tool_call_id.as_deref().ok_or_else(|| {
        GatewayError::InvalidRequest("a `tool` message needs a `tool_call_id`".into())
    })?;
    let name = calls
        .iter()
        .rev()
        .find(|(call_id, _)| call_id == id)
        .map(|(_, name)| name.clone())
        .ok_or_else(|| {
            unsupported(
                VENDOR,
                format!("the `tool` message for `{id}` answers no earlier assistant tool call"),
            )
        })?;
    let (text, images) = match content(m.content)? {
        Some(OaContent::Parts(ps)) => tool_parts(i, ps)?,
        other => (plain_text(other, "\n"), Vec::new()),
    };
    let response = match text.trim_start().starts_with('{') {
        true => serde_json::from_str::<Box<RawValue>>(&text)
            .map(ResponseValue::Object)
            .unwrap_or(ResponseValue::Text { output: text }),
        false => ResponseValue::Text { output: text },
    };
    Ok(Part::FunctionResponse(FunctionResponse {
        name,
        response,
        parts: images,
    }))
}

/// A tool message's parts: its texts joined, its inline images.
fn tool_parts<'a>(
    i: usize,
    parts: Vec<OaPart<'a>>,
) -> Result<(Cow<'a, str>, Vec<FunctionResponsePart<'a>>), GatewayError> {
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for p in parts {
        match p.kind.as_ref() {
            "text" => texts.extend(p.text),
            "image_url" => match p.image()? {
                Image::Base64 { media_type, data } => images.push(FunctionResponsePart {
                    inline_data: Blob {
                        mime_type: media_type,
                        data,
                    },
                }),
                Image::Url(_) => {
                    return Err(unsupported(
                        VENDOR,
                        format!("`messages[{i}].content`: an image by URL in a tool result cannot be carried (Gemini's function responses take inline images only)"),
                    ))
                }
            },
            other => {
                return Err(unsupported(
                    VENDOR,
                    format!("`messages[{i}].content`: tool result parts of type `{other}` are not supported"),
                ))
            }
        }
    }
    let text = match texts.len() {
        1 => texts.remove(0),
        _ => Cow::Owned(texts.join("\n")),
    };
    Ok((text, images))
}

fn convert_tools<'a>(req: &ChatRequest<'a>) -> Result<Vec<FunctionDecl<'a>>, GatewayError> {
    let tools = function_tools(req, VENDOR)?;
    for (i, f) in tools.iter().enumerate() {
        contract::check_function_name(i, &f.name)?;
    }
    Ok(tools
        .into_iter()
        .map(|f| FunctionDecl {
            name: f.name,
            description: f.description,
            parameters_json_schema: f.parameters,
        })
        .collect())
}

fn convert_tool_choice<'a>(
    req: &ChatRequest<'a>,
    has_tools: bool,
) -> Result<Option<ToolConfig<'a>>, GatewayError> {
    let choice = tool_choice(req)?;
    if !has_tools {
        return Ok(None);
    }
    let (mode, allowed) = match choice {
        None => return Ok(None),
        Some(ToolChoice::Auto) => ("AUTO", Vec::new()),
        Some(ToolChoice::None) => ("NONE", Vec::new()),
        Some(ToolChoice::Required) => ("ANY", Vec::new()),
        Some(ToolChoice::Function(name)) => ("ANY", vec![name]),
    };
    Ok(Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: allowed,
        },
    }))
}

fn generation_config<'a>(req: &ChatRequest<'a>) -> Result<GenerationConfig<'a>, GatewayError> {
    let (response_mime_type, response_json_schema) = response_format(req)?;
    // Thinking counts against `maxOutputTokens`: a budget above it is cut to it.
    let thinking_config = reasoning_budget(req)?.map(|budget| ThinkingConfig {
        thinking_budget: req.max_tokens.map_or(budget, |max| budget.min(max)),
    });
    Ok(GenerationConfig {
        temperature: raw_field(req, "temperature"),
        top_p: raw_field(req, "top_p"),
        top_k: raw_field(req, "top_k"),
        candidate_count: raw_field(req, "n"),
        max_output_tokens: req.max_tokens,
        stop_sequences: {
            let stops = stop_sequences(req)?;
            contract::check_stop_count(stops.len())?;
            stops
        },
        seed: raw_field(req, "seed"),
        presence_penalty: raw_field(req, "presence_penalty"),
        frequency_penalty: raw_field(req, "frequency_penalty"),
        response_mime_type,
        response_json_schema,
        thinking_config,
    })
}

type Format<'a> = (Option<&'static str>, Option<&'a RawValue>);

/// `response_format`: JSON answers, with the client's schema when it gives one.
fn response_format<'a>(req: &ChatRequest<'a>) -> Result<Format<'a>, GatewayError> {
    let Some(f) = field::<ResponseFormat<'a>>(req, "response_format")? else {
        return Ok((None, None));
    };
    Ok(match f.kind.as_ref() {
        "json_object" => (Some("application/json"), None),
        "json_schema" => (
            Some("application/json"),
            f.json_schema.and_then(|s| s.schema),
        ),
        _ => (None, None),
    })
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// OpenAI's `finish_reason` for a candidate's `finishReason`; `called` when the candidate
/// called functions (Gemini says STOP then, OpenAI clients expect `tool_calls`).
pub fn finish_reason(reason: Option<&str>, called: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(r) if is_filtered(r) => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

fn error_of(e: &ErrorIn<'_>) -> GatewayError {
    vendor_failure(VENDOR, e.code.unwrap_or(500), &e.message)
}

/// The tool call id the client sees: Gemini's own when every vendor takes it, else a short
/// one made from it, or, for a call Gemini gave none, from the answer, candidate and call
/// (unique per answer and call, the same in a stream and a whole answer).
fn call_id(given: Option<&str>, response_id: &str, candidate: u32, n: u32) -> String {
    match given {
        Some(id) if !id.is_empty() => vendor_state::client_call_id(id),
        _ => vendor_state::short_call_id(&format!("{response_id}/{candidate}/{n}")),
    }
}

/// The thinking blocks that carry a turn's signed calls' `thoughtSignature`s to the client
/// ([`vendor_state::wrap_gemini`]), which sends them back with the calls.
fn signature_blocks(calls: &[CallPart<'_>]) -> Vec<ThinkingBlock<'static>> {
    calls
        .iter()
        .filter_map(|c| {
            let sig = c.signature.as_deref()?;
            Some(ThinkingBlock::Thinking {
                thinking: Cow::Borrowed(""),
                signature: Cow::Owned(vendor_state::wrap_gemini(&c.id, sig)),
            })
        })
        .collect()
}

/// A successful `generateContent` answer as an OpenAI `chat.completion`, one choice per
/// candidate. A blocked prompt is an empty answer with `finish_reason: content_filter`.
pub fn answer(body: &[u8], model_hint: &str, created: u64) -> Result<Translated, GatewayError> {
    let r: ResponseIn<'_> =
        serde_json::from_slice(body).map_err(|e| unreadable(VENDOR, "an answer", e))?;
    if let Some(e) = &r.error {
        return Err(error_of(e));
    }
    let fallback_id = format!("gemini-{created}");
    let id = r.response_id.as_deref().unwrap_or(&fallback_id);
    let blocked = r.prompt_feedback.and_then(|f| f.block_reason).is_some();
    let mut choices: Vec<Choice> = r.candidates.into_iter().map(|c| choice(c, id)).collect();
    choices.sort_by_key(|c| c.index);
    if choices.is_empty() {
        choices.push(Choice {
            index: 0,
            message: AssistantMessage::new(String::new(), Vec::new()),
            finish_reason: if blocked { "content_filter" } else { "stop" },
        });
    }
    let finish = choices[0].finish_reason;
    let usage = r.usage_metadata.and_then(|u| u.usage());
    let body = to_bytes(&Completion {
        id,
        object: "chat.completion",
        created,
        model: r.model_version.as_deref().unwrap_or(model_hint),
        choices,
        usage,
    });
    Ok(Translated {
        body,
        usage,
        finish_reason: finish,
    })
}

fn choice(c: CandidateIn<'_>, response_id: &str) -> Choice {
    let (text, calls) = parts(c.content, response_id, c.index, 0);
    let thinking_blocks = signature_blocks(&calls);
    let calls: Vec<ToolCallOut> = calls
        .into_iter()
        .map(|f| ToolCallOut::new(f.id, f.name.into_owned(), f.args.to_owned()))
        .collect();
    let finish = finish_reason(c.finish_reason.as_deref(), !calls.is_empty());
    let mut message = AssistantMessage::new(text, calls);
    message.thinking_blocks = thinking_blocks;
    Choice {
        index: c.index,
        message,
        finish_reason: finish,
    }
}

/// A function call of a candidate, its id made when Gemini gave none.
struct CallPart<'a> {
    id: String,
    name: Cow<'a, str>,
    /// The arguments object (`{}` when Gemini sent none).
    args: &'a str,
    /// The part's `thoughtSignature`, which Gemini 3 wants back with the call.
    signature: Option<String>,
}

/// A candidate's text (its parts joined, thoughts left out) and its function calls, numbered
/// from `first` (a streamed candidate's calls go on across events).
fn parts<'a>(
    content: Option<ContentIn<'a>>,
    response_id: &str,
    candidate: u32,
    first: u32,
) -> (String, Vec<CallPart<'a>>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in content.map(|c| c.parts).unwrap_or_default() {
        if p.thought == Some(true) {
            continue;
        }
        if let Some(t) = &p.text {
            text.push_str(t);
        }
        if let Some(f) = p.function_call {
            let n = first + calls.len() as u32;
            let id = call_id(f.id.as_deref(), response_id, candidate, n);
            let signature = p.thought_signature.as_deref().filter(|s| !s.is_empty());
            calls.push(CallPart {
                id,
                name: f.name,
                args: f.args.map_or("{}", RawValue::get),
                signature: signature.map(str::to_string),
            });
        }
    }
    (text, calls)
}

// ---------------------------------------------------------------------------------------------
// Streams.

/// Where one candidate's stream stands.
#[derive(Debug, Clone, Copy)]
struct ChoiceState {
    index: u32,
    calls: u32,
    finish: Option<&'static str>,
}

/// Translates a `streamGenerateContent?alt=sse` stream into an OpenAI chunk stream (see
/// [`SseTranslator`]): each event's text → content deltas, each `functionCall` → one tool call
/// delta with its whole arguments; Gemini has no closing event, so the last chunk (finish
/// reasons and the last `usageMetadata`) and `[DONE]` are written at [`finish`], once a
/// `finishReason` was seen; a stream that ends without one was cut and ends with an error
/// event. An `{"error":…}` event becomes one error event.
///
/// [`SseTranslator`]: super::translate::SseTranslator
/// [`finish`]: super::translate::SseTranslator::finish
pub type Stream = Translating<StreamState>;

/// What a [`Stream`] keeps between events.
#[derive(Debug)]
pub struct StreamState {
    created: u64,
    model_hint: String,
    writer: Option<ChunkWriter>,
    response_id: String,
    choices: Vec<ChoiceState>,
    usage: Option<Usage>,
    blocked: bool,
    content: bool,
    end: End,
}

impl Stream {
    /// `model_hint` names the model until Gemini's `modelVersion` does; `created` is the chunks'
    /// timestamp.
    pub fn new(model_hint: &str, created: u64) -> Self {
        Translating::over(StreamState {
            created,
            model_hint: model_hint.to_string(),
            writer: None,
            response_id: format!("gemini-{created}"),
            choices: Vec::new(),
            usage: None,
            blocked: false,
            content: false,
            end: End::Open,
        })
    }
}

impl EventState for StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let data = data.trim_ascii();
        if data.is_empty() || data == b"[DONE]" {
            return;
        }
        let r: ResponseIn<'_> = match serde_json::from_slice(data) {
            Ok(r) => r,
            Err(e) => return self.fail(unreadable(VENDOR, "a stream event", e), out),
        };
        if let Some(e) = &r.error {
            return self.fail(error_of(e), out);
        }
        self.begin(r.response_id.as_deref(), r.model_version.as_deref());
        if let Some(u) = r.usage_metadata.and_then(|u| u.usage()) {
            self.usage = Some(u);
        }
        if r.prompt_feedback.and_then(|f| f.block_reason).is_some() {
            self.blocked = true;
        }
        for c in r.candidates {
            self.candidate(c, out);
        }
    }

    /// The end of the body: the last chunk and `[DONE]` when the answer finished (or the
    /// prompt was blocked), else an error event.
    fn at_eof(&mut self, out: &mut Vec<u8>) {
        let finished = self.choices.iter().any(|c| c.finish.is_some());
        if !finished && !self.blocked {
            return self.fail(
                GatewayError::Upstream(
                    "the gemini stream ended before the answer was complete".into(),
                ),
                out,
            );
        }
        self.begin(None, None);
        if self.choices.is_empty() {
            self.choice(0, out);
        }
        let default = if self.blocked {
            "content_filter"
        } else {
            "stop"
        };
        let mut finishes: Vec<(u32, &str)> = self
            .choices
            .iter()
            .map(|c| (c.index, c.finish.unwrap_or(default)))
            .collect();
        finishes.sort_by_key(|(i, _)| *i);
        if let Some(w) = &self.writer {
            w.last(out, &finishes, self.usage);
        }
        self.end = End::Done;
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
    /// The chunk envelope, from the first event.
    fn begin(&mut self, id: Option<&str>, model: Option<&str>) {
        if self.writer.is_some() {
            return;
        }
        if let Some(id) = id {
            self.response_id = id.to_string();
        }
        let model = model.unwrap_or(&self.model_hint);
        self.writer = Some(ChunkWriter::new(&self.response_id, self.created, model));
    }

    /// The position of a candidate's state, opening it (and its role chunk) when new.
    fn choice(&mut self, index: u32, out: &mut Vec<u8>) -> usize {
        if let Some(i) = self.choices.iter().position(|c| c.index == index) {
            return i;
        }
        if let Some(w) = &self.writer {
            w.chunk(out, index, ROLE_DELTA);
        }
        self.choices.push(ChoiceState {
            index,
            calls: 0,
            finish: None,
        });
        self.choices.len() - 1
    }

    fn candidate(&mut self, c: CandidateIn<'_>, out: &mut Vec<u8>) {
        let at = self.choice(c.index, out);
        let first = self.choices[at].calls;
        let (text, calls) = parts(c.content, &self.response_id, c.index, first);
        self.choices[at].calls += calls.len() as u32;
        let mut deltas = Vec::with_capacity(calls.len() + 1);
        if !text.is_empty() {
            deltas.push(content_delta(&text));
        }
        let blocks = signature_blocks(&calls);
        if !blocks.is_empty() {
            deltas.push(thinking_blocks_delta(&blocks));
        }
        for (n, f) in (first..).zip(&calls) {
            deltas.push(tool_start_delta(n, &f.id, &f.name, f.args));
        }
        self.content |= !deltas.is_empty();
        if let Some(w) = &self.writer {
            for d in &deltas {
                w.chunk(out, c.index, d);
            }
        }
        if let Some(reason) = c.finish_reason.as_deref() {
            let called = self.choices[at].calls > 0;
            self.choices[at].finish = Some(finish_reason(Some(reason), called));
        }
    }

    fn fail(&mut self, e: GatewayError, out: &mut Vec<u8>) {
        out.extend_from_slice(&e.sse_event());
        self.end = End::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::translate::tests::{events_of, same_at_every_cut, scan};
    use crate::convert::translate::SseTranslator;
    use crate::dialect::chat::parse;
    use serde_json::{json, Value};

    const STREAM_TEXT: &str = include_str!("../../tests/fixtures/gemini/stream_text.sse");
    const STREAM_CALLS: &str = include_str!("../../tests/fixtures/gemini/stream_function_call.sse");
    const STREAM_SAFETY: &str = include_str!("../../tests/fixtures/gemini/stream_safety.sse");
    const STREAM_ERROR: &str = include_str!("../../tests/fixtures/gemini/stream_error.sse");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/gemini/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn translate(body: &str) -> Value {
        let req = parse(body.as_bytes()).unwrap();
        serde_json::from_slice(&request(&req, &mut Adjustments::default()).unwrap()).unwrap()
    }

    #[test]
    fn request_maps_roles_system_images_and_config() {
        let v = translate(
            r#"{"model":"g","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"user","content":[{"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type":"image_url","image_url":{"url":"https://example.com/cat.PNG?x=1"}}]},
                {"role":"assistant","content":"A cat."},
                {"role":"user","content":"Sure?"}],
               "temperature":0.2,"top_p":0.8,"max_tokens":100,"stop":["x"],"n":2,"seed":3,
               "user":"dropped","logit_bias":{"1":2},"stream":true,
               "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"}}}}"#,
        );
        assert_eq!(
            v,
            json!({
                "contents":[
                    {"role":"user","parts":[{"text":"What is this?"},
                        {"inlineData":{"mimeType":"image/jpeg","data":"/9j/4AAQ"}},
                        {"fileData":{"mimeType":"image/png","fileUri":"https://example.com/cat.PNG?x=1"}}]},
                    {"role":"model","parts":[{"text":"A cat."}]},
                    {"role":"user","parts":[{"text":"Sure?"}]}],
                "systemInstruction":{"parts":[{"text":"Be brief."}]},
                "generationConfig":{"temperature":0.2,"topP":0.8,"candidateCount":2,"maxOutputTokens":100,
                    "stopSequences":["x"],"seed":3,"responseMimeType":"application/json",
                    "responseJsonSchema":{"type":"object"}}
            })
        );
        // nothing to configure: no generationConfig at all
        let v = translate(r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(
            v,
            json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}]})
        );
    }

    #[test]
    fn request_maps_tools_calls_and_responses() {
        let v = translate(
            r#"{"model":"g","messages":[
                {"role":"user","content":"Weather and time in Paris?"},
                {"role":"assistant","content":"","tool_calls":[
                    {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},
                    {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"call_a","content":"{\"temp\": 18}"},
                {"role":"tool","tool_call_id":"call_b","content":"noon"}],
               "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather",
                    "parameters":{"type":"object","properties":{"location":{"type":"string"}},"additionalProperties":false}}},
                        {"type":"function","function":{"name":"get_time"}}],
               "tool_choice":{"type":"function","function":{"name":"get_weather"}}}"#,
        );
        assert_eq!(
            v["contents"],
            json!([
                {"role":"user","parts":[{"text":"Weather and time in Paris?"}]},
                // calls Gemini never signed: Google's documented value on the first
                {"role":"model","parts":[
                    {"functionCall":{"name":"get_weather","args":{"location":"Paris"}},
                     "thoughtSignature":"skip_thought_signature_validator"},
                    {"functionCall":{"name":"get_time","args":{}}}]},
                {"role":"user","parts":[
                    {"functionResponse":{"name":"get_weather","response":{"temp":18}}},
                    {"functionResponse":{"name":"get_time","response":{"output":"noon"}}}]}
            ])
        );
        assert_eq!(
            v["tools"],
            json!([{"functionDeclarations":[
                {"name":"get_weather","description":"Weather","parametersJsonSchema":
                    {"type":"object","properties":{"location":{"type":"string"}},"additionalProperties":false}},
                {"name":"get_time"}]}])
        );
        assert_eq!(
            v["toolConfig"],
            json!({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}})
        );
        for (choice, mode) in [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")] {
            let v = translate(&format!(
                r#"{{"model":"g","messages":[{{"role":"user","content":"x"}}],
                    "tools":[{{"type":"function","function":{{"name":"f"}}}}],"tool_choice":"{choice}"}}"#
            ));
            assert_eq!(
                v["toolConfig"]["functionCallingConfig"],
                json!({"mode": mode})
            );
        }
    }

    const SIGNED_CALL: &str = r#"{"responseId":"r-1","candidates":[{"index":0,"finishReason":"STOP",
        "content":{"role":"model","parts":[{"functionCall":{"name":"wx","args":{"city":"Oslo"}},
        "thoughtSignature":"U0lHLTAwMQ+/=="}]}}]}"#;

    #[test]
    fn signatures_go_to_thinking_blocks_and_come_back_by_call() {
        let t = answer(SIGNED_CALL.as_bytes(), "h", 1).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let msg = &v["choices"][0]["message"];
        let id = msg["tool_calls"][0]["id"].as_str().unwrap();
        assert!(vendor_state::valid_call_id(id), "{id}");
        assert!(!id.contains("U0lH"), "the signature is not in the id: {id}");
        let wrapped = format!("gemini:{id}:U0lHLTAwMQ+/==");
        assert_eq!(
            msg["thinking_blocks"],
            json!([{"type":"thinking","thinking":"","signature":wrapped}])
        );
        // The client sends the message back as it got it: the signature returns to its call.
        let next = json!({"model":"g","messages":[
            {"role":"user","content":"Weather?"}, msg,
            {"role":"tool","tool_call_id":id,"content":"sunny"}]});
        let mut adjusted = Adjustments::default();
        let next = next.to_string();
        let req = parse(next.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&request(&req, &mut adjusted).unwrap()).unwrap();
        assert_eq!(
            v["contents"][1]["parts"][0],
            json!({"functionCall":{"name":"wx","args":{"city":"Oslo"}},"thoughtSignature":"U0lHLTAwMQ+/=="})
        );
        assert!(adjusted.is_empty());
    }

    #[test]
    fn legacy_ids_and_other_vendors_blocks() {
        // An id this gateway minted before still gives its call the signature.
        let legacy = "call_a__thought__U0lH";
        let body = json!({"model":"g","messages":[
            {"role":"user","content":"x"},
            {"role":"assistant","content":null,
             "thinking_blocks":[{"type":"thinking","thinking":"hm","signature":"EqQB+/="},
                                {"type":"redacted_thinking","data":"xyz"}],
             "tool_calls":[{"id":legacy,"type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":legacy,"content":"ok"}]});
        let mut adjusted = Adjustments::default();
        let body = body.to_string();
        let req = parse(body.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&request(&req, &mut adjusted).unwrap()).unwrap();
        assert_eq!(v["contents"][1]["parts"][0]["thoughtSignature"], "U0lH");
        // Anthropic's signed thinking never reaches Gemini: dropped by rule, noted.
        assert!(!v.to_string().contains("EqQB"), "{v}");
        assert_eq!(adjusted.as_slice(), [vendor_state::DROPPED]);
    }

    #[test]
    fn images_in_tool_results_are_inline_function_response_parts() {
        let body = |url: &str| {
            json!({"model":"g","messages":[
                {"role":"user","content":"x"},
                {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"shot","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"here"},
                    {"type":"image_url","image_url":{"url":url}}]}]})
            .to_string()
        };
        let req_body = body("data:image/png;base64,iVBO");
        let req = parse(req_body.as_bytes()).unwrap();
        let v: Value =
            serde_json::from_slice(&request(&req, &mut Adjustments::default()).unwrap()).unwrap();
        assert_eq!(
            v["contents"][2]["parts"][0],
            json!({"functionResponse":{"name":"shot","response":{"output":"here"},
                "parts":[{"inlineData":{"mimeType":"image/png","data":"iVBO"}}]}})
        );
        let req_body = body("https://x/y.png");
        let req = parse(req_body.as_bytes()).unwrap();
        let e = request(&req, &mut Adjustments::default()).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string().contains("messages[2].content") && e.to_string().contains("gemini"),
            "{e}"
        );
    }

    #[test]
    fn a_tool_result_without_its_call_is_400() {
        let req = parse(
            br#"{"model":"g","messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}"#,
        )
        .unwrap();
        let e = request(&req, &mut Adjustments::default()).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn non_stream_text_answer() {
        let t = answer(&fixture("generate_text.json"), "hint", 5).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            v,
            json!({
                "id":"resp-123","object":"chat.completion","created":5,"model":"gemini-2.5-flash",
                "choices":[{"index":0,"message":{"role":"assistant","content":"AI learns patterns from data."},
                            "finish_reason":"stop"}],
                "usage":{"prompt_tokens":8,"completion_tokens":16,"total_tokens":24,
                         "completion_tokens_details":{"reasoning_tokens":10}}
            })
        );
        assert_eq!(t.usage.map(|u| u.completion_tokens), Some(16));
    }

    #[test]
    fn non_stream_function_calls() {
        let t = answer(&fixture("generate_function_call.json"), "hint", 5).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let msg = &v["choices"][0]["message"];
        assert!(msg["content"].is_null());
        assert_eq!(
            msg["tool_calls"],
            json!([
                {"id":"call_783d61e5db608e9b3421ec08","type":"function","function":{"name":"get_weather",
                    "arguments":"{\"location\": \"Paris\", \"unit\": \"celsius\"}"}},
                {"id":"gem-call-7","type":"function","function":{"name":"get_time","arguments":"{}"}}
            ])
        );
        assert_eq!(t.finish_reason, "tool_calls");
    }

    #[test]
    fn non_stream_filters_and_candidates() {
        let t = answer(&fixture("generate_safety.json"), "hint", 5).unwrap();
        assert_eq!(t.finish_reason, "content_filter");
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["model"], "gemini-2.0-flash");
        assert_eq!(v["choices"][0]["message"]["content"], "");
        let t = answer(&fixture("generate_prompt_blocked.json"), "hint", 5).unwrap();
        assert_eq!(t.finish_reason, "content_filter");
        assert_eq!(t.usage.map(|u| u.prompt_tokens), Some(7));
        let t = answer(&fixture("generate_max_tokens_two_candidates.json"), "h", 5).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "First, cut");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][1]["index"], 1);
        assert_eq!(v["choices"][1]["finish_reason"], "stop");
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("STOP"), false), "stop");
        assert_eq!(finish_reason(Some("STOP"), true), "tool_calls");
        assert_eq!(finish_reason(Some("MAX_TOKENS"), true), "length");
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
        ] {
            assert_eq!(finish_reason(Some(r), false), "content_filter");
        }
        assert_eq!(finish_reason(Some("OTHER"), false), "stop");
    }

    #[test]
    fn error_bodies() {
        let e = answer(&fixture("error_resource_exhausted.json"), "h", 1).unwrap_err();
        assert_eq!(e.status(), 429);
        assert!(e.to_string().contains("exhausted"));
        assert_eq!(answer(b"not json", "h", 1).unwrap_err().status(), 502);
    }

    fn stream(fixture: &str) -> (Vec<u8>, Stream) {
        let make = || Box::new(Stream::new("hint", 9)) as Box<dyn SseTranslator>;
        let out = same_at_every_cut(&make, fixture.as_bytes());
        let mut t = Stream::new("hint", 9);
        t.feed(fixture.as_bytes());
        t.finish();
        (out, t)
    }

    #[test]
    fn text_stream_translates_at_every_cut() {
        let (out, t) = stream(STREAM_TEXT);
        let events = events_of(&out);
        assert_eq!(events.len(), 6, "{}", String::from_utf8_lossy(&out));
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert_eq!(events[0]["id"], "mIEKaKm3E4aK1MkPpLbR4Qs");
        assert_eq!(events[0]["model"], "gemini-2.5-flash");
        let text: String = events[1..4]
            .iter()
            .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, "The sky is blue — \"ü\" 日本.");
        assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            events[4]["usage"],
            json!({"prompt_tokens":9,"completion_tokens":21,"total_tokens":30,
                   "completion_tokens_details":{"reasoning_tokens":14}})
        );
        assert_eq!(events[5], "[DONE]");
        assert!(t.is_done() && t.has_content());
        let s = scan(&out);
        assert_eq!(s.usage, t.usage());
        assert!(s.done);
    }

    #[test]
    fn function_call_stream() {
        let (out, t) = stream(STREAM_CALLS);
        let events = events_of(&out);
        assert_eq!(
            events[1]["choices"][0]["delta"],
            json!({"tool_calls":[{"index":0,"id":"call_bbac3c526d2d1d3893630fe0","type":"function",
                "function":{"name":"get_weather","arguments":"{\"location\": \"Paris\",\"unit\": \"celsius\"}"}}]})
        );
        assert_eq!(
            events[2]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
        assert_eq!(
            events[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
        assert_eq!(events[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(t.usage().map(|u| u.total_tokens), Some(72));
    }

    #[test]
    fn safety_stream_ends_with_content_filter() {
        let (out, t) = stream(STREAM_SAFETY);
        let events = events_of(&out);
        assert_eq!(events[1]["choices"][0]["delta"]["content"], "Here is how");
        let last = &events[events.len() - 2];
        assert_eq!(last["choices"][0]["finish_reason"], "content_filter");
        assert!(t.is_done());
    }

    #[test]
    fn error_event_ends_the_stream_without_done() {
        let (out, t) = stream(STREAM_ERROR);
        let events = events_of(&out);
        assert_eq!(events.len(), 3);
        assert_eq!(events[2]["error"]["reason"], "upstream_error");
        assert!(events[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded"));
        assert!(t.is_failed());
        assert!(!scan(&out).done);
    }

    #[test]
    fn two_candidates_stream_as_two_choices() {
        let input = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"index\":0},",
            "{\"content\":{\"parts\":[{\"text\":\"B\"}]},\"index\":1}],\"responseId\":\"n2\"}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"MAX_TOKENS\",\"index\":1},",
            "{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\",\"index\":0}],",
            "\"usageMetadata\":{\"promptTokenCount\":2,\"candidatesTokenCount\":4,\"totalTokenCount\":6}}\n\n",
        );
        let (out, t) = stream(input);
        let events = events_of(&out);
        let text = |i: u64| -> String {
            events
                .iter()
                .filter(|e| e["choices"][0]["index"] == i)
                .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
                .collect()
        };
        assert_eq!((text(0), text(1)), ("Aa".to_string(), "Bb".to_string()));
        let last = &events[events.len() - 2];
        assert_eq!(
            last["choices"],
            json!([{"index":0,"delta":{},"finish_reason":"stop"},
                   {"index":1,"delta":{},"finish_reason":"length"}])
        );
        assert_eq!(t.usage().map(|u| u.total_tokens), Some(6));
    }

    #[test]
    fn a_cut_stream_ends_with_an_error_event() {
        // the first event only (whatever line ends the fixture has)
        let first = &STREAM_TEXT[..STREAM_TEXT[1..].find("data: ").unwrap() + 1];
        let mut t = Stream::new("h", 1);
        let mut out = t.feed(first.as_bytes()).to_vec();
        out.extend_from_slice(&t.finish());
        assert_eq!(events_of(&out).last().unwrap()["error"]["status"], 502);
        // an empty body is cut too
        let mut t = Stream::new("h", 1);
        assert!(events_of(&t.finish())[0]["error"].is_object());
        // a blocked prompt is complete
        let mut t = Stream::new("h", 1);
        let mut out = t
            .feed(b"data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":3}}\r\n\r\n")
            .to_vec();
        out.extend_from_slice(&t.finish());
        let events = events_of(&out);
        assert_eq!(events[1]["choices"][0]["finish_reason"], "content_filter");
        assert!(t.is_done() && !t.has_content());
    }

    #[test]
    fn cached_content_and_thoughts_are_read() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"ok"}]},
            "finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1200,
            "cachedContentTokenCount":1000,"candidatesTokenCount":30,"thoughtsTokenCount":70,
            "totalTokenCount":1300}}"#;
        let t = answer(body, "h", 1).unwrap();
        assert_eq!(
            t.usage,
            Some(Usage {
                prompt_tokens: 1200,
                completion_tokens: 100,
                total_tokens: 1300,
                cached_tokens: 1000,
                cache_write_tokens: 0,
                reasoning_tokens: 70,
                ..Usage::default()
            })
        );
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1000);
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            70
        );
    }
}
