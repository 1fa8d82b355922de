//! `kind = "bedrock"`, every model family but Claude: OpenAI chat requests to Bedrock's
//! Converse API (`POST /model/{modelId}/converse`, or `/converse-stream`; the model is in the
//! path, never in the body), and its answers and streams back to OpenAI's shapes. The rules
//! it keeps are [`crate::contract::converse`]'s, each with its AWS doc.
//!
//! Request mapping ([`request`]):
//!
//! - `system`/`developer` messages → `system` text blocks; for Amazon Nova models (prompt
//!   caching) a `cachePoint` block after them;
//! - `user` → role `user` with `text` blocks, images (`data:` URLs) as `image` blocks
//!   (`format` from the media type, the bytes base64), `file` parts (`file_data` `data:` URLs)
//!   as `document` blocks (`format` from the media type or the file name, `name` made one
//!   Converse takes); `assistant` → role `assistant` with `text` blocks and `tool_calls` as
//!   `toolUse` blocks (`arguments` → `input`, ids mapped to `toolUseId`s Converse takes);
//!   `tool` messages → `toolResult` blocks of a `user` turn (the text as `text`, images as
//!   `image` where the model takes them). Consecutive turns of one role are merged; blank
//!   texts are left out (Converse refuses a blank `text`); another vendor's signed thinking
//!   (`thinking_blocks`) is dropped, noted `thinking_signature`;
//! - `inferenceConfig`: `max_tokens`/`max_completion_tokens` → `maxTokens`, `temperature`,
//!   `top_p` → `topP`, `stop` → `stopSequences`;
//! - `tools` → `toolConfig.tools` (`toolSpec` with `inputSchema.json`); `tool_choice`
//!   auto/required/function → `auto`/`any`/`tool` (see the contract for models without `any`
//!   and for `none`);
//! - `reasoning_effort` (or `thinking`) → `additionalModelRequestFields.reasoningConfig` on
//!   Amazon Nova 2, else left out and noted;
//! - `response_format` `json_schema` → `outputConfig.textFormat` (`json_schema`, the schema as
//!   a string, its name); `json_object` has no Converse form: left out, noted
//!   `response_format`.
//!
//! Refused (400 naming the field): `n` above 1, an image or file by URL, media Converse does
//! not take, and what the contract refuses. Dropped: `user`, `logit_bias`, `logprobs`,
//! `top_logprobs`, `seed`, `presence_penalty`, `frequency_penalty`,
//! `stream` (the path says it), `stream_options`, `parallel_tool_calls`, `store`,
//! `metadata`, `service_tier`, and any field this module does not name.
//!
//! Answers: `output.message.content` text blocks → `message.content`, `toolUse` blocks →
//! `tool_calls` (Bedrock's `toolUseId` kept when every vendor takes it, else a short id made
//! from it), `reasoningContent.reasoningText.text` → `reasoning_content`. `stopReason`
//! `end_turn`/`stop_sequence` → `stop` (`tool_calls` when the answer called tools),
//! `tool_use` → `tool_calls`, `max_tokens`/`model_context_window_exceeded` → `length`,
//! `content_filtered`/`guardrail_intervened` → `content_filter` (the chat API's
//! content-filter error, [`crate::dialect::refusal`]). Usage: `inputTokens` +
//! `cacheReadInputTokens` + `cacheWriteInputTokens` → `prompt_tokens` (Bedrock counts the
//! three apart), `cacheReadInputTokens` → `cached_tokens`, `cacheWriteInputTokens` →
//! `cache_write_tokens`, `outputTokens` → `completion_tokens`.
//!
//! Streams: the `ConverseStream` events as the Bedrock re-framer renders them
//! (`event: <type>` + `data: <payload>`; `messageStart`, `contentBlockStart`,
//! `contentBlockDelta`, `contentBlockStop`, `messageStop`, `metadata`, and `error` for an
//! exception frame) → chat chunks ([`Stream`]).

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;
use crate::contract::converse as contract;
use crate::dialect::adjusted::Adjustments;
use crate::dialect::chat::wire::{
    content, data_url, field, messages, plain_text, raw_field, stop_sequences, tool_choice,
    AssistantMessage, Choice, Completion, Image, OaContent, OaMessage, OaPart, Str, ToolCallOut,
    ToolChoice,
};
use crate::dialect::chat::ChatRequest;
use crate::dialect::converse::is_filtered;
use crate::dialect::converse::wire::{
    AdditionalFields, Block, BlockIn, CachePoint, DocumentBlock, EventIn, ImageBlock,
    InferenceConfig, InputSchema, JsonSchemaDefinition, Message, NovaReasoning, OutputConfig,
    OutputFormat, OutputStructure, Request, ResponseIn, Role, Source, SystemBlock, Tool,
    ToolChoiceOut, ToolConfig, ToolResult, ToolResultContent, ToolSpec, ToolUse,
};
use crate::error::GatewayError;

use super::chunks::{
    content_delta, reasoning_delta, to_bytes, tool_args_delta, tool_start_delta, ChunkWriter,
    ROLE_DELTA,
};
use super::errors::{unreadable, unsupported, vendor_failure};
use super::request::{arguments_object, function_tools, push_merged, reasoning_budget};
use super::translate::{End, EventState, Translated, Translating};
use super::vendor_state;

const VENDOR: &str = "bedrock";

/// The schema of a tool declared without `parameters`, or only from the history.
const OPEN_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

// ---------------------------------------------------------------------------------------------
// Request.

/// The `Converse` body for `req` to `upstream_model` (the same for `ConverseStream`: the path
/// differs), made to keep [`crate::contract::converse`]; what that changed is noted in
/// `adjusted`.
pub fn request(
    req: &ChatRequest<'_>,
    upstream_model: &str,
    adjusted: &mut Adjustments,
) -> Result<Bytes, GatewayError> {
    if field::<u64>(req, "n")?.is_some_and(|n| n > 1) {
        return Err(unsupported(VENDOR, "`n` above 1 is not supported"));
    }
    let mut conv = Conversation::new(upstream_model);
    for (i, m) in messages(req)?.into_iter().enumerate() {
        conv.message(i, m, adjusted)?;
    }
    conv.close()?;
    if conv
        .turns
        .first()
        .is_some_and(|(role, _)| *role != Role::User)
    {
        return Err(contract::must_start_with_user());
    }
    let mut system = conv.system;
    if !system.is_empty() && contract::takes_cache_points(upstream_model) {
        system.push(SystemBlock::CachePoint(CachePoint::DEFAULT));
    }
    let tool_config = tool_config(req, upstream_model, &conv.history_tools, adjusted)?;
    let body = Request {
        messages: conv
            .turns
            .into_iter()
            .map(|(role, content)| Message { role, content })
            .collect(),
        system,
        inference_config: inference_config(req, adjusted)?,
        tool_config,
        additional_model_request_fields: reasoning(req, upstream_model, adjusted)?,
        output_config: output_config(req, adjusted)?,
    };
    Ok(to_bytes(&body))
}

