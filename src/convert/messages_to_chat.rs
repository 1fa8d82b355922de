//! The second front door, `POST /v1/messages`: clients that speak Anthropic's Messages API
//! (Claude SDKs, coding agents) routed to OpenAI-compatible upstreams. The reverse of
//! [`super::chat_to_messages`]: an Anthropic request becomes an OpenAI chat request (which then goes
//! through the gateway like any other: `body::parse`, routing, limits), and the OpenAI answer
//! or stream becomes an Anthropic message or event stream.
//!
//! Request mapping ([`request`]): `system` (a string or text blocks) → a leading
//! `system` message; user blocks `text` → text parts, `image` (base64 or url source) →
//! `image_url` parts (base64 as a `data:` URL), `tool_result` → `tool` messages placed before
//! the user's other content (their text joined; with images, text and image parts, which the
//! vendor leg carries or refuses naming the vendor: an OpenAI-compatible tool message takes
//! text); assistant `text` → `content`, `tool_use` → `tool_calls` (`input` → the `arguments`
//! string, its bytes kept); `thinking` and `redacted_thinking` blocks → `thinking_blocks`,
//! which go back to the vendor that signed them and are dropped for any other
//! (`super::vendor_state`). `max_tokens` →
//! `max_tokens` (the name every OpenAI-compatible server knows), `stop_sequences` → `stop` (a chat vendor takes at most 4: more is a 400 naming
//! `stop_sequences`, [`crate::contract::openai_chat`]),
//! `temperature`, `top_p`, `stream` (with `stream_options.include_usage`, so usage arrives),
//! `tools` → function tools, `tool_choice` auto/any/tool/none → auto/required/function/none,
//! `disable_parallel_tool_use` → `parallel_tool_calls: false`, `metadata.user_id` → `user`
//! (hashed when over OpenAI's 64 characters: `crate::contract::openai_chat::user`), `thinking` (a budget, or `adaptive` with
//! `output_config.effort`) → `reasoning_effort`, `output_config.format` (`json_schema`) →
//! `response_format` `json_schema` named `output` (another format is a 400). Dropped: `top_k`, `service_tier`,
//! `container`, `mcp_servers`, `cache_control` marks, and any other field. Server tools (web search, …) and `document` blocks are a 400.
//!
//! Answers: `thinking_blocks` → `thinking`/`redacted_thinking` blocks first (a stream: each
//! whole, its text and signature deltas), `content` → a `text` block, `tool_calls` →
//! `tool_use` blocks; `finish_reason`
//! stop → `end_turn` (OpenAI does not say whether a stop sequence matched), length →
//! `max_tokens`, tool_calls → `tool_use`, content_filter (a filtered answer, whole or at the
//! end of a stream) → `refusal` (Azure's `content_filter_results` and `prompt_filter_results`,
//! which say which filter, are lost; Azure's first stream chunk, which carries only the latter,
//! starts nothing); usage → `input_tokens`
//! (without cached tokens, which go to `cache_read_input_tokens`, and cache writes, which go to
//! `cache_creation_input_tokens`) and `output_tokens`.
//! Only the first choice is read.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;
use crate::dialect::chat::wire::Str;
use crate::dialect::chat::wire::{
    ChatRequestOut, ChunkErrorIn, CompletionIn, ContentOut, DeltaIn, FunctionDefOut, FunctionName,
    ImageUrl, JsonSchemaOut, MessageOut, PartOut, ResponseFormatOut, StreamOptions, ThinkingBlock,
    ToolCallOut, ToolChoiceOut, ToolDeltaIn, ToolOut,
};
use crate::dialect::messages::wire::{
    AnthropicUsage, Block, BlockIn, MessageIn, MessageOutBody, MessagesRequest, OutputFormat,
    SourceIn, ThinkingIn, ToolChoiceIn, ToolIn,
};
use crate::dialect::messages::{error_event, error_json, push_event};
use crate::error::{printable, GatewayError};

use super::chunks::{json_str, to_bytes};
use super::errors::unreadable;
use super::translate::{chat_event, ChatEvent, End, EventState, Translated, Translating};

const VENDOR: &str = "openai";

fn invalid(what: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest(what.into())
}

// ---------------------------------------------------------------------------------------------
// Request: Anthropic in.

// ---------------------------------------------------------------------------------------------
// Request: OpenAI out.

/// An Anthropic Messages request as an OpenAI chat-completions body, with the client's
/// `model` (the gateway routes it as it routes any chat request).
pub fn request(body: &[u8]) -> Result<Bytes, GatewayError> {
    let req: MessagesRequest<'_> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the request body is not a Messages request: {e}")))?;
    if req.messages.is_empty() {
        return Err(invalid("`messages` must not be empty"));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = system_text(req.system)? {
        messages.push(MessageOut {
            role: "system",
            content: Some(ContentOut::Text(system)),
            tool_calls: Vec::new(),
            tool_call_id: None,
            thinking_blocks: Vec::new(),
        });
    }
    for m in req.messages {
        convert_message(m, &mut messages)?;
    }
    let stream = req.stream.unwrap_or(false);
    let tools = convert_tools(req.tools.unwrap_or_default())?;
    let (tool_choice, parallel_tool_calls) = convert_tool_choice(req.tool_choice);
    let (effort, format) = req
        .output_config
        .map_or((None, None), |c| (c.effort, c.format));
    let response_format = response_format(format)?;
    let reasoning_effort = reasoning_effort(req.thinking, effort.as_deref())?;
    let out = ChatRequestOut {
        model: req.model,
        messages,
        max_completion_tokens: req.max_tokens,
        reasoning_effort,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req
            .stop_sequences
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.0)
            .collect(),
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        tools,
        tool_choice,
        parallel_tool_calls,
        user: req
            .metadata
            .and_then(|m| m.user_id)
            .map(crate::contract::openai_chat::user),
        response_format,
    };
    Ok(to_bytes(&out))
}

