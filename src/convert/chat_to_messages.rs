//! `kind = "anthropic"`: OpenAI chat requests to Anthropic's Messages API
//! (`POST {base}/v1/messages`) and its answers and streams back to OpenAI's shapes.
//!
//! Request mapping ([`request`]):
//!
//! - `system` and `developer` messages → the top-level `system` string (texts joined by a
//!   blank line, wherever they stood: Anthropic has no system turn mid-conversation);
//! - `user`/`assistant` → the same roles with content blocks (`text`, `image` from `image_url`:
//!   a `data:` URL becomes a `base64` source, any other URL a `url` source); assistant
//!   `tool_calls` → `tool_use` blocks (`arguments` string → `input` object); `tool` messages →
//!   a user message of `tool_result` blocks (`tool_call_id` → `tool_use_id`); an assistant
//!   message's `thinking_blocks` (as this module hands them out, below) → its first blocks,
//!   `thinking` with its `signature` or `redacted_thinking`, as Anthropic requires when
//!   thinking is on. Consecutive messages of one role are merged, so one turn's tool results
//!   travel together, and a message without content (`""`, agent histories are full of them)
//!   is left out: Anthropic refuses empty turns;
//! - `null` for any optional field is absence;
//! - `max_tokens` (or `max_completion_tokens`), else the provider's `default_max_tokens`,
//!   else [`FALLBACK_MAX_TOKENS`]: Anthropic requires one;
//! - `temperature`, `top_p` (as written: Anthropic takes temperature in 0–1 and answers 400
//!   above; never both: with both, `top_p` is left out and noted,
//!   `contract::anthropic::Sampling::one_sampler`), `stop` → `stop_sequences` without its whitespace-only entries (Anthropic refuses
//!   them: "each stop sequence must contain non-whitespace"; the rest still stop the answer),
//!   `stream`, `user` → `metadata.user_id`;
//! - `tools` (function tools) → `name`/`description`/`input_schema`; `tool_choice` auto/none/
//!   required/function → auto/none/any/tool; `parallel_tool_calls: false` →
//!   `disable_parallel_tool_use`;
//! - `reasoning_effort` (none/minimal → thinking off; low 1,024, medium 8,192, high 24,576
//!   tokens), or Anthropic's own `thinking` when a client sets it (e.g. in `model_params`) →
//!   `thinking` with that budget, cut below `max_tokens` (which, as OpenAI's
//!   `max_completion_tokens`, bounds reasoning and answer together); a `max_tokens` too small
//!   for Anthropic's 1,024-token minimum is a 400; Anthropic's own `top_k` is passed on.
//!   With thinking on, what Anthropic refuses beside it is resolved as its docs advise
//!   (`contract::anthropic::Sampling::beside_thinking`): a `temperature` other than 1, `top_k`,
//!   and a `top_p` below 0.95 are left out, a forced `tool_choice` becomes `auto`, each noted
//!   in the request's adjustments.
//! - Anthropic's contract ([`crate::contract::anthropic`]): a tool-call id outside its
//!   pattern (`functions.lookup:0`, a legacy Gemini `<id>__thought__<signature>`) goes as its
//!   portable id, alike in the `tool_use` and its `tool_result`; a `user` over 256 characters
//!   goes as its SHA-256; a tool name Anthropic does not take is a 400 naming `tools[i]`.
//! - `response_format` `json_schema` → `output_config.format` (Anthropic's structured
//!   outputs); `json_object` has no equivalent (Anthropic's needs a schema) and is not sent.
//!
//! Dropped, because the Messages API has no equivalent: `frequency_penalty`,
//! `presence_penalty`, `logit_bias`, `logprobs`, `top_logprobs`, `seed`, `response_format`
//! `json_object`,
//! `stream_options`, `store`, `metadata`, `modalities`, `audio`, `prediction`,
//! `service_tier`, `web_search_options`, the legacy `functions` and
//! `function_call`, an assistant message's `reasoning_content` without its `thinking_blocks`
//! (Anthropic checks the signature, so bare text cannot be sent back as thinking), another
//! vendor's thinking blocks (Gemini's signatures, `super::vendor_state`; noted
//! `thinking_signature`), and any field this module does not name. With thinking on, a tool
//! loop whose assistant turn does not start with a thinking block (another vendor's calls)
//! has thinking left off for the request (noted `thinking`: `loop_without_thinking`). Images
//! in a `tool` message go into its `tool_result`. `n` above 1 is a 400 (one answer
//! only), as are tools other than functions and content parts other than text and images.
//!
//! Answers: text blocks are joined into `message.content`, `tool_use` blocks become
//! `tool_calls`; `thinking` blocks become `message.reasoning_content` (their texts) and
//! `message.thinking_blocks` (each whole, `signature` included; `redacted_thinking` too), which
//! the client sends back on its next turn. In streams: `delta.reasoning_content` as the thinking
//! arrives and one `delta.thinking_blocks` at each block's end. Server-tool blocks (web search
//! results, …) and citations are left out. `stop_reason` → `finish_reason`: `end_turn`,
//! `stop_sequence`, `pause_turn` → `stop` (which stop sequence matched, and that a paused turn
//! can be resumed, are lost), `max_tokens` and `model_context_window_exceeded` → `length`,
//! `tool_use` → `tool_calls`, `refusal` (the classifiers stopped the answer; in a stream on
//! `message_delta`, after whatever text came) → `content_filter`, which the gateway answers as
//! the chat API's content-filter error ([`crate::dialect::refusal`]). Usage counts cached prompt
//! tokens (`cache_read_input_tokens`, `cache_creation_input_tokens`) in `prompt_tokens`, as
//! OpenAI's `prompt_tokens` does, and carries them as `prompt_tokens_details.cached_tokens`
//! and `.cache_write_tokens`.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;
use crate::contract::anthropic::{self as contract, Sampling};
use crate::dialect::adjusted::Adjustments;
use crate::dialect::chat::wire::{
    content, field, messages, plain_text, raw_field, stop_sequences, tool_choice, AssistantMessage,
    Choice, Completion, Image, OaContent, OaMessage, OaPart, ResponseFormat, Str, ThinkingBlock,
    ToolCallOut, ToolChoice,
};
use crate::dialect::chat::ChatRequest;
use crate::dialect::messages::wire::{
    AnswerIn, Block, BlockIn, DeltaIn, ErrorIn, EventIn, Message, Metadata, OutputConfigOut,
    OutputFormat, Request, Role, Schema, Source, ThinkingOut, Tool, ToolChoiceOut, UsageIn,
};
use crate::error::GatewayError;