/// The conversation as it is converted, message by message.
struct Conversation<'a> {
    model: &'a str,
    system: Vec<SystemBlock<'a>>,
    turns: Vec<(Role, Vec<Block<'a>>)>,
    /// The tool calls of the latest assistant turn: (the client's id, its message, answered).
    calls: Vec<(Cow<'a, str>, usize, bool)>,
    /// The names of the tools the history called, in order, each once.
    history_tools: Vec<Cow<'a, str>>,
    images: usize,
    documents: usize,
}

impl<'a> Conversation<'a> {
    fn new(model: &'a str) -> Self {
        Conversation {
            model,
            system: Vec::new(),
            turns: Vec::new(),
            calls: Vec::new(),
            history_tools: Vec::new(),
            images: 0,
            documents: 0,
        }
    }

    fn last_role(&self) -> Option<Role> {
        self.turns.last().map(|(r, _)| *r)
    }

    fn message(
        &mut self,
        i: usize,
        m: OaMessage<'a>,
        adjusted: &mut Adjustments,
    ) -> Result<(), GatewayError> {
        match m.role.as_ref() {
            "system" | "developer" => {
                let text = plain_text(content(m.content)?, "\n");
                if !text.trim().is_empty() {
                    self.system.push(SystemBlock::Text(text));
                }
            }
            "user" => {
                let blocks = self.user_blocks(i, content(m.content)?, adjusted)?;
                push_merged(&mut self.turns, Role::User, blocks);
            }
            "assistant" => self.assistant(i, m, adjusted)?,
            "tool" => {
                let block = self.tool_result(i, m)?;
                push_merged(&mut self.turns, Role::User, vec![block]);
            }
            other => {
                return Err(unsupported(
                    VENDOR,
                    format!("messages with role `{other}` are not supported"),
                ))
            }
        }
        Ok(())
    }

    /// Every call of the latest assistant turn answered, else a 400 naming the call's message.
    fn close(&mut self) -> Result<(), GatewayError> {
        if let Some((id, at, _)) = self.calls.iter().find(|(_, _, answered)| !answered) {
            return Err(contract::call_without_result(*at, id));
        }
        self.calls.clear();
        Ok(())
    }

    fn user_blocks(
        &mut self,
        i: usize,
        content: Option<OaContent<'a>>,
        adjusted: &mut Adjustments,
    ) -> Result<Vec<Block<'a>>, GatewayError> {
        match content {
            None => Ok(Vec::new()),
            Some(OaContent::Text(t)) => Ok(text_block(t).into_iter().collect()),
            Some(OaContent::Parts(parts)) => {
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    out.extend(self.user_part(i, p, adjusted)?);
                }
                Ok(out)
            }
        }
    }

    fn user_part(
        &mut self,
        i: usize,
        part: OaPart<'a>,
        adjusted: &mut Adjustments,
    ) -> Result<Option<Block<'a>>, GatewayError> {
        let at = format!("messages[{i}].content");
        match part.kind.as_ref() {
            "text" => Ok(part.text.and_then(text_block)),
            "image_url" => Ok(Some(Block::Image(self.image(&at, part.image()?)?))),
            "file" => Ok(Some(Block::Document(self.document(&at, &part, adjusted)?))),
            other => Err(unsupported(
                VENDOR,
                format!("`{at}`: content parts of type `{other}` are not supported"),
            )),
        }
    }

    /// An inline image as an `image` block, counted against the request's 20.
    fn image(&mut self, at: &str, image: Image<'a>) -> Result<ImageBlock<'a>, GatewayError> {
        let Image::Base64 { media_type, data } = image else {
            return Err(unsupported(
                VENDOR,
                format!("`{at}`: an image by URL cannot be carried (Converse takes the image's bytes: send a `data:` URL)"),
            ));
        };
        self.images += 1;
        contract::check_count(at, "image", self.images, contract::IMAGES_MAX)?;
        contract::check_size(at, "image", &data, contract::IMAGE_MAX_BYTES)?;
        Ok(ImageBlock {
            format: contract::image_format(at, &media_type)?,
            source: Source { bytes: data },
        })
    }

    /// A `file` part (`file_data` as a `data:` URL, `filename`) as a `document` block.
    fn document(
        &mut self,
        at: &str,
        part: &OaPart<'a>,
        adjusted: &mut Adjustments,
    ) -> Result<DocumentBlock<'a>, GatewayError> {
        #[derive(serde::Deserialize)]
        struct File<'a> {
            #[serde(borrow, default)]
            file_data: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            filename: Option<Cow<'a, str>>,
        }
        let bad = |what: &str| unsupported(VENDOR, format!("`{at}`: {what}"));
        let file: File<'a> = part
            .file
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
            .map_err(|_| bad("a `file` part needs a `file` object"))?
            .ok_or_else(|| bad("a `file` part needs a `file` object"))?;
        let data = file
            .file_data
            .ok_or_else(|| bad("a file by `file_id` cannot be carried: send its `file_data`"))?;
        let Some(Image::Base64 { media_type, data }) = data_url(data) else {
            return Err(bad(
                "a file's `file_data` must be `data:<media type>;base64,<data>`",
            ));
        };
        let filename = file.filename.unwrap_or(Cow::Borrowed("document"));
        let format = contract::document_format(at, &media_type, &filename)?;
        self.documents += 1;
        contract::check_count(at, "document", self.documents, contract::DOCUMENTS_MAX)?;
        contract::check_size(at, "document", &data, contract::DOCUMENT_MAX_BYTES)?;
        let name = match filename {
            Cow::Borrowed(n) => contract::document_name(n, adjusted),
            Cow::Owned(n) => Cow::Owned(contract::document_name(&n, adjusted).into_owned()),
        };
        Ok(DocumentBlock {
            format,
            name,
            source: Source { bytes: data },
        })
    }

    /// An assistant turn: its text, then its tool calls (ids mapped for Converse). Another
    /// vendor's signed thinking is dropped and noted.
    fn assistant(
        &mut self,
        i: usize,
        m: OaMessage<'a>,
        adjusted: &mut Adjustments,
    ) -> Result<(), GatewayError> {
        if m.thinking_blocks.as_ref().is_some_and(|b| !b.is_empty()) {
            adjusted.note(vendor_state::DROPPED);
        }
        let mut blocks: Vec<Block<'a>> = match content(m.content)? {
            None => Vec::new(),
            Some(OaContent::Text(t)) => text_block(t).into_iter().collect(),
            Some(OaContent::Parts(ps)) => ps
                .into_iter()
                .filter_map(|p| match p.kind.as_ref() {
                    "text" => p.text.and_then(text_block),
                    "refusal" => p.refusal.and_then(text_block),
                    _ => None,
                })
                .collect(),
        };
        let calls = m.tool_calls.unwrap_or_default();
        if blocks.is_empty() && calls.is_empty() {
            return Ok(());
        }
        if self.last_role() == Some(Role::User) {
            self.close()?;
        }
        for call in calls {
            blocks.push(Block::ToolUse(ToolUse {
                tool_use_id: contract::tool_use_id(call.id.clone()),
                name: call.function.name.clone(),
                input: arguments_object(&call.function.arguments)?,
            }));
            if !self.history_tools.contains(&call.function.name) {
                self.history_tools.push(call.function.name);
            }
            self.calls.push((call.id, i, false));
        }
        push_merged(&mut self.turns, Role::Assistant, blocks);
        Ok(())
    }

    /// A `tool` message as a `toolResult` answering a call of the latest assistant turn.
    fn tool_result(&mut self, i: usize, m: OaMessage<'a>) -> Result<Block<'a>, GatewayError> {
        let id = m.tool_call_id.ok_or_else(|| {
            GatewayError::InvalidRequest("a `tool` message needs a `tool_call_id`".into())
        })?;
        let call = self
            .calls
            .iter_mut()
            .find(|(call, _, answered)| *call == id && !answered)
            .ok_or_else(|| contract::result_without_call(i, &id))?;
        call.2 = true;
        let at = format!("messages[{i}].content");
        let mut out = Vec::new();
        match content(m.content)? {
            None => {}
            Some(OaContent::Text(t)) => out.extend(result_text(t)),
            Some(OaContent::Parts(parts)) => {
                for p in parts {
                    match p.kind.as_ref() {
                        "text" => out.extend(p.text.and_then(result_text)),
                        "image_url" if contract::takes_tool_result_images(self.model) => {
                            out.push(ToolResultContent::Image(self.image(&at, p.image()?)?))
                        }
                        "image_url" => {
                            return Err(unsupported(
                                VENDOR,
                                format!("`{at}`: an image in a tool result cannot be carried to this model (Converse takes them for Amazon Nova and Claude)"),
                            ))
                        }
                        other => {
                            return Err(unsupported(
                                VENDOR,
                                format!("`{at}`: tool result parts of type `{other}` are not supported"),
                            ))
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            // Converse refuses a blank `text`; an empty result is an empty JSON object.
            out.push(ToolResultContent::Json(empty_object()));
        }
        Ok(Block::ToolResult(ToolResult {
            tool_use_id: contract::tool_use_id(id),
            content: out,
        }))
    }
}

/// A text block, or none for a blank text (Converse refuses a blank `text`).
fn text_block(text: Cow<'_, str>) -> Option<Block<'_>> {
    (!text.trim().is_empty()).then_some(Block::Text(text))
}

fn result_text(text: Cow<'_, str>) -> Option<ToolResultContent<'_>> {
    (!text.trim().is_empty()).then_some(ToolResultContent::Text(text))
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).unwrap_or_else(|_| open_schema().to_owned())
}

fn open_schema() -> &'static RawValue {
    static SCHEMA: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        RawValue::from_string(OPEN_SCHEMA.to_string()).unwrap_or_else(|_| RawValue::NULL.to_owned())
    })
}

/// `toolConfig`: the client's function tools (or, for a history with tool calls and no
/// tools, the history's tools with an open schema, noted `tools`) and the choice.
fn tool_config<'a>(
    req: &ChatRequest<'a>,
    model: &str,
    history_tools: &[Cow<'a, str>],
    adjusted: &mut Adjustments,
) -> Result<Option<ToolConfig<'a>>, GatewayError> {
    let defs = function_tools(req, VENDOR)?;
    let choice = tool_choice(req)?;
    let mut tools = Vec::with_capacity(defs.len());
    for (i, f) in defs.into_iter().enumerate() {
        contract::check_tool_name(i, &f.name)?;
        tools.push(Tool::ToolSpec(ToolSpec {
            name: f.name,
            description: f.description.filter(|d| !d.is_empty()),
            input_schema: InputSchema {
                json: f
                    .parameters
                    .filter(|p| p.get() != "null")
                    .unwrap_or(open_schema()),
            },
        }));
    }
    let history = !history_tools.is_empty();
    if tools.is_empty() {
        if !history {
            return Ok(None);
        }
        adjusted.note("tools");
        for name in history_tools {
            tools.push(Tool::ToolSpec(ToolSpec {
                name: name.clone(),
                description: None,
                input_schema: InputSchema {
                    json: open_schema(),
                },
            }));
        }
        return Ok(Some(ToolConfig {
            tools,
            tool_choice: None,
        }));
    }
    let forced = contract::takes_forced_tool_choice(model);
    let tool_choice = match choice {
        None => None,
        Some(ToolChoice::Auto) => Some(ToolChoiceOut::Auto {}),
        Some(ToolChoice::None) if !history => return Ok(None),
        Some(ToolChoice::None) => {
            adjusted.note("tool_choice");
            None
        }
        Some(ToolChoice::Required) if forced => Some(ToolChoiceOut::Any {}),
        Some(ToolChoice::Function(name)) if forced => Some(ToolChoiceOut::Tool { name }),
        Some(ToolChoice::Required | ToolChoice::Function(_)) => {
            adjusted.note("tool_choice");
            Some(ToolChoiceOut::Auto {})
        }
    };
    Ok(Some(ToolConfig { tools, tool_choice }))
}

fn inference_config<'a>(
    req: &ChatRequest<'a>,
    adjusted: &mut Adjustments,
) -> Result<InferenceConfig<'a>, GatewayError> {
    let temperature = raw_field(req, "temperature");
    let top_p = raw_field(req, "top_p");
    contract::check_unit("temperature", temperature.map(RawValue::get))?;
    contract::check_unit("top_p", top_p.map(RawValue::get))?;
    contract::check_max_tokens(req.max_tokens)?;
    Ok(InferenceConfig {
        max_tokens: req.max_tokens,
        temperature,
        top_p,
        stop_sequences: contract::stop_sequences(stop_sequences(req)?, adjusted)?,
    })
}