/// `output_config.format` (Anthropic's structured outputs) as chat's `response_format`:
/// `json_schema` with its schema, named `output` (OpenAI requires a name). Another format
/// type, or one without a schema, is a 400 naming the field: leaving it out would lift the
/// constraint on the answer.
fn response_format<'a>(
    format: Option<OutputFormat<'a>>,
) -> Result<Option<ResponseFormatOut<'a>>, GatewayError> {
    let Some(format) = format else {
        return Ok(None);
    };
    match (format.kind.as_ref(), format.schema) {
        ("json_schema", Some(schema)) => Ok(Some(ResponseFormatOut {
            kind: "json_schema",
            json_schema: JsonSchemaOut {
                name: "output",
                schema,
            },
        })),
        (kind, _) => Err(invalid(format!(
            "`output_config.format` of type `{}` with{} a schema cannot be carried to this route: only `json_schema` with its `schema`",
            printable(kind, 64),
            if format.schema.is_some() { "" } else { "out" }
        ))),
    }
}

/// Anthropic's thinking as OpenAI's `reasoning_effort`. A budget (`enabled`): under 2,048
/// tokens `low`, under 8,192 `medium`, else `high`. `adaptive` (Claude Code's default): the
/// level of `output_config.effort` (`max` → `high`, OpenAI's highest everywhere), or none when
/// no effort is given (the model decides, as Anthropic's default does). `output_config.effort`
/// without `thinking` sets the level too; `disabled` sends none. An unknown type or effort is a
/// 400 naming the field.
fn reasoning_effort(
    thinking: Option<ThinkingIn<'_>>,
    effort: Option<&str>,
) -> Result<Option<&'static str>, GatewayError> {
    let level = match effort {
        None => None,
        Some("low") => Some("low"),
        Some("medium") => Some("medium"),
        Some("high" | "max") => Some("high"),
        Some(other) => {
            return Err(invalid(format!(
                "`output_config.effort` `{}` is not one of low, medium, high, max",
                printable(other, 64)
            )))
        }
    };
    let Some(t) = thinking else {
        return Ok(level);
    };
    match (t.kind.as_ref(), t.budget_tokens) {
        ("disabled", _) => Ok(None),
        ("adaptive", _) => Ok(level),
        ("enabled", Some(b)) if b < 2048 => Ok(Some("low")),
        ("enabled", Some(b)) if b < 8192 => Ok(Some("medium")),
        ("enabled", _) => Ok(Some("high")),
        (other, _) => Err(invalid(format!(
            "`thinking.type` `{}` is not one of enabled, adaptive, disabled",
            printable(other, 64)
        ))),
    }
}

/// The blocks of a content that is a string (one text block) or an array of blocks.
fn blocks(raw: &RawValue) -> Result<Vec<BlockIn<'_>>, GatewayError> {
    if raw.get().starts_with('"') {
        let text = serde_json::from_str::<Str<'_>>(raw.get())
            .map_err(|e| invalid(format!("bad message content: {e}")))?;
        return Ok(vec![BlockIn {
            kind: Cow::Borrowed("text"),
            text: Some(text.0),
            ..BlockIn::default()
        }]);
    }
    serde_json::from_str(raw.get()).map_err(|e| {
        invalid(format!(
            "a message's `content` must be a string or blocks: {e}"
        ))
    })
}

/// The text of text blocks (a system prompt, a tool result), joined by newlines.
fn joined_text<'a>(blocks: Vec<BlockIn<'a>>) -> Cow<'a, str> {
    let mut texts: Vec<Cow<'a, str>> = blocks
        .into_iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text)
        .collect();
    match texts.len() {
        0 => Cow::Borrowed(""),
        1 => texts.pop().unwrap_or_default(),
        _ => Cow::Owned(texts.join("\n")),
    }
}

fn system_text(raw: Option<&RawValue>) -> Result<Option<Cow<'_, str>>, GatewayError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    let text = joined_text(blocks(raw)?);
    Ok((!text.is_empty()).then_some(text))
}

fn convert_message<'a>(
    m: MessageIn<'a>,
    out: &mut Vec<MessageOut<'a>>,
) -> Result<(), GatewayError> {
    match m.role.as_ref() {
        "user" => user_messages(blocks(m.content)?, out),
        "assistant" => {
            out.push(assistant_message(blocks(m.content)?)?);
            Ok(())
        }
        // Claude Code sends system text as a message; in chat it stays one, in its place.
        "system" => {
            let text = joined_text(blocks(m.content)?);
            if !text.is_empty() {
                out.push(MessageOut {
                    role: "system",
                    content: Some(ContentOut::Text(text)),
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                    thinking_blocks: Vec::new(),
                });
            }
            Ok(())
        }
        other => Err(invalid(format!(
            "messages with role `{other}` are not supported: use `user`, `assistant` or `system`"
        ))),
    }
}