use super::chunks::{
    content_delta, reasoning_delta, thinking_blocks_delta, to_bytes, tool_args_delta,
    tool_start_delta, ChunkWriter, ROLE_DELTA,
};
use super::errors::{unreadable, unsupported, vendor_failure};
use super::request::{
    arguments_object, function_tools, push_merged, reasoning_budget, FALLBACK_MAX_TOKENS,
};
use super::translate::{End, EventState, Translated, Translating};
use super::vendor_state;

const VENDOR: &str = "anthropic";

// ---------------------------------------------------------------------------------------------
// Request.

/// The client's reasoning request (`reasoning_effort`, or `thinking`) as Anthropic's
/// `thinking`, its budget within Anthropic's bounds ([`contract::thinking_budget`]).
fn thinking(req: &ChatRequest<'_>, max_tokens: u64) -> Result<Option<ThinkingOut>, GatewayError> {
    match reasoning_budget(req)? {
        None => Ok(None),
        Some(0) => Ok(Some(ThinkingOut::Disabled)),
        Some(budget) => Ok(Some(ThinkingOut::Enabled {
            budget_tokens: contract::thinking_budget(budget, max_tokens)?,
        })),
    }
}

/// The Messages API body for `req`, sent to `upstream_model`, made to keep Anthropic's
/// contract ([`crate::contract::anthropic`]); what that changed is noted in `adjusted`.
pub fn request(
    req: &ChatRequest<'_>,
    upstream_model: &str,
    default_max_tokens: Option<u64>,
    adjusted: &mut Adjustments,
) -> Result<Bytes, GatewayError> {
    if field::<u64>(req, "n")?.is_some_and(|n| n > 1) {
        return Err(unsupported(VENDOR, "`n` above 1 is not supported"));
    }
    let (system, messages) = convert_messages(messages(req)?, adjusted)?;
    let tools = convert_tools(req)?;
    let tool_choice = convert_tool_choice(req, !tools.is_empty())?;
    let max_tokens = req
        .max_tokens
        .or(default_max_tokens)
        .unwrap_or(FALLBACK_MAX_TOKENS);
    let mut thinking = thinking(req, max_tokens)?;
    if matches!(thinking, Some(ThinkingOut::Enabled { .. })) && loop_without_thinking(&messages) {
        thinking = None;
        adjusted.note(THINKING_OFF);
    }
    let sampling = Sampling {
        temperature: raw_field(req, "temperature"),
        top_p: raw_field(req, "top_p"),
        top_k: raw_field(req, "top_k"),
        tool_choice,
    };
    let Sampling {
        temperature,
        top_p,
        top_k,
        tool_choice,
    } = match thinking {
        Some(ThinkingOut::Enabled { .. }) => sampling.beside_thinking(adjusted),
        _ => sampling,
    }
    .one_sampler(adjusted);
    let body = Request {
        model: upstream_model,
        max_tokens,
        system,
        messages,
        temperature,
        top_p,
        top_k,
        stop_sequences: contract::stop_sequences(stop_sequences(req)?, adjusted),
        stream: req.stream,
        tools,
        tool_choice,
        metadata: end_user(req)?.map(|u| Metadata {
            user_id: contract::user_id(u),
        }),
        thinking,
        output_config: output_config(req)?,
    };
    Ok(to_bytes(&body))
}

/// Who the end user is, for Anthropic's `metadata.user_id` (an opaque id for abuse
/// detection, as OpenAI's `safety_identifier` and the older `user` are): `user`, else
/// `safety_identifier`.
fn end_user<'a>(req: &ChatRequest<'a>) -> Result<Option<Cow<'a, str>>, GatewayError> {
    if let Some(u) = field::<Str<'a>>(req, "user")? {
        return Ok(Some(u.0));
    }
    Ok(field::<Str<'a>>(req, "safety_identifier")?.map(|u| u.0))
}

/// `response_format` `json_schema` as Anthropic's structured output (`output_config.format`,
/// "Structured outputs": `{"type":"json_schema","schema"}`). `json_object` has no Anthropic
/// equivalent (its structured outputs need a schema) and `text` is the default: neither is
/// sent (`tests/golden/KNOWN_GAPS.md`).
fn output_config<'a>(req: &ChatRequest<'a>) -> Result<Option<OutputConfigOut<'a>>, GatewayError> {
    let Some(f) = field::<ResponseFormat<'a>>(req, "response_format")? else {
        return Ok(None);
    };
    if f.kind != "json_schema" {
        return Ok(None);
    }
    let schema = f.json_schema.and_then(|s| s.schema).ok_or_else(|| {
        unsupported(
            VENDOR,
            "`response_format` of type `json_schema` needs `json_schema.schema`",
        )
    })?;
    Ok(Some(OutputConfigOut {
        format: OutputFormat {
            kind: Cow::Borrowed("json_schema"),
            schema: Some(schema),
        },
    }))
}

/// The adjustment noted when thinking is left off for one request (below).
const THINKING_OFF: &str = "thinking";