/// `additionalModelRequestFields` for the reasoning asked: Nova 2's `reasoningConfig`;
/// on another model family the ask is left out and noted.
fn reasoning(
    req: &ChatRequest<'_>,
    model: &str,
    adjusted: &mut Adjustments,
) -> Result<Option<AdditionalFields>, GatewayError> {
    let budget = match reasoning_budget(req)? {
        None | Some(0) => return Ok(None),
        Some(b) => b,
    };
    if !contract::takes_nova_reasoning(model) {
        let asked = match field::<Str<'_>>(req, "reasoning_effort")? {
            Some(_) => "reasoning_effort",
            None => "thinking",
        };
        adjusted.note(asked);
        return Ok(None);
    }
    Ok(Some(AdditionalFields {
        reasoning_config: Some(NovaReasoning {
            kind: "enabled",
            max_reasoning_effort: Some(contract::nova_effort(budget)),
        }),
    }))
}

/// `response_format` `json_schema` → `outputConfig.textFormat` with the schema (as a
/// string) and its name; `json_object`, which Converse has no form of, is left out and noted.
fn output_config<'a>(
    req: &ChatRequest<'a>,
    adjusted: &mut Adjustments,
) -> Result<Option<OutputConfig<'a>>, GatewayError> {
    #[derive(serde::Deserialize)]
    struct Format<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow, default)]
        json_schema: Option<Schema<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Schema<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        schema: Option<&'a RawValue>,
    }
    let Some(f) = field::<Format<'a>>(req, "response_format")? else {
        return Ok(None);
    };
    match (f.kind.as_ref(), f.json_schema) {
        (
            "json_schema",
            Some(Schema {
                name,
                schema: Some(schema),
            }),
        ) => Ok(Some(OutputConfig {
            text_format: OutputFormat {
                kind: "json_schema",
                structure: OutputStructure {
                    json_schema: JsonSchemaDefinition {
                        schema: schema.get().to_string(),
                        name,
                    },
                },
            },
        })),
        ("text", _) => Ok(None),
        _ => {
            adjusted.note("response_format");
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// OpenAI's `finish_reason` for a `stopReason`; `called` when the answer called tools.
pub fn finish_reason(reason: Option<&str>, called: bool) -> &'static str {
    match reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some(r) if is_filtered(r) => "content_filter",
        Some("tool_use") => "tool_calls",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// The chat id of a Converse answer (Bedrock gives none in the body): made from `seed`, the
/// answer's bytes (a whole answer) or its first event's (a stream), which differ from answer
/// to answer by Bedrock's latency metrics and random `p` padding.
fn answer_id(seed: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hex = hex::encode(Sha256::digest(seed));
    format!("bedrock-{}", &hex[..24])
}

/// A successful `Converse` answer as an OpenAI `chat.completion`.
pub fn answer(body: &[u8], model_hint: &str, created: u64) -> Result<Translated, GatewayError> {
    let r: ResponseIn<'_> =
        serde_json::from_slice(body).map_err(|e| unreadable(VENDOR, "an answer", e))?;
    let blocks = r
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default();
    let (text, reasoning, calls) = read_blocks(blocks);
    let finish = finish_reason(r.stop_reason.as_deref(), !calls.is_empty());
    let mut message = AssistantMessage::new(text, calls);
    message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    let usage = r.usage.and_then(|u| u.usage());
    let id = answer_id(body);
    let body = to_bytes(&Completion {
        id: &id,
        object: "chat.completion",
        created,
        model: model_hint,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: finish,
        }],
        usage,
    });
    Ok(Translated {
        body,
        usage,
        finish_reason: finish,
    })
}