/// A user turn: its tool results as `tool` messages first (OpenAI wants them right after the
/// assistant's calls), then its text and images as one user message.
fn user_messages<'a>(
    blocks_in: Vec<BlockIn<'a>>,
    out: &mut Vec<MessageOut<'a>>,
) -> Result<(), GatewayError> {
    let mut parts = Vec::new();
    for b in blocks_in {
        match b.kind.as_ref() {
            "text" => parts.extend(b.text.map(|text| PartOut::Text { text })),
            "image" => parts.push(image_part(b.source)?),
            "tool_result" => out.push(tool_message(b)?),
            other => {
                return Err(invalid(format!(
                    "content blocks of type `{other}` are not supported by this route"
                )))
            }
        }
    }
    let content = match parts.len() {
        0 => return Ok(()),
        1 if matches!(parts[0], PartOut::Text { .. }) => match parts.pop() {
            Some(PartOut::Text { text }) => ContentOut::Text(text),
            _ => return Ok(()),
        },
        _ => ContentOut::Parts(parts),
    };
    out.push(MessageOut {
        role: "user",
        content: Some(content),
        tool_calls: Vec::new(),
        tool_call_id: None,
        thinking_blocks: Vec::new(),
    });
    Ok(())
}

fn image_part(source: Option<SourceIn<'_>>) -> Result<PartOut<'_>, GatewayError> {
    let source = source.ok_or_else(|| invalid("an `image` block needs a `source`"))?;
    let url = match (
        source.kind.as_ref(),
        source.media_type,
        source.data,
        source.url,
    ) {
        ("base64", Some(media), Some(data), _) => Cow::Owned(format!("data:{media};base64,{data}")),
        ("url", _, _, Some(url)) => url,
        (kind, ..) => {
            return Err(invalid(format!(
                "image sources of type `{kind}` are not supported by this route"
            )))
        }
    };
    Ok(PartOut::ImageUrl {
        image_url: ImageUrl { url },
    })
}

/// A `tool_result` block as a `tool` message: its text, or, when it holds images, its text
/// and image parts (which the vendor leg carries, or refuses naming the vendor: never
/// dropped).
fn tool_message(b: BlockIn<'_>) -> Result<MessageOut<'_>, GatewayError> {
    let id = b
        .tool_use_id
        .ok_or_else(|| invalid("a `tool_result` block needs a `tool_use_id`"))?;
    let content = match b.content.filter(|c| c.get() != "null") {
        Some(raw) => tool_content(blocks(raw)?)?,
        None => ContentOut::Text(Cow::Borrowed("")),
    };
    Ok(MessageOut {
        role: "tool",
        content: Some(content),
        tool_calls: Vec::new(),
        tool_call_id: Some(id),
        thinking_blocks: Vec::new(),
    })
}

/// A tool result's blocks: their text joined, or text and image parts when an image is there.
fn tool_content(blocks: Vec<BlockIn<'_>>) -> Result<ContentOut<'_>, GatewayError> {
    if !blocks.iter().any(|b| b.kind == "image") {
        return Ok(ContentOut::Text(joined_text(blocks)));
    }
    let mut parts = Vec::with_capacity(blocks.len());
    for b in blocks {
        match b.kind.as_ref() {
            "text" => parts.extend(b.text.map(|text| PartOut::Text { text })),
            "image" => parts.push(image_part(b.source)?),
            other => {
                return Err(invalid(format!(
                    "`tool_result` content blocks of type `{other}` are not supported by this route"
                )))
            }
        }
    }
    Ok(ContentOut::Parts(parts))
}

/// An assistant turn: its text, its tool calls, and its `thinking`/`redacted_thinking` blocks
/// as `thinking_blocks` (the vendor leg that made them takes them back; the others drop
/// them by rule, `super::vendor_state`).
fn assistant_message(blocks_in: Vec<BlockIn<'_>>) -> Result<MessageOut<'_>, GatewayError> {
    let mut texts: Vec<Cow<'_, str>> = Vec::new();
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    for b in blocks_in {
        match b.kind.as_ref() {
            "thinking" => thinking_blocks.push(ThinkingBlock::Thinking {
                thinking: b.thinking.unwrap_or_default(),
                signature: b.signature.unwrap_or_default(),
            }),
            "redacted_thinking" => thinking_blocks.push(ThinkingBlock::RedactedThinking {
                data: b.data.unwrap_or_default(),
            }),
            "text" => texts.extend(b.text),
            "tool_use" => tool_calls.push(ToolCallOut::new(
                b.id.ok_or_else(|| invalid("a `tool_use` block needs an `id`"))?,
                b.name
                    .ok_or_else(|| invalid("a `tool_use` block needs a `name`"))?,
                b.input.map_or("{}", RawValue::get),
            )),
            _ => {}
        }
    }
    let content = match texts.len() {
        0 if !tool_calls.is_empty() => None,
        0 => Some(ContentOut::Text(Cow::Borrowed(""))),
        1 => texts.pop().map(ContentOut::Text),
        _ => Some(ContentOut::Text(Cow::Owned(texts.concat()))),
    };
    Ok(MessageOut {
        role: "assistant",
        content,
        tool_calls,
        tool_call_id: None,
        thinking_blocks,
    })
}

fn convert_tools(tools: Vec<ToolIn<'_>>) -> Result<Vec<ToolOut<'_>>, GatewayError> {
    tools
        .into_iter()
        .map(|t| match (t.kind.as_deref(), t.input_schema) {
            (None | Some("custom"), Some(schema)) => Ok(ToolOut {
                kind: "function",
                function: FunctionDefOut {
                    name: t.name,
                    description: t.description,
                    parameters: Some(schema),
                },
            }),
            (kind, _) => Err(invalid(format!(
                "the tool `{}` ({}) is not supported by this route: only client tools with an `input_schema`",
                t.name,
                kind.unwrap_or("no input_schema")
            ))),
        })
        .collect()
}

fn convert_tool_choice(
    choice: Option<ToolChoiceIn<'_>>,
) -> (Option<ToolChoiceOut<'_>>, Option<bool>) {
    let Some(c) = choice else {
        return (None, None);
    };
    let parallel = c.disable_parallel_tool_use.filter(|d| *d).map(|_| false);
    let out = match (c.kind.as_ref(), c.name) {
        ("any", _) => ToolChoiceOut::Mode("required"),
        ("none", _) => ToolChoiceOut::Mode("none"),
        ("tool", Some(name)) => ToolChoiceOut::Function {
            kind: "function",
            function: FunctionName { name },
        },
        _ => ToolChoiceOut::Mode("auto"),
    };
    (Some(out), parallel)
}

// ---------------------------------------------------------------------------------------------
// Answers: OpenAI in, Anthropic out.

/// Anthropic's `stop_reason` for OpenAI's `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// A tool call's `arguments` as the object Anthropic clients read. A model's broken JSON is
/// kept as text under `_arguments` rather than failing the whole answer.
fn input_object(arguments: &str) -> Box<RawValue> {
    let trimmed = arguments.trim();
    let trimmed = if trimmed.is_empty() { "{}" } else { trimmed };
    let parsed = trimmed
        .starts_with('{')
        .then(|| serde_json::from_str::<Box<RawValue>>(trimmed).ok())
        .flatten();
    parsed.unwrap_or_else(|| {
        let wrapped = format!(r#"{{"_arguments":{}}}"#, json_str(arguments));
        RawValue::from_string(wrapped).unwrap_or_default()
    })
}

/// An OpenAI `chat.completion` as an Anthropic `message` (its first choice): its reasoning
/// blocks, its text, its tool calls.
pub fn answer(body: &[u8], model_hint: &str) -> Result<Translated, GatewayError> {
    let c: CompletionIn<'_> =
        serde_json::from_slice(body).map_err(|e| unreadable(VENDOR, "an answer", e))?;
    let choice = c.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|ch| ch.finish_reason.as_deref());
    let reason = stop_reason(finish);
    let mut content = Vec::new();
    if let Some(answer) = choice.and_then(|ch| ch.message) {
        content.extend(
            answer
                .thinking_blocks
                .unwrap_or_default()
                .into_iter()
                .map(super::vendor_state::messages_block),
        );
        let text = answer.content.filter(|t| !t.is_empty()).or(answer.refusal);
        content.extend(
            text.filter(|t| !t.is_empty())
                .map(|text| Block::Text { text }),
        );
        for call in answer.tool_calls.unwrap_or_default() {
            content.push(Block::ToolUse {
                input: input_object(&call.function.arguments),
                id: call.id,
                name: call.function.name,
            });
        }
    }
    let usage = c.usage;
    let body = to_bytes(&MessageOutBody {
        id: &message_id(c.id.as_deref()),
        kind: "message",
        role: "assistant",
        model: c.model.as_deref().unwrap_or(model_hint),
        content,
        stop_reason: reason,
        stop_sequence: None,
        usage: AnthropicUsage::of(usage),
    });
    Ok(Translated {
        body,
        usage,
        finish_reason: reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Streams: OpenAI chunks in, Anthropic events out.

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    /// A tool call: its OpenAI index and its block index.
    Tool(u32, u32),
}

/// Translates an OpenAI chunk stream (asked with `include_usage`) into Anthropic's events:
/// `message_start` at the first chunk, `content_block_start`/`_delta`/`_stop` for text and
/// each tool call (arguments as `input_json_delta`), then at `[DONE]` a `message_delta` with
/// the stop reason and usage and `message_stop`. An error chunk becomes an `error` event.
/// Only the first choice is translated; tool calls are expected one after the other, as
/// OpenAI streams them (a fragment for an earlier call goes to that call's block anyway).
pub type Stream = Translating<StreamState>;

/// What an [`Stream`] keeps between events.
#[derive(Debug, Default)]
pub struct StreamState {
    model_hint: String,
    started: bool,
    open: Option<Open>,
    next_block: u32,
    /// (OpenAI tool call index, block index) of every tool call seen.
    tools: Vec<(u32, u32)>,
    finish: Option<&'static str>,
    usage: Option<Usage>,
    content: bool,
    end: End,
}

impl Stream {
    /// `model_hint` names the model until the upstream's first chunk does.
    pub fn new(model_hint: &str) -> Self {
        Translating::over(StreamState {
            model_hint: model_hint.to_string(),
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
        // Azure's first chunk carries only `prompt_filter_results` (empty `id`, `model` and
        // `choices`): the message starts at the next one, which names them.
        if chunk.choices.is_empty() && chunk.usage.is_none() {
            return;
        }
        let id = chunk.id.as_deref().filter(|s| !s.is_empty());
        let model = chunk.model.as_deref().filter(|s| !s.is_empty());
        self.begin(id, model, out);
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                self.delta(delta, out);
            }
            if let Some(f) = choice.finish_reason.as_deref() {
                self.finish = Some(stop_reason(Some(f)));
            }
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

/// A Messages answer's id in Anthropic's style (`msg_…`) from the chat answer's id: the same
/// vendor id gives the same message id (`chatcmpl-abc12` → `msg_abc12`; only letters, digits,
/// `_` and `-` kept), so a client that logs ids can still find the vendor's.
fn message_id(chat_id: Option<&str>) -> String {
    let id = chat_id.unwrap_or_default();
    let id = id.strip_prefix("chatcmpl-").unwrap_or(id);
    let kept: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if kept.is_empty() {
        format!("msg_{:016x}", rand::random::<u64>())
    } else if kept.starts_with("msg_") {
        kept
    } else {
        format!("msg_{kept}")
    }
}

impl StreamState {
    fn begin(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let data = format!(
            r#"{{"type":"message_start","message":{{"id":{},"type":"message","role":"assistant","model":{},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":0,"output_tokens":0}}}}}}"#,
            json_str(&message_id(id)),
            json_str(model.unwrap_or(&self.model_hint))
        );
        push_event(out, "message_start", &data);
    }

    fn delta(&mut self, delta: DeltaIn<'_>, out: &mut Vec<u8>) {
        for block in delta.thinking_blocks.unwrap_or_default() {
            self.thinking(block, out);
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            self.text(&text, out);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            self.tool(call, out);
        }
    }

    /// A whole reasoning block: its start, its text and signature deltas, its stop.
    fn thinking(&mut self, block: ThinkingBlock<'_>, out: &mut Vec<u8>) {
        let (start, deltas) = match &block {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => (
                r#"{"type":"thinking","thinking":"","signature":""}"#.to_string(),
                vec![
                    format!(
                        r#"{{"type":"thinking_delta","thinking":{}}}"#,
                        json_str(thinking)
                    ),
                    format!(
                        r#"{{"type":"signature_delta","signature":{}}}"#,
                        json_str(signature)
                    ),
                ],
            ),
            ThinkingBlock::RedactedThinking { data } => (
                format!(
                    r#"{{"type":"redacted_thinking","data":{}}}"#,
                    json_str(data)
                ),
                Vec::new(),
            ),
        };
        let index = self.open_block(out, &start);
        for d in deltas {
            let data = format!(r#"{{"type":"content_block_delta","index":{index},"delta":{d}}}"#);
            push_event(out, "content_block_delta", &data);
        }
        push_event(
            out,
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
        );
        self.content = true;
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        let block = match self.open {
            Some(Open::Text(b)) => b,
            _ => {
                let b = self.open_block(out, r#"{"type":"text","text":""}"#);
                self.open = Some(Open::Text(b));
                b
            }
        };
        self.content = true;
        let data = format!(
            r#"{{"type":"content_block_delta","index":{block},"delta":{{"type":"text_delta","text":{}}}}}"#,
            json_str(text)
        );
        push_event(out, "content_block_delta", &data);
    }

    fn tool(&mut self, call: ToolDeltaIn<'_>, out: &mut Vec<u8>) {
        let (name, arguments) = call
            .function
            .map_or((None, None), |f| (f.name, f.arguments));
        let known = self
            .tools
            .iter()
            .find(|(i, _)| *i == call.index)
            .map(|t| t.1);
        let block = match known {
            Some(b) => b,
            None => {
                let start = format!(
                    r#"{{"type":"tool_use","id":{},"name":{},"input":{{}}}}"#,
                    json_str(call.id.as_deref().unwrap_or_default()),
                    json_str(name.as_deref().unwrap_or_default())
                );
                let b = self.open_block(out, &start);
                self.open = Some(Open::Tool(call.index, b));
                self.tools.push((call.index, b));
                self.content = true;
                b
            }
        };
        if let Some(args) = arguments.filter(|a| !a.is_empty()) {
            let data = format!(
                r#"{{"type":"content_block_delta","index":{block},"delta":{{"type":"input_json_delta","partial_json":{}}}}}"#,
                json_str(&args)
            );
            push_event(out, "content_block_delta", &data);
        }
    }

    /// Closes the open block and starts a new one; returns its index.
    fn open_block(&mut self, out: &mut Vec<u8>, content_block: &str) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        let data = format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{content_block}}}"#
        );
        push_event(out, "content_block_start", &data);
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        let index = match self.open.take() {
            Some(Open::Text(b)) | Some(Open::Tool(_, b)) => b,
            None => return,
        };
        push_event(
            out,
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
        );
    }

    /// `message_delta` (stop reason, usage) and `message_stop`.
    fn last(&mut self, out: &mut Vec<u8>) {
        self.begin(None, None, out);
        self.close_block(out);
        let usage = AnthropicUsage::of(self.usage);
        let data = format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"{}","stop_sequence":null}},"usage":{}}}"#,
            self.finish.unwrap_or("end_turn"),
            usage.json()
        );
        push_event(out, "message_delta", &data);
        push_event(out, "message_stop", r#"{"type":"message_stop"}"#);
        self.end = End::Done;
    }

    /// An error chunk from upstream (the gateway's own shape or a vendor's).
    fn upstream_error(&mut self, err: &RawValue, out: &mut Vec<u8>) {
        let parsed = serde_json::from_str::<ChunkErrorIn<'_>>(err.get()).ok();
        let status = parsed.as_ref().and_then(|e| e.status).unwrap_or(502);
        let message = parsed
            .and_then(|e| e.message)
            .unwrap_or(Cow::Borrowed("the upstream stream failed"));
        push_event(out, "error", &error_json(status, &message));
        self.end = End::Failed;
    }

    fn fail(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        out.extend_from_slice(&error_event(err));
        self.end = End::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::chat_to_messages as anthropic;
    use crate::convert::translate::tests::{events_of, same_at_every_cut};
    use crate::convert::translate::SseTranslator;
    use crate::dialect::chat::parse;
    use crate::dialect::sse::Decoder;
    use serde_json::{json, Value};

    const STREAM_TEXT: &str = include_str!("../../tests/fixtures/openai/stream_text.sse");
    const STREAM_TOOLS: &str = include_str!("../../tests/fixtures/openai/stream_tool_calls.sse");
    const STREAM_ERROR: &str = include_str!("../../tests/fixtures/openai/stream_error.sse");
    const COMPLETION_TOOLS: &str =
        include_str!("../../tests/fixtures/openai/completion_tool_calls.json");
    const COMPLETION_TEXT: &str = include_str!("../../tests/fixtures/openai/completion_text.json");

    fn to_openai(body: Value) -> Value {
        let out = request(body.to_string().as_bytes()).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn request_maps_system_messages_and_parameters() {
        let v = to_openai(json!({
            "model":"claude-x","max_tokens":1024,
            "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}},{"type":"text","text":"French."}],
            "messages":[
                {"role":"user","content":"Hi"},
                {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"Salut"}]},
                {"role":"user","content":[{"type":"text","text":"Look"},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}},
                    {"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}],
            "stop_sequences":["END"],"temperature":0.3,"top_p":0.9,"top_k":5,"stream":true,
            "metadata":{"user_id":"u-1"},"thinking":{"type":"enabled","budget_tokens":2000}
        }));
        assert_eq!(
            v,
            json!({
                "model":"claude-x",
                "messages":[
                    {"role":"system","content":"Be brief.\nFrench."},
                    {"role":"user","content":"Hi"},
                    // the thinking block goes on in the pivot: the vendor leg that made it
                    // takes it back, the others drop it by rule
                    {"role":"assistant","content":"Salut",
                     "thinking_blocks":[{"type":"thinking","thinking":"hm","signature":"s"}]},
                    {"role":"user","content":[{"type":"text","text":"Look"},
                        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},
                        {"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],
                "max_completion_tokens":1024,"reasoning_effort":"low","temperature":0.3,"top_p":0.9,"stop":["END"],"stream":true,
                "stream_options":{"include_usage":true},"user":"u-1"
            })
        );
        // the gateway's own parser takes the result
        let out =
            request(br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#)
                .unwrap();
        let req = parse(&out).unwrap();
        assert_eq!(
            (req.model.as_ref(), req.max_tokens, req.stream),
            ("m", Some(5), false)
        );
    }

    #[test]
    fn request_maps_tools_both_ways_of_a_turn() {
        let v = to_openai(json!({
            "model":"c","max_tokens":10,
            "messages":[
                {"role":"user","content":"Weather?"},
                {"role":"assistant","content":[{"type":"text","text":"Checking."},
                    {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"z":1,"a":2}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18C"}]},
                    {"type":"tool_result","tool_use_id":"toolu_2","content":"err","is_error":true},
                    {"type":"text","text":"Thanks"}]}],
            "tools":[{"name":"get_weather","description":"W","input_schema":{"type":"object","properties":{}}}],
            "tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true}
        }));
        assert_eq!(
            v["messages"],
            json!([
                {"role":"user","content":"Weather?"},
                {"role":"assistant","content":"Checking.","tool_calls":[
                    {"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"a\":2,\"z\":1}"}}]},
                {"role":"tool","content":"18C","tool_call_id":"toolu_1"},
                {"role":"tool","content":"err","tool_call_id":"toolu_2"},
                {"role":"user","content":"Thanks"}
            ])
        );
        assert_eq!(
            v["tools"],
            json!([{"type":"function","function":{"name":"get_weather","description":"W",
                    "parameters":{"type":"object","properties":{}}}}])
        );
        assert_eq!(
            v["tool_choice"],
            json!({"type":"function","function":{"name":"get_weather"}})
        );
        assert_eq!(v["parallel_tool_calls"], false);
        for (choice, want) in [("auto", "auto"), ("any", "required"), ("none", "none")] {
            let v = to_openai(
                json!({"model":"c","messages":[{"role":"user","content":"x"}],
                "tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":choice}}),
            );
            assert_eq!(v["tool_choice"], want);
        }
    }

    #[test]
    fn tool_input_bytes_are_kept() {
        let body = br#"{"model":"c","messages":[{"role":"assistant","content":[
            {"type":"tool_use","id":"t","name":"f","input":{"z": 1, "a": [2]}}]}]}"#;
        let out = request(body).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains(r#""arguments":"{\"z\": 1, \"a\": [2]}""#),
            "{text}"
        );
    }

    #[test]
    fn adaptive_thinking_and_effort_become_reasoning_effort() {
        let cases = [
            (json!({"type": "adaptive"}), Some("low"), json!("low")),
            (json!({"type": "adaptive"}), Some("medium"), json!("medium")),
            (json!({"type": "adaptive"}), Some("high"), json!("high")),
            (json!({"type": "adaptive"}), Some("max"), json!("high")),
            (json!({"type": "adaptive"}), None, Value::Null),
            (json!({"type": "disabled"}), Some("high"), Value::Null),
            (Value::Null, Some("medium"), json!("medium")),
        ];
        for (thinking, effort, want) in cases {
            let mut body = json!({"model":"c","max_tokens":100,
                "messages":[{"role":"user","content":"hi"}]});
            if !thinking.is_null() {
                body["thinking"] = thinking.clone();
            }
            if let Some(e) = effort {
                body["output_config"] = json!({ "effort": e });
            }
            let v = to_openai(body);
            assert_eq!(v["reasoning_effort"], want, "{thinking} {effort:?}");
        }
    }

    #[test]
    fn a_long_metadata_user_id_fits_openais_user() {
        let long = format!(
            "user_{}_account__session_{}",
            "a".repeat(64),
            "b".repeat(36)
        );
        let v = to_openai(json!({"model":"c","max_tokens":1,
            "messages":[{"role":"user","content":"hi"}],"metadata":{"user_id": long}}));
        let user = v["user"].as_str().unwrap();
        assert_eq!(user.len(), 64);
        let again = to_openai(json!({"model":"c","max_tokens":1,
            "messages":[{"role":"user","content":"hi"}],"metadata":{"user_id": long}}));
        assert_eq!(again["user"], user, "the same id maps the same way");
        let v = to_openai(json!({"model":"c","max_tokens":1,
            "messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u-1"}}));
        assert_eq!(v["user"], "u-1");
    }

    #[test]
    fn system_role_messages_become_system_messages_in_place() {
        let v = to_openai(json!({
            "model":"c","max_tokens":10,"system":"top",
            "messages":[{"role":"system","content":[{"type":"text","text":"mid"}]},
                        {"role":"user","content":"hi"}]}));
        assert_eq!(
            v["messages"],
            json!([{"role":"system","content":"top"},{"role":"system","content":"mid"},
                   {"role":"user","content":"hi"}])
        );
        for (budget, effort) in [(1024, "low"), (4000, "medium"), (16000, "high")] {
            let v = to_openai(json!({"model":"c","max_tokens":20000,
                "thinking":{"type":"enabled","budget_tokens":budget},
                "messages":[{"role":"user","content":"hi"}]}));
            assert_eq!(v["reasoning_effort"], effort);
            assert_eq!(v["max_completion_tokens"], 20000);
            assert!(v.get("max_tokens").is_none());
        }
    }

    #[test]
    fn request_refusals_are_400() {
        for body in [
            json!({"model":"c","messages":[]}),
            json!({"messages":[{"role":"user","content":"x"}]}),
            json!({"model":"c","messages":[{"role":"developer","content":"x"}]}),
            json!({"model":"c","messages":[{"role":"user","content":"x"}],"thinking":{"type":"sometimes"}}),
            json!({"model":"c","messages":[{"role":"user","content":"x"}],"thinking":{"type":"adaptive"},"output_config":{"effort":"extreme"}}),
            json!({"model":"c","messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}),
            json!({"model":"c","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}),
        ] {
            let e = request(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
        }
    }

    #[test]
    fn anthropic_request_survives_the_round_trip() {
        // Anthropic → OpenAI → Anthropic keeps the conversation and the tools
        let original = json!({
            "model":"c","max_tokens":64,"system":"Be brief.",
            "messages":[
                {"role":"user","content":[{"type":"text","text":"Weather?"}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"w","input":{"city":"Paris"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"18C"}]}]}],
            "tools":[{"name":"w","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
            "stop_sequences":["X"]
        });
        let openai = request(original.to_string().as_bytes()).unwrap();
        let req = parse(&openai).unwrap();
        let back: Value = serde_json::from_slice(
            &anthropic::request(&req, "c", None, &mut Default::default()).unwrap(),
        )
        .unwrap();
        for key in [
            "system",
            "messages",
            "tools",
            "stop_sequences",
            "max_tokens",
        ] {
            assert_eq!(back[key], original[key], "{key}");
        }
    }

    #[test]
    fn openai_answer_becomes_a_message() {
        let t = answer(COMPLETION_TOOLS.as_bytes(), "h").unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            v,
            json!({
                "id":"msg_abc123","type":"message","role":"assistant","model":"gpt-4o-mini",
                "content":[{"type":"text","text":"Checking."},
                    {"type":"tool_use","id":"call_abc123","name":"get_current_weather","input":{"location":"Boston, MA"}}],
                "stop_reason":"tool_use","stop_sequence":null,
                "usage":{"input_tokens":82,"output_tokens":17,"cache_creation_input_tokens":0,
                         "cache_read_input_tokens":0}
            })
        );
        assert_eq!(t.usage.map(|u| u.total_tokens), Some(99));
        let t = answer(COMPLETION_TEXT.as_bytes(), "h").unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(
            v["content"],
            json!([{"type":"text","text":"Hello there, how may I assist you today?"}])
        );
        assert_eq!(t.finish_reason, "max_tokens");
    }

    #[test]
    fn broken_tool_arguments_are_kept_as_text() {
        let body = br#"{"id":"x","model":"m","choices":[{"message":{"content":null,"tool_calls":[
            {"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]},"finish_reason":"tool_calls"}]}"#;
        let v: Value = serde_json::from_slice(&answer(body, "h").unwrap().body).unwrap();
        assert_eq!(v["content"][0]["input"], json!({"_arguments":"{oops"}));
        assert_eq!(v["usage"]["input_tokens"], 0);
    }

    /// (event name, data) of an Anthropic event stream.
    fn named_events(bytes: &[u8]) -> Vec<(String, Value)> {
        let mut d = Decoder::default();
        let mut rest = bytes;
        let mut out = Vec::new();
        while let Some(e) = d.next_event(&mut rest) {
            out.push((
                String::from_utf8_lossy(e.name).into_owned(),
                serde_json::from_slice::<Value>(e.data).unwrap(),
            ));
        }
        assert!(d.finish().is_none());
        for (name, data) in &out {
            assert_eq!(data["type"], name.as_str(), "event name and type agree");
        }
        out
    }

    fn stream(fixture: &str) -> (Vec<u8>, Stream) {
        let make = || Box::new(Stream::new("hint")) as Box<dyn SseTranslator>;
        let out = same_at_every_cut(&make, fixture.as_bytes());
        let mut t = Stream::new("hint");
        t.feed(fixture.as_bytes());
        t.finish();
        (out, t)
    }

    #[test]
    fn text_stream_becomes_anthropic_events() {
        let (out, t) = stream(STREAM_TEXT);
        let ev = named_events(&out);
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            ev[0].1["message"]["id"],
            "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT"
        );
        assert_eq!(ev[0].1["message"]["model"], "gpt-4o-2024-08-06");
        assert_eq!(ev[1].1["content_block"], json!({"type":"text","text":""}));
        assert_eq!(
            ev[3].1["delta"],
            json!({"type":"text_delta","text":" wörld — 👋 \"q\""})
        );
        assert_eq!(
            ev[5].1,
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},
                   "usage":{"input_tokens":15,"output_tokens":10,"cache_creation_input_tokens":0,
                            "cache_read_input_tokens":4}})
        );
        assert!(t.is_done() && t.has_content());
        assert_eq!(t.usage().map(|u| u.total_tokens), Some(29));
    }

    #[test]
    fn tool_call_stream_becomes_tool_use_blocks() {
        let (out, _) = stream(STREAM_TOOLS);
        let ev = named_events(&out);
        let starts: Vec<&Value> = ev
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(starts.len(), 3);
        assert_eq!(
            starts[1],
            &json!({"type":"content_block_start","index":1,"content_block":
                {"type":"tool_use","id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","name":"get_weather","input":{}}})
        );
        let args: String = ev
            .iter()
            .filter(|(_, d)| d["index"] == 1 && d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(args, r#"{"location": "Paris"}"#);
        let stops = ev.iter().filter(|(n, _)| n == "content_block_stop").count();
        assert_eq!(stops, 3);
        let delta = &ev[ev.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["output_tokens"], 30);
    }

    #[test]
    fn stream_error_becomes_an_error_event() {
        let (out, t) = stream(STREAM_ERROR);
        let ev = named_events(&out);
        let (name, data) = ev.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], "api_error");
        assert!(data["error"]["message"].as_str().unwrap().contains("boom"));
        assert!(t.is_failed());
        // a stream cut before its finish reason ends with an error too
        let cut = &STREAM_TEXT[..STREAM_TEXT.find("\"finish_reason\":\"stop\"").unwrap()];
        let cut = &cut[..cut.rfind("data:").unwrap()];
        let mut t = Stream::new("h");
        let mut out = t.feed(cut.as_bytes()).to_vec();
        out.extend_from_slice(&t.finish());
        assert_eq!(named_events(&out).last().unwrap().0, "error");
    }

    #[test]
    fn anthropic_stream_round_trips_through_openai() {
        // Anthropic SSE → OpenAI chunks → Anthropic SSE keeps the signed thinking block, text,
        // tool input and usage
        let fixture = include_str!("../../tests/fixtures/anthropic/stream_tool_use.sse");
        let mut forward = anthropic::Stream::new("h", 1);
        let mut openai = forward.feed(fixture.as_bytes()).to_vec();
        openai.extend_from_slice(&forward.finish());
        let mut back = Stream::new("h");
        let mut out = back.feed(&openai).to_vec();
        out.extend_from_slice(&back.finish());
        let ev = named_events(&out);
        let text: String = ev
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "Okay, let me check.");
        assert_eq!(ev[1].1["content_block"]["type"], "thinking");
        let signature: String = ev
            .iter()
            .filter(|(_, d)| d["index"] == 0)
            .filter_map(|(_, d)| d["delta"]["signature"].as_str())
            .collect();
        assert!(!signature.is_empty());
        let args: String = ev
            .iter()
            .filter(|(_, d)| d["index"] == 2)
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        let args: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(
            args,
            json!({"location":"San Francisco, CA","unit":"fahrenheit"})
        );
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(back.usage(), forward.usage());
        let _ = events_of(&openai);
    }

    /// An Anthropic client sees `input_tokens` without the cache reads and writes, which go
    /// to their own fields.
    #[test]
    fn cache_parts_leave_input_tokens() {
        let body = br#"{"id":"c","model":"m","choices":[{"index":0,"finish_reason":"stop",
            "message":{"role":"assistant","content":"hi"}}],
            "usage":{"prompt_tokens":91020,"completion_tokens":100,"total_tokens":91120,
            "prompt_tokens_details":{"cached_tokens":90000,"cache_write_tokens":1000},
            "completion_tokens_details":{"reasoning_tokens":40}}}"#;
        let t = answer(body, "h").unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            v["usage"],
            json!({"input_tokens":20,"output_tokens":100,
                   "cache_creation_input_tokens":1000,"cache_read_input_tokens":90000})
        );
        let u = t.usage.unwrap();
        assert_eq!(
            (u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens),
            (90_000, 1_000, 40)
        );
        // A usage without both counts is no usage, not a failed answer.
        let body = br#"{"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":3}}"#;
        assert_eq!(answer(body, "h").unwrap().usage, None);
    }
}