/// Whether the conversation is inside a tool loop whose assistant turn Anthropic did not
/// think in (another vendor's tool calls, or a client that kept no thinking blocks): its
/// last assistant message calls tools without starting with a `thinking` block. Anthropic
/// keeps one thinking configuration per assistant turn — "a tool-use loop is one assistant
/// turn, so change the configuration only between turns", and with thinking on "a final
/// assistant message must start with a thinking block" (platform.claude.com "Thinking in tool
/// and multi-turn workflows") — so thinking is left off for this request and comes back on
/// the next user turn.
fn loop_without_thinking(messages: &[Message<'_>]) -> bool {
    let Some(last) = messages.iter().rev().find(|m| m.role == Role::Assistant) else {
        return false;
    };
    let calls = last
        .content
        .iter()
        .any(|b| matches!(b, Block::ToolUse { .. }));
    let thought = matches!(
        last.content.first(),
        Some(Block::Thinking { .. } | Block::RedactedThinking { .. })
    );
    calls && !thought
}

type Converted<'a> = (Option<Cow<'a, str>>, Vec<Message<'a>>);

/// The system text and the conversation.
fn convert_messages<'a>(
    msgs: Vec<OaMessage<'a>>,
    adjusted: &mut Adjustments,
) -> Result<Converted<'a>, GatewayError> {
    let mut system: Vec<Cow<'_, str>> = Vec::new();
    let mut turns: Vec<(Role, Vec<Block<'_>>)> = Vec::with_capacity(msgs.len());
    for m in msgs {
        match m.role.as_ref() {
            "system" | "developer" => system.push(plain_text(content(m.content)?, "\n")),
            "user" => push_merged(&mut turns, Role::User, user_blocks(content(m.content)?)?),
            "assistant" => {
                let blocks = assistant_blocks(m, adjusted)?;
                push_merged(&mut turns, Role::Assistant, blocks)
            }
            "tool" => push_merged(&mut turns, Role::User, vec![tool_result(m)?]),
            other => {
                return Err(unsupported(
                    VENDOR,
                    format!("messages with role `{other}` are not supported"),
                ))
            }
        }
    }
    system.retain(|s| !s.is_empty());
    let system = match system.len() {
        0 => None,
        1 => system.pop(),
        _ => Some(Cow::Owned(system.join("\n\n"))),
    };
    let messages = turns
        .into_iter()
        .map(|(role, content)| Message { role, content })
        .collect();
    Ok((system, messages))
}

/// Blocks of a user message (or of a tool result): text and images.
fn user_blocks(content: Option<OaContent<'_>>) -> Result<Vec<Block<'_>>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(OaContent::Text(t)) => Ok(text_block(t).into_iter().collect()),
        Some(OaContent::Parts(parts)) => parts
            .into_iter()
            .filter_map(|p| part_block(p).transpose())
            .collect(),
    }
}

/// A text block, or none for empty text (Anthropic refuses empty text blocks).
fn text_block(text: Cow<'_, str>) -> Option<Block<'_>> {
    (!text.is_empty()).then_some(Block::Text { text })
}

fn part_block(part: OaPart<'_>) -> Result<Option<Block<'_>>, GatewayError> {
    match part.kind.as_ref() {
        "text" => Ok(part.text.and_then(text_block)),
        "image_url" => Ok(Some(Block::Image {
            source: match part.image()? {
                Image::Base64 { media_type, data } => Source::Base64 { media_type, data },
                Image::Url(url) => Source::Url { url },
            },
        })),
        other => Err(unsupported(
            VENDOR,
            format!("content parts of type `{other}` are not supported"),
        )),
    }
}

/// An assistant message: its reasoning blocks (first, as Anthropic requires when thinking is
/// on), its text (and refusal) parts, then its tool calls. `reasoning_content` without its
/// blocks cannot be sent back (Anthropic checks the signature) and is left out; so is another
/// vendor's reasoning state (Gemini's signatures, [`vendor_state`]), noted in `adjusted`.
fn assistant_blocks<'a>(
    m: OaMessage<'a>,
    adjusted: &mut Adjustments,
) -> Result<Vec<Block<'a>>, GatewayError> {
    let mut blocks: Vec<Block<'a>> = m
        .thinking_blocks
        .unwrap_or_default()
        .into_iter()
        .filter(|b| {
            let ours = vendor_state::owner(b) == vendor_state::Owner::Anthropic;
            if !ours {
                adjusted.note(vendor_state::DROPPED);
            }
            ours
        })
        .map(vendor_state::messages_block)
        .collect();
    match content(m.content)? {
        None => {}
        Some(OaContent::Text(t)) => blocks.extend(text_block(t)),
        Some(OaContent::Parts(parts)) => {
            for p in parts {
                match p.kind.as_ref() {
                    "text" => blocks.extend(p.text.and_then(text_block)),
                    "refusal" => blocks.extend(p.refusal.and_then(text_block)),
                    other => {
                        return Err(unsupported(
                            VENDOR,
                            format!("assistant content parts of type `{other}` are not supported"),
                        ))
                    }
                }
            }
        }
    }
    for call in m.tool_calls.unwrap_or_default() {
        blocks.push(Block::ToolUse {
            input: arguments_object(&call.function.arguments)?,
            id: contract::tool_use_id(call.id),
            name: call.function.name,
        });
    }
    Ok(blocks)
}

fn tool_result(m: OaMessage<'_>) -> Result<Block<'_>, GatewayError> {
    let tool_use_id = m.tool_call_id.ok_or_else(|| {
        GatewayError::InvalidRequest("a `tool` message needs a `tool_call_id`".into())
    })?;
    Ok(Block::ToolResult {
        tool_use_id: contract::tool_use_id(tool_use_id),
        content: user_blocks(content(m.content)?)?,
    })
}

fn convert_tools<'a>(req: &ChatRequest<'a>) -> Result<Vec<Tool<'a>>, GatewayError> {
    let tools = function_tools(req, VENDOR)?;
    for (i, f) in tools.iter().enumerate() {
        contract::check_tool_name(i, &f.name)?;
    }
    Ok(tools
        .into_iter()
        .map(|f| Tool {
            name: f.name,
            description: f.description,
            input_schema: match f.parameters {
                Some(p) => Schema::Given(p),
                None => Schema::Empty {
                    kind: "object",
                    properties: serde_json::Map::new(),
                },
            },
        })
        .collect())
}