/// An answer's text, reasoning text and tool calls.
fn read_blocks(blocks: Vec<BlockIn<'_>>) -> (String, String, Vec<ToolCallOut<'static>>) {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        if let Some(t) = &b.text {
            text.push_str(t);
        }
        if let Some(r) = b.reasoning_content.and_then(|r| r.reasoning_text) {
            reasoning.push_str(&r.text);
        }
        if let Some(t) = b.tool_use {
            let args = t.input.map_or("{}", RawValue::get).to_string();
            calls.push(ToolCallOut::new(
                vendor_state::client_call_id(&t.tool_use_id),
                t.name.into_owned(),
                args,
            ));
        }
    }
    (text, reasoning, calls)
}

/// The status of a stream's exception, by its type (AWS's Bedrock API reference,
/// "ConverseStream", Errors): throttling 429 and validation 400 (the client's to see);
/// unavailable 503; the model's own failures (`modelStreamErrorException`,
/// `modelTimeoutException`, `internalServerException`, …) 500: the vendor failed, which
/// the client sees as the gateway's 502 (as Bedrock's 424 `ModelErrorException` answers are).
fn exception_status(kind: &str) -> u16 {
    match kind.to_ascii_lowercase().trim_end_matches("exception") {
        "throttling" => 429,
        "validation" => 400,
        "serviceunavailable" => 503,
        _ => 500,
    }
}

// ---------------------------------------------------------------------------------------------
// Streams.

/// Translates the `ConverseStream` events (as the Bedrock re-framer renders them) into an
/// OpenAI chunk stream (see [`super::translate::SseTranslator`]): `messageStart` → the role
/// chunk; text deltas → content deltas; a `toolUse` start → a tool call delta with its id and
/// name, its `input` deltas → argument fragments; reasoning text → `reasoning_content`
/// deltas; `messageStop` → the finish reason; `metadata` (after it) → the last chunk with the
/// usage, and `[DONE]`. A body that ends after `messageStop` without `metadata` ends with the
/// last chunk without usage; one that ends before `messageStop` was cut: an error event. An
/// `error` event (an exception frame) becomes one error event.
pub type Stream = Translating<StreamState>;

/// What a [`Stream`] keeps between events.
#[derive(Debug)]
pub struct StreamState {
    created: u64,
    model_hint: String,
    writer: Option<ChunkWriter>,
    /// (content block index, tool call number) of each tool call begun.
    tools: Vec<(u32, u32)>,
    finish: Option<&'static str>,
    usage: Option<Usage>,
    content: bool,
    end: End,
}