/// `tool_choice` and `parallel_tool_calls`; nothing when there are no tools (Anthropic
/// refuses a `tool_choice` without them).
fn convert_tool_choice<'a>(
    req: &ChatRequest<'a>,
    has_tools: bool,
) -> Result<Option<ToolChoiceOut<'a>>, GatewayError> {
    let choice = tool_choice(req)?;
    let disable = field::<bool>(req, "parallel_tool_calls")? == Some(false);
    if !has_tools {
        return Ok(None);
    }
    Ok(match choice {
        None if disable => Some(ToolChoiceOut::Auto {
            disable_parallel_tool_use: true,
        }),
        None => None,
        Some(ToolChoice::Auto) => Some(ToolChoiceOut::Auto {
            disable_parallel_tool_use: disable,
        }),
        Some(ToolChoice::Required) => Some(ToolChoiceOut::Any {
            disable_parallel_tool_use: disable,
        }),
        Some(ToolChoice::Function(name)) => Some(ToolChoiceOut::Tool {
            name,
            disable_parallel_tool_use: disable,
        }),
        Some(ToolChoice::None) => Some(ToolChoiceOut::None),
    })
}

// ---------------------------------------------------------------------------------------------
// Answers.

impl BlockIn<'_> {
    /// A `thinking` or `redacted_thinking` block as the chat client gets it to send back.
    fn thinking_block(&self) -> Option<ThinkingBlock<'static>> {
        let owned = |c: &Option<Cow<'_, str>>| Cow::Owned(c.as_deref().unwrap_or("").to_string());
        match self.kind.as_ref() {
            "thinking" => Some(ThinkingBlock::Thinking {
                thinking: owned(&self.thinking),
                signature: owned(&self.signature),
            }),
            "redacted_thinking" => Some(ThinkingBlock::RedactedThinking {
                data: owned(&self.data),
            }),
            _ => None,
        }
    }
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and a missing reason
        _ => "stop",
    }
}