impl Stream {
    /// `model_hint` names the model (Converse never does); `created` is the chunks'
    /// timestamp.
    pub fn new(model_hint: &str, created: u64) -> Self {
        Translating::over(StreamState {
            created,
            model_hint: model_hint.to_string(),
            writer: None,
            tools: Vec::new(),
            finish: None,
            usage: None,
            content: false,
            end: End::Open,
        })
    }
}

impl EventState for StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        let e: EventIn<'_> = match serde_json::from_slice(data) {
            Ok(e) => e,
            Err(err) => return self.fail(unreadable(VENDOR, "a stream event", err), out),
        };
        if e.kind.as_deref() == Some("error") {
            let (kind, message) = e.error.map_or((Cow::Borrowed(""), Cow::Borrowed("")), |x| {
                (x.kind, x.message)
            });
            let message = format!("{kind}: {message}");
            return self.fail(
                vendor_failure(VENDOR, exception_status(&kind), &message),
                out,
            );
        }
        self.begin(data, out);
        let index = e.content_block_index.unwrap_or(0);
        if let Some(t) = e.start.and_then(|s| s.tool_use) {
            let n = self.tools.len() as u32;
            self.tools.push((index, n));
            let id = vendor_state::client_call_id(&t.tool_use_id);
            self.delta(out, &tool_start_delta(n, &id, &t.name, ""));
        }
        if let Some(d) = e.delta {
            if let Some(t) = d.text.filter(|t| !t.is_empty()) {
                self.delta(out, &content_delta(&t));
            }
            if let Some(t) = d.tool_use {
                if let Some(&(_, n)) = self.tools.iter().rev().find(|(i, _)| *i == index) {
                    if !t.input.is_empty() {
                        self.delta(out, &tool_args_delta(n, &t.input));
                    }
                }
            }
            if let Some(t) = d.reasoning_content.and_then(|r| r.text) {
                if !t.is_empty() {
                    self.delta(out, &reasoning_delta(&t));
                }
            }
        }
        if let Some(reason) = e.stop_reason.as_deref() {
            self.finish = Some(finish_reason(Some(reason), !self.tools.is_empty()));
        }
        if let Some(u) = e.usage.and_then(|u| u.usage()) {
            self.usage = Some(u);
            if self.finish.is_some() {
                self.last(out);
            }
        }
    }

    /// The end of the body: the last chunk and `[DONE]` when `messageStop` came, else an
    /// error event.
    fn at_eof(&mut self, out: &mut Vec<u8>) {
        if self.finish.is_none() {
            return self.fail(
                GatewayError::Upstream(
                    "the bedrock stream ended before the answer was complete".into(),
                ),
                out,
            );
        }
        self.last(out);
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
    /// The chunk envelope (its id made from the first event, `first`) and the role chunk, at
    /// the first event.
    fn begin(&mut self, first: &[u8], out: &mut Vec<u8>) {
        if self.writer.is_some() {
            return;
        }
        let id = answer_id(first);
        let w = ChunkWriter::new(&id, self.created, &self.model_hint);
        w.chunk(out, 0, ROLE_DELTA);
        self.writer = Some(w);
    }

    fn delta(&mut self, out: &mut Vec<u8>, delta: &str) {
        self.content = true;
        if let Some(w) = &self.writer {
            w.chunk(out, 0, delta);
        }
    }

    fn last(&mut self, out: &mut Vec<u8>) {
        self.begin(b"", out);
        if let Some(w) = &self.writer {
            w.last(out, &[(0, self.finish.unwrap_or("stop"))], self.usage);
        }
        self.end = End::Done;
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

    const NOVA: &str = "us.amazon.nova-pro-v1:0";
    const LLAMA: &str = "meta.llama3-1-70b-instruct-v1:0";

    fn translate_for(model: &str, body: &Value) -> (Value, Adjustments) {
        let body = body.to_string();
        let req = parse(body.as_bytes()).unwrap();
        let mut adjusted = Adjustments::default();
        let out = request(&req, model, &mut adjusted).unwrap();
        (serde_json::from_slice(&out).unwrap(), adjusted)
    }

    fn refusal(model: &str, body: &Value) -> GatewayError {
        let body = body.to_string();
        let req = parse(body.as_bytes()).unwrap();
        request(&req, model, &mut Adjustments::default()).unwrap_err()
    }

    #[test]
    fn request_maps_roles_system_images_and_config() {
        let (v, adjusted) = translate_for(
            NOVA,
            &json!({"model":"b","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"developer","content":[{"type":"text","text":"French."}]},
                {"role":"user","content":[{"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type":"text","text":"  "}]},
                {"role":"user","content":"Sure?"},
                {"role":"assistant","content":"A cat."},
                {"role":"user","content":"Thanks"}],
               "temperature":0.2,"top_p":0.8,"max_tokens":100,"stop":["x",""],
               "user":"dropped","logit_bias":{"1":2},"seed":3,"stream":true}),
        );
        assert_eq!(
            v,
            json!({
                "messages":[
                    {"role":"user","content":[{"text":"What is this?"},
                        {"image":{"format":"jpeg","source":{"bytes":"/9j/4AAQ"}}},
                        {"text":"Sure?"}]},
                    {"role":"assistant","content":[{"text":"A cat."}]},
                    {"role":"user","content":[{"text":"Thanks"}]}],
                "system":[{"text":"Be brief."},{"text":"French."},{"cachePoint":{"type":"default"}}],
                "inferenceConfig":{"maxTokens":100,"temperature":0.2,"topP":0.8,"stopSequences":["x"]}
            })
        );
        assert_eq!(adjusted.as_slice(), ["stop"]);
        // No prompt caching on Llama: no cachePoint; nothing to configure: no inferenceConfig.
        let (v, _) = translate_for(
            LLAMA,
            &json!({"model":"b","messages":[{"role":"system","content":"S"},{"role":"user","content":"hi"}]}),
        );
        assert_eq!(
            v,
            json!({"messages":[{"role":"user","content":[{"text":"hi"}]}],"system":[{"text":"S"}]})
        );
    }

    fn tool_history(choice: Value) -> Value {
        json!({"model":"b","messages":[
            {"role":"user","content":"Weather and time in Paris?"},
            {"role":"assistant","content":"","tool_calls":[
                {"id":"functions.get_weather:0","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},
                {"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]},
            {"role":"tool","tool_call_id":"functions.get_weather:0","content":"{\"temp\": 18}"},
            {"role":"tool","tool_call_id":"call_b","content":""},
            {"role":"user","content":"And tomorrow?"}],
           "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather",
                "parameters":{"type":"object","properties":{"location":{"type":"string"}}}}},
                    {"type":"function","function":{"name":"get_time","description":""}}],
           "tool_choice":choice})
    }

    #[test]
    fn request_maps_tools_calls_and_results() {
        let choice = json!({"type":"function","function":{"name":"get_weather"}});
        let (v, adjusted) = translate_for(NOVA, &tool_history(choice.clone()));
        let mapped = crate::contract::portable_id("functions.get_weather:0");
        assert_eq!(
            v["messages"],
            json!([
                {"role":"user","content":[{"text":"Weather and time in Paris?"}]},
                {"role":"assistant","content":[
                    {"toolUse":{"toolUseId":mapped,"name":"get_weather","input":{"location":"Paris"}}},
                    {"toolUse":{"toolUseId":"call_b","name":"get_time","input":{}}}]},
                {"role":"user","content":[
                    {"toolResult":{"toolUseId":mapped,"content":[{"text":"{\"temp\": 18}"}]}},
                    {"toolResult":{"toolUseId":"call_b","content":[{"json":{}}]}},
                    {"text":"And tomorrow?"}]}
            ])
        );
        assert_eq!(
            v["toolConfig"],
            json!({"tools":[
                {"toolSpec":{"name":"get_weather","description":"Weather",
                    "inputSchema":{"json":{"type":"object","properties":{"location":{"type":"string"}}}}}},
                {"toolSpec":{"name":"get_time","inputSchema":{"json":{"type":"object","properties":{}}}}}],
                "toolChoice":{"tool":{"name":"get_weather"}}})
        );
        assert!(adjusted.is_empty(), "{adjusted:?}");
        // `required` is `any` on Nova; a forced choice on Llama becomes `auto`, noted.
        let (v, _) = translate_for(NOVA, &tool_history(json!("required")));
        assert_eq!(v["toolConfig"]["toolChoice"], json!({"any":{}}));
        let (v, adjusted) = translate_for(LLAMA, &tool_history(choice));
        assert_eq!(v["toolConfig"]["toolChoice"], json!({"auto":{}}));
        assert_eq!(adjusted.as_slice(), ["tool_choice"]);
        // `none` with tool blocks in the history: the tools stay, without a choice (noted).
        let (v, adjusted) = translate_for(NOVA, &tool_history(json!("none")));
        assert!(v["toolConfig"]["tools"].is_array());
        assert!(v["toolConfig"].get("toolChoice").is_none());
        assert_eq!(adjusted.as_slice(), ["tool_choice"]);
        // `none` without tool blocks: no toolConfig at all.
        let (v, adjusted) = translate_for(
            NOVA,
            &json!({"model":"b","messages":[{"role":"user","content":"x"}],
                "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}),
        );
        assert!(v.get("toolConfig").is_none() && adjusted.is_empty());
        // A history of tool calls without `tools`: the history's tools, open schema, noted.
        let mut body = tool_history(Value::Null);
        body.as_object_mut().unwrap().remove("tools");
        let (v, adjusted) = translate_for(NOVA, &body);
        assert_eq!(
            v["toolConfig"],
            json!({"tools":[
                {"toolSpec":{"name":"get_weather","inputSchema":{"json":{"type":"object","properties":{}}}}},
                {"toolSpec":{"name":"get_time","inputSchema":{"json":{"type":"object","properties":{}}}}}]})
        );
        assert_eq!(adjusted.as_slice(), ["tools"]);
    }

    #[test]
    fn order_and_pairing_are_refused_with_the_message_named() {
        let e = refusal(
            NOVA,
            &json!({"model":"b","messages":[{"role":"assistant","content":"Hi"},{"role":"user","content":"x"}]}),
        );
        assert!(
            e.to_string().contains("must start with a user message"),
            "{e}"
        );
        let e = refusal(
            NOVA,
            &json!({"model":"b","messages":[{"role":"user","content":"x"},
                {"role":"tool","tool_call_id":"nope","content":"x"}]}),
        );
        assert!(
            e.to_string().contains("`messages[1]`") && e.to_string().contains("nope"),
            "{e}"
        );
        // A call left unanswered before the next assistant turn, or at the end.
        let unanswered = json!({"model":"b","messages":[{"role":"user","content":"x"},
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"user","content":"never mind"},
            {"role":"assistant","content":"ok"}]});
        let e = refusal(NOVA, &unanswered);
        assert!(
            e.to_string().contains("`messages[1]`") && e.to_string().contains("c1"),
            "{e}"
        );
        assert_eq!(e.status(), 400);
        // A result answering a call of an earlier turn.
        let stale = json!({"model":"b","messages":[{"role":"user","content":"x"},
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"r"},
            {"role":"assistant","content":"done"},
            {"role":"tool","tool_call_id":"c1","content":"again"}]});
        let e = refusal(NOVA, &stale);
        assert!(e.to_string().contains("`messages[4]`"), "{e}");
    }

    #[test]
    fn sampling_names_media_and_n_are_checked() {
        let base = |extra: Value| {
            let mut b = json!({"model":"b","messages":[{"role":"user","content":"x"}]});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        for (extra, field) in [
            (json!({"temperature":1.5}), "`temperature`"),
            (json!({"top_p":2}), "`top_p`"),
            (json!({"max_tokens":0}), "`max_tokens`"),
            (json!({"n":2}), "`n`"),
            (
                json!({"tools":[{"type":"function","function":{"name":"a.b"}}]}),
                "`tools[0]`",
            ),
        ] {
            let e = refusal(NOVA, &base(extra));
            assert_eq!(e.status(), 400);
            assert!(
                e.to_string().contains(field) && e.to_string().contains("bedrock"),
                "{e}"
            );
        }
        let image = |url: &str| {
            json!({"model":"b","messages":[{"role":"user","content":[
                {"type":"image_url","image_url":{"url":url}}]}]})
        };
        let e = refusal(NOVA, &image("https://x/y.png"));
        assert!(
            e.to_string().contains("messages[0].content") && e.to_string().contains("URL"),
            "{e}"
        );
        let e = refusal(NOVA, &image("data:image/bmp;base64,Qk0="));
        assert!(e.to_string().contains("image/bmp"), "{e}");
        let images: Vec<Value> = (0..21)
            .map(|_| json!({"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}))
            .collect();
        let e = refusal(
            NOVA,
            &json!({"model":"b","messages":[{"role":"user","content":images}]}),
        );
        assert!(e.to_string().contains("at most 20"), "{e}");
    }

    #[test]
    fn documents_reasoning_and_foreign_thinking() {
        let (v, adjusted) = translate_for(
            "amazon.nova-2-lite-v1:0",
            &json!({"model":"b","reasoning_effort":"medium","messages":[
                {"role":"user","content":[{"type":"text","text":"Sum it up"},
                    {"type":"file","file":{"filename":"q3_report.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]},
                {"role":"assistant","content":"Sure.","thinking_blocks":[{"type":"thinking","thinking":"hm","signature":"EqQB"}]},
                {"role":"user","content":"More"}]}),
        );
        assert_eq!(
            v["messages"][0]["content"][1],
            json!({"document":{"format":"pdf","name":"q3 report pdf","source":{"bytes":"JVBERi0="}}})
        );
        assert!(!v.to_string().contains("EqQB"), "{v}");
        assert_eq!(
            v["additionalModelRequestFields"],
            json!({"reasoningConfig":{"type":"enabled","maxReasoningEffort":"medium"}})
        );
        assert_eq!(
            adjusted.as_slice(),
            [contract::DOCUMENT_NAME, vendor_state::DROPPED]
        );
        // Structured output: the schema as a string; `json_object` left out, noted.
        let (v, adjusted) = translate_for(
            NOVA,
            &json!({"model":"b","messages":[{"role":"user","content":"x"}],
                "response_format":{"type":"json_schema","json_schema":{"name":"answer",
                    "schema":{"type":"object","properties":{"a":{"type":"string"}}}}}}),
        );
        assert_eq!(
            v["outputConfig"],
            json!({"textFormat":{"type":"json_schema","structure":{"jsonSchema":{
                // the client's bytes as written (here by `json!`, keys sorted)
                "schema":"{\"properties\":{\"a\":{\"type\":\"string\"}},\"type\":\"object\"}",
                "name":"answer"}}}})
        );
        assert!(adjusted.is_empty());
        let (v, adjusted) = translate_for(
            NOVA,
            &json!({"model":"b","messages":[{"role":"user","content":"x"}],
                "response_format":{"type":"json_object"}}),
        );
        assert!(v.get("outputConfig").is_none());
        assert_eq!(adjusted.as_slice(), ["response_format"]);
        // Reasoning on a model family without it: left out, noted.
        let (v, adjusted) = translate_for(
            LLAMA,
            &json!({"model":"b","reasoning_effort":"high","messages":[{"role":"user","content":"x"}]}),
        );
        assert!(v.get("additionalModelRequestFields").is_none());
        assert_eq!(adjusted.as_slice(), ["reasoning_effort"]);
        let (_, adjusted) = translate_for(
            LLAMA,
            &json!({"model":"b","reasoning_effort":"none","messages":[{"role":"user","content":"x"}]}),
        );
        assert!(adjusted.is_empty());
        // Images in tool results: Nova takes them, Llama does not.
        let body = json!({"model":"b","messages":[{"role":"user","content":"x"},
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"shot","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"here"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]}]});
        let (v, _) = translate_for(NOVA, &body);
        assert_eq!(
            v["messages"][2]["content"][0]["toolResult"]["content"],
            json!([{"text":"here"},{"image":{"format":"png","source":{"bytes":"iVBO"}}}])
        );
        let e = refusal(LLAMA, &body);
        assert!(e.to_string().contains("messages[2].content"), "{e}");
    }

    const TEXT_ANSWER: &str = r#"{"output":{"message":{"role":"assistant","content":[
        {"reasoningContent":{"reasoningText":{"text":"Think."}}},{"text":"Hello"},{"text":" there."}]}},
        "stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":5,"totalTokens":1217,
        "cacheReadInputTokens":1000,"cacheWriteInputTokens":200},"metrics":{"latencyMs":321}}"#;

    #[test]
    fn whole_answers() {
        let t = answer(TEXT_ANSWER.as_bytes(), "amazon.nova-pro-v1:0", 5).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["model"], "amazon.nova-pro-v1:0");
        assert!(v["id"].as_str().unwrap().starts_with("bedrock-"));
        assert_eq!(
            v["choices"][0],
            json!({"index":0,"message":{"role":"assistant","content":"Hello there.",
                "reasoning_content":"Think."},"finish_reason":"stop"})
        );
        assert_eq!(
            t.usage,
            Some(Usage {
                prompt_tokens: 1212,
                completion_tokens: 5,
                total_tokens: 1217,
                cached_tokens: 1000,
                cache_write_tokens: 200,
                reasoning_tokens: 0,
                ..Usage::default()
            })
        );
        let calls = br#"{"output":{"message":{"role":"assistant","content":[
            {"toolUse":{"toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"get_weather","input":{"city":"Oslo"}}},
            {"toolUse":{"toolUseId":"tooluse_a_very_long_identifier_that_is_over_forty_chars","name":"f","input":{}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}"#;
        let t = answer(calls, "h", 1).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let msg = &v["choices"][0]["message"];
        assert!(msg["content"].is_null());
        assert_eq!(msg["tool_calls"][0]["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
        assert_eq!(
            msg["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Oslo"}"#
        );
        let short = msg["tool_calls"][1]["id"].as_str().unwrap();
        assert!(vendor_state::valid_call_id(short), "{short}");
        assert_eq!(t.finish_reason, "tool_calls");
        for (reason, want) in [
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("stop_sequence", "stop"),
            ("content_filtered", "content_filter"),
            ("guardrail_intervened", "content_filter"),
        ] {
            let body = format!(
                r#"{{"output":{{"message":{{"role":"assistant","content":[{{"text":"x"}}]}}}},"stopReason":"{reason}"}}"#
            );
            assert_eq!(answer(body.as_bytes(), "h", 1).unwrap().finish_reason, want);
            assert_eq!(
                crate::dialect::refusal::converse_answer(body.as_bytes()),
                want == "content_filter"
            );
        }
        assert_eq!(answer(b"not json", "h", 1).unwrap_err().status(), 502);
    }

    /// Converse usage reaches the meter, cache reads and writes apart, through the chat pivot
    /// the translated answer is metered on, whole or streamed.
    #[test]
    fn the_meter_reads_converse_usage_with_its_cache_counts() {
        use crate::accounting::meter::Meter;
        use crate::accounting::usage::UsageSource;
        let want = Usage {
            prompt_tokens: 1212,
            completion_tokens: 5,
            total_tokens: 1217,
            cached_tokens: 1000,
            cache_write_tokens: 200,
            reasoning_tokens: 0,
            ..Usage::default()
        };
        let t = answer(TEXT_ANSWER.as_bytes(), "h", 1).unwrap();
        let mut m = Meter::body_of(crate::dialect::Dialect::Chat);
        m.feed(&t.body);
        assert_eq!(m.settle(7), Some((want, UsageSource::Reported)));
        let stream = concat!(
            "event: messageStart\ndata: {\"role\":\"assistant\"}\n\n",
            "event: contentBlockDelta\ndata: {\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}\n\n",
            "event: messageStop\ndata: {\"stopReason\":\"end_turn\"}\n\n",
            "event: metadata\ndata: {\"usage\":{\"inputTokens\":12,\"outputTokens\":5,\"totalTokens\":1217,",
            "\"cacheReadInputTokens\":1000,\"cacheWriteInputTokens\":200}}\n\n",
        );
        let mut t = Stream::new("h", 1);
        let mut m = Meter::stream_of(crate::dialect::Dialect::Converse);
        m.feed(&t.feed(stream.as_bytes()));
        m.feed(&t.finish());
        assert!(m.ended());
        assert_eq!(m.settle(7), Some((want, UsageSource::Reported)));
    }

    const STREAM_TEXT: &str = concat!(
        "event: messageStart\ndata: {\"p\":\"abc\",\"role\":\"assistant\"}\n\n",
        "event: contentBlockDelta\ndata: {\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"text\":\"Hm.\"}},\"p\":\"a\"}\n\n",
        "event: contentBlockStop\ndata: {\"contentBlockIndex\":0}\n\n",
        "event: contentBlockDelta\ndata: {\"contentBlockIndex\":1,\"delta\":{\"text\":\"The sky \"}}\n\n",
        "event: contentBlockDelta\ndata: {\"contentBlockIndex\":1,\"delta\":{\"text\":\"is blue — \\\"ü\\\" 日本.\"}}\n\n",
        "event: contentBlockStop\ndata: {\"contentBlockIndex\":1}\n\n",
        "event: messageStop\ndata: {\"stopReason\":\"end_turn\"}\n\n",
        "event: metadata\ndata: {\"usage\":{\"inputTokens\":9,\"outputTokens\":21,\"totalTokens\":130,\"cacheReadInputTokens\":100},\"metrics\":{\"latencyMs\":400}}\n\n",
    );

    const STREAM_TOOL: &str = concat!(
        "event: messageStart\ndata: {\"role\":\"assistant\"}\n\n",
        "event: contentBlockDelta\ndata: {\"contentBlockIndex\":0,\"delta\":{\"text\":\"Let me check.\"}}\n\n",
        "event: contentBlockStop\ndata: {\"contentBlockIndex\":0}\n\n",
        "event: contentBlockStart\ndata: {\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":\"tooluse_abc\",\"name\":\"get_weather\"}}}\n\n",
        "event: contentBlockDelta\ndata: {\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"{\\\"city\\\":\"}}}\n\n",
        "event: contentBlockDelta\ndata: {\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"\\\"Oslo\\\"}\"}}}\n\n",
        "event: contentBlockStop\ndata: {\"contentBlockIndex\":1}\n\n",
        "event: messageStop\ndata: {\"stopReason\":\"tool_use\"}\n\n",
        "event: metadata\ndata: {\"usage\":{\"inputTokens\":30,\"outputTokens\":12,\"totalTokens\":42}}\n\n",
    );

    fn stream(input: &str) -> (Vec<u8>, Stream) {
        let make = || Box::new(Stream::new("amazon.nova-pro-v1:0", 9)) as Box<dyn SseTranslator>;
        let out = same_at_every_cut(&make, input.as_bytes());
        let mut t = Stream::new("amazon.nova-pro-v1:0", 9);
        t.feed(input.as_bytes());
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
        assert_eq!(events[0]["model"], "amazon.nova-pro-v1:0");
        assert_eq!(events[1]["choices"][0]["delta"]["reasoning_content"], "Hm.");
        let text: String = events[2..4]
            .iter()
            .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, "The sky is blue — \"ü\" 日本.");
        assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            events[4]["usage"],
            json!({"prompt_tokens":109,"completion_tokens":21,"total_tokens":130,
                   "prompt_tokens_details":{"cached_tokens":100}})
        );
        assert_eq!(events[5], "[DONE]");
        assert!(t.is_done() && t.has_content());
        let s = scan(&out);
        assert_eq!(s.usage, t.usage());
        assert!(s.done);
    }

    #[test]
    fn tool_stream() {
        let (out, t) = stream(STREAM_TOOL);
        let events = events_of(&out);
        assert_eq!(
            events[2]["choices"][0]["delta"],
            json!({"tool_calls":[{"index":0,"id":"tooluse_abc","type":"function",
                "function":{"name":"get_weather","arguments":""}}]})
        );
        let args: String = events[3..5]
            .iter()
            .map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(args, r#"{"city":"Oslo"}"#);
        assert_eq!(events[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(t.usage().map(|u| u.total_tokens), Some(42));
    }

    #[test]
    fn error_events_and_cut_streams() {
        let input = concat!(
            "event: messageStart\ndata: {\"role\":\"assistant\"}\n\n",
            "event: contentBlockDelta\ndata: {\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"throttlingException\",\"message\":\"Too many requests, please wait before trying again.\"}}\n\n",
        );
        let (out, t) = stream(input);
        let events = events_of(&out);
        assert_eq!(events.len(), 3);
        assert!(events[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many requests"));
        assert!(t.is_failed());
        assert!(scan(&out).error.is_some());
        // A 5xx exception is the gateway's 502.
        let mut t = Stream::new("h", 1);
        let out = t.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"modelStreamErrorException\",\"message\":\"boom\"}}\n\n");
        assert_eq!(exception_status("modelStreamErrorException"), 500);
        assert!(t.is_failed());
        assert_eq!(events_of(&out)[0]["error"]["status"], 502);
        // Cut before messageStop: an error event; after it without metadata: a clean end.
        let cut = &STREAM_TEXT[..STREAM_TEXT.find("event: messageStop").unwrap()];
        let mut t = Stream::new("h", 1);
        let mut out = t.feed(cut.as_bytes()).to_vec();
        out.extend_from_slice(&t.finish());
        assert_eq!(events_of(&out).last().unwrap()["error"]["status"], 502);
        let no_meta = &STREAM_TEXT[..STREAM_TEXT.find("event: metadata").unwrap()];
        let mut t = Stream::new("h", 1);
        let mut out = t.feed(no_meta.as_bytes()).to_vec();
        out.extend_from_slice(&t.finish());
        assert_eq!(events_of(&out).last().unwrap(), "[DONE]");
        assert!(t.is_done() && t.usage().is_none());
    }
}