/// The status Anthropic uses for one of its error types.
pub fn error_status(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

fn error_of(e: &ErrorIn<'_>) -> GatewayError {
    vendor_failure(VENDOR, error_status(&e.kind), &e.message)
}

/// A successful Messages answer as an OpenAI `chat.completion`. The model is the one Anthropic
/// names, else `model_hint`.
pub fn answer(body: &[u8], model_hint: &str, created: u64) -> Result<Translated, GatewayError> {
    let msg: AnswerIn<'_> =
        serde_json::from_slice(body).map_err(|e| unreadable(VENDOR, "an answer", e))?;
    if let Some(e) = msg
        .error
        .as_ref()
        .filter(|_| msg.kind.as_deref() == Some("error"))
    {
        return Err(error_of(e));
    }
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    for b in msg.content {
        if let Some(t) = b.thinking_block() {
            reasoning.push_str(b.thinking.as_deref().unwrap_or_default());
            thinking_blocks.push(t);
            continue;
        }
        match b.kind.as_ref() {
            "text" => text.push_str(b.text.as_deref().unwrap_or_default()),
            "tool_use" => calls.push(ToolCallOut::new(
                b.id.unwrap_or_default().into_owned(),
                b.name.unwrap_or_default().into_owned(),
                b.input.map_or("{}", RawValue::get).to_owned(),
            )),
            _ => {} // server tool blocks
        }
    }
    let finish = finish_reason(msg.stop_reason.as_deref());
    let mut message = AssistantMessage::new(text, calls);
    message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    message.thinking_blocks = thinking_blocks;
    let usage = msg.usage.and_then(|u| u.usage());
    let body = to_bytes(&Completion {
        id: msg.id.as_deref().unwrap_or("msg"),
        object: "chat.completion",
        created,
        model: msg.model.as_deref().unwrap_or(model_hint),
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

// ---------------------------------------------------------------------------------------------
// Streams.

/// A `thinking` block being streamed: its text goes out as `reasoning_content` deltas, and the
/// whole block (with the signature that comes last) as `thinking_blocks` at its end.
#[derive(Debug, Clone)]
struct OpenThinking {
    block: u64,
    thinking: String,
    signature: String,
}

/// A `tool_use` block being streamed as an OpenAI tool call.
#[derive(Debug, Clone, Copy)]
struct OpenTool {
    block: u64,
    call: u32,
    /// Some argument text was sent: a call with none gets `{}` at its block's end.
    has_args: bool,
}

/// Translates an Anthropic Messages stream into an OpenAI chunk stream (see [`SseTranslator`]):
/// a role chunk at `message_start`, text deltas, tool calls (id and name, then argument
/// fragments from `input_json_delta`), and at `message_stop` a last chunk with the finish
/// reason and usage, then `[DONE]`. An `error` event becomes one error event in the gateway's
/// shape and no `[DONE]`.
///
/// [`SseTranslator`]: super::translate::SseTranslator
pub type Stream = Translating<StreamState>;

/// What an [`Stream`] keeps between events.
#[derive(Debug)]
pub struct StreamState {
    created: u64,
    model_hint: String,
    writer: Option<ChunkWriter>,
    tools: Vec<OpenTool>,
    thinking: Option<OpenThinking>,
    usage: UsageIn,
    finish: Option<&'static str>,
    content: bool,
    end: End,
}

impl Stream {
    /// `model_hint` names the model until `message_start` gives Anthropic's own; `created` is
    /// the chunks' timestamp.
    pub fn new(model_hint: &str, created: u64) -> Self {
        Translating::over(StreamState {
            created,
            model_hint: model_hint.to_string(),
            writer: None,
            tools: Vec::new(),
            thinking: None,
            usage: UsageIn::default(),
            finish: None,
            content: false,
            end: End::Open,
        })
    }
}

impl EventState for StreamState {
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.trim_ascii().is_empty() {
            return;
        }
        let ev: EventIn<'_> = match serde_json::from_slice(data) {
            Ok(ev) => ev,
            Err(e) => return self.fail(unreadable(VENDOR, "a stream event", e), out),
        };
        match ev.kind.as_ref() {
            "message_start" => self.message_start(ev.message, out),
            "content_block_start" => self.block_start(ev.index, ev.content_block, out),
            "content_block_delta" => self.block_delta(ev.index, ev.delta, out),
            "content_block_stop" => self.block_stop(ev.index, out),
            "message_delta" => self.message_delta(ev.delta, ev.usage),
            "message_stop" => self.last(out),
            "error" => {
                let e = ev.error.as_ref().map_or_else(
                    || GatewayError::Upstream("the anthropic stream failed".into()),
                    error_of,
                );
                self.fail(e, out)
            }
            _ => {} // ping, and event types added later
        }
    }

    /// The body ended before `message_stop`: complete if the stop reason came, else cut.
    fn at_eof(&mut self, out: &mut Vec<u8>) {
        if self.finish.is_some() {
            self.last(out);
        } else {
            self.fail(
                GatewayError::Upstream(
                    "the anthropic stream ended before the message was complete".into(),
                ),
                out,
            );
        }
    }

    fn end(&self) -> End {
        self.end
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.usage()
    }

    fn has_content(&self) -> bool {
        self.content
    }
}

impl StreamState {
    /// The chunk envelope, and the role chunk that opens every OpenAI stream.
    fn begin(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<u8>) {
        if self.writer.is_some() {
            return;
        }
        let fallback_id = format!("msg_{}", self.created);
        let w = ChunkWriter::new(
            id.unwrap_or(&fallback_id),
            self.created,
            model.unwrap_or(&self.model_hint),
        );
        w.chunk(out, 0, ROLE_DELTA);
        self.writer = Some(w);
    }

    fn emit(&mut self, delta: &str, out: &mut Vec<u8>) {
        self.begin(None, None, out);
        if let Some(w) = &self.writer {
            w.chunk(out, 0, delta);
        }
    }

    fn message_start(&mut self, msg: Option<AnswerIn<'_>>, out: &mut Vec<u8>) {
        let Some(msg) = msg else { return };
        if let Some(u) = msg.usage {
            self.usage = self.usage.merge(u);
        }
        self.begin(msg.id.as_deref(), msg.model.as_deref(), out);
    }

    fn block_start(&mut self, index: u64, block: Option<BlockIn<'_>>, out: &mut Vec<u8>) {
        let Some(block) = block else { return };
        match block.kind.as_ref() {
            "text" => self.text(block.text.as_deref().unwrap_or_default(), out),
            "tool_use" => {
                let call = self.tools.len() as u32;
                self.tools.push(OpenTool {
                    block: index,
                    call,
                    has_args: false,
                });
                let id = block.id.as_deref().unwrap_or_default();
                let name = block.name.as_deref().unwrap_or_default();
                self.content = true;
                self.emit(&tool_start_delta(call, id, name, ""), out);
            }
            "thinking" => {
                self.thinking = Some(OpenThinking {
                    block: index,
                    thinking: String::new(),
                    signature: String::new(),
                });
                self.reasoning(block.thinking.as_deref().unwrap_or_default(), out);
            }
            "redacted_thinking" => {
                if let Some(t) = block.thinking_block() {
                    self.content = true;
                    self.emit(&thinking_blocks_delta(&[t]), out);
                }
            }
            _ => {} // server tool blocks
        }
    }

    fn reasoning(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        if let Some(t) = self.thinking.as_mut() {
            t.thinking.push_str(text);
        }
        self.content = true;
        self.emit(&reasoning_delta(text), out);
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if !text.is_empty() {
            self.content = true;
            self.emit(&content_delta(text), out);
        }
    }

    fn block_delta(&mut self, index: u64, delta: Option<DeltaIn<'_>>, out: &mut Vec<u8>) {
        let Some(delta) = delta else { return };
        match delta.kind.as_deref() {
            Some("text_delta") => self.text(delta.text.as_deref().unwrap_or_default(), out),
            Some("input_json_delta") => {
                let fragment = delta.partial_json.as_deref().unwrap_or_default();
                let Some(tool) = self.tools.iter_mut().find(|t| t.block == index) else {
                    return;
                };
                if fragment.is_empty() {
                    return;
                }
                tool.has_args = true;
                let call = tool.call;
                self.emit(&tool_args_delta(call, fragment), out);
            }
            Some("thinking_delta") => {
                self.reasoning(delta.thinking.as_deref().unwrap_or_default(), out)
            }
            Some("signature_delta") => {
                if let Some(t) = self.thinking.as_mut().filter(|t| t.block == index) {
                    t.signature
                        .push_str(delta.signature.as_deref().unwrap_or_default());
                }
            }
            _ => {} // citations_delta
        }
    }

    /// A thinking block's end hands the whole block over; a tool call that got no argument
    /// text gets `{}` (OpenAI clients parse `arguments`).
    fn block_stop(&mut self, index: u64, out: &mut Vec<u8>) {
        if let Some(t) = self.thinking.take_if(|t| t.block == index) {
            let block = ThinkingBlock::Thinking {
                thinking: Cow::Owned(t.thinking),
                signature: Cow::Owned(t.signature),
            };
            self.emit(&thinking_blocks_delta(&[block]), out);
            return;
        }
        let Some(tool) = self.tools.iter_mut().find(|t| t.block == index) else {
            return;
        };
        if !tool.has_args {
            tool.has_args = true;
            let call = tool.call;
            self.emit(&tool_args_delta(call, "{}"), out);
        }
    }

    fn message_delta(&mut self, delta: Option<DeltaIn<'_>>, usage: Option<UsageIn>) {
        if let Some(reason) = delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
            self.finish = Some(finish_reason(Some(reason)));
        }
        if let Some(u) = usage {
            self.usage = self.usage.merge(u);
        }
    }

    /// The last chunk (finish reason and usage) and `[DONE]`.
    fn last(&mut self, out: &mut Vec<u8>) {
        self.begin(None, None, out);
        let finish = self.finish.unwrap_or("stop");
        if let Some(w) = &self.writer {
            w.last(out, &[(0, finish)], self.usage.usage());
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

    const STREAM_TEXT: &str = include_str!("../../tests/fixtures/anthropic/stream_text.sse");
    const STREAM_TOOLS: &str = include_str!("../../tests/fixtures/anthropic/stream_tool_use.sse");
    const STREAM_ERROR: &str = include_str!("../../tests/fixtures/anthropic/stream_error.sse");
    const MESSAGE_TEXT: &str = include_str!("../../tests/fixtures/anthropic/message_text.json");
    const MESSAGE_TOOLS: &str =
        include_str!("../../tests/fixtures/anthropic/message_tool_use.json");

    fn translate(body: &str, default_max: Option<u64>) -> Value {
        let req = parse(body.as_bytes()).unwrap();
        serde_json::from_slice(
            &request(&req, "claude-up", default_max, &mut Adjustments::default()).unwrap(),
        )
        .unwrap()
    }

    fn translate_err(body: &str) -> GatewayError {
        let req = parse(body.as_bytes()).unwrap();
        request(&req, "claude-up", None, &mut Adjustments::default()).unwrap_err()
    }

    /// Anthropic: thinking is not compatible with `temperature`/`top_k` modifications nor
    /// with forced tool use; `top_p` may be 0.95–1 ("Building with extended thinking").
    #[test]
    fn thinking_leaves_out_what_anthropic_refuses_beside_it() {
        let tools = r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#;
        for choice in [
            r#""required""#,
            r#"{"type":"function","function":{"name":"f"}}"#,
        ] {
            let v = translate(
                &format!(
                    r#"{{"model":"c","max_tokens":4000,"reasoning_effort":"low","temperature":0.2,
                    "top_p":0.5,"top_k":40,{tools},"tool_choice":{choice},
                    "messages":[{{"role":"user","content":"hi"}}]}}"#
                ),
                None,
            );
            assert_eq!(v["thinking"]["type"], "enabled", "{v}");
            for gone in ["temperature", "top_p", "top_k"] {
                assert!(v.get(gone).is_none(), "{gone}: {v}");
            }
            assert_eq!(v["tool_choice"], json!({"type": "auto"}), "{v}");
        }
        // What Anthropic takes beside thinking stays: temperature 1, top_p in 0.95–1 (one of
        // them: never both, thinking or not).
        for (sampler, value) in [("temperature", 1.0), ("top_p", 0.97)] {
            let v = translate(
                &format!(
                    r#"{{"model":"c","max_tokens":4000,"reasoning_effort":"high","{sampler}":{value},
                    "messages":[{{"role":"user","content":"hi"}}]}}"#
                ),
                None,
            );
            assert_eq!(v[sampler].as_f64(), Some(value), "{v}");
        }
        // Without thinking, everything as sent, but `top_p` beside a `temperature`.
        let v = translate(
            &format!(
                r#"{{"model":"c","temperature":0.2,"top_p":0.5,{tools},"tool_choice":"required",
                "messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
            None,
        );
        assert_eq!(
            (v["temperature"].as_f64(), v["top_p"].as_f64()),
            (Some(0.2), None)
        );
        assert_eq!(v["tool_choice"], json!({"type": "any"}), "{v}");
    }

    #[test]
    fn request_maps_system_roles_and_parameters() {
        let v = translate(
            r#"{"model":"claude","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"developer","content":[{"type":"text","text":"Use French."}]},
                {"role":"user","content":"Hi"},
                {"role":"assistant","content":"Salut"},
                {"role":"user","content":[{"type":"text","text":"Look"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}},
                    {"type":"image_url","image_url":{"url":"https://example.com/a.jpg","detail":"low"}}]}],
               "temperature":0.5,"top_p":0.9,"stop":"END","stream":true,"user":"u-42",
               "frequency_penalty":1,"seed":7,"response_format":{"type":"json_object"},
               "model_params":{"top_k":5}}"#,
            None,
        );
        assert_eq!(
            v,
            json!({
                "model":"claude-up","max_tokens":4096,"system":"Be brief.\n\nUse French.",
                "messages":[
                    {"role":"user","content":[{"type":"text","text":"Hi"}]},
                    {"role":"assistant","content":[{"type":"text","text":"Salut"}]},
                    {"role":"user","content":[{"type":"text","text":"Look"},
                        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0K"}},
                        {"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}]}],
                "temperature":0.5,"top_k":5,"stop_sequences":["END"],"stream":true,
                "metadata":{"user_id":"u-42"}
            })
        );
    }

    #[test]
    fn max_tokens_comes_from_the_client_then_the_provider_then_the_fallback() {
        let base = r#"{"model":"c","messages":[{"role":"user","content":"x"}]"#;
        assert_eq!(
            translate(&format!("{base},\"max_tokens\":9}}"), Some(99))["max_tokens"],
            9
        );
        assert_eq!(
            translate(&format!("{base},\"max_completion_tokens\":8}}"), Some(99))["max_tokens"],
            8
        );
        assert_eq!(translate(&format!("{base}}}"), Some(99))["max_tokens"], 99);
        assert_eq!(translate(&format!("{base}}}"), None)["max_tokens"], 4096);
    }

    #[test]
    fn request_maps_tools_tool_calls_and_results() {
        let v = translate(
            r#"{"model":"c","messages":[
                {"role":"user","content":"Weather in SF and the time?"},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\",\"b\":1,\"a\":2}"}},
                    {"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]},
                {"role":"tool","tool_call_id":"call_1","content":"18C"},
                {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"noon"}]},
                {"role":"user","content":"Thanks"}],
               "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather",
                    "parameters":{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"string"}}}}},
                        {"type":"function","function":{"name":"get_time"}}],
               "tool_choice":{"type":"function","function":{"name":"get_weather"}},
               "parallel_tool_calls":false}"#,
            None,
        );
        assert_eq!(
            v["messages"],
            json!([
                {"role":"user","content":[{"type":"text","text":"Weather in SF and the time?"}]},
                {"role":"assistant","content":[
                    {"type":"tool_use","id":"call_1","name":"get_weather","input":{"location":"SF","b":1,"a":2}},
                    {"type":"tool_use","id":"call_2","name":"get_time","input":{}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C"}]},
                    {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"noon"}]},
                    {"type":"text","text":"Thanks"}]}
            ])
        );
        assert_eq!(
            v["tools"],
            json!([
                {"name":"get_weather","description":"Weather",
                 "input_schema":{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"string"}}}},
                {"name":"get_time","input_schema":{"type":"object","properties":{}}}
            ])
        );
        assert_eq!(
            v["tool_choice"],
            json!({"type":"tool","name":"get_weather","disable_parallel_tool_use":true})
        );
        // raw values keep the client's key order
        let req = parse(
            br#"{"model":"c","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"z":{},"a":{}}}}}]}"#,
        )
        .unwrap();
        let raw = request(&req, "m", None, &mut Adjustments::default()).unwrap();
        let text = std::str::from_utf8(&raw).unwrap();
        assert!(text.contains(r#""properties":{"z":{},"a":{}}"#), "{text}");
    }

    #[test]
    fn tool_choice_mapping() {
        let with = |choice: &str| {
            translate(
                &format!(
                    r#"{{"model":"c","messages":[{{"role":"user","content":"x"}}],
                        "tools":[{{"type":"function","function":{{"name":"f"}}}}],"tool_choice":{choice}}}"#
                ),
                None,
            )["tool_choice"]
                .clone()
        };
        assert_eq!(with("\"auto\""), json!({"type":"auto"}));
        assert_eq!(with("\"none\""), json!({"type":"none"}));
        assert_eq!(with("\"required\""), json!({"type":"any"}));
        assert_eq!(with("null"), Value::Null);
        // no tools: no tool_choice
        let v = translate(
            r#"{"model":"c","messages":[{"role":"user","content":"x"}],"tool_choice":"required"}"#,
            None,
        );
        assert!(v.get("tool_choice").is_none());
    }

    #[test]
    fn request_refusals_are_400() {
        for (body, want) in [
            (
                r#"{"model":"c","messages":[{"role":"user","content":"x"}],"n":2}"#,
                "`n`",
            ),
            (
                r#"{"model":"c","messages":[{"role":"function","content":"x"}]}"#,
                "role `function`",
            ),
            (
                r#"{"model":"c","messages":[{"role":"tool","content":"x"}]}"#,
                "tool_call_id",
            ),
            (
                r#"{"model":"c","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
                "input_audio",
            ),
            (
                r#"{"model":"c","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"not json"}}]}]}"#,
                "arguments",
            ),
        ] {
            // (A `content` of the wrong type is refused before translation: `body::parse`.)
            let e = translate_err(body);
            assert_eq!(e.status(), 400, "{body}");
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn non_stream_text_answer() {
        let t = answer(MESSAGE_TEXT.as_bytes(), "hint", 1700).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            v,
            json!({
                "id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","object":"chat.completion","created":1700,
                "model":"claude-sonnet-4-5-20250929",
                "choices":[{"index":0,"message":{"role":"assistant","content":"Hi! My name is Claude. How can I help?"},
                            "finish_reason":"stop"}],
                "usage":{"prompt_tokens":2100,"completion_tokens":503,"total_tokens":2603,
                         "prompt_tokens_details":{"cached_tokens":5}}
            })
        );
        assert_eq!(t.usage.map(|u| u.total_tokens), Some(2603));
        assert_eq!(t.finish_reason, "stop");
    }

    #[test]
    fn non_stream_tool_use_answer() {
        let t = answer(MESSAGE_TOOLS.as_bytes(), "hint", 1).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], "I'll check the weather.");
        assert_eq!(msg["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(msg["tool_calls"][0]["type"], "function");
        assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
        // the input's own bytes, key order kept
        assert_eq!(
            msg["tool_calls"][0]["function"]["arguments"],
            r#"{"location": "San Francisco, CA", "unit": "celsius", "days": [1, 2]}"#
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            t.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            Some((384, 92))
        );
    }

    #[test]
    fn only_tool_calls_means_null_content_and_missing_model_uses_the_hint() {
        let body = br#"{"id":"m1","type":"message","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use"}"#;
        let t = answer(body, "hint", 1).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert!(v["choices"][0]["message"]["content"].is_null());
        assert_eq!(v["model"], "hint");
        assert!(v.get("usage").is_none());
        assert_eq!(t.usage, None);
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
        assert_eq!(finish_reason(Some("refusal")), "content_filter");
        assert_eq!(finish_reason(None), "stop");
    }

    #[test]
    fn error_bodies_and_unreadable_answers() {
        let e = answer(
            include_bytes!("../../tests/fixtures/anthropic/error_overloaded.json"),
            "h",
            1,
        )
        .unwrap_err();
        assert_eq!(e.status(), 502);
        assert!(e.to_string().contains("Overloaded"), "{e}");
        let e = answer(
            include_bytes!("../../tests/fixtures/anthropic/error_invalid_request.json"),
            "h",
            1,
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().starts_with("max_tokens: 100000"), "{e}");
        assert_eq!(answer(b"<html>", "h", 1).unwrap_err().status(), 502);
    }

    fn stream(fixture: &str) -> (Vec<u8>, Stream) {
        let make = || Box::new(Stream::new("hint", 1700)) as Box<dyn SseTranslator>;
        let out = same_at_every_cut(&make, fixture.as_bytes());
        let mut t = Stream::new("hint", 1700);
        t.feed(fixture.as_bytes());
        t.finish();
        (out, t)
    }

    #[test]
    fn text_stream_translates_at_every_cut() {
        let (out, t) = stream(STREAM_TEXT);
        let events = events_of(&out);
        assert_eq!(events.len(), 5, "{}", String::from_utf8_lossy(&out));
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert_eq!(events[0]["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(events[0]["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(events[0]["object"], "chat.completion.chunk");
        assert_eq!(events[0]["created"], 1700);
        assert_eq!(events[1]["choices"][0]["delta"]["content"], "Bonjour");
        assert_eq!(
            events[2]["choices"][0]["delta"]["content"],
            " — ça va? 👋\n\"quoted\""
        );
        assert_eq!(events[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            events[3]["usage"],
            json!({"prompt_tokens":25,"completion_tokens":15,"total_tokens":40})
        );
        assert_eq!(events[4], "[DONE]");
        assert!(t.is_done() && t.has_content() && !t.is_failed());
        let s = scan(&out);
        assert_eq!(s.usage, t.usage());
        assert!(s.done && s.error.is_none());
    }

    #[test]
    fn tool_use_stream_translates_at_every_cut() {
        let (out, t) = stream(STREAM_TOOLS);
        let events = events_of(&out);
        let mut deltas: Vec<&Value> = events.iter().map(|e| &e["choices"][0]["delta"]).collect();
        // The thinking block: its text as reasoning, then the whole block with its signature.
        assert_eq!(
            deltas[1],
            &json!({"reasoning_content":"The user wants the weather."})
        );
        assert_eq!(
            deltas[2],
            &json!({"thinking_blocks":[{"type":"thinking","thinking":"The user wants the weather.",
                    "signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}]})
        );
        deltas.drain(1..3);
        assert_eq!(deltas[1], &json!({"content":"Okay, let me check."}));
        assert_eq!(
            deltas[2],
            &json!({"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function",
                                    "function":{"name":"get_weather","arguments":""}}]})
        );
        let args: String = events
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .take(3)
            .collect();
        assert_eq!(
            args,
            r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#
        );
        // the argument-less call gets `{}`
        assert_eq!(deltas[5]["tool_calls"][0]["index"], 1);
        assert_eq!(deltas[5]["tool_calls"][0]["function"]["name"], "get_time");
        assert_eq!(
            deltas[6],
            &json!({"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]})
        );
        let last = &events[events.len() - 2];
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(last["usage"]["prompt_tokens"], 582);
        assert_eq!(last["usage"]["completion_tokens"], 89);
        assert_eq!(events.last().unwrap(), "[DONE]");
        assert!(t.is_done());
        assert_eq!(scan(&out).content_events, 6);
    }

    #[test]
    fn error_event_ends_the_stream_without_done() {
        let (out, t) = stream(STREAM_ERROR);
        let events = events_of(&out);
        assert_eq!(events.len(), 3);
        assert_eq!(events[1]["choices"][0]["delta"]["content"], "Partial");
        assert_eq!(events[2]["error"]["reason"], "upstream_error");
        assert!(events[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"));
        assert!(t.is_failed() && !t.is_done());
        assert_eq!(t.usage().map(|u| u.prompt_tokens), Some(12));
        let s = scan(&out);
        assert!(!s.done);
        assert!(s.error.unwrap().contains("Overloaded"));
        // a rate-limit error keeps its 429
        let mut t = Stream::new("h", 1);
        let out = t.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n");
        assert_eq!(events_of(&out)[0]["error"]["status"], 429);
        assert!(t.finish().is_empty());
    }

    #[test]
    fn a_cut_stream_ends_with_an_error_event() {
        let cut = &STREAM_TEXT[..STREAM_TEXT.find("event: message_delta").unwrap()];
        let mut t = Stream::new("h", 1);
        let mut out = t.feed(cut.as_bytes()).to_vec();
        out.extend_from_slice(&t.finish());
        let events = events_of(&out);
        assert_eq!(events.last().unwrap()["error"]["status"], 502);
        assert!(t.is_failed());
        // cut inside an event's JSON
        let mut t = Stream::new("h", 1);
        t.feed(&STREAM_TEXT.as_bytes()[..40]);
        let end = t.finish();
        assert!(events_of(&end)[0]["error"].is_object());
        // ending right after message_delta is complete enough
        let cut = &STREAM_TEXT[..STREAM_TEXT.find("event: message_stop").unwrap()];
        let mut t = Stream::new("h", 1);
        t.feed(cut.as_bytes());
        let end = t.finish();
        assert!(end.ends_with(b"data: [DONE]\n\n"));
        assert!(t.is_done());
    }

    /// Cache reads and writes are parts of the prompt; the stream's usage is what
    /// `message_start` said, overridden count by count by `message_delta`.
    #[test]
    fn cache_reads_and_writes_are_parts_of_the_prompt() {
        let body = br#"{"id":"m","type":"message","role":"assistant","model":"c","content":[],
            "stop_reason":"end_turn","usage":{"input_tokens":20,"cache_read_input_tokens":90000,
            "cache_creation_input_tokens":1000,"output_tokens":100}}"#;
        let t = answer(body, "h", 1).unwrap();
        let want = Usage {
            prompt_tokens: 91_020,
            completion_tokens: 100,
            total_tokens: 91_120,
            cached_tokens: 90_000,
            cache_write_tokens: 1_000,
            reasoning_tokens: 0,
            ..Usage::default()
        };
        assert_eq!(t.usage, Some(want));
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            v["usage"]["prompt_tokens_details"],
            json!({"cached_tokens":90000,"cache_write_tokens":1000})
        );
        let events = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"content\":[],",
            "\"usage\":{\"input_tokens\":20,\"cache_read_input_tokens\":90000,",
            "\"cache_creation_input_tokens\":1000,\"output_tokens\":1}}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},",
            "\"usage\":{\"output_tokens\":100}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let (out, t) = stream(events);
        assert_eq!(t.usage(), Some(want));
        let last = &events_of(&out)[1];
        let back: Usage = serde_json::from_value(last["usage"].clone()).unwrap();
        assert_eq!(back, want, "the chat stream carries the details");
    }
}
